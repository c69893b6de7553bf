//! KCore's device-tree code (`el2/fdt`, the `el2-fdt` crate KCore's image links) on the tree
//! QEMU gives `-M virt,virtualization=on,gic-version=2 -cpu cortex-a57 -smp 2 -m 2G` with two
//! `-serial` (QEMU 10.0.2's `dumpdtb`, trimmed to its used size: `data/qemu-virt-2g.dtb`):
//! what KCore reads of the machine, the tree it writes for the host, and that a damaged tree
//! is refused without a panic.

use el2_abi::map::{HOST_DTB, HOST_DTB_MAX, KCORE_BASE, RAM_BASE, RAM_END};
use el2_fdt::{LinuxBoot, Mem};
use proptest::prelude::*;
use std::cell::RefCell;

const TREE: &[u8] = include_bytes!("data/qemu-virt-2g.dtb");
/// KCore's console: the second PL011.
const KCORE_UART: u64 = 0x0904_0000;

/// 2 MiB of RAM at RAM_BASE: QEMU's tree at its base, room for the host's after it.
struct Ram(RefCell<Vec<u8>>);

impl Ram {
    fn with(tree: &[u8]) -> Ram {
        let mut v = vec![0u8; 2 << 20];
        v[..tree.len()].copy_from_slice(tree);
        Ram(RefCell::new(v))
    }
    fn at(&self, pa: u64, len: u64) -> std::ops::Range<usize> {
        assert!(self.usable(pa, len), "access outside RAM at {pa:#x}");
        let o = (pa - RAM_BASE) as usize;
        o..o + len as usize
    }
    fn bytes(&self, pa: u64, len: u64) -> Vec<u8> {
        self.0.borrow()[self.at(pa, len)].to_vec()
    }
}

impl Mem for Ram {
    fn read32(&self, pa: u64) -> u32 {
        u32::from_le_bytes(self.bytes(pa, 4).try_into().unwrap())
    }
    fn read64(&self, pa: u64) -> u64 {
        u64::from_le_bytes(self.bytes(pa, 8).try_into().unwrap())
    }
    fn write64(&self, pa: u64, v: u64) {
        let r = self.at(pa, 8);
        self.0.borrow_mut()[r].copy_from_slice(&v.to_le_bytes());
    }
    fn usable(&self, pa: u64, len: u64) -> bool {
        let size = self.0.borrow().len() as u64;
        pa >= RAM_BASE && pa.checked_add(len).is_some_and(|e| e <= RAM_BASE + size)
    }
}

/// The device ranges KCore gives the host on this machine (docs/el2.md, "Memory map").
const HOST_DEVICES: [(u64, u64); 9] = [
    (0x1000, 0x802_0000), // flash (less page 0), GIC distributor, CPU interface, v2m
    (0x900_0000, 0x1000), // the host's PL011
    (0x901_0000, 0x1000), // RTC
    (0x902_0000, 0x1000), // fw_cfg
    (0x903_0000, 0x1000), // GPIO
    (0xA00_0000, 0x4000), // 32 virtio-mmio transports
    (0x1000_0000, 0x2F00_0000), // PCIe MMIO and I/O windows
    (0x40_1000_0000, 0x1000_0000), // PCIe ECAM
    (0x80_0000_0000, 0x80_0000_0000), // PCIe high MMIO
];

#[test]
fn qemu_s_tree_reads_as_the_machine_kcore_is_built_for() {
    let ram = Ram::with(TREE);
    let m = el2_fdt::read(&ram, RAM_BASE, KCORE_UART).expect("QEMU's tree reads");
    assert_eq!((m.ram_base, m.ram_base + m.ram_size), (RAM_BASE, RAM_END));
    assert_eq!(m.cpus, 2);
    assert_eq!(&m.mpidr[..2], &[0, 1]);
    assert_eq!(&m.mmio[..m.mmio_num], &HOST_DEVICES);
    // Neither KCore's UART nor the GIC's hypervisor interfaces (0x803_0000, 0x804_0000).
    for pa in [KCORE_UART, 0x803_0000, 0x804_0000, 0] {
        assert!(
            !m.mmio[..m.mmio_num]
                .iter()
                .any(|&(b, n)| b <= pa && pa < b + n),
            "{pa:#x} given to the host"
        );
    }
    // Read as if KCore's UART were elsewhere, the second PL011 is a host device.
    let m = el2_fdt::read(&ram, RAM_BASE, 0x1234_0000).unwrap();
    assert!(m.mmio[..m.mmio_num]
        .iter()
        .any(|&(b, n)| b <= KCORE_UART && KCORE_UART < b + n));
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn the_host_s_tree_hides_kcore_and_carries_linux_s_boot_parameters() {
    let ram = Ram::with(TREE);
    let cmdline = b"console=ttyAMA0 rdinit=/init";
    let at = RAM_BASE + 0x1F_0000;
    for (i, c) in cmdline.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        ram.write64(at + 8 * i as u64, u64::from_le_bytes(w));
    }
    let linux = LinuxBoot {
        cmdline: at,
        cmdline_len: cmdline.len() as u64,
        initrd_start: 0x5000_1000,
        initrd_end: 0x501C_46A8,
    };
    let dst = RAM_BASE + 0x10_0000;
    assert_eq!(HOST_DTB - RAM_BASE, 0x10_0000);
    let n = el2_fdt::write_host(
        &ram,
        RAM_BASE,
        dst,
        0xF_0000,
        KCORE_BASE,
        KCORE_UART,
        Some(linux),
    )
    .expect("the host's tree is written");
    assert!(
        n < HOST_DTB_MAX && n as usize > TREE.len() - 200,
        "{n} bytes"
    );
    let host = ram.bytes(dst, n);
    // The host's tree reads back: RAM ends where KCore's region starts, the same CPUs and
    // devices, and no KCore UART even to a reader that does not know it is KCore's.
    let m = el2_fdt::read(&ram, dst, 0x1234_0000).expect("the host's tree reads");
    assert_eq!(
        (m.ram_base, m.ram_base + m.ram_size),
        (RAM_BASE, KCORE_BASE)
    );
    assert_eq!((m.cpus, &m.mmio[..m.mmio_num]), (2, &HOST_DEVICES[..]));
    assert!(find(&host, b"pl011@9040000").is_none());
    assert!(find(&host, b"/pl011@9040000").is_none(), "the alias stays");
    assert!(find(&host, b"/pl011@9000000").is_some());
    // /chosen: the command line (NUL-terminated) and the initramfs, big-endian.
    let mut c = cmdline.to_vec();
    c.push(0);
    assert!(find(&host, &c).is_some());
    for v in [linux.initrd_start, linux.initrd_end] {
        assert!(find(&host, &v.to_be_bytes()).is_some(), "{v:#x}");
    }
    for s in [
        &b"bootargs\0"[..],
        b"linux,initrd-start\0",
        b"linux,initrd-end\0",
    ] {
        assert!(find(&host, s).is_some());
    }
    // The host stub's tree: no /chosen additions.
    let n2 =
        el2_fdt::write_host(&ram, RAM_BASE, dst, 0xF_0000, KCORE_BASE, KCORE_UART, None).unwrap();
    assert!(find(&ram.bytes(dst, n2), &c).is_none());
    // No room, or overlapping QEMU's tree: refused.
    assert!(el2_fdt::write_host(&ram, RAM_BASE, dst, 64, KCORE_BASE, KCORE_UART, None).is_err());
    assert!(el2_fdt::write_host(
        &ram,
        RAM_BASE,
        RAM_BASE + 8,
        0xF_0000,
        KCORE_BASE,
        KCORE_UART,
        None
    )
    .is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]
    /// A tree with bytes changed or cut short is read and rewritten without a panic: refused,
    /// or read as some machine whose ranges are still sorted, page-aligned and disjoint.
    #[test]
    fn a_damaged_tree_never_panics(
        flips in prop::collection::vec((0usize..TREE.len(), any::<u8>()), 1..8),
        cut in prop::option::of(0usize..TREE.len()),
    ) {
        let mut t = TREE.to_vec();
        for (i, b) in flips {
            t[i] = b;
        }
        if let Some(c) = cut {
            t.truncate(c);
        }
        let ram = Ram::with(&t);
        if let Some(m) = el2_fdt::read(&ram, RAM_BASE, KCORE_UART) {
            let r = &m.mmio[..m.mmio_num];
            prop_assert!(m.cpus <= el2_fdt::MAX_CPUS);
            for w in r.windows(2) {
                prop_assert!(w[0].0 + w[0].1 < w[1].0);
            }
            for &(b, n) in r {
                prop_assert!(b % 4096 == 0 && n % 4096 == 0 && n > 0 && b >= 4096);
            }
        }
        let _ = el2_fdt::write_host(&ram, RAM_BASE, RAM_BASE + 0x10_0000, 0xF_0000, KCORE_BASE, KCORE_UART, None);
    }
}

#[test]
fn a_gicv3_or_a_second_boot_cpu_tree_is_refused_or_named() {
    // The same tree with its GIC called a GICv3: refused (KCore knows GICv2's layout only).
    let mut t = TREE.to_vec();
    let at = find(&t, b"arm,cortex-a15-gic\0").expect("the GIC's compatible");
    let mut v3 = b"arm,gic-v3".to_vec();
    v3.resize("arm,cortex-a15-gic".len(), 0);
    t[at..at + v3.len()].copy_from_slice(&v3);
    assert!(el2_fdt::read(&Ram::with(&t), RAM_BASE, KCORE_UART).is_none());
    // Untouched, the CPUs' MPIDRs are listed in order (KCore checks the first is its own).
    let m = el2_fdt::read(&Ram::with(TREE), RAM_BASE, KCORE_UART).unwrap();
    assert_eq!(&m.mpidr[..m.cpus], &[0, 1]);
}
