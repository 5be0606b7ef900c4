//! The traffic itself: the tool's monotonic clock, the state the
//! participant tasks share with the controller (the measured window, what
//! each participant sent and received, a latency histogram, trouble
//! reports), the pre-encoded `Media` frame templates with their SFrame
//! headers and 16-byte stamps and the in-place `ToClient::Media` parser,
//! the send schedule, and the tasks that send and receive media: raw TCP
//! participants and the committer's [`Client`].
//!
//! Payloads are not sealed (the SFU never opens one), but each starts like
//! a protected frame whose SFrame KID names its sender's leaf, because the
//! SFU refuses any other: a raw participant folds the room's log to know
//! its leaf, epoch and the tree's size, and the Client-driven ones ask
//! their member's key ring.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use satsuma_client::{Client, ClientEvent};
use satsuma_core::committer::{Event, RoomState};
use satsuma_core::media::Codec;
use satsuma_core::mls::Session;
use satsuma_core::sframe::{EPOCH_BITS, Header, KidLayout, MAX_HEADER_LEN};
use satsuma_core::wire::{
    self, Blob, ConnId, Down, LinkMsg, Media, Message as _, ToClient, ToServer,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{oneshot, watch};

use crate::{Failure, Result, fail};

const AUDIO_PERIOD_NS: u64 = 20_000_000;
const VIDEO_PERIOD_NS: u64 = 1_000_000_000 / 30;
pub(crate) const VIDEO_MTU: usize = 1200;
pub(crate) const STAMP_LEN: usize = 16;
/// The start of every payload, kept for what the SFU reads of a protected
/// frame: VP8's clear-prefix length byte and the longest SFrame header.
/// The stamp follows it.
pub(crate) const SFRAME_SLOT: usize = 1 + MAX_HEADER_LEN;
/// A sender that falls further behind than this skips ahead (and counts
/// what it skipped) rather than bursting past the SFU's rate limit.
const MAX_BEHIND_NS: u64 = 200_000_000;

// ---------------------------------------------------------------- clock --

pub(crate) fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds since the tool started, on the monotonic clock.
pub(crate) fn now_ns() -> u64 {
    u64::try_from(origin().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

pub(crate) fn at_ns(ns: u64) -> tokio::time::Instant {
    tokio::time::Instant::from_std(origin() + Duration::from_nanos(ns))
}

// ---------------------------------------------------------------- shared state --

/// The measured window, `[start, end)` in tool nanoseconds.
#[derive(Debug)]
pub(crate) struct Window {
    start: AtomicU64,
    end: AtomicU64,
}

impl Window {
    pub(crate) fn new() -> Self {
        Self {
            start: AtomicU64::new(u64::MAX),
            end: AtomicU64::new(u64::MAX),
        }
    }

    pub(crate) fn contains(&self, ns: u64) -> bool {
        ns >= self.start.load(Relaxed) && ns < self.end.load(Relaxed)
    }

    pub(crate) fn set(&self, start: u64, end: u64) {
        // Widen nothing by accident: first close the old window.
        self.start.store(u64::MAX, Relaxed);
        self.end.store(end, Relaxed);
        self.start.store(start, Relaxed);
    }
}

/// What one participant sent.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    pub(crate) in_window: AtomicU64,
    pub(crate) total: AtomicU64,
    /// Packets skipped because the generator fell behind.
    pub(crate) skipped: AtomicU64,
}

/// A latency histogram in nanoseconds, log-linear: 32 buckets per power of
/// two (about 3 % wide), exact below 32 ns, capped at 2^36 ns (68 s).
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    pub(crate) max: u64,
}

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
const CAP_NS: u64 = (1 << 36) - 1;

impl Histogram {
    pub(crate) fn new() -> Self {
        Self {
            counts: vec![0; Self::index(CAP_NS) + 1],
            max: 0,
        }
    }

    fn index(ns: u64) -> usize {
        let v = ns.min(CAP_NS);
        let i = if v < SUB {
            v
        } else {
            let e = u64::from(63 - v.leading_zeros());
            let sub = (v >> (e - u64::from(SUB_BITS))) - SUB;
            (e - u64::from(SUB_BITS) + 1) * SUB + sub
        };
        usize::try_from(i).unwrap_or(usize::MAX)
    }

    /// The largest value bucket `i` holds.
    fn upper(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let shift = i / SUB - 1;
        let sub = i % SUB;
        ((SUB + sub) << shift) + (1 << shift) - 1
    }

    pub(crate) fn record(&mut self, ns: u64) {
        let i = Self::index(ns);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.max = self.max.max(ns);
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max = self.max.max(other.max);
    }

    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (an upper bound within the bucket's width).
    pub(crate) fn quantile(&self, q: f64) -> Option<u64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil().max(1.0)).min(n as f64);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen as f64 >= rank {
                return Some(Self::upper(i).min(self.max));
            }
        }
        Some(self.max)
    }
}

/// What one participant received inside the window.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) packets: u64,
    pub(crate) latency: Histogram,
}

impl Received {
    pub(crate) fn new() -> Self {
        Self {
            packets: 0,
            latency: Histogram::new(),
        }
    }
}

/// A participant as the controller sees it.
#[derive(Debug)]
pub(crate) struct Participant {
    pub(crate) sent: Arc<Sent>,
    pub(crate) received: Arc<Mutex<Received>>,
}

/// Problems inside participant tasks, reported with the results.
#[derive(Debug, Default)]
pub(crate) struct Trouble {
    pub(crate) count: AtomicU64,
    first: Mutex<Vec<String>>,
}

/// Set once the run is over: links closing then are no trouble.
pub(crate) static STOPPING: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

impl Trouble {
    pub(crate) fn note(&self, text: String) {
        if STOPPING.load(Relaxed) {
            return;
        }
        self.count.fetch_add(1, Relaxed);
        let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        if first.len() < 5 {
            eprintln!("satsuma-load: {text}");
            first.push(text);
        }
    }
}

/// Everything the participant tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) window: Window,
    pub(crate) trouble: Trouble,
    pub(crate) media_tag: u64,
    pub(crate) audio: Template,
    pub(crate) video: Template,
    pub(crate) video_packets: u64,
}

// ---------------------------------------------------------------- frames --

/// A `ToServer::Media` frame, length prefix included, encoded once; each
/// packet copies it and marks its payload (at `payload_at`) with [`mark`].
#[derive(Debug)]
pub(crate) struct Template {
    pub(crate) codec: Codec,
    frame: Vec<u8>,
    pub(crate) payload: Vec<u8>,
    payload_at: usize,
}

impl Template {
    pub(crate) fn new(codec: Codec, payload_len: usize) -> Result<Self> {
        let payload_len = payload_len.max(SFRAME_SLOT + STAMP_LEN);
        // Any bytes will do: the SFU forwards ciphertext it cannot read.
        let payload: Vec<u8> = (0..payload_len)
            .map(|i| u8::try_from(i % 251).unwrap_or(0))
            .collect();
        let media = Media {
            sender: ConnId(0),
            codec,
            timestamp: 0,
            sequence: 0,
            payload: Blob::copy_from(&payload)
                .ok_or_else(|| Failure("payload too large".into()))?,
        };
        let frame = wire::encode_framed(&ToServer::Media(media))
            .map_err(|e| Failure(format!("encode: {e}")))?;
        // The payload is the last field: its bytes end the frame.
        let payload_at = frame.len() - payload_len;
        if frame.get(payload_at..) != Some(&payload[..]) {
            return fail("the Media encoding does not end with its payload");
        }
        Ok(Self {
            codec,
            frame,
            payload,
            payload_at,
        })
    }
}

/// A participant's SFrame KID: its leaf in the room's current epoch, as
/// the SFU checks it; none until it is in the group.
#[derive(Debug)]
pub(crate) struct Kid(AtomicU64);

impl Kid {
    const NONE: u64 = u64::MAX;

    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(Self::NONE))
    }

    pub(crate) fn get(&self) -> Option<u64> {
        Some(self.0.load(Relaxed)).filter(|&k| k != Self::NONE)
    }

    pub(crate) fn set(&self, kid: Option<u64>) {
        self.0.store(kid.unwrap_or(Self::NONE), Relaxed);
    }

    /// The KID of `conn` in the room `state` folds: `E` low epoch bits,
    /// then the leaf in as many bits as the tree's size needs (RFC 9605
    /// §5.2, as every member's key ring computes it).
    fn of(state: &RoomState, conn: ConnId) -> Option<u64> {
        let epoch = state.epoch()?;
        let (leaf, _) = state.seat_of(conn)?;
        let size = u64::try_from(state.leaves().len()).ok()?;
        KidLayout::for_group(EPOCH_BITS, size)
            .and_then(|layout| layout.encode(0, u64::from(leaf), epoch))
            .ok()
    }
}

/// Marks a payload of `codec`: the start of a protected frame whose KID is
/// `kid` (in [`SFRAME_SLOT`]), then the stamp. The rest stays filler.
pub(crate) fn mark(payload: &mut [u8], codec: Codec, kid: u64, id: u32, seq: u32, ns: u64) {
    let Some((slot, rest)) = payload.split_at_mut_checked(SFRAME_SLOT) else {
        return;
    };
    let header = if codec.max_clear_len() > 0 {
        // No clear bytes: the length byte is 0 and the header follows.
        slot[0] = 0;
        &mut slot[1..]
    } else {
        slot
    };
    // The slot holds the longest header.
    let _ = Header::new(kid, u64::from(seq)).emit(header);
    if let Some(at) = rest.get_mut(..STAMP_LEN) {
        at.copy_from_slice(&stamp(id, seq, ns));
    }
}

pub(crate) fn stamp(id: u32, seq: u32, ns: u64) -> [u8; STAMP_LEN] {
    let mut s = [0; STAMP_LEN];
    s[..4].copy_from_slice(&id.to_be_bytes());
    s[4..8].copy_from_slice(&seq.to_be_bytes());
    s[8..].copy_from_slice(&ns.to_be_bytes());
    s
}

/// The send time from a payload's stamp.
pub(crate) fn stamp_time(payload: &[u8]) -> Option<u64> {
    let at = SFRAME_SLOT + 8;
    let bytes: [u8; 8] = payload.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// The sender's number from a payload's stamp.
pub(crate) fn stamp_id(payload: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = payload.get(SFRAME_SLOT..SFRAME_SLOT + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// A postcard varint and the rest.
fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, bytes.get(i + 1..)?));
        }
    }
    None
}

/// The payload of a `ToClient::Media` message (without its length prefix),
/// read in place; `None` for anything else. The layout is postcard's:
/// version, variant, sender, codec, timestamp, sequence, payload length,
/// payload. [`check_parser`] compares it with the real decoder at start.
fn media_payload(body: &[u8], media_tag: u64) -> Option<&[u8]> {
    let (&version, rest) = body.split_first()?;
    if version != wire::VERSION {
        return None;
    }
    let (tag, rest) = varint(rest)?;
    if tag != media_tag {
        return None;
    }
    let (_sender, rest) = varint(rest)?;
    let (_codec, rest) = varint(rest)?;
    let (_timestamp, rest) = varint(rest)?;
    let (_sequence, rest) = varint(rest)?;
    let (len, rest) = varint(rest)?;
    let len = usize::try_from(len).ok()?;
    (rest.len() == len).then_some(rest)
}

/// The `ToClient::Media` variant number, and a check that [`media_payload`]
/// reads what the real decoder reads.
pub(crate) fn check_parser() -> Result<u64> {
    let mut probe_payload = vec![0; SFRAME_SLOT + STAMP_LEN + 200];
    mark(
        &mut probe_payload,
        Codec::Vp8,
        0x3e,
        7,
        300,
        123_456_789_012,
    );
    let media = Media {
        sender: ConnId(70_000),
        codec: Codec::Vp8,
        timestamp: 4_000_000_000,
        sequence: 65_000,
        payload: Blob::copy_from(&probe_payload).ok_or_else(|| Failure("probe".into()))?,
    };
    let body = ToClient::Media(media)
        .encode()
        .map_err(|e| Failure(format!("encode: {e}")))?;
    let (tag, _) = body
        .get(1..)
        .and_then(varint)
        .ok_or_else(|| Failure("probe: no variant".into()))?;
    let decoded = match ToClient::decode(&body) {
        Ok(ToClient::Media(m)) => m,
        _ => return fail("probe: the real decoder disagrees"),
    };
    if media_payload(&body, tag) != Some(&decoded.payload[..])
        || stamp_time(&decoded.payload) != Some(123_456_789_012)
    {
        return fail("the in-place Media parser does not match satsuma_core::wire");
    }
    Ok(tag)
}

// ---------------------------------------------------------------- schedule --

/// When a participant's packets are due: audio every 20 ms, a video frame
/// every 33.3 ms, counted from `base` so jitter in the ticks does not
/// change the rate.
#[derive(Debug)]
pub(crate) struct Schedule {
    pub(crate) base: u64,
    video: bool,
    audio_done: u64,
    frames_done: u64,
}

impl Schedule {
    pub(crate) fn new(base: u64, video: bool) -> Self {
        Self {
            base,
            video,
            audio_done: 0,
            frames_done: 0,
        }
    }

    /// Audio packets and video frames due at `now`, and how many of each
    /// were skipped because the sender fell too far behind.
    pub(crate) fn due(&mut self, now: u64) -> (u64, u64, u64) {
        if now < self.base {
            return (0, 0, 0);
        }
        let elapsed = now - self.base;
        let mut skipped = 0;
        let audio = elapsed / AUDIO_PERIOD_NS + 1;
        let late = MAX_BEHIND_NS / AUDIO_PERIOD_NS;
        if audio > self.audio_done + late {
            skipped += audio - late - self.audio_done;
            self.audio_done = audio - late;
        }
        let frames = if self.video {
            elapsed / VIDEO_PERIOD_NS + 1
        } else {
            0
        };
        let late = MAX_BEHIND_NS / VIDEO_PERIOD_NS;
        if frames > self.frames_done + late {
            skipped += frames - late - self.frames_done;
            self.frames_done = frames - late;
        }
        let out = (audio - self.audio_done, frames - self.frames_done, skipped);
        self.audio_done = audio;
        self.frames_done = frames;
        out
    }
}

/// Spreads the participants' send instants over the 20 ms period.
pub(crate) fn phase(id: u32) -> u64 {
    (u64::from(id).wrapping_mul(2_654_435_761) >> 7) % AUDIO_PERIOD_NS
}

/// What a participant sends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) id: u32,
    pub(crate) video: bool,
}

// ---------------------------------------------------------------- raw participants --

/// Sends media once `go` says when, batching what is due in one write;
/// while it has no KID yet (its `Joined` entry not read), what is due is
/// skipped.
pub(crate) async fn raw_sender(
    mut write: OwnedWriteHalf,
    plan: Plan,
    kid: Arc<Kid>,
    shared: Arc<Shared>,
    sent: Arc<Sent>,
    mut go: watch::Receiver<Option<u64>>,
) {
    // Until the room's media starts, a ping keeps the link from idling out.
    let ping = match wire::encode_framed(&ToServer::Ping { nonce: plan.id }) {
        Ok(ping) => ping,
        Err(e) => return shared.trouble.note(format!("encode a ping: {e}")),
    };
    let base = loop {
        if let Some(base) = *go.borrow_and_update() {
            break base;
        }
        tokio::select! {
            changed = go.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(Duration::from_secs(5)) => {
                if let Err(e) = write.write_all(&ping).await {
                    return shared.trouble.note(format!("participant {}: ping: {e}", plan.id));
                }
            }
        }
    };
    let mut schedule = Schedule {
        base: base + phase(plan.id),
        video: plan.video,
        audio_done: 0,
        frames_done: 0,
    };
    let mut tick = tokio::time::interval_at(at_ns(schedule.base), Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut batch = Vec::with_capacity(16 * 1024);
    let mut seq: u32 = 0;
    loop {
        tick.tick().await;
        let now = now_ns();
        let (audio, frames, skipped) = schedule.due(now);
        if skipped > 0 {
            sent.skipped.fetch_add(skipped, Relaxed);
        }
        let Some(kid) = kid.get() else {
            sent.skipped
                .fetch_add(audio + frames * shared.video_packets, Relaxed);
            continue;
        };
        batch.clear();
        let mut push = |t: &Template| {
            let at = batch.len() + t.payload_at;
            batch.extend_from_slice(&t.frame);
            if let Some(payload) = batch.get_mut(at..) {
                mark(payload, t.codec, kid, plan.id, seq, now);
            }
            seq = seq.wrapping_add(1);
        };
        for _ in 0..audio {
            push(&shared.audio);
        }
        for _ in 0..frames * shared.video_packets {
            push(&shared.video);
        }
        let n = audio + frames * shared.video_packets;
        if n == 0 {
            continue;
        }
        if let Err(e) = write.write_all(&batch).await {
            return shared
                .trouble
                .note(format!("participant {}: send: {e}", plan.id));
        }
        sent.total.fetch_add(n, Relaxed);
        if shared.window.contains(now) {
            sent.in_window.fetch_add(n, Relaxed);
        }
    }
}

/// Reads the link for as long as it is open: media frames are timed, the
/// log is folded to keep the participant's KID (`kid`) current.
pub(crate) async fn raw_receiver(
    mut read: OwnedReadHalf,
    id: u32,
    kid: Arc<Kid>,
    shared: Arc<Shared>,
    received: Arc<Mutex<Received>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0;
    let mut last_error: Option<String> = None;
    let mut room: Option<(ConnId, RoomState)> = None;
    loop {
        if filled == buf.len() {
            let grown = buf.len() * 2;
            buf.resize(grown, 0);
        }
        let n = match read.read(buf.get_mut(filled..).unwrap_or_default()).await {
            Ok(0) => {
                let why = last_error.as_deref().unwrap_or("no error message");
                return shared
                    .trouble
                    .note(format!("participant {id}: the SFU closed the link ({why})"));
            }
            Ok(n) => n,
            Err(e) => return shared.trouble.note(format!("participant {id}: read: {e}")),
        };
        filled += n;
        let now = now_ns();
        let mut pos = 0;
        let mut stats = received.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(header) = buf.get(pos..pos + 4).filter(|_| pos + 4 <= filled) {
            let mut h = [0; 4];
            h.copy_from_slice(header);
            let len = match wire::frame_len(h) {
                Ok(len) => len,
                Err(e) => {
                    drop(stats);
                    return shared
                        .trouble
                        .note(format!("participant {id}: bad frame: {e}"));
                }
            };
            let Some(body) = buf
                .get(pos + 4..pos + 4 + len)
                .filter(|_| pos + 4 + len <= filled)
            else {
                // Incomplete; make room for a frame larger than the buffer.
                if 4 + len > buf.len() {
                    let grown = (4 + len).next_power_of_two();
                    buf.resize(grown, 0);
                }
                break;
            };
            match media_payload(body, shared.media_tag) {
                Some(payload) => {
                    if let Some(sent_at) = stamp_time(payload)
                        && shared.window.contains(sent_at)
                    {
                        stats.packets += 1;
                        stats.latency.record(now.saturating_sub(sent_at));
                    }
                }
                // Control messages are rare: the log's, for the KID, and
                // an error, for the report.
                None => match ToClient::decode(body) {
                    Ok(ToClient::Control(Down::Hello {
                        conn,
                        room: snapshot,
                    })) => {
                        room = RoomState::try_from(snapshot)
                            .ok()
                            .map(|state| (conn, state));
                        if room.is_none() {
                            shared
                                .trouble
                                .note(format!("participant {id}: a Hello no log leads to"));
                        }
                    }
                    Ok(ToClient::Control(Down::Entry { entry, .. })) => {
                        if let Some((conn, state)) = &mut room {
                            if let Err(e) = state.apply(&entry) {
                                shared
                                    .trouble
                                    .note(format!("participant {id}: a log entry refused: {e}"));
                            }
                            kid.set(Kid::of(state, *conn));
                        }
                    }
                    Ok(ToClient::Link(LinkMsg::Error { code, text })) => {
                        last_error = Some(format!("{code:?}: {}", String::from_utf8_lossy(&text)));
                    }
                    _ => {}
                },
            }
            pos += 4 + len;
        }
        drop(stats);
        buf.copy_within(pos..filled, 0);
        filled -= pos;
    }
}

// ---------------------------------------------------------------- committer --

/// Sends the committer's media through its [`Client`].
pub(crate) async fn client_sender(
    client: Client<Session>,
    plan: Plan,
    shared: Arc<Shared>,
    sent: Arc<Sent>,
    mut go: watch::Receiver<Option<u64>>,
) {
    let base = match go.wait_for(Option::is_some).await {
        Ok(base) => (*base).unwrap_or(0),
        Err(_) => return,
    };
    let mut schedule = Schedule {
        base: base + phase(plan.id),
        video: plan.video,
        audio_done: 0,
        frames_done: 0,
    };
    let mut tick = tokio::time::interval_at(at_ns(schedule.base), Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seq: u32 = 0;
    loop {
        tick.tick().await;
        let now = now_ns();
        let (audio, frames, skipped) = schedule.due(now);
        if skipped > 0 {
            sent.skipped.fetch_add(skipped, Relaxed);
        }
        let due = audio + frames * shared.video_packets;
        if due == 0 {
            continue;
        }
        let kid = client.sending_kid();
        let Some(kid) = kid else {
            sent.skipped.fetch_add(due, Relaxed);
            continue;
        };
        let packets = std::iter::repeat_n(&shared.audio, usize::try_from(audio).unwrap_or(0))
            .chain(std::iter::repeat_n(
                &shared.video,
                usize::try_from(frames * shared.video_packets).unwrap_or(0),
            ));
        let mut n = 0;
        for t in packets {
            let mut payload = t.payload.clone();
            mark(&mut payload, t.codec, kid, plan.id, seq, now);
            seq = seq.wrapping_add(1);
            let Some(payload) = Blob::new(payload) else {
                continue;
            };
            let media = Media {
                sender: ConnId(0),
                codec: t.codec,
                timestamp: 0,
                sequence: 0,
                payload,
            };
            if client.send_media(media).await.is_err() {
                return shared
                    .trouble
                    .note(format!("committer {}: the client stopped", plan.id));
            }
            n += 1;
        }
        sent.total.fetch_add(n, Relaxed);
        if shared.window.contains(now) {
            sent.in_window.fetch_add(n, Relaxed);
        }
    }
}

/// Takes the committer's events: says when it joined, times its media.
pub(crate) async fn client_events(
    mut events: tokio::sync::mpsc::Receiver<ClientEvent>,
    id: u32,
    shared: Arc<Shared>,
    received: Arc<Mutex<Received>>,
    joined: oneshot::Sender<()>,
) {
    let mut joined = Some(joined);
    while let Some(event) = events.recv().await {
        match event {
            ClientEvent::Media(media) => {
                let now = now_ns();
                if let Some(sent_at) = stamp_time(&media.payload)
                    && shared.window.contains(sent_at)
                {
                    let mut stats = received.lock().unwrap_or_else(PoisonError::into_inner);
                    stats.packets += 1;
                    stats.latency.record(now.saturating_sub(sent_at));
                }
            }
            ClientEvent::Member(Event::Joined { .. }) => {
                if let Some(joined) = joined.take() {
                    let _ = joined.send(());
                }
            }
            ClientEvent::Member(Event::Stuck(e)) => {
                shared.trouble.note(format!("committer {id}: stuck: {e}"))
            }
            ClientEvent::Error(code, text) => shared
                .trouble
                .note(format!("committer {id}: SFU error {code:?}: {text}")),
            ClientEvent::Closed => {
                return shared
                    .trouble
                    .note(format!("committer {id}: the client closed"));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_bound_their_values() {
        for v in [
            0u64, 1, 31, 32, 33, 63, 64, 100, 1_000, 123_456, 5_000_000, CAP_NS,
        ] {
            let i = Histogram::index(v);
            assert!(Histogram::upper(i) >= v, "{v}");
            assert!(i == 0 || Histogram::upper(i - 1) < v, "{v}");
        }
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5).unwrap_or(0);
        assert!((500_000..=520_000).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), Some(1_000_000));
    }

    #[test]
    fn the_in_place_parser_agrees_with_the_decoder() {
        assert!(check_parser().is_ok());
    }

    #[test]
    fn the_schedule_keeps_its_rate_and_skips_when_far_behind() {
        let mut s = Schedule {
            base: 0,
            video: true,
            audio_done: 0,
            frames_done: 0,
        };
        let mut audio = 0;
        let mut frames = 0;
        for t in (0..1_000_000_000u64).step_by(10_000_000) {
            let (a, f, skipped) = s.due(t);
            assert_eq!(skipped, 0);
            audio += a;
            frames += f;
        }
        assert_eq!((audio, frames), (50, 30));
        let (_, _, skipped) = s.due(3_000_000_000);
        assert!(skipped > 0);
    }
}
