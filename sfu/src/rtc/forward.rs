//! Forwarding: a publisher's packets to its subscribers' peer connections
//! after the sender check, intercom frames in and out, and pausing a
//! subscriber's video while it reports loss.

use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::{Header, Packet};
use satsuma_core::media::{Codec, FRAME_START};
use satsuma_core::wire::{Blob, ConnId, Media, Transport};

use super::peer::{self, Kind, Peer};
use super::shard::{Publication, Shard, WireFrame, mark};
use crate::metrics::{self, DropReason, Metrics};

/// How often a member's audio track may change codec: an intercom's change
/// makes every desktop renegotiate, and a desktop flipping codecs would
/// make every receiver start a new decoder and jitter buffer.
const CODEC_CHANGE_INTERVAL: Duration = Duration::from_secs(2);

impl Publication {
    /// Whether its codec may change at `now`.
    fn may_change_codec(&self, now: Instant) -> bool {
        self.codec_since
            .is_none_or(|at| now.saturating_duration_since(at) >= CODEC_CHANGE_INTERVAL)
    }
}

/// What became of a packet for one subscriber.
enum Delivery {
    Sent,
    /// Its video is paused.
    Paused,
    /// Its video resumes: the publisher is asked for a key frame.
    Resumed,
    /// It is not sent this track (not a subscriber, or not yet negotiated).
    NoTrack,
}

impl Kind {
    fn metric(self) -> metrics::Kind {
        match self {
            Self::Audio => metrics::Kind::Audio,
            Self::Video => metrics::Kind::Video,
        }
    }
}

impl Shard {
    /// One RTP packet from a desktop publisher, forwarded only if its
    /// SFrame KID names the publisher's own leaf. An audio packet is one
    /// protected frame. A video packet is part of one, after a descriptor
    /// byte (`satsuma_core::media::FRAME_START`): the first packet of a frame
    /// carries the SFrame header and is checked; the rest of that frame
    /// (same timestamp) follows it, and nothing else does.
    pub(super) fn forward(
        &mut self,
        room: u64,
        from: ConnId,
        kind: Kind,
        packet: Packet,
        arrival: Instant,
        now: Instant,
    ) {
        self.tap.record(&packet.payload);
        self.metrics.received(kind.metric(), packet.payload.len());
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        if !r.members.contains_key(&from) {
            self.metrics.dropped(DropReason::NotMember);
            return;
        }
        let Some(publication) = r.publications.get_mut(&(from, kind)) else {
            return;
        };
        if kind == Kind::Audio && packet.header.payload_type != publication.codec.rtp().payload_type
        {
            // A desktop changed its audio codec on the same track (G.722
            // while an intercom is in the call, Opus again after): every
            // subscriber's leg negotiated every audio codec, so the packets
            // go on with the new payload type, no renegotiation.
            match Codec::from_payload_type(packet.header.payload_type).filter(|c| c.is_audio()) {
                Some(codec) if publication.may_change_codec(now) => {
                    tracing::debug!(conn = %from, ?codec, "audio codec changed");
                    publication.codec = codec;
                    publication.rtc = peer::codec(codec);
                    publication.codec_since = Some(now);
                }
                _ => {
                    self.metrics.dropped(DropReason::Codec);
                    return;
                }
            }
        }
        let codec = publication.codec;
        let passed = if kind == Kind::Video {
            let timestamp = packet.header.timestamp;
            match packet.payload.split_first() {
                Some((&descriptor, frame)) if descriptor & FRAME_START != 0 => {
                    let checked = r.senders.check_frame(from, codec, frame);
                    publication.frame = checked.is_ok().then_some(timestamp);
                    checked.map(|()| true)
                }
                // The rest of a frame whose start passed.
                Some(_) => Ok(publication.frame == Some(timestamp)),
                None => Ok(false),
            }
        } else {
            r.senders
                .check_frame(from, codec, &packet.payload)
                .map(|()| true)
        };
        match passed {
            Ok(true) => {}
            Ok(false) => {
                self.metrics.dropped(DropReason::NotSframe);
                return;
            }
            Err(e) => {
                r.refusals.note(&self.metrics, from, "webrtc", &e);
                return;
            }
        }
        if kind == Kind::Audio && r.members.values().any(|t| *t == Transport::Wire) {
            match codec {
                c @ (Codec::Pcmu | Codec::Pcma | Codec::G722) => {
                    if let Some(payload) = Blob::copy_from(&packet.payload) {
                        r.outbox.wire_media(Media {
                            sender: from,
                            codec: c,
                            timestamp: packet.header.timestamp,
                            sequence: packet.header.sequence_number,
                            payload,
                        });
                    }
                }
                _ => self.metrics.dropped(DropReason::Codec),
            }
        }
        self.send_to_subscribers(room, (from, kind), &packet, arrival, now);
    }

    /// An intercom member's audio frame, for the desktop members.
    pub(super) fn forward_wire(&mut self, room: u64, media: WireFrame, now: Instant) {
        if !media.codec.is_audio() {
            self.metrics.dropped(DropReason::Codec);
            return;
        }
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        if r.members.get(&media.sender) != Some(&Transport::Wire) {
            self.metrics.dropped(DropReason::NotMember);
            return;
        }
        let key = (media.sender, Kind::Audio);
        let new = match r.publications.get(&key) {
            None => true,
            Some(p) if p.codec == media.codec => false,
            Some(p) if !p.may_change_codec(now) => {
                // An intercom flipping codecs must not make every desktop
                // renegotiate on every frame.
                self.metrics.dropped(DropReason::Codec);
                return;
            }
            Some(_) => true,
        };
        if new {
            tracing::debug!(conn = %media.sender, codec = ?media.codec, "intercom audio track");
            r.publications.insert(
                key,
                Publication {
                    codec: media.codec,
                    rtc: peer::codec(media.codec),
                    ssrc: 0,
                    receiver: None,
                    codec_since: Some(now),
                    frame: None,
                },
            );
            self.sync_room(room, now);
        }
        let packet = Packet {
            header: Header {
                version: 2,
                // The first frame of the track starts a talkspurt.
                marker: new,
                payload_type: media.codec.rtp().payload_type,
                sequence_number: media.sequence,
                timestamp: media.timestamp,
                ..Default::default()
            },
            payload: media.payload,
        };
        self.send_to_subscribers(room, key, &packet, now, now);
    }

    /// `packet` of the track `about` to every present member sent it.
    fn send_to_subscribers(
        &mut self,
        room: u64,
        about: (ConnId, Kind),
        packet: &Packet,
        arrival: Instant,
        now: Instant,
    ) {
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        let recover = Duration::from_millis(self.settings.recover_after_ms);
        let mut key_frame = false;
        for (&to, &key) in &r.peers {
            if to == about.0 || !r.members.contains_key(&to) {
                continue;
            }
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            match deliver(peer, about, packet, now, recover, &self.metrics) {
                Delivery::Sent => {
                    self.metrics
                        .forwarded_after(now.saturating_duration_since(arrival));
                    mark(&mut self.queued, &mut self.dirty, key);
                }
                Delivery::Resumed => {
                    key_frame = true;
                    mark(&mut self.queued, &mut self.dirty, key);
                }
                Delivery::Paused => self.metrics.dropped(DropReason::SlowSubscriber),
                Delivery::NoTrack => {}
            }
        }
        if key_frame {
            self.request_key_frame(room, about, now);
        }
    }

    /// Asks the publisher of `about` for a key frame (nothing for an
    /// intercom's track, which has none).
    pub(super) fn request_key_frame(&mut self, room: u64, about: (ConnId, Kind), now: Instant) {
        let Some(ssrc) = self.publisher_ssrc(room, about) else {
            return;
        };
        self.send_to_publisher(
            room,
            about,
            now,
            vec![Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            })],
        );
    }

    /// The SSRC the publisher of `about` sends it on (0 for an intercom).
    pub(super) fn publisher_ssrc(&self, room: u64, about: (ConnId, Kind)) -> Option<u32> {
        self.rooms
            .get(&room)
            .and_then(|r| r.publications.get(&about))
            .map(|p| p.ssrc)
    }

    /// Sends `packets` to the publisher of `about` on its receiver.
    pub(super) fn send_to_publisher(
        &mut self,
        room: u64,
        about: (ConnId, Kind),
        now: Instant,
        packets: Vec<Box<dyn rtc::rtcp::Packet>>,
    ) {
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        let Some(receiver) = r.publications.get(&about).and_then(|p| p.receiver) else {
            return;
        };
        let Some(&key) = r.peers.get(&about.0) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if let Some(mut receiver) = peer.pc.rtp_receiver(receiver) {
            let _ = receiver.write_rtcp(now, packets);
        }
        self.touch(key);
    }
}

/// `packet` on `peer`'s track for `about`, with its SSRC and (after a
/// video pause) sequence numbers rewritten and header extensions dropped
/// (those negotiated with the publisher mean nothing to the subscriber).
fn deliver(
    peer: &mut Peer,
    about: (ConnId, Kind),
    packet: &Packet,
    now: Instant,
    recover: Duration,
    metrics: &Metrics,
) -> Delivery {
    let congested = peer
        .bad_report
        .is_some_and(|at| now.saturating_duration_since(at) < recover);
    let Some(out) = peer.outgoing.get_mut(&about).filter(|_| peer.connected) else {
        return Delivery::NoTrack;
    };
    let mut resumed = false;
    if out.rebase {
        if peer.offer.is_some() {
            // The offer announcing this track (or naming this SSRC's new
            // publisher) is not answered.
            return Delivery::NoTrack;
        }
        // Its sequence numbers go on where the last track's stopped, or
        // the receiver's SRTP could take a jump for a rollover or a
        // replay.
        out.rebase = false;
        out.offset = out.last.map_or(0, |last| {
            last.wrapping_add(1)
                .wrapping_sub(packet.header.sequence_number)
        });
        // It starts in the middle of the publisher's pictures.
        resumed = about.1 == Kind::Video;
    }
    if about.1 == Kind::Video {
        if congested {
            out.skipped = true;
            return Delivery::Paused;
        }
        if out.skipped {
            // Continuous sequence numbers: the pause is not loss.
            out.skipped = false;
            out.offset = out.last.map_or(0, |last| {
                last.wrapping_add(1)
                    .wrapping_sub(packet.header.sequence_number)
            });
            resumed = true;
            tracing::debug!(conn = %peer.conn, "video resumes");
        }
    }
    let sequence = packet.header.sequence_number.wrapping_add(out.offset);
    let copy = Packet {
        header: Header {
            ssrc: out.ssrc,
            sequence_number: sequence,
            extension: false,
            extensions: Vec::new(),
            extensions_padding: 0,
            ..packet.header.clone()
        },
        payload: packet.payload.clone(),
    };
    out.last = Some(sequence);
    if let Some(history) = &mut out.history {
        history.keep(&copy);
    }
    let sender = out.sender;
    let bytes = copy.payload.len();
    let Some(mut sender) = peer.pc.rtp_sender(sender) else {
        return Delivery::NoTrack;
    };
    if let Err(e) = sender.write_rtp(now, copy) {
        // Not negotiated yet (the answer is still out), or the codec
        // changed under it.
        tracing::trace!(conn = %peer.conn, "not forwarded: {e}");
        return Delivery::NoTrack;
    }
    metrics.sent(about.1.metric(), bytes);
    if resumed {
        Delivery::Resumed
    } else {
        Delivery::Sent
    }
}
