//! Register contexts: a CPU's physical register file as the EL2 vector saved it, and the
//! shadow contexts KCore keeps for every principal's vCPUs (seed `CtxtRegs`, `CtxtStates`,
//! `TrapRegs`, `Ctxt`; spec-digest §1.8), with the register movers of a world switch
//! (§4.2–§4.4). Field names are the seed's, so abs() maps them one to one.

use crate::consts::{ESR_ELX_EC_UNKNOWN, PSTATE_FAULT_BITS_64};
use crate::mutants::{dropped, mutant, Fault};

/// General, FP/SIMD, EL1 and EL2 registers (the seed's 100 integer registers).
///
/// `repr(C)` with x0..x30, ELR_EL2 and SPSR_EL2 first, in that order: what an EL2 vector
/// saves on a trap, so that a CPU's register file can be the very frame its vector saves
/// into (the EL2 build does that; field order means nothing else).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtxtRegs {
    pub x: [u64; 31],
    pub elr_el2: u64,
    pub spsr_el2: u64,
    pub fp_q: [u128; 32],
    pub fp_fpsr: u64,
    pub fp_fpcr: u64,
    pub csselr_el1: u64,
    pub sctlr_el1: u64,
    pub cpacr_el1: u64,
    pub ttbr0_el1: u64,
    pub ttbr1_el1: u64,
    pub tcr_el1: u64,
    pub afsr0_el1: u64,
    pub afsr1_el1: u64,
    pub far_el1: u64,
    pub mair_el1: u64,
    pub vbar_el1: u64,
    pub contextidr_el1: u64,
    pub amair_el1: u64,
    pub cntkctl_el1: u64,
    pub par_el1: u64,
    pub tpidr_el1: u64,
    pub spsr_el1: u64,
    pub mdscr_el1: u64,
    pub sp_el0: u64,
    pub tpidr_el0: u64,
    pub tpidrro_el0: u64,
    pub vmpidr_el2: u64,
    pub mpidr_el1: u64,
    pub actlr_el1: u64,
    pub sp_el1: u64,
    pub elr_el1: u64,
    pub vttbr_el2: u64,
    pub hcr_el2: u64,
    pub tpidr_el2: u64,
    pub esr_el2: u64,
    /// Exit code of the last exit (`ARM_EXCEPTION_TRAP` / `ARM_EXCEPTION_IRQ`).
    pub ec: u64,
    pub far_el2: u64,
    pub hpfar_el2: u64,
}

/// Return state and bookkeeping of a vCPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtxtStates {
    pub pc: u64,
    pub pstate: u64,
    pub dirty: u64,
    pub flags: u64,
    pub esr_el1: u64,
    pub spsr_0: u64,
}

/// The EL2 trap-control registers of a CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapRegs {
    pub pmuselr_el0: u64,
    pub pmuserenr_el0: u64,
    pub mdcr_el2: u64,
    pub cptr_el2: u64,
    pub cnthctl_el2: u64,
}

/// A context. Shadow contexts use `regs` and `states`; a CPU's physical file uses `regs`
/// and `traps`. `repr(C)`, `regs` first (see [`CtxtRegs`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ctxt {
    pub regs: CtxtRegs,
    pub traps: TrapRegs,
    pub states: CtxtStates,
}

/// `*dst = *src` for x0..x30, which every trap moves between a CPU's register file and its
/// shadow context (each way): two words at a time, both read before either is written, which
/// the compiler lowers inline to 16 load and 16 store pairs even where it cannot tell the two
/// files apart, where a 248-byte array copy would be a `memcpy` call (AArch64 inlines copies
/// of at most four stores).
#[inline(always)]
pub fn copy_gprs(dst: &mut [u64; 31], src: &[u64; 31]) {
    macro_rules! pairs {
        ($($i:literal)*) => { $( let (a, b) = (src[$i], src[$i + 1]); dst[$i] = a; dst[$i + 1] = b; )* };
    }
    pairs!(0 2 4 6 8 10 12 14 16 18 20 22 24 26 28);
    dst[30] = src[30];
}

/// Shadow-register indices (spec-digest §1.8).
pub mod idx {
    pub const PC: u64 = 32;
    pub const PSTATE: u64 = 33;
    pub const ELR_EL1: u64 = 35;
    pub const SPSR_EL1: u64 = 36;
    pub const FAR_EL2: u64 = 41;
    pub const HPFAR_EL2: u64 = 42;
    pub const HCR_EL2: u64 = 43;
    pub const EC: u64 = 44;
    pub const DIRTY: u64 = 45;
    pub const FLAGS: u64 = 46;
    pub const SYSREGS_START: u64 = 47;
    pub const SHADOW_SYS_REGS_SIZE: u64 = 24;
    pub const MPIDR_EL1: u64 = 47;
    pub const CSSELR_EL1: u64 = 48;
    pub const SCTLR_EL1: u64 = 49;
    pub const ACTLR_EL1: u64 = 50;
    pub const CPACR_EL1: u64 = 51;
    pub const TTBR0_EL1: u64 = 52;
    pub const TTBR1_EL1: u64 = 53;
    pub const TCR_EL1: u64 = 54;
    pub const ESR_EL1: u64 = 55;
    pub const AFSR0_EL1: u64 = 56;
    pub const AFSR1_EL1: u64 = 57;
    pub const FAR_EL1: u64 = 58;
    pub const MAIR_EL1: u64 = 59;
    pub const VBAR_EL1: u64 = 60;
    pub const CONTEXTIDR_EL1: u64 = 61;
    pub const TPIDR_EL0: u64 = 62;
    pub const TPIDRRO_EL0: u64 = 63;
    pub const TPIDR_EL1: u64 = 64;
    pub const AMAIR_EL1: u64 = 65;
    pub const CNTKCTL_EL1: u64 = 66;
    pub const PAR_EL1: u64 = 67;
    pub const MDSCR_EL1: u64 = 68;
    pub const ELR_EL2: u64 = 70;
    pub const SPSR_0: u64 = 71;
    pub const ESR_EL2: u64 = 72;
}

/// The field shadow index `$i` names in `$c` (`mut` for a mutable reference), or `None`
/// for indices with no field: one table for both reads and writes.
macro_rules! shadow_field {
    ($c:expr, $i:expr $(, $m:ident)?) => {{
        use idx::*;
        let (r, s) = (& $($m)? $c.regs, & $($m)? $c.states);
        Some(match $i {
            0..=30 => & $($m)? r.x[$i as usize],
            PC => & $($m)? s.pc,
            PSTATE => & $($m)? s.pstate,
            ELR_EL1 => & $($m)? r.elr_el1,
            SPSR_EL1 => & $($m)? r.spsr_el1,
            FAR_EL2 => & $($m)? r.far_el2,
            HPFAR_EL2 => & $($m)? r.hpfar_el2,
            HCR_EL2 => & $($m)? r.hcr_el2,
            EC => & $($m)? r.ec,
            DIRTY => & $($m)? s.dirty,
            FLAGS => & $($m)? s.flags,
            MPIDR_EL1 => & $($m)? r.mpidr_el1,
            CSSELR_EL1 => & $($m)? r.csselr_el1,
            SCTLR_EL1 => & $($m)? r.sctlr_el1,
            ACTLR_EL1 => & $($m)? r.actlr_el1,
            CPACR_EL1 => & $($m)? r.cpacr_el1,
            TTBR0_EL1 => & $($m)? r.ttbr0_el1,
            TTBR1_EL1 => & $($m)? r.ttbr1_el1,
            TCR_EL1 => & $($m)? r.tcr_el1,
            ESR_EL1 => & $($m)? s.esr_el1,
            AFSR0_EL1 => & $($m)? r.afsr0_el1,
            AFSR1_EL1 => & $($m)? r.afsr1_el1,
            FAR_EL1 => & $($m)? r.far_el1,
            MAIR_EL1 => & $($m)? r.mair_el1,
            VBAR_EL1 => & $($m)? r.vbar_el1,
            CONTEXTIDR_EL1 => & $($m)? r.contextidr_el1,
            TPIDR_EL0 => & $($m)? r.tpidr_el0,
            TPIDRRO_EL0 => & $($m)? r.tpidrro_el0,
            TPIDR_EL1 => & $($m)? r.tpidr_el1,
            AMAIR_EL1 => & $($m)? r.amair_el1,
            CNTKCTL_EL1 => & $($m)? r.cntkctl_el1,
            PAR_EL1 => & $($m)? r.par_el1,
            MDSCR_EL1 => & $($m)? r.mdscr_el1,
            ELR_EL2 => & $($m)? r.elr_el2,
            SPSR_0 => & $($m)? s.spsr_0,
            ESR_EL2 => & $($m)? r.esr_el2,
            _ => return None,
        })
    }};
}

impl Ctxt {
    fn field(&self, i: u64) -> Option<&u64> {
        shadow_field!(self, i)
    }

    fn field_mut(&mut self, i: u64) -> Option<&mut u64> {
        shadow_field!(self, i, mut)
    }

    /// `get_shadow_ctxt`: 0 for indices with no field.
    pub fn get_shadow(&self, i: u64) -> u64 {
        self.field(i).map_or(0, |f| *f)
    }

    /// `set_shadow_ctxt`: indices with no field are ignored.
    pub fn set_shadow(&mut self, i: u64, v: u64) {
        if let Some(f) = self.field_mut(i) {
            *f = v;
        }
    }

    /// `update_exception_gp_regs`: enter the guest's synchronous exception vector, as
    /// hardware takes an exception to EL1 (Arm ARM D1.10.2): ELR_EL1 and SPSR_EL1 keep the
    /// interrupted PC and PSTATE, ESR_EL1 says "unknown reason", PSTATE becomes EL1h with
    /// DAIF masked, and the PC the vector's entry (the Arm profile; the seed drops it, §7.2.2).
    pub fn update_exception_gp_regs(&mut self) {
        let (pc, pstate) = (self.states.pc, self.states.pstate);
        self.regs.elr_el1 = pc;
        self.states.spsr_0 = pstate;
        self.states.esr_el1 = ESR_ELX_EC_UNKNOWN;
        self.states.pstate = PSTATE_FAULT_BITS_64;
        self.states.pc = self.regs.vbar_el1.wrapping_add(exception_vector(pstate));
    }
}

impl CtxtRegs {
    /// The EL1 registers a world switch saves and restores.
    fn copy_el1_from(&mut self, src: &CtxtRegs) {
        if !mutant(Fault::WorldSwitchForgetsSctlr) {
            self.sctlr_el1 = src.sctlr_el1;
        }
        macro_rules! copy {
            ($($r:ident),*) => {$(
                if !dropped(Fault::WorldSwitchDropsEl1Reg, stringify!($r)) {
                    self.$r = src.$r;
                }
            )*};
        }
        copy!(
            csselr_el1,
            cpacr_el1,
            ttbr0_el1,
            ttbr1_el1,
            tcr_el1,
            afsr0_el1,
            afsr1_el1,
            far_el1,
            mair_el1,
            vbar_el1,
            contextidr_el1,
            amair_el1,
            cntkctl_el1,
            par_el1,
            tpidr_el1,
            spsr_el1,
            mdscr_el1,
            sp_el0,
            tpidr_el0,
            tpidrro_el0,
            actlr_el1,
            sp_el1,
            elr_el1
        );
    }

    /// `save_sysregs`: the EL1 registers from the physical file; MPIDR from VMPIDR_EL2.
    pub fn save_sysregs(&mut self, hw: &CtxtRegs) {
        self.copy_el1_from(hw);
        self.mpidr_el1 = hw.vmpidr_el2;
    }

    /// `restore_sysregs`: the EL1 registers and the EL2 return/fault state into `hw`.
    pub fn restore_sysregs(&self, st: &CtxtStates, hw: &mut CtxtRegs) {
        hw.copy_el1_from(self);
        hw.spsr_el2 = st.pstate;
        hw.elr_el2 = st.pc;
        hw.vmpidr_el2 = self.mpidr_el1;
        hw.mpidr_el1 = self.mpidr_el1;
        hw.esr_el2 = self.esr_el2;
        hw.ec = self.ec;
        hw.far_el2 = self.far_el2;
        hw.hpfar_el2 = self.hpfar_el2;
    }

    /// `fpsimd_save_state`.
    pub fn fpsimd_save(&mut self, hw: &CtxtRegs) {
        self.fp_q = hw.fp_q;
        self.fp_fpsr = hw.fp_fpsr;
        self.fp_fpcr = hw.fp_fpcr;
    }

    /// `fpsimd_restore_state`.
    pub fn fpsimd_restore(&self, hw: &mut CtxtRegs) {
        if mutant(Fault::FpsimdNotRestored) {
            return;
        }
        hw.fp_q = self.fp_q;
        hw.fp_fpsr = self.fp_fpsr;
        hw.fp_fpcr = self.fp_fpcr;
    }

    /// `exit_populate_fault`: the fault registers of the last exit.
    pub fn populate_fault(&mut self, hw: &CtxtRegs) {
        self.esr_el2 = hw.esr_el2;
        self.ec = hw.ec;
        self.far_el2 = hw.far_el2;
        self.hpfar_el2 = hw.hpfar_el2;
    }
}

/// `reg_desc i`: the reset value of shadow system register `i` (SCTLR_EL1's RES1 bits,
/// MMU off; everything else 0).
pub fn reg_desc(i: u64) -> u64 {
    if i == idx::SCTLR_EL1 {
        0x00C5_0078
    } else {
        0
    }
}

/// The vector offset of a synchronous exception taken from `pstate` (Arm ARM D1.10.2).
pub fn exception_vector(pstate: u64) -> u64 {
    if pstate & 0x10 != 0 {
        return 0x600;
    }
    match pstate & 0xF {
        0b0100 => 0x000,
        0b0101 => 0x200,
        _ => 0x400,
    }
}
