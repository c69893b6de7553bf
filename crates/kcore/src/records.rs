//! The records KCore keeps in its own memory and `state` holds under its locks: each VM's
//! record and the allocators (the seed's `VMInfo` and `CoreData`), and the export state.
//! Only the data lives here, below `state`; the operations on it are in `vm_info` and
//! `trap`, which re-export these at their old paths (`vm_info::VmInfo`, `trap::Exports`).

use crate::consts::*;
#[cfg(feature = "crypto")]
use crate::crypto::ExportHeader;

pub const VCPU_PER_VM: usize = 8;
pub const MAX_LOAD_INFO_NUM: usize = 5;
pub const ACTIVE: u32 = 5;
pub const REMAP_START: u64 = 0x200_0000;
pub const REMAP_END: u64 = 0x400_0000;
/// Where the host-shared `struct kvm` / `struct kvm_vcpu` records are (the seed's
/// `shared_kvm` / `shared_vcpu`; same fixed layout as the model's `am.rs`).
pub const SHARED_DATA_START: u64 = 0x4000_0000;

pub const fn shared_kvm(vmid: u32) -> u64 {
    SHARED_DATA_START + vmid as u64 * 0x1000
}

pub const fn shared_vcpu(vmid: u32, vcpu: u32) -> u64 {
    SHARED_DATA_START + 0x1000 * (COREVISOR as u64 + 2) + (vmid as u64 * 8 + vcpu as u64) * 0x1000
}

/// One VM's record (`VS` and `VB` of the seed's `VMInfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmInfo {
    pub state: u32,
    pub kvm: u64,
    pub vcpu_state: [u32; VCPU_PER_VM],
    pub vcpu: [u64; VCPU_PER_VM],
    pub next_load_info: u32,
    pub load_addr: [u64; MAX_LOAD_INFO_NUM],
    pub load_size: [u64; MAX_LOAD_INFO_NUM],
    pub remap_addr: [u64; MAX_LOAD_INFO_NUM],
    pub mapped_pages: [u64; MAX_LOAD_INFO_NUM],
    pub inc_exe: u32,
}

impl VmInfo {
    pub const EMPTY: VmInfo = VmInfo {
        state: UNUSED,
        kvm: 0,
        vcpu_state: [UNUSED; VCPU_PER_VM],
        vcpu: [0; VCPU_PER_VM],
        next_load_info: 0,
        load_addr: [0; MAX_LOAD_INFO_NUM],
        load_size: [0; MAX_LOAD_INFO_NUM],
        remap_addr: [0; MAX_LOAD_INFO_NUM],
        mapped_pages: [0; MAX_LOAD_INFO_NUM],
        inc_exe: 0,
    };
}

/// The seed's `CoreData`: the vmid and remap-window allocators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreData {
    pub next_vmid: u32,
    pub next_remap_ptr: u64,
}

impl CoreData {
    pub const BOOT: CoreData = CoreData {
        next_vmid: 1,
        next_remap_ptr: REMAP_START,
    };
}

/// Exports whose headers KCore keeps (a handle older than this many exports is dead).
#[cfg(feature = "crypto")]
pub const EXPORT_SLOTS: usize = 64;

/// KCore's export state.
#[cfg(feature = "crypto")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exports {
    pub key: [u8; 32],
    /// The next export's sequence number (= handle).
    pub next_seq: u64,
    /// Header of export `seq` at `seq % EXPORT_SLOTS`, while it may still be imported.
    pub slots: [Option<ExportHeader>; EXPORT_SLOTS],
}

#[cfg(feature = "crypto")]
impl Exports {
    /// A key fixed at boot (the simulator's; an EL2 build derives it from the platform).
    pub const fn boot(key: [u8; 32]) -> Self {
        Exports {
            key,
            next_seq: 0,
            slots: [None; EXPORT_SLOTS],
        }
    }
}

/// Export state of a build without cryptography: nothing.
#[cfg(not(feature = "crypto"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exports;

#[cfg(not(feature = "crypto"))]
impl Exports {
    pub const fn boot(_key: [u8; 32]) -> Self {
        Exports
    }
}
