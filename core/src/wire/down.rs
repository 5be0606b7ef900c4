//! What the SFU sends a client.

use serde::{Deserialize, Serialize};

use super::{Blob, ConnId, Entry, ErrorCode, Media, RoomSnapshot, Signal, TOKEN_LEN, limits};

/// A message from the SFU to a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ToClient {
    /// The answer to [`ToServer::Join`]: the connection's id and the room as
    /// the log stood just before this connection's own `Joined` entry.
    ///
    /// [`ToServer::Join`]: super::ToServer::Join
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
    /// The SFU refused something. Some refusals leave the link open (an
    /// answer that does not apply); malformed input, floods, idleness and
    /// shutdown close it right after this message.
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
    ///
    /// [`ToServer::Resume`]: super::ToServer::Resume
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
    /// The answer to a [`ToServer::Resume`] the SFU accepted; the control
    /// messages the client missed follow.
    ///
    /// [`ToServer::Resume`]: super::ToServer::Resume
    Resumed,
    /// The answer to [`ToServer::Ping`](super::ToServer::Ping).
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

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::super::samples::to_client_samples;
    use super::*;
    use crate::wire::{Message, WireError};

    #[test]
    fn small_messages_have_these_exact_bytes() {
        assert_eq!(
            ToClient::Rejected { epoch: None }.encode().unwrap(),
            [1, 3, 0]
        );
        assert_eq!(
            ToClient::Rejected { epoch: Some(5) }.encode().unwrap(),
            [1, 3, 1, 5]
        );
        assert_eq!(ToClient::Resumed.encode().unwrap(), [1, 8]);
    }

    #[test]
    fn every_variant_round_trips() {
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
    fn truncated_or_unknown_bytes_are_malformed() {
        assert_eq!(ToClient::decode(&[1, 3, 1]), Err(WireError::Malformed));
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
        // An unknown variant, and an option tag out of range.
        assert_eq!(ToClient::decode(&[1, 40]), Err(WireError::Malformed));
        assert_eq!(ToClient::decode(&[1, 3, 2, 0]), Err(WireError::Malformed));
    }
}
