//! The SMMU's TLB: translations cached until an invalidation that covers them has been
//! completed by a synchronisation, so a missing TLBI, or a TLBI nobody waited for, shows up
//! as a stale translation.
//!
//! * Entries are tagged with the VMID of the context bank that walked them (stage-2 TLB
//!   entries are VMID-tagged in the architecture) and with that bank. With
//!   [`IotlbSharing::PerVmid`] a lookup through any bank with the same VMID may hit the
//!   entry: the architecture requires banks sharing a VMID to share their stage-2
//!   configuration, so an implementation may serve one from the other's entries.
//! * A block or a contiguous run of descriptors may be held as a single entry of that size.
//!   With the contiguous hint, the entry covers the 16 aligned descriptors and its output
//!   is the hinted range: what a TLB may do when software set the hint on entries that
//!   do not in fact map one contiguous range.
//! * An invalidation (TLBIVMID, TLBIALLNSNH, CBn_TLBIIPAS2[L]) is accepted at once but is only
//!   guaranteed to have taken effect when a later synchronisation completes: sTLBGSYNC for
//!   every invalidation issued before it, CBn_TLBSYNC for those issued through bank n. The
//!   model applies them at exactly that point: when a read of the status register returns
//!   "not active", after `latency` reads that returned "active".

use super::walk::Leaf;

/// Which lookups may hit an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IotlbSharing {
    /// Only lookups through the bank that walked it (and with the same VMID).
    PerContextBank,
    /// Lookups through any bank with the VMID the entry was walked with.
    PerVmid,
}

/// One cached translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub vmid: u32,
    pub bank: u32,
    /// First IOVA the entry translates, aligned to its size.
    pub iova: u64,
    /// log2 of the bytes it translates.
    pub span: u32,
    /// Output address of `iova`.
    pub oa: u64,
    pub read: bool,
    pub write: bool,
    pub level: u32,
}

impl Entry {
    fn covers(&self, iova: u64) -> bool {
        iova >> self.span == self.iova >> self.span
    }

    /// The output address for `iova` (which the entry covers).
    pub fn pa(&self, iova: u64) -> u64 {
        self.oa | (iova & ((1u64 << self.span) - 1))
    }

    /// The entry a TLB may hold for `leaf`, walked through `bank` with `vmid` for `iova`.
    pub fn from_leaf(leaf: &Leaf, vmid: u32, bank: u32, iova: u64, contiguous: bool) -> Entry {
        let span = leaf.span()
            + if contiguous && leaf.contiguous() {
                4
            } else {
                0
            };
        let mask = (1u64 << span) - 1;
        Entry {
            vmid,
            bank,
            iova: iova & !mask,
            span,
            oa: leaf.oa() & !mask,
            read: leaf.readable(),
            write: leaf.writable(),
            level: leaf.level,
        }
    }
}

/// A TLB maintenance operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalidation {
    All,
    Vmid(u32),
    /// Entries of `vmid` that translate `ipa`.
    Ipa {
        vmid: u32,
        ipa: u64,
    },
}

/// Where a synchronisation or an invalidation was issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Global,
    Bank(u32),
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    op: Invalidation,
    scope: Scope,
    seq: u64,
}

#[derive(Clone, Copy, Debug)]
struct Sync {
    /// Covers the pending invalidations issued before this sequence number.
    upto: u64,
    /// Status reads still to return "active".
    reads_left: u32,
}

#[derive(Clone, Debug)]
pub struct Iotlb {
    sharing: IotlbSharing,
    latency: u32,
    entries: Vec<Entry>,
    pending: Vec<Pending>,
    seq: u64,
    global: Option<Sync>,
    banks: Vec<Option<Sync>>,
    /// Invalidation operations completed (for tests and statistics).
    pub completed: u64,
}

impl Iotlb {
    pub fn new(sharing: IotlbSharing, latency: u32, banks: u32) -> Iotlb {
        Iotlb {
            sharing,
            latency,
            entries: Vec::new(),
            pending: Vec::new(),
            seq: 0,
            global: None,
            banks: vec![None; banks as usize],
            completed: 0,
        }
    }

    pub fn lookup(&self, bank: u32, vmid: u32, iova: u64) -> Option<Entry> {
        self.entries
            .iter()
            .find(|e| {
                e.vmid == vmid
                    && (self.sharing == IotlbSharing::PerVmid || e.bank == bank)
                    && e.covers(iova)
            })
            .copied()
    }

    pub fn insert(&mut self, e: Entry) {
        self.entries.push(e);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Accepts an invalidation issued through the global space or through `bank`.
    pub fn invalidate(&mut self, op: Invalidation, bank: Option<u32>) {
        let scope = bank.map_or(Scope::Global, Scope::Bank);
        self.pending.push(Pending {
            op,
            scope,
            seq: self.seq,
        });
        self.seq += 1;
    }

    /// A write to sTLBGSYNC (`None`) or to bank n's TLBSYNC (`Some(n)`).
    pub fn sync(&mut self, bank: Option<u32>) {
        let s = Some(Sync {
            upto: self.seq,
            reads_left: self.latency,
        });
        match bank {
            None => self.global = s,
            Some(n) => self.banks[n as usize] = s,
        }
    }

    /// A read of sTLBGSTATUS (`None`) or of bank n's TLBSTATUS: whether the last
    /// synchronisation is still active. The read that first sees it complete applies the
    /// invalidations it covers.
    pub fn status(&mut self, bank: Option<u32>) -> bool {
        let slot = match bank {
            None => &mut self.global,
            Some(n) => &mut self.banks[n as usize],
        };
        let Some(s) = slot else {
            return false;
        };
        if s.reads_left > 0 {
            s.reads_left -= 1;
            return true;
        }
        let upto = s.upto;
        *slot = None;
        let covered = |p: &Pending| {
            p.seq < upto && (bank.is_none() || p.scope == bank.map_or(Scope::Global, Scope::Bank))
        };
        let (done, keep): (Vec<Pending>, Vec<Pending>) =
            self.pending.drain(..).partition(|p| covered(p));
        self.pending = keep;
        for p in done {
            self.apply(p.op);
        }
        false
    }

    fn apply(&mut self, op: Invalidation) {
        self.completed += 1;
        self.entries.retain(|e| match op {
            Invalidation::All => false,
            Invalidation::Vmid(v) => e.vmid != v,
            Invalidation::Ipa { vmid, ipa } => !(e.vmid == vmid && e.covers(ipa)),
        });
    }
}
