//! Seed `Section AuxSpec`: vCPU register helpers, the loops built on the `local_*`
//! operations, SMMU register emulation and the VM-exit dispatcher (spec-digest §5.0.4–5).
//!
//! A `Fixpoint` over `nat` runs its iterations in increasing order (the recursion on
//! `n - 1` happens first); each loop below threads exactly the values the recursion threads.

use crate::am::*;
use crate::concurrent::*;
use crate::consts::*;
use crate::cov;
use crate::profile::Profile;
use crate::state::*;
use crate::zmap::ZMap;
use crate::{to_nat, Z};

fn log(adt: &mut RData, e: AtomicEvent) {
    let cpu = adt.curid;
    adt.slog.push_front(SEVENT(cpu, e));
}

fn lock_ok(adt: &RData, id: Z) -> bool {
    *adt.shared.hlock.get(id)
}

pub fn reset_sys_regs_loopx(
    p: &Profile,
    n: Z,
    i: Z,
    vcpuid: Z,
    cregs: &CtxtRegs,
    cstates: &CtxtStates,
    dorc: Dorc,
    logn: Z,
) -> (CtxtRegs, CtxtStates, Z, Z) {
    let (mut cr, mut cs, mut l, mut i) = (cregs.clone(), cstates.clone(), logn, i);
    for _ in 0..n.max(0) {
        if i == MPIDR_EL1 {
            cov!("reset_sys_regs_loopx.mpidr");
            let mpidr =
                (vcpuid & 15) + (zdiv(vcpuid, 16) & 255) * 256 + (zdiv(vcpuid, 4096) & 255) * 65536;
            (cr, cs) = set_shadow_ctxt_specx(i, mpidr + 2147483648, &cr, &cs);
        } else if i == ACTLR_EL1 {
            cov!("reset_sys_regs_loopx.actlr");
            (cr, cs) = set_shadow_ctxt_specx(i, dorc(l), &cr, &cs);
            l += 1;
        } else if i == ELR_EL2 && !p.q.reset_covers_elr_el2 {
            // §7.2.18: the intent resets EL1 state only; ELR_EL2 is the return address.
            cov!("reset_sys_regs_loopx.skip_elr_el2");
        } else {
            cov!("reset_sys_regs_loopx.reg_desc");
            (cr, cs) = set_shadow_ctxt_specx(i, reg_desc(i), &cr, &cs);
        }
        i += 1;
    }
    (cr, cs, l, i)
}

pub fn reset_sys_regs_specx(
    p: &Profile,
    vcpuid: Z,
    cregs: &CtxtRegs,
    cstates: &CtxtStates,
    dorc: Dorc,
    logn: Z,
) -> (CtxtRegs, CtxtStates, Z) {
    let (cr, cs, l, _) = reset_sys_regs_loopx(
        p,
        SHADOW_SYS_REGS_SIZE,
        SYSREGS_START,
        vcpuid,
        cregs,
        cstates,
        dorc,
        logn,
    );
    (cr, cs, l)
}

pub fn sync_dirty_to_shadow_loopx(
    p: &Profile,
    n: Z,
    i: Z,
    dirty: Z,
    cregs: &CtxtRegs,
    cstates: &CtxtStates,
    dorc: Dorc,
    logn: Z,
) -> (Z, CtxtRegs, CtxtStates, Z) {
    let (mut i, mut cr, mut cs, mut l) = (i, cregs.clone(), cstates.clone(), logn);
    for _ in 0..n.max(0) {
        if dirty & shl(1, i) == 0 {
            cov!("sync_dirty_to_shadow_loopx.clean");
        } else {
            // §7.2.8: the seed reads `dorc logn` (the loop's initial counter) every time.
            let v = if p.q.sync_dirty_same_value {
                cov!("sync_dirty_to_shadow_loopx.dirty_literal");
                dorc(logn)
            } else {
                cov!("sync_dirty_to_shadow_loopx.dirty");
                dorc(l)
            };
            (cr, cs) = set_shadow_ctxt_specx(i, v, &cr, &cs);
            l += 1;
        }
        i += 1;
    }
    (i, cr, cs, l)
}

pub fn sync_dirty_to_shadow_specx(
    p: &Profile,
    _vmid: Z,
    dirty: Z,
    cregs: &CtxtRegs,
    cstates: &CtxtStates,
    logn: Z,
    dorc: Dorc,
) -> (CtxtRegs, CtxtStates, Z) {
    let (_, cr, cs, l) = sync_dirty_to_shadow_loopx(p, 31, 0, dirty, cregs, cstates, dorc, logn);
    (cr, cs, l)
}

pub fn update_exception_gp_regs_specx(
    p: &Profile,
    cregs: &CtxtRegs,
    cstates: &CtxtStates,
) -> (CtxtRegs, CtxtStates) {
    let pstate0 = cstates.pstate;
    let pc0 = cstates.pc;
    let new_pc = cregs.vbar_el1 + exception_vector(pstate0);
    let cr = CtxtRegs {
        elr_el1: pc0,
        ..cregs.clone()
    };
    let mut cs = CtxtStates {
        spsr_0: pstate0,
        esr_el1: ESR_ELx_EC_UNKNOWN,
        pstate: PSTATE_FAULT_BITS_64,
        ..cstates.clone()
    };
    // §7.2.2: the seed computes the vector and drops it.
    if p.q.inject_keeps_pc {
        cov!("update_exception_gp_regs_specx.keep_pc");
    } else {
        cov!("update_exception_gp_regs_specx.to_vector");
        cs.pc = new_pc;
    }
    (cr, cs)
}

pub fn prot_and_map_vm_loop_h(
    p: &Profile,
    n: Z,
    vmid: Z,
    gfn: Z,
    pfn: Z,
    adt: &RData,
) -> Option<(Z, Z, RData)> {
    let n = to_nat(n)?;
    let (mut g, mut f, mut cur) = (gfn, pfn, adt.clone());
    for _ in 0..n {
        if cur.halt {
            cov!("prot_and_map_vm_loop_h.halted");
        } else {
            cov!("prot_and_map_vm_loop_h.assign");
            let mut adt0 = query_oracle(p, &cur);
            let logn = *adt0.data_log.get(vmid);
            // §7.2.16: the seed logs the loop's base gfn/pfn in every iteration.
            let (eg, ef) = if p.q.literal_event_payloads {
                (gfn, pfn)
            } else {
                (g, f)
            };
            if !(lock_ok(&adt0, S2PAGE_ID) && lock_ok(&adt0, NPT_ID)) {
                return None;
            }
            let (sdt, halt, logn2) = local_assign_pfn_to_vm(
                p,
                vmid,
                g,
                f,
                &|k| adt0.doracle.call(vmid, k),
                logn,
                &adt0.shared,
            );
            log(&mut adt0, AtomicEvent::OASSIGN_VM(vmid, eg, ef, vmid, logn));
            adt0.shared = sdt;
            adt0.halt = halt;
            // The seed writes `(data_log adt) # vmid == logn'` with `adt` the loop's argument.
            adt0.data_log = adt.data_log.set(vmid, logn2);
            cur = adt0;
        }
        g += 1;
        f += 1;
    }
    Some((g, f, cur))
}

pub fn prot_and_map_vm_s2pt_spec_h(
    p: &Profile,
    vmid: Z,
    addr: Z,
    pte: Z,
    level: Z,
    adt: &RData,
) -> Option<RData> {
    if adt.halt {
        cov!("prot_and_map_vm_s2pt_spec_h.halted");
        return Some(adt.clone());
    }
    let pfn = zdiv(phys_page(pte), PAGE_SIZE);
    let gfn = zdiv(addr, PAGE_SIZE);
    if level == 2 {
        if pfn % PTRS_PER_PMD != 0 && !p.q.unaligned_block_mapped {
            // The block's output address would silently drop the pfn's low bits.
            cov!("prot_and_map_vm_s2pt_spec_h.unaligned_block_refused");
            return Some(RData {
                halt: true,
                ..adt.clone()
            });
        }
        let gfn2 = zdiv(gfn, PTRS_PER_PMD) * PTRS_PER_PMD;
        let (_, _, adt1) = prot_and_map_vm_loop_h(p, PMD_PAGE_NUM, vmid, gfn2, pfn, adt)?;
        if adt1.halt {
            cov!("prot_and_map_vm_s2pt_spec_h.block_assign_halted");
            return Some(adt1);
        }
        cov!("prot_and_map_vm_s2pt_spec_h.block");
        let mut adt0 = query_oracle(p, &adt1);
        if !lock_ok(&adt0, NPT_ID + vmid) {
            return None;
        }
        let (sdt, halt) = local_map_pfn_vm(p, vmid, addr, pte, 2, &adt0.shared);
        log(&mut adt0, AtomicEvent::OMAP_VM(vmid, addr, pte, 2));
        adt0.halt = halt;
        adt0.shared = sdt;
        Some(adt0)
    } else {
        let mut adt0 = query_oracle(p, adt);
        let logn = *adt0.data_log.get(vmid);
        if !(lock_ok(&adt0, S2PAGE_ID) && lock_ok(&adt0, NPT_ID)) {
            return None;
        }
        let (sdt, halt, logn2) = local_assign_pfn_to_vm(
            p,
            vmid,
            gfn,
            pfn,
            &|k| adt0.doracle.call(vmid, k),
            logn,
            &adt0.shared,
        );
        log(
            &mut adt0,
            AtomicEvent::OASSIGN_VM(vmid, gfn, pfn, vmid, logn),
        );
        adt0.shared = sdt;
        adt0.halt = halt;
        adt0.data_log = adt.data_log.set(vmid, logn2);
        // §7.2.12: the seed maps even after a failed assign, and the map's halt flag wins.
        if halt && !p.q.map_after_failed_assign {
            cov!("prot_and_map_vm_s2pt_spec_h.page_assign_halted");
            return Some(adt0);
        }
        cov!("prot_and_map_vm_s2pt_spec_h.page");
        let mut adt1 = query_oracle(p, &adt0);
        if !lock_ok(&adt1, NPT_ID + vmid) {
            return None;
        }
        let (sdt, halt) = local_map_pfn_vm(p, vmid, addr, pte, 3, &adt1.shared);
        log(&mut adt1, AtomicEvent::OMAP_VM(vmid, addr, pte, 3));
        adt1.halt = halt;
        adt1.shared = sdt;
        Some(adt1)
    }
}

pub fn clear_vm_loop_h(p: &Profile, n: Z, pfn: Z, vmid: Z, adt: &RData) -> Option<(Z, RData)> {
    let n = to_nat(n)?;
    let (mut f, mut cur) = (pfn, adt.clone());
    for _ in 0..n {
        if cur.halt {
            cov!("clear_vm_loop_h.halted");
        } else {
            cov!("clear_vm_loop_h.clear");
            let mut adt1 = query_oracle(p, &cur);
            if !(lock_ok(&adt1, S2PAGE_ID) && lock_ok(&adt1, NPT_ID)) {
                return None;
            }
            let (sdt, halt) = local_clear_vm_page(p, vmid, f, &adt1.shared);
            log(&mut adt1, AtomicEvent::OCLEAR_VM(vmid, f));
            adt1.shared = sdt;
            adt1.halt = halt;
            cur = adt1;
        }
        f += 1;
    }
    Some((f, cur))
}

pub fn unmap_and_load_loop_h(
    p: &Profile,
    n: Z,
    vmid: Z,
    start: Z,
    target: Z,
    remap: Z,
    adt: &RData,
) -> Option<(Z, Z, Z, RData)> {
    let n = to_nat(n)?;
    let (mut s, mut t, mut r, mut cur) = (start, target, remap, adt.clone());
    for _ in 0..n {
        let next = (s + PMD_SIZE, s + PMD_SIZE, r + (s + PMD_SIZE - t));
        if cur.halt {
            cov!("unmap_and_load_loop_h.halted");
        } else {
            let mut adt0 = query_oracle(p, &cur);
            if !lock_ok(&adt0, NPT_ID + COREVISOR) {
                return None;
            }
            log(&mut adt0, AtomicEvent::OPT_GET(COREVISOR));
            let (_, _, pte) = *adt0.shared.npts.get(COREVISOR).pt.get(zdiv(r, PAGE_SIZE));
            let pfn = zdiv(phys_page(pte), PMD_SIZE) * PTRS_PER_PMD;
            let gfn = zdiv(s, PAGE_SIZE);
            if pte == 0 {
                cov!("unmap_and_load_loop_h.not_remapped");
                adt0.halt = true;
                cur = adt0;
            } else {
                cov!("unmap_and_load_loop_h.load_block");
                cur = prot_and_map_vm_s2pt_spec_h(
                    p,
                    vmid,
                    gfn * PAGE_SIZE,
                    pfn * PAGE_SIZE,
                    2,
                    &adt0,
                )?;
            }
        }
        (s, t, r) = next;
    }
    Some((s, t, r, cur))
}

/// Deviation `image_blocks_unbound`: the VM receives, for each 2 MiB chunk of its image,
/// the physical block holding a remapped page of that chunk; the signature covers the
/// remapped pages. They are the same pages only if every remapped page, of every segment,
/// is the page at its guest address of one block per chunk: the block of the chunk's first
/// remapped page in segment order (two segments may share a chunk).
pub fn image_bound(adt: &RData, vb: &BootInfo) -> bool {
    let window = &adt.shared.npts.get(COREVISOR).pt;
    let segs: Vec<(Z, Z, Z)> = (0..vb.vm_next_load_info.clamp(0, MAX_LOAD_INFO_NUM))
        .map(|i| {
            (
                *vb.vm_load_addr.get(i),
                *vb.vm_remap_addr.get(i),
                *vb.vm_mapped_pages.get(i),
            )
        })
        .collect();
    let remapped = |va: Z| window.get(zdiv(va, PAGE_SIZE)).2;
    // The block of the first remapped page (segment order) that falls in `chunk`.
    let chunk_block = |chunk: Z| {
        segs.iter().find_map(|&(la, ra, mp)| {
            let lo = la.max(chunk * PMD_SIZE);
            let hi = (la + mp * PAGE_SIZE).min((chunk + 1) * PMD_SIZE);
            let first = ra + zdiv(lo - la, PAGE_SIZE) * PAGE_SIZE;
            (lo < hi).then(|| zdiv(phys_page(remapped(first)), PMD_SIZE))
        })
    };
    for &(la, ra, mp) in &segs {
        let mut block = None;
        for k in 0..mp.max(0) {
            let gpa = la + k * PAGE_SIZE;
            let pte = remapped(ra + k * PAGE_SIZE);
            let pa = phys_page(pte);
            let offset = |a: Z| zdiv(a, PAGE_SIZE) % PTRS_PER_PMD;
            if pte == 0 || offset(pa) != offset(gpa) {
                return false;
            }
            if k == 0 || gpa % PMD_SIZE < PAGE_SIZE {
                block = chunk_block(zdiv(gpa, PMD_SIZE));
            }
            if block != Some(zdiv(pa, PMD_SIZE)) {
                return false;
            }
        }
    }
    true
}

pub fn verify_and_load_loop_h(
    p: &Profile,
    n: Z,
    vmid: Z,
    load_idx: Z,
    adt: &RData,
) -> Option<(Z, RData)> {
    let n = to_nat(n)?;
    let (mut idx, mut cur) = (load_idx, adt.clone());
    for _ in 0..n {
        let info = cur.shared.vminfos.get(vmid).clone();
        let load_addr = *info.VB.vm_load_addr.get(idx);
        let remap_addr = *info.VB.vm_remap_addr.get(idx);
        let mapped = *info.VB.vm_mapped_pages.get(idx);
        let start = zdiv(load_addr, PMD_SIZE) * PMD_SIZE;
        let end = load_addr + mapped * PAGE_SIZE;
        let num = zdiv(end - start + 2097151, PMD_SIZE);
        let (_, _, _, next) =
            unmap_and_load_loop_h(p, num, vmid, start, load_addr, remap_addr, &cur)?;
        cur = next;
        // §7.2.3: the seed returns `load_idx + 1` (its argument), not `idx' + 1`.
        idx = if p.q.verify_loop_index {
            cov!("verify_and_load_loop_h.index_literal");
            load_idx + 1
        } else {
            cov!("verify_and_load_loop_h.index_next");
            idx + 1
        };
    }
    Some((idx, cur))
}

pub fn kvm_phys_addr_ioremap_loop_h(
    p: &Profile,
    n: Z,
    vmid: Z,
    gpa: Z,
    pa: Z,
    adt: &RData,
) -> Option<(Z, Z, RData)> {
    let n = to_nat(n)?;
    let (mut g, mut a, mut cur) = (gpa, pa, adt.clone());
    for _ in 0..n {
        if cur.halt {
            cov!("kvm_phys_addr_ioremap_loop_h.halted");
        } else {
            cov!("kvm_phys_addr_ioremap_loop_h.map");
            let mut adt1 = query_oracle(p, &cur);
            if !(lock_ok(&adt1, INFO_ID + vmid)
                && lock_ok(&adt1, S2PAGE_ID)
                && lock_ok(&adt1, NPT_ID + vmid))
            {
                return None;
            }
            let mmio = &adt1.smmu_conf.mmio;
            let windows = smmu_windows(&adt1.smmu_conf);
            let (sdt, halt) = local_map_io_declared(p, mmio, &windows, vmid, g, a, &adt1.shared);
            log(&mut adt1, AtomicEvent::OMAP_IO(vmid, g, a));
            adt1.shared = sdt;
            adt1.halt = halt;
            cur = adt1;
        }
        g += PAGE_SIZE;
        a += PAGE_SIZE;
    }
    Some((g, a, cur))
}

/// The SMMUs' register windows, `(base, size)` (deviation `ioremap_smmu_window`).
pub fn smmu_windows(conf: &SMMUConf) -> Vec<(Z, Z)> {
    (0..conf.smmu_num.max(0))
        .map(|i| (*conf.smmu_phys_base.get(i), *conf.smmu_size.get(i)))
        .collect()
}

/// Pages of every device range the platform declares (deviation `share_loop_unbounded`).
pub fn declared_pages(conf: &SMMUConf) -> Z {
    conf.mmio
        .iter()
        .map(|&(_, s)| zdiv(s + 4095, PAGE_SIZE))
        .sum()
}

/// Which SMMU register window holds `addr` (last match wins; `res` when none).
pub fn is_smmu_range_loop_h(n: Z, addr: Z, i: Z, res: Z, conf: &SMMUConf) -> (Z, Z) {
    let (mut i, mut res) = (i, res);
    for _ in 0..n.max(0) {
        let base = *conf.smmu_phys_base.get(i);
        if base <= addr && addr < base + *conf.smmu_size.get(i) {
            cov!("is_smmu_range_loop_h.hit");
            res = i;
        } else {
            cov!("is_smmu_range_loop_h.miss");
        }
        i += 1;
    }
    (i, res)
}

/// Bytes of an SMMU's own registers (global space and eight context banks, 4 KiB pages);
/// the rest of its 128 KiB window holds none (issue 13).
pub const SMMU_REGS_SIZE: Z = 0x1_0000;
/// Stream match register groups of the machine's SMMUs.
pub const SMMU_STREAM_GROUPS: Z = 16;

/// Whether a 64-bit access at window offset `off` reaches one 64-bit register of an
/// SMMU-500-like SMMUv2: sGFAR, or a bank's TTBR0, TTBR1, PAR, FAR, TLB operations by address.
pub fn smmu_is_64bit_register(off: Z) -> bool {
    if off < SMMU_GLOBAL_BASE {
        return off == 0x40;
    }
    matches!(
        off & ARM_SMMU_PGSHIFT_MASK,
        0x20 | 0x28 | 0x50 | 0x60 | 0x600 | 0x608 | 0x610 | 0x618 | 0x620 | 0x628 | 0x630 | 0x638
    )
}

/// The host's access to an SMMU register window (spec-digest §5.0.5); `base` is the
/// window's base (the `arm` profile decodes offsets in the whole window, issue 13).
#[allow(clippy::too_many_arguments)]
pub fn handle_host_mmio_spec_h(
    p: &Profile,
    index: Z,
    base: Z,
    fault_ipa: Z,
    len: Z,
    is_write: Z,
    rt: Z,
    cregs: &CtxtRegs,
    cstates: &CtxtStates,
    rcregs: &CtxtRegs,
    dorc: Dorc,
    logn: Z,
    smmu: &ZMap<Z>,
) -> (bool, Z, CtxtRegs, CtxtStates, CtxtRegs) {
    let refused = (true, logn, cregs.clone(), cstates.clone(), rcregs.clone());
    // Quirk `smmu_offset_masked`: the seed's offset aliases the window's upper half.
    let offset = if p.q.smmu_offset_masked {
        fault_ipa & SMMU_OFFSET_MASK
    } else {
        fault_ipa - base
    };
    // Quirk `smmu_mmio_width_unchecked`: only accesses the SMMU defines.
    if !p.q.smmu_mmio_width_unchecked
        && (len == 4 || len == 8)
        && (offset % len != 0
            || (len == 8 && offset < SMMU_REGS_SIZE && !smmu_is_64bit_register(offset)))
    {
        cov!("handle_host_mmio_spec_h.bad_access");
        return refused;
    }
    if is_write == 0 {
        let data = dorc(logn);
        let v = match len {
            8 => data,
            4 => data & INVALID,
            _ => {
                cov!("handle_host_mmio_spec_h.read_bad_len");
                return refused;
            }
        };
        cov!("handle_host_mmio_spec_h.read");
        let (cr, cs) = set_shadow_ctxt_specx(rt, v, cregs, cstates);
        return (false, logn + 1, cr, cs, skip_instruction(p, rcregs));
    }
    let mut data = get_shadow_ctxt_specx(rt, cregs, cstates);
    if !p.q.smmu_mmio_width_unchecked && len == 4 {
        data &= INVALID; // a 32-bit store carries the register's low word
    }
    let ret_state = if len == 8 || len == 4 {
        (
            false,
            logn,
            cregs.clone(),
            cstates.clone(),
            skip_instruction(p, rcregs),
        )
    } else {
        refused.clone()
    };
    if !p.q.smmu_offset_masked && offset >= SMMU_REGS_SIZE {
        cov!("handle_host_mmio_spec_h.above_registers");
        return ret_state;
    }
    let owner = |n: Z| *smmu.get(smmu_id(index, n));
    let vm_bank = |n: Z| {
        let o = owner(n);
        (0..8).contains(&n) && o != HOSTVISOR && o != INVALID
    };
    let allowed = if offset < SMMU_GLOBAL_BASE {
        // Quirk `cbar0_unpoliced`: the seed's range includes GR1_BASE (bank 0's CBAR).
        let global_end = if p.q.cbar0_unpoliced {
            ARM_SMMU_GR1_BASE + 1
        } else {
            ARM_SMMU_GR1_BASE
        };
        let smr = 0x800..0x800 + 4 * SMMU_STREAM_GROUPS;
        let s2cr = 0xC00..0xC00 + 4 * SMMU_STREAM_GROUPS;
        if (0..global_end).contains(&offset) {
            if offset == ARM_SMMU_GR0_sCR0 {
                cov!("handle_host_mmio_spec_h.scr0");
                shr(data, sCR0_SMCFCFG_SHIFT) & 1 != 0
            } else if offset == ARM_SMMU_GR0_sCR2 {
                cov!("handle_host_mmio_spec_h.scr2");
                data & 255 == 0
            } else if !p.q.smmu_stream_routing_unpoliced && smr.contains(&offset) {
                cov!("handle_host_mmio_spec_h.smr");
                // Frozen for a VM's bank; elsewhere it may not match a VM bank's stream n.
                let (id, mask) = (data & 0x7FFF, shr(data, 16) & 0x7FFF);
                let matches = |n: Z| shr(data, 31) & 1 == 1 && (n ^ id) & !mask & 0x7FFF == 0;
                !vm_bank(zdiv(offset - smr.start, 4)) && !(0..8).any(|n| vm_bank(n) && matches(n))
            } else if !p.q.smmu_stream_routing_unpoliced && s2cr.contains(&offset) {
                cov!("handle_host_mmio_spec_h.s2cr");
                let ty = shr(data, 16) & 3;
                let to = data & 255;
                !vm_bank(zdiv(offset - s2cr.start, 4))
                    && ty != 1
                    && (ty != 0 || ((0..8).contains(&to) && owner(to) == HOSTVISOR))
            } else {
                cov!("handle_host_mmio_spec_h.global_other");
                true
            }
        } else if !p.q.smmu_cbar_loose && (ARM_SMMU_GR1_BASE..ARM_SMMU_GR1_END).contains(&offset) {
            let n = zdiv(offset - ARM_SMMU_GR1_BASE, 4);
            if n < 8 {
                cov!("handle_host_mmio_spec_h.cbar_intent");
                let want = match owner(n) {
                    HOSTVISOR => 0,
                    v => v,
                };
                shr(data, CBAR_TYPE_SHIFT) & 3 == CBAR_TYPE_S2_TRANS
                    && data & CBAR_VMID_MASK == want
            } else {
                cov!("handle_host_mmio_spec_h.gr1_other");
                true
            }
        } else if (ARM_SMMU_GR1_BASE..ARM_SMMU_GR1_END).contains(&offset) {
            cov!("handle_host_mmio_spec_h.cbar");
            let n = zdiv(offset - ARM_SMMU_GR1_BASE, 4);
            let vmid = owner(n);
            let ty = shr(data, CBAR_TYPE_SHIFT);
            let t_vmid = data & CBAR_VMID_MASK;
            vmid == 0 || (ty == CBAR_TYPE_S2_TRANS && vmid == t_vmid)
        } else if !p.q.smmu_bank_config_unpoliced
            && (ARM_SMMU_GR1_END..ARM_SMMU_GR1_END + 32).contains(&offset)
        {
            cov!("handle_host_mmio_spec_h.cba2r");
            data & 1 != 0
        } else {
            cov!("handle_host_mmio_spec_h.global_high");
            true
        }
    } else {
        let cb_offset = (offset - SMMU_GLOBAL_BASE) & ARM_SMMU_PGSHIFT_MASK;
        if cb_offset == ARM_SMMU_CB_CONTEXTIDR {
            cov!("handle_host_mmio_spec_h.contextidr");
            false
        } else if !p.q.smmu_bank_config_unpoliced && cb_offset == 0 {
            cov!("handle_host_mmio_spec_h.sctlr");
            data & 1 != 0 && data & 0x10 == 0
        } else if !p.q.smmu_bank_config_unpoliced && cb_offset == 0x30 {
            cov!("handle_host_mmio_spec_h.tcr");
            data & SMMU_TCR_FIXED == SMMU_TCR_KCORE
        } else {
            cov!("handle_host_mmio_spec_h.cb_other");
            true
        }
    };
    if allowed {
        ret_state
    } else {
        cov!("handle_host_mmio_spec_h.write_refused");
        refused
    }
}

/// The leaf attribute bits the host may choose in `SMMU_LPAE_MAP` (`arm`, deviation
/// `smmu_leaf_attrs_unchecked`): descriptor type (1:0), MemAttr (5:2), S2AP (7:6), XN (54:53).
pub const SMMU_LEAF_ALLOWED: Z = 0xFF | (3 << 53);

/// KCore's stage-2 format in a bank's TCR (AArch64 layout): T0SZ = 24, SL0 = 1, TG0 = 4 KiB,
/// PS = 48 bits; and the TCR fields that shape the walk.
pub const SMMU_TCR_KCORE: Z = 24 | (1 << 6) | (5 << 16);
pub const SMMU_TCR_FIXED: Z = 0x3F | (3 << 6) | (3 << 14) | (7 << 16);

/// The remap address of guest address `addr` inside a loaded image (last match wins).
pub fn search_load_info_loop_h(n: Z, idx: Z, addr: Z, ret: Z, binfo: &BootInfo) -> (Z, Z) {
    let (mut idx, mut ret) = (idx, ret);
    for _ in 0..n.max(0) {
        let base = *binfo.vm_load_addr.get(idx);
        let size = *binfo.vm_load_size.get(idx);
        let remap = *binfo.vm_remap_addr.get(idx);
        if addr >= base && addr < base + size {
            cov!("search_load_info_loop_h.hit");
            ret = addr - base + remap;
        } else {
            cov!("search_load_info_loop_h.miss");
        }
        idx += 1;
    }
    (idx, ret)
}

/// One page of a grant/revoke loop: the two page-table reads, then `f` on the found pfn.
fn share_loop(
    p: &Profile,
    n: Z,
    vmid: Z,
    addr: Z,
    adt: &RData,
    revoke: bool,
) -> Option<(Z, RData)> {
    let n = to_nat(n)?;
    let (mut a, mut cur) = (addr, adt.clone());
    for _ in 0..n {
        let gfn = zdiv(a, PAGE_SIZE);
        let mut adt0 = query_oracle(p, &cur);
        if !lock_ok(&adt0, NPT_ID + vmid) {
            return None;
        }
        log(&mut adt0, AtomicEvent::OPT_GET(vmid));
        let (_, _, pte) = *adt0.shared.npts.get(vmid).pt.get(gfn);
        let mut adt1 = query_oracle(p, &adt0);
        if !lock_ok(&adt1, NPT_ID + vmid) {
            return None;
        }
        log(&mut adt1, AtomicEvent::OPT_GET(vmid));
        let (_, level, _) = *adt1.shared.npts.get(vmid).pt.get(gfn);
        let pfn = zdiv(phys_page(pte), PAGE_SIZE);
        a += PAGE_SIZE;
        if pfn == 0 {
            cov!("share_loop.unmapped");
            cur = adt1;
            continue;
        }
        // §7.2.6: the seed computes the page inside a 2 MiB block and then uses the base.
        let page = if level == 2 && !p.q.grant_block_base_pfn {
            pfn + (gfn & 511)
        } else {
            pfn
        };
        let mut adt2 = query_oracle(p, &adt1);
        // The seed checks these locks on the previous snapshot (`adt1`).
        if !lock_ok(&adt1, S2PAGE_ID) || (revoke && !lock_ok(&adt1, NPT_ID)) {
            return None;
        }
        if revoke {
            cov!("revoke_stage2_loop.revoke");
            let logn = *adt2.data_log.get(vmid);
            let (sdt, halt, logn2) = local_revoke_vm_page(
                p,
                vmid,
                page,
                &|k| adt2.doracle.call(vmid, k),
                logn,
                &adt2.shared,
            );
            log(&mut adt2, AtomicEvent::OREVOKE(vmid, page, vmid, logn));
            adt2.halt = halt;
            adt2.shared = sdt;
            adt2.data_log.set_mut(vmid, logn2);
        } else {
            cov!("grant_stage2_loop.grant");
            let (sdt, _) = local_grant_vm_page(p, vmid, page, &adt2.shared);
            adt2.shared = sdt;
            log(&mut adt2, AtomicEvent::OGRANT(vmid, page));
        }
        cur = adt2;
    }
    Some((a, cur))
}

/// Guest `KVM_SET_DESC_PFN`: share the pages of `[addr, addr + n pages)` with the host.
/// The seed's loop has no halt check.
pub fn grant_stage2_loop(p: &Profile, n: Z, vmid: Z, addr: Z, adt: &RData) -> Option<(Z, RData)> {
    share_loop(p, n, vmid, addr, adt, false)
}

/// Guest `KVM_UNSET_DESC_PFN`: unshare them.
pub fn revoke_stage2_loop(p: &Profile, n: Z, vmid: Z, addr: Z, adt: &RData) -> Option<(Z, RData)> {
    share_loop(p, n, vmid, addr, adt, true)
}

/// Handles a guest trap in EL2; `ret = 0` resumes the guest, `ret = 1` exits to the host.
pub fn vm_exit_dispatcher_spec_h(
    p: &Profile,
    vmid: Z,
    vcpuid: Z,
    adt: &RData,
) -> Option<(RData, Z)> {
    let cregs = &adt.shadow_ctxts.get(ctxt_id(vmid, vcpuid)).ctxt_regs;
    let exit_type = zmod(zdiv(cregs.esr_el2, 67108864), 64);
    if exit_type == p.c.ESR_ELx_EC_SYS64 {
        cov!("vm_exit_dispatcher_spec_h.sys64");
        let mut out = adt.clone();
        out.regs.ctxt_regs = skip_instruction(p, &adt.regs.ctxt_regs);
        return Some((out, 0));
    }
    if exit_type == ESR_ELx_EC_HVC64 {
        let (arg, addr, size) = (cregs.x[0], cregs.x[2], cregs.x[3]);
        let len = zdiv(size + 4095, PAGE_SIZE);
        let shares = arg == p.c.HVC_KVM_SET_DESC_PFN || arg == p.c.HVC_KVM_UNSET_DESC_PFN;
        // Deviation `share_loop_unbounded`: no VM owns more pages than the RAM has, so a
        // longer range is refused before the loop (it would hold the CPU at EL2 for up to
        // 2^52 iterations); the guest resumes with nothing changed.
        if shares && !p.q.share_loop_unbounded && len > adt.smmu_conf.ram_pages {
            cov!("vm_exit_dispatcher_spec_h.share_too_long");
            return Some((adt.clone(), 0));
        }
        return if arg == p.c.HVC_KVM_SET_DESC_PFN {
            cov!("vm_exit_dispatcher_spec_h.grant");
            Some((grant_stage2_loop(p, len, vmid, addr, adt)?.1, 0))
        } else if arg == p.c.HVC_KVM_UNSET_DESC_PFN {
            cov!("vm_exit_dispatcher_spec_h.revoke");
            Some((revoke_stage2_loop(p, len, vmid, addr, adt)?.1, 0))
        } else {
            cov!("vm_exit_dispatcher_spec_h.hvc_to_host");
            Some((adt.clone(), 1))
        };
    }
    // §7.2.17: the seed halts on every other class, so WFx and guest aborts never reach the
    // host; the intent (and the C) hands them to the host.
    let to_host = [ESR_ELx_EC_WFx, ESR_ELx_EC_IABT_LOW, ESR_ELx_EC_DABT_LOW].contains(&exit_type);
    if to_host && !p.q.guest_abort_halts {
        cov!("vm_exit_dispatcher_spec_h.exit_to_host");
        return Some((adt.clone(), 1));
    }
    // Deviation `guest_exception_halts`: under `arm` every other class goes to the host too,
    // so no guest instruction stops the machine.
    if !to_host && !p.q.guest_exception_halts {
        cov!("vm_exit_dispatcher_spec_h.exception_to_host");
        return Some((adt.clone(), 1));
    }
    cov!("vm_exit_dispatcher_spec_h.halt");
    Some((
        RData {
            halt: true,
            ..adt.clone()
        },
        0,
    ))
}

pub fn prep_wfx_specx(cstates: &CtxtStates) -> CtxtStates {
    cov!("prep_wfx_specx.pc_flag");
    CtxtStates {
        dirty: DIRTY_PC_FLAG,
        ..cstates.clone()
    }
}

pub fn prep_abort_specx(
    p: &Profile,
    cregs: &CtxtRegs,
    cstates: &CtxtStates,
    logn: Z,
    dorc: Dorc,
) -> (CtxtStates, Z) {
    let esr = dorc(logn);
    let rd = zmod(zdiv(esr, 65536), 32);
    let fault_ipa = zdiv(cregs.hpfar_el2, 16) * 4096;
    if fault_ipa >= MAX_MMIO_ADDR {
        cov!("prep_abort_specx.ram");
        return (cstates.clone(), logn + 1);
    }
    let read = esr & ESR_ELx_WNR == 0 && esr & ESR_ELx_S1PTW == 0;
    let dirty = if p.q.guest_abort_halts {
        // Literal: overwrite `dirty` (and lose the PC flag on reads).
        if read {
            cov!("prep_abort_specx.mmio_read_literal");
            shl(1, rd)
        } else {
            cov!("prep_abort_specx.mmio_write_literal");
            DIRTY_PC_FLAG
        }
    } else if read {
        cov!("prep_abort_specx.mmio_read");
        cstates.dirty | DIRTY_PC_FLAG | shl(1, rd)
    } else {
        cov!("prep_abort_specx.mmio_write");
        cstates.dirty | DIRTY_PC_FLAG
    };
    (
        CtxtStates {
            dirty,
            ..cstates.clone()
        },
        logn + 1,
    )
}

pub fn prep_hvc_spec_h(p: &Profile, vmid: Z, vcpuid: Z, adt: &RData) -> Option<RData> {
    let psci_fn = adt.shadow_ctxts.get(ctxt_id(vmid, vcpuid)).ctxt_regs.x[0] & INVALID;
    if psci_fn != PSCI_0_2_FN_SYSTEM_OFF {
        cov!("prep_hvc_spec_h.other");
        return Some(adt.clone());
    }
    cov!("prep_hvc_spec_h.system_off");
    let mut adt0 = query_oracle(p, adt);
    if !lock_ok(&adt0, INFO_ID + vmid) {
        return None;
    }
    let (sdt, _) = local_set_vm_poweroff(p, vmid, &adt0.shared);
    adt0.shared = sdt;
    adt0.slog
        .push_front(SEVENT(adt.curid, AtomicEvent::OVM_POWEROFF(vmid)));
    Some(adt0)
}
