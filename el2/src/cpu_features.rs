//! CPU features the seed does not model, and what each world gets of them (docs/el2.md,
//! "CPU features"). The host gets what the bare board would give an EL1 kernel; a VM gets
//! none of the state kcore does not switch, so nothing of the host's reaches it:
//!
//! | feature | host | VM |
//! |---|---|---|
//! | pointer authentication (FEAT_PAuth) | its own keys (HCR_EL2.API, APK) | trapped: keys and PAC instructions (the host's keys stay loaded) |
//! | SVE | on, vector length up to the CPU's (ZCR_EL2.LEN = 15) | trapped (CPTR_EL2.TZ): no Z, P or FFR register reachable |
//! | SME | on (SMCR_EL2.LEN = 15, FA64 and EZT0 where the CPU has them; TPIDR2_EL0 and SMPRI_EL1 untrapped) | trapped (CPTR_EL2.TSM; HFGRTR/HFGWTR_EL2 trap TPIDR2_EL0 and SMPRI_EL1, which kcore does not switch) |
//! | MOPS (FEAT_MOPS, through FEAT_HCX) | on (HCRX_EL2.MSCEn) | on (memory copy/set instructions only: no state) |
//! | fine-grained traps (FEAT_FGT) | none but what SME needs (the negative-sense bits nTPIDR2_EL0, nSMPRI_EL1 set, booting.rst) | those two trapped, else none |

use crate::hw::regs;
use core::sync::atomic::{AtomicU32, Ordering};

const PAUTH: u32 = 1;
const SVE: u32 = 2;
const SME: u32 = 4;
const HCX: u32 = 8;
const FGT: u32 = 16;
const MOPS: u32 = 32;

/// The features found at boot (the same on every CPU of QEMU `virt`).
static FOUND: AtomicU32 = AtomicU32::new(0);

/// HCR_EL2.API and APK: pointer authentication instructions and key registers not trapped.
const HCR_API: u64 = 1 << 41;
const HCR_APK: u64 = 1 << 40;
/// CPTR_EL2 (E2H = 0): TZ traps SVE, TSM traps SME (RES1 where the feature is absent).
const CPTR_TZ: u64 = 1 << 8;
const CPTR_TSM: u64 = 1 << 12;
/// HCRX_EL2.MSCEn: the memory copy and set instructions enabled at EL1 and EL0.
const HCRX_MSCEN: u64 = 1 << 11;
/// HFGRTR_EL2/HFGWTR_EL2 nTPIDR2_EL0 (bit 55) and nSMPRI_EL1 (bit 54): negative sense, 0 traps.
const FGT_N_SME: u64 = (1 << 55) | (1 << 54);
/// SMCR_EL2.FA64 (bit 31) and EZT0 (bit 30).
const SMCR_FA64: u64 = 1 << 31;
const SMCR_EZT0: u64 = 1 << 30;

fn field(reg: u64, shift: u32) -> u64 {
    (reg >> shift) & 0xF
}

/// Reads the ID registers (boot CPU); returns a line for the boot log.
pub fn detect() -> u32 {
    let (isar1, isar2) = (regs::id_aa64isar1(), regs::id_aa64isar2());
    let mut f = 0;
    if [4, 8, 24, 28].iter().any(|&s| field(isar1, s) != 0)
        || [8, 12].iter().any(|&s| field(isar2, s) != 0)
    {
        f |= PAUTH;
    }
    if field(regs::id_aa64pfr0(), 32) != 0 {
        f |= SVE;
    }
    if field(regs::id_aa64pfr1(), 24) != 0 {
        f |= SME;
    }
    if field(regs::id_aa64mmfr1(), 40) != 0 {
        f |= HCX;
    }
    if field(regs::id_aa64mmfr0(), 56) != 0 {
        f |= FGT;
    }
    if field(isar2, 16) != 0 {
        f |= MOPS;
    }
    FOUND.store(f, Ordering::Relaxed);
    f
}

fn has(f: u32) -> bool {
    FOUND.load(Ordering::Relaxed) & f != 0
}

/// The features' names, for the boot log.
pub fn names(f: u32) -> impl core::fmt::Display {
    struct N(u32);
    impl core::fmt::Display for N {
        fn fmt(&self, out: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            let all = [
                (PAUTH, "PAuth"),
                (SVE, "SVE"),
                (SME, "SME"),
                (HCX, "HCX"),
                (FGT, "FGT"),
                (MOPS, "MOPS"),
            ];
            let mut any = false;
            for (bit, name) in all {
                if self.0 & bit != 0 {
                    write!(out, "{}{name}", if any { " " } else { "" })?;
                    any = true;
                }
            }
            if !any {
                write!(out, "none")?;
            }
            Ok(())
        }
    }
    N(f)
}

/// This CPU's EL2 controls of the features, the same for both worlds (every CPU, once).
pub fn init_cpu() {
    // ZCR_EL2 and SMCR_EL2 accesses trap at EL2 too while CPTR_EL2.TZ / TSM are set.
    let open = if has(SVE) { CPTR_TZ } else { 0 } | if has(SME) { CPTR_TSM } else { 0 };
    regs::set_cptr(regs::cptr() & !open);
    regs::isb();
    if has(SVE) {
        regs::features::set_zcr_el2(0xF);
    }
    if has(SME) {
        // The whole of SME for the host, as booting.rst asks of what enters a kernel at EL1:
        // FA64 if the CPU has it (ID_AA64SMFR0_EL1.FA64, bit 63), ZT0 with SME2 (SMEver).
        let smfr0 = regs::id_aa64smfr0();
        let fa64 = if smfr0 >> 63 != 0 { SMCR_FA64 } else { 0 };
        let ezt0 = if (smfr0 >> 56) & 0xF != 0 { SMCR_EZT0 } else { 0 };
        regs::features::set_smcr_el2(0xF | fa64 | ezt0);
    }
    if has(HCX) {
        regs::features::set_hcrx_el2(if has(MOPS) { HCRX_MSCEN } else { 0 });
    }
    if has(FGT) {
        regs::features::set_fgt_other_el2(0);
        regs::features::set_hfgrwtr_el2(fgt(true));
    }
}

/// HFGRTR_EL2/HFGWTR_EL2 for a world: the host reaches SME's TPIDR2_EL0 and SMPRI_EL1; a VM
/// does not (kcore does not switch them: the host's would show through).
fn fgt(host: bool) -> u64 {
    if host && has(SME) {
        FGT_N_SME
    } else {
        0
    }
}

/// The per-world part of the features' EL2 controls, on every world switch.
pub fn load_world(host: bool) {
    if has(FGT) {
        regs::features::set_hfgrwtr_el2(fgt(host));
    }
}

/// HCR_EL2 bits the glue adds to kcore's value for a world.
pub fn hcr(host: bool) -> u64 {
    if host && has(PAUTH) {
        HCR_API | HCR_APK
    } else {
        0
    }
}

/// CPTR_EL2 for a world, from kcore's value: SVE and SME the host's only.
pub fn cptr(kcore: u64, host: bool) -> u64 {
    if !host {
        kcore | CPTR_TZ | CPTR_TSM
    } else if has(SME) {
        kcore & !(CPTR_TZ | CPTR_TSM)
    } else {
        kcore & !CPTR_TZ | if has(SVE) { 0 } else { CPTR_TZ }
    }
}
