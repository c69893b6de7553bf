//! The binary's contract: malformed scenario files give one line naming the step and the
//! field and exit 2; the demo runs and exits 0; unsupported engines are refused clearly.

use std::path::PathBuf;
use std::process::{Command, Output};

fn corevisor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corevisor"))
        .args(args)
        .output()
        .expect("run corevisor")
}

fn scenario_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("corevisor-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const GOOD: &str = r#"{ "name": "t", "profile": "arm",
  "steps": [
    { "cpu": 0, "hvc": ["REGISTER_KVM"] },
    { "cpu": 0, "hvc": ["REGISTER_VCPU", 1, 0] },
    { "cpu": 1, "vcpu_run": { "vm": 1, "vcpu": 0 } }
  ] }"#;

/// Runs a malformed file; returns its single stderr line.
fn refused(name: &str, text: &str) -> String {
    let p = scenario_file(name, text);
    let out = corevisor(&["run", p.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2), "{name}: exit status");
    assert!(out.stdout.is_empty(), "{name}: nothing on stdout");
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{name}: one line, got {err:?}");
    lines[0].to_string()
}

#[test]
fn a_good_file_runs() {
    let p = scenario_file("good.json", GOOD);
    let out = corevisor(&["run", p.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 4);
    assert!(text.lines().next().unwrap().contains(r#""x0":1"#));
    // The last step runs a vCPU of an unverified VM: KCore halts.
    assert!(text.lines().nth(2).unwrap().contains(r#""result":"halt""#));
}

#[test]
fn bad_json() {
    let e = refused(
        "badjson.json",
        &GOOD.replace("\"steps\": [", "\"steps\": [[ ,"),
    );
    assert!(e.contains("line 2") && e.contains("invalid JSON"), "{e}");
}

#[test]
fn unknown_key() {
    let e = refused(
        "unknown.json",
        &GOOD.replace("\"vcpu\": 0 }", "\"vcpu\": 0, \"colour\": 3 }"),
    );
    assert!(
        e.contains("step 2 (line 5)")
            && e.contains("\"vcpu_run\"")
            && e.contains("unknown field \"colour\""),
        "{e}"
    );
}

#[test]
fn unknown_hypercall_name() {
    let e = refused("name.json", &GOOD.replace("REGISTER_VCPU", "REGISTER_CPU"));
    assert!(
        e.contains("step 1 (line 4)")
            && e.contains("field \"hvc\"")
            && e.contains("unknown hypercall name \"REGISTER_CPU\""),
        "{e}"
    );
}

#[test]
fn missing_field() {
    let e = refused("missing.json", &GOOD.replace("\"vm\": 1, ", ""));
    assert!(
        e.contains("step 2 (line 5)") && e.contains("missing field \"vm\""),
        "{e}"
    );
}

#[test]
fn bad_machine_and_cpu() {
    let e = refused(
        "machine.json",
        &GOOD.replace(
            "\"profile\": \"arm\",",
            "\"profile\": \"arm\", \"machine\": {\"ram_base\": 0},",
        ),
    );
    assert!(e.contains("machine.ram_base"), "{e}");
    let e = refused("cpu.json", &GOOD.replace("\"cpu\": 1,", "\"cpu\": 9,"));
    assert!(e.contains("step 2") && e.contains("\"cpu\""), "{e}");
    let e = refused(
        "host.json",
        &GOOD.replace(
            "{ \"cpu\": 0, \"hvc\": [\"REGISTER_KVM\"] }",
            "{ \"host\": {\"create_vm\": {\"vcpus\": 99}} }",
        ),
    );
    assert!(
        e.contains("step 0") && e.contains("host.create_vm.vcpus"),
        "{e}"
    );
    let e = refused(
        "host2.json",
        &GOOD.replace(
            "{ \"cpu\": 0, \"hvc\": [\"REGISTER_KVM\"] }",
            "{ \"host\": {\"create_vm\": {\"image\": \"nope\"}} }",
        ),
    );
    assert!(
        e.contains("step 0") && e.contains("host.create_vm.image"),
        "{e}"
    );
}

#[test]
fn core_engine_runs_and_checks_against_the_model() {
    let p = scenario_file("good2.json", GOOD);
    let out = corevisor(&[
        "run",
        p.to_str().unwrap(),
        "--engine",
        "core",
        "--check",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[0]["x0"], 1,
        "REGISTER_KVM returns vmid 1 from the core"
    );
    // The vCPU of a READY (unverified) VM is not runnable: KCore halts.
    assert_eq!(lines[2]["result"], "halt");
    assert_eq!(lines[2]["mismatches"], serde_json::json!([]));
    assert_eq!(lines[3]["final"]["check"], "ok");
    // Without --check the core runs alone and reports the same.
    let out = corevisor(&["run", p.to_str().unwrap(), "--engine", "core", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let alone: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alone[2]["result"], "halt");
    assert!(alone[3]["final"].get("check").is_none());
}

#[test]
fn core_engine_refuses_what_it_cannot_run_in_one_line() {
    let p = scenario_file("good3.json", GOOD);
    for args in [
        vec![
            "run",
            p.to_str().unwrap(),
            "--engine",
            "core",
            "--profile",
            "seed",
        ],
        vec!["run", p.to_str().unwrap(), "--check"],
    ] {
        let out = corevisor(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8(out.stderr).unwrap().lines().count(),
            1,
            "{args:?}"
        );
    }
}

#[test]
fn demo_runs_and_names_each_defence() {
    let t = std::time::Instant::now();
    let out = corevisor(&["demo"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        t.elapsed().as_secs() < 60,
        "the demo must finish in under a minute"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for defence in [
        "SMMU fault",
        "scrubbed",
        "halts the machine",
        "refuses the SMMU mapping",
        "refuses the page it does not own",
        "Ed25519 verification fails",
        "CLIENTPD forced off",
    ] {
        assert!(text.contains(defence), "{defence}: {text}");
    }
    assert_eq!(text.matches("[ok]").count(), 7, "{text}");
    assert!(!text.contains("FAILED"), "{text}");
    assert!(text.contains("(0 mismatches)"), "{text}");
    assert!(text.contains("VM 1 POWEROFF, VM 2 POWEROFF"), "{text}");
}

#[test]
fn help_names_every_command_and_option() {
    let text = |args: &[&str]| {
        let out = corevisor(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let top = text(&["--help"]);
    for c in ["demo", "run", "report", "KCore"] {
        assert!(top.contains(c), "--help lacks {c}: {top}");
    }
    let run = text(&["run", "--help"]);
    for o in [
        "--engine",
        "model",
        "core",
        "--profile",
        "--json",
        "--check",
        "--trace",
        "Exit status",
    ] {
        assert!(run.contains(o), "run --help lacks {o}: {run}");
    }
    let report = text(&["report", "--help"]);
    assert!(
        report.contains("--output") && report.contains("<TRACE>"),
        "{report}"
    );
    assert!(text(&["demo", "--help"]).contains("attacks"));
}

#[test]
fn more_host_ram_than_its_stage2_pool_maps_is_refused() {
    // Issue 20: 2.5 GiB with 32 MiB for KCore leaves the host 2528 MiB, 1264 regions of
    // 2 MiB; its pool has 1003 level-3 tables under arm (docs/deviations.md).
    let big = GOOD.replace(
        "\"profile\": \"arm\",",
        "\"profile\": \"arm\", \"machine\": { \"ram_mib\": 2560, \"kcore_mib\": 32 },",
    );
    for engine in ["model", "core"] {
        let p = scenario_file("big.json", &big);
        let out = corevisor(&["run", p.to_str().unwrap(), "--engine", engine]);
        assert_eq!(out.status.code(), Some(2), "{engine}: exit status");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{engine}: one line, got {err:?}");
        assert!(
            err.contains("\"machine.ram_mib\"") && err.contains("1003"),
            "{engine}: {err}"
        );
    }
    // Within the pool (2002 MiB below KCore, 1001 regions and the 2 of the devices), it runs.
    let p = scenario_file(
        "fits.json",
        &big.replace("\"kcore_mib\": 32", "\"kcore_mib\": 558"),
    );
    let out = corevisor(&["run", p.to_str().unwrap(), "--engine", "core"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_kcore_region_too_small_for_its_pools_is_refused() {
    // Issue 9: 4 MiB cannot hold the arm profile's 20 MiB of table pools.
    let small = GOOD.replace(
        "\"profile\": \"arm\",",
        "\"profile\": \"arm\", \"machine\": { \"ram_mib\": 64, \"kcore_mib\": 4 },",
    );
    for engine in ["model", "core"] {
        let p = scenario_file("small.json", &small);
        let out = corevisor(&["run", p.to_str().unwrap(), "--engine", engine]);
        assert_eq!(out.status.code(), Some(2), "{engine}: exit status");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{engine}: one line, got {err:?}");
        assert!(
            err.contains("\"machine.kcore_mib\"") && err.contains("needs"),
            "{engine}: {err}"
        );
    }
    // The same machine with room for them runs.
    let p = scenario_file(
        "roomy.json",
        &small.replace("\"kcore_mib\": 4", "\"kcore_mib\": 24"),
    );
    let out = corevisor(&["run", p.to_str().unwrap(), "--engine", "core", "--check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn layout_prints_the_region_map_or_refuses_a_small_region() {
    let out = corevisor(&["layout"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for slot in [
        "KCore's region 0x4e000000..0x50000000",
        "page metadata (8 bytes per RAM page)",
        "stage-2 table pools (17 principals)",
        "SMMU table pool",
        "per GiB of RAM: 2.00 MiB of metadata",
    ] {
        assert!(text.contains(slot), "{slot}: {text}");
    }
    let small = scenario_file(
        "small-layout.json",
        r#"{"name": "s", "machine": {"ram_mib": 64, "kcore_mib": 4}, "steps": []}"#,
    );
    let out = corevisor(&["layout", small.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("machine.kcore_mib"));
}

/// The real QEMU trace excerpt `crates/check` tests against (docs/el2.md, "The trace").
const EL2_EXCERPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../check/tests/data/qemu-trace-excerpt.jsonl"
);

#[test]
fn check_trace_agrees_with_a_real_trace_and_reports_planted_faults() {
    let out = corevisor(&["check-trace", EL2_EXCERPT]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("check-trace: 103 steps, 0 mismatches"),
        "{text}"
    );

    // REGISTER_KVM's x0 changed: exit 1, one line naming entry, CPU, entry point, field and
    // both values.
    let good = std::fs::read_to_string(EL2_EXCERPT).unwrap();
    let at = good.find("\"call\":\"REGISTER_KVM\"").unwrap();
    let mut bad = good.clone();
    let x0 = at + bad[at..].find("\"x0\":\"0x1\"").unwrap();
    bad.replace_range(x0..x0 + 10, "\"x0\":\"0x5\"");
    let p = scenario_file("tampered-trace.jsonl", &bad);
    let out = corevisor(&["check-trace", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(
            "mismatch at entry 29 (line 33, cpu 0, host_hvc_handler): x0: trace 0x5, model 0x1"
        ),
        "{text}"
    );

    // Cut short: exit 2, one line on stderr naming the line and the field.
    let cut: String = good.lines().take(10).map(|l| format!("{l}\n")).collect();
    let p = scenario_file("cut-trace.jsonl", &cut);
    let out = corevisor(&["check-trace", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("line 11: field \"final\""), "{err}");
}

/// `corevisor soak`: the last line is the JSON figures; a short healthy run has no
/// mismatch; a profile the core does not implement is refused.
#[test]
fn soak_reports_its_figures_as_one_json_line() {
    let o = corevisor(&["soak", "--steps", "400", "--seed", "7", "--cpus", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    for k in [
        "steps",
        "sequences",
        "nontrivial_steps",
        "mismatches",
        "invariant_breaks",
        "steps_per_s",
        "seed",
    ] {
        assert!(last.get(k).is_some(), "{k} missing: {last}");
    }
    assert!(last["steps"].as_u64().unwrap() >= 400);
    assert_eq!(last["mismatches"], 0);
    assert_eq!(last["invariant_breaks"], 0);
    assert_eq!(last["seed"], 7);
    assert!(last["nontrivial_steps"].as_u64().unwrap() * 2 > last["steps"].as_u64().unwrap());
    let o = corevisor(&["soak", "--steps", "10", "--profile", "seed"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn parallel_soak_runs_cpus_at_once_and_reports_how_many_were_in_kcore() {
    let o = corevisor(&["soak", "--steps", "600", "--cpus", "4", "--parallel"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let text = String::from_utf8_lossy(&o.stdout);
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["parallel"], true);
    assert_eq!(last["mismatches"], 0, "{last}");
    assert_eq!(last["invariant_breaks"], 0, "{last}");
    assert!(last["steps"].as_u64().unwrap() >= 600, "{last}");
    assert!(last["max_in_core"].as_u64().unwrap() >= 1, "{last}");
}

#[test]
fn bench_reports_the_scaling_curve_of_both_workloads() {
    let o = corevisor(&["bench", "--traps", "200", "--hvcs", "500", "--rounds", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = lines.iter().map(|l| l["bench"].as_str().unwrap()).collect();
    assert_eq!(names, ["null_hvc", "host_fault"]);
    for l in &lines {
        assert_eq!(l["threads"], serde_json::json!([1, 2, 4]));
        assert_eq!(l["speedup"][0], 1.0);
        assert!(l["traps_per_s"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.as_f64().unwrap() > 0.0));
    }
    let o = corevisor(&["bench", "--traps", "0"]);
    assert_eq!(o.status.code(), Some(2));
}
