//! `corevisor run ... --trace FILE`: a JSON Lines trace of a run.
//!
//! Line 1: `{"trace": "corevisor", "scenario", "profile", "engine", "machine"}`; then one
//! line per raw step: `{"seq", "step", "via", "cpu", "principal", "entry" (KCore's entry
//! points the step ran), "action", "arguments", "result", "x0", "value", "time_ns",
//! "owners" ([pfn, new owner] for pages whose owner changed), "mismatches"}`; last line
//! `{"final": ...}` as `run --json` prints it.

use corevisor_check::runner::RunOutput;
use corevisor_sim::scenario::{Action, HvcCall, Scenario};
use serde_json::{json, Value};

fn arguments(a: &Action) -> Value {
    match a {
        Action::Hvc { call, args } => {
            let name = match call {
                HvcCall::Named(n) => n.name().to_string(),
                HvcCall::Raw(v) => format!("{v}"),
            };
            json!({"call": name, "args": args.iter().map(|x| format!("{x:#x}")).collect::<Vec<_>>()})
        }
        _ => Value::Null,
    }
}

/// The trace of `r` (a run of `sc`) as JSON Lines.
pub fn lines(sc: &Scenario, engine: &str, r: &RunOutput, fin: Value) -> Vec<String> {
    let m = &sc.machine;
    let mut out = vec![json!({
        "trace": "corevisor",
        "scenario": sc.name,
        "profile": r.profile,
        "engine": engine,
        "machine": {
            "cpus": m.cpus.unwrap_or(2) as i64,
            "ram_base": m.ram_base.unwrap_or(0x4000_0000) as i64,
            "ram_mib": m.ram_mib.unwrap_or(256) as i64,
            "kcore_mib": m.kcore_mib.unwrap_or(32) as i64,
        },
    })
    .to_string()];
    for (seq, s) in r.steps.iter().enumerate() {
        let st = &s.report;
        let args = arguments(&s.action);
        out.push(
            json!({
                "seq": seq,
                "step": st.step,
                "via": s.via,
                "cpu": st.cpu as i64,
                "principal": s.principal,
                "entry": s.traps,
                "action": st.what,
                "arguments": args,
                "result": st.result.as_str(),
                "x0": st.x0.map(|v| format!("{v:#x}")),
                "value": st.value.map(|v| format!("{v:#x}")),
                "time_ns": s.nanos as u64,
                "owners": s.owners.iter().map(|(p, o)| json!([*p as i64, *o as i64])).collect::<Vec<_>>(),
                "mismatches": s.mismatches,
                "broken": st.broken,
            })
            .to_string(),
        );
    }
    out.push(fin.to_string());
    out
}
