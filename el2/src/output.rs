//! KCore's console output in the order things happened: what the trace holds (entries and
//! KCore's notes, kept under the glue's lock, `kcore_glue::STATE`) is printed before any
//! other line (`kprintln!`, the host's console service, a panic), and the run ends with the
//! trace's last line. It sits above both: the trace formats the lines, the glue keeps the
//! trace, and neither names the other's lock or printer.

use crate::kcore_glue::STATE;

/// Prints what the trace holds (before other console output).
pub fn flush() {
    STATE.lock().trace.flush();
}

/// For panic paths: prints what the trace holds if it can be had.
pub fn flush_panicking() {
    for _ in 0..1_000_000 {
        if let Some(mut t) = STATE.try_lock() {
            t.trace.flush();
            return;
        }
        core::hint::spin_loop();
    }
}

/// The end of the run: the trace's last line, with the entries and KCore's whole state,
/// digested (for check-trace to compare with the model's), taken with every entry out of
/// kcore (host faults run two at once) and under one hold of the trace's lock: no entry
/// can come between them.
#[cfg(feature = "trace")]
pub fn final_line(halted: bool, why: &str) {
    let entries_out = crate::kcore_glue::ENTRIES.try_write(10_000_000);
    let (entries, digest) = match STATE.try_lock().filter(|_| entries_out.is_some()) {
        Some(mut t) => {
            t.trace.flush();
            (t.trace.entries(), crate::kcore_glue::state_digest(&mut t))
        }
        None => (0, None),
    };
    crate::trace::final_line(halted, why, entries, digest);
}

/// The end of the run (the production image): the verdicts kept, if the lock can be had;
/// no trace line.
#[cfg(not(feature = "trace"))]
pub fn final_line(_halted: bool, _why: &str) {
    if let Some(mut t) = STATE.try_lock() {
        t.trace.flush();
    }
}

/// `kprintln!(...)`: one `[kcore] ` line. Flushes the trace first, so the console keeps
/// the order in which things happened.
#[macro_export]
macro_rules! kprintln {
    ($($arg:tt)*) => {{
        $crate::output::flush();
        $crate::console::with(|u| {
            use core::fmt::Write;
            let _ = write!(u, "[kcore] ");
            let _ = writeln!(u, $($arg)*);
        });
    }};
}
