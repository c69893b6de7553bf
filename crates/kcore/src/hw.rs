//! The one interface between KCore and the machine.
//!
//! Safety contract for an implementation that touches real hardware (the EL2 image):
//! `read64`/`write64` access physical memory KCore owns or is entitled to scrub/inspect
//! (8-byte aligned addresses inside RAM); `tlbi_*` complete (DSB) before returning, so a
//! caller may rely on the invalidation being visible to every CPU when the call returns.

/// Physical memory and TLB maintenance as KCore needs them.
pub trait Hw {
    fn read64(&self, pa: u64) -> u64;
    fn write64(&mut self, pa: u64, v: u64);
    /// Invalidate stage-2 translations of `ipa` for `vmid` (TLBI IPAS2E1IS + VMALLE1IS).
    fn tlbi_ipa(&mut self, vmid: u32, ipa: u64);
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
