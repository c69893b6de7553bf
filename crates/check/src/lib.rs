//! corevisor-check: scenarios, the model engine, invariants.
#![forbid(unsafe_code)]
