//! The two links: WebSocket (desktop clients) and length-prefixed TCP
//! (intercoms), and the HTTP routes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use satsuma_core::wire::{self, RoomName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader, BufWriter};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::hub::Hub;
use crate::link::{LinkReader, LinkWriter, ReadError, serve};
use crate::metrics::ErrorKind;

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
    let Some(admission) = hub.admit() else {
        hub.metrics.error(ErrorKind::Full);
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections\n").into_response();
    };
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
        match self.0.next().await {
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
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|down| *down) => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: the listener itself is fine.
                tracing::warn!(error = %e, "accept failed");
                hub.metrics.error(ErrorKind::Io);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(admission) = hub.admit() else {
            hub.metrics.error(ErrorKind::Full);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let max = hub.config.limits.max_message_bytes;
        let hub = Arc::clone(&hub);
        tokio::spawn(async move {
            let reader = TcpReader {
                read: BufReader::with_capacity(64 * 1024, read),
                max,
            };
            let writer = TcpWriter(BufWriter::with_capacity(16 * 1024, write));
            serve(hub, reader, writer, None, peer, admission).await;
        });
    }
}

struct TcpReader {
    /// Buffered: a burst of small frames costs one read, not two a frame.
    read: BufReader<OwnedReadHalf>,
    max: usize,
}

impl LinkReader for TcpReader {
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

struct TcpWriter(BufWriter<OwnedWriteHalf>);

impl LinkWriter for TcpWriter {
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
