//! corevisor-sim: the simulated machine's inputs and, as it grows, the machine itself.
//! Today: the scenario file format ([`scenario`]).
#![forbid(unsafe_code)]

pub mod scenario;
