//! Why a client could not start, or a command failed.

use std::net::SocketAddr;

use satsuma_core::committer::CommitterError;
use satsuma_core::wire::WireError;
use tokio_tungstenite::tungstenite;

use crate::rtc::RtcError;

/// Why a client could not start, or a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The link to the SFU could not be opened, or failed.
    #[error("link: {0}")]
    Link(#[from] LinkError),
    /// The member refused to start (it is already in a room, say).
    #[error("the member cannot join: {0}")]
    Member(#[from] CommitterError),
    /// A frame could not be sealed or opened: no group yet, a key of an
    /// epoch this member never had or no longer keeps, a forgery.
    #[error("media: {0}")]
    Media(#[from] satsuma_core::Error),
    /// The WebRTC peer failed.
    #[error("WebRTC: {0}")]
    Rtc(#[from] RtcError),
    /// The client's task has stopped: it left, or lost the SFU for good.
    #[error("the client has stopped")]
    Stopped,
}

/// Why a link to the SFU failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// No TCP connection to the SFU.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The WebSocket handshake or a WebSocket frame failed.
    #[error("WebSocket: {0}")]
    WebSocket(#[source] Box<tungstenite::Error>),
    /// Reading or writing the intercom link failed.
    #[error("intercom link: {0}")]
    Io(#[from] std::io::Error),
    /// A message could not be encoded (it is over a wire limit).
    #[error("cannot encode a message: {0}")]
    Encode(#[from] WireError),
}

impl From<tungstenite::Error> for LinkError {
    fn from(e: tungstenite::Error) -> Self {
        Self::WebSocket(Box::new(e))
    }
}
