//! `vm_exit_handler` (spec-digest §5.4): any exit from a running VM. KCore handles what it
//! can without the host (system-register traps, share/unshare hypercalls) and resumes the
//! guest; everything else (WFx, stage-2 aborts, other hypercalls, IRQs) goes to the host,
//! which sees only the registers KCore chose to expose.

use super::*;

impl<H: Hw> Core<H> {
    /// An exit of the VM running on `cpu` (`ec` = exit code, ESR_EL2 = syndrome).
    /// (`handle` written out: an exit kcore handles in the VM inlines into the caller.)
    #[inline(always)]
    pub fn vm_exit_handler(&self, cpu: &mut Cpu, input: &mut impl Untrusted) -> Trap {
        if let Some(t) = self.refuse(cpu, false) {
            return t;
        }
        let r = self.vm_exit_steps(cpu, input);
        self.conclude(r)
    }

    #[inline(always)]
    fn vm_exit_steps(&self, cpu: &mut Cpu, input: &mut impl Untrusted) -> Res {
        let (vmid, vcpu) = (cpu.run.cur_vmid, cpu.run.cur_vcpuid);
        let id = Self::cur_ctxt(cpu);
        let hw = &cpu.regs.regs;
        // `enter` and `populate_fault` in one visit of the shadow: the VM's x0..x30 and
        // fault state; the dispatch reads them back from there, i.e. these values.
        {
            let mut s = self.take(&self.shadow[id], input)?;
            copy_gprs(&mut s.regs.x, &hw.x);
            s.regs.populate_fault(hw);
        }
        let (ec, call) = (hw.ec, (hw.esr_el2, hw.x[0], hw.x[2], hw.x[3]));
        cpu.run.icore = true;
        let to_host = match ec {
            ARM_EXCEPTION_TRAP => self.vm_exit_dispatcher(cpu, vmid, call, input)?,
            ARM_EXCEPTION_INTERRUPT => true,
            _ => return self.fail(&[]),
        };
        if !to_host {
            return self.leave(cpu, id, input);
        }
        self.exit_to_host(cpu, vmid, vcpu, id, input)
    }

    /// The exit goes to the host (out of line: the exits kcore handles in the VM stay short).
    #[inline(never)]
    fn exit_to_host(
        &self,
        cpu: &mut Cpu,
        vmid: u32,
        vcpu: u32,
        id: usize,
        input: &mut impl Untrusted,
    ) -> Res {
        self.prep_exit_vm(cpu, vmid, vcpu, id, input)?;
        self.switch_to_host(cpu, input)
    }

    /// Handles a guest trap at EL2 (its shadow's syndrome and x0, x2, x3); `true` = the
    /// host must see this exit.
    fn vm_exit_dispatcher(
        &self,
        cpu: &mut Cpu,
        vmid: u32,
        (esr, x0, x2, x3): (u64, u64, u64, u64),
        input: &mut impl Untrusted,
    ) -> Res<bool> {
        match (esr >> ESR_ELX_EC_SHIFT) & 63 {
            ESR_ELX_EC_SYS64 => {
                // Emulated as a no-op: skip the instruction.
                cpu.regs.regs.elr_el2 += 4;
                Ok(false)
            }
            ESR_ELX_EC_HVC64 => {
                let (call, addr, size) = (x0, x2, x3);
                let pages = size.div_ceil(PAGE_SIZE);
                let shares = call == hvc::KVM_SET_DESC_PFN || call == hvc::KVM_UNSET_DESC_PFN;
                if shares && pages > self.layout.ram_pages() {
                    // No VM owns more pages than the RAM has: a longer range is refused
                    // before any loop runs (deviation `share_loop_unbounded`).
                    return Ok(false);
                }
                match call {
                    hvc::KVM_SET_DESC_PFN => self.share_range(vmid, addr, pages, false, input)?,
                    hvc::KVM_UNSET_DESC_PFN => self.share_range(vmid, addr, pages, true, input)?,
                    _ => return Ok(true),
                };
                Ok(false)
            }
            // WFx, aborts and (deviation `guest_exception_halts`) every other class: the host
            // decides; no guest instruction halts the machine.
            _ => Ok(true),
        }
    }

    /// `prep_exit_vm`: save the vCPU, note what the host must do for it, deactivate it.
    fn prep_exit_vm(
        &self,
        cpu: &mut Cpu,
        vmid: u32,
        vcpu: u32,
        id: usize,
        input: &mut impl Untrusted,
    ) -> Res {
        let hw = &mut cpu.regs;
        let mut s = self.take(&self.shadow[id], input)?;
        s.regs.save_sysregs(&hw.regs);
        s.regs.fpsimd_save(&hw.regs);
        hw.traps.pmuserenr_el0 = 0;
        hw.traps.mdcr_el2 = 0;
        hw.traps.cptr_el2 = CPTR_EL2_DEFAULT;
        Self::timer_enable_traps(hw);
        let esr_now = hw.regs.esr_el2;
        let mut poweroff = false;
        if s.regs.ec == ARM_EXCEPTION_TRAP {
            match (s.regs.esr_el2 >> ESR_ELX_EC_SHIFT) & 63 {
                // The host resumes the vCPU after the WFx.
                ESR_ELX_EC_WFX => s.states.dirty = DIRTY_PC_FLAG,
                ESR_ELX_EC_HVC64 => {
                    poweroff = s.regs.x[0] & 0xFFFF_FFFF == hvc::PSCI_0_2_FN_SYSTEM_OFF;
                }
                ESR_ELX_EC_IABT_LOW | ESR_ELX_EC_DABT_LOW => {
                    // `prep_abort`: an MMIO access (below MAX_MMIO_ADDR) is emulated by the
                    // host; a read leaves the target register dirty for the host to fill.
                    input.record(vmid, esr_now);
                    let fault_ipa = (s.regs.hpfar_el2 >> 4) << 12;
                    if fault_ipa < MAX_MMIO_ADDR {
                        let read = esr_now & (ESR_ELX_WNR | ESR_ELX_S1PTW) == 0;
                        let rd = (esr_now >> ESR_ELX_SRT_SHIFT) & 31;
                        s.states.dirty |= DIRTY_PC_FLAG | if read { 1 << rd } else { 0 };
                    }
                }
                // Deviation `guest_exception_halts`: saved as it is for the host.
                _ => {}
            }
        }
        drop(s);
        if poweroff {
            self.local_set_vm_poweroff(vmid, input)?;
        }
        self.local_set_vcpu_inactive(vmid, vcpu, input)
    }

    /// `switch_to_host`: restore the host of this CPU, which resumes after its VCPU_RUN.
    fn switch_to_host(&self, cpu: &mut Cpu, input: &mut impl Untrusted) -> Res {
        let vttbr = self.vttbr(HOSTVISOR);
        let hw = &mut cpu.regs;
        self.with_ctxt(ctxt_id(HOSTVISOR, cpu.id as u32), input, |h| {
            hw.regs.vttbr_el2 = vttbr;
            hw.regs.hcr_el2 = HCR_HOST_NVHE_FLAGS;
            hw.regs.tpidr_el2 = 0;
            h.regs.restore_sysregs(&h.states, &mut hw.regs);
            h.regs.fpsimd_restore(&mut hw.regs);
            hw.regs.x = h.regs.x;
        })?;
        cpu.run = PerCpu::boot(cpu.id);
        Ok(())
    }
}
