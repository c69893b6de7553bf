//! Seed `Section TrapHandlerSpec`: the eight entry points and their steps
//! (spec-digest §5.1–§5.5). Each returns `None` outside the spec's contract and `Some(s)`
//! with `s.halt` when KCore panics.

use crate::am::*;
use crate::aux::*;
use crate::concurrent::*;
use crate::consts::*;
use crate::cov;
use crate::profile::Profile;
use crate::state::*;
use crate::Z;

fn log(adt: &mut RData, e: AtomicEvent) {
    let cpu = adt.curid;
    adt.slog.push_front(SEVENT(cpu, e));
}

fn lock_ok(adt: &RData, id: Z) -> bool {
    *adt.shared.hlock.get(id)
}

fn halted(adt: &RData) -> RData {
    RData {
        halt: true,
        ..adt.clone()
    }
}

/// `rely` on every lock of `ids` in `adt`.
fn need(adt: &RData, ids: &[Z]) -> Option<()> {
    ids.iter().all(|&id| lock_ok(adt, id)).then_some(())
}

/// A `local_*` step: `adt {shared: sdt'} {halt: halt'} {slog: e :: slog}`.
fn apply(mut adt: RData, e: AtomicEvent, (sdt, halt): (Shared, bool)) -> RData {
    log(&mut adt, e);
    adt.shared = sdt;
    adt.halt = halt;
    adt
}

fn set_x0(adt: &mut RData, ctxtid: Z, v: Z) {
    let mut ctxt = adt.shadow_ctxts.get(ctxtid).clone();
    ctxt.ctxt_regs.x[0] = v;
    adt.shadow_ctxts.set_mut(ctxtid, ctxt);
}

/// One atomic step that reads the host's untrusted stream (the crypto-buffer hypercalls):
/// `Q`, `rely` on `locks`, run `op` with `doracle HOSTVISOR` from `data_log[HOSTVISOR]`,
/// log its event, store the shared state, halt flag and the advanced counter.
fn host_stream_step(
    p: &Profile,
    adt1: &RData,
    locks: &[Z],
    op: impl FnOnce(Dorc, Z, &Shared) -> (Shared, bool, Z, AtomicEvent),
) -> Option<RData> {
    let s = query_oracle(p, adt1);
    need(&s, locks)?;
    let logn = *s.data_log.get(HOSTVISOR);
    let (sdt, halt, logn2, ev) = op(&|k| s.doracle.call(HOSTVISOR, k), logn, &s.shared);
    let mut out = apply(s, ev, (sdt, halt));
    out.data_log.set_mut(HOSTVISOR, logn2);
    Some(out)
}

/// The hypercall cases of `host_hvc_handler_spec`, on `adt'` (shadow saved, `icore` set).
fn host_hvc_dispatch(p: &Profile, adt1: &RData, ctxtid: Z) -> Option<RData> {
    let c = &p.c;
    let vmid = adt1.cur_vmid;
    let ctxt = adt1.shadow_ctxts.get(ctxtid).clone();
    let x = &ctxt.ctxt_regs.x;
    let (arg, a1, a2, a3, a4, a5) = (x[0], x[1], x[2], x[3], x[4], x[5]);
    let bad = || Some(halted(adt1));
    // §7.2.4: the seed locks `INFO_ID + cur_vmid` where the target VM is meant.
    let info_of = |target: Z| {
        if p.q.info_lock_cur_vmid {
            INFO_ID + vmid
        } else {
            INFO_ID + target
        }
    };
    // §7.2.5: two cases read `smmu_vmid[smmu_id cbndx index]`.
    let bank = |index: Z, cbndx: Z| {
        if p.q.smmu_id_swapped {
            smmu_id(cbndx, index)
        } else {
            smmu_id(index, cbndx)
        }
    };

    if arg == c.HVC_TIMER_SET_CNTVOFF {
        cov!("host_hvc_handler_spec.timer_set_cntvoff");
        Some(adt1.clone())
    } else if arg == c.HVC_CLEAR_VM_S2_RANGE {
        if !(is_vm(a1) && is_paddr(a2) && is_paddr(a3)) {
            cov!("host_hvc_handler_spec.clear_vm_s2_range.bad_args");
            return bad();
        }
        // Deviation `share_loop_unbounded`: no VM owns more pages than the RAM has.
        if !p.q.share_loop_unbounded && zdiv(a3, PAGE_SIZE) > adt1.smmu_conf.ram_pages {
            cov!("host_hvc_handler_spec.clear_vm_s2_range.longer_than_ram");
            return bad();
        }
        let mut s = query_oracle(p, adt1);
        need(&s, &[NPT_ID + a1])?;
        let state = s.shared.vminfos.get(a1).VS.vm_state;
        // §7.2.4: the seed labels this read with `cur_vmid`.
        log(
            &mut s,
            AtomicEvent::OVM_GET(if p.q.info_lock_cur_vmid { vmid } else { a1 }),
        );
        if state == POWEROFF && !p.q.clear_while_reachable && !vm_unreachable(a1, &s.shared) {
            cov!("host_hvc_handler_spec.clear_vm_s2_range.still_reachable");
            Some(s)
        } else if state == POWEROFF {
            cov!("host_hvc_handler_spec.clear_vm_s2_range.clear");
            if !p.q.clear_while_reachable {
                s.shared = teardown_vm_s2(a1, &s.shared);
            }
            Some(clear_vm_loop_h(p, zdiv(a3, PAGE_SIZE), zdiv(a2, PAGE_SIZE), a1, &s)?.1)
        } else {
            cov!("host_hvc_handler_spec.clear_vm_s2_range.not_poweroff");
            Some(s)
        }
    } else if arg == c.HVC_SET_BOOT_INFO {
        // §7.2.15: the seed checks `is_paddr arg1` and `is_pfn (arg2 + arg3)`.
        let ok = if p.q.literal_arg_checks {
            is_vm(a1) && is_paddr(a2) && is_paddr(a1) && is_pfn(a2 + a3)
        } else {
            is_vm(a1) && is_paddr(a2) && is_paddr(a3) && is_paddr(a2 + a3)
        };
        if !ok {
            cov!("host_hvc_handler_spec.set_boot_info.bad_args");
            return bad();
        }
        cov!("host_hvc_handler_spec.set_boot_info.ok");
        let s = query_oracle(p, adt1);
        need(&s, &[INFO_ID + a1, CORE_ID])?;
        let r = local_set_boot_info(p, a1, a2, a3, &s.shared);
        Some(apply(s, AtomicEvent::OBOOT_INFO(a1, a2, a3), r))
    } else if arg == c.HVC_REMAP_VM_IMAGE {
        // §7.2.15: the seed checks `arg3` twice and never the pfn `arg2`.
        let ok = if p.q.literal_arg_checks {
            is_vm(a1) && is_pfn(a3) && is_load_idx(a3)
        } else {
            is_vm(a1) && is_pfn(a2) && is_load_idx(a3)
        };
        if !ok {
            cov!("host_hvc_handler_spec.remap_vm_image.bad_args");
            return bad();
        }
        cov!("host_hvc_handler_spec.remap_vm_image.ok");
        let s = query_oracle(p, adt1);
        need(&s, &[INFO_ID + a1, NPT_ID + COREVISOR])?;
        let r = local_remap_vm_image(p, a1, a2, a3, &s.shared);
        Some(apply(s, AtomicEvent::OREMAP_IMAGE(a1, a2, a3), r))
    } else if arg == c.HVC_VERIFY_VM_IMAGE {
        if !is_vm(a1) {
            cov!("host_hvc_handler_spec.verify_vm_image.bad_args");
            return bad();
        }
        let mut s = query_oracle(p, adt1);
        need(&s, &[INFO_ID + a1])?;
        let info = s.shared.vminfos.get(a1).clone();
        s.shared.hlock.set_mut(info_of(a1), false);
        log(&mut s, AtomicEvent::OVERIFY(a1));
        if info.VS.vm_state != READY {
            cov!("host_hvc_handler_spec.verify_vm_image.not_ready");
            return Some(halted(&s));
        }
        // Deviation `image_blocks_unbound`: the signed pages must be the pages loaded.
        if !p.q.image_blocks_unbound && !image_bound(&s, &info.VB) {
            cov!("host_hvc_handler_spec.verify_vm_image.image_unbound");
            return Some(halted(&s));
        }
        let (_, mut s0) = verify_and_load_loop_h(p, info.VB.vm_next_load_info, a1, 0, &s)?;
        if s0.halt {
            cov!("host_hvc_handler_spec.verify_vm_image.load_halted");
            return Some(s0);
        }
        // Extension `verify_unsigned`: the signature's verdict, after the image is loaded.
        let mut verdict = VERIFIED;
        if !p.q.verify_unsigned {
            let logn = *s0.data_log.get(HOSTVISOR);
            s0.data_log.set_mut(HOSTVISOR, logn + 1);
            if s0.doracle.call(HOSTVISOR, logn) == 0 {
                cov!("host_hvc_handler_spec.verify_vm_image.forged");
                verdict = POWEROFF;
            }
        }
        cov!("host_hvc_handler_spec.verify_vm_image.verified");
        let mut info2 = info;
        info2.VS.vm_state = verdict;
        s0.shared.hlock.set_mut(INFO_ID + a1, true);
        s0.shared.vminfos.set_mut(a1, info2);
        log(&mut s0, AtomicEvent::OVERIFY(a1));
        Some(s0)
    } else if arg == c.HVC_SMMU_FREE_PGD {
        if !(is_smmu_cfg(a1) && is_smmu(a2)) {
            cov!("host_hvc_handler_spec.smmu_free_pgd.bad_args");
            return bad();
        }
        cov!("host_hvc_handler_spec.smmu_free_pgd.ok");
        let s = query_oracle(p, adt1);
        let owner = *s.shared.smmu_vmid.get(smmu_id(a2, a1));
        need(&s, &[SMMU_ID, info_of(owner)])?;
        let r = local_free_smmu_pgd(p, a1, a2, &s.shared);
        Some(apply(s, AtomicEvent::OSMMU_FREE(a1, a2), r))
    } else if arg == c.HVC_SMMU_ALLOC_PGD {
        if !(is_smmu_cfg(a1) && (HOSTVISOR..COREVISOR).contains(&a2) && is_smmu(a3)) {
            cov!("host_hvc_handler_spec.smmu_alloc_pgd.bad_args");
            return bad();
        }
        cov!("host_hvc_handler_spec.smmu_alloc_pgd.ok");
        let s = query_oracle(p, adt1);
        let num = *s.smmu_conf.smmu_dev_context_banks.get(a3);
        need(&s, &[SMMU_ID, info_of(a2), SPT_ID])?;
        let r = local_alloc_smmu_pgd(p, a1, a2, a3, num, &s.shared);
        Some(apply(s, AtomicEvent::OSMMU_ALLOC(a1, a2, a3, num), r))
    } else if arg == c.HVC_SMMU_LPAE_MAP {
        let ok = is_paddr(a1)
            && is_paddr(a2)
            && (0..9223372036854775807).contains(&a3)
            && phys_page(a3) == 0
            && is_smmu_cfg(a4)
            && is_smmu(a5);
        if !ok {
            cov!("host_hvc_handler_spec.smmu_lpae_map.bad_args");
            return bad();
        }
        let pfn = zdiv(a2, PAGE_SIZE);
        let gfn = zdiv(a1, PAGE_SIZE);
        // Quirk `smmu_leaf_attrs_unchecked`: the seed takes every bit the host passes.
        let pte = if p.q.smmu_leaf_attrs_unchecked {
            a2 | (a3 | c.PTE_AF_OR_SH_IS)
        } else {
            cov!("host_hvc_handler_spec.smmu_lpae_map.allowed_attrs");
            phys_page(a2) | (a3 & crate::aux::SMMU_LEAF_ALLOWED) | c.PTE_AF_OR_SH_IS
        };
        let s = query_oracle(p, adt1);
        let owner = *s.shared.smmu_vmid.get(smmu_id(a5, a4));
        need(&s, &[SMMU_ID, info_of(owner), S2PAGE_ID, NPT_ID])?;
        // §7.2.16: the seed's event carries (pfn, gfn) in its (gfn, pfn) slots.
        let ev = if p.q.literal_event_payloads {
            AtomicEvent::OASSIGN_SMMU(a4, a5, pfn, gfn)
        } else {
            AtomicEvent::OASSIGN_SMMU(a4, a5, gfn, pfn)
        };
        let r = local_smmu_assign_page(p, a4, a5, pfn, gfn, &s.shared);
        let s1 = apply(s, ev, r);
        if s1.halt {
            cov!("host_hvc_handler_spec.smmu_lpae_map.assign_halted");
            return Some(s1);
        }
        cov!("host_hvc_handler_spec.smmu_lpae_map.ok");
        let s2 = query_oracle(p, &s1);
        let v2 = *s2.shared.smmu_vmid.get(bank(a5, a4));
        need(&s2, &[SMMU_ID, INFO_ID + v2, SPT_ID, SPT_ID])?;
        let r = local_smmu_map_page(p, a4, a5, a1, pte, &s2.shared);
        Some(apply(s2, AtomicEvent::OSMMU_MAP(a4, a5, a1, pte), r))
    } else if arg == c.HVC_SMMU_LPAE_IOVA_TO_PHYS {
        if !(is_paddr(a1) && is_smmu_cfg(a2) && is_smmu(a3)) {
            cov!("host_hvc_handler_spec.smmu_lpae_iova_to_phys.bad_args");
            return bad();
        }
        let mut s = query_oracle(p, adt1);
        need(&s, &[SPT_ID])?;
        let (_, pte) = *s
            .shared
            .spts
            .spt_pt
            .get(SMMU_TTBR(a3, a2))
            .get(zdiv(a1, PAGE_SIZE));
        // §7.2.10: the seed builds the OSMMU_GET event and does not record it.
        if p.q.iova_to_phys_unlogged {
            cov!("host_hvc_handler_spec.smmu_lpae_iova_to_phys.unlogged");
        } else {
            cov!("host_hvc_handler_spec.smmu_lpae_iova_to_phys.logged");
            log(&mut s, AtomicEvent::OSMMU_GET);
        }
        s.shadow_ctxts = adt1.shadow_ctxts.clone();
        set_x0(&mut s, ctxtid, phys_page(pte) + (a1 & 4095));
        Some(s)
    } else if arg == c.HVC_SMMU_CLEAR {
        if !(is_paddr(a1) && is_smmu_cfg(a2) && is_smmu(a3)) {
            cov!("host_hvc_handler_spec.smmu_clear.bad_args");
            return bad();
        }
        cov!("host_hvc_handler_spec.smmu_clear.ok");
        let s = query_oracle(p, adt1);
        let v = *s.shared.smmu_vmid.get(bank(a3, a2));
        need(&s, &[SMMU_ID, INFO_ID + v, S2PAGE_ID, SPT_ID])?;
        let r = local_smmu_clear(p, a1, a2, a3, &s.shared);
        Some(apply(s, AtomicEvent::OSMMU_CLEAR(a1, a2, a3), r))
    } else if arg == c.HVC_PHYS_ADDR_IOREMAP {
        let sz = zdiv(a4 + 4095, PAGE_SIZE) * PAGE_SIZE;
        let ok = is_vm(a1)
            && is_addr(a2)
            && is_paddr(a3)
            && is_paddr(a4)
            && is_addr(a2 + sz)
            && is_paddr(a3 + sz)
            && 0 <= a4;
        if !ok {
            cov!("host_hvc_handler_spec.phys_addr_ioremap.bad_args");
            return bad();
        }
        // Deviation `share_loop_unbounded`: no VM is given more device pages than the
        // platform declares.
        if !p.q.share_loop_unbounded && zdiv(a4 + 4095, PAGE_SIZE) > declared_pages(&adt1.smmu_conf)
        {
            cov!("host_hvc_handler_spec.phys_addr_ioremap.longer_than_devices");
            return bad();
        }
        cov!("host_hvc_handler_spec.phys_addr_ioremap.ok");
        Some(kvm_phys_addr_ioremap_loop_h(p, zdiv(a4 + 4095, PAGE_SIZE), a1, a2, a3, adt1)?.2)
    } else if arg == c.HVC_REGISTER_KVM {
        let s = query_oracle(p, adt1);
        need(&s, &[CORE_ID])?;
        let new = s.shared.core_data.next_vmid;
        let r = local_gen_vmid(p, &s.shared);
        let s1 = apply(s, AtomicEvent::OGEN_VMID, r);
        if s1.halt {
            cov!("host_hvc_handler_spec.register_kvm.no_vmid");
            return Some(s1);
        }
        cov!("host_hvc_handler_spec.register_kvm.ok");
        let s2 = query_oracle(p, &s1);
        need(&s2, &[INFO_ID + new])?;
        let r = local_register_kvm(p, new, &s2.shared);
        let mut s3 = apply(s2, AtomicEvent::OREG_KVM(new), r);
        s3.shadow_ctxts = adt1.shadow_ctxts.clone();
        set_x0(&mut s3, ctxtid, new);
        Some(s3)
    } else if arg == c.HVC_REGISTER_VCPU {
        if !(is_vm(a1) && is_vcpu(a2)) {
            cov!("host_hvc_handler_spec.register_vcpu.bad_args");
            return bad();
        }
        cov!("host_hvc_handler_spec.register_vcpu.ok");
        let s = query_oracle(p, adt1);
        need(&s, &[INFO_ID + a1])?;
        let r = local_register_vcpu(p, a1, a2, &s.shared);
        Some(apply(s, AtomicEvent::OREG_VCPU(a1, a2), r))
    } else if arg == c.HVC_ENCRYPT_BUF {
        if !(is_vm(a1) && is_paddr(a2) && is_paddr(a3)) {
            cov!("host_hvc_handler_spec.encrypt_buf.bad_args");
            return bad();
        }
        cov!("host_hvc_handler_spec.encrypt_buf.ok");
        host_stream_step(p, adt1, &[S2PAGE_ID], |dorc, logn, sdt| {
            let (sdt, halt, l) = local_save_encrypt_buf(p, a1, a2, a3, dorc, logn, sdt);
            (
                sdt,
                halt,
                l,
                AtomicEvent::OSAVE_ENC_BUF(a1, a2, a3, HOSTVISOR, logn),
            )
        })
    } else if arg == c.HVC_DECRYPT_BUF {
        if !(is_vm(a1) && is_paddr(a2)) {
            cov!("host_hvc_handler_spec.decrypt_buf.bad_args");
            return bad();
        }
        cov!("host_hvc_handler_spec.decrypt_buf.ok");
        host_stream_step(
            p,
            adt1,
            &[S2PAGE_ID, INFO_ID + a1, NPT_ID],
            |dorc, logn, sdt| {
                let (sdt, halt, l) = local_load_decrypt_buf(p, a1, a2, dorc, logn, sdt);
                (
                    sdt,
                    halt,
                    l,
                    AtomicEvent::OLOAD_ENC_BUF(a1, a2, HOSTVISOR, logn),
                )
            },
        )
    } else if arg == c.HVC_SAVE_CRYPT_VCPU {
        if !(is_vm(a1) && is_vcpu(a2)) {
            cov!("host_hvc_handler_spec.save_crypt_vcpu.bad_args");
            return bad();
        }
        if p.q.export_unauthenticated {
            cov!("host_hvc_handler_spec.save_crypt_vcpu.ok");
            return Some(adt1.clone());
        }
        // Extension `export_unauthenticated`: the sealed record goes to the host page x3.
        host_stream_step(p, adt1, &[S2PAGE_ID], |dorc, logn, sdt| {
            let (sdt, halt, l) = save_encrypted_vcpu(a3, dorc, logn, sdt);
            (
                sdt,
                halt,
                l,
                AtomicEvent::OSAVE_ENC_BUF(a1, a2, a3, HOSTVISOR, logn),
            )
        })
    } else if arg == c.HVC_LOAD_CRYPT_VCPU {
        if !(is_vm(a1) && is_vcpu(a2)) {
            cov!("host_hvc_handler_spec.load_crypt_vcpu.bad_args");
            return bad();
        }
        let mut s = query_oracle(p, adt1);
        need(&s, &[INFO_ID + a1])?;
        let logn = *s.data_log.get(HOSTVISOR);
        // §7.2.9: the seed decrypts into (and writes back to) the caller's context.
        let target = if p.q.load_crypt_into_caller {
            cov!("host_hvc_handler_spec.load_crypt_vcpu.into_caller");
            ctxtid
        } else {
            cov!("host_hvc_handler_spec.load_crypt_vcpu.into_vcpu");
            ctxt_id(a1, a2)
        };
        let tctxt = adt1.shadow_ctxts.get(target).clone();
        let (sdt, halt, cr, cs, logn2) = local_load_encryted_vcpu(
            p,
            a1,
            a2,
            &tctxt.ctxt_regs,
            &tctxt.ctxt_states,
            &|k| s.doracle.call(HOSTVISOR, k),
            logn,
            &s.shared,
        );
        let ev = AtomicEvent::OLOAD_ENC_VCPU(
            a1,
            a2,
            Box::new(tctxt.ctxt_regs.clone()),
            Box::new(tctxt.ctxt_states.clone()),
            HOSTVISOR,
            logn,
        );
        s = apply(s, ev, (sdt, halt));
        s.data_log.set_mut(HOSTVISOR, logn2);
        s.shadow_ctxts = adt1.shadow_ctxts.set(
            target,
            Ctxt {
                ctxt_regs: cr,
                ctxt_states: cs,
                ..tctxt
            },
        );
        Some(s)
    } else {
        cov!("host_hvc_handler_spec.unknown_call");
        Some(adt1.clone())
    }
}

/// SAVE_CRYPT_VCPU under the intent: the host page `outbuf` receives the sealed record
/// (its first word from the host's data stream); any other page halts.
fn save_encrypted_vcpu(outbuf: Z, dorc: Dorc, logn: Z, sdt: &Shared) -> (Shared, bool, Z) {
    let outpfn = zdiv(outbuf, PAGE_SIZE);
    if sdt.s2page.get(outpfn).s2_owner != HOSTVISOR {
        cov!("host_hvc_handler_spec.save_crypt_vcpu.not_host_page");
        let mut out = sdt.clone();
        out.hlock.set_mut(S2PAGE_ID, false);
        return (out, true, logn);
    }
    cov!("host_hvc_handler_spec.save_crypt_vcpu.sealed");
    let mut out = sdt.clone();
    out.flatmem.set_mut(outpfn, dorc(logn));
    (out, false, logn + 1)
}

/// The end of a host handler: return to the host with the shadow's x0..x30.
fn return_to_host(adt: RData, ctxtid: Z) -> RData {
    let ctxt = adt.shadow_ctxts.get(ctxtid);
    RData {
        regs: Ctxt {
            ctxt_regs: core_to_host_specx(&ctxt.ctxt_regs, &adt.regs.ctxt_regs),
            ..adt.regs.clone()
        },
        icore: false,
        ..adt.clone()
    }
}

/// Host mode entry after the mode guard and the halt short-cut: save the host's x0..x30
/// into its shadow context and enter the core (`adt'` of the seed).
fn enter_from_host(adt: &RData) -> (RData, Z) {
    let ctxtid = ctxt_id(adt.cur_vmid, adt.cur_vcpuid);
    let mut ctxt = adt.shadow_ctxts.get(ctxtid).clone();
    ctxt.ctxt_regs = host_to_core_specx(&ctxt.ctxt_regs, &adt.regs.ctxt_regs);
    let adt1 = RData {
        shadow_ctxts: adt.shadow_ctxts.set(ctxtid, ctxt),
        icore: true,
        ..adt.clone()
    };
    (adt1, ctxtid)
}

/// Host hypercall (spec-digest §5.1).
pub fn host_hvc_handler_spec(p: &Profile, adt: &RData) -> Option<RData> {
    if (adt.ihost, adt.icore) != (true, false) {
        cov!("host_hvc_handler_spec.wrong_mode");
        return None;
    }
    if adt.halt {
        cov!("host_hvc_handler_spec.already_halted");
        return Some(adt.clone());
    }
    let (adt1, ctxtid) = enter_from_host(adt);
    let adt2 = host_hvc_dispatch(p, &adt1, ctxtid)?;
    if adt2.halt {
        cov!("host_hvc_handler_spec.halted");
        return Some(adt2);
    }
    cov!("host_hvc_handler_spec.return_to_host");
    Some(return_to_host(adt2, ctxtid))
}

/// Host stage-2 fault (spec-digest §5.2): map RAM/devices, emulate SMMU register windows.
pub fn host_npt_handler_spec(p: &Profile, adt: &RData) -> Option<RData> {
    if (adt.ihost, adt.icore) != (true, false) {
        cov!("host_npt_handler_spec.wrong_mode");
        return None;
    }
    if adt.halt {
        cov!("host_npt_handler_spec.already_halted");
        return Some(adt.clone());
    }
    let (adt1, ctxtid) = enter_from_host(adt);
    let hw = &adt1.regs.ctxt_regs;
    let addr = (hw.hpfar_el2 & p.c.HPFAR_MASK) * 256;
    if !is_addr(addr) {
        cov!("host_npt_handler_spec.bad_addr");
        return Some(halted(&adt1));
    }
    let esr = hw.esr_el2;
    let fault_ipa = addr | (hw.far_el2 & 4095);
    let len = host_dabt_get_as(esr);
    let is_write = host_dabt_is_write(esr);
    let rt = host_dabt_get_rd(esr);
    let adt0 = query_oracle(p, &adt1);
    let mut log1 = adt0.slog.clone();
    log1.push_front(SEVENT(adt.curid, AtomicEvent::OSMMU_GET));
    need(&adt0, &[SMMU_ID])?;
    let conf = &adt1.smmu_conf;
    let (_, res) = is_smmu_range_loop_h(conf.smmu_num, addr, 0, INVALID, conf);
    let out = if res == INVALID {
        cov!("host_npt_handler_spec.map_host");
        let s = query_oracle(p, &RData { slog: log1, ..adt0 });
        need(&s, &[S2PAGE_ID, NPT_ID])?;
        let r = local_map_host_declared(p, &conf.mmio, addr, &s.shared);
        apply(s, AtomicEvent::OMAP_HOST(addr), r)
    } else {
        cov!("host_npt_handler_spec.smmu_mmio");
        let ctxt = adt1.shadow_ctxts.get(ctxtid).clone();
        let logn = *adt0.data_log.get(HOSTVISOR);
        let (halt, logn2, cr, cs, hw2) = handle_host_mmio_spec_h(
            p,
            res,
            *conf.smmu_phys_base.get(res),
            fault_ipa,
            len,
            is_write,
            rt,
            &ctxt.ctxt_regs,
            &ctxt.ctxt_states,
            &adt0.regs.ctxt_regs,
            &|k| adt0.doracle.call(HOSTVISOR, k),
            logn,
            &adt0.shared.smmu_vmid,
        );
        let mut s = adt0.clone();
        s.halt = halt;
        s.slog = log1;
        s.regs = Ctxt {
            ctxt_regs: hw2,
            ..adt.regs.clone()
        };
        s.data_log = adt.data_log.set(HOSTVISOR, logn2);
        s.shadow_ctxts = adt.shadow_ctxts.set(
            ctxtid,
            Ctxt {
                ctxt_regs: cr,
                ctxt_states: cs,
                ..ctxt
            },
        );
        s
    };
    if out.halt {
        cov!("host_npt_handler_spec.halted");
        return Some(out);
    }
    cov!("host_npt_handler_spec.return_to_host");
    Some(return_to_host(out, ctxtid))
}

/// `vcpu_run_swith_to_core` (sic): save the host's state and pick the VM to run.
pub fn vcpu_run_swith_to_core(p: &Profile, adt: &RData) -> RData {
    let ctxtid = ctxt_id(HOSTVISOR, adt.cur_vcpuid);
    let mut ctxt = adt.shadow_ctxts.get(ctxtid).clone();
    let hw = &adt.regs.ctxt_regs;
    let cregs1 = host_to_core_specx(&ctxt.ctxt_regs, hw);
    let cregs2 = save_sysregs_specx(&cregs1, hw);
    let cregs3 = fpsimd_save_state_specx(&cregs2, hw);
    // §7.1: the seed takes the vmid from x0; the C ABI has x0 = HVC_VCPU_RUN, x1 = vmid.
    let vmid = if p.q.vcpu_run_vmid_in_x0 {
        cregs3.x[0]
    } else {
        cregs3.x[1]
    };
    if !is_vm(vmid) {
        cov!("vcpu_run_swith_to_core.bad_vmid");
        return halted(adt);
    }
    cov!("vcpu_run_swith_to_core.ok");
    ctxt.ctxt_regs = cregs3;
    // §7.1: nothing in the seed saves the host's return state; the intent saves it here so
    // that `switch_to_host` resumes the host after its call.
    if !p.q.host_elr_unsaved {
        ctxt.ctxt_states.pc = hw.elr_el2;
        ctxt.ctxt_states.pstate = hw.spsr_el2;
    }
    RData {
        shadow_ctxts: adt.shadow_ctxts.set(ctxtid, ctxt),
        icore: true,
        cur_vmid: vmid,
        cur_vcpuid: -1,
        ..adt.clone()
    }
}

/// `vcpu_run_process`: activate the vCPU, then first-run reset or resume work.
pub fn vcpu_run_process(p: &Profile, adt: &RData) -> Option<RData> {
    let vmid = adt.cur_vmid;
    let clogn = *adt.core_data_log.get(vmid);
    let vcpuid = adt.core_doracle.call(vmid, clogn);
    let ctxtid = ctxt_id(vmid, vcpuid);
    if !is_vcpu(vcpuid) {
        cov!("vcpu_run_process.bad_vcpu");
        return Some(halted(adt));
    }
    let a1 = RData {
        cur_vcpuid: vcpuid,
        core_data_log: adt.core_data_log.set(vmid, clogn + 1),
        ..adt.clone()
    };
    let a2 = query_oracle(p, &a1);
    let r = local_set_vcpu_active(p, vmid, vcpuid, &a2.shared);
    let adt0 = apply(a2, AtomicEvent::OVM_ACTIVE(vmid, vcpuid), r);
    if adt0.halt {
        cov!("vcpu_run_process.not_runnable");
        return Some(adt0);
    }
    let dirty0 = adt0.shadow_ctxts.get(ctxtid).ctxt_states.dirty;
    if dirty0 == INVALID64 {
        let mut adt1 = query_oracle(p, &adt0);
        need(&adt1, &[INFO_ID + vmid])?;
        let inc_exe = adt1.shared.vminfos.get(vmid).VB.vm_inc_exe;
        log(&mut adt1, AtomicEvent::OVM_GET(vmid));
        if inc_exe != 0 {
            cov!("vcpu_run_process.first_run_restored");
            let mut ctxt = adt1.shadow_ctxts.get(ctxtid).clone();
            ctxt.ctxt_states.dirty = 0;
            adt1.shadow_ctxts.set_mut(ctxtid, ctxt);
            return Some(adt1);
        }
        let logn = *adt1.data_log.get(vmid);
        let pc = adt1.doracle.call(vmid, logn);
        adt1.data_log.set_mut(vmid, logn + 1);
        let mut adt3 = query_oracle(p, &adt1);
        need(&adt3, &[INFO_ID + vmid])?;
        log(&mut adt3, AtomicEvent::OVM_GET(vmid));
        let info = adt3.shared.vminfos.get(vmid);
        let (_, ret) = search_load_info_loop_h(info.VB.vm_next_load_info, 0, pc, 0, &info.VB);
        if ret == 0 {
            cov!("vcpu_run_process.first_run_pc_outside_image");
            return Some(halted(&adt3));
        }
        let ctxt = adt3.shadow_ctxts.get(ctxtid).clone();
        let cregs1 = clear_shadow_gp_regs_specx(&ctxt.ctxt_regs);
        let logn1 = *adt3.data_log.get(vmid);
        let pstate = adt3.doracle.call(vmid, logn1);
        let cstates1 = CtxtStates {
            pstate,
            pc,
            ..ctxt.ctxt_states.clone()
        };
        let cregs2 = reset_fp_regs_specx(&cregs1);
        let (cregs3, mut cstates2, logn2) = reset_sys_regs_specx(
            p,
            vcpuid,
            &cregs2,
            &cstates1,
            &|k| adt3.doracle.call(vmid, k),
            logn1 + 1,
        );
        cstates2.dirty = 0;
        let shadow = adt3.shadow_ctxts.set(
            ctxtid,
            Ctxt {
                ctxt_regs: cregs3,
                ctxt_states: cstates2,
                ..ctxt
            },
        );
        let data_log = adt3.data_log.set(vmid, logn2);
        // §7.2.11: the seed rebuilds the result from `adt0`, dropping what the two queries
        // brought in (shared state, halt) except the log, counters and contexts.
        let base = if p.q.first_run_drops_queries {
            cov!("vcpu_run_process.first_run_literal");
            adt0
        } else {
            cov!("vcpu_run_process.first_run");
            adt3.clone()
        };
        return Some(RData {
            slog: adt3.slog,
            data_log,
            shadow_ctxts: shadow,
            ..base
        });
    }
    let ctxt = adt0.shadow_ctxts.get(ctxtid).clone();
    let logn = *adt0.data_log.get(vmid);
    let (cregs1, cstates1, logn1) = if ctxt.ctxt_regs.ec == ARM_EXCEPTION_TRAP {
        cov!("vcpu_run_process.resume_sync_dirty");
        sync_dirty_to_shadow_specx(
            p,
            vmid,
            dirty0,
            &ctxt.ctxt_regs,
            &ctxt.ctxt_states,
            logn,
            &|k| adt0.doracle.call(vmid, k),
        )
    } else {
        cov!("vcpu_run_process.resume_after_irq");
        (ctxt.ctxt_regs.clone(), ctxt.ctxt_states.clone(), logn)
    };
    // §7.2.1: the seed injects when the pending-exception flag is *clear*.
    let inject = if p.q.inverted_exception_inject {
        dirty0 & PENDING_EXCEPT_INJECT_FLAG == 0
    } else {
        dirty0 & PENDING_EXCEPT_INJECT_FLAG != 0
    };
    let (cregs2, mut cstates2) = if inject {
        cov!("vcpu_run_process.resume_inject");
        update_exception_gp_regs_specx(p, &cregs1, &cstates1)
    } else {
        cov!("vcpu_run_process.resume_no_inject");
        (cregs1, cstates1)
    };
    if dirty0 & DIRTY_PC_FLAG == 0 {
        cov!("vcpu_run_process.resume_keep_pc");
    } else {
        cov!("vcpu_run_process.resume_advance_pc");
        cstates2.pc += 4;
    }
    cstates2.dirty = 0;
    let cregs3 = CtxtRegs {
        far_el2: 0,
        ..cregs2
    };
    let clogn = *adt0.core_data_log.get(vmid);
    let addr = adt0.core_doracle.call(vmid, clogn);
    let shadow = adt0.shadow_ctxts.set(
        ctxtid,
        Ctxt {
            ctxt_regs: cregs3,
            ctxt_states: cstates2,
            ..ctxt
        },
    );
    let data_log = adt0.data_log.set(vmid, logn1);
    if (PAGE_SIZE..KVM_ADDR_SPACE).contains(&addr) {
        cov!("vcpu_run_process.resume_map");
        let pte = adt0.core_doracle.call(vmid, clogn + 1);
        let level = adt0.core_doracle.call(vmid, clogn + 2);
        let a1 = RData {
            core_data_log: adt0.core_data_log.set(vmid, clogn + 3),
            data_log,
            shadow_ctxts: shadow,
            ..adt0
        };
        prot_and_map_vm_s2pt_spec_h(p, vmid, addr, pte, level, &a1)
    } else {
        cov!("vcpu_run_process.resume");
        Some(RData {
            core_data_log: adt0.core_data_log.set(vmid, clogn + 1),
            data_log,
            shadow_ctxts: shadow,
            ..adt0
        })
    }
}

/// `vcpu_run_switch_to_vm`: load the vCPU's registers and enter the VM.
pub fn vcpu_run_switch_to_vm(p: &Profile, adt: &RData) -> Option<RData> {
    cov!("vcpu_run_switch_to_vm.enter");
    let vmid = adt.cur_vmid;
    let ctxt = adt.shadow_ctxts.get(ctxt_id(vmid, adt.cur_vcpuid));
    let (creg, csts) = (&ctxt.ctxt_regs, &ctxt.ctxt_states);
    let regc1 = vm_el2_restore_state_specx(p, &adt.regs.ctxt_regs, creg, p.c.pools.pt_vttbr(vmid));
    let regt = activate_traps_specx(p, &timer_enable_traps_specx(p, &adt.regs.trap_regs));
    let regc2 = restore_sysregs_specx(creg, csts, &regc1);
    let regc3 = fpsimd_restore_state_specx(creg, &regc2);
    let regc4 = core_to_vm_specx(creg, &regc3);
    Some(RData {
        regs: Ctxt {
            ctxt_regs: regc4,
            trap_regs: regt,
            ..adt.regs.clone()
        },
        icore: false,
        ihost: false,
        ..adt.clone()
    })
}

/// The host asks to run a vCPU (spec-digest §5.3).
pub fn host_vcpu_run_handler_spec(p: &Profile, adt: &RData) -> Option<RData> {
    if (adt.ihost, adt.icore) != (true, false) {
        cov!("host_vcpu_run_handler_spec.wrong_mode");
        return None;
    }
    if adt.halt {
        cov!("host_vcpu_run_handler_spec.already_halted");
        return Some(adt.clone());
    }
    let adt1 = vcpu_run_swith_to_core(p, adt);
    if adt1.halt {
        cov!("host_vcpu_run_handler_spec.switch_halted");
        return Some(adt1);
    }
    let adt2 = vcpu_run_process(p, &adt1)?;
    if adt2.halt {
        cov!("host_vcpu_run_handler_spec.process_halted");
        return Some(adt2);
    }
    cov!("host_vcpu_run_handler_spec.enter_vm");
    vcpu_run_switch_to_vm(p, &adt2)
}

/// `prep_exit_vm`: save the VM's state and prepare what the host may see of this exit.
pub fn prep_exit_vm(p: &Profile, adt: &RData) -> Option<RData> {
    let vmid = adt.cur_vmid;
    let vcpuid = adt.cur_vcpuid;
    let ctxtid = ctxt_id(vmid, vcpuid);
    let ctxt = adt.shadow_ctxts.get(ctxtid).clone();
    let hw = &adt.regs.ctxt_regs;
    let cregs2 = fpsimd_save_state_specx(&save_sysregs_specx(&ctxt.ctxt_regs, hw), hw);
    let rtregs = timer_enable_traps_specx(p, &deactivate_traps_specx(p, &adt.regs.trap_regs));
    let with = |cr: CtxtRegs, cs: CtxtStates, a: &RData| {
        let mut out = a.clone();
        out.regs.trap_regs = rtregs.clone();
        out.shadow_ctxts.set_mut(
            ctxtid,
            Ctxt {
                ctxt_regs: cr,
                ctxt_states: cs,
                ..ctxt.clone()
            },
        );
        out
    };
    let adt1 = if cregs2.ec == ARM_EXCEPTION_TRAP {
        let hsr_ec = shr(cregs2.esr_el2 & ESR_ELx_EC_MASK, ESR_ELx_EC_SHIFT);
        if hsr_ec == ESR_ELx_EC_WFx {
            cov!("prep_exit_vm.wfx");
            with(cregs2, prep_wfx_specx(&ctxt.ctxt_states), adt)
        } else if hsr_ec == ESR_ELx_EC_HVC64 {
            cov!("prep_exit_vm.hvc");
            prep_hvc_spec_h(
                p,
                vmid,
                vcpuid,
                &with(cregs2, ctxt.ctxt_states.clone(), adt),
            )?
        } else if hsr_ec == ESR_ELx_EC_IABT_LOW || hsr_ec == ESR_ELx_EC_DABT_LOW {
            cov!("prep_exit_vm.abort");
            let logn = *adt.data_log.get(vmid);
            let (cs, logn2) = prep_abort_specx(p, &cregs2, &ctxt.ctxt_states, logn, &|k| {
                adt.doracle.call(vmid, k)
            });
            let mut out = with(cregs2, cs, adt);
            out.data_log.set_mut(vmid, logn2);
            out
        } else if !p.q.guest_exception_halts {
            // Deviation `guest_exception_halts`: saved for the host as it is (the pc still at
            // the instruction), nothing pending.
            cov!("prep_exit_vm.exception_to_host");
            with(cregs2, ctxt.ctxt_states.clone(), adt)
        } else {
            cov!("prep_exit_vm.other_class");
            halted(adt)
        }
    } else {
        cov!("prep_exit_vm.interrupt");
        with(cregs2, ctxt.ctxt_states.clone(), adt)
    };
    if adt1.halt {
        cov!("prep_exit_vm.halted");
        return Some(adt1);
    }
    cov!("prep_exit_vm.deactivate");
    let a2 = query_oracle(p, &adt1);
    let r = local_set_vcpu_inactive(p, vmid, vcpuid, &a2.shared);
    Some(apply(a2, AtomicEvent::OVM_INACTIVE(vmid, vcpuid), r))
}

/// `vm_exit_pre_process`: save the exit registers, dispatch; `ret = 1` means "to the host".
pub fn vm_exit_pre_process(p: &Profile, adt: &RData) -> Option<(RData, Z)> {
    let ctxtid = ctxt_id(adt.cur_vmid, adt.cur_vcpuid);
    let mut ctxt = adt.shadow_ctxts.get(ctxtid).clone();
    let hw = &adt.regs.ctxt_regs;
    ctxt.ctxt_regs = exit_populate_fault_specx(&vm_to_core_specx(&ctxt.ctxt_regs, hw), hw);
    let ec = ctxt.ctxt_regs.ec;
    let adt1 = RData {
        shadow_ctxts: adt.shadow_ctxts.set(ctxtid, ctxt),
        icore: true,
        ..adt.clone()
    };
    if ec == ARM_EXCEPTION_TRAP {
        let (adt2, ret) = vm_exit_dispatcher_spec_h(p, adt.cur_vmid, adt.cur_vcpuid, &adt1)?;
        if ret == 0 {
            cov!("vm_exit_pre_process.back_to_guest");
            let ctxt = adt2.shadow_ctxts.get(ctxtid);
            let hw = core_to_vm_specx(&ctxt.ctxt_regs, &adt2.regs.ctxt_regs);
            let out = RData {
                regs: Ctxt {
                    ctxt_regs: hw,
                    ..adt2.regs.clone()
                },
                icore: false,
                ..adt2.clone()
            };
            Some((out, 0))
        } else {
            cov!("vm_exit_pre_process.trap_to_host");
            Some((prep_exit_vm(p, &adt2)?, 1))
        }
    } else if ec == p.c.ARM_EXCEPTION_INTERRUPT {
        cov!("vm_exit_pre_process.interrupt");
        Some((prep_exit_vm(p, &adt1)?, 1))
    } else {
        cov!("vm_exit_pre_process.unknown_exit");
        Some((halted(&adt1), 1))
    }
}

/// `switch_to_host`: restore the host's registers on this CPU.
pub fn switch_to_host(p: &Profile, adt: &RData) -> RData {
    cov!("switch_to_host.switch");
    let vcpuid = adt.curid;
    let ctxt = adt.shadow_ctxts.get(ctxt_id(HOSTVISOR, vcpuid));
    let (cregs, cstates) = (&ctxt.ctxt_regs, &ctxt.ctxt_states);
    let hw1 = host_el2_restore_state_specx(p, &adt.regs.ctxt_regs, p.c.pools.pt_vttbr(HOSTVISOR));
    let hw2 = restore_sysregs_specx(cregs, cstates, &hw1);
    let hw3 = fpsimd_restore_state_specx(cregs, &hw2);
    let hw4 = core_to_host_specx(cregs, &hw3);
    RData {
        cur_vmid: HOSTVISOR,
        regs: Ctxt {
            ctxt_regs: hw4,
            ..adt.regs.clone()
        },
        cur_vcpuid: vcpuid,
        ihost: true,
        icore: false,
        ..adt.clone()
    }
}

/// Any exit from a running VM (spec-digest §5.4).
pub fn vm_exit_handler_spec(p: &Profile, adt: &RData) -> Option<RData> {
    if (adt.ihost, adt.icore) != (false, false) {
        cov!("vm_exit_handler_spec.wrong_mode");
        return None;
    }
    if adt.halt {
        cov!("vm_exit_handler_spec.already_halted");
        return Some(adt.clone());
    }
    // The seed's `when ret, adt' == ...` binds the pair `(adt', ret)`.
    let (adt1, ret) = vm_exit_pre_process(p, adt)?;
    if adt1.halt {
        cov!("vm_exit_handler_spec.halted");
        return Some(adt1);
    }
    if ret == 0 {
        cov!("vm_exit_handler_spec.resume_guest");
        return Some(adt1);
    }
    cov!("vm_exit_handler_spec.to_host");
    Some(switch_to_host(p, &adt1))
}

/// The value a principal reads from a page it does not control: `doracle vmid (data_log
/// vmid)`. §7.2.21: the seed leaves `data_log` as it is (every read of the page sees the
/// same value); the intent consumes the value (`data_log[vmid] += 1`).
fn principal_oracle_read(p: &Profile, adt: &mut RData, vmid: Z) -> Z {
    let logn = *adt.data_log.get(vmid);
    if !p.q.oracle_read_no_advance {
        adt.data_log.set_mut(vmid, logn + 1);
    }
    adt.doracle.call(vmid, logn)
}

/// `set_shadow_ctxt_specx reg val` on the running principal's context `ctxtid`.
fn load_into(adt: &mut RData, ctxtid: Z, reg: Z, val: Z) {
    let ctxt = adt.shadow_ctxts.get(ctxtid).clone();
    let (cr, cs) = set_shadow_ctxt_specx(reg, val, &ctxt.ctxt_regs, &ctxt.ctxt_states);
    adt.shadow_ctxts.set_mut(
        ctxtid,
        Ctxt {
            ctxt_regs: cr,
            ctxt_states: cs,
            ..ctxt
        },
    );
}

/// A load by the principal running on this CPU through its stage-2 table
/// (spec-digest §5.5). `gfn` is the seed's `VZ64 gfn`.
pub fn mem_load_spec(p: &Profile, gfn: Z, reg: Z, adt: &RData) -> Option<RData> {
    if adt.icore {
        cov!("mem_load_spec.in_core");
        return None;
    }
    let mut adt = query_oracle(p, adt);
    let ev = AtomicEvent::OPT_GET(adt.cur_vmid);
    let vmid = adt.cur_vmid;
    let vcpuid = adt.cur_vcpuid;
    let ctxtid = ctxt_id(vmid, vcpuid);
    let val = if vmid == HOSTVISOR {
        let (pfn, _level, _pte) = *adt.shared.npts.get(vmid).pt.get(gfn);
        if pfn == 0 {
            cov!("mem_load_spec.host_unmapped");
            return None;
        }
        if adt.shared.s2page.get(pfn).s2_owner == HOSTVISOR {
            cov!("mem_load_spec.host_page");
            *adt.shared.flatmem.get(pfn)
        } else {
            cov!("mem_load_spec.host_oracle");
            principal_oracle_read(p, &mut adt, vmid)
        }
    } else {
        if adt.shared.vminfos.get(adt.cur_vmid).VS.vm_state != VERIFIED {
            cov!("mem_load_spec.vm_not_verified");
            return None;
        }
        let (pfn, _level, _pte) = *adt.shared.npts.get(vmid).pt.get(gfn);
        if pfn == 0 {
            cov!("mem_load_spec.vm_unmapped");
            return None;
        }
        if adt.shared.s2page.get(pfn).s2_count == 0 {
            cov!("mem_load_spec.vm_page");
            *adt.shared.flatmem.get(pfn)
        } else {
            cov!("mem_load_spec.vm_oracle");
            principal_oracle_read(p, &mut adt, vmid)
        }
    };
    if reg >= X30 {
        cov!("mem_load_spec.bad_reg");
        return None;
    }
    load_into(&mut adt, ctxtid, reg, val);
    log(&mut adt, ev);
    Some(adt)
}

/// A store by the principal running on this CPU through its stage-2 table.
pub fn mem_store_spec(p: &Profile, gfn: Z, reg: Z, adt: &RData) -> Option<RData> {
    if adt.icore {
        cov!("mem_store_spec.in_core");
        return None;
    }
    let mut adt = query_oracle(p, adt);
    let ev = AtomicEvent::OPT_GET(adt.cur_vmid);
    let vmid = adt.cur_vmid;
    let vcpuid = adt.cur_vcpuid;
    let ctxtid = ctxt_id(vmid, vcpuid);
    let ctxt = adt.shadow_ctxts.get(ctxtid);
    let val = get_shadow_ctxt_specx(reg, &ctxt.ctxt_regs, &ctxt.ctxt_states);
    if vmid == HOSTVISOR {
        let (pfn, _level, _pte) = *adt.shared.npts.get(vmid).pt.get(gfn);
        if pfn == 0 {
            cov!("mem_store_spec.host_unmapped");
            return None;
        }
        if adt.shared.s2page.get(pfn).s2_owner == HOSTVISOR {
            cov!("mem_store_spec.host_page");
            adt.shared.flatmem.set_mut(pfn, val);
        } else {
            cov!("mem_store_spec.host_dropped");
        }
    } else {
        if adt.shared.vminfos.get(adt.cur_vmid).VS.vm_state != VERIFIED {
            cov!("mem_store_spec.vm_not_verified");
            return None;
        }
        let (pfn, _level, _pte) = *adt.shared.npts.get(vmid).pt.get(gfn);
        if pfn == 0 {
            cov!("mem_store_spec.vm_unmapped");
            return None;
        }
        if adt.shared.s2page.get(pfn).s2_count == 0 {
            cov!("mem_store_spec.vm_page");
            adt.shared.flatmem.set_mut(pfn, val);
        } else {
            cov!("mem_store_spec.vm_dropped");
        }
    }
    log(&mut adt, ev);
    Some(adt)
}

/// A DMA load by a device of principal `cur_vmid` through SMMU bank `(index, cbndx)`.
pub fn dev_load_spec(
    p: &Profile,
    gfn: Z,
    reg: Z,
    cbndx: Z,
    index: Z,
    adt: &RData,
) -> Option<RData> {
    if adt.icore {
        cov!("dev_load_spec.in_core");
        return None;
    }
    if !is_smmu(index) || !is_smmu_cfg(cbndx) {
        cov!("dev_load_spec.bad_bank");
        return None;
    }
    let mut adt = query_oracle(p, adt);
    let ev = AtomicEvent::OPT_GET(adt.cur_vmid);
    let vmid = adt.cur_vmid;
    let vcpuid = adt.cur_vcpuid;
    let ctxtid = ctxt_id(vmid, vcpuid);
    let smmuid = smmu_id(index, cbndx);
    if *adt.shared.smmu_vmid.get(smmuid) != vmid {
        cov!("dev_load_spec.not_owner");
        return None;
    }
    let spt = adt.shared.spts.spt_pt.get(SMMU_TTBR(index, cbndx)).clone();
    let val = if vmid == HOSTVISOR {
        let (pfn, _pte) = *spt.get(gfn);
        if pfn == 0 {
            cov!("dev_load_spec.host_unmapped");
            return None;
        }
        if adt.shared.s2page.get(pfn).s2_owner == HOSTVISOR {
            cov!("dev_load_spec.host_page");
            *adt.shared.flatmem.get(pfn)
        } else {
            cov!("dev_load_spec.host_oracle");
            principal_oracle_read(p, &mut adt, vmid)
        }
    } else {
        if adt.shared.vminfos.get(adt.cur_vmid).VS.vm_state != VERIFIED {
            cov!("dev_load_spec.vm_not_verified");
            return None;
        }
        let (pfn, _pte) = *spt.get(gfn);
        if pfn == 0 {
            cov!("dev_load_spec.vm_unmapped");
            return None;
        }
        if adt.shared.s2page.get(pfn).s2_count == 0 {
            cov!("dev_load_spec.vm_page");
            *adt.shared.flatmem.get(pfn)
        } else {
            cov!("dev_load_spec.vm_oracle");
            principal_oracle_read(p, &mut adt, vmid)
        }
    };
    if reg >= X30 {
        cov!("dev_load_spec.bad_reg");
        return None;
    }
    load_into(&mut adt, ctxtid, reg, val);
    log(&mut adt, ev);
    Some(adt)
}

/// A DMA store through SMMU bank `(index, cbndx)`.
pub fn dev_store_spec(
    p: &Profile,
    gfn: Z,
    reg: Z,
    cbndx: Z,
    index: Z,
    adt: &RData,
) -> Option<RData> {
    if adt.icore {
        cov!("dev_store_spec.in_core");
        return None;
    }
    if !is_smmu(index) || !is_smmu_cfg(cbndx) {
        cov!("dev_store_spec.bad_bank");
        return None;
    }
    let mut adt = query_oracle(p, adt);
    let ev = AtomicEvent::OPT_GET(adt.cur_vmid);
    let vmid = adt.cur_vmid;
    let vcpuid = adt.cur_vcpuid;
    let ctxtid = ctxt_id(vmid, vcpuid);
    let smmuid = smmu_id(index, cbndx);
    if *adt.shared.smmu_vmid.get(smmuid) != vmid {
        cov!("dev_store_spec.not_owner");
        return None;
    }
    let spt = adt.shared.spts.spt_pt.get(SMMU_TTBR(index, cbndx)).clone();
    let ctxt = adt.shadow_ctxts.get(ctxtid);
    let val = get_shadow_ctxt_specx(reg, &ctxt.ctxt_regs, &ctxt.ctxt_states);
    if vmid == HOSTVISOR {
        let (pfn, _pte) = *spt.get(gfn);
        if pfn == 0 {
            cov!("dev_store_spec.host_unmapped");
            return None;
        }
        if adt.shared.s2page.get(pfn).s2_owner == HOSTVISOR {
            cov!("dev_store_spec.host_page");
            adt.shared.flatmem.set_mut(pfn, val);
        } else {
            cov!("dev_store_spec.host_dropped");
        }
    } else {
        if adt.shared.vminfos.get(adt.cur_vmid).VS.vm_state != VERIFIED {
            cov!("dev_store_spec.vm_not_verified");
            return None;
        }
        let (pfn, _pte) = *spt.get(gfn);
        if pfn == 0 {
            cov!("dev_store_spec.vm_unmapped");
            return None;
        }
        if adt.shared.s2page.get(pfn).s2_count == 0 {
            cov!("dev_store_spec.vm_page");
            adt.shared.flatmem.set_mut(pfn, val);
        } else {
            cov!("dev_store_spec.vm_dropped");
        }
    }
    log(&mut adt, ev);
    Some(adt)
}
