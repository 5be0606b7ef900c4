//! A link to the SFU: a WebSocket (desktops) or the intercom's TCP stream of
//! length-prefixed frames, both carrying `core::wire` messages.

use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use satsuma_core::wire::{self, Message as _, RoomName, ToServer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::error::LinkError;

/// Where the SFU is and how to reach it.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// `ws://{addr}/v1/rooms/{room}/ws`: a desktop client.
    WebSocket(SocketAddr),
    /// The intercom link at `addr`.
    Intercom(SocketAddr),
}

type WebSocket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// One open link.
pub(crate) enum Link {
    Ws(Box<WebSocket>),
    Tcp(TcpStream),
}

impl Link {
    pub(crate) async fn open(endpoint: &Endpoint, room: &RoomName) -> Result<Self, LinkError> {
        match *endpoint {
            Endpoint::WebSocket(addr) => {
                let url = format!("ws://{addr}/v1/rooms/{}/ws", room.as_str());
                let (ws, _) = tokio_tungstenite::connect_async(url).await?;
                Ok(Self::Ws(Box::new(ws)))
            }
            Endpoint::Intercom(addr) => {
                let tcp = TcpStream::connect(addr)
                    .await
                    .map_err(|source| LinkError::Connect { addr, source })?;
                // Small control frames must not wait for Nagle.
                let _ = tcp.set_nodelay(true);
                Ok(Self::Tcp(tcp))
            }
        }
    }

    pub(crate) async fn send(&mut self, message: &ToServer) -> Result<(), LinkError> {
        match self {
            Self::Ws(ws) => {
                let bytes = message.encode()?;
                ws.send(WsMessage::Binary(bytes.into())).await?;
            }
            Self::Tcp(tcp) => {
                let framed = wire::encode_framed(message)?;
                tcp.write_all(&framed).await?;
            }
        }
        Ok(())
    }

    /// Sends a message encoded before (with [`wire::Message::encode`]): one kept
    /// for a resume.
    pub(crate) async fn send_encoded(&mut self, body: &[u8]) -> Result<(), LinkError> {
        match self {
            Self::Ws(ws) => ws.send(WsMessage::Binary(body.to_vec().into())).await?,
            Self::Tcp(tcp) => {
                // Encoded messages are bounded by `limits::MESSAGE`.
                let len =
                    u32::try_from(body.len()).map_err(|_| wire::WireError::TooLong(body.len()))?;
                let mut framed = Vec::with_capacity(body.len() + 4);
                framed.extend_from_slice(&len.to_be_bytes());
                framed.extend_from_slice(body);
                tcp.write_all(&framed).await?;
            }
        }
        Ok(())
    }

    /// The next message; `None` when the link closed or broke. A frame
    /// whose announced length is over the wire limit breaks the link: the
    /// stream cannot be resynchronised after it.
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        match self {
            Self::Ws(ws) => loop {
                match ws.next().await? {
                    Ok(WsMessage::Binary(b)) => return Some(b),
                    Ok(WsMessage::Close(_)) | Err(_) => return None,
                    Ok(_) => {}
                }
            },
            Self::Tcp(tcp) => {
                let mut header = [0; 4];
                tcp.read_exact(&mut header).await.ok()?;
                let len = wire::frame_len(header).ok()?;
                let mut body = vec![0; len];
                tcp.read_exact(&mut body).await.ok()?;
                Some(body.into())
            }
        }
    }
}
