//! corevisor's KCore as a bootable EL2 image for QEMU `virt` (docs/el2.md).
//!
//! * `hw`: the hardware module, the only `unsafe` code: boot and vector assembly, system
//!   registers, the EL2 MMU, physical memory, cache/TLB maintenance, PL011, PSCI calls, locks.
//! * `kcore_glue`: the only module that calls into kcore: `Hw` for this machine and the calls
//!   into kcore's entry points with the world switch around them. (`frame` lays out each
//!   CPU's frame as kcore's `Cpu`; the trace names kcore's register words and state digest.)
//! * `trap`, `boot`, `panic`: the EL2 platform: trap routing, the PSCI relay and console
//!   service, bring-up, and KCore's defined panic.
//! * `trace`: one JSON line per entry into kcore on the console; `output` keeps the console
//!   in order (the trace first, `kprintln!`).
//!
//! The modules form layers, each using only those below it (`crates/check/tests/layering.rs`,
//! docs/assurance.md "Module layering"). This root is none of them: it declares them and
//! passes each entry from the assembly (`hw::entry`, at the bottom) to the module serving it.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod boot;
mod console;
mod cpu_features;
mod fdt;
mod frame;
mod hw;
mod kcore_glue;
mod output;
mod panic;
mod platform;
mod trace;
mod trap;

/// The boot CPU (`hw::entry::el2_boot_primary`).
#[inline(always)]
fn boot_primary(x0: u64) -> ! {
    boot::primary(x0)
}

/// A CPU started by the PSCI relay (`hw::entry::el2_boot_secondary`).
#[inline(always)]
fn boot_secondary(cpu: usize) -> ! {
    boot::secondary(cpu)
}

/// An exception from EL1 (`hw::entry::el2_lower_trap`).
#[inline(always)]
fn lower_trap(frame: &mut frame::TrapFrame, kind: u64) {
    trap::lower(frame, kind)
}

/// An exception taken at EL2 (`hw::entry::el2_kcore_fault`).
#[inline(always)]
fn kcore_fault(slot: u64, esr: u64, elr: u64, far: u64, spsr: u64, sp: u64) -> ! {
    panic::kcore_fault(slot, esr, elr, far, spsr, sp)
}
