//! corevisor at EL2: KCore's hardware interface on a real ARMv8 CPU.
//!
//! This crate holds the only `unsafe` code of the core, in [`hw_el2`]. It is built for
//! `aarch64-unknown-none-softfloat` by `scripts/el2-build.sh` (part of `cargo xtask test`).
#![no_std]
#![deny(unsafe_code)]

pub mod hw_el2;

use corevisor_kcore::mem_ops::{Core, Layout};
use hw_el2::El2Hw;

/// KCore's memory machinery on this CPU.
pub fn boot(layout: Layout) -> Core<El2Hw> {
    Core::boot(El2Hw { frame: Default::default() }, layout)
}

/// The host stage-2 fault path, instantiated for the hardware (so it is compiled for EL2).
pub fn host_stage2_fault(core: &mut Core<El2Hw>, addr: u64) -> bool {
    core.local_map_host(addr)
}

/// A VM fault served with a host-proposed page.
pub fn map_vm_page(core: &mut Core<El2Hw>, vmid: u32, ipa: u64, pfn: u64, level: u32) -> bool {
    core.local_map_pfn_vm(vmid, ipa, pfn * 4096, level)
}
