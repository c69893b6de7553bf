//! `corevisor soak` (issues 10 and 20): random step sequences, steered towards VM
//! lifecycles and to where isolation holes live, run on the core beside the model until a
//! number of steps has run. Each sequence boots one VM and then draws operations that are
//! resolved against the machine: up to three VMs at once, each with two vCPUs that run on
//! different CPUs (any CPU where the host runs; with every CPU in a guest, one takes an
//! interrupt first), a device whose bank maps its buffer and the VM's RAM at IOVA = GPA
//! before VERIFY, guest steps on a CPU that runs the VM (also after the VM powered off), a
//! fault page served with the VM's own page or one a dead VM had (reuse), DMA through the
//! banks of live and dead VMs, power-off from one vCPU while another runs, reclaim with
//! the vCPUs stopped and the bank freed or (hostile) not, the UART and (rarely) each
//! declared device range ioremapped, and, rarely since KCore halts on most of them and a
//! halt ends a sequence: images remapped out of order or scattered, a bank mapping another
//! VM's page, SMMU maps after VERIFY, host loads of a VM's pages. `SoakReport` counts the
//! sequences that reached each of these states.
//!
//! Each step is compared on what it changed (`incremental.rs`: the same relation, at the
//! cost of the step), and the whole machine at boot and at the end of every sequence.
//!
//! On a mismatch or a broken invariant the sequence is shrunk (steps dropped one at a time
//! while it still fails) and can be written as a scenario file.

use crate::engine::Outcome;
use crate::lockstep::{CheckedStep, Lockstep};
use corevisor_sim::scenario::{parse, Action, HvcCall, HvcName, MapProposal, ShareOp, Step};
use corevisor_spec::consts::{ctxt_id, smmu_id, ACTIVE, COREVISOR, HOSTVISOR, POWEROFF, VERIFIED};
use corevisor_spec::init::UART_BASE;
use corevisor_spec::state::{Ctxt, Shared};
use corevisor_spec::zmap::ZMap;
use corevisor_spec::Z;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const RAM: i128 = 0x4000_0000;
/// VMs alive at once at most: each has a slot of host RAM its pages come from.
const SLOTS: usize = 3;
/// Where every image is loaded (guest-physical), two pages.
const LOAD_ADDR: i128 = 0x8000_0000;
/// The guest-physical pages the host serves on a fault, and maps for the VM's device at
/// IOVA = GPA before VERIFY (as VFIO does): the same pfns reach the VM both ways.
const FAULT_GPA: i128 = 0x8040_0000;
const FAULT_PAGES: i128 = 3;
/// The device's own buffer, outside the VM's RAM.
const DEVICE_IOVA: i128 = 0x9000_0000;
/// Where the host ioremaps declared device range `k` into a VM: `IOREMAP_GPA + k MiB`.
const IOREMAP_GPA: i128 = 0xA000_0000;
/// Where a device's bank would map another VM's page or its buffer again (KCore refuses).
const STOLEN_IOVA: i128 = 0x9100_0000;

/// The 2 MiB host block holding slot `s`'s image (the VM receives the whole block).
fn image_block(s: usize) -> i128 {
    RAM + 0x20_0000 * (1 + s as i128)
}

/// The host page served for slot `s`'s fault page `i` (also mapped at IOVA = GPA).
fn fault_page(s: usize, i: i128) -> i128 {
    RAM + 0x80_0000 + s as i128 * 0x1_0000 + i * 4096
}

/// A word offset in a page: mostly one of the first four words, so that a load by one
/// principal meets a word another stored (the secrecy oracle reports a leak only for the
/// very word a VM stored), sometimes any of the 512.
fn word(r: &mut Rng) -> i128 {
    let w = if r.one_in(4) {
        r.below(512)
    } else {
        r.below(4)
    };
    w as i128 * 8
}

/// The host page slot `s`'s device gets at DEVICE_IOVA.
fn device_page(s: usize) -> i128 {
    RAM + 0x80_0000 + s as i128 * 0x1_0000 + 0x8000
}

/// The host's own pages (loads and stores, cipher outputs).
fn host_page(i: i128) -> i128 {
    RAM + 0xA0_0000 + i * 4096
}

/// Pages of slot `s` the generator hands out: reclaim returns them, reuse takes them.
fn slot_pages(s: usize) -> Vec<i128> {
    let mut v: Vec<i128> = (0..4).map(|p| image_block(s) + p * 4096).collect();
    v.extend((0..FAULT_PAGES).map(|i| fault_page(s, i)));
    v.push(device_page(s));
    v
}

/// The machine: 36 MiB of RAM at 1 GiB (the host's first 12 MiB, KCore the rest).
fn machine(cpus: usize) -> String {
    format!(
        r#"{{"name": "soak", "profile": "arm",
  "machine": {{"cpus": {cpus}, "ram_base": "0x40000000", "ram_mib": 36, "kcore_mib": 24}}, "steps": []}}"#
    )
}

/// A small, fast, seedable generator (SplitMix64); or, for the fuzz target, one that takes
/// its choices from the fuzzer's bytes first (a byte per small choice, eight per word) so
/// that coverage guidance steers every decision, and SplitMix64 once they run out.
#[derive(Clone)]
pub struct Rng {
    state: u64,
    tape: Vec<u8>,
    pos: usize,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng {
            state: seed,
            tape: Vec::new(),
            pos: 0,
        }
    }
    /// Choices read from `bytes` while they last; then SplitMix64 seeded with their FNV-1a
    /// hash, so inputs that differ go on differently.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        Rng {
            state: hash,
            tape: bytes.to_vec(),
            pos: 0,
        }
    }
    /// How many of the bytes the choices used.
    pub fn consumed(&self) -> usize {
        self.pos
    }
    pub fn next_u64(&mut self) -> u64 {
        if let Some(b) = self.tape.get(self.pos..self.pos + 8) {
            self.pos += 8;
            return u64::from_le_bytes(b.try_into().expect("eight bytes"));
        }
        self.pos = self.pos.max(self.tape.len());
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`; from the tape, one byte when `n <= 256`).
    pub fn below(&mut self, n: u64) -> u64 {
        if let Some(&b) = self.tape.get(self.pos).filter(|_| n <= 256) {
            self.pos += 1;
            return b as u64 % n;
        }
        self.next_u64() % n
    }
    /// True once in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.below(v.len() as u64) as usize])
    }
}

fn hvc(name: &str, args: &[i128]) -> Action {
    Action::Hvc {
        call: HvcCall::Named(HvcName::parse(name).expect("a known call")),
        args: args.to_vec(),
    }
}

fn run_vcpu(vm: i128, vcpu: i128, map: Option<MapProposal>) -> Action {
    Action::VcpuRun {
        vm,
        vcpu,
        map,
        pc: None,
    }
}

/// Figures of a soak run.
#[derive(Clone, Debug, Default)]
pub struct SoakReport {
    pub steps: u64,
    pub sequences: u64,
    /// Generated steps (the first VM's boot excluded) that did something: see
    /// [`Snapshot::nontrivial`].
    pub nontrivial_steps: u64,
    pub mismatches: u64,
    pub invariant_breaks: u64,
    pub seconds: f64,
    pub seed: u64,
    /// Sequences in which two or more VMs were VERIFIED at once.
    pub with_two_live_vms: u64,
    /// Sequences in which three VMs were VERIFIED at once.
    pub with_three_live_vms: u64,
    /// Sequences in which a page owned by one VM was later owned by another.
    pub with_page_reused: u64,
    /// Sequences in which a VM powered off while another of its vCPUs was ACTIVE.
    pub with_vcpu_running_at_poweroff: u64,
    /// Sequences in which a VM's bank got a mapping (SMMU_LPAE_MAP completed).
    pub with_device_bank: u64,
    /// Per hostile situation, the sequences that tried it.
    pub tried: BTreeMap<&'static str, u64>,
    /// The first failing sequence, shrunk, with what failed.
    pub failing: Option<(Vec<Step>, Vec<String>)>,
}

impl SoakReport {
    /// The coverage figures, as fractions of sequences, named as the JSON line names them.
    pub fn fractions(&self) -> [(&'static str, f64); 4] {
        let f = |n: u64| n as f64 / self.sequences.max(1) as f64;
        [
            ("two_live_vms", f(self.with_two_live_vms)),
            ("page_reused", f(self.with_page_reused)),
            (
                "vcpu_running_at_poweroff",
                f(self.with_vcpu_running_at_poweroff),
            ),
            ("device_bank", f(self.with_device_bank)),
        ]
    }
}

/// What one step showed.
struct Seen {
    nontrivial: bool,
    mismatches: Vec<String>,
    broken: Vec<&'static str>,
    /// Under [`Judge::Isolation`]: the invariants the core's own state breaks (its tables
    /// and metadata read back, not the model's).
    core_broken: Vec<&'static str>,
}

/// What a sequence reached (the figures of [`SoakReport`]).
#[derive(Default)]
struct Reached {
    two_live_vms: bool,
    three_live_vms: bool,
    /// The hostile situations tried ([`Sequence::event`], and images remapped out of
    /// order or scattered).
    events: BTreeSet<&'static str>,
    page_reused: bool,
    running_at_poweroff: bool,
    device_bank: bool,
}

/// The model's state before a step, to tell whether the step did something.
struct Snapshot {
    shared: Shared,
    ctxts: ZMap<Ctxt>,
    modes: Vec<(bool, bool, Z, Z)>,
}

impl Snapshot {
    fn of(l: &Lockstep) -> Self {
        Snapshot {
            shared: l.model.global.shared.clone(),
            ctxts: l.model.global.shadow_ctxts.clone(),
            modes: modes(l),
        }
    }

    /// A step is non-trivial when it changed KCore's abstract state or moved data for a
    /// principal:
    /// * a page table (stage 2 or SMMU), the page metadata, a VM record, KCore's counters,
    ///   a bank's owner or a lock, the shadow context of a vCPU other than the trapping
    ///   CPU's own (e.g. one LOAD_CRYPT_VCPU restores), or a CPU's mode or current vCPU (a
    ///   world switch); or
    /// * a load, store or DMA that completed, or a hypercall that wrote memory (the
    ///   cipher's outputs).
    ///
    /// A halt, a step outside the spec's contract, a refused request that changed nothing
    /// (CLEAR of a live VM, a GRANT of nothing, an SMMU call on an unowned bank), a null
    /// hypercall (the timers) and an access that faulted with nothing served are trivial.
    /// Registers alone (x0 of a refusal) do not count. Memory is compared for hypercalls
    /// only: before a principal's access the checker writes the word it names into the
    /// model's one word per page, so for an access only completion says data moved.
    fn nontrivial(&self, l: &Lockstep, r: &CheckedStep) -> bool {
        if matches!(r.model.result, Outcome::Halt | Outcome::Undefined) || r.outside_contract {
            return false;
        }
        let access = matches!(
            r.model.kind,
            "host_load" | "host_store" | "guest_load" | "guest_store" | "dma_load" | "dma_store"
        );
        let (a, b) = (&self.shared, &l.model.global.shared);
        let tables = a.npts != b.npts
            || a.s2page != b.s2page
            || a.core_data != b.core_data
            || a.vminfos != b.vminfos
            || a.spts != b.spts
            || a.smmu_vmid != b.smmu_vmid
            || a.hlock != b.hlock;
        let wrote = !access && a.flatmem != b.flatmem;
        let now = modes(l);
        // The trapping CPU's own registers, saved and restored around every trap (x0 of a
        // refusal too), are not state KCore changed on a principal's behalf.
        let cpu = usize::try_from(r.model.cpu).unwrap_or(0);
        let own = |m: &[(bool, bool, Z, Z)]| m.get(cpu).map(|&(_, _, v, k)| ctxt_id(v, k));
        let (was, is) = (own(&self.modes), own(&now));
        let contexts = self
            .ctxts
            .changed_keys(&l.model.global.shadow_ctxts)
            .into_iter()
            .any(|k| Some(k) != was && Some(k) != is);
        tables
            || wrote
            || contexts
            || self.modes != now
            || (access && r.model.result == Outcome::Ok)
    }
}

/// Each CPU's mode and current vCPU in the model.
fn modes(l: &Lockstep) -> Vec<(bool, bool, Z, Z)> {
    l.model
        .cpus
        .iter()
        .map(|c| (c.ihost, c.icore, c.cur_vmid, c.cur_vcpuid))
        .collect()
}

/// A VM the sequence created.
#[derive(Clone, Debug)]
struct Vm {
    id: Z,
    slot: usize,
    vcpus: Z,
    /// Context bank of SMMU 0 its device is on, while the host has not freed it.
    bank: Option<Z>,
    /// Host pages served on its faults that lie outside its slot (reused ones).
    borrowed: Vec<i128>,
    /// Where device ranges are ioremapped into it.
    mmio: Vec<i128>,
    /// Reclaimed: its pages are back with the host.
    cleared: bool,
}

/// One sequence on a fresh machine; the steps it ran (resolved) and what they showed.
/// What fails a sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Judge {
    /// Any difference from the model, a leak or tamper of the secrecy oracle, or a broken
    /// invariant (the default).
    #[default]
    Refinement,
    /// Only what does not trust the seed: a leak or tamper of the secrecy oracle
    /// (`secrecy.rs`), or an invariant the core breaks on its own (`scrubbed_page_zero`).
    /// Differences from the model are counted but let the sequence go on, so a hole the
    /// model shares with the core is still found where it leaks (issue 20).
    Isolation,
}

impl Judge {
    /// Does this step's report fail the sequence?
    fn fails(self, seen: &Seen) -> bool {
        match self {
            Judge::Refinement => !seen.mismatches.is_empty() || !seen.broken.is_empty(),
            Judge::Isolation => {
                seen.mismatches.iter().any(|m| isolation_failure(m)) || !seen.core_broken.is_empty()
            }
        }
    }

    /// What of this step's report to name (`why`).
    fn why(self, seen: &Seen) -> Vec<String> {
        match self {
            Judge::Refinement => {
                let mut why = seen.mismatches.clone();
                why.extend(seen.broken.iter().map(|b| format!("invariant {b} broken")));
                why
            }
            Judge::Isolation => {
                let mut why: Vec<String> = seen
                    .mismatches
                    .iter()
                    .filter(|m| isolation_failure(m))
                    .cloned()
                    .collect();
                why.extend(
                    seen.core_broken
                        .iter()
                        .map(|b| format!("invariant {b} broken on the core")),
                );
                why
            }
        }
    }
}

/// A report of the checks that do not compare with the model (besides the invariants on
/// the core's own state, [`Seen::core_broken`]).
fn isolation_failure(m: &str) -> bool {
    m.starts_with("leak:") || m.starts_with("tamper:") || m.contains("scrubbed_page_zero")
}

struct Sequence {
    judge: Judge,
    l: Lockstep,
    steps: Vec<Step>,
    seen: Vec<Seen>,
    /// Steps count towards `nontrivial_steps` (off during the first VM's boot).
    counted: bool,
    vms: Vec<Vm>,
    /// Pages a dead VM had, back with the host: the next fault of another VM may get them.
    reclaimed: Vec<i128>,
    /// The VM that last owned each page the generator hands out.
    last_owner: BTreeMap<i128, Z>,
    reached: Reached,
}

thread_local! {
    /// The booted machine per CPU count, compared whole once: every sequence starts from a
    /// copy (booting is deterministic, so the copy is the machine a fresh boot gives).
    static BOOTED: std::cell::RefCell<Vec<(usize, Lockstep)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn booted(cpus: usize) -> Lockstep {
    BOOTED.with(|b| {
        let mut b = b.borrow_mut();
        if let Some((_, l)) = b.iter().find(|(n, _)| *n == cpus) {
            return l.clone();
        }
        let sc = parse("soak.json", &machine(cpus)).expect("the soak machine parses");
        let mut l = Lockstep::for_scenario(&sc, None).expect("the soak machine boots");
        // Each step is compared where it changed the machine; the whole machine at boot
        // and at the end of every sequence (`Sequence::finish`).
        l.set_incremental(true);
        l.compare_whole();
        // The invariants' memo starts from the booted machine too.
        l.model.broken_invariants();
        b.push((cpus, l.clone()));
        l
    })
}

impl Sequence {
    fn new(cpus: usize) -> Self {
        Self::judged(cpus, Judge::Refinement)
    }

    fn judged(cpus: usize, judge: Judge) -> Self {
        Sequence {
            judge,
            l: booted(cpus),
            steps: Vec::new(),
            seen: Vec::new(),
            counted: true,
            vms: Vec::new(),
            reclaimed: Vec::new(),
            last_owner: BTreeMap::new(),
            reached: Reached::default(),
        }
    }

    /// The whole machine compared at the end of the sequence; what differs counts against
    /// the last step.
    fn finish(&mut self) {
        if self.failed() || self.judge == Judge::Isolation {
            return;
        }
        // The sequence ends here: no need to refresh what the next step would compare.
        let whole = self.l.compare();
        if let Some(last) = self.seen.last_mut() {
            last.mismatches.extend(
                whole
                    .into_iter()
                    .map(|m| format!("at the end of the sequence: {m}")),
            );
        }
    }

    /// Runs one step, unless the machine halted or a step failed (the sequence is over).
    fn go(&mut self, cpu: i128, action: Action) -> Option<CheckedStep> {
        if self.stop() {
            return None;
        }
        let st = Step {
            index: self.steps.len(),
            line: None,
            cpu,
            oracle: vec![],
            size: None,
            action,
        };
        let before = Snapshot::of(&self.l);
        if let Some(e) = self.event(cpu, &st.action) {
            self.reached.events.insert(e);
        }
        let r = self.l.step(&st).expect("soak steps are well formed");
        let core_broken = match self.judge {
            Judge::Refinement => Vec::new(),
            Judge::Isolation => self.core_invariants(),
        };
        self.seen.push(Seen {
            core_broken,
            nontrivial: self.counted && before.nontrivial(&self.l, &r),
            mismatches: r.mismatches.clone(),
            broken: r.model.broken.clone(),
        });
        self.note(&st.action, &r);
        self.steps.push(st);
        Some(r)
    }

    /// The hostile situation a step about to run on `cpu` tries, if any (from the
    /// model's state before it): what the soak must keep trying, whatever KCore answers.
    fn event(&self, cpu: i128, a: &Action) -> Option<&'static str> {
        let m = &self.l.model.global.shared;
        let off = |v: Z| (1..COREVISOR).contains(&v) && self.vm_state(v) == POWEROFF;
        let banked = |v: Z| (0..2).any(|i| (0..8).any(|cb| *m.smmu_vmid.get(smmu_id(i, cb)) == v));
        let runs = |v: Z| (0..8).any(|k| self.vcpu_active(v, k));
        match a {
            Action::GuestLoad { .. } | Action::GuestStore { .. } => {
                let c = usize::try_from(cpu).ok()?;
                off(self.running(c)?.0).then_some("guest access after power-off")
            }
            Action::DmaLoad { cb, .. } | Action::DmaStore { cb, .. } => {
                off(*m.smmu_vmid.get(smmu_id(0, *cb))).then_some("DMA by a dead VM's device")
            }
            Action::HostLoad { addr } => {
                let o = self.owner(*addr);
                (1..COREVISOR)
                    .contains(&o)
                    .then_some("host load of a VM's page")
            }
            Action::Hvc {
                call: HvcCall::Named(n),
                args,
            } => match n {
                HvcName::ClearVmS2Range if off(args[0]) && runs(args[0]) => {
                    Some("CLEAR with a vCPU active")
                }
                HvcName::ClearVmS2Range if off(args[0]) && banked(args[0]) => {
                    Some("CLEAR with a bank attached")
                }
                HvcName::PhysAddrIoremap if args[2] != UART_BASE => {
                    Some("ioremap of an SMMU window")
                }
                HvcName::SmmuLpaeMap => {
                    let owner = *m.smmu_vmid.get(smmu_id(args[4], args[3]));
                    let verified =
                        (1..COREVISOR).contains(&owner) && self.vm_state(owner) == VERIFIED;
                    verified.then_some("SMMU map after VERIFY")
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// The figures this step reaches, read from the model.
    fn note(&mut self, a: &Action, r: &CheckedStep) {
        let live = self
            .vms
            .iter()
            .filter(|v| self.vm_state(v.id) == VERIFIED)
            .count();
        self.reached.two_live_vms |= live >= 2;
        self.reached.three_live_vms |= live >= 3;
        for s in 0..SLOTS {
            for pa in slot_pages(s) {
                let owner = self.owner(pa);
                if !(1..COREVISOR).contains(&owner) {
                    continue;
                }
                if let Some(prev) = self.last_owner.insert(pa, owner) {
                    self.reached.page_reused |= prev != owner;
                }
            }
        }
        if let Action::Hvc { call, args } = a {
            let map = matches!(call, HvcCall::Named(HvcName::SmmuLpaeMap));
            if map && r.model.result == Outcome::Ok && !self.l.model.global.halt {
                let bank = smmu_id(args[4], args[3]);
                let owner = *self.l.model.global.shared.smmu_vmid.get(bank);
                self.reached.device_bank |= (1..COREVISOR).contains(&owner);
            }
        }
    }

    /// The invariants (`invariants.rs`, none exempt) on the core's own state, and
    /// `image_signed`: every VERIFIED VM's image pages are the pages its vendor signed
    /// (`CoreMachine::unsigned_image_page`).
    fn core_invariants(&self) -> Vec<&'static str> {
        let sh = crate::abs::abs_shared(&self.l.core.core, &self.l.model.global.shared);
        let mut bad: Vec<&'static str> =
            crate::invariants::check_shared(&self.l.model.machine, &sh)
                .into_iter()
                .collect();
        let verified = |v: &u32| self.vm_state(Z::from(*v)) == VERIFIED;
        if (1..COREVISOR as u32)
            .filter(verified)
            .any(|v| self.l.core.unsigned_image_page(v).is_some())
        {
            bad.push("image_signed");
        }
        bad
    }

    fn failed(&self) -> bool {
        self.seen.last().is_some_and(|s| self.judge.fails(s))
    }

    fn stop(&self) -> bool {
        self.l.core.core.halted() || self.failed()
    }

    // The generator steers by the core's state: the same as the model's while they agree
    // (a refinement-judged sequence ends at the first difference), and under
    // `Judge::Isolation` it follows the machine where it goes, past a difference.

    fn vm_state(&self, vm: Z) -> Z {
        let vms = &self.l.core.core.vms;
        vms.get(vm as usize)
            .map_or(corevisor_spec::consts::UNUSED, |v| Z::from(v.read().state))
    }

    fn vcpu_active(&self, vm: Z, vcpu: Z) -> bool {
        let vms = &self.l.core.core.vms;
        vms.get(vm as usize)
            .is_some_and(|v| v.read().vcpu_state.get(vcpu as usize).copied() == Some(ACTIVE as u32))
    }

    fn owner(&self, pa: i128) -> Z {
        Z::from(self.l.core.core.page((pa / 4096) as u64).owner)
    }

    fn cpus(&self) -> usize {
        self.l.model.cpus.len()
    }

    fn host_mode(&self, c: usize) -> bool {
        let k = &self.l.core.cpus[c].run;
        k.ihost && !k.icore
    }

    /// The (VM, vCPU) CPU `c` runs, if it runs one.
    fn running(&self, c: usize) -> Option<(Z, Z)> {
        let k = &self.l.core.cpus[c].run;
        (!k.ihost && !k.icore).then_some((Z::from(k.cur_vmid), Z::from(k.cur_vcpuid)))
    }

    /// The CPUs running a vCPU of `vm`.
    fn cpus_of(&self, vm: Z) -> Vec<usize> {
        (0..self.cpus())
            .filter(|&c| self.running(c).is_some_and(|(v, _)| v == vm))
            .collect()
    }

    /// A CPU where the host runs, other than `avoid`; if every CPU runs a vCPU, one of
    /// them takes an interrupt and exits to the host.
    fn host_cpu(&mut self, r: &mut Rng, avoid: Option<usize>) -> Option<usize> {
        let free: Vec<usize> = (0..self.cpus())
            .filter(|&c| self.host_mode(c) && Some(c) != avoid)
            .collect();
        if let Some(c) = r.pick(&free) {
            return Some(c);
        }
        let busy: Vec<usize> = (0..self.cpus()).filter(|&c| Some(c) != avoid).collect();
        let c = r.pick(&busy)?;
        self.go(c as i128, Action::Irq);
        (!self.stop() && self.host_mode(c)).then_some(c)
    }

    /// A CPU running a vCPU of `vm` (`vcpu` if given), other than `avoid`; the host runs
    /// one there first if none does and the VM can run.
    fn ensure_running(
        &mut self,
        r: &mut Rng,
        vm: &Vm,
        vcpu: Option<Z>,
        avoid: Option<usize>,
    ) -> Option<usize> {
        let on = (0..self.cpus()).find(|&c| {
            Some(c) != avoid
                && self
                    .running(c)
                    .is_some_and(|(v, k)| v == vm.id && vcpu.is_none_or(|w| w == k))
        });
        if on.is_some() {
            return on;
        }
        if self.vm_state(vm.id) != VERIFIED {
            return None;
        }
        let idle: Vec<Z> = (0..vm.vcpus)
            .filter(|&k| vcpu.is_none_or(|w| w == k) && !self.vcpu_active(vm.id, k))
            .collect();
        let k = r.pick(&idle)?;
        let c = self.host_cpu(r, avoid)?;
        self.go(c as i128, run_vcpu(vm.id, k, None));
        (!self.stop() && self.running(c) == Some((vm.id, k))).then_some(c)
    }

    fn pick_vm(&self, r: &mut Rng, ok: impl Fn(&Self, &Vm) -> bool) -> Option<Vm> {
        let v: Vec<usize> = (0..self.vms.len())
            .filter(|&i| ok(self, &self.vms[i]))
            .collect();
        r.pick(&v).map(|i| self.vms[i].clone())
    }

    fn vm_mut(&mut self, id: Z) -> &mut Vm {
        self.vms
            .iter_mut()
            .find(|v| v.id == id)
            .expect("a VM of the sequence")
    }

    /// A slot no VM of the sequence holds whose pages are all the host's again; one a dead
    /// VM had, if there is one, so that its pages go to another VM.
    fn free_slot(&self) -> Option<usize> {
        let free: Vec<usize> = (0..SLOTS)
            .filter(|&s| {
                !self.vms.iter().any(|v| v.slot == s && !v.cleared)
                    && slot_pages(s).iter().all(|&pa| self.owner(pa) == HOSTVISOR)
            })
            .collect();
        let used = |s: &&usize| self.vms.iter().any(|v| v.slot == **s);
        free.iter().find(used).or(free.first()).copied()
    }

    /// A bank of SMMU 0 no VM of the sequence holds.
    fn free_bank(&self) -> Option<Z> {
        (0..8).find(|&cb| !self.vms.iter().any(|v| v.bank == Some(cb)))
    }

    /// A VM built the KVM way on a host CPU: REGISTER_KVM, two vCPUs (one, now and then),
    /// usually a device whose bank maps its own buffer and all the RAM the VM will be
    /// served at IOVA = GPA, sometimes the UART ioremapped, the image remapped (rarely out
    /// of order or from scattered pages) and verified.
    fn create_vm(&mut self, r: &mut Rng) {
        let Some(s) = self.free_slot() else { return };
        let Some(h) = self.host_cpu(r, None) else {
            return;
        };
        let h = h as i128;
        let Some(res) = self.go(h, hvc("REGISTER_KVM", &[])) else {
            return;
        };
        if res.model.result != Outcome::Ok || self.stop() {
            return;
        }
        let id = res.model.x0.unwrap_or(0);
        let vcpus = if r.one_in(8) { 1 } else { 2 };
        self.vms.push(Vm {
            id,
            slot: s,
            vcpus,
            bank: None,
            borrowed: vec![],
            mmio: vec![],
            cleared: false,
        });
        let mut steps = vec![];
        for k in 0..vcpus {
            steps.push(hvc("REGISTER_VCPU", &[id, k]));
        }
        let bank = (!r.one_in(4)).then(|| self.free_bank()).flatten();
        if let Some(cb) = bank {
            steps.push(hvc("SMMU_ALLOC_PGD", &[cb, id, 0]));
            steps.push(hvc(
                "SMMU_LPAE_MAP",
                &[DEVICE_IOVA, device_page(s), 0xc3, cb, 0],
            ));
            for i in 0..FAULT_PAGES {
                let map = [FAULT_GPA + i * 4096, fault_page(s, i), 0xc3, cb, 0];
                steps.push(hvc("SMMU_LPAE_MAP", &map));
            }
            // Rarely (KCore halts on both): a page of another live VM for this device, or
            // the device's own buffer again at a second IOVA.
            let other = self.pick_vm(r, |q, v| v.id != id && q.vm_state(v.id) == VERIFIED);
            match (r.below(32), other) {
                (0, Some(o)) => {
                    let page = image_block(o.slot) + r.below(2) as i128 * 4096;
                    steps.push(hvc("SMMU_LPAE_MAP", &[STOLEN_IOVA, page, 0xc3, cb, 0]));
                }
                (1, _) => {
                    let alias = [STOLEN_IOVA, device_page(s), 0xc3, cb, 0];
                    steps.push(hvc("SMMU_LPAE_MAP", &alias));
                }
                _ => {}
            }
            self.vm_mut(id).bank = Some(cb);
        }
        // Device memory before VERIFY (KCore maps it only for a READY VM): the UART, or
        // now and then every declared range, the SMMUs' register windows too.
        let ranges = self.l.model.machine.mmio.clone();
        for (k, (base, size)) in ranges.into_iter().enumerate() {
            let all = r.one_in(64);
            if all || (base == UART_BASE && r.one_in(3)) {
                let gpa = IOREMAP_GPA + k as i128 * 0x10_0000;
                steps.push(hvc("PHYS_ADDR_IOREMAP", &[id, gpa, base, size]));
                self.vm_mut(id).mmio.push(gpa);
            }
        }
        steps.push(hvc("SET_BOOT_INFO", &[id, LOAD_ADDR, 8192]));
        let img = image_block(s) / 4096;
        // Out of order or scattered pages: the hostile remaps (rare: KCore may halt on them).
        let pages = match r.below(64) {
            0 => [img + 1, img],
            1 => [img, img + 3],
            _ => [img, img + 1],
        };
        // The image's words, written by the host into its pages; with scattered pages, the
        // host's own word in the page the VM receives at LOAD_ADDR + 4 KiB, never hashed.
        let mut written = pages.to_vec();
        if pages[1] != img + 1 {
            written.push(img + 1);
        }
        for p in written {
            let store = Action::HostStore {
                addr: p * 4096 + word(r),
                value: r.next_u64() as i128,
            };
            steps.insert(steps.len() - 1, store);
        }
        if pages != [img, img + 1] {
            self.reached
                .events
                .insert("image remapped out of order or scattered");
        }
        for p in pages {
            steps.push(hvc("REMAP_VM_IMAGE", &[id, p, 0]));
        }
        steps.push(hvc("VERIFY_VM_IMAGE", &[id]));
        for a in steps {
            if self.stop() {
                return;
            }
            self.go(h, a);
        }
    }

    fn gpa(&self, r: &mut Rng, vm: &Vm) -> i128 {
        let word = word(r);
        match r.below(10) {
            0 if !vm.mmio.is_empty() => vm.mmio[r.below(vm.mmio.len() as u64) as usize] + word,
            0..=5 => LOAD_ADDR + r.below(4) as i128 * 4096 + word,
            _ => FAULT_GPA + r.below(FAULT_PAGES as u64) as i128 * 4096 + word,
        }
    }

    /// A guest load or store on a CPU that runs the VM (also after the VM powered off, by
    /// a vCPU still running, even once the host took its pages back).
    fn guest_access(&mut self, r: &mut Rng) {
        let Some(vm) = self.pick_vm(r, |s, v| {
            s.vm_state(v.id) == VERIFIED || !s.cpus_of(v.id).is_empty()
        }) else {
            return;
        };
        let Some(c) = self.ensure_running(r, &vm, None, None) else {
            return;
        };
        let gpa = self.gpa(r, &vm);
        let a = if r.one_in(2) {
            Action::GuestLoad { gpa }
        } else {
            Action::GuestStore {
                gpa,
                value: r.next_u64() as i128,
            }
        };
        self.go(c as i128, a);
    }

    fn guest_share(&mut self, r: &mut Rng) {
        let Some(vm) = self.pick_vm(r, |s, v| s.vm_state(v.id) == VERIFIED) else {
            return;
        };
        let Some(c) = self.ensure_running(r, &vm, None, None) else {
            return;
        };
        let op = if r.one_in(2) {
            ShareOp::Grant
        } else {
            ShareOp::Revoke
        };
        let gpa = LOAD_ADDR + r.below(4) as i128 * 4096;
        let size = (1 + r.below(2) as i128) * 4096;
        self.go(c as i128, Action::GuestHvc { op, gpa, size });
    }

    /// A running vCPU exits: WFx, a trapped system register or an interrupt.
    fn guest_exit(&mut self, r: &mut Rng) {
        let on: Vec<usize> = (0..self.cpus())
            .filter(|&c| self.running(c).is_some())
            .collect();
        if let Some(c) = r.pick(&on) {
            let a = [Action::GuestWfx, Action::GuestSysreg, Action::Irq];
            self.go(c as i128, a[r.below(3) as usize].clone());
        }
    }

    /// The VM touches a fault page; the host serves it with its slot's page or, often once
    /// another VM was reclaimed, with a page that VM had.
    fn map_page(&mut self, r: &mut Rng) {
        let Some(vm) = self.pick_vm(r, |s, v| s.vm_state(v.id) == VERIFIED) else {
            return;
        };
        let i = r.below(FAULT_PAGES as u64) as i128;
        let gpa = FAULT_GPA + i * 4096;
        let free: Vec<i128> = self
            .reclaimed
            .iter()
            .copied()
            .filter(|&pa| self.owner(pa) == HOSTVISOR)
            .collect();
        let reuse = if r.one_in(3) { None } else { r.pick(&free) };
        let pa = reuse.unwrap_or(fault_page(vm.slot, i));
        if ![HOSTVISOR, vm.id].contains(&self.owner(pa)) {
            return;
        }
        // The vCPU that touches the page, or one the host runs with the page proposed.
        let mut at = self.cpus_of(vm.id).first().copied();
        if let Some(c) = at {
            let k = self.running(c).map_or(0, |(_, k)| k);
            self.go(c as i128, Action::GuestLoad { gpa });
            at = (self.host_mode(c) && !self.stop()).then_some(c);
            if let Some(c) = at {
                self.serve(vm.id, k, c, gpa, pa);
            }
            return;
        }
        let idle: Vec<Z> = (0..vm.vcpus)
            .filter(|&k| !self.vcpu_active(vm.id, k))
            .collect();
        let (Some(k), Some(c)) = (r.pick(&idle), self.host_cpu(r, None)) else {
            return;
        };
        self.serve(vm.id, k, c, gpa, pa);
    }

    /// The host runs vCPU `k` on `c` with `pa` proposed for `gpa`.
    fn serve(&mut self, vm: Z, k: Z, c: usize, gpa: i128, pa: i128) {
        if self.stop() || self.vm_state(vm) != VERIFIED || self.vcpu_active(vm, k) {
            return;
        }
        let map = MapProposal {
            gpa,
            pte: pa,
            level: 3,
        };
        self.go(c as i128, run_vcpu(vm, k, Some(map)));
        if self.owner(pa) == vm {
            self.reclaimed.retain(|&p| p != pa);
            let slot = self.vm_mut(vm).slot;
            if !slot_pages(slot).contains(&pa) {
                self.vm_mut(vm).borrowed.push(pa);
            }
        }
    }

    /// A device access through a VM's bank, live or dead: its buffer or its RAM at
    /// IOVA = GPA.
    fn dma(&mut self, r: &mut Rng) {
        let Some(vm) = self.pick_vm(r, |_, v| v.bank.is_some()) else {
            return;
        };
        let cb = vm.bank.unwrap_or(0);
        let word = word(r);
        let iova = match r.below(16) {
            0 => STOLEN_IOVA + word,
            1..=7 => DEVICE_IOVA + word,
            _ => FAULT_GPA + r.below(FAULT_PAGES as u64) as i128 * 4096 + word,
        };
        let a = if r.one_in(2) {
            Action::DmaLoad {
                smmu: 0,
                cb,
                iova,
                stream: None,
            }
        } else {
            Action::DmaStore {
                smmu: 0,
                cb,
                iova,
                value: r.next_u64() as i128,
                stream: None,
            }
        };
        self.go(0, a);
    }

    fn host_access(&mut self, r: &mut Rng) {
        let Some(c) = self.host_cpu(r, None) else {
            return;
        };
        let addr = host_page(r.below(4) as i128) + word(r);
        let a = if r.one_in(2) {
            Action::HostLoad { addr }
        } else {
            Action::HostStore {
                addr,
                value: r.next_u64() as i128,
            }
        };
        self.go(c as i128, a);
    }

    /// One vCPU powers the VM off, usually while another vCPU of the VM runs on another
    /// CPU; that one then often goes on loading and storing.
    fn power_off(&mut self, r: &mut Rng) {
        let Some(vm) = self.pick_vm(r, |s, v| s.vm_state(v.id) == VERIFIED) else {
            return;
        };
        let Some(a) = self.ensure_running(r, &vm, None, None) else {
            return;
        };
        let mut b = None;
        if vm.vcpus > 1 && !r.one_in(4) {
            let other = self.running(a).map_or(0, |(_, k)| 1 - k);
            b = self.ensure_running(r, &vm, Some(other), Some(a));
        }
        if self.stop() || self.running(a).is_none_or(|(v, _)| v != vm.id) {
            return;
        }
        let (off, on) = match b {
            Some(b) if r.one_in(2) => (b, Some(a)),
            _ => (a, b),
        };
        let k_off = self.running(off).map_or(0, |(_, k)| k);
        let other_active = (0..vm.vcpus).any(|k| k != k_off && self.vcpu_active(vm.id, k));
        self.go(off as i128, Action::GuestPsciSystemOff);
        if self.vm_state(vm.id) == POWEROFF {
            self.reached.running_at_poweroff |= other_active;
        }
        if let Some(c) = on.filter(|_| !self.stop() && r.one_in(2)) {
            if self.running(c).is_some_and(|(v, _)| v == vm.id) {
                let gpa = self.gpa(r, &vm);
                self.go(
                    c as i128,
                    Action::GuestStore {
                        gpa,
                        value: r.next_u64() as i128,
                    },
                );
            }
        }
    }

    /// The host takes a powered-off VM's pages back: its vCPUs stopped and its bank freed
    /// first, or (one time in three, and the bank now and then) not; then reads one.
    fn reclaim(&mut self, r: &mut Rng) {
        let Some(vm) = self.pick_vm(r, |s, v| !v.cleared && s.vm_state(v.id) == POWEROFF) else {
            return;
        };
        let hostile = r.one_in(3);
        if !hostile {
            for c in self.cpus_of(vm.id) {
                if !self.stop() {
                    self.go(c as i128, Action::Irq);
                }
            }
        }
        let Some(h) = self.host_cpu(r, None) else {
            return;
        };
        let h = h as i128;
        if let Some(cb) = vm.bank.filter(|_| !hostile || r.one_in(2)) {
            if !self.stop() {
                self.go(h, hvc("SMMU_FREE_PGD", &[cb, 0]));
                if self.l.model.global.shared.smmu_vmid.get(smmu_id(0, cb)) != &vm.id {
                    self.vm_mut(vm.id).bank = None;
                }
            }
        }
        let mut ranges = vec![
            (image_block(vm.slot), 0x20_0000),
            (fault_page(vm.slot, 0), 0x1_0000),
        ];
        ranges.extend(vm.borrowed.iter().map(|&pa| (pa, 4096)));
        for (pa, size) in ranges {
            if self.stop() {
                return;
            }
            self.go(h, hvc("CLEAR_VM_S2_RANGE", &[vm.id, pa, size]));
        }
        let mut back: Vec<i128> = slot_pages(vm.slot);
        back.extend(vm.borrowed.iter().copied());
        back.retain(|&pa| self.owner(pa) == HOSTVISOR);
        if back.contains(&image_block(vm.slot)) {
            self.vm_mut(vm.id).cleared = true;
        }
        for &pa in &back {
            if !self.reclaimed.contains(&pa) {
                self.reclaimed.push(pa);
            }
        }
        // The host reads what the VM left there: scrubbed, every word.
        if let Some(pa) = r.pick(&back).filter(|_| !self.stop()) {
            let addr = pa + word(r);
            self.go(h, Action::HostLoad { addr });
        }
    }

    /// Hypercalls that mostly change little or nothing: queries, the cipher, the timer,
    /// CLEAR of a VM still alive, an SMMU call on a bank nobody owns.
    fn small_hvc(&mut self, r: &mut Rng) {
        let Some(h) = self.host_cpu(r, None) else {
            return;
        };
        let vm = self.pick_vm(r, |_, _| true).map_or(1, |v| v.id);
        let slot = self.vms.iter().find(|v| v.id == vm).map_or(0, |v| v.slot);
        let page = image_block(slot) + r.below(3) as i128 * 4096;
        let a = match r.below(6) {
            0 => hvc(
                "SMMU_LPAE_IOVA_TO_PHYS",
                &[FAULT_GPA + 0x10, r.below(4) as i128, 0],
            ),
            // Of a page the VM has (KCore halts on another: not what this draw explores).
            1 if self.owner(page) == vm => hvc("ENCRYPT_BUF", &[vm, page, host_page(8)]),
            1 => hvc("TIMER_SET_CNTVOFF", &[]),
            2 => hvc("TIMER_SET_CNTVOFF", &[]),
            3 => hvc("SAVE_CRYPT_VCPU", &[vm, r.below(2) as i128, host_page(9)]),
            4 => hvc("CLEAR_VM_S2_RANGE", &[vm, image_block(slot), 0x1000]),
            _ => hvc("SMMU_LPAE_IOVA_TO_PHYS", &[DEVICE_IOVA, 7, 1]),
        };
        self.go(h as i128, a);
    }

    /// Requests KCore refuses, mostly by halting: an SMMU mapping of a VM's image at
    /// IOVA = GPA after VERIFY, an ioremap after VERIFY, the host loading a page a VM's
    /// device was given or a VM's image page, a bank for a verified VM, a second VERIFY, a
    /// vCPU out of range.
    fn hostile(&mut self, r: &mut Rng) {
        let Some(h) = self.host_cpu(r, None) else {
            return;
        };
        let h = h as i128;
        let Some(vm) = self.pick_vm(r, |_, _| true) else {
            return;
        };
        match r.below(6) {
            0 => {
                // Through a verified VM's own bank, when one has a bank: a map after VERIFY.
                let banked = |s: &Self, v: &Vm| v.bank.is_some() && s.vm_state(v.id) == VERIFIED;
                let vm = self.pick_vm(r, banked).unwrap_or(vm);
                let cb = vm.bank.unwrap_or(0);
                let map = [LOAD_ADDR, image_block(vm.slot), 0xc3, cb, 0];
                self.go(h, hvc("SMMU_LPAE_MAP", &map));
            }
            1 => {
                let uart = [vm.id, IOREMAP_GPA, UART_BASE, 4096];
                self.go(h, hvc("PHYS_ADDR_IOREMAP", &uart));
            }
            2 => {
                let page = match r.below(3) {
                    0 => fault_page(vm.slot, r.below(FAULT_PAGES as u64) as i128),
                    1 => image_block(vm.slot) + r.below(2) as i128 * 4096,
                    // The page the VM's device was given (a hole-1 host would map it).
                    _ => device_page(vm.slot),
                };
                let addr = page + word(r);
                self.go(h, Action::HostLoad { addr });
            }
            3 => {
                let cb = self.free_bank().unwrap_or(7);
                self.go(h, hvc("SMMU_ALLOC_PGD", &[cb, vm.id, 0]));
            }
            4 => {
                self.go(h, hvc("VERIFY_VM_IMAGE", &[vm.id]));
            }
            _ => {
                self.go(h, hvc("REGISTER_VCPU", &[vm.id, 9]));
            }
        }
    }

    /// One drawn operation; the hostile ones rare, since a halt ends the sequence.
    fn op(&mut self, r: &mut Rng) {
        match r.below(128) {
            0..=11 => self.create_vm(r),
            12..=35 => self.guest_access(r),
            36..=41 => self.guest_share(r),
            42..=47 => self.guest_exit(r),
            48..=59 => self.map_page(r),
            60..=71 => self.dma(r),
            72..=83 => self.host_access(r),
            84..=95 => self.power_off(r),
            96..=109 => self.reclaim(r),
            110..=126 => self.small_hvc(r),
            _ => self.hostile(r),
        }
    }

    /// A sequence: the first VM's boot (not counted as non-trivial), then `ops` draws.
    fn run(&mut self, r: &mut Rng, ops: u64) {
        self.counted = false;
        self.create_vm(r);
        self.counted = true;
        for _ in 0..ops {
            if self.stop() {
                break;
            }
            self.op(r);
        }
        self.finish();
    }
}

/// Runs `steps` on a fresh machine: does some step mismatch or break an invariant?
pub fn fails(cpus: usize, steps: &[Step]) -> Option<Vec<String>> {
    fails_judged(cpus, steps, Judge::Refinement)
}

/// [`fails`], failing a step as `judge` says.
pub fn fails_judged(cpus: usize, steps: &[Step], judge: Judge) -> Option<Vec<String>> {
    let mut s = Sequence::judged(cpus, judge);
    for st in steps {
        s.go(st.cpu, st.action.clone());
        if s.failed() || s.l.core.core.halted() {
            break;
        }
    }
    s.finish();
    let last = s.seen.last().filter(|_| s.failed())?;
    Some(judge.why(last))
}

/// Drops steps one at a time while the sequence still fails.
pub fn shrink(cpus: usize, steps: Vec<Step>) -> (Vec<Step>, Vec<String>) {
    shrink_judged(cpus, steps, Judge::Refinement)
}

/// [`shrink`], failing a step as `judge` says.
pub fn shrink_judged(cpus: usize, mut steps: Vec<Step>, judge: Judge) -> (Vec<Step>, Vec<String>) {
    let fails = |steps: &[Step]| fails_judged(cpus, steps, judge);
    let mut why = fails(&steps).unwrap_or_default();
    let mut i = steps.len();
    while i > 0 {
        i -= 1;
        let mut fewer = steps.clone();
        fewer.remove(i);
        if let Some(w) = fails(&fewer) {
            steps = fewer;
            why = w;
        }
    }
    for (k, s) in steps.iter_mut().enumerate() {
        s.index = k;
    }
    (steps, why)
}

/// One steered sequence of `ops` draws from `r` (the fuzz target's): the machine after it
/// (to go on from) and, if a step mismatched or broke an invariant, what failed.
pub fn explore(cpus: usize, r: &mut Rng, ops: u64) -> (Lockstep, Option<Vec<String>>) {
    let mut s = Sequence::new(cpus.max(2));
    s.run(r, ops);
    let why = s.seen.last().filter(|_| s.failed()).map(|last| {
        let mut why = last.mismatches.clone();
        why.extend(last.broken.iter().map(|b| format!("invariant {b} broken")));
        why
    });
    (s.l, why)
}

/// Runs sequences until `steps` steps have run; `progress(done)` after each sequence.
pub fn soak(steps: u64, seed: u64, cpus: usize, progress: impl FnMut(u64)) -> SoakReport {
    soak_judged(steps, seed, cpus, Judge::Refinement, progress)
}

/// [`soak`], failing a sequence as `judge` says.
pub fn soak_judged(
    steps: u64,
    seed: u64,
    cpus: usize,
    judge: Judge,
    mut progress: impl FnMut(u64),
) -> SoakReport {
    let cpus = cpus.max(2);
    let start = std::time::Instant::now();
    let mut rep = SoakReport {
        seed,
        ..SoakReport::default()
    };
    let mut r = Rng::new(seed);
    while rep.steps < steps {
        let mut s = Sequence::judged(cpus, judge);
        let n = 20 + r.below(31);
        s.run(&mut r, n);
        rep.sequences += 1;
        rep.with_two_live_vms += s.reached.two_live_vms as u64;
        rep.with_three_live_vms += s.reached.three_live_vms as u64;
        rep.with_page_reused += s.reached.page_reused as u64;
        rep.with_vcpu_running_at_poweroff += s.reached.running_at_poweroff as u64;
        rep.with_device_bank += s.reached.device_bank as u64;
        for &e in &s.reached.events {
            *rep.tried.entry(e).or_default() += 1;
        }
        rep.steps += s.seen.len() as u64;
        for seen in &s.seen {
            rep.nontrivial_steps += seen.nontrivial as u64;
            rep.mismatches += seen.mismatches.len() as u64;
            rep.invariant_breaks += seen.broken.len() as u64;
        }
        if s.failed() && rep.failing.is_none() {
            rep.failing = Some(shrink_judged(cpus, s.steps.clone(), judge));
        }
        progress(rep.steps.min(steps));
        if rep.failing.is_some() {
            break;
        }
    }
    rep.seconds = start.elapsed().as_secs_f64();
    rep
}

fn int(v: i128) -> Value {
    if (0..1 << 16).contains(&v) {
        json!(v as u64)
    } else {
        json!(format!("{v:#x}"))
    }
}

/// A step in the scenario format (docs/scenario-format.md).
pub fn step_json(st: &Step) -> Value {
    let mut o = json!({"cpu": int(st.cpu)});
    let (key, v) = match &st.action {
        Action::Hvc { call, args } => {
            let mut a = vec![match call {
                HvcCall::Named(n) => json!(n.name()),
                HvcCall::Raw(v) => int(*v),
            }];
            a.extend(args.iter().map(|&x| int(x)));
            ("hvc", json!(a))
        }
        Action::VcpuRun { vm, vcpu, map, pc } => {
            let mut r = json!({"vm": int(*vm), "vcpu": int(*vcpu)});
            if let Some(m) = map {
                r["map"] = json!({"gpa": int(m.gpa), "pte": int(m.pte), "level": int(m.level)});
            }
            if let Some(pc) = pc {
                r["pc"] = int(*pc);
            }
            ("vcpu_run", r)
        }
        Action::HostLoad { addr } => ("host_load", int(*addr)),
        Action::HostStore { addr, value } => ("host_store", json!([int(*addr), int(*value)])),
        Action::GuestLoad { gpa } => ("guest_load", int(*gpa)),
        Action::GuestFetch { gpa } => ("guest_fetch", int(*gpa)),
        Action::GuestStore { gpa, value } => ("guest_store", json!([int(*gpa), int(*value)])),
        Action::GuestHvc { op, gpa, size } => {
            let name = match op {
                ShareOp::Grant => "GRANT",
                ShareOp::Revoke => "REVOKE",
            };
            ("guest_hvc", json!([name, int(*gpa), int(*size)]))
        }
        Action::GuestPsciSystemOff => ("guest_psci", json!("SYSTEM_OFF")),
        Action::GuestWfx => ("guest_wfx", json!(true)),
        Action::GuestSysreg => ("guest_sysreg", json!(true)),
        Action::GuestException { ec } => ("guest_exception", json!({"ec": int(*ec)})),
        Action::Irq => ("irq", json!(true)),
        Action::DmaLoad { smmu, cb, iova, .. } => (
            "dma_load",
            json!({"smmu": int(*smmu), "cb": int(*cb), "iova": int(*iova)}),
        ),
        Action::DmaStore {
            smmu,
            cb,
            iova,
            value,
            ..
        } => (
            "dma_store",
            json!({"smmu": int(*smmu), "cb": int(*cb), "iova": int(*iova), "value": int(*value)}),
        ),
        Action::Host(_) => ("host", json!(null)),
    };
    o[key] = v;
    o
}

/// A failing sequence as a scenario file.
pub fn scenario_json(cpus: usize, seed: u64, steps: &[Step], why: &[String]) -> Value {
    let mut doc: Value = serde_json::from_str(&machine(cpus.max(2))).expect("valid");
    doc["name"] = json!(format!("soak-{seed:#x}"));
    doc["description"] = json!(format!(
        "corevisor soak --seed {seed}: a failing sequence, shrunk. {}",
        why.join("; ")
    ));
    doc["steps"] = json!(steps.iter().map(step_json).collect::<Vec<_>>());
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::describe;

    /// Issue 20, "honest soak figures": a refused CLEAR of a live VM, a null hypercall, an
    /// SMMU query of a bank nobody owns, a GRANT of nothing and a REVOKE of what was never
    /// granted change nothing and are trivial; the boot of the first VM is not counted; a
    /// store the guest completes, a GRANT, a world switch and a page the host serves are
    /// non-trivial.
    #[test]
    fn refusals_and_null_hypercalls_are_trivial() {
        let mut r = Rng::new(7);
        let mut s = Sequence::new(2);
        s.counted = false;
        s.create_vm(&mut r);
        s.counted = true;
        assert!(
            s.seen.iter().all(|x| !x.nontrivial),
            "the boot is not counted"
        );
        let vm = s.vms[0].clone();
        assert_eq!(s.vm_state(vm.id), VERIFIED);
        let trivial = [
            hvc("CLEAR_VM_S2_RANGE", &[vm.id, image_block(vm.slot), 0x1000]),
            hvc("TIMER_SET_CNTVOFF", &[]),
            hvc("SMMU_LPAE_IOVA_TO_PHYS", &[DEVICE_IOVA, 7, 1]),
        ];
        for a in trivial {
            let what = describe(&a);
            assert!(!s.seen.last().unwrap().nontrivial, "{what} counted");
        }
        let c = s.ensure_running(&mut r, &vm, Some(0), None).expect("runs");
        assert!(s.seen.last().unwrap().nontrivial, "the world switch");
        let store = Action::GuestStore {
            gpa: LOAD_ADDR + 8,
            value: 5,
        };
        assert_eq!(s.go(c as i128, store).unwrap().model.result, Outcome::Ok);
        assert!(s.seen.last().unwrap().nontrivial, "a completed store");
        for (op, gpa) in [
            (ShareOp::Grant, FAULT_GPA + 0x2000),
            (ShareOp::Revoke, LOAD_ADDR),
        ] {
            let res = s
                .go(
                    c as i128,
                    Action::GuestHvc {
                        op,
                        gpa,
                        size: 4096,
                    },
                )
                .unwrap();
            eprintln!(
                "{op:?} {:?} {}",
                res.model.result,
                s.seen.last().unwrap().nontrivial
            );
        }
        s.go(c as i128, Action::GuestWfx).expect("runs");
        let map = MapProposal {
            gpa: FAULT_GPA,
            pte: fault_page(vm.slot, 0),
            level: 3,
        };
        s.go(c as i128, run_vcpu(vm.id, 0, Some(map)))
            .expect("runs");
        assert!(s.seen.last().unwrap().nontrivial, "a page served");
        assert!(!s.failed());
    }

    /// Issue 20, "exploration where the holes live": with the default settings (seed
    /// 0x5eed, 2 CPUs) at least 20% of sequences have two live VMs at once, a page reused
    /// across VMs, a vCPU running when its VM powers off, and a device bank (and 10% three
    /// live VMs at once); each hostile situation is tried at least once (most are rare); the
    /// healthy core gives no mismatch and breaks no invariant; non-trivial steps are fewer
    /// than the steps run (the boots are not counted).
    #[test]
    fn default_soak_reaches_the_hole_states_and_is_clean() {
        let rep = soak(20_000, 0x5eed, 2, |_| {});
        assert_eq!(rep.mismatches, 0, "{:?}", rep.failing);
        assert_eq!(rep.invariant_breaks, 0, "{:?}", rep.failing);
        for (name, f) in rep.fractions() {
            eprintln!("{name}: {f:.2}");
            assert!(f >= 0.20, "{name}: {f:.2} of {} sequences", rep.sequences);
        }
        // Three at once too, less often (each VM is built by draws of its own).
        let three = rep.with_three_live_vms as f64 / rep.sequences as f64;
        eprintln!("three_live_vms: {three:.2}");
        assert!(three >= 0.10, "three live VMs: {three:.2}");
        assert!(rep.nontrivial_steps < rep.steps, "{rep:?}");
        // And every hostile situation is tried, whatever KCore answers (halts included).
        for e in [
            "CLEAR with a bank attached",
            "CLEAR with a vCPU active",
            "DMA by a dead VM's device",
            "SMMU map after VERIFY",
            "guest access after power-off",
            "host load of a VM's page",
            "image remapped out of order or scattered",
            "ioremap of an SMMU window",
        ] {
            let n = rep.tried.get(e).copied().unwrap_or(0);
            eprintln!("{e}: {n}");
            assert!(n >= 1, "{e}: never tried");
        }
    }
}
