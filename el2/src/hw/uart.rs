//! The PL011 UART of QEMU virt (PrimeCell UART PL011 TRM, registers DR, FR, LCR_H, CR).
//! KCore owns it: it is mapped only into EL2 (device memory, hw/mmu.rs), never into the host.

use crate::platform::UART_BASE;

const DR: u64 = 0x00;
const FR: u64 = 0x18;
const LCR_H: u64 = 0x2C;
const CR: u64 = 0x30;
const FR_TXFF: u32 = 1 << 5;

fn reg(off: u64) -> *mut u32 {
    (UART_BASE + off) as usize as *mut u32
}

/// 8N1 with FIFOs, transmitter and receiver on. QEMU needs no baud rate.
pub fn init() {
    // SAFETY: MMIO to the PL011's registers; the UART page is identity-mapped as device
    // memory at EL2 (or the MMU is off), and only KCore drives this device.
    unsafe {
        reg(CR).write_volatile(0);
        reg(LCR_H).write_volatile((3 << 5) | (1 << 4));
        reg(CR).write_volatile(1 | (1 << 8) | (1 << 9));
    }
}

pub fn putc(b: u8) {
    // SAFETY: as `init`.
    unsafe {
        while reg(FR).read_volatile() & FR_TXFF != 0 {}
        reg(DR).write_volatile(b as u32);
    }
}
