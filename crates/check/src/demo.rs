//! `corevisor demo`: KCore on a simulated 2-CPU machine, two VMs, the host's and devices'
//! attempts on a VM's memory, power-off and reclaim — every step run on the core beside the
//! model (lockstep) with the invariants checked.
//!
//! The main run is `scenarios/demo.json`. Attacks that end in a halt stop the machine, so
//! each one runs on its own copy of the machine: the demo's first six steps (both VMs
//! created, run and sharing) and then the attack.

use crate::engine::{EngineError, Outcome};
use crate::runner::{self, EngineKind, RunOutput};
use corevisor_sim::host::HostMacro;
use corevisor_sim::scenario::{self, Action, HvcCall, HvcName, MapProposal, Scenario, Step};
use corevisor_spec::profile::ProfileKind;

pub const DEMO: &str = include_str!("../../../scenarios/demo.json");
/// Steps of the demo after which both VMs have run and shared a page with the host.
pub const PREFIX: usize = 6;
/// VM 1's image (guest-physical 0x8000_0000) lives in the host block at 0x4020_0000.
const VM1_IMAGE_PA: i128 = 0x4020_0000;

/// One attack and what stopped it.
#[derive(Clone, Debug)]
pub struct Defence {
    pub attack: &'static str,
    pub defence: &'static str,
    /// The run showed the defence (the expected outcome, zero mismatches, invariants held).
    pub shown: bool,
    pub run: RunOutput,
}

#[derive(Clone, Debug)]
pub struct DemoReport {
    pub scenario: Scenario,
    pub main: RunOutput,
    /// Defences the main run shows without stopping: (attack, defence, shown).
    pub main_defences: Vec<(&'static str, &'static str, bool)>,
    pub defences: Vec<Defence>,
}

impl DemoReport {
    /// Every run: zero mismatches, invariants held, every defence shown, main run not halted.
    pub fn all_good(&self) -> bool {
        let clean = |r: &RunOutput| r.mismatches() == 0 && r.fin.broken.is_empty();
        clean(&self.main)
            && !self.main.fin.halted
            && self.main_defences.iter().all(|d| d.2)
            && self.defences.iter().all(|d| d.shown && clean(&d.run))
    }

    pub fn total_steps(&self) -> usize {
        self.main.steps.len()
            + self
                .defences
                .iter()
                .map(|d| d.run.steps.len())
                .sum::<usize>()
    }
}

fn raw(cpu: i128, action: Action) -> Step {
    Step::new(cpu, action)
}

fn hvc(n: &str, args: &[i128]) -> Step {
    raw(
        0,
        Action::Hvc {
            call: HvcCall::Named(HvcName::parse(n).expect("known hypercall")),
            args: args.to_vec(),
        },
    )
}

/// The demo's prefix followed by `attack`.
fn fork(sc: &Scenario, attack: Vec<Step>) -> Scenario {
    let mut steps: Vec<Step> = sc.steps[..PREFIX].to_vec();
    for s in attack {
        steps.push(Step {
            index: steps.len(),
            ..s
        });
    }
    Scenario {
        steps,
        ..sc.clone()
    }
}

/// The attacks shown on copies of the machine: (attack, defence, steps, expected last result).
fn attacks() -> Vec<(&'static str, &'static str, Vec<Step>, Outcome)> {
    let tampered = HostMacro::CreateVm {
        vcpus: 1,
        image: "poweroff".into(),
        tamper: true,
        device: None,
    };
    let run3 = HostMacro::Run {
        vm: 3,
        vcpu: 0,
        steps: None,
    };
    vec![
        (
            "the host reads VM 1's memory",
            "KCore halts the machine on the host's stage-2 fault; the host gets nothing",
            vec![raw(0, Action::HostLoad { addr: VM1_IMAGE_PA })],
            Outcome::Halt,
        ),
        (
            "the host points its own device (SMMU 1 bank 0) at VM 1's memory",
            "KCore refuses the SMMU mapping (halt)",
            vec![
                hvc("SMMU_ALLOC_PGD", &[0, 0, 1]),
                hvc("SMMU_LPAE_MAP", &[0x1000, VM1_IMAGE_PA, 0xC3, 0, 1]),
            ],
            Outcome::Halt,
        ),
        (
            "the host disables the SMMU's client ports (sCR0.CLIENTPD) so that a device with no \
             bank (stream 2 on SMMU 0) reads VM 1's memory by physical address",
            "KCore writes sCR0 with CLIENTPD forced off: the stream is unmatched and the SMMU \
             faults it",
            vec![
                Step {
                    size: Some(4),
                    ..raw(
                        0,
                        Action::HostStore {
                            addr: 0x0B00_0000,
                            value: 0x20_0001,
                        },
                    )
                },
                raw(
                    0,
                    Action::DmaLoad {
                        smmu: 0,
                        cb: 2,
                        iova: VM1_IMAGE_PA,
                        stream: None,
                    },
                ),
            ],
            Outcome::Fault,
        ),
        (
            "the host gives VM 1's page to VM 2 as a stage-2 mapping",
            "KCore refuses the page it does not own (halt)",
            vec![raw(
                0,
                Action::VcpuRun {
                    vm: 2,
                    vcpu: 0,
                    map: Some(MapProposal {
                        gpa: 0x8080_0000,
                        pte: VM1_IMAGE_PA,
                        level: 3,
                    }),
                    pc: None,
                },
            )],
            Outcome::Halt,
        ),
        (
            "the host boots an image altered after it was signed",
            "Ed25519 verification fails: the VM stays off and running it halts",
            vec![raw(0, Action::Host(tampered)), raw(1, Action::Host(run3))],
            Outcome::Halt,
        ),
    ]
}

/// Runs the demo; `progress(done, total)` after each run.
pub fn run_demo(mut progress: impl FnMut(usize, usize)) -> Result<DemoReport, EngineError> {
    let sc =
        scenario::parse("scenarios/demo.json", DEMO).map_err(|e| EngineError(e.to_string()))?;
    let attacks = attacks();
    let total = attacks.len() + 1;
    let main = runner::run(&sc, EngineKind::Checked, Some(ProfileKind::Arm))?;
    progress(1, total);
    let mut defences = Vec::new();
    for (k, (attack, defence, steps, want)) in attacks.into_iter().enumerate() {
        let run = runner::run(
            &fork(&sc, steps),
            EngineKind::Checked,
            Some(ProfileKind::Arm),
        )?;
        let last = run.steps.last().map(|s| s.report.result);
        // A read that halts must not have returned anything.
        let leaked = run
            .steps
            .iter()
            .any(|s| s.report.result == Outcome::Halt && s.report.value.is_some());
        defences.push(Defence {
            attack,
            defence,
            shown: last == Some(want) && !leaked,
            run,
        });
        progress(k + 2, total);
    }
    let at = |step: usize| {
        main.steps
            .iter()
            .rev()
            .find(|s| s.report.step == step)
            .map(|s| &s.report)
    };
    let main_defences = vec![
        (
            "a device on a bank the host keeps (SMMU 1 bank 0) reads VM 1's memory",
            "SMMU fault: KCore never mapped VM memory into a host bank",
            at(7).is_some_and(|r| r.result == Outcome::Fault),
        ),
        (
            "the host reads VM 1's old image page after reclaiming it",
            "it reads 0: KCore scrubbed every page before returning it",
            at(sc.steps.len() - 1).is_some_and(|r| r.result == Outcome::Ok && r.value == Some(0)),
        ),
    ];
    Ok(DemoReport {
        scenario: sc,
        main,
        main_defences,
        defences,
    })
}
