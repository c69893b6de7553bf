//! A ticket lock (implementation-notes §2.8, §6 "No-Barrier-Misuse"): a ticket from a
//! fetch-and-increment, a spin on `owner`, and a full barrier (DSB ISH) after acquiring and
//! before releasing, so table walkers ordered by nothing else see what the holder wrote.
//! Used only with the MMU on (exclusives need normal memory).

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

pub struct TicketLock<T> {
    next: AtomicU32,
    owner: AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one holder at a time (ticket order), so sharing
// the lock between CPUs is sound whenever `T` may be sent between them.
unsafe impl<T: Send> Sync for TicketLock<T> {}

impl<T> TicketLock<T> {
    pub const fn new(v: T) -> Self {
        TicketLock {
            next: AtomicU32::new(0),
            owner: AtomicU32::new(0),
            data: UnsafeCell::new(v),
        }
    }

    pub fn lock(&self) -> Guard<'_, T> {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        while self.owner.load(Ordering::Acquire) != ticket {
            core::hint::spin_loop();
        }
        super::regs::dsb_ish();
        Guard { lock: self, ticket }
    }
}

pub struct Guard<'a, T> {
    lock: &'a TicketLock<T>,
    ticket: u32,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock: no other reference to the data exists.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as `deref`, and `&mut self` makes this the only reference.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        super::regs::dsb_ish();
        self.lock
            .owner
            .store(self.ticket.wrapping_add(1), Ordering::Release);
    }
}

impl<T> TicketLock<T> {
    /// The lock if it is free now (panic paths, which must not wait on a CPU that stopped).
    pub fn try_lock(&self) -> Option<Guard<'_, T>> {
        let now = self.owner.load(Ordering::Acquire);
        self.next
            .compare_exchange(
                now,
                now.wrapping_add(1),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()?;
        super::regs::dsb_ish();
        Some(Guard {
            lock: self,
            ticket: now,
        })
    }
}

/// A value set once at boot and used under its lock afterwards, kept in `.bss` (no
/// initializer in the image) however large it is.
pub struct Late<T> {
    set: bool,
    v: core::mem::MaybeUninit<T>,
}

impl<T> Late<T> {
    pub const fn new() -> Self {
        Late {
            set: false,
            v: core::mem::MaybeUninit::uninit(),
        }
    }

    /// Sets the value (once).
    pub fn set(&mut self, v: T) {
        assert!(!self.set, "set twice");
        self.v.write(v);
        self.set = true;
    }

    pub fn is_set(&self) -> bool {
        self.set
    }

    /// The value; panics before `set`.
    pub fn get(&mut self) -> &mut T {
        assert!(self.set, "used before boot set it");
        // SAFETY: `set` is true only after `v` was written.
        unsafe { self.v.assume_init_mut() }
    }
}
