//! Seed `Section ConcurrentSpec`: the atomic operations on shared state (`local_*`), the
//! oracle replay `CalStateH` and `query_oracle` (spec-digest §5.0.3, §4.8).
//!
//! Each `local_*` returns the new shared state and the halt flag (plus the seed's extra
//! outputs); the seed's proof-only `Some ...` snapshots are dropped. "Poison L" sets
//! `hlock[L] := false`: a lock held when KCore panicked is never released.

use crate::am::{decrypt_gp_regs_specx, decrypt_sys_regs_specx, shared_kvm, shared_vcpu, Dorc};
use crate::consts::*;
use crate::cov;
use crate::high_pt::{local_mmap_h, local_spt_map_h};
use crate::profile::Profile;
use crate::state::*;
use crate::zmap::ZMap;
use crate::Z;

/// `sdt {hlock: hlock # l1 == false # l2 == false ...}`.
fn poison(sdt: &Shared, ids: &[Z]) -> Shared {
    let mut out = sdt.clone();
    for &id in ids {
        out.hlock.set_mut(id, false);
    }
    out
}

fn with_npt(sdt: &Shared, v: Z, npt: NPT) -> Shared {
    Shared {
        npts: sdt.npts.set(v, npt),
        ..sdt.clone()
    }
}

fn with_info(sdt: &Shared, v: Z, info: VMInfo) -> Shared {
    Shared {
        vminfos: sdt.vminfos.set(v, info),
        ..sdt.clone()
    }
}

/// The host-unmap step shared by every transfer out of the host: if the host's table has
/// a non-zero descriptor for `pfn`, replace it by `PAGE_GUEST` (seed: `if pte =? 0 then
/// (false, npt) else local_mmap_h HOSTVISOR (pfn * PAGE_SIZE) 3 PAGE_GUEST npt`).
fn unmap_host(p: &Profile, pfn: Z, npt: &NPT) -> (bool, NPT) {
    let (_, _, pte) = *npt.pt.get(pfn);
    if pte == 0 {
        (false, npt.clone())
    } else {
        local_mmap_h(&p.c.pools, HOSTVISOR, pfn * PAGE_SIZE, 3, PAGE_GUEST, npt)
    }
}

/// The end of a page leaving the host (assign, last revoke): unmap it from the host's
/// table, then store the new metadata `s2p` and the untrusted contents `dorc(logn)`. If the
/// unmap halts, `s2p` is kept, contents and counter are not, and S2PAGE and NPT are poisoned
/// (seed: both operations' `halt'` branches).
fn leave_host(
    p: &Profile,
    sdt: &Shared,
    pfn: Z,
    s2p: ZMap<S2Page>,
    dorc: Dorc,
    logn: Z,
) -> (Shared, bool, Z) {
    let (halt, npt) = unmap_host(p, pfn, sdt.npts.get(HOSTVISOR));
    if halt {
        let mut out = with_npt(&poison(sdt, &[S2PAGE_ID, NPT_ID]), HOSTVISOR, npt);
        out.s2page = s2p;
        (out, true, logn)
    } else {
        let mut out = with_npt(sdt, HOSTVISOR, npt);
        out.s2page = s2p;
        out.flatmem.set_mut(pfn, dorc(logn));
        (out, false, logn + 1)
    }
}

pub fn local_map_host(p: &Profile, addr: Z, sdt: &Shared) -> (Shared, bool) {
    let pfn = zdiv(addr, PAGE_SIZE);
    let page = *sdt.s2page.get(pfn);
    if page.s2_owner == INVALID || page.s2_owner == HOSTVISOR || host_may_map(p, &page) {
        let pte = if page.s2_owner == INVALID {
            (pfn * PAGE_SIZE) | (PAGE_S2_DEVICE | S2_RDWR)
        } else {
            (pfn * PAGE_SIZE) | PAGE_S2_KERNEL
        };
        let (halt, npt) =
            local_mmap_h(&p.c.pools, HOSTVISOR, addr, 3, pte, sdt.npts.get(HOSTVISOR));
        if halt {
            cov!("local_map_host.mmap_failed");
            (
                poison(&with_npt(sdt, HOSTVISOR, npt), &[S2PAGE_ID, NPT_ID]),
                true,
            )
        } else {
            cov!("local_map_host.mapped");
            (with_npt(sdt, HOSTVISOR, npt), false)
        }
    } else {
        cov!("local_map_host.not_host_page");
        (poison(sdt, &[S2PAGE_ID]), true)
    }
}

/// Whether the host may map a page some VM owns: the seed says whenever `count > 0`, and an
/// SMMU-assigned page carries `count = INVALID` (> 0), so the host maps pages given to a
/// VM's device (deviation `host_maps_smmu_pages`). Intent: only while the VM shares it
/// (`0 < count < INVALID`, the GRANT counter).
fn host_may_map(p: &Profile, page: &S2Page) -> bool {
    if p.q.host_maps_smmu_pages {
        page.s2_count > 0
    } else {
        page.s2_count > 0 && page.s2_count != INVALID
    }
}

/// Extension (deviation `device_outside_mmio`): the host's stage-2 fault on an address
/// that is not RAM is served by `local_map_host` (which maps it as device memory) only
/// inside a device range the platform declares; elsewhere it is refused like a page the
/// host does not own (S2PAGE poisoned, halt). The seed maps every such address.
pub fn local_map_host_declared(
    p: &Profile,
    mmio: &[(Z, Z)],
    addr: Z,
    sdt: &Shared,
) -> (Shared, bool) {
    let owner = sdt.s2page.get(zdiv(addr, PAGE_SIZE)).s2_owner;
    if !p.q.device_outside_mmio && owner == INVALID && !crate::init::in_ranges(mmio, addr) {
        cov!("local_map_host_declared.undeclared_device");
        return (poison(sdt, &[S2PAGE_ID]), true);
    }
    cov!("local_map_host_declared.declared_or_ram");
    local_map_host(p, addr, sdt)
}

/// Deviation `clear_while_reachable`: may CLEAR_VM_S2_RANGE reclaim a POWEROFF VM's pages?
/// Not while a vCPU of it still runs (its stage-2 and TLB entries are live on that CPU)
/// or an SMMU bank is its (a device still translates through the bank's leaves).
pub fn vm_unreachable(vmid: Z, sdt: &Shared) -> bool {
    let info = sdt.vminfos.get(vmid);
    let running = (0..VCPU_PER_VM).any(|c| *info.VS.vm_vcpu_state.get(c) == ACTIVE);
    let banked = sdt.smmu_vmid.entries().any(|(_, &v)| v == vmid);
    !running && !banked
}

/// Deviation `clear_while_reachable`: before any page leaves a dead VM its whole stage-2
/// goes (the core zeroes the root table and invalidates the VMID's TLB entries); the pool
/// cursors stay, as the pages behind them stay KCore's.
pub fn teardown_vm_s2(vmid: Z, sdt: &Shared) -> Shared {
    let npt = sdt.npts.get(vmid);
    let empty = NPT {
        pt_pgd_next: npt.pt_pgd_next,
        pt_pud_next: npt.pt_pud_next,
        pt_pmd_next: npt.pt_pmd_next,
        ..NPT::default()
    };
    with_npt(sdt, vmid, empty)
}

pub fn local_clear_vm_page(p: &Profile, vmid: Z, pfn: Z, sdt: &Shared) -> (Shared, bool) {
    let page = *sdt.s2page.get(pfn);
    if page.s2_owner != vmid {
        cov!("local_clear_vm_page.not_owner");
        return (sdt.clone(), false);
    }
    let (halt, npt) = unmap_host(p, pfn, sdt.npts.get(HOSTVISOR));
    if halt {
        cov!("local_clear_vm_page.unmap_failed");
        return (
            with_npt(&poison(sdt, &[S2PAGE_ID, NPT_ID]), HOSTVISOR, npt),
            true,
        );
    }
    cov!("local_clear_vm_page.cleared");
    let mut out = with_npt(sdt, HOSTVISOR, npt);
    out.s2page
        .set_mut(pfn, mkS2Page(HOSTVISOR, 0, pfn + SMMU_HOST_OFFSET));
    out.flatmem.set_mut(pfn, 0);
    (out, false)
}

pub fn local_assign_pfn_to_vm(
    p: &Profile,
    vmid: Z,
    gfn: Z,
    pfn: Z,
    dorc: Dorc,
    logn: Z,
    sdt: &Shared,
) -> (Shared, bool, Z) {
    let page = *sdt.s2page.get(pfn);
    if page.s2_owner == HOSTVISOR {
        if page.s2_count == 0 {
            let s2p = sdt.s2page.set(pfn, mkS2Page(vmid, 0, gfn));
            let r = leave_host(p, sdt, pfn, s2p, dorc, logn);
            if r.1 {
                cov!("local_assign_pfn_to_vm.unmap_failed");
            } else {
                cov!("local_assign_pfn_to_vm.assigned");
            }
            r
        } else {
            cov!("local_assign_pfn_to_vm.host_page_shared");
            (poison(sdt, &[S2PAGE_ID]), true, logn)
        }
    } else if page.s2_owner == vmid && (page.s2_gfn == INVALID64 || gfn == page.s2_gfn) {
        let normalised = S2Page {
            s2_count: if page.s2_count == INVALID {
                0
            } else {
                page.s2_count
            },
            s2_gfn: if page.s2_gfn == INVALID64 {
                gfn
            } else {
                page.s2_gfn
            },
            ..page
        };
        // §7.2.7: the seed computes `page'` and stores the old `page`.
        let stored = if p.q.assign_discards_normalised {
            cov!("local_assign_pfn_to_vm.owned_literal");
            page
        } else {
            cov!("local_assign_pfn_to_vm.owned_normalised");
            normalised
        };
        (
            Shared {
                s2page: sdt.s2page.set(pfn, stored),
                ..sdt.clone()
            },
            false,
            logn,
        )
    } else {
        cov!("local_assign_pfn_to_vm.foreign_page");
        (poison(sdt, &[S2PAGE_ID]), true, logn)
    }
}

pub fn local_map_pfn_vm(
    p: &Profile,
    vmid: Z,
    addr: Z,
    pte: Z,
    level: Z,
    sdt: &Shared,
) -> (Shared, bool) {
    let paddr = phys_page(pte);
    let (pte2, level2) = if level == 2 {
        ((paddr | PAGE_S2_KERNEL) & NOT_PMD_TABLE_BIT, 2)
    } else {
        (paddr | PAGE_S2_KERNEL, 3)
    };
    let (halt, npt) = local_mmap_h(&p.c.pools, vmid, addr, level2, pte2, sdt.npts.get(vmid));
    if halt {
        cov!("local_map_pfn_vm.mmap_failed");
        (with_npt(&poison(sdt, &[NPT_ID + vmid]), vmid, npt), true)
    } else {
        cov!("local_map_pfn_vm.mapped");
        (with_npt(sdt, vmid, npt), false)
    }
}

pub fn local_map_io(p: &Profile, vmid: Z, gpa: Z, pa: Z, sdt: &Shared) -> (Shared, bool) {
    let info = sdt.vminfos.get(vmid);
    if info.VS.vm_state != READY {
        cov!("local_map_io.not_ready");
        return (poison(sdt, &[INFO_ID + vmid]), true);
    }
    let pfn = zdiv(pa, PAGE_SIZE);
    let pte = phys_page(pa) | (PAGE_S2_DEVICE | S2_RDWR);
    if sdt.s2page.get(pfn).s2_owner != INVALID {
        cov!("local_map_io.ram_skipped");
        return (sdt.clone(), false);
    }
    let (halt, npt) = local_mmap_h(&p.c.pools, vmid, gpa, 3, pte, sdt.npts.get(vmid));
    if halt {
        cov!("local_map_io.mmap_failed");
        (
            with_npt(
                &poison(sdt, &[INFO_ID + vmid, S2PAGE_ID, NPT_ID + vmid]),
                vmid,
                npt,
            ),
            true,
        )
    } else {
        cov!("local_map_io.mapped");
        (with_npt(sdt, vmid, npt), false)
    }
}

/// Extension (deviation `device_outside_mmio`): PHYS_ADDR_IOREMAP gives a VM device memory
/// only inside a range the platform declares; any other non-RAM page is skipped like a RAM
/// page (so a VM never maps KCore's own devices, which the platform does not declare).
pub fn local_map_io_declared(
    p: &Profile,
    mmio: &[(Z, Z)],
    smmu_windows: &[(Z, Z)],
    vmid: Z,
    gpa: Z,
    pa: Z,
    sdt: &Shared,
) -> (Shared, bool) {
    let info = sdt.vminfos.get(vmid);
    let owner = sdt.s2page.get(zdiv(pa, PAGE_SIZE)).s2_owner;
    if !p.q.device_outside_mmio
        && info.VS.vm_state == READY
        && owner == INVALID
        && !crate::init::in_ranges(mmio, pa)
    {
        cov!("local_map_io_declared.undeclared_device");
        return (sdt.clone(), false);
    }
    // Deviation `ioremap_smmu_window`: an SMMU's registers reach every stream and bank;
    // mapped into a VM they would bypass KCore's policing (skipped like an undeclared device).
    if !p.q.ioremap_smmu_window
        && info.VS.vm_state == READY
        && owner == INVALID
        && crate::init::in_ranges(smmu_windows, pa)
    {
        cov!("local_map_io_declared.smmu_window");
        return (sdt.clone(), false);
    }
    cov!("local_map_io_declared.seed");
    local_map_io(p, vmid, gpa, pa, sdt)
}

/// The seed returns `(sdt', Some s2p')`: this operation never halts.
pub fn local_grant_vm_page(_p: &Profile, vmid: Z, pfn: Z, sdt: &Shared) -> (Shared, bool) {
    let page = *sdt.s2page.get(pfn);
    if page.s2_owner == vmid && page.s2_count < MAX_SHARE_COUNT {
        cov!("local_grant_vm_page.granted");
        let s2p = sdt.s2page.set(
            pfn,
            S2Page {
                s2_count: page.s2_count + 1,
                ..page
            },
        );
        (
            Shared {
                s2page: s2p,
                ..sdt.clone()
            },
            false,
        )
    } else {
        cov!("local_grant_vm_page.refused");
        (sdt.clone(), false)
    }
}

pub fn local_revoke_vm_page(
    p: &Profile,
    vmid: Z,
    pfn: Z,
    dorc: Dorc,
    logn: Z,
    sdt: &Shared,
) -> (Shared, bool, Z) {
    let page = *sdt.s2page.get(pfn);
    if !(page.s2_owner == vmid && page.s2_count > 0) {
        cov!("local_revoke_vm_page.refused");
        return (sdt.clone(), false, logn);
    }
    let s2p = sdt.s2page.set(
        pfn,
        S2Page {
            s2_count: page.s2_count - 1,
            ..page
        },
    );
    if page.s2_count != 1 {
        cov!("local_revoke_vm_page.still_shared");
        return (
            Shared {
                s2page: s2p,
                ..sdt.clone()
            },
            false,
            logn,
        );
    }
    let r = leave_host(p, sdt, pfn, s2p, dorc, logn);
    if r.1 {
        cov!("local_revoke_vm_page.unmap_failed");
    } else {
        cov!("local_revoke_vm_page.unshared");
    }
    r
}

fn set_vcpu_state(sdt: &Shared, vmid: Z, vcpuid: Z, st: Z) -> Shared {
    let mut info = sdt.vminfos.get(vmid).clone();
    info.VS.vm_vcpu_state.set_mut(vcpuid, st);
    with_info(sdt, vmid, info)
}

pub fn local_set_vcpu_active(_p: &Profile, vmid: Z, vcpuid: Z, sdt: &Shared) -> (Shared, bool) {
    let info = sdt.vminfos.get(vmid);
    if info.VS.vm_state == VERIFIED && *info.VS.vm_vcpu_state.get(vcpuid) == READY {
        cov!("local_set_vcpu_active.activated");
        (set_vcpu_state(sdt, vmid, vcpuid, ACTIVE), false)
    } else {
        cov!("local_set_vcpu_active.refused");
        (sdt.clone(), true)
    }
}

pub fn local_set_vcpu_inactive(_p: &Profile, vmid: Z, vcpuid: Z, sdt: &Shared) -> (Shared, bool) {
    if *sdt.vminfos.get(vmid).VS.vm_vcpu_state.get(vcpuid) == ACTIVE {
        cov!("local_set_vcpu_inactive.deactivated");
        (set_vcpu_state(sdt, vmid, vcpuid, READY), false)
    } else {
        cov!("local_set_vcpu_inactive.refused");
        (sdt.clone(), true)
    }
}

/// The seed returns `(sdt', Some info')`: this operation never halts.
pub fn local_set_vm_poweroff(_p: &Profile, vmid: Z, sdt: &Shared) -> (Shared, bool) {
    cov!("local_set_vm_poweroff.poweroff");
    let mut info = sdt.vminfos.get(vmid).clone();
    info.VS.vm_state = POWEROFF;
    (with_info(sdt, vmid, info), false)
}

pub fn local_register_vcpu(_p: &Profile, vmid: Z, vcpuid: Z, sdt: &Shared) -> (Shared, bool) {
    let info = sdt.vminfos.get(vmid);
    if info.VS.vm_state == READY && *info.VS.vm_vcpu_state.get(vcpuid) == UNUSED {
        cov!("local_register_vcpu.registered");
        let mut info = info.clone();
        info.VS.vm_vcpu.set_mut(vcpuid, shared_vcpu(vmid, vcpuid));
        info.VS.vm_vcpu_state.set_mut(vcpuid, READY);
        (with_info(sdt, vmid, info), false)
    } else {
        cov!("local_register_vcpu.refused");
        (sdt.clone(), true)
    }
}

/// The seed returns `(sdt', halt, core')`; the new vmid is the old `next_vmid`.
pub fn local_gen_vmid(_p: &Profile, sdt: &Shared) -> (Shared, bool) {
    let vmid = sdt.core_data.next_vmid;
    if vmid < COREVISOR {
        cov!("local_gen_vmid.generated");
        (
            Shared {
                core_data: CoreData {
                    next_vmid: vmid + 1,
                    ..sdt.core_data
                },
                ..sdt.clone()
            },
            false,
        )
    } else {
        cov!("local_gen_vmid.exhausted");
        (sdt.clone(), true)
    }
}

pub fn local_register_kvm(_p: &Profile, vmid: Z, sdt: &Shared) -> (Shared, bool) {
    let info = sdt.vminfos.get(vmid);
    if info.VS.vm_state == UNUSED {
        cov!("local_register_kvm.registered");
        let mut info = info.clone();
        info.VS.vm_kvm = shared_kvm(vmid);
        info.VS.vm_state = READY;
        (with_info(sdt, vmid, info), false)
    } else {
        cov!("local_register_kvm.refused");
        (sdt.clone(), true)
    }
}

pub fn local_set_boot_info(
    _p: &Profile,
    vmid: Z,
    load_addr: Z,
    size: Z,
    sdt: &Shared,
) -> (Shared, bool) {
    let info = sdt.vminfos.get(vmid);
    if info.VS.vm_state != READY {
        cov!("local_set_boot_info.not_ready");
        return (sdt.clone(), true);
    }
    let load_idx = info.VB.vm_next_load_info;
    if load_idx >= MAX_LOAD_INFO_NUM {
        cov!("local_set_boot_info.table_full");
        return (sdt.clone(), false);
    }
    let pgnum = zdiv(size + 4095, PAGE_SIZE);
    let remap = sdt.core_data.next_remap_ptr;
    if remap + pgnum * PAGE_SIZE >= REMAP_END {
        cov!("local_set_boot_info.remap_exhausted");
        return (sdt.clone(), true);
    }
    cov!("local_set_boot_info.recorded");
    let mut info = info.clone();
    info.VB.vm_next_load_info = load_idx + 1;
    info.VB.vm_load_addr.set_mut(load_idx, load_addr);
    info.VB.vm_load_size.set_mut(load_idx, size);
    info.VB.vm_remap_addr.set_mut(load_idx, remap);
    info.VB.vm_mapped_pages.set_mut(load_idx, 0);
    let mut out = with_info(sdt, vmid, info);
    out.core_data.next_remap_ptr = remap + pgnum * PAGE_SIZE;
    (out, false)
}

pub fn local_remap_vm_image(
    p: &Profile,
    vmid: Z,
    pfn: Z,
    load_idx: Z,
    sdt: &Shared,
) -> (Shared, bool) {
    let info = sdt.vminfos.get(vmid);
    if info.VS.vm_state != READY {
        cov!("local_remap_vm_image.not_ready");
        return (poison(sdt, &[INFO_ID + vmid]), true);
    }
    if load_idx >= info.VB.vm_next_load_info {
        cov!("local_remap_vm_image.no_such_segment");
        return (sdt.clone(), false);
    }
    let size = *info.VB.vm_load_size.get(load_idx);
    let remap = *info.VB.vm_remap_addr.get(load_idx);
    let mapped = *info.VB.vm_mapped_pages.get(load_idx);
    let pgnum = zdiv(size + 4095, PAGE_SIZE);
    if mapped >= pgnum {
        cov!("local_remap_vm_image.segment_full");
        return (sdt.clone(), false);
    }
    let target = remap + mapped * PAGE_SIZE;
    let (halt, npt) = local_mmap_h(
        &p.c.pools,
        COREVISOR,
        target,
        3,
        (pfn * PAGE_SIZE) | PAGE_HYP,
        sdt.npts.get(COREVISOR),
    );
    if halt {
        cov!("local_remap_vm_image.mmap_failed");
        (
            with_npt(
                &poison(sdt, &[INFO_ID + vmid, NPT_ID + COREVISOR]),
                COREVISOR,
                npt,
            ),
            true,
        )
    } else {
        cov!("local_remap_vm_image.remapped");
        let mut info = info.clone();
        info.VB.vm_mapped_pages.set_mut(load_idx, mapped + 1);
        (with_npt(&with_info(sdt, vmid, info), COREVISOR, npt), false)
    }
}

/// Defined in the seed but called by no entry point (spec-digest §6.2).
pub fn local_verify_vm(_p: &Profile, vmid: Z, sdt: &Shared) -> (Shared, bool) {
    let info = sdt.vminfos.get(vmid);
    if *sdt.hlock.get(INFO_ID + vmid) {
        if info.VS.vm_state == READY {
            cov!("local_verify_vm.locked_ready");
            (sdt.clone(), false)
        } else {
            cov!("local_verify_vm.locked_not_ready");
            (poison(sdt, &[INFO_ID + vmid]), true)
        }
    } else {
        cov!("local_verify_vm.verified");
        let mut info = info.clone();
        info.VS.vm_state = VERIFIED;
        let mut out = with_info(sdt, vmid, info);
        out.hlock.set_mut(INFO_ID + vmid, true);
        (out, false)
    }
}

pub fn local_free_smmu_pgd(_p: &Profile, cbndx: Z, index: Z, sdt: &Shared) -> (Shared, bool) {
    let id = smmu_id(index, cbndx);
    let vmid = *sdt.smmu_vmid.get(id);
    if vmid == INVALID {
        cov!("local_free_smmu_pgd.unassigned");
        (sdt.clone(), false)
    } else if sdt.vminfos.get(vmid).VS.vm_state == POWEROFF {
        cov!("local_free_smmu_pgd.freed");
        (
            Shared {
                smmu_vmid: sdt.smmu_vmid.set(id, INVALID),
                ..sdt.clone()
            },
            false,
        )
    } else {
        cov!("local_free_smmu_pgd.owner_alive");
        (poison(sdt, &[SMMU_ID]), true)
    }
}

pub fn local_alloc_smmu_pgd(
    p: &Profile,
    cbndx: Z,
    vmid: Z,
    index: Z,
    num: Z,
    sdt: &Shared,
) -> (Shared, bool) {
    if cbndx >= num {
        cov!("local_alloc_smmu_pgd.no_such_bank");
        return (poison(sdt, &[SMMU_ID]), true);
    }
    let id = smmu_id(index, cbndx);
    if *sdt.smmu_vmid.get(id) != INVALID {
        cov!("local_alloc_smmu_pgd.already_assigned");
        return (sdt.clone(), false);
    }
    if is_vm(vmid) && sdt.vminfos.get(vmid).VS.vm_state == VERIFIED {
        cov!("local_alloc_smmu_pgd.vm_verified");
        return (poison(sdt, &[INFO_ID + vmid, SMMU_ID]), true);
    }
    // Deviation `clear_while_reachable`: a powered-off VM gets no new bank, so once CLEAR
    // saw it with none it keeps none.
    if !p.q.clear_while_reachable && is_vm(vmid) && sdt.vminfos.get(vmid).VS.vm_state == POWEROFF {
        cov!("local_alloc_smmu_pgd.vm_poweroff");
        return (poison(sdt, &[INFO_ID + vmid, SMMU_ID]), true);
    }
    cov!("local_alloc_smmu_pgd.assigned");
    let ttbr = SMMU_TTBR(index, cbndx);
    let spt = &sdt.spts;
    let spt2 = SPT {
        spt_pt: spt.spt_pt.set(ttbr, ZMap::init((0, 0))),
        spt_pgd_t: spt.spt_pgd_t.set(ttbr, ZMap::init(false)),
        spt_pmd_t: spt.spt_pmd_t.set(ttbr, ZMap::init(ZMap::init(false))),
        ..spt.clone()
    };
    (
        Shared {
            smmu_vmid: sdt.smmu_vmid.set(id, vmid),
            spts: spt2,
            ..sdt.clone()
        },
        false,
    )
}

pub fn local_smmu_assign_page(
    p: &Profile,
    cbndx: Z,
    index: Z,
    pfn: Z,
    gfn: Z,
    sdt: &Shared,
) -> (Shared, bool) {
    let vmid = *sdt.smmu_vmid.get(smmu_id(index, cbndx));
    if vmid == INVALID {
        cov!("local_smmu_assign_page.unassigned");
        return (sdt.clone(), false);
    }
    if !is_vm(vmid) {
        cov!("local_smmu_assign_page.host_bank");
        return (sdt.clone(), false);
    }
    if sdt.vminfos.get(vmid).VS.vm_state == VERIFIED {
        cov!("local_smmu_assign_page.vm_verified");
        return (poison(sdt, &[SMMU_ID, INFO_ID + vmid]), true);
    }
    let page = *sdt.s2page.get(pfn);
    if page.s2_owner == HOSTVISOR {
        if page.s2_count == 0 {
            let (halt, npt) = unmap_host(p, pfn, sdt.npts.get(HOSTVISOR));
            if halt {
                cov!("local_smmu_assign_page.unmap_failed");
                let out = poison(sdt, &[SMMU_ID, INFO_ID + vmid, S2PAGE_ID, NPT_ID]);
                (with_npt(&out, HOSTVISOR, npt), true)
            } else {
                cov!("local_smmu_assign_page.assigned");
                let mut out = with_npt(sdt, HOSTVISOR, npt);
                out.s2page.set_mut(pfn, mkS2Page(vmid, INVALID, gfn));
                (out, false)
            }
        } else {
            cov!("local_smmu_assign_page.host_page_shared");
            (poison(sdt, &[SMMU_ID, INFO_ID + vmid, S2PAGE_ID]), true)
        }
    } else if page.s2_owner == vmid {
        cov!("local_smmu_assign_page.already_owned");
        (sdt.clone(), false)
    } else {
        cov!("local_smmu_assign_page.foreign_page");
        (poison(sdt, &[SMMU_ID, INFO_ID + vmid, S2PAGE_ID]), true)
    }
}

pub fn local_smmu_map_page(
    p: &Profile,
    cbndx: Z,
    index: Z,
    iova: Z,
    pte: Z,
    sdt: &Shared,
) -> (Shared, bool) {
    let vmid = *sdt.smmu_vmid.get(smmu_id(index, cbndx));
    if vmid == INVALID {
        cov!("local_smmu_map_page.unassigned");
        return (sdt.clone(), false);
    }
    if is_vm(vmid) && sdt.vminfos.get(vmid).VS.vm_state == VERIFIED {
        cov!("local_smmu_map_page.vm_verified");
        return (poison(sdt, &[SMMU_ID, INFO_ID + vmid]), true);
    }
    let pfn = zdiv(phys_page(pte), PAGE_SIZE);
    let gfn = zdiv(iova, PAGE_SIZE);
    let page = *sdt.s2page.get(pfn);
    if !(vmid == page.s2_owner && gfn == page.s2_gfn) {
        cov!("local_smmu_map_page.page_mismatch");
        return (poison(sdt, &[SMMU_ID, INFO_ID + vmid, S2PAGE_ID]), true);
    }
    let (halt, spt) = local_spt_map_h(&p.c.pools, cbndx, index, iova, pte, &sdt.spts);
    if halt {
        cov!("local_smmu_map_page.pool_exhausted");
        let out = poison(sdt, &[SMMU_ID, INFO_ID + vmid, S2PAGE_ID, SPT_ID]);
        return (Shared { spts: spt, ..out }, true);
    }
    let s2p = if page.s2_owner == HOSTVISOR && page.s2_count < EL2_SMMU_CFG_SIZE {
        cov!("local_smmu_map_page.mapped_host_counted");
        sdt.s2page.set(
            pfn,
            S2Page {
                s2_count: page.s2_count + 1,
                ..page
            },
        )
    } else {
        cov!("local_smmu_map_page.mapped");
        sdt.s2page.clone()
    };
    (
        Shared {
            s2page: s2p,
            spts: spt,
            ..sdt.clone()
        },
        false,
    )
}

pub fn local_smmu_clear(p: &Profile, iova: Z, cbndx: Z, index: Z, sdt: &Shared) -> (Shared, bool) {
    let vmid = *sdt.smmu_vmid.get(smmu_id(index, cbndx));
    if vmid == INVALID {
        cov!("local_smmu_clear.unassigned");
        return (sdt.clone(), false);
    }
    if is_vm(vmid) && sdt.vminfos.get(vmid).VS.vm_state >= VERIFIED {
        cov!("local_smmu_clear.vm_verified");
        return (poison(sdt, &[SMMU_ID, INFO_ID + vmid]), true);
    }
    let ttbr = SMMU_TTBR(index, cbndx);
    let gfn = zdiv(iova, PAGE_SIZE);
    let (_, pte) = *sdt.spts.spt_pt.get(ttbr).get(gfn);
    let (halt, spt) = if pte == 0 {
        (false, sdt.spts.clone())
    } else {
        local_spt_map_h(&p.c.pools, cbndx, index, iova, 0, &sdt.spts)
    };
    if halt {
        cov!("local_smmu_clear.pool_exhausted");
        let out = poison(sdt, &[SMMU_ID, INFO_ID + vmid, S2PAGE_ID, SPT_ID]);
        return (Shared { spts: spt, ..out }, true);
    }
    let pfn0 = zdiv(phys_page(pte), PAGE_SIZE);
    let page = *sdt.s2page.get(pfn0);
    // §7.2.13: with `pte == 0` the seed inspects page 0.
    let touch = pte != 0 || p.q.smmu_clear_empty_touches_page0;
    let s2p = if touch && page.s2_owner == HOSTVISOR && page.s2_count > 0 {
        cov!("local_smmu_clear.cleared_host_uncounted");
        sdt.s2page.set(
            pfn0,
            S2Page {
                s2_count: page.s2_count - 1,
                ..page
            },
        )
    } else {
        cov!("local_smmu_clear.cleared");
        sdt.s2page.clone()
    };
    (
        Shared {
            s2page: s2p,
            spts: spt,
            ..sdt.clone()
        },
        false,
    )
}

pub fn local_load_encryted_vcpu(
    p: &Profile,
    vmid: Z,
    vcpuid: Z,
    cregs: &CtxtRegs,
    cstates: &CtxtStates,
    dorc: Dorc,
    logn: Z,
    sdt: &Shared,
) -> (Shared, bool, CtxtRegs, CtxtStates, Z) {
    let info = sdt.vminfos.get(vmid);
    if info.VS.vm_state == READY && *info.VS.vm_vcpu_state.get(vcpuid) == READY {
        let mut logn = logn;
        if !p.q.export_unauthenticated {
            let authentic = dorc(logn) != 0;
            logn += 1;
            if !authentic {
                cov!("local_load_encryted_vcpu.forged");
                let (c, s) = (cregs.clone(), cstates.clone());
                return (poison(sdt, &[INFO_ID + vmid]), true, c, s, logn);
            }
        }
        cov!("local_load_encryted_vcpu.loaded");
        let (cr1, cs1, l1) = decrypt_gp_regs_specx(cregs, cstates, dorc, logn);
        let (cr2, cs2, l2) = decrypt_sys_regs_specx(&cr1, &cs1, dorc, l1);
        let mut info = info.clone();
        info.VB.vm_inc_exe = 1;
        (with_info(sdt, vmid, info), false, cr2, cs2, l2)
    } else {
        cov!("local_load_encryted_vcpu.refused");
        (
            poison(sdt, &[INFO_ID + vmid]),
            true,
            cregs.clone(),
            cstates.clone(),
            logn,
        )
    }
}

pub fn local_save_encrypt_buf(
    _p: &Profile,
    vmid: Z,
    inbuf: Z,
    outbuf: Z,
    dorc: Dorc,
    logn: Z,
    sdt: &Shared,
) -> (Shared, bool, Z) {
    let inpfn = zdiv(inbuf, PAGE_SIZE);
    let outpfn = zdiv(outbuf, PAGE_SIZE);
    if sdt.s2page.get(inpfn).s2_owner == vmid && sdt.s2page.get(outpfn).s2_owner == HOSTVISOR {
        cov!("local_save_encrypt_buf.encrypted");
        (
            Shared {
                flatmem: sdt.flatmem.set(outpfn, dorc(logn)),
                ..sdt.clone()
            },
            false,
            logn + 1,
        )
    } else {
        cov!("local_save_encrypt_buf.refused");
        (poison(sdt, &[S2PAGE_ID]), true, logn)
    }
}

pub fn local_load_decrypt_buf(
    p: &Profile,
    vmid: Z,
    inbuf: Z,
    dorc: Dorc,
    logn: Z,
    sdt: &Shared,
) -> (Shared, bool, Z) {
    let pfn = zdiv(inbuf, PAGE_SIZE);
    if sdt.vminfos.get(vmid).VS.vm_state != READY {
        cov!("local_load_decrypt_buf.not_ready");
        return (poison(sdt, &[INFO_ID + vmid]), true, logn);
    }
    let page = *sdt.s2page.get(pfn);
    if !(page.s2_owner == HOSTVISOR && page.s2_count == 0) {
        cov!("local_load_decrypt_buf.not_free_host_page");
        return (poison(sdt, &[INFO_ID + vmid, S2PAGE_ID]), true, logn);
    }
    let (halt, npt) = unmap_host(p, pfn, sdt.npts.get(HOSTVISOR));
    if halt {
        cov!("local_load_decrypt_buf.unmap_failed");
        return (
            with_npt(
                &poison(sdt, &[INFO_ID + vmid, S2PAGE_ID, NPT_ID]),
                HOSTVISOR,
                npt,
            ),
            true,
            logn,
        );
    }
    let mut logn = logn;
    if !p.q.export_unauthenticated {
        let authentic = dorc(logn) != 0;
        logn += 1;
        if !authentic {
            cov!("local_load_decrypt_buf.forged");
            return (
                with_npt(&poison(sdt, &[INFO_ID + vmid, S2PAGE_ID]), HOSTVISOR, npt),
                true,
                logn,
            );
        }
    }
    cov!("local_load_decrypt_buf.decrypted");
    let mut out = with_npt(sdt, HOSTVISOR, npt);
    out.s2page.set_mut(pfn, mkS2Page(vmid, 0, INVALID64));
    out.flatmem.set_mut(pfn, dorc(logn));
    (out, false, logn + 1)
}

/// `CalStateH slog sdt`: the shared state after other CPUs' events `slog` (newest first).
/// Literally (§7.2.14) only the newest event counts, applied to the original `sdt`; the
/// intent replays every `OMAP_HOST` oldest first.
pub fn CalStateH(p: &Profile, slog: &[SEvent], sdt: &Shared) -> Shared {
    if p.q.cal_state_newest_only {
        match slog.first() {
            Some(SEvent {
                e: AtomicEvent::OMAP_HOST(addr),
                ..
            }) => {
                cov!("CalStateH.newest_map_host");
                local_map_host(p, *addr, sdt).0
            }
            _ => {
                cov!("CalStateH.newest_other");
                sdt.clone()
            }
        }
    } else {
        cov!("CalStateH.replay_all");
        slog.iter().rev().fold(sdt.clone(), |s, ev| match ev.e {
            AtomicEvent::OMAP_HOST(addr) => local_map_host(p, addr, &s).0,
            _ => s,
        })
    }
}

/// `query_oracle adt`: prepend the other CPUs' events to `slog` and replay them.
pub fn query_oracle(p: &Profile, adt: &RData) -> RData {
    let evs = adt.soracle.call(adt.curid, &adt.slog);
    if evs.is_empty() {
        return adt.clone();
    }
    let mut out = adt.clone();
    for ev in evs.iter().rev() {
        out.slog.push_front(ev.clone());
    }
    out.shared = CalStateH(p, &evs, &adt.shared);
    out
}
