//! Trust on first use: which identity key each name and device had when
//! this member last saw it.
//!
//! The safety number shows that everyone has the same group, not who is in
//! it: the delivery service can get a member of its own added under a real
//! member's name and device id, and only the identity fingerprint differs.
//! So every member keeps a record of the identities it has seen, saved with
//! its state, and tells its application about each member it sees added:
//! one it has seen before under that name ([`Trust::Known`]), one it has
//! never seen ([`Trust::FirstSeen`]), or a known name and device with a new
//! key ([`Trust::NewKey`]): a reinstall, or an impostor. Comparing
//! fingerprints out of band tells which; [`Session::mark_verified`] records
//! the result.
//!
//! [`Session::mark_verified`]: super::Session::mark_verified

use alloc::vec::Vec;

use sha2::{Digest, Sha256};

use super::credential::MemberInfo;
use super::safety::{FINGERPRINT_GROUPS, IdentityFingerprint};

/// Identities a member remembers; the one seen longest ago is forgotten
/// first.
pub const TRUSTED_IDENTITIES: usize = 64;

/// What this member knew of an identity when it saw it added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trust {
    /// This name and device had this key the last time too.
    Known {
        /// Someone compared the fingerprint out of band and said so.
        verified: bool,
    },
    /// Never seen: neither this name and device nor this key.
    FirstSeen,
    /// This name and device had another key before: a reinstall, or
    /// someone else using the name. Show it so it cannot be missed.
    NewKey {
        /// The key it had.
        previous: IdentityFingerprint,
        /// Whether that key had been verified.
        was_verified: bool,
    },
}

/// A member this member saw added to its group (or found there on joining).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Introduction {
    /// Its leaf index.
    pub leaf: u32,
    /// Name and device from its credential.
    pub info: MemberInfo,
    /// Its identity fingerprint.
    pub fingerprint: IdentityFingerprint,
    /// What this member knew of it.
    pub trust: Trust,
}

/// One remembered identity: 41 bytes, so a microcontroller can keep a
/// full call's worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrustEntry {
    /// [`who`] of the name and device.
    pub who: [u8; 16],
    pub fingerprint: [u32; FINGERPRINT_GROUPS],
    pub verified: bool,
}

/// A name and device, hashed: `SHA-256(len(name) ‖ name ‖ device)`, cut to
/// 16 bytes. Two names that collide would share an entry; finding such a
/// pair takes about 2^64 work and gains an attacker only a false
/// "known" for a name it also controls.
fn who(info: &MemberInfo) -> [u8; 16] {
    let mut hash = Sha256::new();
    // Names are at most 64 bytes, so one length byte is unambiguous.
    hash.update([u8::try_from(info.display_name.len()).unwrap_or(u8::MAX)]);
    hash.update(info.display_name.as_bytes());
    hash.update(info.device_id.as_bytes());
    let mut out = [0; 16];
    out.copy_from_slice(&hash.finalize()[..16]);
    out
}

/// The record: most recently seen last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TrustRecord {
    pub entries: Vec<TrustEntry>,
}

/// Bytes of one saved entry: who, six fingerprint groups, verified.
const ENTRY_LEN: usize = 16 + 4 * FINGERPRINT_GROUPS + 1;

impl TrustRecord {
    /// The record as saved: the entries' fixed-size encodings, oldest
    /// first (plain bytes: smaller code than a serde format on a
    /// microcontroller).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for e in &self.entries {
            out.extend_from_slice(&e.who);
            for g in e.fingerprint {
                out.extend_from_slice(&g.to_le_bytes());
            }
            out.push(u8::from(e.verified));
        }
        out
    }

    /// The record [`TrustRecord::to_bytes`] saved; `None` if the bytes are
    /// not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(ENTRY_LEN) || bytes.len() / ENTRY_LEN > TRUSTED_IDENTITIES {
            return None;
        }
        let entries = bytes
            .chunks_exact(ENTRY_LEN)
            .map(|chunk| {
                let (who, rest) = chunk.split_at(16);
                let mut fingerprint = [0u32; FINGERPRINT_GROUPS];
                for (g, b) in fingerprint.iter_mut().zip(rest.chunks_exact(4)) {
                    *g = u32::from_le_bytes(b.try_into().ok()?);
                }
                Some(TrustEntry {
                    who: who.try_into().ok()?,
                    fingerprint,
                    verified: match rest.last()? {
                        0 => false,
                        1 => true,
                        _ => return None,
                    },
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self { entries })
    }

    /// What is known of `info` with `fingerprint`; the record then holds
    /// this key for this name and device, seen most recently.
    pub fn observe(&mut self, info: &MemberInfo, fingerprint: IdentityFingerprint) -> Trust {
        let groups = *fingerprint.groups();
        let who = who(info);
        let position = self.entries.iter().position(|e| e.who == who);
        let (trust, verified) = match position.map(|i| self.entries.remove(i)) {
            Some(entry) if entry.fingerprint == groups => (
                Trust::Known {
                    verified: entry.verified,
                },
                entry.verified,
            ),
            Some(entry) => (
                Trust::NewKey {
                    previous: IdentityFingerprint::from_groups(entry.fingerprint),
                    was_verified: entry.verified,
                },
                false,
            ),
            None => (Trust::FirstSeen, false),
        };
        if self.entries.len() >= TRUSTED_IDENTITIES {
            self.entries.remove(0);
        }
        self.entries.push(TrustEntry {
            who,
            fingerprint: groups,
            verified,
        });
        trust
    }

    /// Marks every name and device with this key verified; `false` when
    /// the record has no such key.
    pub fn mark_verified(&mut self, fingerprint: IdentityFingerprint) -> bool {
        let mut found = false;
        for entry in &mut self.entries {
            if entry.fingerprint == *fingerprint.groups() {
                entry.verified = true;
                found = true;
            }
        }
        found
    }

    /// What the record says of this name, device and key, without
    /// changing it.
    pub fn lookup(&self, info: &MemberInfo, fingerprint: IdentityFingerprint) -> Option<bool> {
        let who = who(info);
        self.entries
            .iter()
            .find(|e| e.who == who && e.fingerprint == *fingerprint.groups())
            .map(|e| e.verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str) -> MemberInfo {
        MemberInfo::new(name, "laptop").unwrap()
    }

    #[test]
    fn first_seen_then_known_then_a_new_key_then_verified() {
        let mut record = TrustRecord::default();
        let ada = IdentityFingerprint::of(b"ada's key");
        let impostor = IdentityFingerprint::of(b"someone else's key");
        assert_eq!(record.observe(&info("Ada"), ada), Trust::FirstSeen);
        assert_eq!(
            record.observe(&info("Ada"), ada),
            Trust::Known { verified: false }
        );
        assert!(record.mark_verified(ada));
        assert_eq!(
            record.observe(&info("Ada"), ada),
            Trust::Known { verified: true }
        );
        assert_eq!(
            record.observe(&info("Ada"), impostor),
            Trust::NewKey {
                previous: ada,
                was_verified: true
            }
        );
        // The new key is now the one on record, unverified.
        assert_eq!(record.lookup(&info("Ada"), impostor), Some(false));
        assert_eq!(record.lookup(&info("Ada"), ada), None);
        assert!(!record.mark_verified(IdentityFingerprint::of(b"nobody")));
    }

    #[test]
    fn the_record_round_trips_and_refuses_what_it_did_not_save() {
        let mut record = TrustRecord::default();
        record.observe(&info("Ada"), IdentityFingerprint::of(b"a"));
        record.observe(&info("Bo"), IdentityFingerprint::of(b"b"));
        assert!(record.mark_verified(IdentityFingerprint::of(b"b")));
        let bytes = record.to_bytes();
        assert_eq!(bytes.len(), 2 * ENTRY_LEN);
        assert_eq!(TrustRecord::from_bytes(&bytes), Some(record));
        assert_eq!(TrustRecord::from_bytes(&bytes[1..]), None, "a cut entry");
        let mut flag = bytes.clone();
        flag[ENTRY_LEN - 1] = 2;
        assert_eq!(
            TrustRecord::from_bytes(&flag),
            None,
            "a flag that is no bool"
        );
        assert_eq!(TrustRecord::from_bytes(&[]), Some(TrustRecord::default()));
    }

    #[test]
    fn the_record_is_bounded_and_forgets_the_oldest() {
        let mut record = TrustRecord::default();
        let key = |i: usize| IdentityFingerprint::of(&i.to_le_bytes());
        for i in 0..=TRUSTED_IDENTITIES {
            let name = alloc::format!("member {i}");
            assert_eq!(record.observe(&info(&name), key(i)), Trust::FirstSeen);
        }
        assert_eq!(record.entries.len(), TRUSTED_IDENTITIES);
        assert_eq!(record.lookup(&info("member 0"), key(0)), None);
        assert_eq!(record.lookup(&info("member 1"), key(1)), Some(false));
    }
}
