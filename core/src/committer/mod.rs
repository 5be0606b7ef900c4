//! The designated committer: which member turns joins and leaves into MLS
//! commits, decided by every member alone from the delivery service's
//! ordered log.
//!
//! - [`RoomState`] folds the log. Every member and the delivery service
//!   run the same fold on the same entries, so they agree, without a
//!   message, on the group's epoch, who sits in which leaf, who waits in the
//!   lobby, and who the designated committer is
//!   ([`RoomState::designated`]). A connection that joins late starts from
//!   the `Hello`'s [`RoomSnapshot`](crate::wire::RoomSnapshot), which it
//!   takes only if some log could have produced it ([`RoomState::try_from`]).
//! - [`Member`] is one client's side: it joins, creates the group when the
//!   log says so, commits the pending work when it is designated, applies
//!   what the log accepted, and rejoins when its MLS state and the log
//!   disagree.
//! - [`Room`] is the delivery service's side: it orders messages, accepts
//!   the first valid commit for an epoch, releases Welcomes only with it,
//!   and moves the committer role on when a deadline passes.
//!
//! The rules, their invariants and how the model checker proves them are in
//! `docs/committer.md`.
//!
//! # Run loop
//!
//! Both machines are sans-IO. After every `handle*` call, drain
//! `poll_transmit` (and, for a member, `poll_event`) until it returns
//! `None`; call `handle_timeout(now)` when `poll_timeout` says.
//!
//! ```
//! use satsuma_core::committer::{Group, Member, MemberConfig, Room, RoomConfig};
//! use satsuma_core::mls::{MemberInfo, MemoryStore, SatsumaCrypto, Session, SessionConfig};
//! use satsuma_core::wire::{Capabilities, RoomName, Transport};
//! use satsuma_core::Instant;
//!
//! let now = Instant::ZERO;
//! let member = |name: &str, seed| -> Member<Session> {
//!     let info = MemberInfo::new(name, name).unwrap();
//!     let session = Session::create(
//!         SatsumaCrypto::from_seed([seed; 32]),
//!         info,
//!         SessionConfig::default(),
//!         MemoryStore::default(),
//!     )
//!     .unwrap();
//!     let config = MemberConfig {
//!         room: RoomName::new("lobby").unwrap(),
//!         capabilities: Capabilities { can_commit: true, transport: Transport::WebRtc },
//!     };
//!     Member::new(session, config)
//! };
//! let mut room = Room::new(RoomConfig::default());
//! let mut members = vec![member("alice", 1), member("bob", 2)];
//! // Each member's connection, once the room gave it one.
//! let mut conns = vec![None; members.len()];
//! for m in &mut members {
//!     m.join(now).unwrap();
//! }
//! // Shuttle messages until nothing moves.
//! loop {
//!     let mut moved = false;
//!     for i in 0..members.len() {
//!         while let Some(request) = members[i].poll_transmit() {
//!             moved = true;
//!             conns[i] = room.handle(now, conns[i], request).ok().or(conns[i]);
//!             // Drained after every input: `All` is the connections now.
//!             while let Some(transmit) = room.poll_transmit() {
//!                 for to in room.recipients(transmit.to) {
//!                     let i = conns.iter().position(|c| *c == Some(to)).unwrap();
//!                     members[i].handle_message(now, transmit.message.clone()).unwrap();
//!                 }
//!             }
//!         }
//!     }
//!     if !moved {
//!         break;
//!     }
//! }
//! let a = members[0].group();
//! let b = members[1].group();
//! assert_eq!(a.epoch(), Some(1));
//! assert_eq!(a.safety_number().unwrap(), b.safety_number().unwrap());
//! ```

mod group;
mod member;
mod room;
mod senders;
mod state;

use alloc::vec::Vec;
use core::fmt;

pub use group::Group;
pub use member::{Member, MemberConfig, Status};
pub use room::{Recipients, Request, Room, RoomConfig, RoomEvent, STALL_ROUNDS, Transmit};
pub use senders::{SENDER_EPOCHS, Senders};
pub use state::{Applied, GroupState, RoomState, Seat, SeatStatus, Waiting};

use crate::Error;
use crate::mls::SessionError;
use crate::wire::{ConnId, ErrorCode, WireError};

/// What a [`Member`] tells the application.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Event {
    /// This member entered the group (created it, or was welcomed).
    Joined {
        /// The epoch it entered at.
        epoch: u64,
    },
    /// The group moved to a new epoch: new keys, new safety number.
    NewEpoch {
        /// The new epoch.
        epoch: u64,
    },
    /// A member entered the group (or was there when this member joined):
    /// its name, device and fingerprint, and whether this member has seen
    /// that identity before under that name. Show
    /// [`Trust::NewKey`](crate::mls::Trust::NewKey) so that it cannot be
    /// missed, and [`Trust::FirstSeen`](crate::mls::Trust::FirstSeen) as an
    /// unknown identity: the delivery service alone can get a member added.
    Introduced(crate::mls::Introduction),
    /// Who is in the call changed with the epoch just announced: these
    /// leaves entered the group and these left it (names and fingerprints
    /// are in the group's roster). A member removed and added again at the
    /// same leaf by one commit shows in neither: compare the roster's
    /// fingerprints for that.
    MembersChanged {
        /// Leaves added by the commit.
        added: Vec<u32>,
        /// Leaves removed by the commit.
        removed: Vec<u32>,
    },
    /// The delivery service sent what no honest one sends: an entry the
    /// log's rules forbid, one out of sequence, or a room no log leads to.
    /// The member set it aside and is unchanged; show it, since the server
    /// (or something between) is broken or hostile.
    DeliveryServiceMisbehaved(Misbehaviour),
    /// This member dropped its group state and asked to be added again.
    Rejoining(RejoinReason),
    /// The log says this connection left, though this member did not ask:
    /// the delivery service lost it. Join again on a new connection.
    Evicted,
    /// Two log entries in a row came after one that never arrived on this
    /// connection: this member dropped its view of the room and its group
    /// keys. Join again on a new connection, which brings a fresh
    /// snapshot of the room.
    FellBehind {
        /// The sequence number that never came.
        expected: u64,
        /// The later one that showed it missing.
        got: u64,
    },
    /// The delivery service reported an error.
    ServerError(ErrorCode),
    /// An MLS operation this member needed failed; the delivery service's
    /// deadline will hand the work to another member.
    Stuck(SessionError),
}

/// What a misbehaving delivery service sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Misbehaviour {
    /// A log entry the rules do not allow.
    Log(LogError),
    /// A `Hello` whose room no log could produce.
    Snapshot(SnapshotError),
    /// A log entry lost or repeated.
    Sequence {
        /// The sequence number due.
        expected: u64,
        /// The one that came.
        got: u64,
    },
}

impl Misbehaviour {
    /// The misbehaviour `error` shows, if it shows one: errors only a
    /// broken or hostile delivery service causes.
    #[must_use]
    pub fn of(error: &CommitterError) -> Option<Self> {
        match *error {
            CommitterError::Log(e) => Some(Self::Log(e)),
            CommitterError::Snapshot(e) => Some(Self::Snapshot(e)),
            CommitterError::Sequence { expected, got } => Some(Self::Sequence { expected, got }),
            _ => None,
        }
    }
}

/// Why a member rejoins.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejoinReason {
    /// The log added it, but its Welcome never arrived.
    LostWelcome,
    /// Its MLS state and the log disagree (a commit it cannot process, a
    /// roster or epoch that differs).
    Forked,
    /// An MLS operation on the log's word failed (a Welcome that does not
    /// decrypt, a commit that does not verify).
    Failed(SessionError),
    /// The committer could not use its key package.
    Refused,
}

/// Why the log refuses an entry (the fold's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum LogError {
    /// A commit or creation from a connection that is not the designated
    /// committer.
    NotDesignated(ConnId),
    /// A commit or proposal for another epoch than the current one.
    WrongEpoch {
        /// The current epoch.
        expected: u64,
        /// The epoch in the message.
        got: u64,
    },
    /// A commit while there is no group.
    NoGroup,
    /// A creation while there is a group.
    GroupExists,
    /// An add, or a refusal, of a connection that is not in the lobby.
    NotInLobby(ConnId),
    /// A removal of a leaf that is empty or whose member is present.
    NotRemovable(u32),
    /// A connection or leaf named twice, or a second proposal.
    Duplicate,
    /// A proposal from a connection that is not a present member.
    NotMember(ConnId),
    /// A Welcome without adds, or adds without a Welcome.
    Welcome,
    /// A `Stalled` entry with no work pending.
    NoWork,
    /// A connection that already left.
    Gone(ConnId),
    /// Too many connections wait to be added.
    LobbyFull,
    /// The group would exceed its size limit.
    RoomFull,
    /// The log's sequence number or the epoch is at its maximum (only a
    /// forged snapshot gets there).
    Exhausted,
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotDesignated(c) => write!(f, "{c} is not the designated committer"),
            Self::WrongEpoch { expected, got } => {
                write!(f, "message for epoch {got}, the group is at {expected}")
            }
            Self::NoGroup => f.write_str("there is no group yet"),
            Self::GroupExists => f.write_str("the group already exists"),
            Self::NotInLobby(c) => write!(f, "{c} is not waiting to be added"),
            Self::NotRemovable(l) => write!(f, "leaf {l} has no departed member to remove"),
            Self::Duplicate => f.write_str("a connection, leaf or proposal appears twice"),
            Self::NotMember(c) => write!(f, "{c} is not a present member"),
            Self::Welcome => f.write_str("a commit adds members exactly when it has a Welcome"),
            Self::NoWork => f.write_str("nothing is pending"),
            Self::Gone(c) => write!(f, "{c} already left"),
            Self::LobbyFull => f.write_str("too many connections wait to be added"),
            Self::RoomFull => f.write_str("the group is full"),
            Self::Exhausted => f.write_str("sequence number or epoch exhausted"),
        }
    }
}

impl core::error::Error for LogError {}

/// Why a room snapshot (a `Hello`'s) is refused: no log the fold accepts
/// leads to it, so the delivery service that sent it is broken or hostile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SnapshotError {
    /// Leaves while there is no group.
    LeavesWithoutGroup,
    /// A group with no present member: the fold dissolves such a group.
    NobodyPresent,
    /// The last leaf is blank: a commit trims blank leaves at the end.
    TrailingBlank,
    /// A connection in two leaves.
    TwoLeaves(ConnId),
    /// A connection in the lobby twice.
    WaitsTwice(ConnId),
    /// A connection in the lobby whose leaf is present or departed; only a
    /// rejoining member waits while it has a leaf.
    SeatedAndWaiting(ConnId),
    /// A pending proposal from a connection that is not a present member.
    NotMember(ConnId),
    /// Two pending proposals from one member.
    ProposedTwice(ConnId),
    /// Fewer log entries than the room is made of: every stall, proposal,
    /// waiting connection and seat, the group's creation and each epoch
    /// took one of its own.
    TooFewEntries {
        /// The snapshot's sequence number.
        seq: u64,
        /// The fewest entries that make this room (saturated at
        /// `u64::MAX`).
        needed: u64,
    },
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LeavesWithoutGroup => f.write_str("leaves but no group"),
            Self::NobodyPresent => f.write_str("a group with no present member"),
            Self::TrailingBlank => f.write_str("the last leaf is blank"),
            Self::TwoLeaves(c) => write!(f, "{c} sits in two leaves"),
            Self::WaitsTwice(c) => write!(f, "{c} waits in the lobby twice"),
            Self::SeatedAndWaiting(c) => {
                write!(f, "{c} waits in the lobby but is not rejoining")
            }
            Self::NotMember(c) => write!(f, "a proposal from {c}, which is not a present member"),
            Self::ProposedTwice(c) => write!(f, "two proposals from {c}"),
            Self::TooFewEntries { seq, needed } => {
                write!(
                    f,
                    "{seq} log entries cannot make a room that needs {needed}"
                )
            }
        }
    }
}

impl core::error::Error for SnapshotError {}

/// Why a [`Member`] dropped a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitterError {
    /// The bytes are not a message.
    Wire(WireError),
    /// A log entry the rules do not allow.
    Log(LogError),
    /// A `Hello` whose room no log could produce.
    Snapshot(SnapshotError),
    /// A log entry out of sequence: one was lost or repeated.
    Sequence {
        /// The sequence number due.
        expected: u64,
        /// The one that came.
        got: u64,
    },
    /// A message that makes no sense in this member's state.
    Unexpected,
    /// The MLS session failed.
    Session(SessionError),
}

impl fmt::Display for CommitterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wire(e) => write!(f, "undecodable message: {e}"),
            Self::Log(e) => write!(f, "log entry refused: {e}"),
            Self::Snapshot(e) => write!(f, "room snapshot refused: {e}"),
            Self::Sequence { expected, got } => {
                write!(f, "log entry {got} arrived where {expected} was due")
            }
            Self::Unexpected => f.write_str("message out of place"),
            Self::Session(e) => write!(f, "MLS: {e}"),
        }
    }
}

impl core::error::Error for CommitterError {}

impl From<WireError> for CommitterError {
    fn from(e: WireError) -> Self {
        Self::Wire(e)
    }
}

impl From<LogError> for CommitterError {
    fn from(e: LogError) -> Self {
        Self::Log(e)
    }
}

impl From<SnapshotError> for CommitterError {
    fn from(e: SnapshotError) -> Self {
        Self::Snapshot(e)
    }
}

/// Why a [`Room`] refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DsError {
    /// The message breaks the log's rules (a commit from the wrong member,
    /// for the wrong epoch, ...); the sender was told `Rejected` where it
    /// waits for an answer.
    Log(LogError),
    /// A creation that lost the race; the sender was told `Rejected`.
    Refused,
    /// A message the delivery service does not take here.
    Unexpected,
    /// No such connection.
    UnknownConnection(ConnId),
    /// The room has no place for another connection.
    RoomFull,
    /// The message would make a log entry over the wire limit
    /// ([`limits::MESSAGE`](crate::wire::limits::MESSAGE)): members could
    /// not receive it, and the log would have a gap. The sender was told
    /// `Rejected`.
    TooLarge {
        /// The entry's encoded length.
        len: usize,
    },
}

impl fmt::Display for DsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Log(e) => write!(f, "refused: {e}"),
            Self::Refused => f.write_str("refused: the group exists or another member creates it"),
            Self::Unexpected => f.write_str("message out of place"),
            Self::UnknownConnection(c) => write!(f, "no connection {c} in this room"),
            Self::RoomFull => f.write_str("the room is full"),
            Self::TooLarge { len } => write!(
                f,
                "the log entry would be {len} bytes, over the {} byte limit",
                crate::wire::limits::MESSAGE
            ),
        }
    }
}

impl core::error::Error for DsError {}

impl From<LogError> for DsError {
    fn from(e: LogError) -> Self {
        Self::Log(e)
    }
}

/// Why the delivery service refuses a media frame from a connection
/// ([`Room::check_sender`], [`Senders::check`]): its SFrame KID does not
/// name the connection's own leaf, so receivers would attribute it to
/// someone else, or to nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SenderError {
    /// The connection is not a present member of the group.
    NotMember(ConnId),
    /// The frame has no SFrame header where its codec's layout puts one.
    Unreadable(Error),
    /// The KID's epoch bits name none of the epochs kept: one receivers no
    /// longer open, or one the log has not reached.
    UnknownEpoch {
        /// The KID.
        kid: u64,
    },
    /// The connection had no leaf in the epoch the KID names.
    NotSeated {
        /// The connection.
        conn: ConnId,
        /// The epoch the KID names.
        epoch: u64,
    },
    /// The KID names another leaf than the connection's.
    WrongSender {
        /// The connection.
        conn: ConnId,
        /// The epoch the KID names.
        epoch: u64,
        /// The connection's leaf in that epoch.
        leaf: u32,
        /// The leaf the KID names.
        named: u64,
    },
}

impl fmt::Display for SenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotMember(c) => write!(f, "{c} is not a present member"),
            Self::Unreadable(e) => write!(f, "no SFrame header: {e}"),
            Self::UnknownEpoch { kid } => {
                write!(f, "KID {kid:#x} names no epoch receivers still open")
            }
            Self::NotSeated { conn, epoch } => {
                write!(f, "{conn} had no leaf in epoch {epoch}")
            }
            Self::WrongSender {
                conn,
                epoch,
                leaf,
                named,
            } => write!(
                f,
                "{conn} sits in leaf {leaf} in epoch {epoch}, but its frame names leaf {named}"
            ),
        }
    }
}

impl core::error::Error for SenderError {}
