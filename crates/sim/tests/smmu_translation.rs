//! Device accesses through the SMMU model: bypass and fault as the global registers and the
//! stream mapping say, and stage-2 walks of KCore's tables (and of tables a host could make
//! the SMMU walk) as a context bank's TCR and TTBR0 say.

mod smmu_common;

use corevisor_kcore::hw::Hw;
use corevisor_sim::mem::SimMemory;
use corevisor_sim::smmu::regs::{cb, cba2r, cbar, fsr, gfsr, gr0, gr1, s2cr, scr0, sctlr, tcr};
use corevisor_sim::smmu::{
    Access, Bypass, DmaFault, Fault, Response, Route, Smmu, SmmuConfig, Translated,
};
use smmu_common::*;

const SID: u32 = 0x21;
const IOVA: u64 = 0x8000_0000;
const PAGE_PA: u64 = 0x4800_0000;

/// SMMU 0 with stream `SID` routed to bank 1, which KCore set up with VMID 1 and a map of
/// `IOVA` to `PAGE_PA` (read/write).
fn kcore_setup() -> (Smmu, Tables) {
    let mut t = Tables::new();
    t.map(1, IOVA, PAGE_PA, RW);
    let mut s = smmu();
    kcore_bank(&mut s, 1, 1, t.root(1));
    route(&mut s, 0, SID, 0, 1);
    (s, t)
}

fn read(s: &mut Smmu, t: &Tables, sid: u32, iova: u64) -> Result<Translated, DmaFault> {
    s.translate(&t.mem, sid, iova, Access::Read)
}

fn fault(r: Result<Translated, DmaFault>) -> Fault {
    r.expect_err("the access faults").fault
}

#[test]
fn out_of_reset_every_access_bypasses() {
    let mut s = Smmu::new(SmmuConfig::default());
    let mem = SimMemory::new();
    let t = s.translate(&mem, 7, 0x1234_5678, Access::Write).unwrap();
    assert_eq!(t.pa, 0x1234_5678);
    assert_eq!(t.route, Route::Bypass(Bypass::ClientPortsDisabled));
}

#[test]
fn kcore_tables_translate_through_the_routed_bank() {
    let (mut s, mut t) = kcore_setup();
    let r = read(&mut s, &t, SID, IOVA + 0x123).unwrap();
    assert_eq!(r.pa, PAGE_PA + 0x123);
    assert_eq!(r.route, Route::Bank(1));
    assert!(!r.cached);
    // The second root page (IOVA bits 39:30 >= 512) is the other concatenated table.
    let high = (700u64 << 30) | (3 << 21) | (9 << 12);
    t.map(1, high, 0x4900_0000, RW);
    assert_eq!(read(&mut s, &t, SID, high + 8).unwrap().pa, 0x4900_0008);
    assert!(
        t.mem.read64(t.root(1) + 700 * 8) & 3 == 3,
        "root entry in page 2"
    );
    // And the memory access itself.
    t.mem.write64(PAGE_PA + 0x40, 0xFEED);
    assert_eq!(s.dma_read(&t.mem, SID, IOVA + 0x40).unwrap().0, 0xFEED);
    s.dma_write(&mut t.mem, SID, IOVA + 0x48, 0xBEEF).unwrap();
    assert_eq!(t.mem.read64(PAGE_PA + 0x48), 0xBEEF);
}

#[test]
fn a_missing_mapping_is_a_translation_fault_recorded_in_the_bank() {
    let (mut s, t) = kcore_setup();
    // No leaf in an existing level-3 table.
    let f = s
        .translate(&t.mem, SID, IOVA + 0x5000, Access::Write)
        .unwrap_err();
    assert_eq!(f.fault, Fault::Translation { bank: 1, level: 3 });
    assert_eq!(f.response, Response::Abort, "SCTLR.CFRE");
    assert_eq!(r32(&mut s, cb(1, cb::FSR)), fsr::TF);
    assert_eq!(r64(&mut s, cb(1, cb::FAR)), IOVA + 0x5000);
    assert_eq!(
        r32(&mut s, cb(1, cb::FSYNR0)),
        3 | (1 << 4),
        "level 3, write"
    );
    assert_eq!(r32(&mut s, gr1::cbfrsynra(1)), SID);
    // A second fault only adds MULTI.
    assert_eq!(
        fault(read(&mut s, &t, SID, 0x10_0000_0000)),
        Fault::Translation { bank: 1, level: 1 }
    );
    assert_eq!(r32(&mut s, cb(1, cb::FSR)), fsr::TF | fsr::MULTI);
    assert_eq!(r64(&mut s, cb(1, cb::FAR)), IOVA + 0x5000);
    // Beyond the 40-bit input size.
    w32(&mut s, cb(1, cb::FSR), u32::MAX);
    assert_eq!(
        fault(read(&mut s, &t, SID, 1 << 40)),
        Fault::Translation { bank: 1, level: 1 }
    );
    // Nothing reached memory.
    let mut mem = t.mem.clone();
    assert!(s.dma_write(&mut mem, SID, IOVA + 0x5000, 9).is_err());
    assert_eq!(mem.read64(IOVA + 0x5000), 0);
    assert_eq!(mem.resident_pages(), t.mem.resident_pages());
}

#[test]
fn the_client_port_disable_bypasses_every_stream() {
    let (mut s, t) = kcore_setup();
    assert_eq!(read(&mut s, &t, SID, IOVA).unwrap().route, Route::Bank(1));
    let v = r32(&mut s, gr0::SCR0);
    w32(&mut s, gr0::SCR0, v | scr0::CLIENTPD);
    for sid in [SID, 0, 0x7FFF] {
        let r = read(&mut s, &t, sid, 0x4000_1000).unwrap();
        assert_eq!(r.route, Route::Bypass(Bypass::ClientPortsDisabled));
        assert_eq!(r.pa, 0x4000_1000, "physical memory, untranslated");
    }
    w32(&mut s, gr0::SCR0, v);
    assert_eq!(read(&mut s, &t, SID, IOVA).unwrap().pa, PAGE_PA);
}

#[test]
fn an_unmatched_stream_faults_or_bypasses_as_usfcfg_says() {
    let (mut s, t) = kcore_setup();
    let f = read(&mut s, &t, 0x55, 0x4000_2008).unwrap_err();
    assert_eq!(f.fault, Fault::UnidentifiedStream);
    assert_eq!(f.response, Response::Abort, "sCR0.GFRE");
    assert_eq!(r32(&mut s, gr0::SGFSR), gfsr::USF);
    assert_eq!(r32(&mut s, gr0::SGFSYNR1), 0x55);
    assert_eq!(r64(&mut s, gr0::SGFAR), 0x4000_2008);
    // Without GFRE the transaction completes as RAZ/WI.
    w32(&mut s, gr0::SCR0, scr0::USFCFG);
    assert_eq!(
        read(&mut s, &t, 0x55, 0).unwrap_err().response,
        Response::RazWi
    );
    assert_eq!(r32(&mut s, gr0::SGFSR), gfsr::USF | gfsr::MULTI);
    // USFCFG = 0: unmatched streams bypass.
    w32(&mut s, gr0::SCR0, 0);
    let r = read(&mut s, &t, 0x55, 0x4000_2008).unwrap();
    assert_eq!(
        (r.pa, r.route),
        (0x4000_2008, Route::Bypass(Bypass::UnmatchedStream))
    );
    // A matched stream is still translated.
    assert_eq!(read(&mut s, &t, SID, IOVA).unwrap().pa, PAGE_PA);
}

#[test]
fn stream_matching_uses_the_valid_bit_the_id_and_the_mask() {
    let (mut s, t) = kcore_setup();
    // Group 1: IDs 0x40..=0x43 (mask 0x3) to bank 1.
    route(&mut s, 1, 0x40, 0x3, 1);
    for sid in 0x40..=0x43 {
        assert_eq!(read(&mut s, &t, sid, IOVA).unwrap().route, Route::Bank(1));
    }
    assert_eq!(
        fault(read(&mut s, &t, 0x44, IOVA)),
        Fault::UnidentifiedStream
    );
    // Stream IDs are 15 bits wide: bit 15 is not seen.
    assert_eq!(
        read(&mut s, &t, 0x8000 | SID, IOVA).unwrap().route,
        Route::Bank(1)
    );
    // Clearing VALID unroutes the stream.
    let v = r32(&mut s, gr0::smr(1));
    w32(&mut s, gr0::smr(1), v & !(1 << 31));
    assert_eq!(
        fault(read(&mut s, &t, 0x41, IOVA)),
        Fault::UnidentifiedStream
    );
    // Rewriting an SMR's ID re-routes a stream without touching its S2CR.
    w32(&mut s, gr0::smr(0), (1 << 31) | 0x99);
    assert_eq!(
        fault(read(&mut s, &t, SID, IOVA)),
        Fault::UnidentifiedStream
    );
    assert_eq!(read(&mut s, &t, 0x99, IOVA).unwrap().pa, PAGE_PA);
}

#[test]
fn a_stream_matching_two_groups_is_a_conflict_fault() {
    let (mut s, t) = kcore_setup();
    route(&mut s, 5, SID & !1, 1, 2);
    let f = read(&mut s, &t, SID, IOVA).unwrap_err();
    assert_eq!(f.fault, Fault::StreamMatchConflict);
    assert_eq!(r32(&mut s, gr0::SGFSR), gfsr::SMCF);
    // Writing SMCFCFG = 0 changes nothing on this SMMU.
    w32(&mut s, gr0::SCR0, scr0::USFCFG);
    assert_eq!(
        fault(read(&mut s, &t, SID, IOVA)),
        Fault::StreamMatchConflict
    );
}

#[test]
fn s2cr_types_bypass_fault_or_translate() {
    let (mut s, t) = kcore_setup();
    let ty = |v: u32| v << s2cr::TYPE_SHIFT;
    w32(&mut s, gr0::s2cr(0), ty(s2cr::TYPE_BYPASS) | 1);
    let r = read(&mut s, &t, SID, 0x4000_3000).unwrap();
    assert_eq!(
        (r.pa, r.route),
        (0x4000_3000, Route::Bypass(Bypass::S2cr(0)))
    );
    w32(&mut s, gr0::s2cr(0), ty(s2cr::TYPE_FAULT) | 1);
    assert_eq!(fault(read(&mut s, &t, SID, IOVA)), Fault::InvalidContext);
    assert_eq!(r32(&mut s, gr0::SGFSR), gfsr::ICF);
    w32(&mut s, gr0::s2cr(0), ty(3) | 1);
    assert_eq!(fault(read(&mut s, &t, SID, IOVA)), Fault::InvalidContext);
    w32(&mut s, gr0::s2cr(0), ty(s2cr::TYPE_TRANSLATE) | 8);
    assert_eq!(
        fault(read(&mut s, &t, SID, IOVA)),
        Fault::UnimplementedContextBank
    );
    // Pointed at another bank, the stream uses that bank's tables.
    w32(&mut s, gr0::s2cr(0), ty(s2cr::TYPE_TRANSLATE) | 2);
    kcore_bank(&mut s, 2, 2, t.root(2));
    assert_eq!(
        fault(read(&mut s, &t, SID, IOVA)),
        Fault::Translation { bank: 2, level: 1 }
    );
    w32(&mut s, gr0::s2cr(0), ty(s2cr::TYPE_TRANSLATE) | 1);
    assert_eq!(read(&mut s, &t, SID, IOVA).unwrap().pa, PAGE_PA);
}

#[test]
fn a_bank_asking_for_stage_1_is_an_invalid_context() {
    let (mut s, t) = kcore_setup();
    for ty in 1..=3u32 {
        w32(&mut s, gr1::cbar(1), (ty << cbar::TYPE_SHIFT) | 1);
        assert_eq!(fault(read(&mut s, &t, SID, IOVA)), Fault::InvalidContext);
    }
    // IRPTNDX and the other attribute fields do not change the translation.
    w32(
        &mut s,
        gr1::cbar(1),
        (5 << cbar::IRPTNDX_SHIFT) | (3 << 20) | 1,
    );
    assert_eq!(read(&mut s, &t, SID, IOVA).unwrap().pa, PAGE_PA);
}

#[test]
fn a_bank_with_sctlr_m_clear_bypasses_that_bank_only() {
    let (mut s, mut t) = kcore_setup();
    t.map(2, IOVA, 0x4A00_0000, RW);
    kcore_bank(&mut s, 2, 2, t.root(2));
    route(&mut s, 1, 0x30, 0, 2);
    let on = r32(&mut s, cb(1, cb::SCTLR));
    w32(&mut s, cb(1, cb::SCTLR), on & !sctlr::M);
    let r = read(&mut s, &t, SID, 0x7000_0000).unwrap();
    assert_eq!(
        (r.pa, r.route),
        (0x7000_0000, Route::Bypass(Bypass::BankDisabled(1)))
    );
    assert_eq!(read(&mut s, &t, 0x30, IOVA).unwrap().pa, 0x4A00_0000);
    assert!(read(&mut s, &t, 0x30, 0x7000_0000).is_err());
    w32(&mut s, cb(1, cb::SCTLR), on);
    assert_eq!(read(&mut s, &t, SID, IOVA).unwrap().pa, PAGE_PA);
}

#[test]
fn s2ap_decides_reads_and_writes() {
    let (mut s, mut t) = kcore_setup();
    t.map(1, IOVA + 0x1000, 0x4800_1000, RO);
    t.map(1, IOVA + 0x2000, 0x4800_2000, WO);
    t.map(1, IOVA + 0x3000, 0x4800_3000, 0x03);
    let w = |s: &mut Smmu, iova| s.translate(&t.mem, SID, iova, Access::Write);
    let r = |s: &mut Smmu, iova| s.translate(&t.mem, SID, iova, Access::Read);
    assert!(r(&mut s, IOVA + 0x1000).is_ok());
    assert_eq!(
        w(&mut s, IOVA + 0x1000).unwrap_err().fault,
        Fault::Permission { bank: 1, level: 3 }
    );
    assert!(w(&mut s, IOVA + 0x2000).is_ok());
    assert!(r(&mut s, IOVA + 0x2000).is_err());
    assert!(r(&mut s, IOVA + 0x3000).is_err());
    assert!(w(&mut s, IOVA + 0x3000).is_err());
    assert_ne!(r32(&mut s, cb(1, cb::FSR)) & fsr::PF, 0);
}

#[test]
fn a_descriptor_without_the_access_flag_faults_unless_affd() {
    let t = Tables::new();
    // KCore always adds AF; a table written by someone else may not.
    let root = 0x4400_0000;
    let (l2, l3) = (0x4400_3000, 0x4400_4000);
    t.mem.write64(root + 2 * 8, l2 | 3);
    t.mem.write64(l2, l3 | 3);
    t.mem.write64(l3, 0x4500_0000 | 0xC3);
    let mut s = smmu();
    kcore_bank(&mut s, 0, 3, root);
    route(&mut s, 0, 1, 0, 0);
    assert_eq!(
        fault(read(&mut s, &t, 1, 2 << 30)),
        Fault::AccessFlag { bank: 0, level: 3 }
    );
    assert_ne!(r32(&mut s, cb(0, cb::FSR)) & fsr::AFF, 0);
    let v = r32(&mut s, cb(0, cb::SCTLR));
    w32(&mut s, cb(0, cb::SCTLR), v | sctlr::AFFD);
    assert_eq!(read(&mut s, &t, 1, 2 << 30).unwrap().pa, 0x4500_0000);
}

#[test]
fn blocks_at_levels_1_and_2_and_the_reserved_level_3_encoding() {
    let t = Tables::new();
    let root = 0x4400_0000;
    let l2 = 0x4400_3000;
    t.mem.write64(root + 8, 0x8000_0000 | 0x4C1); // 1 GiB block at IOVA 1 GiB
    t.mem.write64(root + 2 * 8, l2 | 3);
    t.mem.write64(l2 + 8, 0x4620_0000 | 0x4C1); // 2 MiB block at IOVA 2 GiB + 2 MiB
    t.mem.write64(l2 + 2 * 8, 0x4700_0000 | 3);
    t.mem.write64(0x4700_0000, 0x4800_0000 | 0x4C1); // level 3 with type 0b01
    let mut s = smmu();
    kcore_bank(&mut s, 0, 3, root);
    route(&mut s, 0, 1, 0, 0);
    assert_eq!(
        read(&mut s, &t, 1, (1 << 30) + 0x1234_5678).unwrap().pa,
        0x9234_5678
    );
    assert_eq!(
        read(&mut s, &t, 1, (2 << 30) + (1 << 21) + 0x1_2345)
            .unwrap()
            .pa,
        0x4621_2345
    );
    assert_eq!(
        fault(read(&mut s, &t, 1, (2 << 30) + (2 << 21))),
        Fault::Translation { bank: 0, level: 3 }
    );
}

/// What a host that may write a bank's TCR can do with KCore's tables: with the walk starting
/// one level early, KCore's leaf for a host page becomes a table pointer, so the host page's
/// contents are read as level-3 descriptors.
#[test]
fn the_tcr_starting_level_changes_the_walk() {
    let host_page = 0x4800_0000;
    let victim = 0x5F00_0000; // memory the host does not own
    let iova = (2u64 << 30) | (3 << 21) | (4 << 12);
    let mut t = Tables::new();
    t.map(1, iova, host_page, RW);
    let mut s = smmu();
    kcore_bank(&mut s, 1, 0, t.root(1));
    route(&mut s, 0, SID, 0, 1);
    assert_eq!(read(&mut s, &t, SID, iova).unwrap().pa, host_page);
    // The host writes a descriptor into its own page, at index 5.
    t.mem.write64(host_page + 5 * 8, victim | 0x7C3);
    // 48-bit input, starting at level 0: root[2] -> KCore's level-2 table read as level 1,
    // whose entry 3 -> KCore's level-3 table read as level 2, whose entry 4 (the leaf for the
    // host page) is a table pointer to the host page, read as level 3.
    let crafted = (2u64 << 39) | (3 << 30) | (4 << 21) | (5 << 12) | 0x88;
    assert!(
        read(&mut s, &t, SID, crafted).is_err(),
        "with KCore's TCR that IOVA is beyond the input size"
    );
    w32(
        &mut s,
        cb(1, cb::TCR),
        16 | (2 << tcr::SL0_SHIFT) | (5 << tcr::PS_SHIFT),
    );
    let r = read(&mut s, &t, SID, crafted).unwrap();
    assert_eq!(r.pa, victim + 0x88);
    assert!(!r.cached);
    // Starting at level 2 instead (34 bits, 16 concatenated tables, so a 64 KiB-aligned
    // root): the walk reads the 16 pages of KCore's pool from bank 0's root on as one
    // level-2 table. Entry 1024 + 2 is bank 1's level-1 entry 2, a pointer to KCore's
    // level-2 table, now read as a level-3 table whose table descriptors are "pages"
    // without the access flag.
    w32(
        &mut s,
        cb(1, cb::TCR),
        30 | (0 << tcr::SL0_SHIFT) | (5 << tcr::PS_SHIFT),
    );
    assert_eq!(
        fault(read(&mut s, &t, SID, (1026 << 21) | (3 << 12))),
        Fault::AccessFlag { bank: 1, level: 3 }
    );
    // A reserved configuration (SL0 = 3) cannot be walked: every access faults.
    w32(
        &mut s,
        cb(1, cb::TCR),
        24 | (3 << tcr::SL0_SHIFT) | (5 << tcr::PS_SHIFT),
    );
    assert_eq!(
        fault(read(&mut s, &t, SID, iova + (1 << 12))),
        Fault::Translation { bank: 1, level: 0 }
    );
    // So does a granule the SMMU does not implement.
    w32(
        &mut s,
        cb(1, cb::TCR),
        tcr::KCORE_AARCH64 | (1 << tcr::TG0_SHIFT),
    );
    assert!(read(&mut s, &t, SID, iova + (2 << 12)).is_err());
}

/// What a host that may write TTBR0's upper half can do: the root moves to
/// `high << 32 | KCore's low half`, and whoever owns that page owns the bank.
#[test]
fn a_32_bit_write_of_ttbr0_high_moves_the_root() {
    let victim = 0x5F00_0000;
    let (mut s, t) = kcore_setup();
    let root = t.root(1);
    let fake_root = (1u64 << 32) | (root & 0xFFFF_FFFF);
    let (l2, l3) = (0x1_0000_8000, 0x1_0000_9000);
    t.mem.write64(fake_root + 3 * 8, l2 | 3);
    t.mem.write64(l2, l3 | 3);
    t.mem.write64(l3, victim | 0x7C3);
    let iova = 3u64 << 30;
    assert_eq!(
        fault(read(&mut s, &t, SID, iova)),
        Fault::Translation { bank: 1, level: 1 },
        "KCore's table maps nothing there"
    );
    w32(&mut s, cb(1, cb::TTBR0 + 4), 1);
    assert_eq!(r64(&mut s, cb(1, cb::TTBR0)), fake_root);
    assert_eq!(read(&mut s, &t, SID, iova).unwrap().pa, victim);
    // The output size bounds it: with PASize = 32 bits the root is out of range.
    w32(&mut s, cb(1, cb::FSR), u32::MAX);
    w32(&mut s, cb(1, cb::TCR), 24 | (1 << tcr::SL0_SHIFT));
    assert_eq!(
        fault(read(&mut s, &t, SID, iova + 0x1000)),
        Fault::AddressSize { bank: 1, level: 1 }
    );
    assert_ne!(r32(&mut s, cb(1, cb::FSR)) & fsr::ASF, 0);
}

#[test]
fn the_aarch32_format_walks_40_bits_with_a_40_bit_output() {
    let t = Tables::new();
    let root = 0x4400_0000;
    let (l2, l3) = (0x4400_3000, 0x4400_4000);
    t.mem.write64(root + 600 * 8, l2 | 3);
    t.mem.write64(l2 + 8, l3 | 3);
    t.mem.write64(l3 + 2 * 8, 0x4500_0000 | 0x7C3);
    let mut s = smmu();
    kcore_bank(&mut s, 0, 3, root);
    route(&mut s, 0, 1, 0, 0);
    w32(&mut s, gr1::cba2r(0), 0);
    // T0SZ = -8 (S = 1), SL0 = 1.
    w32(&mut s, cb(0, cb::TCR), 0b1_1000 | (1 << tcr::SL0_SHIFT));
    let iova = (600u64 << 30) | (1 << 21) | (2 << 12) | 0x10;
    assert_eq!(read(&mut s, &t, 1, iova).unwrap().pa, 0x4500_0010);
    // KCore's TCR value reads as the same 40-bit walk from level 1 in the AArch32 format
    // (T0SZ[3:0] = 0b1000 = -8, S = 1) with a 40-bit output size; KCore's pool lies in RAM
    // (below 1 TiB), so a host clearing CBA2R.VA64 changes nothing for KCore's tables.
    let (mut s, t) = kcore_setup();
    w32(&mut s, gr1::cba2r(1), 0);
    assert_eq!(read(&mut s, &t, SID, IOVA).unwrap().pa, PAGE_PA);
    // An output address beyond 40 bits is an address-size fault in that format.
    let mut t = t;
    t.map(1, IOVA + 0x1000, 1 << 41, RW);
    assert_eq!(
        fault(read(&mut s, &t, SID, IOVA + 0x1000)),
        Fault::AddressSize { bank: 1, level: 3 }
    );
    w32(&mut s, gr1::cba2r(1), cba2r::VA64);
    w32(&mut s, cb(1, cb::TCR), tcr::KCORE_AARCH64);
    assert_eq!(read(&mut s, &t, SID, IOVA).unwrap().pa, PAGE_PA);
}

#[test]
fn a_stalling_bank_holds_the_faulting_access_until_resume() {
    let (mut s, t) = kcore_setup();
    let v = r32(&mut s, cb(1, cb::SCTLR));
    w32(&mut s, cb(1, cb::SCTLR), v | sctlr::CFCFG);
    let f = read(&mut s, &t, SID, IOVA + 0x9000).unwrap_err();
    assert_eq!(f.response, Response::Stall);
    assert_eq!(r32(&mut s, cb(1, cb::FSR)), fsr::TF | fsr::SS);
    assert_eq!(
        read(&mut s, &t, SID, IOVA + 0xA000).unwrap_err().response,
        Response::Stall
    );
    assert_eq!(r32(&mut s, cb(1, cb::FSR)), fsr::TF | fsr::SS | fsr::MULTI);
    assert_eq!(
        r64(&mut s, cb(1, cb::FAR)),
        IOVA + 0x9000,
        "the first fault"
    );
    w32(&mut s, cb(1, cb::RESUME), 1); // terminate
    assert_eq!(r32(&mut s, cb(1, cb::FSR)), fsr::TF | fsr::MULTI);
    // Terminating without CFRE: RAZ/WI.
    w32(&mut s, cb(1, cb::SCTLR), v & !(sctlr::CFCFG | sctlr::CFRE));
    assert_eq!(
        read(&mut s, &t, SID, IOVA + 0x9000).unwrap_err().response,
        Response::RazWi
    );
}

#[test]
fn sctlr_e_reads_the_tables_big_endian() {
    let (mut s, t) = kcore_setup();
    let v = r32(&mut s, cb(1, cb::SCTLR));
    w32(&mut s, cb(1, cb::SCTLR), v | sctlr::E);
    // KCore's little-endian descriptors make no sense byte-swapped.
    assert_eq!(
        fault(read(&mut s, &t, SID, IOVA)),
        Fault::Translation { bank: 1, level: 1 }
    );
    // A big-endian table elsewhere is walked.
    let root = 0x4400_0000;
    let (l2, l3) = (0x4400_3000u64, 0x4400_4000u64);
    t.mem.write64(root + 2 * 8, (l2 | 3).swap_bytes());
    t.mem.write64(l2, (l3 | 3).swap_bytes());
    t.mem.write64(l3, (0x4500_0000u64 | 0x7C3).swap_bytes());
    w64(&mut s, cb(1, cb::TTBR0), root);
    assert_eq!(
        read(&mut s, &t, SID, (2 << 30) + 8).unwrap().pa,
        0x4500_0008
    );
}
