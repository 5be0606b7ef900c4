//! The AEADs behind the cipher suites: AES-GCM (RFC 5116) and the
//! encrypt-then-MAC AES-CTR + HMAC construction of RFC 9605 §4.5.1.
//!
//! Keys are expanded once ([`AeadKey::new`]) and reused for every frame, so
//! the per-frame cost is the cipher itself. Every state here zeroizes on drop
//! (the RustCrypto `zeroize` features are on) and `Debug` prints only the
//! suite.

use aes::{Aes128, Aes256};
use aes_gcm::aead::{AeadInOut, KeyInit, inout::InOutBuf};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce, Tag};
use core::fmt;
use ctr::Ctr32BE;
use ctr::cipher::{InnerIvInit, StreamCipher, StreamCipherCoreWrapper};
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::suite::{CipherSuite, NONCE_LEN};
use crate::error::Error;

/// An expanded AEAD key for one suite. It can seal and open any number of
/// frames; nonce uniqueness is the caller's job (the [`super::KeyRing`] does
/// it with per-sender counters).
pub struct AeadKey {
    suite: CipherSuite,
    state: State,
}

// Every key lives in its own heap slot of the key ring already; boxing the
// larger variants would add a pointer chase to every frame for no saving.
#[allow(clippy::large_enum_variant)]
enum State {
    Gcm128(Aes128Gcm),
    Gcm256(Aes256Gcm),
    Ctr128 { aes: Aes128, mac: Hmac<Sha256> },
    Ctr256 { aes: Aes256, mac: Hmac<Sha512> },
}

impl AeadKey {
    /// Expands `key` (`Nk` bytes) for `suite`.
    ///
    /// # Errors
    /// [`Error::KeyLength`] when `key` is not `suite.key_len()` bytes.
    pub fn new(suite: CipherSuite, key: &[u8]) -> Result<Self, Error> {
        let expected = suite.key_len();
        if key.len() != expected {
            return Err(Error::KeyLength {
                len: key.len(),
                expected,
            });
        }
        let wrong = |_| Error::KeyLength {
            len: key.len(),
            expected,
        };
        let state = match suite {
            CipherSuite::AesGcm128Sha256 => {
                State::Gcm128(Aes128Gcm::new_from_slice(key).map_err(wrong)?)
            }
            CipherSuite::AesGcm256Sha512 => {
                State::Gcm256(Aes256Gcm::new_from_slice(key).map_err(wrong)?)
            }
            CipherSuite::AesCtr128HmacSha256_80
            | CipherSuite::AesCtr128HmacSha256_64
            | CipherSuite::AesCtr128HmacSha256_32 => {
                let (enc, auth) = key.split_at(16);
                State::Ctr128 {
                    aes: Aes128::new_from_slice(enc).map_err(wrong)?,
                    mac: <Hmac<Sha256> as KeyInit>::new_from_slice(auth).map_err(wrong)?,
                }
            }
            CipherSuite::AesCtr256HmacSha512_80
            | CipherSuite::AesCtr256HmacSha512_64
            | CipherSuite::AesCtr256HmacSha512_32 => {
                let (enc, auth) = key.split_at(32);
                State::Ctr256 {
                    aes: Aes256::new_from_slice(enc).map_err(wrong)?,
                    mac: <Hmac<Sha512> as KeyInit>::new_from_slice(auth).map_err(wrong)?,
                }
            }
        };
        Ok(Self { suite, state })
    }

    /// Overwrites the whole key state with the largest variant built from a
    /// zero key, whose own drop then wipes it. Each cipher wipes its own
    /// bytes when dropped, but a state moved into place (onto the heap, into
    /// a ring) carries whatever the stack held past the end of a smaller
    /// variant, and the key schedule's temporaries leave raw key bytes
    /// there: only an overwrite of the whole state reaches them. It costs an
    /// AES-256 and an HMAC-SHA-512 key set-up, so it is for keys that are
    /// kept, not for the per-frame keys of compact receivers.
    pub(crate) fn scrub(&mut self) {
        let zero = [0u8; 32];
        let aes = Aes256::new(&zero.into());
        let mac = <Hmac<Sha512> as KeyInit>::new(&[0u8; 128].into());
        self.state = State::Ctr256 { aes, mac };
    }

    /// The suite this key is for.
    #[must_use]
    pub const fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// Encrypts `input` into `output` (the same length) and writes the
    /// `Nt`-byte tag into `tag`.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when `output` or `tag` has the wrong length.
    #[inline]
    pub fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
        tag: &mut [u8],
    ) -> Result<(), Error> {
        let available = output.len();
        let buf = InOutBuf::new(input, output).map_err(|_| Error::BufferTooSmall {
            needed: input.len(),
            available,
        })?;
        self.seal_inout(nonce, aad, buf, tag)
    }

    /// Authenticates `input` with `tag`, then decrypts it into `output` (the
    /// same length). On failure `output` is left zeroed.
    ///
    /// # Errors
    /// [`Error::Authentication`] when the tag does not verify;
    /// [`Error::BufferTooSmall`] when `output` or `tag` has the wrong length.
    #[inline]
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Error> {
        let available = output.len();
        let buf = InOutBuf::new(input, output).map_err(|_| Error::BufferTooSmall {
            needed: input.len(),
            available,
        })?;
        self.open_inout(nonce, aad, buf, tag)
    }

    /// [`AeadKey::seal`] with the plaintext already in `buf`.
    ///
    /// # Errors
    /// As [`AeadKey::seal`].
    pub fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8],
    ) -> Result<(), Error> {
        self.seal_inout(nonce, aad, buf.into(), tag)
    }

    /// [`AeadKey::open`] with the ciphertext already in `buf`.
    ///
    /// # Errors
    /// As [`AeadKey::open`].
    pub fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Error> {
        self.open_inout(nonce, aad, buf.into(), tag)
    }

    fn check_tag_len(&self, len: usize) -> Result<(), Error> {
        let needed = self.suite.tag_len();
        if len == needed {
            Ok(())
        } else {
            Err(Error::BufferTooSmall {
                needed,
                available: len,
            })
        }
    }

    #[inline]
    fn seal_inout(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        mut buf: InOutBuf<'_, '_, u8>,
        tag: &mut [u8],
    ) -> Result<(), Error> {
        self.check_tag_len(tag.len())?;
        let nt = tag.len();
        let len = buf.len();
        match &self.state {
            State::Gcm128(gcm) => {
                let t = gcm
                    .encrypt_inout_detached(&Nonce::from(*nonce), aad, buf)
                    .map_err(|_| Error::FrameTooLong { len })?;
                tag.copy_from_slice(&t);
            }
            State::Gcm256(gcm) => {
                let t = gcm
                    .encrypt_inout_detached(&Nonce::from(*nonce), aad, buf)
                    .map_err(|_| Error::FrameTooLong { len })?;
                tag.copy_from_slice(&t);
            }
            State::Ctr128 { aes, mac } => {
                ctr_keystream(aes.clone(), nonce).apply_keystream_inout(buf.reborrow());
                hmac_tag(mac.clone(), nonce, aad, buf.get_out(), nt, tag);
            }
            State::Ctr256 { aes, mac } => {
                ctr_keystream(aes.clone(), nonce).apply_keystream_inout(buf.reborrow());
                hmac_tag(mac.clone(), nonce, aad, buf.get_out(), nt, tag);
            }
        }
        Ok(())
    }

    #[inline]
    fn open_inout(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        mut buf: InOutBuf<'_, '_, u8>,
        tag: &[u8],
    ) -> Result<(), Error> {
        self.check_tag_len(tag.len())?;
        let verified = match &self.state {
            State::Gcm128(gcm) => gcm
                .decrypt_inout_detached(&Nonce::from(*nonce), aad, buf.reborrow(), tag_16(tag)?)
                .is_ok(),
            State::Gcm256(gcm) => gcm
                .decrypt_inout_detached(&Nonce::from(*nonce), aad, buf.reborrow(), tag_16(tag)?)
                .is_ok(),
            State::Ctr128 { aes, mac } => {
                let ok = hmac_verify(mac.clone(), nonce, aad, buf.get_in(), tag);
                if ok {
                    ctr_keystream(aes.clone(), nonce).apply_keystream_inout(buf.reborrow());
                }
                ok
            }
            State::Ctr256 { aes, mac } => {
                let ok = hmac_verify(mac.clone(), nonce, aad, buf.get_in(), tag);
                if ok {
                    ctr_keystream(aes.clone(), nonce).apply_keystream_inout(buf.reborrow());
                }
                ok
            }
        };
        if verified {
            Ok(())
        } else {
            // Nothing unauthenticated may reach the caller.
            buf.get_out().fill(0);
            Err(Error::Authentication)
        }
    }
}

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadKey")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

fn tag_16(tag: &[u8]) -> Result<&Tag, Error> {
    <&Tag>::try_from(tag).map_err(|_| Error::BufferTooSmall {
        needed: 16,
        available: tag.len(),
    })
}

/// AES-CTR whose initial counter block is the nonce followed by four zero
/// bytes, counting in the last 32 bits (RFC 9605 §4.5.1).
fn ctr_keystream<C>(aes: C, nonce: &[u8; NONCE_LEN]) -> Ctr32BE<C>
where
    C: ctr::cipher::BlockCipherEncrypt<BlockSize = ctr::cipher::consts::U16>,
{
    let mut iv = ctr::cipher::Array::<u8, ctr::cipher::consts::U16>::default();
    iv[..NONCE_LEN].copy_from_slice(nonce);
    StreamCipherCoreWrapper::from_core(ctr::CtrCore::inner_iv_init(aes, &iv))
}

/// `compute_tag` of RFC 9605 §4.5.1: HMAC over the three lengths, the
/// nonce, the AAD and the ciphertext, truncated to `nt` bytes.
fn hmac_tag<M: Mac>(
    mut mac: M,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ct: &[u8],
    nt: usize,
    out: &mut [u8],
) {
    mac_input(&mut mac, nonce, aad, ct, nt);
    let full = mac.finalize().into_bytes();
    out.copy_from_slice(&full[..nt]);
}

fn hmac_verify<M: Mac>(
    mut mac: M,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ct: &[u8],
    tag: &[u8],
) -> bool {
    mac_input(&mut mac, nonce, aad, ct, tag.len());
    let full = mac.finalize().into_bytes();
    full[..tag.len()].ct_eq(tag).into()
}

fn mac_input<M: Mac>(mac: &mut M, nonce: &[u8; NONCE_LEN], aad: &[u8], ct: &[u8], nt: usize) {
    mac.update(&(aad.len() as u64).to_be_bytes());
    mac.update(&(ct.len() as u64).to_be_bytes());
    mac.update(&(nt as u64).to_be_bytes());
    mac.update(nonce);
    mac.update(aad);
    mac.update(ct);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `scrub` overwrites with the CTR-256 state: it must be the largest,
    /// or a larger state's tail would keep what it held.
    #[test]
    fn the_scrubbing_state_is_the_largest() {
        use core::mem::size_of;
        let ctr256 = size_of::<Aes256>() + size_of::<Hmac<Sha512>>();
        for other in [
            size_of::<Aes128Gcm>(),
            size_of::<Aes256Gcm>(),
            size_of::<Aes128>() + size_of::<Hmac<Sha256>>(),
        ] {
            assert!(other <= ctr256, "{other} > {ctr256}");
        }
    }
}
