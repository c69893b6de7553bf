//! corevisor-spec: an executable reference model of SeKVM's `TrapHandlerSpec` (the seed,
//! `shared/seed/TrapHandlerSpec.md`), function for function.
//!
//! * Integers are the seed's `Z`, represented as `i128` ([`Z`]); maps are total
//!   persistent maps ([`zmap::ZMap`]).
//! * Every seed `Definition` and `Fixpoint` is a Rust function of the same name, in the
//!   module named after the seed's `Section`: [`high_pt`] (HighPTSpec), [`concurrent`]
//!   (ConcurrentSpec), [`aux`] (AuxSpec), [`trap_handler`] (TrapHandlerSpec),
//!   [`low`] (TrapHandlerSpecLow). Helpers the seed takes from lower layers are in [`am`]
//!   and [`consts`].
//! * Each function takes the [`profile::Profile`] first: `Profile::SEED` is the seed taken
//!   literally, `Profile::ARM` uses ARM constants and fixes each quirk to its intent.
//! * Entry points return `Option<RData>`: `None` = outside the spec's contract (a failed
//!   guard or `rely`), `Some(s)` with `s.halt` = KCore's defined panic.
#![forbid(unsafe_code)]
// Names mirror the Coq text (`OMAP_HOST`, `CalStateH`, `ESR_ELx_EC_WFx`, ...).
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals)]
// Functions take the seed's arguments, however many.
#![allow(clippy::too_many_arguments)]

/// The seed's mathematical integers.
pub type Z = i128;

pub mod cov;

pub mod am;
pub mod aux;
pub mod concurrent;
pub mod consts;
pub mod high_pt;
pub mod init;
pub mod low;
pub mod profile;
pub mod state;
pub mod trap_handler;
pub mod zmap;

pub use init::Machine;
pub use profile::{Profile, ProfileKind};
pub use state::{RData, Shared, State};

/// Longest loop the model will run inside one entry point. The seed's loop counts come
/// from untrusted registers (up to 2^52 iterations for a grant of x3 = 2^64-1); past this
/// budget the model answers `None` instead of running for years (docs/deviations.md,
/// "model loop budget"). 2^20 iterations cover 4 GiB of 4 KiB pages.
pub const LOOP_BUDGET: Z = 1 << 20;

/// Coq `Z.to_nat` for a loop count, or `None` past [`LOOP_BUDGET`].
pub fn to_nat(n: Z) -> Option<Z> {
    if n > LOOP_BUDGET {
        None
    } else {
        Some(n.max(0))
    }
}
