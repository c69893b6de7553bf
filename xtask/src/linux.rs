//! `cargo xtask linux [--cpu NAME]... [--quick]`: Debian's arm64 kernel as KCore's host
//! (issue 21, docs/linux-host.md).
//!
//! 1. Fetches `linux-image-cloud-arm64`'s kernel and `busybox-static` for arm64 with
//!    `apt-get download` under a private apt configuration (its own lists and cache in
//!    `target/linux/apt`: the machine's apt state is untouched), unpacks them with
//!    `dpkg-deb -x`, and caches them there.
//! 2. Builds an initramfs (newc cpio) whose `/init` is `el2/linux/init`, and the boot bundle
//!    KCore reads (`el2_abi::linux`: command line, initramfs).
//! 3. For each CPU model, boots the traced KCore with Linux as its host (`-smp 2 -m 2G
//!    -icount shift=0`, GICv2; the first PL011 the host's, the second KCore's): the init
//!    hashes a 64 MiB file on both CPUs and touches fresh RAM, then starts a shell, where
//!    this task types a read of KCore's region with `devmem`: KCore must halt. Every console
//!    line it expects is checked, and the trace is replayed through the model
//!    (`corevisor check-trace`: every entry must agree, at least `MIN_ENTRIES`).
//! 4. On the first CPU model: a second boot types a write instead (the production image),
//!    and the boot cost: instructions from reset to the shell with the production KCore and
//!    with the same kernel and initramfs entered at EL1 by QEMU (`virtualization=off`),
//!    counted by the `qemu-icount` plugin, as a ratio.
//!
//! Prints a summary and `linux-host: {"cpus":2,"entries":N,"mismatches":0,"boot_ratio":R}`.

use el2_abi::{linux, map};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The CPU models `cargo xtask linux` boots on; `--quick` (CI) the first only.
const CPUS: [&str; 3] = ["cortex-a57", "cortex-a72", "max"];
/// Wall-clock limit of one boot.
const TIMEOUT_S: u64 = 900;
/// The least number of KCore entries a traced boot must give check-trace.
const MIN_ENTRIES: u64 = 100_000;
/// MiB of fresh RAM the init fills after the workload (host stage-2 faults).
const TOUCH_MIB: u64 = 512;
/// The kernel command line (the host's console is the first PL011).
/// (`panic=-1`: a kernel panic resets the machine at once, through PSCI.)
const CMDLINE: &str = "console=ttyAMA0 earlycon=pl011,0x9000000 nokaslr rdinit=/init panic=-1";
/// The workload's file: "corevisor\n" repeated, 64 MiB (el2/linux/init).
const DATA_BYTES: usize = 64 << 20;
/// Where the host's RAM ends (KCore's region starts): what `mem=` gives the same kernel
/// entered without KCore, so both boots have the same RAM.
const HOST_MIB: u64 = (map::KCORE_BASE - map::RAM_BASE) >> 20;

/// What is typed at the host's shell, and how the run must end.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Attack {
    /// A read of KCore's region: KCore halts.
    Read,
    /// A write of KCore's region: KCore halts.
    Write,
    /// The host crashes itself (`sysrq c`: a NULL store in the kernel, an oops, a panic,
    /// `panic=-1`: PSCI SYSTEM_RESET): Linux's failure stays Linux's; KCore relays the
    /// reset and never halts.
    Crash,
}

impl Attack {
    fn command(self) -> String {
        match self {
            Attack::Read => format!("devmem {:#x} 64", map::KCORE_BASE),
            Attack::Write => format!("devmem {:#x} 64 0x6b636f7265", map::KCORE_BASE),
            Attack::Crash => "echo c > /proc/sysrq-trigger".into(),
        }
    }
    /// KCore's console line that must end the run.
    fn end(self) -> &'static str {
        match self {
            Attack::Read => "in host_npt_handler (HostLoad by the host, result Halt)",
            Attack::Write => "in host_npt_handler (HostStore by the host, result Halt)",
            Attack::Crash => "SYSTEM_RESET (relayed)",
        }
    }
    /// What the first typed line makes the host's console say.
    fn said(self) -> String {
        match self {
            Attack::Crash => "typed at the shell: the host crashes itself".into(),
            _ => format!(
                "typed at the shell: {} of KCore's region at {:#x}",
                self.name(),
                map::KCORE_BASE
            ),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Attack::Read => "read",
            Attack::Write => "write",
            Attack::Crash => "crash",
        }
    }
}

pub fn linux(root: &Path, args: &[String]) -> Result<(), String> {
    let mut cpus: Vec<String> = Vec::new();
    let mut quick = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cpu" => cpus.push(it.next().ok_or("--cpu needs a value")?.clone()),
            "--quick" => quick = true,
            _ => {
                return Err(format!(
                "linux: unknown argument {a} (usage: cargo xtask linux [--cpu NAME]... [--quick])"
            ))
            }
        }
    }
    if cpus.is_empty() {
        let n = if quick { 1 } else { CPUS.len() };
        cpus = CPUS[..n].iter().map(|s| s.to_string()).collect();
    }
    super::qemu::install_and_build(root)?;
    super::run(
        "the instruction-counting QEMU plugin (tools/qemu-icount)",
        super::cargo().args(["build", "--release", "-q", "-p", "qemu-icount"]),
    )?;
    let out = root.join("target/linux");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let debs = fetch(&out)?;
    let initramfs = out.join("initramfs.cpio");
    write_initramfs(root, &debs.busybox, &initramfs)?;
    let bundle = out.join("linux.bundle");
    write_bundle(
        &initramfs,
        &format!("{CMDLINE} corevisor.touch_mib={TOUCH_MIB}"),
        &bundle,
    )?;
    // The production image's attack boots skip the workload (the traced boots check it).
    let short_bundle = out.join("linux-short.bundle");
    write_bundle(
        &initramfs,
        &format!("{CMDLINE} corevisor.workload=skip"),
        &short_bundle,
    )?;
    let measure_bundle = out.join("linux-measure.bundle");
    write_bundle(
        &initramfs,
        &format!("{CMDLINE} corevisor.measure=boot"),
        &measure_bundle,
    )?;
    println!(
        "==> Linux {} ({}), busybox {}; initramfs {} bytes",
        debs.version,
        debs.image.display(),
        debs.busybox.display(),
        std::fs::metadata(&initramfs).map(|m| m.len()).unwrap_or(0)
    );
    let bin = root.join("el2/target/aarch64-unknown-none-softfloat/release");
    let expected = expected_sha256();
    let mut runs = Vec::new();
    for cpu in &cpus {
        let r = boot(
            root,
            &bin,
            &debs.image,
            &bundle,
            cpu,
            Attack::Read,
            true,
            &expected,
        )?;
        runs.push((cpu.clone(), r));
    }
    let first = cpus[0].as_str();
    let write = boot(
        root,
        &bin,
        &debs.image,
        &short_bundle,
        first,
        Attack::Write,
        false,
        &expected,
    )?;
    let crash = boot(
        root,
        &bin,
        &debs.image,
        &short_bundle,
        first,
        Attack::Crash,
        false,
        &expected,
    )?;
    let (under, faults) = measure_kcore(root, &bin, &debs.image, &measure_bundle, first)?;
    let direct = measure_direct(root, &debs.image, &initramfs, first)?;
    let ratio = under as f64 / direct as f64;
    println!();
    println!("linux summary (Debian's {} as KCore's host; -M virt,virtualization=on,gic-version=2 -smp 2 -m 2G -icount shift=0):", debs.version);
    for (cpu, r) in &runs {
        println!(
            "  -cpu {cpu}: booted to the shell in {} s on 2 CPUs; sha256 on both CPUs right; typed read of KCore's region ended in KCore's halt; {} KCore entries, {} mismatches with the model, {} host stage-2 faults",
            r.secs, r.entries, r.mismatches, r.faults
        );
    }
    println!(
        "  -cpu {first} (production image): typed write of KCore's region ended in KCore's halt ({} s)",
        write.secs
    );
    println!(
        "  -cpu {first} (production image): the host crashed itself (sysrq c, kernel panic); KCore relayed its SYSTEM_RESET and never halted ({} s)",
        crash.secs
    );
    println!(
        "  boot to the shell, instructions (qemu-icount, -cpu {first}): {under} under KCore (production image, {faults} host stage-2 faults), {direct} entered at EL1 by QEMU (virtualization=off, mem={HOST_MIB}M): {ratio:.3}x"
    );
    let entries = runs.iter().map(|(_, r)| r.entries).min().unwrap_or(0);
    let mismatches: u64 = runs.iter().map(|(_, r)| r.mismatches).sum();
    let concurrent: u64 = runs.iter().map(|(_, r)| r.concurrent).sum();
    // Two CPUs inside kcore at once (entry tickets): required of the full run, reported by
    // `--quick` (QEMU switches CPUs at time slices, so one boot may show none).
    if !quick && concurrent == 0 {
        return Err(format!(
            "no traced boot shows two CPUs inside kcore at once (entry tickets) on {}",
            cpus.join(", ")
        ));
    }
    println!(
        "linux-host: {{\"cpus\":2,\"entries\":{entries},\"mismatches\":{mismatches},\"boot_ratio\":{ratio:.3},\"concurrent\":{concurrent}}}"
    );
    Ok(())
}

/// The unpacked packages.
struct Debs {
    image: PathBuf,
    busybox: PathBuf,
    version: String,
}

/// Debian's arm64 cloud kernel and busybox-static, fetched once into `out/apt`.
fn fetch(out: &Path) -> Result<Debs, String> {
    let apt = out.join("apt");
    let root = out.join("debs");
    let found = find_kernel(&root);
    if let (Some((image, version)), true) = (found, root.join("bin/busybox").exists()) {
        println!("==> Debian packages: cached in {}", root.display());
        return Ok(Debs {
            image,
            busybox: root.join("bin/busybox"),
            version,
        });
    }
    // A fresh download folder: only this run's packages are unpacked.
    let _ = std::fs::remove_dir_all(apt.join("dl"));
    let _ = std::fs::remove_dir_all(&root);
    for d in ["lists/partial", "cache/archives/partial", "dl"] {
        std::fs::create_dir_all(apt.join(d)).map_err(|e| format!("{}: {e}", apt.display()))?;
    }
    let conf = apt.join("apt.conf");
    let a = apt.display();
    std::fs::write(
        &conf,
        format!(
            "APT::Architecture \"arm64\";\nAPT::Architectures {{ \"arm64\"; }};\nAPT::Sandbox::User \"root\";\nDir::State::Lists \"{a}/lists\";\nDir::State::status \"{a}/status\";\nDir::Cache \"{a}/cache\";\nDir::Etc::SourceList \"{a}/sources.list\";\nDir::Etc::SourceParts \"{a}/none\";\n"
        ),
    )
    .map_err(|e| format!("{}: {e}", conf.display()))?;
    std::fs::write(apt.join("status"), "").map_err(|e| e.to_string())?;
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    std::fs::write(
        apt.join("sources.list"),
        format!(
            "deb [arch=arm64 signed-by={keyring}] http://deb.debian.org/debian bookworm main\ndeb [arch=arm64 signed-by={keyring}] http://deb.debian.org/debian-security bookworm-security main\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let apt_get = |what: &str, args: &[&str]| {
        super::run(
            what,
            Command::new("apt-get")
                .args(args)
                .env("APT_CONFIG", &conf)
                .current_dir(apt.join("dl")),
        )
    };
    apt_get(
        "apt-get update (private arm64 configuration in target/linux/apt)",
        &["update", "-q"],
    )?;
    // The metapackage names the current kernel package.
    let depends = Command::new("apt-cache")
        .args(["depends", "linux-image-cloud-arm64"])
        .env("APT_CONFIG", &conf)
        .output()
        .map_err(|e| format!("apt-cache: {e}"))?;
    let text = String::from_utf8_lossy(&depends.stdout);
    let kernel = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .filter(|p| p.starts_with("linux-image-"))
        .ok_or_else(|| format!("linux-image-cloud-arm64 names no kernel package: {text}"))?
        .to_string();
    apt_get(
        &format!("apt-get download {kernel} busybox-static (arm64)"),
        &["download", "-q", &kernel, "busybox-static"],
    )?;
    for deb in std::fs::read_dir(apt.join("dl")).map_err(|e| e.to_string())? {
        let deb = deb.map_err(|e| e.to_string())?.path();
        if deb.extension().is_some_and(|x| x == "deb") {
            super::run(
                &format!("dpkg-deb -x {} {}", deb.display(), root.display()),
                Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
            )?;
        }
    }
    let (image, version) = find_kernel(&root).ok_or("the kernel package has no /boot/vmlinuz-*")?;
    Ok(Debs {
        image,
        busybox: root.join("bin/busybox"),
        version,
    })
}

/// `root/boot/vmlinuz-VERSION` (an uncompressed arm64 `Image` in Debian's arm64 packages).
fn find_kernel(root: &Path) -> Option<(PathBuf, String)> {
    std::fs::read_dir(root.join("boot")).ok()?.find_map(|e| {
        let p = e.ok()?.path();
        let v = p
            .file_name()?
            .to_str()?
            .strip_prefix("vmlinuz-")?
            .to_string();
        Some((p, v))
    })
}

/// The initramfs: busybox, `/init` (el2/linux/init), `/dev/console`, and empty mount points.
fn write_initramfs(root: &Path, busybox: &Path, out: &Path) -> Result<(), String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut c = Cpio::default();
    for d in ["bin", "dev", "proc", "sys", "tmp"] {
        c.entry(d, 0o040_755, &[], (0, 0));
    }
    // The console the kernel opens for init before any devtmpfs exists.
    c.entry("dev/console", 0o020_600, &[], (5, 1));
    c.entry("bin/busybox", 0o100_755, &read(busybox)?, (0, 0));
    c.entry(
        "init",
        0o100_755,
        &read(&root.join("el2/linux/init"))?,
        (0, 0),
    );
    c.entry("TRAILER!!!", 0, &[], (0, 0));
    std::fs::write(out, &c.bytes).map_err(|e| format!("{}: {e}", out.display()))
}

/// A "newc" cpio archive (the initramfs format, Linux's
/// Documentation/driver-api/early-userspace/buffer-format.rst).
#[derive(Default)]
struct Cpio {
    bytes: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
}

/// The boot bundle KCore reads at `map::LINUX_BUNDLE` (el2_abi::linux).
fn write_bundle(initramfs: &Path, cmdline: &str, out: &Path) -> Result<(), String> {
    let initrd = std::fs::read(initramfs).map_err(|e| format!("{}: {e}", initramfs.display()))?;
    if cmdline.len() as u64 >= linux::CMDLINE_MAX {
        return Err(format!("the command line is too long: {cmdline}"));
    }
    let mut b = vec![0u8; linux::INITRD_OFFSET as usize];
    b[0..8].copy_from_slice(&linux::MAGIC.to_le_bytes());
    b[8..16].copy_from_slice(&(initrd.len() as u64).to_le_bytes());
    b[16..24].copy_from_slice(&(cmdline.len() as u64).to_le_bytes());
    let c = linux::CMDLINE_OFFSET as usize;
    b[c..c + cmdline.len()].copy_from_slice(cmdline.as_bytes());
    b.extend_from_slice(&initrd);
    std::fs::write(out, &b).map_err(|e| format!("{}: {e}", out.display()))
}

/// The workload's expected sha256, computed here.
fn expected_sha256() -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let word = b"corevisor\n";
    let mut left = DATA_BYTES;
    while left > 0 {
        let n = left.min(word.len());
        h.update(&word[..n]);
        left -= n;
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What one boot showed.
struct Run {
    secs: u64,
    entries: u64,
    mismatches: u64,
    faults: u64,
    /// Host faults that entered kcore while another CPU's was inside (entry tickets).
    concurrent: u64,
}

/// One QEMU run: `args`, the host's console (first PL011, QEMU's stdio) into `host_log`;
/// when `typed` is given, its lines are typed at the host's shell once it prompts. Returns
/// QEMU's exit status and the wall time.
fn qemu(
    args: &[String],
    host_log: &Path,
    typed: Option<&[String]>,
) -> Result<(Option<i32>, u64), String> {
    println!(
        "==> qemu-system-aarch64 {} (timeout {TIMEOUT_S} s)",
        args.join(" ")
    );
    let log =
        std::fs::File::create(host_log).map_err(|e| format!("{}: {e}", host_log.display()))?;
    let err = host_log.with_extension("stderr");
    let err = std::fs::File::create(&err).map_err(|e| format!("{}: {e}", err.display()))?;
    let start = Instant::now();
    let mut child = Command::new("timeout")
        .arg(TIMEOUT_S.to_string())
        .arg("qemu-system-aarch64")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-aarch64: {e}"))?;
    let mut stdin = child.stdin.take();
    let mut typed = typed;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok((status.code(), start.elapsed().as_secs()));
        }
        if let Some(lines) = typed {
            let text = std::fs::read_to_string(host_log).unwrap_or_default();
            // The console's lines end in "\r\n".
            let prompted = text
                .split_once("corevisor-linux: shell\r\n")
                .or_else(|| text.split_once("corevisor-linux: shell\n"))
                .is_some_and(|(_, after)| after.contains("# "));
            if prompted {
                if let Some(s) = stdin.as_mut() {
                    for l in lines {
                        println!("    typed at the host's shell: {l}");
                        s.write_all(format!("{l}\n").as_bytes())
                            .map_err(|e| format!("typing at the shell: {e}"))?;
                    }
                }
                typed = None;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The arguments common to every boot on `cpu` with `virtualization`.
fn machine(cpu: &str, virtualization: bool) -> Vec<String> {
    [
        "-M",
        if virtualization {
            "virt,virtualization=on,gic-version=2"
        } else {
            "virt,virtualization=off,gic-version=2"
        },
        "-cpu",
        cpu,
        "-smp",
        "2",
        "-m",
        "2G",
        "-display",
        "none",
        "-monitor",
        "none",
        "-nic",
        "none",
        "-no-reboot",
        "-icount",
        "shift=0",
        "-serial",
        "stdio",
    ]
    .map(String::from)
    .to_vec()
}

/// The arguments of a boot of `kcore` (KCore's console into `kcore_log`) with the kernel
/// `image` as its host and the boot `bundle`, on `cpu`.
fn under_kcore(
    cpu: &str,
    kcore: &Path,
    image: &Path,
    bundle: &Path,
    kcore_log: &Path,
) -> Vec<String> {
    let loader = |file: &Path, addr: u64| {
        format!("loader,file={},addr={addr:#x},force-raw=on", file.display())
    };
    let mut args = machine(cpu, true);
    args.extend([
        "-serial".to_string(),
        format!("file:{}", kcore_log.display()),
        "-kernel".to_string(),
        kcore.display().to_string(),
        "-device".to_string(),
        loader(image, map::HOST_ENTRY),
        "-device".to_string(),
        loader(bundle, map::LINUX_BUNDLE),
    ]);
    args
}

/// KCore (`traced`: the traced image, else production) with Linux as its host on `cpu`; the
/// workload, then `attack` typed at the shell.
#[allow(clippy::too_many_arguments)]
fn boot(
    root: &Path,
    bin: &Path,
    image: &Path,
    bundle: &Path,
    cpu: &str,
    attack: Attack,
    traced: bool,
    expected: &str,
) -> Result<Run, String> {
    let out = root.join("target/linux");
    let tag = format!(
        "{cpu}-{}{}",
        attack.name(),
        if traced { "" } else { "-prod" }
    );
    let host_log = out.join(format!("host-{tag}.log"));
    let kcore_log = out.join(format!("kcore-{tag}.log"));
    let kernel = if traced {
        "kcore-el2"
    } else {
        "kcore-el2-prod"
    };
    let args = under_kcore(cpu, &bin.join(kernel), image, bundle, &kcore_log);
    let typed = [
        format!("echo \"corevisor-linux: {}\"", attack.said()),
        attack.command(),
        "echo \"corevisor-linux: UNEXPECTED: the access returned\"".to_string(),
    ];
    let (exit, secs) = qemu(&args, &host_log, Some(&typed))?;
    let host =
        std::fs::read_to_string(&host_log).map_err(|e| format!("{}: {e}", host_log.display()))?;
    let kcore =
        std::fs::read_to_string(&kcore_log).map_err(|e| format!("{}: {e}", kcore_log.display()))?;
    let mut errors = Vec::new();
    if exit != Some(0) {
        errors.push(format!(
            "QEMU exited with {exit:?} (expected 0: KCore powers the machine off or relays the reset)"
        ));
    }
    let said = |s: &str| {
        host.lines()
            .any(|l| l.trim_end() == format!("corevisor-linux: {s}"))
    };
    let starts = |s: &str| {
        host.lines()
            .any(|l| l.starts_with(&format!("corevisor-linux: {s}")))
    };
    if !starts("Linux ") || !host.contains("2 CPUs online") {
        errors.push("no banner with 2 CPUs online from the init".into());
    }
    for p in ["processor\t: 0", "processor\t: 1"] {
        if !host.lines().any(|l| l.trim_end() == p) {
            errors.push(format!("/proc/cpuinfo did not show `{p}`"));
        }
    }
    // The workload: in the traced boots (the production image's skip it).
    for c in (0..2).filter(|_| traced) {
        if !said(&format!("sha256 of the 64 MiB file on cpu {c}: {expected}")) {
            errors.push(format!(
                "cpu {c}'s sha256 is missing or wrong (expected {expected})"
            ));
        }
    }
    if traced && !said(&format!("touched {TOUCH_MIB} MiB of fresh RAM")) {
        errors.push(format!("the init did not touch {TOUCH_MIB} MiB of RAM"));
    }
    if !said("shell") {
        errors.push("the init did not reach the shell".into());
    }
    if !said(&attack.said()) {
        errors.push("the typed attack did not run at the shell".into());
    }
    if host.contains("UNEXPECTED")
        && host
            .lines()
            .any(|l| l.starts_with("corevisor-linux: UNEXPECTED"))
    {
        errors.push("the host's access to KCore's region returned".into());
    }
    let halt = kcore.lines().find(|l| l.starts_with("KCORE HALT:"));
    match (halt, attack) {
        (Some(h), Attack::Crash) => errors.push(format!("KCore halted on the host's crash: {h}")),
        (None, Attack::Crash) => {
            if !host.contains("Kernel panic - not syncing") {
                errors.push("the host did not panic".into());
            }
            if !kcore.lines().any(|l| l.contains(attack.end())) {
                errors.push("KCore did not relay the host's SYSTEM_RESET".into());
            }
        }
        (Some(h), _) if h.contains(attack.end()) => {}
        (Some(h), _) => errors.push(format!("KCore halted, but not on the attack: {h}")),
        (None, _) => errors.push("KCore did not halt".into()),
    }
    for l in kcore.lines() {
        if l.starts_with("KCORE PANIC") {
            errors.push(format!("KCore: {l}"));
        }
    }
    let faults = kcore
        .lines()
        .find(|l| l.starts_with("KCORE HALT:") || l.contains("(relayed); host stage-2"))
        .and_then(|h| h.rsplit_once("host stage-2 faults served: "))
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or(0);
    let mut run = Run {
        secs,
        entries: 0,
        mismatches: 0,
        faults,
        concurrent: 0,
    };
    if traced && errors.is_empty() {
        let trace = out.join(format!("trace-{cpu}.jsonl"));
        let lines: Vec<&str> = kcore.lines().filter(|l| l.starts_with('{')).collect();
        std::fs::write(&trace, lines.join("\n") + "\n")
            .map_err(|e| format!("{}: {e}", trace.display()))?;
        let line = super::qemu::check_trace(root, &trace)?;
        let num = |after: &str| -> u64 {
            line.split_once(after)
                .and_then(|(a, _)| a.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        run.entries = num(" steps,");
        run.mismatches = num(" mismatches");
        run.concurrent = num(" host faults entered kcore while another CPU was inside it");
        println!("    -cpu {cpu}: {line}");
        if run.entries < MIN_ENTRIES {
            errors.push(format!(
                "the trace has {} KCore entries, fewer than {MIN_ENTRIES}",
                run.entries
            ));
        }
    }
    if errors.is_empty() {
        println!(
            "    -cpu {cpu} ({kernel}, {}): console checked ({secs} s) -> {}",
            attack.name(),
            host_log.display()
        );
        Ok(run)
    } else {
        for e in &errors {
            println!("    {e}");
        }
        Err(format!(
            "-cpu {cpu} ({kernel}, {}): {} problem(s); consoles {} and {}",
            attack.name(),
            errors.len(),
            host_log.display(),
            kcore_log.display()
        ))
    }
}

/// Instructions from reset to the shell under the production KCore, and its host faults.
fn measure_kcore(
    root: &Path,
    bin: &Path,
    image: &Path,
    bundle: &Path,
    cpu: &str,
) -> Result<(u64, u64), String> {
    let out = root.join("target/linux");
    let count = out.join(format!("icount-kcore-{cpu}.txt"));
    let kcore_log = out.join(format!("kcore-measure-{cpu}.log"));
    let mut args = under_kcore(cpu, &bin.join("kcore-el2-prod"), image, bundle, &kcore_log);
    args.extend(plugin(root, &count));
    let n = measured(&args, &out.join(format!("host-measure-{cpu}.log")), &count)?;
    let kcore =
        std::fs::read_to_string(&kcore_log).map_err(|e| format!("{}: {e}", kcore_log.display()))?;
    let faults = kcore
        .lines()
        .find_map(|l| l.split_once("SYSTEM_OFF (relayed); host stage-2 faults served: "))
        .and_then(|(_, n)| n.trim().parse().ok())
        .ok_or_else(|| {
            format!(
                "{}: KCore did not relay the measured boot's SYSTEM_OFF",
                kcore_log.display()
            )
        })?;
    Ok((n, faults))
}

/// Instructions from reset to the shell with the same kernel entered at EL1 by QEMU.
fn measure_direct(root: &Path, image: &Path, initramfs: &Path, cpu: &str) -> Result<u64, String> {
    let out = root.join("target/linux");
    let count = out.join(format!("icount-direct-{cpu}.txt"));
    let mut args = machine(cpu, false);
    args.extend([
        "-kernel".to_string(),
        image.display().to_string(),
        "-initrd".to_string(),
        initramfs.display().to_string(),
        "-append".to_string(),
        format!("{CMDLINE} corevisor.measure=boot mem={HOST_MIB}M"),
    ]);
    args.extend(plugin(root, &count));
    measured(&args, &out.join(format!("host-direct-{cpu}.log")), &count)
}

fn plugin(root: &Path, count: &Path) -> [String; 2] {
    [
        "-plugin".to_string(),
        format!(
            "{},out={}",
            root.join("target/release/libqemu_icount.so").display(),
            count.display()
        ),
    ]
}

/// Runs a measured boot: it must reach the shell and power off; its instruction count.
fn measured(args: &[String], host_log: &Path, count: &Path) -> Result<u64, String> {
    let _ = std::fs::remove_file(count);
    let (exit, secs) = qemu(args, host_log, None)?;
    let host =
        std::fs::read_to_string(host_log).map_err(|e| format!("{}: {e}", host_log.display()))?;
    if exit != Some(0)
        || !host.contains("corevisor-linux: shell reached: powering off (measured boot)")
    {
        return Err(format!(
            "the measured boot did not reach the shell and power off (QEMU exit {exit:?}, {secs} s): {}",
            host_log.display()
        ));
    }
    let text = std::fs::read_to_string(count).map_err(|e| format!("{}: {e}", count.display()))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{}: {e}", count.display()))
}
