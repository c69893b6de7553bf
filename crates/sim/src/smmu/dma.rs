//! A device's access through the SMMU: stream matching, the context bank, the IOTLB and
//! the table walk, and the faults the SMMU records when it refuses an access.

use super::iotlb::Entry;
use super::regs::{cbar, fsr, fsynr0, gfsr, gfsynr0, s2cr, scr0, sctlr, smr};
use super::walk::{self, WalkFault};
use super::{Smmu, TableMemory};
use corevisor_kcore::hw::Hw;

/// The direction of a device access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Why an access was not translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bypass {
    /// sCR0.CLIENTPD = 1.
    ClientPortsDisabled,
    /// No SMR matched and sCR0.USFCFG = 0.
    UnmatchedStream,
    /// The matched S2CR is of type bypass.
    S2cr(u32),
    /// The bank's SCTLR.M = 0.
    BankDisabled(u32),
}

/// How an access was routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Bypass(Bypass),
    /// Translated by this context bank.
    Bank(u32),
}

/// A completed translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translated {
    pub pa: u64,
    pub route: Route,
    /// The translation came from the IOTLB, not from a walk.
    pub cached: bool,
}

/// A fault the SMMU raised for an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Global: no SMR matched and sCR0.USFCFG = 1.
    UnidentifiedStream,
    /// Global: more than one SMR matched (sCR0.SMCFCFG is fixed at one).
    StreamMatchConflict,
    /// Global: the S2CR is of type fault (or reserved), or the bank's CBAR asks for stage 1.
    InvalidContext,
    /// Global: S2CR.CBNDX names a bank that is not implemented.
    UnimplementedContextBank,
    /// Context fault in `bank` at `level`.
    Translation {
        bank: u32,
        level: u32,
    },
    AccessFlag {
        bank: u32,
        level: u32,
    },
    Permission {
        bank: u32,
        level: u32,
    },
    AddressSize {
        bank: u32,
        level: u32,
    },
}

/// What the device sees when its access faults. In every case the access does not reach
/// memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// A bus abort.
    Abort,
    /// The transaction completes: reads return zero, writes are dropped.
    RazWi,
    /// The transaction is held (context fault with SCTLR.CFCFG = 1) until software writes
    /// RESUME; the device then retries it as a new access.
    Stall,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaFault {
    pub fault: Fault,
    pub response: Response,
}

impl Fault {
    fn bank(self) -> Option<u32> {
        match self {
            Fault::Translation { bank, .. }
            | Fault::AccessFlag { bank, .. }
            | Fault::Permission { bank, .. }
            | Fault::AddressSize { bank, .. } => Some(bank),
            _ => None,
        }
    }
}

impl Smmu {
    /// The SMR groups stream `sid` matches.
    fn matches(&self, sid: u32) -> impl Iterator<Item = usize> + '_ {
        let ids = (1u32 << self.cfg.stream_id_bits) - 1;
        self.smr.iter().enumerate().filter_map(move |(n, &r)| {
            let id = r & ids;
            let mask = (r >> smr::MASK_SHIFT) & ids;
            (r & smr::VALID != 0 && (sid ^ id) & ids & !mask == 0).then_some(n)
        })
    }

    /// Translates an access of `dir` by the device with stream ID `sid` to `iova`, as the
    /// registers say, recording any fault in the fault registers.
    pub fn translate(
        &mut self,
        mem: &(impl TableMemory + ?Sized),
        sid: u32,
        iova: u64,
        dir: Access,
    ) -> Result<Translated, DmaFault> {
        let bypass = |why| {
            Ok(Translated {
                pa: iova,
                route: Route::Bypass(why),
                cached: false,
            })
        };
        if self.scr0 & scr0::CLIENTPD != 0 {
            return bypass(Bypass::ClientPortsDisabled);
        }
        let sid = sid & ((1u32 << self.cfg.stream_id_bits) - 1);
        let (first, second) = {
            let mut m = self.matches(sid);
            (m.next(), m.next())
        };
        let group = match (first, second) {
            (None, _) if self.scr0 & scr0::USFCFG != 0 => {
                return Err(self.global_fault(Fault::UnidentifiedStream, sid, iova, dir))
            }
            (None, _) => return bypass(Bypass::UnmatchedStream),
            (Some(_), Some(_)) => {
                return Err(self.global_fault(Fault::StreamMatchConflict, sid, iova, dir))
            }
            (Some(n), None) => n,
        };
        let route = self.s2cr[group];
        match s2cr::ty(route) {
            s2cr::TYPE_TRANSLATE => {}
            s2cr::TYPE_BYPASS => return bypass(Bypass::S2cr(group as u32)),
            _ => return Err(self.global_fault(Fault::InvalidContext, sid, iova, dir)),
        }
        let n = route & s2cr::CBNDX;
        if n >= self.cfg.context_banks {
            return Err(self.global_fault(Fault::UnimplementedContextBank, sid, iova, dir));
        }
        let bank = self.banks[n as usize];
        if cbar::ty(bank.cbar) != cbar::TYPE_S2_TRANSLATE {
            return Err(self.global_fault(Fault::InvalidContext, sid, iova, dir));
        }
        if bank.sctlr & sctlr::M == 0 {
            return bypass(Bypass::BankDisabled(n));
        }
        let vmid = bank.cbar & cbar::VMID;
        let (entry, cached) = match self.tlb.lookup(n, vmid, iova) {
            Some(e) => (e, true),
            None => {
                let va64 = bank.cba2r & super::regs::cba2r::VA64 != 0;
                let leaf = walk::stage2_config(bank.tcr, va64, bank.ttbr0).and_then(|c| {
                    let c = walk::S2Config {
                        big_endian: bank.sctlr & sctlr::E != 0,
                        ..c
                    };
                    walk::walk(mem, &c, iova)
                });
                let leaf = match leaf {
                    Ok(l) => l,
                    Err(WalkFault::Translation(level)) => {
                        let f = Fault::Translation { bank: n, level };
                        return Err(self.context_fault(f, sid, iova, dir));
                    }
                    Err(WalkFault::AddressSize(level)) => {
                        let f = Fault::AddressSize { bank: n, level };
                        return Err(self.context_fault(f, sid, iova, dir));
                    }
                };
                if !leaf.af() && bank.sctlr & sctlr::AFFD == 0 {
                    let f = Fault::AccessFlag {
                        bank: n,
                        level: leaf.level,
                    };
                    return Err(self.context_fault(f, sid, iova, dir));
                }
                let e = Entry::from_leaf(&leaf, vmid, n, iova, self.cfg.contiguous_hint);
                self.tlb.insert(e);
                (e, false)
            }
        };
        let allowed = match dir {
            Access::Read => entry.read,
            Access::Write => entry.write,
        };
        if !allowed {
            let f = Fault::Permission {
                bank: n,
                level: entry.level,
            };
            return Err(self.context_fault(f, sid, iova, dir));
        }
        Ok(Translated {
            pa: entry.pa(iova),
            route: Route::Bank(n),
            cached,
        })
    }

    /// The device with stream ID `sid` reads the 8 bytes at `iova` (aligned down).
    pub fn dma_read(
        &mut self,
        mem: &(impl Hw + ?Sized),
        sid: u32,
        iova: u64,
    ) -> Result<(u64, Translated), DmaFault> {
        let t = self.translate(mem, sid, iova, Access::Read)?;
        Ok((Hw::read64(mem, t.pa & !7), t))
    }

    /// The device with stream ID `sid` writes `value` to the 8 bytes at `iova` (aligned down).
    pub fn dma_write(
        &mut self,
        mem: &mut (impl Hw + ?Sized),
        sid: u32,
        iova: u64,
        value: u64,
    ) -> Result<Translated, DmaFault> {
        let t = self.translate(&*mem, sid, iova, Access::Write)?;
        mem.write64(t.pa & !7, value);
        Ok(t)
    }

    fn global_fault(&mut self, fault: Fault, sid: u32, iova: u64, dir: Access) -> DmaFault {
        let bit = match fault {
            Fault::UnidentifiedStream => gfsr::USF,
            Fault::StreamMatchConflict => gfsr::SMCF,
            Fault::UnimplementedContextBank => gfsr::UCBF,
            _ => gfsr::ICF,
        };
        if self.gfsr & gfsr::FAULTS != 0 {
            self.gfsr |= gfsr::MULTI;
        } else {
            self.gfsr |= bit;
            self.gfar = iova;
            self.gfsynr = [
                if dir == Access::Write {
                    gfsynr0::WNR
                } else {
                    0
                },
                sid,
                0,
            ];
        }
        let response = if self.scr0 & scr0::GFRE != 0 {
            Response::Abort
        } else {
            Response::RazWi
        };
        DmaFault { fault, response }
    }

    fn context_fault(&mut self, fault: Fault, sid: u32, iova: u64, dir: Access) -> DmaFault {
        let n = fault.bank().expect("a context fault names its bank") as usize;
        let (bit, level) = match fault {
            Fault::Translation { level, .. } => (fsr::TF, level),
            Fault::AccessFlag { level, .. } => (fsr::AFF, level),
            Fault::Permission { level, .. } => (fsr::PF, level),
            Fault::AddressSize { level, .. } => (fsr::ASF, level),
            _ => unreachable!("global faults are recorded by global_fault"),
        };
        let b = &mut self.banks[n];
        if b.fsr & (fsr::FAULTS | fsr::SS) != 0 {
            b.fsr |= fsr::MULTI;
        } else {
            b.fsr |= bit;
            b.far = iova;
            b.fsynr0 = (level & fsynr0::PLVL) | if dir == Access::Write { fsynr0::WNR } else { 0 };
            b.cbfrsynra = sid;
        }
        let response = if b.sctlr & sctlr::CFCFG != 0 {
            b.fsr |= fsr::SS;
            Response::Stall
        } else if b.sctlr & sctlr::CFRE != 0 {
            Response::Abort
        } else {
            Response::RazWi
        };
        DmaFault { fault, response }
    }
}
