//! One room: the delivery service's ordered log (`core::committer::Room`),
//! the roster of connections with their seats, and the media routes.
//!
//! The log and roster sit behind one short-held mutex, never held across an
//! `.await`. Intercom media reads a snapshot of the routes, so forwarding a
//! frame takes no lock that signalling holds.
//!
//! A room knows the server only through its [`RoomContext`]: settings,
//! metrics, the clock, the media plane, and a channel to report that it
//! closed.
//!
//! - `seats.rs`: each connection's seat: its link, and the resume state
//!   that `core::resume` keeps (token, history, grace);
//! - `routes.rs`: where intercom media goes, and the check that its KID
//!   names its sender;
//! - `timers.rs`: the log's deadline, the reconnect grace, closing.

mod context;
mod routes;
mod seats;
mod timers;

use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Instant;

use bytes::Bytes;
use satsuma_core::committer::{DsError, Request, Room as Log, RoomEvent, Senders};
use satsuma_core::media::Codec;
use satsuma_core::wire::{
    Blob, ConnId, ErrorCode, Join, LinkMsg, Media, Message as _, RoomName, Signal, TOKEN_LEN,
    ToClient, ToServer, Transport, Up, limits,
};
use tokio::sync::{Notify, mpsc, watch};

pub(crate) use self::context::{Closed, RoomContext, RoomSettings};
use self::routes::Routes;
use self::seats::{Seat, Seats};
use crate::metrics::{DropReason, ErrorKind, Kind};
use crate::refusals::Refusals;
use crate::rtc::{Outbox, RtcRoom};

/// A frame of media queued for an intercom link, with its arrival time and
/// kind (for the metrics).
pub(crate) type MediaItem = (Bytes, Instant, Kind);

/// The sending side of a live link, as the room sees it.
#[derive(Debug, Clone)]
pub(crate) struct LinkTx {
    /// Control messages, encoded; never dropped (a link that lets
    /// `control_limit` of them pile up is closed). The channel holds more
    /// than that: room for a resume's replay of a whole seat history on a
    /// new link, which a link closed for overload has missed more than
    /// `control_limit` of.
    pub control: mpsc::Sender<Bytes>,
    /// Control messages a live link may have queued (`limits.control_queue`).
    pub control_limit: usize,
    /// Intercom media, encoded; dropped when full.
    pub media: mpsc::Sender<MediaItem>,
    /// Told to close, with the last message to send.
    pub close: watch::Sender<Option<ToClient>>,
}

impl LinkTx {
    fn close_with(&self, code: ErrorCode, text: &str) {
        let _ = self.close.send(Some(error(code, text)));
    }

    /// Queues `bytes` unless `control_limit` messages are queued already;
    /// whether it was queued.
    fn queue(&self, bytes: Bytes) -> bool {
        let queued = self.control.max_capacity() - self.control.capacity();
        queued < self.control_limit && self.control.try_send(bytes).is_ok()
    }
}

/// An error message for a client: the link's, never counted for a resume.
pub(crate) fn error(code: ErrorCode, text: &str) -> ToClient {
    let text = text.as_bytes();
    let text = &text[..text.len().min(limits::TEXT)];
    ToClient::Link(LinkMsg::Error {
        code,
        text: Blob::copy_from(text).unwrap_or_default(),
    })
}

#[derive(Debug)]
struct Inner {
    log: Log,
    seats: Seats,
    /// The present members and their transports, by connection: what the
    /// media plane forwards, kept from the log's `RoomEvent`s.
    members: Vec<(ConnId, Transport)>,
    /// The log's [`Senders`] as the media paths have it.
    senders: Arc<Senders>,
    /// Someone has joined: from now on an empty room closes.
    opened: bool,
    /// The resume bytes this room last added to the server's total.
    resume_bytes: usize,
    closed: bool,
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
    /// Tells this room from a later one of the same name.
    id: u64,
    context: RoomContext,
    inner: Mutex<Inner>,
    routes: RwLock<Arc<Routes>>,
    wake: Notify,
    members_tx: watch::Sender<Vec<(ConnId, Transport)>>,
    /// Intercom frames refused by the sender check, for the log.
    refusals: Refusals,
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
            } else {
                room.context.metrics.dropped(DropReason::NotMember);
            }
        }
    }
}

impl Room {
    pub(crate) fn new(name: RoomName, id: u64, context: RoomContext) -> Arc<Self> {
        let (members_tx, members_rx) = watch::channel(Vec::new());
        let room = Arc::new_cyclic(|weak: &Weak<Room>| Room {
            name,
            id,
            rtc: context.rtc.room(Arc::new(RoomOutbox(weak.clone()))),
            inner: Mutex::new(Inner {
                log: Log::new(context.settings.log),
                seats: Seats::new(context.settings.seats),
                members: Vec::new(),
                senders: Arc::new(Senders::new()),
                opened: false,
                resume_bytes: 0,
                closed: false,
            }),
            routes: RwLock::new(Arc::new(Routes::default())),
            wake: Notify::new(),
            members_tx,
            refusals: Refusals::new(),
            context,
        });
        tokio::spawn(Arc::clone(&room).run_timers());
        tokio::spawn(Arc::clone(&room).run_members(members_rx));
        room
    }

    pub(crate) fn name(&self) -> &RoomName {
        &self.name
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Whether the room has closed (emptied, or the server is going away).
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug; the state is still
        // the last consistent one, so carry on with it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The time on the runtime's clock, the one `run_timers` sleeps on (the
    /// same as the system's, unless a test paused it).
    fn now(&self) -> satsuma_core::Instant {
        self.context
            .clock
            .at(tokio::time::Instant::now().into_std())
    }

    /// A new connection joins: its seat, its id, and the log from here on.
    pub(crate) fn join(self: &Arc<Self>, join: Join, link: LinkTx) -> Result<ConnId, Refusal> {
        let capabilities = join.capabilities;
        let now = self.now();
        let mut inner = self.lock();
        if inner.closed {
            return Err(Refusal::Closed);
        }
        let conn = inner
            .log
            .handle(now, None, Request::Join(join))
            .map_err(|_| Refusal::Full)?;
        let mut token = [0; TOKEN_LEN];
        // Without OS randomness the seat simply cannot be resumed: an
        // all-zero token is refused below.
        let _ = getrandom::fill(&mut token);
        inner.opened = true;
        inner.seats.open(
            conn,
            token,
            Seat {
                transport: capabilities.transport,
                link: Some(link),
            },
        );
        self.flush(&mut inner);
        // After `Hello`, which `flush` sent.
        let millis = |d: std::time::Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let settings = &self.context.settings;
        let resumable = ToClient::Link(LinkMsg::Resumable {
            token,
            grace_ms: millis(settings.seats.grace),
            ping_ms: millis(settings.ping),
        });
        if let Some(link) = inner.seats.get(conn).and_then(|s| s.link.as_ref()) {
            Self::send_link(link, encode(&resumable));
        }
        drop(inner);
        self.wake.notify_one();
        Ok(conn)
    }

    /// A new connection takes over seat `conn`: it is told how many of its
    /// control messages were handled, and sent those it missed.
    pub(crate) fn resume(
        &self,
        conn: ConnId,
        token: [u8; TOKEN_LEN],
        received: u64,
        link: LinkTx,
    ) -> Result<Transport, Refusal> {
        let now = self.now();
        let mut inner = self.lock();
        let resumed = match inner.seats.resume(conn, &token, received) {
            Ok(resumed) => resumed,
            Err(e) => {
                tracing::debug!(conn = conn.0, error = %e, "resume refused");
                return Err(Refusal::Resume);
            }
        };
        let answer = ToClient::Link(LinkMsg::Resumed {
            received: resumed.received,
        });
        // All or nothing: a client told `Resumed` must get the whole
        // replay, not part of it and then `ResumeFailed`. The new link's
        // queue is empty and holds a whole history (`LinkTx`).
        let replayed = 1 + resumed.missed.len();
        let fits = link.control.capacity() >= replayed;
        let mut ok = fits && link.control.try_send(encode(&answer)).is_ok();
        for bytes in resumed.missed {
            ok = ok && link.control.try_send(bytes.clone()).is_ok();
        }
        if !ok {
            // The new link could not take the replay: the seat stays
            // detached, and its grace goes on.
            inner.seats.detach(now, conn);
            return Err(Refusal::Resume);
        }
        let Some(seat) = inner.seats.get_mut(conn) else {
            return Err(Refusal::Resume);
        };
        if let Some(old) = seat.link.take() {
            old.close_with(ErrorCode::Closed, "replaced by a resumed connection");
        }
        // The replay sits on top of the live limit: the next message must
        // not find the queue over it before the client has read any.
        let mut link = link;
        link.control_limit = link.control_limit.saturating_add(replayed);
        seat.link = Some(link);
        let transport = seat.transport;
        drop(inner);
        self.update_routes();
        Ok(transport)
    }

    /// A control message from `conn`, for the log.
    pub(crate) fn control(&self, conn: ConnId, message: Up) -> Result<(), DsError> {
        let now = self.now();
        let mut inner = self.lock();
        let leaving = matches!(message, Up::Leave);
        // Counted whatever the log makes of it: the client sends again
        // only what never arrived.
        inner.seats.received(conn);
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
        let now = self.now();
        let mut inner = self.lock();
        if let Some(seat) = inner.seats.get_mut(conn)
            && seat
                .link
                .as_ref()
                .is_some_and(|l| l.close.same_channel(&link.close))
        {
            seat.link = None;
            inner.seats.detach(now, conn);
        }
        drop(inner);
        self.update_routes();
        self.wake.notify_one();
    }

    /// A message outside the log (signalling, the link's) to `conn`, if it
    /// is attached; never kept for a resume.
    pub(crate) fn send_direct(&self, conn: ConnId, message: &ToClient) {
        let inner = self.lock();
        if let Some(link) = inner.seats.get(conn).and_then(|s| s.link.as_ref())
            && !link.queue(encode(message))
        {
            link.close_with(ErrorCode::Overloaded, "too many messages queued");
        }
    }

    /// Tells every connection the server is going away.
    pub(crate) fn shut_down(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        for (_, seat) in inner.seats.iter() {
            if let Some(link) = &seat.link {
                link.close_with(ErrorCode::ShuttingDown, "the server is shutting down");
            }
        }
        drop(inner);
        self.wake.notify_one();
    }

    /// Sends what the log produced and updates the routes.
    fn flush(&self, inner: &mut Inner) {
        self.sync_senders(inner);
        while let Some(transmit) = inner.log.poll_transmit() {
            // Encoded once, whatever the number of recipients.
            let bytes = encode(&ToClient::Control(transmit.message));
            let recipients: Vec<ConnId> = inner
                .seats
                .iter()
                .map(|(conn, _)| conn)
                .filter(|conn| transmit.to.contains(*conn))
                .collect();
            for conn in recipients {
                // Every `Control` message is kept for a resume, so a resume
                // replays from the count the client keeps of them.
                inner.seats.sent(conn, bytes.clone());
                if let Some(link) = inner.seats.get(conn).and_then(|s| s.link.as_ref()) {
                    Self::send_link(link, bytes.clone());
                }
            }
        }
        let mut changed = false;
        while let Some(event) = inner.log.poll_event() {
            let at = |members: &[(ConnId, Transport)], conn| {
                members.binary_search_by_key(&conn, |(c, _)| *c)
            };
            match event {
                RoomEvent::MemberAdded(conn) => {
                    if let (Err(i), Some(seat)) = (at(&inner.members, conn), inner.seats.get(conn))
                    {
                        let transport = seat.transport;
                        inner.members.insert(i, (conn, transport));
                        self.context.metrics.members_add(1);
                        changed = true;
                    }
                }
                RoomEvent::MemberRemoved(conn) => {
                    if let Ok(i) = at(&inner.members, conn) {
                        inner.members.remove(i);
                        self.context.metrics.members_add(-1);
                        changed = true;
                    }
                }
            }
        }
        if changed {
            let _ = self.members_tx.send(inner.members.clone());
            self.update_routes_locked(inner);
        }
        self.account_resume_bytes(inner);
    }

    /// Brings the server's total of resume bytes up to date with this
    /// room's, and past `rooms.resume_server_bytes` gives up this room's
    /// oldest messages until the total fits again.
    fn account_resume_bytes(&self, inner: &mut Inner) {
        let signed = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let now = inner.seats.bytes();
        let total = self
            .context
            .metrics
            .resume_bytes_add(signed(now).saturating_sub(signed(inner.resume_bytes)));
        let limit = self.context.settings.resume_server_bytes;
        let over = usize::try_from(total)
            .unwrap_or(usize::MAX)
            .saturating_sub(limit);
        if over > 0 {
            let freed = inner.seats.trim(now.saturating_sub(over));
            self.context.metrics.resume_bytes_add(-signed(freed));
        }
        inner.resume_bytes = inner.seats.bytes();
    }

    /// Hands the log's [`Senders`] to both media paths when an entry
    /// changed them, before that entry leaves: a member seals in a new
    /// epoch only once it has the entry, so its first frame of the epoch
    /// always finds the epoch here.
    fn sync_senders(&self, inner: &mut Inner) {
        if *inner.senders == *inner.log.senders() {
            return;
        }
        inner.senders = Arc::new(inner.log.senders().clone());
        self.rtc.set_senders(Arc::clone(&inner.senders));
        self.update_routes_locked(inner);
    }

    /// Queues encoded control bytes on a live link.
    fn send_link(link: &LinkTx, bytes: Bytes) {
        if !link.queue(bytes) {
            // It does not keep up; the seat stays for a resume.
            link.close_with(ErrorCode::Overloaded, "too many messages queued");
        }
    }

    fn forget(&self, inner: &mut Inner, conn: ConnId) {
        match inner.seats.close(conn) {
            Some(seat) => self.release(inner, conn, seat),
            None => inner.log.handle_disconnect(self.now(), conn),
        }
    }

    /// A closed seat: its link and peer connection go, and the log hears
    /// that the connection is gone.
    fn release(&self, inner: &mut Inner, conn: ConnId, seat: Seat) {
        if let Some(link) = seat.link {
            link.close_with(ErrorCode::Closed, "left the room");
        }
        if seat.transport == Transport::WebRtc {
            let rtc = Arc::clone(&self.rtc);
            tokio::spawn(async move { rtc.remove_peer(conn).await });
        }
        inner.log.handle_disconnect(self.now(), conn);
    }

    /// The connection is closed for a reason worth counting.
    pub(crate) fn count_error(&self, kind: ErrorKind) {
        self.context.metrics.error(kind);
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
