//! The seed's principal accesses (`mem_load`, `mem_store`, `dev_load`, `dev_store`;
//! spec-digest §5.5) on hand-built states: every branch, with the value it must produce.
//! (The engines reach the common ones; the refusals outside the contract are here.)

use corevisor_spec::consts::*;
use corevisor_spec::state::*;
use corevisor_spec::trap_handler::*;
use corevisor_spec::{Machine, Profile, Z};

const P: &Profile = &Profile::ARM;
const RAM: Z = 0x4000_0000 / 4096;
/// A host page, and a page VM 1 owns.
const HOST_PFN: Z = RAM + 10;
const VM_PFN: Z = RAM + 20;
const GFN: Z = 0x80000;

/// Boot state with `who` running on CPU 0 (not in KCore); VM 1 VERIFIED; the host maps
/// HOST_PFN at its own address and VM_PFN (shared, count 1) at VM_PFN; VM 1 maps VM_PFN at
/// GFN; SMMU 0 bank 0 is VM 1's (IOVA page GFN → VM_PFN), bank 1 the host's (→ HOST_PFN).
fn state(who: Z) -> RData {
    let mut s = Machine::default().initial_state(P, 0);
    s.cur_vmid = who;
    s.cur_vcpuid = 0;
    s.ihost = who == HOSTVISOR;
    let sh = &mut s.shared;
    sh.s2page.set_mut(VM_PFN, mkS2Page(1, 0, GFN));
    let mut info = sh.vminfos.get(1).clone();
    info.VS.vm_state = VERIFIED;
    sh.vminfos.set_mut(1, info);
    let mut host = sh.npts.get(HOSTVISOR).clone();
    host.pt
        .set_mut(HOST_PFN, (HOST_PFN, 3, (HOST_PFN * 4096) | 0xFFF));
    host.pt
        .set_mut(VM_PFN, (VM_PFN, 3, (VM_PFN * 4096) | 0xFFF));
    sh.npts.set_mut(HOSTVISOR, host);
    let mut vm = sh.npts.get(1).clone();
    vm.pt.set_mut(GFN, (VM_PFN, 3, (VM_PFN * 4096) | 0xFFF));
    sh.npts.set_mut(1, vm);
    sh.flatmem.set_mut(HOST_PFN, 11);
    sh.flatmem.set_mut(VM_PFN, 22);
    sh.smmu_vmid.set_mut(smmu_id(0, 0), 1);
    sh.smmu_vmid.set_mut(smmu_id(0, 1), HOSTVISOR);
    sh.spts.spt_pt.set_mut(
        SMMU_TTBR(0, 0),
        sh.spts.spt_pt.get(SMMU_TTBR(0, 0)).set(GFN, (VM_PFN, 0)),
    );
    sh.spts.spt_pt.set_mut(
        SMMU_TTBR(0, 1),
        sh.spts.spt_pt.get(SMMU_TTBR(0, 1)).set(GFN, (HOST_PFN, 0)),
    );
    s.doracle.put(who, 0, 99);
    s
}

fn reg(s: &RData, vm: Z, r: usize) -> Z {
    s.shadow_ctxts.get(ctxt_id(vm, 0)).ctxt_regs.x[r]
}

fn shared(s: RData, pfn: Z, count: Z) -> RData {
    let mut s = s;
    let p = *s.shared.s2page.get(pfn);
    s.shared
        .s2page
        .set_mut(pfn, mkS2Page(p.s2_owner, count, p.s2_gfn));
    s
}

#[test]
fn mem_load_every_branch() {
    let host = state(HOSTVISOR);
    assert_eq!(
        reg(&mem_load_spec(P, HOST_PFN, 1, &host).unwrap(), 0, 1),
        11,
        "host page"
    );
    assert_eq!(
        reg(&mem_load_spec(P, VM_PFN, 1, &host).unwrap(), 0, 1),
        99,
        "not the host's: oracle"
    );
    assert!(
        mem_load_spec(P, HOST_PFN + 1, 1, &host).is_none(),
        "host unmapped"
    );
    assert!(
        mem_load_spec(P, HOST_PFN, 30, &host).is_none(),
        "x30 and up: no such load target"
    );
    let mut core = host.clone();
    core.icore = true;
    assert!(
        mem_load_spec(P, HOST_PFN, 1, &core).is_none(),
        "KCore itself does not load"
    );
    let vm = state(1);
    assert_eq!(
        reg(&mem_load_spec(P, GFN, 1, &vm).unwrap(), 1, 1),
        22,
        "VM page"
    );
    assert_eq!(
        reg(
            &mem_load_spec(P, GFN, 1, &shared(vm.clone(), VM_PFN, 1)).unwrap(),
            1,
            1
        ),
        99,
        "shared: oracle"
    );
    assert!(mem_load_spec(P, GFN + 1, 1, &vm).is_none(), "VM unmapped");
    let mut ready = vm.clone();
    let mut info = ready.shared.vminfos.get(1).clone();
    info.VS.vm_state = READY;
    ready.shared.vminfos.set_mut(1, info);
    assert!(
        mem_load_spec(P, GFN, 1, &ready).is_none(),
        "a VM not verified never runs"
    );
    assert!(mem_store_spec(P, GFN, 1, &ready).is_none(), "nor stores");
}

#[test]
fn mem_store_every_branch() {
    let mut host = state(HOSTVISOR);
    let mut c = host.shadow_ctxts.get(ctxt_id(0, 0)).clone();
    c.ctxt_regs.x[1] = 5;
    host.shadow_ctxts.set_mut(ctxt_id(0, 0), c.clone());
    let s = mem_store_spec(P, HOST_PFN, 1, &host).unwrap();
    assert_eq!(*s.shared.flatmem.get(HOST_PFN), 5, "host page written");
    let s = mem_store_spec(P, VM_PFN, 1, &host).unwrap();
    assert_eq!(
        *s.shared.flatmem.get(VM_PFN),
        22,
        "not the host's page: dropped"
    );
    assert!(
        mem_store_spec(P, HOST_PFN + 1, 1, &host).is_none(),
        "host unmapped"
    );
    host.icore = true;
    assert!(mem_store_spec(P, HOST_PFN, 1, &host).is_none(), "in KCore");
    let mut vm = state(1);
    vm.shadow_ctxts.set_mut(ctxt_id(1, 0), c);
    assert_eq!(
        *mem_store_spec(P, GFN, 1, &vm)
            .unwrap()
            .shared
            .flatmem
            .get(VM_PFN),
        5,
        "VM page"
    );
    let sh = shared(vm.clone(), VM_PFN, 1);
    assert_eq!(
        *mem_store_spec(P, GFN, 1, &sh)
            .unwrap()
            .shared
            .flatmem
            .get(VM_PFN),
        22,
        "shared: dropped"
    );
    assert!(mem_store_spec(P, GFN + 1, 1, &vm).is_none(), "VM unmapped");
}

#[test]
fn dev_load_and_store_every_branch() {
    // Bank (0, 1) is the host's, bank (0, 0) VM 1's.
    let host = state(HOSTVISOR);
    assert_eq!(
        reg(&dev_load_spec(P, GFN, 1, 1, 0, &host).unwrap(), 0, 1),
        11,
        "host page"
    );
    let mut moved = host.clone();
    moved.shared.s2page.set_mut(HOST_PFN, mkS2Page(1, 0, GFN));
    assert_eq!(
        reg(&dev_load_spec(P, GFN, 1, 1, 0, &moved).unwrap(), 0, 1),
        99,
        "not the host's: oracle"
    );
    assert!(
        dev_load_spec(P, GFN + 1, 1, 1, 0, &host).is_none(),
        "host bank unmapped"
    );
    assert!(
        dev_load_spec(P, GFN, 1, 0, 0, &host).is_none(),
        "not the bank's owner"
    );
    assert!(dev_load_spec(P, GFN, 1, 8, 0, &host).is_none(), "no bank 8");
    assert!(dev_load_spec(P, GFN, 1, 1, 2, &host).is_none(), "no SMMU 2");
    assert!(
        dev_load_spec(P, GFN, 30, 1, 0, &host).is_none(),
        "bad register"
    );
    let mut core = host.clone();
    core.icore = true;
    assert!(dev_load_spec(P, GFN, 1, 1, 0, &core).is_none(), "in KCore");
    assert!(dev_store_spec(P, GFN, 1, 1, 0, &core).is_none(), "in KCore");
    let vm = state(1);
    assert_eq!(
        reg(&dev_load_spec(P, GFN, 1, 0, 0, &vm).unwrap(), 1, 1),
        22,
        "VM page"
    );
    assert!(
        dev_load_spec(P, GFN + 1, 1, 0, 0, &vm).is_none(),
        "VM bank unmapped"
    );

    let mut h = host.clone();
    let mut c = h.shadow_ctxts.get(ctxt_id(0, 0)).clone();
    c.ctxt_regs.x[1] = 6;
    h.shadow_ctxts.set_mut(ctxt_id(0, 0), c.clone());
    assert_eq!(
        *dev_store_spec(P, GFN, 1, 1, 0, &h)
            .unwrap()
            .shared
            .flatmem
            .get(HOST_PFN),
        6,
        "host page"
    );
    let mut hm = h.clone();
    hm.shared.s2page.set_mut(HOST_PFN, mkS2Page(1, 0, GFN));
    assert_eq!(
        *dev_store_spec(P, GFN, 1, 1, 0, &hm)
            .unwrap()
            .shared
            .flatmem
            .get(HOST_PFN),
        11,
        "dropped"
    );
    assert!(
        dev_store_spec(P, GFN + 1, 1, 1, 0, &h).is_none(),
        "host bank unmapped"
    );
    assert!(
        dev_store_spec(P, GFN, 1, 0, 0, &h).is_none(),
        "not the owner"
    );
    assert!(dev_store_spec(P, GFN, 1, 9, 0, &h).is_none(), "no bank 9");
    let mut v = vm.clone();
    v.shadow_ctxts.set_mut(ctxt_id(1, 0), c);
    assert_eq!(
        *dev_store_spec(P, GFN, 1, 0, 0, &v)
            .unwrap()
            .shared
            .flatmem
            .get(VM_PFN),
        6,
        "VM page"
    );
    assert!(
        dev_store_spec(P, GFN + 1, 1, 0, 0, &v).is_none(),
        "VM bank unmapped"
    );
}

#[test]
fn a_host_fault_from_a_running_vm_is_outside_the_contract() {
    assert!(host_npt_handler_spec(P, &state(1)).is_none());
}
