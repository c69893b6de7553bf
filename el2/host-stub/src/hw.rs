//! The host stub's only `unsafe` code: its entries, hypercalls and SMCs, memory access with
//! the MMU off (IPA = PA, identity stage 2 from KCore), the cycle counter, timed loops, and
//! the registers the world-switch check uses.
#![allow(unsafe_code)]

use core::arch::{asm, global_asm};
use el2_abi::map::{KCORE_BASE, RAM_BASE};

global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:                                 // the boot CPU, from KCore
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
0:  cmp     x1, x2
    b.hs    1f
    str     xzr, [x1], #8
    b       0b
1:  mov     x19, #0
    b       2f
    .global host_secondary_entry
host_secondary_entry:                   // x0 = CPU index (the CPU_ON context id)
    mov     x19, x0
2:  adrp    x1, __stacks_start
    add     x1, x1, :lo12:__stacks_start
    add     x2, x19, #1
    lsl     x2, x2, #16
    add     sp, x1, x2
    mov     x0, x19
    bl      host_entry
3:  wfe
    b       3b
"#
);

extern "C" {
    static host_secondary_entry: u8;
    static __image_start: u8;
    static __image_end: u8;
}

#[no_mangle]
extern "C" fn host_entry(cpu: u64) -> ! {
    if cpu == 0 {
        crate::main()
    } else {
        crate::secondary(cpu as usize)
    }
}

/// Where CPU_ON starts a secondary CPU.
pub fn secondary_entry() -> u64 {
    core::ptr::addr_of!(host_secondary_entry) as u64
}

/// `HVC #0` with x0..x9 = `r`; returns x0.
pub fn hvc(r: [u64; 10]) -> u64 {
    let x0;
    // SAFETY: a call to KCore by the hypercall ABI (docs/kcore-abi.md); KCore returns with
    // x1..x30 as they were (x0 holds the result) or does not return. No Rust memory is
    // touched by the call itself.
    unsafe {
        asm!("hvc #0",
            inlateout("x0") r[0] => x0,
            in("x1") r[1], in("x2") r[2], in("x3") r[3], in("x4") r[4],
            in("x5") r[5], in("x6") r[6], in("x7") r[7], in("x8") r[8], in("x9") r[9],
            options(nostack))
    };
    x0
}

/// `HVC #0` with x0, x1 and sixteen more argument registers (the console service).
pub fn hvc17(x0: u64, x1: u64, r: &[u64; 16]) -> u64 {
    let out;
    // SAFETY: as `hvc`.
    unsafe {
        asm!("hvc #0",
            inlateout("x0") x0 => out,
            in("x1") x1, in("x2") r[0], in("x3") r[1], in("x4") r[2], in("x5") r[3],
            in("x6") r[4], in("x7") r[5], in("x8") r[6], in("x9") r[7], in("x10") r[8],
            in("x11") r[9], in("x12") r[10], in("x13") r[11], in("x14") r[12],
            in("x15") r[13], in("x16") r[14], in("x17") r[15],
            options(nostack))
    };
    out
}

/// An SMC (PSCI's conduit on this machine; KCore relays it).
pub fn smc(fid: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    let r;
    // SAFETY: an SMC Calling Convention call (PSCI), which may clobber x0..x17.
    unsafe {
        asm!("smc #0", inlateout("x0") fid => r, inlateout("x1") a1 => _,
            inlateout("x2") a2 => _, inlateout("x3") a3 => _, clobber_abi("C"), options(nostack))
    };
    r
}

fn check(pa: u64, len: u64) {
    let (is, ie) = (
        core::ptr::addr_of!(__image_start) as u64,
        core::ptr::addr_of!(__image_end) as u64,
    );
    let end = pa + len;
    assert!(
        pa.is_multiple_of(8) && pa >= RAM_BASE && end <= KCORE_BASE && (end <= is || pa >= ie),
        "host access at {pa:#x} outside the memory the stub manages"
    );
}

/// A load from host physical memory outside the stub's image (it may fault into KCore,
/// which maps it, or halts if the page is not the host's: then this never returns).
pub fn read64(pa: u64) -> u64 {
    check(pa, 8);
    // SAFETY: an aligned load from RAM that holds no Rust object of this program (`check`);
    // with the MMU off it is a device access, which the target's strict alignment allows.
    unsafe { (pa as usize as *const u64).read_volatile() }
}

pub fn write64(pa: u64, v: u64) {
    check(pa, 8);
    // SAFETY: as `read64`.
    unsafe { (pa as usize as *mut u64).write_volatile(v) }
}

/// Full barrier (another CPU reads what this one wrote).
pub fn dsb() {
    // SAFETY: a barrier.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

pub fn wfe() {
    // SAFETY: a hint.
    unsafe { asm!("wfe", options(nostack, preserves_flags)) };
}

pub fn sev() {
    // SAFETY: a hint.
    unsafe { asm!("sev", options(nostack, preserves_flags)) };
}

/// Turns the cycle counter on, counting at EL0, EL1 and EL2 (PMCCFILTR_EL0.NSH): under
/// `-icount shift=0` it advances by one per instruction executed (docs/el2.md).
pub fn cycles_on() {
    // SAFETY: PMU configuration the host owns (MDCR_EL2 does not trap it for the host).
    unsafe {
        asm!(
            "msr pmccfiltr_el0, {f}",
            "mrs {t}, pmcr_el0",
            "orr {t}, {t}, #1",              // E
            "orr {t}, {t}, #4",              // C: reset the cycle counter
            "msr pmcr_el0, {t}",
            "msr pmcntenset_el0, {c}",
            "isb",
            f = in(reg) 1u64 << 27,
            t = out(reg) _,
            c = in(reg) 1u64 << 31,
            options(nostack)
        )
    };
}

#[inline(always)]
pub fn cycles() -> u64 {
    let v;
    // SAFETY: reads PMCCNTR_EL0; the ISBs keep it in program order.
    unsafe { asm!("isb", "mrs {}, pmccntr_el0", "isb", out(reg) v, options(nostack, nomem)) };
    v
}

/// Cycles for `n` null hypercalls (TIMER_SET_CNTVOFF) in a tight loop.
pub fn time_hvc_loop(n: u64) -> u64 {
    let t0 = cycles();
    // SAFETY: hypercalls that change nothing; x0 is reloaded each time.
    unsafe {
        asm!("1: mov x0, #7", "hvc #0", "subs {n}, {n}, #1", "b.ne 1b",
            n = inout(reg) n => _, out("x0") _, options(nostack))
    };
    cycles() - t0
}

/// The same loop with a NOP in place of the HVC.
pub fn time_nop_loop(n: u64) -> u64 {
    let t0 = cycles();
    // SAFETY: a loop.
    unsafe {
        asm!("1: mov x0, #7", "nop", "subs {n}, {n}, #1", "b.ne 1b",
            n = inout(reg) n => _, out("x0") _, options(nostack))
    };
    cycles() - t0
}

/// Cycles for loading one word of each of `n` pages from `base` (4 KiB apart).
pub fn time_touch_loop(base: u64, n: u64) -> u64 {
    check(base, n * 4096);
    let t0 = cycles();
    // SAFETY: loads from host RAM checked above (no Rust object there).
    unsafe {
        asm!("1: ldr {v}, [{a}]", "add {a}, {a}, #4096", "subs {n}, {n}, #1", "b.ne 1b",
            a = inout(reg) base => _, n = inout(reg) n => _, v = out(reg) _, options(nostack))
    };
    cycles() - t0
}

/// Puts `fp` in D8 and `tpidr` in TPIDR_EL1 (so a broken world switch would show).
pub fn set_state(fp: u64, tpidr: u64) {
    // SAFETY: FP is enabled at EL1 (KCore's CPACR_EL1 for the host) and this soft-float
    // program never uses FP registers; nor does it use TPIDR_EL1.
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
