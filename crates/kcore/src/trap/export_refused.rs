//! A build without the `crypto` feature (the EL2 image until its crates are vendored) has
//! no verified boot and no export: every image is refused and every export hypercall
//! halts, so nothing unauthenticated is ever accepted.

use super::*;

impl<H: Hw> Core<H> {
    pub(crate) fn image_signature_ok(&self, _vm: &crate::vm_info::VmInfo, _sig: &[u64]) -> bool {
        false
    }
    pub(crate) fn local_save_encrypt_buf(
        &self,
        _: u32,
        _: u64,
        _: u64,
        _: &mut impl Untrusted,
    ) -> Res {
        self.fail(&[S2PAGE_ID])
    }
    pub(crate) fn local_save_encrypted_vcpu(
        &self,
        _: u32,
        _: u32,
        _: u64,
        _: &mut impl Untrusted,
    ) -> Res {
        self.fail(&[S2PAGE_ID])
    }
    pub(crate) fn local_load_decrypt_buf(
        &self,
        v: u32,
        _: u64,
        _: u64,
        _: &mut impl Untrusted,
    ) -> Res {
        self.fail(&[INFO_ID + v])
    }
    pub(crate) fn local_load_encrypted_vcpu(
        &self,
        v: u32,
        _: u32,
        _: u64,
        _: u64,
        _: &mut impl Untrusted,
    ) -> Res {
        self.fail(&[INFO_ID + v])
    }
}
