//! Real calls through the real binary: desktop members on WebRTC peer
//! connections (the `webrtc` crate) and an intercom on its TCP link, all
//! sending SFrame-sealed media. Every publisher reaches every subscriber
//! byte for byte, across the bridge in both directions, and the SFU's
//! record of every payload it handled holds no plaintext.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{Peer, RawPeer, Sfu, settled};
use satsuma_core::media::Codec;
use satsuma_core::wire::{Blob, ConnId, Media, Transport};

/// What every sender seals: a pattern the SFU must never see.
const PATTERN: &[u8] = b"PLAINTEXT-ONLY-MEMBERS-MAY-READ.";

/// A VP8 key frame's clear header (640x480), then the pattern.
fn vp8_frame(i: u32) -> Vec<u8> {
    let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
    f.extend(PATTERN.iter().cycle().take(600));
    f.extend(i.to_be_bytes());
    f
}

fn audio_frame(i: u32) -> Vec<u8> {
    let mut f: Vec<u8> = PATTERN.iter().copied().cycle().take(160).collect();
    f.extend(i.to_be_bytes());
    f
}

async fn seal(peer: &Peer, codec: Codec, frame: Vec<u8>) -> Vec<u8> {
    peer.client.seal(codec, &frame).unwrap()
}

async fn open(peer: &Peer, codec: Codec, sealed: Vec<u8>) -> Vec<u8> {
    peer.client.open(codec, &sealed).unwrap()
}

/// What one peer received, by publisher connection: audio and video payloads.
#[derive(Default, Debug)]
struct Inbox {
    audio: HashMap<u64, Vec<Vec<u8>>>,
    video: HashMap<u64, Vec<Vec<u8>>>,
}

impl Inbox {
    fn take(&mut self, peer: &mut Peer) {
        if let Some((_, streams)) = &mut peer.rtc {
            while let Ok(r) = streams.media.try_recv() {
                let Ok(conn) = r.stream_id.parse::<u64>() else {
                    continue;
                };
                let by = if r.video {
                    &mut self.video
                } else {
                    &mut self.audio
                };
                // A whole video frame, after its one-packet descriptor.
                let payload = if r.video {
                    r.payload.get(1..).unwrap_or_default()
                } else {
                    &r.payload[..]
                };
                by.entry(conn).or_default().push(payload.to_vec());
            }
        }
        for m in peer.media.drain(..) {
            self.audio
                .entry(m.sender.0)
                .or_default()
                .push(m.payload.to_vec());
        }
    }

    fn has(&self, from: u64, video: bool, payload: &[u8]) -> bool {
        let by = if video { &self.video } else { &self.audio };
        by.get(&from)
            .is_some_and(|v| v.iter().any(|p| p == payload))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_publisher_reaches_every_subscriber_and_the_sfu_sees_only_ciphertext() {
    let mut sfu = Sfu::start(&[]);
    // A room with an intercom: the desktops publish PCMU, which it speaks.
    let mut alice = Peer::desktop(&sfu, "alice", "call", Codec::Pcmu).await;
    let mut bob = Peer::desktop(&sfu, "bob", "call", Codec::Pcmu).await;
    let mut carol = Peer::desktop(&sfu, "carol", "call", Codec::Pcmu).await;
    let mut door = Peer::connect(&sfu, "door", "call", Transport::Wire).await;
    settled(&mut [&mut alice, &mut bob, &mut carol, &mut door], 4, 60).await;

    let mut peers = [alice, bob, carol, door];
    let mut conns = Vec::new();
    for p in &peers {
        conns.push(p.client.with_member(|m| m.conn()).await.unwrap().unwrap().0);
    }
    let mut inboxes: Vec<Inbox> = (0..4).map(|_| Inbox::default()).collect();

    // Warm up until every peer hears every other one (renegotiation done).
    let ready = |inboxes: &[Inbox]| {
        (0..4).all(|r| {
            (0..4).filter(|&s| s != r).all(|s| {
                let audio = inboxes[r].audio.contains_key(&conns[s]);
                let video = s == 3 || r == 3 || inboxes[r].video.contains_key(&conns[s]);
                audio && video
            })
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut i = 0u32;
    while !ready(&inboxes) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "media never flowed: {:?}",
            summary(&inboxes)
        );
        send_round(&mut peers, &conns, i, None).await;
        for (p, inbox) in peers.iter_mut().zip(&mut inboxes) {
            p.pump().await;
            inbox.take(p);
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Now every frame counts: 40 rounds, each peer's sealed frames recorded.
    let mut sent: Vec<Sent> = Vec::new();
    let rounds = i..i + 40;
    for round in 0..40 {
        send_round(&mut peers, &conns, i + round, Some(&mut sent)).await;
        for (p, inbox) in peers.iter_mut().zip(&mut inboxes) {
            p.pump().await;
            inbox.take(p);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let missing = |inboxes: &[Inbox]| -> Vec<(usize, usize, bool)> {
        let mut out = Vec::new();
        for (from, video, _, payload) in &sent {
            for (to, inbox) in inboxes.iter().enumerate() {
                // Video never goes to the intercom; nothing returns to its sender.
                if to == *from || (*video && to == 3) {
                    continue;
                }
                if !inbox.has(conns[*from], *video, payload) {
                    out.push((*from, to, *video));
                }
            }
        }
        out
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        for (p, inbox) in peers.iter_mut().zip(&mut inboxes) {
            p.pump().await;
            inbox.take(p);
        }
        let m = missing(&inboxes);
        if m.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} frames (from, to, video) never arrived: {:?}",
            m.len(),
            &m[..m.len().min(20)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every peer sent each kind in every round it was due: lost audio
    // cannot be made up for by video, nor one peer's by another's.
    let video_rounds = rounds.clone().filter(|r| r.is_multiple_of(3)).count();
    for n in 0..4 {
        let count = |video: bool| {
            sent.iter()
                .filter(|(from, v, _, _)| *from == n && *v == video)
                .count()
        };
        assert_eq!(count(false), rounds.len(), "peer {n}'s audio frames");
        let video = if n == 3 { 0 } else { video_rounds };
        assert_eq!(count(true), video, "peer {n}'s video frames");
    }
    // Nothing came back to its own sender.
    for (r, inbox) in inboxes.iter().enumerate() {
        assert!(!inbox.audio.contains_key(&conns[r]) && !inbox.video.contains_key(&conns[r]));
    }

    // Members open what they received: the SFU forwarded real SFrame frames.
    // Each receiver opens what it got to exactly the frame that was sealed.
    let (_, _, round, sealed) = sent
        .iter()
        .find(|(f, v, _, _)| *f == 1 && !*v)
        .unwrap()
        .clone();
    for receiver in [0, 3] {
        assert_eq!(
            open(&peers[receiver], Codec::Pcmu, sealed.clone()).await,
            audio_frame(round),
            "peer {receiver} opens Bob's audio"
        );
    }
    let (_, _, round, video) = sent
        .iter()
        .find(|(f, v, _, _)| *f == 2 && *v)
        .unwrap()
        .clone();
    assert_eq!(open(&peers[0], Codec::Vp8, video).await, vp8_frame(round));

    let stopped = sfu.stop();
    assert!(
        stopped.is_some_and(|s| s.success()),
        "graceful exit: {stopped:?}"
    );
    let records = Sfu::records(&sfu.capture);
    let everything: Vec<u8> = records.concat();
    let needle = &PATTERN[..12];
    assert!(
        !everything.windows(needle.len()).any(|w| w == needle),
        "plaintext reached the SFU"
    );
    let seen: HashSet<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let forwarded = sent
        .iter()
        .filter(|(_, _, _, p)| {
            seen.contains(p.as_slice()) || everything.windows(p.len()).any(|w| w == p.as_slice())
        })
        .count();
    assert_eq!(
        forwarded,
        sent.len(),
        "the capture holds every ciphertext the SFU handled"
    );
}

fn summary(inboxes: &[Inbox]) -> Vec<(Vec<u64>, Vec<u64>)> {
    inboxes
        .iter()
        .map(|i| {
            (
                i.audio.keys().copied().collect(),
                i.video.keys().copied().collect(),
            )
        })
        .collect()
}

/// A frame that was sent: the sender's index, whether it is video, the
/// round it was sealed in, and the sealed bytes.
type Sent = (usize, bool, u32, Vec<u8>);

/// One 20 ms round: every desktop sends an audio frame (and a video frame
/// every third round), the intercom an audio frame. With `sent`, every
/// frame counts: one that could not be sent fails the test, and each is
/// recorded to be required at every receiver. Without it (the warm-up,
/// while tracks are still being negotiated) a frame may be dropped.
async fn send_round(
    peers: &mut [Peer; 4],
    conns: &[u64],
    i: u32,
    mut sent: Option<&mut Vec<Sent>>,
) {
    let counted = sent.is_some();
    for (n, peer) in peers.iter().enumerate() {
        let audio = seal(peer, Codec::Pcmu, audio_frame(i)).await;
        let ok = if let Some((rtc, _)) = &peer.rtc {
            rtc.send_audio(&audio, i * 160).await.unwrap()
        } else {
            let media = Media {
                sender: ConnId(conns[n]),
                codec: Codec::Pcmu,
                timestamp: i * 160,
                sequence: u16::try_from(i % 65_536).unwrap(),
                payload: Blob::copy_from(&audio).unwrap(),
            };
            peer.client.send_media(media).await.is_ok()
        };
        assert!(ok || !counted, "peer {n} could not send audio in round {i}");
        if let Some(sent) = sent.as_deref_mut() {
            sent.push((n, false, i, audio));
        }
        if i.is_multiple_of(3)
            && let Some((rtc, _)) = &peer.rtc
        {
            let video = seal(peer, Codec::Vp8, vp8_frame(i)).await;
            let ok = rtc.send_video_frame(&video, i * 3000).await.unwrap();
            assert!(ok || !counted, "peer {n} could not send video in round {i}");
            if let Some(sent) = sent.as_deref_mut() {
                sent.push((n, true, i, video));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_whose_signalling_link_drops_keeps_its_call() {
    let sfu = Sfu::start(&[]);
    let mut alice = Peer::desktop(&sfu, "alice", "blip", Codec::Opus).await;
    let mut bob = Peer::desktop(&sfu, "bob", "blip", Codec::Opus).await;
    let epoch = settled(&mut [&mut alice, &mut bob], 2, 60).await;

    // The WebSocket drops; the peer connection does not depend on it.
    alice.client.drop_link().await.unwrap();
    common::wait_for(&mut [&mut alice], 20, "a resume", |p| {
        p.reconnects == [true]
    })
    .await;
    assert_eq!(settled(&mut [&mut alice, &mut bob], 2, 20).await, epoch);

    // Carol joins: Alice's peer connection is renegotiated over the new
    // link, and Alice hears Carol.
    let mut carol = Peer::desktop(&sfu, "carol", "blip", Codec::Opus).await;
    settled(&mut [&mut alice, &mut bob, &mut carol], 3, 60).await;
    let carol_conn = carol
        .client
        .with_member(|m| m.conn())
        .await
        .unwrap()
        .unwrap()
        .0;
    let mut inbox = Inbox::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    while !inbox.audio.contains_key(&carol_conn) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Alice never heard Carol: {:?}",
            summary(std::slice::from_ref(&inbox))
        );
        let frame = seal(&carol, Codec::Opus, audio_frame(i)).await;
        let (rtc, _) = carol.rtc.as_ref().unwrap();
        rtc.send_audio(&frame, i * 960).await.unwrap();
        for p in [&mut alice, &mut bob, &mut carol] {
            p.pump().await;
        }
        inbox.take(&mut alice);
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let heard = inbox.audio[&carol_conn][0].clone();
    assert!(open(&alice, Codec::Opus, heard).await.starts_with(PATTERN));
}

/// Sends `speaker`'s audio until `listener` hears a frame sealed from now
/// on, and opens it.
async fn hears(listener: &mut Peer, speaker: &mut Peer, what: &str) {
    let conn = speaker
        .client
        .with_member(|m| m.conn())
        .await
        .unwrap()
        .unwrap()
        .0;
    let mut inbox = Inbox::default();
    let mut sent = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for i in 0.. {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {} never heard {}",
            listener.name,
            speaker.name
        );
        let frame = seal(speaker, Codec::Opus, audio_frame(i)).await;
        let (rtc, _) = speaker.rtc.as_ref().unwrap();
        rtc.send_audio(&frame, i * 960).await.unwrap();
        sent.push(frame);
        listener.pump().await;
        speaker.pump().await;
        inbox.take(listener);
        if let Some(heard) = sent.iter().find(|f| inbox.has(conn, false, f)) {
            assert!(
                open(listener, Codec::Opus, heard.clone())
                    .await
                    .starts_with(PATTERN)
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The host candidates (address and port) in an SDP.
fn candidates(sdp: &str) -> Vec<std::net::SocketAddr> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .filter(|l| l.contains(" udp ") || l.contains(" UDP "))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some(std::net::SocketAddr::new(
                f.get(4)?.parse().ok()?,
                f.get(5)?.parse().ok()?,
            ))
        })
        .collect()
}

/// A seated desktop sends malformed answers to real offers (each on its
/// own connection, so each meets an offer outstanding), and datagrams of
/// garbage go to every media port the SFU offered. Each bad answer gets a
/// typed error on the link that sent it, which stays open; the SFU stays
/// up; the call next to it hears both ways, undisturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_and_garbage_datagrams_do_not_disturb_the_call() {
    use satsuma_core::wire::{ErrorCode, LinkMsg, Signal, ToClient, ToServer};
    let mut sfu = Sfu::start(&[]);
    let mut alice = Peer::desktop(&sfu, "alice", "junk", Codec::Opus).await;
    let mut bob = Peer::desktop(&sfu, "bob", "junk", Codec::Opus).await;
    settled(&mut [&mut alice, &mut bob], 2, 60).await;
    hears(&mut alice, &mut bob, "before").await;
    hears(&mut bob, &mut alice, "before").await;
    let rtc_errors = "satsuma_errors_total{kind=\"rtc\"}";
    let before = sfu.metric(rtc_errors).await;

    type Bad = fn(&str) -> Vec<u8>;
    let cases: [(&str, Bad, Option<ErrorCode>); 5] = [
        (
            // Cut inside the first media line: a third of the answer could
            // end on a line boundary that webrtc-rs accepts.
            "truncated",
            |a| {
                let cut = a.find("\nm=").map_or(a.len() / 3, |i| i + 4);
                a.as_bytes()[..cut].to_vec()
            },
            Some(ErrorCode::Unexpected),
        ),
        (
            "binary junk",
            |_| (0..4096u32).map(|i| (i * 167).to_le_bytes()[0]).collect(),
            Some(ErrorCode::Unexpected),
        ),
        // Taken as it is: the fingerprint is checked by the DTLS handshake,
        // which this peer never starts.
        (
            "a wrong fingerprint",
            |a| {
                a.lines()
                    .map(|l| match l.strip_prefix("a=fingerprint:sha-256 ") {
                        Some(hash) => format!(
                            "a=fingerprint:sha-256 {}",
                            hash.replace(|c: char| c.is_ascii_hexdigit(), "0")
                        ),
                        None => l.to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("\r\n")
                    .into_bytes()
            },
            None,
        ),
        (
            "no ice-ufrag",
            |a| {
                a.lines()
                    .filter(|l| !l.starts_with("a=ice-ufrag"))
                    .collect::<Vec<_>>()
                    .join("\r\n")
                    .into_bytes()
            },
            Some(ErrorCode::Unexpected),
        ),
        (
            "32 KiB of junk",
            |_| {
                b"a=junk:0123456789abcdef\r\n"
                    .iter()
                    .copied()
                    .cycle()
                    .take(satsuma_core::wire::limits::SDP)
                    .collect()
            },
            Some(ErrorCode::Unexpected),
        ),
    ];
    let mut ports = candidates(alice.offered.last().unwrap());
    ports.extend(candidates(bob.offered.last().unwrap()));
    let mut raws = Vec::new();
    for (n, (case, bad, expected)) in cases.into_iter().enumerate() {
        let mut raw = RawPeer::connect(&sfu, &format!("junk{n}"), "junk", Transport::WebRtc).await;
        raw.join().await;
        let offer = loop {
            match raw.step().await {
                Some(ToClient::Rtc(Signal::Offer(sdp))) => {
                    break String::from_utf8(sdp.to_vec()).unwrap();
                }
                Some(_) => {}
                None => panic!("{case}: no offer"),
            }
        };
        ports.extend(candidates(&offer));
        let (client, _streams) = satsuma_client::rtc::RtcClient::new(&Default::default())
            .await
            .unwrap();
        let real = client.handle_offer(&offer).await.unwrap();
        client.close().await;
        let answer = bad(&real);
        assert_ne!(answer, real.as_bytes(), "{case}");
        raw.send(&ToServer::Rtc(Signal::Answer(
            Blob::copy_from(&answer).unwrap(),
        )))
        .await;
        raw.send(&ToServer::Ping { nonce: 7 }).await;
        loop {
            match raw.step().await {
                Some(ToClient::Link(LinkMsg::Pong { nonce: 7 })) => break,
                Some(_) => {}
                None => panic!("{case}: the link was closed"),
            }
        }
        // The answer is applied off the link's loop: its refusal may come
        // after the pong (step gives up after 10 s of silence).
        while expected.is_some() && raw.errors.is_empty() {
            if raw.step().await.is_none() {
                break;
            }
        }
        assert_eq!(
            raw.errors.first().copied(),
            expected,
            "{case}: {:?}",
            raw.errors
        );
        raws.push(raw);
    }
    ports.sort();
    ports.dedup();
    // The room lives on one shard: every peer connection in it shares the
    // shard's one socket.
    assert_eq!(ports.len(), 1, "the offers name one media port: {ports:?}");

    // Garbage at every media port the SFU offered, from an address no
    // peer connection knows: RTP, RTCP, STUN, DTLS look-alikes and noise.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut datagrams: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x80],
        [
            &[0x80, 0x6f, 0, 1, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef][..],
            &[0x5a; 200],
        ]
        .concat(),
        vec![0x81, 0xc8, 0xff, 0xff, 1, 2, 3, 4],
        vec![0x8f, 0xce, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        [
            &[0, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42][..],
            &[9; 12],
            &[0, 6, 0, 0xff, 1, 2, 3, 4],
        ]
        .concat(),
        [&[0x16, 0xfe, 0xfd][..], &[0xff; 100]].concat(),
        (0..1400u32).map(|i| (i * 31).to_le_bytes()[0]).collect(),
    ];
    datagrams.extend((0..64u8).map(|i| vec![0x80 | (i & 0x3f), i, i, i]));
    for port in &ports {
        for d in &datagrams {
            let _ = udp.send_to(d, port).await;
        }
    }

    // Every refusal was counted (so are offers the SFU could not make
    // later for a peer connection a bad answer left half set up), the
    // server is up, and the call goes on.
    let refused = raws.iter().map(|r| r.errors.len()).sum::<usize>();
    assert_eq!(refused, 4, "one error per refused answer");
    let counted = sfu.metric(rtc_errors).await - before;
    assert!(counted >= 4, "{counted} WebRTC errors counted");
    let (status, _) = sfu.get("/healthz").await;
    assert_eq!(status, 200);
    hears(&mut alice, &mut bob, "after").await;
    hears(&mut bob, &mut alice, "after").await;
    for p in [&alice, &bob] {
        assert!(
            p.errors.is_empty() && p.reconnects.is_empty(),
            "{}: {:?}",
            p.name,
            p.errors
        );
    }
    let stopped = sfu.stop();
    assert!(
        stopped.is_some_and(|s| s.success()),
        "graceful exit: {stopped:?}"
    );
}
