//! The device tree (`el2_fdt`: KCore's reader and the host's tree writer) on physical memory:
//! the trees are in host RAM, read and written once at boot, before the host runs.

use crate::hw::phys;
pub use el2_fdt::{LinuxBoot, Machine};

/// RAM outside KCore's image, through `hw::phys`.
struct Phys;

impl el2_fdt::Mem for Phys {
    fn read32(&self, pa: u64) -> u32 {
        phys::read32(pa)
    }
    fn read64(&self, pa: u64) -> u64 {
        phys::read64(pa)
    }
    fn write64(&self, pa: u64, v: u64) {
        phys::write64(pa, v)
    }
    fn usable(&self, pa: u64, len: u64) -> bool {
        phys::is_raw(pa, len)
    }
}

/// The machine QEMU's tree at `pa` describes (`None`: no tree KCore can read there).
pub fn read(pa: u64, kcore_uart: u64) -> Option<Machine> {
    el2_fdt::read(&Phys, pa, kcore_uart)
}

/// Writes the host's tree (el2_fdt::write_host) and cleans it to the point of coherency,
/// where the host, entered with its caches off, reads it.
pub fn write_host(
    src: u64,
    dst: u64,
    max: u64,
    host_ram_end: u64,
    kcore_uart: u64,
    linux: Option<LinuxBoot>,
) -> Result<u64, &'static str> {
    let n = el2_fdt::write_host(&Phys, src, dst, max, host_ram_end, kcore_uart, linux)?;
    phys::clean_invalidate(dst, n);
    Ok(n)
}
