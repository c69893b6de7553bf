//! A stage-2 context bank's table walk (VMSAv8 long-descriptor format, 4 KiB granule),
//! configured by its TCR, CBA2R.VA64 and TTBR0 exactly as the hardware reads them.
//!
//! * AArch64 TCR format (VA64 = 1): input size `64 - T0SZ` (25..=48 bits), start level
//!   `2 - SL0` (SL0 = 3 is reserved), granule TG0 (only 4 KiB is implemented, IDR2), output
//!   size from PASize, capped at the implemented 48 bits.
//! * AArch32 long-descriptor format (VA64 = 0): T0SZ is a signed 4-bit field (S must repeat
//!   its sign), input size `32 - T0SZ`, start level 2 (SL0 = 0, 25..=30 bits) or 1 (SL0 = 1,
//!   31..=40 bits), 4 KiB granule, 40-bit output size.
//!
//! The bank's SCTLR.E selects the byte order of the descriptors (1: big-endian).
//!
//! The starting level resolves `IAS - shift(level)` bits: from 1 up to 13, i.e. up to 16
//! concatenated tables (so KCore's 40-bit, level-1 tables use a 1024-entry root of two
//! concatenated pages). Any other combination is a configuration the hardware cannot walk:
//! every translation through it faults (the architecture allows treating reserved encodings
//! so). An IOVA at or above `2^IAS` is a translation fault; a table or output address at or
//! above `2^OAS` is an address size fault.

use super::TableMemory;

/// Output address bits [47:12] of a descriptor or of TTBR0.
pub const OA_BITS: u64 = 0x0000_FFFF_FFFF_F000;
/// Bits a level resolves with the 4 KiB granule.
const STRIDE: u32 = 9;
/// The largest output size the model implements (IDR2.OAS = 48 bits).
pub const MAX_OAS: u32 = 48;

/// Why a walk did not produce a translation (with the level it stopped at).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkFault {
    Translation(u32),
    AddressSize(u32),
}

/// A context bank's stage-2 configuration as decoded from its registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S2Config {
    /// Input address size in bits.
    pub ias: u32,
    /// Level of the first lookup (0..=2).
    pub start: u32,
    /// Output address size in bits.
    pub oas: u32,
    /// Base of the (possibly concatenated) first-level table.
    pub root: u64,
    /// Descriptors are big-endian (SCTLR.E).
    pub big_endian: bool,
}

impl S2Config {
    /// Bits the first lookup resolves (9 for one table, more for concatenated tables).
    pub fn root_bits(&self) -> u32 {
        self.ias - shift(self.start)
    }
}

/// The IOVA bit a level's index starts at: 39, 30, 21, 12 for levels 0..=3.
pub const fn shift(level: u32) -> u32 {
    12 + STRIDE * (3 - level)
}

fn pa_size(ps: u32) -> u32 {
    match ps {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        // 5 = 48 bits; 6 and 7 are reserved and behave as the implemented maximum.
        _ => MAX_OAS,
    }
}

/// Decodes a stage-2 context bank's TCR (in the format CBA2R.VA64 selects) and TTBR0, for
/// little-endian descriptors.
pub fn stage2_config(tcr: u32, va64: bool, ttbr0: u64) -> Result<S2Config, WalkFault> {
    use super::regs::tcr::*;
    let bad = Err(WalkFault::Translation(0));
    let sl0 = (tcr >> SL0_SHIFT) & 3;
    let (ias, start, oas) = if va64 {
        if (tcr >> TG0_SHIFT) & 3 != 0 {
            return bad; // 16 KiB and 64 KiB granules are not implemented (IDR2.PTFS)
        }
        let ias = 64 - (tcr & T0SZ64);
        if !(25..=MAX_OAS).contains(&ias) || sl0 == 3 {
            return bad;
        }
        (ias, 2 - sl0, pa_size((tcr >> PS_SHIFT) & 7).min(MAX_OAS))
    } else {
        let t0sz = tcr & T0SZ32;
        if (t0sz >> 3 != 0) != (tcr & S != 0) {
            return bad; // S must be a copy of T0SZ[3]
        }
        // Sign-extend the 4-bit field: input size 32 - T0SZ in 25..=40 bits.
        let ias = (32 - ((t0sz as i32) << 28 >> 28)) as u32;
        let start = match sl0 {
            0 if ias <= 30 => 2,
            1 if ias >= 31 => 1,
            _ => return bad,
        };
        (ias, start, 40)
    };
    let root_bits = ias as i64 - shift(start) as i64;
    if !(1..=(STRIDE as i64 + 4)).contains(&root_bits) {
        return bad; // no table at that level can resolve that many (or that few) bits
    }
    // BADDR is aligned to the size of the first-level table(s): lower bits read as zero.
    let align = (8u64 << root_bits).max(8) - 1;
    let root = ttbr0 & ((1u64 << MAX_OAS) - 1) & !align;
    if root >> oas != 0 {
        return Err(WalkFault::AddressSize(start));
    }
    Ok(S2Config {
        ias,
        start,
        oas,
        root,
        big_endian: false,
    })
}

/// A translation table entry that maps the walked address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// Level of the entry: 1 (1 GiB block), 2 (2 MiB block) or 3 (4 KiB page).
    pub level: u32,
    /// The descriptor as read.
    pub desc: u64,
}

impl Leaf {
    /// log2 of the bytes the entry maps.
    pub fn span(&self) -> u32 {
        shift(self.level)
    }

    /// Output address of the mapped region's first byte.
    pub fn oa(&self) -> u64 {
        self.desc & OA_BITS & !((1u64 << self.span()) - 1)
    }

    /// S2AP[0]: reads allowed.
    pub fn readable(&self) -> bool {
        self.desc & (1 << 6) != 0
    }

    /// S2AP[1]: writes allowed.
    pub fn writable(&self) -> bool {
        self.desc & (1 << 7) != 0
    }

    /// The access flag.
    pub fn af(&self) -> bool {
        self.desc & (1 << 10) != 0
    }

    /// The contiguous hint: this entry is one of 16 adjacent, aligned entries that map one
    /// contiguous output range, so a TLB may hold them as one entry.
    pub fn contiguous(&self) -> bool {
        self.desc & (1 << 52) != 0
    }
}

/// Walks `cfg`'s tables for `iova`, reading descriptors from `mem`.
pub fn walk(
    mem: &(impl TableMemory + ?Sized),
    cfg: &S2Config,
    iova: u64,
) -> Result<Leaf, WalkFault> {
    if iova >> cfg.ias != 0 {
        return Err(WalkFault::Translation(cfg.start));
    }
    let mut table = cfg.root;
    let mut level = cfg.start;
    let mut bits = cfg.root_bits();
    loop {
        let index = (iova >> shift(level)) & ((1u64 << bits) - 1);
        let raw = mem.read64(table + index * 8);
        let desc = if cfg.big_endian {
            raw.swap_bytes()
        } else {
            raw
        };
        if desc & 1 == 0 {
            return Err(WalkFault::Translation(level));
        }
        let table_or_page = desc & 2 != 0;
        if level < 3 && table_or_page {
            table = desc & OA_BITS;
            if table >> cfg.oas != 0 {
                return Err(WalkFault::AddressSize(level));
            }
            level += 1;
            bits = STRIDE;
            continue;
        }
        // A level-3 entry of type 0b01 is reserved; there are no level-0 blocks with the
        // 4 KiB granule.
        if level == 0 || (level == 3 && !table_or_page) {
            return Err(WalkFault::Translation(level));
        }
        let leaf = Leaf { level, desc };
        if leaf.oa() >> cfg.oas != 0 {
            return Err(WalkFault::AddressSize(level));
        }
        return Ok(leaf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smmu::regs::tcr::*;

    fn aarch64(t0sz: u32, sl0: u32) -> u32 {
        t0sz | (sl0 << SL0_SHIFT) | (5 << PS_SHIFT)
    }

    #[test]
    fn kcore_configuration_is_40_bits_from_level_1_with_two_root_tables() {
        let c = stage2_config(KCORE_AARCH64, true, 0x300_0000_2000).unwrap();
        assert_eq!(
            (c.ias, c.start, c.oas, c.root),
            (40, 1, 48, 0x300_0000_2000)
        );
        assert_eq!(c.root_bits(), 10);
        // The same walk in the AArch32 format: T0SZ = -8 (0b1000, S = 1), SL0 = 1; but
        // the output size is then 40 bits, too small for a root above 1 TiB.
        let a32 = 0b1000 | S | (1 << SL0_SHIFT);
        let c = stage2_config(a32, false, 0x4000_2000).unwrap();
        assert_eq!((c.ias, c.start, c.oas), (40, 1, 40));
        assert_eq!(
            stage2_config(a32, false, 0x300_0000_2000),
            Err(WalkFault::AddressSize(1))
        );
    }

    #[test]
    fn start_level_and_size_follow_the_architecture() {
        // Start level from SL0, input size from T0SZ.
        assert_eq!(stage2_config(aarch64(16, 2), true, 0).unwrap().start, 0);
        assert_eq!(stage2_config(aarch64(25, 1), true, 0).unwrap().start, 1);
        assert_eq!(stage2_config(aarch64(34, 0), true, 0).unwrap().start, 2);
        // Up to 16 concatenated tables at the start level, not 32.
        assert!(stage2_config(aarch64(30, 0), true, 0).is_ok()); // 34 bits from level 2
        assert!(stage2_config(aarch64(29, 0), true, 0).is_err()); // 35 bits from level 2
                                                                  // A level must resolve at least one bit.
        assert!(stage2_config(aarch64(34, 1), true, 0).is_err()); // 30 bits from level 1
                                                                  // SL0 = 3, a 64 KiB granule, and input sizes outside 25..=48 are reserved.
        assert!(stage2_config(aarch64(24, 3), true, 0).is_err());
        assert!(stage2_config(aarch64(24, 1) | (1 << TG0_SHIFT), true, 0).is_err());
        assert!(stage2_config(aarch64(15, 2), true, 0).is_err());
        assert!(stage2_config(aarch64(40, 0), true, 0).is_err());
        // AArch32: S must repeat T0SZ's sign; level 2 only up to 30 bits.
        assert!(stage2_config(0b1000 | (1 << SL0_SHIFT), false, 0).is_err());
        assert_eq!(stage2_config(2, false, 0).unwrap().ias, 30);
        assert!(stage2_config(1, false, 0).is_err());
        assert_eq!(
            stage2_config(1 | (1 << SL0_SHIFT), false, 0).unwrap().ias,
            31
        );
    }

    #[test]
    fn ttbr0_is_aligned_to_the_root_and_checked_against_the_output_size() {
        // Two concatenated root pages: BADDR below bit 13 reads as zero.
        let c = stage2_config(KCORE_AARCH64, true, 0x8000_3FF8).unwrap();
        assert_eq!(c.root, 0x8000_2000);
        // PASize = 40 bits: a root at 1 TiB is out of range.
        let tcr40 = 24 | (1 << SL0_SHIFT) | (2 << PS_SHIFT);
        assert_eq!(
            stage2_config(tcr40, true, 1 << 40),
            Err(WalkFault::AddressSize(1))
        );
    }
}
