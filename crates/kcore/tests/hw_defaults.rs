//! The `Hw` trait's provided methods, on a machine that overrides none of them (as the
//! EL2 image's `El2Hw` does for the device accesses): zeroing touches exactly its range,
//! and a machine with no SMMU refuses every device-register access.

use corevisor_kcore::hw::{Hw, MmioAbort, MmioWidth};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// RAM as a word map; every word not written reads as its own address.
#[derive(Default)]
struct Words(RefCell<BTreeMap<u64, u64>>);

impl Hw for Words {
    fn read64(&self, pa: u64) -> u64 {
        *self.0.borrow().get(&pa).unwrap_or(&pa)
    }
    fn write64(&self, pa: u64, v: u64) {
        self.0.borrow_mut().insert(pa, v);
    }
    fn tlbi_ipa(&self, _vmid: u32, _ipa: u64) {}
    fn tlbi_vmid(&self, _vmid: u32) {}
}

#[test]
fn zero_page_clears_all_512_words_of_its_page_and_nothing_else() {
    let m = Words::default();
    let page = 0x4000_3000;
    m.zero_page(page);
    for w in 0..512 {
        assert_eq!(m.read64(page + 8 * w), 0, "word {w} of the page");
    }
    assert_eq!(m.0.borrow().len(), 512, "a write outside the page");
    assert_eq!(m.read64(page - 8), page - 8);
    assert_eq!(m.read64(page + 4096), page + 4096);
}

#[test]
fn zero_range_clears_a_range_of_words() {
    let m = Words::default();
    m.zero_range(0x1_0008, 24);
    let written: Vec<(u64, u64)> = m.0.borrow().iter().map(|(a, v)| (*a, *v)).collect();
    assert_eq!(written, [(0x1_0008, 0), (0x1_0010, 0), (0x1_0018, 0)]);
}

#[test]
fn a_machine_without_an_smmu_refuses_every_device_access() {
    let m = Words::default();
    for w in [MmioWidth::W32, MmioWidth::W64] {
        assert_eq!(m.mmio_read(0x900_0000, w), Err(MmioAbort));
        assert_eq!(m.mmio_write(0x900_0000, w, 7), Err(MmioAbort));
    }
    assert!(
        m.0.borrow().is_empty(),
        "a refused device access touched RAM"
    );
}
