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
use crate::ctxt::Ctxt;
use crate::hw::Hw;
use crate::mem_ops::Core;
#[cfg(feature = "crypto")]
pub use export::{Exports, EXPORT_SLOTS};
#[cfg(not(feature = "crypto"))]
pub use export_refused::Exports;

/// `cur_vcpuid` while KCore has not yet picked the vCPU to run (the seed's `-1`).
pub const NO_VCPU: u32 = u32::MAX;

/// What one CPU is running (the seed's per-CPU `RData` fields `cur_vmid`, `cur_vcpuid`,
/// `ihost`, `icore`).
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

impl<H: Hw> Core<H> {
    /// The CPU's mode admits this entry point (`ihost`, `icore` as given) and KCore runs.
    fn admit(&self, cpu: usize, ihost: bool) -> Option<Trap> {
        let c = self.cpus[cpu];
        if (c.ihost, c.icore) != (ihost, false) {
            return Some(Trap::Undefined);
        }
        self.halted.then_some(Trap::Halted)
    }

    fn outcome(&self) -> Trap {
        debug_assert!(
            self.halted || self.held == 0,
            "a trap returns with locks held"
        );
        if self.halted {
            Trap::Halted
        } else {
            Trap::Done
        }
    }

    /// The shadow context of what runs on `cpu`.
    fn cur_ctxt(&self, cpu: usize) -> usize {
        let c = self.cpus[cpu];
        ctxt_id(c.cur_vmid, c.cur_vcpuid)
    }

    /// Entry from the host or a VM: its x0..x30 into its shadow context; KCore runs.
    fn enter(&mut self, cpu: usize) -> usize {
        let id = self.cur_ctxt(cpu);
        self.shadow[id].regs.x = self.hw.regs(cpu).regs.x;
        self.cpus[cpu].icore = true;
        id
    }

    /// Back to what trapped, with its shadow x0..x30.
    fn leave(&mut self, cpu: usize, id: usize) {
        self.hw.regs(cpu).regs.x = self.shadow[id].regs.x;
        self.cpus[cpu].icore = false;
    }

    /// `timer_enable_traps`: clear CNTHCTL_EL2.EL1PCEN, set EL1PCTEN.
    fn timer_enable_traps(hw: &mut Ctxt) {
        hw.traps.cnthctl_el2 = (hw.traps.cnthctl_el2 & !CNTHCTL_EL1PCEN) | CNTHCTL_EL1PCTEN;
    }

    /// VTTBR_EL2 for principal `v`: its table's root and its VMID (Arm ARM D17.2.160).
    pub fn vttbr(&self, v: u32) -> u64 {
        self.layout.pt.root(v) | ((v as u64) << 48)
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
