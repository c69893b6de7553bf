//! Branch tests of the ConcurrentSpec operations that scenarios cannot reach from a boot
//! state (pool exhaustion, splitting a block, refused transitions), each asserting the
//! whole resulting shared state: what changes, which locks are poisoned, nothing else.

use corevisor_spec::concurrent::*;
use corevisor_spec::consts::*;
use corevisor_spec::state::*;
use corevisor_spec::{Machine, Profile, Z};

const P: &Profile = &Profile::ARM;
const PFN: Z = 0x40123;

fn base() -> Shared {
    Machine::default().initial_shared(P)
}

fn poisoned(s: &Shared, ids: &[Z]) -> Shared {
    let mut out = s.clone();
    for &id in ids {
        out.hlock.set_mut(id, false);
    }
    out
}

/// Principal `v`'s table with every bump cursor at its pool's end: any new table halts.
fn exhaust(s: &mut Shared, v: Z) {
    let mut n = s.npts.get(v).clone();
    n.pt_pgd_next = P.c.pools.pud_start(v);
    n.pt_pud_next = P.c.pools.pmd_start(v);
    n.pt_pmd_next = P.c.pools.pool_end(v);
    s.npts.set_mut(v, n);
}

/// The host's table maps `pfn` inside a 2 MiB block, so replacing its 4 KiB entry halts.
fn host_block_at(s: &mut Shared, pfn: Z) {
    let mut n = s.npts.get(HOSTVISOR).clone();
    n.pt.set_mut(pfn, (pfn, 2, (pfn * 4096) | PAGE_S2_KERNEL));
    s.npts.set_mut(HOSTVISOR, n);
}

fn with_vm(s: &mut Shared, v: Z, state: Z) {
    let mut info = s.vminfos.get(v).clone();
    info.VS.vm_state = state;
    s.vminfos.set_mut(v, info);
}

fn set_page(s: &mut Shared, pfn: Z, owner: Z, count: Z, gfn: Z) {
    s.s2page.set_mut(pfn, mkS2Page(owner, count, gfn));
}

#[test]
fn cal_state_ignores_other_events() {
    let s = base();
    assert_eq!(CalStateH(P, &[SEVENT(1, AtomicEvent::OGEN_VMID)], &s), s);
    assert_eq!(
        CalStateH(&Profile::SEED, &[SEVENT(1, AtomicEvent::OGEN_VMID)], &s),
        s
    );
}

#[test]
fn alloc_smmu_pgd_refusals() {
    let mut s = base();
    s.smmu_vmid.set_mut(smmu_id(0, 2), 1);
    assert_eq!(
        local_alloc_smmu_pgd(P, 2, 3, 0, 8, &s),
        (s.clone(), false),
        "already assigned: no-op"
    );
    assert_eq!(
        local_alloc_smmu_pgd(P, 8, 1, 0, 8, &s),
        (poisoned(&s, &[SMMU_ID]), true),
        "no such bank"
    );
}

#[test]
fn map_host_pool_exhausted() {
    let mut s = base();
    exhaust(&mut s, HOSTVISOR);
    let (out, halt) = local_map_host(P, PFN * 4096, &s);
    assert!(halt);
    assert_eq!(out, poisoned(&s, &[S2PAGE_ID, NPT_ID]));
}

#[test]
fn transfers_out_of_the_host_halt_when_the_host_entry_is_a_block() {
    // assign: the new owner is recorded, the host table unchanged, S2PAGE and NPT poisoned.
    let mut s = base();
    host_block_at(&mut s, PFN);
    let (out, halt, logn) = local_assign_pfn_to_vm(P, 1, 7, PFN, &|_| 99, 4, &s);
    let mut want = poisoned(&s, &[S2PAGE_ID, NPT_ID]);
    set_page(&mut want, PFN, 1, 0, 7);
    assert_eq!((out, halt, logn), (want, true, 4));
    // clear_vm_page of a VM page whose host entry is a block.
    let mut s2 = s.clone();
    set_page(&mut s2, PFN, 1, 0, 7);
    assert_eq!(
        local_clear_vm_page(P, 1, PFN, &s2),
        (poisoned(&s2, &[S2PAGE_ID, NPT_ID]), true)
    );
    // load_decrypt_buf into a READY VM.
    let mut s3 = s.clone();
    with_vm(&mut s3, 1, READY);
    assert_eq!(
        local_load_decrypt_buf(P, 1, PFN * 4096, &|_| 5, 0, &s3),
        (poisoned(&s3, &[INFO_ID + 1, S2PAGE_ID, NPT_ID]), true, 0)
    );
    // revoke of the last grant.
    let mut s4 = s.clone();
    set_page(&mut s4, PFN, 1, 1, 7);
    let mut want4 = poisoned(&s4, &[S2PAGE_ID, NPT_ID]);
    set_page(&mut want4, PFN, 1, 0, 7);
    assert_eq!(
        local_revoke_vm_page(P, 1, PFN, &|_| 5, 3, &s4),
        (want4, true, 3)
    );
    // smmu_assign_page of a host page to a READY VM's bank.
    let mut s5 = s.clone();
    with_vm(&mut s5, 1, READY);
    s5.smmu_vmid.set_mut(smmu_id(0, 0), 1);
    assert_eq!(
        local_smmu_assign_page(P, 0, 0, PFN, 9, &s5),
        (
            poisoned(&s5, &[SMMU_ID, INFO_ID + 1, S2PAGE_ID, NPT_ID]),
            true
        )
    );
}

#[test]
fn assign_refuses_a_shared_host_page() {
    let mut s = base();
    set_page(&mut s, PFN, HOSTVISOR, 2, PFN + SMMU_HOST_OFFSET);
    assert_eq!(
        local_assign_pfn_to_vm(P, 1, 7, PFN, &|_| 0, 0, &s),
        (poisoned(&s, &[S2PAGE_ID]), true, 0)
    );
}

#[test]
fn vm_table_exhaustion() {
    let mut s = base();
    with_vm(&mut s, 2, READY);
    exhaust(&mut s, 2);
    let (out, halt) = local_map_pfn_vm(P, 2, 0x8000_0000, PFN * 4096, 3, &s);
    assert_eq!((out, halt), (poisoned(&s, &[NPT_ID + 2]), true));
    let (out, halt) = local_map_io(P, 2, 0x0900_0000, 0x0900_0000, &s);
    assert_eq!(
        (out, halt),
        (poisoned(&s, &[INFO_ID + 2, S2PAGE_ID, NPT_ID + 2]), true)
    );
}

#[test]
fn register_kvm_twice() {
    let mut s = base();
    with_vm(&mut s, 1, READY);
    assert_eq!(local_register_kvm(P, 1, &s), (s.clone(), true));
}

#[test]
fn remap_refusals() {
    let s = base();
    assert_eq!(
        local_remap_vm_image(P, 1, PFN, 0, &s),
        (poisoned(&s, &[INFO_ID + 1]), true),
        "VM not READY"
    );
    let mut s = base();
    let mut info = s.vminfos.get(1).clone();
    info.VS.vm_state = READY;
    info.VB.vm_next_load_info = 1;
    info.VB.vm_load_size.set_mut(0, 4096);
    info.VB.vm_remap_addr.set_mut(0, REMAP_START);
    s.vminfos.set_mut(1, info);
    exhaust(&mut s, COREVISOR);
    assert_eq!(
        local_remap_vm_image(P, 1, PFN, 0, &s),
        (poisoned(&s, &[INFO_ID + 1, NPT_ID + COREVISOR]), true),
        "pool exhausted"
    );
}

#[test]
fn revoke_counts() {
    let mut s = base();
    set_page(&mut s, PFN, 1, 0, 7);
    assert_eq!(
        local_revoke_vm_page(P, 1, PFN, &|_| 1, 0, &s),
        (s.clone(), false, 0),
        "nothing shared"
    );
    set_page(&mut s, PFN, 1, 2, 7);
    let mut want = s.clone();
    set_page(&mut want, PFN, 1, 1, 7);
    assert_eq!(
        local_revoke_vm_page(P, 1, PFN, &|_| 1, 0, &s),
        (want, false, 0),
        "still shared once"
    );
}

#[test]
fn set_vcpu_inactive_needs_active() {
    let mut s = base();
    with_vm(&mut s, 1, VERIFIED);
    assert_eq!(local_set_vcpu_inactive(P, 1, 0, &s), (s.clone(), true));
}

#[test]
fn smmu_assign_page_cases() {
    let mut s = base();
    with_vm(&mut s, 1, READY);
    s.smmu_vmid.set_mut(smmu_id(0, 0), 1);
    let mut owned = s.clone();
    set_page(&mut owned, PFN, 1, 0, 3);
    assert_eq!(
        local_smmu_assign_page(P, 0, 0, PFN, 9, &owned),
        (owned.clone(), false),
        "already the VM's"
    );
    let mut foreign = s.clone();
    set_page(&mut foreign, PFN, 2, 0, 3);
    assert_eq!(
        local_smmu_assign_page(P, 0, 0, PFN, 9, &foreign),
        (poisoned(&foreign, &[SMMU_ID, INFO_ID + 1, S2PAGE_ID]), true)
    );
    let mut shared = s.clone();
    set_page(&mut shared, PFN, HOSTVISOR, 1, PFN + SMMU_HOST_OFFSET);
    assert_eq!(
        local_smmu_assign_page(P, 0, 0, PFN, 9, &shared),
        (poisoned(&shared, &[SMMU_ID, INFO_ID + 1, S2PAGE_ID]), true)
    );
    let mut verified = s.clone();
    with_vm(&mut verified, 1, VERIFIED);
    assert_eq!(
        local_smmu_assign_page(P, 0, 0, PFN, 9, &verified),
        (poisoned(&verified, &[SMMU_ID, INFO_ID + 1]), true)
    );
}

#[test]
fn smmu_map_page_cases() {
    // A host bank mapping a host page at its tagged gfn counts the mapping.
    let mut s = base();
    s.smmu_vmid.set_mut(smmu_id(0, 0), HOSTVISOR);
    let iova = (PFN + SMMU_HOST_OFFSET) * 4096;
    let (out, halt) = local_smmu_map_page(P, 0, 0, iova, (PFN * 4096) | 0x700, &s);
    assert!(!halt);
    assert_eq!(out.s2page.get(PFN).s2_count, 1);
    assert_eq!(
        *out.spts.spt_pt.get(SMMU_TTBR(0, 0)).get(iova / 4096),
        (PFN, (PFN * 4096) | 0x700)
    );
    // With the SMMU pool exhausted the same mapping halts.
    let mut full = s.clone();
    full.spts.spt_pgd_next = P.c.pools.smmu_pmd_start;
    full.spts.spt_pmd_next = P.c.pools.smmu_pool_end;
    assert_eq!(
        local_smmu_map_page(P, 0, 0, iova, PFN * 4096, &full),
        (
            poisoned(&full, &[SMMU_ID, INFO_ID + HOSTVISOR, S2PAGE_ID, SPT_ID]),
            true
        )
    );
    // A VERIFIED VM's bank takes no new mappings.
    let mut v = base();
    with_vm(&mut v, 1, VERIFIED);
    v.smmu_vmid.set_mut(smmu_id(0, 0), 1);
    assert_eq!(
        local_smmu_map_page(P, 0, 0, 0x1000, PFN * 4096, &v),
        (poisoned(&v, &[SMMU_ID, INFO_ID + 1]), true)
    );
}

#[test]
fn smmu_clear_with_an_inconsistent_pool_halts() {
    // A leaf whose tables are not marked allocated while the pool is full: clearing it
    // needs a table and halts (a state no operation produces; the branch exists in the seed).
    let mut s = base();
    s.smmu_vmid.set_mut(smmu_id(0, 0), HOSTVISOR);
    s.spts.spt_pt = s.spts.spt_pt.set(
        SMMU_TTBR(0, 0),
        s.spts.spt_pt.get(SMMU_TTBR(0, 0)).set(5, (PFN, PFN * 4096)),
    );
    s.spts.spt_pgd_next = P.c.pools.smmu_pmd_start;
    s.spts.spt_pmd_next = P.c.pools.smmu_pool_end;
    assert_eq!(
        local_smmu_clear(P, 5 * 4096, 0, 0, &s),
        (
            poisoned(&s, &[SMMU_ID, INFO_ID + HOSTVISOR, S2PAGE_ID, SPT_ID]),
            true
        )
    );
}

#[test]
fn verify_vm_three_ways() {
    let mut s = base();
    with_vm(&mut s, 1, READY);
    assert_eq!(
        local_verify_vm(P, 1, &s),
        (s.clone(), false),
        "lock free, READY: no-op"
    );
    let mut s2 = base();
    with_vm(&mut s2, 1, VERIFIED);
    assert_eq!(
        local_verify_vm(P, 1, &s2),
        (poisoned(&s2, &[INFO_ID + 1]), true),
        "lock free, not READY"
    );
    let held = poisoned(&s, &[INFO_ID + 1]);
    let (out, halt) = local_verify_vm(P, 1, &held);
    let mut want = s.clone();
    with_vm(&mut want, 1, VERIFIED);
    assert_eq!(
        (out, halt),
        (want, false),
        "lock held: verified and released"
    );
}
