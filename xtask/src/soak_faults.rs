//! `cargo xtask soak-faults [--steps N] [--judge isolation]`: issue 20's "holes found by the
//! machinery". The CLI is built with the kcore `mutants` feature; then `corevisor soak
//! --steps N` (default seed and settings, N = 100,000 by default) runs once on the healthy
//! core, which must exit 0, and once with each fault below planted (`COREVISOR_MUTANT`,
//! `COREVISOR_MUTANT_ARG`), which must exit 1 and write a shrunk scenario. Nobody told the
//! soak where to look: it generates its own sequences.
//!
//! With `--judge isolation` the soak fails a sequence only on a leak or tamper of the secrecy
//! oracle or an invariant broken on the core's own state (`image_signed` among them), never
//! on a difference from the model: the four holes must be found by checks that do not trust
//! the seed (the healthy soak is slower then: the core's state is abstracted every step).

use std::path::Path;
use std::process::Command;

/// The four holes put back, the ownership preconditions of SMMU_LPAE_MAP and of the host's
/// map path; every EL1 register dropped from the world switch is added below.
const FAULTS: [&str; 7] = [
    "host_maps_smmu_page",
    "clear_while_reachable",
    "image_block_unbound",
    "ioremap_smmu_window",
    "smmu_assign_skips_owner_check",
    "smmu_map_skips_owner_check",
    "map_skips_owner_check",
];

/// The EL1 registers of `crates/kcore/src/mutants.rs` `EL1_REGS` (read from the source, so
/// the list cannot drift).
fn el1_regs(root: &Path) -> Result<Vec<String>, String> {
    let f = root.join("crates/kcore/src/mutants.rs");
    let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
    let start = text
        .find("pub const EL1_REGS")
        .ok_or("mutants.rs: no EL1_REGS")?;
    let body = &text[start..];
    let end = body.find("];").ok_or("mutants.rs: EL1_REGS unterminated")?;
    let regs: Vec<String> = body[..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    if regs.len() < 20 {
        return Err(format!("mutants.rs: only {} EL1 registers", regs.len()));
    }
    Ok(regs)
}

pub fn soak_faults(root: &Path, args: &[String]) -> Result<(), String> {
    let mut steps = "100000".to_string();
    let mut judge = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--steps" => steps = it.next().ok_or("--steps needs a number")?.clone(),
            "--judge" => judge = Some(it.next().ok_or("--judge needs a value")?.clone()),
            _ => return Err(format!("soak-faults: unknown argument {a}")),
        }
    }
    crate::run(
        "cargo build --release -p corevisor --features mutants",
        crate::cargo().args([
            "build",
            "--release",
            "-p",
            "corevisor",
            "--features",
            "mutants",
        ]),
    )?;
    // Its own copy: another build of the workspace (without the feature) may replace
    // target/release/corevisor while the soaks run.
    let bin = root.join("target/soak-faults/corevisor");
    std::fs::create_dir_all(root.join("target/soak-faults"))
        .and_then(|_| std::fs::copy(root.join("target/release/corevisor"), &bin))
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let out_dir = root.join("target/soak-faults");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let soak = |fault: &str, arg: &str| -> Result<(bool, String), String> {
        let file = out_dir.join(format!(
            "{}{}.json",
            if fault.is_empty() { "healthy" } else { fault },
            if arg.is_empty() {
                String::new()
            } else {
                format!("-{arg}")
            }
        ));
        let mut c = Command::new(&bin);
        c.args(["soak", "--steps", &steps, "--out"])
            .arg(&file)
            .env("COREVISOR_MUTANT", fault)
            .env_remove("COREVISOR_MUTANT_ARG");
        if let Some(j) = &judge {
            c.args(["--judge", j]);
        }
        if !arg.is_empty() {
            c.env("COREVISOR_MUTANT_ARG", arg);
        }
        let out = c.output().map_err(|e| format!("{}: {e}", bin.display()))?;
        let last = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .to_string();
        let why = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| serde_json_description(&t))
            .unwrap_or_default();
        match out.status.code() {
            Some(0) => Ok((false, last)),
            Some(1) => Ok((true, format!("{last}\n      {why}"))),
            other => Err(format!(
                "soak with {fault} {arg}: exit {other:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    };
    println!("==> healthy core: corevisor soak --steps {steps} must exit 0");
    let (failed, last) = soak("", "")?;
    println!("    {last}");
    if failed {
        return Err("the healthy core failed the soak".into());
    }
    // Judged by isolation alone, the four holes: the other faults break refinement
    // without necessarily letting anyone into another's memory.
    let isolation = judge.as_deref() == Some("isolation");
    let mut planted: Vec<(String, String)> = FAULTS
        .iter()
        .take(if isolation { 4 } else { FAULTS.len() })
        .map(|f| (f.to_string(), String::new()))
        .collect();
    if !isolation {
        for r in el1_regs(root)? {
            planted.push(("world_switch_drops_el1_reg".into(), r));
        }
    }
    let mut missed = Vec::new();
    for (fault, arg) in &planted {
        println!("==> planted {fault} {arg}: corevisor soak --steps {steps} must exit 1");
        let (failed, what) = soak(fault, arg)?;
        println!("    {what}");
        if !failed {
            missed.push(format!("{fault} {arg}"));
        }
    }
    if !missed.is_empty() {
        return Err(format!("the soak did not find: {missed:?}"));
    }
    println!(
        "xtask soak-faults: the soak found all {} planted faults",
        planted.len()
    );
    Ok(())
}

/// The `description` of a scenario file the soak wrote (why its sequence failed).
fn serde_json_description(text: &str) -> Option<String> {
    let key = "\"description\":";
    let at = text.find(key)? + key.len();
    let rest = text[at..].trim_start().strip_prefix('"')?;
    let mut out = String::new();
    let mut escaped = false;
    for ch in rest.chars() {
        match (escaped, ch) {
            (false, '\\') => escaped = true,
            (false, '"') => break,
            _ => {
                escaped = false;
                out.push(ch);
            }
        }
        if out.len() > 300 {
            out.push('…');
            break;
        }
    }
    Some(out)
}
