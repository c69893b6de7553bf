//! Cryptographic primitives of KCore, `no_std` and allocation-free.
//!
//! * Verified boot: an image is a list of segments; KCore hashes each segment's load address,
//!   size and bytes into SHA-512 ([`ImageDigest`]) and checks an Ed25519ph signature over that
//!   digest ([`verify_image`]), so that what is signed is exactly where and what is loaded.
//! * VM-state export: one 4 KiB page of a VM is sealed with ChaCha20-Poly1305 under a key that
//!   never leaves EL2 ([`seal_page`]), and opened only for the same VM at the sequence number
//!   the caller expects ([`open_page`]), so the host can store pages but not read, alter,
//!   move between VMs or replay them.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha512};

/// Domain-separation context of image signatures (Ed25519ph, RFC 8032 §5.1), so that an image
/// signature can't be replayed as a signature of anything else made with the same key.
pub const IMAGE_SIG_CONTEXT: &[u8] = b"corevisor-image-v1";

/// KCore's fixed image-signing public key: the public half of the development key in
/// `corevisor_sim::signing` (its test checks the two agree).
pub const IMAGE_PUBKEY: [u8; 32] = [
    18, 12, 151, 75, 245, 54, 138, 196, 55, 183, 65, 153, 191, 57, 171, 15, 120, 228, 81, 237, 104,
    127, 167, 57, 212, 8, 179, 126, 145, 27, 59, 42,
];

/// Streams an image into SHA-512: for each segment in load order, `segment(load_addr, size)`
/// then its bytes via `update` (in as many pieces as convenient).
///
/// Each segment's header (load address and size, little-endian) is hashed before its bytes,
/// so moving, resizing or reordering segments changes the digest. The digest also records
/// whether every segment got exactly `size` bytes: if not, the framing would be ambiguous, and
/// [`verify_image`] refuses it.
#[derive(Clone, Debug, Default)]
pub struct ImageDigest {
    hasher: Sha512,
    /// Bytes still owed to the current segment.
    remaining: u64,
    /// False once a segment got more or fewer bytes than its size.
    framed: bool,
}

impl ImageDigest {
    /// An empty image.
    pub fn new() -> Self {
        Self {
            hasher: Sha512::new(),
            remaining: 0,
            framed: true,
        }
    }

    /// Starts a segment of `size` bytes loaded at `load_addr`.
    pub fn segment(&mut self, load_addr: u64, size: u64) {
        if self.remaining != 0 {
            self.framed = false;
        }
        self.hasher.update(load_addr.to_le_bytes());
        self.hasher.update(size.to_le_bytes());
        self.remaining = size;
    }

    /// Hashes the next bytes of the current segment.
    pub fn update(&mut self, bytes: &[u8]) {
        let len = bytes.len() as u64;
        if len > self.remaining {
            self.framed = false;
            self.remaining = 0;
        } else {
            self.remaining -= len;
        }
        self.hasher.update(bytes);
    }

    /// The SHA-512 state to sign or verify with Ed25519ph, or `None` if some segment did not
    /// get exactly its size in bytes. For signers (`corevisor_sim::signing`).
    pub fn into_prehash(self) -> Option<Sha512> {
        (self.framed && self.remaining == 0).then_some(self.hasher)
    }
}

/// Ed25519ph verification of `sig` over `digest` with [`IMAGE_SIG_CONTEXT`]; false on any
/// malformed key or signature, or a digest whose segments got the wrong number of bytes.
///
/// Uses the strict check (rejects weak keys and non-canonical signatures): a boot image has
/// exactly one valid signature.
pub fn verify_image(pubkey: &[u8; 32], digest: ImageDigest, sig: &[u8; 64]) -> bool {
    let Some(prehash) = digest.into_prehash() else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(pubkey) else {
        return false;
    };
    let sig = Signature::from_bytes(sig);
    key.verify_prehashed_strict(prehash, Some(IMAGE_SIG_CONTEXT), &sig)
        .is_ok()
}

/// Magic of an [`ExportHeader`]: ASCII "CVCVEXP1" read as a little-endian `u64`, so a stray
/// or differently-formatted header is refused before any cryptography.
pub const EXPORT_MAGIC: u64 = 0x3150_5845_5643_5643;

/// Size of an exported page.
pub const PAGE_BYTES: usize = 4096;

/// The header KCore writes next to a sealed page: what is needed to open it, and its tag.
/// magic, vmid and seq are authenticated as associated data; vmid and seq also make the nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportHeader {
    pub magic: u64,
    pub vmid: u32,
    pub seq: u64,
    pub tag: [u8; 16],
}

impl ExportHeader {
    /// Number of 64-bit words of [`ExportHeader::to_words`].
    pub const WORDS: usize = 5;

    /// `[magic, vmid, seq, tag[0..8] LE, tag[8..16] LE]`: the layout written to memory.
    pub fn to_words(&self) -> [u64; 5] {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&self.tag[..8]);
        hi.copy_from_slice(&self.tag[8..]);
        [
            self.magic,
            u64::from(self.vmid),
            self.seq,
            u64::from_le_bytes(lo),
            u64::from_le_bytes(hi),
        ]
    }

    /// Inverse of [`ExportHeader::to_words`]. A word 1 above `u32::MAX` is no vmid: it yields
    /// magic 0, so that [`open_page`] refuses the header rather than truncating the vmid.
    pub fn from_words(w: &[u64; 5]) -> Self {
        let (magic, vmid) = match u32::try_from(w[1]) {
            Ok(vmid) => (w[0], vmid),
            Err(_) => (0, 0),
        };
        let mut tag = [0u8; 16];
        tag[..8].copy_from_slice(&w[3].to_le_bytes());
        tag[8..].copy_from_slice(&w[4].to_le_bytes());
        Self {
            magic,
            vmid,
            seq: w[2],
            tag,
        }
    }
}

/// Key KCore holds for page export (never leaves EL2).
pub struct ExportKey(pub [u8; 32]);

/// nonce = vmid (4 bytes LE) || seq (8 bytes LE): unique per (VM, sequence number), which the
/// caller never reuses under one key.
fn nonce(vmid: u32, seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&vmid.to_le_bytes());
    n[4..].copy_from_slice(&seq.to_le_bytes());
    n
}

/// AAD = magic (8 bytes LE) || vmid (4 bytes LE) || seq (8 bytes LE).
fn aad(magic: u64, vmid: u32, seq: u64) -> [u8; 20] {
    let mut a = [0u8; 20];
    a[..8].copy_from_slice(&magic.to_le_bytes());
    a[8..12].copy_from_slice(&vmid.to_le_bytes());
    a[12..].copy_from_slice(&seq.to_le_bytes());
    a
}

/// Encrypts `page` in place (ChaCha20-Poly1305) for VM `vmid` at sequence number `seq`;
/// returns the header to store next to it.
pub fn seal_page(
    key: &ExportKey,
    vmid: u32,
    seq: u64,
    page: &mut [u8; PAGE_BYTES],
) -> ExportHeader {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key.0));
    let n = nonce(vmid, seq);
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&n), &aad(EXPORT_MAGIC, vmid, seq), page)
        // Only buffers over 256 GiB are refused.
        .expect("ChaCha20-Poly1305 seals a 4 KiB page");
    ExportHeader {
        magic: EXPORT_MAGIC,
        vmid,
        seq,
        tag: tag.into(),
    }
}

/// Decrypts `page` in place if `hdr`'s magic is [`EXPORT_MAGIC`], its vmid is `vmid`, its seq
/// is `expected_seq` (replay protection is the caller's counter) and the tag verifies.
/// On any failure returns false and leaves `page` unchanged: decryption runs on a stack copy,
/// which is written back only once authenticated.
pub fn open_page(
    key: &ExportKey,
    vmid: u32,
    expected_seq: u64,
    hdr: &ExportHeader,
    page: &mut [u8; PAGE_BYTES],
) -> bool {
    if hdr.magic != EXPORT_MAGIC || hdr.vmid != vmid || hdr.seq != expected_seq {
        return false;
    }
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key.0));
    let n = nonce(vmid, expected_seq);
    let mut copy = *page;
    let ok = cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&n),
            &aad(EXPORT_MAGIC, vmid, expected_seq),
            &mut copy,
            Tag::from_slice(&hdr.tag),
        )
        .is_ok();
    if ok {
        *page = copy;
    }
    ok
}
