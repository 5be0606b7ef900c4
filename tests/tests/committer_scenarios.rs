//! One test per failure the designated committer must survive (the failures
//! Orange Meets' designated committer met, and the ones `docs/committer.md`
//! lists), each with real MLS sessions, driven step by step so the failure
//! lands exactly where it hurts. Each asserts what the people in the call
//! would notice: everyone ends in one group with one safety number and a
//! roster of exactly who is there, and nobody is stuck.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code.

use std::time::Duration;

use satsuma_core::committer::{
    CommitterError, DsError, Event, LogError, Member, Misbehaviour, RejoinReason, Request,
    RoomState, SnapshotError, Status,
};
use satsuma_core::mls::{Introduction, MemoryStore, SafetyNumber, Session, SessionConfig, Trust};
use satsuma_core::wire::{
    Blob, CommitMessage, ConnId, Down, Entry, Join, List, Media, Message, Presence, RoomName,
    RoomSnapshot, SeatSnapshot, ToClient, Up, WireError,
};
use satsuma_sim::fixtures::{DESKTOP, session};
use satsuma_tests::world::{DEADLINE, World, call};

/// What a test compares before and after feeding a member something it
/// must refuse: a refused message changes nothing.
#[derive(Debug, PartialEq)]
struct Snapshot {
    status: Status,
    epoch: Option<u64>,
    safety: Option<SafetyNumber>,
    leaves: Vec<u32>,
    room: Option<RoomState>,
    pending: bool,
}

fn snapshot(m: &Member<Session>) -> Snapshot {
    Snapshot {
        status: m.status(),
        epoch: m.group().epoch(),
        safety: m.group().safety_number().ok(),
        leaves: m.group().leaves(),
        room: m.room().cloned(),
        pending: m.has_pending(),
    }
}

// 1. The committer dies after sending its commit and Welcome, before the
//    DS reads them.
fn committer_dies_before_the_ds_accepts(detected_before_deadline: bool) {
    let (mut w, ids) = call(&["alice", "bob"]);
    let (alice, bob) = (ids[0], ids[1]);
    let carol = w.add("carol");
    w.join(carol);
    w.flush_up(); // Joined{carol}
    w.flush_down(); // alice, designated, builds the commit that adds carol
    let lost = w.crash(alice, true);
    let [Request::Control(Up::Commit(lost))] = &lost[..] else {
        panic!("alice had sent exactly her commit: {lost:?}");
    };
    let lost_welcome = lost.welcome.as_ref().expect("it adds carol").to_vec();
    assert_eq!(lost.adds[..], [w.conn(carol)]);

    if detected_before_deadline {
        w.advance(DEADLINE / 2);
        w.disconnect(alice);
        w.settle();
    } else {
        // Alice's connection looks alive: the deadline hands the work on.
        w.settle();
        assert_eq!(w.count(|e| matches!(e, Entry::Stalled)), 1);
        w.disconnect(alice);
        w.settle();
    }

    w.assert_call(&[bob, carol]);
    assert!(
        w.welcomes()
            .iter()
            .all(|(_, welcome)| *welcome != lost_welcome),
        "the lost commit's Welcome never reaches anyone"
    );
    let (committer, added) = w
        .commits()
        .into_iter()
        .find(|(_, c)| c.adds.contains(&w.conn(carol)))
        .expect("carol was added");
    assert_eq!(committer, w.conn(bob), "bob took over");
    assert_ne!(added.commit, lost.commit, "a new commit, not the lost one");
    assert!(
        w.events(carol)
            .iter()
            .all(|e| !matches!(e, Event::Rejoining(_))),
        "carol was added at the first try that reached the DS"
    );
    // Alice's seat is gone too, and each epoch was reached by one commit.
    assert_eq!(w.room().state().occupied_leaves().len(), 2);
    assert_eq!(w.commits().len() as u64, w.epoch());
}

#[test]
fn committer_dies_before_the_ds_accepts_and_is_noticed() {
    committer_dies_before_the_ds_accepts(true);
}

#[test]
fn committer_dies_before_the_ds_accepts_and_the_deadline_passes() {
    committer_dies_before_the_ds_accepts(false);
}

// 2. The committer dies right after the DS accepted its commit.
#[test]
fn committer_dies_after_the_ds_accepts() {
    let (mut w, ids) = call(&["alice", "bob"]);
    let (alice, bob) = (ids[0], ids[1]);
    let carol = w.add("carol");
    w.join(carol);
    w.flush_up();
    w.flush_down(); // alice's commit is on its way
    w.flush_up(); // the DS accepts it: Welcome to carol, Committed to all
    let alice_conn = w.conn(alice);
    let alice_leaf = w.room().state().seat_of(alice_conn).unwrap().0;
    w.crash(alice, true);
    w.flush_down(); // bob and carol apply it
    assert_eq!(w.member(bob).group().epoch(), Some(2));
    assert_eq!(w.member(carol).group().epoch(), Some(2));
    w.advance(Duration::from_secs(1));
    w.disconnect(alice);
    w.settle();

    let sn = w.assert_call(&[bob, carol]);
    assert_eq!(w.epoch(), 3, "one more commit, removing alice");
    let (by, removal) = w.commits().pop().unwrap();
    assert_eq!((by, &removal.removes[..]), (w.conn(bob), &[alice_leaf][..]));
    assert_eq!(
        w.watch()
            .view(&w.room().state().group().unwrap().id, 3)
            .unwrap()
            .safety_number,
        sn
    );
}

// 3. A lobby visitor leaves before it is added.
#[test]
fn lobby_visitor_leaves_before_anyone_commits() {
    let (mut w, ids) = call(&["alice", "bob"]);
    let before = w.member(ids[0]).group().safety_number().unwrap();
    let visitor = w.add("visitor");
    w.join(visitor);
    w.flush_up(); // Joined{visitor}
    w.leave(visitor);
    w.flush_up(); // Left{visitor}, before alice heard of it
    w.settle();

    let after = w.assert_call(&ids);
    assert_eq!(w.epoch(), 1, "no commit was needed");
    assert_eq!(after, before, "nobody's safety number changed");
    assert!(
        w.commits()
            .iter()
            .all(|(_, c)| !c.adds.contains(&w.conn(visitor)))
    );
    // Alice built a commit adding the visitor on reading the Joined entry
    // (the Left came right after it); the DS turned it down and she
    // dropped it.
    assert_eq!(
        w.errors_of("alice"),
        [DsError::Log(LogError::NotInLobby(w.conn(visitor)))]
    );
    assert!(w.room().poll_timeout().is_none(), "nobody has work left");
    assert!(!w.member(ids[0]).has_pending());
}

#[test]
fn lobby_visitor_leaves_while_a_commit_adding_it_is_in_flight() {
    let (mut w, ids) = call(&["alice", "bob"]);
    let (alice, bob) = (ids[0], ids[1]);
    let visitor = w.add("visitor");
    let dave = w.add("dave");
    w.join(visitor);
    w.join(dave);
    w.flush_up(); // Joined{visitor}, Joined{dave}
    w.flush_down(); // alice's commit adds both
    assert!(w.member(alice).has_pending());
    w.disconnect(visitor); // the visitor's tab closes: Left{visitor}
    let now = w.now();
    w.member_mut(visitor).handle_disconnect(now);
    w.flush_up(); // alice's commit arrives, naming a connection that left
    assert_eq!(
        w.errors_of("alice"),
        [DsError::Log(LogError::NotInLobby(w.conn(visitor)))]
    );
    w.settle();

    w.assert_call(&[alice, bob, dave]);
    let commits = w.commits();
    assert!(
        commits
            .iter()
            .all(|(_, c)| !c.adds.contains(&w.conn(visitor)))
    );
    assert_eq!(
        commits.last().unwrap().1.adds[..],
        [w.conn(dave)],
        "redone without the visitor"
    );
    assert_eq!(w.epoch(), 2);
    assert_eq!(
        w.count(|e| matches!(e, Entry::Stalled)),
        0,
        "nobody waited for a deadline"
    );
}

// 4. Malformed key packages.
#[test]
fn malformed_key_packages_are_refused_and_the_rest_added() {
    let (mut w, ids) = call(&["alice", "bob"]);
    let garbage = w.add_raw("garbage");
    let tampered = w.add_raw("mallory");
    let carol = w.add("carol");

    // A key package that is not MLS at all, and a real one whose signed
    // display name was changed on the way.
    let mut forger = session(
        [0x77; 32],
        "Mallory",
        "mallory-laptop",
        SessionConfig::default(),
        MemoryStore::default(),
    );
    let mut forged = forger.key_package().unwrap();
    let at = forged
        .windows(7)
        .position(|w| w == b"Mallory")
        .expect("the credential is in the key package");
    forged[at + 6] = b'z';
    let join = |key_package: &[u8]| {
        Request::Join(Join {
            room: RoomName::new("sim").unwrap(),
            key_package: Blob::copy_from(key_package).unwrap(),
            capabilities: DESKTOP,
        })
    };
    w.inject(garbage, join(b"\x00\x01 not a key package"));
    w.inject(tampered, join(&forged));
    w.join(carol);
    w.settle();

    for bad in [garbage, tampered] {
        let conn = w.conn(bad);
        assert_eq!(
            w.count(|e| *e
                == Entry::Refused {
                    by: w.conn(ids[0]),
                    conn
                }),
            1,
            "{} refused once",
            w.name(bad)
        );
        assert!(
            w.received(bad).contains(&Down::KeyPackageRefused),
            "{} is told",
            w.name(bad)
        );
        assert!(w.commits().iter().all(|(_, c)| !c.adds.contains(&conn)));
    }
    assert_eq!(w.commits().last().unwrap().1.adds[..], [w.conn(carol)]);
    assert_eq!(
        w.epoch(),
        2,
        "carol came in the first commit after the refusals"
    );
    // The refused clients give up and close their connections: nothing
    // more to commit.
    w.disconnect(garbage);
    w.disconnect(tampered);
    w.settle();
    w.assert_call(&[ids[0], ids[1], carol]);
    assert_eq!(w.epoch(), 2);
}

// 5. Two joiners open an empty room at once.
#[test]
fn two_joiners_open_an_empty_room_at_once() {
    let mut w = World::new();
    let alice = w.add("alice");
    let bob = w.add("bob");
    w.join(alice);
    w.join(bob);
    w.flush_up(); // both Joins before the DS sends anything
    // Bob tries to create the group too, as a client that raced would.
    w.inject(
        bob,
        Request::Control(Up::Create {
            group_id: Blob::copy_from(b"bob's group").unwrap(),
        }),
    );
    w.flush_up();
    assert_eq!(w.errors_of("bob"), [DsError::Refused]);
    w.settle();

    let sn = w.assert_call(&[alice, bob]);
    assert_eq!(
        w.count(|e| matches!(e, Entry::Created { .. })),
        1,
        "one group"
    );
    assert!(
        matches!(w.log().iter().find(|e| matches!(e, Entry::Created { .. })),
        Some(Entry::Created { conn, .. }) if *conn == w.conn(alice))
    );
    assert_eq!(w.epoch(), 1, "bob was added by one commit");
    assert_eq!(w.member(bob).group().safety_number().unwrap(), sn);
}

// 6. A lost Welcome.
#[test]
fn lost_welcome_makes_the_joiner_rejoin() {
    let (mut w, ids) = call(&["alice", "bob"]);
    let carol = w.add("carol");
    w.lose_next_welcome(carol);
    w.join(carol);
    w.settle();

    w.assert_call(&[ids[0], ids[1], carol]);
    assert!(
        w.events(carol)
            .contains(&Event::Rejoining(RejoinReason::LostWelcome))
    );
    let commits = w.commits();
    let carol_conn = w.conn(carol);
    let adds: Vec<_> = commits
        .iter()
        .filter(|(_, c)| c.adds.contains(&carol_conn))
        .collect();
    assert_eq!(adds.len(), 2, "added, then added again");
    let carol_leaf = w.room().state().seat_of(carol_conn).unwrap().0;
    assert_eq!(
        adds[1].1.removes[..],
        [carol_leaf],
        "its unused leaf removed at once"
    );
    assert_eq!(w.epoch(), 3);
}

// 7. A commit from a member that is not the designated committer.
#[test]
fn commit_from_a_non_designated_member_is_refused_everywhere() {
    let (mut w, ids) = call(&["alice", "bob", "carol"]);
    let (alice, bob, carol) = (ids[0], ids[1], ids[2]);
    let epoch = w.epoch();
    let built = w.member_mut(bob).group_mut().commit(&[], &[]).unwrap();
    let commit = CommitMessage {
        epoch,
        adds: List::default(),
        removes: List::default(),
        commit: Blob::new(built.commit).unwrap(),
        welcome: None,
    };
    w.member_mut(bob)
        .group_mut()
        .discard_pending_commit()
        .unwrap();

    w.inject(bob, Request::Control(Up::Commit(commit.clone())));
    w.flush_up();
    let bob_conn = w.conn(bob);
    assert_eq!(
        w.errors_of("bob"),
        [DsError::Log(LogError::NotDesignated(bob_conn))]
    );
    assert_eq!(
        w.in_flight_down().last(),
        Some(&(bob_conn, &Down::Rejected { epoch: Some(epoch) })),
        "bob alone is told"
    );
    assert_eq!(w.in_flight_down().len(), 1, "nothing is logged");
    w.flush_down();

    // A DS that relays it anyway: every member refuses it, unchanged.
    let forged = Down::Entry {
        seq: w.room().state().seq() + 1,
        entry: Entry::Committed {
            conn: bob_conn,
            commit,
        },
    };
    for i in [alice, bob, carol] {
        let before = snapshot(w.member(i));
        let now = w.now();
        let got = w.member_mut(i).handle_message(now, forged.clone());
        assert_eq!(
            got,
            Err(CommitterError::Log(LogError::NotDesignated(bob_conn))),
            "{}",
            w.name(i)
        );
        w.pump(i);
        assert_eq!(snapshot(w.member(i)), before, "{} is unchanged", w.name(i));
        assert!(w.in_flight_up().is_empty(), "and reacts with nothing");
    }

    let dave = w.add("dave");
    w.join(dave);
    w.settle();
    w.assert_call(&[alice, bob, carol, dave]);
    assert_eq!(w.epoch(), epoch + 1);
}

// 8. Garbage, a future-epoch commit and out-of-sequence entries.
#[test]
fn garbage_future_epochs_and_gaps_are_typed_errors() {
    let (mut w, ids) = call(&["alice", "bob", "carol"]);
    let (alice, bob) = (ids[0], ids[1]);
    let seq = w.room().state().seq();
    let epoch = w.epoch();
    let alice_conn = w.conn(alice);
    let entry = |seq, entry| Down::Entry { seq, entry };
    let future = Entry::Committed {
        conn: alice_conn,
        commit: CommitMessage {
            epoch: epoch + 1,
            adds: List::default(),
            removes: List::default(),
            commit: Blob::copy_from(b"\x00\x01garbage").unwrap(),
            welcome: None,
        },
    };
    let media = ToClient::Media(Media {
        sender: alice_conn,
        codec: satsuma_core::media::Codec::Opus,
        timestamp: 0,
        sequence: 0,
        payload: Blob::copy_from(&[0xab]).unwrap(),
    });
    let before = snapshot(w.member(bob));
    let events = w.events(bob).len();
    let now = w.now();
    let m = w.member_mut(bob);
    assert_eq!(
        m.handle_bytes(now, &[]),
        Err(CommitterError::Wire(WireError::Empty))
    );
    assert_eq!(
        m.handle_bytes(now, &[9, 1, 2, 3]),
        Err(CommitterError::Wire(WireError::Version(9)))
    );
    assert_eq!(
        m.handle_bytes(now, &[2, 0xff, 0xff, 0xff, 0xff, 0xff]),
        Err(CommitterError::Wire(WireError::Malformed))
    );
    let mut trailing = ToClient::Control(entry(seq + 1, Entry::Stalled))
        .encode()
        .unwrap();
    trailing.push(0);
    assert_eq!(
        m.handle_bytes(now, &trailing),
        Err(CommitterError::Wire(WireError::Trailing(1)))
    );
    assert_eq!(
        m.handle_message(now, entry(seq + 1, future.clone())),
        Err(CommitterError::Log(LogError::WrongEpoch {
            expected: epoch,
            got: epoch + 1
        }))
    );
    assert_eq!(
        m.handle_message(now, entry(seq + 3, Entry::Left { conn: alice_conn })),
        Err(CommitterError::Sequence {
            expected: seq + 1,
            got: seq + 3
        })
    );
    assert_eq!(
        m.handle_message(now, entry(seq, Entry::Left { conn: alice_conn })),
        Err(CommitterError::Sequence {
            expected: seq + 1,
            got: seq
        }),
        "an entry repeated"
    );
    assert_eq!(
        m.handle_message(now, entry(seq + 1, Entry::Stalled)),
        Err(CommitterError::Log(LogError::NoWork))
    );
    assert_eq!(
        m.handle_bytes(now, &media.encode().unwrap()),
        Err(CommitterError::Unexpected),
        "media is the transport's, not the committer's"
    );
    assert_eq!(
        m.handle_message(now, Down::Rejected { epoch: Some(epoch) }),
        Err(CommitterError::Unexpected)
    );
    assert_eq!(
        m.handle_message(
            now,
            Down::Welcome {
                welcome: Blob::copy_from(b"w").unwrap()
            }
        ),
        Err(CommitterError::Unexpected)
    );
    assert_eq!(
        m.handle_message(
            now,
            Down::Hello {
                conn: ConnId(99),
                room: RoomSnapshot::default()
            }
        ),
        Err(CommitterError::Unexpected)
    );
    w.pump(bob);
    assert!(w.in_flight_up().is_empty(), "bob sends nothing");
    // What only a broken or hostile DS sends is shown, and nothing else.
    assert_eq!(
        w.events(bob)[events..],
        [
            Event::DeliveryServiceMisbehaved(Misbehaviour::Log(LogError::WrongEpoch {
                expected: epoch,
                got: epoch + 1
            })),
            Event::DeliveryServiceMisbehaved(Misbehaviour::Sequence {
                expected: seq + 1,
                got: seq + 3
            }),
            Event::DeliveryServiceMisbehaved(Misbehaviour::Sequence {
                expected: seq + 1,
                got: seq
            }),
            Event::DeliveryServiceMisbehaved(Misbehaviour::Log(LogError::NoWork)),
        ],
        "bob shows the misbehaving DS"
    );
    assert_eq!(snapshot(w.member(bob)), before, "bob is unchanged");

    // The group carries on, bob with it.
    let dave = w.add("dave");
    w.join(dave);
    w.settle();
    w.assert_call(&[ids[0], ids[1], ids[2], dave]);
    assert_eq!(w.epoch(), epoch + 1);
}

// 8b. A Hello whose room no log could produce: a broken or hostile DS.
#[test]
fn a_forged_hello_is_refused_and_the_real_one_taken() {
    let (mut w, ids) = call(&["alice", "bob"]);
    let carol = w.add("carol");
    w.join(carol);
    w.flush_up(); // the DS queues carol's Hello
    // Before it arrives, one that seats alice in a second leaf too.
    let alice_conn = w.conn(ids[0]);
    let mut forged = w.room().state().snapshot();
    let mut leaves = forged.leaves.into_inner();
    let (_, seat) = w.room().state().seat_of(alice_conn).unwrap();
    leaves.push(Some(SeatSnapshot {
        conn: seat.conn,
        can_commit: seat.can_commit,
        transport: seat.transport,
        status: Presence::Departed,
    }));
    forged.leaves = List::new(leaves).unwrap();
    forged.seq += 1;
    let before = snapshot(w.member(carol));
    let now = w.now();
    assert_eq!(
        w.member_mut(carol).handle_message(
            now,
            Down::Hello {
                conn: ConnId(99),
                room: forged
            }
        ),
        Err(CommitterError::Snapshot(SnapshotError::TwoLeaves(
            alice_conn
        )))
    );
    w.pump(carol);
    assert!(w.in_flight_up().is_empty(), "carol sends nothing");
    assert_eq!(snapshot(w.member(carol)), before, "carol is unchanged");
    assert_eq!(w.member(carol).status(), Status::Connecting);
    assert_eq!(w.member(carol).conn(), None);

    // The real Hello follows, and carol is in the call.
    w.settle();
    w.assert_call(&[ids[0], ids[1], carol]);
}

// 9. The DS wrongly declares a live member gone.
#[test]
fn member_falsely_declared_gone_joins_again() {
    let (mut w, ids) = call(&["alice", "bob", "carol"]);
    let (alice, bob, carol) = (ids[0], ids[1], ids[2]);
    let old_conn = w.conn(bob);
    let old_leaf = w.room().state().seat_of(old_conn).unwrap().0;
    w.disconnect(bob);
    w.flush_down();
    assert!(w.events(bob).contains(&Event::Evicted));
    assert_eq!(w.member(bob).status(), Status::Idle);
    assert_eq!(w.member(bob).group().epoch(), None, "bob dropped his keys");
    // The app opens a new connection and joins again.
    w.join(bob);
    w.settle();

    w.assert_call(&[alice, bob, carol]);
    assert_ne!(w.conn(bob), old_conn);
    let removed: Vec<u32> = w
        .commits()
        .iter()
        .flat_map(|(_, c)| c.removes.to_vec())
        .collect();
    assert_eq!(removed, [old_leaf], "the old leaf removed once");
    let roster = w.member(alice).group().roster();
    assert_eq!(roster.len(), 3, "bob is in the group once");
}

// 10. Periodic self-updates.
#[test]
fn self_updates_are_proposed_and_committed() {
    let mut w = World::new();
    let config = |secs| SessionConfig {
        self_update_interval: Some(Duration::from_secs(secs)),
        ..SessionConfig::default()
    };
    let alice = w.add_with("alice", DESKTOP, config(600));
    let bob = w.add_with("bob", DESKTOP, config(20));
    let carol = w.add_with("carol", DESKTOP, config(600));
    for i in [alice, bob, carol] {
        w.join(i);
        w.settle();
    }
    let before = w.assert_call(&[alice, bob, carol]);
    let epoch = w.epoch();
    let proposals = w.count(|e| matches!(e, Entry::Proposed { .. }));
    assert!(!w.member(bob).group().self_update_due(w.now()));

    w.advance(Duration::from_secs(21));
    assert!(
        matches!(w.in_flight_up().first(), Some((i, Request::Control(Up::Proposal { epoch: e, .. }))) if *i == bob && *e == epoch),
        "bob, not the committer, proposes his update"
    );
    w.settle();

    let after = w.assert_call(&[alice, bob, carol]);
    assert_eq!(w.epoch(), epoch + 1, "one commit carried it");
    assert_ne!(after, before, "new keys, new safety number");
    assert_eq!(
        w.count(|e| matches!(e, Entry::Proposed { .. })),
        proposals + 1
    );
    assert_eq!(w.commits().last().unwrap().0, w.conn(alice));
    assert!(
        !w.member(bob).group().self_update_due(w.now()),
        "bob's leaf is fresh"
    );
    // And it stays quiet until the interval passes again.
    w.advance(Duration::from_secs(10));
    w.settle();
    assert_eq!(w.epoch(), epoch + 1);
    w.advance(Duration::from_secs(11));
    w.settle();
    assert_eq!(w.epoch(), epoch + 2, "bob refreshes again");
    w.assert_call(&[alice, bob, carol]);
}

// 10b. A member proposes its update, then becomes the committer before
//      anyone commits it: it cannot commit its own proposal, and must not
//      get stuck on it.
#[test]
fn proposer_that_becomes_committer_is_not_stuck() {
    let mut w = World::new();
    let config = |secs| SessionConfig {
        self_update_interval: Some(Duration::from_secs(secs)),
        ..SessionConfig::default()
    };
    let alice = w.add_with("alice", DESKTOP, config(600));
    let bob = w.add_with("bob", DESKTOP, config(20));
    for i in [alice, bob] {
        w.join(i);
        w.settle();
    }
    let epoch = w.epoch();
    w.advance(Duration::from_secs(21));
    w.flush_up(); // Proposed{bob}
    assert_eq!(w.room().state().proposals(), [w.conn(bob)]);
    w.leave(alice);
    w.flush_up(); // Left{alice}: bob is designated, his own proposal pending
    w.settle();

    w.assert_call(&[bob]);
    assert_eq!(w.epoch(), epoch + 1, "bob removed alice");
    assert!(w.room().state().proposals().is_empty());
    assert!(!w.member(bob).group().self_update_due(w.now()));
    let carol = w.add_with("carol", DESKTOP, config(600));
    w.join(carol);
    w.settle();
    w.assert_call(&[bob, carol]);
}

/// One network round trip's worth of deliveries, then `d` passes.
fn tick(w: &mut World, d: Duration) {
    w.flush_up();
    w.flush_down();
    w.advance(d);
}

/// Bob's network drops; his app notices first and reconnects with the
/// same identity, while the DS still holds his old connection (it notices
/// after `detect`). Returns the world once the DS has noticed and the room
/// settled, with how many times bob's new key package was refused.
fn reconnect_before_the_ds_notices(detect: Duration) -> (World, [usize; 3], usize) {
    let (mut w, ids) = call(&["alice", "bob", "carol"]);
    let bob = ids[1];
    let old = w.conn(bob);
    let now = w.now();
    w.member_mut(bob).handle_disconnect(now);
    w.join(bob); // a new connection; what the DS sends the old one is lost
    let rtt = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    while waited < detect {
        tick(&mut w, rtt);
        waited += rtt;
    }
    w.disconnect_conn(old);
    w.settle();
    let refused = w.count(|e| matches!(e, Entry::Refused { conn, .. } if *conn == w.conn(bob)));
    (w, [ids[0], ids[1], ids[2]], refused)
}

// 11. A member reconnects with the same identity before the DS has noticed
//     its old connection is gone: it is added once the DS notices.
#[test]
fn reconnect_before_the_ds_notices_converges_once_it_does() {
    let (w, ids, refused) = reconnect_before_the_ds_notices(Duration::from_secs(3));
    w.assert_call(&ids);
    eprintln!("refusals while the old connection lingered: {refused}");
}

#[test]
fn reconnect_before_the_ds_notices_does_not_flood_the_log() {
    // With a 30 s detection delay (a WebSocket ping timeout), the refused
    // key package and its resubmission go round at network speed.
    let (w, ids, refused) = reconnect_before_the_ds_notices(Duration::from_secs(30));
    w.assert_call(&ids);
    assert!(
        refused <= 3,
        "bob's key package was refused {refused} times, {} log entries for one reconnect",
        w.log().len()
    );
}

// 10c. A driver sleeps until `poll_timeout`: after the member has done
//      what a timeout asks, the next timeout must lie in the future, or the
//      driver spins.
#[test]
fn poll_timeout_moves_on_after_a_self_update_is_proposed() {
    let mut w = World::new();
    let config = |secs| SessionConfig {
        self_update_interval: Some(Duration::from_secs(secs)),
        ..SessionConfig::default()
    };
    let alice = w.add_with("alice", DESKTOP, config(600));
    let bob = w.add_with("bob", DESKTOP, config(20));
    for i in [alice, bob] {
        w.join(i);
        w.settle();
    }
    let due = w.member(bob).poll_timeout().unwrap();
    let wait = due.saturating_duration_since(w.now());
    w.advance(wait);
    assert!(matches!(
        w.in_flight_up().first(),
        Some((_, Request::Control(Up::Proposal { .. })))
    ));
    let now = w.now();
    let next = w.member(bob).poll_timeout();
    // The proposal is on its way; handling the timeout again does nothing.
    w.member_mut(bob).handle_timeout(now);
    w.pump(bob);
    assert_eq!(w.in_flight_up().len(), 1, "no second proposal");
    assert!(
        next.is_none_or(|t| t > now),
        "poll_timeout {next:?} is not after now {now:?}: a driver would spin until the commit"
    );
}

/// Carol and dave propose their updates; dave and alice (the committer)
/// leave before anyone commits them. Bob, designated next, commits with
/// both proposals cached, removing dave. Returns the settled world.
fn proposer_leaves_before_its_update_is_committed() -> (World, [usize; 4]) {
    let mut w = World::new();
    let config = |secs| SessionConfig {
        self_update_interval: Some(Duration::from_secs(secs)),
        ..SessionConfig::default()
    };
    let alice = w.add_with("alice", DESKTOP, config(600));
    let bob = w.add_with("bob", DESKTOP, config(600));
    let carol = w.add_with("carol", DESKTOP, config(20));
    let dave = w.add_with("dave", DESKTOP, config(20));
    for i in [alice, bob, carol, dave] {
        w.join(i);
        w.settle();
    }
    w.advance(Duration::from_secs(21)); // carol and dave propose
    w.leave(dave);
    w.leave(alice);
    w.flush_up(); // Proposed{carol}, Proposed{dave}, Left{dave}, Left{alice}
    assert_eq!(w.count(|e| matches!(e, Entry::Proposed { .. })), 2);
    w.settle();
    (w, [alice, bob, carol, dave])
}

// 10d. The group survives an update proposal whose proposer left.
#[test]
fn proposer_leaves_before_its_update_is_committed_and_the_call_recovers() {
    let (w, [_, bob, carol, _]) = proposer_leaves_before_its_update_is_committed();
    w.assert_call(&[bob, carol]);
}

#[test]
fn proposer_leaves_before_its_update_is_committed_and_nobody_forks() {
    let (w, [_, bob, carol, _]) = proposer_leaves_before_its_update_is_committed();
    w.assert_call(&[bob, carol]);
    let rejoins: Vec<&Event> = w
        .events(carol)
        .iter()
        .filter(|e| matches!(e, Event::Rejoining(_)))
        .collect();
    assert!(rejoins.is_empty(), "carol rejoined: {rejoins:?}");
}

/// Everyone in the call is told who came and went with each epoch, by leaf:
/// what a roster shows as "carol joined", "alice left".
#[test]
fn members_are_told_who_joined_and_who_left() {
    let (mut w, ids) = call(&["alice", "bob"]);
    let (alice, bob) = (ids[0], ids[1]);
    let carol = w.add("carol");
    w.join(carol);
    w.settle();
    w.assert_call(&[alice, bob, carol]);
    let carol_leaf = w.member(carol).group().own_index().unwrap();
    let alice_leaf = w.member(alice).group().own_index().unwrap();
    let changes = |w: &World, i: usize| -> Vec<Event> {
        w.events(i)
            .iter()
            .filter(|e| matches!(e, Event::MembersChanged { .. }))
            .cloned()
            .collect()
    };
    let joined = Event::MembersChanged {
        added: vec![carol_leaf],
        removed: vec![],
    };
    assert_eq!(
        changes(&w, bob).last(),
        Some(&joined),
        "bob sees carol come"
    );
    assert_eq!(
        changes(&w, alice).last(),
        Some(&joined),
        "so does her committer"
    );
    assert!(
        changes(&w, carol).is_empty(),
        "carol joined: she is told Joined"
    );

    w.leave(alice);
    w.settle();
    w.assert_call(&[bob, carol]);
    let left = Event::MembersChanged {
        added: vec![],
        removed: vec![alice_leaf],
    };
    assert_eq!(changes(&w, bob).last(), Some(&left), "bob sees alice go");
    assert_eq!(changes(&w, carol), [left], "carol sees alice go");
}

/// The delivery service alone gets a member added: a key package of its
/// own under Bob's name and device. The safety number cannot show it (the
/// members do share one group); the introduction does: everyone who has
/// seen Bob is told his name arrived with a new key, Bob included.
#[test]
fn a_member_the_server_adds_under_a_known_name_is_shown_with_a_new_key() {
    let (mut w, ids) = call(&["alice", "bob"]);
    let (alice, bob) = (ids[0], ids[1]);
    let introduced = |w: &World, i: usize| -> Vec<Introduction> {
        w.events(i)
            .iter()
            .filter_map(|e| match e {
                Event::Introduced(introduction) => Some(introduction.clone()),
                _ => None,
            })
            .collect()
    };
    let info = |i: usize| w.member(i).group().info().clone();
    let (alice_info, bob_info) = (info(alice), info(bob));
    let (alice_key, bob_key) = (
        w.member(alice).group().fingerprint(),
        w.member(bob).group().fingerprint(),
    );
    let leaf = |w: &World, i: usize| w.member(i).group().own_index().unwrap();
    assert_eq!(
        introduced(&w, alice),
        [Introduction {
            leaf: leaf(&w, bob),
            info: bob_info.clone(),
            fingerprint: bob_key,
            trust: Trust::FirstSeen,
        }],
        "alice is told of bob, never seen before"
    );
    assert_eq!(
        introduced(&w, bob),
        [Introduction {
            leaf: leaf(&w, alice),
            info: alice_info,
            fingerprint: alice_key,
            trust: Trust::FirstSeen,
        }],
        "bob, joining, is told of alice"
    );

    let impostor = w.add_raw("impostor");
    let mut forger = session(
        [0x66; 32],
        &bob_info.display_name,
        &bob_info.device_id,
        SessionConfig::default(),
        MemoryStore::default(),
    );
    w.inject(
        impostor,
        Request::Join(Join {
            room: RoomName::new("sim").unwrap(),
            key_package: Blob::copy_from(&forger.key_package().unwrap()).unwrap(),
            capabilities: DESKTOP,
        }),
    );
    w.settle();
    assert_eq!(w.epoch(), 2, "the designated committer added it");
    for (i, previous) in [(alice, bob_key), (bob, bob_key)] {
        let last = introduced(&w, i).pop().unwrap();
        assert_eq!(
            (last.info, last.fingerprint, last.trust),
            (
                bob_info.clone(),
                forger.fingerprint(),
                Trust::NewKey {
                    previous,
                    was_verified: i == bob,
                }
            ),
            "{} is warned",
            w.name(i)
        );
    }
    assert_eq!(
        w.member(alice).group().safety_number(),
        w.member(bob).group().safety_number(),
        "the safety numbers still agree: they show nothing here"
    );
}

/// A log entry to bob is lost on a live connection (a broken or hostile
/// delivery service; TCP itself does not lose one). Without it bob cannot
/// fold anything after it: before, he stayed behind for good, in the group
/// at an old epoch. Now the second entry that comes ahead tells him one
/// is missing; he drops his view and keys, his app joins again on a new
/// connection, and the call has him back.
#[test]
fn a_member_that_misses_a_log_entry_resynchronises_on_a_new_connection() {
    let (mut w, ids) = call(&["alice", "bob", "carol"]);
    let (alice, bob, carol) = (ids[0], ids[1], ids[2]);
    let old_conn = w.conn(bob);
    let epoch = w.epoch();

    let dave = w.add("dave");
    w.join(dave);
    w.flush_up();
    assert!(
        w.lose_down(bob, |d| matches!(
            d,
            Down::Entry {
                entry: Entry::Joined { .. },
                ..
            }
        )),
        "dave's Joined was on its way to bob"
    );
    w.settle();
    assert_eq!(w.epoch(), epoch + 1, "dave was added");
    assert_eq!(
        w.member(bob).group().epoch(),
        Some(epoch),
        "bob could not follow the commit"
    );
    assert!(
        !w.events(bob)
            .iter()
            .any(|e| matches!(e, Event::FellBehind { .. })),
        "one entry ahead may be a forgery: not yet"
    );

    // The next entry shows the gap.
    let erin = w.add("erin");
    w.join(erin);
    w.settle();
    assert!(
        w.events(bob)
            .iter()
            .any(|e| matches!(e, Event::FellBehind { .. })),
        "bob knows he fell behind"
    );
    assert_eq!(w.member(bob).status(), Status::Idle);
    assert_eq!(w.member(bob).group().epoch(), None, "bob dropped his keys");

    // What his app does: a new connection; the old one closes.
    w.join(bob);
    w.disconnect_conn(old_conn);
    w.settle();
    w.assert_call(&[alice, bob, carol, dave, erin]);
    assert_ne!(w.conn(bob), old_conn);
    assert_eq!(
        w.member(alice).group().roster().len(),
        5,
        "bob is in the group once"
    );
}

/// Alice is alone in the call when her app freezes: her connection stays
/// open, so the delivery service cannot tell, and she never commits. Bob
/// joins. Before, `Stalled` entries piled up for as long as she stayed
/// connected (the role had nobody else to go to) and bob waited for good.
/// Now, after the role has passed to her `STALL_ROUNDS` times, she is
/// treated as gone; her group dissolves and bob starts a new one.
#[test]
fn a_lone_silent_member_does_not_keep_joiners_out() {
    let (mut w, ids) = call(&["alice"]);
    let alice = ids[0];
    let alice_conn = w.conn(alice);
    w.crash(alice, false);

    let bob = w.add("bob");
    w.join(bob);
    w.settle();
    let stalls = w.count(|e| *e == Entry::Stalled);
    assert_eq!(
        usize::try_from(satsuma_core::committer::STALL_ROUNDS).unwrap() - 1,
        stalls,
        "the role passed to her that many times, then she was let go"
    );
    assert_eq!(w.count(|e| *e == Entry::Left { conn: alice_conn }), 1);
    assert_eq!(w.member(bob).status(), Status::InGroup);
    assert_eq!(
        w.member(bob).group().roster().len(),
        1,
        "bob is in a group of his own"
    );
    assert!(
        w.room().state().seat_of(alice_conn).is_none(),
        "alice holds no seat"
    );
}
