//! The constants the core shares with the seed's `arm` profile (spec-digest §2).

pub const PAGE_SIZE: u64 = 4096;
pub const PAGE_SHIFT: u32 = 12;
pub const HOSTVISOR: u32 = 0;
pub const COREVISOR: u32 = 16;
pub const INVALID: u32 = 0xFFFF_FFFF;
pub const INVALID64: u64 = u64::MAX;
pub const SMMU_HOST_OFFSET: u64 = 1_000_000_000;
pub const MAX_SHARE_COUNT: u32 = 100;
/// Cap on a host page's SMMU mapping count (`EL2_SMMU_CFG_SIZE`).
pub const EL2_SMMU_CFG_SIZE: u32 = 16;

/// VM states (spec-digest §2.4).
pub const UNUSED: u32 = 0;
pub const READY: u32 = 2;
pub const VERIFIED: u32 = 3;
pub const POWEROFF: u32 = 4;

/// Stage-2 attributes (implementation-notes §2.5).
pub const PAGE_S2_KERNEL: u64 = 0xFFF;
pub const PAGE_S2_DEVICE: u64 = 0x40_0000_0000_0747;
pub const S2_RDWR: u64 = 0xC0;
/// Software marker "page taken from the host": an invalid descriptor (bit 0 clear).
pub const PAGE_GUEST: u64 = 1 << 57;
pub const PAGE_HYP: u64 = 0x40_0000_0000_0753;
/// Bit 1 of a level-1/2 descriptor: table (1) or block (0).
pub const PMD_TABLE_BIT: u64 = 2;
/// Descriptor bits 47:12: the output address (Arm ARM D8.3).
pub const PHYS_PAGE_MASK: u64 = 0xFFFF_FFFF_F000;

/// Pool geometry: the spec's abstract cursors (`consts.rs` of the model), per principal.
pub const PT_POOL_START: u64 = 0x1_0000;
pub const PT_POOL_PER_VM: u64 = 0x200_0000;
pub const PGD_OFFSET: u64 = 0x1000;
pub const PUD_OFFSET: u64 = 0x10_1000;
pub const PMD_OFFSET: u64 = 0x90_1000;

/// Lock ids (spec-digest §1.11).
pub const S2PAGE_ID: u32 = 2;
pub const SPT_ID: u32 = 3;
pub const SMMU_ID: u32 = 4;
pub const NPT_ID: u32 = 5;
pub const INFO_ID: u32 = 22;

pub const fn pool_start(v: u32) -> u64 {
    PT_POOL_START + PT_POOL_PER_VM * v as u64
}
pub const fn pgd_start(v: u32) -> u64 {
    pool_start(v) + PGD_OFFSET
}
pub const fn pud_start(v: u32) -> u64 {
    pool_start(v) + PUD_OFFSET
}
pub const fn pmd_start(v: u32) -> u64 {
    pool_start(v) + PMD_OFFSET
}
pub const fn pool_end(v: u32) -> u64 {
    pool_start(v + 1)
}
pub const fn phys_page(a: u64) -> u64 {
    a & PHYS_PAGE_MASK
}
