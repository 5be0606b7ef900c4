//! Random operation sequences against the designated committer: one `Room`
//! (the delivery service) and four `Member<Session>`s with real MLS sessions
//! (fixed seeds, so every input replays exactly), checking invariants after
//! every operation and convergence at the end.
//!
//! # The script
//!
//! The input is read one operation at a time, at most `MAX_OPS` of them; an
//! operation is a byte (`op % 16` the kind, `op >> 4` the member) and, for
//! some kinds, more bytes:
//!
//! | kind | operation |
//! |---|---|
//! | 0 | member joins (if idle or left): a new connection |
//! | 1 | member leaves (`Member::leave`; its `Leave` still has to be delivered) |
//! | 2 | member crashes: its queues are dropped, `Room::handle_disconnect`, `Member::handle_disconnect` |
//! | 3, 4, 5 | deliver the next DS → member message |
//! | 6, 7 | deliver the next member → DS message |
//! | 8 | drop the first Welcome queued for the member |
//! | 9 | DS timeout: time jumps to `Room::poll_timeout()` (or 1 s on) |
//! | 10 | time passes: one more byte of seconds |
//! | 11 | a queued DS → member message, mutated (`mls_common::mutate`), delivered as bytes through `Member::handle_bytes`; the real one stays queued |
//! | 12 | a queued DS → member message delivered twice: a copy now, the real one in its turn |
//! | 13 | garbage to the DS on the member's connection: a mutated copy of a queued member → DS message, or raw input bytes, whatever decodes as a `ToServer` (a `Join` opens a new connection nobody reads: a ghost) |
//! | 14 | the member's connection publishes a key package that is not its own: garbage bytes, or one from an earlier `Joined` entry |
//! | 15 | flush: deliver everything queued, both ways, until nothing moves (no time passes) |
//!
//! Every connection is an ordered, lossless stream (TCP or a WebSocket): the
//! harness drops messages only for a crash, a dropped Welcome, or a
//! connection the member no longer uses (once it called `join` again, what
//! the room sends on its earlier connection is gone, as a driver that
//! opened a new socket would have it; what it sent there before, such as a
//! `Leave`, still arrives). Member 3 cannot commit (an intercom); the
//! others can.
//!
//! An empty corpus directory gets the scripts in `SEEDS` on start (corpora
//! are not committed). `COMMITTER_TRACE=1 cargo +nightly fuzz run committer
//! <file>` prints what a reproducer does, message by message.
//!
//! # Invariants, after every operation
//!
//! 1. The room's state is the fold of the entries it sent, and every entry
//!    reached at least one connection with one sequence number.
//! 2. A member's copy of the log is the room's state at that sequence
//!    number.
//! 3. Members in the same MLS group (id) and epoch show the same safety
//!    number.
//! 4. No member is in a later epoch of the room's group than the room.
//! 5. A connection that left (a `Left` entry) never appears in the adds of a
//!    later `Committed` entry.
//! 6. A message a member refuses leaves it unchanged (status, connection,
//!    log copy, pending commit, MLS epoch, group, leaf, safety number); an
//!    entry from the honest room on the member's current connection is
//!    refused only as `Unexpected` (a `Rejected` for a commit an entry
//!    already superseded, ...), never as out of sequence, against the
//!    log's rules or (a `Hello`) as a room no log makes, unless the member
//!    already took a copy of it (kinds 11 and 12).
//!
//! # Convergence, at the end
//!
//! Ghost connections are disconnected (the SFU's grace period ran out), then
//! everything queued is delivered, and time jumps to the room's deadline
//! whenever nothing moves and the room still has work, within bounds. Then
//! the room must be quiet (no work, no deadline), and every member with a
//! connection (not idle, not left) in the group, at the room's epoch and
//! group id, in the leaf the log gives it, with the same roster and safety
//! number as the others; the present seats of the log are exactly those
//! members. An input gets `MAX_DELIVERIES` deliveries in all: running out
//! with no member tainted is a livelock.
//!
//! # What corruption excuses
//!
//! The room is honest: everything it logs passes its own fold, so garbage
//! sent *to* it (kinds 13 and 14) is just a member behaving badly within
//! the log's rules, and the others must heal (rejoin) and converge all the
//! same. Duplicated messages (kind 12) are exact copies of what the room
//! sent: a member must shrug them off and still converge.
//!
//! A *forged* message (kind 11: mutated, still decodes, differs from every
//! real one) that a member accepts makes that member **tainted** until it
//! next joins or crashes: its copy of the log may now differ from the
//! room's (a key package, a commit, a `Rejected` that never happened), so
//! it may legitimately apply a commit nobody else applied, think it is the
//! committer when it is not, or refuse every later entry. A tainted member
//! is left out of invariants 2 to 4 and the per-entry part of 6, and while
//! any member is tainted at the end, convergence is not asserted: a member
//! that believes a forged log is an insider gone wrong, and no protocol can
//! promise liveness against one. Untainted members stay bound by the
//! invariants: a tainted member can only reach them through the honest
//! room, and MLS authenticates what it commits. A forged `Error` (only an
//! event) taints nobody. A tainted member that sends more than
//! `TAINTED_SENDS` messages is cut off (it crashes, as a rate limit would
//! have it): believing a forged log, it can commit, be refused and commit
//! again forever.
//!
//! `OWN_COMMIT_UNCHECKED` can excuse one former bug the same way; it is
//! off, so every member is held to the invariants.
#![no_main]

#[path = "common.rs"]
mod common;
#[path = "mls_common.rs"]
mod mls_common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;
use std::time::Duration;

use common::Input;
use libfuzzer_sys::fuzz_target;
use satsuma_core::Instant;
use satsuma_core::committer::{
    CommitterError, Member, MemberConfig, Request, Room, RoomConfig, RoomState, SeatStatus, Status,
};
use satsuma_core::mls::{
    MemberInfo, MemoryStore, SafetyNumber, SatsumaCrypto, Session, SessionConfig,
};
use satsuma_core::wire::{
    Blob, Capabilities, ConnId, Down, Entry, Message, Open, RoomName, ToClient, ToServer,
    Transport, Up, limits,
};

/// Members in the room; the last one is an intercom (cannot commit).
const MEMBERS: usize = 4;
/// Operations read from one input.
const MAX_OPS: usize = 40;
/// Deliveries one input may cause in all; more is a livelock.
const MAX_DELIVERIES: usize = 2000;
/// Rounds of delivery in one "flush" operation.
const MAX_FLUSH: usize = 64;
/// Rounds of delivery while settling at the end.
const MAX_SETTLE_FLUSHES: usize = 256;
/// Deadlines the room may pass while settling at the end.
const MAX_SETTLE_TIMEOUTS: usize = 16;
/// Messages a member that believes a forged log may send before it is cut
/// off.
const TAINTED_SENDS: usize = 16;
/// How often members' leaf keys fall due for a refresh.
const SELF_UPDATE: Duration = Duration::from_secs(60);

/// A bug this target found, now fixed: a member that took a duplicated
/// `Rejected` (or garbage sent as a `Commit` on its connection) could apply
/// a newer commit of its own than the one the room accepted, a fork.
/// `Member` now applies its pending commit only when the logged commit has
/// the same bytes. `true` would excuse such members again (reproducer: the
/// `dup-rejected` seed); it stays `false`.
const OWN_COMMIT_UNCHECKED: bool = false;

fuzz_target!(init: seed_corpus(), |data: &[u8]| {
    let mut input = Input::new(data);
    let mut world = World::new();
    let mut ops = 0;
    while !input.is_empty() && ops < MAX_OPS {
        ops += 1;
        world.step(&mut input);
        world.pump();
        world.check();
    }
    world.settle();
});

/// Scripts that reach a formed group and then churn, written into the
/// corpus directory when it is empty (corpora are not committed): without
/// them a short run spends its time learning that members must join.
const SEEDS: &[(&str, &[u8])] = &[
    // Everyone joins; flush.
    ("join-all", &[0x00, 0x10, 0x20, 0x30, 0x0f]),
    // ... then member 1 leaves.
    ("leave", &[0x00, 0x10, 0x20, 0x30, 0x0f, 0x11, 0x0f]),
    // ... then the committer crashes and the deadline passes.
    (
        "crash-committer",
        &[0x00, 0x10, 0x20, 0x30, 0x0f, 0x02, 0x0f, 0x09, 0x0f],
    ),
    // Two form a group; a third joins and its Welcome is lost.
    (
        "lost-welcome",
        &[0x00, 0x10, 0x0f, 0x20, 0x26, 0x03, 0x03, 0x06, 0x28, 0x0f],
    ),
    // Everyone joins, time passes: self-updates and proposals.
    (
        "self-update",
        &[0x00, 0x10, 0x20, 0x30, 0x0f, 0x0a, 70, 0x0f],
    ),
    // Joins delivered in a race: creations cross.
    (
        "race",
        &[
            0x00, 0x10, 0x20, 0x06, 0x16, 0x26, 0x03, 0x13, 0x23, 0x06, 0x16, 0x0f,
        ],
    ),
    // Member 1 publishes garbage as its key package.
    (
        "garbage-key-package",
        &[
            0x00, 0x10, 0x20, 0x0f, 0x1e, 0x01, 0x05, 1, 2, 3, 4, 5, 0x0f,
        ],
    ),
    // Member 1 publishes member 2's key package.
    (
        "stolen-key-package",
        &[0x00, 0x10, 0x20, 0x0f, 0x1e, 0x04, 0x0f],
    ),
    // Member 2 leaves; member 0 gets its queued messages twice.
    (
        "duplicates",
        &[
            0x00, 0x10, 0x20, 0x0f, 0x21, 0x26, 0x0c, 0x00, 0x0c, 0x01, 0x0f,
        ],
    ),
    // Member 2 leaves; member 0 gets a forged copy of an entry.
    (
        "forged",
        &[
            0x00, 0x10, 0x20, 0x0f, 0x21, 0x26, 0x0b, 0x00, 0x00, 0x01, 0x00, 0x09, 0x00, 0x0f,
        ],
    ),
    // Members 0 and 1 form a group; 3 joins, 0 commits to add it, 3 leaves
    // and 2 joins before the commit arrives; the room refuses it and sends
    // `Rejected`, which 0 gets twice: 0 forks from 1 unless
    // `OWN_COMMIT_UNCHECKED` excuses it.
    (
        "dup-rejected",
        &[
            0x00, 0x10, 0x0f, 0x30, 0x36, 0x03, 0x31, 0x36, 0x20, 0x26, 0x06, 0x0c, 0x02, 0x03,
            0x03, 0x03, 0x06, 0x06, 0x03, 0x03, 0x0f,
        ],
    ),
    // Member 1's connection sends a bare `Leave` (garbage to the room).
    (
        "garbage-leave",
        &[0x00, 0x10, 0x20, 0x0f, 0x1d, 0x01, 0x01, 0x06, 0x0f],
    ),
];

/// Writes `SEEDS` into the first directory argument if it holds no file.
fn seed_corpus() {
    let Some(dir) = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(std::path::PathBuf::from)
        .find(|p| p.is_dir())
    else {
        return;
    };
    let empty = std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_none());
    if empty {
        for (name, script) in SEEDS {
            // A seed that cannot be written only costs the run some depth.
            let _ = std::fs::write(dir.join(format!("seed-{name}")), script);
        }
    }
}

/// With `COMMITTER_TRACE` set, prints every operation and delivery: run a
/// reproducer with it to see the story.
fn trace(line: impl FnOnce() -> String) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("COMMITTER_TRACE").is_some()) {
        eprintln!("{}", line());
    }
}

/// One client: its state machine and its two queues.
struct Sim {
    member: Member<Session>,
    /// The member's transport connection, counted up by every `join`: what
    /// arrives on an earlier one is dropped, what it sent on an earlier one
    /// still reaches the room (a `Leave`, say).
    link: u64,
    /// The room's id for `link`, once its `Join` arrived.
    conn: Option<ConnId>,
    /// The room's id for every link whose `Join` arrived.
    links: BTreeMap<u64, ConnId>,
    /// DS → member, in order, with the connection each was sent on.
    inbox: VecDeque<(ConnId, Down)>,
    /// Member → DS, in order, with the link each was sent on.
    outbox: VecDeque<(u64, Request)>,
    /// Accepted a forged message since it last joined or crashed.
    tainted: bool,
    /// Messages it sent to the room while tainted.
    tainted_sends: usize,
    /// Copies of queued messages it already took (kinds 11 and 12): the
    /// real one may then be refused in any way.
    echoes: Vec<Down>,
}

struct World {
    now: Instant,
    room: Room,
    sims: Vec<Sim>,
    /// Which member opened each connection, on which link (ghosts are in
    /// none).
    owner: BTreeMap<ConnId, (usize, u64)>,
    /// Connections opened by garbage `Join`s: nobody reads them.
    ghosts: BTreeSet<ConnId>,
    /// The log as sent: `log[s - 1]` has sequence number `s`.
    log: Vec<Entry>,
    /// `states[s]`: the fold of the first `s` entries.
    states: Vec<RoomState>,
    /// Connections with a `Left` entry.
    departed: BTreeSet<ConnId>,
    /// Group ids of `Created` entries, to spot a reused one (a replayed
    /// `Create`): then epochs of two different groups share an id.
    group_ids: Vec<Vec<u8>>,
    id_reused: bool,
    /// Messages delivered so far, both ways.
    deliveries: usize,
}

/// What a refused message must not change.
#[derive(Debug, PartialEq)]
struct Observed {
    status: Status,
    conn: Option<ConnId>,
    room: Option<RoomState>,
    pending: bool,
    epoch: Option<u64>,
    group_id: Option<Vec<u8>>,
    own_index: Option<u32>,
    safety: Option<SafetyNumber>,
}

fn observe(member: &Member<Session>) -> Observed {
    let group = member.group();
    Observed {
        status: member.status(),
        conn: member.conn(),
        room: member.room().cloned(),
        pending: member.has_pending(),
        epoch: group.epoch(),
        group_id: group.group_id().map(<[u8]>::to_vec),
        own_index: group.own_index(),
        safety: group.safety_number().ok(),
    }
}

fn new_member(index: usize) -> Member<Session> {
    let seed = u8::try_from(index).expect("few members") + 1;
    let name = ["alice", "bob", "carol", "dave"][index];
    let session = Session::create(
        SatsumaCrypto::from_seed([seed; 32]),
        MemberInfo::new(name, "fuzz").expect("valid credential"),
        SessionConfig {
            self_update_interval: Some(SELF_UPDATE),
            ..SessionConfig::default()
        },
        MemoryStore::default(),
    )
    .expect("a session");
    let capabilities = if index == MEMBERS - 1 {
        Capabilities {
            can_commit: false,
            transport: Transport::Wire,
        }
    } else {
        Capabilities {
            can_commit: true,
            transport: Transport::WebRtc,
        }
    };
    Member::new(
        session,
        MemberConfig {
            room: RoomName::new("fuzz").expect("valid name"),
            capabilities,
        },
    )
}

impl World {
    fn new() -> Self {
        Self {
            now: Instant::from_micros(1_000_000),
            room: Room::new(RoomConfig::default()),
            sims: (0..MEMBERS)
                .map(|i| Sim {
                    member: new_member(i),
                    link: 0,
                    conn: None,
                    links: BTreeMap::new(),
                    inbox: VecDeque::new(),
                    outbox: VecDeque::new(),
                    tainted: false,
                    tainted_sends: 0,
                    echoes: Vec::new(),
                })
                .collect(),
            owner: BTreeMap::new(),
            ghosts: BTreeSet::new(),
            log: Vec::new(),
            states: vec![RoomState::default()],
            departed: BTreeSet::new(),
            group_ids: Vec::new(),
            id_reused: false,
            deliveries: 0,
        }
    }

    fn step(&mut self, input: &mut Input<'_>) {
        let op = input.byte();
        let i = usize::from(op >> 4) % MEMBERS;
        trace(|| format!("op {:>2} on member {i} at {:?}", op % 16, self.now));
        match op % 16 {
            0 => self.join(i),
            1 => {
                let now = self.now;
                self.sims[i].member.leave(now);
            }
            2 => self.crash(i),
            3..=5 => {
                self.deliver_to_member(i);
            }
            6 | 7 => {
                self.deliver_to_room(i);
            }
            8 => {
                let inbox = &mut self.sims[i].inbox;
                if let Some(k) = inbox
                    .iter()
                    .position(|(_, m)| matches!(m, Down::Welcome { .. }))
                {
                    inbox.remove(k);
                }
            }
            9 => {
                let next = self
                    .room
                    .poll_timeout()
                    .unwrap_or(self.now.saturating_add(Duration::from_secs(1)));
                self.advance_to(next);
            }
            10 => {
                let secs = u64::from(input.byte());
                self.advance_to(self.now.saturating_add(Duration::from_secs(secs)));
            }
            11 => self.forge_to_member(i, input),
            12 => self.duplicate_to_member(i, input),
            13 => self.garbage_to_room(i, input),
            14 => self.foreign_key_package(i, input),
            _ => {
                self.flush();
            }
        }
    }

    fn join(&mut self, i: usize) {
        let now = self.now;
        let sim = &mut self.sims[i];
        if matches!(sim.member.status(), Status::Idle | Status::Left) {
            sim.member
                .join(now)
                .expect("an idle member can always join");
            sim.link += 1;
            sim.conn = None;
            sim.tainted = false;
            sim.tainted_sends = 0;
            sim.echoes.clear();
        }
    }

    fn crash(&mut self, i: usize) {
        let now = self.now;
        let sim = &mut self.sims[i];
        sim.inbox.clear();
        sim.outbox.clear();
        sim.member.handle_disconnect(now);
        sim.tainted = false;
        sim.tainted_sends = 0;
        sim.echoes.clear();
        sim.link += 1;
        sim.conn = None;
        // Every socket of the process closes; the room ignores those it
        // already closed.
        for conn in std::mem::take(&mut sim.links).into_values() {
            self.room.handle_disconnect(now, conn);
        }
        self.pump();
    }

    /// Time jumps to `to` (if later); the room and every member whose timer
    /// ran out handle it.
    fn advance_to(&mut self, to: Instant) {
        self.now = self.now.max(to);
        let now = self.now;
        self.room.handle_timeout(now);
        for sim in &mut self.sims {
            if sim.member.poll_timeout().is_some_and(|t| t <= now) {
                sim.member.handle_timeout(now);
            }
        }
        self.pump();
    }

    /// Moves what the machines queued into the harness's queues, and
    /// records the log as the room sends it.
    fn pump(&mut self) {
        for sim in &mut self.sims {
            while let Some(message) = sim.member.poll_transmit() {
                sim.outbox.push_back((sim.link, message));
            }
            while sim.member.poll_event().is_some() {}
        }
        while let Some(transmit) = self.room.poll_transmit() {
            let message = transmit.message;
            if let Down::Entry { seq, entry } = &message {
                self.record(*seq, entry);
            }
            let to: Vec<ConnId> = self.room.recipients(transmit.to).collect();
            for conn in to {
                if let Some(&(i, link)) = self.owner.get(&conn)
                    && self.sims[i].link == link
                {
                    self.sims[i].inbox.push_back((conn, message.clone()));
                }
            }
        }
    }

    fn record(&mut self, seq: u64, entry: &Entry) {
        let known = self.log.len() as u64;
        if seq <= known {
            let logged = &self.log[usize::try_from(seq).unwrap() - 1];
            assert_eq!(logged, entry, "two different entries with seq {seq}");
            return;
        }
        assert_eq!(
            seq,
            known + 1,
            "entries {} to {} reached no connection",
            known + 1,
            seq - 1
        );
        if let Entry::Committed { commit, .. } = entry {
            for add in commit.adds.iter() {
                assert!(
                    !self.departed.contains(add),
                    "invariant 5: {add} left, yet entry {seq} adds it"
                );
            }
        }
        if let Entry::Left { conn } = entry {
            self.departed.insert(*conn);
        }
        if let Entry::Created { group_id, .. } = entry {
            if self.group_ids.iter().any(|id| id[..] == group_id[..]) {
                self.id_reused = true;
            }
            self.group_ids.push(group_id.to_vec());
        }
        let mut state = self.states.last().expect("states[0] exists").clone();
        state
            .apply(entry)
            .unwrap_or_else(|e| panic!("the room logged entry {seq} its fold refuses: {e:?}"));
        self.states.push(state);
        self.log.push(entry.clone());
    }

    /// Delivers the next message for member `i`; whether one was due.
    fn deliver_to_member(&mut self, i: usize) -> bool {
        if self.deliveries >= MAX_DELIVERIES {
            return false;
        }
        let now = self.now;
        let sim = &mut self.sims[i];
        let Some((conn, message)) = sim.inbox.pop_front() else {
            return false;
        };
        self.deliveries += 1;
        if sim.conn != Some(conn) {
            return true;
        }
        let before = observe(&sim.member);
        let what = format!("{message:?}");
        let echoed = match sim.echoes.iter().position(|m| *m == message) {
            Some(k) => {
                sim.echoes.swap_remove(k);
                true
            }
            None => false,
        };
        trace(|| format!("  room -> {i} ({conn}): {what}"));
        if let Err(e) = sim.member.handle_message(now, message) {
            trace(|| format!("    refused: {e:?}"));
            assert_eq!(
                observe(&sim.member),
                before,
                "invariant 6: member {i} refused {what} ({e:?}) but changed"
            );
            assert!(
                sim.tainted || echoed || e == CommitterError::Unexpected,
                "invariant 6: member {i} refused {what} from the honest room: {e:?}"
            );
        }
        self.pump();
        true
    }

    /// Delivers member `i`'s next message to the room; whether one was due.
    fn deliver_to_room(&mut self, i: usize) -> bool {
        if self.deliveries >= MAX_DELIVERIES {
            return false;
        }
        let now = self.now;
        let sim = &mut self.sims[i];
        let Some((link, message)) = sim.outbox.pop_front() else {
            return false;
        };
        self.deliveries += 1;
        if sim.tainted {
            sim.tainted_sends += 1;
        }
        let on = sim.links.get(&link).copied();
        trace(|| format!("  {i} -> room (link {link}, {on:?}): {message:?}"));
        match message {
            Request::Join(_) => {
                let conn = self
                    .room
                    .handle(now, None, message)
                    .expect("a few connections always fit");
                sim.links.insert(link, conn);
                if link == sim.link {
                    sim.conn = Some(conn);
                }
                self.owner.insert(conn, (i, link));
            }
            Request::Control(_) => {
                if let Some(conn) = on {
                    // The room refuses commits that lost a race and the
                    // like; the member hears about it (or not) as it should.
                    let result = self.room.handle(now, Some(conn), message);
                    trace(|| format!("    room: {result:?}"));
                }
            }
        }
        self.pump();
        if self.sims[i].tainted_sends > TAINTED_SENDS {
            trace(|| format!("  member {i} is cut off: too many messages while tainted"));
            self.crash(i);
        }
        true
    }

    /// Delivers everything queued, both ways, until nothing moves; whether
    /// anything did.
    fn flush(&mut self) -> bool {
        let mut moved_any = false;
        for _ in 0..MAX_FLUSH {
            let mut moved = false;
            for i in 0..MEMBERS {
                while self.deliver_to_room(i) {
                    moved = true;
                }
            }
            for i in 0..MEMBERS {
                while self.deliver_to_member(i) {
                    moved = true;
                }
            }
            if !moved {
                break;
            }
            moved_any = true;
            self.check();
        }
        moved_any
    }

    /// A queued message for member `i`, or `None`.
    fn queued(&self, i: usize, input: &mut Input<'_>) -> Option<(ConnId, Down)> {
        let inbox = &self.sims[i].inbox;
        let k = usize::from(input.byte());
        (!inbox.is_empty()).then(|| inbox[k % inbox.len()].clone())
    }

    fn forge_to_member(&mut self, i: usize, input: &mut Input<'_>) {
        let Some((conn, real)) = self.queued(i, input) else {
            return;
        };
        if self.sims[i].conn != Some(conn) {
            return;
        }
        let bytes = ToClient::Control(real.clone())
            .encode()
            .expect("the room's messages encode");
        let donor = self.queued((i + 1) % MEMBERS, input).map_or_else(
            || bytes.clone(),
            |(_, m)| ToClient::Control(m).encode().expect("encodes"),
        );
        let forged = mls_common::mutate(input, &bytes, &donor);
        let decoded = ToClient::decode(&forged);
        let now = self.now;
        let sim = &mut self.sims[i];
        let before = observe(&sim.member);
        trace(|| format!("  forged -> {i}: {decoded:?} (from {real:?})"));
        match sim.member.handle_bytes(now, &forged) {
            Ok(()) => {
                let Ok(ToClient::Control(decoded)) = decoded else {
                    panic!("handle_bytes took {decoded:?}, not a control message");
                };
                let genuine = sim.inbox.iter().any(|(_, m)| *m == decoded);
                if genuine {
                    if OWN_COMMIT_UNCHECKED && matches!(decoded, Down::Rejected { .. }) {
                        sim.tainted = true;
                    }
                    sim.echoes.push(decoded);
                } else if decoded != Down::KeyPackageRefused {
                    sim.tainted = true;
                }
            }
            Err(e) => {
                if decoded.is_err() {
                    assert!(matches!(e, CommitterError::Wire(_)), "{e:?}");
                }
                assert_eq!(
                    observe(&sim.member),
                    before,
                    "invariant 6: member {i} refused a forged message ({e:?}) but changed"
                );
            }
        }
        self.pump();
    }

    fn duplicate_to_member(&mut self, i: usize, input: &mut Input<'_>) {
        let Some((conn, real)) = self.queued(i, input) else {
            return;
        };
        let now = self.now;
        let sim = &mut self.sims[i];
        if sim.conn != Some(conn) {
            return;
        }
        let before = observe(&sim.member);
        trace(|| format!("  duplicate -> {i}: {real:?}"));
        if let Err(e) = sim.member.handle_message(now, real.clone()) {
            trace(|| format!("    refused: {e:?}"));
            assert_eq!(
                observe(&sim.member),
                before,
                "invariant 6: member {i} refused a duplicate ({e:?}) but changed"
            );
        } else {
            if OWN_COMMIT_UNCHECKED && matches!(real, Down::Rejected { .. }) {
                sim.tainted = true;
            }
            sim.echoes.push(real);
        }
        self.pump();
    }

    fn garbage_to_room(&mut self, i: usize, input: &mut Input<'_>) {
        let Some(conn) = self.sims[i].conn else {
            return;
        };
        let outbox = &self.sims[i].outbox;
        let bytes = match input.byte() {
            k if k.is_multiple_of(2) && !outbox.is_empty() => {
                let real = ToServer::from(outbox[usize::from(k >> 1) % outbox.len()].1.clone())
                    .encode()
                    .expect("a member's messages encode");
                mls_common::mutate(input, &real, &real)
            }
            _ => {
                let len = usize::from(input.byte());
                let mut bytes = vec![satsuma_core::wire::VERSION];
                bytes.extend_from_slice(input.take(len));
                bytes
            }
        };
        let Ok(message) = ToServer::decode(&bytes) else {
            return;
        };
        trace(|| format!("  garbage {i} -> room: {message:?}"));
        let now = self.now;
        match message {
            ToServer::Open(Open::Join(join)) => {
                if let Ok(ghost) = self.room.handle(now, None, Request::Join(join)) {
                    self.ghosts.insert(ghost);
                }
            }
            ToServer::Control(up) => {
                if OWN_COMMIT_UNCHECKED && matches!(up, Up::Commit(_)) {
                    self.sims[i].tainted = true;
                }
                let result = self.room.handle(now, Some(conn), Request::Control(up));
                trace(|| format!("    room: {result:?}"));
            }
            // The link's part: the room never sees it.
            _ => {}
        }
        self.pump();
    }

    fn foreign_key_package(&mut self, i: usize, input: &mut Input<'_>) {
        let pick = input.byte();
        let published: Vec<&Blob<{ limits::KEY_PACKAGE }>> = self
            .log
            .iter()
            .filter_map(|e| match e {
                Entry::Joined { key_package, .. } => Some(key_package),
                _ => None,
            })
            .collect();
        let key_package = if pick.is_multiple_of(2) && !published.is_empty() {
            published[usize::from(pick >> 1) % published.len()].clone()
        } else {
            let len = usize::from(input.byte() % 64);
            Blob::copy_from(input.take(len)).expect("short")
        };
        trace(|| format!("  {i} queues a foreign key package {key_package:?}"));
        let sim = &mut self.sims[i];
        sim.outbox
            .push_back((sim.link, Request::Control(Up::KeyPackage { key_package })));
    }

    /// Invariants 1 to 4 (5 and 6 are checked as messages move).
    fn check(&self) {
        let latest = self.states.last().expect("states[0] exists");
        assert_eq!(
            self.room.state(),
            latest,
            "invariant 1: the room's state is not the fold of what it sent"
        );
        let room_group = self.room.state().group();
        let mut seen: BTreeMap<(Vec<u8>, u64), (usize, SafetyNumber)> = BTreeMap::new();
        for (i, sim) in self.sims.iter().enumerate() {
            if sim.tainted {
                continue;
            }
            if let Some(view) = sim.member.room() {
                let at = self.states.get(usize::try_from(view.seq()).unwrap());
                assert_eq!(
                    Some(view),
                    at,
                    "invariant 2: member {i}'s log differs from the room's at seq {}",
                    view.seq()
                );
            }
            if let Some(conn) = sim.member.conn() {
                assert_eq!(
                    sim.conn,
                    Some(conn),
                    "member {i} is on a connection it never opened"
                );
            }
            let group = sim.member.group();
            let (Some(id), Some(epoch)) = (group.group_id(), group.epoch()) else {
                continue;
            };
            if self.id_reused {
                continue;
            }
            let safety = group.safety_number().expect("in a group");
            if let Some((j, other)) = seen.insert((id.to_vec(), epoch), (i, safety)) {
                assert_eq!(
                    other, safety,
                    "invariant 3: members {j} and {i} share epoch {epoch} but not the safety number"
                );
            }
            if let Some(g) = room_group
                && g.id[..] == *id
            {
                assert!(
                    epoch <= g.epoch,
                    "invariant 4: member {i} is in epoch {epoch}, the room in {}",
                    g.epoch
                );
            }
        }
    }

    /// No more churn: ghosts go, everything is delivered, deadlines pass;
    /// then, unless a member is tainted, everyone converged.
    fn settle(&mut self) {
        let now = self.now;
        for ghost in std::mem::take(&mut self.ghosts) {
            self.room.handle_disconnect(now, ghost);
        }
        self.pump();
        self.check();
        let mut timeouts = 0;
        for _ in 0..MAX_SETTLE_FLUSHES {
            if self.flush() {
                continue;
            }
            // The room's deadline, or a waiting member's (a refused one
            // publishes again after a backoff).
            let waiting = self
                .sims
                .iter()
                .filter(|s| s.member.status() == Status::Waiting)
                .filter_map(|s| s.member.poll_timeout())
                .min();
            let next = match (self.room.poll_timeout(), waiting) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match next {
                Some(deadline) if timeouts < MAX_SETTLE_TIMEOUTS => {
                    timeouts += 1;
                    self.advance_to(deadline);
                    self.check();
                }
                _ => break,
            }
        }
        trace(|| format!("settled after {} deliveries", self.deliveries));
        if self.sims.iter().any(|s| s.tainted) {
            return;
        }
        assert!(
            self.deliveries < MAX_DELIVERIES,
            "livelock: {MAX_DELIVERIES} deliveries and still moving"
        );
        let state = self.room.state();
        assert!(
            self.room.poll_timeout().is_none() && !state.has_work(),
            "no convergence after {timeouts} deadlines: {state:?}"
        );
        let live: Vec<usize> = (0..MEMBERS)
            .filter(|&i| !matches!(self.sims[i].member.status(), Status::Idle | Status::Left))
            .collect();
        let present: BTreeSet<ConnId> = state
            .leaves()
            .iter()
            .flatten()
            .filter(|s| s.status == SeatStatus::Present)
            .map(|s| s.conn)
            .collect();
        let live_conns: BTreeSet<ConnId> = live
            .iter()
            .filter_map(|&i| self.sims[i].member.conn())
            .collect();
        assert_eq!(
            present, live_conns,
            "present seats are not the connected members"
        );
        let mut safety = None;
        for &i in &live {
            let member = &self.sims[i].member;
            assert_eq!(
                member.status(),
                Status::InGroup,
                "member {i} did not converge"
            );
            let group = member.group();
            let logged = state.group().expect("members present, so a group");
            assert_eq!(group.epoch(), Some(logged.epoch), "member {i}'s epoch");
            assert_eq!(group.group_id(), Some(&logged.id[..]), "member {i}'s group");
            let conn = member.conn().expect("in a group, so connected");
            assert_eq!(
                group.own_index(),
                state.seat_of(conn).map(|(leaf, _)| leaf),
                "member {i}'s leaf"
            );
            assert_eq!(
                group.leaves(),
                state.occupied_leaves(),
                "member {i}'s roster"
            );
            let number = group.safety_number().expect("in a group");
            assert_eq!(
                *safety.get_or_insert(number),
                number,
                "member {i}'s safety number"
            );
        }
    }
}
