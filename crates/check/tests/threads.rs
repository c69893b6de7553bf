//! CPUs as threads, in parallel (issues 5 and 11): each CPU's host runs a whole VM lifecycle
//! at the same time as the others, on one machine, with no lock around it; the operating
//! system picks the interleaving. The run's linearization (lock order, program order)
//! replays through the lockstep checker: every step agrees with the model, returns what it
//! returned in parallel, and the two machines end equal.

use corevisor_check::engine::Outcome;
use corevisor_check::lockstep::Lockstep;
use corevisor_check::threads::run_cpus;
use corevisor_sim::scenario::parse;
use corevisor_spec::profile::ProfileKind;
use std::collections::BTreeSet;

fn machine(cpus: usize) -> Lockstep {
    let text = format!(
        r#"{{"name": "threads", "profile": "arm", "machine": {{"cpus": {cpus}, "ram_mib": 80, "kcore_mib": 24}}, "steps": []}}"#
    );
    Lockstep::for_scenario(
        &parse("threads.json", &text).unwrap(),
        Some(ProfileKind::Arm),
    )
    .unwrap()
}

#[test]
fn vms_on_concurrent_cpus_refine_the_model_in_every_interleaving_seen() {
    let mut orders = BTreeSet::new();
    let mut max_in_core = 0;
    for round in 0..30 {
        let images: &[&str] = if round % 2 == 0 {
            &["demo", "share"]
        } else {
            &["share", "demo", "poweroff", "demo"]
        };
        let run = run_cpus(machine(images.len()), images).unwrap();
        assert!(run.diverged.is_empty(), "round {round}: {:?}", run.diverged);
        max_in_core = max_in_core.max(run.max_in_core);
        let log = run.log;
        for s in &log {
            assert!(
                s.mismatches.is_empty(),
                "round {round}, {}: {:?}",
                s.model.what,
                s.mismatches
            );
            assert!(
                s.model.broken.is_empty(),
                "round {round}, {}: {:?}",
                s.model.what,
                s.model.broken
            );
            assert_ne!(
                s.model.result,
                Outcome::Halt,
                "round {round}: {} halted",
                s.model.what
            );
        }
        // Every CPU's VM powered off and was destroyed: each CPU ran CLEAR_VM_S2_RANGE.
        let cleared: BTreeSet<i128> = log
            .iter()
            .filter(|s| s.model.what.ends_with("CLEAR_VM_S2_RANGE"))
            .map(|s| s.model.cpu)
            .collect();
        assert_eq!(cleared.len(), images.len(), "round {round}");
        orders.insert(log.iter().map(|s| s.model.cpu as u8).collect::<Vec<u8>>());
    }
    // The threads really interleaved: not every round ran its steps in one order.
    eprintln!(
        "{} distinct interleavings in 30 rounds, up to {max_in_core} CPUs in KCore at once",
        orders.len()
    );
    assert!(
        orders.len() > 2,
        "only {} distinct interleavings in 30 rounds",
        orders.len()
    );
}
