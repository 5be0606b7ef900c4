//! The delivery service as the SFU drives it, on arbitrary streams from up
//! to four connections: length-prefixed frames cut by `frame_len`, decoded
//! with `ToServer::decode`, and handed to `committer::Room` by the same
//! rules `satsuma-sfu` applies (`Join` first, transport messages aside,
//! `Leave` ends the connection). Raw frames mix with generated valid ones
//! (joins, creations, commits the log accepts) so the log gets deep.
//!
//! Links break and are resumed through `core::resume` as the SFU and the
//! client drive it: seats with small histories and a grace, control
//! messages lost in either direction, honest resumes and forged ones (a
//! wrong token, a position never reached).
//!
//! Invariants: no panic; every connection's view, its `Hello` (which
//! `RoomState::try_from` takes) folded with every `Entry` it received,
//! first hand or replayed by a resume, applies without error, has
//! consecutive sequence numbers, and equals the service's own state once
//! the queue is drained and it is attached: every member sees one order,
//! whatever anyone sends, and a resume neither skips nor repeats an entry.
//! A forged resume is always refused; after an honest one the service has
//! handled every control message the member sent.
#![no_main]

#[path = "common.rs"]
mod common;

use std::time::Duration;

use common::Input;
use libfuzzer_sys::fuzz_target;
use satsuma_core::Instant;
use satsuma_core::committer::{Request, Room, RoomConfig, RoomState};
use satsuma_core::resume::{Cursor, CursorLimits, ResumeError, SeatLimits, Seats};
use satsuma_core::wire::{
    Blob, Capabilities, CommitMessage, ConnId, Down, Join, List, Message, Open, RoomName, ToClient,
    ToServer, Transport, Up, encode_framed, frame_len,
};

const SLOTS: usize = 4;
const MAX_STEPS: usize = 64;

struct Slot {
    conn: Option<ConnId>,
    view: Option<RoomState>,
    /// Whether a link carries the seat.
    attached: bool,
    /// Control messages the service sent to the seat, received or not.
    offered: u64,
    cursor: Cursor<Vec<u8>>,
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            conn: None,
            view: None,
            attached: false,
            offered: 0,
            cursor: Cursor::new(CursorLimits {
                messages: 4,
                bytes: 2048,
            }),
        }
    }
}

/// The room as the SFU holds it: the log and the seats.
struct Service {
    room: Room,
    seats: Seats<Vec<u8>, ()>,
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mut ds = Service {
        room: Room::new(RoomConfig {
            commit_deadline: Duration::from_secs(1),
            max_connections: 6,
        }),
        seats: Seats::new(SeatLimits {
            grace: Duration::from_secs(2),
            messages: 6,
            bytes: 1024,
            total_bytes: 2048,
        }),
    };
    let mut slots: [Slot; SLOTS] = Default::default();
    let mut now = Instant::ZERO;
    for _ in 0..MAX_STEPS {
        if input.is_empty() {
            break;
        }
        let slot = usize::from(input.byte()) % SLOTS;
        let frame = match input.byte() % 8 {
            0 | 1 => {
                // Raw bytes in a length prefix, possibly a lying one.
                let len = usize::from(input.u16() % 600);
                let body = input.take(len);
                let mut framed = u32::try_from(body.len())
                    .unwrap_or(0)
                    .to_be_bytes()
                    .to_vec();
                if input.byte() == 0xff {
                    framed = input.take(4).to_vec();
                }
                framed.extend_from_slice(body);
                framed
            }
            2 => {
                let capabilities = Capabilities {
                    can_commit: input.byte() % 2 == 0,
                    transport: if input.byte() % 2 == 0 {
                        Transport::WebRtc
                    } else {
                        Transport::Wire
                    },
                };
                let join = ToServer::Open(Open::Join(Join {
                    room: RoomName::new("r").unwrap(),
                    key_package: Blob::copy_from(input.take(8)).unwrap_or_default(),
                    capabilities,
                }));
                encode_framed(&join).unwrap()
            }
            3 => {
                let work = encode_framed(&valid_work(ds.room.state(), &mut input)).unwrap();
                if input.byte() % 4 == 0 {
                    // Lost with the link: kept for a resume, never sent.
                    lose(&mut slots[slot], &work);
                    continue;
                }
                work
            }
            4 => {
                // The link breaks; the seat waits for a resume.
                let s = &mut slots[slot];
                if let Some(conn) = s.conn.filter(|_| s.attached) {
                    s.attached = false;
                    ds.seats.detach(now, conn);
                }
                continue;
            }
            5 => {
                resume(&mut ds, &mut slots[slot], now, &mut input);
                drain(&mut ds, &mut slots);
                continue;
            }
            6 => {
                // The member gives up on its seat (as after a refused
                // resume) and the service hears the connection is gone.
                if let Some(conn) = slots[slot].conn.take() {
                    ds.seats.close(conn);
                    ds.room.handle_disconnect(now, conn);
                    slots[slot] = Slot::default();
                }
                drain(&mut ds, &mut slots);
                continue;
            }
            _ => {
                now = now.saturating_add(Duration::from_millis(u64::from(input.byte()) * 20));
                ds.room.handle_timeout(now);
                // A connection the log let go as silent is told (its
                // `Left`), then its seat closes, as the SFU does.
                drain(&mut ds, &mut slots);
                for s in slots.iter_mut() {
                    if let Some(conn) = s.conn
                        && !ds.room.connections().any(|c| c == conn)
                    {
                        ds.seats.close(conn);
                        *s = Slot::default();
                    }
                }
                for (conn, ()) in ds.seats.handle_timeout(now) {
                    ds.room.handle_disconnect(now, conn);
                    if let Some(s) = slots.iter_mut().find(|s| s.conn == Some(conn)) {
                        *s = Slot::default();
                    }
                }
                drain(&mut ds, &mut slots);
                continue;
            }
        };
        if slots[slot].conn.is_none() || slots[slot].attached {
            deliver(&mut ds, &mut slots[slot], now, &frame, &mut input);
        }
        drain(&mut ds, &mut slots);
    }
});

/// A control message the member sent on a link that broke under it.
fn lose(slot: &mut Slot, framed: &[u8]) {
    if slot.conn.is_some() {
        slot.cursor.sent(framed[4..].to_vec());
    }
}

/// A new link takes the slot's seat over, honestly or not.
fn resume(ds: &mut Service, slot: &mut Slot, now: Instant, input: &mut Input<'_>) {
    let (
        Some(conn),
        Some(Open::Resume {
            mut token,
            received,
            ..
        }),
    ) = (
        slot.conn.filter(|_| !slot.attached),
        slot.cursor.resume(RoomName::new("r").unwrap()),
    )
    else {
        return;
    };
    match input.byte() % 4 {
        0 => {
            token[usize::from(input.byte()) % token.len()] ^= 1 << (input.byte() % 8);
            let refused = ds.seats.resume(conn, &token, received).err();
            assert!(
                matches!(
                    refused,
                    Some(ResumeError::BadToken | ResumeError::UnknownSeat)
                ),
                "a forged token was not refused: {refused:?}"
            );
            return;
        }
        1 => {
            let ahead = slot.offered + 1 + u64::from(input.byte());
            assert!(
                ds.seats.resume(conn, &token, ahead).is_err(),
                "a position never reached was accepted"
            );
            return;
        }
        _ => {}
    }
    let Ok(resumed) = ds.seats.resume(conn, &token, received) else {
        // Fell out of the history: the member will join afresh.
        return;
    };
    let handled = resumed.received;
    let missed: Vec<Vec<u8>> = resumed.missed.into_iter().cloned().collect();
    slot.attached = true;
    for bytes in missed {
        receive(slot, &bytes);
    }
    let again: Vec<Vec<u8>> = match slot.cursor.resumed(handled) {
        Ok(again) => again.cloned().collect(),
        // It no longer keeps what the service missed.
        Err(_) => return,
    };
    for body in again {
        let framed = [&u32::try_from(body.len()).unwrap().to_be_bytes()[..], &body].concat();
        deliver(ds, slot, now, &framed, input);
    }
}

/// What a connection's link does with one frame: cut, decode, hand over.
fn deliver(ds: &mut Service, slot: &mut Slot, now: Instant, stream: &[u8], input: &mut Input<'_>) {
    let Some(header) = stream.get(..4) else {
        return;
    };
    let Ok(len) = frame_len(header.try_into().unwrap()) else {
        return;
    };
    let Some(body) = stream.get(4..4 + len) else {
        return;
    };
    let Ok(message) = ToServer::decode(body) else {
        return;
    };
    // The log's part; the link handles the rest (a resume, media, ...).
    let request = match message {
        ToServer::Open(Open::Join(join)) if slot.conn.is_none() => Request::Join(join),
        ToServer::Control(up) => {
            let Some(conn) = slot.conn else { return };
            slot.cursor.sent(body.to_vec());
            ds.seats.received(conn);
            Request::Control(up)
        }
        _ => return,
    };
    let leaving = request == Request::Control(Up::Leave);
    let joined = slot.conn.is_none();
    let Ok(conn) = ds.room.handle(now, slot.conn, request) else {
        return;
    };
    if joined {
        // Some drivers have no randomness: an all-zero token.
        let mut token = [0; satsuma_core::wire::TOKEN_LEN];
        if input.byte() != 0 {
            token.copy_from_slice(&[input.byte(); satsuma_core::wire::TOKEN_LEN]);
        }
        ds.seats.open(conn, token, ());
        slot.conn = Some(conn);
        slot.attached = true;
        slot.cursor.resumable(conn, token);
    }
    if leaving {
        ds.seats.close(conn);
        *slot = Slot::default();
    }
}

/// A control message arrives at a member: counted, and folded into its
/// view.
fn receive(slot: &mut Slot, bytes: &[u8]) {
    let ToClient::Control(message) =
        ToClient::decode(bytes).expect("the service's messages decode")
    else {
        panic!("a control message decodes as one");
    };
    slot.cursor.received();
    match &message {
        Down::Hello { room, .. } => {
            let view = RoomState::try_from(room.clone())
                .unwrap_or_else(|e| panic!("the service's Hello is a room no log makes: {e}"));
            slot.view = Some(view);
        }
        Down::Entry { seq, entry } => {
            let view = slot.view.as_mut().expect("an entry after Hello");
            assert_eq!(*seq, view.seq() + 1, "consecutive entries");
            view.apply(entry).expect("a logged entry applies");
        }
        _ => {}
    }
}

/// A creation or commit the log accepts from its designated member (the
/// sender may still be someone else).
fn valid_work(state: &RoomState, input: &mut Input<'_>) -> ToServer {
    let Some(epoch) = state.epoch() else {
        return ToServer::Control(Up::Create {
            group_id: Blob::copy_from(input.take(4)).unwrap_or_default(),
        });
    };
    let adds: Vec<ConnId> = state.lobby().iter().map(|w| w.conn).collect();
    let welcome = !adds.is_empty();
    ToServer::Control(Up::Commit(CommitMessage {
        epoch,
        adds: List::new(adds).unwrap_or_default(),
        removes: List::new(state.pending_removes()).unwrap_or_default(),
        commit: Blob::copy_from(input.take(8)).unwrap_or_default(),
        welcome: welcome.then(|| Blob::copy_from(input.take(8)).unwrap_or_default()),
    }))
}

/// Delivers what the service sent (and keeps it for a resume) and checks
/// every attached member's view.
fn drain(ds: &mut Service, slots: &mut [Slot; SLOTS]) {
    while let Some(transmit) = ds.room.poll_transmit() {
        let bytes = ToClient::Control(transmit.message)
            .encode()
            .expect("the service's messages encode");
        let to: Vec<ConnId> = ds.room.recipients(transmit.to).collect();
        for conn in &to {
            ds.seats.sent(*conn, bytes.clone());
        }
        for slot in slots
            .iter_mut()
            .filter(|s| s.conn.is_some_and(|c| to.contains(&c)))
        {
            slot.offered += 1;
        }
        for slot in slots
            .iter_mut()
            .filter(|s| s.attached && s.conn.is_some_and(|c| to.contains(&c)))
        {
            receive(slot, &bytes);
        }
    }
    for slot in slots.iter().filter(|s| s.attached) {
        if let Some(view) = &slot.view {
            assert_eq!(
                view,
                ds.room.state(),
                "a connection's view differs from the log"
            );
        }
    }
}
