//! The trace of KCore's entries on the console (docs/el2.md, "The trace"): one JSON object
//! per line per entry into kcore, with what the CPU asked for, how it ended, and the
//! untrusted values kcore recorded while handling it (`hw::Untrusted`), so that the run can
//! be replayed through the reference model.
//!
//! Entries that recorded nothing and ended `ok` are kept in a ring and printed at the next
//! other console output (or when the ring fills), so that the measured loops (null
//! hypercalls, host faults, guest traps) pay for a ring slot, not for a line of UART output.
//! Order is kept: anything printed flushes the ring first.

use crate::console;
use crate::hw::lock::TicketLock;
use core::fmt::Write;

pub const RING: usize = 16384;
pub const MAX_REC: usize = 4096;
pub const MAX_CORE: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
pub enum Action {
    /// A host hypercall (also VCPU_RUN); `args[0]` is the call number.
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

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Hvc => "hvc",
            Action::HostLoad => "host_load",
            Action::HostStore => "host_store",
            Action::HostFetch => "host_fetch",
            Action::GuestLoad => "guest_load",
            Action::GuestStore => "guest_store",
            Action::GuestFetch => "guest_fetch",
            Action::GuestShare | Action::GuestUnshare => "guest_hvc",
            Action::GuestPsci => "guest_psci",
            Action::GuestHvcOther => "guest_hvc_other",
            Action::GuestWfx => "guest_wfx",
            Action::GuestSysreg => "guest_sysreg",
            Action::GuestOther => "guest_other",
            Action::Irq => "irq",
        }
    }

    /// Names of `args` as printed (hypercalls are printed differently).
    fn keys(self) -> &'static [&'static str] {
        match self {
            Action::Hvc => &[],
            Action::HostLoad | Action::HostStore | Action::HostFetch => &["addr", "esr"],
            Action::GuestLoad | Action::GuestStore | Action::GuestFetch => &["gpa", "esr"],
            Action::GuestShare | Action::GuestUnshare => &["gpa", "size"],
            Action::GuestPsci => &["x0"],
            Action::GuestHvcOther => &["x0", "x1", "x2", "x3"],
            Action::GuestWfx | Action::GuestSysreg | Action::GuestOther | Action::Irq => &["esr"],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Halt,
    Undefined,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Halt => "halt",
            Outcome::Undefined => "undefined",
        }
    }
}

/// One entry into kcore.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub cpu: u8,
    /// 0 = the host, else the VM whose exit this is.
    pub principal: u8,
    pub vcpu: u8,
    pub entry: Entry,
    pub action: Action,
    pub result: Outcome,
    pub nargs: u8,
    pub args: [u64; 10],
    /// The CPU's x0 after a host hypercall.
    pub x0: Option<u64>,
}

impl Step {
    pub const EMPTY: Step = Step {
        cpu: 0,
        principal: 0,
        vcpu: 0,
        entry: Entry::HostHvc,
        action: Action::Hvc,
        result: Outcome::Ok,
        nargs: 0,
        args: [0; 10],
        x0: None,
    };
}

/// The untrusted values of the entry being handled, in the order kcore took them.
pub struct Recs {
    data: [(u32, u64); MAX_REC],
    nd: usize,
    core: [(u32, u64); MAX_CORE],
    nc: usize,
    /// More values than the buffers hold: the line says so (and the run fails its check).
    pub lost: bool,
}

impl Recs {
    pub fn clear(&mut self) {
        self.nd = 0;
        self.nc = 0;
        self.lost = false;
    }

    pub fn data(&mut self, principal: u32, v: u64) {
        match self.data.get_mut(self.nd) {
            Some(s) => {
                *s = (principal, v);
                self.nd += 1;
            }
            None => self.lost = true,
        }
    }

    pub fn core(&mut self, vmid: u32, v: u64) {
        match self.core.get_mut(self.nc) {
            Some(s) => {
                *s = (vmid, v);
                self.nc += 1;
            }
            None => self.lost = true,
        }
    }

    fn is_empty(&self) -> bool {
        self.nd == 0 && self.nc == 0 && !self.lost
    }

    /// The data-stream values recorded so far.
    pub fn data_values(&self) -> &[(u32, u64)] {
        &self.data[..self.nd]
    }
}

pub struct Trace {
    seq: u64,
    ring: [(u64, Step); RING],
    head: usize,
    len: usize,
    pub recs: Recs,
}

pub static TRACE: TicketLock<Trace> = TicketLock::new(Trace {
    seq: 0,
    ring: [(0, Step::EMPTY); RING],
    head: 0,
    len: 0,
    recs: Recs {
        data: [(0, 0); MAX_REC],
        nd: 0,
        core: [(0, 0); MAX_CORE],
        nc: 0,
        lost: false,
    },
});

struct Hex(u64);

impl core::fmt::Display for Hex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "\"{:#x}\"", self.0)
    }
}

fn print(u: &mut console::Uart, seq: u64, s: &Step, recs: Option<&Recs>) {
    let _ = write!(u, "{{\"seq\":{seq},\"cpu\":{},\"principal\":", s.cpu);
    if s.principal == 0 {
        let _ = write!(u, "\"host\"");
    } else {
        let _ = write!(u, "\"vm {}\"", s.principal);
    }
    let _ = write!(
        u,
        ",\"entry\":[\"{}\"],\"action\":\"{}\",\"arguments\":{{",
        s.entry.name(),
        s.action.name()
    );
    let args = &s.args[..s.nargs as usize];
    if s.action == Action::Hvc {
        let (name, _) = el2_abi::hvc::describe(args[0]);
        let _ = write!(u, "\"call\":\"{name}\",\"number\":{},\"args\":[", args[0]);
        for (i, a) in args[1..].iter().enumerate() {
            let _ = write!(u, "{}{}", if i > 0 { "," } else { "" }, Hex(*a));
        }
        let _ = write!(u, "]");
    } else {
        if s.principal != 0 {
            let _ = write!(u, "\"vcpu\":{},", s.vcpu);
        }
        match s.action {
            Action::GuestShare => {
                let _ = write!(u, "\"op\":\"grant\",");
            }
            Action::GuestUnshare => {
                let _ = write!(u, "\"op\":\"revoke\",");
            }
            _ => {}
        }
        for (i, (k, a)) in s.action.keys().iter().zip(args).enumerate() {
            let _ = write!(u, "{}\"{k}\":{}", if i > 0 { "," } else { "" }, Hex(*a));
        }
    }
    let _ = write!(u, "}},\"result\":\"{}\",\"x0\":", s.result.name());
    match s.x0 {
        Some(v) => {
            let _ = write!(u, "{}", Hex(v));
        }
        None => {
            let _ = write!(u, "null");
        }
    }
    let _ = write!(u, ",\"rec\":[");
    if let Some(r) = recs {
        for (i, (p, v)) in r.data[..r.nd].iter().enumerate() {
            let _ = write!(u, "{}[{p},{}]", if i > 0 { "," } else { "" }, Hex(*v));
        }
    }
    let _ = write!(u, "],\"core\":[");
    if let Some(r) = recs {
        for (i, (p, v)) in r.core[..r.nc].iter().enumerate() {
            let _ = write!(u, "{}[{p},{}]", if i > 0 { "," } else { "" }, Hex(*v));
        }
    }
    let _ = write!(u, "]");
    if recs.is_some_and(|r| r.lost) {
        let _ = write!(u, ",\"lost\":true");
    }
    let _ = writeln!(u, "}}");
}

impl Trace {
    /// Records entry `s` with the untrusted values in `self.recs`.
    pub fn emit(&mut self, s: Step) {
        let seq = self.seq;
        self.seq += 1;
        if self.recs.is_empty() && s.result == Outcome::Ok {
            if self.len == RING {
                self.flush();
            }
            let at = (self.head + self.len) % RING;
            self.ring[at] = (seq, s);
            self.len += 1;
            return;
        }
        self.flush();
        let recs = &self.recs;
        console::with(|u| print(u, seq, &s, Some(recs)));
    }

    /// Prints every buffered entry.
    pub fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        console::with(|u| {
            while self.len > 0 {
                let (seq, s) = self.ring[self.head];
                print(u, seq, &s, None);
                self.head = (self.head + 1) % RING;
                self.len -= 1;
            }
        });
    }

    /// Entries so far.
    pub fn entries(&self) -> u64 {
        self.seq
    }

    /// A `[kcore]` line, after the buffered entries (for callers that hold the trace).
    pub fn log(&mut self, args: core::fmt::Arguments<'_>) {
        self.flush();
        console::with(|u| {
            let _ = write!(u, "[kcore] ");
            let _ = u.write_fmt(args);
            let _ = writeln!(u);
        });
    }
}

/// Prints the buffered entries (before other console output).
pub fn flush() {
    TRACE.lock().flush();
}

/// For panic paths: prints the buffered entries if the trace can be had.
pub fn flush_panicking() {
    for _ in 0..1_000_000 {
        if let Some(mut t) = TRACE.try_lock() {
            t.flush();
            return;
        }
        core::hint::spin_loop();
    }
}

/// The first line: what machine the trace comes from.
pub fn header(cpus: usize, ram_base: u64, ram_end: u64, kcore_base: u64) {
    console::with(|u| {
        let _ = writeln!(
            u,
            "{{\"trace\":\"corevisor\",\"engine\":\"el2\",\"profile\":\"arm\",\"machine\":{{\"cpus\":{cpus},\"ram_base\":{ram_base},\"ram_mib\":{},\"kcore_mib\":{},\"smmus\":0}}}}",
            (ram_end - ram_base) >> 20,
            (ram_end - kcore_base) >> 20
        );
    });
}

/// The last line: how the run ended.
pub fn final_line(halted: bool, why: &str) {
    let entries = match TRACE.try_lock() {
        Some(mut t) => {
            t.flush();
            t.entries()
        }
        None => 0,
    };
    console::with_panicking(|u| {
        let _ = writeln!(
            u,
            "{{\"final\":{{\"halted\":{halted},\"entries\":{entries},\"end\":\"{why}\"}}}}"
        );
    });
}
