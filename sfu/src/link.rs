//! One client connection, whatever carries it: the WebSocket of a desktop
//! client or the TCP link of an intercom. Both speak `core::wire`.
//!
//! A reader loop enforces the limits and hands messages to the room; a
//! writer task drains the connection's queues, control before media.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use satsuma_core::committer::DsError;
use satsuma_core::wire::{
    ConnId, ErrorCode, LinkMsg, Message as _, Open, RoomName, ToClient, ToServer, Transport, Up,
};
use tokio::sync::{mpsc, watch};

use crate::hub::{Admission, Hub, HubError};
use crate::metrics::{DropReason, ErrorKind, Kind};
use crate::room::{LinkTx, MediaItem, Refusal, Room, encode, error, kind_of};

/// Why reading the next message failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// A message over the size limit (its announced length).
    TooLarge(usize),
    /// A frame that is not a message at all.
    Malformed(&'static str),
    /// The transport failed.
    Io(String),
}

/// The receiving half of a link.
pub(crate) trait LinkReader: Send + 'static {
    /// The next message's bytes, empty for a transport keep-alive; `None`
    /// when the peer closed the link.
    fn next(&mut self) -> impl Future<Output = Result<Option<Bytes>, ReadError>> + Send;
}

/// The sending half of a link.
pub(crate) trait LinkWriter: Send + 'static {
    /// Queues one message.
    fn write(&mut self, message: Bytes) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Sends what is queued.
    fn flush(&mut self) -> impl Future<Output = std::io::Result<()>> + Send;
    /// A transport-level keep-alive, where the transport has one.
    fn ping(&mut self) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Closes the link.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// A token bucket.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at: now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The time on the runtime's clock, which the link's timeouts use too (the
/// system's, unless a test paused it).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Serves one connection until it closes. `url_room` is the room named by
/// the WebSocket's path, which the `Join` must match.
pub(crate) async fn serve<R: LinkReader, W: LinkWriter>(
    hub: Arc<Hub>,
    mut reader: R,
    writer: W,
    url_room: Option<RoomName>,
    peer: SocketAddr,
    _admission: Arc<Admission>,
) {
    let limits = hub.config.limits;
    // A live link is closed once `control_queue` messages wait; the channel
    // also holds a resume's replay of a whole seat history (`LinkTx`).
    let capacity = limits
        .control_queue
        .saturating_add(hub.config.rooms.resume_history)
        .saturating_add(1);
    let (control_tx, control_rx) = mpsc::channel(capacity);
    let (media_tx, media_rx) = mpsc::channel(limits.media_queue);
    let (close_tx, close_rx) = watch::channel(None);
    let link = LinkTx {
        control: control_tx,
        control_limit: limits.control_queue,
        media: media_tx,
        close: close_tx,
    };
    let mut writing = tokio::spawn(write_loop(
        Arc::clone(&hub),
        writer,
        control_rx,
        media_rx,
        close_rx,
    ));

    let (room, conn, transport) = match handshake(&hub, &mut reader, &link, url_room.as_ref()).await
    {
        Ok(joined) => joined,
        Err((code, text, kind)) => {
            hub.metrics.error(kind);
            tracing::debug!(%peer, ?code, text, "refused before joining");
            finish(&link, &mut writing, code, &text).await;
            return;
        }
    };
    tracing::info!(%peer, room = %room.name().as_str(), conn = conn.0, ?transport, "connected");

    let outcome = read_loop(&hub, &room, conn, transport, &mut reader, &mut writing).await;
    match outcome {
        Outcome::Left => {
            tracing::info!(%peer, conn = conn.0, "left");
            finish(&link, &mut writing, ErrorCode::Closed, "left the room").await;
        }
        Outcome::Lost => {
            tracing::info!(%peer, conn = conn.0, "connection lost; the seat waits for a resume");
            room.detach(conn, &link);
        }
        Outcome::Refused(code, text, kind) => {
            room.count_error(kind);
            tracing::info!(%peer, conn = conn.0, ?code, text, "closing the connection");
            room.detach(conn, &link);
            finish(&link, &mut writing, code, &text).await;
        }
    }
}

type Refused = (ErrorCode, String, ErrorKind);

async fn handshake<R: LinkReader>(
    hub: &Arc<Hub>,
    reader: &mut R,
    link: &LinkTx,
    url_room: Option<&RoomName>,
) -> Result<(Arc<Room>, ConnId, Transport), Refused> {
    let wait = Duration::from_millis(hub.config.limits.handshake_timeout_ms);
    // One deadline for the whole handshake, however many clock questions
    // come before the `Open`.
    let open = match tokio::time::timeout(wait, read_open(hub, reader, link)).await {
        Err(_) => {
            return Err((
                ErrorCode::Idle,
                "no Join or Resume in time".into(),
                ErrorKind::Idle,
            ));
        }
        Ok(open) => open?,
    };
    let name = match &open {
        Open::Join(join) => &join.room,
        Open::Resume { room, .. } => room,
    };
    if url_room.is_some_and(|r| r != name) {
        return Err((
            ErrorCode::Unexpected,
            "the room differs from the URL's".into(),
            ErrorKind::Unexpected,
        ));
    }
    let join = match open {
        Open::Join(join) => join,
        Open::Resume {
            room: name,
            conn,
            token,
            received,
        } => {
            let refused = || {
                (
                    ErrorCode::ResumeFailed,
                    "no seat to resume: join afresh".into(),
                    ErrorKind::Resume,
                )
            };
            let room = hub.existing_room(&name).ok_or_else(refused)?;
            let transport = room
                .resume(conn, token, received, link.clone())
                .map_err(|_| refused())?;
            if transport == Transport::WebRtc {
                room.rtc.resend_offer(conn).await;
            }
            return Ok((room, conn, transport));
        }
    };
    let capabilities = join.capabilities;
    // A room closing just now is replaced by a fresh one.
    for _ in 0..2 {
        let room = hub.room(&join.room).map_err(|e| match e {
            HubError::TooManyRooms => (
                ErrorCode::Overloaded,
                "too many rooms".into(),
                ErrorKind::Full,
            ),
            HubError::ShuttingDown => (
                ErrorCode::ShuttingDown,
                "shutting down".into(),
                ErrorKind::Full,
            ),
        })?;
        match room.join(join.clone(), link.clone()) {
            Ok(conn) => {
                if capabilities.transport == Transport::WebRtc
                    && let Err(e) = room.rtc.add_peer(conn).await
                {
                    tracing::warn!(conn = conn.0, error = %e, "no peer connection");
                    hub.metrics.error(ErrorKind::Rtc);
                }
                return Ok((room, conn, capabilities.transport));
            }
            Err(Refusal::Closed) => continue,
            Err(_) => {
                return Err((
                    ErrorCode::RoomFull,
                    "the room is full".into(),
                    ErrorKind::Full,
                ));
            }
        }
    }
    Err((
        ErrorCode::Overloaded,
        "the room keeps closing".into(),
        ErrorKind::Full,
    ))
}

/// A client without a wall clock may ask for the SFU's before it joins
/// (its key package carries a lifetime): this many times at most.
const CLOCK_QUESTIONS: usize = 4;

/// Reads up to the connection's `Open`, answering each `Ping` before it
/// with the SFU's clock ([`LinkMsg::Clock`]).
async fn read_open<R: LinkReader>(
    hub: &Arc<Hub>,
    reader: &mut R,
    link: &LinkTx,
) -> Result<Open, Refused> {
    for _ in 0..=CLOCK_QUESTIONS {
        let bytes = match reader.next().await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err((ErrorCode::Closed, "closed".into(), ErrorKind::Io)),
            Err(e) => return Err(read_refusal(e)),
        };
        hub.metrics.received(Kind::Control, bytes.len());
        hub.tap.record(&bytes);
        let message = ToServer::decode(&bytes)
            .map_err(|e| (ErrorCode::Malformed, e.to_string(), ErrorKind::Malformed))?;
        match message {
            ToServer::Open(open) => return Ok(open),
            ToServer::Ping { nonce } => {
                let unix_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                let clock = ToClient::Link(LinkMsg::Clock { nonce, unix_ms });
                // A fresh link's queue is empty: the answer always fits.
                if let Ok(bytes) = clock.encode() {
                    let _ = link.control.try_send(bytes.into());
                }
            }
            _ => break,
        }
    }
    Err((
        ErrorCode::Unexpected,
        format!(
            "the first message must be Join or Resume (after at most {CLOCK_QUESTIONS} clock questions)"
        ),
        ErrorKind::Unexpected,
    ))
}

enum Outcome {
    Left,
    Lost,
    Refused(ErrorCode, String, ErrorKind),
}

async fn read_loop<R: LinkReader>(
    hub: &Arc<Hub>,
    room: &Arc<Room>,
    conn: ConnId,
    transport: Transport,
    reader: &mut R,
    writing: &mut tokio::task::JoinHandle<()>,
) -> Outcome {
    let limits = hub.config.limits;
    let mut control = Bucket::new(limits.control_per_second, limits.control_burst);
    let mut media = Bucket::new(limits.media_per_second, limits.media_burst);
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(limits.idle_timeout(), reader.next()) => next,
            _ = &mut *writing => return Outcome::Lost,
        };
        let bytes = match next {
            Err(_) => {
                return Outcome::Refused(
                    ErrorCode::Idle,
                    "idle for too long".into(),
                    ErrorKind::Idle,
                );
            }
            Ok(Ok(Some(bytes))) => bytes,
            Ok(Ok(None)) => return Outcome::Lost,
            Ok(Err(ReadError::Io(_))) => return Outcome::Lost,
            Ok(Err(e)) => {
                let (code, text, kind) = read_refusal(e);
                return Outcome::Refused(code, text, kind);
            }
        };
        if bytes.is_empty() {
            // A transport keep-alive (a WebSocket pong).
            continue;
        }
        let arrived = now();
        hub.tap.record(&bytes);
        let message = match ToServer::decode(&bytes) {
            Ok(message) => message,
            Err(e) => {
                hub.metrics.received(Kind::Control, bytes.len());
                return Outcome::Refused(ErrorCode::Malformed, e.to_string(), ErrorKind::Malformed);
            }
        };
        let kind = kind_of(&message);
        hub.metrics.received(kind, bytes.len());
        match message {
            ToServer::Media(frame) => {
                if transport != Transport::Wire {
                    return Outcome::Refused(
                        ErrorCode::Unexpected,
                        "WebRTC clients send media over their peer connection".into(),
                        ErrorKind::Unexpected,
                    );
                }
                if media.take(arrived) {
                    room.media(conn, frame, arrived);
                } else {
                    hub.metrics.dropped(DropReason::RateLimited);
                }
                continue;
            }
            _ if !control.take(arrived) => {
                return Outcome::Refused(
                    ErrorCode::RateLimited,
                    "too many messages".into(),
                    ErrorKind::RateLimited,
                );
            }
            ToServer::Open(_) => {
                return Outcome::Refused(
                    ErrorCode::TooManyRooms,
                    "one room per connection".into(),
                    ErrorKind::Unexpected,
                );
            }
            ToServer::Ping { nonce } => {
                room.send_direct(conn, &ToClient::Link(LinkMsg::Pong { nonce }));
            }
            ToServer::Rtc(signal) => {
                if transport != Transport::WebRtc {
                    return Outcome::Refused(
                        ErrorCode::Unexpected,
                        "no peer connection".into(),
                        ErrorKind::Unexpected,
                    );
                }
                // Counted by the media plane.
                if let Err(e) = room.rtc.handle_signal(conn, signal).await {
                    room.send_direct(conn, &error(ErrorCode::Unexpected, &e.to_string()));
                }
            }
            ToServer::Control(Up::Leave) => {
                let _ = room.control(conn, Up::Leave);
                return Outcome::Left;
            }
            ToServer::Control(message) => match room.control(conn, message) {
                Ok(()) => {}
                // Refusals the log answers itself (`Rejected`,
                // `KeyPackageRefused`):
                // a race any member can lose, not a fault.
                Err(DsError::Log(_) | DsError::Refused | DsError::RoomFull) => {}
                Err(DsError::UnknownConnection(_)) => {
                    return Outcome::Refused(
                        ErrorCode::Closed,
                        "the seat is gone".into(),
                        ErrorKind::Unexpected,
                    );
                }
                Err(e) => {
                    hub.metrics.error(ErrorKind::Unexpected);
                    room.send_direct(conn, &error(ErrorCode::Unexpected, &e.to_string()));
                }
            },
        }
    }
}

fn read_refusal(e: ReadError) -> Refused {
    match e {
        ReadError::TooLarge(n) => (
            ErrorCode::TooLarge,
            format!("message of {n} bytes is over the limit"),
            ErrorKind::TooLarge,
        ),
        ReadError::Malformed(why) => (ErrorCode::Malformed, why.into(), ErrorKind::Malformed),
        ReadError::Io(why) => (ErrorCode::Closed, why, ErrorKind::Io),
    }
}

/// Sends a last error and waits (briefly) for the writer to close the link.
async fn finish(
    link: &LinkTx,
    writing: &mut tokio::task::JoinHandle<()>,
    code: ErrorCode,
    text: &str,
) {
    let _ = link.close.send(Some(error(code, text)));
    if tokio::time::timeout(Duration::from_secs(2), &mut *writing)
        .await
        .is_err()
    {
        writing.abort();
    }
}

async fn write_loop<W: LinkWriter>(
    hub: Arc<Hub>,
    mut writer: W,
    mut control: mpsc::Receiver<Bytes>,
    mut media: mpsc::Receiver<MediaItem>,
    mut close: watch::Receiver<Option<ToClient>>,
) {
    let metrics = Arc::clone(&hub.metrics);
    let mut ping = tokio::time::interval(hub.config.limits.idle_timeout() / 3);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        let result = tokio::select! {
            biased;
            changed = close.changed() => {
                let last = changed.ok().and_then(|()| close.borrow_and_update().clone());
                // Control messages queued before the close go first (a
                // member let go reads its own `Left`), unless the close is
                // because the queue is overloaded.
                let overloaded = matches!(
                    last,
                    Some(ToClient::Link(LinkMsg::Error { code: ErrorCode::Overloaded, .. }))
                );
                while !overloaded && let Ok(bytes) = control.try_recv() {
                    metrics.sent(Kind::Control, bytes.len());
                    if writer.write(bytes).await.is_err() {
                        break;
                    }
                }
                if let Some(last) = last {
                    let bytes = encode(&last);
                    let _ = writer.write(bytes).await;
                    let _ = writer.flush().await;
                }
                writer.close().await;
                return;
            }
            Some(bytes) = control.recv() => {
                metrics.sent(Kind::Control, bytes.len());
                writer.write(bytes).await
            }
            Some((bytes, arrived, kind)) = media.recv() => {
                let len = bytes.len();
                let result = writer.write(bytes).await;
                metrics.sent(kind, len);
                metrics.forwarded_after(now().saturating_duration_since(arrived));
                result
            }
            _ = ping.tick() => writer.ping().await,
        };
        // Flush once the queues are empty, so a burst goes out in one write.
        let result = match result {
            Ok(()) if control.is_empty() && media.is_empty() => writer.flush().await,
            other => other,
        };
        if result.is_err() {
            writer.close().await;
            return;
        }
    }
}
