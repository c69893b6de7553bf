//! Per-page metadata (the seed's `S2Page`) packed in 8 bytes; SeKVM's C uses 16.
//!
//! | bits  | field |
//! |-------|-------|
//! | 0..5  | owner: 0 = host, 1..15 = VM, 16 = KCore, 31 = INVALID (not RAM) |
//! | 5..13 | count: 0..=254, 255 = INVALID ("assigned through a VM's SMMU, not faulted in") |
//! | 13..15| gfn kind: 0 = `pfn + SMMU_HOST_OFFSET`, 1 = INVALID64, 2 = the value in bits 15..51 |
//! | 15..51| gfn (< 2^36: every gfn KCore records comes from an address below 2^48) |
//!
//! The host tag is derived from the page's own pfn, so it costs no bits; and the all-zero
//! word is a host page with count 0 (every RAM page's boot state but KCore's own), so
//! zeroed memory is a valid metadata array and boot writes only KCore's pages.

use crate::consts::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct PageMeta(pub u64);

const _: () = assert!(core::mem::size_of::<PageMeta>() == 8);

const OWNER_INVALID: u64 = 31;
const COUNT_INVALID: u64 = 255;
const GFN_BITS: u32 = 36;

/// The unpacked view: `(owner, count, gfn)` as the seed writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S2Page {
    pub owner: u32,
    pub count: u32,
    pub gfn: u64,
}

impl PageMeta {
    /// Packs `page` for physical page `pfn`; `None` if it has no encoding (a value no
    /// operation produces: owner above KCore, count above 254, gfn at or above 2^36).
    pub fn pack(pfn: u64, page: S2Page) -> Option<PageMeta> {
        let owner = match page.owner {
            INVALID => OWNER_INVALID,
            o if o <= COREVISOR => o as u64,
            _ => return None,
        };
        let count = match page.count {
            INVALID => COUNT_INVALID,
            c if (c as u64) < COUNT_INVALID => c as u64,
            _ => return None,
        };
        let (kind, gfn) = if page.gfn == INVALID64 {
            (1, 0)
        } else if Some(page.gfn) == pfn.checked_add(SMMU_HOST_OFFSET) {
            (0, 0)
        } else if page.gfn < 1 << GFN_BITS {
            (2, page.gfn)
        } else {
            return None;
        };
        Some(PageMeta(owner | count << 5 | kind << 13 | gfn << 15))
    }

    pub fn unpack(self, pfn: u64) -> S2Page {
        let owner = match self.0 & 31 {
            OWNER_INVALID => INVALID,
            o => o as u32,
        };
        let count = match (self.0 >> 5) & 255 {
            COUNT_INVALID => INVALID,
            c => c as u32,
        };
        let gfn = match (self.0 >> 13) & 3 {
            0 => pfn + SMMU_HOST_OFFSET,
            1 => INVALID64,
            _ => (self.0 >> 15) & ((1 << GFN_BITS) - 1),
        };
        S2Page { owner, count, gfn }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_a_free_host_page() {
        let host = S2Page {
            owner: HOSTVISOR,
            count: 0,
            gfn: 0x40123 + SMMU_HOST_OFFSET,
        };
        assert_eq!(PageMeta(0).unpack(0x40123), host);
        assert_eq!(PageMeta::pack(0x40123, host), Some(PageMeta(0)));
    }

    #[test]
    fn every_reachable_page_round_trips() {
        let pfn = 0x40123;
        for owner in [0, 1, 15, COREVISOR, INVALID] {
            for count in [0, 1, 100, 254, INVALID] {
                for gfn in [0, 7, (1 << 36) - 1, INVALID64, pfn + SMMU_HOST_OFFSET] {
                    let p = S2Page { owner, count, gfn };
                    assert_eq!(PageMeta::pack(pfn, p).unwrap().unpack(pfn), p);
                }
            }
        }
        assert_eq!(
            PageMeta::pack(
                pfn,
                S2Page {
                    owner: 17,
                    count: 0,
                    gfn: 0
                }
            ),
            None
        );
        assert_eq!(
            PageMeta::pack(
                pfn,
                S2Page {
                    owner: 0,
                    count: 0,
                    gfn: 1 << 36
                }
            ),
            None
        );
    }
}
