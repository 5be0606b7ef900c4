//! Bad input against the real binary: each bad connection gets a clear
//! error and is closed, alone; the server stays up and a call in another
//! room goes on undisturbed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Peer, RawIntercom, Sfu, settled};
use futures_util::{SinkExt as _, StreamExt as _};
use satsuma_core::media::Codec;
use satsuma_core::wire::{
    Blob, ConnId, ErrorCode, Media, Message as _, ToClient, ToServer, Transport,
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

/// The calm room's call still works: both members agree, and a newcomer
/// gets in.
async fn calm_room_is_fine(sfu: &mut Sfu, alice: &mut Peer, bob: &mut Peer, case: &str) {
    assert!(sfu.is_running(), "the SFU died after {case}");
    let (status, _) = sfu.get("/healthz").await;
    assert_eq!(status, 200, "healthz after {case}");
    settled(&mut [alice, bob], 2, 20).await;
}

/// An intercom link that sends `bytes` and must get `code` and be closed.
async fn refused(sfu: &Sfu, bytes: &[u8], code: ErrorCode, case: &str) {
    let mut raw = RawIntercom::connect(sfu, "bad").await;
    raw.write(bytes).await.unwrap();
    assert_eq!(raw.error().await, Some(code), "{case}");
    assert!(raw.closed().await, "{case}: the link stays open");
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_links_are_closed_alone_and_other_rooms_go_on() {
    let mut sfu = Sfu::start(LIMITS);
    let mut alice = Peer::connect(&sfu, "alice", "calm", Transport::WebRtc).await;
    let mut bob = Peer::connect(&sfu, "bob", "calm", Transport::Wire).await;
    settled(&mut [&mut alice, &mut bob], 2, 60).await;
    let malformed_before = sfu.metric("satsuma_errors_total{kind=\"malformed\"}").await;

    // Wrong version byte.
    refused(
        &sfu,
        &framed(&[9, 0, 1, 2]),
        ErrorCode::Malformed,
        "version",
    )
    .await;
    // Not postcard at all.
    refused(
        &sfu,
        &framed(&[1, 0xff, 0xff, 0xff, 0xff]),
        ErrorCode::Malformed,
        "garbage",
    )
    .await;
    // A zero-length frame.
    refused(&sfu, &[0, 0, 0, 0], ErrorCode::Malformed, "empty frame").await;
    // A frame announcing more than the limit: refused before it is read.
    refused(
        &sfu,
        &(10u32 << 20).to_be_bytes(),
        ErrorCode::TooLarge,
        "oversized",
    )
    .await;
    // A valid message that is not a Join first.
    refused(
        &sfu,
        &satsuma_core::wire::encode_framed(&ToServer::Leave).unwrap(),
        ErrorCode::Unexpected,
        "no join",
    )
    .await;
    calm_room_is_fine(&mut sfu, &mut alice, &mut bob, "malformed frames").await;
    let malformed = sfu.metric("satsuma_errors_total{kind=\"malformed\"}").await;
    assert_eq!(
        malformed - malformed_before,
        3,
        "each malformed link is counted"
    );

    // Truncated: the link ends inside a frame.
    let mut raw = RawIntercom::connect(&sfu, "bad").await;
    raw.write(&[0, 0, 0, 100, 1, 2, 3]).await.unwrap();
    raw.tcp.shutdown().await.unwrap();
    assert_eq!(raw.error().await, Some(ErrorCode::Malformed), "truncated");

    // Silent: no Join within the handshake time.
    let mut raw = RawIntercom::connect(&sfu, "bad").await;
    assert_eq!(raw.error().await, Some(ErrorCode::Idle), "silent");
    assert!(raw.closed().await);

    // Slow sender: a frame trickling in a byte at a time never completes
    // within the idle timeout.
    let mut raw = RawIntercom::connect(&sfu, "slow").await;
    raw.join().await;
    let ping = satsuma_core::wire::encode_framed(&ToServer::Ping { nonce: 7 }).unwrap();
    for byte in &ping[..ping.len() - 1] {
        if raw.write(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(raw.error().await, Some(ErrorCode::Idle), "slow sender");
    calm_room_is_fine(
        &mut sfu,
        &mut alice,
        &mut bob,
        "truncated, silent and slow links",
    )
    .await;

    // A control flood: over the burst, the link is closed.
    let mut raw = RawIntercom::connect(&sfu, "flood").await;
    raw.join().await;
    let mut flood = Vec::new();
    for nonce in 0..200 {
        flood.extend(satsuma_core::wire::encode_framed(&ToServer::Ping { nonce }).unwrap());
    }
    let _ = raw.write(&flood).await;
    assert_eq!(raw.error().await, Some(ErrorCode::RateLimited), "flood");
    assert!(raw.closed().await);

    // A second Join on the same link: one room per connection.
    let mut raw = RawIntercom::connect(&sfu, "twice").await;
    raw.join().await;
    let kp = Blob::copy_from(&raw.member.group_mut().key_package().unwrap()).unwrap();
    let again = ToServer::Join {
        room: satsuma_core::wire::RoomName::new("other").unwrap(),
        key_package: kp,
        capabilities: satsuma_core::wire::Capabilities {
            can_commit: false,
            transport: Transport::Wire,
        },
    };
    raw.send(&again).await;
    assert_eq!(
        raw.error().await,
        Some(ErrorCode::TooManyRooms),
        "second join"
    );

    // A resume with a made-up token.
    let resume = ToServer::Resume {
        room: satsuma_core::wire::RoomName::new("calm").unwrap(),
        conn: ConnId(0),
        token: [7; 16],
        received: 0,
    };
    refused(
        &sfu,
        &satsuma_core::wire::encode_framed(&resume).unwrap(),
        ErrorCode::ResumeFailed,
        "forged resume",
    )
    .await;
    calm_room_is_fine(&mut sfu, &mut alice, &mut bob, "floods and forged resumes").await;

    // A media flood from a member is dropped over the rate, not fatal.
    let dropped_before = sfu
        .metric("satsuma_dropped_total{reason=\"rate_limited\"}")
        .await;
    for i in 0..300u16 {
        let media = Media {
            sender: ConnId(0),
            codec: Codec::Pcmu,
            timestamp: 0,
            sequence: i,
            payload: Blob::copy_from(&[0xAB; 100]).unwrap(),
        };
        bob.client.send_media(media).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        sfu.metric("satsuma_dropped_total{reason=\"rate_limited\"}")
            .await
            > dropped_before
    );
    bob.absorb();
    assert!(
        bob.reconnects.is_empty(),
        "the flooding member keeps its link"
    );

    // WebSocket: a text frame, an oversized message, a bad room name.
    let url = format!("ws://{}/v1/rooms/bad/ws", sfu.http);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(WsMessage::Text("hello".into())).await.unwrap();
    assert_eq!(
        ws_error(&mut ws).await,
        Some(ErrorCode::Malformed),
        "text frame"
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let _ = ws.send(WsMessage::Binary(vec![1; 100_000].into())).await;
    assert_eq!(
        ws_error(&mut ws).await,
        Some(ErrorCode::TooLarge),
        "oversized message"
    );
    let bad_name = format!("ws://{}/v1/rooms/no%20spaces/ws", sfu.http);
    assert!(tokio_tungstenite::connect_async(&bad_name).await.is_err());
    let (status, _) = sfu.get("/v1/rooms/no%20spaces/ws").await;
    assert_eq!(status, 400);

    calm_room_is_fine(&mut sfu, &mut alice, &mut bob, "everything").await;
    // A newcomer still gets into the calm room.
    let mut carol = Peer::connect(&sfu, "carol", "calm", Transport::WebRtc).await;
    settled(&mut [&mut alice, &mut bob, &mut carol], 3, 60).await;
    assert!(sfu.metric("satsuma_errors_total{kind=\"too_large\"}").await >= 2);
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The error a WebSocket link gets before it closes.
async fn ws_error(ws: &mut Ws) -> Option<ErrorCode> {
    let wait = async {
        while let Some(Ok(message)) = ws.next().await {
            if let WsMessage::Binary(b) = message
                && let Ok(ToClient::Error { code, .. }) = ToClient::decode(&b)
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
