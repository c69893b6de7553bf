//! Seed `Section HighPTSpec`: the abstract stage-2 and SMMU tables (spec-digest §5.0.1–2).

use crate::consts::*;
use crate::cov;
use crate::state::{Leaf, NPT, SPT};
use crate::zmap::ZMap;
use crate::Z;

/// `local_mmap_loop_h n gfn pfn level pte pt`: writes `n` consecutive leaves
/// `gfn+i -> (pfn+i, level, pte)` and returns the next gfn/pfn and the table.
pub fn local_mmap_loop_h(
    n: Z,
    gfn: Z,
    pfn: Z,
    level: Z,
    pte: Z,
    pt: &ZMap<Leaf>,
) -> (Z, Z, ZMap<Leaf>) {
    let (mut g, mut f, mut t) = (gfn, pfn, pt.clone());
    for _ in 0..n.max(0) {
        t.set_mut(g, (f, level, pte));
        g += 1;
        f += 1;
    }
    (g, f, t)
}

/// The allocation cursor a walk would move: unchanged when the table exists.
fn next_if_absent(present: bool, cursor: Z) -> Z {
    if present {
        cursor
    } else {
        cursor + PAGE_SIZE
    }
}

/// `local_mmap_h vmid addr level pte npt`: insert a leaf into `vmid`'s abstract table,
/// allocating intermediate tables from its pool (bounds: the profile's `pools`); `(true, npt)` (unchanged) when the pool
/// is exhausted or a 4 KiB insert would split a 2 MiB block.
pub fn local_mmap_h(pools: &Pools, vmid: Z, addr: Z, level: Z, pte: Z, npt: &NPT) -> (bool, NPT) {
    let (g, u, m) = (pgd_index(addr), pud_index(addr), pmd_index(addr));
    let pfn = zdiv(phys_page(pte), PAGE_SIZE);
    let pgd_next = next_if_absent(*npt.pgd_t.get(g), npt.pt_pgd_next);
    let pud_next = next_if_absent(*npt.pud_t.get(g).get(u), npt.pt_pud_next);
    if level == 2 {
        let gfn = zdiv(zdiv(addr, PAGE_SIZE), PTRS_PER_PMD) * PTRS_PER_PMD;
        if !(pgd_next <= pools.pud_start(vmid) && pud_next <= pools.pmd_start(vmid)) {
            cov!("local_mmap_h.l2_exhausted");
            return (true, npt.clone());
        }
        cov!("local_mmap_h.l2_ok");
        let (_, _, pt) = local_mmap_loop_h(PTRS_PER_PMD, gfn, pfn, 2, pte, &npt.pt);
        let npt2 = NPT {
            pt,
            pgd_t: npt.pgd_t.set(g, true),
            pud_t: npt.pud_t.update(g, |t| t.set(u, true)),
            pmd_t: npt.pmd_t.update(g, |t| t.update(u, |t| t.set(m, false))),
            pt_pgd_next: pgd_next,
            pt_pud_next: pud_next,
            ..npt.clone()
        };
        (false, npt2)
    } else {
        let gfn = zdiv(addr, PAGE_SIZE);
        let (_, level0, _) = *npt.pt.get(gfn);
        if level0 == 2 {
            cov!("local_mmap_h.l3_in_block");
            return (true, npt.clone());
        }
        let pmd_next = next_if_absent(*npt.pmd_t.get(g).get(u).get(m), npt.pt_pmd_next);
        if !(pgd_next <= pools.pud_start(vmid)
            && pud_next <= pools.pmd_start(vmid)
            && pmd_next <= pools.pool_end(vmid))
        {
            cov!("local_mmap_h.l3_exhausted");
            return (true, npt.clone());
        }
        cov!("local_mmap_h.l3_ok");
        let (_, _, pt) = local_mmap_loop_h(1, gfn, pfn, 3, pte, &npt.pt);
        let npt2 = NPT {
            pt,
            pgd_t: npt.pgd_t.set(g, true),
            pud_t: npt.pud_t.update(g, |t| t.set(u, true)),
            pmd_t: npt.pmd_t.update(g, |t| t.update(u, |t| t.set(m, true))),
            pt_pgd_next: pgd_next,
            pt_pud_next: pud_next,
            pt_pmd_next: pmd_next,
        };
        (false, npt2)
    }
}

/// `local_spt_map_h cbndx index addr pte spt`: set the SMMU leaf of context bank
/// `(index, cbndx)` for `addr`, allocating level-2/3 tables from the global SMMU pool.
pub fn local_spt_map_h(
    pools: &Pools,
    cbndx: Z,
    index: Z,
    addr: Z,
    pte: Z,
    spt: &SPT,
) -> (bool, SPT) {
    let gfn = zdiv(addr, PAGE_SIZE);
    let pfn = zdiv(phys_page(pte), PAGE_SIZE);
    let ttbr = SMMU_TTBR(index, cbndx);
    let (p, m) = (stage2_pgd_index(addr), pmd_index(addr));
    let pgd_next = next_if_absent(*spt.spt_pgd_t.get(ttbr).get(p), spt.spt_pgd_next);
    let pmd_next = next_if_absent(*spt.spt_pmd_t.get(ttbr).get(p).get(m), spt.spt_pmd_next);
    if !(pgd_next <= pools.smmu_pmd_start && pmd_next <= pools.smmu_pool_end) {
        cov!("local_spt_map_h.exhausted");
        return (true, spt.clone());
    }
    cov!("local_spt_map_h.ok");
    let spt2 = SPT {
        spt_pt: spt.spt_pt.update(ttbr, |t| t.set(gfn, (pfn, pte))),
        spt_pgd_t: spt.spt_pgd_t.update(ttbr, |t| t.set(p, true)),
        spt_pmd_t: spt
            .spt_pmd_t
            .update(ttbr, |t| t.update(p, |t| t.set(m, true))),
        spt_pgd_next: pgd_next,
        spt_pmd_next: pmd_next,
    };
    (false, spt2)
}

/// Seed `Lemma in_range_n`: `gfn <= gfn0 < gfn + n` is decidable; this is the decision.
pub fn in_range_n(gfn: Z, gfn0: Z, n: Z) -> bool {
    gfn <= gfn0 && gfn0 < gfn + n
}
