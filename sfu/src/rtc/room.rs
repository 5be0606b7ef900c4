//! One room's media plane: peers, publications, subscriptions, the
//! forwarding path and negotiation.
//!
//! Locking: `RoomInner::state` and `Peer::neg` are std mutexes held only
//! for bookkeeping, never across an `.await`. The state lock is taken
//! before a peer's negotiation lock, never the other way round.
//!
//! Tasks: per peer a writer (drains its queues) and an RTCP writer (relays
//! feedback to it as a publisher); per publication a reader; per
//! subscription an RTCP reader. Each ends when its peer's (or
//! subscription's) [`Cancel`] fires, which `remove_peer`, a failed peer
//! connection and `close` do.

mod feedback;
mod forward;
mod negotiate;
mod writer;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use satsuma_core::committer::Senders;
use satsuma_core::media::Codec;
use satsuma_core::wire::{Blob, ConnId, Signal, Transport};
use tokio::sync::mpsc;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTPCodecType};
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;

use super::cancel::Cancel;
use super::{Outbox, Rtc, RtcError};
use crate::metrics::{ErrorKind, Kind};
use crate::refusals::Refusals;

/// A batch of RTCP packets for one peer connection.
type Rtcp = Vec<Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>>;

/// RTCP batches queued for a publisher's peer connection.
const RTCP_QUEUE: usize = 64;

/// How often an intercom's track may change codec (each change is a
/// renegotiation with every desktop member).
const CODEC_CHANGE_INTERVAL: Duration = Duration::from_secs(2);

/// Spawns `fut` on the current runtime, if there is one.
fn spawn<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(fut);
    } else {
        tracing::warn!("no Tokio runtime: a media task was not started");
    }
}

/// A published track: the publisher and whether it is its video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TrackKey {
    publisher: ConnId,
    video: bool,
}

impl TrackKey {
    fn kind(self) -> Kind {
        if self.video { Kind::Video } else { Kind::Audio }
    }

    fn track_id(self) -> String {
        let kind = if self.video { "video" } else { "audio" };
        format!("{}-{kind}", self.publisher.0)
    }

    fn stream_id(self) -> String {
        self.publisher.0.to_string()
    }
}

/// What a publisher sends on one track.
#[derive(Debug)]
struct Publication {
    codec: Option<Codec>,
    capability: RTCRtpCodecCapability,
    /// The publisher's media SSRC; 0 for an intercom's track.
    ssrc: u32,
    /// Tells a re-publication (new track, maybe another codec) apart.
    generation: u64,
    /// An intercom member's audio, fed by `forward_wire`.
    wire: bool,
    /// When it was published.
    since: Instant,
    /// Video: the RTP timestamp of the frame whose first packet passed
    /// the sender check; the rest of that frame's packets follow it.
    frame: Option<u32>,
}

/// One published track on one subscriber's peer connection.
struct Sub {
    key: TrackKey,
    generation: u64,
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<RTCRtpSender>,
    /// Packets were held back (video paused); the next one forwarded
    /// rebases the sequence numbers after a key-frame request.
    skipped: AtomicBool,
    /// Publisher sequence number minus the subscriber's.
    offset: AtomicU16,
    /// The newest sequence number written to the subscriber; above
    /// `u16::MAX` before the first. Only the peer's writer task stores it.
    last_out: AtomicU32,
    cancel: Cancel,
}

impl std::fmt::Debug for Sub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sub")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Negotiation state of one peer connection: at most one offer out.
#[derive(Debug, Default)]
struct Negotiation {
    outstanding: bool,
    again: bool,
    offered: bool,
}

/// A packet on its way to one subscriber.
struct Outgoing {
    sub: Arc<Sub>,
    packet: Packet,
    arrival: Instant,
    rebase: bool,
}

/// One WebRTC client.
struct Peer {
    conn: ConnId,
    pc: Arc<RTCPeerConnection>,
    audio_tx: mpsc::Sender<Outgoing>,
    video_tx: mpsc::Sender<Outgoing>,
    rtcp_tx: mpsc::Sender<Rtcp>,
    /// The video queue overflowed; video is paused until it drains.
    video_overflow: AtomicBool,
    /// Milliseconds since the room's epoch of the last report of loss or
    /// low bandwidth, plus one (0: none).
    last_bad_report: AtomicU64,
    neg: Mutex<Negotiation>,
    cancel: Cancel,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl Peer {
    fn neg(&self) -> MutexGuard<'_, Negotiation> {
        self.neg
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug, Clone)]
struct Route {
    peer: Arc<Peer>,
    sub: Arc<Sub>,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    peers: HashMap<ConnId, Arc<Peer>>,
    members: HashMap<ConnId, Transport>,
    /// Who may send under which SFrame KID (empty: nobody).
    senders: Arc<Senders>,
    publications: HashMap<TrackKey, Publication>,
    /// Keyed by (subscriber, track).
    subs: HashMap<(ConnId, TrackKey), Arc<Sub>>,
    /// Who gets each track now: derived from the rest by `rebuild_routes`.
    routes: HashMap<TrackKey, Arc<[Route]>>,
    /// Whether any intercom member is present.
    wire_members: bool,
    next_generation: u64,
}

impl State {
    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    fn rebuild_routes(&mut self) {
        let mut routes: HashMap<TrackKey, Vec<Route>> = HashMap::new();
        for (&(subscriber, key), sub) in &self.subs {
            let live = subscriber != key.publisher
                && self.members.contains_key(&subscriber)
                && self.members.contains_key(&key.publisher)
                && self
                    .publications
                    .get(&key)
                    .is_some_and(|p| p.generation == sub.generation);
            if !live {
                continue;
            }
            if let Some(peer) = self.peers.get(&subscriber) {
                routes.entry(key).or_default().push(Route {
                    peer: Arc::clone(peer),
                    sub: Arc::clone(sub),
                });
            }
        }
        self.routes = routes.into_iter().map(|(k, v)| (k, v.into())).collect();
        self.wire_members = self.members.values().any(|t| *t == Transport::Wire);
    }

    /// The tracks `subscriber` should receive now.
    fn desired(&self, subscriber: ConnId) -> Vec<(TrackKey, RTCRtpCodecCapability, u64)> {
        if !self.members.contains_key(&subscriber) {
            return Vec::new();
        }
        self.publications
            .iter()
            .filter(|(key, _)| {
                key.publisher != subscriber && self.members.contains_key(&key.publisher)
            })
            .map(|(key, p)| (*key, p.capability.clone(), p.generation))
            .collect()
    }
}

/// The room's media plane behind [`super::RtcRoom`].
pub(super) struct RoomInner {
    rtc: Arc<Rtc>,
    outbox: Arc<dyn Outbox>,
    state: Mutex<State>,
    epoch: Instant,
    /// Packets refused by the sender check, for the log.
    refusals: Refusals,
    me: Weak<RoomInner>,
}

impl std::fmt::Debug for RoomInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomInner").finish_non_exhaustive()
    }
}

impl RoomInner {
    pub(super) fn new(rtc: Arc<Rtc>, outbox: Arc<dyn Outbox>) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            rtc,
            outbox,
            state: Mutex::new(State::default()),
            epoch: Instant::now(),
            refusals: Refusals::new(),
            me: me.clone(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn recover_after(&self) -> Duration {
        Duration::from_millis(self.rtc.settings.recover_after_ms)
    }

    fn failed(&self, what: &str, e: &RtcError) {
        self.rtc.metrics.error(ErrorKind::Rtc);
        tracing::warn!(error = %e, "WebRTC: {what} failed");
    }

    // ---- peers -------------------------------------------------------

    pub(super) async fn add_peer(&self, conn: ConnId) -> Result<(), RtcError> {
        {
            let st = self.state();
            if st.closed {
                return Err(RtcError::Closed);
            }
            if st.peers.contains_key(&conn) {
                return Err(RtcError::Unexpected("a second peer connection"));
            }
        }
        let settings = &self.rtc.settings;
        let mut config = RTCConfiguration::default();
        if !settings.stun_servers.is_empty() {
            config.ice_servers = vec![RTCIceServer {
                urls: settings.stun_servers.clone(),
                ..Default::default()
            }];
        }
        let pc = Arc::new(
            self.rtc
                .api
                .new_peer_connection(config)
                .await
                .map_err(RtcError::webrtc)?,
        );
        let peer = match self.setup_peer(conn, &pc).await {
            Ok(peer) => peer,
            Err(e) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };
        let registered = {
            let mut st = self.state();
            if st.closed || st.peers.contains_key(&conn) {
                false
            } else {
                st.peers.insert(conn, Arc::clone(&peer));
                true
            }
        };
        if !registered {
            peer.cancel.cancel();
            let _ = pc.close().await;
            return Err(RtcError::Closed);
        }
        self.rtc.metrics.peers_add(1);
        tracing::debug!(%conn, "peer connection created");
        if let Err(e) = self.renegotiate(&peer).await {
            self.failed("the first offer", &e);
            self.remove_peer(conn).await;
            return Err(e);
        }
        Ok(())
    }

    async fn setup_peer(
        &self,
        conn: ConnId,
        pc: &Arc<RTCPeerConnection>,
    ) -> Result<Arc<Peer>, RtcError> {
        for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    send_encodings: Vec::new(),
                }),
            )
            .await
            .map_err(RtcError::webrtc)?;
        }
        let (audio_tx, audio_rx) = mpsc::channel(self.rtc.settings.audio_queue);
        let (video_tx, video_rx) = mpsc::channel(self.rtc.settings.video_queue);
        let (rtcp_tx, rtcp_rx) = mpsc::channel(RTCP_QUEUE);
        let peer = Arc::new(Peer {
            conn,
            pc: Arc::clone(pc),
            audio_tx,
            video_tx,
            rtcp_tx,
            video_overflow: AtomicBool::new(false),
            last_bad_report: AtomicU64::new(0),
            neg: Mutex::new(Negotiation::default()),
            cancel: Cancel::new(),
        });

        let room = self.me.clone();
        let weak_peer = Arc::downgrade(&peer);
        pc.on_track(Box::new(move |track, receiver, _transceiver| {
            let room = room.clone();
            let peer = weak_peer.clone();
            Box::pin(async move {
                if let (Some(room), Some(peer)) = (room.upgrade(), peer.upgrade()) {
                    room.on_track(&peer, track);
                    // The publisher's sender reports feed the receiver-report
                    // interceptor; nothing else in them is needed.
                    let cancelled = peer.cancel.cancelled();
                    spawn(async move {
                        tokio::pin!(cancelled);
                        loop {
                            tokio::select! {
                                () = &mut cancelled => break,
                                read = receiver.read_rtcp() => if read.is_err() { break },
                            }
                        }
                    });
                }
            })
        }));
        let room = self.me.clone();
        let weak_peer = Arc::downgrade(&peer);
        pc.on_peer_connection_state_change(Box::new(move |s| {
            let room = room.clone();
            let peer = weak_peer.clone();
            Box::pin(async move {
                tracing::debug!(%conn, state = %s, "peer connection state");
                if matches!(
                    s,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
                ) && let (Some(room), Some(peer)) = (room.upgrade(), peer.upgrade())
                {
                    if s == RTCPeerConnectionState::Failed {
                        tracing::info!(%conn, "peer connection failed: its media stops");
                    }
                    spawn(async move { room.remove(conn, Some(&peer)).await });
                }
            })
        }));

        spawn(writer::run(
            Arc::clone(&self.rtc),
            peer.cancel.cancelled(),
            audio_rx,
            video_rx,
        ));
        spawn(writer::run_rtcp(
            Arc::clone(pc),
            peer.cancel.cancelled(),
            rtcp_rx,
        ));
        Ok(peer)
    }

    pub(super) async fn remove_peer(&self, conn: ConnId) {
        self.remove(conn, None).await;
    }

    /// Removes `conn`'s peer (only if it is `only`, when given).
    async fn remove(&self, conn: ConnId, only: Option<&Arc<Peer>>) {
        let (peer, subs) = {
            let mut st = self.state();
            let matches = st
                .peers
                .get(&conn)
                .is_some_and(|p| only.is_none_or(|only| Arc::ptr_eq(p, only)));
            if !matches {
                return;
            }
            let Some(peer) = st.peers.remove(&conn) else {
                return;
            };
            st.publications.retain(|key, _| key.publisher != conn);
            let mine: Vec<_> = st
                .subs
                .keys()
                .filter(|(s, _)| *s == conn)
                .copied()
                .collect();
            let subs: Vec<_> = mine.iter().filter_map(|k| st.subs.remove(k)).collect();
            st.rebuild_routes();
            (peer, subs)
        };
        peer.cancel.cancel();
        for sub in subs {
            sub.cancel.cancel();
        }
        self.rtc.metrics.peers_add(-1);
        if let Err(e) = peer.pc.close().await {
            tracing::debug!(%conn, error = %e, "closing a peer connection");
        }
        tracing::debug!(%conn, "peer connection removed");
        self.renegotiate_all();
    }

    pub(super) async fn set_members(&self, members: Vec<(ConnId, Transport)>) {
        {
            let mut st = self.state();
            if st.closed {
                return;
            }
            st.members = members.into_iter().collect();
            let State {
                publications,
                members,
                ..
            } = &mut *st;
            publications
                .retain(|key, p| !p.wire || members.get(&key.publisher) == Some(&Transport::Wire));
            st.rebuild_routes();
        }
        self.renegotiate_all();
    }

    pub(super) fn set_senders(&self, senders: Arc<Senders>) {
        self.state().senders = senders;
    }

    pub(super) async fn close(&self) {
        for pc in self.shut() {
            let _ = pc.close().await;
        }
    }

    /// Marks the room closed and stops every task; returns the peer
    /// connections, which the caller closes.
    pub(super) fn shut(&self) -> Vec<Arc<RTCPeerConnection>> {
        let (peers, subs) = {
            let mut st = self.state();
            st.closed = true;
            st.publications.clear();
            st.routes.clear();
            let subs: Vec<_> = st.subs.drain().map(|(_, s)| s).collect();
            let peers: Vec<_> = st.peers.drain().map(|(_, p)| p).collect();
            (peers, subs)
        };
        for sub in subs {
            sub.cancel.cancel();
        }
        peers
            .into_iter()
            .map(|peer| {
                peer.cancel.cancel();
                self.rtc.metrics.peers_add(-1);
                Arc::clone(&peer.pc)
            })
            .collect()
    }

    // ---- signalling --------------------------------------------------

    /// `conn`'s signalling link was replaced: an offer it may have lost
    /// with the old link goes out again (the same session description).
    pub(super) async fn resend_offer(&self, conn: ConnId) {
        let Some(peer) = self.state().peers.get(&conn).cloned() else {
            return;
        };
        if !peer.neg().outstanding {
            return;
        }
        let Some(local) = peer.pc.local_description().await else {
            return;
        };
        if let Some(blob) = Blob::copy_from(local.sdp.as_bytes()) {
            self.outbox.signal(conn, Signal::Offer(blob));
        }
    }

    /// A signal from `conn`'s client; each refusal is counted once, as an
    /// `Rtc` error.
    pub(super) async fn handle_signal(&self, conn: ConnId, signal: Signal) -> Result<(), RtcError> {
        let result = self.apply_signal(conn, signal).await;
        if result.is_err() {
            self.rtc.metrics.error(ErrorKind::Rtc);
        }
        result
    }

    async fn apply_signal(&self, conn: ConnId, signal: Signal) -> Result<(), RtcError> {
        let answer = match signal {
            Signal::Answer(answer) => answer,
            Signal::Offer(_) => {
                return Err(RtcError::Unexpected("an offer (the SFU makes the offers)"));
            }
        };
        let peer = self
            .state()
            .peers
            .get(&conn)
            .cloned()
            .ok_or(RtcError::NoPeer(conn))?;
        if !peer.neg().outstanding {
            return Err(RtcError::Unexpected("an answer without an offer"));
        }
        let sdp = std::str::from_utf8(&answer)
            .map_err(|_| RtcError::Sdp("not UTF-8"))?
            .to_owned();
        let applied = match RTCSessionDescription::answer(sdp) {
            Ok(desc) => peer
                .pc
                .set_remote_description(desc)
                .await
                .map_err(RtcError::webrtc),
            Err(e) => Err(RtcError::webrtc(e)),
        };
        let again = {
            let mut neg = peer.neg();
            neg.outstanding = false;
            std::mem::take(&mut neg.again)
        };
        applied?;
        if again {
            self.renegotiate(&peer).await?;
        }
        Ok(())
    }
}
