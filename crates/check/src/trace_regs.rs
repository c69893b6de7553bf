//! check-trace's register files and TLB invalidations (issue 22): what the EL2 trace gives on
//! each world switch (VCPU_RUN, VM exit) and what check-trace makes of it.
//!
//! * `regs`: the register file the CPU brought into KCore (`found`) and the one KCore left
//!   on it (`left`), each of a register context (`ctx`: kcore's `ctxt_id`, the host of CPU n
//!   is n) and given as the words (kcore's `ctxt_words`, by name) that differ from the file
//!   the trace last gave for that context. [`Bases`] keeps the same files the recorder does,
//!   so both are whole again here.
//! * The world's words of `found` (general, FP/SIMD and EL1 registers, ELR/SPSR_EL2, the
//!   syndrome) are inputs: what the world computed. KCore's own words (its EL2
//!   configuration, the vCPU's return state) must be what the model has: anything else was
//!   changed behind the model's back.
//! * `left` is compared, word for word, with the model's register file after the entry.
//! * `tlbi`: every stage-2 leaf of a principal that was valid before the entry and that the
//!   model changed must be invalidated (its IPA, or the whole VMID) within the entry.
//! * `glue`: the glue's own writes to KCore's state, each named (`save_resume_point`).

use crate::abs::{abs_ctxt_as, conc_ctxt};
use corevisor_kcore::ctxt::Ctxt as KCtxt;
use corevisor_kcore::ctxt_words::{self as words, CTXT_WORDS};
use corevisor_spec::consts::COREVISOR;
use corevisor_spec::state::{Ctxt, RData};
use corevisor_spec::Z;
use std::collections::HashMap;

/// A field that disagrees: (field, the trace's, the model's).
pub type Diff = (String, String, String);

/// The two register files of an entry, as the trace gives them (changed words only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Files {
    pub found_ctx: usize,
    pub found: Vec<(usize, u64)>,
    pub left_ctx: usize,
    pub left: Vec<(usize, u64)>,
}

/// A run of stage-2 TLB invalidations: `count` pages of `vmid` from `ipa`; 0: the VMID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbiRun {
    pub vmid: u64,
    pub ipa: u64,
    pub count: u64,
}

/// Each register context's file as the trace last gave it (all zero at first).
#[derive(Default)]
pub struct Bases(HashMap<usize, [u64; CTXT_WORDS]>);

impl Bases {
    /// The entry's two files, whole, and the bases moved on (found's first: a `left` of the
    /// same context is given against it, as the recorder does).
    pub fn apply(&mut self, f: &Files) -> (KCtxt, KCtxt) {
        let mut whole = |ctx: usize, delta: &[(usize, u64)]| {
            let b = self.0.entry(ctx).or_insert([0; CTXT_WORDS]);
            for &(i, v) in delta {
                b[i] = v;
            }
            let mut c = KCtxt::default();
            for (i, &v) in b.iter().enumerate() {
                c.set_word(i, v);
            }
            c
        };
        let found = whole(f.found_ctx, &f.found);
        let left = whole(f.left_ctx, &f.left);
        (found, left)
    }
}

/// The register context of the world the model runs on CPU `i` (kcore's `ctxt_id`).
pub fn world_ctx(m: &crate::engine::ModelMachine, i: usize) -> usize {
    let c = &m.cpus[i];
    let (vm, vcpu) = if c.ihost || c.cur_vcpuid < 0 {
        (corevisor_spec::consts::HOSTVISOR, i as Z)
    } else {
        (c.cur_vmid, c.cur_vcpuid)
    };
    corevisor_spec::consts::ctxt_id(vm, vcpu) as usize
}

/// KCore's words of `found` against the model's register file `phys` (the first that
/// differs), then the world's words of `found` into `phys`.
pub fn take_found(phys: &mut Ctxt, found: &KCtxt) -> Option<Diff> {
    let mut mine = conc_ctxt(phys);
    for i in 0..CTXT_WORDS {
        if words::is_world(i) {
            mine.set_word(i, found.word(i));
        } else if mine.word(i) != found.word(i) {
            return Some((
                format!("regs.found.{} (KCore's, not the world's)", words::name(i)),
                format!("{:#x}", found.word(i)),
                format!("{:#x}", mine.word(i)),
            ));
        }
    }
    *phys = abs_ctxt_as(&mine, None);
    None
}

/// The glue's bring-up of CPU `cpu` (`cpu_init`): KCore's words of its file as the glue set
/// them, into the model's `phys`. Each must be the host world's as KCore starts it: the
/// host's stage 2 (the model's `pt_vttbr` of HOSTVISOR), the CPU's own MPIDR in VMPIDR_EL2
/// (Aff0 = its index), the host's HCR_EL2 and CPTR_EL2, the physical timer the host's
/// (CNTHCTL_EL2), everything else zero.
pub fn cpu_init(phys: &mut Ctxt, cpu: usize, w: &[(usize, u64)]) -> Option<Diff> {
    let mut mine = conc_ctxt(phys);
    for &(i, v) in w {
        let name = words::name(i);
        use corevisor_kcore::consts as kc;
        let want = match name {
            "vttbr_el2" => kc::pt_vttbr(kc::HOSTVISOR),
            "vmpidr_el2" => (v & !0xFF) | cpu as u64,
            "hcr_el2" => kc::HCR_HOST_NVHE_FLAGS,
            "cptr_el2" => kc::CPTR_EL2_DEFAULT,
            // The host keeps the physical counter and timer (docs/el2.md, "Traps and the
            // glue"): the glue's value, not kcore's exit value.
            "cnthctl_el2" => kc::CNTHCTL_EL1PCTEN | kc::CNTHCTL_EL1PCEN,
            _ => 0,
        };
        if want != v {
            return Some((
                format!("cpu_init of cpu {cpu}: {name}"),
                format!("{v:#x}"),
                format!("{want:#x}"),
            ));
        }
        mine.set_word(i, v);
    }
    *phys = abs_ctxt_as(&mine, None);
    None
}

/// `left` against the model's register file after the entry: the first word that differs.
pub fn compare_left(phys: &Ctxt, left: &KCtxt) -> Option<Diff> {
    let mine = conc_ctxt(phys);
    (0..CTXT_WORDS)
        .find(|&i| mine.word(i) != left.word(i))
        .map(|i| {
            (
                format!("regs.left.{}", words::name(i)),
                format!("{:#x}", left.word(i)),
                format!("{:#x}", mine.word(i)),
            )
        })
}

/// The leaves `(principal, gfn)` of principals (not KCore's own table) that were valid
/// before the entry and that the model changed in it.
pub fn changed_valid_leaves(before: &RData, after: &RData) -> Vec<(Z, Z)> {
    let (b, a) = (&before.shared.npts, &after.shared.npts);
    let mut out = Vec::new();
    for v in b.changed_keys(a) {
        if v == COREVISOR {
            continue;
        }
        let (bt, at) = (&b.get(v).pt, &a.get(v).pt);
        for g in bt.changed_keys(at) {
            // A leaf is (pfn, level, descriptor): valid with the descriptor's bit 0.
            if bt.get(g).2 & 1 == 1 {
                out.push((v, g));
            }
        }
    }
    out
}

/// Every leaf of [`changed_valid_leaves`] must be covered by one of the entry's
/// invalidations (its IPA, or its whole VMID): the first that is not.
pub fn check_tlbi(leaves: &[(Z, Z)], runs: &[TlbiRun]) -> Option<Diff> {
    leaves.iter().find_map(|&(v, g)| {
        let ipa = (g as u64) << 12;
        let covered = runs.iter().any(|r| {
            r.vmid == v as u64
                && (r.count == 0 || ipa.checked_sub(r.ipa).is_some_and(|d| d / 4096 < r.count))
        });
        (!covered).then(|| {
            (
                format!("tlbi: stage 2 of principal {v} at gfn {g:#x}"),
                "(not invalidated)".into(),
                format!("the leaf was valid and changed: IPA {ipa:#x} of VMID {v} invalidated"),
            )
        })
    })
}

/// The glue's `save_resume_point`: the exiting vCPU's context `ctx` resumes where `found`
/// left it (ELR_EL2, SPSR_EL2), as the glue wrote before kcore ran.
pub fn save_resume_point(g: &mut RData, ctx: usize, found: &KCtxt) {
    let mut c = g.shadow_ctxts.get(ctx as Z).clone();
    c.ctxt_states.pc = Z::from(found.regs.elr_el2);
    c.ctxt_states.pstate = Z::from(found.regs.spsr_el2);
    g.shadow_ctxts.set_mut(ctx as Z, c);
}
