//! WebRTC for desktop clients: one peer connection per client, every
//! member's tracks forwarded to every other member, payloads untouched.
//!
//! The SFU makes every offer (non-trickle: candidates are gathered before an
//! offer leaves). A client's first offer has a receive-only audio and video
//! transceiver for what the client publishes, and a send-only transceiver
//! per track of every other member. Membership, publications and intercom
//! members change the set; the SFU then offers again, one offer at a time
//! per peer.
//!
//! A forwarded track has the stream id `<publisher conn id>` (decimal) and
//! the track id `<publisher conn id>-audio` or `<publisher conn id>-video`;
//! an intercom member's audio looks the same as a desktop member's.
//!
//! Every RTP payload is one protected frame (`core::media`'s layout), and
//! the SFU reads its SFrame header: a packet whose KID does not name its
//! publisher's leaf in an epoch receivers still open is dropped before it
//! reaches any queue (`core::committer::Senders`, kept by the room's log
//! and handed over with [`RtcRoom::set_senders`]).
//!
//! What it does not do: decode, mix, transcode or look inside a payload
//! beyond that header; simulcast; answer a NACK from a cache (NACKs, PLIs
//! and FIRs go to the publisher).
//!
//! Slow subscribers lose video, never audio: each subscriber has a bounded
//! audio and video queue drained by one writer task (audio first). A full
//! video queue, or receiver reports saying the subscriber loses more than
//! [`RtcSettings::loss_pause_percent`] (or a REMB under
//! [`RtcSettings::remb_pause_bps`]), pause its video; it resumes with a
//! key-frame request to the publisher once the queue has drained and no bad
//! report came for [`RtcSettings::recover_after_ms`]. Sequence numbers are
//! rewritten per subscriber on resume, so a pause is not reported as loss.
//!
//! Feedback: a subscriber's PLI, FIR and NACK go to the publisher with the
//! publisher's SSRC (NACKed sequence numbers mapped back). The SFU has no
//! NACK responder and no NACK generator: the publisher retransmits, and the
//! retransmission is forwarded to every subscriber of the track (a
//! duplicate for those that did not lose it).
//!
//! Limits: a removed track leaves an inactive media section behind
//! (webrtc-rs cannot reuse a stopped sender), so offers grow with churn; an
//! offer is about 400 bytes per media section and must fit
//! [`satsuma_core::wire::limits::SDP`]. A client that never answers stalls
//! its own renegotiation (not the others'). Forwarding resumes after a pause
//! at the next packet, not at a key frame: the SFU asks for one and the
//! subscriber may get a few undecodable delta frames first.

mod cancel;
mod engine;
mod room;

use std::net::IpAddr;
use std::sync::Arc;

use satsuma_core::committer::Senders;
use satsuma_core::wire::{ConnId, Media, Signal, Transport};

use crate::metrics::Metrics;
use crate::tap::Tap;

use self::room::RoomInner;

/// WebRTC settings (`[rtc]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtcSettings {
    /// Lowest UDP port for ICE. `port_min = 0` and `port_max = 0` (the
    /// default) let the OS pick any port.
    pub port_min: u16,
    /// Highest UDP port for ICE (see `port_min`). Default 0.
    pub port_max: u16,
    /// Local addresses ICE gathers host candidates on. Empty means every
    /// non-loopback interface. Default `["127.0.0.1"]`: loopback only, for
    /// a local setup; a deployment lists its interface address here.
    pub ips: Vec<IpAddr>,
    /// Public addresses of a 1:1 NAT, announced as host candidates instead
    /// of the local addresses. Default none.
    pub nat_1to1_ips: Vec<String>,
    /// STUN server URLs (`stun:host:port`) for server-reflexive candidates.
    /// Default none.
    pub stun_servers: Vec<String>,
    /// Gather IPv4 UDP candidates only. Default `true`.
    pub udp4_only: bool,
    /// Audio packets queued per subscriber before audio is dropped.
    /// Default 256 (about five seconds of 20 ms frames from 2-3 speakers).
    pub audio_queue: usize,
    /// Video packets queued per subscriber before its video pauses.
    /// Default 512.
    pub video_queue: usize,
    /// Receiver-reported loss, in percent, above which a subscriber's video
    /// pauses. Default 10.
    pub loss_pause_percent: u8,
    /// A REMB estimate, in bits per second, under which a subscriber's video
    /// pauses; 0 ignores REMB. Default 100 000.
    pub remb_pause_bps: u64,
    /// How long, in milliseconds, a subscriber's reports must stay good
    /// before its video resumes. Default 3000.
    pub recover_after_ms: u64,
    /// How long, in milliseconds, ICE candidate gathering may take before
    /// an offer leaves anyway. Default 5000.
    pub gather_timeout_ms: u64,
}

impl Default for RtcSettings {
    fn default() -> Self {
        Self {
            port_min: 0,
            port_max: 0,
            ips: vec![IpAddr::from([127, 0, 0, 1])],
            nat_1to1_ips: Vec::new(),
            stun_servers: Vec::new(),
            udp4_only: true,
            audio_queue: 256,
            video_queue: 512,
            loss_pause_percent: 10,
            remb_pause_bps: 100_000,
            recover_after_ms: 3000,
            gather_timeout_ms: 5000,
        }
    }
}

impl RtcSettings {
    fn network(&self) -> engine::Network {
        engine::Network {
            port_min: self.port_min,
            port_max: self.port_max,
            ips: self.ips.clone(),
            nat_1to1_ips: self.nat_1to1_ips.clone(),
            udp4_only: self.udp4_only,
        }
    }
}

/// Why a WebRTC operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RtcError {
    /// A signalling message out of place.
    #[error("unexpected signalling message: {0}")]
    Unexpected(&'static str),
    /// The settings cannot be applied.
    #[error("invalid WebRTC settings: {0}")]
    Settings(String),
    /// No peer connection for this connection.
    #[error("no peer connection for {0}")]
    NoPeer(ConnId),
    /// A session description that is not UTF-8 or too long.
    #[error("bad session description: {0}")]
    Sdp(&'static str),
    /// Something took too long.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The media plane or peer connection is closed.
    #[error("closed")]
    Closed,
    /// The WebRTC stack failed.
    #[error("webrtc: {0}")]
    WebRtc(String),
}

impl RtcError {
    pub(crate) fn webrtc(e: impl std::fmt::Display) -> Self {
        Self::WebRtc(e.to_string())
    }
}

/// Where a room's media plane sends what leaves it.
pub trait Outbox: Send + Sync + 'static {
    /// Sends `signal` to the client on `conn`.
    fn signal(&self, conn: ConnId, signal: Signal);
    /// Delivers a desktop member's audio frame to the room's intercom
    /// members (every `Transport::Wire` member except `media.sender`).
    fn wire_media(&self, media: Media);
}

/// The process's WebRTC stack.
pub struct Rtc {
    api: webrtc::api::API,
    settings: RtcSettings,
    metrics: Arc<Metrics>,
    tap: Arc<Tap>,
}

impl std::fmt::Debug for Rtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtc")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Rtc {
    /// # Errors
    /// When the settings cannot be applied.
    pub fn new(
        settings: &RtcSettings,
        metrics: Arc<Metrics>,
        tap: Arc<Tap>,
    ) -> Result<Arc<Self>, RtcError> {
        if settings.port_min > settings.port_max {
            return Err(RtcError::Settings("port_min is above port_max".to_owned()));
        }
        if settings.audio_queue == 0 || settings.video_queue == 0 {
            return Err(RtcError::Settings("a queue size is 0".to_owned()));
        }
        if settings.loss_pause_percent > 100 {
            return Err(RtcError::Settings(
                "loss_pause_percent is above 100".to_owned(),
            ));
        }
        let api = engine::api(&settings.network())?;
        Ok(Arc::new(Self {
            api,
            settings: settings.clone(),
            metrics,
            tap,
        }))
    }

    /// A new room's media plane.
    pub fn room(self: &Arc<Self>, outbox: Arc<dyn Outbox>) -> Arc<RtcRoom> {
        Arc::new(RtcRoom {
            inner: RoomInner::new(Arc::clone(self), outbox),
        })
    }
}

/// One room's media plane. Dropping it closes it, like [`RtcRoom::close`]
/// (the peer connections then close in the background).
#[derive(Debug)]
pub struct RtcRoom {
    inner: Arc<RoomInner>,
}

impl Drop for RtcRoom {
    fn drop(&mut self) {
        let pcs = self.inner.shut();
        if pcs.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for pc in pcs {
                    let _ = pc.close().await;
                }
            });
        }
    }
}

impl RtcRoom {
    /// A WebRTC client is in the room: its peer connection, and an offer.
    ///
    /// # Errors
    /// When the peer connection cannot be made.
    pub async fn add_peer(&self, conn: ConnId) -> Result<(), RtcError> {
        self.inner.add_peer(conn).await
    }

    /// A signalling message from `conn`.
    ///
    /// # Errors
    /// For an offer (the SFU makes offers) or an answer that does not apply.
    pub async fn handle_signal(&self, conn: ConnId, signal: Signal) -> Result<(), RtcError> {
        self.inner.handle_signal(conn, signal).await
    }

    /// `conn` resumed on a new signalling link: an outstanding offer is sent
    /// again, in case the old link lost it.
    pub async fn resend_offer(&self, conn: ConnId) {
        self.inner.resend_offer(conn).await;
    }

    /// `conn` is gone: its peer connection closes and its tracks leave the
    /// others' peer connections.
    pub async fn remove_peer(&self, conn: ConnId) {
        self.inner.remove_peer(conn).await;
    }

    /// The group's present members: media is forwarded only among them.
    pub async fn set_members(&self, members: Vec<(ConnId, Transport)>) {
        self.inner.set_members(members).await;
    }

    /// Who may send under which SFrame KID: the room's log's
    /// [`Senders`]. A desktop's packet whose KID names another leaf is
    /// dropped; before the first call, every packet is.
    pub fn set_senders(&self, senders: Arc<Senders>) {
        self.inner.set_senders(senders);
    }

    /// An intercom member's audio frame, for the desktop members (the
    /// room checked its sender).
    pub fn forward_wire(&self, media: &Media) {
        self.inner.forward_wire(media);
    }

    /// Closes every peer connection.
    pub async fn close(&self) {
        self.inner.close().await;
    }
}
