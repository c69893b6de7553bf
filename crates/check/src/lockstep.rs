//! Per-step refinement checking (ARCHITECTURE.md, "Abstraction function and refinement"):
//! the core runs on the simulated machine; after each step the model takes the same step
//! with the same inputs (the register file the core's handler found, the untrusted values
//! the core recorded), and `abs(core)` must equal the model's state.
//!
//! The relation, field by field: every principal's stage-2 table, the page metadata, the
//! SMMU tables and bank owners, the VM records and allocators, the poisoned locks, `halt`;
//! page contents (`flatmem`, first word) of every page no untrusted party may write (a page
//! a VM shares with the host or a device is the model's oracle, not its state); every
//! shadow context (except x0..x30 of a context running on a CPU: hardware holds those);
//! each CPU's mode and physical register file; each step's result, x0 and loaded value.

use crate::abs::{abs_ctxt, abs_shared};
use crate::engine::{EngineError, Injection, ModelMachine, Outcome, StepReport};
use corevisor_kcore::trap::NO_VCPU;
use corevisor_sim::machine::{CoreMachine, MachineShape, StepResult};
use corevisor_sim::scenario::{Scenario, Step};
use corevisor_spec::consts::{HOSTVISOR, INVALID};
use corevisor_spec::profile::ProfileKind;
use corevisor_spec::state::{Ctxt, Shared};
use corevisor_spec::Z;

/// The core and the model side by side.
#[derive(Clone)]
pub struct Lockstep {
    pub core: CoreMachine,
    pub model: ModelMachine,
}

/// One step of a checked run.
#[derive(Clone, Debug)]
pub struct CheckedStep {
    pub model: StepReport,
    pub core: StepResult,
    /// What differs after the step (empty = the core refines the model here).
    pub mismatches: Vec<String>,
    /// The model says nothing about this step (`None`: outside the spec's contract, e.g. a
    /// loop longer than the model's budget): nothing is compared, and the run stops
    /// (ARCHITECTURE.md: "model None = outside the contract, not a failure").
    pub outside_contract: bool,
}

fn z(v: u64) -> Z {
    Z::from(v)
}

/// Pages whose contents the model does not track: shared with the host or a device.
fn untracked(sh: &Shared, pfn: Z) -> bool {
    let p = sh.s2page.get(pfn);
    p.s2_owner != HOSTVISOR && p.s2_owner != INVALID && p.s2_count != 0
}

/// The simulated machine a model machine describes.
pub fn shape_of(m: &corevisor_spec::Machine) -> MachineShape {
    MachineShape {
        cpus: m.cpus as usize,
        ram_base: m.ram_base as u64,
        ram_end: m.ram_end() as u64,
        kcore_base: m.kcore_base() as u64,
        smmus: m.smmus as u32,
        mmio: m.mmio.iter().map(|&(b, s)| (b as u64, s as u64)).collect(),
    }
}

impl Lockstep {
    /// The machine a scenario describes; the core implements the `arm` profile only.
    pub fn for_scenario(sc: &Scenario, profile: Option<ProfileKind>) -> Result<Self, EngineError> {
        let model = ModelMachine::for_scenario(sc, profile)?;
        if model.profile.kind != ProfileKind::Arm {
            return Err(EngineError(
                "field \"profile\": the core implements the arm profile; run seed-profile scenarios with --engine model".into(),
            ));
        }
        let m = &model.machine;
        let core = CoreMachine::new(shape_of(m)).map_err(|e| {
            EngineError(format!(
                "field \"machine.kcore_mib\": KCore's region is too small (needs {} bytes)",
                e.needed
            ))
        })?;
        Ok(Lockstep { core, model })
    }

    /// Runs one step on both sides and compares them.
    pub fn step(&mut self, st: &Step) -> Result<CheckedStep, EngineError> {
        if !(0..self.model.cpus.len() as Z).contains(&st.cpu) {
            // The model engine reports the bad CPU.
            self.model.step(st)?;
        }
        if matches!(st.action, corevisor_sim::scenario::Action::Host(_)) {
            self.model.step(st)?;
        }
        let core = self.core.step(st);
        self.model.inject = Some(Injection {
            data: core
                .rec
                .data
                .iter()
                .map(|&(v, x)| (Z::from(v), z(x)))
                .collect(),
            core: core
                .rec
                .core
                .iter()
                .map(|&(v, x)| (Z::from(v), z(x)))
                .collect(),
            regs: core
                .trap_regs
                .as_ref()
                .map(|r| abs_ctxt(r, &self.core.core)),
        });
        let model = self.model.step(st)?;
        if model.result == Outcome::Undefined && core.outcome != Outcome::Undefined {
            return Ok(CheckedStep {
                model,
                core,
                mismatches: vec![],
                outside_contract: true,
            });
        }
        let mut mismatches = Vec::new();
        let mut diff = |what: &str, a: String, b: String| {
            if a != b {
                mismatches.push(format!("{what}: core {a}, model {b}"));
            }
        };
        diff(
            "result",
            format!("{:?}", core.outcome),
            format!("{:?}", model.result),
        );
        diff(
            "x0",
            format!("{:?}", core.x0.map(z)),
            format!("{:?}", model.x0),
        );
        diff(
            "value",
            format!("{:?}", core.value.map(z)),
            format!("{:?}", model.value),
        );
        mismatches.extend(self.compare());
        Ok(CheckedStep {
            model,
            core,
            mismatches,
            outside_contract: false,
        })
    }

    /// `abs(core)` against the model's state.
    pub fn compare(&self) -> Vec<String> {
        let c = &self.core.core;
        let g = &self.model.global;
        let mut out = Vec::new();
        if c.halted != g.halt {
            out.push(format!("halt: core {}, model {}", c.halted, g.halt));
        }
        let mut a = abs_shared(c, &g.shared);
        let mut b = g.shared.clone();
        for (pfn, _) in g.shared.s2page.entries() {
            if untracked(&g.shared, pfn) {
                a.flatmem.set_mut(pfn, 0);
                b.flatmem.set_mut(pfn, 0);
            }
        }
        let fields: [(&str, bool); 8] = [
            ("page tables", a.npts == b.npts),
            ("page metadata", a.s2page == b.s2page),
            ("page contents", a.flatmem == b.flatmem),
            ("poisoned locks", a.hlock == b.hlock),
            ("SMMU tables", a.spts == b.spts),
            ("SMMU bank owners", a.smmu_vmid == b.smmu_vmid),
            ("VM records", a.vminfos == b.vminfos),
            ("allocators", a.core_data == b.core_data),
        ];
        for (name, same) in fields {
            if !same {
                out.push(format!("{name} differ{}", detail(name, &a, &b)));
            }
        }
        for (i, m) in self.model.cpus.iter().enumerate() {
            let k = c.cpus[i];
            let vcpu = if k.cur_vcpuid == NO_VCPU {
                -1
            } else {
                Z::from(k.cur_vcpuid)
            };
            let mode = (Z::from(k.cur_vmid), vcpu, k.ihost, k.icore);
            let want = (m.cur_vmid, m.cur_vcpuid, m.ihost, m.icore);
            if mode != want {
                out.push(format!(
                    "CPU {i} mode (vm, vcpu, ihost, icore): core {mode:?}, model {want:?}"
                ));
            }
            let phys = abs_ctxt(&c.hw.cpu_regs[i], c);
            if phys != m.regs {
                out.push(format!(
                    "CPU {i} registers differ{}",
                    ctxt_diff(&phys, &m.regs)
                ));
            }
        }
        for (id, shadow) in c.shadow.iter().enumerate() {
            let mut mine = abs_ctxt(shadow, c);
            let mut theirs = g.shadow_ctxts.get(id as Z).clone();
            let live =
                self.model.cpus.iter().any(|m| {
                    !m.icore && m.cur_vcpuid >= 0 && id as Z == m.cur_vmid * 8 + m.cur_vcpuid
                });
            if live {
                mine.ctxt_regs.x = [0; 31];
                theirs.ctxt_regs.x = [0; 31];
            }
            if mine != theirs {
                out.push(format!(
                    "shadow context {id} differs{}",
                    ctxt_diff(&mine, &theirs)
                ));
            }
        }
        out
    }
}

/// The first differing entry of a `Shared` field, for the message.
fn detail(name: &str, a: &Shared, b: &Shared) -> String {
    let first = |x: Vec<(Z, String)>, y: Vec<(Z, String)>| {
        let n = x.len().max(y.len());
        for k in 0..n {
            if x.get(k) != y.get(k) {
                return format!(" (first: core {:?}, model {:?})", x.get(k), y.get(k));
            }
        }
        String::new()
    };
    match name {
        "page metadata" => first(
            a.s2page
                .entries()
                .map(|(k, v)| (k, format!("{v:?}")))
                .collect(),
            b.s2page
                .entries()
                .map(|(k, v)| (k, format!("{v:?}")))
                .collect(),
        ),
        "page contents" => first(
            a.flatmem
                .entries()
                .map(|(k, v)| (k, format!("{v:#x}")))
                .collect(),
            b.flatmem
                .entries()
                .map(|(k, v)| (k, format!("{v:#x}")))
                .collect(),
        ),
        "page tables" => first(
            a.npts
                .entries()
                .map(|(k, v)| (k, format!("{:?}", v.pt.entries().collect::<Vec<_>>())))
                .collect(),
            b.npts
                .entries()
                .map(|(k, v)| (k, format!("{:?}", v.pt.entries().collect::<Vec<_>>())))
                .collect(),
        ),
        "VM records" => first(
            a.vminfos
                .entries()
                .map(|(k, v)| (k, format!("{v:?}")))
                .collect(),
            b.vminfos
                .entries()
                .map(|(k, v)| (k, format!("{v:?}")))
                .collect(),
        ),
        _ => String::new(),
    }
}

/// The registers that differ, for the message.
fn ctxt_diff(a: &Ctxt, b: &Ctxt) -> String {
    let (fa, fb) = (format!("{a:?}"), format!("{b:?}"));
    let split = |s: &str| -> Vec<String> { s.split(", ").map(str::to_string).collect() };
    let (xa, xb) = (split(&fa), split(&fb));
    let d: Vec<String> = xa
        .iter()
        .zip(xb.iter())
        .filter(|(p, q)| p != q)
        .take(4)
        .map(|(p, q)| format!("{p} vs {q}"))
        .collect();
    format!(" ({})", d.join("; "))
}

/// The model's view of the core machine (`abs` of everything), for invariants and reports.
pub fn abstract_machine(cm: &CoreMachine, template: &ModelMachine) -> ModelMachine {
    let c = &cm.core;
    let mut m = template.clone();
    m.global.shared = abs_shared(c, &template.global.shared);
    m.global.halt = c.halted;
    for (id, s) in c.shadow.iter().enumerate() {
        m.global.shadow_ctxts.set_mut(id as Z, abs_ctxt(s, c));
    }
    for (i, cpu) in m.cpus.iter_mut().enumerate() {
        let k = c.cpus[i];
        cpu.cur_vmid = Z::from(k.cur_vmid);
        cpu.cur_vcpuid = if k.cur_vcpuid == NO_VCPU {
            -1
        } else {
            Z::from(k.cur_vcpuid)
        };
        cpu.ihost = k.ihost;
        cpu.icore = k.icore;
        cpu.regs = abs_ctxt(&c.hw.cpu_regs[i], c);
    }
    m
}
