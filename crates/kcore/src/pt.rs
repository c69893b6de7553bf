//! ARMv8 stage-2 translation tables, 4 KiB granule, four levels indexed by IPA bits
//! 47:39, 38:30, 29:21, 20:12 (the seed's pgd/pud/pmd/pte; Arm ARM D8.2).
//!
//! Table pages come from the principal's pool with the seed's bump cursors, so a table is
//! allocated, and the pool runs out, exactly where the model's `local_mmap_h` says. The
//! page for abstract cursor value `c` lives at `pt_base + (c - PT_POOL_START)`.
//!
//! Descriptors (Arm ARM D8.3): bits 1:0 = 0b11 table (levels 0-2) or page (level 3),
//! 0b01 block (level 2: 2 MiB); bit 0 clear = invalid (e.g. `PAGE_GUEST`).

use crate::consts::*;
use crate::hw::Hw;

/// A principal's bump cursors (the seed's `pt_pgd_next`, `pt_pud_next`, `pt_pmd_next`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    pub pgd_next: u64,
    pub pud_next: u64,
    pub pmd_next: u64,
}

impl Pool {
    pub const fn boot(v: u32) -> Pool {
        Pool {
            pgd_next: pgd_start(v),
            pud_next: pud_start(v),
            pmd_next: pmd_start(v),
        }
    }
}

/// Where the pools live in physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtLayout {
    pub pt_base: u64,
}

impl PtLayout {
    /// Physical address of the table page at abstract pool address `c`.
    pub fn phys(&self, c: u64) -> u64 {
        self.pt_base + (c - PT_POOL_START)
    }

    /// The root table of principal `v`.
    pub fn root(&self, v: u32) -> u64 {
        self.phys(pool_start(v))
    }
}

pub fn is_valid(d: u64) -> bool {
    d & 1 == 1
}

pub fn is_table(d: u64) -> bool {
    d & 3 == 3
}

pub fn idx(addr: u64, level: u32) -> u64 {
    (addr >> (39 - 9 * level)) & 511
}

/// The slot for `addr` at `level` in the table at `table`.
fn slot(table: u64, addr: u64, level: u32) -> u64 {
    table + idx(addr, level) * 8
}

/// Replaces a descriptor, break-before-make when a valid one changes (Arm ARM D8.16.1):
/// write invalid, invalidate the TLBs for `ipa` (all 512 pages of a block), then write new.
pub fn set_desc(hw: &impl Hw, vmid: u32, at: u64, ipa: u64, span_pages: u64, new: u64) {
    let old = hw.read64(at);
    if is_valid(old) && old != new {
        hw.write64(at, 0);
        if !crate::mutants::mutant(crate::mutants::Fault::MissedTlbi) {
            for i in 0..span_pages {
                hw.tlbi_ipa(vmid, ipa + i * PAGE_SIZE);
            }
        }
    }
    hw.write64(at, new);
}

/// `local_mmap_h`: insert a leaf for `addr` in principal `v`'s table. Returns `false` (and
/// changes nothing) when a table cannot be allocated or a page would split a block.
#[allow(clippy::too_many_arguments)]
pub fn mmap(
    hw: &impl Hw,
    l: &PtLayout,
    v: u32,
    pool: &mut Pool,
    addr: u64,
    level: u32,
    pte: u64,
) -> bool {
    let root = l.root(v);
    let d0 = hw.read64(slot(root, addr, 0));
    let next_pgd = if is_table(d0) {
        pool.pgd_next
    } else {
        pool.pgd_next + PAGE_SIZE
    };
    let l1 = if is_table(d0) {
        phys_page(d0)
    } else {
        l.phys(pool.pgd_next)
    };
    let d1 = if is_table(d0) {
        hw.read64(slot(l1, addr, 1))
    } else {
        0
    };
    let next_pud = if is_table(d1) {
        pool.pud_next
    } else {
        pool.pud_next + PAGE_SIZE
    };
    let l2 = if is_table(d1) {
        phys_page(d1)
    } else {
        l.phys(pool.pud_next)
    };
    let d2 = if is_table(d1) {
        hw.read64(slot(l2, addr, 2))
    } else {
        0
    };
    let fits = next_pgd <= pud_start(v) && next_pud <= pmd_start(v);
    if level == 2 {
        if !fits {
            return false;
        }
        link(hw, root, l1, addr, 0, d0, v);
        link(hw, l1, l2, addr, 1, d1, v);
        let block_ipa = addr & !(0x20_0000 - 1);
        set_desc(hw, v, slot(l2, addr, 2), block_ipa, 512, pte);
        pool.pgd_next = next_pgd;
        pool.pud_next = next_pud;
        return true;
    }
    if is_valid(d2) && !is_table(d2) {
        return false; // a page inside a 2 MiB block
    }
    let next_pmd = if is_table(d2) {
        pool.pmd_next
    } else {
        pool.pmd_next + PAGE_SIZE
    };
    if !(fits && next_pmd <= pool_end(v)) {
        return false;
    }
    let l3 = if is_table(d2) {
        phys_page(d2)
    } else {
        l.phys(pool.pmd_next)
    };
    link(hw, root, l1, addr, 0, d0, v);
    link(hw, l1, l2, addr, 1, d1, v);
    link(hw, l2, l3, addr, 2, d2, v);
    set_desc(hw, v, slot(l3, addr, 3), addr & !(PAGE_SIZE - 1), 1, pte);
    pool.pgd_next = next_pgd;
    pool.pud_next = next_pud;
    pool.pmd_next = next_pmd;
    true
}

/// Points the `level` entry of `table` at `next` unless it already does.
fn link(hw: &impl Hw, table: u64, next: u64, addr: u64, level: u32, old: u64, _v: u32) {
    if !is_table(old) {
        // A fresh table page is zero (pools are zeroed at boot); nothing was reachable
        // through an invalid entry, so no TLB maintenance is needed.
        hw.write64(slot(table, addr, level), next | 3);
    }
}

/// The leaf descriptor for `addr` and its level (`None`: nothing at all).
pub fn lookup(hw: &impl Hw, l: &PtLayout, v: u32, addr: u64) -> Option<(u64, u32)> {
    let mut table = l.root(v);
    for level in 0..4 {
        let d = hw.read64(slot(table, addr, level));
        if level < 3 && is_table(d) {
            table = phys_page(d);
            continue;
        }
        return if d == 0 { None } else { Some((d, level)) };
    }
    None
}
