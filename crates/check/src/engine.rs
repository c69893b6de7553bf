//! The model engine: runs a scenario on the reference model the way hardware would drive
//! KCore (ARCHITECTURE.md, "Scenario files").
//!
//! The machine is one machine-wide part (shared state, shadow contexts, oracles and their
//! counters, the event log, `halt`) and one part per CPU (mode flags, current vm/vcpu,
//! physical registers). A step on CPU `i` assembles the seed's `RData` from the two, calls
//! the entry point, and splits the result back. Steps run one at a time, so the other CPUs'
//! oracle (`soracle`) is empty and `query_oracle` is the identity between them.
//!
//! A principal's access whose mapping is missing becomes the fault hardware would raise,
//! with the registers hardware would set: a host stage-2 fault (then the access is retried
//! once) or a VM exit with a data abort (the vCPU leaves; the host serves the fault with a
//! later `vcpu_run` carrying a `map`). Values a step reads from an untrusted principal come
//! from the step's `oracle` list, else from documented defaults (first-run pc = first image
//! segment's load address, pstate = 0x3C5, everything else 0).

use crate::invariants::{self, CpuView, SharedMemo};
use corevisor_sim::scenario::{Action, HvcCall, HvcName, Scenario, ShareOp, Step};
use corevisor_spec::consts::*;
use corevisor_spec::profile::{Consts, Profile, ProfileKind};
use corevisor_spec::state::*;
use corevisor_spec::trap_handler::*;
use corevisor_spec::{Machine, Z};
use std::sync::Mutex;

/// The register every scripted load/store uses (x1).
pub const ACCESS_REG: Z = 1;

/// Outcome of a step (ARCHITECTURE.md output format): the one type every engine reports.
pub use corevisor_sim::machine::Outcome;

#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    pub step: usize,
    pub kind: &'static str,
    pub cpu: Z,
    /// What the step did, e.g. `hvc REGISTER_KVM`.
    pub what: String,
    pub result: Outcome,
    pub x0: Option<Z>,
    pub value: Option<Z>,
    /// Invariants broken after this step.
    pub broken: Vec<&'static str>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VmReport {
    pub vmid: Z,
    pub state: &'static str,
    pub vcpus: Vec<&'static str>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageReport {
    pub pfn: Z,
    pub owner: Z,
    pub count: Z,
    pub gfn: Z,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FinalReport {
    pub halted: bool,
    pub vms: Vec<VmReport>,
    pub pages: Vec<PageReport>,
    /// Invariants broken after any step (empty = "ok").
    pub broken: Vec<&'static str>,
}

/// A scenario that cannot run (bad machine, bad CPU index, unsupported step): the CLI
/// prints it as one line and exits 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineError(pub String);

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One CPU's own part of the state.
#[derive(Clone, Debug, PartialEq)]
pub struct Cpu {
    pub curid: Z,
    pub cur_vmid: Z,
    pub cur_vcpuid: Z,
    pub ihost: bool,
    pub icore: bool,
    pub regs: Ctxt,
}

/// What a checker running the core beside the model gives the model's next step instead of
/// the engine's own inputs: the untrusted values the core recorded, and the trapping CPU's
/// register file as the core's first handler found it (`lockstep.rs`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Injection {
    /// (principal, value) in the order taken: the `doracle` streams.
    pub data: Vec<(Z, Z)>,
    /// (vmid, value): the `core_doracle` streams.
    pub core: Vec<(Z, Z)>,
    pub regs: Option<Ctxt>,
}

/// The model machine.
#[derive(Clone, Debug)]
pub struct ModelMachine {
    pub profile: Profile,
    pub machine: Machine,
    /// The machine-wide part, kept in an `RData` whose per-CPU fields are unused.
    pub global: RData,
    pub cpus: Vec<Cpu>,
    /// Inputs for the next step (see [`Injection`]); `None` = the engine's own.
    pub inject: Option<Injection>,
    /// This step's oracle values were injected: the engine feeds nothing of its own.
    injected: bool,
    /// The register file to install at this step's first entry-point call.
    pending_regs: Option<Ctxt>,
    /// The machine-wide invariants' last verdicts and what they were computed from: a step
    /// is charged for what it changed (`invariants::SharedMemo`).
    pub(crate) invariant_memo: MemoCell,
}

/// A [`SharedMemo`] behind `&self` (a lock, so a machine stays `Sync`); a copy of the
/// machine takes a copy of it.
#[derive(Debug, Default)]
pub(crate) struct MemoCell(Mutex<SharedMemo>);

impl Clone for MemoCell {
    fn clone(&self) -> Self {
        MemoCell(Mutex::new(self.lock().clone()))
    }
}

impl MemoCell {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, SharedMemo> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub fn state_name(s: Z) -> &'static str {
    match s {
        UNUSED => "UNUSED",
        MAPPED => "MAPPED",
        READY => "READY",
        VERIFIED => "VERIFIED",
        POWEROFF => "POWEROFF",
        ACTIVE => "ACTIVE",
        _ => "?",
    }
}

/// What a step does, as the output names it (e.g. `hvc REGISTER_KVM`).
pub fn describe(a: &Action) -> String {
    match a {
        Action::Hvc { call, .. } => format!("hvc {call}"),
        Action::VcpuRun { vm, vcpu, .. } => format!("vcpu_run vm{vm} vcpu{vcpu}"),
        Action::HostLoad { addr } => format!("host_load {addr:#x}"),
        Action::HostStore { addr, value } => format!("host_store {addr:#x} <- {value:#x}"),
        Action::GuestLoad { gpa } => format!("guest_load {gpa:#x}"),
        Action::GuestFetch { gpa } => format!("guest_fetch {gpa:#x}"),
        Action::GuestStore { gpa, value } => format!("guest_store {gpa:#x} <- {value:#x}"),
        Action::GuestHvc { op, gpa, size } => {
            let name = match op {
                ShareOp::Grant => "GRANT",
                ShareOp::Revoke => "REVOKE",
            };
            format!("guest_hvc {name} {gpa:#x} +{size:#x}")
        }
        Action::GuestPsciSystemOff => "guest_psci SYSTEM_OFF".to_string(),
        Action::GuestWfx => "guest_wfx".to_string(),
        Action::GuestSysreg => "guest_sysreg".to_string(),
        Action::GuestException { ec } => format!("guest_exception ec {ec:#x}"),
        Action::Irq => "irq".to_string(),
        Action::DmaLoad {
            smmu,
            cb,
            iova,
            stream,
        } => format!(
            "dma_load smmu{smmu} cb{cb}{} {iova:#x}",
            stream_name(*stream)
        ),
        Action::DmaStore {
            smmu,
            cb,
            iova,
            value,
            stream,
        } => {
            format!(
                "dma_store smmu{smmu} cb{cb}{} {iova:#x} <- {value:#x}",
                stream_name(*stream)
            )
        }
        Action::Host(_) => "host".to_string(),
    }
}

/// The error for a host-model macro step on an engine without the host model.
pub fn host_macro_refused(step: usize) -> EngineError {
    EngineError(format!(
        "step {step}: field \"host\": host-model macro actions need the simulator's host model, which this engine does not have yet; write the raw steps instead"
    ))
}

/// The call number of a named hypercall in profile `c` (`None`: VCPU_RUN under the seed,
/// which has no number; it is its own entry point).
pub fn hvc_number(c: &Consts, n: HvcName) -> Option<Z> {
    Some(match n {
        HvcName::TimerSetCntvoff => c.HVC_TIMER_SET_CNTVOFF,
        HvcName::ClearVmS2Range => c.HVC_CLEAR_VM_S2_RANGE,
        HvcName::SetBootInfo => c.HVC_SET_BOOT_INFO,
        HvcName::RemapVmImage => c.HVC_REMAP_VM_IMAGE,
        HvcName::VerifyVmImage => c.HVC_VERIFY_VM_IMAGE,
        HvcName::SmmuFreePgd => c.HVC_SMMU_FREE_PGD,
        HvcName::SmmuAllocPgd => c.HVC_SMMU_ALLOC_PGD,
        HvcName::SmmuLpaeMap => c.HVC_SMMU_LPAE_MAP,
        HvcName::SmmuLpaeIovaToPhys => c.HVC_SMMU_LPAE_IOVA_TO_PHYS,
        HvcName::SmmuClear => c.HVC_SMMU_CLEAR,
        HvcName::PhysAddrIoremap => c.HVC_PHYS_ADDR_IOREMAP,
        HvcName::RegisterKvm => c.HVC_REGISTER_KVM,
        HvcName::RegisterVcpu => c.HVC_REGISTER_VCPU,
        HvcName::EncryptBuf => c.HVC_ENCRYPT_BUF,
        HvcName::DecryptBuf => c.HVC_DECRYPT_BUF,
        HvcName::SaveCryptVcpu => c.HVC_SAVE_CRYPT_VCPU,
        HvcName::LoadCryptVcpu => c.HVC_LOAD_CRYPT_VCPU,
        HvcName::VcpuRun => return c.HVC_VCPU_RUN,
    })
}

/// The syndromes hardware reports for the engines' aborts: the simulator's, so both
/// engines trap with the same registers.
fn dabt_esr(write: bool) -> Z {
    Z::from(corevisor_sim::machine::dabt_esr(write))
}

fn stream_name(stream: Option<i128>) -> String {
    stream.map_or(String::new(), |s| format!(" stream {s:#x}"))
}

fn iabt_esr() -> Z {
    Z::from(corevisor_sim::machine::iabt_esr())
}

/// The default machine of a profile. Under `seed` it is large enough for the seed's pools
/// (17 × 32 MiB) in KCore's region: the simulated memory is sparse, so size costs nothing.
pub fn default_machine(kind: ProfileKind) -> Machine {
    match kind {
        ProfileKind::Arm => Machine::default(),
        // KCore's region starts where the arm default's does (0x4E00_0000): the host's
        // RAM is the same in both profiles.
        ProfileKind::Seed => Machine {
            ram_mib: 800,
            kcore_mib: 576,
            ..Machine::default()
        },
    }
}

/// The layout of KCore's region on `m` with `profile`'s pool geometry (the simulator's
/// image size), as the core would plan it.
pub fn kcore_layout(
    profile: &Profile,
    m: &Machine,
) -> Result<corevisor_kcore::layout::Layout, corevisor_kcore::layout::RegionTooSmall> {
    let pools = &profile.c.pools;
    let spans = corevisor_kcore::layout::PoolSpans {
        npt: pools.npt_span() as u64,
        smmu: (pools.smmu_pool_end - SMMU_POOL_START) as u64,
    };
    corevisor_kcore::layout::Layout::plan(
        m.ram_base as u64,
        m.ram_end() as u64,
        m.kcore_base() as u64,
        m.cpus as usize,
        spans,
        corevisor_sim::machine::KCORE_IMAGE_BYTES,
    )
}

/// A KCore region too small for what KCore keeps in it is refused, naming the field.
/// The host's stage-2 maps 4 KiB pages only: every 2 MiB region it may touch (its RAM below
/// KCore's region, each declared device range) takes one level-3 table of its pool, and
/// KCore halts on the host's own access once the pool is spent (docs/deviations.md, "The
/// host's 4 KiB map capacity"). A machine that needs more tables than the pool holds is
/// refused before it runs.
fn check_host_capacity(profile: &Profile, m: &Machine) -> Result<(), EngineError> {
    const REGION: Z = 0x20_0000;
    let p = &profile.c.pools;
    let tables = p.l3_tables(HOSTVISOR);
    let mut regions = std::collections::BTreeSet::new();
    let mut cover = |from: Z, to: Z| {
        for r in from / REGION..(to + REGION - 1) / REGION {
            regions.insert(r);
        }
    };
    cover(m.ram_base, m.kcore_base());
    for &(b, s) in &m.mmio {
        cover(b, b + s);
    }
    if regions.len() as Z > tables {
        return Err(EngineError(format!(
            "field \"machine.ram_mib\": the host's RAM below KCore's region and the declared devices span {} regions of 2 MiB, and the host's stage-2 pool has level-3 tables for {tables} ({} profile): KCore would halt on the host's own access (raise kcore_mib or lower ram_mib)",
            regions.len(),
            profile.name()
        )));
    }
    Ok(())
}

fn check_region(profile: &Profile, m: &Machine) -> Result<(), EngineError> {
    kcore_layout(profile, m).map(|_| ()).map_err(|e| {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        EngineError(format!(
            "field \"machine.kcore_mib\": KCore's region of {:.1} MiB cannot hold its image, per-CPU areas, page metadata and {} page-table pools: it needs {:.1} MiB",
            mib(e.have),
            profile.name(),
            mib(e.needed)
        ))
    })
}

impl ModelMachine {
    pub fn new(profile: Profile, machine: Machine) -> Self {
        let global = machine.initial_state(&profile, 0);
        let cpus = (0..machine.cpus)
            .map(|i| Cpu {
                curid: i,
                cur_vmid: HOSTVISOR,
                cur_vcpuid: i,
                ihost: true,
                icore: false,
                regs: Ctxt::default(),
            })
            .collect();
        ModelMachine {
            profile,
            machine,
            global,
            cpus,
            inject: None,
            injected: false,
            pending_regs: None,
            invariant_memo: MemoCell::default(),
        }
    }

    /// Builds the machine a scenario describes, with `profile` overriding the file's.
    pub fn for_scenario(sc: &Scenario, profile: Option<ProfileKind>) -> Result<Self, EngineError> {
        let kind = match (profile, sc.profile.as_deref()) {
            (Some(k), _) => k,
            (None, Some("seed")) => ProfileKind::Seed,
            _ => ProfileKind::Arm,
        };
        let profile = Profile::of(kind);
        let d = default_machine(kind);
        let m = &sc.machine;
        let smmus = m.smmus.unwrap_or(d.smmus);
        let machine = Machine {
            cpus: m.cpus.unwrap_or(d.cpus),
            ram_base: m.ram_base.unwrap_or(d.ram_base),
            ram_mib: m.ram_mib.unwrap_or(d.ram_mib),
            kcore_mib: m.kcore_mib.unwrap_or(d.kcore_mib),
            smmus,
            mmio: m
                .mmio
                .clone()
                .unwrap_or_else(|| Machine::default_mmio(smmus)),
        };
        machine
            .validate()
            .map_err(|(field, msg)| EngineError(format!("field \"machine.{field}\": {msg}")))?;
        check_region(profile, &machine)?;
        check_host_capacity(profile, &machine)?;
        Ok(Self::new(*profile, machine))
    }

    /// The seed's `RData` as CPU `i` sees it.
    pub fn view(&self, i: usize) -> RData {
        let c = &self.cpus[i];
        RData {
            curid: c.curid,
            cur_vmid: c.cur_vmid,
            cur_vcpuid: c.cur_vcpuid,
            ihost: c.ihost,
            icore: c.icore,
            regs: c.regs.clone(),
            ..self.global.clone()
        }
    }

    /// Takes back the result of an entry point run on CPU `i`.
    pub fn absorb(&mut self, i: usize, s: RData) {
        self.cpus[i] = Cpu {
            curid: s.curid,
            cur_vmid: s.cur_vmid,
            cur_vcpuid: s.cur_vcpuid,
            ihost: s.ihost,
            icore: s.icore,
            regs: s.regs.clone(),
        };
        self.global = s;
    }

    /// Puts `values` at the next positions of principal `vmid`'s data-oracle stream.
    fn feed(&mut self, vmid: Z, values: &[Z]) {
        let base = *self.global.data_log.get(vmid);
        for (k, v) in values.iter().enumerate() {
            self.global.doracle.put(vmid, base + k as Z, *v);
        }
    }

    /// Puts an injection's values at the next positions of their streams.
    fn apply_injection(&mut self, inj: Injection) {
        let mut next = std::collections::BTreeMap::new();
        for (v, x) in inj.data {
            let n = next.entry(v).or_insert(*self.global.data_log.get(v));
            self.global.doracle.put(v, *n, x);
            *n += 1;
        }
        let mut next = std::collections::BTreeMap::new();
        for (v, x) in inj.core {
            let n = next.entry(v).or_insert(*self.global.core_data_log.get(v));
            self.global.core_doracle.put(v, *n, x);
            *n += 1;
        }
        self.pending_regs = inj.regs;
        self.injected = true;
    }

    /// Defaults overlaid by the step's own oracle values.
    fn feed_with(&mut self, vmid: Z, defaults: &[Z], step: &Step) {
        if self.injected {
            return;
        }
        let mut v = defaults.to_vec();
        for (k, x) in step.oracle.iter().enumerate() {
            if k < v.len() {
                v[k] = *x;
            } else {
                v.push(*x);
            }
        }
        self.feed(vmid, &v);
    }

    fn shadow_reg(&self, ctxtid: Z, reg: Z) -> Z {
        self.global.shadow_ctxts.get(ctxtid).ctxt_regs.x[reg as usize]
    }

    fn set_shadow_reg(&mut self, ctxtid: Z, reg: Z, v: Z) {
        let mut c = self.global.shadow_ctxts.get(ctxtid).clone();
        c.ctxt_regs.x[reg as usize] = v;
        self.global.shadow_ctxts.set_mut(ctxtid, c);
    }

    /// Runs `entry` on CPU `i`; `None` from the spec leaves the state unchanged.
    fn call(&mut self, i: usize, entry: impl Fn(&Profile, &RData) -> Option<RData>) -> Outcome {
        if let Some(r) = self.pending_regs.take() {
            self.cpus[i].regs = r;
        }
        let p = self.profile;
        match entry(&p, &self.view(i)) {
            None => Outcome::Undefined,
            Some(s) => {
                let halt = s.halt;
                self.absorb(i, s);
                if halt {
                    Outcome::Halt
                } else {
                    Outcome::Ok
                }
            }
        }
    }

    fn in_host_mode(&self, i: usize) -> bool {
        self.cpus[i].ihost && !self.cpus[i].icore
    }

    fn in_vm_mode(&self, i: usize) -> bool {
        !self.cpus[i].ihost && !self.cpus[i].icore
    }

    fn vcpu_run(
        &mut self,
        i: usize,
        step: &Step,
        vm: Z,
        vcpu: Z,
        map: Option<(Z, Z, Z)>,
        pc: Option<Z>,
    ) -> Outcome {
        let p = self.profile;
        {
            let regs = &mut self.cpus[i].regs.ctxt_regs;
            if p.q.vcpu_run_vmid_in_x0 {
                regs.x[0] = vm;
            } else {
                regs.x[0] = p.c.HVC_VCPU_RUN.unwrap_or(0);
                regs.x[1] = vm;
                regs.x[2] = vcpu;
            }
        }
        if is_vm(vm) && !self.injected {
            let n = *self.global.core_data_log.get(vm);
            let (gpa, pte, level) = map.unwrap_or((0, 0, 3));
            for (k, v) in [vcpu, gpa, pte, level].into_iter().enumerate() {
                self.global.core_doracle.put(vm, n + k as Z, v);
            }
            let first_run = is_vcpu(vcpu)
                && self
                    .global
                    .shadow_ctxts
                    .get(ctxt_id(vm, vcpu))
                    .ctxt_states
                    .dirty
                    == INVALID64
                && self.global.shared.vminfos.get(vm).VB.vm_inc_exe == 0;
            if first_run {
                let entry =
                    pc.unwrap_or(*self.global.shared.vminfos.get(vm).VB.vm_load_addr.get(0));
                self.feed_with(vm, &[entry, PSTATE_FAULT_BITS_64, 0], step);
            } else {
                self.feed_with(vm, &[], step);
            }
        }
        self.call(i, host_vcpu_run_handler_spec)
    }

    /// The host's load or store of `addr` (register x1), faulting like hardware.
    fn host_access(
        &mut self,
        i: usize,
        step: &Step,
        addr: Z,
        store: Option<Z>,
    ) -> (Outcome, Option<Z>) {
        if !self.in_host_mode(i) || addr < 0 {
            return (Outcome::Undefined, None);
        }
        let ctxtid = ctxt_id(HOSTVISOR, self.cpus[i].cur_vcpuid);
        if let Some(v) = store {
            self.cpus[i].regs.ctxt_regs.x[ACCESS_REG as usize] = v;
            self.set_shadow_reg(ctxtid, ACCESS_REG, v);
        }
        self.feed_with(HOSTVISOR, &[], step);
        let gfn = addr / PAGE_SIZE;
        let mapped = |m: &Self| m.global.shared.npts.get(HOSTVISOR).pt.get(gfn).0 != 0;
        if !mapped(self) {
            let regs = &mut self.cpus[i].regs.ctxt_regs;
            regs.hpfar_el2 = (addr >> 12) << 4;
            regs.far_el2 = addr;
            regs.esr_el2 = Z::from(corevisor_sim::machine::dabt_esr_sized(
                store.is_some(),
                step.access_size(),
            ));
            match self.call(i, host_npt_handler_spec) {
                Outcome::Ok => {}
                other => return (other, None),
            }
            let conf = &self.global.smmu_conf;
            let in_window = (0..conf.smmu_num).any(|k| {
                let b = *conf.smmu_phys_base.get(k);
                b <= addr && addr < b + *conf.smmu_size.get(k)
            });
            if in_window && !mapped(self) {
                // Emulated by KCore: the access completed in the handler.
                let v = store
                    .is_none()
                    .then(|| self.cpus[i].regs.ctxt_regs.x[ACCESS_REG as usize]);
                return (Outcome::Ok, v);
            }
            if !mapped(self) {
                return (Outcome::Fault, None);
            }
        }
        let p = self.profile;
        let r = if store.is_some() {
            self.call(i, |p, s| mem_store_spec(p, gfn, ACCESS_REG, s))
        } else {
            self.call(i, |p, s| mem_load_spec(p, gfn, ACCESS_REG, s))
        };
        let _ = p;
        let v = (r == Outcome::Ok && store.is_none()).then(|| self.shadow_reg(ctxtid, ACCESS_REG));
        if let Some(v) = v {
            // The load's destination is the CPU's x1, as hardware writes it.
            self.cpus[i].regs.ctxt_regs.x[ACCESS_REG as usize] = v;
        }
        (r, v)
    }

    /// The running VM's load or store of `gpa` (register x1); a missing mapping exits.
    fn guest_access(
        &mut self,
        i: usize,
        step: &Step,
        gpa: Z,
        store: Option<Z>,
    ) -> (Outcome, Option<Z>) {
        if !self.in_vm_mode(i) || gpa < 0 {
            return (Outcome::Undefined, None);
        }
        let (vm, vcpu) = (self.cpus[i].cur_vmid, self.cpus[i].cur_vcpuid);
        let ctxtid = ctxt_id(vm, vcpu);
        if let Some(v) = store {
            self.cpus[i].regs.ctxt_regs.x[ACCESS_REG as usize] = v;
            self.set_shadow_reg(ctxtid, ACCESS_REG, v);
        }
        let gfn = gpa / PAGE_SIZE;
        if self.global.shared.npts.get(vm).pt.get(gfn).0 == 0 {
            let esr = dabt_esr(store.is_some());
            return (self.stage2_abort(i, step, gpa, esr), None);
        }
        self.feed_with(vm, &[], step);
        let r = if store.is_some() {
            self.call(i, |p, s| mem_store_spec(p, gfn, ACCESS_REG, s))
        } else {
            self.call(i, |p, s| mem_load_spec(p, gfn, ACCESS_REG, s))
        };
        let v = (r == Outcome::Ok && store.is_none()).then(|| self.shadow_reg(ctxtid, ACCESS_REG));
        if let Some(v) = v {
            self.cpus[i].regs.ctxt_regs.x[ACCESS_REG as usize] = v;
        }
        (r, v)
    }

    /// The running VM fetches an instruction at `gpa`: nothing happens if it is mapped
    /// (fetches are not a spec step); otherwise an instruction abort exits to KCore.
    fn guest_fetch(&mut self, i: usize, step: &Step, gpa: Z) -> Outcome {
        if !self.in_vm_mode(i) || gpa < 0 {
            return Outcome::Undefined;
        }
        let vm = self.cpus[i].cur_vmid;
        if self.global.shared.npts.get(vm).pt.get(gpa / PAGE_SIZE).0 != 0 {
            return Outcome::Ok;
        }
        self.stage2_abort(i, step, gpa, iabt_esr())
    }

    /// A stage-2 abort of the VM on CPU `i` at `gpa` with syndrome `esr`: the exit KCore
    /// handles; the access did not complete (`fault`) unless KCore halted.
    fn stage2_abort(&mut self, i: usize, step: &Step, gpa: Z, esr: Z) -> Outcome {
        let vm = self.cpus[i].cur_vmid;
        let regs = &mut self.cpus[i].regs.ctxt_regs;
        regs.ec = ARM_EXCEPTION_TRAP;
        regs.esr_el2 = esr;
        regs.hpfar_el2 = (gpa >> 12) << 4;
        regs.far_el2 = gpa;
        // prep_abort reads the exit's ESR through the data oracle.
        self.feed_with(vm, &[esr], step);
        match self.call(i, vm_exit_handler_spec) {
            Outcome::Ok => Outcome::Fault,
            other => other,
        }
    }

    /// A VM exit of class `esr_class` (or an IRQ) with the given argument registers.
    fn guest_exit(&mut self, i: usize, step: &Step, ec: Z, esr: Z, x: &[(usize, Z)]) -> Outcome {
        if !self.in_vm_mode(i) {
            return Outcome::Undefined;
        }
        let vm = self.cpus[i].cur_vmid;
        let regs = &mut self.cpus[i].regs.ctxt_regs;
        regs.ec = ec;
        regs.esr_el2 = esr;
        for &(r, v) in x {
            regs.x[r] = v;
        }
        self.feed_with(vm, &[], step);
        self.call(i, vm_exit_handler_spec)
    }

    /// A device's access through SMMU bank (`smmu`, `cb`), as the bank's owner.
    fn dma(
        &mut self,
        step: &Step,
        smmu: Z,
        cb: Z,
        iova: Z,
        store: Option<Z>,
    ) -> (Outcome, Option<Z>) {
        if !(is_smmu(smmu) && is_smmu_cfg(cb)) || iova < 0 {
            return (Outcome::Fault, None);
        }
        let owner = *self.global.shared.smmu_vmid.get(smmu_id(smmu, cb));
        let gfn = iova / PAGE_SIZE;
        if owner == INVALID
            || self
                .global
                .shared
                .spts
                .spt_pt
                .get(SMMU_TTBR(smmu, cb))
                .get(gfn)
                .0
                == 0
        {
            return (Outcome::Fault, None);
        }
        self.feed_with(owner, &[], step);
        // A device has no registers: the spec moves the value through a shadow register of
        // the owner, which the engine saves and restores around the access.
        let ctxtid = ctxt_id(owner, 0);
        let saved = self.shadow_reg(ctxtid, ACCESS_REG);
        if let Some(v) = store {
            self.set_shadow_reg(ctxtid, ACCESS_REG, v);
        }
        let dev = RData {
            curid: 0,
            cur_vmid: owner,
            cur_vcpuid: 0,
            ihost: owner == HOSTVISOR,
            icore: false,
            ..self.global.clone()
        };
        let p = self.profile;
        let r = if store.is_some() {
            dev_store_spec(&p, gfn, ACCESS_REG, cb, smmu, &dev)
        } else {
            dev_load_spec(&p, gfn, ACCESS_REG, cb, smmu, &dev)
        };
        let out = match r {
            None => (Outcome::Undefined, None),
            Some(s) => {
                let v = store
                    .is_none()
                    .then(|| s.shadow_ctxts.get(ctxtid).ctxt_regs.x[ACCESS_REG as usize]);
                let halt = s.halt;
                let keep_regs = self.global.regs.clone();
                self.global = RData {
                    regs: keep_regs,
                    ..s
                };
                (if halt { Outcome::Halt } else { Outcome::Ok }, v)
            }
        };
        self.set_shadow_reg(ctxtid, ACCESS_REG, saved);
        out
    }

    /// Runs one step.
    pub fn step(&mut self, step: &Step) -> Result<StepReport, EngineError> {
        if let Some(inj) = self.inject.take() {
            self.apply_injection(inj);
        }
        let r = self.step_inner(step);
        self.injected = false;
        self.pending_regs = None;
        r
    }

    fn step_inner(&mut self, step: &Step) -> Result<StepReport, EngineError> {
        let i = usize::try_from(step.cpu)
            .ok()
            .filter(|&i| i < self.cpus.len())
            .ok_or_else(|| {
                EngineError(format!(
                    "step {}: field \"cpu\": no CPU {} (machine has {})",
                    step.index,
                    step.cpu,
                    self.cpus.len()
                ))
            })?;
        let p = self.profile;
        let mut x0 = None;
        let mut value = None;
        let what = describe(&step.action);
        let result = match &step.action {
            Action::Hvc { call, args } => {
                let num = match call {
                    HvcCall::Named(n) => hvc_number(&p.c, *n),
                    HvcCall::Raw(v) => Some(*v),
                };
                let is_run = matches!(call, HvcCall::Named(HvcName::VcpuRun))
                    || (num.is_some() && num == p.c.HVC_VCPU_RUN);
                if is_run {
                    let vm = args.first().copied().unwrap_or(0);
                    let vcpu = args.get(1).copied().unwrap_or(0);
                    self.vcpu_run(i, step, vm, vcpu, None, None)
                } else {
                    {
                        let regs = &mut self.cpus[i].regs.ctxt_regs;
                        regs.x[0] = num.unwrap_or(0);
                        for k in 1..=5 {
                            regs.x[k] = args.get(k - 1).copied().unwrap_or(0);
                        }
                        for (k, a) in args.iter().enumerate().skip(5).take(25) {
                            regs.x[k + 1] = *a;
                        }
                    }
                    // Verdicts of the authenticated hypercalls: authentic unless the step says.
                    let q = p.q;
                    let verdict = (num == Some(p.c.HVC_VERIFY_VM_IMAGE) && !q.verify_unsigned)
                        || ((num == Some(p.c.HVC_DECRYPT_BUF)
                            || num == Some(p.c.HVC_LOAD_CRYPT_VCPU))
                            && !q.export_unauthenticated);
                    self.feed_with(HOSTVISOR, if verdict { &[1] } else { &[] }, step);
                    let r = self.call(i, host_hvc_handler_spec);
                    x0 = Some(self.cpus[i].regs.ctxt_regs.x[0]);
                    r
                }
            }
            Action::VcpuRun { vm, vcpu, map, pc } => {
                let m = map.map(|m| (m.gpa, m.pte, m.level));
                self.vcpu_run(i, step, *vm, *vcpu, m, *pc)
            }
            Action::HostLoad { addr } => {
                let (r, v) = self.host_access(i, step, *addr, None);
                value = v;
                r
            }
            Action::HostStore { addr, value: v } => self.host_access(i, step, *addr, Some(*v)).0,
            Action::GuestLoad { gpa } => {
                let (r, v) = self.guest_access(i, step, *gpa, None);
                value = v;
                r
            }
            Action::GuestStore { gpa, value: v } => self.guest_access(i, step, *gpa, Some(*v)).0,
            Action::GuestFetch { gpa } => self.guest_fetch(i, step, *gpa),
            Action::GuestHvc { op, gpa, size } => {
                let num = match op {
                    ShareOp::Grant => p.c.HVC_KVM_SET_DESC_PFN,
                    ShareOp::Revoke => p.c.HVC_KVM_UNSET_DESC_PFN,
                };
                let esr = ESR_ELx_EC_HVC64 << ESR_ELx_EC_SHIFT;
                self.guest_exit(
                    i,
                    step,
                    ARM_EXCEPTION_TRAP,
                    esr,
                    &[(0, num), (1, *gpa), (2, *gpa), (3, *size)],
                )
            }
            Action::GuestPsciSystemOff => {
                let esr = ESR_ELx_EC_HVC64 << ESR_ELx_EC_SHIFT;
                self.guest_exit(
                    i,
                    step,
                    ARM_EXCEPTION_TRAP,
                    esr,
                    &[(0, PSCI_0_2_FN_SYSTEM_OFF)],
                )
            }
            Action::GuestWfx => {
                let esr = ESR_ELx_EC_WFx << ESR_ELx_EC_SHIFT;
                self.guest_exit(i, step, ARM_EXCEPTION_TRAP, esr, &[])
            }
            Action::GuestSysreg => {
                let esr = p.c.ESR_ELx_EC_SYS64 << ESR_ELx_EC_SHIFT;
                self.guest_exit(i, step, ARM_EXCEPTION_TRAP, esr, &[])
            }
            Action::GuestException { ec } => {
                let esr = (ec << ESR_ELx_EC_SHIFT) | (1 << 25);
                self.guest_exit(i, step, ARM_EXCEPTION_TRAP, esr, &[])
            }
            Action::Irq => self.guest_exit(i, step, p.c.ARM_EXCEPTION_INTERRUPT, 0, &[]),
            Action::DmaLoad { smmu, cb, iova, .. } => {
                let (r, v) = self.dma(step, *smmu, *cb, *iova, None);
                value = v;
                r
            }
            Action::DmaStore {
                smmu,
                cb,
                iova,
                value: v,
                ..
            } => self.dma(step, *smmu, *cb, *iova, Some(*v)).0,
            Action::Host(_) => return Err(host_macro_refused(step.index)),
        };
        Ok(StepReport {
            step: step.index,
            kind: step.action.kind(),
            cpu: step.cpu,
            what,
            result,
            x0,
            value,
            broken: self.broken_invariants(),
        })
    }

    pub fn cpu_views(&self) -> Vec<CpuView> {
        self.cpus
            .iter()
            .map(|c| CpuView {
                curid: c.curid,
                cur_vmid: c.cur_vmid,
                cur_vcpuid: c.cur_vcpuid,
                ihost: c.ihost,
                icore: c.icore,
            })
            .collect()
    }

    pub fn broken_invariants(&self) -> Vec<&'static str> {
        let mut bad = self
            .invariant_memo
            .lock()
            .check(&self.machine, &self.global.shared);
        bad.extend(invariants::check_cpus(
            &self.global.shadow_ctxts,
            &self.cpu_views(),
        ));
        bad.into_iter().collect()
    }

    pub fn halted(&self) -> bool {
        self.global.halt
    }

    /// The final object: VMs, pages whose metadata differs from boot, invariants.
    pub fn final_report(&self, broken: Vec<&'static str>) -> FinalReport {
        let sh = &self.global.shared;
        let vms = (1..sh.core_data.next_vmid.min(COREVISOR))
            .map(|v| {
                let info = sh.vminfos.get(v);
                let last = (0..VCPU_PER_VM)
                    .filter(|c| *info.VS.vm_vcpu_state.get(*c) != UNUSED)
                    .max();
                let vcpus = match last {
                    Some(l) => (0..=l)
                        .map(|c| state_name(*info.VS.vm_vcpu_state.get(c)))
                        .collect(),
                    None => vec![],
                };
                VmReport {
                    vmid: v,
                    state: state_name(info.VS.vm_state),
                    vcpus,
                }
            })
            .collect();
        let pages = sh
            .s2page
            .entries()
            .filter(|(pfn, pg)| **pg != self.machine.boot_s2page(*pfn))
            .map(|(pfn, pg)| PageReport {
                pfn,
                owner: pg.s2_owner,
                count: pg.s2_count,
                gfn: pg.s2_gfn,
            })
            .collect();
        FinalReport {
            halted: self.halted(),
            vms,
            pages,
            broken,
        }
    }
}
