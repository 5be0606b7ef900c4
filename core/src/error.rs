//! The crate's one error type, with detail enums for the parts that have more
//! than one way to fail.

use core::fmt;

/// Everything `satsuma-core` can refuse. Every variant is safe to log: none
/// carries key material or plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The SFrame header could not be read.
    Header(HeaderError),
    /// The input is shorter than the smallest valid one.
    TooShort {
        /// Bytes the input has.
        len: usize,
        /// Bytes it needs at least.
        min: usize,
    },
    /// The caller's output buffer cannot hold the result.
    BufferTooSmall {
        /// Bytes the result needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// No key is known for this KID: a sender we have not heard of, an epoch
    /// not installed yet, or one already erased.
    UnknownKid {
        /// The KID from the header.
        kid: u64,
    },
    /// The frame was sealed in an epoch this member has not reached yet (its
    /// commit is still on the way): hold it with
    /// [`KeyRing::hold`](crate::sframe::KeyRing::hold) and open it once the
    /// epoch is installed.
    FutureEpoch {
        /// The KID from the header.
        kid: u64,
    },
    /// The frame carries our own KID: keys are for sending or for receiving,
    /// never both (RFC 9605 §4.4.1), so a reflected frame is refused.
    OwnKid {
        /// The KID from the header.
        kid: u64,
    },
    /// The tag did not verify: the frame, its header or its metadata was
    /// altered, or it was sealed with another key.
    Authentication,
    /// This CTR was already accepted for this KID, or is older than the
    /// replay window.
    Replay {
        /// The KID from the header.
        kid: u64,
        /// The refused counter.
        ctr: u64,
    },
    /// A frame longer than the AEAD can seal (AES-GCM: 2^36 - 32 bytes).
    FrameTooLong {
        /// Bytes given.
        len: usize,
    },
    /// No epoch is installed yet, so there is no key to seal with.
    NoEpoch,
    /// Sending is switched off until the next epoch (a member that
    /// restarted more often within one epoch than it has KID contexts).
    SendingDisabled,
    /// An epoch that is not newer than the current one.
    StaleEpoch {
        /// The epoch offered.
        epoch: u64,
        /// The current epoch.
        current: u64,
    },
    /// The sender's counter for this key is used up; a new epoch is needed.
    CounterExhausted,
    /// More metadata than [`crate::sframe::MAX_METADATA_LEN`].
    MetadataTooLong {
        /// Bytes given.
        len: usize,
    },
    /// A cipher suite number this build does not implement.
    UnsupportedCipherSuite(u16),
    /// A key of the wrong length for the suite.
    KeyLength {
        /// Bytes given.
        len: usize,
        /// Bytes the suite needs.
        expected: usize,
    },
    /// A KID layout or KID field that does not fit in 64 bits.
    Kid(KidError),
    /// A frame that does not follow its codec's rules.
    Media(MediaError),
}

/// Why an SFrame header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum HeaderError {
    /// The bytes end inside the header.
    Truncated,
    /// A KID or CTR is not in its shortest encoding.
    NonMinimal,
}

/// Why a KID layout or KID could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum KidError {
    /// Sender-index bits plus epoch bits exceed 64, or epoch bits are 0.
    Layout {
        /// Bits for the sender index (S).
        sender_bits: u8,
        /// Bits for the epoch (E).
        epoch_bits: u8,
    },
    /// The sender index does not fit in S bits.
    SenderIndex {
        /// The index.
        index: u64,
        /// Bits available.
        bits: u8,
    },
    /// The context does not fit in the bits left over.
    Context {
        /// The context.
        context: u64,
    },
}

/// Why a media frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum MediaError {
    /// A protected frame whose clear-prefix length byte is larger than its
    /// codec ever sends.
    ClearPrefixLength {
        /// The length byte.
        len: u8,
        /// The codec's largest prefix.
        max: u8,
    },
    /// A VP8 key frame without the start code 9d 01 2a (RFC 6386 §9.1).
    Vp8StartCode,
}

impl From<HeaderError> for Error {
    fn from(e: HeaderError) -> Self {
        Self::Header(e)
    }
}

impl From<KidError> for Error {
    fn from(e: KidError) -> Self {
        Self::Kid(e)
    }
}

impl From<MediaError> for Error {
    fn from(e: MediaError) -> Self {
        Self::Media(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(e) => write!(f, "bad SFrame header: {e}"),
            Self::TooShort { len, min } => {
                write!(f, "input too short: {len} bytes, need at least {min}")
            }
            Self::BufferTooSmall { needed, available } => write!(
                f,
                "output buffer too small: need {needed} bytes, have {available}"
            ),
            Self::UnknownKid { kid } => write!(f, "no key for KID {kid:#x}"),
            Self::FutureEpoch { kid } => write!(
                f,
                "KID {kid:#x} is from an epoch not reached yet; hold the frame"
            ),
            Self::OwnKid { kid } => write!(
                f,
                "frame carries our own sending KID {kid:#x}; refusing a reflected frame"
            ),
            Self::Authentication => {
                f.write_str("authentication failed: frame altered or wrong key")
            }
            Self::Replay { kid, ctr } => {
                write!(f, "replayed or too old: KID {kid:#x} CTR {ctr}")
            }
            Self::FrameTooLong { len } => write!(f, "frame of {len} bytes is too long to seal"),
            Self::NoEpoch => f.write_str("no epoch installed yet"),
            Self::SendingDisabled => f.write_str("sending is off until the next epoch"),
            Self::StaleEpoch { epoch, current } => {
                write!(
                    f,
                    "epoch {epoch} is not newer than the current epoch {current}"
                )
            }
            Self::CounterExhausted => f.write_str("sending counter exhausted; rekey needed"),
            Self::MetadataTooLong { len } => write!(
                f,
                "metadata of {len} bytes exceeds the limit of {}",
                crate::sframe::MAX_METADATA_LEN
            ),
            Self::UnsupportedCipherSuite(id) => write!(f, "unsupported cipher suite {id:#06x}"),
            Self::KeyLength { len, expected } => {
                write!(f, "key is {len} bytes, the suite needs {expected}")
            }
            Self::Kid(e) => write!(f, "bad KID: {e}"),
            Self::Media(e) => write!(f, "bad media frame: {e}"),
        }
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated"),
            Self::NonMinimal => f.write_str("KID or CTR not minimally encoded"),
        }
    }
}

impl fmt::Display for KidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Layout {
                sender_bits,
                epoch_bits,
            } => write!(
                f,
                "layout of {sender_bits} sender bits and {epoch_bits} epoch bits does not fit"
            ),
            Self::SenderIndex { index, bits } => {
                write!(f, "sender index {index} does not fit in {bits} bits")
            }
            Self::Context { context } => write!(f, "context {context} does not fit"),
        }
    }
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClearPrefixLength { len, max } => {
                write!(
                    f,
                    "clear prefix of {len} bytes, the codec sends at most {max}"
                )
            }
            Self::Vp8StartCode => f.write_str("VP8 key frame without its start code"),
        }
    }
}

impl core::error::Error for Error {}
impl core::error::Error for HeaderError {}
impl core::error::Error for KidError {}
impl core::error::Error for MediaError {}
