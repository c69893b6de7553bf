//! Golden tests for every quirk switch (docs/deviations.md): each test shows the seed's
//! literal behaviour under `Profile::SEED` and the intent under `Profile::ARM`, with a value
//! that differs between the two. Where a quirk cannot be reached through the entry points
//! from a boot state, the test calls the seed function directly.

mod common;
use common::*;
use corevisor_check::engine::{ModelMachine, Outcome};
use corevisor_sim::scenario::Action;
use corevisor_spec::aux::*;
use corevisor_spec::concurrent::*;
use corevisor_spec::consts::*;
use corevisor_spec::profile::{Profile, ProfileKind};
use corevisor_spec::state::*;
use corevisor_spec::trap_handler::*;
use corevisor_spec::{Machine, Z};

const SEED: &Profile = &Profile::SEED;
const ARM: &Profile = &Profile::ARM;

fn both<T: PartialEq + std::fmt::Debug>(f: impl Fn(ProfileKind) -> T, seed: T, arm: T) {
    assert_eq!(f(ProfileKind::Seed), seed, "literal (seed profile)");
    assert_eq!(f(ProfileKind::Arm), arm, "intent (arm profile)");
}

fn shadow(m: &ModelMachine, vm: Z, vcpu: Z) -> Ctxt {
    m.global.shadow_ctxts.get(ctxt_id(vm, vcpu)).clone()
}

fn irq(m: &mut ModelMachine, cpu: Z) {
    ok(&act(m, cpu, Action::Irq));
}

#[test]
fn inverted_exception_inject() {
    // After an IRQ exit, an ordinary resume: the seed "injects" (flag clear), overwriting
    // ELR_EL1 with the guest pc and PSTATE with the fault bits.
    both(
        |k| {
            let mut m = machine(k);
            running_vm(&mut m);
            irq(&mut m, 1);
            ok(&run(&mut m, 1, 1, 0, None));
            let c = shadow(&m, 1, 0);
            (c.ctxt_regs.elr_el1, c.ctxt_states.pstate)
        },
        (LOAD, PSTATE_FAULT_BITS_64),
        (0, PSTATE_FAULT_BITS_64),
    );
}

#[test]
fn inject_keeps_pc() {
    let cr = CtxtRegs {
        vbar_el1: 0x9000,
        ..CtxtRegs::default()
    };
    let cs = CtxtStates {
        pc: LOAD + 8,
        pstate: 0x3C5,
        ..CtxtStates::default()
    };
    assert_eq!(
        update_exception_gp_regs_specx(SEED, &cr, &cs).1.pc,
        LOAD + 8
    );
    assert_eq!(
        update_exception_gp_regs_specx(ARM, &cr, &cs).1.pc,
        0x9000 + 0x200
    );
    assert_eq!(
        update_exception_gp_regs_specx(ARM, &cr, &cs).0.elr_el1,
        LOAD + 8
    );
}

#[test]
fn verify_loop_index() {
    // Three segments in three 2 MiB blocks: the seed loads segments 0, 1, 1.
    both(
        |k| {
            let mut m = machine(k);
            ok(&hvc(&mut m, "REGISTER_KVM", &[]));
            for i in 0..3 {
                ok(&hvc(
                    &mut m,
                    "SET_BOOT_INFO",
                    &[1, LOAD + i * 0x20_0000, 4096],
                ));
                ok(&hvc(
                    &mut m,
                    "REMAP_VM_IMAGE",
                    &[1, (IMAGE_PA + i * 0x20_0000) / 4096, i],
                ));
            }
            ok(&hvc(&mut m, "VERIFY_VM_IMAGE", &[1]));
            let owner = |pa: Z| m.global.shared.s2page.get(pa / 4096).s2_owner;
            (
                owner(IMAGE_PA),
                owner(IMAGE_PA + 0x20_0000),
                owner(IMAGE_PA + 0x40_0000),
            )
        },
        (1, 1, HOSTVISOR),
        (1, 1, 1),
    );
}

/// A profile that is the seed except for one switch turned to its intent.
fn seed_with(f: impl Fn(&mut corevisor_spec::profile::Quirks)) -> Profile {
    let mut q = Profile::SEED.q;
    f(&mut q);
    Profile::SEED.with_quirks(q)
}

#[test]
fn info_lock_cur_vmid() {
    // After the first VERIFY, the seed has poisoned INFO_ID + 0 (the caller's), so
    // SMMU_FREE_PGD is outside the contract from then on.
    both(
        |k| {
            let mut m = machine(k);
            ready_vm(&mut m);
            ok(&hvc(&mut m, "VERIFY_VM_IMAGE", &[1]));
            (
                *m.global.shared.hlock.get(INFO_ID),
                hvc(&mut m, "SMMU_FREE_PGD", &[0, 0]).result,
            )
        },
        (false, Outcome::Undefined),
        (true, Outcome::Ok),
    );
}

#[test]
fn smmu_id_swapped() {
    // Bank (index 1, cb 0) belongs to the host; SMMU_CLEAR(iova, cb 1, index 0) addresses
    // the unassigned bank (index 0, cb 1). The seed reads smmu_vmid[1*8 + 0] instead, finds
    // the host, and needs INFO_ID + 0 — poisoned by the earlier VERIFY (§7.2.4).
    let run = |p: Profile| {
        let mut m = ModelMachine::new(p, Machine::default());
        ready_vm(&mut m);
        ok(&hvc(&mut m, "SMMU_ALLOC_PGD", &[0, 0, 1]));
        ok(&hvc(&mut m, "VERIFY_VM_IMAGE", &[1]));
        hvc(&mut m, "SMMU_CLEAR", &[0x1000, 1, 0]).result
    };
    assert_eq!(run(Profile::SEED), Outcome::Undefined);
    assert_eq!(run(seed_with(|q| q.smmu_id_swapped = false)), Outcome::Ok);
}

#[test]
fn grant_block_base_pfn() {
    // Granting the second page of the image's 2 MiB block counts the block's first page.
    both(
        |k| {
            let mut m = machine(k);
            running_vm(&mut m);
            ok(&grant(&mut m, 1, LOAD + 0x1000, 4096, false));
            let count = |pfn: Z| m.global.shared.s2page.get(pfn).s2_count;
            (count(IMAGE_PA / 4096), count(IMAGE_PA / 4096 + 1))
        },
        (1, 0),
        (0, 1),
    );
}

#[test]
fn assign_discards_normalised() {
    // A page given to VM 1 through its SMMU bank has count INVALID; when the VM later
    // faults it in, the seed keeps INVALID, the intent normalises it to 0.
    both(
        |k| {
            let mut m = machine(k);
            ready_vm(&mut m);
            ok(&hvc(&mut m, "SMMU_ALLOC_PGD", &[0, 1, 0]));
            ok(&hvc(
                &mut m,
                "SMMU_LPAE_MAP",
                &[0x9000_0000, 0x4041_0000, 0, 0, 0],
            ));
            ok(&hvc(&mut m, "VERIFY_VM_IMAGE", &[1]));
            ok(&run(&mut m, 1, 1, 0, None));
            irq(&mut m, 1);
            ok(&run(&mut m, 1, 1, 0, Some((0x9000_0000, 0x40410, 3))));
            m.global.shared.s2page.get(0x40410).s2_count
        },
        INVALID,
        0,
    );
}

#[test]
fn sync_dirty_same_value() {
    let dorc = |n: Z| 100 + n;
    let (cr, cs) = (CtxtRegs::default(), CtxtStates::default());
    let (s, _, ls) = sync_dirty_to_shadow_specx(SEED, 1, 0b110, &cr, &cs, 7, &dorc);
    let (a, _, la) = sync_dirty_to_shadow_specx(ARM, 1, 0b110, &cr, &cs, 7, &dorc);
    assert_eq!((s.x[1], s.x[2], ls), (107, 107, 9));
    assert_eq!((a.x[1], a.x[2], la), (107, 108, 9));
}

#[test]
fn load_crypt_into_caller() {
    // The decrypted registers land in the host's own context (then its x0..x30) under the
    // seed, in the target vCPU's shadow context under the intent.
    both(
        |k| {
            let mut m = machine(k);
            ready_vm(&mut m);
            let s = step(
                0,
                Action::Hvc {
                    call: corevisor_sim::scenario::HvcCall::Named(name("LOAD_CRYPT_VCPU")),
                    args: vec![1, 0],
                },
            );
            let s = corevisor_sim::scenario::Step {
                oracle: (0..80).map(|n| 1000 + n).collect(),
                size: None,
                ..s
            };
            ok(&m.step(&s).unwrap());
            (
                m.cpus[0].regs.ctxt_regs.x[5],
                shadow(&m, 1, 0).ctxt_regs.x[5],
                m.global.shared.vminfos.get(1).VB.vm_inc_exe,
            )
        },
        (1005, 0, 1),
        // Under the intent the first value is the authentication verdict (1000: authentic).
        (0, 1006, 1),
    );
}

#[test]
fn iova_to_phys_unlogged() {
    both(
        |k| {
            let mut m = machine(k);
            let before = m.global.slog.len();
            ok(&hvc(&mut m, "SMMU_LPAE_IOVA_TO_PHYS", &[0x1234, 0, 0]));
            m.global.slog.len() - before
        },
        0,
        1,
    );
}

#[test]
fn first_run_drops_queries() {
    // Another CPU maps two host pages while this one does a vCPU's first run (events
    // injected through the other-CPU oracle at the first run's two queries). The seed
    // rebuilds its result from the state before those queries and loses both mappings.
    for (p, kept) in [(SEED, false), (ARM, true)] {
        let mut m = ModelMachine::new(*p, Machine::default());
        ready_vm(&mut m);
        ok(&hvc(&mut m, "VERIFY_VM_IMAGE", &[1]));
        let mut s = m.view(1);
        let (b, c) = (RAM + 0x10_0000, RAM + 0x11_0000);
        let l0 = s.slog.len() as Z;
        let mut t = s.soracle.table.get(1).clone();
        t.set_mut(l0 + 1, vec![SEVENT(0, AtomicEvent::OMAP_HOST(b))]);
        t.set_mut(l0 + 3, vec![SEVENT(0, AtomicEvent::OMAP_HOST(c))]);
        s.soracle.table.set_mut(1, t);
        s.regs.ctxt_regs.x[0] = if p.q.vcpu_run_vmid_in_x0 { 1 } else { 8 };
        s.regs.ctxt_regs.x[1] = 1;
        s.core_doracle.put(1, 0, 0);
        let pc_at = *s.data_log.get(1);
        s.doracle.put(1, pc_at, LOAD);
        let r = host_vcpu_run_handler_spec(p, &s).unwrap();
        assert!(!r.halt, "{:?}: {:?}", p.kind, r.shared.vminfos.get(1).VS);
        let mapped = |a: Z| r.shared.npts.get(0).pt.get(a / 4096).0 != 0;
        assert_eq!((mapped(b), mapped(c)), (kept, kept), "{:?}", p.kind);
        assert!(r.slog.iter().any(|e| e.e == AtomicEvent::OMAP_HOST(c)));
    }
}

#[test]
fn map_after_failed_assign() {
    // The host proposes one of KCore's own pages for a VM fault. The seed's assign halts,
    // then the map step runs anyway and its success clears the halt: the VM maps KCore
    // memory. The intent stops at the failed assign.
    let kcore_pfn = Machine::default().kcore_base() / 4096;
    both(
        |k| {
            let mut m = machine(k);
            running_vm(&mut m);
            irq(&mut m, 1);
            let r = run(&mut m, 1, 1, 0, Some((0x9000_0000, kcore_pfn, 3)));
            (
                r.result,
                m.global.shared.npts.get(1).pt.get(0x90000).0,
                r.broken.contains(&"kcore_unmapped"),
            )
        },
        (Outcome::Ok, kcore_pfn, true),
        (Outcome::Halt, 0, false),
    );
}

#[test]
fn smmu_clear_empty_touches_page0() {
    let mut sdt = Machine::default().initial_shared(SEED);
    sdt.s2page
        .set_mut(0, mkS2Page(HOSTVISOR, 2, SMMU_HOST_OFFSET));
    sdt.smmu_vmid.set_mut(smmu_id(0, 0), HOSTVISOR);
    assert_eq!(
        local_smmu_clear(SEED, 0x5000, 0, 0, &sdt)
            .0
            .s2page
            .get(0)
            .s2_count,
        1
    );
    assert_eq!(
        local_smmu_clear(ARM, 0x5000, 0, 0, &sdt)
            .0
            .s2page
            .get(0)
            .s2_count,
        2
    );
}

#[test]
fn cal_state_newest_only() {
    let evs = [
        SEVENT(1, AtomicEvent::OMAP_HOST(RAM)),
        SEVENT(1, AtomicEvent::OMAP_HOST(RAM + 0x1000)),
    ];
    let mapped = |s: &Shared, a: Z| s.npts.get(0).pt.get(a / 4096).0 != 0;
    let s = CalStateH(SEED, &evs, &Machine::default().initial_shared(SEED));
    assert_eq!((mapped(&s, RAM), mapped(&s, RAM + 0x1000)), (true, false));
    let a = CalStateH(ARM, &evs, &Machine::default().initial_shared(ARM));
    assert_eq!((mapped(&a, RAM), mapped(&a, RAM + 0x1000)), (true, true));
}

#[test]
fn literal_arg_checks() {
    both(
        |k| {
            let mut m = machine(k);
            ok(&hvc(&mut m, "REGISTER_KVM", &[]));
            let boot = hvc(&mut m.clone(), "SET_BOOT_INFO", &[1, 0x8000_0000, 4096]).result;
            let remap = hvc(&mut m, "REMAP_VM_IMAGE", &[1, 1 << 28, 0]).result;
            (boot, remap)
        },
        (Outcome::Halt, Outcome::Ok),
        (Outcome::Ok, Outcome::Halt),
    );
}

#[test]
fn literal_event_payloads() {
    both(
        |k| {
            let mut m = machine(k);
            ready_vm(&mut m);
            ok(&hvc(&mut m, "SMMU_ALLOC_PGD", &[0, 1, 0]));
            ok(&hvc(
                &mut m,
                "SMMU_LPAE_MAP",
                &[0x9000_0000, 0x4041_0000, 0, 0, 0],
            ));
            ok(&hvc(&mut m, "VERIFY_VM_IMAGE", &[1]));
            let smmu = m.global.slog.iter().find_map(|e| match e.e {
                AtomicEvent::OASSIGN_SMMU(_, _, a, b) => Some((a, b)),
                _ => None,
            });
            // The last block-assign event logged (newest first) is the block's last page.
            let assign = m.global.slog.iter().find_map(|e| match e.e {
                AtomicEvent::OASSIGN_VM(_, g, f, _, _) => Some((g, f)),
                _ => None,
            });
            (smmu.unwrap(), assign.unwrap())
        },
        ((0x40410, 0x90000), (LOAD / 4096, IMAGE_PA / 4096)),
        (
            (0x90000, 0x40410),
            (LOAD / 4096 + 511, IMAGE_PA / 4096 + 511),
        ),
    );
}

#[test]
fn guest_abort_halts() {
    both(
        |k| {
            let mut m = machine(k);
            running_vm(&mut m);
            let r = act(&mut m, 1, Action::GuestLoad { gpa: 0x9000_0000 });
            (r.result, m.cpus[1].ihost, state(&m))
        },
        (Outcome::Halt, false, ACTIVE),
        (Outcome::Fault, true, READY),
    );
    // WFx: the intent exits with "advance pc" pending; an MMIO read marks Rt dirty as well.
    let mut m = machine(ProfileKind::Arm);
    running_vm(&mut m);
    ok(&act(&mut m, 1, Action::GuestWfx));
    assert_eq!(shadow(&m, 1, 0).ctxt_states.dirty, DIRTY_PC_FLAG);
    ok(&run(&mut m, 1, 1, 0, None));
    assert_eq!(shadow(&m, 1, 0).ctxt_states.pc, LOAD + 4);
    let (cs, _) = prep_abort_specx(
        ARM,
        &CtxtRegs {
            hpfar_el2: 0x900 << 4,
            ..Default::default()
        },
        &CtxtStates::default(),
        0,
        &|_| 3 << 16,
    );
    assert_eq!(cs.dirty, DIRTY_PC_FLAG | (1 << 3));
    let (cs, _) = prep_abort_specx(
        SEED,
        &CtxtRegs {
            hpfar_el2: 0x900 << 4,
            ..Default::default()
        },
        &CtxtStates::default(),
        0,
        &|_| 3 << 16,
    );
    assert_eq!(cs.dirty, 1 << 3);
}

fn state(m: &ModelMachine) -> Z {
    *m.global.shared.vminfos.get(1).VS.vm_vcpu_state.get(0)
}

#[test]
fn reset_covers_elr_el2() {
    let cr = CtxtRegs {
        elr_el2: 0x1234,
        ..CtxtRegs::default()
    };
    let cs = CtxtStates::default();
    let (s, _, _) = corevisor_spec::aux::reset_sys_regs_specx(SEED, 0, &cr, &cs, &|_| 0, 0);
    let (a, _, _) = corevisor_spec::aux::reset_sys_regs_specx(ARM, 0, &cr, &cs, &|_| 0, 0);
    assert_eq!((s.elr_el2, a.elr_el2), (0, 0x1234));
    assert_eq!((s.sctlr_el1, a.sctlr_el1), (0x00C5_0078, 0x00C5_0078));
    assert_eq!(s.mpidr_el1, 1 << 31);
}

#[test]
fn oracle_read_no_advance() {
    // The host reads a page the guest shared, twice: the seed never advances the stream.
    // (RAM low, so that a seed-profile host fault can name it.)
    both(
        |k| {
            let mut m = low_machine(k);
            ready_vm_at(&mut m, 0x60_0000);
            ok(&hvc(&mut m, "VERIFY_VM_IMAGE", &[1]));
            ok(&run(&mut m, 1, 1, 0, None));
            ok(&grant(&mut m, 1, LOAD, 4096, false));
            for _ in 0..2 {
                ok(&act(&mut m, 0, Action::HostLoad { addr: 0x60_0000 }));
            }
            *m.global.data_log.get(HOSTVISOR)
        },
        0,
        // Two reads, plus the image-signature verdict VERIFY reads (`verify_unsigned`).
        3,
    );
}

#[test]
fn timer_traps_arithmetic() {
    both(
        |k| {
            let mut m = machine(k);
            running_vm(&mut m);
            irq(&mut m, 1);
            ok(&run(&mut m, 1, 1, 0, None));
            m.cpus[1].regs.trap_regs.cnthctl_el2
        },
        3,
        1,
    );
}

#[test]
fn skip_writes_esr() {
    both(
        |k| {
            let mut m = machine(k);
            running_vm(&mut m);
            let elr = m.cpus[1].regs.ctxt_regs.elr_el2;
            ok(&act(&mut m, 1, Action::GuestSysreg));
            let r = &m.cpus[1].regs.ctxt_regs;
            (elr, r.elr_el2 - elr, r.esr_el2 == elr + 4)
        },
        (LOAD, 0, true),
        (LOAD, 4, false),
    );
}

#[test]
fn host_elr_unsaved() {
    both(
        |k| {
            let mut m = machine(k);
            running_vm(&mut m);
            irq(&mut m, 1);
            m.cpus[1].regs.ctxt_regs.elr_el2 = 0xFFFF_0000_1234;
            ok(&run(&mut m, 1, 1, 0, None));
            irq(&mut m, 1);
            m.cpus[1].regs.ctxt_regs.elr_el2
        },
        0,
        0xFFFF_0000_1234,
    );
}

#[test]
fn vcpu_run_vmid_in_x0() {
    let mut s = Machine::default().initial_state(SEED, 0);
    s.regs.ctxt_regs.x[0] = 1;
    s.regs.ctxt_regs.x[1] = 2;
    assert_eq!(vcpu_run_swith_to_core(SEED, &s).cur_vmid, 1);
    assert_eq!(vcpu_run_swith_to_core(ARM, &s).cur_vmid, 2);
}

#[test]
fn model_loop_budget() {
    // A grant of 2^60 bytes would run 2^48 iterations: the seed's model answers
    // "undefined"; `arm` refuses it before any loop (deviation `share_loop_unbounded`,
    // crates/check/tests/isolation_holes.rs).
    for k in KINDS {
        let mut m = machine(k);
        running_vm(&mut m);
        let expect = match k {
            ProfileKind::Seed => Outcome::Undefined,
            ProfileKind::Arm => Outcome::Ok,
        };
        assert_eq!(grant(&mut m, 1, LOAD, 1 << 60, false).result, expect);
        assert_eq!(
            grant(&mut m, 1, LOAD, corevisor_spec::LOOP_BUDGET * 4096, false).result,
            Outcome::Ok
        );
    }
}

#[test]
fn unaligned_block_mapped() {
    // The host proposes a 2 MiB mapping starting at a page that is not 2 MiB aligned.
    both(
        |k| {
            let mut m = machine(k);
            running_vm(&mut m);
            irq(&mut m, 1);
            let r = run(&mut m, 1, 1, 0, Some((0x1000_0000, 0x40401, 2)));
            let leaf = *m.global.shared.npts.get(1).pt.get(0x1000_0000 / 4096);
            (r.result, leaf.0, leaf.2 & 0xFFFF_FFFF_F000)
        },
        // The model says gfn 0x10000 maps pfn 0x40401; the descriptor's block address is
        // 0x40401000, whose bits 20:12 the MMU ignores: it maps 0x40400000..
        (Outcome::Ok, 0x40401, 0x4040_1000),
        (Outcome::Halt, 0, 0),
    );
}

/// A host hypercall step with explicit data-oracle values.
fn hvc_with(m: &mut ModelMachine, n: &str, args: &[Z], oracle: &[Z]) -> Outcome {
    let s = step(
        0,
        Action::Hvc {
            call: corevisor_sim::scenario::HvcCall::Named(name(n)),
            args: args.to_vec(),
        },
    );
    let s = corevisor_sim::scenario::Step {
        oracle: oracle.to_vec(),
        size: None,
        ..s
    };
    m.step(&s).unwrap().result
}

#[test]
fn verify_unsigned() {
    // The signature's verdict says "forged" (0): the seed loads and verifies anyway; the
    // intent leaves the VM POWEROFF (it never runs; its pages are scrubbed on reclaim).
    both(
        |k| {
            let mut m = machine(k);
            ready_vm(&mut m);
            let r = hvc_with(&mut m, "VERIFY_VM_IMAGE", &[1], &[0]);
            (r, m.global.shared.vminfos.get(1).VS.vm_state)
        },
        (Outcome::Ok, VERIFIED),
        (Outcome::Ok, POWEROFF),
    );
}

#[test]
fn export_unauthenticated() {
    // DECRYPT_BUF of a forged buffer (verdict 0): the seed imports it (the page becomes the
    // VM's, content = the next value); the intent halts.
    both(
        |k| {
            let mut m = machine(k);
            ok(&hvc(&mut m, "REGISTER_KVM", &[]));
            let r = hvc_with(&mut m, "DECRYPT_BUF", &[1, IMAGE_PA, 0], &[0, 77]);
            let page = *m.global.shared.s2page.get(IMAGE_PA / 4096);
            (r, page.s2_owner)
        },
        (Outcome::Ok, 1),
        (Outcome::Halt, HOSTVISOR),
    );
    // SAVE_CRYPT_VCPU: nothing under the seed; the sealed record lands in host page x3.
    both(
        |k| {
            let mut m = machine(k);
            ready_vm(&mut m);
            let out = IMAGE_PA + 0x40_0000;
            let r = hvc_with(&mut m, "SAVE_CRYPT_VCPU", &[1, 0, out], &[55]);
            (r, *m.global.shared.flatmem.get(out / 4096))
        },
        (Outcome::Ok, 0),
        (Outcome::Ok, 55),
    );
}

#[test]
fn cbar0_unpoliced() {
    // The host writes bank 0's CBAR (window offset GR1_BASE) to give a VM's bank another
    // VMID: unpoliced under the seed, refused (halt) under the intent.
    let mut smmu = corevisor_spec::zmap::ZMap::init(INVALID);
    smmu.set_mut(smmu_id(0, 0), 1);
    let mut cr = CtxtRegs::default();
    cr.x[1] = 2; // stage-2 type, VMID 2
    let f = |p: &Profile| {
        handle_host_mmio_spec_h(
            p,
            0,
            0x0B00_0000,
            0x0B00_0000 + ARM_SMMU_GR1_BASE,
            4,
            ESR_ELx_WNR,
            1,
            &cr,
            &CtxtStates::default(),
            &CtxtRegs::default(),
            &|_| 0,
            0,
            &smmu,
        )
        .0
    };
    assert!(!f(SEED), "literal: bank 0's CBAR write completes");
    assert!(f(ARM), "intent: it is refused");
    // Bank 1's CBAR (offset GR1_BASE + 4) is policed under both.
    let g = |p: &Profile| {
        let mut s2 = smmu.clone();
        s2.set_mut(smmu_id(0, 1), 1);
        handle_host_mmio_spec_h(
            p,
            0,
            0x0B00_0000,
            0x0B00_0000 + ARM_SMMU_GR1_BASE + 4,
            4,
            ESR_ELx_WNR,
            1,
            &cr,
            &CtxtStates::default(),
            &CtxtRegs::default(),
            &|_| 0,
            0,
            &s2,
        )
        .0
    };
    assert!(g(SEED) && g(ARM));
}

#[test]
fn device_outside_mmio() {
    // The host touches an address outside RAM that no declared device covers (issue 9).
    // The seed maps any non-RAM address as device memory; the intent refuses it, the way
    // KCore refuses a page the host does not own. Below 16 MiB so the seed's HPFAR_MASK
    // keeps it.
    let addr = 0x10_0000;
    both(
        |k| {
            let mut m = low_machine(k);
            let r = act(&mut m, 0, Action::HostStore { addr, value: 7 });
            (r.result, m.global.shared.npts.get(0).pt.get(addr / 4096).0)
        },
        (Outcome::Ok, addr / 4096),
        (Outcome::Halt, 0),
    );
    // PHYS_ADDR_IOREMAP of an undeclared page (on this machine, the UART a real KCore keeps
    // for itself; one other device page is declared, so a one-page ioremap is within the
    // declared pages, deviation `share_loop_unbounded`): the seed maps it into the VM, the
    // intent skips it like RAM.
    both(
        |k| {
            let mut mm = ModelMachine::new(
                *Profile::of(k),
                Machine {
                    mmio: vec![(0x0A00_0000, 4096)],
                    ..Machine::default()
                },
            );
            ok(&hvc(&mut mm, "REGISTER_KVM", &[]));
            let r = hvc(
                &mut mm,
                "PHYS_ADDR_IOREMAP",
                &[1, 0x9000_0000, 0x0900_0000, 4096],
            );
            (
                r.result,
                mm.global.shared.npts.get(1).pt.get(0x9000_0000 / 4096).0,
            )
        },
        (Outcome::Ok, 0x0900_0000 / 4096),
        (Outcome::Ok, 0),
    );
}

#[test]
fn arm_pool_geometry() {
    // The seed gives each principal a 32 MiB table pool; 17 of them do not fit a KCore region
    // of a few MiB, so the arm profile packs 1 MiB per VM and for KCore, and 4 MiB for the
    // host, whose 1003 level-3 tables map a Linux host of 1.5 GiB at 4 KiB
    // (docs/deviations.md). The cursors keep the seed's shape: root first, then level 1, 2
    // and 3 pages.
    let p = |k: ProfileKind| Profile::of(k).c.pools;
    both(
        |k| {
            (
                p(k).pt_pool_per_vm,
                p(k).host_pool_extra,
                p(k).smmu_pool_end - p(k).smmu_pgd_start,
            )
        },
        (0x200_0000, 0, 0x20_0000),
        (0x10_0000, 0x30_0000, 0x14_0000),
    );
    // Level-3 tables: the host's and a VM's.
    both(
        |k| (p(k).l3_tables(HOSTVISOR), p(k).l3_tables(1)),
        (5887, 5887),
        (1003, 235),
    );
    // The core allocates with exactly the arm geometry.
    use corevisor_kcore::consts as kc;
    let a = Pools::ARM;
    assert_eq!(
        (
            a.pt_pool_per_vm,
            a.host_pool_extra,
            a.pgd_offset,
            a.pud_offset,
            a.pmd_offset
        ),
        (
            kc::PT_POOL_PER_VM as Z,
            kc::HOST_POOL_EXTRA as Z,
            kc::PGD_OFFSET as Z,
            kc::PUD_OFFSET as Z,
            kc::PMD_OFFSET as Z
        )
    );
    for v in 0..=COREVISOR {
        let u = v as u32;
        assert_eq!(
            (a.pool_start(v), a.pmd_start(v), a.pool_end(v)),
            (
                kc::pool_start(u) as Z,
                kc::pmd_start(u) as Z,
                kc::pool_end(u) as Z
            ),
            "principal {v}"
        );
    }
    assert_eq!(
        a.npt_span(),
        corevisor_kcore::layout::PoolSpans::ARM.npt as Z
    );
    use corevisor_kcore::smmu as ks;
    assert_eq!(
        (a.smmu_pgd_start, a.smmu_pmd_start, a.smmu_pool_end),
        (
            ks::SMMU_PGD_START as Z,
            ks::SMMU_PMD_START as Z,
            ks::SMMU_POOL_END as Z
        )
    );
    // Under arm, KCore's whole state fits in 23 MiB of the default machine's 32 MiB region
    // (20 MiB of stage-2 pools); the seed's pools do not fit it.
    let arm = corevisor_check::engine::kcore_layout(ARM, &Machine::default()).unwrap();
    assert!(arm.end - arm.kcore_base <= 23 << 20, "{arm:?}");
    let seed = corevisor_check::engine::kcore_layout(SEED, &Machine::default());
    assert!(seed.is_err(), "{seed:?}");
}

/// Whether the host's write of `data` (`len` bytes) at offset `off` of SMMU 0's window
/// halts, with banks `(cb, owner)` assigned (issue 13's quirks).
fn smmu_write_halts(p: &Profile, off: Z, len: Z, data: Z, owners: &[(Z, Z)]) -> bool {
    let mut smmu = corevisor_spec::zmap::ZMap::init(INVALID);
    for &(cb, owner) in owners {
        smmu.set_mut(smmu_id(0, cb), owner);
    }
    let mut cr = CtxtRegs::default();
    cr.x[1] = data;
    handle_host_mmio_spec_h(
        p,
        0,
        0x0B00_0000,
        0x0B00_0000 + off,
        len,
        ESR_ELx_WNR,
        1,
        &cr,
        &CtxtStates::default(),
        &CtxtRegs::default(),
        &|_| 0,
        0,
        &smmu,
    )
    .0
}

#[test]
fn smmu_offset_masked() {
    // 0x1_8034 is above the SMMU's 64 KiB of registers; masked with 0xFFFF it is bank 0's
    // CONTEXTIDR, which the seed refuses.
    assert!(
        smmu_write_halts(SEED, 0x1_8034, 4, 5, &[]),
        "literal: an alias, refused"
    );
    assert!(
        !smmu_write_halts(ARM, 0x1_8034, 4, 5, &[]),
        "intent: no register there"
    );
    // Bank 0's CONTEXTIDR itself is refused under both.
    assert!(smmu_write_halts(SEED, 0x8034, 4, 5, &[]) && smmu_write_halts(ARM, 0x8034, 4, 5, &[]));
}

#[test]
fn smmu_mmio_width_unchecked() {
    // 8 bytes at offset 4 (finding E1: sCR1 + sCR2 on the wire, sCR0's check skipped).
    assert!(
        !smmu_write_halts(SEED, 4, 8, 1, &[]),
        "literal: misaligned store completes"
    );
    assert!(smmu_write_halts(ARM, 4, 8, 1, &[]), "intent: refused");
    // 8 bytes on sCR0 + sCR1 (no 64-bit register there).
    assert!(!smmu_write_halts(SEED, 0, 8, 1 << 21, &[]));
    assert!(smmu_write_halts(ARM, 0, 8, 1 << 21, &[]));
    // A 32-bit store is judged by the word it stores: VM 1's CBAR written from an x1 with
    // a bit set above bit 31 (which a `str w1` does not store).
    let vm1 = [(1, 1)];
    assert!(
        smmu_write_halts(SEED, 0x1004, 4, 1 | (1 << 40), &vm1),
        "literal: x1's bit 40 counts"
    );
    assert!(
        !smmu_write_halts(ARM, 0x1004, 4, 1 | (1 << 40), &vm1),
        "intent: the stored word is fine"
    );
    // A 64-bit store to TTBR0 is fine under both.
    assert!(!smmu_write_halts(SEED, 0x8020, 8, 0x4000_0000, &[]));
    assert!(!smmu_write_halts(ARM, 0x8020, 8, 0x4000_0000, &[]));
}

#[test]
fn smmu_stream_routing_unpoliced() {
    let vm1 = [(1, 1), (2, HOSTVISOR)];
    // S2CR 2 of type bypass (finding 3).
    assert!(!smmu_write_halts(SEED, 0xC08, 4, 1 << 16, &vm1));
    assert!(smmu_write_halts(ARM, 0xC08, 4, 1 << 16, &vm1));
    // S2CR 9 translating through VM 1's bank 1.
    assert!(!smmu_write_halts(SEED, 0xC24, 4, 1, &vm1));
    assert!(smmu_write_halts(ARM, 0xC24, 4, 1, &vm1));
    // SMR 1 (the group KCore routed to VM 1's bank) rewritten to match stream 0x30.
    assert!(!smmu_write_halts(SEED, 0x804, 4, 0x8000_0030, &vm1));
    assert!(smmu_write_halts(ARM, 0x804, 4, 0x8000_0030, &vm1));
    // SMR 9 matching VM 1's stream 1 (by ID, or by a mask covering it): the conflict would
    // fault VM 1's device (found by smmu_hostile_registers.rs).
    for smr in [0x8000_0001, 0x8000_0000 | (0x7FFF << 16)] {
        assert!(!smmu_write_halts(SEED, 0x824, 4, smr, &vm1));
        assert!(smmu_write_halts(ARM, 0x824, 4, smr, &vm1));
    }
    assert!(
        !smmu_write_halts(ARM, 0x824, 4, 0x8000_0030, &vm1),
        "the host's own stream"
    );
    // S2CR 9 through the host's bank 2, or to fault: allowed under both.
    for data in [2, 2 << 16] {
        assert!(!smmu_write_halts(SEED, 0xC24, 4, data, &vm1));
        assert!(!smmu_write_halts(ARM, 0xC24, 4, data, &vm1));
    }
}

#[test]
fn smmu_bank_config_unpoliced() {
    let vm1 = [(1, 1)];
    // Bank 1's SCTLR with M = 0 (finding 4), or big-endian walks.
    for sctlr in [0, 0x11] {
        assert!(!smmu_write_halts(SEED, 0x9000, 4, sctlr, &vm1));
        assert!(smmu_write_halts(ARM, 0x9000, 4, sctlr, &vm1));
    }
    // Bank 1's TCR with another start level (finding 5).
    assert!(!smmu_write_halts(SEED, 0x9030, 4, 0x5_0090, &vm1));
    assert!(smmu_write_halts(ARM, 0x9030, 4, 0x5_0090, &vm1));
    // KCore's TCR with other walk cacheability: allowed.
    assert!(!smmu_write_halts(ARM, 0x9030, 4, 0x5_0058 | 0x3F00, &vm1));
    // CBA2R of bank 1 to the AArch32 format.
    assert!(!smmu_write_halts(SEED, 0x1804, 4, 0, &vm1));
    assert!(smmu_write_halts(ARM, 0x1804, 4, 0, &vm1));
    assert!(
        !smmu_write_halts(ARM, 0x1804, 4, 1, &vm1),
        "VA64 kept: Linux's write"
    );
}

#[test]
fn smmu_cbar_loose() {
    let banks = [(1, 1), (2, HOSTVISOR)];
    // A host bank takes VM 1's VMID (finding E2).
    assert!(!smmu_write_halts(SEED, 0x1008, 4, 1, &banks));
    assert!(smmu_write_halts(ARM, 0x1008, 4, 1, &banks));
    // ... or a stage-1 type (finding E3).
    assert!(!smmu_write_halts(SEED, 0x1008, 4, 1 << 16, &banks));
    assert!(smmu_write_halts(ARM, 0x1008, 4, 1 << 16, &banks));
    // VM 1's bank with an interrupt index, as Linux's driver may write (finding 11).
    assert!(smmu_write_halts(SEED, 0x1004, 4, 1 | (1 << 24), &banks));
    assert!(!smmu_write_halts(ARM, 0x1004, 4, 1 | (1 << 24), &banks));
    // 0x1020 is no bank's CBAR (the SMMU has 8 banks): the seed's CBAR range polices it with
    // the owner of `smmu_id(0, 8)` (SMMU 1's bank 0, here free: halt); nothing is there.
    assert!(smmu_write_halts(SEED, 0x1020, 4, 7, &banks));
    assert!(!smmu_write_halts(ARM, 0x1020, 4, 7, &banks));
}

#[test]
fn smmu_leaf_attrs_unchecked() {
    // VM 1's device page (bank 0 of SMMU 0, where the seed's swapped bank index reads
    // the same owner) at IOVA 0x9000_1000, proposed with the contiguous hint (bit 52),
    // a software bit (56) and low address bits: the seed keeps them all in the leaf, the
    // intent only the descriptor type, S2AP, MemAttr and XN (finding 10).
    let leaf = |p: Profile| {
        let mut m = ModelMachine::new(p, Machine::default());
        ok(&hvc(&mut m, "REGISTER_KVM", &[]));
        ok(&hvc(&mut m, "SMMU_ALLOC_PGD", &[0, 1, 0]));
        let a3 = (1 << 52) | (1 << 56) | 0xC3;
        ok(&hvc(
            &mut m,
            "SMMU_LPAE_MAP",
            &[0x9000_1000, 0x4700_1000 | 0x800, a3, 0, 0],
        ));
        m.global
            .shared
            .spts
            .spt_pt
            .get(SMMU_TTBR(0, 0))
            .get(0x9_0001)
            .1
    };
    // The switch alone, on the arm profile's constants (the seed's own machine halts earlier,
    // at its swapped bank index and placeholder constants).
    let literal = Profile::ARM.with_quirks(corevisor_spec::profile::Quirks {
        smmu_leaf_attrs_unchecked: true,
        ..Profile::ARM.q
    });
    assert_eq!(
        leaf(literal),
        0x4700_1000 | 0x800 | (1 << 52) | (1 << 56) | 0xC3 | 0x700
    );
    assert_eq!(leaf(Profile::ARM), 0x4700_1000 | 0xC3 | 0x700);
    const {
        assert!(
            Profile::SEED.q.smmu_leaf_attrs_unchecked && !Profile::ARM.q.smmu_leaf_attrs_unchecked
        )
    };
}

#[test]
fn guest_exception_halts() {
    // A guest's BRK, SMC, unknown instruction, SVE and PAuth traps: the seed halts the whole
    // machine; arm hands the exit to the host, the vCPU saved and inactive.
    for ec in [0x3C, 0x17, 0x00, 0x19, 0x09] {
        both(
            |k| {
                let mut m = machine(k);
                running_vm(&mut m);
                let r = act(&mut m, 1, Action::GuestException { ec });
                (r.result, m.cpus[1].ihost, m.halted(), state(&m))
            },
            (Outcome::Halt, false, true, ACTIVE),
            (Outcome::Ok, true, false, READY),
        );
    }
    // The host runs the vCPU again: it resumes at the trapping instruction, nothing pending
    // (the host injects what it decides through its own path).
    let mut m = machine(ProfileKind::Arm);
    running_vm(&mut m);
    let pc = shadow(&m, 1, 0).ctxt_states.pc;
    ok(&act(&mut m, 1, Action::GuestException { ec: 0x3C }));
    assert_eq!(shadow(&m, 1, 0).ctxt_states.dirty, 0);
    ok(&run(&mut m, 1, 1, 0, None));
    assert_eq!(shadow(&m, 1, 0).ctxt_states.pc, pc);
    assert!(!m.cpus[1].ihost);
}
