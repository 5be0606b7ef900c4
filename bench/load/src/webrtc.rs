//! `--transport webrtc`: every participant is a desktop member, as the app
//! runs it. Each one is a real [`Client`] on the SFU's WebSocket (an MLS
//! member that can commit) plus a real [`RtcClient`] peer connection; the
//! SFU's offers arrive as [`ClientEvent::Rtc`] and are answered for the
//! whole run, so re-offers (a room growing) are handled as the app would.
//!
//! The traffic is the wire mode's: audio (Opus track) 50 packets/s,
//! video (VP8 track) 30 frames/s of `video_packets` packets, the last one
//! with the marker bit, each payload a frame descriptor byte and then marked like the wire mode's: an SFrame
//! header naming the member's KID (its key ring's, kept current by the
//! signalling task), then the 16-byte stamp.
//! Until the room's `go`, every participant sends a slow probe (an audio
//! packet every 50 ms, a video frame every 100 ms): it lets [`negotiated`]
//! see every participant hear every other one before the warm-up, and the
//! probes are stamped before any window, so they are never counted.
//!
//! A packet `RtcClient` refuses (`Ok(false)`: its track is not negotiated)
//! is not sent and is counted as skipped, like a packet the generator was
//! too late for.
//!
//! The generator runs one peer connection (ICE, DTLS, SRTP) per
//! participant, in this process: at a few dozen it can cost more CPU than
//! the SFU. The `gen CPU %` column shows who saturates first.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use satsuma_client::rtc::{ClientSettings, Received as RtcReceived, RtcClient};
use satsuma_client::{Client, ClientError, ClientEvent, Endpoint};
use satsuma_core::committer::Event;
use satsuma_core::media::{Codec, FRAME_END, FRAME_START};
use satsuma_core::mls::Session;
use satsuma_core::wire::{RoomName, Signal, Transport};
use tokio::sync::{mpsc, oneshot, watch};

use crate::mesh::Mesh;
use crate::rooms::{Room, member};
use crate::traffic::{
    Kid, Participant, Plan, Received, Schedule, Sent, Shared, at_ns, mark, now_ns, phase, stamp_id,
    stamp_time,
};
use crate::{Failure, Result, fail};

/// RTP clock ticks per audio packet (Opus, 48 kHz, 20 ms).
const AUDIO_TICKS: u32 = 960;
/// RTP clock ticks per video frame (90 kHz, 30 frames/s).
const VIDEO_TICKS: u32 = 3000;
/// How often a participant probes before its room's media starts.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// Waits until, in every room, every participant receives every other
/// participant's audio (and video, from those who send it).
pub(crate) async fn negotiated<'a>(
    rooms: impl IntoIterator<Item = &'a Room> + Clone,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let missing: usize = rooms
            .clone()
            .into_iter()
            .filter_map(|r| r.mesh.as_deref())
            .map(Mesh::missing)
            .sum();
        if missing == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return fail(format!(
                "WebRTC negotiation never finished: {missing} tracks (receiver, sender, kind) \
                 still silent after {timeout:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------- rooms --

/// Joins room `index` with `members` desktop members: the first one alone
/// (it creates the group), then the others, whose joins it commits.
pub(crate) async fn add_room(
    index: usize,
    http: SocketAddr,
    members: usize,
    video: usize,
    shared: Arc<Shared>,
) -> Result<Room> {
    const STEP: Duration = Duration::from_secs(20);
    let name = RoomName::new(&format!("load-rtc-{index}"))
        .map_err(|e| Failure(format!("room name: {e}")))?;
    let first_id =
        u32::try_from(index * members).map_err(|_| Failure("too many participants".into()))?;
    let plans: Vec<Plan> = (0..members)
        .map(|k| Plan {
            id: first_id + u32::try_from(k).unwrap_or(0),
            video: k < video,
        })
        .collect();
    let mesh = Arc::new(Mesh::new(plans.clone()));
    let (go, go_rx) = watch::channel(None);
    let mut participants = Vec::with_capacity(members);
    for (k, plan) in plans.into_iter().enumerate() {
        let id = plan.id;
        let who = format!("room {index}, participant {id}");
        let desktop = member(&format!("desktop-{id}"), &name, true, Transport::WebRtc)?;
        let (client, events) = tokio::time::timeout(
            STEP,
            Client::start(Endpoint::WebSocket(http), name.clone(), desktop),
        )
        .await
        .map_err(|_| Failure(format!("{who}: could not connect within {STEP:?}")))?
        .map_err(|e| Failure(format!("{who}: client: {e}")))?;
        let (rtc, streams) = RtcClient::new(&ClientSettings::default())
            .await
            .map_err(|e| Failure(format!("{who}: peer connection: {e}")))?;
        let (joined_tx, joined_rx) = oneshot::channel();
        let kid = Arc::new(Kid::new());
        tokio::spawn(pump(
            client,
            events,
            Arc::clone(&rtc),
            id,
            Arc::clone(&kid),
            Arc::clone(&shared),
            Lifetime {
                joined: joined_tx,
                go: go_rx.clone(),
            },
        ));
        if k == 0 {
            // The group must exist before the others ask to join it.
            match tokio::time::timeout(STEP, joined_rx).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return fail(format!("{who}: stopped before creating the group")),
                Err(_) => return fail(format!("{who}: no group within {STEP:?}")),
            }
        }
        let p = Participant {
            sent: Arc::default(),
            received: Arc::new(Mutex::new(Received::new())),
        };
        tokio::spawn(receive(
            streams.media,
            k,
            Arc::clone(&mesh),
            Arc::clone(&shared),
            Arc::clone(&p.received),
        ));
        tokio::spawn(send(
            rtc,
            plan,
            kid,
            Arc::clone(&shared),
            Arc::clone(&p.sent),
            go_rx.clone(),
        ));
        participants.push(p);
    }
    Ok(Room {
        participants,
        go,
        mesh: Some(mesh),
    })
}

// ---------------------------------------------------------------- tasks --

/// When a participant's signalling starts and stops: it says when the
/// member joined, and ends when its room is dropped.
struct Lifetime {
    joined: oneshot::Sender<()>,
    go: watch::Receiver<Option<u64>>,
}

/// A participant's signalling for the whole run: answers every offer,
/// keeps the member's KID current, says when the member joined, reports
/// trouble.
async fn pump(
    client: Client<Session>,
    mut events: mpsc::Receiver<ClientEvent>,
    rtc: Arc<RtcClient>,
    id: u32,
    kid: Arc<Kid>,
    shared: Arc<Shared>,
    lifetime: Lifetime,
) {
    let Lifetime { joined, mut go } = lifetime;
    let mut joined = Some(joined);
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            // The room was dropped: the member leaves, its peer
            // connection goes.
            changed = go.changed() => if changed.is_err() { return } else { continue },
        };
        let Some(event) = event else { return };
        match event {
            ClientEvent::Rtc(Signal::Offer(sdp)) => match client.answer_offer(&rtc, &sdp).await {
                Ok(()) => {}
                Err(ClientError::Stopped) => {
                    return shared
                        .trouble
                        .note(format!("participant {id}: the client stopped"));
                }
                Err(e) => {
                    shared
                        .trouble
                        .note(format!("participant {id}: answering an offer: {e}"));
                }
            },
            ClientEvent::Member(event @ (Event::Joined { .. } | Event::NewEpoch { .. })) => {
                let now = client.sending_kid();
                kid.set(now);
                if matches!(event, Event::Joined { .. })
                    && let Some(joined) = joined.take()
                {
                    let _ = joined.send(());
                }
            }
            ClientEvent::Member(Event::Stuck(e)) => {
                shared.trouble.note(format!("participant {id}: stuck: {e}"))
            }
            ClientEvent::Error(code, text) => shared
                .trouble
                .note(format!("participant {id}: SFU error {code:?}: {text}")),
            ClientEvent::Closed => {
                return shared
                    .trouble
                    .note(format!("participant {id}: the client closed"));
            }
            _ => {}
        }
    }
}

/// Times what the peer connection receives, and tells the room's mesh
/// whom it heard.
async fn receive(
    mut media: mpsc::Receiver<RtcReceived>,
    index: usize,
    mesh: Arc<Mesh>,
    shared: Arc<Shared>,
    received: Arc<Mutex<Received>>,
) {
    let mut heard: HashSet<(u32, bool)> = HashSet::new();
    let mut batch = Vec::with_capacity(64);
    while media.recv_many(&mut batch, 64).await > 0 {
        let now = now_ns();
        let mut stats = received.lock().unwrap_or_else(PoisonError::into_inner);
        for packet in batch.drain(..) {
            // Video packets carry a frame descriptor before the stamp.
            let payload = if packet.video {
                packet.payload.get(1..).unwrap_or_default()
            } else {
                &packet.payload[..]
            };
            let Some(sent_at) = stamp_time(payload) else {
                continue;
            };
            if let Some(from) = stamp_id(payload)
                && heard.insert((from, packet.video))
            {
                mesh.note(index, from, packet.video);
            }
            if shared.window.contains(sent_at) {
                stats.packets += 1;
                stats.latency.record(now.saturating_sub(sent_at));
            }
        }
    }
}

/// One participant's outgoing media on its peer connection.
struct Outgoing {
    rtc: Arc<RtcClient>,
    plan: Plan,
    kid: Arc<Kid>,
    shared: Arc<Shared>,
    audio: Vec<u8>,
    video: Vec<u8>,
    seq: u32,
    audio_ts: u32,
    video_ts: u32,
}

impl Outgoing {
    fn new(rtc: Arc<RtcClient>, plan: Plan, kid: Arc<Kid>, shared: Arc<Shared>) -> Self {
        // A video packet starts with its frame descriptor
        // (`satsuma_core::media::FRAME_START`), set per packet.
        let (audio, video) = (
            shared.audio.payload.clone(),
            [&[0][..], &shared.video.payload].concat(),
        );
        Self {
            rtc,
            plan,
            kid,
            shared,
            audio,
            video,
            seq: 0,
            audio_ts: 0,
            video_ts: 0,
        }
    }

    /// Sends `audio` packets and `frames` video frames stamped `now`;
    /// returns (sent, refused) packet counts. Before the member has a KID
    /// (it is not in the group yet) nothing is sent and all is refused.
    async fn send(&mut self, audio: u64, frames: u64, now: u64) -> (u64, u64) {
        let Some(kid) = self.kid.get() else {
            return (0, audio + frames * self.shared.video_packets);
        };
        let id = self.plan.id;
        let (mut sent, mut refused) = (0, 0);
        let mut tally = |outcome: Result<bool, String>, shared: &Shared, id: u32| match outcome {
            Ok(true) => sent += 1,
            Ok(false) => refused += 1,
            Err(e) => {
                refused += 1;
                shared.trouble.note(format!("participant {id}: send: {e}"));
            }
        };
        for _ in 0..audio {
            mark(&mut self.audio, Codec::Opus, kid, id, self.seq, now);
            self.seq = self.seq.wrapping_add(1);
            let outcome = self.rtc.send_audio(&self.audio, self.audio_ts).await;
            self.audio_ts = self.audio_ts.wrapping_add(AUDIO_TICKS);
            tally(
                outcome.map_err(|e| e.to_string()),
                &self.shared,
                self.plan.id,
            );
        }
        for _ in 0..frames {
            let packets = self.shared.video_packets;
            for i in 0..packets {
                if let Some((descriptor, marked)) = self.video.split_first_mut() {
                    *descriptor = if i == 0 { FRAME_START } else { 0 }
                        | if i + 1 == packets { FRAME_END } else { 0 };
                    mark(marked, Codec::Vp8, kid, id, self.seq, now);
                }
                self.seq = self.seq.wrapping_add(1);
                let outcome = self
                    .rtc
                    .send_video(&self.video, self.video_ts, i + 1 == packets)
                    .await;
                tally(
                    outcome.map_err(|e| e.to_string()),
                    &self.shared,
                    self.plan.id,
                );
            }
            self.video_ts = self.video_ts.wrapping_add(VIDEO_TICKS);
        }
        (sent, refused)
    }
}

/// Probes until the room's `go`, then sends on the wire mode's schedule.
async fn send(
    rtc: Arc<RtcClient>,
    plan: Plan,
    kid: Arc<Kid>,
    shared: Arc<Shared>,
    sent: Arc<Sent>,
    mut go: watch::Receiver<Option<u64>>,
) {
    let mut out = Outgoing::new(rtc, plan, kid, Arc::clone(&shared));
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut probes: u64 = 0;
    let base = loop {
        if let Some(base) = *go.borrow_and_update() {
            break base;
        }
        tokio::select! {
            changed = go.changed() => if changed.is_err() { return },
            _ = probe.tick() => {
                let frames = u64::from(plan.video && probes.is_multiple_of(2));
                probes += 1;
                out.send(1, frames, now_ns()).await;
            }
        }
    };
    let mut schedule = Schedule::new(base + phase(plan.id), plan.video);
    let mut tick = tokio::time::interval_at(at_ns(schedule.base), Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        // The room was dropped (the run moves on to another SFU): stop,
        // letting the peer connection go.
        tokio::select! {
            _ = tick.tick() => {}
            changed = go.changed() => if changed.is_err() { return } else { continue },
        }
        let now = now_ns();
        let (audio, frames, skipped) = schedule.due(now);
        let (n, refused) = if audio + frames == 0 {
            (0, 0)
        } else {
            out.send(audio, frames, now).await
        };
        let skipped = skipped + refused;
        if skipped > 0 {
            sent.skipped.fetch_add(skipped, Relaxed);
        }
        sent.total.fetch_add(n, Relaxed);
        if shared.window.contains(now) {
            sent.in_window.fetch_add(n, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mesh_counts_every_silent_track() {
        let plans = vec![
            Plan { id: 7, video: true },
            Plan {
                id: 8,
                video: false,
            },
        ];
        let mesh = Mesh::new(plans);
        // 0 misses 8's audio; 1 misses 7's audio and video.
        assert_eq!(mesh.missing(), 3);
        mesh.note(1, 7, false);
        mesh.note(1, 7, true);
        assert_eq!(mesh.missing(), 1);
        mesh.note(0, 8, false);
        mesh.note(0, 0, false);
        assert_eq!(mesh.missing(), 0);
    }

    #[test]
    fn the_stamp_names_its_sender_behind_the_sframe_header() {
        use crate::traffic::{SFRAME_SLOT, STAMP_LEN};
        for codec in [Codec::Opus, Codec::Vp8] {
            let mut p = vec![0xaa; SFRAME_SLOT + STAMP_LEN + 10];
            mark(&mut p, codec, 0x3e, 42, 1, 2);
            assert_eq!(stamp_id(&p), Some(42));
            assert_eq!(stamp_time(&p), Some(2));
            assert_eq!(codec.kid(&p), Ok(0x3e), "{codec:?}");
        }
        assert_eq!(stamp_id(&[1, 2]), None);
    }
}
