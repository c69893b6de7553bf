//! The seed's entry points (`TrapHandlerSpec`, spec-digest §5): what KCore does when a CPU
//! traps to EL2. Each handler runs on CPU `cpu`, reads that CPU's register file through
//! [`Hw::regs`], and leaves in it what the CPU runs after `eret`.
//!
//! * [`Core::host_hvc_handler`]: a host hypercall (`host_hvc.rs`);
//! * [`Core::host_npt_handler`]: a host stage-2 fault (`host_npt.rs`);
//! * [`Core::host_vcpu_run_handler`]: the host runs a vCPU (`vcpu_run.rs`);
//! * [`Core::vm_exit_handler`]: any exit from a running VM (`vm_exit.rs`).
//!
//! Arm-profile semantics (`docs/deviations.md`).

#[cfg(feature = "crypto")]
mod export;
#[cfg(not(feature = "crypto"))]
mod export_refused;
mod host_hvc;
mod host_npt;
mod vcpu_run;
mod vm_exit;

use crate::consts::*;
use crate::ctxt::{copy_gprs, Ctxt};
use crate::hw::{Hw, Untrusted};
/// The export state is data `state` holds, so it lives below it, in [`crate::records`].
#[cfg(not(feature = "crypto"))]
pub use crate::records::Exports;
#[cfg(feature = "crypto")]
pub use crate::records::{Exports, EXPORT_SLOTS};
use crate::state::{Core, Halt, Res};

/// `cur_vcpuid` while KCore has not yet picked the vCPU to run (the seed's `-1`).
pub const NO_VCPU: u32 = u32::MAX;

/// What one CPU is running (the seed's per-CPU `RData` fields `cur_vmid`, `cur_vcpuid`,
/// `ihost`, `icore`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerCpu {
    pub cur_vmid: u32,
    pub cur_vcpuid: u32,
    /// The host (not a VM) owns this CPU.
    pub ihost: bool,
    /// KCore is executing on this CPU.
    pub icore: bool,
}

impl PerCpu {
    /// At boot every CPU runs the host as its vCPU `cpu`.
    pub fn boot(cpu: usize) -> Self {
        PerCpu {
            cur_vmid: HOSTVISOR,
            cur_vcpuid: cpu as u32,
            ihost: true,
            icore: false,
        }
    }
}

/// One CPU as KCore sees it: what it runs, and its register file as its EL2 vector saved it
/// on the trap being handled (the vector restores it on `eret`). Only that CPU touches it,
/// so each handler takes it by `&mut`; on EL2 it is the CPU's own frame. `repr(C)`, `regs`
/// first: the frame starts with the registers the vector saves ([`crate::ctxt::CtxtRegs`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu {
    pub regs: Ctxt,
    pub id: usize,
    pub run: PerCpu,
}

impl Cpu {
    pub fn boot(id: usize) -> Self {
        Cpu {
            regs: Ctxt::default(),
            id,
            run: PerCpu::boot(id),
        }
    }
}

/// How a trap ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    /// Handled; the CPU returns to the host or a VM.
    Done,
    /// KCore halted (now or earlier): the spec's defined panic.
    Halted,
    /// The trap cannot happen in this CPU's mode (the spec's "outside the contract").
    Undefined,
}

impl From<Res> for Trap {
    fn from(r: Res) -> Trap {
        match r {
            Ok(()) => Trap::Done,
            Err(Halt) => Trap::Halted,
        }
    }
}

impl<H: Hw> Core<H> {
    /// Runs handler `f` if the CPU's mode admits this entry point (`ihost`, `icore` as
    /// given) and KCore runs: [`Self::refuse`], `f`, [`Self::conclude`].
    #[inline(always)]
    fn handle(&self, cpu: &mut Cpu, ihost: bool, f: impl FnOnce(&mut Cpu) -> Res) -> Trap {
        if let Some(t) = self.refuse(cpu, ihost) {
            return t;
        }
        let r = f(cpu);
        self.conclude(r)
    }

    /// How an entry point ends before its handler runs: undefined if the CPU's mode does
    /// not admit it, halted if KCore is; `None`: the handler runs.
    #[inline(always)]
    fn refuse(&self, cpu: &Cpu, ihost: bool) -> Option<Trap> {
        if (cpu.run.ihost, cpu.run.icore) != (ihost, false) {
            return Some(Trap::Undefined);
        }
        if self.halted() {
            return Some(Trap::Halted);
        }
        None
    }

    /// How an entry point ends after its handler returned `r`.
    #[inline(always)]
    fn conclude(&self, r: Res) -> Trap {
        // A halt on another CPU ends this step too (its next lock would have failed).
        if self.halted() {
            return Trap::Halted;
        }
        r.into()
    }

    /// The shadow context of what runs on `cpu`.
    fn cur_ctxt(cpu: &Cpu) -> usize {
        ctxt_id(cpu.run.cur_vmid, cpu.run.cur_vcpuid)
    }

    /// A copy of shadow context `id`, taken under its lock.
    pub(crate) fn ctxt(&self, id: usize, input: &mut impl Untrusted) -> Res<Ctxt> {
        Ok(*self.take(&self.shadow[id], input)?)
    }

    /// Changes shadow context `id` under its lock.
    pub(crate) fn with_ctxt<R>(
        &self,
        id: usize,
        input: &mut impl Untrusted,
        f: impl FnOnce(&mut Ctxt) -> R,
    ) -> Res<R> {
        Ok(f(&mut *self.take(&self.shadow[id], input)?))
    }

    /// Entry from the host or a VM: its x0..x30 into its shadow context; KCore runs.
    #[inline(always)]
    fn enter(&self, cpu: &mut Cpu, input: &mut impl Untrusted) -> Res<usize> {
        let id = Self::cur_ctxt(cpu);
        // `with_ctxt` written out, so that it inlines into every handler's path.
        copy_gprs(
            &mut self.take(&self.shadow[id], input)?.regs.x,
            &cpu.regs.regs.x,
        );
        cpu.run.icore = true;
        Ok(id)
    }

    /// Back to what trapped, with its shadow x0..x30.
    #[inline(always)]
    fn leave(&self, cpu: &mut Cpu, id: usize, input: &mut impl Untrusted) -> Res {
        copy_gprs(
            &mut cpu.regs.regs.x,
            &self.take(&self.shadow[id], input)?.regs.x,
        );
        cpu.run.icore = false;
        Ok(())
    }

    /// `timer_enable_traps`: clear CNTHCTL_EL2.EL1PCEN, set EL1PCTEN.
    fn timer_enable_traps(hw: &mut Ctxt) {
        hw.traps.cnthctl_el2 = (hw.traps.cnthctl_el2 & !CNTHCTL_EL1PCEN) | CNTHCTL_EL1PCTEN;
    }
}

/// `is_paddr`, `is_addr`, `is_pfn` of the argument checks.
fn is_paddr(a: u64) -> bool {
    a < KVM_PHYS_SIZE
}
fn is_addr(a: u64) -> bool {
    a < KVM_ADDR_SPACE
}
fn is_pfn(a: u64) -> bool {
    a < KVM_PFN_SPACE
}
fn is_vm(v: u64) -> bool {
    0 < v && v < COREVISOR as u64
}
fn is_vcpu(c: u64) -> bool {
    c < crate::vm_info::VCPU_PER_VM as u64
}
fn is_smmu(i: u64) -> bool {
    i < crate::smmu::SMMU_NUM as u64
}
fn is_smmu_cfg(c: u64) -> bool {
    c < crate::smmu::BANKS as u64
}
