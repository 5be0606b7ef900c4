//! One member's MLS session: identity, key packages, the group, and the
//! SFrame keys of every epoch.
//!
//! No network IO, no clock, no global randomness. The session sends nothing
//! itself: the caller carries key packages, commits and Welcomes to the
//! delivery service and hands back what arrives. Time comes in as `now`, the
//! first argument of every call that needs it, and randomness from the
//! [`SatsumaCrypto`] the session was given.
//!
//! It does write, though: every call that changes the identity, the key
//! packages, the members or the epoch saves the whole member state through
//! the caller's [`Store`] before it returns, synchronously. A member must
//! never seal two frames with one (key, counter) pair, and the counter is
//! not saved per frame, so an epoch and the SFrame send context it uses have
//! to be durable before the first frame of that epoch goes out; otherwise a
//! member that crashed could come back on an older record, reach the same
//! epoch again and send on the same context. `docs/mls.md` (*Persistence*)
//! has the rest.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use mls_rs::client_builder::{
    BaseConfig, WithCryptoProvider, WithGroupStateStorage, WithIdentityProvider,
    WithKeyPackageRepo, WithMlsRules,
};
use mls_rs::group::proposal::Proposal;
use mls_rs::group::{CommitEffect, ProposalSender, ReceivedMessage, Sender};
use mls_rs::mls_rs_codec::{MlsDecode, MlsEncode};
use mls_rs::mls_rules::ProposalInfo;
use mls_rs::mls_rules::{CommitOptions, DefaultMlsRules};

use super::rules::SatsumaRules;
use mls_rs::{Client, ExtensionList, Group, MlsMessage};
use mls_rs_core::crypto::{
    CipherSuiteProvider, HpkePublicKey, SignaturePublicKey, SignatureSecretKey,
};
use mls_rs_core::group::{EpochRecord, GroupState, GroupStateStorage};
use mls_rs_core::key_package::{KeyPackageData, KeyPackageStorage};
use mls_rs_core::time::MlsTime;
use spin::Mutex;
use zeroize::Zeroizing;

use super::credential::{MemberInfo, SatsumaIdentityProvider};
use super::safety::{IdentityFingerprint, SafetyNumber};
use super::store::{GroupRecord, RECORD_VERSION, Record, Store};
use super::trust::{Introduction, TRUSTED_IDENTITIES, Trust, TrustRecord};
use super::{SUITE, SatsumaCrypto, SessionError};
use crate::sframe::{EpochSecret, KeyRing, KeyRingConfig, MAX_SEND_CONTEXTS};
use crate::{Instant, UnixTime};

/// RFC 9605 §5.2: the exporter label of the SFrame base key.
pub const SFRAME_EXPORTER_LABEL: &[u8] = b"SFrame 1.0 Base Key";

/// How long a key package is valid after it is made: twelve weeks, the
/// longest OpenMLS accepts together with [`CLOCK_SKEW`].
pub const KEY_PACKAGE_LIFETIME: Duration = Duration::from_secs(84 * 24 * 3600);

/// How far before the time it is made a key package is already valid, so a
/// member whose clock is behind the maker's still accepts it.
pub const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// Key packages a member remembers as added to its group, to refuse them
/// if the delivery service offers them again: the oldest is forgotten
/// first (by then its lifetime has usually ended too).
pub const REMEMBERED_KEY_PACKAGES: usize = 128;

/// Key packages a member keeps private keys for; publishing more drops the
/// oldest, so a peer cannot make a member hoard secrets.
pub const MAX_KEY_PACKAGES: usize = 4;

type Config = WithMlsRules<
    SatsumaRules,
    WithIdentityProvider<
        SatsumaIdentityProvider,
        WithCryptoProvider<
            SatsumaCrypto,
            WithKeyPackageRepo<KeyPackages, WithGroupStateStorage<GroupSlot, BaseConfig>>,
        >,
    >,
>;

/// How a [`Session`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// How the SFrame keys of each epoch are used.
    pub keyring: KeyRingConfig,
    /// How often this member should refresh its own leaf keys, for
    /// post-compromise security; `None` never asks.
    pub self_update_interval: Option<Duration>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            keyring: KeyRingConfig::default(),
            self_update_interval: Some(Duration::from_secs(10 * 60)),
        }
    }
}

/// A member of the group, as every member's screen shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    /// The member's leaf index: its SFrame sender index too.
    pub leaf_index: u32,
    /// Display name and device id from the credential.
    pub info: MemberInfo,
    /// Fingerprint of the member's signature key.
    pub fingerprint: IdentityFingerprint,
}

/// A commit this member built, waiting for the delivery service.
#[derive(Clone, PartialEq, Eq)]
pub struct Commit {
    /// The commit, for every member.
    pub commit: Vec<u8>,
    /// The Welcome for the members it adds, if any.
    pub welcome: Option<Vec<u8>>,
}

impl fmt::Debug for Commit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Commit")
            .field("commit_bytes", &self.commit.len())
            .field("welcome_bytes", &self.welcome.as_ref().map(Vec::len))
            .finish()
    }
}

/// What an incoming handshake message did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A proposal was cached for the next commit.
    Proposal {
        /// Leaf index of the member who proposed it.
        sender: u32,
    },
    /// A commit moved the group to a new epoch; its SFrame key is installed.
    NewEpoch {
        /// The new epoch.
        epoch: u64,
        /// Leaf index of the committer.
        committer: u32,
    },
    /// A commit removed this member: the group and its keys are gone.
    Removed {
        /// Leaf index of the committer who removed it.
        by: u32,
    },
}

/// One member: its identity, its group and the group's SFrame keys.
pub struct Session {
    client: Client<Config>,
    group: Option<Group<Config>>,
    crypto: SatsumaCrypto,
    identity_seed: Zeroizing<[u8; 32]>,
    info: MemberInfo,
    public_key: SignaturePublicKey,
    key_packages: KeyPackages,
    group_slot: GroupSlot,
    keyring: KeyRing,
    send_context: u64,
    store: Box<dyn Store>,
    config: SessionConfig,
    /// When this member's own leaf keys were last refreshed.
    last_own_update: Option<Instant>,
    /// The wall-clock time the driver last gave.
    time: Option<UnixTime>,
    /// The first bytes of the HPKE init key of every key package added to
    /// the group since this member is in it (at most
    /// [`REMEMBERED_KEY_PACKAGES`], oldest first).
    added_key_packages: VecDeque<[u8; 16]>,
    /// The identities this member has seen, saved with it.
    trust: TrustRecord,
    /// Members seen added, for the application.
    introductions: VecDeque<Introduction>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("info", &self.info)
            .field("epoch", &self.epoch())
            .field("own_index", &self.own_index())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new member with a fresh Ed25519 identity, saved to `store` at once.
    ///
    /// # Errors
    /// [`SessionError::Credential`], [`SessionError::Store`].
    pub fn create(
        crypto: SatsumaCrypto,
        info: MemberInfo,
        config: SessionConfig,
        store: impl Store + 'static,
    ) -> Result<Self, SessionError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        crypto
            .random_bytes(&mut *seed)
            .map_err(|_| SessionError::Crypto)?;
        let mut session = Self::build(crypto, seed, info, config, Box::new(store))?;
        session.save()?;
        Ok(session)
    }

    /// The member saved in `store`, back where it was: same identity, same
    /// group and epoch, the same unused key packages.
    ///
    /// A member that restarts within an epoch sends with the next SFrame KID
    /// context, so no (key, counter) pair it used before the restart is ever
    /// used again; the new context is saved before this returns. After
    /// [`MAX_SEND_CONTEXTS`] restarts within one epoch it can receive but
    /// not send until the next epoch, and [`Session::self_update_due`] asks
    /// for one.
    ///
    /// # Errors
    /// [`SessionError::Store`], [`SessionError::CorruptState`] when there
    /// is no record or it cannot be read.
    pub fn resume(
        now: Instant,
        crypto: SatsumaCrypto,
        config: SessionConfig,
        mut store: impl Store + 'static,
    ) -> Result<Self, SessionError> {
        // Every copy is dropped as soon as the next one exists: on a
        // microcontroller the record, its decoded form and mls-rs's loaded
        // group would otherwise all be in the heap at once.
        let (mut record, snapshot) =
            Record::decode(store.load()?.ok_or(SessionError::CorruptState)?)?;
        let info = MemberInfo {
            display_name: record.display_name.clone(),
            device_id: record.device_id.clone(),
        };
        let seed = Zeroizing::new(record.identity_seed);
        let mut session = Self::build(crypto, seed, info, config, Box::new(store))?;
        {
            let mut packages = session.key_packages.0.lock();
            for (id, data) in &record.key_packages {
                let data = KeyPackageData::mls_decode(&mut data.as_slice())
                    .map_err(|_| SessionError::CorruptState)?;
                packages.push((id.clone(), data));
            }
        }
        session.trust = TrustRecord::from_bytes(&record.trust).ok_or(SessionError::CorruptState)?;
        let group = record.group.as_mut().map(|group| {
            (
                core::mem::take(&mut group.id),
                snapshot,
                group.epoch,
                group.send_context,
            )
        });
        drop(record);
        if let Some((id, snapshot, epoch, send_context)) = group {
            *session.group_slot.0.lock() = Some((id.clone(), snapshot));
            let loaded = session.client.load_group(&id);
            // mls-rs has decoded it; the encoded copy can go.
            *session.group_slot.0.lock() = None;
            let loaded = loaded?;
            if loaded.current_epoch() != epoch {
                return Err(SessionError::CorruptState);
            }
            session.group = Some(loaded);
            session.send_context = send_context.saturating_add(1);
            session.install_current_epoch(now)?;
            // Leaf keys that were on disk may have leaked with it.
            session.last_own_update = None;
        }
        session.save()?;
        Ok(session)
    }

    fn build(
        crypto: SatsumaCrypto,
        seed: Zeroizing<[u8; 32]>,
        info: MemberInfo,
        config: SessionConfig,
        store: Box<dyn Store>,
    ) -> Result<Self, SessionError> {
        let secret = SignatureSecretKey::new_slice(&*seed);
        let public_key = crypto
            .signature_key_derive_public(&secret)
            .map_err(|_| SessionError::Crypto)?;
        let signing_identity = info.signing_identity(public_key.clone())?;
        let key_packages = KeyPackages::default();
        let group_slot = GroupSlot::default();
        let rules = SatsumaRules(
            DefaultMlsRules::new().with_commit_options(
                CommitOptions::new()
                    .with_path_required(true)
                    .with_ratchet_tree_extension(true)
                    .with_single_welcome_message(true),
            ),
        );
        let client = Client::builder()
            .group_state_storage(group_slot.clone())
            .key_package_repo(key_packages.clone())
            .crypto_provider(crypto.clone())
            .identity_provider(SatsumaIdentityProvider)
            .mls_rules(rules)
            .signing_identity(signing_identity, secret, SUITE)
            .key_package_lifetime(CLOCK_SKEW + KEY_PACKAGE_LIFETIME)
            .build();
        Ok(Self {
            client,
            group: None,
            crypto,
            identity_seed: seed,
            info,
            public_key,
            key_packages,
            group_slot,
            keyring: KeyRing::new(config.keyring)?,
            send_context: config.keyring.send_context,
            store,
            config,
            last_own_update: None,
            time: None,
            added_key_packages: VecDeque::new(),
            trust: TrustRecord::default(),
            introductions: VecDeque::new(),
        })
    }

    /// Tells the session the wall-clock time; call it whenever the driver
    /// knows the time, before the operations below. Key packages and the
    /// leaf of a group this member creates are valid from [`CLOCK_SKEW`]
    /// before it until [`KEY_PACKAGE_LIFETIME`] after it; committing adds
    /// and joining check others' key packages against it. Without a time
    /// (a driver with no clock), key packages carry the lifetime 1970-01-01
    /// to 1970-03-26, which other MLS implementations refuse, and nothing
    /// is checked. Not saved: a restarted driver gives it again.
    pub fn set_time(&mut self, time: UnixTime) {
        self.time = Some(time);
    }

    /// The wall-clock time the driver last gave.
    #[must_use]
    pub fn time(&self) -> Option<UnixTime> {
        self.time
    }

    /// The time checks run at.
    fn check_time(&self) -> Option<MlsTime> {
        self.time.map(|t| MlsTime::from(t.as_secs()))
    }

    /// Where a new key package's or leaf's lifetime starts: [`CLOCK_SKEW`]
    /// before now.
    fn not_before(&self) -> Option<MlsTime> {
        self.time
            .map(|t| MlsTime::from(t.as_secs().saturating_sub(CLOCK_SKEW.as_secs())))
    }

    /// This member's display name and device id.
    #[must_use]
    pub fn info(&self) -> &MemberInfo {
        &self.info
    }

    /// This member's identity fingerprint, for others to compare.
    #[must_use]
    pub fn fingerprint(&self) -> IdentityFingerprint {
        IdentityFingerprint::of(self.public_key.as_bytes())
    }

    /// A fresh key package (an `MLSMessage`) for the delivery service. Its
    /// private keys are kept, and saved, until a Welcome uses them; at most
    /// [`MAX_KEY_PACKAGES`] are kept.
    ///
    /// # Errors
    /// [`SessionError::Store`], [`SessionError::Crypto`].
    pub fn key_package(&mut self) -> Result<Vec<u8>, SessionError> {
        let message = self.client.generate_key_package_message(
            ExtensionList::new(),
            ExtensionList::new(),
            self.not_before(),
        )?;
        {
            let mut packages = self.key_packages.0.lock();
            while packages.len() > MAX_KEY_PACKAGES {
                packages.remove(0);
            }
        }
        self.save()?;
        Ok(message.to_bytes()?)
    }

    /// Starts a group with this member alone in it, at epoch 0.
    ///
    /// # Errors
    /// [`SessionError::AlreadyInGroup`], [`SessionError::Store`].
    pub fn create_group(&mut self, now: Instant, group_id: &[u8]) -> Result<(), SessionError> {
        if self.group.is_some() {
            return Err(SessionError::AlreadyInGroup);
        }
        let group = self.client.create_group_with_id(
            group_id.to_vec(),
            ExtensionList::new(),
            ExtensionList::new(),
            self.not_before(),
        )?;
        self.enter(now, group)
    }

    /// Joins the group a Welcome invites this member to. The Welcome carries
    /// the ratchet tree.
    ///
    /// # Errors
    /// [`SessionError::NotWelcomed`] when it is for none of this member's
    /// key packages; [`SessionError::Malformed`] and the others for a bad
    /// Welcome. The session is unchanged on error.
    pub fn join(&mut self, now: Instant, welcome: &[u8]) -> Result<(), SessionError> {
        if self.group.is_some() {
            return Err(SessionError::AlreadyInGroup);
        }
        let message = parse_message(welcome)?;
        let time = self.check_time();
        let (group, _info) = self.client.join_group(None, &message, time).map_err(|e| {
            match SessionError::from(e) {
                // A Welcome that does not decrypt under this member's keys
                // was not meant for it (or was altered on the way).
                SessionError::Crypto => SessionError::NotWelcomed,
                other => other,
            }
        })?;
        self.enter(now, group)
    }

    fn enter(&mut self, now: Instant, group: Group<Config>) -> Result<(), SessionError> {
        self.group = Some(group);
        self.send_context = 0;
        if let Err(e) = self.install_current_epoch(now) {
            self.group = None;
            return Err(e);
        }
        self.last_own_update = Some(now);
        self.introduce_new_leaves(&[]);
        self.save()
    }

    /// Every member's leaf and identity.
    fn members_by_key(&self) -> Vec<(u32, IdentityFingerprint)> {
        self.roster()
            .into_iter()
            .map(|e| (e.leaf_index, e.fingerprint))
            .collect()
    }

    /// Looks up every member not in `before` (this member excepted) in the
    /// trust record, records it, and queues an [`Introduction`] for the
    /// application; saved with the caller's save. A leaf that changed hands
    /// in one commit (removed and filled again) counts as added.
    fn introduce_new_leaves(&mut self, before: &[(u32, IdentityFingerprint)]) {
        let own = self.own_index();
        for entry in self.roster() {
            if before.contains(&(entry.leaf_index, entry.fingerprint))
                || Some(entry.leaf_index) == own
            {
                continue;
            }
            let trust = if entry.info == self.info {
                // Someone else with this member's own name and device: not
                // put on record, and never mistaken for a first sighting.
                Trust::NewKey {
                    previous: self.fingerprint(),
                    was_verified: true,
                }
            } else {
                self.trust.observe(&entry.info, entry.fingerprint)
            };
            if self.introductions.len() >= TRUSTED_IDENTITIES {
                // Nobody reads them: keep the newest.
                self.introductions.pop_front();
            }
            self.introductions.push_back(Introduction {
                leaf: entry.leaf_index,
                info: entry.info,
                fingerprint: entry.fingerprint,
                trust,
            });
        }
    }

    /// The next member seen added to the group (or found in it on joining
    /// or creating it), with what this member knew of its identity.
    /// At most [`TRUSTED_IDENTITIES`] wait; the oldest go first.
    pub fn poll_introduction(&mut self) -> Option<Introduction> {
        let next = self.introductions.pop_front();
        if self.introductions.is_empty() {
            // A join queues one per member: give the space back.
            self.introductions = VecDeque::new();
        }
        next
    }

    /// Records that someone compared this identity fingerprint out of band
    /// and it matched; saved at once. `Ok(false)` when this member has not
    /// seen that identity.
    ///
    /// # Errors
    /// [`SessionError::Store`].
    pub fn mark_verified(
        &mut self,
        fingerprint: IdentityFingerprint,
    ) -> Result<bool, SessionError> {
        let found = self.trust.mark_verified(fingerprint);
        if found {
            self.save()?;
        }
        Ok(found)
    }

    /// Whether this name and device with this key is on record, and
    /// verified: `None` when it is not on record.
    #[must_use]
    pub fn trust_of(&self, info: &MemberInfo, fingerprint: IdentityFingerprint) -> Option<bool> {
        self.trust.lookup(info, fingerprint)
    }

    /// Builds one commit that adds every key package in `adds` and removes
    /// every leaf in `removes`, with a Welcome for the new members. It is not
    /// applied: send it to the delivery service, then call
    /// [`Session::apply_pending_commit`] once it is accepted or
    /// [`Session::discard_pending_commit`] if it is refused.
    ///
    /// Every commit refreshes this member's own leaf keys too.
    ///
    /// # Errors
    /// [`SessionError::BadKeyPackage`] or [`SessionError::Malformed`] for a
    /// bad key package, [`SessionError::InvalidChange`] for a leaf that is
    /// not there or this member's own, [`SessionError::CommitPending`].
    pub fn commit(&mut self, adds: &[&[u8]], removes: &[u32]) -> Result<Commit, SessionError> {
        let group = self.group.as_mut().ok_or(SessionError::NoGroup)?;
        if group.has_pending_commit() {
            return Err(SessionError::CommitPending);
        }
        let own_index = group.current_member_index();
        let mut builder = group.commit_builder();
        if let Some(time) = self.time {
            builder = builder.commit_time(MlsTime::from(time.as_secs()));
        }
        for key_package in adds {
            let message = parse_message(key_package)?;
            let init_key = message
                .as_key_package()
                .map(|kp| init_key_id(&kp.hpke_init_key))
                .ok_or(SessionError::Malformed)?;
            if self.added_key_packages.contains(&init_key) {
                return Err(SessionError::KeyPackageReused);
            }
            builder = builder.add_member(message)?;
        }
        for leaf in removes {
            if *leaf == own_index {
                return Err(SessionError::InvalidChange);
            }
            builder = builder.remove_member(*leaf)?;
        }
        let output = builder.build()?;
        let welcome = match output.welcome_messages.first() {
            Some(w) => Some(w.to_bytes()?),
            None => None,
        };
        let commit = output.commit_message.to_bytes()?;
        self.save()?;
        Ok(Commit { commit, welcome })
    }

    /// A commit that changes nobody's membership and only refreshes this
    /// member's leaf keys: post-compromise security on a schedule.
    ///
    /// # Errors
    /// As [`Session::commit`].
    pub fn self_update(&mut self) -> Result<Commit, SessionError> {
        self.commit(&[], &[])
    }

    /// Whether this member's leaf keys are older than the configured
    /// interval (or were restored from storage) and it should commit or
    /// propose an update.
    #[must_use]
    pub fn self_update_due(&self, now: Instant) -> bool {
        match (self.group.as_ref(), self.config.self_update_interval) {
            (Some(_), Some(interval)) => self
                .last_own_update
                .is_none_or(|last| now >= last.saturating_add(interval)),
            _ => false,
        }
    }

    /// Applies this member's pending commit, once the delivery service
    /// accepted it, and installs the new epoch's SFrame key.
    ///
    /// # Errors
    /// [`SessionError::NoPendingCommit`].
    pub fn apply_pending_commit(&mut self, now: Instant) -> Result<u64, SessionError> {
        let before = self.members_by_key();
        let group = self.group.as_mut().ok_or(SessionError::NoGroup)?;
        let applied = group.apply_pending_commit()?;
        if let CommitEffect::NewEpoch(new_epoch) = &applied.effect {
            remember_adds(&mut self.added_key_packages, &new_epoch.applied_proposals);
        }
        let epoch = group.current_epoch();
        self.send_context = 0;
        self.install_current_epoch(now)?;
        self.last_own_update = Some(now);
        self.introduce_new_leaves(&before);
        self.save()?;
        Ok(epoch)
    }

    /// Drops the pending commit: the delivery service refused it. Nothing
    /// else changes.
    ///
    /// # Errors
    /// [`SessionError::Store`].
    pub fn discard_pending_commit(&mut self) -> Result<(), SessionError> {
        if let Some(group) = self.group.as_mut() {
            group.clear_pending_commit();
        }
        self.save()
    }

    /// Forgets every proposal cached for the next commit (the member's own
    /// included); proposers must propose again.
    pub fn clear_proposals(&mut self) {
        if let Some(group) = self.group.as_mut() {
            group.clear_proposal_cache();
        }
    }

    /// A fresh random MLS group id.
    #[must_use]
    pub fn new_group_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        self.crypto.fill_random(&mut id);
        id
    }

    /// The leaf indices of every member, ascending.
    #[must_use]
    pub fn leaves(&self) -> Vec<u32> {
        self.group.as_ref().map_or_else(Vec::new, |group| {
            group.roster().members_iter().map(|m| m.index).collect()
        })
    }

    /// Whether a commit built by [`Session::commit`] awaits the delivery
    /// service's answer.
    #[must_use]
    pub fn has_pending_commit(&self) -> bool {
        self.group.as_ref().is_some_and(Group::has_pending_commit)
    }

    /// A proposal (by reference) to refresh this member's leaf keys, for the
    /// next commit of whoever commits.
    ///
    /// # Errors
    /// [`SessionError::NoGroup`].
    pub fn propose_update(&mut self) -> Result<Vec<u8>, SessionError> {
        let group = self.group.as_mut().ok_or(SessionError::NoGroup)?;
        let message = group.propose_update(Vec::new())?;
        let bytes = message.to_bytes()?;
        self.save()?;
        Ok(bytes)
    }

    /// A proposal (by reference) to remove `leaf`.
    ///
    /// # Errors
    /// [`SessionError::InvalidChange`] when there is no such member.
    pub fn propose_remove(&mut self, leaf: u32) -> Result<Vec<u8>, SessionError> {
        let group = self.group.as_mut().ok_or(SessionError::NoGroup)?;
        let message = group.propose_remove(leaf, Vec::new())?;
        let bytes = message.to_bytes()?;
        self.save()?;
        Ok(bytes)
    }

    /// Processes a commit or proposal from another member, in the order the
    /// delivery service gave. A commit installs the new epoch's SFrame key;
    /// the previous epoch keeps opening frames for the grace period.
    ///
    /// # Errors
    /// A typed [`SessionError`] for anything malformed, forged, for another
    /// epoch or group, or from a non-member; the session is then unchanged.
    pub fn process(&mut self, now: Instant, message: &[u8]) -> Result<Event, SessionError> {
        let before = self.members_by_key();
        let group = self.group.as_mut().ok_or(SessionError::NoGroup)?;
        let message = parse_message(message)?;
        if message.group_id().is_some_and(|id| id != group.group_id()) {
            return Err(SessionError::WrongGroup);
        }
        let event = match group.process_incoming_message(message)? {
            ReceivedMessage::Proposal(p) => {
                let ProposalSender::Member(sender) = p.sender else {
                    return Err(SessionError::NotMember);
                };
                if !matches!(p.proposal, Proposal::Update(_)) {
                    // mls-rs has cached it; `rules.rs` keeps it out of
                    // every commit this member builds.
                    return Err(SessionError::UnwantedProposal);
                }
                Event::Proposal { sender }
            }
            ReceivedMessage::Commit(commit) => match commit.effect {
                CommitEffect::NewEpoch(new_epoch) => {
                    let own_index = group.current_member_index();
                    let own_update_applied = new_epoch.applied_proposals.iter().any(|p| {
                        matches!(p.proposal, Proposal::Update(_))
                            && p.sender == Sender::Member(own_index)
                    });
                    if own_update_applied {
                        self.last_own_update = Some(now);
                    }
                    remember_adds(&mut self.added_key_packages, &new_epoch.applied_proposals);
                    let epoch = group.current_epoch();
                    self.send_context = 0;
                    self.install_current_epoch(now)?;
                    self.introduce_new_leaves(&before);
                    Event::NewEpoch {
                        epoch,
                        committer: commit.committer,
                    }
                }
                CommitEffect::Removed { .. } => {
                    self.forget_group();
                    Event::Removed {
                        by: commit.committer,
                    }
                }
                CommitEffect::ReInit(_) => return Err(SessionError::Protocol),
            },
            _ => return Err(SessionError::Malformed),
        };
        self.save()?;
        Ok(event)
    }

    /// Leaves: erases the group and every SFrame key. The identity and
    /// unused key packages stay.
    ///
    /// # Errors
    /// [`SessionError::Store`].
    pub fn leave(&mut self) -> Result<(), SessionError> {
        self.forget_group();
        self.save()
    }

    fn forget_group(&mut self) {
        self.group = None;
        *self.group_slot.0.lock() = None;
        self.keyring.clear();
        self.last_own_update = None;
        self.added_key_packages.clear();
    }

    /// The current epoch, if in a group.
    #[must_use]
    pub fn epoch(&self) -> Option<u64> {
        self.group.as_ref().map(Group::current_epoch)
    }

    /// This member's leaf index, if in a group.
    #[must_use]
    pub fn own_index(&self) -> Option<u32> {
        self.group.as_ref().map(Group::current_member_index)
    }

    /// The group id, if in a group.
    #[must_use]
    pub fn group_id(&self) -> Option<&[u8]> {
        self.group.as_ref().map(Group::group_id)
    }

    /// Every member, by leaf index.
    #[must_use]
    pub fn roster(&self) -> Vec<RosterEntry> {
        let Some(group) = self.group.as_ref() else {
            return Vec::new();
        };
        group
            .roster()
            .members_iter()
            .filter_map(|member| {
                let info = MemberInfo::from_identity(&member.signing_identity).ok()?;
                Some(RosterEntry {
                    leaf_index: member.index,
                    info,
                    fingerprint: IdentityFingerprint::of(
                        member.signing_identity.signature_key.as_bytes(),
                    ),
                })
            })
            .collect()
    }

    /// The safety number of the current epoch: the same on every member's
    /// screen exactly when they share the group state.
    ///
    /// # Errors
    /// [`SessionError::NoGroup`].
    pub fn safety_number(&self) -> Result<SafetyNumber, SessionError> {
        let group = self.group.as_ref().ok_or(SessionError::NoGroup)?;
        let authenticator = group.epoch_authenticator()?;
        Ok(SafetyNumber::from_epoch_authenticator(
            authenticator.as_bytes(),
        ))
    }

    /// The SFrame keys: seal with it, open with it.
    #[must_use]
    pub fn keyring(&self) -> &KeyRing {
        &self.keyring
    }

    /// The SFrame keys, for sealing and opening frames.
    pub fn keyring_mut(&mut self) -> &mut KeyRing {
        &mut self.keyring
    }

    /// When [`Session::handle_timeout`] next has work: an earlier epoch's
    /// grace period ends, or a self-update falls due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let update = match (self.group.as_ref(), self.config.self_update_interval) {
            (Some(_), Some(interval)) => self.last_own_update.map(|t| t.saturating_add(interval)),
            _ => None,
        };
        match (self.keyring.poll_timeout(), update) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Erases earlier epochs whose grace period is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.keyring.handle_timeout(now);
    }

    fn install_current_epoch(&mut self, now: Instant) -> Result<(), SessionError> {
        let group = self.group.as_ref().ok_or(SessionError::NoGroup)?;
        let suite = self.keyring.config().suite;
        let base_key = group.export_secret(SFRAME_EXPORTER_LABEL, b"", suite.key_len())?;
        let group_size = group
            .roster()
            .members_iter()
            .map(|m| u64::from(m.index) + 1)
            .max()
            .unwrap_or(1);
        let sending = self.send_context < MAX_SEND_CONTEXTS;
        if !sending {
            // Every stream of this epoch may have been used before a
            // restart: receive only until the next epoch.
            self.keyring.set_send_context(None)?;
        }
        self.keyring.install_epoch(
            now,
            EpochSecret {
                epoch: group.current_epoch(),
                base_key: base_key.as_bytes(),
                group_size,
                own_index: u64::from(group.current_member_index()),
            },
        )?;
        if sending {
            // Nothing was sealed with the key just installed, so switching
            // now never repeats a (key, counter) pair.
            self.keyring.set_send_context(Some(self.send_context))?;
        }
        Ok(())
    }

    /// Writes the whole member state to the store.
    fn save(&mut self) -> Result<(), SessionError> {
        let (group, snapshot) = match self.group.as_mut() {
            Some(group) => {
                group.write_to_storage()?;
                // Moved out, not copied, and saved as its own part: a
                // 16-member group's snapshot is ~5 KB a microcontroller would
                // otherwise hold two or three times.
                let (id, snapshot) = self
                    .group_slot
                    .0
                    .lock()
                    .take()
                    .ok_or(SessionError::CorruptState)?;
                let record = GroupRecord {
                    id,
                    epoch: group.current_epoch(),
                    send_context: self.send_context,
                };
                (Some(record), snapshot)
            }
            None => (None, Zeroizing::new(Vec::new())),
        };
        let key_packages = self
            .key_packages
            .0
            .lock()
            .iter()
            .map(|(id, data)| Ok((id.clone(), data.mls_encode_to_vec()?)))
            .collect::<Result<Vec<_>, mls_rs_codec::Error>>()
            .map_err(|_| SessionError::CorruptState)?;
        let record = Record {
            version: RECORD_VERSION,
            identity_seed: *self.identity_seed,
            display_name: self.info.display_name.clone(),
            device_id: self.info.device_id.clone(),
            key_packages,
            group,
            trust: self.trust.to_bytes(),
        };
        let fields = record.encode()?;
        drop(record);
        self.store.save_parts(&[&fields, &snapshot])?;
        Ok(())
    }

    /// The crypto provider, for callers that need randomness from the same
    /// generator.
    #[must_use]
    pub fn crypto(&self) -> &SatsumaCrypto {
        &self.crypto
    }
}

/// What identifies a key package among those added: its HPKE init key,
/// fresh in each key package and covered by its signature.
fn init_key_id(key: &HpkePublicKey) -> [u8; 16] {
    let mut id = [0; 16];
    for (to, from) in id.iter_mut().zip(key.as_ref()) {
        *to = *from;
    }
    id
}

/// Remembers the key packages a commit added.
fn remember_adds(added: &mut VecDeque<[u8; 16]>, applied: &[ProposalInfo<Proposal>]) {
    for info in applied {
        if let Proposal::Add(add) = &info.proposal {
            if added.len() >= REMEMBERED_KEY_PACKAGES {
                added.pop_front();
            }
            added.push_back(init_key_id(&add.key_package().hpke_init_key));
        }
    }
}

/// An `MLSMessage` of protocol version `mls10`, the only one there is
/// (RFC 9420 §6). mls-rs checks the version signed inside a key package but
/// not the outer one, so it is checked here for every message.
fn parse_message(bytes: &[u8]) -> Result<MlsMessage, SessionError> {
    const MLS_10: [u8; 2] = [0x00, 0x01];
    if bytes.get(..2) != Some(&MLS_10[..]) {
        return Err(SessionError::Malformed);
    }
    MlsMessage::from_bytes(bytes).map_err(|_| SessionError::Malformed)
}

/// Key packages with their private keys, oldest first; shared between the
/// session and mls-rs.
#[derive(Clone, Default)]
struct KeyPackages(Arc<Mutex<Vec<KeyPackageEntry>>>);

/// A key package's id (its reference) and its private data.
type KeyPackageEntry = (Vec<u8>, KeyPackageData);

impl fmt::Debug for KeyPackages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyPackages")
            .field(&self.0.lock().len())
            .finish()
    }
}

impl KeyPackageStorage for KeyPackages {
    type Error = core::convert::Infallible;

    fn delete(&mut self, id: &[u8]) -> Result<(), Self::Error> {
        self.0.lock().retain(|(k, _)| k != id);
        Ok(())
    }

    fn insert(&mut self, id: Vec<u8>, pkg: KeyPackageData) -> Result<(), Self::Error> {
        self.0.lock().push((id, pkg));
        Ok(())
    }

    fn get(&self, id: &[u8]) -> Result<Option<KeyPackageData>, Self::Error> {
        Ok(self
            .0
            .lock()
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, pkg)| pkg.clone()))
    }
}

/// The one group's latest snapshot, on its way between mls-rs and the
/// [`Store`]: mls-rs writes it, the session moves it out and saves it;
/// on resume the session puts it back for mls-rs to load.
#[derive(Clone, Default)]
struct GroupSlot(Arc<Mutex<Option<GroupSnapshot>>>);

/// A group's id and its encoded mls-rs snapshot.
type GroupSnapshot = (Vec<u8>, Zeroizing<Vec<u8>>);

impl fmt::Debug for GroupSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupSlot")
    }
}

impl GroupStateStorage for GroupSlot {
    type Error = core::convert::Infallible;

    fn state(&self, group_id: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, Self::Error> {
        Ok(self
            .0
            .lock()
            .as_ref()
            .filter(|(id, _)| id == group_id)
            .map(|(_, data)| data.clone()))
    }

    fn epoch(
        &self,
        _group_id: &[u8],
        _epoch_id: u64,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, Self::Error> {
        // Earlier epochs' secrets are not kept: the SFrame key ring holds
        // what frames in flight need.
        Ok(None)
    }

    fn write(
        &mut self,
        state: GroupState,
        _epoch_inserts: Vec<EpochRecord>,
        _epoch_updates: Vec<EpochRecord>,
    ) -> Result<(), Self::Error> {
        *self.0.lock() = Some((state.id, state.data));
        Ok(())
    }

    fn max_epoch_id(&self, _group_id: &[u8]) -> Result<Option<u64>, Self::Error> {
        Ok(None)
    }
}
