//! Per-step refinement checking (ARCHITECTURE.md, "Abstraction function and refinement"):
//! the core runs on the simulated machine; after each step the model takes the same step
//! with the same inputs (the register file the core's handler found, the untrusted values
//! the core recorded), and `abs(core)` must equal the model's state.
//!
//! The relation, field by field: every principal's stage-2 table, the page metadata, the
//! SMMU tables and bank owners, the VM records and allocators, the poisoned locks, `halt`;
//! every shadow context (except x0..x30 of a context running on a CPU: hardware holds
//! those); each CPU's mode and physical register file; each step's result, x0 and loaded
//! value; each SMMU's registers and IOTLB as KCore must have programmed them
//! (`smmu_abs.rs`, issue 22); no write outside RAM that lands in no declared device.
//!
//! Memory, word by word (issue 10): the seed keeps one word per page (`flatmem`); the
//! checker keeps all 512 words of every frame in its own copy (`shadow.rs`), built from the
//! writes it saw, and compares every frame that changed on either side after every step,
//! and every load's value. Before a principal's access the model's `flatmem` of that page
//! is set to the copy's word at the accessed offset, so the model reads and writes the word
//! the access names.
//!
//! Inputs (issue 10, "input provenance"): every untrusted value the core read is also
//! derived by the checker from the step, the trapping register file and its copy of memory
//! (a load's value, the host's registers a vCPU run takes, the syndrome of an abort); a
//! value that differs is an `input` mismatch, and the model is fed the derived value. What
//! cannot be derived is fed as the core read it: signature verdicts and SMMU register reads.
//!
//! The cipher (issue 22, `shadow::Exports`): the checker counts the exports itself and
//! seals the model's plaintext (the VM page in its copy of memory, the vCPU's record from
//! the model's shadow context) with KCore's key under the nonce of the export's sequence
//! number; the page an export wrote must decrypt under that nonce to the model's plaintext
//! (an `export:` mismatch otherwise), and the checker's copy takes the ciphertext it
//! computed. An import's verdict is the checker's (its own record of the export
//! authenticates the host's buffer in its copy of memory, or not), and the page or
//! registers it opens to are the plaintext the checker opens (`import:`).
//!
//! `corevisor soak` compares each step on the state it can have changed
//! ([`Lockstep::set_incremental`], `incremental.rs`) and the whole machine at sequence end.
//!
//! An invariant on the core itself: a page that goes from a VM back to the host is zero in
//! all 512 words (`scrubbed_page_zero`).
//!
//! Secrecy (issue 20, `secrecy.rs`): every step's bus accesses are judged by the secrecy
//! oracle, whatever the model says of the step; a leak is a mismatch of the step.
//!
//! An access the machine's translations carry out but the model calls undefined (a vCPU
//! still running after its VM powered off, a device on a dead VM's bank: outside the seed's
//! contract, `mem_load_spec`/`dev_load_spec`) is still judged: the step reports what the
//! machine did, its stores go into the checker's copy of memory, the secrecy oracle and the
//! invariants judge it, and the run goes on ("outside the contract" stops the model, never
//! the check).

#[path = "smmu_abs.rs"]
mod smmu_abs;

use crate::abs::{abs_ctxt, abs_shared, abs_shared_but_pages, s2page_differs};
use crate::engine::{EngineError, Injection, ModelMachine, Outcome, StepReport};
use crate::incremental::{changed_contexts, compare_step, AbsInputs, Before};
use crate::secrecy::Secrecy;
use crate::shadow::{Exports, WordShadow};
use corevisor_kcore::consts::{self as kc, hvc};
use corevisor_kcore::ctxt::idx as kidx;
use corevisor_kcore::hw::Hw;
use corevisor_kcore::trap::NO_VCPU;
use corevisor_sim::machine::{hvc_number, CoreMachine, MachineShape, StepResult};
use corevisor_sim::scenario::{Action, HvcCall, Scenario, Step};
use corevisor_sim::smmu::LIKELY_IOVAS;
use corevisor_spec::am::get_shadow_ctxt_specx;
use corevisor_spec::consts::{ctxt_id, HOSTVISOR, SMMU_TTBR};
use corevisor_spec::profile::ProfileKind;
use corevisor_spec::state::{Ctxt, Shared};
use corevisor_spec::zmap::ZMap;
use corevisor_spec::Z;
use std::collections::BTreeSet;

/// The core and the model side by side.
#[derive(Clone)]
pub struct Lockstep {
    pub core: CoreMachine,
    pub model: ModelMachine,
    /// The checker's copy of memory, word by word.
    pub shadow: WordShadow,
    /// The core's owner of every RAM page after the last step (`scrubbed_page_zero`), and
    /// its metadata word.
    owners: Vec<u32>,
    meta: Vec<u64>,
    /// Per-step comparison restricted to what the step changed (`incremental.rs`); `None`:
    /// the whole machine after every step.
    inc: Option<AbsInputs>,
    /// The last comparison found nothing (the premise of an incremental one).
    agreed: bool,
    /// Every VM's private words, and the leaks of the steps (`secrecy.rs`).
    pub secrecy: Secrecy,
    /// The exports KCore must have made, as the checker counts and seals them (issue 22).
    pub exports: Exports,
    /// The IOVA pages (per SMMU) a device accessed or a bank's table mapped: where the
    /// IOTLB can hold an entry (`smmu_abs.rs`).
    iovas: BTreeSet<(u32, u64)>,
}

/// A principal's access: who, the frame and word the model translates it to, the value
/// stored (`None`: a load).
#[derive(Clone, Copy, Debug)]
struct Access {
    principal: u32,
    pfn: u64,
    word: u64,
    store: Option<u64>,
}

/// One step of a checked run.
#[derive(Clone, Debug)]
pub struct CheckedStep {
    pub model: StepReport,
    pub core: StepResult,
    /// What differs after the step (empty = the core refines the model here).
    pub mismatches: Vec<String>,
    /// The model says nothing about this step (`None`: outside the spec's contract, e.g. a
    /// loop longer than the model's budget): nothing is compared, and the run stops
    /// (ARCHITECTURE.md: "model None = outside the contract, not a failure").
    pub outside_contract: bool,
}

/// Words of a sealed vCPU record: x0..x30, pc, pstate, the 24 shadow system registers
/// (`docs/kcore-abi.md`).
const VCPU_RECORD_WORDS: usize = 33 + kidx::SHADOW_SYS_REGS_SIZE as usize;

fn z(v: u64) -> Z {
    Z::from(v)
}

fn store_of(a: &Action) -> Option<u64> {
    match a {
        Action::HostStore { value, .. }
        | Action::GuestStore { value, .. }
        | Action::DmaStore { value, .. } => Some(*value as u64),
        _ => None,
    }
}

/// The call number of an `hvc` step.
fn call_of(a: &Action) -> Option<(u64, Vec<u64>)> {
    match a {
        Action::Hvc { call, args } => {
            let num = match call {
                HvcCall::Named(n) => hvc_number(*n),
                HvcCall::Raw(v) => *v as u64,
            };
            Some((num, args.iter().map(|&a| a as u64).collect()))
        }
        _ => None,
    }
}
/// The simulated machine a model machine describes.
pub fn shape_of(m: &corevisor_spec::Machine) -> MachineShape {
    MachineShape {
        cpus: m.cpus as usize,
        ram_base: m.ram_base as u64,
        ram_end: m.ram_end() as u64,
        kcore_base: m.kcore_base() as u64,
        smmus: m.smmus as u32,
        mmio: m.mmio.iter().map(|&(b, s)| (b as u64, s as u64)).collect(),
    }
}

impl Lockstep {
    /// The machine a scenario describes; the core implements the `arm` profile only.
    pub fn for_scenario(sc: &Scenario, profile: Option<ProfileKind>) -> Result<Self, EngineError> {
        let model = ModelMachine::for_scenario(sc, profile)?;
        if model.profile.kind != ProfileKind::Arm {
            return Err(EngineError(
                "field \"profile\": the core implements the arm profile; run seed-profile scenarios with --engine model".into(),
            ));
        }
        let m = &model.machine;
        // A scenario may boot the SMMUs from hostile register contents (issue 22).
        let core = match sc.machine.smmu_reset {
            Some(reset) => CoreMachine::new_with_smmu_reset(shape_of(m), reset),
            None => CoreMachine::new(shape_of(m)),
        };
        let mut core = core.map_err(|e| {
            EngineError(format!(
                "field \"machine.kcore_mib\": KCore's region is too small (needs {} bytes)",
                e.needed
            ))
        })?;
        core.core.hw.take_dirty();
        let mut model = model;
        // The model starts from the CPUs' registers as the machine booted them.
        for (i, cpu) in model.cpus.iter_mut().enumerate() {
            cpu.regs = abs_ctxt(&core.cpus[i].regs, &core.core);
        }
        let shadow = WordShadow::of(&core.core.hw);
        let l = core.core.layout;
        let owners = (l.ram_base / 4096..l.ram_end / 4096)
            .map(|p| core.core.page(p).owner)
            .collect();
        let meta = (l.ram_base / 4096..l.ram_end / 4096)
            .map(|p| {
                core.core
                    .hw
                    .read64(l.meta_base + (p - l.ram_base / 4096) * 8)
            })
            .collect();
        Ok(Lockstep {
            core,
            model,
            shadow,
            owners,
            meta,
            inc: None,
            agreed: false,
            secrecy: Secrecy::new(),
            exports: Exports::default(),
            // Where a device is likely to find an entry firmware left in the IOTLB.
            iovas: (0..corevisor_kcore::smmu::SMMU_NUM)
                .flat_map(|i| LIKELY_IOVAS.iter().map(move |&v| (i, v)))
                .collect(),
        })
    }

    /// Compares after each step only what the step can have changed (`incremental.rs`);
    /// the first step after this is still compared whole.
    pub fn set_incremental(&mut self, on: bool) {
        self.inc = on.then(|| AbsInputs::of(&self.core.core));
        self.agreed = false;
    }

    /// Whole-machine comparison now (e.g. at the end of an incrementally checked run).
    pub fn compare_whole(&mut self) -> Vec<String> {
        let out = self.compare();
        self.agreed = out.is_empty();
        if let Some(inp) = self.inc.as_mut() {
            *inp = AbsInputs::of(&self.core.core);
        }
        out
    }

    fn is_ram(&self, pfn: u64) -> bool {
        let l = &self.core.core.layout;
        (l.ram_base / 4096..l.ram_end / 4096).contains(&pfn)
    }

    fn in_kcore(&self, pfn: u64) -> bool {
        let l = &self.core.core.layout;
        (l.kcore_base / 4096..l.ram_end / 4096).contains(&pfn)
    }

    /// The model's frame for principal `v`'s address `gfn` (0: unmapped).
    fn model_pfn(&self, v: Z, gfn: u64) -> u64 {
        self.model.global.shared.npts.get(v).pt.get(z(gfn)).0 as u64
    }

    /// The access a step makes, translated by the model as it is now (`None`: no access,
    /// or one the model does not translate).
    fn access_of(&self, st: &Step) -> Option<Access> {
        let cpu = usize::try_from(st.cpu)
            .ok()
            .filter(|&i| i < self.model.cpus.len())?;
        let (principal, pfn, addr, store) = match st.action {
            Action::HostLoad { addr } | Action::HostStore { addr, .. } => {
                let a = addr as u64;
                // The host's pages are identity-mapped on its first touch.
                let pfn = match self.model_pfn(z(0), a / 4096) {
                    0 => a / 4096,
                    p => p,
                };
                (HOSTVISOR as u32, pfn, a, store_of(&st.action))
            }
            Action::GuestLoad { gpa } | Action::GuestStore { gpa, .. } => {
                let vm = self.model.cpus[cpu].cur_vmid;
                let a = gpa as u64;
                (
                    vm as u32,
                    self.model_pfn(vm, a / 4096),
                    a,
                    store_of(&st.action),
                )
            }
            Action::DmaLoad {
                smmu,
                cb,
                iova,
                stream,
            }
            | Action::DmaStore {
                smmu,
                cb,
                iova,
                stream,
                ..
            } => {
                // A stream other than the bank's own is routed by the SMMU's registers: the
                // checker derives nothing for it (the value is fed as the core read it).
                let own = stream.is_none_or(|s| s == cb);
                if !(own && (0..2).contains(&smmu) && (0..8).contains(&cb)) {
                    return None;
                }
                let sh = &self.model.global.shared;
                let owner = *sh.smmu_vmid.get(corevisor_spec::consts::smmu_id(smmu, cb));
                let pfn = sh.spts.spt_pt.get(SMMU_TTBR(smmu, cb)).get(iova / 4096).0;
                (owner as u32, pfn as u64, iova as u64, store_of(&st.action))
            }
            _ => return None,
        };
        (pfn != 0 && self.is_ram(pfn)).then_some(Access {
            principal,
            pfn,
            word: (addr & 4095) / 8,
            store,
        })
    }

    /// Runs one step on both sides and compares them.
    pub fn step(&mut self, st: &Step) -> Result<CheckedStep, EngineError> {
        if !(0..self.model.cpus.len() as Z).contains(&st.cpu) {
            // The model engine reports the bad CPU.
            self.model.step(st)?;
        }
        if matches!(st.action, corevisor_sim::scenario::Action::Host(_)) {
            self.model.step(st)?;
        }
        let access = self.access_of(st);
        if let Some(a) = access {
            // The model reads and writes the word the access names.
            let w = self.shadow.word(a.pfn, a.word);
            self.model.global.shared.flatmem.set_mut(z(a.pfn), z(w));
        }
        self.note_iova(st);
        let before = self.model.global.shared.s2page.clone();
        let prior = self
            .inc
            .is_some()
            .then(|| Before::of(&self.model.global, self.live_contexts()));
        let granter = self.vm_on(st);
        let core = self.core.step(st);
        // The oracle judges the machine's accesses before anything of the model is looked at.
        let leaks = self.secrecy.judge(&self.core.core, st, granter, &core);
        let frames = self.dirty_frames(|_| true);
        self.secrecy.prune(&self.core.core.hw, frames);
        let mut inputs = Vec::new();
        let data = self.derive_inputs(st, &core, access, &mut inputs);
        // What an export must seal, as the model has it before the step.
        let plain = call_of(&st.action).and_then(|(n, args)| self.export_plaintext(n, &args));
        self.model.inject = Some(Injection {
            data: data.iter().map(|&(v, x)| (Z::from(v), z(x))).collect(),
            core: core
                .rec
                .core
                .iter()
                .map(|&(v, x)| (Z::from(v), z(x)))
                .collect(),
            regs: core
                .trap_regs
                .as_ref()
                .map(|r| abs_ctxt(r, &self.core.core)),
        });
        let mut model = self.model.step(st)?;
        let carried = self.carried_out(st, &core, &model);
        if model.result == Outcome::Undefined && core.outcome != Outcome::Undefined && !carried {
            self.core.core.hw.take_dirty();
            self.shadow.take_changed();
            // Nothing was compared: the next step is compared whole.
            self.agreed = false;
            return Ok(CheckedStep {
                model,
                core,
                mismatches: leaks,
                outside_contract: true,
            });
        }
        if carried {
            self.adopt(st, &core, &mut model);
        }
        let result = if carried {
            Outcome::Undefined // the model translated nothing: its access is not applied
        } else {
            model.result
        };
        let cipher = self.update_shadow(st, &core, access, result, &before, plain);
        let mut mismatches = leaks;
        mismatches.extend(inputs);
        mismatches.extend(cipher);
        mismatches.extend(self.scrubbed_pages_are_zero());
        mismatches.extend(self.writes_outside_ram());
        // What the lock-release check found inside the step (`SimMemory::watch_locks`).
        mismatches.extend(self.core.core.hw.take_release_breaks());
        let mut diff = |what: &str, a: String, b: String| {
            if a != b {
                mismatches.push(format!("{what}: core {a}, model {b}"));
            }
        };
        diff(
            "result",
            format!("{:?}", core.outcome),
            format!("{:?}", model.result),
        );
        diff(
            "x0",
            format!("{:?}", core.x0.map(z)),
            format!("{:?}", model.x0),
        );
        diff(
            "value",
            format!("{:?}", core.value.map(z)),
            format!("{:?}", model.value),
        );
        let state = match (self.inc.take(), prior) {
            (Some(mut inp), Some(prior)) if self.agreed => {
                let out = self.compare_incremental(&mut inp, &prior);
                self.inc = Some(inp);
                out
            }
            (inp, _) => {
                self.inc = inp;
                let out = self.compare();
                if let Some(i) = self.inc.as_mut() {
                    *i = AbsInputs::of(&self.core.core);
                }
                out
            }
        };
        self.agreed = mismatches.is_empty() && state.is_empty();
        mismatches.extend(state);
        self.core.core.hw.take_dirty();
        self.shadow.take_changed();
        Ok(CheckedStep {
            model,
            core,
            mismatches,
            outside_contract: false,
        })
    }

    /// The VM whose vCPU runs on the step's CPU of the core machine now (before the step).
    fn vm_on(&self, st: &Step) -> Option<u32> {
        let cpu = self.core.cpus.get(usize::try_from(st.cpu).ok()?)?.run;
        (!cpu.ihost && !cpu.icore && (1..kc::COREVISOR).contains(&cpu.cur_vmid))
            .then_some(cpu.cur_vmid)
    }

    /// A principal's access the machine carried out through its translations, with no KCore
    /// handler, that the model calls undefined (outside the seed's contract).
    fn carried_out(&self, st: &Step, core: &StepResult, model: &StepReport) -> bool {
        let access = matches!(
            st.action,
            Action::HostLoad { .. }
                | Action::HostStore { .. }
                | Action::GuestLoad { .. }
                | Action::GuestStore { .. }
                | Action::GuestFetch { .. }
                | Action::DmaLoad { .. }
                | Action::DmaStore { .. }
        );
        access
            && core.traps.is_empty()
            && core.outcome != Outcome::Undefined
            && model.result == Outcome::Undefined
    }

    /// The step as the machine did it, for a carried-out access the model calls undefined:
    /// its result and value are the machine's, its stores land in the checker's copy where
    /// the machine's translation put them (RAM outside KCore's region: a store there is a
    /// breach the memory comparison reports), and a CPU's load writes the CPU's x1 in the
    /// model too, so the steps after it are compared as usual.
    fn adopt(&mut self, st: &Step, core: &StepResult, model: &mut StepReport) {
        model.result = core.outcome;
        model.value = core.value.map(z);
        for &(pa, v) in &core.stores {
            let pfn = pa / 4096;
            if self.is_ram(pfn) && !self.in_kcore(pfn) {
                self.shadow.set(pfn, (pa & 4095) / 8, v);
            }
        }
        let cpu_load = matches!(
            st.action,
            Action::HostLoad { .. } | Action::GuestLoad { .. }
        );
        if let (true, Some(v)) = (cpu_load, core.value) {
            let cpu = &mut self.model.cpus[st.cpu as usize];
            cpu.regs.ctxt_regs.x[corevisor_sim::machine::ACCESS_REG as usize] = z(v);
        }
    }

    /// `abs(core)` against the model's state.
    pub fn compare(&self) -> Vec<String> {
        let c = &self.core.core;
        let g = &self.model.global;
        let mut out = Vec::new();
        if c.halted() != g.halt {
            out.push(format!("halt: core {}, model {}", c.halted(), g.halt));
        }
        // Page contents are compared word by word against the checker's copy (below), the
        // metadata page by page.
        let a = abs_shared_but_pages(c, &g.shared);
        let b = &g.shared;
        let pages = s2page_differs(c, &b.s2page);
        let fields: [(&str, bool); 7] = [
            ("page tables", a.npts == b.npts),
            ("page metadata", pages.is_none()),
            ("poisoned locks", a.hlock == b.hlock),
            ("SMMU tables", a.spts == b.spts),
            ("SMMU bank owners", a.smmu_vmid == b.smmu_vmid),
            ("VM records", a.vminfos == b.vminfos),
            ("allocators", a.core_data == b.core_data),
        ];
        for (name, same) in fields {
            if same {
            } else if let (Some((pfn, have, want)), "page metadata") = (&pages, name) {
                out.push(format!(
                    "{name} differ (first: core {:?}, model {:?})",
                    Some((pfn, have)),
                    Some((pfn, want))
                ));
            } else {
                out.push(format!("{name} differ{}", detail(name, &a, b)));
            }
        }
        out.extend(self.compare_cpus());
        out.extend(self.compare_memory());
        out.extend(self.compare_smmus());
        let live = self.live_contexts();
        for id in 0..c.shadow.len() {
            out.extend(self.compare_context(id, live.contains(&id)));
        }
        out
    }
}

impl Lockstep {
    /// Where the step can put an entry in an IOTLB: a device's access, a bank's new leaf.
    fn note_iova(&mut self, st: &Step) {
        let (smmu, iova) = match st.action {
            Action::DmaLoad { smmu, iova, .. } | Action::DmaStore { smmu, iova, .. } => {
                (smmu, iova)
            }
            _ => match call_of(&st.action) {
                Some((hvc::SMMU_LPAE_MAP, args)) => (
                    args.get(4).copied().unwrap_or(0) as i128,
                    args.first().copied().unwrap_or(0) as i128,
                ),
                _ => return,
            },
        };
        if let (Ok(i), Ok(v)) = (u32::try_from(smmu), u64::try_from(iova)) {
            if i < corevisor_kcore::smmu::SMMU_NUM {
                self.iovas.insert((i, v & !0xFFF));
            }
        }
    }

    /// The SMMUs' registers and IOTLBs against what the model says KCore programmed
    /// (`smmu_abs.rs`).
    pub(crate) fn compare_smmus(&self) -> Vec<String> {
        let c = &self.core.core;
        smmu_abs::compare_smmus(
            self.core.shape.smmus,
            &c.hw,
            c.layout.smmu_base,
            &self.model.global.shared,
            &self.iovas,
        )
    }

    /// Writes of the step outside RAM that land in no declared device: none is expected
    /// (the model has no memory there).
    fn writes_outside_ram(&self) -> Vec<String> {
        let mmio = &self.core.shape.mmio;
        let device = |pfn: u64| {
            mmio.iter()
                .any(|&(b, n)| (b / 4096..(b + n).div_ceil(4096)).contains(&pfn))
        };
        let mut frames = self.dirty_frames(|p| !self.is_ram(p) && !device(p));
        frames.sort_unstable();
        frames
            .iter()
            .map(|pfn| format!("a write outside RAM and every device, at frame {pfn:#x}"))
            .collect()
    }

    /// The shadow contexts running on a CPU (hardware holds their x0..x30).
    /// The per-step comparison (`incremental.rs`): the abstraction's parts the step can
    /// have changed, then the CPUs, memory and SMMUs, then the shadow contexts it touched.
    fn compare_incremental(&self, inp: &mut AbsInputs, prior: &Before) -> Vec<String> {
        let (c, g) = (&self.core.core, &self.model.global);
        let mut out = compare_step(c, g, inp, prior);
        out.extend(self.compare_cpus());
        out.extend(self.compare_memory());
        out.extend(self.compare_smmus());
        let live = self.live_contexts();
        for (id, on) in changed_contexts(c, g, inp, prior, &live) {
            out.extend(self.compare_context(id, on));
        }
        out
    }

    pub(crate) fn live_contexts(&self) -> BTreeSet<usize> {
        self.model
            .cpus
            .iter()
            .filter(|m| !m.icore && m.cur_vcpuid >= 0)
            .filter_map(|m| usize::try_from(m.cur_vmid * 8 + m.cur_vcpuid).ok())
            .collect()
    }

    /// Shadow context `id` (`live`: without x0..x30).
    pub(crate) fn compare_context(&self, id: usize, live: bool) -> Option<String> {
        let c = &self.core.core;
        let mut mine = abs_ctxt(&c.shadow[id].read(), c);
        let mut theirs = self.model.global.shadow_ctxts.get(id as Z).clone();
        if live {
            mine.ctxt_regs.x = [0; 31];
            theirs.ctxt_regs.x = [0; 31];
        }
        (mine != theirs)
            .then(|| format!("shadow context {id} differs{}", ctxt_diff(&mine, &theirs)))
    }

    /// Each CPU's mode and physical register file.
    pub(crate) fn compare_cpus(&self) -> Vec<String> {
        let c = &self.core.core;
        let mut out = Vec::new();
        for (i, m) in self.model.cpus.iter().enumerate() {
            let k = self.core.cpus[i].run;
            let vcpu = if k.cur_vcpuid == NO_VCPU {
                -1
            } else {
                Z::from(k.cur_vcpuid)
            };
            let mode = (Z::from(k.cur_vmid), vcpu, k.ihost, k.icore);
            let want = (m.cur_vmid, m.cur_vcpuid, m.ihost, m.icore);
            if mode != want {
                out.push(format!(
                    "CPU {i} mode (vm, vcpu, ihost, icore): core {mode:?}, model {want:?}"
                ));
            }
            let phys = abs_ctxt(&self.core.cpus[i].regs, c);
            if phys != m.regs {
                out.push(format!(
                    "CPU {i} registers differ{}",
                    ctxt_diff(&phys, &m.regs)
                ));
            }
        }
        out
    }

    /// The untrusted values of the step as the checker derives them, in the order the core
    /// took them; a value the core read differently is an `input` mismatch.
    fn derive_inputs(
        &self,
        st: &Step,
        core: &StepResult,
        access: Option<Access>,
        out: &mut Vec<String>,
    ) -> Vec<(u32, u64)> {
        let mut data = core.rec.data.clone();
        self.derive_cipher_inputs(st, &mut data, out);
        let Some(regs) = core.trap_regs.as_ref() else {
            return data;
        };
        let x = regs.regs.x;
        let is_run = matches!(st.action, Action::VcpuRun { .. })
            || call_of(&st.action).is_some_and(|(n, _)| n == hvc::VCPU_RUN);
        if is_run {
            for (k, &(v, val)) in core.rec.core.iter().enumerate().take(4) {
                if u64::from(v) != x[1] || val != x[2 + k] {
                    out.push(format!(
                        "input: vcpu_run control value {k}: core read {val:#x} for vm {v}, the host's x{} holds {:#x} for vm {}",
                        2 + k,
                        x[2 + k],
                        x[1]
                    ));
                }
            }
            let Some(run) =
                crate::run_inputs::vcpu_run_inputs(&self.model.global, &x, regs.regs.actlr_el1)
            else {
                return data;
            };
            let g = &self.model.global;
            let took = data.iter().filter(|d| d.0 == run.vmid as u32).count();
            if let Some((v, src)) = run.missing(took, core.outcome == Outcome::Halt) {
                out.push(format!(
                    "input: value {took} of principal {}: the core took none, {src} holds {v:#x}",
                    run.vmid
                ));
            }
            let (vmid, resumed, mut want) = (run.vmid, run.resumed, run.want);
            // Then the first word of every host page the proposed mapping gives the VM,
            // as the host left it.
            let (gpa, pte, level) = (x[3], x[4], x[5]);
            if resumed && (kc::PAGE_SIZE..kc::KVM_ADDR_SPACE).contains(&gpa) {
                let pfn = kc::phys_page(pte) / 4096;
                let pages = match level {
                    2 if pfn.is_multiple_of(512) => pfn..pfn + 512,
                    2 => pfn..pfn,
                    _ => pfn..pfn + 1,
                };
                for p in pages {
                    if g.shared.s2page.get(z(p)).s2_owner == HOSTVISOR {
                        let src = format!("the host's page {p:#x} (word 0)");
                        want.push((self.shadow.word(p, 0), src));
                    }
                }
            }
            for (k, (v, src)) in want.iter().enumerate() {
                expect(out, &mut data, vmid as u32, k, *v, src);
            }
            return data;
        }
        if let Action::GuestHvc {
            op: corevisor_sim::scenario::ShareOp::Revoke,
            gpa,
            size,
        } = st.action
        {
            // A revoke that drops a page's last share takes its first word, as the host left it.
            let g = &self.model.global;
            let vm = self.model.cpus[st.cpu as usize].cur_vmid;
            let first = gpa as u64 / 4096;
            let n = (size as u64).div_ceil(4096).min(1 << 20);
            let mut k = 0;
            for gfn in first..first.saturating_add(n) {
                let pfn = self.model_pfn(vm, gfn);
                let p = g.shared.s2page.get(z(pfn));
                if pfn != 0 && p.s2_owner == vm && p.s2_count == 1 {
                    let src = format!("the shared page {pfn:#x} (word 0)");
                    expect(out, &mut data, vm as u32, k, self.shadow.word(pfn, 0), &src);
                    k += 1;
                }
            }
            return data;
        }
        let aborted = core.traps.first().is_some_and(|t| t.0 == "vm_exit_handler")
            && matches!(
                st.action,
                Action::GuestLoad { .. } | Action::GuestStore { .. } | Action::GuestFetch { .. }
            );
        if aborted {
            let vm = self.core.cpus[st.cpu as usize].run.cur_vmid;
            let vm = if vm == kc::HOSTVISOR {
                // The vCPU left: the VM is the one the model ran.
                self.model.cpus[st.cpu as usize].cur_vmid as u32
            } else {
                vm
            };
            expect(out, &mut data, vm, 0, regs.regs.esr_el2, "ESR_EL2");
        }
        if let (Some(a), Some(_), None) = (access, core.value, access.and_then(|a| a.store)) {
            // The load's value is the last value the principal gave this step.
            let want = self.shadow.word(a.pfn, a.word);
            let n = data.iter().filter(|d| d.0 == a.principal).count();
            if n > 0 {
                let src = format!("memory at frame {:#x} word {}", a.pfn, a.word);
                expect(out, &mut data, a.principal, n - 1, want, &src);
            }
        }
        data
    }

    /// What the cipher hypercalls take from the host's stream, as the checker derives it
    /// (issue 22): an export's first ciphertext word (the model's plaintext sealed under the
    /// export's nonce), an import's verdict (the checker's own record of the export
    /// authenticates the host's buffer in its copy of memory, or not) and the plaintext it
    /// opens to.
    fn derive_cipher_inputs(&self, st: &Step, data: &mut [(u32, u64)], out: &mut Vec<String>) {
        let Some((num, args)) = call_of(&st.action) else {
            return;
        };
        let a = |k: usize| args.get(k).copied().unwrap_or(0);
        let host = HOSTVISOR as u32;
        match num {
            hvc::ENCRYPT_BUF | hvc::SAVE_CRYPT_VCPU => {
                let Some(plain) = self.export_plaintext(num, &args).filter(|p| p.1[0]) else {
                    return;
                };
                let (sealed, _) = self.exports.seal(a(0) as u32, &plain.0);
                let src = format!(
                    "the model's plaintext sealed as export {}",
                    self.exports.next_seq()
                );
                expect(out, data, host, 0, sealed[0], &src);
            }
            hvc::DECRYPT_BUF | hvc::LOAD_CRYPT_VCPU => {
                let (buf, handle) = if num == hvc::DECRYPT_BUF {
                    (a(1) / 4096, a(2))
                } else {
                    (kc::phys_page(a(2)) / 4096, a(3))
                };
                let opened = (num == hvc::DECRYPT_BUF || a(2) < kc::KVM_PHYS_SIZE)
                    .then(|| self.exports.open(handle, &self.shadow.page(buf)))
                    .flatten();
                let src = format!("the checker's verdict on handle {handle}");
                expect(out, data, host, 0, opened.is_some() as u64, &src);
                if let Some((_, plain)) = opened {
                    let n = if num == hvc::DECRYPT_BUF {
                        1
                    } else {
                        VCPU_RECORD_WORDS
                    };
                    for (k, w) in plain.iter().take(n).enumerate() {
                        let src = format!("word {k} of export {handle} opened");
                        expect(out, data, host, k + 1, *w, &src);
                    }
                }
            }
            _ => {}
        }
    }

    /// What an export call must seal, as the model says (before the step): VM `a0`'s page
    /// `a1` in the checker's copy (ENCRYPT_BUF), or vCPU (`a0`, `a1`)'s record from the
    /// model's shadow context (SAVE_CRYPT_VCPU), with the words the model does not know
    /// (x0..x30 of a context running on a CPU: hardware holds them) flagged.
    fn export_plaintext(&self, num: u64, args: &[u64]) -> Option<([u64; 512], [bool; 512])> {
        let a = |k: usize| args.get(k).copied().unwrap_or(0);
        let mut known = [true; 512];
        if num == hvc::ENCRYPT_BUF {
            return Some((self.shadow.page(a(1) / 4096), known));
        }
        if num != hvc::SAVE_CRYPT_VCPU {
            return None;
        }
        let (vmid, vcpu) = (a(0), a(1));
        if !(1..kc::COREVISOR as u64).contains(&vmid) || vcpu >= 8 {
            return None;
        }
        let id = ctxt_id(z(vmid), z(vcpu));
        let c = self.model.global.shadow_ctxts.get(id);
        let mut page = [0u64; 512];
        for (k, w) in page.iter_mut().enumerate().take(VCPU_RECORD_WORDS) {
            let i = match k {
                0..=30 => k as u64,
                31 => kidx::PC,
                32 => kidx::PSTATE,
                _ => kidx::SYSREGS_START + (k - 33) as u64,
            };
            *w = get_shadow_ctxt_specx(z(i), &c.ctxt_regs, &c.ctxt_states) as u64;
        }
        if usize::try_from(id).is_ok_and(|id| self.live_contexts().contains(&id)) {
            known[..31].fill(false);
        }
        Some((page, known))
    }

    /// After an export or import the model accepted: the page KCore wrote must be the one
    /// the checker computes (an export decrypts, under its nonce, to the model's
    /// plaintext; an import is the plaintext of the host's buffer), and that page goes into
    /// the checker's copy.
    fn check_cipher_pages(
        &mut self,
        num: u64,
        args: &[u64],
        plain: Option<([u64; 512], [bool; 512])>,
    ) -> Vec<String> {
        let a = |k: usize| args.get(k).copied().unwrap_or(0);
        let mut out = Vec::new();
        let name = |n| match n {
            hvc::ENCRYPT_BUF => "ENCRYPT_BUF",
            hvc::SAVE_CRYPT_VCPU => "SAVE_CRYPT_VCPU",
            _ => "DECRYPT_BUF",
        };
        match num {
            hvc::ENCRYPT_BUF | hvc::SAVE_CRYPT_VCPU => {
                let Some((mut want, known)) = plain else {
                    return out;
                };
                let (vmid, outpfn) = (a(0) as u32, a(2) / 4096);
                let seq = self.exports.next_seq();
                let have = self.core.core.hw.page_words(outpfn);
                let opened = Exports::decrypt(vmid, seq, &have);
                for w in 0..512 {
                    if !known[w] {
                        want[w] = opened[w];
                    }
                }
                let bad = differing_words(&opened, &want, "");
                if !bad.is_empty() {
                    out.push(format!(
                        "export: {} of VM {vmid} into frame {outpfn:#x} does not decrypt under export {seq}'s nonce to the model's plaintext ({})",
                        name(num),
                        bad.join("; ")
                    ));
                }
                let (sealed, hdr) = self.exports.seal(vmid, &want);
                if self.is_ram(outpfn) {
                    self.shadow.resync(outpfn, sealed);
                }
                self.exports.commit(hdr);
            }
            hvc::DECRYPT_BUF => {
                let (pfn, handle) = (a(1) / 4096, a(2));
                let Some((_, want)) = self.exports.open(handle, &self.shadow.page(pfn)) else {
                    out.push(format!(
                        "import: DECRYPT_BUF of handle {handle} at frame {pfn:#x} accepted, the checker's record does not authenticate it"
                    ));
                    return out;
                };
                self.exports.consume(handle);
                let have = self.core.core.hw.page_words(pfn);
                let bad = differing_words(&have, &want, "core ");
                if !bad.is_empty() {
                    out.push(format!(
                        "import: DECRYPT_BUF of handle {handle} into frame {pfn:#x} ({})",
                        bad.join("; ")
                    ));
                }
                if self.is_ram(pfn) {
                    self.shadow.resync(pfn, want);
                }
            }
            hvc::LOAD_CRYPT_VCPU => {
                let (buf, handle) = (kc::phys_page(a(2)) / 4096, a(3));
                if self.exports.open(handle, &self.shadow.page(buf)).is_some() {
                    self.exports.consume(handle);
                }
            }
            _ => {}
        }
        out
    }

    /// The checker's copy after the step: principals' stores where the model put them,
    /// scrubs, cipher-written pages (checked), KCore's own writes to its region.
    fn update_shadow(
        &mut self,
        st: &Step,
        core: &StepResult,
        access: Option<Access>,
        result: Outcome,
        before: &ZMap<corevisor_spec::state::S2Page>,
        plain: Option<([u64; 512], [bool; 512])>,
    ) -> Vec<String> {
        let mut cipher = Vec::new();
        if result == Outcome::Ok {
            if let Some(Access {
                pfn,
                word,
                store: Some(v),
                ..
            }) = access
            {
                self.shadow.set(pfn, word, v);
            }
        }
        if let Some((num, args)) = call_of(&st.action) {
            let a = |k: usize| args.get(k).copied().unwrap_or(0);
            let after = &self.model.global.shared.s2page;
            if num == hvc::CLEAR_VM_S2_RANGE {
                let (vm, lo) = (z(a(0)), z(a(1) / 4096));
                let hi = lo.saturating_add(z(a(2) / 4096));
                let scrubbed: Vec<u64> = before
                    .range(lo, hi)
                    .filter(|(pfn, p)| {
                        vm != HOSTVISOR && p.s2_owner == vm && after.get(*pfn).s2_owner == HOSTVISOR
                    })
                    .map(|(pfn, _)| pfn as u64)
                    .collect();
                for pfn in scrubbed {
                    self.shadow.zero(pfn);
                }
            }
            if result == Outcome::Ok {
                cipher = self.check_cipher_pages(num, &args, plain);
            }
        }
        for pfn in self.dirty_frames(|p| self.in_kcore(p)) {
            let mut words = self.core.core.hw.page_words(pfn);
            for &(pa, _) in &core.stores {
                if pa / 4096 == pfn {
                    // Not KCore's write: the copy keeps what was there.
                    words[((pa / 8) & 511) as usize] = self.shadow.word(pfn, (pa / 8) & 511);
                }
            }
            if words != self.shadow.page(pfn) {
                self.shadow.resync(pfn, words);
            }
        }
        cipher
    }

    /// The core's frames written in this step that `keep` selects.
    fn dirty_frames(&self, keep: impl Fn(u64) -> bool) -> Vec<u64> {
        let dirty = self.core.core.hw.dirty();
        dirty.iter().copied().filter(|&p| keep(p)).collect()
    }

    /// Every frame that changed on either side, in all 512 words.
    pub(crate) fn compare_memory(&self) -> Vec<String> {
        let mem = &self.core.core.hw;
        let frames: BTreeSet<u64> = mem
            .dirty()
            .iter()
            .chain(self.shadow.changed().iter())
            .copied()
            .filter(|&p| self.is_ram(p))
            .collect();
        let mut out = Vec::new();
        for pfn in frames {
            let (have, want) = (mem.page_words(pfn), self.shadow.page(pfn));
            if have != want {
                let diff: Vec<String> = (0..512)
                    .filter(|&w| have[w] != want[w])
                    .take(3)
                    .map(|w| format!("word {w}: core {:#x}, expected {:#x}", have[w], want[w]))
                    .collect();
                out.push(format!(
                    "page contents differ at frame {pfn:#x} ({})",
                    diff.join("; ")
                ));
            }
        }
        out
    }

    /// `scrubbed_page_zero`, on the core: every page whose owner went from a VM to the host
    /// in this step is zero in all 512 words.
    fn scrubbed_pages_are_zero(&mut self) -> Vec<String> {
        let l = self.core.core.layout;
        let ram0 = l.ram_base / 4096;
        let meta_end = l.meta_base + self.owners.len() as u64 * 8;
        let frames = self.dirty_frames(|f| f * 4096 < meta_end && (f + 1) * 4096 > l.meta_base);
        let mut out = Vec::new();
        for f in frames {
            let lo = (f * 4096).max(l.meta_base);
            let hi = ((f + 1) * 4096).min(meta_end);
            let raw = self.core.core.hw.page_words(f);
            for i in (lo - l.meta_base) / 8..(hi - l.meta_base) / 8 {
                // An unchanged metadata word is an unchanged owner.
                let w = raw[(((l.meta_base / 8) + i) & 511) as usize];
                if std::mem::replace(&mut self.meta[i as usize], w) == w {
                    continue;
                }
                let pfn = ram0 + i;
                let now = self.core.core.page(pfn).owner;
                let was = std::mem::replace(&mut self.owners[i as usize], now);
                if now == kc::HOSTVISOR && was != now && 0 < was && was < kc::COREVISOR {
                    let words = self.core.core.hw.read64(pfn * 4096);
                    let page = self.core.core.hw.page_words(pfn);
                    if let Some(w) = page.iter().position(|&v| v != 0) {
                        out.push(format!(
                            "invariant scrubbed_page_zero broken: page {pfn:#x} went from VM {was} to the host with word {w} = {:#x} (word 0 = {words:#x})",
                            page[w]
                        ));
                    }
                }
            }
        }
        out
    }
}

/// The `k`-th value principal `who` gave this step must be `want` (read from `src`): an
/// `input` mismatch otherwise, and the model gets `want`.
fn expect(
    out: &mut Vec<String>,
    data: &mut [(u32, u64)],
    who: u32,
    k: usize,
    want: u64,
    src: &str,
) {
    let Some(pos) = data
        .iter()
        .enumerate()
        .filter(|(_, d)| d.0 == who)
        .map(|(i, _)| i)
        .nth(k)
    else {
        return;
    };
    if data[pos].1 != want {
        out.push(format!(
            "input: value {k} of principal {who}: core read {:#x}, {src} holds {want:#x}",
            data[pos].1
        ));
        data[pos].1 = want;
    }
}

/// The first differing entry of a `Shared` field, for the message.
fn detail(name: &str, a: &Shared, b: &Shared) -> String {
    let first = |x: Vec<(Z, String)>, y: Vec<(Z, String)>| {
        let n = x.len().max(y.len());
        for k in 0..n {
            if x.get(k) != y.get(k) {
                return format!(" (first: core {:?}, model {:?})", x.get(k), y.get(k));
            }
        }
        String::new()
    };
    match name {
        "page metadata" => first(
            a.s2page
                .entries()
                .map(|(k, v)| (k, format!("{v:?}")))
                .collect(),
            b.s2page
                .entries()
                .map(|(k, v)| (k, format!("{v:?}")))
                .collect(),
        ),
        "page tables" => first(
            a.npts
                .entries()
                .map(|(k, v)| (k, format!("{:?}", v.pt.entries().collect::<Vec<_>>())))
                .collect(),
            b.npts
                .entries()
                .map(|(k, v)| (k, format!("{:?}", v.pt.entries().collect::<Vec<_>>())))
                .collect(),
        ),
        "VM records" => first(
            a.vminfos
                .entries()
                .map(|(k, v)| (k, format!("{v:?}")))
                .collect(),
            b.vminfos
                .entries()
                .map(|(k, v)| (k, format!("{v:?}")))
                .collect(),
        ),
        _ => String::new(),
    }
}

/// The registers that differ, for the message.
fn ctxt_diff(a: &Ctxt, b: &Ctxt) -> String {
    let (fa, fb) = (format!("{a:?}"), format!("{b:?}"));
    let split = |s: &str| -> Vec<String> { s.split(", ").map(str::to_string).collect() };
    let (xa, xb) = (split(&fa), split(&fb));
    let d: Vec<String> = xa
        .iter()
        .zip(xb.iter())
        .filter(|(p, q)| p != q)
        .take(4)
        .map(|(p, q)| format!("{p} vs {q}"))
        .collect();
    format!(" ({})", d.join("; "))
}

/// The model's view of the core machine (`abs` of everything), for invariants and reports.
pub fn abstract_machine(cm: &CoreMachine, template: &ModelMachine) -> ModelMachine {
    let c = &cm.core;
    let mut m = template.clone();
    // A fresh state shares nothing with the template's memoised verdict.
    m.invariant_memo = Default::default();
    m.global.shared = abs_shared(c, &template.global.shared);
    m.global.halt = c.halted();
    for (id, s) in c.shadow.iter().enumerate() {
        m.global
            .shadow_ctxts
            .set_mut(id as Z, abs_ctxt(&s.read(), c));
    }
    for (i, cpu) in m.cpus.iter_mut().enumerate() {
        let k = cm.cpus[i].run;
        cpu.cur_vmid = Z::from(k.cur_vmid);
        cpu.cur_vcpuid = if k.cur_vcpuid == NO_VCPU {
            -1
        } else {
            Z::from(k.cur_vcpuid)
        };
        cpu.ihost = k.ihost;
        cpu.icore = k.icore;
        cpu.regs = abs_ctxt(&cm.cpus[i].regs, c);
    }
    m
}

/// The first three words of a page where `have` differs from the model's plaintext `want`,
/// each as "word W: {who}HAVE, the model's plaintext WANT".
fn differing_words(have: &[u64; 512], want: &[u64; 512], who: &str) -> Vec<String> {
    (0..512)
        .filter(|&w| have[w] != want[w])
        .take(3)
        .map(|w| {
            format!(
                "word {w}: {who}{:#x}, the model's plaintext {:#x}",
                have[w], want[w]
            )
        })
        .collect()
}
