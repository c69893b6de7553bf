//! A bare-metal EL1 guest (MMU off: IPA = VA). Two entries at the start of its image:
//!
//! * offset 0, `demo` (every vCPU): checksums its whole 64 KiB image, writes the checksum
//!   to a data page of its own (the first touch is a stage-2 fault the host serves), shares
//!   that page with the host (guest HVC 0x81000), keeps values in an FP register and an EL1
//!   system register, and waits (WFI: an exit to the host). Back, it checks the host's reply
//!   and that its FP and EL1 state survived, reads its emulated device (a load the host
//!   emulates: an exit to the host, the value in x5 when it runs again), makes one trapped
//!   system-register read and one hypercall kcore does not serve (each kind of exit the
//!   benchmark repeats also happens once outside it), writes the
//!   verdict, waits again, unshares the
//!   page (0x82000), and ends: vCPU 0 powers the VM off (PSCI SYSTEM_OFF by HVC), the others
//!   wait for good.
//! * offset 4, `bench`: 10,000 trapped system-register reads (ACTLR_EL1, HCR_EL2.TACR), a
//!   WFI, 10,000 untrapped ones (TPIDR_EL1), a WFI, 10,000 hypercalls kcore does not serve
//!   (each an exit to the host, which runs the vCPU again), a WFI, then SYSTEM_OFF: the host
//!   times the runs.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod hw;

use el2_abi::map::{GUEST_DATA, GUEST_LOAD, GUEST_MMIO, GUEST_MMIO_VALUE};
use el2_abi::{checksum, hvc, psci, BENCH_ITERS, GUEST_IMAGE_BYTES};

/// Words of the shared page (docs/el2.md, "The demo").
pub mod page {
    pub const MAGIC: usize = 0;
    pub const SUM: usize = 1;
    pub const VCPU: usize = 2;
    pub const REPLY: usize = 3;
    pub const STATUS: usize = 4;
    pub const MAGIC_VALUE: u64 = u64::from_le_bytes(*b"CVCHKSUM");
    /// The host's reply is the checksum xor this.
    pub const REPLY_XOR: u64 = 0x5EC0_5EC0_5EC0_5EC0;
}

const FP_PATTERN: u64 = 0x0123_4567_89AB_CDEF;
const TPIDR_PATTERN: u64 = 0x7E57_0000_0000_0000;

fn vcpu() -> u64 {
    hw::mpidr() & 0xFF
}

pub fn demo() -> ! {
    let me = vcpu();
    let sum = checksum((0..GUEST_IMAGE_BYTES / 8).map(|i| hw::read64(GUEST_LOAD + i * 8)));
    let data = GUEST_DATA + me * 4096;
    let w = |i: usize| data + i as u64 * 8;
    hw::write64(w(page::MAGIC), page::MAGIC_VALUE);
    hw::write64(w(page::SUM), sum);
    hw::write64(w(page::VCPU), me);
    hw::write64(w(page::STATUS), 0);
    hw::hvc(hvc::GUEST_SHARE, data, 4096);
    hw::set_state(FP_PATTERN ^ me, TPIDR_PATTERN | me);
    hw::wfi();
    let (fp, tpidr) = hw::state();
    let mut status = 0;
    if hw::read64(w(page::REPLY)) == sum ^ page::REPLY_XOR {
        status |= 1;
    }
    if fp == FP_PATTERN ^ me {
        status |= 2;
    }
    if tpidr == TPIDR_PATTERN | me {
        status |= 4;
    }
    if hw::mmio_read(GUEST_MMIO) == GUEST_MMIO_VALUE | me {
        status |= 8;
    }
    // Once each, outside the host's measured loops: a trapped system-register read (KCore
    // handles it in EL2) and a hypercall kcore does not serve (an exit to the host).
    hw::trapped_reads(1);
    hw::pings(1);
    hw::write64(w(page::STATUS), status);
    hw::wfi();
    hw::hvc(hvc::GUEST_UNSHARE, data, 4096);
    if me == 0 {
        hw::hvc(psci::SYSTEM_OFF, 0, 0);
    }
    loop {
        hw::wfi();
    }
}

pub fn bench() -> ! {
    hw::trapped_reads(BENCH_ITERS);
    hw::wfi();
    hw::untrapped_reads(BENCH_ITERS);
    hw::wfi();
    hw::pings(BENCH_ITERS);
    hw::wfi();
    hw::hvc(psci::SYSTEM_OFF, 0, 0);
    loop {
        hw::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // No console in a VM: an HVC the host sees as an unknown exit (the trace shows it).
    loop {
        hw::hvc(0xBAD, 0, 0);
    }
}
