//! The core's ownership operations refine the model (issue 4, first part): random sequences
//! of operations applied to KCore (real tables and metadata in simulated memory) and to the
//! model (`Profile::ARM`) from the same boot state give `abs(core) == model` after every
//! operation, including halts and pool exhaustion; the architectural walker agrees with
//! `abs`; a missing TLB invalidation is caught as a stale translation.

use corevisor_check::abs::{abs_npt, abs_shared, abs_shared_but_pages};
use corevisor_kcore::consts as kc;
use corevisor_kcore::hw::{Discard, Hw, Untrusted};
use corevisor_kcore::layout::Layout;
use corevisor_kcore::state::Core;
use corevisor_sim::mem::SimMemory;
use corevisor_spec::concurrent::*;
use corevisor_spec::consts::*;
use corevisor_spec::state::Shared;
use corevisor_spec::{Machine, Profile, Z};
use proptest::prelude::*;

const P: &Profile = &Profile::ARM;
const RAM: u64 = 0x4000_0000;

fn machine() -> Machine {
    Machine {
        ram_base: RAM as Z,
        ram_mib: 52,
        kcore_mib: 24,
        ..Machine::default()
    }
}

/// KCore's tables and metadata in its own region of the machine's RAM, as the core plans it.
fn layout(m: &Machine) -> Layout {
    corevisor_check::engine::kcore_layout(P, m).expect("KCore's region holds its state")
}

#[derive(Default)]
struct Recorder(Vec<u64>);

impl Untrusted for Recorder {
    fn record(&mut self, _principal: u32, value: u64) {
        self.0.push(value);
    }
    fn record_core(&mut self, _vmid: u32, _value: u64) {}
}

#[derive(Clone, Debug)]
enum Op {
    HostWrite(u64, u64),
    MapHost(u64),
    Assign(u32, u64, u64),
    MapPfnVm(u32, u64, u64, u32),
    Clear(u32, u64),
    Grant(u32, u64),
    Revoke(u32, u64),
    /// Harness: VERIFY_VM_IMAGE's state change (the hypercall is not in the core yet).
    SetVmState(u32, u32),
    GenVmid,
    RegisterKvm(u32),
    RegisterVcpu(u32, u32),
    SetActive(u32, u32),
    SetInactive(u32, u32),
    Poweroff(u32),
    SetBootInfo(u32, u64, u64),
    RemapImage(u32, u64, u32),
    MapIo(u32, u64, u64),
    /// Harness: the VM's info lock is held (the seed's `hlock[INFO_ID + v] = false`).
    HoldInfoLock(u32),
    VerifyVm(u32),
    /// The loops built on the operations.
    ProtMap(u32, u64, u64, u32),
    ClearRange(u32, u64, u64),
    Ioremap(u32, u64, u64, u64),
    Share(u32, u64, u64, bool),
    VerifyLoad(u32),
    SmmuAlloc(u32, u32, u32),
    SmmuFree(u32, u32),
    SmmuAssign(u32, u32, u64, u64),
    SmmuMap(u32, u32, u64, u64),
    SmmuClear(u64, u32, u32),
}

/// Pages the operations pick from: host RAM (two 2 MiB blocks' worth of interesting ones),
/// KCore's region, a device page, page 0.
fn pfn() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => (0u64..6).prop_map(|i| RAM / 4096 + 0x200 + i),
        2 => (0u64..3).prop_map(|i| RAM / 4096 + i),
        1 => Just((RAM + (28 << 20)) / 4096),
        1 => Just(0x9000u64),
        1 => Just(0u64),
    ]
}

/// Pages and IOVA pages the SMMU operations pick from (few, so map follows assign often).
fn spfn() -> impl Strategy<Value = u64> {
    prop_oneof![4 => Just(RAM / 4096 + 0x200), 2 => Just(RAM / 4096 + 0x201), 1 => pfn()]
}

fn sgfn() -> impl Strategy<Value = u64> {
    prop_oneof![4 => Just(0x10u64), 1 => Just(0x11u64)]
}

fn op() -> impl Strategy<Value = Op> {
    let vm = 1u32..3;
    let gfn = prop_oneof![(0u64..4).prop_map(|i| 0x8_0000 + i), Just(0x8_0200u64)];
    prop_oneof![
        2 => (pfn(), any::<u64>()).prop_map(|(p, v)| Op::HostWrite(p, v)),
        4 => pfn().prop_map(Op::MapHost),
        4 => (vm.clone(), gfn.clone(), pfn()).prop_map(|(v, g, p)| Op::Assign(v, g, p)),
        // Level-2 maps come only with 2 MiB-aligned pages: the entry points refuse others
        // (quirk `unaligned_block_mapped`).
        2 => (vm.clone(), gfn.clone(), pfn()).prop_map(|(v, g, p)| Op::MapPfnVm(v, g * 4096, p, 3)),
        1 => (vm.clone(), gfn, prop_oneof![Just(RAM / 4096 + 0x200), Just(RAM / 4096)]).prop_map(|(v, g, p)| Op::MapPfnVm(v, g * 4096, p, 2)),
        2 => (vm.clone(), pfn()).prop_map(|(v, p)| Op::Clear(v, p)),
        3 => (vm.clone(), pfn()).prop_map(|(v, p)| Op::Grant(v, p)),
        2 => (vm.clone(), pfn()).prop_map(|(v, p)| Op::Revoke(v, p)),
        1 => (0u32..3, prop_oneof![Just(2u32), Just(3u32), Just(4u32)]).prop_map(|(v, s)| Op::SetVmState(v, s)),
        2 => (0u32..2, 0u32..3).prop_map(|(cb, v)| Op::SmmuAlloc(cb, v, 0)),
        1 => (0u32..2).prop_map(|cb| Op::SmmuFree(cb, 0)),
        2 => (0u32..2, spfn(), sgfn()).prop_map(|(cb, p, g)| Op::SmmuAssign(cb, 0, p, g)),
        3 => (0u32..2, sgfn(), spfn()).prop_map(|(cb, g, p)| Op::SmmuMap(cb, 0, g * 4096, (p * 4096) | 0x7C3)),
        1 => (sgfn(), 0u32..2).prop_map(|(g, cb)| Op::SmmuClear(g * 4096, cb, 0)),
    ]
}

/// Both sides, plus the squeeze: pools of some principals start a few pages from their end.
struct Pair {
    core: Core<SimMemory>,
    model: Shared,
}

impl Pair {
    /// `squeeze`: principal `v`'s pool sections (level-1, level-2, leaf tables) left with
    /// `k` free pages each.
    fn new(squeeze: &[(u32, [u64; 3])]) -> Pair {
        let m = machine();
        let mut core = Core::boot(SimMemory::new(), layout(&m));
        let mut model = m.initial_shared(P);
        for &(v, [k1, k2, k3]) in squeeze {
            let pool = core.npt[v as usize].get_mut();
            pool.pgd_next = kc::pud_start(v) - k1 * 4096;
            pool.pud_next = kc::pmd_start(v) - k2 * 4096;
            pool.pmd_next = kc::pool_end(v) - k3 * 4096;
            let mut n = model.npts.get(Z::from(v)).clone();
            let pages = |k: u64| Z::from(k) * 4096;
            n.pt_pgd_next = P.c.pools.pud_start(Z::from(v)) - pages(k1);
            n.pt_pud_next = P.c.pools.pmd_start(Z::from(v)) - pages(k2);
            n.pt_pmd_next = P.c.pools.pool_end(Z::from(v)) - pages(k3);
            model.npts.set_mut(Z::from(v), n);
        }
        Pair { core, model }
    }

    /// Applies `op` to both; returns the two halt flags.
    fn apply(&mut self, op: &Op) -> (bool, bool) {
        if let Some(r) = self.apply_loop(op) {
            return r;
        }
        if let Some(r) = self.apply_smmu(op) {
            return r;
        }
        let z = Z::from;
        let mut rec = Recorder::default();
        let c = &self.core;
        let (core_halt, (sdt, model_halt)) = match *op {
            Op::HostWrite(pfn, v) => {
                // The host writes a page it owns (the model's mem_store for the host).
                if c.page(pfn).owner == kc::HOSTVISOR {
                    c.hw.write64(pfn * 4096, v);
                    self.model.flatmem.set_mut(z(pfn), z(v));
                }
                (false, (self.model.clone(), false))
            }
            Op::MapHost(pfn) => (
                c.local_map_host(pfn * 4096, &mut Discard).is_err(),
                local_map_host_declared(P, &machine().mmio, z(pfn * 4096), &self.model),
            ),
            Op::Assign(v, g, pfn) => {
                let h = c.local_assign_pfn_to_vm(v, g, pfn, &mut rec).is_err();
                let vals = rec.0.clone();
                let (s, mh, _) = local_assign_pfn_to_vm(
                    P,
                    z(v as u64),
                    z(g),
                    z(pfn),
                    &|k| z(vals[k as usize]),
                    0,
                    &self.model,
                );
                (h, (s, mh))
            }
            Op::MapPfnVm(v, a, pfn, l) => (
                c.local_map_pfn_vm(v, a, pfn * 4096, l, &mut Discard)
                    .is_err(),
                local_map_pfn_vm(
                    P,
                    z(v as u64),
                    z(a),
                    z(pfn * 4096),
                    z(l as u64),
                    &self.model,
                ),
            ),
            Op::Clear(v, pfn) => (
                c.local_clear_vm_page(v, pfn, &mut Discard).is_err(),
                local_clear_vm_page(P, z(v as u64), z(pfn), &self.model),
            ),
            Op::Grant(v, pfn) => (
                c.local_grant_vm_page(v, pfn, &mut Discard).is_err(),
                local_grant_vm_page(P, z(v as u64), z(pfn), &self.model),
            ),
            // A page given to a VM through its SMMU has count INVALID until the VM faults it
            // in, which normalises the count (quirk `assign_discards_normalised`); only then
            // can the VM's revoke loop find it in its table. The model would decrement
            // INVALID here, a state the entry points never reach and the core's 8-byte
            // metadata cannot hold, so the harness does not ask for it.
            Op::Revoke(_, pfn) if self.model.s2page.get(z(pfn)).s2_count == INVALID => {
                (false, (self.model.clone(), false))
            }
            Op::Revoke(v, pfn) => {
                let h = c.local_revoke_vm_page(v, pfn, &mut rec).is_err();
                let vals = rec.0.clone();
                let (s, mh, _) = local_revoke_vm_page(
                    P,
                    z(v as u64),
                    z(pfn),
                    &|k| z(vals[k as usize]),
                    0,
                    &self.model,
                );
                (h, (s, mh))
            }
            _ => unreachable!("SMMU and harness operations are applied by apply_smmu"),
        };
        self.model = sdt;
        (core_halt, model_halt)
    }

    /// Loops run on the model's `RData` (its `need`s must hold: a harness-held lock makes
    /// the loop undefined, so the op is skipped on both sides then). The values the core
    /// recorded are the model's data-oracle stream.
    fn apply_loop(&mut self, op: &Op) -> Option<(bool, bool)> {
        use corevisor_spec::aux::*;
        let z = Z::from;
        let is_loop = matches!(
            op,
            Op::ProtMap(..)
                | Op::ClearRange(..)
                | Op::Ioremap(..)
                | Op::Share(..)
                | Op::VerifyLoad(..)
        );
        if !is_loop {
            return None;
        }
        if self.model.hlock.entries().any(|(_, held)| !held) {
            return Some((false, false));
        }
        let mut rec = Recorder::default();
        let c = &self.core;
        let (h, vmid) = match *op {
            // A page given through a VM's SMMU keeps count INVALID until faulted in; the
            // model's revoke would decrement it (see Op::Revoke): not asked for.
            Op::Share(_, a, n, true)
                if (0..n).any(|i| self.model.s2page.get(z(a / 4096 + i)).s2_count == INVALID) =>
            {
                return Some((false, false))
            }
            Op::ProtMap(v, a, pfn, l) => (
                c.prot_and_map_vm_s2pt(v, a, pfn * 4096, l, &mut rec)
                    .is_err(),
                v,
            ),
            Op::ClearRange(v, pfn, n) => (c.clear_vm_range(v, pfn, n, &mut Discard).is_err(), v),
            Op::Ioremap(v, g, a, n) => (c.ioremap_range(v, g, a, n, &mut Discard).is_err(), v),
            Op::Share(v, a, n, revoke) => (c.share_range(v, a, n, revoke, &mut rec).is_err(), v),
            Op::VerifyLoad(v) => (c.verify_and_load(v, &mut rec).is_err(), v),
            _ => unreachable!("matched above"),
        };
        let mut adt = machine().initial_state(P, 0);
        adt.shared = self.model.clone();
        for (k, v) in rec.0.iter().enumerate() {
            adt.doracle.put(z(vmid as u64), k as Z, z(*v));
        }
        let v = z(vmid as u64);
        let out = match *op {
            Op::ProtMap(_, a, pfn, l) => {
                prot_and_map_vm_s2pt_spec_h(P, v, z(a), z(pfn * 4096), z(l as u64), &adt)
            }
            Op::ClearRange(_, pfn, n) => clear_vm_loop_h(P, z(n), z(pfn), v, &adt).map(|r| r.1),
            Op::Ioremap(_, g, a, n) => {
                kvm_phys_addr_ioremap_loop_h(P, z(n), v, z(g), z(a), &adt).map(|r| r.2)
            }
            Op::Share(_, a, n, false) => grant_stage2_loop(P, z(n), v, z(a), &adt).map(|r| r.1),
            Op::Share(_, a, n, true) => revoke_stage2_loop(P, z(n), v, z(a), &adt).map(|r| r.1),
            Op::VerifyLoad(_) => {
                let cnt = adt.shared.vminfos.get(v).VB.vm_next_load_info;
                verify_and_load_loop_h(P, cnt, v, 0, &adt).map(|r| r.1)
            }
            _ => unreachable!("matched above"),
        }
        .expect("the loop's locks are free");
        self.model = out.shared;
        Some((h, out.halt))
    }

    fn apply_smmu(&mut self, op: &Op) -> Option<(bool, bool)> {
        let z = Z::from;
        let c = &mut self.core;
        let m = &self.model;
        let (h, (sdt, mh)) = match *op {
            Op::SetVmState(v, st) => {
                c.vms[v as usize].get_mut().state = st;
                let mut s = m.clone();
                let mut info = s.vminfos.get(z(v as u64)).clone();
                info.VS.vm_state = z(st as u64);
                s.vminfos.set_mut(z(v as u64), info);
                (false, (s, false))
            }
            Op::SmmuAlloc(cb, v, i) => (
                c.local_alloc_smmu_pgd(cb, v, i, 8, &mut Discard).is_err(),
                local_alloc_smmu_pgd(P, z(cb as u64), z(v as u64), z(i as u64), 8, m),
            ),
            Op::SmmuFree(cb, i) => (
                c.local_free_smmu_pgd(cb, i, &mut Discard).is_err(),
                local_free_smmu_pgd(P, z(cb as u64), z(i as u64), m),
            ),
            Op::SmmuAssign(cb, i, pfn, g) => (
                c.local_smmu_assign_page(cb, i, pfn, g, &mut Discard)
                    .is_err(),
                local_smmu_assign_page(P, z(cb as u64), z(i as u64), z(pfn), z(g), m),
            ),
            Op::SmmuMap(cb, i, iova, pte) => (
                c.local_smmu_map_page(cb, i, iova, pte, &mut Discard)
                    .is_err(),
                local_smmu_map_page(P, z(cb as u64), z(i as u64), z(iova), z(pte), m),
            ),
            Op::SmmuClear(iova, cb, i) => (
                c.local_smmu_clear(iova, cb, i, &mut Discard).is_err(),
                local_smmu_clear(P, z(iova), z(cb as u64), z(i as u64), m),
            ),
            Op::GenVmid => (
                c.local_gen_vmid(&mut Discard).is_err(),
                local_gen_vmid(P, m),
            ),
            Op::RegisterKvm(v) => (
                c.local_register_kvm(v, &mut Discard).is_err(),
                local_register_kvm(P, z(v as u64), m),
            ),
            Op::RegisterVcpu(v, cpu) => (
                c.local_register_vcpu(v, cpu, &mut Discard).is_err(),
                local_register_vcpu(P, z(v as u64), z(cpu as u64), m),
            ),
            Op::SetActive(v, cpu) => (
                c.local_set_vcpu_active(v, cpu, &mut Discard).is_err(),
                local_set_vcpu_active(P, z(v as u64), z(cpu as u64), m),
            ),
            Op::SetInactive(v, cpu) => (
                c.local_set_vcpu_inactive(v, cpu, &mut Discard).is_err(),
                local_set_vcpu_inactive(P, z(v as u64), z(cpu as u64), m),
            ),
            Op::Poweroff(v) => (
                c.local_set_vm_poweroff(v, &mut Discard).is_err(),
                local_set_vm_poweroff(P, z(v as u64), m),
            ),
            Op::SetBootInfo(v, la, sz) => (
                c.local_set_boot_info(v, la, sz, &mut Discard).is_err(),
                local_set_boot_info(P, z(v as u64), z(la), z(sz), m),
            ),
            Op::RemapImage(v, pfn, i) => (
                c.local_remap_vm_image(v, pfn, i, &mut Discard).is_err(),
                local_remap_vm_image(P, z(v as u64), z(pfn), z(i as u64), m),
            ),
            Op::HoldInfoLock(v) => {
                c.mark_poisoned(kc::INFO_ID + v, true);
                let mut s = m.clone();
                s.hlock.set_mut(INFO_ID + z(v as u64), false);
                (false, (s, false))
            }
            Op::VerifyVm(v) => (
                c.local_verify_vm(v, &mut Discard).is_err(),
                local_verify_vm(P, z(v as u64), m),
            ),
            Op::MapIo(v, gpa, pa) => (
                c.local_map_io(v, gpa, pa, &mut Discard).is_err(),
                local_map_io(P, z(v as u64), z(gpa), z(pa), m),
            ),
            _ => return None,
        };
        self.model = sdt;
        Some((h, mh))
    }

    fn abs(&self) -> Shared {
        abs_shared(&self.core, &self.model)
    }
}

/// Every leaf `abs` reports translates in the MMU or SMMU walker to that page with the
/// descriptor's permissions; an absent or invalid leaf does not translate.
fn walker_agrees(pair: &Pair) -> Result<(), String> {
    for v in 0..=2u32 {
        let npt = abs_npt(&pair.core, v);
        let root = pair.core.layout.pt.root(v);
        let mut probes: Vec<Z> = npt.pt.entries().map(|(g, _)| g).collect();
        probes.extend([
            0x8_0000,
            0x8_0001,
            0x8_0005,
            0x8_0400,
            Z::from(RAM / 4096 + 0x200),
            Z::from(RAM / 4096 + 7),
        ]);
        for gfn in probes {
            let (pfn, _, pte) = *npt.pt.get(gfn);
            let got = pair.core.hw.walk(root, (gfn as u64) * 4096);
            match got {
                None if pfn == 0 || pte & 1 == 0 => {}
                Some(t) if pte & 1 == 1 && t.pa == (pfn as u64) * 4096 => {
                    let s2ap = (pte >> 6) & 3;
                    if (t.perms.read, t.perms.write) != (s2ap & 1 != 0, s2ap & 2 != 0) {
                        return Err(format!(
                            "principal {v} gfn {gfn:#x}: permissions {:?} vs descriptor {pte:#x}",
                            t.perms
                        ));
                    }
                }
                other => {
                    return Err(format!(
                        "principal {v} gfn {gfn:#x}: walker {other:?}, abs ({pfn:#x}, {pte:#x})"
                    ))
                }
            }
        }
    }
    // Every SMMU leaf translates in the SMMU walker to its page; nothing else does.
    let spt = corevisor_check::abs::abs_spt(&pair.core);
    for index in 0..2u32 {
        for cb in 0..8u32 {
            let ttbr = corevisor_kcore::smmu::smmu_ttbr(index, cb) as Z;
            let root = pair.core.spt.read().root(index, cb);
            let leaves = spt.spt_pt.get(ttbr);
            let mut probes: Vec<Z> = leaves.entries().map(|(g, _)| g).collect();
            probes.extend([0x10, 0x11, 0x12]);
            for gfn in probes {
                let (pfn, pte) = *leaves.get(gfn);
                let got = pair.core.hw.walk_smmu(root, (gfn as u64) * 4096);
                let ok = match got {
                    None => pfn == 0 || pte & 3 != 3,
                    Some(t) => pte & 3 == 3 && t.pa == (pfn as u64) * 4096,
                };
                if !ok {
                    return Err(format!("SMMU {index} bank {cb} iova page {gfn:#x}: walker {got:?}, abs ({pfn:#x}, {pte:#x})"));
                }
            }
        }
    }
    Ok(())
}

fn run_sequence(squeeze: &[(u32, [u64; 3])], ops: &[Op]) -> Result<(), TestCaseError> {
    let mut pair = Pair::new(squeeze);
    prop_assert_eq!(pair.abs(), pair.model.clone(), "boot states differ");
    for (i, op) in ops.iter().enumerate() {
        let (ch, mh) = pair.apply(op);
        prop_assert_eq!(ch, mh, "op {} {:?}: halt flags differ", i, op);
        let a = pair.abs();
        if a != pair.model {
            for v in 0..=COREVISOR {
                prop_assert_eq!(
                    a.npts.get(v),
                    pair.model.npts.get(v),
                    "op {} {:?}: npt of {}",
                    i,
                    op,
                    v
                );
            }
            prop_assert_eq!(&a.s2page, &pair.model.s2page, "op {} {:?}: s2page", i, op);
            prop_assert_eq!(
                &a.flatmem,
                &pair.model.flatmem,
                "op {} {:?}: flatmem",
                i,
                op
            );
            prop_assert_eq!(&a.hlock, &pair.model.hlock, "op {} {:?}: hlock", i, op);
            prop_assert_eq!(&a.spts, &pair.model.spts, "op {} {:?}: spts", i, op);
            prop_assert_eq!(
                &a.smmu_vmid,
                &pair.model.smmu_vmid,
                "op {} {:?}: smmu_vmid",
                i,
                op
            );
            prop_assert_eq!(
                &a.vminfos,
                &pair.model.vminfos,
                "op {} {:?}: vminfos",
                i,
                op
            );
        }
        walker_agrees(&pair).map_err(|e| TestCaseError::fail(format!("op {i} {op:?}: {e}")))?;
        if ch {
            break;
        }
    }
    Ok(())
}

/// VM-record sequences: registration, boot segments, remapping, devices, vCPU states.
fn vm_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::GenVmid),
        3 => (1u32..3).prop_map(Op::RegisterKvm),
        3 => (1u32..3, 0u32..3).prop_map(|(v, c)| Op::RegisterVcpu(v, c)),
        1 => (1u32..3, Just(3u32)).prop_map(|(v, s)| Op::SetVmState(v, s)),
        1 => (1u32..3, 0u32..3).prop_map(|(v, c)| Op::SetActive(v, c)),
        1 => (1u32..3, 0u32..3).prop_map(|(v, c)| Op::SetInactive(v, c)),
        1 => (1u32..3).prop_map(Op::Poweroff),
        3 => (1u32..3, prop_oneof![Just(0x800_0000u64), Just(0x800_1000u64)], prop_oneof![Just(0u64), Just(4096u64), Just(9000u64), Just(0x1F0_0000u64)]).prop_map(|(v, a, s)| Op::SetBootInfo(v, a, s)),
        4 => (1u32..3, pfn(), 0u32..3).prop_map(|(v, p, i)| Op::RemapImage(v, p, i)),
        2 => (1u32..3, prop_oneof![Just(0x900_0000u64), Just(0x1000_0000u64)], prop_oneof![Just(0x900_0000u64), Just(RAM)]).prop_map(|(v, g, a)| Op::MapIo(v, g, a)),
        1 => (1u32..3).prop_map(Op::HoldInfoLock),
        2 => (1u32..3).prop_map(Op::VerifyVm),
        2 => (1u32..3, 0u32..2).prop_map(|(v, i)| Op::Ioremap(v, 0x900_0000 + u64::from(i) * 0x1000, 0x900_0000, 2)),
        3 => (1u32..3).prop_map(Op::VerifyLoad),
        2 => (1u32..3, prop_oneof![Just(0x800_0000u64), Just(0x800_1000u64)], 1u64..3, any::<bool>()).prop_map(|(v, a, n, r)| Op::Share(v, a, n, r)),
        2 => (1u32..3, prop_oneof![Just(0x900_0000u64), Just(0x1000_0000u64)], pfn(), prop_oneof![3 => Just(3u32), 1 => Just(2u32)]).prop_map(|(v, a, p, l)| Op::ProtMap(v, a, p, l)),
        1 => (1u32..3, Just(RAM / 4096 + 0x200), 1u64..600).prop_map(|(v, p, n)| Op::ClearRange(v, p, n)),
    ]
}

/// SMMU-only sequences: the assign → map → clear → free chains happen often here.
fn smmu_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u32..2, 1u32..3).prop_map(|(cb, v)| Op::SmmuAlloc(cb, v, 0)),
        1 => (1u32..3, prop_oneof![Just(2u32), Just(4u32)]).prop_map(|(v, s)| Op::SetVmState(v, s)),
        1 => (0u32..2).prop_map(|cb| Op::SmmuFree(cb, 0)),
        3 => (0u32..2, Just(RAM / 4096 + 0x200), sgfn()).prop_map(|(cb, p, g)| Op::SmmuAssign(cb, 0, p, g)),
        3 => (0u32..2, Just(0x10u64), Just(RAM / 4096 + 0x200)).prop_map(|(cb, g, p)| Op::SmmuMap(cb, 0, g * 4096, (p * 4096) | 0x7C3)),
        2 => (sgfn(), 0u32..2).prop_map(|(g, cb)| Op::SmmuClear(g * 4096, cb, 0)),
        1 => Just(Op::MapHost(RAM / 4096 + 0x200)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn vm_record_ops_refine_the_model(ops in prop::collection::vec(vm_op(), 1..40)) {
        run_sequence(&[], &ops)?;
    }

    #[test]
    fn smmu_ops_refine_the_model(ops in prop::collection::vec(smmu_op(), 1..30)) {
        run_sequence(&[], &ops)?;
    }

    #[test]
    fn ownership_ops_refine_the_model(ops in prop::collection::vec(op(), 1..40)) {
        run_sequence(&[], &ops)?;
    }

    #[test]
    fn pool_exhaustion_refines_the_model(v in 0u32..3, k in 0u64..3, ops in prop::collection::vec(op(), 1..30)) {
        run_sequence(&[(v, [k; 3])], &ops)?;
    }
}

/// Break-before-make invalidates the host's cached translation when its page goes to a VM
/// (the planted fault `missed_tlbi` leaves it stale: `crates/check/tests/mutants.rs`).
#[test]
fn a_tlb_invalidation_removes_the_stale_translation() {
    let pair = Pair::new(&[]);
    let pfn = RAM / 4096 + 0x200;
    assert!(pair.core.local_map_host(pfn * 4096, &mut Discard).is_ok());
    let root = pair.core.layout.pt.root(0);
    // The host touches its page: the translation is now cached.
    assert_eq!(
        pair.core.hw.translate(0, root, pfn * 4096).unwrap().pa,
        pfn * 4096
    );
    // The page goes to a VM: KCore replaces the host's entry with PAGE_GUEST.
    assert!(pair
        .core
        .local_assign_pfn_to_vm(1, 0x8_0000, pfn, &mut Recorder::default())
        .is_ok());
    assert_eq!(
        pair.core.hw.translate(0, root, pfn * 4096),
        None,
        "after break-before-make and TLBI the host faults"
    );
}

/// The host's 4 KiB map capacity under arm (deviation `arm_pool_geometry`): its 4 MiB pool
/// holds 1003 level-3 tables, one per 2 MiB region it touches, enough for a Linux host of
/// 1.5 GiB (QEMU `-m 2G`: 1472 MiB of host RAM, 736 regions) and its devices. On a machine
/// with more host RAM than that (2.5 GiB, 32 MiB of it KCore's), the host maps a page in each
/// of 1003 distinct regions, and its touch of the 1004th halts KCore exactly where the model
/// halts, with S2PAGE and NPT poisoned; every VM's pool keeps its 235.
#[test]
fn the_host_maps_1003_regions_at_4k_and_halts_on_the_1004th() {
    let pools = &P.c.pools;
    assert_eq!(pools.l3_tables(HOSTVISOR), 1003);
    assert!((1..=COREVISOR).all(|v| pools.l3_tables(v) == 235));
    assert!(
        pools.l3_tables(HOSTVISOR) >= 800,
        "a host of 1.5 GiB and its devices"
    );
    let m = Machine {
        ram_base: RAM as Z,
        ram_mib: 2560,
        kcore_mib: 32,
        ..Machine::default()
    };
    let core = Core::boot(SimMemory::new(), layout(&m));
    let mut model = m.initial_shared(P);
    const REGION: u64 = 0x20_0000;
    let tables = pools.l3_tables(HOSTVISOR) as u64;
    for i in 0..=tables {
        // A different page of each region: only the region decides the table.
        let addr = RAM + i * REGION + (i % 512) * 4096;
        let core_halt = core.local_map_host(addr, &mut Discard).is_err();
        let (next, model_halt) = local_map_host_declared(P, &m.mmio, addr as Z, &model);
        model = next;
        assert_eq!(core_halt, model_halt, "region {i}: halt flags differ");
        assert_eq!(core_halt, i == tables, "region {i} (of {tables} tables)");
        if i % 100 == 0 || i + 1 >= tables {
            assert_eq!(
                abs_npt(&core, kc::HOSTVISOR),
                model.npts.get(HOSTVISOR).clone(),
                "region {i}: the host's table"
            );
        }
    }
    let host = model.npts.get(HOSTVISOR);
    assert_eq!(
        host.pt_pmd_next,
        pools.pool_end(HOSTVISOR),
        "every level-3 table used"
    );
    assert!(!*model.hlock.get(S2PAGE_ID) && !*model.hlock.get(NPT_ID));
    assert_eq!(abs_shared_but_pages(&core, &model), model);
}

/// Page-table pages used per GiB mapped (docs/kcore-memory.md): 4 KiB pages need one leaf
/// table per 2 MiB plus one level-1 and one level-2 table; 2 MiB blocks need only the two.
/// Measured over 256 MiB (an `arm` pool holds 235 leaf tables) and scaled: the leaf tables
/// grow with the mapped size, the two upper tables do not.
#[test]
fn table_pages_per_gib() {
    let used = |level: u32| {
        let pair = Pair::new(&[]);
        let step = if level == 2 { 0x20_0000 } else { 4096 };
        let mut a = 0x4000_0000u64;
        while a < 0x5000_0000 {
            assert!(pair
                .core
                .local_map_pfn_vm(1, a, a, level, &mut Discard)
                .is_ok());
            a += step;
        }
        let p = pair.core.npt[1].read();
        let b = corevisor_kcore::pt::Pool::boot(1);
        (p.pgd_next - b.pgd_next + p.pud_next - b.pud_next + p.pmd_next - b.pmd_next) / 4096
    };
    let (pages, blocks) = (used(3), used(2));
    assert_eq!((pages, blocks), (128 + 2, 2));
    assert_eq!((pages - 2) * 4 + 2, 514, "per GiB of 4 KiB pages");
}

/// Boot forgets whatever KCore's region held (a warm reset, a previous image): booted on
/// memory whose metadata, table pools and SMMU pool are full of garbage, KCore's view of
/// every page and every table word is the one it has on clean memory.
#[test]
fn boot_forgets_what_the_region_held() {
    let m = machine();
    let l = layout(&m);
    let dirty = SimMemory::new();
    let garbage = |from: u64, to: u64| {
        for pa in (from..to).step_by(8) {
            dirty.write64(pa, pa ^ 0x5a5a_5a5a_5a5a_5a5a);
        }
    };
    let ram_pages = (l.ram_end - l.ram_base) / 4096;
    garbage(l.meta_base, l.meta_base + ram_pages * 8);
    let tables = [(l.pt.pt_base, l.smmu_base), (l.smmu_base, l.end)];
    for (from, to) in tables {
        for page in (from..to).step_by(4096) {
            garbage(page, page + 64);
        }
    }
    let core = Core::boot(dirty, l);
    let clean = Core::boot(SimMemory::new(), l);
    for pfn in l.ram_base / 4096..l.ram_end / 4096 {
        assert_eq!(core.page(pfn), clean.page(pfn), "page {pfn:#x}");
    }
    for (from, to) in tables {
        for page in (from..to).step_by(4096) {
            assert_eq!(core.hw.read64(page + 8), 0, "table page {page:#x}");
        }
    }
    assert_eq!(abs_npt(&core, 1), abs_npt(&clean, 1));
}

#[test]
fn metadata_is_eight_bytes_per_page() {
    assert_eq!(std::mem::size_of::<corevisor_kcore::meta::PageMeta>(), 8);
}

/// A 2 MiB block in a new GiB needs a level-2 table, and in a new 512 GiB also a level-1
/// table: the map is refused (KCore halts, as the model does) when either section is empty,
/// though the other has room.
#[test]
fn a_block_map_needs_room_in_both_upper_sections() {
    let block = |gpa: u64| Op::ProtMap(1, gpa, (RAM + 0x20_0000) / 4096, 2);
    // VM 1 has no tables: a block needs one of each.
    for sections in [[0, 4, 4], [4, 0, 4], [4, 4, 0], [1, 1, 0]] {
        run_sequence(&[(1, sections)], &[block(0x8000_0000)]).unwrap();
    }
    let mut pair = Pair::new(&[(1, [0, 1, 1])]);
    assert_eq!(
        pair.apply(&block(0x8000_0000)),
        (true, true),
        "no level-1 table left"
    );
    let mut pair = Pair::new(&[(1, [1, 0, 1])]);
    assert_eq!(
        pair.apply(&block(0x8000_0000)),
        (true, true),
        "no level-2 table left"
    );
    let mut pair = Pair::new(&[(1, [1, 1, 0])]);
    assert_eq!(
        pair.apply(&block(0x8000_0000)),
        (false, false),
        "a block needs no leaf table"
    );
}

/// A device mapping that finds VM 1's pools empty halts, poisoning the locks the seed
/// names (the VM's INFO and NPT locks and S2PAGE), as the model does.
#[test]
fn a_device_mapping_on_empty_pools_halts_with_the_seeds_locks() {
    let ops = [
        Op::GenVmid,
        Op::RegisterKvm(1),
        Op::MapIo(1, 0x1000_0000, 0x900_0000),
    ];
    run_sequence(&[(1, [0, 0, 0])], &ops).unwrap();
    let mut pair = Pair::new(&[(1, [0, 0, 0])]);
    assert_eq!(pair.apply(&ops[0]), (false, false));
    assert_eq!(pair.apply(&ops[1]), (false, false));
    assert_eq!(pair.apply(&ops[2]), (true, true), "no table page left");
    let want = [kc::INFO_ID + 1, kc::S2PAGE_ID, kc::NPT_ID + 1].map(|id| 1u64 << id);
    assert_eq!(pair.core.poisoned(), want.iter().fold(0, |a, b| a | b));
}

#[test]
fn a_known_sequence_refines() {
    let pfn = RAM / 4096 + 0x201;
    let ops = [
        Op::HostWrite(pfn, 77),
        Op::MapHost(pfn),
        Op::Assign(1, 0x8_0001, pfn),
        Op::Grant(1, pfn),
        Op::MapHost(pfn),
        Op::Revoke(1, pfn),
        Op::Clear(1, pfn),
    ];
    run_sequence(&[], &ops).unwrap();
}

#[test]
fn a_known_smmu_sequence_refines() {
    let pfn = RAM / 4096 + 0x200;
    let ops = [
        Op::SmmuAlloc(1, 2, 0),
        Op::SmmuAssign(1, 0, pfn, 0x10),
        Op::SmmuMap(1, 0, 0x10 * 4096, (pfn * 4096) | 0x7C3),
        Op::SmmuClear(0x10 * 4096, 1, 0),
        Op::SetVmState(2, 4),
        Op::SmmuFree(1, 0),
    ];
    let mut pair = Pair::new(&[]);
    for op in &ops[..3] {
        assert_eq!(pair.apply(op), (false, false), "{op:?}");
    }
    assert_ne!(
        corevisor_kcore::smmu::leaf(&pair.core.hw, &pair.core.spt.read(), 0, 1, 0x10 * 4096),
        0,
        "mapped"
    );
    run_sequence(&[], &ops).unwrap();
}

/// The VM lifecycle through the loops: register, one image segment, load it (a 2 MiB block
/// leaves the host), serve a fault, share and unshare pages inside the block and outside,
/// power off, scrub and return the range.
#[test]
fn a_known_lifecycle_through_the_loops_refines() {
    let img = RAM / 4096 + 0x200;
    let ops = [
        Op::HostWrite(img + 1, 0xC0DE),
        Op::GenVmid,
        Op::RegisterKvm(1),
        Op::RegisterVcpu(1, 0),
        Op::SetBootInfo(1, 0x800_0000, 8192),
        Op::RemapImage(1, img, 0),
        Op::RemapImage(1, img + 1, 0),
        Op::Ioremap(1, 0x900_0000, 0x900_0000, 1),
        Op::VerifyLoad(1),
        Op::SetVmState(1, 3),
        Op::ProtMap(1, 0x1000_0000, RAM / 4096 + 1, 3),
        Op::Share(1, 0x800_1000, 2, false),
        Op::Share(1, 0x1000_0000, 1, false),
        Op::MapHost(img + 1),
        Op::HostWrite(img + 1, 7),
        Op::Share(1, 0x800_1000, 1, true),
        Op::Poweroff(1),
        Op::ClearRange(1, img, 512),
    ];
    let mut pair = Pair::new(&[]);
    for op in &ops {
        assert_eq!(pair.apply(op), (false, false), "{op:?}");
    }
    assert_eq!(
        pair.core.page(img + 1).owner,
        kc::HOSTVISOR,
        "scrubbed and returned"
    );
    assert_eq!(
        pair.core.page(RAM / 4096 + 1).count,
        1,
        "the faulted-in page is still shared"
    );
    run_sequence(&[], &ops).unwrap();
}
