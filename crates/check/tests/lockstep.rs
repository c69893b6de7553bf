//! Issue 5, "must show" 1: every scenario runs on the core beside the model with zero
//! mismatches, and every step keeps the security invariants.

use corevisor_check::lockstep::run_checked;
use corevisor_sim::scenario::parse;
use corevisor_spec::profile::ProfileKind;
use std::path::{Path, PathBuf};

fn scenario_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("scenarios/ exists") {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_scenario_runs_on_the_core_with_zero_mismatches() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for f in scenario_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        let sc = parse(&f.display().to_string(), &text).unwrap();
        if sc
            .steps
            .iter()
            .any(|s| matches!(s.action, corevisor_sim::scenario::Action::Host(_)))
        {
            continue;
        }
        let steps = run_checked(&sc, Some(ProfileKind::Arm)).unwrap();
        checked += 1;
        for s in &steps {
            if !s.mismatches.is_empty() || !s.model.broken.is_empty() {
                failures.push(format!(
                    "{} step {} ({}): {:?} broken {:?}",
                    f.file_name().unwrap().to_string_lossy(),
                    s.model.step,
                    s.model.what,
                    s.mismatches,
                    s.model.broken
                ));
            }
        }
    }
    assert!(checked >= 40, "only {checked} scenarios checked");
    assert!(
        failures.is_empty(),
        "{} mismatching steps:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
