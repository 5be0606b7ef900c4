//! Numbers people compare: a member's identity fingerprint and the group's
//! safety number.
//!
//! Both are decimal digits in groups of five, shown whole. A short prefix
//! would let an attacker search for a key or group state that matches the
//! part people look at.
//!
//! - **Identity fingerprint**: 30 digits from
//!   `SHA-256("Satsuma identity fingerprint v1" ‖ Ed25519 public key)`. It
//!   is a member's own, the same in every call.
//! - **Safety number**: 40 digits from
//!   `SHA-512("Satsuma safety number v1" ‖ epoch_authenticator)`. RFC 9420's
//!   epoch authenticator is derived from the epoch's key schedule, which
//!   commits to the group context: the group id, the epoch, and the hash of
//!   the whole ratchet tree with every member's keys and credentials. Two
//!   members see the same safety number exactly when they are in the same
//!   group state: a server that split the call would have to make them see
//!   different numbers. It does not reveal a member the server got added
//!   (that member is in everyone's group state); the roster's fingerprints
//!   do. It changes with every epoch.
//!
//! Each group of five digits is a 5-byte big-endian chunk of the hash
//! reduced mod 100 000 (bias below 2⁻²³ per group).

use core::fmt;

use sha2::{Digest, Sha256, Sha512};

const FINGERPRINT_LABEL: &[u8] = b"Satsuma identity fingerprint v1";
const SAFETY_LABEL: &[u8] = b"Satsuma safety number v1";

/// Groups of five digits in an [`IdentityFingerprint`].
pub const FINGERPRINT_GROUPS: usize = 6;
/// Groups of five digits in a [`SafetyNumber`].
pub const SAFETY_NUMBER_GROUPS: usize = 8;

fn groups<const N: usize>(hash: &[u8]) -> [u32; N] {
    let mut out = [0u32; N];
    for (group, chunk) in out.iter_mut().zip(hash.chunks_exact(5)) {
        let value = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        // Below 100 000, so it fits.
        *group = u32::try_from(value % 100_000).unwrap_or(0);
    }
    out
}

fn write_groups(f: &mut fmt::Formatter<'_>, groups: &[u32]) -> fmt::Result {
    for (i, group) in groups.iter().enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{group:05}")?;
    }
    Ok(())
}

/// 30 digits that name one member's signature key, shown as
/// `12345 67890 …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityFingerprint([u32; FINGERPRINT_GROUPS]);

impl IdentityFingerprint {
    /// The fingerprint of an Ed25519 public key.
    #[must_use]
    pub fn of(public_key: &[u8]) -> Self {
        let mut hash = Sha256::new();
        hash.update(FINGERPRINT_LABEL);
        hash.update(public_key);
        Self(groups(&hash.finalize()))
    }

    /// The groups of five digits, each below 100 000.
    #[must_use]
    pub const fn groups(&self) -> &[u32; FINGERPRINT_GROUPS] {
        &self.0
    }

    /// A fingerprint from its groups, as saved.
    pub(crate) const fn from_groups(groups: [u32; FINGERPRINT_GROUPS]) -> Self {
        Self(groups)
    }
}

impl fmt::Display for IdentityFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_groups(f, &self.0)
    }
}

/// 40 digits every member of one epoch sees alike, shown as
/// `12345 67890 …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SafetyNumber([u32; SAFETY_NUMBER_GROUPS]);

impl SafetyNumber {
    /// The safety number of an epoch, from its epoch authenticator.
    #[must_use]
    pub fn from_epoch_authenticator(authenticator: &[u8]) -> Self {
        let mut hash = Sha512::new();
        hash.update(SAFETY_LABEL);
        hash.update(authenticator);
        Self(groups(&hash.finalize()))
    }

    /// The groups of five digits, each below 100 000.
    #[must_use]
    pub const fn groups(&self) -> &[u32; SAFETY_NUMBER_GROUPS] {
        &self.0
    }
}

impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_groups(f, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn safety_number_is_forty_digits_in_groups_of_five() {
        let text = SafetyNumber::from_epoch_authenticator(&[7; 32]).to_string();
        let groups: alloc::vec::Vec<&str> = text.split(' ').collect();
        assert_eq!(groups.len(), 8);
        assert!(
            groups
                .iter()
                .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit()))
        );
    }

    /// Known answers, computed outside Rust (Python's hashlib) from the
    /// derivation as documented: a change of label, hash or chunking would
    /// make old and new builds show different numbers to people comparing
    /// them.
    #[test]
    fn the_numbers_are_the_documented_derivation() {
        assert_eq!(
            SafetyNumber::from_epoch_authenticator(&[7; 32]).to_string(),
            "71342 09453 63354 54939 19499 87468 93181 45390"
        );
        assert_eq!(
            IdentityFingerprint::of(&[9; 32]).to_string(),
            "53173 56032 67107 95103 78149 54403"
        );
    }

    #[test]
    fn different_authenticators_give_different_numbers() {
        let a = SafetyNumber::from_epoch_authenticator(&[1; 32]);
        let b = SafetyNumber::from_epoch_authenticator(&[2; 32]);
        assert_ne!(a, b);
        assert_eq!(a, SafetyNumber::from_epoch_authenticator(&[1; 32]));
    }

    #[test]
    fn fingerprint_is_thirty_digits() {
        let text = IdentityFingerprint::of(&[9; 32]).to_string();
        assert_eq!(text.len(), 30 + 5);
        assert_ne!(
            IdentityFingerprint::of(&[9; 32]),
            IdentityFingerprint::of(&[8; 32])
        );
    }
}
