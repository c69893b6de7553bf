//! Every hypercall at each argument-check boundary, in both profiles: a value just inside
//! the check passes it (the call proceeds: it logs its atomic step or completes), a value
//! just outside is refused by the check itself (KCore halts before touching any shared
//! state or logging anything) — spec-digest §5.1, seed `host_hvc_handler_spec`.

mod common;
use common::*;
use corevisor_check::engine::{ModelMachine, Outcome};
use corevisor_spec::profile::ProfileKind;
use corevisor_spec::Z;

const P40: Z = 1 << 40;
const P48: Z = 1 << 48;
const P28: Z = 1 << 28;

/// 15 registered VMs (every valid vmid is READY), nothing else.
fn base(kind: ProfileKind) -> ModelMachine {
    let mut m = machine(kind);
    for _ in 0..15 {
        ok(&hvc(&mut m, "REGISTER_KVM", &[]));
    }
    m
}

/// Did the argument check refuse the call? (halt with no logged step, no shared change)
fn refused(before: &ModelMachine, call: &str, args: &[Z]) -> bool {
    let mut m = before.clone();
    let r = hvc(&mut m, call, args);
    assert_ne!(
        r.result,
        Outcome::Undefined,
        "{call}{args:x?}: outside the contract"
    );
    r.result == Outcome::Halt
        && m.global.slog == before.global.slog
        && m.global.shared == before.global.shared
}

/// (call, valid args, [(arg index, just inside, just outside)])
type Row = (&'static str, Vec<Z>, Vec<(usize, Z, Z)>);

fn rows(kind: ProfileKind) -> Vec<Row> {
    let vm = |i| [(i, 1, 0), (i, 15, 16)];
    let mut r: Vec<Row> = vec![
        ("VERIFY_VM_IMAGE", vec![1], vm(0).to_vec()),
        (
            "SMMU_FREE_PGD",
            vec![0, 0],
            vec![(0, 7, 8), (0, 0, -1), (1, 1, 2), (1, 0, -1)],
        ),
        (
            "SMMU_ALLOC_PGD",
            vec![0, 1, 0],
            vec![
                (0, 7, 8),
                (0, 0, -1),
                (1, 15, 16),
                (1, 0, -1),
                (2, 1, 2),
                (2, 0, -1),
            ],
        ),
        (
            "SMMU_LPAE_MAP",
            vec![0x1000, RAM, 0, 0, 0],
            vec![
                (0, P40 - 1, P40),
                (0, 0, -1),
                (1, P40 - 1, P40),
                (1, 0, -1),
                (2, 0xFFF, 0x1000),
                (2, 0, -1),
                (3, 7, 8),
                (4, 1, 2),
            ],
        ),
        (
            "SMMU_LPAE_IOVA_TO_PHYS",
            vec![0x1000, 0, 0],
            vec![
                (0, P40 - 1, P40),
                (0, 0, -1),
                (1, 7, 8),
                (1, 0, -1),
                (2, 1, 2),
                (2, 0, -1),
            ],
        ),
        (
            "SMMU_CLEAR",
            vec![0x1000, 0, 0],
            vec![(0, P40 - 1, P40), (0, 0, -1), (1, 7, 8), (2, 1, 2)],
        ),
        (
            "PHYS_ADDR_IOREMAP",
            vec![1, 0x1000_0000, 0x0900_0000, 4096],
            [
                vm(0).to_vec(),
                vec![
                    (1, P48 - 1 - 4096, P48 - 4096),
                    (1, 0, -1),
                    (2, P40 - 1 - 4096, P40 - 4096),
                    (3, 0, -1),
                ],
            ]
            .concat(),
        ),
        (
            "REGISTER_VCPU",
            vec![1, 0],
            [vm(0).to_vec(), vec![(1, 7, 8), (1, 0, -1)]].concat(),
        ),
        (
            "ENCRYPT_BUF",
            vec![1, RAM, RAM],
            [
                vm(0).to_vec(),
                vec![(1, P40 - 1, P40), (2, P40 - 1, P40), (2, 0, -1)],
            ]
            .concat(),
        ),
        (
            "DECRYPT_BUF",
            vec![1, RAM],
            [vm(0).to_vec(), vec![(1, P40 - 1, P40), (1, 0, -1)]].concat(),
        ),
        (
            "SAVE_CRYPT_VCPU",
            vec![1, 0],
            [vm(0).to_vec(), vec![(1, 7, 8), (1, 0, -1)]].concat(),
        ),
        (
            "LOAD_CRYPT_VCPU",
            vec![1, 0],
            [vm(0).to_vec(), vec![(1, 7, 8), (1, 0, -1)]].concat(),
        ),
    ];
    // CLEAR's size: any paddr under the seed; under `arm` at most the RAM's pages (256 MiB
    // here; the rest of a page is ignored), and IOREMAP at most the declared device pages
    // (two SMMU windows of 32 pages and the UART's page) (deviation `share_loop_unbounded`).
    let (clear_max, ioremap_max) = match kind {
        ProfileKind::Seed => (P40 - 1, None),
        ProfileKind::Arm => ((256 << 20) + 4095, Some(65 * 4096)),
    };
    r.push((
        "CLEAR_VM_S2_RANGE",
        vec![1, RAM, 4096],
        [
            vm(0).to_vec(),
            vec![
                (1, P40 - 1, P40),
                (1, 0, -1),
                (2, clear_max, clear_max + 1),
                (2, 0, -1),
            ],
        ]
        .concat(),
    ));
    if let Some(max) = ioremap_max {
        r.push((
            "PHYS_ADDR_IOREMAP",
            vec![1, 0x1000_0000, 0x0900_0000, 4096],
            vec![(3, max, max + 1)],
        ));
    }
    match kind {
        // Literal checks (§7.2.15): SET_BOOT_INFO bounds `a2 + a3` by 2^28 (`is_pfn`),
        // REMAP_VM_IMAGE checks a3 as a pfn and never the pfn a2.
        ProfileKind::Seed => {
            r.push((
                "SET_BOOT_INFO",
                vec![1, 0x10000, 4096],
                [
                    vm(0).to_vec(),
                    vec![
                        (1, P28 - 1 - 4096, P28 - 4096),
                        (1, 0, -1),
                        (2, P28 - 1 - 0x10000, P28 - 0x10000),
                    ],
                ]
                .concat(),
            ));
            r.push((
                "REMAP_VM_IMAGE",
                vec![1, 0x40200, 0],
                [vm(0).to_vec(), vec![(2, 4, 5), (2, 0, -1)]].concat(),
            ));
        }
        ProfileKind::Arm => {
            r.push((
                "SET_BOOT_INFO",
                vec![1, LOAD, 4096],
                [
                    vm(0).to_vec(),
                    vec![
                        (1, P40 - 1 - 4096, P40 - 4096),
                        (1, 0, -1),
                        (2, P40 - 1 - LOAD, P40 - LOAD),
                        (2, 0, -1),
                    ],
                ]
                .concat(),
            ));
            r.push((
                "REMAP_VM_IMAGE",
                vec![1, 0x40200, 0],
                [
                    vm(0).to_vec(),
                    vec![(1, P28 - 1, P28), (1, 0, -1), (2, 4, 5), (2, 0, -1)],
                ]
                .concat(),
            ));
        }
    }
    r
}

#[test]
fn every_argument_check_boundary() {
    let mut checked = 0;
    for kind in KINDS {
        let b = base(kind);
        for (call, args, bounds) in rows(kind) {
            assert!(
                !refused(&b, call, &args),
                "{kind:?} {call}{args:x?}: valid arguments refused"
            );
            for (i, inside, outside) in bounds {
                let mut a = args.clone();
                a[i] = inside;
                assert!(
                    !refused(&b, call, &a),
                    "{kind:?} {call}{a:x?}: arg {i} = {inside:#x} is inside the check"
                );
                a[i] = outside;
                assert!(
                    refused(&b, call, &a),
                    "{kind:?} {call}{a:x?}: arg {i} = {outside:#x} is outside the check"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "{checked}");
}

/// The checks that take no arguments: TIMER_SET_CNTVOFF never refuses; REGISTER_KVM
/// refuses the 16th VM (vmids 1..15 exist), an unknown call number is a no-op.
#[test]
fn calls_without_argument_checks() {
    for kind in KINDS {
        let b = base(kind);
        let mut m = b.clone();
        let r = hvc(&mut m, "TIMER_SET_CNTVOFF", &[-1, -1]);
        assert_eq!(r.result, Outcome::Ok);
        assert_eq!(m.global.shared, b.global.shared);
        let mut m = b.clone();
        let r = hvc(&mut m, "REGISTER_KVM", &[]);
        assert_eq!(r.result, Outcome::Halt, "{kind:?}: a 16th VM");
        assert_eq!(m.global.shared.core_data.next_vmid, 16);
        let mut m = machine(kind);
        let r = m
            .step(&step(
                0,
                corevisor_sim::scenario::Action::Hvc {
                    call: corevisor_sim::scenario::HvcCall::Raw(0x7777),
                    args: vec![1, 2],
                },
            ))
            .unwrap();
        assert_eq!(r.result, Outcome::Ok);
        assert_eq!(m.global.shared, machine(kind).global.shared);
    }
}

/// The same boundaries on KCore beside the model (issue 10): just inside, the call proceeds
/// (completes, or takes an atomic step before any later halt); just outside, the core halts
/// and its state (read back through `abs`) is what it was; every step agrees with the model.
#[test]
fn every_argument_check_boundary_on_the_core() {
    use corevisor_check::abs::abs_shared;
    use corevisor_check::lockstep::Lockstep;
    use corevisor_sim::scenario::{parse, Action, HvcCall, HvcName};
    let sc = parse(
        "boundaries.json",
        r#"{"name": "b", "profile": "arm", "steps": []}"#,
    )
    .unwrap();
    let call = |l: &mut Lockstep, name: &str, args: &[Z]| {
        let a = Action::Hvc {
            call: HvcCall::Named(HvcName::parse(name).unwrap()),
            args: args.to_vec(),
        };
        let r = l.step(&step(0, a)).unwrap();
        assert!(
            r.mismatches.is_empty(),
            "{name}{args:x?}: {:?}",
            r.mismatches
        );
        r.core.outcome
    };
    let mut base = Lockstep::for_scenario(&sc, Some(ProfileKind::Arm)).unwrap();
    for _ in 0..15 {
        assert_eq!(call(&mut base, "REGISTER_KVM", &[]), Outcome::Ok);
    }
    let shared = |l: &Lockstep| abs_shared(&l.core.core, &l.model.global.shared);
    let before = shared(&base);
    let mut checked = 0;
    for (name, args, bounds) in rows(ProfileKind::Arm) {
        for (i, inside, outside) in bounds {
            let mut a = args.clone();
            a[i] = inside;
            let mut l = base.clone();
            let r = call(&mut l, name, &a);
            // Past the check the call proceeds: it completes, or logs an atomic step first.
            let proceeded = r != Outcome::Halt || l.model.global.slog != base.model.global.slog;
            assert!(
                proceeded,
                "{name}{a:x?}: arg {i} = {inside:#x} is inside the check"
            );
            a[i] = outside;
            let mut l = base.clone();
            assert_eq!(
                call(&mut l, name, &a),
                Outcome::Halt,
                "{name}{a:x?}: outside"
            );
            let mut after = shared(&l);
            after.hlock = before.hlock.clone();
            assert!(
                after == before,
                "{name}{a:x?}: the refused call changed KCore's state"
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked}");
}
