//! SFrame (RFC 9605): end-to-end protection of media frames.
//!
//! - [`Header`]: the KID and CTR in front of every ciphertext (§4.3).
//! - [`CipherSuite`] and [`AeadKey`]: AES-GCM and AES-CTR + HMAC (§4.5).
//! - [`FrameKey`]: key and salt for one KID (§4.4.2), sealing and opening one
//!   frame into caller buffers (§4.4.3–4).
//! - [`ReplayWindow`]: refuses a counter seen before, after authentication.
//! - [`KidLayout`] and [`KeyRing`]: the MLS scheme of §5.2, one base key per
//!   epoch, earlier epochs kept for a grace period, frames of the next
//!   epochs held until their key arrives ([`HoldLimits`]).
//!
//! Nothing here allocates per frame: sealing and opening write into the
//! caller's buffer, and the AAD is assembled on the stack. The one
//! allocations are a [`KeyRing`]'s first frame from a sender in an epoch,
//! which caches that sender's key, and a frame held for an epoch not
//! reached yet.

mod aead;
mod header;
mod key;
mod keyring;
mod kid;
mod pending;
mod replay;
mod suite;
mod wiped;

pub use aead::AeadKey;
pub use header::{Header, MAX_HEADER_LEN};
pub use key::{FrameKey, MAX_METADATA_LEN};
pub use keyring::{
    EPOCH_BITS, EpochSecret, KeyRing, KeyRingConfig, MAX_SEND_CONTEXTS, Opened, PREVIOUS_EPOCHS,
};
pub use kid::{KidLayout, MlsKid, sender_bits_for};
pub use pending::{FUTURE_EPOCHS, HeldFrame, HoldLimits, HoldStats};
pub use replay::ReplayWindow;
pub use suite::{ALL_SUITES, CipherSuite, MAX_KEY_LEN, MAX_TAG_LEN, NONCE_LEN};
