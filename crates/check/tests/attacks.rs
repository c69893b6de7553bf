//! Issue 6, "must show" 2: every attack under `scenarios/attacks/` ends in its expected
//! defence — its last step halts KCore, faults in the MMU/SMMU, or completes without effect
//! — with the core checked against the model after every step and the invariants intact.
//! A halt must come from the entry point the attacking step traps to; a refused attack must
//! leave every page's metadata as the honest setup left it (issue 10).

use corevisor_check::engine::Outcome;
use corevisor_check::runner::{self, EngineKind};
use corevisor_sim::scenario::parse;
use corevisor_spec::profile::ProfileKind;
use std::path::Path;

#[test]
fn every_attack_ends_in_its_defence_with_the_core_equal_to_the_model() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/attacks");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let (mut by, mut defences) = (
        std::collections::BTreeSet::new(),
        std::collections::BTreeSet::new(),
    );
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let sc = parse(&name, &std::fs::read_to_string(f).unwrap()).unwrap();
        let defence = sc
            .defence
            .clone()
            .unwrap_or_else(|| panic!("{name}: no \"defence\""));
        let who = sc
            .description
            .as_deref()
            .and_then(|d| d.split(']').next())
            .unwrap_or("");
        by.insert(who.trim_start_matches('[').to_string());
        defences.insert(defence.clone());
        let out = runner::run(&sc, EngineKind::Checked, Some(ProfileKind::Arm)).unwrap();
        let last = out.steps.last().map(|s| s.report.result);
        let held = match defence.as_str() {
            "halt" => out.fin.halted && last == Some(Outcome::Halt),
            "fault" => !out.fin.halted && last == Some(Outcome::Fault),
            _ => !out.fin.halted && last == Some(Outcome::Ok),
        };
        // Only the last step is the attack: everything before it is the honest setup.
        let early = out
            .steps
            .iter()
            .rev()
            .skip(1)
            .any(|s| s.report.result == Outcome::Halt);
        // A halt comes from the entry point the attacking step traps to.
        let trap = out.steps.last().and_then(|s| s.traps.last().copied());
        let want_trap = out.steps.last().map(|s| match s.report.kind {
            "hvc" if s.report.what.ends_with("VCPU_RUN") => "host_vcpu_run_handler",
            "hvc" => "host_hvc_handler",
            "vcpu_run" => "host_vcpu_run_handler",
            "host_load" | "host_store" => "host_npt_handler",
            k if k.starts_with("guest") || k == "irq" => "vm_exit_handler",
            _ => "none",
        });
        if defence == "halt" && trap != want_trap {
            failures.push(format!(
                "{name}: halted in {trap:?}, the attacking step traps to {want_trap:?}"
            ));
        }
        // A refused attack leaves every page's owner, share count and gfn as the honest
        // setup left them.
        if defence == "refused" {
            let mut setup = sc.clone();
            setup.steps.pop();
            let before = runner::run(&setup, EngineKind::Checked, Some(ProfileKind::Arm)).unwrap();
            if before.fin.pages != out.fin.pages {
                failures.push(format!("{name}: the refused attack changed page metadata"));
            }
        }
        if !held || early || out.mismatches() > 0 || !out.fin.broken.is_empty() {
            failures.push(format!(
                "{name}: defence {defence}, last {last:?}, halted {}, mismatches {}, broken {:?}",
                out.fin.halted,
                out.mismatches(),
                out.fin.broken
            ));
        }
    }
    assert!(files.len() >= 25, "only {} attacks", files.len());
    assert_eq!(
        by.into_iter().collect::<Vec<_>>(),
        ["device", "guest", "host"]
    );
    assert_eq!(
        defences.into_iter().collect::<Vec<_>>(),
        ["fault", "halt", "refused"]
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
