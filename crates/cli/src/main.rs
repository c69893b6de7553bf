//! The corevisor command-line interface.
#![forbid(unsafe_code)]
fn main() {}
