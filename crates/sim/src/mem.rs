//! Simulated physical memory for a machine of any size (pages exist once written), a
//! stage-2 MMU walker written from the Arm architecture (not from KCore's code), and a TLB
//! that keeps translations until they are invalidated, so a missing TLBI shows up as a
//! stale translation.

use crate::smmu::{SmmuBus, SmmuConfig, Width};
use corevisor_kcore::ctxt::Ctxt;
use corevisor_kcore::hw::{Hw, MmioAbort, MmioWidth, SysReg};
use corevisor_kcore::mem_ops::MAX_CPUS;
use std::collections::{HashMap, HashSet};

/// Stage-2 permissions of a translation (Arm ARM D8.5: S2AP, XN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

/// A completed stage-2 translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    pub pa: u64,
    pub perms: Perms,
    /// Level of the leaf: 2 = 2 MiB block, 3 = 4 KiB page.
    pub level: u32,
}

/// Physical memory alone (what a device's table walk reads): pages exist once written.
#[derive(Default, Clone)]
pub struct PhysMem {
    pages: HashMap<u64, Box<[u64; 512]>>,
}

impl crate::smmu::TableMemory for PhysMem {
    fn read64(&self, pa: u64) -> u64 {
        self.pages
            .get(&(pa >> 12))
            .map_or(0, |p| p[((pa >> 3) & 511) as usize])
    }
}

/// The machine's SMMU register windows (the default machine's: SMMU i at
/// `SMMU_WINDOW_BASE + i * SMMU_WINDOW_STRIDE`).
pub const SMMU_WINDOW_BASE: u64 = 0x0B00_0000;
pub const SMMU_WINDOW_STRIDE: u64 = 0x10_0000;
pub const SMMU_WINDOW_SIZE: u64 = 0x2_0000;

#[derive(Default, Clone)]
pub struct SimMemory {
    pub phys: PhysMem,
    /// The machine's SMMUs (register models with their IOTLBs), by physical window.
    pub smmus: SmmuBus,
    tlb: HashMap<(u32, u64), Translation>,
    pub tlbi_count: u64,
    /// The EL2 system registers of the CPU KCore runs on.
    sysregs: [u64; SysReg::ALL.len()],
    /// Every CPU's register file (what its EL2 vector saves on a trap).
    pub cpu_regs: [Ctxt; MAX_CPUS],
    /// Frames written (or dropped) since [`SimMemory::take_dirty`] was last called: what a
    /// checker must look at after a step (`crates/check/src/shadow.rs`).
    dirty: HashSet<u64>,
}

const OA_MASK: u64 = 0x0000_FFFF_FFFF_F000;

impl SimMemory {
    /// Memory of the default machine, with its two SMMUs out of reset.
    pub fn new() -> Self {
        let bases = [SMMU_WINDOW_BASE, SMMU_WINDOW_BASE + SMMU_WINDOW_STRIDE];
        SimMemory {
            smmus: SmmuBus::new(&bases, SmmuConfig::default()),
            ..Self::default()
        }
    }

    /// The frames whose contents may have changed since the last call (and forgets them).
    pub fn take_dirty(&mut self) -> HashSet<u64> {
        std::mem::take(&mut self.dirty)
    }

    /// The frames whose contents may have changed since [`SimMemory::take_dirty`].
    pub fn dirty(&self) -> &HashSet<u64> {
        &self.dirty
    }

    /// The 512 words of frame `pfn`.
    pub fn page_words(&self, pfn: u64) -> [u64; 512] {
        self.phys.pages.get(&pfn).map_or([0; 512], |p| **p)
    }

    /// Pages that have been written (the sim's actual memory use).
    pub fn resident_pages(&self) -> usize {
        self.phys.pages.len()
    }

    /// The frame numbers of the pages that have been written, in no particular order
    /// (every other page reads as zeros).
    pub fn resident(&self) -> impl Iterator<Item = u64> + '_ {
        self.phys.pages.keys().copied()
    }

    /// Walks a 4-level, 4 KiB-granule stage-2 table rooted at `root` for `ipa`
    /// (Arm ARM D8.2/D8.3): tables at levels 0-2, blocks at levels 1-2, pages at level 3.
    pub fn walk(&self, root: u64, ipa: u64) -> Option<Translation> {
        let mut table = root;
        for level in 0..=3u32 {
            let shift = 39 - 9 * level;
            let d = self.read64(table + ((ipa >> shift) & 511) * 8);
            if d & 1 == 0 {
                return None;
            }
            let is_table_or_page = d & 2 != 0;
            if level < 3 && is_table_or_page {
                table = d & OA_MASK;
                continue;
            }
            if level == 0 || (level == 3 && !is_table_or_page) {
                return None; // no level-0 blocks with 4 KiB granule; level-3 0b01 is reserved
            }
            let span = 1u64 << shift;
            let oa = d & OA_MASK & !(span - 1);
            let s2ap = (d >> 6) & 3;
            let perms = Perms {
                read: s2ap & 1 != 0,
                write: s2ap & 2 != 0,
                exec: (d >> 53) & 3 == 0,
            };
            return Some(Translation {
                pa: oa | (ipa & (span - 1)),
                perms,
                level,
            });
        }
        None
    }

    /// Walks an SMMU context bank's stage-2 table (Arm SMMUv2, LPAE, 4 KiB granule, 40-bit
    /// input starting at level 1 with two concatenated root tables: IOVA bits 39:30 index a
    /// 1024-entry root; blocks are not used by KCore's SMMU tables, pages at level 3).
    pub fn walk_smmu(&self, root: u64, iova: u64) -> Option<Translation> {
        if iova >> 40 != 0 {
            return None;
        }
        let d1 = self.read64(root + ((iova >> 30) & 1023) * 8);
        if d1 & 3 != 3 {
            return None;
        }
        let d2 = self.read64((d1 & OA_MASK) + ((iova >> 21) & 511) * 8);
        if d2 & 3 != 3 {
            return None;
        }
        let d3 = self.read64((d2 & OA_MASK) + ((iova >> 12) & 511) * 8);
        if d3 & 3 != 3 {
            return None;
        }
        let s2ap = (d3 >> 6) & 3;
        let perms = Perms {
            read: s2ap & 1 != 0,
            write: s2ap & 2 != 0,
            exec: (d3 >> 53) & 3 == 0,
        };
        Some(Translation {
            pa: (d3 & OA_MASK) | (iova & 0xFFF),
            perms,
            level: 3,
        })
    }

    /// The translation the TLB holds for `vmid`'s `ipa`, if any (stale or not).
    pub fn cached(&self, vmid: u32, ipa: u64) -> Option<Translation> {
        self.tlb.get(&(vmid, ipa >> 12)).copied()
    }

    /// Translation as a CPU of `vmid` sees it: from the TLB if cached, else walked and cached.
    pub fn translate(&mut self, vmid: u32, root: u64, ipa: u64) -> Option<Translation> {
        let key = (vmid, ipa >> 12);
        if let Some(t) = self.tlb.get(&key) {
            return Some(Translation {
                pa: (t.pa & !0xFFF) | (ipa & 0xFFF),
                ..*t
            });
        }
        let t = self.walk(root, ipa)?;
        self.tlb.insert(key, t);
        Some(t)
    }
}

impl Hw for SimMemory {
    fn read64(&self, pa: u64) -> u64 {
        crate::smmu::TableMemory::read64(&self.phys, pa)
    }

    fn write64(&mut self, pa: u64, v: u64) {
        if v == 0 && !self.phys.pages.contains_key(&(pa >> 12)) {
            return;
        }
        self.dirty.insert(pa >> 12);
        self.phys
            .pages
            .entry(pa >> 12)
            .or_insert_with(|| Box::new([0; 512]))[((pa >> 3) & 511) as usize] = v;
    }

    fn zero_range(&mut self, pa: u64, len: u64) {
        // Whole pages are dropped (they read as zero); partial ones are written.
        let (first, end) = (pa, pa + len);
        let mut at = first;
        while at < end {
            let page_end = ((at >> 12) + 1) << 12;
            if at & 0xFFF == 0 && page_end <= end {
                if self.phys.pages.remove(&(at >> 12)).is_some() {
                    self.dirty.insert(at >> 12);
                }
            } else if let Some(p) = self.phys.pages.get_mut(&(at >> 12)) {
                self.dirty.insert(at >> 12);
                for w in (at..page_end.min(end)).step_by(8) {
                    p[((w >> 3) & 511) as usize] = 0;
                }
            }
            at = page_end;
        }
    }

    fn tlbi_ipa(&mut self, vmid: u32, ipa: u64) {
        self.tlbi_count += 1;
        self.tlb.remove(&(vmid, ipa >> 12));
    }

    fn read_sysreg(&self, r: SysReg) -> u64 {
        self.sysregs[r as usize]
    }

    fn write_sysreg(&mut self, r: SysReg, v: u64) {
        self.sysregs[r as usize] = v;
    }

    fn regs(&mut self, cpu: usize) -> &mut Ctxt {
        &mut self.cpu_regs[cpu]
    }

    fn mmio_read(&mut self, pa: u64, width: MmioWidth) -> Result<u64, MmioAbort> {
        match self.smmus.read(pa, sim_width(width)) {
            Some(Ok(v)) => Ok(v),
            _ => Err(MmioAbort),
        }
    }

    fn mmio_write(&mut self, pa: u64, width: MmioWidth, v: u64) -> Result<(), MmioAbort> {
        match self.smmus.write(pa, sim_width(width), v) {
            Some(Ok(())) => Ok(()),
            _ => Err(MmioAbort),
        }
    }
}

fn sim_width(w: MmioWidth) -> Width {
    match w {
        MmioWidth::W32 => Width::W32,
        MmioWidth::W64 => Width::W64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_tables_blocks_and_pages() {
        let mut m = SimMemory::new();
        let (root, l1, l2, l3) = (0x1000, 0x2000, 0x3000, 0x4000);
        m.write64(root, l1 | 3);
        m.write64(l1 + 2 * 8, l2 | 3); // IPA bits 38:30 = 2
        m.write64(l2, l3 | 3);
        m.write64(l3 + 5 * 8, 0x4000_5000 | 0xFFF);
        m.write64(l2 + 8, 0x4020_0000 | (0x7FF & !2) | (1 << 54)); // 2 MiB block, XN
        let page = m.walk(root, (2 << 30) | (5 << 12) | 0x123).unwrap();
        assert_eq!((page.pa, page.level), (0x4000_5123, 3));
        assert_eq!(
            page.perms,
            Perms {
                read: true,
                write: true,
                exec: true
            }
        );
        let block = m.walk(root, (2 << 30) | (1 << 21) | 0x1_2345).unwrap();
        assert_eq!(
            (block.pa, block.level, block.perms.exec),
            (0x4021_2345, 2, false)
        );
        assert_eq!(m.walk(root, (2 << 30) | (6 << 12)), None);
        m.write64(l3 + 5 * 8, 1 << 57); // invalid marker
        assert_eq!(m.walk(root, (2 << 30) | (5 << 12)), None);
    }

    #[test]
    fn system_registers_and_each_cpus_register_file_hold_their_values() {
        let mut m = SimMemory::new();
        for (i, r) in SysReg::ALL.into_iter().enumerate() {
            m.write_sysreg(r, 0x100 + i as u64);
        }
        for (i, r) in SysReg::ALL.into_iter().enumerate() {
            assert_eq!(m.read_sysreg(r), 0x100 + i as u64);
        }
        m.regs(1).regs.x[3] = 9;
        assert_eq!((m.cpu_regs[1].regs.x[3], m.cpu_regs[0].regs.x[3]), (9, 0));
    }

    #[test]
    fn the_tlb_keeps_translations_until_invalidated() {
        let mut m = SimMemory::new();
        m.write64(0x1000, 0x2000 | 3);
        m.write64(0x2000, 0x3000 | 3);
        m.write64(0x3000, 0x4000 | 3);
        m.write64(0x4000, 0x9000 | 0xFFF);
        assert_eq!(m.translate(1, 0x1000, 0x10).unwrap().pa, 0x9010);
        m.write64(0x4000, 0);
        assert_eq!(
            m.translate(1, 0x1000, 0x10).unwrap().pa,
            0x9010,
            "stale until TLBI"
        );
        m.tlbi_ipa(1, 0);
        assert_eq!(m.translate(1, 0x1000, 0x10), None);
    }
}
