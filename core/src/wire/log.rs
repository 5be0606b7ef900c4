//! The room's ordered log, and the room as it stands after a prefix of it.

use serde::{Deserialize, Serialize};

use super::{Blob, Capabilities, ConnId, List, Transport, limits};

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

/// The room as its log left it after entry `seq`, sent in
/// [`ToClient::Hello`] to a connection that joins: the state of the
/// committer's fold, as plain data.
///
/// Decoding checks only the bounds. Nothing here says the parts agree with
/// each other (that a connection is not in two leaves, that a proposal comes
/// from a member, ...): the receiver converts it into the fold's state, which
/// refuses a snapshot that no log could produce.
///
/// [`ToClient::Hello`]: super::ToClient::Hello
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

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::super::samples::{DESKTOP, blob, room_snapshot, seat, waiting};
    use super::*;
    use crate::wire::{Down, Message, ToClient, ToServer, Up, WireError};

    #[test]
    fn entries_have_these_exact_bytes() {
        assert_eq!(
            ToClient::Control(Down::Entry {
                seq: 1,
                entry: Entry::Stalled
            })
            .encode()
            .unwrap(),
            // Version 2, `Control`, `Entry`, seq 1, `Stalled`.
            [2, 0, 1, 1, 5]
        );
        assert_eq!(
            ToClient::decode(&[2, 0, 1, 2, 1, 0]),
            Ok(ToClient::Control(Down::Entry {
                seq: 2,
                entry: Entry::Left { conn: ConnId(0) }
            }))
        );
        // An unknown entry.
        assert_eq!(
            ToClient::decode(&[2, 0, 1, 1, 7]),
            Err(WireError::Malformed)
        );
    }

    #[test]
    fn a_commit_adding_more_than_a_room_holds_is_malformed() {
        // A commit adding 256 connections (0x80 0x02), then 257 (0x81 0x02):
        // epoch 0, adds, no removes, an empty commit, no Welcome.
        let adds = |count: usize, prefix: [u8; 2]| {
            let mut bytes = vec![2, 1, 2, 0, prefix[0], prefix[1]];
            bytes.resize(6 + count, 0);
            bytes.extend_from_slice(&[0, 0, 0]);
            bytes
        };
        match ToServer::decode(&adds(limits::MEMBERS, [0x80, 0x02])) {
            Ok(ToServer::Control(Up::Commit(c))) => assert_eq!(c.adds.len(), limits::MEMBERS),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            ToServer::decode(&adds(limits::MEMBERS + 1, [0x81, 0x02])),
            Err(WireError::Malformed)
        );
        // A length announcing far more elements than the input holds.
        assert_eq!(
            ToServer::decode(&[2, 1, 2, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]),
            Err(WireError::Malformed)
        );
    }

    #[test]
    fn room_snapshots_in_hello_have_these_exact_bytes() {
        // The same snapshot bytes as the fold's own state had on the wire
        // before the snapshot was a type of its own; since wire VERSION 2
        // the `Hello` is behind `Control`'s tag (0).
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
            (9, RoomSnapshot::default(), &[2, 0, 0, 9, 0, 0, 0, 0, 0, 0]),
            (
                1,
                one_leaf,
                &[
                    2, 0, 0, 1, // version, Control, Hello, conn 1
                    2, // seq
                    1, 1, b'g', 0, // group: Some, id "g", epoch 0
                    1, // leaves: one
                    1, 0, 1, 0, 0, // Some(conn 0, can commit, WebRtc, Present)
                    0, // lobby
                    0, // stalls
                    0, // proposals
                ],
            ),
            (
                2,
                room_snapshot(),
                &[
                    2, 0, 0, 2, // version, Control, Hello, conn 2
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
                    2, 0, 0, 4,  // version, Control, Hello, conn 4
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
            let hello = ToClient::Control(Down::Hello {
                conn: ConnId(conn),
                room,
            });
            assert_eq!(hello.encode().unwrap(), bytes, "{hello:?}");
            assert_eq!(ToClient::decode(bytes), Ok(hello));
        }
        // A seat status past `Rejoining` is not one.
        let mut bad = vec![2, 0, 0, 1, 2, 1, 1, b'g', 0, 1, 1, 0, 1, 0, 3, 0, 0, 0];
        assert_eq!(ToClient::decode(&bad), Err(WireError::Malformed));
        bad[14] = 2;
        assert!(ToClient::decode(&bad).is_ok());
    }
}
