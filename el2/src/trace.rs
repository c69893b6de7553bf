//! The trace of KCore's entries (docs/el2.md, "The trace"), a build-time choice:
//!
//! * with the `trace` feature (the default; the checked build `cargo xtask qemu` boots on
//!   both CPU models), one JSON line per entry into kcore on the console, with what the CPU
//!   asked for, how it ended, and the untrusted values kcore recorded while handling it, so
//!   that the run can be replayed through the reference model (`ring`);
//! * without it (the production image, `kcore-el2-prod`), none of that is compiled: the glue
//!   captures no arguments, writes no record and gives kcore an input that discards what it
//!   is told (`off`). What stays is the vocabulary below, with which the glue names an entry
//!   that halted (KCore's panic message), and KCore's log of its VERIFY_VM_IMAGE verdicts
//!   (`[kcore]` lines, not trace lines), printed at the next console output in both builds.

#[cfg(not(feature = "trace"))]
mod off;
#[cfg(feature = "trace")]
mod ring;

#[cfg(not(feature = "trace"))]
pub use off::Trace;
#[cfg(feature = "trace")]
pub use ring::{final_line, header, Page, TlbiRun, Trace, Vm, CTXS, CTX_WORDS, MAX_TLBI};

use crate::console;
use core::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Entry {
    HostHvc,
    HostNpt,
    VcpuRun,
    VmExit,
}

impl Entry {
    pub fn name(self) -> &'static str {
        match self {
            Entry::HostHvc => "host_hvc_handler",
            Entry::HostNpt => "host_npt_handler",
            Entry::VcpuRun => "host_vcpu_run_handler",
            Entry::VmExit => "vm_exit_handler",
        }
    }
}

/// What the CPU did, in the vocabulary of the scenario format's actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Action {
    /// A host hypercall (also VCPU_RUN); the first argument is the call number.
    Hvc,
    HostLoad,
    HostStore,
    HostFetch,
    GuestLoad,
    GuestStore,
    GuestFetch,
    GuestShare,
    GuestUnshare,
    GuestPsci,
    GuestHvcOther,
    GuestWfx,
    GuestSysreg,
    GuestOther,
    Irq,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    Ok,
    Halt,
    Undefined,
}

/// One entry into kcore, as the glue describes it (without the trace, only KCore's panic
/// message reads one, and not all of it).
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(feature = "trace"), allow(dead_code))]
pub struct Step {
    pub cpu: u8,
    /// 0 = the host, else the VM whose exit this is.
    pub principal: u8,
    pub vcpu: u8,
    pub entry: Entry,
    pub action: Action,
    pub result: Outcome,
    /// The CPU's x0 after a host hypercall, or after a VM exit that returned to the host.
    pub x0: Option<u64>,
}

/// KCore's verdict on VM `vm`'s image, as its log prints it.
fn verdict_line(u: &mut console::Uart, vm: u64, verified: bool) {
    let _ = if verified {
        writeln!(
            u,
            "[kcore] VERIFY_VM_IMAGE: VM {vm}'s image matches its Ed25519ph signature: VERIFIED"
        )
    } else {
        writeln!(u, "[kcore] VERIFY_VM_IMAGE: VM {vm}'s image does not match its signature: refused, the VM is powered off")
    };
}
