//! Runs a scenario on any engine — the model, the core, or both in lockstep — with the host
//! model carrying out `host` macro steps through the same engine, so a macro's raw steps
//! are run and checked exactly like the file's own.

use crate::engine::{describe, EngineError, FinalReport, ModelMachine, Outcome, StepReport};
use crate::lockstep::{abstract_machine, Lockstep};
use corevisor_sim::host::{Driver, HostModel, Raw};
use corevisor_sim::machine::CoreMachine;
use corevisor_sim::scenario::{Action, Scenario, Step};
use corevisor_spec::profile::ProfileKind;
use corevisor_spec::Z;
use std::collections::BTreeSet;

/// Which implementation runs the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// The reference model alone.
    Model,
    /// KCore on the simulated machine alone (invariants on `abs`).
    Core,
    /// KCore with the model beside it, compared after every step.
    Checked,
}

/// One raw step of a run.
#[derive(Clone, Debug)]
pub struct RunStep {
    pub report: StepReport,
    /// The host macro this step belongs to (`create_vm`, ...), if any.
    pub via: Option<&'static str>,
    /// `Checked` only: what differs between core and model after the step.
    pub mismatches: Vec<String>,
    /// Who acted: `host`, `vm N` (the VM on that CPU), `device smmu S bank C`.
    pub principal: String,
    /// KCore's entry points the step ran (the core's; inferred from the step on the model).
    pub traps: Vec<&'static str>,
    /// Traced runs: pages whose owner changed in this step, with the new owner.
    pub owners: Vec<(Z, Z)>,
    /// Traced runs: nanoseconds since the run started, when the step ended.
    pub nanos: u128,
    /// The raw step as run.
    pub action: Action,
}

/// A whole run.
#[derive(Clone, Debug)]
pub struct RunOutput {
    pub steps: Vec<RunStep>,
    pub fin: FinalReport,
    pub profile: &'static str,
}

impl RunOutput {
    pub fn mismatches(&self) -> usize {
        self.steps.iter().map(|s| s.mismatches.len()).sum()
    }
}

enum Backend {
    Model(ModelMachine),
    Core(Box<CoreMachine>, ModelMachine),
    Checked(Box<Lockstep>),
}

struct Run {
    backend: Backend,
    steps: Vec<RunStep>,
    broken: BTreeSet<&'static str>,
    index: usize,
    halted: bool,
    /// Traced runs: the owner of every page whose metadata differs from boot.
    owners: Option<std::collections::BTreeMap<Z, Z>>,
    start: std::time::Instant,
}

/// The entry points a step runs on the model (the model engine does not list them).
fn model_traps(r: &StepReport) -> Vec<&'static str> {
    match r.kind {
        "hvc" if r.what.ends_with("VCPU_RUN") => vec!["host_vcpu_run_handler"],
        "hvc" => vec!["host_hvc_handler"],
        "vcpu_run" => vec!["host_vcpu_run_handler"],
        "guest_hvc" | "guest_psci" | "guest_wfx" | "guest_sysreg" | "guest_exception" | "irq" => {
            vec!["vm_exit_handler"]
        }
        "guest_load" | "guest_store" if r.result == Outcome::Fault => vec!["vm_exit_handler"],
        _ => vec![],
    }
}

fn z(v: u64) -> Z {
    Z::from(v)
}

impl Run {
    fn exec(&mut self, st: &Step, via: Option<&'static str>) -> Result<StepReport, EngineError> {
        let st = Step {
            index: self.index,
            ..st.clone()
        };
        let principal = self.principal(&st);
        let (report, mismatches, traps) = match &mut self.backend {
            Backend::Model(m) => {
                let r = m.step(&st)?;
                let t = model_traps(&r);
                (r, vec![], t)
            }
            Backend::Checked(l) => {
                let r = l.step(&st)?;
                let t = r.core.traps.iter().map(|t| t.0).collect();
                // Outside the spec's contract the run stops; it is not a failure.
                self.halted |= r.outside_contract;
                (r.model, r.mismatches, t)
            }
            Backend::Core(c, template) => {
                if !(0..template.cpus.len() as Z).contains(&st.cpu) {
                    template.step(&st)?;
                }
                let r = c.step(&st);
                let broken = abstract_machine(c, template).broken_invariants();
                let result = r.outcome;
                let report = StepReport {
                    step: st.index,
                    kind: st.action.kind(),
                    cpu: st.cpu,
                    what: describe(&st.action),
                    result,
                    x0: r.x0.map(z),
                    value: r.value.map(z),
                    broken,
                };
                (report, vec![], r.traps.iter().map(|t| t.0).collect())
            }
        };
        self.broken.extend(report.broken.iter().copied());
        self.halted |= report.result == Outcome::Halt;
        let owners = self.owner_changes();
        self.steps.push(RunStep {
            report: report.clone(),
            via,
            mismatches,
            principal,
            traps,
            owners,
            nanos: self.start.elapsed().as_nanos(),
            action: st.action.clone(),
        });
        Ok(report)
    }

    /// Who acts in step `st`, from what its CPU runs before it.
    fn principal(&self, st: &Step) -> String {
        match &st.action {
            Action::DmaLoad { smmu, cb, .. } | Action::DmaStore { smmu, cb, .. } => {
                return format!("device smmu {smmu} bank {cb}")
            }
            Action::Hvc { .. }
            | Action::VcpuRun { .. }
            | Action::HostLoad { .. }
            | Action::HostStore { .. } => return "host".into(),
            _ => {}
        }
        let vm = match &self.backend {
            Backend::Model(m) => m.cpus.get(st.cpu as usize).map(|c| c.cur_vmid),
            Backend::Checked(l) => l.model.cpus.get(st.cpu as usize).map(|c| c.cur_vmid),
            Backend::Core(c, _) => c.cpus.get(st.cpu as usize).map(|c| Z::from(c.run.cur_vmid)),
        };
        match vm {
            Some(v) if v > 0 => format!("vm {v}"),
            _ => "host".into(),
        }
    }

    /// Traced runs: pages whose owner changed since the last step.
    fn owner_changes(&mut self) -> Vec<(Z, Z)> {
        let Some(prev) = self.owners.take() else {
            return vec![];
        };
        let (now, boot): (std::collections::BTreeMap<Z, Z>, _) = {
            let (machine, shared) = match &self.backend {
                Backend::Model(m) => (&m.machine, m.global.shared.clone()),
                Backend::Checked(l) => (&l.model.machine, l.model.global.shared.clone()),
                Backend::Core(c, t) => (
                    &t.machine,
                    crate::abs::abs_shared(&c.core, &t.global.shared),
                ),
            };
            let now = shared
                .s2page
                .entries()
                .filter(|(pfn, p)| **p != machine.boot_s2page(*pfn))
                .map(|(pfn, p)| (pfn, p.s2_owner))
                .collect();
            (now, machine.clone())
        };
        let mut out = Vec::new();
        for (pfn, o) in &now {
            if prev.get(pfn) != Some(o) {
                out.push((*pfn, *o));
            }
        }
        for pfn in prev.keys() {
            if !now.contains_key(pfn) {
                out.push((*pfn, boot.boot_s2page(*pfn).s2_owner));
            }
        }
        out.sort_unstable();
        self.owners = Some(now);
        out
    }

    fn final_report(&self) -> FinalReport {
        let broken = self.broken.iter().copied().collect();
        match &self.backend {
            Backend::Model(m) => m.final_report(broken),
            Backend::Core(c, t) => abstract_machine(c, t).final_report(broken),
            Backend::Checked(l) => abstract_machine(&l.core, &l.model).final_report(broken),
        }
    }
}

/// The host model's raw steps go through the run; an engine error becomes the macro's.
struct MacroDriver<'a> {
    run: &'a mut Run,
    error: Option<EngineError>,
}

impl Driver for MacroDriver<'_> {
    fn raw(&mut self, step: &Step, via: &'static str) -> Result<Raw, String> {
        let r = self.run.exec(step, Some(via)).map_err(|e| {
            let msg = e.0.clone();
            self.error = Some(e);
            msg
        })?;
        let u = |v: Option<Z>| v.map(|x| x as u64);
        let outcome = r.result;
        Ok(Raw {
            outcome,
            x0: u(r.x0),
            value: u(r.value),
        })
    }
}

/// Runs `sc` on `engine`; stops after a halt.
pub fn run(
    sc: &Scenario,
    engine: EngineKind,
    profile: Option<ProfileKind>,
) -> Result<RunOutput, EngineError> {
    run_traced(sc, engine, profile, false)
}

/// As [`run`]; with `trace`, every step also records the pages whose owner it changed.
pub fn run_traced(
    sc: &Scenario,
    engine: EngineKind,
    profile: Option<ProfileKind>,
    trace: bool,
) -> Result<RunOutput, EngineError> {
    run_with_progress(sc, engine, profile, trace, &mut |_, _| {})
}

/// As [`run_traced`], calling `progress(done, total)` after each step of the file.
pub fn run_with_progress(
    sc: &Scenario,
    engine: EngineKind,
    profile: Option<ProfileKind>,
    trace: bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<RunOutput, EngineError> {
    let model = ModelMachine::for_scenario(sc, profile)?;
    let profile_name = model.profile.name();
    let m = model.machine.clone();
    let backend = match engine {
        EngineKind::Model => Backend::Model(model),
        EngineKind::Checked => Backend::Checked(Box::new(Lockstep::for_scenario(sc, profile)?)),
        EngineKind::Core => {
            // The core implements the arm profile; `for_scenario` says so for seed.
            let l = Lockstep::for_scenario(sc, profile)?;
            Backend::Core(Box::new(l.core), l.model)
        }
    };
    let mut host = HostModel::new(m.ram_base as u64, m.kcore_base() as u64);
    let mut r = Run {
        backend,
        steps: vec![],
        broken: BTreeSet::new(),
        index: 0,
        halted: false,
        owners: trace.then(std::collections::BTreeMap::new),
        start: std::time::Instant::now(),
    };
    for (done, st) in sc.steps.iter().enumerate() {
        progress(done, sc.steps.len());
        r.index = st.index;
        match &st.action {
            Action::Host(mac) => {
                let mut d = MacroDriver {
                    run: &mut r,
                    error: None,
                };
                if let Err(msg) = host.exec(st.cpu, mac, &mut d) {
                    return Err(d.error.unwrap_or_else(|| {
                        EngineError(format!("step {}: field \"host\": {msg}", st.index))
                    }));
                }
            }
            _ => {
                r.exec(st, None)?;
            }
        }
        if r.halted {
            break;
        }
    }
    Ok(RunOutput {
        fin: r.final_report(),
        steps: r.steps,
        profile: profile_name,
    })
}
