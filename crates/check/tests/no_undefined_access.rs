//! Issue 20, must-show 3: no step reports `undefined` for an access the machine's
//! translations would have carried out. A vCPU still running after its VM powered off and
//! a device on a powered-off VM's bank reach what their tables map, as on hardware; the
//! checked run reports what the machine did and judges it (secrecy oracle, invariants,
//! memory), over every scenario file and a random lockstep run.

use corevisor_check::engine::Outcome;
use corevisor_check::lockstep::{CheckedStep, Lockstep};
use corevisor_kcore::consts::{COREVISOR, HOSTVISOR};
use corevisor_sim::machine::CoreMachine;
use corevisor_sim::scenario::{files_under, parse, Action, Scenario, Step};
use corevisor_spec::profile::ProfileKind;
use std::path::Path;

/// Would the machine carry out this CPU access through a translation that exists now (in
/// its TLB or its tables)? Devices are judged by their outcome (below): an SMMU lookup
/// here would change the SMMU's state.
fn cpu_translation_exists(m: &CoreMachine, st: &Step) -> bool {
    let Some(cpu) = usize::try_from(st.cpu).ok().and_then(|i| m.cpus.get(i)) else {
        return false;
    };
    let run = cpu.run;
    let (who, addr) = match st.action {
        Action::GuestLoad { gpa } | Action::GuestStore { gpa, .. } | Action::GuestFetch { gpa }
            if !run.ihost && !run.icore && (1..COREVISOR).contains(&run.cur_vmid) =>
        {
            (run.cur_vmid, gpa as u64)
        }
        Action::HostLoad { addr } | Action::HostStore { addr, .. } if run.ihost && !run.icore => {
            (HOSTVISOR, addr as u64)
        }
        _ => return false,
    };
    let hw = &m.core.hw;
    let root = m.core.layout.pt.root(who);
    hw.cached(who, addr)
        .or_else(|| hw.walk(root, addr))
        .is_some_and(|t| t.pa >= 4096)
}

/// The step's failure of must-show 3, if any.
fn undefined_access(st: &Step, translated: bool, r: &CheckedStep) -> Option<String> {
    let device = matches!(st.action, Action::DmaLoad { .. } | Action::DmaStore { .. });
    let bad = r.model.result == Outcome::Undefined
        && (translated || device || !r.core.rec.bus.is_empty());
    bad.then(|| {
        format!(
            "step {} ({:?}): reported undefined; the machine: {:?}",
            st.index, st.action, r.core.outcome
        )
    })
}

/// Is VM 1 anything but VERIFIED on the core now (its accesses are outside the seed's
/// contract: `mem_load_spec`, `dev_load_spec`)?
fn vm1_not_verified(m: &CoreMachine) -> bool {
    m.core.vms[1].read().state != corevisor_kcore::consts::VERIFIED
}

/// Runs a scenario checked; every must-show-3 failure, every mismatch, and how many steps
/// carried out an access (on the bus) while VM 1 was not VERIFIED.
fn run(sc: &Scenario) -> (Vec<String>, Vec<String>, usize) {
    let Ok(mut l) = Lockstep::for_scenario(sc, Some(ProfileKind::Arm)) else {
        return (vec![], vec![], 0);
    };
    let (mut bad, mut mism, mut dead) = (Vec::new(), Vec::new(), 0);
    for st in &sc.steps {
        if matches!(st.action, Action::Host(_)) {
            break;
        }
        let translated = cpu_translation_exists(&l.core, st);
        let outside = vm1_not_verified(&l.core);
        let Ok(r) = l.step(st) else { break };
        bad.extend(undefined_access(st, translated, &r));
        mism.extend(
            r.mismatches
                .iter()
                .map(|m| format!("step {}: {m}", st.index)),
        );
        dead += usize::from(outside && !r.core.rec.bus.is_empty() && st.cpu != 0);
        if r.outside_contract || l.core.core.halted() {
            break;
        }
    }
    (bad, mism, dead)
}

#[test]
fn no_scenario_step_reports_undefined_for_a_translated_access() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let files = files_under(&dir).unwrap();
    assert!(files.len() > 50, "{} scenario files", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let sc = parse(&name, &std::fs::read_to_string(f).unwrap()).unwrap();
        let (bad, _, _) = run(&sc);
        failures.extend(bad.into_iter().map(|b| format!("{name}: {b}")));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// VM 1 (two vCPUs on CPUs 1 and 2, a device bank with one page) verified and running.
const TWO_VCPUS_AND_A_DEVICE: &str = r#"{"cpu": 0, "hvc": ["REGISTER_KVM"]},
    {"cpu": 0, "hvc": ["REGISTER_VCPU", 1, 0]},
    {"cpu": 0, "hvc": ["REGISTER_VCPU", 1, 1]},
    {"cpu": 0, "hvc": ["SMMU_ALLOC_PGD", 0, 1, 0]},
    {"cpu": 0, "hvc": ["SMMU_LPAE_MAP", "0x90000000", "0x40600000", "0xC3", 0, 0]},
    {"cpu": 0, "hvc": ["SET_BOOT_INFO", 1, "0x80000000", 8192]},
    {"cpu": 0, "host_store": ["0x40200000", "0x1111"]},
    {"cpu": 0, "hvc": ["REMAP_VM_IMAGE", 1, "0x40200", 0]},
    {"cpu": 0, "hvc": ["REMAP_VM_IMAGE", 1, "0x40201", 0]},
    {"cpu": 0, "hvc": ["VERIFY_VM_IMAGE", 1]},
    {"cpu": 1, "vcpu_run": {"vm": 1, "vcpu": 0}},
    {"cpu": 2, "vcpu_run": {"vm": 1, "vcpu": 1}},"#;

fn scenario(steps: &str) -> Scenario {
    let text = format!(
        r#"{{"name": "dead", "profile": "arm", "machine": {{"cpus": 3}}, "steps": [{TWO_VCPUS_AND_A_DEVICE}{}]}}"#,
        steps.trim().trim_end_matches(',')
    );
    parse("dead.json", &text).unwrap()
}

/// One vCPU powers the VM off; the other, still running, and the VM's device go on
/// reaching the VM's pages: each access is carried out, reported with the machine's
/// result and value, and compared (no mismatch, no leak).
#[test]
fn a_vcpu_and_a_device_of_a_powered_off_vm_are_carried_out_and_checked() {
    let sc = scenario(
        r#"{"cpu": 2, "guest_store": ["0x80000010", "0x5ec2e7"]},
           {"cpu": 1, "guest_psci": "SYSTEM_OFF"},
           {"cpu": 2, "guest_store": ["0x80000018", "0x7777"]},
           {"cpu": 2, "guest_load": "0x80000010"},
           {"cpu": 0, "dma_store": {"smmu": 0, "cb": 0, "iova": "0x90000008", "value": "0xd00d"}},
           {"cpu": 0, "dma_load": {"smmu": 0, "cb": 0, "iova": "0x90000008"}},
           {"cpu": 2, "guest_load": "0x80000018"}"#,
    );
    let mut l = Lockstep::for_scenario(&sc, Some(ProfileKind::Arm)).unwrap();
    let mut reports = Vec::new();
    for st in &sc.steps {
        let r = l.step(st).unwrap();
        assert_eq!(r.mismatches, Vec::<String>::new(), "step {}", st.index);
        assert!(!r.outside_contract, "step {}", st.index);
        reports.push((r.model.result, r.model.value));
    }
    let n = reports.len();
    let tail: Vec<_> = reports[n - 5..].to_vec();
    assert_eq!(
        tail,
        vec![
            (Outcome::Ok, None),
            (Outcome::Ok, Some(0x5ec2e7.into())),
            (Outcome::Ok, None),
            (Outcome::Ok, Some(0xd00d.into())),
            (Outcome::Ok, Some(0x7777.into())),
        ]
    );
    // The words the dead VM wrote are in memory where its translations put them.
    let hw = &l.core.core.hw;
    use corevisor_kcore::hw::Hw;
    assert_eq!(hw.read64(0x4020_0018), 0x7777);
    assert_eq!(hw.read64(0x4060_0008), 0xd00d);
    // And they are still the VM's secrets.
    assert_eq!(l.secrecy.tag(0x4020_0018).map(|t| t.vm), Some(1));
}

/// A small random generator (xorshift), so the run is the same on every machine.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Random lockstep runs around a VM with two vCPUs and a device, powered off from one
/// vCPU while the other runs, with the host reclaiming and handing pages on: no step
/// reports undefined for an access the machine carried out, and the oracle finds no leak
/// on the healthy core.
#[test]
fn no_random_lockstep_step_reports_undefined_for_a_translated_access() {
    let mut rng = Rng(0x5eed_cafe);
    let (mut failures, mut leaks, mut dead) = (Vec::new(), Vec::new(), 0);
    for seq in 0..60 {
        let mut steps = String::new();
        for _ in 0..25 {
            let word = rng.below(512) * 8;
            let gpa = 0x8000_0000 + rng.below(2) * 4096 + word;
            let s = match rng.below(10) {
                0..=2 => format!(
                    r#"{{"cpu": {}, "guest_store": ["{gpa:#x}", "{:#x}"]}},"#,
                    1 + rng.below(2),
                    rng.below(1 << 40) + 1
                ),
                3..=4 => format!(
                    r#"{{"cpu": {}, "guest_load": "{gpa:#x}"}},"#,
                    1 + rng.below(2)
                ),
                5 => format!(
                    r#"{{"cpu": {}, "guest_psci": "SYSTEM_OFF"}},"#,
                    1 + rng.below(2)
                ),
                6 => format!(
                    r#"{{"cpu": 0, "dma_store": {{"smmu": 0, "cb": 0, "iova": "{:#x}", "value": "{:#x}"}}}},"#,
                    0x9000_0000 + word,
                    rng.below(1 << 40) + 1
                ),
                7 => format!(
                    r#"{{"cpu": 0, "dma_load": {{"smmu": 0, "cb": 0, "iova": "{:#x}"}}}},"#,
                    0x9000_0000 + word
                ),
                8 => r#"{"cpu": 0, "hvc": ["CLEAR_VM_S2_RANGE", 1, "0x40200000", "0x200000"]},"#
                    .to_string(),
                _ => format!(r#"{{"cpu": 0, "host_load": "{:#x}"}},"#, 0x4020_0000 + word),
            };
            steps += &s;
        }
        let sc = scenario(&steps);
        let (bad, mism, d) = run(&sc);
        dead += d;
        failures.extend(bad.into_iter().map(|b| format!("sequence {seq}: {b}")));
        leaks.extend(
            mism.into_iter()
                .filter(|m| m.contains("leak:") || m.contains("tamper:"))
                .map(|m| format!("sequence {seq}: {m}")),
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(leaks.is_empty(), "{leaks:#?}");
    // The runs did reach the accesses the seed leaves outside its contract.
    assert!(dead >= 20, "{dead} accesses by a powered-off VM's vCPU");
}
