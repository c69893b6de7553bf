//! The state an SMMU may be in when KCore first sees it (issue 22, "an SMMU that starts as
//! firmware may leave it"): the architecture does not promise software a reset state, and
//! firmware (or a previous kernel) may have programmed the SMMU and left it so. Besides the
//! clean reset of [`Smmu::new`], [`SmmuReset::Hostile`] fills every register software can
//! write with seeded, arbitrary contents, biased towards what hurts: valid SMRs matching low
//! stream IDs (or many, through a mask), S2CRs of type bypass or translating to any bank,
//! banks enabled (SCTLR.M) with TTBR0 in RAM and CBARs with arbitrary VMIDs, client ports
//! enabled or not, and stale IOTLB entries translating likely IOVAs to RAM pages.

use super::iotlb::Entry;
use super::regs::{cba2r, s2cr, scr0, sctlr, smr, tcr, PAGE};
use super::{Bank, Smmu};

/// How the machine's SMMUs come out of reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SmmuReset {
    /// The SMMU-500 reset values: client ports disabled, no valid SMR, S2CRs fault, banks
    /// disabled, an empty IOTLB.
    #[default]
    Clean,
    /// Arbitrary contents, from this seed, as firmware may leave them.
    Hostile(u64),
}

/// splitmix64: small, seedable, good enough to spread choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// IOVAs devices are likely to use (and the checkers to probe): low addresses, the VM
/// device IOVA of the host model (0x9000_0000), and RAM addresses (what a bypass reaches).
pub const LIKELY_IOVAS: [u64; 6] = [
    0x0,
    0x1000,
    0x9000_0000,
    0x4000_0000,
    0x4020_0000,
    0x4700_0000,
];

impl Smmu {
    /// This SMMU as firmware may leave it: every software-writable register of the global
    /// space, of every stream match group and of every context bank with seeded arbitrary
    /// contents, and stale IOTLB entries. `ram` is the machine's RAM `[start, end)`: where
    /// TTBR0s and stale translations point. The identification registers, the pending TLB
    /// maintenance (none) and the configuration stay.
    pub fn reset_to(&mut self, reset: SmmuReset, ram: (u64, u64)) {
        let seed = match reset {
            SmmuReset::Clean => {
                *self = Smmu::new(self.cfg);
                return;
            }
            SmmuReset::Hostile(seed) => seed,
        };
        let mut r = Rng(seed ^ 0x5111_u64.wrapping_mul(0x1_0000_0001));
        let cfg = self.cfg;
        let ids = (1u32 << cfg.stream_id_bits) - 1;
        let pages = ((ram.1 - ram.0) / PAGE).max(1);
        let ram_page = |r: &mut Rng| ram.0 + r.below(pages) * PAGE;
        *self = Smmu::new(cfg);
        // sCR0: any writable bits; half the time the client ports are enabled, so the
        // routing below is live, and unmatched streams bypass (USFCFG = 0) half the time.
        self.scr0 = (r.next() as u32 & scr0::WRITABLE) | scr0::SMCFCFG;
        self.scr2 = r.next() as u32 & super::regs::scr2::BPVMID;
        self.sacr = r.next() as u32;
        self.gfsr = r.next() as u32 & super::regs::gfsr::ALL;
        self.gfar = r.next();
        self.gfsynr = [r.next() as u32, r.next() as u32 & ids, r.next() as u32];
        let banks = cfg.context_banks as u64;
        for n in 0..cfg.stream_match_groups as usize {
            // SMRs: mostly valid; the ID its own group number, a low one, or any; the mask
            // usually zero, sometimes wide.
            let id = match r.below(4) {
                0 => n as u32,
                1 => r.below(16) as u32,
                2 => 0x40 + r.below(32) as u32,
                _ => r.next() as u32,
            } & ids;
            let mask = match r.below(5) {
                0 => r.next() as u32 & ids,
                1 => r.below(8) as u32,
                _ => 0,
            };
            let valid = if r.chance(3, 4) { smr::VALID } else { 0 };
            self.smr[n] = valid | (mask << smr::MASK_SHIFT) | id;
            // S2CRs: translate (to any bank, now and then one that is not implemented),
            // bypass, fault, or the reserved type; the other fields arbitrary.
            let ty = match r.below(8) {
                0..=2 => s2cr::TYPE_TRANSLATE,
                3..=5 => s2cr::TYPE_BYPASS,
                6 => s2cr::TYPE_FAULT,
                _ => 3,
            };
            let cbndx = if r.chance(1, 8) {
                r.below(256)
            } else {
                r.below(banks)
            } as u32;
            let other = r.next() as u32 & s2cr::WRITABLE & !(3 << s2cr::TYPE_SHIFT) & !s2cr::CBNDX;
            self.s2cr[n] = other | (ty << s2cr::TYPE_SHIFT) | cbndx;
        }
        for n in 0..cfg.context_banks as usize {
            // CBAR: stage-2 translation with a VMID (often a small one, a VM's), sometimes
            // a type that asks for stage 1; IRPTNDX and the rest arbitrary.
            let vmid = if r.chance(1, 2) {
                r.below(4)
            } else {
                r.below(256)
            } as u32;
            let ty = if r.chance(7, 8) {
                0
            } else {
                1 + r.below(3) as u32
            };
            let rest = r.next() as u32 & !(0xFF | (3 << 16));
            let ttbr0 = match r.below(4) {
                // Tables in RAM (host pages the host can fill, KCore's, a VM's to be).
                0..=2 => ram_page(&mut r),
                _ => r.next() & ((1 << 48) - 1),
            };
            let tcr = if r.chance(3, 4) {
                tcr::KCORE_AARCH64
            } else {
                r.next() as u32
            };
            let mut sctlr = r.next() as u32 & sctlr::WRITABLE;
            if r.chance(3, 4) {
                sctlr |= sctlr::M;
            }
            self.banks[n] = Bank {
                cbar: rest | (ty << 16) | vmid,
                cbfrsynra: r.next() as u32 & 0xFFFF,
                cba2r: if r.chance(3, 4) {
                    cba2r::VA64
                } else {
                    r.next() as u32 & cba2r::WRITABLE
                },
                sctlr,
                actlr: r.next() as u32,
                tcr,
                ttbr0,
                contextidr: r.next() as u32,
                fsr: r.next() as u32 & super::regs::fsr::FAULTS,
                far: r.next(),
                fsynr0: r.next() as u32,
                fsynr1: r.next() as u32,
            };
        }
        // Stale IOTLB entries: translations of likely IOVAs to RAM pages (KCore's, the
        // host's, a VM's to be), readable and writable, tagged with the VMIDs and banks
        // the banks now have or any.
        for _ in 0..r.below(24) + 8 {
            let bank = r.below(banks) as u32;
            let vmid = if r.chance(2, 3) {
                self.banks[bank as usize].cbar & 0xFF
            } else {
                r.below(4) as u32
            };
            let iova = if r.chance(3, 4) {
                r.pick(&LIKELY_IOVAS) + PAGE * r.below(4)
            } else {
                r.next() & ((1 << 40) - 1) & !(PAGE - 1)
            };
            let span = if r.chance(1, 4) { 21 } else { 12 };
            let mask = (1u64 << span) - 1;
            self.tlb.insert(Entry {
                vmid,
                bank,
                iova: iova & !mask,
                span,
                oa: ram_page(&mut r) & !mask,
                read: true,
                write: r.chance(3, 4),
                level: if span == 21 { 2 } else { 3 },
            });
        }
    }

    /// The same SMMU out of `reset` (see [`Smmu::reset_to`]).
    pub fn with_reset(mut self, reset: SmmuReset, ram: (u64, u64)) -> Smmu {
        self.reset_to(reset, ram);
        self
    }

    /// Software-visible stream match state: `(SMRn, S2CRn)` of every group.
    pub fn stream_groups(&self) -> Vec<(u32, u32)> {
        self.smr
            .iter()
            .copied()
            .zip(self.s2cr.iter().copied())
            .collect()
    }
}
