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

/// Pool geometry: the model's abstract cursors under the `arm` profile (`Pools::ARM` of the
/// model; deviation `arm_pool_geometry`), per VM and for KCore: a 1 MiB pool with its root
/// page, 4 level-1, 16 level-2 and 235 level-3 table pages; the host's pool is
/// `HOST_POOL_EXTRA` larger (4 MiB: 1003 level-3 pages). The page for cursor `c` is at
/// `pt_base + (c - PT_POOL_START)`, inside KCore's region (`layout.rs`).
pub const PT_POOL_START: u64 = 0x1_0000;
pub const PT_POOL_PER_VM: u64 = 0x10_0000;
/// The host's (principal 0's) extra level-3 table pages, in bytes: 768 pages.
pub const HOST_POOL_EXTRA: u64 = 0x30_0000;
pub const PGD_OFFSET: u64 = 0x1000;
pub const PUD_OFFSET: u64 = 0x5000;
pub const PMD_OFFSET: u64 = 0x1_5000;

/// Lock ids (spec-digest §1.11).
pub const S2PAGE_ID: u32 = 2;
pub const SPT_ID: u32 = 3;
pub const SMMU_ID: u32 = 4;
pub const NPT_ID: u32 = 5;
pub const INFO_ID: u32 = 22;
/// KCore's own locks (not the seed's): the export state, and vCPU context `id`'s
/// (`CTXT_ID + id`; never poisoned: no step halts holding one).
pub const EXPORT_ID: u32 = 39;
pub const CTXT_ID: u32 = 40;
/// Stream match register groups KCore routes (IDR0.NUMSMRG of the machine's SMMUs; re-exported
/// as `smmu_hw::STREAM_GROUPS`, kept here so `mutants` needs nothing above it).
pub const STREAM_GROUPS: u64 = 16;

pub const fn pool_start(v: u32) -> u64 {
    let extra = if v > HOSTVISOR { HOST_POOL_EXTRA } else { 0 };
    PT_POOL_START + PT_POOL_PER_VM * v as u64 + extra
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
/// The bytes all 17 principals' pools span together (`PoolSpans::ARM.npt`).
pub const NPT_POOLS_BYTES: u64 = pool_end(COREVISOR) - pool_start(HOSTVISOR);
pub const fn phys_page(a: u64) -> u64 {
    a & PHYS_PAGE_MASK
}

/// Allocator / VM-info lock ids not above (spec-digest §1.11).
pub const CORE_ID: u32 = 1;

/// Address-space bounds of the hypercall argument checks (spec-digest §2.2).
pub const KVM_ADDR_SPACE: u64 = 1 << 48;
pub const KVM_PHYS_SIZE: u64 = 1 << 40;
pub const KVM_PFN_SPACE: u64 = 1 << 28;
pub const MAX_MMIO_ADDR: u64 = 0x4000_0000;
pub const PTRS_PER_PMD: u64 = 512;

/// Host hypercall numbers (the C's `hypsec_host_hvc` ABI; `arm` profile).
pub mod hvc {
    pub const TIMER_SET_CNTVOFF: u64 = 7;
    pub const VCPU_RUN: u64 = 8;
    pub const CLEAR_VM_S2_RANGE: u64 = 9;
    pub const SET_BOOT_INFO: u64 = 10;
    pub const REMAP_VM_IMAGE: u64 = 11;
    pub const VERIFY_VM_IMAGE: u64 = 12;
    pub const REGISTER_KVM: u64 = 13;
    pub const REGISTER_VCPU: u64 = 14;
    pub const ENCRYPT_BUF: u64 = 20;
    pub const DECRYPT_BUF: u64 = 21;
    pub const SAVE_CRYPT_VCPU: u64 = 22;
    pub const SMMU_FREE_PGD: u64 = 23;
    pub const SMMU_ALLOC_PGD: u64 = 24;
    pub const SMMU_LPAE_MAP: u64 = 25;
    pub const SMMU_LPAE_IOVA_TO_PHYS: u64 = 26;
    pub const SMMU_CLEAR: u64 = 27;
    pub const PHYS_ADDR_IOREMAP: u64 = 28;
    pub const LOAD_CRYPT_VCPU: u64 = 29;
    /// Guest hypercalls: share / unshare a guest range with the host.
    pub const KVM_SET_DESC_PFN: u64 = 0x81000;
    pub const KVM_UNSET_DESC_PFN: u64 = 0x82000;
    pub const PSCI_0_2_FN_SYSTEM_OFF: u64 = 0x8400_0008;
}

/// Exit codes and ESR fields (Arm ARM D17.2.37).
pub const ARM_EXCEPTION_INTERRUPT: u64 = 0;
pub const ARM_EXCEPTION_TRAP: u64 = 2;
pub const ESR_ELX_EC_SHIFT: u32 = 26;
pub const ESR_ELX_EC_WFX: u64 = 0x01;
pub const ESR_ELX_EC_HVC64: u64 = 0x16;
pub const ESR_ELX_EC_SYS64: u64 = 0x18;
pub const ESR_ELX_EC_IABT_LOW: u64 = 0x20;
pub const ESR_ELX_EC_DABT_LOW: u64 = 0x24;
pub const ESR_ELX_EC_UNKNOWN: u64 = 0;
pub const ESR_ELX_WNR: u64 = 1 << 6;
pub const ESR_ELX_S1PTW: u64 = 1 << 7;
pub const ESR_ELX_SAS_SHIFT: u32 = 22;
pub const ESR_ELX_SRT_SHIFT: u32 = 16;
/// `HPFAR_EL2.FIPA` holds IPA[47:12] at bits [43:4] (Arm ARM D17.2.47).
pub const HPFAR_MASK: u64 = !0xF;

/// vCPU bookkeeping flags (the C's `vcpu->arch` dirty word).
pub const DIRTY_PC_FLAG: u64 = 1 << 32;
pub const PENDING_EXCEPT_INJECT_FLAG: u64 = 0xE_0000_0000;
pub const PSTATE_FAULT_BITS_64: u64 = 0x3C5;

/// EL2 configuration a world switch installs (implementation-notes §4).
pub const HCR_HYPSEC_VM_FLAGS: u64 = 0x8_8078_663B;
pub const HCR_HOST_NVHE_FLAGS: u64 = 0x8000_0021;
pub const ARMV8_PMU_USERENR_MASK: u64 = 0xF;
pub const HYPSEC_MDCR_EL2_FLAG: u64 = 0x4F60;
pub const CPTR_VM: u64 = 0x32FF | (1 << 20);
pub const CPTR_EL2_DEFAULT: u64 = 0x32FF;
pub const CNTHCTL_EL1PCEN: u64 = 1 << 1;
pub const CNTHCTL_EL1PCTEN: u64 = 1;
/// `AF | SH = inner shareable` added to every SMMU leaf.
pub const PTE_AF_OR_SH_IS: u64 = 0x700;

/// SMMUv2 register map KCore polices (spec-digest §5.0.5).
pub mod smmu_reg {
    pub const OFFSET_MASK: u64 = 0xFFFF;
    pub const GLOBAL_BASE: u64 = 0x8000;
    pub const PGSHIFT_MASK: u64 = 0xFFF;
    pub const GR0_SCR0: u64 = 0;
    pub const GR0_SCR2: u64 = 8;
    pub const SCR0_SMCFCFG_SHIFT: u32 = 21;
    pub const GR1_BASE: u64 = 0x1000;
    pub const GR1_END: u64 = 0x1800;
    pub const CBAR_TYPE_SHIFT: u32 = 16;
    pub const CBAR_TYPE_S2_TRANS: u64 = 0;
    pub const CBAR_VMID_MASK: u64 = 0xFF;
    pub const CB_TTBR0: u64 = 0x20;
    pub const CB_CONTEXTIDR: u64 = 0x34;
}

pub const fn ctxt_id(vmid: u32, vcpu: u32) -> usize {
    vmid as usize * 8 + vcpu as usize
}

/// VTTBR_EL2 of principal `v` in the spec's abstract pool addresses.
pub const fn pt_vttbr(v: u32) -> u64 {
    pool_start(v) | ((v as u64) << 48)
}
