//! The seed's five lemmas as property tests over random inputs (spec-map: Lemma rows).
//! Tables are reached by random insert sequences from the boot state, cursors are pushed
//! near their pool ends, so successes and exhaustion both occur.

use corevisor_spec::am::{get_shadow_ctxt_specx, set_shadow_ctxt_specx};
use corevisor_spec::consts::*;
use corevisor_spec::high_pt::{in_range_n, local_mmap_h, local_spt_map_h};
use corevisor_spec::state::{CtxtRegs, CtxtStates, NPT, SPT};
use corevisor_spec::{Machine, Profile, Z};
use proptest::prelude::*;

/// Addresses that collide in table indices often: a few pgd/pud/pmd slots, any page.
fn addr() -> impl Strategy<Value = Z> {
    (0i128..2, 0i128..3, 0i128..4, 0i128..512)
        .prop_map(|(g, u, m, p)| (g << 39) | (u << 30) | (m << 21) | (p << 12))
}

fn pte() -> impl Strategy<Value = Z> {
    (0i128..(1 << 28), 0i128..4096, any::<bool>())
        .prop_map(|(pfn, attr, hi)| (pfn << 12) | attr | if hi { 1 << 54 } else { 0 })
}

/// A reachable table of principal `v`: random inserts from boot, optionally with cursors
/// moved to within a few pages of their pool ends.
fn npt(v: Z) -> impl Strategy<Value = NPT> {
    (
        prop::collection::vec((addr(), prop::bool::weighted(0.2), pte()), 0..12),
        0i128..4,
    )
        .prop_map(move |(ins, squeeze)| {
            let mut t = Machine::default()
                .initial_shared(&Profile::SEED)
                .npts
                .get(v)
                .clone();
            if squeeze > 0 {
                t.pt_pgd_next = Pools::SEED.pud_start(v) - squeeze * PAGE_SIZE;
                t.pt_pud_next = Pools::SEED.pmd_start(v) - squeeze * PAGE_SIZE;
                t.pt_pmd_next = Pools::SEED.pool_end(v) - squeeze * PAGE_SIZE;
            }
            for (a, block, p) in ins {
                let (_, t2) = local_mmap_h(&Pools::SEED, v, a, if block { 2 } else { 3 }, p, &t);
                t = t2;
            }
            t
        })
}

fn spt() -> impl Strategy<Value = SPT> {
    (
        prop::collection::vec((0i128..2, 0i128..8, addr(), pte()), 0..12),
        0i128..4,
    )
        .prop_map(|(ins, squeeze)| {
            let mut t = Machine::default().initial_shared(&Profile::SEED).spts;
            if squeeze > 0 {
                t.spt_pgd_next = Pools::SEED.smmu_pmd_start - squeeze * PAGE_SIZE;
                t.spt_pmd_next = Pools::SEED.smmu_pool_end - squeeze * PAGE_SIZE;
            }
            for (i, cb, a, p) in ins {
                t = local_spt_map_h(&Pools::SEED, cb, i, a, p, &t).1;
            }
            t
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// `in_range_n`: exactly one of the two alternatives holds, and the decision is the range.
    #[test]
    fn in_range_n_decides(gfn in -1000i128..1000, gfn0 in -1000i128..1000, n in -5i128..600) {
        let inside = gfn <= gfn0 && gfn0 < gfn + n;
        prop_assert_eq!(in_range_n(gfn, gfn0, n), inside);
        prop_assert!(in_range_n(gfn, gfn0, n) == inside);
    }

    /// `local_mmap_level2`: a successful block insert sets the 512 leaves of the block to
    /// consecutive pfns at level 2 with the same pte, and nothing else.
    #[test]
    fn local_mmap_level2(v in 0i128..17, t in npt(3), a in addr(), p in pte(), probe in prop::collection::vec(-600i128..600, 16)) {
        let t = NPT { pt_pgd_next: Pools::SEED.pgd_start(v) + (t.pt_pgd_next - Pools::SEED.pgd_start(3)), pt_pud_next: Pools::SEED.pud_start(v) + (t.pt_pud_next - Pools::SEED.pud_start(3)), pt_pmd_next: Pools::SEED.pmd_start(v) + (t.pt_pmd_next - Pools::SEED.pmd_start(3)), ..t };
        let (halt, t2) = local_mmap_h(&Pools::SEED, v, a, 2, p, &t);
        if halt {
            prop_assert_eq!(&t2, &t);
        } else {
            let base = a / PAGE_SIZE / PTRS_PER_PMD * PTRS_PER_PMD;
            let mut gfns: Vec<Z> = probe.iter().map(|d| base + d).collect();
            gfns.extend([base, base + 511, base - 1, base + 512]);
            gfns.extend(t.pt.entries().map(|(g, _)| g));
            for g0 in gfns {
                if in_range_n(base, g0, 512) {
                    prop_assert_eq!(*t2.pt.get(g0), (phys_page(p) / PAGE_SIZE + g0 - base, 2, p));
                } else {
                    prop_assert_eq!(t2.pt.get(g0), t.pt.get(g0));
                }
            }
        }
    }

    /// `local_mmap_level3`: a successful page insert changes exactly `pt[addr / 4096]`.
    #[test]
    fn local_mmap_level3(t in npt(0), a in addr(), p in pte()) {
        let (halt, t2) = local_mmap_h(&Pools::SEED, HOSTVISOR, a, 3, p, &t);
        if halt {
            prop_assert_eq!(&t2, &t);
        } else {
            prop_assert_eq!(t2.pt, t.pt.set(a / PAGE_SIZE, (phys_page(p) / PAGE_SIZE, 3, p)));
        }
    }

    /// `local_spt_map_pt`: a successful SMMU insert changes exactly one leaf of one bank.
    #[test]
    fn local_spt_map_pt(t in spt(), index in 0i128..2, cb in 0i128..8, a in addr(), p in pte()) {
        let (halt, t2) = local_spt_map_h(&Pools::SEED, cb, index, a, p, &t);
        if halt {
            prop_assert_eq!(&t2, &t);
        } else {
            let ttbr = SMMU_TTBR(index, cb);
            let want = t.spt_pt.set(ttbr, t.spt_pt.get(ttbr).set(a / PAGE_SIZE, (phys_page(p) / PAGE_SIZE, p)));
            prop_assert_eq!(t2.spt_pt, want);
        }
    }

    /// `set_shadow_ctxt_dirty`: writing any index but DIRTY leaves `dirty` unchanged (and
    /// writing DIRTY sets it).
    #[test]
    fn set_shadow_ctxt_dirty(index in -5i128..80, val in any::<i64>(), dirty in any::<u64>(), x in any::<[i64; 4]>()) {
        let mut cr = CtxtRegs::default();
        for (k, v) in x.iter().enumerate() {
            cr.x[k] = Z::from(*v);
        }
        let cs = CtxtStates { dirty: Z::from(dirty), ..CtxtStates::default() };
        let (cr2, cs2) = set_shadow_ctxt_specx(index, Z::from(val), &cr, &cs);
        if index != DIRTY {
            prop_assert_eq!(cs2.dirty, cs.dirty);
        } else {
            prop_assert_eq!(cs2.dirty, Z::from(val));
        }
        let mapped = get_shadow_ctxt_specx(index, &cr2, &cs2);
        prop_assert!(mapped == Z::from(val) || (mapped == 0 && (cr2, cs2) == (cr, cs)));
    }
}

/// The squeezed generator really reaches exhaustion (so the halting branch is exercised).
#[test]
fn exhaustion_is_reached() {
    let mut t = Machine::default()
        .initial_shared(&Profile::SEED)
        .npts
        .get(1)
        .clone();
    t.pt_pmd_next = Pools::SEED.pool_end(1);
    let (halt, t2) = local_mmap_h(
        &Pools::SEED,
        1,
        0x1234_5000,
        3,
        0x4000_0000 | PAGE_S2_KERNEL,
        &t,
    );
    assert!(halt);
    assert_eq!(t2, t);
}
