//! Runs every scenario under `scenarios/` through the `corevisor` binary, in every profile its
//! `expect` object names (an `arm` expectation also with `--engine core --check`), and checks
//! the JSON Lines output against those expectations.
//!
//! `expect` is keyed by profile (`"arm"`, `"seed"`); each entry may give:
//! * `results`: the result of every step, in order (`ok`, `halt`, `undefined`, `fault`);
//! * `x0`: `{ "<step>": value }` — x0 after those hypercall steps;
//! * `values`: `{ "<step>": value }` — the value those load steps returned;
//! * `halted`, `vms` (exactly the final `vms` array), `invariants` (`"ok"` or a list);
//! * `pages`: `{ "<pfn>": {"owner": o, "count": c, "gfn": g} }` — pages that must be listed
//!   in the final object with those fields (others may be listed too);
//! * `unchanged_pages`: `[pfn, ...]` — pages that must NOT be listed (ownership as at boot).
//!
//! Integers may be numbers or `"0x..."` strings, as in the scenario format.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

fn all_scenarios() -> Vec<PathBuf> {
    corevisor_sim::scenario::files_under(&scenarios_dir()).expect("scenarios/ exists")
}

fn int(v: &Value) -> i128 {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or(n.as_u64().map(i128::from))
            .expect("integer"),
        Value::String(s) => {
            let s = s.trim();
            if let Some(h) = s.strip_prefix("0x") {
                i128::from_str_radix(&h.replace('_', ""), 16).expect("hex integer")
            } else {
                s.parse().expect("decimal integer")
            }
        }
        other => panic!("not an integer: {other}"),
    }
}

/// Runs the file with the model engine, or (`core`) with KCore beside the model
/// (`--engine core --check`: exit 1 on any mismatch).
fn run(file: &Path, profile: &str, core: bool) -> (Vec<Value>, Value) {
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--json",
        "--profile",
        profile,
    ];
    if core {
        args.extend(["--engine", "core", "--check"]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_corevisor"))
        .args(&args)
        .output()
        .expect("run corevisor");
    assert!(
        out.status.success(),
        "{} ({profile}): exit {:?}: {}",
        file.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    let last = lines.pop().expect("final object");
    let fin = last
        .get("final")
        .cloned()
        .unwrap_or_else(|| panic!("last line is not the final object: {last}"));
    (lines, fin)
}

/// The expectation for an engine: on the core, an `arm` block's `core` object overrides what
/// the model takes from its oracles and the core computes for real (a device register's
/// value, a shared page's contents, a signature or AEAD verdict); `x0` and `values` merge
/// by step (`null` drops a step), other keys are replaced.
fn for_engine(exp: &Value, core: bool) -> Value {
    let mut e = exp.clone();
    if let (true, Some(over)) = (core, exp.get("core").and_then(Value::as_object)) {
        for (k, v) in over {
            match (k.as_str(), e.get_mut(k.as_str())) {
                ("x0" | "values", Some(Value::Object(m))) => {
                    for (i, x) in v.as_object().expect("an object by step") {
                        if x.is_null() {
                            m.remove(i); // the step does not run on the core
                        } else {
                            m.insert(i.clone(), x.clone());
                        }
                    }
                }
                _ => {
                    e[k.as_str()] = v.clone();
                }
            }
        }
    }
    e
}

fn check(file: &Path, profile: &str, exp: &Value, core: bool) -> Vec<String> {
    let exp = &for_engine(exp, core);
    let (steps, fin) = run(file, profile, core);
    let mut errs = Vec::new();
    let step = |i: usize| steps.iter().find(|s| s["step"].as_u64() == Some(i as u64));
    if let Some(results) = exp.get("results").and_then(Value::as_array) {
        let got: Vec<&str> = steps
            .iter()
            .map(|s| s["result"].as_str().unwrap_or("?"))
            .collect();
        let want: Vec<&str> = results.iter().map(|r| r.as_str().unwrap()).collect();
        if got != want {
            errs.push(format!("results: want {want:?}, got {got:?}"));
        }
    }
    for (key, field) in [("x0", "x0"), ("values", "value")] {
        if let Some(m) = exp.get(key).and_then(Value::as_object) {
            for (i, want) in m {
                let i: usize = i.parse().unwrap();
                match step(i).and_then(|s| s.get(field)) {
                    Some(got) if int(got) == int(want) => {}
                    got => errs.push(format!("step {i} {field}: want {}, got {got:?}", int(want))),
                }
            }
        }
    }
    for key in ["halted", "vms", "invariants"] {
        if let Some(want) = exp.get(key) {
            if fin.get(key) != Some(want) {
                errs.push(format!("final {key}: want {want}, got {:?}", fin.get(key)));
            }
        }
    }
    let pages = fin["pages"].as_array().cloned().unwrap_or_default();
    let listed = |pfn: i128| pages.iter().find(|p| int(&p["pfn"]) == pfn);
    if let Some(m) = exp.get("pages").and_then(Value::as_object) {
        for (pfn, want) in m {
            let pfn = int(&Value::String(pfn.clone()));
            match listed(pfn) {
                None => errs.push(format!(
                    "page {pfn:#x}: expected in final pages, not listed"
                )),
                Some(got) => {
                    for f in ["owner", "count", "gfn"] {
                        if let Some(w) = want.get(f) {
                            if int(&got[f]) != int(w) {
                                errs.push(format!(
                                    "page {pfn:#x} {f}: want {}, got {}",
                                    int(w),
                                    got[f]
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(list) = exp.get("unchanged_pages").and_then(Value::as_array) {
        for pfn in list {
            if let Some(p) = listed(int(pfn)) {
                errs.push(format!(
                    "page {:#x}: expected unchanged since boot, got {p}",
                    int(pfn)
                ));
            }
        }
    }
    errs
}

#[test]
fn every_scenario_meets_its_expectations() {
    let files = all_scenarios();
    assert!(
        files.len() >= 20,
        "scenarios/ must hold at least 20 files, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    let mut runs = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let doc: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let expect = doc
            .get("expect")
            .and_then(Value::as_object)
            .unwrap_or_else(|| {
                panic!(
                    "{}: every scenario states its expected outcome (`expect`)",
                    f.display()
                )
            });
        assert!(
            !expect.is_empty(),
            "{}: `expect` names no profile",
            f.display()
        );
        for (profile, exp) in expect {
            // Issue 10: an `arm` expectation holds on KCore beside the model too.
            let engines: &[bool] = if profile == "arm" {
                &[false, true]
            } else {
                &[false]
            };
            for &core in engines {
                runs += 1;
                let engine = if core { "core --check" } else { "model" };
                for e in check(f, profile, exp, core) {
                    failures.push(format!("{} [{profile}, {engine}]: {e}", f.display()));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} scenario runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
