//! Publishing and forwarding: a publisher's packets to its subscribers'
//! queues, intercom frames in and out, and pausing video for subscribers
//! that fall behind.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::Bytes;
use satsuma_core::media::{Codec, FRAME_START};
use satsuma_core::wire::{Blob, Media, Transport};
use tokio::sync::mpsc;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp::header::Header;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::track::track_remote::TrackRemote;

use super::{
    CODEC_CHANGE_INTERVAL, Outgoing, Peer, Publication, RoomInner, Route, Rtcp, TrackKey, spawn,
};
use crate::metrics::{DropReason, ErrorKind};
use crate::rtc::engine::capability;

impl RoomInner {
    pub(super) fn on_track(&self, peer: &Arc<Peer>, track: Arc<TrackRemote>) {
        let video = track.kind() == RTPCodecType::Video;
        let key = TrackKey {
            publisher: peer.conn,
            video,
        };
        let mime = track.codec().capability.mime_type;
        let Some((codec, capability)) = Codec::from_mime(&mime).map(|c| (c, capability(c))) else {
            // Only a codec this SFU did not register can get here.
            tracing::warn!(conn = %peer.conn, %mime, "a track with an unknown codec is ignored");
            self.rtc.metrics.error(ErrorKind::Rtc);
            return;
        };
        let generation = {
            let mut st = self.state();
            if st.closed
                || !st
                    .peers
                    .get(&peer.conn)
                    .is_some_and(|p| Arc::ptr_eq(p, peer))
            {
                return;
            }
            let generation = st.generation();
            st.publications.insert(
                key,
                Publication {
                    codec: Some(codec),
                    capability,
                    ssrc: track.ssrc(),
                    generation,
                    wire: false,
                    since: Instant::now(),
                    frame: None,
                },
            );
            st.rebuild_routes();
            generation
        };
        tracing::debug!(conn = %peer.conn, ?codec, video, "publishing");
        let Some(room) = self.me.upgrade() else {
            return;
        };
        let cancelled = peer.cancel.cancelled();
        spawn(async move {
            tokio::pin!(cancelled);
            loop {
                tokio::select! {
                    () = &mut cancelled => break,
                    read = track.read_rtp() => match read {
                        Ok((packet, _)) => room.forward(key, codec, packet, Instant::now()),
                        Err(e) => {
                            tracing::debug!(error = %e, "a published track ended");
                            break;
                        }
                    },
                }
            }
            room.unpublish(key, generation);
        });
        self.renegotiate_all();
    }

    pub(super) fn unpublish(&self, key: TrackKey, generation: u64) {
        let removed = {
            let mut st = self.state();
            let current = st
                .publications
                .get(&key)
                .is_some_and(|p| p.generation == generation);
            if current {
                st.publications.remove(&key);
                st.rebuild_routes();
            }
            current
        };
        if removed {
            self.renegotiate_all();
        }
    }

    /// One RTP packet from a desktop publisher, forwarded only if its
    /// SFrame KID names the publisher's own leaf. An audio packet is one
    /// protected frame. A video packet is part of one, after a descriptor
    /// byte (`satsuma_core::media::FRAME_START`): the first packet of a frame
    /// carries the SFrame header and is checked; the rest of that frame
    /// (same timestamp) follows it, and nothing else does.
    pub(super) fn forward(&self, key: TrackKey, codec: Codec, packet: Packet, arrival: Instant) {
        let metrics = &self.rtc.metrics;
        self.rtc.tap.record(&packet.payload);
        metrics.received(key.kind(), packet.payload.len());
        let (member, sender, routes, wire) = {
            let mut st = self.state();
            let member = st.members.contains_key(&key.publisher);
            let sender = if key.video {
                let timestamp = packet.header.timestamp;
                match packet.payload.split_first() {
                    Some((&descriptor, frame)) if descriptor & FRAME_START != 0 => {
                        let checked = st.senders.check_frame(key.publisher, codec, frame);
                        if let Some(p) = st.publications.get_mut(&key) {
                            p.frame = checked.is_ok().then_some(timestamp);
                        }
                        checked.map(|()| true)
                    }
                    // The rest of a frame whose start passed.
                    Some(_) => Ok(st
                        .publications
                        .get(&key)
                        .is_some_and(|p| p.frame == Some(timestamp))),
                    None => Ok(false),
                }
            } else {
                st.senders
                    .check_frame(key.publisher, codec, &packet.payload)
                    .map(|()| true)
            };
            (
                member,
                sender,
                st.routes.get(&key).cloned(),
                st.wire_members && !key.video,
            )
        };
        if !member {
            metrics.dropped(DropReason::NotMember);
            return;
        }
        match sender {
            Ok(true) => {}
            Ok(false) => {
                metrics.dropped(DropReason::NotSframe);
                return;
            }
            Err(e) => {
                self.refusals.note(metrics, key.publisher, "webrtc", &e);
                return;
            }
        }
        if let Some(routes) = routes {
            for route in routes.iter() {
                self.enqueue(route, &packet, arrival);
            }
        }
        if wire {
            match codec {
                c @ (Codec::Pcmu | Codec::Pcma | Codec::G722) => {
                    if let Some(payload) = Blob::copy_from(&packet.payload) {
                        self.outbox.wire_media(Media {
                            sender: key.publisher,
                            codec: c,
                            timestamp: packet.header.timestamp,
                            sequence: packet.header.sequence_number,
                            payload,
                        });
                    }
                }
                _ => metrics.dropped(DropReason::Codec),
            }
        }
    }

    /// An intercom member's audio frame, for the desktop members.
    pub(in crate::rtc) fn forward_wire(&self, media: &Media) {
        let metrics = &self.rtc.metrics;
        if !media.codec.is_audio() {
            metrics.dropped(DropReason::Codec);
            return;
        }
        let key = TrackKey {
            publisher: media.sender,
            video: false,
        };
        let (routes, new) = {
            let mut st = self.state();
            if st.closed {
                return;
            }
            if st.members.get(&media.sender) != Some(&Transport::Wire) {
                drop(st);
                metrics.dropped(DropReason::NotMember);
                return;
            }
            let (new, too_soon) = match st.publications.get(&key) {
                None => (true, false),
                Some(p) => (
                    p.codec != Some(media.codec),
                    p.since.elapsed() < CODEC_CHANGE_INTERVAL,
                ),
            };
            if new && too_soon {
                // An intercom flipping codecs must not make every desktop
                // renegotiate on every frame.
                drop(st);
                metrics.dropped(DropReason::Codec);
                return;
            }
            if new {
                let capability = capability(media.codec);
                let generation = st.generation();
                st.publications.insert(
                    key,
                    Publication {
                        codec: Some(media.codec),
                        capability,
                        ssrc: 0,
                        generation,
                        wire: true,
                        since: Instant::now(),
                        frame: None,
                    },
                );
                st.rebuild_routes();
            }
            (st.routes.get(&key).cloned(), new)
        };
        if new {
            tracing::debug!(conn = %media.sender, codec = ?media.codec, "intercom audio track");
            self.renegotiate_all();
        }
        let packet = Packet {
            header: Header {
                version: 2,
                // The first frame of the track starts a talkspurt.
                marker: new,
                sequence_number: media.sequence,
                timestamp: media.timestamp,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(&media.payload),
        };
        let arrival = Instant::now();
        if let Some(routes) = routes {
            for route in routes.iter() {
                self.enqueue(route, &packet, arrival);
            }
        }
    }

    /// Queues `packet` for one subscriber, pausing its video when it falls
    /// behind.
    pub(super) fn enqueue(&self, route: &Route, packet: &Packet, arrival: Instant) {
        let metrics = &self.rtc.metrics;
        let (peer, sub) = (&route.peer, &route.sub);
        let outgoing = |rebase| Outgoing {
            sub: Arc::clone(sub),
            packet: packet.clone(),
            arrival,
            rebase,
        };
        if !sub.key.video {
            if peer.audio_tx.try_send(outgoing(false)).is_err() {
                metrics.dropped(DropReason::SlowSubscriber);
            }
            return;
        }
        if peer.video_overflow.load(Relaxed)
            && peer.video_tx.capacity() * 2 >= peer.video_tx.max_capacity()
        {
            peer.video_overflow.store(false, Relaxed);
        }
        if peer.video_overflow.load(Relaxed) || self.congested(peer) {
            sub.skipped.store(true, Relaxed);
            metrics.dropped(DropReason::SlowSubscriber);
            return;
        }
        let mut rebase = false;
        if sub.skipped.load(Relaxed) {
            // Resume only once the publisher was asked for a key frame.
            if !self.request_key_frame(sub.key) {
                metrics.dropped(DropReason::SlowSubscriber);
                return;
            }
            sub.skipped.store(false, Relaxed);
            rebase = true;
            tracing::debug!(conn = %peer.conn, "video resumes");
        }
        match peer.video_tx.try_send(outgoing(rebase)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !peer.video_overflow.swap(true, Relaxed) {
                    tracing::debug!(conn = %peer.conn, "video queue full: video paused");
                }
                sub.skipped.store(true, Relaxed);
                metrics.dropped(DropReason::SlowSubscriber);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Whether `peer` reported loss or low bandwidth recently.
    pub(super) fn congested(&self, peer: &Peer) -> bool {
        let last = peer.last_bad_report.load(Relaxed);
        if last == 0 {
            return false;
        }
        let now = self.millis();
        now.saturating_sub(last - 1)
            < u64::try_from(self.recover_after().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A subscriber says it is losing packets or bandwidth.
    pub(super) fn bad_report(&self, peer: &Peer) {
        let was = self.congested(peer);
        peer.last_bad_report
            .store(self.millis().saturating_add(1), Relaxed);
        if !was {
            tracing::debug!(conn = %peer.conn, "subscriber reports loss: video paused");
        }
    }

    /// Asks the publisher of `key` for a key frame. False when it cannot be
    /// asked (gone, an intercom, or its RTCP queue is full).
    pub(super) fn request_key_frame(&self, key: TrackKey) -> bool {
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: 0,
        };
        self.to_publisher(key, |ssrc| {
            vec![Box::new(PictureLossIndication {
                media_ssrc: ssrc,
                ..pli
            })]
        })
    }

    /// Sends RTCP made by `make(publisher ssrc)` to the publisher of `key`.
    pub(super) fn to_publisher(&self, key: TrackKey, make: impl FnOnce(u32) -> Rtcp) -> bool {
        let (peer, ssrc) = {
            let st = self.state();
            let Some(publication) = st.publications.get(&key) else {
                return false;
            };
            if publication.wire {
                return false;
            }
            let Some(peer) = st.peers.get(&key.publisher) else {
                return false;
            };
            (Arc::clone(peer), publication.ssrc)
        };
        peer.rtcp_tx.try_send(make(ssrc)).is_ok()
    }
}
