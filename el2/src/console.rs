//! The console: the PL011, shared by every CPU in KCore, one whole line at a time under a
//! lock (before the MMU is on, when only the boot CPU runs, without it).

use crate::hw::lock::TicketLock;
use crate::hw::uart;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

static LOCK: TicketLock<()> = TicketLock::new(());
/// Set once the MMU is on (the lock's exclusives need normal memory).
static LOCKING: AtomicBool = AtomicBool::new(false);

pub fn locking_on() {
    LOCKING.store(true, Ordering::Release);
}

/// Writes bytes to the UART (the caller holds the console).
pub struct Uart;

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            uart::putc(b);
        }
        Ok(())
    }
}

/// Runs `f` with the console held (`f` writes whole lines).
pub fn with<R>(f: impl FnOnce(&mut Uart) -> R) -> R {
    if LOCKING.load(Ordering::Acquire) {
        let _g = LOCK.lock();
        f(&mut Uart)
    } else {
        f(&mut Uart)
    }
}

/// For panic paths: the console if it can be had within a bounded wait, else without it.
pub fn with_panicking<R>(f: impl FnOnce(&mut Uart) -> R) -> R {
    if LOCKING.load(Ordering::Acquire) {
        for _ in 0..1_000_000 {
            if let Some(_g) = LOCK.try_lock() {
                return f(&mut Uart);
            }
            core::hint::spin_loop();
        }
    }
    f(&mut Uart)
}
