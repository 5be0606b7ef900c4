//! [`Net`]: one room's delivery service, its member endpoints and every
//! message between them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use satsuma_core::Instant;
use satsuma_core::committer::{
    CommitterError, DsError, Group, Member, Request, Room, RoomConfig, RoomEvent,
};
use satsuma_core::wire::{ConnId, Down, Entry, Message, Open, ToClient, ToServer};

use crate::Rng;

mod endpoint;
mod faults;
mod query;

use endpoint::{DownPacket, Endpoint, UpPacket};
pub use faults::{Faults, NetStats};

/// What a harness checks on every member after every input it takes (with
/// the member's output already queued), and the room as it is then.
pub trait Watch<G> {
    /// Endpoint `i`'s member took an input.
    fn member(&mut self, room: &Room, i: usize, member: &Member<G>) {
        let _ = (room, i, member);
    }
}

/// Watches nothing.
impl<G> Watch<G> for () {}

/// One room's delivery service ([`Room`]), its endpoints, the messages
/// between them, and a virtual clock.
///
/// Step by step ([`Net::step_up`], [`Net::deliver_down`], ...) a test lands
/// a fault exactly where it hurts; [`Net::run`] and [`Net::settle`] move
/// everything; [`Net::step`] delivers in arrival order on the clock, for a
/// simulation with [`Faults::delay`]. Every member input is followed by
/// draining its output into its link and calling the [`Watch`]; every
/// room input by draining the room's output into the recipients' links, so
/// `Recipients::All` is the connections at the time of the input.
#[derive(Debug, Clone)]
pub struct Net<G, W = ()> {
    now: Instant,
    room: Room,
    endpoints: Vec<Endpoint<G>>,
    /// Which endpoint opened each connection.
    owners: BTreeMap<ConnId, usize>,
    faults: Faults,
    rng: Rng,
    wire: bool,
    record: bool,
    /// Messages sent so far: orders messages that arrive at one instant.
    sent: u64,
    log: Vec<Entry>,
    welcomes: Vec<(ConnId, Vec<u8>)>,
    ds_errors: Vec<(usize, DsError)>,
    /// The present members as the room's events told them, as a media
    /// plane keeps them: checked against the log after every room input.
    present: BTreeSet<ConnId>,
    stats: NetStats,
    watch: W,
}

impl<G: Group, W: Watch<G> + Default> Net<G, W> {
    /// An empty room at time zero on a faultless network.
    #[must_use]
    pub fn new(config: RoomConfig) -> Self {
        Self::with_watch(config, W::default())
    }

    /// A room with `members`, joined one after the other, each once the
    /// room settled after the previous one.
    #[must_use]
    pub fn settled(config: RoomConfig, members: impl IntoIterator<Item = Member<G>>) -> Self {
        let mut net = Self::new(config);
        for member in members {
            let i = net.add(Some(member));
            net.join(i).expect("a new member joins");
            net.settle();
        }
        net
    }
}

impl<G: Group, W: Watch<G>> Net<G, W> {
    /// An empty room at time zero on a faultless network, watched by
    /// `watch`.
    #[must_use]
    pub fn with_watch(config: RoomConfig, watch: W) -> Self {
        Self {
            now: Instant::ZERO,
            room: Room::new(config),
            endpoints: Vec::new(),
            owners: BTreeMap::new(),
            faults: Faults::default(),
            rng: Rng::new(0),
            wire: false,
            record: false,
            sent: 0,
            log: Vec::new(),
            welcomes: Vec::new(),
            ds_errors: Vec::new(),
            present: BTreeSet::new(),
            stats: NetStats::default(),
            watch,
        }
    }

    /// The network misbehaves as `faults` say, drawing from a generator
    /// seeded with `seed`.
    #[must_use]
    pub fn faults(mut self, faults: Faults, seed: u64) -> Self {
        self.faults = faults;
        self.rng = Rng::new(seed);
        self
    }

    /// Every message travels as its wire encoding, and members take it
    /// through [`Member::handle_bytes`].
    #[must_use]
    pub fn wire(mut self) -> Self {
        self.wire = true;
        self
    }

    /// Every endpoint keeps what it received ([`Net::received`]).
    #[must_use]
    pub fn record(mut self) -> Self {
        self.record = true;
        self
    }

    /// Adds an endpoint around `member` (none: a raw client, which sends
    /// what [`Net::inject`] gives it); its index.
    pub fn add(&mut self, member: Option<Member<G>>) -> usize {
        self.endpoints.push(Endpoint::new(member, self.now));
        self.endpoints.len() - 1
    }

    /// Endpoint `i`'s member joins on a new connection; what the room
    /// sends its earlier one is no longer read.
    ///
    /// # Errors
    /// As [`Member::join`].
    ///
    /// # Panics
    /// When the endpoint has no member.
    pub fn join(&mut self, i: usize) -> Result<(), CommitterError> {
        let e = &mut self.endpoints[i];
        e.link += 1;
        e.open = true;
        self.input(i, Member::join).expect("joins are for members")
    }

    /// Endpoint `i`'s member leaves; the client then closes its end.
    pub fn leave(&mut self, i: usize) {
        self.input(i, Member::leave);
        self.endpoints[i].open = false;
    }

    /// The client closes its end of endpoint `i`'s connection (the room
    /// evicted it, say): nothing more arrives on it.
    pub fn close(&mut self, i: usize) {
        self.endpoints[i].open = false;
    }

    /// Runs `f` on endpoint `i`'s member at the current time, then queues
    /// what it sent and watches it; `None` without a member.
    pub fn input<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Member<G>, Instant) -> R,
    ) -> Option<R> {
        let now = self.now;
        let result = f(self.endpoints[i].member.as_mut()?, now);
        self.pump(i);
        Some(result)
    }

    /// Sends `request` from endpoint `i` as if its client had (a raw
    /// client, or a member misbehaving); a `Join` opens a connection.
    pub fn inject(&mut self, i: usize, request: Request) {
        if let Request::Join(_) = request {
            self.endpoints[i].open = true;
        }
        self.send_up(i, request);
    }

    /// The network loses the next Welcome for endpoint `i`.
    pub fn lose_next_welcome(&mut self, i: usize) {
        self.endpoints[i].lose_welcome = true;
    }

    /// The network loses the first message in flight to endpoint `i`
    /// that `which` picks; whether there was one.
    pub fn lose_down(&mut self, i: usize, which: impl Fn(&Down) -> bool) -> bool {
        let down = &mut self.endpoints[i].down;
        let Some(at) = down.iter().position(|p| which(&p.message)) else {
            return false;
        };
        down.remove(at);
        true
    }

    /// The process behind endpoint `i` dies: its member is gone; with
    /// `lose_in_flight`, so is what it had sent that the room had not read
    /// yet, returned. Its connection stays open at the room until
    /// [`Net::disconnect`].
    pub fn crash(&mut self, i: usize, lose_in_flight: bool) -> Vec<Request> {
        let e = &mut self.endpoints[i];
        e.member = None;
        e.open = false;
        if lose_in_flight {
            e.up.drain(..).map(|p| p.request).collect()
        } else {
            Vec::new()
        }
    }

    /// Everything in flight from and to endpoint `i` is lost.
    pub fn clear(&mut self, i: usize) {
        let e = &mut self.endpoints[i];
        e.up.clear();
        e.down.clear();
    }

    /// Endpoint `i` runs `member` (after a crash); it joins when told.
    pub fn restart(&mut self, i: usize, member: Member<G>) {
        self.endpoints[i].member = Some(member);
    }

    /// The room notices endpoint `i`'s current connection is gone (or
    /// wrongly believes so).
    pub fn disconnect(&mut self, i: usize) {
        if let Some(conn) = self.conn(i) {
            self.disconnect_conn(conn);
        }
    }

    /// The room notices connection `conn` is gone.
    pub fn disconnect_conn(&mut self, conn: ConnId) {
        self.room_input(|room, now| room.handle_disconnect(now, conn));
    }

    /// Runs `f` on the room at the current time, then sends what it said
    /// (a message no client of this network sent: garbage, or a `Join`
    /// that opens a connection nobody reads).
    pub fn room_input<R>(&mut self, f: impl FnOnce(&mut Room, Instant) -> R) -> R {
        let now = self.now;
        let result = f(&mut self.room, now);
        self.drain_room();
        result
    }

    /// The room's deadline, if it passed.
    pub fn timeout_room(&mut self) {
        self.room_input(Room::handle_timeout);
    }

    /// Moves the clock to `at` without firing any timer (a simulation that
    /// schedules them itself).
    ///
    /// # Panics
    /// When `at` is in the past.
    pub fn set_now(&mut self, at: Instant) {
        assert!(at >= self.now, "time runs forward");
        self.now = at;
    }

    /// Time passes: the room's deadline, then every member's timers.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
        self.timeout_room();
        for i in 0..self.endpoints.len() {
            self.input(i, Member::handle_timeout);
        }
    }

    /// Hands endpoint `i`'s next message to the room; whether there was
    /// one.
    pub fn deliver_up(&mut self, i: usize) -> bool {
        let Some(packet) = self.endpoints[i].up.pop_front() else {
            return false;
        };
        self.room_reads(i, packet);
        true
    }

    /// Hands the next message for endpoint `i` to it; whether there was
    /// one.
    pub fn deliver_down(&mut self, i: usize) -> bool {
        let Some(packet) = self.endpoints[i].down.pop_front() else {
            return false;
        };
        self.member_reads(i, packet);
        true
    }

    /// Hands the oldest message in flight to the room to it; the endpoint
    /// that sent it.
    pub fn step_up(&mut self) -> Option<usize> {
        let (_, i) = self.oldest_up()?;
        self.deliver_up(i);
        Some(i)
    }

    /// Hands the oldest message in flight from the room to its endpoint;
    /// which one.
    pub fn step_down(&mut self) -> Option<usize> {
        let (_, i) = self.oldest_down()?;
        self.deliver_down(i);
        Some(i)
    }

    /// Delivers the message that arrives first, the clock moved to its
    /// arrival; the endpoint it came from or went to.
    pub fn step(&mut self) -> Option<usize> {
        let up = self.oldest_up();
        let down = self.oldest_down();
        let ((at, _), i, to_room) = match (up, down) {
            (Some(u), Some(d)) if u.0 <= d.0 => (u.0, u.1, true),
            (_, Some(d)) => (d.0, d.1, false),
            (Some(u), None) => (u.0, u.1, true),
            (None, None) => return None,
        };
        self.now = self.now.max(at);
        if to_room {
            self.deliver_up(i);
        } else {
            self.deliver_down(i);
        }
        Some(i)
    }

    /// Delivers everything in flight to the room.
    pub fn flush_up(&mut self) {
        while self.step_up().is_some() {}
    }

    /// Delivers everything in flight to members (what they answer is
    /// queued).
    pub fn flush_down(&mut self) {
        while self.step_down().is_some() {}
    }

    /// Delivers until nothing moves, the clock standing still.
    ///
    /// # Panics
    /// When messages still move after 1000 rounds.
    pub fn run(&mut self) {
        for _ in 0..1000 {
            if self.is_quiet() {
                return;
            }
            self.flush_up();
            self.flush_down();
        }
        panic!("messages still moving after 1000 rounds");
    }

    /// Delivers, and lets the room's deadlines pass, until the room is
    /// quiet.
    ///
    /// # Panics
    /// When the room still has work after 50 deadlines.
    pub fn settle(&mut self) {
        self.run();
        for _ in 0..50 {
            let Some(deadline) = self.room.poll_timeout() else {
                return;
            };
            self.advance(deadline.saturating_duration_since(self.now));
            self.run();
        }
        panic!("the room still has work after 50 deadlines");
    }

    /// The oldest message in flight to the room: its arrival, and its
    /// sender.
    fn oldest_up(&self) -> Option<((Instant, u64), usize)> {
        self.endpoints
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.up.front().map(|p| ((p.at, p.order), i)))
            .min()
    }

    fn oldest_down(&self) -> Option<((Instant, u64), usize)> {
        self.endpoints
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.down.front().map(|p| ((p.at, p.order), i)))
            .min()
    }

    /// Queues what endpoint `i`'s member sent and watches it: after
    /// calling it through [`Net::member_mut`].
    pub fn pump(&mut self, i: usize) {
        let e = &mut self.endpoints[i];
        let Some(m) = e.member.as_mut() else { return };
        let mut sent = Vec::new();
        while let Some(request) = m.poll_transmit() {
            sent.push(request);
        }
        while let Some(event) = m.poll_event() {
            e.events.push(event);
        }
        if e.open {
            for request in sent {
                self.send_up(i, request);
            }
        }
        if let Some(m) = &self.endpoints[i].member {
            self.watch.member(&self.room, i, m);
        }
    }

    fn send_up(&mut self, i: usize, request: Request) {
        let when = (self.now, self.endpoints[i].up_last);
        let arrivals = self
            .faults
            .arrivals(&mut self.rng, &mut self.stats, when, false);
        for at in arrivals {
            self.sent += 1;
            let e = &mut self.endpoints[i];
            e.up_last = at;
            e.up.push_back(UpPacket {
                at,
                order: self.sent,
                link: e.link,
                request: request.clone(),
            });
        }
    }

    fn send_down(&mut self, i: usize, conn: ConnId, message: &Down) {
        let when = (self.now, self.endpoints[i].down_last);
        let arrivals = self
            .faults
            .arrivals(&mut self.rng, &mut self.stats, when, true);
        for at in arrivals {
            self.sent += 1;
            let e = &mut self.endpoints[i];
            e.down_last = at;
            e.down.push_back(DownPacket {
                at,
                order: self.sent,
                conn,
                message: message.clone(),
            });
        }
    }

    /// The room reads one message: a `Join` opens a connection, anything
    /// else comes on the connection it was sent on.
    fn room_reads(&mut self, i: usize, packet: UpPacket) {
        self.stats.delivered += 1;
        let now = self.now;
        let request = if self.wire {
            through_wire_up(packet.request)
        } else {
            packet.request
        };
        let e = &mut self.endpoints[i];
        let from = match request {
            Request::Join(_) => None,
            Request::Control(_) => e.conns.get(&packet.link).copied(),
        };
        match self.room.handle(now, from, request) {
            Ok(conn) => {
                e.conns.insert(packet.link, conn);
                self.owners.insert(conn, i);
            }
            Err(error) => self.ds_errors.push((i, error)),
        }
        self.drain_room();
    }

    /// Sends what the room said to the connections it names now, logging
    /// entries and Welcomes on the way.
    fn drain_room(&mut self) {
        while let Some(event) = self.room.poll_event() {
            let changed = match event {
                RoomEvent::MemberAdded(conn) => self.present.insert(conn),
                RoomEvent::MemberRemoved(conn) => self.present.remove(&conn),
            };
            assert!(changed, "{event:?} changes nothing");
        }
        let logged: BTreeSet<ConnId> = self.room.state().present().collect();
        assert_eq!(self.present, logged, "the room's events follow its log");
        while let Some(transmit) = self.room.poll_transmit() {
            let message = transmit.message;
            if let Down::Entry { seq, entry } = &message {
                let logged = self.log.len() as u64;
                if *seq > logged {
                    assert_eq!(*seq, logged + 1, "the log has no gaps");
                    self.log.push(entry.clone());
                } else {
                    let at = usize::try_from(*seq).expect("a log in memory") - 1;
                    assert_eq!(self.log[at], *entry, "two different entries with seq {seq}");
                }
            }
            let to: Vec<ConnId> = self.room.recipients(transmit.to).collect();
            for conn in to {
                if let Down::Welcome { welcome } = &message {
                    self.welcomes.push((conn, welcome.to_vec()));
                    self.stats.welcomes += 1;
                }
                // A connection no endpoint opened (a garbage `Join`), or
                // one its client replaced by a newer one: nobody reads it.
                let Some(&i) = self.owners.get(&conn) else {
                    continue;
                };
                let e = &mut self.endpoints[i];
                if e.conn() != Some(conn) {
                    continue;
                }
                if matches!(message, Down::Welcome { .. }) {
                    let lost = std::mem::take(&mut e.lose_welcome)
                        || (self.faults.lost_welcomes > 0
                            && self.rng.chance(self.faults.lost_welcomes));
                    if lost {
                        self.stats.lost_welcomes += 1;
                        continue;
                    }
                }
                self.send_down(i, conn, &message);
            }
        }
    }

    /// Endpoint `i` reads one message, if it still reads that connection.
    fn member_reads(&mut self, i: usize, packet: DownPacket) {
        self.stats.delivered += 1;
        let now = self.now;
        let e = &mut self.endpoints[i];
        if !e.open || e.conn() != Some(packet.conn) {
            return;
        }
        if self.record {
            e.received.push(packet.message.clone());
        }
        let Some(m) = e.member.as_mut() else { return };
        let result = if self.wire {
            let bytes = ToClient::Control(packet.message)
                .encode()
                .expect("every room message fits the wire");
            m.handle_bytes(now, &bytes)
        } else {
            m.handle_message(now, packet.message)
        };
        if let Err(error) = result {
            e.errors.push(error);
        }
        self.pump(i);
    }
}

/// `request` as the room reads it from the wire.
fn through_wire_up(request: Request) -> Request {
    let bytes = ToServer::from(request)
        .encode()
        .expect("every member message fits the wire");
    match ToServer::decode(&bytes).expect("a member's bytes decode") {
        ToServer::Open(Open::Join(join)) => Request::Join(join),
        ToServer::Control(up) => Request::Control(up),
        other => panic!("a member sent {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use satsuma_core::committer::{Member, RoomConfig};
    use satsuma_core::mls::{Session, SessionConfig};
    use satsuma_core::wire::{Down, Entry};

    use super::{Faults, Net};
    use crate::fixtures::desktop;

    /// Three members join at once over a network that delays, duplicates
    /// and loses Welcomes; delivered in arrival order until quiet, with the
    /// room's deadlines passing. The log, and when it ended.
    fn run(seed: u64) -> (Vec<Entry>, super::NetStats, satsuma_core::Instant) {
        let faults = Faults {
            delay: (Duration::from_millis(1), Duration::from_millis(80)),
            duplicate: 200,
            lost_welcomes: 300,
            ..Faults::default()
        };
        let mut net: Net<Session> = Net::new(RoomConfig::default()).faults(faults, seed);
        for (n, name) in ["alice", "bob", "carol"].into_iter().enumerate() {
            let seed = u8::try_from(n).expect("three") + 1;
            let i = net.add(Some(desktop(name, seed, SessionConfig::default())));
            net.join(i).expect("idle");
        }
        for _ in 0..20 {
            while net.step().is_some() {}
            let Some(deadline) = net.room().poll_timeout() else {
                break;
            };
            net.advance(deadline.saturating_duration_since(net.now()));
        }
        let epochs: Vec<_> = net.live().map(|m| m.group().epoch()).collect();
        assert_eq!(epochs.len(), 3, "everyone is in the call: {epochs:?}");
        assert!(epochs.iter().all(|e| *e == net.room().state().epoch()));
        (net.log().to_vec(), net.stats(), net.now())
    }

    #[test]
    fn a_seed_replays_a_faulty_run_exactly() {
        let first = run(7);
        assert!(first.1.duplicated > 0, "{:?}", first.1);
        assert_eq!(run(7), first);
        assert_ne!(run(8), first, "another seed, another run");
    }

    #[test]
    fn what_the_room_sends_an_abandoned_connection_is_dropped() {
        let member = |name, seed| desktop(name, seed, SessionConfig::default());
        let mut net: Net<Session> = Net::settled(
            RoomConfig::default(),
            [member("alice", 1), member("bob", 2)],
        );
        let old = net.conn(1).expect("bob is connected");
        net.input(1, Member::handle_disconnect);
        net.join(1).expect("idle");
        net.flush_up();
        let new = net.conn(1).expect("the room read the new Join");
        assert_ne!(new, old);
        // The room still believes in the old connection; what it sends
        // there reaches nobody.
        net.disconnect_conn(old);
        assert!(
            net.in_flight_down().iter().all(|(conn, _)| *conn != old),
            "{:?}",
            net.in_flight_down()
        );
        assert!(net.queued_down(1).any(
            |(_, m)| matches!(m, Down::Entry { entry: Entry::Left { conn }, .. } if *conn == old)
        ));
        net.settle();
        assert_eq!(net.live().count(), 2);
    }
}
