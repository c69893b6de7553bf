//! The machine this image is built for: QEMU `virt`, `-m 1G`, virtualization=on
//! (docs/el2.md, "Memory map"). KCore checks the device tree against it at boot.

pub use el2_abi::map::{HOST_ENTRY, KCORE_BASE, RAM_BASE, RAM_END};

pub const UART_BASE: u64 = 0x0900_0000;
/// KCore's tables, after its image (16 MiB at KCORE_BASE, link.ld): page metadata (8 bytes
/// per RAM page), the SMMU table pool (3 MiB), the 17 stage-2 table pools (32 MiB each, the
/// seed's geometry) up to the end of RAM.
pub const META_BASE: u64 = KCORE_BASE + 0x100_0000;
pub const META_BYTES: u64 = (RAM_END - RAM_BASE) / 4096 * 8;
pub const SMMU_BASE: u64 = META_BASE + 0x20_0000;
pub const SMMU_BYTES: u64 = 0x30_0000;
pub const PT_BASE: u64 = KCORE_BASE + 0x200_0000;
pub const PT_BYTES: u64 = 17 * 0x200_0000;

const _: () = assert!(META_BASE + META_BYTES <= SMMU_BASE);
const _: () = assert!(SMMU_BASE + SMMU_BYTES <= PT_BASE);
const _: () = assert!(PT_BASE + PT_BYTES == RAM_END);
