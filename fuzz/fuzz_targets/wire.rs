//! `ToServer::decode`, `ToClient::decode` and `frame_len` on arbitrary bytes,
//! and decode → encode → decode round trips.
//!
//! The first input byte picks a mode:
//! - even: the rest of the input is the message.
//! - odd: a genuine message of every kind (built from the next input bytes,
//!   see `genuine`) after up to four edits (`mls_common::mutate`), so the
//!   fuzzer starts deep inside nested messages without a seed corpus. A
//!   `Hello` that still decodes carries a room snapshot that may be
//!   anything a delivery service sends, consistent or not: if
//!   `RoomState::try_from` takes it, entries from the input are folded into
//!   it with `RoomState::apply`; an `Entry` that still decodes is folded
//!   into a room built from the input.
//!
//! In both modes, a `Hello` that decodes goes through `RoomState::try_from`.
//!
//! Invariants: no panic; a refusal is `Empty`, `Version`, `TooLong`,
//! `Malformed` or `Trailing` and nothing else, and the right one for the
//! envelope (no bytes, a wrong first byte, more than `limits::MESSAGE`
//! bytes); a message that decodes encodes again to at most as many bytes
//! (postcard reads non-minimal varints, so fewer is possible) and never more
//! than `limits::MESSAGE`, and those bytes decode to the same message and
//! encode to themselves; `frame_len` of the first four bytes is their
//! big-endian value when that is 1..=`limits::MESSAGE`, else `Empty` or
//! `TooLong`; `RoomState::try_from` never panics, and a snapshot it takes
//! is the snapshot of the state it returns; the fold never panics, a
//! refused entry changes nothing, `check_commit` refuses what `apply`
//! refuses, and every state the fold reaches is one whose snapshot
//! `try_from` takes back unchanged (the fold keeps the rules the check
//! enforces, and `RoomState::snapshot` never panics).
#![no_main]

#[path = "common.rs"]
mod common;
#[path = "mls_common.rs"]
mod mls_common;

use std::fmt::Debug;

use common::Input;
use libfuzzer_sys::fuzz_target;
use satsuma_core::committer::RoomState;
use satsuma_core::media::Codec;
use satsuma_core::wire::{
    Blob, Capabilities, CommitMessage, ConnId, Down, Entry, ErrorCode, Join, LinkMsg, List, Media,
    Message, Open, RoomName, RoomSnapshot, ToClient, ToServer, Transport, Up, VERSION, WireError,
    frame_len, limits,
};

fuzz_target!(|data: &[u8]| {
    if let Some(header) = data.first_chunk::<4>() {
        check_frame_len(*header);
    }
    let mut input = Input::new(data);
    let mode = input.byte();
    if mode.is_multiple_of(2) {
        let bytes = input.rest();
        check::<ToServer>(bytes);
        check::<ToClient>(bytes);
        if let Ok(ToClient::Control(Down::Hello { room, .. })) = ToClient::decode(bytes) {
            take(room);
        }
    } else {
        let (server, client) = genuine(&mut input);
        let (server, client) = (server.encode().unwrap(), client.encode().unwrap());
        let pick = mode >> 1;
        let (bytes, donor) = if pick.is_multiple_of(2) {
            (&server, &client)
        } else {
            (&client, &server)
        };
        let mutated = mls_common::mutate(&mut input, bytes, donor);
        check::<ToServer>(&mutated);
        check::<ToClient>(&mutated);
        match ToClient::decode(&mutated) {
            Ok(ToClient::Control(Down::Hello { room, .. })) => {
                if let Some(room) = take(room) {
                    fold(room, &mut input);
                }
            }
            Ok(ToClient::Control(Down::Entry { entry: e, .. })) => {
                let mut room = room_state(&mut input);
                apply(&mut room, &e);
            }
            _ => {}
        }
    }
});

/// The room `snapshot` describes, if `RoomState::try_from` takes it; a
/// taken snapshot is exactly the state's own.
fn take(snapshot: RoomSnapshot) -> Option<RoomState> {
    let room = RoomState::try_from(snapshot.clone()).ok()?;
    assert_eq!(room.snapshot(), snapshot, "a taken snapshot changed");
    Some(room)
}

/// Entries from `input` folded into `room`, which a `Hello` carried.
fn fold(mut room: RoomState, input: &mut Input<'_>) {
    for _ in 0..4 {
        let e = entry(input);
        apply(&mut room, &e);
    }
}

/// A bug this target found, now fixed: a `Hello` whose room has `seq` (or
/// epoch) `u64::MAX` made the next entry overflow. The fold now refuses it
/// (`LogError::Exhausted`). `true` would skip such rooms; it stays `false`.
const SEQ_OVERFLOW_UNCHECKED: bool = false;

/// The fold never panics, and refuses an entry without changing anything.
fn apply(room: &mut RoomState, e: &Entry) {
    if SEQ_OVERFLOW_UNCHECKED && (room.seq() == u64::MAX || room.epoch() == Some(u64::MAX)) {
        return;
    }
    let _ = (room.designated(), room.has_work(), room.pending_removes());
    let _ = room.occupied_leaves();
    if let Entry::Committed { conn, commit } = e {
        let checked = room.check_commit(*conn, commit);
        let before = room.clone();
        let applied = room.apply(e);
        if let Err(err) = checked {
            assert_eq!(applied, Err(err), "check_commit and apply disagree");
        }
        if applied.is_err() {
            assert_eq!(*room, before);
        }
        keeps_the_rules(room);
        return;
    }
    let before = room.clone();
    if room.apply(e).is_err() {
        assert_eq!(*room, before, "a refused entry changed the room");
    } else {
        assert_eq!(room.seq(), before.seq() + 1);
    }
    keeps_the_rules(room);
}

/// The fold never leaves the rules a snapshot is checked against.
fn keeps_the_rules(room: &RoomState) {
    assert_eq!(
        RoomState::try_from(room.snapshot()).as_ref(),
        Ok(room),
        "the fold reached a room its own snapshot check refuses"
    );
}

fn check_frame_len(header: [u8; 4]) {
    let value = u32::from_be_bytes(header) as usize;
    match frame_len(header) {
        Ok(n) => {
            assert_eq!(n, value);
            assert!((1..=limits::MESSAGE).contains(&n));
        }
        Err(WireError::Empty) => assert_eq!(value, 0),
        Err(WireError::TooLong(n)) => {
            assert_eq!(n, value);
            assert!(n > limits::MESSAGE);
        }
        Err(e) => panic!("frame_len({header:?}): {e:?}"),
    }
}

fn check<M: Message + PartialEq + Debug>(bytes: &[u8]) {
    match M::decode(bytes) {
        Ok(message) => {
            assert_eq!(bytes[0], VERSION);
            assert!(bytes.len() <= limits::MESSAGE);
            let encoded = message
                .encode()
                .unwrap_or_else(|e| panic!("{message:?} decoded but does not encode: {e:?}"));
            assert!(
                encoded.len() <= bytes.len(),
                "{message:?}: {} bytes encode to {}",
                bytes.len(),
                encoded.len()
            );
            assert!(encoded.len() <= limits::MESSAGE);
            let again = M::decode(&encoded)
                .unwrap_or_else(|e| panic!("{message:?} encodes to bytes that fail: {e:?}"));
            assert_eq!(again, message);
            assert_eq!(again.encode().as_deref(), Ok(&encoded[..]));
        }
        Err(WireError::Empty) => assert!(bytes.is_empty()),
        Err(WireError::Version(v)) => {
            assert_eq!(bytes.first(), Some(&v));
            assert_ne!(v, VERSION);
        }
        Err(WireError::TooLong(n)) => {
            assert_eq!(bytes.first(), Some(&VERSION));
            assert_eq!(n, bytes.len());
            assert!(n > limits::MESSAGE);
        }
        Err(WireError::Trailing(n)) => {
            assert_eq!(bytes.first(), Some(&VERSION));
            assert!(n > 0 && n < bytes.len());
        }
        Err(WireError::Malformed) => {
            assert_eq!(bytes.first(), Some(&VERSION));
            assert!(bytes.len() <= limits::MESSAGE);
        }
        Err(e) => panic!("decode: unexpected {e:?}"),
    }
}

/// A valid `ToServer` and `ToClient`, variant and fields chosen by `input`.
fn genuine(input: &mut Input<'_>) -> (ToServer, ToClient) {
    let server = match input.byte() % 8 {
        0 => ToServer::Open(Open::Join(Join {
            room: room_name(input),
            key_package: blob(input),
            capabilities: capabilities(input),
        })),
        1 => ToServer::Control(Up::KeyPackage {
            key_package: blob(input),
        }),
        2 => ToServer::Control(Up::Create {
            group_id: blob(input),
        }),
        3 => ToServer::Control(Up::Commit(commit(input))),
        4 => ToServer::Control(Up::Proposal {
            epoch: input.u64(),
            proposal: blob(input),
        }),
        5 => ToServer::Control(Up::Refuse { conn: conn(input) }),
        6 => ToServer::Control(Up::Leave),
        _ => ToServer::Media(media(input)),
    };
    let client = match input.byte() % 6 {
        0 => ToClient::Control(Down::Hello {
            conn: conn(input),
            room: room_state(input).snapshot(),
        }),
        1 => ToClient::Control(Down::Entry {
            seq: input.u64(),
            entry: entry(input),
        }),
        2 => ToClient::Control(Down::Welcome {
            welcome: blob(input),
        }),
        3 => ToClient::Control(Down::Rejected {
            epoch: input.byte().is_multiple_of(2).then(|| input.u64()),
        }),
        4 => ToClient::Link(LinkMsg::Error {
            code: ERROR_CODES[usize::from(input.byte()) % ERROR_CODES.len()],
            text: blob(input),
        }),
        _ => ToClient::Media(media(input)),
    };
    (server, client)
}

const ERROR_CODES: [ErrorCode; 7] = [
    ErrorCode::Malformed,
    ErrorCode::Unexpected,
    ErrorCode::RoomFull,
    ErrorCode::Overloaded,
    ErrorCode::KeyPackageRefused,
    ErrorCode::RateLimited,
    ErrorCode::Closed,
];

/// A varint-sized number: small mostly, sometimes up to `u64::MAX`.
fn number(input: &mut Input<'_>) -> u64 {
    match input.byte() {
        b @ 0..=239 => u64::from(b),
        b => input.u64() >> (b - 240),
    }
}

fn conn(input: &mut Input<'_>) -> ConnId {
    ConnId(number(input))
}

/// Up to `min(N, 300)` bytes: longer ones add no decoding path.
fn blob<const N: usize>(input: &mut Input<'_>) -> Blob<N> {
    let len = usize::from(input.u16()) % (N.min(300) + 1);
    let mut bytes = input.take(len).to_vec();
    bytes.resize(len, 0xa5);
    Blob::new(bytes).expect("len <= N")
}

fn list<T, const N: usize>(
    input: &mut Input<'_>,
    item: impl Fn(&mut Input<'_>) -> T,
) -> List<T, N> {
    let len = usize::from(input.byte()) % (N.min(8) + 1);
    List::new((0..len).map(|_| item(input)).collect()).expect("len <= N")
}

fn room_name(input: &mut Input<'_>) -> RoomName {
    const ALPHABET: &[u8] = b"abcXYZ019-_.";
    let len = 1 + usize::from(input.byte()) % limits::ROOM_NAME;
    let name: String = (0..len)
        .map(|_| char::from(ALPHABET[usize::from(input.byte()) % ALPHABET.len()]))
        .collect();
    RoomName::new(&name).expect("built from the alphabet")
}

fn capabilities(input: &mut Input<'_>) -> Capabilities {
    let b = input.byte();
    Capabilities {
        can_commit: b & 1 == 0,
        transport: if b & 2 == 0 {
            Transport::WebRtc
        } else {
            Transport::Wire
        },
    }
}

fn commit(input: &mut Input<'_>) -> CommitMessage {
    CommitMessage {
        epoch: number(input),
        adds: list(input, conn),
        removes: list(input, |i| number(i) as u32),
        commit: blob(input),
        welcome: input.byte().is_multiple_of(2).then(|| blob(input)),
    }
}

fn media(input: &mut Input<'_>) -> Media {
    Media {
        sender: conn(input),
        codec: Codec::ALL[usize::from(input.byte()) % Codec::ALL.len()],
        timestamp: number(input) as u32,
        sequence: input.u16(),
        payload: blob(input),
    }
}

fn entry(input: &mut Input<'_>) -> Entry {
    match input.byte() % 7 {
        0 => Entry::Joined {
            conn: conn(input),
            key_package: blob(input),
            capabilities: capabilities(input),
        },
        1 => Entry::Left { conn: conn(input) },
        2 => Entry::Created {
            conn: conn(input),
            group_id: blob(input),
        },
        3 => Entry::Committed {
            conn: conn(input),
            commit: commit(input),
        },
        4 => Entry::Proposed {
            conn: conn(input),
            epoch: number(input),
            proposal: blob(input),
        },
        5 => Entry::Stalled,
        _ => Entry::Refused {
            by: conn(input),
            conn: conn(input),
        },
    }
}

/// A room folded from entries the input picks among those the fold takes,
/// so a `Hello` carries a group, leaves, a lobby, stalls and proposals (and
/// its mutations start from a room some log makes).
fn room_state(input: &mut Input<'_>) -> RoomState {
    let mut state = RoomState::default();
    for _ in 0..input.byte() % 12 {
        let next = match input.byte() % 6 {
            0 => Entry::Joined {
                conn: ConnId(state.seq()),
                key_package: blob(input),
                capabilities: capabilities(input),
            },
            1 => match state.designated() {
                Some(conn) if state.group().is_none() => Entry::Created {
                    conn,
                    group_id: blob(input),
                },
                _ => continue,
            },
            2 => match (state.designated(), state.epoch()) {
                (Some(conn), Some(epoch)) => {
                    let adds: Vec<ConnId> = state.lobby().iter().map(|w| w.conn).collect();
                    let welcome = (!adds.is_empty()).then(|| blob(input));
                    Entry::Committed {
                        conn,
                        commit: CommitMessage {
                            epoch,
                            adds: List::new(adds).expect("the lobby is bounded"),
                            removes: List::new(state.pending_removes()).expect("bounded"),
                            commit: blob(input),
                            welcome,
                        },
                    }
                }
                _ => continue,
            },
            3 => match state.leaves().iter().flatten().next() {
                Some(seat) => Entry::Left { conn: seat.conn },
                None => continue,
            },
            4 => match (state.leaves().iter().flatten().last(), state.epoch()) {
                (Some(seat), Some(epoch)) => Entry::Proposed {
                    conn: seat.conn,
                    epoch,
                    proposal: blob(input),
                },
                _ => continue,
            },
            _ => Entry::Stalled,
        };
        // Entries the fold refuses (a proposal from a departed member, a
        // stall with no work) are simply not part of this room.
        let _ = state.apply(&next);
    }
    state
}
