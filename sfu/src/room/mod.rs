//! One room: the delivery service's ordered log (`core::committer::Room`),
//! the roster of connections with their seats, and the media routes.
//!
//! The log and roster sit behind one short-held mutex, never held across an
//! `.await`. Intercom media reads a snapshot of the routes, so forwarding a
//! frame takes no lock that signalling holds.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use satsuma_core::committer::{DsError, Room as Log, RoomConfig};
use satsuma_core::media::Codec;
use satsuma_core::wire::{
    Blob, Capabilities, ConnId, ErrorCode, Media, Message as _, RoomName, Signal, TOKEN_LEN,
    ToClient, ToServer, Transport, limits,
};
use tokio::sync::{Notify, mpsc, watch};

use crate::hub::Hub;
use crate::metrics::{Drop, Error as ErrorKind, Kind};
use crate::rtc::{Outbox, RtcRoom};

/// A frame of media queued for an intercom link, with its arrival time and
/// kind (for the metrics).
pub(crate) type MediaItem = (Bytes, Instant, Kind);

/// The sending side of a live link, as the room sees it.
#[derive(Debug, Clone)]
pub(crate) struct LinkTx {
    /// Control messages, encoded; never dropped (a link that lets this fill
    /// up is closed).
    pub control: mpsc::Sender<Bytes>,
    /// Intercom media, encoded; dropped when full.
    pub media: mpsc::Sender<MediaItem>,
    /// Told to close, with the last message to send.
    pub close: watch::Sender<Option<ToClient>>,
}

impl LinkTx {
    fn close_with(&self, code: ErrorCode, text: &str) {
        let _ = self.close.send(Some(error(code, text)));
    }
}

/// An error message for a client.
pub(crate) fn error(code: ErrorCode, text: &str) -> ToClient {
    let text = text.as_bytes();
    let text = &text[..text.len().min(limits::TEXT)];
    ToClient::Error {
        code,
        text: Blob::copy_from(text).unwrap_or_default(),
    }
}

#[derive(Debug)]
struct Seat {
    transport: Transport,
    token: [u8; TOKEN_LEN],
    link: Option<LinkTx>,
    /// Control messages sent on this seat, the newest `resume_history`.
    history: VecDeque<Bytes>,
    /// How many control messages were sent before `history[0]`.
    history_start: u64,
    /// Since when no link has carried this seat.
    detached_since: Option<Instant>,
}

impl Seat {
    fn sent(&self) -> u64 {
        self.history_start + self.history.len() as u64
    }
}

#[derive(Debug)]
struct Inner {
    log: Log,
    seats: HashMap<ConnId, Seat>,
    members: Vec<(ConnId, Transport)>,
    /// The last message encoded, to encode a broadcast once.
    last: Option<(ToClient, Bytes)>,
    /// Someone has joined: from now on an empty room closes.
    opened: bool,
    closed: bool,
}

/// Where intercom media goes: the wire members' media queues.
#[derive(Debug, Default)]
struct Routes {
    wire: Vec<(ConnId, mpsc::Sender<MediaItem>)>,
    members: Vec<ConnId>,
    /// Whether any member is on WebRTC: only then does intercom audio
    /// cross the bridge.
    desktops: bool,
}

/// Why a join or resume was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The room has no place.
    Full,
    /// The room closed meanwhile.
    Closed,
    /// No seat to resume, or the token or position does not match.
    Resume,
}

/// One room.
#[derive(Debug)]
pub(crate) struct Room {
    name: RoomName,
    hub: Weak<Hub>,
    inner: Mutex<Inner>,
    routes: RwLock<Arc<Routes>>,
    wake: Notify,
    members_tx: watch::Sender<Vec<(ConnId, Transport)>>,
    pub(crate) rtc: Arc<RtcRoom>,
}

struct RoomOutbox(Weak<Room>);

impl Outbox for RoomOutbox {
    fn signal(&self, conn: ConnId, signal: Signal) {
        if let Some(room) = self.0.upgrade() {
            room.send_direct(conn, &ToClient::Rtc(signal));
        }
    }

    fn wire_media(&self, media: Media) {
        if let Some(room) = self.0.upgrade() {
            let routes = room.routes();
            if routes.members.contains(&media.sender) {
                room.to_intercoms(&routes, media, Instant::now());
            } else if let Some(hub) = room.hub.upgrade() {
                hub.metrics.dropped(Drop::NotMember);
            }
        }
    }
}

impl Room {
    pub(crate) fn new(name: RoomName, hub: &Arc<Hub>) -> Arc<Self> {
        let config = RoomConfig {
            commit_deadline: Duration::from_millis(hub.config.rooms.commit_deadline_ms),
            max_connections: hub.config.limits.max_room_connections,
        };
        let (members_tx, members_rx) = watch::channel(Vec::new());
        let room = Arc::new_cyclic(|weak: &Weak<Room>| Room {
            name,
            hub: Arc::downgrade(hub),
            inner: Mutex::new(Inner {
                log: Log::new(config),
                seats: HashMap::new(),
                members: Vec::new(),
                last: None,
                opened: false,
                closed: false,
            }),
            routes: RwLock::new(Arc::new(Routes::default())),
            wake: Notify::new(),
            members_tx,
            rtc: hub.rtc.room(Arc::new(RoomOutbox(weak.clone()))),
        });
        tokio::spawn(Arc::clone(&room).run_timers());
        tokio::spawn(Arc::clone(&room).run_members(members_rx));
        room
    }

    pub(crate) fn name(&self) -> &RoomName {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug; the state is still
        // the last consistent one, so carry on with it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> satsuma_core::Instant {
        let since = self
            .hub
            .upgrade()
            .map_or(Duration::ZERO, |h| h.started.elapsed());
        satsuma_core::Instant::from_micros(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
    }

    /// A new connection joins: its seat, its id, and the log from here on.
    pub(crate) fn join(
        self: &Arc<Self>,
        key_package: Blob<{ limits::KEY_PACKAGE }>,
        capabilities: Capabilities,
        link: LinkTx,
    ) -> Result<ConnId, Refusal> {
        let now = self.now();
        let mut inner = self.lock();
        if inner.closed {
            return Err(Refusal::Closed);
        }
        let conn = inner
            .log
            .handle_join(now, key_package, capabilities)
            .map_err(|_| Refusal::Full)?;
        let mut token = [0; TOKEN_LEN];
        // Without OS randomness the seat simply cannot be resumed: an
        // all-zero token is refused below.
        let _ = getrandom::fill(&mut token);
        inner.opened = true;
        inner.seats.insert(
            conn,
            Seat {
                transport: capabilities.transport,
                token,
                link: Some(link),
                history: VecDeque::new(),
                history_start: 0,
                detached_since: None,
            },
        );
        self.flush(&mut inner);
        // After `Hello`, which `flush` sent.
        let millis = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let ping = self.hub.upgrade().map_or(Duration::from_secs(10), |h| {
            h.config.limits.idle_timeout() / 3
        });
        let resumable = ToClient::Resumable {
            token,
            grace_ms: millis(self.grace()),
            ping_ms: millis(ping),
        };
        Self::send_to(&mut inner, conn, &resumable, None);
        drop(inner);
        self.wake.notify_one();
        Ok(conn)
    }

    /// A new connection takes over seat `conn`.
    pub(crate) fn resume(
        &self,
        conn: ConnId,
        token: [u8; TOKEN_LEN],
        received: u64,
        link: LinkTx,
    ) -> Result<Transport, Refusal> {
        let mut inner = self.lock();
        let Some(seat) = inner.seats.get_mut(&conn) else {
            return Err(Refusal::Resume);
        };
        let token_ok = token != [0; TOKEN_LEN]
            && token
                .iter()
                .zip(&seat.token)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !token_ok || received < seat.history_start || received > seat.sent() {
            return Err(Refusal::Resume);
        }
        if let Some(old) = seat.link.take() {
            old.close_with(ErrorCode::Closed, "replaced by a resumed connection");
        }
        let missed = usize::try_from(received - seat.history_start).unwrap_or(usize::MAX);
        let mut ok = link.control.try_send(encode(&ToClient::Resumed)).is_ok();
        for bytes in seat.history.iter().skip(missed) {
            ok &= link.control.try_send(bytes.clone()).is_ok();
        }
        if !ok {
            return Err(Refusal::Resume);
        }
        seat.link = Some(link);
        seat.detached_since = None;
        let transport = seat.transport;
        drop(inner);
        self.update_routes();
        Ok(transport)
    }

    /// A control message from `conn`, for the log.
    pub(crate) fn control(&self, conn: ConnId, message: ToServer) -> Result<(), DsError> {
        let now = self.now();
        let mut inner = self.lock();
        let leaving = matches!(message, ToServer::Leave);
        let result = inner.log.handle_message(now, conn, message);
        if leaving {
            self.forget(&mut inner, conn);
        }
        self.flush(&mut inner);
        drop(inner);
        self.wake.notify_one();
        result
    }

    /// The link carrying `conn` is gone; the seat waits for a resume.
    pub(crate) fn detach(&self, conn: ConnId, link: &LinkTx) {
        let mut inner = self.lock();
        if let Some(seat) = inner.seats.get_mut(&conn)
            && seat
                .link
                .as_ref()
                .is_some_and(|l| l.close.same_channel(&link.close))
        {
            seat.link = None;
            seat.detached_since = Some(Instant::now());
        }
        drop(inner);
        self.update_routes();
        self.wake.notify_one();
    }

    /// An intercom member's media frame.
    pub(crate) fn media(&self, conn: ConnId, mut media: Media, arrived: Instant) {
        let routes = self.routes();
        if !routes.members.contains(&conn) {
            if let Some(hub) = self.hub.upgrade() {
                hub.metrics.dropped(Drop::NotMember);
            }
            return;
        }
        media.sender = conn;
        // Video never crosses to desktops from an intercom link (intercoms
        // publish audio; the bridge carries audio only).
        if routes.desktops && media.codec != Codec::Vp8 {
            self.rtc.forward_wire(&media);
        }
        self.to_intercoms(&routes, media, arrived);
    }

    fn routes(&self) -> Arc<Routes> {
        Arc::clone(&self.routes.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// `media`, from a member (the caller checked, on the same `routes`),
    /// to every intercom member but its sender: encoded once, only if
    /// someone takes it, with no copy of the payload.
    fn to_intercoms(&self, routes: &Routes, media: Media, arrived: Instant) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let sender = media.sender;
        let video = media.codec == Codec::Vp8;
        let kind = if video { Kind::Video } else { Kind::Audio };
        let message = ToClient::Media(media);
        let mut bytes = None;
        for (conn, tx) in &routes.wire {
            if *conn == sender {
                continue;
            }
            // A link that falls behind loses video first: a half-full queue
            // still takes audio.
            if video && tx.capacity() * 2 < tx.max_capacity() {
                hub.metrics.dropped(Drop::SlowSubscriber);
                continue;
            }
            let b = bytes.get_or_insert_with(|| encode(&message));
            if tx.try_send((b.clone(), arrived, kind)).is_err() {
                hub.metrics.dropped(Drop::SlowSubscriber);
            }
        }
    }

    /// A message outside the log (signalling) to `conn`, if it is attached.
    pub(crate) fn send_direct(&self, conn: ConnId, message: &ToClient) {
        let mut inner = self.lock();
        if let Some(link) = inner.seats.get_mut(&conn).and_then(|s| s.link.as_ref())
            && link.control.try_send(encode(message)).is_err()
        {
            link.close_with(ErrorCode::Overloaded, "too many messages queued");
        }
    }

    /// Tells every connection the server is going away.
    pub(crate) fn shut_down(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        for seat in inner.seats.values() {
            if let Some(link) = &seat.link {
                link.close_with(ErrorCode::ShuttingDown, "the server is shutting down");
            }
        }
        drop(inner);
        self.wake.notify_one();
    }

    fn grace(&self) -> Duration {
        self.hub.upgrade().map_or(Duration::ZERO, |h| {
            Duration::from_millis(h.config.rooms.reconnect_grace_ms)
        })
    }

    fn history_len(&self) -> usize {
        self.hub
            .upgrade()
            .map_or(1, |h| h.config.rooms.resume_history)
    }

    /// Sends what the log produced and updates the routes.
    fn flush(&self, inner: &mut Inner) {
        let history = self.history_len();
        while let Some((conn, message)) = inner.log.poll_transmit() {
            Self::send_to(inner, conn, &message, Some(history));
        }
        let members: Vec<(ConnId, Transport)> = inner
            .seats
            .iter()
            .filter(|(conn, _)| inner.log.is_member(**conn))
            .map(|(conn, seat)| (*conn, seat.transport))
            .collect();
        let mut members = members;
        members.sort_unstable_by_key(|(c, _)| *c);
        if members != inner.members {
            if let Some(hub) = self.hub.upgrade() {
                hub.metrics
                    .members_add(members.len() as i64 - inner.members.len() as i64);
            }
            inner.members.clone_from(&members);
            let _ = self.members_tx.send(members);
            self.update_routes_locked(inner);
        }
    }

    /// Encodes `message` (once for a broadcast) and sends it to `conn`;
    /// control messages enter the seat's history.
    fn send_to(inner: &mut Inner, conn: ConnId, message: &ToClient, history: Option<usize>) {
        let bytes = match &inner.last {
            Some((last, bytes)) if last == message => bytes.clone(),
            _ => {
                let bytes = encode(message);
                inner.last = Some((message.clone(), bytes.clone()));
                bytes
            }
        };
        let Some(seat) = inner.seats.get_mut(&conn) else {
            return;
        };
        if let Some(max) = history.filter(|_| message.is_control()) {
            seat.history.push_back(bytes.clone());
            while seat.history.len() > max {
                seat.history.pop_front();
                seat.history_start += 1;
            }
        }
        if let Some(link) = &seat.link
            && link.control.try_send(bytes).is_err()
        {
            // It does not keep up; the seat stays for a resume.
            link.close_with(ErrorCode::Overloaded, "too many messages queued");
        }
    }

    fn forget(&self, inner: &mut Inner, conn: ConnId) {
        if let Some(seat) = inner.seats.remove(&conn) {
            if let Some(link) = seat.link {
                link.close_with(ErrorCode::Closed, "left the room");
            }
            if seat.transport == Transport::WebRtc {
                let rtc = Arc::clone(&self.rtc);
                tokio::spawn(async move { rtc.remove_peer(conn).await });
            }
        }
        inner.log.handle_disconnect(self.now(), conn);
    }

    fn update_routes(&self) {
        let inner = self.lock();
        self.update_routes_locked(&inner);
    }

    fn update_routes_locked(&self, inner: &Inner) {
        let wire = inner
            .members
            .iter()
            .filter(|(_, t)| *t == Transport::Wire)
            .filter_map(|(conn, _)| {
                let link = inner.seats.get(conn)?.link.as_ref()?;
                Some((*conn, link.media.clone()))
            })
            .collect();
        let members = inner.members.iter().map(|(c, _)| *c).collect();
        let desktops = inner.members.iter().any(|(_, t)| *t == Transport::WebRtc);
        *self.routes.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Routes {
            wire,
            members,
            desktops,
        });
    }

    /// The commit deadline and the reconnect grace periods.
    async fn run_timers(self: Arc<Self>) {
        loop {
            let Some(deadline) = self.tick() else {
                self.close().await;
                return;
            };
            match deadline {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at.into()) => {}
                        () = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }

    /// Handles what is due; the next deadline, or `None` once the room is
    /// empty and closed.
    fn tick(&self) -> Option<Option<Instant>> {
        let now = self.now();
        let grace = self.grace();
        let mut inner = self.lock();
        inner.log.handle_timeout(now);
        let expired: Vec<ConnId> = inner
            .seats
            .iter()
            .filter(|(_, s)| s.detached_since.is_some_and(|t| t.elapsed() >= grace))
            .map(|(c, _)| *c)
            .collect();
        for conn in expired {
            tracing::info!(room = %self.name.as_str(), conn = conn.0, "reconnect grace over: seat released");
            self.forget(&mut inner, conn);
        }
        self.flush(&mut inner);
        if (inner.opened && inner.seats.is_empty()) || inner.closed {
            inner.closed = true;
            return None;
        }
        let log_deadline = inner
            .log
            .poll_timeout()
            .map(|at| Instant::now() + at.saturating_duration_since(now));
        let grace_deadline = inner
            .seats
            .values()
            .filter_map(|s| s.detached_since)
            .min()
            .map(|t| t + grace);
        Some(log_deadline.into_iter().chain(grace_deadline).min())
    }

    async fn close(&self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.remove_room(self);
        }
        let _ = self.members_tx.send(Vec::new());
        self.rtc.close().await;
        tracing::info!(room = %self.name.as_str(), "room closed");
    }

    /// Hands membership changes to the media plane, in order.
    async fn run_members(self: Arc<Self>, mut rx: watch::Receiver<Vec<(ConnId, Transport)>>) {
        while rx.changed().await.is_ok() {
            let members = rx.borrow_and_update().clone();
            let done = members.is_empty() && self.lock().closed;
            self.rtc.set_members(members).await;
            if done {
                return;
            }
        }
    }

    /// The connection is closed for a reason worth counting.
    pub(crate) fn count_error(&self, kind: ErrorKind) {
        if let Some(hub) = self.hub.upgrade() {
            hub.metrics.error(kind);
        }
    }
}

/// Encodes a message the SFU built; every field of one is within bounds, so
/// this cannot fail but for a bug, which gets an `Internal` error instead.
pub(crate) fn encode(message: &ToClient) -> Bytes {
    message
        .encode()
        .or_else(|_| error(ErrorCode::Internal, "message too large").encode())
        .map(Bytes::from)
        .unwrap_or_default()
}

/// The kind of a message, for metrics.
pub(crate) fn kind_of(message: &ToServer) -> Kind {
    match message {
        ToServer::Media(m) if m.codec == Codec::Vp8 => Kind::Video,
        ToServer::Media(_) => Kind::Audio,
        _ => Kind::Control,
    }
}
