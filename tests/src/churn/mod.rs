//! The engine of the committer simulation (`tests/committer_sim.rs`): one
//! room's delivery service ([`Room`]) and member slots, each a [`Member`]
//! around a real [`Session`], over a seeded network, on a virtual clock.
//!
//! - **Network.** Every message is encoded to its wire bytes and arrives
//!   after a random delay; each connection keeps FIFO order per direction,
//!   like a WebSocket. A Welcome from the DS is lost with some probability.
//! - **Churn**, in waves with quiet periods between them: joins, graceful
//!   leaves, crashes (the process and its state are gone; it restarts a
//!   little later around the same identity resumed from its store, or a
//!   new one, and the DS notices the dead connection only after a
//!   detection delay, dropping what it sends meanwhile; what the crashed
//!   client had in flight may or may not arrive), crashes aimed at the
//!   designated committer, and live members the DS wrongly declares gone.
//! - **Deadline.** The DS's commit deadline runs on the virtual clock.
//!
//! At every step it checks, and panics when one breaks: members at one
//! (group id, epoch) have one safety number and one set of leaves; every
//! `Committed` entry advances the log's epoch by one, comes from the
//! designated committer, and nothing else moves the epoch; a connection the
//! DS saw leave is never in a later commit's adds; no member is ahead of the
//! log. [`Sim::run`] returns once the churn has stopped and the room
//! converged ([`converged`]).
// A failed expectation here is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;

use satsuma_core::Instant;
use satsuma_core::committer::{
    DsError, Event, Member, RejoinReason, Request, Room, RoomConfig, Status,
};
use satsuma_core::mls::{MemoryStore, SatsumaCrypto, Session, SessionConfig};
use satsuma_core::wire::{ConnId, Down, Entry, Message, Open, ToClient, ToServer, Up};

use crate::sim::{DESKTOP, INTERCOM, Ledger, Rng, converged, member_config, session};

mod config;
mod events;

pub use config::{Config, Stats};
use events::{Ev, Scheduled};

/// One transport connection between a client and the DS.
#[derive(Debug)]
struct Link {
    slot: usize,
    /// The DS's id for it, once the DS read the `Join`.
    conn: Option<ConnId>,
    /// The client still reads from it.
    client_open: bool,
    /// The DS still reads from it.
    server_open: bool,
    /// The client crashed and what it had sent but not flushed is gone.
    lost_in_flight: bool,
    /// When the last message each way arrives: FIFO per direction.
    up_last: Instant,
    down_last: Instant,
}

/// A running client: one process lifetime of a slot.
#[derive(Debug)]
struct Client {
    member: Member<Session>,
    link: usize,
    /// Unique per process lifetime, so stale timers find nothing.
    life: u64,
    timer_at: Option<Instant>,
    seen_epoch: Option<(Vec<u8>, u64)>,
}

#[derive(Debug, Default)]
struct Slot {
    store: MemoryStore,
    /// How many identities this slot has had.
    identities: u32,
    /// Whether a restart is scheduled after a crash.
    restarting: bool,
    /// Whether the process ever ran.
    started: bool,
}

/// The simulated room: the DS, the member slots and the network.
#[derive(Debug)]
pub struct Sim {
    cfg: Config,
    now: Instant,
    rng: Rng,
    queue: BinaryHeap<Scheduled>,
    order: u64,
    in_flight: usize,
    room: Room,
    room_timer_at: Option<Instant>,
    links: Vec<Link>,
    conn_links: BTreeMap<ConnId, usize>,
    slots: Vec<Slot>,
    clients: Vec<Option<Client>>,
    lives: u64,
    /// Connections the DS logged as gone.
    departed: BTreeSet<ConnId>,
    refusals: BTreeMap<ConnId, u32>,
    ledger: Ledger,
    churning: bool,
    wave: u32,
    wave_left: u32,
    /// How many slots the current wave aims to have online.
    wave_target: usize,
    stats: Stats,
}

/// The granularity of members' timers.
const TIMER_TICK: Duration = Duration::from_millis(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Sim {
    /// A room about to start churning.
    #[must_use]
    pub fn new(cfg: Config) -> Self {
        let room = Room::new(RoomConfig {
            commit_deadline: cfg.commit_deadline,
            ..RoomConfig::default()
        });
        let mut sim = Self {
            cfg,
            now: Instant::ZERO,
            rng: Rng::new(cfg.seed),
            queue: BinaryHeap::new(),
            order: 0,
            in_flight: 0,
            room,
            room_timer_at: None,
            links: Vec::new(),
            conn_links: BTreeMap::new(),
            slots: (0..cfg.slots).map(|_| Slot::default()).collect(),
            clients: (0..cfg.slots).map(|_| None).collect(),
            lives: 0,
            departed: BTreeSet::new(),
            refusals: BTreeMap::new(),
            ledger: Ledger::default(),
            churning: true,
            wave: 0,
            wave_left: cfg.per_wave,
            wave_target: cfg.slots * 9 / 10,
            stats: Stats::default(),
        };
        sim.schedule(Instant::ZERO, Ev::Churn);
        sim
    }

    /// The delivery service.
    #[must_use]
    pub fn room(&self) -> &Room {
        &self.room
    }

    /// What happened so far.
    #[must_use]
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// What happened, once the run is over.
    #[must_use]
    pub fn into_stats(self) -> Stats {
        self.stats
    }

    /// Every (group id, epoch) members reached.
    #[must_use]
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The virtual time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }

    fn schedule(&mut self, at: Instant, ev: Ev) {
        if ev.in_flight() {
            self.in_flight += 1;
        }
        self.order += 1;
        self.queue.push(Scheduled {
            at,
            order: self.order,
            ev,
        });
    }

    fn delay(&mut self) -> Duration {
        ms(self.rng.range(self.cfg.delay_ms.0, self.cfg.delay_ms.1))
    }

    fn send_up(&mut self, link: usize, message: &ToServer) {
        let bytes = message
            .encode()
            .expect("every client message fits the wire");
        let at = self
            .now
            .saturating_add(self.delay())
            .max(self.links[link].up_last);
        self.links[link].up_last = at;
        self.schedule(at, Ev::ToServer { link, bytes });
    }

    fn send_down(&mut self, link: usize, message: &ToClient) {
        let bytes = message.encode().expect("every DS message fits the wire");
        let at = self
            .now
            .saturating_add(self.delay())
            .max(self.links[link].down_last);
        self.links[link].down_last = at;
        self.schedule(at, Ev::ToClient { link, bytes });
    }

    /// Runs until the room converges after the churn, and returns how long
    /// that took after the churn stopped.
    ///
    /// # Panics
    /// When an invariant breaks, or the room does not converge within
    /// four times [`Config::convergence_bound`].
    pub fn run(&mut self) -> Duration {
        let mut stopped_at: Option<Instant> = None;
        let bound = self.cfg.convergence_bound();
        while let Some(Scheduled { at, ev, .. }) = self.queue.pop() {
            assert!(at >= self.now, "time runs forward");
            self.now = at;
            if ev.in_flight() {
                self.in_flight -= 1;
            }
            self.stats.events += 1;
            self.step(ev);
            if !self.churning {
                let stop = *stopped_at.get_or_insert(self.now);
                let since = self.now.saturating_duration_since(stop);
                if self.in_flight == 0 && self.room.poll_timeout().is_none() {
                    let live: Vec<&Member<Session>> = self.live().collect();
                    if converged(&self.room, live).is_ok() {
                        return since;
                    }
                }
                if since > bound * 4 {
                    break;
                }
            }
        }
        let live: Vec<&Member<Session>> = self.live().collect();
        let why = converged(&self.room, live).unwrap_err();
        panic!(
            "seed {}: no convergence {:?} after the churn stopped: {why}\n{}",
            self.cfg.seed,
            stopped_at.map(|s| self.now.saturating_duration_since(s)),
            self.dump()
        );
    }

    /// The members that are connected and mean to stay.
    pub fn live(&self) -> impl Iterator<Item = &Member<Session>> + '_ {
        self.clients.iter().flatten().filter_map(|c| {
            let open = self.links[c.link].client_open && self.links[c.link].server_open;
            (open && !matches!(c.member.status(), Status::Left | Status::Idle)).then_some(&c.member)
        })
    }

    fn dump(&self) -> String {
        use std::fmt::Write as _;
        let mut out = format!(
            "now {:?}, room seq {} epoch {:?} designated {:?} lobby {:?} leaves {:?} stalls {}\n",
            Duration::from_micros(self.now.as_micros()),
            self.room.state().seq(),
            self.room.state().epoch(),
            self.room.state().designated(),
            self.room
                .state()
                .lobby()
                .iter()
                .map(|w| w.conn)
                .collect::<Vec<_>>(),
            self.room.state().leaves(),
            self.room.state().stalls(),
        );
        for (slot, client) in self.clients.iter().enumerate() {
            if let Some(c) = client {
                let l = &self.links[c.link];
                let _ = writeln!(
                    out,
                    "slot {slot}: {:?} conn {:?} epoch {:?} leaf {:?} pending {} link open {}/{}",
                    c.member.status(),
                    c.member.conn(),
                    c.member.group().epoch(),
                    c.member.group().own_index(),
                    c.member.has_pending(),
                    l.client_open,
                    l.server_open
                );
            }
        }
        out
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::ToServer { link, bytes } => self.deliver_up(link, &bytes),
            Ev::Disconnect { link } => {
                if self.links[link].server_open {
                    self.links[link].server_open = false;
                    if let Some(conn) = self.links[link].conn {
                        self.ds(None, |room, now| {
                            room.handle_disconnect(now, conn);
                            Ok(None)
                        });
                        self.departed.insert(conn);
                    }
                }
            }
            Ev::ToClient { link, bytes } => {
                let slot = self.links[link].slot;
                if !self.links[link].client_open {
                    return;
                }
                let now = self.now;
                let client = self.clients[slot]
                    .as_mut()
                    .expect("an open link has a client");
                if let Err(e) = client.member.handle_bytes(now, &bytes) {
                    let kind = format!("{e:?}");
                    let kind = kind.split(['(', ' ']).next().unwrap_or("").to_owned();
                    *self.stats.member_errors.entry(kind).or_default() += 1;
                }
                self.drain_member(slot);
            }
            Ev::RoomTimer => {
                self.room_timer_at = None;
                if self.room.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.ds(None, |room, now| {
                        room.handle_timeout(now);
                        Ok(None)
                    });
                }
                self.arm_room_timer();
            }
            Ev::MemberTimer { slot, life } => {
                let now = self.now;
                if let Some(c) = self.clients[slot].as_mut().filter(|c| c.life == life) {
                    c.timer_at = None;
                    c.member.handle_timeout(now);
                    if c.member.poll_timeout().is_some_and(|t| t <= now) {
                        // Handled, yet due again at once: a driver that
                        // sleeps until `poll_timeout` would spin here.
                        self.stats.timer_spins += 1;
                    }
                    self.drain_member(slot);
                }
            }
            Ev::Churn => self.churn(),
            Ev::Restart { slot } => {
                self.slots[slot].restarting = false;
                if self.churning {
                    self.stats.restarts += 1;
                    self.start(slot);
                }
            }
            Ev::Rejoin { slot, life } => {
                let idle = self.clients[slot]
                    .as_ref()
                    .is_some_and(|c| c.life == life && c.member.status() == Status::Idle);
                if idle {
                    self.connect(slot, self.now);
                }
            }
        }
    }

    fn deliver_up(&mut self, link: usize, bytes: &[u8]) {
        let l = &self.links[link];
        if !l.server_open || l.lost_in_flight {
            return;
        }
        let message = ToServer::decode(bytes).expect("the client's bytes decode");
        match message {
            ToServer::Open(Open::Join(join)) => {
                let joined = self.ds(Some(link), |room, now| {
                    room.handle(now, None, Request::Join(join)).map(Some)
                });
                assert!(joined, "the room has space for every slot");
            }
            ToServer::Control(message) => {
                let conn = self.links[link].conn.expect("Join comes first on a link");
                if message == Up::Leave {
                    self.links[link].server_open = false;
                    self.departed.insert(conn);
                }
                self.ds(None, |room, now| {
                    room.handle_message(now, conn, message).map(|()| None)
                });
            }
            other => panic!("a member sent {other:?}"),
        }
    }

    /// Calls the DS, checks what it logged, and sends what it says; a new
    /// connection's id is tied to `joining`. Whether the DS took the input.
    fn ds(
        &mut self,
        joining: Option<usize>,
        call: impl FnOnce(&mut Room, Instant) -> Result<Option<ConnId>, DsError>,
    ) -> bool {
        let before = self.room.state().clone();
        let result = call(&mut self.room, self.now);
        if let (Ok(Some(conn)), Some(link)) = (&result, joining) {
            self.links[link].conn = Some(*conn);
            self.conn_links.insert(*conn, link);
        }
        let accepted = result.is_ok();
        if let Err(e) = result {
            let kind = format!("{e:?}");
            let kind = kind.split(['(', ' ', '{']).next().unwrap_or("").to_owned();
            let kind = match e {
                DsError::Log(l) => {
                    format!(
                        "Log::{}",
                        format!("{l:?}").split(['(', ' ', '{']).next().unwrap_or("")
                    )
                }
                _ => kind,
            };
            *self.stats.ds_errors.entry(kind).or_default() += 1;
        }
        let mut out = Vec::new();
        while let Some(t) = self.room.poll_transmit() {
            out.push(t);
        }
        let after = self.room.state();
        assert!(
            after.seq() == before.seq() || after.seq() == before.seq() + 1,
            "one DS input logs at most one entry"
        );
        let entry = out.iter().find_map(|t| match &t.message {
            Down::Entry { seq, entry } if *seq == after.seq() && *seq > before.seq() => {
                Some(entry.clone())
            }
            _ => None,
        });
        match &entry {
            Some(Entry::Committed { conn, commit }) => {
                let (from, to) = (before.group().unwrap(), after.group().unwrap());
                assert_eq!(from.id, to.id, "a commit keeps the group");
                assert_eq!(
                    commit.epoch, from.epoch,
                    "a commit is for the current epoch"
                );
                assert_eq!(
                    to.epoch,
                    from.epoch + 1,
                    "a commit advances the epoch by one"
                );
                assert_eq!(
                    before.designated(),
                    Some(*conn),
                    "only the designated commits"
                );
                for add in commit.adds.iter() {
                    assert!(
                        !self.departed.contains(add),
                        "seed {}: {add} left but is added by the commit to epoch {}",
                        self.cfg.seed,
                        to.epoch
                    );
                    let dead = self
                        .conn_links
                        .get(add)
                        .is_none_or(|&l| !self.links[l].client_open);
                    if dead {
                        self.stats.adds_of_dead += 1;
                    }
                }
                self.stats.commits += 1;
                *self
                    .stats
                    .commit_sizes
                    .entry(commit.adds.len() + commit.removes.len())
                    .or_default() += 1;
                self.stats.max_epoch = self.stats.max_epoch.max(to.epoch);
            }
            Some(Entry::Created { .. }) => {
                assert!(
                    before.group().is_none(),
                    "a group is created only when there is none"
                );
                assert_eq!(after.epoch(), Some(0));
                self.stats.created += 1;
            }
            other => {
                let dissolved =
                    matches!(other, Some(Entry::Left { .. }) | None) && after.group().is_none();
                assert!(
                    after.group() == before.group() || dissolved,
                    "only a commit moves the epoch (entry {other:?})"
                );
                if matches!(other, Some(Entry::Stalled)) {
                    self.stats.stalls += 1;
                    if !self.churning {
                        self.stats.stalls_after_churn += 1;
                    }
                }
                if matches!(other, Some(Entry::Proposed { .. })) {
                    self.stats.proposals += 1;
                }
                if let Some(Entry::Refused { conn, .. }) = other {
                    self.stats.refused += 1;
                    let n = self.refusals.entry(*conn).or_default();
                    *n += 1;
                    self.stats.most_refusals_of_one = self.stats.most_refusals_of_one.max(*n);
                }
            }
        }
        for transmit in out {
            let message = ToClient::Control(transmit.message);
            let to: Vec<ConnId> = self.room.recipients(transmit.to).collect();
            for conn in to {
                let link = self.conn_links[&conn];
                if matches!(message, ToClient::Control(Down::Welcome { .. })) {
                    self.stats.welcomes += 1;
                    if self.rng.chance(self.cfg.lost_welcome) {
                        self.stats.lost_welcomes += 1;
                        continue;
                    }
                }
                self.send_down(link, &message);
            }
        }
        self.arm_room_timer();
        accepted
    }

    fn arm_room_timer(&mut self) {
        if let Some(at) = self.room.poll_timeout()
            && self.room_timer_at.is_none_or(|t| t > at)
        {
            self.room_timer_at = Some(at);
            self.schedule(at.max(self.now), Ev::RoomTimer);
        }
    }

    /// Sends what a member queued, reacts to its events and checks it.
    fn drain_member(&mut self, slot: usize) {
        let now = self.now;
        let mut sends = Vec::new();
        let mut evicted = false;
        let (link, life) = {
            let c = self.clients[slot].as_mut().expect("drained members run");
            while let Some(m) = c.member.poll_transmit() {
                sends.push(m);
            }
            while let Some(e) = c.member.poll_event() {
                match e {
                    Event::Rejoining(reason) => {
                        let name = match reason {
                            RejoinReason::Failed(e) => format!("Failed({e:?})"),
                            other => format!("{other:?}"),
                        };
                        *self.stats.rejoins.entry(name).or_default() += 1;
                    }
                    Event::Evicted => evicted = true,
                    Event::Stuck(_) => self.stats.stuck += 1,
                    _ => {}
                }
            }
            (c.link, c.life)
        };
        for m in sends {
            self.send_up(link, &m.into());
        }
        if evicted {
            // The DS closed this connection; the app opens a new one.
            self.stats.evictions += 1;
            self.links[link].client_open = false;
            let at = now.saturating_add(ms(self.rng.range(100, 600)));
            self.schedule(at, Ev::Rejoin { slot, life });
        }
        let c = self.clients[slot].as_mut().expect("drained members run");
        let group = c.member.group();
        let here = group
            .group_id()
            .zip(group.epoch())
            .map(|(id, e)| (id.to_vec(), e));
        if here.is_some() && here != c.seen_epoch {
            let who = format!("slot {slot} ({})", group.info().device_id);
            if let Err(split) = self.ledger.observe(&who, group) {
                panic!("seed {}: {split}", self.cfg.seed);
            }
            if let (Some((id, epoch)), Some(logged)) = (&here, self.room.state().group())
                && id[..] == logged.id[..]
            {
                assert!(*epoch <= logged.epoch, "{who} is ahead of the log");
            }
            c.seen_epoch = here;
        }
        if let Some(at) = c.member.poll_timeout()
            && c.timer_at.is_none_or(|t| t > at)
        {
            // A timer never fires sooner than a tick after now, as with a
            // real runtime's timer wheel, so a timeout that stays in the
            // past costs a tick, not the whole run.
            let at = at.max(now.saturating_add(TIMER_TICK));
            c.timer_at = Some(at);
            self.schedule(at, Ev::MemberTimer { slot, life });
        }
    }

    /// Opens a new link for slot's client and joins on it.
    fn connect(&mut self, slot: usize, now: Instant) {
        let link = self.links.len();
        self.links.push(Link {
            slot,
            conn: None,
            client_open: true,
            server_open: true,
            lost_in_flight: false,
            up_last: now,
            down_last: now,
        });
        let c = self.clients[slot].as_mut().expect("connecting clients run");
        c.link = link;
        c.member.join(now).expect("an idle member can join");
        self.drain_member(slot);
    }

    /// Starts slot's process: the member it had if it left gracefully, or a
    /// fresh one around its stored identity or a new identity.
    fn start(&mut self, slot: usize) {
        let now = self.now;
        if self.clients[slot].is_none() {
            let config = SessionConfig {
                self_update_interval: self.cfg.self_update,
                ..SessionConfig::default()
            };
            let store = self.slots[slot].store.clone();
            let resume = self.slots[slot].started && self.rng.chance(500);
            let session = if resume {
                self.stats.resumed += 1;
                Session::resume(
                    now,
                    SatsumaCrypto::from_seed(self.rng.seed()),
                    config,
                    store,
                )
                .expect("the stored session resumes")
            } else {
                self.slots[slot].identities += 1;
                let device = format!("slot{slot:02}-{}", self.slots[slot].identities);
                session(
                    self.rng.seed(),
                    &format!("Member {slot}"),
                    &device,
                    config,
                    store,
                )
            };
            self.slots[slot].started = true;
            let caps = if slot >= self.cfg.slots - self.cfg.intercoms {
                INTERCOM
            } else {
                DESKTOP
            };
            self.lives += 1;
            self.clients[slot] = Some(Client {
                member: Member::new(session, member_config(caps)),
                link: usize::MAX,
                life: self.lives,
                timer_at: None,
                seen_epoch: None,
            });
        }
        self.connect(slot, now);
    }

    fn online(&self, slot: usize) -> bool {
        self.clients[slot].as_ref().is_some_and(|c| {
            self.links[c.link].client_open
                && !matches!(c.member.status(), Status::Left | Status::Idle)
        })
    }

    /// One churn event, then the next one scheduled.
    fn churn(&mut self) {
        let online: Vec<usize> = (0..self.cfg.slots).filter(|&s| self.online(s)).collect();
        self.stats.max_live = self.stats.max_live.max(online.len());
        let offline: Vec<usize> = (0..self.cfg.slots)
            .filter(|&s| {
                !self.slots[s].restarting
                    && self.clients[s]
                        .as_ref()
                        .is_none_or(|c| matches!(c.member.status(), Status::Left))
            })
            .collect();
        let grow = online.len() < self.wave_target;
        let join = !offline.is_empty()
            && (online.is_empty() || self.rng.chance(if grow { 850 } else { 150 }));
        if join {
            let slot = offline[self.rng.index(offline.len())];
            self.stats.joins += 1;
            self.start(slot);
        } else if !online.is_empty() {
            let designated = self
                .room
                .state()
                .designated()
                .and_then(|c| self.conn_links.get(&c))
                .map(|&l| self.links[l].slot)
                .filter(|&s| online.contains(&s));
            let (slot, aimed) = match designated {
                Some(s) if self.rng.chance(self.cfg.target_committer) => (s, true),
                _ => (online[self.rng.index(online.len())], false),
            };
            let roll = self.rng.below(1000);
            let link = self.clients[slot].as_ref().unwrap().link;
            if roll < 100 && self.links[link].conn.is_some() && self.links[link].server_open {
                self.false_disconnect(link);
            } else if roll < 550 {
                self.crash(slot);
                if aimed {
                    self.stats.committer_crashes += 1;
                }
            } else {
                self.stats.leaves += 1;
                let now = self.now;
                let c = self.clients[slot].as_mut().unwrap();
                c.member.leave(now);
                self.drain_member(slot);
                self.links[link].client_open = false;
            }
        }
        // The next event: later in this wave, or the next wave after a
        // quiet period, or none once enough churn happened.
        self.wave_left = self.wave_left.saturating_sub(1);
        if self.wave_left == 0 {
            if self.stats.churn() >= self.cfg.churn_events {
                self.churning = false;
                return;
            }
            self.wave += 1;
            self.wave_left = self.cfg.per_wave;
            let lo = self.cfg.slots / 3;
            self.wave_target = usize::try_from(self.rng.range(
                u64::try_from(lo).unwrap(),
                u64::try_from(self.cfg.slots).unwrap(),
            ))
            .unwrap();
            let at = self.now.saturating_add(self.cfg.quiet);
            self.schedule(at, Ev::Churn);
        } else {
            let mean = self.cfg.wave.as_millis() / u128::from(self.cfg.per_wave);
            let gap = self.rng.range(0, 2 * u64::try_from(mean).unwrap());
            self.schedule(self.now.saturating_add(ms(gap)), Ev::Churn);
        }
    }

    fn crash(&mut self, slot: usize) {
        self.stats.crashes += 1;
        let c = self.clients[slot]
            .take()
            .expect("only running clients crash");
        let link = c.link;
        self.links[link].client_open = false;
        self.links[link].lost_in_flight = self.rng.chance(self.cfg.lose_in_flight);
        let detect = ms(self.rng.range(self.cfg.detect_ms.0, self.cfg.detect_ms.1));
        let at = self
            .now
            .saturating_add(detect)
            .max(self.links[link].up_last);
        self.schedule(at, Ev::Disconnect { link });
        self.slots[slot].restarting = true;
        let restart = ms(self.rng.range(self.cfg.restart_ms.0, self.cfg.restart_ms.1));
        self.schedule(self.now.saturating_add(restart), Ev::Restart { slot });
    }

    fn false_disconnect(&mut self, link: usize) {
        self.stats.false_disconnects += 1;
        let conn = self.links[link].conn.expect("checked by the caller");
        self.links[link].server_open = false;
        self.departed.insert(conn);
        self.ds(None, |room, now| {
            room.handle_disconnect(now, conn);
            Ok(None)
        });
    }
}
