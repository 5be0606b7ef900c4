//! MLS (RFC 9420) for calls: every call is an MLS group whose key changes
//! whenever someone joins or leaves, and every epoch's SFrame base key comes
//! from that group's exporter (RFC 9605 §5.2).
//!
//! - [`SatsumaCrypto`]: the crypto provider under mls-rs (suite 0x0001 on
//!   hpke-rs and RustCrypto, randomness seeded by the platform).
//! - [`Session`]: one member: key packages, create, join, commit, process,
//!   the roster, safety numbers, and the SFrame [`KeyRing`](crate::sframe::KeyRing)
//!   kept in step with the epoch. No network IO and no clock; it saves its
//!   state through a [`Store`] inside each operation that changes it.
//! - [`Store`]: where a member's state survives a restart.
//!
//! The crypto is fixed rather than a provider the caller passes in: a
//! [`Session`] runs on [`SatsumaCrypto`] alone, and the SFrame ciphers call
//! the same RustCrypto crates directly; only randomness, as a seed, comes
//! from the platform. Satsuma speaks one MLS cipher suite, 0x0001, and one
//! implementation of it, sharing AES, SHA-2 and HMAC with SFrame, keeps the
//! core small on the Cortex-M4. The cost: a board with an AES peripheral
//! cannot put it to use. `docs/mls.md` (*Crypto provider*) has the details.

mod credential;
mod error;
mod provider;
mod rules;
mod safety;
mod session;
mod store;
mod trust;

pub use credential::{
    CredentialError, MAX_DEVICE_ID_LEN, MAX_DISPLAY_NAME_LEN, MemberInfo, SatsumaIdentityProvider,
};
pub use error::SessionError;
pub use provider::{CryptoError, SUITE, SatsumaCrypto};
pub use safety::{FINGERPRINT_GROUPS, IdentityFingerprint, SAFETY_NUMBER_GROUPS, SafetyNumber};
pub use session::{
    CLOCK_SKEW, Commit, Event, KEY_PACKAGE_LIFETIME, MAX_KEY_PACKAGES, REMEMBERED_KEY_PACKAGES,
    RosterEntry, SFRAME_EXPORTER_LABEL, Session, SessionConfig,
};
pub use store::{MemoryStore, Store, StoreError};
pub use trust::{Introduction, TRUSTED_IDENTITIES, Trust};
