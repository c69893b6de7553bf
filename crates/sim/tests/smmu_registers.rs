//! The SMMU model's registers as software sees them: the address map, each register's
//! exact-width semantics, and the accesses the architecture does not define.

mod smmu_common;

use corevisor_sim::smmu::regs::{cb, fsr, gfsr, gr0, gr1, s2cr, scr0};
use corevisor_sim::smmu::{BusError, Smmu, SmmuConfig, Width};
use smmu_common::*;

#[test]
fn id_registers_describe_the_geometry_kcore_assumes_and_ignore_writes() {
    let mut s = Smmu::new(SmmuConfig::default());
    let id0 = r32(&mut s, gr0::ID0);
    let id1 = r32(&mut s, gr0::ID1);
    let id2 = r32(&mut s, gr0::ID2);
    assert_eq!(id0 & 0xFF, 16, "NUMSMRG");
    assert_eq!((id0 >> 9) & 0xF, 15, "NUMSIDB");
    assert_ne!(id0 & (1 << 27), 0, "stream matching");
    assert_ne!(id0 & (1 << 29), 0, "stage 2");
    assert_eq!(id0 & (1 << 30), 0, "no stage 1");
    assert_eq!((id0 >> 16) & 0xFF, 8, "one context interrupt per bank");
    assert_eq!(id1 & 0xFF, 8, "NUMCB");
    assert_eq!((id1 >> 16) & 0xFF, 8, "all banks stage-2");
    assert_eq!(id1 >> 31, 0, "4 KiB register pages");
    // A driver computes the context bank base as 2^(NUMPAGENDXB+1) pages: KCore's 0x8000.
    let numpage = 1u64 << (((id1 >> 28) & 7) + 1);
    assert_eq!(numpage << 12, 0x8000);
    assert_ne!(id2 & (1 << 12), 0, "4 KiB granule");
    assert_eq!(id2 & (3 << 13), 0, "no 16 KiB or 64 KiB granule");
    assert_eq!(((id2 >> 4) & 0xF, id2 & 0xF), (5, 5), "48-bit OAS and IAS");
    assert_eq!(id2 & (1 << 15), 0, "no 16-bit VMIDs");
    assert_eq!(r32(&mut s, gr0::ID7), 0x21);
    for off in (0x20..=0x3C).step_by(4) {
        let before = r32(&mut s, off);
        w32(&mut s, off, !before);
        assert_eq!(
            r32(&mut s, off),
            before,
            "ID register {off:#x} is read-only"
        );
    }
}

#[test]
fn scr0_resets_with_clients_disabled_and_keeps_smcfcfg_set() {
    let mut s = Smmu::new(SmmuConfig::default());
    assert_eq!(r32(&mut s, gr0::SCR0), scr0::CLIENTPD | scr0::SMCFCFG);
    w32(&mut s, gr0::SCR0, 0);
    assert_eq!(
        r32(&mut s, gr0::SCR0),
        scr0::SMCFCFG,
        "SMCFCFG is read-only one"
    );
    w32(&mut s, gr0::SCR0, u32::MAX);
    let v = r32(&mut s, gr0::SCR0);
    assert_eq!(v, scr0::WRITABLE | scr0::SMCFCFG);
    assert_eq!(
        v & ((1 << 3) | (1 << 31)),
        0,
        "EXIDENABLE and VMID16EN are not implemented"
    );
    assert_ne!(v & scr0::USFCFG, 0);
    assert_ne!(v & scr0::CLIENTPD, 0);
}

/// (offset, bits a write keeps) of every plain read/write 32-bit register of the model.
fn plain_registers() -> Vec<(u64, u32)> {
    let mut v = vec![
        (gr0::SCR2, 0xFF),
        (gr0::SACR, u32::MAX),
        (gr0::SGFSYNR0, u32::MAX),
        (gr0::SGFSYNR1, u32::MAX),
        (gr0::SGFSYNR2, u32::MAX),
    ];
    for n in [0u64, 7, 15] {
        v.push((gr0::smr(n), 0xFFFF_7FFF));
        v.push((gr0::s2cr(n), 0x3FFF_FBFF));
    }
    for n in [0u64, 3, 7] {
        v.push((gr1::cbar(n), u32::MAX));
        v.push((gr1::cbfrsynra(n), 0xFFFF));
        v.push((gr1::cba2r(n), 0x3));
        v.push((cb(n, cb::SCTLR), 0x3FFF_FFFF));
        v.push((cb(n, cb::ACTLR), u32::MAX));
        v.push((cb(n, cb::TCR), u32::MAX));
        v.push((cb(n, cb::CONTEXTIDR), u32::MAX));
        v.push((cb(n, cb::FSYNR0), u32::MAX));
        v.push((cb(n, cb::FSYNR1), u32::MAX));
    }
    v
}

#[test]
fn a_32_bit_write_changes_exactly_that_register() {
    let regs = plain_registers();
    for &(off, keep) in &regs {
        let mut s = Smmu::new(SmmuConfig::default());
        // Every other register holds a sentinel.
        for &(o, k) in &regs {
            if o != off {
                w32(&mut s, o, 0x5A5A_A5A5);
                assert_eq!(r32(&mut s, o), 0x5A5A_A5A5 & k, "{o:#x}");
            }
        }
        for pattern in [u32::MAX, 0x1234_5678, 0] {
            w32(&mut s, off, pattern);
            assert_eq!(r32(&mut s, off), pattern & keep, "register {off:#x}");
        }
        for &(o, k) in &regs {
            if o != off {
                assert_eq!(r32(&mut s, o), 0x5A5A_A5A5 & k, "{off:#x} disturbed {o:#x}");
            }
        }
    }
}

#[test]
fn the_halves_of_a_64_bit_register_are_written_independently() {
    for (lo, others) in [
        (cb(2, cb::TTBR0), cb(2, cb::TCR)),
        (cb(5, cb::FAR), cb(5, cb::FSYNR0)),
        (gr0::SGFAR, gr0::SGFSYNR0),
    ] {
        let mut s = Smmu::new(SmmuConfig::default());
        w32(&mut s, others, 0x77);
        w64(&mut s, lo, 0x0000_1234_8765_4000);
        assert_eq!(r64(&mut s, lo), 0x0000_1234_8765_4000);
        assert_eq!(r32(&mut s, lo), 0x8765_4000);
        assert_eq!(r32(&mut s, lo + 4), 0x1234);
        w32(&mut s, lo + 4, 0xABCD);
        assert_eq!(
            r64(&mut s, lo),
            0x0000_ABCD_8765_4000,
            "only the upper half"
        );
        w32(&mut s, lo, 0x1111_2000);
        assert_eq!(
            r64(&mut s, lo),
            0x0000_ABCD_1111_2000,
            "only the lower half"
        );
        // A 32-bit write of a value wider than 32 bits writes its low 32 bits only.
        s.write(lo + 4, Width::W32, 0xFFFF_FFFF_0000_0042).unwrap();
        assert_eq!(r64(&mut s, lo), 0x0000_0042_1111_2000);
        assert_eq!(r32(&mut s, others), 0x77, "the neighbour is untouched");
    }
}

#[test]
fn accesses_the_architecture_does_not_define_are_refused_and_change_nothing() {
    let mut s = Smmu::new(SmmuConfig::default());
    w32(&mut s, gr1::cbar(0), 0x11);
    w32(&mut s, gr1::cbar(1), 0x22);
    w32(&mut s, cb(0, cb::TCR), 0x33);
    w64(&mut s, cb(0, cb::TTBR0), 0x4000_2000);
    let cases = [
        (gr0::SCR0, Width::W8, BusError::Width),
        (gr0::SCR0, Width::W16, BusError::Width),
        (gr0::SCR0 + 2, Width::W32, BusError::Misaligned),
        // A 64-bit access to a pair of 32-bit registers, or to nothing 64-bit.
        (gr1::cbar(0), Width::W64, BusError::Not64Bit),
        (cb(0, cb::TCR), Width::W64, BusError::Not64Bit),
        (gr0::SCR0, Width::W64, BusError::Not64Bit),
        (gr0::TLBIVMID - 4, Width::W64, BusError::Not64Bit),
        // The upper half of TTBR0 is not the start of a 64-bit register.
        (cb(0, cb::TTBR0 + 4), Width::W64, BusError::Misaligned),
        (cb(0, cb::SCTLR), Width::W64, BusError::Not64Bit),
        (0x2_0000, Width::W32, BusError::OutsideWindow),
    ];
    for (off, width, err) in cases {
        assert_eq!(s.write(off, width, u64::MAX), Err(err), "write {off:#x}");
        assert_eq!(s.read(off, width), Err(err), "read {off:#x}");
    }
    assert_eq!(r32(&mut s, gr1::cbar(0)), 0x11);
    assert_eq!(r32(&mut s, gr1::cbar(1)), 0x22);
    assert_eq!(r32(&mut s, cb(0, cb::TCR)), 0x33);
    assert_eq!(r64(&mut s, cb(0, cb::TTBR0)), 0x4000_2000);
    assert_eq!(
        r32(&mut s, gr0::SCR0),
        scr0::CLIENTPD | scr0::SMCFCFG,
        "reset value"
    );
}

#[test]
fn the_upper_half_of_the_window_aliases_nothing() {
    let mut s = Smmu::new(SmmuConfig::default());
    w64(&mut s, cb(0, cb::TTBR0), 0x4000_2000);
    w32(&mut s, cb(0, cb::SCTLR), 1);
    // What would be sCR0, CBAR0, bank 0's TTBR0 and SCTLR if offsets wrapped at 64 KiB.
    for off in [0x1_0000, 0x1_1000, 0x1_8020, 0x1_8000, 0x1_FFFC] {
        w32(&mut s, off, 0xFFFF_FFFF);
        assert_eq!(r32(&mut s, off), 0, "{off:#x} reads as zero");
    }
    w64(&mut s, 0x1_8020, 0x1_2345_6000);
    assert_eq!(r64(&mut s, 0x1_8020), 0);
    assert_eq!(r64(&mut s, cb(0, cb::TTBR0)), 0x4000_2000);
    assert_eq!(r32(&mut s, cb(0, cb::SCTLR)), 1);
    assert_eq!(r32(&mut s, gr0::SCR0), scr0::CLIENTPD | scr0::SMCFCFG);
    assert_eq!(r32(&mut s, gr1::cbar(0)), 0);
}

#[test]
fn reserved_and_unimplemented_locations_read_as_zero_and_ignore_writes() {
    let mut s = Smmu::new(SmmuConfig::default());
    for off in [
        gr0::SCR0 + 4,   // sCR1: secure only
        gr0::STLBIALL,   // secure only
        0x400,           // secure aliases
        gr0::smr(16),    // beyond NUMSMRG
        gr0::s2cr(16),   // beyond NUMSMRG
        gr1::cbar(8),    // beyond NUMCB
        gr1::cba2r(8),   // beyond NUMCB
        0x2000,          // reserved global pages 2..7
        0x7FFC,          // reserved global pages 2..7
        cb(3, cb::TCR2), // stage 1 only
        cb(3, 0x38),     // MAIR0, stage 1 only
        cb(3, 0xFFC),    // reserved
    ] {
        w32(&mut s, off, 0xFFFF_FFFF);
        assert_eq!(r32(&mut s, off), 0, "{off:#x}");
    }
    // 64-bit stage-1 registers take 64-bit accesses but hold nothing.
    w64(&mut s, cb(3, cb::TTBR1), u64::MAX);
    assert_eq!(r64(&mut s, cb(3, cb::TTBR1)), 0);
    w64(&mut s, cb(3, cb::PAR), u64::MAX);
    assert_eq!(r64(&mut s, cb(3, cb::PAR)), 0);
    // Nothing leaked into real registers.
    assert_eq!(r32(&mut s, gr0::SCR0), scr0::CLIENTPD | scr0::SMCFCFG);
    assert_eq!(r32(&mut s, gr0::smr(15)), 0);
    assert_eq!(r32(&mut s, gr0::s2cr(15)), s2cr::RESET);
    assert_eq!(r32(&mut s, gr1::cbar(7)), 0);
}

#[test]
fn write_only_registers_read_as_zero() {
    let mut s = Smmu::new(SmmuConfig::default());
    for off in [
        gr0::TLBIVMID,
        gr0::TLBIALLNSNH,
        gr0::TLBIALLH,
        gr0::STLBGSYNC,
        gr0::SGFSRRESTORE,
        cb(1, cb::RESUME),
        cb(1, cb::FSRRESTORE),
        cb(1, cb::TLBSYNC),
        cb(1, cb::TLBIIPAS2),
        cb(1, cb::TLBIIPAS2L),
    ] {
        w32(&mut s, off, 5);
        assert_eq!(r32(&mut s, off), 0, "{off:#x}");
    }
    w64(&mut s, cb(1, cb::TLBIIPAS2), 5);
    assert_eq!(r64(&mut s, cb(1, cb::TLBIIPAS2)), 0);
}

#[test]
fn fault_status_registers_are_write_one_to_clear_and_restorable() {
    let mut s = Smmu::new(SmmuConfig::default());
    let f = cb(4, cb::FSR);
    w32(
        &mut s,
        cb(4, cb::FSRRESTORE),
        fsr::TF | fsr::PF | fsr::SS | 0x1_0000,
    );
    assert_eq!(
        r32(&mut s, f),
        fsr::TF | fsr::PF | fsr::SS,
        "undefined bits dropped"
    );
    w32(&mut s, f, fsr::TF);
    assert_eq!(r32(&mut s, f), fsr::PF | fsr::SS);
    w32(&mut s, f, 0);
    assert_eq!(
        r32(&mut s, f),
        fsr::PF | fsr::SS,
        "writing zero clears nothing"
    );
    w32(&mut s, cb(4, cb::RESUME), 1);
    assert_eq!(r32(&mut s, f), fsr::PF, "RESUME ends the stall only");
    w32(&mut s, f, u32::MAX);
    assert_eq!(r32(&mut s, f), 0);

    w32(&mut s, gr0::SGFSRRESTORE, gfsr::USF | gfsr::MULTI);
    assert_eq!(r32(&mut s, gr0::SGFSR), gfsr::USF | gfsr::MULTI);
    w32(&mut s, gr0::SGFSR, gfsr::MULTI);
    assert_eq!(r32(&mut s, gr0::SGFSR), gfsr::USF);
}

#[test]
fn a_larger_global_space_moves_the_context_banks() {
    // NUMPAGENDXB = 3: 16 global pages, so the SMMU fills the 128 KiB window and bank 0
    // is at 0x1_0000. KCore's 0x8000 and its 0xFFFF offset mask would then name the
    // wrong registers.
    let cfg = SmmuConfig {
        numpagendxb: 3,
        ..SmmuConfig::default()
    };
    let mut s = Smmu::new(cfg);
    assert_eq!((r32(&mut s, gr0::ID1) >> 28) & 7, 3);
    w64(&mut s, 0x1_0000 + cb::TTBR0, 0x4000_2000);
    assert_eq!(r64(&mut s, 0x1_0000 + cb::TTBR0), 0x4000_2000);
    // 0x8020 is now in a reserved global page: no 64-bit register there, and 32-bit
    // accesses are ignored.
    assert_eq!(
        s.write(0x8000 + cb::TTBR0, Width::W64, 0x5000_0000),
        Err(BusError::Not64Bit)
    );
    w32(&mut s, 0x8000 + cb::TTBR0, 0x5000_0000);
    assert_eq!(r32(&mut s, 0x8000 + cb::TTBR0), 0);
    assert_eq!(r64(&mut s, 0x1_0000 + cb::TTBR0), 0x4000_2000);
}
