//! A QEMU TCG plugin (QEMU docs, "QEMU TCG Plugins") that counts the instructions every
//! guest CPU executes, from reset to QEMU's exit, and writes the total to the file named
//! by its `out=` argument: `cargo xtask linux` compares a boot under KCore with the same
//! boot without it.
//!
//! Counting is per translated block: each block entered adds its instruction count, so a
//! block left early by an exception also counts the instructions after the exception (at
//! most a block's length each time; QEMU's own `-icount` is exact). The error only raises a
//! count, and more for the run that takes more exceptions (KCore's: its host stage-2 faults).
//!
//! The plugin ABI is C: QEMU `dlopen`s this library, checks `qemu_plugin_version`, calls
//! `qemu_plugin_install`, and resolves the `qemu_plugin_*` functions below against its own
//! exported symbols.

#![allow(non_upper_case_globals)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The plugin API version this plugin is written to (QEMU accepts a range).
#[no_mangle]
pub static qemu_plugin_version: c_int = 2;

type PluginId = u64;

/// QEMU's opaque translation block.
#[repr(C)]
pub struct Tb {
    _private: [u8; 0],
}

/// `QEMU_PLUGIN_CB_NO_REGS`: the callback reads no guest register.
const CB_NO_REGS: c_int = 0;

extern "C" {
    fn qemu_plugin_register_vcpu_tb_trans_cb(id: PluginId, cb: extern "C" fn(PluginId, *mut Tb));
    fn qemu_plugin_tb_n_insns(tb: *const Tb) -> usize;
    fn qemu_plugin_register_vcpu_tb_exec_cb(
        tb: *mut Tb,
        cb: extern "C" fn(u32, *mut c_void),
        flags: c_int,
        userdata: *mut c_void,
    );
    fn qemu_plugin_register_atexit_cb(
        id: PluginId,
        cb: extern "C" fn(PluginId, *mut c_void),
        userdata: *mut c_void,
    );
}

static INSNS: AtomicU64 = AtomicU64::new(0);
static OUT: OnceLock<String> = OnceLock::new();

/// A block runs: its instructions (the callback's user data) are added.
extern "C" fn block_runs(_vcpu: u32, insns: *mut c_void) {
    INSNS.fetch_add(insns as u64, Ordering::Relaxed);
}

/// A block is translated: count it each time it runs.
extern "C" fn block_translated(_id: PluginId, tb: *mut Tb) {
    // SAFETY: `tb` is the block QEMU is translating, valid during this callback, which is
    // where the plugin API allows registering its execution callback.
    unsafe {
        let n = qemu_plugin_tb_n_insns(tb);
        qemu_plugin_register_vcpu_tb_exec_cb(tb, block_runs, CB_NO_REGS, n as *mut c_void);
    }
}

extern "C" fn at_exit(_id: PluginId, _: *mut c_void) {
    let n = INSNS.load(Ordering::Relaxed);
    if let Some(path) = OUT.get() {
        if let Err(e) = std::fs::write(path, format!("{n}\n")) {
            eprintln!("qemu-icount: {path}: {e}");
        }
    }
}

/// # Safety
/// Called by QEMU once, with `argc` NUL-terminated arguments in `argv`.
#[no_mangle]
pub unsafe extern "C" fn qemu_plugin_install(
    id: PluginId,
    _info: *const c_void,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    for i in 0..argc.max(0) as usize {
        // SAFETY: QEMU passes `argc` valid C strings.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) }.to_string_lossy();
        match arg.strip_prefix("out=") {
            Some(path) => {
                let _ = OUT.set(path.to_string());
            }
            None => {
                eprintln!("qemu-icount: unknown argument {arg} (expected out=PATH)");
                return -1;
            }
        }
    }
    // SAFETY: registering callbacks with the id QEMU gave, from the install function.
    unsafe {
        qemu_plugin_register_vcpu_tb_trans_cb(id, block_translated);
        qemu_plugin_register_atexit_cb(id, at_exit, std::ptr::null_mut());
    }
    0
}
