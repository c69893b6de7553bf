//! Shared helpers for the engine-driven tests: build steps, run them, read the state.
#![allow(dead_code)]

use corevisor_check::engine::{ModelMachine, Outcome, StepReport};
use corevisor_sim::scenario::{Action, HvcCall, HvcName, MapProposal, ShareOp, Step};
use corevisor_spec::profile::{Profile, ProfileKind};
use corevisor_spec::{Machine, Z};

pub const KINDS: [ProfileKind; 2] = [ProfileKind::Seed, ProfileKind::Arm];

pub fn machine(kind: ProfileKind) -> ModelMachine {
    ModelMachine::new(*Profile::of(kind), Machine::default())
}

/// A machine with host RAM low enough that seed-profile host faults can name it (10 MiB
/// at 4 MiB); KCore's region above it is large enough for the seed's pools, so it spans the
/// default device addresses: this machine has no SMMU and no device.
pub fn low_machine(kind: ProfileKind) -> ModelMachine {
    ModelMachine::new(
        *Profile::of(kind),
        Machine {
            ram_base: 0x40_0000,
            ram_mib: 570,
            kcore_mib: 560,
            smmus: 0,
            mmio: vec![],
            ..Machine::default()
        },
    )
}

pub fn step(cpu: Z, action: Action) -> Step {
    Step::new(cpu, action)
}

pub fn name(n: &str) -> HvcName {
    HvcName::parse(n).unwrap_or_else(|| panic!("no hypercall {n}"))
}

pub fn hvc(m: &mut ModelMachine, n: &str, args: &[Z]) -> StepReport {
    hvc_on(m, 0, n, args)
}

pub fn hvc_on(m: &mut ModelMachine, cpu: Z, n: &str, args: &[Z]) -> StepReport {
    m.step(&step(
        cpu,
        Action::Hvc {
            call: HvcCall::Named(name(n)),
            args: args.to_vec(),
        },
    ))
    .unwrap()
}

pub fn ok(r: &StepReport) {
    assert_eq!(r.result, Outcome::Ok, "{} should succeed", r.what);
}

pub fn run(m: &mut ModelMachine, cpu: Z, vm: Z, vcpu: Z, map: Option<(Z, Z, Z)>) -> StepReport {
    let map = map.map(|(gpa, pfn, level)| MapProposal {
        gpa,
        pte: pfn * 4096,
        level,
    });
    m.step(&step(
        cpu,
        Action::VcpuRun {
            vm,
            vcpu,
            map,
            pc: None,
        },
    ))
    .unwrap()
}

pub fn act(m: &mut ModelMachine, cpu: Z, a: Action) -> StepReport {
    m.step(&step(cpu, a)).unwrap()
}

pub fn grant(m: &mut ModelMachine, cpu: Z, gpa: Z, size: Z, revoke: bool) -> StepReport {
    let op = if revoke {
        ShareOp::Revoke
    } else {
        ShareOp::Grant
    };
    act(m, cpu, Action::GuestHvc { op, gpa, size })
}

pub const RAM: Z = 0x4000_0000;
pub const IMAGE_PA: Z = 0x4020_0000;
/// Below 2^28: the seed bounds `load_addr + size` by `is_pfn` (§7.2.15).
pub const LOAD: Z = 0x0800_0000;

/// Registers VM 1 with vCPU 0 and a two-page image at IMAGE_PA (2 MiB aligned).
pub fn ready_vm(m: &mut ModelMachine) {
    ready_vm_at(m, IMAGE_PA);
}

/// As `ready_vm`, with the image at `image_pa` (2 MiB aligned, host RAM).
pub fn ready_vm_at(m: &mut ModelMachine, image_pa: Z) {
    ok(&hvc(m, "REGISTER_KVM", &[]));
    ok(&hvc(m, "REGISTER_VCPU", &[1, 0]));
    ok(&hvc(m, "SET_BOOT_INFO", &[1, LOAD, 8192]));
    ok(&hvc(m, "REMAP_VM_IMAGE", &[1, image_pa / 4096, 0]));
    ok(&hvc(m, "REMAP_VM_IMAGE", &[1, image_pa / 4096 + 1, 0]));
}

/// `ready_vm`, verified, and its vCPU 0 running on CPU 1.
pub fn running_vm(m: &mut ModelMachine) {
    ready_vm(m);
    ok(&hvc(m, "VERIFY_VM_IMAGE", &[1]));
    ok(&run(m, 1, 1, 0, None));
}
