//! Page export: sealing hides and authenticates a page; opening restores it exactly, and
//! refuses (leaving the page untouched) anything for another VM, another sequence number, a
//! bad magic or any altered bit. Image signatures are tested with the signer, in corevisor-sim.
#![cfg(feature = "crypto")]

use corevisor_kcore::crypto::{
    open_page, seal_page, verify_image, ExportHeader, ExportKey, ImageDigest, EXPORT_MAGIC,
    IMAGE_PUBKEY, PAGE_BYTES,
};
use proptest::prelude::*;

const KEY: ExportKey = ExportKey([0x5a; 32]);

fn sample_page() -> [u8; PAGE_BYTES] {
    let mut p = [0u8; PAGE_BYTES];
    for (i, b) in p.iter_mut().enumerate() {
        *b = (i * 31 + 7) as u8;
    }
    p
}

#[test]
fn header_words_layout_and_roundtrip() {
    let hdr = ExportHeader {
        magic: EXPORT_MAGIC,
        vmid: 0xdead_beef,
        seq: 0x0123_4567_89ab_cdef,
        tag: core::array::from_fn(|i| i as u8 + 1),
    };
    let w = hdr.to_words();
    assert_eq!(ExportHeader::WORDS, w.len());
    assert_eq!(w[0], EXPORT_MAGIC);
    assert_eq!(w[1], 0xdead_beef);
    assert_eq!(w[2], 0x0123_4567_89ab_cdef);
    assert_eq!(w[3], 0x0807_0605_0403_0201);
    assert_eq!(w[4], 0x100f_0e0d_0c0b_0a09);
    assert_eq!(ExportHeader::from_words(&w), hdr);
    assert_eq!(&EXPORT_MAGIC.to_le_bytes(), b"CVCVEXP1");
}

#[test]
fn roundtrip_restores_the_exact_page_and_hides_it() {
    let plain = sample_page();
    let mut page = plain;
    let hdr = seal_page(&KEY, 3, 1, &mut page);
    assert_eq!(hdr.magic, EXPORT_MAGIC);
    assert_eq!((hdr.vmid, hdr.seq), (3, 1));
    assert_ne!(page, plain, "ciphertext differs from plaintext");
    // Not just a few bytes: a stream cipher changes about 255/256 of them.
    let same = page.iter().zip(&plain).filter(|(a, b)| a == b).count();
    assert!(same < PAGE_BYTES / 64, "{same} bytes unchanged");
    // Through the word layout, as KCore stores it.
    let hdr2 = ExportHeader::from_words(&hdr.to_words());
    assert!(open_page(&KEY, 3, 1, &hdr2, &mut page));
    assert_eq!(page, plain);
}

#[test]
fn different_seqs_or_vms_give_different_ciphertexts() {
    let plain = sample_page();
    let (mut c0, mut c1, mut c2) = (plain, plain, plain);
    let h0 = seal_page(&KEY, 3, 0, &mut c0);
    let h1 = seal_page(&KEY, 3, 1, &mut c1);
    let h2 = seal_page(&KEY, 4, 0, &mut c2);
    assert_ne!(c0, c1);
    assert_ne!(h0.tag, h1.tag);
    assert_ne!(c0, c2);
    assert_ne!(h0.tag, h2.tag);
    // Deterministic for the same inputs (so nonce = (vmid, seq) must never repeat).
    let mut again = plain;
    assert_eq!(seal_page(&KEY, 3, 0, &mut again), h0);
    assert_eq!(again, c0);
}

/// Asserts `open_page` refuses and leaves the page bytes as they were.
fn assert_refused(key: &ExportKey, vmid: u32, seq: u64, hdr: &ExportHeader, page: &[u8; 4096]) {
    let mut p = *page;
    assert!(!open_page(key, vmid, seq, hdr, &mut p));
    assert_eq!(&p, page, "refused open changed the page");
}

#[test]
fn refusals_leave_the_page_unchanged() {
    let plain = sample_page();
    let mut ct = plain;
    let hdr = seal_page(&KEY, 3, 1, &mut ct);

    // Wrong vmid: both the caller's vmid and a header claiming another VM.
    assert_refused(&KEY, 4, 1, &hdr, &ct);
    assert_refused(&KEY, 4, 1, &ExportHeader { vmid: 4, ..hdr }, &ct);
    // Replay: the page sealed at seq 0, opened when the counter is at 1.
    let mut old = plain;
    let old_hdr = seal_page(&KEY, 3, 0, &mut old);
    assert_refused(&KEY, 3, 1, &old_hdr, &old);
    // ... also when the header is relabelled with the expected seq.
    assert_refused(&KEY, 3, 1, &ExportHeader { seq: 1, ..old_hdr }, &old);
    // Wrong expected seq for the current page.
    assert_refused(&KEY, 3, 2, &hdr, &ct);
    // Flipped ciphertext byte (first, middle, last).
    for i in [0, PAGE_BYTES / 2, PAGE_BYTES - 1] {
        let mut bad = ct;
        bad[i] ^= 0x40;
        assert_refused(&KEY, 3, 1, &hdr, &bad);
    }
    // Flipped tag bit.
    for bit in [0, 63, 64, 127] {
        let mut h = hdr;
        h.tag[bit / 8] ^= 1 << (bit % 8);
        assert_refused(&KEY, 3, 1, &h, &ct);
    }
    // Bad magic.
    assert_refused(
        &KEY,
        3,
        1,
        &ExportHeader {
            magic: EXPORT_MAGIC ^ 1,
            ..hdr
        },
        &ct,
    );
    // A vmid word that doesn't fit in 32 bits is not truncated into a valid header.
    let mut w = hdr.to_words();
    w[1] |= 1 << 32;
    assert_refused(&KEY, 3, 1, &ExportHeader::from_words(&w), &ct);
    // Another key.
    assert_refused(&ExportKey([0xa5; 32]), 3, 1, &hdr, &ct);

    // After all that, the genuine page still opens.
    let mut p = ct;
    assert!(open_page(&KEY, 3, 1, &hdr, &mut p));
    assert_eq!(p, plain);
}

#[test]
fn image_digest_requires_each_segment_to_get_exactly_its_size() {
    let digest = |feed: &dyn Fn(&mut ImageDigest)| {
        let mut d = ImageDigest::new();
        feed(&mut d);
        d
    };
    let exact = digest(&|d| {
        d.segment(0x1000, 4);
        d.update(&[1, 2]);
        d.update(&[3, 4]);
        d.segment(0x2000, 0);
    });
    assert!(exact.into_prehash().is_some());
    let short = digest(&|d| {
        d.segment(0x1000, 4);
        d.update(&[1, 2, 3]);
    });
    assert!(short.clone().into_prehash().is_none());
    assert!(!verify_image(&IMAGE_PUBKEY, short, &[0; 64]));
    let long = digest(&|d| {
        d.segment(0x1000, 4);
        d.update(&[1, 2, 3, 4, 5]);
    });
    assert!(long.into_prehash().is_none());
    let cut = digest(&|d| {
        d.segment(0x1000, 4);
        d.update(&[1, 2, 3]);
        d.segment(0x2000, 1);
        d.update(&[4]);
    });
    assert!(cut.into_prehash().is_none());
    // A garbage signature over a well-framed image is refused, not a panic.
    assert!(!verify_image(
        &IMAGE_PUBKEY,
        ImageDigest::new(),
        &[0xff; 64]
    ));
}

fn page_strategy() -> impl Strategy<Value = [u8; PAGE_BYTES]> {
    proptest::collection::vec(any::<u8>(), PAGE_BYTES).prop_map(|v| v.try_into().unwrap())
}

proptest! {
    #[test]
    fn prop_roundtrip_and_single_bit_flips_refused(
        plain in page_strategy(),
        key in any::<[u8; 32]>(),
        vmid in any::<u32>(),
        seq in any::<u64>(),
        ct_bit in 0..PAGE_BYTES * 8,
        tag_bit in 0..128usize,
    ) {
        let key = ExportKey(key);
        let mut ct = plain;
        let hdr = seal_page(&key, vmid, seq, &mut ct);

        let mut bad = ct;
        bad[ct_bit / 8] ^= 1 << (ct_bit % 8);
        let before = bad;
        prop_assert!(!open_page(&key, vmid, seq, &hdr, &mut bad));
        prop_assert_eq!(bad, before);

        let mut h = hdr;
        h.tag[tag_bit / 8] ^= 1 << (tag_bit % 8);
        let mut p = ct;
        prop_assert!(!open_page(&key, vmid, seq, &h, &mut p));
        prop_assert_eq!(p, ct);

        let mut p = ct;
        prop_assert!(open_page(&key, vmid, seq, &ExportHeader::from_words(&hdr.to_words()), &mut p));
        prop_assert_eq!(p, plain);
    }
}
