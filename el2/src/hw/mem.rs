//! `memcpy`, `memmove`, `memset` for the image, replacing compiler_builtins' portable (weak)
//! ones, which copy a word per loop turn: kcore moves 31-register files on every trap.
//! General-purpose registers only: while KCore runs, the FP/SIMD registers still hold the
//! interrupted world's state (they move only on a world switch), so these must not touch
//! them. 8-byte aligned operands take 64-byte steps; anything else goes byte by byte (KCore
//! copies words almost always; the boot code runs with the MMU off, where unaligned
//! accesses fault).

use core::arch::global_asm;

global_asm!(
    r#"
    .text
    .global memcpy
    .type memcpy, %function
memcpy:
    mov     x3, x0
    orr     x4, x0, x1
    orr     x4, x4, x2
    tst     x4, #7
    b.ne    .Lbytes_fwd
    cmp     x2, #256
    b.hi    .Lfwd64
    // Up to 256 bytes (a register file is 248): straight-line pairs, entered at the pair
    // that copies the last whole 16 bytes, then the odd 8.
    lsr     x4, x2, #4
    adr     x5, .Lpairs_end
    sub     x5, x5, x4, lsl #3
    br      x5
    ldp     x4, x5, [x1, #240]
    stp     x4, x5, [x0, #240]
    ldp     x4, x5, [x1, #224]
    stp     x4, x5, [x0, #224]
    ldp     x4, x5, [x1, #208]
    stp     x4, x5, [x0, #208]
    ldp     x4, x5, [x1, #192]
    stp     x4, x5, [x0, #192]
    ldp     x4, x5, [x1, #176]
    stp     x4, x5, [x0, #176]
    ldp     x4, x5, [x1, #160]
    stp     x4, x5, [x0, #160]
    ldp     x4, x5, [x1, #144]
    stp     x4, x5, [x0, #144]
    ldp     x4, x5, [x1, #128]
    stp     x4, x5, [x0, #128]
    ldp     x4, x5, [x1, #112]
    stp     x4, x5, [x0, #112]
    ldp     x4, x5, [x1, #96]
    stp     x4, x5, [x0, #96]
    ldp     x4, x5, [x1, #80]
    stp     x4, x5, [x0, #80]
    ldp     x4, x5, [x1, #64]
    stp     x4, x5, [x0, #64]
    ldp     x4, x5, [x1, #48]
    stp     x4, x5, [x0, #48]
    ldp     x4, x5, [x1, #32]
    stp     x4, x5, [x0, #32]
    ldp     x4, x5, [x1, #16]
    stp     x4, x5, [x0, #16]
    ldp     x4, x5, [x1, #0]
    stp     x4, x5, [x0, #0]
.Lpairs_end:
    tbz     x2, #3, 7f
    sub     x2, x2, #8
    ldr     x4, [x1, x2]
    str     x4, [x0, x2]
7:  ret
.Lfwd64:
    cmp     x2, #64
    b.lo    .Lfwd_tail
    ldp     x4, x5, [x1]
    ldp     x6, x7, [x1, #16]
    ldp     x8, x9, [x1, #32]
    ldp     x10, x11, [x1, #48]
    add     x1, x1, #64
    stp     x4, x5, [x3]
    stp     x6, x7, [x3, #16]
    stp     x8, x9, [x3, #32]
    stp     x10, x11, [x3, #48]
    add     x3, x3, #64
    sub     x2, x2, #64
    b       .Lfwd64
.Lfwd_tail:
    tbz     x2, #5, 1f
    ldp     x4, x5, [x1]
    ldp     x6, x7, [x1, #16]
    add     x1, x1, #32
    stp     x4, x5, [x3]
    stp     x6, x7, [x3, #16]
    add     x3, x3, #32
1:  tbz     x2, #4, 2f
    ldp     x4, x5, [x1], #16
    stp     x4, x5, [x3], #16
2:  tbz     x2, #3, 3f
    ldr     x4, [x1]
    str     x4, [x3]
3:  ret
.Lbytes_fwd:
    cbz     x2, 4f
    ldrb    w4, [x1], #1
    strb    w4, [x3], #1
    sub     x2, x2, #1
    b       .Lbytes_fwd
4:  ret
    .size memcpy, . - memcpy

    .global memmove
    .type memmove, %function
memmove:
    sub     x4, x0, x1
    cmp     x4, x2
    b.hs    memcpy                  // dest not inside [src, src + n): forwards is safe
    add     x1, x1, x2              // backwards from the ends
    add     x3, x0, x2
    orr     x4, x0, x1
    orr     x4, x4, x2
    tst     x4, #7
    b.ne    .Lbytes_bwd
.Lbwd8:
    cbz     x2, 5f
    ldr     x4, [x1, #-8]!
    str     x4, [x3, #-8]!
    sub     x2, x2, #8
    b       .Lbwd8
.Lbytes_bwd:
    cbz     x2, 5f
    ldrb    w4, [x1, #-1]!
    strb    w4, [x3, #-1]!
    sub     x2, x2, #1
    b       .Lbytes_bwd
5:  ret
    .size memmove, . - memmove

    .global memset
    .type memset, %function
memset:
    mov     x3, x0
    and     x1, x1, #0xff
    orr     x4, x0, x2
    tst     x4, #7
    b.ne    .Lset_bytes
    mov     x5, #0x0101010101010101
    mul     x1, x1, x5
.Lset64:
    cmp     x2, #64
    b.lo    .Lset8
    stp     x1, x1, [x3]
    stp     x1, x1, [x3, #16]
    stp     x1, x1, [x3, #32]
    stp     x1, x1, [x3, #48]
    add     x3, x3, #64
    sub     x2, x2, #64
    b       .Lset64
.Lset8:
    cbz     x2, 6f
    str     x1, [x3], #8
    sub     x2, x2, #8
    b       .Lset8
.Lset_bytes:
    cbz     x2, 6f
    strb    w1, [x3], #1
    sub     x2, x2, #1
    b       .Lset_bytes
6:  ret
    .size memset, . - memset
"#
);
