//! `cargo xtask qemu`: KCore at EL2 on QEMU `virt` (docs/el2.md).
//!
//! Installs QEMU when missing (scripts/install-qemu.sh), builds the EL2 workspace
//! (scripts/el2-build.sh: the traced image `kcore-el2` and the production image
//! `kcore-el2-prod`, built without the trace), makes the guest bundle (the guest's 64 KiB
//! image, signed with the simulator's development key), boots the traced KCore with the host
//! stub and the bundle on a Cortex-A57 and on `-cpu max` (2 CPUs, 2 GiB, `-icount shift=0`),
//! then the production KCore on the first of those CPUs, and checks each console: every line
//! must be one KCore, the host or (traced) the trace prints, the run must end with KCore's
//! halt on the host's read of VM memory, and everything the demo must show must be there.
//! Writes the traces (`target/qemu-trace.jsonl`, and `-max` for the second CPU), replays each
//! through the reference model (`corevisor check-trace`: every entry must agree) and prints a
//! summary with the `el2-counts` line (the production image's counts) and the
//! `el2-counts-traced` line (the traced image's, first CPU).

use el2_abi::{bundle, map};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The CPUs every traced run boots on; the production image boots on the first one, whose
/// counts are the `el2-counts` line (the traced image's there: `el2-counts-traced`).
pub(crate) const CPUS: [&str; 2] = ["cortex-a57", "max"];
/// Wall-clock limit of one QEMU run.
pub(crate) const TIMEOUT_S: u64 = 150;
/// The counts' targets (issue 12), against the production image.
const NULL_HVC_TARGET: u64 = 300;
/// A guest trap handled inside EL2 (exit and resume, no host): `vm_trap_el2`, formerly
/// `world_switch`.
const VM_TRAP_TARGET: u64 = 600;

/// The two builds of the KCore image (el2/Cargo.toml, feature `trace`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Image {
    /// Every entry recorded on the console: the run check-trace replays (`kcore-el2`).
    Traced,
    /// The same KCore without the recorder (`kcore-el2-prod`): the figures a production
    /// hypervisor, which streams no per-entry trace, would give.
    Production,
}

impl Image {
    fn file(self) -> &'static str {
        match self {
            Image::Traced => "kcore-el2",
            Image::Production => "kcore-el2-prod",
        }
    }
}

pub fn qemu(root: &Path, args: &[String]) -> Result<(), String> {
    let cpus: Vec<&str> = match args.first().map(String::as_str) {
        None => CPUS.to_vec(),
        Some("--mutants") => return super::qemu_mutants::qemu_mutants(root),
        Some("--cpu") => vec![args
            .get(1)
            .map(String::as_str)
            .ok_or("--cpu needs a value")?],
        Some(a) => {
            return Err(format!(
                "qemu: unknown argument {a} (usage: cargo xtask qemu [--cpu NAME | --mutants])"
            ))
        }
    };
    install_and_build(root)?;
    let bin = root.join("el2/target/aarch64-unknown-none-softfloat/release");
    let out = root.join("target/qemu");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let bundle_path = out.join("guest.bundle");
    let image = make_bundle(&bin.join("guest"), &bundle_path)?;
    println!(
        "==> guest bundle: {} bytes at {:#x}, signed with the development key -> {}",
        image,
        map::GUEST_LOAD,
        bundle_path.display()
    );
    let mut summaries = Vec::new();
    for cpu in &cpus {
        let s = boot(root, &bin, &bundle_path, cpu, Image::Traced)?;
        summaries.push((cpu.to_string(), s));
    }
    // The production image: the same host stub and measurements, no trace.
    let prod_cpu = cpus[0];
    let prod = boot(root, &bin, &bundle_path, prod_cpu, Image::Production)?;
    // Every trace replayed through the model: KCore on hardware must agree with the
    // specification at every entry (docs/el2.md, "check-trace").
    let mut failed = Vec::new();
    for (cpu, s) in summaries.iter_mut() {
        let Some(trace) = s.trace.clone() else {
            continue;
        };
        match check_trace(root, &trace) {
            Ok(line) => {
                println!("    -cpu {cpu}: {line}");
                s.check = line;
            }
            Err(e) => {
                println!("    -cpu {cpu}: {e}");
                failed.push(format!("-cpu {cpu}: {e}"));
            }
        }
    }
    if !failed.is_empty() {
        return Err(format!(
            "the QEMU trace disagrees with the model: {}",
            failed.join("; ")
        ));
    }
    println!();
    println!("qemu summary (-M virt,virtualization=on -smp 2 -m 2G -icount shift=0):");
    println!(
        "  production image ({}, no trace) on -cpu {prod_cpu}: {} s",
        Image::Production.file(),
        prod.secs
    );
    print_outcomes(&prod);
    let n = |k: &str| {
        prod.counts
            .get(k)
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX)
    };
    println!("el2-counts: {}", prod.counts_line);
    if let Some((cpu, s)) = summaries.first() {
        println!("el2-counts-traced: {}", s.counts_line);
        println!(
            "    (the traced figures: {}, -cpu {cpu})",
            Image::Traced.file()
        );
    }
    println!(
        "    targets (production image): null_hvc {} <= {NULL_HVC_TARGET}: {}; vm_trap_el2 {} <= {VM_TRAP_TARGET}: {}",
        n("null_hvc"),
        if n("null_hvc") <= NULL_HVC_TARGET { "met" } else { "missed" },
        n("vm_trap_el2"),
        if n("vm_trap_el2") <= VM_TRAP_TARGET { "met" } else { "missed" },
    );
    for (i, (cpu, s)) in summaries.iter().enumerate() {
        println!(
            "  traced image ({}) on -cpu {cpu}: {} s, {} KCore entries traced -> {}",
            Image::Traced.file(),
            s.secs,
            s.entries,
            s.trace
                .as_deref()
                .map_or(String::new(), |t| t.display().to_string())
        );
        print_outcomes(s);
        println!("    {}", s.check);
        println!("    {}", s.kinds);
        if i > 0 {
            println!("    counts on -cpu {cpu} (traced): {}", s.counts_line);
        }
    }
    Ok(())
}

/// QEMU installed when missing, and the EL2 workspace built (both images, host stub, guest).
pub(crate) fn install_and_build(root: &Path) -> Result<(), String> {
    super::run(
        "QEMU (Debian's qemu-system-arm, bookworm-backports)",
        Command::new("bash")
            .arg(root.join("scripts/install-qemu.sh"))
            .current_dir(root),
    )?;
    super::run(
        "EL2 build (KCore image traced and production, host stub, guest)",
        Command::new("bash")
            .arg(root.join("scripts/el2-build.sh"))
            .current_dir(root),
    )
}

/// What a run's console showed of the demo and the attacks.
fn print_outcomes(s: &Summary) {
    println!("    {}", s.checksum);
    println!("    {}", s.tampered);
    println!("    {}", s.attack);
    println!("    {}", s.halt);
}

/// The guest's loadable bytes as one image of exactly GUEST_IMAGE_BYTES at GUEST_LOAD,
/// signed, behind the bundle header (el2_abi::bundle). Returns the image size.
pub(crate) fn make_bundle(elf: &Path, out: &Path) -> Result<usize, String> {
    let e = std::fs::read(elf).map_err(|x| format!("{}: {x}", elf.display()))?;
    let size = el2_abi::GUEST_IMAGE_BYTES as usize;
    let mut image = vec![0u8; size];
    let rd = |at: usize, n: usize| -> Result<u64, String> {
        let b = e
            .get(at..at + n)
            .ok_or_else(|| format!("{}: truncated ELF", elf.display()))?;
        let mut w = [0u8; 8];
        w[..n].copy_from_slice(b);
        Ok(u64::from_le_bytes(w))
    };
    if e.get(..4) != Some(b"\x7fELF".as_slice()) || e.get(4) != Some(&2) || rd(18, 2)? != 183 {
        return Err(format!("{}: not an AArch64 ELF64", elf.display()));
    }
    let (phoff, phentsize, phnum) = (rd(0x20, 8)? as usize, rd(0x36, 2)? as usize, rd(0x38, 2)?);
    for i in 0..phnum as usize {
        let ph = phoff + i * phentsize;
        if rd(ph, 4)? != 1 {
            continue; // not PT_LOAD
        }
        let (off, paddr, filesz, memsz) = (
            rd(ph + 8, 8)? as usize,
            rd(ph + 24, 8)?,
            rd(ph + 32, 8)? as usize,
            rd(ph + 40, 8)? as usize,
        );
        let at = paddr
            .checked_sub(map::GUEST_LOAD)
            .map(|a| a as usize)
            .filter(|a| a + memsz <= size)
            .ok_or_else(|| {
                format!(
                    "{}: segment at {paddr:#x} outside the 64 KiB image",
                    elf.display()
                )
            })?;
        let src = e
            .get(off..off + filesz)
            .ok_or_else(|| format!("{}: truncated segment", elf.display()))?;
        image[at..at + filesz].copy_from_slice(src);
    }
    let sig = corevisor_sim::signing::sign_image(&[(map::GUEST_LOAD, &image)]);
    // The signature must pass KCore's own check before a QEMU run relies on it.
    let mut d = corevisor_kcore::crypto::ImageDigest::new();
    d.segment(map::GUEST_LOAD, size as u64);
    d.update(&image);
    if !corevisor_kcore::crypto::verify_image(&corevisor_kcore::crypto::IMAGE_PUBKEY, d, &sig) {
        return Err("the development key's signature does not verify with KCore's key".into());
    }
    let mut b = vec![0u8; bundle::IMAGE_OFFSET as usize];
    let header = [
        bundle::MAGIC,
        map::GUEST_LOAD,
        size as u64,
        bundle::DEMO_ENTRY,
        bundle::BENCH_ENTRY,
    ];
    for (i, w) in header.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    let s = bundle::SIG_OFFSET as usize;
    b[s..s + 64].copy_from_slice(&sig);
    b.extend_from_slice(&image);
    std::fs::write(out, &b).map_err(|x| format!("{}: {x}", out.display()))?;
    Ok(size)
}

/// `corevisor check-trace FILE` (the release binary: a Linux boot is 170,000 entries): its
/// summary line, or why it failed (exit 1: the first disagreeing entry; 2: malformed).
pub(crate) fn check_trace(root: &Path, trace: &Path) -> Result<String, String> {
    let (status, text) = run_check_trace(root, trace)?;
    if status == Some(0) && text.starts_with("check-trace: ") {
        // KCore's final state must have been compared too (the trace's final line).
        if !text.contains("final state digest agrees") {
            return Err(format!("the trace gives no final state digest: {text}"));
        }
        Ok(text)
    } else {
        Err(format!(
            "corevisor check-trace failed (exit status {status:?}): {text}"
        ))
    }
}

/// `corevisor check-trace FILE`: its exit status and what it printed (one line).
pub(crate) fn run_check_trace(root: &Path, trace: &Path) -> Result<(Option<i32>, String), String> {
    println!("==> corevisor check-trace {}", trace.display());
    let out = super::cargo()
        .args([
            "run",
            "--release",
            "-q",
            "-p",
            "corevisor",
            "--",
            "check-trace",
        ])
        .arg(trace)
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run corevisor check-trace: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code(), text.trim().to_string()))
}

/// What one run showed.
struct Summary {
    secs: u64,
    /// KCore entries traced (0 for the production image).
    entries: usize,
    /// Where its trace was written (none for the production image).
    trace: Option<PathBuf>,
    /// `corevisor check-trace`'s line for the trace.
    check: String,
    checksum: String,
    tampered: String,
    attack: String,
    halt: String,
    counts_line: String,
    counts: serde_json::Map<String, Value>,
    /// How many kinds of entry the trace has, each also outside the measured loops.
    kinds: String,
}

fn boot(
    root: &Path,
    bin: &Path,
    bundle: &Path,
    cpu: &str,
    image: Image,
) -> Result<Summary, String> {
    let out = root.join("target/qemu");
    let (console, trace) = match image {
        Image::Traced => (
            out.join(format!("console-{cpu}.log")),
            // target/qemu-trace.jsonl for the first CPU, target/qemu-trace-CPU.jsonl else.
            Some(root.join("target").join(if cpu == CPUS[0] {
                "qemu-trace.jsonl".to_string()
            } else {
                format!("qemu-trace-{cpu}.jsonl")
            })),
        ),
        Image::Production => (out.join(format!("console-prod-{cpu}.log")), None),
    };
    let qemu_args = qemu_args(&out, bin, bundle, cpu, &bin.join(image.file()));
    println!(
        "==> qemu-system-aarch64 {} (timeout {TIMEOUT_S} s)",
        qemu_args.join(" ")
    );
    let start = Instant::now();
    let (status, text) = run_qemu(&qemu_args, &console)?;
    let secs = start.elapsed().as_secs();
    let r = check(&text, status.code(), trace.as_deref());
    match r {
        Ok(mut s) => {
            s.secs = secs;
            println!(
                "    -cpu {cpu} ({}): console checked ({} lines, {secs} s) -> {}",
                image.file(),
                text.lines().count(),
                console.display()
            );
            Ok(s)
        }
        Err(errors) => {
            for e in errors.iter().take(20) {
                println!("    {e}");
            }
            if status.code() == Some(124) || secs >= TIMEOUT_S {
                println!("    (QEMU was stopped by the {TIMEOUT_S} s timeout)");
            }
            Err(format!(
                "-cpu {cpu} ({}): {} problem(s) in the QEMU run; console in {}",
                image.file(),
                errors.len(),
                console.display()
            ))
        }
    }
}

/// Runs QEMU with `args` under the timeout, its console (stdout and stderr) into `console`:
/// its exit status and the console's text.
pub(crate) fn run_qemu(
    args: &[String],
    console: &Path,
) -> Result<(std::process::ExitStatus, String), String> {
    let log = std::fs::File::create(console).map_err(|e| format!("{}: {e}", console.display()))?;
    let status = Command::new("timeout")
        .arg(TIMEOUT_S.to_string())
        .arg("qemu-system-aarch64")
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .status()
        .map_err(|e| format!("cannot start qemu-system-aarch64: {e}"))?;
    let text =
        std::fs::read_to_string(console).map_err(|e| format!("{}: {e}", console.display()))?;
    Ok((status, text))
}

/// The QEMU command line of a run on `cpu` with KCore image `kernel` (consoles in `out`).
pub(crate) fn qemu_args(
    out: &Path,
    bin: &Path,
    bundle: &Path,
    cpu: &str,
    kernel: &Path,
) -> Vec<String> {
    vec![
        "-M".into(),
        "virt,virtualization=on".into(),
        "-cpu".into(),
        cpu.into(),
        "-smp".into(),
        "2".into(),
        "-m".into(),
        "2G".into(),
        // Two PL011s: the first is the host's (the stub prints through KCore's console
        // service instead), the second KCore's console, read here.
        "-display".into(),
        "none".into(),
        "-monitor".into(),
        "none".into(),
        "-serial".into(),
        format!("file:{}", out.join(format!("host-{cpu}.log")).display()),
        "-serial".into(),
        "stdio".into(),
        "-nic".into(),
        "none".into(),
        "-no-reboot".into(),
        "-icount".into(),
        "shift=0".into(),
        "-kernel".into(),
        kernel.display().to_string(),
        "-device".into(),
        format!("loader,file={}", bin.join("host-stub").display()),
        "-device".into(),
        format!(
            "loader,file={},addr={:#x},force-raw=on",
            bundle.display(),
            map::GUEST_BUNDLE
        ),
    ]
}

/// Checks a console (`exit`: QEMU's exit status) and writes its trace lines to `trace`; with
/// no `trace` (the production image) the console must have no trace line at all and end
/// with KCore's halt, and everything else is checked as for the traced image.
fn check(text: &str, exit: Option<i32>, trace: Option<&Path>) -> Result<Summary, Vec<String>> {
    let traced = trace.is_some();
    let mut errors = Vec::new();
    let mut trace_lines: Vec<&str> = Vec::new();
    let mut steps: Vec<Value> = Vec::new();
    let mut header = false;
    let mut fin: Option<Value> = None;
    let mut host: Vec<&str> = Vec::new();
    let mut kcore: Vec<&str> = Vec::new();
    let mut halts: Vec<&str> = Vec::new();
    let mut attack_at = None;
    let mut halt_at = None;
    // The first entry after the host began its measured loops.
    let mut measured_from = None;
    if exit != Some(0) {
        errors.push(format!(
            "QEMU exited with {exit:?} (expected 0: KCore powers the machine off)"
        ));
    }
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let at = n + 1;
        if line.is_empty() {
            continue;
        }
        if fin.is_some() {
            errors.push(format!(
                "line {at}: output after the final trace line: {line}"
            ));
            continue;
        }
        if !traced && halt_at.is_some() {
            errors.push(format!("line {at}: output after KCore's halt: {line}"));
            continue;
        }
        if !traced && line.starts_with('{') {
            errors.push(format!(
                "line {at}: a trace line from the production image (built without the trace): {}",
                line.get(..80).unwrap_or(line)
            ));
            continue;
        }
        if line.starts_with("{\"trace\":") {
            if header || !steps.is_empty() {
                errors.push(format!("line {at}: a second trace header"));
            }
            header = true;
            trace_lines.push(line);
        } else if line.starts_with("{\"seq\":") {
            match serde_json::from_str::<Value>(line) {
                Ok(v) => {
                    let seq = v["seq"].as_u64();
                    if seq != Some(steps.len() as u64) {
                        errors.push(format!(
                            "line {at}: trace seq {seq:?}, expected {}",
                            steps.len()
                        ));
                    }
                    if v.get("lost").is_some() {
                        errors.push(format!(
                            "line {at}: the entry lost untrusted values (buffer full)"
                        ));
                    }
                    steps.push(v);
                    trace_lines.push(line);
                }
                Err(e) => errors.push(format!("line {at}: trace line is not JSON ({e}): {line}")),
            }
        } else if line.starts_with("{\"glue\":") {
            // The glue's note of a CPU's bring-up (check-trace reads it).
            trace_lines.push(line);
        } else if line.starts_with("{\"final\":") {
            match serde_json::from_str::<Value>(line) {
                Ok(v) => fin = Some(v),
                Err(e) => errors.push(format!("line {at}: final line is not JSON ({e})")),
            }
            trace_lines.push(line);
        } else if let Some(h) = line.strip_prefix("[host] ") {
            if h.starts_with("measuring") && measured_from.is_none() {
                measured_from = Some(steps.len());
            }
            if h.starts_with("FAIL") {
                errors.push(format!("line {at}: the host stub failed: {h}"));
            }
            if h.starts_with("attack: reading VM") {
                attack_at = Some(at);
            }
            host.push(h);
        } else if let Some(k) = line.strip_prefix("[kcore] ") {
            kcore.push(k);
        } else if line.starts_with("KCORE HALT: ") {
            halt_at = Some(at);
            halts.push(line);
        } else if line.starts_with("KCORE PANIC: ") {
            errors.push(format!("line {at}: {line}"));
        } else {
            errors.push(format!("line {at}: unexpected console output: {line}"));
        }
    }
    if traced && !header {
        errors.push("no trace header".into());
    }
    // Every kind of entry the measured loops repeat must also happen outside them (issue
    // 22): the checked trace is not mostly one loop.
    if measured_from.is_none() {
        errors
            .push("the host never began its measured loops (no \"[host] measuring\" line)".into());
    }
    let split = measured_from.unwrap_or(steps.len()).min(steps.len());
    let (before, after) = steps.split_at(split);
    let kinds_before: std::collections::BTreeSet<String> = before.iter().map(entry_kind).collect();
    let kinds_after: std::collections::BTreeSet<String> = after.iter().map(entry_kind).collect();
    for k in kinds_after.difference(&kinds_before) {
        errors.push(format!(
            "entry kind {k} happens only after the host began measuring (no entry of it outside the measured loops)"
        ));
    }
    let kinds = format!(
        "{} kinds of entry, each one also outside the measured loops ({} entries before the first)",
        kinds_before.union(&kinds_after).count(),
        before.len()
    );
    let find = |v: &[&str], p: &str| v.iter().find(|l| l.starts_with(p)).map(|s| s.to_string());
    let checksum = find(&host, "guest checksum:");
    match &checksum {
        Some(c) if c.contains("matches the image") => {}
        _ => errors.push("no matching guest checksum from the host".into()),
    }
    let refused = kcore
        .iter()
        .filter(|l| l.contains("does not match its signature: refused"))
        .count();
    if refused != 1 {
        errors.push(format!(
            "{refused} images refused by KCore (expected exactly the tampered one)"
        ));
    }
    let verified = kcore
        .iter()
        .filter(|l| l.contains("signature: VERIFIED"))
        .count();
    if verified < 2 {
        errors.push(format!(
            "{verified} images verified (expected the demo's and the measured ones)"
        ));
    }
    let tampered = find(&host, "tampered image refused");
    if tampered.is_none() {
        errors.push("the host did not see its tampered image refused".into());
    }
    for p in [
        "psci: cpu 0 CPU_ON cpu 1",
        "psci: cpu 1 CPU_OFF",
        "cpu 1: up in KCore",
    ] {
        if find(&kcore, p).is_none() {
            errors.push(format!("no KCore line \"{p}...\" (the PSCI relay)"));
        }
    }
    if find(&host, "reclaimed VM").is_none() {
        errors.push("no reclaim of the demo VM".into());
    }
    let counts_line = find(&host, "el2-counts: ").map(|l| l["el2-counts: ".len()..].to_string());
    let counts = match counts_line.as_deref().map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(m))) => {
            for k in [
                "null_hvc",
                "vm_trap_el2",
                "vm_host_vm",
                "host_fault",
                "verify_64k",
                "sha512_64k",
            ] {
                if m.get(k).and_then(Value::as_u64).unwrap_or(0) == 0 {
                    errors.push(format!("el2-counts: no positive \"{k}\""));
                }
            }
            m
        }
        _ => {
            errors.push("no el2-counts line".into());
            Default::default()
        }
    };
    if host
        .iter()
        .filter(|l| l.starts_with("el2-counts: "))
        .count()
        > 1
    {
        errors.push("more than one el2-counts line".into());
    }
    // The end: the host reads VM memory, KCore halts in that entry, and that is the last.
    match (attack_at, halt_at) {
        (Some(a), Some(h)) if h > a => {}
        _ => errors
            .push("the run does not end with KCore halting on the host's read of VM memory".into()),
    }
    if halts.len() != 1 {
        errors.push(format!("{} KCORE HALT lines (expected 1)", halts.len()));
    }
    // KCore's own words on the end: the host's load, in host_npt_handler (both images).
    if let [h] = halts[..] {
        if !h.contains(" in host_npt_handler (HostLoad by the host") {
            errors.push(format!(
                "KCore halted elsewhere than on the host's load: {h}"
            ));
        }
    }
    // The trace: every entry, and what the demo must show in it.
    if let Some(trace) = trace {
        for (i, s) in steps.iter().enumerate() {
            let last = i + 1 == steps.len();
            let result = s["result"].as_str().unwrap_or("?");
            if !last && result != "ok" {
                errors.push(format!(
                    "trace seq {i}: result {result} before the end of the run"
                ));
            }
        }
        match steps.last() {
            Some(s)
                if s["result"] == "halt"
                    && s["entry"][0] == "host_npt_handler"
                    && s["principal"] == "host"
                    && s["action"] == "host_load" => {}
            _ => errors.push(
                "the last KCore entry is not the host's load halting in host_npt_handler".into(),
            ),
        }
        if !steps
            .iter()
            .any(|s| s["principal"] == "vm 1" && s["action"] == "guest_psci")
        {
            errors.push("VM 1 never powered itself off (no guest_psci exit)".into());
        }
        // The benchmark's pings (el2_abi::hvc::GUEST_PING) are the only unknown hypercalls
        // a healthy guest makes.
        let ping = format!("{:#x}", el2_abi::hvc::GUEST_PING);
        if steps
            .iter()
            .any(|s| s["action"] == "guest_hvc_other" && s["arguments"]["x0"] != ping.as_str())
        {
            errors.push("a guest made an unknown hypercall (its failure signal)".into());
        }
        for a in ["guest_store", "guest_wfx", "guest_sysreg"] {
            if !steps.iter().any(|s| s["action"] == a) {
                errors.push(format!("no {a} exit in the trace"));
            }
        }
        if !steps
            .iter()
            .any(|s| s["action"] == "guest_hvc" && s["arguments"]["op"] == "grant")
        {
            errors.push("no GRANT in the trace".into());
        }
        if !steps
            .iter()
            .any(|s| s["action"] == "guest_hvc" && s["arguments"]["op"] == "revoke")
        {
            errors.push("no REVOKE in the trace".into());
        }
        match &fin {
            Some(f) => {
                if f["final"]["halted"] != true {
                    errors.push("the final line says kcore did not halt".into());
                }
                if f["final"]["entries"].as_u64() != Some(steps.len() as u64) {
                    errors.push(format!(
                        "the final line counts {} entries, the console has {}",
                        f["final"]["entries"],
                        steps.len()
                    ));
                }
            }
            None => errors.push("no final trace line".into()),
        }
        let mut body = trace_lines.join("\n");
        body.push('\n');
        if let Err(e) = std::fs::write(trace, body) {
            errors.push(format!("{}: {e}", trace.display()));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Summary {
        secs: 0,
        entries: steps.len(),
        trace: trace.map(Path::to_path_buf),
        check: String::new(),
        checksum: checksum.unwrap_or_default(),
        tampered: tampered.unwrap_or_default(),
        attack: host
            .iter()
            .find(|l| l.starts_with("attack: reading VM"))
            .map(|s| s.to_string())
            .unwrap_or_default(),
        halt: halts[0].to_string(),
        counts_line: counts_line.unwrap_or_default(),
        counts,
        kinds,
    })
}

/// An entry's kind: its entry point, action and (a hypercall's) call.
fn entry_kind(v: &Value) -> String {
    let call = v["arguments"]["call"].as_str().unwrap_or("");
    format!(
        "{}/{}{}{}",
        v["entry"][0].as_str().unwrap_or("?"),
        v["action"].as_str().unwrap_or("?"),
        if call.is_empty() { "" } else { "/" },
        call
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: usize, action: &str, result: &str) -> String {
        format!(
            "{{\"seq\":{seq},\"cpu\":0,\"principal\":\"host\",\"entry\":[\"host_npt_handler\"],\"action\":\"{action}\",\"arguments\":{{}},\"result\":\"{result}\",\"x0\":null,\"rec\":[],\"core\":[]}}"
        )
    }

    const HALT: &str = "KCORE HALT: kcore halted (its defined panic) on cpu 0 in host_npt_handler (HostLoad by the host, result Halt); KCore stops the machine";

    /// A console with everything the check wants (not a real run: the check's own test).
    fn good() -> Vec<String> {
        let mut v = vec![
            "{\"trace\":\"corevisor\"}".to_string(),
            "[kcore] psci: cpu 0 CPU_ON cpu 1 at host entry 0x1 (relayed, KCore first)".into(),
            "[kcore] cpu 1: up in KCore".into(),
            "[kcore] VERIFY_VM_IMAGE: VM 1's image matches its Ed25519ph signature: VERIFIED".into(),
            "[kcore] VERIFY_VM_IMAGE: VM 2's image matches its Ed25519ph signature: VERIFIED".into(),
            "{\"seq\":0,\"cpu\":0,\"principal\":\"vm 1\",\"entry\":[\"vm_exit_handler\"],\"action\":\"guest_psci\",\"arguments\":{},\"result\":\"ok\",\"x0\":null,\"rec\":[],\"core\":[]}".into(),
            "{\"seq\":1,\"cpu\":0,\"principal\":\"vm 1\",\"entry\":[\"vm_exit_handler\"],\"action\":\"guest_store\",\"arguments\":{},\"result\":\"ok\",\"x0\":null,\"rec\":[],\"core\":[]}".into(),
            "{\"seq\":2,\"cpu\":0,\"principal\":\"vm 1\",\"entry\":[\"vm_exit_handler\"],\"action\":\"guest_wfx\",\"arguments\":{},\"result\":\"ok\",\"x0\":null,\"rec\":[],\"core\":[]}".into(),
            "{\"seq\":3,\"cpu\":0,\"principal\":\"vm 1\",\"entry\":[\"vm_exit_handler\"],\"action\":\"guest_sysreg\",\"arguments\":{},\"result\":\"ok\",\"x0\":null,\"rec\":[],\"core\":[]}".into(),
            "{\"seq\":4,\"cpu\":0,\"principal\":\"vm 1\",\"entry\":[\"vm_exit_handler\"],\"action\":\"guest_hvc\",\"arguments\":{\"op\":\"grant\"},\"result\":\"ok\",\"x0\":null,\"rec\":[],\"core\":[]}".into(),
            "{\"seq\":5,\"cpu\":0,\"principal\":\"vm 1\",\"entry\":[\"vm_exit_handler\"],\"action\":\"guest_hvc\",\"arguments\":{\"op\":\"revoke\"},\"result\":\"ok\",\"x0\":null,\"rec\":[],\"core\":[]}".into(),
            line(6, "host_load", "ok"),
            "[host] measuring 10 host stage-2 faults".into(),
            "[host] guest checksum: vCPU 0 on cpu 0 0x1, vCPU 1 on cpu 1 0x1: matches the image (0x1)".into(),
            "[kcore] psci: cpu 1 CPU_OFF (relayed)".into(),
            "[host] reclaimed VM 1: scrubbed".into(),
            "[host] el2-counts: {\"null_hvc\":1,\"vm_trap_el2\":2,\"vm_host_vm\":6,\"host_fault\":3,\"verify_64k\":4,\"sha512_64k\":5}".into(),
            "[kcore] VERIFY_VM_IMAGE: VM 3's image does not match its signature: refused, the VM is powered off".into(),
            "[host] tampered image refused: VM 3".into(),
            "[host] attack: reading VM 4's image page at 0x1 (KCore must halt)".into(),
        ];
        v.push(line(7, "host_load", "halt"));
        v.push(HALT.into());
        v.push("{\"final\":{\"halted\":true,\"entries\":8,\"end\":\"kcore halted\"}}".into());
        v
    }

    fn run(lines: &[String], exit: Option<i32>) -> Result<Summary, Vec<String>> {
        let t = std::env::temp_dir().join(format!("xtask-qemu-check-{}.jsonl", std::process::id()));
        let r = check(&lines.join("\n"), exit, Some(&t));
        let _ = std::fs::remove_file(&t);
        r
    }

    /// The production image's console: the traced one without its trace lines.
    fn good_production() -> Vec<String> {
        good().into_iter().filter(|l| !l.starts_with('{')).collect()
    }

    fn run_production(lines: &[String], exit: Option<i32>) -> Result<Summary, Vec<String>> {
        check(&lines.join("\n"), exit, None)
    }

    #[test]
    fn a_complete_console_passes() {
        let s = run(&good(), Some(0)).expect("passes");
        assert_eq!(s.entries, 8);
        assert!(s.kinds.starts_with("6 kinds of entry"), "{}", s.kinds);
        assert_eq!(s.counts["verify_64k"], 4);
    }

    /// An entry kind first seen after the host began measuring fails the check (issue 22:
    /// every kind the loops repeat also happens outside them).
    #[test]
    fn a_kind_of_entry_only_in_the_measured_loops_fails() {
        let g = good();
        let at = g.iter().position(|l| l.contains("guest_sysreg")).unwrap();
        let mut v = g.clone();
        v.insert(at, "[host] measuring 10 guest exits".into());
        let Err(e) = run(&v, Some(0)) else {
            panic!("a kind seen only in the loops passed");
        };
        assert!(
            e.iter()
                .any(|m| m.contains("vm_exit_handler/guest_sysreg happens only after")),
            "{e:?}"
        );
    }

    #[test]
    fn every_missing_or_stray_line_fails() {
        // Dropping any one line, or adding a stray one, must fail the check.
        let g = good();
        for i in 0..g.len() {
            let mut v = g.clone();
            v.remove(i);
            assert!(
                run(&v, Some(0)).is_err(),
                "passed without line {i}: {}",
                g[i]
            );
        }
        let mut v = g.clone();
        v.insert(3, "garbage from nowhere".into());
        assert!(run(&v, Some(0)).is_err());
        let mut v = g.clone();
        v.insert(12, "[host] FAIL: something".into());
        assert!(run(&v, Some(0)).is_err());
        assert!(run(&g, Some(124)).is_err(), "a timeout must fail");
        let mut v = g.clone();
        v[8] = v[8].replace("\"ok\"", "\"halt\"");
        assert!(run(&v, Some(0)).is_err(), "an early halt must fail");
    }

    #[test]
    fn a_production_console_passes_without_a_trace_and_fails_with_one() {
        let g = good_production();
        let s = run_production(&g, Some(0)).expect("passes");
        assert_eq!(s.entries, 0);
        assert!(s.trace.is_none());
        assert_eq!(s.counts["null_hvc"], 1);
        // Any one line missing, a trace line, output after the halt, a halt elsewhere.
        for i in 0..g.len() {
            let mut v = g.clone();
            v.remove(i);
            assert!(
                run_production(&v, Some(0)).is_err(),
                "passed without line {i}: {}",
                g[i]
            );
        }
        assert!(
            run_production(&good(), Some(0)).is_err(),
            "a traced console is not the production image's"
        );
        assert!(run(&g, Some(0)).is_err(), "a traced run needs its trace");
        let mut v = g.clone();
        v.insert(2, good()[5].clone());
        assert!(run_production(&v, Some(0)).is_err());
        let mut v = g.clone();
        v.push("[kcore] after the end".into());
        assert!(run_production(&v, Some(0)).is_err());
        let mut v = g.clone();
        let last = v.len() - 1;
        v[last] = v[last].replace("host_npt_handler", "host_hvc_handler");
        assert!(run_production(&v, Some(0)).is_err());
        assert!(
            run_production(&g, Some(124)).is_err(),
            "a timeout must fail"
        );
    }
}
