//! What an attacker cannot do to an MLS call, each as an asserting test:
//! read frames after removal or without a Welcome, use late frames past the
//! grace period, get a forged, replayed, stale or foreign commit accepted,
//! or crash or corrupt a session with malformed key packages, Welcomes and
//! commits.
//!
//! Every refused input must come back as a typed [`SessionError`] and leave
//! the receiving session exactly as it was: same epoch, same safety number,
//! same roster, frames still flowing both ways, and the group still able to
//! move on with the next genuine commit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut, Range};

use core::time::Duration;

use satsuma_core::Instant;
use satsuma_core::media::Codec;
use satsuma_core::mls::{
    Event, MemberInfo, MemoryStore, RosterEntry, SafetyNumber, SatsumaCrypto, Session,
    SessionConfig, SessionError, Store,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A session and a handle on the store it saves to.
#[derive(Debug)]
struct Member {
    session: Session,
    store: MemoryStore,
}

impl Deref for Member {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl DerefMut for Member {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.session
    }
}

fn member_with(name: &str, seed: u8, config: SessionConfig) -> Member {
    let store = MemoryStore::new();
    let session = Session::create(
        SatsumaCrypto::from_seed([seed; 32]),
        MemberInfo::new(name, &format!("{name}-laptop")).unwrap(),
        config,
        store.clone(),
    )
    .unwrap();
    Member { session, store }
}

fn member(name: &str, seed: u8) -> Member {
    member_with(name, seed, SessionConfig::default())
}

/// Seals an Opus frame with `from`'s current sending key.
fn seal(from: &mut Session, payload: &[u8]) -> Vec<u8> {
    let mut wire = vec![0u8; payload.len() + 64];
    let n = Codec::Opus
        .protect(from.keyring_mut(), payload, &mut wire)
        .unwrap();
    wire.truncate(n);
    wire
}

/// Opens a protected Opus frame with `to`'s keys.
fn open(to: &mut Session, wire: &[u8]) -> Result<Vec<u8>, satsuma_core::Error> {
    let mut out = vec![0u8; wire.len() + 64];
    let (_, len) = Codec::Opus.unprotect(to.keyring_mut(), wire, &mut out)?;
    out.truncate(len);
    Ok(out)
}

/// Seals at `from`, opens at `to`.
fn send(
    from: &mut Session,
    to: &mut Session,
    payload: &[u8],
) -> Result<Vec<u8>, satsuma_core::Error> {
    let wire = seal(from, payload);
    open(to, &wire)
}

/// `committer` adds `joiner` in one commit; every member in `others`
/// processes it, the committer applies it, the joiner joins.
fn add(committer: &mut Session, joiner: &mut Session, others: &mut [&mut Session], now: Instant) {
    let kp = joiner.key_package().unwrap();
    let commit = committer.commit(&[&kp], &[]).unwrap();
    for other in others.iter_mut() {
        assert!(matches!(
            other.process(now, &commit.commit).unwrap(),
            Event::NewEpoch { .. }
        ));
    }
    committer.apply_pending_commit(now).unwrap();
    joiner
        .join(now, commit.welcome.as_deref().unwrap())
        .unwrap();
}

/// A call in group `group_id` of the named members, the first one creating
/// it and adding the others one commit each: epoch `members.len() - 1`.
fn call<const N: usize>(group_id: &[u8], members: [(&str, u8); N]) -> [Member; N] {
    let mut sessions: Vec<Member> = members
        .iter()
        .map(|(name, seed)| member(name, *seed))
        .collect();
    sessions[0]
        .create_group(Instant::from_millis(0), group_id)
        .unwrap();
    for i in 1..N {
        let (done, rest) = sessions.split_at_mut(i);
        let (committer, others) = done.split_first_mut().unwrap();
        let mut others: Vec<&mut Session> = others.iter_mut().map(|m| &mut m.session).collect();
        add(
            committer,
            &mut rest[0],
            &mut others,
            Instant::from_millis(0),
        );
    }
    sessions.try_into().unwrap()
}

/// What a user could notice of a member's state, now or after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    epoch: Option<u64>,
    safety: Option<SafetyNumber>,
    roster: Vec<RosterEntry>,
    pending_commit: bool,
    sending_kid: Option<u64>,
    /// The record a restart would resume from.
    saved: Option<Vec<u8>>,
}

fn view(member: &Member) -> View {
    let mut store = member.store.clone();
    View {
        epoch: member.epoch(),
        safety: member.safety_number().ok(),
        roster: member.roster(),
        pending_commit: member.has_pending_commit(),
        sending_kid: member.keyring().sending_kid(),
        saved: store.load().unwrap().map(|r| r.to_vec()),
    }
}

/// `a` and `b` share the group: the same safety number, and frames open
/// both ways.
fn assert_in_call(a: &mut Session, b: &mut Session) {
    assert_eq!(a.safety_number().unwrap(), b.safety_number().unwrap());
    assert_eq!(send(a, b, b"ping").unwrap(), b"ping");
    assert_eq!(send(b, a, b"pong").unwrap(), b"pong");
}

/// `committer` commits a self-update that every member in `others`
/// processes: the group still moves on together.
fn assert_group_moves_on(committer: &mut Session, others: &mut [&mut Session], now: Instant) {
    let epoch = committer.epoch().unwrap();
    let update = committer.self_update().unwrap();
    for other in others.iter_mut() {
        assert_eq!(
            other.process(now, &update.commit).unwrap(),
            Event::NewEpoch {
                epoch: epoch + 1,
                committer: committer.own_index().unwrap(),
            }
        );
    }
    assert_eq!(committer.apply_pending_commit(now).unwrap(), epoch + 1);
    for other in others.iter_mut() {
        assert_in_call(committer, other);
    }
}

/// Where the signature of a member's commit (a PublicMessage) lies.
///
/// RFC 9420 §6.2: a PublicMessage from a member ends with
/// `FramedContentAuthData { signature<V>, confirmation_tag<V> }` and then
/// `membership_tag<V>`. Suite 1 has 64-byte Ed25519 signatures (varint length
/// `0x40 0x40`) and 32-byte HMAC-SHA256 tags (`0x20`), so the last 132 bytes
/// are `40 40 sig[64] 20 conf[32] 20 mac[32]`. The layout is checked, not
/// assumed.
fn commit_signature(commit: &[u8]) -> Range<usize> {
    let n = commit.len();
    assert!(n > 200, "a commit with an update path is longer");
    assert_eq!(commit[n - 132..n - 130], [0x40, 0x40], "signature length");
    assert_eq!(commit[n - 66], 0x20, "confirmation tag length");
    assert_eq!(commit[n - 33], 0x20, "membership tag length");
    n - 130..n - 66
}

/// Start of the sender field of a PublicMessage commit in a group whose id
/// is `group_id`: `version(2) wire_format(2) group_id<V> epoch(8)`.
fn sender_offset(commit: &[u8], group_id: &[u8]) -> usize {
    assert!(group_id.len() < 64, "one-byte varint");
    assert_eq!(commit[..4], [0x00, 0x01, 0x00, 0x01], "mls10 PublicMessage");
    assert_eq!(usize::from(commit[4]), group_id.len());
    assert_eq!(&commit[5..5 + group_id.len()], group_id);
    5 + group_id.len() + 8
}

/// Every damaged copy of `genuine` the malformed-input tests feed:
/// empty, every truncation, one bit flipped at every offset, every byte
/// set to 0xff at some offsets, a huge (2^30 - 1) or invalid varint length
/// written over every offset, trailing bytes, the message twice, and a
/// megabyte.
fn damaged(genuine: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![(String::from("empty"), Vec::new())];
    for cut in 0..genuine.len() {
        out.push((format!("truncated to {cut}"), genuine[..cut].to_vec()));
    }
    for i in 0..genuine.len() {
        let mut m = genuine.to_vec();
        m[i] ^= 1 << (i % 8);
        out.push((format!("bit {} flipped at {i}", i % 8), m));
    }
    for i in (0..genuine.len()).step_by(3) {
        let mut m = genuine.to_vec();
        m[i] = 0xff;
        out.push((format!("0xff at {i}"), m));
    }
    for i in 0..genuine.len() {
        let mut huge = genuine.to_vec();
        let end = (i + 4).min(huge.len());
        huge[i..end].copy_from_slice(&[0xbf, 0xff, 0xff, 0xff][..end - i]);
        out.push((format!("length 2^30-1 at {i}"), huge));
        let mut invalid = genuine.to_vec();
        invalid[i] = 0xc0 | (invalid[i] & 0x3f);
        out.push((format!("8-byte varint prefix at {i}"), invalid));
    }
    let mut trailing = genuine.to_vec();
    trailing.push(0);
    out.push(("one trailing byte".into(), trailing));
    out.push(("twice".into(), [genuine, genuine].concat()));
    let mut mega = genuine.to_vec();
    mega.resize(1 << 20, 0);
    out.push(("padded to 1 MiB".into(), mega));
    out.push(("1 MiB of 0xff".into(), vec![0xff; 1 << 20]));
    // A mutation that happened to write what was there is no damage.
    out.retain(|(_, m)| m != genuine);
    out
}

/// Refusals that describe bad input. Anything else (a store, state, crypto
/// provider or "other" error) would mean the input reached somewhere it
/// should not have, or was not classified.
fn is_input_refusal(e: &SessionError) -> bool {
    matches!(
        e,
        SessionError::Malformed
            | SessionError::BadSignature
            | SessionError::WrongEpoch
            | SessionError::WrongGroup
            | SessionError::NotMember
            | SessionError::Integrity
            | SessionError::BadKeyPackage
            | SessionError::NotWelcomed
            | SessionError::InvalidChange
    )
}

/// Counts of each error, for the failure message and `--nocapture`.
#[derive(Default)]
struct Tally(BTreeMap<String, usize>);

impl Tally {
    fn add(&mut self, e: &SessionError) {
        *self.0.entry(format!("{e:?}")).or_default() += 1;
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

// ---------------------------------------------------------------------------
// Removal
// ---------------------------------------------------------------------------

/// Bob is removed and processes the commit that removes him: every key is
/// gone, frames of the next epochs do not open, and later commits do not
/// bring him back.
#[test]
fn a_removed_member_cannot_open_frames_of_later_epochs() {
    let [mut alice, mut bob, mut carol] = call(b"room", [("Alice", 1), ("Bob", 2), ("Carol", 3)]);
    // Before: Bob is in the call and opens frames.
    let before = seal(&mut alice, b"epoch 2");
    assert_eq!(open(&mut bob, &before).unwrap(), b"epoch 2");

    let removal = alice.commit(&[], &[1]).unwrap();
    alice
        .apply_pending_commit(Instant::from_millis(10))
        .unwrap();
    carol
        .process(Instant::from_millis(10), &removal.commit)
        .unwrap();
    assert_eq!(
        bob.process(Instant::from_millis(10), &removal.commit)
            .unwrap(),
        Event::Removed { by: 0 }
    );
    assert_eq!(bob.epoch(), None);
    assert!(bob.roster().is_empty());

    let from_alice = seal(&mut alice, b"epoch 3 from alice");
    let from_carol = seal(&mut carol, b"epoch 3 from carol");
    assert_eq!(
        open(&mut carol, &from_alice).unwrap(),
        b"epoch 3 from alice"
    );
    assert!(open(&mut bob, &from_alice).is_err());
    assert!(open(&mut bob, &from_carol).is_err());
    // Bob cannot send either.
    let mut wire = [0u8; 64];
    assert!(
        Codec::Opus
            .protect(bob.keyring_mut(), b"x", &mut wire)
            .is_err()
    );

    // The group moves on; Bob tries to follow and cannot.
    let next = carol.self_update().unwrap();
    alice
        .process(Instant::from_millis(20), &next.commit)
        .unwrap();
    carol
        .apply_pending_commit(Instant::from_millis(20))
        .unwrap();
    assert_eq!(
        bob.process(Instant::from_millis(20), &next.commit),
        Err(SessionError::NoGroup)
    );
    assert_eq!(
        bob.process(Instant::from_millis(20), &removal.commit),
        Err(SessionError::NoGroup)
    );
    let later = seal(&mut carol, b"epoch 4");
    assert_eq!(open(&mut alice, &later).unwrap(), b"epoch 4");
    assert!(open(&mut bob, &later).is_err());
    assert!(open(&mut bob, &from_alice).is_err());
    assert_in_call(&mut alice, &mut carol);
}

/// Bob is removed but keeps his old state and never processes his removal
/// (a malicious client): he still holds epoch 2, yet frames of epoch 3 and
/// 4 do not open, and the later commits he tries are refused.
#[test]
fn a_removed_member_keeping_its_old_state_cannot_open_later_frames() {
    let [mut alice, mut bob, mut carol] = call(b"room", [("Alice", 1), ("Bob", 2), ("Carol", 3)]);
    let removal = alice.commit(&[], &[1]).unwrap();
    alice
        .apply_pending_commit(Instant::from_millis(10))
        .unwrap();
    carol
        .process(Instant::from_millis(10), &removal.commit)
        .unwrap();

    let epoch3 = seal(&mut alice, b"epoch 3");
    assert_eq!(open(&mut carol, &epoch3).unwrap(), b"epoch 3");
    assert_eq!(bob.epoch(), Some(2));
    // To Bob it looks like a frame that raced ahead of its commit: it may
    // be held, but no key for it ever reaches him.
    assert!(matches!(
        open(&mut bob, &epoch3),
        Err(satsuma_core::Error::FutureEpoch { .. })
    ));

    let next = carol.self_update().unwrap();
    alice
        .process(Instant::from_millis(20), &next.commit)
        .unwrap();
    carol
        .apply_pending_commit(Instant::from_millis(20))
        .unwrap();
    let bob_before = view(&bob);
    assert_eq!(
        bob.process(Instant::from_millis(20), &next.commit),
        Err(SessionError::WrongEpoch)
    );
    assert_eq!(view(&bob), bob_before);
    let epoch4 = seal(&mut carol, b"epoch 4");
    assert_eq!(open(&mut alice, &epoch4).unwrap(), b"epoch 4");
    assert!(open(&mut bob, &epoch4).is_err());
    assert!(open(&mut bob, &epoch3).is_err());

    // Processing his removal late still gives him nothing.
    assert_eq!(
        bob.process(Instant::from_millis(30), &removal.commit)
            .unwrap(),
        Event::Removed { by: 0 }
    );
    assert!(open(&mut bob, &epoch4).is_err());
    assert_eq!(
        bob.process(Instant::from_millis(30), &next.commit),
        Err(SessionError::NoGroup)
    );
}

// ---------------------------------------------------------------------------
// Grace period
// ---------------------------------------------------------------------------

/// Alice seals frames in epoch 1, then Bob moves to epoch 2 by processing
/// her commit. The epoch-1 frames open until exactly `grace` after Bob
/// installed epoch 2, and not from then on; epoch-2 frames keep opening.
#[test]
fn a_late_frame_opens_within_the_grace_period_and_not_after() {
    let mut config = SessionConfig::default();
    config.keyring.grace = Duration::from_millis(750); // not the default: the session must use it
    config.self_update_interval = None;
    let mut alice = member_with("Alice", 1, config);
    let mut bob = member_with("Bob", 2, config);
    alice
        .create_group(Instant::from_millis(0), b"room")
        .unwrap();
    add(&mut alice, &mut bob, &mut [], Instant::from_millis(0));
    assert_eq!(bob.epoch(), Some(1));

    let late: Vec<Vec<u8>> = (0..3u8).map(|i| seal(&mut alice, &[b'L', i])).collect();
    let update = alice.self_update().unwrap();
    let moved = Instant::from_millis(1_000);
    bob.process(moved, &update.commit).unwrap();
    alice.apply_pending_commit(moved).unwrap();
    assert_eq!(bob.epoch(), Some(2));
    let fresh = seal(&mut alice, b"epoch 2");

    let end = moved.saturating_add(config.keyring.grace);
    assert_eq!(bob.poll_timeout(), Some(end));
    bob.handle_timeout(moved);
    assert_eq!(open(&mut bob, &late[0]).unwrap(), [b'L', 0]);
    bob.handle_timeout(Instant::from_micros(end.as_micros() - 1));
    assert_eq!(open(&mut bob, &late[1]).unwrap(), [b'L', 1]);

    bob.handle_timeout(end);
    assert!(matches!(
        open(&mut bob, &late[2]),
        Err(satsuma_core::Error::UnknownKid { .. })
    ));
    assert_eq!(bob.poll_timeout(), None);
    assert_eq!(open(&mut bob, &fresh).unwrap(), b"epoch 2");
    assert_in_call(&mut alice, &mut bob);
}

// ---------------------------------------------------------------------------
// An identity that was never welcomed
// ---------------------------------------------------------------------------

/// Eve has a real identity and a real key package but was never added. She
/// cannot open the call's frames, cannot join with Bob's Welcome, and her
/// commits, even from a look-alike group with the same id at the same
/// epoch, are refused.
#[test]
fn an_identity_never_welcomed_cannot_open_frames_join_or_commit() {
    let mut alice = member("Alice", 1);
    let mut bob = member("Bob", 2);
    let mut eve = member("Eve", 9);
    let _eve_kp = eve.key_package().unwrap();
    alice
        .create_group(Instant::from_millis(0), b"room")
        .unwrap();
    let bob_kp = bob.key_package().unwrap();
    let commit = alice.commit(&[&bob_kp], &[]).unwrap();
    alice.apply_pending_commit(Instant::from_millis(0)).unwrap();
    let welcome = commit.welcome.unwrap();

    // Eve sees the Welcome on its way to Bob and tries to use it.
    assert_eq!(
        eve.join(Instant::from_millis(0), &welcome),
        Err(SessionError::NotWelcomed)
    );
    assert_eq!(eve.epoch(), None);
    bob.join(Instant::from_millis(0), &welcome).unwrap();

    // No keys: she opens nothing.
    let frame = seal(&mut alice, b"for members only");
    assert!(open(&mut eve, &frame).is_err());

    // A look-alike: Eve makes her own "room" and brings it to epoch 1 with an
    // accomplice, so her commits carry the same group id and epoch.
    let mut mallory = member("Mallory", 10);
    eve.create_group(Instant::from_millis(0), b"room").unwrap();
    add(&mut eve, &mut mallory, &mut [], Instant::from_millis(0));
    assert_eq!(eve.epoch(), alice.epoch());
    assert_ne!(eve.safety_number().unwrap(), alice.safety_number().unwrap());
    // Her keys for "room" epoch 1 are not the call's: a frame from Bob
    // (leaf 1, a sender her group has too) fails authentication.
    assert!(open(&mut eve, &frame).is_err());
    let from_bob = seal(&mut bob, b"also for members only");
    assert_eq!(
        open(&mut eve, &from_bob),
        Err(satsuma_core::Error::Authentication)
    );
    assert_eq!(
        open(&mut alice, &from_bob).unwrap(),
        b"also for members only"
    );

    // Her commits carry the call's group id and epoch but were made with
    // her group's keys: the membership tag (a MAC only the call's members
    // can compute, RFC 9420 §6.2) does not verify.
    let alice_before = view(&alice);
    let bob_before = view(&bob);
    let as_alice = eve.self_update().unwrap(); // sender: leaf 0, Alice's
    assert_eq!(
        bob.process(Instant::from_millis(5), &as_alice.commit),
        Err(SessionError::Integrity)
    );
    let as_bob = mallory.self_update().unwrap(); // sender: leaf 1, Bob's
    assert_eq!(
        alice.process(Instant::from_millis(5), &as_bob.commit),
        Err(SessionError::Integrity)
    );
    // One commit removing Bob and adding an accomplice.
    eve.discard_pending_commit().unwrap();
    let trent = member("Trent", 11).key_package().unwrap();
    let takeover = eve.commit(&[&trent], &[1]).unwrap();
    assert_eq!(
        bob.process(Instant::from_millis(5), &takeover.commit),
        Err(SessionError::Integrity)
    );
    assert_eq!(view(&alice), alice_before);
    assert_eq!(view(&bob), bob_before);
    assert_in_call(&mut alice, &mut bob);
    assert_group_moves_on(&mut alice, &mut [&mut bob], Instant::from_millis(6));
}

// ---------------------------------------------------------------------------
// Forged, replayed, stale and foreign commits
// ---------------------------------------------------------------------------

/// Every byte of the signature of a genuine commit flipped in turn.
///
/// Observed: `Integrity`, not `BadSignature`, and that is the right answer.
/// A member's PublicMessage ends with a membership tag, a MAC under the
/// epoch's membership key over the whole authenticated content *including
/// the signature* (RFC 9420 §6.2, `AuthenticatedContentTBM`). mls-rs checks
/// the tag before the signature, so anyone who alters the signature without
/// the membership key fails there. The signature check itself is reached by
/// the next test.
#[test]
fn a_commit_with_flipped_signature_bytes_is_refused_and_changes_nothing() {
    let [mut alice, mut bob, mut carol] = call(b"room", [("Alice", 1), ("Bob", 2), ("Carol", 3)]);
    let commit = alice.self_update().unwrap().commit;
    let bob_before = view(&bob);
    for i in commit_signature(&commit) {
        for mask in [0x01, 0x80, 0xff] {
            let mut bad = commit.clone();
            bad[i] ^= mask;
            assert_eq!(
                bob.process(Instant::from_millis(1), &bad),
                Err(SessionError::Integrity),
                "signature byte {i} ^ {mask:#04x}"
            );
        }
    }
    // A signature of zeros, and of another genuine commit.
    let sig = commit_signature(&commit);
    let mut zeros = commit.clone();
    zeros[sig.clone()].fill(0);
    assert_eq!(
        bob.process(Instant::from_millis(1), &zeros),
        Err(SessionError::Integrity)
    );
    let other = carol.self_update().unwrap().commit;
    carol.discard_pending_commit().unwrap();
    let mut swapped = commit.clone();
    swapped[sig.clone()].copy_from_slice(&other[commit_signature(&other)]);
    assert_eq!(
        bob.process(Instant::from_millis(1), &swapped),
        Err(SessionError::Integrity)
    );

    assert_eq!(view(&bob), bob_before);
    assert_in_call(&mut bob, &mut carol);
    assert_in_call(&mut alice, &mut bob);
    // The genuine commit still applies after all that.
    assert!(matches!(
        bob.process(Instant::from_millis(2), &commit).unwrap(),
        Event::NewEpoch {
            epoch: 3,
            committer: 0
        }
    ));
    carol.process(Instant::from_millis(2), &commit).unwrap();
    alice.apply_pending_commit(Instant::from_millis(2)).unwrap();
    assert_in_call(&mut alice, &mut bob);
    assert_in_call(&mut carol, &mut bob);
}

/// Signatures that reach the signature check, and do not verify:
/// `BadSignature`.
///
/// - A genuine commit re-framed as a new-member (external) commit: such a
///   commit carries no membership tag, so the receiver checks the signature
///   against the key in the commit's update path (Alice's own key). The
///   signature covered `sender = member 0`, not `new_member_commit`, so it
///   fails; with its signature bytes also flipped, it fails the same way.
/// - A key package with a byte of its signature, or of its leaf node's
///   signature, flipped: key packages have no MAC, only signatures.
#[test]
fn signatures_that_do_not_verify_are_bad_signature() {
    let [mut alice, mut bob] = call(b"room", [("Alice", 1), ("Bob", 2)]);
    let commit = alice.self_update().unwrap().commit;
    let bob_before = view(&bob);

    // sender: member(1) leaf_index(4) → new_member_commit(4); no membership tag.
    let s = sender_offset(&commit, b"room");
    assert_eq!(commit[s], 1, "sender type member");
    assert_eq!(commit[s + 1..s + 5], [0, 0, 0, 0], "Alice's leaf");
    let mut external = commit[..s].to_vec();
    external.push(4);
    external.extend_from_slice(&commit[s + 5..commit.len() - 33]);
    assert_eq!(
        bob.process(Instant::from_millis(1), &external),
        Err(SessionError::BadSignature)
    );
    let sig_end = external.len() - 33;
    for i in (sig_end - 64..sig_end).step_by(7) {
        let mut bad = external.clone();
        bad[i] ^= 0x20;
        assert_eq!(
            bob.process(Instant::from_millis(1), &bad),
            Err(SessionError::BadSignature),
            "signature byte {i}"
        );
    }
    assert_eq!(view(&bob), bob_before);
    assert_in_call(&mut alice, &mut bob);

    // Key packages: `... leaf_node_signature<V> key_package_signature<V>`,
    // each `40 40` and 64 bytes.
    alice.discard_pending_commit().unwrap();
    let alice_before = view(&alice);
    let mut carol = member("Carol", 3);
    let kp = carol.key_package().unwrap();
    let n = kp.len();
    assert_eq!(kp[n - 66..n - 64], [0x40, 0x40], "key package signature");
    assert_eq!(kp[n - 133..n - 131], [0x40, 0x40], "leaf node signature");
    for i in [n - 64, n - 33, n - 1, n - 131, n - 100, n - 68] {
        let mut bad = kp.clone();
        bad[i] ^= 0x04;
        assert_eq!(
            alice.commit(&[&bad], &[]),
            Err(SessionError::BadSignature),
            "key package byte {i} of {n}"
        );
    }
    assert_eq!(view(&alice), alice_before);
    add(
        &mut alice,
        &mut carol,
        &mut [&mut bob],
        Instant::from_millis(2),
    );
    assert_in_call(&mut alice, &mut carol);
    assert_in_call(&mut bob, &mut carol);
}

/// The delivery service (or an attacker on the path) delivers a commit a
/// second time, after the group moved on: `WrongEpoch`, nothing changes.
#[test]
fn a_replayed_commit_is_wrong_epoch_and_changes_nothing() {
    let mut alice = member("Alice", 1);
    let mut bob = member("Bob", 2);
    alice
        .create_group(Instant::from_millis(0), b"room")
        .unwrap();
    let kp = bob.key_package().unwrap();
    let first = alice.commit(&[&kp], &[]).unwrap();
    alice.apply_pending_commit(Instant::from_millis(0)).unwrap();
    bob.join(Instant::from_millis(0), first.welcome.as_deref().unwrap())
        .unwrap();
    let update = alice.self_update().unwrap();
    bob.process(Instant::from_millis(1), &update.commit)
        .unwrap();
    alice.apply_pending_commit(Instant::from_millis(1)).unwrap();
    assert_eq!(bob.epoch(), Some(2));

    let alice_before = view(&alice);
    let bob_before = view(&bob);
    assert_eq!(
        bob.process(Instant::from_millis(2), &update.commit),
        Err(SessionError::WrongEpoch)
    );
    assert_eq!(
        bob.process(Instant::from_millis(2), &first.commit),
        Err(SessionError::WrongEpoch)
    );
    // The DS echoing Alice's own commit after she applied it.
    assert_eq!(
        alice.process(Instant::from_millis(2), &update.commit),
        Err(SessionError::WrongEpoch)
    );
    // A replayed Welcome to a member already in the group.
    assert_eq!(
        bob.join(Instant::from_millis(2), first.welcome.as_deref().unwrap()),
        Err(SessionError::AlreadyInGroup)
    );
    assert_eq!(view(&alice), alice_before);
    assert_eq!(view(&bob), bob_before);
    assert_in_call(&mut alice, &mut bob);
    assert_group_moves_on(&mut bob, &mut [&mut alice], Instant::from_millis(3));
}

/// Carol has not processed Alice's commit yet and commits in the old epoch:
/// the members who moved on refuse it with `WrongEpoch`; Carol then follows
/// the group.
#[test]
fn a_commit_from_a_member_in_an_older_epoch_is_wrong_epoch() {
    let [mut alice, mut bob, mut carol] = call(b"room", [("Alice", 1), ("Bob", 2), ("Carol", 3)]);
    let update = alice.self_update().unwrap();
    alice.apply_pending_commit(Instant::from_millis(1)).unwrap();
    bob.process(Instant::from_millis(1), &update.commit)
        .unwrap();
    assert_eq!(
        (alice.epoch(), bob.epoch(), carol.epoch()),
        (Some(3), Some(3), Some(2))
    );

    let mut dave = member("Dave", 4);
    let kp = dave.key_package().unwrap();
    let stale = carol.commit(&[&kp], &[1]).unwrap();
    let alice_before = view(&alice);
    let bob_before = view(&bob);
    assert_eq!(
        bob.process(Instant::from_millis(2), &stale.commit),
        Err(SessionError::WrongEpoch)
    );
    assert_eq!(
        alice.process(Instant::from_millis(2), &stale.commit),
        Err(SessionError::WrongEpoch)
    );
    // Its Welcome puts Dave in a group nobody else is in.
    dave.join(Instant::from_millis(2), stale.welcome.as_deref().unwrap())
        .unwrap();
    assert_ne!(dave.safety_number().unwrap(), bob.safety_number().unwrap());
    assert!(send(&mut dave, &mut bob, b"x").is_err());
    assert_eq!(view(&alice), alice_before);
    assert_eq!(view(&bob), bob_before);
    assert_in_call(&mut alice, &mut bob);

    // Carol catches up: her losing commit is dropped.
    assert!(matches!(
        carol
            .process(Instant::from_millis(3), &update.commit)
            .unwrap(),
        Event::NewEpoch {
            epoch: 3,
            committer: 0
        }
    ));
    assert!(!carol.has_pending_commit());
    assert_in_call(&mut carol, &mut alice);
    assert_group_moves_on(
        &mut carol,
        &mut [&mut alice, &mut bob],
        Instant::from_millis(4),
    );
}

/// A group with the same id and epoch but other members: its commits, from
/// sender indexes that exist in the real group (0, 1) and one that does not
/// (2), are refused with `Integrity`: the membership tag is checked before
/// the sender's leaf is looked up, and only the real members hold the
/// epoch's membership key. A commit for an epoch the real group is not in
/// is `WrongEpoch`. The real members are unchanged.
#[test]
fn a_commit_from_another_group_with_the_same_id_is_refused() {
    let [mut alice, mut bob] = call(b"room", [("Alice", 1), ("Bob", 2)]);
    assert_group_moves_on(&mut alice, &mut [&mut bob], Instant::from_millis(1)); // epoch 2
    let [mut eve, mut mallory, mut trent] =
        call(b"room", [("Eve", 9), ("Mallory", 10), ("Trent", 11)]); // epoch 2 too
    assert_eq!(eve.epoch(), alice.epoch());

    let alice_before = view(&alice);
    let bob_before = view(&bob);
    for (forger, leaf) in [(&mut eve, 0), (&mut mallory, 1), (&mut trent, 2)] {
        let forged = forger.self_update().unwrap().commit;
        forger.discard_pending_commit().unwrap();
        let s = sender_offset(&forged, b"room");
        assert_eq!(forged[s + 1..s + 5], u32::to_be_bytes(leaf));
        for victim in [&mut alice, &mut bob] {
            assert_eq!(
                victim.process(Instant::from_millis(2), &forged),
                Err(SessionError::Integrity),
                "sender leaf {leaf}"
            );
        }
    }
    // And for an epoch the real group is not in.
    let mut outsider = member("Oscar", 12);
    add(
        &mut eve,
        &mut outsider,
        &mut [&mut mallory, &mut trent],
        Instant::from_millis(3),
    );
    let ahead = eve.self_update().unwrap().commit;
    assert_eq!(
        alice.process(Instant::from_millis(3), &ahead),
        Err(SessionError::WrongEpoch)
    );
    assert_eq!(view(&alice), alice_before);
    assert_eq!(view(&bob), bob_before);
    assert_in_call(&mut alice, &mut bob);
    assert_group_moves_on(&mut bob, &mut [&mut alice], Instant::from_millis(4));
}

/// Bob was removed; his commits are refused whether he kept his old state
/// (`WrongEpoch`) or processed the removal (he has no group to commit in).
#[test]
fn a_commit_from_a_removed_member_is_refused() {
    let [mut alice, mut bob, mut carol] = call(b"room", [("Alice", 1), ("Bob", 2), ("Carol", 3)]);
    let removal = alice.commit(&[], &[1]).unwrap();
    alice.apply_pending_commit(Instant::from_millis(1)).unwrap();
    carol
        .process(Instant::from_millis(1), &removal.commit)
        .unwrap();

    let alice_before = view(&alice);
    let carol_before = view(&carol);
    // Bob ignores his removal and removes Carol, in the epoch he still has.
    let comeback = bob.commit(&[], &[2]).unwrap();
    assert_eq!(
        carol.process(Instant::from_millis(2), &comeback.commit),
        Err(SessionError::WrongEpoch)
    );
    assert_eq!(
        alice.process(Instant::from_millis(2), &comeback.commit),
        Err(SessionError::WrongEpoch)
    );
    let proposal = {
        bob.discard_pending_commit().unwrap();
        bob.propose_remove(0).unwrap()
    };
    assert_eq!(
        carol.process(Instant::from_millis(2), &proposal),
        Err(SessionError::WrongEpoch)
    );
    // Once he processed the removal he has nothing to commit in.
    assert_eq!(
        bob.process(Instant::from_millis(2), &removal.commit)
            .unwrap(),
        Event::Removed { by: 0 }
    );
    assert_eq!(bob.self_update(), Err(SessionError::NoGroup));
    assert_eq!(view(&alice), alice_before);
    assert_eq!(view(&carol), carol_before);
    assert_in_call(&mut alice, &mut carol);
    assert_group_moves_on(&mut carol, &mut [&mut alice], Instant::from_millis(3));
}

// ---------------------------------------------------------------------------
// Malformed input
// ---------------------------------------------------------------------------

/// Feeds every [`damaged`] copy of `genuine` to `try_input`, which returns
/// `Ok(())` when the input was accepted. Each must be refused with an input
/// error and leave `member` as it was; one that is accepted is a failure,
/// undone by `undo` so the rest can still be tried.
fn assert_all_refused(
    member: &mut Member,
    genuine: &[u8],
    mut try_input: impl FnMut(&mut Member, &[u8]) -> Result<(), SessionError>,
    mut undo: impl FnMut(&mut Member),
) -> Tally {
    let before = view(member);
    let mut tally = Tally::default();
    let mut wrong = Vec::new();
    for (what, bytes) in damaged(genuine) {
        match try_input(member, &bytes) {
            Ok(()) => {
                wrong.push(format!("{what}: accepted"));
                undo(member);
            }
            Err(e) => {
                if !is_input_refusal(&e) {
                    wrong.push(format!("{what}: {e:?}"));
                }
                tally.add(&e);
            }
        }
        assert_eq!(view(member), before, "{what}: the member changed");
    }
    assert!(wrong.is_empty(), "{} inputs: {wrong:#?}", wrong.len());
    tally
}

/// Damaged copies of a genuine key package, offered to `commit` alone and
/// next to a genuine one: each a typed refusal, nothing pending, nothing
/// saved; the genuine key package then adds Carol.
#[test]
fn malformed_key_packages_are_typed_errors_and_leave_the_session_usable() {
    let [mut alice, mut bob] = call(b"room", [("Alice", 1), ("Bob", 2)]);
    let mut carol = member("Carol", 3);
    let kp = carol.key_package().unwrap();
    let mut tried = 0;
    let tally = assert_all_refused(
        &mut alice,
        &kp,
        |alice, bytes| {
            tried += 1;
            // Next to a genuine key package, the whole commit is refused
            // (every 16th input: each costs two signature checks).
            if tried % 16 == 0 {
                assert!(alice.commit(&[&kp, bytes], &[]).is_err());
                assert!(alice.commit(&[bytes, &kp], &[]).is_err());
            }
            alice.commit(&[bytes], &[]).map(drop)
        },
        |alice| alice.discard_pending_commit().unwrap(),
    );
    println!("key packages: {tally}");
    add(
        &mut alice,
        &mut carol,
        &mut [&mut bob],
        Instant::from_millis(1),
    );
    assert_in_call(&mut alice, &mut carol);
    assert_in_call(&mut bob, &mut carol);
}

/// Damaged copies of a genuine Welcome, given to the member it invites:
/// each a typed refusal, still in no group, nothing saved; the genuine one
/// then joins.
#[test]
fn malformed_welcomes_are_typed_errors_and_leave_the_session_usable() {
    let mut alice = member("Alice", 1);
    let mut bob = member("Bob", 2);
    alice
        .create_group(Instant::from_millis(0), b"room")
        .unwrap();
    let kp = bob.key_package().unwrap();
    let commit = alice.commit(&[&kp], &[]).unwrap();
    alice.apply_pending_commit(Instant::from_millis(0)).unwrap();
    let welcome = commit.welcome.unwrap();
    let tally = assert_all_refused(
        &mut bob,
        &welcome,
        |bob, bytes| bob.join(Instant::from_millis(1), bytes),
        |_| {},
    );
    println!("welcomes: {tally}");
    bob.join(Instant::from_millis(1), &welcome).unwrap();
    assert_in_call(&mut alice, &mut bob);
}

/// Damaged copies of a genuine commit (one that adds Dave and removes
/// Carol), given to Bob: each a typed refusal with Bob unchanged; the
/// genuine one then applies.
#[test]
fn malformed_commits_are_typed_errors_and_leave_the_session_usable() {
    let [mut alice, mut bob, mut carol] = call(b"room", [("Alice", 1), ("Bob", 2), ("Carol", 3)]);
    let mut dave = member("Dave", 4);
    let kp = dave.key_package().unwrap();
    let commit = alice.commit(&[&kp], &[2]).unwrap();
    let tally = assert_all_refused(
        &mut bob,
        &commit.commit,
        |bob, bytes| bob.process(Instant::from_millis(1), bytes).map(drop),
        |_| panic!("cannot undo a commit"),
    );
    println!("commits: {tally}");
    assert_in_call(&mut bob, &mut carol);
    assert_eq!(
        bob.process(Instant::from_millis(2), &commit.commit)
            .unwrap(),
        Event::NewEpoch {
            epoch: 3,
            committer: 0
        }
    );
    alice.apply_pending_commit(Instant::from_millis(2)).unwrap();
    dave.join(Instant::from_millis(2), commit.welcome.as_deref().unwrap())
        .unwrap();
    assert_in_call(&mut alice, &mut bob);
    assert_in_call(&mut dave, &mut bob);
}

/// Damaged proposals: typed refusals, nothing cached; the genuine one is
/// then taken.
#[test]
fn malformed_proposals_are_typed_errors_and_leave_the_session_usable() {
    let [mut alice, mut bob] = call(b"room", [("Alice", 1), ("Bob", 2)]);
    let proposal = alice.propose_update().unwrap();
    let tally = assert_all_refused(
        &mut bob,
        &proposal,
        |bob, bytes| bob.process(Instant::from_millis(1), bytes).map(drop),
        |_| panic!("cannot undo a proposal"),
    );
    println!("proposals: {tally}");
    assert_eq!(
        bob.process(Instant::from_millis(2), &proposal).unwrap(),
        Event::Proposal { sender: 0 }
    );
    // Bob's next commit takes Alice's update along.
    let commit = bob.self_update().unwrap();
    alice
        .process(Instant::from_millis(3), &commit.commit)
        .unwrap();
    bob.apply_pending_commit(Instant::from_millis(3)).unwrap();
    assert_in_call(&mut alice, &mut bob);
}

// ---------------------------------------------------------------------------
// Framing mls-rs leaves to the caller
// ---------------------------------------------------------------------------

/// A key package whose MLSMessage framing names a protocol version other
/// than mls10 (0x0001) is refused. mls-rs checks the version inside the
/// signed KeyPackage but not the MLSMessage's own `version` field, so the
/// session checks it (RFC 9420 §6 fixes it at `mls10`).
#[test]
fn a_key_package_with_another_protocol_version_is_refused() {
    let [mut alice, _bob] = call(b"room", [("Alice", 1), ("Bob", 2)]);
    let kp = member("Carol", 3).key_package().unwrap();
    assert_eq!(kp[..4], [0x00, 0x01, 0x00, 0x05], "mls10, mls_key_package");
    let mut accepted = Vec::new();
    for version in [[0x00, 0x00], [0x00, 0x02], [0x01, 0x01], [0xff, 0xff]] {
        let mut bad = kp.clone();
        bad[..2].copy_from_slice(&version);
        if alice.commit(&[&bad], &[]).is_ok() {
            accepted.push(version);
            alice.discard_pending_commit().unwrap();
        }
    }
    assert!(
        accepted.is_empty(),
        "accepted MLSMessage versions {accepted:02x?}"
    );
}

/// A Welcome for this member whose HPKE ciphertext or encrypted GroupInfo
/// was altered is `NotWelcomed`, as `Session::join` promises: mls-rs reports
/// the failed AEAD open as a provider error, which alone would say
/// `Crypto` and hide that the Welcome, not the provider, was at fault.
#[test]
fn a_welcome_that_does_not_decrypt_is_not_welcomed() {
    let mut alice = member("Alice", 1);
    let mut bob = member("Bob", 2);
    alice
        .create_group(Instant::from_millis(0), b"room")
        .unwrap();
    let kp = bob.key_package().unwrap();
    let welcome = alice.commit(&[&kp], &[]).unwrap().welcome.unwrap();
    let n = welcome.len();
    // MLSMessage(version(2) wire_format(2)) Welcome(cipher_suite(2)
    // secrets<V>[ {new_member<V>, kem_output<V>, ciphertext<V>} ]
    // encrypted_group_info<V>): the 32-byte key package reference, then the
    // 32-byte X25519 kem_output, then the sealed group secrets; the last
    // bytes are the GroupInfo's AEAD tag.
    assert_eq!(
        welcome[..6],
        [0x00, 0x01, 0x00, 0x03, 0x00, 0x01],
        "mls10 Welcome, suite 1"
    );
    assert_eq!(welcome[8], 0x20, "key package reference length");
    let kem_output = 8 + 1 + 32 + 1;
    assert_eq!(welcome[kem_output - 1], 0x20, "kem_output length");
    let sealed_secrets = kem_output + 32 + 2;
    let mut observed = Vec::new();
    for i in [kem_output + 5, sealed_secrets + 10, n - 40, n - 1] {
        let mut bad = welcome.clone();
        bad[i] ^= 0x10;
        let result = bob.join(Instant::from_millis(1), &bad);
        if result != Err(SessionError::NotWelcomed) {
            observed.push((i, result));
        }
    }
    assert!(observed.is_empty(), "byte flipped, result: {observed:?}");
    bob.join(Instant::from_millis(1), &welcome).unwrap();
}
