//! One member's link to the SFU, without IO: what every client does between
//! its transport and its [`Member`], written once.
//!
//! A [`Connection`] owns the member and its resume [`Cursor`]. The driver
//! (tokio on a desktop, embassy on the intercom) opens a transport, calls
//! [`Connection::link_up`], feeds each message it reads to
//! [`Connection::handle_message`], writes what [`Connection::poll_transmit`]
//! gives, and wakes it at [`Connection::poll_timeout`]. The connection:
//! - asks the SFU for the wall clock before joining, when the device has
//!   none ([`LinkConfig::clock_from_sfu`]): an MLS key package carries a
//!   lifetime, and a committer refuses one dated 1970;
//! - takes the seat over on a new transport ([`Open::Resume`]) and sends
//!   again the control messages the SFU missed, or joins afresh when the
//!   seat is gone;
//! - keeps an idle transport alive with pings, as often as the SFU asks;
//! - tells the driver to replace the transport ([`LinkEvent::Reconnect`])
//!   when it is no use any more: the SFU refused the resume, or the member
//!   fell out of the group and must enter through the lobby again.
//!
//! The media path stays with the driver: it seals and opens frames with
//! the keys [`Member::hand_over_keys`] gives it, and sends them with
//! [`Connection::encode_media`].
//!
//! # Example
//!
//! ```ignore
//! let mut link = Connection::new(member, LinkConfig::default());
//! link.link_up(now)?;
//! loop {
//!     while let Some(body) = link.poll_transmit() {
//!         transport.write_framed(&body)?;
//!     }
//!     while let Some(event) = link.poll_event() { /* show it */ }
//!     match transport.read_until(link.poll_timeout()) {
//!         Read::Message(bytes) => link.handle_message(now, &bytes)?,
//!         Read::Timeout => link.handle_timeout(now),
//!         Read::Closed => { link.link_down(now); /* reconnect, then link_up */ }
//!     }
//! }
//! ```

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use crate::committer::{CommitterError, Event, Group, Member, Status};
use crate::resume::{Cursor, CursorLimits};
use crate::wire::{
    self, Blob, Down, Entry, ErrorCode, LinkMsg, Media, Message as _, ToClient, ToServer, Up,
    limits,
};
use crate::{Instant, UnixTime};

/// How a [`Connection`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    /// Ask the SFU for its clock before each join, for a device without
    /// a wall clock of its own. A driver with one leaves this off and
    /// calls [`Member::set_time`] itself.
    pub clock_from_sfu: bool,
    /// How long to wait for the SFU's clock before joining without it.
    pub clock_wait: Duration,
    /// How long to wait for the SFU to accept a resume.
    pub resume_wait: Duration,
    /// The longest quiet on the transport; the SFU may ask for less.
    pub ping_every: Duration,
    /// What the resume cursor keeps of the control messages sent.
    pub cursor: CursorLimits,
    /// The most events kept for the driver; past it, the oldest media
    /// frames are dropped (late audio is no use), never anything else.
    pub events: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            clock_from_sfu: false,
            clock_wait: Duration::from_secs(2),
            resume_wait: Duration::from_secs(5),
            ping_every: Duration::from_secs(10),
            cursor: CursorLimits::default(),
            events: 256,
        }
    }
}

/// What a [`Connection`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The committer's events: joined, new epoch, rejoining, ...
    Member(Event),
    /// A log entry, in the order the delivery service put it.
    Log {
        /// Its sequence number.
        seq: u64,
        /// The entry.
        entry: Entry,
    },
    /// A media frame from another member (intercom link).
    Media(Media),
    /// WebRTC signalling from the SFU.
    Rtc(wire::Signal),
    /// The SFU reported an error, with its text for a log.
    Error(ErrorCode, Blob<{ limits::TEXT }>),
    /// The SFU's clock arrived: the member's key packages are dated with it.
    Clock(UnixTime),
    /// The seat was taken over on the new transport (`resumed`), or the
    /// member joined afresh on it.
    Connected {
        /// Whether the seat was kept.
        resumed: bool,
    },
    /// Replace the transport: close it, open a new one, and call
    /// [`Connection::link_up`]. The member joins afresh on it.
    Reconnect,
}

/// Where the transport stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No transport.
    Down,
    /// A `Ping` went out before the `Open`; waiting for the SFU's clock.
    AskingClock { nonce: u32, until: Instant },
    /// `Open::Resume` went out; waiting for `Resumed`.
    Resuming { until: Instant },
    /// Joined or resumed: messages flow.
    Up,
}

/// Why a [`Connection`] call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// The bytes are no message of the SFU's.
    Wire(wire::WireError),
    /// The member refused the input.
    Member(CommitterError),
    /// Media while no transport is up.
    NotConnected,
}

impl core::fmt::Display for LinkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Wire(e) => write!(f, "a message from the SFU does not decode: {e}"),
            Self::Member(e) => write!(f, "the member refused a message: {e}"),
            Self::NotConnected => f.write_str("no link to the SFU"),
        }
    }
}

impl From<wire::WireError> for LinkError {
    fn from(e: wire::WireError) -> Self {
        Self::Wire(e)
    }
}

impl From<CommitterError> for LinkError {
    fn from(e: CommitterError) -> Self {
        Self::Member(e)
    }
}

/// One member's link to the SFU; see the [module](self).
#[derive(Debug)]
pub struct Connection<G> {
    member: Member<G>,
    config: LinkConfig,
    phase: Phase,
    cursor: Cursor<Vec<u8>>,
    /// Encoded messages for the SFU, oldest first.
    out: VecDeque<Vec<u8>>,
    events: VecDeque<LinkEvent>,
    /// The SFU's clock, and when it was read by ours.
    clock: Option<(u64, Instant)>,
    ping_every: Duration,
    last_sent: Instant,
    nonce: u32,
}

impl<G: Group> Connection<G> {
    /// A connection for `member`, with no transport yet.
    pub fn new(member: Member<G>, config: LinkConfig) -> Self {
        Self {
            member,
            config,
            phase: Phase::Down,
            cursor: Cursor::new(config.cursor),
            out: VecDeque::new(),
            events: VecDeque::new(),
            clock: None,
            ping_every: config.ping_every,
            last_sent: Instant::from_millis(0),
            nonce: 0,
        }
    }

    /// A transport is open: take the seat over, or join, first asking for
    /// the clock when the device has none.
    ///
    /// # Errors
    /// When the member cannot join (no key package can be made).
    pub fn link_up(&mut self, now: Instant) -> Result<(), CommitterError> {
        self.out.clear();
        self.last_sent = now;
        if self.config.clock_from_sfu && self.cursor.seat().is_none() {
            self.nonce = self.nonce.wrapping_add(1);
            self.phase = Phase::AskingClock {
                nonce: self.nonce,
                until: now.saturating_add(self.config.clock_wait),
            };
            self.queue(&ToServer::Ping { nonce: self.nonce });
            return Ok(());
        }
        self.open(now)
    }

    /// The transport is gone; the seat is kept for the next
    /// [`Connection::link_up`].
    pub fn link_down(&mut self, _now: Instant) {
        self.phase = Phase::Down;
        self.out.clear();
    }

    /// Leaves the room: `Leave` is queued, and the member forgets the group.
    pub fn leave(&mut self, now: Instant) {
        self.member.leave(now);
        self.pump();
        self.cursor.reset();
    }

    /// One message from the SFU (a length-prefixed frame's body).
    ///
    /// # Errors
    /// [`LinkError::Wire`] for bytes that are no message; the connection
    /// is unchanged. A control message the member refuses is set aside
    /// (and reported by the member when it means the SFU misbehaved).
    pub fn handle_message(&mut self, now: Instant, bytes: &[u8]) -> Result<(), LinkError> {
        let message = ToClient::decode(bytes)?;
        self.set_time(now);
        match message {
            ToClient::Media(media) => self.event(LinkEvent::Media(media)),
            ToClient::Rtc(signal) => self.event(LinkEvent::Rtc(signal)),
            ToClient::Link(link) => self.handle_link(now, link)?,
            ToClient::Control(down) => {
                // Counted, like the SFU's history of this seat: exactly
                // the `Control` messages.
                self.cursor.received();
                if down == Down::KeyPackageRefused {
                    let text = b"the committer could not add our key package";
                    self.event(LinkEvent::Error(
                        ErrorCode::KeyPackageRefused,
                        Blob::copy_from(text).unwrap_or_default(),
                    ));
                }
                // A refused message changes nothing; the member reports
                // the misbehaviour itself.
                match down {
                    // The entry is handled by reference and then moved
                    // into the event: no copy of a commit and its Welcome
                    // (4.7 KB in a 16-member room) is held while the
                    // commit is processed, the heap's peak on a board.
                    Down::Entry { seq, entry } => {
                        if let Entry::Committed { conn, commit } = &entry
                            && self.member.conn() == Some(*conn)
                        {
                            self.cursor.commit_logged(commit.epoch);
                        }
                        let _ = self.member.handle_log_entry(now, seq, &entry);
                        self.event(LinkEvent::Log { seq, entry });
                    }
                    down => {
                        let _ = self.member.handle_message(now, down);
                    }
                }
            }
        }
        self.pump();
        Ok(())
    }

    fn handle_link(&mut self, now: Instant, link: LinkMsg) -> Result<(), LinkError> {
        match link {
            LinkMsg::Clock { nonce, unix_ms } => {
                if let Phase::AskingClock { nonce: asked, .. } = self.phase
                    && asked == nonce
                {
                    self.clock = Some((unix_ms, now));
                    self.set_time(now);
                    self.event(LinkEvent::Clock(UnixTime::from_secs(unix_ms / 1000)));
                    self.open(now)?;
                }
            }
            LinkMsg::Resumable { token, ping_ms, .. } => {
                if let Some(conn) = self.member.conn() {
                    self.cursor.resumable(conn, token);
                }
                self.ping_every = Duration::from_millis(u64::from(ping_ms))
                    .clamp(Duration::from_millis(100), self.config.ping_every);
            }
            LinkMsg::Resumed { received } => {
                if matches!(self.phase, Phase::Resuming { .. }) {
                    let again: Option<Vec<Vec<u8>>> = self
                        .cursor
                        .resumed(received)
                        .ok()
                        .map(|again| again.cloned().collect());
                    match again {
                        Some(again) => {
                            self.out.extend(again);
                            self.phase = Phase::Up;
                            self.event(LinkEvent::Connected { resumed: true });
                        }
                        None => self.fresh_transport(),
                    }
                }
            }
            LinkMsg::Pong { .. } => {}
            LinkMsg::Error { code, text } => {
                if matches!(self.phase, Phase::Resuming { .. }) {
                    // The seat is gone (the SFU closes this transport).
                    self.fresh_transport();
                } else {
                    self.event(LinkEvent::Error(code, text));
                }
            }
        }
        Ok(())
    }

    /// Time passes: the member's timers, pings on a quiet transport, and
    /// the waits for the clock and for a resume.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.set_time(now);
        match self.phase {
            Phase::AskingClock { until, .. } if now >= until => {
                // An SFU that does not tell the time: join with what the
                // device believes.
                let joined = self.open(now);
                if joined.is_err() {
                    self.fresh_transport();
                }
            }
            Phase::Resuming { until } if now >= until => self.fresh_transport(),
            Phase::Up if now >= self.last_sent.saturating_add(self.ping_every) => {
                self.last_sent = now;
                self.queue(&ToServer::Ping { nonce: 0 });
            }
            _ => {}
        }
        self.member.handle_timeout(now);
        self.pump();
    }

    /// When [`Connection::handle_timeout`] next has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let link = match self.phase {
            Phase::Down => None,
            Phase::AskingClock { until, .. } | Phase::Resuming { until } => Some(until),
            Phase::Up => Some(self.last_sent.saturating_add(self.ping_every)),
        };
        match (link, self.member.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next message for the SFU, encoded (the driver adds the
    /// transport's framing). Writing it counts as activity for the pings.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next thing to report.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// Encodes a media frame for the SFU into `out`, its 4-byte length
    /// first (the intercom link's framing), without allocating: the driver
    /// writes the `n` bytes returned.
    ///
    /// # Errors
    /// [`LinkError::NotConnected`] before the transport is up;
    /// [`LinkError::Wire`] when `out` is too small.
    pub fn encode_media(
        &mut self,
        now: Instant,
        media: &wire::MediaRef<'_>,
        out: &mut [u8],
    ) -> Result<usize, LinkError> {
        if self.phase != Phase::Up {
            return Err(LinkError::NotConnected);
        }
        let n = wire::encode_media_framed_into(media, out)?;
        self.last_sent = now;
        Ok(n)
    }

    /// Queues WebRTC signalling (an answer) for the SFU.
    ///
    /// # Errors
    /// [`LinkError::NotConnected`] before the transport is up.
    pub fn send_rtc(&mut self, now: Instant, signal: wire::Signal) -> Result<(), LinkError> {
        if self.phase != Phase::Up {
            return Err(LinkError::NotConnected);
        }
        self.last_sent = now;
        self.queue(&ToServer::Rtc(signal));
        Ok(())
    }

    /// How many control messages sent on this seat are kept for a resume
    /// (the delivery service may not have handled them yet), and their
    /// bytes.
    #[must_use]
    pub fn kept_for_resume(&self) -> (usize, usize) {
        self.cursor.kept()
    }

    /// The member: its status, group, roster and keys.
    #[must_use]
    pub fn member(&self) -> &Member<G> {
        &self.member
    }

    /// The member, to hand its keys over or inspect it. Whatever it
    /// queues goes out with the next [`Connection::poll_transmit`] after
    /// any other call.
    pub fn member_mut(&mut self) -> &mut Member<G> {
        &mut self.member
    }

    /// Whether messages flow: joined or resumed on a live transport.
    #[must_use]
    pub fn is_up(&self) -> bool {
        self.phase == Phase::Up
    }

    /// The wall-clock time at `now`, by the SFU's clock, once it told it.
    #[must_use]
    pub fn unix_time(&self, now: Instant) -> Option<UnixTime> {
        let (unix_ms, at) = self.clock?;
        let since = now.saturating_duration_since(at).as_millis();
        let ms = unix_ms.saturating_add(u64::try_from(since).unwrap_or(u64::MAX));
        Some(UnixTime::from_secs(ms / 1000))
    }

    fn set_time(&mut self, now: Instant) {
        if let Some(time) = self.unix_time(now) {
            self.member.set_time(time);
        }
    }

    /// Sends the `Open`: a resume of the seat, or a fresh join.
    fn open(&mut self, now: Instant) -> Result<(), CommitterError> {
        if let Some(resume) = self.cursor.resume(self.member.config().room.clone()) {
            self.phase = Phase::Resuming {
                until: now.saturating_add(self.config.resume_wait),
            };
            self.queue(&ToServer::Open(resume));
            return Ok(());
        }
        if self.member.status() != Status::Idle && self.member.status() != Status::Left {
            self.member.handle_disconnect(now);
        }
        self.member.join(now)?;
        self.phase = Phase::Up;
        self.pump();
        self.event(LinkEvent::Connected { resumed: false });
        Ok(())
    }

    /// This transport is no use: the member joins afresh on the next.
    fn fresh_transport(&mut self) {
        self.cursor.reset();
        self.phase = Phase::Down;
        self.out.clear();
        self.event(LinkEvent::Reconnect);
    }

    /// Moves the member's messages to the transport (the control ones
    /// into the cursor too) and its events to the driver.
    fn pump(&mut self) {
        while let Some(request) = self.member.poll_transmit() {
            let message = ToServer::from(request);
            let Ok(body) = message.encode() else {
                // Too large for the wire (a commit and its Welcome near
                // their bounds): the log's deadline hands the work on.
                continue;
            };
            // Kept before it is sent: a message lost with the transport is
            // sent again on a resume.
            match &message {
                ToServer::Control(Up::Commit(commit)) => {
                    self.cursor.sent_commit(commit.epoch, body.clone());
                }
                ToServer::Control(_) => self.cursor.sent(body.clone()),
                _ => {}
            }
            if self.phase != Phase::Down {
                self.out.push_back(body);
            }
        }
        while let Some(event) = self.member.poll_event() {
            self.event(LinkEvent::Member(event));
        }
        if self.phase == Phase::Up && self.member.status() == Status::Idle {
            // Evicted, or behind a lost log entry: the seat is no use (a
            // resume would replay what this member cannot fold), so a new
            // transport joins afresh and brings a fresh snapshot.
            self.fresh_transport();
        }
    }

    fn queue(&mut self, message: &ToServer) {
        if let Ok(body) = message.encode() {
            self.out.push_back(body);
        }
    }

    fn event(&mut self, event: LinkEvent) {
        if self.events.len() >= self.config.events {
            // Drop the oldest media frame; control events are never lost.
            if let Some(i) = self
                .events
                .iter()
                .position(|e| matches!(e, LinkEvent::Media(_)))
            {
                let _ = self.events.remove(i);
            } else if matches!(event, LinkEvent::Media(_)) {
                return;
            }
        }
        self.events.push_back(event);
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;
    use crate::committer::{MemberConfig, Request, Room, RoomConfig, Transmit};
    use crate::mls::{MemberInfo, MemoryStore, SatsumaCrypto, Session, SessionConfig};
    use crate::wire::{Capabilities, ConnId, Open, RoomName, TOKEN_LEN, Transport, Up};

    /// 2026-12-03, in milliseconds.
    const NOW_MS: u64 = 1_796_300_000_000;

    fn session(seed: u8, name: &str) -> Session {
        Session::create(
            SatsumaCrypto::from_seed([seed; 32]),
            MemberInfo::new(name, name).unwrap(),
            SessionConfig::default(),
            MemoryStore::default(),
        )
        .unwrap()
    }

    fn member(seed: u8, name: &str, can_commit: bool) -> Member<Session> {
        Member::new(
            session(seed, name),
            MemberConfig {
                room: RoomName::new("door").unwrap(),
                capabilities: Capabilities {
                    can_commit,
                    transport: Transport::Wire,
                },
            },
        )
    }

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// The delivery service (core's own, as the SFU runs it) with one
    /// desktop member on it whose clock is right, and the link under test.
    struct Sfu {
        room: Room,
        desk: Member<Session>,
        desk_conn: Option<ConnId>,
        door_conn: Option<ConnId>,
        /// Whether the SFU answers clock questions.
        tells_time: bool,
    }

    impl Sfu {
        fn new() -> Self {
            let mut desk = member(1, "Desk", true);
            desk.set_time(UnixTime::from_secs(NOW_MS / 1000));
            desk.join(at(0)).unwrap();
            Self {
                room: Room::new(RoomConfig::default()),
                desk,
                desk_conn: None,
                door_conn: None,
                tells_time: true,
            }
        }

        /// Moves messages until nothing moves.
        fn settle(&mut self, now: Instant, door: &mut Connection<Session>) {
            for _ in 0..64 {
                let mut moved = false;
                while let Some(request) = self.desk.poll_transmit() {
                    moved = true;
                    let conn = self.room.handle(now, self.desk_conn, request).ok();
                    self.desk_conn = self.desk_conn.or(conn);
                }
                while let Some(body) = door.poll_transmit() {
                    moved = true;
                    match ToServer::decode(&body).unwrap() {
                        ToServer::Ping { nonce } if self.door_conn.is_none() => {
                            if self.tells_time {
                                let clock = ToClient::Link(LinkMsg::Clock {
                                    nonce,
                                    unix_ms: NOW_MS + now.as_micros() / 1000,
                                });
                                door.handle_message(now, &clock.encode().unwrap()).unwrap();
                            }
                        }
                        ToServer::Ping { .. } => {}
                        ToServer::Open(Open::Join(join)) => {
                            let conn = self.room.handle(now, None, Request::Join(join)).unwrap();
                            self.door_conn = Some(conn);
                        }
                        ToServer::Control(up) => {
                            let _ = self.room.handle(now, self.door_conn, Request::Control(up));
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                while let Some(Transmit { to, message }) = self.room.poll_transmit() {
                    moved = true;
                    if self.desk_conn.is_some_and(|c| to.contains(c)) {
                        let _ = self.desk.handle_message(now, message.clone());
                    }
                    if self.door_conn.is_some_and(|c| to.contains(c)) {
                        let bytes = ToClient::Control(message).encode().unwrap();
                        door.handle_message(now, &bytes).unwrap();
                    }
                }
                if !moved {
                    return;
                }
            }
        }
    }

    fn events(door: &mut Connection<Session>) -> Vec<LinkEvent> {
        core::iter::from_fn(|| door.poll_event()).collect()
    }

    fn clockless() -> LinkConfig {
        LinkConfig {
            clock_from_sfu: true,
            ..LinkConfig::default()
        }
    }

    #[test]
    fn a_device_without_a_clock_asks_the_sfu_and_is_added() {
        let mut sfu = Sfu::new();
        sfu.settle(
            at(0),
            &mut Connection::new(member(9, "Unused", false), clockless()),
        );
        let mut door = Connection::new(member(2, "Door", false), clockless());
        door.link_up(at(10)).unwrap();
        // The clock question goes first, alone.
        let ping = door.poll_transmit().unwrap();
        assert!(matches!(
            ToServer::decode(&ping),
            Ok(ToServer::Ping { nonce: 1 })
        ));
        assert_eq!(door.poll_transmit(), None);
        // An answer to another question changes nothing.
        let stale = ToClient::Link(LinkMsg::Clock {
            nonce: 7,
            unix_ms: 5,
        });
        door.handle_message(at(11), &stale.encode().unwrap())
            .unwrap();
        assert_eq!(door.poll_transmit(), None);
        assert_eq!(door.unix_time(at(11)), None);
        // The right answer: the door joins, and the desk adds it.
        let clock = ToClient::Link(LinkMsg::Clock {
            nonce: 1,
            unix_ms: NOW_MS,
        });
        door.handle_message(at(12), &clock.encode().unwrap())
            .unwrap();
        assert_eq!(
            door.unix_time(at(5_012)),
            Some(UnixTime::from_secs(NOW_MS / 1000 + 5))
        );
        sfu.settle(at(20), &mut door);
        assert_eq!(door.member().status(), Status::InGroup);
        assert_eq!(
            door.member().group().epoch(),
            sfu.desk.group().epoch(),
            "the door is in the desk's epoch"
        );
        assert!(events(&mut door).contains(&LinkEvent::Clock(UnixTime::from_secs(NOW_MS / 1000))));
    }

    #[test]
    fn without_the_sfus_clock_the_key_package_is_dated_1970_and_refused() {
        let mut sfu = Sfu::new();
        sfu.tells_time = false;
        let mut door = Connection::new(member(2, "Door", false), clockless());
        sfu.settle(at(0), &mut door);
        door.link_up(at(10)).unwrap();
        sfu.settle(at(10), &mut door);
        assert_eq!(door.member().status(), Status::Idle, "still asking");
        assert_eq!(door.poll_timeout(), Some(at(2_010)));
        // The wait ends: it joins with the time it has, and the desk, whose
        // clock is right, cannot add a key package from 1970.
        door.handle_timeout(at(2_010));
        sfu.settle(at(2_010), &mut door);
        assert_ne!(door.member().status(), Status::InGroup);
        assert!(
            events(&mut door)
                .iter()
                .any(|e| matches!(e, LinkEvent::Error(ErrorCode::KeyPackageRefused, _))),
            "the door hears its key package was refused"
        );
    }

    /// A door in the group on the desk, with a resumable seat.
    fn joined() -> (Sfu, Connection<Session>) {
        let mut sfu = Sfu::new();
        let mut door = Connection::new(member(2, "Door", false), clockless());
        sfu.settle(at(0), &mut door);
        door.link_up(at(0)).unwrap();
        sfu.settle(at(0), &mut door);
        assert_eq!(door.member().status(), Status::InGroup);
        let resumable = ToClient::Link(LinkMsg::Resumable {
            token: [7; TOKEN_LEN],
            grace_ms: 30_000,
            ping_ms: 3_000,
        });
        door.handle_message(at(0), &resumable.encode().unwrap())
            .unwrap();
        let _ = events(&mut door);
        (sfu, door)
    }

    #[test]
    fn every_log_entry_reaches_the_driver_after_the_member_handled_it() {
        let mut sfu = Sfu::new();
        let mut door = Connection::new(member(2, "Door", false), clockless());
        sfu.settle(at(0), &mut door);
        door.link_up(at(0)).unwrap();
        sfu.settle(at(0), &mut door);
        assert_eq!(door.member().status(), Status::InGroup);
        let seen = events(&mut door);
        let logged: Vec<(u64, Entry)> = seen
            .iter()
            .filter_map(|e| match e {
                LinkEvent::Log { seq, entry } => Some((*seq, entry.clone())),
                _ => None,
            })
            .collect();
        // In order, none lost, the commit that added the door whole (its
        // Welcome too).
        assert!(logged.len() >= 2, "{logged:?}");
        assert!(logged.windows(2).all(|w| w[1].0 == w[0].0 + 1));
        assert!(logged.iter().any(|(_, e)| matches!(
            e,
            Entry::Committed { commit, .. } if commit.welcome.is_some() && commit.adds.len() == 1
        )));
        // An entry repeated by the delivery service is shown as it came,
        // and the member says the service misbehaved; nothing changes.
        let (seq, entry) = logged.last().unwrap().clone();
        let epoch = door.member().group().epoch();
        let again = ToClient::Control(Down::Entry {
            seq,
            entry: entry.clone(),
        });
        door.handle_message(at(1), &again.encode().unwrap())
            .unwrap();
        let seen = events(&mut door);
        assert!(seen.contains(&LinkEvent::Log { seq, entry }));
        assert!(seen.iter().any(|e| matches!(
            e,
            LinkEvent::Member(Event::DeliveryServiceMisbehaved(crate::committer::Misbehaviour::Sequence { got, .. })) if *got == seq
        )));
        assert_eq!(door.member().group().epoch(), epoch);
    }

    #[test]
    fn a_door_alone_creates_the_group_and_commits_the_next_member_in() {
        let mut sfu = Sfu::new();
        // The desk's join waits until the door has made the room's group.
        let held: Vec<Request> = core::iter::from_fn(|| sfu.desk.poll_transmit()).collect();
        let mut door = Connection::new(member(2, "Door", true), clockless());
        door.link_up(at(0)).unwrap();
        sfu.settle(at(0), &mut door);
        assert_eq!(door.member().status(), Status::InGroup);
        assert_eq!(door.member().group().epoch(), Some(0));
        for request in held {
            let conn = sfu.room.handle(at(1), sfu.desk_conn, request).ok();
            sfu.desk_conn = sfu.desk_conn.or(conn);
        }
        sfu.settle(at(1), &mut door);
        assert_eq!(
            sfu.desk.status(),
            Status::InGroup,
            "the door added the desk"
        );
        assert_eq!(door.member().group().epoch(), Some(1));
        assert_eq!(sfu.desk.group().epoch(), Some(1));
        assert!(events(&mut door).iter().any(|e| matches!(
            e,
            LinkEvent::Log { entry: Entry::Committed { conn, .. }, .. } if Some(*conn) == door.member().conn()
        )));
        // The log showed the door's commit: the delivery service handled
        // it and what the door sent before (the group's creation), so
        // nothing is kept for a resume, the commit's Welcome included.
        assert_eq!(door.kept_for_resume(), (0, 0));
    }

    #[test]
    fn a_new_transport_resumes_the_seat_and_sends_again_what_was_lost() {
        let (_sfu, mut door) = joined();
        let seat = door.member().conn().unwrap();
        door.link_down(at(100));
        // The door's self-update falls due (10 minutes into the epoch)
        // while the link is down: its proposal is kept for the resume.
        let due = 10 * 60 * 1000 + 1;
        door.handle_timeout(at(due));
        assert_eq!(door.poll_transmit(), None, "nothing goes out on no link");
        door.link_up(at(due + 100)).unwrap();
        // No clock question on a resume: the seat's key package is made.
        let open = ToServer::decode(&door.poll_transmit().unwrap()).unwrap();
        let ToServer::Open(Open::Resume {
            conn,
            token,
            received,
            ..
        }) = open
        else {
            panic!("expected a resume, got {open:?}");
        };
        assert_eq!((conn, token), (seat, [7; TOKEN_LEN]));
        assert!(received > 0, "the log entries the door folded");
        assert!(!door.is_up());
        // The SFU handled none of the door's control messages: the
        // proposal made offline goes out now.
        let resumed = ToClient::Link(LinkMsg::Resumed { received: 0 });
        door.handle_message(at(due + 110), &resumed.encode().unwrap())
            .unwrap();
        assert!(door.is_up());
        let again: Vec<ToServer> = core::iter::from_fn(|| door.poll_transmit())
            .map(|b| ToServer::decode(&b).unwrap())
            .collect();
        assert!(
            matches!(again[..], [ToServer::Control(Up::Proposal { .. })]),
            "sent again: {again:?}"
        );
        assert!(events(&mut door).contains(&LinkEvent::Connected { resumed: true }));
    }

    #[test]
    fn a_refused_or_unanswered_resume_asks_for_a_fresh_transport() {
        let (_sfu, mut door) = joined();
        door.link_down(at(100));
        door.link_up(at(200)).unwrap();
        let _ = door.poll_transmit();
        let refused = LinkMsg::Error {
            code: ErrorCode::ResumeFailed,
            text: Blob::default(),
        };
        door.handle_message(at(210), &ToClient::Link(refused).encode().unwrap())
            .unwrap();
        assert_eq!(events(&mut door), [LinkEvent::Reconnect]);
        // The next transport starts afresh: the clock, then a join.
        door.link_up(at(300)).unwrap();
        assert!(matches!(
            ToServer::decode(&door.poll_transmit().unwrap()),
            Ok(ToServer::Ping { .. })
        ));

        let (_sfu, mut door) = joined();
        door.link_down(at(100));
        door.link_up(at(200)).unwrap();
        assert_eq!(door.poll_timeout(), Some(at(5_200)));
        door.handle_timeout(at(5_200));
        assert_eq!(events(&mut door), [LinkEvent::Reconnect]);
    }

    #[test]
    fn a_quiet_link_pings_as_often_as_the_sfu_asks() {
        let (_sfu, mut door) = joined();
        // `Resumable` asked for 3 s; the seat's member has later timers.
        assert!(door.poll_timeout().unwrap() <= at(3_000));
        door.handle_timeout(at(3_000));
        let sent: Vec<ToServer> = core::iter::from_fn(|| door.poll_transmit())
            .map(|b| ToServer::decode(&b).unwrap())
            .collect();
        assert!(sent.contains(&ToServer::Ping { nonce: 0 }));
        assert_eq!(door.poll_timeout().map(|t| t <= at(6_000)), Some(true));
    }

    #[test]
    fn garbage_is_a_typed_error_and_changes_nothing() {
        let (_sfu, mut door) = joined();
        let before = door.poll_timeout();
        for bytes in [&[][..], &[2], &[2, 9, 9], &[1, 0, 0], &[2, 3, 40]] {
            assert!(matches!(
                door.handle_message(at(10), bytes),
                Err(LinkError::Wire(_))
            ));
        }
        assert!(door.is_up());
        assert_eq!(door.poll_timeout(), before);
        assert_eq!(door.poll_transmit(), None);
        assert!(events(&mut door).is_empty());
    }

    #[test]
    fn a_full_event_queue_drops_old_media_never_control() {
        let mut door = Connection::new(
            member(2, "Door", false),
            LinkConfig {
                events: 3,
                ..LinkConfig::default()
            },
        );
        let media = |sequence| {
            ToClient::Media(Media {
                sender: ConnId(1),
                codec: crate::media::Codec::Pcmu,
                timestamp: 0,
                sequence,
                payload: Blob::default(),
            })
            .encode()
            .unwrap()
        };
        let error = ToClient::Link(LinkMsg::Error {
            code: ErrorCode::Overloaded,
            text: Blob::default(),
        })
        .encode()
        .unwrap();
        for bytes in [media(1), error.clone(), media(2), media(3), error] {
            door.handle_message(at(0), &bytes).unwrap();
        }
        let kept: Vec<_> = events(&mut door)
            .into_iter()
            .map(|e| match e {
                LinkEvent::Media(m) => m.sequence,
                LinkEvent::Error(..) => 0,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(kept, [0, 3, 0]);
    }
}
