//! corevisor-kcore: the hypervisor core.
#![no_std]
