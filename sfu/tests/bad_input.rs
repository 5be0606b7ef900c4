//! Bad input against the real binary, one case per test: the bad
//! connection gets a clear error and is closed, alone; the server stays up,
//! and a call in another room goes on and still takes a newcomer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Peer, RawIntercom, Sfu, settled};
use futures_util::{SinkExt as _, StreamExt as _};
use satsuma_core::media::Codec;
use satsuma_core::wire::{
    Blob, Capabilities, ConnId, ErrorCode, Join, LinkMsg, Media, Message as _, Open, RoomName,
    ToClient, ToServer, Transport, Up, encode_framed,
};
use tokio::io::AsyncWriteExt as _;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const LIMITS: &[(&str, &str)] = &[
    ("SATSUMA_SFU_LIMITS__IDLE_TIMEOUT_MS", "1500"),
    ("SATSUMA_SFU_LIMITS__HANDSHAKE_TIMEOUT_MS", "1000"),
    ("SATSUMA_SFU_LIMITS__CONTROL_PER_SECOND", "10"),
    ("SATSUMA_SFU_LIMITS__CONTROL_BURST", "20"),
    ("SATSUMA_SFU_LIMITS__MEDIA_PER_SECOND", "50"),
    ("SATSUMA_SFU_LIMITS__MEDIA_BURST", "50"),
    ("SATSUMA_SFU_LIMITS__MAX_MESSAGE_BYTES", "65536"),
];

/// The SFU with a call going on in room "calm".
struct Calm {
    sfu: Sfu,
    alice: Peer,
    bob: Peer,
}

impl Calm {
    async fn start() -> Self {
        let sfu = Sfu::start(LIMITS);
        let mut alice = Peer::connect(&sfu, "alice", "calm", Transport::WebRtc).await;
        let mut bob = Peer::connect(&sfu, "bob", "calm", Transport::Wire).await;
        settled(&mut [&mut alice, &mut bob], 2, 60).await;
        Self { sfu, alice, bob }
    }

    /// The server is up, the call goes on undisturbed (nobody had to
    /// reconnect) and a newcomer gets in.
    async fn still_fine(mut self, case: &str) {
        assert!(self.sfu.is_running(), "the SFU died after {case}");
        let (status, _) = self.sfu.get("/healthz").await;
        assert_eq!(status, 200, "healthz after {case}");
        let mut carol = Peer::connect(&self.sfu, "carol", "calm", Transport::WebRtc).await;
        settled(&mut [&mut self.alice, &mut self.bob, &mut carol], 3, 60).await;
        for p in [&self.alice, &self.bob] {
            assert!(
                p.reconnects.is_empty(),
                "{} lost its link after {case}",
                p.name
            );
            assert!(
                p.errors.is_empty(),
                "{} got {:?} after {case}",
                p.name,
                p.errors
            );
        }
    }

    async fn errors(&self, kind: &str) -> u64 {
        self.sfu
            .metric(&format!("satsuma_errors_total{{kind=\"{kind}\"}}"))
            .await
    }
}

/// An intercom link that sends `bytes`, gets `code` and is closed; the
/// error is counted as `kind`.
async fn refused(bytes: &[u8], code: ErrorCode, kind: &str, case: &str) {
    let calm = Calm::start().await;
    let before = calm.errors(kind).await;
    let mut raw = RawIntercom::connect(&calm.sfu, "bad").await;
    raw.write(bytes).await.unwrap();
    assert_eq!(raw.error().await, Some(code), "{case}");
    assert!(raw.closed().await, "{case}: the link stays open");
    assert_eq!(
        calm.errors(kind).await,
        before + 1,
        "{case} is counted as {kind}"
    );
    calm.still_fine(case).await;
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_version() {
    refused(
        &framed(&[9, 0, 1, 2]),
        ErrorCode::Malformed,
        "malformed",
        "wrong version",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_a_message() {
    // The right version (2), then no variant that exists.
    let garbage = framed(&[2, 0xff, 0xff, 0xff, 0xff]);
    refused(&garbage, ErrorCode::Malformed, "malformed", "garbage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_frame() {
    refused(
        &[0, 0, 0, 0],
        ErrorCode::Malformed,
        "malformed",
        "empty frame",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_is_refused_before_it_is_read() {
    let header = (10u32 << 20).to_be_bytes();
    refused(&header, ErrorCode::TooLarge, "too_large", "oversized").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_join_first() {
    let leave = encode_framed(&ToServer::Control(Up::Leave)).unwrap();
    refused(&leave, ErrorCode::Unexpected, "unexpected", "no join").await;
}

/// A seat that exists cannot be taken with a wrong token, or from a
/// position it never reached; neither attempt changes it, and the honest
/// resume then gets every entry once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_resumes_of_a_real_seat_change_nothing() {
    let calm = Calm::start().await;
    let before = calm.errors("resume").await;
    let mut door = common::RawPeer::connect(&calm.sfu, "door", "forge", Transport::Wire).await;
    door.join().await;
    door.until("the group", |d| {
        d.member.group().epoch().is_some() && d.cursor.seat().is_some()
    })
    .await;
    door.disconnect();
    let Some(Open::Resume {
        room,
        conn,
        token,
        received,
    }) = door.cursor.resume(RoomName::new("forge").unwrap())
    else {
        panic!("a resumable seat");
    };
    let mut wrong = token;
    wrong[0] ^= 1;
    let forgeries = [
        ("a wrong token", conn, wrong, received),
        ("a position never reached", conn, token, received + 1),
        // The seat's token, presented for a seat that does not exist.
        ("an unknown seat", ConnId(conn.0 + 100), token, received),
    ];
    let forge = async |case: &str, conn: ConnId, token: [u8; 16], received: u64| {
        let mut raw = RawIntercom::connect(&calm.sfu, "forge").await;
        let forged = ToServer::Open(Open::Resume {
            room: room.clone(),
            conn,
            token,
            received,
        });
        raw.send(&forged).await;
        assert_eq!(raw.error().await, Some(ErrorCode::ResumeFailed), "{case}");
        assert!(raw.closed().await, "{case}: the link stays open");
    };
    for (case, conn, token, received) in forgeries {
        forge(case, conn, token, received).await;
    }
    assert_eq!(calm.errors("resume").await, before + 3);
    // The seat is untouched: the honest resume takes it.
    assert_eq!(door.resume(&calm.sfu).await, door.controls);
    // The SFU has let go of what the door acknowledged: a position before
    // it is stale, and refused, even with the right token.
    assert!(received > 0, "the door had received something");
    forge("a stale position", conn, token, received - 1).await;
    assert_eq!(calm.errors("resume").await, before + 4);
    door.disconnect();
    assert_eq!(door.resume(&calm.sfu).await, door.controls);
    calm.still_fine("forged resumes of a real seat").await;
}

/// A member whose link is down while more entries are logged than its
/// seat keeps cannot resume: the position it presents fell out of the
/// history, so it gets `ResumeFailed` (not a replay with a hole in it) and
/// has to join afresh, which works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_that_fell_out_of_the_history_cannot_resume() {
    const KEPT: u64 = 2;
    let sfu = Sfu::start(&[
        ("SATSUMA_SFU_ROOMS__RESUME_HISTORY", &KEPT.to_string()),
        ("SATSUMA_SFU_ROOMS__RECONNECT_GRACE_MS", "60000"),
    ]);
    let mut alice = Peer::connect(&sfu, "alice", "forgot", Transport::WebRtc).await;
    settled(&mut [&mut alice], 1, 60).await;
    let mut raw = common::RawPeer::connect(&sfu, "raw", "forgot", Transport::WebRtc).await;
    raw.join().await;
    raw.until("the raw member is added", |r| {
        r.member.group().epoch().is_some() && r.cursor.seat().is_some()
    })
    .await;
    settled(&mut [&mut alice], 2, 60).await;
    raw.disconnect();
    let seen = *raw.seqs.last().unwrap();
    // Two more members are added while the raw member's link is down.
    let mut bob = Peer::connect(&sfu, "bob", "forgot", Transport::WebRtc).await;
    let mut carol = Peer::connect(&sfu, "carol", "forgot", Transport::WebRtc).await;
    settled(&mut [&mut alice, &mut bob, &mut carol], 4, 60).await;
    let last = alice.log.last().unwrap().0;
    assert!(
        last - seen > KEPT,
        "more entries were logged ({}) than the seat keeps ({KEPT})",
        last - seen
    );
    let before = sfu.metric("satsuma_errors_total{kind=\"resume\"}").await;
    match raw.try_resume(&sfu).await {
        Err(ToClient::Link(LinkMsg::Error {
            code: ErrorCode::ResumeFailed,
            ..
        })) => {}
        other => panic!("a resume from a position out of the history: {other:?}"),
    }
    assert!(raw.closed().await, "the refused link stays open");
    assert_eq!(
        sfu.metric("satsuma_errors_total{kind=\"resume\"}").await,
        before + 1
    );
    // Joining afresh gets the member back into the call.
    let mut again = Peer::connect(&sfu, "raw2", "forgot", Transport::WebRtc).await;
    settled(&mut [&mut alice, &mut bob, &mut carol, &mut again], 5, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_resume() {
    let resume = ToServer::Open(Open::Resume {
        room: RoomName::new("calm").unwrap(),
        conn: ConnId(0),
        token: [7; 16],
        received: 0,
    });
    let bytes = encode_framed(&resume).unwrap();
    refused(&bytes, ErrorCode::ResumeFailed, "resume", "forged resume").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame() {
    let calm = Calm::start().await;
    let mut raw = RawIntercom::connect(&calm.sfu, "bad").await;
    raw.write(&[0, 0, 0, 100, 1, 2, 3]).await.unwrap();
    raw.tcp.shutdown().await.unwrap();
    assert_eq!(raw.error().await, Some(ErrorCode::Malformed));
    calm.still_fine("a truncated frame").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_link() {
    let calm = Calm::start().await;
    let mut raw = RawIntercom::connect(&calm.sfu, "bad").await;
    assert_eq!(raw.error().await, Some(ErrorCode::Idle));
    assert!(raw.closed().await);
    calm.still_fine("a silent link").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_sender() {
    let calm = Calm::start().await;
    let mut raw = RawIntercom::connect(&calm.sfu, "slow").await;
    raw.join().await;
    // A frame trickling in a byte at a time never completes within the idle
    // timeout.
    let ping = encode_framed(&ToServer::Ping { nonce: 7 }).unwrap();
    for byte in &ping[..ping.len() - 1] {
        if raw.write(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(raw.error().await, Some(ErrorCode::Idle));
    calm.still_fine("a slow sender").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_flood() {
    let calm = Calm::start().await;
    let mut raw = RawIntercom::connect(&calm.sfu, "flood").await;
    raw.join().await;
    let mut flood = Vec::new();
    for nonce in 0..200 {
        flood.extend(encode_framed(&ToServer::Ping { nonce }).unwrap());
    }
    let _ = raw.write(&flood).await;
    assert_eq!(raw.error().await, Some(ErrorCode::RateLimited));
    assert!(raw.closed().await);
    calm.still_fine("a control flood").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_join_on_one_link() {
    let calm = Calm::start().await;
    let mut raw = RawIntercom::connect(&calm.sfu, "twice").await;
    raw.join().await;
    let kp = Blob::copy_from(&raw.member.group_mut().key_package().unwrap()).unwrap();
    let again = ToServer::Open(Open::Join(Join {
        room: RoomName::new("other").unwrap(),
        key_package: kp,
        capabilities: Capabilities {
            can_commit: false,
            transport: Transport::Wire,
        },
    }));
    raw.send(&again).await;
    assert_eq!(raw.error().await, Some(ErrorCode::TooManyRooms));
    calm.still_fine("a second join").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_flood_is_dropped_not_fatal() {
    let mut calm = Calm::start().await;
    let rate_limited = "satsuma_dropped_total{reason=\"rate_limited\"}";
    let before = calm.sfu.metric(rate_limited).await;
    for i in 0..300u16 {
        let media = Media {
            sender: ConnId(0),
            codec: Codec::Pcmu,
            timestamp: 0,
            sequence: i,
            payload: Blob::copy_from(&[0xAB; 100]).unwrap(),
        };
        calm.bob.client.send_media(media).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(calm.sfu.metric(rate_limited).await > before);
    calm.bob.absorb();
    calm.still_fine("a media flood").await;
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The error a WebSocket link gets before it closes.
async fn ws_error(ws: &mut Ws) -> Option<ErrorCode> {
    let wait = async {
        while let Some(Ok(message)) = ws.next().await {
            if let WsMessage::Binary(b) = message
                && let Ok(ToClient::Link(LinkMsg::Error { code, .. })) = ToClient::decode(&b)
            {
                return Some(code);
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_text_frame() {
    let calm = Calm::start().await;
    let url = format!("ws://{}/v1/rooms/bad/ws", calm.sfu.http);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(WsMessage::Text("hello".into())).await.unwrap();
    assert_eq!(ws_error(&mut ws).await, Some(ErrorCode::Malformed));
    calm.still_fine("a WebSocket text frame").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_oversized_message() {
    let calm = Calm::start().await;
    let before = calm.errors("too_large").await;
    let url = format!("ws://{}/v1/rooms/bad/ws", calm.sfu.http);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let _ = ws.send(WsMessage::Binary(vec![1; 100_000].into())).await;
    assert_eq!(ws_error(&mut ws).await, Some(ErrorCode::TooLarge));
    assert_eq!(calm.errors("too_large").await, before + 1);
    calm.still_fine("an oversized WebSocket message").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_room_name() {
    let calm = Calm::start().await;
    let url = format!("ws://{}/v1/rooms/no%20spaces/ws", calm.sfu.http);
    assert!(tokio_tungstenite::connect_async(&url).await.is_err());
    let (status, _) = calm.sfu.get("/v1/rooms/no%20spaces/ws").await;
    assert_eq!(status, 400);
    calm.still_fine("a bad room name").await;
}

/// Whether the SFU closes `tcp` (EOF or reset) within `secs`, reading and
/// dropping whatever it sends first.
async fn closed_within(tcp: &mut tokio::net::TcpStream, secs: u64) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut sink = [0; 4096];
    let wait = async {
        loop {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(secs), wait)
        .await
        .is_ok()
}

/// Sockets that never finish a request (silent, half a header, or idle
/// after one) are closed after the handshake timeout and stop counting; a
/// call in another room goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_half_open_and_idle_http_sockets_are_closed() {
    let calm = Calm::start().await;
    let base = calm.sfu.metric("satsuma_connections").await;
    let mut silent = tokio::net::TcpStream::connect(calm.sfu.http).await.unwrap();
    let mut half = tokio::net::TcpStream::connect(calm.sfu.http).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: sfu\r\n")
        .await
        .unwrap();
    let mut idle = tokio::net::TcpStream::connect(calm.sfu.http).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: sfu\r\n\r\n")
        .await
        .unwrap();
    for (what, tcp) in [
        ("silent", &mut silent),
        ("half", &mut half),
        ("idle", &mut idle),
    ] {
        assert!(closed_within(tcp, 10).await, "the {what} socket stays open");
    }
    // They no longer count (the metrics request is counted both times).
    assert_eq!(calm.sfu.metric("satsuma_connections").await, base);
    calm.still_fine("silent, half-open and idle sockets").await;
}

/// One address cannot take every socket: past its share, its new sockets
/// (HTTP and intercom) are closed at once, while other addresses get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_gets_only_its_share_of_sockets() {
    let sfu = Sfu::start(&[
        ("SATSUMA_SFU_LIMITS__MAX_CONNECTIONS_PER_ADDRESS", "3"),
        ("SATSUMA_SFU_LIMITS__HANDSHAKE_TIMEOUT_MS", "60000"),
    ]);
    assert_eq!(sfu.get("/healthz").await.0, 200);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(sfu.http).await.unwrap());
    }
    let mut fourth = tokio::net::TcpStream::connect(sfu.http).await.unwrap();
    let _ = fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: sfu\r\n\r\n")
        .await;
    assert!(closed_within(&mut fourth, 5).await, "a fourth HTTP socket");
    let mut intercom = tokio::net::TcpStream::connect(sfu.intercom).await.unwrap();
    assert!(
        closed_within(&mut intercom, 5).await,
        "a fourth intercom socket"
    );
    // Another address (127.0.0.2 is loopback too) is not held back.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = other.connect(sfu.http).await.unwrap();
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: sfu\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut other, &mut response)
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // Once one is let go, the address gets in again.
    held.pop();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut tcp = tokio::net::TcpStream::connect(sfu.http).await.unwrap();
        let _ = tcp
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: sfu\r\nConnection: close\r\n\r\n")
            .await;
        let mut response = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut tcp, &mut response).await;
        if response.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the address stays shut out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The server's limits on rooms, connections per room and sockets, each
/// against the real binary: the one over the limit is refused with a clear
/// code and closed; the others are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_connections_per_room_and_sockets_are_limited() {
    let sfu = Sfu::start(&[
        ("SATSUMA_SFU_LIMITS__MAX_ROOMS", "1"),
        ("SATSUMA_SFU_LIMITS__MAX_ROOM_CONNECTIONS", "2"),
        ("SATSUMA_SFU_LIMITS__MAX_CONNECTIONS", "4"),
    ]);
    // Room "one" takes two connections; a third is refused.
    let mut first = RawIntercom::connect(&sfu, "one").await;
    first.join().await;
    first.wait_for_hello().await;
    let mut second = RawIntercom::connect(&sfu, "one").await;
    second.join().await;
    second.wait_for_hello().await;
    let mut third = RawIntercom::connect(&sfu, "one").await;
    third.join().await;
    assert_eq!(
        third.error().await,
        Some(ErrorCode::RoomFull),
        "a third in room one"
    );
    assert!(third.closed().await);
    // A second room is one room too many.
    let mut other = RawIntercom::connect(&sfu, "two").await;
    other.join().await;
    assert_eq!(
        other.error().await,
        Some(ErrorCode::Overloaded),
        "a second room"
    );
    assert!(other.closed().await);
    // Sockets: two are held; two more fill the server, the fifth is shut.
    let _a = tokio::net::TcpStream::connect(sfu.intercom).await.unwrap();
    let _b = tokio::net::TcpStream::connect(sfu.intercom).await.unwrap();
    let mut fifth = tokio::net::TcpStream::connect(sfu.intercom).await.unwrap();
    assert!(closed_within(&mut fifth, 5).await, "a fifth socket");
    // The two members were never disturbed.
    for raw in [&mut first, &mut second] {
        raw.send(&ToServer::Ping { nonce: 7 }).await;
        loop {
            match raw.recv().await {
                Some(ToClient::Link(LinkMsg::Pong { nonce: 7 })) => break,
                Some(_) => {}
                None => panic!("a member lost its link"),
            }
        }
    }
}

/// Three connections, each alone in its own room, send `Create` and then
/// commits of 60 KB (the delivery service cannot tell them from real
/// ones). Each room's resume history stays under its own bound; before,
/// nothing bounded their sum, so enough rooms took any amount of memory.
/// Now the server's total stays under `rooms.resume_server_bytes`.
#[tokio::test]
async fn resume_history_is_bounded_over_the_whole_server() {
    use satsuma_core::wire::{CommitMessage, List};
    const SERVER: u64 = 500_000;
    let sfu = Sfu::start(&[
        ("SATSUMA_SFU_ROOMS__RESUME_HISTORY_BYTES", "300000"),
        ("SATSUMA_SFU_ROOMS__RESUME_ROOM_BYTES", "300000"),
        (
            "SATSUMA_SFU_ROOMS__RESUME_SERVER_BYTES",
            &SERVER.to_string(),
        ),
    ]);
    let mut peers = Vec::new();
    for room in ["hoard-1", "hoard-2", "hoard-3"] {
        let mut p = common::RawPeer::connect(&sfu, "hoarder", room, Transport::Wire).await;
        p.join().await;
        p.until("it created the group", |p| {
            p.member.group().epoch() == Some(0)
        })
        .await;
        for epoch in 0..5 {
            p.send(&ToServer::Control(Up::Commit(CommitMessage {
                epoch,
                adds: List::default(),
                removes: List::default(),
                commit: Blob::copy_from(&vec![0x5a; 60_000]).unwrap(),
                welcome: None,
            })))
            .await;
        }
        // Joined, Created and five commits, all logged.
        p.until("five commits logged", |p| p.seqs.len() >= 7).await;
        peers.push(p);
    }
    let kept = sfu.metric("satsuma_resume_history_bytes").await;
    assert!(
        kept > SERVER - 70_000,
        "the rooms keep history up to the shared bound, within one commit: {kept}"
    );
    assert!(
        kept <= SERVER,
        "{kept} bytes kept for resumes, over the server's bound of {SERVER}"
    );
}

/// An intercom has no wall clock: before its `Join` it asks the SFU's with
/// a `Ping`, and gets [`LinkMsg::Clock`] back with its nonce. A client
/// that only asks, more than four times, is refused like any other first
/// message that is not an `Open`; the call goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_before_a_join_and_no_more_than_four_questions() {
    let calm = Calm::start().await;
    let mut door = RawIntercom::connect(&calm.sfu, "clock").await;
    let asked = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    door.send(&ToServer::Ping { nonce: 41 }).await;
    let Some(ToClient::Link(LinkMsg::Clock { nonce, unix_ms })) = door.recv().await else {
        panic!("no clock for a ping before the join");
    };
    assert_eq!(nonce, 41);
    let told = u128::from(unix_ms);
    assert!(
        told + 1_000 >= asked && told <= asked + 60_000,
        "the SFU's clock {told} is this machine's ({asked})"
    );
    // Asked, the door joins (a room of its own, which it opens).
    door.join().await;
    door.wait_for_hello().await;

    let mut chatty = RawIntercom::connect(&calm.sfu, "clock").await;
    for nonce in 0..4 {
        chatty.send(&ToServer::Ping { nonce }).await;
        assert!(matches!(
            chatty.recv().await,
            Some(ToClient::Link(LinkMsg::Clock { .. }))
        ));
    }
    chatty.send(&ToServer::Ping { nonce: 4 }).await;
    assert_eq!(chatty.error().await, Some(ErrorCode::Unexpected));
    assert!(chatty.closed().await, "a fifth question closes the link");
    calm.still_fine("clock questions").await;
}
