//! `host_npt_handler` (spec-digest §5.2): a host stage-2 fault. RAM and device pages are
//! mapped into the host on demand (`local_map_host`); the SMMUs' register windows are never
//! mapped: KCore performs each access for the host after checking it
//! (`handle_host_mmio`, §5.0.5), so the host cannot point a context bank at memory it
//! does not own.

use super::*;

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
    pub fn host_npt_handler(&self, cpu: &mut Cpu, input: &mut impl Untrusted) -> Trap {
        self.handle(cpu, true, |cpu| {
            let id = self.enter(cpu, input)?;
            let hw = &cpu.regs.regs;
            // HPFAR_EL2.FIPA is IPA[47:12] at bits [43:4]; a larger value names no address.
            let addr = match (hw.hpfar_el2 & HPFAR_MASK).checked_mul(256) {
                Some(a) if is_addr(a) => a,
                _ => return self.fail(&[]),
            };
            let esr = hw.esr_el2;
            let acc = Access {
                ipa: addr | (hw.far_el2 & 4095),
                len: 1 << ((esr >> ESR_ELX_SAS_SHIFT) & 3),
                write: esr & ESR_ELX_WNR != 0,
                rt: (esr >> ESR_ELX_SRT_SHIFT) & 31,
            };
            match self.smmu_window(addr) {
                None => self.local_map_host(addr, input)?,
                Some(index) => self.handle_host_mmio(cpu, id, index, &acc, input)?,
            }
            self.leave(cpu, id, input)
        })
    }

    /// The SMMU whose register window holds `addr` (the last one, as the seed's loop).
    fn smmu_window(&self, addr: u64) -> Option<u32> {
        let p = &self.platform;
        (0..p.smmu_num).rev().find(|&i| {
            let (base, size, _) = p.smmus[i as usize];
            base <= addr && addr - base < size
        })
    }

    /// The host's access to SMMU `index`'s registers (`arm`, issue 13), under SMMU: only
    /// aligned 4- or 8-byte accesses the SMMU defines; reads complete at their width; a
    /// write completes, at exactly its width, with the value [`Core::smmu_host_write`]
    /// allows (forced bits, KCore's table root), or KCore halts. Offsets above the SMMU's
    /// own registers reach nothing.
    fn handle_host_mmio(
        &self,
        cpu: &mut Cpu,
        id: usize,
        index: u32,
        acc: &Access,
        input: &mut impl Untrusted,
    ) -> Res {
        use crate::hw::MmioWidth;
        use crate::smmu_hw::{access_ok, SMMU_SIZE};
        let banks = self.take(&self.smmu, input)?;
        let off = acc.ipa - self.platform.smmus[index as usize].0;
        if !access_ok(off, acc.len) {
            return self.fail(&[]);
        }
        let width = if acc.len == 8 {
            MmioWidth::W64
        } else {
            MmioWidth::W32
        };
        if !acc.write {
            let v = if off < SMMU_SIZE {
                match self.hw.mmio_read(acc.ipa, width) {
                    Ok(v) => v,
                    Err(_) => return self.fail(&[]),
                }
            } else {
                0
            };
            input.record(HOSTVISOR, v);
            self.with_ctxt(id, input, |s| s.set_shadow(acc.rt, v))?;
            cpu.regs.regs.elr_el2 += 4;
            return Ok(());
        }
        let mut data = self.with_ctxt(id, input, |s| s.get_shadow(acc.rt))?;
        if acc.len == 4 {
            data &= 0xFFFF_FFFF; // a 32-bit store carries the register's low word
        }
        let Some(value) = self.smmu_host_write(&banks, index, off, acc.len, data) else {
            return self.fail(&[]);
        };
        if off < SMMU_SIZE && self.hw.mmio_write(acc.ipa, width, value).is_err() {
            return self.fail(&[]);
        }
        cpu.regs.regs.elr_el2 += 4;
        Ok(())
    }
}
