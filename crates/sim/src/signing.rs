//! The development image-signing key and the signer that goes with
//! [`corevisor_kcore::crypto::verify_image`]: how the simulator (and tests) make images that
//! KCore's verified boot accepts.

use corevisor_kcore::crypto::{ImageDigest, IMAGE_SIG_CONTEXT};
use ed25519_dalek::SigningKey;

/// Seed of the development signing key: SHA-512("corevisor development image key")[..32].
/// Public on purpose (a development key, not a secret); its public half is
/// [`corevisor_kcore::crypto::IMAGE_PUBKEY`].
pub const DEV_SIGNING_SEED: [u8; 32] = [
    155, 74, 117, 45, 127, 15, 244, 166, 21, 238, 81, 201, 124, 138, 201, 69, 16, 112, 142, 99,
    224, 253, 182, 191, 45, 142, 245, 180, 75, 125, 68, 20,
];

/// Signs an image, given as `(load_addr, bytes)` segments in load order (each segment's size
/// is its length), with the development key: Ed25519ph over the same [`ImageDigest`] KCore
/// computes, with [`IMAGE_SIG_CONTEXT`].
pub fn sign_image(segments: &[(u64, &[u8])]) -> [u8; 64] {
    let mut digest = ImageDigest::new();
    for &(load_addr, bytes) in segments {
        digest.segment(load_addr, bytes.len() as u64);
        digest.update(bytes);
    }
    let prehash = digest
        .into_prehash()
        .expect("each segment gets exactly its length in bytes");
    SigningKey::from_bytes(&DEV_SIGNING_SEED)
        .sign_prehashed(prehash, Some(IMAGE_SIG_CONTEXT))
        .expect("IMAGE_SIG_CONTEXT is at most 255 bytes")
        .to_bytes()
}
