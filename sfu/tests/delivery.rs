//! The delivery service in the real binary: members over WebSocket and the
//! intercom link share one group and one order; a lost link keeps its seat;
//! intercom media is forwarded untouched and the SFU never sees plaintext.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Peer, RawPeer, Sfu, settled, wait_for};
use satsuma_core::media::Codec;
use satsuma_core::wire::{Blob, ConnId, Entry, ErrorCode, Media, Signal, ToServer, Transport};

/// Every peer saw the same entry at every sequence number it saw.
fn same_order(peers: &[&Peer]) {
    let mut by_seq: BTreeMap<u64, (&str, &Entry)> = BTreeMap::new();
    for p in peers {
        assert!(!p.log.is_empty(), "{} saw no entries", p.name);
        for w in p.log.windows(2) {
            assert_eq!(w[1].0, w[0].0 + 1, "{} saw a gap in the log", p.name);
        }
        for (seq, entry) in &p.log {
            match by_seq.get(seq) {
                Some((who, other)) => {
                    assert_eq!(*other, entry, "{} and {who} differ at {seq}", p.name)
                }
                None => {
                    by_seq.insert(*seq, (&p.name, entry));
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktops_and_an_intercom_share_one_group_and_one_order() {
    let sfu = Sfu::start(&[]);
    let mut alice = Peer::connect(&sfu, "alice", "alpha", Transport::WebRtc).await;
    let mut bob = Peer::connect(&sfu, "bob", "alpha", Transport::WebRtc).await;
    let mut door = Peer::connect(&sfu, "door", "alpha", Transport::Wire).await;
    let mut carol = Peer::connect(&sfu, "carol", "alpha", Transport::WebRtc).await;
    // Another room at the same time, unaffected.
    let mut xavier = Peer::connect(&sfu, "xavier", "beta", Transport::WebRtc).await;
    let mut yvonne = Peer::connect(&sfu, "yvonne", "beta", Transport::WebRtc).await;

    let before = settled(&mut [&mut alice, &mut bob, &mut door, &mut carol], 4, 60).await;
    settled(&mut [&mut xavier, &mut yvonne], 2, 60).await;
    same_order(&[&alice, &bob, &door, &carol]);
    same_order(&[&xavier, &yvonne]);

    // Bob leaves: the committer removes him; the rest agree again.
    bob.client.leave().await.unwrap();
    let epoch = settled(&mut [&mut alice, &mut door, &mut carol], 3, 60).await;
    assert!(
        epoch > before,
        "a removal moves the epoch: {before} -> {epoch}"
    );
    same_order(&[&alice, &bob, &door, &carol]);
    assert!(
        alice
            .log
            .iter()
            .any(|(_, e)| matches!(e, Entry::Left { .. }))
    );

    assert_eq!(sfu.metric("satsuma_rooms").await, 2);
    assert_eq!(sfu.metric("satsuma_members").await, 5);
    let (status, body) = sfu.get("/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_link_resumes_its_seat_without_a_new_epoch() {
    let sfu = Sfu::start(&[("SATSUMA_SFU_ROOMS__RECONNECT_GRACE_MS", "20000")]);
    let mut alice = Peer::connect(&sfu, "alice", "resume", Transport::WebRtc).await;
    let mut door = Peer::connect(&sfu, "door", "resume", Transport::Wire).await;
    let epoch = settled(&mut [&mut alice, &mut door], 2, 60).await;

    door.client.drop_link().await.unwrap();
    alice.client.drop_link().await.unwrap();
    wait_for(&mut [&mut alice, &mut door], 20, "resumes", |p| {
        p.reconnects == [true]
    })
    .await;
    // Nobody left, nobody was re-added: the same epoch, the same safety number.
    assert_eq!(settled(&mut [&mut alice, &mut door], 2, 10).await, epoch);
    assert!(
        !alice
            .log
            .iter()
            .any(|(_, e)| matches!(e, Entry::Left { .. }))
    );

    // The log goes on for both: a third member joins.
    let mut bob = Peer::connect(&sfu, "bob", "resume", Transport::WebRtc).await;
    settled(&mut [&mut alice, &mut door, &mut bob], 3, 60).await;
    same_order(&[&alice, &door, &bob]);
}

/// A desktop was refused something directly (an `Error` outside the log)
/// and then lost its link while the log went on: the resume replays every
/// entry it missed, each exactly once, and it follows the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_after_a_direct_error_replays_every_missed_entry_once() {
    let sfu = Sfu::start(&[("SATSUMA_SFU_ROOMS__RECONNECT_GRACE_MS", "60000")]);
    let mut alice = Peer::connect(&sfu, "alice", "direct", Transport::WebRtc).await;
    settled(&mut [&mut alice], 1, 60).await;
    let mut raw = RawPeer::connect(&sfu, "raw", "direct", Transport::WebRtc).await;
    raw.join().await;
    raw.until("the raw member is added", |r| {
        r.member.group().epoch().is_some() && r.cursor.seat().is_some()
    })
    .await;
    settled(&mut [&mut alice], 2, 60).await;
    // An answer that is no SDP: refused directly, and the link stays open.
    let answer = Blob::copy_from(b"not an answer").unwrap();
    raw.send(&ToServer::Rtc(Signal::Answer(answer))).await;
    raw.until("the direct error", |r| !r.errors.is_empty())
        .await;
    assert_eq!(raw.errors, [ErrorCode::Unexpected]);

    raw.disconnect();
    let seen = raw.seqs.len();
    // Entries are logged while the link is down: bob joins and is added.
    let mut bob = Peer::connect(&sfu, "bob", "direct", Transport::WebRtc).await;
    let epoch = settled(&mut [&mut alice, &mut bob], 3, 60).await;
    let last = alice.log.last().unwrap().0;

    assert_eq!(
        raw.resume(&sfu).await,
        raw.controls,
        "the SFU handled all we sent"
    );
    raw.until("caught up", |r| r.seqs.last() >= Some(&last))
        .await;
    assert!(raw.seqs.len() > seen + 1, "entries were logged meanwhile");
    let first = raw.seqs[0];
    assert_eq!(
        raw.seqs,
        (first..=last).collect::<Vec<_>>(),
        "each entry once, in order"
    );
    let group = raw.member.group();
    let raw_view = (
        group.epoch().unwrap(),
        group.safety_number().unwrap().to_string(),
    );
    assert_eq!(raw_view.0, epoch);
    assert_eq!(Some(raw_view), alice.safety().await);
}

/// A lone member's first control message (the group's creation) is lost
/// with its link: the resume says the SFU never handled it, the member
/// sends it again, and the call starts. Without this it waits forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_message_lost_with_the_link_is_sent_again_on_resume() {
    let sfu = Sfu::start(&[
        ("SATSUMA_SFU_ROOMS__RECONNECT_GRACE_MS", "60000"),
        // No stall timer may stand in for the resend.
        ("SATSUMA_SFU_ROOMS__COMMIT_DEADLINE_MS", "600000"),
    ]);
    let mut door = RawPeer::connect(&sfu, "door", "uplink", Transport::Wire).await;
    door.lose = 1;
    door.join().await;
    door.until("its first control message, lost", |d| {
        d.controls == 1 && d.cursor.seat().is_some()
    })
    .await;
    assert_eq!(door.lose, 0);
    assert_eq!(door.member.group().epoch(), None);

    door.disconnect();
    assert_eq!(door.resume(&sfu).await, 0, "the SFU never saw it");
    door.until("the group exists", |d| d.member.group().epoch().is_some())
        .await;
    // The SFU has counted it now.
    door.disconnect();
    assert_eq!(door.resume(&sfu).await, door.controls);
}

/// A member stops reading while the log goes on (a stalled app, a full
/// network buffer): once its control queue is full the SFU closes the link
/// with `Overloaded`, and keeps the seat. The member resumes and gets every
/// entry it had not read, each exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_whose_control_queue_overflows_is_closed_and_resumes_without_loss() {
    use satsuma_core::wire::{CommitMessage, List, ToClient, Up};
    const COMMITS: usize = 250;
    // A queue of 16 holds everything the door is sent before it is added
    // (hello, resumable, the log so far, its Welcome: fewer than 16), so a
    // door that reads those slowly on a loaded machine is not closed before
    // the test begins; 16 commits of 60 KB are still far below 15 MB.
    let sfu = Sfu::start(&[
        ("SATSUMA_SFU_LIMITS__CONTROL_QUEUE", "16"),
        ("SATSUMA_SFU_LIMITS__CONTROL_BURST", "1000"),
        ("SATSUMA_SFU_ROOMS__RESUME_HISTORY_BYTES", "33554432"),
        ("SATSUMA_SFU_ROOMS__RESUME_ROOM_BYTES", "67108864"),
        ("SATSUMA_SFU_ROOMS__RECONNECT_GRACE_MS", "60000"),
    ]);
    // The busy member commits; the door is added to its group.
    let mut busy = RawPeer::connect(&sfu, "busy", "stuck", Transport::WebRtc).await;
    busy.join().await;
    busy.until("it created the group", |b| {
        b.member.group().epoch() == Some(0)
    })
    .await;
    let mut door = RawPeer::connect(&sfu, "door", "stuck", Transport::Wire).await;
    door.join().await;
    busy.until("it added the door", |b| b.member.group().epoch() == Some(1))
        .await;
    door.until("it is added", |d| {
        d.member.group().epoch() == Some(1) && d.cursor.seat().is_some()
    })
    .await;
    let before = door.seqs.len();
    // The door stops reading. The busy member sends commits of 60 KB (the
    // delivery service cannot tell them from real ones), reading each back:
    // 15 MB, far more than the door's socket buffers and queue of 16 hold.
    // Neither member can follow forged commits: they only count them.
    busy.deaf = true;
    door.deaf = true;
    for epoch in 1..=COMMITS {
        let seen = busy.seqs.len();
        busy.send_control(Up::Commit(CommitMessage {
            epoch: u64::try_from(epoch).unwrap(),
            adds: List::default(),
            removes: List::default(),
            commit: Blob::copy_from(&vec![0x5a; 60_000]).unwrap(),
            welcome: None,
        }))
        .await;
        busy.until("its commit logged", |b| b.seqs.len() > seen)
            .await;
    }
    // The door reads again: what made it into the socket, then the close.
    door.until("the overload", |d| !d.errors.is_empty()).await;
    assert_eq!(door.errors, [ErrorCode::Overloaded]);
    assert!(door.closed().await, "the overloaded link stays open");
    let read = door.seqs.len() - before;
    assert!(
        read < COMMITS,
        "the link was closed before it delivered everything ({read} read)"
    );

    assert_eq!(door.resume(&sfu).await, door.controls);
    // The log goes on before the door has read any of the replay: the
    // replay does not count against its queue.
    let seen = busy.seqs.len();
    busy.send_control(Up::Commit(CommitMessage {
        epoch: u64::try_from(COMMITS).unwrap() + 1,
        adds: List::default(),
        removes: List::default(),
        commit: Blob::copy_from(&[0x5a; 100]).unwrap(),
        welcome: None,
    }))
    .await;
    busy.until("the last commit logged", |b| b.seqs.len() > seen)
        .await;
    let last = *busy.seqs.last().unwrap();
    door.until("every entry", |d| d.seqs.last() >= Some(&last))
        .await;
    // Nothing more comes: a ping is answered with no entry before it.
    door.send(&ToServer::Ping { nonce: 9 }).await;
    loop {
        match door.step().await {
            Some(ToClient::Link(satsuma_core::wire::LinkMsg::Pong { nonce: 9 })) => break,
            Some(_) => {}
            None => panic!("the resumed link closed"),
        }
    }
    let first = door.seqs[0];
    assert_eq!(
        door.seqs,
        (first..=last).collect::<Vec<_>>(),
        "each entry once, in order"
    );
    assert_eq!(
        door.seqs.len(),
        before + COMMITS + 1,
        "one entry per commit"
    );
    assert_eq!(door.errors, [ErrorCode::Overloaded]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_gone_past_the_grace_period_loses_its_seat() {
    let sfu = Sfu::start(&[("SATSUMA_SFU_ROOMS__RECONNECT_GRACE_MS", "300")]);
    let mut alice = Peer::connect(&sfu, "alice", "gone", Transport::WebRtc).await;
    let mut bob = Peer::connect(&sfu, "bob", "gone", Transport::WebRtc).await;
    let mut door = common::RawIntercom::connect(&sfu, "gone").await;
    door.join().await;
    // The intercom is added (it gets the Welcome), then its link dies for good.
    door.wait_for_welcome().await;
    settled(&mut [&mut alice, &mut bob], 3, 60).await;
    drop(door);
    settled(&mut [&mut alice, &mut bob], 2, 60).await;
    assert!(
        alice
            .log
            .iter()
            .any(|(_, e)| matches!(e, Entry::Left { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intercom_media_arrives_untouched_and_the_sfu_never_sees_plaintext() {
    let mut sfu = Sfu::start(&[]);
    let mut alice = Peer::connect(&sfu, "alice", "media", Transport::WebRtc).await;
    let mut door = Peer::connect(&sfu, "door", "media", Transport::Wire).await;
    let mut gate = Peer::connect(&sfu, "gate", "media", Transport::Wire).await;
    settled(&mut [&mut alice, &mut door, &mut gate], 3, 60).await;

    // A known pattern, sealed with the epoch's SFrame key by the sender.
    let pattern: Vec<u8> = b"SATSUMA-PLAINTEXT-PATTERN-"
        .iter()
        .copied()
        .cycle()
        .take(160)
        .collect();
    let mut sent = Vec::new();
    for i in 0..50u16 {
        let sealed = door.client.seal(Codec::Pcmu, &pattern).unwrap();
        sent.push(sealed.clone());
        let media = Media {
            sender: ConnId(999),
            codec: Codec::Pcmu,
            timestamp: u32::from(i) * 160,
            sequence: i,
            payload: Blob::copy_from(&sealed).unwrap(),
        };
        door.client.send_media(media).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for(&mut [&mut gate], 20, "50 frames", |p| p.media.len() == 50).await;
    door.absorb();
    assert!(
        door.media.is_empty(),
        "a sender never gets its own frames back"
    );
    let door_conn = door
        .client
        .with_member(|m| m.conn())
        .await
        .unwrap()
        .unwrap();
    for (i, (got, sealed)) in gate.media.iter().zip(&sent).enumerate() {
        assert_eq!(
            &got.payload[..],
            &sealed[..],
            "frame {i} changed on the way"
        );
        assert_eq!(got.sender, door_conn, "the SFU names the real sender");
        assert_eq!(got.sequence, u16::try_from(i).unwrap());
    }
    // The receiver opens them with its own key.
    let mut opened = Vec::new();
    for m in &gate.media {
        opened.push(gate.client.open(Codec::Pcmu, &m.payload));
    }
    assert!(
        opened
            .iter()
            .all(|o| o.as_ref().is_ok_and(|p| *p == pattern)),
        "{opened:?}"
    );

    let stopped = sfu.stop();
    assert!(
        stopped.is_some_and(|s| s.success()),
        "graceful exit: {stopped:?}"
    );
    let records = Sfu::records(&sfu.capture);
    let needle = &pattern[..16];
    assert!(
        records
            .iter()
            .any(|r| r.windows(sent[0].len()).any(|w| w == sent[0].as_slice())),
        "the capture holds the ciphertext the SFU forwarded"
    );
    for r in &records {
        assert!(
            !r.windows(needle.len()).any(|w| w == needle),
            "plaintext reached the SFU"
        );
    }
}

/// An intercom that stops reading while another sends: the frames its
/// media queue cannot take are dropped and counted, its link stays open,
/// and once it reads again it gets the rest and the call goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_for_an_intercom_that_does_not_read_is_dropped_and_counted() {
    use satsuma_core::wire::ToClient;
    const FLOOD: u16 = 400;
    const SLOW: &str = "satsuma_dropped_total{reason=\"slow_subscriber\"}";
    let sfu = Sfu::start(&[
        ("SATSUMA_SFU_LIMITS__MEDIA_QUEUE", "4"),
        ("SATSUMA_SFU_LIMITS__MEDIA_PER_SECOND", "10000"),
        ("SATSUMA_SFU_LIMITS__MEDIA_BURST", "10000"),
    ]);
    let mut alice = Peer::connect(&sfu, "alice", "slow", Transport::WebRtc).await;
    let mut door = Peer::connect(&sfu, "door", "slow", Transport::Wire).await;
    settled(&mut [&mut alice, &mut door], 2, 60).await;
    let mut gate = RawPeer::connect(&sfu, "gate", "slow", Transport::Wire).await;
    gate.join().await;
    gate.until("it is added", |g| g.member.group().epoch().is_some())
        .await;
    settled(&mut [&mut alice, &mut door], 3, 60).await;
    // Every frame the door sends is 60 KB: 24 MB in all, of which the
    // socket buffers (a few MB) and four queued frames hold only some.
    let before = sfu.metric(SLOW).await;
    let frame = |sequence: u16, payload: &[u8]| Media {
        sender: ConnId(0),
        codec: Codec::Pcmu,
        timestamp: u32::from(sequence) * 160,
        sequence,
        payload: Blob::copy_from(payload).unwrap(),
    };
    let sealed = door.client.seal(Codec::Pcmu, &[0x33; 60_000]).unwrap();
    for i in 0..FLOOD {
        door.client.send_media(frame(i, &sealed)).await.unwrap();
    }
    // The gate reads again; the door sends small markers until one comes
    // through, after the flood on the same link.
    let marker = door.client.seal(Codec::Pcmu, &[0x44; 20]).unwrap();
    let mut flood = Vec::new();
    let mut next_marker = 1000;
    'reading: loop {
        door.client
            .send_media(frame(next_marker, &marker))
            .await
            .unwrap();
        next_marker += 1;
        let read = tokio::time::timeout(Duration::from_millis(100), async {
            loop {
                match gate.step().await {
                    Some(ToClient::Media(m)) if m.sequence >= 1000 => return true,
                    Some(ToClient::Media(m)) => flood.push(m.sequence),
                    Some(_) => {}
                    None => panic!("the slow intercom lost its link"),
                }
            }
        });
        if read.await == Ok(true) {
            break 'reading;
        }
        assert!(next_marker < 1300, "no marker came through");
    }
    let dropped = sfu.metric(SLOW).await - before;
    let got = u64::try_from(flood.len()).unwrap();
    assert!(
        got < u64::from(FLOOD),
        "the gate got the whole flood ({got}): nothing filled its queue"
    );
    assert!(
        dropped >= u64::from(FLOOD) - got,
        "{} frames never reached the gate, {dropped} drops counted",
        u64::from(FLOOD) - got
    );
    assert!(
        flood.windows(2).all(|w| w[0] < w[1]),
        "what arrived is in order, each once: {flood:?}"
    );
    assert!(gate.errors.is_empty(), "{:?}", gate.errors);
    // The call goes on for everyone.
    let mut carol = Peer::connect(&sfu, "carol", "slow", Transport::WebRtc).await;
    settled(&mut [&mut alice, &mut door, &mut carol], 4, 60).await;
    for p in [&alice, &door] {
        assert!(p.reconnects.is_empty() && p.errors.is_empty(), "{}", p.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_every_client() {
    let mut sfu = Sfu::start(&[]);
    let mut alice = Peer::connect(&sfu, "alice", "bye", Transport::WebRtc).await;
    let mut door = Peer::connect(&sfu, "door", "bye", Transport::Wire).await;
    settled(&mut [&mut alice, &mut door], 2, 60).await;
    let status = sfu.stop().expect("the SFU exits by itself on SIGTERM");
    assert!(status.success(), "a graceful shutdown exits 0: {status}");
    wait_for(
        &mut [&mut alice, &mut door],
        10,
        "the shutdown notice",
        |p| p.errors.contains(&ErrorCode::ShuttingDown),
    )
    .await;
}

/// A member alone in its group freezes with its link open (a hung app):
/// the SFU cannot see it is gone, and it never commits. Before, a joiner
/// waited for good while `Stalled` entries piled up. Now, once the role
/// has passed to it `STALL_ROUNDS` times, the SFU lets it go: it is told
/// (`Left` for itself), its link closes, and the joiner starts a new
/// group.
#[tokio::test]
async fn a_lone_member_that_freezes_does_not_keep_a_joiner_out() {
    let sfu = Sfu::start(&[("SATSUMA_SFU_ROOMS__COMMIT_DEADLINE_MS", "300")]);
    let mut frozen = RawPeer::connect(&sfu, "frozen", "frozen", Transport::Wire).await;
    frozen.join().await;
    frozen
        .until("it created the group", |p| {
            p.member.group().epoch() == Some(0)
        })
        .await;
    let own = frozen.member.conn().unwrap();

    // From here on it reads nothing and sends nothing.
    let mut bob = Peer::connect(&sfu, "bob", "frozen", Transport::Wire).await;
    settled(&mut [&mut bob], 1, 30).await;

    // What the frozen member would have read, had it been reading: it was
    // let go, and its link closed.
    let mut told = false;
    while let Some(message) = frozen.step().await {
        if let satsuma_core::wire::ToClient::Control(satsuma_core::wire::Down::Entry {
            entry: Entry::Left { conn },
            ..
        }) = message
        {
            told |= conn == own;
        }
    }
    assert!(told, "the frozen member is told it was let go");
    assert!(
        frozen.errors.contains(&ErrorCode::Closed),
        "and its link is closed: {:?}",
        frozen.errors
    );
    let stalls = bob
        .log
        .iter()
        .filter(|(_, e)| matches!(e, Entry::Stalled))
        .count();
    assert_eq!(
        stalls,
        usize::try_from(satsuma_core::committer::STALL_ROUNDS).unwrap() - 1,
        "the role passed to the frozen member that many times, then it was let go"
    );
}
