//! The security invariants of SeKVM (implementation-notes §5.1 `shared_inv`, §5.2
//! `state_inv`), evaluated on the model's view of the machine after every step.
//!
//! Each check is one pass over explicit map entries (absent entries read the boot default,
//! which satisfies every invariant), so a check costs O(entries).

use corevisor_spec::consts::*;
use corevisor_spec::profile::Profile;
use corevisor_spec::state::{CoreData, Ctxt, S2Page, Shared, VMInfo, NPT, SPT};
use corevisor_spec::zmap::ZMap;
use corevisor_spec::{Machine, Z};
use std::collections::{BTreeMap, BTreeSet};

/// One CPU's mode and current principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuView {
    pub curid: Z,
    pub cur_vmid: Z,
    pub cur_vcpuid: Z,
    pub ihost: bool,
    pub icore: bool,
}

/// Every invariant's name and one-line meaning.
pub const ALL: [(&str, &str); 18] = [
    ("page_0_invalid", "physical page 0 is never RAM anyone owns"),
    (
        "host_s2_map",
        "every host-owned page carries gfn = pfn + SMMU_HOST_OFFSET",
    ),
    (
        "host_npt_cons",
        "each host stage-2 leaf's pfn is the page its descriptor names",
    ),
    ("host_flatmap", "the host's stage-2 is an identity map"),
    (
        "host_iso",
        "the host maps only device pages, its own pages, and pages a VM shares (0 < count < INVALID)",
    ),
    (
        "vm_iso",
        "every VM, whatever its state, maps only its own RAM pages (and devices)",
    ),
    (
        "spt_cons",
        "each SMMU leaf's pfn is the page its descriptor names",
    ),
    (
        "smmu_vm",
        "every assigned SMMU bank belongs to the host or a VM",
    ),
    (
        "smmu_iso",
        "every assigned bank, whatever its owner's state, maps only pages its owner owns, at their gfn",
    ),
    (
        "smmu_count",
        "a host page's count covers its host SMMU mappings",
    ),
    ("remap_ptr", "the image remap cursor is positive"),
    (
        "core_map",
        "KCore's own table maps nothing at or above the remap cursor",
    ),
    (
        "remap_addr",
        "each image's remapped pages fit its size and lie below the cursor",
    ),
    (
        "core_remap",
        "the not-yet-remapped tail of each image is unmapped in KCore's table",
    ),
    (
        "remap_no_overlap",
        "remap ranges of different images are disjoint",
    ),
    ("kcore_pages", "KCore owns exactly its boot region"),
    (
        "kcore_unmapped",
        "no host, VM or SMMU table maps a KCore page or an SMMU register window",
    ),
    (
        "state_inv",
        "each CPU's mode matches its current principal and that vCPU was reset",
    ),
];

/// The one-line meaning of invariant `name`.
pub fn describe(name: &str) -> &'static str {
    ALL.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .unwrap_or("unknown invariant")
}

fn pages(size: Z) -> Z {
    zdiv(size + 4095, PAGE_SIZE)
}

/// Names of the invariants `shared`/`cpus` break (empty: all hold).
pub fn check(
    _p: &Profile,
    machine: &Machine,
    sh: &Shared,
    shadow: &ZMap<Ctxt>,
    cpus: &[CpuView],
) -> Vec<&'static str> {
    let mut bad = check_shared(machine, sh);
    bad.extend(check_cpus(shadow, cpus));
    bad.into_iter().collect()
}

/// The invariants over the machine-wide state (all but `state_inv`).
pub fn check_shared(machine: &Machine, sh: &Shared) -> BTreeSet<&'static str> {
    let mut bad = PageTally::of(machine, &sh.s2page).verdict(machine, &sh.s2page);
    bad.extend(host_part(sh));
    bad.extend(vm_part(sh));
    bad.extend(smmu_windows_part(machine, sh));
    bad.extend(smmu_part(sh));
    bad.extend(remap_part(sh));
    bad
}

/// The per-page invariants (`page_0_invalid`, `host_s2_map`, `kcore_pages`) as counts over
/// the explicit metadata entries, so a step's changed entries update them.
#[derive(Clone, Debug, Default, PartialEq)]
struct PageTally {
    host_s2_map: i64,
    kcore_pages: i64,
    kcore_owned: Z,
}

impl PageTally {
    fn of(machine: &Machine, s2page: &ZMap<S2Page>) -> Self {
        let mut t = PageTally::default();
        for (pfn, pg) in s2page.entries() {
            t.add(machine, pfn, pg, 1);
        }
        t
    }

    /// Counts entry `pfn` (`sign` -1: uncounts it); absent entries are not counted.
    fn add(&mut self, machine: &Machine, pfn: Z, pg: &S2Page, sign: i64) {
        if pg.s2_owner == HOSTVISOR && pg.s2_gfn != pfn + SMMU_HOST_OFFSET {
            self.host_s2_map += sign;
        }
        let boot_kcore = machine.boot_s2page(pfn).s2_owner == COREVISOR;
        if (pg.s2_owner == COREVISOR) != boot_kcore {
            self.kcore_pages += sign;
        }
        self.kcore_owned += i128::from(pg.s2_owner == COREVISOR) * i128::from(sign);
    }

    /// `prev`'s tally brought to `now` through the entries that differ.
    fn update(&mut self, machine: &Machine, prev: &ZMap<S2Page>, now: &ZMap<S2Page>) {
        for k in prev.changed_keys(now) {
            for (m, sign) in [(prev, -1), (now, 1)] {
                let pg = m.get(k);
                if pg != m.default_value() {
                    self.add(machine, k, pg, sign);
                }
            }
        }
    }

    fn verdict(&self, machine: &Machine, s2page: &ZMap<S2Page>) -> BTreeSet<&'static str> {
        let mut bad = BTreeSet::new();
        if s2page.get(0).s2_owner != INVALID {
            bad.insert("page_0_invalid");
        }
        if self.host_s2_map > 0 {
            bad.insert("host_s2_map");
        }
        let kcore_region = (machine.ram_end() - machine.kcore_base()) / PAGE_SIZE;
        if self.kcore_pages > 0 || self.kcore_owned != kcore_region {
            bad.insert("kcore_pages");
        }
        bad
    }
}

/// The pages the host may map: devices (owner INVALID), its own, and a VM's page while the
/// VM shares it. Count INVALID marks a page a VM gave its device (SMMU_LPAE_MAP): it is as
/// private as count 0, so "count > 0" (the seed's `local_map_host` test, issue 20 hole 1)
/// is not the shared range.
fn host_may_map(pg: &S2Page) -> bool {
    let shared = 0 < pg.s2_count && pg.s2_count < INVALID;
    pg.s2_owner == INVALID || pg.s2_owner == HOSTVISOR || shared
}

/// The host's stage-2 (reads `npts[HOSTVISOR]`, `s2page`).
fn host_part(sh: &Shared) -> BTreeSet<&'static str> {
    let mut bad = BTreeSet::new();
    for (gfn, &(pfn, _, pte)) in sh.npts.get(HOSTVISOR).pt.entries() {
        if pfn == 0 {
            continue;
        }
        if pfn != zdiv(phys_page(pte), PAGE_SIZE) {
            bad.insert("host_npt_cons");
        }
        if gfn != pfn {
            bad.insert("host_flatmap");
        }
        let pg = sh.s2page.get(pfn);
        if !host_may_map(pg) {
            bad.insert("host_iso");
        }
        if pg.s2_owner == COREVISOR {
            bad.insert("kcore_unmapped");
        }
    }

    bad
}

/// `kcore_unmapped` for KCore's own devices: no principal's stage-2 maps an SMMU's
/// register window (the host's accesses there trap to KCore, which polices them; a VM's
/// would not: issue 20, hole 4). Reads `npts` and the machine's SMMU windows.
fn smmu_windows_part(machine: &Machine, sh: &Shared) -> BTreeSet<&'static str> {
    let windows: Vec<(Z, Z)> = (0..machine.smmus)
        .map(|i| (machine.smmu_base(i), corevisor_spec::init::SMMU_WINDOW_SIZE))
        .collect();
    let in_window = |pfn: Z| {
        windows
            .iter()
            .any(|&(b, s)| b <= pfn * PAGE_SIZE && pfn * PAGE_SIZE < b + s)
    };
    let mut bad = BTreeSet::new();
    for v in HOSTVISOR..COREVISOR {
        if sh
            .npts
            .get(v)
            .pt
            .entries()
            .any(|(_, &(pfn, _, _))| in_window(pfn))
        {
            bad.insert("kcore_unmapped");
        }
    }
    bad
}

/// The VMs' stage-2 tables (reads `npts`, `s2page`). No VM is exempt whatever its state: a
/// stage-2 entry is a translation a vCPU still running (or its TLB) can use after the VM
/// powered off (issue 20 hole 2), so every entry of every VM must name its own page or a
/// device.
fn vm_part(sh: &Shared) -> BTreeSet<&'static str> {
    let mut bad = BTreeSet::new();
    let owner = |pfn: Z| sh.s2page.get(pfn).s2_owner;
    for v in 1..COREVISOR {
        for (_, &(pfn, _, _)) in sh.npts.get(v).pt.entries() {
            if pfn == 0 {
                continue;
            }
            let o = owner(pfn);
            if o != INVALID && o != v {
                bad.insert("vm_iso");
            }
            if o == COREVISOR {
                bad.insert("kcore_unmapped");
            }
        }
    }

    bad
}

/// The SMMU tables (reads `smmu_vmid`, `spts`, `s2page`). Every bank with an owner is
/// checked whatever the owner's state: a device DMAs through a bank of a powered-off VM as
/// well as through a live one's (issue 20 hole 2). A KCore page in a bank is reported as
/// `kcore_unmapped` alone (no bank owner can own one), so each invariant has a corruption
/// that breaks it alone.
fn smmu_part(sh: &Shared) -> BTreeSet<&'static str> {
    let mut bad = BTreeSet::new();
    let owner = |pfn: Z| sh.s2page.get(pfn).s2_owner;
    let mut host_smmu_maps: BTreeMap<Z, Z> = BTreeMap::new();
    for (cfg, &v) in sh.smmu_vmid.entries() {
        if v == INVALID {
            continue;
        }
        if !(HOSTVISOR..COREVISOR).contains(&v) {
            bad.insert("smmu_vm");
        }
        let ttbr = SMMU_TTBR(cfg / SMMU_NUM_CTXT_BANKS, cfg % SMMU_NUM_CTXT_BANKS);
        for (g, &(pfn, _)) in sh.spts.spt_pt.get(ttbr).entries() {
            if pfn == 0 {
                continue;
            }
            let pg = sh.s2page.get(pfn);
            if pg.s2_owner != COREVISOR && !(pg.s2_owner == v && pg.s2_gfn == g) {
                bad.insert("smmu_iso");
            }
            if pg.s2_owner == COREVISOR {
                bad.insert("kcore_unmapped");
            }
            if v == HOSTVISOR && owner(g - SMMU_HOST_OFFSET) == HOSTVISOR {
                *host_smmu_maps.entry(g - SMMU_HOST_OFFSET).or_default() += 1;
            }
        }
    }
    for ttbr_map in sh.spts.spt_pt.entries() {
        for (_, &(pfn, pte)) in ttbr_map.1.entries() {
            if pfn != zdiv(phys_page(pte), PAGE_SIZE) {
                bad.insert("spt_cons");
            }
        }
    }
    for (p, n) in host_smmu_maps {
        if sh.s2page.get(p).s2_count < n {
            bad.insert("smmu_count");
        }
    }

    bad
}

/// The image remap cursor and ranges (reads `core_data`, `npts[COREVISOR]`, `vminfos`).
fn remap_part(sh: &Shared) -> BTreeSet<&'static str> {
    let mut bad = BTreeSet::new();
    let cursor = sh.core_data.next_remap_ptr;
    if cursor <= 0 {
        bad.insert("remap_ptr");
    }
    let core_pt = &sh.npts.get(COREVISOR).pt;
    for (gfn, &(pfn, _, _)) in core_pt.entries() {
        if pfn != 0 && gfn * PAGE_SIZE >= cursor {
            bad.insert("core_map");
        }
    }
    let mut ranges = Vec::new();
    for v in 1..COREVISOR {
        let vb = &sh.vminfos.get(v).VB;
        for idx in 0..vb.vm_next_load_info.min(MAX_LOAD_INFO_NUM) {
            let (remap, size, mapped) = (
                *vb.vm_remap_addr.get(idx),
                *vb.vm_load_size.get(idx),
                *vb.vm_mapped_pages.get(idx),
            );
            let n = pages(size);
            if mapped > n || remap + n * PAGE_SIZE > cursor {
                bad.insert("remap_addr");
            }
            for k in mapped..n.min(mapped + 4096) {
                if core_pt.get(zdiv(remap, PAGE_SIZE) + k).0 != 0 {
                    bad.insert("core_remap");
                    break;
                }
            }
            if n > 0 {
                ranges.push((remap, remap + n * PAGE_SIZE));
            }
        }
    }
    ranges.sort();
    if ranges.windows(2).any(|w| w[1].0 < w[0].1) {
        bad.insert("remap_no_overlap");
    }
    bad
}

type Verdict = BTreeSet<&'static str>;
type Pages = ZMap<S2Page>;
/// A part's verdict and what it was computed from.
type Memo<K> = Option<(K, Verdict)>;

/// [`check_shared`] across steps: each part is evaluated again only when what it reads
/// changed (persistent maps compare in time proportional to their difference), and the
/// per-page counts are updated through the changed metadata entries. Same verdicts.
#[derive(Clone, Debug, Default)]
pub struct SharedMemo {
    pages: Option<(ZMap<S2Page>, PageTally)>,
    host: Memo<(NPT, ZMap<S2Page>)>,
    vms: Memo<(ZMap<NPT>, ZMap<S2Page>)>,
    smmu: Memo<(ZMap<Z>, SPT, Pages)>,
    remap: Memo<(CoreData, NPT, ZMap<VMInfo>)>,
}

fn memo<K: PartialEq>(
    slot: &mut Option<(K, Verdict)>,
    key: K,
    f: impl FnOnce() -> Verdict,
) -> Verdict {
    match slot {
        Some((k, v)) if *k == key => v.clone(),
        _ => {
            let v = f();
            *slot = Some((key, v.clone()));
            v
        }
    }
}

impl SharedMemo {
    pub fn check(&mut self, machine: &Machine, sh: &Shared) -> Verdict {
        let tally = match self.pages.take() {
            Some((prev, mut t)) => {
                t.update(machine, &prev, &sh.s2page);
                t
            }
            None => PageTally::of(machine, &sh.s2page),
        };
        let mut bad = tally.verdict(machine, &sh.s2page);
        self.pages = Some((sh.s2page.clone(), tally));
        let s2 = || sh.s2page.clone();
        bad.extend(memo(
            &mut self.host,
            (sh.npts.get(HOSTVISOR).clone(), s2()),
            || host_part(sh),
        ));
        // No part reads a VM's state: the invariants exempt none (issue 20).
        bad.extend(memo(&mut self.vms, (sh.npts.clone(), s2()), || {
            let mut v = vm_part(sh);
            v.extend(smmu_windows_part(machine, sh));
            v
        }));
        bad.extend(memo(
            &mut self.smmu,
            (sh.smmu_vmid.clone(), sh.spts.clone(), s2()),
            || smmu_part(sh),
        ));
        bad.extend(memo(
            &mut self.remap,
            (
                sh.core_data,
                sh.npts.get(COREVISOR).clone(),
                sh.vminfos.clone(),
            ),
            || remap_part(sh),
        ));
        bad
    }
}

/// `state_inv`: each CPU's mode against its current principal and vCPU.
pub fn check_cpus(shadow: &ZMap<Ctxt>, cpus: &[CpuView]) -> BTreeSet<&'static str> {
    let mut bad = BTreeSet::new();
    for c in cpus {
        let ok = if c.ihost && !c.icore {
            c.cur_vmid == HOSTVISOR && c.cur_vcpuid == c.curid
        } else if !c.ihost && !c.icore {
            is_vm(c.cur_vmid)
                && is_vcpu(c.cur_vcpuid)
                && shadow
                    .get(ctxt_id(c.cur_vmid, c.cur_vcpuid))
                    .ctxt_states
                    .dirty
                    != INVALID64
        } else {
            // Inside KCore: only a halted machine is left here between steps.
            true
        };
        if !ok {
            bad.insert("state_inv");
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;
    use corevisor_spec::state::mkS2Page;

    fn setup() -> (Machine, Shared, ZMap<Ctxt>, Vec<CpuView>) {
        let m = Machine::default();
        let cpus = vec![CpuView {
            curid: 0,
            cur_vmid: 0,
            cur_vcpuid: 0,
            ihost: true,
            icore: false,
        }];
        (
            m.clone(),
            m.initial_shared(Profile::arm()),
            m.initial_shadow_ctxts(),
            cpus,
        )
    }

    fn broken(f: impl FnOnce(&Machine, &mut Shared, &mut Vec<CpuView>)) -> Vec<&'static str> {
        let (m, mut sh, shadow, mut cpus) = setup();
        f(&m, &mut sh, &mut cpus);
        check(Profile::arm(), &m, &sh, &shadow, &cpus)
    }

    #[test]
    fn boot_state_satisfies_every_invariant() {
        assert_eq!(broken(|_, _, _| {}), Vec::<&str>::new());
    }

    /// Issue 20: a powered-off VM's stage-2 entry and bank, and a host mapping of a page a
    /// VM gave its device (count INVALID), are checked like any other.
    #[test]
    fn no_state_or_count_is_exempt() {
        let ram = Machine::default().ram_base / PAGE_SIZE;
        let poweroff = |sh: &mut Shared, v: Z| {
            let mut info = sh.vminfos.get(v).clone();
            info.VS.vm_state = POWEROFF;
            sh.vminfos.set_mut(v, info);
        };
        // VM 1 powered off, its table still mapping a host page (reclaimed under it).
        let vm = broken(|_, sh, _| {
            poweroff(sh, 1);
            let mut n = sh.npts.get(1).clone();
            n.pt.set_mut(7, (ram, 3, (ram * 4096) | PAGE_S2_KERNEL));
            sh.npts.set_mut(1, n);
        });
        assert_eq!(vm, vec!["vm_iso"]);
        // The same VM with the page still its own: nothing is broken.
        let own = broken(|_, sh, _| {
            poweroff(sh, 1);
            sh.s2page.set_mut(ram, mkS2Page(1, 0, 7));
            let mut n = sh.npts.get(1).clone();
            n.pt.set_mut(7, (ram, 3, (ram * 4096) | PAGE_S2_KERNEL));
            sh.npts.set_mut(1, n);
        });
        assert_eq!(own, Vec::<&str>::new());
        // A powered-off VM's bank mapping a host page.
        let bank = broken(|_, sh, _| {
            poweroff(sh, 2);
            sh.smmu_vmid.set_mut(0, 2);
            sh.spts.spt_pt = sh
                .spts
                .spt_pt
                .update(SMMU_TTBR(0, 0), |t| t.set(3, (ram, ram * 4096)));
        });
        assert_eq!(bank, vec!["smmu_iso"]);
        // The host mapping a VM's page at each count: only 0 < count < INVALID is shared.
        for (count, ok) in [(0, false), (1, true), (INVALID - 1, true), (INVALID, false)] {
            let got = broken(|_, sh, _| {
                sh.s2page.set_mut(ram, mkS2Page(1, count, 7));
                let mut n = sh.npts.get(0).clone();
                n.pt.set_mut(ram, (ram, 3, (ram * 4096) | PAGE_S2_KERNEL));
                sh.npts.set_mut(0, n);
            });
            let want: Vec<&str> = if ok { vec![] } else { vec!["host_iso"] };
            assert_eq!(got, want, "count {count}");
        }
    }

    #[test]
    fn each_invariant_catches_its_corruption() {
        let ram = Machine::default().ram_base / PAGE_SIZE;
        let kc = Machine::default().kcore_base() / PAGE_SIZE;
        let host_map = |sh: &mut Shared, gfn: Z, pfn: Z| {
            let mut n = sh.npts.get(0).clone();
            n.pt.set_mut(gfn, (pfn, 3, (pfn * 4096) | PAGE_S2_KERNEL));
            sh.npts.set_mut(0, n);
        };
        type Corruption = Box<dyn Fn(&Machine, &mut Shared, &mut Vec<CpuView>)>;
        let cases: Vec<(&str, Corruption)> = vec![
            (
                "page_0_invalid",
                Box::new(|_, sh, _| sh.s2page.set_mut(0, mkS2Page(5, 0, 0))),
            ),
            (
                "host_s2_map",
                Box::new(move |_, sh, _| sh.s2page.set_mut(ram, mkS2Page(0, 0, 5))),
            ),
            (
                "host_npt_cons",
                Box::new(move |_, sh, _| {
                    let mut n = sh.npts.get(0).clone();
                    n.pt.set_mut(ram, (ram, 3, ((ram + 1) * 4096) | PAGE_S2_KERNEL));
                    sh.npts.set_mut(0, n);
                }),
            ),
            (
                "host_flatmap",
                Box::new(move |_, sh, _| host_map(sh, ram + 1, ram)),
            ),
            (
                "host_iso",
                Box::new(move |_, sh, _| {
                    sh.s2page.set_mut(ram, mkS2Page(1, 0, 7));
                    host_map(sh, ram, ram);
                }),
            ),
            (
                "vm_iso",
                Box::new(move |_, sh, _| {
                    let mut n = sh.npts.get(1).clone();
                    n.pt.set_mut(7, (ram, 3, (ram * 4096) | PAGE_S2_KERNEL));
                    sh.npts.set_mut(1, n);
                }),
            ),
            (
                "spt_cons",
                Box::new(move |_, sh, _| {
                    sh.spts.spt_pt = sh
                        .spts
                        .spt_pt
                        .update(SMMU_TTBR(0, 0), |t| t.set(3, (ram, 0)));
                }),
            ),
            ("smmu_vm", Box::new(|_, sh, _| sh.smmu_vmid.set_mut(0, 17))),
            (
                "smmu_iso",
                Box::new(move |_, sh, _| {
                    sh.smmu_vmid.set_mut(0, 1);
                    sh.spts.spt_pt = sh
                        .spts
                        .spt_pt
                        .update(SMMU_TTBR(0, 0), |t| t.set(3, (ram, ram * 4096)));
                }),
            ),
            (
                "smmu_count",
                Box::new(move |_, sh, _| {
                    sh.smmu_vmid.set_mut(0, 0);
                    sh.spts.spt_pt = sh.spts.spt_pt.update(SMMU_TTBR(0, 0), |t| {
                        t.set(ram + SMMU_HOST_OFFSET, (ram, ram * 4096))
                    });
                }),
            ),
            (
                "remap_ptr",
                Box::new(|_, sh, _| sh.core_data.next_remap_ptr = 0),
            ),
            (
                "core_map",
                Box::new(move |_, sh, _| {
                    let mut n = sh.npts.get(COREVISOR).clone();
                    n.pt.set_mut(
                        REMAP_START / PAGE_SIZE + 5,
                        (ram, 3, (ram * 4096) | PAGE_HYP),
                    );
                    sh.npts.set_mut(COREVISOR, n);
                }),
            ),
            (
                "remap_addr",
                Box::new(|_, sh, _| {
                    let mut info = sh.vminfos.get(1).clone();
                    info.VB.vm_next_load_info = 1;
                    info.VB.vm_load_size.set_mut(0, 4096);
                    info.VB.vm_remap_addr.set_mut(0, REMAP_START);
                    info.VB.vm_mapped_pages.set_mut(0, 2);
                    sh.vminfos.set_mut(1, info);
                    sh.core_data.next_remap_ptr = REMAP_START + 8192;
                }),
            ),
            (
                "core_remap",
                Box::new(move |_, sh, _| {
                    let mut info = sh.vminfos.get(1).clone();
                    info.VB.vm_next_load_info = 1;
                    info.VB.vm_load_size.set_mut(0, 8192);
                    info.VB.vm_remap_addr.set_mut(0, REMAP_START);
                    info.VB.vm_mapped_pages.set_mut(0, 1);
                    sh.vminfos.set_mut(1, info);
                    sh.core_data.next_remap_ptr = REMAP_START + 8192;
                    let mut n = sh.npts.get(COREVISOR).clone();
                    n.pt.set_mut(
                        REMAP_START / PAGE_SIZE + 1,
                        (ram, 3, (ram * 4096) | PAGE_HYP),
                    );
                    sh.npts.set_mut(COREVISOR, n);
                }),
            ),
            (
                "remap_no_overlap",
                Box::new(|_, sh, _| {
                    for v in [1, 2] {
                        let mut info = sh.vminfos.get(v).clone();
                        info.VB.vm_next_load_info = 1;
                        info.VB.vm_load_size.set_mut(0, 8192);
                        info.VB
                            .vm_remap_addr
                            .set_mut(0, REMAP_START + 4096 * (v - 1));
                        sh.vminfos.set_mut(v, info);
                    }
                    sh.core_data.next_remap_ptr = REMAP_START + 3 * 4096;
                }),
            ),
            (
                "kcore_pages",
                Box::new(move |_, sh, _| {
                    sh.s2page.set_mut(kc, mkS2Page(0, 0, kc + SMMU_HOST_OFFSET))
                }),
            ),
            (
                "kcore_unmapped",
                Box::new(move |_, sh, _| {
                    // A powered-off VM's bank (no owner state is exempt).
                    sh.smmu_vmid.set_mut(3, 2);
                    sh.spts.spt_pt = sh
                        .spts
                        .spt_pt
                        .update(SMMU_TTBR(0, 3), |t| t.set(1, (kc, kc * 4096)));
                    let mut info = sh.vminfos.get(2).clone();
                    info.VS.vm_state = POWEROFF;
                    sh.vminfos.set_mut(2, info);
                }),
            ),
            ("state_inv", Box::new(|_, _, cpus| cpus[0].cur_vmid = 3)),
        ];
        assert_eq!(cases.len(), ALL.len());
        let (m, base, _, cpus0) = setup();
        let mut memo = SharedMemo::default();
        for (name, corrupt) in cases {
            assert_eq!(
                broken(|m, sh, c| corrupt(m, sh, c)),
                vec![name],
                "corruption meant for {name}"
            );
            // The memoised check, carried from state to state, gives the same verdicts.
            let (mut sh, mut cpus) = (base.clone(), cpus0.clone());
            corrupt(&m, &mut sh, &mut cpus);
            for s in [&sh, &base, &sh] {
                assert_eq!(memo.check(&m, s), check_shared(&m, s), "{name}");
            }
        }
    }

    /// Issue 20, hole 4: a VM's stage-2 leaf into an SMMU's register window (a device page,
    /// owner INVALID, so `vm_iso` allows it) breaks `kcore_unmapped`, in both checks.
    #[test]
    fn an_smmu_window_in_a_stage2_table_is_kcore_unmapped() {
        let (m, base, _, _) = setup();
        let window = m.smmu_base(0) / 4096;
        let mut sh = base.clone();
        let mut npt = sh.npts.get(1).clone();
        npt.pt.set_mut(0x9_0000, (window, 3, window * 4096));
        sh.npts.set_mut(1, npt);
        let want: BTreeSet<&str> = ["kcore_unmapped"].into();
        assert_eq!(check_shared(&m, &sh), want);
        let mut memo = SharedMemo::default();
        assert_eq!(memo.check(&m, &base), BTreeSet::new());
        assert_eq!(memo.check(&m, &sh), want);
    }
}
