//! The seed's ownership operations with their locks: each `local_*` takes the ticket locks
//! the spec's atomic step relies on (`rely` in TrapHandlerSpec; spec-digest §1.11), in the
//! nesting order of `lock.rs`, runs the operation (`*_locked`), and releases them. A halt
//! leaves the locks it held taken for good: they are what the spec poisons, and `halt`
//! checks that every lock it poisons is one the step holds.

use crate::consts::*;
use crate::hw::{Hw, Untrusted};
use crate::lock::rank;
use crate::mem_ops::Core;

impl<H: Hw> Core<H> {
    /// Takes `ids` (in nesting order). A lock this CPU already holds is a KCore bug: taking
    /// it again would spin for ever.
    pub(crate) fn lock(&mut self, ids: &[u32]) {
        let top = (0..64)
            .filter(|i| self.held & (1 << i) != 0)
            .map(rank)
            .max();
        for &id in ids {
            assert!(self.held & (1 << id) == 0, "lock {id} taken twice");
            assert!(
                top.is_none_or(|t| rank(id) > t),
                "lock {id} taken out of order"
            );
            self.held |= 1 << id;
        }
        self.locks.acquire(ids);
    }

    /// Releases `ids`, unless KCore halted while holding them.
    pub(crate) fn unlock(&mut self, ids: &[u32]) {
        if self.halted {
            return;
        }
        self.locks.release(ids);
        for &id in ids {
            self.held &= !(1 << id);
        }
    }

    /// Runs `f` with `ids` held; after a halt nothing runs and `halted` is returned.
    pub(crate) fn locked<R>(
        &mut self,
        ids: &[u32],
        halted: R,
        f: impl FnOnce(&mut Self) -> R,
    ) -> R {
        if self.halted {
            return halted;
        }
        self.lock(ids);
        let r = f(self);
        self.unlock(ids);
        r
    }

    /// `INFO_ID + v` for a principal, nothing for a bank with no owner.
    fn info(v: u32) -> Option<u32> {
        (v <= COREVISOR).then(|| INFO_ID + v)
    }

    fn bank_owner(&self, index: u32, cbndx: u32) -> u32 {
        self.smmu_vmid
            .get(Self::bank(index, cbndx))
            .copied()
            .unwrap_or(INVALID)
    }

    pub fn local_map_host(&mut self, addr: u64) -> bool {
        self.locked(&[S2PAGE_ID, NPT_ID], true, |c| {
            c.local_map_host_locked(addr)
        })
    }

    pub fn local_clear_vm_page(&mut self, vmid: u32, pfn: u64) -> bool {
        self.locked(&[S2PAGE_ID, NPT_ID], true, |c| {
            c.local_clear_vm_page_locked(vmid, pfn)
        })
    }

    pub fn local_assign_pfn_to_vm(
        &mut self,
        vmid: u32,
        gfn: u64,
        pfn: u64,
        input: &mut impl Untrusted,
    ) -> bool {
        self.locked(&[S2PAGE_ID, NPT_ID], true, |c| {
            c.local_assign_pfn_to_vm_locked(vmid, gfn, pfn, input)
        })
    }

    pub fn local_map_pfn_vm(&mut self, vmid: u32, addr: u64, pte: u64, level: u32) -> bool {
        self.locked(&[NPT_ID + vmid], true, |c| {
            c.local_map_pfn_vm_locked(vmid, addr, pte, level)
        })
    }

    pub fn local_grant_vm_page(&mut self, vmid: u32, pfn: u64) -> bool {
        self.locked(&[S2PAGE_ID], true, |c| {
            c.local_grant_vm_page_locked(vmid, pfn)
        })
    }

    pub fn local_revoke_vm_page(
        &mut self,
        vmid: u32,
        pfn: u64,
        input: &mut impl Untrusted,
    ) -> bool {
        self.locked(&[S2PAGE_ID, NPT_ID], true, |c| {
            c.local_revoke_vm_page_locked(vmid, pfn, input)
        })
    }

    pub fn local_free_smmu_pgd(&mut self, cbndx: u32, index: u32) -> bool {
        let owner = Self::info(self.bank_owner(index, cbndx));
        let ids: &[u32] = match owner {
            Some(i) => &[SMMU_ID, i],
            None => &[SMMU_ID],
        };
        self.locked(ids, true, |c| c.local_free_smmu_pgd_locked(cbndx, index))
    }

    pub fn local_alloc_smmu_pgd(&mut self, cbndx: u32, vmid: u32, index: u32, num: u32) -> bool {
        let ids = [SMMU_ID, INFO_ID + vmid.min(COREVISOR), SPT_ID];
        self.locked(&ids, true, |c| {
            c.local_alloc_smmu_pgd_locked(cbndx, vmid, index, num)
        })
    }

    pub fn local_smmu_assign_page(&mut self, cbndx: u32, index: u32, pfn: u64, gfn: u64) -> bool {
        let ids: &[u32] = match Self::info(self.bank_owner(index, cbndx)) {
            Some(i) => &[SMMU_ID, i, S2PAGE_ID, NPT_ID],
            None => &[SMMU_ID, S2PAGE_ID, NPT_ID],
        };
        self.locked(ids, true, |c| {
            c.local_smmu_assign_page_locked(cbndx, index, pfn, gfn)
        })
    }

    pub fn local_smmu_map_page(&mut self, cbndx: u32, index: u32, iova: u64, pte: u64) -> bool {
        let ids: &[u32] = match Self::info(self.bank_owner(index, cbndx)) {
            Some(i) => &[SMMU_ID, i, S2PAGE_ID, SPT_ID],
            None => &[SMMU_ID, S2PAGE_ID, SPT_ID],
        };
        self.locked(ids, true, |c| {
            c.local_smmu_map_page_locked(cbndx, index, iova, pte)
        })
    }

    pub fn local_smmu_clear(&mut self, iova: u64, cbndx: u32, index: u32) -> bool {
        let ids: &[u32] = match Self::info(self.bank_owner(index, cbndx)) {
            Some(i) => &[SMMU_ID, i, S2PAGE_ID, SPT_ID],
            None => &[SMMU_ID, S2PAGE_ID, SPT_ID],
        };
        self.locked(ids, true, |c| c.local_smmu_clear_locked(iova, cbndx, index))
    }

    pub fn local_gen_vmid(&mut self) -> Option<u32> {
        self.locked(&[CORE_ID], None, |c| c.local_gen_vmid_locked())
    }

    pub fn local_register_kvm(&mut self, v: u32) -> bool {
        self.locked(&[INFO_ID + v], true, |c| c.local_register_kvm_locked(v))
    }

    pub fn local_register_vcpu(&mut self, v: u32, vcpu: u32) -> bool {
        self.locked(&[INFO_ID + v], true, |c| {
            c.local_register_vcpu_locked(v, vcpu)
        })
    }

    pub fn local_set_vcpu_active(&mut self, v: u32, vcpu: u32) -> bool {
        self.locked(&[INFO_ID + v], true, |c| {
            c.local_set_vcpu_active_locked(v, vcpu)
        })
    }

    pub fn local_set_vcpu_inactive(&mut self, v: u32, vcpu: u32) -> bool {
        self.locked(&[INFO_ID + v], true, |c| {
            c.local_set_vcpu_inactive_locked(v, vcpu)
        })
    }

    pub fn local_set_vm_poweroff(&mut self, v: u32) -> bool {
        self.locked(&[INFO_ID + v], true, |c| c.local_set_vm_poweroff_locked(v))
    }

    pub fn local_set_boot_info(&mut self, v: u32, load_addr: u64, size: u64) -> bool {
        self.locked(&[INFO_ID + v, CORE_ID], true, |c| {
            c.local_set_boot_info_locked(v, load_addr, size)
        })
    }

    pub fn local_remap_vm_image(&mut self, v: u32, pfn: u64, idx: u32) -> bool {
        self.locked(&[INFO_ID + v, NPT_ID + COREVISOR], true, |c| {
            c.local_remap_vm_image_locked(v, pfn, idx)
        })
    }

    pub fn local_map_io(&mut self, v: u32, gpa: u64, pa: u64) -> bool {
        self.locked(&[INFO_ID + v, S2PAGE_ID, NPT_ID + v], true, |c| {
            c.local_map_io_locked(v, gpa, pa)
        })
    }

    /// VERIFY_VM_IMAGE calls it with the VM's info lock held; called on its own, it takes it.
    pub fn local_verify_vm(&mut self, v: u32) -> bool {
        let info = INFO_ID + v;
        let ids: &[u32] = if self.held & (1 << info) != 0 {
            &[]
        } else {
            &[info]
        };
        self.locked(ids, true, |c| c.local_verify_vm_locked(v))
    }
}
