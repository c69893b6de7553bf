//! `host_hvc_handler` (spec-digest §5.1): the host's hypercalls, each argument check exactly
//! as the seed's (a failed check halts), the result in the host's x0.

use super::*;

impl<H: Hw> Core<H> {
    /// A host `HVC` on `cpu` (x0 = call number, x1..x5 = arguments).
    /// (`handle` written out: the null call's whole path inlines into the caller.)
    #[inline(always)]
    pub fn host_hvc_handler(&self, cpu: &mut Cpu, input: &mut impl Untrusted) -> Trap {
        if let Some(t) = self.refuse(cpu, true) {
            return t;
        }
        let r = self.host_hvc_steps(cpu, input);
        self.conclude(r)
    }

    #[inline(always)]
    fn host_hvc_steps(&self, cpu: &mut Cpu, input: &mut impl Untrusted) -> Res {
        let id = self.enter(cpu, input)?;
        self.host_hvc_dispatch(cpu, id, input)?;
        self.leave(cpu, id, input)
    }

    #[inline(always)]
    fn host_hvc_dispatch(&self, cpu: &Cpu, id: usize, input: &mut impl Untrusted) -> Res {
        match cpu.regs.regs.x[0] {
            hvc::TIMER_SET_CNTVOFF => Ok(()),
            _ => self.host_hvc_call(cpu, id, input),
        }
    }

    /// The calls that do something, out of line: a null call's path stays short, and its
    /// frame does not carry theirs.
    #[inline(never)]
    fn host_hvc_call(&self, cpu: &Cpu, id: usize, input: &mut impl Untrusted) -> Res {
        let x = &cpu.regs.regs.x;
        let (a1, a2, a3, a4, a5) = (x[1], x[2], x[3], x[4], x[5]);
        // Arguments that pass their check fit the narrower types below.
        let (v1, v2, v3) = (a1 as u32, a2 as u32, a3 as u32);
        match x[0] {
            hvc::TIMER_SET_CNTVOFF => Ok(()),
            hvc::CLEAR_VM_S2_RANGE => {
                // No VM owns more pages than the RAM has (deviation `share_loop_unbounded`).
                if !(is_vm(a1) && is_paddr(a2) && is_paddr(a3))
                    || a3 / PAGE_SIZE > self.layout.ram_pages()
                {
                    return self.fail(&[]);
                }
                self.clear_vm_s2_range(v1, a2 / PAGE_SIZE, a3 / PAGE_SIZE, input)
            }
            hvc::SET_BOOT_INFO => {
                let end = a2.saturating_add(a3);
                if !(is_vm(a1) && is_paddr(a2) && is_paddr(a3) && is_paddr(end)) {
                    return self.fail(&[]);
                }
                self.local_set_boot_info(v1, a2, a3, input)
            }
            hvc::REMAP_VM_IMAGE => {
                if !(is_vm(a1) && is_pfn(a2) && a3 < crate::vm_info::MAX_LOAD_INFO_NUM as u64) {
                    return self.fail(&[]);
                }
                self.local_remap_vm_image(v1, a2, v3, input)
            }
            hvc::VERIFY_VM_IMAGE => {
                if !is_vm(a1) {
                    return self.fail(&[]);
                }
                self.verify_vm_image(v1, &x[2..10], input)
            }
            hvc::SMMU_FREE_PGD => {
                if !(is_smmu_cfg(a1) && is_smmu(a2)) {
                    return self.fail(&[]);
                }
                self.local_free_smmu_pgd(v1, v2, input)
            }
            hvc::SMMU_ALLOC_PGD => {
                if !(is_smmu_cfg(a1) && a2 < COREVISOR as u64 && is_smmu(a3)) {
                    return self.fail(&[]);
                }
                let num = self.smmu_banks(v3);
                self.local_alloc_smmu_pgd(v1, v2, v3, num, input)
            }
            hvc::SMMU_LPAE_MAP => {
                let ok = is_paddr(a1)
                    && is_paddr(a2)
                    && a3 < 1 << 63
                    && phys_page(a3) == 0
                    && is_smmu_cfg(a4)
                    && is_smmu(a5);
                if !ok {
                    return self.fail(&[]);
                }
                let (cb, index) = (a4 as u32, a5 as u32);
                self.local_smmu_assign_page(cb, index, a2 / PAGE_SIZE, a1 / PAGE_SIZE, input)?;
                // Only the allowed attributes of a3 (deviation `smmu_leaf_attrs_unchecked`).
                let attrs = a3 & crate::smmu_hw::LEAF_ALLOWED;
                let pte = phys_page(a2) | attrs | PTE_AF_OR_SH_IS;
                self.local_smmu_map_page(cb, index, a1, pte, input)
            }
            hvc::SMMU_LPAE_IOVA_TO_PHYS => {
                if !(is_paddr(a1) && is_smmu_cfg(a2) && is_smmu(a3)) {
                    return self.fail(&[]);
                }
                let pte = self.smmu_iova_leaf(v3, v2, a1, input)?;
                self.with_ctxt(id, input, |s| s.regs.x[0] = phys_page(pte) + (a1 & 4095))
            }
            hvc::SMMU_CLEAR => {
                if !(is_paddr(a1) && is_smmu_cfg(a2) && is_smmu(a3)) {
                    return self.fail(&[]);
                }
                self.local_smmu_clear(a1, v2, v3, input)
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
                // No VM gets more device pages than the platform declares (deviation
                // `share_loop_unbounded`).
                if !ok || pages > self.platform.declared_pages() {
                    return self.fail(&[]);
                }
                self.ioremap_range(v1, a2, a3, pages, input)
            }
            hvc::REGISTER_KVM => {
                let new = self.local_gen_vmid(input)?;
                self.local_register_kvm(new, input)?;
                self.with_ctxt(id, input, |s| s.regs.x[0] = new as u64)
            }
            hvc::REGISTER_VCPU => {
                if !(is_vm(a1) && is_vcpu(a2)) {
                    return self.fail(&[]);
                }
                self.local_register_vcpu(v1, v2, input)
            }
            hvc::ENCRYPT_BUF => {
                if !(is_vm(a1) && is_paddr(a2) && is_paddr(a3)) {
                    return self.fail(&[]);
                }
                self.local_save_encrypt_buf(v1, a2, a3, input)
            }
            hvc::DECRYPT_BUF => {
                if !(is_vm(a1) && is_paddr(a2)) {
                    return self.fail(&[]);
                }
                self.local_load_decrypt_buf(v1, a2, a3, input)
            }
            hvc::SAVE_CRYPT_VCPU => {
                if !(is_vm(a1) && is_vcpu(a2)) {
                    return self.fail(&[]);
                }
                self.local_save_encrypted_vcpu(v1, v2, a3, input)
            }
            hvc::LOAD_CRYPT_VCPU => {
                if !(is_vm(a1) && is_vcpu(a2)) {
                    return self.fail(&[]);
                }
                self.local_load_encrypted_vcpu(v1, v2, a3, a4, input)
            }
            _ => Ok(()),
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
    fn verify_vm_image(&self, v: u32, sig: &[u64], input: &mut impl Untrusted) -> Res {
        // The VM's info lock is held through the whole load (the seed marks it taken).
        let mut vm = self.take(&self.vms[v as usize], input)?;
        self.mark_poisoned(INFO_ID + v, true);
        if vm.state != READY {
            return self.fail(&[]);
        }
        self.verify_and_load_held(v, &vm, input)?;
        let authentic = self.image_signature_ok(&vm, sig);
        input.record(HOSTVISOR, authentic as u64);
        self.local_verify_vm_held(v, &mut vm)?;
        if !authentic {
            vm.state = POWEROFF; // `local_set_vm_poweroff`, its lock already held
        }
        Ok(())
    }
}
