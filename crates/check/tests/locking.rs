//! The core takes the seed's ticket locks around every ownership operation (`state`): no
//! trap returns with a lock held; a halt records the locks the spec poisons, and after it no
//! lock is granted again, so no operation runs (the seed's "held for good").

use corevisor_check::runner::{self, EngineKind};
use corevisor_kcore::consts::{NPT_ID, S2PAGE_ID};
use corevisor_sim::machine::{CoreMachine, MachineShape};
use corevisor_sim::scenario::{parse, Action, Step};
use corevisor_spec::profile::ProfileKind;
use std::path::Path;

#[test]
fn no_trap_returns_with_a_lock_held() {
    // Every raw step of the two lifecycle scenarios runs with the core's assertions on
    // (`outcome` checks `held == 0`); the runs must simply complete.
    for f in ["lifecycle_two_vcpus.json", "host_model.json", "demo.json"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scenarios")
            .join(f);
        let sc = parse(f, &std::fs::read_to_string(p).unwrap()).unwrap();
        let out = runner::run(&sc, EngineKind::Core, Some(ProfileKind::Arm)).unwrap();
        assert!(out.steps.len() > 20, "{f}");
    }
}

/// Two CPUs, 36 MiB of RAM, KCore from 12 MiB in.
fn machine() -> CoreMachine {
    CoreMachine::new(MachineShape {
        cpus: 2,
        ram_base: 0x4000_0000,
        ram_end: 0x4240_0000,
        kcore_base: 0x40C0_0000,
        smmus: 2,
        mmio: MachineShape::default_mmio(2),
    })
    .expect("KCore's region holds its state")
}

/// Hypercall `n` with arguments `a` by CPU 0's host.
fn hvc(n: &str, a: &[i128]) -> Step {
    Step::new(
        0,
        Action::Hvc {
            call: corevisor_sim::scenario::HvcCall::Named(
                corevisor_sim::scenario::HvcName::parse(n).unwrap(),
            ),
            args: a.to_vec(),
        },
    )
}

#[test]
fn a_halt_keeps_the_locks_it_poisons_and_nothing_locks_after_it() {
    let mut m = machine();
    for s in [
        hvc("REGISTER_KVM", &[]),
        hvc("REGISTER_VCPU", &[1, 0]),
        hvc("SET_BOOT_INFO", &[1, 0x8000_0000, 4096]),
        hvc("REMAP_VM_IMAGE", &[1, 0x40200, 0]),
        hvc("VERIFY_VM_IMAGE", &[1]),
    ] {
        m.step(&s);
        assert_eq!(m.core.held(), 0);
    }
    // The host touches the VM's page: local_map_host halts, poisoning S2PAGE.
    m.step(&Step::new(0, Action::HostLoad { addr: 0x4020_0000 }));
    assert!(m.core.halted());
    let s2page = 1u64 << S2PAGE_ID;
    assert_eq!(m.core.poisoned() & s2page, s2page);
    assert_eq!(m.core.held(), 0, "the halting step's guards were released");
    // Every later trap (CPU 1's host) returns at once: its first lock is refused.
    let r = m.step(&Step {
        cpu: 1,
        ..hvc("REGISTER_KVM", &[])
    });
    assert_eq!(r.outcome, corevisor_sim::machine::Outcome::Halt);
    assert_eq!(m.core.held(), 0);
    let (vms, _) = (m.core.core_data.read().next_vmid, NPT_ID);
    assert_eq!(vms, 2, "REGISTER_KVM after the halt allocated nothing");
}

/// Deviation `loop_batches_atomic` (docs/deviations.md): VERIFY_VM_IMAGE moves the image's
/// 2 MiB block into the VM (512 page assignments) under one hold of S2PAGE, and
/// CLEAR_VM_S2_RANGE scrubs a 512-page batch under one hold; the seed takes it per page.
#[test]
fn a_loop_changes_a_batch_of_pages_under_one_hold_of_s2page() {
    let mut m = machine();
    let s2page = |r: &corevisor_sim::machine::StepResult| {
        r.rec
            .locks
            .iter()
            .filter(|&&(id, _)| id == S2PAGE_ID)
            .count()
    };
    for s in [
        hvc("REGISTER_KVM", &[]),
        hvc("REGISTER_VCPU", &[1, 0]),
        hvc("SET_BOOT_INFO", &[1, 0x8000_0000, 4096]),
        hvc("REMAP_VM_IMAGE", &[1, 0x40200, 0]),
    ] {
        m.step(&s);
    }
    let verify = m.step(&hvc("VERIFY_VM_IMAGE", &[1]));
    assert_eq!(verify.outcome, corevisor_sim::machine::Outcome::Ok);
    assert_eq!(m.core.page(0x40200 + 511).owner, 1, "the whole block moved");
    assert_eq!(s2page(&verify), 1, "one hold for 512 assignments");
    let r = m.step(&Step::new(
        1,
        Action::VcpuRun {
            vm: 1,
            vcpu: 0,
            map: None,
            pc: None,
        },
    ));
    assert_eq!(r.outcome, corevisor_sim::machine::Outcome::Ok);
    m.step(&Step::new(1, Action::GuestPsciSystemOff));
    let clear = m.step(&hvc(
        "CLEAR_VM_S2_RANGE",
        &[1, 0x4020_0000, 0x20_0000 + 0x1000],
    ));
    assert_eq!(clear.outcome, corevisor_sim::machine::Outcome::Ok);
    assert_eq!(m.core.page(0x40200).owner, 0, "scrubbed and given back");
    assert_eq!(s2page(&clear), 2, "513 pages: a batch of 512, then one");
}

/// `held` names each lock by the seed's id (the model's `hlock` index, which the poisoned
/// bits of a halt are compared against): every lock of the core, taken alone.
#[test]
fn held_names_each_lock_by_the_seeds_id() {
    use corevisor_spec::consts as seed;
    use std::sync::atomic::AtomicBool;
    let m = machine();
    let c = &m.core;
    let running = AtomicBool::new(false);
    let bit = |id: corevisor_spec::Z| 1u64 << id;
    let z = |v: usize| v as corevisor_spec::Z;
    let one = |want: u64, taken: u64| assert_eq!(taken, want, "held() {taken:#x}, want {want:#x}");
    for v in 0..c.npt.len() {
        let _g = c.npt[v].lock(&running).unwrap();
        one(bit(seed::NPT_ID + z(v)), c.held());
    }
    for v in 0..c.vms.len() {
        let _g = c.vms[v].lock(&running).unwrap();
        one(bit(seed::INFO_ID + z(v)), c.held());
    }
    {
        let _g = c.s2page.lock(&running).unwrap();
        one(bit(seed::S2PAGE_ID), c.held());
    }
    {
        let _g = c.core_data.lock(&running).unwrap();
        one(bit(seed::CORE_ID), c.held());
    }
    {
        let _g = c.smmu.lock(&running).unwrap();
        one(bit(seed::SMMU_ID), c.held());
    }
    {
        let _g = c.spt.lock(&running).unwrap();
        one(bit(seed::SPT_ID), c.held());
    }
    assert_eq!(c.held(), 0);
}
