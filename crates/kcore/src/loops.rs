//! The seed's loops over the ownership operations (`AuxSpec`), Arm-profile semantics: mapping
//! a host-proposed page or 2 MiB block into a VM, scrubbing a powered-off VM's range, device
//! mappings, sharing/unsharing guest ranges, and loading verified images.

use crate::consts::*;
use crate::hw::{Hw, Untrusted};
use crate::mutants::{mutant, Fault};
use crate::pt;
use crate::state::{Core, Res};
use crate::vm_info::VmInfo;

const PMD_SIZE: u64 = 0x20_0000;
/// Pages a loop changes under one hold of S2PAGE (and the host's NPT) before it lets other
/// CPUs in: a loop's batch is one atomic step (fewer interleavings than the seed's page by
/// page, so every run is still one the seed allows), and no principal can keep S2PAGE for
/// longer than a batch however long a range it names.
pub const BATCH: u64 = 512;

impl<H: Hw> Core<H> {
    /// `prot_and_map_vm_s2pt_spec_h`: give the VM the page (or the 512 pages of a 2 MiB
    /// block) behind `pte` at `addr`, then map it. An unaligned block is refused.
    pub fn prot_and_map_vm_s2pt(
        &self,
        vmid: u32,
        addr: u64,
        pte: u64,
        level: u32,
        input: &mut impl Untrusted,
    ) -> Res {
        let pfn = phys_page(pte) / PAGE_SIZE;
        let gfn = addr / PAGE_SIZE;
        if level == 2 {
            if !pfn.is_multiple_of(512) {
                return self.fail(&[]);
            }
            let base = gfn / 512 * 512;
            let (mut pages, mut host) = self.pages_and_host(input)?;
            for i in 0..512 {
                self.local_assign_pfn_to_vm_held(
                    &mut pages,
                    &mut host,
                    vmid,
                    base + i,
                    pfn + i,
                    input,
                )?;
            }
            drop((pages, host));
            return self.local_map_pfn_vm(vmid, addr, pte, 2, input);
        }
        self.local_assign_pfn_to_vm(vmid, gfn, pfn, input)?;
        self.local_map_pfn_vm(vmid, addr, pte, 3, input)
    }

    /// CLEAR_VM_S2_RANGE: a powered-off VM's pages in `[pfn, pfn + n)` go back to the host,
    /// scrubbed, once nothing can reach them: no vCPU of the VM ACTIVE (its stage-2 is live
    /// on that CPU) and no SMMU bank the VM's (a device translates through it). Then the
    /// VM's stage-2 goes first, TLB entries included (deviation `clear_while_reachable`).
    /// Otherwise a no-op, as for a VM not powered off. A powered-off VM never gets a vCPU
    /// running or a bank again, so what was checked stays true.
    pub fn clear_vm_s2_range(
        &self,
        vmid: u32,
        pfn: u64,
        n: u64,
        input: &mut impl Untrusted,
    ) -> Res {
        let (state, reachable) = {
            let banks = self.take(&self.smmu, input)?;
            let vm = self.take(&self.vms[vmid as usize], input)?;
            let running = vm.vcpu_state.contains(&crate::vm_info::ACTIVE);
            (vm.state, running || banks.contains(&vmid))
        };
        if state != POWEROFF {
            return Ok(());
        }
        if !mutant(Fault::ClearWhileReachable) {
            if reachable {
                return Ok(());
            }
            self.teardown_vm_s2(vmid, input)?;
        }
        self.clear_vm_range(vmid, pfn, n, input)
    }

    /// A dead VM's whole stage-2 goes: its root table zeroed (every walk from it faults),
    /// then every CPU's TLB entries of its VMID invalidated. The tables below the root stay
    /// in the VM's pool, unreachable; its cursors do not move back.
    fn teardown_vm_s2(&self, vmid: u32, input: &mut impl Untrusted) -> Res {
        let _npt = self.take(&self.npt[vmid as usize], input)?;
        self.hw.zero_page(self.layout.pt.root(vmid));
        self.hw.tlbi_vmid(vmid);
        Ok(())
    }

    /// `clear_vm_loop_h`: scrub and return `n` pages from `pfn` (those the VM owns).
    pub fn clear_vm_range(&self, vmid: u32, pfn: u64, n: u64, input: &mut impl Untrusted) -> Res {
        let end = pfn.saturating_add(n);
        let mut p = pfn;
        while p < end {
            let (mut pages, mut host) = self.pages_and_host(input)?;
            for q in p..end.min(p.saturating_add(BATCH)) {
                self.local_clear_vm_page_held(&mut pages, &mut host, vmid, q)?;
            }
            p = p.saturating_add(BATCH);
        }
        Ok(())
    }

    /// `kvm_phys_addr_ioremap_loop_h`: map `n` device pages.
    pub fn ioremap_range(
        &self,
        vmid: u32,
        gpa: u64,
        pa: u64,
        n: u64,
        input: &mut impl Untrusted,
    ) -> Res {
        for i in 0..n {
            self.local_map_io(vmid, gpa + i * PAGE_SIZE, pa + i * PAGE_SIZE, input)?;
        }
        Ok(())
    }

    /// The page the VM's table maps at `gfn` (inside a block: the block's page for `gfn`),
    /// read under the VM's NPT lock.
    fn vm_page(&self, vmid: u32, gfn: u64, input: &mut impl Untrusted) -> Res<u64> {
        let _npt = self.take(&self.npt[vmid as usize], input)?;
        Ok(
            match pt::lookup(&self.hw, &self.layout.pt, vmid, gfn * PAGE_SIZE) {
                Some((d, 2)) if pt::is_valid(d) => phys_page(d) / PAGE_SIZE + (gfn & 511),
                Some((d, 3)) => phys_page(d) / PAGE_SIZE,
                _ => 0,
            },
        )
    }

    /// `grant_stage2_loop` / `revoke_stage2_loop`: share or unshare the pages behind the
    /// guest range `[addr, addr + n pages)`.
    pub fn share_range(
        &self,
        vmid: u32,
        addr: u64,
        n: u64,
        revoke: bool,
        input: &mut impl Untrusted,
    ) -> Res {
        if !revoke && (mutant(Fault::GrantSkipsS2PageLock) || mutant(Fault::GrantTearsOwner)) {
            // The planted lock faults: each grant on its own (`local_grant_vm_page`), without
            // S2PAGE or over two holds of it.
            for i in 0..n {
                let pfn = self.vm_page(vmid, addr / PAGE_SIZE + i, input)?;
                if pfn != 0 {
                    self.local_grant_vm_page(vmid, pfn, input)?;
                }
            }
            return Ok(());
        }
        let mut i = 0;
        while i < n {
            // S2PAGE (and for a revoke the host's NPT) for a batch; the VM's NPT for each
            // lookup inside it (NPT(0) before NPT(v): nothing takes them the other way).
            let (mut pages, mut host) = if revoke {
                let (p, h) = self.pages_and_host(input)?;
                (p, Some(h))
            } else {
                (self.take(&self.s2page, input)?, None)
            };
            for k in i..n.min(i.saturating_add(BATCH)) {
                let pfn = self.vm_page(vmid, addr / PAGE_SIZE + k, input)?;
                if pfn == 0 {
                    continue;
                }
                match host.as_mut() {
                    Some(h) => self.local_revoke_vm_page_held(&mut pages, h, vmid, pfn, input)?,
                    None => self.local_grant_vm_page_held(&mut pages, vmid, pfn)?,
                }
            }
            i = i.saturating_add(BATCH);
        }
        Ok(())
    }

    /// `verify_and_load_loop_h` on its own: takes the VM's INFO lock around the load.
    pub fn verify_and_load(&self, vmid: u32, input: &mut impl Untrusted) -> Res {
        let vm = self.take(&self.vms[vmid as usize], input)?;
        self.verify_and_load_held(vmid, &vm, input)
    }

    /// `verify_and_load_loop_h`: move every image segment of the VM (`vm`, its INFO lock
    /// held) into it in 2 MiB blocks, read back from KCore's remap window.
    pub(crate) fn verify_and_load_held(
        &self,
        vmid: u32,
        vm: &VmInfo,
        input: &mut impl Untrusted,
    ) -> Res {
        if !self.image_bound(vm) && !mutant(Fault::ImageBlockUnbound) {
            return self.fail(&[]);
        }
        for idx in 0..vm.next_load_info as usize {
            let (la, ra, mp) = (vm.load_addr[idx], vm.remap_addr[idx], vm.mapped_pages[idx]);
            let mut start = la / PMD_SIZE * PMD_SIZE;
            let mut target = la;
            let mut remap = ra;
            let num = (la + mp * PAGE_SIZE - start).div_ceil(PMD_SIZE);
            for _ in 0..num {
                let pte = self.remapped(remap);
                if pte == 0 {
                    return self.fail(&[]);
                }
                let block = phys_page(pte) / PMD_SIZE * PMD_SIZE;
                self.prot_and_map_vm_s2pt(vmid, start, block, 2, input)?;
                remap += start + PMD_SIZE - target;
                start += PMD_SIZE;
                target = start;
            }
        }
        Ok(())
    }

    /// Are the signed pages the pages the VM receives? Each 2 MiB chunk of the image becomes
    /// the block of a remapped page in it, while the signature covers the remapped pages:
    /// every one, of every segment, must be the page at its guest address of one block per
    /// chunk, the block of the chunk's first remapped page in segment order (segments may
    /// share a chunk); else the host could remap signed pages from elsewhere and let the VM
    /// run the block's other contents (deviation `image_blocks_unbound`).
    fn image_bound(&self, vm: &VmInfo) -> bool {
        let n = (vm.next_load_info as usize).min(vm.load_addr.len());
        let seg = |i: usize| (vm.load_addr[i], vm.remap_addr[i], vm.mapped_pages[i]);
        let chunk_block = |chunk: u64| {
            (0..n).find_map(|i| {
                let (la, ra, mp) = seg(i);
                let lo = la.max(chunk * PMD_SIZE);
                let hi = (la + mp * PAGE_SIZE).min((chunk + 1) * PMD_SIZE);
                let first = ra + (lo - la) / PAGE_SIZE * PAGE_SIZE;
                (lo < hi).then(|| phys_page(self.remapped(first)) / PMD_SIZE)
            })
        };
        let offset = |a: u64| (a / PAGE_SIZE) % 512;
        for i in 0..n {
            let (la, ra, mp) = seg(i);
            let mut block = None;
            for k in 0..mp {
                let gpa = la + k * PAGE_SIZE;
                let pte = self.remapped(ra + k * PAGE_SIZE);
                let pa = phys_page(pte);
                if pte == 0 || offset(pa) != offset(gpa) {
                    return false;
                }
                if k == 0 || gpa % PMD_SIZE < PAGE_SIZE {
                    block = chunk_block(gpa / PMD_SIZE);
                }
                if block != Some(pa / PMD_SIZE) {
                    return false;
                }
            }
        }
        true
    }

    /// KCore's remap-window entry for `va` (0: none). Read without KCore's NPT lock: the
    /// caller holds the VM's INFO lock, under which alone its window's entries are written
    /// (REMAP_VM_IMAGE), and an entry once present stays (the seed's walk here takes none).
    fn remapped(&self, va: u64) -> u64 {
        pt::lookup(&self.hw, &self.layout.pt, COREVISOR, va).map_or(0, |(d, _)| d)
    }
}
