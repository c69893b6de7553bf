//! The SMMU model's IOTLB: a translation stays cached until an invalidation that covers it
//! is completed by a synchronisation software waited for.

mod smmu_common;

use corevisor_kcore::hw::Hw;
use corevisor_sim::smmu::regs::{cb, gr0, gr1, tcr};
use corevisor_sim::smmu::{Access, Fault, IotlbSharing, Route, Smmu, SmmuConfig};
use smmu_common::*;

const SID: u32 = 3;
const IOVA: u64 = 0x8000_0000;
const HOST_PAGE: u64 = 0x4800_0000;

fn setup(cfg: SmmuConfig) -> (Smmu, Tables) {
    let mut t = Tables::new();
    t.map(1, IOVA, HOST_PAGE, RW);
    let mut s = Smmu::new(cfg);
    enable(&mut s);
    kcore_bank(&mut s, 1, 0, t.root(1));
    route(&mut s, 0, SID, 0, 1);
    (s, t)
}

/// The device reads through the SMMU: `Some(value)` if the access reached memory.
fn dma(s: &mut Smmu, t: &Tables, sid: u32, iova: u64) -> Option<u64> {
    s.dma_read(&t.mem, sid, iova).ok().map(|(v, _)| v)
}

/// Issue #13's scenario at the register level: a host page is mapped through a host bank,
/// the device uses it, KCore unmaps it (SMMU_CLEAR) and the page goes to a VM. The device
/// keeps reaching the page through the IOTLB until KCore invalidates (TLBIVMID, sTLBGSYNC,
/// polling sTLBGSTATUS); after that the access is refused.
#[test]
fn a_cleared_entry_stays_usable_until_kcore_style_invalidation() {
    let (mut s, mut t) = setup(SmmuConfig::default());
    t.mem.write64(HOST_PAGE, 0x1111);
    assert_eq!(dma(&mut s, &t, SID, IOVA), Some(0x1111));
    t.unmap(1, IOVA);
    // The page now holds a VM's secret.
    t.mem.write64(HOST_PAGE, 0x5EC2E7);
    let stale = s.translate(&t.mem, SID, IOVA, Access::Read).unwrap();
    assert!(stale.cached);
    assert_eq!(
        dma(&mut s, &t, SID, IOVA),
        Some(0x5EC2E7),
        "stale IOTLB entry"
    );
    // The TLBI alone is not enough: it completes with a sync software waits for.
    w32(&mut s, gr0::TLBIVMID, 0);
    assert_eq!(s.pending_invalidations(), 1);
    assert_eq!(dma(&mut s, &t, SID, IOVA), Some(0x5EC2E7));
    w32(&mut s, gr0::STLBGSYNC, 0);
    assert_eq!(dma(&mut s, &t, SID, IOVA), Some(0x5EC2E7));
    assert_eq!(r32(&mut s, gr0::STLBGSTATUS), 1, "sync still active");
    assert_eq!(dma(&mut s, &t, SID, IOVA), Some(0x5EC2E7));
    assert_eq!(r32(&mut s, gr0::STLBGSTATUS), 0, "sync complete");
    assert_eq!(s.pending_invalidations(), 0);
    let f = s.dma_read(&t.mem, SID, IOVA).unwrap_err();
    assert_eq!(f.fault, Fault::Translation { bank: 1, level: 3 });
    // The same through the helper KCore's code would use, on a fresh setup.
    let (mut s, mut t) = setup(SmmuConfig::default());
    assert!(dma(&mut s, &t, SID, IOVA).is_some());
    t.unmap(1, IOVA);
    assert!(dma(&mut s, &t, SID, IOVA).is_some());
    assert_eq!(kcore_invalidate(&mut s, 0), 2, "one poll sees it active");
    assert_eq!(dma(&mut s, &t, SID, IOVA), None);
}

#[test]
fn the_sync_latency_is_configurable() {
    for latency in [0, 3] {
        let cfg = SmmuConfig {
            sync_latency: latency,
            ..SmmuConfig::default()
        };
        let (mut s, mut t) = setup(cfg);
        assert!(dma(&mut s, &t, SID, IOVA).is_some());
        t.unmap(1, IOVA);
        assert_eq!(kcore_invalidate(&mut s, 0), latency + 1);
        assert_eq!(dma(&mut s, &t, SID, IOVA), None);
    }
}

#[test]
fn a_sync_completes_only_invalidations_issued_before_it() {
    let (mut s, mut t) = setup(SmmuConfig::default());
    assert!(dma(&mut s, &t, SID, IOVA).is_some());
    t.unmap(1, IOVA);
    w32(&mut s, gr0::STLBGSYNC, 0);
    w32(&mut s, gr0::TLBIVMID, 0);
    while r32(&mut s, gr0::STLBGSTATUS) != 0 {}
    assert!(
        dma(&mut s, &t, SID, IOVA).is_some(),
        "the TLBI came after the sync"
    );
    assert_eq!(kcore_invalidate(&mut s, 0), 2);
    assert_eq!(dma(&mut s, &t, SID, IOVA), None);
    // With no sync outstanding, the status reads as idle.
    assert_eq!(r32(&mut s, gr0::STLBGSTATUS), 0);
}

#[test]
fn tlbivmid_invalidates_its_vmid_only_and_tlbiallnsnh_everything() {
    let (mut s, mut t) = setup(SmmuConfig::default());
    t.map(2, IOVA, 0x4900_0000, RW);
    kcore_bank(&mut s, 2, 7, t.root(2));
    route(&mut s, 1, 9, 0, 2);
    assert!(dma(&mut s, &t, SID, IOVA).is_some());
    assert!(dma(&mut s, &t, 9, IOVA).is_some());
    assert_eq!(s.iotlb_entries(), 2);
    t.unmap(1, IOVA);
    t.unmap(2, IOVA);
    kcore_invalidate(&mut s, 7);
    assert_eq!(dma(&mut s, &t, 9, IOVA), None, "VMID 7 invalidated");
    assert!(dma(&mut s, &t, SID, IOVA).is_some(), "VMID 0 still cached");
    w32(&mut s, gr0::TLBIALLNSNH, 0);
    w32(&mut s, gr0::STLBGSYNC, 0);
    while r32(&mut s, gr0::STLBGSTATUS) != 0 {}
    assert_eq!(dma(&mut s, &t, SID, IOVA), None);
    assert_eq!(s.iotlb_entries(), 0);
}

#[test]
fn tlbiipas2_invalidates_one_page_of_the_banks_vmid_after_a_bank_sync() {
    let (mut s, mut t) = setup(SmmuConfig::default());
    t.map(1, IOVA + 0x1000, 0x4800_1000, RW);
    assert!(dma(&mut s, &t, SID, IOVA).is_some());
    assert!(dma(&mut s, &t, SID, IOVA + 0x1000).is_some());
    t.unmap(1, IOVA);
    t.unmap(1, IOVA + 0x1000);
    // By IPA, 64-bit: IPA[47:12] in bits [35:0].
    w64(&mut s, cb(1, cb::TLBIIPAS2), IOVA >> 12);
    // A global sync was not asked for; the bank's own sync completes it.
    w32(&mut s, cb(1, cb::TLBSYNC), 0);
    assert_eq!(r32(&mut s, cb(1, cb::TLBSTATUS)), 1);
    assert!(dma(&mut s, &t, SID, IOVA).is_some());
    assert_eq!(r32(&mut s, cb(1, cb::TLBSTATUS)), 0);
    assert_eq!(dma(&mut s, &t, SID, IOVA), None);
    assert!(
        dma(&mut s, &t, SID, IOVA + 0x1000).is_some(),
        "other page kept"
    );
    // The leaf-only form with a 32-bit write of the low word.
    w32(
        &mut s,
        cb(1, cb::TLBIIPAS2L),
        ((IOVA + 0x1000) >> 12) as u32,
    );
    // A bank sync does not complete another bank's or the global space's operations.
    w32(&mut s, gr0::TLBIVMID, 0);
    w32(&mut s, cb(2, cb::TLBSYNC), 0);
    while r32(&mut s, cb(2, cb::TLBSTATUS)) != 0 {}
    assert!(dma(&mut s, &t, SID, IOVA + 0x1000).is_some());
    assert_eq!(s.pending_invalidations(), 2);
    w32(&mut s, cb(1, cb::TLBSYNC), 0);
    while r32(&mut s, cb(1, cb::TLBSTATUS)) != 0 {}
    assert_eq!(dma(&mut s, &t, SID, IOVA + 0x1000), None);
    assert_eq!(s.pending_invalidations(), 1, "the global TLBIVMID waits");
    // A write of the upper word alone starts nothing.
    w32(&mut s, cb(1, cb::TLBIIPAS2 + 4), 0);
    assert_eq!(s.pending_invalidations(), 1);
}

/// Banks that share a VMID share IOTLB entries (VMID-tagged, as the architecture tags
/// stage-2 entries): a host bank given a VM's VMID reaches what the VM's bank cached.
#[test]
fn banks_sharing_a_vmid_share_iotlb_entries() {
    for (sharing, shared) in [
        (IotlbSharing::PerVmid, true),
        (IotlbSharing::PerContextBank, false),
    ] {
        let vm_page = 0x5000_0000;
        let mut t = Tables::new();
        t.map(3, IOVA, vm_page, RW); // the VM's bank 3 (VMID 1)
        t.mem.write64(vm_page, 0x5EC2E7);
        let cfg = SmmuConfig {
            iotlb: sharing,
            ..SmmuConfig::default()
        };
        let mut s = Smmu::new(cfg);
        enable(&mut s);
        kcore_bank(&mut s, 3, 1, t.root(3));
        kcore_bank(&mut s, 2, 1, t.root(2)); // host bank 2, CBAR.VMID set to 1
        route(&mut s, 0, 0x10, 0, 3); // the VM's device
        route(&mut s, 1, 0x20, 0, 2); // the host's device
        assert_eq!(dma(&mut s, &t, 0x10, IOVA), Some(0x5EC2E7));
        let host = s.translate(&t.mem, 0x20, IOVA, Access::Read);
        if shared {
            let h = host.unwrap();
            assert_eq!((h.pa, h.route, h.cached), (vm_page, Route::Bank(2), true));
        } else {
            assert_eq!(
                host.unwrap_err().fault,
                Fault::Translation { bank: 2, level: 1 }
            );
        }
        // With a VMID of its own the host bank never hits the VM's entries.
        w32(&mut s, gr1::cbar(2), 0);
        assert!(s.translate(&t.mem, 0x20, IOVA, Access::Read).is_err());
    }
}

/// A leaf with the contiguous hint (bit 52) may be cached as one entry for its 16-page
/// aligned run: the neighbouring pages then translate from it, whatever the table says.
#[test]
fn a_contiguous_hint_widens_what_one_cached_entry_translates() {
    for (hint, widened) in [(true, true), (false, false)] {
        let cfg = SmmuConfig {
            contiguous_hint: hint,
            ..SmmuConfig::default()
        };
        let (mut s, mut t) = setup(cfg);
        // Host page 0x4801_0000 mapped at IOVA + 0x1_0000 with the hint; the pages after it
        // (e.g. a VM's) are mapped nowhere.
        t.map(1, IOVA + 0x1_0000, 0x4801_0000, RW | (1 << 52));
        let r = s
            .translate(&t.mem, SID, IOVA + 0x1_0000, Access::Read)
            .unwrap();
        assert_eq!(r.pa, 0x4801_0000);
        let next = s.translate(&t.mem, SID, IOVA + 0x1_3008, Access::Write);
        if widened {
            let n = next.unwrap();
            assert_eq!((n.pa, n.cached), (0x4801_3008, true));
        } else {
            assert!(next.is_err());
        }
        // Outside the aligned 64 KiB run the entry does not apply.
        assert!(s
            .translate(&t.mem, SID, IOVA + 0x2_0000, Access::Read)
            .is_err());
    }
}

/// The IOTLB is not the registers: changing TTBR0 or TCR without invalidating keeps the old
/// translations, as on hardware.
#[test]
fn reprogramming_a_bank_without_invalidation_keeps_its_translations() {
    let (mut s, t) = setup(SmmuConfig::default());
    assert_eq!(
        s.translate(&t.mem, SID, IOVA, Access::Read).unwrap().pa,
        HOST_PAGE
    );
    w64(&mut s, cb(1, cb::TTBR0), t.root(5));
    w32(
        &mut s,
        cb(1, cb::TCR),
        16 | (2 << tcr::SL0_SHIFT) | (5 << tcr::PS_SHIFT),
    );
    let r = s.translate(&t.mem, SID, IOVA, Access::Read).unwrap();
    assert_eq!((r.pa, r.cached), (HOST_PAGE, true));
    assert!(s
        .translate(&t.mem, SID, IOVA + 0x1000, Access::Read)
        .is_err());
    kcore_invalidate(&mut s, 0);
    assert!(s.translate(&t.mem, SID, IOVA, Access::Read).is_err());
}

#[test]
fn faults_are_not_cached_and_permissions_are_checked_on_hits() {
    let (mut s, mut t) = setup(SmmuConfig::default());
    let iova = IOVA + 0x7000;
    assert!(s.translate(&t.mem, SID, iova, Access::Read).is_err());
    t.map(1, iova, 0x4800_7000, RO);
    let r = s.translate(&t.mem, SID, iova, Access::Read).unwrap();
    assert_eq!((r.pa, r.cached), (0x4800_7000, false));
    let w = s.translate(&t.mem, SID, iova, Access::Write).unwrap_err();
    assert_eq!(w.fault, Fault::Permission { bank: 1, level: 3 });
    assert_eq!(s.iotlb_entries(), 1);
    // Bypassed accesses are not cached either.
    w32(&mut s, gr0::smr(0), 0);
    w32(&mut s, gr0::SCR0, 0);
    assert!(s.translate(&t.mem, SID, iova, Access::Read).is_ok());
    assert_eq!(s.iotlb_entries(), 1);
}
