//! An SMMU-500-like SMMUv2 (Arm IHI 0062) as a device of the simulated machine: its
//! registers as software sees them through exact-width MMIO ([`Smmu::read`],
//! [`Smmu::write`]), and the translation of every device access as the hardware performs it
//! from those registers ([`Smmu::translate`], [`Smmu::dma_read`], [`Smmu::dma_write`]).
//!
//! # What is modelled
//!
//! * Global space: sCR0 (CLIENTPD, USFCFG, GFRE, ...; SMCFCFG reads as one and ignores
//!   writes, as on SMMU-500, so a stream matching several SMRs always faults), sCR2 (bypass
//!   VMID: stored, no effect, since bypass translations are not cached), sACR (stored),
//!   read-only ID registers, the global fault registers (sGFSR, sGFAR, sGFSYNR0-2), SMRn and
//!   S2CRn, the TLB operations TLBIVMID, TLBIALLNSNH, TLBIALLH and the sTLBGSYNC/sTLBGSTATUS
//!   handshake; in GR1, CBARn, CBFRSYNRAn and CBA2Rn.
//! * Per context bank: SCTLR, ACTLR, RESUME, TTBR0 (64-bit, either 32-bit half writable on
//!   its own), TCR, CONTEXTIDR (stored; a stage-2 context does not use it), FSR/FSRRESTORE,
//!   FAR, FSYNR0/1, TLBIIPAS2[L] and the TLBSYNC/TLBSTATUS handshake.
//! * The implementation supports stage 2 only (IDR0.S1TS = 0, NTS = 0), stream matching
//!   with [`SmmuConfig::stream_match_groups`] groups, 8-bit VMIDs, no extended stream IDs,
//!   the 4 KiB granule in the AArch64 and AArch32-long-descriptor formats, 48-bit input and
//!   output sizes. Stage-1 registers of a context bank read as zero and ignore writes; a
//!   CBAR type that asks for stage 1 is an invalid context. Only the Non-secure programming
//!   interface exists (secure-only registers read as zero and ignore writes).
//!
//! # Address map
//!
//! With 4 KiB pages and `IDR1.NUMPAGENDXB` = n, the SMMU's own address space is
//! `2 × 2^(n+1)` pages: the global space (GR0 at page 0, GR1 at page 1, the rest reserved)
//! and then one page per context bank. The default (n = 2) matches KCore's constants:
//! global space below 0x8000, CBARn at 0x1000 + 4n, CBA2Rn at 0x1800 + 4n, context bank n at
//! 0x8000 + n·0x1000, 64 KiB in all. The machine gives each SMMU a 128 KiB window
//! ([`SmmuConfig::window`]); the architecture places nothing of the SMMU above its own
//! `SMMU_TOP`, so the window's upper half does not alias any register: it reads as zero and
//! ignores writes. (KCore masking offsets with 0xFFFF treats it as an alias of the lower
//! half; with this decode that is wrong, but it gives no access to a register.) Accesses
//! beyond the window are not this device's.
//!
//! # Access widths
//!
//! Registers are 32 bits wide and take aligned 32-bit accesses; the 64-bit registers (TTBR0,
//! FAR, sGFAR, the 64-bit TLB operations) also take aligned 64-bit accesses, and a 32-bit
//! access to either half touches exactly that half. The architecture gives no meaning to
//! byte or halfword accesses, to misaligned accesses, or to a 64-bit access that would span
//! two 32-bit registers: the model refuses them with a [`BusError`] and changes nothing (on
//! hardware: an external abort, or worse).
//!
//! # Translation of a device access (stream ID `sid`)
//!
//! 1. sCR0.CLIENTPD = 1: bypass (output address = input address).
//! 2. Stream matching against every valid SMR (`(sid ^ ID) & !MASK == 0`): no match →
//!    sCR0.USFCFG = 1 raises an unidentified stream fault, 0 bypasses; several matches → a
//!    stream match conflict fault.
//! 3. The matched S2CR: bypass, fault (invalid context fault) or translate through bank
//!    CBNDX (an unimplemented bank is an unimplemented context bank fault).
//! 4. The bank: CBAR.TYPE must be stage-2 translation; SCTLR.M = 0 bypasses; otherwise the
//!    IOTLB is looked up with the bank's VMID (CBAR.VMID) and, on a miss, the stage-2 table
//!    is walked from TTBR0 with the TCR's input size and starting level, in the byte order
//!    SCTLR.E selects ([`walk`]), and the leaf is cached. A descriptor with AF = 0 faults unless SCTLR.AFFD; S2AP decides reads
//!    and writes.
//!
//! A context fault is recorded in the bank's FSR/FAR/FSYNR0 and CBFRSYNRA (a second fault
//! while one is recorded only sets MULTI); SCTLR.CFCFG = 1 stalls the transaction (FSR.SS,
//! cleared by a write to RESUME; the device retries with a new transaction), otherwise it
//! is terminated with an abort (SCTLR.CFRE = 1) or RAZ/WI. A global fault is recorded in
//! sGFSR/sGFAR/sGFSYNR0/1 and aborts if sCR0.GFRE, else is RAZ/WI. Either way the access
//! does not reach memory.

mod bus;
mod dma;
pub mod iotlb;
mod mmio;
pub mod regs;
mod reset;
pub mod walk;

pub use bus::SmmuBus;
use corevisor_kcore::hw::Hw;
pub use dma::{Access, Bypass, DmaFault, Fault, Response, Route, Translated};
pub use iotlb::IotlbSharing;
pub use mmio::{BusError, Width};
pub use reset::{SmmuReset, LIKELY_IOVAS};

/// Physical memory as the SMMU's table walker reads it (any [`Hw`], e.g. `SimMemory`).
pub trait TableMemory {
    fn read64(&self, pa: u64) -> u64;
}

impl<T: Hw + ?Sized> TableMemory for T {
    fn read64(&self, pa: u64) -> u64 {
        Hw::read64(self, pa)
    }
}

/// The implementation choices of one SMMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmmuConfig {
    /// Translation context banks (IDR1.NUMCB; all stage-2 only).
    pub context_banks: u32,
    /// Stream match register groups (IDR0.NUMSMRG).
    pub stream_match_groups: u32,
    /// Stream ID bits (IDR0.NUMSIDB).
    pub stream_id_bits: u32,
    /// IDR1.NUMPAGENDXB: the global space is 2^(n+1) pages and so is the context bank space.
    pub numpagendxb: u32,
    /// Bytes of physical address space the machine decodes to this SMMU.
    pub window: u64,
    /// Which lookups may use an IOTLB entry.
    pub iotlb: IotlbSharing,
    /// Whether the IOTLB holds a run of descriptors with the contiguous hint as one entry.
    pub contiguous_hint: bool,
    /// Reads of a TLB synchronisation's status register that still see it active.
    pub sync_latency: u32,
}

impl Default for SmmuConfig {
    /// The machine's SMMUs: 8 banks, 16 SMRs, 15-bit stream IDs, context banks at 0x8000 in a
    /// 128 KiB window, VMID-shared IOTLB entries honouring the contiguous hint, and a TLB
    /// sync that the first status read still sees active (software must poll).
    fn default() -> Self {
        SmmuConfig {
            context_banks: 8,
            stream_match_groups: 16,
            stream_id_bits: 15,
            numpagendxb: 2,
            window: 0x2_0000,
            iotlb: IotlbSharing::PerVmid,
            contiguous_hint: true,
            sync_latency: 1,
        }
    }
}

impl SmmuConfig {
    /// Pages in the global space (and in the context bank space).
    pub fn numpage(&self) -> u64 {
        1 << (self.numpagendxb + 1)
    }

    /// Offset of context bank 0's page.
    pub fn cb_base(&self) -> u64 {
        self.numpage() * regs::PAGE
    }

    /// Bytes of the SMMU's own address space (global + context banks).
    pub fn size(&self) -> u64 {
        2 * self.cb_base()
    }
}

/// One context bank's registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bank {
    cbar: u32,
    cbfrsynra: u32,
    cba2r: u32,
    sctlr: u32,
    actlr: u32,
    tcr: u32,
    ttbr0: u64,
    contextidr: u32,
    fsr: u32,
    far: u64,
    fsynr0: u32,
    fsynr1: u32,
}

/// An SMMUv2 with its registers, stream mapping and IOTLB.
#[derive(Clone, Debug)]
pub struct Smmu {
    cfg: SmmuConfig,
    scr0: u32,
    scr2: u32,
    sacr: u32,
    gfar: u64,
    gfsr: u32,
    gfsynr: [u32; 3],
    smr: Vec<u32>,
    s2cr: Vec<u32>,
    banks: Vec<Bank>,
    tlb: iotlb::Iotlb,
}

impl Smmu {
    /// An SMMU as it comes out of a clean reset (for what firmware may leave instead, see
    /// [`Smmu::reset_to`]): client ports disabled (sCR0.CLIENTPD = 1, every
    /// access bypasses), no valid SMR, every S2CR of type fault, every bank disabled.
    pub fn new(cfg: SmmuConfig) -> Smmu {
        assert!(cfg.numpagendxb <= 7, "IDR1.NUMPAGENDXB is a 3-bit field");
        assert!(
            (1..=cfg.numpage()).contains(&(cfg.context_banks as u64)),
            "context banks must fit the context bank space"
        );
        assert!((1..=128).contains(&cfg.stream_match_groups));
        assert!((1..=15).contains(&cfg.stream_id_bits));
        assert!(cfg.window >= cfg.size() && cfg.window.is_multiple_of(regs::PAGE));
        Smmu {
            cfg,
            scr0: regs::scr0::RESET,
            scr2: 0,
            sacr: 0,
            gfar: 0,
            gfsr: 0,
            gfsynr: [0; 3],
            smr: vec![0; cfg.stream_match_groups as usize],
            s2cr: vec![regs::s2cr::RESET; cfg.stream_match_groups as usize],
            banks: vec![Bank::default(); cfg.context_banks as usize],
            tlb: iotlb::Iotlb::new(cfg.iotlb, cfg.sync_latency, cfg.context_banks),
        }
    }

    pub fn config(&self) -> &SmmuConfig {
        &self.cfg
    }

    /// Translations the IOTLB holds.
    pub fn iotlb_entries(&self) -> usize {
        self.tlb.len()
    }

    /// Invalidations accepted but not yet completed by a synchronisation.
    pub fn pending_invalidations(&self) -> usize {
        self.tlb.pending()
    }

    /// The VMID transactions through `bank` are tagged with.
    pub fn bank_vmid(&self, bank: u32) -> Option<u32> {
        self.banks
            .get(bank as usize)
            .map(|b| b.cbar & regs::cbar::VMID)
    }
}
