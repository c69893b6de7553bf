//! What the EL1 programs on QEMU share with KCore: hypercall numbers (docs/kcore-abi.md),
//! the EL2 platform's own calls (PSCI, the console service; docs/el2.md), and the memory
//! map of the QEMU run.
#![no_std]

/// Host hypercalls (`HVC #0`, x0 = number; docs/kcore-abi.md).
pub mod hvc {
    // The numbers are kcore's own (one definition: crates/kcore/src/consts.rs).
    pub use corevisor_kcore::consts::hvc::*;
    /// Guest hypercalls: share / unshare `[x2, x2 + x3)` with the host.
    pub const GUEST_SHARE: u64 = KVM_SET_DESC_PFN;
    pub const GUEST_UNSHARE: u64 = KVM_UNSET_DESC_PFN;
    /// A guest hypercall kcore does not serve: it exits to the host (the round-trip
    /// benchmark's, as SeKVM's "Hypercall": VM -> host -> VM).
    pub const GUEST_PING: u64 = 0x4B56_0001;

    /// Calls 0..32: name and how many argument registers (x1...) each reads.
    const TABLE: [(&str, u8); 32] = {
        let mut t = [("?", 5u8); 32];
        t[TIMER_SET_CNTVOFF as usize] = ("TIMER_SET_CNTVOFF", 0);
        t[VCPU_RUN as usize] = ("VCPU_RUN", 9);
        t[CLEAR_VM_S2_RANGE as usize] = ("CLEAR_VM_S2_RANGE", 3);
        t[SET_BOOT_INFO as usize] = ("SET_BOOT_INFO", 3);
        t[REMAP_VM_IMAGE as usize] = ("REMAP_VM_IMAGE", 3);
        t[VERIFY_VM_IMAGE as usize] = ("VERIFY_VM_IMAGE", 9);
        t[REGISTER_KVM as usize] = ("REGISTER_KVM", 0);
        t[REGISTER_VCPU as usize] = ("REGISTER_VCPU", 2);
        t[ENCRYPT_BUF as usize] = ("ENCRYPT_BUF", 3);
        t[DECRYPT_BUF as usize] = ("DECRYPT_BUF", 3);
        t[SAVE_CRYPT_VCPU as usize] = ("SAVE_CRYPT_VCPU", 3);
        t[SMMU_FREE_PGD as usize] = ("SMMU_FREE_PGD", 2);
        t[SMMU_ALLOC_PGD as usize] = ("SMMU_ALLOC_PGD", 3);
        t[SMMU_LPAE_MAP as usize] = ("SMMU_LPAE_MAP", 5);
        t[SMMU_LPAE_IOVA_TO_PHYS as usize] = ("SMMU_LPAE_IOVA_TO_PHYS", 3);
        t[SMMU_CLEAR as usize] = ("SMMU_CLEAR", 3);
        t[PHYS_ADDR_IOREMAP as usize] = ("PHYS_ADDR_IOREMAP", 4);
        t[LOAD_CRYPT_VCPU as usize] = ("LOAD_CRYPT_VCPU", 4);
        t
    };

    /// The call's name and how many argument registers (x1...) it reads (unknown calls:
    /// "?", and x1..x5 are shown).
    pub fn describe(n: u64) -> (&'static str, usize) {
        let (name, args) = TABLE.get(n as usize).copied().unwrap_or(("?", 5));
        (name, args as usize)
    }
}

/// PSCI 1.1 function ids (Arm DEN0022). The host's calls go through KCore's relay.
pub mod psci {
    pub const VERSION: u64 = 0x8400_0000;
    pub const CPU_OFF: u64 = 0x8400_0002;
    pub const CPU_ON: u64 = 0xC400_0003;
    pub const AFFINITY_INFO: u64 = 0xC400_0004;
    pub const SYSTEM_OFF: u64 = 0x8400_0008;
    pub const SYSTEM_RESET: u64 = 0x8400_0009;
    pub const FEATURES: u64 = 0x8400_000A;
    pub const NOT_SUPPORTED: u64 = -1i64 as u64;
    pub const INVALID_PARAMETERS: u64 = -2i64 as u64;
}

/// KCore's console service (SMCCC vendor-specific hypervisor call, OEN 6): x1 = bytes
/// (at most 128), x2..x17 = the bytes, 8 per register, little-endian. KCore prints them as
/// one line prefixed `[host] `. The host has no other way to the console: the UART is KCore's.
pub const CONSOLE_WRITE: u64 = 0xC600_0001;
pub const CONSOLE_MAX: usize = 128;

/// The QEMU run's memory map (docs/el2.md): `-m 2G` at 0x4000_0000.
pub mod map {
    /// QEMU `virt` with `-m 2G`: RAM is [RAM_BASE, RAM_END).
    pub const RAM_BASE: u64 = 0x4000_0000;
    pub const RAM_END: u64 = 0xC000_0000;
    /// KCore's region: the top 256 MiB (the host has the 1,792 MiB below it).
    pub const KCORE_BASE: u64 = 0xB000_0000;
    /// Where KCore writes the host's device tree (QEMU's, edited: docs/el2.md), whose
    /// address the host finds in x0.
    pub const HOST_DTB: u64 = 0x4010_0000;
    /// The most bytes the host's device tree may take (it ends below HOST_ENTRY).
    pub const HOST_DTB_MAX: u64 = 0x10_0000;
    /// Where KCore enters the host stub on the boot CPU (its ELF is linked there; QEMU puts
    /// the device tree in the MiB at RAM_BASE).
    pub const HOST_ENTRY: u64 = 0x4020_0000;
    /// Where QEMU's loader puts the guest bundle (xtask: header, signature, image).
    pub const GUEST_BUNDLE: u64 = 0x4100_0000;
    /// 2 MiB host blocks for VM images: block `k` at `IMAGE_BLOCKS + k * 2 MiB`.
    pub const IMAGE_BLOCKS: u64 = 0x4200_0000;
    /// Host pages for the VMs' faults.
    pub const DATA_PAGES: u64 = 0x4600_0000;
    /// Host pages the host-fault benchmark touches once each.
    pub const BENCH_PAGES: u64 = 0x4800_0000;
    /// A Linux host: its `Image` at HOST_ENTRY, and here the boot bundle `cargo xtask linux`
    /// loads: a header (`linux` below), then the initramfs at `linux::INITRD_OFFSET`.
    pub const LINUX_BUNDLE: u64 = 0x5000_0000;
    /// Where every VM's image loads, and its data pages (the simulator's host model's).
    pub const GUEST_LOAD: u64 = 0x8000_0000;
    pub const GUEST_DATA: u64 = 0x8040_0000;
    /// The guest's emulated device: an IPA below kcore's MAX_MMIO_ADDR that no one maps,
    /// so a guest load from it exits to the host, which gives the value (in x8 of its next
    /// VCPU_RUN) that KCore loads into the guest's target register.
    pub const GUEST_MMIO: u64 = 0x0A00_0000;
    /// What the host's emulated device reads as on vCPU n: this | n.
    pub const GUEST_MMIO_VALUE: u64 = 0x4D4D_494F_0000_0000;
}

/// The Linux boot bundle (`map::LINUX_BUNDLE`): what KCore needs to enter a Linux host as
/// a boot loader would (arm64 booting.rst): the command line and where the initramfs is.
pub mod linux {
    /// "CVLINUX1", little-endian.
    pub const MAGIC: u64 = u64::from_le_bytes(*b"CVLINUX1");
    /// Header words: magic, initramfs bytes, command-line bytes; the command line (no NUL)
    /// from byte `CMDLINE_OFFSET`; the initramfs from byte `INITRD_OFFSET`.
    pub const CMDLINE_OFFSET: u64 = 64;
    pub const CMDLINE_MAX: u64 = 1024;
    pub const INITRD_OFFSET: u64 = 4096;
    /// The arm64 `Image` header's magic ("ARM\x64", at byte 56; booting.rst).
    pub const IMAGE_MAGIC: u32 = 0x644D_5241;
}

/// The guest bundle the host stub loads (written by `cargo xtask qemu`).
pub mod bundle {
    /// "CVGUEST1", little-endian.
    pub const MAGIC: u64 = u64::from_le_bytes(*b"CVGUEST1");
    /// Header words: magic, load address, image bytes, demo entry offset, bench entry offset;
    /// the 64-byte Ed25519ph signature at byte 64; the image at byte 4096.
    pub const SIG_OFFSET: u64 = 64;
    pub const IMAGE_OFFSET: u64 = 4096;
    /// The guest's entries, as offsets into its image (el2/guest: a branch at each).
    pub const DEMO_ENTRY: u64 = 0;
    pub const BENCH_ENTRY: u64 = 4;
}

/// The guest image is exactly this long; its checksum covers all of it.
pub const GUEST_IMAGE_BYTES: u64 = 64 * 1024;
/// Iterations of each measured loop.
pub const BENCH_ITERS: u64 = 10_000;

/// FNV-1a over 64-bit words: the checksum the guest computes over its image and the host
/// computes over the bundle.
pub fn checksum(words: impl Iterator<Item = u64>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        h ^= w;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
