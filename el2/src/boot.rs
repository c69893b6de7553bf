//! Bring-up: the boot CPU from QEMU's entry, the others through the PSCI relay.

use crate::frame::TrapFrame;
use crate::hw::lock::TicketLock;
use crate::hw::percpu::{self, MAX_CPUS};
use crate::hw::{mmu, psci, regs, uart};
use crate::platform::*;
#[cfg(feature = "trace")]
use crate::trace;
use crate::{console, fdt, kcore_glue, kprintln};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// SPSR_EL2 for entering EL1: EL1h, DAIF masked.
const SPSR_EL1H: u64 = 0x3C5;
/// SCTLR_EL1 for a world that starts: RES1 bits, MMU and caches off.
const SCTLR_EL1_RESET: u64 = 0x30D0_0800;

/// VTCR_EL2, the same on every CPU.
static VTCR: AtomicU64 = AtomicU64::new(0);
static CPUS: AtomicUsize = AtomicUsize::new(1);
/// Each CPU's MPIDR affinity, as the device tree lists them (PSCI CPU_ON names CPUs by it).
static MPIDR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: where the host asked CPU_ON to start it (entry, context id).
static HOST_START: TicketLock<[Option<(u64, u64)>; MAX_CPUS]> = TicketLock::new([None; MAX_CPUS]);

pub fn primary(x0: u64) -> ! {
    let mmfr0 = regs::id_aa64mmfr0();
    mmu::build();
    mmu::enable(mmfr0);
    console::locking_on();
    uart::init();
    let (img, text_end, img_end) = percpu::image_bounds();
    kprintln!(
        "corevisor KCore at EL{} on MIDR {:#x}, ID_AA64MMFR0 {:#x} ({} PA bits); image [{:#x}, {:#x}), code up to {:#x}, read-only data up to {:#x}",
        regs::current_el(),
        regs::midr(),
        mmfr0,
        mmu::pa_bits(mmfr0).unwrap_or(0),
        img,
        img_end,
        text_end,
        percpu::rodata_end()
    );
    // The machine must be the one this image is laid out for (docs/el2.md): the device
    // tree QEMU passes (x0, or the base of RAM for an ELF kernel).
    let (dtb, m) = [x0, RAM_BASE]
        .into_iter()
        .find_map(|pa| fdt::read(pa, UART_BASE).map(|m| (pa, m)))
        .unwrap_or_else(|| {
            crate::panic::stop(format_args!(
                "no device tree KCore can read at {x0:#x} or {RAM_BASE:#x}"
            ))
        });
    if m.ram_base != RAM_BASE || m.ram_base + m.ram_size != RAM_END {
        crate::panic::stop(format_args!(
            "RAM is [{:#x}, {:#x}); this KCore is built for [{RAM_BASE:#x}, {RAM_END:#x}) (qemu -m 2G)",
            m.ram_base,
            m.ram_base + m.ram_size
        ));
    }
    if m.cpus == 0 || m.cpus > MAX_CPUS {
        crate::panic::stop(format_args!(
            "{} CPUs; KCore supports 1 to {MAX_CPUS}",
            m.cpus
        ));
    }
    let devices = &m.mmio[..m.mmio_num];
    if let Some(&(b, n)) = devices
        .iter()
        .find(|&&(b, n)| b < RAM_END && b + n > RAM_BASE || b <= UART_BASE && UART_BASE < b + n)
    {
        crate::panic::stop(format_args!(
            "the device tree gives the host a device range [{b:#x}, {:#x}) over RAM or KCore's UART",
            b + n
        ));
    }
    // CPU 0 (this one) must be the tree's first CPU, and no two CPUs may share an MPIDR:
    // CPU_ON names a CPU by it, and KCore's CPU i is the tree's i-th.
    let cpus = &m.mpidr[..m.cpus];
    if cpus[0] != regs::mpidr() & 0xFF_00FF_FFFF
        || (1..cpus.len()).any(|i| cpus[..i].contains(&cpus[i]))
    {
        crate::panic::stop(format_args!(
            "the device tree's CPUs {cpus:#x?} do not start with this one ({:#x}) or repeat an MPIDR",
            regs::mpidr()
        ));
    }
    CPUS.store(m.cpus, Ordering::Relaxed);
    for (slot, &mpidr) in MPIDR.iter().zip(&m.mpidr[..m.cpus]) {
        slot.store(mpidr, Ordering::Relaxed);
    }
    let Some((vtcr, ipa_bits)) = mmu::vtcr(mmfr0) else {
        crate::panic::stop(format_args!(
            "the CPU has fewer than 40 PA bits; kcore's 4-level stage 2 needs at least 40"
        ))
    };
    VTCR.store(vtcr, Ordering::Relaxed);
    let n = (regs::pmcr() >> 11) & 0x1F;
    let features = crate::cpu_features::detect();
    kprintln!(
        "CPU features beyond the seed: {} (the host's; trapped for VMs but MOPS: docs/el2.md)",
        crate::cpu_features::names(features)
    );
    if let Err(e) = kcore_glue::boot(m.cpus, devices, n) {
        crate::panic::stop(format_args!(
            "KCore's region cannot hold its state: needs {:#x} bytes, has {:#x}",
            e.needed, e.have
        ))
    }
    #[cfg(feature = "mutants")]
    match kcore_glue::planted() {
        Ok(names) => {
            kprintln!("planted fault(s) in this image: {names} (cargo xtask qemu --mutants)")
        }
        Err(bad) => {
            crate::panic::stop(format_args!("planted fault {bad}: kcore has no such fault"))
        }
    }
    let (meta, pt, smmu, host_vttbr) = kcore_glue::describe();
    kprintln!(
        "RAM [{RAM_BASE:#x}, {RAM_END:#x}), {} CPUs; KCore's region [{KCORE_BASE:#x}, {RAM_END:#x}): metadata at {meta:#x}, SMMU pool at {smmu:#x}, stage-2 pools at {pt:#x}",
        m.cpus
    );
    for &(b, n) in devices {
        kprintln!(
            "host device range [{b:#x}, {:#x}) (from the device tree)",
            b + n
        );
    }
    kprintln!(
        "VTCR_EL2 {vtcr:#x} ({ipa_bits}-bit IPA, 4 KiB granule, walks from level 0); host VTTBR_EL2 {host_vttbr:#x}; host stage-2 faults run on several CPUs at once inside kcore, every other entry alone"
    );
    let linux = linux_boot();
    match fdt::write_host(dtb, HOST_DTB, HOST_DTB_MAX, KCORE_BASE, UART_BASE, linux) {
        Ok(size) => kprintln!(
            "host device tree at {HOST_DTB:#x} ({size} bytes): QEMU's from {dtb:#x}, /memory [{RAM_BASE:#x}, {KCORE_BASE:#x}), KCore's UART {UART_BASE:#x} removed{}",
            if linux.is_some() { ", /chosen bootargs and initramfs" } else { "" }
        ),
        Err(e) => crate::panic::stop(format_args!("the host's device tree: {e}")),
    }
    #[cfg(feature = "trace")]
    trace::header(m.cpus, RAM_BASE, RAM_END, KCORE_BASE, devices);
    let what = if linux.is_some() { "Linux" } else { "the host" };
    enter_host(0, HOST_ENTRY, HOST_DTB, || {
        kprintln!(
            "cpu 0: entering {what} at {HOST_ENTRY:#x} (EL1h, x0 = device tree {HOST_DTB:#x})"
        )
    })
}

/// A Linux host's boot parameters, when `cargo xtask linux` loaded its bundle
/// (el2_abi::linux) and an arm64 `Image` at HOST_ENTRY; `None` for the host stub.
fn linux_boot() -> Option<fdt::LinuxBoot> {
    use el2_abi::linux::*;
    use el2_abi::map::LINUX_BUNDLE;
    if crate::hw::phys::read64(LINUX_BUNDLE) != MAGIC {
        return None;
    }
    let image_magic = crate::hw::phys::read32(HOST_ENTRY + 56);
    let image_size = crate::hw::phys::read64(HOST_ENTRY + 16);
    let initrd = crate::hw::phys::read64(LINUX_BUNDLE + 8);
    let cmdline_len = crate::hw::phys::read64(LINUX_BUNDLE + 16);
    let initrd_start = LINUX_BUNDLE + INITRD_OFFSET;
    if image_magic != IMAGE_MAGIC
        || cmdline_len >= CMDLINE_MAX
        || HOST_ENTRY + image_size > LINUX_BUNDLE
        || initrd > KCORE_BASE - initrd_start
    {
        crate::panic::stop(format_args!(
            "a Linux bundle at {LINUX_BUNDLE:#x} KCore cannot boot: Image magic {image_magic:#x}, Image {image_size:#x} bytes, initramfs {initrd:#x} bytes, command line {cmdline_len} bytes"
        ));
    }
    kprintln!(
        "Linux Image at {HOST_ENTRY:#x} ({image_size:#x} bytes with its BSS), initramfs [{initrd_start:#x}, {:#x})",
        initrd_start + initrd
    );
    Some(fdt::LinuxBoot {
        cmdline: LINUX_BUNDLE + CMDLINE_OFFSET,
        cmdline_len,
        initrd_start,
        initrd_end: initrd_start + initrd,
    })
}

/// EL2 and EL1 state of a CPU about to enter the host for the first time (`frame`: its own).
fn cpu_init(frame: &mut TrapFrame) {
    regs::set_vbar_el2(core::ptr::addr_of!(crate::hw::asm::el2_vectors) as u64);
    regs::set_vtcr(VTCR.load(Ordering::Relaxed));
    regs::set_vpidr(regs::midr());
    regs::set_cntvoff(0);
    regs::set_sctlr_el1(SCTLR_EL1_RESET);
    regs::set_cpacr_el1(3 << 20);
    crate::cpu_features::init_cpu();
    kcore_glue::cpu_init(frame);
    regs::isb();
    regs::tlbi_all_local();
}

/// This CPU (`cpu`) enters the host at `entry` with `x0`, after `say` (its log line).
fn enter_host(cpu: usize, entry: u64, x0: u64, say: impl FnOnce()) -> ! {
    percpu::enter_lower(cpu, |f| {
        cpu_init(f);
        say();
        kcore_glue::enter_host_regs(f, entry, SPSR_EL1H, x0);
    })
}

/// PSCI CPU_ON from the host on `cpu`: start `target` in KCore, which enters the host at
/// `entry` with `context` in x0. Returns the PSCI status for the host.
pub fn cpu_on(cpu: usize, target: u64, entry: u64, context: u64) -> u64 {
    // PSCI 1.1 §5.1.4: target_cpu is MPIDR's Aff3..Aff0 (bits 39:32, 23:0).
    let aff = target & 0xFF_00FF_FFFF;
    let Some(idx) = (0..CPUS.load(Ordering::Relaxed))
        .find(|&i| MPIDR[i].load(Ordering::Relaxed) == aff && target == aff)
    else {
        return el2_abi::psci::INVALID_PARAMETERS;
    };
    HOST_START.lock()[idx] = Some((entry, context));
    let r = psci::smc(
        el2_abi::psci::CPU_ON,
        target,
        core::ptr::addr_of!(crate::hw::asm::_start_secondary) as u64,
        idx as u64,
    );
    kprintln!(
        "psci: cpu {cpu} CPU_ON cpu {idx} at host entry {entry:#x} (relayed, KCore first): status {}",
        r as i64
    );
    r
}

pub fn secondary(cpu: usize) -> ! {
    mmu::enable(regs::id_aa64mmfr0());
    let Some((entry, context)) = HOST_START.lock()[cpu].take() else {
        crate::panic::stop(format_args!(
            "cpu {cpu} started without a CPU_ON from the host"
        ))
    };
    enter_host(cpu, entry, context, || {
        kprintln!(
            "cpu {cpu}: up in KCore (MPIDR {:#x}); entering the host at {entry:#x}",
            regs::mpidr()
        )
    })
}
