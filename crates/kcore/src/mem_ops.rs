//! The seed's ownership operations (`ConcurrentSpec`, `local_*`) on the real structures:
//! metadata in KCore memory and ARMv8 stage-2 tables. One function per transition; names
//! mirror the seed. Arm-profile semantics (`docs/deviations.md`).
//!
//! A panic ("halt") is sticky: the operation that halts records the locks the seed poisons
//! and no later operation changes anything.

use crate::consts::*;
use crate::ctxt::Ctxt;
use crate::hw::{Hw, Untrusted};
use crate::layout::{Layout, Platform};
use crate::lock::Locks;
use crate::meta::{PageMeta, S2Page};
use crate::mutants::{mutant, Fault};
use crate::pt::{self, Pool};
use crate::smmu::{self, SmmuPool, BANKS, SMMU_NUM, SMMU_POOL_END, SMMU_POOL_START};
use crate::trap::{Exports, PerCpu};
use crate::vm_info::{CoreData, VmInfo, VCPU_PER_VM};

pub const PRINCIPALS: usize = COREVISOR as usize + 1;
/// Shadow contexts: one per (principal, vCPU); the host's vCPU `i` is CPU `i`.
pub const CTXTS: usize = PRINCIPALS * VCPU_PER_VM;
/// The export key of a simulated boot. An EL2 build must replace it with a key derived
/// from a platform secret; a fixed key only keeps simulated runs reproducible.
pub const BOOT_EXPORT_KEY: [u8; 32] = *b"corevisor simulated export key!!";
/// CPUs KCore supports (`TOTAL_CPU`).
pub const MAX_CPUS: usize = 8;

/// KCore's memory machinery.
#[derive(Clone)]
pub struct Core<H: Hw> {
    pub hw: H,
    pub layout: Layout,
    pub pools: [Pool; PRINCIPALS],
    pub smmu_pool: SmmuPool,
    /// Owner of each SMMU context bank (`smmu_id = index * 8 + cbndx`); INVALID = free.
    pub smmu_vmid: [u32; (SMMU_NUM * BANKS) as usize],
    /// Each principal's VM record (the seed's `VMInfo`).
    pub vms: [VmInfo; PRINCIPALS],
    pub core_data: CoreData,
    /// Bit `id` set: lock `id` was held when KCore halted (the seed's `hlock[id] = false`).
    pub poisoned: u64,
    pub halted: bool,
    pub platform: Platform,
    /// Every principal's vCPU register contexts (the seed's `shadow_ctxts`).
    pub shadow: [Ctxt; CTXTS],
    /// What each CPU is running (the seed's per-CPU `RData` fields).
    pub cpus: [PerCpu; MAX_CPUS],
    /// Export key, sequence numbers and the live exports' headers.
    pub exports: Exports,
    /// The ticket locks of the seed's lock ids (`lock.rs`), and which this machine holds.
    pub locks: Locks,
    pub held: u64,
}

impl<H: Hw> Core<H> {
    /// Boot: host RAM owned by the host (gfn tag), KCore's region by KCore, empty tables.
    pub fn boot(hw: H, layout: Layout) -> Self {
        let mut c = Core {
            hw,
            layout,
            pools: [Pool::boot(0); PRINCIPALS],
            smmu_pool: SmmuPool::boot(layout.smmu_base),
            smmu_vmid: [INVALID; (SMMU_NUM * BANKS) as usize],
            vms: [VmInfo::EMPTY; PRINCIPALS],
            core_data: CoreData::BOOT,
            poisoned: 0,
            halted: false,
            platform: Platform::DEFAULT,
            shadow: [Ctxt::default(); CTXTS],
            cpus: core::array::from_fn(PerCpu::boot),
            exports: Exports::boot(BOOT_EXPORT_KEY),
            locks: Locks::new(),
            held: 0,
        };
        // A VM vCPU that never ran has no register state yet (`dirty = INVALID64`).
        for (id, c) in c.shadow.iter_mut().enumerate() {
            if id >= VCPU_PER_VM && id < COREVISOR as usize * VCPU_PER_VM {
                c.states.dirty = INVALID64;
            }
        }
        for v in 0..PRINCIPALS {
            c.pools[v] = Pool::boot(v as u32);
        }
        // Whatever the memory held before is gone: the metadata array reads as "every RAM
        // page the host's, count 0" (the all-zero encoding), every table page is empty.
        let l = c.layout;
        let ram_pages = (l.ram_end - l.ram_base) / PAGE_SIZE;
        c.hw.zero_range(l.meta_base, ram_pages * 8);
        c.hw.zero_range(l.pt.pt_base, PT_POOL_PER_VM * PRINCIPALS as u64);
        c.hw.zero_range(l.smmu_base, SMMU_POOL_END - SMMU_POOL_START);
        // KCore's own region is KCore's from now on.
        let kcore = S2Page {
            owner: COREVISOR,
            count: 0,
            gfn: INVALID64,
        };
        for pfn in l.kcore_base / PAGE_SIZE..l.ram_end / PAGE_SIZE {
            c.set_page(pfn, kcore);
        }
        c
    }

    fn is_ram(&self, pfn: u64) -> bool {
        self.layout.is_ram(pfn)
    }

    /// The metadata of `pfn` (non-RAM pages read as INVALID).
    pub fn page(&self, pfn: u64) -> S2Page {
        if !self.is_ram(pfn) {
            return S2Page {
                owner: INVALID,
                count: INVALID,
                gfn: INVALID64,
            };
        }
        let at = self.layout.meta_base + (pfn - self.layout.ram_base / PAGE_SIZE) * 8;
        PageMeta(self.hw.read64(at)).unpack(pfn)
    }

    pub(crate) fn set_page(&mut self, pfn: u64, p: S2Page) {
        debug_assert!(self.is_ram(pfn));
        let at = self.layout.meta_base + (pfn - self.layout.ram_base / PAGE_SIZE) * 8;
        let m = PageMeta::pack(pfn, p).expect("every metadata KCore writes has an encoding");
        self.hw.write64(at, m.0);
    }

    /// `page {s2_count: count}` for a page whose metadata `p` was just read.
    fn set_count(&mut self, pfn: u64, p: S2Page, count: u32) {
        self.set_page(pfn, S2Page { count, ..p });
    }

    pub(crate) fn halt(&mut self, locks: &[u32]) -> bool {
        debug_assert!(
            locks.iter().all(|&l| self.held & (1 << l) != 0),
            "a halt poisons only locks its step holds"
        );
        for &l in locks {
            self.poisoned |= 1 << l;
        }
        self.halted = true;
        true
    }

    pub(crate) fn mmap_principal(&mut self, v: u32, addr: u64, level: u32, pte: u64) -> bool {
        let mut pool = self.pools[v as usize];
        let ok = pt::mmap(
            &mut self.hw,
            &self.layout.pt,
            v,
            &mut pool,
            addr,
            level,
            pte,
        );
        self.pools[v as usize] = pool;
        ok
    }

    /// Remove the host's access to `pfn` (the seed writes `PAGE_GUEST` over a present entry).
    pub(crate) fn unmap_host(&mut self, pfn: u64) -> bool {
        match pt::lookup(&self.hw, &self.layout.pt, HOSTVISOR, pfn * PAGE_SIZE) {
            Some((d, 3)) if d != 0 => {
                self.mmap_principal(HOSTVISOR, pfn * PAGE_SIZE, 3, PAGE_GUEST)
            }
            Some((_, 2)) => self.mmap_principal(HOSTVISOR, pfn * PAGE_SIZE, 3, PAGE_GUEST),
            _ => true,
        }
    }

    /// `local_map_host`: a host stage-2 fault on `addr`: RAM the host owns or was shared, or a
    /// declared device. Returns `true` if KCore halted.
    pub(crate) fn local_map_host_locked(&mut self, addr: u64) -> bool {
        if self.halted {
            return true;
        }
        let pfn = addr / PAGE_SIZE;
        let p = self.page(pfn);
        if !(p.owner == INVALID
            || p.owner == HOSTVISOR
            || p.count > 0
            || mutant(Fault::MapSkipsOwnerCheck))
        {
            return self.halt(&[S2PAGE_ID]);
        }
        if p.owner == INVALID
            && !self.platform.is_mmio(addr)
            && !mutant(Fault::DeviceOutsideMmioMapped)
        {
            // Not RAM and no device the platform declares (deviation `device_outside_mmio`).
            return self.halt(&[S2PAGE_ID]);
        }
        let attrs = if p.owner == INVALID {
            PAGE_S2_DEVICE | S2_RDWR
        } else {
            PAGE_S2_KERNEL
        };
        if !self.mmap_principal(HOSTVISOR, addr, 3, (pfn * PAGE_SIZE) | attrs) {
            return self.halt(&[S2PAGE_ID, NPT_ID]);
        }
        false
    }

    /// `local_clear_vm_page`: scrub a page of a powered-off VM and give it back to the host.
    pub(crate) fn local_clear_vm_page_locked(&mut self, vmid: u32, pfn: u64) -> bool {
        if self.halted {
            return true;
        }
        if self.page(pfn).owner != vmid {
            return false;
        }
        if !self.unmap_host(pfn) {
            return self.halt(&[S2PAGE_ID, NPT_ID]);
        }
        if mutant(Fault::ScrubFirstWordOnly) {
            self.hw.write64(pfn * PAGE_SIZE, 0);
        } else {
            self.hw.zero_page(pfn * PAGE_SIZE);
        }
        self.set_page(
            pfn,
            S2Page {
                owner: HOSTVISOR,
                count: 0,
                gfn: pfn + SMMU_HOST_OFFSET,
            },
        );
        false
    }

    /// `local_assign_pfn_to_vm`: a free host page becomes `vmid`'s at `gfn`. The VM gets the
    /// page as the host left it: its first word is recorded as the untrusted value.
    pub(crate) fn local_assign_pfn_to_vm_locked(
        &mut self,
        vmid: u32,
        gfn: u64,
        pfn: u64,
        input: &mut impl Untrusted,
    ) -> bool {
        if self.halted {
            return true;
        }
        let p = self.page(pfn);
        if p.owner == HOSTVISOR || (mutant(Fault::AssignSkipsOwnerCheck) && p.owner != vmid) {
            if p.count != 0 {
                return self.halt(&[S2PAGE_ID]);
            }
            self.set_page(
                pfn,
                S2Page {
                    owner: vmid,
                    count: 0,
                    gfn,
                },
            );
            if !self.unmap_host(pfn) {
                return self.halt(&[S2PAGE_ID, NPT_ID]);
            }
            input.record(vmid, self.hw.read64(pfn * PAGE_SIZE));
            false
        } else if p.owner == vmid && (p.gfn == INVALID64 || p.gfn == gfn) {
            let count = if p.count == INVALID { 0 } else { p.count };
            self.set_page(
                pfn,
                S2Page {
                    owner: vmid,
                    count,
                    gfn,
                },
            );
            false
        } else {
            self.halt(&[S2PAGE_ID])
        }
    }

    /// `local_map_pfn_vm`: install the VM's stage-2 leaf (4 KiB page or 2 MiB block).
    pub(crate) fn local_map_pfn_vm_locked(
        &mut self,
        vmid: u32,
        addr: u64,
        pte: u64,
        level: u32,
    ) -> bool {
        if self.halted {
            return true;
        }
        let pa = phys_page(pte);
        let (leaf, lvl) = if level == 2 {
            ((pa | PAGE_S2_KERNEL) & !PMD_TABLE_BIT, 2)
        } else {
            (pa | PAGE_S2_KERNEL, 3)
        };
        if !self.mmap_principal(vmid, addr, lvl, leaf) {
            return self.halt(&[NPT_ID + vmid]);
        }
        false
    }

    /// `local_grant_vm_page`: the VM shares its page with the host (never halts).
    pub(crate) fn local_grant_vm_page_locked(&mut self, vmid: u32, pfn: u64) -> bool {
        if self.halted {
            return true;
        }
        let p = self.page(pfn);
        if (p.owner == vmid || mutant(Fault::GrantSkipsOwnerCheck)) && p.count < MAX_SHARE_COUNT {
            self.set_count(pfn, p, p.count + 1);
        }
        false
    }

    /// `local_revoke_vm_page`: one share less; at zero the host loses its mapping. The page's
    /// first word (written by the host while shared) is recorded as untrusted input.
    pub(crate) fn local_revoke_vm_page_locked(
        &mut self,
        vmid: u32,
        pfn: u64,
        input: &mut impl Untrusted,
    ) -> bool {
        if self.halted {
            return true;
        }
        let p = self.page(pfn);
        if !(p.owner == vmid && p.count > 0 && p.count != INVALID) {
            return false;
        }
        self.set_count(pfn, p, p.count - 1);
        if p.count != 1 {
            return false;
        }
        if !mutant(Fault::RevokeKeepsHostMapping) && !self.unmap_host(pfn) {
            return self.halt(&[S2PAGE_ID, NPT_ID]);
        }
        input.record(vmid, self.hw.read64(pfn * PAGE_SIZE));
        false
    }

    pub(crate) fn bank(index: u32, cbndx: u32) -> usize {
        (index * BANKS + cbndx) as usize
    }

    pub(crate) fn is_vm(v: u32) -> bool {
        0 < v && v < COREVISOR
    }

    pub(crate) fn state(&self, v: u32) -> u32 {
        self.vms.get(v as usize).map_or(UNUSED, |vm| vm.state)
    }

    /// `local_free_smmu_pgd`: release a bank whose owner is powered off.
    pub(crate) fn local_free_smmu_pgd_locked(&mut self, cbndx: u32, index: u32) -> bool {
        if self.halted {
            return true;
        }
        let v = self.smmu_vmid[Self::bank(index, cbndx)];
        if v == INVALID {
            return false;
        }
        if self.state(v) != POWEROFF {
            return self.halt(&[SMMU_ID]);
        }
        self.smmu_vmid[Self::bank(index, cbndx)] = INVALID;
        if !self.smmu_hw_detach(index, cbndx, v) {
            return self.halt(&[SMMU_ID]);
        }
        false
    }

    /// `local_alloc_smmu_pgd`: give a free bank (of `num` on this SMMU) to `vmid`, with empty tables.
    pub(crate) fn local_alloc_smmu_pgd_locked(
        &mut self,
        cbndx: u32,
        vmid: u32,
        index: u32,
        num: u32,
    ) -> bool {
        if self.halted {
            return true;
        }
        if cbndx >= num {
            return self.halt(&[SMMU_ID]);
        }
        if self.smmu_vmid[Self::bank(index, cbndx)] != INVALID {
            return false;
        }
        if Self::is_vm(vmid) && self.state(vmid) == VERIFIED {
            return self.halt(&[INFO_ID + vmid, SMMU_ID]);
        }
        self.smmu_vmid[Self::bank(index, cbndx)] = vmid;
        smmu::clear_root(&mut self.hw, &self.smmu_pool, index, cbndx);
        if !self.smmu_hw_attach(index, cbndx, vmid) {
            return self.halt(&[SMMU_ID]);
        }
        false
    }

    /// `local_smmu_assign_page`: a free host page becomes the VM's, for its device at `gfn`.
    pub(crate) fn local_smmu_assign_page_locked(
        &mut self,
        cbndx: u32,
        index: u32,
        pfn: u64,
        gfn: u64,
    ) -> bool {
        if self.halted {
            return true;
        }
        let v = self.smmu_vmid[Self::bank(index, cbndx)];
        if v == INVALID || !Self::is_vm(v) {
            return false;
        }
        if self.state(v) == VERIFIED {
            return self.halt(&[SMMU_ID, INFO_ID + v]);
        }
        let p = self.page(pfn);
        if p.owner == v {
            return false;
        }
        if p.owner != HOSTVISOR || p.count != 0 {
            return self.halt(&[SMMU_ID, INFO_ID + v, S2PAGE_ID]);
        }
        if !self.unmap_host(pfn) {
            return self.halt(&[SMMU_ID, INFO_ID + v, S2PAGE_ID, NPT_ID]);
        }
        self.set_page(
            pfn,
            S2Page {
                owner: v,
                count: INVALID,
                gfn,
            },
        );
        false
    }

    /// `local_smmu_map_page`: map `iova` in the bank, only to a page its owner owns at that gfn.
    pub(crate) fn local_smmu_map_page_locked(
        &mut self,
        cbndx: u32,
        index: u32,
        iova: u64,
        pte: u64,
    ) -> bool {
        if self.halted {
            return true;
        }
        let v = self.smmu_vmid[Self::bank(index, cbndx)];
        if v == INVALID {
            return false;
        }
        if Self::is_vm(v) && self.state(v) == VERIFIED {
            return self.halt(&[SMMU_ID, INFO_ID + v]);
        }
        let pfn = phys_page(pte) / PAGE_SIZE;
        let p = self.page(pfn);
        if !(p.owner == v && p.gfn == iova / PAGE_SIZE) {
            return self.halt(&[SMMU_ID, INFO_ID + v, S2PAGE_ID]);
        }
        let old = smmu::leaf(&self.hw, &self.smmu_pool, index, cbndx, iova);
        if !smmu::spt_map(&mut self.hw, &mut self.smmu_pool, index, cbndx, iova, pte) {
            return self.halt(&[SMMU_ID, INFO_ID + v, S2PAGE_ID, SPT_ID]);
        }
        // A leaf that changed may be cached by the SMMU.
        if old != 0 && old != pte && !self.smmu_hw_flush(index, v) {
            return self.halt(&[SMMU_ID]);
        }
        if p.owner == HOSTVISOR && p.count < EL2_SMMU_CFG_SIZE {
            self.set_count(pfn, p, p.count + 1);
        }
        false
    }

    /// `local_smmu_clear`: unmap `iova` from the bank; a host page's mapping count drops.
    pub(crate) fn local_smmu_clear_locked(&mut self, iova: u64, cbndx: u32, index: u32) -> bool {
        if self.halted {
            return true;
        }
        let v = self.smmu_vmid[Self::bank(index, cbndx)];
        if v == INVALID {
            return false;
        }
        if Self::is_vm(v) && self.state(v) >= VERIFIED {
            return self.halt(&[SMMU_ID, INFO_ID + v]);
        }
        let pte = smmu::leaf(&self.hw, &self.smmu_pool, index, cbndx, iova);
        if pte == 0 {
            return false;
        }
        if !smmu::spt_map(&mut self.hw, &mut self.smmu_pool, index, cbndx, iova, 0) {
            return self.halt(&[SMMU_ID, INFO_ID + v, S2PAGE_ID, SPT_ID]);
        }
        // No device may keep using the removed translation (issue 13).
        if !self.smmu_hw_flush(index, v) {
            return self.halt(&[SMMU_ID]);
        }
        let pfn = phys_page(pte) / PAGE_SIZE;
        let p = self.page(pfn);
        if p.owner == HOSTVISOR && p.count > 0 {
            self.set_count(pfn, p, p.count - 1);
        }
        false
    }
}
