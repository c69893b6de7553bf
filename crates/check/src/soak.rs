//! `corevisor soak` (issue 10): random step sequences, steered towards VM lifecycles, run on
//! the core beside the model until a number of steps has run. Each sequence starts from a
//! verified VM (with a device, its vCPU 0 running on CPU 1) and then draws operations that
//! are resolved against the machine: guest steps go to the CPU that runs the VM (the host
//! runs a vCPU there first if none does), a page the host proposes is first touched by the
//! guest, DMA goes through the VM's bank while it lives, a power-off is followed by the
//! reclaim of the VM's pages and a host read of them, and hostile requests are rare.
//!
//! Each step is compared on what it changed (`incremental.rs`: the same relation, at the
//! cost of the step), and the whole machine at boot and at the end of every sequence.
//!
//! On a mismatch or a broken invariant the sequence is shrunk (steps dropped one at a time
//! while it still fails) and can be written as a scenario file.

use crate::engine::Outcome;
use crate::lockstep::Lockstep;
use corevisor_sim::scenario::{parse, Action, HvcCall, HvcName, MapProposal, ShareOp, Step};
use serde_json::{json, Value};

const RAM: i128 = 0x4000_0000;

/// The machine: 36 MiB of RAM at 1 GiB (the host's first 12 MiB, KCore the rest).
fn machine(cpus: usize) -> String {
    format!(
        r#"{{"name": "soak", "profile": "arm",
  "machine": {{"cpus": {cpus}, "ram_base": "0x40000000", "ram_mib": 36, "kcore_mib": 24}}, "steps": []}}"#
    )
}

/// A small, fast, seedable generator (SplitMix64).
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn hvc(name: &str, args: &[i128]) -> Action {
    Action::Hvc {
        call: HvcCall::Named(HvcName::parse(name).expect("a known call")),
        args: args.to_vec(),
    }
}

fn run_vcpu(map: Option<MapProposal>) -> Action {
    Action::VcpuRun {
        vm: 1,
        vcpu: 0,
        map,
        pc: None,
    }
}

/// VM 1 verified with a device (SMMU 0 bank 0 maps IOVA 0x9000_0000), vCPU 0 on CPU 1.
fn prefix() -> Vec<(i128, Action)> {
    let img = (RAM + 0x20_0000) / 4096;
    vec![
        (0, hvc("REGISTER_KVM", &[])),
        (0, hvc("REGISTER_VCPU", &[1, 0])),
        (0, hvc("SMMU_ALLOC_PGD", &[0, 1, 0])),
        (
            0,
            hvc("SMMU_LPAE_MAP", &[0x9000_0000, RAM + 0x48_0000, 0xc3, 0, 0]),
        ),
        (0, hvc("SET_BOOT_INFO", &[1, 0x8000_0000, 8192])),
        (0, hvc("REMAP_VM_IMAGE", &[1, img, 0])),
        (0, hvc("REMAP_VM_IMAGE", &[1, img + 1, 0])),
        (0, hvc("VERIFY_VM_IMAGE", &[1])),
        (1, run_vcpu(None)),
    ]
}

/// Figures of a soak run.
#[derive(Clone, Debug, Default)]
pub struct SoakReport {
    pub steps: u64,
    pub sequences: u64,
    /// Steps that neither halted nor fell outside the spec's contract.
    pub nontrivial_steps: u64,
    pub mismatches: u64,
    pub invariant_breaks: u64,
    pub seconds: f64,
    pub seed: u64,
    /// The first failing sequence, shrunk, with what failed.
    pub failing: Option<(Vec<Step>, Vec<String>)>,
}

/// What one step showed.
struct Seen {
    nontrivial: bool,
    mismatches: Vec<String>,
    broken: Vec<&'static str>,
}

/// One sequence on a fresh machine; the steps it ran (resolved) and what they showed.
struct Sequence {
    l: Lockstep,
    steps: Vec<Step>,
    seen: Vec<Seen>,
}

thread_local! {
    /// The booted machine per CPU count, compared whole once: every sequence starts from a
    /// copy (booting is deterministic, so the copy is the machine a fresh boot gives).
    static BOOTED: std::cell::RefCell<Vec<(usize, Lockstep)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn booted(cpus: usize) -> Lockstep {
    BOOTED.with(|b| {
        let mut b = b.borrow_mut();
        if let Some((_, l)) = b.iter().find(|(n, _)| *n == cpus) {
            return l.clone();
        }
        let sc = parse("soak.json", &machine(cpus)).expect("the soak machine parses");
        let mut l = Lockstep::for_scenario(&sc, None).expect("the soak machine boots");
        // Each step is compared where it changed the machine; the whole machine at boot
        // and at the end of every sequence (`Sequence::finish`).
        l.set_incremental(true);
        l.compare_whole();
        // The invariants' memo starts from the booted machine too.
        l.model.broken_invariants();
        b.push((cpus, l.clone()));
        l
    })
}

impl Sequence {
    fn new(cpus: usize) -> Self {
        Sequence {
            l: booted(cpus),
            steps: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// The whole machine compared at the end of the sequence; what differs counts against
    /// the last step.
    fn finish(&mut self) {
        if self.failed() {
            return;
        }
        // The sequence ends here: no need to refresh what the next step would compare.
        let whole = self.l.compare();
        if let Some(last) = self.seen.last_mut() {
            last.mismatches.extend(
                whole
                    .into_iter()
                    .map(|m| format!("at the end of the sequence: {m}")),
            );
        }
    }

    fn go(&mut self, cpu: i128, action: Action) -> Outcome {
        let st = Step {
            index: self.steps.len(),
            line: None,
            cpu,
            oracle: vec![],
            size: None,
            action,
        };
        let r = self.l.step(&st).expect("soak steps are well formed");
        let res = r.model.result;
        self.seen.push(Seen {
            nontrivial: !matches!(res, Outcome::Halt | Outcome::Undefined) && !r.outside_contract,
            mismatches: r.mismatches,
            broken: r.model.broken,
        });
        self.steps.push(st);
        res
    }

    fn failed(&self) -> bool {
        self.seen
            .last()
            .is_some_and(|s| !s.mismatches.is_empty() || !s.broken.is_empty())
    }

    fn stop(&self) -> bool {
        self.l.core.core.halted() || self.failed()
    }

    fn vm_runs(&self) -> bool {
        let c = self.l.core.cpus[1].run;
        !c.ihost && !c.icore
    }

    fn verified(&self) -> bool {
        self.l.core.core.vms[1].read().state == corevisor_kcore::consts::VERIFIED
    }

    /// The VM runs on CPU 1 if it can.
    fn ensure_running(&mut self) -> bool {
        if !self.vm_runs() && self.verified() {
            self.go(1, run_vcpu(None));
        }
        self.vm_runs() && !self.stop()
    }

    /// One drawn operation; `cpus` CPUs, host steps on CPU 0 or one past CPU 1.
    fn op(&mut self, r: &mut Rng, cpus: usize) {
        let host_cpu = if cpus > 2 && r.below(4) == 0 {
            2 + r.below(cpus as u64 - 2) as i128
        } else {
            0
        };
        let word = r.below(512) as i128 * 8;
        let vm_gpa = if r.below(5) < 3 {
            0x8000_0000 + r.below(4) as i128 * 4096 + word
        } else {
            0x8040_0000 + r.below(3) as i128 * 4096 + word
        };
        let host_pa = RAM + 0x60_0000 + r.below(4) as i128 * 4096 + word;
        match r.below(40) {
            0..=5 => {
                if self.ensure_running() {
                    self.go(1, Action::GuestLoad { gpa: vm_gpa });
                }
            }
            6..=11 => {
                if self.ensure_running() {
                    let value = r.next_u64() as i128;
                    self.go(1, Action::GuestStore { gpa: vm_gpa, value });
                }
            }
            12..=14 => {
                if self.ensure_running() {
                    let op = if r.below(2) == 0 {
                        ShareOp::Grant
                    } else {
                        ShareOp::Revoke
                    };
                    let gpa = 0x8000_0000 + r.below(4) as i128 * 4096;
                    let size = (1 + r.below(2) as i128) * 4096;
                    self.go(1, Action::GuestHvc { op, gpa, size });
                }
            }
            15..=17 => {
                if self.ensure_running() {
                    let a = [Action::GuestWfx, Action::GuestSysreg, Action::Irq];
                    self.go(1, a[r.below(3) as usize].clone());
                }
            }
            18..=19 => {
                if self.verified() {
                    let i = r.below(3) as i128;
                    let gpa = 0x8040_0000 + i * 4096;
                    if self.vm_runs() {
                        self.go(1, Action::GuestLoad { gpa });
                    }
                    if !self.vm_runs() && !self.stop() {
                        let map = MapProposal {
                            gpa,
                            pte: RAM + 0x40_0000 + i * 4096,
                            level: 3,
                        };
                        self.go(1, run_vcpu(Some(map)));
                    }
                }
            }
            20..=22 => {
                if self.verified() {
                    let a = if r.below(2) == 0 {
                        Action::DmaLoad {
                            smmu: 0,
                            cb: 0,
                            iova: 0x9000_0000 + word,
                            stream: None,
                        }
                    } else {
                        Action::DmaStore {
                            smmu: 0,
                            cb: 0,
                            iova: 0x9000_0000 + word,
                            value: r.next_u64() as i128,
                            stream: None,
                        }
                    };
                    self.go(0, a);
                }
            }
            23..=26 => {
                self.go(host_cpu, Action::HostLoad { addr: host_pa });
            }
            27..=30 => {
                let value = r.next_u64() as i128;
                self.go(
                    host_cpu,
                    Action::HostStore {
                        addr: host_pa,
                        value,
                    },
                );
            }
            31 => {
                self.go(0, hvc("SMMU_LPAE_IOVA_TO_PHYS", &[0x9000_0010, 0, 0]));
            }
            32 => {
                let p = RAM + 0x20_0000 + r.below(3) as i128 * 4096;
                self.go(0, hvc("ENCRYPT_BUF", &[1, p, RAM + 0x70_0000]));
            }
            33 => {
                self.go(host_cpu, hvc("TIMER_SET_CNTVOFF", &[]));
            }
            34 => {
                let v = 1 + r.below(2) as i128;
                self.go(0, hvc("SAVE_CRYPT_VCPU", &[v, 0, RAM + 0x71_0000]));
            }
            35..=37 => {
                if self.ensure_running() {
                    self.go(1, Action::GuestPsciSystemOff);
                }
                if !self.stop() && !self.verified() {
                    self.go(
                        0,
                        hvc("CLEAR_VM_S2_RANGE", &[1, RAM + 0x20_0000, 0x40_0000]),
                    );
                    if !self.stop() {
                        self.go(
                            0,
                            Action::HostLoad {
                                addr: RAM + 0x20_0000 + word,
                            },
                        );
                    }
                }
            }
            _ => {
                // Hostile and mostly refused: KCore halts or ignores it.
                let a = match r.below(5) {
                    0 => hvc("CLEAR_VM_S2_RANGE", &[1, RAM + 0x20_0000, 0x1000]),
                    1 => hvc("VERIFY_VM_IMAGE", &[1]),
                    2 => Action::HostLoad {
                        addr: RAM + 0x20_0000 + word,
                    },
                    3 => hvc("REGISTER_VCPU", &[1, 9]),
                    _ => hvc("SMMU_ALLOC_PGD", &[0, 2, 0]),
                };
                self.go(0, a);
            }
        }
    }
}

/// Runs `steps` on a fresh machine: does some step mismatch or break an invariant?
pub fn fails(cpus: usize, steps: &[Step]) -> Option<Vec<String>> {
    let mut s = Sequence::new(cpus);
    for st in steps {
        s.go(st.cpu, st.action.clone());
        if s.failed() || s.l.core.core.halted() {
            break;
        }
    }
    s.finish();
    let last = s.seen.last().filter(|_| s.failed())?;
    let mut why = last.mismatches.clone();
    why.extend(last.broken.iter().map(|b| format!("invariant {b} broken")));
    Some(why)
}

/// Drops steps one at a time while the sequence still fails.
pub fn shrink(cpus: usize, mut steps: Vec<Step>) -> (Vec<Step>, Vec<String>) {
    let mut why = fails(cpus, &steps).unwrap_or_default();
    let mut i = steps.len();
    while i > 0 {
        i -= 1;
        let mut fewer = steps.clone();
        fewer.remove(i);
        if let Some(w) = fails(cpus, &fewer) {
            steps = fewer;
            why = w;
        }
    }
    for (k, s) in steps.iter_mut().enumerate() {
        s.index = k;
    }
    (steps, why)
}

/// Runs sequences until `steps` steps have run; `progress(done)` after each sequence.
pub fn soak(steps: u64, seed: u64, cpus: usize, mut progress: impl FnMut(u64)) -> SoakReport {
    let cpus = cpus.max(2);
    let start = std::time::Instant::now();
    let mut rep = SoakReport {
        seed,
        ..SoakReport::default()
    };
    let mut r = Rng::new(seed);
    while rep.steps < steps {
        let mut s = Sequence::new(cpus);
        for (cpu, a) in prefix() {
            s.go(cpu, a);
        }
        let n = 10 + r.below(31);
        for _ in 0..n {
            if s.stop() {
                break;
            }
            s.op(&mut r, cpus);
        }
        s.finish();
        rep.sequences += 1;
        rep.steps += s.seen.len() as u64;
        for seen in &s.seen {
            rep.nontrivial_steps += seen.nontrivial as u64;
            rep.mismatches += seen.mismatches.len() as u64;
            rep.invariant_breaks += seen.broken.len() as u64;
        }
        if s.failed() && rep.failing.is_none() {
            rep.failing = Some(shrink(cpus, s.steps.clone()));
        }
        progress(rep.steps.min(steps));
        if rep.failing.is_some() {
            break;
        }
    }
    rep.seconds = start.elapsed().as_secs_f64();
    rep
}

fn int(v: i128) -> Value {
    if (0..1 << 16).contains(&v) {
        json!(v as u64)
    } else {
        json!(format!("{v:#x}"))
    }
}

/// A step in the scenario format (docs/scenario-format.md).
pub fn step_json(st: &Step) -> Value {
    let mut o = json!({"cpu": int(st.cpu)});
    let (key, v) = match &st.action {
        Action::Hvc { call, args } => {
            let mut a = vec![match call {
                HvcCall::Named(n) => json!(n.name()),
                HvcCall::Raw(v) => int(*v),
            }];
            a.extend(args.iter().map(|&x| int(x)));
            ("hvc", json!(a))
        }
        Action::VcpuRun { vm, vcpu, map, pc } => {
            let mut r = json!({"vm": int(*vm), "vcpu": int(*vcpu)});
            if let Some(m) = map {
                r["map"] = json!({"gpa": int(m.gpa), "pte": int(m.pte), "level": int(m.level)});
            }
            if let Some(pc) = pc {
                r["pc"] = int(*pc);
            }
            ("vcpu_run", r)
        }
        Action::HostLoad { addr } => ("host_load", int(*addr)),
        Action::HostStore { addr, value } => ("host_store", json!([int(*addr), int(*value)])),
        Action::GuestLoad { gpa } => ("guest_load", int(*gpa)),
        Action::GuestFetch { gpa } => ("guest_fetch", int(*gpa)),
        Action::GuestStore { gpa, value } => ("guest_store", json!([int(*gpa), int(*value)])),
        Action::GuestHvc { op, gpa, size } => {
            let name = match op {
                ShareOp::Grant => "GRANT",
                ShareOp::Revoke => "REVOKE",
            };
            ("guest_hvc", json!([name, int(*gpa), int(*size)]))
        }
        Action::GuestPsciSystemOff => ("guest_psci", json!("SYSTEM_OFF")),
        Action::GuestWfx => ("guest_wfx", json!(true)),
        Action::GuestSysreg => ("guest_sysreg", json!(true)),
        Action::Irq => ("irq", json!(true)),
        Action::DmaLoad { smmu, cb, iova, .. } => (
            "dma_load",
            json!({"smmu": int(*smmu), "cb": int(*cb), "iova": int(*iova)}),
        ),
        Action::DmaStore {
            smmu,
            cb,
            iova,
            value,
            ..
        } => (
            "dma_store",
            json!({"smmu": int(*smmu), "cb": int(*cb), "iova": int(*iova), "value": int(*value)}),
        ),
        Action::Host(_) => ("host", json!(null)),
    };
    o[key] = v;
    o
}

/// A failing sequence as a scenario file.
pub fn scenario_json(cpus: usize, seed: u64, steps: &[Step], why: &[String]) -> Value {
    let mut doc: Value = serde_json::from_str(&machine(cpus.max(2))).expect("valid");
    doc["name"] = json!(format!("soak-{seed:#x}"));
    doc["description"] = json!(format!(
        "corevisor soak --seed {seed}: a failing sequence, shrunk. {}",
        why.join("; ")
    ));
    doc["steps"] = json!(steps.iter().map(step_json).collect::<Vec<_>>());
    doc
}
