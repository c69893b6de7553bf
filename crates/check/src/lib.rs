//! corevisor-check: the model engine that runs scenarios on the reference model, and the
//! security invariants checked after every step.
#![forbid(unsafe_code)]

pub mod abs;
pub mod demo;
pub mod engine;
pub mod incremental;
pub mod invariants;
pub mod lockstep;
pub mod run_inputs;
pub mod runner;
pub mod scaling;
pub mod secrecy;
pub mod shadow;
pub mod soak;
pub mod threads;
pub mod trace_check;
pub mod trace_regs;
