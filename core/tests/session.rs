//! Member sessions end to end: create, add, join, frames across epochs,
//! safety numbers, roster, remove, restart.
#![allow(clippy::unwrap_used)] // Test code.

use core::time::Duration;

use satsuma_core::Instant;
use satsuma_core::media::Codec;
use satsuma_core::mls::{
    Event, MemberInfo, MemoryStore, SatsumaCrypto, Session, SessionConfig, SessionError,
};

fn member(name: &str, seed: u8) -> (Session, MemoryStore) {
    let store = MemoryStore::new();
    let session = Session::create(
        SatsumaCrypto::from_seed([seed; 32]),
        MemberInfo::new(name, &format!("{name}-laptop")).unwrap(),
        SessionConfig::default(),
        store.clone(),
    )
    .unwrap();
    (session, store)
}

/// Seals an Opus frame at `from` and opens it at `to`.
fn send(
    from: &mut Session,
    to: &mut Session,
    payload: &[u8],
) -> Result<Vec<u8>, satsuma_core::Error> {
    let mut wire = vec![0u8; payload.len() + 64];
    let n = Codec::Opus.protect(from.keyring_mut(), payload, &mut wire)?;
    let mut out = vec![0u8; payload.len() + 64];
    let (_, len) = Codec::Opus.unprotect(to.keyring_mut(), &wire[..n], &mut out)?;
    out.truncate(len);
    Ok(out)
}

/// Alice creates a group at time 0 and adds Bob, who joins; Bob's store.
fn alice_adds_bob() -> (Session, Session, MemoryStore) {
    let (mut alice, _) = member("Alice", 1);
    let (mut bob, bob_store) = member("Bob", 2);
    alice
        .create_group(Instant::from_millis(0), b"room")
        .unwrap();
    let kp = bob.key_package().unwrap();
    let c = alice.commit(&[&kp], &[]).unwrap();
    alice.apply_pending_commit(Instant::from_millis(0)).unwrap();
    bob.join(Instant::from_millis(0), c.welcome.as_deref().unwrap())
        .unwrap();
    (alice, bob, bob_store)
}

#[test]
fn two_members_share_frames_roster_and_safety_number() {
    let (mut alice, _) = member("Alice", 1);
    let (mut bob, _) = member("Bob", 2);
    alice
        .create_group(Instant::from_millis(0), b"room-1")
        .unwrap();
    let kp = bob.key_package().unwrap();
    let commit = alice.commit(&[&kp], &[]).unwrap();
    alice.apply_pending_commit(Instant::from_millis(1)).unwrap();
    bob.join(Instant::from_millis(1), commit.welcome.as_deref().unwrap())
        .unwrap();

    assert_eq!(alice.epoch(), Some(1));
    assert_eq!(bob.epoch(), Some(1));
    assert_eq!(alice.safety_number().unwrap(), bob.safety_number().unwrap());
    let roster = bob.roster();
    assert_eq!(roster.len(), 2);
    assert_eq!(roster[0].info.display_name, "Alice");
    assert_eq!(roster[0].fingerprint, alice.fingerprint());
    assert_eq!(roster[1].fingerprint, bob.fingerprint());

    assert_eq!(
        send(&mut alice, &mut bob, b"hello bob").unwrap(),
        b"hello bob"
    );
    assert_eq!(
        send(&mut bob, &mut alice, b"hello alice").unwrap(),
        b"hello alice"
    );
}

#[test]
fn one_commit_adds_two_and_removes_one() {
    let (mut alice, _) = member("Alice", 1);
    let (mut bob, _) = member("Bob", 2);
    let (mut carol, _) = member("Carol", 3);
    let (mut dave, _) = member("Dave", 4);
    alice
        .create_group(Instant::from_millis(0), b"room")
        .unwrap();
    let kp = bob.key_package().unwrap();
    let c1 = alice.commit(&[&kp], &[]).unwrap();
    alice.apply_pending_commit(Instant::from_millis(0)).unwrap();
    bob.join(Instant::from_millis(0), c1.welcome.as_deref().unwrap())
        .unwrap();
    let before = alice.safety_number().unwrap();

    let kc = carol.key_package().unwrap();
    let kd = dave.key_package().unwrap();
    let c2 = alice.commit(&[&kc, &kd], &[1]).unwrap();
    alice
        .apply_pending_commit(Instant::from_millis(10))
        .unwrap();
    assert_eq!(
        bob.process(Instant::from_millis(10), &c2.commit).unwrap(),
        Event::Removed { by: 0 }
    );
    assert_eq!(bob.epoch(), None);
    let welcome = c2.welcome.unwrap();
    carol.join(Instant::from_millis(10), &welcome).unwrap();
    dave.join(Instant::from_millis(10), &welcome).unwrap();

    let names: Vec<String> = carol
        .roster()
        .into_iter()
        .map(|m| m.info.display_name)
        .collect();
    assert_eq!(names, ["Alice", "Carol", "Dave"]);
    assert_eq!(
        carol.safety_number().unwrap(),
        dave.safety_number().unwrap()
    );
    assert_eq!(
        carol.safety_number().unwrap(),
        alice.safety_number().unwrap()
    );
    assert_ne!(before, alice.safety_number().unwrap());
    assert_eq!(send(&mut dave, &mut carol, b"x").unwrap(), b"x");
    // Bob was removed: he has no key for the new epoch.
    assert!(send(&mut alice, &mut bob, b"secret").is_err());
}

#[test]
fn restart_within_an_epoch_resumes_and_never_reuses_a_nonce() {
    let (mut alice, mut bob, bob_store) = alice_adds_bob();
    assert_eq!(send(&mut bob, &mut alice, b"before").unwrap(), b"before");
    let kid_before = bob.keyring().sending_kid().unwrap();
    let safety = bob.safety_number().unwrap();
    drop(bob);

    let mut bob = Session::resume(
        Instant::from_millis(5),
        SatsumaCrypto::from_seed([22; 32]),
        SessionConfig::default(),
        bob_store,
    )
    .unwrap();
    assert_eq!(bob.epoch(), Some(1));
    assert_eq!(bob.safety_number().unwrap(), safety);
    assert_ne!(bob.keyring().sending_kid().unwrap(), kid_before);
    assert_eq!(send(&mut bob, &mut alice, b"after").unwrap(), b"after");
    assert_eq!(send(&mut alice, &mut bob, b"to bob").unwrap(), b"to bob");
    assert!(bob.self_update_due(Instant::from_millis(5)));

    // The group goes on with the resumed member.
    let update = bob.self_update().unwrap();
    assert_eq!(
        alice
            .process(Instant::from_millis(6), &update.commit)
            .unwrap(),
        Event::NewEpoch {
            epoch: 2,
            committer: 1
        }
    );
    bob.apply_pending_commit(Instant::from_millis(6)).unwrap();
    assert_eq!(alice.safety_number().unwrap(), bob.safety_number().unwrap());
    assert!(!bob.self_update_due(Instant::from_millis(7)));
}

/// Each restart within an epoch takes a fresh send context (a new KID, so
/// no nonce repeats); after `MAX_SEND_CONTEXTS` the member can only
/// receive until a new epoch, which its due self-update brings.
#[test]
fn restarts_use_a_fresh_kid_each_then_receive_only_until_a_new_epoch() {
    use satsuma_core::sframe::MAX_SEND_CONTEXTS;

    let (mut alice, mut bob, bob_store) = alice_adds_bob();
    let mut kids = vec![bob.keyring().sending_kid().unwrap()];
    assert_eq!(send(&mut bob, &mut alice, b"first").unwrap(), b"first");

    drop(bob);
    let mut restarts = 0u64;
    let bob = loop {
        restarts += 1;
        let mut resumed = Session::resume(
            Instant::from_millis(restarts),
            SatsumaCrypto::from_seed([22; 32]),
            SessionConfig::default(),
            bob_store.clone(),
        )
        .unwrap();
        assert_eq!(resumed.epoch(), Some(1));
        // Frames to it open in every life.
        assert_eq!(send(&mut alice, &mut resumed, b"in").unwrap(), b"in");
        match resumed.keyring().sending_kid() {
            Some(kid) => {
                assert!(!kids.contains(&kid), "restart {restarts}: KID {kid} again");
                kids.push(kid);
                assert_eq!(send(&mut resumed, &mut alice, b"out").unwrap(), b"out");
            }
            None => break resumed,
        }
        assert!(
            restarts < 2 * MAX_SEND_CONTEXTS,
            "never became receive-only"
        );
        drop(resumed);
    };
    assert_eq!(kids.len() as u64, MAX_SEND_CONTEXTS, "{kids:?}");
    let mut bob = bob;
    assert_eq!(
        send(&mut bob, &mut alice, b"out"),
        Err(satsuma_core::Error::SendingDisabled)
    );

    // The self-update that is due brings a new epoch, and sending again.
    let now = Instant::from_millis(100);
    assert!(bob.self_update_due(now));
    let update = bob.self_update().unwrap();
    alice.process(now, &update.commit).unwrap();
    bob.apply_pending_commit(now).unwrap();
    assert_eq!(send(&mut bob, &mut alice, b"again").unwrap(), b"again");
}

#[test]
fn frames_of_the_previous_epoch_open_only_within_the_grace_period() {
    let (mut alice, _) = member("Alice", 1);
    let (mut bob, _) = member("Bob", 2);
    alice
        .create_group(Instant::from_millis(0), b"room")
        .unwrap();
    let kp = bob.key_package().unwrap();
    let c = alice.commit(&[&kp], &[]).unwrap();
    alice.apply_pending_commit(Instant::from_millis(0)).unwrap();
    bob.join(Instant::from_millis(0), c.welcome.as_deref().unwrap())
        .unwrap();

    // Bob seals two frames in epoch 1, then Alice moves to epoch 2.
    let mut old = Vec::new();
    for payload in [b"late 1", b"late 2"] {
        let mut wire = vec![0u8; 128];
        let n = Codec::Opus
            .protect(bob.keyring_mut(), payload, &mut wire)
            .unwrap();
        wire.truncate(n);
        old.push(wire);
    }
    let _ = alice.self_update().unwrap();
    alice
        .apply_pending_commit(Instant::from_millis(1000))
        .unwrap();
    let grace = SessionConfig::default().keyring.grace;

    let mut out = [0u8; 64];
    let inside = Instant::from_millis(1000).saturating_add(grace - Duration::from_millis(1));
    alice.handle_timeout(inside);
    assert!(
        Codec::Opus
            .unprotect(alice.keyring_mut(), &old[0], &mut out)
            .is_ok()
    );
    alice.handle_timeout(Instant::from_millis(1000).saturating_add(grace));
    assert!(
        Codec::Opus
            .unprotect(alice.keyring_mut(), &old[1], &mut out)
            .is_err()
    );
}

#[test]
fn garbage_and_foreign_messages_are_typed_errors() {
    let (mut alice, _) = member("Alice", 1);
    alice
        .create_group(Instant::from_millis(0), b"room")
        .unwrap();
    assert_eq!(
        alice.process(Instant::from_millis(0), b""),
        Err(SessionError::Malformed)
    );
    assert_eq!(
        alice.process(Instant::from_millis(0), &[0xff; 40]),
        Err(SessionError::Malformed)
    );
    assert_eq!(
        alice.join(Instant::from_millis(0), &[1, 2, 3]),
        Err(SessionError::AlreadyInGroup)
    );
    let (mut eve, _) = member("Eve", 9);
    assert_eq!(
        eve.join(Instant::from_millis(0), &[1, 2, 3]),
        Err(SessionError::Malformed)
    );
    assert_eq!(
        alice.commit(&[b"not a key package"], &[]),
        Err(SessionError::Malformed)
    );
    assert_eq!(alice.epoch(), Some(0));
}

#[test]
fn a_member_whose_commit_lost_the_race_follows_the_winner() {
    let (mut alice, _) = member("Alice", 1);
    let (mut bob, _) = member("Bob", 2);
    let (mut carol, _) = member("Carol", 3);
    alice
        .create_group(Instant::from_millis(0), b"room")
        .unwrap();
    let kp = bob.key_package().unwrap();
    let c = alice.commit(&[&kp], &[]).unwrap();
    alice.apply_pending_commit(Instant::from_millis(0)).unwrap();
    bob.join(Instant::from_millis(0), c.welcome.as_deref().unwrap())
        .unwrap();

    // Both commit for epoch 1; the delivery service accepts Bob's.
    let kc = carol.key_package().unwrap();
    let _losing = alice.commit(&[&kc], &[]).unwrap();
    let winning = bob.self_update().unwrap();
    bob.apply_pending_commit(Instant::from_millis(1)).unwrap();
    assert_eq!(
        alice
            .process(Instant::from_millis(1), &winning.commit)
            .unwrap(),
        Event::NewEpoch {
            epoch: 2,
            committer: 1
        }
    );
    assert!(!alice.has_pending_commit());
    assert_eq!(alice.safety_number().unwrap(), bob.safety_number().unwrap());
    // Carol's key package was never added; a Welcome for it never existed.
    assert_eq!(send(&mut alice, &mut bob, b"on").unwrap(), b"on");
    // Alice can commit again in the new epoch, adding Carol this time.
    let c = alice.commit(&[&kc], &[]).unwrap();
    alice.apply_pending_commit(Instant::from_millis(2)).unwrap();
    bob.process(Instant::from_millis(2), &c.commit).unwrap();
    carol
        .join(Instant::from_millis(2), c.welcome.as_deref().unwrap())
        .unwrap();
    assert_eq!(carol.safety_number().unwrap(), bob.safety_number().unwrap());
}
