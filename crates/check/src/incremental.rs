//! The per-step comparison of `abs(core)` with the model, restricted to what the step can
//! have changed (`corevisor soak`): the same relation as [`Lockstep::compare`], at the cost
//! of the step rather than of the machine.
//!
//! Why it is the same relation: if `abs(core) = model` held before the step, a part of the
//! state can only differ after it where one side changed. On the model side the changed
//! keys come from diffing its persistent maps against the state before the step (shared
//! subtrees are skipped). On the core side every part of `abs` is a function of
//! * KCore's typed fields (pool cursors, VM records, shadow contexts, bank owners, lock
//!   flags, allocators, CPU modes and registers), kept here as the values last abstracted
//!   and compared field by field (the small ones are abstracted every step); and
//! * memory: a table walk reads only the frames it names, and those frames (recorded by the
//!   last walk) decide it, so a table is walked again only if one of them was written (the
//!   simulator reports every written frame, `SimMemory::dirty`); a page's metadata is one
//!   word of the metadata array, kept here and compared word by word in written frames
//!   (`Core::page`'s layout; the whole-machine comparison reads through `Core::page`).
//!
//! Page contents are compared by `Lockstep::compare_memory` (already per written frame).
//! A step after one that mismatched is compared whole (the premise would not hold).
//!
//! This module sits below `lockstep` and knows nothing of it: it compares the abstraction
//! of the core's state with the model's and says which shadow contexts to compare; the
//! lockstep checker adds its own per-step comparisons (CPUs, memory, SMMUs, contexts).

use crate::abs::{abs_npt_reading, abs_s2page, abs_spt_reading, abs_vminfo};
use corevisor_kcore::consts::COREVISOR;
use corevisor_kcore::ctxt as kc;
use corevisor_kcore::hw::Hw;
use corevisor_kcore::pt::Pool;
use corevisor_kcore::smmu::SmmuPool;
use corevisor_kcore::state::Core;
use corevisor_kcore::vm_info::VmInfo;
use corevisor_sim::mem::SimMemory;
use corevisor_spec::consts as sc;
use corevisor_spec::state::{mkS2Page, Ctxt, RData, Shared, VMInfo};
use corevisor_spec::zmap::ZMap;
use corevisor_spec::Z;
use std::collections::{BTreeSet, HashSet};
use std::fmt::Debug;

/// What the core's abstraction was last computed from.
#[derive(Clone)]
pub struct AbsInputs {
    npt_frames: Vec<Vec<u64>>,
    pools: Vec<Pool>,
    spt_frames: Vec<u64>,
    smmu_pool: SmmuPool,
    /// The metadata word of every RAM page.
    meta: Vec<u64>,
    vms: Vec<VmInfo>,
    shadow: Vec<kc::Ctxt>,
}

impl AbsInputs {
    pub fn of(c: &Core<SimMemory>) -> Self {
        let npt_frames = (0..=COREVISOR)
            .map(|v| {
                let mut f = Vec::new();
                abs_npt_reading(c, v, &mut f);
                f
            })
            .collect();
        let mut spt_frames = Vec::new();
        abs_spt_reading(c, &mut spt_frames);
        let l = c.layout;
        let meta = (0..(l.ram_end - l.ram_base) / 4096)
            .map(|i| c.hw.read64(l.meta_base + i * 8))
            .collect();
        AbsInputs {
            npt_frames,
            pools: c.npt.iter().map(|l| l.read()).collect(),
            spt_frames,
            smmu_pool: c.spt.read(),
            meta,
            vms: c.vms.iter().map(|l| l.read()).collect(),
            shadow: c.shadow.iter().map(|l| l.read()).collect(),
        }
    }
}

/// The model's state before a step: what the step's changes are diffed against.
#[derive(Clone)]
pub struct Before {
    shared: Shared,
    ctxts: ZMap<Ctxt>,
    live: BTreeSet<usize>,
}

impl Before {
    /// `g`: the model's machine-wide state; `live`: the shadow contexts on a CPU.
    pub fn of(g: &RData, live: BTreeSet<usize>) -> Self {
        Before {
            shared: g.shared.clone(),
            ctxts: g.shadow_ctxts.clone(),
            live,
        }
    }
}

/// " (first: core .., model ..)" at the first key where two maps read differently.
fn first<T: Clone + PartialEq + Debug>(a: &ZMap<T>, b: &ZMap<T>) -> String {
    a.changed_keys(b)
        .first()
        .map(|&k| {
            format!(
                " (first: core {:?}, model {:?})",
                (k, a.get(k)),
                (k, b.get(k))
            )
        })
        .unwrap_or_default()
}

fn was_written(frames: &[u64], dirty: &HashSet<u64>) -> bool {
    frames.iter().any(|f| dirty.contains(f))
}

/// The parts of `abs(core)` and the model (`g`, its machine-wide state) that can differ
/// after this step, compared; `inp` is brought up to date with the core. The shadow
/// contexts are not compared here: [`changed_contexts`] names those to compare.
pub fn compare_step(
    c: &Core<SimMemory>,
    g: &RData,
    inp: &mut AbsInputs,
    before: &Before,
) -> Vec<String> {
    // A copy: the memory's dirty set is behind a lock that `compare_memory` takes again.
    let dirty = &c.hw.dirty().clone();
    let mut out = Vec::new();
    if c.halted() != g.halt {
        out.push(format!("halt: core {}, model {}", c.halted(), g.halt));
    }

    // Stage-2 tables: walked again where the walk's inputs changed or the model's table did.
    let model_npts = before.shared.npts.changed_keys(&g.shared.npts);
    for v in 0..=COREVISOR {
        let i = v as usize;
        let core_moved = c.npt[i].read() != inp.pools[i] || was_written(&inp.npt_frames[i], dirty);
        if core_moved || model_npts.contains(&Z::from(v)) {
            let mut frames = Vec::new();
            let have = abs_npt_reading(c, v, &mut frames);
            inp.npt_frames[i] = frames;
            inp.pools[i] = c.npt[i].read();
            let want = g.shared.npts.get(Z::from(v));
            if have != *want {
                out.push(format!(
                    "page tables differ (principal {v}){}",
                    first(&have.pt, &want.pt)
                ));
            }
        }
    }

    // Page metadata: the pages whose metadata word was written, or whose model entry changed.
    let mut pfns: BTreeSet<Z> = before
        .shared
        .s2page
        .changed_keys(&g.shared.s2page)
        .into_iter()
        .collect();
    let lay = c.layout;
    let ram0 = lay.ram_base / 4096;
    let meta_end = lay.meta_base + inp.meta.len() as u64 * 8;
    for &f in dirty.iter() {
        if f * 4096 >= meta_end || (f + 1) * 4096 <= lay.meta_base {
            continue;
        }
        let words = c.hw.page_words(f);
        let (lo, hi) = (
            (f * 4096).max(lay.meta_base),
            ((f + 1) * 4096).min(meta_end),
        );
        for pa in (lo..hi).step_by(8) {
            let i = ((pa - lay.meta_base) / 8) as usize;
            let w = words[((pa / 8) & 511) as usize];
            if w != inp.meta[i] {
                inp.meta[i] = w;
                pfns.insert(Z::from(ram0 + i as u64));
            }
        }
    }
    let outside = mkS2Page(sc::INVALID, sc::INVALID, sc::INVALID64);
    for pfn in pfns {
        let have = u64::try_from(pfn).map_or(outside, |p| abs_s2page(c, p));
        let want = g.shared.s2page.get(pfn);
        if have != *want {
            out.push(format!(
                "page metadata differ (first: core {:?}, model {:?})",
                (pfn, have),
                (pfn, want)
            ));
            break;
        }
    }

    // Small fields: abstracted whole every step.
    let mut hlock = ZMap::init(true);
    for id in 0..64 {
        if c.poisoned() & (1 << id) != 0 {
            hlock.set_mut(id, false);
        }
    }
    if hlock != g.shared.hlock {
        out.push(format!(
            "poisoned locks differ{}",
            first(&hlock, &g.shared.hlock)
        ));
    }
    let mut smmu_vmid = ZMap::init(sc::INVALID);
    for (id, &v) in c.smmu.read().iter().enumerate() {
        smmu_vmid.set_mut(id as Z, Z::from(v));
    }
    if smmu_vmid != g.shared.smmu_vmid {
        out.push(format!(
            "SMMU bank owners differ{}",
            first(&smmu_vmid, &g.shared.smmu_vmid)
        ));
    }
    let core_data = corevisor_spec::state::CoreData {
        next_vmid: Z::from(c.core_data.read().next_vmid),
        next_remap_ptr: Z::from(c.core_data.read().next_remap_ptr),
    };
    if core_data != g.shared.core_data {
        out.push("allocators differ".into());
    }

    // SMMU tables.
    let core_moved = c.spt.read() != inp.smmu_pool || was_written(&inp.spt_frames, dirty);
    if core_moved || before.shared.spts != g.shared.spts {
        let mut frames = Vec::new();
        let have = abs_spt_reading(c, &mut frames);
        inp.spt_frames = frames;
        inp.smmu_pool = c.spt.read();
        if have != g.shared.spts {
            out.push("SMMU tables differ".into());
        }
    }

    // VM records.
    let model_vms = before.shared.vminfos.changed_keys(&g.shared.vminfos);
    let mut vm_diff = None;
    for v in 0..=COREVISOR as usize {
        if c.vms[v].read() != inp.vms[v] || model_vms.contains(&(v as Z)) {
            inp.vms[v] = c.vms[v].read();
            let (have, want) = (abs_vminfo(&c.vms[v].read()), g.shared.vminfos.get(v as Z));
            if have != *want && vm_diff.is_none() {
                vm_diff = Some(format!("{:?}", (v, have, want)));
            }
        }
    }
    for &k in &model_vms {
        let want = g.shared.vminfos.get(k);
        if !(0..=Z::from(COREVISOR)).contains(&k) && *want != VMInfo::default() {
            vm_diff.get_or_insert(format!("{:?}", (k, VMInfo::default(), want)));
        }
    }
    if let Some(d) = vm_diff {
        out.push(format!("VM records differ (first: (vm, core, model) {d})"));
    }
    out
}

/// The shadow contexts to compare after this step, each with whether it is on a CPU
/// (`live`: those on a CPU now): those either side wrote, and those that went on or off a
/// CPU. `inp` is brought up to date with the core's contexts.
pub fn changed_contexts(
    c: &Core<SimMemory>,
    g: &RData,
    inp: &mut AbsInputs,
    before: &Before,
    live: &BTreeSet<usize>,
) -> Vec<(usize, bool)> {
    let model_ctxts = before.ctxts.changed_keys(&g.shadow_ctxts);
    let mut out = Vec::new();
    for id in 0..c.shadow.len() {
        let flipped = before.live.contains(&id) != live.contains(&id);
        if c.shadow[id].read() != inp.shadow[id] || flipped || model_ctxts.contains(&(id as Z)) {
            inp.shadow[id] = c.shadow[id].read();
            out.push((id, live.contains(&id)));
        }
    }
    out
}
