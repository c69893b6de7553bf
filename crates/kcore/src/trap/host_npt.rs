//! `host_npt_handler` (spec-digest §5.2): a host stage-2 fault. RAM and device pages are
//! mapped into the host on demand (`local_map_host`); the SMMUs' register windows are never
//! mapped: KCore performs each access for the host after checking it
//! (`handle_host_mmio`, §5.0.5), so the host cannot point a context bank at memory it
//! does not own.

use super::*;
use crate::hw::Untrusted;

/// What a trapped data access asks for (ESR_EL2 ISS of a data abort, Arm ARM D17.2.37).
struct Access {
    ipa: u64,
    /// Bytes: 1, 2, 4 or 8 (SAS).
    len: u64,
    write: bool,
    /// The register transferred (SRT).
    rt: u64,
}

impl<H: Hw> Core<H> {
    /// A host stage-2 fault on `cpu` (HPFAR_EL2, FAR_EL2, ESR_EL2 describe it).
    pub fn host_npt_handler(&mut self, cpu: usize, input: &mut impl Untrusted) -> Trap {
        if let Some(t) = self.admit(cpu, true) {
            return t;
        }
        let id = self.enter(cpu);
        let hw = self.hw.regs(cpu).regs;
        // HPFAR_EL2.FIPA is IPA[47:12] at bits [43:4]; a larger value names no address.
        let addr = match (hw.hpfar_el2 & HPFAR_MASK).checked_mul(256) {
            Some(a) if is_addr(a) => a,
            _ => {
                self.halt(&[]);
                return Trap::Halted;
            }
        };
        let esr = hw.esr_el2;
        let acc = Access {
            ipa: addr | (hw.far_el2 & 4095),
            len: 1 << ((esr >> ESR_ELX_SAS_SHIFT) & 3),
            write: esr & ESR_ELX_WNR != 0,
            rt: (esr >> ESR_ELX_SRT_SHIFT) & 31,
        };
        match self.smmu_window(addr) {
            None => {
                self.local_map_host(addr);
            }
            Some(index) => self.locked(&[SMMU_ID], (), |c| {
                c.handle_host_mmio(cpu, id, index, &acc, input)
            }),
        }
        if !self.halted {
            self.leave(cpu, id);
        }
        self.outcome()
    }

    /// The SMMU whose register window holds `addr` (the last one, as the seed's loop).
    fn smmu_window(&self, addr: u64) -> Option<u32> {
        let p = &self.platform;
        (0..p.smmu_num).rev().find(|&i| {
            let (base, size, _) = p.smmus[i as usize];
            base <= addr && addr - base < size
        })
    }

    /// The host's access to SMMU `index`'s registers: reads complete; writes complete only
    /// if they keep every context bank KCore assigned pointing where KCore put it.
    fn handle_host_mmio(
        &mut self,
        cpu: usize,
        id: usize,
        index: u32,
        acc: &Access,
        input: &mut impl Untrusted,
    ) {
        let word = acc.ipa & !7;
        let shift = (acc.ipa & 4) * 8;
        if !acc.write {
            let data = self.hw.read64(word) >> shift;
            input.record(HOSTVISOR, data);
            let v = match acc.len {
                8 => data,
                4 => data & 0xFFFF_FFFF,
                _ => {
                    self.halt(&[]);
                    return;
                }
            };
            self.shadow[id].set_shadow(acc.rt, v);
            self.hw.regs(cpu).regs.elr_el2 += 4;
            return;
        }
        let data = self.shadow[id].get_shadow(acc.rt);
        if !((acc.len == 8 || acc.len == 4) && self.smmu_write_allowed(index, acc.ipa, data)) {
            self.halt(&[]);
            return;
        }
        let data = self.smmu_ttbr0_substitute(index, acc.ipa, data);
        if acc.len == 8 {
            self.hw.write64(word, data);
        } else {
            let old = self.hw.read64(word);
            let mask = 0xFFFF_FFFFu64 << shift;
            self.hw
                .write64(word, (old & !mask) | ((data << shift) & mask));
        }
        self.hw.regs(cpu).regs.elr_el2 += 4;
    }

    /// A context bank's TTBR0 always points at the table KCore keeps for that bank: the
    /// host's value is replaced, so a device translates only through KCore's tables (the C
    /// does the same; the seed does not model device registers).
    fn smmu_ttbr0_substitute(&self, index: u32, ipa: u64, data: u64) -> u64 {
        use crate::consts::smmu_reg::*;
        let offset = ipa & OFFSET_MASK;
        if offset < GLOBAL_BASE || (offset - GLOBAL_BASE) & PGSHIFT_MASK != CB_TTBR0 {
            return data;
        }
        let cb = ((offset - GLOBAL_BASE) >> 12) as u32;
        if cb >= crate::smmu::BANKS {
            return data;
        }
        self.smmu_pool.root(index, cb)
    }

    /// The seed's write policy (spec-digest §5.0.5): sCR0 must keep SMCFCFG (unmatched
    /// streams fault), sCR2 must not set a bypass VMID, a CBAR of a bank KCore gave to a VM
    /// must stay stage-2 with that VMID, and CONTEXTIDR is KCore's.
    fn smmu_write_allowed(&self, index: u32, ipa: u64, data: u64) -> bool {
        use crate::consts::smmu_reg::*;
        let offset = ipa & OFFSET_MASK;
        if offset >= GLOBAL_BASE {
            return (offset - GLOBAL_BASE) & PGSHIFT_MASK != CB_CONTEXTIDR;
        }
        if offset == GR0_SCR0 {
            (data >> SCR0_SMCFCFG_SHIFT) & 1 != 0
        } else if offset == GR0_SCR2 {
            data & 255 == 0
        } else if offset < GR1_BASE {
            true
        } else if offset < GR1_END {
            // Bank 0's CBAR too (deviation `cbar0_unpoliced`).
            let n = (offset - GR1_BASE) / 4;
            let owner = self
                .smmu_vmid
                .get((index as u64 * crate::smmu::BANKS as u64 + n) as usize)
                .copied()
                .unwrap_or(INVALID);
            owner == 0
                || ((data >> CBAR_TYPE_SHIFT) == CBAR_TYPE_S2_TRANS
                    && owner as u64 == data & CBAR_VMID_MASK)
        } else {
            true
        }
    }
}
