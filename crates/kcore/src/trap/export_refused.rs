//! A build without the `crypto` feature (the EL2 image until its crates are vendored) has
//! no verified boot and no export: every image is refused and every export hypercall
//! halts, so nothing unauthenticated is ever accepted.

use super::*;
use crate::hw::Untrusted;

/// Export state of a build without cryptography: nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exports;

impl Exports {
    pub const fn boot(_key: [u8; 32]) -> Self {
        Exports
    }
}

impl<H: Hw> Core<H> {
    pub(crate) fn image_signature_ok(&self, _v: u32, _sig_words: &[u64]) -> bool {
        false
    }
    pub(crate) fn local_save_encrypt_buf(
        &mut self,
        _: u32,
        _: u64,
        _: u64,
        _: &mut impl Untrusted,
    ) {
        self.halt(&[S2PAGE_ID]);
    }
    pub(crate) fn local_save_encrypted_vcpu(
        &mut self,
        _: u32,
        _: u32,
        _: u64,
        _: &mut impl Untrusted,
    ) {
        self.halt(&[S2PAGE_ID]);
    }
    pub(crate) fn local_load_decrypt_buf(
        &mut self,
        v: u32,
        _: u64,
        _: u64,
        _: &mut impl Untrusted,
    ) {
        self.halt(&[INFO_ID + v]);
    }
    pub(crate) fn local_load_encrypted_vcpu(
        &mut self,
        v: u32,
        _: u32,
        _: u64,
        _: u64,
        _: &mut impl Untrusted,
    ) {
        self.halt(&[INFO_ID + v]);
    }
}
