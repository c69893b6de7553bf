//! The abstraction function: KCore's real structures → the model's view
//! (ARCHITECTURE.md, "Abstraction function and refinement").
//!
//! Today it covers the memory machinery: every principal's stage-2 table (walked from its
//! root: leaves, table-allocated flags, cursors; a 2 MiB block expands to its 512 gfns), the
//! page metadata, page contents (`flatmem[pfn]` = the first 64-bit word), the lock flags a
//! halt poisoned, the SMMU tables and bank owners, the VM records and allocators.

use corevisor_kcore::consts::{self as kconsts, COREVISOR};
use corevisor_kcore::ctxt as kc;
use corevisor_kcore::hw::Hw;
use corevisor_kcore::pt::{is_table, is_valid};
use corevisor_kcore::smmu::{smmu_ttbr, BANKS, SMMU_NUM};
use corevisor_kcore::state::Core;
use corevisor_kcore::vm_info::VmInfo;
use corevisor_spec::consts as sc;
use corevisor_spec::state::{
    mkS2Page, CoreData, Ctxt, CtxtRegs, CtxtStates, S2Page, Shared, TrapRegs, VMInfo, NPT, SPT,
};
use corevisor_spec::zmap::ZMap;
use corevisor_spec::Z;

fn z(v: u64) -> Z {
    Z::from(v)
}

/// Memory read a frame at a time: a table walk costs one lookup per table, not per entry.
pub trait FrameRead: Hw {
    /// The 512 words of frame `pfn` (what `read64` gives at each).
    fn frame(&self, pfn: u64) -> [u64; 512];
}

impl FrameRead for corevisor_sim::mem::SimMemory {
    fn frame(&self, pfn: u64) -> [u64; 512] {
        self.page_words(pfn)
    }
}

/// The `n` words at `base`, `base + 8`, ... (as `read64` reads them); every frame read is
/// added to `frames`.
fn table<H: FrameRead>(hw: &H, base: u64, n: u64, frames: &mut Vec<u64>) -> Vec<u64> {
    let mut out = Vec::with_capacity(n as usize);
    let mut cur: Option<(u64, [u64; 512])> = None;
    for i in 0..n {
        let pa = base + i * 8;
        let f = pa >> 12;
        let words = match &cur {
            Some((g, w)) if *g == f => w,
            _ => {
                frames.push(f);
                &cur.insert((f, hw.frame(f))).1
            }
        };
        out.push(words[((pa >> 3) & 511) as usize]);
    }
    out
}

/// The model's `NPT` of principal `v`, read from the real table.
pub fn abs_npt<H: FrameRead>(core: &Core<H>, v: u32) -> NPT {
    abs_npt_reading(core, v, &mut Vec::new())
}

/// [`abs_npt`], also naming every frame the walk read: the result depends on nothing else
/// (and the pool cursors), so it cannot change while none of them is written.
pub fn abs_npt_reading<H: FrameRead>(core: &Core<H>, v: u32, frames: &mut Vec<u64>) -> NPT {
    let hw = &core.hw;
    let pool = core.npt[v as usize].read();
    let mut npt = NPT {
        pt_pgd_next: z(pool.pgd_next),
        pt_pud_next: z(pool.pud_next),
        pt_pmd_next: z(pool.pmd_next),
        ..NPT::default()
    };
    let root = core.layout.pt.root(v);
    for (g, d0) in (0..512u64).zip(table(hw, root, 512, frames)) {
        if !is_table(d0) {
            continue;
        }
        npt.pgd_t.set_mut(z(g), true);
        let l1 = d0 & 0xFFFF_FFFF_F000;
        for (u, d1) in (0..512u64).zip(table(hw, l1, 512, frames)) {
            if !is_table(d1) {
                continue;
            }
            npt.pud_t = npt.pud_t.update(z(g), |t| t.set(z(u), true));
            let l2 = d1 & 0xFFFF_FFFF_F000;
            for (m, d2) in (0..512u64).zip(table(hw, l2, 512, frames)) {
                let base_gfn = (g << 27) | (u << 18) | (m << 9);
                if is_table(d2) {
                    npt.pmd_t = npt
                        .pmd_t
                        .update(z(g), |t| t.update(z(u), |t| t.set(z(m), true)));
                    let l3 = d2 & 0xFFFF_FFFF_F000;
                    for (p, d3) in (0..512u64).zip(table(hw, l3, 512, frames)) {
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
pub fn abs_shared<H: FrameRead>(core: &Core<H>, rest: &Shared) -> Shared {
    let mut out = abs_shared_but_pages(core, rest);
    let l = core.layout;
    let mut s2page = ZMap::init(mkS2Page(sc::INVALID, sc::INVALID, sc::INVALID64));
    let mut flatmem = ZMap::init(0);
    for pfn in l.ram_base / 4096..l.ram_end / 4096 {
        let p = core.page(pfn);
        s2page.set_mut(
            z(pfn),
            mkS2Page(Z::from(p.owner), Z::from(p.count), z(p.gfn)),
        );
        // KCore's own pages hold its metadata and tables: the model's memory of them is
        // constant (no principal ever writes there), so they are not read back.
        let w = if p.owner == COREVISOR {
            0
        } else {
            core.hw.read64(pfn * 4096)
        };
        if w != 0 {
            flatmem.set_mut(z(pfn), z(w));
        }
    }
    out.s2page = s2page;
    out.flatmem = flatmem;
    out
}

/// [`abs_shared`] but for `s2page` and `flatmem`, which are `rest`'s (a whole-machine
/// comparison checks the metadata with [`s2page_differs`], and memory word by word).
pub fn abs_shared_but_pages<H: FrameRead>(core: &Core<H>, rest: &Shared) -> Shared {
    let mut out = rest.clone();
    for v in 0..=COREVISOR {
        out.npts.set_mut(Z::from(v), abs_npt(core, v));
    }
    let mut hlock = ZMap::init(true);
    for id in 0..64 {
        if core.poisoned() & (1 << id) != 0 {
            hlock.set_mut(id, false);
        }
    }
    out.hlock = hlock;
    out.spts = abs_spt(core);
    let mut smmu_vmid = ZMap::init(sc::INVALID);
    for (id, &v) in core.smmu.read().iter().enumerate() {
        smmu_vmid.set_mut(id as Z, Z::from(v));
    }
    out.smmu_vmid = smmu_vmid;
    let mut vminfos = ZMap::init(VMInfo::default());
    for v in 0..=COREVISOR {
        vminfos.set_mut(Z::from(v), abs_vminfo(&core.vms[v as usize].read()));
    }
    out.vminfos = vminfos;
    out.core_data = CoreData {
        next_vmid: Z::from(core.core_data.read().next_vmid),
        next_remap_ptr: z(core.core_data.read().next_remap_ptr),
    };
    out
}

/// The first page whose metadata `abs` reads differently from `model` (`abs_shared`'s
/// `s2page == model`, without building the map): `(pfn, core's, model's)`.
pub fn s2page_differs<H: Hw>(core: &Core<H>, model: &ZMap<S2Page>) -> Option<(Z, S2Page, S2Page)> {
    let outside = mkS2Page(sc::INVALID, sc::INVALID, sc::INVALID64);
    let dflt = model.default_value();
    if *dflt != outside {
        return Some((-1, outside, *dflt));
    }
    let l = core.layout;
    let (lo, hi) = (z(l.ram_base / 4096), z(l.ram_end / 4096));
    // Outside RAM `abs` has no entries.
    if let Some((k, v)) = model
        .range(Z::MIN, lo)
        .chain(model.range(hi, Z::MAX))
        .next()
    {
        return Some((k, outside, *v));
    }
    let mut explicit = model.range(lo, hi).peekable();
    for pfn in lo..hi {
        let want = match explicit.peek() {
            Some(&(k, v)) if k == pfn => {
                explicit.next();
                v
            }
            _ => dflt,
        };
        let p = core.page(pfn as u64);
        let have = mkS2Page(Z::from(p.owner), Z::from(p.count), z(p.gfn));
        if have != *want {
            return Some((pfn, have, *want));
        }
    }
    None
}

/// The model's `S2Page` of frame `pfn` (the boot default outside RAM).
pub fn abs_s2page<H: Hw>(core: &Core<H>, pfn: u64) -> S2Page {
    let l = core.layout;
    if !(l.ram_base / 4096..l.ram_end / 4096).contains(&pfn) {
        return mkS2Page(sc::INVALID, sc::INVALID, sc::INVALID64);
    }
    let p = core.page(pfn);
    mkS2Page(Z::from(p.owner), Z::from(p.count), z(p.gfn))
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
pub fn abs_spt<H: FrameRead>(core: &Core<H>) -> SPT {
    abs_spt_reading(core, &mut Vec::new())
}

/// [`abs_spt`], also naming every frame the walk read (as [`abs_npt_reading`]).
pub fn abs_spt_reading<H: FrameRead>(core: &Core<H>, frames: &mut Vec<u64>) -> SPT {
    let pool = core.spt.read();
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
            for (p, d1) in (0..1024u64).zip(table(hw, root, 1024, frames)) {
                if !is_table(d1) {
                    continue;
                }
                spt.spt_pgd_t = spt.spt_pgd_t.update(ttbr, |t| t.set(z(p), true));
                let l2 = d1 & 0xFFFF_FFFF_F000;
                for (m, d2) in (0..512u64).zip(table(hw, l2, 512, frames)) {
                    if !is_table(d2) {
                        continue;
                    }
                    spt.spt_pmd_t = spt
                        .spt_pmd_t
                        .update(ttbr, |t| t.update(z(p), |t| t.set(z(m), true)));
                    let l3 = d2 & 0xFFFF_FFFF_F000;
                    for (q, d3) in (0..512u64).zip(table(hw, l3, 512, frames)) {
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

/// The KCore context whose abstraction is the model's `m` (VTTBR_EL2 left in the model's
/// terms): how check-trace lays the model's register file beside the words the EL2 trace
/// gives. Every field is a 64-bit register (a Q register 128 bits) in both.
pub fn conc_ctxt(m: &Ctxt) -> kc::Ctxt {
    let f = fields(m);
    let mut c = kc::Ctxt::default();
    for (k, &(i, high)) in word_map().iter().enumerate() {
        let v = f[i];
        c.set_word(k, if high { (v >> 64) as u64 } else { v as u64 });
    }
    c
}

/// For each word of a KCore context: which of [`fields`] abstracts it, and whether it is a
/// Q register's high half. Found once, by abstracting a context with only that word set.
fn word_map() -> &'static [(usize, bool)] {
    static MAP: std::sync::OnceLock<Vec<(usize, bool)>> = std::sync::OnceLock::new();
    MAP.get_or_init(|| {
        (0..corevisor_kcore::ctxt_words::CTXT_WORDS)
            .map(|k| {
                let mut probe = kc::Ctxt::default();
                probe.set_word(k, 1);
                let f = fields(&abs_ctxt_as(&probe, None));
                f.iter()
                    .enumerate()
                    .find_map(|(i, &v)| match v {
                        1 => Some((i, false)),
                        v if v == 1 << 64 => Some((i, true)),
                        _ => None,
                    })
                    .unwrap_or_else(|| panic!("word {k} has no field in the model's context"))
            })
            .collect()
    })
}

/// Every integer of a model context, in a fixed order (Q registers whole).
fn fields(a: &Ctxt) -> Vec<Z> {
    let r = &a.ctxt_regs;
    let mut v: Vec<Z> = r.x.to_vec();
    v.extend(r.fp_q.iter().copied());
    v.extend([
        r.fp_fpsr,
        r.fp_fpcr,
        r.csselr_el1,
        r.sctlr_el1,
        r.cpacr_el1,
        r.ttbr0_el1,
        r.ttbr1_el1,
        r.tcr_el1,
        r.afsr0_el1,
        r.afsr1_el1,
        r.far_el1,
        r.mair_el1,
        r.vbar_el1,
        r.contextidr_el1,
        r.amair_el1,
        r.cntkctl_el1,
        r.par_el1,
        r.tpidr_el1,
        r.spsr_el1,
        r.mdscr_el1,
        r.sp_el0,
        r.tpidr_el0,
        r.tpidrro_el0,
        r.spsr_el2,
        r.vmpidr_el2,
        r.mpidr_el1,
        r.actlr_el1,
        r.sp_el1,
        r.elr_el1,
        r.elr_el2,
        r.vttbr_el2,
        r.hcr_el2,
        r.tpidr_el2,
        r.esr_el2,
        r.ec,
        r.far_el2,
        r.hpfar_el2,
    ]);
    let t = &a.trap_regs;
    v.extend([
        t.pmuselr_el0,
        t.pmuserenr_el0,
        t.mdcr_el2,
        t.cptr_el2,
        t.cnthctl_el2,
    ]);
    let s = &a.ctxt_states;
    v.extend([s.pc, s.pstate, s.dirty, s.flags, s.esr_el1, s.spsr_0]);
    v
}

/// The model's `Ctxt` of a KCore register context. VTTBR_EL2 holds a table's physical root;
/// the model names tables by their pool cursor (`pt_vttbr`), so a root maps back to that.
pub fn abs_ctxt<H: Hw>(c: &kc::Ctxt, core: &Core<H>) -> Ctxt {
    let r = &c.regs;
    let vttbr = core
        .vttbr_principal(r.vttbr_el2)
        .map_or(z(r.vttbr_el2), |v| z(kconsts::pt_vttbr(v)));
    abs_ctxt_as(c, Some(vttbr))
}

/// [`abs_ctxt`] of a context whose VTTBR_EL2 is already in the model's terms (`None`: the
/// EL2 trace gives it so), or with `vttbr` in its place.
pub fn abs_ctxt_as(c: &kc::Ctxt, vttbr: Option<Z>) -> Ctxt {
    let r = &c.regs;
    let vttbr = vttbr.unwrap_or(z(r.vttbr_el2));
    Ctxt {
        ctxt_regs: CtxtRegs {
            x: r.x.map(z),
            // The model's integers are i128: a Q register with bit 127 set reads negative.
            fp_q: r.fp_q.map(|q| q as Z),
            fp_fpsr: z(r.fp_fpsr),
            fp_fpcr: z(r.fp_fpcr),
            csselr_el1: z(r.csselr_el1),
            sctlr_el1: z(r.sctlr_el1),
            cpacr_el1: z(r.cpacr_el1),
            ttbr0_el1: z(r.ttbr0_el1),
            ttbr1_el1: z(r.ttbr1_el1),
            tcr_el1: z(r.tcr_el1),
            afsr0_el1: z(r.afsr0_el1),
            afsr1_el1: z(r.afsr1_el1),
            far_el1: z(r.far_el1),
            mair_el1: z(r.mair_el1),
            vbar_el1: z(r.vbar_el1),
            contextidr_el1: z(r.contextidr_el1),
            amair_el1: z(r.amair_el1),
            cntkctl_el1: z(r.cntkctl_el1),
            par_el1: z(r.par_el1),
            tpidr_el1: z(r.tpidr_el1),
            spsr_el1: z(r.spsr_el1),
            mdscr_el1: z(r.mdscr_el1),
            sp_el0: z(r.sp_el0),
            tpidr_el0: z(r.tpidr_el0),
            tpidrro_el0: z(r.tpidrro_el0),
            spsr_el2: z(r.spsr_el2),
            vmpidr_el2: z(r.vmpidr_el2),
            mpidr_el1: z(r.mpidr_el1),
            actlr_el1: z(r.actlr_el1),
            sp_el1: z(r.sp_el1),
            elr_el1: z(r.elr_el1),
            elr_el2: z(r.elr_el2),
            vttbr_el2: vttbr,
            hcr_el2: z(r.hcr_el2),
            tpidr_el2: z(r.tpidr_el2),
            esr_el2: z(r.esr_el2),
            ec: z(r.ec),
            far_el2: z(r.far_el2),
            hpfar_el2: z(r.hpfar_el2),
        },
        trap_regs: TrapRegs {
            pmuselr_el0: z(c.traps.pmuselr_el0),
            pmuserenr_el0: z(c.traps.pmuserenr_el0),
            mdcr_el2: z(c.traps.mdcr_el2),
            cptr_el2: z(c.traps.cptr_el2),
            cnthctl_el2: z(c.traps.cnthctl_el2),
        },
        ctxt_states: CtxtStates {
            pc: z(c.states.pc),
            pstate: z(c.states.pstate),
            dirty: z(c.states.dirty),
            flags: z(c.states.flags),
            esr_el1: z(c.states.esr_el1),
            spsr_0: z(c.states.spsr_0),
        },
    }
}

#[cfg(test)]
mod conc_tests {
    use super::*;

    /// `conc_ctxt` undoes `abs_ctxt_as` word for word (a Q register with bit 127 set too).
    #[test]
    fn conc_undoes_abs_on_every_word() {
        let mut c = kc::Ctxt::default();
        for k in 0..corevisor_kcore::ctxt_words::CTXT_WORDS {
            c.set_word(k, 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(k as u64 + 1));
        }
        assert_eq!(conc_ctxt(&abs_ctxt_as(&c, None)), c);
    }
}
