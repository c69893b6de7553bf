//! The development key matches KCore's built-in public key, and images it signs verify in
//! KCore exactly as signed.

use corevisor_kcore::crypto::{verify_image, ImageDigest, IMAGE_PUBKEY};
use corevisor_sim::signing::{sign_image, DEV_SIGNING_SEED};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha512};

/// What KCore computes over the segments it loads: (load_addr, size, bytes).
fn digest_of(segments: &[(u64, u64, &[u8])]) -> ImageDigest {
    let mut d = ImageDigest::new();
    for &(addr, size, bytes) in segments {
        d.segment(addr, size);
        d.update(bytes);
    }
    d
}

fn verifies(segments: &[(u64, u64, &[u8])], sig: &[u8; 64]) -> bool {
    verify_image(&IMAGE_PUBKEY, digest_of(segments), sig)
}

fn image() -> (Vec<u8>, Vec<u8>) {
    let a: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
    let b: Vec<u8> = (0..333u32).map(|i| (i * 13 + 1) as u8).collect();
    (a, b)
}

const ADDR_A: u64 = 0x4008_0000;
const ADDR_B: u64 = 0x4400_0000;

#[test]
fn dev_seed_is_the_documented_hash() {
    let h = Sha512::digest(b"corevisor development image key");
    assert_eq!(DEV_SIGNING_SEED[..], h[..32]);
}

#[test]
fn image_pubkey_is_the_dev_keys_public_half() {
    let pk = SigningKey::from_bytes(&DEV_SIGNING_SEED)
        .verifying_key()
        .to_bytes();
    assert_eq!(IMAGE_PUBKEY, pk);
}

#[test]
fn signed_image_verifies_also_when_streamed_in_pieces() {
    let (a, b) = image();
    let sig = sign_image(&[(ADDR_A, &a), (ADDR_B, &b)]);
    assert!(verifies(
        &[(ADDR_A, a.len() as u64, &a), (ADDR_B, b.len() as u64, &b)],
        &sig
    ));
    let mut d = ImageDigest::new();
    d.segment(ADDR_A, a.len() as u64);
    for chunk in a.chunks(77) {
        d.update(chunk);
    }
    d.segment(ADDR_B, b.len() as u64);
    d.update(&b[..1]);
    d.update(&b[1..]);
    assert!(verify_image(&IMAGE_PUBKEY, d, &sig));
}

#[test]
fn any_tampering_is_refused() {
    let (a, b) = image();
    let sig = sign_image(&[(ADDR_A, &a), (ADDR_B, &b)]);
    let (la, lb) = (a.len() as u64, b.len() as u64);

    // One flipped byte: first, middle, last of each segment.
    for seg in 0..2 {
        let len = if seg == 0 { a.len() } else { b.len() };
        for i in [0, len / 2, len - 1] {
            let (mut a2, mut b2) = (a.clone(), b.clone());
            if seg == 0 {
                a2[i] ^= 0x01;
            } else {
                b2[i] ^= 0x80;
            }
            assert!(
                !verifies(&[(ADDR_A, la, &a2), (ADDR_B, lb, &b2)], &sig),
                "byte {i} of segment {seg} flipped"
            );
        }
    }
    // A moved segment.
    assert!(!verifies(
        &[(ADDR_A + 0x1000, la, &a), (ADDR_B, lb, &b)],
        &sig
    ));
    assert!(!verifies(&[(ADDR_A, la, &a), (ADDR_B - 8, lb, &b)], &sig));
    // A changed size: bytes moved from one segment to the next (same byte stream),
    // and a size that no longer matches the bytes.
    let ab: Vec<u8> = a.iter().chain(&b).copied().collect();
    let (a3, b3) = ab.split_at(a.len() - 1);
    assert!(!verifies(
        &[(ADDR_A, la - 1, a3), (ADDR_B, lb + 1, b3)],
        &sig
    ));
    assert!(!verifies(&[(ADDR_A, la + 1, &a), (ADDR_B, lb, &b)], &sig));
    assert!(!verifies(&[(ADDR_A, la, &a), (ADDR_B, lb - 1, &b)], &sig));
    // Swapped segment order.
    assert!(!verifies(&[(ADDR_B, lb, &b), (ADDR_A, la, &a)], &sig));
    // A dropped segment.
    assert!(!verifies(&[(ADDR_A, la, &a)], &sig));
    // Any one flipped signature bit.
    for bit in 0..512 {
        let mut s = sig;
        s[bit / 8] ^= 1 << (bit % 8);
        assert!(
            !verifies(&[(ADDR_A, la, &a), (ADDR_B, lb, &b)], &s),
            "signature bit {bit} flipped"
        );
    }
    // Sanity: the untouched image still verifies with the same helpers.
    assert!(verifies(&[(ADDR_A, la, &a), (ADDR_B, lb, &b)], &sig));
}

#[test]
fn sizes_are_signed_even_when_the_byte_stream_is_unchanged() {
    // Segment b starts with ADDR_B's own encoding, so moving those 8 bytes from b to the end
    // of a keeps addresses and bytes in the same order: only the sizes tell the images apart.
    let a = vec![0x11u8; 64];
    let b: Vec<u8> = ADDR_B
        .to_le_bytes()
        .iter()
        .chain(&[0x22; 40])
        .copied()
        .collect();
    let sig = sign_image(&[(ADDR_A, &a), (ADDR_B, &b)]);
    let (la, lb) = (a.len() as u64, b.len() as u64);
    assert!(verifies(&[(ADDR_A, la, &a), (ADDR_B, lb, &b)], &sig));
    let a2: Vec<u8> = a.iter().chain(&b[..8]).copied().collect();
    assert!(!verifies(
        &[(ADDR_A, la + 8, &a2), (ADDR_B, lb - 8, &b[8..])],
        &sig
    ));
}

#[test]
fn a_segment_fed_other_than_its_size_is_refused() {
    let (a, b) = image();
    let sig = sign_image(&[(ADDR_A, &a), (ADDR_B, &b)]);
    let (la, lb) = (a.len() as u64, b.len() as u64);
    // Segment A given, as its bytes, the exact rest of the hashed stream (B's header and
    // bytes): the SHA-512 input is identical, but B was never declared a segment.
    let mut d = ImageDigest::new();
    d.segment(ADDR_A, la);
    d.update(&a);
    d.update(&ADDR_B.to_le_bytes());
    d.update(&lb.to_le_bytes());
    d.update(&b);
    assert!(!verify_image(&IMAGE_PUBKEY, d, &sig));
    // A final segment left short.
    let mut d = ImageDigest::new();
    d.segment(ADDR_A, la);
    d.update(&a);
    d.segment(ADDR_B, lb);
    d.update(&b[..b.len() - 1]);
    assert!(!verify_image(&IMAGE_PUBKEY, d, &sig));
}

#[test]
fn other_key_or_context_is_refused() {
    let (a, b) = image();
    let segs = [
        (ADDR_A, a.len() as u64, &a[..]),
        (ADDR_B, b.len() as u64, &b[..]),
    ];
    // Signed by another key.
    let other = SigningKey::from_bytes(&[7; 32]);
    let sig = other
        .sign_prehashed(
            digest_of(&segs).into_prehash().unwrap(),
            Some(b"corevisor-image-v1"),
        )
        .unwrap()
        .to_bytes();
    assert!(!verifies(&segs, &sig));
    // Right key, other context.
    let dev = SigningKey::from_bytes(&DEV_SIGNING_SEED);
    let sig = dev
        .sign_prehashed(
            digest_of(&segs).into_prehash().unwrap(),
            Some(b"corevisor-image-v2"),
        )
        .unwrap()
        .to_bytes();
    assert!(!verifies(&segs, &sig));
    // Malformed public key (not a curve point) refuses rather than panicking.
    let good = sign_image(&[(ADDR_A, &a), (ADDR_B, &b)]);
    let mut bad_pk = [0xff; 32];
    bad_pk[31] = 0x7f;
    assert!(!verify_image(&bad_pk, digest_of(&segs), &good));
}
