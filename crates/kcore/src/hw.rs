//! The one interface between KCore and the machine.
//!
//! Safety contract for an implementation that touches real hardware (the EL2 image):
//! `read64`/`write64` access physical memory KCore owns or is entitled to scrub/inspect
//! (8-byte aligned addresses inside RAM); `tlbi_*` complete (DSB) before returning, so a
//! caller may rely on the invalidation being visible to every CPU when the call returns.

/// The EL2 system registers KCore reads and writes on a world switch or a trap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysReg {
    VttbrEl2,
    HcrEl2,
    EsrEl2,
    FarEl2,
    HpfarEl2,
    ElrEl2,
    SpsrEl2,
    CptrEl2,
    MdcrEl2,
    CnthctlEl2,
    TpidrEl2,
}

impl SysReg {
    pub const ALL: [SysReg; 11] = [
        SysReg::VttbrEl2,
        SysReg::HcrEl2,
        SysReg::EsrEl2,
        SysReg::FarEl2,
        SysReg::HpfarEl2,
        SysReg::ElrEl2,
        SysReg::SpsrEl2,
        SysReg::CptrEl2,
        SysReg::MdcrEl2,
        SysReg::CnthctlEl2,
        SysReg::TpidrEl2,
    ];
}

/// The trapping CPU's general-purpose registers, as the EL2 vector saved them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapFrame {
    pub x: [u64; 31],
}

/// Physical memory, TLB maintenance, system registers and the trapping CPU's registers:
/// everything KCore needs of the machine.
pub trait Hw {
    fn read64(&self, pa: u64) -> u64;
    fn write64(&mut self, pa: u64, v: u64);
    /// Invalidate stage-2 translations of `ipa` for `vmid` (TLBI IPAS2E1IS + VMALLE1IS).
    fn tlbi_ipa(&mut self, vmid: u32, ipa: u64);
    fn read_sysreg(&self, r: SysReg) -> u64;
    fn write_sysreg(&mut self, r: SysReg, v: u64);
    /// The registers of the principal whose trap KCore is handling on this CPU.
    fn frame(&mut self) -> &mut TrapFrame;
    /// Zero the 4 KiB page at `pa`.
    fn zero_page(&mut self, pa: u64) {
        for off in (0..4096).step_by(8) {
            self.write64(pa + off, 0);
        }
    }
}

/// Values KCore takes from principals it does not trust, in the order it takes them:
/// recorded so the reference model can be fed the same stream (its `doracle`).
pub trait Untrusted {
    fn record(&mut self, principal: u32, value: u64);
}
