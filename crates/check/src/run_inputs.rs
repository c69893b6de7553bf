//! What a VCPU_RUN must take from the host's registers, as the model's state decides it:
//! shared by lockstep (the simulator's register file) and check-trace (the register file the
//! EL2 trace gives), so that an untrusted value KCore read from the wrong register is a
//! mismatch in both (issue 22; the planted `mmio_results_from_x9`).

use corevisor_spec::consts::{ctxt_id, ARM_EXCEPTION_TRAP, COREVISOR, INVALID64};
use corevisor_spec::state::RData;
use corevisor_spec::Z;

/// The values VCPU_RUN of the host's `x` takes from VM `vmid`'s data stream, in order, each
/// with where it comes from.
pub struct RunInputs {
    pub vmid: u64,
    /// The vCPU has run before (its context is not the never-run INVALID64).
    pub resumed: bool,
    pub want: Vec<(u64, String)>,
}

impl RunInputs {
    /// The first wanted value a run that took `took` of them did not take: a resume that did
    /// not halt takes every dirty register's value, and one it did not take is a register
    /// the host's emulation never reached.
    pub fn missing(&self, took: usize, halted: bool) -> Option<&(u64, String)> {
        self.want.get(took).filter(|_| self.resumed && !halted)
    }
}

/// For VCPU_RUN with the host's registers `x` (x1 = VM, x2 = vCPU) and ACTLR_EL1 `actlr`, in
/// the model state `g` before it: a first run of a VM whose image is not loaded takes its
/// entry (x6), PSTATE (x7) and ACTLR_EL1; a resume after a trap takes the MMIO results of
/// the exit's dirty registers from x8 on (`sync_dirty_to_shadow`). `None`: no such vCPU.
pub fn vcpu_run_inputs(g: &RData, x: &[u64; 31], actlr: u64) -> Option<RunInputs> {
    let (vmid, vcpu) = (x[1], x[2]);
    if !(1..COREVISOR as u64).contains(&vmid) || vcpu >= 8 {
        return None;
    }
    let ctx = g.shadow_ctxts.get(ctxt_id(Z::from(vmid), Z::from(vcpu)));
    let dirty = ctx.ctxt_states.dirty;
    let mut want = Vec::new();
    if dirty == INVALID64 {
        if g.shared.vminfos.get(Z::from(vmid)).VB.vm_inc_exe == 0 {
            want = vec![
                (x[6], "the host's x6".into()),
                (x[7], "the host's x7".into()),
                (actlr, "ACTLR_EL1".into()),
            ];
        }
    } else if ctx.ctxt_regs.ec == ARM_EXCEPTION_TRAP {
        let mut next = 8;
        for i in 0..31 {
            if dirty & (1 << i) != 0 {
                let v = x.get(next).copied().unwrap_or(0);
                want.push((v, format!("the host's x{next} (for x{i})")));
                next += 1;
            }
        }
    }
    Some(RunInputs {
        vmid,
        resumed: dirty != INVALID64,
        want,
    })
}
