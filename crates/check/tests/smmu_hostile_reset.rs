//! Issue 22, "an SMMU that starts as firmware may leave it" (must-show 6): the machine's
//! SMMUs boot from seeded, hostile register contents (`SmmuReset::Hostile`: valid SMRs,
//! bypass S2CRs and S2CRs translating to any bank, banks enabled with TTBR0 in RAM and
//! arbitrary VMIDs, client ports possibly enabled, stale IOTLB entries), and DMA isolation
//! must hold from the first step:
//!
//! * right after boot, the routing KCore promises (no valid SMR, every S2CR faults, every
//!   bank as KCore programs it, an empty IOTLB: what a boot from a clean reset gives);
//! * no stream of any device, on either SMMU, reaches any probed address, before and after
//!   the host routes streams of its own through every group it may write, and after a VM
//!   got a device bank: only the VM's device (stream 1) reaches its page at IOVA
//!   0x9000_0000;
//! * the same run in lockstep with the model: no mismatch (the model says each of those
//!   DMAs faults).
//!
//! With the planted fault `smmu_boot_skips_one` (`"smr:N"` / `"s2cr:N"`), every N is caught
//! (with the `mutants` feature).

use corevisor_check::lockstep::Lockstep;
use corevisor_sim::machine::{with_smmu_reset, CoreMachine};
use corevisor_sim::scenario::{parse, Scenario};
use corevisor_sim::smmu::regs::{cb, gr0, gr1, s2cr, smr};
use corevisor_sim::smmu::{Access, SmmuReset, Width, LIKELY_IOVAS};
use corevisor_spec::profile::ProfileKind;

/// Seeds of the hostile reset every healthy run is checked with.
const SEEDS: u64 = 24;
/// Stream match groups and context banks of the machine's SMMUs.
const GROUPS: u64 = 16;
const BANKS: u64 = 8;
const SMMU_BASE: u64 = 0x0B00_0000;
const SMMU_STRIDE: u64 = 0x10_0000;
/// The stream the host routes through group k: 0x40 + k (a device of its own).
const HOST_STREAM: u64 = 0x40;
/// The bank the model translates the host's streams with: free throughout (no VM has it),
/// so the model says every such DMA faults.
const FREE_BANK: u64 = 7;
/// The VM's device bank, its IOVA and page (SMMU 0).
const VM_BANK: u64 = 1;
const VM_IOVA: u64 = 0x9000_0000;
const VM_PAGE: u64 = 0x4041_0000;

/// Addresses every stream is probed at: the likely IOVAs (also the stale IOTLB entries'),
/// KCore's region, the VM's image and device pages, a high host page.
fn probe_iovas() -> Vec<u64> {
    let mut v = LIKELY_IOVAS.to_vec();
    v.extend([0x4E00_0000, 0x4E01_0000, VM_PAGE, 0x4FFF_F000, 0x4020_1000]);
    v
}

/// Streams probed: every ID a group can match with a low ID, the host's own, and others.
fn probe_streams() -> Vec<u32> {
    (0..0x20).chain(0x40..0x60).chain([0x123, 0x7FFF]).collect()
}

/// The steps: the host's DMA at once; the host routes stream 0x40 + k through every
/// group k (32-bit SMR writes KCore allows) and DMAs with each; a VM with bank 1 of SMMU
/// 0 (its device page 0x4041_0000 at IOVA 0x9000_0000) is created and verified; its device
/// reads its page; every host stream tries the VM's IOVA and KCore's region.
fn steps() -> String {
    let mut s = Vec::new();
    let dma = |smmu: u64, stream: u64, iova: u64| {
        format!(
            r#"{{"cpu": 0, "dma_load": {{"smmu": {smmu}, "cb": {FREE_BANK}, "stream": {stream}, "iova": "{iova:#x}"}}}}"#
        )
    };
    for smmu in 0..2 {
        for stream in [0, 1, 2, HOST_STREAM, 0x7FFF] {
            s.push(dma(smmu, stream, 0x4E00_0000));
            s.push(dma(smmu, stream, 0x4020_0000));
        }
    }
    for smmu in 0..2 {
        for k in 0..GROUPS {
            let addr = SMMU_BASE + smmu * SMMU_STRIDE + gr0::smr(k);
            let v = smr::VALID as u64 | (HOST_STREAM + k);
            s.push(format!(
                r#"{{"cpu": 0, "host_store": ["{addr:#x}", "{v:#x}"], "size": 4}}"#
            ));
        }
        for k in 0..GROUPS {
            for iova in [0x4E00_0000u64, 0x4020_0000, 0x1000] {
                s.push(dma(smmu, HOST_STREAM + k, iova));
            }
        }
    }
    s.push(
        format!(
            r#"{{"cpu": 0, "hvc": ["REGISTER_KVM"]}},
           {{"cpu": 0, "hvc": ["REGISTER_VCPU", 1, 0]}},
           {{"cpu": 0, "hvc": ["SMMU_ALLOC_PGD", {VM_BANK}, 1, 0]}},
           {{"cpu": 0, "hvc": ["SMMU_LPAE_MAP", "{VM_IOVA:#x}", "{VM_PAGE:#x}", "0xc3", {VM_BANK}, 0]}},
           {{"cpu": 0, "hvc": ["SET_BOOT_INFO", 1, "0x80000000", 8192]}},
           {{"cpu": 0, "host_store": ["0x40200000", "0x1111"]}},
           {{"cpu": 0, "host_store": ["0x40201ff8", "0x2222"]}},
           {{"cpu": 0, "hvc": ["REMAP_VM_IMAGE", 1, "0x40200", 0]}},
           {{"cpu": 0, "hvc": ["REMAP_VM_IMAGE", 1, "0x40201", 0]}},
           {{"cpu": 0, "hvc": ["VERIFY_VM_IMAGE", 1]}},
           {{"cpu": 0, "dma_load": {{"smmu": 0, "cb": {VM_BANK}, "iova": "{VM_IOVA:#x}"}}}}"#
        )
        .trim()
        .to_string(),
    );
    for smmu in 0..2 {
        for stream in (0..GROUPS).map(|k| HOST_STREAM + k).chain([0, 2, 0x7FFF]) {
            s.push(dma(smmu, stream, VM_IOVA));
            s.push(dma(smmu, stream, 0x4E00_0000));
        }
    }
    s.join(",\n")
}

fn scenario() -> Scenario {
    let text = format!(
        r#"{{"name": "smmu_hostile_reset", "profile": "arm", "steps": [{}]}}"#,
        steps()
    );
    parse("smmu_hostile_reset.json", &text).unwrap()
}

/// The routing of one stream match group as it acts: the SMR if valid, and the S2CR's
/// type (with the bank for translate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Unused,
    Matches(u32, S2cr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum S2cr {
    Translate(u32),
    Bypass,
    Fault,
}

fn s2cr_of(v: u64) -> S2cr {
    match s2cr::ty(v as u32) {
        s2cr::TYPE_TRANSLATE => S2cr::Translate(v as u32 & s2cr::CBNDX),
        s2cr::TYPE_BYPASS => S2cr::Bypass,
        _ => S2cr::Fault,
    }
}

/// What KCore's boot must have established on SMMU `i`, as registers read: sCR0, each
/// group's effective routing (and its S2CR, which a later valid SMR would use), each
/// bank's CBAR, CBA2R, SCTLR, TCR and TTBR0, and the IOTLB's size.
#[derive(Debug, PartialEq, Eq)]
struct BootState {
    scr0: u64,
    groups: Vec<(Group, S2cr)>,
    banks: Vec<[u64; 5]>,
    iotlb: usize,
    pending: usize,
}

fn boot_state(m: &CoreMachine, i: usize) -> BootState {
    let mut bus = m.core.hw.smmus();
    let s = bus.smmu(i);
    let mut r = |off: u64, w: Width| s.read(off, w).unwrap();
    let scr0 = r(gr0::SCR0, Width::W32);
    let groups = (0..GROUPS)
        .map(|k| {
            let smr_v = r(gr0::smr(k), Width::W32);
            let route = s2cr_of(r(gr0::s2cr(k), Width::W32));
            let g = if smr_v & smr::VALID as u64 != 0 {
                Group::Matches(smr_v as u32, route)
            } else {
                Group::Unused
            };
            (g, route)
        })
        .collect();
    let banks = (0..BANKS)
        .map(|n| {
            let page = 0x8000 + n * 0x1000;
            [
                r(gr1::cbar(n), Width::W32),
                r(gr1::cba2r(n), Width::W32),
                r(page + cb::SCTLR, Width::W32),
                r(page + cb::TCR, Width::W32),
                r(page + cb::TTBR0, Width::W64),
            ]
        })
        .collect();
    BootState {
        scr0,
        groups,
        banks,
        iotlb: s.iotlb_entries(),
        pending: s.pending_invalidations(),
    }
}

/// Every stream's DMA (read and write) at every probed address, on both SMMUs, translated
/// by the SMMU as its registers and IOTLB say: each must fault, except stream 1's at the
/// VM's IOVA when `vm` (the VM's device, to the VM's page). The breaches found.
fn probe(m: &CoreMachine, vm: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut reached = 0;
    let hw = &m.core.hw;
    for i in 0..2 {
        for sid in probe_streams() {
            for iova in probe_iovas() {
                for dir in [Access::Read, Access::Write] {
                    let t = hw.smmus().smmu(i).translate(&hw.phys, sid, iova, dir);
                    let Ok(t) = t else { continue };
                    let own = vm && i == 0 && sid == VM_BANK as u32 && iova >> 12 == VM_IOVA >> 12;
                    if own && t.pa >> 12 == VM_PAGE >> 12 {
                        reached += 1;
                    } else {
                        out.push(format!(
                            "SMMU {i} stream {sid:#x} {dir:?} at {iova:#x} reached {:#x} ({:?})",
                            t.pa, t.route
                        ));
                    }
                }
            }
        }
    }
    if vm && reached != 2 {
        out.push(format!(
            "the VM's device does not reach its page ({reached} of 2)"
        ));
    }
    out
}

/// What a run found: state after boot different from a clean boot's, DMAs that reached
/// memory they must not, lockstep mismatches.
#[derive(Debug, Default)]
struct Found {
    state: Vec<String>,
    dma: Vec<String>,
    lockstep: Vec<String>,
}

impl Found {
    fn any(&self) -> bool {
        !(self.state.is_empty() && self.dma.is_empty() && self.lockstep.is_empty())
    }
}

/// The boot state of a machine whose SMMUs came out of a clean reset (the reference).
fn clean_state(sc: &Scenario) -> Vec<BootState> {
    let l = with_smmu_reset(SmmuReset::Clean, || {
        Lockstep::for_scenario(sc, Some(ProfileKind::Arm)).unwrap()
    });
    (0..2).map(|i| boot_state(&l.core, i)).collect()
}

/// Boots with hostile SMMUs from `seed` and runs the scenario in lockstep, probing DMA
/// after boot, after the host's routing, and at the end.
fn run(sc: &Scenario, clean: &[BootState], seed: u64) -> Found {
    let mut f = Found::default();
    let mut l = with_smmu_reset(SmmuReset::Hostile(seed), || {
        Lockstep::for_scenario(sc, Some(ProfileKind::Arm)).unwrap()
    });
    assert!(!l.core.core.halted(), "seed {seed}: KCore halted at boot");
    for (i, want) in clean.iter().enumerate() {
        let got = boot_state(&l.core, i);
        if &got != want {
            f.state.push(format!(
                "seed {seed}: SMMU {i} after boot differs from a clean boot: {}",
                diff(want, &got)
            ));
        }
    }
    f.dma.extend(probe(&l.core, false));
    let routed = sc
        .steps
        .iter()
        .position(|st| format!("{:?}", st.action).contains("RegisterKvm"))
        .unwrap();
    for (k, st) in sc.steps.iter().enumerate() {
        let r = l.step(st).unwrap();
        f.lockstep.extend(
            r.mismatches
                .iter()
                .map(|m| format!("seed {seed} step {} ({:?}): {m}", st.index, st.action)),
        );
        assert!(
            !r.outside_contract,
            "seed {seed}: step {k} outside the contract"
        );
        if l.core.core.halted() {
            f.lockstep
                .push(format!("seed {seed}: KCore halted at step {k}"));
            break;
        }
        if k + 1 == routed {
            f.dma.extend(probe(&l.core, false));
        }
    }
    f.dma.extend(probe(&l.core, true));
    f.lockstep.extend(l.compare_whole());
    f
}

fn diff(want: &BootState, got: &BootState) -> String {
    let mut d = Vec::new();
    if want.scr0 != got.scr0 {
        d.push(format!("sCR0 {:#x} (clean {:#x})", got.scr0, want.scr0));
    }
    for (k, (w, g)) in want.groups.iter().zip(&got.groups).enumerate() {
        if w != g {
            d.push(format!("group {k}: {g:?} (clean {w:?})"));
        }
    }
    for (n, (w, g)) in want.banks.iter().zip(&got.banks).enumerate() {
        if w != g {
            d.push(format!("bank {n}: {g:x?} (clean {w:x?})"));
        }
    }
    if (want.iotlb, want.pending) != (got.iotlb, got.pending) {
        d.push(format!(
            "IOTLB {} entries, {} pending (clean {}, {})",
            got.iotlb, got.pending, want.iotlb, want.pending
        ));
    }
    d.join("; ")
}

/// The hostile reset is hostile: without KCore's boot, devices reach RAM through it
/// (bypasses, enabled banks, stale IOTLB entries), across the seeds.
#[test]
fn the_hostile_reset_leaves_what_firmware_may_leave() {
    use corevisor_sim::smmu::{Route, Smmu, SmmuConfig};
    let ram = (0x4000_0000, 0x5000_0000);
    let (mut bypass_s2cr, mut valid_smrs, mut stale, mut cached_hits, mut banks_on) =
        (0, 0, 0, 0, 0);
    for seed in 0..SEEDS {
        let mut s = Smmu::new(SmmuConfig::default());
        s.reset_to(SmmuReset::Hostile(seed), ram);
        assert_eq!(
            s.clone()
                .with_reset(SmmuReset::Hostile(seed), ram)
                .stream_groups(),
            s.stream_groups(),
            "seeded: the same seed, the same contents"
        );
        for (r, c) in s.stream_groups() {
            valid_smrs += usize::from(r & smr::VALID != 0);
            bypass_s2cr += usize::from(s2cr::ty(c) == s2cr::TYPE_BYPASS);
        }
        stale += s.iotlb_entries();
        for n in 0..BANKS {
            banks_on += usize::from(s.read(0x8000 + n * 0x1000, Width::W32).unwrap() & 1 != 0);
        }
        // Force the client ports on: streams are routed by what firmware left.
        let scr0 = s.read(gr0::SCR0, Width::W32).unwrap();
        s.write(gr0::SCR0, Width::W32, scr0 & !1).unwrap();
        let mem = corevisor_sim::mem::SimMemory::new();
        for sid in probe_streams() {
            for iova in probe_iovas() {
                if let Ok(t) = s.translate(&mem.phys, sid, iova, Access::Read) {
                    cached_hits += usize::from(t.cached && matches!(t.route, Route::Bank(_)));
                }
            }
        }
        assert!(s.clone().with_reset(SmmuReset::Clean, ram).iotlb_entries() == 0);
    }
    assert!(bypass_s2cr > 0 && valid_smrs > 0 && stale > 0 && banks_on > 0);
    assert!(cached_hits > 0, "stale IOTLB entries are reachable");
}

/// Healthy KCore: for every seed, the boot leaves the SMMUs as a clean boot would, no
/// stream reaches anything it must not, and lockstep agrees at every step.
#[test]
fn dma_isolation_holds_from_the_first_step_whatever_firmware_left() {
    let sc = scenario();
    let clean = clean_state(&sc);
    // The clean boot itself passes the probes (the reference is not vacuous).
    let l = Lockstep::for_scenario(&sc, Some(ProfileKind::Arm)).unwrap();
    assert!(probe(&l.core, false).is_empty());
    assert!(clean
        .iter()
        .all(|s| s.groups.iter().all(|g| g.0 == Group::Unused)));
    for seed in 0..SEEDS {
        let f = run(&sc, &clean, seed);
        assert!(!f.any(), "seed {seed}: {f:#?}");
    }
}

/// Must-show 6: a boot that skips clearing any one SMR or S2CR, planted as
/// `smmu_boot_skips_one` with `"smr:N"` / `"s2cr:N"`, is caught for every N. A skipped
/// S2CR is a route firmware left (a bypass the host reaches by validating the group's SMR,
/// which KCore lets it do): a DMA reaches memory and lockstep reports the mismatch, for
/// every N. A skipped SMR leaves a valid SMR whose S2CR KCore did turn to fault, and KCore
/// invalidates any SMR matching a VM's stream when it attaches a bank: no DMA reaches
/// anything through it, so it is caught by the SMMU's state after boot differing from a
/// clean boot's (a group matches streams KCore never routed).
#[cfg(feature = "mutants")]
#[test]
fn a_boot_that_skips_clearing_any_one_smr_or_s2cr_is_caught() {
    use corevisor_kcore::mutants::{self, Fault};
    let sc = scenario();
    let clean = mutants::with(None, || clean_state(&sc));
    let mut report = Vec::new();
    for kind in ["smr", "s2cr"] {
        for n in 0..GROUPS {
            let arg: &'static str = Box::leak(format!("{kind}:{n}").into_boxed_str());
            let by_access = |f: &Found| !f.dma.is_empty() && !f.lockstep.is_empty();
            let caught = (0..SEEDS).find_map(|seed| {
                let f = mutants::with(Some(Fault::SmmuBootSkipsOne), || {
                    mutants::with_arg(arg, || run(&sc, &clean, seed))
                });
                let enough = match kind {
                    "s2cr" => by_access(&f),
                    _ => !f.state.is_empty(),
                };
                enough.then_some((seed, f))
            });
            let (seed, f) = caught.unwrap_or_else(|| panic!("{arg}: not caught by any seed"));
            report.push(format!(
                "{arg}: seed {seed}: {}",
                f.dma.first().or(f.state.first()).unwrap()
            ));
        }
    }
    eprintln!("{}", report.join("\n"));
}

/// A scenario file's `machine.smmu_reset` reaches the checked machine: booted from hostile
/// firmware state, every stream's DMA still faults until KCore gives a bank a mapping, with
/// the core beside the model.
#[test]
fn a_scenario_file_boots_its_smmus_hostile() {
    use corevisor_check::lockstep::Lockstep;
    use corevisor_sim::scenario::parse;
    let steps: Vec<String> = (0..8)
        .map(|s| {
            format!(
                r#"{{"cpu": 0, "dma_load": {{"smmu": 0, "cb": 0, "stream": {s}, "iova": "0x90000000"}}}}"#
            )
        })
        .collect();
    let text = format!(
        r#"{{"name": "t", "profile": "arm", "machine": {{"smmu_reset": {{"hostile": 7}}}}, "steps": [{}]}}"#,
        steps.join(",")
    );
    let sc = parse("t.json", &text).unwrap();
    let arm = Some(corevisor_spec::profile::ProfileKind::Arm);
    let mut l = Lockstep::for_scenario(&sc, arm).unwrap();
    // The registers KCore's boot leaves alone keep the firmware's values: the machine was
    // booted from the file's hostile reset, not clean.
    let clean_text = text.replace(r#""smmu_reset": {"hostile": 7}"#, "");
    let clean = Lockstep::for_scenario(&parse("c.json", &clean_text).unwrap(), arm).unwrap();
    let dump = |l: &Lockstep| {
        use corevisor_kcore::hw::{Hw, MmioWidth};
        (0..0x1_0000u64)
            .step_by(4)
            .map(|o| {
                l.core
                    .core
                    .hw
                    .mmio_read(0x0B00_0000 + o, MmioWidth::W32)
                    .ok()
            })
            .collect::<Vec<_>>()
    };
    assert_ne!(
        dump(&l),
        dump(&clean),
        "the scenario's smmu_reset was not applied"
    );
    for st in &sc.steps {
        let r = l.step(st).unwrap();
        assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
        assert_eq!(
            r.core.outcome,
            corevisor_sim::machine::Outcome::Fault,
            "step {}",
            st.index
        );
    }
}
