//! The two profiles (ARCHITECTURE.md "The two profiles").
//!
//! * [`Profile::seed`]: the Coq constants and every quirk of the seed taken literally. Only
//!   the model runs it; golden tests pin each quirk to the seed's text.
//! * [`Profile::arm`]: ARM/C constants and each quirk fixed to its evident intent. This is
//!   what the core implements.
//!
//! The difference is exactly one [`Consts`] table and one [`Quirks`] set of named switches;
//! `docs/deviations.md` has one entry per switch.

use crate::consts::Pools;
use crate::Z;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProfileKind {
    Seed,
    Arm,
}

/// Constants whose Coq value is a placeholder (spec-digest §2.6, §2.7, §2.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_snake_case)]
pub struct Consts {
    pub HVC_KVM_SET_DESC_PFN: Z,
    pub HVC_KVM_UNSET_DESC_PFN: Z,
    pub HVC_TIMER_SET_CNTVOFF: Z,
    pub HVC_CLEAR_VM_S2_RANGE: Z,
    pub HVC_SET_BOOT_INFO: Z,
    pub HVC_REMAP_VM_IMAGE: Z,
    pub HVC_VERIFY_VM_IMAGE: Z,
    pub HVC_SMMU_FREE_PGD: Z,
    pub HVC_SMMU_ALLOC_PGD: Z,
    pub HVC_SMMU_LPAE_MAP: Z,
    pub HVC_SMMU_LPAE_IOVA_TO_PHYS: Z,
    pub HVC_SMMU_CLEAR: Z,
    pub HVC_PHYS_ADDR_IOREMAP: Z,
    pub HVC_REGISTER_KVM: Z,
    pub HVC_REGISTER_VCPU: Z,
    pub HVC_ENCRYPT_BUF: Z,
    pub HVC_DECRYPT_BUF: Z,
    pub HVC_SAVE_CRYPT_VCPU: Z,
    pub HVC_LOAD_CRYPT_VCPU: Z,
    /// `HVC_VCPU_RUN`: the seed has no number (vcpu run is its own entry point); the C
    /// uses 8. The engines route an `hvc` with this number to `host_vcpu_run_handler`.
    pub HVC_VCPU_RUN: Option<Z>,
    pub ESR_ELx_EC_SYS64: Z,
    pub ARM_EXCEPTION_INTERRUPT: Z,
    pub HPFAR_MASK: Z,
    pub PTE_AF_OR_SH_IS: Z,
    pub HCR_HYPSEC_VM_FLAGS: Z,
    pub HCR_HOST_NVHE_FLAGS: Z,
    pub ARMV8_PMU_USERENR_MASK: Z,
    pub HYPSEC_MDCR_EL2_FLAG: Z,
    pub CPTR_VM: Z,
    pub CPTR_EL2_DEFAULT: Z,
    pub CNTHCTL_EL1PCEN: Z,
    pub CNTHCTL_EL1PCTEN: Z,
    /// The page-table pools' geometry (deviation `arm_pool_geometry`).
    pub pools: Pools,
}

impl Consts {
    /// Coq `Constants.md` values.
    pub const SEED: Consts = Consts {
        HVC_KVM_SET_DESC_PFN: 11,
        HVC_KVM_UNSET_DESC_PFN: 12,
        HVC_TIMER_SET_CNTVOFF: 13,
        HVC_CLEAR_VM_S2_RANGE: 14,
        HVC_SET_BOOT_INFO: 15,
        HVC_REMAP_VM_IMAGE: 16,
        HVC_VERIFY_VM_IMAGE: 17,
        HVC_SMMU_FREE_PGD: 18,
        HVC_SMMU_ALLOC_PGD: 19,
        HVC_SMMU_LPAE_MAP: 20,
        HVC_SMMU_LPAE_IOVA_TO_PHYS: 21,
        HVC_SMMU_CLEAR: 22,
        HVC_PHYS_ADDR_IOREMAP: 23,
        HVC_REGISTER_KVM: 24,
        HVC_REGISTER_VCPU: 25,
        HVC_ENCRYPT_BUF: 26,
        HVC_DECRYPT_BUF: 27,
        HVC_SAVE_CRYPT_VCPU: 28,
        HVC_LOAD_CRYPT_VCPU: 29,
        HVC_VCPU_RUN: None,
        ESR_ELx_EC_SYS64: 30,
        ARM_EXCEPTION_INTERRUPT: 31,
        HPFAR_MASK: 0xFFFF,
        PTE_AF_OR_SH_IS: 0x1_0000,
        HCR_HYPSEC_VM_FLAGS: 3,
        HCR_HOST_NVHE_FLAGS: 8,
        ARMV8_PMU_USERENR_MASK: 4,
        HYPSEC_MDCR_EL2_FLAG: 5,
        CPTR_VM: 6,
        CPTR_EL2_DEFAULT: 7,
        CNTHCTL_EL1PCEN: 9,
        CNTHCTL_EL1PCTEN: 10,
        pools: Pools::SEED,
    };

    /// ARM architecture / SeKVM C values (`virt.h`, `pvops.h`, `esr.h`, `kvm_arm.h`).
    pub const ARM: Consts = Consts {
        HVC_KVM_SET_DESC_PFN: 0x81000,
        HVC_KVM_UNSET_DESC_PFN: 0x82000,
        HVC_TIMER_SET_CNTVOFF: 7,
        HVC_CLEAR_VM_S2_RANGE: 9,
        HVC_SET_BOOT_INFO: 10,
        HVC_REMAP_VM_IMAGE: 11,
        HVC_VERIFY_VM_IMAGE: 12,
        HVC_SMMU_FREE_PGD: 23,
        HVC_SMMU_ALLOC_PGD: 24,
        HVC_SMMU_LPAE_MAP: 25,
        HVC_SMMU_LPAE_IOVA_TO_PHYS: 26,
        HVC_SMMU_CLEAR: 27,
        HVC_PHYS_ADDR_IOREMAP: 28,
        HVC_REGISTER_KVM: 13,
        HVC_REGISTER_VCPU: 14,
        HVC_ENCRYPT_BUF: 20,
        HVC_DECRYPT_BUF: 21,
        HVC_SAVE_CRYPT_VCPU: 22,
        HVC_LOAD_CRYPT_VCPU: 29,
        HVC_VCPU_RUN: Some(8),
        ESR_ELx_EC_SYS64: 0x18,
        ARM_EXCEPTION_INTERRUPT: 0,
        // Linux `HPFAR_MASK` = ~0xF on a 64-bit register.
        HPFAR_MASK: 0xFFFF_FFFF_FFFF_FFF0,
        // AF (bit 10) | SH inner-shareable (bits 9:8 = 0b11).
        PTE_AF_OR_SH_IS: 0x700,
        HCR_HYPSEC_VM_FLAGS: 0x8_8078_663B,
        HCR_HOST_NVHE_FLAGS: 0x8000_0021,
        ARMV8_PMU_USERENR_MASK: 0xF,
        HYPSEC_MDCR_EL2_FLAG: 0x4F60,
        // CPTR_EL2: RES1 bits plus TTA (bit 20) so a guest's trace-register access traps.
        CPTR_VM: 0x32FF | (1 << 20),
        CPTR_EL2_DEFAULT: 0x32FF,
        CNTHCTL_EL1PCEN: 1 << 1,
        CNTHCTL_EL1PCTEN: 1,
        pools: Pools::ARM,
    };
}

/// The seed's literal-vs-intent decisions (spec-digest §7.1 and §7.2). `true` = behave as
/// the seed's text says; the [`Profile::arm`] value of each switch is `false` unless the
/// doc says "kept literal". Every switch has an entry in `docs/deviations.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quirks {
    /// §7.2.1: `update_exception_gp_regs` runs when the inject flag is *clear*.
    pub inverted_exception_inject: bool,
    /// §7.2.2: an injected exception leaves `pc` unchanged (no jump to the vector).
    pub inject_keeps_pc: bool,
    /// §7.2.3: `verify_and_load_loop_h` visits segments 0, 1, 1, ...
    pub verify_loop_index: bool,
    /// §7.2.4: SMMU/verify hypercalls lock `INFO_ID + cur_vmid` instead of the target VM.
    pub info_lock_cur_vmid: bool,
    /// §7.2.5: `SMMU_LPAE_MAP` phase 2 and `SMMU_CLEAR` read `smmu_vmid[cbndx*8 + index]`.
    pub smmu_id_swapped: bool,
    /// §7.2.6: grant/revoke of a 2 MiB mapping use the block's base pfn.
    pub grant_block_base_pfn: bool,
    /// §7.2.7: `local_assign_pfn_to_vm` discards the normalised page of an owned pfn.
    pub assign_discards_normalised: bool,
    /// §7.2.8: `sync_dirty_to_shadow` gives every dirty register the value `dorc(logn0)`.
    pub sync_dirty_same_value: bool,
    /// §7.2.9: `LOAD_CRYPT_VCPU` decrypts into the caller's (host) context.
    pub load_crypt_into_caller: bool,
    /// §7.2.10: `SMMU_LPAE_IOVA_TO_PHYS` does not log its `OSMMU_GET` event.
    pub iova_to_phys_unlogged: bool,
    /// §7.2.11: the first-run path rebuilds its result from the snapshot before two queries.
    pub first_run_drops_queries: bool,
    /// §7.2.12: level-3 `prot_and_map_vm_s2pt_spec_h` maps even after a failed assign, and
    /// the map's halt flag replaces the assign's.
    pub map_after_failed_assign: bool,
    /// §7.2.13: `local_smmu_clear` on an empty iova inspects (and may decrement) page 0.
    pub smmu_clear_empty_touches_page0: bool,
    /// §7.2.14: `CalStateH` replays only the newest oracle event.
    pub cal_state_newest_only: bool,
    /// §7.2.15: `SET_BOOT_INFO` checks `is_pfn(a2 + a3)` and `REMAP_VM_IMAGE` never checks
    /// the pfn; intent: `is_paddr` on the load range, `is_pfn` on the pfn.
    pub literal_arg_checks: bool,
    /// §7.2.16: block-assign events carry the base gfn/pfn; `OASSIGN_SMMU` swaps its slots.
    pub literal_event_payloads: bool,
    /// §7.2.17: the VM-exit dispatcher halts on WFx and guest aborts (so those exits never
    /// reach the host), and `prep_abort` overwrites `dirty` instead of OR-ing.
    pub guest_abort_halts: bool,
    /// The VM-exit dispatcher (and `prep_exit_vm`) halt the machine on every other exception
    /// class (a guest's BRK, SMC, unknown instruction, SVE or PAuth trap): any VM can stop
    /// every principal. `arm`: the exit goes to the host, which decides (KVM injects an
    /// undefined-instruction exception), as for WFx and aborts.
    pub guest_exception_halts: bool,
    /// §7.2.18: `reset_sys_regs` also resets `elr_el2` (index 70).
    pub reset_covers_elr_el2: bool,
    /// §7.2.21: a principal's oracle read (shared or device page) does not advance `data_log`.
    pub oracle_read_no_advance: bool,
    /// §7.1: `timer_enable_traps` is the arithmetic `- PCEN + PCTEN` (intent: clear/set bits).
    pub timer_traps_arithmetic: bool,
    /// §7.1: "skip instruction" is modelled as `esr_el2 := elr_el2 + 4` (intent: ELR += 4).
    pub skip_writes_esr: bool,
    /// §7.1: the host's ELR/SPSR are never saved before a vCPU runs (intent: save them at
    /// vcpu-run entry so `switch_to_host` returns the host to where it called from).
    pub host_elr_unsaved: bool,
    /// §7.1: `host_vcpu_run_handler` takes the vmid from x0 (the C: x1, x0 = call number).
    pub vcpu_run_vmid_in_x0: bool,
    /// Found here: a host-proposed 2 MiB mapping whose page is not 2 MiB aligned is given to
    /// the VM page by page from that pfn, while the block descriptor's output address drops
    /// the low bits (Arm ARM D8.3: RES0), so the MMU maps a different 2 MiB. Intent: refuse.
    pub unaligned_block_mapped: bool,
    /// Extension (issue 5): the seed's VERIFY_VM_IMAGE loads any image. Intent: the image's
    /// signature decides; the model reads the verdict from the host's data stream (1 =
    /// authentic); a forged image leaves the VM POWEROFF.
    pub verify_unsigned: bool,
    /// Extension (issue 5): the seed's export hypercalls are abstract (SAVE_CRYPT_VCPU does
    /// nothing, imports always succeed). Intent: SAVE_CRYPT_VCPU seals the vCPU into the
    /// host page x3; DECRYPT_BUF / LOAD_CRYPT_VCPU read an authentication verdict from the
    /// host's data stream and halt on a forged or replayed buffer.
    pub export_unauthenticated: bool,
    /// Found here: the SMMU write policy's global range is `0 <= offset <= GR1_BASE`, so the
    /// write to bank 0's CBAR (offset GR1_BASE) is never policed and the host can retarget
    /// a VM's bank 0. Intent: the global range ends below GR1_BASE (the C's `<`).
    pub cbar0_unpoliced: bool,
    /// Extension (issue 9): the seed maps any address that is not RAM into the host as
    /// device memory on a host stage-2 fault. Intent: only addresses inside a device range
    /// the platform declares (a device tree's); any other is refused like a page the host
    /// does not own.
    pub device_outside_mmio: bool,
    /// Extension (issue 13): the seed decodes an SMMU register offset as `ipa & 0xFFFF`
    /// although the window is 128 KiB, so the upper 64 KiB (no register there) is policed
    /// as an alias of the lower. Intent: the offset in the whole window; above the SMMU's
    /// own 64 KiB an access reaches nothing and completes.
    pub smmu_offset_masked: bool,
    /// Extension (issue 13): the seed accepts any 4- or 8-byte access, misaligned or 64-bit
    /// on a 32-bit register, and polices the whole 64-bit register even for a 32-bit store.
    /// Intent: exactly the accesses the SMMU defines (aligned; 64-bit only on its 64-bit
    /// registers), a 32-bit store judged by the word it stores; any other halts.
    pub smmu_mmio_width_unchecked: bool,
    /// Extension (issue 13): the seed lets the host write any SMR or S2CR (bypass a stream,
    /// route it to a VM's bank, take over a VM's stream). Intent: the stream match groups
    /// KCore routed to a VM's bank are frozen, and an S2CR may only fault or translate
    /// through a bank the host owns.
    pub smmu_stream_routing_unpoliced: bool,
    /// Extension (issue 13): the seed lets the host rewrite any bank's SCTLR, TCR and
    /// CBA2R (translation off, big-endian walks, another start level or format). Intent:
    /// SCTLR.M = 1 and SCTLR.E = 0, TCR's walk fields are KCore's, CBA2R.VA64 = 1, on
    /// every bank.
    pub smmu_bank_config_unpoliced: bool,
    /// Extension (issue 13): the seed polices CBAR only for VM banks, and there as a whole
    /// upper half (IRPTNDX must be 0, which Linux's driver may set). Intent: every bank's
    /// CBAR stays stage-2 translation (TYPE), with the owner's VMID for a VM bank and VMID
    /// 0 for a host bank (no alias of a VM's IOTLB entries); the other fields are free.
    pub smmu_cbar_loose: bool,
    /// Extension (issue 13, finding 10): `SMMU_LPAE_MAP` builds the leaf as
    /// `a2 | a3 | AF/SH`: the host chooses every attribute bit up to bit 62 (the contiguous
    /// hint lets one IOTLB entry translate 15 pages KCore never mapped) and the low bits of
    /// the address. Intent: the output address is `phys_page(a2)` and only the descriptor
    /// type, S2AP, MemAttr and XN come from `a3` ([`crate::aux::SMMU_LEAF_ALLOWED`]).
    pub smmu_leaf_attrs_unchecked: bool,
    /// Issue 20, hole 1: `local_map_host` maps any page whose count is > 0, and the SMMU's
    /// INVALID count is > 0, so the host maps a page given to a VM's device; the owned-page
    /// branch of `local_assign_pfn_to_vm` makes such a page private without unmapping the
    /// host. Intent: the host maps a VM's page only while `0 < count < INVALID` (a GRANT);
    /// with no way in, the owned-page branch needs no unmap (docs/deviations.md).
    pub host_maps_smmu_pages: bool,
    /// Issue 20, hole 2: `CLEAR_VM_S2_RANGE` reclaims a POWEROFF VM's pages while another
    /// vCPU of it is still ACTIVE or an SMMU bank still maps them, and leaves the VM's
    /// stage-2 in place; `SMMU_ALLOC_PGD` gives a bank to a POWEROFF VM. Intent: CLEAR is a
    /// refused no-op until no vCPU is ACTIVE and no bank is the VM's, then tears down the
    /// VM's stage-2 (and TLB) before any page leaves; a POWEROFF VM gets no bank.
    pub clear_while_reachable: bool,
    /// Issue 20, hole 3: VERIFY hashes the pages REMAP_VM_IMAGE placed in the remap window
    /// but gives the VM, per 2 MiB chunk, the block holding the chunk's first remapped page,
    /// so scattered remapped pages let the host put unsigned code in the block. Intent:
    /// every remapped page must be the block's page at that address, or VERIFY halts.
    pub image_blocks_unbound: bool,
    /// Issue 20, hole 4: `PHYS_ADDR_IOREMAP` maps any declared device range into a VM, the
    /// SMMU's register windows included. Intent: an SMMU window is never ioremapped
    /// (skipped, like an undeclared device).
    pub ioremap_smmu_window: bool,
    /// Issue 20: a guest GRANT/REVOKE loops over as many pages as the guest names (2^52 for
    /// a size of 2^64 - 1), CLEAR and IOREMAP over as many as the host names. Intent: no
    /// loop longer than what the principal can own: a GRANT/REVOKE or CLEAR range longer
    /// than the RAM's pages, an IOREMAP longer than the declared device pages, is refused
    /// (the guest resumes with nothing shared; the host's call halts as for bad arguments).
    pub share_loop_unbounded: bool,
}

impl Quirks {
    pub const LITERAL: Quirks = Quirks {
        inverted_exception_inject: true,
        inject_keeps_pc: true,
        verify_loop_index: true,
        info_lock_cur_vmid: true,
        smmu_id_swapped: true,
        grant_block_base_pfn: true,
        assign_discards_normalised: true,
        sync_dirty_same_value: true,
        load_crypt_into_caller: true,
        iova_to_phys_unlogged: true,
        first_run_drops_queries: true,
        map_after_failed_assign: true,
        smmu_clear_empty_touches_page0: true,
        cal_state_newest_only: true,
        literal_arg_checks: true,
        literal_event_payloads: true,
        guest_abort_halts: true,
        guest_exception_halts: true,
        reset_covers_elr_el2: true,
        oracle_read_no_advance: true,
        timer_traps_arithmetic: true,
        skip_writes_esr: true,
        host_elr_unsaved: true,
        vcpu_run_vmid_in_x0: true,
        unaligned_block_mapped: true,
        verify_unsigned: true,
        export_unauthenticated: true,
        cbar0_unpoliced: true,
        device_outside_mmio: true,
        smmu_offset_masked: true,
        smmu_mmio_width_unchecked: true,
        smmu_stream_routing_unpoliced: true,
        smmu_bank_config_unpoliced: true,
        smmu_cbar_loose: true,
        smmu_leaf_attrs_unchecked: true,
        host_maps_smmu_pages: true,
        clear_while_reachable: true,
        image_blocks_unbound: true,
        ioremap_smmu_window: true,
        share_loop_unbounded: true,
    };

    pub const INTENT: Quirks = Quirks {
        inverted_exception_inject: false,
        inject_keeps_pc: false,
        verify_loop_index: false,
        info_lock_cur_vmid: false,
        smmu_id_swapped: false,
        grant_block_base_pfn: false,
        assign_discards_normalised: false,
        sync_dirty_same_value: false,
        load_crypt_into_caller: false,
        iova_to_phys_unlogged: false,
        first_run_drops_queries: false,
        map_after_failed_assign: false,
        smmu_clear_empty_touches_page0: false,
        cal_state_newest_only: false,
        literal_arg_checks: false,
        literal_event_payloads: false,
        guest_abort_halts: false,
        guest_exception_halts: false,
        reset_covers_elr_el2: false,
        oracle_read_no_advance: false,
        timer_traps_arithmetic: false,
        skip_writes_esr: false,
        host_elr_unsaved: false,
        vcpu_run_vmid_in_x0: false,
        unaligned_block_mapped: false,
        verify_unsigned: false,
        export_unauthenticated: false,
        cbar0_unpoliced: false,
        device_outside_mmio: false,
        smmu_offset_masked: false,
        smmu_mmio_width_unchecked: false,
        smmu_stream_routing_unpoliced: false,
        smmu_bank_config_unpoliced: false,
        smmu_cbar_loose: false,
        smmu_leaf_attrs_unchecked: false,
        host_maps_smmu_pages: false,
        clear_while_reachable: false,
        image_blocks_unbound: false,
        ioremap_smmu_window: false,
        share_loop_unbounded: false,
    };
}

/// A profile: which constants and which reading of each quirk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Profile {
    pub kind: ProfileKind,
    pub c: Consts,
    pub q: Quirks,
}

impl Profile {
    pub const SEED: Profile = Profile {
        kind: ProfileKind::Seed,
        c: Consts::SEED,
        q: Quirks::LITERAL,
    };
    pub const ARM: Profile = Profile {
        kind: ProfileKind::Arm,
        c: Consts::ARM,
        q: Quirks::INTENT,
    };

    pub fn seed() -> &'static Profile {
        &Self::SEED
    }

    pub fn arm() -> &'static Profile {
        &Self::ARM
    }

    pub fn of(kind: ProfileKind) -> &'static Profile {
        match kind {
            ProfileKind::Seed => &Self::SEED,
            ProfileKind::Arm => &Self::ARM,
        }
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            ProfileKind::Seed => "seed",
            ProfileKind::Arm => "arm",
        }
    }

    /// A profile with one switch changed: lets a test show a quirk's effect in isolation.
    pub fn with_quirks(&self, q: Quirks) -> Profile {
        Profile { q, ..*self }
    }
}
