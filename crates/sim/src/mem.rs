//! Simulated physical memory for a machine of any size (pages exist once written), a
//! stage-2 MMU walker written from the Arm architecture (not from KCore's code), and a TLB
//! that keeps translations until they are invalidated, so a missing TLBI shows up as a
//! stale translation.

use crate::smmu::{SmmuBus, SmmuConfig, Width};
use corevisor_kcore::consts::{COREVISOR, INVALID, S2PAGE_ID};
use corevisor_kcore::hw::{Hw, MmioAbort, MmioWidth};
use corevisor_kcore::layout::Layout;
use corevisor_kcore::meta::PageMeta;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

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

type Page = Box<[u64; 512]>;
const SHARDS: usize = 64;

/// Physical memory alone (what a device's table walk reads): pages exist once written.
/// Sharded by frame, each shard behind its own lock, so CPUs running at once contend only
/// when they touch frames of the same shard (a bus, not a lock around the machine).
pub struct PhysMem {
    shards: Box<[Mutex<HashMap<u64, Page>>]>,
}

impl Default for PhysMem {
    fn default() -> Self {
        PhysMem {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Clone for PhysMem {
    fn clone(&self) -> Self {
        PhysMem {
            shards: self
                .shards
                .iter()
                .map(|s| Mutex::new(lock(s).clone()))
                .collect(),
        }
    }
}

/// A poisoned shard means a thread panicked mid-access; the panic is reported on its own.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PhysMem {
    fn shard(&self, pfn: u64) -> MutexGuard<'_, HashMap<u64, Page>> {
        lock(&self.shards[pfn as usize % SHARDS])
    }

    /// Writes word `pa`; `false` if nothing changed in a page that does not exist (a zero).
    fn write64(&self, pa: u64, v: u64) -> bool {
        let mut sh = self.shard(pa >> 12);
        if v == 0 && !sh.contains_key(&(pa >> 12)) {
            return false;
        }
        sh.entry(pa >> 12).or_insert_with(|| Box::new([0; 512]))[((pa >> 3) & 511) as usize] = v;
        true
    }

    /// Zeroes words `[from, to)` of one page; `true` if the page exists.
    fn zero_words(&self, pfn: u64, from: u64, to: u64) -> bool {
        let mut sh = self.shard(pfn);
        if from & 0xFFF == 0 && to - from == 4096 {
            return sh.remove(&pfn).is_some();
        }
        match sh.get_mut(&pfn) {
            Some(p) => {
                for w in (from..to).step_by(8) {
                    p[((w >> 3) & 511) as usize] = 0;
                }
                true
            }
            None => false,
        }
    }

    fn page_words(&self, pfn: u64) -> [u64; 512] {
        self.shard(pfn).get(&pfn).map_or([0; 512], |p| **p)
    }

    fn frames(&self) -> Vec<u64> {
        self.shards
            .iter()
            .flat_map(|s| lock(s).keys().copied().collect::<Vec<_>>())
            .collect()
    }
}

impl crate::smmu::TableMemory for PhysMem {
    fn read64(&self, pa: u64) -> u64 {
        self.shard(pa >> 12)
            .get(&(pa >> 12))
            .map_or(0, |p| p[((pa >> 3) & 511) as usize])
    }
}

/// The machine's SMMU register windows (the default machine's: SMMU i at
/// `SMMU_WINDOW_BASE + i * SMMU_WINDOW_STRIDE`).
pub const SMMU_WINDOW_BASE: u64 = 0x0B00_0000;
pub const SMMU_WINDOW_STRIDE: u64 = 0x10_0000;
pub const SMMU_WINDOW_SIZE: u64 = 0x2_0000;

/// The machine as KCore sees it through [`Hw`]: shared by every CPU (`&self`), each part
/// behind a lock of its own (memory shards, the TLB, the SMMUs, the dirty set).
#[derive(Default)]
pub struct SimMemory {
    pub phys: PhysMem,
    /// The machine's SMMUs (register models with their IOTLBs), by physical window.
    smmus: Mutex<SmmuBus>,
    tlb: Mutex<HashMap<(u32, u64), Translation>>,
    tlbi_count: AtomicU64,
    /// Frames written (or dropped) since [`SimMemory::take_dirty`] was last called: what a
    /// checker must look at after a step (`crates/check/src/shadow.rs`).
    dirty: Mutex<HashSet<u64>>,
    /// KCore's layout, for the lock-release check ([`SimMemory::watch_locks`]).
    watch: Option<Layout>,
    /// What the lock-release check found, until [`SimMemory::take_release_breaks`].
    breaks: Mutex<Vec<String>>,
}

impl Clone for SimMemory {
    fn clone(&self) -> Self {
        SimMemory {
            phys: self.phys.clone(),
            smmus: Mutex::new(lock(&self.smmus).clone()),
            tlb: Mutex::new(lock(&self.tlb).clone()),
            tlbi_count: AtomicU64::new(self.tlbi_count()),
            dirty: Mutex::new(lock(&self.dirty).clone()),
            watch: self.watch,
            breaks: Mutex::new(lock(&self.breaks).clone()),
        }
    }
}

const OA_MASK: u64 = 0x0000_FFFF_FFFF_F000;

impl SimMemory {
    /// Memory of the default machine, with its two SMMUs out of reset.
    pub fn new() -> Self {
        let bases = [SMMU_WINDOW_BASE, SMMU_WINDOW_BASE + SMMU_WINDOW_STRIDE];
        SimMemory {
            smmus: Mutex::new(SmmuBus::new(&bases, SmmuConfig::default())),
            ..Self::default()
        }
    }

    /// The frames whose contents may have changed since the last call (and forgets them).
    pub fn take_dirty(&mut self) -> HashSet<u64> {
        std::mem::take(self.dirty.get_mut().unwrap_or_else(|e| e.into_inner()))
    }

    /// The frames whose contents may have changed since [`SimMemory::take_dirty`] (held
    /// while the guard lives).
    pub fn dirty(&self) -> MutexGuard<'_, HashSet<u64>> {
        lock(&self.dirty)
    }

    fn note_dirty(&self, pfn: u64) {
        lock(&self.dirty).insert(pfn);
    }

    /// Check, at every release of S2PAGE, the metadata words written so far (see
    /// [`SimMemory::take_dirty`]) against the lock's invariant: every RAM page has an
    /// owner, and KCore's region is KCore's. A handler that leaves a torn update between two
    /// holds of the lock breaks it, though its step ends right (issue 11).
    pub fn watch_locks(&mut self, layout: Layout) {
        self.watch = Some(layout);
    }

    /// Lock-invariant breaks found at lock releases since the last call.
    pub fn take_release_breaks(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.breaks))
    }

    /// S2PAGE's invariant on the metadata frames written so far (S2PAGE is held: no CPU is
    /// writing them).
    fn check_metadata(&self, l: &Layout) {
        let (first, pages) = (l.ram_base >> 12, (l.ram_end - l.ram_base) >> 12);
        let meta_end = l.meta_base + pages * 8;
        let frames: Vec<u64> = lock(&self.dirty)
            .iter()
            .copied()
            .filter(|&f| (l.meta_base >> 12..meta_end.div_ceil(4096)).contains(&f))
            .collect();
        let mut found = Vec::new();
        for f in frames {
            let words = self.phys.page_words(f);
            for (w, &word) in words.iter().enumerate() {
                let at = (f << 12) + 8 * w as u64;
                if at < l.meta_base || at >= meta_end {
                    continue;
                }
                let pfn = first + (at - l.meta_base) / 8;
                let owner = PageMeta(word).unpack(pfn).owner;
                let kcore = pfn >= l.kcore_base >> 12;
                if owner == INVALID || owner > COREVISOR {
                    found.push(format!("page {pfn:#x} has no owner (metadata {word:#x})"));
                } else if kcore && owner != COREVISOR {
                    found.push(format!("KCore's page {pfn:#x} is owned by {owner}"));
                }
            }
        }
        if !found.is_empty() {
            let mut b = lock(&self.breaks);
            b.extend(
                found
                    .into_iter()
                    .map(|m| format!("at a release of S2PAGE: {m}")),
            );
        }
    }

    /// TLB invalidations so far.
    pub fn tlbi_count(&self) -> u64 {
        self.tlbi_count.load(Ordering::Relaxed)
    }

    /// The SMMUs, exclusively (a device's registers take one access at a time).
    pub fn smmus(&self) -> MutexGuard<'_, SmmuBus> {
        lock(&self.smmus)
    }

    /// The 512 words of frame `pfn`.
    pub fn page_words(&self, pfn: u64) -> [u64; 512] {
        self.phys.page_words(pfn)
    }

    /// Pages that have been written (the sim's actual memory use).
    pub fn resident_pages(&self) -> usize {
        self.phys.frames().len()
    }

    /// The frame numbers of the pages that have been written, in no particular order
    /// (every other page reads as zeros).
    pub fn resident(&self) -> impl Iterator<Item = u64> {
        self.phys.frames().into_iter()
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
        lock(&self.tlb).get(&(vmid, ipa >> 12)).copied()
    }

    /// Translation as a CPU of `vmid` sees it: from the TLB if cached, else walked and cached.
    pub fn translate(&self, vmid: u32, root: u64, ipa: u64) -> Option<Translation> {
        let key = (vmid, ipa >> 12);
        if let Some(t) = lock(&self.tlb).get(&key) {
            return Some(Translation {
                pa: (t.pa & !0xFFF) | (ipa & 0xFFF),
                ..*t
            });
        }
        let t = self.walk(root, ipa)?;
        lock(&self.tlb).insert(key, t);
        Some(t)
    }
}

impl Hw for SimMemory {
    fn releasing(&self, id: u32) {
        if let (Some(l), S2PAGE_ID) = (&self.watch, id) {
            self.check_metadata(l);
        }
    }

    fn read64(&self, pa: u64) -> u64 {
        crate::smmu::TableMemory::read64(&self.phys, pa)
    }

    fn write64(&self, pa: u64, v: u64) {
        if self.phys.write64(pa, v) {
            self.note_dirty(pa >> 12);
        }
    }

    fn zero_range(&self, pa: u64, len: u64) {
        // Whole pages are dropped (they read as zero); partial ones are written.
        let end = pa + len;
        let mut at = pa;
        while at < end {
            let page_end = ((at >> 12) + 1) << 12;
            if self.phys.zero_words(at >> 12, at, page_end.min(end)) {
                self.note_dirty(at >> 12);
            }
            at = page_end;
        }
    }

    fn tlbi_ipa(&self, vmid: u32, ipa: u64) {
        self.tlbi_count.fetch_add(1, Ordering::Relaxed);
        lock(&self.tlb).remove(&(vmid, ipa >> 12));
    }

    fn tlbi_vmid(&self, vmid: u32) {
        self.tlbi_count.fetch_add(1, Ordering::Relaxed);
        lock(&self.tlb).retain(|&(v, _), _| v != vmid);
    }

    fn mmio_read(&self, pa: u64, width: MmioWidth) -> Result<u64, MmioAbort> {
        match self.smmus().read(pa, sim_width(width)) {
            Some(Ok(v)) => Ok(v),
            _ => Err(MmioAbort),
        }
    }

    fn mmio_write(&self, pa: u64, width: MmioWidth, v: u64) -> Result<(), MmioAbort> {
        match self.smmus().write(pa, sim_width(width), v) {
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
        let m = SimMemory::new();
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
    fn the_tlb_keeps_translations_until_invalidated() {
        let m = SimMemory::new();
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
