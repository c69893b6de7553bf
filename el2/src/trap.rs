//! Every exception from EL1 lands here (hw/entry.rs). From a VM it is kcore's
//! `vm_exit_handler`. From the host it is one of kcore's entry points (a hypercall, a
//! stage-2 fault) or one of the EL2 platform's own services, which kcore does not model:
//! the PSCI relay (so every CPU enters the host through KCore), the console (the UART is
//! KCore's), and nothing else: any other host trap is a host the platform cannot serve, and
//! KCore stops.

use crate::frame::TrapFrame;
use crate::hw::{psci, regs};
use crate::kcore_glue;
use crate::platform::UART_BASE;
use el2_abi::psci as id;

const EC_WFX: u64 = 0x01;
const EC_HVC64: u64 = 0x16;
const EC_SMC64: u64 = 0x17;
const EC_IABT_LOW: u64 = 0x20;
const EC_DABT_LOW: u64 = 0x24;

/// The vector's kinds (hw/asm.rs).
const SYNC: u64 = 0;
const IRQ: u64 = 1;

pub fn lower(frame: &mut TrapFrame, kind: u64) {
    let cpu = frame.cpu as usize;
    let esr = regs::esr();
    let r = if frame.in_vm != 0 {
        match kind {
            SYNC | IRQ => kcore_glue::vm_exit(frame, esr, kind == IRQ),
            _ => crate::panic::stop(format_args!(
                "cpu {cpu}: asynchronous exception kind {kind} from a VM (esr {esr:#x})"
            )),
        }
    } else if kind != SYNC {
        crate::panic::stop(format_args!(
            "cpu {cpu}: asynchronous exception kind {kind} from the host (esr {esr:#x})"
        ))
    } else {
        host(frame, esr)
    };
    if let Err(s) = r {
        crate::panic::halted(s);
    }
}

fn host(frame: &mut TrapFrame, esr: u64) -> Result<(), kcore_glue::Stop> {
    // kcore's hypercalls first (their numbers are small; PSCI's and the console's have bit
    // 31 set): the measured path tests only that.
    if esr >> 26 == EC_HVC64 && esr & 0xFFFF == 0 && frame.x()[0] >> 31 == 0 {
        return kcore_glue::host_hypercall(frame, esr);
    }
    let cpu = frame.cpu as usize;
    match esr >> 26 {
        EC_HVC64 if esr & 0xFFFF == 0 => {
            let fid = frame.x()[0];
            if is_psci(fid) {
                psci_relay(frame);
                Ok(())
            } else if fid == el2_abi::CONSOLE_WRITE {
                console_write(frame);
                Ok(())
            } else {
                kcore_glue::host_hypercall(frame, esr)
            }
        }
        EC_SMC64 => {
            // A trapped SMC returns to itself (Arm ARM D1.10.1): step over it.
            *frame.elr_mut() += 4;
            if is_psci(frame.x()[0]) {
                psci_relay(frame);
            } else {
                frame.x_mut()[0] = id::NOT_SUPPORTED;
            }
            Ok(())
        }
        EC_DABT_LOW | EC_IABT_LOW => {
            let page = (regs::hpfar() >> 4) << 12;
            if page == UART_BASE {
                uart_access(frame, esr);
                Ok(())
            } else {
                kcore_glue::host_fault(frame, esr)
            }
        }
        EC_WFX => {
            *frame.elr_mut() += 4;
            Ok(())
        }
        ec => crate::panic::stop(format_args!(
            "cpu {cpu}: the host took exception class {ec:#x} to EL2 (esr {esr:#x}, elr {:#x}), which KCore does not serve",
            frame.elr()
        )),
    }
}

fn is_psci(fid: u64) -> bool {
    let f = fid & !(0x4000_0000);
    (0x8400_0000..0x8400_0020).contains(&f)
}

/// The host's PSCI calls, passed to the firmware by KCore: CPU_ON starts the CPU in
/// KCore (which then enters the host at the address the host asked for), CPU_OFF and
/// SYSTEM_OFF/RESET end in the firmware; the rest are answered by it.
#[cold]
#[inline(never)]
fn psci_relay(frame: &mut TrapFrame) {
    let cpu = frame.cpu as usize;
    let [fid, a1, a2, a3] = [frame.x()[0], frame.x()[1], frame.x()[2], frame.x()[3]];
    frame.x_mut()[0] = match fid {
        id::VERSION | id::AFFINITY_INFO => psci::smc(fid, a1, a2, a3),
        id::FEATURES => match a1 {
            id::VERSION
            | id::CPU_ON
            | id::CPU_OFF
            | id::AFFINITY_INFO
            | id::SYSTEM_OFF
            | id::SYSTEM_RESET
            | id::FEATURES => 0,
            _ => id::NOT_SUPPORTED,
        },
        id::CPU_ON => crate::boot::cpu_on(cpu, a1, a2, a3),
        id::CPU_OFF => {
            crate::kprintln!("psci: cpu {cpu} CPU_OFF (relayed)");
            psci::smc(id::CPU_OFF, 0, 0, 0)
        }
        id::SYSTEM_OFF | id::SYSTEM_RESET => {
            crate::kprintln!(
                "psci: cpu {cpu} {} (relayed); host stage-2 faults served: {}",
                if fid == id::SYSTEM_OFF {
                    "SYSTEM_OFF"
                } else {
                    "SYSTEM_RESET"
                },
                kcore_glue::host_faults()
            );
            crate::output::final_line(false, "host SYSTEM_OFF");
            psci::smc(fid, 0, 0, 0)
        }
        _ => id::NOT_SUPPORTED,
    };
}

/// KCore's console service: x1 bytes from x2..x17, printed as one `[host] ` line.
#[cold]
#[inline(never)]
fn console_write(frame: &mut TrapFrame) {
    let x = frame.x();
    let n = (x[1] as usize).min(el2_abi::CONSOLE_MAX);
    let mut line = [0u8; el2_abi::CONSOLE_MAX];
    for (i, b) in line[..n].iter_mut().enumerate() {
        let c = (x[2 + i / 8] >> (8 * (i % 8))) as u8;
        *b = if (0x20..0x7F).contains(&c) { c } else { b'?' };
    }
    let text = core::str::from_utf8(&line[..n]).unwrap_or("?");
    crate::output::flush();
    crate::console::with(|u| {
        use core::fmt::Write;
        let _ = writeln!(u, "[host] {text}");
    });
    frame.x_mut()[0] = 0;
}

/// The host touched the console UART, which is KCore's and never mapped into the host:
/// reads as zero, writes ignored (the host prints through the console service).
#[cold]
#[inline(never)]
fn uart_access(frame: &mut TrapFrame, esr: u64) {
    let isv = esr & (1 << 24) != 0;
    let write = esr & (1 << 6) != 0;
    if isv && !write {
        let rt = ((esr >> 16) & 31) as usize;
        if rt < 31 {
            frame.x_mut()[rt] = 0;
        }
    }
    *frame.elr_mut() += 4;
}
