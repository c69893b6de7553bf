//! `corevisor check-trace`: replays a trace of KCore's entries on EL2 hardware (the QEMU run,
//! docs/el2.md "The trace") through the reference model, and compares after every entry
//! what the trace says KCore did with what the model does.
//!
//! The model is the machine the trace's header describes (profile `arm`, its RAM, KCore's
//! region, its declared device ranges, no SMMU). Entries are replayed in the order they
//! took the core's lock (the trace's order), each on the CPU that took it, with the inputs
//! the trace records: the registers the trap found (the hypercall's x0..xn, the fault's
//! address and syndrome, the exit's syndrome and argument registers) and the untrusted
//! values KCore read (`rec`: the data-oracle streams, `core`: the control streams). Other
//! registers keep the values the model gave them, which no compared result depends on.
//!
//! After each entry: the entry's result (`ok`/`halt`/`undefined`); the CPU's world before
//! it (`principal`, vCPU) and after it (a VM exit returns to the host exactly when the trace
//! gives the host's x0); x0 as the host gets it back; how many untrusted values of each
//! stream the model consumed against how many KCore recorded; every page whose metadata
//! KCore wrote (owner, count, gfn), and every page whose metadata the model changed must be
//! among them; the VM record the trace gives (state and vCPU states), and every VM whose
//! states the model changed must be that one; the sequence numbers; and at the end the
//! final line (entries, halted).

use crate::engine::{ModelMachine, Outcome};
use crate::trace_regs::{Files, TlbiRun};
use corevisor_kcore::ctxt_words as words;
use corevisor_kcore::digest::{Digester, StateDigest};
use corevisor_spec::consts::*;
use corevisor_spec::profile::{Profile, ProfileKind};
use corevisor_spec::state::RData;
use corevisor_spec::trap_handler::{
    host_hvc_handler_spec, host_npt_handler_spec, host_vcpu_run_handler_spec, vm_exit_handler_spec,
};
use corevisor_spec::{Machine, Z};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A trace that cannot be replayed: the line (1-based) and the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed {
    pub line: usize,
    pub field: String,
    pub msg: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: field \"{}\": {}",
            self.line, self.field, self.msg
        )
    }
}

/// The first entry at which the trace and the model disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The entry's index in the trace (0-based, in lock order); for the final line, the
    /// number of entries.
    pub index: usize,
    pub line: usize,
    pub cpu: Option<usize>,
    /// The entry point (`final` for the final line).
    pub entry: String,
    pub field: String,
    pub trace: String,
    pub model: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cpu = self.cpu.map(|c| format!(", cpu {c}")).unwrap_or_default();
        write!(
            f,
            "entry {} (line {}{cpu}, {}): {}: trace {}, model {}",
            self.index, self.line, self.entry, self.field, self.trace, self.model
        )
    }
}

/// Why a check failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Malformed(Malformed),
    Mismatch(Box<Mismatch>),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Malformed(m) => write!(f, "check-trace: malformed trace: {m}"),
            Failure::Mismatch(m) => write!(f, "check-trace: mismatch at {m}"),
        }
    }
}

/// A trace that agrees with the model at every entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub entries: usize,
    /// Entries that differ in more than their sequence number and CPU.
    pub distinct: usize,
    /// Entries per entry point, in a fixed order.
    pub by_entry: Vec<(&'static str, usize)>,
    /// Pages whose metadata the trace shows written, checked against the model.
    pub pages: usize,
    /// Stage-2 leaves checked.
    pub leaves: usize,
    /// VM records checked.
    pub vms: usize,
    /// Untrusted values fed to the model.
    pub values: usize,
    /// Register files compared whole with the model's (two per host hypercall, VCPU_RUN and VM exit).
    pub files: usize,
    /// Stage-2 leaves the model changed from valid, each found invalidated.
    pub invalidated: usize,
    pub halted: bool,
    /// The final state digest agreed with the model's, over this many stage-2 leaves;
    /// `None`: the trace gave none.
    pub digest: Option<u64>,
    /// Host faults that began while another CPU was inside kcore, by their entry tickets
    /// (`None`: the trace has no tickets).
    pub concurrent: Option<usize>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by: Vec<String> = self
            .by_entry
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect();
        write!(
            f,
            "check-trace: {} steps, 0 mismatches ({} distinct; {}; {} page records, {} stage-2 leaves, {} VM records, {} untrusted values, {} register files, {} invalidated leaves; {}; {})",
            self.entries,
            self.distinct,
            by.join(", "),
            self.pages,
            self.leaves,
            self.vms,
            self.values,
            self.files,
            self.invalidated,
            if self.halted {
                "KCore halted at the end, as the model did"
            } else {
                "KCore did not halt"
            },
            match self.digest {
                Some(n) => format!(
                    "final state digest agrees with the model's (every page's metadata, {n} stage-2 leaves, every VM)"
                ),
                None => "no final state digest".into(),
            }
        )?;
        if let Some(n) = self.concurrent {
            write!(
                f,
                "; {n} host faults entered kcore while another CPU was inside it (entry tickets)"
            )?;
        }
        Ok(())
    }
}

/// KCore's entry points, as the trace names them.
pub const ENTRY_POINTS: [&str; 4] = [
    "host_hvc_handler",
    "host_vcpu_run_handler",
    "host_npt_handler",
    "vm_exit_handler",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EntryPoint {
    HostHvc,
    VcpuRun,
    HostNpt,
    VmExit,
}

impl EntryPoint {
    fn name(self) -> &'static str {
        ENTRY_POINTS[self as usize]
    }
}

/// What the trap found, in the registers the model reads.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Input {
    /// x0 = number, x1.. = args.
    Hvc { number: u64, args: Vec<u64> },
    /// A host stage-2 fault.
    HostFault { addr: u64, esr: u64 },
    /// A VM exit: `ec` (trap or interrupt), ESR, abort address, argument registers.
    Exit {
        irq: bool,
        esr: u64,
        ipa: Option<u64>,
        x: Vec<(usize, u64)>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PageRec {
    pfn: u64,
    owner: u64,
    count: u64,
    gfn: u64,
}

/// A stage-2 leaf after the entry: principal, gfn, level, descriptor (0: unmapped).
#[derive(Clone, Debug, PartialEq, Eq)]
struct S2Rec {
    vmid: u64,
    gfn: u64,
    level: u64,
    desc: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct VmRec {
    vmid: u64,
    state: String,
    vcpus: Vec<String>,
}

#[derive(Clone, Debug)]
struct Entry {
    line: usize,
    seq: u64,
    cpu: usize,
    /// 0 = the host, else the VM.
    principal: u64,
    vcpu: Option<u64>,
    entry: EntryPoint,
    input: Input,
    result: Outcome,
    x0: Option<u64>,
    rec: Vec<(u64, u64)>,
    core: Vec<(u64, u64)>,
    pages: Vec<PageRec>,
    s2: Vec<S2Rec>,
    vm: Option<VmRec>,
    /// A host fault's entry tickets: taken as it entered kcore and as it left (EL2 glue,
    /// `WINDOW`); `None` for entries that run alone.
    window: Option<(u64, u64)>,
    /// The CPU's register files (host hypercalls, VCPU_RUN, VM exits: always given).
    files: Option<Files>,
    /// The stage-2 TLB invalidations the entry made.
    tlbi: Vec<TlbiRun>,
    /// The glue saved the exiting vCPU's resume point before kcore ran.
    resume: bool,
    /// The glue's bring-up writes (`cpu_init` notes) since the entry before: (CPU, KCore's
    /// words of its register file).
    inits: Vec<(usize, Vec<(usize, u64)>)>,
}

struct Final {
    line: usize,
    halted: bool,
    entries: u64,
    /// KCore's whole state at the end, digested (corevisor_kcore::digest), if given.
    digest: Option<StateDigest>,
}

/// A parsed trace: the machine, the entries, the final line.
pub struct Trace {
    machine: Machine,
    entries: Vec<Entry>,
    fin: Final,
    /// Entries that differ in more than their sequence number and CPU (a measured loop
    /// repeats one entry thousands of times: the total alone says more than was tried).
    distinct: usize,
    /// Host faults that began while another CPU was inside kcore (`None`: no windows).
    concurrent: Option<usize>,
}

impl Trace {
    /// Host faults that entered kcore while another CPU's was inside (entry tickets).
    pub fn concurrent(&self) -> Option<usize> {
        self.concurrent
    }

    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

pub(crate) fn bad(line: usize, field: &str, msg: impl Into<String>) -> Malformed {
    Malformed {
        line,
        field: field.to_string(),
        msg: msg.into(),
    }
}

pub(crate) fn hex(v: &Value, line: usize, field: &str) -> Result<u64, Malformed> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(line, field, format!("expected a hex string, found {v}")))?;
    let digits = s
        .strip_prefix("0x")
        .ok_or_else(|| bad(line, field, format!("expected \"0x...\", found \"{s}\"")))?;
    u64::from_str_radix(digits, 16)
        .map_err(|_| bad(line, field, format!("not a 64-bit hex number: \"{s}\"")))
}

fn num(v: &Value, line: usize, field: &str) -> Result<u64, Malformed> {
    v.as_u64().ok_or_else(|| {
        bad(
            line,
            field,
            format!("expected a non-negative integer, found {v}"),
        )
    })
}

fn get<'a>(o: &'a Map<String, Value>, line: usize, key: &str) -> Result<&'a Value, Malformed> {
    o.get(key).ok_or_else(|| bad(line, key, "missing"))
}

fn arg(a: &Map<String, Value>, line: usize, key: &str) -> Result<u64, Malformed> {
    let f = format!("arguments.{key}");
    hex(
        a.get(key).ok_or_else(|| bad(line, &f, "missing"))?,
        line,
        &f,
    )
}

fn pairs(v: &Value, line: usize, field: &str) -> Result<Vec<(u64, u64)>, Malformed> {
    let arr = v
        .as_array()
        .ok_or_else(|| bad(line, field, "expected an array of [principal, \"0x...\"]"))?;
    arr.iter()
        .enumerate()
        .map(|(k, p)| {
            let f = format!("{field}[{k}]");
            match p.as_array().map(Vec::as_slice) {
                Some([a, b]) => Ok((num(a, line, &f)?, hex(b, line, &f)?)),
                _ => Err(bad(line, &f, "expected [principal, \"0x...\"]")),
            }
        })
        .collect()
}

fn header(v: &Value, line: usize) -> Result<Machine, Malformed> {
    let o = v
        .as_object()
        .ok_or_else(|| bad(line, "trace", "the header is not an object"))?;
    if o.get("trace").and_then(Value::as_str) != Some("corevisor") {
        return Err(bad(
            line,
            "trace",
            "the first line must be the trace header {\"trace\":\"corevisor\",...}",
        ));
    }
    match o.get("profile").and_then(Value::as_str) {
        Some("arm") => {}
        Some(p) => {
            return Err(bad(
                line,
                "profile",
                format!("KCore implements the arm profile, the trace says \"{p}\""),
            ))
        }
        None => return Err(bad(line, "profile", "missing")),
    }
    let m = get(o, line, "machine")?
        .as_object()
        .ok_or_else(|| bad(line, "machine", "expected an object"))?;
    let field = |k: &str| -> Result<Z, Malformed> {
        let f = format!("machine.{k}");
        Ok(Z::from(num(
            m.get(k).ok_or_else(|| bad(line, &f, "missing"))?,
            line,
            &f,
        )?))
    };
    let mmio_v = m.get("mmio").ok_or_else(|| {
        bad(
            line,
            "machine.mmio",
            "missing (the device ranges KCore lets the host map)",
        )
    })?;
    let mmio = mmio_v
        .as_array()
        .ok_or_else(|| bad(line, "machine.mmio", "expected an array of [base, size]"))?
        .iter()
        .enumerate()
        .map(|(k, r)| {
            let f = format!("machine.mmio[{k}]");
            match r.as_array().map(Vec::as_slice) {
                Some([b, s]) => Ok((Z::from(num(b, line, &f)?), Z::from(num(s, line, &f)?))),
                _ => Err(bad(line, &f, "expected [base, size]")),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let machine = Machine {
        cpus: field("cpus")?,
        ram_base: field("ram_base")?,
        ram_mib: field("ram_mib")?,
        kcore_mib: field("kcore_mib")?,
        smmus: field("smmus")?,
        mmio,
    };
    machine
        .validate()
        .map_err(|(f, msg)| bad(line, &format!("machine.{f}"), msg))?;
    Ok(machine)
}

fn entry(v: &Value, line: usize, cpus: usize) -> Result<Entry, Malformed> {
    let o = v
        .as_object()
        .ok_or_else(|| bad(line, "seq", "an entry line must be a JSON object"))?;
    if let Some(l) = o.get("lost") {
        if l != &Value::Bool(false) {
            return Err(bad(
                line,
                "lost",
                "KCore recorded more values than its buffers hold: the entry cannot be replayed",
            ));
        }
    }
    let seq = num(get(o, line, "seq")?, line, "seq")?;
    let cpu = num(get(o, line, "cpu")?, line, "cpu")? as usize;
    if cpu >= cpus {
        return Err(bad(
            line,
            "cpu",
            format!("no CPU {cpu} (the machine has {cpus})"),
        ));
    }
    let principal = match get(o, line, "principal")?.as_str() {
        Some("host") => 0,
        Some(p) => p
            .strip_prefix("vm ")
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|&n| n >= 1)
            .ok_or_else(|| {
                bad(
                    line,
                    "principal",
                    format!("expected \"host\" or \"vm N\", found \"{p}\""),
                )
            })?,
        None => return Err(bad(line, "principal", "expected a string")),
    };
    let ep = match get(o, line, "entry")?.as_array().map(Vec::as_slice) {
        Some([Value::String(s)]) => match s.as_str() {
            "host_hvc_handler" => EntryPoint::HostHvc,
            "host_vcpu_run_handler" => EntryPoint::VcpuRun,
            "host_npt_handler" => EntryPoint::HostNpt,
            "vm_exit_handler" => EntryPoint::VmExit,
            other => {
                return Err(bad(
                    line,
                    "entry",
                    format!("\"{other}\" is not one of KCore's entry points"),
                ))
            }
        },
        _ => return Err(bad(line, "entry", "expected [\"<entry point>\"]")),
    };
    let action = get(o, line, "action")?
        .as_str()
        .ok_or_else(|| bad(line, "action", "expected a string"))?;
    let args = get(o, line, "arguments")?
        .as_object()
        .ok_or_else(|| bad(line, "arguments", "expected an object"))?;
    let host_side = matches!(
        ep,
        EntryPoint::HostHvc | EntryPoint::VcpuRun | EntryPoint::HostNpt
    );
    if host_side != (principal == 0) {
        return Err(bad(
            line,
            "principal",
            format!(
                "{} is entered from the {}",
                ep.name(),
                if host_side { "host" } else { "VM" }
            ),
        ));
    }
    let want = |ok: bool| -> Result<(), Malformed> {
        if ok {
            Ok(())
        } else {
            Err(bad(
                line,
                "action",
                format!("\"{action}\" does not enter KCore through {}", ep.name()),
            ))
        }
    };
    let vcpu = if principal != 0 {
        Some(num(
            args.get("vcpu")
                .ok_or_else(|| bad(line, "arguments.vcpu", "missing"))?,
            line,
            "arguments.vcpu",
        )?)
    } else {
        None
    };
    let hvc_esr = (ESR_ELx_EC_HVC64 << ESR_ELx_EC_SHIFT) as u64;
    let input = match action {
        "hvc" => {
            let number = num(
                args.get("number")
                    .ok_or_else(|| bad(line, "arguments.number", "missing"))?,
                line,
                "arguments.number",
            )?;
            let run = number == Profile::ARM.c.HVC_VCPU_RUN.unwrap_or(-1) as u64;
            want(
                ep == if run {
                    EntryPoint::VcpuRun
                } else {
                    EntryPoint::HostHvc
                },
            )?;
            let a = args
                .get("args")
                .and_then(Value::as_array)
                .ok_or_else(|| bad(line, "arguments.args", "expected an array"))?;
            if a.len() > 30 {
                return Err(bad(line, "arguments.args", "more than x1..x30"));
            }
            let args = a
                .iter()
                .enumerate()
                .map(|(k, v)| hex(v, line, &format!("arguments.args[{k}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Input::Hvc { number, args }
        }
        "host_load" | "host_store" | "host_fetch" => {
            want(ep == EntryPoint::HostNpt)?;
            Input::HostFault {
                addr: arg(args, line, "addr")?,
                esr: arg(args, line, "esr")?,
            }
        }
        "guest_load" | "guest_store" | "guest_fetch" => {
            want(ep == EntryPoint::VmExit)?;
            Input::Exit {
                irq: false,
                esr: arg(args, line, "esr")?,
                ipa: Some(arg(args, line, "gpa")?),
                x: vec![],
            }
        }
        "guest_hvc" => {
            want(ep == EntryPoint::VmExit)?;
            let c = &Profile::ARM.c;
            let op = match args.get("op").and_then(Value::as_str) {
                Some("grant") => c.HVC_KVM_SET_DESC_PFN,
                Some("revoke") => c.HVC_KVM_UNSET_DESC_PFN,
                _ => {
                    return Err(bad(
                        line,
                        "arguments.op",
                        "expected \"grant\" or \"revoke\"",
                    ))
                }
            };
            let gpa = arg(args, line, "gpa")?;
            Input::Exit {
                irq: false,
                esr: hvc_esr,
                ipa: None,
                x: vec![(0, op as u64), (2, gpa), (3, arg(args, line, "size")?)],
            }
        }
        "guest_psci" => {
            want(ep == EntryPoint::VmExit)?;
            Input::Exit {
                irq: false,
                esr: hvc_esr,
                ipa: None,
                x: vec![(0, arg(args, line, "x0")?)],
            }
        }
        "guest_hvc_other" => {
            want(ep == EntryPoint::VmExit)?;
            let mut x = vec![];
            for k in 0..4 {
                x.push((k, arg(args, line, &format!("x{k}"))?));
            }
            Input::Exit {
                irq: false,
                esr: hvc_esr,
                ipa: None,
                x,
            }
        }
        "guest_wfx" | "guest_sysreg" | "guest_other" | "irq" => {
            want(ep == EntryPoint::VmExit)?;
            Input::Exit {
                irq: action == "irq",
                esr: arg(args, line, "esr")?,
                ipa: None,
                x: vec![],
            }
        }
        other => return Err(bad(line, "action", format!("unknown action \"{other}\""))),
    };
    let result = match get(o, line, "result")?.as_str() {
        Some("ok") => Outcome::Ok,
        Some("halt") => Outcome::Halt,
        Some("undefined") => Outcome::Undefined,
        _ => {
            return Err(bad(
                line,
                "result",
                "expected \"ok\", \"halt\" or \"undefined\"",
            ))
        }
    };
    let x0 = match get(o, line, "x0")? {
        Value::Null => None,
        v => Some(hex(v, line, "x0")?),
    };
    if ep == EntryPoint::HostHvc && x0.is_none() {
        return Err(bad(line, "x0", "a host hypercall gives the host's x0 back"));
    }
    if matches!(ep, EntryPoint::VcpuRun | EntryPoint::HostNpt) && x0.is_some() {
        return Err(bad(line, "x0", format!("{} gives no x0 (null)", ep.name())));
    }
    let rec = pairs(get(o, line, "rec")?, line, "rec")?;
    let core = pairs(get(o, line, "core")?, line, "core")?;
    let pages = get(o, line, "pages")?
        .as_array()
        .ok_or_else(|| {
            bad(
                line,
                "pages",
                "expected an array of [pfn, owner, count, \"0xgfn\"]",
            )
        })?
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let f = format!("pages[{k}]");
            match p.as_array().map(Vec::as_slice) {
                Some([pfn, owner, count, gfn]) => Ok(PageRec {
                    pfn: num(pfn, line, &f)?,
                    owner: num(owner, line, &f)?,
                    count: num(count, line, &f)?,
                    gfn: hex(gfn, line, &f)?,
                }),
                _ => Err(bad(line, &f, "expected [pfn, owner, count, \"0xgfn\"]")),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let s2 = get(o, line, "s2")?
        .as_array()
        .ok_or_else(|| {
            bad(
                line,
                "s2",
                "expected an array of [vmid, gfn, level, \"0xdescriptor\"]",
            )
        })?
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let f = format!("s2[{k}]");
            match p.as_array().map(Vec::as_slice) {
                Some([vmid, gfn, level, desc]) => Ok(S2Rec {
                    vmid: num(vmid, line, &f)?,
                    gfn: num(gfn, line, &f)?,
                    level: num(level, line, &f)?,
                    desc: hex(desc, line, &f)?,
                }),
                _ => Err(bad(
                    line,
                    &f,
                    "expected [vmid, gfn, level, \"0xdescriptor\"]",
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let vm = match o.get("vm") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let m = v.as_object().ok_or_else(|| {
                bad(
                    line,
                    "vm",
                    "expected {\"vmid\":N,\"state\":...,\"vcpus\":[...]}",
                )
            })?;
            let name = |v: &Value, f: &str| -> Result<String, Malformed> {
                let s = v
                    .as_str()
                    .ok_or_else(|| bad(line, f, "expected a state name"))?;
                if !STATE_NAMES.contains(&s) {
                    return Err(bad(line, f, format!("unknown state \"{s}\"")));
                }
                Ok(s.to_string())
            };
            let vcpus = m
                .get("vcpus")
                .and_then(Value::as_array)
                .ok_or_else(|| bad(line, "vm.vcpus", "expected an array of state names"))?;
            if vcpus.len() > VCPU_PER_VM as usize {
                return Err(bad(line, "vm.vcpus", "more than VCPU_PER_VM vCPUs"));
            }
            Some(VmRec {
                vmid: num(
                    m.get("vmid")
                        .ok_or_else(|| bad(line, "vm.vmid", "missing"))?,
                    line,
                    "vm.vmid",
                )?,
                state: name(
                    m.get("state")
                        .ok_or_else(|| bad(line, "vm.state", "missing"))?,
                    "vm.state",
                )?,
                vcpus: vcpus
                    .iter()
                    .enumerate()
                    .map(|(k, v)| name(v, &format!("vm.vcpus[{k}]")))
                    .collect::<Result<_, _>>()?,
            })
        }
    };
    let window = match o.get("window") {
        None => None,
        Some(w) => {
            let p = w
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or_else(|| bad(line, "window", "expected [enter ticket, exit ticket]"))?;
            let (a, b) = (num(&p[0], line, "window")?, num(&p[1], line, "window")?);
            if a >= b || ep != EntryPoint::HostNpt {
                return Err(bad(
                    line,
                    "window",
                    "a host fault's enter ticket comes before its exit ticket",
                ));
            }
            Some((a, b))
        }
    };
    let files = parse_files(o, line)?;
    // Host hypercalls, VCPU_RUN and VM exits give the CPU's register files; host faults
    // (two CPUs inside kcore at once, the host's registers untouched) give none.
    let gives_files = ep != EntryPoint::HostNpt;
    if files.is_some() != gives_files {
        return Err(bad(
            line,
            "regs",
            format!(
                "{} {} register files",
                ep.name(),
                if gives_files {
                    "must give its"
                } else {
                    "gives no"
                }
            ),
        ));
    }
    let resume = parse_glue(o, line)?;
    if resume && ep != EntryPoint::VmExit {
        return Err(bad(
            line,
            "glue",
            "the glue saves a resume point only at a VM exit",
        ));
    }
    Ok(Entry {
        line,
        seq,
        cpu,
        principal,
        vcpu,
        entry: ep,
        input,
        result,
        x0,
        rec,
        core,
        pages,
        s2,
        vm,
        window,
        files,
        tlbi: parse_tlbi(o, line)?,
        resume,
        inits: Vec::new(),
    })
}

fn regs_file(
    o: &Map<String, Value>,
    line: usize,
    side: &str,
) -> Result<(usize, Vec<(usize, u64)>), Malformed> {
    let f = o.get(side).and_then(Value::as_object).ok_or_else(|| {
        bad(
            line,
            &format!("regs.{side}"),
            "expected {\"ctx\":N, \"<register>\":\"0x...\", ...}",
        )
    })?;
    let ctx = f
        .get("ctx")
        .and_then(Value::as_u64)
        .filter(|&c| c < corevisor_kcore::state::CTXTS as u64)
        .ok_or_else(|| {
            bad(
                line,
                &format!("regs.{side}.ctx"),
                "expected a context number below 136",
            )
        })?;
    let words = named_words(
        f.iter().filter(|(k, _)| *k != "ctx"),
        line,
        &format!("regs.{side}"),
        |_| true,
    )?;
    Ok((ctx as usize, words))
}

/// `"<word>":"0x..."` pairs of a register file (kcore's `ctxt_words` names) that `keep`
/// admits, as (word, value).
fn named_words<'a>(
    pairs: impl Iterator<Item = (&'a String, &'a Value)>,
    line: usize,
    prefix: &str,
    keep: impl Fn(usize) -> bool,
) -> Result<Vec<(usize, u64)>, Malformed> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        let field = format!("{prefix}.{k}");
        let i = words::index(k).filter(|&i| keep(i)).ok_or_else(|| {
            bad(
                line,
                &field,
                "not a register of kcore's context (or not one admitted here)",
            )
        })?;
        out.push((i, hex(v, line, &field)?));
    }
    Ok(out)
}

/// A note of the glue's bring-up of a CPU: `{"glue":"cpu_init","cpu":N,"regs":{"ctx":N,...}}`,
/// KCore's words of the CPU's register file (its host context N) as the glue set them.
fn cpu_init(v: &Value, line: usize, cpus: usize) -> Result<(usize, Vec<(usize, u64)>), Malformed> {
    if v["glue"] != "cpu_init" {
        return Err(bad(
            line,
            "glue",
            "expected \"cpu_init\" (the glue's only note)",
        ));
    }
    let cpu = v["cpu"]
        .as_u64()
        .filter(|&c| (c as usize) < cpus)
        .ok_or_else(|| bad(line, "cpu", format!("expected a CPU below {cpus}")))?;
    let o = v["regs"]
        .as_object()
        .ok_or_else(|| bad(line, "regs", "expected {\"<register>\":\"0x...\", ...}"))?;
    if o.get("ctx").and_then(Value::as_u64) != Some(cpu) {
        return Err(bad(
            line,
            "regs.ctx",
            "expected the CPU's host context (its number)",
        ));
    }
    let words = named_words(o.iter().filter(|(k, _)| *k != "ctx"), line, "regs", |i| {
        !words::is_world(i)
    })?;
    Ok((cpu as usize, words))
}

/// The entry's `regs`, if it has one (crate::trace_regs).
fn parse_files(o: &Map<String, Value>, line: usize) -> Result<Option<Files>, Malformed> {
    let Some(r) = o.get("regs") else {
        return Ok(None);
    };
    let r = r
        .as_object()
        .ok_or_else(|| bad(line, "regs", "expected {\"found\":{...},\"left\":{...}}"))?;
    let (found_ctx, found) = regs_file(r, line, "found")?;
    let (left_ctx, left) = regs_file(r, line, "left")?;
    Ok(Some(Files {
        found_ctx,
        found,
        left_ctx,
        left,
    }))
}

/// The entry's `tlbi` runs (none if absent).
fn parse_tlbi(o: &Map<String, Value>, line: usize) -> Result<Vec<TlbiRun>, Malformed> {
    let Some(t) = o.get("tlbi") else {
        return Ok(Vec::new());
    };
    let t = t.as_array().ok_or_else(|| {
        bad(
            line,
            "tlbi",
            "expected an array of [vmid, \"0xipa\", count]",
        )
    })?;
    t.iter()
        .enumerate()
        .map(|(k, r)| {
            let f = format!("tlbi[{k}]");
            match r.as_array().map(Vec::as_slice) {
                Some([vmid, ipa, count]) => Ok(TlbiRun {
                    vmid: vmid
                        .as_u64()
                        .ok_or_else(|| bad(line, &f, "vmid: expected a number"))?,
                    ipa: hex(ipa, line, &f)?,
                    // At most the pages of a 48-bit IPA space.
                    count: count.as_u64().filter(|&c| c <= 1 << 36).ok_or_else(|| {
                        bad(line, &f, "count: expected a number of pages (at most 2^36)")
                    })?,
                }),
                _ => Err(bad(line, &f, "expected [vmid, \"0xipa\", count]")),
            }
        })
        .collect()
}

/// Whether the glue saved the exiting vCPU's resume point (`"glue":["save_resume_point"]`).
fn parse_glue(o: &Map<String, Value>, line: usize) -> Result<bool, Malformed> {
    match o.get("glue") {
        None => Ok(false),
        Some(Value::Array(a)) if a.len() == 1 && a[0] == "save_resume_point" => Ok(true),
        Some(_) => Err(bad(
            line,
            "glue",
            "expected [\"save_resume_point\"] (the glue's only write to KCore's state)",
        )),
    }
}

/// Entries that began (their enter ticket) while an entry of another CPU was inside kcore
/// (between its tickets): two CPUs inside kcore at the same moment. `None`: no windows.
fn concurrent(entries: &[Entry]) -> Option<usize> {
    let mut w: Vec<(u64, u64, usize)> = entries
        .iter()
        .filter_map(|e| e.window.map(|(a, b)| (a, b, e.cpu)))
        .collect();
    if w.is_empty() {
        return None;
    }
    w.sort_unstable();
    // The latest exit ticket seen so far on each CPU.
    let mut last: BTreeMap<usize, u64> = BTreeMap::new();
    let mut n = 0;
    for &(enter, exit, cpu) in &w {
        if last.iter().any(|(&c, &x)| c != cpu && x > enter) {
            n += 1;
        }
        let e = last.entry(cpu).or_insert(0);
        *e = (*e).max(exit);
    }
    Some(n)
}

const STATE_NAMES: [&str; 6] = [
    "UNUSED", "MAPPED", "READY", "VERIFIED", "POWEROFF", "ACTIVE",
];

/// Parses a trace (JSON lines: header, entries, final line).
pub fn parse(text: &str) -> Result<Trace, Malformed> {
    let mut machine = None;
    let mut entries = Vec::new();
    let mut shapes = std::collections::BTreeSet::new();
    let mut fin: Option<Final> = None;
    let mut inits = Vec::new();
    let mut last = 0;
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        last = line;
        let t = raw.trim();
        if t.is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(t).map_err(|e| bad(line, "-", format!("not JSON: {e}")))?;
        if fin.is_some() {
            return Err(bad(line, "final", "a line after the final line"));
        }
        let Some(m) = &machine else {
            machine = Some(header(&v, line)?);
            continue;
        };
        if let Some(f) = v.get("final") {
            let halted = f
                .get("halted")
                .and_then(Value::as_bool)
                .ok_or_else(|| bad(line, "final.halted", "expected true or false"))?;
            let count = num(
                f.get("entries")
                    .ok_or_else(|| bad(line, "final.entries", "missing"))?,
                line,
                "final.entries",
            )?;
            let digest = match f.get("digest") {
                None => None,
                Some(d) => {
                    let field = |k: &str| {
                        d.get(k)
                            .ok_or_else(|| bad(line, &format!("final.digest.{k}"), "missing"))
                    };
                    Some(StateDigest {
                        pages: hex(field("pages")?, line, "final.digest.pages")?,
                        leaves: hex(field("leaves")?, line, "final.digest.leaves")?,
                        leaf_count: num(field("leaf_count")?, line, "final.digest.leaf_count")?,
                        vms: hex(field("vms")?, line, "final.digest.vms")?,
                    })
                }
            };
            fin = Some(Final {
                line,
                halted,
                entries: count,
                digest,
            });
            continue;
        }
        if v.get("trace").is_some() {
            return Err(bad(line, "trace", "a second trace header"));
        }
        if v.get("glue").is_some_and(Value::is_string) {
            inits.push(cpu_init(&v, line, m.cpus as usize)?);
            continue;
        }
        let mut e = entry(&v, line, m.cpus as usize)?;
        e.inits = std::mem::take(&mut inits);
        entries.push(e);
        let mut shape = v;
        if let Some(o) = shape.as_object_mut() {
            o.remove("seq");
            o.remove("cpu");
            o.remove("window");
            // Register values (loop counters, addresses) make every entry of a measured
            // loop differ; what was tried is the rest.
            o.remove("regs");
        }
        shapes.insert(shape.to_string());
    }
    let machine = machine.ok_or_else(|| bad(1, "trace", "empty trace: no header"))?;
    if !inits.is_empty() {
        return Err(bad(
            last,
            "glue",
            "a cpu_init note after the last entry: the glue brought a CPU up that never entered KCore",
        ));
    }
    let fin = fin.ok_or_else(|| {
        bad(
            last + 1,
            "final",
            "no final line ({\"final\":{...}}): the trace is cut short",
        )
    })?;
    Ok(Trace {
        concurrent: concurrent(&entries),
        machine,
        entries,
        fin,
        distinct: shapes.len(),
    })
}

fn state_name(s: Z) -> String {
    usize::try_from(s)
        .ok()
        .and_then(|i| STATE_NAMES.get(i))
        .map_or_else(|| format!("{s}"), |n| n.to_string())
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Halt => "halt",
        Outcome::Undefined => "undefined",
        Outcome::Fault => "fault",
    }
}

/// The model's leaf a traced descriptor stands for (`abs_npt`'s reading of KCore's table):
/// a level-3 entry as it is, a valid level-2 block at the gfn's page within it; `None`: no
/// leaf (0, or nothing the model maps).
fn s2_leaf(r: &S2Rec) -> Option<(Z, Z, Z)> {
    let phys = Z::from(r.desc & 0xFFFF_FFFF_F000) / PAGE_SIZE;
    match r.level {
        _ if r.desc == 0 => None,
        3 => Some((phys, 3, Z::from(r.desc))),
        2 if r.desc & 1 == 1 => Some((phys + Z::from(r.gfn & 511), 2, Z::from(r.desc))),
        _ => None,
    }
}

fn leaf_text(l: &(Z, Z, Z)) -> String {
    if l.0 == 0 && l.2 == 0 {
        "unmapped".into()
    } else {
        format!("pfn {:#x} level {} descriptor {:#x}", l.0, l.1, l.2)
    }
}

fn page_text(owner: Z, count: Z, gfn: Z) -> String {
    format!("owner {owner} count {count} gfn {gfn:#x}")
}

/// The replay: the model machine and what has been checked so far.
pub struct Replay {
    pub model: ModelMachine,
    summary: Summary,
    /// Each register context's file as the trace last gave it.
    bases: crate::trace_regs::Bases,
}

impl Replay {
    pub fn new(machine: Machine) -> Self {
        let profile = *Profile::of(ProfileKind::Arm);
        Replay {
            model: ModelMachine::new(profile, machine),
            summary: Summary {
                entries: 0,
                distinct: 0,
                by_entry: ENTRY_POINTS.iter().map(|n| (*n, 0)).collect(),
                pages: 0,
                leaves: 0,
                vms: 0,
                values: 0,
                files: 0,
                invalidated: 0,
                halted: false,
                digest: None,
                concurrent: None,
            },
            bases: Default::default(),
        }
    }

    /// The CPU's world as the trace names it.
    fn world(&self, i: usize) -> String {
        let c = &self.model.cpus[i];
        if c.icore {
            "in KCore".into()
        } else if c.ihost {
            "host".into()
        } else {
            format!("vm {} vcpu {}", c.cur_vmid, c.cur_vcpuid)
        }
    }

    /// The model's state digested as KCore digests its own (corevisor_kcore::digest): every
    /// RAM page's metadata, every principal's leaves but KCore's, every VM's record.
    pub fn digest(&self) -> StateDigest {
        let sh = &self.model.global.shared;
        let m = &self.model.machine;
        let mut d = Digester::default();
        let (first, end) = (m.ram_base / PAGE_SIZE, m.ram_end() / PAGE_SIZE);
        for pfn in first..end {
            let s = sh.s2page.get(pfn);
            d.page(
                pfn as u64,
                s.s2_owner as u64,
                s.s2_count as u64,
                s.s2_gfn as u64,
            );
        }
        for v in 0..COREVISOR {
            for (gfn, &(pfn, level, desc)) in sh.npts.get(v).pt.entries() {
                d.leaf(v as u64, gfn as u64, pfn as u64, level as u64, desc as u64);
            }
        }
        for v in 1..COREVISOR {
            let vs = &sh.vminfos.get(v).VS;
            d.vm(
                v as u64,
                vs.vm_state as u64,
                (0..VCPU_PER_VM).map(|c| *vs.vm_vcpu_state.get(c) as u64),
            );
        }
        d.finish()
    }

    /// The untrusted values the entry's record gives that the checker derives from the
    /// register file the CPU brought in (`found`) and the model's state, as lockstep does:
    /// VCPU_RUN's control values (x1..x5: VM, vCPU, the proposed mapping) and what it takes
    /// from the host's registers (crate::run_inputs); a guest abort's ESR_EL2. The first
    /// that differs: (field, the trace's, the derived). Page words stay the trace's (the
    /// trace has no copy of memory).
    fn derived_inputs(
        &self,
        e: &Entry,
        found: &corevisor_kcore::ctxt::Ctxt,
    ) -> Option<crate::trace_regs::Diff> {
        let x = &found.regs.x;
        let mismatch = |what: String, t: u64, w: u64| {
            Some((
                format!("input: {what}"),
                format!("{t:#x}"),
                format!("{w:#x}"),
            ))
        };
        match e.entry {
            EntryPoint::VcpuRun => {
                for (k, &(v, val)) in e.core.iter().enumerate().take(4) {
                    if v != x[1] || val != x[2 + k] {
                        return mismatch(
                            format!(
                                "control value {k} of VM {v} (the host's x{} for VM {})",
                                2 + k,
                                x[1]
                            ),
                            val,
                            x[2 + k],
                        );
                    }
                }
                let run = crate::run_inputs::vcpu_run_inputs(
                    &self.model.global,
                    x,
                    found.regs.actlr_el1,
                )?;
                let took: Vec<u64> = e
                    .rec
                    .iter()
                    .filter(|r| r.0 == run.vmid)
                    .map(|r| r.1)
                    .collect();
                for (k, (want, src)) in run.want.iter().enumerate().take(took.len()) {
                    if took[k] != *want {
                        return mismatch(
                            format!("value {k} of VM {} ({src})", run.vmid),
                            took[k],
                            *want,
                        );
                    }
                }
                run.missing(took.len(), e.result == Outcome::Halt)
                    .map(|(want, src)| {
                        (
                            format!("input: value {} of VM {} ({src})", took.len(), run.vmid),
                            "(not taken)".into(),
                            format!("{want:#x}"),
                        )
                    })
            }
            // A guest abort (by the syndrome the CPU brought in, not the record's action):
            // its first value is ESR_EL2.
            EntryPoint::VmExit if matches!(found.regs.esr_el2 >> 26, 0x20 | 0x24) => {
                let t = e.rec.iter().find(|r| r.0 == e.principal)?.1;
                (t != found.regs.esr_el2).then(|| {
                    (
                        format!("input: value 0 of VM {} (ESR_EL2)", e.principal),
                        format!("{t:#x}"),
                        format!("{:#x}", found.regs.esr_el2),
                    )
                })
            }
            _ => None,
        }
    }

    /// The record's own account of the trap (`arguments`, action) against the register
    /// file the CPU brought in: a VCPU_RUN's x0..xn, an exit's syndrome, abort address,
    /// argument registers and kind (trap or interrupt).
    fn inputs_agree(
        e: &Entry,
        found: &corevisor_kcore::ctxt::Ctxt,
    ) -> Option<crate::trace_regs::Diff> {
        let r = &found.regs;
        let differ = |what: &str, t: u64, w: u64| {
            (t != w).then(|| {
                (
                    format!("arguments: {what} (against regs.found)"),
                    format!("{t:#x}"),
                    format!("{w:#x}"),
                )
            })
        };
        match &e.input {
            Input::Hvc { number, args } => differ("x0", *number, r.x[0]).or_else(|| {
                args.iter()
                    .enumerate()
                    .find_map(|(k, a)| differ(&format!("x{}", k + 1), *a, r.x[k + 1]))
            }),
            Input::Exit { irq, esr, ipa, x } => {
                let ec = if *irq {
                    corevisor_kcore::consts::ARM_EXCEPTION_INTERRUPT
                } else {
                    corevisor_kcore::consts::ARM_EXCEPTION_TRAP
                };
                // A guest hypercall's record gives no syndrome, only its class (HVC64).
                let esr_have = if esr & 0x03FF_FFFF == 0 {
                    r.esr_el2 & !0x03FF_FFFF
                } else {
                    r.esr_el2
                };
                differ("exit kind", ec, r.ec)
                    .or_else(|| differ("esr", *esr, esr_have))
                    .or_else(|| {
                        let have = ((r.hpfar_el2 >> 4) << 12) | (r.far_el2 & 0xFFF);
                        ipa.and_then(|a| differ("gpa", a, have))
                    })
                    .or_else(|| {
                        x.iter()
                            .find_map(|&(n, v)| differ(&format!("x{n}"), v, r.x[n]))
                    })
            }
            Input::HostFault { .. } => None,
        }
    }

    /// Replays entry `k` and compares; `Err` names the first disagreeing field.
    fn step(&mut self, k: usize, e: &Entry) -> Result<(), Box<Mismatch>> {
        let m = |field: &str, trace: String, model: String| {
            Box::new(Mismatch {
                index: k,
                line: e.line,
                cpu: Some(e.cpu),
                entry: e.entry.name().to_string(),
                field: field.to_string(),
                trace,
                model,
            })
        };
        if e.seq != k as u64 {
            return Err(m(
                "seq",
                e.seq.to_string(),
                format!("{k} (entries are numbered in lock order: one is missing or repeated)"),
            ));
        }
        for (cpu, w) in &e.inits {
            let phys = &mut self.model.cpus[*cpu].regs;
            if let Some((field, t, want)) = crate::trace_regs::cpu_init(phys, *cpu, w) {
                return Err(m(&field, t, want));
            }
        }
        let i = e.cpu;
        let trace_world = if e.principal == 0 {
            "host".to_string()
        } else {
            format!("vm {} vcpu {}", e.principal, e.vcpu.unwrap_or(0))
        };
        let model_world = self.world(i);
        if trace_world != model_world {
            return Err(m("principal", trace_world, model_world));
        }
        let before = self.model.global.clone();
        // The untrusted values KCore read, at the next positions of their streams.
        let g = &mut self.model.global;
        let mut next: BTreeMap<u64, Z> = BTreeMap::new();
        for &(v, x) in &e.rec {
            let n = next.entry(v).or_insert_with(|| *g.data_log.get(Z::from(v)));
            g.doracle.put(Z::from(v), *n, Z::from(x));
            *n += 1;
        }
        let mut next_core: BTreeMap<u64, Z> = BTreeMap::new();
        for &(v, x) in &e.core {
            let n = next_core
                .entry(v)
                .or_insert_with(|| *g.core_data_log.get(Z::from(v)));
            g.core_doracle.put(Z::from(v), *n, Z::from(x));
            *n += 1;
        }
        // The registers the trap found.
        let p = self.model.profile;
        let r = &mut self.model.cpus[i].regs.ctxt_regs;
        match &e.input {
            Input::Hvc { number, args } => {
                r.x[0] = Z::from(*number);
                for (n, a) in args.iter().enumerate() {
                    r.x[n + 1] = Z::from(*a);
                }
            }
            Input::HostFault { addr, esr } => {
                r.hpfar_el2 = Z::from((addr >> 12) << 4);
                r.far_el2 = Z::from(*addr);
                r.esr_el2 = Z::from(*esr);
            }
            Input::Exit { irq, esr, ipa, x } => {
                r.ec = if *irq {
                    p.c.ARM_EXCEPTION_INTERRUPT
                } else {
                    ARM_EXCEPTION_TRAP
                };
                r.esr_el2 = Z::from(*esr);
                if let Some(a) = ipa {
                    r.hpfar_el2 = Z::from((a >> 12) << 4);
                    r.far_el2 = Z::from(*a);
                }
                for &(n, v) in x {
                    r.x[n] = Z::from(v);
                }
            }
        }
        // A hypercall or world switch: the register file the CPU brought in (the world's
        // words as inputs, over the registers above; KCore's checked), the glue's own write,
        // and the values VCPU_RUN and an abort take from registers, derived here
        // (crate::trace_regs).
        let files = e.files.as_ref().map(|f| self.bases.apply(f));
        if let (Some(f), Some((found, _))) = (&e.files, &files) {
            let want = crate::trace_regs::world_ctx(&self.model, i);
            if f.found_ctx != want {
                return Err(m(
                    "regs.found.ctx",
                    f.found_ctx.to_string(),
                    want.to_string(),
                ));
            }
            let phys = &mut self.model.cpus[i].regs;
            if let Some((field, t, w)) = crate::trace_regs::take_found(phys, found) {
                return Err(m(&field, t, w));
            }
            if e.resume {
                crate::trace_regs::save_resume_point(&mut self.model.global, f.found_ctx, found);
            }
            if let Some((field, t, w)) = Self::inputs_agree(e, found) {
                return Err(m(&field, t, w));
            }
            if let Some((field, t, w)) = self.derived_inputs(e, found) {
                return Err(m(&field, t, w));
            }
        }
        let f: fn(&Profile, &RData) -> Option<RData> = match e.entry {
            EntryPoint::HostHvc => host_hvc_handler_spec,
            EntryPoint::VcpuRun => host_vcpu_run_handler_spec,
            EntryPoint::HostNpt => host_npt_handler_spec,
            EntryPoint::VmExit => vm_exit_handler_spec,
        };
        let result = match f(&p, &self.model.view(i)) {
            None => Outcome::Undefined,
            Some(s) => {
                let halt = s.halt;
                self.model.absorb(i, s);
                if halt {
                    Outcome::Halt
                } else {
                    Outcome::Ok
                }
            }
        };
        if result != e.result {
            return Err(m(
                "result",
                outcome_name(e.result).into(),
                outcome_name(result).into(),
            ));
        }
        let after = &self.model.global;
        // How many untrusted values of each stream the model consumed.
        let count = |v: &[(u64, u64)]| {
            let mut c: BTreeMap<Z, Z> = BTreeMap::new();
            for &(p, _) in v {
                *c.entry(Z::from(p)).or_default() += 1;
            }
            c
        };
        for (field, recorded, b, a) in [
            ("rec", count(&e.rec), &before.data_log, &after.data_log),
            (
                "core",
                count(&e.core),
                &before.core_data_log,
                &after.core_data_log,
            ),
        ] {
            let mut streams: BTreeSet<Z> = recorded.keys().copied().collect();
            streams.extend(b.changed_keys(a));
            for s in streams {
                let t = recorded.get(&s).copied().unwrap_or(0);
                let used = a.get(s) - b.get(s);
                if t != used {
                    return Err(m(
                        &format!("{field}: values of principal {s}'s stream read"),
                        t.to_string(),
                        used.to_string(),
                    ));
                }
            }
        }
        if result == Outcome::Ok {
            let c = &self.model.cpus[i];
            let x0 = c.regs.ctxt_regs.x[0];
            match e.entry {
                EntryPoint::HostHvc => {
                    let t = e.x0.unwrap_or(0);
                    if Z::from(t) != x0 {
                        return Err(m("x0", format!("{t:#x}"), format!("{x0:#x}")));
                    }
                }
                EntryPoint::VmExit => {
                    // A VM exit returns to the host exactly when the trace gives its x0.
                    let back = c.ihost && !c.icore;
                    match e.x0 {
                        Some(t) if back && Z::from(t) != x0 => {
                            return Err(m("x0", format!("{t:#x}"), format!("{x0:#x}")));
                        }
                        Some(t) if !back => {
                            return Err(m(
                                "returns to",
                                format!("the host (x0 {t:#x})"),
                                self.world(i),
                            ));
                        }
                        None if back => {
                            return Err(m(
                                "returns to",
                                "the VM".into(),
                                format!("the host (x0 {x0:#x})"),
                            ));
                        }
                        _ => {}
                    }
                }
                EntryPoint::VcpuRun | EntryPoint::HostNpt => {}
            }
        }
        if let (Some(f), Some((_, left)), Outcome::Ok) = (&e.files, &files, result) {
            let want = crate::trace_regs::world_ctx(&self.model, i);
            if f.left_ctx != want {
                return Err(m("regs.left.ctx", f.left_ctx.to_string(), want.to_string()));
            }
            let phys = &self.model.cpus[i].regs;
            if let Some((field, t, w)) = crate::trace_regs::compare_left(phys, left) {
                return Err(m(&field, t, w));
            }
            self.summary.files += 2;
        }
        if result == Outcome::Ok {
            let leaves = crate::trace_regs::changed_valid_leaves(&before, &self.model.global);
            if let Some((field, t, w)) = crate::trace_regs::check_tlbi(&leaves, &e.tlbi) {
                return Err(m(&field, t, w));
            }
            self.summary.invalidated += leaves.len();
        }
        // Page metadata: what KCore wrote, and everything the model changed.
        let sh = &self.model.global.shared;
        let mut listed = BTreeSet::new();
        for pg in e.pages.iter().rev() {
            if !listed.insert(Z::from(pg.pfn)) {
                continue; // an earlier record of the same page: the last one counts
            }
            let s = sh.s2page.get(Z::from(pg.pfn));
            let (to, tc, tg) = (Z::from(pg.owner), Z::from(pg.count), Z::from(pg.gfn));
            if (s.s2_owner, s.s2_count, s.s2_gfn) != (to, tc, tg) {
                return Err(m(
                    &format!("page {:#x}", pg.pfn),
                    page_text(to, tc, tg),
                    page_text(s.s2_owner, s.s2_count, s.s2_gfn),
                ));
            }
        }
        for pfn in before.shared.s2page.changed_keys(&sh.s2page) {
            if !listed.contains(&pfn) {
                let s = sh.s2page.get(pfn);
                return Err(m(
                    &format!("page {pfn:#x}"),
                    "(not written)".into(),
                    page_text(s.s2_owner, s.s2_count, s.s2_gfn),
                ));
            }
        }
        // Stage-2 leaves: those KCore's tables hold, and every leaf the model changed in a
        // principal's table (KCore's own remap window, COREVISOR's, is not traced).
        let mut leaves = BTreeSet::new();
        for r in e.s2.iter().rev() {
            let (v, g) = (Z::from(r.vmid), Z::from(r.gfn));
            if !leaves.insert((v, g)) {
                continue;
            }
            let npt = sh.npts.get(v);
            let want = s2_leaf(r).unwrap_or(*npt.pt.default_value());
            let have = *npt.pt.get(g);
            if have != want {
                return Err(m(
                    &format!("stage 2 of principal {v} at gfn {g:#x}"),
                    leaf_text(&want),
                    leaf_text(&have),
                ));
            }
        }
        for v in before.shared.npts.changed_keys(&sh.npts) {
            if v == COREVISOR {
                continue;
            }
            let (b, a) = (&before.shared.npts.get(v).pt, &sh.npts.get(v).pt);
            for g in b.changed_keys(a) {
                if !leaves.contains(&(v, g)) {
                    return Err(m(
                        &format!("stage 2 of principal {v} at gfn {g:#x}"),
                        "(not given)".into(),
                        leaf_text(a.get(g)),
                    ));
                }
            }
        }
        // VM records: the one the trace gives, and every VM whose states the model changed.
        let vm_text = |v: Z| {
            let vs = &sh.vminfos.get(v).VS;
            let mut vcpus: Vec<String> = (0..VCPU_PER_VM)
                .map(|c| state_name(*vs.vm_vcpu_state.get(c)))
                .collect();
            while vcpus.last().map(String::as_str) == Some("UNUSED") {
                vcpus.pop();
            }
            format!("{} [{}]", state_name(vs.vm_state), vcpus.join(", "))
        };
        if let Some(v) = &e.vm {
            let mut vcpus = v.vcpus.clone();
            while vcpus.last().map(String::as_str) == Some("UNUSED") {
                vcpus.pop();
            }
            let t = format!("{} [{}]", v.state, vcpus.join(", "));
            let mv = vm_text(Z::from(v.vmid));
            if t != mv {
                return Err(m(&format!("VM {} state", v.vmid), t, mv));
            }
        }
        let states = |s: &RData, v: Z| {
            let vs = &s.shared.vminfos.get(v).VS;
            (vs.vm_state, vs.vm_vcpu_state.clone())
        };
        for v in before.shared.vminfos.changed_keys(&sh.vminfos) {
            if states(&before, v) != states(&self.model.global, v)
                && e.vm.as_ref().map(|r| Z::from(r.vmid)) != Some(v)
            {
                return Err(m(
                    &format!("VM {v} state"),
                    "(not given)".into(),
                    vm_text(v),
                ));
            }
        }
        let s = &mut self.summary;
        s.entries += 1;
        s.by_entry[e.entry as usize].1 += 1;
        s.pages += listed.len();
        s.leaves += leaves.len();
        s.vms += usize::from(e.vm.is_some());
        s.values += e.rec.len() + e.core.len();
        Ok(())
    }
}

/// The model's state after replaying every entry of `t`, digested as KCore digests its own
/// (what a trace's final line must give); the first disagreement if the entries do not agree.
pub fn model_digest(t: &Trace) -> Result<StateDigest, Box<Mismatch>> {
    let mut r = Replay::new(t.machine.clone());
    for (k, e) in t.entries.iter().enumerate() {
        r.step(k, e)?;
    }
    Ok(r.digest())
}

/// Replays a parsed trace; the summary, or the first disagreement.
pub fn replay(t: &Trace) -> Result<Summary, Box<Mismatch>> {
    let mut r = Replay::new(t.machine.clone());
    for (k, e) in t.entries.iter().enumerate() {
        r.step(k, e)?;
    }
    let n = t.entries.len();
    let fin = |field: &str, trace: String, model: String| {
        Box::new(Mismatch {
            index: n,
            line: t.fin.line,
            cpu: None,
            entry: "final".into(),
            field: field.into(),
            trace,
            model,
        })
    };
    if t.fin.entries != n as u64 {
        return Err(fin(
            "final.entries",
            t.fin.entries.to_string(),
            format!("{n} (entries replayed)"),
        ));
    }
    let halted = r.model.halted();
    if t.fin.halted != halted {
        return Err(fin(
            "final.halted",
            t.fin.halted.to_string(),
            halted.to_string(),
        ));
    }
    if let Some(have) = t.fin.digest {
        let want = r.digest();
        let parts = [
            ("pages", have.pages, want.pages),
            ("leaves", have.leaves, want.leaves),
            ("leaf_count", have.leaf_count, want.leaf_count),
            ("vms", have.vms, want.vms),
        ];
        for (name, h, w) in parts {
            if h != w {
                return Err(fin(
                    &format!("final.digest.{name}"),
                    format!("{h:#x}"),
                    format!("{w:#x} (the model's final state)"),
                ));
            }
        }
        r.summary.digest = Some(want.leaf_count);
    }
    r.summary.halted = halted;
    r.summary.distinct = t.distinct;
    r.summary.concurrent = t.concurrent;
    Ok(r.summary)
}

/// Parses and replays `text`.
pub fn check(text: &str) -> Result<Summary, Failure> {
    let t = parse(text).map_err(Failure::Malformed)?;
    replay(&t).map_err(Failure::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_pairs_parse_or_name_the_field() {
        assert_eq!(hex(&Value::from("0x1f"), 3, "x0"), Ok(0x1f));
        let e = hex(&Value::from("1f"), 3, "x0").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (3, "x0"));
        let v: Value = serde_json::from_str(r#"[[1,"0x2"],[0,"0x3"]]"#).unwrap();
        assert_eq!(pairs(&v, 1, "rec"), Ok(vec![(1, 2), (0, 3)]));
        let v: Value = serde_json::from_str(r#"[[1]]"#).unwrap();
        assert_eq!(pairs(&v, 1, "rec").unwrap_err().field, "rec[0]");
    }
}
