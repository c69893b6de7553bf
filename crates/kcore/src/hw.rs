//! The one interface between KCore and the machine.
//!
//! Safety contract for an implementation that touches real hardware (the EL2 image):
//! `read64`/`write64` access physical memory KCore owns or is entitled to scrub/inspect
//! (8-byte aligned addresses inside RAM); `tlbi_*` complete (DSB) before returning, so a
//! caller may rely on the invalidation being visible to every CPU when the call returns.

/// The width of a device-register access (the SMMU architecture defines no others).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioWidth {
    W32,
    W64,
}

/// The device refused a register access (on hardware: an external abort, fatal at EL2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAbort;

/// Physical memory, TLB maintenance and device registers: everything KCore needs of the
/// machine. Every CPU in KCore uses it at once (`&self`): memory is shared as on hardware;
/// what each location holds is KCore's locks' business (`state`). The trapping CPU's
/// registers are not here: they are its [`crate::trap::Cpu`].
pub trait Hw {
    fn read64(&self, pa: u64) -> u64;
    fn write64(&self, pa: u64, v: u64);
    /// Invalidate stage-2 translations of `ipa` for `vmid` (TLBI IPAS2E1IS + VMALLE1IS).
    fn tlbi_ipa(&self, vmid: u32, ipa: u64);
    /// Invalidate every stage-1 and stage-2 translation of `vmid` on every CPU (TLBI
    /// VMALLS12E1IS): its stage-2 is gone as a whole (deviation `clear_while_reachable`).
    fn tlbi_vmid(&self, vmid: u32);
    /// One single-copy-atomic load of exactly `width` from device register `pa` (aligned to
    /// `width`, inside a device window KCore owns: an SMMU's). `&mut`: reads of status
    /// registers have effects (a completed TLB synchronisation is observed). A machine with
    /// no such device refuses every access (the default).
    fn mmio_read(&self, pa: u64, width: MmioWidth) -> Result<u64, MmioAbort> {
        let _ = (pa, width);
        Err(MmioAbort)
    }
    /// One single-copy-atomic store of the low `width` bits of `v` to device register `pa`.
    fn mmio_write(&self, pa: u64, width: MmioWidth, v: u64) -> Result<(), MmioAbort> {
        let _ = (pa, width, v);
        Err(MmioAbort)
    }
    /// Lock `lock` is about to be released by this CPU, which still holds it: a checker may
    /// inspect what the lock guards (its lock invariant must hold whenever it is free, since
    /// any CPU may take it next). Hardware: nothing.
    #[inline(always)]
    fn releasing(&self, lock: u32) {
        let _ = lock;
    }
    /// Zero the 4 KiB page at `pa`.
    fn zero_page(&self, pa: u64) {
        self.zero_range(pa, 4096);
    }
    /// Zero `len` bytes (a multiple of 8) from `pa` (8-byte aligned).
    fn zero_range(&self, pa: u64, len: u64) {
        for off in (0..len).step_by(8) {
            self.write64(pa + off, 0);
        }
    }
}

/// Values KCore takes from principals it does not trust, in the order it takes them:
/// recorded so the reference model can be fed the same streams.
pub trait Untrusted {
    /// A value of `principal`'s data stream (the seed's `doracle`): page contents, register
    /// values the host supplies for a vCPU, device register reads.
    fn record(&mut self, principal: u32, value: u64);
    /// A value of VM `vmid`'s control stream (the seed's `core_doracle`): the vCPU the host
    /// asks to run and the stage-2 mapping it proposes.
    fn record_core(&mut self, vmid: u32, value: u64);
    /// The step was served `ticket` of lock `id`: the order of a lock's tickets is the order
    /// in which CPUs' steps touched what it guards (a checker's linearization).
    fn acquired(&mut self, id: u32, ticket: u32) {
        let _ = (id, ticket);
    }
}

/// Discards what it is given (for callers that do not check against the model).
pub struct Discard;

impl Untrusted for Discard {
    fn record(&mut self, _principal: u32, _value: u64) {}
    fn record_core(&mut self, _vmid: u32, _value: u64) {}
}
