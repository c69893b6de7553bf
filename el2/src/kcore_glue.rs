//! The one module that calls into kcore (docs/el2.md, "The glue"), and the one that names
//! its types but for `frame` (each CPU's frame is kcore's `Cpu`) and the trace (kcore's
//! register-word names and state digest).
//!
//! * [`El2Hw`]: kcore's `Hw` on this machine: physical memory through `hw::phys`, TLB
//!   maintenance with the target VMID's own VTTBR, the cache maintenance the simulator does
//!   not model (a page leaving the host, a scrubbed page, pages KCore wrote for someone else).
//! * The entries: host stage-2 faults share [`ENTRIES`] (two CPUs may be inside kcore's
//!   `host_npt_handler` at once: kcore's locks order them, each CPU's cache bookkeeping is
//!   its own, and a traced fault writes its record, with its entry tickets, before it lets
//!   go); every other entry holds it alone, then the glue's lock ([`STATE`]). Each adds the
//!   trap's fault state to the CPU's `Cpu`, calls kcore, loads what kcore left there into
//!   the CPU, and (with the `trace` feature) records the step in the trace. Without the
//!   feature (the production image) the same entries take the same locks and make the same
//!   calls and checks; only the recording is not compiled (`trace.rs`).
//! * World switches: the EL1 system registers and FP/SIMD registers move between the CPU and
//!   the `Ctxt` only when the world changes (VCPU_RUN, an exit to the host); every other trap
//!   moves x0..x30, ELR, SPSR and the fault registers only.
//!
//! kcore's entry points take the shared core by `&self` and the trapping CPU's [`Cpu`] by
//! `&mut` (issue 11), so the core is shared ([`CORE`]); letting every entry run at once
//! needs the trace's records to be ordered by kcore's lock tickets (docs/linux-host.md).

use crate::cpu_features;
use crate::frame::TrapFrame;
use crate::hw::lock::{Late, Once, RwSpin, TicketLock};
use crate::hw::percpu::{self, MAX_CPUS};
use crate::hw::{phys, regs};
use crate::platform::*;
#[cfg(feature = "trace")]
use crate::trace;
use crate::trace::{Action, Entry, Outcome, Step, Trace};
use core::cell::Cell;
use corevisor_kcore::consts::{
    ctxt_id, hvc, ARM_EXCEPTION_INTERRUPT, ARM_EXCEPTION_TRAP, CNTHCTL_EL1PCEN, CNTHCTL_EL1PCTEN,
    COREVISOR, CPTR_EL2_DEFAULT, HCR_HOST_NVHE_FLAGS, HOSTVISOR, PAGE_SIZE, VERIFIED,
};
use corevisor_kcore::ctxt::{Ctxt, CtxtRegs};
#[cfg(not(feature = "trace"))]
use corevisor_kcore::hw::Discard;
use corevisor_kcore::hw::Hw;
#[cfg(feature = "trace")]
use corevisor_kcore::hw::Untrusted;
use corevisor_kcore::layout::{Layout, Platform, PoolSpans, RegionTooSmall, MAX_MMIO_RANGES};
#[cfg(feature = "trace")]
use corevisor_kcore::meta::PageMeta;
#[cfg(feature = "trace")]
use corevisor_kcore::mutants::{mutant, Fault};
use corevisor_kcore::pt::{self, PtLayout};
use corevisor_kcore::state::{Core, CTXTS};
use corevisor_kcore::trap::{Cpu, PerCpu, Trap};

const _: () = assert!(corevisor_kcore::state::MAX_CPUS == MAX_CPUS);

/// HCR_EL2.TSC: the host's SMCs trap to KCore (the PSCI relay).
const HCR_TSC: u64 = 1 << 19;

/// Pages outside KCore's region kcore may write in one entry before they are cleaned.
const DIRTY_SLOTS: usize = 8;

/// Runs of consecutive pages whose metadata one entry wrote, noted exactly; past that the
/// last run grows over the gap (the trace then lists unchanged pages too: still their
/// metadata after the entry).
#[cfg(feature = "trace")]
const META_RUNS: usize = 8;

/// kcore's machine interface. kcore uses it through `&self` from any CPU, two at once when
/// both serve host stage-2 faults ([`ENTRIES`]); the bookkeeping of the entry in progress is
/// each CPU's own ([`Book`], in a `PerCpu`).
pub struct El2Hw {
    pt: PtLayout,
    book: PerCpuBook,
    /// The page metadata array (kcore's layout): writes into it are noted for the trace.
    #[cfg(feature = "trace")]
    meta_base: u64,
    #[cfg(feature = "trace")]
    meta_len: u64,
}

type PerCpuBook = crate::hw::lock::PerCpu<Book>;

/// One CPU's bookkeeping of the entry it is handling.
struct Book {
    dirty: Cell<[u64; DIRTY_SLOTS]>,
    ndirty: Cell<usize>,
    /// A host page changed hands in this entry: no CPU may keep instructions fetched from
    /// it (IC IALLUIS before leaving EL2).
    icache: Cell<bool>,
    /// Runs `[first, last]` of metadata indices (pfn - first RAM pfn) written in this entry.
    #[cfg(feature = "trace")]
    meta_runs: Cell<[(u32, u32); META_RUNS]>,
    #[cfg(feature = "trace")]
    nmeta: Cell<usize>,
    /// The stage-2 TLB invalidations kcore made in this entry, as runs (the trace's).
    #[cfg(feature = "trace")]
    tlbi: [Cell<trace::TlbiRun>; TLBI_RUNS],
    #[cfg(feature = "trace")]
    ntlbi: Cell<usize>,
    #[cfg(feature = "trace")]
    tlbi_lost: Cell<bool>,
}

/// Runs of TLB invalidations one entry may make (a 2 MiB block leaving the host is one run):
/// as many as a trace record holds.
#[cfg(feature = "trace")]
const TLBI_RUNS: usize = trace::MAX_TLBI;

impl Book {
    const EMPTY: Book = Book {
        dirty: Cell::new([0; DIRTY_SLOTS]),
        ndirty: Cell::new(0),
        icache: Cell::new(false),
        #[cfg(feature = "trace")]
        meta_runs: Cell::new([(0, 0); META_RUNS]),
        #[cfg(feature = "trace")]
        nmeta: Cell::new(0),
        #[cfg(feature = "trace")]
        tlbi: [const {
            Cell::new(trace::TlbiRun {
                vmid: 0,
                ipa: 0,
                count: 0,
            })
        }; TLBI_RUNS],
        #[cfg(feature = "trace")]
        ntlbi: Cell::new(0),
        #[cfg(feature = "trace")]
        tlbi_lost: Cell::new(false),
    };
}

impl El2Hw {
    #[inline(always)]
    fn book(&self) -> &Book {
        self.book.this()
    }

    fn note_dirty(&self, page: u64) {
        let b = self.book();
        let n = b.ndirty.get();
        if b.dirty.get()[..n].contains(&page) {
            return;
        }
        if n == DIRTY_SLOTS {
            self.clean_dirty();
        }
        let (mut d, n) = (b.dirty.get(), b.ndirty.get());
        d[n] = page;
        b.dirty.set(d);
        b.ndirty.set(n + 1);
    }

    #[cold]
    #[inline(never)]
    fn clean_dirty(&self) {
        let b = self.book();
        for &p in &b.dirty.get()[..b.ndirty.get()] {
            phys::clean_invalidate(p, PAGE_SIZE);
        }
        b.ndirty.set(0);
    }

    /// A write into the metadata array at byte offset `off`: the page it describes.
    #[cfg(feature = "trace")]
    fn note_meta(&self, off: u64) {
        let b = self.book();
        let idx = (off / 8) as u32;
        let (mut runs, n) = (b.meta_runs.get(), b.nmeta.get());
        let grown = runs[..n].iter_mut().rev().any(|r| {
            if (r.0..=r.1).contains(&idx) {
                true
            } else if idx == r.1 + 1 {
                r.1 = idx;
                true
            } else if idx + 1 == r.0 {
                r.0 = idx;
                true
            } else {
                false
            }
        });
        if !grown {
            if n < META_RUNS {
                runs[n] = (idx, idx);
                b.nmeta.set(n + 1);
            } else {
                let r = &mut runs[META_RUNS - 1];
                *r = (r.0.min(idx), r.1.max(idx));
            }
        }
        b.meta_runs.set(runs);
    }

    /// An invalidation kcore asked for, into this entry's runs (`count` 0: the whole VMID).
    #[cfg(feature = "trace")]
    fn note_tlbi(&self, vmid: u32, ipa: u64, count: u32) {
        let b = self.book();
        let n = b.ntlbi.get();
        if let Some(cell) = n.checked_sub(1).map(|k| &b.tlbi[k]) {
            let mut last = cell.get();
            if count == 1
                && last.count != 0
                && last.vmid == vmid
                && last.ipa + u64::from(last.count) * PAGE_SIZE == ipa
            {
                last.count += 1;
                cell.set(last);
                return;
            }
        }
        if n == TLBI_RUNS {
            b.tlbi_lost.set(true);
            return;
        }
        b.tlbi[n].set(trace::TlbiRun { vmid, ipa, count });
        b.ntlbi.set(n + 1);
    }

    /// This entry's invalidations, into its record (and the book cleared for the next).
    #[cfg(feature = "trace")]
    fn trace_tlbi(&self, tr: &mut Trace) {
        let b = self.book();
        let n = b.ntlbi.get();
        if n != 0 {
            let runs: [trace::TlbiRun; TLBI_RUNS] = core::array::from_fn(|k| b.tlbi[k].get());
            tr.tlbi(&runs[..n]);
        }
        if b.tlbi_lost.get() {
            tr.mark_lost();
        }
        b.ntlbi.set(0);
        b.tlbi_lost.set(false);
    }

    /// The maintenance owed before this CPU leaves EL2.
    #[inline(always)]
    fn finish(&self) {
        let b = self.book();
        if b.ndirty.get() != 0 {
            self.clean_dirty();
        }
        if b.icache.get() {
            b.icache.set(false);
            phys::invalidate_icache_all();
        }
        // Table entries kcore wrote become visible to the walkers before the eret.
        regs::dsb_ish();
    }
}

impl Hw for El2Hw {
    fn read64(&self, pa: u64) -> u64 {
        phys::read64(pa)
    }

    fn zero_range(&self, pa: u64, len: u64) {
        // Boot zeroes KCore's metadata and pools: megabytes, at memset speed.
        phys::zero(pa, len);
    }

    fn write64(&self, pa: u64, v: u64) {
        phys::write64(pa, v);
        if pa < KCORE_BASE {
            // Someone else's page (a sealed export, a decrypted VM page): to the point of
            // coherency before its owner, caches on or off, reads it.
            self.note_dirty(pa & !(PAGE_SIZE - 1));
        } else {
            #[cfg(feature = "trace")]
            {
                let off = pa.wrapping_sub(self.meta_base);
                if off < self.meta_len {
                    // A page's owner, count or gfn: the trace lists the page after the entry.
                    self.note_meta(off);
                }
            }
        }
    }

    fn tlbi_ipa(&self, vmid: u32, ipa: u64) {
        let vttbr = self.pt.root(vmid) | ((vmid as u64) << 48);
        regs::s2_invalidate_ipa(vttbr, ipa);
        #[cfg(feature = "trace")]
        self.note_tlbi(vmid, ipa & !(PAGE_SIZE - 1), 1);
        let page = ipa & !(PAGE_SIZE - 1);
        if vmid == HOSTVISOR && page < KCORE_BASE && phys::is_raw(page, PAGE_SIZE) {
            // The host (identity-mapped) just lost this page: whatever it wrote with its
            // caches off must not be hidden by a stale line KCore or the next owner would
            // read, and nothing it executed may stay in an instruction cache.
            phys::clean_invalidate(page, PAGE_SIZE);
            self.book().icache.set(true);
        }
    }

    fn tlbi_vmid(&self, vmid: u32) {
        let vttbr = self.pt.root(vmid) | ((vmid as u64) << 48);
        regs::s2_invalidate_vmid(vttbr);
        #[cfg(feature = "trace")]
        self.note_tlbi(vmid, 0, 0);
    }

    fn zero_page(&self, pa: u64) {
        phys::scrub_page(pa);
    }
}

/// EL1 state kcore's `Ctxt` does not carry, switched with the world all the same.
#[derive(Clone, Copy, Debug, Default)]
struct Extra {
    esr_el1: u64,
    cntv_ctl: u64,
    cntv_cval: u64,
}

struct Glue {
    /// Per shadow context (vmid * 8 + vcpu): its `Extra` while it does not run.
    extra: [Extra; CTXTS],
    /// Per shadow context: the CPU it last ran on (0xFF: never).
    last_cpu: [u8; CTXTS],
    /// MDCR_EL2.HPMN for the host: all of PMCR_EL0.N (an HPMN of 0 is CONSTRAINED
    /// UNPREDICTABLE before FEAT_HPMN0).
    hpmn: u64,
}

/// kcore itself: set once at boot (boot CPU), then shared by every CPU. kcore's own locks
/// order what its entries do; [`ENTRIES`] decides which entries may run at once.
static CORE: Once<Core<El2Hw>> = Once::new();

/// kcore, after boot.
#[inline(always)]
fn core() -> &'static Core<El2Hw> {
    CORE.get()
}

/// Which kcore entries run at once: host stage-2 faults share it (two CPUs may be inside
/// kcore's `host_npt_handler` at the same moment, ordered by kcore's own locks), every other
/// entry holds it alone. A host fault touches only its own page's leaf (and no untrusted
/// value), so its trace record, written before it lets go, is what it did; the others'
/// records keep their order under it.
pub static ENTRIES: RwSpin = RwSpin::new();

/// The glue's state and the trace, under one lock: an entry that holds [`ENTRIES`] alone
/// takes it once (the trace first: its counters, touched on every entry, stay at small
/// offsets from the static); a host fault takes it only to write its trace record.
#[repr(C)]
pub struct Shared {
    pub trace: Trace,
    glue: Late<Glue>,
}

pub static STATE: TicketLock<Shared> = TicketLock::new(Shared {
    trace: Trace::EMPTY,
    glue: Late::new(),
});
/// kcore's halt (or an entry the CPU's mode does not admit): how the entry ended.
#[derive(Clone, Copy, Debug)]
pub struct Stop {
    pub step: Step,
}

/// kcore's untrusted values go straight into the trace.
#[cfg(feature = "trace")]
struct Rec<'a>(&'a mut Trace);

#[cfg(feature = "trace")]
impl Untrusted for Rec<'_> {
    fn record(&mut self, principal: u32, value: u64) {
        self.0.data(principal, value);
    }
    fn record_core(&mut self, vmid: u32, value: u64) {
        self.0.core(vmid, value);
    }
}

/// What kcore is given for its untrusted values: the trace, or (production) nothing.
#[cfg(feature = "trace")]
#[inline(always)]
fn input(tr: &mut Trace) -> Rec<'_> {
    Rec(tr)
}

#[cfg(not(feature = "trace"))]
#[inline(always)]
fn input(_: &mut Trace) -> Discard {
    Discard
}

/// The platform kcore polices: the CPUs, no SMMU (QEMU `virt` has none), the host's devices
/// (from the device tree: `fdt::read`).
fn platform(cpus: usize, devices: &[(u64, u64)]) -> Platform {
    let mut mmio = [(0, 0); MAX_MMIO_RANGES];
    mmio[..devices.len()].copy_from_slice(devices);
    Platform {
        cpus,
        smmu_num: 0,
        smmus: [(0, 0, 0); corevisor_kcore::smmu::SMMU_NUM as usize],
        mmio,
        mmio_num: devices.len(),
    }
}

/// Boots kcore (boot CPU, MMU on, KCore's tables zeroed): its state in KCore's image
/// (`.bss`), its tables and metadata in KCore's region, whose layout kcore plans after the
/// linked image (docs/el2.md); `Err` if the region cannot hold them.
pub fn boot(cpus: usize, devices: &[(u64, u64)], hpmn: u64) -> Result<(), RegionTooSmall> {
    let l = Layout::plan(
        RAM_BASE,
        RAM_END,
        KCORE_BASE,
        MAX_CPUS,
        PoolSpans::ARM,
        IMAGE_BYTES,
    )?;
    let hw = El2Hw {
        pt: l.pt,
        book: PerCpuBook::new([Book::EMPTY; MAX_CPUS]),
        #[cfg(feature = "trace")]
        meta_base: l.meta_base,
        #[cfg(feature = "trace")]
        meta_len: ((RAM_END - RAM_BASE) / PAGE_SIZE) * 8,
    };
    let mut core = Core::boot(hw, l);
    // Boot's metadata (KCore's own pages) is the model's initial state, not an entry's.
    #[cfg(feature = "trace")]
    {
        core.hw.book().nmeta.set(0);
        core.hw.book().ntlbi.set(0);
        core.hw.book().tlbi_lost.set(false);
    }
    core.platform = platform(cpus, devices);
    let host_vttbr = core.vttbr(HOSTVISOR);
    percpu::init_frames(|i| {
        let mut c = Cpu::boot(i);
        let f = &mut c.regs;
        // Every CPU starts in the host: its stage 2, the host's HCR, no traps, the timer
        // (physical counter and timer) the host's.
        f.regs.vttbr_el2 = host_vttbr;
        f.regs.hcr_el2 = HCR_HOST_NVHE_FLAGS;
        f.traps.cptr_el2 = CPTR_EL2_DEFAULT;
        f.traps.mdcr_el2 = 0;
        f.traps.cnthctl_el2 = CNTHCTL_EL1PCTEN | CNTHCTL_EL1PCEN;
        TrapFrame {
            kcpu: c,
            cpu: i as u64,
            in_vm: 0,
        }
    });
    CORE.set(core);
    let mut st = STATE.lock();
    st.glue.set(Glue {
        extra: [Extra::default(); CTXTS],
        last_cpu: [0xFF; CTXTS],
        hpmn,
    });
    #[cfg(feature = "trace")]
    if mutant(Fault::TraceDropsEntry) {
        st.trace
            .drop_entry(corevisor_kcore::mutants::TRACE_DROPS_SEQ);
    }
    Ok(())
}

/// The faults planted in this image (`cargo xtask qemu --mutants`): their names, or the
/// one name kcore does not know.
#[cfg(feature = "mutants")]
pub fn planted() -> Result<&'static str, &'static str> {
    corevisor_kcore::mutants::planted_names()
}

#[cfg(feature = "trace")]
const _: () =
    assert!(trace::CTX_WORDS == corevisor_kcore::ctxt_words::CTXT_WORDS && trace::CTXS == CTXTS);

/// A register file as the trace gives it: kcore's words, VTTBR_EL2 as the model names the
/// principal's table (`pt_vttbr`), as the simulator's checker abstracts it.
#[cfg(feature = "trace")]
fn file_of(c: &Ctxt) -> [u64; trace::CTX_WORDS] {
    use corevisor_kcore::ctxt_words::VTTBR_WORD;
    let mut w = corevisor_kcore::ctxt_words::words(c);
    if let Some(v) = core().vttbr_principal(w[VTTBR_WORD]) {
        w[VTTBR_WORD] = corevisor_kcore::consts::pt_vttbr(v);
    }
    w
}

/// Into the trace (host hypercalls, VCPU_RUN, VM exits): the register file the CPU brought in
/// (`found`, of context `found_ctx`: the world that trapped) and the one kcore left on it (of
/// the world it runs now);
/// `resumed`: the glue saved that vCPU's resume point into its context before kcore ran
/// (`save_resume_point`: a write of the glue's own, which the record names).
#[cfg(feature = "trace")]
fn trace_files(
    tr: &mut Trace,
    cpu: usize,
    found_ctx: usize,
    found: &[u64; trace::CTX_WORDS],
    kc: &Cpu,
    resumed: bool,
) {
    let r = kc.run;
    let left_ctx = if r.ihost || r.cur_vcpuid == corevisor_kcore::trap::NO_VCPU {
        ctxt_id(HOSTVISOR, cpu as u32)
    } else {
        ctxt_id(r.cur_vmid, r.cur_vcpuid)
    };
    tr.regs(found_ctx, found, left_ctx, &file_of(&kc.regs));
    if resumed {
        tr.resume_point();
    }
}

/// The region's figures for the boot log: (meta, pt, smmu) bases and the host's VTTBR.
pub fn describe() -> (u64, u64, u64, u64) {
    let l = core().layout;
    (
        l.meta_base,
        l.pt.pt_base,
        l.smmu_base,
        core().vttbr(HOSTVISOR),
    )
}

/// Loads this CPU's host world (boot, PSCI CPU_ON) from its frame: kcore's EL2
/// configuration for it.
pub fn cpu_init(frame: &mut TrapFrame) {
    #[cfg_attr(not(feature = "trace"), allow(unused_mut))]
    let mut st = STATE.lock();
    let hpmn = st.glue.get().hpmn;
    let f = &mut frame.kcpu.regs;
    f.regs.vmpidr_el2 = regs::mpidr();
    load_el2(f, true, hpmn);
    // The glue's writes to KCore's words of this CPU's file (here and at boot), a note of
    // their own in the trace: check-trace starts the CPU's file from them.
    #[cfg(feature = "trace")]
    {
        let file = file_of(f);
        let mut words = [(0u32, 0u64); trace::CTX_WORDS];
        let mut n = 0;
        for (i, &v) in file.iter().enumerate() {
            if !corevisor_kcore::ctxt_words::is_world(i) {
                words[n] = (i as u32, v);
                n += 1;
            }
        }
        st.trace.cpu_init(frame.cpu as u8, &words[..n]);
    }
}

/// The registers this CPU enters the host with for the first time (boot, PSCI CPU_ON).
pub fn enter_host_regs(frame: &mut TrapFrame, entry: u64, spsr: u64, x0: u64) {
    let r = &mut frame.kcpu.regs.regs;
    r.x = [0; 31];
    r.x[0] = x0;
    r.elr_el2 = entry;
    r.spsr_el2 = spsr;
}

/// kcore's EL2 configuration of the world in `f` into the CPU.
fn load_el2(f: &Ctxt, host: bool, hpmn: u64) {
    regs::set_vttbr(f.regs.vttbr_el2);
    regs::set_hcr(f.regs.hcr_el2 | if host { HCR_TSC } else { 0 } | cpu_features::hcr(host));
    regs::set_vmpidr(f.regs.vmpidr_el2);
    regs::set_tpidr_el2(f.regs.tpidr_el2);
    regs::set_cptr(cpu_features::cptr(f.traps.cptr_el2, host));
    cpu_features::load_world(host);
    regs::set_mdcr(f.traps.mdcr_el2 | if host { hpmn } else { 0 });
    // The host keeps the physical counter and timer across VM runs (kcore's exit value,
    // `timer_enable_traps`, leaves EL1PCEN clear): a host on the physical timer loses nothing.
    regs::set_cnthctl(
        f.traps.cnthctl_el2
            | if host {
                CNTHCTL_EL1PCTEN | CNTHCTL_EL1PCEN
            } else {
                0
            },
    );
    regs::set_pmselr(f.traps.pmuselr_el0);
    regs::set_pmuserenr(f.traps.pmuserenr_el0);
}

/// The world leaving the CPU: its EL1 and FP/SIMD registers into `f` (and what `Ctxt` has
/// no field for into the returned `Extra`).
fn save_world(f: &mut Ctxt) -> Extra {
    let s = regs::El1Sysregs::save();
    let r: &mut CtxtRegs = &mut f.regs;
    r.csselr_el1 = s.csselr;
    r.sctlr_el1 = s.sctlr;
    r.cpacr_el1 = s.cpacr;
    r.ttbr0_el1 = s.ttbr0;
    r.ttbr1_el1 = s.ttbr1;
    r.tcr_el1 = s.tcr;
    r.afsr0_el1 = s.afsr0;
    r.afsr1_el1 = s.afsr1;
    r.far_el1 = s.far;
    r.mair_el1 = s.mair;
    r.vbar_el1 = s.vbar;
    r.contextidr_el1 = s.contextidr;
    r.amair_el1 = s.amair;
    r.cntkctl_el1 = s.cntkctl;
    r.par_el1 = s.par;
    r.tpidr_el1 = s.tpidr_el1;
    r.spsr_el1 = s.spsr;
    r.mdscr_el1 = s.mdscr;
    r.sp_el0 = s.sp_el0;
    r.tpidr_el0 = s.tpidr_el0;
    r.tpidrro_el0 = s.tpidrro_el0;
    r.actlr_el1 = s.actlr;
    r.sp_el1 = s.sp_el1;
    r.elr_el1 = s.elr;
    r.vmpidr_el2 = regs::vmpidr();
    [r.fp_fpsr, r.fp_fpcr] = regs::fp_save(&mut r.fp_q);
    Extra {
        esr_el1: s.esr,
        cntv_ctl: s.cntv_ctl,
        cntv_cval: s.cntv_cval,
    }
}

/// The world kcore put in `f` onto the CPU: EL1, FP/SIMD and EL2 configuration.
fn load_world(f: &Ctxt, x: Extra, host: bool, hpmn: u64) {
    let r = &f.regs;
    regs::El1Sysregs {
        csselr: r.csselr_el1,
        sctlr: r.sctlr_el1,
        cpacr: r.cpacr_el1,
        ttbr0: r.ttbr0_el1,
        ttbr1: r.ttbr1_el1,
        tcr: r.tcr_el1,
        afsr0: r.afsr0_el1,
        afsr1: r.afsr1_el1,
        far: r.far_el1,
        mair: r.mair_el1,
        vbar: r.vbar_el1,
        contextidr: r.contextidr_el1,
        amair: r.amair_el1,
        cntkctl: r.cntkctl_el1,
        par: r.par_el1,
        tpidr_el1: r.tpidr_el1,
        spsr: r.spsr_el1,
        mdscr: r.mdscr_el1,
        sp_el0: r.sp_el0,
        tpidr_el0: r.tpidr_el0,
        tpidrro_el0: r.tpidrro_el0,
        actlr: r.actlr_el1,
        sp_el1: r.sp_el1,
        elr: r.elr_el1,
        esr: x.esr_el1,
        cntv_ctl: x.cntv_ctl,
        cntv_cval: x.cntv_cval,
    }
    .restore();
    regs::fp_restore(&r.fp_q, [r.fp_fpsr, r.fp_fpcr]);
    load_el2(f, host, hpmn);
}

/// The trap's fault state into kcore's view of the CPU (the vector saved the general
/// registers, ELR_EL2 and SPSR_EL2 there already).
#[inline(always)]
fn take(f: &mut Ctxt, esr: u64) {
    f.regs.esr_el2 = esr;
    f.regs.far_el2 = regs::far();
    f.regs.hpfar_el2 = regs::hpfar();
}

fn outcome(t: Trap) -> Outcome {
    match t {
        Trap::Done => Outcome::Ok,
        Trap::Halted => Outcome::Halt,
        Trap::Undefined => Outcome::Undefined,
    }
}

/// The faulting IPA of a stage-2 abort (HPFAR_EL2.FIPA, FAR_EL2's page offset).
fn fault_ipa(f: &Ctxt) -> u64 {
    ((f.regs.hpfar_el2 >> 4) << 12) | (f.regs.far_el2 & 0xFFF)
}

/// Into the trace: every page whose metadata the entry wrote, as it is now, and the record
/// of VM `vm` (if it names one). Most entries (the measured loops) have neither.
#[cfg(feature = "trace")]
#[inline(always)]
fn trace_state(core: &Core<El2Hw>, tr: &mut Trace, vm: Option<u64>) {
    if core.hw.book().nmeta.get() != 0 || vm.is_some() {
        trace_state_slow(core, tr, vm);
    }
}

#[cfg(feature = "trace")]
#[inline(never)]
#[cold]
fn trace_state_slow(core: &Core<El2Hw>, tr: &mut Trace, vm: Option<u64>) {
    trace_pages(core, tr);
    trace_vm(core, tr, vm);
}

/// [`trace_state`] for a CLEAR_VM_S2_RANGE of VM `v`, which had the leaves `had` before:
/// each is listed as it is now (the VM's stage-2 may be gone as a whole), after the pages'
/// own leaves and before the VM record.
#[cfg(feature = "trace")]
#[inline(never)]
#[cold]
fn trace_state_clear(core: &Core<El2Hw>, tr: &mut Trace, v: u32, had: &[(u64, u64)]) {
    trace_pages(core, tr);
    for &(gfn, pages) in had {
        for k in 0..pages {
            trace_s2(core, tr, v, gfn + k);
        }
    }
    trace_vm(core, tr, Some(v as u64));
}

/// The pages whose metadata the entry wrote, and their stage-2 leaves.
#[cfg(feature = "trace")]
fn trace_pages(core: &Core<El2Hw>, tr: &mut Trace) {
    let hw = &core.hw;
    let first = RAM_BASE / PAGE_SIZE;
    let mut runs = hw.book().meta_runs.get();
    let n = hw.book().nmeta.replace(0);
    runs[..n].sort_unstable();
    let meta = |idx: u32| {
        let pfn = first + idx as u64;
        (
            pfn,
            PageMeta(phys::read64(core.hw.meta_base + idx as u64 * 8)).unpack(pfn),
        )
    };
    for &(lo, hi) in &runs[..n] {
        for idx in lo..=hi {
            let (pfn, m) = meta(idx);
            tr.page(trace::Page {
                pfn,
                owner: m.owner,
                count: m.count,
                gfn: m.gfn,
            });
        }
    }
    // Each such page's stage-2 leaves: the host's (identity) and its owner's, if a VM.
    for &(lo, hi) in &runs[..n] {
        for idx in lo..=hi {
            let (pfn, m) = meta(idx);
            trace_s2(core, tr, HOSTVISOR, pfn);
            if (1..COREVISOR).contains(&m.owner) && m.gfn < 1 << 36 {
                trace_s2(core, tr, m.owner, m.gfn);
            }
        }
    }
}

/// The record of VM `vm`, if the entry names one.
#[cfg(feature = "trace")]
fn trace_vm(core: &Core<El2Hw>, tr: &mut Trace, vm: Option<u64>) {
    if let Some(v) = vm.filter(|&v| v >= 1 && (v as usize) < core.vms.len()) {
        let info = core.vms[v as usize].read();
        let mut vcpus = [0; 8];
        for (d, s) in vcpus.iter_mut().zip(info.vcpu_state.iter()) {
            *d = *s;
        }
        tr.vm(trace::Vm {
            vmid: v as u32,
            state: info.state,
            vcpus,
        });
    }
}

/// Runs of leaves [`vm_leaves`] reports at most (a VM here has a few blocks and pages).
#[cfg(feature = "trace")]
const MAX_LEAF_RUNS: usize = 128;

/// Every valid leaf of VM `v`'s stage-2 as `(gfn, pages)` runs (a 2 MiB block: 512 pages),
/// at most `out.len()` of them; returns how many.
#[cfg(feature = "trace")]
fn vm_leaves(core: &Core<El2Hw>, v: u32, out: &mut [(u64, u64)]) -> usize {
    let mut n = 0;
    walk_leaves(core, v, |gfn, level, d| {
        let pages = if level == 2 { 512 } else { 1 };
        if n < out.len() && pt::is_valid(d) {
            out[n] = (gfn, pages);
            n += 1;
        }
    });
    n
}

/// Principal `v`'s stage-2 leaves in gfn order, as `f(gfn, level, descriptor)`: each valid
/// level-2 block (at its first gfn) and each non-zero level-3 entry.
#[cfg(feature = "trace")]
fn walk_leaves(core: &Core<El2Hw>, v: u32, mut f: impl FnMut(u64, u64, u64)) {
    use corevisor_kcore::consts::phys_page;
    let rd = |t: u64, i: u64| phys::read64(t + i * 8);
    let root = core.layout.pt.root(v);
    for i0 in 0..512 {
        let d0 = rd(root, i0);
        if !pt::is_table(d0) {
            continue;
        }
        for i1 in 0..512 {
            let d1 = rd(phys_page(d0), i1);
            if !pt::is_table(d1) {
                continue;
            }
            for i2 in 0..512 {
                let d2 = rd(phys_page(d1), i2);
                let base = (i0 << 27) | (i1 << 18) | (i2 << 9);
                if !pt::is_valid(d2) {
                    continue;
                }
                if !pt::is_table(d2) {
                    f(base, 2, d2);
                    continue;
                }
                for i3 in 0..512 {
                    let d3 = rd(phys_page(d2), i3);
                    if d3 != 0 {
                        f(base | i3, 3, d3);
                    }
                }
            }
        }
    }
}

/// The digest of kcore's whole state (corevisor_kcore::digest: page metadata, every
/// principal's stage-2 leaves but KCore's, VM records), for the trace's final line, read
/// under the caller's hold of the lock (`None`: kcore not booted).
#[cfg(feature = "trace")]
pub fn state_digest(st: &mut Shared) -> Option<corevisor_kcore::digest::StateDigest> {
    use corevisor_kcore::consts::phys_page;
    if !st.glue.is_set() {
        return None;
    }
    let core = core();
    let mut d = corevisor_kcore::digest::Digester::default();
    let first = RAM_BASE / PAGE_SIZE;
    for idx in 0..(RAM_END - RAM_BASE) / PAGE_SIZE {
        let pfn = first + idx;
        let m = PageMeta(phys::read64(core.hw.meta_base + idx * 8)).unpack(pfn);
        d.page(pfn, m.owner.into(), m.count.into(), m.gfn);
    }
    for v in 0..COREVISOR {
        walk_leaves(core, v, |gfn, level, desc| {
            let pfn = phys_page(desc) / PAGE_SIZE;
            if level == 2 {
                for k in 0..512 {
                    d.leaf(v.into(), gfn + k, pfn + k, 2, desc);
                }
            } else {
                d.leaf(v.into(), gfn, pfn, 3, desc);
            }
        });
    }
    for v in 1..COREVISOR {
        let info = core.vms[v as usize].read();
        d.vm(
            v.into(),
            info.state.into(),
            info.vcpu_state.iter().map(|&s| s.into()),
        );
    }
    Some(d.finish())
}

/// Into the trace: principal `vmid`'s stage-2 leaf at `gfn` (descriptor 0: unmapped).
#[cfg(feature = "trace")]
fn trace_s2(core: &Core<El2Hw>, tr: &mut Trace, vmid: u32, gfn: u64) {
    let (d, level) =
        pt::lookup(&core.hw, &core.layout.pt, vmid, gfn.wrapping_mul(PAGE_SIZE)).unwrap_or((0, 0));
    tr.s2(vmid, gfn, level, d);
}

/// The VM a host hypercall concerns: x1 for the calls that name one, REGISTER_KVM's result.
#[cfg(feature = "trace")]
#[inline(always)]
fn vm_of_call(call: u64, x1: u64, x0_after: u64) -> Option<u64> {
    if call == hvc::TIMER_SET_CNTVOFF {
        // The measured null call: tested first.
        return None;
    }
    match call {
        hvc::REGISTER_KVM => Some(x0_after),
        hvc::TIMER_SET_CNTVOFF
        | hvc::SMMU_FREE_PGD
        | hvc::SMMU_ALLOC_PGD
        | hvc::SMMU_LPAE_MAP
        | hvc::SMMU_LPAE_IOVA_TO_PHYS
        | hvc::SMMU_CLEAR => None,
        _ => Some(x1),
    }
}

/// A host hypercall (x0 = number): VCPU_RUN or any other of kcore's.
#[inline(always)]
pub fn host_hypercall(frame: &mut TrapFrame, esr: u64) -> Result<(), Stop> {
    if frame.kcpu.regs.regs.x[0] == hvc::VCPU_RUN {
        return vcpu_run(frame, esr);
    }
    let cpu = frame.cpu as usize;
    let _entries = ENTRIES.write();
    let mut st = STATE.lock();
    let tr = &mut st.trace;
    #[cfg(feature = "trace")]
    tr.begin();
    let kc = &mut frame.kcpu;
    let x = &kc.regs.regs.x;
    let (call, x1) = (x[0], x[1]);
    // The call's arguments for the trace, as the host gave them (kcore leaves its result in
    // the frame): x0 alone for most measured calls.
    #[cfg(feature = "trace")]
    let (_, n) = el2_abi::hvc::describe(call);
    #[cfg(feature = "trace")]
    let saved: [u64; 9];
    #[cfg(feature = "trace")]
    let args: &[u64] = if n == 0 {
        &[]
    } else {
        saved = core::array::from_fn(|i| x[i + 1]);
        &saved[..n.min(9)]
    };
    // CLEAR_VM_S2_RANGE may tear down a VM's whole stage-2: the trace lists every leaf
    // the VM had, as it is after the call.
    #[cfg(feature = "trace")]
    let mut had = [(0u64, 0u64); MAX_LEAF_RUNS];
    #[cfg(feature = "trace")]
    let nhad = if call == hvc::CLEAR_VM_S2_RANGE && (1..COREVISOR as u64).contains(&x1) {
        vm_leaves(core(), x1 as u32, &mut had)
    } else {
        0
    };
    take(&mut kc.regs, esr);
    #[cfg(feature = "trace")]
    let found = file_of(&kc.regs);
    let t = core().host_hvc_handler(kc, &mut input(tr));
    if t == Trap::Done && call == hvc::VERIFY_VM_IMAGE {
        clean_verified_image(core(), x1);
    }
    core().hw.finish();
    let x0_after = kc.regs.regs.x[0];
    #[cfg(feature = "trace")]
    if nhad > 0 {
        trace_state_clear(core(), tr, x1 as u32, &had[..nhad]);
    } else {
        trace_state(core(), tr, vm_of_call(call, x1, x0_after));
    }
    let step = Step {
        cpu: cpu as u8,
        principal: 0,
        vcpu: 0,
        entry: Entry::HostHvc,
        action: Action::Hvc,
        result: outcome(t),
        x0: Some(x0_after),
    };
    #[cfg(feature = "trace")]
    {
        trace_files(tr, cpu, ctxt_id(HOSTVISOR, cpu as u32), &found, kc, false);
        core().hw.trace_tlbi(tr);
        tr.emit(step, call, args);
    }
    if t == Trap::Done && call == hvc::VERIFY_VM_IMAGE {
        // KCore's log (both builds); traced, after the entry's record.
        let state = core().vms.get(x1 as usize).map_or(0, |vm| vm.read().state);
        tr.verdict(x1, state == VERIFIED);
    }
    if t != Trap::Done {
        return Err(Stop { step });
    }
    Ok(())
}

/// VCPU_RUN: the host's world out, the vCPU's in.
#[inline(never)]
fn vcpu_run(frame: &mut TrapFrame, esr: u64) -> Result<(), Stop> {
    let cpu = frame.cpu as usize;
    let _entries = ENTRIES.write();
    let mut st = STATE.lock();
    let Shared { trace: tr, glue } = &mut *st;
    let g = glue.get();
    #[cfg(feature = "trace")]
    tr.begin();
    let kc = &mut frame.kcpu;
    // The call's arguments for the trace, as the host gave them (kcore loads the vCPU's
    // registers into the frame).
    #[cfg(feature = "trace")]
    let args: [u64; 10] = core::array::from_fn(|i| kc.regs.regs.x[i]);
    take(&mut kc.regs, esr);
    let host_extra = save_world(&mut kc.regs);
    #[cfg(feature = "trace")]
    let found = file_of(&kc.regs);
    let t = core().host_vcpu_run_handler(kc, &mut input(tr));
    core().hw.finish();
    let step = Step {
        cpu: cpu as u8,
        principal: 0,
        vcpu: 0,
        entry: Entry::VcpuRun,
        action: Action::Hvc,
        result: outcome(t),
        x0: None,
    };
    #[cfg(feature = "trace")]
    {
        let x0_after = kc.regs.regs.x[0];
        trace_state(core(), tr, vm_of_call(hvc::VCPU_RUN, args[1], x0_after));
        trace_files(tr, cpu, ctxt_id(HOSTVISOR, cpu as u32), &found, kc, false);
        core().hw.trace_tlbi(tr);
        let (_, n) = el2_abi::hvc::describe(hvc::VCPU_RUN);
        tr.emit(step, args[0], &args[1..=n.min(9)]);
    }
    if t != Trap::Done {
        return Err(Stop { step });
    }
    // The host's EL1 state was saved into its shadow context by kcore; keep what the Ctxt
    // has no field for, and load the vCPU.
    let now = kc.run;
    g.extra[ctxt_id(HOSTVISOR, cpu as u32)] = host_extra;
    let id = ctxt_id(now.cur_vmid, now.cur_vcpuid);
    load_world(&kc.regs, g.extra[id], false, g.hpmn);
    if g.last_cpu[id] != cpu as u8 {
        regs::tlbi_vmalle1_local();
        g.last_cpu[id] = cpu as u8;
    }
    frame.in_vm = 1;
    Ok(())
}

/// After VERIFY_VM_IMAGE: the verified bytes to the point of coherency (a VM starts with
/// its MMU and caches off and fetches exactly them), and no stale instruction anywhere.
fn clean_verified_image(core: &Core<El2Hw>, vmid: u64) {
    let Some(vm) = core.vms.get(vmid as usize).map(|l| l.read()) else {
        return;
    };
    for i in 0..vm.next_load_info as usize {
        let mut off = 0;
        while off < vm.load_size[i] {
            let at = vm.remap_addr[i] + off;
            if let Some((d, 3)) = pt::lookup(&core.hw, &core.layout.pt, COREVISOR, at) {
                let pa = corevisor_kcore::consts::phys_page(d);
                if phys::is_raw(pa, PAGE_SIZE) {
                    phys::clean_invalidate(pa, PAGE_SIZE);
                }
            }
            off += PAGE_SIZE;
        }
    }
    phys::invalidate_icache_all();
}

/// Host stage-2 faults kcore served (every CPU), reported when the machine stops.
static HOST_FAULTS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Host stage-2 faults kcore served so far.
pub fn host_faults() -> u64 {
    HOST_FAULTS.load(core::sync::atomic::Ordering::Relaxed)
}

/// A host stage-2 fault (data or instruction abort from the host): with [`ENTRIES`] shared,
/// so two CPUs may be in kcore's `host_npt_handler` at once. Traced, its record (with the
/// window of entry tickets it ran in) is written under the trace's lock before it lets go.
pub fn host_fault(frame: &mut TrapFrame, esr: u64) -> Result<(), Stop> {
    HOST_FAULTS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    let cpu = frame.cpu as usize;
    let _entries = ENTRIES.read();
    #[cfg(feature = "trace")]
    let enter = WINDOW.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    let kc = &mut frame.kcpu;
    take(&mut kc.regs, esr);
    #[cfg(feature = "trace")]
    let addr = fault_ipa(&kc.regs);
    #[cfg(feature = "trace")]
    let mut values = Buffered::default();
    #[cfg(not(feature = "trace"))]
    let mut values = Discard;
    let t = core().host_npt_handler(kc, &mut values);
    core().hw.finish();
    let action = if esr >> 26 == 0x20 {
        Action::HostFetch
    } else if esr & (1 << 6) != 0 {
        Action::HostStore
    } else {
        Action::HostLoad
    };
    let step = Step {
        cpu: cpu as u8,
        principal: 0,
        vcpu: 0,
        entry: Entry::HostNpt,
        action,
        result: outcome(t),
        x0: None,
    };
    #[cfg(feature = "trace")]
    {
        let mut st = STATE.lock();
        let tr = &mut st.trace;
        tr.begin();
        values.replay(tr);
        trace_state(core(), tr, None);
        // What the fault left in the host's stage 2 at the address.
        trace_s2(core(), tr, HOSTVISOR, addr / PAGE_SIZE);
        core().hw.trace_tlbi(tr);
        let exit = WINDOW.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        tr.emit(step, addr, &[esr, enter, exit]);
    }
    if t != Trap::Done {
        return Err(Stop { step });
    }
    Ok(())
}

/// Entry tickets: a host fault takes one as it enters kcore and one as it leaves; two faults
/// whose windows overlap were inside kcore at the same moment (check-trace counts them).
#[cfg(feature = "trace")]
static WINDOW: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// A host fault's untrusted values (none in practice), kept until its record is written.
#[cfg(feature = "trace")]
#[derive(Default)]
struct Buffered {
    v: [(bool, u32, u64); 16],
    n: usize,
    lost: bool,
}

#[cfg(feature = "trace")]
impl Buffered {
    fn push(&mut self, core: bool, p: u32, v: u64) {
        if self.n < self.v.len() {
            self.v[self.n] = (core, p, v);
            self.n += 1;
        } else {
            self.lost = true;
        }
    }

    fn replay(&self, tr: &mut Trace) {
        for &(core, p, v) in &self.v[..self.n] {
            if core {
                tr.core(p, v);
            } else {
                tr.data(p, v);
            }
        }
        if self.lost {
            tr.mark_lost();
        }
    }
}

#[cfg(feature = "trace")]
impl Untrusted for Buffered {
    fn record(&mut self, principal: u32, value: u64) {
        self.push(false, principal, value);
    }
    fn record_core(&mut self, vmid: u32, value: u64) {
        self.push(true, vmid, value);
    }
}

/// What a VM exit is, for the trace.
fn exit_action(esr: u64, x: &[u64; 31], irq: bool, ipa: u64) -> (Action, [u64; 4], u8) {
    if irq {
        return (Action::Irq, [esr, 0, 0, 0], 1);
    }
    match esr >> 26 {
        0x18 => (Action::GuestSysreg, [esr, 0, 0, 0], 1),
        0x01 => (Action::GuestWfx, [esr, 0, 0, 0], 1),
        0x16 => match x[0] {
            hvc::KVM_SET_DESC_PFN => (Action::GuestShare, [x[2], x[3], 0, 0], 2),
            hvc::KVM_UNSET_DESC_PFN => (Action::GuestUnshare, [x[2], x[3], 0, 0], 2),
            v if v & 0xFFFF_FFFF == hvc::PSCI_0_2_FN_SYSTEM_OFF => {
                (Action::GuestPsci, [v, 0, 0, 0], 1)
            }
            _ => (Action::GuestHvcOther, [x[0], x[1], x[2], x[3]], 4),
        },
        0x24 if esr & (1 << 6) != 0 => (Action::GuestStore, [ipa, esr, 0, 0], 2),
        0x24 => (Action::GuestLoad, [ipa, esr, 0, 0], 2),
        0x20 => (Action::GuestFetch, [ipa, esr, 0, 0], 2),
        _ => (Action::GuestOther, [esr, 0, 0, 0], 1),
    }
}

/// An exit of the VM running on this CPU (`irq`: an interrupt, else a synchronous trap).
#[inline(always)]
pub fn vm_exit(frame: &mut TrapFrame, esr: u64, irq: bool) -> Result<(), Stop> {
    let cpu = frame.cpu as usize;
    let _entries = ENTRIES.write();
    let mut st = STATE.lock();
    let Shared { trace: tr, glue } = &mut *st;
    let g = glue.get();
    #[cfg(feature = "trace")]
    tr.begin();
    let kc = &mut frame.kcpu;
    let before = kc.run;
    let ec = esr >> 26;
    let x0 = kc.regs.regs.x[0];
    // Exits kcore handles without the host (a system-register trap, a share/unshare call)
    // keep the VM's EL1 and FP state in the CPU; every other exit may switch to the host.
    let light = !irq
        && (ec == 0x18
            || (ec == 0x16 && matches!(x0, hvc::KVM_SET_DESC_PFN | hvc::KVM_UNSET_DESC_PFN)));
    let f = &mut kc.regs;
    take(f, esr);
    f.regs.ec = if irq {
        ARM_EXCEPTION_INTERRUPT
    } else {
        ARM_EXCEPTION_TRAP
    };
    // The trace, from the VM's registers at the exit.
    #[cfg(feature = "trace")]
    let (action, a, n) = exit_action(esr, &f.regs.x, irq, fault_ipa(f));
    let vm_extra = if light { None } else { Some(save_world(f)) };
    #[cfg(feature = "trace")]
    let found = file_of(f);
    if !light {
        // Stands in for a kcore fix (docs/el2.md, "kcore changes"): on an exit that may go
        // to the host, kcore (and the seed) keep the vCPU's registers but not its return
        // state, so VCPU_RUN would resume it at its first-run pc. SeKVM's `__guest_exit`
        // saves ELR_EL2/SPSR_EL2 into the vCPU's context; so does this, into the shadow.
        let id = ctxt_id(before.cur_vmid, before.cur_vcpuid);
        core().save_resume_point(id, f.regs.elr_el2, f.regs.spsr_el2);
    }
    let t = core().vm_exit_handler(kc, &mut input(tr));
    core().hw.finish();
    let now = kc.run;
    #[cfg(feature = "trace")]
    {
        let mut step = exit_step(cpu, before, action, t);
        if light {
            // kcore stays in the VM and changes no VM record (the measured loop): its pages
            // only.
            trace_state(core(), tr, None);
        } else {
            trace_state(core(), tr, Some(before.cur_vmid as u64));
            if t == Trap::Done && now.ihost {
                // Back in the host: the x0 it gets.
                step.x0 = Some(kc.regs.regs.x[0]);
            }
        }
        let id = ctxt_id(before.cur_vmid, before.cur_vcpuid);
        trace_files(tr, cpu, id, &found, kc, !light);
        core().hw.trace_tlbi(tr);
        tr.emit(step, a[0], &a[1..n as usize]);
        if t != Trap::Done {
            return Err(Stop { step });
        }
    }
    #[cfg(not(feature = "trace"))]
    if t != Trap::Done {
        // For KCore's panic message only: what the exit was, from the VM's registers as the
        // halted entry left them (the traced build reads them before the call).
        let (action, ..) = exit_action(esr, &kc.regs.regs.x, irq, fault_ipa(&kc.regs));
        return Err(Stop {
            step: exit_step(cpu, before, action, t),
        });
    }
    match vm_extra {
        None => assert!(
            !now.ihost,
            "an exit the glue took for one kcore keeps in the VM switched worlds"
        ),
        Some(vx) => {
            let (vid, hid) = (
                ctxt_id(before.cur_vmid, before.cur_vcpuid),
                ctxt_id(HOSTVISOR, cpu as u32),
            );
            if now.ihost {
                g.extra[vid] = vx;
                load_world(&kc.regs, g.extra[hid], true, g.hpmn);
                frame.in_vm = 0;
            } else {
                load_world(&kc.regs, vx, false, g.hpmn);
            }
        }
    }
    Ok(())
}

/// A VM exit as the trace (or KCore's panic message) describes it.
#[inline(always)]
fn exit_step(cpu: usize, before: PerCpu, action: Action, t: Trap) -> Step {
    Step {
        cpu: cpu as u8,
        principal: before.cur_vmid as u8,
        vcpu: before.cur_vcpuid as u8,
        entry: Entry::VmExit,
        action,
        result: outcome(t),
        x0: None,
    }
}

/// Whether kcore has halted (for the panic path; `None` if the core cannot be had).
pub fn halted_panicking() -> Option<bool> {
    for _ in 0..1_000_000 {
        if let Some(st) = STATE.try_lock() {
            if !st.glue.is_set() {
                return None;
            }
            return Some(core().halted());
        }
        core::hint::spin_loop();
    }
    None
}
