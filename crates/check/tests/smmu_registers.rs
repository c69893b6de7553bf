//! The host's accesses to the SMMU register windows, on the core beside the model: KCore
//! performs them for the host (the windows are never mapped into the host), reads return
//! the device's value, a write to a context bank's TTBR0 installs KCore's own table instead
//! of the host's, and CONTEXTIDR is refused.

use corevisor_check::engine::Outcome;
use corevisor_check::lockstep::Lockstep;
use corevisor_kcore::hw::Hw;
use corevisor_sim::scenario::{parse, Action, Step};
use corevisor_spec::profile::ProfileKind;

const SMMU0: u64 = 0x0B00_0000;

fn machine() -> Lockstep {
    let sc = parse("t.json", r#"{"name": "t", "profile": "arm", "steps": []}"#).unwrap();
    Lockstep::for_scenario(&sc, Some(ProfileKind::Arm)).unwrap()
}

fn run(l: &mut Lockstep, a: Action) -> corevisor_check::lockstep::CheckedStep {
    let r = l.step(&Step::new(0, a)).unwrap();
    assert!(
        r.mismatches.is_empty(),
        "{}: {:?}",
        r.model.what,
        r.mismatches
    );
    r
}

#[test]
fn ttbr0_writes_install_kcores_table() {
    let mut l = machine();
    for cb in [0u64, 3] {
        let reg = SMMU0 + 0x8000 + cb * 0x1000 + 0x20;
        let r = run(
            &mut l,
            Action::HostStore {
                addr: reg as i128,
                value: 0xdead_0000,
            },
        );
        assert_eq!(r.model.result, Outcome::Ok);
        let root = l.core.core.smmu_pool.root(0, cb as u32);
        assert_eq!(
            l.core.core.hw.read64(reg),
            root,
            "bank {cb}: the host's table is not used"
        );
        assert_ne!(root, 0xdead_0000);
    }
}

#[test]
fn register_reads_return_the_devices_value_and_contextidr_is_kcores() {
    let mut l = machine();
    // A value the (simulated) SMMU holds in its IDR0 register.
    l.core.core.hw.write64(SMMU0 + 0x20, 0x1234_5678);
    let r = run(
        &mut l,
        Action::HostLoad {
            addr: (SMMU0 + 0x20) as i128,
        },
    );
    assert_eq!(
        (r.model.result, r.core.value),
        (Outcome::Ok, Some(0x1234_5678))
    );
    let r = run(
        &mut l,
        Action::HostStore {
            addr: (SMMU0 + 0x8000 + 0x34) as i128,
            value: 1,
        },
    );
    assert_eq!(r.model.result, Outcome::Halt);
}
