//! Per-CPU EL2 state: each CPU's stack and, at its top, the frame its EL2 vector saves a
//! trapping EL1 context into (`crate::frame`; its layout is checked here against the
//! vector's offsets).

use crate::frame::{TrapFrame, KCPU_ELR, KCPU_SPSR, KCPU_X};
use core::sync::atomic::{AtomicBool, Ordering};

/// CPUs the image has stacks for (kcore's `MAX_CPUS`; checked in `kcore_glue`).
pub const MAX_CPUS: usize = 8;
/// Bytes of stack per CPU (link.ld `STACK_SIZE`; the boot CPU builds the core on it).
pub const STACK_SIZE: usize = 0x10_0000;
/// A CPU's slot: a guard page, then its stack (link.ld).
pub const STACK_STRIDE: usize = STACK_SIZE + 0x1000;

/// The frame's size, rounded up to keep SP 16-byte aligned below it.
pub const FRAME_SIZE: usize = (core::mem::size_of::<TrapFrame>() + 15) & !15;
/// Where the vector saves x0 (then x1..x30), ELR_EL2 and SPSR_EL2.
pub const FRAME_X: usize = core::mem::offset_of!(TrapFrame, kcpu) + KCPU_X;
pub const FRAME_ELR: usize = FRAME_X + 31 * 8;
pub const FRAME_SPSR: usize = FRAME_X + 32 * 8;
const _: () = assert!(FRAME_X == 0 && FRAME_SIZE < 4096);
const _: () = assert!(KCPU_ELR == FRAME_ELR);
const _: () = assert!(KCPU_SPSR == FRAME_SPSR);
const _: () = assert!(core::mem::align_of::<TrapFrame>() <= 16);

extern "C" {
    static __stacks_start: u8;
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
}

/// Address of the first byte above CPU `cpu`'s stack.
pub fn stack_top(cpu: usize) -> u64 {
    let base = core::ptr::addr_of!(__stacks_start) as u64;
    base + ((cpu + 1) * STACK_STRIDE) as u64
}

/// The CPU running this code, from its stack pointer (each CPU runs at EL2 on its own
/// stack; KCore's emergency stacks are only used to report a fault and stop).
#[inline(always)]
pub fn current() -> usize {
    let sp: u64;
    // SAFETY: reads SP into a register; no memory or flags are touched.
    unsafe {
        core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    let base = core::ptr::addr_of!(__stacks_start) as u64;
    let i = (sp.wrapping_sub(base) / STACK_STRIDE as u64) as usize;
    assert!(i < MAX_CPUS, "not on a CPU's stack");
    i
}

/// The guard page below CPU `cpu`'s stack (left unmapped).
pub fn guard_page(cpu: usize) -> u64 {
    let base = core::ptr::addr_of!(__stacks_start) as u64;
    base + (cpu * STACK_STRIDE) as u64
}

/// The end of the image's read-only data (link.ld: `.rodata` follows the code).
pub fn rodata_end() -> u64 {
    core::ptr::addr_of!(__rodata_end) as u64
}

/// `[start, text end, image end)` of the KCore image.
pub fn image_bounds() -> (u64, u64, u64) {
    (
        core::ptr::addr_of!(__image_start) as u64,
        core::ptr::addr_of!(__text_end) as u64,
        core::ptr::addr_of!(__image_end) as u64,
    )
}

/// CPU `cpu`'s frame.
fn frame_ptr(cpu: usize) -> *mut TrapFrame {
    (stack_top(cpu) - FRAME_SIZE as u64) as *mut TrapFrame
}

static FRAMES_SET: AtomicBool = AtomicBool::new(false);

/// Fills every CPU's frame with `init(cpu)`: once, by the boot CPU, before any CPU enters
/// EL1 (later calls panic).
pub fn init_frames(init: impl Fn(usize) -> TrapFrame) {
    assert!(
        !FRAMES_SET.swap(true, Ordering::AcqRel),
        "the frames are set once"
    );
    for cpu in 0..MAX_CPUS {
        // SAFETY: `frame_ptr(cpu)` is CPU `cpu`'s frame slot at the top of its own stack
        // (link.ld), 16-byte aligned, FRAME_SIZE bytes, above the Rust stack. This runs once,
        // on the boot CPU before it first enters EL1 and before any other CPU is started
        // (PSCI CPU_ON comes from the host): no trap is being handled, so no reference to
        // any frame exists. `write` does not read the (uninitialized, NOLOAD) old contents.
        unsafe { frame_ptr(cpu).write(init(cpu)) };
    }
}

/// Starts EL1 on this CPU, `cpu`, from its frame after `set` has prepared it (the registers,
/// ELR_EL2 and SPSR_EL2 it holds). Never returns; the Rust stack is abandoned.
pub fn enter_lower(cpu: usize, set: impl FnOnce(&mut TrapFrame)) -> ! {
    assert!(cpu < MAX_CPUS && FRAMES_SET.load(Ordering::Acquire));
    let at = frame_ptr(cpu);
    // SAFETY: `at` is this CPU's frame slot at the top of its own stack (link.ld), 16-byte
    // aligned, initialized by `init_frames`, not referenced by any Rust object: this CPU
    // is in its boot path (no trap in progress, whose handler alone refers to the frame),
    // and no other CPU touches it. The assembly restores the registers from it and erets;
    // nothing returns here.
    unsafe {
        set(&mut *at);
        super::asm::el2_enter_lower(at)
    }
}
