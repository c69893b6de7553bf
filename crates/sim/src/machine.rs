//! The simulated machine that runs KCore: N CPUs with their register files, RAM, two SMMUs,
//! and the hardware's side of every trap (ARCHITECTURE.md, "Scenario files").
//!
//! A step on CPU `i` sets up that CPU's registers the way the principal would (a host
//! hypercall, a vCPU-run request) or performs a principal's access through the MMU/SMMU
//! walkers and the TLB. An access whose translation is missing raises the fault hardware
//! raises, with ESR/FAR/HPFAR as the architecture reports them (Arm ARM D17.2), and KCore's
//! handler for it runs. Every value KCore or a principal takes from an untrusted source is
//! recorded ([`Recorded`]), so a checker can feed the reference model the same streams.
//!
//! CPUs take steps one at a time, in the order of the scenario: each step is one trap or
//! one access, as the model engine's steps are.

use crate::mem::SimMemory;
/// A step's outcome is part of the scenario vocabulary ([`crate::scenario`]); re-exported.
pub use crate::scenario::Outcome;
use crate::scenario::{Action, HvcCall, HvcName, ShareOp, Step};
use crate::signing::sign_image;
use crate::smmu::SmmuReset;
use corevisor_kcore::consts::*;
use corevisor_kcore::ctxt::Ctxt;
use corevisor_kcore::hw::{Hw, Untrusted};
use corevisor_kcore::layout::{Layout, Platform, PoolSpans, RegionTooSmall, MAX_MMIO_RANGES};
use corevisor_kcore::smmu::{BANKS, SMMU_NUM};
use corevisor_kcore::state::{Core, MAX_CPUS};
use corevisor_kcore::trap::{Cpu, Trap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// SMMU register windows (the default machine's).
pub use crate::mem::{SMMU_WINDOW_BASE, SMMU_WINDOW_SIZE, SMMU_WINDOW_STRIDE};
/// The UART (a declared device page).
pub const UART_BASE: u64 = 0x0900_0000;
/// The register every scripted load/store uses (x1).
pub const ACCESS_REG: u64 = 1;

/// ESR_EL2 as the architecture encodes it (Arm ARM D17.2.40), written here rather than
/// taken from kcore: the machine's syndromes must not change when kcore's decoding does.
mod esr {
    pub const EC_SHIFT: u32 = 26;
    pub const EC_WFX: u64 = 0x01;
    pub const EC_HVC64: u64 = 0x16;
    pub const EC_SYS64: u64 = 0x18;
    pub const EC_IABT_LOW: u64 = 0x20;
    pub const EC_DABT_LOW: u64 = 0x24;
    pub const SAS_SHIFT: u32 = 22;
    pub const SRT_SHIFT: u32 = 16;
    pub const WNR: u64 = 1 << 6;
}

/// One of KCore's entry points, as the machine calls it on a trap.
type Handler = fn(&Core<SimMemory>, &mut Cpu, &mut Recorded) -> Trap;

/// The shape of a machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineShape {
    pub cpus: usize,
    pub ram_base: u64,
    pub ram_end: u64,
    pub kcore_base: u64,
    pub smmus: u32,
    /// Declared device ranges `(base, size)` (at most `MAX_MMIO_RANGES`).
    pub mmio: Vec<(u64, u64)>,
}

impl MachineShape {
    /// The default machine's device ranges for `smmus` SMMUs: their register windows and
    /// the UART page.
    pub fn default_mmio(smmus: u32) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = (0..smmus.min(SMMU_NUM) as u64)
            .map(|i| (SMMU_WINDOW_BASE + i * SMMU_WINDOW_STRIDE, SMMU_WINDOW_SIZE))
            .collect();
        v.push((UART_BASE, PAGE_SIZE));
        v
    }

    /// Where KCore keeps its state on this machine, or why the region is too small.
    pub fn layout(&self) -> Result<Layout, RegionTooSmall> {
        Layout::plan(
            self.ram_base,
            self.ram_end,
            self.kcore_base,
            self.cpus,
            PoolSpans::ARM,
            KCORE_IMAGE_BYTES,
        )
    }
}

/// What KCore's image takes of its region in the simulator: its typed state (the `Core`
/// structure, which the simulator keeps in its own heap; at EL2 it sits in this slot).
pub const KCORE_IMAGE_BYTES: u64 = std::mem::size_of::<Core<SimMemory>>() as u64;

/// A clock every CPU reads: each lock acquisition and each step's start takes the next
/// value, so the values order events across CPUs (a lock's acquisitions in ticket order).
static EVENTS: AtomicU64 = AtomicU64::new(0);

pub fn event() -> u64 {
    EVENTS.fetch_add(1, Ordering::SeqCst)
}

/// The untrusted values of one step, in the order they were taken, and the locks its
/// handlers were served (when, on the machine's event clock: a linearization's input).
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    /// (principal, value): the seed's `doracle` streams.
    pub data: Vec<(u32, u64)>,
    /// (vmid, value): the seed's `core_doracle` streams.
    pub core: Vec<(u32, u64)>,
    /// (lock id, event): every lock acquisition, in order.
    pub locks: Vec<(u32, u64)>,
    /// Don't stamp acquisitions on the machine-wide clock (its one shared counter is a
    /// cache line every CPU writes: benchmarks of KCore's own scaling leave it out); the
    /// lock's ticket is recorded instead.
    pub untimed: bool,
    /// Every word a principal's access moved to or from RAM this step, as a bus monitor
    /// sees it, with who made it: what a secrecy oracle judges (not an input: two
    /// recordings with the same values are equal whatever their bus).
    pub bus: Vec<BusAccess>,
}

/// One word a principal's access moved: a CPU's load, store or instruction fetch through
/// its stage-2, or a device's DMA through an SMMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusAccess {
    /// The principal: the host, a VM, or the owner of the bank that translated a DMA.
    pub principal: u32,
    /// A device's DMA (not a CPU's access).
    pub device: bool,
    /// The physical address of the 8-byte word.
    pub pa: u64,
    pub value: u64,
    pub write: bool,
}

/// Two recordings are the same input when their values are: when the locks were taken is
/// timing, not input.
impl PartialEq for Recorded {
    fn eq(&self, other: &Self) -> bool {
        (&self.data, &self.core) == (&other.data, &other.core)
    }
}

impl Eq for Recorded {}

impl Untrusted for Recorded {
    fn record(&mut self, principal: u32, value: u64) {
        self.data.push((principal, value));
    }
    fn record_core(&mut self, vmid: u32, value: u64) {
        self.core.push((vmid, value));
    }
    fn acquired(&mut self, id: u32, ticket: u32) {
        // Taken while the lock is held: for one lock, events follow its tickets.
        let when = if self.untimed {
            u64::from(ticket)
        } else {
            event()
        };
        self.locks.push((id, when));
    }
}

/// What a step did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepResult {
    pub outcome: Outcome,
    pub x0: Option<u64>,
    pub value: Option<u64>,
    pub rec: Recorded,
    /// The trapping CPU's register file as KCore's first handler of the step found it.
    pub trap_regs: Option<Ctxt>,
    /// KCore's entry points this step ran, in order, with how each ended.
    pub traps: Vec<(&'static str, Trap)>,
    /// The principal's (or device's) stores that reached memory: (physical address, value),
    /// as a bus monitor sees them.
    pub stores: Vec<(u64, u64)>,
}

/// An image segment the host staged: where it loads and the host pages holding it.
#[derive(Clone, Debug, Default)]
struct Staged {
    load_addr: u64,
    size: u64,
    pfns: Vec<u64>,
}

/// The simulated machine with KCore booted on it.
pub struct CoreMachine {
    pub core: Box<Core<SimMemory>>,
    /// Every CPU: what it runs and its register file (what its EL2 vector saves on a trap).
    pub cpus: [Cpu; MAX_CPUS],
    pub shape: MachineShape,
    /// Per VM, the image the host staged with SET_BOOT_INFO / REMAP_VM_IMAGE (what its
    /// vendor signed).
    staged: Mutex<Vec<Vec<Staged>>>,
}

impl Clone for CoreMachine {
    fn clone(&self) -> Self {
        CoreMachine {
            core: self.core.clone(),
            cpus: self.cpus,
            shape: self.shape.clone(),
            staged: Mutex::new(
                self.staged
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            ),
        }
    }
}

/// How many CPUs are inside KCore's handlers now, and the most there ever were.
#[derive(Debug, Default)]
pub struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }

    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The machine as every CPU shares it: KCore, the memory, the devices, the host's staged
/// images. Each CPU steps with its own [`Cpu`]; any number of CPUs at once.
#[derive(Clone, Copy)]
pub struct MachineRef<'a> {
    pub core: &'a Core<SimMemory>,
    pub shape: &'a MachineShape,
    staged: &'a Mutex<Vec<Vec<Staged>>>,
    gauge: Option<&'a Gauge>,
    untimed: bool,
}

impl<'a> MachineRef<'a> {
    /// Counts the CPUs inside KCore's handlers in `g`.
    pub fn with_gauge(self, g: &'a Gauge) -> Self {
        MachineRef {
            gauge: Some(g),
            ..self
        }
    }

    /// Steps record lock tickets, not the machine-wide clock (`Recorded::untimed`).
    pub fn untimed(self) -> Self {
        MachineRef {
            untimed: true,
            ..self
        }
    }

    /// Runs one step on CPU `cpu` (the step's `cpu` field is not read).
    pub fn step(&self, cpu: &mut Cpu, step: &Step) -> StepResult {
        On {
            core: self.core,
            shape: self.shape,
            staged: self.staged,
            gauge: self.gauge,
            untimed: self.untimed,
            cpu,
        }
        .step(step)
    }
}

/// One CPU's step on the shared machine.
struct On<'a, 'c> {
    core: &'a Core<SimMemory>,
    shape: &'a MachineShape,
    staged: &'a Mutex<Vec<Vec<Staged>>>,
    gauge: Option<&'a Gauge>,
    untimed: bool,
    cpu: &'c mut Cpu,
}

fn reg(v: i128) -> u64 {
    v as u64
}

fn bus(principal: u32, device: bool, pa: u64, value: u64, write: bool) -> BusAccess {
    BusAccess {
        principal,
        device,
        pa,
        value,
        write,
    }
}

/// The `arm` call number of a named hypercall.
pub fn hvc_number(n: HvcName) -> u64 {
    match n {
        HvcName::TimerSetCntvoff => hvc::TIMER_SET_CNTVOFF,
        HvcName::ClearVmS2Range => hvc::CLEAR_VM_S2_RANGE,
        HvcName::SetBootInfo => hvc::SET_BOOT_INFO,
        HvcName::RemapVmImage => hvc::REMAP_VM_IMAGE,
        HvcName::VerifyVmImage => hvc::VERIFY_VM_IMAGE,
        HvcName::SmmuFreePgd => hvc::SMMU_FREE_PGD,
        HvcName::SmmuAllocPgd => hvc::SMMU_ALLOC_PGD,
        HvcName::SmmuLpaeMap => hvc::SMMU_LPAE_MAP,
        HvcName::SmmuLpaeIovaToPhys => hvc::SMMU_LPAE_IOVA_TO_PHYS,
        HvcName::SmmuClear => hvc::SMMU_CLEAR,
        HvcName::PhysAddrIoremap => hvc::PHYS_ADDR_IOREMAP,
        HvcName::RegisterKvm => hvc::REGISTER_KVM,
        HvcName::RegisterVcpu => hvc::REGISTER_VCPU,
        HvcName::EncryptBuf => hvc::ENCRYPT_BUF,
        HvcName::DecryptBuf => hvc::DECRYPT_BUF,
        HvcName::SaveCryptVcpu => hvc::SAVE_CRYPT_VCPU,
        HvcName::LoadCryptVcpu => hvc::LOAD_CRYPT_VCPU,
        HvcName::VcpuRun => hvc::VCPU_RUN,
    }
}

/// ESR of a data abort from a lower EL: EC = DABT_LOW, ISV, 8-byte access, SRT, WnR.
pub fn dabt_esr(write: bool) -> u64 {
    dabt_esr_sized(write, 8)
}

/// The same for an access of `bytes` (1, 2, 4 or 8: ESR_EL2.SAS).
pub fn dabt_esr_sized(write: bool, bytes: u64) -> u64 {
    (esr::EC_DABT_LOW << esr::EC_SHIFT)
        | (1 << 24)
        | ((bytes.trailing_zeros() as u64 & 3) << esr::SAS_SHIFT)
        | (ACCESS_REG << esr::SRT_SHIFT)
        | if write { esr::WNR } else { 0 }
}

/// ESR of an instruction abort from a lower EL: EC = IABT_LOW, IL, IFSC = translation
/// fault level 3 (Arm ARM D17.2.40).
pub fn iabt_esr() -> u64 {
    (esr::EC_IABT_LOW << esr::EC_SHIFT) | (1 << 25) | 0b00_0111
}

std::thread_local! {
    /// How machines built on this thread find their SMMUs (see [`with_smmu_reset`]).
    static SMMU_RESET: std::cell::Cell<SmmuReset> = const { std::cell::Cell::new(SmmuReset::Clean) };
}

/// Runs `body` with every machine [`CoreMachine::new`] builds on this thread booting from
/// SMMUs in state `reset` (issue 22): e.g. `Lockstep::for_scenario` inside it checks a
/// machine whose SMMUs firmware left hostile.
pub fn with_smmu_reset<R>(reset: SmmuReset, body: impl FnOnce() -> R) -> R {
    struct Restore(SmmuReset);
    impl Drop for Restore {
        fn drop(&mut self) {
            SMMU_RESET.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(SMMU_RESET.with(|c| c.replace(reset)));
    body()
}

impl CoreMachine {
    /// Boots KCore on a machine of this shape (its region planned by `Layout::plan`), its
    /// SMMUs out of a clean reset (or as [`with_smmu_reset`] says).
    pub fn new(shape: MachineShape) -> Result<Self, RegionTooSmall> {
        Self::new_with_smmu_reset(shape, SMMU_RESET.with(|c| c.get()))
    }

    /// [`CoreMachine::new`] with the machine's SMMUs in state `reset` when KCore boots
    /// (`machine.smmu_reset` of a scenario; issue 22).
    pub fn new_with_smmu_reset(
        shape: MachineShape,
        reset: SmmuReset,
    ) -> Result<Self, RegionTooSmall> {
        let layout = shape.layout()?;
        let mut mem = SimMemory::new();
        {
            let mut smmus = mem.smmus();
            for i in 0..(shape.smmus as usize).min(smmus.len()) {
                // Each SMMU its own contents.
                let r = match reset {
                    SmmuReset::Hostile(seed) => {
                        SmmuReset::Hostile(seed.wrapping_add((i as u64) << 32))
                    }
                    r => r,
                };
                smmus.smmu(i).reset_to(r, (shape.ram_base, shape.ram_end));
            }
        }
        mem.watch_locks(layout);
        let mut core = Box::new(Core::boot(mem, layout));
        let mut smmus = [(0, 0, 0); SMMU_NUM as usize];
        for (i, s) in smmus.iter_mut().enumerate() {
            *s = (
                SMMU_WINDOW_BASE + i as u64 * SMMU_WINDOW_STRIDE,
                SMMU_WINDOW_SIZE,
                BANKS,
            );
        }
        let mut mmio = [(0, 0); MAX_MMIO_RANGES];
        for (m, &r) in mmio.iter_mut().zip(&shape.mmio) {
            *m = r;
        }
        core.platform = Platform {
            cpus: shape.cpus,
            smmu_num: shape.smmus,
            smmus,
            mmio,
            mmio_num: shape.mmio.len().min(MAX_MMIO_RANGES),
        };
        // KCore programs the SMMUs before the host runs (out of reset they bypass).
        core.smmu_boot();
        // The host kernel on each CPU has EL1 and FP/SIMD state of its own, distinct per CPU
        // and from a fresh vCPU's reset values, so a world switch that loses any of it shows.
        let mut cpus: [Cpu; MAX_CPUS] = core::array::from_fn(Cpu::boot);
        for (i, c) in cpus
            .iter_mut()
            .map(|c| &mut c.regs)
            .enumerate()
            .take(shape.cpus)
        {
            let tag = (i as u64 + 1) << 8;
            for (k, q) in c.regs.fp_q.iter_mut().enumerate() {
                *q = u128::from(tag | k as u64) * 0x0001_0000_0000_0001;
            }
            c.regs.fp_fpsr = 0x0800_0010 | tag;
            c.regs.fp_fpcr = 0x0040_0000;
            c.regs.sctlr_el1 = 0x30d0_1805;
            c.regs.tpidr_el1 = 0xffff_8000_0000_0000 | tag;
            c.regs.vbar_el1 = 0xffff_8000_0801_0000;
            host_el1_state(&mut c.regs, tag);
        }
        Ok(CoreMachine {
            core,
            cpus,
            shape,
            staged: Mutex::new(vec![Vec::new(); COREVISOR as usize + 1]),
        })
    }

    /// Issue 20, hole 3: does VM `vm` run the pages its vendor signed? The signature covers
    /// the host pages staged with REMAP_VM_IMAGE (`vendor_signature`); once the VM is
    /// VERIFIED its stage-2 must translate each image page to exactly that staged page.
    /// The first page that it does not, as `(gpa, signed pa, mapped pa or None)`.
    pub fn unsigned_image_page(&self, vm: u32) -> Option<(u64, u64, Option<u64>)> {
        let staged = self.staged.lock().unwrap_or_else(|e| e.into_inner());
        let root = self.core.layout.pt.root(vm);
        for seg in staged.get(vm as usize)? {
            for (k, &pfn) in seg.pfns.iter().enumerate() {
                let gpa = seg.load_addr / PAGE_SIZE * PAGE_SIZE + k as u64 * PAGE_SIZE;
                let got = self
                    .core
                    .hw
                    .walk(root, gpa)
                    .map(|t| t.pa & !(PAGE_SIZE - 1));
                if got != Some(pfn.wrapping_mul(PAGE_SIZE)) {
                    return Some((gpa, pfn.wrapping_mul(PAGE_SIZE), got));
                }
            }
        }
        None
    }

    /// Runs one step on CPU `step.cpu` (the caller checked it exists).
    pub fn step(&mut self, step: &Step) -> StepResult {
        let (m, cpus) = self.parts();
        m.step(&mut cpus[step.cpu as usize], step)
    }

    /// The machine every CPU shares, and the CPUs, each to step on its own.
    pub fn parts(&mut self) -> (MachineRef<'_>, &mut [Cpu; MAX_CPUS]) {
        let m = MachineRef {
            core: &self.core,
            shape: &self.shape,
            staged: &self.staged,
            gauge: None,
            untimed: false,
        };
        (m, &mut self.cpus)
    }
}

impl On<'_, '_> {
    fn regs(&mut self, _cpu: usize) -> &mut Ctxt {
        &mut self.cpu.regs
    }

    fn outcome(t: Trap) -> Outcome {
        match t {
            Trap::Done => Outcome::Ok,
            Trap::Halted => Outcome::Halt,
            Trap::Undefined => Outcome::Undefined,
        }
    }

    fn step(&mut self, step: &Step) -> StepResult {
        let i = self.cpu.id;
        let mut r = StepResult {
            outcome: Outcome::Ok,
            x0: None,
            value: None,
            rec: Recorded {
                untimed: self.untimed,
                ..Recorded::default()
            },
            trap_regs: None,
            traps: Vec::new(),
            stores: Vec::new(),
        };
        r.outcome = match &step.action {
            Action::Hvc { call, args } => {
                let num = match call {
                    HvcCall::Named(n) => hvc_number(*n),
                    HvcCall::Raw(v) => reg(*v),
                };
                if num == hvc::VCPU_RUN {
                    let a = |k: usize| args.get(k).copied().unwrap_or(0);
                    self.vcpu_run(i, step, a(0), a(1), None, None, &mut r)
                } else {
                    let o = self.host_hvc(i, num, args, &mut r);
                    r.x0 = Some(self.regs(i).regs.x[0]);
                    o
                }
            }
            Action::VcpuRun { vm, vcpu, map, pc } => {
                let m = map.map(|m| (m.gpa, m.pte, m.level));
                self.vcpu_run(i, step, *vm, *vcpu, m, *pc, &mut r)
            }
            Action::HostLoad { addr } => {
                self.host_access(i, reg(*addr), step.access_size(), None, &mut r)
            }
            Action::HostStore { addr, value } => {
                self.host_access(i, reg(*addr), step.access_size(), Some(reg(*value)), &mut r)
            }
            Action::GuestLoad { gpa } => {
                self.guest_access(i, reg(*gpa), step.access_size(), None, &mut r)
            }
            Action::GuestStore { gpa, value } => {
                let v = Some(reg(*value));
                self.guest_access(i, reg(*gpa), step.access_size(), v, &mut r)
            }
            Action::GuestFetch { gpa } => self.guest_fetch(i, reg(*gpa), &mut r),
            Action::GuestHvc { op, gpa, size } => {
                let call = match op {
                    ShareOp::Grant => hvc::KVM_SET_DESC_PFN,
                    ShareOp::Revoke => hvc::KVM_UNSET_DESC_PFN,
                };
                let esr = esr::EC_HVC64 << esr::EC_SHIFT;
                let x = [(0, call), (1, reg(*gpa)), (2, reg(*gpa)), (3, reg(*size))];
                self.guest_exit(i, ARM_EXCEPTION_TRAP, esr, &x, &mut r)
            }
            Action::GuestPsciSystemOff => {
                let esr = esr::EC_HVC64 << esr::EC_SHIFT;
                let x = [(0, hvc::PSCI_0_2_FN_SYSTEM_OFF)];
                self.guest_exit(i, ARM_EXCEPTION_TRAP, esr, &x, &mut r)
            }
            Action::GuestWfx => self.guest_exit(
                i,
                ARM_EXCEPTION_TRAP,
                esr::EC_WFX << esr::EC_SHIFT,
                &[],
                &mut r,
            ),
            Action::GuestSysreg => self.guest_exit(
                i,
                ARM_EXCEPTION_TRAP,
                esr::EC_SYS64 << esr::EC_SHIFT,
                &[],
                &mut r,
            ),
            Action::GuestException { ec } => self.guest_exit(
                i,
                ARM_EXCEPTION_TRAP,
                ((*ec as u64) << esr::EC_SHIFT) | (1 << 25),
                &[],
                &mut r,
            ),
            Action::Irq => self.guest_exit(i, ARM_EXCEPTION_INTERRUPT, 0, &[], &mut r),
            Action::DmaLoad {
                smmu,
                cb,
                iova,
                stream,
            } => self.dma(*smmu, *cb, *stream, reg(*iova), None, &mut r),
            Action::DmaStore {
                smmu,
                cb,
                iova,
                value,
                stream,
            } => self.dma(*smmu, *cb, *stream, reg(*iova), Some(reg(*value)), &mut r),
            Action::Host(_) => Outcome::Undefined,
        };
        r
    }

    /// Runs KCore's handler for a trap on CPU `i`, noting the register file it found.
    fn trap(
        &mut self,
        i: usize,
        r: &mut StepResult,
        (name, handler): (&'static str, Handler),
    ) -> Trap {
        if r.trap_regs.is_none() {
            r.trap_regs = Some(*self.regs(i));
        }
        if let Some(g) = self.gauge {
            g.enter();
        }
        let t = handler(self.core, self.cpu, &mut r.rec);
        if let Some(g) = self.gauge {
            g.leave();
        }
        r.traps.push((name, t));
        t
    }

    fn host_hvc(&mut self, i: usize, num: u64, args: &[i128], r: &mut StepResult) -> Outcome {
        {
            let x = &mut self.regs(i).regs.x;
            x[0] = num;
            // x1..x5 are the arguments (0 if not given); more arguments go on in x6...
            for (k, r) in x.iter_mut().enumerate().skip(1) {
                match args.get(k - 1) {
                    Some(a) => *r = reg(*a),
                    None if k <= 5 => *r = 0,
                    None => {}
                }
            }
        }
        let a = |k: usize| reg(args.get(k).copied().unwrap_or(0));
        if num == hvc::VERIFY_VM_IMAGE && args.len() <= 1 && a(0) <= COREVISOR as u64 {
            // The host passes the signature its vendor made for the image it staged.
            let sig = self.vendor_signature(a(0) as usize);
            for (k, w) in sig.chunks_exact(8).enumerate() {
                let mut b = [0u8; 8];
                b.copy_from_slice(w);
                self.regs(i).regs.x[2 + k] = u64::from_le_bytes(b);
            }
        }
        let t = self.trap(i, r, ("host_hvc_handler", Core::host_hvc_handler));
        if t == Trap::Done {
            self.note_staging(num, a(0), a(1), a(2));
        }
        Self::outcome(t)
    }

    /// Remember the image segments the host staged for a VM.
    fn note_staging(&mut self, num: u64, a1: u64, a2: u64, a3: u64) {
        // Only these two calls stage: the lock every CPU shares is not taken for the rest.
        if num != hvc::SET_BOOT_INFO && num != hvc::REMAP_VM_IMAGE {
            return;
        }
        let mut staged = self.staged.lock().unwrap_or_else(|e| e.into_inner());
        let Some(st) = staged.get_mut(a1 as usize) else {
            return;
        };
        if num == hvc::SET_BOOT_INFO {
            st.push(Staged {
                load_addr: a2,
                size: a3,
                pfns: Vec::new(),
            });
        } else if num == hvc::REMAP_VM_IMAGE {
            if let Some(seg) = st.get_mut(a3 as usize) {
                seg.pfns.push(a2);
            }
        }
    }

    /// The dev-key signature over the image staged for `vm`, read from the host's pages.
    fn vendor_signature(&self, vm: usize) -> [u8; 64] {
        let staged = self.staged.lock().unwrap_or_else(|e| e.into_inner());
        let segs: Vec<(u64, Vec<u8>)> = staged[vm]
            .iter()
            .map(|s| {
                let mut bytes = Vec::new();
                for pfn in &s.pfns {
                    for w in 0..512 {
                        let v = self.core.hw.read64(pfn.wrapping_mul(PAGE_SIZE) + w * 8);
                        bytes.extend_from_slice(&v.to_le_bytes());
                    }
                }
                bytes.resize(s.size.min(1 << 30) as usize, 0);
                (s.load_addr, bytes)
            })
            .collect();
        let refs: Vec<(u64, &[u8])> = segs.iter().map(|(a, b)| (*a, b.as_slice())).collect();
        sign_image(&refs)
    }

    #[allow(clippy::too_many_arguments)]
    fn vcpu_run(
        &mut self,
        i: usize,
        step: &Step,
        vm: i128,
        vcpu: i128,
        map: Option<(i128, i128, i128)>,
        pc: Option<i128>,
        r: &mut StepResult,
    ) -> Outcome {
        let (gpa, pte, level) = map.unwrap_or((0, 0, 3));
        let vmid = reg(vm);
        let load0 = if (1..COREVISOR as u64).contains(&vmid) {
            self.core.vms[vmid as usize].read().load_addr[0]
        } else {
            0
        };
        let o = |k: usize| step.oracle.get(k).copied().map(reg);
        let first_run = o(0).or(pc.map(reg)).unwrap_or(load0);
        let regs = self.regs(i);
        let x = &mut regs.regs.x;
        x[0] = hvc::VCPU_RUN;
        x[1] = vmid;
        x[2] = reg(vcpu);
        x[3] = reg(gpa);
        x[4] = reg(pte);
        x[5] = reg(level);
        x[6] = first_run;
        x[7] = o(1).unwrap_or(PSTATE_FAULT_BITS_64);
        // On a resume: the values of the vCPU's dirty registers.
        for (k, v) in step.oracle.iter().enumerate().take(23) {
            x[8 + k] = reg(*v);
        }
        if let Some(a) = o(2) {
            regs.regs.actlr_el1 = a;
        }
        Self::outcome(self.trap(i, r, ("host_vcpu_run_handler", Core::host_vcpu_run_handler)))
    }

    /// The translation a principal's access uses. Nothing decodes physical page 0 (never
    /// RAM, no device): a mapping to it is as good as none, as in the seed (`pfn = 0`).
    fn lookup(&self, v: u32, root: u64, addr: u64) -> Option<crate::mem::Translation> {
        self.core
            .hw
            .translate(v, root, addr)
            .filter(|t| t.pa >= PAGE_SIZE)
    }

    fn running(&self, i: usize, host: bool) -> bool {
        let _ = i;
        let c = self.cpu.run;
        c.ihost == host && !c.icore
    }

    fn in_smmu_window(&self, addr: u64) -> bool {
        (0..self.shape.smmus as u64).any(|k| {
            let b = SMMU_WINDOW_BASE + k * SMMU_WINDOW_STRIDE;
            b <= addr && addr - b < SMMU_WINDOW_SIZE
        })
    }

    /// The host's load or store of `bytes` at `addr` (x1), faulting like hardware.
    fn host_access(
        &mut self,
        i: usize,
        addr: u64,
        bytes: u64,
        store: Option<u64>,
        r: &mut StepResult,
    ) -> Outcome {
        if !self.running(i, true) {
            return Outcome::Undefined;
        }
        if let Some(v) = store {
            self.regs(i).regs.x[ACCESS_REG as usize] = v;
        }
        let root = self.core.layout.pt.root(HOSTVISOR);
        if self.lookup(HOSTVISOR, root, addr).is_none() {
            let regs = &mut self.regs(i).regs;
            regs.hpfar_el2 = (addr >> 12) << 4;
            regs.far_el2 = addr;
            regs.esr_el2 = dabt_esr_sized(store.is_some(), bytes);
            match self.trap(i, r, ("host_npt_handler", Core::host_npt_handler)) {
                Trap::Done => {}
                t => return Self::outcome(t),
            }
            if self.lookup(HOSTVISOR, root, addr).is_none() {
                if self.in_smmu_window(addr) {
                    // KCore performed the access for the host.
                    if store.is_none() {
                        r.value = Some(self.regs(i).regs.x[ACCESS_REG as usize]);
                    }
                    return Outcome::Ok;
                }
                return Outcome::Fault;
            }
        }
        self.access(i, HOSTVISOR, root, addr, bytes, store, r)
    }

    /// A translated access of `bytes` by the principal running on CPU `i`: to RAM (a
    /// whole word), or to a device's registers when the translation lands in an SMMU's
    /// window (a VM given the window by ioremap reaches the SMMU itself, as on hardware:
    /// issue 20 hole 4).
    #[allow(clippy::too_many_arguments)]
    fn access(
        &mut self,
        i: usize,
        v: u32,
        root: u64,
        addr: u64,
        bytes: u64,
        store: Option<u64>,
        r: &mut StepResult,
    ) -> Outcome {
        let Some(t) = self.lookup(v, root, addr) else {
            return Outcome::Fault;
        };
        if store.is_some() && !t.perms.write {
            return Outcome::Fault;
        }
        if self.core.hw.smmus().decode(t.pa).is_some() {
            return self.smmu_register_access(i, v, t.pa, bytes, store, r);
        }
        let pa = t.pa & !7;
        match store {
            Some(val) => {
                self.core.hw.write64(pa, val);
                r.stores.push((pa, val));
                r.rec.bus.push(bus(v, false, pa, val, true));
            }
            None => {
                let val = self.core.hw.read64(pa);
                r.rec.record(v, val);
                r.rec.bus.push(bus(v, false, pa, val, false));
                self.regs(i).regs.x[ACCESS_REG as usize] = val;
                r.value = Some(val);
            }
        }
        Outcome::Ok
    }

    /// A CPU's access that its stage-2 sends into an SMMU's register window: the SMMU's
    /// register model takes it at its width (a store to an S2CR really reroutes a stream).
    /// An access the SMMU does not accept is an external abort (`fault`).
    fn smmu_register_access(
        &mut self,
        i: usize,
        v: u32,
        pa: u64,
        bytes: u64,
        store: Option<u64>,
        r: &mut StepResult,
    ) -> Outcome {
        use crate::smmu::Width;
        let Some(w) = Width::from_bytes(bytes) else {
            return Outcome::Fault;
        };
        let mut smmus = self.core.hw.smmus();
        match store {
            Some(val) => match smmus.write(pa, w, val) {
                Some(Ok(())) => Outcome::Ok,
                _ => Outcome::Fault,
            },
            None => match smmus.read(pa, w) {
                Some(Ok(val)) => {
                    drop(smmus);
                    r.rec.record(v, val);
                    self.regs(i).regs.x[ACCESS_REG as usize] = val;
                    r.value = Some(val);
                    Outcome::Ok
                }
                _ => Outcome::Fault,
            },
        }
    }

    /// The running VM's load or store of `gpa` (x1); a missing mapping exits to KCore.
    /// A translation that exists is used whatever the VM's state: a vCPU still running after
    /// its VM powered off reaches what its stage-2 (or TLB) still maps, as on hardware.
    fn guest_access(
        &mut self,
        i: usize,
        gpa: u64,
        bytes: u64,
        store: Option<u64>,
        r: &mut StepResult,
    ) -> Outcome {
        if !self.running(i, false) {
            return Outcome::Undefined;
        }
        let vm = self.cpu.run.cur_vmid;
        if let Some(v) = store {
            self.regs(i).regs.x[ACCESS_REG as usize] = v;
        }
        let root = self.core.layout.pt.root(vm);
        if self.lookup(vm, root, gpa).is_none() {
            return self.stage2_abort(i, gpa, dabt_esr(store.is_some()), r);
        }
        self.access(i, vm, root, gpa, bytes, store, r)
    }

    /// The running VM fetches an instruction at `gpa`: an instruction abort if unmapped.
    fn guest_fetch(&mut self, i: usize, gpa: u64, r: &mut StepResult) -> Outcome {
        if !self.running(i, false) {
            return Outcome::Undefined;
        }
        let vm = self.cpu.run.cur_vmid;
        let root = self.core.layout.pt.root(vm);
        if let Some(t) = self.lookup(vm, root, gpa) {
            // The fetched word goes on the bus (RAM only: device memory is never fetched).
            if self.core.hw.smmus().decode(t.pa).is_none() {
                let pa = t.pa & !7;
                let val = self.core.hw.read64(pa);
                r.rec.bus.push(bus(vm, false, pa, val, false));
            }
            return Outcome::Ok;
        }
        self.stage2_abort(i, gpa, iabt_esr(), r)
    }

    /// A stage-2 abort of the VM on CPU `i` at `gpa` with syndrome `esr`, as hardware
    /// raises it (ESR, FAR, HPFAR); the access did not complete unless KCore halted.
    fn stage2_abort(&mut self, i: usize, gpa: u64, esr: u64, r: &mut StepResult) -> Outcome {
        let regs = &mut self.regs(i).regs;
        regs.ec = ARM_EXCEPTION_TRAP;
        regs.esr_el2 = esr;
        regs.hpfar_el2 = (gpa >> 12) << 4;
        regs.far_el2 = gpa;
        match self.trap(i, r, ("vm_exit_handler", Core::vm_exit_handler)) {
            Trap::Done => Outcome::Fault,
            t => Self::outcome(t),
        }
    }

    /// A VM exit of exit code `ec` with syndrome `esr` and the given registers.
    fn guest_exit(
        &mut self,
        i: usize,
        ec: u64,
        esr: u64,
        x: &[(usize, u64)],
        r: &mut StepResult,
    ) -> Outcome {
        if !self.running(i, false) {
            return Outcome::Undefined;
        }
        let regs = &mut self.regs(i).regs;
        regs.ec = ec;
        regs.esr_el2 = esr;
        for &(k, v) in x {
            regs.x[k] = v;
        }
        Self::outcome(self.trap(i, r, ("vm_exit_handler", Core::vm_exit_handler)))
    }

    /// A device's access: the device with stream ID `stream` (default `cb`) on SMMU `smmu`,
    /// translated by the SMMU as its registers say (stream match, context bank, IOTLB,
    /// table walk). Any SMMU fault, whatever the device sees (abort, RAZ/WI, stall), is
    /// `fault`; page 0 stays "as good as none". The owner whose stream records a read is
    /// the owner of the bank that translated (the host for a bypass).
    fn dma(
        &mut self,
        smmu: i128,
        cb: i128,
        stream: Option<i128>,
        iova: u64,
        store: Option<u64>,
        r: &mut StepResult,
    ) -> Outcome {
        use crate::smmu::{Access, Route};
        let sid = stream.unwrap_or(cb);
        if !((0..SMMU_NUM as i128).contains(&smmu)
            && (0..BANKS as i128).contains(&cb)
            && (0..1 << 15).contains(&sid))
        {
            return Outcome::Fault;
        }
        let smmu = smmu as u32;
        let dir = if store.is_some() {
            Access::Write
        } else {
            Access::Read
        };
        let hw = &self.core.hw;
        let translated = hw
            .smmus()
            .smmu(smmu as usize)
            .translate(&hw.phys, sid as u32, iova, dir);
        let t = match translated {
            Ok(t) if t.pa >= PAGE_SIZE => t,
            _ => return Outcome::Fault,
        };
        let owner = match t.route {
            Route::Bank(n) => self.core.smmu.read()[(smmu * BANKS + n) as usize],
            Route::Bypass(_) => HOSTVISOR,
        };
        // Whatever the owner's state: a device on a bank of a powered-off VM still DMAs
        // through the bank's leaves, as on hardware (issue 20 hole 2).
        let pa = t.pa & !7;
        match store {
            // The SMMU checked the access's direction against the leaf's S2AP.
            Some(v) => {
                self.core.hw.write64(pa, v);
                r.stores.push((pa, v));
                r.rec.bus.push(bus(owner, true, pa, v, true));
            }
            None => {
                let v = self.core.hw.read64(pa);
                r.rec.record(owner, v);
                r.rec.bus.push(bus(owner, true, pa, v, false));
                r.value = Some(v);
            }
        }
        Outcome::Ok
    }
}

/// The rest of a host kernel's EL1 state on one CPU (`tag` tells the CPUs apart): a value of
/// its own in every register a world switch saves and restores, none a fresh vCPU's reset
/// value, so a switch that drops any one of them shows (issue 20).
fn host_el1_state(r: &mut corevisor_kcore::ctxt::CtxtRegs, tag: u64) {
    let v = |k: u64| 0xE100_0000 | (k << 12) | tag;
    r.csselr_el1 = 2 | tag << 4;
    r.cpacr_el1 = 0x30_0000 | tag;
    r.ttbr0_el1 = v(1);
    r.ttbr1_el1 = v(2);
    r.tcr_el1 = v(3);
    r.afsr0_el1 = v(4);
    r.afsr1_el1 = v(5);
    r.far_el1 = v(6);
    r.mair_el1 = v(7);
    r.contextidr_el1 = v(8);
    r.amair_el1 = v(9);
    r.cntkctl_el1 = v(10);
    r.par_el1 = v(11);
    r.spsr_el1 = v(12);
    r.mdscr_el1 = v(13);
    r.sp_el0 = v(14);
    r.tpidr_el0 = v(15);
    r.tpidrro_el0 = v(16);
    r.actlr_el1 = v(17);
    r.sp_el1 = v(18);
    r.elr_el1 = v(19);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smmu::regs::{gr0, s2cr, smr};
    use crate::smmu::Width;

    /// A stage-2 table of four frames at `base` mapping IPA `ipa` to `pa`, read/write
    /// (Arm ARM D8.3: table descriptors 0b11, page descriptor 0b11, S2AP = 0b11, AF).
    fn map_one(m: &CoreMachine, base: u64, ipa: u64, pa: u64) -> u64 {
        let hw = &m.core.hw;
        for level in 0..3u64 {
            let table = base + level * PAGE_SIZE;
            let index = (ipa >> (39 - 9 * level)) & 511;
            hw.write64(table + index * 8, (table + PAGE_SIZE) | 3);
        }
        let leaf = base + 3 * PAGE_SIZE + ((ipa >> 12) & 511) * 8;
        hw.write64(leaf, pa | 3 | (3 << 6) | (1 << 10));
        base
    }

    /// Issue 20 hole 4: a principal whose stage-2 maps an SMMU's register window reaches the
    /// SMMU itself (not memory behind it): its store to an S2CR turns the stream to bypass,
    /// and the device on that stream then reads physical memory untranslated.
    #[test]
    fn a_translated_store_to_an_s2cr_reroutes_the_stream() {
        let mut cm = CoreMachine::new(MachineShape {
            cpus: 2,
            ram_base: 0x4000_0000,
            ram_end: 0x8000_0000,
            kcore_base: 0x7000_0000,
            smmus: 2,
            mmio: MachineShape::default_mmio(2),
        })
        .unwrap();
        let marker_pa = 0x4060_0000;
        cm.core.hw.write64(marker_pa, 0x5ec2e7);
        let dma_load = |cm: &mut CoreMachine| {
            let step = Step {
                index: 0,
                line: None,
                cpu: 0,
                oracle: vec![],
                size: None,
                action: Action::DmaLoad {
                    smmu: 0,
                    cb: 3,
                    iova: marker_pa as i128,
                    stream: None,
                },
            };
            cm.step(&step)
        };
        // KCore leaves every stream unmatched until a bank is attached: the device faults.
        assert_eq!(dma_load(&mut cm).outcome, Outcome::Fault);
        let s2cr3 = SMMU_WINDOW_BASE + gr0::s2cr(3);
        let root = map_one(&cm, 0x4800_0000, 0x1000, SMMU_WINDOW_BASE);
        let bypass = u64::from(s2cr::TYPE_BYPASS << s2cr::TYPE_SHIFT);
        let (m, cpus) = cm.parts();
        let mut on = On {
            core: m.core,
            shape: m.shape,
            staged: m.staged,
            gauge: None,
            untimed: false,
            cpu: &mut cpus[1],
        };
        let mut r = StepResult {
            outcome: Outcome::Ok,
            x0: None,
            value: None,
            rec: Recorded::default(),
            trap_regs: None,
            traps: vec![],
            stores: vec![],
        };
        let ipa = 0x1000 + gr0::s2cr(3);
        // The SMMU takes 32-bit accesses to S2CR only: an 8-byte store is an external abort.
        assert_eq!(
            on.access(1, 9, root, ipa, 8, Some(bypass), &mut r),
            Outcome::Fault
        );
        assert_eq!(
            on.access(1, 9, root, ipa, 4, Some(bypass), &mut r),
            Outcome::Ok
        );
        // A stream match for stream 3 in group 3, through the same translation.
        let smr = u64::from(smr::VALID) | 3;
        let smr_ipa = 0x1000 + gr0::smr(3);
        assert_eq!(
            on.access(1, 9, root, smr_ipa, 4, Some(smr), &mut r),
            Outcome::Ok
        );
        // Nothing reached memory: the window is the SMMU's, not RAM.
        assert_eq!((r.stores.len(), r.rec.bus.len()), (0, 0));
        assert_eq!(on.core.hw.read64(s2cr3 & !7), 0);
        assert_eq!(on.core.hw.smmus().read(s2cr3, Width::W32), Some(Ok(bypass)));
        // A load through the same translation reads the register, as the principal's input.
        assert_eq!(on.access(1, 9, root, ipa, 4, None, &mut r), Outcome::Ok);
        assert_eq!(r.value, Some(bypass));
        assert_eq!(r.rec.data, vec![(9, bypass)]);
        // The device on stream 3 now bypasses translation: it reads the host's page.
        let done = dma_load(&mut cm);
        assert_eq!((done.outcome, done.value), (Outcome::Ok, Some(0x5ec2e7)));
        assert_eq!(done.rec.bus[0].principal, HOSTVISOR);
    }
}
