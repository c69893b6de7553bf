//! EL2's own translation (Arm ARM D8, VMSAv8-64 stage 1 of the EL2 regime): an identity map,
//! 4 KiB granule, 39-bit VA starting at level 1.
//!
//! * RAM: normal write-back cacheable, inner shareable, read-write, never executable, in
//!   2 MiB blocks (KCore reads and scrubs any RAM page; its own tables live there);
//! * the KCore image: 4 KiB pages, code read-only and executable, read-only data read-only
//!   and never executable, the rest read-write and never executable (SCTLR_EL2.WXN as
//!   well); the guard page below each CPU's stack unmapped;
//! * the PL011: one 4 KiB device-nGnRE page;
//! * everything else unmapped (an access is a KCore fault).
//!
//! Also the stage-2 control, VTCR_EL2, derived from the CPU's PA size.

use super::percpu::{guard_page, image_bounds, MAX_CPUS};
use super::regs::{dsb_ish, isb};
use crate::platform::{RAM_BASE, RAM_END, UART_BASE};
use core::arch::asm;
use core::ptr::addr_of_mut;

const BLOCK: u64 = 0x20_0000;
/// 2 MiB blocks of the image's 16 MiB (link.ld IMAGE_LIMIT) mapped with pages.
const IMAGE_BLOCKS: usize = 8;
/// GiB of RAM (one level-2 table each).
const RAM_GIB: usize = ((RAM_END - RAM_BASE) >> 30) as usize;

#[repr(C, align(4096))]
struct Tables {
    l1: [u64; 512],
    l2_low: [u64; 512],
    l3_uart: [u64; 512],
    l2_ram: [[u64; 512]; RAM_GIB],
    l3_image: [[u64; 512]; IMAGE_BLOCKS],
}

static mut TABLES: Tables = Tables {
    l1: [0; 512],
    l2_low: [0; 512],
    l3_uart: [0; 512],
    l2_ram: [[0; 512]; RAM_GIB],
    l3_image: [[0; 512]; IMAGE_BLOCKS],
};

// MAIR_EL2 attribute indices.
const ATTR_DEVICE_NGNRE: u64 = 1;
const ATTR_NORMAL_WB: u64 = 2;
const MAIR: u64 = (0x04 << 8) | (0xFF << 16);

const TABLE: u64 = 0b11;
const BLOCK_DESC: u64 = 0b01;
const PAGE_DESC: u64 = 0b11;
const AP1_RES1: u64 = 1 << 6;
const AP_RO: u64 = 1 << 7;
const SH_INNER: u64 = 3 << 8;
const AF: u64 = 1 << 10;
const XN: u64 = 1 << 54;

const NORMAL_RW: u64 = (ATTR_NORMAL_WB << 2) | AP1_RES1 | SH_INNER | AF | XN;
const NORMAL_RO: u64 = (ATTR_NORMAL_WB << 2) | AP1_RES1 | AP_RO | SH_INNER | AF | XN;
const NORMAL_RX: u64 = (ATTR_NORMAL_WB << 2) | AP1_RES1 | AP_RO | SH_INNER | AF;
const DEVICE_RW: u64 = (ATTR_DEVICE_NGNRE << 2) | AP1_RES1 | AF | XN;

/// SCTLR_EL2: M, C, SA, I, WXN over the RES1 bits.
const SCTLR_ON: u64 = super::asm::SCTLR_EL2_OFF | 1 | (1 << 2) | (1 << 3) | (1 << 12) | (1 << 19);

/// PA bits of ID_AA64MMFR0_EL1.PARange (Arm ARM D17.2.64).
pub fn pa_bits(mmfr0: u64) -> Option<u64> {
    [32, 36, 40, 42, 44, 48, 52]
        .get((mmfr0 & 0xF) as usize)
        .copied()
}

/// VTCR_EL2 for kcore's stage-2 tables (Arm ARM D17.2.161), from ID_AA64MMFR0_EL1:
/// 4 KiB granule; the walk starts at level 0 (kcore's roots index IPA bits 47:39), which the
/// architecture allows for IPA sizes of 40 to 48 bits; IPA size = PA size capped at 48 bits
/// (T0SZ = 64 - that), PS = PARange (capped at 48 bits); table walks inner-shareable
/// write-back cacheable (KCore writes its tables through a cacheable map); 8-bit VMIDs.
/// `None` for a CPU with fewer than 40 PA bits.
pub fn vtcr(mmfr0: u64) -> Option<(u64, u64)> {
    let bits = pa_bits(mmfr0)?;
    if bits < 40 {
        return None;
    }
    let ipa = bits.min(48);
    let ps = (mmfr0 & 0xF).min(5);
    // TG0 (bits 15:14) = 0: 4 KiB granule.
    let v = (1 << 31) // RES1
        | (ps << 16)
        | (3 << 12) // SH0 inner shareable
        | (1 << 10) // ORGN0 write-back
        | (1 << 8) // IRGN0 write-back
        | (2 << 6) // SL0 = start at level 0
        | (64 - ipa); // T0SZ
    Some((v, ipa))
}

fn idx(va: u64, level: u32) -> usize {
    ((va >> (39 - 9 * level)) & 511) as usize
}

/// Builds the tables (boot CPU, MMU off, before any other CPU runs).
pub fn build() {
    assert!(RAM_BASE.is_multiple_of(1 << 30) && RAM_END.is_multiple_of(1 << 30));
    let (img_start, text_end, img_end) = image_bounds();
    let rodata_end = super::percpu::rodata_end();
    let first_block = ((img_start - RAM_BASE) / BLOCK) as usize;
    assert!(img_start % BLOCK == 0 && img_end <= img_start + IMAGE_BLOCKS as u64 * BLOCK);
    // SAFETY: only the boot CPU runs, the MMU is off and no walker uses the tables yet; no
    // other reference to TABLES exists (it is private to this module and written only here).
    let t = unsafe { &mut *addr_of_mut!(TABLES) };
    t.l1[idx(0, 1)] = (t.l2_low.as_ptr() as u64) | TABLE;
    t.l2_low[idx(UART_BASE, 2)] = (t.l3_uart.as_ptr() as u64) | TABLE;
    t.l3_uart[idx(UART_BASE, 3)] = UART_BASE | DEVICE_RW | PAGE_DESC;
    for g in 0..RAM_GIB {
        t.l1[idx(RAM_BASE, 1) + g] = (t.l2_ram[g].as_ptr() as u64) | TABLE;
    }
    for i in 0..512 * RAM_GIB {
        let pa = RAM_BASE + i as u64 * BLOCK;
        let k = i.wrapping_sub(first_block);
        t.l2_ram[i / 512][i % 512] = if k < IMAGE_BLOCKS {
            (t.l3_image[k].as_ptr() as u64) | TABLE
        } else {
            pa | NORMAL_RW | BLOCK_DESC
        };
    }
    for (k, l3) in t.l3_image.iter_mut().enumerate() {
        for (j, e) in l3.iter_mut().enumerate() {
            let pa = img_start + k as u64 * BLOCK + j as u64 * 4096;
            let guard = (0..MAX_CPUS).any(|c| guard_page(c) == pa);
            *e = if pa >= img_end || guard {
                0
            } else if pa < text_end {
                pa | NORMAL_RX | PAGE_DESC
            } else if pa < rodata_end {
                pa | NORMAL_RO | PAGE_DESC
            } else {
                pa | NORMAL_RW | PAGE_DESC
            };
        }
    }
    // The tables were written with the MMU (and so the caches) off: make sure no stale
    // line shadows them once walks are cacheable.
    let start = addr_of_mut!(TABLES) as u64;
    let line = super::phys::dcache_line();
    let mut a = start;
    while a < start + core::mem::size_of::<Tables>() as u64 {
        // SAFETY: cache maintenance by VA (= PA, MMU off) over TABLES; no data changes.
        unsafe { asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    dsb_ish();
}

/// Turns this CPU's EL2 MMU on with the tables `build` made (every CPU, at boot).
pub fn enable(mmfr0: u64) {
    let ps = (mmfr0 & 0xF).min(5);
    let tcr = (1 << 31) | (1 << 23) | (ps << 16) | (3 << 12) | (1 << 10) | (1 << 8) | 25;
    let ttbr = addr_of_mut!(TABLES) as u64;
    // SAFETY: installs the identity map built above: every address KCore's code, data and
    // stack use translates to itself with the same contents, so execution continues
    // unchanged across the switch; TLBs are invalidated first.
    unsafe {
        asm!(
            "msr mair_el2, {mair}",
            "msr tcr_el2, {tcr}",
            "msr ttbr0_el2, {ttbr}",
            "dsb ish",
            "isb",
            "tlbi alle2",
            "dsb nsh",
            "isb",
            "msr sctlr_el2, {sctlr}",
            "isb",
            mair = in(reg) MAIR,
            tcr = in(reg) tcr,
            ttbr = in(reg) ttbr,
            sctlr = in(reg) SCTLR_ON,
            options(nostack, preserves_flags)
        );
    }
    isb();
}
