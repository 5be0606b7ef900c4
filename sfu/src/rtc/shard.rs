//! A shard: one thread that owns its rooms' peer connections and one UDP
//! socket, and drives them sans-IO. A datagram goes to the peer connection
//! whose ICE ufrag its STUN check names, or, after that, whose address it
//! came from; what a peer connection reads is forwarded to the other
//! members' peer connections in the same pass; their datagrams leave before
//! the shard waits again, for the next datagram, command or timeout. There
//! is no task, channel or lock per packet, and few system calls: a wake-up
//! reads every datagram waiting (up to [`BATCH`]) with one `recvmmsg`, and
//! a pass sends every datagram it made with one `sendmmsg`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp::Packet;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use satsuma_core::committer::Senders;
use satsuma_core::media::Codec;
use satsuma_core::wire::{Blob, ConnId, Signal, Transport};
use satsuma_udp::{Inbox, Outbox as Datagrams};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::peer::{Kind, Peer};
use super::stun;
use crate::metrics::{ErrorKind, Metrics};
use crate::refusals::Refusals;
use crate::rtc::{Outbox, RtcError, RtcSettings};
use crate::tap::Tap;

/// The shard's maps, hashed with foldhash: SipHash, the standard
/// library's, showed in the profile's per-packet lookups (the gain was
/// measured together with the run's noise, not alone). foldhash seeds
/// each map at random but does not claim full HashDoS resistance; no key
/// here is chosen freely by a remote party (a peer connection's address
/// enters `by_addr` only after a STUN check with its secret ufrag, and a
/// member publishes two tracks).
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type Set<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Addresses remembered per peer connection (a client's candidates).
const ADDRS: usize = 8;
/// Datagrams read before the shard looks at its commands and timers again.
const BATCH: usize = 64;
/// The largest datagram read (a 1,500-byte MTU with room to spare).
const DATAGRAM: usize = 2048;

/// What the rest of the server asks of a shard.
pub(crate) enum Command {
    OpenRoom {
        room: u64,
        outbox: Arc<dyn Outbox>,
    },
    AddPeer {
        room: u64,
        conn: ConnId,
        reply: oneshot::Sender<Result<(), RtcError>>,
    },
    Signal {
        room: u64,
        conn: ConnId,
        signal: Signal,
        reply: oneshot::Sender<Result<(), RtcError>>,
    },
    ResendOffer {
        room: u64,
        conn: ConnId,
    },
    RemovePeer {
        room: u64,
        conn: ConnId,
    },
    SetMembers {
        room: u64,
        members: Vec<(ConnId, Transport)>,
    },
    SetSenders {
        room: u64,
        senders: Arc<Senders>,
    },
    ForwardWire {
        room: u64,
        frame: WireFrame,
    },
    CloseRoom {
        room: u64,
    },
}

/// An intercom member's audio frame for the desktops: `wire::Media` with
/// its payload copied once, into the buffer every subscriber's packet
/// shares.
pub(crate) struct WireFrame {
    pub sender: ConnId,
    pub codec: Codec,
    pub timestamp: u32,
    pub sequence: u16,
    pub payload: Bytes,
}

/// A member's published track.
pub(crate) struct Publication {
    pub codec: Codec,
    pub rtc: RTCRtpCodec,
    /// The publisher's SSRC (RTCP to it names it); 0 for an intercom's.
    pub ssrc: u32,
    /// The publisher's receiver, to send it RTCP; `None` for an intercom.
    pub receiver: Option<RTCRtpReceiverId>,
    /// When its codec last changed, which may happen again only
    /// `CODEC_CHANGE_INTERVAL` later: an intercom's publication is made
    /// anew for each codec, so its creation counts; a desktop's track has
    /// `None` until it first changes codec.
    pub codec_since: Option<Instant>,
    /// The RTP timestamp of the video frame whose first packet passed the
    /// sender check: the rest of that frame follows it.
    pub frame: Option<u32>,
}

pub(crate) struct Room {
    pub outbox: Arc<dyn Outbox>,
    /// The group's present members, and how each is connected.
    pub members: Map<ConnId, Transport>,
    /// Each desktop's peer connection.
    pub peers: Map<ConnId, u64>,
    pub publications: Map<(ConnId, Kind), Publication>,
    pub senders: Arc<Senders>,
    pub refusals: Refusals,
}

pub(crate) struct Shard {
    socket: UdpSocket,
    local: SocketAddr,
    /// The address put in offers for `local`.
    pub(super) announced: SocketAddr,
    pub(super) settings: RtcSettings,
    pub(super) metrics: Arc<Metrics>,
    pub(super) tap: Arc<Tap>,
    pub(super) rooms: Map<u64, Room>,
    pub(super) peers: Map<u64, Peer>,
    pub(super) next_peer: u64,
    pub(super) by_ufrag: Map<String, u64>,
    by_addr: Map<SocketAddr, u64>,
    /// Peer connections' timeouts, earliest first; an entry whose time is
    /// no longer its peer's deadline is stale and skipped.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Peer connections with output to drain, in order, each once.
    pub(super) dirty: Vec<u64>,
    pub(super) queued: Set<u64>,
    /// What a peer connection read in one drain, kept between drains so
    /// that forwarding allocates nothing per packet.
    media: Vec<(Kind, Packet, Instant)>,
    feedback: Vec<((ConnId, Kind), Rtcp)>,
    /// The pass's datagrams, sent together at its end.
    out: Datagrams,
}

impl Shard {
    pub(crate) fn new(
        socket: UdpSocket,
        announced: SocketAddr,
        settings: RtcSettings,
        metrics: Arc<Metrics>,
        tap: Arc<Tap>,
    ) -> std::io::Result<Self> {
        let local = socket.local_addr()?;
        let gso = settings.gso;
        Ok(Self {
            socket,
            local,
            announced,
            settings,
            metrics,
            tap,
            rooms: Map::default(),
            peers: Map::default(),
            next_peer: 0,
            by_ufrag: Map::default(),
            by_addr: Map::default(),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            queued: Set::default(),
            media: Vec::new(),
            feedback: Vec::new(),
            out: Datagrams::new().gso(gso),
        })
    }

    /// Runs until every handle to the shard is gone.
    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut inbox = Inbox::new(BATCH, DATAGRAM);
        loop {
            let wake = self
                .timers
                .peek()
                .map_or_else(|| Instant::now() + Duration::from_secs(3600), |t| t.0.0);
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                ready = self.socket.readable() => {
                    // Readiness is cleared when the read would block.
                    let read = ready.and_then(|()| {
                        self.socket
                            .try_io(Interest::READABLE, || inbox.recv(&self.socket, false))
                    });
                    if let Ok(n) = read {
                        for i in 0..n {
                            if let Some((datagram, from)) = inbox.get(i) {
                                self.datagram(datagram, from);
                            }
                        }
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => self.timeouts(),
            }
            self.flush();
        }
        let rooms: Vec<u64> = self.rooms.keys().copied().collect();
        for room in rooms {
            self.close_room(room);
        }
        self.flush();
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::OpenRoom { room, outbox } => {
                self.rooms.insert(
                    room,
                    Room {
                        outbox,
                        members: Map::default(),
                        peers: Map::default(),
                        publications: Map::default(),
                        senders: Arc::new(Senders::new()),
                        refusals: Refusals::new(),
                    },
                );
            }
            Command::AddPeer { room, conn, reply } => {
                let _ = reply.send(self.add_peer(room, conn, now));
            }
            Command::Signal {
                room,
                conn,
                signal,
                reply,
            } => {
                let _ = reply.send(self.signal(room, conn, signal, now));
            }
            Command::ResendOffer { room, conn } => self.resend_offer(room, conn),
            Command::RemovePeer { room, conn } => {
                self.remove_peer(room, conn);
                self.sync_room(room, now);
            }
            Command::SetMembers { room, members } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.members = members.into_iter().collect();
                    // An intercom that left the group publishes no more.
                    let members = &r.members;
                    r.publications.retain(|(c, _), p| {
                        p.receiver.is_some() || members.get(c) == Some(&Transport::Wire)
                    });
                }
                self.sync_room(room, now);
            }
            Command::SetSenders { room, senders } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.senders = senders;
                }
            }
            Command::ForwardWire { room, frame } => self.forward_wire(room, frame, now),
            Command::CloseRoom { room } => self.close_room(room),
        }
    }

    fn datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        let (key, check) = match stun::local_ufrag(datagram).and_then(|u| self.by_ufrag.get(&u)) {
            Some(&key) => {
                self.learn(key, from);
                (key, true)
            }
            None => match self.by_addr.get(&from) {
                Some(&key) => (key, false),
                None => return,
            },
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if check && peer.pc.remote_description().is_none() {
            // The client checks as soon as it has answered, and its answer
            // comes the long way (signalling, hub, this shard's commands):
            // a check that outruns it cannot be verified yet. It is sent
            // again; dropped here, it is neither an error nor a warning.
            return;
        }
        if peer
            .pc
            .handle_read(TaggedBytesMut {
                now: Instant::now(),
                transport: TransportContext {
                    local_addr: self.local,
                    peer_addr: from,
                    ecn: None,
                    transport_protocol: TransportProtocol::UDP,
                },
                message: BytesMut::from(datagram),
            })
            .is_err()
        {
            self.metrics.error(ErrorKind::Rtc);
        }
        self.touch(key);
    }

    /// `from` sent a check naming `key`'s ufrag: its later datagrams go to
    /// `key` (the peer connection decides whether the check was genuine).
    fn learn(&mut self, key: u64, from: SocketAddr) {
        if self.by_addr.get(&from) == Some(&key) {
            return;
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.addrs.len() == ADDRS {
            let old = peer.addrs.remove(0);
            if self.by_addr.get(&old) == Some(&key) {
                self.by_addr.remove(&old);
            }
        }
        peer.addrs.push(from);
        if let Some(previous) = self.by_addr.insert(from, key)
            && let Some(p) = self.peers.get_mut(&previous)
        {
            p.addrs.retain(|a| *a != from);
        }
    }

    /// Forgets a peer connection's routes; its last datagrams (DTLS close)
    /// leave first.
    pub(super) fn forget(&mut self, key: u64) {
        let Some(mut peer) = self.peers.remove(&key) else {
            return;
        };
        self.by_ufrag.remove(&peer.ufrag);
        for addr in &peer.addrs {
            if self.by_addr.get(addr) == Some(&key) {
                self.by_addr.remove(addr);
            }
        }
        let _ = peer.pc.close();
        while let Some(out) = peer.pc.poll_write() {
            self.out.push(&out.message, out.transport.peer_addr);
        }
    }

    fn timeouts(&mut self) {
        let now = Instant::now();
        let answer_timeout = self.answer_timeout();
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            if peer.deadline != Some(at) {
                continue;
            }
            peer.deadline = None;
            let _ = peer.pc.handle_timeout(now);
            if peer
                .answer_due(answer_timeout)
                .is_some_and(|due| due <= now)
            {
                self.offer_again(key, now);
            }
            self.touch(key);
        }
    }

    fn answer_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.answer_timeout_ms)
    }

    /// No answer came for the outstanding offer: it may have been lost
    /// (a link that dropped, a client that missed it), so it is sent again,
    /// later each time. A client that never answers stalls only its own
    /// renegotiation.
    fn offer_again(&mut self, key: u64, now: Instant) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(outstanding) = peer.offer.as_mut() else {
            return;
        };
        let Ok(offer) = offer_signal(&outstanding.sdp) else {
            return;
        };
        outstanding.sent = now;
        outstanding.resends = outstanding.resends.saturating_add(1);
        tracing::debug!(conn = %peer.conn, resends = outstanding.resends, "no answer: the offer is sent again");
        self.metrics.error(ErrorKind::Rtc);
        if let Some(r) = self.rooms.get(&peer.room) {
            r.outbox.signal(peer.conn, offer);
        }
    }

    pub(super) fn touch(&mut self, key: u64) {
        mark(&mut self.queued, &mut self.dirty, key);
    }

    /// Drains every touched peer connection: events, media to forward (which
    /// touches the subscribers), datagrams to send, and its next timeout.
    fn flush(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.dirty.len() {
            let key = self.dirty[i];
            i += 1;
            self.queued.remove(&key);
            self.drain(key, now);
        }
        self.dirty.clear();
        if !self.out.is_empty() {
            let sent = self.out.send(&self.socket);
            for _ in 0..sent.failed {
                self.metrics.error(ErrorKind::Io);
            }
        }
        if self.timers.len() > 4 * self.peers.len() + 64 {
            self.timers = self
                .peers
                .iter()
                .filter_map(|(&k, p)| p.deadline.map(|d| Reverse((d, k))))
                .collect();
        }
    }

    fn drain(&mut self, key: u64, now: Instant) {
        let answer_timeout = self.answer_timeout();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let mut opened = Vec::new();
        while let Some(event) = peer.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => opened.push(init),
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    tracing::debug!(conn = %peer.conn, %state, "peer connection");
                    peer.connected = state == RTCPeerConnectionState::Connected;
                }
                _ => {}
            }
        }
        let mut published = Vec::new();
        for init in opened {
            let Some(receiver) = peer.pc.rtp_receiver(init.receiver_id) else {
                continue;
            };
            let track = receiver.track();
            let Some(kind) = Kind::of(track.kind()) else {
                continue;
            };
            let Some(ssrc) = track.ssrcs().next() else {
                continue;
            };
            let Some(rtc) = track.codec(ssrc).cloned() else {
                continue;
            };
            peer.incoming.insert(init.track_id, kind);
            published.push((kind, ssrc, init.receiver_id, rtc));
        }
        let mut media = std::mem::take(&mut self.media);
        let mut feedback = std::mem::take(&mut self.feedback);
        while let Some(message) = peer.pc.poll_read() {
            match message.message {
                RTCMessage::RtpPacket(track, packet) => {
                    if let Some(&kind) = peer.incoming.get(&track) {
                        media.push((kind, packet, message.now));
                    }
                }
                RTCMessage::RtcpPacket(track, packets) => {
                    if let Some(&about) = peer.sent_tracks.get(&track) {
                        feedback.push((about, packets));
                    }
                }
                _ => {}
            }
        }
        let (room, conn) = (peer.room, peer.conn);
        if !published.is_empty() {
            self.publish(room, conn, published, now);
        }
        for (kind, packet, arrival) in media.drain(..) {
            self.forward(room, conn, kind, packet, arrival, now);
        }
        for (about, packets) in feedback.drain(..) {
            self.feedback(key, about, &packets, now);
        }
        self.media = media;
        self.feedback = feedback;
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        while let Some(out) = peer.pc.poll_write() {
            self.out.push(&out.message, out.transport.peer_addr);
        }
        let answer = peer.answer_due(answer_timeout);
        let deadline = match (peer.pc.poll_timeout(), answer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if deadline != peer.deadline {
            peer.deadline = deadline;
            if let Some(at) = deadline {
                self.timers.push(Reverse((at, key)));
            }
        }
    }

    /// A desktop's tracks opened: the room publishes them.
    fn publish(
        &mut self,
        room: u64,
        conn: ConnId,
        tracks: Vec<(Kind, u32, RTCRtpReceiverId, RTCRtpCodec)>,
        now: Instant,
    ) {
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        for (kind, ssrc, receiver, rtc) in tracks {
            let Some(codec) = Codec::from_mime(&rtc.mime_type) else {
                tracing::warn!(%conn, mime = %rtc.mime_type, "a track with an unknown codec is ignored");
                self.metrics.error(ErrorKind::Rtc);
                continue;
            };
            tracing::debug!(%conn, ?codec, ?kind, "publishing");
            r.publications.insert(
                (conn, kind),
                Publication {
                    codec,
                    rtc,
                    ssrc,
                    receiver: Some(receiver),
                    codec_since: None,
                    frame: None,
                },
            );
        }
        self.sync_room(room, now);
    }
}

/// A batch of RTCP packets a subscriber sent about one track.
type Rtcp = Vec<Box<dyn rtc::rtcp::Packet>>;

/// Queues `key` to be drained in this pass, once.
pub(super) fn mark(queued: &mut Set<u64>, dirty: &mut Vec<u64>, key: u64) {
    if queued.insert(key) {
        dirty.push(key);
    }
}

pub(super) fn random_ssrc() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_be_bytes(b)
}

pub(super) fn offer_signal(sdp: &str) -> Result<Signal, RtcError> {
    Blob::copy_from(sdp.as_bytes())
        .map(Signal::Offer)
        .ok_or(RtcError::Sdp("the offer is larger than the wire allows"))
}
