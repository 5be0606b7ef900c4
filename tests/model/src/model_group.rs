//! [`ModelGroup`]: MLS as the committer sees it, small enough to put every
//! member of every reachable state in a hash set.
//!
//! It keeps what the protocol's correctness depends on and drops the
//! cryptography:
//!
//! - a group is its id, epoch, occupied leaves (with the identity in each),
//!   this member's leaf and an *epoch authenticator*, a hash chain over the
//!   commits applied (`new = hash(old, commit id)`): two members agree on
//!   it only if they applied the same commits, as two real members agree on
//!   keys and the safety number;
//! - leaves are assigned as RFC 9420 §12.1.1 says: removes blank their
//!   leaves, each add takes the leftmost blank leaf or is appended;
//! - a key package is `(identity, nonce)`; a Welcome works once, for a key
//!   package this member published and still keeps (the newest
//!   [`MAX_KEY_PACKAGES`], as [`Session`](satsuma_core::mls::Session) does);
//! - a commit is refused as mls-rs refuses one: a bad key package, an
//!   identity already in the tree (`DuplicateLeafData`), a removed leaf that
//!   is empty or the committer's own, a commit already pending;
//! - a receiver recomputes the commit from its own state, so a member whose
//!   roster, authenticator or cached proposals differ from the committer's
//!   fails to process it, as a real member fails the confirmation tag.
//!
//! Messages are postcard-encoded [`Message`]s; a malformed key package is
//! bytes that do not decode.

use satsuma_core::Instant;
use satsuma_core::committer::Group;
use satsuma_core::mls::{Commit, Event, SessionError};
use serde::{Deserialize, Serialize};

/// How many published key packages a member keeps, newest last.
pub const MAX_KEY_PACKAGES: usize = 4;

/// One abstract MLS client: an identity, its published key packages and at
/// most one group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelGroup {
    identity: u8,
    /// How many times this client restarted.
    generation: u8,
    /// Stands in for randomness: every key package, commit, proposal and
    /// group id gets the next value.
    nonce: u16,
    /// Nonces of published key packages no Welcome has used yet.
    key_packages: Vec<u16>,
    /// How many of the next key packages come out malformed.
    bad_key_packages: u8,
    update_due: bool,
    state: Option<GroupView>,
    pending: Option<GroupView>,
}

/// The group as one member holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct GroupView {
    id: Vec<u8>,
    epoch: u64,
    /// Occupied leaves, ascending.
    members: Vec<Leaf>,
    own: u32,
    authenticator: u64,
    /// Proposals received in this epoch, for the next commit.
    proposals: Vec<ProposalRef>,
}

/// An occupied leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Leaf {
    index: u32,
    identity: u8,
}

/// A key package: whose, and which one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct KeyPackageRef {
    identity: u8,
    nonce: u16,
}

/// An update proposal: from which leaf, and which one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct ProposalRef {
    sender: u32,
    identity: u8,
    nonce: u16,
}

/// An added key package and the leaf it took.
type Added = (KeyPackageRef, u32);

/// Everything a [`ModelGroup`] puts on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Message {
    KeyPackage(KeyPackageRef),
    Commit {
        group_id: Vec<u8>,
        /// The epoch it starts from.
        epoch: u64,
        committer: u32,
        /// Unique: the committer's identity and a nonce.
        id: (u8, u16),
        adds: Vec<KeyPackageRef>,
        removes: Vec<u32>,
        proposals: Vec<ProposalRef>,
        /// The roster after the commit, as the committer computed it.
        members: Vec<Leaf>,
        authenticator: u64,
    },
    Welcome {
        group_id: Vec<u8>,
        epoch: u64,
        members: Vec<Leaf>,
        authenticator: u64,
        added: Vec<Added>,
    },
    Proposal {
        group_id: Vec<u8>,
        epoch: u64,
        proposal: ProposalRef,
    },
}

impl ModelGroup {
    /// A client with this identity, in no group, with no key package out.
    #[must_use]
    pub fn new(identity: u8) -> Self {
        Self {
            identity,
            generation: 0,
            nonce: 0,
            key_packages: Vec::new(),
            bad_key_packages: 0,
            update_due: false,
            state: None,
            pending: None,
        }
    }

    /// The same client after a crash and restart: the identity survives,
    /// the group does not (the member rejoins through the lobby).
    ///
    /// The result depends only on the identity and the number of restarts,
    /// not on what happened since the last one, so a crash commutes with
    /// any message the crashed process was about to handle (the checker's
    /// reduction relies on it). Nonces start afresh in a range of their
    /// own, so nothing published before the crash is ever repeated. The
    /// key packages published before are dropped: a real client keeps
    /// them, but a Welcome only ever reaches the connection whose key
    /// package it names, and that connection died with the process. The
    /// restarted client publishes good key packages.
    #[must_use]
    pub fn restarted(&self) -> Self {
        let generation = self.generation.saturating_add(1);
        Self {
            generation,
            nonce: u16::from(generation) << 12,
            ..Self::new(self.identity)
        }
    }

    /// The authenticator of a group at epoch 0, as its creator computes it.
    #[must_use]
    pub fn creation_authenticator(group_id: &[u8], creator: u8) -> u64 {
        hash(&[group_id, &[creator]])
    }

    /// The authenticator of the epoch `commit` starts, if it is a commit.
    #[must_use]
    pub fn commit_authenticator(commit: &[u8]) -> Option<u64> {
        match decode(commit) {
            Ok(Message::Commit { authenticator, .. }) => Some(authenticator),
            _ => None,
        }
    }

    /// Makes the next `count` key packages malformed.
    pub fn publish_bad_key_packages(&mut self, count: u8) {
        self.bad_key_packages = count;
    }

    /// Makes this member's own leaf due for an update (as a real member's
    /// `self_update_interval` running out); it stays due until a commit
    /// refreshes the leaf.
    pub fn set_update_due(&mut self) {
        self.update_due = true;
    }

    /// This client's identity.
    #[must_use]
    pub fn identity(&self) -> u8 {
        self.identity
    }

    /// The epoch authenticator: equal for two members exactly when they
    /// applied the same commits to the same group.
    #[must_use]
    pub fn authenticator(&self) -> Option<u64> {
        self.state.as_ref().map(|s| s.authenticator)
    }

    /// Whether a commit is pending.
    #[must_use]
    pub fn has_pending_commit(&self) -> bool {
        self.pending.is_some()
    }

    /// Whose key package `key_package` is.
    ///
    /// # Errors
    /// [`SessionError::BadKeyPackage`] for bytes that are not one.
    pub fn check_key_package(key_package: &[u8]) -> Result<(u8, u16), SessionError> {
        match decode(key_package) {
            Ok(Message::KeyPackage(k)) => Ok((k.identity, k.nonce)),
            _ => Err(SessionError::BadKeyPackage),
        }
    }

    fn next_nonce(&mut self) -> u16 {
        self.nonce = self.nonce.wrapping_add(1);
        self.nonce
    }
}

impl Group for ModelGroup {
    fn key_package(&mut self) -> Result<Vec<u8>, SessionError> {
        let nonce = self.next_nonce();
        if self.bad_key_packages > 0 {
            self.bad_key_packages -= 1;
            // A varint variant index no `Message` has: never decodes.
            return Ok(vec![0xff, 0xff, self.identity]);
        }
        self.key_packages.push(nonce);
        while self.key_packages.len() > MAX_KEY_PACKAGES {
            self.key_packages.remove(0);
        }
        Ok(encode(&Message::KeyPackage(KeyPackageRef {
            identity: self.identity,
            nonce,
        })))
    }

    fn new_group_id(&mut self) -> Vec<u8> {
        let [hi, lo] = self.next_nonce().to_be_bytes();
        vec![b'g', self.identity, hi, lo]
    }

    fn create_group(&mut self, _now: Instant, group_id: &[u8]) -> Result<(), SessionError> {
        if self.state.is_some() {
            return Err(SessionError::AlreadyInGroup);
        }
        self.state = Some(GroupView {
            id: group_id.to_vec(),
            epoch: 0,
            members: vec![Leaf {
                index: 0,
                identity: self.identity,
            }],
            own: 0,
            authenticator: Self::creation_authenticator(group_id, self.identity),
            proposals: Vec::new(),
        });
        self.update_due = false;
        Ok(())
    }

    fn join(&mut self, _now: Instant, welcome: &[u8]) -> Result<(), SessionError> {
        if self.state.is_some() {
            return Err(SessionError::AlreadyInGroup);
        }
        let Message::Welcome {
            group_id,
            epoch,
            members,
            authenticator,
            added,
        } = decode(welcome)?
        else {
            return Err(SessionError::Malformed);
        };
        let mine = added
            .iter()
            .find(|(k, _)| k.identity == self.identity && self.key_packages.contains(&k.nonce));
        let Some(&(key_package, own)) = mine else {
            return Err(SessionError::NotWelcomed);
        };
        // A key package opens one Welcome: its private key is deleted.
        self.key_packages.retain(|&n| n != key_package.nonce);
        self.state = Some(GroupView {
            id: group_id,
            epoch,
            members,
            own,
            authenticator,
            proposals: Vec::new(),
        });
        self.update_due = false;
        Ok(())
    }

    fn commit(&mut self, adds: &[&[u8]], removes: &[u32]) -> Result<Commit, SessionError> {
        if self.state.is_none() {
            return Err(SessionError::NoGroup);
        }
        if self.pending.is_some() {
            return Err(SessionError::CommitPending);
        }
        let adds = adds
            .iter()
            .map(|k| {
                Self::check_key_package(k)
                    .map(|(identity, nonce)| KeyPackageRef { identity, nonce })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let id = (self.identity, self.next_nonce());
        let Some(state) = self.state.as_ref() else {
            return Err(SessionError::NoGroup);
        };
        if removes.contains(&state.own) {
            return Err(SessionError::InvalidChange);
        }
        let (members, added) = next_roster(&state.members, removes, &adds)?;
        let proposals: Vec<ProposalRef> = state
            .proposals
            .iter()
            .filter(|p| p.sender != state.own && !removes.contains(&p.sender))
            .copied()
            .collect();
        let authenticator = chain(state.authenticator, id);
        let commit = encode(&Message::Commit {
            group_id: state.id.clone(),
            epoch: state.epoch,
            committer: state.own,
            id,
            adds,
            removes: removes.to_vec(),
            proposals,
            members: members.clone(),
            authenticator,
        });
        let welcome = (!added.is_empty()).then(|| {
            encode(&Message::Welcome {
                group_id: state.id.clone(),
                epoch: state.epoch + 1,
                members: members.clone(),
                authenticator,
                added,
            })
        });
        self.pending = Some(GroupView {
            id: state.id.clone(),
            epoch: state.epoch + 1,
            members,
            own: state.own,
            authenticator,
            proposals: Vec::new(),
        });
        Ok(Commit { commit, welcome })
    }

    fn apply_pending_commit(&mut self, _now: Instant) -> Result<u64, SessionError> {
        if self.state.is_none() {
            return Err(SessionError::NoGroup);
        }
        let next = self.pending.take().ok_or(SessionError::NoPendingCommit)?;
        let epoch = next.epoch;
        self.state = Some(next);
        // Every commit refreshes the committer's own leaf.
        self.update_due = false;
        Ok(epoch)
    }

    fn discard_pending_commit(&mut self) -> Result<(), SessionError> {
        self.pending = None;
        Ok(())
    }

    fn propose_update(&mut self) -> Result<Vec<u8>, SessionError> {
        if self.state.is_none() {
            return Err(SessionError::NoGroup);
        }
        let nonce = self.next_nonce();
        let identity = self.identity;
        let state = self.state.as_mut().ok_or(SessionError::NoGroup)?;
        let proposal = ProposalRef {
            sender: state.own,
            identity,
            nonce,
        };
        // mls-rs caches its own proposals too.
        state.proposals.push(proposal);
        Ok(encode(&Message::Proposal {
            group_id: state.id.clone(),
            epoch: state.epoch,
            proposal,
        }))
    }

    fn process(&mut self, _now: Instant, message: &[u8]) -> Result<Event, SessionError> {
        let state = self.state.as_ref().ok_or(SessionError::NoGroup)?;
        match decode(message)? {
            Message::Commit {
                group_id,
                epoch,
                committer,
                id,
                adds,
                removes,
                proposals,
                members,
                authenticator,
            } => {
                check_context(state, &group_id, epoch)?;
                if committer == state.own {
                    return Err(SessionError::OwnMessage);
                }
                if !state.members.iter().any(|l| l.index == committer)
                    || removes.contains(&committer)
                {
                    return Err(SessionError::NotMember);
                }
                if chain(state.authenticator, id) != authenticator {
                    return Err(SessionError::Integrity);
                }
                // The receiver builds the new tree from its own.
                let (expected, _) = next_roster(&state.members, &removes, &adds)?;
                if expected != members {
                    return Err(SessionError::Integrity);
                }
                if proposals.iter().any(|p| !state.proposals.contains(p)) {
                    return Err(SessionError::InvalidChange);
                }
                if removes.contains(&state.own) {
                    self.state = None;
                    self.pending = None;
                    return Ok(Event::Removed { by: committer });
                }
                if proposals.iter().any(|p| p.sender == state.own) {
                    self.update_due = false;
                }
                let next = GroupView {
                    id: group_id,
                    epoch: epoch + 1,
                    members,
                    own: state.own,
                    authenticator,
                    proposals: Vec::new(),
                };
                self.state = Some(next);
                self.pending = None;
                Ok(Event::NewEpoch {
                    epoch: epoch + 1,
                    committer,
                })
            }
            Message::Proposal {
                group_id,
                epoch,
                proposal,
            } => {
                check_context(state, &group_id, epoch)?;
                if proposal.sender == state.own {
                    return Err(SessionError::OwnMessage);
                }
                if !state.members.iter().any(|l| l.index == proposal.sender) {
                    return Err(SessionError::NotMember);
                }
                let state = self.state.as_mut().ok_or(SessionError::NoGroup)?;
                if !state.proposals.contains(&proposal) {
                    state.proposals.push(proposal);
                }
                Ok(Event::Proposal {
                    sender: proposal.sender,
                })
            }
            Message::KeyPackage(_) | Message::Welcome { .. } => Err(SessionError::Malformed),
        }
    }

    fn leave(&mut self) -> Result<(), SessionError> {
        self.state = None;
        self.pending = None;
        self.update_due = false;
        Ok(())
    }

    fn epoch(&self) -> Option<u64> {
        self.state.as_ref().map(|s| s.epoch)
    }

    fn own_index(&self) -> Option<u32> {
        self.state.as_ref().map(|s| s.own)
    }

    fn group_id(&self) -> Option<&[u8]> {
        self.state.as_ref().map(|s| &s.id[..])
    }

    fn leaves(&self) -> Vec<u32> {
        self.state
            .as_ref()
            .map_or_else(Vec::new, |s| s.members.iter().map(|l| l.index).collect())
    }

    fn self_update_due(&self, _now: Instant) -> bool {
        self.update_due && self.state.is_some()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn clear_proposals(&mut self) {
        if let Some(state) = self.state.as_mut() {
            state.proposals.clear();
        }
    }
}

fn check_context(state: &GroupView, group_id: &[u8], epoch: u64) -> Result<(), SessionError> {
    if group_id != state.id {
        return Err(SessionError::WrongGroup);
    }
    if epoch != state.epoch {
        return Err(SessionError::WrongEpoch);
    }
    Ok(())
}

/// The roster after removing `removes` and adding `adds`, and the leaf each
/// add took; the refusals mls-rs would give.
fn next_roster(
    members: &[Leaf],
    removes: &[u32],
    adds: &[KeyPackageRef],
) -> Result<(Vec<Leaf>, Vec<Added>), SessionError> {
    let mut next: Vec<Leaf> = members.to_vec();
    for (i, leaf) in removes.iter().enumerate() {
        if removes[..i].contains(leaf) || !next.iter().any(|l| l.index == *leaf) {
            return Err(SessionError::InvalidChange);
        }
        next.retain(|l| l.index != *leaf);
    }
    let mut added = Vec::with_capacity(adds.len());
    for add in adds {
        // One signature key per tree: mls-rs's DuplicateLeafData.
        if next.iter().any(|l| l.identity == add.identity) {
            return Err(SessionError::BadKeyPackage);
        }
        // Leftmost blank leaf; past the last occupied one, appended (trailing
        // blanks were truncated by the removes).
        let index = (0u32..)
            .find(|i| !next.iter().any(|l| l.index == *i))
            .unwrap_or(0);
        next.push(Leaf {
            index,
            identity: add.identity,
        });
        next.sort_by_key(|l| l.index);
        added.push((*add, index));
    }
    Ok((next, added))
}

fn encode(message: &Message) -> Vec<u8> {
    // Serializing plain structs into a growable buffer cannot fail.
    postcard::to_allocvec(message).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Result<Message, SessionError> {
    match postcard::take_from_bytes(bytes) {
        Ok((message, [])) => Ok(message),
        _ => Err(SessionError::Malformed),
    }
}

/// The next epoch authenticator.
fn chain(authenticator: u64, id: (u8, u16)) -> u64 {
    let [hi, lo] = id.1.to_be_bytes();
    hash(&[&authenticator.to_be_bytes(), &[id.0, hi, lo]])
}

/// FNV-1a over the parts, each prefixed with its length.
fn hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in u64::try_from(part.len())
            .unwrap_or(u64::MAX)
            .to_be_bytes()
            .iter()
            .chain(part.iter())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Instant = Instant::ZERO;

    fn group_of(n: u8) -> Vec<ModelGroup> {
        let mut members: Vec<ModelGroup> = (0..n).map(ModelGroup::new).collect();
        members[0].create_group(NOW, b"g").unwrap();
        for i in 1..members.len() {
            let kp = members[i].key_package().unwrap();
            let built = members[0].commit(&[&kp], &[]).unwrap();
            members[0].apply_pending_commit(NOW).unwrap();
            for m in &mut members[1..i] {
                m.process(NOW, &built.commit).unwrap();
            }
            members[i].join(NOW, &built.welcome.unwrap()).unwrap();
        }
        members
    }

    #[test]
    fn members_who_apply_the_same_commits_agree() {
        let members = group_of(3);
        for m in &members {
            assert_eq!(m.epoch(), Some(2));
            assert_eq!(m.leaves(), [0, 1, 2]);
            assert_eq!(m.authenticator(), members[0].authenticator());
        }
        assert_eq!(members[2].own_index(), Some(2));
    }

    #[test]
    fn adds_take_the_leftmost_blank_leaf() {
        let mut members = group_of(3);
        let mut late = ModelGroup::new(9);
        let kp = late.key_package().unwrap();
        let built = members[0].commit(&[&kp], &[1]).unwrap();
        members[0].apply_pending_commit(NOW).unwrap();
        assert_eq!(
            members[1].process(NOW, &built.commit),
            Ok(Event::Removed { by: 0 })
        );
        assert_eq!(members[1].epoch(), None);
        members[2].process(NOW, &built.commit).unwrap();
        late.join(NOW, &built.welcome.unwrap()).unwrap();
        assert_eq!(late.own_index(), Some(1));
        assert_eq!(late.leaves(), [0, 1, 2]);
        assert_eq!(late.authenticator(), members[2].authenticator());
    }

    #[test]
    fn two_commits_for_one_epoch_fork() {
        let mut members = group_of(3);
        let a = members[0].commit(&[], &[]).unwrap();
        let b = members[1].commit(&[], &[]).unwrap();
        members[2].process(NOW, &a.commit).unwrap();
        members[1].apply_pending_commit(NOW).unwrap();
        assert_eq!(members[1].epoch(), members[2].epoch());
        assert_ne!(members[1].authenticator(), members[2].authenticator());
        assert_eq!(
            members[2].process(NOW, &b.commit),
            Err(SessionError::WrongEpoch)
        );
    }

    #[test]
    fn bad_and_duplicate_key_packages_are_refused() {
        let mut members = group_of(2);
        let mut bad = ModelGroup::new(7);
        bad.publish_bad_key_packages(1);
        let garbage = bad.key_package().unwrap();
        let good = bad.key_package().unwrap();
        assert_eq!(
            ModelGroup::check_key_package(&garbage),
            Err(SessionError::BadKeyPackage)
        );
        assert_eq!(ModelGroup::check_key_package(&good), Ok((7, 2)));
        assert_eq!(
            members[0].commit(&[&good, &garbage], &[]).unwrap_err(),
            SessionError::BadKeyPackage
        );
        let again = members[1].clone().key_package().unwrap();
        assert_eq!(
            members[0].commit(&[&again], &[]).unwrap_err(),
            SessionError::BadKeyPackage,
            "an identity already in the tree"
        );
        assert!(members[0].commit(&[&again], &[1]).is_ok(), "unless removed");
        assert_eq!(
            members[0].commit(&[], &[]).unwrap_err(),
            SessionError::CommitPending
        );
        members[0].discard_pending_commit().unwrap();
        assert_eq!(
            members[0].commit(&[], &[0]).unwrap_err(),
            SessionError::InvalidChange
        );
        assert_eq!(
            members[0].commit(&[], &[5]).unwrap_err(),
            SessionError::InvalidChange
        );
    }

    #[test]
    fn a_key_package_opens_one_welcome() {
        let mut members = group_of(1);
        let mut joiner = ModelGroup::new(1);
        let kp = joiner.key_package().unwrap();
        let built = members[0].commit(&[&kp], &[]).unwrap();
        let welcome = built.welcome.unwrap();
        let mut twin = joiner.clone();
        joiner.join(NOW, &welcome).unwrap();
        joiner.leave().unwrap();
        assert_eq!(joiner.join(NOW, &welcome), Err(SessionError::NotWelcomed));
        for _ in 0..MAX_KEY_PACKAGES {
            twin.key_package().unwrap();
        }
        assert_eq!(
            twin.join(NOW, &welcome),
            Err(SessionError::NotWelcomed),
            "only the newest key packages are kept"
        );
    }

    #[test]
    fn proposals_must_be_cached_by_the_receiver() {
        let mut members = group_of(3);
        members[2].set_update_due();
        let proposal = members[2].propose_update().unwrap();
        assert_eq!(
            members[0].process(NOW, &proposal),
            Ok(Event::Proposal { sender: 2 })
        );
        let built = members[0].commit(&[], &[]).unwrap();
        assert_eq!(
            members[1].clone().process(NOW, &built.commit),
            Err(SessionError::InvalidChange),
            "a receiver that missed the proposal cannot process the commit"
        );
        members[1].process(NOW, &proposal).unwrap();
        members[1].process(NOW, &built.commit).unwrap();
        assert!(members[2].self_update_due(NOW));
        members[2].process(NOW, &built.commit).unwrap();
        assert!(!members[2].self_update_due(NOW), "its update was committed");
    }

    #[test]
    fn wrong_group_and_epoch() {
        let mut members = group_of(2);
        let mut other = ModelGroup::new(5);
        other.create_group(NOW, b"h").unwrap();
        let foreign = other.commit(&[], &[]).unwrap();
        assert_eq!(
            members[1].process(NOW, &foreign.commit),
            Err(SessionError::WrongGroup)
        );
        assert_eq!(
            members[1].process(NOW, b"\x07junk"),
            Err(SessionError::Malformed)
        );
    }
}
