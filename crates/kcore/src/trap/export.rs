//! Verified boot and VM-state export with real cryptography (`docs/kcore-abi.md`).
//!
//! * VERIFY_VM_IMAGE: after the image is moved into the VM (so the host can no longer change
//!   it), KCore hashes every segment through its remap window and checks the Ed25519ph
//!   signature the host passes in x2..x9 against [`IMAGE_PUBKEY`]. A bad signature leaves
//!   the VM POWEROFF: it never runs, and its pages reach the host again only through
//!   CLEAR_VM_S2_RANGE, which scrubs them.
//! * ENCRYPT_BUF / SAVE_CRYPT_VCPU seal a VM page / a vCPU's registers into a host page
//!   (ChaCha20-Poly1305, key held by KCore). Each export gets the next sequence number,
//!   which is also its handle; KCore keeps the header (tag) of the last
//!   [`EXPORT_SLOTS`] exports. DECRYPT_BUF / LOAD_CRYPT_VCPU take the handle in x3 / x4 and
//!   open the buffer only if it is authentic and the handle is still live; a handle is used
//!   once, so a replayed buffer is refused. Refusal halts, as every other host violation.

use super::*;
use crate::crypto::{
    open_page, seal_page, verify_image, ExportHeader, ExportKey, ImageDigest, IMAGE_PUBKEY,
};
use crate::ctxt::idx;
use crate::mutants::{mutant, Fault};

/// Words of a sealed vCPU record: x0..x30, pc, pstate, the 24 shadow system registers.
const VCPU_RECORD_WORDS: usize = 31 + 2 + idx::SHADOW_SYS_REGS_SIZE as usize;

/// The sequence number an export's nonce is made from: its own (its handle), or 0 under
/// the planted fault `export_nonce_reused`.
fn nonce_seq(seq: u64) -> u64 {
    if mutant(Fault::ExportNonceReused) {
        0
    } else {
        seq
    }
}

fn read_page<H: Hw>(hw: &H, pa: u64) -> [u8; 4096] {
    let mut b = [0u8; 4096];
    for (i, w) in b.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&hw.read64(pa + i as u64 * 8).to_le_bytes());
    }
    b
}

fn write_page<H: Hw>(hw: &H, pa: u64, b: &[u8; 4096]) {
    for (i, w) in b.chunks_exact(8).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        hw.write64(pa + i as u64 * 8, u64::from_le_bytes(word));
    }
}

fn word(b: &[u8; 4096], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i * 8..i * 8 + 8]);
    u64::from_le_bytes(w)
}

impl<H: Hw> Core<H> {
    /// The signature check of VERIFY_VM_IMAGE, on the loaded image of `vm` (its INFO lock
    /// held): `true` = authentic.
    pub(crate) fn image_signature_ok(
        &self,
        vm: &crate::vm_info::VmInfo,
        sig_words: &[u64],
    ) -> bool {
        let mut sig = [0u8; 64];
        for (i, w) in sig_words.iter().take(8).enumerate() {
            sig[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        let mut d = ImageDigest::new();
        for i in 0..vm.next_load_info as usize {
            let (size, remap) = (vm.load_size[i], vm.remap_addr[i]);
            d.segment(vm.load_addr[i], size);
            let mut off = 0;
            while off < size {
                let Some((desc, 3)) =
                    crate::pt::lookup(&self.hw, &self.layout.pt, COREVISOR, remap + off)
                else {
                    return false;
                };
                if desc == 0 {
                    return false;
                }
                let page = read_page(&self.hw, phys_page(desc));
                let n = (size - off).min(PAGE_SIZE) as usize;
                d.update(&page[..n]);
                off += PAGE_SIZE;
            }
        }
        verify_image(&IMAGE_PUBKEY, d, &sig)
    }

    /// Seals `page` for `vmid` under the next sequence number into `outpfn`; its first word.
    fn seal_into(
        &self,
        vmid: u32,
        page: &mut [u8; 4096],
        outpfn: u64,
        input: &mut impl Untrusted,
    ) -> Res<u64> {
        let mut ex = self.take(&self.exports, input)?;
        let seq = ex.next_seq;
        let plain = *page;
        let hdr = seal_page(&ExportKey(ex.key), vmid, nonce_seq(seq), page);
        ex.slots[seq as usize % EXPORT_SLOTS] = Some(ExportHeader { seq, ..hdr });
        ex.next_seq = seq + 1;
        if mutant(Fault::ExportWritesPlaintext) {
            *page = plain;
        }
        write_page(&self.hw, outpfn * PAGE_SIZE, page);
        Ok(word(page, 0))
    }

    /// Opens the buffer at `pa` exported under `handle` (consuming the handle).
    fn open_export(
        &self,
        pa: u64,
        handle: u64,
        input: &mut impl Untrusted,
    ) -> Res<Option<[u8; 4096]>> {
        let mut ex = self.take(&self.exports, input)?;
        let slot = handle as usize % EXPORT_SLOTS;
        let Some(hdr) = ex.slots[slot].filter(|h| h.seq == handle) else {
            return Ok(None);
        };
        let mut page = read_page(&self.hw, pa);
        let n = nonce_seq(handle);
        let hdr = ExportHeader { seq: n, ..hdr };
        if !open_page(&ExportKey(ex.key), hdr.vmid, n, &hdr, &mut page) {
            return Ok(None);
        }
        ex.slots[slot] = None;
        Ok(Some(page))
    }

    /// ENCRYPT_BUF: seal VM `vmid`'s page `inbuf` into the host's page `outbuf` (S2PAGE).
    pub(crate) fn local_save_encrypt_buf(
        &self,
        vmid: u32,
        inbuf: u64,
        outbuf: u64,
        input: &mut impl Untrusted,
    ) -> Res {
        let pages = self.take(&self.s2page, input)?;
        let (inpfn, outpfn) = (inbuf / PAGE_SIZE, outbuf / PAGE_SIZE);
        if !(pages.get(&self.hw, inpfn).owner == vmid
            && pages.get(&self.hw, outpfn).owner == HOSTVISOR)
        {
            return self.fail(&[S2PAGE_ID]);
        }
        let mut page = read_page(&self.hw, inpfn * PAGE_SIZE);
        let first = self.seal_into(vmid, &mut page, outpfn, input)?;
        input.record(HOSTVISOR, first);
        Ok(())
    }

    /// SAVE_CRYPT_VCPU: seal vCPU (`vmid`, `vcpu`)'s registers into the host's page `outbuf`
    /// (INFO(vmid), S2PAGE).
    pub(crate) fn local_save_encrypted_vcpu(
        &self,
        vmid: u32,
        vcpu: u32,
        outbuf: u64,
        input: &mut impl Untrusted,
    ) -> Res {
        let _vm = self.take(&self.vms[vmid as usize], input)?;
        let pages = self.take(&self.s2page, input)?;
        let outpfn = outbuf / PAGE_SIZE;
        if pages.get(&self.hw, outpfn).owner != HOSTVISOR {
            return self.fail(&[S2PAGE_ID]);
        }
        let c = self.ctxt(ctxt_id(vmid, vcpu), input)?;
        let mut page = [0u8; 4096];
        for k in 0..VCPU_RECORD_WORDS {
            let v = c.get_shadow(record_index(k));
            page[k * 8..k * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        let first = self.seal_into(vmid, &mut page, outpfn, input)?;
        input.record(HOSTVISOR, first);
        Ok(())
    }

    /// DECRYPT_BUF: the host's page `inbuf`, sealed under `handle`, becomes VM `vmid`'s
    /// (INFO(vmid), S2PAGE, the host's NPT).
    pub(crate) fn local_load_decrypt_buf(
        &self,
        vmid: u32,
        inbuf: u64,
        handle: u64,
        input: &mut impl Untrusted,
    ) -> Res {
        let vm = self.take(&self.vms[vmid as usize], input)?;
        let mut pages = self.take(&self.s2page, input)?;
        let mut host = self.take(&self.npt[HOSTVISOR as usize], input)?;
        let pfn = inbuf / PAGE_SIZE;
        if vm.state != READY {
            return self.fail(&[INFO_ID + vmid]);
        }
        let p = pages.get(&self.hw, pfn);
        if !(p.owner == HOSTVISOR && p.count == 0) {
            return self.fail(&[INFO_ID + vmid, S2PAGE_ID]);
        }
        if !self.unmap_host(&mut host, pfn) {
            return self.fail(&[INFO_ID + vmid, S2PAGE_ID, NPT_ID]);
        }
        let opened = self.open_export(pfn * PAGE_SIZE, handle, input)?;
        input.record(HOSTVISOR, opened.is_some() as u64);
        let Some(page) = opened else {
            return self.fail(&[INFO_ID + vmid, S2PAGE_ID]);
        };
        write_page(&self.hw, pfn * PAGE_SIZE, &page);
        let theirs = crate::meta::S2Page {
            owner: vmid,
            count: 0,
            gfn: INVALID64,
        };
        pages.set(&self.hw, pfn, theirs);
        input.record(HOSTVISOR, word(&page, 0));
        Ok(())
    }

    /// LOAD_CRYPT_VCPU: restore a READY vCPU from the sealed record at `buf` (`handle`),
    /// under INFO(vmid).
    pub(crate) fn local_load_encrypted_vcpu(
        &self,
        vmid: u32,
        vcpu: u32,
        buf: u64,
        handle: u64,
        input: &mut impl Untrusted,
    ) -> Res {
        let mut vm = self.take(&self.vms[vmid as usize], input)?;
        if !(vm.state == READY && vm.vcpu_state[vcpu as usize] == READY) {
            return self.fail(&[INFO_ID + vmid]);
        }
        let opened = if buf < KVM_PHYS_SIZE {
            self.open_export(phys_page(buf), handle, input)?
        } else {
            None
        };
        input.record(HOSTVISOR, opened.is_some() as u64);
        let Some(page) = opened else {
            return self.fail(&[INFO_ID + vmid]);
        };
        let mut c = self.take(&self.shadow[ctxt_id(vmid, vcpu)], input)?;
        for k in 0..VCPU_RECORD_WORDS {
            let v = word(&page, k);
            input.record(HOSTVISOR, v);
            c.set_shadow(record_index(k), v);
        }
        vm.inc_exe = 1;
        Ok(())
    }
}

/// The shadow index of word `k` of a vCPU record (the order `decrypt_gp_regs` and
/// `decrypt_sys_regs` read them in).
fn record_index(k: usize) -> u64 {
    match k {
        0..=30 => k as u64,
        31 => idx::PC,
        32 => idx::PSTATE,
        _ => idx::SYSREGS_START + (k - 33) as u64,
    }
}
