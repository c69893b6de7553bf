//! The host (KServ) model: the scenario's `host` macro actions, carried out in the real KVM
//! order of hypercalls (implementation-notes §4.2), and the built-in guest programs.
//!
//! A macro expands into raw steps *as it runs*: each raw step goes through a [`Driver`]
//! (the model, the core, or both in lockstep), and what the host does next depends on what
//! came back (the vmid REGISTER_KVM returned, a guest fault to serve). So every raw step a
//! macro takes is checked exactly like a raw step of the file.
//!
//! Guest programs touch only word 0 of each page: the seed models memory one word per page
//! (`flatmem`), and a program meant to be checked against it must stay inside that.

use crate::scenario::{Action, HvcCall, HvcName, MapProposal, Outcome, ShareOp, Step};
use crate::signing::sign_image;

/// The guest programs and the macro actions are plain data a scenario names, so they live
/// below `scenario`, in [`crate::guest`]; re-exported here at their old paths.
pub use crate::guest::{
    parse_macro, program, GuestOp, HostMacro, Program, DATA_GPA, DEVICE_IOVA, LOAD_ADDR,
};

/// Executes raw steps for the host model.
pub trait Driver {
    /// `via`: the macro the step belongs to (`create_vm`, ...).
    fn raw(&mut self, step: &Step, via: &'static str) -> Result<Raw, String>;
}

/// What a raw step returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raw {
    pub outcome: Outcome,
    pub x0: Option<u64>,
    pub value: Option<u64>,
}

/// A VM as the host knows it.
#[derive(Clone, Debug, Default)]
struct HostVm {
    program: Option<Program>,
    /// The 2 MiB host block holding the image (mapped at LOAD_ADDR).
    image_block: u64,
    /// Pages the host gave for guest faults: (gfn, host pa).
    served: Vec<(u64, u64)>,
    /// Host pages given to the VM's devices.
    device_pages: Vec<u64>,
    /// Per vCPU: the next guest op, the running checksum, whether it runs (and where).
    pc: Vec<usize>,
    sum: Vec<u64>,
    on_cpu: Vec<Option<i128>>,
    banks: Vec<(u32, u32)>,
    /// The guest powered itself off (the host saw PSCI SYSTEM_OFF): it never runs again.
    off: bool,
}

/// The host model's state: its VMs and its page allocator.
pub struct HostModel {
    vms: Vec<HostVm>,
    next_vmid: u32,
    /// Next free 2 MiB block for images and next free page for data, in host RAM.
    next_block: u64,
    next_page: u64,
    limit: u64,
}

fn step(cpu: i128, action: Action) -> Step {
    Step::new(cpu, action)
}

fn hvc(cpu: i128, n: HvcName, args: &[u64]) -> Step {
    step(
        cpu,
        Action::Hvc {
            call: HvcCall::Named(n),
            args: args.iter().map(|&a| a as i128).collect(),
        },
    )
}

impl HostModel {
    /// For a machine whose host RAM is `[ram_base, kcore_base)`.
    pub fn new(ram_base: u64, kcore_base: u64) -> Self {
        Self::for_region(ram_base, kcore_base)
    }

    /// A host (thread) that uses only host RAM `[from, to)` for what it gives its VMs, so
    /// several host threads can run side by side.
    pub fn for_region(ram_base: u64, kcore_base: u64) -> Self {
        let first = (ram_base + 0x20_0000) & !0x1F_FFFF;
        let half = first + (((kcore_base - first) / 2) & !0x1F_FFFF);
        HostModel {
            vms: vec![HostVm::default(); 17],
            next_vmid: 1,
            next_block: first,
            next_page: half.max(first),
            limit: kcore_base,
        }
    }

    /// The VM this host created last (its vmid came from REGISTER_KVM).
    pub fn last_vm(&self) -> Option<u32> {
        (self.next_vmid > 1).then(|| self.next_vmid - 1)
    }

    fn block(&mut self) -> Result<u64, String> {
        let b = self.next_block;
        if b + 0x20_0000 > self.next_page.min(self.limit) {
            return Err("the host model ran out of RAM for images".into());
        }
        self.next_block += 0x20_0000;
        Ok(b)
    }

    fn page(&mut self) -> Result<u64, String> {
        let p = self.next_page;
        if p + 4096 > self.limit {
            return Err("the host model ran out of RAM".into());
        }
        self.next_page += 4096;
        Ok(p)
    }

    fn vm(&mut self, vm: u32) -> Result<&mut HostVm, String> {
        self.vms
            .get_mut(vm as usize)
            .filter(|v| v.program.is_some())
            .ok_or(format!("the host never created VM {vm}"))
    }

    /// Carries out one macro on CPU `cpu` through `d`. Stops early (Ok) when a raw step
    /// halts KCore.
    pub fn exec(&mut self, cpu: i128, m: &HostMacro, d: &mut impl Driver) -> Result<(), String> {
        let via = match m {
            HostMacro::CreateVm { .. } => "create_vm",
            HostMacro::Run { .. } => "run",
            HostMacro::Share { .. } => "share",
            HostMacro::AssignDevice { .. } => "assign_device",
            HostMacro::DestroyVm { .. } => "destroy_vm",
        };
        let mut go = |s: Step| -> Result<Option<Raw>, String> {
            let r = d.raw(&s, via)?;
            Ok((r.outcome != Outcome::Halt).then_some(r))
        };
        match m {
            HostMacro::CreateVm {
                vcpus,
                image,
                tamper,
                device,
            } => {
                let prog = program(image).expect("validated");
                let Some(r) = go(hvc(cpu, HvcName::RegisterKvm, &[]))? else {
                    return Ok(());
                };
                let vm = r.x0.unwrap_or(0) as u32;
                self.next_vmid = vm + 1;
                for c in 0..*vcpus {
                    if go(hvc(cpu, HvcName::RegisterVcpu, &[vm as u64, c as u64]))?.is_none() {
                        return Ok(());
                    }
                }
                let base = self.block()?;
                let n = *vcpus as usize;
                let v = self.vms.get_mut(vm as usize).ok_or("vmid out of range")?;
                *v = HostVm {
                    program: Some(prog.clone()),
                    image_block: base,
                    served: vec![],
                    device_pages: vec![],
                    pc: vec![0; n],
                    sum: vec![0; n],
                    on_cpu: vec![None; n],
                    banks: vec![],
                    off: false,
                };
                if let Some((smmu, cb)) = device {
                    let page = self.page()?;
                    if !self.assign(cpu, vm, *smmu, *cb, page, &mut go)? {
                        return Ok(());
                    }
                }
                // The image, word 0 of each page, written by the host into its own pages.
                for (i, w) in prog.image.iter().enumerate() {
                    let a = (base + i as u64 * 4096) as i128;
                    if go(step(
                        cpu,
                        Action::HostStore {
                            addr: a,
                            value: *w as i128,
                        },
                    ))?
                    .is_none()
                    {
                        return Ok(());
                    }
                }
                let size = prog.image.len() as u64 * 4096;
                if go(hvc(
                    cpu,
                    HvcName::SetBootInfo,
                    &[vm as u64, LOAD_ADDR, size],
                ))?
                .is_none()
                {
                    return Ok(());
                }
                for i in 0..prog.image.len() as u64 {
                    if go(hvc(
                        cpu,
                        HvcName::RemapVmImage,
                        &[vm as u64, base / 4096 + i, 0],
                    ))?
                    .is_none()
                    {
                        return Ok(());
                    }
                }
                // The vendor signed the image as built; a tampering host changes it after.
                let bytes: Vec<u8> = prog
                    .image
                    .iter()
                    .flat_map(|w| {
                        let mut page = vec![0u8; 4096];
                        page[..8].copy_from_slice(&w.to_le_bytes());
                        page
                    })
                    .collect();
                let sig = sign_image(&[(LOAD_ADDR, &bytes)]);
                if *tamper {
                    let flipped = (prog.image[0] ^ 1) as i128;
                    if go(step(
                        cpu,
                        Action::HostStore {
                            addr: base as i128,
                            value: flipped,
                        },
                    ))?
                    .is_none()
                    {
                        return Ok(());
                    }
                }
                let mut args = vec![vm as u64];
                args.extend(
                    sig.chunks_exact(8)
                        .map(|c| u64::from_le_bytes(c.try_into().unwrap())),
                );
                let mut s = hvc(cpu, HvcName::VerifyVmImage, &args);
                // The model has no cryptography: it is told the verdict the signature gives.
                s.oracle = vec![if *tamper { 0 } else { 1 }];
                go(s)?;
            }
            HostMacro::AssignDevice { smmu, cb, vm } => {
                let page = self.page()?;
                self.assign(cpu, *vm, *smmu, *cb, page, &mut go)?;
            }
            HostMacro::Run { vm, vcpu, steps } => self.run(cpu, *vm, *vcpu, *steps, &mut go)?,
            HostMacro::Share { vm, gpa, pages } => {
                // The host's virtio backend serves the buffer the guest shared: it reads the
                // request in the host page behind each guest page and writes its reply.
                let v = self.vm(*vm)?.clone();
                for i in 0..*pages as u64 {
                    let Some(pa) = v.backing(gpa / 4096 + i) else {
                        continue;
                    };
                    let Some(r) = go(step(cpu, Action::HostLoad { addr: pa as i128 }))? else {
                        return Ok(());
                    };
                    if r.outcome != Outcome::Ok {
                        continue;
                    }
                    let reply = r.value.unwrap_or(0).wrapping_add(1) as i128;
                    if go(step(
                        cpu,
                        Action::HostStore {
                            addr: pa as i128,
                            value: reply,
                        },
                    ))?
                    .is_none()
                    {
                        return Ok(());
                    }
                }
            }
            HostMacro::DestroyVm { vm } => {
                let v = self.vm(*vm)?.clone();
                for (smmu, cb) in &v.banks {
                    if go(hvc(cpu, HvcName::SmmuFreePgd, &[*cb as u64, *smmu as u64]))?.is_none() {
                        return Ok(());
                    }
                }
                let pages = v
                    .served
                    .iter()
                    .map(|&(_, pa)| (pa, 1))
                    .chain(v.device_pages.iter().map(|&pa| (pa, 1)));
                for (pa, n) in [(v.image_block, 512)].into_iter().chain(pages) {
                    if go(hvc(
                        cpu,
                        HvcName::ClearVmS2Range,
                        &[*vm as u64, pa, n * 4096],
                    ))?
                    .is_none()
                    {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// SMMU_ALLOC_PGD and SMMU_LPAE_MAP of one host page at DEVICE_IOVA (before VERIFY).
    fn assign(
        &mut self,
        cpu: i128,
        vm: u32,
        smmu: u32,
        cb: u32,
        page: u64,
        go: &mut impl FnMut(Step) -> Result<Option<Raw>, String>,
    ) -> Result<bool, String> {
        if go(hvc(
            cpu,
            HvcName::SmmuAllocPgd,
            &[cb as u64, vm as u64, smmu as u64],
        ))?
        .is_none()
        {
            return Ok(false);
        }
        let map = [DEVICE_IOVA, page, 0xC3, cb as u64, smmu as u64];
        if go(hvc(cpu, HvcName::SmmuLpaeMap, &map))?.is_none() {
            return Ok(false);
        }
        if let Some(v) = self.vms.get_mut(vm as usize) {
            v.banks.push((smmu, cb));
            v.device_pages.push(page);
        }
        Ok(true)
    }

    /// Runs vCPU `vcpu` of `vm` on `cpu` for up to `steps` guest ops, serving its faults.
    fn run(
        &mut self,
        cpu: i128,
        vm: u32,
        vcpu: u32,
        steps: Option<u32>,
        go: &mut impl FnMut(Step) -> Result<Option<Raw>, String>,
    ) -> Result<(), String> {
        let c = vcpu as usize;
        let prog = self.vm(vm)?.program.clone().expect("checked");
        if c >= self.vm(vm)?.pc.len() {
            return Err(format!("VM {vm} has no vCPU {vcpu}"));
        }
        if self.vm(vm)?.off {
            return Ok(()); // a host does not run a VM that powered itself off
        }
        let run = |map: Option<MapProposal>| {
            step(
                cpu,
                Action::VcpuRun {
                    vm: vm as i128,
                    vcpu: vcpu as i128,
                    map,
                    pc: None,
                },
            )
        };
        if self.vm(vm)?.on_cpu[c] != Some(cpu) {
            let Some(r) = go(run(None))? else {
                return Ok(());
            };
            if r.outcome != Outcome::Ok {
                return Ok(());
            }
            self.vm(vm)?.on_cpu[c] = Some(cpu);
        }
        let mut budget = steps.unwrap_or(u32::MAX);
        while budget > 0 {
            let (pc, sum) = {
                let v = self.vm(vm)?;
                (v.pc[c], v.sum[c])
            };
            let Some(op) = prog.ops.get(pc).copied() else {
                break;
            };
            let action = match op {
                GuestOp::Load(g) => Action::GuestLoad { gpa: g as i128 },
                GuestOp::Store(g, val) => Action::GuestStore {
                    gpa: g as i128,
                    value: val.unwrap_or(sum) as i128,
                },
                GuestOp::Grant(g, n) => Action::GuestHvc {
                    op: ShareOp::Grant,
                    gpa: g as i128,
                    size: n as i128,
                },
                GuestOp::Revoke(g, n) => Action::GuestHvc {
                    op: ShareOp::Revoke,
                    gpa: g as i128,
                    size: n as i128,
                },
                GuestOp::Wfx => Action::GuestWfx,
                GuestOp::PowerOff => Action::GuestPsciSystemOff,
            };
            let Some(r) = go(step(cpu, action))? else {
                return Ok(());
            };
            match r.outcome {
                Outcome::Fault => {
                    // A stage-2 fault: the vCPU exited; the host gives it a page and resumes.
                    let (GuestOp::Load(g) | GuestOp::Store(g, _)) = op else {
                        return Ok(());
                    };
                    let page = self.page()?;
                    self.vm(vm)?.served.push((g / 4096, page));
                    let map = MapProposal {
                        gpa: (g & !0xFFF) as i128,
                        pte: page as i128,
                        level: 3,
                    };
                    if go(run(Some(map)))?.is_none_or(|r| r.outcome != Outcome::Ok) {
                        self.vm(vm)?.on_cpu[c] = None;
                        return Ok(());
                    }
                    continue;
                }
                Outcome::Ok => {}
                _ => return Ok(()),
            }
            let v = self.vm(vm)?;
            v.pc[c] += 1;
            if let (GuestOp::Load(_), Some(x)) = (op, r.value) {
                v.sum[c] = v.sum[c].wrapping_add(x);
            }
            if matches!(op, GuestOp::Wfx | GuestOp::PowerOff) {
                // The vCPU exited to the host.
                v.on_cpu[c] = None;
                v.off |= op == GuestOp::PowerOff;
                return Ok(());
            }
            budget -= 1;
        }
        // Out of budget: the host takes the CPU back with an interrupt.
        if self.vm(vm)?.on_cpu[c] == Some(cpu) {
            go(step(cpu, Action::Irq))?;
            self.vm(vm)?.on_cpu[c] = None;
        }
        Ok(())
    }
}

impl HostVm {
    /// The host page behind guest page `gfn`, as the host gave it.
    fn backing(&self, gfn: u64) -> Option<u64> {
        let off = gfn.checked_sub(LOAD_ADDR / 4096)?;
        if off < 512 {
            return Some(self.image_block + off * 4096);
        }
        self.served
            .iter()
            .find(|(g, _)| *g == gfn)
            .map(|&(_, pa)| pa)
    }
}
