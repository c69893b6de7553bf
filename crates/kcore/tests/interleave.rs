//! A seeded, replayable interleaver over whole KCore operations (issue 11): the `shuttle`
//! model checker schedules CPUs at every lock acquisition and, through this test's memory,
//! at every access to KCore's memory. Each run's operations are linearized by the tickets
//! they were served: replaying them one at a time, in that order, on a fresh core must give
//! the same state. A missing lock (the planted fault `grant_skips_s2page_lock`) makes some
//! schedule lose an update, which shuttle finds and reports with a replayable schedule.
//!
//! `cargo test -p corevisor-kcore --features shuttle,mutants --test interleave`
#![cfg(all(feature = "shuttle", feature = "mutants"))]

use corevisor_kcore::consts::{PAGE_SIZE, S2PAGE_ID};
use corevisor_kcore::hw::{Hw, Untrusted};
use corevisor_kcore::layout::{Layout, PoolSpans};
use corevisor_kcore::mutants::{self, Fault};
use corevisor_kcore::state::Core;
use shuttle::sync::{Arc, Mutex};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

const RAM: u64 = 0x4000_0000;
const RAM_END: u64 = 0x4400_0000;
const KCORE: u64 = 0x4200_0000;
/// The VM page both vCPUs share.
const PFN: u64 = (RAM + 0x10_0000) / PAGE_SIZE;

/// Memory in which every access (once the core has booted) is a scheduling point.
#[derive(Default)]
struct Mem {
    words: Mutex<HashMap<u64, u64>>,
    interleave: AtomicBool,
}

impl Mem {
    fn point(&self) {
        if self.interleave.load(Ordering::Relaxed) {
            shuttle::thread::yield_now();
        }
    }
}

impl Hw for Mem {
    fn read64(&self, pa: u64) -> u64 {
        self.point();
        *self.words.lock().unwrap().get(&pa).unwrap_or(&0)
    }
    fn write64(&self, pa: u64, v: u64) {
        self.point();
        let mut w = self.words.lock().unwrap();
        if v == 0 {
            w.remove(&pa);
        } else {
            w.insert(pa, v);
        }
    }
    fn tlbi_ipa(&self, _vmid: u32, _ipa: u64) {}
    fn tlbi_vmid(&self, _vmid: u32) {}
    fn zero_range(&self, pa: u64, len: u64) {
        self.words
            .lock()
            .unwrap()
            .retain(|&a, _| !(pa..pa + len).contains(&a));
    }
}

/// The tickets of S2PAGE an operation was served: its place in the linearization.
#[derive(Default)]
struct Tickets(Vec<u32>);

impl Untrusted for Tickets {
    fn record(&mut self, _: u32, _: u64) {}
    fn record_core(&mut self, _: u32, _: u64) {}
    fn acquired(&mut self, id: u32, ticket: u32) {
        if id == S2PAGE_ID {
            self.0.push(ticket);
        }
    }
}

fn booted() -> Core<Mem> {
    let l = Layout::plan(RAM, RAM_END, KCORE, 2, PoolSpans::ARM, 1 << 20).unwrap();
    let core = Core::boot(Mem::default(), l);
    // VM 1 owns the page, count 0 (what a fault-in leaves).
    core.local_assign_pfn_to_vm(1, 0x80000, PFN, &mut Tickets::default())
        .unwrap();
    core.hw.interleave.store(true, Ordering::Relaxed);
    core
}

/// Two vCPUs of VM 1 on two CPUs GRANT the same page at once; then the run's two
/// operations, in ticket order, replayed one at a time on a fresh core.
fn two_grants() {
    let core = Arc::new(booted());
    let cpus: Vec<_> = (0..2)
        .map(|_| {
            let core = Arc::clone(&core);
            shuttle::thread::spawn(move || {
                let mut t = Tickets::default();
                core.local_grant_vm_page(1, PFN, &mut t).unwrap();
                t.0
            })
        })
        .collect();
    let mut order: Vec<(Vec<u32>, usize)> = cpus
        .into_iter()
        .enumerate()
        .map(|(i, h)| (h.join().unwrap(), i))
        .collect();
    order.sort();
    let serial = booted();
    for _ in &order {
        serial
            .local_grant_vm_page(1, PFN, &mut Tickets::default())
            .unwrap();
    }
    assert_eq!(
        core.page(PFN),
        serial.page(PFN),
        "the concurrent run differs from its linearization {order:?}"
    );
    assert_eq!(core.page(PFN).count, 2);
}

/// `schedules` runs of `two_grants` under shuttle's random (`pct: None`) or PCT scheduler,
/// on stacks that hold a `Core` (a few hundred KiB).
fn explore(schedules: usize, pct: Option<usize>) {
    use shuttle::scheduler::{PctScheduler, RandomScheduler};
    let mut config = shuttle::Config::new();
    config.stack_size = 16 << 20;
    match pct {
        None => shuttle::Runner::new(RandomScheduler::new(schedules), config).run(two_grants),
        Some(d) => shuttle::Runner::new(PctScheduler::new(d, schedules), config).run(two_grants),
    };
}

#[test]
fn concurrent_grants_match_their_linearization_in_every_explored_schedule() {
    mutants::with(None, || explore(300, None));
    mutants::with(None, || explore(300, Some(3)));
}

#[test]
fn the_interleaver_finds_a_grant_that_skips_its_lock() {
    let found = std::panic::catch_unwind(|| {
        mutants::with(Some(Fault::GrantSkipsS2PageLock), || explore(300, None))
    });
    assert!(
        found.is_err(),
        "no schedule of 300 lost the unlocked GRANT's update"
    );
}

/// The same exploration with the process-wide fault (`COREVISOR_MUTANT`), if any: what
/// `cargo xtask mutants` runs to see the missing lock caught.
#[test]
fn the_planted_fault_if_any_loses_no_grant() {
    explore(300, None);
}
