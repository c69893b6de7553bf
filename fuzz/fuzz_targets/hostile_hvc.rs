//! A hostile host where the isolation holes live, coverage-guided. The fuzzer's bytes make
//! every choice of the soak's steered generator (`corevisor_check::soak::explore`: up to
//! three VMs at once with two vCPUs on two CPUs, power-off from one vCPU while another runs,
//! reclaim and reuse of the pages by another VM, banks mapping a VM's RAM at IOVA = GPA and
//! never freed, ioremap of every declared device range, images remapped out of order or
//! scattered, DMA by the devices of live and dead VMs); the bytes left over become raw
//! hypercalls (any number, arguments near the checks' edges or anything), host loads and
//! stores and guest loads on the machine that sequence left. Every step runs on the core
//! beside the model: they must agree after every step and the invariants hold.
#![no_main]

use arbitrary::{Result, Unstructured};
use corevisor_check::lockstep::Lockstep;
use corevisor_check::soak::{explore, Rng};
use corevisor_sim::scenario::{Action, HvcCall, Step};
use libfuzzer_sys::fuzz_target;

fn hvc(num: i128, args: Vec<i128>) -> Action {
    Action::Hvc {
        call: HvcCall::Raw(num),
        args,
    }
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

/// A CPU where the host runs (`host`) or where a vCPU runs, if any.
fn cpu_in(l: &Lockstep, host: bool) -> Option<i128> {
    (0..l.model.cpus.len())
        .find(|&c| {
            let k = &l.model.cpus[c];
            !k.icore && k.ihost == host
        })
        .map(|c| c as i128)
}

/// A raw step on the machine `l`: `None` when no CPU is in the mode it needs.
fn step(u: &mut Unstructured, l: &Lockstep) -> Result<Option<Step>> {
    let (host, guest) = (cpu_in(l, true), cpu_in(l, false));
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
            host.map(|c| Step::new(c, hvc(num as i128, args)))
        }
        3 => {
            let addr = arg(u)? & ((1 << 48) - 1) & !0xFFF;
            host.map(|c| Step::new(c, Action::HostLoad { addr }))
        }
        4 => {
            let addr = arg(u)? & ((1 << 48) - 1) & !0xFFF;
            let value = u.arbitrary::<u64>()? as i128;
            host.map(|c| Step::new(c, Action::HostStore { addr, value }))
        }
        _ => {
            let gpa = 0x8000_0000 + u.int_in_range(0..=3i128)? * 4096;
            guest.map(|c| Step::new(c, Action::GuestLoad { gpa }))
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let mut r = Rng::from_bytes(data);
    let ops = 4 + r.below(28);
    let (mut l, failed) = explore(2, &mut r, ops);
    if let Some(why) = failed {
        panic!("steered sequence: {why:?}");
    }
    if l.core.core.halted() {
        return;
    }
    let mut u = Unstructured::new(&data[r.consumed().min(data.len())..]);
    for _ in 0..16 {
        let Ok(st) = step(&mut u, &l) else { return };
        let Some(st) = st else { continue };
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
