//! The MLS security behaviour members rely on, on every target: a removed
//! member and an outsider cannot open frames, late frames open only inside
//! the grace period, and forged, stale, foreign or malformed handshake
//! messages are typed errors that change nothing.
//!
//! `core/tests/mls_security.rs` goes further on the host (every damaged copy
//! of every message kind); these are the same properties at the size a
//! microcontroller runs in seconds.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;
use satsuma_core::media::Codec;
use satsuma_core::mls::{
    Event, MemberInfo, MemoryStore, SafetyNumber, SatsumaCrypto, Session, SessionConfig,
    SessionError, Trust,
};
use satsuma_core::{Error, Instant};

use crate::{Context, Failure, ensure, ensure_eq, portable_tests};

fn member(name: &str, seed: u8) -> Result<Session, Failure> {
    Session::create(
        SatsumaCrypto::from_seed([seed; 32]),
        MemberInfo::new(name, &format!("{name}-device")).context("credential")?,
        SessionConfig::default(),
        MemoryStore::new(),
    )
    .context("create")
}

/// `creator` starts a group and adds `joiner`.
fn pair(creator: &mut Session, joiner: &mut Session, id: &[u8]) -> Result<(), Failure> {
    creator
        .create_group(Instant::from_millis(0), id)
        .context("create group")?;
    add(creator, joiner, &mut [])
}

/// `committer` adds `joiner`; `others` process the commit.
fn add(
    committer: &mut Session,
    joiner: &mut Session,
    others: &mut [&mut Session],
) -> Result<(), Failure> {
    let kp = joiner.key_package().context("key package")?;
    let commit = committer.commit(&[&kp], &[]).context("commit")?;
    committer
        .apply_pending_commit(Instant::from_millis(0))
        .context("apply")?;
    for other in others.iter_mut() {
        other
            .process(Instant::from_millis(0), &commit.commit)
            .context("process")?;
    }
    let welcome = commit.welcome.ok_or_else(|| Failure("no Welcome".into()))?;
    joiner
        .join(Instant::from_millis(0), &welcome)
        .context("join")
}

fn seal(from: &mut Session, payload: &[u8]) -> Result<Vec<u8>, Failure> {
    let mut wire = vec![0u8; payload.len() + 64];
    let n = Codec::Pcmu
        .protect(from.keyring_mut(), payload, &mut wire)
        .context("seal")?;
    wire.truncate(n);
    Ok(wire)
}

fn open(to: &mut Session, frame: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = vec![0u8; frame.len()];
    let (_, len) = Codec::Pcmu.unprotect(to.keyring_mut(), frame, &mut out)?;
    out.truncate(len);
    Ok(out)
}

/// What must not change when a member refuses a message.
fn view(s: &Session) -> (Option<u64>, Option<SafetyNumber>, usize) {
    (s.epoch(), s.safety_number().ok(), s.roster().len())
}

portable_tests! { TESTS:
    fn a_removed_member_cannot_open_frames_of_the_next_epoch() {
        let (mut alice, mut bob, mut carol) = (member("Alice", 1)?, member("Bob", 2)?, member("Carol", 3)?);
        pair(&mut alice, &mut bob, b"room")?;
        add(&mut alice, &mut carol, &mut [&mut bob])?;
        let remove = alice.commit(&[], &[1]).context("remove Bob")?;
        alice.apply_pending_commit(Instant::from_millis(10)).context("apply")?;
        carol.process(Instant::from_millis(10), &remove.commit).context("Carol")?;
        let frame = seal(&mut alice, b"after Bob left")?;
        ensure_eq!(open(&mut carol, &frame), Ok(b"after Bob left".to_vec()), "Carol");
        // Bob never processed his removal: he still holds the old epoch.
        // To him it looks like a frame ahead of its commit: holdable, never
        // opened.
        let Err(Error::FutureEpoch { kid }) = open(&mut bob, &frame) else {
            return Err(Failure("Bob opened it".into()));
        };
        bob.keyring_mut().hold(Instant::from_millis(10), kid, 0, &frame).context("held")?;
        // Once he does, he holds nothing at all.
        ensure_eq!(bob.process(Instant::from_millis(10), &remove.commit), Ok(Event::Removed { by: 0 }), "told");
        ensure!(open(&mut bob, &frame).is_err(), "Bob opened it after removal");
        ensure!(bob.keyring_mut().take_ready().is_none(), "a held frame came back after removal");
        Ok(())
    }

    fn a_key_package_added_before_is_refused_when_the_server_replays_it() {
        let (mut alice, mut bob, mut carol) = (member("Alice", 1)?, member("Bob", 2)?, member("Carol", 3)?);
        alice.create_group(Instant::from_millis(0), b"room").context("create")?;
        add(&mut alice, &mut carol, &mut [])?;
        // Bob joins with a key package the server keeps a copy of.
        let used = bob.key_package().context("key package")?;
        let commit = alice.commit(&[&used], &[]).context("add Bob")?;
        alice.apply_pending_commit(Instant::from_millis(0)).context("apply")?;
        carol.process(Instant::from_millis(0), &commit.commit).context("Carol")?;
        let welcome = commit.welcome.ok_or_else(|| Failure("no Welcome".into()))?;
        bob.join(Instant::from_millis(0), &welcome).context("Bob joins")?;
        let bob_leaf = bob.own_index().ok_or_else(|| Failure("Bob has no leaf".into()))?;
        // Bob leaves; the server offers his used key package again, so his
        // name and fingerprint would be back in the roster without him.
        let remove = alice.commit(&[], &[bob_leaf]).context("remove Bob")?;
        alice.apply_pending_commit(Instant::from_millis(0)).context("apply")?;
        carol.process(Instant::from_millis(0), &remove.commit).context("Carol")?;
        let before = (view(&alice), view(&carol));
        // The member who added it and a member who only saw it added both
        // refuse it, whichever of them commits next.
        ensure_eq!(alice.commit(&[&used], &[]), Err(SessionError::KeyPackageReused), "Alice");
        ensure_eq!(carol.commit(&[&used], &[]), Err(SessionError::KeyPackageReused), "Carol");
        ensure!(!alice.has_pending_commit() && !carol.has_pending_commit(), "a commit was left pending");
        ensure_eq!((view(&alice), view(&carol)), before, "nothing changed");
        // A fresh key package of Bob's is welcome.
        let fresh = bob.key_package().context("fresh key package")?;
        ensure!(carol.commit(&[&fresh], &[]).is_ok(), "Bob's fresh key package");
        Ok(())
    }

    fn identities_seen_are_remembered_and_verified_across_a_restart() {
        let store = MemoryStore::new();
        let mut alice = Session::create(
            SatsumaCrypto::from_seed([1; 32]),
            MemberInfo::new("Alice", "Alice-device").context("credential")?,
            SessionConfig::default(),
            store.clone(),
        )
        .context("create")?;
        let mut bob = member("Bob", 2)?;
        pair(&mut alice, &mut bob, b"room")?;
        let seen = alice.poll_introduction().ok_or_else(|| Failure("no introduction".into()))?;
        ensure_eq!((seen.leaf, seen.trust), (1, Trust::FirstSeen), "first sighting");
        ensure_eq!(seen.fingerprint, bob.fingerprint(), "Bob's key");
        ensure!(alice.poll_introduction().is_none(), "one introduction");
        ensure_eq!(bob.poll_introduction().map(|i| i.trust), Some(Trust::FirstSeen), "Bob, joining, sees Alice");
        // They compare fingerprints out of band; then Bob leaves and Alice
        // restarts.
        ensure_eq!(alice.mark_verified(bob.fingerprint()), Ok(true), "verified");
        alice.commit(&[], &[1]).context("remove Bob")?;
        alice.apply_pending_commit(Instant::from_millis(0)).context("apply")?;
        drop(alice);
        let mut alice = Session::resume(
            Instant::from_millis(0),
            SatsumaCrypto::from_seed([9; 32]),
            SessionConfig::default(),
            store,
        )
        .context("restart")?;
        // Bob's device again: the same seed, so the same identity key.
        let mut bob = member("Bob", 2)?;
        add(&mut alice, &mut bob, &mut [])?;
        ensure_eq!(
            alice.poll_introduction().map(|i| i.trust),
            Some(Trust::Known { verified: true }),
            "known and verified, after a restart"
        );
        Ok(())
    }

    fn a_members_proposal_to_remove_another_is_never_committed() {
        let (mut alice, mut bob, mut carol) = (member("Alice", 1)?, member("Bob", 2)?, member("Carol", 3)?);
        pair(&mut alice, &mut bob, b"room")?;
        add(&mut alice, &mut carol, &mut [&mut bob])?;
        let carol_leaf = carol.own_index().ok_or_else(|| Failure("Carol has no leaf".into()))?;
        // Bob, an ordinary member, proposes Carol's removal; Alice commits
        // next (for her own reasons) with his proposal cached.
        let proposal = bob.propose_remove(carol_leaf).context("Bob proposes")?;
        for s in [&mut alice, &mut carol] {
            ensure_eq!(
                s.process(Instant::from_millis(10), &proposal),
                Err(SessionError::UnwantedProposal),
                "refused with a typed error"
            );
        }
        let commit = alice.commit(&[], &[]).context("Alice commits")?;
        alice.apply_pending_commit(Instant::from_millis(10)).context("apply")?;
        let epoch = alice.epoch();
        ensure!(
            matches!(carol.process(Instant::from_millis(10), &commit.commit), Ok(Event::NewEpoch { .. })),
            "Carol was removed by a member's proposal"
        );
        bob.process(Instant::from_millis(10), &commit.commit).context("Bob")?;
        for s in [&alice, &bob, &carol] {
            ensure_eq!(view(s), view(&alice), "one group");
            ensure_eq!(s.roster().len(), 3, "nobody removed");
        }
        ensure_eq!(carol.epoch(), epoch, "Carol is in the new epoch");
        let frame = seal(&mut alice, b"still here")?;
        ensure_eq!(open(&mut carol, &frame), Ok(b"still here".to_vec()), "Carol hears Alice");
        Ok(())
    }

    fn a_late_frame_opens_inside_the_grace_period_and_not_after() {
        let (mut alice, mut bob) = (member("Alice", 1)?, member("Bob", 2)?);
        pair(&mut alice, &mut bob, b"room")?;
        let late = [seal(&mut bob, b"late 1")?, seal(&mut bob, b"late 2")?];
        let update = alice.self_update().context("update")?;
        alice.apply_pending_commit(Instant::from_millis(1000)).context("apply")?;
        bob.process(Instant::from_millis(1000), &update.commit).context("Bob moves on")?;
        let grace = SessionConfig::default().keyring.grace;
        alice.handle_timeout(Instant::from_millis(1000).saturating_add(grace - Duration::from_millis(1)));
        ensure_eq!(open(&mut alice, &late[0]), Ok(b"late 1".to_vec()), "inside the grace period");
        alice.handle_timeout(Instant::from_millis(1000).saturating_add(grace));
        ensure!(open(&mut alice, &late[1]).is_err(), "opened after the grace period");
        let fresh = seal(&mut bob, b"new epoch")?;
        ensure_eq!(open(&mut alice, &fresh), Ok(b"new epoch".to_vec()), "new epoch");
        Ok(())
    }

    fn an_identity_never_welcomed_cannot_open_join_or_commit() {
        let (mut alice, mut bob, mut eve) = (member("Alice", 1)?, member("Bob", 2)?, member("Eve", 9)?);
        alice.create_group(Instant::from_millis(0), b"room").context("create")?;
        let kp = bob.key_package().context("Bob's key package")?;
        let _ = eve.key_package().context("Eve's key package")?;
        let commit = alice.commit(&[&kp], &[]).context("commit")?;
        alice.apply_pending_commit(Instant::from_millis(0)).context("apply")?;
        let welcome = commit.welcome.ok_or_else(|| Failure("no Welcome".into()))?;
        ensure_eq!(eve.join(Instant::from_millis(0), &welcome), Err(SessionError::NotWelcomed), "Bob's Welcome");
        bob.join(Instant::from_millis(0), &welcome).context("Bob joins")?;
        let frame = seal(&mut alice, b"members only")?;
        ensure!(open(&mut eve, &frame).is_err(), "Eve opened a frame");
        // Eve runs her own group with the same id and commits in it.
        eve.create_group(Instant::from_millis(0), b"room").context("Eve's group")?;
        let forged = eve.self_update().context("Eve's commit")?;
        let before = view(&bob);
        ensure!(bob.process(Instant::from_millis(1), &forged.commit).is_err(), "Eve's commit taken");
        ensure_eq!(view(&bob), before, "Bob changed");
        Ok(())
    }

    fn stale_and_foreign_commits_are_typed_errors_that_change_nothing() {
        let (mut alice, mut bob, mut carol) = (member("Alice", 1)?, member("Bob", 2)?, member("Carol", 3)?);
        pair(&mut alice, &mut bob, b"room")?;
        let first = alice.self_update().context("first")?;
        alice.apply_pending_commit(Instant::from_millis(1)).context("apply")?;
        bob.process(Instant::from_millis(1), &first.commit).context("Bob")?;
        let before = view(&bob);
        // A replay of an applied commit is for an epoch that is over.
        ensure_eq!(bob.process(Instant::from_millis(2), &first.commit), Err(SessionError::WrongEpoch), "replay");
        // A commit for another group.
        pair(&mut carol, &mut member("Dave", 4)?, b"other room")?;
        let foreign = carol.self_update().context("Carol")?;
        ensure_eq!(bob.process(Instant::from_millis(2), &foreign.commit), Err(SessionError::WrongGroup), "foreign");
        // A flipped byte in the signed content or the tag.
        let second = alice.self_update().context("second")?;
        for at_byte in [second.commit.len() / 2, second.commit.len() - 1] {
            let mut bad = second.commit.clone();
            bad[at_byte] ^= 0x01;
            let result = bob.process(Instant::from_millis(3), &bad);
            ensure!(result.is_err(), "a commit with byte {at_byte} flipped was taken");
        }
        // Garbage of every short length.
        for len in 0..64 {
            let garbage: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            ensure!(bob.process(Instant::from_millis(3), &garbage).is_err(), "garbage of {len} bytes taken");
        }
        ensure_eq!(view(&bob), before, "Bob changed");
        // The real commit still applies.
        alice.apply_pending_commit(Instant::from_millis(4)).context("apply second")?;
        bob.process(Instant::from_millis(4), &second.commit).context("second at Bob")?;
        ensure_eq!(bob.safety_number().ok(), alice.safety_number().ok(), "same state");
        Ok(())
    }

    fn malformed_key_packages_and_welcomes_are_typed_errors() {
        let (mut alice, mut bob) = (member("Alice", 1)?, member("Bob", 2)?);
        alice.create_group(Instant::from_millis(0), b"room").context("create")?;
        let kp = bob.key_package().context("key package")?;
        for cut in [0, 1, 2, 10, kp.len() / 2, kp.len() - 1] {
            ensure!(alice.commit(&[&kp[..cut]], &[]).is_err(), "key package cut at {cut} taken");
        }
        let mut version = kp.clone();
        version[1] = 2;
        ensure_eq!(alice.commit(&[&version], &[]), Err(SessionError::Malformed), "version 2");
        let mut bad_signature = kp.clone();
        let last = bad_signature.len() - 1;
        bad_signature[last] ^= 0x80;
        ensure!(alice.commit(&[&bad_signature], &[]).is_err(), "forged key package taken");
        ensure!(!alice.has_pending_commit(), "a refused commit is pending");
        let commit = alice.commit(&[&kp], &[]).context("real key package")?;
        let welcome = commit.welcome.ok_or_else(|| Failure("no Welcome".into()))?;
        for cut in [0, 4, welcome.len() / 2, welcome.len() - 1] {
            ensure!(bob.join(Instant::from_millis(0), &welcome[..cut]).is_err(), "Welcome cut at {cut} taken");
        }
        let mut flipped = welcome.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        ensure_eq!(bob.join(Instant::from_millis(0), &flipped), Err(SessionError::NotWelcomed), "altered Welcome");
        ensure_eq!(bob.epoch(), None, "Bob is in a group");
        bob.join(Instant::from_millis(0), &welcome).context("the real Welcome")?;
        Ok(())
    }
}
