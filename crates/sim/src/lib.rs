//! corevisor-sim: the simulated machine's inputs and, as it grows, the machine itself.
//! Today: the scenario file format ([`scenario`]), simulated physical memory with a
//! stage-2 MMU walker and TLB ([`mem`]), and an SMMUv2 register model ([`smmu`]).
#![forbid(unsafe_code)]

pub mod guest;
pub mod host;
pub mod machine;
pub mod mem;
pub mod scenario;
pub mod signing;
pub mod smmu;
