//! KCore's side of the SMMUs as devices (issue 13): the SMMUv2 register map KCore assumes
//! (SMMU-500-like: 4 KiB register pages, IDR1.NUMPAGENDXB = 2, so the global space is
//! 0x0000-0x7FFF and context bank n is at 0x8000 + n·0x1000), the programming KCore does
//! itself (at boot, when a bank changes hands, after an unmap: TLBIVMID + sTLBGSYNC, polled),
//! and the rule deciding each host register access (`arm` profile; `docs/deviations.md`,
//! "SMMU registers").
//!
//! Every access goes through [`Hw::mmio_read`] / [`Hw::mmio_write`] at its exact width.

use crate::consts::*;
use crate::hw::{Hw, MmioWidth};
use crate::smmu::BANKS;
use crate::state::Core;

/// Bytes of one SMMU's own register space (global + context banks); the rest of its window
/// holds no register.
pub const SMMU_SIZE: u64 = 0x1_0000;
/// Offset of context bank 0's page.
pub const CB_BASE: u64 = 0x8000;
pub const CB_PAGE: u64 = 0x1000;
/// Stream match register groups KCore routes (IDR0.NUMSMRG of the machine's SMMUs).
pub use crate::consts::STREAM_GROUPS;
/// Reads of a synchronisation's status before KCore gives up and halts.
pub const SYNC_POLLS: u32 = 1000;

/// Register offsets (Arm IHI 0062; GR0/GR1 in window terms, `CB_*` in a bank's page).
pub mod reg {
    pub const SCR0: u64 = 0x000;
    pub const SCR2: u64 = 0x008;
    pub const ID0: u64 = 0x020;
    pub const ID1: u64 = 0x024;
    pub const SGFAR: u64 = 0x040;
    pub const TLBIVMID: u64 = 0x064;
    pub const TLBIALLNSNH: u64 = 0x068;
    pub const STLBGSYNC: u64 = 0x070;
    pub const STLBGSTATUS: u64 = 0x074;
    pub const SMR: u64 = 0x800;
    pub const S2CR: u64 = 0xC00;
    pub const CBAR: u64 = 0x1000;
    pub const CBA2R: u64 = 0x1800;
    pub const CB_SCTLR: u64 = 0x000;
    pub const CB_TTBR0: u64 = 0x020;
    pub const CB_TTBR0_HI: u64 = 0x024;
    pub const CB_TCR: u64 = 0x030;
    pub const CB_CONTEXTIDR: u64 = 0x034;
}

/// Register fields.
pub mod field {
    pub const SCR0_CLIENTPD: u64 = 1 << 0;
    pub const SCR0_GFRE: u64 = 1 << 1;
    pub const SCR0_GFIE: u64 = 1 << 2;
    pub const SCR0_USFCFG: u64 = 1 << 10;
    pub const SCR0_SMCFCFG_SHIFT: u32 = 21;
    pub const SMR_VALID: u64 = 1 << 31;
    pub const S2CR_TYPE_SHIFT: u32 = 16;
    pub const S2CR_TRANSLATE: u64 = 0;
    pub const S2CR_BYPASS: u64 = 1;
    pub const S2CR_FAULT: u64 = 2;
    pub const S2CR_CBNDX: u64 = 0xFF;
    pub const CBAR_TYPE_SHIFT: u32 = 16;
    pub const CBAR_VMID: u64 = 0xFF;
    pub const CBA2R_VA64: u64 = 1;
    pub const SCTLR_M: u64 = 1 << 0;
    pub const SCTLR_TRE: u64 = 1 << 1;
    pub const SCTLR_AFE: u64 = 1 << 2;
    pub const SCTLR_E: u64 = 1 << 4;
    pub const SCTLR_CFRE: u64 = 1 << 5;
    pub const SCTLR_CFIE: u64 = 1 << 6;
    /// KCore's stage-2 format (AArch64 TCR layout): T0SZ = 24 (40-bit IOVAs), SL0 = 1
    /// (start at level 1, two concatenated root tables), TG0 = 4 KiB, PS = 48 bits.
    pub const TCR_KCORE: u64 = 24 | (1 << 6) | (5 << 16);
    /// The TCR fields that shape the walk (T0SZ, SL0, TG0, PS); the others (cacheability
    /// and shareability of walks) are the host's to choose.
    pub const TCR_FIXED: u64 = 0x3F | (3 << 6) | (3 << 14) | (7 << 16);
    /// IDR1.NUMPAGENDXB and NUMCB.
    pub const ID1_NUMPAGENDXB_SHIFT: u32 = 28;
    pub const ID1_NUMCB: u64 = 0xFF;
}

/// The leaf attribute bits the host may choose in `SMMU_LPAE_MAP`: descriptor type (1:0),
/// MemAttr (5:2), S2AP (7:6), XN (54:53). AF and SH are KCore's; no contiguous hint, no
/// software or reserved bits.
pub const LEAF_ALLOWED: u64 = 0xFF | (3 << 53);

/// Whether a 64-bit access at `off` reaches one 64-bit register (sGFAR; a bank's TTBR0,
/// TTBR1, PAR, FAR and TLB operations by address).
pub const fn is_64bit_register(off: u64) -> bool {
    if off < CB_BASE {
        return off == reg::SGFAR;
    }
    matches!(
        off & (CB_PAGE - 1),
        0x20 | 0x28 | 0x50 | 0x60 | 0x600 | 0x608 | 0x610 | 0x618 | 0x620 | 0x628 | 0x630 | 0x638
    )
}

/// The widths and alignments the SMMU accepts (`arm`, deviation `smmu_mmio_width_unchecked`):
/// 4 or 8 bytes, aligned, and 8 only where there is a 64-bit register. Above the SMMU's own
/// space any aligned 4- or 8-byte access completes and reaches nothing.
pub const fn access_ok(off: u64, len: u64) -> bool {
    (len == 4 || len == 8)
        && off & (len - 1) == 0
        && (off >= SMMU_SIZE || len == 4 || is_64bit_register(off))
}

/// Whether an SMR value matches stream ID `sid` (15-bit IDs).
pub const fn smr_matches(smr: u64, sid: u64) -> bool {
    let id = smr & 0x7FFF;
    let mask = (smr >> 16) & 0x7FFF;
    smr & field::SMR_VALID != 0 && (sid ^ id) & !mask & 0x7FFF == 0
}

const fn width(len: u64) -> MmioWidth {
    if len == 8 {
        MmioWidth::W64
    } else {
        MmioWidth::W32
    }
}

/// The VMID a bank's transactions carry: the owning VM's; 0 for the host's and free banks
/// (they never share a VM's IOTLB entries).
pub const fn hw_vmid(owner: u32) -> u64 {
    if 0 < owner && owner < COREVISOR {
        owner as u64
    } else {
        0
    }
}

impl<H: Hw> Core<H> {
    fn smmu_reg_pa(&self, index: u32, off: u64) -> u64 {
        self.platform.smmus[index as usize].0 + off
    }

    /// KCore's own register write; `false` if the device refused it.
    fn smmu_w(&self, index: u32, off: u64, len: u64, v: u64) -> bool {
        let pa = self.smmu_reg_pa(index, off);
        self.hw.mmio_write(pa, width(len), v).is_ok()
    }

    fn smmu_r(&self, index: u32, off: u64) -> Option<u64> {
        let pa = self.smmu_reg_pa(index, off);
        self.hw.mmio_read(pa, MmioWidth::W32).ok()
    }

    /// Bank `cb`'s registers as KCore keeps them: AArch64 format, stage-2 translation with
    /// `vmid`, KCore's TCR, TTBR0 at the bank's root in KCore's pool, translation on with
    /// context faults reported.
    fn smmu_program_bank(&self, index: u32, cb: u32, vmid: u64) -> bool {
        use field::*;
        let root = self.smmu_root(index, cb);
        let page = CB_BASE + cb as u64 * CB_PAGE;
        let n = cb as u64 * 4;
        self.smmu_w(index, reg::CBA2R + n, 4, CBA2R_VA64)
            && self.smmu_w(index, reg::CBAR + n, 4, vmid)
            && self.smmu_w(index, page + reg::CB_TCR, 4, TCR_KCORE)
            && self.smmu_w(index, page + reg::CB_TTBR0, 8, root)
            && self.smmu_w(
                index,
                page + reg::CB_SCTLR,
                4,
                SCTLR_M | SCTLR_CFRE | SCTLR_CFIE | SCTLR_AFE | SCTLR_TRE,
            )
    }

    /// Stream `cb`'s route: its SMR group matches exactly stream ID `cb` and translates
    /// through bank `cb` (`on`), or faults.
    fn smmu_route(&self, index: u32, cb: u32, on: bool) -> bool {
        use field::*;
        let n = cb as u64;
        let s2cr = if on {
            (S2CR_TRANSLATE << S2CR_TYPE_SHIFT) | n
        } else {
            S2CR_FAULT << S2CR_TYPE_SHIFT
        };
        self.smmu_w(index, reg::S2CR + 4 * n, 4, s2cr)
            && self.smmu_w(index, reg::SMR + 4 * n, 4, SMR_VALID | n)
    }

    /// Every stream match group other than `except` that translates through bank `cb` is
    /// turned to fault, and every SMR other than `except`'s that matches stream `cb` is made
    /// invalid (routes the host made while the bank was its own or free).
    fn smmu_unroute_others(&self, index: u32, cb: u32, except: Option<u64>) -> bool {
        use field::*;
        for k in 0..STREAM_GROUPS {
            if Some(k) == except {
                continue;
            }
            let Some(smr) = self.smmu_r(index, reg::SMR + 4 * k) else {
                return false;
            };
            if smr_matches(smr, cb as u64) && !self.smmu_w(index, reg::SMR + 4 * k, 4, 0) {
                return false;
            }
            let Some(v) = self.smmu_r(index, reg::S2CR + 4 * k) else {
                return false;
            };
            let ty = (v >> S2CR_TYPE_SHIFT) & 3;
            if ty == S2CR_TRANSLATE
                && v & S2CR_CBNDX == cb as u64
                && !self.smmu_w(index, reg::S2CR + 4 * k, 4, S2CR_FAULT << S2CR_TYPE_SHIFT)
            {
                return false;
            }
        }
        true
    }

    /// Invalidate every IOTLB entry tagged `vmid` on SMMU `index` and wait until the
    /// invalidation is complete (sTLBGSYNC, then sTLBGSTATUS.GSACTIVE polled clear).
    /// Skipped under the planted fault `missed_smmu_tlbi`.
    fn smmu_tlbi_vmid(&self, index: u32, vmids: &[u64]) -> bool {
        if crate::mutants::mutant(crate::mutants::Fault::MissedSmmuTlbi) {
            return true;
        }
        for &v in vmids {
            if !self.smmu_w(index, reg::TLBIVMID, 4, v) {
                return false;
            }
        }
        self.smmu_sync(index)
    }

    fn smmu_sync(&self, index: u32) -> bool {
        if !self.smmu_w(index, reg::STLBGSYNC, 4, 0) {
            return false;
        }
        for _ in 0..SYNC_POLLS {
            match self.smmu_r(index, reg::STLBGSTATUS) {
                Some(s) if s & 1 == 0 => return true,
                Some(_) => {}
                None => return false,
            }
        }
        false
    }

    /// Boot (issue 13): out of reset an SMMU lets every stream bypass translation
    /// (sCR0.CLIENTPD = 1). Before the host runs, KCore checks each SMMU is the geometry it
    /// assumes, programs every bank (free banks: VMID 0, empty tables), routes every stream
    /// match group to fault, invalidates the whole IOTLB and only then enables the client
    /// ports with unmatched streams faulting. Halts if an SMMU is not as assumed.
    pub fn smmu_boot(&self) -> bool {
        use field::*;
        let banks = self.smmu.read();
        for index in 0..self.platform.smmu_num.min(crate::smmu::SMMU_NUM) {
            let ok = match self.smmu_r(index, reg::ID1) {
                Some(id1) => {
                    (id1 >> ID1_NUMPAGENDXB_SHIFT) & 7 == 2 && id1 & ID1_NUMCB >= BANKS as u64
                }
                None => false,
            };
            let ok =
                ok && (0..BANKS).all(|cb| {
                    let vmid = hw_vmid(banks[Self::bank(index, cb)]);
                    self.smmu_program_bank(index, cb, vmid)
                }) && (0..STREAM_GROUPS).all(|k| {
                    // Planted fault `smmu_boot_skips_one` (issue 22): one group's SMR or
                    // S2CR stays as firmware left it.
                    use crate::mutants::{dropped_at, Fault::SmmuBootSkipsOne};
                    (dropped_at(SmmuBootSkipsOne, "s2cr", k)
                        || self.smmu_w(index, reg::S2CR + 4 * k, 4, S2CR_FAULT << S2CR_TYPE_SHIFT))
                        && (dropped_at(SmmuBootSkipsOne, "smr", k)
                            || self.smmu_w(index, reg::SMR + 4 * k, 4, 0))
                }) && self.smmu_w(index, reg::TLBIALLNSNH, 4, 0)
                    && self.smmu_sync(index)
                    && self.smmu_w(
                        index,
                        reg::SCR0,
                        4,
                        SCR0_GFRE | SCR0_GFIE | SCR0_USFCFG | (1 << SCR0_SMCFCFG_SHIFT),
                    );
            if !ok {
                self.halt(&[]);
                return false;
            }
        }
        true
    }

    fn smmu_present(&self, index: u32) -> bool {
        index < self.platform.smmu_num.min(crate::smmu::SMMU_NUM)
    }

    /// After `SMMU_ALLOC_PGD` gave bank `cb` to `vmid` (its tables just emptied): the bank
    /// is reprogrammed with that VMID, stream `cb` is routed to it and no other group
    /// reaches it, and no IOTLB entry of the bank's old or new VMID survives.
    pub(crate) fn smmu_hw_attach(&self, index: u32, cb: u32, vmid: u32) -> bool {
        if !self.smmu_present(index) {
            return true;
        }
        let Some(cbar) = self.smmu_r(index, reg::CBAR + 4 * cb as u64) else {
            return false;
        };
        let old_vmid = cbar & field::CBAR_VMID;
        let new = hw_vmid(vmid);
        self.smmu_program_bank(index, cb, new)
            && self.smmu_unroute_others(index, cb, Some(cb as u64))
            && self.smmu_route(index, cb, true)
            && self.smmu_tlbi_vmid(index, &[old_vmid, new])
    }

    /// After `SMMU_FREE_PGD`: no stream reaches bank `cb` any more, and none of the VMID's
    /// IOTLB entries survives.
    pub(crate) fn smmu_hw_detach(&self, index: u32, cb: u32, vmid: u32) -> bool {
        if !self.smmu_present(index) {
            return true;
        }
        self.smmu_unroute_others(index, cb, None)
            && self.smmu_route(index, cb, false)
            && self.smmu_tlbi_vmid(index, &[hw_vmid(vmid)])
    }

    /// After a translation of bank `cb` (owned by `owner`) was removed or changed.
    pub(crate) fn smmu_hw_flush(&self, index: u32, owner: u32) -> bool {
        if !self.smmu_present(index) {
            return true;
        }
        self.smmu_tlbi_vmid(index, &[hw_vmid(owner)])
    }

    /// The host's write of `data` (`len` bytes) at offset `off` of SMMU `index`'s window
    /// (already checked by [`access_ok`]): the value to write, or `None` if KCore refuses
    /// it (and halts). `arm` profile (deviations `smmu_stream_routing_unpoliced`,
    /// `smmu_bank_config_unpoliced`, `smmu_cbar_loose`; the seed's sCR0, sCR2, bank 0 CBAR
    /// and CONTEXTIDR rules), plus what the seed leaves to the device: sCR0.CLIENTPD and
    /// USFCFG are forced, and either half of a bank's TTBR0 is replaced by KCore's root.
    pub(crate) fn smmu_host_write(
        &self,
        banks: &crate::mem_ops::Banks,
        index: u32,
        off: u64,
        len: u64,
        data: u64,
    ) -> Option<u64> {
        use field::*;
        let owner = |n: u64| {
            banks
                .get((index as u64 * BANKS as u64 + n) as usize)
                .copied()
                .unwrap_or(INVALID)
        };
        let vm_bank = |n: u64| n < BANKS as u64 && Self::is_vm(owner(n));
        if off >= SMMU_SIZE {
            return Some(data);
        }
        if off < CB_BASE {
            let ok = match off {
                reg::SCR0 => {
                    if (data >> SCR0_SMCFCFG_SHIFT) & 1 == 0 {
                        return None;
                    }
                    return Some((data | SCR0_USFCFG) & !SCR0_CLIENTPD);
                }
                reg::SCR2 => data & 255 == 0,
                o if (reg::SMR..reg::SMR + 4 * STREAM_GROUPS).contains(&o) => {
                    // Frozen for a VM's bank; elsewhere it must not match a VM's stream (a
                    // conflict would fault the VM's device).
                    !vm_bank((o - reg::SMR) / 4)
                        && !(0..BANKS as u64).any(|n| vm_bank(n) && smr_matches(data, n))
                }
                o if (reg::S2CR..reg::S2CR + 4 * STREAM_GROUPS).contains(&o) => {
                    let ty = (data >> S2CR_TYPE_SHIFT) & 3;
                    let to = data & S2CR_CBNDX;
                    !vm_bank((o - reg::S2CR) / 4)
                        && ty != S2CR_BYPASS
                        && (ty != S2CR_TRANSLATE || (to < BANKS as u64 && owner(to) == HOSTVISOR))
                }
                o if (reg::CBAR..reg::CBAR + 4 * BANKS as u64).contains(&o) => {
                    let n = (o - reg::CBAR) / 4;
                    let want = match owner(n) {
                        HOSTVISOR => 0,
                        v => v as u64,
                    };
                    (data >> CBAR_TYPE_SHIFT) & 3 == 0 && data & CBAR_VMID == want
                }
                o if (reg::CBA2R..reg::CBA2R + 4 * BANKS as u64).contains(&o) => {
                    data & CBA2R_VA64 != 0
                }
                _ => true,
            };
            return ok.then_some(data);
        }
        let cb = ((off - CB_BASE) / CB_PAGE) as u32;
        let ok = match off & (CB_PAGE - 1) {
            reg::CB_CONTEXTIDR => false,
            reg::CB_SCTLR => data & SCTLR_M != 0 && data & SCTLR_E == 0,
            reg::CB_TCR => data & TCR_FIXED == TCR_KCORE,
            reg::CB_TTBR0 => {
                let root = self.smmu_root(index, cb);
                return Some(if len == 8 { root } else { root & 0xFFFF_FFFF });
            }
            reg::CB_TTBR0_HI => return Some(self.smmu_root(index, cb) >> 32),
            _ => true,
        };
        ok.then_some(data)
    }
}
