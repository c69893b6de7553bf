//! `cargo xtask fuzz TARGET [--time S]`: coverage-guided fuzzing with libFuzzer on stable
//! Rust. The targets (`fuzz/fuzz_targets/`) build in their own workspace with LLVM's
//! SanitizerCoverage passes (the flags cargo-fuzz passes, minus the nightly-only sanitizer and
//! comparison tracing, which tripled the cost of a checked step),
//! for the host target explicitly so build scripts and proc macros stay uninstrumented.
//! The corpus lives in `target/fuzz/corpus/TARGET` (seeded for the parser with every file
//! under `scenarios/`); a crash is written to `target/fuzz/artifacts/TARGET/` and fails the
//! run, naming the file to replay (`target/fuzz/.../TARGET FILE`).

use std::path::Path;
use std::process::Command;

pub const TARGETS: [&str; 2] = ["scenario_parser", "hostile_hvc"];

const SANCOV: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    --cfg fuzzing";

fn host_triple() -> Result<String, String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or_else(|| "rustc -vV: no host line".into())
}

/// Parses `TARGET [--time S]` and runs the campaign.
pub fn fuzz(root: &Path, args: &[String]) -> Result<(), String> {
    let usage = || {
        format!(
            "usage: cargo xtask fuzz <{}> [--time SECONDS]",
            TARGETS.join("|")
        )
    };
    let target = args.first().ok_or_else(usage)?;
    if !TARGETS.contains(&target.as_str()) {
        return Err(usage());
    }
    let secs = match args.get(1).map(String::as_str) {
        None => 60,
        Some("--time") => args.get(2).and_then(|s| s.parse().ok()).ok_or_else(usage)?,
        Some(_) => return Err(usage()),
    };
    run(root, target, secs)
}

/// Builds `target` instrumented and fuzzes it for `secs` seconds.
pub fn run(root: &Path, target: &str, secs: u64) -> Result<(), String> {
    let triple = host_triple()?;
    let dir = root.join("target/fuzz");
    println!("==> fuzz {target}: build (libFuzzer, SanitizerCoverage, {triple})");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root.join("fuzz"))
        .env("RUSTFLAGS", SANCOV)
        .env("CARGO_TARGET_DIR", &dir)
        .args(["build", "--release", "--bin", target, "--target", &triple])
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("fuzz {target}: build failed"));
    }
    let corpus = dir.join("corpus").join(target);
    let artifacts = dir.join("artifacts").join(target);
    for d in [&corpus, &artifacts] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let mut seeds = Vec::new();
    if target == "scenario_parser" {
        seeds.push(root.join("scenarios"));
        seeds.push(root.join("scenarios/attacks"));
    }
    let bin = dir.join(&triple).join("release").join(target);
    println!("==> fuzz {target}: {secs} s");
    // hostile_hvc draws every choice of its generator from the input: without a length
    // limit libFuzzer grows inputs a few bytes at a time and the fuzzer steers only the
    // first draws of a sequence.
    let max_len = if target == "hostile_hvc" { 4096 } else { 65536 };
    let status = Command::new(&bin)
        .arg(format!("-max_total_time={secs}"))
        .arg(format!("-max_len={max_len}"))
        .arg("-timeout=20")
        .arg("-rss_limit_mb=4096")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&corpus)
        .args(&seeds)
        .status()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "fuzz {target}: a crash (see {}; replay with `{} FILE`)",
            artifacts.display(),
            bin.display()
        ))
    }
}
