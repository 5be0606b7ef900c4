//! The MLS call the `mls_*` targets attack, built once per process, and a
//! mutator for genuine messages (included with `#[path]`, not a target).
//!
//! The call: Alice (leaf 0) created group "room" and added Bob (leaf 1) and
//! Carol (leaf 2): epoch 2. Dave published a key package and is in no group.
//! Every member's saved record is kept, so each input resumes fresh sessions
//! from exactly the same state (`Session::resume` from a `MemoryStore`).
//!
//! Genuine messages for Bob in epoch 2, each built from that same state,
//! with what Bob must make of it:
//! - Alice's commit adding Dave and removing Carol (and its Welcome for Dave)
//! - Carol's self-update commit
//! - Alice's update proposal
//! - Carol's commit removing Bob
#![allow(dead_code)]

use std::sync::OnceLock;

use satsuma_core::Instant;
use satsuma_core::mls::{
    Event, MemberInfo, MemoryStore, RosterEntry, SafetyNumber, SatsumaCrypto, Session,
    SessionConfig, SessionError, Store,
};

use crate::common::Input;

/// When every input happens; the grace period never ends within an input.
pub const NOW: Instant = Instant::from_micros(1_000_000);
/// The group's epoch in every saved record.
pub const EPOCH: u64 = 2;
pub const ALICE: u32 = 0;
pub const BOB: u32 = 1;
pub const CAROL: u32 = 2;

/// A genuine message for Bob and what processing it must do.
pub struct Genuine {
    pub bytes: Vec<u8>,
    pub event: Event,
    /// Bob's safety number afterwards, if still in the group.
    pub safety: Option<SafetyNumber>,
}

pub struct Fixture {
    pub alice: Vec<u8>,
    pub bob: Vec<u8>,
    pub dave: Vec<u8>,
    /// The state's safety number at epoch 2.
    pub safety: SafetyNumber,
    pub dave_key_package: Vec<u8>,
    /// Alice's commit adding Dave and removing Carol: `messages[0]`.
    pub welcome: Vec<u8>,
    /// The group after that commit, as Dave must see it when he joins.
    pub welcomed_safety: SafetyNumber,
    pub welcomed_roster: Vec<RosterEntry>,
    /// Another genuine Welcome for Dave, from a commit that only adds him
    /// (so the mutator can splice two Welcomes), and the group it leads to.
    pub other_welcome: Vec<u8>,
    pub other_safety: SafetyNumber,
    pub other_roster: Vec<RosterEntry>,
    pub messages: Vec<Genuine>,
}

/// The call, built on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}

/// A session resumed from `record`, with the provider seeded by `seed`.
pub fn resume(record: &[u8], seed: u8) -> Session {
    let mut store = MemoryStore::new();
    store.save(record).expect("a MemoryStore saves");
    Session::resume(
        NOW,
        SatsumaCrypto::from_seed([seed; 32]),
        SessionConfig::default(),
        store,
    )
    .expect("a record the fixture saved resumes")
}

fn create(name: &str, seed: u8) -> (Session, MemoryStore) {
    let store = MemoryStore::new();
    let session = Session::create(
        SatsumaCrypto::from_seed([seed; 32]),
        MemberInfo::new(name, "fuzz").expect("valid credential"),
        SessionConfig::default(),
        store.clone(),
    )
    .expect("create");
    (session, store)
}

fn record(store: &MemoryStore) -> Vec<u8> {
    store
        .clone()
        .load()
        .expect("MemoryStore loads")
        .expect("the session saved")
        .to_vec()
}

fn build() -> Fixture {
    let start = Instant::ZERO;
    let (mut alice, alice_store) = create("Alice", 1);
    let (mut bob, bob_store) = create("Bob", 2);
    let (mut carol, carol_store) = create("Carol", 3);
    let (mut dave, dave_store) = create("Dave", 4);
    alice.create_group(start, b"room").expect("create group");

    let kp = bob.key_package().expect("key package");
    let add_bob = alice.commit(&[&kp], &[]).expect("commit");
    alice.apply_pending_commit(start).expect("apply");
    bob.join(start, add_bob.welcome.as_deref().expect("welcome"))
        .expect("join");
    let kp = carol.key_package().expect("key package");
    let add_carol = alice.commit(&[&kp], &[]).expect("commit");
    bob.process(start, &add_carol.commit).expect("process");
    alice.apply_pending_commit(start).expect("apply");
    carol
        .join(start, add_carol.welcome.as_deref().expect("welcome"))
        .expect("join");
    let dave_key_package = dave.key_package().expect("key package");
    assert_eq!(alice.epoch(), Some(EPOCH));
    let safety = alice.safety_number().expect("in a group");

    let (alice, bob, carol, dave) = (
        record(&alice_store),
        record(&bob_store),
        record(&carol_store),
        record(&dave_store),
    );

    // Each genuine message from a fresh copy of its sender's saved state.
    let mut committer = resume(&alice, 11);
    let add_dave = committer
        .commit(&[&dave_key_package], &[CAROL])
        .expect("commit");
    committer.apply_pending_commit(NOW).expect("apply");
    let welcome = add_dave.welcome.clone().expect("welcome for Dave");
    let welcomed_safety = committer.safety_number().expect("in a group");
    let welcomed_roster = committer.roster();
    let mut other = resume(&alice, 16);
    let other_welcome = other
        .commit(&[&dave_key_package], &[])
        .expect("commit")
        .welcome
        .expect("welcome for Dave");
    other.apply_pending_commit(NOW).expect("apply");
    let other_safety = other.safety_number().expect("in a group");
    let other_roster = other.roster();
    let proposal = resume(&alice, 12).propose_update().expect("proposal");
    let carol_update = resume(&carol, 13).self_update().expect("commit").commit;
    let carol_removes_bob = resume(&carol, 14)
        .commit(&[], &[BOB])
        .expect("commit")
        .commit;

    let messages = [add_dave.commit, carol_update, proposal, carol_removes_bob]
        .into_iter()
        .map(|bytes| {
            let mut receiver = resume(&bob, 15);
            let event = receiver
                .process(NOW, &bytes)
                .expect("Bob takes a genuine message");
            Genuine {
                bytes,
                event,
                safety: receiver.safety_number().ok(),
            }
        })
        .collect();

    Fixture {
        alice,
        bob,
        dave,
        safety,
        dave_key_package,
        welcome,
        welcomed_safety,
        welcomed_roster,
        other_welcome,
        other_safety,
        other_roster,
        messages,
    }
}

/// Errors no input may cause: they would mean the session's own state
/// broke, or an input got past a state check.
pub fn assert_input_error(e: &SessionError, what: &str) {
    assert!(
        !matches!(
            e,
            SessionError::Store(_)
                | SessionError::CorruptState
                | SessionError::Frame(_)
                | SessionError::NoGroup
                | SessionError::AlreadyInGroup
                | SessionError::CommitPending
                | SessionError::NoPendingCommit
        ),
        "{what}: {e:?}"
    );
}

/// Up to four edits of `genuine`, chosen by `input`: bit flips, byte
/// writes, cuts, insertions, deletions, huge or invalid varint length
/// prefixes, and splices from `donor`.
pub fn mutate(input: &mut Input<'_>, genuine: &[u8], donor: &[u8]) -> Vec<u8> {
    let mut m = genuine.to_vec();
    let edits = 1 + input.byte() % 4;
    for _ in 0..edits {
        let op = input.byte();
        let at = usize::from(input.u16()) % (m.len() + 1);
        match op % 8 {
            0 => {
                if let Some(b) = m.get_mut(at) {
                    *b ^= 1 << (op >> 5);
                }
            }
            1 => {
                let value = input.byte();
                if let Some(b) = m.get_mut(at) {
                    *b = value;
                }
            }
            2 => m.truncate(at),
            3 => {
                let n = usize::from(input.byte() % 8) + 1;
                let bytes = input.take(n).to_vec();
                m.splice(at..at, bytes);
            }
            4 => {
                let n = usize::from(input.byte()) + 1;
                let end = (at + n).min(m.len());
                m.drain(at..end);
            }
            5 => {
                // A length prefix: the largest 4-byte varint, the 8-byte
                // prefix MLS does not allow, a non-minimal two-byte zero,
                // or a length one off.
                let prefix: &[u8] = match op >> 6 {
                    0 => &[0xbf, 0xff, 0xff, 0xff],
                    1 => &[0xc0, 0, 0, 0, 0, 0, 0, 1],
                    2 => &[0x40, 0x00],
                    _ => &[],
                };
                if prefix.is_empty() {
                    if let Some(b) = m.get_mut(at) {
                        *b = b.wrapping_add(if op & 1 == 0 { 1 } else { 0xff });
                    }
                } else {
                    let end = (at + prefix.len()).min(m.len());
                    m.splice(at..end, prefix.iter().copied());
                }
            }
            6 => {
                // Bytes from the same offset of another genuine message.
                let n = usize::from(input.byte()) + 1;
                let end = (at + n).min(m.len()).min(donor.len());
                if at < end {
                    m[at..end].copy_from_slice(&donor[at..end]);
                }
            }
            _ => {
                let n = usize::from(input.byte()) + 1;
                let end = (at + n).min(m.len());
                let copy = m[at..end].to_vec();
                m.splice(at..at, copy);
            }
        }
    }
    m
}
