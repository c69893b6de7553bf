//! The abstraction function: KCore's real structures → the model's view
//! (ARCHITECTURE.md, "Abstraction function and refinement").
//!
//! Today it covers the memory machinery: every principal's stage-2 table (walked from its
//! root: leaves, table-allocated flags, cursors; a 2 MiB block expands to its 512 gfns), the
//! page metadata, page contents (`flatmem[pfn]` = the first 64-bit word), the lock flags a
//! halt poisoned, the SMMU tables and bank owners, the VM records and allocators.

use corevisor_kcore::consts::COREVISOR;
use corevisor_kcore::hw::Hw;
use corevisor_kcore::mem_ops::Core;
use corevisor_kcore::pt::{is_table, is_valid};
use corevisor_kcore::smmu::{smmu_ttbr, BANKS, SMMU_NUM};
use corevisor_kcore::vm_info::VmInfo;
use corevisor_spec::consts as sc;
use corevisor_spec::state::{mkS2Page, CoreData, Shared, VMInfo, NPT, SPT};
use corevisor_spec::zmap::ZMap;
use corevisor_spec::Z;

fn z(v: u64) -> Z {
    Z::from(v)
}

/// The model's `NPT` of principal `v`, read from the real table.
pub fn abs_npt<H: Hw>(core: &Core<H>, v: u32) -> NPT {
    let hw = &core.hw;
    let pool = core.pools[v as usize];
    let mut npt = NPT {
        pt_pgd_next: z(pool.pgd_next),
        pt_pud_next: z(pool.pud_next),
        pt_pmd_next: z(pool.pmd_next),
        ..NPT::default()
    };
    let root = core.layout.pt.root(v);
    for g in 0..512u64 {
        let d0 = hw.read64(root + g * 8);
        if !is_table(d0) {
            continue;
        }
        npt.pgd_t.set_mut(z(g), true);
        let l1 = d0 & 0xFFFF_FFFF_F000;
        for u in 0..512u64 {
            let d1 = hw.read64(l1 + u * 8);
            if !is_table(d1) {
                continue;
            }
            npt.pud_t = npt.pud_t.update(z(g), |t| t.set(z(u), true));
            let l2 = d1 & 0xFFFF_FFFF_F000;
            for m in 0..512u64 {
                let d2 = hw.read64(l2 + m * 8);
                let base_gfn = (g << 27) | (u << 18) | (m << 9);
                if is_table(d2) {
                    npt.pmd_t = npt
                        .pmd_t
                        .update(z(g), |t| t.update(z(u), |t| t.set(z(m), true)));
                    let l3 = d2 & 0xFFFF_FFFF_F000;
                    for p in 0..512u64 {
                        let d3 = hw.read64(l3 + p * 8);
                        if d3 != 0 {
                            npt.pt.set_mut(
                                z(base_gfn | p),
                                (z(d3 & 0xFFFF_FFFF_F000) / 4096, 3, z(d3)),
                            );
                        }
                    }
                } else if is_valid(d2) {
                    let pfn0 = z(d2 & 0xFFFF_FFFF_F000) / 4096;
                    for i in 0..512u64 {
                        npt.pt.set_mut(z(base_gfn + i), (pfn0 + z(i), 2, z(d2)));
                    }
                }
            }
        }
    }
    npt
}

/// The memory-machinery part of the model's `Shared`, read from the core; fields the core
/// does not implement yet are taken from `rest`.
pub fn abs_shared<H: Hw>(core: &Core<H>, rest: &Shared) -> Shared {
    let mut out = rest.clone();
    for v in 0..=COREVISOR {
        out.npts.set_mut(Z::from(v), abs_npt(core, v));
    }
    let l = core.layout;
    let mut s2page = ZMap::init(mkS2Page(sc::INVALID, sc::INVALID, sc::INVALID64));
    let mut flatmem = ZMap::init(0);
    for pfn in l.ram_base / 4096..l.ram_end / 4096 {
        let p = core.page(pfn);
        s2page.set_mut(
            z(pfn),
            mkS2Page(Z::from(p.owner), Z::from(p.count), z(p.gfn)),
        );
        let w = core.hw.read64(pfn * 4096);
        if w != 0 {
            flatmem.set_mut(z(pfn), z(w));
        }
    }
    out.s2page = s2page;
    out.flatmem = flatmem;
    let mut hlock = ZMap::init(true);
    for id in 0..64 {
        if core.poisoned & (1 << id) != 0 {
            hlock.set_mut(id, false);
        }
    }
    out.hlock = hlock;
    out.spts = abs_spt(core);
    let mut smmu_vmid = ZMap::init(sc::INVALID);
    for (id, &v) in core.smmu_vmid.iter().enumerate() {
        smmu_vmid.set_mut(id as Z, Z::from(v));
    }
    out.smmu_vmid = smmu_vmid;
    let mut vminfos = ZMap::init(VMInfo::default());
    for v in 0..=COREVISOR {
        vminfos.set_mut(Z::from(v), abs_vminfo(&core.vms[v as usize]));
    }
    out.vminfos = vminfos;
    out.core_data = CoreData {
        next_vmid: Z::from(core.core_data.next_vmid),
        next_remap_ptr: z(core.core_data.next_remap_ptr),
    };
    out
}

/// The model's `VMInfo` of one KCore VM record.
pub fn abs_vminfo(vm: &VmInfo) -> VMInfo {
    let mut out = VMInfo::default();
    out.VS.vm_state = Z::from(vm.state);
    out.VS.vm_kvm = z(vm.kvm);
    for c in 0..vm.vcpu.len() {
        out.VS.vm_vcpu.set_mut(c as Z, z(vm.vcpu[c]));
        out.VS
            .vm_vcpu_state
            .set_mut(c as Z, Z::from(vm.vcpu_state[c]));
    }
    out.VB.vm_next_load_info = Z::from(vm.next_load_info);
    for i in 0..vm.load_addr.len() {
        out.VB.vm_load_addr.set_mut(i as Z, z(vm.load_addr[i]));
        out.VB.vm_load_size.set_mut(i as Z, z(vm.load_size[i]));
        out.VB.vm_remap_addr.set_mut(i as Z, z(vm.remap_addr[i]));
        out.VB
            .vm_mapped_pages
            .set_mut(i as Z, z(vm.mapped_pages[i]));
    }
    out.VB.vm_inc_exe = Z::from(vm.inc_exe);
    out
}

/// The model's `SPT`: every bank's table walked from its root.
pub fn abs_spt<H: Hw>(core: &Core<H>) -> SPT {
    let pool = core.smmu_pool;
    let hw = &core.hw;
    let mut spt = SPT {
        spt_pgd_next: z(pool.pgd_next),
        spt_pmd_next: z(pool.pmd_next),
        ..SPT::default()
    };
    for index in 0..SMMU_NUM {
        for cb in 0..BANKS {
            let ttbr = z(smmu_ttbr(index, cb));
            let root = pool.root(index, cb);
            for p in 0..1024u64 {
                let d1 = hw.read64(root + p * 8);
                if !is_table(d1) {
                    continue;
                }
                spt.spt_pgd_t = spt.spt_pgd_t.update(ttbr, |t| t.set(z(p), true));
                let l2 = d1 & 0xFFFF_FFFF_F000;
                for m in 0..512u64 {
                    let d2 = hw.read64(l2 + m * 8);
                    if !is_table(d2) {
                        continue;
                    }
                    spt.spt_pmd_t = spt
                        .spt_pmd_t
                        .update(ttbr, |t| t.update(z(p), |t| t.set(z(m), true)));
                    let l3 = d2 & 0xFFFF_FFFF_F000;
                    for q in 0..512u64 {
                        let d3 = hw.read64(l3 + q * 8);
                        if d3 != 0 {
                            let gfn = (p << 18) | (m << 9) | q;
                            spt.spt_pt = spt.spt_pt.update(ttbr, |t| {
                                t.set(z(gfn), (z(d3 & 0xFFFF_FFFF_F000) / 4096, z(d3)))
                            });
                        }
                    }
                }
            }
        }
    }
    spt
}
