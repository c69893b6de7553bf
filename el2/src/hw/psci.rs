//! Calls into the platform's PSCI implementation (PSCI 1.x, Arm DEN0022; SMC Calling
//! Convention, Arm DEN0028). QEMU virt with virtualization=on and no EL3 firmware answers
//! SMC from EL2 itself.

use core::arch::asm;

/// `smc #0` with x0..x3; returns x0.
pub fn smc(fid: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    let r;
    // SAFETY: an SMC Calling Convention call to the firmware's PSCI, which reads x0..x3 and
    // may clobber x0..x17 (clobber_abi covers them); it touches no Rust memory.
    unsafe {
        asm!("smc #0",
            inlateout("x0") fid => r,
            inlateout("x1") a1 => _,
            inlateout("x2") a2 => _,
            inlateout("x3") a3 => _,
            clobber_abi("C"),
            options(nostack))
    };
    r
}
