//! The seed's state records (RData.md; spec-digest §1).
//!
//! Field names follow the Coq records so the two can be read side by side. Lower-layer
//! fields the seed never reads or writes (`tstate` aside: kept, as the seed carries it) are
//! omitted: `lock`, `bars`, `log`, `oracle`, `region_cnt`, `regions`, the NPT/SPT raw pool
//! views (`pt_vttbr_pool`, ..., `pt_updates`), `ctxt_states` of the physical file and the
//! unused SMMU configuration fields. Omitting a field nobody touches cannot change any
//! result (docs/spec-map.md lists each omission).

use crate::zmap::ZMap;
use crate::Z;
use imbl::Vector;

/// A stage-2 leaf in the high-level view: `(pfn, level, pte)`; `(0, 0, 0)` = unmapped.
pub type Leaf = (Z, Z, Z);

/// `NPT`: one principal's stage-2 table (spec-digest §1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NPT {
    pub pt: ZMap<Leaf>,
    pub pgd_t: ZMap<bool>,
    pub pud_t: ZMap<ZMap<bool>>,
    pub pmd_t: ZMap<ZMap<ZMap<bool>>>,
    pub pt_pgd_next: Z,
    pub pt_pud_next: Z,
    pub pt_pmd_next: Z,
}

impl Default for NPT {
    fn default() -> Self {
        NPT {
            pt: ZMap::init((0, 0, 0)),
            pgd_t: ZMap::init(false),
            pud_t: ZMap::init(ZMap::init(false)),
            pmd_t: ZMap::init(ZMap::init(ZMap::init(false))),
            pt_pgd_next: 0,
            pt_pud_next: 0,
            pt_pmd_next: 0,
        }
    }
}

/// `SPT`: all SMMU tables (spec-digest §1.4). `spt_pt[ttbr][gfn] = (pfn, pte)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SPT {
    pub spt_pt: ZMap<ZMap<(Z, Z)>>,
    pub spt_pgd_t: ZMap<ZMap<bool>>,
    pub spt_pmd_t: ZMap<ZMap<ZMap<bool>>>,
    pub spt_pgd_next: Z,
    pub spt_pmd_next: Z,
}

impl Default for SPT {
    fn default() -> Self {
        SPT {
            spt_pt: ZMap::init(ZMap::init((0, 0))),
            spt_pgd_t: ZMap::init(ZMap::init(false)),
            spt_pmd_t: ZMap::init(ZMap::init(ZMap::init(false))),
            spt_pgd_next: 0,
            spt_pmd_next: 0,
        }
    }
}

/// `S2Page` (spec-digest §1.5); constructor order `mkS2Page owner count gfn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct S2Page {
    pub s2_owner: Z,
    pub s2_count: Z,
    pub s2_gfn: Z,
}

#[allow(non_snake_case)]
pub fn mkS2Page(owner: Z, count: Z, gfn: Z) -> S2Page {
    S2Page {
        s2_owner: owner,
        s2_count: count,
        s2_gfn: gfn,
    }
}

/// `StateInfo` (VS).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct StateInfo {
    pub vm_kvm: Z,
    pub vm_vcpu: ZMap<Z>,
    pub vm_state: Z,
    pub vm_vcpu_state: ZMap<Z>,
    pub vm_power: Z,
}

/// `BootInfo` (VB).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct BootInfo {
    pub vm_next_load_info: Z,
    pub vm_load_addr: ZMap<Z>,
    pub vm_load_size: ZMap<Z>,
    pub vm_remap_addr: ZMap<Z>,
    pub vm_mapped_pages: ZMap<Z>,
    pub vm_inc_exe: Z,
}

/// `VMInfo = { VS; VB }`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
#[allow(non_snake_case)]
pub struct VMInfo {
    pub VS: StateInfo,
    pub VB: BootInfo,
}

/// `CoreData`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct CoreData {
    pub next_vmid: Z,
    pub next_remap_ptr: Z,
}

/// `CtxtRegs`: 100 integer registers (spec-digest §1.8).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct CtxtRegs {
    /// `x0..x30`.
    pub x: [Z; 31],
    /// `fp_q0..fp_q31`.
    pub fp_q: [Z; 32],
    pub fp_fpsr: Z,
    pub fp_fpcr: Z,
    pub csselr_el1: Z,
    pub sctlr_el1: Z,
    pub cpacr_el1: Z,
    pub ttbr0_el1: Z,
    pub ttbr1_el1: Z,
    pub tcr_el1: Z,
    pub afsr0_el1: Z,
    pub afsr1_el1: Z,
    pub far_el1: Z,
    pub mair_el1: Z,
    pub vbar_el1: Z,
    pub contextidr_el1: Z,
    pub amair_el1: Z,
    pub cntkctl_el1: Z,
    pub par_el1: Z,
    pub tpidr_el1: Z,
    pub spsr_el1: Z,
    pub mdscr_el1: Z,
    pub sp_el0: Z,
    pub tpidr_el0: Z,
    pub tpidrro_el0: Z,
    pub spsr_el2: Z,
    pub vmpidr_el2: Z,
    pub mpidr_el1: Z,
    pub actlr_el1: Z,
    pub sp_el1: Z,
    pub elr_el1: Z,
    pub elr_el2: Z,
    pub vttbr_el2: Z,
    pub hcr_el2: Z,
    pub tpidr_el2: Z,
    pub esr_el2: Z,
    /// Exit code of the last guest exit (`ARM_EXCEPTION_TRAP`, ...), not the ESR class.
    pub ec: Z,
    pub far_el2: Z,
    pub hpfar_el2: Z,
}

/// `CtxtStates`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct CtxtStates {
    pub pc: Z,
    pub pstate: Z,
    pub dirty: Z,
    pub flags: Z,
    pub esr_el1: Z,
    pub spsr_0: Z,
}

/// `TrapRegs`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct TrapRegs {
    pub pmuselr_el0: Z,
    pub pmuserenr_el0: Z,
    pub mdcr_el2: Z,
    pub cptr_el2: Z,
    pub cnthctl_el2: Z,
}

/// `Ctxt`. Shadow contexts use `ctxt_regs` and `ctxt_states`; the physical file
/// (`RData.regs`) uses `ctxt_regs` and `trap_regs`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Ctxt {
    pub ctxt_regs: CtxtRegs,
    pub trap_regs: TrapRegs,
    pub ctxt_states: CtxtStates,
}

/// `SMMUConf`: the fields the seed reads (spec-digest §1.9).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct SMMUConf {
    pub smmu_num: Z,
    pub smmu_phys_base: ZMap<Z>,
    pub smmu_size: ZMap<Z>,
    pub smmu_dev_context_banks: ZMap<Z>,
    /// Extension (not a seed field): the device ranges the platform declares, `(base,
    /// size)`; read only under `arm` (deviation `device_outside_mmio`).
    pub mmio: Vec<(Z, Z)>,
    /// Extension (not a seed field): pages of RAM, the most any principal can own; read
    /// only under `arm` (deviation `share_loop_unbounded`).
    pub ram_pages: Z,
}

/// Names the data oracle a logged event carried (`doracle adt` partially applied in the
/// seed: a function cannot be compared, the principal whose stream it is can).
pub type DorcRef = Z;

/// `AtomicEvent` constructors the seed emits (spec-digest §1.10).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AtomicEvent {
    OPT_GET(Z),
    OMAP_HOST(Z),
    OCLEAR_VM(Z, Z),
    OASSIGN_VM(Z, Z, Z, DorcRef, Z),
    OMAP_VM(Z, Z, Z, Z),
    OMAP_IO(Z, Z, Z),
    OGRANT(Z, Z),
    OREVOKE(Z, Z, DorcRef, Z),
    OVM_GET(Z),
    OVM_ACTIVE(Z, Z),
    OVM_INACTIVE(Z, Z),
    OVM_POWEROFF(Z),
    OREG_VCPU(Z, Z),
    OGEN_VMID,
    OREG_KVM(Z),
    OBOOT_INFO(Z, Z, Z),
    OREMAP_IMAGE(Z, Z, Z),
    OVERIFY(Z),
    OSMMU_GET,
    OASSIGN_SMMU(Z, Z, Z, Z),
    OSMMU_FREE(Z, Z),
    OSMMU_ALLOC(Z, Z, Z, Z),
    OSMMU_MAP(Z, Z, Z, Z),
    OSMMU_CLEAR(Z, Z, Z),
    OLOAD_ENC_VCPU(Z, Z, Box<CtxtRegs>, Box<CtxtStates>, DorcRef, Z),
    OSAVE_ENC_BUF(Z, Z, Z, DorcRef, Z),
    OLOAD_ENC_BUF(Z, Z, DorcRef, Z),
}

/// `SEVENT cpu e`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[allow(non_snake_case)]
pub struct SEvent {
    pub cpu: Z,
    pub e: AtomicEvent,
}

#[allow(non_snake_case)]
pub fn SEVENT(cpu: Z, e: AtomicEvent) -> SEvent {
    SEvent { cpu, e }
}

/// The list of events, newest first (`SingleLog`).
pub type SingleLog = Vector<SEvent>;

/// `soracle`: the events other CPUs performed, as a function of `(curid, slog)`.
/// Made concrete as a table keyed by CPU and by the length of the asking CPU's log;
/// absent entries are the empty list (then `query_oracle` is the identity). Each entry
/// is newest-first, like `slog`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SOracle {
    pub table: ZMap<ZMap<Vec<SEvent>>>,
}

impl Default for SOracle {
    fn default() -> Self {
        SOracle {
            table: ZMap::init(ZMap::init(Vec::new())),
        }
    }
}

impl SOracle {
    pub fn call(&self, cpu: Z, slog: &SingleLog) -> Vec<SEvent> {
        self.table.get(cpu).get(slog.len() as Z).clone()
    }
}

/// `doracle` / `core_doracle`: `vmid -> n -> value`, made concrete as a table whose
/// absent entries read 0. A scenario or the engine fills in the streams.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DataOracle {
    pub table: ZMap<ZMap<Z>>,
}

impl Default for DataOracle {
    fn default() -> Self {
        DataOracle {
            table: ZMap::init(ZMap::init(0)),
        }
    }
}

impl DataOracle {
    /// `(doracle adt) vmid n`.
    pub fn call(&self, vmid: Z, n: Z) -> Z {
        *self.table.get(vmid).get(n)
    }

    /// Put `value` at position `n` of `vmid`'s stream.
    pub fn put(&mut self, vmid: Z, n: Z, value: Z) {
        let inner = self.table.get(vmid).set(n, value);
        self.table.set_mut(vmid, inner);
    }
}

/// `Shared` (the seed's `sdt`): state shared by all CPUs (spec-digest §1.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shared {
    pub flatmem: ZMap<Z>,
    pub npts: ZMap<NPT>,
    pub s2page: ZMap<S2Page>,
    pub core_data: CoreData,
    pub vminfos: ZMap<VMInfo>,
    pub spts: SPT,
    pub smmu_vmid: ZMap<Z>,
    pub hlock: ZMap<bool>,
}

/// `RData` (the seed's `adt`): the machine as one CPU sees it (spec-digest §1.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RData {
    pub halt: bool,
    pub icore: bool,
    pub ihost: bool,
    pub tstate: Z,
    pub curid: Z,
    pub cur_vmid: Z,
    pub cur_vcpuid: Z,
    pub regs: Ctxt,
    pub shadow_ctxts: ZMap<Ctxt>,
    pub smmu_conf: SMMUConf,
    pub slog: SingleLog,
    pub soracle: SOracle,
    pub doracle: DataOracle,
    pub core_doracle: DataOracle,
    pub data_log: ZMap<Z>,
    pub core_data_log: ZMap<Z>,
    pub shared: Shared,
}

/// The name used across corevisor for the model's state.
pub type State = RData;
