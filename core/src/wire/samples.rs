//! Sample messages for the unit tests of every message family: one of
//! each variant, with fields that make the encoding easy to read.

use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::media::Codec;

pub(super) const DESKTOP: Capabilities = Capabilities {
    can_commit: true,
    transport: Transport::WebRtc,
};
pub(super) const INTERCOM: Capabilities = Capabilities {
    can_commit: false,
    transport: Transport::Wire,
};

pub(super) fn blob<const N: usize>(bytes: &[u8]) -> Blob<N> {
    Blob::copy_from(bytes).unwrap()
}

pub(super) fn commit_message() -> CommitMessage {
    CommitMessage {
        epoch: 1,
        adds: List::new(vec![ConnId(2)]).unwrap(),
        removes: List::new(vec![0]).unwrap(),
        commit: blob(&[9]),
        welcome: Some(blob(&[7, 7])),
    }
}

pub(super) fn media() -> Media {
    Media {
        sender: ConnId(1),
        codec: Codec::Pcmu,
        timestamp: 160,
        sequence: 1,
        payload: blob(&[0xab]),
    }
}

pub(super) fn seat(
    conn: u64,
    capabilities: Capabilities,
    status: Presence,
) -> Option<SeatSnapshot> {
    Some(SeatSnapshot {
        conn: ConnId(conn),
        can_commit: capabilities.can_commit,
        transport: capabilities.transport,
        status,
    })
}

pub(super) fn waiting(conn: u64, key_package: u8) -> WaitingSnapshot {
    WaitingSnapshot {
        conn: ConnId(conn),
        key_package: blob(&[key_package]),
        capabilities: DESKTOP,
    }
}

/// A room with a group, a seated member, one waiting and a proposal, as
/// seven entries leave it (`committer::state::snapshot`'s tests fold them).
pub(super) fn room_snapshot() -> RoomSnapshot {
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

pub(super) fn to_server_samples() -> Vec<ToServer> {
    vec![
        ToServer::Open(Open::Join(Join {
            room: RoomName::new("lobby").unwrap(),
            key_package: blob(&[0xaa, 0xbb]),
            capabilities: INTERCOM,
        })),
        ToServer::Control(Up::KeyPackage {
            key_package: blob(&[1, 2, 3]),
        }),
        ToServer::Control(Up::Create {
            group_id: blob(&[0x42; limits::GROUP_ID]),
        }),
        ToServer::Control(Up::Commit(commit_message())),
        ToServer::Control(Up::Proposal {
            epoch: u64::MAX,
            proposal: blob(&[5; 200]),
        }),
        ToServer::Control(Up::Refuse { conn: ConnId(300) }),
        ToServer::Control(Up::Leave),
        ToServer::Media(media()),
        ToServer::Rtc(Signal::Answer(blob(b"v=0"))),
        ToServer::Open(Open::Resume {
            room: RoomName::new("lobby").unwrap(),
            conn: ConnId(3),
            token: [9; TOKEN_LEN],
            received: 17,
        }),
        ToServer::Ping { nonce: u32::MAX },
    ]
}

pub(super) fn entry_samples() -> Vec<Entry> {
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

pub(super) fn to_client_samples() -> Vec<ToClient> {
    let mut samples = vec![
        ToClient::Control(Down::Hello {
            conn: ConnId(7),
            room: room_snapshot(),
        }),
        ToClient::Control(Down::Welcome {
            welcome: blob(&[8; 1000]),
        }),
        ToClient::Control(Down::Rejected { epoch: None }),
        ToClient::Control(Down::Rejected { epoch: Some(5) }),
        ToClient::Control(Down::KeyPackageRefused),
        ToClient::Media(media()),
    ];
    samples.extend([
        ToClient::Rtc(Signal::Offer(blob(b"v=0"))),
        ToClient::Link(LinkMsg::Resumable {
            token: [1; TOKEN_LEN],
            grace_ms: 15_000,
            ping_ms: 10_000,
        }),
        ToClient::Link(LinkMsg::Resumed { received: 3 }),
        ToClient::Link(LinkMsg::Pong { nonce: 1 }),
        ToClient::Link(LinkMsg::Clock {
            nonce: 2,
            unix_ms: 1_796_000_000_000,
        }),
        ToClient::Link(LinkMsg::Error {
            code: ErrorCode::Closed,
            text: blob(b"bye"),
        }),
    ]);
    samples.extend(
        (1..)
            .zip(entry_samples())
            .map(|(seq, entry)| ToClient::Control(Down::Entry { seq, entry })),
    );
    samples
}
