//! `corevisor bench`: KCore's trap throughput with 1, 2, 4... CPUs trapping at once on one
//! simulated machine, nothing serializing them but KCore's own locks (issue 11). Two
//! workloads:
//!
//! * `null_hvc`: each CPU's host issues TIMER_SET_CNTVOFF, which takes only the CPU's own
//!   shadow-context lock: the curve shows what per-CPU work scales to.
//! * `host_fault`: each CPU's host touches fresh pages of its own slice of RAM; each touch is
//!   a stage-2 fault that KCore serves under S2PAGE and the host's NPT, locks every CPU
//!   shares: the curve shows what the seed's global locks cost.
//!
//! Throughput is traps per second of wall-clock time, all CPUs together; each figure is the
//! best of `rounds` runs, and the ratios are taken within one invocation.

use corevisor_kcore::trap::Cpu;
use corevisor_sim::machine::{CoreMachine, MachineShape, Outcome};
use corevisor_sim::scenario::{Action, HvcCall, HvcName, Step};
use std::sync::Barrier;
use std::time::Instant;

/// The two workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    NullHvc,
    HostFault,
}

impl Workload {
    pub const ALL: [Workload; 2] = [Workload::NullHvc, Workload::HostFault];

    pub fn name(self) -> &'static str {
        match self {
            Workload::NullHvc => "null_hvc",
            Workload::HostFault => "host_fault",
        }
    }
}

/// One point of the curve.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub threads: usize,
    pub traps: u64,
    pub traps_per_s: f64,
}

const RAM: u64 = 0x4000_0000;
const RAM_END: u64 = 0x8000_0000;
const KCORE: u64 = RAM_END - (64 << 20);

fn machine(cpus: usize) -> CoreMachine {
    CoreMachine::new(MachineShape {
        cpus,
        ram_base: RAM,
        ram_end: RAM_END,
        kcore_base: KCORE,
        smmus: 0,
        mmio: MachineShape::default_mmio(0),
    })
    .expect("KCore's region holds its state")
}

/// `traps` traps on each of `threads` CPUs at once; the wall-clock traps per second.
pub fn run(w: Workload, threads: usize, traps: u64) -> Point {
    let mut m = machine(threads);
    let slice = ((KCORE - RAM) / threads as u64) & !0xFFF;
    let barrier = Barrier::new(threads + 1);
    let (shared, cpus) = m.parts();
    let shared = shared.untimed();
    let elapsed = std::thread::scope(|s| {
        let barrier = &barrier;
        let handles: Vec<_> = cpus
            .iter_mut()
            .take(threads)
            .enumerate()
            .map(|(i, cpu): (usize, &mut Cpu)| {
                s.spawn(move || {
                    let from = RAM + i as u64 * slice;
                    barrier.wait();
                    for k in 0..traps {
                        let action = match w {
                            Workload::NullHvc => Action::Hvc {
                                call: HvcCall::Named(HvcName::TimerSetCntvoff),
                                args: vec![],
                            },
                            Workload::HostFault => Action::HostLoad {
                                addr: (from + (k * 4096) % slice) as i128,
                            },
                        };
                        let r = shared.step(cpu, &Step::new(i as i128, action));
                        assert_eq!(r.outcome, Outcome::Ok, "{} on cpu {i}", w.name());
                    }
                    barrier.wait();
                })
            })
            .collect();
        barrier.wait();
        let t = Instant::now();
        barrier.wait();
        let e = t.elapsed();
        for h in handles {
            h.join().expect("a bench thread panicked");
        }
        e
    });
    let total = traps * threads as u64;
    Point {
        threads,
        traps: total,
        traps_per_s: total as f64 / elapsed.as_secs_f64().max(1e-9),
    }
}

/// The curve: for each thread count, the best of `rounds` runs.
pub fn curve(w: Workload, threads: &[usize], traps: u64, rounds: usize) -> Vec<Point> {
    threads
        .iter()
        .map(|&t| {
            (0..rounds.max(1))
                .map(|_| run(w, t, traps))
                .max_by(|a, b| a.traps_per_s.total_cmp(&b.traps_per_s))
                .expect("one round at least")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cpu_traps_in_both_workloads() {
        for w in Workload::ALL {
            let p = run(w, 2, 200);
            assert_eq!(p.traps, 400);
            assert!(p.traps_per_s > 0.0);
        }
    }
}
