//! CPUs as threads. Each simulated CPU is an OS thread running its own host's work (host
//! model macros: create a VM, run it, share, destroy) on its own CPU; the threads share one
//! machine. KCore's handlers run one at a time (a step holds the machine: the core's
//! operations do not yet take their fine-grained ticket locks), and the operating system
//! chooses the interleaving. Every raw step, in the order the threads actually took the
//! machine, runs on the core and on the model beside it and is compared, so each run checks
//! the linearization it happened to produce.

use crate::engine::EngineError;
use crate::lockstep::{CheckedStep, Lockstep};
use corevisor_sim::host::{Driver, HostMacro, HostModel, Raw};
use corevisor_sim::scenario::Step;
use std::sync::{Arc, Mutex};

/// One thread's view of the shared machine: every raw step takes it whole.
struct Shared {
    machine: Arc<Mutex<(Lockstep, Vec<CheckedStep>)>>,
    cpu: i128,
}

impl Driver for Shared {
    fn raw(&mut self, step: &Step, _via: &'static str) -> Result<Raw, String> {
        let mut m = self
            .machine
            .lock()
            .map_err(|_| "another CPU thread panicked".to_string())?;
        let (l, log) = &mut *m;
        let st = Step {
            index: log.len(),
            cpu: self.cpu,
            ..step.clone()
        };
        let r = l.step(&st).map_err(|e| e.0)?;
        let out = Raw {
            outcome: r.core.outcome,
            x0: r.core.x0,
            value: r.core.value,
        };
        log.push(r);
        drop(m);
        std::thread::yield_now();
        Ok(out)
    }
}

/// What one CPU's host does: a VM's whole life with guest program `image`.
fn lifecycle(cpu: i128, image: &str, host: &mut HostModel, d: &mut Shared) -> Result<(), String> {
    let create = HostMacro::CreateVm {
        vcpus: 1,
        image: image.to_string(),
        tamper: false,
        device: None,
    };
    host.exec(cpu, &create, d)?;
    let Some(vm) = host.last_vm() else {
        return Ok(());
    };
    let run = HostMacro::Run {
        vm,
        vcpu: 0,
        steps: None,
    };
    for m in [
        run.clone(),
        HostMacro::Share {
            vm,
            gpa: corevisor_sim::host::DATA_GPA,
            pages: 1,
        },
        run,
        HostMacro::DestroyVm { vm },
    ] {
        host.exec(cpu, &m, d)?;
    }
    Ok(())
}

/// Runs, on CPU `i`, a whole VM lifecycle with guest program `images[i]`, all CPUs at once
/// on the machine `l`. Returns every raw step in the order it ran, with its comparison.
pub fn run_cpus(l: Lockstep, images: &[&'static str]) -> Result<Vec<CheckedStep>, EngineError> {
    let m = &l.model.machine;
    let (ram, kcore) = (m.ram_base as u64, m.kcore_base() as u64);
    let n = images.len() as u64;
    let slice = ((kcore - ram) / n) & !0x1F_FFFF;
    let machine = Arc::new(Mutex::new((l, Vec::new())));
    let handles: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, &image)| {
            let machine = Arc::clone(&machine);
            std::thread::spawn(move || -> Result<(), String> {
                // Each host thread gives its VMs memory from its own slice of host RAM.
                let from = ram + i as u64 * slice;
                let mut host = HostModel::for_region(from, from + slice);
                let mut d = Shared {
                    machine,
                    cpu: i as i128,
                };
                lifecycle(i as i128, image, &mut host, &mut d)
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| EngineError("a CPU thread panicked".into()))?
            .map_err(EngineError)?;
    }
    let (_, log) = Arc::try_unwrap(machine)
        .map_err(|_| EngineError("a CPU thread still holds the machine".into()))?
        .into_inner()
        .map_err(|_| EngineError("a CPU thread panicked".into()))?;
    Ok(log)
}
