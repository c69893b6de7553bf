//! Helpers of the lower layers that the seed calls but does not define (VRM
//! `AbstractMachineSpec.md`; spec-digest §4.2–§4.5): register movers, shadow-register
//! access by index, EL2 trap helpers, and the abstract parameters made concrete.

use crate::consts::*;
use crate::profile::Profile;
use crate::state::{CtxtRegs, CtxtStates, TrapRegs};
use crate::Z;

/// A data oracle applied to one principal: `(doracle adt) vmid` in the seed.
pub type Dorc<'a> = &'a dyn Fn(Z) -> Z;

// ---- §4.2 register-file movers --------------------------------------------------------

/// `host_to_core`: the shadow `cr` with `x0..x30` copied from the physical file.
pub fn host_to_core_specx(cr: &CtxtRegs, hw: &CtxtRegs) -> CtxtRegs {
    CtxtRegs {
        x: hw.x,
        ..cr.clone()
    }
}

/// `vm_to_core`: identical to `host_to_core`.
pub fn vm_to_core_specx(cr: &CtxtRegs, hw: &CtxtRegs) -> CtxtRegs {
    host_to_core_specx(cr, hw)
}

/// `core_to_host`: the physical file with `x0..x30` copied from the shadow.
pub fn core_to_host_specx(cr: &CtxtRegs, hw: &CtxtRegs) -> CtxtRegs {
    CtxtRegs {
        x: cr.x,
        ..hw.clone()
    }
}

/// `core_to_vm`: identical to `core_to_host`.
pub fn core_to_vm_specx(cr: &CtxtRegs, hw: &CtxtRegs) -> CtxtRegs {
    core_to_host_specx(cr, hw)
}

/// `exit_populate_fault`: copy the fault registers of the last exit into the shadow.
pub fn exit_populate_fault_specx(cr: &CtxtRegs, hw: &CtxtRegs) -> CtxtRegs {
    CtxtRegs {
        esr_el2: hw.esr_el2,
        ec: hw.ec,
        far_el2: hw.far_el2,
        hpfar_el2: hw.hpfar_el2,
        ..cr.clone()
    }
}

/// Copies the EL1 registers a world switch saves and restores from `src` to `dst`.
fn el1_sysregs(dst: &mut CtxtRegs, src: &CtxtRegs) {
    dst.csselr_el1 = src.csselr_el1;
    dst.sctlr_el1 = src.sctlr_el1;
    dst.cpacr_el1 = src.cpacr_el1;
    dst.ttbr0_el1 = src.ttbr0_el1;
    dst.ttbr1_el1 = src.ttbr1_el1;
    dst.tcr_el1 = src.tcr_el1;
    dst.afsr0_el1 = src.afsr0_el1;
    dst.afsr1_el1 = src.afsr1_el1;
    dst.far_el1 = src.far_el1;
    dst.mair_el1 = src.mair_el1;
    dst.vbar_el1 = src.vbar_el1;
    dst.contextidr_el1 = src.contextidr_el1;
    dst.amair_el1 = src.amair_el1;
    dst.cntkctl_el1 = src.cntkctl_el1;
    dst.par_el1 = src.par_el1;
    dst.tpidr_el1 = src.tpidr_el1;
    dst.spsr_el1 = src.spsr_el1;
    dst.mdscr_el1 = src.mdscr_el1;
    dst.sp_el0 = src.sp_el0;
    dst.tpidr_el0 = src.tpidr_el0;
    dst.tpidrro_el0 = src.tpidrro_el0;
    dst.actlr_el1 = src.actlr_el1;
    dst.sp_el1 = src.sp_el1;
    dst.elr_el1 = src.elr_el1;
}

/// `save_sysregs`: EL1 registers from the physical file; `mpidr_el1 := hw.vmpidr_el2`.
pub fn save_sysregs_specx(cr: &CtxtRegs, hw: &CtxtRegs) -> CtxtRegs {
    let mut out = cr.clone();
    el1_sysregs(&mut out, hw);
    out.mpidr_el1 = hw.vmpidr_el2;
    out
}

/// `restore_sysregs`: EL1 registers back to the physical file, plus the EL2 return state.
pub fn restore_sysregs_specx(cr: &CtxtRegs, cs: &CtxtStates, hw: &CtxtRegs) -> CtxtRegs {
    let mut out = hw.clone();
    el1_sysregs(&mut out, cr);
    out.spsr_el2 = cs.pstate;
    out.elr_el2 = cs.pc;
    out.vmpidr_el2 = cr.mpidr_el1;
    out.mpidr_el1 = cr.mpidr_el1;
    out.esr_el2 = cr.esr_el2;
    out.ec = cr.ec;
    out.far_el2 = cr.far_el2;
    out.hpfar_el2 = cr.hpfar_el2;
    out
}

/// `fpsimd_save_state`.
pub fn fpsimd_save_state_specx(cr: &CtxtRegs, hw: &CtxtRegs) -> CtxtRegs {
    CtxtRegs {
        fp_q: hw.fp_q,
        fp_fpsr: hw.fp_fpsr,
        fp_fpcr: hw.fp_fpcr,
        ..cr.clone()
    }
}

/// `fpsimd_restore_state`.
pub fn fpsimd_restore_state_specx(cr: &CtxtRegs, hw: &CtxtRegs) -> CtxtRegs {
    CtxtRegs {
        fp_q: cr.fp_q,
        fp_fpsr: cr.fp_fpsr,
        fp_fpcr: cr.fp_fpcr,
        ..hw.clone()
    }
}

/// `clear_shadow_gp_regs`.
pub fn clear_shadow_gp_regs_specx(cr: &CtxtRegs) -> CtxtRegs {
    CtxtRegs {
        x: [0; 31],
        ..cr.clone()
    }
}

/// `reset_fp_regs`.
pub fn reset_fp_regs_specx(cr: &CtxtRegs) -> CtxtRegs {
    CtxtRegs {
        fp_q: [0; 32],
        fp_fpsr: 0,
        fp_fpcr: 0,
        ..cr.clone()
    }
}

// ---- §4.3 EL2 / trap helpers -----------------------------------------------------------

pub fn vm_el2_restore_state_specx(p: &Profile, hw: &CtxtRegs, cr: &CtxtRegs, vttbr: Z) -> CtxtRegs {
    CtxtRegs {
        vttbr_el2: vttbr,
        tpidr_el2: cr.tpidr_el2,
        hcr_el2: p.c.HCR_HYPSEC_VM_FLAGS,
        ..hw.clone()
    }
}

pub fn host_el2_restore_state_specx(p: &Profile, hw: &CtxtRegs, vttbr: Z) -> CtxtRegs {
    CtxtRegs {
        vttbr_el2: vttbr,
        hcr_el2: p.c.HCR_HOST_NVHE_FLAGS,
        tpidr_el2: 0,
        ..hw.clone()
    }
}

pub fn activate_traps_specx(p: &Profile, t: &TrapRegs) -> TrapRegs {
    TrapRegs {
        pmuselr_el0: 0,
        pmuserenr_el0: p.c.ARMV8_PMU_USERENR_MASK,
        mdcr_el2: p.c.HYPSEC_MDCR_EL2_FLAG,
        cptr_el2: p.c.CPTR_VM,
        ..t.clone()
    }
}

pub fn deactivate_traps_specx(p: &Profile, t: &TrapRegs) -> TrapRegs {
    TrapRegs {
        pmuserenr_el0: 0,
        mdcr_el2: 0,
        cptr_el2: p.c.CPTR_EL2_DEFAULT,
        ..t.clone()
    }
}

/// `timer_enable_traps`: the seed's arithmetic `- PCEN + PCTEN`; intent (Arm): clear the
/// EL1PCEN bit and set EL1PCTEN of CNTHCTL_EL2, which is idempotent.
pub fn timer_enable_traps_specx(p: &Profile, t: &TrapRegs) -> TrapRegs {
    let v = if p.q.timer_traps_arithmetic {
        t.cnthctl_el2 - p.c.CNTHCTL_EL1PCEN + p.c.CNTHCTL_EL1PCTEN
    } else {
        (t.cnthctl_el2 & !p.c.CNTHCTL_EL1PCEN) | p.c.CNTHCTL_EL1PCTEN
    };
    TrapRegs {
        cnthctl_el2: v,
        ..t.clone()
    }
}

/// "Skip the trapped instruction" (§7.1): the seed writes `esr_el2 := elr_el2 + 4`; the
/// intent is `elr_el2 += 4`.
pub fn skip_instruction(p: &Profile, hw: &CtxtRegs) -> CtxtRegs {
    if p.q.skip_writes_esr {
        CtxtRegs {
            esr_el2: hw.elr_el2 + 4,
            ..hw.clone()
        }
    } else {
        CtxtRegs {
            elr_el2: hw.elr_el2 + 4,
            ..hw.clone()
        }
    }
}

// ---- §4.4 shadow register access by index (§1.8 index map) ----------------------------

/// `get_shadow_ctxt`: the field selected by index `i`; 0 for indices with no field.
pub fn get_shadow_ctxt_specx(i: Z, cr: &CtxtRegs, cs: &CtxtStates) -> Z {
    match i {
        0..=30 => cr.x[i as usize],
        PC => cs.pc,
        PSTATE => cs.pstate,
        ELR_EL1 => cr.elr_el1,
        SPSR_EL1 => cr.spsr_el1,
        FAR_EL2 => cr.far_el2,
        HPFAR_EL2 => cr.hpfar_el2,
        HCR_EL2 => cr.hcr_el2,
        EC => cr.ec,
        DIRTY => cs.dirty,
        FLAGS => cs.flags,
        MPIDR_EL1 => cr.mpidr_el1,
        CSSELR_EL1 => cr.csselr_el1,
        SCTLR_EL1 => cr.sctlr_el1,
        ACTLR_EL1 => cr.actlr_el1,
        CPACR_EL1 => cr.cpacr_el1,
        TTBR0_EL1 => cr.ttbr0_el1,
        TTBR1_EL1 => cr.ttbr1_el1,
        TCR_EL1 => cr.tcr_el1,
        ESR_EL1 => cs.esr_el1,
        AFSR0_EL1 => cr.afsr0_el1,
        AFSR1_EL1 => cr.afsr1_el1,
        FAR_EL1 => cr.far_el1,
        MAIR_EL1 => cr.mair_el1,
        VBAR_EL1 => cr.vbar_el1,
        CONTEXTIDR_EL1 => cr.contextidr_el1,
        TPIDR_EL0 => cr.tpidr_el0,
        TPIDRRO_EL0 => cr.tpidrro_el0,
        TPIDR_EL1 => cr.tpidr_el1,
        AMAIR_EL1 => cr.amair_el1,
        CNTKCTL_EL1 => cr.cntkctl_el1,
        PAR_EL1 => cr.par_el1,
        MDSCR_EL1 => cr.mdscr_el1,
        ELR_EL2 => cr.elr_el2,
        SPSR_0 => cs.spsr_0,
        ESR_EL2 => cr.esr_el2,
        _ => 0,
    }
}

/// `set_shadow_ctxt`: write the field selected by index `i`; indices with no field are
/// ignored.
pub fn set_shadow_ctxt_specx(i: Z, v: Z, cr: &CtxtRegs, cs: &CtxtStates) -> (CtxtRegs, CtxtStates) {
    let (mut cr, mut cs) = (cr.clone(), cs.clone());
    match i {
        0..=30 => cr.x[i as usize] = v,
        PC => cs.pc = v,
        PSTATE => cs.pstate = v,
        ELR_EL1 => cr.elr_el1 = v,
        SPSR_EL1 => cr.spsr_el1 = v,
        FAR_EL2 => cr.far_el2 = v,
        HPFAR_EL2 => cr.hpfar_el2 = v,
        HCR_EL2 => cr.hcr_el2 = v,
        EC => cr.ec = v,
        DIRTY => cs.dirty = v,
        FLAGS => cs.flags = v,
        MPIDR_EL1 => cr.mpidr_el1 = v,
        CSSELR_EL1 => cr.csselr_el1 = v,
        SCTLR_EL1 => cr.sctlr_el1 = v,
        ACTLR_EL1 => cr.actlr_el1 = v,
        CPACR_EL1 => cr.cpacr_el1 = v,
        TTBR0_EL1 => cr.ttbr0_el1 = v,
        TTBR1_EL1 => cr.ttbr1_el1 = v,
        TCR_EL1 => cr.tcr_el1 = v,
        ESR_EL1 => cs.esr_el1 = v,
        AFSR0_EL1 => cr.afsr0_el1 = v,
        AFSR1_EL1 => cr.afsr1_el1 = v,
        FAR_EL1 => cr.far_el1 = v,
        MAIR_EL1 => cr.mair_el1 = v,
        VBAR_EL1 => cr.vbar_el1 = v,
        CONTEXTIDR_EL1 => cr.contextidr_el1 = v,
        TPIDR_EL0 => cr.tpidr_el0 = v,
        TPIDRRO_EL0 => cr.tpidrro_el0 = v,
        TPIDR_EL1 => cr.tpidr_el1 = v,
        AMAIR_EL1 => cr.amair_el1 = v,
        CNTKCTL_EL1 => cr.cntkctl_el1 = v,
        PAR_EL1 => cr.par_el1 = v,
        MDSCR_EL1 => cr.mdscr_el1 = v,
        ELR_EL2 => cr.elr_el2 = v,
        SPSR_0 => cs.spsr_0 = v,
        ESR_EL2 => cr.esr_el2 = v,
        _ => {}
    }
    (cr, cs)
}

// ---- §4.5 / §2.11 abstract parameters made concrete -----------------------------------

/// `reg_desc i`: reset value of shadow system register `i` (C: the host's
/// `s2_sys_reg_descs` table). Architectural reset values KVM uses: SCTLR_EL1 = 0x00C50078
/// (RES1 bits, MMU off); everything else 0.
pub fn reg_desc(i: Z) -> Z {
    match i {
        SCTLR_EL1 => 0x00C5_0078,
        _ => 0,
    }
}

/// Size of the host-shared `struct kvm` and `struct kvm_vcpu` records, and where they start
/// (the C's `shared_data_start`); any fixed function satisfies the seed.
pub const SHARED_DATA_START: Z = 0x4000_0000;
pub const SHARED_KVM_SIZE: Z = 0x1000;
pub const SHARED_VCPU_SIZE: Z = 0x1000;

/// `shared_kvm vmid`.
pub fn shared_kvm(vmid: Z) -> Z {
    SHARED_DATA_START + vmid * SHARED_KVM_SIZE
}

/// `shared_vcpu vmid vcpuid`.
pub fn shared_vcpu(vmid: Z, vcpuid: Z) -> Z {
    SHARED_DATA_START + SHARED_KVM_SIZE * (COREVISOR + 2) + ctxt_id(vmid, vcpuid) * SHARED_VCPU_SIZE
}

/// `exception_vector pstate`: offset into the guest's vector table for a synchronous
/// exception taken from `pstate` (Arm ARM D1.10.2): from EL1t 0x000, from EL1h 0x200, from
/// AArch64 EL0 0x400, from AArch32 0x600. The seed computes and drops it (§7.2.2); under
/// the Arm profile `pc := vbar_el1 + exception_vector(pstate)`.
pub fn exception_vector(pstate: Z) -> Z {
    if pstate & 0x10 != 0 {
        return 0x600;
    }
    match pstate & 0xF {
        0b0100 => 0x000,
        0b0101 => 0x200,
        _ => 0x400,
    }
}

/// `decrypt_gp_regs`: restore x0..x30 of a saved vCPU from the host-supplied encrypted
/// image. The seed leaves it abstract; the model takes one oracle value per register
/// (the plaintext the real decryption produced, recorded by the core).
pub fn decrypt_gp_regs_specx(
    cr: &CtxtRegs,
    cs: &CtxtStates,
    dorc: Dorc,
    logn: Z,
) -> (CtxtRegs, CtxtStates, Z) {
    let mut out = cr.clone();
    for (k, r) in out.x.iter_mut().enumerate() {
        *r = dorc(logn + k as Z);
    }
    (out, cs.clone(), logn + 31)
}

/// `decrypt_sys_regs`: as [`decrypt_gp_regs_specx`] for the shadow system registers
/// (indices `SYSREGS_START ..< SYSREGS_START + SHADOW_SYS_REGS_SIZE`) plus pc and pstate.
pub fn decrypt_sys_regs_specx(
    cr: &CtxtRegs,
    cs: &CtxtStates,
    dorc: Dorc,
    logn: Z,
) -> (CtxtRegs, CtxtStates, Z) {
    let (mut cr, mut cs) = (cr.clone(), cs.clone());
    let mut n = logn;
    for i in [PC, PSTATE]
        .into_iter()
        .chain(SYSREGS_START..SYSREGS_START + SHADOW_SYS_REGS_SIZE)
    {
        (cr, cs) = set_shadow_ctxt_specx(i, dorc(n), &cr, &cs);
        n += 1;
    }
    (cr, cs, n)
}
