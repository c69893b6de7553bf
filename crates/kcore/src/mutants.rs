//! Planted bugs ("named faults") that the checkers must find (issue 10).
//!
//! Each fault is one `if mutant(Fault::X)` at the point it breaks. Without the `mutants`
//! feature [`mutant`] is a constant `false` and every such branch compiles away: production
//! builds have no hooks and no state. With the feature (a test build: it needs `std`), the
//! active fault is chosen at run time, so one build serves every fault:
//!
//! * the environment variable `COREVISOR_MUTANT` names the process-wide fault (read once);
//! * [`with`] overrides it for the calling thread, for tests that plant one fault in one
//!   run while other tests run beside it.

/// The named faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Reclaim scrubs only the first 8 bytes of each page (issue 10, bug 1).
    ScrubFirstWordOnly,
    /// vCPU run takes the host's emulated-MMIO results from x9 instead of x8 (issue 10, bug 2).
    MmioResultsFromX9,
    /// A revoke that drops the last share leaves the host's mapping in place.
    RevokeKeepsHostMapping,
    /// A world switch forgets one EL1 register (SCTLR_EL1).
    WorldSwitchForgetsSctlr,
    /// FP/SIMD registers are not restored on a world switch.
    FpsimdNotRestored,
    /// Break-before-make without the TLB invalidation.
    MissedTlbi,
    /// A host stage-2 fault maps a page without checking who owns it.
    MapSkipsOwnerCheck,
    /// Assigning a page to a VM does not check that the host owns it.
    AssignSkipsOwnerCheck,
    /// A guest's GRANT does not check that the VM owns the page.
    GrantSkipsOwnerCheck,
    /// An SMMU unmap or bank change without TLBIVMID + sync (issue 13).
    MissedSmmuTlbi,
    /// The host's stage-2 fault maps a non-RAM address no declared device covers (issue 9).
    DeviceOutsideMmioMapped,
    /// A guest's GRANT updates the page's share count without holding S2PAGE (issue 11):
    /// a missing lock, found only by an interleaving.
    GrantSkipsS2PageLock,
    /// A guest's GRANT updates the page's metadata in two holds of S2PAGE, the page
    /// ownerless in between (issue 11): a torn update, found by the lock-release check.
    GrantTearsOwner,
    /// Issue 20, hole 1 put back: the host's stage-2 fault maps a page given to a VM's
    /// device (count INVALID counted as shared).
    HostMapsSmmuPage,
    /// Issue 20, hole 2 put back: CLEAR reclaims a powered-off VM's pages while a vCPU of
    /// it runs or a bank is its, without tearing down its stage-2; a dead VM gets banks.
    ClearWhileReachable,
    /// Issue 20, hole 3 put back: VERIFY maps each chunk's block without checking that the
    /// signed (remapped) pages are the block's pages.
    ImageBlockUnbound,
    /// Issue 20, hole 4 put back: PHYS_ADDR_IOREMAP maps an SMMU register window into a VM.
    IoremapSmmuWindow,
    /// Issue 20: a world switch drops one EL1 register, the one `COREVISOR_MUTANT_ARG` (or
    /// [`with_arg`]) names, one of [`EL1_REGS`].
    WorldSwitchDropsEl1Reg,
    /// Issue 20: SMMU_LPAE_MAP gives the VM's device a page the host does not own (or
    /// shares), skipping the assign's ownership precondition.
    SmmuAssignSkipsOwnerCheck,
    /// Issue 20: SMMU_LPAE_MAP maps an IOVA to a page the bank's owner owns at another gfn
    /// (or does not own), skipping the map's precondition.
    SmmuMapSkipsOwnerCheck,
    /// Issue 22: ENCRYPT_BUF and SAVE_CRYPT_VCPU write the plaintext into the host's page
    /// instead of the ciphertext (the header KCore keeps is still the ciphertext's).
    ExportWritesPlaintext,
    /// Issue 22: every export is sealed under its VM's first nonce (sequence number 0), and
    /// opened under it too: exports and imports still round-trip, but two exports of one VM
    /// share a keystream.
    ExportNonceReused,
    /// Issue 22: the SMMU boot leaves one stream match register group as firmware left it:
    /// it skips clearing the SMR or the S2CR that `COREVISOR_MUTANT_ARG` (or [`with_arg`])
    /// names, `"smr:N"` or `"s2cr:N"` (N below `consts::STREAM_GROUPS`); without an
    /// argument, [`SMMU_BOOT_SKIPS_DEFAULT`].
    SmmuBootSkipsOne,
    /// Issue 22: a vCPU starting or stopping (`local_set_vcpu_active` / `_inactive`, every
    /// VM run and VM exit) decides and updates its state in the VM's INFO record on a copy
    /// read without holding INFO; the lock is taken only to store the copy back. Two vCPUs
    /// of one VM starting or stopping on two CPUs at once lose one's update: found only by
    /// a contended parallel round (`crates/check/tests/threads.rs`).
    VmInfoSkipsLock,
    /// Issue 22: the EL2 trace leaves out the record of one entry ([`TRACE_DROPS_SEQ`]) and
    /// numbers the rest as if it had never been: kcore itself is untouched, so only the
    /// trace's checker (its final state digest, or a later entry) can see it. Planted in the
    /// EL2 image (`cargo xtask qemu --mutants`); the simulator has no trace to drop from.
    TraceDropsEntry,
}

/// The entry whose record [`Fault::TraceDropsEntry`] leaves out (a host stage-2 fault of
/// the host stub's early boot).
pub const TRACE_DROPS_SEQ: u64 = 40;

/// What [`Fault::SmmuBootSkipsOne`] skips when planted without an argument (as the broad
/// suites of `cargo xtask mutants` plant it).
pub const SMMU_BOOT_SKIPS_DEFAULT: &str = "s2cr:0";

/// Whether `a` is an argument [`Fault::SmmuBootSkipsOne`] takes: `smr:N` or `s2cr:N`.
pub fn is_smmu_group_arg(a: &str) -> bool {
    smmu_group_arg(a).is_some()
}

/// `"smr:N"` / `"s2cr:N"` split into the register and N (below the groups KCore routes).
pub fn smmu_group_arg(a: &str) -> Option<(&str, u64)> {
    let (kind, n) = a.split_once(':')?;
    let n: u64 = n.parse().ok()?;
    ((kind == "smr" || kind == "s2cr") && n < crate::consts::STREAM_GROUPS).then_some((kind, n))
}

/// The register [`Fault::WorldSwitchDropsEl1Reg`] drops when no argument names one.
pub const EL1_DROP_DEFAULT: &str = "ttbr0_el1";

/// The argument `f` takes when none is given (so `cargo xtask mutants` can plant it
/// without one).
#[cfg(any(feature = "mutants", feature = "mutants-el2"))]
fn default_arg(f: Fault) -> Option<&'static str> {
    match f {
        Fault::WorldSwitchDropsEl1Reg => Some(EL1_DROP_DEFAULT),
        Fault::SmmuBootSkipsOne => Some(SMMU_BOOT_SKIPS_DEFAULT),
        _ => None,
    }
}

/// Whether `a` is an argument some fault takes (an EL1 register's name, or `smr:N` /
/// `s2cr:N`).
#[cfg(any(feature = "mutants", feature = "mutants-el2"))]
fn is_known_arg(a: &str) -> bool {
    EL1_REGS.contains(&a) || is_smmu_group_arg(a)
}

/// `f` planted with argument `arg` (given or default) is the drop of `a`.
#[cfg(any(feature = "mutants", feature = "mutants-el2"))]
fn drops(f: Fault, arg: Option<&str>, a: &str) -> bool {
    arg.or(default_arg(f)) == Some(a)
}

/// `f` planted with argument `arg` (given or default) is the drop of `"{kind}:{n}"`.
#[cfg(any(feature = "mutants", feature = "mutants-el2"))]
fn drops_at(f: Fault, arg: Option<&str>, kind: &str, n: u64) -> bool {
    arg.or(default_arg(f)).and_then(smmu_group_arg) == Some((kind, n))
}

/// The EL1 registers a world switch saves and restores besides SCTLR_EL1 (which has its own
/// fault): the arguments [`Fault::WorldSwitchDropsEl1Reg`] takes.
pub const EL1_REGS: [&str; 23] = [
    "csselr_el1",
    "cpacr_el1",
    "ttbr0_el1",
    "ttbr1_el1",
    "tcr_el1",
    "afsr0_el1",
    "afsr1_el1",
    "far_el1",
    "mair_el1",
    "vbar_el1",
    "contextidr_el1",
    "amair_el1",
    "cntkctl_el1",
    "par_el1",
    "tpidr_el1",
    "spsr_el1",
    "mdscr_el1",
    "sp_el0",
    "tpidr_el0",
    "tpidrro_el0",
    "actlr_el1",
    "sp_el1",
    "elr_el1",
];

impl Fault {
    pub const ALL: [Fault; 25] = [
        Fault::ScrubFirstWordOnly,
        Fault::MmioResultsFromX9,
        Fault::RevokeKeepsHostMapping,
        Fault::WorldSwitchForgetsSctlr,
        Fault::FpsimdNotRestored,
        Fault::MissedTlbi,
        Fault::MapSkipsOwnerCheck,
        Fault::AssignSkipsOwnerCheck,
        Fault::GrantSkipsOwnerCheck,
        Fault::MissedSmmuTlbi,
        Fault::DeviceOutsideMmioMapped,
        Fault::GrantSkipsS2PageLock,
        Fault::GrantTearsOwner,
        Fault::HostMapsSmmuPage,
        Fault::ClearWhileReachable,
        Fault::ImageBlockUnbound,
        Fault::IoremapSmmuWindow,
        Fault::WorldSwitchDropsEl1Reg,
        Fault::SmmuAssignSkipsOwnerCheck,
        Fault::SmmuMapSkipsOwnerCheck,
        Fault::ExportWritesPlaintext,
        Fault::ExportNonceReused,
        Fault::SmmuBootSkipsOne,
        Fault::VmInfoSkipsLock,
        Fault::TraceDropsEntry,
    ];

    /// The name `COREVISOR_MUTANT` and `cargo xtask mutants` use (snake case).
    pub fn name(self) -> &'static str {
        match self {
            Fault::ScrubFirstWordOnly => "scrub_first_word_only",
            Fault::MmioResultsFromX9 => "mmio_results_from_x9",
            Fault::RevokeKeepsHostMapping => "revoke_keeps_host_mapping",
            Fault::WorldSwitchForgetsSctlr => "world_switch_forgets_sctlr",
            Fault::FpsimdNotRestored => "fpsimd_not_restored",
            Fault::MissedTlbi => "missed_tlbi",
            Fault::MapSkipsOwnerCheck => "map_skips_owner_check",
            Fault::AssignSkipsOwnerCheck => "assign_skips_owner_check",
            Fault::GrantSkipsOwnerCheck => "grant_skips_owner_check",
            Fault::MissedSmmuTlbi => "missed_smmu_tlbi",
            Fault::DeviceOutsideMmioMapped => "device_outside_mmio_mapped",
            Fault::GrantSkipsS2PageLock => "grant_skips_s2page_lock",
            Fault::GrantTearsOwner => "grant_tears_owner",
            Fault::HostMapsSmmuPage => "host_maps_smmu_page",
            Fault::ClearWhileReachable => "clear_while_reachable",
            Fault::ImageBlockUnbound => "image_block_unbound",
            Fault::IoremapSmmuWindow => "ioremap_smmu_window",
            Fault::WorldSwitchDropsEl1Reg => "world_switch_drops_el1_reg",
            Fault::SmmuAssignSkipsOwnerCheck => "smmu_assign_skips_owner_check",
            Fault::SmmuMapSkipsOwnerCheck => "smmu_map_skips_owner_check",
            Fault::ExportWritesPlaintext => "export_writes_plaintext",
            Fault::ExportNonceReused => "export_nonce_reused",
            Fault::SmmuBootSkipsOne => "smmu_boot_skips_one",
            Fault::VmInfoSkipsLock => "vm_info_skips_lock",
            Fault::TraceDropsEntry => "trace_drops_entry",
        }
    }

    pub fn from_name(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// Whether this build can plant faults.
pub const ENABLED: bool = cfg!(any(feature = "mutants", feature = "mutants-el2"));

/// Is fault `f` planted? Always `false` without the `mutants` feature.
#[cfg(not(any(feature = "mutants", feature = "mutants-el2")))]
#[inline(always)]
pub const fn mutant(_f: Fault) -> bool {
    false
}

/// Is fault `f` planted with argument `arg`? Always `false` without the `mutants` feature.
#[cfg(not(any(feature = "mutants", feature = "mutants-el2")))]
#[inline(always)]
pub const fn dropped(_f: Fault, _arg: &str) -> bool {
    false
}

/// Is fault `f` planted with the argument `"{kind}:{n}"`? Always `false` without the
/// `mutants` feature.
#[cfg(not(any(feature = "mutants", feature = "mutants-el2")))]
#[inline(always)]
pub const fn dropped_at(_f: Fault, _kind: &str, _n: u64) -> bool {
    false
}

/// The window of a planted missing lock (between the unlocked read and the write): a no-op
/// without the `mutants` feature.
#[cfg(not(feature = "mutants"))]
#[inline(always)]
pub fn widen() {}

#[cfg(all(feature = "mutants-el2", not(feature = "mutants")))]
pub use fixed::{dropped, dropped_at, mutant, planted_names};

/// Faults chosen when the image is built (`mutants-el2`: no_std, for the EL2 image, which
/// has no environment to read at run time): `COREVISOR_MUTANT` and `COREVISOR_MUTANT_ARG`
/// as the compiler saw them (`option_env!`: cargo rebuilds when they change).
#[cfg(all(feature = "mutants-el2", not(feature = "mutants")))]
mod fixed {
    use super::Fault;

    const NAMES: &str = match option_env!("COREVISOR_MUTANT") {
        Some(n) => n,
        None => "",
    };
    const ARG: Option<&str> = option_env!("COREVISOR_MUTANT_ARG");

    /// The planted names as built in (the image prints them at boot and refuses one it
    /// does not know: `Err(name)`).
    pub fn planted_names() -> Result<&'static str, &'static str> {
        if let Some(a) = ARG.filter(|a| !super::is_known_arg(a)) {
            return Err(a);
        }
        match NAMES
            .split(',')
            .find(|n| !n.is_empty() && Fault::from_name(n).is_none())
        {
            Some(bad) => Err(bad),
            None => Ok(NAMES),
        }
    }

    /// Is fault `f` planted?
    pub fn mutant(f: Fault) -> bool {
        NAMES.split(',').any(|n| n == f.name())
    }

    /// Is `f` planted with argument `a`?
    pub fn dropped(f: Fault, a: &str) -> bool {
        mutant(f) && super::drops(f, ARG, a)
    }

    /// Is `f` planted with argument `"{kind}:{n}"`?
    pub fn dropped_at(f: Fault, kind: &str, n: u64) -> bool {
        mutant(f) && super::drops_at(f, ARG, kind, n)
    }
}

#[cfg(feature = "mutants")]
pub use imp::{active, dropped, dropped_at, mutant, widen, with, with_all, with_arg};

#[cfg(feature = "mutants")]
mod imp {
    extern crate std;
    use super::Fault;
    use core::cell::Cell;
    use std::sync::OnceLock;

    std::thread_local! {
        static LOCAL: Cell<Option<u32>> = const { Cell::new(None) };
        static LOCAL_ARG: Cell<Option<&'static str>> = const { Cell::new(None) };
    }
    static GLOBAL: OnceLock<u32> = OnceLock::new();
    static GLOBAL_ARG: OnceLock<Option<&'static str>> = OnceLock::new();

    /// The planted fault's argument: `COREVISOR_MUTANT_ARG`, or [`with_arg`]'s.
    fn arg() -> Option<&'static str> {
        LOCAL_ARG.with(Cell::get).or_else(|| {
            *GLOBAL_ARG.get_or_init(|| {
                let a = std::env::var("COREVISOR_MUTANT_ARG").ok()?;
                if super::is_known_arg(&a) {
                    return Some(&*std::boxed::Box::leak(a.into_boxed_str()));
                }
                panic!("COREVISOR_MUTANT_ARG={a}: unknown")
            })
        })
    }

    /// Is `f` planted with argument `a`?
    pub fn dropped(f: Fault, a: &str) -> bool {
        mutant(f) && super::drops(f, arg(), a)
    }

    /// Is `f` planted with argument `"{kind}:{n}"`?
    pub fn dropped_at(f: Fault, kind: &str, n: u64) -> bool {
        mutant(f) && super::drops_at(f, arg(), kind, n)
    }

    /// Runs `body` with the planted faults' argument `a` on this thread.
    pub fn with_arg<R>(a: &'static str, body: impl FnOnce() -> R) -> R {
        struct Restore(Option<&'static str>);
        impl Drop for Restore {
            fn drop(&mut self) {
                LOCAL_ARG.with(|l| l.set(self.0));
            }
        }
        let _restore = Restore(LOCAL_ARG.with(|l| l.replace(Some(a))));
        body()
    }

    // The planted set is a bit per fault.
    const _: () = assert!(Fault::ALL.len() <= 32);

    fn bit(f: Fault) -> u32 {
        1 << (f as u32)
    }

    /// `COREVISOR_MUTANT`: one fault's name, or several separated by commas (a fault that
    /// is only observable once another defence is gone needs both planted).
    fn from_env() -> u32 {
        let Ok(names) = std::env::var("COREVISOR_MUTANT") else {
            return 0;
        };
        let mut set = 0;
        for name in names.split(',').filter(|n| !n.is_empty()) {
            match Fault::from_name(name) {
                Some(f) => set |= bit(f),
                None => panic!("COREVISOR_MUTANT={name}: no such fault"),
            }
        }
        set
    }

    fn planted() -> u32 {
        LOCAL
            .with(Cell::get)
            .unwrap_or_else(|| *GLOBAL.get_or_init(from_env))
    }

    /// The window of a planted missing lock: the CPU gives up its time slice, as a CPU
    /// taking an interrupt there would.
    pub fn widen() {
        std::thread::yield_now();
    }

    /// The first fault planted for the calling thread, if any.
    pub fn active() -> Option<Fault> {
        Fault::ALL.into_iter().find(|&f| mutant(f))
    }

    /// Is fault `f` planted?
    pub fn mutant(f: Fault) -> bool {
        planted() & bit(f) != 0
    }

    /// Runs `body` with `f` planted (or none) on this thread.
    pub fn with<R>(f: Option<Fault>, body: impl FnOnce() -> R) -> R {
        with_all(f.as_slice(), body)
    }

    /// Runs `body` with every fault of `fs` planted (none if empty) on this thread.
    pub fn with_all<R>(fs: &[Fault], body: impl FnOnce() -> R) -> R {
        struct Restore(Option<u32>);
        impl Drop for Restore {
            fn drop(&mut self) {
                LOCAL.with(|l| l.set(self.0));
            }
        }
        let set = fs.iter().fold(0, |s, &f| s | bit(f));
        let _restore = Restore(LOCAL.with(|l| l.replace(Some(set))));
        body()
    }
}
