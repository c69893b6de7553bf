//! The machine this image is built for: QEMU `virt`, `-m 1G`, virtualization=on
//! (docs/el2.md, "Memory map"). KCore checks the device tree against it at boot.

pub use el2_abi::map::{HOST_ENTRY, KCORE_BASE, RAM_BASE, RAM_END};

/// KCore's own console: not a device the host may map (it is not in [`HOST_MMIO`]).
pub const UART_BASE: u64 = 0x0900_0000;
/// KCore's image (code, data, per-CPU stacks; link.ld `IMAGE_LIMIT`): kcore's layout puts
/// its metadata and table pools after it.
pub const IMAGE_BYTES: u64 = 0x100_0000;

/// The `virt` board's devices the host may map (kcore's declared MMIO ranges: any other
/// address outside RAM halts, deviation `device_outside_mmio`): the GIC distributor and CPU
/// interface, the RTC, fw_cfg, the GPIO controller, virtio-mmio, the PCIe MMIO window and
/// ECAM. Not the UART (KCore's console).
pub const HOST_MMIO: [(u64, u64); 8] = [
    (0x0800_0000, 0x2_0000),
    (0x0901_0000, 0x1000),
    (0x0902_0000, 0x1000),
    (0x0903_0000, 0x1000),
    (0x0A00_0000, 0x4000),
    (0x1000_0000, 0x2EFF_0000),
    (0x3F00_0000, 0x100_0000),
    (0x80_0000_0000, 0x80_0000_0000),
];
