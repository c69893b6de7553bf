//! The checker's own copy of memory, word by word (issue 10): built from the writes it saw,
//! never read back from the core except where only KCore may write.
//!
//! * a principal's store (host, guest, device) goes where the *model* translates it, with
//!   the value the step names;
//! * a page KCore scrubs (a VM's page handed back to the host) becomes 512 zero words;
//! * a page KCore writes with cryptography is what the checker computes it must be (issue
//!   22, [`Exports`]): an export (ENCRYPT_BUF, SAVE_CRYPT_VCPU) is the model's plaintext (the
//!   VM page in this copy, the vCPU's record from the model's shadow context) sealed with
//!   KCore's key under the nonce of the export's own sequence number, which the checker
//!   counts itself; an import (DECRYPT_BUF) is the host's buffer in this copy opened under
//!   the handle's nonce, if the checker's own record of that export authenticates it;
//! * KCore's own region (metadata, tables, per-CPU areas) takes KCore's writes, but never a
//!   principal's: a store the bus saw land there is kept out of the copy.
//!
//! After every step, every frame that changed on either side is compared in all 512 words,
//! and every load's value is compared with the copy.

use corevisor_kcore::crypto::{open_page, seal_page, ExportHeader, ExportKey};
use corevisor_kcore::state::BOOT_EXPORT_KEY;
use corevisor_kcore::trap::EXPORT_SLOTS;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Expected contents of every frame (absent = zero), with the frames changed since the last
/// comparison.
#[derive(Clone, Default)]
pub struct WordShadow {
    pages: HashMap<u64, Box<[u64; 512]>>,
    changed: BTreeSet<u64>,
}

impl WordShadow {
    /// A copy of memory as it is now (at boot: KCore's region as KCore initialised it).
    pub fn of(mem: &corevisor_sim::mem::SimMemory) -> Self {
        let mut s = WordShadow::default();
        for pfn in mem.resident() {
            s.pages.insert(pfn, Box::new(mem.page_words(pfn)));
        }
        s
    }

    pub fn word(&self, pfn: u64, w: u64) -> u64 {
        self.pages.get(&pfn).map_or(0, |p| p[(w & 511) as usize])
    }

    pub fn page(&self, pfn: u64) -> [u64; 512] {
        self.pages.get(&pfn).map_or([0; 512], |p| **p)
    }

    pub fn set(&mut self, pfn: u64, w: u64, v: u64) {
        self.changed.insert(pfn);
        if v == 0 && !self.pages.contains_key(&pfn) {
            return;
        }
        self.pages.entry(pfn).or_insert_with(|| Box::new([0; 512]))[(w & 511) as usize] = v;
    }

    /// KCore scrubbed the frame.
    pub fn zero(&mut self, pfn: u64) {
        self.changed.insert(pfn);
        self.pages.remove(&pfn);
    }

    /// The frame's contents are taken as they are (written by KCore where only it may write).
    pub fn resync(&mut self, pfn: u64, words: [u64; 512]) {
        self.changed.insert(pfn);
        if words.iter().all(|&w| w == 0) {
            self.pages.remove(&pfn);
        } else {
            self.pages.insert(pfn, Box::new(words));
        }
    }

    /// Frames whose expected contents changed since [`WordShadow::take_changed`].
    pub fn changed(&self) -> &BTreeSet<u64> {
        &self.changed
    }

    pub fn take_changed(&mut self) -> BTreeSet<u64> {
        std::mem::take(&mut self.changed)
    }
}

/// The checker's own record of the exports KCore must have made (issue 22): the key is
/// KCore's boot key (`BOOT_EXPORT_KEY`, what the simulated platform gives it), the nonce of
/// export `seq` of VM `vmid` is `vmid || seq` (`docs/kcore-abi.md`), and `seq` counts the
/// exports the model accepted, so nothing here is read from the core.
#[derive(Clone, Default)]
pub struct Exports {
    next_seq: u64,
    /// The exports that can still be imported (the newest `EXPORT_SLOTS`, none imported
    /// yet), by handle, with the header of the page the checker sealed.
    live: BTreeMap<u64, ExportHeader>,
}

fn to_bytes(words: &[u64; 512]) -> [u8; 4096] {
    let mut b = [0u8; 4096];
    for (i, w) in words.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    b
}

fn to_words(b: &[u8; 4096]) -> [u64; 512] {
    let mut w = [0u64; 512];
    for (i, v) in w.iter_mut().enumerate() {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[i * 8..i * 8 + 8]);
        *v = u64::from_le_bytes(x);
    }
    w
}

impl Exports {
    /// The handle the next export gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// `plain` sealed for `vmid` as the next export: the page KCore must write, and its header.
    pub fn seal(&self, vmid: u32, plain: &[u64; 512]) -> ([u64; 512], ExportHeader) {
        let mut b = to_bytes(plain);
        let hdr = seal_page(&ExportKey(BOOT_EXPORT_KEY), vmid, self.next_seq, &mut b);
        (to_words(&b), hdr)
    }

    /// `page` decrypted as export `seq` of `vmid` (no authentication: the keystream of that
    /// nonce, XORed in).
    pub fn decrypt(vmid: u32, seq: u64, page: &[u64; 512]) -> [u64; 512] {
        let mut ks = [0u8; 4096];
        seal_page(&ExportKey(BOOT_EXPORT_KEY), vmid, seq, &mut ks);
        let ks = to_words(&ks);
        let mut out = *page;
        for (o, k) in out.iter_mut().zip(ks.iter()) {
            *o ^= k;
        }
        out
    }

    /// The export was made: the counter moves on, and the oldest live one dies.
    pub fn commit(&mut self, hdr: ExportHeader) {
        self.live.insert(hdr.seq, hdr);
        self.next_seq = hdr.seq + 1;
        let oldest = self.next_seq.saturating_sub(EXPORT_SLOTS as u64);
        self.live.retain(|&s, _| s >= oldest);
    }

    /// `page` opened as export `handle`: its VM and plaintext, if the handle is live and the
    /// page is the sealed page (the tag the checker computed verifies).
    pub fn open(&self, handle: u64, page: &[u64; 512]) -> Option<(u32, [u64; 512])> {
        let hdr = self.live.get(&handle)?;
        let mut b = to_bytes(page);
        open_page(&ExportKey(BOOT_EXPORT_KEY), hdr.vmid, handle, hdr, &mut b)
            .then(|| (hdr.vmid, to_words(&b)))
    }

    /// The export was imported: its handle is dead.
    pub fn consume(&mut self, handle: u64) {
        self.live.remove(&handle);
    }
}
