//! What a client sends the SFU.

use serde::{Deserialize, Serialize};

use super::{Blob, CommitMessage, ConnId, Media, RoomName, Signal, TOKEN_LEN, Transport, limits};

/// A message from a client to the SFU: one level per party that handles
/// it, so each takes exactly its own part.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ToServer {
    /// The first message on a connection: the link's, to find the room.
    Open(Open),
    /// A control message for the room's log (the delivery service,
    /// `committer::Room`).
    Control(Up),
    /// A media frame, for clients without WebRTC.
    Media(Media),
    /// WebRTC signalling for this connection's peer connection. The SFU
    /// always makes the offers; a client only answers.
    Rtc(Signal),
    /// Keeps an idle connection open; the SFU answers with
    /// [`LinkMsg::Pong`](super::LinkMsg::Pong).
    Ping {
        /// Echoed back.
        nonce: u32,
    },
}

/// How a connection starts: a seat of its own, or one taken over.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Open {
    /// Enter a room.
    Join(Join),
    /// Take over a connection lost within the grace period: the seat, the
    /// MLS leaf and the log position stay. On refusal the client joins
    /// afresh.
    Resume {
        /// The room.
        room: RoomName,
        /// The lost connection.
        conn: ConnId,
        /// Its token, from [`LinkMsg::Resumable`](super::LinkMsg::Resumable).
        token: [u8; TOKEN_LEN],
        /// How many [`ToClient::Control`](super::ToClient::Control)
        /// messages the client has received on that connection; the SFU
        /// sends the rest again.
        received: u64,
    },
}

/// A request to enter a room: the first message of a new member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Join {
    /// The room.
    pub room: RoomName,
    /// A key package for the committer to add.
    pub key_package: Blob<{ limits::KEY_PACKAGE }>,
    /// What this client can do.
    pub capabilities: Capabilities,
}

/// A control message for the room's log, from a connection that joined.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Up {
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

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::super::samples::{blob, commit_message, to_server_samples};
    use super::*;
    use crate::wire::{Message, WireError};

    #[test]
    fn small_messages_have_these_exact_bytes() {
        // Version 2, the family (`Open` 0, `Control` 1, ...), the variant in
        // it, then the fields in order; integers other than u8 are varints.
        assert_eq!(ToServer::Control(Up::Leave).encode().unwrap(), [2, 1, 5]);
        assert_eq!(
            ToServer::Control(Up::Refuse { conn: ConnId(300) })
                .encode()
                .unwrap(),
            [2, 1, 4, 0xac, 0x02]
        );
        assert_eq!(
            to_server_samples()[0].encode().unwrap(),
            [
                2, 0, 0, 5, b'l', b'o', b'b', b'b', b'y', 2, 0xaa, 0xbb, 0, 1
            ]
        );
        assert_eq!(
            ToServer::Control(Up::Commit(commit_message()))
                .encode()
                .unwrap(),
            [2, 1, 2, 1, 1, 2, 1, 0, 1, 9, 1, 2, 7, 7]
        );
        assert_eq!(
            ToServer::Ping { nonce: 300 }.encode().unwrap(),
            [2, 4, 0xac, 0x02]
        );
    }

    #[test]
    fn literal_bytes_decode_to_the_message() {
        assert_eq!(
            ToServer::decode(&[2, 1, 5]),
            Ok(ToServer::Control(Up::Leave))
        );
        assert_eq!(
            ToServer::decode(&[2, 1, 1, 3, 0xaa, 0xbb, 0xcc]),
            Ok(ToServer::Control(Up::Create {
                group_id: blob(&[0xaa, 0xbb, 0xcc])
            }))
        );
    }

    #[test]
    fn every_variant_round_trips() {
        let servers = to_server_samples();
        // The family's tag, and the variant's inside `Open` and `Control`.
        let mut tags: Vec<(u8, u8)> = servers
            .iter()
            .map(|m| {
                let bytes = m.encode().unwrap();
                (bytes[1], if bytes[1] < 2 { bytes[2] } else { 0 })
            })
            .collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(
            tags,
            [
                (0, 0),
                (0, 1),
                (1, 0),
                (1, 1),
                (1, 2),
                (1, 3),
                (1, 4),
                (1, 5),
                (2, 0),
                (3, 0),
                (4, 0)
            ],
            "one sample per variant"
        );
        for message in servers {
            let bytes = message.encode().unwrap();
            assert_eq!(ToServer::decode(&bytes), Ok(message));
        }
    }

    #[test]
    fn truncated_or_unknown_bytes_are_malformed() {
        // The version byte alone, then cuts through each kind of field.
        assert_eq!(ToServer::decode(&[2]), Err(WireError::Malformed));
        assert_eq!(ToServer::decode(&[2, 1]), Err(WireError::Malformed));
        assert_eq!(ToServer::decode(&[2, 1, 4]), Err(WireError::Malformed));
        assert_eq!(
            ToServer::decode(&[2, 1, 4, 0xac]),
            Err(WireError::Malformed)
        );
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
        // Unknown variants at each level, and a bool out of range
        // (`can_commit`).
        assert_eq!(ToServer::decode(&[2, 40]), Err(WireError::Malformed));
        assert_eq!(ToServer::decode(&[2, 0, 2]), Err(WireError::Malformed));
        assert_eq!(ToServer::decode(&[2, 1, 40]), Err(WireError::Malformed));
        assert_eq!(
            ToServer::decode(&[2, 0, 0, 1, b'a', 0, 2, 0]),
            Err(WireError::Malformed)
        );
    }

    #[test]
    fn a_key_package_over_its_bound_is_malformed() {
        // A key package of exactly the limit (length 2048 = 0x80 0x10), then
        // one byte more (2049 = 0x81 0x10).
        let key_package = |len: usize, prefix: [u8; 2]| {
            let mut bytes = vec![2, 1, 0, prefix[0], prefix[1]];
            bytes.resize(5 + len, 0x5a);
            bytes
        };
        let at_limit = key_package(limits::KEY_PACKAGE, [0x80, 0x10]);
        assert_eq!(
            ToServer::decode(&at_limit),
            Ok(ToServer::Control(Up::KeyPackage {
                key_package: blob(&[0x5a; limits::KEY_PACKAGE])
            }))
        );
        let over = key_package(limits::KEY_PACKAGE + 1, [0x81, 0x10]);
        assert_eq!(ToServer::decode(&over), Err(WireError::Malformed));
        assert!(Blob::<{ limits::KEY_PACKAGE }>::new(vec![0; limits::KEY_PACKAGE + 1]).is_none());
    }
}
