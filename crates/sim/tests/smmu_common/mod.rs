//! What the SMMU model tests share: register access helpers, the programming a driver (or
//! KCore) does, and KCore's own per-bank tables.
#![allow(dead_code)]

use corevisor_kcore::consts::PTE_AF_OR_SH_IS;
use corevisor_kcore::smmu::{spt_map, SmmuPool};
use corevisor_sim::mem::SimMemory;
use corevisor_sim::smmu::regs::{cb, cba2r, cbar, gr0, gr1, s2cr, scr0, sctlr, smr, tcr};
use corevisor_sim::smmu::{Smmu, SmmuConfig, Width};

/// Where these tests put KCore's SMMU table pool (any RAM the tests do not otherwise use).
const SMMU_POOL_BASE: u64 = 0x4F1C_0000;

/// Offset of context bank `n`'s register `reg` (default geometry).
pub const fn cb(n: u64, reg: u64) -> u64 {
    0x8000 + n * 0x1000 + reg
}

pub fn w32(s: &mut Smmu, off: u64, v: u32) {
    s.write(off, Width::W32, v as u64).expect("32-bit write");
}

pub fn r32(s: &mut Smmu, off: u64) -> u32 {
    let v = s.read(off, Width::W32).expect("32-bit read");
    assert!(v <= u32::MAX as u64, "a 32-bit read returns 32 bits");
    v as u32
}

pub fn w64(s: &mut Smmu, off: u64, v: u64) {
    s.write(off, Width::W64, v).expect("64-bit write");
}

pub fn r64(s: &mut Smmu, off: u64) -> u64 {
    s.read(off, Width::W64).expect("64-bit read")
}

/// What a driver's reset does last: client ports on, unmatched streams fault, global faults
/// abort.
pub fn enable(s: &mut Smmu) {
    w32(s, gr0::SCR0, scr0::USFCFG | scr0::GFRE | scr0::GFIE);
}

/// Stream match group `g` routes stream IDs `id` (bits in `mask` ignored) to bank `bank`.
pub fn route(s: &mut Smmu, g: u64, id: u32, mask: u32, bank: u32) {
    w32(
        s,
        gr0::s2cr(g),
        (s2cr::TYPE_TRANSLATE << s2cr::TYPE_SHIFT) | bank,
    );
    w32(s, gr0::smr(g), smr::VALID | (mask << smr::MASK_SHIFT) | id);
}

/// Bank `n` as KCore's tables need it: AArch64 format, stage-2 with `vmid`, KCore's TCR,
/// TTBR0 = `root`, translation on with faults reported and aborted.
pub fn kcore_bank(s: &mut Smmu, n: u64, vmid: u32, root: u64) {
    w32(s, gr1::cba2r(n), cba2r::VA64);
    w32(
        s,
        gr1::cbar(n),
        (cbar::TYPE_S2_TRANSLATE << cbar::TYPE_SHIFT) | vmid,
    );
    w32(s, cb(n, cb::TCR), tcr::KCORE_AARCH64);
    w64(s, cb(n, cb::TTBR0), root);
    w32(
        s,
        cb(n, cb::SCTLR),
        sctlr::M | sctlr::CFRE | sctlr::CFIE | sctlr::AFE | sctlr::TRE,
    );
}

/// KCore's invalidation after an unmap: TLBIVMID, sTLBGSYNC, then poll sTLBGSTATUS until the
/// sync is no longer active. Returns the number of polls.
pub fn kcore_invalidate(s: &mut Smmu, vmid: u32) -> u32 {
    w32(s, gr0::TLBIVMID, vmid);
    w32(s, gr0::STLBGSYNC, 0);
    for polls in 1..=16 {
        if r32(s, gr0::STLBGSTATUS) & 1 == 0 {
            return polls;
        }
    }
    panic!("TLB sync never completed");
}

/// KCore's SMMU pool in the simulated machine, with its per-bank tables.
pub struct Tables {
    pub mem: SimMemory,
    pub pool: SmmuPool,
}

impl Tables {
    pub fn new() -> Tables {
        Tables {
            mem: SimMemory::new(),
            pool: SmmuPool::boot(SMMU_POOL_BASE),
        }
    }

    /// KCore's root for SMMU 0's bank `n`.
    pub fn root(&self, n: u32) -> u64 {
        self.pool.root(0, n)
    }

    /// `SMMU_LPAE_MAP`'s table update: bank `n` maps `iova` to `pa` with `prot` (S2AP and
    /// type bits), KCore adding AF and inner shareability.
    pub fn map(&mut self, n: u32, iova: u64, pa: u64, prot: u64) {
        let pte = pa | prot | PTE_AF_OR_SH_IS;
        assert!(spt_map(&self.mem, &mut self.pool, 0, n, iova, pte));
    }

    /// `SMMU_CLEAR`'s table update: bank `n`'s leaf for `iova` becomes 0.
    pub fn unmap(&mut self, n: u32, iova: u64) {
        assert!(spt_map(&self.mem, &mut self.pool, 0, n, iova, 0));
    }
}

/// S2AP = read/write, page descriptor.
pub const RW: u64 = 0xC3;
/// S2AP = read only.
pub const RO: u64 = 0x43;
/// S2AP = write only.
pub const WO: u64 = 0x83;

/// An SMMU with the default configuration, enabled.
pub fn smmu() -> Smmu {
    let mut s = Smmu::new(SmmuConfig::default());
    enable(&mut s);
    s
}
