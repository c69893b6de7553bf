//! corevisor-sim: the simulated machine.
#![forbid(unsafe_code)]
