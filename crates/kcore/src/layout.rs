//! KCore's own RAM region and the platform it boots on (docs/kcore-memory.md, "Map").
//!
//! Everything KCore keeps lives in the top `kcore_mib` of RAM, which the page metadata marks
//! as owned by KCore (COREVISOR) from boot, so no stage-2 or SMMU table can ever map it
//! (implementation-notes §6, Weak-Memory-Isolation). The region holds, in this order, each
//! slot 64 KiB aligned:
//!
//! | slot | size |
//! |---|---|
//! | image: KCore's code and typed state (VM records, shadow contexts, export tags) | `image_bytes` |
//! | per-CPU areas: one trap frame and EL2 stack per CPU | `PERCPU_BYTES` × CPUs |
//! | page metadata: 8 bytes per RAM page | RAM / 512 |
//! | stage-2 table pools of the 17 principals | `PoolSpans::npt` |
//! | SMMU table pool | `PoolSpans::smmu` |
//!
//! A machine whose region cannot hold all of it is refused ([`Layout::plan`]).

use crate::consts::*;
use crate::pt::PtLayout;
use crate::smmu::{BANKS, SMMU_NUM, SMMU_POOL_END, SMMU_POOL_START};

/// Bytes of each CPU's area: its trap frame and its EL2 stack.
pub const PERCPU_BYTES: u64 = 0x4000;
/// Alignment of every slot of the region.
const SLOT_ALIGN: u64 = 0x1_0000;
/// Device ranges a platform may declare.
pub const MAX_MMIO_RANGES: usize = 16;

/// The bytes the table pools span (their abstract cursor ranges, laid out linearly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSpans {
    /// All 17 principals' stage-2 pools.
    pub npt: u64,
    /// The SMMU pool.
    pub smmu: u64,
}

impl PoolSpans {
    /// What this core allocates (the `arm` profile's geometry).
    pub const ARM: PoolSpans = PoolSpans {
        npt: NPT_POOLS_BYTES,
        smmu: SMMU_POOL_END - SMMU_POOL_START,
    };
}

/// Where KCore keeps each part of its state: RAM, KCore's region inside it, and the slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// RAM covered by the metadata array: `[ram_base, ram_end)`.
    pub ram_base: u64,
    pub ram_end: u64,
    /// KCore's own region `[kcore_base, ram_end)`.
    pub kcore_base: u64,
    /// KCore's image and typed state.
    pub image_base: u64,
    /// The per-CPU areas, `PERCPU_BYTES` each.
    pub percpu_base: u64,
    /// The metadata array: 8 bytes per RAM page.
    pub meta_base: u64,
    pub pt: PtLayout,
    /// Base of the SMMU table pool.
    pub smmu_base: u64,
    /// First byte of the region no slot uses.
    pub end: u64,
}

/// A region too small for what KCore must keep in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionTooSmall {
    pub needed: u64,
    pub have: u64,
}

fn align_up(a: u64, to: u64) -> u64 {
    a.div_ceil(to) * to
}

impl Layout {
    /// Plans KCore's region `[kcore_base, ram_end)` of RAM `[ram_base, ram_end)` for `cpus`
    /// CPUs, pools spanning `spans` and an image (code and typed state) of `image_bytes`.
    pub fn plan(
        ram_base: u64,
        ram_end: u64,
        kcore_base: u64,
        cpus: usize,
        spans: PoolSpans,
        image_bytes: u64,
    ) -> Result<Layout, RegionTooSmall> {
        let mut at = align_up(kcore_base, SLOT_ALIGN);
        let mut slot = |bytes: u64| {
            let base = at;
            at = align_up(at + bytes, SLOT_ALIGN);
            base
        };
        let image_base = slot(image_bytes);
        let percpu_base = slot(PERCPU_BYTES * cpus as u64);
        let meta_base = slot((ram_end - ram_base) / PAGE_SIZE * 8);
        let pt_base = slot(spans.npt);
        let smmu_base = slot(spans.smmu);
        let end = at;
        if end > ram_end {
            return Err(RegionTooSmall {
                needed: end - kcore_base,
                have: ram_end - kcore_base,
            });
        }
        Ok(Layout {
            ram_base,
            ram_end,
            kcore_base,
            image_base,
            percpu_base,
            meta_base,
            pt: PtLayout { pt_base },
            smmu_base,
            end,
        })
    }

    /// Is `pa` inside KCore's region?
    pub fn in_kcore(&self, pa: u64) -> bool {
        (self.kcore_base..self.ram_end).contains(&pa)
    }

    /// Pages of RAM: the most any principal can own.
    pub fn ram_pages(&self) -> u64 {
        (self.ram_end - self.ram_base) / PAGE_SIZE
    }

    /// Is page `pfn` RAM (and not page 0, which never is)?
    pub fn is_ram(&self, pfn: u64) -> bool {
        pfn != 0 && (self.ram_base / PAGE_SIZE..self.ram_end / PAGE_SIZE).contains(&pfn)
    }
}

/// The platform KCore boots on, as a device tree describes it: its CPUs, the SMMUs whose
/// register windows it polices, and the device (MMIO) ranges a host may map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Platform {
    pub cpus: usize,
    pub smmu_num: u32,
    /// Per SMMU: register window base, window size, context banks.
    pub smmus: [(u64, u64, u32); SMMU_NUM as usize],
    /// Declared device ranges `(base, size)`; the first `mmio_num` are valid.
    pub mmio: [(u64, u64); MAX_MMIO_RANGES],
    pub mmio_num: usize,
}

impl Platform {
    /// The default machine: 2 CPUs, two SMMUs with 8 banks each at 0x0B00_0000 + i MiB, a
    /// UART at 0x0900_0000; the declared devices are the SMMU windows and the UART page.
    pub const DEFAULT: Platform = {
        let mut mmio = [(0, 0); MAX_MMIO_RANGES];
        mmio[0] = (0x0B00_0000, 0x2_0000);
        mmio[1] = (0x0B10_0000, 0x2_0000);
        mmio[2] = (0x0900_0000, PAGE_SIZE);
        Platform {
            cpus: 2,
            smmu_num: 2,
            smmus: [
                (0x0B00_0000, 0x2_0000, BANKS),
                (0x0B10_0000, 0x2_0000, BANKS),
            ],
            mmio,
            mmio_num: 3,
        }
    };

    /// Pages of every declared device range: the most device pages a VM can be given.
    pub fn declared_pages(&self) -> u64 {
        self.mmio[..self.mmio_num.min(MAX_MMIO_RANGES)]
            .iter()
            .map(|&(_, s)| s.div_ceil(PAGE_SIZE))
            .sum()
    }

    /// Is `pa` inside an SMMU's register window?
    pub fn is_smmu_window(&self, pa: u64) -> bool {
        self.smmus[..(self.smmu_num as usize).min(self.smmus.len())]
            .iter()
            .any(|&(b, s, _)| b <= pa && pa - b < s)
    }

    /// Is `pa` inside a declared device range?
    pub fn is_mmio(&self, pa: u64) -> bool {
        self.mmio[..self.mmio_num.min(MAX_MMIO_RANGES)]
            .iter()
            .any(|&(b, s)| b <= pa && pa - b < s)
    }
}
