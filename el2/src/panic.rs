//! KCore's defined panic (implementation-notes §3, "halt"): print why, print the trace so
//! far, and stop for good: every CPU stops taking part, and the machine is powered off
//! (PSCI SYSTEM_OFF) so a CI run ends at once. Nothing unwinds, no lock is released.

use crate::hw::{psci, regs};
use crate::kcore_glue::Stop;
use crate::{console, kcore_glue, output};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

static STOPPING: AtomicBool = AtomicBool::new(false);

fn end(halted: bool, why: &str) -> ! {
    regs::mask_all();
    if STOPPING.swap(true, Ordering::AcqRel) {
        // Another CPU is already stopping the machine.
        loop {
            regs::wfe();
        }
    }
    output::final_line(halted, why);
    psci::smc(el2_abi::psci::SYSTEM_OFF, 0, 0, 0);
    loop {
        regs::wfe();
    }
}

/// kcore halted (or refused an entry the CPU's mode does not admit) in `s`.
pub fn halted(s: Stop) -> ! {
    let st = s.step;
    output::flush_panicking();
    console::with_panicking(|u| {
        let _ = writeln!(
            u,
            "KCORE HALT: kcore halted (its defined panic) on cpu {} in {} ({:?} by {}, result {:?}); KCore stops the machine; host stage-2 faults served: {}",
            st.cpu,
            st.entry.name(),
            st.action,
            if st.principal == 0 { "the host" } else { "a VM" },
            st.result,
            kcore_glue::host_faults()
        );
    });
    end(true, "kcore halted")
}

/// The EL2 platform cannot go on (bad machine, a host it cannot serve).
pub fn stop(args: core::fmt::Arguments<'_>) -> ! {
    output::flush_panicking();
    console::with_panicking(|u| {
        let _ = write!(u, "KCORE PANIC: ");
        let _ = u.write_fmt(args);
        let _ = writeln!(u);
    });
    end(
        kcore_glue::halted_panicking().unwrap_or(false),
        "KCore panic",
    )
}

/// An exception KCore took at EL2: a bug in KCore.
pub fn kcore_fault(slot: u64, esr: u64, elr: u64, far: u64, spsr: u64, sp: u64) -> ! {
    console::with_panicking(|u| {
        let _ = writeln!(
            u,
            "KCORE PANIC: exception at EL2 (vector slot {slot}): esr {esr:#x} elr {elr:#x} far {far:#x} spsr {spsr:#x} sp {sp:#x}"
        );
    });
    end(false, "KCore fault")
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    stop(format_args!("{info}"))
}
