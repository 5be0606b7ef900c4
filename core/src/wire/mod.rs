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
    /// A WebRTC session description (SDP), candidates included.
    pub const SDP: usize = 32 * 1024;
}

/// The length of a resume token.
pub const TOKEN_LEN: usize = 16;

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
    /// WebRTC signalling for this connection's peer connection. The SFU
    /// always makes the offers; a client only answers.
    Rtc(Signal),
    /// The first message on a new connection that takes over a lost one
    /// within the grace period: the seat, the MLS leaf and the log position
    /// stay. On refusal the client joins afresh.
    Resume {
        /// The room.
        room: RoomName,
        /// The lost connection.
        conn: ConnId,
        /// Its token, from [`ToClient::Resumable`].
        token: [u8; TOKEN_LEN],
        /// How many control messages ([`ToClient::is_control`]) the client
        /// has received on that connection; the SFU sends the rest again.
        received: u64,
    },
    /// Keeps an idle connection open; the SFU answers with
    /// [`ToClient::Pong`].
    Ping {
        /// Echoed back.
        nonce: u32,
    },
}

/// WebRTC signalling: whole session descriptions, ICE candidates included
/// (no trickle).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Signal {
    /// An SDP offer.
    Offer(Blob<{ limits::SDP }>),
    /// An SDP answer.
    Answer(Blob<{ limits::SDP }>),
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
        /// The room, folded from its log; the receiver checks it before it
        /// folds further entries into it.
        room: RoomSnapshot,
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
    /// WebRTC signalling from the SFU.
    Rtc(Signal),
    /// Sent after `Hello`: the token that lets a new connection take this
    /// one's seat with [`ToServer::Resume`] within `grace_ms`.
    Resumable {
        /// The secret the new connection presents.
        token: [u8; TOKEN_LEN],
        /// How long the seat is kept after the connection is lost.
        grace_ms: u32,
        /// Send something (a [`ToServer::Ping`] if nothing else) at least
        /// this often, or the SFU closes the link as idle.
        ping_ms: u32,
    },
    /// The answer to a [`ToServer::Resume`] the SFU accepted; the control
    /// messages the client missed follow.
    Resumed,
    /// The answer to [`ToServer::Ping`].
    Pong {
        /// The ping's nonce.
        nonce: u32,
    },
}

impl ToClient {
    /// Whether this is a control message: one the committer (its `Member`)
    /// handles and a resume replays.
    /// Media, signalling and link upkeep are not.
    #[must_use]
    pub fn is_control(&self) -> bool {
        matches!(
            self,
            Self::Hello { .. }
                | Self::Entry { .. }
                | Self::Welcome { .. }
                | Self::Rejected { .. }
                | Self::Error { .. }
        )
    }
}

/// One entry of a room's ordered log. Every member and the delivery service
/// fold the same entries into the same room state (the committer's
/// `RoomState`), which a [`RoomSnapshot`] carries to a new connection.
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

/// The room as its log left it after entry `seq`, sent in
/// [`ToClient::Hello`] to a connection that joins: the state of the
/// committer's fold, as plain data.
///
/// Decoding checks only the bounds. Nothing here says the parts agree with
/// each other (that a connection is not in two leaves, that a proposal comes
/// from a member, ...): the receiver converts it into the fold's state, which
/// refuses a snapshot that no log could produce.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct RoomSnapshot {
    /// The number of entries folded in.
    pub seq: u64,
    /// The group, once someone created it.
    pub group: Option<GroupSnapshot>,
    /// Every MLS leaf in order, blank ones as `None`.
    pub leaves: List<Option<SeatSnapshot>, { limits::MEMBERS }>,
    /// The connections waiting to be added, in the order they arrived.
    pub lobby: List<WaitingSnapshot, { limits::LOBBY }>,
    /// How many designated committers in a row left the current work
    /// undone.
    pub stalls: u32,
    /// Members whose proposals wait for the next commit, in log order.
    pub proposals: List<ConnId, { limits::MEMBERS }>,
}

/// The room's MLS group in a [`RoomSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupSnapshot {
    /// The MLS group id.
    pub id: Blob<{ limits::GROUP_ID }>,
    /// The current epoch.
    pub epoch: u64,
}

/// An MLS leaf and the connection in it, in a [`RoomSnapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SeatSnapshot {
    /// The connection.
    pub conn: ConnId,
    /// Whether it can be the designated committer.
    pub can_commit: bool,
    /// How its media travels.
    pub transport: Transport,
    /// Whether it is still there.
    pub status: Presence,
}

/// Whether a leaf's connection is still a working member, in a
/// [`SeatSnapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Presence {
    /// Connected and in the group.
    Present,
    /// The connection left; the leaf waits to be removed.
    Departed,
    /// The connection published a fresh key package: the leaf waits to be
    /// removed and the connection, also in the lobby, to be added again.
    Rejoining,
}

/// A connection waiting in the lobby to be added, in a [`RoomSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WaitingSnapshot {
    /// The connection.
    pub conn: ConnId,
    /// Its key package.
    pub key_package: Blob<{ limits::KEY_PACKAGE }>,
    /// What it can do.
    pub capabilities: Capabilities,
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
    /// A message or frame over the size limit.
    TooLarge,
    /// Nothing arrived for longer than the idle timeout.
    Idle,
    /// The server is shutting down; reconnect later.
    ShuttingDown,
    /// The seat could not be resumed (unknown, expired, wrong token or too
    /// far behind): join afresh.
    ResumeFailed,
    /// This connection has joined as many rooms as it may.
    TooManyRooms,
    /// Something went wrong inside the SFU.
    Internal,
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
    /// [`limits::MESSAGE`], so the receiver never sees one. Every field is
    /// bounded, but not every combination fits: a commit and a Welcome each
    /// near its own bound together exceed the limit.
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

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    const DESKTOP: Capabilities = Capabilities {
        can_commit: true,
        transport: Transport::WebRtc,
    };
    const INTERCOM: Capabilities = Capabilities {
        can_commit: false,
        transport: Transport::Wire,
    };

    fn blob<const N: usize>(bytes: &[u8]) -> Blob<N> {
        Blob::copy_from(bytes).unwrap()
    }

    fn commit_message() -> CommitMessage {
        CommitMessage {
            epoch: 1,
            adds: List::new(vec![ConnId(2)]).unwrap(),
            removes: List::new(vec![0]).unwrap(),
            commit: blob(&[9]),
            welcome: Some(blob(&[7, 7])),
        }
    }

    fn media() -> Media {
        Media {
            sender: ConnId(1),
            codec: Codec::Pcmu,
            timestamp: 160,
            sequence: 1,
            payload: blob(&[0xab]),
        }
    }

    fn seat(conn: u64, capabilities: Capabilities, status: Presence) -> Option<SeatSnapshot> {
        Some(SeatSnapshot {
            conn: ConnId(conn),
            can_commit: capabilities.can_commit,
            transport: capabilities.transport,
            status,
        })
    }

    fn waiting(conn: u64, key_package: u8) -> WaitingSnapshot {
        WaitingSnapshot {
            conn: ConnId(conn),
            key_package: blob(&[key_package]),
            capabilities: DESKTOP,
        }
    }

    /// A room with a group, a seated member, one waiting and a proposal, as
    /// seven entries leave it (`committer::state`'s tests fold them).
    fn room_snapshot() -> RoomSnapshot {
        RoomSnapshot {
            seq: 7,
            group: Some(GroupSnapshot {
                id: blob(b"g"),
                epoch: 1,
            }),
            leaves: List::new(vec![
                seat(0, DESKTOP, Presence::Present),
                seat(1, INTERCOM, Presence::Present),
            ])
            .unwrap(),
            lobby: List::new(vec![waiting(2, 0xcc)]).unwrap(),
            stalls: 1,
            proposals: List::new(vec![ConnId(1)]).unwrap(),
        }
    }

    fn to_server_samples() -> Vec<ToServer> {
        vec![
            ToServer::Join {
                room: RoomName::new("lobby").unwrap(),
                key_package: blob(&[0xaa, 0xbb]),
                capabilities: INTERCOM,
            },
            ToServer::KeyPackage {
                key_package: blob(&[1, 2, 3]),
            },
            ToServer::Create {
                group_id: blob(&[0x42; limits::GROUP_ID]),
            },
            ToServer::Commit(commit_message()),
            ToServer::Proposal {
                epoch: u64::MAX,
                proposal: blob(&[5; 200]),
            },
            ToServer::Refuse { conn: ConnId(300) },
            ToServer::Leave,
            ToServer::Media(media()),
            ToServer::Rtc(Signal::Answer(blob(b"v=0"))),
            ToServer::Resume {
                room: RoomName::new("lobby").unwrap(),
                conn: ConnId(3),
                token: [9; TOKEN_LEN],
                received: 17,
            },
            ToServer::Ping { nonce: u32::MAX },
        ]
    }

    fn entry_samples() -> Vec<Entry> {
        vec![
            Entry::Joined {
                conn: ConnId(3),
                key_package: blob(&[0xcc; 3]),
                capabilities: DESKTOP,
            },
            Entry::Left { conn: ConnId(0) },
            Entry::Created {
                conn: ConnId(1),
                group_id: blob(b"group"),
            },
            Entry::Committed {
                conn: ConnId(2),
                commit: CommitMessage {
                    welcome: None,
                    adds: List::default(),
                    ..commit_message()
                },
            },
            Entry::Proposed {
                conn: ConnId(4),
                epoch: 9,
                proposal: blob(&[6; 4]),
            },
            Entry::Stalled,
            Entry::Refused {
                by: ConnId(0),
                conn: ConnId(u64::MAX),
            },
        ]
    }

    fn to_client_samples() -> Vec<ToClient> {
        let mut samples = vec![
            ToClient::Hello {
                conn: ConnId(7),
                room: room_snapshot(),
            },
            ToClient::Welcome {
                welcome: blob(&[8; 1000]),
            },
            ToClient::Rejected { epoch: None },
            ToClient::Rejected { epoch: Some(5) },
            ToClient::Error {
                code: ErrorCode::Closed,
                text: blob(b"bye"),
            },
            ToClient::Media(media()),
        ];
        samples.extend([
            ToClient::Rtc(Signal::Offer(blob(b"v=0"))),
            ToClient::Resumable {
                token: [1; TOKEN_LEN],
                grace_ms: 15_000,
                ping_ms: 10_000,
            },
            ToClient::Resumed,
            ToClient::Pong { nonce: 1 },
        ]);
        samples.extend(
            (1..)
                .zip(entry_samples())
                .map(|(seq, entry)| ToClient::Entry { seq, entry }),
        );
        samples
    }

    /// A `Join` for room `name`, with an empty key package, built by hand.
    fn join_bytes(name: &[u8]) -> Vec<u8> {
        let mut bytes = vec![VERSION, 0, u8::try_from(name.len()).unwrap()];
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(&[0, 1, 0]);
        bytes
    }

    #[test]
    fn small_messages_have_these_exact_bytes() {
        // Version byte, then the variant's position as a varint, then the
        // fields in order; integers other than u8 are varints.
        assert_eq!(ToServer::Leave.encode().unwrap(), [1, 6]);
        assert_eq!(
            ToServer::Refuse { conn: ConnId(300) }.encode().unwrap(),
            [1, 5, 0xac, 0x02]
        );
        assert_eq!(
            to_server_samples()[0].encode().unwrap(),
            [1, 0, 5, b'l', b'o', b'b', b'b', b'y', 2, 0xaa, 0xbb, 0, 1]
        );
        assert_eq!(
            ToServer::Commit(commit_message()).encode().unwrap(),
            [1, 3, 1, 1, 2, 1, 0, 1, 9, 1, 2, 7, 7]
        );
        assert_eq!(
            ToServer::Media(media()).encode().unwrap(),
            [1, 7, 1, 1, 0xa0, 0x01, 1, 1, 0xab]
        );
        assert_eq!(
            ToClient::Rejected { epoch: None }.encode().unwrap(),
            [1, 3, 0]
        );
        assert_eq!(
            ToClient::Rejected { epoch: Some(5) }.encode().unwrap(),
            [1, 3, 1, 5]
        );
        assert_eq!(
            ToClient::Entry {
                seq: 1,
                entry: Entry::Stalled
            }
            .encode()
            .unwrap(),
            [1, 1, 1, 5]
        );
        assert_eq!(
            ToClient::Error {
                code: ErrorCode::RoomFull,
                text: blob(b"full"),
            }
            .encode()
            .unwrap(),
            [1, 4, 2, 4, b'f', b'u', b'l', b'l']
        );
        assert_eq!(
            ToServer::Ping { nonce: 300 }.encode().unwrap(),
            [1, 10, 0xac, 0x02]
        );
        assert_eq!(ToClient::Resumed.encode().unwrap(), [1, 8]);
        assert_eq!(
            ToClient::Rtc(Signal::Offer(blob(b"v=0"))).encode().unwrap(),
            [1, 6, 0, 3, b'v', b'=', b'0']
        );
    }

    #[test]
    fn literal_bytes_decode_to_the_message() {
        assert_eq!(ToServer::decode(&[1, 6]), Ok(ToServer::Leave));
        assert_eq!(
            ToServer::decode(&[1, 2, 3, 0xaa, 0xbb, 0xcc]),
            Ok(ToServer::Create {
                group_id: blob(&[0xaa, 0xbb, 0xcc])
            })
        );
        assert_eq!(
            ToClient::decode(&[1, 1, 2, 1, 0]),
            Ok(ToClient::Entry {
                seq: 2,
                entry: Entry::Left { conn: ConnId(0) }
            })
        );
        // Varints need not be minimal: the value is what counts, and it
        // encodes back in the short form.
        let long_form = ToServer::decode(&[1, 0x86, 0x00]).unwrap();
        assert_eq!(long_form, ToServer::Leave);
        assert_eq!(long_form.encode().unwrap(), [1, 6]);
    }

    #[test]
    fn every_variant_round_trips() {
        let servers = to_server_samples();
        let mut tags: Vec<u8> = servers.iter().map(|m| m.encode().unwrap()[1]).collect();
        tags.dedup();
        assert_eq!(
            tags,
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            "one sample per variant"
        );
        for message in servers {
            let bytes = message.encode().unwrap();
            assert_eq!(ToServer::decode(&bytes), Ok(message));
        }

        let clients = to_client_samples();
        let mut tags: Vec<u8> = clients.iter().map(|m| m.encode().unwrap()[1]).collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(
            tags,
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            "one sample per variant"
        );
        let mut entry_tags = Vec::new();
        for message in clients {
            let bytes = message.encode().unwrap();
            if let ToClient::Entry { .. } = message {
                // Version, `Entry` tag, a one-byte seq, the entry's tag.
                entry_tags.push(bytes[3]);
            }
            assert_eq!(ToClient::decode(&bytes), Ok(message));
        }
        assert_eq!(entry_tags, [0, 1, 2, 3, 4, 5, 6], "one sample per entry");
    }

    #[test]
    fn room_snapshots_in_hello_have_these_exact_bytes() {
        // The same bytes as the fold's own state had on the wire before the
        // snapshot was a type of its own (wire VERSION 1).
        let one_leaf = RoomSnapshot {
            seq: 2,
            group: Some(GroupSnapshot {
                id: blob(b"g"),
                epoch: 0,
            }),
            leaves: List::new(vec![seat(0, DESKTOP, Presence::Present)]).unwrap(),
            ..RoomSnapshot::default()
        };
        let blank_rejoining_departed = RoomSnapshot {
            seq: 11,
            group: Some(GroupSnapshot {
                id: blob(b"g"),
                epoch: 3,
            }),
            leaves: List::new(vec![
                seat(0, DESKTOP, Presence::Present),
                None,
                seat(2, DESKTOP, Presence::Rejoining),
                seat(3, DESKTOP, Presence::Departed),
            ])
            .unwrap(),
            lobby: List::new(vec![waiting(2, 0xee)]).unwrap(),
            stalls: 0,
            proposals: List::default(),
        };
        let cases: [(u64, RoomSnapshot, &[u8]); 4] = [
            (9, RoomSnapshot::default(), &[1, 0, 9, 0, 0, 0, 0, 0, 0]),
            (
                1,
                one_leaf,
                &[
                    1, 0, 1, // version, Hello, conn 1
                    2, // seq
                    1, 1, b'g', 0, // group: Some, id "g", epoch 0
                    1, 1, 0, 1, 0,
                    0, // leaves: one, Some(conn 0, can commit, WebRtc, Present)
                    0, // lobby
                    0, // stalls
                    0, // proposals
                ],
            ),
            (
                2,
                room_snapshot(),
                &[
                    1, 0, 2, // version, Hello, conn 2
                    7, // seq
                    1, 1, b'g', 1, // group: Some, id "g", epoch 1
                    2, // leaves: two
                    1, 0, 1, 0, 0, // Some(conn 0, can commit, WebRtc, Present)
                    1, 1, 0, 1, 0, // Some(conn 1, cannot commit, Wire, Present)
                    1, 2, 1, 0xcc, 1, 0, // lobby: conn 2, key package cc, desktop
                    1, // stalls
                    1, 1, // proposals: conn 1
                ],
            ),
            (
                4,
                blank_rejoining_departed,
                &[
                    1, 0, 4,  // version, Hello, conn 4
                    11, // seq
                    1, 1, b'g', 3, // group: Some, id "g", epoch 3
                    4, // leaves: four
                    1, 0, 1, 0, 0, // Some(conn 0, can commit, WebRtc, Present)
                    0, // None
                    1, 2, 1, 0, 2, // Some(conn 2, can commit, WebRtc, Rejoining)
                    1, 3, 1, 0, 1, // Some(conn 3, can commit, WebRtc, Departed)
                    1, 2, 1, 0xee, 1, 0, // lobby: conn 2 again, key package ee, desktop
                    0, // stalls
                    0, // proposals
                ],
            ),
        ];
        for (conn, room, bytes) in cases {
            let hello = ToClient::Hello {
                conn: ConnId(conn),
                room,
            };
            assert_eq!(hello.encode().unwrap(), bytes, "{hello:?}");
            assert_eq!(ToClient::decode(bytes), Ok(hello));
        }
        // A seat status past `Rejoining` is not one.
        let mut bad = vec![1, 0, 1, 2, 1, 1, b'g', 0, 1, 1, 0, 1, 0, 3, 0, 0, 0];
        assert_eq!(ToClient::decode(&bad), Err(WireError::Malformed));
        bad[13] = 2;
        assert!(ToClient::decode(&bad).is_ok());
    }

    #[test]
    fn the_envelope_is_checked_first() {
        assert_eq!(ToServer::decode(&[]), Err(WireError::Empty));
        assert_eq!(ToClient::decode(&[]), Err(WireError::Empty));
        assert_eq!(ToServer::decode(&[2, 6]), Err(WireError::Version(2)));
        assert_eq!(ToServer::decode(&[0]), Err(WireError::Version(0)));
        assert_eq!(
            ToClient::decode(&[0xff, 3, 0]),
            Err(WireError::Version(0xff))
        );
        assert_eq!(ToServer::decode(&[1, 6, 0]), Err(WireError::Trailing(1)));
        assert_eq!(
            ToClient::decode(&[1, 3, 0, 1, 2, 3]),
            Err(WireError::Trailing(3))
        );
    }

    #[test]
    fn truncated_or_unknown_bytes_are_malformed() {
        // The version byte alone, then cuts through each kind of field.
        assert_eq!(ToServer::decode(&[1]), Err(WireError::Malformed));
        assert_eq!(ToServer::decode(&[1, 5]), Err(WireError::Malformed));
        assert_eq!(ToServer::decode(&[1, 5, 0xac]), Err(WireError::Malformed));
        assert_eq!(ToClient::decode(&[1, 3, 1]), Err(WireError::Malformed));
        for message in to_server_samples() {
            let bytes = message.encode().unwrap();
            for cut in 1..bytes.len() {
                assert_eq!(
                    ToServer::decode(&bytes[..cut]),
                    Err(WireError::Malformed),
                    "{message:?} cut at {cut}"
                );
            }
        }
        for message in to_client_samples() {
            let bytes = message.encode().unwrap();
            for cut in 1..bytes.len() {
                assert_eq!(
                    ToClient::decode(&bytes[..cut]),
                    Err(WireError::Malformed),
                    "{message:?} cut at {cut}"
                );
            }
        }
        // Unknown variants: of a message, an entry, a transport, a codec, an
        // error code.
        assert_eq!(ToServer::decode(&[1, 40]), Err(WireError::Malformed));
        assert_eq!(ToClient::decode(&[1, 40]), Err(WireError::Malformed));
        assert_eq!(ToClient::decode(&[1, 1, 1, 7]), Err(WireError::Malformed));
        assert_eq!(
            ToServer::decode(&[1, 0, 1, b'a', 0, 1, 2]),
            Err(WireError::Malformed)
        );
        assert_eq!(
            ToServer::decode(&[1, 7, 1, 5, 0, 0, 0]),
            Err(WireError::Malformed)
        );
        assert_eq!(ToClient::decode(&[1, 4, 40, 0]), Err(WireError::Malformed));
        // A bool, an option tag and a varint out of range.
        assert_eq!(
            ToServer::decode(&[1, 0, 1, b'a', 0, 2, 0]),
            Err(WireError::Malformed)
        );
        assert_eq!(ToClient::decode(&[1, 3, 2, 0]), Err(WireError::Malformed));
        assert_eq!(
            ToServer::decode(&[
                1, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02
            ]),
            Err(WireError::Malformed)
        );
        assert_eq!(
            ToServer::decode(&[
                1, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]),
            Ok(ToServer::Refuse {
                conn: ConnId(u64::MAX)
            })
        );
    }

    #[test]
    fn fields_over_their_bound_are_malformed() {
        // A key package of exactly the limit (length 2048 = 0x80 0x10), then
        // one byte more (2049 = 0x81 0x10).
        let key_package = |len: usize, prefix: [u8; 2]| {
            let mut bytes = vec![1, 1, prefix[0], prefix[1]];
            bytes.resize(4 + len, 0x5a);
            bytes
        };
        let at_limit = key_package(limits::KEY_PACKAGE, [0x80, 0x10]);
        assert_eq!(
            ToServer::decode(&at_limit),
            Ok(ToServer::KeyPackage {
                key_package: blob(&[0x5a; limits::KEY_PACKAGE])
            })
        );
        let over = key_package(limits::KEY_PACKAGE + 1, [0x81, 0x10]);
        assert_eq!(ToServer::decode(&over), Err(WireError::Malformed));
        assert!(Blob::<{ limits::KEY_PACKAGE }>::new(vec![0; limits::KEY_PACKAGE + 1]).is_none());

        // A commit adding 256 connections (0x80 0x02), then 257 (0x81 0x02):
        // epoch 0, adds, no removes, an empty commit, no Welcome.
        let adds = |count: usize, prefix: [u8; 2]| {
            let mut bytes = vec![1, 3, 0, prefix[0], prefix[1]];
            bytes.resize(5 + count, 0);
            bytes.extend_from_slice(&[0, 0, 0]);
            bytes
        };
        match ToServer::decode(&adds(limits::MEMBERS, [0x80, 0x02])) {
            Ok(ToServer::Commit(c)) => assert_eq!(c.adds.len(), limits::MEMBERS),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            ToServer::decode(&adds(limits::MEMBERS + 1, [0x81, 0x02])),
            Err(WireError::Malformed)
        );
        // A length announcing far more elements than the input holds.
        assert_eq!(
            ToServer::decode(&[1, 3, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]),
            Err(WireError::Malformed)
        );

        // Room names: 64 characters of the alphabet pass; a space, a 65th
        // character, an empty name or bytes that are not UTF-8 do not.
        let longest = [b'a'; limits::ROOM_NAME];
        assert!(ToServer::decode(&join_bytes(&longest)).is_ok());
        assert!(ToServer::decode(&join_bytes(b"A-z_0.9")).is_ok());
        for bad in [
            &b"a b"[..],
            &[b'a'; limits::ROOM_NAME + 1],
            b"",
            b"caf\xc3\xa9",
            b"\xff",
            b"room/1",
        ] {
            assert_eq!(
                ToServer::decode(&join_bytes(bad)),
                Err(WireError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(RoomName::new("a b"), Err(WireError::RoomName));
        assert_eq!(RoomName::new(""), Err(WireError::RoomName));
        let name = core::str::from_utf8(&longest).unwrap();
        assert_eq!(RoomName::new(name).unwrap().as_str(), name);
        assert_eq!(
            RoomName::new(core::str::from_utf8(&[b'a'; limits::ROOM_NAME + 1]).unwrap()),
            Err(WireError::RoomName)
        );
    }

    #[test]
    fn messages_over_the_limit_are_too_long() {
        let mut bytes = vec![0; limits::MESSAGE + 1];
        bytes[0] = VERSION;
        assert_eq!(
            ToServer::decode(&bytes),
            Err(WireError::TooLong(limits::MESSAGE + 1))
        );
        assert_eq!(
            ToClient::decode(&bytes),
            Err(WireError::TooLong(limits::MESSAGE + 1))
        );
        // At the limit it is the content that counts: zeros are a `Join`
        // with an empty room name.
        assert_eq!(
            ToServer::decode(&bytes[..limits::MESSAGE]),
            Err(WireError::Malformed)
        );
        bytes[0] = 2;
        assert_eq!(ToServer::decode(&bytes), Err(WireError::Version(2)));

        // A commit and a Welcome each at their own bound do not fit one
        // message together: the sender learns it from `encode`. Version,
        // tag, epoch, adds, removes, 3 + 65536 commit bytes, Some, 3 +
        // 196608 Welcome bytes.
        let too_big = ToServer::Commit(CommitMessage {
            epoch: 0,
            adds: List::default(),
            removes: List::default(),
            commit: blob(&[0; limits::COMMIT]),
            welcome: Some(blob(&vec![0; limits::WELCOME])),
        });
        let len = 5 + 3 + limits::COMMIT + 1 + 3 + limits::WELCOME;
        assert_eq!(too_big.encode(), Err(WireError::TooLong(len)));
        assert_eq!(encode_framed(&too_big), Err(WireError::TooLong(len)));
    }

    #[test]
    fn frame_len_takes_one_to_the_limit() {
        assert_eq!(frame_len([0, 0, 0, 0]), Err(WireError::Empty));
        assert_eq!(frame_len([0, 0, 0, 1]), Ok(1));
        // limits::MESSAGE = 0x0004_0000.
        assert_eq!(frame_len([0, 4, 0, 0]), Ok(limits::MESSAGE));
        assert_eq!(
            frame_len([0, 4, 0, 1]),
            Err(WireError::TooLong(limits::MESSAGE + 1))
        );
        let max = usize::try_from(u32::MAX).unwrap_or(usize::MAX);
        assert_eq!(frame_len([0xff; 4]), Err(WireError::TooLong(max)));
        // Big-endian: read little-endian, these bytes would be the limit.
        assert_eq!(frame_len([0, 0, 4, 0]), Ok(1024));
    }

    #[test]
    fn encode_framed_prefixes_the_big_endian_length() {
        assert_eq!(encode_framed(&ToServer::Leave).unwrap(), [0, 0, 0, 2, 1, 6]);
        // 312 bytes: version, tag, "lobby" (6), 300 key package bytes with
        // a 2-byte length, capabilities (2).
        let join = ToServer::Join {
            room: RoomName::new("lobby").unwrap(),
            key_package: blob(&[0x11; 300]),
            capabilities: DESKTOP,
        };
        let framed = encode_framed(&join).unwrap();
        assert_eq!(framed[..4], [0, 0, 0x01, 0x38]);
        assert_eq!(
            frame_len([framed[0], framed[1], framed[2], framed[3]]),
            Ok(312)
        );
        assert_eq!(framed.len(), 4 + 312);
        assert_eq!(ToServer::decode(&framed[4..]), Ok(join));
    }
}
