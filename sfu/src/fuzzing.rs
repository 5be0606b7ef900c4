//! The SFU's own input paths for `fuzz/fuzz_targets/sfu_link.rs`: a hub with
//! real rooms, and links served by the real `link::serve` (handshake, read
//! loop, room logic) over in-memory transports instead of sockets. Not a
//! stable API; only with the `fuzzing` feature.
//!
//! - [`Hub::intercom`] reads and writes with the intercom link's own framing
//!   (`transport::TcpReader`/`TcpWriter`) over any byte stream, such as one
//!   end of a `tokio::io::duplex`;
//! - [`Hub::websocket`] reads [`WsFrame`]s through the WebSocket link's own
//!   mapping (`transport::ws_message`) and hands every message the server
//!   writes to a channel (the WebSocket's framing and upgrade are axum's).
//!
//! Everything must run inside a tokio runtime (the hub and its rooms spawn
//! tasks); a paused clock works, as the rooms and links read the runtime's
//! time.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::ws::Message as WsMessage;
use bytes::Bytes;
use satsuma_core::wire::RoomName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::link::{LinkReader, LinkWriter, ReadError, serve};
use crate::metrics::Metrics;
use crate::rtc::{Rtc, RtcError, RtcSettings};
use crate::tap::Tap;
use crate::transport::{TcpReader, TcpWriter, ws_message};

/// A hub as `start` makes it, without listeners.
#[derive(Debug, Clone)]
pub struct Hub {
    hub: Arc<crate::hub::Hub>,
}

/// What a WebSocket client's side delivers to the server's reader: the
/// item `axum`'s stream would yield.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsFrame {
    /// A binary message.
    Binary(Bytes),
    /// A text message (refused).
    Text(String),
    /// A ping.
    Ping,
    /// A pong.
    Pong,
    /// A close frame.
    Close,
    /// The stream failed with this text (`"... too long"`, `"... size ..."`
    /// read as over the size limit, anything else as a broken socket).
    Error(String),
}

/// The server's counts that must come back to zero once every link is gone
/// and every room has closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gauges {
    /// Rooms in the hub's map.
    pub rooms: usize,
    /// Counted sockets.
    pub connections: usize,
    /// Addresses with a counted socket.
    pub addresses: usize,
    /// `satsuma_rooms`.
    pub metric_rooms: u64,
    /// `satsuma_connections`.
    pub metric_connections: u64,
    /// `satsuma_members`.
    pub metric_members: u64,
    /// `satsuma_resume_history_bytes`.
    pub metric_resume_bytes: u64,
}

impl Hub {
    /// A hub with `config`, no capture, and the WebRTC stack its settings
    /// describe (built, never driven unless a client joins on WebRTC).
    ///
    /// # Errors
    /// When the WebRTC settings cannot be applied.
    pub fn new(config: Config) -> Result<Self, RtcError> {
        let metrics = Arc::new(Metrics::default());
        let tap = Arc::new(Tap::off());
        let rtc = shared_rtc(&config.rtc)?;
        Ok(Self {
            hub: crate::hub::Hub::new(config, metrics, tap, rtc),
        })
    }

    /// An intercom link from `peer` over `read` and `write`: the future
    /// serves it until it ends; `None` when the server refuses the socket
    /// (over `limits.max_connections` or the address's share).
    pub fn intercom<R, W>(
        &self,
        peer: SocketAddr,
        read: R,
        write: W,
    ) -> Option<impl Future<Output = ()> + Send + 'static>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let admission = Arc::new(self.hub.admit(peer.ip())?);
        let max = self.hub.config.limits.max_message_bytes;
        Some(serve(
            Arc::clone(&self.hub),
            TcpReader::new(read, max),
            TcpWriter::new(write),
            None,
            peer,
            admission,
        ))
    }

    /// A WebSocket link from `peer` on `/v1/rooms/{url_room}/ws`: it reads
    /// `frames` (their end is the stream's end) and sends every message it
    /// writes to `sent`. The future serves it until it ends; `None` when the
    /// server refuses the socket.
    pub fn websocket(
        &self,
        peer: SocketAddr,
        url_room: RoomName,
        frames: mpsc::UnboundedReceiver<WsFrame>,
        sent: mpsc::UnboundedSender<Bytes>,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        let admission = Arc::new(self.hub.admit(peer.ip())?);
        Some(serve(
            Arc::clone(&self.hub),
            WsFrames(frames),
            WsSent(sent),
            Some(url_room),
            peer,
            admission,
        ))
    }

    /// The counts now.
    #[must_use]
    pub fn gauges(&self) -> Gauges {
        let text = self.hub.metrics.render();
        let metric = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or(u64::MAX)
        };
        let (connections, addresses) = self.hub.sockets();
        Gauges {
            rooms: self.hub.rooms().len(),
            connections,
            addresses,
            metric_rooms: metric("satsuma_rooms"),
            metric_connections: metric("satsuma_connections"),
            metric_members: metric("satsuma_members"),
            metric_resume_bytes: metric("satsuma_resume_history_bytes"),
        }
    }
}

struct WsFrames(mpsc::UnboundedReceiver<WsFrame>);

impl LinkReader for WsFrames {
    async fn next(&mut self) -> Result<Option<Bytes>, ReadError> {
        let item = self.0.recv().await.map(|frame| match frame {
            WsFrame::Binary(bytes) => Ok(WsMessage::Binary(bytes)),
            WsFrame::Text(text) => Ok(WsMessage::Text(text.into())),
            WsFrame::Ping => Ok(WsMessage::Ping(Bytes::new())),
            WsFrame::Pong => Ok(WsMessage::Pong(Bytes::new())),
            WsFrame::Close => Ok(WsMessage::Close(None)),
            WsFrame::Error(text) => Err(axum::Error::new(std::io::Error::other(text))),
        });
        ws_message(item)
    }
}

struct WsSent(mpsc::UnboundedSender<Bytes>);

impl LinkWriter for WsSent {
    async fn write(&mut self, message: Bytes) -> std::io::Result<()> {
        self.0
            .send(message)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    async fn ping(&mut self) -> std::io::Result<()> {
        if self.0.is_closed() {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        } else {
            Ok(())
        }
    }

    async fn close(self) {}
}

/// The media plane every hub of the process shares, with one shard: its
/// thread and socket made for each input made the target six times slower,
/// and WebRTC is not driven here (rooms only open and close on it).
fn shared_rtc(settings: &RtcSettings) -> Result<Arc<Rtc>, RtcError> {
    static RTC: OnceLock<Arc<Rtc>> = OnceLock::new();
    if let Some(rtc) = RTC.get() {
        return Ok(Arc::clone(rtc));
    }
    let settings = RtcSettings {
        shards: 1,
        ..settings.clone()
    };
    let rtc = Rtc::new(
        &settings,
        Arc::new(Metrics::default()),
        Arc::new(Tap::off()),
    )?;
    Ok(Arc::clone(RTC.get_or_init(|| rtc)))
}
