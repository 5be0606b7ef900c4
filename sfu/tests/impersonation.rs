//! A member that sends media under another member's SFrame KID, through
//! the real binary. SFrame keys are per group, so such a frame opens at
//! every receiver as the other member's; the SFU knows each connection's
//! leaf and refuses it, on the intercom link and on WebRTC, counting it as
//! `wrong_sender`, while the member's own frames still go through.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Peer, Sfu, settled, wait_for};
use satsuma_core::media::Codec;
use satsuma_core::wire::{Blob, ConnId, Media, Transport};

const WRONG_SENDER: &str = "satsuma_dropped_total{reason=\"wrong_sender\"}";

/// Frames of each kind a test sends.
const N: usize = 10;

fn frame(who: &str, i: usize) -> Vec<u8> {
    let mut f = format!("{who} says {i}: ").into_bytes();
    f.resize(160, b'.');
    f
}

async fn conn(peer: &Peer) -> ConnId {
    peer.client
        .with_member(|m| m.conn())
        .await
        .unwrap()
        .unwrap()
}

/// The leaf a member sits in, as its own view of the log says.
async fn leaf(peer: &Peer) -> u64 {
    peer.client
        .with_member(|m| {
            let me = m.conn()?;
            m.room()?.seat_of(me).map(|(leaf, _)| u64::from(leaf))
        })
        .await
        .unwrap()
        .unwrap()
}

/// The sender a member's key ring names when it opens `sealed` itself.
async fn opened_as(peer: &Peer, codec: Codec, sealed: Vec<u8>) -> u64 {
    let opened = peer.client.receive(codec, &sealed, 0).unwrap();
    opened.last().unwrap().sender
}

fn media(payload: &[u8], i: usize) -> Media {
    let i = u16::try_from(i).unwrap();
    Media {
        sender: ConnId(0),
        codec: Codec::Pcmu,
        timestamp: u32::from(i) * 160,
        sequence: i,
        payload: Blob::copy_from(payload).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intercom_sending_under_another_members_kid_is_refused_and_counted() {
    let sfu = Sfu::start(&[]);
    let mut door = Peer::connect(&sfu, "door", "forge", Transport::Wire).await;
    let mut gate = Peer::connect(&sfu, "gate", "forge", Transport::Wire).await;
    let mut mallory = Peer::connect(&sfu, "mallory", "forge", Transport::Wire).await;
    settled(&mut [&mut door, &mut gate, &mut mallory], 3, 60).await;
    let mallory_conn = conn(&mallory).await;
    let refused_before = sfu.metric(WRONG_SENDER).await;

    // Door seals frames as itself; Mallory sends them on its own link,
    // between frames of its own.
    let mut forged = Vec::new();
    let mut honest = Vec::new();
    for i in 0..N {
        let as_door = door.client.seal(Codec::Pcmu, &frame("door", i)).unwrap();
        mallory
            .client
            .send_media(media(&as_door, 2 * i))
            .await
            .unwrap();
        forged.push(as_door);
        let own = mallory
            .client
            .seal(Codec::Pcmu, &frame("mallory", i))
            .unwrap();
        mallory
            .client
            .send_media(media(&own, 2 * i + 1))
            .await
            .unwrap();
        honest.push(own);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Mallory's own frames arrive, in order on its one link, so every
    // frame sent before the last of them was forwarded or refused by then.
    wait_for(
        &mut [&mut gate, &mut door],
        20,
        "mallory's own frames",
        |p| {
            honest.iter().all(|h| {
                p.media
                    .iter()
                    .any(|m| m.sender == mallory_conn && m.payload[..] == h[..])
            })
        },
    )
    .await;
    for peer in [&gate, &door] {
        let got: Vec<&[u8]> = peer.media.iter().map(|m| &m.payload[..]).collect();
        let as_door = forged.iter().filter(|f| got.contains(&&f[..])).count();
        assert_eq!(as_door, 0, "{} got frames sealed as door", peer.name);
        assert_eq!(got.len(), N, "{} gets mallory's own frames only", peer.name);
    }
    assert_eq!(sfu.metric(WRONG_SENDER).await, refused_before + N as u64);

    // Had they been forwarded, gate would have opened them as door's.
    let door_leaf = leaf(&door).await;
    assert_ne!(door_leaf, leaf(&mallory).await);
    let one = forged[0].clone();
    assert_eq!(opened_as(&gate, Codec::Pcmu, one).await, door_leaf);
    // And mallory's own open as mallory's.
    let own = honest[0].clone();
    assert_eq!(
        opened_as(&gate, Codec::Pcmu, own).await,
        leaf(&mallory).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_sending_under_another_members_kid_is_refused_and_counted() {
    let sfu = Sfu::start(&[]);
    let mut alice = Peer::desktop(&sfu, "alice", "forge", Codec::Opus).await;
    let mut bob = Peer::desktop(&sfu, "bob", "forge", Codec::Opus).await;
    let mut mallory = Peer::desktop(&sfu, "mallory", "forge", Codec::Opus).await;
    settled(&mut [&mut alice, &mut bob, &mut mallory], 3, 60).await;
    let mallory_stream = conn(&mallory).await.0.to_string();

    // Until bob hears mallory: the peer connections are negotiated.
    let heard = |bob: &mut Peer| {
        let mut got = Vec::new();
        if let Some((_, streams)) = &mut bob.rtc {
            while let Ok(r) = streams.media.try_recv() {
                if r.stream_id == mallory_stream {
                    got.push(r.payload.to_vec());
                }
            }
        }
        got
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    loop {
        let probe = mallory
            .client
            .seal(Codec::Opus, &frame("probe", i))
            .unwrap();
        let (rtc, _) = mallory.rtc.as_ref().unwrap();
        rtc.send_audio(&probe, u32::try_from(i).unwrap() * 960)
            .await
            .unwrap();
        for p in [&mut alice, &mut bob, &mut mallory] {
            p.pump().await;
        }
        if !heard(&mut bob).is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob never heard mallory"
        );
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    heard(&mut bob);
    let refused_before = sfu.metric(WRONG_SENDER).await;

    // Alice seals frames as herself; mallory publishes them on its own
    // audio track, between frames of its own.
    let mut forged = Vec::new();
    let mut honest = Vec::new();
    for k in 0..N {
        let ts = u32::try_from(i + 1 + 2 * k).unwrap() * 960;
        let (rtc, _) = mallory.rtc.as_ref().unwrap();
        let as_alice = alice.client.seal(Codec::Opus, &frame("alice", k)).unwrap();
        assert!(rtc.send_audio(&as_alice, ts).await.unwrap());
        forged.push(as_alice);
        let own = mallory
            .client
            .seal(Codec::Opus, &frame("mallory", k))
            .unwrap();
        assert!(rtc.send_audio(&own, ts + 960).await.unwrap());
        honest.push(own);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !honest.iter().all(|h| got.contains(h)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob got {} of mallory's {N} own frames",
            honest.iter().filter(|h| got.contains(*h)).count()
        );
        bob.pump().await;
        got.extend(heard(&mut bob));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Packets on one track are read in order; give stragglers a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    got.extend(heard(&mut bob));
    for f in &forged {
        assert!(!got.contains(f), "a frame sealed as alice reached bob");
    }
    assert_eq!(sfu.metric(WRONG_SENDER).await, refused_before + N as u64);

    // Had it been forwarded, bob would have opened it as alice's.
    let alice_leaf = leaf(&alice).await;
    assert_ne!(alice_leaf, leaf(&mallory).await);
    let one = forged[0].clone();
    assert_eq!(opened_as(&bob, Codec::Opus, one).await, alice_leaf);
}
