//! The machine's SMMUs on its physical address map: one model per register window, found by
//! physical address, for the MMIO accesses KCore makes and for devices' DMA.

use super::{BusError, Smmu, SmmuConfig, Width};

/// Every SMMU of a machine, each with the base of its window.
#[derive(Clone, Debug, Default)]
pub struct SmmuBus {
    smmus: Vec<(u64, Smmu)>,
}

impl SmmuBus {
    /// SMMUs out of reset, SMMU `i`'s window at `bases[i]`.
    pub fn new(bases: &[u64], cfg: SmmuConfig) -> SmmuBus {
        let smmus: Vec<(u64, Smmu)> = bases.iter().map(|&b| (b, Smmu::new(cfg))).collect();
        for (i, (b, s)) in smmus.iter().enumerate() {
            assert!(
                b.is_multiple_of(s.config().size()),
                "SMMU_BASE is aligned to the SMMU's size"
            );
            for (c, _) in &smmus[i + 1..] {
                assert!(
                    b + s.config().window <= *c || c + s.config().window <= *b,
                    "windows do not overlap"
                );
            }
        }
        SmmuBus { smmus }
    }

    pub fn len(&self) -> usize {
        self.smmus.len()
    }

    pub fn is_empty(&self) -> bool {
        self.smmus.is_empty()
    }

    pub fn smmu(&mut self, i: usize) -> &mut Smmu {
        &mut self.smmus[i].1
    }

    /// The SMMU whose window holds `pa`, and the offset of `pa` in it.
    pub fn decode(&self, pa: u64) -> Option<(usize, u64)> {
        self.smmus
            .iter()
            .position(|(b, s)| *b <= pa && pa - b < s.config().window)
            .map(|i| (i, pa - self.smmus[i].0))
    }

    /// A read of `width` at physical address `pa`: `None` if no SMMU decodes it.
    pub fn read(&mut self, pa: u64, width: Width) -> Option<Result<u64, BusError>> {
        let (i, off) = self.decode(pa)?;
        Some(self.smmus[i].1.read(off, width))
    }

    /// A write of `width` at physical address `pa`: `None` if no SMMU decodes it.
    pub fn write(&mut self, pa: u64, width: Width, value: u64) -> Option<Result<(), BusError>> {
        let (i, off) = self.decode(pa)?;
        Some(self.smmus[i].1.write(off, width, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smmu::regs::{cb, gr0};

    #[test]
    fn accesses_reach_the_smmu_whose_window_holds_them() {
        let mut bus = SmmuBus::new(&[0x0B00_0000, 0x0B10_0000], SmmuConfig::default());
        assert_eq!(bus.decode(0x0B10_8020), Some((1, 0x8020)));
        assert_eq!(bus.decode(0x0B01_FFFC), Some((0, 0x1_FFFC)));
        assert_eq!(bus.decode(0x0B02_0000), None);
        assert_eq!(bus.read(0x0A00_0000, Width::W32), None);
        let ttbr0 = 0x0B10_8000 + cb::TTBR0;
        assert_eq!(bus.write(ttbr0, Width::W64, 0x4000_2000), Some(Ok(())));
        assert_eq!(bus.read(ttbr0, Width::W64), Some(Ok(0x4000_2000)));
        assert_eq!(bus.read(0x0B00_8000 + cb::TTBR0, Width::W64), Some(Ok(0)));
        assert_eq!(
            bus.write(0x0B00_0000 + gr0::SCR0, Width::W64, 0),
            Some(Err(BusError::Not64Bit))
        );
        assert_eq!(
            bus.smmu(1).read(cb::TTBR0 + 0x8000, Width::W64),
            Ok(0x4000_2000)
        );
    }
}
