//! The engine of the committer simulation (`tests/committer_sim.rs`): one
//! room's delivery service and member slots, each a [`Member`] around a
//! real [`Session`], on a [`Net`] with a seeded network and a virtual
//! clock.
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
use satsuma_core::committer::{DsError, Event, Member, RejoinReason, Room, RoomConfig, Status};
use satsuma_core::mls::{MemoryStore, SatsumaCrypto, Session, SessionConfig};
use satsuma_core::wire::{ConnId, Entry};
use satsuma_sim::fixtures::{DESKTOP, INTERCOM, member_config, session};
use satsuma_sim::{Faults, Net, Watch};

use crate::checks::{Ledger, converged};

mod config;
mod events;

pub use config::{Config, Stats};
use events::{Ev, Scheduled};

/// A running client: one process lifetime of a slot (its member lives in
/// the [`Net`]).
#[derive(Debug)]
struct Client {
    /// Unique per process lifetime, so stale timers find nothing.
    life: u64,
    timer_at: Option<Instant>,
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

/// What every member input is checked for: one view per (group id, epoch)
/// and no member ahead of the log, each time a member reaches an epoch.
#[derive(Debug)]
pub struct Checks {
    seed: u64,
    ledger: Ledger,
    seen: BTreeMap<usize, (Vec<u8>, u64)>,
}

impl Watch<Session> for Checks {
    fn member(&mut self, room: &Room, slot: usize, member: &Member<Session>) {
        let group = member.group();
        let Some(here) = group.group_id().zip(group.epoch()) else {
            return;
        };
        if self
            .seen
            .get(&slot)
            .is_some_and(|(id, e)| (&id[..], *e) == here)
        {
            return;
        }
        let who = format!("slot {slot} ({})", group.info().device_id);
        if let Err(split) = self.ledger.observe(&who, group) {
            panic!("seed {}: {split}", self.seed);
        }
        if let Some(logged) = room.state().group()
            && here.0 == &logged.id[..]
        {
            assert!(here.1 <= logged.epoch, "{who} is ahead of the log");
        }
        self.seen.insert(slot, (here.0.to_vec(), here.1));
    }
}

/// The room as it was before an input, for checking what it logged.
struct Before {
    logged: usize,
    errors: usize,
    group: Option<(Vec<u8>, u64)>,
    designated: Option<ConnId>,
}

/// The simulated room: the network with the DS and the member slots, and
/// what happens to them when.
#[derive(Debug)]
pub struct Sim {
    cfg: Config,
    net: Net<Session, Checks>,
    queue: BinaryHeap<Scheduled>,
    order: u64,
    /// Scheduled events that are signals in flight.
    in_flight: usize,
    room_timer_at: Option<Instant>,
    slots: Vec<Slot>,
    clients: Vec<Option<Client>>,
    lives: u64,
    /// Connections the DS logged as gone.
    departed: BTreeSet<ConnId>,
    refusals: BTreeMap<ConnId, u32>,
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
        let room = RoomConfig {
            commit_deadline: cfg.commit_deadline,
            ..RoomConfig::default()
        };
        let checks = Checks {
            seed: cfg.seed,
            ledger: Ledger::default(),
            seen: BTreeMap::new(),
        };
        let faults = Faults {
            delay: (ms(cfg.delay_ms.0), ms(cfg.delay_ms.1)),
            lost_welcomes: cfg.lost_welcome,
            ..Faults::default()
        };
        let mut net = Net::with_watch(room, checks)
            .faults(faults, cfg.seed)
            .wire();
        for _ in 0..cfg.slots {
            net.add(None);
        }
        let mut sim = Self {
            cfg,
            net,
            queue: BinaryHeap::new(),
            order: 0,
            in_flight: 0,
            room_timer_at: None,
            slots: (0..cfg.slots).map(|_| Slot::default()).collect(),
            clients: (0..cfg.slots).map(|_| None).collect(),
            lives: 0,
            departed: BTreeSet::new(),
            refusals: BTreeMap::new(),
            churning: true,
            wave: 0,
            // The first wave fills every slot: the room holds all of them
            // at once before the churn proper begins.
            wave_left: u32::try_from(cfg.slots).unwrap_or(u32::MAX),
            wave_target: cfg.slots,
            stats: Stats::default(),
        };
        sim.schedule(Instant::ZERO, Ev::Churn);
        sim
    }

    /// The delivery service.
    #[must_use]
    pub fn room(&self) -> &Room {
        self.net.room()
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
        &self.net.watch().ledger
    }

    /// The virtual time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.net.now()
    }

    /// The members that are connected and mean to stay.
    pub fn live(&self) -> impl Iterator<Item = &Member<Session>> + '_ {
        self.net.live()
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

    /// Runs until the room converges after the churn, and returns how long
    /// that took after the churn stopped.
    ///
    /// # Panics
    /// When an invariant breaks, or the room does not converge within
    /// four times [`Config::convergence_bound`].
    pub fn run(&mut self) -> Duration {
        let mut stopped_at: Option<Instant> = None;
        let bound = self.cfg.convergence_bound();
        loop {
            let next = self.queue.peek().map(|s| s.at);
            let arrival = self.net.next_arrival();
            match (next, arrival) {
                (None, None) => break,
                (Some(at), arrival) if arrival.is_none_or(|a| at <= a) => {
                    let Some(Scheduled { ev, .. }) = self.queue.pop() else {
                        unreachable!("peeked")
                    };
                    self.net.set_now(at);
                    if ev.in_flight() {
                        self.in_flight -= 1;
                    }
                    self.step(ev);
                }
                _ => {
                    let before = self.before();
                    let i = self.net.step().expect("a message arrives");
                    self.after_room(&before);
                    self.after_member(i);
                }
            }
            self.stats.events += 1;
            if !self.churning {
                let now = self.now();
                let stop = *stopped_at.get_or_insert(now);
                let since = now.saturating_duration_since(stop);
                let quiet = self.in_flight == 0 && self.net.is_quiet();
                if quiet
                    && self.room().poll_timeout().is_none()
                    && converged(self.room(), self.live()).is_ok()
                {
                    return since;
                }
                if since > bound * 4 {
                    break;
                }
            }
        }
        let why = converged(self.room(), self.live()).unwrap_err();
        panic!(
            "seed {}: no convergence {:?} after the churn stopped: {why}\n{}",
            self.cfg.seed,
            stopped_at.map(|s| self.now().saturating_duration_since(s)),
            self.dump()
        );
    }

    fn dump(&self) -> String {
        use std::fmt::Write as _;
        let state = self.room().state();
        let mut out = format!(
            "now {:?}, room seq {} epoch {:?} designated {:?} lobby {:?} leaves {:?} stalls {}\n",
            Duration::from_micros(self.now().as_micros()),
            state.seq(),
            state.epoch(),
            state.designated(),
            state.lobby().iter().map(|w| w.conn).collect::<Vec<_>>(),
            state.leaves(),
            state.stalls(),
        );
        for (slot, m) in self.net.members() {
            let _ = writeln!(
                out,
                "slot {slot}: {:?} conn {:?} epoch {:?} leaf {:?} pending {} link open {}/{}",
                m.status(),
                m.conn(),
                m.group().epoch(),
                m.group().own_index(),
                m.has_pending(),
                self.net.is_open(slot),
                m.conn()
                    .is_some_and(|c| self.room().connections().any(|d| d == c)),
            );
        }
        out
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Disconnect { slot, link } => {
                if let Some(conn) = self.net.conn_of_link(slot, link) {
                    self.disconnect(conn);
                }
            }
            Ev::RoomTimer => {
                self.room_timer_at = None;
                if self.room().poll_timeout().is_some_and(|t| t <= self.now()) {
                    let before = self.before();
                    self.net.timeout_room();
                    self.after_room(&before);
                }
                self.arm_room_timer();
            }
            Ev::MemberTimer { slot, life } => {
                if let Some(c) = self.clients[slot].as_mut().filter(|c| c.life == life) {
                    c.timer_at = None;
                    self.net.input(slot, Member::handle_timeout);
                    let now = self.now();
                    let due = self.net.member(slot).and_then(Member::poll_timeout);
                    if due.is_some_and(|t| t <= now) {
                        // Handled, yet due again at once: a driver that
                        // sleeps until `poll_timeout` would spin here.
                        self.stats.timer_spins += 1;
                    }
                    self.after_member(slot);
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
                let idle = self.clients[slot].as_ref().is_some_and(|c| c.life == life)
                    && self
                        .net
                        .member(slot)
                        .is_some_and(|m| m.status() == Status::Idle);
                if idle {
                    self.connect(slot);
                }
            }
        }
    }

    /// The DS notices `conn` is gone (or wrongly believes so).
    fn disconnect(&mut self, conn: ConnId) {
        let before = self.before();
        self.net.disconnect_conn(conn);
        self.after_room(&before);
    }

    fn before(&self) -> Before {
        let state = self.room().state();
        Before {
            logged: self.net.log().len(),
            errors: self.net.ds_errors().len(),
            group: state.group().map(|g| (g.id.to_vec(), g.epoch)),
            designated: state.designated(),
        }
    }

    /// Checks what the DS logged since `before`, counts what it refused,
    /// and arms its deadline.
    fn after_room(&mut self, before: &Before) {
        for (_, e) in &self.net.ds_errors()[before.errors..] {
            assert_ne!(*e, DsError::RoomFull, "the room has space for every slot");
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
        let log = self.net.log();
        assert!(
            log.len() <= before.logged + 1,
            "one DS input logs at most one entry"
        );
        let entry = log.get(before.logged).cloned();
        let after = self
            .net
            .room()
            .state()
            .group()
            .map(|g| (g.id.to_vec(), g.epoch));
        match &entry {
            Some(Entry::Committed { conn, commit }) => {
                let (from, to) = (before.group.clone().unwrap(), after.unwrap());
                assert_eq!(from.0, to.0, "a commit keeps the group");
                assert_eq!(commit.epoch, from.1, "a commit is for the current epoch");
                assert_eq!(to.1, from.1 + 1, "a commit advances the epoch by one");
                assert_eq!(
                    before.designated,
                    Some(*conn),
                    "only the designated commits"
                );
                for add in commit.adds.iter() {
                    assert!(
                        !self.departed.contains(add),
                        "seed {}: {add} left but is added by the commit to epoch {}",
                        self.cfg.seed,
                        to.1
                    );
                    let dead = self
                        .net
                        .owner(*add)
                        .is_none_or(|s| !self.net.is_open(s) || self.net.conn(s) != Some(*add));
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
                self.stats.max_epoch = self.stats.max_epoch.max(to.1);
            }
            Some(Entry::Created { .. }) => {
                assert!(
                    before.group.is_none(),
                    "a group is created only when there is none"
                );
                assert_eq!(after.map(|g| g.1), Some(0));
                self.stats.created += 1;
            }
            other => {
                let dissolved = matches!(other, Some(Entry::Left { .. }) | None) && after.is_none();
                assert!(
                    after == before.group || dissolved,
                    "only a commit moves the epoch (entry {other:?})"
                );
                match other {
                    Some(Entry::Stalled) => {
                        self.stats.stalls += 1;
                        if !self.churning {
                            self.stats.stalls_after_churn += 1;
                        }
                    }
                    Some(Entry::Proposed { .. }) => self.stats.proposals += 1,
                    Some(Entry::Refused { conn, .. }) => {
                        self.stats.refused += 1;
                        let n = self.refusals.entry(*conn).or_default();
                        *n += 1;
                        self.stats.most_refusals_of_one = self.stats.most_refusals_of_one.max(*n);
                    }
                    Some(Entry::Left { conn }) => {
                        self.departed.insert(*conn);
                    }
                    _ => {}
                }
            }
        }
        let net = self.net.stats();
        self.stats.welcomes = net.welcomes;
        self.stats.lost_welcomes = net.lost_welcomes;
        self.arm_room_timer();
    }

    fn arm_room_timer(&mut self) {
        if let Some(at) = self.room().poll_timeout()
            && self.room_timer_at.is_none_or(|t| t > at)
        {
            self.room_timer_at = Some(at);
            self.schedule(at.max(self.now()), Ev::RoomTimer);
        }
    }

    /// Reacts to what slot's member told the application and arms its
    /// timer.
    fn after_member(&mut self, slot: usize) {
        let Some(life) = self.clients[slot].as_ref().map(|c| c.life) else {
            return;
        };
        let now = self.now();
        let mut evicted = false;
        for e in self.net.take_events(slot) {
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
        for e in self.net.take_errors(slot) {
            let kind = format!("{e:?}");
            let kind = kind.split(['(', ' ']).next().unwrap_or("").to_owned();
            *self.stats.member_errors.entry(kind).or_default() += 1;
        }
        if evicted {
            // The DS closed this connection; the app opens a new one.
            self.stats.evictions += 1;
            self.net.close(slot);
            let at = now.saturating_add(ms(self.net.rng().range(100, 600)));
            self.schedule(at, Ev::Rejoin { slot, life });
        }
        let due = self.net.member(slot).and_then(Member::poll_timeout);
        let c = self.clients[slot].as_mut().expect("checked above");
        if let Some(at) = due
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

    /// Slot's member joins on a new connection.
    fn connect(&mut self, slot: usize) {
        self.net.join(slot).expect("an idle member can join");
        self.after_member(slot);
    }

    /// Starts slot's process: the member it had if it left gracefully, or a
    /// fresh one around its stored identity or a new identity.
    fn start(&mut self, slot: usize) {
        let now = self.now();
        if self.clients[slot].is_none() {
            let config = SessionConfig {
                self_update_interval: self.cfg.self_update,
                ..SessionConfig::default()
            };
            let store = self.slots[slot].store.clone();
            let resume = self.slots[slot].started && self.net.rng().chance(500);
            let session = if resume {
                self.stats.resumed += 1;
                Session::resume(
                    now,
                    SatsumaCrypto::from_seed(self.net.rng().seed()),
                    config,
                    store,
                )
                .expect("the stored session resumes")
            } else {
                self.slots[slot].identities += 1;
                let device = format!("slot{slot:02}-{}", self.slots[slot].identities);
                session(
                    self.net.rng().seed(),
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
            self.net
                .restart(slot, Member::new(session, member_config(caps)));
            self.clients[slot] = Some(Client {
                life: self.lives,
                timer_at: None,
            });
        }
        self.connect(slot);
    }

    fn online(&self, slot: usize) -> bool {
        self.net.is_open(slot)
            && self
                .net
                .member(slot)
                .is_some_and(|m| !matches!(m.status(), Status::Left | Status::Idle))
    }

    /// One churn event, then the next one scheduled.
    fn churn(&mut self) {
        let online: Vec<usize> = (0..self.cfg.slots).filter(|&s| self.online(s)).collect();
        self.stats.max_live = self.stats.max_live.max(online.len());
        let in_group = (0..self.cfg.slots)
            .filter(|&s| {
                self.net
                    .member(s)
                    .is_some_and(|m| m.status() == Status::InGroup)
            })
            .count();
        self.stats.max_in_group = self.stats.max_in_group.max(in_group);
        let offline: Vec<usize> = (0..self.cfg.slots)
            .filter(|&s| {
                !self.slots[s].restarting
                    && self
                        .net
                        .member(s)
                        .is_none_or(|m| m.status() == Status::Left)
            })
            .collect();
        let grow = online.len() < self.wave_target;
        let filling = self.wave == 0;
        let join = !offline.is_empty()
            && (online.is_empty()
                || filling
                || self.net.rng().chance(if grow { 850 } else { 150 }));
        if join {
            let slot = offline[self.net.rng().index(offline.len())];
            self.stats.joins += 1;
            self.start(slot);
        } else if !online.is_empty() {
            let designated = self
                .room()
                .state()
                .designated()
                .and_then(|c| self.net.owner(c))
                .filter(|&s| online.contains(&s));
            let (slot, aimed) = match designated {
                Some(s) if self.net.rng().chance(self.cfg.target_committer) => (s, true),
                _ => (online[self.net.rng().index(online.len())], false),
            };
            let roll = self.net.rng().below(1000);
            let connected = self
                .net
                .conn(slot)
                .filter(|&c| self.room().connections().any(|d| d == c));
            if roll < 100
                && let Some(conn) = connected
            {
                self.stats.false_disconnects += 1;
                self.disconnect(conn);
            } else if roll < 550 {
                self.crash(slot);
                if aimed {
                    self.stats.committer_crashes += 1;
                }
            } else {
                self.stats.leaves += 1;
                self.net.leave(slot);
                self.after_member(slot);
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
            self.wave_target = usize::try_from(self.net.rng().range(
                u64::try_from(lo).unwrap(),
                u64::try_from(self.cfg.slots).unwrap(),
            ))
            .unwrap();
            let at = self.now().saturating_add(self.cfg.quiet);
            self.schedule(at, Ev::Churn);
        } else {
            let mean = self.cfg.wave.as_millis() / u128::from(self.cfg.per_wave);
            let gap = self.net.rng().range(0, 2 * u64::try_from(mean).unwrap());
            self.schedule(self.now().saturating_add(ms(gap)), Ev::Churn);
        }
    }

    fn crash(&mut self, slot: usize) {
        self.stats.crashes += 1;
        self.clients[slot]
            .take()
            .expect("only running clients crash");
        let lose = self.net.rng().chance(self.cfg.lose_in_flight);
        let link = self.net.link(slot);
        self.net.crash(slot, lose);
        let detect = ms(self
            .net
            .rng()
            .range(self.cfg.detect_ms.0, self.cfg.detect_ms.1));
        let at = self
            .now()
            .saturating_add(detect)
            .max(self.net.up_drained_at(slot));
        self.schedule(at, Ev::Disconnect { slot, link });
        self.slots[slot].restarting = true;
        let restart = ms(self
            .net
            .rng()
            .range(self.cfg.restart_ms.0, self.cfg.restart_ms.1));
        self.schedule(self.now().saturating_add(restart), Ev::Restart { slot });
    }
}
