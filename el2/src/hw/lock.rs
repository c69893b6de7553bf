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

/// A readers-writer spin lock without data (the glue's entry lock): any number of readers or
/// one writer; a waiting writer keeps new readers out, so readers cannot starve it. A full
/// barrier (DSB ISH) after acquiring and before releasing, as for [`TicketLock`].
pub struct RwSpin {
    /// Bit 31: a writer holds it; bit 30: a writer waits; bits 29..0: readers inside.
    state: AtomicU32,
}

const WRITER: u32 = 1 << 31;
const WAITING: u32 = 1 << 30;

impl RwSpin {
    pub const fn new() -> Self {
        RwSpin {
            state: AtomicU32::new(0),
        }
    }

    pub fn read(&self) -> ReadGuard<'_> {
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & (WRITER | WAITING) == 0
                && self
                    .state
                    .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break;
            }
            core::hint::spin_loop();
        }
        super::regs::dsb_ish();
        ReadGuard { lock: self }
    }

    pub fn write(&self) -> WriteGuard<'_> {
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & !WAITING == 0 {
                if self
                    .state
                    .compare_exchange_weak(s, WRITER, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    break;
                }
            } else if s & WAITING == 0 {
                self.state.fetch_or(WAITING, Ordering::Relaxed);
            }
            core::hint::spin_loop();
        }
        super::regs::dsb_ish();
        WriteGuard { lock: self }
    }

    /// The write lock if it comes within `spins` tries (the traced image's final line).
    #[cfg_attr(not(feature = "trace"), allow(dead_code))]
    pub fn try_write(&self, spins: u32) -> Option<WriteGuard<'_>> {
        for _ in 0..spins {
            if self
                .state
                .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                super::regs::dsb_ish();
                return Some(WriteGuard { lock: self });
            }
            core::hint::spin_loop();
        }
        None
    }
}

pub struct ReadGuard<'a> {
    lock: &'a RwSpin,
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        super::regs::dsb_ish();
        self.lock.state.fetch_sub(1, Ordering::Release);
    }
}

pub struct WriteGuard<'a> {
    lock: &'a RwSpin,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        super::regs::dsb_ish();
        // Keep a waiting writer's mark: it is set again by the next writer that waits.
        self.lock.state.store(0, Ordering::Release);
    }
}

/// A value set once by the boot CPU before any other CPU runs, then shared (`&T`) by all.
pub struct Once<T> {
    set: core::sync::atomic::AtomicBool,
    v: UnsafeCell<core::mem::MaybeUninit<T>>,
}

// SAFETY: after `set` (one writer, before any reader exists: the boot CPU, other CPUs still
// off), only shared references are handed out, so `Once<T>` is shared as `T` is.
unsafe impl<T: Sync> Sync for Once<T> {}

impl<T> Once<T> {
    pub const fn new() -> Self {
        Once {
            set: core::sync::atomic::AtomicBool::new(false),
            v: UnsafeCell::new(core::mem::MaybeUninit::uninit()),
        }
    }

    /// Sets the value: once, on the boot CPU, before any other CPU runs or `get` is called.
    pub fn set(&self, v: T) {
        assert!(!self.set.load(Ordering::Relaxed), "set twice");
        // SAFETY: no reference to the value exists yet (the contract above), so this is the
        // only access.
        unsafe { (*self.v.get()).write(v) };
        self.set.store(true, Ordering::Release);
    }

    /// The value; panics before `set`.
    pub fn get(&self) -> &T {
        assert!(self.set.load(Ordering::Acquire), "used before boot set it");
        // SAFETY: written once before `set` became true (Release/Acquire), never again.
        unsafe { (*self.v.get()).assume_init_ref() }
    }
}

/// One `T` per CPU, each reached only by its own CPU ([`PerCpu::this`]), so a `T` with plain
/// `Cell`s in it is sound to share: no two CPUs touch one slot, and a CPU at EL2 runs with
/// interrupts masked (no re-entry).
pub struct PerCpu<T> {
    slots: [T; super::percpu::MAX_CPUS],
}

// SAFETY: slot `i` is only ever reached through `this()` on CPU `i` (the index comes from
// the running CPU's own stack), so no slot is shared between CPUs.
unsafe impl<T> Sync for PerCpu<T> {}

impl<T> PerCpu<T> {
    pub const fn new(slots: [T; super::percpu::MAX_CPUS]) -> Self {
        PerCpu { slots }
    }

    /// This CPU's slot.
    #[inline(always)]
    pub fn this(&self) -> &T {
        &self.slots[super::percpu::current()]
    }
}
