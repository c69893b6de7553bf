//! The scenario file format (ARCHITECTURE.md, "Scenario files"): public and stable.
//!
//! JSON; integers are numbers or strings (`"0x..."` or decimal); unknown keys are errors.
//! Parsing never panics: every error is one line naming the file, the step (with its line)
//! and the field.

use serde_json::{Map, Value};
use std::fmt;

/// How a step ended (ARCHITECTURE.md output format), on any engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Halt,
    Undefined,
    Fault,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Halt => "halt",
            Outcome::Undefined => "undefined",
            Outcome::Fault => "fault",
        }
    }
}

/// An error in a scenario file; `Display` is the one-line message the CLI prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: String,
    pub step: Option<usize>,
    pub line: Option<usize>,
    pub field: Option<String>,
    pub msg: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        match (self.step, self.line) {
            (Some(s), Some(l)) => write!(f, "step {s} (line {l}): ")?,
            (Some(s), None) => write!(f, "step {s}: ")?,
            (None, Some(l)) => write!(f, "line {l}: ")?,
            (None, None) => {}
        }
        if let Some(field) = &self.field {
            write!(f, "field \"{field}\": ")?;
        }
        write!(f, "{}", self.msg)
    }
}

impl std::error::Error for ScenarioError {}

/// The host hypercalls by name (spec-digest §2.6 without `HVC_`); numbers depend on the
/// profile and are resolved by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HvcName {
    TimerSetCntvoff,
    ClearVmS2Range,
    SetBootInfo,
    RemapVmImage,
    VerifyVmImage,
    SmmuFreePgd,
    SmmuAllocPgd,
    SmmuLpaeMap,
    SmmuLpaeIovaToPhys,
    SmmuClear,
    PhysAddrIoremap,
    RegisterKvm,
    RegisterVcpu,
    EncryptBuf,
    DecryptBuf,
    SaveCryptVcpu,
    LoadCryptVcpu,
    VcpuRun,
}

impl HvcName {
    pub const ALL: [(HvcName, &'static str); 18] = [
        (HvcName::TimerSetCntvoff, "TIMER_SET_CNTVOFF"),
        (HvcName::ClearVmS2Range, "CLEAR_VM_S2_RANGE"),
        (HvcName::SetBootInfo, "SET_BOOT_INFO"),
        (HvcName::RemapVmImage, "REMAP_VM_IMAGE"),
        (HvcName::VerifyVmImage, "VERIFY_VM_IMAGE"),
        (HvcName::SmmuFreePgd, "SMMU_FREE_PGD"),
        (HvcName::SmmuAllocPgd, "SMMU_ALLOC_PGD"),
        (HvcName::SmmuLpaeMap, "SMMU_LPAE_MAP"),
        (HvcName::SmmuLpaeIovaToPhys, "SMMU_LPAE_IOVA_TO_PHYS"),
        (HvcName::SmmuClear, "SMMU_CLEAR"),
        (HvcName::PhysAddrIoremap, "PHYS_ADDR_IOREMAP"),
        (HvcName::RegisterKvm, "REGISTER_KVM"),
        (HvcName::RegisterVcpu, "REGISTER_VCPU"),
        (HvcName::EncryptBuf, "ENCRYPT_BUF"),
        (HvcName::DecryptBuf, "DECRYPT_BUF"),
        (HvcName::SaveCryptVcpu, "SAVE_CRYPT_VCPU"),
        (HvcName::LoadCryptVcpu, "LOAD_CRYPT_VCPU"),
        (HvcName::VcpuRun, "VCPU_RUN"),
    ];

    pub fn parse(s: &str) -> Option<HvcName> {
        let s = s.strip_prefix("HVC_").unwrap_or(s);
        Self::ALL.iter().find(|(_, n)| *n == s).map(|(h, _)| *h)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(h, _)| *h == self)
            .map(|(_, n)| *n)
            .unwrap_or("?")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvcCall {
    Named(HvcName),
    Raw(i128),
}

impl fmt::Display for HvcCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HvcCall::Named(n) => write!(f, "{}", n.name()),
            HvcCall::Raw(v) => write!(f, "{v:#x}"),
        }
    }
}

/// The host's proposed stage-2 mapping for a vCPU's pending fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapProposal {
    pub gpa: i128,
    /// The descriptor (given as `pte`, or `pfn * 4096`).
    pub pte: i128,
    pub level: i128,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareOp {
    Grant,
    Revoke,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Hvc {
        call: HvcCall,
        args: Vec<i128>,
    },
    VcpuRun {
        vm: i128,
        vcpu: i128,
        map: Option<MapProposal>,
        pc: Option<i128>,
    },
    HostLoad {
        addr: i128,
    },
    HostStore {
        addr: i128,
        value: i128,
    },
    GuestLoad {
        gpa: i128,
    },
    /// The running VM fetches an instruction at `gpa` (an instruction abort if unmapped).
    GuestFetch {
        gpa: i128,
    },
    GuestStore {
        gpa: i128,
        value: i128,
    },
    GuestHvc {
        op: ShareOp,
        gpa: i128,
        size: i128,
    },
    GuestPsciSystemOff,
    GuestWfx,
    GuestSysreg,
    /// A guest instruction that traps to EL2 with exception class `ec` (ESR_EL2.EC, 0..63):
    /// a BRK (0x3C), an SMC (0x17), an unknown instruction (0x00), SVE (0x19), PAuth (0x09).
    GuestException {
        ec: i128,
    },
    Irq,
    /// A device's access: the device with stream ID `stream` (default: `cb`), which the
    /// scenario says belongs to bank `cb` of SMMU `smmu` (the model translates through
    /// that bank; the machine routes the stream by the SMMU's registers).
    DmaLoad {
        smmu: i128,
        cb: i128,
        iova: i128,
        stream: Option<i128>,
    },
    DmaStore {
        smmu: i128,
        cb: i128,
        iova: i128,
        value: i128,
        stream: Option<i128>,
    },
    /// A host-model macro action (`create_vm`, `run`, ...), carried out by `host::HostModel`.
    Host(crate::guest::HostMacro),
}

impl Action {
    /// The step kind as it appears in the output (`"hvc"`, `"vcpu_run"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Hvc { .. } => "hvc",
            Action::VcpuRun { .. } => "vcpu_run",
            Action::HostLoad { .. } => "host_load",
            Action::HostStore { .. } => "host_store",
            Action::GuestLoad { .. } => "guest_load",
            Action::GuestFetch { .. } => "guest_fetch",
            Action::GuestStore { .. } => "guest_store",
            Action::GuestHvc { .. } => "guest_hvc",
            Action::GuestPsciSystemOff => "guest_psci",
            Action::GuestWfx => "guest_wfx",
            Action::GuestSysreg => "guest_sysreg",
            Action::GuestException { .. } => "guest_exception",
            Action::Irq => "irq",
            Action::DmaLoad { .. } => "dma_load",
            Action::DmaStore { .. } => "dma_store",
            Action::Host(_) => "host",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub index: usize,
    /// 1-based line of the step in the file, when known.
    pub line: Option<usize>,
    pub cpu: i128,
    /// Values for the data-oracle stream this step reads, in order.
    pub oracle: Vec<i128>,
    /// Bytes a `host_load`/`host_store` accesses (ESR_EL2.SAS; default 8). RAM is accessed
    /// as the 8-byte word holding the address; a device register at exactly this width.
    pub size: Option<u8>,
    pub action: Action,
}

impl Step {
    /// Bytes of the step's host access (8 unless the step says otherwise).
    pub fn access_size(&self) -> u64 {
        self.size.map_or(8, u64::from)
    }
}

/// Every scenario file (`*.json`) under `dir`, recursively, sorted.
pub fn files_under(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

impl Step {
    /// A step made in code (not read from a file): index 0, no line, no oracle values.
    pub fn new(cpu: i128, action: Action) -> Step {
        Step {
            index: 0,
            line: None,
            cpu,
            oracle: vec![],
            size: None,
            action,
        }
    }
}

/// The `machine` object; absent fields take the engine's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MachineSpec {
    pub cpus: Option<i128>,
    pub ram_base: Option<i128>,
    pub ram_mib: Option<i128>,
    pub kcore_mib: Option<i128>,
    pub smmus: Option<i128>,
    /// Declared device ranges `[base, size]`; `None` = the default (SMMU windows, UART).
    pub mmio: Option<Vec<(i128, i128)>>,
    /// How the SMMUs come out of reset (`"clean"` or `{"hostile": seed}`, issue 22);
    /// `None` = clean.
    pub smmu_reset: Option<crate::smmu::SmmuReset>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// `"seed"` or `"arm"`; `None` = the engine's default.
    pub profile: Option<String>,
    pub machine: MachineSpec,
    pub steps: Vec<Step>,
    /// Expected outcomes, keyed by profile (checked by the test suite, ignored by `run`).
    pub expect: Option<Value>,
    /// An attack scenario's expected defence: its last step halts KCore (`halt`), faults in
    /// the MMU/SMMU (`fault`), or completes without effect (`refused`).
    pub defence: Option<String>,
}

const STEP_ACTIONS: [&str; 16] = [
    "hvc",
    "vcpu_run",
    "host_load",
    "host_store",
    "guest_load",
    "guest_store",
    "guest_fetch",
    "guest_hvc",
    "guest_psci",
    "guest_wfx",
    "guest_sysreg",
    "guest_exception",
    "irq",
    "dma_load",
    "dma_store",
    "host",
];

struct Ctx<'a> {
    file: &'a str,
    step: Option<usize>,
    line: Option<usize>,
}

impl Ctx<'_> {
    fn err(&self, field: Option<&str>, msg: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.file.to_string(),
            step: self.step,
            line: self.line,
            field: field.map(str::to_string),
            msg: msg.into(),
        }
    }

    fn int(&self, field: &str, v: &Value) -> Result<i128, ScenarioError> {
        let bad = || {
            self.err(
                Some(field),
                format!("expected an integer (number or \"0x...\" string), got {v}"),
            )
        };
        match v {
            Value::Number(n) => n
                .as_u64()
                .map(i128::from)
                .or_else(|| n.as_i64().map(i128::from))
                .ok_or_else(bad),
            Value::String(s) => {
                let t = s.trim().replace('_', "");
                let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                    Some(h) => i128::from_str_radix(h, 16),
                    None => t.parse::<i128>(),
                };
                r.map_err(|_| bad())
            }
            _ => Err(bad()),
        }
    }

    /// A physical or intermediate-physical address: any 48-bit value.
    fn addr(&self, field: &str, v: &Value) -> Result<i128, ScenarioError> {
        let a = self.int(field, v)?;
        if !(0..1 << 48).contains(&a) {
            return Err(self.err(
                Some(field),
                format!("address {a:#x} is not a 48-bit address"),
            ));
        }
        Ok(a)
    }

    fn object<'v>(
        &self,
        field: &str,
        v: &'v Value,
        allowed: &[&str],
    ) -> Result<&'v Map<String, Value>, ScenarioError> {
        let m = v
            .as_object()
            .ok_or_else(|| self.err(Some(field), format!("expected an object, got {v}")))?;
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(self.err(
                    Some(field),
                    format!(
                        // Debug: a key with a control character stays on one line.
                        "unknown field {k:?} (expected one of: {})",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(m)
    }

    fn req(&self, m: &Map<String, Value>, obj: &str, key: &str) -> Result<i128, ScenarioError> {
        let v = m
            .get(key)
            .ok_or_else(|| self.err(Some(obj), format!("missing field \"{key}\"")))?;
        self.int(&format!("{obj}.{key}"), v)
    }

    fn req_addr(
        &self,
        m: &Map<String, Value>,
        obj: &str,
        key: &str,
    ) -> Result<i128, ScenarioError> {
        let v = m
            .get(key)
            .ok_or_else(|| self.err(Some(obj), format!("missing field \"{key}\"")))?;
        self.addr(&format!("{obj}.{key}"), v)
    }

    fn opt(
        &self,
        m: &Map<String, Value>,
        obj: &str,
        key: &str,
    ) -> Result<Option<i128>, ScenarioError> {
        m.get(key)
            .map(|v| self.int(&format!("{obj}.{key}"), v))
            .transpose()
    }

    fn ints(&self, field: &str, v: &Value, n: usize) -> Result<Vec<i128>, ScenarioError> {
        let a = v.as_array().ok_or_else(|| {
            self.err(
                Some(field),
                format!("expected an array of {n} integers, got {v}"),
            )
        })?;
        if a.len() != n {
            return Err(self.err(Some(field), format!("expected {n} values, got {}", a.len())));
        }
        a.iter().map(|x| self.int(field, x)).collect()
    }

    fn flag(&self, field: &str, v: &Value) -> Result<(), ScenarioError> {
        match v {
            Value::Bool(true) => Ok(()),
            _ => Err(self.err(Some(field), format!("expected true, got {v}"))),
        }
    }
}

/// Parses a scenario file's text. `file` names it in error messages.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let root: Value = serde_json::from_str(text).map_err(|e| ScenarioError {
        file: file.to_string(),
        step: None,
        line: Some(e.line()),
        field: None,
        msg: format!("invalid JSON: {e}"),
    })?;
    let ctx = Ctx {
        file,
        step: None,
        line: None,
    };
    let top = ctx.object(
        "(top level)",
        &root,
        &[
            "name",
            "description",
            "profile",
            "machine",
            "steps",
            "expect",
            "defence",
        ],
    )?;
    let name = match top.get("name") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(ctx.err(Some("name"), format!("expected a string, got {v}"))),
        None => return Err(ctx.err(Some("name"), "missing")),
    };
    let description = match top.get("description") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => return Err(ctx.err(Some("description"), format!("expected a string, got {v}"))),
    };
    let profile = match top.get("profile") {
        None => None,
        Some(Value::String(s)) if s == "seed" || s == "arm" => Some(s.clone()),
        Some(v) => {
            return Err(ctx.err(
                Some("profile"),
                format!("expected \"seed\" or \"arm\", got {v}"),
            ))
        }
    };
    let machine = match top.get("machine") {
        None => MachineSpec::default(),
        Some(v) => {
            let m = ctx.object(
                "machine",
                v,
                &[
                    "cpus",
                    "ram_base",
                    "ram_mib",
                    "kcore_mib",
                    "smmus",
                    "mmio",
                    "smmu_reset",
                ],
            )?;
            let smmu_reset = match m.get("smmu_reset") {
                None => None,
                Some(Value::String(s)) if s == "clean" => Some(crate::smmu::SmmuReset::Clean),
                Some(v @ Value::Object(_)) => {
                    let o = ctx.object("machine.smmu_reset", v, &["hostile"])?;
                    let seed = ctx.req(o, "machine.smmu_reset", "hostile")?;
                    let seed = u64::try_from(seed).map_err(|_| {
                        ctx.err(
                            Some("machine.smmu_reset.hostile"),
                            format!("expected a seed in 0..2^64, got {seed}"),
                        )
                    })?;
                    Some(crate::smmu::SmmuReset::Hostile(seed))
                }
                Some(v) => {
                    return Err(ctx.err(
                        Some("machine.smmu_reset"),
                        format!("expected \"clean\" or {{\"hostile\": seed}}, got {v}"),
                    ))
                }
            };
            let mmio = match m.get("mmio") {
                None => None,
                Some(v) => {
                    let ranges = v.as_array().ok_or_else(|| {
                        ctx.err(
                            Some("machine.mmio"),
                            format!("expected an array of [base, size] pairs, got {v}"),
                        )
                    })?;
                    let mut out = Vec::new();
                    for r in ranges {
                        let a = ctx.ints("machine.mmio", r, 2)?;
                        out.push((a[0], a[1]));
                    }
                    Some(out)
                }
            };
            MachineSpec {
                cpus: ctx.opt(m, "machine", "cpus")?,
                ram_base: ctx.opt(m, "machine", "ram_base")?,
                ram_mib: ctx.opt(m, "machine", "ram_mib")?,
                kcore_mib: ctx.opt(m, "machine", "kcore_mib")?,
                smmus: ctx.opt(m, "machine", "smmus")?,
                mmio,
                smmu_reset,
            }
        }
    };
    let defence = match top.get("defence") {
        None => None,
        Some(Value::String(s)) if ["halt", "fault", "refused"].contains(&s.as_str()) => {
            Some(s.clone())
        }
        Some(v) => {
            return Err(ctx.err(
                Some("defence"),
                format!("expected \"halt\", \"fault\" or \"refused\", got {v}"),
            ))
        }
    };
    let expect = match top.get("expect") {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(v) => return Err(ctx.err(Some("expect"), format!("expected an object, got {v}"))),
    };
    let raw_steps = match top.get("steps") {
        Some(Value::Array(a)) => a,
        Some(v) => return Err(ctx.err(Some("steps"), format!("expected an array, got {v}"))),
        None => return Err(ctx.err(Some("steps"), "missing")),
    };
    let lines = step_lines(text);
    let steps = raw_steps
        .iter()
        .enumerate()
        .map(|(i, v)| {
            parse_step(
                &Ctx {
                    file,
                    step: Some(i),
                    line: lines.get(i).copied(),
                },
                i,
                v,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Scenario {
        name,
        description,
        profile,
        machine,
        steps,
        expect,
        defence,
    })
}

fn parse_step(ctx: &Ctx, index: usize, v: &Value) -> Result<Step, ScenarioError> {
    let mut allowed: Vec<&str> = vec!["cpu", "oracle", "size"];
    allowed.extend(STEP_ACTIONS);
    let m = ctx.object("step", v, &allowed)?;
    let actions: Vec<&str> = STEP_ACTIONS
        .iter()
        .copied()
        .filter(|a| m.contains_key(*a))
        .collect();
    let key = match actions.as_slice() {
        [one] => *one,
        [] => {
            return Err(ctx.err(
                None,
                format!("no action (expected one of: {})", STEP_ACTIONS.join(", ")),
            ))
        }
        more => return Err(ctx.err(None, format!("more than one action: {}", more.join(", ")))),
    };
    let cpu = m
        .get("cpu")
        .map(|c| ctx.int("cpu", c))
        .transpose()?
        .unwrap_or(0);
    let oracle = match m.get("oracle") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| ctx.int("oracle", x))
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(ctx.err(
                Some("oracle"),
                format!("expected an array of integers, got {v}"),
            ))
        }
    };
    let size = match m.get("size") {
        None => None,
        Some(v) => {
            let n = ctx.int("size", v)?;
            if !matches!(key, "host_load" | "host_store") || ![1, 2, 4, 8].contains(&n) {
                return Err(ctx.err(
                    Some("size"),
                    format!("1, 2, 4 or 8 bytes, on a host_load or host_store, got {v}"),
                ));
            }
            Some(n as u8)
        }
    };
    let val = &m[key];
    let action = match key {
        "hvc" => {
            let a = val.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
                ctx.err(
                    Some("hvc"),
                    format!("expected [name or number, args...], got {val}"),
                )
            })?;
            if a.len() > 6 {
                return Err(ctx.err(
                    Some("hvc"),
                    format!("at most 5 arguments (x1..x5), got {}", a.len() - 1),
                ));
            }
            let call = match &a[0] {
                Value::String(s) if !s.trim_start().starts_with(|c: char| c.is_ascii_digit()) => {
                    HvcCall::Named(HvcName::parse(s).ok_or_else(|| {
                        ctx.err(Some("hvc"), format!("unknown hypercall name {s:?}"))
                    })?)
                }
                other => HvcCall::Raw(ctx.int("hvc", other)?),
            };
            let args = a[1..]
                .iter()
                .map(|x| ctx.int("hvc", x))
                .collect::<Result<_, _>>()?;
            Action::Hvc { call, args }
        }
        "vcpu_run" => {
            let r = ctx.object("vcpu_run", val, &["vm", "vcpu", "map", "pc"])?;
            let map = match r.get("map") {
                None => None,
                Some(mv) => {
                    let mm = ctx.object("vcpu_run.map", mv, &["gpa", "pfn", "pte", "level"])?;
                    let gpa = ctx.req(mm, "vcpu_run.map", "gpa")?;
                    let pte = match (
                        ctx.opt(mm, "vcpu_run.map", "pfn")?,
                        ctx.opt(mm, "vcpu_run.map", "pte")?,
                    ) {
                        (Some(pfn), None) => pfn * 4096,
                        (None, Some(pte)) => pte,
                        _ => {
                            return Err(ctx.err(
                                Some("vcpu_run.map"),
                                "give exactly one of \"pfn\" and \"pte\"",
                            ))
                        }
                    };
                    let level = ctx.opt(mm, "vcpu_run.map", "level")?.unwrap_or(3);
                    Some(MapProposal { gpa, pte, level })
                }
            };
            Action::VcpuRun {
                vm: ctx.req(r, "vcpu_run", "vm")?,
                vcpu: ctx.req(r, "vcpu_run", "vcpu")?,
                map,
                pc: ctx.opt(r, "vcpu_run", "pc")?,
            }
        }
        "host_load" => Action::HostLoad {
            addr: ctx.addr("host_load", val)?,
        },
        "guest_load" => Action::GuestLoad {
            gpa: ctx.addr("guest_load", val)?,
        },
        "guest_fetch" => Action::GuestFetch {
            gpa: ctx.addr("guest_fetch", val)?,
        },
        "host_store" => {
            let a = ctx.ints("host_store", val, 2)?;
            Action::HostStore {
                addr: ctx.addr("host_store", &val[0])?,
                value: a[1],
            }
        }
        "guest_store" => {
            let a = ctx.ints("guest_store", val, 2)?;
            Action::GuestStore {
                gpa: ctx.addr("guest_store", &val[0])?,
                value: a[1],
            }
        }
        "guest_hvc" => {
            let a = val.as_array().filter(|a| a.len() == 3).ok_or_else(|| {
                ctx.err(
                    Some("guest_hvc"),
                    format!("expected [\"GRANT\"|\"REVOKE\", gpa, size], got {val}"),
                )
            })?;
            let op = match a[0].as_str() {
                Some("GRANT") | Some("KVM_SET_DESC_PFN") => ShareOp::Grant,
                Some("REVOKE") | Some("KVM_UNSET_DESC_PFN") => ShareOp::Revoke,
                _ => return Err(ctx.err(Some("guest_hvc"), format!("unknown guest call {}", a[0]))),
            };
            Action::GuestHvc {
                op,
                gpa: ctx.int("guest_hvc", &a[1])?,
                size: ctx.int("guest_hvc", &a[2])?,
            }
        }
        "guest_psci" => match val.as_str() {
            Some("SYSTEM_OFF") => Action::GuestPsciSystemOff,
            _ => {
                return Err(ctx.err(
                    Some("guest_psci"),
                    format!("unknown PSCI call {val} (expected \"SYSTEM_OFF\")"),
                ))
            }
        },
        "guest_wfx" => {
            ctx.flag("guest_wfx", val)?;
            Action::GuestWfx
        }
        "guest_sysreg" => {
            ctx.flag("guest_sysreg", val)?;
            Action::GuestSysreg
        }
        "guest_exception" => {
            let r = ctx.object("guest_exception", val, &["ec"])?;
            let ec = ctx.req(r, "guest_exception", "ec")?;
            if !(0..64).contains(&ec) {
                return Err(ctx.err(
                    Some("guest_exception"),
                    format!("ec {ec}: an exception class is 0 to 63"),
                ));
            }
            Action::GuestException { ec }
        }
        "irq" => {
            ctx.flag("irq", val)?;
            Action::Irq
        }
        "dma_load" => {
            let r = ctx.object("dma_load", val, &["smmu", "cb", "iova", "stream"])?;
            Action::DmaLoad {
                smmu: ctx.req(r, "dma_load", "smmu")?,
                cb: ctx.req(r, "dma_load", "cb")?,
                iova: ctx.req_addr(r, "dma_load", "iova")?,
                stream: ctx.opt(r, "dma_load", "stream")?,
            }
        }
        "dma_store" => {
            let r = ctx.object("dma_store", val, &["smmu", "cb", "iova", "value", "stream"])?;
            Action::DmaStore {
                smmu: ctx.req(r, "dma_store", "smmu")?,
                cb: ctx.req(r, "dma_store", "cb")?,
                iova: ctx.req_addr(r, "dma_store", "iova")?,
                value: ctx.req(r, "dma_store", "value")?,
                stream: ctx.opt(r, "dma_store", "stream")?,
            }
        }
        _ => {
            let r = ctx.object(
                "host",
                val,
                &["create_vm", "run", "share", "assign_device", "destroy_vm"],
            )?;
            if r.len() != 1 {
                return Err(ctx.err(Some("host"), "expected exactly one macro action"));
            }
            let m = crate::guest::parse_macro(val).map_err(|(f, msg)| ctx.err(Some(&f), msg))?;
            Action::Host(m)
        }
    };
    Ok(Step {
        index,
        line: ctx.line,
        cpu,
        oracle,
        size,
        action,
    })
}

/// The 1-based line on which each element of the top-level `"steps"` array starts, found
/// by a small scan of the (already valid) JSON text.
fn step_lines(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut depth, mut line, mut i) = (0usize, 1usize, 0usize);
    let mut in_steps_at: Option<usize> = None;
    let mut last_key: Option<String> = None;
    let mut expect_elem = false;
    while i < b.len() {
        match b[i] {
            b'\n' => line += 1,
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let s = &text[start..i.min(text.len())];
                if expect_elem {
                    out.push(line);
                    expect_elem = false;
                }
                if depth == 1 {
                    last_key = Some(s.to_string());
                }
            }
            b'{' | b'[' => {
                if expect_elem {
                    out.push(line);
                    expect_elem = false;
                }
                depth += 1;
                if b[i] == b'['
                    && depth == 2
                    && last_key.as_deref() == Some("steps")
                    && in_steps_at.is_none()
                {
                    in_steps_at = Some(depth);
                    expect_elem = true;
                }
            }
            b'}' | b']' => {
                if in_steps_at == Some(depth) {
                    in_steps_at = None;
                    expect_elem = false;
                }
                depth = depth.saturating_sub(1);
            }
            b',' if in_steps_at == Some(depth) => expect_elem = true,
            c if expect_elem && !c.is_ascii_whitespace() => {
                out.push(line);
                expect_elem = false;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{ "name": "t", "profile": "arm",
  "machine": { "cpus": 2, "ram_base": "0x40000000" },
  "steps": [
    { "cpu": 0, "hvc": ["REGISTER_KVM"] },
    { "cpu": 1, "vcpu_run": { "vm": 1, "vcpu": 0, "map": { "gpa": "0x80000000", "pfn": "0x48010" } } },
    { "guest_hvc": ["GRANT", "0x80000000", 4096] },
    { "dma_store": { "smmu": 0, "cb": 1, "iova": "0x1000", "value": 9 } },
    { "hvc": [99, 1, 2] }
  ] }"#;

    fn err_of(text: &str) -> String {
        parse("x.json", text).unwrap_err().to_string()
    }

    #[test]
    fn the_smmu_reset_is_clean_or_hostile_with_a_seed() {
        use crate::smmu::SmmuReset;
        let with = |m: &str| {
            parse(
                "x.json",
                &format!(r#"{{"name": "t", "machine": {{{m}}}, "steps": []}}"#),
            )
        };
        assert_eq!(with("").unwrap().machine.smmu_reset, None);
        assert_eq!(
            with(r#""smmu_reset": "clean""#).unwrap().machine.smmu_reset,
            Some(SmmuReset::Clean)
        );
        assert_eq!(
            with(r#""smmu_reset": {"hostile": "0x2a"}"#)
                .unwrap()
                .machine
                .smmu_reset,
            Some(SmmuReset::Hostile(42))
        );
        for bad in [
            r#""smmu_reset": "dirty""#,
            r#""smmu_reset": {"hostile": -1}"#,
            r#""smmu_reset": {"seed": 1}"#,
        ] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains("machine.smmu_reset"), "{e}");
        }
    }

    #[test]
    fn parses_every_kind_of_value() {
        let s = parse("x.json", GOOD).unwrap();
        assert_eq!(s.machine.ram_base, Some(0x4000_0000));
        assert_eq!(s.steps.len(), 5);
        assert_eq!(
            s.steps[0].action,
            Action::Hvc {
                call: HvcCall::Named(HvcName::RegisterKvm),
                args: vec![]
            }
        );
        assert_eq!(
            s.steps[1].action,
            Action::VcpuRun {
                vm: 1,
                vcpu: 0,
                map: Some(MapProposal {
                    gpa: 0x8000_0000,
                    pte: 0x48010 * 4096,
                    level: 3
                }),
                pc: None
            }
        );
        assert_eq!(s.steps[1].cpu, 1);
        assert_eq!(
            s.steps[4].action,
            Action::Hvc {
                call: HvcCall::Raw(99),
                args: vec![1, 2]
            }
        );
        assert_eq!(
            s.steps.iter().map(|s| s.line).collect::<Vec<_>>(),
            vec![Some(4), Some(5), Some(6), Some(7), Some(8)]
        );
    }

    #[test]
    fn bad_json_names_the_line() {
        let e = err_of("{ \"name\": \"t\",\n \"steps\": [ }");
        assert!(e.starts_with("x.json: line 2: invalid JSON"), "{e}");
    }

    #[test]
    fn unknown_key_names_the_step_and_field() {
        let t = GOOD.replace("\"vcpu\": 0, \"map\"", "\"vcpuu\": 0, \"map\"");
        assert_eq!(
            err_of(&t),
            "x.json: step 1 (line 5): field \"vcpu_run\": unknown field \"vcpuu\" (expected one of: vm, vcpu, map, pc)"
        );
        let t = GOOD.replace("\"name\": \"t\"", "\"name\": \"t\", \"colour\": 1");
        assert!(err_of(&t).contains("unknown field \"colour\""));
        // A key with a newline in it (the scenario_parser fuzz target's find): one line.
        let t = GOOD.replace("\"name\": \"t\"", "\"name\": \"t\", \"\\nname\": 1");
        let e = err_of(&t);
        assert!(
            !e.contains('\n') && e.contains("unknown field \"\\nname\""),
            "{e}"
        );
    }

    #[test]
    fn unknown_hypercall_name_names_the_step() {
        let t = GOOD.replace("REGISTER_KVM", "REGISTER_KVMM");
        assert_eq!(
            err_of(&t),
            "x.json: step 0 (line 4): field \"hvc\": unknown hypercall name \"REGISTER_KVMM\""
        );
    }

    #[test]
    fn missing_field_names_the_step_and_field() {
        let t = GOOD.replace("\"vm\": 1, ", "");
        assert_eq!(
            err_of(&t),
            "x.json: step 1 (line 5): field \"vcpu_run\": missing field \"vm\""
        );
        let t = GOOD.replace("\"smmu\": 0, ", "");
        assert_eq!(
            err_of(&t),
            "x.json: step 3 (line 7): field \"dma_store\": missing field \"smmu\""
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        assert!(err_of(&GOOD.replace("\"0x48010\"", "\"0xZZ\"")).contains("expected an integer"));
        assert!(err_of(&GOOD.replace("\"GRANT\"", "\"SHARE\"")).contains("unknown guest call"));
        assert!(err_of(&GOOD.replace(
            "{ \"cpu\": 0, \"hvc\"",
            "{ \"cpu\": 0, \"irq\": true, \"hvc\""
        ))
        .contains("more than one action"));
        assert!(
            err_of(&GOOD.replace("\"profile\": \"arm\"", "\"profile\": \"x86\""))
                .contains("field \"profile\"")
        );
        assert!(
            err_of(&GOOD.replace("[99, 1, 2]", "[99, 1, 2, 3, 4, 5, 6]"))
                .contains("at most 5 arguments")
        );
    }
}
