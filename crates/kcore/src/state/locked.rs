//! `Locked<T>`: a value that lives inside the ticket lock guarding it (Hafnium's
//! `vm_locked`, Linux's `hyp_spinlock` around `host_mmu`). The only way to the value is a
//! [`Guard`], which exists only while the lock is held, so touching shared state without its
//! lock does not compile. This is the one module of KCore with `unsafe`.
//!
//! The lock is the verified ticket lock: take a ticket with fetch-and-increment, spin until
//! it is served (acquire), serve the next ticket on release. With the `shuttle` feature the
//! atomics come from the `shuttle` model checker, which explores thread interleavings
//! (`tests/lock_model.rs`).
//!
//! A halt is KCore's defined panic: the seed leaves the locks the halting step held taken
//! for good. Here a guard is released as its step unwinds, and every later acquisition (on
//! any CPU) sees the core halted and fails with [`Halt`]: no operation runs after a halt,
//! which is what the poisoned locks mean; [`crate::state::Core::poisoned`] keeps which ones.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
#[cfg(not(feature = "shuttle"))]
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
#[cfg(feature = "shuttle")]
use shuttle::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// KCore halted: the spec's defined panic. Carried upward with `?`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Halt;

/// The result of a step that may halt.
pub type Res<T = ()> = Result<T, Halt>;

/// A value of type `T` guarded by ticket lock `id` (a seed lock id, or one of KCore's own:
/// `consts::EXPORT_ID`, `consts::CTXT_ID`). Each starts a cache line (64 bytes on the Arm
/// cores this targets): in an array of locks (the vCPU contexts, the VM records) one CPU's
/// lock word would otherwise share a line with the next element another CPU is writing
/// (`corevisor bench` measured the null hypercall slower on 2 CPUs than on 1 that way).
#[repr(align(64))]
pub struct Locked<T> {
    id: u32,
    next: AtomicU32,
    serving: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a `Guard` (one at a time: the ticket lock
// excludes) or through `&mut Locked` (exclusive by construction), so sharing `&Locked<T>`
// between CPUs hands `T` from one CPU to another, never to two at once: `T: Send` suffices.
unsafe impl<T: Send> Sync for Locked<T> {}

impl<T> Locked<T> {
    pub fn new(id: u32, value: T) -> Self {
        Locked {
            id,
            next: AtomicU32::new(0),
            serving: AtomicU32::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// The lock's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Takes the lock (spinning, FIFO). Returns the guard and the ticket it was served:
    /// tickets order every acquisition of this lock, which is what a checker linearizes by.
    /// Fails if `halted` is set once the lock is held (the lock is released again).
    pub fn lock<'a>(&'a self, halted: &'a AtomicBool) -> Result<(Guard<'a, T>, u32), Halt> {
        let (g, ticket) = self.lock_raw();
        if halted.load(Ordering::Acquire) {
            return Err(Halt);
        }
        Ok((g, ticket))
    }

    /// Takes the lock without the halt check; the ticket it was served.
    fn lock_raw(&self) -> (Guard<'_, T>, u32) {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        let mut spins = 0u32;
        while self.serving.load(Ordering::Acquire) != ticket {
            spins = spins.wrapping_add(1);
            relax(spins);
        }
        (Guard { lock: self }, ticket)
    }

    fn unlock(&self) {
        let now = self.serving.load(Ordering::Relaxed);
        self.serving.store(now.wrapping_add(1), Ordering::Release);
    }

    /// Is some CPU holding the lock now?
    pub fn is_locked(&self) -> bool {
        self.next.load(Ordering::Relaxed) != self.serving.load(Ordering::Relaxed)
    }

    /// Exclusive access without locking: `&mut self` proves no CPU can hold the lock.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// A copy of the value, taken under the lock (for checkers reading a machine whose
    /// steps have all returned; a step in progress makes it wait).
    pub fn read(&self) -> T
    where
        T: Copy,
    {
        *self.lock_raw().0
    }
}

/// Copying a machine copies its values with fresh locks: copies are snapshots of a machine
/// no CPU is inside (tests), never of one whose locks are held.
impl<T: Copy> Clone for Locked<T> {
    fn clone(&self) -> Self {
        Locked::new(self.id, self.read())
    }
}

/// Proof that the lock is held: the only way to the value. Released when dropped.
pub struct Guard<'a, T> {
    lock: &'a Locked<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a guard exists only between a served ticket and its release, and the
        // ticket lock serves one ticket at a time, so no other reference to the value is
        // live (the Acquire load that served the ticket orders the previous holder's writes
        // before these reads).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; `&mut self` makes this the guard's only live borrow.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        // The Release store publishes this holder's writes to the next ticket's holder.
        self.lock.unlock();
    }
}

#[cfg(all(test, not(feature = "shuttle")))]
mod tests {
    use super::*;

    #[test]
    fn a_halted_core_grants_no_lock_and_leaves_it_free() {
        let l = Locked::new(7, 1u32);
        let halted = AtomicBool::new(false);
        {
            let (mut g, t) = l.lock(&halted).unwrap();
            assert_eq!((*g, t, l.is_locked()), (1, 0, true));
            *g = 2;
        }
        assert!(!l.is_locked());
        halted.store(true, Ordering::Relaxed);
        assert_eq!(l.lock(&halted).err(), Some(Halt));
        assert!(!l.is_locked(), "a refused acquisition releases the lock");
        assert_eq!((l.read(), l.id()), (2, 7));
    }

    #[test]
    fn tickets_number_the_acquisitions() {
        let l = Locked::new(0, ());
        let h = AtomicBool::new(false);
        let tickets: [u32; 3] = core::array::from_fn(|_| l.lock(&h).unwrap().1);
        assert_eq!(tickets, [0, 1, 2]);
    }
}

/// One turn of a waiting CPU. On hardware, a spin hint. Under shuttle, a scheduling point.
/// Hosted (`hosted`: simulated CPUs are OS threads, possibly more than cores), the thread
/// yields after 64 turns: a FIFO lock whose next holder's thread was descheduled would
/// otherwise keep every later waiter spinning out its time slice (measured by
/// `corevisor bench`: 4 CPUs on 2 cores faulting under S2PAGE fell to under 1,000 traps/s).
#[inline(always)]
fn relax(spins: u32) {
    #[cfg(feature = "shuttle")]
    shuttle::thread::yield_now();
    #[cfg(all(feature = "hosted", not(feature = "shuttle")))]
    if spins.is_multiple_of(64) {
        std::thread::yield_now();
        return;
    }
    #[cfg(not(feature = "shuttle"))]
    core::hint::spin_loop();
    let _ = spins;
}
