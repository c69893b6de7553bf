//! The guest's only `unsafe` code: its entry, register access, hypercalls, memory.
#![allow(unsafe_code)]

use core::arch::{asm, global_asm};
use el2_abi::map::GUEST_LOAD;

// Offset 0: demo, offset 4: bench. The stack of vCPU n: 64 KiB at 0x8010_0000 + n * 64 KiB,
// inside the 2 MiB block KCore maps at verification, outside the signed image.
global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
_start:
    b       1f
    b       2f
1:  adr     x19, guest_demo
    b       3f
2:  adr     x19, guest_bench
3:  mrs     x0, mpidr_el1
    and     x0, x0, #0xff
    add     x0, x0, #1
    lsl     x0, x0, #16
    mov     x1, #0x80100000
    add     x1, x1, x0
    mov     sp, x1
    mov     x0, #(3 << 20)
    msr     cpacr_el1, x0              // FP/SIMD on at EL1
    isb
    br      x19
"#
);

#[no_mangle]
extern "C" fn guest_demo() -> ! {
    crate::demo()
}

#[no_mangle]
extern "C" fn guest_bench() -> ! {
    crate::bench()
}

pub fn mpidr() -> u64 {
    let v;
    // SAFETY: reads MPIDR_EL1 (KCore gives each vCPU its id there).
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) v, options(nomem, nostack)) };
    v
}

fn check(pa: u64) {
    // The guest touches its own image (and the block it is in) and its data pages only.
    assert!(pa.is_multiple_of(8) && (GUEST_LOAD..GUEST_LOAD + 0x100_0000).contains(&pa));
}

pub fn read64(pa: u64) -> u64 {
    check(pa);
    // SAFETY: an aligned load from the VM's own RAM (MMU off, IPA = VA), which no Rust
    // object occupies (the guest's only Rust memory is its stack, in another range).
    unsafe { (pa as usize as *const u64).read_volatile() }
}

pub fn write64(pa: u64, v: u64) {
    check(pa);
    assert!(pa >= GUEST_LOAD + 0x40_0000, "never into the image block");
    // SAFETY: as `read64`; the range is the data pages, not the image or the stacks.
    unsafe { (pa as usize as *mut u64).write_volatile(v) }
}

/// `HVC #0` with x0, x2, x3 (share/unshare take the range in x2, x3; PSCI in x0).
pub fn hvc(x0: u64, x2: u64, x3: u64) {
    // SAFETY: a hypercall to KCore (or an exit to the host); KCore returns with every
    // general register as the guest left it, or does not return.
    unsafe { asm!("hvc #0", in("x0") x0, in("x1") x2, in("x2") x2, in("x3") x3, options(nostack)) };
}

/// A load from the emulated device at `ipa` into x5 (an exit to the host, which emulates
/// it: KCore gives x5 the host's value when the vCPU runs again).
pub fn mmio_read(ipa: u64) -> u64 {
    let v;
    // SAFETY: a load from an IPA outside the VM's RAM (no Rust object there): it traps to
    // KCore, and resumes after the load with x5 set by the host's emulation.
    unsafe { asm!("ldr x5, [x1]", in("x1") ipa, out("x5") v, options(nostack, readonly)) };
    v
}

pub fn wfi() {
    // SAFETY: waits (traps to KCore, HCR_EL2.TWI); no memory effect.
    unsafe { asm!("wfi", options(nostack)) };
}

/// Keeps `fp` in D8 and `tpidr` in TPIDR_EL1 (state a world switch must preserve).
pub fn set_state(fp: u64, tpidr: u64) {
    // SAFETY: writes an FP/SIMD register (enabled by the entry code) and TPIDR_EL1, which
    // the compiler does not use in this soft-float program.
    unsafe {
        asm!(".arch_extension fp", "fmov d8, {f}", "msr tpidr_el1, {t}",
            f = in(reg) fp, t = in(reg) tpidr, options(nostack))
    };
}

pub fn state() -> (u64, u64) {
    let (f, t);
    // SAFETY: reads D8 and TPIDR_EL1.
    unsafe {
        asm!(".arch_extension fp", "fmov {f}, d8", "mrs {t}, tpidr_el1",
            f = out(reg) f, t = out(reg) t, options(nostack))
    };
    (f, t)
}

/// `n` reads of ACTLR_EL1, each trapped to KCore (HCR_EL2.TACR) and skipped by it.
pub fn trapped_reads(n: u64) {
    // SAFETY: a loop of register reads; KCore emulates each as a no-op.
    unsafe {
        asm!("1: mrs x9, actlr_el1", "subs {n}, {n}, #1", "b.ne 1b",
            n = inout(reg) n => _, out("x9") _, options(nostack))
    };
}

/// `n` hypercalls kcore does not serve: each exits to the host, which runs the vCPU again.
pub fn pings(n: u64) {
    // SAFETY: a loop of hypercalls; x0 is reloaded each time.
    unsafe {
        asm!("1: mov x0, {id}", "hvc #0", "subs {n}, {n}, #1", "b.ne 1b",
            id = in(reg) el2_abi::hvc::GUEST_PING, n = inout(reg) n => _,
            out("x0") _, options(nostack))
    };
}

/// The same loop with an untrapped read (TPIDR_EL1).
pub fn untrapped_reads(n: u64) {
    // SAFETY: a loop of register reads.
    unsafe {
        asm!("1: mrs x9, tpidr_el1", "subs {n}, {n}, #1", "b.ne 1b",
            n = inout(reg) n => _, out("x9") _, options(nostack))
    };
}
