//! Model checking of `Locked<T>` (the ticket lock with the value inside) with shuttle
//! (random and PCT schedules): mutual exclusion through the guard, FIFO tickets, and a
//! halt that no waiting CPU outlives.
#![cfg(feature = "shuttle")]

use corevisor_kcore::state::{Halt, Locked};
use shuttle::sync::atomic::{AtomicBool, Ordering};
use shuttle::sync::Arc;
use shuttle::thread;

/// Three CPUs increment the guarded value with a separate load and store and a scheduling
/// point between them (a lost update without exclusion).
fn exclusion() {
    let cell = Arc::new(Locked::new(0, 0u32));
    let halted = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (cell, halted) = (cell.clone(), halted.clone());
            thread::spawn(move || {
                for _ in 0..2 {
                    let (mut g, _) = cell.lock(&halted).unwrap();
                    let v = *g;
                    thread::yield_now();
                    *g = v + 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(cell.read(), 6);
}

#[test]
fn locked_excludes_random() {
    shuttle::check_random(exclusion, 2000);
}

#[test]
fn locked_excludes_pct() {
    shuttle::check_pct(exclusion, 2000, 3);
}

/// One CPU halts while holding the lock; the others, queued behind it, are refused as soon
/// as they are served: no schedule leaves a CPU spinning for ever (shuttle reports that as a
/// deadlock) and none runs after the halt.
fn halt_releases_waiters() {
    let cell = Arc::new(Locked::new(0, 0u32));
    let halted = Arc::new(AtomicBool::new(false));
    let holder = {
        let (cell, halted) = (cell.clone(), halted.clone());
        thread::spawn(move || {
            if let Ok((mut g, _)) = cell.lock(&halted) {
                *g += 1;
                thread::yield_now();
                halted.store(true, Ordering::Release);
            }
        })
    };
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let (cell, halted) = (cell.clone(), halted.clone());
            thread::spawn(move || match cell.lock(&halted) {
                Ok((mut g, _)) => {
                    *g += 10;
                    Ok(())
                }
                Err(Halt) => Err(Halt),
            })
        })
        .collect();
    holder.join().unwrap();
    let ran: u32 = waiters
        .into_iter()
        .map(|w| w.join().unwrap().is_ok() as u32)
        .sum();
    // Waiters served before the holder ran add 10 each; none after the halt.
    let v = cell.read();
    assert_eq!(v % 10, 1, "the holder ran once");
    assert_eq!(v / 10, ran);
}

#[test]
fn a_halt_leaves_no_cpu_spinning() {
    shuttle::check_random(halt_releases_waiters, 2000);
    shuttle::check_pct(halt_releases_waiters, 2000, 3);
}

/// The checker is not vacuous: an update outside the guard is caught.
#[test]
#[should_panic]
fn the_checker_catches_an_update_outside_the_lock() {
    shuttle::check_random(
        || {
            let cell = Arc::new(Locked::new(0, 0u32));
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let c = cell.clone();
                    thread::spawn(move || {
                        let v = c.read();
                        thread::yield_now();
                        let h = AtomicBool::new(false);
                        *c.lock(&h).unwrap().0 = v + 1;
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(cell.read(), 2);
        },
        2000,
    );
}
