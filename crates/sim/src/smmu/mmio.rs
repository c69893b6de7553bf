//! The SMMU's MMIO interface: decoding an offset in the window to a register, and each
//! register's read and write semantics at the width of the access.

use super::iotlb::Invalidation;
use super::regs::{self, cb, gr0, gr1};
use super::Smmu;

/// The width of an MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    W8,
    W16,
    W32,
    W64,
}

impl Width {
    pub fn from_bytes(bytes: u64) -> Option<Width> {
        match bytes {
            1 => Some(Width::W8),
            2 => Some(Width::W16),
            4 => Some(Width::W32),
            8 => Some(Width::W64),
            _ => None,
        }
    }

    pub fn bytes(self) -> u64 {
        match self {
            Width::W8 => 1,
            Width::W16 => 2,
            Width::W32 => 4,
            Width::W64 => 8,
        }
    }
}

/// An access the SMMU does not accept (the requester sees an external abort); nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusError {
    /// Byte or halfword access.
    Width,
    /// Not aligned to its width.
    Misaligned,
    /// A 64-bit access where there is no 64-bit register.
    Not64Bit,
    /// Beyond the SMMU's window.
    OutsideWindow,
}

/// A register, as an offset decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reg {
    Scr0,
    Scr2,
    Sacr,
    Id(u64),
    Gfar,
    Gfsr,
    GfsrRestore,
    Gfsynr(usize),
    Tlbivmid,
    Tlbiallnsnh,
    /// TLBIALLH: there are no hypervisor entries to invalidate.
    Tlbiallh,
    Tlbgsync,
    Tlbgstatus,
    Smr(usize),
    S2cr(usize),
    Cbar(usize),
    Cbfrsynra(usize),
    Cba2r(usize),
    Sctlr(usize),
    Actlr(usize),
    Resume(usize),
    Ttbr0(usize),
    Tcr(usize),
    Contextidr(usize),
    Fsr(usize),
    FsrRestore(usize),
    Far(usize),
    Fsynr0(usize),
    Fsynr1(usize),
    Tlbiipas2(usize),
    Tlbsync(usize),
    Tlbstatus(usize),
    /// A 32-bit location that reads as zero and ignores writes (reserved, secure-only,
    /// stage-1 only, unimplemented).
    Ignored,
    /// The same for a 64-bit register (stage 1 only, or address translation operations).
    Ignored64,
}

impl Reg {
    fn is_64(self) -> bool {
        matches!(
            self,
            Reg::Gfar | Reg::Ttbr0(_) | Reg::Far(_) | Reg::Tlbiipas2(_) | Reg::Ignored64
        )
    }
}

impl Smmu {
    /// The register at `off` (a multiple of 4 inside the SMMU's own space), and the byte
    /// offset of `off` within it (4 for the upper half of a 64-bit register).
    fn decode(&self, off: u64) -> (Reg, u64) {
        let page = off / regs::PAGE;
        let o = off % regs::PAGE;
        let numpage = self.cfg.numpage();
        let smrs = self.cfg.stream_match_groups as u64;
        let banks = self.cfg.context_banks as u64;
        let idx = |base: u64, count: u64| {
            (off >= base && off < base + 4 * count).then(|| ((off - base) / 4) as usize)
        };
        if page == 0 {
            let r = match o {
                gr0::SCR0 => Reg::Scr0,
                gr0::SCR2 => Reg::Scr2,
                gr0::SACR => Reg::Sacr,
                0x20..=0x3C => Reg::Id(o),
                0x40 | 0x44 => return (Reg::Gfar, o - gr0::SGFAR),
                gr0::SGFSR => Reg::Gfsr,
                gr0::SGFSRRESTORE => Reg::GfsrRestore,
                gr0::SGFSYNR0 | gr0::SGFSYNR1 | gr0::SGFSYNR2 => {
                    Reg::Gfsynr(((o - gr0::SGFSYNR0) / 4) as usize)
                }
                gr0::TLBIVMID => Reg::Tlbivmid,
                gr0::TLBIALLNSNH => Reg::Tlbiallnsnh,
                gr0::TLBIALLH => Reg::Tlbiallh,
                gr0::STLBGSYNC => Reg::Tlbgsync,
                gr0::STLBGSTATUS => Reg::Tlbgstatus,
                _ => match (idx(gr0::SMR_BASE, smrs), idx(gr0::S2CR_BASE, smrs)) {
                    (Some(n), _) => Reg::Smr(n),
                    (_, Some(n)) => Reg::S2cr(n),
                    _ => Reg::Ignored,
                },
            };
            return (r, 0);
        }
        if page == 1 {
            let r = match (
                idx(gr1::CBAR_BASE, banks),
                idx(gr1::CBFRSYNRA_BASE, banks),
                idx(gr1::CBA2R_BASE, banks),
            ) {
                (Some(n), _, _) => Reg::Cbar(n),
                (_, Some(n), _) => Reg::Cbfrsynra(n),
                (_, _, Some(n)) => Reg::Cba2r(n),
                _ => Reg::Ignored,
            };
            return (r, 0);
        }
        let n = page.wrapping_sub(numpage);
        if page < numpage || n >= banks {
            return (Reg::Ignored, 0); // reserved global pages, unimplemented banks
        }
        let n = n as usize;
        let r = match o {
            cb::SCTLR => Reg::Sctlr(n),
            cb::ACTLR => Reg::Actlr(n),
            cb::RESUME => Reg::Resume(n),
            0x20 | 0x24 => return (Reg::Ttbr0(n), o - cb::TTBR0),
            cb::TCR => Reg::Tcr(n),
            cb::CONTEXTIDR => Reg::Contextidr(n),
            cb::FSR => Reg::Fsr(n),
            cb::FSRRESTORE => Reg::FsrRestore(n),
            0x60 | 0x64 => return (Reg::Far(n), o - cb::FAR),
            cb::FSYNR0 => Reg::Fsynr0(n),
            cb::FSYNR1 => Reg::Fsynr1(n),
            0x630..=0x63C => return (Reg::Tlbiipas2(n), o % 8),
            cb::TLBSYNC => Reg::Tlbsync(n),
            cb::TLBSTATUS => Reg::Tlbstatus(n),
            // TTBR1, PAR and the stage-1 TLB operations are 64-bit registers.
            0x28..=0x2C | 0x50..=0x54 | 0x600..=0x60C | 0x620..=0x62C => {
                return (Reg::Ignored64, o % 8)
            }
            _ => Reg::Ignored,
        };
        (r, 0)
    }

    /// Checks an access and finds its register: `None` for the part of the window above the
    /// SMMU's own address space (RAZ/WI).
    fn access(&self, off: u64, width: Width) -> Result<Option<(Reg, u64)>, BusError> {
        if off >= self.cfg.window {
            return Err(BusError::OutsideWindow);
        }
        if matches!(width, Width::W8 | Width::W16) {
            return Err(BusError::Width);
        }
        if !off.is_multiple_of(width.bytes()) {
            return Err(BusError::Misaligned);
        }
        if off >= self.cfg.size() {
            return Ok(None);
        }
        let (reg, sub) = self.decode(off);
        if width == Width::W64 && !(reg.is_64() && sub == 0) {
            return Err(BusError::Not64Bit);
        }
        Ok(Some((reg, sub)))
    }

    /// A read of `width` at `off` in the window. Reads of status registers may have effects
    /// (a completed TLB synchronisation is observed), hence `&mut`.
    pub fn read(&mut self, off: u64, width: Width) -> Result<u64, BusError> {
        let Some((reg, sub)) = self.access(off, width)? else {
            return Ok(0);
        };
        let v = self.read_reg(reg);
        Ok(match width {
            Width::W64 => v,
            _ => (v >> (8 * sub)) & 0xFFFF_FFFF,
        })
    }

    /// A write of `width` at `off` in the window: exactly the bits of the access change.
    pub fn write(&mut self, off: u64, width: Width, value: u64) -> Result<(), BusError> {
        let Some((reg, sub)) = self.access(off, width)? else {
            return Ok(());
        };
        if width == Width::W64 {
            self.write_reg(reg, value, u64::MAX);
        } else {
            let mask = 0xFFFF_FFFFu64 << (8 * sub);
            self.write_reg(reg, (value & 0xFFFF_FFFF) << (8 * sub), mask);
        }
        Ok(())
    }

    fn id(&self, o: u64) -> u32 {
        let c = &self.cfg;
        match o {
            // S2TS, SMS, ATOSNS, PTFS = 01 (no AArch32 short descriptors), NUMIRPT = one
            // context interrupt per bank, CTTW, NUMSIDB, NUMSMRG.
            regs::gr0::ID0 => {
                (1 << 29)
                    | (1 << 27)
                    | (1 << 26)
                    | (1 << 24)
                    | (c.context_banks << 16)
                    | (1 << 14)
                    | (c.stream_id_bits << 9)
                    | c.stream_match_groups
            }
            // PAGESIZE = 4 KiB, NUMPAGENDXB, NUMS2CB = NUMCB (stage 2 only), NUMCB.
            regs::gr0::ID1 => (c.numpagendxb << 28) | (c.context_banks << 16) | c.context_banks,
            // PTFS_4K, OAS = IAS = 48 bits (5), UBS = 0, no VMID16.
            regs::gr0::ID2 => (1 << 12) | (5 << 4) | 5,
            // Architecture version 2.1.
            regs::gr0::ID7 => 0x21,
            _ => 0,
        }
    }

    fn read_reg(&mut self, reg: Reg) -> u64 {
        let b = |s: &Smmu, n: usize| s.banks[n];
        let v: u64 = match reg {
            Reg::Scr0 => self.scr0 as u64,
            Reg::Scr2 => self.scr2 as u64,
            Reg::Sacr => self.sacr as u64,
            Reg::Id(o) => self.id(o) as u64,
            Reg::Gfar => self.gfar,
            Reg::Gfsr => self.gfsr as u64,
            Reg::Gfsynr(k) => self.gfsynr[k] as u64,
            Reg::Tlbgstatus => self.tlb.status(None) as u64,
            Reg::Smr(n) => self.smr[n] as u64,
            Reg::S2cr(n) => self.s2cr[n] as u64,
            Reg::Cbar(n) => b(self, n).cbar as u64,
            Reg::Cbfrsynra(n) => b(self, n).cbfrsynra as u64,
            Reg::Cba2r(n) => b(self, n).cba2r as u64,
            Reg::Sctlr(n) => b(self, n).sctlr as u64,
            Reg::Actlr(n) => b(self, n).actlr as u64,
            Reg::Ttbr0(n) => b(self, n).ttbr0,
            Reg::Tcr(n) => b(self, n).tcr as u64,
            Reg::Contextidr(n) => b(self, n).contextidr as u64,
            Reg::Fsr(n) => b(self, n).fsr as u64,
            Reg::Far(n) => b(self, n).far,
            Reg::Fsynr0(n) => b(self, n).fsynr0 as u64,
            Reg::Fsynr1(n) => b(self, n).fsynr1 as u64,
            Reg::Tlbstatus(n) => self.tlb.status(Some(n as u32)) as u64,
            // Write-only registers and ignored locations read as zero.
            Reg::GfsrRestore
            | Reg::Tlbivmid
            | Reg::Tlbiallnsnh
            | Reg::Tlbiallh
            | Reg::Tlbgsync
            | Reg::Resume(_)
            | Reg::FsrRestore(_)
            | Reg::Tlbiipas2(_)
            | Reg::Tlbsync(_)
            | Reg::Ignored
            | Reg::Ignored64 => 0,
        };
        v
    }

    /// Writes the bits of `mask` (one 32-bit half, or all 64 bits) of `reg` with `v` (already
    /// shifted into place).
    fn write_reg(&mut self, reg: Reg, v: u64, mask: u64) {
        use regs::*;
        let merge64 = |old: u64| (old & !mask) | (v & mask);
        let v32 = v as u32;
        match reg {
            Reg::Scr0 => self.scr0 = (v32 & scr0::WRITABLE) | scr0::SMCFCFG,
            Reg::Scr2 => self.scr2 = v32 & scr2::BPVMID,
            Reg::Sacr => self.sacr = v32,
            Reg::Gfar => self.gfar = merge64(self.gfar),
            Reg::Gfsr => self.gfsr &= !v32,
            Reg::GfsrRestore => self.gfsr = v32 & gfsr::ALL,
            Reg::Gfsynr(k) => self.gfsynr[k] = v32,
            Reg::Tlbivmid => self
                .tlb
                .invalidate(Invalidation::Vmid(v32 & cbar::VMID), None),
            Reg::Tlbiallnsnh => self.tlb.invalidate(Invalidation::All, None),
            Reg::Tlbgsync => self.tlb.sync(None),
            Reg::Smr(n) => {
                let ids = (1u32 << self.cfg.stream_id_bits) - 1;
                self.smr[n] = v32 & (smr::VALID | (ids << smr::MASK_SHIFT) | ids);
            }
            Reg::S2cr(n) => self.s2cr[n] = v32 & s2cr::WRITABLE,
            Reg::Cbar(n) => self.banks[n].cbar = v32,
            Reg::Cbfrsynra(n) => self.banks[n].cbfrsynra = v32 & 0xFFFF,
            Reg::Cba2r(n) => self.banks[n].cba2r = v32 & cba2r::WRITABLE,
            Reg::Sctlr(n) => self.banks[n].sctlr = v32 & sctlr::WRITABLE,
            Reg::Actlr(n) => self.banks[n].actlr = v32,
            Reg::Resume(n) => self.banks[n].fsr &= !fsr::SS,
            Reg::Ttbr0(n) => self.banks[n].ttbr0 = merge64(self.banks[n].ttbr0),
            Reg::Tcr(n) => self.banks[n].tcr = v32,
            Reg::Contextidr(n) => self.banks[n].contextidr = v32,
            Reg::Fsr(n) => self.banks[n].fsr &= !(v32 & fsr::ALL),
            Reg::FsrRestore(n) => self.banks[n].fsr = v32 & fsr::ALL,
            Reg::Far(n) => self.banks[n].far = merge64(self.banks[n].far),
            Reg::Fsynr0(n) => self.banks[n].fsynr0 = v32,
            Reg::Fsynr1(n) => self.banks[n].fsynr1 = v32,
            Reg::Tlbiipas2(n) => {
                // The operation is the write of the low word (or of the whole register):
                // IPA[47:12] in bits [35:0]. A write of the upper word alone does nothing.
                if mask & 0xFFFF_FFFF != 0 {
                    let ipa = (v & ((1u64 << 36) - 1)) << 12;
                    let vmid = self.banks[n].cbar & cbar::VMID;
                    self.tlb
                        .invalidate(Invalidation::Ipa { vmid, ipa }, Some(n as u32));
                }
            }
            Reg::Tlbsync(n) => self.tlb.sync(Some(n as u32)),
            Reg::Id(_)
            | Reg::Tlbiallh
            | Reg::Tlbgstatus
            | Reg::Tlbstatus(_)
            | Reg::Ignored
            | Reg::Ignored64 => {}
        }
    }
}
