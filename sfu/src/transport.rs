//! The two links: WebSocket (desktop clients) and length-prefixed TCP
//! (intercoms), and the HTTP routes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use satsuma_core::wire::{self, RoomName};
use tokio::io::{
    AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader, BufWriter,
};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

use crate::hub::{Admission, Hub};
use crate::link::{LinkReader, LinkWriter, ReadError, serve};
use crate::metrics::ErrorKind;

/// Serves HTTP, and the WebSocket upgrade, on `listener` until the server
/// shuts down. Every accepted socket is counted against the limits (per
/// server and per address) until it and any link it became are gone; a
/// socket that sends no whole request head within the handshake timeout
/// (silent, half a header, or idle between requests) is closed.
pub(crate) async fn http(hub: Arc<Hub>, listener: TcpListener) {
    let router = router(Arc::clone(&hub));
    let header_timeout = Duration::from_millis(hub.config.limits.handshake_timeout_ms);
    let mut shutdown = hub.shutdown.subscribe();
    while let Some((stream, peer, admission)) = accept(&hub, &listener, &mut shutdown).await {
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(Arc::clone(&admission));
            router.clone().oneshot(request)
        });
        let mut down = hub.shutdown.subscribe();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "HTTP connection closed");
                    }
                }
                _ = async { drop(down.wait_for(|down| *down).await) } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

/// The next socket on `listener`, counted against the server's and its
/// address's limits (a socket over them is closed at once and counted as
/// `Full`); `None` once the server shuts down.
async fn accept(
    hub: &Arc<Hub>,
    listener: &TcpListener,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<(TcpStream, SocketAddr, Arc<Admission>)> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|down| *down) => return None,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: the listener itself is fine.
                tracing::warn!(error = %e, "accept failed");
                hub.metrics.error(ErrorKind::Io);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match hub.admit(peer.ip()) {
            Some(admission) => return Some((stream, peer, Arc::new(admission))),
            None => hub.metrics.error(ErrorKind::Full),
        }
    }
}

/// The HTTP routes.
pub(crate) fn router(hub: Arc<Hub>) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/rooms/{room}/ws", get(websocket))
        .with_state(hub)
}

async fn healthz(State(hub): State<Arc<Hub>>) -> Response {
    if *hub.shutdown.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        "ok\n".into_response()
    }
}

async fn metrics(State(hub): State<Arc<Hub>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        hub.metrics.render(),
    )
        .into_response()
}

async fn websocket(
    State(hub): State<Arc<Hub>>,
    Path(room): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(admission): Extension<Arc<Admission>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Ok(room) = RoomName::new(&room) else {
        hub.metrics.error(ErrorKind::Malformed);
        return (
            StatusCode::BAD_REQUEST,
            "room names are 1-64 characters of A-Z a-z 0-9 - _ .\n",
        )
            .into_response();
    };
    if *hub.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    // The socket was counted when it was accepted; the link keeps it
    // counted after the upgrade.
    let max = hub.config.limits.max_message_bytes;
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = socket.split();
            serve(
                hub,
                WsReader(stream),
                WsWriter(sink),
                Some(room),
                peer,
                admission,
            )
            .await;
        })
}

struct WsReader(SplitStream<WebSocket>);

impl LinkReader for WsReader {
    async fn next(&mut self) -> Result<Option<Bytes>, ReadError> {
        ws_message(self.0.next().await)
    }
}

/// What the link makes of the WebSocket's next item (`None`: the stream
/// ended): a binary message is one `core::wire` message, a ping or pong a
/// keep-alive, a close the end.
pub(crate) fn ws_message(
    item: Option<Result<WsMessage, axum::Error>>,
) -> Result<Option<Bytes>, ReadError> {
    match item {
        None | Some(Ok(WsMessage::Close(_))) => Ok(None),
        Some(Ok(WsMessage::Binary(bytes))) => Ok(Some(bytes)),
        Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => Ok(Some(Bytes::new())),
        Some(Ok(WsMessage::Text(_))) => {
            Err(ReadError::Malformed("text frames are not spoken here"))
        }
        Some(Err(e)) => {
            let text = e.to_string();
            if text.contains("too long") || text.contains("size") {
                Err(ReadError::TooLarge(0))
            } else {
                Err(ReadError::Io(text))
            }
        }
    }
}

struct WsWriter(SplitSink<WebSocket, WsMessage>);

impl LinkWriter for WsWriter {
    async fn write(&mut self, message: Bytes) -> std::io::Result<()> {
        self.0
            .feed(WsMessage::Binary(message))
            .await
            .map_err(std::io::Error::other)
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().await.map_err(std::io::Error::other)
    }

    async fn ping(&mut self) -> std::io::Result<()> {
        self.0
            .send(WsMessage::Ping(Bytes::new()))
            .await
            .map_err(std::io::Error::other)
    }

    async fn close(mut self) {
        let _ = self.0.send(WsMessage::Close(None)).await;
        let _ = self.0.close().await;
    }
}

/// Accepts intercom links until the server shuts down.
pub(crate) async fn intercom(hub: Arc<Hub>, listener: TcpListener) {
    let mut shutdown = hub.shutdown.subscribe();
    while let Some((stream, peer, admission)) = accept(&hub, &listener, &mut shutdown).await {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let max = hub.config.limits.max_message_bytes;
        let hub = Arc::clone(&hub);
        tokio::spawn(async move {
            let reader = TcpReader::new(read, max);
            let writer = TcpWriter::new(write);
            serve(hub, reader, writer, None, peer, admission).await;
        });
    }
}

/// The intercom link's reading half: length-prefixed frames (big-endian
/// `u32`, `wire::frame_len`) over a byte stream, a TCP socket's in the
/// server.
pub(crate) struct TcpReader<R = OwnedReadHalf> {
    /// Buffered: a burst of small frames costs one read, not two a frame.
    read: BufReader<R>,
    max: usize,
}

impl<R: AsyncRead + Unpin> TcpReader<R> {
    /// Frames of at most `max` bytes from `read`.
    pub(crate) fn new(read: R, max: usize) -> Self {
        Self {
            read: BufReader::with_capacity(64 * 1024, read),
            max,
        }
    }
}

impl<R: AsyncRead + Unpin + Send + 'static> LinkReader for TcpReader<R> {
    async fn next(&mut self) -> Result<Option<Bytes>, ReadError> {
        let mut header = [0; 4];
        match self.read.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(ReadError::Io(e.to_string())),
        }
        let len = match wire::frame_len(header) {
            Ok(len) if len <= self.max => len,
            Ok(len) | Err(wire::WireError::TooLong(len)) => return Err(ReadError::TooLarge(len)),
            Err(_) => return Err(ReadError::Malformed("a frame of length zero")),
        };
        let mut buf = bytes::BytesMut::zeroed(len);
        match self.read.read_exact(&mut buf).await {
            Ok(_) => Ok(Some(buf.freeze())),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(ReadError::Malformed("the link closed inside a frame"))
            }
            Err(e) => Err(ReadError::Io(e.to_string())),
        }
    }
}

/// The intercom link's writing half: each message behind its length.
pub(crate) struct TcpWriter<W = OwnedWriteHalf>(BufWriter<W>);

impl<W: AsyncWrite + Unpin> TcpWriter<W> {
    pub(crate) fn new(write: W) -> Self {
        Self(BufWriter::with_capacity(16 * 1024, write))
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> LinkWriter for TcpWriter<W> {
    async fn write(&mut self, message: Bytes) -> std::io::Result<()> {
        let len = u32::try_from(message.len()).map_err(std::io::Error::other)?;
        self.0.write_all(&len.to_be_bytes()).await?;
        self.0.write_all(&message).await
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().await
    }

    async fn ping(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    async fn close(mut self) {
        let _ = self.0.flush().await;
        let _ = self.0.shutdown().await;
    }
}
