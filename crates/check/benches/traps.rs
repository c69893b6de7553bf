//! Trap costs, as ratios measured in one run (ARCHITECTURE.md, "Performance method"): each
//! trap on KCore (on the simulated machine) against the same trap on the reference model,
//! and against the raw memory work of touching one page (512 8-byte reads), the floor any
//! handler that reads a page pays in this simulator.
//!
//! `cargo bench -p corevisor-check --bench traps`

use corevisor_check::engine::ModelMachine;
use corevisor_kcore::hw::Hw;
use corevisor_sim::machine::{CoreMachine, MachineShape};
use corevisor_sim::scenario::{Action, HvcCall, HvcName, Step};
use corevisor_spec::profile::{Profile, ProfileKind};
use corevisor_spec::state::{CtxtRegs, RData};
use corevisor_spec::trap_handler::{
    host_hvc_handler_spec, host_npt_handler_spec, vm_exit_handler_spec,
};
use corevisor_spec::Machine;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

const RAM: u64 = 0x4000_0000;

fn hvc(n: &str, args: &[i128]) -> Step {
    Step::new(
        0,
        Action::Hvc {
            call: HvcCall::Named(HvcName::parse(n).unwrap()),
            args: args.to_vec(),
        },
    )
}

/// VM 1 verified, its vCPU running on CPU 1.
fn setup() -> Vec<Step> {
    let img = (RAM + 0x20_0000) as i128 / 4096;
    vec![
        hvc("REGISTER_KVM", &[]),
        hvc("REGISTER_VCPU", &[1, 0]),
        hvc("SET_BOOT_INFO", &[1, 0x8000_0000, 4096]),
        hvc("REMAP_VM_IMAGE", &[1, img, 0]),
        hvc("VERIFY_VM_IMAGE", &[1]),
        Step::new(
            1,
            Action::VcpuRun {
                vm: 1,
                vcpu: 0,
                map: None,
                pc: None,
            },
        ),
    ]
}

fn core() -> CoreMachine {
    let mut c = CoreMachine::new(MachineShape {
        cpus: 2,
        ram_base: RAM,
        ram_end: RAM + (80 << 20),
        kcore_base: RAM + (56 << 20),
        smmus: 2,
        mmio: MachineShape::default_mmio(2),
    })
    .expect("KCore's region holds its state");
    for s in setup() {
        c.step(&s);
    }
    c
}

fn model() -> ModelMachine {
    let mut m = ModelMachine::new(
        *Profile::of(ProfileKind::Arm),
        Machine {
            ram_mib: 80,
            kcore_mib: 24,
            ..Machine::default()
        },
    );
    for s in setup() {
        m.step(&s).unwrap();
    }
    m
}

/// The spec's state as CPU `cpu` traps with registers set by `f` (the pure entry point is
/// what is timed on the model side: no engine bookkeeping, no invariant checks).
fn model_view(m: &ModelMachine, cpu: usize, f: impl Fn(&mut CtxtRegs)) -> RData {
    let mut v = m.view(cpu);
    f(&mut v.regs.ctxt_regs);
    v
}

fn traps(c: &mut Criterion) {
    let p = Profile::of(ProfileKind::Arm);
    let m = model();
    let share = |r: &mut CtxtRegs| {
        r.ec = 2;
        r.esr_el2 = 0x16 << 26;
        r.x[0] = 0x81000;
        r.x[2] = 0x8000_0000;
        r.x[3] = 4096;
    };
    type Entry = fn(&Profile, &RData) -> Option<RData>;
    let cases: [(&str, Step, RData, Entry); 3] = [
        (
            "host hypercall (TIMER_SET_CNTVOFF)",
            hvc("TIMER_SET_CNTVOFF", &[]),
            model_view(&m, 0, |r| r.x[0] = 7),
            host_hvc_handler_spec,
        ),
        (
            "guest system-register trap",
            Step::new(1, Action::GuestSysreg),
            model_view(&m, 1, |r| {
                r.ec = 2;
                r.esr_el2 = 0x18 << 26;
            }),
            vm_exit_handler_spec,
        ),
        (
            "guest shares a page (GRANT)",
            Step::new(
                1,
                Action::GuestHvc {
                    op: corevisor_sim::scenario::ShareOp::Grant,
                    gpa: 0x8000_0000,
                    size: 4096,
                },
            ),
            model_view(&m, 1, share),
            vm_exit_handler_spec,
        ),
    ];
    for (name, step, view, entry) in cases {
        let mut g = c.benchmark_group(name);
        let mut k = core();
        g.bench_function("core", |b| b.iter(|| k.step(&step)));
        g.bench_function("model", |b| b.iter(|| entry(p, &view).unwrap()));
        g.finish();
    }
    // A host stage-2 fault: on the core each iteration maps a page the host has not touched.
    let mut g = c.benchmark_group("host stage-2 fault (map a host page)");
    let mut k = core();
    let mut next = RAM + 0x100_0000;
    g.bench_function("core", |b| {
        b.iter_batched(
            || {
                next += 4096;
                Step::new(0, Action::HostLoad { addr: next as i128 })
            },
            |s| k.step(&s),
            BatchSize::SmallInput,
        )
    });
    let addr = RAM + 0x100_0000;
    let view = model_view(&m, 0, |r| {
        r.hpfar_el2 = ((addr >> 12) << 4) as i128;
        r.far_el2 = addr as i128;
        r.esr_el2 = (0x24 << 26) | (1 << 24) | (3 << 22) | (1 << 16);
    });
    g.bench_function("model", |b| {
        b.iter(|| host_npt_handler_spec(p, &view).unwrap())
    });
    g.finish();
    let mut g = c.benchmark_group("floor: read one page (512 words) of simulated memory");
    let k = core();
    g.bench_function("sim memory", |b| {
        b.iter(|| (0..512u64).fold(0u64, |a, w| a ^ k.core.hw.read64(RAM + 0x20_0000 + w * 8)))
    });
    g.finish();
}

criterion_group!(benches, traps);
criterion_main!(benches);
