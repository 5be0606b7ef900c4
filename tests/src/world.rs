//! A step-by-step harness for the committer scenario tests
//! (`tests/committer_scenarios.rs`): one room's delivery service, its
//! clients around real MLS sessions (or raw clients a test speaks for), and
//! one FIFO queue each way that moves only when the test says, so a
//! failure can land exactly where it hurts.
// A failed expectation here is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use satsuma_core::Instant;
use satsuma_core::committer::{
    CommitterError, DsError, Event, Member, Request, Room, RoomConfig, Status,
};
use satsuma_core::mls::{MemoryStore, SafetyNumber, Session, SessionConfig};
use satsuma_core::wire::{Capabilities, CommitMessage, ConnId, Down, Entry};

use crate::sim::{DESKTOP, Ledger, converged, member_config, session};

/// The DS's commit deadline in every scenario.
pub const DEADLINE: Duration = Duration::from_secs(2);

/// One client: a member around a real session, or a raw client the test
/// speaks for (one that sends what no honest member would).
#[derive(Debug)]
pub struct Client {
    pub name: String,
    pub member: Option<Member<Session>>,
    /// The connection of its current `Join`, once the DS read it.
    pub conn: Option<ConnId>,
    pub received: Vec<Down>,
    pub events: Vec<Event>,
    pub errors: Vec<CommitterError>,
}

/// A room, its clients and the messages between them: one FIFO queue each
/// way, delivered when a test says.
#[derive(Debug)]
pub struct World {
    pub now: Instant,
    pub room: Room,
    pub clients: Vec<Client>,
    pub up: VecDeque<(usize, Request)>,
    pub down: VecDeque<(ConnId, Down)>,
    pub owner: BTreeMap<ConnId, usize>,
    /// Every entry the DS logged, in order.
    pub log: Vec<Entry>,
    /// Every Welcome the DS sent, and to whom.
    pub welcomes: Vec<(ConnId, Vec<u8>)>,
    pub ds_errors: Vec<(String, DsError)>,
    /// Clients whose next Welcome the network loses.
    pub lose_welcome: BTreeSet<usize>,
    pub ledger: Ledger,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// An empty room at time zero with a [`DEADLINE`] commit deadline.
    #[must_use]
    pub fn new() -> Self {
        Self {
            now: Instant::ZERO,
            room: Room::new(RoomConfig {
                commit_deadline: DEADLINE,
                ..RoomConfig::default()
            }),
            clients: Vec::new(),
            up: VecDeque::new(),
            down: VecDeque::new(),
            owner: BTreeMap::new(),
            log: Vec::new(),
            welcomes: Vec::new(),
            ds_errors: Vec::new(),
            lose_welcome: BTreeSet::new(),
            ledger: Ledger::default(),
        }
    }

    /// Adds a client around `member` (none: a raw client); its index.
    pub fn client(&mut self, name: &str, member: Option<Member<Session>>) -> usize {
        self.clients.push(Client {
            name: name.to_owned(),
            member,
            conn: None,
            received: Vec::new(),
            events: Vec::new(),
            errors: Vec::new(),
        });
        self.clients.len() - 1
    }

    /// A desktop member with its own identity.
    pub fn add(&mut self, name: &str) -> usize {
        self.add_with(name, DESKTOP, SessionConfig::default())
    }

    /// A member with these capabilities and session settings.
    pub fn add_with(&mut self, name: &str, caps: Capabilities, config: SessionConfig) -> usize {
        let seed = u8::try_from(self.clients.len() + 1).unwrap();
        let device = format!("{name}-laptop");
        let s = session([seed; 32], name, &device, config, MemoryStore::default());
        self.client(name, Some(Member::new(s, member_config(caps))))
    }

    /// A client the test speaks for.
    pub fn add_raw(&mut self, name: &str) -> usize {
        self.client(name, None)
    }

    /// Client `i`'s member, which must be running.
    pub fn member(&self, i: usize) -> &Member<Session> {
        self.clients[i].member.as_ref().expect("a running member")
    }

    /// Client `i`'s member, which must be running.
    pub fn member_mut(&mut self, i: usize) -> &mut Member<Session> {
        self.clients[i].member.as_mut().expect("a running member")
    }

    /// Client `i`'s current connection, which the DS must have read.
    pub fn conn(&self, i: usize) -> ConnId {
        self.clients[i].conn.expect("connected")
    }

    /// Client `i` joins on a new connection.
    pub fn join(&mut self, i: usize) {
        let now = self.now;
        self.clients[i].conn = None;
        self.member_mut(i).join(now).unwrap();
        self.pump(i);
    }

    /// Client `i` leaves gracefully.
    pub fn leave(&mut self, i: usize) {
        let now = self.now;
        self.member_mut(i).leave(now);
        self.pump(i);
    }

    /// Queues what a member sent, keeps its events, checks its epoch.
    pub fn pump(&mut self, i: usize) {
        let c = &mut self.clients[i];
        let Some(m) = c.member.as_mut() else { return };
        while let Some(message) = m.poll_transmit() {
            self.up.push_back((i, message));
        }
        while let Some(event) = m.poll_event() {
            c.events.push(event);
        }
        let who = c.name.clone();
        if let Err(split) = self.ledger.observe(&who, m.group()) {
            panic!("{split}");
        }
    }

    /// Hands one message to the DS.
    pub fn deliver_to_ds(&mut self, i: usize, message: Request) {
        let now = self.now;
        let from = self.clients[i]
            .conn
            .filter(|_| matches!(message, Request::Control(_)));
        let result = self.room.handle(now, from, message).map(|conn| {
            self.owner.insert(conn, i);
            self.clients[i].conn = Some(conn);
        });
        if let Err(e) = result {
            self.ds_errors.push((self.clients[i].name.clone(), e));
        }
        self.drain_room();
    }

    /// Queues what the DS sent, logging entries and Welcomes on the way.
    pub fn drain_room(&mut self) {
        while let Some(transmit) = self.room.poll_transmit() {
            let message = transmit.message;
            if let Down::Entry { seq, entry } = &message
                && *seq > self.log.len() as u64
            {
                assert_eq!(*seq, self.log.len() as u64 + 1, "the log has no gaps");
                self.log.push(entry.clone());
            }
            let to: Vec<ConnId> = self.room.recipients(transmit.to).collect();
            for conn in to {
                if let Down::Welcome { welcome } = &message {
                    self.welcomes.push((conn, welcome.to_vec()));
                    if self.lose_welcome.remove(&self.owner[&conn]) {
                        continue;
                    }
                }
                self.down.push_back((conn, message.clone()));
            }
        }
    }

    /// Hands one message to a client, if it still listens on that
    /// connection.
    pub fn deliver_to_client(&mut self, conn: ConnId, message: Down) {
        let i = self.owner[&conn];
        if self.clients[i].conn != Some(conn) {
            return;
        }
        let now = self.now;
        let c = &mut self.clients[i];
        c.received.push(message.clone());
        if let Some(m) = c.member.as_mut()
            && let Err(e) = m.handle_message(now, message)
        {
            c.errors.push(e);
        }
        self.pump(i);
    }

    /// Delivers everything queued for the DS.
    pub fn flush_up(&mut self) {
        while let Some((i, message)) = self.up.pop_front() {
            self.deliver_to_ds(i, message);
        }
    }

    /// Delivers everything queued for clients (what they answer is queued).
    pub fn flush_down(&mut self) {
        while let Some((conn, message)) = self.down.pop_front() {
            self.deliver_to_client(conn, message);
        }
    }

    /// Delivers until nothing moves.
    pub fn run(&mut self) {
        for _ in 0..1000 {
            if self.up.is_empty() && self.down.is_empty() {
                return;
            }
            self.flush_up();
            self.flush_down();
        }
        panic!("messages still moving after 1000 rounds");
    }

    /// Time passes: the DS's deadline and every member's timers.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
        let now = self.now;
        self.room.handle_timeout(now);
        self.drain_room();
        for i in 0..self.clients.len() {
            if let Some(m) = self.clients[i].member.as_mut() {
                m.handle_timeout(now);
                self.pump(i);
            }
        }
    }

    /// Delivers and lets deadlines pass until the room is quiet.
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

    /// The process dies: its state is gone; with `lose_in_flight`, so is
    /// what it had sent that the DS had not read yet.
    pub fn crash(&mut self, i: usize, lose_in_flight: bool) -> Vec<Request> {
        self.clients[i].member = None;
        let mut lost = Vec::new();
        if lose_in_flight {
            let (gone, kept): (Vec<_>, Vec<_>) = self.up.drain(..).partition(|(c, _)| *c == i);
            self.up = kept.into();
            lost = gone.into_iter().map(|(_, m)| m).collect();
        }
        lost
    }

    /// The DS notices connection `i` is gone.
    pub fn disconnect(&mut self, i: usize) {
        let now = self.now;
        let conn = self.conn(i);
        self.room.handle_disconnect(now, conn);
        self.drain_room();
    }

    /// The members that are in the call: running, connected, not left.
    pub fn live(&self) -> Vec<&Member<Session>> {
        let conns: BTreeSet<ConnId> = self.room.connections().collect();
        self.clients
            .iter()
            .filter_map(|c| c.member.as_ref())
            .filter(|m| !matches!(m.status(), Status::Idle | Status::Left))
            .filter(|m| m.conn().is_some_and(|c| conns.contains(&c)))
            .collect()
    }

    /// Asserts the room converged with exactly `who` in the call, and
    /// returns the safety number they all show.
    pub fn assert_call(&self, who: &[usize]) -> SafetyNumber {
        let live = self.live();
        let mut expected: Vec<ConnId> = who.iter().map(|&i| self.conn(i)).collect();
        expected.sort_unstable();
        let mut present: Vec<ConnId> = live.iter().filter_map(|m| m.conn()).collect();
        present.sort_unstable();
        assert_eq!(present, expected, "who is in the call");
        let names: BTreeSet<String> = who
            .iter()
            .map(|&i| format!("{}-laptop", self.clients[i].name))
            .collect();
        for &i in who {
            let roster: BTreeSet<String> = self
                .member(i)
                .group()
                .roster()
                .into_iter()
                .map(|r| r.info.device_id)
                .collect();
            assert_eq!(roster, names, "{}'s roster", self.clients[i].name);
        }
        converged(&self.room, live)
            .unwrap_or_else(|e| panic!("not converged: {e}"))
            .expect("somebody is in the call")
    }

    /// The log's epoch; there must be a group.
    pub fn epoch(&self) -> u64 {
        self.room.state().epoch().expect("a group")
    }

    /// How many logged entries match.
    pub fn count(&self, pred: impl Fn(&Entry) -> bool) -> usize {
        self.log.iter().filter(|e| pred(e)).count()
    }

    /// Every logged commit and its committer.
    pub fn commits(&self) -> Vec<(ConnId, CommitMessage)> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Entry::Committed { conn, commit } => Some((*conn, commit.clone())),
                _ => None,
            })
            .collect()
    }

    /// What the DS refused from the client called `name`.
    pub fn errors_of(&self, name: &str) -> Vec<DsError> {
        self.ds_errors
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, e)| *e)
            .collect()
    }
}

/// A room with `names` in one group, all joined one after the other.
#[must_use]
pub fn call(names: &[&str]) -> (World, Vec<usize>) {
    let mut w = World::new();
    let ids: Vec<usize> = names.iter().map(|n| w.add(n)).collect();
    for &i in &ids {
        w.join(i);
        w.settle();
    }
    w.assert_call(&ids);
    (w, ids)
}
