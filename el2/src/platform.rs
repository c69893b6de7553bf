//! The machine this image is built for: QEMU `virt`, `-m 2G`, virtualization=on
//! (docs/el2.md, "Memory map"). KCore checks the device tree against it at boot and
//! takes the host's devices from it (`fdt::read`).

pub use el2_abi::map::{HOST_DTB, HOST_DTB_MAX, HOST_ENTRY, KCORE_BASE, RAM_BASE, RAM_END};

/// KCore's own console: `virt`'s second PL011 (QEMU's second `-serial`), removed from the
/// host's device tree and never a device the host may map. The first is the host's.
pub const UART_BASE: u64 = 0x0904_0000;
/// KCore's image (code, data, per-CPU stacks; link.ld `IMAGE_LIMIT`): kcore's layout puts
/// its metadata and table pools after it.
pub const IMAGE_BYTES: u64 = 0x100_0000;
