//! [`World`]: one room's delivery service, its members and every message in
//! flight, as a value a checker can hash, copy and step.
//!
//! The network is TCP-like: one reliable FIFO queue per direction per
//! connection. Time is abstract: every input happens at [`NOW`]; a timer
//! fires when its action is taken. The delivery service's deadline
//! ([`Action::Timeout`]) may pass at most [`Config::max_stalls`] times in a
//! row while messages are in flight, and once more per member when nothing
//! else can happen; a member's own timer ([`Action::Tick`]) fires only when
//! nothing is in flight (it is seconds long, a message takes milliseconds).
//!
//! Actions are either *system* actions, which a fair scheduler eventually
//! takes (deliveries, the DS noticing a dead connection, a closed transport
//! closing, timers), or *environment* actions, the churn the protocol must
//! survive (joins, leaves, crashes, lost Welcomes, false disconnects,
//! self-updates falling due), each drawn from a finite [`Budgets`] and
//! allowed per member by [`Churn`].
//!
//! The invariants ([`World::check`], and the checks [`World::step`] makes
//! on each transition):
//!
//! - **S0** a member's fold of the log equals the DS's at the same length,
//!   and no member refuses an entry the DS logged or the room it said
//!   hello with;
//! - **S1** a member at epoch `e` of a group holds the authenticator that
//!   the log's accepted commits give for `e` (so any two members at one
//!   epoch agree), and at the log's epoch, the log's roster;
//! - **S2** every accepted commit moves the epoch by one, and no member is
//!   ahead of the log;
//! - **S3** a member holds only groups the log created, and a member in
//!   the group holds the group its log describes (id, epoch, own leaf,
//!   roster);
//! - **S4** only live connections wait in the lobby, hold a working leaf
//!   or are added by a commit.

use std::collections::VecDeque;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use satsuma_core::Instant;
use satsuma_core::committer::{
    CommitterError, Group, Member, MemberConfig, Request, Room, RoomConfig, Status,
};
use satsuma_core::wire::{Capabilities, ConnId, Down, Entry, RoomName, Transport, Up};

use crate::model_group::ModelGroup;

/// The time of every input but the deadline.
pub const NOW: Instant = Instant::ZERO;
/// The time the deadline is handled at: past any deadline.
const LATE: Instant = Instant::from_micros(u64::MAX);

/// One step of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// System: the next DS message for member `i` arrives.
    Deliver(usize),
    /// System: member `i`'s next message reaches the DS.
    Send(usize),
    /// System: the DS notices that a crashed member's connection is gone.
    Detect(ConnId),
    /// System: a connection the DS closed closes at member `i`'s end, once
    /// everything sent before arrived.
    Close(usize),
    /// System: the designated committer's deadline passes.
    Timeout,
    /// System: member `i`'s own timer fires (a refused member publishing
    /// again).
    Tick(usize),
    /// Environment: member `i` joins (again).
    Join(usize),
    /// Environment: member `i` leaves.
    Leave(usize),
    /// Environment: member `i`'s process dies and restarts, idle; its
    /// messages in flight are lost, and its connection stays open at the DS
    /// until [`Action::Detect`].
    Crash(usize),
    /// Environment: the Welcome in flight to member `i` is lost.
    LoseWelcome(usize),
    /// Environment: the DS declares member `i`'s live connection gone.
    Disconnect(usize),
    /// Environment: member `i`'s own leaf falls due for an update.
    UpdateDue(usize),
}

impl Action {
    /// Whether a fair scheduler eventually takes it (it is not churn).
    #[must_use]
    pub fn is_system(self) -> bool {
        matches!(
            self,
            Self::Deliver(_)
                | Self::Send(_)
                | Self::Detect(_)
                | Self::Close(_)
                | Self::Timeout
                | Self::Tick(_)
        )
    }
}

/// A broken invariant: which, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! violation {
    ($($arg:tt)*) => {
        return Err(Violation(format!($($arg)*)))
    };
}

mod check;
mod setup;

pub use setup::{Budgets, Churn, Config, MemberSetup, Mutation};

/// The delivery service of one room, its members, and what is in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    config: Arc<Config>,
    room: Room,
    slots: Vec<Slot>,
    budgets: Budgets,
    /// Connections of crashed members the DS has not noticed yet.
    undetected: Vec<ConnId>,
    /// Every group the log created, with the authenticator of each epoch
    /// its accepted commits started: what a member at that epoch must hold.
    /// A function of the log, so of the DS's side alone.
    history: Vec<(Vec<u8>, Vec<u64>)>,
}

/// One member and its transport.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Slot {
    member: Member<ModelGroup>,
    link: Link,
    /// The DS's id for the current transport, once its `Join` arrived.
    conn: Option<ConnId>,
    /// Member to DS, in order.
    up: VecDeque<Request>,
    /// DS to member, in order.
    down: VecDeque<Down>,
}

/// The state of a member's transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Link {
    /// No transport.
    Down,
    /// Open both ways.
    Open,
    /// The DS closed it: what it sent before still arrives, nothing the
    /// member sends does.
    Closing,
}

impl Hash for World {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The config is the same for every state of one exploration.
        self.room.hash(state);
        self.slots.hash(state);
        self.budgets.hash(state);
        self.undetected.hash(state);
        self.history.hash(state);
    }
}

impl World {
    /// Every member idle, the room empty, nothing in flight.
    #[must_use]
    pub fn new(config: Config) -> Self {
        let slots = config
            .members
            .iter()
            .zip(0u8..)
            .map(|(setup, identity)| {
                let mut group = ModelGroup::new(identity);
                group.publish_bad_key_packages(setup.bad_key_packages);
                Slot {
                    member: Member::new(group, member_config(setup)),
                    link: Link::Down,
                    conn: None,
                    up: VecDeque::new(),
                    down: VecDeque::new(),
                }
            })
            .collect();
        Self {
            budgets: config.budgets,
            config: Arc::new(config),
            room: Room::new(RoomConfig::default()),
            slots,
            undetected: Vec::new(),
            history: Vec::new(),
        }
    }

    /// The delivery service.
    #[must_use]
    pub fn room(&self) -> &Room {
        &self.room
    }

    /// Member `i`.
    #[must_use]
    pub fn member(&self, i: usize) -> &Member<ModelGroup> {
        &self.slots[i].member
    }

    /// Whether the log is past [`Config::max_seq`]: the explorer stops here.
    #[must_use]
    pub fn beyond_bound(&self) -> bool {
        self.room.state().seq() > self.config.max_seq
    }

    /// Every action enabled here, system actions first.
    #[must_use]
    pub fn actions(&self) -> Vec<Action> {
        let mut actions = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            if !slot.down.is_empty() {
                actions.push(Action::Deliver(i));
            }
            if slot.link == Link::Open && !slot.up.is_empty() {
                actions.push(Action::Send(i));
            }
            if slot.link == Link::Closing && slot.down.is_empty() {
                actions.push(Action::Close(i));
            }
        }
        if self.config.mutation != Some(Mutation::NoDetection) {
            actions.extend(self.undetected.iter().map(|&c| Action::Detect(c)));
        }
        // The deadline may pass with messages in flight `max_stalls` times
        // in a row; once nothing else can happen, as many more times as
        // there are members, which hands the role to each of them once more.
        let stalls = self.room.state().stalls();
        let quiet = actions.is_empty();
        // A member's timer is long next to a message's trip: it fires only
        // when nothing is in flight (a dead connection may still wait to be
        // noticed).
        let moving = actions
            .iter()
            .any(|a| matches!(a, Action::Deliver(_) | Action::Send(_) | Action::Close(_)));
        if !moving {
            for (i, slot) in self.slots.iter().enumerate() {
                if slot.member.poll_timeout().is_some() {
                    actions.push(Action::Tick(i));
                }
            }
        }
        let members = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        if self.room.poll_timeout().is_some()
            && (stalls < self.config.max_stalls
                || (quiet && stalls < self.config.max_stalls.saturating_add(members)))
        {
            actions.push(Action::Timeout);
        }
        let b = self.budgets;
        for (i, slot) in self.slots.iter().enumerate() {
            let status = slot.member.status();
            let connected = matches!(
                status,
                Status::Connecting | Status::Waiting | Status::InGroup
            );
            if b.joins > 0
                && slot.link == Link::Down
                && matches!(status, Status::Idle | Status::Left)
            {
                actions.push(Action::Join(i));
            }
            let churn = self.config.members[i].churn;
            if b.leaves > 0 && churn.leave && slot.link == Link::Open && connected {
                actions.push(Action::Leave(i));
            }
            if b.crashes > 0 && churn.crash && slot.link != Link::Down {
                actions.push(Action::Crash(i));
            }
            if b.lost_welcomes > 0
                && churn.lose_welcome
                && slot.down.iter().any(|m| matches!(m, Down::Welcome { .. }))
            {
                actions.push(Action::LoseWelcome(i));
            }
            if b.false_disconnects > 0
                && churn.disconnect
                && slot.link == Link::Open
                && connected
                && slot
                    .conn
                    .is_some_and(|c| self.room.connections().any(|d| d == c))
            {
                actions.push(Action::Disconnect(i));
            }
            if b.updates > 0
                && churn.update
                && status == Status::InGroup
                && !slot.member.group().self_update_due(NOW)
            {
                actions.push(Action::UpdateDue(i));
            }
        }
        actions
    }

    /// A subset of [`World::actions`] that is enough to find every
    /// violation of the invariants [`World::check`] and [`World::step`]
    /// check, every converged state, and every state where nothing can
    /// happen: one delivery to a member, when there is one that nothing
    /// else enabled now can interfere with; otherwise every action.
    ///
    /// Why this is sound (a persistent set, in partial-order reduction
    /// terms): `Deliver(i)` changes only member `i`, the tail of its queue
    /// to the DS and its own queue's head. Every other system action
    /// commutes with it: deliveries to other members touch other slots;
    /// the DS only appends to queues that are not empty, and reads no
    /// member; a member's timer fires only when nothing is being delivered. Of the environment's actions, a crash of `i` gives the same
    /// state before or after it ([`ModelGroup::restarted`]), and so does a
    /// false disconnect; only `Leave(i)`, `UpdateDue(i)` and losing the
    /// Welcome at the head of `i`'s queue do not commute, and none of them
    /// can become enabled before `Deliver(i)` unless it already is. Every
    /// invariant is a conjunction of facts about the DS and one member at
    /// a time (S1 compares each member with the log's commits, not with
    /// another member), so a state the reduction skips, which differs from
    /// one it visits only in member `i` not having had its delivery yet,
    /// shows no violation that the states around it do not. Converged and
    /// dead states have nothing to deliver and are all kept. The checker
    /// also verifies the explored graph has no cycle, the remaining
    /// condition for the reduction.
    #[must_use]
    pub fn reduced_actions(&self) -> Vec<Action> {
        let all = self.actions();
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.down.is_empty() {
                continue;
            }
            let welcome_first = matches!(slot.down.front(), Some(Down::Welcome { .. }));
            let interferes = all.iter().any(|&a| match a {
                Action::Leave(j) | Action::UpdateDue(j) => j == i,
                Action::LoseWelcome(j) => j == i && welcome_first,
                _ => false,
            });
            if !interferes {
                return vec![Action::Deliver(i)];
            }
        }
        all
    }

    /// Takes `action`, which must be enabled.
    ///
    /// # Errors
    /// A [`Violation`] seen while taking it: a member refusing a log entry
    /// the DS logged, or a commit the DS accepted that breaks S2 or S4.
    pub fn step(&mut self, action: Action) -> Result<(), Violation> {
        match action {
            Action::Deliver(i) => {
                let Some(message) = self.slots[i].down.pop_front() else {
                    violation!("{action:?} with nothing in flight");
                };
                self.member_input(i, |m| m.handle_message(NOW, message))?;
            }
            Action::Send(i) => self.send(i)?,
            Action::Detect(conn) => {
                self.undetected.retain(|&c| c != conn);
                self.room_input(|room| room.handle_disconnect(NOW, conn))?;
            }
            Action::Close(i) => {
                let slot = &mut self.slots[i];
                slot.link = Link::Down;
                slot.conn = None;
                self.member_input(i, |m| {
                    m.handle_disconnect(NOW);
                    Ok(())
                })?;
            }
            Action::Timeout => self.room_input(|room| room.handle_timeout(LATE))?,
            Action::Tick(i) => self.member_input(i, |m| {
                m.handle_timeout(LATE);
                Ok(())
            })?,
            Action::Join(i) => {
                self.budgets.joins -= 1;
                self.slots[i].link = Link::Open;
                self.member_input(i, |m| m.join(NOW))?;
            }
            Action::Leave(i) => {
                self.budgets.leaves -= 1;
                self.member_input(i, |m| {
                    m.leave(NOW);
                    Ok(())
                })?;
            }
            Action::Crash(i) => {
                self.budgets.crashes -= 1;
                let slot = &mut self.slots[i];
                if slot.link == Link::Open
                    && let Some(conn) = slot.conn
                {
                    self.undetected.push(conn);
                }
                let setup = self.config.members[i];
                let group = slot.member.group().restarted();
                *slot = Slot {
                    member: Member::new(group, member_config(&setup)),
                    link: Link::Down,
                    conn: None,
                    up: VecDeque::new(),
                    down: VecDeque::new(),
                };
            }
            Action::LoseWelcome(i) => {
                self.budgets.lost_welcomes -= 1;
                let down = &mut self.slots[i].down;
                if let Some(at) = down.iter().position(|m| matches!(m, Down::Welcome { .. })) {
                    down.remove(at);
                }
            }
            Action::Disconnect(i) => {
                self.budgets.false_disconnects -= 1;
                let Some(conn) = self.slots[i].conn else {
                    violation!("{action:?} without a connection");
                };
                self.room_input(|room| room.handle_disconnect(NOW, conn))?;
                let slot = &mut self.slots[i];
                slot.link = Link::Closing;
                slot.up.clear();
            }
            Action::UpdateDue(i) => {
                self.budgets.updates -= 1;
                self.member_input(i, |m| {
                    m.group_mut().set_update_due();
                    m.handle_timeout(NOW);
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// Delivers member `i`'s next message to the DS.
    fn send(&mut self, i: usize) -> Result<(), Violation> {
        let Some(message) = self.slots[i].up.pop_front() else {
            violation!("Send({i}) with nothing in flight");
        };
        if let Request::Join(_) = message {
            let joined = self.room.handle(NOW, None, message);
            // Set before the DS's messages are routed: the Hello is for it.
            self.slots[i].conn = joined.ok();
            return self.drain_room(&Before::of(&self.room));
        }
        let Some(mut conn) = self.slots[i].conn else {
            violation!("member {i} sent {message:?} before its Join");
        };
        let Request::Control(message) = message else {
            violation!("member {i} sent a second Join");
        };
        let leaving = matches!(message, Up::Leave);
        if self.config.mutation == Some(Mutation::SpoofDesignated)
            && matches!(message, Up::Commit(_))
            && let Some(designated) = self.room.state().designated()
        {
            conn = designated;
        }
        if self.config.mutation == Some(Mutation::EarlyWelcome)
            && let Up::Commit(commit) = &message
            && let Some(welcome) = &commit.welcome
        {
            for add in commit.adds.iter() {
                let to = self
                    .slots
                    .iter_mut()
                    .find(|s| s.link == Link::Open && s.conn == Some(*add));
                if let Some(slot) = to {
                    slot.down.push_back(Down::Welcome {
                        welcome: welcome.clone(),
                    });
                }
            }
        }
        self.room_input(|room| {
            // A refusal is the DS doing its job; the sender was told.
            let _ = room.handle_message(NOW, conn, message);
        })?;
        if leaving {
            // The client closes its end after `Leave`.
            let slot = &mut self.slots[i];
            slot.link = Link::Down;
            slot.conn = None;
            slot.down.clear();
        }
        Ok(())
    }

    /// Runs `f` on member `i`, then moves its output into its queue and
    /// drops its events.
    fn member_input(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Member<ModelGroup>) -> Result<(), CommitterError>,
    ) -> Result<(), Violation> {
        let slot = &mut self.slots[i];
        let result = f(&mut slot.member);
        while let Some(message) = slot.member.poll_transmit() {
            if slot.link == Link::Open {
                slot.up.push_back(message);
            }
        }
        while slot.member.poll_event().is_some() {}
        match result {
            // The member's copy of the log disagrees with the DS's, or it
            // refused the room the DS said hello with.
            Err(
                e @ (CommitterError::Sequence { .. }
                | CommitterError::Log(_)
                | CommitterError::Snapshot(_)),
            ) => {
                violation!("S0: member {i} refused what the DS logged: {e}")
            }
            _ => Ok(()),
        }
    }

    /// Runs `f` on the DS, then routes its output.
    fn room_input(&mut self, f: impl FnOnce(&mut Room)) -> Result<(), Violation> {
        let before = Before::of(&self.room);
        f(&mut self.room);
        self.drain_room(&before)
    }

    /// Routes the DS's output to open transports and checks the commits it
    /// accepted (S2, S4).
    fn drain_room(&mut self, before: &Before) -> Result<(), Violation> {
        let mut committed: Option<u64> = None;
        let mut seen: Option<u64> = None;
        // Membership changes are the SFU's business, not the checker's.
        while self.room.poll_event().is_some() {}
        while let Some(transmit) = self.room.poll_transmit() {
            let message = transmit.message;
            // Each entry goes to every connection; look at it once.
            if let Down::Entry { seq, entry } = &message
                && seen != Some(*seq)
            {
                seen = Some(*seq);
                match entry {
                    Entry::Committed { commit, .. } => {
                        if committed.is_some() {
                            violation!("S2: two commits accepted in one step");
                        }
                        committed = Some(*seq);
                        if let Some(add) =
                            commit.adds.iter().find(|a| !before.connections.contains(a))
                        {
                            violation!("S4: commit adds {add}, which is not a live connection");
                        }
                        let Some((id, _)) = &before.group else {
                            violation!("S2: a commit accepted without a group");
                        };
                        let Some(authenticator) = ModelGroup::commit_authenticator(&commit.commit)
                        else {
                            violation!("a commit accepted that no member could have built");
                        };
                        if let Some((_, epochs)) = self.history.iter_mut().find(|h| h.0 == *id) {
                            epochs.push(authenticator);
                        }
                    }
                    Entry::Created { conn, group_id } => {
                        let creator = self.slots.iter().find(|s| s.conn == Some(*conn));
                        let Some(creator) = creator else {
                            violation!("a group created by {conn}, which is no member's");
                        };
                        let identity = creator.member.group().identity();
                        let authenticator = ModelGroup::creation_authenticator(group_id, identity);
                        if self.history.iter().any(|h| h.0 == group_id[..]) {
                            violation!("S3: group {group_id:?} created twice");
                        }
                        self.history.push((group_id.to_vec(), vec![authenticator]));
                    }
                    _ => {}
                }
            }
            if self.config.mutation == Some(Mutation::EarlyWelcome)
                && matches!(message, Down::Welcome { .. })
            {
                // Relayed already, when the commit arrived.
                continue;
            }
            for conn in self.room.recipients(transmit.to) {
                let slot = self
                    .slots
                    .iter_mut()
                    .find(|s| s.link == Link::Open && s.conn == Some(conn));
                if let Some(slot) = slot {
                    slot.down.push_back(message.clone());
                }
            }
        }
        let after = self.room.state().group();
        if let (Some((id, epoch)), Some(now)) = (&before.group, after)
            && *id == now.id[..]
        {
            let expected = epoch + u64::from(committed.is_some());
            if now.epoch != expected {
                violation!(
                    "S2: the room's epoch went from {epoch} to {} with {} commit(s)",
                    now.epoch,
                    u64::from(committed.is_some())
                );
            }
        }
        Ok(())
    }
}

/// What the DS looked like before an input, for checking what it did.
struct Before {
    group: Option<(Vec<u8>, u64)>,
    connections: Vec<ConnId>,
}

impl Before {
    fn of(room: &Room) -> Self {
        Self {
            group: room.state().group().map(|g| (g.id.to_vec(), g.epoch)),
            connections: room.connections().collect(),
        }
    }
}

fn member_config(setup: &MemberSetup) -> MemberConfig {
    MemberConfig {
        // A constant valid name.
        room: RoomName::new("model").unwrap_or_else(|_| unreachable!()),
        capabilities: Capabilities {
            can_commit: setup.can_commit,
            transport: Transport::WebRtc,
        },
    }
}
