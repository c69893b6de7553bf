//! The host's accesses to the SMMU register windows, on the core beside the model (issue
//! 13): KCore performs them for the host at their exact width (the windows are never mapped
//! into the host) on the machine's SMMU model; reads return the device's value; a write to
//! either half of a bank's TTBR0 installs KCore's own table instead of the host's; sCR0's
//! CLIENTPD and USFCFG are forced; CONTEXTIDR is refused. KCore programs the SMMUs at boot
//! and keeps every bank's registers as it set them.

use corevisor_check::engine::Outcome;
use corevisor_check::lockstep::Lockstep;
use corevisor_sim::scenario::{parse, Action, HvcCall, HvcName, Step};
use corevisor_sim::smmu::Width;
use corevisor_spec::profile::ProfileKind;

const SMMU0: u64 = 0x0B00_0000;
/// A bank's SCTLR as KCore programs it (SMMUv2 16.6.26): M (translate), TRE (TEX remap), AFE
/// (access flag), CFRE and CFIE (report context faults, with an interrupt); E (big-endian)
/// and the rest clear.
const BANK_SCTLR: u64 = 1 | (1 << 1) | (1 << 2) | (1 << 5) | (1 << 6);

fn machine() -> Lockstep {
    let sc = parse("t.json", r#"{"name": "t", "profile": "arm", "steps": []}"#).unwrap();
    Lockstep::for_scenario(&sc, Some(ProfileKind::Arm)).unwrap()
}

fn run_sized(
    l: &mut Lockstep,
    a: Action,
    size: Option<u8>,
) -> corevisor_check::lockstep::CheckedStep {
    let st = Step {
        size,
        ..Step::new(0, a)
    };
    let r = l.step(&st).unwrap();
    assert!(
        r.mismatches.is_empty(),
        "{}: {:?}",
        r.model.what,
        r.mismatches
    );
    r
}

fn store(l: &mut Lockstep, addr: u64, value: u64, size: u8) -> Outcome {
    let a = Action::HostStore {
        addr: addr as i128,
        value: value as i128,
    };
    run_sized(l, a, Some(size)).model.result
}

fn load(l: &mut Lockstep, addr: u64, size: u8) -> (Outcome, Option<u64>) {
    let r = run_sized(l, Action::HostLoad { addr: addr as i128 }, Some(size));
    (r.model.result, r.core.value)
}

fn hvc(l: &mut Lockstep, n: HvcName, args: &[i128]) {
    let a = Action::Hvc {
        call: HvcCall::Named(n),
        args: args.to_vec(),
    };
    let r = run_sized(l, a, None);
    assert_eq!(r.model.result, Outcome::Ok, "{}", r.model.what);
}

/// The device's register, read behind KCore's back.
fn device(l: &mut Lockstep, pa: u64, w: Width) -> u64 {
    l.core.core.hw.smmus().read(pa, w).unwrap().unwrap()
}

#[test]
fn ttbr0_writes_install_kcores_table() {
    let mut l = machine();
    for cb in [0u64, 3] {
        let reg = SMMU0 + 0x8000 + cb * 0x1000 + 0x20;
        assert_eq!(store(&mut l, reg, 0xdead_0000, 8), Outcome::Ok);
        let root = l.core.core.spt.read().root(0, cb as u32);
        assert_eq!(
            device(&mut l, reg, Width::W64),
            root,
            "bank {cb}: the host's table is not used"
        );
        assert_ne!(root, 0xdead_0000);
        // Either half alone (finding 6): the half gets KCore's value, never the host's.
        assert_eq!(store(&mut l, reg + 4, 0x1, 4), Outcome::Ok);
        assert_eq!(store(&mut l, reg, 0x4800_0000, 4), Outcome::Ok);
        assert_eq!(device(&mut l, reg, Width::W64), root);
        // 8 bytes at the upper half is misaligned: refused.
        let mut m = l.clone();
        assert_eq!(store(&mut m, reg + 4, 0x4800_0000, 8), Outcome::Halt);
        assert_eq!(device(&mut m, reg, Width::W64), root);
    }
}

#[test]
fn register_reads_return_the_devices_value_and_contextidr_is_kcores() {
    let mut l = machine();
    let id1 = device(&mut l, SMMU0 + 0x24, Width::W32);
    assert_eq!(id1 >> 28, 2, "NUMPAGENDXB as KCore assumes");
    assert_eq!(load(&mut l, SMMU0 + 0x24, 4), (Outcome::Ok, Some(id1)));
    // A 64-bit read of two 32-bit registers is not an SMMU access: refused.
    assert_eq!(load(&mut l.clone(), SMMU0 + 0x20, 8).0, Outcome::Halt);
    // Above the SMMU's own 64 KiB nothing answers: reads as zero.
    assert_eq!(load(&mut l, SMMU0 + 0x1_8034, 4), (Outcome::Ok, Some(0)));
    assert_eq!(store(&mut l, SMMU0 + 0x1_8034, 5, 4), Outcome::Ok);
    assert_eq!(store(&mut l, SMMU0 + 0x8000 + 0x34, 1, 4), Outcome::Halt);
}

#[test]
fn kcore_programs_the_smmus_at_boot() {
    let mut l = machine();
    for base in [SMMU0, SMMU0 + 0x10_0000] {
        let scr0 = device(&mut l, base, Width::W32);
        assert_eq!(scr0 & 1, 0, "client ports enabled (CLIENTPD clear)");
        assert_ne!(scr0 & (1 << 10), 0, "unmatched streams fault (USFCFG)");
        for cb in 0..8u64 {
            let page = base + 0x8000 + cb * 0x1000;
            assert_eq!(
                device(&mut l, page, Width::W32),
                BANK_SCTLR,
                "SCTLR of bank {cb}"
            );
            assert_eq!(
                device(&mut l, page + 0x30, Width::W32),
                24 | (1 << 6) | (5 << 16)
            );
            assert_eq!(
                device(&mut l, base + 0x1800 + 4 * cb, Width::W32) & 1,
                1,
                "VA64"
            );
        }
        for k in 0..16u64 {
            assert_eq!(
                device(&mut l, base + 0xC00 + 4 * k, Width::W32) >> 16,
                2,
                "S2CR {k} faults"
            );
        }
    }
    // Out of reset every stream would bypass translation: a device reaching the host's RAM.
    let raw = corevisor_sim::mem::SimMemory::new();
    let mut bus = raw.smmus().clone();
    assert_eq!(bus.read(SMMU0, Width::W32), Some(Ok(0x20_0001)));
}

#[test]
fn scr0_keeps_client_ports_enabled_and_unmatched_streams_faulting() {
    let mut l = machine();
    // CLIENTPD set, USFCFG clear, SMCFCFG set (the seed's rule): accepted with both forced.
    assert_eq!(store(&mut l, SMMU0, 0x20_0001, 4), Outcome::Ok);
    let scr0 = device(&mut l, SMMU0, Width::W32);
    assert_eq!((scr0 & 1, scr0 & (1 << 10)), (0, 1 << 10));
    // Misaligned 8 bytes over sCR1/sCR0 (finding E1): refused.
    assert_eq!(store(&mut l.clone(), SMMU0 + 4, 1, 8), Outcome::Halt);
    assert_eq!(store(&mut l, SMMU0, 0x20_0001, 8), Outcome::Halt);
}

#[test]
fn bank_reuse_reroutes_streams_and_resets_the_vmid() {
    let mut l = machine();
    // Bank 2 becomes the host's; the host routes stream group 9 to it.
    hvc(&mut l, HvcName::SmmuAllocPgd, &[2, 0, 0]);
    assert_eq!(
        store(&mut l, SMMU0 + 0x800 + 4 * 9, 0x8000_0030, 4),
        Outcome::Ok
    );
    assert_eq!(store(&mut l, SMMU0 + 0xC00 + 4 * 9, 2, 4), Outcome::Ok);
    assert_eq!(device(&mut l, SMMU0 + 0x1008, Width::W32) & 0xFF, 0);
    // ... and may not make it bypass, or route it to a free bank.
    assert_eq!(
        store(&mut l.clone(), SMMU0 + 0xC00 + 4 * 9, 1 << 16, 4),
        Outcome::Halt
    );
    assert_eq!(
        store(&mut l.clone(), SMMU0 + 0xC00 + 4 * 9, 3, 4),
        Outcome::Halt
    );
    // A free bank (0) goes to VM 1: stream 0 alone reaches it, through a bank programmed
    // afresh with the VM's VMID; the host's group 9 keeps its route to the host's bank 2.
    // Group 9 now matches stream 0, which no VM has yet: allowed, and undone at the alloc.
    assert_eq!(
        store(&mut l, SMMU0 + 0x800 + 4 * 9, 0x8000_0000, 4),
        Outcome::Ok
    );
    hvc(&mut l, HvcName::RegisterKvm, &[]);
    hvc(&mut l, HvcName::SmmuAllocPgd, &[0, 1, 0]);
    let smr9 = device(&mut l, SMMU0 + 0x800 + 4 * 9, Width::W32);
    assert_eq!(smr9, 0, "SMR 9 no longer matches the VM's stream");
    let s2cr = |l: &mut Lockstep, k: u64| device(l, SMMU0 + 0xC00 + 4 * k, Width::W32);
    assert_eq!(s2cr(&mut l, 0), 0, "S2CR 0 translates through bank 0");
    assert_eq!(s2cr(&mut l, 9), 2, "S2CR 9 still the host's route");
    let smr0 = device(&mut l, SMMU0 + 0x800, Width::W32);
    assert_eq!(smr0, 0x8000_0000, "SMR 0 matches stream 0 exactly");
    assert_eq!(
        device(&mut l, SMMU0 + 0x1000, Width::W32) & 0xFF,
        1,
        "CBAR VMID"
    );
    let sctlr = device(&mut l, SMMU0 + 0x8000, Width::W32);
    assert_eq!(sctlr, BANK_SCTLR);
    // The VM's group is frozen: the host may not route it to its own bank, nor re-match it.
    assert_eq!(store(&mut l.clone(), SMMU0 + 0xC00, 2, 4), Outcome::Halt);
    assert_eq!(
        store(&mut l.clone(), SMMU0 + 0x800, 0x8000_0030, 4),
        Outcome::Halt
    );
    // The host's bank stays a stage-2 bank (CBAR.TYPE 0) with VMID 0.
    assert_eq!(
        store(&mut l.clone(), SMMU0 + 0x1008, 1 << 16, 4),
        Outcome::Halt
    );
    assert_eq!(store(&mut l.clone(), SMMU0 + 0x1008, 5, 4), Outcome::Halt);
    assert_eq!(store(&mut l, SMMU0 + 0x1008, 0, 4), Outcome::Ok);
}
