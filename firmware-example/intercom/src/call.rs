//! The intercom in a call, without IO: a full MLS member on the SFU's
//! intercom link, sending G.711 µ-law or G.722 and decoding and measuring
//! what it hears in either.
//!
//! [`Intercom`] wraps the core's sans-IO link ([`Connection`]): the board
//! drives it like any client (open a TCP stream, [`Intercom::link_up`],
//! feed it each length-prefixed message, write what
//! [`Intercom::poll_transmit`] gives, wake it at
//! [`Intercom::poll_timeout`]), and every 20 ms asks it for an audio frame
//! ([`Intercom::audio_frame`], or [`Intercom::audio_frame_from`] with a
//! microphone's samples). The audio path allocates nothing: frames
//! are sealed into and opened from the intercom's own buffers, and media
//! messages are read and written in place ([`MediaRef`]).
//!
//! Where a board has no microphone (QEMU), the intercom sends a tone. What
//! it hears it decodes, and counts, checksums and measures per member
//! ([`IntercomEvent::Heard`]), and mixes for the speaker
//! ([`crate::speaker`]): every 20 ms [`Intercom::speaker_frame`] gives the
//! next 20 ms to play, measured too ([`IntercomEvent::Played`]).

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use satsuma_core::Instant;
use satsuma_core::committer::{Member, MemberConfig, Status};
use satsuma_core::link::{Connection, LinkConfig, LinkError, LinkEvent};
use satsuma_core::media::{Codec, MediaKeys, Unprotected};
use satsuma_core::mls::Session;
use satsuma_core::sframe::KeyRing;
use satsuma_core::wire::{Capabilities, ConnId, MediaRef, RoomName, Transport};

use crate::audio::{
    ENCODED, FRAME, FRAME_TICKS, Heard, RATE, Tone, ToneMeter, Voice, VoiceDecoder, VoiceEncoder,
    WIDE_FRAME,
};
use crate::crc32::Crc32;
use crate::speaker::{Mixed, Place, Speaker};

/// Members whose audio the intercom measures at once (a room's other
/// members, up to the 16-member room of the RAM budget).
pub const MAX_PEERS: usize = 16;

/// Bytes of a sealed 20 ms frame, at most: the frame, an SFrame header
/// (up to 17 bytes) and the AES-GCM tag.
const SEALED: usize = ENCODED + 64;
/// The largest frame opened: 20 ms of G.711 or G.722, or of Opus from a
/// desktop that sends neither (opened, counted, not played).
const RECEIVED: usize = 512;

/// How the intercom takes part.
#[derive(Debug, Clone)]
pub struct IntercomConfig {
    /// The room it joins.
    pub room: RoomName,
    /// The codec it sends in (it plays both).
    pub voice: Voice,
    /// The tone [`Intercom::audio_frame`] sends, in Hz.
    pub tone_hz: u32,
    /// How often it reports what it heard from each member.
    pub report_every: Duration,
}

/// What the intercom reports, for its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntercomEvent {
    /// The link's and the member's events (media excepted).
    Link(LinkEvent),
    /// What one member's frames carried over the last report period.
    Heard {
        /// The member's leaf index.
        leaf: u64,
        /// G.711 and G.722 frames opened, decoded and measured.
        frames: u32,
        /// Of those, G.722's.
        wideband: u32,
        /// Frames that opened but carry another codec (a desktop sending
        /// Opus): not played.
        other_codec: u32,
        /// Frames that did not open (a forgery, a key this member never
        /// had).
        failed: u32,
        /// CRC-32 of the opened frames, in order.
        crc: u32,
        /// The tone measured.
        heard: Heard,
    },
    /// What the speaker played over the last report period.
    Played {
        /// 20 ms slots played.
        slots: u32,
        /// Frames dropped because they came too early for the speaker's
        /// ring.
        dropped: u32,
        /// The tone measured in what it played.
        heard: Heard,
    },
}

#[derive(Debug)]
struct Peer {
    leaf: u64,
    frames: u32,
    wideband: u32,
    other_codec: u32,
    crc: Crc32,
    meter: ToneMeter,
    decoder: VoiceDecoder,
    /// Where its next frame goes in the speaker's ring.
    place: Place,
}

/// The intercom as a member of a call; see the [module](self).
#[derive(Debug)]
pub struct Intercom {
    conn: Connection<Session>,
    ring: Option<KeyRing>,
    tone: Tone,
    encoder: VoiceEncoder,
    talking: bool,
    sequence: u16,
    timestamp: u32,
    peers: Vec<Peer>,
    failed: u32,
    sent: u32,
    report_every: Duration,
    next_report: Option<Instant>,
    first_heard: Option<Instant>,
    events: VecDeque<IntercomEvent>,
    pcm: [i16; WIDE_FRAME],
    plain: [u8; ENCODED],
    sealed: [u8; SEALED],
    received: [u8; RECEIVED],
    speaker: Speaker,
    /// What the speaker played since the last report, and dropped.
    played: (ToneMeter, u32, u32),
}

// The entry points a board's main task calls are `#[inline(never)]`:
// inlined into the task's poll function, their locals made its stack frame
// 8.3 KB, under every message handled; out of line, their frames exist only
// while they run (the QEMU door's stack high-water: 25.6 → 22.6 KB).
impl Intercom {
    /// An intercom around `session`, not connected yet. It asks the SFU
    /// for the time before it joins (it has no clock of its own).
    #[must_use]
    #[inline(never)]
    pub fn new(session: Session, config: IntercomConfig) -> Self {
        let member = Member::new(
            session,
            MemberConfig {
                room: config.room,
                capabilities: Capabilities {
                    // Committing for a 16-member room takes about 71 KB of
                    // heap (README, MLS on the Cortex-M4): the intercom
                    // leaves it to a desktop when one is present. With none
                    // (only members that cannot commit), the committer rule
                    // falls back to every present member, and the door
                    // commits.
                    can_commit: false,
                    transport: Transport::Wire,
                },
            },
        );
        let ring = member.media_ring();
        let conn = Connection::new(
            member,
            LinkConfig {
                clock_from_sfu: true,
                // Control events only pile up between two polls; media
                // never goes through this queue.
                events: 32,
                ..LinkConfig::default()
            },
        );
        Self {
            conn,
            ring,
            tone: Tone::new(config.tone_hz, 8_000, config.voice.rate()),
            encoder: VoiceEncoder::new(config.voice),
            talking: true,
            sequence: 0,
            timestamp: 0,
            peers: Vec::with_capacity(MAX_PEERS),
            failed: 0,
            sent: 0,
            report_every: config.report_every,
            next_report: None,
            first_heard: None,
            events: VecDeque::new(),
            pcm: [0; WIDE_FRAME],
            plain: [0; ENCODED],
            sealed: [0; SEALED],
            received: [0; RECEIVED],
            speaker: Speaker::new(),
            played: (ToneMeter::default(), 0, 0),
        }
    }

    /// A TCP stream to the SFU is open.
    ///
    /// # Errors
    /// When no key package can be made.
    #[inline(never)]
    pub fn link_up(&mut self, now: Instant) -> Result<(), satsuma_core::committer::CommitterError> {
        let up = self.conn.link_up(now);
        self.after(now);
        up
    }

    /// Leaves the room: `Leave` is queued for the SFU, and the group and
    /// its keys are forgotten.
    #[inline(never)]
    pub fn leave(&mut self, now: Instant) {
        self.conn.leave(now);
        if let Some(ring) = self.ring.as_mut() {
            ring.clear();
        }
    }

    /// The stream is gone; the seat waits for the next one.
    #[inline(never)]
    pub fn link_down(&mut self, now: Instant) {
        self.conn.link_down(now);
    }

    /// One message from the SFU (a frame's body, without its length).
    ///
    /// # Errors
    /// [`LinkError::Wire`] for bytes that are no message; nothing changed.
    #[inline(never)]
    pub fn handle_message(&mut self, now: Instant, bytes: &[u8]) -> Result<(), LinkError> {
        // Media is opened in place; everything else is the link's.
        if let Some(media) = MediaRef::from_to_client(bytes) {
            self.hear(now, &media?);
            return Ok(());
        }
        let handled = self.conn.handle_message(now, bytes);
        self.after(now);
        handled
    }

    /// Time passes.
    #[inline(never)]
    pub fn handle_timeout(&mut self, now: Instant) {
        self.conn.handle_timeout(now);
        if self.next_report.is_some_and(|at| now >= at) {
            self.report(now);
        }
        self.after(now);
    }

    /// When [`Intercom::handle_timeout`] next has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ring = self.ring.as_ref().and_then(KeyRing::poll_timeout);
        [self.conn.poll_timeout(), self.next_report, ring]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next message for the SFU, without its length prefix.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.conn.poll_transmit()
    }

    /// The next thing to log.
    #[inline(never)]
    pub fn poll_event(&mut self) -> Option<IntercomEvent> {
        self.events.pop_front()
    }

    /// Push-to-talk: whether [`Intercom::audio_frame`] sends.
    pub fn set_talking(&mut self, talking: bool) {
        self.talking = talking;
    }

    /// The next 20 ms of the configured tone, as
    /// [`Intercom::audio_frame_from`] sends a microphone's. Call it every
    /// 20 ms.
    ///
    /// # Errors
    /// As [`Intercom::audio_frame_from`].
    #[inline(never)]
    pub fn audio_frame(
        &mut self,
        now: Instant,
        out: &mut [u8],
    ) -> Result<Option<usize>, LinkError> {
        // The tone runs on whether or not it is sent, like a microphone.
        let pcm = self
            .pcm
            .get_mut(..self.encoder.voice().samples())
            .unwrap_or_default();
        self.tone.fill(pcm);
        let encoded = self
            .encoder
            .encode(pcm, &mut self.plain)
            .map_err(|_| LinkError::NotConnected)?;
        self.send_encoded(now, encoded, out)
    }

    /// `pcm`, 20 ms at the voice's rate ([`Voice::samples`]), encoded,
    /// sealed and framed for the SFU into `out`: its length, or `None` when
    /// there is nothing to send (not in the group yet, not talking, no
    /// link). Call it every 20 ms.
    ///
    /// # Errors
    /// When `pcm` is not one frame, or the frame cannot be sealed or does
    /// not fit `out`.
    pub fn audio_frame_from(
        &mut self,
        now: Instant,
        pcm: &[i16],
        out: &mut [u8],
    ) -> Result<Option<usize>, LinkError> {
        let encoded = self
            .encoder
            .encode(pcm, &mut self.plain)
            .map_err(|_| LinkError::NotConnected)?;
        self.send_encoded(now, encoded, out)
    }

    /// The `encoded` bytes of `plain`, sealed and framed into `out`, as
    /// [`Intercom::audio_frame_from`] says.
    fn send_encoded(
        &mut self,
        now: Instant,
        encoded: usize,
        out: &mut [u8],
    ) -> Result<Option<usize>, LinkError> {
        let timestamp = self.timestamp;
        self.timestamp = self.timestamp.wrapping_add(FRAME_TICKS);
        if !self.talking || !self.conn.is_up() || self.conn.member().status() != Status::InGroup {
            return Ok(None);
        }
        let Some(ring) = self.ring.as_mut() else {
            return Ok(None);
        };
        let codec = self.encoder.voice().codec();
        let mut keys = MediaKeys::new(ring);
        let sealed = keys
            .protect(
                codec,
                self.plain.get(..encoded).unwrap_or_default(),
                &mut self.sealed,
            )
            .map_err(|_| LinkError::NotConnected)?;
        let media = MediaRef {
            // The SFU puts the sender in.
            sender: ConnId(0),
            codec,
            timestamp,
            sequence: self.sequence,
            payload: &self.sealed[..sealed],
        };
        let n = self.conn.encode_media(now, &media, out)?;
        self.sequence = self.sequence.wrapping_add(1);
        self.sent += 1;
        Ok(Some(n))
    }

    /// The board fell behind (a commit or a flash erase held it) and
    /// `frames` 20 ms slots went by unsent: the next frame's timestamp
    /// moves on by as much, so that receivers play a gap where they would
    /// otherwise get a burst of stale audio their playout overflows with.
    /// Sequence numbers stay contiguous: no packet was lost.
    pub fn frames_missed(&mut self, frames: u32) {
        self.timestamp = self
            .timestamp
            .wrapping_add(FRAME_TICKS.wrapping_mul(frames));
    }

    /// The board's 20 ms frame timer fired `late_ms` after its slot: the
    /// whole slots in that are skipped ([`Intercom::frames_missed`]).
    /// Returns the milliseconds to move the timer on by.
    pub fn skip_missed(&mut self, late_ms: u64) -> u64 {
        let slots = late_ms / 20;
        self.frames_missed(u32::try_from(slots).unwrap_or(u32::MAX));
        slots * 20
    }

    /// Frames sent so far.
    #[must_use]
    pub fn sent(&self) -> u32 {
        self.sent
    }

    /// The next 20 ms for the speaker (8 kHz): every member heard, mixed.
    /// Call it every 20 ms, as the speaker plays.
    pub fn speaker_frame(&mut self, out: &mut [i16; FRAME]) {
        self.speaker.pop(out);
        self.played.0.add(out, RATE);
        self.played.1 += 1;
    }

    /// When the first frame from another member opened.
    #[must_use]
    pub fn first_heard(&self) -> Option<Instant> {
        self.first_heard
    }

    /// The member: its status, group, roster and safety number.
    #[must_use]
    pub fn member(&self) -> &Member<Session> {
        self.conn.member()
    }

    /// Opens a frame from another member and measures it.
    fn hear(&mut self, now: Instant, media: &MediaRef<'_>) {
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        if media.payload.len() > RECEIVED {
            self.failed += 1;
            return;
        }
        let mut keys = MediaKeys::new(ring);
        let opened = keys.unprotect_or_hold(now, media.codec, 0, media.payload, &mut self.received);
        let (leaf, len) = match opened {
            Ok(Unprotected::Opened { opened, len }) => (opened.sender, len),
            // Sealed in an epoch whose commit is on its way: opened when
            // it arrives (`after`), or dropped as late audio.
            Ok(Unprotected::Held) => return,
            Err(_) => {
                self.failed += 1;
                return;
            }
        };
        self.measure(now, leaf, media.codec, len);
    }

    fn measure(&mut self, now: Instant, leaf: u64, codec: Codec, len: usize) {
        let frame = &self.received[..len.min(RECEIVED)];
        let peer = match self.peers.iter().position(|p| p.leaf == leaf) {
            Some(i) => &mut self.peers[i],
            None if self.peers.len() < MAX_PEERS => {
                self.peers.push(Peer {
                    leaf,
                    frames: 0,
                    wideband: 0,
                    other_codec: 0,
                    crc: Crc32::new(),
                    meter: ToneMeter::default(),
                    decoder: VoiceDecoder::default(),
                    place: Place::default(),
                });
                let last = self.peers.len() - 1;
                &mut self.peers[last]
            }
            None => return,
        };
        self.first_heard.get_or_insert(now);
        let decoded = Voice::from_codec(codec).and_then(|voice| {
            let n = peer.decoder.decode(voice, frame, &mut self.pcm).ok()?;
            Some((voice, n))
        });
        match decoded {
            Some((voice, n)) => {
                peer.frames += 1;
                if voice == Voice::G722 {
                    peer.wideband += 1;
                }
                peer.crc.update(frame);
                let pcm = self.pcm.get(..n).unwrap_or_default();
                peer.meter.add(pcm, voice.rate());
                if self.speaker.add(&mut peer.place, pcm, voice.rate()) == Mixed::Overflow {
                    self.played.2 += 1;
                }
            }
            None => peer.other_codec += 1,
        }
        if self.next_report.is_none() {
            self.next_report = Some(now.saturating_add(self.report_every));
        }
    }

    /// Reports each member heard since the last report, and forgets those
    /// who sent nothing (their decoders with them).
    fn report(&mut self, now: Instant) {
        self.peers.retain(|p| p.frames + p.other_codec > 0);
        for peer in &mut self.peers {
            self.events.push_back(IntercomEvent::Heard {
                leaf: peer.leaf,
                frames: peer.frames,
                wideband: peer.wideband,
                other_codec: peer.other_codec,
                failed: self.failed,
                crc: core::mem::replace(&mut peer.crc, Crc32::new()).finish(),
                heard: peer.meter.take(),
            });
            peer.frames = 0;
            peer.wideband = 0;
            peer.other_codec = 0;
        }
        self.failed = 0;
        if self.played.1 > 0 {
            let (meter, slots, dropped) = &mut self.played;
            self.events.push_back(IntercomEvent::Played {
                slots: core::mem::take(slots),
                dropped: core::mem::take(dropped),
                heard: meter.take(),
            });
        }
        self.next_report = (!self.peers.is_empty()).then(|| now.saturating_add(self.report_every));
    }

    /// After every input: new keys to the media path, held frames whose
    /// epoch arrived opened, the link's events to the log.
    fn after(&mut self, now: Instant) {
        if let Some(ring) = self.ring.as_mut() {
            let _ = self.conn.member_mut().hand_over_keys(now, ring);
            if ring.poll_timeout().is_some_and(|at| at <= now) {
                ring.handle_timeout(now);
            }
        }
        // Frames held for the epoch that just arrived, each opened and
        // measured in turn: no copy of them is gathered (held frames pile
        // up exactly while a commit is processed, the heap's peak).
        while let Some(ring) = self.ring.as_mut() {
            let mut keys = MediaKeys::new(ring);
            let Some(frame) = keys.take_ready() else {
                break;
            };
            let opened = keys.unprotect(frame.codec, &frame.protected, &mut self.received);
            if let Ok((opened, len)) = opened {
                self.measure(now, opened.sender, frame.codec, len);
            }
        }
        while let Some(event) = self.conn.poll_event() {
            if !matches!(event, LinkEvent::Media(_)) {
                self.events.push_back(IntercomEvent::Link(event));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code.
mod tests {
    use satsuma_core::UnixTime;
    use satsuma_core::committer::{Request, Room, RoomConfig, Transmit};
    use satsuma_core::mls::{MemberInfo, MemoryStore, SatsumaCrypto};
    use satsuma_core::wire::{LinkMsg, Media, Message as _, Open, ToClient, ToServer, frame_len};

    use super::*;

    const NOW_MS: u64 = 1_796_300_000_000;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn session(seed: u8, name: &str) -> Session {
        Session::create(
            SatsumaCrypto::from_seed([seed; 32]),
            MemberInfo::new(name, name).unwrap(),
            crate::intercom_session_config(),
            MemoryStore::default(),
        )
        .unwrap()
    }

    /// Core's delivery service, a desktop on it with a clock, and the
    /// intercom under test on the link.
    struct Call {
        room: Room,
        desk: Member<Session>,
        desk_ring: KeyRing,
        desk_conn: Option<ConnId>,
        door: Intercom,
        door_conn: Option<ConnId>,
    }

    impl Call {
        fn new() -> Self {
            Self::speaking(Voice::Pcmu)
        }

        /// The door sending in `voice`.
        fn speaking(voice: Voice) -> Self {
            let mut desk = Member::new(
                session(1, "Desk"),
                MemberConfig {
                    room: RoomName::new("door").unwrap(),
                    capabilities: Capabilities {
                        can_commit: true,
                        transport: Transport::WebRtc,
                    },
                },
            );
            desk.set_time(UnixTime::from_secs(NOW_MS / 1000));
            desk.join(at(0)).unwrap();
            let desk_ring = desk.media_ring().unwrap();
            let door = Intercom::new(
                session(2, "Door"),
                IntercomConfig {
                    room: RoomName::new("door").unwrap(),
                    voice,
                    tone_hz: 500,
                    report_every: Duration::from_secs(1),
                },
            );
            let mut call = Self {
                room: Room::new(RoomConfig::default()),
                desk,
                desk_ring,
                desk_conn: None,
                door,
                door_conn: None,
            };
            call.settle(at(0));
            call
        }

        fn settle(&mut self, now: Instant) {
            for _ in 0..64 {
                let mut moved = false;
                while let Some(request) = self.desk.poll_transmit() {
                    moved = true;
                    let conn = self.room.handle(now, self.desk_conn, request).ok();
                    self.desk_conn = self.desk_conn.or(conn);
                }
                while let Some(body) = self.door.poll_transmit() {
                    moved = true;
                    match ToServer::decode(&body).unwrap() {
                        ToServer::Ping { nonce } => {
                            let clock = ToClient::Link(LinkMsg::Clock {
                                nonce,
                                unix_ms: NOW_MS,
                            });
                            self.door
                                .handle_message(now, &clock.encode().unwrap())
                                .unwrap();
                        }
                        ToServer::Open(Open::Join(join)) => {
                            self.door_conn =
                                Some(self.room.handle(now, None, Request::Join(join)).unwrap());
                        }
                        ToServer::Control(up) => {
                            let _ = self.room.handle(now, self.door_conn, Request::Control(up));
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                while let Some(Transmit { to, message }) = self.room.poll_transmit() {
                    moved = true;
                    if self.desk_conn.is_some_and(|c| to.contains(c)) {
                        let _ = self.desk.handle_message(now, message.clone());
                    }
                    if self.door_conn.is_some_and(|c| to.contains(c)) {
                        let bytes = ToClient::Control(message).encode().unwrap();
                        self.door.handle_message(now, &bytes).unwrap();
                    }
                }
                self.desk.hand_over_keys(now, &mut self.desk_ring).unwrap();
                if !moved {
                    return;
                }
            }
        }

        /// The desk's tone, sealed, as the SFU forwards it to the door.
        fn desk_says(&mut self, tone: &mut Tone, sequence: u16) -> Vec<u8> {
            self.desk_sends(Codec::Pcmu, tone, sequence)
        }

        /// 20 ms of `tone` in `codec` (G.711 bytes for one the door does
        /// not play).
        fn desk_sends(&mut self, codec: Codec, tone: &mut Tone, sequence: u16) -> Vec<u8> {
            let voice = Voice::from_codec(codec).unwrap_or(Voice::Pcmu);
            let mut pcm = [0; WIDE_FRAME];
            tone.fill(&mut pcm[..voice.samples()]);
            let mut plain = [0; ENCODED];
            let len = VoiceEncoder::new(voice)
                .encode(&pcm[..voice.samples()], &mut plain)
                .unwrap();
            let mut sealed = [0; SEALED];
            let n = MediaKeys::new(&mut self.desk_ring)
                .protect(codec, &plain[..len], &mut sealed)
                .unwrap();
            ToClient::Media(Media {
                sender: self.desk_conn.unwrap(),
                codec,
                timestamp: u32::from(sequence) * 160,
                sequence,
                payload: satsuma_core::wire::Blob::copy_from(&sealed[..n]).unwrap(),
            })
            .encode()
            .unwrap()
        }
    }

    fn heard(door: &mut Intercom) -> Vec<(u64, u32, u32, u32)> {
        reports(door).0
    }

    /// The door's reports: (leaf, frames, failed, Hz) per member heard,
    /// and (slots, dropped, Hz) for what its speaker played.
    #[allow(clippy::type_complexity)] // Test code.
    fn reports(door: &mut Intercom) -> (Vec<(u64, u32, u32, u32)>, Vec<(u32, u32, u32)>) {
        let mut heard = Vec::new();
        let mut played = Vec::new();
        while let Some(event) = door.poll_event() {
            match event {
                IntercomEvent::Heard {
                    leaf,
                    frames,
                    failed,
                    heard: h,
                    other_codec: 0,
                    ..
                } => heard.push((leaf, frames, failed, h.hz)),
                IntercomEvent::Heard { other_codec, .. } => {
                    heard.push((u64::MAX, other_codec, 0, 0));
                }
                IntercomEvent::Played {
                    slots,
                    dropped,
                    heard: h,
                } => played.push((slots, dropped, h.hz)),
                IntercomEvent::Link(_) => {}
            }
        }
        (heard, played)
    }

    #[test]
    fn the_door_joins_with_the_sfus_clock_and_talks_both_ways() {
        let mut call = Call::new();
        call.door.link_up(at(10)).unwrap();
        call.settle(at(10));
        assert_eq!(call.door.member().status(), Status::InGroup);
        let door_number = call.door.member().group().safety_number().unwrap();
        assert_eq!(
            call.desk.group().safety_number().unwrap(),
            door_number,
            "the same safety number on the desk and the door"
        );

        // The door's tone reaches the desk: a second of frames, framed
        // for the stream and opened with the desk's keys.
        let mut out = [0; 512];
        let mut meter = ToneMeter::default();
        let mut last = 0;
        for i in 0..50u64 {
            let n = call
                .door
                .audio_frame(at(20 + 20 * i), &mut out)
                .unwrap()
                .expect("the door sends while in the group");
            let len = frame_len([out[0], out[1], out[2], out[3]]).unwrap();
            assert_eq!(len + 4, n);
            let ToServer::Media(media) = ToServer::decode(&out[4..n]).unwrap() else {
                panic!("not media");
            };
            let mut plain = [0; SEALED];
            let (opened, len) = MediaKeys::new(&mut call.desk_ring)
                .unprotect(media.codec, &media.payload, &mut plain)
                .unwrap();
            assert_eq!(opened.sender, 1, "the door's leaf");
            assert_eq!(media.codec, Codec::Pcmu);
            last = media.timestamp;
            let mut pcm = [0; WIDE_FRAME];
            let n = VoiceDecoder::default()
                .decode(Voice::Pcmu, &plain[..len], &mut pcm)
                .unwrap();
            meter.add(&pcm[..n], 8_000);
        }
        assert_eq!(call.door.sent(), 50);
        assert!(meter.take().hz.abs_diff(500) <= 2);

        // Three slots missed: the next frame is stamped 80 ms after the
        // last one, with the next sequence number.
        assert_eq!(call.door.skip_missed(79), 60);
        let n = call.door.audio_frame(at(1_100), &mut out).unwrap().unwrap();
        let ToServer::Media(media) = ToServer::decode(&out[4..n]).unwrap() else {
            panic!("not media");
        };
        assert_eq!(media.timestamp, last + 4 * FRAME_TICKS);
        assert_eq!(media.sequence, 50);

        // The desk's 660 Hz reaches the door, which reports it per member.
        let mut tone = Tone::new(660, 8_000, 8_000);
        for i in 0..50u16 {
            let bytes = call.desk_says(&mut tone, i);
            call.door
                .handle_message(at(1_000 + 20 * u64::from(i)), &bytes)
                .unwrap();
        }
        let next = call.door.poll_timeout().unwrap();
        call.door.handle_timeout(next);
        let reports = heard(&mut call.door);
        assert_eq!(reports.len(), 1, "{reports:?}");
        let (leaf, frames, failed, hz) = reports[0];
        assert_eq!((leaf, frames, failed), (0, 50, 0));
        assert!(hz.abs_diff(660) <= 2, "heard {hz} Hz");

        // Push-to-talk released: nothing is sent.
        call.door.set_talking(false);
        assert_eq!(call.door.audio_frame(at(3_000), &mut out).unwrap(), None);
    }

    #[test]
    fn the_door_speaks_and_plays_g722() {
        let mut call = Call::speaking(Voice::G722);
        call.door.link_up(at(10)).unwrap();
        call.settle(at(10));
        // The door's 500 Hz in G.722: 160 bytes per 20 ms, decoded at the
        // desk with one decoder across the frames, as a desktop does.
        let mut out = [0; 512];
        let mut meter = ToneMeter::default();
        let mut decoder = VoiceDecoder::default();
        for i in 0..50u64 {
            let n = call
                .door
                .audio_frame(at(20 + 20 * i), &mut out)
                .unwrap()
                .unwrap();
            let ToServer::Media(media) = ToServer::decode(&out[4..n]).unwrap() else {
                panic!("not media");
            };
            assert_eq!(media.codec, Codec::G722);
            assert_eq!(
                media.timestamp,
                160 * u32::try_from(i).unwrap(),
                "an 8 kHz RTP clock"
            );
            let mut plain = [0; SEALED];
            let (_, len) = MediaKeys::new(&mut call.desk_ring)
                .unprotect(media.codec, &media.payload, &mut plain)
                .unwrap();
            assert_eq!(len, ENCODED);
            let mut pcm = [0; WIDE_FRAME];
            let n = decoder
                .decode(Voice::G722, &plain[..len], &mut pcm)
                .unwrap();
            meter.add(&pcm[..n], 16_000);
        }
        let at_desk = meter.take();
        assert!(at_desk.hz.abs_diff(500) <= 2, "{at_desk:?}");
        assert_eq!(at_desk.samples, 16_000);

        // The desk's 660 Hz in G.722, over two report periods: the door
        // keeps the member's decoder between them and hears the tone in
        // both; a microphone's samples of the wrong size are refused.
        // Its speaker plays the tone at 8 kHz, a frame every 20 ms, none
        // dropped.
        let mut tone = Tone::new(660, 8_000, 16_000);
        let mut heard_reports = Vec::new();
        let mut played = Vec::new();
        let mut speaker = [0; FRAME];
        for i in 0..100u16 {
            let now = at(1_000 + 20 * u64::from(i));
            if call.door.poll_timeout().is_some_and(|t| t <= now) {
                call.door.handle_timeout(now);
                let (h, p) = reports(&mut call.door);
                heard_reports.extend(h);
                played.extend(p);
            }
            let bytes = call.desk_sends(Codec::G722, &mut tone, i);
            call.door.handle_message(now, &bytes).unwrap();
            call.door.speaker_frame(&mut speaker);
        }
        let next = call.door.poll_timeout().unwrap();
        call.door.handle_timeout(next);
        let (h, p) = reports(&mut call.door);
        heard_reports.extend(h);
        played.extend(p);
        assert_eq!(heard_reports.len(), 2, "{heard_reports:?}");
        for (leaf, frames, failed, hz) in heard_reports {
            assert_eq!((leaf, frames, failed), (0, 50, 0));
            assert!(hz.abs_diff(660) <= 2, "heard {hz} Hz");
        }
        // The meter counts zero crossings over every slot played: the
        // first period starts with the lead's one slot of silence.
        assert!(
            matches!(played[..], [(50, 0, first), (50, 0, second)]
                if first.abs_diff(660 * 49 / 50) <= 5 && second.abs_diff(660) <= 5),
            "{played:?}"
        );
        assert!(
            call.door
                .audio_frame_from(at(5_000), &[0; 160], &mut out)
                .is_err()
        );
    }

    #[test]
    fn forged_or_damaged_frames_are_counted_never_heard() {
        let mut call = Call::new();
        call.door.link_up(at(10)).unwrap();
        call.settle(at(10));
        let mut tone = Tone::new(660, 8_000, 8_000);
        let good = call.desk_says(&mut tone, 0);
        call.door.handle_message(at(100), &good).unwrap();
        // A flipped ciphertext byte, and a frame cut short.
        let mut forged = good.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        call.door.handle_message(at(120), &forged).unwrap();
        assert!(
            call.door
                .handle_message(at(140), &good[..good.len() - 3])
                .is_err()
        );
        let next = call.door.poll_timeout().unwrap();
        call.door.handle_timeout(next);
        // One frame opened (20 ms of 660 Hz reads coarsely), one failed.
        let reports = heard(&mut call.door);
        assert!(
            matches!(reports[..], [(0, 1, 1, hz)] if hz.abs_diff(660) <= 25),
            "{reports:?}"
        );
    }

    #[test]
    fn another_codec_opens_but_is_counted_apart_not_failed() {
        let mut call = Call::new();
        call.door.link_up(at(10)).unwrap();
        call.settle(at(10));
        let mut tone = Tone::new(660, 8_000, 8_000);
        for i in 0..5 {
            let opus = call.desk_sends(Codec::Opus, &mut tone, i);
            call.door.handle_message(at(100), &opus).unwrap();
        }
        let next = call.door.poll_timeout().unwrap();
        call.door.handle_timeout(next);
        let reports: Vec<_> = core::iter::from_fn(|| call.door.poll_event())
            .filter_map(|e| match e {
                IntercomEvent::Heard {
                    frames,
                    other_codec,
                    failed,
                    ..
                } => Some((frames, other_codec, failed)),
                _ => None,
            })
            .collect();
        assert_eq!(reports, [(0, 5, 0)], "five Opus frames, none failed");
    }

    #[test]
    fn frames_that_outrun_a_commit_are_held_then_heard() {
        let mut call = Call::new();
        call.door.link_up(at(10)).unwrap();
        call.settle(at(10));
        assert_eq!(call.door.member().group().epoch(), Some(1));
        // Carol joins; the desk commits her add. The desk and Carol get
        // the commit at once, the door's copy is held back.
        let mut carol = Member::new(
            session(3, "Carol"),
            MemberConfig {
                room: RoomName::new("door").unwrap(),
                capabilities: Capabilities {
                    can_commit: true,
                    transport: Transport::WebRtc,
                },
            },
        );
        carol.set_time(UnixTime::from_secs(NOW_MS / 1000));
        carol.join(at(100)).unwrap();
        let mut carol_conn = None;
        let mut to_door = Vec::new();
        for _ in 0..64 {
            let mut moved = false;
            while let Some(request) = carol.poll_transmit() {
                moved = true;
                let conn = call.room.handle(at(100), carol_conn, request).ok();
                carol_conn = carol_conn.or(conn);
            }
            while let Some(request) = call.desk.poll_transmit() {
                moved = true;
                let _ = call.room.handle(at(100), call.desk_conn, request);
            }
            while let Some(Transmit { to, message }) = call.room.poll_transmit() {
                moved = true;
                if call.desk_conn.is_some_and(|c| to.contains(c)) {
                    let _ = call.desk.handle_message(at(100), message.clone());
                }
                if carol_conn.is_some_and(|c| to.contains(c)) {
                    let _ = carol.handle_message(at(100), message.clone());
                }
                if call.door_conn.is_some_and(|c| to.contains(c)) {
                    to_door.push(ToClient::Control(message).encode().unwrap());
                }
            }
            if !moved {
                break;
            }
        }
        call.desk
            .hand_over_keys(at(100), &mut call.desk_ring)
            .unwrap();
        assert_eq!(call.desk.group().epoch(), Some(2));
        assert_eq!(call.door.member().group().epoch(), Some(1));

        // The desk speaks in epoch 2: the door holds the frames...
        let mut tone = Tone::new(660, 8_000, 8_000);
        for i in 0..10u16 {
            let bytes = call.desk_says(&mut tone, i);
            call.door
                .handle_message(at(120 + 20 * u64::from(i)), &bytes)
                .unwrap();
        }
        assert!(
            call.door.first_heard().is_none(),
            "nothing opened before the commit"
        );
        // ...and opens every one of them once the commit arrives.
        for bytes in to_door {
            call.door.handle_message(at(400), &bytes).unwrap();
        }
        assert_eq!(call.door.member().group().epoch(), Some(2));
        // The speaker takes what its ring holds of that burst (two slots
        // ahead of the one playing next) and drops the rest: late audio
        // is not worth a lasting delay.
        let mut speaker = [0; FRAME];
        for _ in 0..3 {
            call.door.speaker_frame(&mut speaker);
        }
        let next = call.door.poll_timeout().unwrap();
        call.door.handle_timeout(next);
        let (heard, played) = reports(&mut call.door);
        assert!(
            matches!(heard[..], [(0, 10, 0, hz)] if hz.abs_diff(660) <= 10),
            "{heard:?}"
        );
        // Three slots: the lead's silence, then two of the tone (660 Hz
        // over two thirds of the period).
        assert!(
            matches!(played[..], [(3, 8, hz)] if hz.abs_diff(660 * 2 / 3) <= 10),
            "{played:?}"
        );
    }

    #[test]
    fn no_audio_before_the_group() {
        let mut call = Call::new();
        let mut out = [0; 512];
        assert_eq!(call.door.audio_frame(at(0), &mut out).unwrap(), None);
        call.door.link_up(at(10)).unwrap();
        // Asked the clock, not joined yet.
        assert_eq!(call.door.audio_frame(at(20), &mut out).unwrap(), None);
    }
}
