//! Per-KID keys (RFC 9605 §4.4.2) and sealing or opening one frame with them
//! (§4.4.3, §4.4.4).

use core::fmt;
use hkdf::Hkdf;
use sha2::{Sha256, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::aead::AeadKey;
use super::header::{Header, MAX_HEADER_LEN};
use super::suite::{CipherSuite, Hash, MAX_KEY_LEN, NONCE_LEN};
use crate::error::Error;

/// The most metadata one frame may authenticate besides its header. The AAD
/// is assembled on the stack, so this bounds the stack, not the heap.
pub const MAX_METADATA_LEN: usize = 256;

const KEY_LABEL: &[u8] = b"SFrame 1.0 Secret key ";
const SALT_LABEL: &[u8] = b"SFrame 1.0 Secret salt ";

/// The key and salt for one KID: everything needed to seal or open its
/// frames. Derived once, then used for every frame of that KID.
pub struct FrameKey {
    aead: AeadKey,
    salt: Salt,
}

#[derive(Zeroize, ZeroizeOnDrop)]
struct Salt([u8; NONCE_LEN]);

/// `sframe_key` (its first `Nk` bytes) and `sframe_salt`.
pub(crate) type KeyAndSalt = (Zeroizing<[u8; MAX_KEY_LEN]>, Zeroizing<[u8; NONCE_LEN]>);

impl FrameKey {
    /// Wipes the whole key state (see `AeadKey::scrub`); for keys that are
    /// kept.
    pub(crate) fn scrub(&mut self) {
        self.aead.scrub();
    }

    /// `derive_key_salt(KID, base_key)` of RFC 9605 §4.4.2.
    ///
    /// # Errors
    /// [`Error::KeyLength`] only if the suite table is inconsistent (never
    /// for the suites in this crate).
    pub fn derive(suite: CipherSuite, base_key: &[u8], kid: u64) -> Result<Self, Error> {
        let (key, salt) = Self::derive_parts(suite, base_key, kid)?;
        Self::from_parts(suite, &key[..suite.key_len()], &salt)
    }

    /// `sframe_key` (the first `Nk` bytes) and `sframe_salt` for `kid`,
    /// without expanding the key for the AEAD.
    pub(crate) fn derive_parts(
        suite: CipherSuite,
        base_key: &[u8],
        kid: u64,
    ) -> Result<KeyAndSalt, Error> {
        let kid_bytes = kid.to_be_bytes();
        let suite_bytes = suite.id().to_be_bytes();
        let key_info: [&[u8]; 3] = [KEY_LABEL, &kid_bytes, &suite_bytes];
        let salt_info: [&[u8]; 3] = [SALT_LABEL, &kid_bytes, &suite_bytes];

        let mut key_bytes = Zeroizing::new([0u8; MAX_KEY_LEN]);
        let key = &mut key_bytes[..suite.key_len()];
        let mut salt = Zeroizing::new([0u8; NONCE_LEN]);
        let too_long = |_| Error::KeyLength {
            len: suite.key_len(),
            expected: suite.key_len(),
        };
        match suite.hash() {
            Hash::Sha256 => {
                let hkdf = Hkdf::<Sha256>::new(Some(&[]), base_key);
                hkdf.expand_multi_info(&key_info, key).map_err(too_long)?;
                hkdf.expand_multi_info(&salt_info, &mut *salt)
                    .map_err(too_long)?;
            }
            Hash::Sha512 => {
                let hkdf = Hkdf::<Sha512>::new(Some(&[]), base_key);
                hkdf.expand_multi_info(&key_info, key).map_err(too_long)?;
                hkdf.expand_multi_info(&salt_info, &mut *salt)
                    .map_err(too_long)?;
            }
        }
        Ok((key_bytes, salt))
    }

    /// A key from an already derived `sframe_key` and `sframe_salt`.
    ///
    /// # Errors
    /// [`Error::KeyLength`] when `key` is not `Nk` bytes for `suite`.
    pub fn from_parts(
        suite: CipherSuite,
        key: &[u8],
        salt: &[u8; NONCE_LEN],
    ) -> Result<Self, Error> {
        Ok(Self {
            aead: AeadKey::new(suite, key)?,
            salt: Salt(*salt),
        })
    }

    /// The suite this key seals with.
    #[must_use]
    pub const fn suite(&self) -> CipherSuite {
        self.aead.suite()
    }

    /// The AEAD nonce for `ctr`: the salt XOR the counter as a 12-byte
    /// big-endian integer.
    #[must_use]
    #[inline]
    pub fn nonce(&self, ctr: u64) -> [u8; NONCE_LEN] {
        let mut nonce = self.salt.0;
        for (n, c) in nonce[NONCE_LEN - 8..].iter_mut().zip(ctr.to_be_bytes()) {
            *n ^= c;
        }
        nonce
    }

    /// Bytes an SFrame ciphertext of `plaintext_len` bytes takes with `header`.
    #[must_use]
    pub fn ciphertext_len(&self, header: Header, plaintext_len: usize) -> usize {
        header.len() + plaintext_len + self.suite().tag_len()
    }

    /// Seals `plaintext` as one SFrame ciphertext (`header ‖ ct ‖ tag`)
    /// into `out`, with `header ‖ metadata` as AAD. Returns bytes written.
    ///
    /// The caller guarantees the (KID, CTR) pair in `header` is never used
    /// twice with this key; the [`super::KeyRing`] does so for MLS senders.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`], [`Error::MetadataTooLong`],
    /// [`Error::FrameTooLong`].
    #[inline]
    pub fn encrypt(
        &self,
        header: Header,
        metadata: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let needed = self.ciphertext_len(header, plaintext.len());
        let available = out.len();
        let out = out
            .get_mut(..needed)
            .ok_or(Error::BufferTooSmall { needed, available })?;
        let header_len = header.emit(out)?;
        let (header_bytes, body) = out.split_at_mut(header_len);
        let (ct, tag) = body.split_at_mut(plaintext.len());
        let aad_buf;
        let aad = if metadata.is_empty() {
            &*header_bytes
        } else {
            aad_buf = join_aad(header_bytes, metadata)?;
            &aad_buf.0[..aad_buf.1]
        };
        self.aead
            .seal(&self.nonce(header.ctr), aad, plaintext, ct, tag)?;
        Ok(needed)
    }

    /// Opens one SFrame ciphertext sealed with this key, writing the
    /// plaintext into `out`. Returns the header and the plaintext length.
    ///
    /// This checks only the cryptography: KID selection and replay are the
    /// [`super::KeyRing`]'s job.
    ///
    /// # Errors
    /// [`Error::Header`], [`Error::TooShort`], [`Error::BufferTooSmall`],
    /// [`Error::MetadataTooLong`], [`Error::Authentication`].
    pub fn decrypt(
        &self,
        metadata: &[u8],
        frame: &[u8],
        out: &mut [u8],
    ) -> Result<(Header, usize), Error> {
        let (header, header_len) = Header::parse(frame)?;
        let len = self.open_parts(header.ctr, frame, header_len, metadata, out)?;
        Ok((header, len))
    }

    /// Opens `frame`, whose header (carrying `ctr`) is `header_len` bytes.
    #[inline]
    pub(crate) fn open_parts(
        &self,
        ctr: u64,
        frame: &[u8],
        header_len: usize,
        metadata: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let tag_len = self.suite().tag_len();
        let min = header_len + tag_len;
        let pt_len = frame.len().checked_sub(min).ok_or(Error::TooShort {
            len: frame.len(),
            min,
        })?;
        let available = out.len();
        let out = out.get_mut(..pt_len).ok_or(Error::BufferTooSmall {
            needed: pt_len,
            available,
        })?;
        let (header_bytes, body) = frame.split_at(header_len);
        let (ct, tag) = body.split_at(pt_len);
        let aad_buf;
        let aad = if metadata.is_empty() {
            header_bytes
        } else {
            aad_buf = join_aad(header_bytes, metadata)?;
            &aad_buf.0[..aad_buf.1]
        };
        self.aead.open(&self.nonce(ctr), aad, ct, out, tag)?;
        Ok(pt_len)
    }
}

impl fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameKey")
            .field("suite", &self.suite())
            .finish_non_exhaustive()
    }
}

/// `header ‖ metadata` on the stack, with its length. Only called with
/// metadata: without, the header bytes are the AAD as they stand, and this
/// buffer is never zeroed.
fn join_aad(
    header: &[u8],
    metadata: &[u8],
) -> Result<([u8; MAX_HEADER_LEN + MAX_METADATA_LEN], usize), Error> {
    if metadata.len() > MAX_METADATA_LEN {
        return Err(Error::MetadataTooLong {
            len: metadata.len(),
        });
    }
    let mut buf = [0u8; MAX_HEADER_LEN + MAX_METADATA_LEN];
    let len = header.len() + metadata.len();
    buf[..header.len()].copy_from_slice(header);
    buf[header.len()..len].copy_from_slice(metadata);
    Ok((buf, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FrameKey {
        FrameKey::derive(CipherSuite::AesGcm128Sha256, &[7u8; 16], 3).unwrap()
    }

    #[test]
    fn seal_then_open_round_trips_with_metadata() {
        let key = key();
        let mut sealed = [0u8; 64];
        let n = key
            .encrypt(Header::new(3, 9), b"meta", b"hello", &mut sealed)
            .unwrap();
        assert_eq!(n, 1 + 1 + 5 + 16);
        let mut out = [0u8; 8];
        let (header, len) = key.decrypt(b"meta", &sealed[..n], &mut out).unwrap();
        assert_eq!(header, Header::new(3, 9));
        assert_eq!(&out[..len], b"hello");
    }

    #[test]
    fn altered_metadata_header_or_body_fails_authentication() {
        let key = key();
        let mut sealed = [0u8; 64];
        let n = key
            .encrypt(Header::new(3, 9), b"meta", b"hello", &mut sealed)
            .unwrap();
        let mut out = [0u8; 8];
        assert_eq!(
            key.decrypt(b"mete", &sealed[..n], &mut out),
            Err(Error::Authentication)
        );
        assert_eq!(out, [0u8; 8], "no unauthenticated plaintext leaks");
        for i in 0..n {
            let mut bad = sealed;
            bad[i] ^= 0x01;
            assert!(
                key.decrypt(b"meta", &bad[..n], &mut out).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn short_frames_and_buffers_are_typed_errors() {
        let key = key();
        let mut out = [0u8; 4];
        assert_eq!(
            key.decrypt(&[], &[0x00; 10], &mut out),
            Err(Error::TooShort { len: 10, min: 17 })
        );
        let mut sealed = [0u8; 10];
        assert_eq!(
            key.encrypt(Header::new(3, 9), &[], b"hello", &mut sealed),
            Err(Error::BufferTooSmall {
                needed: 23,
                available: 10
            })
        );
        let mut sealed = [0u8; 64];
        let n = key
            .encrypt(Header::new(3, 9), &[], b"hello", &mut sealed)
            .unwrap();
        assert_eq!(
            key.decrypt(&[], &sealed[..n], &mut out),
            Err(Error::BufferTooSmall {
                needed: 5,
                available: 4
            })
        );
        let long = [0u8; MAX_METADATA_LEN + 1];
        assert_eq!(
            key.encrypt(Header::new(3, 9), &long, b"x", &mut sealed),
            Err(Error::MetadataTooLong {
                len: MAX_METADATA_LEN + 1
            })
        );
    }

    #[test]
    fn debug_prints_no_key_material() {
        let text = alloc::format!("{:?}", key());
        assert_eq!(text, "FrameKey { suite: AesGcm128Sha256, .. }");
    }
}
