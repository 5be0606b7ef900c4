//! WebRTC for desktop clients, on `rtc` (webrtc-rs's sans-IO core): one
//! peer connection per client, every member's tracks forwarded to every
//! other member, payloads untouched.
//!
//! Shards ([`shard`]), each one thread with one UDP socket, own the rooms
//! placed on them and drive their peer connections without a task, channel
//! or lock per packet; the rest of the server talks to a room's shard with
//! commands through [`RtcRoom`]. Each peer connection is ICE-lite with
//! random credentials and its shard's socket as its only candidate; the
//! shard routes a datagram by the ufrag its STUN check names, then by the
//! address it came from.
//!
//! The SFU makes every offer. A client's first offer has a receive-only
//! audio and video transceiver for what the client publishes, and a
//! send-only transceiver per track of every other member. Membership,
//! publications and intercom members change the set; the SFU then offers
//! again, one offer at a time per peer.
//!
//! A forwarded track has the stream id `<publisher conn id>` (decimal) and
//! the track id `<publisher conn id>-audio` or `<publisher conn id>-video`;
//! an intercom member's audio looks the same as a desktop member's.
//!
//! Every RTP payload is one protected frame (`core::media`'s layout), and
//! the SFU reads its SFrame header: a packet whose KID does not name its
//! publisher's leaf in an epoch receivers still open is dropped before it
//! is written to any subscriber (`core::committer::Senders`, kept by the
//! room's log and handed over with [`RtcRoom::set_senders`]).
//!
//! What it does not do: decode, mix, transcode or look inside a payload
//! beyond that header; simulcast; RTX. PLIs and FIRs go to the publisher,
//! with its SSRC; a NACK is answered from the last packets sent to the
//! subscriber that asked, and to it alone.
//!
//! Slow subscribers lose video, never audio: receiver reports saying a
//! subscriber loses more than [`RtcSettings::loss_pause_percent`] (or a
//! REMB under [`RtcSettings::remb_pause_bps`]) pause its video; it resumes
//! with a key-frame request to the publisher once no bad report came for
//! [`RtcSettings::recover_after_ms`]. Sequence numbers are rewritten per
//! subscriber on resume, so a pause is not reported as loss. Nothing is
//! queued per subscriber: a packet is written to the shared socket when it
//! is forwarded, so a subscriber that reads slowly loses packets in the
//! network, not the others' place in a queue.

mod feedback;
mod forward;
mod negotiate;
mod peer;
mod relay;
mod shard;
mod stun;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use satsuma_core::committer::Senders;
use satsuma_core::wire::{ConnId, Media, Signal, Transport};
use tokio::sync::{mpsc, oneshot};

use self::shard::{Command, Shard, WireFrame};
use crate::metrics::Metrics;
use crate::tap::Tap;

/// WebRTC settings (`[rtc]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtcSettings {
    /// Media threads (shards), each with one UDP socket; a room lives on
    /// one. 0 (the default): one per core.
    pub shards: usize,
    /// The first shard's UDP port; shard `i` takes `port_min + i`, which
    /// must not pass `port_max`. `port_min = 0` (the default) lets the OS
    /// pick each port.
    pub port_min: u16,
    /// The highest port a shard may take (see `port_min`). Default 0.
    pub port_max: u16,
    /// The address the shards' sockets bind to: the first of the list.
    /// Default `["127.0.0.1"]`, for a local setup; a deployment names its
    /// interface address (or `0.0.0.0` with `nat_1to1_ips`).
    pub ips: Vec<IpAddr>,
    /// The address announced as the candidate instead of the bound one
    /// (the first of the list): a 1:1 NAT's public address. Default none.
    pub nat_1to1_ips: Vec<String>,
    /// Receiver-reported loss, in percent, above which a subscriber's video
    /// pauses. Default 10.
    pub loss_pause_percent: u8,
    /// A REMB estimate, in bits per second, under which a subscriber's video
    /// pauses; 0 ignores REMB. Default 100 000.
    pub remb_pause_bps: u64,
    /// How long, in milliseconds, a subscriber's reports must stay good
    /// before its video resumes. Default 3000.
    pub recover_after_ms: u64,
    /// How long, in milliseconds, an offer waits for its answer before it
    /// is sent again (then twice as long, up to 16 times). Default 10 000.
    pub answer_timeout_ms: u64,
    /// Send a run of equal-sized datagrams to one address (a video
    /// frame's packets to one subscriber) as one UDP GSO message, which
    /// the kernel splits. Turned off by itself where the kernel or device
    /// refuses it. Default true.
    pub gso: bool,
}

impl Default for RtcSettings {
    fn default() -> Self {
        Self {
            shards: 0,
            port_min: 0,
            port_max: 0,
            ips: vec![IpAddr::from([127, 0, 0, 1])],
            nat_1to1_ips: Vec::new(),
            loss_pause_percent: 10,
            remb_pause_bps: 100_000,
            recover_after_ms: 3000,
            answer_timeout_ms: 10_000,
            gso: true,
        }
    }
}

impl RtcSettings {
    /// The address the shards bind to and the one their candidates
    /// announce.
    fn addresses(&self) -> Result<(IpAddr, IpAddr), RtcError> {
        let bind = *self
            .ips
            .first()
            .ok_or_else(|| RtcError::Settings("rtc.ips is empty".to_owned()))?;
        let announced = match self.nat_1to1_ips.first() {
            Some(ip) => ip.parse().map_err(|_| {
                RtcError::Settings(format!("rtc.nat_1to1_ips: {ip:?} is not an IP address"))
            })?,
            None if bind.is_unspecified() => {
                return Err(RtcError::Settings(
                    "rtc.ips binds every interface: rtc.nat_1to1_ips must name the address to announce"
                        .to_owned(),
                ));
            }
            None => bind,
        };
        Ok((bind, announced))
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

/// The process's WebRTC media plane: its shards.
#[derive(Debug)]
pub struct Rtc {
    shards: Vec<ShardHandle>,
    next_room: AtomicU64,
}

#[derive(Debug)]
struct ShardHandle {
    commands: mpsc::UnboundedSender<Command>,
    addr: SocketAddr,
    /// Rooms open on it.
    rooms: AtomicUsize,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// Socket buffer asked for each shard's socket, both ways: bursts of video
/// from many publishers land at once (the kernel may grant less).
const SOCKET_BUFFER: usize = 4 << 20;

fn shard_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer still works.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

impl Rtc {
    /// Starts the shards: `settings.shards` of them, or one per core.
    ///
    /// # Errors
    /// When the settings cannot be applied, a socket cannot be bound or a
    /// thread started.
    pub fn new(
        settings: &RtcSettings,
        metrics: Arc<Metrics>,
        tap: Arc<Tap>,
    ) -> Result<Arc<Self>, RtcError> {
        if settings.port_min > settings.port_max {
            return Err(RtcError::Settings("port_min is above port_max".to_owned()));
        }
        if settings.answer_timeout_ms == 0 {
            return Err(RtcError::Settings("answer_timeout_ms is 0".to_owned()));
        }
        if settings.loss_pause_percent > 100 {
            return Err(RtcError::Settings(
                "loss_pause_percent is above 100".to_owned(),
            ));
        }
        let (bind, announced) = settings.addresses()?;
        let shards = match settings.shards {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let mut handles = Vec::new();
        for i in 0..shards {
            let port = if settings.port_min == 0 {
                0
            } else {
                u16::try_from(i)
                    .ok()
                    .and_then(|i| settings.port_min.checked_add(i))
                    .filter(|p| *p <= settings.port_max)
                    .ok_or_else(|| {
                        RtcError::Settings(format!(
                            "{shards} shards need {shards} ports from port_min"
                        ))
                    })?
            };
            let socket = shard_socket(SocketAddr::new(bind, port))
                .map_err(|e| RtcError::Settings(format!("cannot bind {bind}:{port}: {e}")))?;
            let addr = socket
                .local_addr()
                .map_err(|e| RtcError::Settings(e.to_string()))?;
            let announce = SocketAddr::new(announced, addr.port());
            // Unbounded, so that nothing the room says is lost or reordered
            // (the members, the senders' table before the entry that
            // changed it): what comes in is bounded upstream by the links'
            // rate limits.
            let (tx, rx) = mpsc::unbounded_channel();
            let (settings, metrics, tap) =
                (settings.clone(), Arc::clone(&metrics), Arc::clone(&tap));
            std::thread::Builder::new()
                .name(format!("satsuma-shard-{i}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            tracing::error!("shard {i}: no runtime: {e}");
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        let shard = tokio::net::UdpSocket::from_std(socket).and_then(|socket| {
                            Shard::new(socket, announce, settings, metrics, tap)
                        });
                        match shard {
                            Ok(shard) => shard.run(rx).await,
                            Err(e) => tracing::error!("shard {i}: {e}"),
                        }
                    });
                })
                .map_err(|e| RtcError::Settings(format!("cannot start a shard: {e}")))?;
            handles.push(ShardHandle {
                commands: tx,
                addr,
                rooms: AtomicUsize::new(0),
            });
        }
        Ok(Arc::new(Self {
            shards: handles,
            next_room: AtomicU64::new(0),
        }))
    }

    /// Each shard's socket address.
    #[must_use]
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.shards.iter().map(|s| s.addr).collect()
    }

    /// A new room's media plane, on the shard with the fewest rooms.
    pub fn room(self: &Arc<Self>, outbox: Arc<dyn Outbox>) -> Arc<RtcRoom> {
        let id = self.next_room.fetch_add(1, Ordering::Relaxed);
        let shard = self
            .shards
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.rooms.load(Ordering::Relaxed))
            .map_or(0, |(i, _)| i);
        self.shards[shard].rooms.fetch_add(1, Ordering::Relaxed);
        let commands = self.shards[shard].commands.clone();
        let _ = commands.send(Command::OpenRoom { room: id, outbox });
        Arc::new(RtcRoom {
            id,
            commands,
            rtc: Arc::clone(self),
            shard,
        })
    }
}

/// One room's media plane on its shard. Dropping it closes the room.
#[derive(Debug)]
pub struct RtcRoom {
    id: u64,
    commands: mpsc::UnboundedSender<Command>,
    rtc: Arc<Rtc>,
    shard: usize,
}

impl Drop for RtcRoom {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::CloseRoom { room: self.id });
        if let Some(s) = self.rtc.shards.get(self.shard) {
            s.rooms.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl RtcRoom {
    async fn ask(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), RtcError>>) -> Command,
    ) -> Result<(), RtcError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).map_err(|_| RtcError::Closed)?;
        rx.await.map_err(|_| RtcError::Closed)?
    }

    fn tell(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// A WebRTC client is in the room: its peer connection, and an offer.
    ///
    /// # Errors
    /// When the peer connection cannot be made.
    pub async fn add_peer(&self, conn: ConnId) -> Result<(), RtcError> {
        let room = self.id;
        self.ask(|reply| Command::AddPeer { room, conn, reply })
            .await
    }

    /// A signalling message from `conn`.
    ///
    /// # Errors
    /// For an offer (the SFU makes offers) or an answer that does not apply.
    pub async fn handle_signal(&self, conn: ConnId, signal: Signal) -> Result<(), RtcError> {
        let room = self.id;
        self.ask(|reply| Command::Signal {
            room,
            conn,
            signal,
            reply,
        })
        .await
    }

    /// `conn` resumed on a new signalling link: an outstanding offer is sent
    /// again.
    pub async fn resend_offer(&self, conn: ConnId) {
        self.tell(Command::ResendOffer {
            room: self.id,
            conn,
        });
    }

    /// `conn` is gone: its peer connection closes and its tracks leave the
    /// others'.
    pub async fn remove_peer(&self, conn: ConnId) {
        self.tell(Command::RemovePeer {
            room: self.id,
            conn,
        });
    }

    /// The group's present members: media is forwarded only among them.
    pub async fn set_members(&self, members: Vec<(ConnId, Transport)>) {
        self.tell(Command::SetMembers {
            room: self.id,
            members,
        });
    }

    /// Who may send under which SFrame KID.
    pub fn set_senders(&self, senders: Arc<Senders>) {
        let _ = self.commands.send(Command::SetSenders {
            room: self.id,
            senders,
        });
    }

    /// An intercom member's audio frame, for the desktop members.
    pub fn forward_wire(&self, media: &Media) {
        let _ = self.commands.send(Command::ForwardWire {
            room: self.id,
            frame: WireFrame {
                sender: media.sender,
                codec: media.codec,
                timestamp: media.timestamp,
                sequence: media.sequence,
                payload: Bytes::copy_from_slice(&media.payload),
            },
        });
    }

    /// Closes every peer connection of the room.
    pub async fn close(&self) {
        self.tell(Command::CloseRoom { room: self.id });
    }
}
