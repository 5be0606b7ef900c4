//! The delivery service as the SFU drives it, on arbitrary streams from up
//! to four connections: length-prefixed frames cut by `frame_len`, decoded
//! with `ToServer::decode`, and handed to `committer::Room` by the same
//! rules `satsuma-sfu` applies (`Join` first, transport messages aside,
//! `Leave` ends the connection). Raw frames mix with generated valid ones
//! (joins, creations, commits the log accepts) so the log gets deep.
//!
//! Invariants: no panic; every connection's view, its `Hello` (which
//! `RoomState::try_from` takes) folded with every `Entry` sent to it,
//! applies without error, has consecutive
//! sequence numbers, and equals the service's own state once the queue is
//! drained: every member sees one order, whatever anyone sends.
#![no_main]

#[path = "common.rs"]
mod common;

use std::time::Duration;

use common::Input;
use libfuzzer_sys::fuzz_target;
use satsuma_core::Instant;
use satsuma_core::committer::{Request, Room, RoomConfig, RoomState};
use satsuma_core::wire::{
    Blob, Capabilities, CommitMessage, ConnId, Down, Join, List, Message, Open, RoomName, ToClient,
    ToServer, Transport, Up, encode_framed, frame_len,
};

const SLOTS: usize = 4;
const MAX_STEPS: usize = 64;

#[derive(Default)]
struct Slot {
    conn: Option<ConnId>,
    view: Option<RoomState>,
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mut room = Room::new(RoomConfig {
        commit_deadline: Duration::from_secs(1),
        max_connections: 6,
    });
    let mut slots: [Slot; SLOTS] = Default::default();
    let mut now = Instant::ZERO;
    for _ in 0..MAX_STEPS {
        if input.is_empty() {
            break;
        }
        let slot = usize::from(input.byte()) % SLOTS;
        let frame = match input.byte() % 6 {
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
            3 => encode_framed(&valid_work(room.state(), &mut input)).unwrap(),
            4 => {
                // The connection drops.
                if let Some(conn) = slots[slot].conn.take() {
                    room.handle_disconnect(now, conn);
                    slots[slot].view = None;
                }
                drain(&mut room, &mut slots);
                continue;
            }
            _ => {
                now = now.saturating_add(Duration::from_millis(u64::from(input.byte()) * 20));
                room.handle_timeout(now);
                drain(&mut room, &mut slots);
                continue;
            }
        };
        deliver(&mut room, &mut slots[slot], now, &frame);
        drain(&mut room, &mut slots);
    }
});

/// What a connection's link does with one frame: cut, decode, hand over.
fn deliver(room: &mut Room, slot: &mut Slot, now: Instant, stream: &[u8]) {
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
        ToServer::Open(Open::Join(join)) => Request::Join(join),
        ToServer::Control(up) => Request::Control(up),
        _ => return,
    };
    let leaving = request == Request::Control(Up::Leave);
    slot.conn = room.handle(now, slot.conn, request).ok().or(slot.conn);
    if leaving {
        slot.conn = None;
        slot.view = None;
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

/// Delivers what the service sent and checks every view.
fn drain(room: &mut Room, slots: &mut [Slot; SLOTS]) {
    while let Some(transmit) = room.poll_transmit() {
        let bytes = ToClient::Control(transmit.message)
            .encode()
            .expect("the service's messages encode");
        let ToClient::Control(message) = ToClient::decode(&bytes).expect("and decode") else {
            panic!("a control message decodes as one");
        };
        let to: Vec<ConnId> = room.recipients(transmit.to).collect();
        for slot in slots.iter_mut().filter(|s| s.conn.is_some_and(|c| to.contains(&c))) {
            match &message {
                Down::Hello { room, .. } => {
                    let view = RoomState::try_from(room.clone()).unwrap_or_else(|e| {
                        panic!("the service's Hello is a room no log makes: {e}")
                    });
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
    }
    for slot in slots.iter() {
        if let Some(view) = &slot.view {
            assert_eq!(
                view,
                room.state(),
                "a connection's view differs from the log"
            );
        }
    }
}
