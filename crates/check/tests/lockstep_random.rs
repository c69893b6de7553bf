//! Issue 5, "must show" 1 (random half): random step sequences, biased towards the VM
//! lifecycle and its hostile variants, run on the core beside the model; after every step
//! `abs(core)` must equal the model and the invariants must hold. Seeded and shrinking
//! (proptest); failures are saved in `lockstep_random.proptest-regressions`.

use corevisor_check::lockstep::Lockstep;
use corevisor_sim::scenario::{parse, Action, HvcCall, HvcName, MapProposal, ShareOp, Step};
use corevisor_spec::profile::ProfileKind;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// A small machine: 36 MiB of RAM at 1 GiB, two CPUs; the host has the first 12 MiB, KCore
/// the last 24 MiB (its image, metadata and page-table pools).
const MACHINE: &str = r#"{"name": "random", "profile": "arm",
  "machine": {"cpus": 2, "ram_base": "0x40000000", "ram_mib": 36, "kcore_mib": 24}, "steps": []}"#;
const RAM: i128 = 0x4000_0000;

fn hvc(name: &str, args: Vec<i128>) -> Action {
    Action::Hvc {
        call: HvcCall::Named(HvcName::parse(name).unwrap()),
        args,
    }
}

/// Host pages the steps pick from: a 2 MiB-aligned image region, loose pages, KCore's
/// region, a device page, page 0.
fn pa() -> impl Strategy<Value = i128> {
    prop_oneof![
        6 => (0i128..3).prop_map(|i| RAM + 0x20_0000 + i * 4096),
        4 => (0i128..4).prop_map(|i| RAM + 0x40_0000 + i * 4096),
        1 => Just(RAM + 0xC0_0000),
        1 => Just(0x0900_0000i128),
        1 => Just(0i128),
    ]
}

fn gpa() -> impl Strategy<Value = i128> {
    prop_oneof![
        3 => (0i128..2).prop_map(|i| 0x8000_0000 + i * 4096),
        3 => (0i128..3).prop_map(|i| 0x8040_0000 + i * 4096),
        1 => Just(0x0900_0000i128),
    ]
}

fn vm() -> impl Strategy<Value = i128> {
    prop_oneof![8 => 1i128..3, 1 => Just(0i128), 1 => Just(16i128)]
}

fn host_step() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => Just(hvc("REGISTER_KVM", vec![])),
        4 => (vm(), 0i128..2).prop_map(|(v, c)| hvc("REGISTER_VCPU", vec![v, c])),
        3 => (vm(), prop_oneof![Just(4096i128), Just(8192)]).prop_map(|(v, s)| hvc("SET_BOOT_INFO", vec![v, 0x8000_0000, s])),
        4 => (vm(), 0i128..3).prop_map(|(v, i)| hvc("REMAP_VM_IMAGE", vec![v, (RAM + 0x20_0000) / 4096 + i, 0])),
        4 => vm().prop_map(|v| hvc("VERIFY_VM_IMAGE", vec![v])),
        1 => (vm(), 1u64..u64::MAX).prop_map(|(v, s)| hvc("VERIFY_VM_IMAGE", vec![v, s as i128])),
        2 => (vm(), pa(), prop_oneof![Just(0x1000i128), Just(0x40_0000)]).prop_map(|(v, p, n)| hvc("CLEAR_VM_S2_RANGE", vec![v, p, n])),
        2 => (0i128..2, vm()).prop_map(|(cb, v)| hvc("SMMU_ALLOC_PGD", vec![cb, v, 0])),
        1 => (0i128..2).prop_map(|cb| hvc("SMMU_FREE_PGD", vec![cb, 0])),
        2 => (0i128..2, pa(), prop_oneof![Just(0xc3i128), Just(0x43)]).prop_map(|(cb, p, prot)| hvc("SMMU_LPAE_MAP", vec![0x9000_0000, p, prot, cb, 0])),
        1 => (0i128..2).prop_map(|cb| hvc("SMMU_LPAE_IOVA_TO_PHYS", vec![0x9000_0010, cb, 0])),
        1 => (0i128..2).prop_map(|cb| hvc("SMMU_CLEAR", vec![0x9000_0000, cb, 0])),
        1 => (vm(), gpa()).prop_map(|(v, g)| hvc("PHYS_ADDR_IOREMAP", vec![v, g, 0x0900_0000, 4096])),
        1 => (vm(), pa(), pa()).prop_map(|(v, a, b)| hvc("ENCRYPT_BUF", vec![v, a, b])),
        1 => (vm(), pa(), 0i128..3).prop_map(|(v, a, h)| hvc("DECRYPT_BUF", vec![v, a, h])),
        1 => (vm(), 0i128..2, pa()).prop_map(|(v, c, b)| hvc("SAVE_CRYPT_VCPU", vec![v, c, b])),
        1 => (vm(), 0i128..2, pa(), 0i128..3).prop_map(|(v, c, b, h)| hvc("LOAD_CRYPT_VCPU", vec![v, c, b, h])),
        1 => Just(hvc("TIMER_SET_CNTVOFF", vec![])),
        1 => (0i128..64).prop_map(|n| Action::Hvc { call: HvcCall::Raw(n), args: vec![1, 2, 3] }),
        4 => (vm(), 0i128..2).prop_map(|(v, c)| Action::VcpuRun { vm: v, vcpu: c, map: None, pc: None }),
        3 => (vm(), 0i128..2, gpa(), pa()).prop_map(|(v, c, g, p)| Action::VcpuRun {
            vm: v, vcpu: c, map: Some(MapProposal { gpa: g, pte: p, level: 3 }), pc: None,
        }),
        3 => pa().prop_map(|a| Action::HostLoad { addr: a }),
        2 => (pa(), any::<u32>()).prop_map(|(a, v)| Action::HostStore { addr: a, value: v as i128 }),
        1 => Just(Action::HostLoad { addr: 0x0B00_0000 }),
        1 => any::<u32>().prop_map(|v| Action::HostStore { addr: 0x0B00_1000, value: v as i128 }),
    ]
}

fn guest_step() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => gpa().prop_map(|g| Action::GuestLoad { gpa: g }),
        1 => gpa().prop_map(|g| Action::GuestFetch { gpa: g }),
        3 => (gpa(), any::<u32>()).prop_map(|(g, v)| Action::GuestStore { gpa: g, value: v as i128 }),
        2 => (gpa(), prop_oneof![Just(ShareOp::Grant), Just(ShareOp::Revoke)]).prop_map(|(g, op)| Action::GuestHvc { op, gpa: g, size: 4096 }),
        1 => Just(Action::GuestWfx),
        1 => Just(Action::GuestSysreg),
        1 => Just(Action::Irq),
        1 => Just(Action::GuestPsciSystemOff),
        1 => (0i128..2).prop_map(|cb| Action::DmaLoad { smmu: 0, cb, iova: 0x9000_0000, stream: None }),
        1 => (0i128..2, any::<u32>()).prop_map(|(cb, v)| Action::DmaStore { smmu: 0, cb, iova: 0x9000_0000, value: v as i128, stream: None }),
    ]
}

/// The prefix most sequences start from: VM 1 verified with vCPU 0 running on CPU 1 and a
/// device (bank 0 maps IOVA 0x9000_0000), VM 2 registered (READY) with one vCPU.
fn prefix() -> Vec<(i128, Action)> {
    let img = (RAM + 0x20_0000) / 4096;
    vec![
        (0, hvc("REGISTER_KVM", vec![])),
        (0, hvc("REGISTER_VCPU", vec![1, 0])),
        (0, hvc("REGISTER_VCPU", vec![1, 1])),
        (0, hvc("SMMU_ALLOC_PGD", vec![0, 1, 0])),
        (
            0,
            hvc(
                "SMMU_LPAE_MAP",
                vec![0x9000_0000, RAM + 0x48_0000, 0xc3, 0, 0],
            ),
        ),
        (0, hvc("SET_BOOT_INFO", vec![1, 0x8000_0000, 8192])),
        (0, hvc("REMAP_VM_IMAGE", vec![1, img, 0])),
        (0, hvc("REMAP_VM_IMAGE", vec![1, img + 1, 0])),
        (0, hvc("VERIFY_VM_IMAGE", vec![1])),
        (
            1,
            Action::VcpuRun {
                vm: 1,
                vcpu: 0,
                map: None,
                pc: None,
            },
        ),
        (0, hvc("REGISTER_KVM", vec![])),
        (0, hvc("REGISTER_VCPU", vec![2, 0])),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let one = (0i128..2, prop_oneof![3 => host_step(), 2 => guest_step()]);
    (
        prop::bool::weighted(0.75),
        prop::collection::vec(one, 1..40),
    )
        .prop_map(|(pre, v)| {
            let start = if pre { prefix() } else { vec![] };
            start
                .into_iter()
                .chain(v)
                .enumerate()
                .map(|(index, (cpu, action))| Step {
                    index,
                    line: None,
                    cpu,
                    oracle: vec![],
                    size: None,
                    action,
                })
                .collect()
        })
}

use corevisor_check::engine::Outcome;
use corevisor_check::lockstep::CheckedStep;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// How many steps of each kind completed (`ok`), over the whole run: the test asserts the
/// generator reaches deep states, not only early refusals.
static GUEST_OK: AtomicUsize = AtomicUsize::new(0);
static SHARE_OK: AtomicUsize = AtomicUsize::new(0);
static DMA_OK: AtomicUsize = AtomicUsize::new(0);
static HALTS: AtomicUsize = AtomicUsize::new(0);

fn tally(r: &CheckedStep) {
    let counter = match (r.model.kind, r.model.result) {
        (_, Outcome::Halt) => &HALTS,
        ("guest_load" | "guest_store", Outcome::Ok) => &GUEST_OK,
        ("guest_hvc", Outcome::Ok) => &SHARE_OK,
        ("dma_load" | "dma_store", Outcome::Ok) => &DMA_OK,
        _ => return,
    };
    counter.fetch_add(1, Relaxed);
}

proptest! {
    // Seeded: the same 1,500 sequences on every run (CI is reproducible); set
    // COREVISOR_SEED to explore others. Failures found are kept in the regressions file.
    #![proptest_config(ProptestConfig {
        cases: 1500,
        rng_seed: proptest::test_runner::RngSeed::Fixed(
            std::env::var("COREVISOR_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed),
        ),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_steps_keep_the_core_equal_to_the_model(steps in steps()) {
        let sc = parse("random.json", MACHINE).unwrap();
        let mut l = Lockstep::for_scenario(&sc, Some(ProfileKind::Arm)).unwrap();
        for st in &steps {
            let r = l.step(st).unwrap();
            tally(&r);
            prop_assert!(r.mismatches.is_empty(), "step {} {}: {:?}", st.index, r.model.what, r.mismatches);
            prop_assert!(r.model.broken.is_empty(), "step {} {}: invariants {:?}", st.index, r.model.what, r.model.broken);
            if l.core.core.halted {
                break;
            }
        }
    }
}

#[test]
fn the_generator_reaches_guest_accesses_sharing_dma_and_halts() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let sc = parse("random.json", MACHINE).unwrap();
    for _ in 0..200 {
        let steps = steps().new_tree(&mut runner).unwrap().current();
        let mut l = Lockstep::for_scenario(&sc, Some(ProfileKind::Arm)).unwrap();
        for st in &steps {
            tally(&l.step(st).unwrap());
            if l.core.core.halted {
                break;
            }
        }
    }
    for (name, c) in [
        ("guest accesses", &GUEST_OK),
        ("shares", &SHARE_OK),
        ("DMA", &DMA_OK),
        ("halts", &HALTS),
    ] {
        eprintln!("{name}: {} in 200 sequences", c.load(Relaxed));
        assert!(
            c.load(Relaxed) >= 10,
            "only {} {name} in 200 sequences",
            c.load(Relaxed)
        );
    }
}
