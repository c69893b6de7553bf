//! `host_hvc_handler` (spec-digest §5.1): the host's hypercalls, each argument check exactly
//! as the seed's (a failed check halts), the result in the host's x0.

use super::*;
use crate::hw::Untrusted;

impl<H: Hw> Core<H> {
    /// A host `HVC` on `cpu` (x0 = call number, x1..x5 = arguments).
    pub fn host_hvc_handler(&mut self, cpu: usize, input: &mut impl Untrusted) -> Trap {
        if let Some(t) = self.admit(cpu, true) {
            return t;
        }
        let id = self.enter(cpu);
        self.host_hvc_dispatch(id, input);
        if !self.halted {
            self.leave(cpu, id);
        }
        self.outcome()
    }

    fn host_hvc_dispatch(&mut self, id: usize, input: &mut impl Untrusted) {
        let x = self.shadow[id].regs.x;
        let (a1, a2, a3, a4, a5) = (x[1], x[2], x[3], x[4], x[5]);
        // Arguments that pass their check fit the narrower types below.
        let (v1, v2, v3) = (a1 as u32, a2 as u32, a3 as u32);
        match x[0] {
            hvc::TIMER_SET_CNTVOFF => {}
            hvc::CLEAR_VM_S2_RANGE => {
                if !(is_vm(a1) && is_paddr(a2) && is_paddr(a3)) {
                    self.halt(&[]);
                } else if self.state(v1) == POWEROFF {
                    self.clear_vm_range(v1, a2 / PAGE_SIZE, a3 / PAGE_SIZE);
                }
            }
            hvc::SET_BOOT_INFO => {
                let end = a2.saturating_add(a3);
                if !(is_vm(a1) && is_paddr(a2) && is_paddr(a3) && is_paddr(end)) {
                    self.halt(&[]);
                } else {
                    self.local_set_boot_info(v1, a2, a3);
                }
            }
            hvc::REMAP_VM_IMAGE => {
                if !(is_vm(a1) && is_pfn(a2) && a3 < crate::vm_info::MAX_LOAD_INFO_NUM as u64) {
                    self.halt(&[]);
                } else {
                    self.local_remap_vm_image(v1, a2, v3);
                }
            }
            hvc::VERIFY_VM_IMAGE => {
                if !is_vm(a1) {
                    self.halt(&[]);
                } else {
                    self.verify_vm_image(v1, &x[2..10], input);
                }
            }
            hvc::SMMU_FREE_PGD => {
                if !(is_smmu_cfg(a1) && is_smmu(a2)) {
                    self.halt(&[]);
                } else {
                    self.local_free_smmu_pgd(v1, v2);
                }
            }
            hvc::SMMU_ALLOC_PGD => {
                if !(is_smmu_cfg(a1) && a2 < COREVISOR as u64 && is_smmu(a3)) {
                    self.halt(&[]);
                } else {
                    let num = self.smmu_banks(v3);
                    self.local_alloc_smmu_pgd(v1, v2, v3, num);
                }
            }
            hvc::SMMU_LPAE_MAP => {
                let ok = is_paddr(a1)
                    && is_paddr(a2)
                    && a3 < 1 << 63
                    && phys_page(a3) == 0
                    && is_smmu_cfg(a4)
                    && is_smmu(a5);
                if !ok {
                    self.halt(&[]);
                    return;
                }
                let (cb, index) = (a4 as u32, a5 as u32);
                if !self.local_smmu_assign_page(cb, index, a2 / PAGE_SIZE, a1 / PAGE_SIZE) {
                    // Only the allowed attributes of a3 (deviation `smmu_leaf_attrs_unchecked`).
                    let attrs = a3 & crate::smmu_hw::LEAF_ALLOWED;
                    let pte = phys_page(a2) | attrs | PTE_AF_OR_SH_IS;
                    self.local_smmu_map_page(cb, index, a1, pte);
                }
            }
            hvc::SMMU_LPAE_IOVA_TO_PHYS => {
                if !(is_paddr(a1) && is_smmu_cfg(a2) && is_smmu(a3)) {
                    self.halt(&[]);
                } else {
                    let pte = self.locked(&[SPT_ID], 0, |c| {
                        crate::smmu::leaf(&c.hw, &c.smmu_pool, v3, v2, a1)
                    });
                    self.shadow[id].regs.x[0] = phys_page(pte) + (a1 & 4095);
                }
            }
            hvc::SMMU_CLEAR => {
                if !(is_paddr(a1) && is_smmu_cfg(a2) && is_smmu(a3)) {
                    self.halt(&[]);
                } else {
                    self.local_smmu_clear(a1, v2, v3);
                }
            }
            hvc::PHYS_ADDR_IOREMAP => {
                // `a4 < 2^40` is checked before the sums that use it.
                let pages = a4.div_ceil(PAGE_SIZE);
                let ok = is_vm(a1)
                    && is_addr(a2)
                    && is_paddr(a3)
                    && is_paddr(a4)
                    && is_addr(a2 + pages * PAGE_SIZE)
                    && is_paddr(a3 + pages * PAGE_SIZE);
                if !ok {
                    self.halt(&[]);
                } else {
                    self.ioremap_range(v1, a2, a3, pages);
                }
            }
            hvc::REGISTER_KVM => {
                if let Some(new) = self.local_gen_vmid() {
                    self.local_register_kvm(new);
                    self.shadow[id].regs.x[0] = new as u64;
                }
            }
            hvc::REGISTER_VCPU => {
                if !(is_vm(a1) && is_vcpu(a2)) {
                    self.halt(&[]);
                } else {
                    self.local_register_vcpu(v1, v2);
                }
            }
            hvc::ENCRYPT_BUF => {
                if !(is_vm(a1) && is_paddr(a2) && is_paddr(a3)) {
                    self.halt(&[]);
                } else {
                    self.locked(&[S2PAGE_ID], (), |c| {
                        c.local_save_encrypt_buf(v1, a2, a3, input)
                    });
                }
            }
            hvc::DECRYPT_BUF => {
                if !(is_vm(a1) && is_paddr(a2)) {
                    self.halt(&[]);
                } else {
                    let ids = [INFO_ID + v1, S2PAGE_ID, NPT_ID];
                    self.locked(&ids, (), |c| c.local_load_decrypt_buf(v1, a2, a3, input));
                }
            }
            hvc::SAVE_CRYPT_VCPU => {
                if !(is_vm(a1) && is_vcpu(a2)) {
                    self.halt(&[]);
                } else {
                    let ids = [INFO_ID + v1, S2PAGE_ID];
                    self.locked(&ids, (), |c| c.local_save_encrypted_vcpu(v1, v2, a3, input));
                }
            }
            hvc::LOAD_CRYPT_VCPU => {
                if !(is_vm(a1) && is_vcpu(a2)) {
                    self.halt(&[]);
                } else {
                    let ids = [INFO_ID + v1];
                    self.locked(&ids, (), |c| {
                        c.local_load_encrypted_vcpu(v1, v2, a3, a4, input)
                    });
                }
            }
            _ => {}
        }
    }

    /// Context banks of SMMU `index` (0 for an SMMU the platform does not have).
    fn smmu_banks(&self, index: u32) -> u32 {
        if index < self.platform.smmu_num {
            self.platform.smmus[index as usize].2
        } else {
            0
        }
    }

    /// VERIFY_VM_IMAGE: with the VM's info lock held, a READY VM's image segments are moved
    /// into it in 2 MiB blocks (anything else halts); then the image's signature (x2..x9)
    /// decides: VERIFIED, or POWEROFF for good.
    fn verify_vm_image(&mut self, v: u32, sig: &[u64], input: &mut impl Untrusted) {
        // The VM's info lock is held through the whole load (the seed marks it taken).
        self.lock(&[INFO_ID + v]);
        self.poisoned |= 1 << (INFO_ID + v);
        if self.vms[v as usize].state != READY {
            self.halt(&[]);
            return;
        }
        if self.verify_and_load(v, input) {
            return;
        }
        let authentic = self.image_signature_ok(v, sig);
        input.record(HOSTVISOR, authentic as u64);
        self.local_verify_vm(v);
        if !authentic {
            self.local_set_vm_poweroff_locked(v);
        }
        self.unlock(&[INFO_ID + v]);
    }
}
