//! The assembly KCore cannot do without: the boot entries, the EL2 vector table with the
//! save/restore of a trapping CPU's general registers, the return to EL1, and the FP/SIMD
//! register movers of a world switch. Everything else is Rust.
//!
//! Per CPU `i`, the stack runs down from `stack_top(i)`; the top [`FRAME_SIZE`] bytes hold
//! the CPU's [`TrapFrame`]. A CPU always returns to EL1 with `SP_EL2` at its stack top, so
//! every exception from EL1 finds the frame at `SP_EL2 - FRAME_SIZE`.

use super::percpu::{FRAME_ELR, FRAME_SIZE, FRAME_SPSR, STACK_STRIDE};
use crate::frame::TrapFrame;
use core::arch::global_asm;

/// SCTLR_EL2 with the MMU and caches off, little-endian: the RES1 bits only.
pub const SCTLR_EL2_OFF: u64 = 0x30C5_0830;
/// CPTR_EL2 at boot: RES1 bits, nothing trapped (TFP = 0: the world switch moves FP state).
pub const CPTR_EL2_BOOT: u64 = 0x33FF;

// The vector's stores below: x0..x30 at the frame's start, then ELR_EL2 and SPSR_EL2.
const _: () = assert!(FRAME_ELR == 248 && FRAME_SPSR == 256);

global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    msr     daifset, #0xf
    mrs     x19, CurrentEL
    cmp     x19, #8
    b.ne    .Lpark
    mrs     x19, mpidr_el1
    and     x19, x19, #0xff
    cbnz    x19, .Lpark             // only CPU 0 boots; the others start through PSCI
    mov     x20, x0                 // what the loader passed (a DTB pointer, or 0)
    ldr     x1, ={cptr}
    msr     cptr_el2, x1
    ldr     x1, ={sctlr}
    msr     sctlr_el2, x1
    isb
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
0:  cmp     x1, x2
    b.hs    1f
    stp     xzr, xzr, [x1], #16
    b       0b
1:  mov     x0, #0
    bl      .Lset_stack
    mov     x0, x20
    b       el2_boot_primary

    // x0 = CPU index (the PSCI context id KCore passed to CPU_ON)
    .global _start_secondary
_start_secondary:
    msr     daifset, #0xf
    ldr     x1, ={cptr}
    msr     cptr_el2, x1
    ldr     x1, ={sctlr}
    msr     sctlr_el2, x1
    isb
    cmp     x0, #{max_cpus}
    b.hs    .Lpark
    mov     x19, x0
    bl      .Lset_stack
    mov     x0, x19
    b       el2_boot_secondary

    // SP := stack_top(x0) - FRAME_SIZE (the frame stays above the Rust stack). Keeps x0.
.Lset_stack:
    adrp    x1, __stacks_start
    add     x1, x1, :lo12:__stacks_start
    ldr     x2, ={stride}
    add     x3, x0, #1
    madd    x1, x3, x2, x1
    sub     sp, x1, #{frame}
    ret

.Lpark:
    wfe
    b       .Lpark

    // ------------------------------------------------------------------
    // EL2 vectors (Arm ARM D1.10.2): 16 slots of 0x80 bytes.
    .section .text.vectors, "ax"
    .balign 2048
    .global el2_vectors
el2_vectors:
    .irp slot, 0,1,2,3,4,5,6,7
    .balign 0x80
    mov     x0, #\slot
    b       .Lkcore_fault
    .endr
    .irp kind, 0,1,2,3
    .balign 0x80
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       .Llower_common
    .endr
    .irp slot, 12,13,14,15
    .balign 0x80
    mov     x0, #\slot
    b       .Lkcore_fault
    .endr

    // An exception taken from EL1 (host or VM): save x0..x30, ELR_EL2, SPSR_EL2 into this
    // CPU's frame (kcore's register file of the CPU), let Rust handle it, restore, return.
.Llower_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x2, elr_el2
    stp     x30, x2, [sp, #240]
    mrs     x2, spsr_el2
    str     x2, [sp, #256]
    mov     x1, x0
    mov     x0, sp
    bl      el2_lower_trap

    .global el2_return_lower
el2_return_lower:
    ldr     x2, [sp, #256]
    msr     spsr_el2, x2
    ldp     x30, x2, [sp, #240]
    msr     elr_el2, x2
    ldp     x28, x29, [sp, #224]
    ldp     x26, x27, [sp, #208]
    ldp     x24, x25, [sp, #192]
    ldp     x22, x23, [sp, #176]
    ldp     x20, x21, [sp, #160]
    ldp     x18, x19, [sp, #144]
    ldp     x16, x17, [sp, #128]
    ldp     x14, x15, [sp, #112]
    ldp     x12, x13, [sp, #96]
    ldp     x10, x11, [sp, #80]
    ldp     x8, x9, [sp, #64]
    ldp     x6, x7, [sp, #48]
    ldp     x4, x5, [sp, #32]
    ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #{frame}
    eret
    dsb     nsh                     // no speculation past the eret
    isb

    // x0 = frame: start (or restart) EL1 from it. Abandons the current Rust stack.
    .global el2_enter_lower
el2_enter_lower:
    mov     sp, x0
    b       el2_return_lower

    // An exception taken at EL2 itself: a KCore bug. Report it on this CPU's emergency
    // stack (its own stack may be what failed).
.Lkcore_fault:
    mrs     x1, mpidr_el1
    and     x1, x1, #7
    add     x1, x1, #1
    adrp    x2, __emerg_start
    add     x2, x2, :lo12:__emerg_start
    add     x2, x2, x1, lsl #14
    mov     x5, sp
    mov     sp, x2
    mrs     x1, esr_el2
    mrs     x2, elr_el2
    mrs     x3, far_el2
    mrs     x4, spsr_el2
    b       el2_kcore_fault

    // ------------------------------------------------------------------
    // FP/SIMD state of a world switch (the image is soft-float: only these touch it).
    .text
    .arch_extension fp
    .arch_extension simd
    // x0 = [u128; 32], x1 = [fpsr, fpcr]
    .global el2_fp_save
el2_fp_save:
    stp     q0, q1, [x0, #0]
    stp     q2, q3, [x0, #32]
    stp     q4, q5, [x0, #64]
    stp     q6, q7, [x0, #96]
    stp     q8, q9, [x0, #128]
    stp     q10, q11, [x0, #160]
    stp     q12, q13, [x0, #192]
    stp     q14, q15, [x0, #224]
    stp     q16, q17, [x0, #256]
    stp     q18, q19, [x0, #288]
    stp     q20, q21, [x0, #320]
    stp     q22, q23, [x0, #352]
    stp     q24, q25, [x0, #384]
    stp     q26, q27, [x0, #416]
    stp     q28, q29, [x0, #448]
    stp     q30, q31, [x0, #480]
    mrs     x2, fpsr
    mrs     x3, fpcr
    stp     x2, x3, [x1]
    ret

    .global el2_fp_restore
el2_fp_restore:
    ldp     q0, q1, [x0, #0]
    ldp     q2, q3, [x0, #32]
    ldp     q4, q5, [x0, #64]
    ldp     q6, q7, [x0, #96]
    ldp     q8, q9, [x0, #128]
    ldp     q10, q11, [x0, #160]
    ldp     q12, q13, [x0, #192]
    ldp     q14, q15, [x0, #224]
    ldp     q16, q17, [x0, #256]
    ldp     q18, q19, [x0, #288]
    ldp     q20, q21, [x0, #320]
    ldp     q22, q23, [x0, #352]
    ldp     q24, q25, [x0, #384]
    ldp     q26, q27, [x0, #416]
    ldp     q28, q29, [x0, #448]
    ldp     q30, q31, [x0, #480]
    ldp     x2, x3, [x1]
    msr     fpsr, x2
    msr     fpcr, x3
    ret
"#,
    cptr = const CPTR_EL2_BOOT,
    sctlr = const SCTLR_EL2_OFF,
    max_cpus = const super::percpu::MAX_CPUS,
    stride = const STACK_STRIDE,
    frame = const FRAME_SIZE,
);

extern "C" {
    pub fn el2_enter_lower(frame: *mut TrapFrame) -> !;
    pub fn el2_fp_save(q: *mut [u128; 32], ctl: *mut [u64; 2]);
    pub fn el2_fp_restore(q: *const [u128; 32], ctl: *const [u64; 2]);
    pub static el2_vectors: u8;
    pub static _start_secondary: u8;
}
