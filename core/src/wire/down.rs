//! What the SFU sends a client.

use serde::{Deserialize, Serialize};

use super::{Blob, ConnId, Entry, ErrorCode, Media, RoomSnapshot, Signal, TOKEN_LEN, limits};

/// A message from the SFU to a client: one level per party that produced
/// it, so each receiver takes exactly its own part.
///
/// What a resume replays is exactly the [`ToClient::Control`] messages: the
/// SFU keeps them in the seat's history and the client counts them
/// ([`Open::Resume::received`](super::Open::Resume)); nothing else is
/// counted. The uplink works alike with [`ToServer::Control`]
/// (`crate::resume`).
///
/// [`ToServer::Control`]: super::ToServer::Control
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ToClient {
    /// From the room's log (the delivery service, `committer::Room`), for
    /// the committer (`committer::Member`).
    Control(Down),
    /// A media frame from another member.
    Media(Media),
    /// WebRTC signalling from the SFU.
    Rtc(Signal),
    /// The link's own upkeep and refusals.
    Link(LinkMsg),
}

/// What the delivery service sends one connection: its log and its answers
/// to that connection's control messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Down {
    /// The answer to a [`Join`](super::Join): the connection's id and the
    /// room as the log stood just before this connection's own `Joined`
    /// entry.
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
    /// The committer could not use this connection's key package (the log's
    /// `Refused` entry names it too).
    KeyPackageRefused,
}

/// What the link itself says: the SFU's transport code, not the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LinkMsg {
    /// Sent after `Hello`: the token that lets a new connection take this
    /// one's seat with [`Open::Resume`](super::Open::Resume) within
    /// `grace_ms`.
    Resumable {
        /// The secret the new connection presents.
        token: [u8; TOKEN_LEN],
        /// How long the seat is kept after the connection is lost.
        grace_ms: u32,
        /// Send something (a [`ToServer::Ping`] if nothing else) at least
        /// this often, or the SFU closes the link as idle.
        ///
        /// [`ToServer::Ping`]: super::ToServer::Ping
        ping_ms: u32,
    },
    /// The answer to an [`Open::Resume`](super::Open::Resume) the SFU
    /// accepted; the control messages the client missed follow, and the
    /// client sends again its own after the first `received`.
    Resumed {
        /// How many [`ToServer::Control`](super::ToServer::Control)
        /// messages of the client's the SFU handled on this seat.
        received: u64,
    },
    /// The answer to [`ToServer::Ping`](super::ToServer::Ping).
    Pong {
        /// The ping's nonce.
        nonce: u32,
    },
    /// The SFU refused something. Some refusals leave the link open (an
    /// answer that does not apply); malformed input, floods, idleness and
    /// shutdown close it right after this message.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// Details for a log.
        text: Blob<{ limits::TEXT }>,
    },
    /// The answer to a [`ToServer::Ping`](super::ToServer::Ping) sent
    /// before the connection's `Open`: the SFU's wall clock, for a client
    /// without one (an intercom has no battery-backed clock) to date its
    /// key package before it joins. A client with its own clock never asks
    /// and never gets one.
    Clock {
        /// The ping's nonce.
        nonce: u32,
        /// Milliseconds since 1970-01-01 00:00 UTC, by the SFU's clock.
        unix_ms: u64,
    },
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::super::samples::to_client_samples;
    use super::*;
    use crate::wire::{Message, WireError};

    #[test]
    fn small_messages_have_these_exact_bytes() {
        // Version 2, the family (`Control` 0, `Link` 3), then the variant
        // in it and its fields.
        assert_eq!(
            ToClient::Control(Down::Rejected { epoch: None })
                .encode()
                .unwrap(),
            [2, 0, 3, 0]
        );
        assert_eq!(
            ToClient::Control(Down::Rejected { epoch: Some(5) })
                .encode()
                .unwrap(),
            [2, 0, 3, 1, 5]
        );
        assert_eq!(
            ToClient::Control(Down::KeyPackageRefused).encode().unwrap(),
            [2, 0, 4]
        );
        assert_eq!(
            ToClient::Link(LinkMsg::Resumed { received: 300 })
                .encode()
                .unwrap(),
            [2, 3, 1, 0xac, 0x02]
        );
        assert_eq!(
            ToClient::Link(LinkMsg::Pong { nonce: 300 })
                .encode()
                .unwrap(),
            [2, 3, 2, 0xac, 0x02]
        );
        assert_eq!(
            ToClient::Link(LinkMsg::Clock {
                nonce: 7,
                unix_ms: 1_796_000_000_000
            })
            .encode()
            .unwrap(),
            [2, 3, 4, 7, 0x80, 0xd0, 0xc4, 0xcf, 0xa2, 0x34]
        );
    }

    #[test]
    fn every_variant_round_trips() {
        let clients = to_client_samples();
        // The family's tag, and the variant's inside `Control` and `Link`.
        let mut tags: Vec<(u8, u8)> = clients
            .iter()
            .map(|m| {
                let bytes = m.encode().unwrap();
                (bytes[1], if bytes[1] % 3 == 0 { bytes[2] } else { 0 })
            })
            .collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(
            tags,
            [
                (0, 0),
                (0, 1),
                (0, 2),
                (0, 3),
                (0, 4),
                (1, 0),
                (2, 0),
                (3, 0),
                (3, 1),
                (3, 2),
                (3, 3),
                (3, 4)
            ],
            "one sample per variant"
        );
        let mut entry_tags = Vec::new();
        for message in clients {
            let bytes = message.encode().unwrap();
            if let ToClient::Control(Down::Entry { .. }) = message {
                // Version, `Control`, `Entry`, a one-byte seq, the entry's
                // tag.
                entry_tags.push(bytes[4]);
            }
            assert_eq!(ToClient::decode(&bytes), Ok(message));
        }
        assert_eq!(entry_tags, [0, 1, 2, 3, 4, 5, 6], "one sample per entry");
    }

    #[test]
    fn truncated_or_unknown_bytes_are_malformed() {
        assert_eq!(ToClient::decode(&[2, 0, 3, 1]), Err(WireError::Malformed));
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
        // Unknown variants at each level, and an option tag out of range.
        assert_eq!(ToClient::decode(&[2, 40]), Err(WireError::Malformed));
        assert_eq!(ToClient::decode(&[2, 0, 40]), Err(WireError::Malformed));
        assert_eq!(ToClient::decode(&[2, 3, 40]), Err(WireError::Malformed));
        assert_eq!(
            ToClient::decode(&[2, 0, 3, 2, 0]),
            Err(WireError::Malformed)
        );
    }
}
