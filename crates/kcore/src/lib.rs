//! corevisor-kcore: the hypervisor core (KCore), `no_std` and allocation-free.
//!
//! This first part is the memory and ownership machinery: real ARMv8 stage-2 tables
//! ([`pt`]), the 8-byte per-page metadata ([`meta`]), and the seed's ownership operations on
//! them ([`mem_ops`]), all through one hardware interface ([`hw::Hw`]).
//!
//! `unsafe` is forbidden here; the EL2 implementation of [`hw::Hw`] (raw physical memory and
//! TLB instructions) will live in the EL2 image crate, behind that trait's safety contract.
#![cfg_attr(not(any(feature = "shuttle", feature = "mutants")), no_std)]
#![forbid(unsafe_code)]

pub mod consts;
#[cfg(feature = "crypto")]
pub mod crypto;
pub mod ctxt;
pub mod hw;
pub mod layout;
pub mod lock;
pub mod locking;
pub mod loops;
pub mod mem_ops;
pub mod meta;
pub mod mutants;
pub mod pt;
pub mod smmu;
pub mod smmu_hw;
pub mod trap;
pub mod vm_info;
