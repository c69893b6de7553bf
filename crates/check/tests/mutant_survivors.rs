//! Tests aimed at three survivors of the second cargo-mutants sample (shard 1/11,
//! `docs/assurance.md`, "cargo-mutants"), each of which the suites let through:
//!
//! * `pt.rs:133:32: delete ! in mmap`: a 2 MiB block replaced by another must invalidate
//!   the TLB entries of the block's own IPAs (`addr & !(2 MiB - 1)`), not of the offsets
//!   `addr & (2 MiB - 1)` near IPA 0;
//! * `smmu_hw.rs:200:45: replace & with | in Core<H>::smmu_unroute_others`: with
//!   `(v >> 16) | 3` no S2CR is ever seen as TRANSLATE, so a group that translates into a
//!   bank now given to a VM is never turned to fault;
//! * `smmu_hw.rs:357:35: replace & with | in Core<H>::smmu_host_write`: with `data | 255`
//!   every host write to sCR2 is refused, the allowed ones (low byte 0) included.
//!
//! Each test fails with its mutant applied by hand and passes without it.

use corevisor_check::engine::Outcome as ModelOutcome;
use corevisor_check::lockstep::Lockstep;
use corevisor_kcore::consts::HOSTVISOR;
use corevisor_kcore::hw::Discard;
use corevisor_sim::machine::CoreMachine;
use corevisor_sim::scenario::{parse, Action, HvcCall, HvcName, Outcome, Step};
use corevisor_sim::smmu::{Access, Fault, Route, Width};
use corevisor_spec::profile::ProfileKind;

const SMMU0: u64 = 0x0B00_0000;
const SCR2: u64 = SMMU0 + 0x008;
const SMR: u64 = SMMU0 + 0x800;
const S2CR: u64 = SMMU0 + 0xC00;
const S2CR_FAULT: u64 = 2 << 16;
const PMD: u64 = 0x20_0000;

fn lockstep() -> Lockstep {
    let sc = parse("t.json", r#"{"name": "t", "profile": "arm", "steps": []}"#).unwrap();
    Lockstep::for_scenario(&sc, Some(ProfileKind::Arm)).unwrap()
}

fn machine() -> CoreMachine {
    lockstep().core
}

fn hvc(m: &mut CoreMachine, n: HvcName, args: &[u64]) {
    let a = Action::Hvc {
        call: HvcCall::Named(n),
        args: args.iter().map(|&v| v as i128).collect(),
    };
    let r = m.step(&Step::new(0, a));
    assert_eq!(r.outcome, Outcome::Ok, "{n:?}");
}

fn host_store(m: &mut CoreMachine, addr: u64, value: u64) -> Outcome {
    let a = Action::HostStore {
        addr: addr as i128,
        value: value as i128,
    };
    let st = Step {
        size: Some(4),
        ..Step::new(0, a)
    };
    m.step(&st).outcome
}

/// SMMU 0's register at `pa`, read or written behind KCore's back.
fn device(m: &CoreMachine, pa: u64) -> u64 {
    m.core.hw.smmus().read(pa, Width::W32).unwrap().unwrap()
}

fn set_device(m: &CoreMachine, pa: u64, v: u64) {
    m.core.hw.smmus().write(pa, Width::W32, v).unwrap().unwrap();
}

/// `pt.rs:133`: VM 1's 2 MiB block at `GPA` (pages `OLD`) is replaced by another (pages
/// `NEW`) after the VM has used it. The old translations are cached in the TLB; KCore's
/// break-before-make must invalidate every page of the block at its own IPAs, so the VM then
/// reaches `NEW`. With the mask's `!` deleted KCore invalidates IPAs 0 to 2 MiB instead and
/// the VM keeps reaching `OLD` through its stale entries.
#[test]
fn replacing_a_vm_block_invalidates_the_tlb_at_the_blocks_own_ipas() {
    const GPA: u64 = 0x4020_0000;
    const OLD: u64 = 0x4800_0000;
    const NEW: u64 = 0x4820_0000;
    let m = machine();
    let core = &m.core;
    for pa in [OLD, NEW] {
        assert_eq!(
            core.page(pa / 4096).owner,
            HOSTVISOR,
            "{pa:#x} is the host's"
        );
    }
    let root = core.layout.pt.root(1);
    let probes = [0, 0x3000, PMD / 2 + 0x8000, PMD - 0x1000];
    assert!(core
        .prot_and_map_vm_s2pt(1, GPA, OLD, 2, &mut Discard)
        .is_ok());
    for off in probes {
        // The VM touches its block: the translation is now cached.
        let t = core.hw.translate(1, root, GPA + off).unwrap();
        assert_eq!((t.pa, t.level), (OLD + off, 2));
        assert!(core.hw.cached(1, GPA + off).is_some());
    }
    let tlbis = core.hw.tlbi_count();
    assert!(core
        .prot_and_map_vm_s2pt(1, GPA, NEW, 2, &mut Discard)
        .is_ok());
    assert_eq!(
        core.hw.tlbi_count() - tlbis,
        512,
        "one TLBI per page of the replaced block"
    );
    for off in probes {
        assert_eq!(
            core.hw.cached(1, GPA + off),
            None,
            "IPA {:#x}: the old block's translation survived",
            GPA + off
        );
        assert_eq!(
            core.hw.translate(1, root, GPA + off).map(|t| t.pa),
            Some(NEW + off),
            "IPA {:#x} reaches the new block",
            GPA + off
        );
    }
}

/// `smmu_hw.rs:200`: a stream match group (9, matching stream 0x30) translating into bank
/// 2 when bank 2 is given to VM 1 is turned to fault, so only the VM's own stream 2 reaches
/// the VM's bank. KCore's boot routes every group to fault and the host may route only into
/// its own banks (which it never gives back), so such a route is one KCore's boot did not
/// clear (as under the planted `smmu_boot_skips_one`): it is written into the SMMU here
/// behind KCore's back. With `(v >> 16) | 3` KCore never sees the group as translating and
/// leaves it in place: stream 0x30 reaches the VM's bank.
#[test]
fn giving_a_bank_to_a_vm_turns_other_groups_routed_into_it_to_fault() {
    let mut m = machine();
    hvc(&mut m, HvcName::RegisterKvm, &[]);
    // The host cannot make this route itself: bank 2 is free.
    assert_eq!(host_store(&mut m.clone(), S2CR + 4 * 9, 2), Outcome::Halt);
    set_device(&m, SMR + 4 * 9, (1 << 31) | 0x30);
    set_device(&m, S2CR + 4 * 9, 2);
    let route = |m: &CoreMachine, sid: u32| {
        let hw = &m.core.hw;
        hw.smmus()
            .smmu(0)
            .translate(&hw.phys, sid, 0x9000_0000, Access::Read)
            .map(|t| t.route)
            .map_err(|f| f.fault)
    };
    assert_ne!(
        route(&m, 0x30),
        Err(Fault::InvalidContext),
        "stream 0x30 is routed to bank 2 before the alloc"
    );
    hvc(&mut m, HvcName::SmmuAllocPgd, &[2, 1, 0]);
    assert_eq!(
        device(&m, S2CR + 4 * 2),
        2,
        "the VM's stream 2 translates through bank 2"
    );
    assert_eq!(
        device(&m, S2CR + 4 * 9),
        S2CR_FAULT,
        "S2CR 9 no longer translates through the VM's bank"
    );
    assert!(
        !matches!(route(&m, 0x30), Ok(Route::Bank(2))),
        "stream 0x30 still reaches the VM's bank: {:?}",
        route(&m, 0x30)
    );
}

/// `smmu_hw.rs:357`: the host may write sCR2 when the low byte (BPVMID, the VMID of
/// bypassing transactions) is 0, and only then. Checked beside the model: with `data | 255`
/// KCore refuses (halts on) the allowed writes too.
#[test]
fn the_host_may_write_scr2_with_a_zero_low_byte() {
    let mut l = lockstep();
    for (value, want) in [
        (0u64, ModelOutcome::Ok),
        (0x100, ModelOutcome::Ok),
        (0xFFFF_FF00, ModelOutcome::Ok),
        (0x1, ModelOutcome::Halt),
        (0x80, ModelOutcome::Halt),
    ] {
        let mut l = l.clone();
        let a = Action::HostStore {
            addr: SCR2 as i128,
            value: value as i128,
        };
        let st = Step {
            size: Some(4),
            ..Step::new(0, a)
        };
        let r = l.step(&st).unwrap();
        assert_eq!(r.model.result, want, "the model, sCR2 = {value:#x}");
        let core_want = match want {
            ModelOutcome::Ok => Outcome::Ok,
            _ => Outcome::Halt,
        };
        assert_eq!(r.core.outcome, core_want, "KCore, sCR2 = {value:#x}");
        assert!(
            r.mismatches.is_empty(),
            "sCR2 = {value:#x}: {:?}",
            r.mismatches
        );
    }
    // The allowed write leaves BPVMID 0 on the device and the host running.
    let a = Action::HostStore {
        addr: SCR2 as i128,
        value: 0x100,
    };
    let st = Step {
        size: Some(4),
        ..Step::new(0, a)
    };
    assert_eq!(l.step(&st).unwrap().core.outcome, Outcome::Ok);
    assert_eq!(device(&l.core, SCR2) & 0xFF, 0);
}
