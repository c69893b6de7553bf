//! A hostile host: every hypercall number with arbitrary 64-bit arguments (and arbitrary
//! register and memory values around them), on a machine with a verified, running VM and a
//! VM being built. KCore must never crash; it must do exactly what the spec says
//! (refuse by halting, or act), which the model beside it checks after every step.

use corevisor_check::lockstep::Lockstep;
use corevisor_sim::scenario::{parse, Action, HvcCall, Step};
use corevisor_spec::profile::ProfileKind;
use proptest::prelude::*;

/// A small machine (16 MiB of RAM, the last 4 MiB KCore's), so each step's comparison is cheap.
const MACHINE: &str = r#"{"name": "hostile", "profile": "arm",
  "machine": {"cpus": 2, "ram_base": "0x40000000", "ram_mib": 36, "kcore_mib": 24}, "steps": []}"#;

fn hvc(num: i128, args: Vec<i128>) -> Action {
    Action::Hvc {
        call: HvcCall::Raw(num),
        args,
    }
}

/// VM 1 verified and running on CPU 1; VM 2 registered, one image page remapped.
fn setup() -> Vec<Step> {
    [
        (0, hvc(13, vec![])),
        (0, hvc(14, vec![1, 0])),
        (0, hvc(10, vec![1, 0x8000_0000, 4096])),
        (0, hvc(11, vec![1, 0x40200, 0])),
        (0, hvc(12, vec![1])),
        (
            1,
            Action::VcpuRun {
                vm: 1,
                vcpu: 0,
                map: None,
                pc: None,
            },
        ),
        (0, hvc(13, vec![])),
        (0, hvc(14, vec![2, 0])),
        (0, hvc(10, vec![2, 0x8000_0000, 4096])),
        (0, hvc(11, vec![2, 0x40400, 0])),
    ]
    .into_iter()
    .map(|(c, a)| Step::new(c, a))
    .collect()
}

/// Arguments: mostly near the boundaries the checks use, sometimes anything at all.
fn arg() -> impl Strategy<Value = i128> {
    prop_oneof![
        3 => 0i128..20,
        2 => prop_oneof![Just(0x4020_0000i128), Just(0x4040_0000), Just(0x8000_0000), Just(0x0B00_0000)],
        2 => prop_oneof![Just((1i128 << 40) - 1), Just(1 << 40), Just((1 << 48) - 1), Just(1 << 48), Just((1 << 28) - 1), Just(1 << 28)],
        2 => any::<u64>().prop_map(i128::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 600,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0bad_0057),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_hypercall_with_any_arguments_does_what_the_spec_says(
        calls in prop::collection::vec((0i128..32, prop::collection::vec(arg(), 0..10)), 1..12),
    ) {
        let sc = parse("hostile.json", MACHINE).unwrap();
        let mut l = Lockstep::for_scenario(&sc, Some(ProfileKind::Arm)).unwrap();
        for s in setup() {
            prop_assert!(l.step(&s).unwrap().mismatches.is_empty());
        }
        for (k, (num, mut args)) in calls.into_iter().enumerate() {
            // Sizes stay below 1 MiB where a legal size means one step per page (ioremap,
            // clear), so a case does not walk a GiB page by page; the checks at the limits
            // are in hypercall_boundaries.rs.
            let size_arg = match num { 28 => Some(3), 9 => Some(2), _ => None };
            if let Some(a) = size_arg.and_then(|i| args.get_mut(i)) {
                if *a > 0 && *a < 1 << 40 {
                    *a %= 1 << 20;
                }
            }
            // VCPU_RUN (8) is the host's run request; the others are plain hypercalls.
            let r = l.step(&Step::new(0, hvc(num, args.clone()))).unwrap();
            prop_assert!(r.mismatches.is_empty(), "call {} = hvc {}({:?}): {:?}", k, num, args, r.mismatches);
            prop_assert!(r.model.broken.is_empty(), "call {}: invariants {:?}", k, r.model.broken);
            if l.core.core.halted() || !l.core.cpus[0].run.ihost {
                break;
            }
        }
    }
}

/// Every defined host hypercall with its first three arguments drawn from the values at the
/// edges of the seed's checks (vmids, vCPU ids, bank and SMMU numbers, 2^28 pfns, 2^40
/// physical and 2^48 guest addresses), each on a copy of the same machine: the core and the
/// model must agree on every one (refusal = halt, or the same effect).
#[test]
fn every_hypercall_at_every_argument_edge_agrees_with_the_model() {
    const EDGES: [i128; 10] = [
        0,
        1,
        7,
        8,
        15,
        16,
        1 << 28,
        (1 << 40) - 4096,
        1 << 40,
        1 << 48,
    ];
    // A 4th/5th argument where the call takes one: a page-aligned in-range value and an
    // out-of-range one, alternating.
    const TAIL: [[i128; 2]; 2] = [[0xC3, 0], [1 << 40, 2]];
    let sc = parse("hostile.json", MACHINE).unwrap();
    let mut base = Lockstep::for_scenario(&sc, Some(ProfileKind::Arm)).unwrap();
    for s in setup() {
        assert!(base.step(&s).unwrap().mismatches.is_empty());
    }
    let mut failures = Vec::new();
    let mut calls = 0;
    for num in [
        7i128, 9, 10, 11, 12, 13, 14, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 99,
    ] {
        for (k, (&a1, &a2, &a3)) in EDGES
            .iter()
            .flat_map(|a| {
                EDGES
                    .iter()
                    .flat_map(move |b| EDGES.iter().map(move |c| (a, b, c)))
            })
            .enumerate()
        {
            let mut args = vec![a1, a2, a3];
            args.extend(TAIL[k % 2]);
            let mut l = base.clone();
            let r = l.step(&Step::new(0, hvc(num, args.clone()))).unwrap();
            calls += 1;
            if !r.mismatches.is_empty() || !r.model.broken.is_empty() {
                failures.push(format!(
                    "hvc {num}({args:x?}): {:?} {:?}",
                    r.mismatches, r.model.broken
                ));
            }
        }
    }
    assert_eq!(calls, 18 * 1000);
    assert!(
        failures.is_empty(),
        "{} of {calls} calls differ:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
}
