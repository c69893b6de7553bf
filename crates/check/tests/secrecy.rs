//! The secrecy oracle (issue 20, `corevisor_check::secrecy`): a VM's private stores are
//! tagged; a read of a tagged word by any other principal is a leak, reported with the
//! step. Planted leaks (kcore `mutants`, with `--features mutants`) are reported by the
//! oracle itself, on the core machine alone (no model, no refinement, no invariant), and
//! through `Lockstep` as a mismatch of the step; the healthy core leaks nothing.

use corevisor_check::lockstep::Lockstep;
use corevisor_check::secrecy::{Secrecy, Tag};
use corevisor_sim::machine::CoreMachine;
use corevisor_sim::scenario::{parse, Scenario};
use corevisor_spec::profile::ProfileKind;

/// A VM with a signed two-page image at 0x8000_0000 (host pages 0x40200 and 0x40201, the
/// VM's 2 MiB block 0x40200..0x403ff), verified, its vCPU 0 running on CPU 1.
const PREFIX: &str = r#"{"cpu": 0, "hvc": ["REGISTER_KVM"]},
    {"cpu": 0, "hvc": ["REGISTER_VCPU", 1, 0]},
    {"cpu": 0, "hvc": ["SET_BOOT_INFO", 1, "0x80000000", 8192]},
    {"cpu": 0, "host_store": ["0x40200000", "0x1111"]},
    {"cpu": 0, "host_store": ["0x40201ff8", "0x2222"]},
    {"cpu": 0, "hvc": ["REMAP_VM_IMAGE", 1, "0x40200", 0]},
    {"cpu": 0, "hvc": ["REMAP_VM_IMAGE", 1, "0x40201", 0]},
    {"cpu": 0, "hvc": ["VERIFY_VM_IMAGE", 1]},
    {"cpu": 1, "vcpu_run": {"vm": 1, "vcpu": 0}},"#;

fn scenario(steps: &str) -> Scenario {
    let text = format!(
        r#"{{"name": "secrecy", "profile": "arm", "machine": {{"cpus": 2}}, "steps": [{PREFIX}{}]}}"#,
        steps.trim().trim_end_matches(',')
    );
    parse("secrecy.json", &text).unwrap()
}

/// The oracle alone beside the core machine: every message it gives, and its final state.
fn oracle_alone(sc: &Scenario) -> (Vec<String>, Secrecy) {
    let l = Lockstep::for_scenario(sc, Some(ProfileKind::Arm)).unwrap();
    let mut m: CoreMachine = l.core;
    let mut s = Secrecy::new();
    let mut out = Vec::new();
    for st in &sc.steps {
        let cpu = m.cpus[st.cpu as usize].run;
        let granter = (!cpu.ihost && !cpu.icore).then_some(cpu.cur_vmid);
        let r = m.step(st);
        out.extend(s.judge(&m.core, st, granter, &r));
        let dirty = m.core.hw.take_dirty();
        s.prune(&m.core.hw, dirty);
        if m.core.halted() {
            break;
        }
    }
    (out, s)
}

/// Lockstep's mismatches, each with its step.
fn checked(sc: &Scenario) -> Vec<String> {
    let mut l = Lockstep::for_scenario(sc, Some(ProfileKind::Arm)).unwrap();
    let mut out = Vec::new();
    for st in &sc.steps {
        let r = l.step(st).unwrap();
        out.extend(
            r.mismatches
                .iter()
                .map(|m| format!("step {}: {m}", st.index)),
        );
        if l.core.core.halted() {
            break;
        }
    }
    out
}

/// A private store is tagged with its VM; the host's attempt to read it faults (nothing
/// is read, nothing leaks), and the tag stands.
#[test]
fn a_private_store_is_tagged_and_the_host_cannot_read_it() {
    let sc = scenario(
        r#"{"cpu": 1, "guest_store": ["0x80000010", "0x5ec2e7"]},
           {"cpu": 0, "host_load": "0x40200010"}"#,
    );
    let (leaks, s) = oracle_alone(&sc);
    assert_eq!(leaks, Vec::<String>::new());
    assert_eq!(
        s.tag(0x4020_0010),
        Some(Tag {
            vm: 1,
            value: 0x5ec2e7
        })
    );
    assert_eq!(s.tagged_words(), 1);
    assert_eq!(checked(&sc), Vec::<String>::new());
}

/// A page the VM grants is declassified: the host reads it legitimately, no leak; the tag
/// is gone. Without the grant the same words would be the VM's.
#[test]
fn a_grant_declassifies_and_the_host_reads_without_a_leak() {
    let sc = scenario(
        r#"{"cpu": 1, "guest_store": ["0x80000010", "0x5ec2e7"]},
           {"cpu": 1, "guest_hvc": ["GRANT", "0x80000000", 4096]},
           {"cpu": 0, "host_load": "0x40200010"}"#,
    );
    let (leaks, s) = oracle_alone(&sc);
    assert_eq!(leaks, Vec::<String>::new());
    assert_eq!(s.tag(0x4020_0010), None);
    assert_eq!(checked(&sc), Vec::<String>::new());
}

/// A store while the page is shared is no secret (the VM writes it for the host); a store
/// after the revoke is again.
#[test]
fn stores_while_shared_are_untagged_and_after_a_revoke_tagged_again() {
    let sc = scenario(
        r#"{"cpu": 1, "guest_hvc": ["GRANT", "0x80000000", 4096]},
           {"cpu": 1, "guest_store": ["0x80000018", "0x5a5a"]},
           {"cpu": 0, "host_load": "0x40200018"},
           {"cpu": 1, "guest_hvc": ["REVOKE", "0x80000000", 4096]},
           {"cpu": 1, "guest_store": ["0x80000020", "0x7777"]}"#,
    );
    let (leaks, s) = oracle_alone(&sc);
    assert_eq!(leaks, Vec::<String>::new());
    assert_eq!(s.tag(0x4020_0018), None);
    assert_eq!(s.tag(0x4020_0020).map(|t| t.vm), Some(1));
}

/// A page handed back to the host is scrubbed: its words carry no tag, and the host reads
/// zeros, no leak.
#[test]
fn a_scrubbed_page_carries_no_tag() {
    let sc = scenario(
        r#"{"cpu": 1, "guest_store": ["0x80000008", "0x5ec2e7"]},
           {"cpu": 1, "guest_psci": "SYSTEM_OFF"},
           {"cpu": 0, "hvc": ["CLEAR_VM_S2_RANGE", 1, "0x40200000", "0x200000"]},
           {"cpu": 0, "host_load": "0x40200008"}"#,
    );
    let (leaks, s) = oracle_alone(&sc);
    assert_eq!(leaks, Vec::<String>::new());
    assert_eq!(s.tagged_words(), 0);
    assert_eq!(checked(&sc), Vec::<String>::new());
}

#[cfg(feature = "mutants")]
mod planted {
    use super::*;
    use corevisor_kcore::mutants::{self, Fault};
    use corevisor_sim::scenario::{Action, Step};

    /// The leak a fault plants, as the oracle alone and `Lockstep` report it; the healthy
    /// core gives neither.
    fn leak_found(fault: Fault, steps: &str, want: &str) {
        let sc = scenario(steps);
        let (healthy, _) = mutants::with(None, || oracle_alone(&sc));
        assert_eq!(healthy, Vec::<String>::new(), "{fault:?}: healthy core");
        let healthy = mutants::with(None, || checked(&sc));
        assert!(
            !healthy.iter().any(|m| m.contains("leak:")),
            "{fault:?}: {healthy:#?}"
        );
        // The oracle by itself, beside the core machine: no model is run.
        let (alone, _) = mutants::with(Some(fault), || oracle_alone(&sc));
        assert!(
            alone.iter().any(|m| m.starts_with(want)),
            "{fault:?}: the oracle alone said {alone:#?}"
        );
        // Through lockstep: a mismatch of the step that read the word.
        let last = sc.steps.last().unwrap().index;
        let seen = mutants::with(Some(fault), || checked(&sc));
        let tagged = format!("step {last}: {want}");
        assert!(
            seen.iter().any(|m| m.starts_with(&tagged)),
            "{fault:?}: lockstep said {seen:#?}"
        );
    }

    /// An attack scenario's steps (`scenarios/attacks/NAME.json`) but its last `drop`, then
    /// `extra`, on a machine of `cpus` CPUs.
    fn attack(name: &str, drop: usize, extra: &str, cpus: u32) -> Scenario {
        let path = format!(
            "{}/../../scenarios/attacks/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut steps = file["steps"].as_array().unwrap().clone();
        steps.truncate(steps.len() - drop);
        let extra: Vec<serde_json::Value> =
            serde_json::from_str(&format!("[{}]", extra.trim().trim_end_matches(','))).unwrap();
        steps.extend(extra);
        let doc = serde_json::json!({
            "name": name, "profile": "arm", "machine": {"cpus": cpus}, "steps": steps
        });
        parse("attack.json", &doc.to_string()).unwrap()
    }

    /// [`leak_found`] for a whole scenario.
    fn leak_in(fault: Fault, sc: &Scenario, want: &str) {
        let (healthy, _) = mutants::with(None, || oracle_alone(sc));
        assert_eq!(healthy, Vec::<String>::new(), "{fault:?}: healthy core");
        let (alone, _) = mutants::with(Some(fault), || oracle_alone(sc));
        assert!(
            alone.iter().any(|m| m.starts_with(want)),
            "{fault:?}: the oracle alone said {alone:#?}"
        );
        let seen = mutants::with(Some(fault), || checked(sc));
        assert!(
            seen.iter().any(|m| m.contains(want)),
            "{fault:?}: lockstep said {seen:#?}"
        );
    }

    /// Issue 20 hole 1 put back: the host maps the page VM 1's device wrote (count INVALID)
    /// and reads the device's secret.
    #[test]
    fn hole_1_host_maps_smmu_page_is_a_leak() {
        let sc = attack("hole1_host_reads_vm_device_page", 0, "", 2);
        leak_in(
            Fault::HostMapsSmmuPage,
            &sc,
            "leak: the host read VM 1's private word at 0x40410000",
        );
    }

    /// Issue 20 hole 2 put back: VM 1's image page is reclaimed while its vCPU 1 runs and
    /// handed to VM 2; VM 2's secret there is read by VM 1's vCPU through its old stage-2.
    #[test]
    fn hole_2_clear_while_reachable_is_a_leak() {
        let sc = attack(
            "hole2_reclaimed_page_mapped_into_vm2",
            0,
            r#"{"cpu": 0, "guest_store": ["0x8400010", "0x5ec2e7"]},
               {"cpu": 1, "guest_load": "0x8001010"}"#,
            2,
        );
        leak_in(
            Fault::ClearWhileReachable,
            &sc,
            "leak: VM 1 read VM 2's private word at 0x40201010",
        );
    }

    /// The same hole, read by an instruction fetch: a fetch is a read of the word.
    #[test]
    fn hole_2_a_fetch_of_the_other_vms_word_is_a_leak() {
        let sc = attack(
            "hole2_reclaimed_page_mapped_into_vm2",
            0,
            r#"{"cpu": 0, "guest_store": ["0x8400010", "0x5ec2e7"]},
               {"cpu": 1, "guest_fetch": "0x8001010"}"#,
            2,
        );
        leak_in(
            Fault::ClearWhileReachable,
            &sc,
            "leak: VM 1 read VM 2's private word at 0x40201010",
        );
    }

    /// Issue 20 hole 4 put back: the SMMU's register window ioremapped into VM 1, which (for
    /// the host) routes stream 5 to bypass with two 32-bit stores (SMR5, S2CR5); the host's
    /// device on stream 5 then reads VM 2's private page untranslated.
    #[test]
    fn hole_4_ioremap_smmu_window_is_a_leak() {
        let mut sc = attack(
            "hole4_guest_stores_to_smmu_window",
            1,
            r#"{"cpu": 0, "hvc": ["REGISTER_KVM"]},
               {"cpu": 0, "hvc": ["REGISTER_VCPU", 2, 0]},
               {"cpu": 0, "hvc": ["SET_BOOT_INFO", 2, "0x8000000", 4096]},
               {"cpu": 0, "hvc": ["REMAP_VM_IMAGE", 2, "0x40600", 0]},
               {"cpu": 0, "hvc": ["VERIFY_VM_IMAGE", 2]},
               {"cpu": 2, "vcpu_run": {"vm": 2, "vcpu": 0}},
               {"cpu": 2, "guest_store": ["0x8000010", "0x5ec2e7"]}"#,
            3,
        );
        // The VM's 32-bit register stores (a scenario file's `size` is the host's only).
        let window = 0x2000_0000;
        let regs = [(0x800 + 4 * 5, (1 << 31) | 5), (0xC00 + 4 * 5, 1 << 16)];
        let at = sc.steps.len() - 6;
        for (k, (off, v)) in regs.into_iter().enumerate() {
            let mut st = Step::new(
                1,
                Action::GuestStore {
                    gpa: window + off,
                    value: v,
                },
            );
            st.size = Some(4);
            sc.steps.insert(at + k, st);
        }
        sc.steps.push(Step::new(
            0,
            Action::DmaLoad {
                smmu: 0,
                cb: 5,
                iova: 0x4060_0010,
                stream: Some(5),
            },
        ));
        for (i, st) in sc.steps.iter_mut().enumerate() {
            st.index = i;
        }
        leak_in(
            Fault::IoremapSmmuWindow,
            &sc,
            "leak: the host's device read VM 2's private word at 0x40600010",
        );
    }

    /// A revoke that leaves the host's mapping: the VM's next private store into the page
    /// is read by the host.
    #[test]
    fn revoke_keeps_host_mapping_is_a_leak() {
        leak_found(
            Fault::RevokeKeepsHostMapping,
            r#"{"cpu": 1, "guest_hvc": ["GRANT", "0x80000000", 4096]},
               {"cpu": 0, "host_load": "0x40200000"},
               {"cpu": 1, "guest_hvc": ["REVOKE", "0x80000000", 4096]},
               {"cpu": 1, "guest_store": ["0x80000040", "0x5ec2e7"]},
               {"cpu": 0, "host_load": "0x40200040"}"#,
            "leak: the host read VM 1's private word at 0x40200040",
        );
    }

    /// A reclaim that scrubs only the first word: the host reads the VM's second word.
    #[test]
    fn scrub_first_word_only_is_a_leak() {
        leak_found(
            Fault::ScrubFirstWordOnly,
            r#"{"cpu": 1, "guest_store": ["0x80000008", "0x5ec2e7"]},
               {"cpu": 1, "guest_psci": "SYSTEM_OFF"},
               {"cpu": 0, "hvc": ["CLEAR_VM_S2_RANGE", 1, "0x40200000", "0x200000"]},
               {"cpu": 0, "host_load": "0x40200008"}"#,
            "leak: the host read VM 1's private word at 0x40200008",
        );
    }
}
