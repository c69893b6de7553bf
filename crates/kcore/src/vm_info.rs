//! Per-VM records KCore keeps in its own memory (the seed's `VMInfo` and `CoreData`) and
//! the operations on them (`ConcurrentSpec`): VM and vCPU registration, boot images, device
//! mappings, vCPU activation, power-off. Arm-profile semantics.

use crate::consts::*;
use crate::hw::{Hw, Untrusted};
use crate::mutants::{mutant, Fault};
use crate::state::{Core, Res};

/// The records themselves are in [`crate::records`] (below `state`, which holds them);
/// re-exported here at their old paths.
pub use crate::records::{
    shared_kvm, shared_vcpu, CoreData, VmInfo, ACTIVE, MAX_LOAD_INFO_NUM, REMAP_END, REMAP_START,
    SHARED_DATA_START, VCPU_PER_VM,
};

fn pages(size: u64) -> Option<u64> {
    size.checked_add(4095).map(|s| s / PAGE_SIZE)
}

impl<H: Hw> Core<H> {
    /// `local_gen_vmid`: the next vmid; KCore halts when all are used.
    pub fn local_gen_vmid(&self, input: &mut impl Untrusted) -> Res<u32> {
        let mut cd = self.take(&self.core_data, input)?;
        let v = cd.next_vmid;
        if v >= COREVISOR {
            return self.fail(&[]);
        }
        cd.next_vmid = v + 1;
        Ok(v)
    }

    /// `local_register_kvm`: an UNUSED VM becomes READY.
    pub fn local_register_kvm(&self, v: u32, input: &mut impl Untrusted) -> Res {
        let mut vm = self.take(&self.vms[v as usize], input)?;
        if vm.state != UNUSED {
            return self.fail(&[]);
        }
        vm.kvm = shared_kvm(v);
        vm.state = READY;
        Ok(())
    }

    /// `local_register_vcpu`: an UNUSED vCPU of a READY VM becomes READY.
    pub fn local_register_vcpu(&self, v: u32, c: u32, input: &mut impl Untrusted) -> Res {
        let mut vm = self.take(&self.vms[v as usize], input)?;
        if !(vm.state == READY && vm.vcpu_state[c as usize] == UNUSED) {
            return self.fail(&[]);
        }
        vm.vcpu[c as usize] = shared_vcpu(v, c);
        vm.vcpu_state[c as usize] = READY;
        Ok(())
    }

    /// `local_set_vcpu_active`: a READY vCPU of a VERIFIED VM starts running.
    pub fn local_set_vcpu_active(&self, v: u32, c: u32, input: &mut impl Untrusted) -> Res {
        if mutant(Fault::VmInfoSkipsLock) {
            let mut vm = self.vms[v as usize].read(); // the record, not the right to it
            if !(vm.state == VERIFIED && vm.vcpu_state[c as usize] == READY) {
                return self.fail(&[]);
            }
            vm.vcpu_state[c as usize] = ACTIVE;
            crate::mutants::widen();
            *self.take(&self.vms[v as usize], input)? = vm;
            return Ok(());
        }
        let mut vm = self.take(&self.vms[v as usize], input)?;
        if !(vm.state == VERIFIED && vm.vcpu_state[c as usize] == READY) {
            return self.fail(&[]);
        }
        vm.vcpu_state[c as usize] = ACTIVE;
        Ok(())
    }

    /// `local_set_vcpu_inactive`: a running vCPU stops.
    pub fn local_set_vcpu_inactive(&self, v: u32, c: u32, input: &mut impl Untrusted) -> Res {
        if mutant(Fault::VmInfoSkipsLock) {
            let mut vm = self.vms[v as usize].read(); // the record, not the right to it
            if vm.vcpu_state[c as usize] != ACTIVE {
                return self.fail(&[]);
            }
            vm.vcpu_state[c as usize] = READY;
            crate::mutants::widen();
            *self.take(&self.vms[v as usize], input)? = vm;
            return Ok(());
        }
        let mut vm = self.take(&self.vms[v as usize], input)?;
        if vm.vcpu_state[c as usize] != ACTIVE {
            return self.fail(&[]);
        }
        vm.vcpu_state[c as usize] = READY;
        Ok(())
    }

    /// `local_set_vm_poweroff`.
    pub fn local_set_vm_poweroff(&self, v: u32, input: &mut impl Untrusted) -> Res {
        self.take(&self.vms[v as usize], input)?.state = POWEROFF;
        Ok(())
    }

    /// `local_set_boot_info`: record an image segment and reserve its remap range.
    pub fn local_set_boot_info(
        &self,
        v: u32,
        load_addr: u64,
        size: u64,
        input: &mut impl Untrusted,
    ) -> Res {
        let mut vm = self.take(&self.vms[v as usize], input)?;
        let mut cd = self.take(&self.core_data, input)?;
        if vm.state != READY {
            return self.fail(&[]);
        }
        let i = vm.next_load_info as usize;
        if i >= MAX_LOAD_INFO_NUM {
            return Ok(());
        }
        let remap = cd.next_remap_ptr;
        let end = pages(size)
            .and_then(|n| n.checked_mul(PAGE_SIZE))
            .and_then(|b| b.checked_add(remap));
        let end = match end {
            Some(e) if e < REMAP_END => e,
            _ => return self.fail(&[]),
        };
        cd.next_remap_ptr = end;
        vm.next_load_info += 1;
        vm.load_addr[i] = load_addr;
        vm.load_size[i] = size;
        vm.remap_addr[i] = remap;
        vm.mapped_pages[i] = 0;
        Ok(())
    }

    /// `local_remap_vm_image`: map the next page of segment `idx` into KCore's remap window.
    pub fn local_remap_vm_image(
        &self,
        v: u32,
        pfn: u64,
        idx: u32,
        input: &mut impl Untrusted,
    ) -> Res {
        let mut vm = self.take(&self.vms[v as usize], input)?;
        let mut npt = self.take(&self.npt[COREVISOR as usize], input)?;
        if vm.state != READY {
            return self.fail(&[INFO_ID + v]);
        }
        if idx >= vm.next_load_info {
            return Ok(());
        }
        let i = idx as usize;
        let mapped = vm.mapped_pages[i];
        if mapped >= pages(vm.load_size[i]).unwrap_or(0) {
            return Ok(());
        }
        let target = vm.remap_addr[i] + mapped * PAGE_SIZE;
        // `pfn` < 2^28: REMAP_VM_IMAGE's argument check (`is_pfn`, arm profile).
        let pte = pfn.wrapping_mul(PAGE_SIZE) | PAGE_HYP;
        if !self.mmap_in(&mut npt, COREVISOR, target, 3, pte) {
            return self.fail(&[INFO_ID + v, NPT_ID + COREVISOR]);
        }
        vm.mapped_pages[i] = mapped + 1;
        Ok(())
    }

    /// `local_map_io`: map a device page (never RAM) into a READY VM.
    pub fn local_map_io(&self, v: u32, gpa: u64, pa: u64, input: &mut impl Untrusted) -> Res {
        let vm = self.take(&self.vms[v as usize], input)?;
        let pages = self.take(&self.s2page, input)?;
        let mut npt = self.take(&self.npt[v as usize], input)?;
        if vm.state != READY {
            return self.fail(&[INFO_ID + v]);
        }
        if pages.get(&self.hw, pa / PAGE_SIZE).owner != INVALID {
            return Ok(());
        }
        if !self.platform.is_mmio(pa) {
            // Not a device the platform declares, e.g. KCore's own UART: skipped like RAM
            // (deviation `device_outside_mmio`).
            return Ok(());
        }
        if self.platform.is_smmu_window(pa) && !mutant(Fault::IoremapSmmuWindow) {
            // An SMMU's registers route every stream: mapped into a VM they would bypass
            // KCore's policing (deviation `ioremap_smmu_window`); skipped likewise.
            return Ok(());
        }
        if !self.mmap_in(
            &mut npt,
            v,
            gpa,
            3,
            phys_page(pa) | PAGE_S2_DEVICE | S2_RDWR,
        ) {
            return self.fail(&[INFO_ID + v, S2PAGE_ID, NPT_ID + v]);
        }
        Ok(())
    }

    /// `local_verify_vm` (defined by the seed; VERIFY_VM_IMAGE calls it holding the VM's
    /// info lock, `vm`): with the lock not marked taken, a READY VM is left as it is and any
    /// other halts; with it marked (poisoned, as the seed records it), the VM becomes
    /// VERIFIED and the mark is cleared.
    pub fn local_verify_vm(&self, v: u32, input: &mut impl Untrusted) -> Res {
        let mut vm = self.take(&self.vms[v as usize], input)?;
        self.local_verify_vm_held(v, &mut vm)
    }

    /// [`Core::local_verify_vm`] with the VM's INFO lock already held (`vm`).
    pub(crate) fn local_verify_vm_held(&self, v: u32, vm: &mut VmInfo) -> Res {
        let marked = self.poisoned() & (1 << (INFO_ID + v)) != 0;
        if !marked {
            if vm.state == READY {
                return Ok(());
            }
            return self.fail(&[INFO_ID + v]);
        }
        vm.state = VERIFIED;
        self.mark_poisoned(INFO_ID + v, false);
        Ok(())
    }
}
