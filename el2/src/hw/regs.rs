//! System registers, barriers and TLB maintenance (Arm ARM D17 for the registers, D8.16 for
//! TLB maintenance, B2.3 for barriers). Each function is one instruction or a fixed short
//! sequence; callers hold the configuration policy.

use core::arch::asm;

macro_rules! mrs {
    ($r:literal) => {{
        let v: u64;
        // SAFETY: reading a system register accessible at EL2 has no side effect.
        unsafe { asm!(concat!("mrs {}, ", $r), out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }};
}

macro_rules! msr {
    ($r:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: KCore owns EL2 and the EL1 context of whichever world it is about to enter;
        // callers pass values the architecture defines for the register. No Rust memory is
        // affected (an `isb` follows where the change must take effect at once).
        unsafe { asm!(concat!("msr ", $r, ", {}"), in(reg) v, options(nostack, preserves_flags)) };
    }};
}

macro_rules! accessors {
    ($( $get:ident / $set:ident => $r:literal ),* $(,)?) => {
        $(
            #[inline(always)]
            #[allow(dead_code)]
            pub fn $get() -> u64 { mrs!($r) }
            #[inline(always)]
            #[allow(dead_code)]
            pub fn $set(v: u64) { msr!($r, v) }
        )*
    };
}

accessors! {
    hcr / set_hcr => "hcr_el2",
    vttbr / set_vttbr => "vttbr_el2",
    vtcr / set_vtcr => "vtcr_el2",
    cptr / set_cptr => "cptr_el2",
    mdcr / set_mdcr => "mdcr_el2",
    cnthctl / set_cnthctl => "cnthctl_el2",
    cntvoff / set_cntvoff => "cntvoff_el2",
    tpidr_el2 / set_tpidr_el2 => "tpidr_el2",
    vpidr / set_vpidr => "vpidr_el2",
    vmpidr / set_vmpidr => "vmpidr_el2",
    vbar_el2 / set_vbar_el2 => "vbar_el2",
    esr / set_esr => "esr_el2",
    far / set_far => "far_el2",
    hpfar / set_hpfar => "hpfar_el2",
    elr / set_elr => "elr_el2",
    spsr / set_spsr => "spsr_el2",
    pmuserenr / set_pmuserenr => "pmuserenr_el0",
    pmselr / set_pmselr => "pmselr_el0",
    sctlr_el1 / set_sctlr_el1 => "sctlr_el1",
    cpacr_el1 / set_cpacr_el1 => "cpacr_el1",
}

pub fn midr() -> u64 {
    mrs!("midr_el1")
}
pub fn mpidr() -> u64 {
    mrs!("mpidr_el1")
}
pub fn id_aa64mmfr0() -> u64 {
    mrs!("id_aa64mmfr0_el1")
}
pub fn id_aa64mmfr1() -> u64 {
    mrs!("id_aa64mmfr1_el1")
}
pub fn id_aa64pfr0() -> u64 {
    mrs!("id_aa64pfr0_el1")
}
pub fn id_aa64pfr1() -> u64 {
    mrs!("id_aa64pfr1_el1")
}
pub fn id_aa64isar1() -> u64 {
    mrs!("id_aa64isar1_el1")
}
/// ID_AA64ISAR2_EL1 (encoded: older assemblers lack the name; RAZ before Armv8.7).
pub fn id_aa64isar2() -> u64 {
    mrs!("s3_0_c0_c6_2")
}
/// ID_AA64SMFR0_EL1 (encoded; RAZ without FEAT_SME).
pub fn id_aa64smfr0() -> u64 {
    mrs!("s3_0_c0_c4_5")
}

/// EL2 controls of CPU features the seed does not model (Arm ARM D19.2), by encoding so
/// that any assembler takes them; written only when the CPU has the feature.
pub mod features {
    use core::arch::asm;
    /// ZCR_EL2 (FEAT_SVE).
    pub fn set_zcr_el2(v: u64) {
        msr!("s3_4_c1_c2_0", v)
    }
    /// SMCR_EL2 (FEAT_SME).
    pub fn set_smcr_el2(v: u64) {
        msr!("s3_4_c1_c2_6", v)
    }
    /// HCRX_EL2 (FEAT_HCX).
    pub fn set_hcrx_el2(v: u64) {
        msr!("s3_4_c1_c2_2", v)
    }
    /// HFGRTR_EL2 and HFGWTR_EL2 (FEAT_FGT): the fine-grained register traps, per world.
    pub fn set_hfgrwtr_el2(v: u64) {
        msr!("s3_4_c1_c1_4", v);
        msr!("s3_4_c1_c1_5", v);
    }
    /// HFGITR_EL2, HDFGRTR_EL2, HDFGWTR_EL2 (FEAT_FGT): instruction and debug traps.
    pub fn set_fgt_other_el2(v: u64) {
        msr!("s3_4_c1_c1_6", v);
        msr!("s3_4_c3_c1_4", v);
        msr!("s3_4_c3_c1_5", v);
    }
}
pub fn current_el() -> u64 {
    (mrs!("CurrentEL") >> 2) & 3
}
pub fn pmcr() -> u64 {
    mrs!("pmcr_el0")
}
pub fn dczid() -> u64 {
    mrs!("dczid_el0")
}
pub fn ctr() -> u64 {
    mrs!("ctr_el0")
}

/// The EL1 (and EL0) context of a world, as a world switch moves it between the CPU and
/// memory. The first 24 are kcore's `CtxtRegs` EL1 set; `esr_el1` and the EL1 virtual timer
/// are switched too, so nothing of one world's EL1 state is left for the next to read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct El1Sysregs {
    pub csselr: u64,
    pub sctlr: u64,
    pub cpacr: u64,
    pub ttbr0: u64,
    pub ttbr1: u64,
    pub tcr: u64,
    pub afsr0: u64,
    pub afsr1: u64,
    pub far: u64,
    pub mair: u64,
    pub vbar: u64,
    pub contextidr: u64,
    pub amair: u64,
    pub cntkctl: u64,
    pub par: u64,
    pub tpidr_el1: u64,
    pub spsr: u64,
    pub mdscr: u64,
    pub sp_el0: u64,
    pub tpidr_el0: u64,
    pub tpidrro_el0: u64,
    pub actlr: u64,
    pub sp_el1: u64,
    pub elr: u64,
    pub esr: u64,
    pub cntv_ctl: u64,
    pub cntv_cval: u64,
}

impl El1Sysregs {
    /// The CPU's current EL1 context.
    pub fn save() -> Self {
        El1Sysregs {
            csselr: mrs!("csselr_el1"),
            sctlr: mrs!("sctlr_el1"),
            cpacr: mrs!("cpacr_el1"),
            ttbr0: mrs!("ttbr0_el1"),
            ttbr1: mrs!("ttbr1_el1"),
            tcr: mrs!("tcr_el1"),
            afsr0: mrs!("afsr0_el1"),
            afsr1: mrs!("afsr1_el1"),
            far: mrs!("far_el1"),
            mair: mrs!("mair_el1"),
            vbar: mrs!("vbar_el1"),
            contextidr: mrs!("contextidr_el1"),
            amair: mrs!("amair_el1"),
            cntkctl: mrs!("cntkctl_el1"),
            par: mrs!("par_el1"),
            tpidr_el1: mrs!("tpidr_el1"),
            spsr: mrs!("spsr_el1"),
            mdscr: mrs!("mdscr_el1"),
            sp_el0: mrs!("sp_el0"),
            tpidr_el0: mrs!("tpidr_el0"),
            tpidrro_el0: mrs!("tpidrro_el0"),
            actlr: mrs!("actlr_el1"),
            sp_el1: mrs!("sp_el1"),
            elr: mrs!("elr_el1"),
            esr: mrs!("esr_el1"),
            cntv_ctl: mrs!("cntv_ctl_el0"),
            cntv_cval: mrs!("cntv_cval_el0"),
        }
    }

    /// Loads this EL1 context into the CPU (in effect at the next `eret`).
    pub fn restore(&self) {
        msr!("csselr_el1", self.csselr);
        msr!("sctlr_el1", self.sctlr);
        msr!("cpacr_el1", self.cpacr);
        msr!("ttbr0_el1", self.ttbr0);
        msr!("ttbr1_el1", self.ttbr1);
        msr!("tcr_el1", self.tcr);
        msr!("afsr0_el1", self.afsr0);
        msr!("afsr1_el1", self.afsr1);
        msr!("far_el1", self.far);
        msr!("mair_el1", self.mair);
        msr!("vbar_el1", self.vbar);
        msr!("contextidr_el1", self.contextidr);
        msr!("amair_el1", self.amair);
        msr!("cntkctl_el1", self.cntkctl);
        msr!("par_el1", self.par);
        msr!("tpidr_el1", self.tpidr_el1);
        msr!("spsr_el1", self.spsr);
        msr!("mdscr_el1", self.mdscr);
        msr!("sp_el0", self.sp_el0);
        msr!("tpidr_el0", self.tpidr_el0);
        msr!("tpidrro_el0", self.tpidrro_el0);
        msr!("actlr_el1", self.actlr);
        msr!("sp_el1", self.sp_el1);
        msr!("elr_el1", self.elr);
        msr!("esr_el1", self.esr);
        msr!("cntv_ctl_el0", self.cntv_ctl);
        msr!("cntv_cval_el0", self.cntv_cval);
    }
}

/// Saves the CPU's FP/SIMD registers into `q` and returns [FPSR, FPCR].
pub fn fp_save(q: &mut [u128; 32]) -> [u64; 2] {
    let mut ctl = [0u64; 2];
    // SAFETY: the assembly stores 32 Q registers into `q` (512 bytes, its size) and FPSR,
    // FPCR into `ctl`, both exclusively borrowed. CPTR_EL2.TFP is 0 at EL2 (boot sets it,
    // every value KCore writes keeps it), so nothing traps.
    unsafe { super::asm::el2_fp_save(q, &mut ctl) };
    ctl
}

/// Loads the CPU's FP/SIMD registers from `q` and `ctl` = [FPSR, FPCR].
pub fn fp_restore(q: &[u128; 32], ctl: [u64; 2]) {
    // SAFETY: as `fp_save`, reading both arrays only.
    unsafe { super::asm::el2_fp_restore(q, &ctl) }
}

#[inline(always)]
pub fn isb() {
    // SAFETY: a barrier; no memory or register effect visible to Rust.
    unsafe { asm!("isb", options(nostack, preserves_flags)) }
}

#[inline(always)]
pub fn dsb_ish() {
    // SAFETY: a barrier.
    unsafe { asm!("dsb ish", options(nostack, preserves_flags)) }
}

/// Invalidates every stage-1 and stage-2 translation of the VMID in `target_vttbr`, on
/// every CPU of the inner-shareable domain (TLBI VMALLS12E1IS, Arm ARM D8.13).
pub fn s2_invalidate_vmid(target_vttbr: u64) {
    let cur = vttbr();
    // SAFETY: as `s2_invalidate_ipa`: TLB maintenance and a VTTBR_EL2 switch at EL2,
    // restored before returning; EL2's own translation (TTBR0_EL2) is not affected.
    unsafe {
        asm!("dsb ishst", options(nostack, preserves_flags));
        if cur != target_vttbr {
            asm!("msr vttbr_el2, {}", "isb", in(reg) target_vttbr, options(nostack, preserves_flags));
        }
        asm!("tlbi vmalls12e1is", "dsb ish", options(nostack, preserves_flags));
        if cur != target_vttbr {
            asm!("msr vttbr_el2, {}", in(reg) cur, options(nostack, preserves_flags));
        }
        asm!("isb", options(nostack, preserves_flags));
    }
}

/// Invalidates stage-2 (and combined stage-1) translations of `ipa` in the guest whose
/// VTTBR_EL2 is `target_vttbr`, on every CPU of the inner-shareable domain, and waits for
/// completion (Arm ARM D8.16.1 break-before-make; D8.17 TLBI IPAS2E1IS, VMALLE1IS).
///
/// TLBI acts on the VMID in VTTBR_EL2, so the target's own VTTBR (its table and VMID) is
/// installed for the invalidation and the current one put back: a VTTBR pairing one
/// guest's VMID with another's table could let a speculative walk cache a wrong entry.
pub fn s2_invalidate_ipa(target_vttbr: u64, ipa: u64) {
    let cur = vttbr();
    // SAFETY: TLB maintenance and VTTBR_EL2 switches at EL2; no Rust-visible memory is
    // accessed through the changed translation regime (EL2 uses its own TTBR0_EL2), and
    // VTTBR_EL2 is restored before returning.
    unsafe {
        asm!("dsb ishst", options(nostack, preserves_flags));
        if cur != target_vttbr {
            asm!("msr vttbr_el2, {}", "isb", in(reg) target_vttbr, options(nostack, preserves_flags));
        }
        asm!(
            "tlbi ipas2e1is, {ipa}",
            "dsb ish",
            "tlbi vmalle1is",
            "dsb ish",
            ipa = in(reg) (ipa >> 12) & ((1 << 36) - 1),
            options(nostack, preserves_flags)
        );
        if cur != target_vttbr {
            asm!("msr vttbr_el2, {}", in(reg) cur, options(nostack, preserves_flags));
        }
        asm!("isb", options(nostack, preserves_flags));
    }
}

/// Invalidates this CPU's stage-1 translations for the VMID now in VTTBR_EL2 (a vCPU that
/// last ran on another CPU may meet stale local entries; Arm ARM D8.17).
pub fn tlbi_vmalle1_local() {
    // SAFETY: local TLB maintenance for the VMID just written to VTTBR_EL2 (the leading ISB
    // makes that write take effect first).
    unsafe {
        asm!(
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            options(nostack, preserves_flags)
        )
    }
}

/// Invalidates every EL1&0 and EL2 translation on this CPU (boot).
pub fn tlbi_all_local() {
    // SAFETY: local TLB maintenance at boot, before any translation is relied upon.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi alle2",
            "tlbi alle1",
            "dsb nsh",
            "isb",
            options(nostack, preserves_flags)
        )
    }
}

/// Masks every interrupt on this CPU (KCore runs with DAIF masked; its panic keeps it so).
pub fn mask_all() {
    // SAFETY: changes PSTATE.DAIF only.
    unsafe { asm!("msr daifset, #0xf", options(nostack, preserves_flags)) }
}

/// Waits for an event (a parked or halted CPU).
pub fn wfe() {
    // SAFETY: a hint; no effect on memory or registers.
    unsafe { asm!("wfe", options(nostack, preserves_flags)) }
}
