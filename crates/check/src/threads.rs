//! CPUs as threads, in parallel (issue 11). Each simulated CPU is an OS thread running its
//! own host's work (host-model macros: create a VM, run it, share, destroy) on its own CPU;
//! the threads share one machine and nothing serializes them: KCore's handlers run at once
//! on different CPUs, taking only the locks of the state they touch (`kcore::state`).
//!
//! The run is then checked against the model. Every step recorded when each lock was
//! served (`Recorded::locks`, on the machine's event clock): the order in which steps took
//! the same lock is the order in which they touched what it guards, and each CPU's steps
//! keep their program order. A topological order of those edges is a linearization; the
//! steps replay in it, one at a time, through the lockstep checker (the sequential core
//! beside the model, compared after every step). Each replayed step must also return what
//! it returned in the parallel run (outcome, x0, value, the untrusted values read), and the
//! two machines must end in the same state (every part of `abs`, every CPU, every word of
//! memory). Handlers whose lock orders cross (a cycle: two vCPU runs interleaving their
//! page assignments under S2PAGE) are placed by their first lock and counted; each such
//! crossing is also replayed in its other order, which must agree as well (issue 22).

use crate::engine::{EngineError, Outcome};
use crate::lockstep::{abstract_machine, CheckedStep, Lockstep};
use corevisor_kcore::consts::{HOSTVISOR, NPT_ID};
use corevisor_kcore::mutants::Fault;
use corevisor_kcore::trap::Cpu;
use corevisor_sim::host::{Driver, HostMacro, HostModel, Raw, DATA_GPA, LOAD_ADDR};
use corevisor_sim::machine::{event, CoreMachine, Gauge, MachineRef, StepResult};
use corevisor_sim::scenario::Step;
use corevisor_sim::scenario::{Action, HvcCall, HvcName, MapProposal, ShareOp};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Barrier;

/// A step as one CPU ran it in the parallel run.
#[derive(Clone, Debug)]
pub struct Ran {
    pub step: Step,
    /// When it ended, on the machine's event clock.
    pub end: u64,
    pub result: StepResult,
}

impl Ran {
    /// Where the step sits in time: its first lock acquisition, or (a step that took no
    /// lock: memory only, or one that found KCore halted) its end, which follows anything it
    /// observed.
    fn key(&self) -> u64 {
        self.result.rec.locks.first().map_or(self.end, |&(_, e)| e)
    }
}

/// One CPU's driver: every raw step straight on the shared machine.
struct Direct<'a, 'c> {
    m: MachineRef<'a>,
    cpu: &'c mut Cpu,
    log: Vec<Ran>,
}

impl Driver for Direct<'_, '_> {
    fn raw(&mut self, step: &Step, _via: &'static str) -> Result<Raw, String> {
        let st = Step {
            index: self.log.len(),
            cpu: self.cpu.id as i128,
            ..step.clone()
        };
        let result = self.m.step(self.cpu, &st);
        let end = event();
        let out = Raw {
            outcome: result.outcome,
            x0: result.x0,
            value: result.value,
        };
        self.log.push(Ran {
            step: st,
            end,
            result,
        });
        Ok(out)
    }
}

/// What one CPU's host does: a VM's whole life with guest program `image`, run `runs`
/// times with a share between runs.
fn lifecycle(
    cpu: i128,
    image: &str,
    runs: usize,
    host: &mut HostModel,
    d: &mut impl Driver,
) -> Result<(), String> {
    let create = HostMacro::CreateVm {
        vcpus: 1,
        image: image.to_string(),
        tamper: false,
        device: None,
    };
    host.exec(cpu, &create, d)?;
    let Some(vm) = host.last_vm() else {
        return Ok(());
    };
    let run = HostMacro::Run {
        vm,
        vcpu: 0,
        steps: None,
    };
    let share = HostMacro::Share {
        vm,
        gpa: DATA_GPA,
        pages: 1,
    };
    for _ in 0..runs.max(1) {
        host.exec(cpu, &run, d)?;
        host.exec(cpu, &share, d)?;
    }
    host.exec(cpu, &run, d)?;
    host.exec(cpu, &HostMacro::DestroyVm { vm }, d)
}

/// A parallel run, linearized and checked.
#[derive(Debug)]
pub struct Parallel {
    /// The linearization, as steps (each on the CPU that ran it).
    pub steps: Vec<Step>,
    /// The linearization, replayed through the lockstep checker (model beside the core).
    pub log: Vec<CheckedStep>,
    /// Where the parallel run and its replay differ (a step's results, or the final state).
    pub diverged: Vec<String>,
    /// The most CPUs that were inside KCore's handlers at the same moment.
    pub max_in_core: usize,
    /// Steps placed by their first lock because their handlers' lock orders crossed.
    pub interleaved: usize,
    /// Crossings also replayed in their other order (each must agree as well: what it does
    /// not is in `diverged`).
    pub other_orders: usize,
}

/// Runs, on CPU `i`, a VM lifecycle with guest program `images[i]` (`runs` runs), all CPUs
/// at once on the machine `l` boots, with no lock around the machine; then checks it.
pub fn run_cpus(l: Lockstep, images: &[&str]) -> Result<Parallel, EngineError> {
    run_parallel(l, images, 1)
}

/// [`run_cpus`] with `runs` guest runs per VM.
pub fn run_parallel(l: Lockstep, images: &[&str], runs: usize) -> Result<Parallel, EngineError> {
    let m = &l.model.machine;
    let (ram, kcore) = (m.ram_base as u64, m.kcore_base() as u64);
    let n = images.len();
    let slice = ((kcore - ram) / n as u64) & !0x1F_FFFF;
    let mut par = l.core.clone();
    let gauge = Gauge::default();
    let barrier = Barrier::new(n);
    let logs: Vec<Result<Vec<Ran>, String>> = {
        let (shared, cpus) = par.parts();
        let shared = shared.with_gauge(&gauge);
        let barrier = &barrier;
        std::thread::scope(|s| {
            let handles: Vec<_> = cpus
                .iter_mut()
                .zip(images)
                .enumerate()
                .map(|(i, (cpu, &image))| {
                    s.spawn(move || -> Result<Vec<Ran>, String> {
                        // Each host gives its VMs memory from its own slice of host RAM.
                        let from = ram + i as u64 * slice;
                        let mut host = HostModel::for_region(from, from + slice);
                        let mut d = Direct {
                            m: shared,
                            cpu,
                            log: Vec::new(),
                        };
                        barrier.wait();
                        lifecycle(i as i128, image, runs, &mut host, &mut d)?;
                        Ok(d.log)
                    })
                })
                .collect();
            joined(handles)
        })
    };
    replay_logs(l, &par, logs, gauge.max())
}

/// At most this many crossings of a round are replayed in their other order.
pub const OTHER_ORDERS: usize = 16;

/// The parallel run `par` (each CPU's steps in `logs`) linearized and replayed through the
/// lockstep checker `l` (booted like `par` was). If handlers' lock orders crossed, each
/// crossing (up to [`OTHER_ORDERS`]; more fail the round) is also replayed with the crossed steps in their other
/// order, from a fresh copy of `l`: that replay too must agree with the model, with what
/// every step returned in parallel, and end in the parallel run's state (its differences
/// are in `diverged`, marked with the crossing).
/// Every CPU thread's log, a panicked thread's as an error.
fn joined(
    handles: Vec<std::thread::ScopedJoinHandle<'_, Result<Vec<Ran>, String>>>,
) -> Vec<Result<Vec<Ran>, String>> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err("a CPU thread panicked".into()))
        })
        .collect()
}

/// The CPUs' logs replayed beside the model, unless a CPU failed.
fn replay_logs(
    l: Lockstep,
    par: &CoreMachine,
    logs: Vec<Result<Vec<Ran>, String>>,
    max_in_core: usize,
) -> Result<Parallel, EngineError> {
    let logs: Vec<Vec<Ran>> = logs
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(EngineError)?;
    replay(l, par, &logs, max_in_core)
}

fn replay(
    l: Lockstep,
    par: &CoreMachine,
    logs: &[Vec<Ran>],
    max_in_core: usize,
) -> Result<Parallel, EngineError> {
    let (order, interleaved) = linearize(logs);
    // The parallel machine's lock-release check (every CPU's releases of S2PAGE).
    let released = par.core.hw.take_release_breaks();
    let mut out = Parallel {
        steps: Vec::new(),
        log: Vec::new(),
        diverged: released
            .into_iter()
            .map(|m| format!("in parallel: {m}"))
            .collect(),
        max_in_core,
        interleaved,
        other_orders: 0,
    };
    if interleaved > OTHER_ORDERS {
        out.diverged.push(format!(
            "{interleaved} crossings: only the first {OTHER_ORDERS} are replayed in their other order"
        ));
    }
    for j in 0..interleaved.min(OTHER_ORDERS) {
        let (other, _) = linearize_flipping(logs, Some(j));
        if other == order {
            continue;
        }
        let (_, log, diverged) = replay_order(l.clone(), par, logs, &other)?;
        out.other_orders += 1;
        out.diverged.extend(
            diverged
                .into_iter()
                .chain(log.iter().flat_map(|c| {
                    c.mismatches
                        .iter()
                        .cloned()
                        .chain(c.model.broken.iter().map(|b| format!("invariant {b}")))
                }))
                .map(|m| format!("crossing {j} in its other order: {m}")),
        );
    }
    let (steps, log, diverged) = replay_order(l, par, logs, &order)?;
    out.steps = steps;
    out.log = log;
    out.diverged.extend(diverged);
    Ok(out)
}

/// The steps of `logs` replayed in `order` through `l`: the steps, the checked log, and
/// where the replay differs from the parallel run.
#[allow(clippy::type_complexity)]
fn replay_order(
    mut l: Lockstep,
    par: &CoreMachine,
    logs: &[Vec<Ran>],
    order: &[(usize, usize)],
) -> Result<(Vec<Step>, Vec<CheckedStep>, Vec<String>), EngineError> {
    // Each replayed step is compared on what it changed, the whole machine at both ends
    // (the soak's relation: `incremental.rs`).
    l.set_incremental(true);
    let boot = l.compare_whole();
    let (mut steps, mut checked_log) = (Vec::new(), Vec::new());
    let mut diverged: Vec<String> = boot.into_iter().map(|m| format!("at boot: {m}")).collect();
    for (k, &(cpu, i)) in order.iter().enumerate() {
        let ran = &logs[cpu][i];
        let st = Step {
            index: k,
            ..ran.step.clone()
        };
        let checked = l.step(&st)?;
        steps.push(st.clone());
        let (a, b) = (&ran.result, &checked.core);
        if (a.outcome, a.x0, a.value, &a.rec) != (b.outcome, b.x0, b.value, &b.rec) {
            diverged.push(format!(
                "step {k} (cpu {cpu}, {}): parallel {:?} x0 {:?} value {:?} ({} values read), \
                 replayed {:?} x0 {:?} value {:?} ({} values read)",
                crate::soak::step_json(&st),
                a.outcome,
                a.x0,
                a.value,
                a.rec.data.len(),
                b.outcome,
                b.x0,
                b.value,
                b.rec.data.len()
            ));
        }
        let stop = checked.outside_contract;
        checked_log.push(checked);
        if stop {
            return Ok((steps, checked_log, diverged));
        }
    }
    diverged.extend(
        l.compare_whole()
            .into_iter()
            .map(|m| format!("at the end, model: {m}")),
    );
    diverged.extend(same_state(par, &l));
    Ok((steps, checked_log, diverged))
}

/// Runs `body` on this thread with `faults` planted (a `mutants` build; none otherwise).
/// Without faults, the thread keeps the process's (`COREVISOR_MUTANT`: `cargo xtask
/// mutants` plants each fault in the whole test binary that way).
fn planted<R>(faults: &[Fault], body: impl FnOnce() -> R) -> R {
    #[cfg(feature = "mutants")]
    if !faults.is_empty() {
        return corevisor_kcore::mutants::with_all(faults, body);
    }
    let _ = faults;
    body()
}

/// A contended round (issue 22): ONE VM with two vCPUs, vCPU `c` run on CPU `c` (CPUs 0
/// and 1) at the same time. CPU 0's host creates and verifies the VM first; then both CPUs
/// at once, `iters` times: run the vCPU (VM entry: the VM's INFO record, its vCPU's
/// context), a guest load of an image page, a store that faults (stage-2 fault exit), the
/// host serving it (VM run with a map proposal: S2PAGE and the VM's stage-2 table), the
/// store again, a GRANT of that page (S2PAGE, the VM's and the host's tables), a WFx exit
/// (INFO again); the host reads the granted page and writes a reply (its own stage-2 fault
/// on a page of the running VM, while the other CPU runs the VM); the vCPU runs again,
/// reads the reply, REVOKEs the page, exits. Then CPU 0 powers the VM off and CLEARs every
/// page it had. Every step's `faults` are planted on the CPU threads only (the replay runs
/// the sound core).
pub fn run_contended(l: Lockstep, iters: usize, faults: &[Fault]) -> Result<Parallel, EngineError> {
    let m = &l.model.machine;
    let (ram, kcore) = (m.ram_base as u64, m.kcore_base() as u64);
    let slice = ((kcore - ram) / 3) & !0x1F_FFFF;
    // The block `HostModel` gives the first VM's image (its first block).
    let image_block = (ram + 0x20_0000) & !0x1F_FFFF;
    // The host page serving vCPU `c`'s `k`th data page, from the slice after CPU 0's host.
    let page = move |c: usize, k: usize| ram + (1 + c as u64) * slice + k as u64 * 4096;
    let gpa = move |c: usize, k: usize| DATA_GPA + ((c * iters + k) as u64) * 4096;
    let mut par = l.core.clone();
    let gauge = Gauge::default();
    let (created, finished) = (Barrier::new(2), Barrier::new(2));
    let vmid = std::sync::atomic::AtomicU32::new(0);
    let logs: Vec<Result<Vec<Ran>, String>> = {
        let (shared, cpus) = par.parts();
        let shared = shared.with_gauge(&gauge);
        let (created, finished, vmid) = (&created, &finished, &vmid);
        std::thread::scope(|s| {
            let handles: Vec<_> = cpus
                .iter_mut()
                .take(2)
                .enumerate()
                .map(|(c, cpu)| {
                    s.spawn(move || -> Result<Vec<Ran>, String> {
                        planted(faults, || {
                            let mut d = Direct {
                                m: shared,
                                cpu,
                                log: Vec::new(),
                            };
                            let mut setup = Ok(());
                            if c == 0 {
                                let mut host = HostModel::for_region(ram, ram + slice);
                                let create = HostMacro::CreateVm {
                                    vcpus: 2,
                                    image: "demo".into(),
                                    tamper: false,
                                    device: None,
                                };
                                setup = host.exec(0, &create, &mut d);
                                let vm = host.last_vm().unwrap_or(0);
                                vmid.store(vm, std::sync::atomic::Ordering::SeqCst);
                            }
                            created.wait();
                            let vm = vmid.load(std::sync::atomic::Ordering::SeqCst);
                            if setup.is_ok() && vm != 0 {
                                contend(&mut d, c, vm as i128, iters, page, gpa);
                            }
                            finished.wait();
                            if c == 0 && setup.is_ok() && vm != 0 {
                                teardown(&mut d, vm as i128, iters, image_block, page);
                            }
                            setup.map(|()| d.log)
                        })
                    })
                })
                .collect();
            joined(handles)
        })
    };
    replay_logs(l, &par, logs, gauge.max())
}

/// One raw step; `None` once KCore has halted or the step did not return `want`.
fn go(d: &mut Direct<'_, '_>, action: Action, want: Outcome) -> Option<Raw> {
    let cpu = d.cpu.id as i128;
    let r = d.raw(&Step::new(cpu, action), "contended").ok()?;
    (r.outcome == want).then_some(r)
}

/// vCPU `c` of `vm` on CPU `c`: see [`run_contended`].
fn contend(
    d: &mut Direct<'_, '_>,
    c: usize,
    vm: i128,
    iters: usize,
    page: impl Fn(usize, usize) -> u64,
    gpa: impl Fn(usize, usize) -> u64,
) -> Option<()> {
    let run = |map: Option<MapProposal>| Action::VcpuRun {
        vm,
        vcpu: c as i128,
        map,
        pc: None,
    };
    let share = |op, g: u64| Action::GuestHvc {
        op,
        gpa: g as i128,
        size: 4096,
    };
    for k in 0..iters {
        let (g, pa) = (gpa(c, k), page(c, k));
        let stored = (0xC0DE_0000 + (c * 0x100 + k) as i128, g as i128);
        go(d, run(None), Outcome::Ok)?;
        let image = (LOAD_ADDR + c as u64 * 4096) as i128;
        go(d, Action::GuestLoad { gpa: image }, Outcome::Ok)?;
        let store = Action::GuestStore {
            gpa: stored.1,
            value: stored.0,
        };
        go(d, store.clone(), Outcome::Fault)?;
        let map = MapProposal {
            gpa: g as i128,
            pte: pa as i128,
            level: 3,
        };
        go(d, run(Some(map)), Outcome::Ok)?;
        go(d, store, Outcome::Ok)?;
        go(d, share(ShareOp::Grant, g), Outcome::Ok)?;
        go(d, Action::GuestWfx, Outcome::Ok)?;
        let pa = pa as i128;
        let r = go(d, Action::HostLoad { addr: pa }, Outcome::Ok)?;
        let reply = r.value.unwrap_or(0).wrapping_add(1) as i128;
        go(
            d,
            Action::HostStore {
                addr: pa,
                value: reply,
            },
            Outcome::Ok,
        )?;
        go(d, run(None), Outcome::Ok)?;
        go(d, Action::GuestLoad { gpa: stored.1 }, Outcome::Ok)?;
        go(d, share(ShareOp::Revoke, g), Outcome::Ok)?;
        go(d, Action::GuestWfx, Outcome::Ok)?;
    }
    Some(())
}

/// CPU 0 powers `vm` off from vCPU 0 and CLEARs its image block and every data page.
fn teardown(
    d: &mut Direct<'_, '_>,
    vm: i128,
    iters: usize,
    image_block: u64,
    page: impl Fn(usize, usize) -> u64,
) -> Option<()> {
    let run = Action::VcpuRun {
        vm,
        vcpu: 0,
        map: None,
        pc: None,
    };
    go(d, run, Outcome::Ok)?;
    go(d, Action::GuestPsciSystemOff, Outcome::Ok)?;
    let pages = (0..2).flat_map(|c| (0..iters).map(move |k| (c, k)));
    let ranges = [(image_block, 512)]
        .into_iter()
        .chain(pages.map(|(c, k)| (page(c, k), 1)));
    for (pa, n) in ranges {
        let clear = Action::Hvc {
            call: HvcCall::Named(HvcName::ClearVmS2Range),
            args: vec![vm, pa as i128, n * 4096],
        };
        go(d, clear, Outcome::Ok)?;
    }
    Some(())
}

/// The order the steps replay in: CPUs' program order and, for each lock, the order its
/// acquisitions were served; ties and crossings go by the steps' first event. Returns the
/// order as (cpu, index) and how many steps a crossing forced.
pub fn linearize(logs: &[Vec<Ran>]) -> (Vec<(usize, usize)>, usize) {
    linearize_flipping(logs, None)
}

/// [`linearize`], except that at the `flip`th crossing (counting from 0) the step with the
/// latest first lock goes first: the crossed steps' other order.
pub fn linearize_flipping(logs: &[Vec<Ran>], flip: Option<usize>) -> (Vec<(usize, usize)>, usize) {
    type Node = (usize, usize);
    let key = |(c, i): Node| -> u64 { logs[c][i].key() };
    // Per lock, every acquisition (event, node), in event order.
    let mut by_lock: BTreeMap<u32, Vec<(u64, Node)>> = BTreeMap::new();
    for (c, log) in logs.iter().enumerate() {
        for (i, r) in log.iter().enumerate() {
            for &(id, e) in &r.result.rec.locks {
                by_lock.entry(id).or_default().push((e, (c, i)));
            }
        }
    }
    let mut preds: BTreeMap<Node, BTreeSet<Node>> = BTreeMap::new();
    for (c, log) in logs.iter().enumerate() {
        for i in 0..log.len() {
            let p = preds.entry((c, i)).or_default();
            if i > 0 {
                p.insert((c, i - 1));
            }
        }
    }
    // A step that took no lock is placed by what it read. A load, store or fetch that
    // completed without a trap read only its principal's stage-2 table (the hardware walk:
    // the host's, or that of the VM last run on its CPU) and the frame: it follows every
    // other CPU's step that took that table's lock before it ended and precedes those that
    // took it after. (Each CPU's host reaches only its own slice of RAM and its own VMs, so
    // no other shared state can reach such an access.) Any other lock-less step found
    // KCore halted: it follows every step that had started taking locks before it ended.
    for (c, log) in logs.iter().enumerate() {
        let mut running = None;
        for (i, r) in log.iter().enumerate() {
            if let Action::VcpuRun { vm, .. } = r.step.action {
                running = u32::try_from(vm).ok();
            }
            if !r.result.rec.locks.is_empty() {
                continue;
            }
            let table = match r.step.action {
                _ if r.result.outcome == Outcome::Halt => None,
                Action::HostLoad { .. } | Action::HostStore { .. } => Some(HOSTVISOR),
                Action::GuestLoad { .. }
                | Action::GuestStore { .. }
                | Action::GuestFetch { .. } => running,
                _ => None,
            };
            for (d, other) in logs.iter().enumerate() {
                if d == c {
                    continue;
                }
                let Some(v) = table else {
                    if let Some(j) = other.iter().rposition(|o| o.key() < r.end) {
                        preds.entry((c, i)).or_default().insert((d, j));
                    }
                    continue;
                };
                for (j, o) in other.iter().enumerate() {
                    for &(id, e) in &o.result.rec.locks {
                        if id != NPT_ID + v {
                            continue;
                        }
                        if e < r.end {
                            preds.entry((c, i)).or_default().insert((d, j));
                        } else {
                            preds.entry((d, j)).or_default().insert((c, i));
                        }
                    }
                }
            }
        }
    }
    for acq in by_lock.values_mut() {
        acq.sort();
        for w in acq.windows(2) {
            let (a, b) = (w[0].1, w[1].1);
            if a != b {
                preds.entry(b).or_default().insert(a);
            }
        }
    }
    let mut done: BTreeSet<Node> = BTreeSet::new();
    let mut next = vec![0usize; logs.len()];
    let mut order = Vec::new();
    let mut forced = 0;
    let total: usize = logs.iter().map(Vec::len).sum();
    while order.len() < total {
        // Each CPU's next step is the only candidate from that CPU (program order).
        let heads: Vec<Node> = (0..logs.len())
            .filter(|&c| next[c] < logs[c].len())
            .map(|c| (c, next[c]))
            .collect();
        let ready = heads
            .iter()
            .copied()
            .filter(|n| preds[n].iter().all(|p| done.contains(p)))
            .min_by_key(|&n| key(n));
        let pick = match ready {
            Some(n) => n,
            None => {
                let heads = heads.into_iter();
                let n = if flip == Some(forced) {
                    heads.max_by_key(|&n| key(n))
                } else {
                    heads.min_by_key(|&n| key(n))
                };
                forced += 1;
                n.expect("steps remain")
            }
        };
        done.insert(pick);
        next[pick.0] += 1;
        order.push(pick);
    }
    (order, forced)
}

/// Where the parallel machine and the replayed one differ at the end.
fn same_state(par: &CoreMachine, l: &Lockstep) -> Vec<String> {
    let (a, b) = (
        abstract_machine(par, &l.model),
        abstract_machine(&l.core, &l.model),
    );
    let mut out = Vec::new();
    if a.global.shared != b.global.shared {
        out.push("final state: the shared state (tables, metadata, VM records) differs".into());
    }
    if a.global.shadow_ctxts != b.global.shadow_ctxts {
        out.push("final state: shadow contexts differ".into());
    }
    if a.global.halt != b.global.halt {
        out.push("final state: halt differs".into());
    }
    for (i, (x, y)) in a.cpus.iter().zip(&b.cpus).enumerate() {
        if x != y {
            out.push(format!("final state: CPU {i} differs"));
        }
    }
    let frames: BTreeSet<u64> = par
        .core
        .hw
        .resident()
        .chain(l.core.core.hw.resident())
        .collect();
    for pfn in frames {
        if par.core.hw.page_words(pfn) != l.core.core.hw.page_words(pfn) {
            out.push(format!("final state: memory of frame {pfn:#x} differs"));
        }
    }
    out
}

/// The machine every parallel round boots: `cpus` CPUs, 80 MiB of RAM, 24 MiB for KCore.
pub fn machine(cpus: usize) -> Result<Lockstep, EngineError> {
    let text = format!(
        r#"{{"name": "parallel", "profile": "arm", "machine": {{"cpus": {cpus}, "ram_mib": 80, "kcore_mib": 24}}, "steps": []}}"#
    );
    let sc = corevisor_sim::scenario::parse("parallel.json", &text)
        .map_err(|e| EngineError(format!("{e:?}")))?;
    Lockstep::for_scenario(&sc, Some(corevisor_spec::profile::ProfileKind::Arm))
}

/// `corevisor soak --parallel`'s figures.
#[derive(Debug, Default)]
pub struct ParallelSoak {
    pub steps: u64,
    /// Rounds: a fresh machine, one VM lifecycle per CPU, all CPUs at once.
    pub rounds: u64,
    /// Of them, contended rounds ([`run_contended`]): two vCPUs of one VM on two CPUs at
    /// once, the host sharing, granting, revoking and mapping pages of the running VM.
    pub contended_rounds: u64,
    pub nontrivial_steps: u64,
    /// Model mismatches of the replay plus differences between the run and its replay.
    pub mismatches: u64,
    pub invariant_breaks: u64,
    pub max_in_core: usize,
    /// Steps a crossing of lock orders placed by their first lock.
    pub interleaved: u64,
    pub seconds: f64,
    pub seed: u64,
    /// The first failing round's linearization, with what failed.
    pub failing: Option<(Vec<Step>, Vec<String>)>,
}

/// Rounds of [`run_parallel`] on `cpus` CPU threads until `steps` steps have run: each CPU
/// runs a VM with a guest program and a number of runs the seed picks; about half the rounds
/// (as the seed picks) a [`run_contended`] round, with `faults` planted on its CPU threads
/// (a `mutants` build; `COREVISOR_MUTANT` plants process-wide).
pub fn soak_parallel(
    steps: u64,
    seed: u64,
    cpus: usize,
    faults: &[Fault],
    mut progress: impl FnMut(u64),
) -> ParallelSoak {
    const IMAGES: [&str; 4] = ["demo", "share", "share", "poweroff"];
    let start = std::time::Instant::now();
    let mut rep = ParallelSoak {
        seed,
        ..ParallelSoak::default()
    };
    let mut r = crate::soak::Rng::new(seed);
    while rep.steps < steps && rep.failing.is_none() {
        // About half the rounds (a coin flip from the seed) are contended: one VM's two
        // vCPUs on CPUs 0 and 1 at once, 1 to 3 iterations (issue 22).
        let contended = cpus >= 2 && r.below(2) == 0;
        let round = if contended {
            let iters = 1 + r.below(3) as usize;
            machine(cpus).and_then(|l| run_contended(l, iters, faults))
        } else {
            let images: Vec<&str> = (0..cpus).map(|_| IMAGES[r.below(4) as usize]).collect();
            // One run, one share, one run: a second share after the `share` guest revoked
            // its page would be the host touching a VM page (KCore halts, correctly).
            machine(cpus).and_then(|l| run_parallel(l, &images, 1))
        };
        rep.rounds += 1;
        rep.contended_rounds += contended as u64;
        let p = match round {
            Ok(p) => p,
            Err(e) => {
                rep.mismatches += 1;
                rep.failing = Some((Vec::new(), vec![e.0]));
                break;
            }
        };
        rep.steps += p.log.len() as u64;
        rep.max_in_core = rep.max_in_core.max(p.max_in_core);
        rep.interleaved += p.interleaved as u64;
        let mut why = p.diverged.clone();
        for c in &p.log {
            rep.nontrivial_steps += (c.model.result != Outcome::Halt && !c.outside_contract) as u64;
            rep.invariant_breaks += c.model.broken.len() as u64;
            why.extend(c.mismatches.iter().cloned());
            why.extend(c.model.broken.iter().map(|b| format!("invariant {b}")));
        }
        rep.mismatches +=
            (p.diverged.len() + p.log.iter().map(|c| c.mismatches.len()).sum::<usize>()) as u64;
        if !why.is_empty() {
            rep.failing = Some((p.steps, why));
        }
        progress(rep.steps.min(steps));
    }
    rep.seconds = start.elapsed().as_secs_f64();
    rep
}
