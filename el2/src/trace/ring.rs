//! The recorder (the `trace` feature): one JSON object per line per entry into kcore, with
//! what the CPU asked for, how it ended, and the untrusted values kcore recorded while
//! handling it (`hw::Untrusted`), so that the run can be replayed through the reference model.
//!
//! Entries (with their values) and KCore's notes on them are kept in a ring of small records
//! plus a pool of values, and printed at the next console output, or when either fills, so
//! that a measured loop (null hypercalls, host faults, guest traps, VERIFY_VM_IMAGE) pays for
//! a few stores, not for UART output. Order is kept: anything printed flushes the ring first.
//!
//! The register words are named by kcore's `ctxt_words` and the last line gives kcore's
//! `StateDigest`: the trace's vocabulary, the only kcore items it names (the glue, above it,
//! keeps the trace under its lock and hands it what kcore did).

use super::{Action, Entry, Outcome, Step};
use crate::console;
use core::fmt::Write;
use corevisor_kcore::digest::StateDigest;

/// Records the ring holds.
pub const RING: usize = 16384;
/// Values (arguments and untrusted values) the pool holds.
pub const POOL: usize = 131072;
/// Most untrusted values of one entry (a 2 MiB block moved into a VM records 512).
pub const MAX_REC: usize = 4096;
pub const MAX_CORE: usize = 64;
/// Most pages whose metadata one entry writes (a 2 MiB block moved or reclaimed: 512).
pub const MAX_PAGES: usize = 2048;
/// Most stage-2 leaves one entry gives: two per page (the host's, the owner's) and one more.
pub const MAX_S2: usize = 2 * MAX_PAGES + 1;
/// Words of a register file as the trace gives it (kcore's `ctxt_words::CTXT_WORDS`).
pub const CTX_WORDS: usize = 143;
/// Register contexts (kcore's `state::CTXTS`): each one's file as the trace last gave it.
pub const CTXS: usize = 136;
/// Most runs of TLB invalidations one entry gives.
pub const MAX_TLBI: usize = 64;

/// A run of stage-2 TLB invalidations: `count` pages of `vmid` from `ipa` (`count` 0: all
/// of the VMID's entries).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlbiRun {
    pub vmid: u32,
    pub ipa: u64,
    pub count: u32,
}

/// One page's metadata after an entry wrote it: `(pfn, owner, count, gfn)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub pfn: u64,
    pub owner: u32,
    pub count: u32,
    pub gfn: u64,
}

/// A VM's record after an entry that concerns it: its state and its vCPUs' states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vm {
    pub vmid: u32,
    pub state: u32,
    pub vcpus: [u32; 8],
}

/// kcore's VM and vCPU states (spec-digest §2.4), as the trace names them.
fn state_name(s: u64) -> &'static str {
    match s {
        0 => "UNUSED",
        1 => "MAPPED",
        2 => "READY",
        3 => "VERIFIED",
        4 => "POWEROFF",
        5 => "ACTIVE",
        _ => "?",
    }
}

impl Entry {
    fn from_u8(b: u8) -> Entry {
        [
            Entry::HostHvc,
            Entry::HostNpt,
            Entry::VcpuRun,
            Entry::VmExit,
        ][b as usize & 3]
    }
}

impl Action {
    fn from_u8(b: u8) -> Action {
        const ALL: [Action; 15] = [
            Action::Hvc,
            Action::HostLoad,
            Action::HostStore,
            Action::HostFetch,
            Action::GuestLoad,
            Action::GuestStore,
            Action::GuestFetch,
            Action::GuestShare,
            Action::GuestUnshare,
            Action::GuestPsci,
            Action::GuestHvcOther,
            Action::GuestWfx,
            Action::GuestSysreg,
            Action::GuestOther,
            Action::Irq,
        ];
        ALL[(b as usize).min(ALL.len() - 1)]
    }

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

    /// Names of the arguments as printed (hypercalls are printed differently).
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

impl Outcome {
    fn from_u8(b: u8) -> Outcome {
        [Outcome::Ok, Outcome::Halt, Outcome::Undefined][(b as usize).min(2)]
    }

    fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Halt => "halt",
            Outcome::Undefined => "undefined",
        }
    }
}

const F_X0: u8 = 1;
const F_LOST: u8 = 2;
const F_VERDICT: u8 = 4;
const F_VERIFIED: u8 = 8;
const F_VM: u8 = 16;
/// The glue saved the vCPU's resume point into its context before kcore ran.
const F_RESUME: u8 = 32;
/// A note: the glue's own write to a CPU's register file at bring-up (`cpu_init`).
const F_CPU_INIT: u8 = 64;
/// Notes, not entries.
const F_NOTE: u8 = F_VERDICT | F_CPU_INIT;

/// A buffered line, unpacked for printing: an entry (its values in the pool from `at`: `nd`
/// data values, `np` pages as two values each, `nm` stage-2 leaves as two values each, with
/// `F_VM` the VM record as two values, `nc` control values, `nargs` arguments), or a note
/// (`F_VERDICT`, the VM in `step.x0`).
#[derive(Clone, Copy, Debug)]
struct Line {
    step: Step,
    flags: u8,
    nargs: u8,
    nd: u16,
    nc: u16,
    np: u16,
    nm: u16,
    /// Register words (`found` and `left`, after a header value) and TLBI runs (two values
    /// each), after the VM record.
    nr: u16,
    nt: u16,
    at: u32,
}

/// A buffered line as the ring keeps it: five words an entry writes with a few stores.
/// `w0`: cpu, principal, vcpu, entry, action, result, flags, nargs (a byte each, from the
/// low end); `w1`: nd, nc, np, nm (16 bits each); `at`; `x0` (meaningful with `F_X0`, or
/// the VM of a verdict); `w2`: nr, nt.
#[derive(Clone, Copy, Debug)]
struct Rec {
    w0: u64,
    w1: u64,
    at: u64,
    x0: u64,
    w2: u64,
}

const EMPTY: Rec = Rec {
    w0: 0,
    w1: 0,
    at: 0,
    x0: 0,
    w2: 0,
};

impl Rec {
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn pack(
        s: &Step,
        flags: u8,
        nargs: usize,
        nd: usize,
        nc: usize,
        np: usize,
        nm: usize,
        nr: usize,
        nt: usize,
        at: usize,
    ) -> Rec {
        Rec {
            w0: s.cpu as u64
                | (s.principal as u64) << 8
                | (s.vcpu as u64) << 16
                | (s.entry as u64) << 24
                | (s.action as u64) << 32
                | (s.result as u64) << 40
                | (flags as u64) << 48
                | (nargs as u64) << 56,
            w1: nd as u64 | (nc as u64) << 16 | (np as u64) << 32 | (nm as u64) << 48,
            at: at as u64,
            x0: s.x0.unwrap_or(0),
            w2: nr as u64 | (nt as u64) << 16,
        }
    }

    fn flags(&self) -> u8 {
        (self.w0 >> 48) as u8
    }

    fn unpack(&self) -> Line {
        let b = |i: u32| (self.w0 >> (8 * i)) as u8;
        let h = |i: u32| (self.w1 >> (16 * i)) as u16;
        let flags = b(6);
        Line {
            step: Step {
                cpu: b(0),
                principal: b(1),
                vcpu: b(2),
                entry: Entry::from_u8(b(3)),
                action: Action::from_u8(b(4)),
                result: Outcome::from_u8(b(5)),
                x0: (flags & F_X0 != 0).then_some(self.x0),
            },
            flags,
            nargs: b(7),
            nd: h(0),
            nc: h(1),
            np: h(2),
            nm: h(3),
            nr: self.w2 as u16,
            nt: (self.w2 >> 16) as u16,
            at: self.at as u32,
        }
    }
}

/// `repr(C)` with the counters first: every entry touches them, and small offsets from the
/// static's address keep each access one instruction (the ring and pool are megabytes).
#[repr(C)]
pub struct Trace {
    /// Sequence number of the record at `head`.
    seq: u64,
    head: usize,
    len: usize,
    used: usize,
    /// The entry being handled: its data values are written at `pool[used..]` as kcore
    /// records them; its control values wait in `core`.
    nd: usize,
    nc: usize,
    /// The entry's pages (metadata written), stage-2 leaves and VM record, given by the glue
    /// after kcore returned: in the pool after its data values, `ns` values in all (0 on
    /// the measured paths but host faults: `emit` tests only that).
    ns: usize,
    np: usize,
    nm: usize,
    has_vm: bool,
    /// The entry's register words and TLBI runs (values in the pool after the VM record).
    nr: usize,
    nt: usize,
    lost: bool,
    resume: bool,
    /// Entries emitted so far, and the one whose record is left out (`u64::MAX`: none; the
    /// planted fault `trace_drops_entry`).
    emitted: u64,
    drop_at: u64,
    core: [(u32, u64); MAX_CORE],
    /// Each register context's file as the trace last gave it: the base the next record of
    /// it gives only the changed words against (the checker keeps the same).
    ctx_last: [[u64; CTX_WORDS]; CTXS],
    ring: [Rec; RING],
    /// (principal, value); arguments as (0, value).
    pool: [(u32, u64); POOL],
}

impl Trace {
    /// An empty trace (the glue keeps it under its lock: `kcore_glue::STATE`).
    pub const EMPTY: Trace = Trace {
        seq: 0,
        ring: [EMPTY; RING],
        head: 0,
        len: 0,
        pool: [(0, 0); POOL],
        used: 0,
        nd: 0,
        core: [(0, 0); MAX_CORE],
        nc: 0,
        ns: 0,
        np: 0,
        nm: 0,
        has_vm: false,
        nr: 0,
        nt: 0,
        lost: false,
        resume: false,
        emitted: 0,
        drop_at: u64::MAX,
        ctx_last: [[0; CTX_WORDS]; CTXS],
    };
}

struct Hex(u64);

impl core::fmt::Display for Hex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "\"{:#x}\"", self.0)
    }
}

fn values(u: &mut console::Uart, v: &[(u32, u64)]) {
    for (i, (p, x)) in v.iter().enumerate() {
        let _ = write!(u, "{}[{p},{}]", if i > 0 { "," } else { "" }, Hex(*x));
    }
}

fn print(u: &mut console::Uart, seq: u64, r: &Line, pool: &[(u32, u64)]) {
    let s = &r.step;
    let (nd, nc, na, np, nm) = (
        r.nd as usize,
        r.nc as usize,
        r.nargs as usize,
        r.np as usize,
        r.nm as usize,
    );
    let at = r.at as usize;
    let nv = if r.flags & F_VM != 0 { 2 } else { 0 };
    let data = &pool[at..at + nd];
    let pages = &pool[at + nd..at + nd + 2 * np];
    let at = at + nd + 2 * np;
    let s2 = &pool[at..at + 2 * nm];
    let vm = &pool[at + 2 * nm..at + 2 * nm + nv];
    let at = at + 2 * nm + nv;
    let (nr, nt) = (r.nr as usize, r.nt as usize);
    let files = &pool[at..at + nr];
    let tlbis = &pool[at + nr..at + nr + 2 * nt];
    let at = at + nr + 2 * nt;
    let core = &pool[at..at + nc];
    let args = &pool[at + nc..at + nc + na];
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
    if s.action == Action::Hvc {
        let call = args.first().map_or(0, |a| a.1);
        let (name, _) = el2_abi::hvc::describe(call);
        let _ = write!(u, "\"call\":\"{name}\",\"number\":{call},\"args\":[");
        for (i, a) in args.iter().skip(1).enumerate() {
            let _ = write!(u, "{}{}", if i > 0 { "," } else { "" }, Hex(a.1));
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
            let _ = write!(u, "{}\"{k}\":{}", if i > 0 { "," } else { "" }, Hex(a.1));
        }
    }
    let _ = write!(u, "}}");
    // A host fault's entry tickets (kcore_glue::WINDOW): the window it ran in.
    if s.entry == Entry::HostNpt && args.len() == 4 {
        let _ = write!(u, ",\"window\":[{},{}]", args[2].1, args[3].1);
    }
    let _ = write!(u, ",\"result\":\"{}\",\"x0\":", s.result.name());
    match s.x0 {
        Some(v) if r.flags & F_X0 != 0 => {
            let _ = write!(u, "{}", Hex(v));
        }
        _ => {
            let _ = write!(u, "null");
        }
    }
    let _ = write!(u, ",\"rec\":[");
    values(u, data);
    let _ = write!(u, "],\"core\":[");
    values(u, core);
    let _ = write!(u, "],\"pages\":[");
    for (i, p) in pages.chunks_exact(2).enumerate() {
        // In the pool: (pfn, gfn), (owner, count). Printed: [pfn, owner, count, gfn].
        let _ = write!(
            u,
            "{}[{},{},{},{}]",
            if i > 0 { "," } else { "" },
            p[0].0,
            p[1].0,
            p[1].1,
            Hex(p[0].1)
        );
    }
    let _ = write!(u, "],\"s2\":[");
    for (i, m) in s2.chunks_exact(2).enumerate() {
        // In the pool: (vmid, gfn), (level, descriptor). Printed: [vmid, gfn, level, desc].
        let _ = write!(
            u,
            "{}[{},{},{},{}]",
            if i > 0 { "," } else { "" },
            m[0].0,
            m[0].1,
            m[1].0,
            Hex(m[1].1)
        );
    }
    let _ = write!(u, "]");
    if r.flags & F_VM != 0 {
        let (vmid, state, vcpus) = (vm[0].0, vm[0].1, vm[1].1);
        let _ = write!(
            u,
            ",\"vm\":{{\"vmid\":{vmid},\"state\":\"{}\",\"vcpus\":[",
            state_name(state)
        );
        let last = (0..8).rev().find(|k| (vcpus >> (4 * k)) & 0xF != 0);
        if let Some(l) = last {
            for k in 0..=l {
                let _ = write!(
                    u,
                    "{}\"{}\"",
                    if k > 0 { "," } else { "" },
                    state_name((vcpus >> (4 * k)) & 0xF)
                );
            }
        }
        let _ = write!(u, "]}}");
    }
    if let Some((&(found_ctx, h), words)) = files.split_first() {
        // In the pool: (found context, left context | found words << 16), then (word, value).
        let (left_ctx, nfound) = (h & 0xFFFF, (h >> 16) as usize);
        let (found, left) = words.split_at(nfound.min(words.len()));
        let _ = write!(u, ",\"regs\":{{\"found\":{{\"ctx\":{found_ctx}");
        file(u, found);
        let _ = write!(u, "}},\"left\":{{\"ctx\":{left_ctx}");
        file(u, left);
        let _ = write!(u, "}}}}");
    }
    if r.nt != 0 {
        let _ = write!(u, ",\"tlbi\":[");
        for (i, t) in tlbis.chunks_exact(2).enumerate() {
            // In the pool: (vmid, ipa), (count, 0). Printed: [vmid, ipa, count].
            let _ = write!(
                u,
                "{}[{},{},{}]",
                if i > 0 { "," } else { "" },
                t[0].0,
                Hex(t[0].1),
                t[1].0
            );
        }
        let _ = write!(u, "]");
    }
    if r.flags & F_RESUME != 0 {
        let _ = write!(u, ",\"glue\":[\"save_resume_point\"]");
    }
    if r.flags & F_LOST != 0 {
        let _ = write!(u, ",\"lost\":true");
    }
    let _ = writeln!(u, "}}");
}

/// A register file's changed words, by name.
fn file(u: &mut console::Uart, words: &[(u32, u64)]) {
    for &(i, v) in words {
        let _ = write!(
            u,
            ",\"{}\":{}",
            corevisor_kcore::ctxt_words::name(i as usize),
            Hex(v)
        );
    }
}

impl Trace {
    /// Starts an entry: room for everything it may record.
    #[inline]
    pub fn begin(&mut self) {
        if self.used
            + MAX_REC
            + MAX_CORE
            + 16
            + 2 * MAX_PAGES
            + 2 * MAX_S2
            + 2
            + 1
            + 2 * CTX_WORDS
            + 2 * MAX_TLBI
            > POOL
            || self.len == RING
        {
            self.flush();
        }
        // `nd`, `nc`, `lost`, `ns`, `np`, `nm` and `has_vm` are left cleared by the last
        // `emit` (and are clear at boot).
    }

    /// A page whose metadata the entry wrote, as it is after the entry (after kcore
    /// returned: after the entry's data values, before its VM record).
    pub fn page(&mut self, p: Page) {
        if self.np < MAX_PAGES && self.nm == 0 && !self.has_vm && self.nr + self.nt == 0 {
            let k = self.used + self.nd + self.ns;
            self.pool[k] = (p.pfn as u32, p.gfn);
            self.pool[k + 1] = (p.owner, p.count as u64);
            self.np += 1;
            self.ns += 2;
        } else {
            self.lost = true;
        }
    }

    /// The stage-2 leaf of principal `vmid` at `gfn` after the entry (`desc` 0: unmapped),
    /// after the entry's pages.
    #[inline]
    pub fn s2(&mut self, vmid: u32, gfn: u64, level: u32, desc: u64) {
        if self.nm < MAX_S2 && !self.has_vm && self.nr + self.nt == 0 {
            let k = self.used + self.nd + self.ns;
            self.pool[k] = (vmid, gfn);
            self.pool[k + 1] = (level, desc);
            self.nm += 1;
            self.ns += 2;
        } else {
            self.lost = true;
        }
    }

    /// The record of the VM the entry concerns, as it is after the entry (after its pages
    /// and stage-2 leaves).
    pub fn vm(&mut self, v: Vm) {
        if self.has_vm || self.nr + self.nt != 0 {
            self.lost = true;
            return;
        }
        let packed = v
            .vcpus
            .iter()
            .enumerate()
            .fold(0u64, |a, (i, &st)| a | ((st as u64 & 0xF) << (4 * i)));
        let k = self.used + self.nd + self.ns;
        self.pool[k] = (v.vmid, v.state as u64);
        self.pool[k + 1] = (0, packed);
        self.has_vm = true;
        self.ns += 2;
    }

    /// The register file the CPU brought into the entry (context `found_ctx`) and the one
    /// the entry left on it (context `left_ctx`), after the VM record: each as the words that
    /// differ from the file the trace last gave for that context (all zero at first), so
    /// that a reader keeping the same bases has both files whole.
    pub fn regs(
        &mut self,
        found_ctx: usize,
        found: &[u64; CTX_WORDS],
        left_ctx: usize,
        left: &[u64; CTX_WORDS],
    ) {
        if self.nr != 0 || self.nt != 0 || found_ctx >= CTXS || left_ctx >= CTXS {
            self.lost = true;
            return;
        }
        let head = self.used + self.nd + self.ns;
        let mut k = head + 1;
        let mut delta = |ctx: usize, file: &[u64; CTX_WORDS], k: &mut usize| {
            let base = &mut self.ctx_last[ctx];
            let mut n = 0;
            for (i, (b, &v)) in base.iter_mut().zip(file).enumerate() {
                if *b != v {
                    self.pool[*k] = (i as u32, v);
                    *b = v;
                    *k += 1;
                    n += 1;
                }
            }
            n
        };
        let nfound = delta(found_ctx, found, &mut k);
        delta(left_ctx, left, &mut k);
        self.pool[head] = (found_ctx as u32, left_ctx as u64 | (nfound as u64) << 16);
        self.nr = k - head;
        self.ns += self.nr;
    }

    /// The stage-2 TLB invalidations the entry made, after its register files.
    pub fn tlbi(&mut self, runs: &[TlbiRun]) {
        if self.nt != 0 || runs.len() > MAX_TLBI {
            self.lost = true;
            return;
        }
        let mut k = self.used + self.nd + self.ns;
        for r in runs {
            self.pool[k] = (r.vmid, r.ipa);
            self.pool[k + 1] = (r.count, 0);
            k += 2;
        }
        self.nt = runs.len();
        self.ns += 2 * runs.len();
    }

    /// The glue wrote the exiting vCPU's resume point (ELR_EL2, SPSR_EL2 as it found them)
    /// into its context before kcore ran: the record says so.
    pub fn resume_point(&mut self) {
        self.resume = true;
    }

    /// Leaves out the record of entry `seq` (the planted fault `trace_drops_entry`): the
    /// entries after it are numbered as if it had never been.
    pub fn drop_entry(&mut self, seq: u64) {
        self.drop_at = seq;
    }

    /// The entry lost values it could not hold (its record says so).
    pub fn mark_lost(&mut self) {
        self.lost = true;
    }

    /// A value of `principal`'s data stream (`hw::Untrusted::record`).
    #[inline]
    pub fn data(&mut self, principal: u32, v: u64) {
        if self.nd < MAX_REC {
            self.pool[self.used + self.nd] = (principal, v);
            self.nd += 1;
        } else {
            self.lost = true;
        }
    }

    /// A value of VM `vmid`'s control stream (`hw::Untrusted::record_core`).
    #[inline]
    pub fn core(&mut self, vmid: u32, v: u64) {
        if self.nc < MAX_CORE {
            self.core[self.nc] = (vmid, v);
            self.nc += 1;
        } else {
            self.lost = true;
        }
    }

    /// Ends the entry begun last: `s` with the arguments `first` and `rest` (at most 15).
    /// Inlined into each entry of the glue: it is on every measured path.
    #[inline(always)]
    pub fn emit(&mut self, s: Step, first: u64, rest: &[u64]) {
        let at = self.used;
        let (nd, nc) = (self.nd, self.nc);
        let mut flags = if s.x0.is_some() { F_X0 } else { 0 };
        let mut k = at + nd;
        let (mut np, mut nm, mut nr, mut nt) = (0, 0, 0, 0);
        if self.ns != 0 {
            k += self.ns;
            (np, nm, nr, nt) = (self.np, self.nm, self.nr, self.nt);
            if self.has_vm {
                flags |= F_VM;
            }
            self.ns = 0;
            self.np = 0;
            self.nm = 0;
            self.nr = 0;
            self.nt = 0;
            self.has_vm = false;
        }
        if nc != 0 {
            self.pool[k..k + nc].copy_from_slice(&self.core[..nc]);
            k += nc;
        }
        self.pool[k] = (0, first);
        k += 1;
        let rest = &rest[..rest.len().min(15)];
        if !rest.is_empty() {
            for (d, &a) in self.pool[k..k + rest.len()].iter_mut().zip(rest) {
                *d = (0, a);
            }
        }
        self.used = k + rest.len();
        if self.lost {
            flags |= F_LOST;
            self.lost = false;
        }
        if self.resume {
            flags |= F_RESUME;
            self.resume = false;
        }
        self.nd = 0;
        self.nc = 0;
        self.emitted += 1;
        if self.emitted - 1 == self.drop_at {
            // The planted fault: this entry's record is never written (its register bases
            // were moved on all the same, as a lost record would leave them).
            self.used = at;
            return;
        }
        let slot = (self.head + self.len) % RING;
        self.ring[slot] = Rec::pack(&s, flags, 1 + rest.len(), nd, nc, np, nm, nr, nt, at);
        self.len += 1;
    }

    /// KCore's verdict on a VM's image, printed in order with the entries.
    pub fn verdict(&mut self, vm: u64, verified: bool) {
        if self.len == RING {
            self.flush();
        }
        let slot = (self.head + self.len) % RING;
        let flags = F_VERDICT | if verified { F_VERIFIED } else { 0 };
        self.ring[slot] = Rec {
            w0: (flags as u64) << 48,
            x0: vm,
            ..EMPTY
        };
        self.len += 1;
    }

    /// The glue's write of KCore's words of CPU `cpu`'s register file at its bring-up (boot,
    /// PSCI CPU_ON), printed in order with the entries: `(word, value)`.
    pub fn cpu_init(&mut self, cpu: u8, words: &[(u32, u64)]) {
        if self.len == RING || self.used + words.len() > POOL {
            self.flush();
        }
        let at = self.used;
        self.pool[at..at + words.len()].copy_from_slice(words);
        self.used += words.len();
        let slot = (self.head + self.len) % RING;
        self.ring[slot] = Rec {
            w0: cpu as u64 | (F_CPU_INIT as u64) << 48,
            w1: words.len() as u64,
            at: at as u64,
            ..EMPTY
        };
        self.len += 1;
    }

    /// Prints every buffered line.
    pub fn flush(&mut self) {
        if self.len == 0 {
            self.used = 0;
            return;
        }
        console::with(|u| {
            while self.len > 0 {
                let r = self.ring[self.head];
                if r.flags() & F_VERDICT != 0 {
                    super::verdict_line(u, r.x0, r.flags() & F_VERIFIED != 0);
                } else if r.flags() & F_CPU_INIT != 0 {
                    let (at, n, cpu) = (r.at as usize, r.w1 as usize, r.w0 & 0xFF);
                    let _ = write!(
                        u,
                        "{{\"glue\":\"cpu_init\",\"cpu\":{cpu},\"regs\":{{\"ctx\":{cpu}"
                    );
                    file(u, &self.pool[at..at + n]);
                    let _ = writeln!(u, "}}}}");
                } else {
                    print(u, self.seq, &r.unpack(), &self.pool);
                    self.seq += 1;
                }
                self.head = (self.head + 1) % RING;
                self.len -= 1;
            }
        });
        self.used = 0;
    }

    /// Entries so far (printed or not).
    pub fn entries(&self) -> u64 {
        let pending = (0..self.len)
            .filter(|i| self.ring[(self.head + i) % RING].flags() & F_NOTE == 0)
            .count();
        self.seq + pending as u64
    }
}

/// The first line: what machine the trace comes from.
pub fn header(cpus: usize, ram_base: u64, ram_end: u64, kcore_base: u64, mmio: &[(u64, u64)]) {
    console::with(|u| {
        let _ = write!(
            u,
            "{{\"trace\":\"corevisor\",\"engine\":\"el2\",\"profile\":\"arm\",\"machine\":{{\"cpus\":{cpus},\"ram_base\":{ram_base},\"ram_mib\":{},\"kcore_mib\":{},\"smmus\":0,\"mmio\":[",
            (ram_end - ram_base) >> 20,
            (ram_end - kcore_base) >> 20
        );
        for (i, (b, n)) in mmio.iter().enumerate() {
            let _ = write!(u, "{}[{b},{n}]", if i > 0 { "," } else { "" });
        }
        let _ = writeln!(u, "]}}}}");
    });
}

/// The last line: how the run ended, after `entries` entries, with the digest of kcore's
/// whole state (`None`: not booted, or not to be had), both taken by `output::final_line`.
pub fn final_line(halted: bool, why: &str, entries: u64, digest: Option<StateDigest>) {
    console::with_panicking(|u| {
        let _ = write!(
            u,
            "{{\"final\":{{\"halted\":{halted},\"entries\":{entries},\"end\":\"{why}\""
        );
        if let Some(d) = digest {
            let _ = write!(
                u,
                ",\"digest\":{{\"pages\":\"{:#x}\",\"leaves\":\"{:#x}\",\"leaf_count\":{},\"vms\":\"{:#x}\"}}",
                d.pages, d.leaves, d.leaf_count, d.vms
            );
        }
        let _ = writeln!(u, "}}}}");
    });
}
