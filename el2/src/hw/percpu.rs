//! Per-CPU EL2 state: each CPU's stack and, at its top, the frame its EL2 vector saves a
//! trapping EL1 context into.

/// CPUs the image has stacks for (kcore's `MAX_CPUS`; checked in `kcore_glue`).
pub const MAX_CPUS: usize = 8;
/// Bytes of stack per CPU (link.ld `STACK_SIZE`; the boot CPU builds the core on it).
pub const STACK_SIZE: usize = 0x10_0000;
/// A CPU's slot: a guard page, then its stack (link.ld).
pub const STACK_STRIDE: usize = STACK_SIZE + 0x1000;

/// What the EL2 vector saves of an EL1 context: x0..x30, ELR_EL2, SPSR_EL2. The vector
/// never writes the rest: `cpu` is the CPU's index (set at boot), `in_vm` which world runs
/// on it (1: a VM, 0: the host; kept by the glue, read on every trap).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    pub cpu: u64,
    pub in_vm: u64,
    pub _pad: u64,
}

pub const FRAME_SIZE: usize = 288;

extern "C" {
    static __stacks_start: u8;
    static __image_start: u8;
    static __text_end: u8;
    static __image_end: u8;
}

/// Address of the first byte above CPU `cpu`'s stack.
pub fn stack_top(cpu: usize) -> u64 {
    let base = core::ptr::addr_of!(__stacks_start) as u64;
    base + ((cpu + 1) * STACK_STRIDE) as u64
}

/// The guard page below CPU `cpu`'s stack (left unmapped).
pub fn guard_page(cpu: usize) -> u64 {
    let base = core::ptr::addr_of!(__stacks_start) as u64;
    base + (cpu * STACK_STRIDE) as u64
}

/// `[start, text end, image end)` of the KCore image.
pub fn image_bounds() -> (u64, u64, u64) {
    (
        core::ptr::addr_of!(__image_start) as u64,
        core::ptr::addr_of!(__text_end) as u64,
        core::ptr::addr_of!(__image_end) as u64,
    )
}

/// CPU `cpu`'s frame, for the first entry into EL1 (boot, PSCI CPU_ON).
pub fn frame_ptr(cpu: usize) -> *mut TrapFrame {
    (stack_top(cpu) - FRAME_SIZE as u64) as *mut TrapFrame
}

/// Starts EL1 on this CPU from `frame` (its own frame slot): the registers, ELR_EL2 and
/// SPSR_EL2 it holds. Never returns; the Rust stack is abandoned.
pub fn enter_lower(cpu: usize, frame: TrapFrame) -> ! {
    assert!(cpu < MAX_CPUS);
    let at = frame_ptr(cpu);
    // SAFETY: `at` is this CPU's frame slot at the top of its own stack (link.ld), 16-byte
    // aligned, not referenced by any Rust object (the Rust stack lies below it). The assembly
    // restores the registers from it and erets; nothing returns here.
    unsafe {
        at.write_volatile(frame);
        super::asm::el2_enter_lower(at)
    }
}
