//! Seed `Section TrapHandlerSpecLow`: proof plumbing that fixes the C ABI of the eight
//! primitives (spec-digest §5.6).
//!
//! * `*_spec0` alias each primitive to its lower-layer counterpart (`*_raw_spec`,
//!   `mem_*_ref_spec`, `dev_*_ref_spec`). The model has no lower layers; the refinement
//!   proofs make those equal to the top-level functions, so each alias calls the top-level
//!   function of its primitive — except `dev_store_spec0`, which the seed (and VRM) binds to
//!   `dev_load_ref_spec`, a typo reproduced literally here.
//! * `*_spec_low` are the primitives as C sees them: `void` functions of `u64 gfn` and
//!   `u32 reg, cbndx, index`, converted with `Int64.unsigned` / `Int.unsigned`. Their
//!   `high_level_invariant` premise is defined below the seed; callers must pass a
//!   reachable state (one built from `Machine::initial_state` by entry points).

use crate::profile::Profile;
use crate::state::RData;
use crate::trap_handler::*;
use crate::Z;

pub fn host_hvc_handler_spec0(p: &Profile, adt: &RData) -> Option<RData> {
    host_hvc_handler_spec(p, adt)
}

pub fn host_npt_handler_spec0(p: &Profile, adt: &RData) -> Option<RData> {
    host_npt_handler_spec(p, adt)
}

pub fn host_vcpu_run_handler_spec0(p: &Profile, adt: &RData) -> Option<RData> {
    host_vcpu_run_handler_spec(p, adt)
}

pub fn vm_exit_handler_spec0(p: &Profile, adt: &RData) -> Option<RData> {
    vm_exit_handler_spec(p, adt)
}

pub fn mem_load_spec0(p: &Profile, gfn: Z, reg: Z, adt: &RData) -> Option<RData> {
    mem_load_spec(p, gfn, reg, adt)
}

pub fn mem_store_spec0(p: &Profile, gfn: Z, reg: Z, adt: &RData) -> Option<RData> {
    mem_store_spec(p, gfn, reg, adt)
}

pub fn dev_load_spec0(
    p: &Profile,
    gfn: Z,
    reg: Z,
    cbndx: Z,
    index: Z,
    adt: &RData,
) -> Option<RData> {
    dev_load_spec(p, gfn, reg, cbndx, index, adt)
}

/// The seed's text: `dev_store_spec0 ... := dev_load_ref_spec gfn reg cbndx index adt`.
pub fn dev_store_spec0(
    p: &Profile,
    gfn: Z,
    reg: Z,
    cbndx: Z,
    index: Z,
    adt: &RData,
) -> Option<RData> {
    dev_load_spec(p, gfn, reg, cbndx, index, adt)
}

pub fn host_hvc_handler_spec_low(p: &Profile, adt: &RData) -> Option<RData> {
    host_hvc_handler_spec(p, adt)
}

pub fn host_npt_handler_spec_low(p: &Profile, adt: &RData) -> Option<RData> {
    host_npt_handler_spec(p, adt)
}

pub fn host_vcpu_run_handler_spec_low(p: &Profile, adt: &RData) -> Option<RData> {
    host_vcpu_run_handler_spec(p, adt)
}

pub fn vm_exit_handler_spec_low(p: &Profile, adt: &RData) -> Option<RData> {
    vm_exit_handler_spec(p, adt)
}

pub fn mem_load_spec_low(p: &Profile, gfn: u64, reg: u32, adt: &RData) -> Option<RData> {
    mem_load_spec(p, Z::from(gfn), Z::from(reg), adt)
}

pub fn mem_store_spec_low(p: &Profile, gfn: u64, reg: u32, adt: &RData) -> Option<RData> {
    mem_store_spec(p, Z::from(gfn), Z::from(reg), adt)
}

pub fn dev_load_spec_low(
    p: &Profile,
    gfn: u64,
    reg: u32,
    cbndx: u32,
    index: u32,
    adt: &RData,
) -> Option<RData> {
    dev_load_spec(
        p,
        Z::from(gfn),
        Z::from(reg),
        Z::from(cbndx),
        Z::from(index),
        adt,
    )
}

pub fn dev_store_spec_low(
    p: &Profile,
    gfn: u64,
    reg: u32,
    cbndx: u32,
    index: u32,
    adt: &RData,
) -> Option<RData> {
    dev_store_spec(
        p,
        Z::from(gfn),
        Z::from(reg),
        Z::from(cbndx),
        Z::from(index),
        adt,
    )
}
