//! KCore's region (`layout.rs`, docs/kcore-memory.md "Map"): every slot holds what KCore
//! keeps in it, slots are in order, aligned and disjoint, the pools' highest pages fall
//! inside their slots, and a region is refused exactly when it cannot hold them all.

use corevisor_kcore::consts::{
    pool_end, pool_start, COREVISOR, HOSTVISOR, HOST_POOL_EXTRA, PAGE_SIZE, PT_POOL_PER_VM,
    PT_POOL_START,
};
use corevisor_kcore::layout::{Layout, PoolSpans, RegionTooSmall, PERCPU_BYTES};
use corevisor_kcore::smmu::{SmmuPool, SMMU_POOL_END, SMMU_POOL_START};
use proptest::prelude::*;

const SLOT: u64 = 0x1_0000;
const MIB: u64 = 1 << 20;

fn up(a: u64) -> u64 {
    a.div_ceil(SLOT) * SLOT
}

/// Plans `kcore_mib` at the top of RAM `[base, base + ram_mib)`.
fn plan(
    base: u64,
    ram_mib: u64,
    kcore_mib: u64,
    cpus: usize,
    image: u64,
) -> Result<Layout, RegionTooSmall> {
    let end = base + ram_mib * MIB;
    Layout::plan(
        base,
        end,
        end - kcore_mib * MIB,
        cpus,
        PoolSpans::ARM,
        image,
    )
}

/// Every slot's size, as the table in layout.rs gives it.
fn slot_sizes(ram: u64, cpus: usize, image: u64) -> [u64; 5] {
    [
        up(image),
        up(PERCPU_BYTES * cpus as u64),
        up(ram / PAGE_SIZE * 8),
        up(PoolSpans::ARM.npt),
        up(PoolSpans::ARM.smmu),
    ]
}

#[test]
fn the_arm_pools_span_every_cursor_their_allocators_hand_out() {
    // The stage-2 pools: 17 principals (0..=COREVISOR) of PT_POOL_PER_VM each, the host's
    // HOST_POOL_EXTRA larger, back to back from PT_POOL_START.
    assert_eq!(
        PoolSpans::ARM.npt,
        PT_POOL_PER_VM * (COREVISOR as u64 + 1) + HOST_POOL_EXTRA
    );
    assert_eq!(pool_start(HOSTVISOR), PT_POOL_START);
    assert_eq!(
        pool_end(HOSTVISOR) - pool_start(HOSTVISOR),
        PT_POOL_PER_VM + HOST_POOL_EXTRA
    );
    for v in 1..=COREVISOR {
        assert_eq!(pool_start(v), pool_end(v - 1));
        assert_eq!(pool_end(v) - pool_start(v), PT_POOL_PER_VM);
    }
    assert_eq!(pool_end(COREVISOR), PT_POOL_START + PoolSpans::ARM.npt);
    let l = plan(0x4000_0000, 2048, 600, 4, 3 * MIB).unwrap();
    let last_npt = l.pt.phys(PT_POOL_START + PoolSpans::ARM.npt - PAGE_SIZE);
    assert!(
        last_npt + PAGE_SIZE <= l.smmu_base,
        "the stage-2 pools run into the SMMU pool"
    );
    // The SMMU pool's last page lies inside the region's last slot.
    let smmu = SmmuPool::boot(l.smmu_base);
    assert_eq!(smmu.phys(SMMU_POOL_START), l.smmu_base);
    let last = smmu.phys(SMMU_POOL_END - PAGE_SIZE);
    assert!(
        last + PAGE_SIZE <= l.end,
        "the SMMU pool's last page {last:#x} is past the region's end {:#x}",
        l.end
    );
    assert_eq!(l.end - l.smmu_base, up(SMMU_POOL_END - SMMU_POOL_START));
}

proptest! {
    /// Slots in the table's order, each exactly its content rounded up to 64 KiB.
    #[test]
    fn slots_are_in_order_aligned_and_exactly_their_contents(
        base_gib in 0u64..8,
        ram_gib in 1u64..16,
        cpus in 1usize..=64,
        image in 0u64..(16 * MIB),
        slack in 0u64..SLOT,
    ) {
        let (base, ram) = (base_gib << 30, ram_gib << 30);
        let sizes = slot_sizes(ram, cpus, image);
        let need: u64 = sizes.iter().sum();
        // A region with room to spare, starting `slack` bytes past a slot boundary.
        let kcore_base = base + ram - up(need) - 2 * SLOT + (SLOT - slack) % SLOT;
        let l = Layout::plan(base, base + ram, kcore_base, cpus, PoolSpans::ARM, image).unwrap();
        let starts = [l.image_base, l.percpu_base, l.meta_base, l.pt.pt_base, l.smmu_base, l.end];
        prop_assert_eq!(l.image_base, up(kcore_base));
        for (i, size) in sizes.iter().enumerate() {
            prop_assert_eq!(starts[i] % SLOT, 0);
            prop_assert_eq!(starts[i + 1] - starts[i], *size, "slot {}", i);
        }
        prop_assert!(l.end <= l.ram_end);
        prop_assert_eq!((l.ram_base, l.ram_end, l.kcore_base), (base, base + ram, kcore_base));
    }

    /// A region that holds every slot exactly is accepted; one byte less is refused, and
    /// the refusal says what is needed and what there is.
    #[test]
    fn a_region_is_refused_exactly_when_its_slots_do_not_fit(
        ram_gib in 1u64..16,
        cpus in 1usize..=64,
        image in 0u64..(16 * MIB),
    ) {
        let (base, ram) = (0x8000_0000u64, ram_gib << 30);
        let need: u64 = slot_sizes(ram, cpus, image).iter().sum();
        let end = base + ram;
        let exact = Layout::plan(base, end, end - need, cpus, PoolSpans::ARM, image).unwrap();
        prop_assert_eq!(exact.end, end);
        let short = Layout::plan(base, end, end - need + SLOT, cpus, PoolSpans::ARM, image);
        prop_assert_eq!(short, Err(RegionTooSmall { needed: need, have: need - SLOT }));
        let tiny = Layout::plan(base, end, end - SLOT, cpus, PoolSpans::ARM, image);
        prop_assert_eq!(tiny, Err(RegionTooSmall { needed: need, have: SLOT }));
    }
}

#[test]
fn each_cpu_gets_its_own_area_and_the_region_is_the_top_of_ram() {
    let l = plan(0x4000_0000, 1024, 256, 8, MIB).unwrap();
    assert_eq!(l.meta_base - l.percpu_base, 8 * PERCPU_BYTES);
    assert!(l.in_kcore(l.kcore_base) && l.in_kcore(l.ram_end - 1) && !l.in_kcore(l.ram_end));
    assert!(!l.in_kcore(l.kcore_base - 1));
    assert!(l.is_ram(l.ram_base / PAGE_SIZE) && !l.is_ram(l.ram_end / PAGE_SIZE) && !l.is_ram(0));
}
