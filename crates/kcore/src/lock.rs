//! Ticket locks with the seed's lock ids, taken in the one nesting order the C observes
//! (implementation-notes §2.8): SMMU → VM info(v) → CORE → S2PAGE → {NPT(v) | SPT}.
//!
//! The ticket lock is the verified one: take a ticket with fetch-and-increment, spin until
//! it is served (acquire), serve the next ticket on release. With the `shuttle` feature the
//! atomics come from the `shuttle` model checker, which explores thread interleavings.

#[cfg(not(feature = "shuttle"))]
use core::sync::atomic::{AtomicU32, Ordering};
#[cfg(feature = "shuttle")]
use shuttle::sync::atomic::{AtomicU32, Ordering};

use crate::consts::*;

/// A FIFO spin lock.
pub struct TicketLock {
    next: AtomicU32,
    serving: AtomicU32,
}

impl Default for TicketLock {
    fn default() -> Self {
        Self::new()
    }
}

impl TicketLock {
    pub fn new() -> Self {
        TicketLock {
            next: AtomicU32::new(0),
            serving: AtomicU32::new(0),
        }
    }

    pub fn lock(&self) {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        while self.serving.load(Ordering::Acquire) != ticket {
            #[cfg(feature = "shuttle")]
            shuttle::thread::yield_now();
            #[cfg(not(feature = "shuttle"))]
            core::hint::spin_loop();
        }
    }

    pub fn unlock(&self) {
        let now = self.serving.load(Ordering::Relaxed);
        self.serving.store(now.wrapping_add(1), Ordering::Release);
    }
}

/// Rank of a lock id in the nesting order; a CPU only ever takes locks of rising rank.
pub fn rank(id: u32) -> u32 {
    match id {
        SMMU_ID => 0,
        i if (INFO_ID..INFO_ID + 17).contains(&i) => 1,
        CORE_ID => 2,
        S2PAGE_ID => 3,
        _ => 4, // NPT_ID + v, SPT_ID: at most one of them at a time
    }
}

/// One ticket lock per seed lock id (0..39).
pub struct Locks {
    locks: [TicketLock; 39],
}

impl Default for Locks {
    fn default() -> Self {
        Self::new()
    }
}

impl Locks {
    pub fn new() -> Self {
        Locks {
            locks: core::array::from_fn(|_| TicketLock::new()),
        }
    }

    fn sorted(ids: &[u32]) -> ([u32; 8], usize) {
        let mut sorted = [0u32; 8];
        let n = ids.len().min(8);
        sorted[..n].copy_from_slice(&ids[..n]);
        let s = &mut sorted[..n];
        s.sort_unstable_by_key(|&id| (rank(id), id));
        debug_assert!(s.windows(2).all(|w| w[0] != w[1]), "a lock taken twice");
        debug_assert!(
            s.iter().filter(|&&id| rank(id) == 4).count() <= 1,
            "two page-table locks at once"
        );
        (sorted, n)
    }

    /// Takes every lock of `ids`, in nesting order.
    pub fn acquire(&self, ids: &[u32]) {
        let (s, n) = Self::sorted(ids);
        for &id in &s[..n] {
            self.locks[id as usize].lock();
        }
    }

    /// Releases every lock of `ids`, in reverse nesting order.
    pub fn release(&self, ids: &[u32]) {
        let (s, n) = Self::sorted(ids);
        for &id in s[..n].iter().rev() {
            self.locks[id as usize].unlock();
        }
    }

    /// Takes every lock of `ids` in nesting order (the order the caller lists them in does
    /// not matter), runs `f`, releases in reverse.
    pub fn with<R>(&self, ids: &[u32], f: impl FnOnce() -> R) -> R {
        self.acquire(ids);
        let r = f();
        self.release(ids);
        r
    }
}

/// A copy of a machine's locks is a fresh set: copying is for snapshots of a quiescent
/// machine (tests), never of one whose locks are held.
impl Clone for Locks {
    fn clone(&self) -> Self {
        Locks::new()
    }
}
