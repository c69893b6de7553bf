#![no_std]
#![no_main]
use core::arch::{asm, global_asm};

global_asm!(r#"
    .section .text.boot, "ax"
    .global _start
_start:
    adrp x1, __stacks_start
    add x1, x1, :lo12:__stacks_start
    add sp, x1, #0x10000
    bl host_main
0:  b 0b
"#);

fn console(s: &[u8]) {
    let mut r = [0u64; 16];
    for (i, b) in s.iter().enumerate() { r[i / 8] |= (*b as u64) << (8 * (i % 8)); }
    unsafe { asm!("hvc #0", inout("x0") 0xC600_0001u64 => _, in("x1") s.len(), in("x2") r[0], in("x3") r[1], in("x4") r[2], in("x5") r[3], options(nostack)); }
}

#[no_mangle]
extern "C" fn host_main() -> ! {
    console(b"hello from the host at EL1");
    let r: u64;
    unsafe { asm!("hvc #0", inout("x0") 13u64 => r, options(nostack)); }
    if r == 1 { console(b"REGISTER_KVM -> 1"); }
    unsafe { asm!("smc #0", in("x0") 0x8400_0008u64, options(nostack)); }
    loop {}
}

#[panic_handler]
fn p(_: &core::panic::PanicInfo) -> ! { loop {} }
