//! A [`Ctxt`] as numbered 64-bit words with names: how the EL2 trace gives the register file
//! a CPU brought into KCore and the one KCore left on it (issue 22), and how the trace's
//! checker reads them back. x0..x30 first, then each Q register as two words (low, high),
//! then every other field of [`CtxtRegs`], [`crate::ctxt::TrapRegs`] and
//! [`crate::ctxt::CtxtStates`].

use crate::ctxt::Ctxt;

/// The words before the named fields: x0..x30, then q0..q31 (two words each).
const Q_FIRST: usize = 31;
const NAMED_FIRST: usize = Q_FIRST + 64;

/// `(name, is it the world's)` of each field after the Q registers. A world's field is one
/// the CPU brings in (what the running world computed, or the trap's syndrome); the others
/// are KCore's own configuration, which only KCore may change.
macro_rules! named {
    ($($grp:ident . $f:ident : $world:literal),* $(,)?) => {
        const NAMED: &[(&str, bool)] = &[$((stringify!($f), $world)),*];
        /// The struct of `Ctxt` each named field is in (`regs`, `traps`, `states`).
        #[cfg(test)]
        const GROUP: &[&str] = &[$(stringify!($grp)),*];

        fn named_word(c: &Ctxt, k: usize) -> u64 {
            let mut i = 0;
            $( if i == k { return c.$grp.$f; } i += 1; )*
            let _ = i;
            0
        }

        /// Every word of `c` at once (what the EL2 trace takes on each world switch).
        pub fn words(c: &Ctxt) -> [u64; CTXT_WORDS] {
            let mut w = [0u64; CTXT_WORDS];
            w[..Q_FIRST].copy_from_slice(&c.regs.x);
            for (k, q) in c.regs.fp_q.iter().enumerate() {
                w[Q_FIRST + 2 * k] = *q as u64;
                w[Q_FIRST + 2 * k + 1] = (*q >> 64) as u64;
            }
            let mut i = NAMED_FIRST;
            $( w[i] = c.$grp.$f; i += 1; )*
            let _ = i;
            w
        }

        fn set_named_word(c: &mut Ctxt, k: usize, v: u64) {
            let mut i = 0;
            $( if i == k { c.$grp.$f = v; return; } i += 1; )*
            let _ = i;
        }
    };
}

named!(
    regs.elr_el2: true,
    regs.spsr_el2: true,
    regs.fp_fpsr: true,
    regs.fp_fpcr: true,
    regs.csselr_el1: true,
    regs.sctlr_el1: true,
    regs.cpacr_el1: true,
    regs.ttbr0_el1: true,
    regs.ttbr1_el1: true,
    regs.tcr_el1: true,
    regs.afsr0_el1: true,
    regs.afsr1_el1: true,
    regs.far_el1: true,
    regs.mair_el1: true,
    regs.vbar_el1: true,
    regs.contextidr_el1: true,
    regs.amair_el1: true,
    regs.cntkctl_el1: true,
    regs.par_el1: true,
    regs.tpidr_el1: true,
    regs.spsr_el1: true,
    regs.mdscr_el1: true,
    regs.sp_el0: true,
    regs.tpidr_el0: true,
    regs.tpidrro_el0: true,
    regs.actlr_el1: true,
    regs.sp_el1: true,
    regs.elr_el1: true,
    regs.esr_el2: true,
    regs.ec: true,
    regs.far_el2: true,
    regs.hpfar_el2: true,
    regs.vmpidr_el2: false,
    regs.mpidr_el1: false,
    regs.vttbr_el2: false,
    regs.hcr_el2: false,
    regs.tpidr_el2: false,
    traps.pmuselr_el0: false,
    traps.pmuserenr_el0: false,
    traps.mdcr_el2: false,
    traps.cptr_el2: false,
    traps.cnthctl_el2: false,
    states.pc: false,
    states.pstate: false,
    states.dirty: false,
    states.flags: false,
    states.esr_el1: false,
    states.spsr_0: false,
);

/// How many words a context is.
pub const CTXT_WORDS: usize = NAMED_FIRST + NAMED.len();

/// The index of VTTBR_EL2's word (a table's physical root: the trace gives it as the
/// principal's `pt_vttbr`, the name the model knows it by).
pub const VTTBR_WORD: usize = NAMED_FIRST + 34;

/// Word `i`'s name (`x0`, `q3_hi`, `sctlr_el1`, ...), for the trace.
pub fn name(i: usize) -> &'static str {
    match i {
        0..Q_FIRST => X_NAMES[i],
        Q_FIRST..NAMED_FIRST => Q_NAMES[i - Q_FIRST],
        _ => NAMED.get(i - NAMED_FIRST).map_or("?", |n| n.0),
    }
}

/// The word named `n`, if any.
pub fn index(n: &str) -> Option<usize> {
    (0..CTXT_WORDS).find(|&i| name(i) == n)
}

/// Whether word `i` is the world's (brought in by the CPU) rather than KCore's.
pub fn is_world(i: usize) -> bool {
    i < NAMED_FIRST || NAMED.get(i - NAMED_FIRST).is_some_and(|n| n.1)
}

const X_NAMES: [&str; 31] = [
    "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
    "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27",
    "x28", "x29", "x30",
];

const Q_NAMES: [&str; 64] = [
    "q0_lo", "q0_hi", "q1_lo", "q1_hi", "q2_lo", "q2_hi", "q3_lo", "q3_hi", "q4_lo", "q4_hi",
    "q5_lo", "q5_hi", "q6_lo", "q6_hi", "q7_lo", "q7_hi", "q8_lo", "q8_hi", "q9_lo", "q9_hi",
    "q10_lo", "q10_hi", "q11_lo", "q11_hi", "q12_lo", "q12_hi", "q13_lo", "q13_hi", "q14_lo",
    "q14_hi", "q15_lo", "q15_hi", "q16_lo", "q16_hi", "q17_lo", "q17_hi", "q18_lo", "q18_hi",
    "q19_lo", "q19_hi", "q20_lo", "q20_hi", "q21_lo", "q21_hi", "q22_lo", "q22_hi", "q23_lo",
    "q23_hi", "q24_lo", "q24_hi", "q25_lo", "q25_hi", "q26_lo", "q26_hi", "q27_lo", "q27_hi",
    "q28_lo", "q28_hi", "q29_lo", "q29_hi", "q30_lo", "q30_hi", "q31_lo", "q31_hi",
];

impl Ctxt {
    /// Word `i` (0 past the end).
    pub fn word(&self, i: usize) -> u64 {
        match i {
            0..Q_FIRST => self.regs.x[i],
            Q_FIRST..NAMED_FIRST => {
                let q = self.regs.fp_q[(i - Q_FIRST) / 2];
                if (i - Q_FIRST).is_multiple_of(2) {
                    q as u64
                } else {
                    (q >> 64) as u64
                }
            }
            _ => named_word(self, i - NAMED_FIRST),
        }
    }

    /// Sets word `i` (ignored past the end).
    pub fn set_word(&mut self, i: usize, v: u64) {
        match i {
            0..Q_FIRST => self.regs.x[i] = v,
            Q_FIRST..NAMED_FIRST => {
                let q = &mut self.regs.fp_q[(i - Q_FIRST) / 2];
                *q = if (i - Q_FIRST).is_multiple_of(2) {
                    (*q & !u128::from(u64::MAX)) | u128::from(v)
                } else {
                    (*q & u128::from(u64::MAX)) | (u128::from(v) << 64)
                };
            }
            _ => set_named_word(self, i - NAMED_FIRST, v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_round_trips_and_is_named_once() {
        let mut c = Ctxt::default();
        for i in 0..CTXT_WORDS {
            c.set_word(i, 0x1000 + i as u64);
        }
        for i in 0..CTXT_WORDS {
            assert_eq!(c.word(i), 0x1000 + i as u64, "word {} ({})", i, name(i));
            assert_eq!(index(name(i)), Some(i));
        }
        assert_eq!(name(VTTBR_WORD), "vttbr_el2");
        assert_eq!(c.regs.fp_q[1], (0x1022u128 << 64) | 0x1021);
        assert!(is_world(0) && is_world(VTTBR_WORD - 3) && !is_world(VTTBR_WORD));
        assert_eq!(c.states.spsr_0, 0x1000 + CTXT_WORDS as u64 - 1);
        let w = words(&c);
        assert!((0..CTXT_WORDS).all(|i| w[i] == c.word(i)));
        // Every field is a word (a Q register two): a field added to `Ctxt` without a word
        // here changes a part's size. (`CtxtRegs` is padded: 8 bytes before the Q registers,
        // which are 16-byte aligned and follow 33 words, and up to 16 at its end.)
        use crate::ctxt::{CtxtRegs, CtxtStates, TrapRegs};
        use core::mem::size_of;
        let n = |g: &str| GROUP.iter().filter(|x| **x == g).count();
        assert_eq!(size_of::<TrapRegs>(), 8 * n("traps"));
        assert_eq!(size_of::<CtxtStates>(), 8 * n("states"));
        assert_eq!(
            size_of::<CtxtRegs>(),
            (8 * (Q_FIRST + 64 + n("regs")) + 8).next_multiple_of(16)
        );
    }
}
