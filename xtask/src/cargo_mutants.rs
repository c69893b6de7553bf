//! `cargo xtask cargo-mutants [--shard K/N] [--suites a,b,..] [--out DIR] [--iterate [--only S,..]]`:
//! cargo-mutants over `crates/kcore` (issue 10), tested by the checker's suites.
//!
//! cargo-mutants rewrites one function of kcore at a time (a body replaced by a default
//! value, an operator swapped, a condition negated...) and runs the tests: a mutant is
//! *caught* when a test fails, *missed* when all pass, *unviable* when it does not build.
//! kcore's real tests are the checker's (the core beside the model), so the tests run are
//! those of `corevisor-check` and kcore's own, limited to `--suites` (default [`SUITES`]).
//! `crates/kcore/src/mutants.rs` (the planted faults themselves) is left out. The sample
//! is shard K of N, round-robin over cargo-mutants' list (`0/11`: 163 of the 1,786).
//! Installs cargo-mutants from crates.io when missing. Prints the figure and the missed
//! mutants; the full outcome is in `DIR/mutants.out`.

use std::path::Path;
use std::process::Command;

/// The suites run against each mutant: every test suite of `crates/check` (the core beside
/// the model: scenarios and attacks in lockstep, random and steered sequences, hostile host,
/// noninterference, the memory operations' refinement, the SMMU, parallel CPUs, the QEMU
/// trace replay...) but the two that need the `mutants` feature (`mutants`,
/// `hostile_memory`: planted faults, `cargo xtask mutants`), and kcore's own.
const SUITES: [&str; 21] = [
    "attacks",
    "check_trace",
    "crypto_paths",
    "handlers",
    "hostile_host",
    "hypercall_boundaries",
    "locking",
    "lockstep",
    "lockstep_random",
    // Tests written for the survivors of the second sample (docs/assurance.md).
    "mutant_survivors",
    "noninterference",
    "quirks",
    "refinement_mem",
    "smmu_hostile_registers",
    "smmu_iotlb_wired",
    "smmu_registers",
    "threads",
    "units",
    // kcore's own: the region's plan, the `Hw` trait's provided methods, page export.
    "layout",
    "hw_defaults",
    "crypto",
];

pub fn cargo_mutants(root: &Path, args: &[String]) -> Result<(), String> {
    let mut shard = "0/11".to_string();
    let mut suites: Vec<String> = SUITES.iter().map(|s| s.to_string()).collect();
    let mut out = root.join("target/cargo-mutants");
    let mut iterate = false;
    let mut only: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a}: needs a value"));
        match a.as_str() {
            "--shard" => shard = value()?,
            "--suites" => suites = value()?.split(',').map(str::to_string).collect(),
            "--out" => out = value()?.into(),
            // Test again, by name, the mutants the last run in `--out` missed (after new
            // tests); their new outcomes replace the old in its lists.
            "--iterate" => iterate = true,
            // With `--iterate`: only the missed mutants whose names contain one of these.
            "--only" => only = value()?.split(',').map(str::to_string).collect(),
            _ => return Err(format!("cargo-mutants: unknown option {a}")),
        }
    }
    install()?;
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let sample = out.join("mutants.out");
    // `--iterate`: the sample's missed mutants, by name (cargo-mutants' own `--iterate`
    // re-shards what is left, which tests a different sample).
    let again = if iterate {
        let missed: Vec<String> = lines(&sample, "missed.txt")
            .into_iter()
            .filter(|n| only.is_empty() || only.iter().any(|o| n.contains(o.as_str())))
            .collect();
        if missed.is_empty() {
            return Err(format!(
                "{}: no missed mutants to test again",
                sample.display()
            ));
        }
        Some(missed)
    } else {
        None
    };
    let mut c = super::cargo();
    c.args([
        "mutants",
        "-p",
        "corevisor-kcore",
        // (`--test-package X` as two arguments was not applied by cargo-mutants 27.)
        "--test-package=corevisor-kcore,corevisor-check",
    ])
    .args(["--exclude", "crates/kcore/src/mutants.rs"])
    // The baseline is skipped: cargo-mutants 27 runs it with the mutated package's own
    // tests, not `--test-package`'s (so `--test=lockstep` fails there). The same suites
    // pass on the healthy tree in `cargo xtask test`; a mutant's tests get 240 s (they take about 90 s).
    .args(["--profile", "mutants", "--baseline", "skip"])
    .args(["--timeout", "240", "--build-timeout", "900", "--no-shuffle"]);
    match &again {
        None => {
            c.args(["--shard", &shard])
                // Mutant i goes to shard i mod N: a sample spread over every file (the
                // default, "slice", gives shard 0 the first files of the list alone).
                .args(["--sharding", "round-robin"])
                .arg("--output")
                .arg(&out);
        }
        Some(names) => {
            for n in names {
                c.arg(format!("--re={}", regex_escape(n)));
            }
            c.arg("--output").arg(out.join("again"));
        }
    }
    for s in &suites {
        c.arg(format!("--cargo-test-arg=--test={s}"));
    }
    println!("==> cargo mutants over crates/kcore, shard {shard}, suites {suites:?}");
    // cargo-mutants exits 2 when some mutant was missed, 3 on timeouts: the figure below
    // is the result either way; a failed baseline (4) or usage error (1) is not.
    let status = c.status().map_err(|e| format!("cargo mutants: {e}"))?;
    if matches!(status.code(), Some(1) | Some(4) | None) {
        return Err(format!("cargo mutants failed: {status}"));
    }
    if let Some(names) = again {
        merge(&sample, &out.join("again/mutants.out"), &names)?;
    }
    report(&sample)
}

/// The mutant names of list `file` of a cargo-mutants output directory.
fn lines(dir: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(file))
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// `name` as a regex matching itself.
fn regex_escape(name: &str) -> String {
    let mut r = String::new();
    for ch in name.chars() {
        if "\\.+*?()|[]{}^$".contains(ch) {
            r.push('\\');
        }
        r.push(ch);
    }
    r
}

/// The sample's lists after testing `names` (its missed mutants) again: each moves to the
/// list of its new outcome (cargo-mutants also tests a few mutants `--re` does not select,
/// which are ignored). The names tested again are kept in `retested.txt`.
fn merge(sample: &Path, again: &Path, names: &[String]) -> Result<(), String> {
    let write = |f: &str, v: &[String]| {
        let mut t = v.join("\n");
        if !t.is_empty() {
            t.push('\n');
        }
        std::fs::write(sample.join(f), t).map_err(|e| format!("{f}: {e}"))
    };
    write("retested.txt", names)?;
    let mut missed = Vec::new();
    for f in ["caught.txt", "timeout.txt", "unviable.txt"] {
        let now = lines(again, f);
        let mut list = lines(sample, f);
        list.extend(names.iter().filter(|n| now.contains(n)).cloned());
        write(f, &list)?;
    }
    let still = lines(again, "missed.txt");
    missed.extend(names.iter().filter(|n| still.contains(n)).cloned());
    let untested: Vec<&String> = names
        .iter()
        .filter(|n| {
            ["caught.txt", "timeout.txt", "unviable.txt", "missed.txt"]
                .iter()
                .all(|f| !lines(again, f).contains(n))
        })
        .collect();
    if !untested.is_empty() {
        return Err(format!("not tested again: {untested:?}"));
    }
    // Missed mutants `--only` left out stay missed.
    let before = lines(sample, "missed.txt");
    let mut kept: Vec<String> = before.into_iter().filter(|n| !names.contains(n)).collect();
    kept.extend(missed);
    write("missed.txt", &kept)
}

fn install() -> Result<(), String> {
    let have = super::cargo()
        .args(["mutants", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if have {
        return Ok(());
    }
    println!("==> installing cargo-mutants from crates.io (cargo install cargo-mutants --locked)");
    let ok = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "cargo-mutants", "--locked"])
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(())
        .ok_or_else(|| "cargo install cargo-mutants failed".into())
}

/// Caught / missed / unviable / timeout, from cargo-mutants' list files.
fn report(dir: &Path) -> Result<(), String> {
    let (caught, missed, unviable, timeout) = (
        lines(dir, "caught.txt"),
        lines(dir, "missed.txt"),
        lines(dir, "unviable.txt"),
        lines(dir, "timeout.txt"),
    );
    let viable = caught.len() + missed.len() + timeout.len();
    let pct = |n: usize| 100.0 * n as f64 / viable.max(1) as f64;
    println!(
        "cargo-mutants: {} caught, {} missed, {} timeout, {} unviable; caught {:.1}% of {} viable (timeouts count as caught: {:.1}%)",
        caught.len(),
        missed.len(),
        timeout.len(),
        unviable.len(),
        pct(caught.len()),
        viable,
        pct(caught.len() + timeout.len())
    );
    for m in &missed {
        println!("  missed: {m}");
    }
    Ok(())
}
