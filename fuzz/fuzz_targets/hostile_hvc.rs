//! A hostile host, coverage-guided: the fuzzer's bytes choose a sequence of hypercalls (any
//! number, arguments near the checks' edges or anything), host loads and stores, vCPU runs
//! and guest steps, on a machine with a running VM and a VM being built. Each step runs on
//! the core beside the model: they must agree after every step and the invariants hold.
#![no_main]

use arbitrary::{Result, Unstructured};
use corevisor_check::lockstep::Lockstep;
use corevisor_sim::scenario::{parse, Action, HvcCall, Step};
use corevisor_spec::profile::ProfileKind;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const MACHINE: &str = r#"{"name": "fuzz", "profile": "arm",
  "machine": {"cpus": 2, "ram_base": "0x40000000", "ram_mib": 36, "kcore_mib": 24}, "steps": []}"#;

fn hvc(num: i128, args: Vec<i128>) -> Action {
    Action::Hvc {
        call: HvcCall::Raw(num),
        args,
    }
}

/// VM 1 verified and running on CPU 1; VM 2 registered with one image page.
fn base() -> &'static Lockstep {
    static BASE: OnceLock<Lockstep> = OnceLock::new();
    BASE.get_or_init(|| {
        let sc = parse("fuzz.json", MACHINE).unwrap();
        let mut l = Lockstep::for_scenario(&sc, Some(ProfileKind::Arm)).unwrap();
        let run = Action::VcpuRun {
            vm: 1,
            vcpu: 0,
            map: None,
            pc: None,
        };
        let setup = [
            (0, hvc(13, vec![])),
            (0, hvc(14, vec![1, 0])),
            (0, hvc(10, vec![1, 0x8000_0000, 4096])),
            (0, hvc(11, vec![1, 0x40200, 0])),
            (0, hvc(12, vec![1])),
            (1, run),
            (0, hvc(13, vec![])),
            (0, hvc(14, vec![2, 0])),
            (0, hvc(10, vec![2, 0x8000_0000, 4096])),
            (0, hvc(11, vec![2, 0x40400, 0])),
        ];
        for (cpu, a) in setup {
            let r = l.step(&Step::new(cpu, a)).unwrap();
            assert!(r.mismatches.is_empty(), "setup: {:?}", r.mismatches);
        }
        l
    })
}

/// An argument near the edges the checks use, or anything.
fn arg(u: &mut Unstructured) -> Result<i128> {
    const EDGES: [i128; 12] = [
        0x4020_0000,
        0x4040_0000,
        0x8000_0000,
        0x0B00_0000,
        0x0900_0000,
        (1 << 40) - 1,
        1 << 40,
        (1 << 48) - 1,
        1 << 48,
        (1 << 28) - 1,
        1 << 28,
        0x4180_0000,
    ];
    Ok(match u.int_in_range(0..=3)? {
        0 => u.int_in_range(0..=19)?,
        1 => *u.choose(&EDGES)?,
        2 => u.arbitrary::<u64>()? as i128,
        _ => 0x4000_0000 + (u.int_in_range(0..=0x23FFu64)? as i128) * 4096,
    })
}

fn step(u: &mut Unstructured) -> Result<Step> {
    Ok(match u.int_in_range(0..=5)? {
        0..=2 => {
            let num = u.int_in_range(0..=31)?;
            let n = u.int_in_range(0..=6)?;
            let mut args = (0..n).map(|_| arg(u)).collect::<Result<Vec<_>>>()?;
            // A legal size means one step per page (ioremap, clear): keep it below 1 MiB.
            let size_arg = match num {
                28 => Some(3),
                9 => Some(2),
                _ => None,
            };
            if let Some(a) = size_arg.and_then(|i| args.get_mut(i)) {
                *a &= 0xF_FFFF;
            }
            Step::new(0, hvc(num as i128, args))
        }
        3 => Step::new(
            0,
            Action::HostLoad {
                addr: arg(u)? & ((1 << 48) - 1) & !0xFFF,
            },
        ),
        4 => Step::new(
            0,
            Action::HostStore {
                addr: arg(u)? & ((1 << 48) - 1) & !0xFFF,
                value: u.arbitrary::<u64>()? as i128,
            },
        ),
        _ => Step::new(
            1,
            Action::GuestLoad {
                gpa: 0x8000_0000 + u.int_in_range(0..=3i128)? * 4096,
            },
        ),
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut l = base().clone();
    for _ in 0..16 {
        let Ok(st) = step(&mut u) else { return };
        let r = l.step(&st).expect("a generated step is well formed");
        assert!(
            r.mismatches.is_empty(),
            "{}: {:?}",
            r.model.what,
            r.mismatches
        );
        // abs(core) = model, so the model's invariants are the core's.
        assert!(
            r.model.broken.is_empty(),
            "{}: invariants {:?}",
            r.model.what,
            r.model.broken
        );
        if l.core.core.halted() {
            return;
        }
    }
});
