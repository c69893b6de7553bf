//! The built-in guest programs and the `host` macro actions a scenario names, as data (their
//! parsing included). Below `scenario`, which parses a `host` step with [`parse_macro`], and
//! `host`, which carries the actions out; `host` re-exports all of this at its old paths.

use serde_json::Value;

/// Where images load in every VM, and where a guest's data pages are.
pub const LOAD_ADDR: u64 = 0x8000_0000;
pub const DATA_GPA: u64 = 0x8040_0000;
/// The IOVA a VM's assigned device uses.
pub const DEVICE_IOVA: u64 = 0x9000_0000;

/// One step of a guest program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestOp {
    Load(u64),
    /// Store a constant, or the running sum of every value loaded so far.
    Store(u64, Option<u64>),
    Grant(u64, u64),
    Revoke(u64, u64),
    Wfx,
    PowerOff,
}

/// A built-in guest program: its image (word 0 of each image page) and what it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub name: &'static str,
    pub image: Vec<u64>,
    pub ops: Vec<GuestOp>,
}

/// `demo`: sums word 0 of its four image pages, writes the checksum to a data page (the
/// first touch faults; the host serves it), shares that page with the host, powers off.
/// `share`: writes a request into a data page, shares it, waits (WFx) for the host's
/// reply, reads it, unshares, powers off. `poweroff`: powers off at once.
pub fn program(name: &str) -> Option<Program> {
    use GuestOp::*;
    Some(match name {
        "demo" => Program {
            name: "demo",
            image: vec![0x1111, 0x2222, 0x3333, 0x4444],
            ops: vec![
                Load(LOAD_ADDR),
                Load(LOAD_ADDR + 0x1000),
                Load(LOAD_ADDR + 0x2000),
                Load(LOAD_ADDR + 0x3000),
                Store(DATA_GPA, None),
                Grant(DATA_GPA, 4096),
                Wfx,
                PowerOff,
            ],
        },
        "share" => Program {
            name: "share",
            image: vec![0x0053_4841_5245], // "SHARE"
            ops: vec![
                Store(DATA_GPA, Some(0x0072_6571_7565_7374)), // "request"
                Grant(DATA_GPA, 4096),
                Wfx,
                Load(DATA_GPA),
                Revoke(DATA_GPA, 4096),
                PowerOff,
            ],
        },
        "poweroff" => Program {
            name: "poweroff",
            image: vec![0x0FF],
            ops: vec![PowerOff],
        },
        _ => return None,
    })
}

/// A `host` macro action, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMacro {
    CreateVm {
        vcpus: u32,
        image: String,
        tamper: bool,
        device: Option<(u32, u32)>,
    },
    Run {
        vm: u32,
        vcpu: u32,
        steps: Option<u32>,
    },
    Share {
        vm: u32,
        gpa: u64,
        pages: u32,
    },
    AssignDevice {
        smmu: u32,
        cb: u32,
        vm: u32,
    },
    DestroyVm {
        vm: u32,
    },
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s
            .strip_prefix("0x")
            .map_or_else(|| s.parse().ok(), |h| u64::from_str_radix(h, 16).ok()),
        _ => None,
    }
}

/// Parses `{"create_vm": {...}}` etc.; errors name the field.
pub fn parse_macro(v: &Value) -> Result<HostMacro, (String, String)> {
    let (name, body) = v
        .as_object()
        .and_then(|o| o.iter().next())
        .ok_or(("host".to_string(), "expected one macro action".to_string()))?;
    let empty = serde_json::Map::new();
    let o = body.as_object().unwrap_or(&empty);
    let allowed: &[&str] = match name.as_str() {
        "create_vm" => &["vcpus", "image", "tamper", "device"],
        "run" => &["vm", "vcpu", "steps"],
        "share" => &["vm", "gpa", "pages"],
        "assign_device" => &["smmu", "cb", "vm"],
        "destroy_vm" => &["vm"],
        _ => return Err(("host".into(), format!("unknown macro action {name:?}"))),
    };
    if !body.is_object() {
        return Err((format!("host.{name}"), "expected an object".into()));
    }
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err((format!("host.{name}.{k}"), "unknown key".into()));
    }
    let num = |k: &str, default: Option<u64>, max: u64| -> Result<u64, (String, String)> {
        let field = format!("host.{name}.{k}");
        match o.get(k) {
            None => default.ok_or((field, "missing".into())),
            Some(v) => match int(v) {
                Some(x) if x <= max => Ok(x),
                _ => Err((field, format!("expected an integer up to {max:#x}"))),
            },
        }
    };
    let small = u32::MAX as u64;
    Ok(match name.as_str() {
        "create_vm" => {
            let image = match o.get("image") {
                None => "demo".to_string(),
                Some(Value::String(s)) if program(s).is_some() => s.clone(),
                Some(_) => {
                    return Err((
                        "host.create_vm.image".into(),
                        "expected a built-in guest program: demo, share or poweroff".into(),
                    ))
                }
            };
            let tamper = match o.get("tamper") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err((
                        "host.create_vm.tamper".into(),
                        "expected true or false".into(),
                    ))
                }
            };
            let device = match o.get("device") {
                None => None,
                Some(Value::Object(d)) => {
                    let g = |k: &str| d.get(k).and_then(int).filter(|&x| x < 8);
                    match (g("smmu"), g("cb")) {
                        (Some(s), Some(c)) if d.len() == 2 => Some((s as u32, c as u32)),
                        _ => {
                            return Err((
                                "host.create_vm.device".into(),
                                "expected {\"smmu\": n, \"cb\": n}".into(),
                            ))
                        }
                    }
                }
                Some(_) => {
                    return Err(("host.create_vm.device".into(), "expected an object".into()))
                }
            };
            HostMacro::CreateVm {
                vcpus: num("vcpus", Some(1), 8)? as u32,
                image,
                tamper,
                device,
            }
        }
        "run" => HostMacro::Run {
            vm: num("vm", None, small)? as u32,
            vcpu: num("vcpu", Some(0), small)? as u32,
            steps: o
                .get("steps")
                .map(|_| num("steps", None, small))
                .transpose()?
                .map(|s| s as u32),
        },
        "share" => HostMacro::Share {
            vm: num("vm", None, small)? as u32,
            gpa: num("gpa", Some(DATA_GPA), u64::MAX)?,
            pages: num("pages", Some(1), 512)? as u32,
        },
        "assign_device" => HostMacro::AssignDevice {
            smmu: num("smmu", None, small)? as u32,
            cb: num("cb", None, small)? as u32,
            vm: num("vm", None, small)? as u32,
        },
        _ => HostMacro::DestroyVm {
            vm: num("vm", None, small)? as u32,
        },
    })
}
