//! corevisor's KCore as a bootable EL2 image for QEMU `virt` (docs/el2.md).
//!
//! * `hw`: the hardware module, the only `unsafe` code: boot and vector assembly, system
//!   registers, the EL2 MMU, physical memory, cache/TLB maintenance, PL011, PSCI calls, locks.
//! * `kcore_glue`: the only module that uses kcore: `Hw` for this machine and the calls
//!   into kcore's entry points with the world switch around them.
//! * `trap`, `boot`, `panic`: the EL2 platform: trap routing, the PSCI relay and console
//!   service, bring-up, and KCore's defined panic.
//! * `trace`: one JSON line per entry into kcore on the console.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod boot;
mod console;
mod cpu_features;
mod fdt;
mod hw;
mod kcore_glue;
mod panic;
mod platform;
mod trace;
mod trap;
