//! Peer connections coming and going, and the offers that keep each one's
//! tracks in line with the room: the SFU makes every offer, one at a time
//! per peer connection.

use std::collections::HashMap;
use std::time::Instant;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use satsuma_core::wire::{ConnId, Signal};

use super::peer::{History, Kind, Outgoing, Parked, Peer};
use super::shard::{Shard, offer_signal, random_ssrc};
use crate::metrics::ErrorKind;
use crate::rtc::RtcError;

impl Shard {
    pub(super) fn add_peer(
        &mut self,
        room: u64,
        conn: ConnId,
        now: Instant,
    ) -> Result<(), RtcError> {
        let r = self.rooms.get(&room).ok_or(RtcError::Closed)?;
        if r.peers.contains_key(&conn) {
            return Err(RtcError::Unexpected("a second peer connection"));
        }
        let mut peer = Peer::new(room, conn, self.announced, now)?;
        let offer = offer_signal(&peer.offer(now)?)?;
        let key = self.next_peer;
        self.next_peer += 1;
        self.by_ufrag.insert(peer.ufrag.clone(), key);
        self.peers.insert(key, peer);
        self.metrics.peers_add(1);
        if let Some(r) = self.rooms.get_mut(&room) {
            r.peers.insert(conn, key);
            r.outbox.signal(conn, offer);
        }
        self.touch(key);
        // It may join a group that already publishes.
        self.sync_room(room, now);
        Ok(())
    }

    pub(super) fn signal(
        &mut self,
        room: u64,
        conn: ConnId,
        signal: Signal,
        now: Instant,
    ) -> Result<(), RtcError> {
        let Signal::Answer(sdp) = signal else {
            return Err(RtcError::Unexpected("an offer (the SFU makes the offers)"));
        };
        let key = *self
            .rooms
            .get(&room)
            .and_then(|r| r.peers.get(&conn))
            .ok_or(RtcError::NoPeer(conn))?;
        let peer = self.peers.get_mut(&key).ok_or(RtcError::NoPeer(conn))?;
        let result = String::from_utf8(sdp.to_vec())
            .map_err(|_| RtcError::Sdp("not UTF-8"))
            .and_then(|sdp| peer.answer(now, sdp));
        self.touch(key);
        if result.is_err() {
            self.metrics.error(ErrorKind::Rtc);
        }
        result?;
        if self.peers.get(&key).is_some_and(|p| p.changed) {
            self.renegotiate(key, now);
        }
        Ok(())
    }

    pub(super) fn resend_offer(&mut self, room: u64, conn: ConnId) {
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        let Some(peer) = r.peers.get(&conn).and_then(|k| self.peers.get(k)) else {
            return;
        };
        if let Some(offer) = peer.offer.as_ref().and_then(|o| offer_signal(&o.sdp).ok()) {
            r.outbox.signal(conn, offer);
        }
    }

    pub(super) fn remove_peer(&mut self, room: u64, conn: ConnId) {
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        r.publications.retain(|(c, _), _| *c != conn);
        let Some(key) = r.peers.remove(&conn) else {
            return;
        };
        self.forget(key);
        self.metrics.peers_add(-1);
    }

    pub(super) fn close_room(&mut self, room: u64) {
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        let conns: Vec<ConnId> = r.peers.keys().copied().collect();
        for conn in conns {
            self.remove_peer(room, conn);
        }
        self.rooms.remove(&room);
    }

    /// Brings each peer connection's outgoing tracks in line with the
    /// room: every track a present member publishes, to every other present
    /// member. A change makes an offer, or waits for the outstanding one's
    /// answer.
    pub(super) fn sync_room(&mut self, room: u64, now: Instant) {
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        let mut changed = Vec::new();
        for (&conn, &key) in &r.peers {
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            let present = r.members.contains_key(&conn);
            let want: HashMap<(ConnId, Kind), &RTCRtpCodec> = r
                .publications
                .iter()
                .filter(|((from, _), _)| present && *from != conn && r.members.contains_key(from))
                .map(|(k, p)| (*k, &p.rtc))
                .collect();
            let gone: Vec<(ConnId, Kind)> = peer
                .outgoing
                .keys()
                .filter(|k| !want.contains_key(k))
                .copied()
                .collect();
            let mut touched = false;
            for k in gone {
                if let Some(out) = peer.outgoing.remove(&k) {
                    park(peer, k.1, &out);
                    peer.sent_tracks.retain(|_, about| *about != k);
                    touched = true;
                }
            }
            for (&(from, kind), codec) in &want {
                if peer.outgoing.contains_key(&(from, kind)) {
                    continue;
                }
                match add_track(peer, from, kind, codec) {
                    Ok(()) => touched = true,
                    Err(e) => tracing::warn!(%conn, %from, "cannot add a track: {e}"),
                }
            }
            if touched {
                changed.push(key);
            }
        }
        for key in changed {
            self.renegotiate(key, now);
        }
    }

    /// Offers again if no offer is out; otherwise after its answer.
    pub(super) fn renegotiate(&mut self, key: u64, now: Instant) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.offer.is_some() {
            peer.changed = true;
            return;
        }
        let offer = peer.offer(now).and_then(|o| offer_signal(&o));
        let (room, conn) = (peer.room, peer.conn);
        match offer {
            Ok(offer) => {
                if let Some(r) = self.rooms.get(&room) {
                    r.outbox.signal(conn, offer);
                }
            }
            Err(e) => {
                self.metrics.error(ErrorKind::Rtc);
                tracing::warn!(%conn, "cannot make an offer: {e}");
            }
        }
        self.touch(key);
    }
}

/// A send-only transceiver on `peer` for `from`'s `kind` track: the stream
/// id is the publisher's connection id, the track id `<conn>-audio` or
/// `<conn>-video`, as clients expect.
fn add_track(
    peer: &mut Peer,
    from: ConnId,
    kind: Kind,
    codec: &RTCRtpCodec,
) -> Result<(), RtcError> {
    let id = format!("{}-{}", from.0, kind.name());
    let track = |ssrc: u32| {
        MediaStreamTrack::new(
            from.0.to_string(),
            id.clone(),
            id.clone(),
            kind.rtp(),
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                active: true,
                codec: codec.clone(),
                ..Default::default()
            }],
        )
    };
    if let Some(i) = peer.parked.iter().position(|p| p.kind == kind) {
        let parked = peer.parked.swap_remove(i);
        if take_over(peer, &parked, from, track(parked.ssrc)) {
            peer.outgoing.insert(
                (from, kind),
                Outgoing {
                    sender: parked.sender,
                    ssrc: parked.ssrc,
                    offset: 0,
                    last: parked.last,
                    skipped: false,
                    rebase: true,
                    history: (kind == Kind::Video).then(History::new),
                },
            );
            peer.sent_tracks.insert(id, (from, kind));
            return Ok(());
        }
        // Not taken over: it stays inactive, and a new one is made.
    }
    let ssrc = random_ssrc();
    let track = track(ssrc);
    // A transceiver of its own: `add_track` would take the receive-only one
    // the member publishes on.
    let init = RTCRtpTransceiverInit {
        direction: RTCRtpTransceiverDirection::Sendonly,
        streams: vec![from.0.to_string()],
        send_encodings: Vec::new(),
    };
    let transceiver = peer
        .pc
        .add_transceiver_from_track(track, Some(init))
        .map_err(RtcError::webrtc)?;
    let sender = peer
        .pc
        .rtp_transceiver(transceiver)
        .and_then(|t| t.sender())
        .ok_or(RtcError::Unexpected("a transceiver with no sender"))?;
    peer.outgoing.insert(
        (from, kind),
        Outgoing {
            sender,
            ssrc,
            offset: 0,
            last: None,
            skipped: false,
            rebase: true,
            history: (kind == Kind::Video).then(History::new),
        },
    );
    peer.sent_tracks.insert(id, (from, kind));
    Ok(())
}

/// Stops sending `out` without removing its transceiver: inactive in the
/// next offer, kept for the next track of its kind (`rtc` 0.21 would
/// leave a removed track's m-section in every offer anyway, and never
/// reuse it).
fn park(peer: &mut Peer, kind: Kind, out: &Outgoing) {
    if let Some(mut t) = peer.pc.rtp_transceiver(out.sender.into()) {
        t.set_direction(RTCRtpTransceiverDirection::Inactive);
    }
    peer.parked.push(Parked {
        kind,
        sender: out.sender,
        ssrc: out.ssrc,
        last: out.last,
    });
}

/// Gives a parked transceiver `track` (the same SSRC, another publisher's
/// stream id) and makes it send again. The client sees the SSRC's stream
/// id change in the next offer (webrtc-rs 0.17 updates its track's ids).
fn take_over(peer: &mut Peer, parked: &Parked, from: ConnId, track: MediaStreamTrack) -> bool {
    let Some(mut t) = peer.pc.rtp_transceiver(parked.sender.into()) else {
        return false;
    };
    t.set_direction(RTCRtpTransceiverDirection::Sendonly);
    let taken = peer.pc.rtp_sender(parked.sender).is_some_and(|mut sender| {
        let replaced = sender.replace_track(track).is_ok();
        if replaced {
            sender.set_streams(vec![from.0.to_string()]);
        }
        replaced
    });
    if !taken && let Some(mut t) = peer.pc.rtp_transceiver(parked.sender.into()) {
        t.set_direction(RTCRtpTransceiverDirection::Inactive);
    }
    taken
}
