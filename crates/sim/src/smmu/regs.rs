//! The SMMUv2 register map and the fields the model decodes (Arm IHI 0062, SMMU architecture
//! version 2; field positions as an SMMU-500 implements them). GR0 (page 0) and GR1
//! (page 1) offsets are offsets in the SMMU's window; a context bank's registers are
//! offsets in that bank's page.

/// Bytes in a register page (`SMMU_IDR1.PAGESIZE` = 0: 4 KiB).
pub const PAGE: u64 = 0x1000;

/// Global register space 0.
pub mod gr0 {
    pub const SCR0: u64 = 0x000;
    /// Secure-only; RAZ/WI to the Non-secure accesses the model serves.
    pub const SCR1: u64 = 0x004;
    pub const SCR2: u64 = 0x008;
    /// SMMU-500's auxiliary configuration: stored, no effect on translation.
    pub const SACR: u64 = 0x010;
    pub const ID0: u64 = 0x020;
    pub const ID1: u64 = 0x024;
    pub const ID2: u64 = 0x028;
    pub const ID7: u64 = 0x03C;
    /// 64-bit.
    pub const SGFAR: u64 = 0x040;
    pub const SGFSR: u64 = 0x048;
    pub const SGFSRRESTORE: u64 = 0x04C;
    pub const SGFSYNR0: u64 = 0x050;
    pub const SGFSYNR1: u64 = 0x054;
    pub const SGFSYNR2: u64 = 0x058;
    /// Secure-only TLB invalidation: ignored.
    pub const STLBIALL: u64 = 0x060;
    pub const TLBIVMID: u64 = 0x064;
    pub const TLBIALLNSNH: u64 = 0x068;
    /// Hypervisor entries: the model caches none, so this completes with no effect.
    pub const TLBIALLH: u64 = 0x06C;
    pub const STLBGSYNC: u64 = 0x070;
    pub const STLBGSTATUS: u64 = 0x074;
    pub const SMR_BASE: u64 = 0x800;
    pub const S2CR_BASE: u64 = 0xC00;

    pub const fn smr(n: u64) -> u64 {
        SMR_BASE + 4 * n
    }
    pub const fn s2cr(n: u64) -> u64 {
        S2CR_BASE + 4 * n
    }
}

/// Global register space 1 (page 1, at 0x1000): per-bank attribute registers.
pub mod gr1 {
    pub const CBAR_BASE: u64 = 0x1000;
    pub const CBFRSYNRA_BASE: u64 = 0x1400;
    pub const CBA2R_BASE: u64 = 0x1800;

    pub const fn cbar(n: u64) -> u64 {
        CBAR_BASE + 4 * n
    }
    pub const fn cbfrsynra(n: u64) -> u64 {
        CBFRSYNRA_BASE + 4 * n
    }
    pub const fn cba2r(n: u64) -> u64 {
        CBA2R_BASE + 4 * n
    }
}

/// A translation context bank's page.
pub mod cb {
    pub const SCTLR: u64 = 0x000;
    pub const ACTLR: u64 = 0x004;
    pub const RESUME: u64 = 0x008;
    /// Stage 1 only (RAZ/WI in a stage-2 context bank).
    pub const TCR2: u64 = 0x010;
    /// 64-bit; the upper half is at +0x24.
    pub const TTBR0: u64 = 0x020;
    /// Stage 1 only, 64-bit.
    pub const TTBR1: u64 = 0x028;
    pub const TCR: u64 = 0x030;
    pub const CONTEXTIDR: u64 = 0x034;
    /// Stage 1 only, 64-bit (address translation operations are not implemented).
    pub const PAR: u64 = 0x050;
    pub const FSR: u64 = 0x058;
    pub const FSRRESTORE: u64 = 0x05C;
    /// 64-bit.
    pub const FAR: u64 = 0x060;
    pub const FSYNR0: u64 = 0x068;
    pub const FSYNR1: u64 = 0x06C;
    /// Stage 1 TLB operations (64-bit): ignored by a stage-2 context bank.
    pub const TLBIVA: u64 = 0x600;
    pub const TLBIVAA: u64 = 0x608;
    pub const TLBIASID: u64 = 0x610;
    pub const TLBIALL: u64 = 0x618;
    pub const TLBIVAL: u64 = 0x620;
    pub const TLBIVAAL: u64 = 0x628;
    /// 64-bit: IPA[47:12] in bits [35:0].
    pub const TLBIIPAS2: u64 = 0x630;
    pub const TLBIIPAS2L: u64 = 0x638;
    pub const TLBSYNC: u64 = 0x7F0;
    pub const TLBSTATUS: u64 = 0x7F4;
}

/// `SMMU_sCR0` (SMMU-500: SMCFCFG reads as one and ignores writes).
pub mod scr0 {
    pub const CLIENTPD: u32 = 1 << 0;
    pub const GFRE: u32 = 1 << 1;
    pub const GFIE: u32 = 1 << 2;
    pub const TRANSIENTCFG: u32 = 3 << 6;
    pub const USFCFG: u32 = 1 << 10;
    pub const VMIDPNE: u32 = 1 << 11;
    pub const PTM: u32 = 1 << 12;
    pub const FB: u32 = 1 << 13;
    pub const BSU: u32 = 3 << 14;
    pub const MEMATTR: u32 = 0xF << 16;
    pub const MTCFG: u32 = 1 << 20;
    pub const SMCFCFG: u32 = 1 << 21;
    pub const SHCFG: u32 = 3 << 22;
    pub const RACFG: u32 = 3 << 24;
    pub const WACFG: u32 = 3 << 26;
    pub const NSCFG: u32 = 3 << 28;
    /// Bits a write changes. EXIDENABLE (3) and VMID16EN (31) are RES0 here because the
    /// model implements neither extended stream IDs nor 16-bit VMIDs (IDR0.EXIDS = 0,
    /// IDR2.VMID16 = 0); GSE, STALLD, GCFGFRE and GCFGFIE read as zero.
    pub const WRITABLE: u32 = CLIENTPD
        | GFRE
        | GFIE
        | TRANSIENTCFG
        | USFCFG
        | VMIDPNE
        | PTM
        | FB
        | BSU
        | MEMATTR
        | MTCFG
        | SHCFG
        | RACFG
        | WACFG
        | NSCFG;
    /// Reset: client ports disabled (everything bypasses) until software enables them.
    pub const RESET: u32 = CLIENTPD | SMCFCFG;
}

/// `SMMU_sCR2`: only the bypass VMID is implemented.
pub mod scr2 {
    pub const BPVMID: u32 = 0xFF;
}

/// `SMMU_SMRn`.
pub mod smr {
    pub const VALID: u32 = 1 << 31;
    pub const MASK_SHIFT: u32 = 16;
}

/// `SMMU_S2CRn`.
pub mod s2cr {
    pub const CBNDX: u32 = 0xFF;
    pub const TYPE_SHIFT: u32 = 16;
    pub const TYPE_TRANSLATE: u32 = 0;
    pub const TYPE_BYPASS: u32 = 1;
    pub const TYPE_FAULT: u32 = 2;
    /// Every field but EXIDVALID (bit 10, extended stream IDs are not implemented) and
    /// the reserved bits 31:30.
    pub const WRITABLE: u32 = 0x3FFF_FBFF;
    /// Reset (SMMU-500): a matched stream faults until software routes it.
    pub const RESET: u32 = TYPE_FAULT << TYPE_SHIFT;

    pub const fn ty(v: u32) -> u32 {
        (v >> TYPE_SHIFT) & 3
    }
}

/// `SMMU_CBARn`.
pub mod cbar {
    pub const VMID: u32 = 0xFF;
    pub const TYPE_SHIFT: u32 = 16;
    pub const TYPE_S2_TRANSLATE: u32 = 0;
    pub const IRPTNDX_SHIFT: u32 = 24;

    pub const fn ty(v: u32) -> u32 {
        (v >> TYPE_SHIFT) & 3
    }
}

/// `SMMU_CBA2Rn`.
pub mod cba2r {
    /// The context bank uses the AArch64 translation table and TCR formats.
    pub const VA64: u32 = 1 << 0;
    /// Implemented fields (VMID16 is RES0: no 16-bit VMIDs).
    pub const WRITABLE: u32 = VA64 | (1 << 1);
}

/// `SMMU_CBn_SCTLR`.
pub mod sctlr {
    pub const M: u32 = 1 << 0;
    pub const TRE: u32 = 1 << 1;
    pub const AFE: u32 = 1 << 2;
    /// Access flag fault disable: a descriptor with AF = 0 is used as if AF were 1.
    pub const AFFD: u32 = 1 << 3;
    pub const E: u32 = 1 << 4;
    /// Context fault report enable: a terminated transaction gets an abort (else RAZ/WI).
    pub const CFRE: u32 = 1 << 5;
    pub const CFIE: u32 = 1 << 6;
    /// Context fault configuration: 1 stalls the faulting transaction, 0 terminates it.
    pub const CFCFG: u32 = 1 << 7;
    pub const HUPCF: u32 = 1 << 8;
    /// Bits 31:30 are reserved.
    pub const WRITABLE: u32 = 0x3FFF_FFFF;
}

/// `SMMU_CBn_TCR` of a stage-2 context (the VTCR layouts).
pub mod tcr {
    /// AArch64 format (CBA2R.VA64 = 1): T0SZ[5:0], SL0[7:6], TG0[15:14], PASize[18:16].
    pub const T0SZ64: u32 = 0x3F;
    pub const SL0_SHIFT: u32 = 6;
    pub const TG0_SHIFT: u32 = 14;
    pub const PS_SHIFT: u32 = 16;
    /// AArch32 long-descriptor format (VA64 = 0): T0SZ[3:0] signed, S[4] its sign.
    pub const T0SZ32: u32 = 0xF;
    pub const S: u32 = 1 << 4;

    /// What KCore's per-bank tables need (crates/kcore/src/smmu.rs): a 40-bit input size
    /// (T0SZ = 24), starting at level 1 (SL0 = 1) with two concatenated root tables, the
    /// 4 KiB granule (TG0 = 0) and a 48-bit output size (PS = 5), so its pool above 4 TiB
    /// is reachable.
    pub const KCORE_AARCH64: u32 = 24 | (1 << SL0_SHIFT) | (5 << PS_SHIFT);
}

/// `SMMU_CBn_FSR` (context fault status; write one to clear).
pub mod fsr {
    pub const TF: u32 = 1 << 1;
    pub const AFF: u32 = 1 << 2;
    pub const PF: u32 = 1 << 3;
    pub const EF: u32 = 1 << 4;
    pub const TLBMCF: u32 = 1 << 5;
    pub const TLBLKF: u32 = 1 << 6;
    pub const ASF: u32 = 1 << 7;
    pub const UUT: u32 = 1 << 8;
    pub const SS: u32 = 1 << 30;
    pub const MULTI: u32 = 1 << 31;
    pub const FAULTS: u32 = TF | AFF | PF | EF | TLBMCF | TLBLKF | ASF | UUT;
    pub const ALL: u32 = FAULTS | SS | MULTI;
}

/// `SMMU_CBn_FSYNR0`.
pub mod fsynr0 {
    pub const PLVL: u32 = 3;
    pub const WNR: u32 = 1 << 4;
}

/// `SMMU_sGFSR` (global fault status; write one to clear).
pub mod gfsr {
    pub const ICF: u32 = 1 << 0;
    pub const USF: u32 = 1 << 1;
    pub const SMCF: u32 = 1 << 2;
    pub const UCBF: u32 = 1 << 3;
    pub const UCIF: u32 = 1 << 4;
    pub const CAF: u32 = 1 << 5;
    pub const EF: u32 = 1 << 6;
    pub const PF: u32 = 1 << 7;
    pub const UUT: u32 = 1 << 8;
    pub const MULTI: u32 = 1 << 31;
    pub const FAULTS: u32 = ICF | USF | SMCF | UCBF | UCIF | CAF | EF | PF | UUT;
    pub const ALL: u32 = FAULTS | MULTI;
}

/// `SMMU_sGFSYNR0`.
pub mod gfsynr0 {
    pub const WNR: u32 = 1 << 1;
}

/// Status registers' "operation in progress" bit (sTLBGSTATUS.GSACTIVE,
/// CBn_TLBSTATUS.SACTIVE).
pub const ACTIVE: u32 = 1;
