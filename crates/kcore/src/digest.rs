//! A digest of KCore's abstract state, in the model's terms, so that a run's final state can
//! be compared with the model's without carrying the state itself (`corevisor check-trace`
//! on an EL2 trace's final line; docs/el2.md, "The final state digest").
//!
//! Three parts, each FNV-1a over 64-bit little-endian words, fed in a fixed order:
//! * `pages`: every RAM page in pfn order: pfn, owner, count, gfn (its metadata);
//! * `leaves`: every principal but KCore (0..COREVISOR) in order, every stage-2 leaf in gfn
//!   order: principal, gfn, pfn, level, descriptor; a 2 MiB block is its 512 pages, each
//!   with the block's descriptor (the model's reading, `abs_npt`); a level-3 entry counts
//!   when non-zero;
//! * `vms`: every VM (1..COREVISOR): vmid, state, each vCPU's state.

/// FNV-1a, 64-bit.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Fnv {
    pub const fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub fn word(&mut self, w: u64) {
        for b in w.to_le_bytes() {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Fnv::new()
    }
}

/// The digest of a state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateDigest {
    pub pages: u64,
    pub leaves: u64,
    /// How many leaves `leaves` covers (a count tells a lost leaf from a changed one).
    pub leaf_count: u64,
    pub vms: u64,
}

/// Builds a [`StateDigest`]; the caller feeds the parts in the order the module states.
#[derive(Default)]
pub struct Digester {
    pages: Fnv,
    leaves: Fnv,
    leaf_count: u64,
    vms: Fnv,
}

impl Digester {
    pub fn page(&mut self, pfn: u64, owner: u64, count: u64, gfn: u64) {
        for w in [pfn, owner, count, gfn] {
            self.pages.word(w);
        }
    }

    pub fn leaf(&mut self, vmid: u64, gfn: u64, pfn: u64, level: u64, desc: u64) {
        for w in [vmid, gfn, pfn, level, desc] {
            self.leaves.word(w);
        }
        self.leaf_count += 1;
    }

    pub fn vm(&mut self, vmid: u64, state: u64, vcpus: impl IntoIterator<Item = u64>) {
        self.vms.word(vmid);
        self.vms.word(state);
        for s in vcpus {
            self.vms.word(s);
        }
    }

    pub fn finish(&self) -> StateDigest {
        StateDigest {
            pages: self.pages.finish(),
            leaves: self.leaves.finish(),
            leaf_count: self.leaf_count,
            vms: self.vms.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_of_known_input_and_order_matters() {
        // FNV-1a 64 of the 8 zero bytes.
        let mut f = Fnv::new();
        f.word(0);
        assert_eq!(f.finish(), 0xa8c7_f832_281a_39c5);
        let (mut a, mut b) = (Digester::default(), Digester::default());
        a.page(1, 0, 0, 2);
        b.page(1, 0, 2, 0);
        assert_ne!(a.finish(), b.finish());
        a.leaf(0, 1, 1, 3, 0x7ff);
        assert_eq!(a.finish().leaf_count, 1);
    }
}
