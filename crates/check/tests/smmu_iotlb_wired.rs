//! Issue 13, "must show" 2: with the SMMU model wired into the machine, a device's cached
//! translation (IOTLB) does not outlive KCore's unmap. After SMMU_CLEAR, or after the IOVA
//! is mapped to another page, KCore's TLBIVMID + sTLBGSYNC (polled) leave nothing stale and
//! the device faults or reaches the new page; with that invalidation removed (the planted
//! fault `missed_smmu_tlbi`, with the `mutants` feature) the device keeps reaching the old
//! page.

use corevisor_check::lockstep::Lockstep;
use corevisor_sim::machine::{CoreMachine, Outcome};
use corevisor_sim::scenario::{parse, Action, HvcCall, HvcName, Step};
use corevisor_sim::smmu::{Access, Fault, Route};
use corevisor_spec::profile::ProfileKind;

const IOVA: u64 = 0x9000_0000;
const PAGE_A: u64 = 0x4700_0000;
const PAGE_B: u64 = 0x4700_1000;

fn machine() -> CoreMachine {
    let sc = parse("t.json", r#"{"name": "t", "profile": "arm", "steps": []}"#).unwrap();
    Lockstep::for_scenario(&sc, Some(ProfileKind::Arm))
        .unwrap()
        .core
}

/// Runs `body` with KCore's SMMU invalidation removed (`skip`) or in place.
#[cfg(feature = "mutants")]
fn planted<R>(skip: bool, body: impl FnOnce() -> R) -> R {
    use corevisor_kcore::mutants::with;
    with(
        skip.then_some(corevisor_kcore::mutants::Fault::MissedSmmuTlbi),
        body,
    )
}

fn hvc(m: &mut CoreMachine, n: HvcName, args: &[u64]) {
    let a = Action::Hvc {
        call: HvcCall::Named(n),
        args: args.iter().map(|&v| v as i128).collect(),
    };
    let r = m.step(&Step::new(0, a));
    assert_eq!(r.outcome, Outcome::Ok, "{n:?}");
}

/// Stream 1 (KCore routes it to bank 1) reads `IOVA` as the SMMU translates it.
fn device_reads(m: &mut CoreMachine) -> Result<(u64, bool), Fault> {
    let hw = &m.core.hw;
    hw.smmus()
        .smmu(0)
        .translate(&hw.phys, 1, IOVA, Access::Read)
        .map(|t| {
            assert_eq!(t.route, Route::Bank(1));
            (t.pa, t.cached)
        })
        .map_err(|f| f.fault)
}

/// VM 1's device on bank 1 with `IOVA` mapped to page A, read once (now cached).
fn with_cached_translation() -> CoreMachine {
    let mut m = machine();
    hvc(&mut m, HvcName::RegisterKvm, &[]);
    hvc(&mut m, HvcName::SmmuAllocPgd, &[1, 1, 0]);
    hvc(&mut m, HvcName::SmmuLpaeMap, &[IOVA, PAGE_A, 0xC3, 1, 0]);
    assert_eq!(device_reads(&mut m), Ok((PAGE_A, false)), "walked");
    assert_eq!(device_reads(&mut m), Ok((PAGE_A, true)), "from the IOTLB");
    m
}

#[test]
fn after_smmu_clear_the_device_faults() {
    let mut m = with_cached_translation();
    let before = m.core.hw.smmus().smmu(0).iotlb_entries();
    hvc(&mut m, HvcName::SmmuClear, &[IOVA, 1, 0]);
    assert_eq!(
        m.core.hw.smmus().smmu(0).pending_invalidations(),
        0,
        "sync observed"
    );
    assert!(m.core.hw.smmus().smmu(0).iotlb_entries() < before);
    assert_eq!(
        device_reads(&mut m),
        Err(Fault::Translation { bank: 1, level: 3 }),
        "nothing stale: the walk finds the cleared leaf"
    );
}

#[cfg(feature = "mutants")]
#[test]
fn without_the_invalidation_the_device_keeps_the_cleared_page() {
    let mut m = with_cached_translation();
    planted(true, || hvc(&mut m, HvcName::SmmuClear, &[IOVA, 1, 0]));
    assert_eq!(
        device_reads(&mut m),
        Ok((PAGE_A, true)),
        "without KCore's TLBIVMID + sync the device keeps the unmapped page"
    );
}

fn remap(m: &mut CoreMachine) {
    hvc(m, HvcName::SmmuClear, &[IOVA, 1, 0]);
    hvc(m, HvcName::SmmuLpaeMap, &[IOVA, PAGE_B, 0xC3, 1, 0]);
}

#[test]
fn after_a_remap_the_device_reaches_the_new_page() {
    let mut m = with_cached_translation();
    remap(&mut m);
    assert_eq!(device_reads(&mut m).map(|t| t.0), Ok(PAGE_B));
}

#[cfg(feature = "mutants")]
#[test]
fn without_the_invalidation_a_remapped_device_keeps_the_old_page() {
    let mut m = with_cached_translation();
    planted(true, || remap(&mut m));
    assert_eq!(device_reads(&mut m).map(|t| t.0), Ok(PAGE_A));
    let mut m = with_cached_translation();
    planted(false, || remap(&mut m));
    assert_eq!(device_reads(&mut m).map(|t| t.0), Ok(PAGE_B));
}

#[test]
fn a_bank_given_back_and_reused_carries_nothing_of_its_old_owner() {
    // Bank 1 is VM 1's with a cached translation; the VM is destroyed before it runs
    // (never verified: SMMU_FREE_PGD needs POWEROFF, so the bank is freed by hand here).
    let mut m = with_cached_translation();
    m.core.vms[1].get_mut().state = corevisor_kcore::consts::POWEROFF;
    hvc(&mut m, HvcName::SmmuFreePgd, &[1, 0]);
    let hw = &m.core.hw;
    let freed = hw
        .smmus()
        .smmu(0)
        .translate(&hw.phys, 1, IOVA, Access::Read);
    assert_eq!(
        freed.map_err(|f| f.fault),
        Err(Fault::InvalidContext),
        "stream 1 now faults"
    );
    assert_eq!(
        m.core.hw.smmus().smmu(0).iotlb_entries(),
        0,
        "VMID 1's entries are gone"
    );
    // The host takes the bank: VMID 0, empty tables.
    hvc(&mut m, HvcName::SmmuAllocPgd, &[1, 0, 0]);
    assert_eq!(m.core.hw.smmus().smmu(0).bank_vmid(1), Some(0));
    assert_eq!(
        device_reads(&mut m),
        Err(Fault::Translation { bank: 1, level: 1 })
    );
}
