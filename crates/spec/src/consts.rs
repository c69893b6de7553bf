//! Constants, predicates and address helpers shared by both profiles (VRM `Constants.md`;
//! spec-digest §2, §3, §2.11). Values that differ between the Coq text and the ARM/C
//! implementation live in [`crate::profile::Consts`] instead.
#![allow(non_snake_case)]

use crate::Z;

// §2.1 identities, limits, sentinels
pub const INVALID: Z = 0xFFFF_FFFF;
pub const INVALID64: Z = (1 << 64) - 1;
pub const HOSTVISOR: Z = 0;
pub const COREVISOR: Z = 16;
pub const MAX_VM_NUM: Z = 15;
pub const VCPU_PER_VM: Z = 8;
pub const MAX_SHARE_COUNT: Z = 100;
pub const MAX_LOAD_INFO_NUM: Z = 5;
pub const SMMU_NUM: Z = 2;
pub const SMMU_NUM_CTXT_BANKS: Z = 8;
pub const EL2_SMMU_CFG_SIZE: Z = 16;
pub const MAX_MMIO_ADDR: Z = 0x4000_0000;
pub const SMMU_HOST_OFFSET: Z = 1_000_000_000;
pub const KVM_ADDR_SPACE: Z = 1 << 48;
pub const KVM_PHYS_SIZE: Z = 1 << 40;
pub const KVM_PFN_SPACE: Z = 1 << 28;

// §2.2 pages, pools, remap window
pub const PAGE_SIZE: Z = 4096;
pub const PTRS_PER_PMD: Z = 512;
pub const PMD_PAGE_NUM: Z = 512;
pub const PMD_SIZE: Z = 0x20_0000;
pub const PAGE_MASK: Z = 0x0FFF_FFFF_FFFF_F000;
pub const PHYS_MASK: Z = 0xFFFF_FFFF_FFFF;
pub const PT_POOL_START: Z = 0x1_0000;
pub const SMMU_POOL_START: Z = 0x1_0000;
pub const REMAP_START: Z = 0x200_0000;
pub const REMAP_SIZE: Z = 0x200_0000;
pub const REMAP_END: Z = 0x400_0000;

// §2.3 descriptor attributes
pub const PAGE_S2_KERNEL: Z = 0xFFF;
pub const PAGE_S2_DEVICE: Z = 0x40_0000_0000_0747;
pub const S2_RDWR: Z = 0xC0;
pub const PAGE_GUEST: Z = 1 << 57;
pub const PAGE_HYP: Z = 0x40_0000_0000_0753;
pub const PMD_TABLE_BIT: Z = 2;
pub const NOT_PMD_TABLE_BIT: Z = (1 << 64) - 3;

// §2.4 VM / vCPU states
pub const UNUSED: Z = 0;
pub const MAPPED: Z = 1;
pub const READY: Z = 2;
pub const VERIFIED: Z = 3;
pub const POWEROFF: Z = 4;
pub const ACTIVE: Z = 5;

// §1.11 lock ids
pub const FLATMEM_ID: Z = 0;
pub const CORE_ID: Z = 1;
pub const S2PAGE_ID: Z = 2;
pub const SPT_ID: Z = 3;
pub const SMMU_ID: Z = 4;
pub const NPT_ID: Z = 5;
pub const INFO_ID: Z = 22;
pub const ID_END: Z = 39;

// §2.7 exceptions, ESR fields, PSCI, dirty flags (values equal in both profiles)
pub const ARM_EXCEPTION_TRAP: Z = 2;
pub const ESR_ELx_EC_SHIFT: Z = 26;
pub const ESR_ELx_EC_MASK: Z = 0xFC00_0000;
pub const ESR_ELx_EC_UNKNOWN: Z = 0;
pub const ESR_ELx_EC_WFx: Z = 1;
pub const ESR_ELx_EC_HVC32: Z = 18;
pub const ESR_ELx_EC_HVC64: Z = 22;
pub const ESR_ELx_EC_IABT_LOW: Z = 32;
pub const ESR_ELx_EC_DABT_LOW: Z = 36;
pub const ESR_ELx_WNR: Z = 64;
pub const ESR_ELx_S1PTW: Z = 128;
pub const ESR_ELx_SAS: Z = 0xC0_0000;
pub const ESR_ELx_SAS_SHIFT: Z = 22;
pub const ESR_ELx_SRT_SHIFT: Z = 16;
pub const ESR_ELx_SRT_MASK: Z = 31;
pub const PSCI_0_2_FN_SYSTEM_OFF: Z = 0x8400_0008;
pub const DIRTY_PC_FLAG: Z = 1 << 32;
pub const PENDING_EXCEPT_INJECT_FLAG: Z = 0xE_0000_0000;
pub const PENDING_FSC_FAULT: Z = 2;
pub const PSTATE_FAULT_BITS_64: Z = 0x3C5;

// §2.8 SMMU emulation
pub const SMMU_OFFSET_MASK: Z = 0xFFFF;
pub const SMMU_GLOBAL_BASE: Z = 0x8000;
pub const ARM_SMMU_PGSHIFT: Z = 12;
pub const ARM_SMMU_PGSHIFT_MASK: Z = 0xFFF;
pub const ARM_SMMU_GR0_sCR0: Z = 0;
pub const ARM_SMMU_GR0_sCR2: Z = 8;
pub const sCR0_SMCFCFG_SHIFT: Z = 21;
pub const ARM_SMMU_GR1_BASE: Z = 0x1000;
pub const ARM_SMMU_GR1_END: Z = 0x1800;
pub const CBAR_TYPE_SHIFT: Z = 16;
pub const CBAR_TYPE_S2_TRANS: Z = 0;
pub const CBAR_VMID_MASK: Z = 0xFF;
pub const CBAR_VMID_SHIFT: Z = 0;
pub const ARM_SMMU_CB_TTBR0: Z = 0x20;
pub const ARM_SMMU_CB_CONTEXTIDR: Z = 0x34;

// §2.10 register indices (shadow-context index map, spec-digest §1.8)
pub const X0: Z = 0;
pub const X30: Z = 30;
pub const SP: Z = 31;
pub const PC: Z = 32;
pub const PSTATE: Z = 33;
pub const SP_EL1: Z = 34;
pub const ELR_EL1: Z = 35;
pub const SPSR_EL1: Z = 36;
pub const SPSR_ABT: Z = 37;
pub const SPSR_UND: Z = 38;
pub const SPSR_IRQ: Z = 39;
pub const SPSR_FIQ: Z = 40;
pub const FAR_EL2: Z = 41;
pub const HPFAR_EL2: Z = 42;
pub const HCR_EL2: Z = 43;
pub const EC: Z = 44;
pub const DIRTY: Z = 45;
pub const FLAGS: Z = 46;
pub const SYSREGS_START: Z = 47;
pub const SHADOW_SYS_REGS_SIZE: Z = 24;
pub const MPIDR_EL1: Z = 47;
pub const CSSELR_EL1: Z = 48;
pub const SCTLR_EL1: Z = 49;
pub const ACTLR_EL1: Z = 50;
pub const CPACR_EL1: Z = 51;
pub const TTBR0_EL1: Z = 52;
pub const TTBR1_EL1: Z = 53;
pub const TCR_EL1: Z = 54;
pub const ESR_EL1: Z = 55;
pub const AFSR0_EL1: Z = 56;
pub const AFSR1_EL1: Z = 57;
pub const FAR_EL1: Z = 58;
pub const MAIR_EL1: Z = 59;
pub const VBAR_EL1: Z = 60;
pub const CONTEXTIDR_EL1: Z = 61;
pub const TPIDR_EL0: Z = 62;
pub const TPIDRRO_EL0: Z = 63;
pub const TPIDR_EL1: Z = 64;
pub const AMAIR_EL1: Z = 65;
pub const CNTKCTL_EL1: Z = 66;
pub const PAR_EL1: Z = 67;
pub const MDSCR_EL1: Z = 68;
pub const MDCCINT_EL1: Z = 69;
pub const ELR_EL2: Z = 70;
pub const SPSR_0: Z = 71;
pub const ESR_EL2: Z = 72;

// §3 predicates
pub fn is_vm(v: Z) -> bool {
    HOSTVISOR < v && v < COREVISOR
}
pub fn is_vcpu(c: Z) -> bool {
    (0..VCPU_PER_VM).contains(&c)
}
pub fn is_addr(a: Z) -> bool {
    (0..KVM_ADDR_SPACE).contains(&a)
}
pub fn is_paddr(a: Z) -> bool {
    (0..KVM_PHYS_SIZE).contains(&a)
}
pub fn is_pfn(p: Z) -> bool {
    (0..KVM_PFN_SPACE).contains(&p)
}
pub fn is_smmu(i: Z) -> bool {
    (0..SMMU_NUM).contains(&i)
}
pub fn is_smmu_cfg(c: Z) -> bool {
    (0..SMMU_NUM_CTXT_BANKS).contains(&c)
}
pub fn is_load_idx(i: Z) -> bool {
    (0..MAX_LOAD_INFO_NUM).contains(&i)
}

// §0 integer operations on Z (floor division, non-negative remainder, two's-complement bits)
/// Coq `Z.div` (floor division); every divisor in the seed is a positive constant.
pub fn zdiv(a: Z, b: Z) -> Z {
    debug_assert!(b > 0);
    a.div_euclid(b)
}
/// Coq `Z.modulo` for b > 0.
pub fn zmod(a: Z, b: Z) -> Z {
    a.rem_euclid(b)
}
/// `Z.shiftr a n` = floor(a / 2^n).
pub fn shr(a: Z, n: Z) -> Z {
    a >> n
}
/// `Z.shiftl a n` = a * 2^n (the model never shifts by more than 127).
pub fn shl(a: Z, n: Z) -> Z {
    if !(0..127).contains(&n) {
        return 0;
    }
    a << n
}

// §2.11 address arithmetic
pub fn phys_page(a: Z) -> Z {
    a & PHYS_MASK & PAGE_MASK
}
pub fn pgd_index(a: Z) -> Z {
    shr(a, 39) & 511
}
pub fn pud_index(a: Z) -> Z {
    shr(a, 30) & 511
}
pub fn pmd_index(a: Z) -> Z {
    shr(a, 21) & 511
}
pub fn stage2_pgd_index(a: Z) -> Z {
    shr(a, 30) & 1023
}
/// The page-table pool geometry (§2.2): each principal's pool and its three bump cursors'
/// ranges, and the SMMU pool's. A profile constant (`Consts::pools`): the seed's 32 MiB per
/// principal under `seed`, smaller pools that fit KCore's own RAM region under `arm`
/// (deviation `arm_pool_geometry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pools {
    pub pt_pool_per_vm: Z,
    /// Bytes the host's (principal 0's) pool has beyond `pt_pool_per_vm`, all of them
    /// level-3 tables: the host's pool ends, and every later principal's starts, this much
    /// further on. 0 in the seed (every pool the same size).
    pub host_pool_extra: Z,
    pub pgd_offset: Z,
    pub pud_offset: Z,
    pub pmd_offset: Z,
    pub smmu_pgd_start: Z,
    pub smmu_pmd_start: Z,
    pub smmu_pool_end: Z,
}

impl Pools {
    /// The seed's `Constants.md` values.
    pub const SEED: Pools = Pools {
        pt_pool_per_vm: 0x200_0000,
        host_pool_extra: 0,
        pgd_offset: 0x1000,
        pud_offset: 0x10_1000,
        pmd_offset: 0x90_1000,
        smmu_pgd_start: 0x11_0000,
        smmu_pmd_start: 0x21_0000,
        smmu_pool_end: 0x31_0000,
    };
    /// `arm`: 1 MiB per VM and for KCore (root, 4 level-1, 16 level-2 and 235 level-3 table
    /// pages), 4 MiB for the host (the same, then 768 more level-3 pages: 1003, for a Linux
    /// host of 1.5 GiB mapped at 4 KiB), and a packed SMMU pool (64 level-2, 256 level-3
    /// table pages after the 16 roots), so all of them fit in KCore's region. Must equal
    /// `corevisor_kcore::consts`.
    pub const ARM: Pools = Pools {
        pt_pool_per_vm: 0x10_0000,
        host_pool_extra: 0x30_0000,
        pgd_offset: 0x1000,
        pud_offset: 0x5000,
        pmd_offset: 0x1_5000,
        smmu_pgd_start: 0x3_0000,
        smmu_pmd_start: 0x7_0000,
        smmu_pool_end: 0x17_0000,
    };

    pub fn pool_start(&self, v: Z) -> Z {
        let extra = if v > HOSTVISOR {
            self.host_pool_extra
        } else {
            0
        };
        PT_POOL_START + self.pt_pool_per_vm * v + extra
    }
    pub fn pgd_start(&self, v: Z) -> Z {
        self.pool_start(v) + self.pgd_offset
    }
    pub fn pud_start(&self, v: Z) -> Z {
        self.pool_start(v) + self.pud_offset
    }
    pub fn pmd_start(&self, v: Z) -> Z {
        self.pool_start(v) + self.pmd_offset
    }
    pub fn pool_end(&self, v: Z) -> Z {
        self.pool_start(v + 1)
    }
    pub fn pt_vttbr(&self, v: Z) -> Z {
        self.pool_start(v) | (v << 48)
    }
    /// The bytes all 17 principals' pools span together.
    pub fn npt_span(&self) -> Z {
        self.pool_end(COREVISOR) - self.pool_start(HOSTVISOR)
    }
    /// The level-3 table pages of principal `v`'s pool: the 2 MiB regions it can map at
    /// 4 KiB.
    pub fn l3_tables(&self, v: Z) -> Z {
        (self.pool_end(v) - self.pmd_start(v)) / PAGE_SIZE
    }
}
pub fn SMMU_TTBR(index: Z, cbndx: Z) -> Z {
    SMMU_POOL_START + (index * 8 + cbndx) * 8192
}
pub fn smmu_id(index: Z, cbndx: Z) -> Z {
    index * SMMU_NUM_CTXT_BANKS + cbndx
}
pub fn ctxt_id(vmid: Z, vcpuid: Z) -> Z {
    vmid * VCPU_PER_VM + vcpuid
}

// §4.6 ESR decoders
pub fn host_dabt_get_as(esr: Z) -> Z {
    shl(1, shr(esr & ESR_ELx_SAS, ESR_ELx_SAS_SHIFT))
}
pub fn host_dabt_is_write(esr: Z) -> Z {
    esr & ESR_ELx_WNR
}
pub fn host_dabt_get_rd(esr: Z) -> Z {
    shr(esr, ESR_ELx_SRT_SHIFT) & ESR_ELx_SRT_MASK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_division_is_floor_and_modulo_non_negative() {
        assert_eq!(zdiv(-1, 4096), -1);
        assert_eq!(zdiv(4095, 4096), 0);
        assert_eq!(zmod(-1, 64), 63);
    }

    #[test]
    fn pool_geometry_matches_digest() {
        let p = Pools::SEED;
        assert_eq!(p.pool_start(0), 0x1_0000);
        assert_eq!(p.pud_start(1) - p.pgd_start(1), 256 * 4096);
        assert_eq!(p.pmd_start(1) - p.pud_start(1), 2048 * 4096);
        assert_eq!(p.pool_end(1) - p.pmd_start(1), 5887 * 4096);
        assert_eq!(p.l3_tables(HOSTVISOR), 5887);
        assert_eq!(p.npt_span(), 17 * 0x200_0000);
        assert_eq!(SMMU_TTBR(1, 2), 0x1_0000 + 10 * 8192);
        assert_eq!(p.pt_vttbr(3) >> 48, 3);
    }

    #[test]
    fn arm_pools_are_smaller_and_keep_the_seed_shape() {
        let (s, a) = (Pools::SEED, Pools::ARM);
        assert_eq!(a.pool_start(0), s.pool_start(0));
        assert_eq!(a.pgd_start(1) - a.pool_start(1), 4096, "one root page");
        assert_eq!(a.pud_start(1) - a.pgd_start(1), 4 * 4096);
        assert_eq!(a.pmd_start(1) - a.pud_start(1), 16 * 4096);
        assert_eq!(a.pool_end(1) - a.pmd_start(1), 235 * 4096);
        assert_eq!(a.l3_tables(COREVISOR), 235);
        // The host's pool alone is 4 MiB: the same shape, 1003 level-3 pages.
        assert_eq!(a.pool_end(0) - a.pool_start(0), 4 << 20);
        assert_eq!(a.pmd_start(0) - a.pool_start(0), a.pmd_offset);
        assert_eq!(a.l3_tables(HOSTVISOR), 1003);
        assert_eq!(a.pool_start(1), a.pool_end(0));
        assert_eq!(a.npt_span(), 20 << 20);
        assert_eq!(a.pool_end(COREVISOR) - a.pool_start(0), 20 << 20);
        // The SMMU pool starts after the 16 banks' two-page roots.
        assert_eq!(a.smmu_pgd_start, SMMU_TTBR(1, 7) + 8192);
        assert!(a.smmu_pool_end - SMMU_POOL_START < s.smmu_pool_end - SMMU_POOL_START);
    }
}
