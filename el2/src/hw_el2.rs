//! The EL2 implementation of [`Hw`].
//!
//! Safety contract (what callers of this module rely on, and what makes each `unsafe`
//! block sound):
//! * KCore runs at EL2 with physical memory identity-mapped (or the MMU off), so a
//!   physical address is a valid pointer to it; KCore only passes 8-byte aligned addresses
//!   of RAM it owns (its tables, metadata) or pages it is entitled to scrub or inspect.
//! * Accesses are volatile: another CPU or a device may observe them, and the compiler must
//!   neither elide nor reorder them across the barriers below.
//! * `tlbi_ipa` completes the invalidation (DSB ISH, ISB) before returning, so a descriptor
//!   written after it is never combined with a stale translation (Arm ARM D8.16.1).
#![allow(unsafe_code)]

use corevisor_kcore::ctxt::Ctxt;
use corevisor_kcore::hw::{Hw, SysReg};

/// The CPU KCore runs on, with the registers its EL2 vector saved for the current trap.
pub struct El2Hw {
    pub frame: Ctxt,
}

/// `mrs`/`msr` of one named EL2 register.
macro_rules! sysreg_rw {
    ($r:expr, $read:expr, $( $variant:ident => $name:literal ),* $(,)?) => {
        match ($r, $read) {
            $(
                (SysReg::$variant, None) => {
                    let v: u64;
                    // SAFETY: reading an EL2 system register has no side effect.
                    unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v) };
                    v
                }
                (SysReg::$variant, Some(v)) => {
                    // SAFETY: KCore owns EL2's configuration; callers write values the
                    // architecture defines for the register (Arm ARM D13).
                    unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) v) };
                    0
                }
            )*
        }
    };
}

#[cfg(target_arch = "aarch64")]
fn sysreg(r: SysReg, write: Option<u64>) -> u64 {
    sysreg_rw!(r, write,
        VttbrEl2 => "vttbr_el2",
        HcrEl2 => "hcr_el2",
        EsrEl2 => "esr_el2",
        FarEl2 => "far_el2",
        HpfarEl2 => "hpfar_el2",
        ElrEl2 => "elr_el2",
        SpsrEl2 => "spsr_el2",
        CptrEl2 => "cptr_el2",
        MdcrEl2 => "mdcr_el2",
        CnthctlEl2 => "cnthctl_el2",
        TpidrEl2 => "tpidr_el2",
    )
}

#[cfg(not(target_arch = "aarch64"))]
fn sysreg(_r: SysReg, _write: Option<u64>) -> u64 {
    unreachable!("the EL2 hardware interface exists only on aarch64")
}

impl Hw for El2Hw {
    fn read64(&self, pa: u64) -> u64 {
        debug_assert!(pa % 8 == 0);
        // SAFETY: identity-mapped, aligned, owned or inspectable RAM (module contract).
        unsafe { core::ptr::read_volatile(pa as usize as *const u64) }
    }

    fn write64(&mut self, pa: u64, v: u64) {
        debug_assert!(pa % 8 == 0);
        // SAFETY: as `read64`; KCore writes only memory it owns or scrubs.
        unsafe { core::ptr::write_volatile(pa as usize as *mut u64, v) }
    }

    fn read_sysreg(&self, r: SysReg) -> u64 {
        sysreg(r, None)
    }

    fn write_sysreg(&mut self, r: SysReg, v: u64) {
        sysreg(r, Some(v));
    }

    /// One EL2 CPU today: every index names the register file of the current trap.
    fn regs(&mut self, _cpu: usize) -> &mut Ctxt {
        &mut self.frame
    }

    #[cfg(target_arch = "aarch64")]
    fn tlbi_ipa(&mut self, vmid: u32, ipa: u64) {
        // TLBI IPAS2E1IS acts on the VMID in VTTBR_EL2: switch to `vmid` for the
        // invalidation, then drop stage-1 entries built on it (VMALLE1IS), and restore.
        // SAFETY: EL2 system-register and TLB maintenance instructions; VTTBR_EL2 is
        // restored before returning and no memory is accessed through the changed VMID.
        unsafe {
            let saved: u64;
            core::arch::asm!("mrs {}, vttbr_el2", out(reg) saved);
            let tmp = (saved & !(0xFFFFu64 << 48)) | ((vmid as u64 & 0xFFFF) << 48);
            core::arch::asm!(
                "dsb ishst",
                "msr vttbr_el2, {v}",
                "isb",
                "tlbi ipas2e1is, {ipa}",
                "dsb ish",
                "tlbi vmalle1is",
                "dsb ish",
                "msr vttbr_el2, {s}",
                "isb",
                v = in(reg) tmp,
                ipa = in(reg) ipa >> 12,
                s = in(reg) saved,
            );
        }
    }

    #[cfg(not(target_arch = "aarch64"))]
    fn tlbi_ipa(&mut self, _vmid: u32, _ipa: u64) {
        unreachable!("the EL2 hardware interface exists only on aarch64")
    }
}
