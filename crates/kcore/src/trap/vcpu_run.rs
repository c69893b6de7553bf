//! `host_vcpu_run_handler` (spec-digest §5.3): the host asks KCore to run a vCPU.
//!
//! The host's request, in its registers (`docs/kcore-abi.md`): x0 = VCPU_RUN, x1 = vmid,
//! x2 = vcpu; a proposed stage-2 mapping for the vCPU's last fault in x3 = gpa (0: none),
//! x4 = pte, x5 = level; on a first run x6 = entry pc, x7 = pstate; on a resume after an
//! emulated MMIO read, x8, x9, ... = the new values of the vCPU's dirty registers in
//! increasing register order. All of it is untrusted and recorded as it is read.

use super::*;
use crate::ctxt::{idx, reg_desc};
use crate::mutants::{mutant, Fault};

impl<H: Hw> Core<H> {
    /// The host runs a vCPU on `cpu`.
    pub fn host_vcpu_run_handler(&self, cpu: &mut Cpu, input: &mut impl Untrusted) -> Trap {
        self.handle(cpu, true, |cpu| {
            self.vcpu_run_switch_to_core(cpu, input)?;
            self.vcpu_run_process(cpu, input)?;
            self.vcpu_run_switch_to_vm(cpu, input)
        })
    }

    /// `vcpu_run_swith_to_core`: save the host's registers and its return state, pick the VM.
    fn vcpu_run_switch_to_core(&self, cpu: &mut Cpu, input: &mut impl Untrusted) -> Res {
        let host = ctxt_id(HOSTVISOR, cpu.run.cur_vcpuid);
        let hw = &cpu.regs;
        let vmid = hw.regs.x[1];
        if !is_vm(vmid) {
            return self.fail(&[]);
        }
        self.with_ctxt(host, input, |s| {
            s.regs.x = hw.regs.x;
            s.regs.save_sysregs(&hw.regs);
            s.regs.fpsimd_save(&hw.regs);
            s.states.pc = hw.regs.elr_el2;
            s.states.pstate = hw.regs.spsr_el2;
        })?;
        cpu.run = PerCpu {
            cur_vmid: vmid as u32,
            cur_vcpuid: NO_VCPU,
            ihost: true,
            icore: true,
        };
        Ok(())
    }

    /// `vcpu_run_process`: activate the vCPU; reset it on its first run, else finish the
    /// host's work on its last exit and install the mapping the host proposes.
    fn vcpu_run_process(&self, cpu: &mut Cpu, input: &mut impl Untrusted) -> Res {
        let vmid = cpu.run.cur_vmid;
        let host = &cpu.regs.regs.x;
        let vcpu = host[2];
        input.record_core(vmid, vcpu);
        if !is_vcpu(vcpu) {
            return self.fail(&[]);
        }
        let vcpu = vcpu as u32;
        cpu.run.cur_vcpuid = vcpu;
        self.local_set_vcpu_active(vmid, vcpu, input)?;
        let id = ctxt_id(vmid, vcpu);
        if self.with_ctxt(id, input, |s| s.states.dirty)? == INVALID64 {
            let vm = self.take(&self.vms[vmid as usize], input)?;
            return self.vcpu_first_run(cpu, vmid, vcpu, &vm, input);
        }
        let first = if mutant(Fault::MmioResultsFromX9) {
            9
        } else {
            8
        };
        let mut hostvals = host[first..].iter();
        let mut s = self.take(&self.shadow[id], input)?;
        let dirty = s.states.dirty;
        if s.regs.ec == ARM_EXCEPTION_TRAP {
            // `sync_dirty_to_shadow`: the host emulated an MMIO read into these registers.
            for i in 0..31 {
                if dirty & (1 << i) != 0 {
                    let v = hostvals.next().copied().unwrap_or(0);
                    input.record(vmid, v);
                    s.set_shadow(i, v);
                }
            }
        }
        if dirty & PENDING_EXCEPT_INJECT_FLAG != 0 {
            s.update_exception_gp_regs();
        }
        if dirty & DIRTY_PC_FLAG != 0 {
            s.states.pc = s.states.pc.wrapping_add(4);
        }
        s.states.dirty = 0;
        s.regs.far_el2 = 0;
        drop(s);
        let gpa = host[3];
        input.record_core(vmid, gpa);
        if (PAGE_SIZE..KVM_ADDR_SPACE).contains(&gpa) {
            let (pte, level) = (host[4], host[5]);
            input.record_core(vmid, pte);
            input.record_core(vmid, level);
            let level = u32::try_from(level).unwrap_or(u32::MAX);
            return self.prot_and_map_vm_s2pt(vmid, gpa, pte, level, input);
        }
        Ok(())
    }

    /// First run (the VM's INFO lock held, `vm`): a restored vCPU just starts; a fresh one
    /// starts at an entry point inside its verified image with cleared registers and reset
    /// system registers.
    fn vcpu_first_run(
        &self,
        cpu: &Cpu,
        vmid: u32,
        vcpu: u32,
        vm: &crate::vm_info::VmInfo,
        input: &mut impl Untrusted,
    ) -> Res {
        let id = ctxt_id(vmid, vcpu);
        if vm.inc_exe != 0 {
            return self.with_ctxt(id, input, |s| s.states.dirty = 0);
        }
        let host = &cpu.regs.regs.x;
        let pc = host[6];
        input.record(vmid, pc);
        let inside = (0..vm.next_load_info as usize)
            .any(|i| pc >= vm.load_addr[i] && pc - vm.load_addr[i] < vm.load_size[i]);
        if !inside {
            return self.fail(&[]);
        }
        let pstate = host[7];
        input.record(vmid, pstate);
        let actlr = cpu.regs.regs.actlr_el1;
        let mut s = self.take(&self.shadow[id], input)?;
        s.regs.x = [0; 31];
        s.states.pc = pc;
        s.states.pstate = pstate;
        s.regs.fp_q = [0; 32];
        s.regs.fp_fpsr = 0;
        s.regs.fp_fpcr = 0;
        for i in idx::SYSREGS_START..idx::SYSREGS_START + idx::SHADOW_SYS_REGS_SIZE {
            let v = match i {
                idx::MPIDR_EL1 => {
                    let c = vcpu as u64;
                    ((c & 15) | ((c >> 4) & 255) << 8 | ((c >> 12) & 255) << 16) + (1 << 31)
                }
                idx::ACTLR_EL1 => {
                    input.record(vmid, actlr);
                    actlr
                }
                // ELR_EL2 is the return address, not EL1 state (deviation `reset_covers_elr_el2`).
                idx::ELR_EL2 => continue,
                _ => reg_desc(i),
            };
            s.set_shadow(i, v);
        }
        s.states.dirty = 0;
        Ok(())
    }

    /// `vcpu_run_switch_to_vm`: load the vCPU into the CPU, trap what a VM must not do, enter.
    fn vcpu_run_switch_to_vm(&self, cpu: &mut Cpu, input: &mut impl Untrusted) -> Res {
        let vmid = cpu.run.cur_vmid;
        let vttbr = self.vttbr(vmid);
        let id = ctxt_id(vmid, cpu.run.cur_vcpuid);
        let hw = &mut cpu.regs;
        self.with_ctxt(id, input, |s| {
            hw.regs.vttbr_el2 = vttbr;
            hw.regs.tpidr_el2 = s.regs.tpidr_el2;
            hw.regs.hcr_el2 = HCR_HYPSEC_VM_FLAGS;
            Self::timer_enable_traps(hw);
            hw.traps.pmuselr_el0 = 0;
            hw.traps.pmuserenr_el0 = ARMV8_PMU_USERENR_MASK;
            hw.traps.mdcr_el2 = HYPSEC_MDCR_EL2_FLAG;
            hw.traps.cptr_el2 = CPTR_VM;
            s.regs.restore_sysregs(&s.states, &mut hw.regs);
            s.regs.fpsimd_restore(&mut hw.regs);
            hw.regs.x = s.regs.x;
        })?;
        cpu.run.icore = false;
        cpu.run.ihost = false;
        Ok(())
    }
}
