//! corevisor-kcore: the hypervisor core (KCore), `no_std` and allocation-free.
//!
//! * [`state`]: KCore's state, split by the lock that guards it; [`trap::Cpu`] is what
//!   belongs to one CPU. Every entry point takes the shared core by `&self` and the
//!   trapping CPU by `&mut`, so handlers on different CPUs run at once.
//! * [`trap`]: the seed's entry points; [`mem_ops`], [`vm_info`], [`loops`]: its
//!   operations; [`pt`], [`meta`], [`smmu`]: the real tables and metadata they work on,
//!   all through one hardware interface ([`hw::Hw`]).
//!
//! `unsafe` appears in one module, `state::locked` (a value inside its lock); the EL2
//! implementation of [`hw::Hw`] lives in the EL2 image crate, behind that trait's contract.
#![cfg_attr(
    not(any(feature = "shuttle", feature = "mutants", feature = "hosted")),
    no_std
)]
#![deny(unsafe_code)] // allowed in `state::locked` alone

pub mod consts;
#[cfg(feature = "crypto")]
pub mod crypto;
pub mod ctxt;
pub mod ctxt_words;
pub mod digest;
pub mod hw;
pub mod layout;
pub mod loops;
pub mod mem_ops;
pub mod meta;
pub mod mutants;
pub mod pt;
pub mod records;
pub mod smmu;
pub mod smmu_hw;
pub mod state;
pub mod trap;
pub mod vm_info;
