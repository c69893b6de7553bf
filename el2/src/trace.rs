//! The trace of KCore's entries on the console (docs/el2.md, "The trace"): one JSON object
//! per line per entry into kcore, with what the CPU asked for, how it ended, and the
//! untrusted values kcore recorded while handling it (`hw::Untrusted`), so that the run can
//! be replayed through the reference model.
//!
//! Entries (with their untrusted values) and KCore's notes on them are kept in a ring and
//! printed at the next console output, or when the ring fills, so that a measured loop
//! (null hypercalls, host faults, guest traps, VERIFY_VM_IMAGE) pays for a ring slot, not
//! for UART output. Order is kept: anything printed flushes the ring first.

use crate::console;
use crate::hw::lock::TicketLock;
use core::fmt::Write;

pub const RING: usize = 16384;
pub const MAX_REC: usize = 4096;
pub const MAX_CORE: usize = 64;
/// Untrusted values the ring's entries may hold in all.
pub const POOL: usize = 65536;

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

}

/// A buffered line: an entry, or a note KCore makes about one.
#[derive(Clone, Copy, Debug)]
enum Item {
    /// A free slot (the zero value: the ring stays in `.bss`).
    Empty,
    /// An entry and its untrusted values: `nd` data values then `nc` control values from
    /// `at` in the pool.
    Step { seq: u64, step: Step, at: u32, nd: u16, nc: u16, lost: bool },
    /// VERIFY_VM_IMAGE's verdict on a VM.
    Verdict { vm: u64, verified: bool },
}

pub struct Trace {
    seq: u64,
    ring: [Item; RING],
    head: usize,
    len: usize,
    pool: [(u32, u64); POOL],
    used: usize,
    pub recs: Recs,
}

pub static TRACE: TicketLock<Trace> = TicketLock::new(Trace {
    seq: 0,
    ring: [Item::Empty; RING],
    head: 0,
    len: 0,
    pool: [(0, 0); POOL],
    used: 0,
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

fn print(u: &mut console::Uart, seq: u64, s: &Step, data: &[(u32, u64)], core: &[(u32, u64)], lost: bool) {
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
    for (i, (p, v)) in data.iter().enumerate() {
        let _ = write!(u, "{}[{p},{}]", if i > 0 { "," } else { "" }, Hex(*v));
    }
    let _ = write!(u, "],\"core\":[");
    for (i, (p, v)) in core.iter().enumerate() {
        let _ = write!(u, "{}[{p},{}]", if i > 0 { "," } else { "" }, Hex(*v));
    }
    let _ = write!(u, "]");
    if lost {
        let _ = write!(u, ",\"lost\":true");
    }
    let _ = writeln!(u, "}}");
}

impl Trace {
    fn push(&mut self, it: Item) {
        if self.len == RING {
            self.flush();
        }
        let at = (self.head + self.len) % RING;
        self.ring[at] = it;
        self.len += 1;
    }

    /// Records entry `s` with the untrusted values in `self.recs`.
    pub fn emit(&mut self, s: Step) {
        let seq = self.seq;
        self.seq += 1;
        let (nd, nc) = (self.recs.nd, self.recs.nc);
        if self.used + nd + nc > POOL {
            self.flush();
        }
        let at = self.used;
        self.pool[at..at + nd].copy_from_slice(&self.recs.data[..nd]);
        self.pool[at + nd..at + nd + nc].copy_from_slice(&self.recs.core[..nc]);
        self.used += nd + nc;
        let lost = self.recs.lost;
        self.push(Item::Step {
            seq,
            step: s,
            at: at as u32,
            nd: nd as u16,
            nc: nc as u16,
            lost,
        });
    }

    /// KCore's verdict on a VM's image, printed in order with the entries.
    pub fn verdict(&mut self, vm: u64, verified: bool) {
        self.push(Item::Verdict { vm, verified });
    }

    /// Prints every buffered line.
    pub fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        console::with(|u| {
            while self.len > 0 {
                match self.ring[self.head] {
                    Item::Step {
                        seq,
                        step,
                        at,
                        nd,
                        nc,
                        lost,
                    } => {
                        let (a, d, c) = (at as usize, nd as usize, nc as usize);
                        print(u, seq, &step, &self.pool[a..a + d], &self.pool[a + d..a + d + c], lost);
                    }
                    Item::Empty => {}
                    Item::Verdict { vm, verified } => {
                        let _ = if verified {
                            writeln!(u, "[kcore] VERIFY_VM_IMAGE: VM {vm}'s image matches its Ed25519ph signature: VERIFIED")
                        } else {
                            writeln!(u, "[kcore] VERIFY_VM_IMAGE: VM {vm}'s image does not match its signature: refused, the VM is powered off")
                        };
                    }
                }
                self.head = (self.head + 1) % RING;
                self.len -= 1;
            }
        });
        self.used = 0;
    }

    /// Entries so far.
    pub fn entries(&self) -> u64 {
        self.seq
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
