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
//! | 1 | member leaves (`Member::leave`; its `Leave` still has to be delivered; it reads nothing more on that connection) |
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
//! The network is `satsuma-sim`'s `Net`, faultless: every connection is an
//! ordered, lossless stream (TCP or a WebSocket), and the harness drops
//! messages only for a crash, a dropped Welcome, or a connection the
//! member no longer uses (once it called `join` again, what
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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::Duration;

use common::Input;
use libfuzzer_sys::fuzz_target;
use satsuma_core::Instant;
use satsuma_core::committer::{
    CommitterError, Member, MemberConfig, Request, RoomConfig, RoomState, Status,
};
use satsuma_core::mls::{
    MemberInfo, MemoryStore, SafetyNumber, SatsumaCrypto, Session, SessionConfig,
};
use satsuma_core::wire::{
    Blob, Capabilities, ConnId, Down, Entry, Message, Open, RoomName, ToClient, ToServer,
    Transport, Up, limits,
};
use satsuma_sim::Net;

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

/// What the harness knows of a member beyond the network: whether it
/// believes a forged log.
#[derive(Default)]
struct Taint {
    /// Accepted a forged message since it last joined or crashed.
    tainted: bool,
    /// Messages it sent to the room while tainted.
    sends: usize,
    /// Copies of queued messages it already took (kinds 11 and 12): the
    /// real one may then be refused in any way.
    echoes: Vec<Down>,
}

struct World {
    /// The room and the members, endpoints `0..MEMBERS`; ghosts after
    /// them.
    net: Net<Session>,
    taints: Vec<Taint>,
    /// Endpoints whose connection a garbage `Join` opened: nobody reads
    /// them.
    ghosts: Vec<usize>,
    /// `states[s]`: the fold of the first `s` entries of the log.
    states: Vec<RoomState>,
    /// Connections with a `Left` entry.
    departed: BTreeSet<ConnId>,
    /// Group ids of `Created` entries, to spot a reused one (a replayed
    /// `Create`): then epochs of two different groups share an id.
    group_ids: Vec<Vec<u8>>,
    id_reused: bool,
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
        let mut net = Net::new(RoomConfig::default());
        net.set_now(Instant::from_micros(1_000_000));
        for i in 0..MEMBERS {
            net.add(Some(new_member(i)));
        }
        Self {
            net,
            taints: (0..MEMBERS).map(|_| Taint::default()).collect(),
            ghosts: Vec::new(),
            states: vec![RoomState::default()],
            departed: BTreeSet::new(),
            group_ids: Vec::new(),
            id_reused: false,
        }
    }

    fn member(&self, i: usize) -> &Member<Session> {
        self.net.member(i).expect("members never go away")
    }

    /// The connection member `i` reads, once the room read its `Join`.
    fn conn(&self, i: usize) -> Option<ConnId> {
        self.net.conn(i).filter(|_| self.net.is_open(i))
    }

    fn deliveries(&self) -> usize {
        usize::try_from(self.net.stats().delivered).unwrap_or(usize::MAX)
    }

    fn step(&mut self, input: &mut Input<'_>) {
        let op = input.byte();
        let i = usize::from(op >> 4) % MEMBERS;
        trace(|| format!("op {:>2} on member {i} at {:?}", op % 16, self.net.now()));
        match op % 16 {
            0 => self.join(i),
            1 => self.net.leave(i),
            2 => self.crash(i),
            3..=5 => {
                self.deliver_to_member(i);
            }
            6 | 7 => {
                self.deliver_to_room(i);
            }
            8 => {
                self.net.lose_down(i, |m| matches!(m, Down::Welcome { .. }));
            }
            9 => {
                let now = self.net.now();
                let next = self
                    .net
                    .room()
                    .poll_timeout()
                    .unwrap_or(now.saturating_add(Duration::from_secs(1)));
                self.advance_to(next);
            }
            10 => {
                let secs = u64::from(input.byte());
                self.advance_to(self.net.now().saturating_add(Duration::from_secs(secs)));
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
        if matches!(self.member(i).status(), Status::Idle | Status::Left) {
            self.net.join(i).expect("an idle member can always join");
            self.taints[i] = Taint::default();
        }
    }

    fn crash(&mut self, i: usize) {
        self.net.clear(i);
        self.net.input(i, Member::handle_disconnect);
        self.net.close(i);
        self.taints[i] = Taint::default();
        // Every socket of the process closes; the room ignores those it
        // already closed.
        let conns: Vec<ConnId> = self.net.conns(i).collect();
        for conn in conns {
            self.net.disconnect_conn(conn);
        }
    }

    /// Time jumps to `to` (if later); the room and every member whose timer
    /// ran out handle it.
    fn advance_to(&mut self, to: Instant) {
        let now = self.net.now().max(to);
        self.net.set_now(now);
        self.net.timeout_room();
        for i in 0..MEMBERS {
            if self.member(i).poll_timeout().is_some_and(|t| t <= now) {
                self.net.input(i, Member::handle_timeout);
            }
        }
    }

    /// Folds the entries the room logged since the last call, checking
    /// invariant 5 on the way.
    fn record(&mut self) {
        let log = self.net.log();
        for (at, entry) in log.iter().enumerate().skip(self.states.len() - 1) {
            let seq = at + 1;
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
        }
    }

    /// Delivers the next message for member `i`; whether one was due.
    fn deliver_to_member(&mut self, i: usize) -> bool {
        if self.deliveries() >= MAX_DELIVERIES {
            return false;
        }
        let Some((conn, message)) = self.net.queued_down(i).next().map(|(c, m)| (c, m.clone()))
        else {
            return false;
        };
        if self.conn(i) != Some(conn) {
            // On a connection it no longer reads: dropped.
            return self.net.deliver_down(i);
        }
        let before = observe(self.member(i));
        let what = format!("{message:?}");
        let taint = &mut self.taints[i];
        let echoed = match taint.echoes.iter().position(|m| *m == message) {
            Some(k) => {
                taint.echoes.swap_remove(k);
                true
            }
            None => false,
        };
        let tainted = taint.tainted;
        trace(|| format!("  room -> {i} ({conn}): {what}"));
        self.net.deliver_down(i);
        if let Some(e) = self.net.take_errors(i).pop() {
            trace(|| format!("    refused: {e:?}"));
            assert_eq!(
                observe(self.member(i)),
                before,
                "invariant 6: member {i} refused {what} ({e:?}) but changed"
            );
            assert!(
                tainted || echoed || e == CommitterError::Unexpected,
                "invariant 6: member {i} refused {what} from the honest room: {e:?}"
            );
        }
        true
    }

    /// Delivers member `i`'s next message to the room; whether one was due.
    fn deliver_to_room(&mut self, i: usize) -> bool {
        if self.deliveries() >= MAX_DELIVERIES {
            return false;
        }
        let Some(message) = self.net.queued_up(i).next().cloned() else {
            return false;
        };
        let taint = &mut self.taints[i];
        if taint.tainted {
            taint.sends += 1;
        }
        trace(|| format!("  {i} -> room: {message:?}"));
        let refused = self.net.ds_errors().len();
        self.net.deliver_up(i);
        if let Request::Join(_) = message {
            assert_eq!(
                self.net.ds_errors().len(),
                refused,
                "a few connections always fit"
            );
        }
        // Otherwise the room refuses commits that lost a race and the like;
        // the member hears about it (or not) as it should.
        if self.taints[i].sends > TAINTED_SENDS {
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
        let k = usize::from(input.byte());
        let len = self.net.queued_down(i).count();
        (len > 0).then(|| {
            let (conn, m) = self.net.queued_down(i).nth(k % len).expect("k % len < len");
            (conn, m.clone())
        })
    }

    fn forge_to_member(&mut self, i: usize, input: &mut Input<'_>) {
        let Some((conn, real)) = self.queued(i, input) else {
            return;
        };
        if self.conn(i) != Some(conn) {
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
        let before = observe(self.member(i));
        trace(|| format!("  forged -> {i}: {decoded:?} (from {real:?})"));
        let taken = self.net.input(i, |m, now| m.handle_bytes(now, &forged));
        match taken.expect("members never go away") {
            Ok(()) => {
                let Ok(ToClient::Control(decoded)) = decoded else {
                    panic!("handle_bytes took {decoded:?}, not a control message");
                };
                let genuine = self.net.queued_down(i).any(|(_, m)| *m == decoded);
                let taint = &mut self.taints[i];
                if genuine {
                    if OWN_COMMIT_UNCHECKED && matches!(decoded, Down::Rejected { .. }) {
                        taint.tainted = true;
                    }
                    taint.echoes.push(decoded);
                } else if decoded != Down::KeyPackageRefused {
                    taint.tainted = true;
                }
            }
            Err(e) => {
                if decoded.is_err() {
                    assert!(matches!(e, CommitterError::Wire(_)), "{e:?}");
                }
                assert_eq!(
                    observe(self.member(i)),
                    before,
                    "invariant 6: member {i} refused a forged message ({e:?}) but changed"
                );
            }
        }
    }

    fn duplicate_to_member(&mut self, i: usize, input: &mut Input<'_>) {
        let Some((conn, real)) = self.queued(i, input) else {
            return;
        };
        if self.conn(i) != Some(conn) {
            return;
        }
        let before = observe(self.member(i));
        trace(|| format!("  duplicate -> {i}: {real:?}"));
        let taken = self
            .net
            .input(i, |m, now| m.handle_message(now, real.clone()));
        if let Err(e) = taken.expect("members never go away") {
            trace(|| format!("    refused: {e:?}"));
            assert_eq!(
                observe(self.member(i)),
                before,
                "invariant 6: member {i} refused a duplicate ({e:?}) but changed"
            );
        } else {
            if OWN_COMMIT_UNCHECKED && matches!(real, Down::Rejected { .. }) {
                self.taints[i].tainted = true;
            }
            self.taints[i].echoes.push(real);
        }
    }

    fn garbage_to_room(&mut self, i: usize, input: &mut Input<'_>) {
        let Some(conn) = self.conn(i) else {
            return;
        };
        let outbox: Vec<&Request> = self.net.queued_up(i).collect();
        let bytes = match input.byte() {
            k if k.is_multiple_of(2) && !outbox.is_empty() => {
                let real = ToServer::from(outbox[usize::from(k >> 1) % outbox.len()].clone())
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
        match message {
            ToServer::Open(Open::Join(join)) => {
                // A new connection on a ghost client nobody reads.
                let ghost = self.net.add(None);
                self.net.inject(ghost, Request::Join(join));
                self.net.deliver_up(ghost);
                self.ghosts.push(ghost);
            }
            ToServer::Control(up) => {
                if OWN_COMMIT_UNCHECKED && matches!(up, Up::Commit(_)) {
                    self.taints[i].tainted = true;
                }
                let result = self
                    .net
                    .room_input(|room, now| room.handle(now, Some(conn), Request::Control(up)));
                trace(|| format!("    room: {result:?}"));
            }
            // The link's part: the room never sees it.
            _ => {}
        }
    }

    fn foreign_key_package(&mut self, i: usize, input: &mut Input<'_>) {
        let pick = input.byte();
        let published: Vec<&Blob<{ limits::KEY_PACKAGE }>> = self
            .net
            .log()
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
        self.net
            .inject(i, Request::Control(Up::KeyPackage { key_package }));
    }

    /// Invariants 1 to 4 (5 is checked as the log grows, 6 as messages
    /// move).
    fn check(&mut self) {
        self.record();
        let latest = self.states.last().expect("states[0] exists");
        assert_eq!(
            self.net.room().state(),
            latest,
            "invariant 1: the room's state is not the fold of what it sent"
        );
        let room_group = self.net.room().state().group();
        let mut seen: BTreeMap<(Vec<u8>, u64), (usize, SafetyNumber)> = BTreeMap::new();
        for i in 0..MEMBERS {
            if self.taints[i].tainted {
                continue;
            }
            let member = self.member(i);
            if let Some(view) = member.room() {
                let at = self.states.get(usize::try_from(view.seq()).unwrap());
                assert_eq!(
                    Some(view),
                    at,
                    "invariant 2: member {i}'s log differs from the room's at seq {}",
                    view.seq()
                );
            }
            if let Some(conn) = member.conn() {
                assert_eq!(
                    self.conn(i),
                    Some(conn),
                    "member {i} is on a connection it never opened"
                );
            }
            let group = member.group();
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
        for ghost in std::mem::take(&mut self.ghosts) {
            self.net.disconnect(ghost);
        }
        self.check();
        let mut timeouts = 0;
        for _ in 0..MAX_SETTLE_FLUSHES {
            if self.flush() {
                continue;
            }
            // The room's deadline, or a waiting member's (a refused one
            // publishes again after a backoff).
            let waiting = (0..MEMBERS)
                .map(|i| self.member(i))
                .filter(|m| m.status() == Status::Waiting)
                .filter_map(Member::poll_timeout)
                .min();
            let next = match (self.net.room().poll_timeout(), waiting) {
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
        trace(|| format!("settled after {} deliveries", self.deliveries()));
        if self.taints.iter().any(|t| t.tainted) {
            return;
        }
        assert!(
            self.deliveries() < MAX_DELIVERIES,
            "livelock: {MAX_DELIVERIES} deliveries and still moving"
        );
        let state = self.net.room().state();
        assert!(
            self.net.room().poll_timeout().is_none() && !state.has_work(),
            "no convergence after {timeouts} deadlines: {state:?}"
        );
        let live: Vec<usize> = (0..MEMBERS)
            .filter(|&i| !matches!(self.member(i).status(), Status::Idle | Status::Left))
            .collect();
        let present: BTreeSet<ConnId> = state.present().collect();
        let live_conns: BTreeSet<ConnId> =
            live.iter().filter_map(|&i| self.member(i).conn()).collect();
        assert_eq!(
            present, live_conns,
            "present seats are not the connected members"
        );
        let mut safety = None;
        for &i in &live {
            let member = self.member(i);
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
