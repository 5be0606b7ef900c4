//! Satsuma's MLS crypto provider interoperates with another implementation
//! of the same cipher suite: in one group, members on [`SatsumaCrypto`] and
//! members on mls-rs's own RustCrypto provider add, update and remove each
//! other, and after every commit all of them agree on the epoch, the epoch
//! authenticator and the SFrame base key, `MLS-Exporter("SFrame 1.0 Base
//! Key", "", 16)` (RFC 9605 §5.2). A value either side derived differently
//! (a KDF label, an HPKE context, a signature encoding) would split the
//! group: a commit would fail to process or the keys would differ.
//!
//! Both directions: Satsuma creates the group and adds RustCrypto members,
//! and a RustCrypto member creates it and adds Satsuma.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code.

use mls_rs::client_builder::MlsConfig;
use mls_rs::group::{CommitEffect, ReceivedMessage};
use mls_rs::identity::SigningIdentity;
use mls_rs::identity::basic::{BasicCredential, BasicIdentityProvider};
use mls_rs::mls_rules::{CommitOptions, DefaultMlsRules};
use mls_rs::{CipherSuiteProvider, Client, CryptoProvider, ExtensionList, Group, MlsMessage};
use mls_rs_crypto_rustcrypto::RustCryptoProvider;
use satsuma_core::mls::{SUITE, SatsumaCrypto};

/// RFC 9605 §5.2: the SFrame base key of an epoch.
const SFRAME_LABEL: &[u8] = b"SFrame 1.0 Base Key";
const SFRAME_KEY_LEN: usize = 16;

/// One member, whichever provider it runs on.
trait Member {
    fn name(&self) -> &str;
    fn provider(&self) -> &'static str;
    fn key_package(&self) -> MlsMessage;
    fn create(&mut self);
    fn join(&mut self, welcome: &MlsMessage);
    /// Commits adding `key_package`'s owner; returns the commit and the
    /// Welcome.
    fn add(&mut self, key_package: MlsMessage) -> (MlsMessage, MlsMessage);
    /// Commits nothing but a fresh path: new keys for everyone.
    fn update(&mut self) -> MlsMessage;
    fn remove(&mut self, index: u32) -> MlsMessage;
    /// Processes a commit; `true` when it removed this member.
    fn process(&mut self, commit: MlsMessage) -> bool;
    fn index(&self) -> u32;
    /// Epoch, epoch authenticator and SFrame base key.
    fn epoch_state(&self) -> (u64, Vec<u8>, Vec<u8>);
}

struct Peer<C: MlsConfig> {
    name: &'static str,
    provider: &'static str,
    client: Client<C>,
    group: Option<Group<C>>,
}

fn peer<P>(name: &'static str, provider: &'static str, crypto: P) -> Box<dyn Member>
where
    P: CryptoProvider + Clone + 'static,
{
    let suite = crypto.cipher_suite_provider(SUITE).unwrap();
    let (secret, public) = suite.signature_key_generate().unwrap();
    let credential = BasicCredential::new(name.as_bytes().to_vec()).into_credential();
    // Every commit carries a path, so each one HPKE-encrypts fresh path
    // secrets from one provider to the other's keys.
    let rules = DefaultMlsRules::new().with_commit_options(
        CommitOptions::new()
            .with_path_required(true)
            .with_ratchet_tree_extension(true),
    );
    let client = Client::builder()
        .crypto_provider(crypto)
        .identity_provider(BasicIdentityProvider::new())
        .mls_rules(rules)
        .signing_identity(SigningIdentity::new(credential, public), secret, SUITE)
        .build();
    Box::new(Peer {
        name,
        provider,
        client,
        group: None,
    })
}

fn satsuma(name: &'static str, seed: u8) -> Box<dyn Member> {
    peer(name, "Satsuma", SatsumaCrypto::from_seed([seed; 32]))
}

fn rust_crypto(name: &'static str) -> Box<dyn Member> {
    peer(name, "RustCrypto", RustCryptoProvider::new())
}

impl<C: MlsConfig> Peer<C> {
    fn group(&mut self) -> &mut Group<C> {
        let name = self.name;
        self.group
            .as_mut()
            .unwrap_or_else(|| panic!("{name} is in no group"))
    }

    /// Commits what `build` adds to a builder and applies it.
    fn commit(
        &mut self,
        build: impl FnOnce(mls_rs::group::CommitBuilder<'_, C>) -> mls_rs::group::CommitBuilder<'_, C>,
    ) -> mls_rs::group::CommitOutput {
        let group = self.group();
        let output = build(group.commit_builder()).build().unwrap();
        group.apply_pending_commit().unwrap();
        output
    }
}

impl<C: MlsConfig> Member for Peer<C> {
    fn name(&self) -> &str {
        self.name
    }

    fn provider(&self) -> &'static str {
        self.provider
    }

    fn key_package(&self) -> MlsMessage {
        self.client
            .generate_key_package_message(ExtensionList::new(), ExtensionList::new(), None)
            .unwrap()
    }

    fn create(&mut self) {
        let group = self
            .client
            .create_group(ExtensionList::new(), ExtensionList::new(), None)
            .unwrap();
        self.group = Some(group);
    }

    fn join(&mut self, welcome: &MlsMessage) {
        let (group, _) = self.client.join_group(None, welcome, None).unwrap();
        self.group = Some(group);
    }

    fn add(&mut self, key_package: MlsMessage) -> (MlsMessage, MlsMessage) {
        let mut output = self.commit(|b| b.add_member(key_package).unwrap());
        assert_eq!(output.welcome_messages.len(), 1, "one Welcome");
        (output.commit_message, output.welcome_messages.remove(0))
    }

    fn update(&mut self) -> MlsMessage {
        self.commit(|b| b).commit_message
    }

    fn remove(&mut self, index: u32) -> MlsMessage {
        self.commit(|b| b.remove_member(index).unwrap())
            .commit_message
    }

    fn process(&mut self, commit: MlsMessage) -> bool {
        let name = self.name;
        match self.group().process_incoming_message(commit) {
            Ok(ReceivedMessage::Commit(description)) => match description.effect {
                CommitEffect::NewEpoch(_) => false,
                CommitEffect::Removed { .. } => true,
                CommitEffect::ReInit(_) => panic!("{name}: unexpected ReInit"),
            },
            Ok(other) => panic!("{name}: expected a commit, got {other:?}"),
            Err(e) => panic!("{name} could not process the commit: {e:?}"),
        }
    }

    fn index(&self) -> u32 {
        self.group.as_ref().unwrap().current_member_index()
    }

    fn epoch_state(&self) -> (u64, Vec<u8>, Vec<u8>) {
        let group = self.group.as_ref().unwrap();
        let authenticator = group.epoch_authenticator().unwrap().as_bytes().to_vec();
        let base_key = group
            .export_secret(SFRAME_LABEL, b"", SFRAME_KEY_LEN)
            .unwrap()
            .as_bytes()
            .to_vec();
        (group.current_epoch(), authenticator, base_key)
    }
}

/// Every member is at the same epoch with the same authenticator and
/// SFrame key, and the key is not the previous epoch's.
fn assert_in_step(members: &[&dyn Member], epoch: u64, previous_keys: &mut Vec<Vec<u8>>) {
    let (first, rest) = members.split_first().unwrap();
    let expected = first.epoch_state();
    assert_eq!(expected.0, epoch, "{}'s epoch", first.name());
    assert_eq!(expected.2.len(), SFRAME_KEY_LEN);
    for member in rest {
        let state = member.epoch_state();
        assert_eq!(
            state.0,
            expected.0,
            "epoch: {} ({}) vs {} ({})",
            member.name(),
            member.provider(),
            first.name(),
            first.provider()
        );
        assert_eq!(
            state.1,
            expected.1,
            "epoch {epoch} authenticator: {} ({}) vs {} ({})",
            member.name(),
            member.provider(),
            first.name(),
            first.provider()
        );
        assert_eq!(
            state.2,
            expected.2,
            "epoch {epoch} SFrame base key: {} ({}) vs {} ({})",
            member.name(),
            member.provider(),
            first.name(),
            first.provider()
        );
    }
    assert!(
        !previous_keys.contains(&expected.2),
        "epoch {epoch} reused an earlier SFrame base key"
    );
    previous_keys.push(expected.2);
}

/// `creator` starts the group and adds `joiner`, then `third`; commits come
/// from each of them in turn; `joiner` removes `third`, who learns it was
/// removed; the two left keep going.
fn call(mut creator: Box<dyn Member>, mut joiner: Box<dyn Member>, mut third: Box<dyn Member>) {
    let mut keys = Vec::new();
    creator.create();
    assert_in_step(&[&*creator], 0, &mut keys);

    // Nobody else is in the group yet to process the commit.
    let (_, welcome) = creator.add(joiner.key_package());
    joiner.join(&welcome);
    assert_in_step(&[&*creator, &*joiner], 1, &mut keys);

    let commit = joiner.update();
    assert!(!creator.process(commit));
    assert_in_step(&[&*creator, &*joiner], 2, &mut keys);

    let (commit, welcome) = creator.add(third.key_package());
    assert!(!joiner.process(commit));
    third.join(&welcome);
    assert_in_step(&[&*creator, &*joiner, &*third], 3, &mut keys);

    let commit = third.update();
    assert!(!creator.process(commit.clone()));
    assert!(!joiner.process(commit));
    assert_in_step(&[&*creator, &*joiner, &*third], 4, &mut keys);

    let commit = joiner.remove(third.index());
    assert!(!creator.process(commit.clone()));
    assert!(
        third.process(commit),
        "{} was not told of its removal",
        third.name()
    );
    assert_in_step(&[&*creator, &*joiner], 5, &mut keys);

    let commit = creator.update();
    assert!(!joiner.process(commit));
    assert_in_step(&[&*creator, &*joiner], 6, &mut keys);
}

#[test]
fn satsuma_creates_the_group_and_rust_crypto_members_join() {
    call(
        satsuma("alice", 1),
        rust_crypto("bob"),
        rust_crypto("carol"),
    );
}

#[test]
fn a_rust_crypto_member_creates_the_group_and_satsuma_joins() {
    call(
        rust_crypto("bob"),
        satsuma("alice", 2),
        rust_crypto("carol"),
    );
}

#[test]
fn satsuma_and_rust_crypto_agree_on_the_labelled_primitives() {
    // The same inputs through both providers' raw trait calls: what the
    // group tests exercise indirectly, here byte for byte.
    let ours = SatsumaCrypto::from_seed([3; 32])
        .cipher_suite_provider(SUITE)
        .unwrap();
    let theirs = RustCryptoProvider::new()
        .cipher_suite_provider(SUITE)
        .unwrap();
    let secret = [0x11; 32];
    assert_eq!(ours.hash(b"abc").unwrap(), theirs.hash(b"abc").unwrap());
    assert_eq!(
        ours.mac(&secret, b"abc").unwrap(),
        theirs.mac(&secret, b"abc").unwrap()
    );
    assert_eq!(
        *ours.kdf_extract(b"salt", &secret).unwrap(),
        *theirs.kdf_extract(b"salt", &secret).unwrap()
    );
    assert_eq!(
        *ours.kdf_expand(&secret, b"info", 42).unwrap(),
        *theirs.kdf_expand(&secret, b"info", 42).unwrap()
    );
    let (our_sk, our_pk) = ours.kem_derive(&secret).unwrap();
    let (their_sk, their_pk) = theirs.kem_derive(&secret).unwrap();
    assert_eq!(our_pk, their_pk, "KEM.DeriveKeyPair public key");

    // HPKE from each to the other.
    let sealed = ours
        .hpke_seal(&their_pk, b"info", Some(b"aad"), b"to them")
        .unwrap();
    let opened = theirs
        .hpke_open(&sealed, &their_sk, &their_pk, b"info", Some(b"aad"))
        .unwrap();
    assert_eq!(*opened, b"to them");
    let sealed = theirs
        .hpke_seal(&our_pk, b"info", Some(b"aad"), b"to us")
        .unwrap();
    let opened = ours
        .hpke_open(&sealed, &our_sk, &our_pk, b"info", Some(b"aad"))
        .unwrap();
    assert_eq!(*opened, b"to us");

    // Signatures from each verify with the other.
    let (sk, pk) = ours.signature_key_generate().unwrap();
    theirs
        .verify(&pk, &ours.sign(&sk, b"msg").unwrap(), b"msg")
        .unwrap();
    let (sk, pk) = theirs.signature_key_generate().unwrap();
    ours.verify(&pk, &theirs.sign(&sk, b"msg").unwrap(), b"msg")
        .unwrap();
    assert!(
        ours.verify(&pk, &theirs.sign(&sk, b"msg").unwrap(), b"msh")
            .is_err()
    );
}
