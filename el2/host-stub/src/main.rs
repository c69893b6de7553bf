//! An EL1 host for KCore on QEMU `virt`: it plays the simulator's host model
//! (crates/sim/src/host.rs) through the real hypercall ABI (docs/kcore-abi.md), in the order
//! KVM makes these calls (implementation-notes §4.2):
//!
//! 1. starts the second CPU through PSCI (relayed by KCore);
//! 2. VM 1: registers it and two vCPUs, loads the signed guest image into a 2 MiB host block,
//!    SET_BOOT_INFO, REMAP_VM_IMAGE page by page, VERIFY_VM_IMAGE with the signature; runs
//!    vCPU 0 here and vCPU 1 on CPU 1, serving each one's stage-2 fault with a page, reading
//!    the checksum each shares (GRANT), replying, and seeing the share revoked; the VM powers
//!    itself off; CPU 1 goes off (PSCI CPU_OFF);
//! 3. reclaims VM 1's pages (CLEAR_VM_S2_RANGE) and checks they come back scrubbed;
//! 4. measures, under `-icount shift=0`: null hypercalls, guest trap round trips, host
//!    stage-2 faults, VERIFY_VM_IMAGE of a 64 KiB image, SHA-512 of the same bytes;
//! 5. attacks: boots a tampered image (refused), then reads a VM's page (KCore halts: the
//!    run ends with KCore's panic).
//!
//! Every line it prints goes through KCore's console service, prefixed `[host] `.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod hw;

use core::fmt::Write;
use el2_abi::map::*;
use el2_abi::{bundle, checksum, hvc, psci, BENCH_ITERS, CONSOLE_MAX, CONSOLE_WRITE};

/// One console line (long lines go out in pieces).
struct Line {
    buf: [u8; CONSOLE_MAX],
    len: usize,
}

impl Line {
    fn send(&mut self) {
        let mut r = [0u64; 16];
        for (i, b) in self.buf[..self.len].iter().enumerate() {
            r[i / 8] |= (*b as u64) << (8 * (i % 8));
        }
        hw::hvc17(CONSOLE_WRITE, self.len as u64, &r);
        self.len = 0;
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if self.len == CONSOLE_MAX {
                self.send();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

macro_rules! say {
    ($($arg:tt)*) => {{
        let mut l = Line { buf: [0; CONSOLE_MAX], len: 0 };
        let _ = write!(l, $($arg)*);
        l.send();
    }};
}

/// Stops the run: a host that cannot go on says why and powers the machine off.
fn fail(args: core::fmt::Arguments<'_>) -> ! {
    say!("FAIL: {}", args);
    hw::smc(psci::SYSTEM_OFF, 0, 0, 0);
    loop {
        hw::wfe();
    }
}

macro_rules! ensure {
    ($c:expr, $($arg:tt)*) => {
        if !$c {
            fail(format_args!($($arg)*));
        }
    };
}

/// A host hypercall with arguments x1...
fn kcall(n: u64, args: &[u64]) -> u64 {
    let mut r = [0u64; 10];
    r[0] = n;
    r[1..=args.len()].copy_from_slice(args);
    hw::hvc(r)
}

/// VCPU_RUN: returns when the vCPU exits to the host. `map`: (gpa, pte, level) for its
/// last fault; `first`: (pc, pstate) of a first run.
fn run(vm: u64, vcpu: u64, map: Option<(u64, u64, u64)>, first: Option<(u64, u64)>) {
    let (gpa, pte, level) = map.unwrap_or((0, 0, 3));
    let (pc, pstate) = first.unwrap_or((0, 0));
    kcall(hvc::VCPU_RUN, &[vm, vcpu, gpa, pte, level, pc, pstate]);
}

/// The guest bundle QEMU loaded (written and signed by `cargo xtask qemu`).
#[derive(Clone, Copy)]
struct Bundle {
    load: u64,
    size: u64,
    demo: u64,
    bench: u64,
    sig: [u64; 8],
    sum: u64,
}

fn bundle() -> Bundle {
    let w = |i: u64| hw::read64(GUEST_BUNDLE + i * 8);
    ensure!(
        w(0) == bundle::MAGIC,
        "no guest bundle at {GUEST_BUNDLE:#x}"
    );
    let mut sig = [0; 8];
    for (i, s) in sig.iter_mut().enumerate() {
        *s = hw::read64(GUEST_BUNDLE + bundle::SIG_OFFSET + i as u64 * 8);
    }
    let img = GUEST_BUNDLE + bundle::IMAGE_OFFSET;
    let size = w(2);
    ensure!(
        size == el2_abi::GUEST_IMAGE_BYTES,
        "guest image of {size} bytes"
    );
    Bundle {
        load: w(1),
        size,
        demo: w(3),
        bench: w(4),
        sig,
        sum: checksum((0..size / 8).map(|i| hw::read64(img + i * 8))),
    }
}

/// The host's allocator: 2 MiB image blocks and 4 KiB pages, never reused.
struct Alloc {
    blocks: u64,
    pages: u64,
}

impl Alloc {
    fn block(&mut self) -> u64 {
        let b = IMAGE_BLOCKS + self.blocks * 0x20_0000;
        self.blocks += 1;
        ensure!(b + 0x20_0000 <= DATA_PAGES, "out of image blocks");
        b
    }
    fn page(&mut self) -> u64 {
        let p = DATA_PAGES + self.pages * 4096;
        self.pages += 1;
        ensure!(p + 4096 <= BENCH_PAGES, "out of data pages");
        p
    }
}

/// REGISTER_KVM, REGISTER_VCPU for each vCPU, the image into a fresh host block,
/// SET_BOOT_INFO, REMAP_VM_IMAGE of each page; `tamper` flips a bit of the host's copy after
/// the vendor signed it. Returns (vmid, block). VERIFY_VM_IMAGE is the caller's.
fn create_vm(b: &Bundle, a: &mut Alloc, vcpus: u64, tamper: bool) -> (u64, u64) {
    let vm = kcall(hvc::REGISTER_KVM, &[]);
    ensure!((1..16).contains(&vm), "REGISTER_KVM gave {vm}");
    for c in 0..vcpus {
        kcall(hvc::REGISTER_VCPU, &[vm, c]);
    }
    let block = a.block();
    let img = GUEST_BUNDLE + bundle::IMAGE_OFFSET;
    for i in 0..b.size / 8 {
        hw::write64(block + i * 8, hw::read64(img + i * 8));
    }
    if tamper {
        let w = block + 0x100;
        hw::write64(w, hw::read64(w) ^ 1);
    }
    kcall(hvc::SET_BOOT_INFO, &[vm, b.load, b.size]);
    for p in 0..b.size.div_ceil(4096) {
        kcall(hvc::REMAP_VM_IMAGE, &[vm, block / 4096 + p, 0]);
    }
    (vm, block)
}

fn verify(b: &Bundle, vm: u64) -> u64 {
    let mut args = [0u64; 9];
    args[0] = vm;
    args[1..].copy_from_slice(&b.sig);
    let t0 = hw::cycles();
    kcall(hvc::VERIFY_VM_IMAGE, &args);
    hw::cycles() - t0
}

/// CPU 1's orders from CPU 0, in a host page (words: command, vm, result, status, done).
const MAILBOX: u64 = DATA_PAGES - 0x10_0000;
const CMD_RUN_DEMO: u64 = 1;
const CMD_OFF: u64 = 2;

/// Runs the demo on vCPU `vcpu` of `vm` on this CPU, up to the guest's final wait, except
/// that `last` (its last run) is left to the caller. Returns (checksum seen, status).
fn demo_vcpu(b: &Bundle, a_page: u64, vm: u64, vcpu: u64) -> (u64, u64) {
    use guest_page::*;
    // First run: checksum, then a stage-2 fault on its data page.
    run(vm, vcpu, None, Some((b.load + b.demo, 0x3C5)));
    // Serve the fault: this page, at the vCPU's data gpa.
    let gpa = GUEST_DATA + vcpu * 4096;
    run(vm, vcpu, Some((gpa, a_page, 3)), None);
    // It wrote and shared the page, and waits: read it (the share lets the host map it).
    let w = |i: u64| a_page + i * 8;
    ensure!(
        hw::read64(w(MAGIC)) == MAGIC_VALUE,
        "vCPU {vcpu}: no checksum in its shared page"
    );
    ensure!(
        hw::read64(w(VCPU)) == vcpu,
        "vCPU {vcpu}: page names another vCPU"
    );
    let sum = hw::read64(w(SUM));
    hw::write64(w(REPLY), sum ^ REPLY_XOR);
    // The host's own FP and EL1 state, different from the guest's.
    hw::set_state(0xFEED_FACE_0000_0000 | vcpu, 0x4057_0000 | vcpu);
    run(vm, vcpu, None, None);
    // It read its emulated device (an exit for MMIO): the value, in x8 of the next run.
    kcall(
        hvc::VCPU_RUN,
        &[vm, vcpu, 0, 0, 3, 0, 0, GUEST_MMIO_VALUE | vcpu],
    );
    // Its hypercall kcore does not serve (a ping): run it again.
    run(vm, vcpu, None, None);
    let st = hw::state();
    ensure!(
        st == (0xFEED_FACE_0000_0000 | vcpu, 0x4057_0000 | vcpu),
        "vCPU {vcpu}: the host's D8/TPIDR_EL1 changed across a VM run: {st:x?}"
    );
    (sum, hw::read64(w(STATUS)))
}

/// Words of the guest's shared page (el2/guest).
mod guest_page {
    pub const MAGIC: u64 = 0;
    pub const SUM: u64 = 1;
    pub const VCPU: u64 = 2;
    pub const REPLY: u64 = 3;
    pub const STATUS: u64 = 4;
    pub const MAGIC_VALUE: u64 = u64::from_le_bytes(*b"CVCHKSUM");
    pub const REPLY_XOR: u64 = 0x5EC0_5EC0_5EC0_5EC0;
}

pub fn secondary(cpu: usize) -> ! {
    say!("cpu {cpu}: up at EL1 (entered through KCore)");
    let m = |i: u64| MAILBOX + i * 8;
    loop {
        while hw::read64(m(0)) == 0 {
            hw::wfe();
        }
        let cmd = hw::read64(m(0));
        if cmd == CMD_OFF {
            hw::write64(m(0), 0);
            hw::dsb();
            say!("cpu {cpu}: PSCI CPU_OFF");
            hw::smc(psci::CPU_OFF, 0, 0, 0);
            fail(format_args!("cpu {cpu}: CPU_OFF returned"));
        }
        let b = bundle();
        let (vm, vcpu, page) = (hw::read64(m(1)), cpu as u64, hw::read64(m(5)));
        let (sum, status) = demo_vcpu(&b, page, vm, vcpu);
        // Its last run: the guest unshares and waits for good.
        run(vm, vcpu, None, None);
        hw::write64(m(2), sum);
        hw::write64(m(3), status);
        hw::write64(m(0), 0);
        hw::dsb();
        hw::write64(m(4), 1);
        hw::dsb();
        hw::sev();
    }
}

pub fn main() -> ! {
    say!("host stub at EL1 on cpu 0; KCore's region starts at {KCORE_BASE:#x}");
    hw::cycles_on();
    let b = bundle();
    say!(
        "guest bundle: {} bytes at gpa {:#x}, entries +{:#x} (demo) +{:#x} (bench), FNV-1a checksum {:#x}",
        b.size, b.load, b.demo, b.bench, b.sum
    );
    let mut a = Alloc {
        blocks: 0,
        pages: 0,
    };

    // CPU 1, through KCore's PSCI relay.
    for i in 0..8 {
        hw::write64(MAILBOX + i * 8, 0);
    }
    let r = hw::smc(psci::CPU_ON, 1, hw::secondary_entry(), 1);
    ensure!(r == 0, "PSCI CPU_ON cpu 1: {}", r as i64);

    // A hypercall the measured loop repeats, once outside it (TIMER_SET_CNTVOFF, x1 = 0).
    kcall(hvc::TIMER_SET_CNTVOFF, &[0]);

    // VM 1: two vCPUs, one per CPU.
    let (vm1, block1) = create_vm(&b, &mut a, 2, false);
    verify(&b, vm1);
    let (p0, p1) = (a.page(), a.page());
    let m = |i: u64| MAILBOX + i * 8;
    hw::write64(m(1), vm1);
    hw::write64(m(5), p1);
    hw::dsb();
    hw::write64(m(0), CMD_RUN_DEMO);
    hw::dsb();
    hw::sev();
    let (sum0, st0) = demo_vcpu(&b, p0, vm1, 0);
    while hw::read64(m(4)) == 0 {
        hw::wfe();
    }
    let (sum1, st1) = (hw::read64(m(2)), hw::read64(m(3)));
    // vCPU 0's last run: it unshares and powers the VM off (vCPU 1 is done).
    run(vm1, 0, None, None);
    ensure!(
        sum0 == b.sum && sum1 == b.sum,
        "guest checksums {sum0:#x} (vCPU 0), {sum1:#x} (vCPU 1), expected {:#x}",
        b.sum
    );
    ensure!(
        st0 == 15 && st1 == 15,
        "guest status {st0} (vCPU 0), {st1} (vCPU 1): 15 = reply seen, FP and EL1 state kept, its device read the host's value"
    );
    say!("guest checksum: vCPU 0 (cpu 0) {sum0:#x}, vCPU 1 (cpu 1) {sum1:#x}: matches the image");
    say!("both vCPUs saw the host's reply, kept D8 and TPIDR_EL1 across world switches and read the host's emulated device");
    say!("VM {vm1} powered itself off (PSCI SYSTEM_OFF from vCPU 0)");

    // CPU 1 off (so it executes nothing while instructions are counted).
    hw::write64(m(0), CMD_OFF);
    hw::dsb();
    hw::sev();
    let mut off = false;
    for _ in 0..1_000_000 {
        if hw::smc(psci::AFFINITY_INFO, 1, 0, 0) == 1 {
            off = true;
            break;
        }
    }
    ensure!(off, "cpu 1 did not go off");

    // Reclaim VM 1: its image block and data pages come back scrubbed.
    kcall(hvc::CLEAR_VM_S2_RANGE, &[vm1, block1, 0x20_0000]);
    kcall(hvc::CLEAR_VM_S2_RANGE, &[vm1, p0, 4096]);
    kcall(hvc::CLEAR_VM_S2_RANGE, &[vm1, p1, 4096]);
    let mut nonzero = 0;
    for pg in 0..512 {
        if hw::read64(block1 + pg * 4096) != 0 {
            nonzero += 1;
        }
    }
    for i in 0..512 {
        for p in [p0, p1] {
            if hw::read64(p + i * 8) != 0 {
                nonzero += 1;
            }
        }
    }
    ensure!(
        nonzero == 0,
        "{nonzero} words of VM {vm1}'s reclaimed pages are not zero"
    );
    say!("reclaimed VM {vm1}: its 512-page image block and 2 data pages are the host's again, scrubbed");

    // Measurements (one CPU running; -icount shift=0: one cycle per instruction). Each
    // window is preceded by a line of output, which also prints KCore's buffered trace, so
    // no window pays for console output.
    let n = BENCH_ITERS;
    say!("measuring {n} null hypercalls (TIMER_SET_CNTVOFF) against {n} NOPs");
    let t_hvc = hw::time_hvc_loop(n);
    let t_nop = hw::time_nop_loop(n);
    let null_hvc = t_hvc.saturating_sub(t_nop) / n;
    say!(
        "measuring {n} host stage-2 faults (first touches of {n} pages) against {n} second touches"
    );
    let t_fresh = hw::time_touch_loop(BENCH_PAGES, n);
    let t_mapped = hw::time_touch_loop(BENCH_PAGES, n);
    let host_fault = t_fresh.saturating_sub(t_mapped) / n;
    // A VM whose guest times trapped against untrapped system-register reads.
    let (vm2, _) = create_vm(&b, &mut a, 1, false);
    say!("measuring VERIFY_VM_IMAGE of VM {vm2}'s 64 KiB image");
    let mut verifies = [verify(&b, vm2), 0, 0, 0];
    say!("measuring {n} guest exits and resumes (trapped ACTLR_EL1 reads) against {n} untrapped reads");
    let t0 = hw::cycles();
    run(vm2, 0, None, Some((b.load + b.bench, 0x3C5)));
    let t_trapped = hw::cycles() - t0;
    let t0 = hw::cycles();
    run(vm2, 0, None, None);
    let t_untrapped = hw::cycles() - t0;
    // The full round trip (SeKVM's "Hypercall"): the guest's hypercall exits to the host,
    // which runs the vCPU again, n times; the last run returns at the guest's WFI.
    say!("measuring {n} VM -> host -> VM round trips (guest hypercalls the host answers with VCPU_RUN)");
    let t0 = hw::cycles();
    for _ in 0..n {
        run(vm2, 0, None, None);
    }
    let t_round = hw::cycles() - t0;
    run(vm2, 0, None, None);
    let vm_trap_el2 = t_trapped.saturating_sub(t_untrapped) / n;
    let vm_host_vm = t_round / n;
    // More VMs to verify (a VM is verified once: one measurement per VM).
    let mut last = (0, 0);
    for v in verifies.iter_mut().skip(1) {
        let (vm, block) = create_vm(&b, &mut a, 1, false);
        say!("measuring VERIFY_VM_IMAGE of VM {vm}'s 64 KiB image");
        *v = verify(&b, vm);
        last = (vm, block);
    }
    let verify_64k = verifies.iter().sum::<u64>() / verifies.len() as u64;
    let img = GUEST_BUNDLE + bundle::IMAGE_OFFSET;
    let mut bytes = [0u8; 4096];
    const SHA_ROUNDS: u64 = 16;
    say!("measuring SHA-512 of the same 64 KiB at EL1, {SHA_ROUNDS} times");
    let t0 = hw::cycles();
    for _ in 0..SHA_ROUNDS {
        use sha2::Digest;
        let mut h = sha2::Sha512::new();
        for p in 0..b.size / 4096 {
            for (i, c) in bytes.chunks_exact_mut(8).enumerate() {
                c.copy_from_slice(&hw::read64(img + p * 4096 + i as u64 * 8).to_le_bytes());
            }
            h.update(bytes);
        }
        core::hint::black_box(h.finalize());
    }
    let sha512_64k = (hw::cycles() - t0) / SHA_ROUNDS;
    say!("cycles: {n} null hypercalls {t_hvc}, {n} NOPs {t_nop}; {n} first touches {t_fresh}, {n} second {t_mapped}");
    say!("cycles: {n} trapped reads {t_trapped}, {n} untrapped {t_untrapped} (a VCPU_RUN and a WFI exit each); {n} round trips {t_round}");
    say!("cycles: VERIFY_VM_IMAGE {verifies:?} (one call per VM: a VM is verified once)");
    say!(
        "el2-counts: {{\"null_hvc\":{null_hvc},\"vm_trap_el2\":{vm_trap_el2},\"vm_host_vm\":{vm_host_vm},\"host_fault\":{host_fault},\"verify_64k\":{verify_64k},\"sha512_64k\":{sha512_64k}}}"
    );

    // Attack (b): a tampered image must be refused.
    let (vmt, blockt) = create_vm(&b, &mut a, 1, true);
    verify(&b, vmt);
    // Refused means POWEROFF: CLEAR_VM_S2_RANGE gives the pages back, scrubbed. (Had
    // KCore accepted the image, the pages would stay the VM's and reading one would halt.)
    kcall(hvc::CLEAR_VM_S2_RANGE, &[vmt, blockt, 0x20_0000]);
    let w = hw::read64(blockt + 0x100);
    ensure!(
        w == 0,
        "tampered VM {vmt}'s page reads {w:#x} after reclaim"
    );
    say!("tampered image refused: VM {vmt} powered off by KCore; its pages came back scrubbed");

    // Attack (a): read a page of a live VM. KCore must halt; this never returns.
    let (vm, block) = last;
    say!("attack: reading VM {vm}'s image page at {block:#x} (KCore must halt)");
    let v = hw::read64(block);
    fail(format_args!(
        "read VM {vm}'s page at {block:#x}: {v:#x}; KCore did not halt"
    ))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fail(format_args!("host panic: {info}"))
}
