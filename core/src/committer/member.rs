//! One member's side of the designated-committer protocol.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use super::group::Group;
use super::room::Request;
use super::state::{RoomState, SeatStatus, Waiting};
use super::{CommitterError, Event, Misbehaviour, RejoinReason};
use crate::Instant;
use crate::mls::{self, SessionError};
use crate::wire::{
    Blob, Capabilities, CommitMessage, ConnId, Down, Entry, ErrorCode, Join, List, RoomName,
    ToClient, Up, limits,
};

/// How long a member whose key package was refused waits before it
/// publishes another, unless the room changes first; doubled after each
/// refusal in a row, up to [`REFUSED_RETRY_MAX`]. Publishing at once would
/// be refused again, at network speed, for as long as the cause lasts (say,
/// this identity's old connection not yet gone); waiting only for a change
/// would wait forever when the change came before the refusal reached this
/// member, or when nothing else happens (a key package that was malformed
/// once).
const REFUSED_RETRY: Duration = Duration::from_secs(5);
/// The longest wait after a refusal.
const REFUSED_RETRY_MAX: Duration = Duration::from_secs(60);

/// How a [`Member`] joins.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberConfig {
    /// The room.
    pub room: RoomName,
    /// What this client can do.
    pub capabilities: Capabilities,
}

/// Where a [`Member`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status {
    /// Not connected: call [`Member::join`].
    Idle,
    /// `Join` sent; waiting for the delivery service's `Hello`.
    Connecting,
    /// In the lobby, waiting to be added (or added again).
    Waiting,
    /// A member of the room's group.
    InGroup,
    /// Left on purpose.
    Left,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Pending {
    Create,
    /// The commit sent, by its bytes: the log's `Committed` entry must
    /// carry exactly these before the pending MLS commit is applied.
    Commit {
        epoch: u64,
        commit: Blob<{ limits::COMMIT }>,
    },
}

/// One member of a room: the designated-committer protocol around an MLS
/// [`Group`] (a [`Session`](crate::mls::Session) in every client).
///
/// Sans-IO. After [`Member::join`], [`Member::handle_message`],
/// [`Member::handle_timeout`] or [`Member::leave`], drain
/// [`Member::poll_transmit`] and [`Member::poll_event`] until they return
/// `None`, and call [`Member::handle_timeout`] at [`Member::poll_timeout`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Member<G> {
    group: G,
    config: MemberConfig,
    status: Status,
    conn: Option<ConnId>,
    room: Option<RoomState>,
    pending: Option<Pending>,
    welcome: Option<Blob<{ limits::WELCOME }>>,
    proposed: Option<u64>,
    /// Refused: publish a fresh key package once the room changes, or at
    /// this time, whichever comes first.
    republish: Option<Instant>,
    /// Refusals of this member's key packages in a row.
    refusals: u32,
    refused: Vec<ConnId>,
    /// The sequence number of the last entry that came ahead of the one
    /// due, if the one due has not come since.
    ahead: Option<u64>,
    transmits: VecDeque<Request>,
    events: VecDeque<Event>,
}

impl<G> fmt::Debug for Member<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("status", &self.status)
            .field("conn", &self.conn)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl<G: Group> Member<G> {
    /// A member around `group`, not connected yet.
    pub fn new(group: G, config: MemberConfig) -> Self {
        Self {
            group,
            config,
            status: Status::Idle,
            conn: None,
            room: None,
            pending: None,
            welcome: None,
            proposed: None,
            republish: None,
            refusals: 0,
            refused: Vec::new(),
            ahead: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Starts joining on a new connection: queues `Join` with a fresh key
    /// package. Any group state from an earlier connection is dropped: a
    /// new connection always enters through the lobby.
    ///
    /// # Errors
    /// [`CommitterError::Unexpected`] while connected;
    /// [`CommitterError::Session`] when no key package can be made.
    pub fn join(&mut self, _now: Instant) -> Result<(), CommitterError> {
        if !matches!(self.status, Status::Idle | Status::Left) {
            return Err(CommitterError::Unexpected);
        }
        if self.group.epoch().is_some() {
            self.group.leave().map_err(CommitterError::Session)?;
        }
        let key_package = self.fresh_key_package()?;
        self.reset();
        self.status = Status::Connecting;
        self.transmits.push_back(Request::Join(Join {
            room: self.config.room.clone(),
            key_package,
            capabilities: self.config.capabilities,
        }));
        Ok(())
    }

    /// Leaves the room: queues `Leave` and forgets the group.
    pub fn leave(&mut self, _now: Instant) {
        if matches!(self.status, Status::Idle | Status::Left) {
            return;
        }
        if self.group.epoch().is_some() {
            // Erasing keys cannot be refused; a store failure only means
            // the erased state is not on disk yet.
            let _ = self.group.leave();
        }
        self.transmits.push_back(Request::Control(Up::Leave));
        self.reset();
        self.status = Status::Left;
    }

    /// The connection is gone for good (the transport closed it): back to
    /// [`Status::Idle`], ready to [`Member::join`] again.
    pub fn handle_disconnect(&mut self, _now: Instant) {
        if self.group.epoch().is_some() {
            let _ = self.group.leave();
        }
        self.reset();
        self.status = Status::Idle;
    }

    /// Decodes and handles one message from the delivery service.
    ///
    /// # Errors
    /// As [`Member::handle_message`]; [`CommitterError::Wire`];
    /// [`CommitterError::Unexpected`] for a message that is not
    /// [`ToClient::Control`] (the transport's, not the committer's).
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) -> Result<(), CommitterError> {
        match <ToClient as crate::wire::Message>::decode(bytes)? {
            ToClient::Control(message) => self.handle_message(now, message),
            _ => Err(CommitterError::Unexpected),
        }
    }

    /// Handles one message from the delivery service.
    ///
    /// # Errors
    /// A [`CommitterError`] for a message that is out of place, out of
    /// sequence or against the log's rules, or a `Hello` whose room no log
    /// could produce; the member is then unchanged.
    pub fn handle_message(&mut self, now: Instant, message: Down) -> Result<(), CommitterError> {
        let handled = self.handle_down(now, message);
        self.report(&handled);
        handled
    }

    /// One entry of the room's log (`Down::Entry`), borrowed: for a
    /// driver that keeps the entry afterwards (to show the log) without
    /// holding a copy of it, Welcome and all, while the commit is
    /// processed.
    ///
    /// # Errors
    /// As [`Member::handle_message`].
    pub fn handle_log_entry(
        &mut self,
        now: Instant,
        seq: u64,
        entry: &Entry,
    ) -> Result<(), CommitterError> {
        let handled = self.handle_entry(now, seq, entry).map(|()| self.act(now));
        self.report(&handled);
        handled
    }

    /// A refusal that means the delivery service misbehaved becomes an
    /// event the application shows.
    fn report(&mut self, handled: &Result<(), CommitterError>) {
        if let Err(e) = handled
            && let Some(fault) = Misbehaviour::of(e)
        {
            self.events
                .push_back(Event::DeliveryServiceMisbehaved(fault));
        }
    }

    fn handle_down(&mut self, now: Instant, message: Down) -> Result<(), CommitterError> {
        match message {
            Down::Hello { conn, room } => {
                if self.status != Status::Connecting {
                    return Err(CommitterError::Unexpected);
                }
                // A room no log leads to is refused like a log entry the
                // rules do not allow: this member keeps waiting for a
                // `Hello` it can follow.
                let room = RoomState::try_from(room)?;
                self.conn = Some(conn);
                self.room = Some(room);
                self.status = Status::Waiting;
            }
            Down::Entry { seq, entry } => self.handle_entry(now, seq, &entry)?,
            Down::Welcome { welcome } => {
                if self.status != Status::Waiting {
                    return Err(CommitterError::Unexpected);
                }
                self.welcome = Some(welcome);
            }
            Down::Rejected { epoch } => match (&self.pending, epoch) {
                (Some(Pending::Commit { epoch: ours, .. }), Some(e)) if *ours == e => {
                    self.pending = None;
                    self.group
                        .discard_pending_commit()
                        .map_err(CommitterError::Session)?;
                }
                (Some(Pending::Create), None) => self.pending = None,
                _ => return Err(CommitterError::Unexpected),
            },
            Down::KeyPackageRefused => self
                .events
                .push_back(Event::ServerError(ErrorCode::KeyPackageRefused)),
        }
        self.act(now);
        Ok(())
    }

    /// Time passes: SFrame grace periods end, self-updates fall due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.group.handle_timeout(now);
        if self.republish.is_some_and(|at| now >= at) {
            self.republish = None;
            self.publish_key_package();
        }
        self.act(now);
    }

    /// The next message for the delivery service.
    pub fn poll_transmit(&mut self) -> Option<Request> {
        self.transmits.pop_front()
    }

    /// The next thing the application shows.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Member::handle_timeout`] next has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        // A self-update already asked for (proposed this epoch, or in the
        // pending commit) is not due again until the epoch changes.
        let asked = self.pending.is_some()
            || self
                .room
                .as_ref()
                .is_some_and(|r| r.epoch().is_some() && self.proposed == r.epoch());
        let group = if asked {
            self.group.keys_timeout()
        } else {
            self.group.poll_timeout()
        };
        match (group, self.republish) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Where this member stands.
    #[must_use]
    pub fn status(&self) -> Status {
        self.status
    }

    /// This member's connection, once the delivery service said hello.
    #[must_use]
    pub fn conn(&self) -> Option<ConnId> {
        self.conn
    }

    /// The room as this member's copy of the log says.
    #[must_use]
    pub fn room(&self) -> Option<&RoomState> {
        self.room.as_ref()
    }

    /// How this member joins: its room and capabilities.
    #[must_use]
    pub fn config(&self) -> &MemberConfig {
        &self.config
    }

    /// The MLS member: its roster, safety number and SFrame keys.
    #[must_use]
    pub fn group(&self) -> &G {
        &self.group
    }

    /// Tells the MLS member the wall-clock time (see
    /// [`Session::set_time`](crate::mls::Session::set_time)): a driver with
    /// a clock calls it before each input.
    pub fn set_time(&mut self, time: crate::UnixTime) {
        self.group.set_time(time);
    }

    /// The MLS member itself, to make it misbehave in tests (commit or
    /// propose behind the committer's back). Only with the `testing`
    /// feature: a client seals and opens frames through
    /// [`Member::media`].
    #[cfg(feature = "testing")]
    pub fn group_mut(&mut self) -> &mut G {
        &mut self.group
    }

    /// Whether a commit or creation of this member's awaits the delivery
    /// service's answer.
    #[must_use]
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    fn reset(&mut self) {
        self.conn = None;
        self.room = None;
        self.pending = None;
        self.welcome = None;
        self.proposed = None;
        self.republish = None;
        self.refusals = 0;
        self.refused.clear();
        self.ahead = None;
    }

    fn fresh_key_package(&mut self) -> Result<Blob<{ limits::KEY_PACKAGE }>, CommitterError> {
        let key_package = self.group.key_package().map_err(CommitterError::Session)?;
        Blob::new(key_package).ok_or(CommitterError::Session(SessionError::BadKeyPackage))
    }

    fn handle_entry(
        &mut self,
        now: Instant,
        seq: u64,
        entry: &Entry,
    ) -> Result<(), CommitterError> {
        let (Some(room), Some(me)) = (self.room.as_mut(), self.conn) else {
            return Err(CommitterError::Unexpected);
        };
        let expected = room.seq().saturating_add(1);
        if seq > expected {
            // One entry ahead may be a forgery (the one due follows); two
            // ahead in a row mean the one due was lost, and no later entry
            // can be folded without it.
            if self.ahead.is_some_and(|before| seq > before) {
                self.fall_behind(expected, seq);
            } else {
                self.ahead = Some(seq);
            }
            return Err(CommitterError::Sequence { expected, got: seq });
        }
        if seq < expected {
            return Err(CommitterError::Sequence { expected, got: seq });
        }
        self.ahead = None;
        let was_present =
            matches!(room.seat_of(me), Some((_, s)) if s.status == SeatStatus::Present);
        let applied = room.apply(entry)?;
        if self.republish.is_some() && matches!(entry, Entry::Left { .. } | Entry::Committed { .. })
        {
            self.republish = None;
            self.publish_key_package();
        }
        match entry {
            Entry::Committed { conn, commit } => {
                let welcome = self.welcome.take();
                if *conn == me {
                    self.on_own_commit(now, commit);
                } else {
                    if matches!(self.pending.take(), Some(Pending::Commit { .. })) {
                        let _ = self.group.discard_pending_commit();
                    }
                    if applied.added.iter().any(|(c, _)| *c == me) {
                        self.on_added(now, welcome);
                    } else if was_present && self.status == Status::InGroup {
                        self.on_commit(now, &commit.commit);
                    }
                }
                self.refused.clear();
            }
            Entry::Created { conn, group_id } if *conn == me => {
                self.pending = None;
                if self.group.epoch().is_some() {
                    let _ = self.group.leave();
                }
                match self.group.create_group(now, group_id) {
                    Ok(()) if self.consistent() => {
                        self.status = Status::InGroup;
                        self.events.push_back(Event::Joined { epoch: 0 });
                        self.introductions();
                    }
                    Ok(()) => self.rejoin(RejoinReason::Forked),
                    Err(e) => self.rejoin(RejoinReason::Failed(e)),
                }
            }
            Entry::Proposed { conn, proposal, .. }
                if *conn != me && self.status == Status::InGroup =>
            {
                // A proposal this member cannot cache makes the commit that
                // carries it fail here, which is where the fork is noticed.
                let _ = self.group.process(now, proposal);
            }
            Entry::Left { conn } if *conn == me && self.status != Status::Left => {
                if self.group.epoch().is_some() {
                    let _ = self.group.leave();
                }
                self.reset();
                self.status = Status::Idle;
                self.events.push_back(Event::Evicted);
            }
            Entry::Refused { conn, .. } => {
                self.refused.retain(|c| c != conn);
                if *conn == me {
                    // Not at once: see `REFUSED_RETRY`.
                    self.rejoin(RejoinReason::Refused);
                    self.transmits
                        .retain(|t| !matches!(t, Request::Control(Up::KeyPackage { .. })));
                    let wait = REFUSED_RETRY
                        .saturating_mul(1 << self.refusals.min(4))
                        .min(REFUSED_RETRY_MAX);
                    self.refusals = self.refusals.saturating_add(1);
                    self.republish = Some(now.saturating_add(wait));
                }
            }
            _ => {}
        }
        if applied.dissolved && self.status == Status::InGroup {
            // Only a group with no present member dissolves, and this
            // member was present: its view disagreed with the log.
            self.rejoin(RejoinReason::Forked);
        }
        Ok(())
    }

    fn on_own_commit(&mut self, now: Instant, logged: &CommitMessage) {
        match self.pending.take() {
            Some(Pending::Commit { epoch, commit })
                if epoch == logged.epoch && commit == logged.commit =>
            {
                let before = self.group.leaves();
                match self.group.apply_pending_commit(now) {
                    Ok(epoch) if self.consistent() => {
                        self.events.push_back(Event::NewEpoch { epoch });
                        self.members_changed(&before);
                    }
                    Ok(_) => self.rejoin(RejoinReason::Forked),
                    Err(e) => self.rejoin(RejoinReason::Failed(e)),
                }
            }
            // The log holds a commit of this connection's that this member
            // does not hold (another one of its own, or a copy sent on its
            // connection): it cannot follow the group any more, unless it
            // already asked to be added again.
            pending => {
                if matches!(pending, Some(Pending::Commit { .. })) {
                    let _ = self.group.discard_pending_commit();
                }
                if self.status == Status::InGroup {
                    self.rejoin(RejoinReason::Forked);
                }
            }
        }
    }

    fn on_added(&mut self, now: Instant, welcome: Option<Blob<{ limits::WELCOME }>>) {
        let Some(welcome) = welcome else {
            self.rejoin(RejoinReason::LostWelcome);
            return;
        };
        if self.group.epoch().is_some() {
            let _ = self.group.leave();
        }
        match self.group.join(now, &welcome) {
            Ok(()) if self.consistent() => {
                self.status = Status::InGroup;
                self.refusals = 0;
                let epoch = self.group.epoch().unwrap_or(0);
                self.events.push_back(Event::Joined { epoch });
                self.introductions();
            }
            Ok(()) => self.rejoin(RejoinReason::Forked),
            Err(e) => self.rejoin(RejoinReason::Failed(e)),
        }
    }

    fn on_commit(&mut self, now: Instant, commit: &[u8]) {
        let before = self.group.leaves();
        match self.group.process(now, commit) {
            Ok(mls::Event::NewEpoch { epoch, .. }) if self.consistent() => {
                self.events.push_back(Event::NewEpoch { epoch });
                self.members_changed(&before);
            }
            Ok(_) => self.rejoin(RejoinReason::Forked),
            Err(e) => self.rejoin(RejoinReason::Failed(e)),
        }
    }

    /// Tells the application who entered and left, if anyone did: `before`
    /// were the occupied leaves of the previous epoch.
    fn members_changed(&mut self, before: &[u32]) {
        let after = self.group.leaves();
        let added: Vec<u32> = after
            .iter()
            .filter(|l| !before.contains(l))
            .copied()
            .collect();
        let removed: Vec<u32> = before
            .iter()
            .filter(|l| !after.contains(l))
            .copied()
            .collect();
        if !added.is_empty() || !removed.is_empty() {
            self.events
                .push_back(Event::MembersChanged { added, removed });
        }
        self.introductions();
    }

    /// Passes on the members the MLS group saw added.
    fn introductions(&mut self) {
        while let Some(introduction) = self.group.poll_introduction() {
            self.events.push_back(Event::Introduced(introduction));
        }
    }

    /// Whether the MLS group is the one the log describes: same group,
    /// epoch, own leaf and occupied leaves.
    fn consistent(&self) -> bool {
        let (Some(room), Some(me)) = (self.room.as_ref(), self.conn) else {
            return false;
        };
        let Some(logged) = room.group() else {
            return false;
        };
        self.group.epoch() == Some(logged.epoch)
            && self.group.group_id() == Some(&logged.id[..])
            && self.group.own_index() == room.seat_of(me).map(|(leaf, _)| leaf)
            && self.group.leaves() == room.occupied_leaves()
    }

    /// A log entry never arrived on this connection: the member's fold
    /// cannot go on, and only a fresh `Hello` brings the room back. It
    /// drops the connection's view and its group keys, as when evicted,
    /// and the driver joins again on a new connection; the committer then
    /// adds it afresh and removes its old leaf once the old connection is
    /// gone.
    fn fall_behind(&mut self, expected: u64, got: u64) {
        if let Some(Pending::Commit { .. }) = self.pending {
            let _ = self.group.discard_pending_commit();
        }
        while self.group.poll_introduction().is_some() {}
        if self.group.epoch().is_some() {
            let _ = self.group.leave();
        }
        self.reset();
        self.status = Status::Idle;
        self.events.push_back(Event::FellBehind { expected, got });
    }

    /// Drops the group and publishes a fresh key package: the committer
    /// removes this member's old leaf (if any) and adds it again.
    fn rejoin(&mut self, reason: RejoinReason) {
        if let Some(Pending::Commit { .. }) = self.pending {
            let _ = self.group.discard_pending_commit();
        }
        self.pending = None;
        self.welcome = None;
        // Members of a group this member drops are no news.
        while self.group.poll_introduction().is_some() {}
        if self.group.epoch().is_some() {
            let _ = self.group.leave();
        }
        self.status = Status::Waiting;
        self.republish = None;
        self.publish_key_package();
        self.events.push_back(Event::Rejoining(reason));
    }

    fn publish_key_package(&mut self) {
        match self.fresh_key_package() {
            Ok(key_package) => self
                .transmits
                .push_back(Request::Control(Up::KeyPackage { key_package })),
            Err(CommitterError::Session(e)) => self.events.push_back(Event::Stuck(e)),
            Err(_) => {}
        }
    }

    /// Does what the log says this member should do now.
    fn act(&mut self, now: Instant) {
        let (Some(room), Some(me)) = (self.room.as_ref(), self.conn) else {
            return;
        };
        if self.pending.is_some() {
            return;
        }
        let designated = room.designated() == Some(me);
        if !designated {
            self.maybe_propose_update(now);
            return;
        }
        let Some(epoch) = room.epoch() else {
            if room.in_lobby(me) {
                let id = self.group.new_group_id();
                if let Some(group_id) = Blob::new(id) {
                    self.pending = Some(Pending::Create);
                    self.transmits
                        .push_back(Request::Control(Up::Create { group_id }));
                }
            }
            return;
        };
        if self.status != Status::InGroup {
            return;
        }
        if !room.has_work() && !self.group.self_update_due(now) {
            return;
        }
        let removes = room.pending_removes();
        if !removes.is_empty() {
            // mls-rs keeps an update proposal of a leaf this commit blanks
            // whenever another update applies, and every receiver then
            // refuses the commit. Proposers propose again next epoch.
            self.group.clear_proposals();
        }
        let mut adds: Vec<Waiting> = room
            .lobby()
            .iter()
            .filter(|w| !self.refused.contains(&w.conn))
            .cloned()
            .collect();
        // Key packages this member already refused are no work: their
        // `Refused` entries are on the way. With nothing else to do, a
        // commit would be empty: a needless epoch for everyone.
        let only_adds =
            removes.is_empty() && room.proposals().is_empty() && !self.group.self_update_due(now);
        if only_adds && adds.is_empty() {
            return;
        }
        let mut isolated = false;
        loop {
            let key_packages: Vec<&[u8]> = adds.iter().map(|w| &w.key_package[..]).collect();
            match self.group.commit(&key_packages, &removes) {
                Ok(built) => {
                    let adds = List::new(adds.iter().map(|w| w.conn).collect());
                    let removes = List::new(removes);
                    let commit = Blob::new(built.commit);
                    let welcome = built.welcome.map(Blob::new);
                    let (Some(adds), Some(removes), Some(commit), Some(welcome)) = (
                        adds,
                        removes,
                        commit,
                        welcome.map_or(Some(None), |w| w.map(Some)),
                    ) else {
                        // Too big for the wire: say so rather than send a
                        // truncated commit; the deadline moves the role on.
                        let _ = self.group.discard_pending_commit();
                        self.events
                            .push_back(Event::Stuck(SessionError::InvalidChange));
                        return;
                    };
                    self.pending = Some(Pending::Commit {
                        epoch,
                        commit: commit.clone(),
                    });
                    self.transmits
                        .push_back(Request::Control(Up::Commit(CommitMessage {
                            epoch,
                            adds,
                            removes,
                            commit,
                            welcome,
                        })));
                    return;
                }
                Err(_) if !adds.is_empty() && !isolated => {
                    // Some key package spoils the batch: keep each one that
                    // can join together with those kept before it (a bad
                    // one, or a second key package of an identity already
                    // kept, is refused), with the same removes, so a member
                    // being re-added is judged with its old leaf gone.
                    isolated = true;
                    if self.trial_commit(&[], &removes).is_err() {
                        continue;
                    }
                    let mut kept: Vec<Waiting> = Vec::with_capacity(adds.len());
                    for waiting in adds {
                        let mut trial: Vec<&[u8]> =
                            kept.iter().map(|w| &w.key_package[..]).collect();
                        trial.push(&waiting.key_package);
                        if self.trial_commit(&trial, &removes).is_ok() {
                            kept.push(waiting);
                        } else {
                            self.refused.push(waiting.conn);
                            self.transmits
                                .push_back(Request::Control(Up::Refuse { conn: waiting.conn }));
                        }
                    }
                    adds = kept;
                    if only_adds && adds.is_empty() {
                        return;
                    }
                }
                Err(e) => {
                    self.events.push_back(Event::Stuck(e));
                    return;
                }
            }
        }
    }

    /// Builds and drops a commit: whether the group would take it.
    fn trial_commit(&mut self, adds: &[&[u8]], removes: &[u32]) -> Result<(), SessionError> {
        self.group.commit(adds, removes)?;
        self.group.discard_pending_commit()
    }

    fn maybe_propose_update(&mut self, now: Instant) {
        let Some(room) = self.room.as_ref() else {
            return;
        };
        let (Some(epoch), Some(me)) = (room.epoch(), self.conn) else {
            return;
        };
        if self.status != Status::InGroup
            || self.proposed == Some(epoch)
            || room.proposals().contains(&me)
            || !self.group.self_update_due(now)
        {
            return;
        }
        if let Some(proposal) = self.group.propose_update().ok().and_then(Blob::new) {
            self.proposed = Some(epoch);
            self.transmits
                .push_back(Request::Control(Up::Proposal { epoch, proposal }));
        }
    }
}

impl<G: Group> Member<G> {
    /// An empty SFrame key ring for a media path of its own; see
    /// [`Group::media_ring`].
    pub fn media_ring(&self) -> Option<crate::sframe::KeyRing> {
        self.group.media_ring()
    }

    /// Moves the SFrame keys installed since the last call into the media
    /// path's ring `to`, so that sealing and opening never wait for MLS
    /// work; call it after every step of the member (a leave empties
    /// `to`). See [`KeyRing::hand_over`](crate::sframe::KeyRing::hand_over).
    ///
    /// # Errors
    /// As [`KeyRing::hand_over`](crate::sframe::KeyRing::hand_over).
    pub fn hand_over_keys(
        &mut self,
        now: Instant,
        to: &mut crate::sframe::KeyRing,
    ) -> Result<(), crate::Error> {
        self.group.hand_over_keys(now, to)
    }
}

impl Member<mls::Session> {
    /// Records that this member compared `fingerprint` out of band and it
    /// matched (see [`Session::mark_verified`](mls::Session::mark_verified)):
    /// the trust record only, nothing about the group.
    ///
    /// # Errors
    /// As [`Session::mark_verified`](mls::Session::mark_verified).
    pub fn mark_verified(
        &mut self,
        fingerprint: mls::IdentityFingerprint,
    ) -> Result<bool, SessionError> {
        self.group.mark_verified(fingerprint)
    }

    /// The member's SFrame keys for the media path: seal and open frames,
    /// nothing that would change the group. A driver that hands the keys
    /// over ([`Member::hand_over_keys`]) seals and opens with its own ring
    /// instead: this one then holds none.
    pub fn media(&mut self) -> crate::media::MediaKeys<'_> {
        crate::media::MediaKeys::new(self.group.keyring_mut())
    }
}
