//! The hardware module: the only place with `unsafe` code (each block carries its SAFETY
//! argument). Everything here is specific to ARMv8 at EL2 on QEMU `virt`; nothing here
//! knows kcore's types (those stay in `kcore_glue`; the CPU's frame, laid out as kcore's
//! `Cpu`, is `frame`'s).
#![allow(unsafe_code)]

pub mod asm;
pub mod entry;
pub mod lock;
pub mod mem;
pub mod mmu;
pub mod percpu;
pub mod phys;
pub mod psci;
pub mod regs;
pub mod uart;
