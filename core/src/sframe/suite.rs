//! SFrame cipher suites (RFC 9605 §4.5 and the IANA registry of §8.1).

use crate::error::Error;

/// An SFrame cipher suite: the AEAD that seals frames and the hash that
/// derives their keys.
///
/// Suites 0x0001–0x0005 are the RFC's. 0x0006–0x0008 are the AES-256 variants
/// of the CTR+HMAC construction, with SHA-512, that the SFrame working group's
/// reference implementation defines and publishes vectors for; they are not in
/// the IANA registry and Satsuma never offers them by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
#[repr(u16)]
pub enum CipherSuite {
    /// `AES_128_CTR_HMAC_SHA256_80` (0x0001).
    AesCtr128HmacSha256_80 = 0x0001,
    /// `AES_128_CTR_HMAC_SHA256_64` (0x0002).
    AesCtr128HmacSha256_64 = 0x0002,
    /// `AES_128_CTR_HMAC_SHA256_32` (0x0003).
    AesCtr128HmacSha256_32 = 0x0003,
    /// `AES_128_GCM_SHA256_128` (0x0004), Satsuma's default.
    #[default]
    AesGcm128Sha256 = 0x0004,
    /// `AES_256_GCM_SHA512_128` (0x0005).
    AesGcm256Sha512 = 0x0005,
    /// `AES_256_CTR_HMAC_SHA512_80` (0x0006, not IANA-registered).
    AesCtr256HmacSha512_80 = 0x0006,
    /// `AES_256_CTR_HMAC_SHA512_64` (0x0007, not IANA-registered).
    AesCtr256HmacSha512_64 = 0x0007,
    /// `AES_256_CTR_HMAC_SHA512_32` (0x0008, not IANA-registered).
    AesCtr256HmacSha512_32 = 0x0008,
}

/// The hash a suite uses for HKDF and, for CTR suites, HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha512,
}

/// Every suite this build implements, in registry order.
pub const ALL_SUITES: [CipherSuite; 8] = [
    CipherSuite::AesCtr128HmacSha256_80,
    CipherSuite::AesCtr128HmacSha256_64,
    CipherSuite::AesCtr128HmacSha256_32,
    CipherSuite::AesGcm128Sha256,
    CipherSuite::AesGcm256Sha512,
    CipherSuite::AesCtr256HmacSha512_80,
    CipherSuite::AesCtr256HmacSha512_64,
    CipherSuite::AesCtr256HmacSha512_32,
];

/// Every SFrame nonce is 12 bytes (`Nn`).
pub const NONCE_LEN: usize = 12;

/// The largest `Nk` of any suite: AES-256 + HMAC-SHA-512 keys.
pub const MAX_KEY_LEN: usize = 96;

/// The largest `Nt` of any suite.
pub const MAX_TAG_LEN: usize = 16;

impl CipherSuite {
    /// The suite with this registry number.
    ///
    /// # Errors
    /// [`Error::UnsupportedCipherSuite`] for any other number.
    pub const fn from_id(id: u16) -> Result<Self, Error> {
        Ok(match id {
            0x0001 => Self::AesCtr128HmacSha256_80,
            0x0002 => Self::AesCtr128HmacSha256_64,
            0x0003 => Self::AesCtr128HmacSha256_32,
            0x0004 => Self::AesGcm128Sha256,
            0x0005 => Self::AesGcm256Sha512,
            0x0006 => Self::AesCtr256HmacSha512_80,
            0x0007 => Self::AesCtr256HmacSha512_64,
            0x0008 => Self::AesCtr256HmacSha512_32,
            other => return Err(Error::UnsupportedCipherSuite(other)),
        })
    }

    /// The registry number, as it goes into key-derivation labels.
    #[must_use]
    pub const fn id(self) -> u16 {
        self as u16
    }

    /// `Nk`: bytes of the AEAD key (for CTR suites, `Nka + Nh`).
    #[must_use]
    pub const fn key_len(self) -> usize {
        match self {
            Self::AesGcm128Sha256 => 16,
            Self::AesGcm256Sha512 => 32,
            Self::AesCtr128HmacSha256_80
            | Self::AesCtr128HmacSha256_64
            | Self::AesCtr128HmacSha256_32 => 16 + 32,
            Self::AesCtr256HmacSha512_80
            | Self::AesCtr256HmacSha512_64
            | Self::AesCtr256HmacSha512_32 => 32 + 64,
        }
    }

    /// `Nt`: bytes of authentication tag each frame carries.
    #[must_use]
    pub const fn tag_len(self) -> usize {
        match self {
            Self::AesGcm128Sha256 | Self::AesGcm256Sha512 => 16,
            Self::AesCtr128HmacSha256_80 | Self::AesCtr256HmacSha512_80 => 10,
            Self::AesCtr128HmacSha256_64 | Self::AesCtr256HmacSha512_64 => 8,
            Self::AesCtr128HmacSha256_32 | Self::AesCtr256HmacSha512_32 => 4,
        }
    }

    /// `Nka`: bytes of the AES key inside a CTR suite's key; `None` for GCM.
    #[must_use]
    pub const fn cipher_key_len(self) -> Option<usize> {
        match self {
            Self::AesGcm128Sha256 | Self::AesGcm256Sha512 => None,
            Self::AesCtr128HmacSha256_80
            | Self::AesCtr128HmacSha256_64
            | Self::AesCtr128HmacSha256_32 => Some(16),
            Self::AesCtr256HmacSha512_80
            | Self::AesCtr256HmacSha512_64
            | Self::AesCtr256HmacSha512_32 => Some(32),
        }
    }

    /// The suite's name as the registry spells it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::AesCtr128HmacSha256_80 => "AES_128_CTR_HMAC_SHA256_80",
            Self::AesCtr128HmacSha256_64 => "AES_128_CTR_HMAC_SHA256_64",
            Self::AesCtr128HmacSha256_32 => "AES_128_CTR_HMAC_SHA256_32",
            Self::AesGcm128Sha256 => "AES_128_GCM_SHA256_128",
            Self::AesGcm256Sha512 => "AES_256_GCM_SHA512_128",
            Self::AesCtr256HmacSha512_80 => "AES_256_CTR_HMAC_SHA512_80",
            Self::AesCtr256HmacSha512_64 => "AES_256_CTR_HMAC_SHA512_64",
            Self::AesCtr256HmacSha512_32 => "AES_256_CTR_HMAC_SHA512_32",
        }
    }

    pub(crate) const fn hash(self) -> Hash {
        match self {
            Self::AesCtr128HmacSha256_80
            | Self::AesCtr128HmacSha256_64
            | Self::AesCtr128HmacSha256_32
            | Self::AesGcm128Sha256 => Hash::Sha256,
            Self::AesGcm256Sha512
            | Self::AesCtr256HmacSha512_80
            | Self::AesCtr256HmacSha512_64
            | Self::AesCtr256HmacSha512_32 => Hash::Sha512,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_constants_match_the_rfc_table() {
        for suite in ALL_SUITES {
            assert_eq!(CipherSuite::from_id(suite.id()), Ok(suite));
        }
        // RFC 9605 §4.5 table: Nk and Nt.
        assert_eq!(CipherSuite::AesCtr128HmacSha256_80.key_len(), 48);
        assert_eq!(CipherSuite::AesCtr128HmacSha256_32.tag_len(), 4);
        assert_eq!(CipherSuite::AesGcm256Sha512.key_len(), 32);
        assert_eq!(CipherSuite::default(), CipherSuite::AesGcm128Sha256);
        assert_eq!(
            CipherSuite::from_id(0),
            Err(Error::UnsupportedCipherSuite(0))
        );
        assert_eq!(
            CipherSuite::from_id(9),
            Err(Error::UnsupportedCipherSuite(9))
        );
    }
}
