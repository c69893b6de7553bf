//! Model checking of the ticket locks with shuttle (random and PCT schedules): mutual
//! exclusion, and no deadlock when CPUs name the same locks in different orders.
#![cfg(feature = "shuttle")]

use corevisor_kcore::consts::{INFO_ID, NPT_ID, S2PAGE_ID, SMMU_ID};
use corevisor_kcore::lock::{Locks, TicketLock};
use shuttle::sync::atomic::{AtomicU32, Ordering};
use shuttle::sync::Arc;
use shuttle::thread;

/// Three CPUs increment a counter with a separate load and store (a race without the lock).
fn exclusion() {
    let lock = Arc::new(TicketLock::new());
    let counter = Arc::new(AtomicU32::new(0));
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (lock, counter) = (lock.clone(), counter.clone());
            thread::spawn(move || {
                for _ in 0..2 {
                    lock.lock();
                    let v = counter.load(Ordering::Relaxed);
                    thread::yield_now();
                    counter.store(v + 1, Ordering::Relaxed);
                    lock.unlock();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(counter.load(Ordering::Relaxed), 6);
}

#[test]
fn ticket_lock_excludes_random() {
    shuttle::check_random(exclusion, 2000);
}

#[test]
fn ticket_lock_excludes_pct() {
    shuttle::check_pct(exclusion, 2000, 3);
}

/// Two CPUs name overlapping lock sets in opposite orders; `Locks::with` takes them in the
/// nesting order, so no schedule deadlocks (shuttle reports a deadlock as a failure).
fn no_deadlock() {
    let locks = Arc::new(Locks::new());
    let sets: [&[u32]; 3] = [
        &[NPT_ID + 1, S2PAGE_ID, SMMU_ID],
        &[SMMU_ID, S2PAGE_ID, INFO_ID + 1],
        &[S2PAGE_ID, INFO_ID + 1, NPT_ID],
    ];
    let handles: Vec<_> = sets
        .into_iter()
        .map(|set| {
            let locks = locks.clone();
            thread::spawn(move || locks.with(set, thread::yield_now))
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn nested_locks_never_deadlock() {
    shuttle::check_random(no_deadlock, 2000);
    shuttle::check_pct(no_deadlock, 2000, 3);
}

/// The checker is not vacuous: a lock that does not exclude is caught.
#[test]
#[should_panic]
fn the_checker_catches_a_missing_lock() {
    shuttle::check_random(
        || {
            let counter = Arc::new(AtomicU32::new(0));
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let c = counter.clone();
                    thread::spawn(move || {
                        let v = c.load(Ordering::Relaxed);
                        thread::yield_now();
                        c.store(v + 1, Ordering::Relaxed);
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(counter.load(Ordering::Relaxed), 2);
        },
        2000,
    );
}
