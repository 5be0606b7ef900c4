//! The SFU's own input paths, through its real code: up to four links into
//! one hub (`satsuma_sfu::fuzzing`, the `fuzzing` feature), each served by
//! the SFU's `link::serve` (handshake, read loop, rooms, seats, resume
//! history, the log behind them), on a current-thread tokio runtime whose
//! clock is paused and advances by itself, so the handshake timeout, idle
//! timeout, commit deadline and reconnect grace all pass within one input.
//!
//! Links are of both kinds: intercom links read the fuzzer's bytes with the
//! intercom's own framing (`TcpReader`: length prefixes, lying or not, cut
//! anywhere), WebSocket links get whole messages through the WebSocket
//! link's own mapping (binary, text, ping, pong, close, errors). The input
//! is a list of operations on those links: open one, send raw bytes, a valid
//! `Join`, a `Resume` of a seat a link held (with the honest token and
//! position, a forged token, or a position ahead or behind), a control
//! message (a creation, or a commit built from the room as the seat sees
//! it), a ping, media, signalling, a client-side close (half or whole), and
//! waits of up to 12.75 s. What the server sends is read back, so a resume
//! can present the token and count a real client would.
//!
//! Not driven: WebRTC (`sfu/src/rtc`). A `Join` asking for WebRTC is turned
//! into one asking for the intercom's transport before it is sent (a peer
//! connection would open sockets and run ICE), so `Rtc` signals only reach
//! the refusal for links without a peer connection. Neither are the HTTP
//! server, the WebSocket upgrade or axum's framing, nor the TCP listeners.
//!
//! Invariants: no panic, in any task; every link ends, and one the server
//! ended while the client still spoke ends with a typed `LinkMsg::Error` as
//! its last message; a resume with a forged token or a position no seat
//! reaches is never `Resumed`; once every client has closed and the grace
//! has passed,
//! every link's task is done and the hub's gauges (rooms in the map and in
//! `/metrics`, counted sockets and their addresses, members, resume bytes)
//! are all zero.
//!
//! Input: operations of `[op % 10, slot % 4, arguments...]`, read by
//! `run` below (reads past the end give zeros): 0 open (`ws` if even, URL
//! room), 1 raw bytes (length, bytes), 2 `Join` (room, key package length,
//! bytes, `can_commit` unless a multiple of 4), 3 `Resume` (seat, variant:
//! 0 forged token, 1 ahead, 2 behind, 3 `u64::MAX`, 4 another conn, 5
//! another room, 6-7 honest), 4 control (0-1 commit, 2 create, 3 key
//! package, 4 refuse, 5 leave), 5 ping, media or signal, 6 a transport
//! oddity, 7 close (whole if even), 8 wait (`n` × 50 ms), 9 yield.
//! `SFU_LINK_TRACE=1` prints every message the clients receive, to see how
//! far an input gets.
//!
//! Seeds (fuzz/corpus/sfu_link/, tracked although the directory is ignored)
//! do joins, a group creation and commit, resumes honest and forged. They
//! were written from the repository root with:
//!
//! ```text
//! python3 - <<'EOF'
//! import os; d = 'fuzz/corpus/sfu_link'; os.makedirs(d, exist_ok=True)
//! J0, J1 = '00000100 020000 02aabb 01', '00010000 020100 02ccdd 01'
//! for name, ops in {
//!     'join-ping-leave': J0 + '0500000100 040005',
//!     'join-create-commit': J0 + J1 + '040002 11223344'
//!         + '040000 0102030405060708 a1a2a3a4a5a6a7a8 0800 14',
//!     'lost-then-resumed': J0 + '070001 08000a 00010000 03010006'
//!         + '0501000100 040102 55667788 080064',
//!     'resume-replaces-link': '00000000 020000 02aabb 01 00010100 03010006'
//!         + '0500000100',
//!     'grace-over-then-resume': J0 + '070001 08003c 00010000 03010006',
//!     'forged-and-stale-resumes': J0 + '070001 00010000 0301000005 03'
//!         + '00020000 030200020a 00030000 03030003',
//!     'raw-intercom-frames': J0 + '0100 08 0000000402 04ac02 060001',
//! }.items():
//!     open(f'{d}/{name}', 'wb').write(bytes.fromhex(ops.replace(' ', '')))
//! EOF
//! ```
#![no_main]

#[path = "common.rs"]
mod common;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use common::Input;
use libfuzzer_sys::fuzz_target;
use satsuma_core::committer::RoomState;
use satsuma_core::media::Codec;
use satsuma_core::wire::{
    Blob, Capabilities, CommitMessage, ConnId, Down, Join, LinkMsg, List, Media, Message as _,
    Open, RoomName, Signal, TOKEN_LEN, ToClient, ToServer, Transport, Up, frame_len,
};
use satsuma_sfu::config::Config;
use satsuma_sfu::fuzzing::{Gauges, Hub, WsFrame};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const SLOTS: usize = 4;
const MAX_OPS: usize = 48;
const ROOMS: [&str; 3] = ["a", "b", "c"];
/// Larger than any message a test sends, smaller than the protocol's limit,
/// so an intercom frame can be over it.
const MAX_MESSAGE: usize = 4096;

/// What a client's reader task saw.
#[derive(Default)]
struct Inbox {
    messages: Vec<ToClient>,
    /// Bytes that did not decode as a message from the server.
    garbage: bool,
    /// The server closed its side.
    ended: bool,
}

enum Sender {
    Tcp {
        write: DuplexStream,
        /// Bytes not yet handed over: the start of a frame.
        pending: Vec<u8>,
        /// A length the server refuses was sent: from here on bytes pass
        /// as they are.
        raw: bool,
    },
    Ws(mpsc::UnboundedSender<WsFrame>),
}

struct Link {
    /// `None` once the client closed its sending side.
    sender: Option<Sender>,
    inbox: Rc<RefCell<Inbox>>,
    /// Whether the client still reads (a whole close drops the reader).
    reading: Option<JoinHandle<()>>,
    task: JoinHandle<()>,
    /// The seat it carries (index into `Harness::seats`), once the server
    /// said so.
    seat: Option<usize>,
    /// The seat a `Resume` on it asked for, and the position it claimed.
    resuming: Option<(usize, u64)>,
    /// It sent a `Resume` the server must refuse (a forged token, a
    /// position no seat reaches).
    forged: bool,
    last: Option<ToClient>,
    /// The client ended the link (closed, or sent a close or an error).
    client_ended: bool,
    /// The room of the last `Join` or `Resume` the target built for it,
    /// else the URL's.
    room: RoomName,
}

/// A seat as its member knows it.
struct Seat {
    room: RoomName,
    conn: ConnId,
    token: Option<[u8; TOKEN_LEN]>,
    /// Control messages received on it.
    received: u64,
    view: Option<RoomState>,
}

struct Harness {
    hub: Hub,
    links: [Option<Link>; SLOTS],
    /// Links that were replaced in their slot, kept for the final checks.
    done: Vec<Link>,
    seats: Vec<Seat>,
    opened: u8,
}

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, run(data));
});

fn config() -> Config {
    // Valid by `Config`'s own checks, small enough that every limit can be
    // reached: two rooms, three connections a room, short queues and times.
    let mut config = Config::default();
    config.intercom = None;
    let l = &mut config.limits;
    l.max_message_bytes = MAX_MESSAGE;
    l.control_per_second = 20;
    l.control_burst = 24;
    l.media_per_second = 50;
    l.media_burst = 8;
    l.idle_timeout_ms = 3_000;
    l.handshake_timeout_ms = 1_000;
    l.max_connections = 4;
    l.max_connections_per_address = 3;
    l.max_rooms = 2;
    l.max_room_connections = 3;
    l.control_queue = 12;
    l.media_queue = 4;
    let r = &mut config.rooms;
    r.commit_deadline_ms = 1_000;
    r.reconnect_grace_ms = 2_000;
    r.resume_history = 6;
    r.resume_history_bytes = satsuma_core::wire::limits::MESSAGE;
    r.resume_room_bytes = satsuma_core::wire::limits::MESSAGE;
    r.resume_server_bytes = satsuma_core::wire::limits::MESSAGE;
    config
}

async fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mut h = Harness {
        hub: Hub::new(config()).expect("the default WebRTC settings apply"),
        links: Default::default(),
        done: Vec::new(),
        seats: Vec::new(),
        opened: 0,
    };
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let op = input.byte() % 10;
        let slot = usize::from(input.byte()) % SLOTS;
        match op {
            0 => h.open(slot, &mut input),
            1 => {
                let len = usize::from(input.byte());
                let raw = input.take(len).to_vec();
                h.send_raw(slot, raw).await;
            }
            2 => {
                let join = ToServer::Open(Open::Join(Join {
                    room: room(input.byte()),
                    key_package: Blob::copy_from(some(&mut input, 16)).unwrap_or_default(),
                    capabilities: Capabilities {
                        can_commit: input.byte() % 4 != 0,
                        transport: Transport::Wire,
                    },
                }));
                h.send(slot, &join).await;
            }
            3 => h.resume(slot, &mut input).await,
            4 => {
                let message = h.control(slot, &mut input);
                h.send(slot, &message).await;
            }
            5 => {
                let message = match input.byte() % 4 {
                    0 | 1 => ToServer::Ping {
                        nonce: u32::from(input.u16()),
                    },
                    2 => ToServer::Media(Media {
                        sender: ConnId(u64::from(input.byte())),
                        codec: Codec::ALL[usize::from(input.byte()) % Codec::ALL.len()],
                        timestamp: u32::from(input.u16()),
                        sequence: input.u16(),
                        payload: Blob::copy_from(some(&mut input, 64)).unwrap_or_default(),
                    }),
                    _ => ToServer::Rtc(Signal::Answer(
                        Blob::copy_from(some(&mut input, 16)).unwrap_or_default(),
                    )),
                };
                h.send(slot, &message).await;
            }
            6 => h.transport_oddity(slot, &mut input).await,
            7 => h.close(slot, input.byte() % 2 == 0).await,
            8 => tokio::time::sleep(Duration::from_millis(u64::from(input.byte()) * 50)).await,
            _ => tokio::task::yield_now().await,
        }
        settle().await;
        h.sync();
    }
    // Every client goes; the links end, the seats' grace passes, the rooms
    // close.
    for slot in 0..SLOTS {
        h.close(slot, false).await;
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    h.sync();
    for link in h.links.iter_mut().filter_map(Option::take) {
        h.done.push(link);
    }
    for link in &h.done {
        assert!(
            link.task.is_finished(),
            "a link is still served after every client closed and 30 s passed"
        );
    }
    let gauges = h.hub.gauges();
    assert_eq!(
        gauges,
        Gauges::default(),
        "the hub's counts after every link and room is gone"
    );
}

/// Whether to print what every client receives (`SFU_LINK_TRACE=1`, to
/// see how far an input gets).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("SFU_LINK_TRACE").is_some())
}

/// Lets every task run until all wait, then 1 ms passes.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Fewer than `max` bytes, as many as the input says.
fn some<'a>(input: &mut Input<'a>, max: u8) -> &'a [u8] {
    let n = input.byte() % max;
    input.take(usize::from(n))
}

fn room(byte: u8) -> RoomName {
    RoomName::new(ROOMS[usize::from(byte) % ROOMS.len()]).expect("a valid room name")
}

/// The same message with WebRTC swapped for the intercom's transport: the
/// target does not drive peer connections.
fn without_webrtc(body: &[u8]) -> Option<Vec<u8>> {
    match ToServer::decode(body) {
        Ok(ToServer::Open(Open::Join(mut join)))
            if join.capabilities.transport == Transport::WebRtc =>
        {
            join.capabilities.transport = Transport::Wire;
            ToServer::Open(Open::Join(join)).encode().ok()
        }
        _ => None,
    }
}

impl Harness {
    fn open(&mut self, slot: usize, input: &mut Input<'_>) {
        let websocket = input.byte() % 2 == 0;
        let url_room = room(input.byte());
        if let Some(old) = self.links[slot].take() {
            // The old link's client walks away without a word.
            self.done.push(old);
        }
        self.opened = self.opened.wrapping_add(1);
        let peer = SocketAddr::from(([10, 0, 0, 1 + self.opened % 2], 40_000));
        let inbox = Rc::new(RefCell::new(Inbox::default()));
        let (sender, serving, reading) = if websocket {
            let (frames_tx, frames_rx) = mpsc::unbounded_channel();
            let (sent_tx, sent_rx) = mpsc::unbounded_channel();
            let Some(serving) = self
                .hub
                .websocket(peer, url_room.clone(), frames_rx, sent_tx)
            else {
                return;
            };
            let reading = tokio::task::spawn_local(read_ws(sent_rx, Rc::clone(&inbox)));
            (Sender::Ws(frames_tx), tokio::spawn(serving), reading)
        } else {
            let (client_write, server_read) = tokio::io::duplex(1 << 16);
            let (server_write, client_read) = tokio::io::duplex(1 << 20);
            let Some(serving) = self.hub.intercom(peer, server_read, server_write) else {
                return;
            };
            let reading = tokio::task::spawn_local(read_tcp(client_read, Rc::clone(&inbox)));
            let sender = Sender::Tcp {
                write: client_write,
                pending: Vec::new(),
                raw: false,
            };
            (sender, tokio::spawn(serving), reading)
        };
        self.links[slot] = Some(Link {
            sender: Some(sender),
            inbox,
            reading: Some(reading),
            task: serving,
            seat: None,
            resuming: None,
            forged: false,
            last: None,
            client_ended: false,
            room: url_room,
        });
    }

    /// One message: a WebSocket message, or a frame on an intercom link.
    async fn send(&mut self, slot: usize, message: &ToServer) {
        let body = message.encode().expect("the target's messages encode");
        if let ToServer::Open(open) = message
            && let Some(link) = self.links[slot].as_mut()
        {
            link.room = match open {
                Open::Join(join) => join.room.clone(),
                Open::Resume { room, .. } => room.clone(),
            };
        }
        let framed = matches!(
            self.links[slot].as_ref().and_then(|l| l.sender.as_ref()),
            Some(Sender::Tcp { .. })
        );
        if framed {
            let len = u32::try_from(body.len()).expect("a message fits a frame");
            self.send_raw(slot, [&len.to_be_bytes()[..], &body].concat())
                .await;
        } else {
            self.send_raw(slot, body).await;
        }
    }

    /// One message on a WebSocket link, or bytes on an intercom link, cut
    /// into frames however they say.
    async fn send_raw(&mut self, slot: usize, bytes: Vec<u8>) {
        let Some(link) = self.links[slot].as_mut() else {
            return;
        };
        match link.sender.as_mut() {
            None => {}
            Some(Sender::Ws(tx)) => {
                let bytes = without_webrtc(&bytes).unwrap_or(bytes);
                let _ = tx.send(WsFrame::Binary(Bytes::from(bytes)));
            }
            Some(Sender::Tcp {
                write,
                pending,
                raw,
            }) => {
                pending.extend_from_slice(&bytes);
                let out = cut(pending, raw);
                write_all(write, &out).await;
            }
        }
    }

    /// Transport-level oddities: WebSocket frames that are not binary
    /// messages; on an intercom link, lengths the server refuses.
    async fn transport_oddity(&mut self, slot: usize, input: &mut Input<'_>) {
        let which = input.byte();
        let Some(link) = self.links[slot].as_mut() else {
            return;
        };
        match link.sender.as_mut() {
            None => {}
            Some(Sender::Ws(tx)) => {
                let frame = match which % 6 {
                    0 => WsFrame::Ping,
                    1 => WsFrame::Pong,
                    2 => WsFrame::Text("hello".into()),
                    3 => WsFrame::Close,
                    4 => WsFrame::Error("Space limit exceeded: Message too long".into()),
                    _ => WsFrame::Error("Connection reset without closing handshake".into()),
                };
                if matches!(frame, WsFrame::Close | WsFrame::Error(_)) {
                    link.client_ended = true;
                }
                let _ = tx.send(frame);
            }
            Some(Sender::Tcp {
                write,
                pending,
                raw,
            }) => {
                let header: u32 = match which % 3 {
                    0 => 0,
                    1 => u32::try_from(MAX_MESSAGE + 1).unwrap_or(u32::MAX),
                    _ => u32::MAX,
                };
                pending.extend_from_slice(&header.to_be_bytes());
                let out = cut(pending, raw);
                write_all(write, &out).await;
            }
        }
    }

    /// The client closes its sending side (`whole`: stops reading too).
    async fn close(&mut self, slot: usize, whole: bool) {
        let Some(link) = self.links[slot].as_mut() else {
            return;
        };
        if let Some(sender) = link.sender.take() {
            link.client_ended = true;
            if let Sender::Tcp {
                mut write, pending, ..
            } = sender
            {
                // A frame cut short by the close.
                write_all(&mut write, &pending).await;
            }
        }
        if whole && let Some(reading) = link.reading.take() {
            reading.abort();
        }
    }

    async fn resume(&mut self, slot: usize, input: &mut Input<'_>) {
        if self.seats.is_empty() {
            return;
        }
        let index = usize::from(input.byte()) % self.seats.len();
        let seat = &self.seats[index];
        let honest_token = seat.token.unwrap_or([0; TOKEN_LEN]);
        let mut token = honest_token;
        let mut received = seat.received;
        let mut room = seat.room.clone();
        let mut conn = seat.conn;
        let mut forged = false;
        match input.byte() % 8 {
            // A forged token.
            0 => {
                token[usize::from(input.byte()) % TOKEN_LEN] ^= 1 << (input.byte() % 8);
                forged = true;
            }
            // Ahead of what the client has (maybe not of what the seat
            // kept while it was away), or behind it.
            1 => received = received.saturating_add(1 + u64::from(input.byte())),
            2 => received = received.saturating_sub(1 + u64::from(input.byte())),
            // A position no seat reaches.
            3 => {
                received = u64::MAX;
                forged = true;
            }
            // Another seat's number, or another room.
            4 => conn = ConnId(u64::from(input.byte() % 8)),
            5 => room = self::room(input.byte()),
            _ => {}
        }
        let honest = room == seat.room && conn == seat.conn && token == honest_token;
        if let Some(link) = self.links[slot].as_mut() {
            link.forged |= forged;
            if honest {
                link.resuming = Some((index, received));
            }
        }
        let message = ToServer::Open(Open::Resume {
            room,
            conn,
            token,
            received,
        });
        self.send(slot, &message).await;
    }

    /// A control message: a creation, or a commit the log may accept, built
    /// from the room as the link's seat sees it; or something else.
    fn control(&self, slot: usize, input: &mut Input<'_>) -> ToServer {
        let view = self.links[slot]
            .as_ref()
            .and_then(|l| l.seat)
            .and_then(|s| self.seats[s].view.as_ref());
        let up = match (input.byte() % 6, view.and_then(RoomState::epoch)) {
            (0 | 1, Some(epoch)) => {
                let state = view.expect("an epoch comes from a view");
                let adds: Vec<ConnId> = state.lobby().iter().map(|w| w.conn).collect();
                let welcome = !adds.is_empty();
                Up::Commit(CommitMessage {
                    epoch,
                    adds: List::new(adds).unwrap_or_default(),
                    removes: List::new(state.pending_removes()).unwrap_or_default(),
                    commit: Blob::copy_from(input.take(8)).unwrap_or_default(),
                    welcome: welcome.then(|| Blob::copy_from(input.take(8)).unwrap_or_default()),
                })
            }
            (0 | 1 | 2, _) => Up::Create {
                group_id: Blob::copy_from(input.take(4)).unwrap_or_default(),
            },
            (3, _) => Up::KeyPackage {
                key_package: Blob::copy_from(input.take(8)).unwrap_or_default(),
            },
            (4, _) => Up::Refuse {
                conn: ConnId(u64::from(input.byte() % 8)),
            },
            _ => Up::Leave,
        };
        ToServer::Control(up)
    }

    /// Reads what every client received: seats, tokens, counts, views; and
    /// checks how links the server ended ended.
    fn sync(&mut self) {
        let seats = &mut self.seats;
        for link in self.links.iter_mut().flatten().chain(self.done.iter_mut()) {
            let messages = std::mem::take(&mut link.inbox.borrow_mut().messages);
            for message in messages {
                if trace() {
                    eprintln!("link {:?} seat {:?} got {message:?}", link.room, link.seat);
                }
                match &message {
                    ToClient::Control(down) => {
                        if let Down::Hello { conn, room } = down {
                            let view = RoomState::try_from(room.clone()).ok();
                            match link.seat {
                                // Replayed by a resume from the start.
                                Some(s) => seats[s].view = view,
                                None => {
                                    seats.push(Seat {
                                        room: link.room.clone(),
                                        conn: *conn,
                                        token: None,
                                        received: 0,
                                        view,
                                    });
                                    link.seat = Some(seats.len() - 1);
                                }
                            }
                        }
                        if let Some(seat) = link.seat.map(|s| &mut seats[s]) {
                            seat.received += 1;
                            if let (Down::Entry { entry, .. }, Some(view)) = (down, &mut seat.view)
                                && view.apply(entry).is_err()
                            {
                                seat.view = None;
                            }
                        }
                    }
                    ToClient::Link(LinkMsg::Resumable { token, .. }) => {
                        if let Some(seat) = link.seat.map(|s| &mut seats[s]) {
                            seat.token = Some(*token);
                        }
                    }
                    ToClient::Link(LinkMsg::Resumed { .. }) => {
                        assert!(!link.forged, "a forged resume was accepted");
                        if let Some((index, claimed)) = link.resuming.take() {
                            // The missed messages follow.
                            seats[index].received = claimed;
                            link.seat = Some(index);
                        }
                    }
                    _ => {}
                }
                link.last = Some(message);
            }
            let inbox = link.inbox.borrow();
            assert!(!inbox.garbage, "the server sent bytes that are no message");
            if link.task.is_finished() && !link.client_ended && inbox.ended {
                assert!(
                    matches!(link.last, Some(ToClient::Link(LinkMsg::Error { .. }))),
                    "the server ended a link without a typed error: last {:?}",
                    link.last
                );
            }
        }
    }
}

/// Frames `pending` for the server: whole frames leave (a WebRTC join made
/// an intercom one), the start of one waits; after a length the server
/// refuses, everything leaves as it is.
fn cut(pending: &mut Vec<u8>, raw: &mut bool) -> Vec<u8> {
    let mut out = Vec::new();
    while !*raw && pending.len() >= 4 {
        let header: [u8; 4] = pending[..4].try_into().expect("four bytes");
        match frame_len(header) {
            Ok(len) if len <= MAX_MESSAGE => {
                if pending.len() < 4 + len {
                    break;
                }
                let body: Vec<u8> = pending.drain(..4 + len).skip(4).collect();
                let body = without_webrtc(&body).unwrap_or(body);
                let len = u32::try_from(body.len()).expect("a message fits a frame");
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&body);
            }
            _ => *raw = true,
        }
    }
    if *raw {
        out.append(pending);
    }
    out
}

async fn write_all(write: &mut DuplexStream, bytes: &[u8]) {
    // A server that stopped reading never unblocks the write: its link
    // ends (and the pipe breaks) within the idle timeout.
    let _ = tokio::time::timeout(Duration::from_secs(10), write.write_all(bytes)).await;
}

async fn read_tcp(mut read: DuplexStream, inbox: Rc<RefCell<Inbox>>) {
    loop {
        let mut header = [0; 4];
        if read.read_exact(&mut header).await.is_err() {
            break;
        }
        let Ok(len) = frame_len(header) else {
            inbox.borrow_mut().garbage = true;
            break;
        };
        let mut body = vec![0; len];
        if read.read_exact(&mut body).await.is_err() {
            inbox.borrow_mut().garbage = true;
            break;
        }
        receive(&inbox, &body);
    }
    inbox.borrow_mut().ended = true;
}

async fn read_ws(mut sent: mpsc::UnboundedReceiver<Bytes>, inbox: Rc<RefCell<Inbox>>) {
    while let Some(bytes) = sent.recv().await {
        receive(&inbox, &bytes);
    }
    inbox.borrow_mut().ended = true;
}

fn receive(inbox: &Rc<RefCell<Inbox>>, bytes: &[u8]) {
    let mut inbox = inbox.borrow_mut();
    match ToClient::decode(bytes) {
        Ok(message) => inbox.messages.push(message),
        Err(_) => inbox.garbage = true,
    }
}
