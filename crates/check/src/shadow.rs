//! The checker's own copy of memory, word by word (issue 10): built from the writes it saw,
//! never read back from the core except where only KCore may write.
//!
//! * a principal's store (host, guest, device) goes where the *model* translates it, with
//!   the value the step names;
//! * a page KCore scrubs (a VM's page handed back to the host) becomes 512 zero words;
//! * a page KCore writes with cryptography (ENCRYPT_BUF, SAVE_CRYPT_VCPU's output, the page
//!   DECRYPT_BUF opens) is re-synced from the core after the step: its contents are the
//!   cipher's, which the checker does not recompute (the verdicts are fed to the model);
//! * KCore's own region (metadata, tables, per-CPU areas) takes KCore's writes, but never a
//!   principal's: a store the bus saw land there is kept out of the copy.
//!
//! After every step, every frame that changed on either side is compared in all 512 words,
//! and every load's value is compared with the copy.

use std::collections::{BTreeSet, HashMap};

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
