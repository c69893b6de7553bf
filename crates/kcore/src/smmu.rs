//! SMMU stage-2 (LPAE) tables, one per context bank (implementation-notes §2.3): a
//! 1024-entry root (two pages, IOVA bits 39:30), level-2 tables (bits 29:21) and level-3
//! leaves (bits 20:12), from the global SMMU pool with the seed's cursors
//! (`spt_pgd_next`, `spt_pmd_next`). The page for abstract pool address `c` lives at
//! `smmu_base + (c - SMMU_POOL_START)`.

use crate::consts::PAGE_SIZE;
use crate::hw::Hw;
use crate::pt::is_table;

/// The SMMU pool under the `arm` profile (deviation `arm_pool_geometry`): the 16 banks'
/// two-page roots, then 64 level-2 and 256 level-3 table pages.
pub const SMMU_POOL_START: u64 = 0x1_0000;
pub const SMMU_PGD_START: u64 = 0x3_0000;
pub const SMMU_PMD_START: u64 = 0x7_0000;
pub const SMMU_POOL_END: u64 = 0x17_0000;
pub const SMMU_NUM: u32 = 2;
pub const BANKS: u32 = 8;

/// The seed's `SMMU_TTBR index cbndx`: abstract address of a bank's root.
pub const fn smmu_ttbr(index: u32, cbndx: u32) -> u64 {
    SMMU_POOL_START + (index as u64 * 8 + cbndx as u64) * 8192
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmmuPool {
    pub pgd_next: u64,
    pub pmd_next: u64,
    pub smmu_base: u64,
}

impl SmmuPool {
    pub const fn boot(smmu_base: u64) -> SmmuPool {
        SmmuPool {
            pgd_next: SMMU_PGD_START,
            pmd_next: SMMU_PMD_START,
            smmu_base,
        }
    }

    pub fn phys(&self, c: u64) -> u64 {
        self.smmu_base + (c - SMMU_POOL_START)
    }

    pub fn root(&self, index: u32, cbndx: u32) -> u64 {
        self.phys(smmu_ttbr(index, cbndx))
    }
}

/// `local_spt_map_h`: set bank `(index, cbndx)`'s leaf for `iova` to `pte` (0 unmaps).
/// `false` (nothing changed) when a table cannot be allocated.
pub fn spt_map(
    hw: &impl Hw,
    pool: &mut SmmuPool,
    index: u32,
    cbndx: u32,
    iova: u64,
    pte: u64,
) -> bool {
    let root = pool.root(index, cbndx);
    let r_at = root + ((iova >> 30) & 1023) * 8;
    let d1 = hw.read64(r_at);
    let next_pgd = if is_table(d1) {
        pool.pgd_next
    } else {
        pool.pgd_next + PAGE_SIZE
    };
    let l2 = if is_table(d1) {
        d1 & 0xFFFF_FFFF_F000
    } else {
        pool.phys(pool.pgd_next)
    };
    let l2_at = l2 + ((iova >> 21) & 511) * 8;
    let d2 = if is_table(d1) { hw.read64(l2_at) } else { 0 };
    let next_pmd = if is_table(d2) {
        pool.pmd_next
    } else {
        pool.pmd_next + PAGE_SIZE
    };
    if !(next_pgd <= SMMU_PMD_START && next_pmd <= SMMU_POOL_END) {
        return false;
    }
    let l3 = if is_table(d2) {
        d2 & 0xFFFF_FFFF_F000
    } else {
        pool.phys(pool.pmd_next)
    };
    if !is_table(d1) {
        hw.write64(r_at, l2 | 3);
    }
    if !is_table(d2) {
        hw.write64(l2_at, l3 | 3);
    }
    // The SMMU's TLB is maintained by the host's TLBI register writes, which the register
    // emulation passes through (implementation-notes §2.3).
    hw.write64(l3 + ((iova >> 12) & 511) * 8, pte);
    pool.pgd_next = next_pgd;
    pool.pmd_next = next_pmd;
    true
}

/// Forget a bank's tables (`local_alloc_smmu_pgd`): zero its two root pages.
pub fn clear_root(hw: &impl Hw, pool: &SmmuPool, index: u32, cbndx: u32) {
    let root = pool.root(index, cbndx);
    hw.zero_page(root);
    hw.zero_page(root + PAGE_SIZE);
}

/// The leaf descriptor bank `(index, cbndx)` holds for `iova` (0 if none).
pub fn leaf(hw: &impl Hw, pool: &SmmuPool, index: u32, cbndx: u32, iova: u64) -> u64 {
    let d1 = hw.read64(pool.root(index, cbndx) + ((iova >> 30) & 1023) * 8);
    if !is_table(d1) {
        return 0;
    }
    let d2 = hw.read64((d1 & 0xFFFF_FFFF_F000) + ((iova >> 21) & 511) * 8);
    if !is_table(d2) {
        return 0;
    }
    hw.read64((d2 & 0xFFFF_FFFF_F000) + ((iova >> 12) & 511) * 8)
}
