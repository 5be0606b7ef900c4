//! The WebRTC media plane in process: an `RtcRoom` and real `RtcClient`
//! peers over loopback UDP, with a test outbox that carries offers and
//! answers and collects what goes to intercoms.

// Test code: every unwrap is on the test's own loopback peers, locks and
// payloads; a failure is the test failing, never outside input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use satsuma_client::rtc::{ClientSettings, ClientStreams, Feedback, Received, RtcClient};
use satsuma_core::committer::Senders;
use satsuma_core::media::{Codec, FRAME_END, FRAME_START};
use satsuma_core::sframe::Header;
use satsuma_core::wire::{Blob, ConnId, Media, Signal, Transport};
use satsuma_sfu::RtcSettings;
use satsuma_sfu::metrics::{DropReason, ErrorKind, Metrics};
use satsuma_sfu::testing::{Outbox, Rtc, RtcRoom, Tap};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};

const WAIT: Duration = Duration::from_secs(20);

/// Delivers offers to the right client (through the pump task) and keeps
/// the intercom-bound frames.
struct TestOutbox {
    signals: mpsc::UnboundedSender<(ConnId, Signal)>,
    wire: Mutex<Vec<Media>>,
    offers: Mutex<HashMap<ConnId, String>>,
    /// Offers made to each connection.
    offered: Mutex<HashMap<ConnId, usize>>,
    /// Connections whose next offer is lost on its way.
    lose: Mutex<HashSet<ConnId>>,
}

impl Outbox for TestOutbox {
    fn signal(&self, conn: ConnId, signal: Signal) {
        if let Signal::Offer(sdp) = &signal {
            let text = String::from_utf8(sdp.to_vec()).unwrap();
            self.offers.lock().unwrap().insert(conn, text);
            *self.offered.lock().unwrap().entry(conn).or_default() += 1;
            if self.lose.lock().unwrap().remove(&conn) {
                return;
            }
        }
        let _ = self.signals.send((conn, signal));
    }

    fn wire_media(&self, media: Media) {
        self.wire.lock().unwrap().push(media);
    }
}

type Clients = Arc<Mutex<HashMap<ConnId, Arc<RtcClient>>>>;

struct Harness {
    room: Arc<RtcRoom>,
    metrics: Arc<Metrics>,
    tap: Arc<Tap>,
    tap_path: std::path::PathBuf,
    outbox: Arc<TestOutbox>,
    clients: Clients,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new(settings: RtcSettings) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let tap_path = dir.path().join("tap");
        let tap = Arc::new(Tap::to_file(&tap_path).unwrap());
        let metrics = Arc::new(Metrics::default());
        let rtc = Rtc::new(&settings, Arc::clone(&metrics), Arc::clone(&tap)).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let outbox = Arc::new(TestOutbox {
            signals: tx,
            wire: Mutex::new(Vec::new()),
            offers: Mutex::new(HashMap::new()),
            offered: Mutex::new(HashMap::new()),
            lose: Mutex::new(HashSet::new()),
        });
        let room = rtc.room(Arc::clone(&outbox) as Arc<dyn Outbox>);
        room.set_senders(Arc::new(senders()));
        let clients: Clients = Arc::default();
        // The signalling pump: offers to clients, answers back to the room.
        let pump_room = Arc::clone(&room);
        let pump_clients = Arc::clone(&clients);
        tokio::spawn(async move {
            while let Some((conn, signal)) = rx.recv().await {
                let Signal::Offer(sdp) = signal else { continue };
                let client = pump_clients.lock().unwrap().get(&conn).cloned();
                let Some(client) = client else { continue };
                let sdp = String::from_utf8(sdp.to_vec()).unwrap();
                match client.handle_offer(&sdp).await {
                    Ok(answer) => {
                        let answer = Signal::Answer(Blob::copy_from(answer.as_bytes()).unwrap());
                        if let Err(e) = pump_room.handle_signal(conn, answer).await {
                            eprintln!("answer from {conn} refused: {e}");
                        }
                    }
                    Err(e) => eprintln!("{conn} could not answer: {e}"),
                }
            }
        });
        Self {
            room,
            metrics,
            tap,
            tap_path,
            outbox,
            clients,
            _dir: dir,
        }
    }

    async fn join(&self, conn: u64, audio_codec: Codec) -> (Arc<RtcClient>, ClientStreams) {
        let settings = ClientSettings {
            audio_codec,
            ..ClientSettings::default()
        };
        let (client, streams) = RtcClient::new(&settings).await.unwrap();
        self.clients
            .lock()
            .unwrap()
            .insert(ConnId(conn), Arc::clone(&client));
        self.room.add_peer(ConnId(conn)).await.unwrap();
        (client, streams)
    }

    fn latest_offer(&self, conn: u64) -> String {
        self.outbox
            .offers
            .lock()
            .unwrap()
            .get(&ConnId(conn))
            .cloned()
            .unwrap_or_default()
    }
}

fn settings() -> RtcSettings {
    RtcSettings {
        recover_after_ms: 1000,
        ..RtcSettings::default()
    }
}

fn webrtc(conns: &[u64]) -> Vec<(ConnId, Transport)> {
    conns
        .iter()
        .map(|&c| (ConnId(c), Transport::WebRtc))
        .collect()
}

/// Who may send under which KID, as a log would say: in epoch 0 of a
/// 16-leaf tree, connection `c` sits in leaf `c`, so `S` = 4 and its KID is
/// `c << 4`. Membership (what is forwarded at all) is set apart, with
/// `set_members`.
fn senders() -> Senders {
    let mut senders = Senders::new();
    senders.install(0, (0..16).map(|c| Some(ConnId(c))));
    senders
}

/// The protected-frame layout's start for a packet from `conn` whose KID
/// names `leaf`: for video the clear-prefix length byte (0), then the
/// SFrame header (counter 0, so two bytes).
fn sframe_prefix(leaf: u64, video: bool) -> Vec<u8> {
    let mut p = if video { vec![0] } else { Vec::new() };
    let mut header = [0u8; 17];
    let n = Header::new(leaf << 4, 0).emit(&mut header).unwrap();
    p.extend_from_slice(&header[..n]);
    p
}

/// A payload that says who sent it and which packet it is, padded with
/// bytes that look like ciphertext, behind an SFrame header whose KID
/// names its sender.
fn payload(conn: u64, video: bool, phase: &str, i: u32) -> Vec<u8> {
    let mut p = sframe_prefix(conn, video);
    p.extend(format!("{conn}/{}/{phase}/{i}/", if video { "v" } else { "a" }).bytes());
    p.extend((0..40u8).map(|b| b.wrapping_mul(37).wrapping_add(i.to_le_bytes()[0])));
    p
}

/// A packet's frame: a one-packet video frame starts with its descriptor.
fn body(payload: &[u8]) -> &[u8] {
    match payload.split_first() {
        Some((&d, rest)) if d == FRAME_START | FRAME_END => rest,
        _ => payload,
    }
}

/// What a payload says, behind its SFrame prefix.
fn said(payload: &[u8]) -> &[u8] {
    let payload = body(payload);
    // A video prefix starts with its length byte 0, an audio one with the
    // header's config byte, which is not 0 for a KID of 16 or more.
    let skip = if payload.first() == Some(&0) { 3 } else { 2 };
    payload.get(skip..).unwrap_or_default()
}

/// Every publisher in `publishers` sends one audio and one video packet.
async fn send_round(publishers: &[(u64, &Arc<RtcClient>)], phase: &str, i: u32) {
    for (conn, client) in publishers {
        client
            .send_audio(&payload(*conn, false, phase, i), i * 960)
            .await
            .unwrap();
        client
            .send_video_frame(&payload(*conn, true, phase, i), i * 3000)
            .await
            .unwrap();
    }
}

/// Drains whatever `streams` holds now.
fn drain(streams: &mut ClientStreams) -> Vec<Received> {
    let mut out = Vec::new();
    while let Ok(r) = streams.media.try_recv() {
        out.push(r);
    }
    out
}

/// Sends warm-up rounds until every client has received audio and video
/// from every other publisher.
async fn warm_up(publishers: &[(u64, &Arc<RtcClient>)], streams: &mut [&mut ClientStreams]) {
    let mut seen: Vec<HashSet<(String, bool)>> = vec![HashSet::new(); streams.len()];
    let deadline = Instant::now() + WAIT;
    let mut i = 0;
    loop {
        send_round(publishers, "warm", i).await;
        i += 1;
        sleep(Duration::from_millis(20)).await;
        for (k, s) in streams.iter_mut().enumerate() {
            for r in drain(s) {
                seen[k].insert((r.stream_id.clone(), r.video));
            }
        }
        let done = seen.iter().enumerate().all(|(k, set)| {
            publishers
                .iter()
                .filter(|(_, c)| k >= publishers.len() || !Arc::ptr_eq(c, publishers[k].1))
                .all(|(conn, _)| {
                    set.contains(&(conn.to_string(), false))
                        && set.contains(&(conn.to_string(), true))
                })
        });
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "warm-up timed out; seen {seen:?}"
        );
    }
}

/// Collects packets until `done` says so; fails the test, saying what it
/// waited for, if the wait runs out or the stream ends first.
async fn collect_until(
    streams: &mut ClientStreams,
    what: &str,
    mut done: impl FnMut(&[Received]) -> bool,
) -> Vec<Received> {
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        if done(&got) {
            return got;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, streams.media.recv()).await {
            Ok(Some(r)) => got.push(r),
            Ok(None) => panic!("the stream ended before {what} ({} packets)", got.len()),
            Err(_) => panic!("timed out waiting for {what} ({} packets)", got.len()),
        }
    }
}

fn tap_records(h: &Harness) -> HashSet<Vec<u8>> {
    h.tap.flush();
    let bytes = std::fs::read(&h.tap_path).unwrap();
    let mut records = HashSet::new();
    let mut rest = &bytes[..];
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let record = &rest[4..4 + len];
        records.insert(record.to_vec());
        rest = &rest[4 + len..];
    }
    records
}

/// Whether `sdp` has an m-section that sends the track with stream id
/// `stream`.
fn sends_stream(sdp: &str, stream: u64) -> bool {
    sdp.split("\r\nm=").any(|section| {
        section.contains(&format!("a=msid:{stream} "))
            && (section.contains("a=sendonly") || section.contains("a=sendrecv"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_get_each_others_media_byte_for_byte_and_the_tap_saw_it() {
    let h = Harness::new(settings()).await;
    let (a, mut sa) = h.join(1, Codec::Opus).await;
    let (b, mut sb) = h.join(2, Codec::Opus).await;
    let (c, mut sc) = h.join(3, Codec::Pcmu).await;
    h.room.set_members(webrtc(&[1, 2, 3])).await;
    let publishers = [(1, &a), (2, &b), (3, &c)];
    warm_up(&publishers, &mut [&mut sa, &mut sb, &mut sc]).await;
    for s in [&mut sa, &mut sb, &mut sc] {
        drain(s);
    }

    const N: u32 = 25;
    for i in 0..N {
        send_round(&publishers, "main", i).await;
        sleep(Duration::from_millis(5)).await;
    }
    let mut sent = HashSet::new();
    for conn in [1, 2, 3] {
        for i in 0..N {
            for video in [false, true] {
                sent.insert(payload(conn, video, "main", i));
            }
        }
    }
    for (me, streams) in [(1u64, &mut sa), (2, &mut sb), (3, &mut sc)] {
        let expected: HashSet<Vec<u8>> = sent
            .iter()
            .filter(|p| !said(p).starts_with(format!("{me}/").as_bytes()))
            .cloned()
            .collect();
        let got = collect_until(streams, "every other member's main round", |got| {
            let main: HashSet<_> = got
                .iter()
                .filter(|r| r.payload.windows(6).any(|w| w == b"/main/"))
                .map(|r| body(&r.payload).to_vec())
                .collect();
            main.len() >= expected.len()
        })
        .await;
        let main: Vec<&Received> = got
            .iter()
            .filter(|r| r.payload.windows(6).any(|w| w == b"/main/"))
            .collect();
        let payloads: HashSet<Vec<u8>> = main.iter().map(|r| body(&r.payload).to_vec()).collect();
        assert_eq!(
            payloads, expected,
            "member {me} got the wrong set of payloads"
        );
        for r in &main {
            // The stream id names the publisher; the payload says who sent it.
            assert!(said(&r.payload).starts_with(format!("{}/", r.stream_id).as_bytes()));
            assert_ne!(r.stream_id, me.to_string(), "{me} got its own media");
            let video = r.payload.windows(3).any(|w| w == b"/v/");
            assert_eq!(r.video, video);
            let expected_codec = match (video, r.stream_id.as_str()) {
                (true, _) => Codec::Vp8,
                (false, "3") => Codec::Pcmu,
                (false, _) => Codec::Opus,
            };
            assert_eq!(
                r.codec,
                Some(expected_codec),
                "a forwarded track keeps its codec"
            );
        }
    }

    eprintln!(
        "offer with 6 media sections: {} bytes",
        h.latest_offer(1).len()
    );
    // The tap holds every payload the SFU read, and nothing is missing.
    let records = tap_records(&h);
    for p in &sent {
        assert!(
            records.iter().any(|r| body(r) == p),
            "the tap missed a payload"
        );
    }
    // Everyone was a member before anyone sent: nothing was taken for a
    // stranger's media.
    assert_eq!(
        h.metrics.drops(DropReason::NotMember),
        0,
        "a member's media was dropped as a stranger's"
    );
    h.room.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_member_gets_tracks_removed_member_and_lobby_get_nothing() {
    let h = Harness::new(settings()).await;
    let (a, mut sa) = h.join(1, Codec::Opus).await;
    let (b, mut sb) = h.join(2, Codec::Opus).await;
    let (lobby, mut sl) = h.join(9, Codec::Opus).await;
    h.room.set_members(webrtc(&[1, 2])).await;
    warm_up(&[(1, &a), (2, &b)], &mut [&mut sa, &mut sb]).await;

    // A member added later gets the existing tracks, and they get its.
    let (c, mut sc) = h.join(3, Codec::Opus).await;
    h.room.set_members(webrtc(&[1, 2, 3])).await;
    warm_up(
        &[(1, &a), (2, &b), (3, &c)],
        &mut [&mut sa, &mut sb, &mut sc],
    )
    .await;
    assert!(sends_stream(&h.latest_offer(3), 1));
    assert!(sends_stream(&h.latest_offer(3), 2));

    // The lobby connection published all along and got nothing. (It
    // sends until the SFU has seen some of it: on a loaded machine its
    // peer connection may still be connecting.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    while h.metrics.drops(DropReason::NotMember) == 0 && Instant::now() < deadline {
        send_round(&[(9, &lobby)], "lobby", i).await;
        i += 1;
        sleep(Duration::from_millis(10)).await;
    }
    let not_member = h.metrics.drops(DropReason::NotMember);
    assert!(
        not_member > 0,
        "the lobby's media is dropped as not a member"
    );

    // B leaves the group: its tracks go away and it gets nothing more.
    h.room.set_members(webrtc(&[1, 3])).await;
    let deadline = Instant::now() + WAIT;
    while sends_stream(&h.latest_offer(1), 2) || sends_stream(&h.latest_offer(3), 2) {
        assert!(Instant::now() < deadline, "B's tracks were not removed");
        sleep(Duration::from_millis(20)).await;
    }
    sleep(Duration::from_millis(200)).await;
    for s in [&mut sa, &mut sb, &mut sc] {
        drain(s);
    }
    for i in 0..20 {
        send_round(&[(1, &a), (2, &b), (3, &c), (9, &lobby)], "after", i).await;
        sleep(Duration::from_millis(10)).await;
    }
    // A and C still hear each other.
    let got_a = collect_until(&mut sa, "A hearing C after the change", |got| {
        got.iter()
            .any(|r| said(&r.payload).starts_with(b"3/v/after/"))
    })
    .await;
    let got_c = collect_until(&mut sc, "C hearing A after the change", |got| {
        got.iter()
            .any(|r| said(&r.payload).starts_with(b"1/v/after/"))
    })
    .await;
    sleep(Duration::from_millis(300)).await;
    let got_a: Vec<_> = got_a.into_iter().chain(drain(&mut sa)).collect();
    let got_c: Vec<_> = got_c.into_iter().chain(drain(&mut sc)).collect();
    for r in got_a.iter().chain(&got_c) {
        assert!(
            !said(&r.payload).starts_with(b"2/"),
            "B's media still reached a member"
        );
        assert!(
            !said(&r.payload).starts_with(b"9/"),
            "the lobby's media reached a member"
        );
    }
    assert!(
        drain(&mut sb).is_empty(),
        "a removed member still receives media"
    );
    assert!(
        drain(&mut sl).is_empty(),
        "a lobby connection received media"
    );
    assert!(lobby.stats().is_empty(), "a lobby connection got tracks");
    assert!(h.metrics.drops(DropReason::NotMember) > not_member);

    // B leaves for good: its peer connection goes and nothing breaks.
    h.room.remove_peer(ConnId(2)).await;
    h.room.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribers_key_frame_request_reaches_the_publisher() {
    let h = Harness::new(RtcSettings {
        port_min: 42_000,
        port_max: 42_999,
        ..settings()
    })
    .await;
    let (a, mut sa) = h.join(1, Codec::Opus).await;
    let (b, mut sb) = h.join(2, Codec::Opus).await;
    h.room.set_members(webrtc(&[1, 2])).await;
    warm_up(&[(1, &a), (2, &b)], &mut [&mut sa, &mut sb]).await;
    while sa.feedback.try_recv().is_ok() {}
    // The SFU's candidates use the configured port range.
    let offer = h.latest_offer(1);
    let candidates: Vec<&str> = offer
        .lines()
        .filter(|l| l.starts_with("a=candidate"))
        .collect();
    assert!(!candidates.is_empty(), "the offer has no candidates");
    for line in candidates {
        let port: u16 = line.split(' ').nth(5).unwrap().parse().unwrap();
        assert!((42_000..=42_999).contains(&port), "{line}");
    }

    let video = b
        .stats()
        .into_iter()
        .find(|t| t.video && t.stream_id == "1")
        .expect("B receives A's video");
    b.request_key_frame(video.ssrc).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, sa.feedback.recv()).await {
            Ok(Some(Feedback::KeyFrame { video: true })) => break,
            Ok(Some(_)) => {}
            _ => panic!("the PLI did not reach the publisher"),
        }
    }

    // A NACK is answered by the SFU from what it sent B: the packets go
    // again to B alone, and the publisher is not asked (it would send them
    // to every subscriber).
    drain(&mut sb);
    for i in 0..5 {
        send_round(&[(1, &a)], "nack", i).await;
    }
    let last = collect_until(&mut sb, "five video packets", |got| {
        got.iter().filter(|r| r.video).count() >= 5
    })
    .await
    .into_iter()
    .rfind(|r| r.video)
    .expect("video to NACK")
    .sequence;
    while sa.feedback.try_recv().is_ok() {}
    let before = h.metrics.retransmissions();
    let wanted = [last.wrapping_sub(3), last.wrapping_sub(1)];
    b.send_nack(video.ssrc, &wanted).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while h.metrics.retransmissions() < before + 2 {
        assert!(
            Instant::now() < deadline,
            "the SFU did not retransmit ({} of 2)",
            h.metrics.retransmissions() - before
        );
        sleep(Duration::from_millis(10)).await;
    }
    sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.metrics.retransmissions(),
        before + 2,
        "the two asked for, once"
    );
    while let Ok(f) = sa.feedback.try_recv() {
        assert!(
            !matches!(f, Feedback::Nack { .. }),
            "the publisher was asked to retransmit: {f:?}"
        );
    }
    h.room.close().await;
}

/// Waits for a key-frame request (PLI or FIR) for video at a publisher.
async fn key_frame_request(feedback: &mut mpsc::Receiver<Feedback>, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, feedback.recv()).await {
            Ok(Some(Feedback::KeyFrame { video: true })) => return,
            Ok(Some(_)) => {}
            _ => panic!("no key-frame request: {what}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribers_full_intra_request_reaches_the_publisher() {
    let h = Harness::new(settings()).await;
    let (a, mut sa) = h.join(1, Codec::Opus).await;
    let (b, mut sb) = h.join(2, Codec::Opus).await;
    h.room.set_members(webrtc(&[1, 2])).await;
    warm_up(&[(1, &a), (2, &b)], &mut [&mut sa, &mut sb]).await;
    while sa.feedback.try_recv().is_ok() {}
    let video = b
        .stats()
        .into_iter()
        .find(|t| t.video && t.stream_id == "1")
        .expect("B receives A's video");
    b.request_full_intra(video.ssrc, 1).await.unwrap();
    key_frame_request(&mut sa.feedback, "the FIR did not reach the publisher").await;
    h.room.close().await;
}

/// A subscriber that reports loss (or a low REMB) has its video paused,
/// dropped and counted, while its audio goes on and another subscriber
/// keeps the video; video comes back after a key-frame request to the
/// publisher, with sequence numbers that go on without a gap, so the pause
/// does not look like loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_subscriber_keeps_audio_and_loses_video_until_it_recovers() {
    let h = Harness::new(settings()).await;
    let (a, mut sa) = h.join(1, Codec::Opus).await;
    let (b, mut sb) = h.join(2, Codec::Opus).await;
    let (c, mut sc) = h.join(3, Codec::Opus).await;
    h.room.set_members(webrtc(&[1, 2, 3])).await;
    warm_up(
        &[(1, &a), (2, &b), (3, &c)],
        &mut [&mut sa, &mut sb, &mut sc],
    )
    .await;
    drain(&mut sc);

    // A publishes continuously from here on.
    let publisher = Arc::clone(&a);
    let sending = tokio::spawn(async move {
        for i in 0.. {
            send_round(&[(1, &publisher)], "live", i).await;
            sleep(Duration::from_millis(10)).await;
        }
    });
    let mut last_video = collect_until(&mut sb, "six video packets", |got| {
        got.iter().filter(|r| r.video).count() > 5
    })
    .await
    .into_iter()
    .filter(|r| r.video)
    .map(|r| r.sequence)
    .next_back();
    assert!(last_video.is_some(), "video flows before the loss");

    // B reports 50% loss every 100 ms for 1.5 s.
    let mut seen = Vec::new();
    for round in 0..15 {
        b.report_loss(128).await.unwrap();
        sleep(Duration::from_millis(100)).await;
        let got = drain(&mut sb);
        if let Some(r) = got.iter().rfind(|r| r.video) {
            last_video = Some(r.sequence);
        }
        if round >= 3 {
            seen.extend(got);
        }
    }
    let audio = seen.iter().filter(|r| !r.video).count();
    let video = seen.iter().filter(|r| r.video).count();
    assert!(
        audio > 20,
        "audio keeps flowing to a lossy subscriber ({audio})"
    );
    assert_eq!(video, 0, "video pauses for a lossy subscriber");
    // The other subscriber's video is not held back by B's loss.
    let c_video = drain(&mut sc)
        .iter()
        .filter(|r| r.video && r.stream_id == "1")
        .count();
    assert!(c_video > 20, "C keeps getting A's video ({c_video})");
    let last_seq = last_video;
    assert!(h.metrics.drops(DropReason::SlowSubscriber) > 0);

    // The reports stop: video resumes after a key-frame request, and the
    // sequence numbers continue without a gap.
    while sa.feedback.try_recv().is_ok() {}
    let resumed = collect_until(&mut sb, "video again", |got| got.iter().any(|r| r.video)).await;
    let first = resumed
        .iter()
        .find(|r| r.video)
        .expect("video resumes after recovery");
    if let Some(last) = last_seq {
        assert_eq!(first.sequence, last.wrapping_add(1));
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, sa.feedback.recv()).await {
            Ok(Some(Feedback::KeyFrame { video: true })) => break,
            Ok(Some(_)) => {}
            _ => panic!("no key-frame request on resume"),
        }
    }
    let before = collect_until(&mut sb, "four video packets", |got| {
        got.iter().filter(|r| r.video).count() > 3
    })
    .await;
    let seqs: Vec<u16> = resumed
        .iter()
        .chain(&before)
        .filter(|r| r.video)
        .map(|r| r.sequence)
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "gap in {seqs:?}"
    );

    // A low REMB pauses video too.
    for _ in 0..8 {
        b.report_bandwidth(20_000.0).await.unwrap();
        sleep(Duration::from_millis(100)).await;
    }
    drain(&mut sb);
    b.report_bandwidth(20_000.0).await.unwrap();
    sleep(Duration::from_millis(300)).await;
    let got = drain(&mut sb);
    assert!(got.iter().any(|r| !r.video));
    assert!(
        !got.iter().any(|r| r.video),
        "video pauses under a low REMB"
    );

    sending.abort();
    h.room.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intercom_audio_bridges_both_ways_untouched_and_opus_is_dropped() {
    let h = Harness::new(settings()).await;
    let (a, mut sa) = h.join(1, Codec::Pcmu).await;
    let (b, mut sb) = h.join(2, Codec::Opus).await;
    let intercom = ConnId(7);
    let mut members = webrtc(&[1, 2]);
    members.push((intercom, Transport::Wire));
    h.room.set_members(members).await;
    warm_up(&[(1, &a), (2, &b)], &mut [&mut sa, &mut sb]).await;

    let frame = |i: u16| Media {
        sender: intercom,
        codec: Codec::Pcmu,
        timestamp: u32::from(i) * 160,
        sequence: 1000 + i,
        payload: Blob::copy_from(&payload(7, false, "wire", u32::from(i))).unwrap(),
    };
    // Until both desktops have the intercom's track.
    let deadline = Instant::now() + WAIT;
    let mut i = 0u16;
    let (mut at_a, mut at_b) = (false, false);
    while !(at_a && at_b) {
        h.room.forward_wire(&frame(i));
        i += 1;
        sleep(Duration::from_millis(20)).await;
        at_a |= drain(&mut sa).iter().any(|r| r.stream_id == "7");
        at_b |= drain(&mut sb).iter().any(|r| r.stream_id == "7");
        assert!(
            Instant::now() < deadline,
            "the intercom track never arrived"
        );
    }
    let start = i;
    for j in start..start + 30 {
        h.room.forward_wire(&frame(j));
        sleep(Duration::from_millis(5)).await;
    }
    for streams in [&mut sa, &mut sb] {
        let got = collect_until(streams, "the intercom's 30 frames", |got| {
            got.iter().filter(|r| r.stream_id == "7").count() >= 30
        })
        .await;
        let wire: Vec<_> = got.iter().filter(|r| r.stream_id == "7").collect();
        assert_eq!(wire.len(), 30);
        for r in wire {
            let j = r.sequence - 1000;
            assert!(j >= start);
            let sent = frame(j);
            assert_eq!(&r.payload[..], &sent.payload[..], "payload untouched");
            assert_eq!(r.timestamp, sent.timestamp);
            assert_eq!(r.codec, Some(Codec::Pcmu));
            assert!(!r.video);
        }
    }

    // A non-member intercom is refused.
    let stranger = Media {
        sender: ConnId(8),
        ..frame(0)
    };
    let not_member = h.metrics.drops(DropReason::NotMember);
    h.room.forward_wire(&stranger);
    // The room's shard handles it in its own time.
    let deadline = Instant::now() + WAIT;
    while h.metrics.drops(DropReason::NotMember) == not_member {
        assert!(
            Instant::now() < deadline,
            "the stranger's frame was not refused"
        );
        sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(h.metrics.drops(DropReason::NotMember), not_member + 1);

    // Desktop to intercom: A's PCMU comes out untouched; B's Opus cannot.
    h.outbox.wire.lock().unwrap().clear();
    let codec_drops = h.metrics.drops(DropReason::Codec);
    for j in 0..20 {
        send_round(&[(1, &a), (2, &b)], "out", j).await;
        sleep(Duration::from_millis(10)).await;
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let n = h
            .outbox
            .wire
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.payload.windows(5).any(|w| w == b"/out/"))
            .count();
        if n >= 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A's audio did not reach the intercom ({n})"
        );
        sleep(Duration::from_millis(20)).await;
    }
    let wire = h.outbox.wire.lock().unwrap().clone();
    for m in &wire {
        assert_eq!(m.sender, ConnId(1), "only A's PCMU goes to intercoms");
        assert_eq!(m.codec, Codec::Pcmu);
    }
    let out: HashSet<Vec<u8>> = wire
        .iter()
        .filter(|m| m.payload.windows(5).any(|w| w == b"/out/"))
        .map(|m| m.payload.to_vec())
        .collect();
    let expected: HashSet<Vec<u8>> = (0..20).map(|j| payload(1, false, "out", j)).collect();
    assert_eq!(out, expected);
    assert!(
        h.metrics.drops(DropReason::Codec) >= codec_drops + 20,
        "Opus to an intercom is a codec drop"
    );

    // The intercom leaves: its track goes away.
    h.room.set_members(webrtc(&[1, 2])).await;
    let deadline = Instant::now() + WAIT;
    while sends_stream(&h.latest_offer(1), 7) {
        assert!(
            Instant::now() < deadline,
            "the intercom's track was not removed"
        );
        sleep(Duration::from_millis(20)).await;
    }
    h.room.close().await;
}

/// A's audio packets with `phase` among `got`.
fn audio_of(got: &[Received], phase: &str) -> Vec<Received> {
    let tag = format!("1/a/{phase}/");
    got.iter()
        .filter(|r| !r.video && said(&r.payload).starts_with(tag.as_bytes()))
        .cloned()
        .collect()
}

/// A sends `rounds` audio packets with `phase`, 10 ms apart.
async fn a_says(a: &Arc<RtcClient>, phase: &str, rounds: u32) {
    for j in 0..rounds {
        a.send_audio(&payload(1, false, phase, j), j * 960)
            .await
            .unwrap();
        sleep(Duration::from_millis(10)).await;
    }
}

/// How many of A's frames with `phase` reached the intercom, and in which
/// codecs.
fn wire_of(h: &Harness, phase: &str) -> (usize, HashSet<Codec>) {
    let tag = format!("1/a/{phase}/");
    let wire = h.outbox.wire.lock().unwrap();
    let frames: Vec<&Media> = wire
        .iter()
        .filter(|m| said(&m.payload).starts_with(tag.as_bytes()))
        .collect();
    (frames.len(), frames.iter().map(|m| m.codec).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_switching_to_g722_is_heard_by_the_intercom_with_no_new_offer() {
    // What a desktop does when an intercom joins its Opus call: the same
    // track goes on in G.722, which every leg negotiated.
    let h = Harness::new(settings()).await;
    let (a, mut sa) = h.join(1, Codec::Opus).await;
    let (b, mut sb) = h.join(2, Codec::Opus).await;
    let mut members = webrtc(&[1, 2]);
    members.push((ConnId(7), Transport::Wire));
    h.room.set_members(members).await;
    warm_up(&[(1, &a), (2, &b)], &mut [&mut sa, &mut sb]).await;
    let offers = |conn: u64| h.outbox.offered.lock().unwrap()[&ConnId(conn)];
    let (offers_a, offers_b) = (offers(1), offers(2));

    // In Opus: B hears it, the intercom cannot.
    a_says(&a, "opus", 20).await;
    let got = collect_until(&mut sb, "A's Opus", |g| audio_of(g, "opus").len() >= 20).await;
    assert!(
        audio_of(&got, "opus")
            .iter()
            .all(|r| r.codec == Some(Codec::Opus))
    );
    assert_eq!(wire_of(&h, "opus").0, 0, "Opus reached the intercom");

    // In G.722, on the same track: B hears it as G.722, and so does the
    // intercom.
    a.set_audio_codec(Codec::G722).await.unwrap();
    assert_eq!(a.audio_codec(), Codec::G722);
    a_says(&a, "wide", 20).await;
    let got = collect_until(&mut sb, "A's G.722", |g| audio_of(g, "wide").len() >= 20).await;
    let wide = audio_of(&got, "wide");
    assert!(
        wide.iter()
            .all(|r| r.codec == Some(Codec::G722)
                && r.payload_type == Codec::G722.rtp().payload_type),
        "B got A's G.722 as {:?}",
        wide.iter()
            .map(|r| (r.codec, r.payload_type))
            .collect::<Vec<_>>()
    );
    let ssrc = wide[0].ssrc;
    let deadline = Instant::now() + WAIT;
    while wire_of(&h, "wide").0 < 20 {
        assert!(
            Instant::now() < deadline,
            "A's G.722 did not reach the intercom ({})",
            wire_of(&h, "wide").0
        );
        sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(wire_of(&h, "wide").1, HashSet::from([Codec::G722]));

    // Back at once: too soon after the last change (a codec flipping on
    // every packet would restart every receiver's decoder), so dropped.
    let codec_drops = h.metrics.drops(DropReason::Codec);
    a.set_audio_codec(Codec::Opus).await.unwrap();
    a_says(&a, "soon", 10).await;
    let deadline = Instant::now() + WAIT;
    while h.metrics.drops(DropReason::Codec) < codec_drops + 10 {
        assert!(Instant::now() < deadline, "the flip back was not dropped");
        sleep(Duration::from_millis(20)).await;
    }
    assert!(audio_of(&drain(&mut sb), "soon").is_empty());
    // Once the interval has passed, Opus again, still on the same track.
    sleep(Duration::from_secs(2)).await;
    a_says(&a, "again", 20).await;
    let got = collect_until(&mut sb, "A's Opus again", |g| {
        audio_of(g, "again").len() >= 15
    })
    .await;
    let again = audio_of(&got, "again");
    assert!(
        again
            .iter()
            .all(|r| r.codec == Some(Codec::Opus) && r.ssrc == ssrc)
    );
    assert_eq!(wire_of(&h, "again").0, 0, "Opus reached the intercom");
    // None of it took an offer.
    assert_eq!((offers(1), offers(2)), (offers_a, offers_b));
    h.room.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_do_not_grow_as_members_come_and_go() {
    // Eight members in turn join A's call, send and leave. Each leaver's
    // transceivers on A's peer connection are parked and the next
    // member's tracks take them over with their SSRCs: A's offer keeps
    // its size, and A gets each member's media under that member's
    // stream id, never the last one's.
    let h = Harness::new(settings()).await;
    let (a, mut sa) = h.join(1, Codec::Opus).await;
    let sections = |sdp: &str| sdp.matches("\r\nm=").count();
    let mut seen = Vec::new();
    let mut ssrcs = HashSet::new();
    for (round, conn) in (2..=9u64).enumerate() {
        let (p, mut sp) = h.join(conn, Codec::Opus).await;
        h.room.set_members(webrtc(&[1, conn])).await;
        warm_up(&[(1, &a), (conn, &p)], &mut [&mut sa, &mut sp]).await;
        drain(&mut sa);
        let phase = format!("r{round}");
        for i in 0..10 {
            send_round(&[(conn, &p)], &phase, i).await;
            sleep(Duration::from_millis(10)).await;
        }
        let tag = format!("{conn}/");
        let got = collect_until(&mut sa, &format!("member {conn}'s media"), |g| {
            g.iter()
                .filter(|r| said(&r.payload).starts_with(tag.as_bytes()))
                .count()
                >= 16
        })
        .await;
        for r in &got {
            let from_conn = said(&r.payload).starts_with(tag.as_bytes());
            assert_eq!(
                from_conn,
                r.stream_id == conn.to_string(),
                "round {round}: a packet saying {:?} came as stream {}",
                String::from_utf8_lossy(said(&r.payload).get(..8).unwrap_or_default()),
                r.stream_id
            );
            if from_conn {
                ssrcs.insert(r.ssrc);
            }
        }
        seen.push(sections(&h.latest_offer(1)));
        // It leaves.
        h.room.set_members(webrtc(&[1])).await;
        let deadline = Instant::now() + WAIT;
        while sends_stream(&h.latest_offer(1), conn) {
            assert!(Instant::now() < deadline, "member {conn}'s tracks stayed");
            sleep(Duration::from_millis(20)).await;
        }
        h.clients.lock().unwrap().remove(&ConnId(conn));
        h.room.remove_peer(ConnId(conn)).await;
    }
    assert!(
        seen.iter().all(|&n| n == seen[0]),
        "A's offer grew: m-sections per round {seen:?}"
    );
    assert_eq!(ssrcs.len(), 2, "the same two SSRCs, taken over: {ssrcs:?}");
    h.room.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_whose_kid_names_another_member_are_dropped_and_counted() {
    let h = Harness::new(settings()).await;
    let (a, mut sa) = h.join(1, Codec::Opus).await;
    let (b, mut sb) = h.join(2, Codec::Opus).await;
    let (c, mut sc) = h.join(3, Codec::Opus).await;
    h.room.set_members(webrtc(&[1, 2, 3])).await;
    warm_up(
        &[(1, &a), (2, &b), (3, &c)],
        &mut [&mut sa, &mut sb, &mut sc],
    )
    .await;
    let drops = |h: &Harness| {
        [
            DropReason::WrongSender,
            DropReason::UnknownEpoch,
            DropReason::NotSframe,
        ]
        .map(|why| h.metrics.drops(why))
    };
    let before = drops(&h);
    let not_member = h.metrics.drops(DropReason::NotMember);

    // C, a member, publishes on its own tracks frames whose KID names B
    // (audio) and A (video), one naming an epoch the log never had, one
    // with no SFrame header, and its own honest ones.
    let text = |what: &str, i: u32| format!("3/{what}/{i}/").into_bytes();
    const N: u32 = 10;
    for i in 0..N {
        let as_b = [sframe_prefix(2, false), text("as-b", i)].concat();
        c.send_audio(&as_b, i * 960).await.unwrap();
        let as_a = [sframe_prefix(1, true), text("as-a", i)].concat();
        c.send_video_frame(&as_a, i * 3000).await.unwrap();
        let mut stale = [0u8; 17];
        let n = Header::new(3 << 4 | 5, 0).emit(&mut stale).unwrap();
        let stale = [&stale[..n], &text("stale", i)].concat();
        c.send_audio(&stale, i * 960).await.unwrap();
        // A clear-prefix length of 11: more than VP8 keeps, no header.
        let bare = [vec![11], text("bare", i)].concat();
        c.send_video_frame(&bare, i * 3000).await.unwrap();
        send_round(&[(3, &c)], "honest", i).await;
        sleep(Duration::from_millis(5)).await;
    }
    let expected = [2 * u64::from(N), u64::from(N), u64::from(N)];
    let deadline = Instant::now() + WAIT;
    while drops(&h)
        .iter()
        .zip(before)
        .map(|(now, was)| now - was)
        .ne(expected)
    {
        assert!(
            Instant::now() < deadline,
            "refusals counted: {:?} since {before:?}",
            drops(&h)
        );
        sleep(Duration::from_millis(20)).await;
    }
    for (who, streams) in [("A", &mut sa), ("B", &mut sb)] {
        let honest = |r: &Received| {
            said(&r.payload).starts_with(b"3/") && r.payload.windows(8).any(|w| w == b"/honest/")
        };
        let mut got = collect_until(streams, "C's honest frames", |got| {
            got.iter().filter(|r| honest(r)).count() >= 2 * N as usize
        })
        .await;
        sleep(Duration::from_millis(200)).await;
        got.extend(drain(streams));
        for r in &got {
            let forged = [&b"/as-a/"[..], b"/as-b/", b"/stale/", b"/bare/"];
            assert!(
                !forged
                    .iter()
                    .any(|f| r.payload.windows(f.len()).any(|w| w == *f)),
                "{who} got a refused frame: {:?}",
                String::from_utf8_lossy(&r.payload)
            );
        }
    }
    assert_eq!(
        h.metrics.drops(DropReason::NotMember),
        not_member,
        "a member's refused frames are not counted as a stranger's"
    );
    h.room.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_lost_on_its_way_is_sent_again_and_media_flows() {
    let h = Harness::new(RtcSettings {
        answer_timeout_ms: 300,
        ..settings()
    })
    .await;
    let (a, mut sa) = h.join(1, Codec::Opus).await;
    // B's next offer (the one with A's tracks) never reaches B.
    let (b, mut sb) = h.join(2, Codec::Opus).await;
    h.outbox.lose.lock().unwrap().insert(ConnId(2));
    h.room.set_members(webrtc(&[1, 2])).await;
    warm_up(&[(1, &a), (2, &b)], &mut [&mut sa, &mut sb]).await;
    assert!(
        h.outbox.lose.lock().unwrap().is_empty(),
        "an offer to B was lost"
    );
    let offered = h.outbox.offered.lock().unwrap()[&ConnId(2)];
    assert!(
        offered >= 3,
        "B got the lost offer again ({offered} offers)"
    );
    assert!(
        h.metrics.errors(ErrorKind::Rtc) >= 1,
        "the late answer is counted"
    );
    h.room.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_from_a_client_is_refused() {
    let h = Harness::new(settings()).await;
    let (_a, _sa) = h.join(1, Codec::Opus).await;
    // The first offer: receive-only audio and video for what it publishes.
    let first = h.latest_offer(1);
    let sections: Vec<&str> = first.split("\r\nm=").skip(1).collect();
    assert_eq!(sections.len(), 2, "{first}");
    assert!(sections[0].starts_with("audio") && sections[0].contains("a=recvonly"));
    assert!(sections[1].starts_with("video") && sections[1].contains("a=recvonly"));
    assert!(first.contains("typ host"), "candidates are in the offer");
    let offer = Signal::Offer(Blob::copy_from(b"v=0\r\n").unwrap());
    assert!(h.room.handle_signal(ConnId(1), offer).await.is_err());
    let answer = Signal::Answer(Blob::copy_from(b"v=0\r\n").unwrap());
    assert!(h.room.handle_signal(ConnId(5), answer).await.is_err());
    h.room.close().await;
}

#[test]
fn settings_parse_with_defaults_and_refuse_unknown_fields() {
    let parsed: RtcSettings = toml::from_str(
        "ips = [\"10.0.0.5\"]\nport_min = 40000\nport_max = 40100\nnat_1to1_ips = [\"203.0.113.7\"]",
    )
    .unwrap();
    assert_eq!(parsed.port_min, 40_000);
    assert_eq!(parsed.ips, vec![std::net::IpAddr::from([10, 0, 0, 5])]);
    assert_eq!(
        parsed.loss_pause_percent,
        RtcSettings::default().loss_pause_percent
    );
    assert_eq!(
        toml::from_str::<RtcSettings>("").unwrap(),
        RtcSettings::default()
    );
    assert!(toml::from_str::<RtcSettings>("bogus = 1").is_err());
    let metrics = Arc::new(Metrics::default());
    let bad = RtcSettings {
        port_min: 5,
        port_max: 4,
        ..RtcSettings::default()
    };
    assert!(Rtc::new(&bad, metrics, Arc::new(Tap::off())).is_err());
}
