//! KCore's state, split by the lock that guards it (the seed's lock ids; spec-digest §1.11,
//! implementation-notes §2.8). Everything several CPUs share is a [`Locked`] value: the
//! only way to it is the lock's guard. What never changes after boot (the layout, the
//! platform) is plain; what belongs to one CPU is its [`crate::trap::Cpu`], passed by
//! `&mut` to each handler.
//!
//! | state | lock |
//! |-------|------|
//! | `npt[v]`: principal v's stage-2 pool (and its tables in KCore memory) | NPT(v) |
//! | `s2page`: the page metadata array in KCore memory | S2PAGE |
//! | `vms[v]`: VM records | INFO(v) |
//! | `core_data`: vmid and remap allocators | CORE |
//! | `smmu`: SMMU context-bank owners (and the SMMUs' registers) | SMMU |
//! | `spt`: the SMMU table pool (and its tables) | SPT |
//! | `exports`: export key and live exports (not a seed lock) | EXPORT |
//! | `shadow[id]`: each vCPU's saved registers (not a seed lock) | CTXT + id |
//!
//! Nesting order, outermost first (a CPU takes locks of rising rank only):
//! SMMU → INFO(v) → CORE → S2PAGE → {NPT(v) | SPT} → {EXPORT | CTXT}.

mod locked;

#[cfg(not(feature = "shuttle"))]
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(feature = "shuttle")]
use shuttle::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use locked::{Guard, Halt, Locked, Res};

use crate::consts::*;
use crate::ctxt::Ctxt;
use crate::hw::{Hw, Untrusted};
use crate::layout::{Layout, Platform};
use crate::meta::{PageMeta, S2Page};
use crate::pt::Pool;
use crate::records::{CoreData, Exports, VmInfo, VCPU_PER_VM};
use crate::smmu::{SmmuPool, BANKS, SMMU_NUM, SMMU_POOL_END, SMMU_POOL_START};

pub const PRINCIPALS: usize = COREVISOR as usize + 1;
/// Shadow contexts: one per (principal, vCPU); the host's vCPU `i` is CPU `i`.
pub const CTXTS: usize = PRINCIPALS * VCPU_PER_VM;
/// The export key of a simulated boot. An EL2 build must replace it with a key derived
/// from a platform secret; a fixed key only keeps simulated runs reproducible.
pub const BOOT_EXPORT_KEY: [u8; 32] = *b"corevisor simulated export key!!";
/// CPUs KCore supports (`TOTAL_CPU`).
pub const MAX_CPUS: usize = 8;
/// SMMU context banks in all.
pub const SMMU_BANKS: usize = (SMMU_NUM * BANKS) as usize;

/// The page metadata array (lock S2PAGE). It lives in KCore's memory; holding its guard is
/// the right to read or write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S2Pages {
    meta_base: u64,
    ram_base: u64,
    ram_end: u64,
}

impl S2Pages {
    fn is_ram(&self, pfn: u64) -> bool {
        pfn >= self.ram_base / PAGE_SIZE && pfn < self.ram_end / PAGE_SIZE
    }

    fn at(&self, pfn: u64) -> u64 {
        self.meta_base + (pfn - self.ram_base / PAGE_SIZE) * 8
    }

    /// The metadata of `pfn` (non-RAM pages read as INVALID).
    pub fn get(&self, hw: &impl Hw, pfn: u64) -> S2Page {
        if !self.is_ram(pfn) {
            return S2Page {
                owner: INVALID,
                count: INVALID,
                gfn: INVALID64,
            };
        }
        PageMeta(hw.read64(self.at(pfn))).unpack(pfn)
    }

    pub fn set(&mut self, hw: &impl Hw, pfn: u64, p: S2Page) {
        debug_assert!(self.is_ram(pfn));
        let m = PageMeta::pack(pfn, p).expect("every metadata KCore writes has an encoding");
        hw.write64(self.at(pfn), m.0);
    }

    /// `page {s2_count: count}` for a page whose metadata `p` was just read.
    pub fn set_count(&mut self, hw: &impl Hw, pfn: u64, p: S2Page, count: u32) {
        self.set(hw, pfn, S2Page { count, ..p });
    }
}

/// KCore: the machine it runs on and the state all CPUs share.
pub struct Core<H: Hw> {
    pub hw: H,
    pub layout: Layout,
    pub platform: Platform,
    pub npt: [Locked<Pool>; PRINCIPALS],
    pub s2page: Locked<S2Pages>,
    pub vms: [Locked<VmInfo>; PRINCIPALS],
    pub core_data: Locked<CoreData>,
    /// Owner of each SMMU context bank (`index * 8 + cbndx`); INVALID = free.
    pub smmu: Locked<[u32; SMMU_BANKS]>,
    pub spt: Locked<SmmuPool>,
    pub exports: Locked<Exports>,
    /// Every principal's vCPU register contexts (the seed's `shadow_ctxts`).
    pub shadow: [Locked<Ctxt>; CTXTS],
    /// Bit `id` set: lock `id` was held when KCore halted (the seed's `hlock[id] = false`).
    poisoned: AtomicU64,
    halted: AtomicBool,
}

/// A lock KCore holds in a handler: its guard, and the machine to tell when it is released
/// ([`Hw::releasing`], while still held, so a checker sees the state the next holder will).
pub struct Held<'a, T, H: Hw> {
    guard: Guard<'a, T>,
    hw: &'a H,
    id: u32,
}

impl<T, H: Hw> core::ops::Deref for Held<'_, T, H> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T, H: Hw> core::ops::DerefMut for Held<'_, T, H> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T, H: Hw> Drop for Held<'_, T, H> {
    fn drop(&mut self) {
        // Runs before `guard` is dropped: the lock is still held here.
        self.hw.releasing(self.id);
    }
}

impl<H: Hw + Clone> Clone for Core<H> {
    fn clone(&self) -> Self {
        Core {
            hw: self.hw.clone(),
            layout: self.layout,
            platform: self.platform,
            npt: self.npt.clone(),
            s2page: self.s2page.clone(),
            vms: self.vms.clone(),
            core_data: self.core_data.clone(),
            smmu: self.smmu.clone(),
            spt: self.spt.clone(),
            exports: self.exports.clone(),
            shadow: self.shadow.clone(),
            poisoned: AtomicU64::new(self.poisoned()),
            halted: AtomicBool::new(self.halted()),
        }
    }
}

impl<H: Hw> Core<H> {
    /// Boot: host RAM owned by the host (gfn tag), KCore's region by KCore, empty tables.
    pub fn boot(hw: H, layout: Layout) -> Self {
        let c = Core {
            hw,
            layout,
            platform: Platform::DEFAULT,
            npt: core::array::from_fn(|v| Locked::new(NPT_ID + v as u32, Pool::boot(v as u32))),
            s2page: Locked::new(
                S2PAGE_ID,
                S2Pages {
                    meta_base: layout.meta_base,
                    ram_base: layout.ram_base,
                    ram_end: layout.ram_end,
                },
            ),
            vms: core::array::from_fn(|v| Locked::new(INFO_ID + v as u32, VmInfo::EMPTY)),
            core_data: Locked::new(CORE_ID, CoreData::BOOT),
            smmu: Locked::new(SMMU_ID, [INVALID; SMMU_BANKS]),
            spt: Locked::new(SPT_ID, SmmuPool::boot(layout.smmu_base)),
            exports: Locked::new(EXPORT_ID, Exports::boot(BOOT_EXPORT_KEY)),
            // A VM vCPU that never ran has no register state yet (`dirty = INVALID64`).
            shadow: core::array::from_fn(|id| {
                let mut c = Ctxt::default();
                if id >= VCPU_PER_VM && id < COREVISOR as usize * VCPU_PER_VM {
                    c.states.dirty = INVALID64;
                }
                Locked::new(CTXT_ID + id as u32, c)
            }),
            poisoned: AtomicU64::new(0),
            halted: AtomicBool::new(false),
        };
        // Whatever the memory held before is gone: the metadata array reads as "every RAM
        // page the host's, count 0" (the all-zero encoding), every table page is empty.
        let l = c.layout;
        let ram_pages = (l.ram_end - l.ram_base) / PAGE_SIZE;
        c.hw.zero_range(l.meta_base, ram_pages * 8);
        c.hw.zero_range(l.pt.pt_base, NPT_POOLS_BYTES);
        c.hw.zero_range(l.smmu_base, SMMU_POOL_END - SMMU_POOL_START);
        // KCore's own region is KCore's from now on.
        let kcore = S2Page {
            owner: COREVISOR,
            count: 0,
            gfn: INVALID64,
        };
        let mut pages = c.s2page.read();
        for pfn in l.kcore_base / PAGE_SIZE..l.ram_end / PAGE_SIZE {
            pages.set(&c.hw, pfn, kcore);
        }
        c
    }

    /// Has KCore halted (its defined panic)?
    pub fn halted(&self) -> bool {
        self.halted.load(Ordering::Acquire)
    }

    /// The EL2 glue's save of a vCPU's return state (ELR_EL2, SPSR_EL2) at an exit that may
    /// go to the host, under the context's lock, as SeKVM's `__guest_exit` does (neither the
    /// seed nor kcore keeps it: docs/el2.md, "kcore changes this needs"). Nothing once halted.
    pub fn save_resume_point(&self, ctxt: usize, pc: u64, pstate: u64) {
        if let Some(c) = self.shadow.get(ctxt) {
            if let Ok((mut s, _)) = c.lock(&self.halted) {
                s.states.pc = pc;
                s.states.pstate = pstate;
            }
        }
    }

    /// The locks the halt poisoned (bit = lock id).
    pub fn poisoned(&self) -> u64 {
        self.poisoned.load(Ordering::Acquire)
    }

    /// KCore's defined panic: records the locks the seed poisons, then no lock is granted
    /// again, so no operation runs after it.
    pub fn halt(&self, locks: &[u32]) -> Halt {
        for &l in locks {
            self.poisoned.fetch_or(1 << l, Ordering::AcqRel);
        }
        self.halted.store(true, Ordering::Release);
        Halt
    }

    /// Halts with no lock poisoned, as an `Err` (`return self.fail(..)` in a `Res` fn).
    pub(crate) fn fail<T>(&self, locks: &[u32]) -> Res<T> {
        Err(self.halt(locks))
    }

    /// Sets or clears poisoned bits while a step holds the lock (VERIFY_VM_IMAGE marks the
    /// VM's info lock taken through the load, as the seed does).
    pub fn mark_poisoned(&self, id: u32, on: bool) {
        if on {
            self.poisoned.fetch_or(1 << id, Ordering::AcqRel);
        } else {
            self.poisoned.fetch_and(!(1 << id), Ordering::AcqRel);
        }
    }

    /// Takes `l`, telling `input` which ticket it was served (the order of acquisitions is
    /// what a checker linearizes concurrent steps by).
    pub(crate) fn take<'a, T>(
        &'a self,
        l: &'a Locked<T>,
        input: &mut impl Untrusted,
    ) -> Res<Held<'a, T, H>> {
        let (g, ticket) = l.lock(&self.halted)?;
        input.acquired(l.id(), ticket);
        Ok(Held {
            guard: g,
            hw: &self.hw,
            id: l.id(),
        })
    }

    /// The metadata of `pfn`, read under S2PAGE (for checkers and tests).
    pub fn page(&self, pfn: u64) -> S2Page {
        self.s2page.read().get(&self.hw, pfn)
    }

    /// Seed lock ids some CPU holds now (bit = id).
    pub fn held(&self) -> u64 {
        let mut h = 0u64;
        let mut note = |id: u32, locked: bool| {
            if locked {
                h |= 1 << id;
            }
        };
        for l in &self.npt {
            note(l.id(), l.is_locked());
        }
        for l in &self.vms {
            note(l.id(), l.is_locked());
        }
        note(S2PAGE_ID, self.s2page.is_locked());
        note(CORE_ID, self.core_data.is_locked());
        note(SMMU_ID, self.smmu.is_locked());
        note(SPT_ID, self.spt.is_locked());
        h
    }

    /// VTTBR_EL2 for principal `v`: its table's root and its VMID (Arm ARM D17.2.160).
    pub fn vttbr(&self, v: u32) -> u64 {
        self.layout.pt.root(v) | ((v as u64) << 48)
    }

    /// The principal whose VTTBR_EL2 `raw` is, if any (its VMID field names it).
    pub fn vttbr_principal(&self, raw: u64) -> Option<u32> {
        let v = (raw >> 48) as u32;
        (v <= COREVISOR && self.vttbr(v) == raw).then_some(v)
    }

    /// The root of SMMU `index`'s bank `cb` (fixed by the layout).
    pub(crate) fn smmu_root(&self, index: u32, cb: u32) -> u64 {
        SmmuPool::boot(self.layout.smmu_base).root(index, cb)
    }
}
