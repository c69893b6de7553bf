//! Entry-point paths the scenarios do not take: a halted machine is inert, malformed trap
//! registers, SMMU register emulation cases, the restored-vCPU first run, unusual exits.

mod common;
use common::*;
use corevisor_check::engine::{ModelMachine, Outcome};
use corevisor_sim::scenario::Action;
use corevisor_spec::aux::*;
use corevisor_spec::consts::*;
use corevisor_spec::profile::{Profile, ProfileKind};
use corevisor_spec::state::*;
use corevisor_spec::trap_handler::*;
use corevisor_spec::{Machine, Z};

const ARM: &Profile = &Profile::ARM;

#[test]
fn a_halted_machine_is_inert() {
    let mut m = machine(ProfileKind::Arm);
    running_vm(&mut m);
    let mut s = m.view(0);
    s.halt = true;
    for r in [
        host_hvc_handler_spec(ARM, &s),
        host_npt_handler_spec(ARM, &s),
        host_vcpu_run_handler_spec(ARM, &s),
    ] {
        assert_eq!(r.as_ref(), Some(&s));
    }
    let mut g = m.view(1);
    g.halt = true;
    assert_eq!(vm_exit_handler_spec(ARM, &g).as_ref(), Some(&g));
    // Wrong mode: outside the contract.
    assert_eq!(vm_exit_handler_spec(ARM, &s), None);
    assert_eq!(host_hvc_handler_spec(ARM, &m.view(1)), None);
}

#[test]
fn host_fault_beyond_the_address_space_halts() {
    let mut s = Machine::default().initial_state(Profile::arm(), 0);
    s.regs.ctxt_regs.hpfar_el2 = 1 << 44;
    let r = host_npt_handler_spec(ARM, &s).unwrap();
    assert!(r.halt);
    assert_eq!(r.shared, s.shared);
}

/// A 32-bit access to an SMMU register (the width of all but a few of them).
fn mmio(m: &mut ModelMachine, addr: Z, value: Option<Z>) -> Outcome {
    let a = match value {
        Some(value) => Action::HostStore { addr, value },
        None => Action::HostLoad { addr },
    };
    let st = corevisor_sim::scenario::Step {
        size: Some(4),
        ..step(0, a)
    };
    m.step(&st).unwrap().result
}

#[test]
fn smmu_register_emulation() {
    let base = 0x0B00_0000;
    let mut m = machine(ProfileKind::Arm);
    assert_eq!(
        mmio(&mut m, base + 8, Some(0)),
        Outcome::Ok,
        "sCR2 with VMID field 0"
    );
    assert_eq!(
        mmio(&mut m, base + 0x10, Some(5)),
        Outcome::Ok,
        "other global register"
    );
    assert_eq!(
        mmio(&mut m, base + 0x2000, Some(5)),
        Outcome::Ok,
        "global space above GR1"
    );
    // CBAR n: a host bank takes a stage-2 context with VMID 0 (deviation smmu_cbar_loose:
    // never a VM's VMID); a VM's bank only takes a stage-2 context naming that VM; an
    // unassigned bank (owner INVALID) takes neither.
    assert_eq!(
        mmio(&mut m.clone(), base + 0x1004, Some(7)),
        Outcome::Halt,
        "unassigned bank 1"
    );
    ok(&hvc(&mut m, "SMMU_ALLOC_PGD", &[1, 0, 0]));
    assert_eq!(
        mmio(&mut m.clone(), base + 0x1004, Some(7)),
        Outcome::Halt,
        "host bank 1 with VMID 7"
    );
    assert_eq!(
        mmio(&mut m, base + 0x1004, Some(1 << 24)),
        Outcome::Ok,
        "host bank 1, VMID 0, an interrupt index"
    );
    ok(&hvc(&mut m, "REGISTER_KVM", &[]));
    ok(&hvc(&mut m, "SMMU_ALLOC_PGD", &[2, 1, 0]));
    assert_eq!(mmio(&mut m.clone(), base + 0x1008, Some(1)), Outcome::Ok);
    assert_eq!(mmio(&mut m.clone(), base + 0x1008, Some(2)), Outcome::Halt);
    assert_eq!(
        mmio(&mut m.clone(), base + 0x1008, Some(1 | (1 << 16))),
        Outcome::Halt,
        "not a stage-2 context"
    );
    assert_eq!(
        mmio(&mut m, base + 8, Some(3)),
        Outcome::Halt,
        "sCR2 with a VMID"
    );
    // A 2-byte read is not emulated.
    let mut s = Machine::default().initial_state(Profile::arm(), 0);
    s.regs.ctxt_regs.hpfar_el2 = (base >> 12) << 4;
    s.regs.ctxt_regs.esr_el2 = 1 << ESR_ELx_SAS_SHIFT;
    assert!(host_npt_handler_spec(ARM, &s).unwrap().halt);
}

#[test]
fn restored_vcpu_skips_the_reset() {
    let mut m = machine(ProfileKind::Arm);
    ready_vm(&mut m);
    ok(&hvc(&mut m, "LOAD_CRYPT_VCPU", &[1, 0]));
    ok(&hvc(&mut m, "VERIFY_VM_IMAGE", &[1]));
    ok(&run(&mut m, 1, 1, 0, Some((0, 0, 0))));
    let c = m.global.shadow_ctxts.get(ctxt_id(1, 0));
    assert_eq!(c.ctxt_states.dirty, 0);
    assert_eq!(c.ctxt_regs.mpidr_el1, 0, "no reset: MPIDR not written");
}

#[test]
fn run_refusals() {
    let mut m = machine(ProfileKind::Arm);
    running_vm(&mut m);
    let mut h = m.clone();
    assert_eq!(
        run(&mut h, 0, 1, 8, None).result,
        Outcome::Halt,
        "vcpu id 8"
    );
    // An image segment that was registered but never remapped cannot be loaded.
    let mut m = machine(ProfileKind::Arm);
    ok(&hvc(&mut m, "REGISTER_KVM", &[]));
    ok(&hvc(&mut m, "SET_BOOT_INFO", &[1, LOAD + 0x1000, 4096]));
    assert_eq!(hvc(&mut m, "VERIFY_VM_IMAGE", &[1]).result, Outcome::Halt);
}

#[test]
fn unusual_exits() {
    let mut m = machine(ProfileKind::Arm);
    running_vm(&mut m);
    // An exit code that is neither a trap nor an interrupt halts.
    let mut s = m.view(1);
    s.regs.ctxt_regs.ec = 7;
    assert!(vm_exit_handler_spec(ARM, &s).unwrap().halt);
    // A guest HVC that is neither a share call nor PSCI SYSTEM_OFF goes to the host.
    let mut s = m.view(1);
    s.regs.ctxt_regs.ec = ARM_EXCEPTION_TRAP;
    s.regs.ctxt_regs.esr_el2 = ESR_ELx_EC_HVC64 << ESR_ELx_EC_SHIFT;
    s.regs.ctxt_regs.x[0] = 0x8400_0000;
    let r = vm_exit_handler_spec(ARM, &s).unwrap();
    assert!(!r.halt && r.ihost);
    assert_eq!(r.shared.vminfos.get(1).VS.vm_state, VERIFIED);
    // prep_exit_vm with another class (a BRK): the seed halts (its dispatcher never hands it
    // one); arm saves the vCPU for the host (deviation `guest_exception_halts`).
    let mut s = m.view(1);
    s.icore = true;
    let mut c = s.shadow_ctxts.get(ctxt_id(1, 0)).clone();
    c.ctxt_regs.ec = ARM_EXCEPTION_TRAP;
    c.ctxt_regs.esr_el2 = 0x3C << ESR_ELx_EC_SHIFT;
    s.shadow_ctxts.set_mut(ctxt_id(1, 0), c);
    assert!(prep_exit_vm(&Profile::SEED, &s).unwrap().halt);
    let r = prep_exit_vm(ARM, &s).unwrap();
    assert!(!r.halt);
    assert_eq!(r.shadow_ctxts.get(ctxt_id(1, 0)).ctxt_states.dirty, 0);
    // A guest MMIO write below 1 GiB: the pc advances past it, no register is dirty.
    let (cs, _) = prep_abort_specx(
        ARM,
        &CtxtRegs {
            hpfar_el2: 0x900 << 4,
            ..Default::default()
        },
        &CtxtStates::default(),
        0,
        &|_| ESR_ELx_WNR,
    );
    assert_eq!(cs.dirty, DIRTY_PC_FLAG);
    let (cs, _) = prep_abort_specx(
        &Profile::SEED,
        &CtxtRegs {
            hpfar_el2: 0x900 << 4,
            ..Default::default()
        },
        &CtxtStates::default(),
        0,
        &|_| ESR_ELx_WNR,
    );
    assert_eq!(cs.dirty, DIRTY_PC_FLAG);
}

#[test]
fn loops_stop_after_a_halt() {
    // Every loop skips its remaining iterations once halted (but counts them).
    let mut s = Machine::default().initial_state(Profile::arm(), 0);
    s.halt = true;
    assert_eq!(clear_vm_loop_h(ARM, 3, 5, 1, &s).map(|r| r.0), Some(8));
    assert_eq!(
        kvm_phys_addr_ioremap_loop_h(ARM, 2, 1, 0, 0, &s).map(|r| (r.0, r.1)),
        Some((8192, 8192))
    );
    assert_eq!(
        prot_and_map_vm_loop_h(ARM, 4, 1, 10, 20, &s).map(|r| (r.0, r.1)),
        Some((14, 24))
    );
    assert_eq!(
        unmap_and_load_loop_h(ARM, 2, 1, 0, 0, 0, &s).map(|r| r.0),
        Some(2 * PMD_SIZE)
    );
    assert_eq!(
        prot_and_map_vm_s2pt_spec_h(ARM, 1, 0, 0, 2, &s).as_ref(),
        Some(&s)
    );
    // A block whose first page cannot be assigned halts before the block is mapped.
    let mut s = Machine::default().initial_state(Profile::arm(), 0);
    s.shared.s2page.set_mut(0x40200, mkS2Page(5, 0, 1));
    let r = prot_and_map_vm_s2pt_spec_h(ARM, 1, LOAD, IMAGE_PA, 2, &s).unwrap();
    assert!(r.halt);
    assert_eq!(r.shared.npts.get(1).pt.get(LOAD / 4096).0, 0);
}

#[test]
fn smmu_map_refused_after_assign_halts() {
    // Phase 1 of SMMU_LPAE_MAP halts (the page is already another VM's): phase 2 never runs.
    let mut m = machine(ProfileKind::Arm);
    ready_vm(&mut m);
    ok(&hvc(&mut m, "REGISTER_KVM", &[]));
    ok(&hvc(&mut m, "SMMU_ALLOC_PGD", &[0, 2, 0]));
    let before = m.global.shared.spts.clone();
    assert_eq!(
        hvc(&mut m, "SMMU_LPAE_MAP", &[0x1000, IMAGE_PA, 0, 0, 0]).result,
        Outcome::Ok,
        "still the host's: assigned"
    );
    let mut m2 = machine(ProfileKind::Arm);
    ready_vm(&mut m2);
    ok(&hvc(&mut m2, "VERIFY_VM_IMAGE", &[1]));
    ok(&hvc(&mut m2, "REGISTER_KVM", &[]));
    ok(&hvc(&mut m2, "SMMU_ALLOC_PGD", &[0, 2, 0]));
    let r = hvc(&mut m2, "SMMU_LPAE_MAP", &[0x1000, IMAGE_PA, 0, 0, 0]);
    assert_eq!(r.result, Outcome::Halt);
    assert_eq!(m2.global.shared.spts, before, "nothing mapped");
}
