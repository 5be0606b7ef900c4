//! Satsuma's members in one group with OpenMLS 0.9 clients, another MLS
//! implementation nobody here wrote.
//!
//! Satsuma's side is the real [`Session`] (its credential, its rules, its
//! key-package lifetimes, its SFrame key ring); OpenMLS's side is
//! `openmls_rust_crypto` configured as an interoperating client would be:
//! the Satsuma credential (a basic credential whose identifier is
//! `1 ‖ len(device) ‖ device ‖ name`, docs/mls.md), `PublicMessage`
//! handshakes and the ratchet tree in the Welcome.
//!
//! In both directions (OpenMLS creates and Satsuma joins; Satsuma creates
//! and OpenMLS joins) each side commits adds and removes that the other
//! processes, and at every epoch every member agrees on the epoch, the
//! safety number (from the epoch authenticator) and the SFrame base key: a
//! frame one side seals, the other opens, both ways.
//!
//! Before key packages carried a real lifetime, OpenMLS refused every
//! Satsuma key package (valid 1970-01-01 to 1971-01-01) and every Welcome
//! from a group Satsuma created.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code.

use std::sync::Arc;

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    BasicCredential, Ciphersuite, CredentialWithKey, KeyPackage, LeafNodeIndex, LeafNodeParameters,
    MlsGroup, MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn,
    MlsMessageOut, PURE_PLAINTEXT_WIRE_FORMAT_POLICY, ProcessedMessageContent, ProtocolVersion,
    StagedWelcome,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::OpenMlsProvider as _;
use openmls_traits::types::SignatureScheme;
use satsuma_core::mls::{
    CLOCK_SKEW, Event, KEY_PACKAGE_LIFETIME, MemberInfo, MemoryStore, SFRAME_EXPORTER_LABEL,
    SafetyNumber, SatsumaCrypto, Session, SessionConfig, SessionError,
};
use satsuma_core::sframe::{EpochSecret, KeyRing, KeyRingConfig};
use satsuma_core::{Instant, UnixTime};

const SUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
const NOW: Instant = Instant::from_millis(0);

/// A Satsuma member at the wall-clock time OpenMLS reads (it has no way
/// to be given another).
fn satsuma(name: &str, seed: u8) -> Session {
    let mut session = Session::create(
        SatsumaCrypto::from_seed([seed; 32]),
        MemberInfo::new(name, &format!("{name}-laptop")).unwrap(),
        SessionConfig::default(),
        MemoryStore::new(),
    )
    .unwrap();
    session.set_time(UnixTime::now());
    session
}

/// An OpenMLS client speaking Satsuma's credential format.
struct OpenMember {
    name: String,
    provider: OpenMlsRustCrypto,
    signer: Arc<SignatureKeyPair>,
    credential: CredentialWithKey,
    group: Option<MlsGroup>,
}

fn satsuma_identifier(name: &str, device: &str) -> Vec<u8> {
    let mut id = vec![1, u8::try_from(device.len()).unwrap()];
    id.extend_from_slice(device.as_bytes());
    id.extend_from_slice(name.as_bytes());
    id
}

fn encode(message: &MlsMessageOut) -> Vec<u8> {
    message.tls_serialize_detached().unwrap()
}

fn decode(bytes: &[u8]) -> MlsMessageIn {
    MlsMessageIn::tls_deserialize_exact(bytes).unwrap()
}

fn create_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(SUITE)
        .use_ratchet_tree_extension(true)
        .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build()
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build()
}

impl OpenMember {
    fn new(name: &str) -> Self {
        let signer = SignatureKeyPair::new(SignatureScheme::ED25519).unwrap();
        let credential = CredentialWithKey {
            credential: BasicCredential::new(satsuma_identifier(name, &format!("{name}-openmls")))
                .into(),
            signature_key: signer.public().into(),
        };
        Self {
            name: name.into(),
            provider: OpenMlsRustCrypto::default(),
            signer: Arc::new(signer),
            credential,
            group: None,
        }
    }

    fn group(&mut self) -> &mut MlsGroup {
        self.group.as_mut().expect("in a group")
    }

    fn create(&mut self) {
        let group = MlsGroup::new(
            &self.provider,
            &*self.signer,
            &create_config(),
            self.credential.clone(),
        )
        .unwrap();
        self.group = Some(group);
    }

    fn key_package(&self) -> Vec<u8> {
        let bundle = KeyPackage::builder()
            .build(
                SUITE,
                &self.provider,
                &*self.signer,
                self.credential.clone(),
            )
            .unwrap();
        encode(&MlsMessageOut::from(bundle.key_package().clone()))
    }

    /// Validates a key package as OpenMLS does before adding it.
    fn accepts_key_package(&self, key_package: &[u8]) -> Result<KeyPackage, String> {
        let MlsMessageBodyIn::KeyPackage(key_package) = decode(key_package).extract() else {
            panic!("not a key package");
        };
        key_package
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| format!("{e:?}"))
    }

    /// Commits adding `key_package`'s owner: the commit and the Welcome.
    fn add(&mut self, key_package: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let key_package = self
            .accepts_key_package(key_package)
            .unwrap_or_else(|e| panic!("{} refuses a Satsuma key package: {e}", self.name));
        let provider = &self.provider;
        let signer = &*self.signer;
        let group = self.group.as_mut().expect("in a group");
        let (commit, welcome, _info) = group.add_members(provider, signer, &[key_package]).unwrap();
        group.merge_pending_commit(provider).unwrap();
        (encode(&commit), encode(&welcome))
    }

    fn remove(&mut self, leaf: u32) -> Vec<u8> {
        let provider = &self.provider;
        let signer = &*self.signer;
        let group = self.group.as_mut().expect("in a group");
        let (commit, _welcome, _info) = group
            .remove_members(provider, signer, &[LeafNodeIndex::new(leaf)])
            .unwrap();
        group.merge_pending_commit(provider).unwrap();
        encode(&commit)
    }

    fn update(&mut self) -> Vec<u8> {
        let provider = &self.provider;
        let signer = &*self.signer;
        let group = self.group.as_mut().expect("in a group");
        let bundle = group
            .self_update(provider, signer, LeafNodeParameters::default())
            .unwrap();
        group.merge_pending_commit(provider).unwrap();
        encode(bundle.commit())
    }

    fn join(&mut self, welcome: &[u8]) -> Result<(), String> {
        let MlsMessageBodyIn::Welcome(welcome) = decode(welcome).extract() else {
            panic!("not a Welcome");
        };
        let group = StagedWelcome::new_from_welcome(&self.provider, &join_config(), welcome, None)
            .and_then(|staged| staged.into_group(&self.provider))
            .map_err(|e| format!("{e:?}"))?;
        self.group = Some(group);
        Ok(())
    }

    /// Processes a commit; `true` when it removed this member.
    fn process(&mut self, commit: &[u8]) -> bool {
        let provider = &self.provider;
        let group = self.group.as_mut().expect("in a group");
        let message = decode(commit).try_into_protocol_message().unwrap();
        let processed = group
            .process_message(provider, message)
            .unwrap_or_else(|e| panic!("{} refuses a commit: {e:?}", self.name));
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            panic!("not a commit");
        };
        let removed = staged.self_removed();
        group.merge_staged_commit(provider, *staged).unwrap();
        if removed {
            self.group = None;
        }
        removed
    }

    fn epoch(&mut self) -> u64 {
        self.group().epoch().as_u64()
    }

    fn safety_number(&mut self) -> SafetyNumber {
        SafetyNumber::from_epoch_authenticator(self.group().epoch_authenticator().as_slice())
    }

    fn leaf(&mut self) -> u32 {
        self.group().own_leaf_index().u32()
    }

    /// A Satsuma key ring on OpenMLS's exporter: the SFrame keys OpenMLS
    /// derives for this epoch.
    fn keyring(&mut self) -> KeyRing {
        let provider = &self.provider;
        let group = self.group.as_ref().expect("in a group");
        let label = core::str::from_utf8(SFRAME_EXPORTER_LABEL).unwrap();
        let base_key = group
            .export_secret(provider.crypto(), label, b"", 16)
            .unwrap();
        let group_size = group
            .members()
            .map(|m| u64::from(m.index.u32()) + 1)
            .max()
            .unwrap();
        let mut ring = KeyRing::new(KeyRingConfig::default()).unwrap();
        ring.install_epoch(
            NOW,
            EpochSecret {
                epoch: group.epoch().as_u64(),
                base_key: &base_key,
                group_size,
                own_index: u64::from(group.own_leaf_index().u32()),
            },
        )
        .unwrap();
        ring.set_send_context(Some(0)).unwrap();
        ring
    }
}

fn seal(ring: &mut KeyRing, plaintext: &[u8]) -> Vec<u8> {
    let mut out = vec![0; ring.max_ciphertext_len(plaintext.len())];
    let n = ring.encrypt(b"meta", plaintext, &mut out).unwrap();
    out.truncate(n);
    out
}

fn open(ring: &mut KeyRing, frame: &[u8]) -> Vec<u8> {
    let mut out = vec![0; frame.len()];
    let opened = ring.decrypt(b"meta", frame, &mut out).unwrap();
    out.truncate(opened.len);
    out
}

/// Every member agrees on the epoch, the safety number and the SFrame
/// keys: each Satsuma member opens a frame from each OpenMLS member and
/// the other way round.
fn agree(satsuma: &mut [&mut Session], openmls: &mut [&mut OpenMember], epoch: u64) {
    for s in satsuma.iter() {
        assert_eq!(s.epoch(), Some(epoch), "{}", s.info());
    }
    for o in openmls.iter_mut() {
        assert_eq!(o.epoch(), epoch, "{}", o.name);
    }
    let number = satsuma[0].safety_number().unwrap();
    for s in satsuma.iter() {
        assert_eq!(s.safety_number().unwrap(), number, "{}", s.info());
    }
    for o in openmls.iter_mut() {
        assert_eq!(o.safety_number(), number, "{}", o.name);
        let mut ring = o.keyring();
        for s in satsuma.iter_mut() {
            let from_openmls = format!("{} to {} in epoch {epoch}", o.name, s.info());
            let frame = seal(&mut ring, from_openmls.as_bytes());
            assert_eq!(open(s.keyring_mut(), &frame), from_openmls.as_bytes());
            let from_satsuma = format!("{} to {} in epoch {epoch}", s.info(), o.name);
            let frame = seal(s.keyring_mut(), from_satsuma.as_bytes());
            assert_eq!(open(&mut ring, &frame), from_satsuma.as_bytes());
        }
    }
}

/// `committer` (Satsuma) commits `adds` and `removes`; the commit is
/// applied and its Welcome returned.
fn satsuma_commit(
    committer: &mut Session,
    adds: &[&[u8]],
    removes: &[u32],
) -> (Vec<u8>, Option<Vec<u8>>) {
    let built = committer.commit(adds, removes).unwrap();
    committer.apply_pending_commit(NOW).unwrap();
    (built.commit, built.welcome)
}

fn processes(session: &mut Session, commit: &[u8]) -> Event {
    session.process(NOW, commit).unwrap()
}

#[test]
fn satsuma_creates_and_openmls_joins() {
    let mut ada = satsuma("Ada", 1);
    let mut cy = satsuma("Cy", 2);
    let mut bob = OpenMember::new("Bob");
    let mut dee = OpenMember::new("Dee");

    ada.create_group(NOW, b"satsuma-first").unwrap();
    // OpenMLS checks the lifetime of every leaf in the tree it joins,
    // Ada's own included.
    let (commit, welcome) = satsuma_commit(&mut ada, &[&bob.key_package()], &[]);
    assert!(!commit.is_empty());
    bob.join(&welcome.unwrap())
        .expect("OpenMLS joins from Satsuma's Welcome");
    agree(&mut [&mut ada], &mut [&mut bob], 1);

    // OpenMLS adds a Satsuma member.
    let (commit, welcome) = bob.add(&cy.key_package().unwrap());
    assert!(matches!(
        processes(&mut ada, &commit),
        Event::NewEpoch { epoch: 2, .. }
    ));
    cy.join(NOW, &welcome)
        .expect("Satsuma joins from OpenMLS's Welcome");
    agree(&mut [&mut ada, &mut cy], &mut [&mut bob], 2);

    // Satsuma adds a second OpenMLS member.
    let (commit, welcome) = satsuma_commit(&mut cy, &[&dee.key_package()], &[]);
    processes(&mut ada, &commit);
    assert!(!bob.process(&commit));
    dee.join(&welcome.unwrap()).unwrap();
    agree(&mut [&mut ada, &mut cy], &mut [&mut bob, &mut dee], 3);

    // OpenMLS refreshes its keys; Satsuma follows.
    let commit = bob.update();
    processes(&mut ada, &commit);
    processes(&mut cy, &commit);
    assert!(!dee.process(&commit));
    agree(&mut [&mut ada, &mut cy], &mut [&mut bob, &mut dee], 4);

    // OpenMLS removes a Satsuma member.
    let cy_leaf = cy.own_index().unwrap();
    let commit = dee.remove(cy_leaf);
    processes(&mut ada, &commit);
    assert!(!bob.process(&commit));
    assert!(matches!(processes(&mut cy, &commit), Event::Removed { .. }));
    assert_eq!(cy.epoch(), None, "Cy is out");
    agree(&mut [&mut ada], &mut [&mut bob, &mut dee], 5);

    // Satsuma removes an OpenMLS member.
    let bob_leaf = bob.leaf();
    let (commit, _) = satsuma_commit(&mut ada, &[], &[bob_leaf]);
    assert!(bob.process(&commit), "Bob learns he was removed");
    assert!(!dee.process(&commit));
    agree(&mut [&mut ada], &mut [&mut dee], 6);
}

#[test]
fn openmls_creates_and_satsuma_joins() {
    let mut bob = OpenMember::new("Bob");
    let mut dee = OpenMember::new("Dee");
    let mut ada = satsuma("Ada", 3);
    let mut cy = satsuma("Cy", 4);

    bob.create();
    let (_commit, welcome) = bob.add(&ada.key_package().unwrap());
    ada.join(NOW, &welcome)
        .expect("Satsuma joins OpenMLS's group");
    agree(&mut [&mut ada], &mut [&mut bob], 1);

    // Satsuma adds another Satsuma member and an OpenMLS one at once.
    let (commit, welcome) = satsuma_commit(
        &mut ada,
        &[&cy.key_package().unwrap(), &dee.key_package()],
        &[],
    );
    assert!(!bob.process(&commit));
    let welcome = welcome.unwrap();
    cy.join(NOW, &welcome).unwrap();
    dee.join(&welcome).unwrap();
    agree(&mut [&mut ada, &mut cy], &mut [&mut bob, &mut dee], 2);

    // Satsuma's self-update (its committer's post-compromise refresh).
    let built = cy.self_update().unwrap();
    cy.apply_pending_commit(NOW).unwrap();
    processes(&mut ada, &built.commit);
    assert!(!bob.process(&built.commit));
    assert!(!dee.process(&built.commit));
    agree(&mut [&mut ada, &mut cy], &mut [&mut bob, &mut dee], 3);

    // Satsuma removes the group's OpenMLS creator.
    let bob_leaf = bob.leaf();
    let (commit, _) = satsuma_commit(&mut ada, &[], &[bob_leaf]);
    assert!(bob.process(&commit));
    processes(&mut cy, &commit);
    assert!(!dee.process(&commit));
    agree(&mut [&mut ada, &mut cy], &mut [&mut dee], 4);

    // OpenMLS removes a Satsuma member and the rest go on.
    let ada_leaf = ada.own_index().unwrap();
    let commit = dee.remove(ada_leaf);
    assert!(matches!(
        processes(&mut ada, &commit),
        Event::Removed { .. }
    ));
    processes(&mut cy, &commit);
    agree(&mut [&mut cy], &mut [&mut dee], 5);
}

/// A Satsuma key package is valid from [`CLOCK_SKEW`] before the time its
/// driver gave until [`KEY_PACKAGE_LIFETIME`] after it: OpenMLS accepts it
/// today, and a Satsuma committer refuses one made too long ago, or made
/// by a driver whose clock runs ahead.
#[test]
fn key_package_lifetimes_are_real_and_checked() {
    let bob = OpenMember::new("Bob");
    let mut fresh = satsuma("Ada", 5);
    assert!(
        bob.accepts_key_package(&fresh.key_package().unwrap())
            .is_ok()
    );

    // Without a time, mls-rs dates it from 1970: no other implementation
    // takes that.
    let mut timeless = Session::create(
        SatsumaCrypto::from_seed([6; 32]),
        MemberInfo::new("Old", "old-box").unwrap(),
        SessionConfig::default(),
        MemoryStore::new(),
    )
    .unwrap();
    assert!(
        bob.accepts_key_package(&timeless.key_package().unwrap())
            .is_err()
    );

    let now = UnixTime::now().as_secs();
    let mut committer = satsuma("Cy", 7);
    committer.create_group(NOW, b"lifetimes").unwrap();

    let mut stale = satsuma("Stale", 8);
    stale.set_time(UnixTime::from_secs(
        now - KEY_PACKAGE_LIFETIME.as_secs() - 2 * 3600,
    ));
    let expired = stale.key_package().unwrap();
    assert_eq!(
        committer.commit(&[&expired], &[]).unwrap_err(),
        SessionError::Expired
    );

    let mut ahead = satsuma("Ahead", 9);
    ahead.set_time(UnixTime::from_secs(now + CLOCK_SKEW.as_secs() + 3600));
    let early = ahead.key_package().unwrap();
    assert_eq!(
        committer.commit(&[&early], &[]).unwrap_err(),
        SessionError::Expired
    );
    assert_eq!(committer.epoch(), Some(0), "refusals change nothing");

    // Within the skew it is fine: clocks a few minutes apart still meet.
    let mut close = satsuma("Close", 10);
    close.set_time(UnixTime::from_secs(now + 600));
    let (_, welcome) = satsuma_commit(&mut committer, &[&close.key_package().unwrap()], &[]);
    assert!(welcome.is_some());
    assert_eq!(committer.epoch(), Some(1));
}
