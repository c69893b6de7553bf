//! kcore's functions that no simulated machine reaches, each beside the model's: the Arm
//! profile's exception injection (`update_exception_gp_regs`) runs only when a vCPU's
//! dirty word has `PENDING_EXCEPT_INJECT_FLAG`, which nothing in corevisor's ABI sets
//! (docs/assurance.md, "cargo-mutants"), so lockstep cannot compare it; this suite does.

use corevisor_kcore::ctxt::{exception_vector, Ctxt};
use corevisor_spec::aux::update_exception_gp_regs_specx;
use corevisor_spec::profile::Profile;
use corevisor_spec::state::{CtxtRegs, CtxtStates};
use corevisor_spec::Z;
use proptest::prelude::*;

/// PSTATE values: every mode field M[4:0] with arbitrary flag and mask bits above it.
fn pstate() -> impl Strategy<Value = u64> {
    (0u64..32, any::<u32>()).prop_map(|(m, hi)| (u64::from(hi) << 5) | m)
}

proptest! {
    #[test]
    fn update_exception_gp_regs_is_the_models(
        pc in any::<u64>(),
        pstate in pstate(),
        vbar in (0u64..1 << 52).prop_map(|v| v & !0x7FF),
        elr in any::<u64>(),
        spsr in any::<u64>(),
        esr in 1u64..1 << 32,
    ) {
        let mut c = Ctxt::default();
        c.regs.vbar_el1 = vbar;
        c.regs.elr_el1 = elr;
        c.states.pc = pc;
        c.states.pstate = pstate;
        c.states.spsr_0 = spsr;
        c.states.esr_el1 = esr;
        c.update_exception_gp_regs();

        let z = |v: u64| v as Z;
        let cregs = CtxtRegs { vbar_el1: z(vbar), elr_el1: z(elr), ..CtxtRegs::default() };
        let cstates = CtxtStates {
            pc: z(pc), pstate: z(pstate), spsr_0: z(spsr), esr_el1: z(esr), ..CtxtStates::default()
        };
        let (mr, ms) = update_exception_gp_regs_specx(Profile::arm(), &cregs, &cstates);
        prop_assert_eq!(z(c.regs.elr_el1), mr.elr_el1);
        prop_assert_eq!(z(c.regs.vbar_el1), mr.vbar_el1);
        let core = [c.states.pc, c.states.pstate, c.states.spsr_0, c.states.esr_el1];
        let model = [ms.pc, ms.pstate, ms.spsr_0, ms.esr_el1];
        prop_assert_eq!(core.map(z), model);
    }
}

/// Arm ARM D1.10.2: the four synchronous-exception entries of a vector table, by the
/// interrupted state's mode (the model's function is the same table).
#[test]
fn exception_vector_picks_the_entry_of_the_interrupted_mode() {
    for m in 0u64..32 {
        let want = match m {
            0b10000..=0b11111 => 0x600, // AArch32
            0b0100 => 0x000,            // EL1t
            0b0101 => 0x200,            // EL1h
            _ => 0x400,                 // AArch64 EL0 (and what cannot trap to EL1)
        };
        for hi in [0, 0x3C0, 0xF000_0000] {
            assert_eq!(exception_vector(hi | m), want, "pstate {:#x}", hi | m);
            assert_eq!(
                corevisor_spec::am::exception_vector((hi | m) as Z),
                want as Z,
                "model, pstate {:#x}",
                hi | m
            );
        }
    }
}
