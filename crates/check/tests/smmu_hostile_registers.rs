//! A hostile host on the SMMU registers (issue 13): on a machine with a verified VM whose
//! device has bank 1 and a host bank 2, the host makes one access of any width at any
//! offset of an SMMU window (one to three accesses) (weighted towards the registers that route and translate
//! streams) with an arbitrary value; then devices with streams 1, 2 and 0x30 read and write
//! through the SMMU. Every step runs on the core beside the model: the core's policy must
//! decide exactly as the model's (halt or not), and no write the policy lets through may
//! give a device a translation the model does not (a DMA result or value differs, or an
//! invariant breaks). Each case runs on its own copy of the machine. Seeded
//! (`COREVISOR_SEED`, printed on failure).

use corevisor_check::lockstep::Lockstep;
use corevisor_sim::scenario::{parse, Action, HvcCall, HvcName, Step};
use corevisor_spec::profile::ProfileKind;

const MACHINE: &str = r#"{"name": "hostile-smmu", "profile": "arm",
  "machine": {"cpus": 2, "ram_base": "0x40000000", "ram_mib": 36, "kcore_mib": 24}, "steps": []}"#;
const SMMU: [u64; 2] = [0x0B00_0000, 0x0B10_0000];
const DEVICE_PAGE: u64 = 0x4010_0000;
const IMAGE_PA: u64 = 0x4020_0000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

fn hvc(n: HvcName, args: &[u64]) -> Step {
    Step::new(
        0,
        Action::Hvc {
            call: HvcCall::Named(n),
            args: args.iter().map(|&a| a as i128).collect(),
        },
    )
}

/// VM 1 verified with its device on SMMU 0 bank 1 (IOVA 0x9000_0000); bank 2 the host's.
fn setup() -> Lockstep {
    let sc = parse("hostile.json", MACHINE).unwrap();
    let mut l = Lockstep::for_scenario(&sc, Some(ProfileKind::Arm)).unwrap();
    for st in [
        hvc(HvcName::RegisterKvm, &[]),
        hvc(HvcName::RegisterVcpu, &[1, 0]),
        hvc(HvcName::SmmuAllocPgd, &[1, 1, 0]),
        hvc(
            HvcName::SmmuLpaeMap,
            &[0x9000_0000, DEVICE_PAGE, 0xC3, 1, 0],
        ),
        hvc(HvcName::SetBootInfo, &[1, 0x8000_0000, 4096]),
        hvc(HvcName::RemapVmImage, &[1, IMAGE_PA >> 12, 0]),
        hvc(HvcName::VerifyVmImage, &[1]),
        hvc(HvcName::SmmuAllocPgd, &[2, 0, 0]),
    ] {
        let r = l.step(&st).unwrap();
        assert!(r.mismatches.is_empty(), "setup: {:?}", r.mismatches);
        assert_eq!(
            r.core.outcome,
            corevisor_sim::machine::Outcome::Ok,
            "setup {}",
            r.model.what
        );
    }
    l
}

/// An offset in an SMMU window: mostly a register that routes or translates streams.
fn offset(r: &mut Rng) -> u64 {
    let bank = r.below(8) * 0x1000 + 0x8000;
    match r.below(10) {
        0 => r.pick(&[0x0, 0x4, 0x8, 0x64, 0x68, 0x70, 0x74, 0x40, 0x44]),
        1 => 0x800 + 4 * r.below(16),
        2 => 0xC00 + 4 * r.below(16),
        3 => 0x1000 + 4 * r.below(10),
        4 => 0x1800 + 4 * r.below(10),
        5 | 6 => {
            bank + r.pick(&[
                0x0, 0x20, 0x24, 0x28, 0x30, 0x34, 0x58, 0x630, 0x634, 0x7F0, 0x7F4,
            ])
        }
        7 => r.below(0x2_0000) & !3,
        8 => 0x1_0000 + (r.below(0x1_0000) & !3),
        _ => r.below(0x2_0000),
    }
}

fn value(r: &mut Rng) -> u64 {
    match r.below(8) {
        0 => r.pick(&[0, 1, 2, 3, 7, 0x30, 0xFF]),
        1 => r.pick(&[
            0x1_0000,
            0x2_0000,
            0x1_0001,
            0x0100_0001,
            0x0100_0000,
            0x3_0000,
        ]),
        2 => r.pick(&[0x20_0001, 0x20_0000, 0x20_0400, 0x1, 0x400, 0x20_0406]),
        3 => r.pick(&[
            0x8000_0030,
            0x8000_0001,
            0x8000_0002,
            0x8001_0001,
            0xFFFF_FFFF,
        ]),
        4 => r.pick(&[0x5_0058, 0x5_0090, 0x5_3558, 0x67, 0x66, 0x77, 0x1]),
        5 => r.pick(&[DEVICE_PAGE, IMAGE_PA, 0x4800_0000, 0x1_0000_0000]),
        6 => r.next() & 0xFFFF_FFFF,
        _ => r.next(),
    }
}

#[test]
fn any_smmu_register_access_is_decided_as_the_model_says_and_no_device_escapes() {
    let seed = std::env::var("COREVISOR_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_0013u64);
    let mut r = Rng(seed | 1);
    let base = setup();
    let (mut halts, mut accepted, mut dma_ok) = (0, 0, 0);
    for case in 0..400 {
        let mut l = base.clone();
        let mut steps = Vec::new();
        let mut what = format!("case {case} (seed {seed}):");
        for _ in 0..1 + r.below(3) {
            let smmu = if r.below(5) == 0 { SMMU[1] } else { SMMU[0] };
            let addr = smmu + offset(&mut r);
            let size = r.pick(&[4u8, 4, 4, 8, 8, 2, 1]);
            let action = if r.below(4) == 0 {
                Action::HostLoad { addr: addr as i128 }
            } else {
                Action::HostStore {
                    addr: addr as i128,
                    value: value(&mut r) as i128,
                }
            };
            what += &format!(" {action:?} size {size};");
            steps.push(Step {
                size: Some(size),
                ..Step::new(0, action)
            });
        }
        for (cb, stream, iova) in [
            (1, None, 0x9000_0000i128),
            (2, None, IMAGE_PA as i128),
            (2, Some(0x30), IMAGE_PA as i128),
            (1, None, IMAGE_PA as i128),
        ] {
            steps.push(Step::new(
                0,
                Action::DmaLoad {
                    smmu: 0,
                    cb,
                    iova,
                    stream,
                },
            ));
        }
        steps.push(Step::new(
            0,
            Action::DmaStore {
                smmu: 0,
                cb: 2,
                iova: 0,
                value: 9,
                stream: None,
            },
        ));
        for st in steps {
            let c = l.step(&st).unwrap();
            assert!(
                c.mismatches.is_empty(),
                "{what}: {}: {:?}",
                c.model.what,
                c.mismatches
            );
            if c.outside_contract {
                break;
            }
            if c.core.outcome == corevisor_sim::machine::Outcome::Halt {
                halts += 1;
                break;
            }
            if matches!(st.action, Action::DmaLoad { .. }) {
                dma_ok += (c.core.outcome == corevisor_sim::machine::Outcome::Ok) as u32;
            } else if matches!(st.action, Action::HostStore { .. }) {
                accepted += 1;
            }
        }
        let inv =
            corevisor_check::lockstep::abstract_machine(&l.core, &l.model).broken_invariants();
        assert!(inv.is_empty(), "{what}: invariants {inv:?}");
    }
    // The generator reaches both verdicts and devices that do get through (VM 1's own page).
    assert!(
        halts > 50 && accepted > 50 && dma_ok > 50,
        "{halts} {accepted} {dma_ok}"
    );
}
