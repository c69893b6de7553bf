//! The SMMUs in the relation (issue 22): an abstraction of each simulated SMMU's registers
//! and of its IOTLB, compared after every step with what the model says KCore must have
//! programmed. The model has no SMMU registers: the expected abstraction is derived from its
//! bank owners (`smmu_vmid`) and the bank tables it holds (`spts`).
//!
//! Registers, per SMMU:
//! * sCR0: client ports enabled (CLIENTPD = 0), unmatched streams fault (USFCFG = 1);
//! * every bank: CBAR of type stage-2 translation with VMID `hw_vmid(owner)` (the owning
//!   VM's, 0 for the host's; a free bank's is unconstrained: KCore leaves the last owner's
//!   there, and no stream reaches the bank), SCTLR.M = 1 and SCTLR.E = 0, the TCR fields
//!   that shape the walk as KCore's, CBA2R.VA64, TTBR0 = KCore's root for the bank;
//! * which stream reaches which bank: a VM's bank `n` is reached by stream `n` exactly
//!   (group `n`: SMR = VALID | n, S2CR = translate to `n`), no other valid group matches
//!   stream `n`, and no other group translates to `n`; no group translates to a free bank,
//!   and none bypasses (whether its SMR is valid or not: the host may validate an SMR that
//!   matches no VM's stream). (Routes to the host's own banks are the host's to choose.)
//!
//! IOTLB: no entry for a translation the tables no longer hold. The IOTLB is probed, on a
//! copy of the SMMU (so nothing of the machine changes), at every IOVA page a device
//! accessed or the model's tables mapped since boot (an entry only comes from a walk at one
//! of them), and where firmware is likely to have left one (`LIKELY_IOVAS`): a translation served from the IOTLB through bank `n` must be one that some
//! bank with `n`'s VMID maps in the model's tables now.

use corevisor_kcore::consts::{COREVISOR, HOSTVISOR, INVALID};
use corevisor_kcore::smmu::{SmmuPool, BANKS, SMMU_NUM};
use corevisor_kcore::smmu_hw::{field, hw_vmid, reg, smr_matches, CB_BASE, CB_PAGE, STREAM_GROUPS};
use corevisor_sim::mem::SimMemory;
use corevisor_sim::smmu::{Access, Fault, Route, Smmu, Width};
use corevisor_spec::consts::{smmu_id, SMMU_TTBR};
use corevisor_spec::state::Shared;
use corevisor_spec::Z;
use std::collections::BTreeSet;

/// Who a bank belongs to, as the model says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Host,
    Vm(u32),
    Free,
}

fn owner(model: &Shared, i: u32, n: u32) -> Owner {
    let v = *model.smmu_vmid.get(smmu_id(Z::from(i), Z::from(n)));
    match u32::try_from(v).unwrap_or(INVALID) {
        HOSTVISOR => Owner::Host,
        v if v < COREVISOR => Owner::Vm(v),
        _ => Owner::Free,
    }
}

fn vmid_of(o: Owner) -> u64 {
    match o {
        Owner::Vm(v) => hw_vmid(v),
        _ => 0,
    }
}

fn r32(s: &mut Smmu, off: u64) -> u64 {
    s.read(off, Width::W32).unwrap_or(u64::MAX)
}

/// One bank's registers as the relation sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BankRegs {
    cbar_type: u64,
    vmid: u64,
    m: bool,
    e: bool,
    tcr: u64,
    va64: bool,
    ttbr0: u64,
}

/// The first `smmus` SMMUs' registers and IOTLBs (those of the machine's shape, which
/// KCore programs) against what the model says KCore programmed: one message per
/// difference. `iovas`: the IOVA pages to probe the IOTLB at, per SMMU.
pub fn compare_smmus(
    smmus: u32,
    mem: &SimMemory,
    smmu_base: u64,
    model: &Shared,
    iovas: &BTreeSet<(u32, u64)>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut bus = mem.smmus();
    let count = (bus.len() as u32).min(SMMU_NUM).min(smmus);
    for i in 0..count {
        let real = bus.smmu(i as usize).clone();
        registers(&real, i, smmu_base, model, &mut out);
        let probes: Vec<u64> = iovas.range((i, 0)..(i + 1, 0)).map(|&(_, v)| v).collect();
        if !probes.is_empty() {
            stale_entries(&real, i, mem, model, &probes, &mut out);
        }
    }
    out
}

fn registers(real: &Smmu, i: u32, smmu_base: u64, model: &Shared, out: &mut Vec<String>) {
    let mut s = real.clone();
    let s0 = r32(&mut s, reg::SCR0);
    let ports = (s0 & field::SCR0_CLIENTPD != 0, s0 & field::SCR0_USFCFG != 0);
    if ports != (false, true) {
        out.push(format!(
            "SMMU {i} registers: sCR0 (CLIENTPD, USFCFG) core {ports:?}, expected (false, true)"
        ));
    }
    let pool = SmmuPool::boot(smmu_base);
    let smr: Vec<u64> = (0..STREAM_GROUPS)
        .map(|k| r32(&mut s, reg::SMR + 4 * k))
        .collect();
    let s2cr: Vec<u64> = (0..STREAM_GROUPS)
        .map(|k| r32(&mut s, reg::S2CR + 4 * k))
        .collect();
    let ty = |v: u64| (v >> field::S2CR_TYPE_SHIFT) & 3;
    let to =
        |k: usize, n: u64| ty(s2cr[k]) == field::S2CR_TRANSLATE && s2cr[k] & field::S2CR_CBNDX == n;
    let bypass: Vec<usize> = (0..STREAM_GROUPS as usize)
        .filter(|&k| ty(s2cr[k]) == field::S2CR_BYPASS)
        .collect();
    if !bypass.is_empty() {
        out.push(format!(
            "SMMU {i} registers: groups {bypass:?} bypass translation, expected none"
        ));
    }
    for n in 0..BANKS {
        let o = owner(model, i, n);
        let page = CB_BASE + n as u64 * CB_PAGE;
        let cbar = r32(&mut s, reg::CBAR + 4 * n as u64);
        let sctlr = r32(&mut s, page + reg::CB_SCTLR);
        let have = BankRegs {
            cbar_type: (cbar >> field::CBAR_TYPE_SHIFT) & 3,
            vmid: cbar & field::CBAR_VMID,
            m: sctlr & field::SCTLR_M != 0,
            e: sctlr & field::SCTLR_E != 0,
            tcr: r32(&mut s, page + reg::CB_TCR) & field::TCR_FIXED,
            va64: r32(&mut s, reg::CBA2R + 4 * n as u64) & field::CBA2R_VA64 != 0,
            ttbr0: s.read(page + reg::CB_TTBR0, Width::W64).unwrap_or(u64::MAX),
        };
        let want = BankRegs {
            cbar_type: 0,
            // A free bank keeps the VMID it had (KCore does not reprogram it on
            // SMMU_FREE_PGD): no stream reaches it, so its VMID tags nothing.
            vmid: if o == Owner::Free {
                have.vmid
            } else {
                vmid_of(o)
            },
            m: true,
            e: false,
            tcr: field::TCR_KCORE,
            va64: true,
            ttbr0: pool.root(i, n),
        };
        if have != want {
            out.push(format!(
                "SMMU {i} registers: bank {n} ({o:?}) core {have:?}, expected {want:?}"
            ));
        }
        let nn = n as u64;
        let others = |f: &dyn Fn(usize) -> bool| -> Vec<usize> {
            (0..STREAM_GROUPS as usize)
                .filter(|&k| k as u64 != nn && f(k))
                .collect()
        };
        match o {
            Owner::Vm(_) => {
                let own = (smr[n as usize], s2cr[n as usize]);
                let want = (
                    field::SMR_VALID | nn,
                    (field::S2CR_TRANSLATE << field::S2CR_TYPE_SHIFT) | nn,
                );
                if own != want {
                    out.push(format!(
                        "SMMU {i} registers: stream {n} to the VM's bank {n}: group {n} (SMR, S2CR) core ({:#x}, {:#x}), expected ({:#x}, {:#x})",
                        own.0, own.1, want.0, want.1
                    ));
                }
                let matching = others(&|k| smr_matches(smr[k], nn));
                let into = others(&|k| to(k, nn));
                if !matching.is_empty() || !into.is_empty() {
                    out.push(format!(
                        "SMMU {i} registers: the VM's bank {n}: other groups match stream {n} {matching:?} or translate to it {into:?}, expected none"
                    ));
                }
            }
            Owner::Free => {
                let into: Vec<usize> = (0..STREAM_GROUPS as usize).filter(|&k| to(k, nn)).collect();
                if !into.is_empty() {
                    out.push(format!(
                        "SMMU {i} registers: groups {into:?} translate to the free bank {n}, expected none"
                    ));
                }
            }
            Owner::Host => {}
        }
    }
}

/// Translations the IOTLB of SMMU `i` serves that no bank with the VMID maps any more.
fn stale_entries(
    real: &Smmu,
    i: u32,
    mem: &SimMemory,
    model: &Shared,
    probes: &[u64],
    out: &mut Vec<String>,
) {
    let owners: Vec<Owner> = (0..BANKS).map(|n| owner(model, i, n)).collect();
    let holds = |vmid: u64, iova: u64, pa: u64| {
        (0..BANKS).any(|b| {
            let (pfn, pte) = *model
                .spts
                .spt_pt
                .get(SMMU_TTBR(Z::from(i), Z::from(b)))
                .get(Z::from(iova / 4096));
            vmid_of(owners[b as usize]) == vmid && pte != 0 && pfn == Z::from(pa / 4096)
        })
    };
    for n in 0..BANKS {
        // A copy routed so that stream 0 reaches bank `n` with translation on: a lookup
        // there finds whatever the IOTLB holds for the bank's VMID.
        let mut c = real.clone();
        let w = |c: &mut Smmu, off: u64, v: u64| {
            let _ = c.write(off, Width::W32, v);
        };
        w(
            &mut c,
            reg::SCR0,
            field::SCR0_USFCFG | (1 << field::SCR0_SMCFCFG_SHIFT),
        );
        for k in 0..STREAM_GROUPS {
            w(
                &mut c,
                reg::SMR + 4 * k,
                if k == 0 { field::SMR_VALID } else { 0 },
            );
        }
        w(
            &mut c,
            reg::S2CR,
            (field::S2CR_TRANSLATE << field::S2CR_TYPE_SHIFT) | n as u64,
        );
        let page = CB_BASE + n as u64 * CB_PAGE;
        let sctlr = r32(&mut c, page + reg::CB_SCTLR);
        w(&mut c, page + reg::CB_SCTLR, sctlr | field::SCTLR_M);
        let vmid = r32(&mut c, reg::CBAR + 4 * n as u64) & field::CBAR_VMID;
        for &iova in probes {
            let mut t = c.translate(&mem.phys, 0, iova, Access::Read);
            if matches!(t, Err(e) if matches!(e.fault, Fault::Permission { .. })) {
                t = c.translate(&mem.phys, 0, iova, Access::Write);
            }
            let Ok(t) = t else { continue };
            if t.cached && t.route == Route::Bank(n) && !holds(vmid, iova, t.pa) {
                out.push(format!(
                    "SMMU {i} IOTLB: bank {n} (VMID {vmid}) translates IOVA {iova:#x} to {:#x} from a cached entry, and no bank with that VMID maps it there in the model's tables",
                    t.pa
                ));
            }
        }
    }
}
