//! The production image (no `trace` feature): no recorder. What is left is KCore's log of its
//! VERIFY_VM_IMAGE verdicts, which are `[kcore]` lines, not trace lines: kept, as the traced
//! build keeps them, until the next console output, so that a measured VERIFY_VM_IMAGE pays
//! for a store, not for UART output.

use crate::console;

/// Verdicts kept before they are printed (a flush makes room).
const VERDICTS: usize = 8;

/// Kept under the glue's lock (`kcore_glue::STATE`), as the traced build's recorder is.
pub struct Trace {
    verdicts: [(u64, bool); VERDICTS],
    n: usize,
}

impl Trace {
    pub const EMPTY: Trace = Trace {
        verdicts: [(0, false); VERDICTS],
        n: 0,
    };

    /// KCore's verdict on a VM's image, printed at the next console output.
    pub fn verdict(&mut self, vm: u64, verified: bool) {
        if self.n == VERDICTS {
            self.flush();
        }
        self.verdicts[self.n] = (vm, verified);
        self.n += 1;
    }

    /// Prints the verdicts kept.
    pub fn flush(&mut self) {
        if self.n == 0 {
            return;
        }
        console::with(|u| {
            for &(vm, verified) in &self.verdicts[..self.n] {
                super::verdict_line(u, vm, verified);
            }
        });
        self.n = 0;
    }
}
