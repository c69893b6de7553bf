//! The Rust entry points the assembly calls (hw/asm.rs). Each turns its raw arguments into
//! safe values and calls the safe code of the image through the crate root (`main.rs`),
//! which hands it to `boot`, `trap` or `panic`: `hw`, below them, names none of them.

use super::percpu::MAX_CPUS;
use crate::frame::TrapFrame;

/// The boot CPU, MMU off, on its stack, `.bss` zeroed. `x0` is what the loader passed.
#[no_mangle]
extern "C" fn el2_boot_primary(x0: u64) -> ! {
    crate::boot_primary(x0)
}

/// A CPU started by PSCI CPU_ON at `_start_secondary`, with `cpu` < MAX_CPUS (checked by the
/// assembly) as the context id.
#[no_mangle]
extern "C" fn el2_boot_secondary(cpu: u64) -> ! {
    crate::boot_secondary(cpu as usize)
}

/// An exception from EL1: `kind` 0 = synchronous, 1 = IRQ, 2 = FIQ, 3 = SError.
#[no_mangle]
extern "C" fn el2_lower_trap(frame: *mut TrapFrame, kind: u64) {
    // SAFETY: the vector passes this CPU's own frame slot at the top of its stack, just
    // filled; nothing else refers to it while the handler runs (the Rust stack is below).
    let frame = unsafe { &mut *frame };
    debug_assert!((frame.cpu as usize) < MAX_CPUS);
    crate::lower_trap(frame, kind);
}

/// An exception taken at EL2: a KCore fault.
#[no_mangle]
extern "C" fn el2_kcore_fault(slot: u64, esr: u64, elr: u64, far: u64, spsr: u64, sp: u64) -> ! {
    crate::kcore_fault(slot, esr, elr, far, spsr, sp)
}
