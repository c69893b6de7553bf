//! A CPU's frame, at the top of its stack (`hw::percpu`): kcore's view of the CPU, whose
//! register file the EL2 vector saves a trapping EL1 context into. The one module besides
//! `kcore_glue` that names a kcore type: the frame's layout is kcore's `Cpu`.

use corevisor_kcore::trap::Cpu;

/// Each CPU as kcore sees it (what it runs and its register file): the start of the CPU's
/// frame, which its EL2 vector saves the trapping world into.
pub type KCpu = Cpu;
/// Where x0..x30, ELR_EL2 and SPSR_EL2 lie in a [`KCpu`] (the vector's layout).
pub const KCPU_X: usize = core::mem::offset_of!(Cpu, regs.regs.x);
pub const KCPU_ELR: usize = core::mem::offset_of!(Cpu, regs.regs.elr_el2);
pub const KCPU_SPSR: usize = core::mem::offset_of!(Cpu, regs.regs.spsr_el2);

/// A CPU's frame: kcore's view of the CPU ([`KCpu`]), whose register file starts with
/// x0..x30, ELR_EL2 and SPSR_EL2, exactly what the EL2 vector saves of an EL1 context
/// (checked in `hw::percpu`): the vector saves the trapping world straight into the
/// register file kcore reads, and restores from it what kcore left there. The vector never
/// writes the rest: `cpu` is the CPU's index (set at boot), `in_vm` which world runs on it
/// (1: a VM, 0: the host; kept by the glue, read on every trap).
#[repr(C)]
pub struct TrapFrame {
    pub kcpu: KCpu,
    pub cpu: u64,
    pub in_vm: u64,
}

/// What the trap handlers and the rest of the platform read and write of a frame.
impl TrapFrame {
    pub fn x(&self) -> &[u64; 31] {
        &self.kcpu.regs.regs.x
    }
    pub fn x_mut(&mut self) -> &mut [u64; 31] {
        &mut self.kcpu.regs.regs.x
    }
    pub fn elr(&self) -> u64 {
        self.kcpu.regs.regs.elr_el2
    }
    pub fn elr_mut(&mut self) -> &mut u64 {
        &mut self.kcpu.regs.regs.elr_el2
    }
}
