//! `corevisor`: run scenarios on the reference model of SeKVM's KCore, and the demo.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand, ValueEnum};
use corevisor_check::engine::{self, FinalReport, Outcome, StepReport};
use corevisor_check::invariants;
use corevisor_check::runner::{self, EngineKind, RunOutput};
use corevisor_sim::scenario;
use corevisor_spec::ProfileKind;
use serde_json::{json, Value};
use std::process::ExitCode;

/// corevisor — SeKVM's verified hypervisor core (KCore) in Rust, with an executable copy of
/// its specification.
#[derive(Parser)]
#[command(name = "corevisor", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a built-in VM lifecycle on the reference model and explain each step.
    Demo,
    /// Run a scenario file (JSON; see README "Running a scenario").
    Run {
        /// The scenario file.
        file: String,
        /// Which implementation runs the steps.
        #[arg(long, value_enum, default_value_t = Engine::Model)]
        engine: Engine,
        /// Override the file's profile: `seed` (Coq constants, quirks literal) or `arm`.
        #[arg(long, value_enum)]
        profile: Option<ProfileArg>,
        /// Print JSON Lines: one object per step, then the final object.
        #[arg(long)]
        json: bool,
        /// Run the model beside the core and compare abs(core) with it after every step
        /// (core engine only); exits 1 on any mismatch.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Engine {
    /// The reference model (crates/spec).
    Model,
    /// KCore (crates/kcore) on the simulated machine (crates/sim); `arm` profile.
    Core,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProfileArg {
    Seed,
    Arm,
}

const LIFECYCLE: &str = include_str!("../../../scenarios/lifecycle.json");

fn num(v: i128) -> Value {
    if let Ok(x) = i64::try_from(v) {
        json!(x)
    } else if let Ok(x) = u64::try_from(v) {
        json!(x)
    } else {
        json!(format!("{v:#x}"))
    }
}

fn step_json(s: &StepReport) -> Value {
    let mut o =
        json!({"step": s.step, "kind": s.kind, "cpu": num(s.cpu), "result": s.result.as_str()});
    if let Some(x0) = s.x0 {
        o["x0"] = num(x0);
    }
    if let Some(v) = s.value {
        o["value"] = num(v);
    }
    if !s.broken.is_empty() {
        o["broken"] = json!(s.broken);
    }
    o
}

fn final_json(f: &FinalReport) -> Value {
    let vms: Vec<Value> = f
        .vms
        .iter()
        .map(|v| json!({"vmid": num(v.vmid), "state": v.state, "vcpus": v.vcpus}))
        .collect();
    let pages: Vec<Value> = f
        .pages
        .iter()
        .map(|p| json!({"pfn": num(p.pfn), "owner": num(p.owner), "count": num(p.count), "gfn": num(p.gfn)}))
        .collect();
    let inv = if f.broken.is_empty() {
        json!("ok")
    } else {
        json!(f.broken)
    };
    json!({"final": {"halted": f.halted, "vms": vms, "pages": pages, "invariants": inv}})
}

fn print_human(name: &str, profile: &str, r: &RunOutput, check: bool) {
    println!("scenario {name} (profile {profile})");
    for s in &r.steps {
        let st = &s.report;
        let mut extra = String::new();
        if let Some(x0) = st.x0 {
            extra.push_str(&format!(" x0={x0:#x}"));
        }
        if let Some(v) = st.value {
            extra.push_str(&format!(" value={v:#x}"));
        }
        if !st.broken.is_empty() {
            extra.push_str(&format!("  BROKEN: {}", st.broken.join(", ")));
        }
        let via = s.via.map(|v| format!("[{v}] ")).unwrap_or_default();
        println!(
            "step {:>3}  cpu{}  {via}{:<44} {:<9}{extra}",
            st.step,
            st.cpu,
            st.what,
            st.result.as_str()
        );
        for m in &s.mismatches {
            println!("           MISMATCH: {m}");
        }
    }
    let f = &r.fin;
    println!("halted: {}", f.halted);
    for v in &f.vms {
        println!("vm {}: {}  vcpus [{}]", v.vmid, v.state, v.vcpus.join(", "));
    }
    println!("pages changed since boot: {}", f.pages.len());
    if f.broken.is_empty() {
        println!(
            "invariants: ok ({} checked after every step)",
            invariants::ALL.len()
        );
    } else {
        println!("invariants BROKEN: {}", f.broken.join(", "));
    }
    if check {
        let n = r.mismatches();
        if n == 0 {
            println!(
                "check: abs(core) = model after every one of {} steps",
                r.steps.len()
            );
        } else {
            println!("check: {n} MISMATCHES");
        }
    }
}

fn run_file(
    file: &str,
    engine: Engine,
    profile: Option<ProfileArg>,
    json_out: bool,
    check: bool,
) -> ExitCode {
    if check && matches!(engine, Engine::Model) {
        eprintln!("corevisor: --check compares the core with the model: use it with --engine core");
        return ExitCode::from(2);
    }
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{file}: cannot read: {e}");
            return ExitCode::from(2);
        }
    };
    let sc = match scenario::parse(file, &text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let kind = profile.map(|p| match p {
        ProfileArg::Seed => ProfileKind::Seed,
        ProfileArg::Arm => ProfileKind::Arm,
    });
    let ek = match (engine, check) {
        (Engine::Model, _) => EngineKind::Model,
        (Engine::Core, false) => EngineKind::Core,
        (Engine::Core, true) => EngineKind::Checked,
    };
    let r = match runner::run(&sc, ek, kind) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{file}: {e}");
            return ExitCode::from(2);
        }
    };
    if json_out {
        for s in &r.steps {
            let mut o = step_json(&s.report);
            if let Some(v) = s.via {
                o["via"] = json!(v);
            }
            if check {
                o["mismatches"] = json!(s.mismatches);
            }
            println!("{o}");
        }
        let mut f = final_json(&r.fin);
        if check {
            let n = r.mismatches();
            f["final"]["check"] = if n == 0 { json!("ok") } else { json!(n) };
        }
        println!("{f}");
    } else {
        print_human(&sc.name, r.profile, &r, check);
    }
    if check && (r.mismatches() > 0 || !r.fin.broken.is_empty()) {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// One sentence per step of the demo: what the step shows.
fn explain(s: &StepReport) -> String {
    let r = s.result;
    match (s.kind, r) {
        (_, Outcome::Halt) => "KCore refused and stopped the machine (defined panic)".into(),
        (_, Outcome::Undefined) => "outside the specification's contract".into(),
        ("guest_load" | "guest_store", Outcome::Fault) => {
            "stage-2 fault: the vCPU exits to the host, which must propose a mapping".into()
        }
        ("host_load" | "host_store" | "dma_load" | "dma_store", Outcome::Fault) => {
            "the access was refused by the hardware".into()
        }
        ("hvc", _) if s.what.ends_with("REGISTER_KVM") => {
            format!("accepted: the new VM is vmid {}", s.x0.unwrap_or(0))
        }
        ("hvc", _) => "accepted".into(),
        ("vcpu_run", _) => "KCore checked the request and entered the VM".into(),
        ("guest_load" | "host_load" | "dma_load", _) => format!("read {:#x}", s.value.unwrap_or(0)),
        ("guest_hvc", _) => "KCore updated the page's share count and resumed the guest".into(),
        ("guest_psci", _) => "the VM is powered off; the vCPU returns to the host".into(),
        ("guest_store" | "host_store" | "dma_store", _) => "written".into(),
        _ => "done".into(),
    }
}

fn demo() -> ExitCode {
    let sc = match scenario::parse("scenarios/lifecycle.json", LIFECYCLE) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "corevisor demo: one VM's whole life on the reference model of SeKVM's KCore (profile arm)"
    );
    if let Some(d) = &sc.description {
        println!("{d}\n");
    }
    let r = match engine::run(&sc, Some(ProfileKind::Arm)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    for s in &r.steps {
        let inv = if s.broken.is_empty() {
            "invariants ok".to_string()
        } else {
            format!("BROKEN: {}", s.broken.join(", "))
        };
        println!(
            "{:>2}. cpu{} {:<42} {:<6} {} [{inv}]",
            s.step,
            s.cpu,
            s.what,
            s.result.as_str(),
            explain(s)
        );
    }
    println!();
    for v in &r.fin.vms {
        println!("vm {}: {} (vcpus: {})", v.vmid, v.state, v.vcpus.join(", "));
    }
    println!(
        "{} pages changed owner or metadata since boot; {} invariants checked after each of {} steps: {}",
        r.fin.pages.len(),
        invariants::ALL.len(),
        r.steps.len(),
        if r.fin.broken.is_empty() { "all held".to_string() } else { format!("BROKEN {}", r.fin.broken.join(", ")) }
    );
    if r.fin.broken.is_empty() && !r.fin.halted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Demo => demo(),
        Cmd::Run {
            file,
            engine,
            profile,
            json,
            check,
        } => run_file(&file, engine, profile, json, check),
    }
}
