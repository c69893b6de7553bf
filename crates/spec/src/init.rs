//! The initial state (the seed's `empty_adt` is a Coq `Parameter`; spec-digest §7.1 gives
//! the reading that satisfies the lower layers' invariants), built from a machine
//! description as ARCHITECTURE.md's default machine says.

use crate::consts::*;
use crate::profile::Profile;
use crate::state::*;
use crate::zmap::ZMap;
use crate::Z;

/// Base of SMMU `i`'s register window is `SMMU_WINDOW_BASE + i * SMMU_WINDOW_STRIDE`.
pub const SMMU_WINDOW_BASE: Z = 0x0B00_0000;
pub const SMMU_WINDOW_STRIDE: Z = 0x10_0000;
/// 128 KiB per SMMU: global space below 0x8000, context banks above (SMMU_GLOBAL_BASE).
pub const SMMU_WINDOW_SIZE: Z = 0x2_0000;
/// The UART the host owns as a device page.
pub const UART_BASE: Z = 0x0900_0000;
/// Device ranges a machine may declare.
pub const MAX_MMIO_RANGES: usize = 16;

/// Is `addr` inside one of `ranges` (`(base, size)`)?
pub fn in_ranges(ranges: &[(Z, Z)], addr: Z) -> bool {
    ranges.iter().any(|&(b, s)| b <= addr && addr < b + s)
}

/// A machine description: what the scenario's `machine` object configures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub cpus: Z,
    pub ram_base: Z,
    pub ram_mib: Z,
    /// KCore's own region: the top `kcore_mib` MiB of RAM (owner COREVISOR).
    pub kcore_mib: Z,
    pub smmus: Z,
    /// The device (MMIO) ranges the platform declares, `(base, size)` in bytes: what a
    /// device tree tells KCore. Under `arm` a host stage-2 fault outside RAM is mapped as
    /// device memory only inside one of them (deviation `device_outside_mmio`).
    pub mmio: Vec<(Z, Z)>,
}

impl Default for Machine {
    fn default() -> Self {
        Machine {
            cpus: 2,
            ram_base: 0x4000_0000,
            ram_mib: 256,
            kcore_mib: 32,
            smmus: 2,
            mmio: Machine::default_mmio(2),
        }
    }
}

impl Machine {
    /// The default device ranges: the register window of each of `smmus` SMMUs and one
    /// UART page.
    pub fn default_mmio(smmus: Z) -> Vec<(Z, Z)> {
        let mut v: Vec<(Z, Z)> = (0..smmus.clamp(0, SMMU_NUM))
            .map(|i| (SMMU_WINDOW_BASE + i * SMMU_WINDOW_STRIDE, SMMU_WINDOW_SIZE))
            .collect();
        v.push((UART_BASE, PAGE_SIZE));
        v
    }

    /// Is `addr` inside a declared device range?
    pub fn is_mmio(&self, addr: Z) -> bool {
        in_ranges(&self.mmio, addr)
    }

    /// Checks the description; the error names the offending field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=8).contains(&self.cpus) {
            return Err(("cpus", "must be between 1 and 8 (TOTAL_CPU)".into()));
        }
        if self.ram_base < PAGE_SIZE || self.ram_base % PAGE_SIZE != 0 {
            return Err((
                "ram_base",
                "must be page aligned and above page 0 (page 0 is never RAM)".into(),
            ));
        }
        if self.ram_mib < 1 || self.ram_mib > 64 * 1024 {
            return Err(("ram_mib", "must be between 1 and 65536".into()));
        }
        if self.kcore_mib < 1 || self.kcore_mib >= self.ram_mib {
            return Err(("kcore_mib", "must be at least 1 and below ram_mib".into()));
        }
        if !(0..=SMMU_NUM).contains(&self.smmus) {
            return Err(("smmus", format!("must be between 0 and {SMMU_NUM}")));
        }
        if self.ram_end() > KVM_PHYS_SIZE {
            return Err(("ram_mib", "RAM must end below 2^40 (KVM_PHYS_SIZE)".into()));
        }
        for i in 0..self.smmus {
            let (b, s) = (self.smmu_base(i), SMMU_WINDOW_SIZE);
            if b < self.ram_end() && self.ram_base < b + s {
                return Err((
                    "ram_base",
                    format!("RAM overlaps SMMU {i}'s register window at {b:#x}"),
                ));
            }
        }
        if self.mmio.len() > MAX_MMIO_RANGES {
            return Err(("mmio", format!("at most {MAX_MMIO_RANGES} device ranges")));
        }
        for (i, &(b, s)) in self.mmio.iter().enumerate() {
            if b % PAGE_SIZE != 0 || s < PAGE_SIZE || s % PAGE_SIZE != 0 {
                return Err((
                    "mmio",
                    format!(
                        "range {i}: base and size must be page aligned, size at least one page"
                    ),
                ));
            }
            if b < PAGE_SIZE || b + s > KVM_ADDR_SPACE {
                return Err((
                    "mmio",
                    format!("range {i}: must lie above page 0 and below 2^48"),
                ));
            }
            if b < self.ram_end() && self.ram_base < b + s {
                return Err(("mmio", format!("range {i} overlaps RAM")));
            }
        }
        Ok(())
    }

    pub fn ram_end(&self) -> Z {
        self.ram_base + self.ram_mib * 0x10_0000
    }

    /// First byte of KCore's own region.
    pub fn kcore_base(&self) -> Z {
        self.ram_end() - self.kcore_mib * 0x10_0000
    }

    pub fn smmu_base(&self, i: Z) -> Z {
        SMMU_WINDOW_BASE + i * SMMU_WINDOW_STRIDE
    }

    /// Is `pfn` host RAM at boot?
    pub fn is_host_ram(&self, pfn: Z) -> bool {
        let a = pfn * PAGE_SIZE;
        self.ram_base <= a && a < self.kcore_base()
    }

    /// Boot-time metadata of `pfn` (spec-digest §7.1).
    pub fn boot_s2page(&self, pfn: Z) -> S2Page {
        let a = pfn * PAGE_SIZE;
        if pfn == 0 || a < self.ram_base || a >= self.ram_end() {
            mkS2Page(INVALID, INVALID, INVALID64)
        } else if a >= self.kcore_base() {
            mkS2Page(COREVISOR, 0, INVALID64)
        } else {
            mkS2Page(HOSTVISOR, 0, pfn + SMMU_HOST_OFFSET)
        }
    }

    pub fn smmu_conf(&self) -> SMMUConf {
        let mut c = SMMUConf {
            smmu_num: self.smmus,
            ..SMMUConf::default()
        };
        for i in 0..self.smmus {
            c.smmu_phys_base.set_mut(i, self.smmu_base(i));
            c.smmu_size.set_mut(i, SMMU_WINDOW_SIZE);
            c.smmu_dev_context_banks.set_mut(i, SMMU_NUM_CTXT_BANKS);
        }
        c.mmio = self.mmio.clone();
        c.ram_pages = self.ram_mib * 0x100;
        c
    }

    /// The shared state at boot.
    pub fn initial_shared(&self, p: &Profile) -> Shared {
        let pools = &p.c.pools;
        let mut s2page = ZMap::init(mkS2Page(INVALID, INVALID, INVALID64));
        for pfn in self.ram_base / PAGE_SIZE..self.ram_end() / PAGE_SIZE {
            s2page.set_mut(pfn, self.boot_s2page(pfn));
        }
        let mut npts = ZMap::init(NPT::default());
        for v in HOSTVISOR..=COREVISOR {
            let npt = NPT {
                pt_pgd_next: pools.pgd_start(v),
                pt_pud_next: pools.pud_start(v),
                pt_pmd_next: pools.pmd_start(v),
                ..NPT::default()
            };
            npts.set_mut(v, npt);
        }
        Shared {
            flatmem: ZMap::init(0),
            npts,
            s2page,
            core_data: CoreData {
                next_vmid: 1,
                next_remap_ptr: REMAP_START,
            },
            vminfos: ZMap::init(VMInfo::default()),
            spts: SPT {
                spt_pgd_next: pools.smmu_pgd_start,
                spt_pmd_next: pools.smmu_pmd_start,
                ..SPT::default()
            },
            smmu_vmid: ZMap::init(INVALID),
            hlock: ZMap::init(true),
        }
    }

    /// Shadow contexts at boot: every VM vCPU has `dirty = INVALID64` (never ran); host
    /// contexts have `dirty = 0` (invariant `run_vcpu_dirty`).
    pub fn initial_shadow_ctxts(&self) -> ZMap<Ctxt> {
        let mut m = ZMap::init(Ctxt::default());
        for v in 1..COREVISOR {
            for c in 0..VCPU_PER_VM {
                let mut ctxt = Ctxt::default();
                ctxt.ctxt_states.dirty = INVALID64;
                m.set_mut(ctxt_id(v, c), ctxt);
            }
        }
        m
    }

    /// The whole state as CPU `cpu` sees it at boot: the host runs there.
    pub fn initial_state(&self, p: &Profile, cpu: Z) -> RData {
        RData {
            halt: false,
            icore: false,
            ihost: true,
            tstate: 0,
            curid: cpu,
            cur_vmid: HOSTVISOR,
            cur_vcpuid: cpu,
            regs: Ctxt::default(),
            shadow_ctxts: self.initial_shadow_ctxts(),
            smmu_conf: self.smmu_conf(),
            slog: Default::default(),
            soracle: SOracle::default(),
            doracle: DataOracle::default(),
            core_doracle: DataOracle::default(),
            data_log: ZMap::init(0),
            core_data_log: ZMap::init(0),
            shared: self.initial_shared(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_ownership_follows_the_machine() {
        let m = Machine::default();
        m.validate().unwrap();
        let s = m.initial_state(&Profile::SEED, 0);
        let ram0 = m.ram_base / PAGE_SIZE;
        assert_eq!(
            *s.shared.s2page.get(0),
            mkS2Page(INVALID, INVALID, INVALID64)
        );
        assert_eq!(
            *s.shared.s2page.get(ram0),
            mkS2Page(HOSTVISOR, 0, ram0 + SMMU_HOST_OFFSET)
        );
        assert_eq!(
            s.shared.s2page.get(m.kcore_base() / PAGE_SIZE).s2_owner,
            COREVISOR
        );
        assert_eq!(
            s.shared.s2page.get(m.ram_end() / PAGE_SIZE).s2_owner,
            INVALID
        );
        assert_eq!(
            s.shared.npts.get(3).pt_pud_next,
            Profile::SEED.c.pools.pud_start(3)
        );
        assert_eq!(
            s.shadow_ctxts.get(ctxt_id(1, 0)).ctxt_states.dirty,
            INVALID64
        );
        assert_eq!(s.shadow_ctxts.get(ctxt_id(0, 1)).ctxt_states.dirty, 0);
        assert!(*s.shared.hlock.get(INFO_ID + 3));
    }

    #[test]
    fn bad_machines_name_their_field() {
        let m = Machine {
            ram_base: 0,
            ..Machine::default()
        };
        assert_eq!(m.validate().unwrap_err().0, "ram_base");
        let m = Machine {
            ram_base: 0x0A00_0000,
            ..Machine::default()
        };
        assert_eq!(m.validate().unwrap_err().0, "ram_base");
        let m = Machine {
            kcore_mib: 256,
            ..Machine::default()
        };
        assert_eq!(m.validate().unwrap_err().0, "kcore_mib");
    }
}
