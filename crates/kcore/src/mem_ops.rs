//! The seed's ownership operations (`ConcurrentSpec`, `local_*`) on the real structures:
//! metadata in KCore memory and ARMv8 stage-2 tables. One function per transition; names
//! mirror the seed. Each takes the ticket locks its atomic step relies on (`rely` in
//! TrapHandlerSpec; spec-digest §1.11) in nesting order (`state`), as guards: the state it
//! touches is reachable only through them. A halt poisons the locks the seed lists and
//! carries [`Halt`] upward. Arm-profile semantics (`docs/deviations.md`).

use crate::consts::*;
use crate::hw::{Hw, Untrusted};
use crate::meta::S2Page;
use crate::mutants::{mutant, Fault};
use crate::pt::{self, Pool};
use crate::smmu::{self, BANKS};
use crate::state::{Core, Held, Res, S2Pages, SMMU_BANKS};

/// Who owns which SMMU bank (lock SMMU).
pub type Banks = [u32; SMMU_BANKS];

/// SMMU held, the bank's owner, and (a VM's bank) its INFO held.
type BankAndOwner<'a, H> = (
    Held<'a, Banks, H>,
    u32,
    Option<Held<'a, crate::vm_info::VmInfo, H>>,
);

impl<H: Hw> Core<H> {
    /// Installs `pte` at `addr`/`level` in principal `v`'s table (its NPT guard's pool).
    pub(crate) fn mmap_in(&self, npt: &mut Pool, v: u32, addr: u64, level: u32, pte: u64) -> bool {
        pt::mmap(&self.hw, &self.layout.pt, v, npt, addr, level, pte)
    }

    /// Remove the host's access to `pfn` (the seed writes `PAGE_GUEST` over a present entry).
    pub(crate) fn unmap_host(&self, host: &mut Pool, pfn: u64) -> bool {
        match pt::lookup(&self.hw, &self.layout.pt, HOSTVISOR, pfn * PAGE_SIZE) {
            Some((d, 3)) if d != 0 => self.mmap_in(host, HOSTVISOR, pfn * PAGE_SIZE, 3, PAGE_GUEST),
            Some((_, 2)) => self.mmap_in(host, HOSTVISOR, pfn * PAGE_SIZE, 3, PAGE_GUEST),
            _ => true,
        }
    }

    /// S2PAGE and the host's NPT, in that order.
    pub(crate) fn pages_and_host(
        &self,
        input: &mut impl Untrusted,
    ) -> Res<(Held<'_, S2Pages, H>, Held<'_, Pool, H>)> {
        let pages = self.take(&self.s2page, input)?;
        let host = self.take(&self.npt[HOSTVISOR as usize], input)?;
        Ok((pages, host))
    }

    /// `local_map_host`: a host stage-2 fault on `addr`: RAM the host owns or was shared, or a
    /// declared device.
    pub fn local_map_host(&self, addr: u64, input: &mut impl Untrusted) -> Res {
        let (pages, mut host) = self.pages_and_host(input)?;
        let pfn = addr / PAGE_SIZE;
        let p = pages.get(&self.hw, pfn);
        // A VM's page only while it shares it: an SMMU-assigned page's count is INVALID
        // (deviation `host_maps_smmu_pages`).
        let shared = p.count > 0 && (p.count != INVALID || mutant(Fault::HostMapsSmmuPage));
        if !(p.owner == INVALID
            || p.owner == HOSTVISOR
            || shared
            || mutant(Fault::MapSkipsOwnerCheck))
        {
            return self.fail(&[S2PAGE_ID]);
        }
        if p.owner == INVALID
            && !self.platform.is_mmio(addr)
            && !mutant(Fault::DeviceOutsideMmioMapped)
        {
            // Not RAM and no device the platform declares (deviation `device_outside_mmio`).
            return self.fail(&[S2PAGE_ID]);
        }
        let attrs = if p.owner == INVALID {
            PAGE_S2_DEVICE | S2_RDWR
        } else {
            PAGE_S2_KERNEL
        };
        if !self.mmap_in(&mut host, HOSTVISOR, addr, 3, (pfn * PAGE_SIZE) | attrs) {
            return self.fail(&[S2PAGE_ID, NPT_ID]);
        }
        Ok(())
    }

    /// `local_clear_vm_page`: scrub a page of a powered-off VM and give it back to the host.
    pub fn local_clear_vm_page(&self, vmid: u32, pfn: u64, input: &mut impl Untrusted) -> Res {
        let (mut pages, mut host) = self.pages_and_host(input)?;
        self.local_clear_vm_page_held(&mut pages, &mut host, vmid, pfn)
    }

    /// [`Core::local_clear_vm_page`] with S2PAGE and the host's NPT held.
    pub(crate) fn local_clear_vm_page_held(
        &self,
        pages: &mut S2Pages,
        host: &mut Pool,
        vmid: u32,
        pfn: u64,
    ) -> Res {
        if pages.get(&self.hw, pfn).owner != vmid {
            return Ok(());
        }
        if !self.unmap_host(host, pfn) {
            return self.fail(&[S2PAGE_ID, NPT_ID]);
        }
        if mutant(Fault::ScrubFirstWordOnly) {
            self.hw.write64(pfn * PAGE_SIZE, 0);
        } else {
            self.hw.zero_page(pfn * PAGE_SIZE);
        }
        let back = S2Page {
            owner: HOSTVISOR,
            count: 0,
            gfn: pfn + SMMU_HOST_OFFSET,
        };
        pages.set(&self.hw, pfn, back);
        Ok(())
    }

    /// `local_assign_pfn_to_vm`: a free host page becomes `vmid`'s at `gfn`. The VM gets the
    /// page as the host left it: its first word is recorded as the untrusted value.
    pub fn local_assign_pfn_to_vm(
        &self,
        vmid: u32,
        gfn: u64,
        pfn: u64,
        input: &mut impl Untrusted,
    ) -> Res {
        let (mut pages, mut host) = self.pages_and_host(input)?;
        self.local_assign_pfn_to_vm_held(&mut pages, &mut host, vmid, gfn, pfn, input)
    }

    /// [`Core::local_assign_pfn_to_vm`] with S2PAGE and the host's NPT held.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn local_assign_pfn_to_vm_held(
        &self,
        pages: &mut S2Pages,
        host: &mut Pool,
        vmid: u32,
        gfn: u64,
        pfn: u64,
        input: &mut impl Untrusted,
    ) -> Res {
        let p = pages.get(&self.hw, pfn);
        if p.owner == HOSTVISOR || (mutant(Fault::AssignSkipsOwnerCheck) && p.owner != vmid) {
            if p.count != 0 {
                return self.fail(&[S2PAGE_ID]);
            }
            let mine = S2Page {
                owner: vmid,
                count: 0,
                gfn,
            };
            pages.set(&self.hw, pfn, mine);
            if !self.unmap_host(host, pfn) {
                return self.fail(&[S2PAGE_ID, NPT_ID]);
            }
            input.record(vmid, self.hw.read64(pfn * PAGE_SIZE));
            Ok(())
        } else if p.owner == vmid && (p.gfn == INVALID64 || p.gfn == gfn) {
            let count = if p.count == INVALID { 0 } else { p.count };
            let mine = S2Page {
                owner: vmid,
                count,
                gfn,
            };
            pages.set(&self.hw, pfn, mine);
            Ok(())
        } else {
            self.fail(&[S2PAGE_ID])
        }
    }

    /// `local_map_pfn_vm`: install the VM's stage-2 leaf (4 KiB page or 2 MiB block).
    pub fn local_map_pfn_vm(
        &self,
        vmid: u32,
        addr: u64,
        pte: u64,
        level: u32,
        input: &mut impl Untrusted,
    ) -> Res {
        let mut npt = self.take(&self.npt[vmid as usize], input)?;
        let pa = phys_page(pte);
        let (leaf, lvl) = if level == 2 {
            ((pa | PAGE_S2_KERNEL) & !PMD_TABLE_BIT, 2)
        } else {
            (pa | PAGE_S2_KERNEL, 3)
        };
        if !self.mmap_in(&mut npt, vmid, addr, lvl, leaf) {
            return self.fail(&[NPT_ID + vmid]);
        }
        Ok(())
    }

    /// `local_grant_vm_page`: the VM shares its page with the host (never halts).
    pub fn local_grant_vm_page(&self, vmid: u32, pfn: u64, input: &mut impl Untrusted) -> Res {
        let (mut held, mut unheld);
        let pages: &mut S2Pages = if mutant(Fault::GrantSkipsS2PageLock) {
            unheld = self.s2page.read(); // the metadata, but not the right to it
            &mut unheld
        } else {
            held = self.take(&self.s2page, input)?;
            let p = held.get(&self.hw, pfn);
            if mutant(Fault::GrantTearsOwner) && p.owner == vmid {
                // The update split over two holds of S2PAGE: between them the page has
                // no owner, for any CPU that takes the lock (the end state is right).
                held.set(
                    &self.hw,
                    pfn,
                    S2Page {
                        owner: INVALID,
                        ..p
                    },
                );
                drop(held);
                held = self.take(&self.s2page, input)?;
                held.set(&self.hw, pfn, p);
            }
            &mut held
        };
        self.local_grant_vm_page_held(pages, vmid, pfn)
    }

    /// [`Core::local_grant_vm_page`] with S2PAGE held.
    pub(crate) fn local_grant_vm_page_held(&self, pages: &mut S2Pages, vmid: u32, pfn: u64) -> Res {
        let p = pages.get(&self.hw, pfn);
        if (p.owner == vmid || mutant(Fault::GrantSkipsOwnerCheck)) && p.count < MAX_SHARE_COUNT {
            pages.set_count(&self.hw, pfn, p, p.count + 1);
        }
        Ok(())
    }

    /// `local_revoke_vm_page`: one share less; at zero the host loses its mapping. The page's
    /// first word (written by the host while shared) is recorded as untrusted input.
    pub fn local_revoke_vm_page(&self, vmid: u32, pfn: u64, input: &mut impl Untrusted) -> Res {
        let (mut pages, mut host) = self.pages_and_host(input)?;
        self.local_revoke_vm_page_held(&mut pages, &mut host, vmid, pfn, input)
    }

    /// [`Core::local_revoke_vm_page`] with S2PAGE and the host's NPT held.
    pub(crate) fn local_revoke_vm_page_held(
        &self,
        pages: &mut S2Pages,
        host: &mut Pool,
        vmid: u32,
        pfn: u64,
        input: &mut impl Untrusted,
    ) -> Res {
        let p = pages.get(&self.hw, pfn);
        if !(p.owner == vmid && p.count > 0 && p.count != INVALID) {
            return Ok(());
        }
        pages.set_count(&self.hw, pfn, p, p.count - 1);
        if p.count != 1 {
            return Ok(());
        }
        if !mutant(Fault::RevokeKeepsHostMapping) && !self.unmap_host(host, pfn) {
            return self.fail(&[S2PAGE_ID, NPT_ID]);
        }
        input.record(vmid, self.hw.read64(pfn * PAGE_SIZE));
        Ok(())
    }

    pub(crate) fn bank(index: u32, cbndx: u32) -> usize {
        (index * BANKS + cbndx) as usize
    }

    pub(crate) fn is_vm(v: u32) -> bool {
        0 < v && v < COREVISOR
    }

    /// SMMU, then the INFO lock of the bank's owner if it has one: the lock set of the
    /// SMMU operations, taken in nesting order (the owner is read under SMMU).
    fn smmu_and_owner(
        &self,
        index: u32,
        cbndx: u32,
        input: &mut impl Untrusted,
    ) -> Res<BankAndOwner<'_, H>> {
        let banks = self.take(&self.smmu, input)?;
        let v = banks
            .get(Self::bank(index, cbndx))
            .copied()
            .unwrap_or(INVALID);
        let info = match self.vms.get(v as usize) {
            Some(l) => Some(self.take(l, input)?),
            None => None,
        };
        Ok((banks, v, info))
    }

    /// `local_free_smmu_pgd`: release a bank whose owner is powered off.
    pub fn local_free_smmu_pgd(&self, cbndx: u32, index: u32, input: &mut impl Untrusted) -> Res {
        let (mut banks, v, info) = self.smmu_and_owner(index, cbndx, input)?;
        if v == INVALID {
            return Ok(());
        }
        if info.map_or(UNUSED, |i| i.state) != POWEROFF {
            return self.fail(&[SMMU_ID]);
        }
        banks[Self::bank(index, cbndx)] = INVALID;
        if !self.smmu_hw_detach(index, cbndx, v) {
            return self.fail(&[SMMU_ID]);
        }
        Ok(())
    }

    /// `local_alloc_smmu_pgd`: give a free bank (of `num` on this SMMU) to `vmid`, with empty tables.
    pub fn local_alloc_smmu_pgd(
        &self,
        cbndx: u32,
        vmid: u32,
        index: u32,
        num: u32,
        input: &mut impl Untrusted,
    ) -> Res {
        let mut banks = self.take(&self.smmu, input)?;
        let info = self.take(&self.vms[vmid.min(COREVISOR) as usize], input)?;
        let spt = self.take(&self.spt, input)?;
        if cbndx >= num {
            return self.fail(&[SMMU_ID]);
        }
        if banks[Self::bank(index, cbndx)] != INVALID {
            return Ok(());
        }
        if Self::is_vm(vmid) && info.state == VERIFIED {
            return self.fail(&[INFO_ID + vmid, SMMU_ID]);
        }
        // A dead VM gets no bank: once CLEAR saw it with none, it keeps none (deviation
        // `clear_while_reachable`).
        if Self::is_vm(vmid) && info.state == POWEROFF && !mutant(Fault::ClearWhileReachable) {
            return self.fail(&[INFO_ID + vmid, SMMU_ID]);
        }
        banks[Self::bank(index, cbndx)] = vmid;
        smmu::clear_root(&self.hw, &spt, index, cbndx);
        if !self.smmu_hw_attach(index, cbndx, vmid) {
            return self.fail(&[SMMU_ID]);
        }
        Ok(())
    }

    /// `local_smmu_assign_page`: a free host page becomes the VM's, for its device at `gfn`.
    pub fn local_smmu_assign_page(
        &self,
        cbndx: u32,
        index: u32,
        pfn: u64,
        gfn: u64,
        input: &mut impl Untrusted,
    ) -> Res {
        let (_banks, v, info) = self.smmu_and_owner(index, cbndx, input)?;
        let (mut pages, mut host) = self.pages_and_host(input)?;
        if v == INVALID || !Self::is_vm(v) {
            return Ok(());
        }
        if info.map(|i| i.state) == Some(VERIFIED) {
            return self.fail(&[SMMU_ID, INFO_ID + v]);
        }
        let p = pages.get(&self.hw, pfn);
        if p.owner == v {
            return Ok(());
        }
        if (p.owner != HOSTVISOR || p.count != 0) && !mutant(Fault::SmmuAssignSkipsOwnerCheck) {
            return self.fail(&[SMMU_ID, INFO_ID + v, S2PAGE_ID]);
        }
        if !self.unmap_host(&mut host, pfn) {
            return self.fail(&[SMMU_ID, INFO_ID + v, S2PAGE_ID, NPT_ID]);
        }
        let theirs = S2Page {
            owner: v,
            count: INVALID,
            gfn,
        };
        pages.set(&self.hw, pfn, theirs);
        Ok(())
    }

    /// `local_smmu_map_page`: map `iova` in the bank, only to a page its owner owns at that gfn.
    pub fn local_smmu_map_page(
        &self,
        cbndx: u32,
        index: u32,
        iova: u64,
        pte: u64,
        input: &mut impl Untrusted,
    ) -> Res {
        let (_banks, v, info) = self.smmu_and_owner(index, cbndx, input)?;
        let mut pages = self.take(&self.s2page, input)?;
        let mut spt = self.take(&self.spt, input)?;
        if v == INVALID {
            return Ok(());
        }
        if Self::is_vm(v) && info.map(|i| i.state) == Some(VERIFIED) {
            return self.fail(&[SMMU_ID, INFO_ID + v]);
        }
        let pfn = phys_page(pte) / PAGE_SIZE;
        let p = pages.get(&self.hw, pfn);
        let bound = p.owner == v && p.gfn == iova / PAGE_SIZE;
        if !(bound || mutant(Fault::SmmuMapSkipsOwnerCheck)) {
            return self.fail(&[SMMU_ID, INFO_ID + v, S2PAGE_ID]);
        }
        let old = smmu::leaf(&self.hw, &spt, index, cbndx, iova);
        if !smmu::spt_map(&self.hw, &mut spt, index, cbndx, iova, pte) {
            return self.fail(&[SMMU_ID, INFO_ID + v, S2PAGE_ID, SPT_ID]);
        }
        // A leaf that changed may be cached by the SMMU.
        if old != 0 && old != pte && !self.smmu_hw_flush(index, v) {
            return self.fail(&[SMMU_ID]);
        }
        if p.owner == HOSTVISOR && p.count < EL2_SMMU_CFG_SIZE {
            pages.set_count(&self.hw, pfn, p, p.count + 1);
        }
        Ok(())
    }

    /// `local_smmu_clear`: unmap `iova` from the bank; a host page's mapping count drops.
    pub fn local_smmu_clear(
        &self,
        iova: u64,
        cbndx: u32,
        index: u32,
        input: &mut impl Untrusted,
    ) -> Res {
        let (_banks, v, info) = self.smmu_and_owner(index, cbndx, input)?;
        let mut pages = self.take(&self.s2page, input)?;
        let mut spt = self.take(&self.spt, input)?;
        if v == INVALID {
            return Ok(());
        }
        if Self::is_vm(v) && info.map_or(UNUSED, |i| i.state) >= VERIFIED {
            return self.fail(&[SMMU_ID, INFO_ID + v]);
        }
        let pte = smmu::leaf(&self.hw, &spt, index, cbndx, iova);
        if pte == 0 {
            return Ok(());
        }
        if !smmu::spt_map(&self.hw, &mut spt, index, cbndx, iova, 0) {
            return self.fail(&[SMMU_ID, INFO_ID + v, S2PAGE_ID, SPT_ID]);
        }
        // No device may keep using the removed translation (issue 13).
        if !self.smmu_hw_flush(index, v) {
            return self.fail(&[SMMU_ID]);
        }
        let pfn = phys_page(pte) / PAGE_SIZE;
        let p = pages.get(&self.hw, pfn);
        if p.owner == HOSTVISOR && p.count > 0 {
            pages.set_count(&self.hw, pfn, p, p.count - 1);
        }
        Ok(())
    }

    /// The bank's leaf for `iova` (SMMU_LPAE_IOVA_TO_PHYS), under SPT.
    pub fn smmu_iova_leaf(
        &self,
        index: u32,
        cbndx: u32,
        iova: u64,
        input: &mut impl Untrusted,
    ) -> Res<u64> {
        let spt = self.take(&self.spt, input)?;
        Ok(smmu::leaf(&self.hw, &spt, index, cbndx, iova))
    }
}
