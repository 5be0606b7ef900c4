//! The messages clients and the SFU exchange: one definition, postcard
//! encoded, for the desktop app, the intercom and the SFU alike.
//!
//! Every message on the wire is one version byte ([`VERSION`]) followed by
//! the postcard encoding of a [`ToServer`] or [`ToClient`]. Every variable
//! field has a bound ([`limits`]) that the decoder enforces before it
//! allocates, so a peer cannot make the other side reserve memory by
//! announcing a long length; and a whole message is at most
//! [`limits::MESSAGE`] bytes. Decoding never panics: anything else is a
//! [`WireError`].
//!
//! Enum variants are encoded by position: new variants and fields go at the
//! end, and a change that reorders them changes [`VERSION`].
//!
//! The transport frames messages: a WebSocket binary frame each on desktop,
//! a 4-byte big-endian length prefix on the intercom's TCP link
//! ([`frame_len`]).

mod bounded;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

pub use bounded::{Blob, List};

use crate::committer::RoomState;
use crate::media::Codec;

/// The protocol version: the first byte of every message.
pub const VERSION: u8 = 1;

/// Bounds on every variable field, in bytes or elements.
pub mod limits {
    /// A whole encoded message, version byte included.
    pub const MESSAGE: usize = 256 * 1024;
    /// A room name.
    pub const ROOM_NAME: usize = 64;
    /// An MLS key package (a suite-1 key package with the longest
    /// credential Satsuma makes is under 500 bytes).
    pub const KEY_PACKAGE: usize = 2 * 1024;
    /// An MLS commit or proposal.
    pub const COMMIT: usize = 64 * 1024;
    /// An MLS Welcome (it carries the ratchet tree: about 250 bytes a member).
    pub const WELCOME: usize = 192 * 1024;
    /// An MLS group id.
    pub const GROUP_ID: usize = 32;
    /// Members of one room: MLS leaves, and adds or removes in one commit.
    pub const MEMBERS: usize = 256;
    /// Connections waiting to be added at once.
    pub const LOBBY: usize = 64;
    /// One media frame's SFrame ciphertext.
    pub const MEDIA: usize = 64 * 1024;
    /// The text of an error.
    pub const TEXT: usize = 160;
}

/// A connection to a room, numbered by the delivery service in the order it
/// joined; never reused within a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A room's name: 1 to 64 bytes of ASCII letters, digits, `-`, `_` and `.`,
/// so it is safe in a URL path and a log line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RoomName(String);

impl RoomName {
    /// `name`, if it is a valid room name.
    ///
    /// # Errors
    /// [`WireError::RoomName`].
    pub fn new(name: &str) -> Result<Self, WireError> {
        let valid = !name.is_empty()
            && name.len() <= limits::ROOM_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if valid {
            Ok(Self(String::from(name)))
        } else {
            Err(WireError::RoomName)
        }
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for RoomName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <&str>::deserialize(deserializer)?;
        Self::new(name).map_err(|_| serde::de::Error::custom("invalid room name"))
    }
}

/// What a client can do, declared when it joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Capabilities {
    /// Whether it can be the designated committer. A microcontroller says
    /// no: building a commit for 16 members needs ~71 KB of heap. It is
    /// chosen anyway when no member that says yes is present.
    pub can_commit: bool,
    /// How its media travels.
    pub transport: Transport,
}

/// How a client's media travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Transport {
    /// RTP over a WebRTC peer connection (desktop).
    WebRtc,
    /// [`Media`] messages on the control link (intercom).
    Wire,
}

/// A message from a client to the SFU.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ToServer {
    /// Enter a room: the first message on a connection.
    Join {
        /// The room.
        room: RoomName,
        /// A key package for the committer to add.
        key_package: Blob<{ limits::KEY_PACKAGE }>,
        /// What this client can do.
        capabilities: Capabilities,
    },
    /// A fresh key package: this member's Welcome was lost, or it noticed
    /// that its group state forked; it asks to be removed and added again.
    KeyPackage {
        /// The new key package.
        key_package: Blob<{ limits::KEY_PACKAGE }>,
    },
    /// The designated creator made the room's MLS group, alone in it.
    Create {
        /// The new group's id.
        group_id: Blob<{ limits::GROUP_ID }>,
    },
    /// A commit from the designated committer for `epoch`.
    Commit(CommitMessage),
    /// A proposal by reference (a member's own update) for the committer to
    /// include.
    Proposal {
        /// The epoch it is for.
        epoch: u64,
        /// The MLS proposal.
        proposal: Blob<{ limits::COMMIT }>,
    },
    /// The designated committer could not use a connection's key package.
    Refuse {
        /// The connection whose key package was refused.
        conn: ConnId,
    },
    /// Leave the room.
    Leave,
    /// A media frame, for clients without WebRTC.
    Media(Media),
}

/// A commit and what it changes, as the committer declares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CommitMessage {
    /// The epoch the commit starts from.
    pub epoch: u64,
    /// The connections it adds, in the order of their key packages.
    pub adds: List<ConnId, { limits::MEMBERS }>,
    /// The leaves it removes.
    pub removes: List<u32, { limits::MEMBERS }>,
    /// The MLS commit.
    pub commit: Blob<{ limits::COMMIT }>,
    /// The Welcome for the connections in `adds`; none when `adds` is empty.
    pub welcome: Option<Blob<{ limits::WELCOME }>>,
}

/// A message from the SFU to a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ToClient {
    /// The answer to [`ToServer::Join`]: the connection's id and the room as
    /// the log stood just before this connection's own `Joined` entry.
    Hello {
        /// This connection.
        conn: ConnId,
        /// The room, folded from its log.
        room: RoomState,
    },
    /// The next entry of the room's log.
    Entry {
        /// Its sequence number: one more than the previous one.
        seq: u64,
        /// The entry.
        entry: Entry,
    },
    /// The Welcome for this connection, sent just before the `Committed`
    /// entry that adds it.
    Welcome {
        /// The MLS Welcome.
        welcome: Blob<{ limits::WELCOME }>,
    },
    /// The delivery service refused this client's commit or creation.
    Rejected {
        /// The epoch the refused commit was for (`None`: a creation).
        epoch: Option<u64>,
    },
    /// The SFU refused something; `fatal` ones close the connection.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// Details for a log.
        text: Blob<{ limits::TEXT }>,
    },
    /// A media frame from another member.
    Media(Media),
}

/// One entry of a room's ordered log. Every member and the delivery service
/// fold the same entries into the same [`RoomState`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Entry {
    /// A connection entered the lobby with a key package, or a member asked
    /// to be removed and added again with a fresh one.
    Joined {
        /// The connection.
        conn: ConnId,
        /// Its key package.
        key_package: Blob<{ limits::KEY_PACKAGE }>,
        /// What it can do.
        capabilities: Capabilities,
    },
    /// A connection is gone: it said so, or the SFU lost it for longer than
    /// the grace period.
    Left {
        /// The connection.
        conn: ConnId,
    },
    /// The designated creator made the group, alone in it, at epoch 0.
    Created {
        /// The creator.
        conn: ConnId,
        /// The group id.
        group_id: Blob<{ limits::GROUP_ID }>,
    },
    /// An accepted commit: the epoch moves on by one.
    Committed {
        /// The committer.
        conn: ConnId,
        /// The commit and what it changes.
        commit: CommitMessage,
    },
    /// A member's proposal for the committer to include.
    Proposed {
        /// The proposer.
        conn: ConnId,
        /// The epoch it is for.
        epoch: u64,
        /// The MLS proposal.
        proposal: Blob<{ limits::COMMIT }>,
    },
    /// The designated committer left work undone past the deadline: the
    /// next one takes over.
    Stalled,
    /// The designated committer could not use this connection's key
    /// package; it leaves the lobby (it may publish another).
    Refused {
        /// The committer who refused it.
        by: ConnId,
        /// The connection.
        conn: ConnId,
    },
}

/// One media frame on the control link.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Media {
    /// The sending connection; the SFU overwrites whatever a client puts here.
    pub sender: ConnId,
    /// The codec.
    pub codec: Codec,
    /// The RTP-style timestamp in the codec's clock.
    pub timestamp: u32,
    /// A per-stream sequence number, for loss detection.
    pub sequence: u16,
    /// The SFrame ciphertext, header included.
    pub payload: Blob<{ limits::MEDIA }>,
}

/// Why the SFU refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ErrorCode {
    /// The message could not be decoded.
    Malformed,
    /// A message that makes no sense in this connection's state.
    Unexpected,
    /// The room is full.
    RoomFull,
    /// The server has no room for more rooms or connections.
    Overloaded,
    /// The committer could not use this connection's key package.
    KeyPackageRefused,
    /// Too many messages.
    RateLimited,
    /// The connection is closed because it left or was replaced.
    Closed,
}

/// Why bytes are not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum WireError {
    /// No bytes at all.
    Empty,
    /// The version byte is not [`VERSION`].
    Version(u8),
    /// The message is longer than [`limits::MESSAGE`].
    TooLong(usize),
    /// The bytes do not decode: truncated, an unknown variant, a field over
    /// its bound, or a bad room name.
    Malformed,
    /// Bytes are left over after the message.
    Trailing(usize),
    /// A room name that is empty, too long or has other characters.
    RoomName,
    /// The output buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty message"),
            Self::Version(v) => write!(
                f,
                "unsupported protocol version {v} (this side speaks {VERSION})"
            ),
            Self::TooLong(n) => write!(
                f,
                "message of {n} bytes exceeds the {} byte limit",
                limits::MESSAGE
            ),
            Self::Malformed => f.write_str("malformed message"),
            Self::Trailing(n) => write!(f, "{n} bytes after the end of the message"),
            Self::RoomName => f.write_str("room names are 1-64 characters of A-Z a-z 0-9 - _ ."),
            Self::BufferTooSmall => f.write_str("output buffer too small"),
        }
    }
}

impl core::error::Error for WireError {}

/// A message that travels on the wire.
pub trait Message: Serialize + for<'de> Deserialize<'de> + Sized {
    /// The version byte and the postcard encoding.
    ///
    /// # Errors
    /// [`WireError::TooLong`] when the result would exceed
    /// [`limits::MESSAGE`]; it cannot happen for messages built from
    /// bounded fields, but is checked so the receiver never sees one.
    fn encode(&self) -> Result<Vec<u8>, WireError> {
        let out =
            postcard::to_extend(self, alloc::vec![VERSION]).map_err(|_| WireError::Malformed)?;
        if out.len() > limits::MESSAGE {
            return Err(WireError::TooLong(out.len()));
        }
        Ok(out)
    }

    /// Reads one message that fills `bytes` exactly.
    ///
    /// # Errors
    /// A [`WireError`] saying why; never a panic.
    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        if bytes.len() > limits::MESSAGE {
            return Err(WireError::TooLong(bytes.len()));
        }
        let (message, rest) = postcard::take_from_bytes(body).map_err(|_| WireError::Malformed)?;
        if !rest.is_empty() {
            return Err(WireError::Trailing(rest.len()));
        }
        Ok(message)
    }
}

impl Message for ToServer {}
impl Message for ToClient {}

/// The length of the next frame on a length-prefixed stream (4 bytes, big
/// endian), once `header` holds those 4 bytes.
///
/// # Errors
/// [`WireError::TooLong`] for a frame the receiver must not buffer,
/// [`WireError::Empty`] for a zero length.
pub fn frame_len(header: [u8; 4]) -> Result<usize, WireError> {
    let len =
        usize::try_from(u32::from_be_bytes(header)).map_err(|_| WireError::TooLong(usize::MAX))?;
    match len {
        0 => Err(WireError::Empty),
        n if n > limits::MESSAGE => Err(WireError::TooLong(n)),
        n => Ok(n),
    }
}

/// `message` with its 4-byte big-endian length prefix, for a stream.
///
/// # Errors
/// As [`Message::encode`].
pub fn encode_framed<M: Message>(message: &M) -> Result<Vec<u8>, WireError> {
    let body = message.encode()?;
    // `encode` bounds the body by `limits::MESSAGE`, far below u32::MAX.
    let len = u32::try_from(body.len()).map_err(|_| WireError::TooLong(body.len()))?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}
