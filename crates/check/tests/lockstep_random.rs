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

/// A guest instruction trapping with a class kcore serves no other way (unknown, WFx-free:
/// FP, PAuth, SMC, SVE, SME, BRK...): exits to the host (deviation `guest_exception_halts`).
fn guest_exception() -> impl Strategy<Value = Action> {
    prop::sample::select(vec![0x00i128, 0x07, 0x09, 0x0E, 0x17, 0x19, 0x1D, 0x3C])
        .prop_map(|ec| Action::GuestException { ec })
}

fn guest_step() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => gpa().prop_map(|g| Action::GuestLoad { gpa: g }),
        1 => gpa().prop_map(|g| Action::GuestFetch { gpa: g }),
        3 => (gpa(), any::<u32>()).prop_map(|(g, v)| Action::GuestStore { gpa: g, value: v as i128 }),
        2 => (gpa(), prop_oneof![Just(ShareOp::Grant), Just(ShareOp::Revoke)]).prop_map(|(g, op)| Action::GuestHvc { op, gpa: g, size: 4096 }),
        1 => Just(Action::GuestWfx),
        1 => Just(Action::GuestSysreg),
        1 => guest_exception(),
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
            if l.core.core.halted() {
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
            if l.core.core.halted() {
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

/// What a steered sequence asks for; resolved against the machine when it runs, so guest
/// steps go only to a CPU that runs a VM, DMA only through a live VM's bank, and a power-off
/// is followed by the reclaim of the VM's pages.
#[derive(Clone, Debug)]
enum Op {
    /// A host step on CPU 0.
    Host(Action),
    /// A guest step on the CPU running the VM (the host runs a vCPU there first if needed).
    Guest(Action),
    /// The host proposes a page for the VM's next fault, then runs it.
    Map { gpa: i128, pa: i128 },
    /// A device access through the VM's bank (SMMU 0 bank 0).
    Dma(Option<u32>),
    /// The guest powers off; the host reclaims its pages.
    PowerOffReclaim,
    /// A hostile request, mostly refused (rare).
    Hostile(Action),
}

fn steered_op() -> impl Strategy<Value = Op> {
    // VM 1's pages: its image block at gpa 0x8000_0000 and the pages the host hands it at
    // 0x8040_0000; the host keeps RAM + 0x60_0000...
    let vm_gpa = prop_oneof![
        3 => (0i128..4, 0i128..512).prop_map(|(p, w)| 0x8000_0000 + p * 4096 + w * 8),
        2 => (0i128..3, 0i128..512).prop_map(|(p, w)| 0x8040_0000 + p * 4096 + w * 8),
    ];
    let host_pa = (0i128..4, 0i128..512).prop_map(|(p, w)| RAM + 0x60_0000 + p * 4096 + w * 8);
    prop_oneof![
        6 => vm_gpa.clone().prop_map(|g| Op::Guest(Action::GuestLoad { gpa: g })),
        6 => (vm_gpa.clone(), any::<u64>()).prop_map(|(g, v)| Op::Guest(Action::GuestStore { gpa: g, value: v as i128 })),
        3 => (0i128..4, prop_oneof![Just(ShareOp::Grant), Just(ShareOp::Revoke)], 1i128..3)
            .prop_map(|(p, op, n)| Op::Guest(Action::GuestHvc { op, gpa: 0x8000_0000 + p * 4096, size: n * 4096 })),
        1 => Just(Op::Guest(Action::GuestWfx)),
        1 => Just(Op::Guest(Action::GuestSysreg)),
        1 => guest_exception().prop_map(Op::Guest),
        1 => Just(Op::Guest(Action::Irq)),
        2 => (0i128..3).prop_map(|i| Op::Map { gpa: 0x8040_0000 + i * 4096, pa: RAM + 0x40_0000 + i * 4096 }),
        3 => prop::option::of(any::<u32>()).prop_map(Op::Dma),
        4 => host_pa.clone().prop_map(|a| Op::Host(Action::HostLoad { addr: a })),
        4 => (host_pa, any::<u64>()).prop_map(|(a, v)| Op::Host(Action::HostStore { addr: a, value: v as i128 })),
        1 => (0i128..4).prop_map(|p| Op::Host(Action::HostLoad { addr: RAM + 0x20_0000 + p * 4096 })),
        1 => Just(Op::Host(hvc("SMMU_LPAE_IOVA_TO_PHYS", vec![0x9000_0010, 0, 0]))),
        1 => (0i128..3).prop_map(|p| Op::Host(hvc("ENCRYPT_BUF", vec![1, RAM + 0x20_0000 + p * 4096, RAM + 0x70_0000]))),
        1 => Just(Op::PowerOffReclaim),
        1 => prop_oneof![
            Just(hvc("CLEAR_VM_S2_RANGE", vec![1, RAM + 0x20_0000, 0x1000])),
            Just(hvc("VERIFY_VM_IMAGE", vec![1])),
            Just(Action::HostLoad { addr: RAM + 0x20_0000 }),
            Just(Action::VcpuRun { vm: 1, vcpu: 0, map: Some(MapProposal { gpa: 0x8050_0000, pte: RAM + 0xC0_0000, level: 3 }), pc: None }),
            Just(hvc("REGISTER_VCPU", vec![1, 9])),
        ].prop_map(Op::Hostile),
    ]
}

/// Figures of one run of steered sequences (counters of this test alone).
#[derive(Default, Debug)]
struct Figures {
    sequences: usize,
    ten_nontrivial: usize,
    guest_access_ok: usize,
    share: usize,
    dma_ok: usize,
    poweroff_reclaim: usize,
}

/// Runs one steered sequence after the lifecycle prefix; returns its tallies.
fn run_steered(ops: &[Op]) -> Result<[bool; 5], TestCaseError> {
    let sc = parse("random.json", MACHINE).unwrap();
    let mut l = Lockstep::for_scenario(&sc, Some(ProfileKind::Arm)).unwrap();
    let mut index = 0;
    let mut nontrivial = 0;
    let (mut guest_ok, mut share, mut dma_ok, mut off, mut reclaimed) =
        (false, false, false, false, false);
    let mut go = |l: &mut Lockstep,
                  cpu: i128,
                  action: Action,
                  counted: bool|
     -> Result<Option<CheckedStep>, TestCaseError> {
        let st = Step {
            index,
            line: None,
            cpu,
            oracle: vec![],
            size: None,
            action,
        };
        index += 1;
        let r = l.step(&st).unwrap();
        prop_assert!(
            r.mismatches.is_empty(),
            "step {} {}: {:?}",
            st.index,
            r.model.what,
            r.mismatches
        );
        prop_assert!(
            r.model.broken.is_empty(),
            "step {} {}: invariants {:?}",
            st.index,
            r.model.what,
            r.model.broken
        );
        let trivial = matches!(r.model.result, Outcome::Halt | Outcome::Undefined);
        if counted && !trivial {
            nontrivial += 1;
        }
        Ok(Some(r))
    };
    for (cpu, a) in prefix() {
        go(&mut l, cpu, a, false)?;
    }
    let vm_runs = |l: &Lockstep| !l.core.cpus[1].run.ihost && !l.core.cpus[1].run.icore;
    let verified =
        |l: &Lockstep| l.core.core.vms[1].read().state == corevisor_kcore::consts::VERIFIED;
    for op in ops {
        if l.core.core.halted() {
            break;
        }
        match op.clone() {
            Op::Host(a) | Op::Hostile(a) => {
                go(&mut l, 0, a, true)?;
            }
            Op::Guest(a) => {
                if !vm_runs(&l) {
                    if !verified(&l) {
                        continue;
                    }
                    go(
                        &mut l,
                        1,
                        Action::VcpuRun {
                            vm: 1,
                            vcpu: 0,
                            map: None,
                            pc: None,
                        },
                        true,
                    )?;
                }
                if !vm_runs(&l) {
                    continue;
                }
                let kind = a.kind();
                let r = go(&mut l, 1, a, true)?.unwrap();
                if r.model.result == Outcome::Ok {
                    guest_ok |= matches!(kind, "guest_load" | "guest_store");
                    share |= kind == "guest_hvc";
                }
            }
            Op::Map { gpa, pa } => {
                if !verified(&l) {
                    continue;
                }
                if vm_runs(&l) {
                    // The guest touches the page: a stage-2 abort the host serves.
                    go(&mut l, 1, Action::GuestLoad { gpa }, true)?;
                }
                if !vm_runs(&l) && !l.core.core.halted() {
                    let map = Some(MapProposal {
                        gpa,
                        pte: pa,
                        level: 3,
                    });
                    go(
                        &mut l,
                        1,
                        Action::VcpuRun {
                            vm: 1,
                            vcpu: 0,
                            map,
                            pc: None,
                        },
                        true,
                    )?;
                }
            }
            Op::Dma(store) => {
                if !verified(&l) {
                    continue;
                }
                let a = match store {
                    None => Action::DmaLoad {
                        smmu: 0,
                        cb: 0,
                        iova: 0x9000_0000,
                        stream: None,
                    },
                    Some(v) => Action::DmaStore {
                        smmu: 0,
                        cb: 0,
                        iova: 0x9000_0008,
                        value: v as i128,
                        stream: None,
                    },
                };
                let r = go(&mut l, 0, a, true)?.unwrap();
                dma_ok |= r.model.result == Outcome::Ok;
            }
            Op::PowerOffReclaim => {
                if !vm_runs(&l) {
                    if !verified(&l) {
                        continue;
                    }
                    go(
                        &mut l,
                        1,
                        Action::VcpuRun {
                            vm: 1,
                            vcpu: 0,
                            map: None,
                            pc: None,
                        },
                        true,
                    )?;
                }
                if vm_runs(&l) {
                    let r = go(&mut l, 1, Action::GuestPsciSystemOff, true)?.unwrap();
                    off |= r.model.result == Outcome::Ok;
                }
                let clear = hvc("CLEAR_VM_S2_RANGE", vec![1, RAM + 0x20_0000, 0x40_0000]);
                let r = go(&mut l, 0, clear, true)?.unwrap();
                reclaimed |= off && r.model.result == Outcome::Ok;
                if reclaimed {
                    // The host reads back what the VM left there: scrubbed, every word.
                    go(
                        &mut l,
                        0,
                        Action::HostLoad {
                            addr: RAM + 0x20_0008,
                        },
                        true,
                    )?;
                }
            }
        }
    }
    Ok([nontrivial >= 10, guest_ok, share, dma_ok, reclaimed])
}

/// Issue 10, "random sequences that do something": sequences steered towards the VM
/// lifecycle, checked in lockstep after every step, and the figures the issue asks for,
/// counted by this test alone: at least 50% of sequences execute 10 non-trivial steps (not
/// halted, not outside the contract), 30% contain a guest access that succeeds, 20% each a
/// GRANT/REVOKE, a DMA that succeeds, and a power-off followed by the reclaim.
#[test]
fn steered_sequences_do_something_and_keep_the_core_equal_to_the_model() {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use std::cell::RefCell;
    let seed: u64 = std::env::var("COREVISOR_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 300,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    let figures = RefCell::new(Figures::default());
    let result = runner.run(&prop::collection::vec(steered_op(), 10..40), |ops| {
        let t = run_steered(&ops)?;
        let mut f = figures.borrow_mut();
        f.sequences += 1;
        f.ten_nontrivial += t[0] as usize;
        f.guest_access_ok += t[1] as usize;
        f.share += t[2] as usize;
        f.dma_ok += t[3] as usize;
        f.poweroff_reclaim += t[4] as usize;
        Ok(())
    });
    if let Err(e) = result {
        panic!("seed {seed:#x}: {e}");
    }
    let f = figures.into_inner();
    let pct = |n: usize| 100 * n / f.sequences.max(1);
    println!("steered sequences: {f:?}");
    assert_eq!(f.sequences, 300);
    assert!(pct(f.ten_nontrivial) >= 50, "{f:?}");
    assert!(pct(f.guest_access_ok) >= 30, "{f:?}");
    assert!(pct(f.share) >= 20, "{f:?}");
    assert!(pct(f.dma_ok) >= 20, "{f:?}");
    assert!(pct(f.poweroff_reclaim) >= 20, "{f:?}");
}
