//! Issue 5, "must show" 1: every scenario runs on the core beside the model with zero
//! mismatches, and every step keeps the security invariants.

use corevisor_check::runner::{self, EngineKind};
use corevisor_sim::scenario::parse;
use corevisor_spec::profile::ProfileKind;
use std::path::{Path, PathBuf};

fn scenario_files() -> Vec<PathBuf> {
    corevisor_sim::scenario::files_under(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios"),
    )
    .expect("scenarios/ exists")
}

#[test]
fn every_scenario_runs_on_the_core_with_zero_mismatches() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for f in scenario_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        let sc = parse(&f.display().to_string(), &text).unwrap();
        // Host macros run through the same lockstep: their raw steps are checked too.
        let out = runner::run(&sc, EngineKind::Checked, Some(ProfileKind::Arm)).unwrap();
        checked += 1;
        for s in &out.steps {
            if !s.mismatches.is_empty() || !s.report.broken.is_empty() {
                failures.push(format!(
                    "{} step {} ({}): {:?} broken {:?}",
                    f.file_name().unwrap().to_string_lossy(),
                    s.report.step,
                    s.report.what,
                    s.mismatches,
                    s.report.broken
                ));
            }
        }
    }
    assert!(checked >= 42, "only {checked} scenarios checked");
    assert!(
        failures.is_empty(),
        "{} mismatching steps:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The checker sees a divergence in each part of the relation: corrupt one thing of the
/// core after a real lifecycle prefix and `compare` must name it.
#[test]
fn the_checker_notices_each_kind_of_divergence() {
    use corevisor_check::lockstep::Lockstep;
    use corevisor_kcore::hw::Hw;
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/lifecycle_two_vcpus.json");
    let sc = parse(
        "lifecycle_two_vcpus.json",
        &std::fs::read_to_string(f).unwrap(),
    )
    .unwrap();
    let fresh = || {
        let mut l = Lockstep::for_scenario(&sc, Some(ProfileKind::Arm)).unwrap();
        for st in &sc.steps[..17] {
            assert!(l.step(st).unwrap().mismatches.is_empty());
        }
        assert!(l.compare().is_empty());
        l
    };
    type Corrupt = fn(&mut Lockstep);
    let cases: [(&str, Corrupt); 9] = [
        ("shadow context 8", |l| {
            l.core.core.shadow[8].get_mut().states.pc += 4
        }),
        ("VM records", |l| l.core.core.vms[1].get_mut().inc_exe = 1),
        ("page metadata", |l| {
            // An ownership operation the model never saw.
            let _ = l
                .core
                .core
                .local_grant_vm_page(1, 0x40300, &mut corevisor_kcore::hw::Discard);
        }),
        ("page contents", |l| l.core.core.hw.write64(0x4030_0000, 1)),
        ("page tables", |l| {
            let root = l.core.core.layout.pt.root(2);
            l.core.core.hw.write64(root, 0x7000_0003);
        }),
        ("CPU 1 registers", |l| l.core.cpus[1].regs.regs.elr_el2 ^= 4),
        ("CPU 0 mode", |l| l.core.cpus[0].run.icore = true),
        ("halt", |l| {
            l.core.core.halt(&[]);
        }),
        ("SMMU bank owners", |l| l.core.core.smmu.get_mut()[1] = 2),
    ];
    for (what, corrupt) in cases {
        let mut l = fresh();
        corrupt(&mut l);
        let m = l.compare();
        assert!(m.iter().any(|x| x.contains(what)), "{what}: {m:?}");
    }
}

/// Where the model says nothing (a loop longer than its budget), the checked run stops
/// there without calling it a mismatch (ARCHITECTURE.md: "model None = outside the
/// contract, not a failure"). The RAM is 8 GiB: a reclaim longer than the RAM's pages is
/// refused by KCore itself (deviation `share_loop_unbounded`), this one is not (KCore keeps
/// all but 392 MiB: the host's stage-2 pool maps at most 2006 MiB, `check_host_capacity`).
#[test]
fn outside_the_spec_contract_the_checked_run_stops_without_a_mismatch() {
    let text = r#"{"name": "t", "profile": "arm", "machine": {"ram_mib": 8192, "kcore_mib": 7800}, "steps": [
        {"cpu": 0, "hvc": ["REGISTER_KVM"]},
        {"cpu": 0, "hvc": ["REGISTER_VCPU", 1, 0]},
        {"cpu": 0, "hvc": ["SET_BOOT_INFO", 1, "0x80000000", 4096]},
        {"cpu": 0, "hvc": ["REMAP_VM_IMAGE", 1, "0x40200", 0]},
        {"cpu": 0, "hvc": ["VERIFY_VM_IMAGE", 1]},
        {"cpu": 1, "vcpu_run": {"vm": 1, "vcpu": 0}},
        {"cpu": 1, "guest_psci": "SYSTEM_OFF"},
        {"cpu": 0, "hvc": ["CLEAR_VM_S2_RANGE", 1, "0x40000000", "0x100001000"]},
        {"cpu": 0, "hvc": ["REGISTER_KVM"]}
    ]}"#;
    let sc = parse("t.json", text).unwrap();
    let out = runner::run(&sc, EngineKind::Checked, Some(ProfileKind::Arm)).unwrap();
    assert_eq!(
        out.steps.len(),
        8,
        "the run stops at the step the model cannot take"
    );
    let last = out.steps.last().unwrap();
    assert_eq!(
        last.report.result,
        corevisor_check::engine::Outcome::Undefined
    );
    assert!(last.mismatches.is_empty());
    assert_eq!(out.mismatches(), 0);
}
