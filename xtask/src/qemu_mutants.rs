//! `cargo xtask qemu --mutants` (issue 22): check-trace must find kcore's named faults in
//! the traces of EL2 images built with them (kcore's `mutants-el2`: the fault chosen when
//! the image is built), and agree with the healthy image's trace.
//!
//! For each fault below: `EL2_MUTANT=<fault> scripts/el2-build.sh` builds the traced image
//! with it (`kcore-el2-mutant`), QEMU boots it with the host stub and the guest on
//! `-cpu cortex-a57`, and `corevisor check-trace` must exit 1 (a mismatch, not a malformed
//! trace) naming the field the fault shows in. The console itself is not judged (a fault may
//! well make the host stub fail), except that it must say which fault the image carries.
//! A run the fault cuts short (no final line) gets one here, saying so, so that the entries
//! it did give are replayed.

use crate::qemu::{self, CPUS, TIMEOUT_S};
use std::path::Path;
use std::process::Command;

/// The planted EL2 faults and the field check-trace must name for each.
pub const EL2_FAULTS: [(&str, &str); 5] = [
    // The guest's first run: KCore leaves the host's SCTLR_EL1 on the CPU.
    ("world_switch_forgets_sctlr", "regs.left.sctlr_el1"),
    // A run after the guest set D8: the host's FP/SIMD registers stay.
    ("fpsimd_not_restored", "regs.left.q"),
    // The guest's MMIO read: its result from the host's x9, not x8.
    (
        "mmio_results_from_x9",
        "input: value 0 of VM 1 (the host's x8",
    ),
    // Break-before-make without the invalidation.
    ("missed_tlbi", "tlbi: stage 2 of principal"),
    // One entry's record never written, the rest renumbered: a later entry gives the leaf
    // the dropped host fault mapped (or, failing that, the final state digest differs).
    ("trace_drops_entry", "stage 2 of principal 0"),
];

pub fn qemu_mutants(root: &Path) -> Result<(), String> {
    qemu::install_and_build(root)?;
    let bin = root.join("el2/target/aarch64-unknown-none-softfloat/release");
    let out = root.join("target/qemu");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let bundle = out.join("guest.bundle");
    qemu::make_bundle(&bin.join("guest"), &bundle)?;
    let cpu = CPUS[0];
    // The healthy image first: its trace must agree everywhere.
    let healthy = boot(root, &bin, &bundle, cpu, &bin.join("kcore-el2"), "healthy")?;
    let line =
        qemu::check_trace(root, &healthy).map_err(|e| format!("the healthy image's trace: {e}"))?;
    println!("    healthy image: {line}");
    let mut report = Vec::new();
    let mut missed = Vec::new();
    for (fault, field) in EL2_FAULTS {
        super::run(
            &format!("EL2 image with the planted fault {fault}"),
            Command::new("bash")
                .arg(root.join("scripts/el2-build.sh"))
                .env("EL2_MUTANT", fault)
                .current_dir(root),
        )?;
        let trace = boot(
            root,
            &bin,
            &bundle,
            cpu,
            &bin.join("kcore-el2-mutant"),
            fault,
        )?;
        let (status, text) = qemu::run_check_trace(root, &trace)?;
        let caught =
            status == Some(1) && text.contains("mismatch at entry") && text.contains(field);
        println!(
            "    {fault}: check-trace exit {status:?}{}: {text}",
            if caught { ", caught" } else { ", NOT CAUGHT" }
        );
        report.push(format!("{fault}: exit {}", status.unwrap_or(-1)));
        if !caught {
            missed.push(fault);
        }
    }
    println!("qemu-mutants: healthy exit 0; {}", report.join("; "));
    if !missed.is_empty() {
        return Err(format!(
            "check-trace did not report these planted EL2 faults as expected: {missed:?}"
        ));
    }
    println!("xtask qemu --mutants: check-trace found every planted EL2 fault, and agreed with the healthy image");
    Ok(())
}

/// Boots `kernel` (a traced image) and writes its trace to `target/qemu/mutant-NAME.jsonl`.
fn boot(
    root: &Path,
    bin: &Path,
    bundle: &Path,
    cpu: &str,
    kernel: &Path,
    name: &str,
) -> Result<std::path::PathBuf, String> {
    let out = root.join("target/qemu");
    let args = qemu::qemu_args(&out, bin, bundle, cpu, kernel);
    println!("==> qemu-system-aarch64 ({name}, -cpu {cpu}, timeout {TIMEOUT_S} s)");
    let console = out.join(format!("console-mutant-{name}.log"));
    let (_, text) = qemu::run_qemu(&args, &console)?;
    if name != "healthy" && !text.contains(&format!("planted fault(s) in this image: {name}")) {
        return Err(format!(
            "{}: the image does not say it carries {name}",
            console.display()
        ));
    }
    let mut lines: Vec<&str> = text.lines().filter(|l| l.starts_with('{')).collect();
    let cut;
    if !lines.iter().any(|l| l.starts_with("{\"final\":")) {
        let entries = lines.iter().filter(|l| l.starts_with("{\"seq\":")).count();
        cut = format!(
            "{{\"final\":{{\"halted\":false,\"entries\":{entries},\"end\":\"the run was cut short (no final line: written by xtask)\"}}}}"
        );
        lines.push(&cut);
    }
    let trace = out.join(format!("mutant-{name}.jsonl"));
    std::fs::write(&trace, lines.join("\n") + "\n")
        .map_err(|e| format!("{}: {e}", trace.display()))?;
    Ok(trace)
}
