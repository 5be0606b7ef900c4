//! One desktop member's peer connection on a shard: an `rtc` (webrtc-rs's
//! sans-IO core) `RTCPeerConnection` in ICE-lite mode whose only candidate
//! is the shard's socket, the tracks it receives from the member and the
//! tracks it sends it (one per other member's audio and video).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc::interceptor::{Registry, Slot};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::rtp::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use satsuma_core::media::{Codec, Feedback};
use satsuma_core::wire::ConnId;

use super::relay::ShardTap;
use super::shard::Map;
use crate::rtc::RtcError;

/// Packets kept per video track sent, to answer NACKs: at 800 kbit/s
/// (about 85 packets/s) 0.75 s, more than a round trip and a second try.
/// The payloads are shared with the other subscribers' histories, so it
/// keeps about 64 × 1.2 KB of each publisher's video alive (a history of
/// 128 measured 34 MiB more RSS at 64 rooms of 3 than none).
pub(super) const NACK_HISTORY: usize = 64;

/// The last [`NACK_HISTORY`] packets sent on one video track, as sent
/// (this subscriber's SSRC and sequence numbers), by sequence number.
pub(crate) struct History {
    slots: Box<[Option<Packet>]>,
}

impl History {
    pub(crate) fn new() -> Self {
        Self {
            slots: std::iter::repeat_with(|| None).take(NACK_HISTORY).collect(),
        }
    }

    fn slot(seq: u16) -> usize {
        usize::from(seq) % NACK_HISTORY
    }

    /// Keeps `packet` (its payload is shared, not copied), in place of the
    /// one [`NACK_HISTORY`] sequence numbers before it.
    pub(crate) fn keep(&mut self, packet: &Packet) {
        if let Some(slot) = self
            .slots
            .get_mut(Self::slot(packet.header.sequence_number))
        {
            *slot = Some(packet.clone());
        }
    }

    /// The packet sent with `seq`, if it is still kept.
    pub(crate) fn get(&self, seq: u16) -> Option<&Packet> {
        self.slots
            .get(Self::slot(seq))?
            .as_ref()
            .filter(|p| p.header.sequence_number == seq)
    }
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.slots.iter().filter(|s| s.is_some()).count();
        f.debug_struct("History").field("kept", &kept).finish()
    }
}

/// Audio or video: a member publishes one track of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    Audio,
    Video,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
        }
    }

    pub(crate) fn of(kind: RtpCodecKind) -> Option<Self> {
        match kind {
            RtpCodecKind::Audio => Some(Self::Audio),
            RtpCodecKind::Video => Some(Self::Video),
            _ => None,
        }
    }

    pub(crate) fn rtp(self) -> RtpCodecKind {
        match self {
            Self::Audio => RtpCodecKind::Audio,
            Self::Video => RtpCodecKind::Video,
        }
    }
}

/// A track this peer connection sends: another member's audio or video.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub sender: RTCRtpSenderId,
    pub ssrc: u32,
    /// Added to the publisher's sequence numbers: a video pause is not
    /// reported as loss.
    pub offset: u16,
    /// The last sequence number sent on it.
    pub last: Option<u16>,
    /// Video held back since the last packet sent (a pause).
    pub skipped: bool,
    /// Nothing is sent on it until the member answered the offer that
    /// announces it. A new track: the member's WebRTC stack would meet
    /// packets on an SSRC it does not know yet (webrtc-rs probes them as
    /// undeclared streams and warns). A track that took over a parked
    /// transceiver: the SSRC would be taken for the last publisher's. Then
    /// its sequence numbers go on from `last` (which the receiver's SRTP
    /// already counts, after a takeover), and a video track asks its
    /// publisher for a key frame to start from.
    pub rebase: bool,
    /// What was sent, to answer NACKs (video only: a lost audio packet is
    /// concealed sooner than it could come again).
    pub history: Option<History>,
}

/// A sending transceiver whose track went (its publisher left): its
/// m-section stays in every offer (`rtc` does not recycle them), inactive,
/// until a track of the same kind takes it over with its SSRC, so a
/// peer's offer grows with the most tracks it was ever sent at once, not
/// with churn.
#[derive(Debug)]
pub(crate) struct Parked {
    pub kind: Kind,
    pub sender: RTCRtpSenderId,
    pub ssrc: u32,
    /// The last sequence number sent on it.
    pub last: Option<u16>,
}

/// The offer that waits for its answer: the SFU makes every offer, one at
/// a time.
#[derive(Debug, Clone)]
pub(crate) struct Outstanding {
    /// Sent again on a resume or when the answer is late.
    pub sdp: String,
    /// When it was (last) sent.
    pub sent: Instant,
    /// How often it was sent again for want of an answer.
    pub resends: u32,
}

pub(crate) struct Peer {
    pub room: u64,
    pub conn: ConnId,
    pub pc: RTCPeerConnection,
    pub ufrag: String,
    /// Addresses seen with a STUN check naming this peer's ufrag.
    pub addrs: Vec<SocketAddr>,
    /// The peer connection's next timeout, as last put on the shard's heap.
    pub deadline: Option<Instant>,
    /// What the member publishes, by the receiving track's id.
    pub incoming: Map<String, Kind>,
    /// What it is sent, by publisher and kind.
    pub outgoing: Map<(ConnId, Kind), Outgoing>,
    /// Sending transceivers free to take over.
    pub parked: Vec<Parked>,
    /// The publisher and kind of each track it is sent, by track id (RTCP
    /// about a track names it).
    pub sent_tracks: Map<String, (ConnId, Kind)>,
    /// When it last reported loss or low bandwidth: its video pauses until
    /// reports stay good for a while.
    pub bad_report: Option<Instant>,
    /// DTLS is up: media can be written to it.
    pub connected: bool,
    /// The offer out, if one is: a change waits for its answer.
    pub offer: Option<Outstanding>,
    /// The set of tracks changed while an offer was out.
    pub changed: bool,
}

/// An RTCP feedback entry of `core::media` as `rtc` spells it.
fn feedback(f: &Feedback) -> RTCPFeedback {
    RTCPFeedback {
        typ: f.kind.to_owned(),
        parameter: f.parameter.to_owned(),
    }
}

/// `codec` as `rtc` registers it, from its RTP facts in `core::media`.
pub(crate) fn codec(codec: Codec) -> RTCRtpCodec {
    let rtp = codec.rtp();
    RTCRtpCodec {
        mime_type: rtp.mime.to_owned(),
        clock_rate: rtp.clock_rate,
        channels: if rtp.channels == 1 { 0 } else { rtp.channels },
        sdp_fmtp_line: rtp.fmtp.to_owned(),
        rtcp_feedback: rtp.feedback.iter().map(feedback).collect(),
    }
}

fn media_engine() -> Result<MediaEngine, RtcError> {
    let mut engine = MediaEngine::default();
    for c in Codec::ALL {
        let kind = if c.is_audio() {
            RtpCodecKind::Audio
        } else {
            RtpCodecKind::Video
        };
        engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codec(c),
                    payload_type: c.rtp().payload_type,
                },
                kind,
            )
            .map_err(RtcError::webrtc)?;
    }
    Ok(engine)
}

/// Random ICE credentials: a 16-character ufrag (the shard routes by it)
/// and a 32-character password (what authenticates the checks).
pub(crate) fn credentials() -> Result<(String, String), RtcError> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = [0u8; 48];
    getrandom::fill(&mut bytes).map_err(|e| RtcError::WebRtc(format!("no randomness: {e}")))?;
    let text: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 63)]))
        .collect();
    Ok((text[..16].to_owned(), text[16..].to_owned()))
}

impl Peer {
    /// A peer connection for `conn` whose candidate is `local` (the shard's
    /// socket, or the address announced for it), receiving one audio and
    /// one video track from the member.
    pub(crate) fn new(
        room: u64,
        conn: ConnId,
        announced: SocketAddr,
        now: Instant,
    ) -> Result<Self, RtcError> {
        let (ufrag, pwd) = credentials()?;
        let settings = SettingEngineBuilder::new()
            .with_lite(true)
            .with_ice_credentials(ufrag.clone(), pwd)
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(settings)
            .with_media_engine(media_engine()?)
            .with_interceptor_registry(
                // The chain has no slot for an application's own
                // interceptor: this one takes the pacer's, which the SFU
                // does not use. NACKs are answered by the shard from each
                // track's History, not by rtc's responder: one interceptor
                // fewer for every packet to pass, and no second copy.
                Registry::new().with(Slot::Pacer, ShardTap::new()),
            )
            .build(now)
            .map_err(RtcError::webrtc)?;
        for kind in [Kind::Audio, Kind::Video] {
            pc.add_transceiver_from_kind(
                kind.rtp(),
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: Vec::new(),
                    send_encodings: Vec::new(),
                }),
            )
            .map_err(RtcError::webrtc)?;
        }
        let candidate = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: announced.ip().to_string(),
                port: announced.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .map_err(RtcError::webrtc)?;
        let init = RTCIceCandidate::from(&candidate)
            .to_json()
            .map_err(RtcError::webrtc)?;
        pc.add_local_candidate(init).map_err(RtcError::webrtc)?;
        Ok(Self {
            room,
            conn,
            pc,
            ufrag,
            addrs: Vec::new(),
            deadline: None,
            incoming: Map::default(),
            outgoing: Map::default(),
            parked: Vec::new(),
            sent_tracks: Map::default(),
            bad_report: None,
            connected: false,
            offer: None,
            changed: false,
        })
    }

    /// Makes an offer for the tracks as they are now.
    pub(crate) fn offer(&mut self, now: Instant) -> Result<String, RtcError> {
        let offer = self.pc.create_offer(None).map_err(RtcError::webrtc)?;
        self.pc
            .set_local_description(now, offer)
            .map_err(RtcError::webrtc)?;
        let sdp = self
            .pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or(RtcError::Unexpected("no local description after an offer"))?;
        self.changed = false;
        self.offer = Some(Outstanding {
            sdp: sdp.clone(),
            sent: now,
            resends: 0,
        });
        Ok(sdp)
    }

    /// Applies the member's answer to the outstanding offer.
    pub(crate) fn answer(&mut self, now: Instant, sdp: String) -> Result<(), RtcError> {
        if self.offer.is_none() {
            return Err(RtcError::Unexpected("an answer with no offer out"));
        }
        let answer = RTCSessionDescription::answer(sdp).map_err(RtcError::webrtc)?;
        self.pc
            .set_remote_description(now, answer)
            .map_err(RtcError::webrtc)?;
        self.offer = None;
        Ok(())
    }

    /// When the outstanding offer is sent again if no answer came: after
    /// `timeout`, then twice as long each time, up to 16 times as long.
    pub(crate) fn answer_due(&self, timeout: Duration) -> Option<Instant> {
        let offer = self.offer.as_ref()?;
        offer
            .sent
            .checked_add(timeout.saturating_mul(1 << offer.resends.min(4)))
    }
}
