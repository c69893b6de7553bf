//! Physical memory as KCore touches it: RAM outside the KCore image, through EL2's identity
//! map (cacheable, hw/mmu.rs). Every access is checked against that range, so no call can
//! reach memory Rust objects live in (the image: code, statics, stacks) or unmapped space:
//! a bad address is a KCore bug and panics (KCore's defined halt).
//!
//! Accesses are volatile and 8-byte aligned (single-copy atomic, Arm ARM B2.2.1): another
//! CPU, a table walker or a device may observe them, so none may be elided, merged or torn.

use crate::platform::{RAM_BASE, RAM_END};
use core::arch::asm;

fn image() -> (u64, u64) {
    let (start, _, end) = super::percpu::image_bounds();
    (start, end)
}

/// `[pa, pa + len)` is RAM and misses the KCore image.
pub fn is_raw(pa: u64, len: u64) -> bool {
    let (is, ie) = image();
    let Some(end) = pa.checked_add(len) else {
        return false;
    };
    pa >= RAM_BASE && end <= RAM_END && (end <= is || pa >= ie)
}

fn check(pa: u64, len: u64, align: u64) {
    if !pa.is_multiple_of(align) || !is_raw(pa, len) {
        panic!("KCore touched physical address {pa:#x} (+{len:#x}) outside its reach");
    }
}

pub fn read64(pa: u64) -> u64 {
    check(pa, 8, 8);
    // SAFETY: `check`: aligned, inside identity-mapped RAM, outside every Rust object.
    unsafe { core::ptr::read_volatile(pa as usize as *const u64) }
}

pub fn write64(pa: u64, v: u64) {
    check(pa, 8, 8);
    // SAFETY: as `read64`.
    unsafe { core::ptr::write_volatile(pa as usize as *mut u64, v) }
}

pub fn read32(pa: u64) -> u32 {
    check(pa, 4, 4);
    // SAFETY: as `read64`, 4-byte aligned.
    unsafe { core::ptr::read_volatile(pa as usize as *const u32) }
}

/// Bytes of the smallest data cache line (CTR_EL0.DminLine, Arm ARM D17.2.34).
pub fn dcache_line() -> u64 {
    4 << ((super::regs::ctr() >> 16) & 0xF)
}

/// DC CIVAC over `[pa, pa + len)` and DSB ISH: the bytes reach the point of coherency and
/// no stale copy stays in any cache (Arm ARM D7.5.9, "Data cache maintenance").
pub fn clean_invalidate(pa: u64, len: u64) {
    check(pa, len, 1);
    let line = dcache_line();
    let mut a = pa & !(line - 1);
    while a < pa + len {
        // SAFETY: cache maintenance by VA on identity-mapped RAM checked above; it changes
        // no memory contents.
        unsafe { asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    super::regs::dsb_ish();
}

/// Zeroes `[pa, pa + len)` (page aligned) with DC ZVA where allowed (DCZID_EL0), plain stores
/// otherwise. Needs the MMU on (DC ZVA faults on Device memory).
pub fn zero(pa: u64, len: u64) {
    check(pa, len, 4096);
    assert!(len.is_multiple_of(4096));
    let dczid = super::regs::dczid();
    let end = pa + len;
    if dczid & (1 << 4) == 0 {
        let block = 4u64 << (dczid & 0xF);
        let mut a = pa;
        while a < end {
            // SAFETY: zeroes one DC ZVA block inside the checked range (block sizes divide
            // 4096, so blocks never straddle its end).
            unsafe { asm!("dc zva, {}", in(reg) a, options(nostack, preserves_flags)) };
            a += block;
        }
    } else {
        let mut a = pa;
        while a < end {
            // SAFETY: an aligned store inside the checked range.
            unsafe { core::ptr::write_volatile(a as usize as *mut u64, 0) };
            a += 8;
        }
    }
    super::regs::dsb_ish();
}

/// Scrubs the 4 KiB page at `pa`: zeroes, then cleans and invalidates it to the point of
/// coherency, so whoever reads it next sees zeroes even with its caches off.
pub fn scrub_page(pa: u64) {
    zero(pa, 4096);
    clean_invalidate(pa, 4096);
}

/// IC IALLUIS: no CPU keeps an instruction fetched from a page before it changed hands
/// (Arm ARM D7.5.8).
pub fn invalidate_icache_all() {
    // SAFETY: instruction cache maintenance; no memory contents change.
    unsafe {
        asm!(
            "ic ialluis",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    }
}
