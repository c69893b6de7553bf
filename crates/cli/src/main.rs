//! `corevisor`: run scenarios on the reference model of SeKVM's KCore, and the demo.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand, ValueEnum};
use corevisor_check::demo;
use corevisor_check::engine::{FinalReport, Outcome, StepReport};
use corevisor_check::invariants;
use corevisor_check::runner::{self, EngineKind, RunOutput};
use corevisor_sim::scenario;
use corevisor_spec::ProfileKind;
use serde_json::{json, Value};
use std::process::ExitCode;

mod layout;
mod report;
mod trace;

/// `println!` that ends the program quietly when stdout is closed (`corevisor ... | head`).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write;
        if writeln!(std::io::stdout(), $($t)*).is_err() {
            std::process::exit(0);
        }
    }};
}

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
    /// Two VMs on a simulated 2-CPU machine, attacks on their memory and how KCore stops
    /// them: every step run on the core beside the specification, invariants checked.
    Demo,
    /// Run a scenario file (JSON; docs/scenario-format.md). Exit status: 0; 1 when --check
    /// finds a mismatch or a broken invariant; 2 for a file that cannot run (one line naming
    /// the step and field).
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
        /// Also write a JSON Lines trace of every step and trap to this file (for
        /// `corevisor report`).
        #[arg(long, value_name = "FILE")]
        trace: Option<String>,
    },
    /// Print the map of KCore's RAM region (docs/kcore-memory.md) for a scenario's machine,
    /// or for the default machine. Exit status 2 when the region cannot hold KCore's state.
    Layout {
        /// A scenario file whose `machine` to use.
        file: Option<String>,
        /// Override the file's profile.
        #[arg(long, value_enum)]
        profile: Option<ProfileArg>,
    },
    /// KCore's trap throughput with 1, 2 and 4 CPUs trapping at once, no lock around the
    /// machine (crates/check/src/scaling.rs): one JSON line per workload with traps per
    /// second and the speed-up over one CPU, measured in this run.
    Bench {
        /// Host stage-2 faults per CPU in each run (each on a fresh page of its own slice).
        #[arg(long, default_value_t = 20_000)]
        traps: u64,
        /// Null hypercalls per CPU in each run (cheap: many, so a run lasts long enough to
        /// time).
        #[arg(long, default_value_t = 2_000_000)]
        hvcs: u64,
        /// Runs per point (the best counts).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Replay a trace of KCore on EL2 hardware (`cargo xtask qemu` writes
    /// target/qemu-trace.jsonl; docs/el2.md) through the reference model and compare every
    /// entry. Exit status: 0 when all agree (one summary line); 1 at the first disagreeing
    /// entry (index, CPU, entry point, field, trace value, model value); 2 for a malformed
    /// trace (one line naming the line and field).
    CheckTrace {
        /// The trace file (JSON Lines).
        file: String,
    },
    /// Random step sequences, steered towards VM lifecycles, on the core beside the model
    /// until N steps have run (crates/check/src/soak.rs). The last line of output is one JSON
    /// object with the figures. Exit status 1 on any mismatch or broken invariant, with the
    /// failing sequence, shrunk, written as a scenario file.
    Soak {
        /// Steps to run (at least).
        #[arg(long)]
        steps: u64,
        /// Seed of the generator.
        #[arg(long, default_value_t = 0x5eed)]
        seed: u64,
        /// CPUs of the machine (at least 2: the host on CPU 0, the VM on CPU 1).
        #[arg(long, default_value_t = 2)]
        cpus: usize,
        /// Profile: the core implements `arm` only.
        #[arg(long, value_enum)]
        profile: Option<ProfileArg>,
        /// Where to write a failing sequence.
        #[arg(long, value_name = "FILE", default_value = "soak-failure.json")]
        out: String,
        /// CPUs as threads at once, with no lock around the machine (crates/check/src/
        /// threads.rs): rounds of one VM lifecycle per CPU, or (about half the rounds, as the
        /// seed picks) contended rounds of one VM's two vCPUs on two CPUs at once, each
        /// round's linearization replayed beside the model. The JSON adds `max_in_core` and
        /// `contended` (rounds).
        #[arg(long)]
        parallel: bool,
        /// What fails a sequence: `refinement` (any difference from the model, a leak or a
        /// broken invariant) or `isolation` (only a leak, a tamper or an invariant the core
        /// breaks on its own: checks that do not trust the seed; issue 20).
        #[arg(long, value_enum, default_value_t = JudgeArg::Refinement)]
        judge: JudgeArg,
    },
    /// Turn a trace (`run --trace`) into one self-contained HTML page: memory ownership over
    /// time, a timeline per VM, the table of traps.
    Report {
        /// The trace file.
        trace: String,
        /// Where to write the page.
        #[arg(short, long, value_name = "FILE", default_value = "report.html")]
        output: String,
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
    say!("scenario {name} (profile {profile})");
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
        say!(
            "step {:>3}  cpu{}  {via}{:<44} {:<9}{extra}",
            st.step,
            st.cpu,
            st.what,
            st.result.as_str()
        );
        for m in &s.mismatches {
            say!("           MISMATCH: {m}");
        }
    }
    let f = &r.fin;
    say!("halted: {}", f.halted);
    for v in &f.vms {
        say!("vm {}: {}  vcpus [{}]", v.vmid, v.state, v.vcpus.join(", "));
    }
    say!("pages changed since boot: {}", f.pages.len());
    if f.broken.is_empty() {
        say!(
            "invariants: ok ({} checked after every step)",
            invariants::ALL.len()
        );
    } else {
        say!("invariants BROKEN: {}", f.broken.join(", "));
    }
    if check {
        let n = r.mismatches();
        if n == 0 {
            say!(
                "check: abs(core) = model after every one of {} steps",
                r.steps.len()
            );
        } else {
            say!("check: {n} MISMATCHES");
        }
    }
}

fn run_file(
    file: &str,
    engine: Engine,
    profile: Option<ProfileArg>,
    json_out: bool,
    check: bool,
    trace_to: Option<&str>,
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
    // A progress bar on stderr for long runs (drawn only on a terminal).
    let bar = indicatif::ProgressBar::new(sc.steps.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(sc.name.clone());
    let r = runner::run_with_progress(&sc, ek, kind, trace_to.is_some(), &mut |done, _| {
        bar.set_position(done as u64)
    });
    bar.finish_and_clear();
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{file}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut fin = final_json(&r.fin);
    if check {
        let n = r.mismatches();
        fin["final"]["check"] = if n == 0 { json!("ok") } else { json!(n) };
    }
    if let Some(path) = trace_to {
        let name = match ek {
            EngineKind::Model => "model",
            EngineKind::Core => "core",
            EngineKind::Checked => "checked",
        };
        let text = trace::lines(&sc, name, &r, fin.clone()).join("\n") + "\n";
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("{path}: cannot write the trace: {e}");
            return ExitCode::from(2);
        }
    }
    if json_out {
        for s in &r.steps {
            let mut o = step_json(&s.report);
            if let Some(v) = s.via {
                o["via"] = json!(v);
            }
            if check {
                o["mismatches"] = json!(s.mismatches);
            }
            say!("{o}");
        }
        say!("{fin}");
    } else {
        print_human(&sc.name, r.profile, &r, check);
    }
    if check && (r.mismatches() > 0 || !r.fin.broken.is_empty()) {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// One line for one step of the demo scenario: what happened, from its raw steps.
fn narrate(st: &scenario::Step, raws: &[&runner::RunStep]) -> String {
    use corevisor_sim::host::HostMacro;
    use scenario::Action;
    let count = |kind: &str, r: Outcome| {
        raws.iter()
            .filter(|s| s.report.kind == kind && s.report.result == r)
            .count()
    };
    let last = raws.last().map(|s| &s.report);
    let traps = raws.len();
    match &st.action {
        Action::Host(HostMacro::CreateVm { vcpus, image, device, .. }) => {
            let vm = raws.first().and_then(|s| s.report.x0).unwrap_or(0);
            let dev = device.map(|(s, c)| format!(", a device on SMMU {s} bank {c}")).unwrap_or_default();
            let verified = last.is_some_and(|r| r.what.ends_with("VERIFY_VM_IMAGE") && r.result == Outcome::Ok);
            format!(
                "the host creates VM {vm}: guest program \"{image}\", {vcpus} vCPU{}{dev} ({traps} steps); {}",
                if *vcpus == 1 { "" } else { "s" },
                if verified { "its Ed25519 image signature checks out" } else { "creation stopped" }
            )
        }
        Action::Host(HostMacro::Run { vm, vcpu, .. }) => {
            let faults = count("guest_load", Outcome::Fault) + count("guest_store", Outcome::Fault);
            let shares = raws.iter().filter(|s| s.report.what.contains("GRANT")).count();
            let off = raws.iter().any(|s| s.report.kind == "guest_psci");
            let mut t = format!("VM {vm} vCPU {vcpu} runs on CPU {} ({traps} steps", st.cpu);
            if faults > 0 {
                t.push_str(&format!(", {faults} stage-2 fault{} served by the host", if faults == 1 { "" } else { "s" }));
            }
            if shares > 0 {
                t.push_str(", shares a page with the host");
            }
            t.push_str(if off { ") and powers off" } else { ") and waits for the host" });
            t
        }
        Action::Host(HostMacro::Share { vm, .. }) => {
            let v = raws.first().and_then(|s| s.report.value).unwrap_or(0);
            format!("the host's backend reads what VM {vm} shared ({v:#x}) and writes its reply")
        }
        Action::Host(HostMacro::DestroyVm { vm }) => format!(
            "the host destroys VM {vm}: its pages ({} ranges) scrubbed by KCore and returned to the host",
            raws.iter().filter(|s| s.report.what.ends_with("CLEAR_VM_S2_RANGE")).count()
        ),
        Action::Hvc { call, .. } => {
            let r = last.expect("one raw step");
            format!("the host calls {call}: {}", r.result.as_str())
        }
        Action::DmaLoad { smmu, cb, iova, .. } => {
            let r = last.expect("one raw step");
            let how = match (r.result, r.value) {
                (Outcome::Fault, _) => "SMMU fault, nothing read".to_string(),
                (_, Some(v)) => format!("reads {v:#x}"),
                (o, None) => o.as_str().to_string(),
            };
            format!("a device reads IOVA {iova:#x} through SMMU {smmu} bank {cb}: {how}")
        }
        Action::HostLoad { addr } => {
            let r = last.expect("one raw step");
            match r.value {
                Some(v) => format!("the host reads {addr:#x}: {v:#x}"),
                None => format!("the host reads {addr:#x}: {}", r.result.as_str()),
            }
        }
        _ => {
            let r = last.expect("one raw step");
            format!("{}: {}", r.what, r.result.as_str())
        }
    }
}

fn demo() -> ExitCode {
    let bar = indicatif::ProgressBar::new(5);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} runs")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("running KCore beside its specification");
    let r = demo::run_demo(|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(1);
        }
    };
    let m = &r.scenario.machine;
    say!("corevisor demo: SeKVM's KCore in Rust, on a simulated ARMv8 machine, checked against its specification at every step");
    say!(
        "machine: {} CPUs, {} MiB of RAM at {:#x} (KCore keeps the top {} MiB), {} SMMUs\n",
        m.cpus.unwrap_or(2),
        m.ram_mib.unwrap_or(256),
        m.ram_base.unwrap_or(0x4000_0000),
        m.kcore_mib.unwrap_or(32),
        m.smmus.unwrap_or(2)
    );
    for st in &r.scenario.steps {
        let raws: Vec<&runner::RunStep> = r
            .main
            .steps
            .iter()
            .filter(|s| s.report.step == st.index)
            .collect();
        if raws.is_empty() {
            continue;
        }
        let ok = raws
            .iter()
            .all(|s| s.mismatches.is_empty() && s.report.broken.is_empty());
        say!(
            "{:>3}. {}  [{}]",
            st.index + 1,
            narrate(st, &raws),
            if ok {
                "invariants ok, core = spec"
            } else {
                "CHECK FAILED"
            }
        );
    }
    say!("\nDefences demonstrated:");
    for (attack, defence, shown) in &r.main_defences {
        say!(
            "  {} {attack}\n      -> {defence}",
            if *shown { "[ok]" } else { "[FAILED]" }
        );
    }
    for d in &r.defences {
        let clean = d.run.mismatches() == 0 && d.run.fin.broken.is_empty();
        say!(
            "  {} {}\n      -> {} (on a copy of the machine after step {})",
            if d.shown && clean { "[ok]" } else { "[FAILED]" },
            d.attack,
            d.defence,
            demo::PREFIX
        );
    }
    let vms: Vec<String> = r
        .main
        .fin
        .vms
        .iter()
        .map(|v| format!("VM {} {}", v.vmid, v.state))
        .collect();
    say!(
        "\nEnd: {}; {} pages differ from boot. {} steps in {} runs: {} invariants held after every step, and after every step the core's state, abstracted, equalled the specification's ({} mismatches).",
        vms.join(", "),
        r.main.fin.pages.len(),
        r.total_steps(),
        r.defences.len() + 1,
        invariants::ALL.len(),
        r.main.mismatches() + r.defences.iter().map(|d| d.run.mismatches()).sum::<usize>()
    );
    if r.all_good() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn report_file(trace_path: &str, output: &str) -> ExitCode {
    let text = match std::fs::read_to_string(trace_path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{trace_path}: cannot read: {e}");
            return ExitCode::from(2);
        }
    };
    let t = match report::parse(&text) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{trace_path}: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::write(output, report::html(&t)) {
        eprintln!("{output}: cannot write: {e}");
        return ExitCode::from(2);
    }
    say!("{output}: {} steps", t.steps.len());
    ExitCode::SUCCESS
}

fn layout_of(file: Option<&str>, profile: Option<ProfileArg>) -> ExitCode {
    let (name, text) = match file {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) => (f, t),
            Err(e) => {
                eprintln!("{f}: cannot read: {e}");
                return ExitCode::from(2);
            }
        },
        None => ("default", r#"{"name": "default", "steps": []}"#.to_string()),
    };
    let kind = profile.map(|p| match p {
        ProfileArg::Seed => ProfileKind::Seed,
        ProfileArg::Arm => ProfileKind::Arm,
    });
    match scenario::parse(name, &text)
        .map_err(|e| e.to_string())
        .and_then(|sc| layout::map(&sc, kind))
    {
        Ok(map) => {
            print!("{map}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn check_trace(file: &str) -> ExitCode {
    use corevisor_check::trace_check::{self, Failure};
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("check-trace: {file}: cannot read: {e}");
            return ExitCode::from(2);
        }
    };
    match trace_check::check(&text) {
        Ok(s) => {
            say!("{s}");
            ExitCode::SUCCESS
        }
        Err(f @ Failure::Malformed(_)) => {
            eprintln!("{file}: {f}");
            ExitCode::from(2)
        }
        Err(f @ Failure::Mismatch(_)) => {
            say!("{file}: {f}");
            ExitCode::from(1)
        }
    }
}

/// `corevisor soak --judge`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum JudgeArg {
    Refinement,
    Isolation,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A planted fault asked of a build that cannot plant any would run the healthy core
    // and pass: refuse instead (`cargo build -p corevisor --features mutants`).
    let asked = std::env::var("COREVISOR_MUTANT").is_ok_and(|m| !m.is_empty());
    if asked && !corevisor_kcore::mutants::ENABLED {
        eprintln!("corevisor: COREVISOR_MUTANT is set but this build has no planted faults (build with --features mutants)");
        return ExitCode::from(2);
    }
    match cli.cmd {
        Cmd::Demo => demo(),
        Cmd::Run {
            file,
            engine,
            profile,
            json,
            check,
            trace,
        } => run_file(&file, engine, profile, json, check, trace.as_deref()),
        Cmd::Report { trace, output } => report_file(&trace, &output),
        Cmd::CheckTrace { file } => check_trace(&file),
        Cmd::Soak {
            steps,
            seed,
            cpus,
            profile,
            out,
            parallel,
            judge,
        } => soak(steps, seed, cpus, profile, &out, parallel, judge),
        Cmd::Layout { file, profile } => layout_of(file.as_deref(), profile),
        Cmd::Bench {
            traps,
            hvcs,
            rounds,
        } => bench(traps, hvcs, rounds),
    }
}

/// `corevisor bench`.
fn bench(traps: u64, hvcs: u64, rounds: usize) -> ExitCode {
    use corevisor_check::scaling::{curve, Workload};
    if !(1..=25_000).contains(&traps) {
        eprintln!(
            "--traps {traps}: between 1 and 25000 (the fresh pages of 4 CPUs must fit the \
             host's stage-2 table pool)"
        );
        return ExitCode::from(2);
    }
    if hvcs == 0 {
        eprintln!("--hvcs 0: at least one");
        return ExitCode::from(2);
    }
    let threads = [1usize, 2, 4];
    for w in Workload::ALL {
        let n = match w {
            Workload::NullHvc => hvcs,
            Workload::HostFault => traps,
        };
        let c = curve(w, &threads, n, rounds);
        let base = c[0].traps_per_s;
        say!(
            "{}",
            json!({
                "bench": w.name(),
                "threads": threads,
                "traps_per_s": c.iter().map(|p| p.traps_per_s.round()).collect::<Vec<_>>(),
                "speedup": c.iter().map(|p| (p.traps_per_s / base * 100.0).round() / 100.0).collect::<Vec<_>>(),
                "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
            })
        );
    }
    ExitCode::SUCCESS
}

/// A soak's failing steps, if any, written to `out` as a scenario: exit status 1 then.
fn write_failing(
    failing: &Option<(Vec<corevisor_sim::scenario::Step>, Vec<String>)>,
    cpus: usize,
    seed: u64,
    out: &str,
    what: &str,
) -> ExitCode {
    let Some((steps, why)) = failing else {
        return ExitCode::SUCCESS;
    };
    let doc = corevisor_check::soak::scenario_json(cpus, seed, steps, why);
    match std::fs::write(
        out,
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n",
    ) {
        Ok(()) => say!(
            "{what} ({} steps) written to {out}: {}",
            steps.len(),
            why.join("; ")
        ),
        Err(e) => eprintln!("{out}: {e}"),
    }
    ExitCode::from(1)
}

/// `corevisor soak --parallel`.
fn soak_parallel(
    steps: u64,
    seed: u64,
    cpus: usize,
    out: &str,
    tty: bool,
    progress: impl FnMut(u64),
) -> ExitCode {
    use corevisor_check::threads;
    let rep = threads::soak_parallel(steps, seed, cpus, &[], progress);
    if tty {
        eprintln!();
    }
    let status = write_failing(
        &rep.failing,
        cpus,
        seed,
        out,
        "failing round's linearization",
    );
    say!(
        "{}",
        json!({
            "steps": rep.steps,
            "sequences": rep.rounds,
            "contended": rep.contended_rounds,
            "nontrivial_steps": rep.nontrivial_steps,
            "mismatches": rep.mismatches,
            "invariant_breaks": rep.invariant_breaks,
            "max_in_core": rep.max_in_core,
            "interleaved": rep.interleaved,
            "steps_per_s": (rep.steps as f64 / rep.seconds.max(1e-9)).round(),
            "seed": rep.seed,
            "parallel": true,
        })
    );
    status
}

/// `corevisor soak`.
fn soak(
    steps: u64,
    seed: u64,
    cpus: usize,
    profile: Option<ProfileArg>,
    out: &str,
    parallel: bool,
    judge: JudgeArg,
) -> ExitCode {
    use corevisor_check::soak;
    use std::io::{IsTerminal, Write};
    if matches!(profile, Some(ProfileArg::Seed)) {
        eprintln!("--profile seed: the core implements the arm profile only; soak runs the core");
        return ExitCode::from(2);
    }
    if !(2..=corevisor_kcore::state::MAX_CPUS).contains(&cpus) {
        eprintln!(
            "--cpus {cpus}: between 2 and {}",
            corevisor_kcore::state::MAX_CPUS
        );
        return ExitCode::from(2);
    }
    let tty = std::io::stderr().is_terminal();
    let start = std::time::Instant::now();
    let mut last = 0.0f64;
    let progress = |done: u64| {
        let t = start.elapsed().as_secs_f64();
        if tty && (t - last > 0.2 || done >= steps) {
            last = t;
            let frac = done as f64 / steps.max(1) as f64;
            let bar = "#".repeat((frac * 40.0) as usize);
            eprint!(
                "\r[{bar:<40}] {done}/{steps} steps, {:.0} steps/s ",
                done as f64 / t.max(1e-9)
            );
            let _ = std::io::stderr().flush();
        }
    };
    if parallel {
        return soak_parallel(steps, seed, cpus, out, tty, progress);
    }
    let judge = match judge {
        JudgeArg::Refinement => soak::Judge::Refinement,
        JudgeArg::Isolation => soak::Judge::Isolation,
    };
    let rep = soak::soak_judged(steps, seed, cpus, judge, progress);
    if tty {
        eprintln!();
    }
    let status = write_failing(&rep.failing, cpus, seed, out, "failing sequence, shrunk");
    let mut line = json!({
        "steps": rep.steps,
        "sequences": rep.sequences,
        "nontrivial_steps": rep.nontrivial_steps,
        "mismatches": rep.mismatches,
        "invariant_breaks": rep.invariant_breaks,
        "steps_per_s": (rep.steps as f64 / rep.seconds.max(1e-9)).round(),
        "seed": rep.seed,
    });
    // Fractions of sequences, to two decimals.
    for (name, f) in rep.fractions() {
        line[name] = json!((f * 100.0).round() / 100.0);
    }
    say!("{line}");
    status
}
