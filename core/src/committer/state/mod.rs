//! The room as its ordered log says it is: the one fold that every member
//! and the delivery service compute, entry by entry, so they agree on who
//! the designated committer is and what work is pending without talking.
//!
//! A connection that joins late starts from the delivery service's
//! [`RoomSnapshot`](crate::wire::RoomSnapshot) instead of the whole log;
//! `snapshot.rs` converts between the two, and checks that some log could
//! have produced the room.

mod snapshot;

use alloc::vec::Vec;

use super::LogError;
use crate::wire::{Blob, Capabilities, CommitMessage, ConnId, Entry, Transport, limits};

/// The room after every entry of its log up to [`RoomState::seq`].
///
/// [`RoomState::apply`] is the only way it changes, and it either applies
/// an entry whole or refuses it with the state unchanged. Besides the empty
/// room ([`RoomState::default`]), the only way to get one is from a
/// [`RoomSnapshot`](crate::wire::RoomSnapshot) that keeps the same rules
/// ([`RoomState::try_from`]).
///
/// What the fold keeps true, and a snapshot must show:
/// - with no group there are no leaves; a group has a present member;
/// - the last leaf is not blank (a commit trims blank leaves at the end);
/// - a connection sits in at most one leaf and waits in the lobby at most
///   once, and waits while seated only when its leaf is rejoining;
/// - proposals come from present members, one each;
/// - `seq` counts at least one entry for each stall, proposal, waiting
///   connection and seat, for the group's creation and for each epoch;
/// - the lobby holds at most [`limits::LOBBY`] connections and there are at
///   most [`limits::MEMBERS`] leaves (the wire's bounds).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RoomState {
    seq: u64,
    group: Option<GroupState>,
    leaves: Vec<Option<Seat>>,
    lobby: Vec<Waiting>,
    stalls: u32,
    proposals: Vec<ConnId>,
}

/// The room's MLS group, as far as the log knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupState {
    /// The MLS group id.
    pub id: Blob<{ limits::GROUP_ID }>,
    /// The current epoch.
    pub epoch: u64,
}

/// An MLS leaf and the connection in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seat {
    /// The connection.
    pub conn: ConnId,
    /// Whether it can be the designated committer.
    pub can_commit: bool,
    /// How its media travels: a desktop seeing a [`Transport::Wire`] seat
    /// knows an intercom is in the call and publishes audio it can decode
    /// (G.711 or G.722).
    pub transport: Transport,
    /// Whether it is still there.
    pub status: SeatStatus,
}

/// Whether a leaf's connection is still a working member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeatStatus {
    /// Connected and in the group.
    Present,
    /// The connection left; the leaf waits to be removed.
    Departed,
    /// The connection published a fresh key package: this leaf waits to be
    /// removed and the connection to be added again.
    Rejoining,
}

/// A connection waiting in the lobby to be added.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Waiting {
    /// The connection.
    pub conn: ConnId,
    /// Its key package.
    pub key_package: Blob<{ limits::KEY_PACKAGE }>,
    /// What it can do.
    pub capabilities: Capabilities,
}

/// What an applied entry did that a reader of the log reacts to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// For a commit: the leaf each added connection took.
    pub added: Vec<(ConnId, u32)>,
    /// The group was dissolved: no member of it is left.
    pub dissolved: bool,
}

impl RoomState {
    /// The number of entries folded in.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The group, once someone created it.
    #[must_use]
    pub fn group(&self) -> Option<&GroupState> {
        self.group.as_ref()
    }

    /// The current epoch, once there is a group.
    #[must_use]
    pub fn epoch(&self) -> Option<u64> {
        self.group.as_ref().map(|g| g.epoch)
    }

    /// Every leaf, blank ones as `None`.
    #[must_use]
    pub fn leaves(&self) -> &[Option<Seat>] {
        &self.leaves
    }

    /// The connections waiting to be added, in the order they arrived.
    #[must_use]
    pub fn lobby(&self) -> &[Waiting] {
        &self.lobby
    }

    /// How many designated committers in a row left the current work
    /// undone.
    #[must_use]
    pub fn stalls(&self) -> u32 {
        self.stalls
    }

    /// Members whose proposals wait for the next commit.
    #[must_use]
    pub fn proposals(&self) -> &[ConnId] {
        &self.proposals
    }

    /// The leaf `conn` sits in, and how.
    #[must_use]
    pub fn seat_of(&self, conn: ConnId) -> Option<(u32, Seat)> {
        self.leaves.iter().enumerate().find_map(|(i, s)| match s {
            Some(seat) if seat.conn == conn => Some((u32::try_from(i).ok()?, *seat)),
            _ => None,
        })
    }

    /// What a connection in the lobby declared. The log only adds lobby
    /// connections (`check_commit`), so the fallback, an intercom that
    /// cannot commit (the cautious reading), is never used on a valid log.
    fn lobby_capabilities(&self, conn: ConnId) -> Capabilities {
        self.lobby.iter().find(|w| w.conn == conn).map_or(
            Capabilities {
                can_commit: false,
                transport: Transport::Wire,
            },
            |w| w.capabilities,
        )
    }

    /// Whether `conn` waits in the lobby.
    #[must_use]
    pub fn in_lobby(&self, conn: ConnId) -> bool {
        self.lobby.iter().any(|w| w.conn == conn)
    }

    /// The connections of the present members: the ones whose media the
    /// SFU forwards.
    pub fn present(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.leaves
            .iter()
            .flatten()
            .filter(|s| s.status == SeatStatus::Present)
            .map(|s| s.conn)
    }

    /// The indices of all occupied leaves, ascending: what the MLS roster
    /// of every member in sync shows.
    #[must_use]
    pub fn occupied_leaves(&self) -> Vec<u32> {
        (0u32..)
            .zip(self.leaves.iter())
            .filter_map(|(i, s)| s.map(|_| i))
            .collect()
    }

    /// The leaves the committer must remove: members that left or asked to
    /// be added again.
    #[must_use]
    pub fn pending_removes(&self) -> Vec<u32> {
        (0u32..)
            .zip(self.leaves.iter())
            .filter_map(|(i, s)| match s {
                Some(seat) if seat.status != SeatStatus::Present => Some(i),
                _ => None,
            })
            .collect()
    }

    /// Whether the designated committer has work: a group to create,
    /// connections to add, leaves to remove or proposals to commit.
    #[must_use]
    pub fn has_work(&self) -> bool {
        match self.group {
            None => !self.lobby.is_empty(),
            Some(_) => {
                !self.lobby.is_empty()
                    || !self.proposals.is_empty()
                    || self
                        .leaves
                        .iter()
                        .flatten()
                        .any(|s| s.status != SeatStatus::Present)
            }
        }
    }

    /// The members that take turns at the committer role, in order: the
    /// present members in leaf order (or, with no group yet, the lobby in
    /// arrival order) that can commit, or all of them if none can.
    fn pool(&self) -> Vec<ConnId> {
        let candidates: Vec<(ConnId, bool)> = match self.group {
            None => self
                .lobby
                .iter()
                .map(|w| (w.conn, w.capabilities.can_commit))
                .collect(),
            Some(_) => self
                .leaves
                .iter()
                .flatten()
                .filter(|s| s.status == SeatStatus::Present)
                .map(|s| (s.conn, s.can_commit))
                .collect(),
        };
        let capable: Vec<ConnId> = candidates.iter().filter(|c| c.1).map(|c| c.0).collect();
        if capable.is_empty() {
            candidates.iter().map(|c| c.0).collect()
        } else {
            capable
        }
    }

    /// The designated committer: of the [pool](Self::pool_len), the one at
    /// position `stalls mod count`.
    #[must_use]
    pub fn designated(&self) -> Option<ConnId> {
        let pool = self.pool();
        let count = u32::try_from(pool.len()).ok().filter(|&n| n > 0)?;
        // `count` is at most `limits::MEMBERS`, so the index fits a usize.
        pool.get(usize::try_from(self.stalls % count).ok()?)
            .copied()
    }

    /// How many members take turns at the committer role: the present
    /// members that can commit (or all present members, if none can); with
    /// no group, the lobby likewise.
    #[must_use]
    pub fn pool_len(&self) -> usize {
        self.pool().len()
    }

    /// Checks `commit` from `conn` as [`RoomState::apply`] would check the
    /// `Committed` entry, without applying it: what the delivery service
    /// asks before it accepts a commit.
    ///
    /// # Errors
    /// The [`LogError`] the entry would get.
    pub fn check_commit(&self, conn: ConnId, commit: &CommitMessage) -> Result<(), LogError> {
        // First, as `apply` does: a log at its last sequence number takes
        // no entry at all.
        if self.seq == u64::MAX {
            return Err(LogError::Exhausted);
        }
        let group = self.group.as_ref().ok_or(LogError::NoGroup)?;
        if group.epoch == u64::MAX {
            return Err(LogError::Exhausted);
        }
        if commit.epoch != group.epoch {
            return Err(LogError::WrongEpoch {
                expected: group.epoch,
                got: commit.epoch,
            });
        }
        if self.designated() != Some(conn) {
            return Err(LogError::NotDesignated(conn));
        }
        for (i, add) in commit.adds.iter().enumerate() {
            if commit.adds[..i].contains(add) {
                return Err(LogError::Duplicate);
            }
            if !self.in_lobby(*add) {
                return Err(LogError::NotInLobby(*add));
            }
            // A connection re-added must leave its old leaf in the same
            // commit, or it would sit in two.
            if let Some((leaf, _)) = self.seat_of(*add)
                && !commit.removes.contains(&leaf)
            {
                return Err(LogError::NotRemovable(leaf));
            }
        }
        for (i, leaf) in commit.removes.iter().enumerate() {
            if commit.removes[..i].contains(leaf) {
                return Err(LogError::Duplicate);
            }
            let seat = usize::try_from(*leaf)
                .ok()
                .and_then(|l| self.leaves.get(l))
                .copied()
                .flatten();
            match seat {
                Some(s) if s.status != SeatStatus::Present => {}
                _ => return Err(LogError::NotRemovable(*leaf)),
            }
        }
        if commit.adds.is_empty() != commit.welcome.is_none() {
            return Err(LogError::Welcome);
        }
        let seated = self.leaves.iter().flatten().count();
        if seated - commit.removes.len() + commit.adds.len() > limits::MEMBERS {
            return Err(LogError::RoomFull);
        }
        Ok(())
    }

    /// Folds in the next entry, or refuses it and changes nothing.
    ///
    /// # Errors
    /// A [`LogError`] for an entry the rules do not allow here; the
    /// delivery service never logs one, so a member that sees one knows the
    /// service (or the path to it) is broken.
    pub fn apply(&mut self, entry: &Entry) -> Result<Applied, LogError> {
        if self.seq == u64::MAX {
            return Err(LogError::Exhausted);
        }
        let mut applied = Applied::default();
        match entry {
            Entry::Joined {
                conn,
                key_package,
                capabilities,
            } => {
                let waiting = Waiting {
                    conn: *conn,
                    key_package: key_package.clone(),
                    capabilities: *capabilities,
                };
                let seat = self.seat_of(*conn);
                if matches!(seat, Some((_, s)) if s.status == SeatStatus::Departed) {
                    return Err(LogError::Gone(*conn));
                }
                if let Some(slot) = self.lobby.iter_mut().find(|w| w.conn == *conn) {
                    *slot = waiting;
                } else if self.lobby.len() >= limits::LOBBY {
                    return Err(LogError::LobbyFull);
                } else {
                    self.lobby.push(waiting);
                }
                if let Some((leaf, _)) = seat {
                    self.set_status(leaf, SeatStatus::Rejoining);
                    self.proposals.retain(|c| c != conn);
                }
            }
            Entry::Left { conn } => {
                self.lobby.retain(|w| w.conn != *conn);
                self.proposals.retain(|c| c != conn);
                if let Some((leaf, _)) = self.seat_of(*conn) {
                    self.set_status(leaf, SeatStatus::Departed);
                }
            }
            Entry::Created { conn, group_id } => {
                if self.group.is_some() {
                    return Err(LogError::GroupExists);
                }
                if self.designated() != Some(*conn) {
                    return Err(LogError::NotDesignated(*conn));
                }
                let capabilities = self.lobby_capabilities(*conn);
                self.lobby.retain(|w| w.conn != *conn);
                self.group = Some(GroupState {
                    id: group_id.clone(),
                    epoch: 0,
                });
                self.leaves = alloc::vec![Some(Seat {
                    conn: *conn,
                    can_commit: capabilities.can_commit,
                    transport: capabilities.transport,
                    status: SeatStatus::Present,
                })];
                self.stalls = 0;
                self.proposals.clear();
            }
            Entry::Committed { conn, commit } => {
                self.check_commit(*conn, commit)?;
                let leaves = &mut self.leaves;
                for leaf in commit.removes.iter() {
                    // `check_commit` found every removed leaf occupied.
                    if let Some(slot) = usize::try_from(*leaf).ok().and_then(|l| leaves.get_mut(l))
                    {
                        *slot = None;
                    }
                }
                while leaves.last().is_some_and(Option::is_none) {
                    leaves.pop();
                }
                for add in commit.adds.iter() {
                    let capabilities = self.lobby_capabilities(*add);
                    let seat = Some(Seat {
                        conn: *add,
                        can_commit: capabilities.can_commit,
                        transport: capabilities.transport,
                        status: SeatStatus::Present,
                    });
                    let leaves = &mut self.leaves;
                    let index = match leaves.iter().position(Option::is_none) {
                        Some(i) => {
                            leaves[i] = seat;
                            i
                        }
                        None => {
                            leaves.push(seat);
                            leaves.len() - 1
                        }
                    };
                    // At most `limits::MEMBERS` leaves, checked above.
                    applied
                        .added
                        .push((*add, u32::try_from(index).unwrap_or(u32::MAX)));
                    self.lobby.retain(|w| w.conn != *add);
                }
                if let Some(group) = self.group.as_mut() {
                    // `check_commit` refused an epoch at u64::MAX.
                    group.epoch = group.epoch.saturating_add(1);
                }
                self.stalls = 0;
                self.proposals.clear();
            }
            Entry::Proposed { conn, epoch, .. } => {
                if self.epoch() != Some(*epoch) {
                    return Err(LogError::WrongEpoch {
                        expected: self.epoch().unwrap_or(0),
                        got: *epoch,
                    });
                }
                if !matches!(self.seat_of(*conn), Some((_, s)) if s.status == SeatStatus::Present) {
                    return Err(LogError::NotMember(*conn));
                }
                if self.proposals.contains(conn) {
                    return Err(LogError::Duplicate);
                }
                self.proposals.push(*conn);
            }
            Entry::Stalled => {
                if !self.has_work() {
                    return Err(LogError::NoWork);
                }
                self.stalls = self.stalls.saturating_add(1);
            }
            Entry::Refused { by, conn } => {
                if self.designated() != Some(*by) {
                    return Err(LogError::NotDesignated(*by));
                }
                if !self.in_lobby(*conn) {
                    return Err(LogError::NotInLobby(*conn));
                }
                self.lobby.retain(|w| w.conn != *conn);
            }
        }
        // A group nobody present can carry is gone; whoever waits creates a
        // new one.
        if self.group.is_some()
            && !self
                .leaves
                .iter()
                .flatten()
                .any(|s| s.status == SeatStatus::Present)
        {
            self.group = None;
            self.leaves.clear();
            self.proposals.clear();
            self.stalls = 0;
            applied.dissolved = true;
        }
        self.seq = self.seq.saturating_add(1);
        Ok(applied)
    }

    fn set_status(&mut self, leaf: u32, status: SeatStatus) {
        let slot = usize::try_from(leaf)
            .ok()
            .and_then(|l| self.leaves.get_mut(l));
        if let Some(Some(seat)) = slot {
            seat.status = status;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{List, Transport};

    pub(super) const DESKTOP: Capabilities = Capabilities {
        can_commit: true,
        transport: Transport::WebRtc,
    };
    pub(super) const INTERCOM: Capabilities = Capabilities {
        can_commit: false,
        transport: Transport::Wire,
    };

    pub(super) fn joined(conn: u64, capabilities: Capabilities) -> Entry {
        Entry::Joined {
            conn: ConnId(conn),
            key_package: Blob::copy_from(&conn.to_be_bytes()).unwrap(),
            capabilities,
        }
    }

    pub(super) fn created(conn: u64) -> Entry {
        Entry::Created {
            conn: ConnId(conn),
            group_id: Blob::copy_from(b"g").unwrap(),
        }
    }

    pub(super) fn committed(conn: u64, epoch: u64, adds: &[u64], removes: &[u32]) -> Entry {
        Entry::Committed {
            conn: ConnId(conn),
            commit: CommitMessage {
                epoch,
                adds: List::new(adds.iter().map(|&c| ConnId(c)).collect()).unwrap(),
                removes: List::new(removes.to_vec()).unwrap(),
                commit: Blob::default(),
                welcome: (!adds.is_empty()).then(Blob::default),
            },
        }
    }

    pub(super) fn fold(entries: &[Entry]) -> RoomState {
        let mut state = RoomState::default();
        for entry in entries {
            state.apply(entry).unwrap();
        }
        state
    }

    #[test]
    fn first_in_the_lobby_creates_and_the_second_waits() {
        let state = fold(&[joined(0, DESKTOP), joined(1, DESKTOP)]);
        assert_eq!(state.designated(), Some(ConnId(0)));
        let mut wrong = state.clone();
        assert_eq!(
            wrong.apply(&created(1)),
            Err(LogError::NotDesignated(ConnId(1)))
        );
        assert_eq!(wrong, state, "a refused entry changes nothing");
        let state = fold(&[joined(0, DESKTOP), joined(1, DESKTOP), created(0)]);
        assert_eq!(state.epoch(), Some(0));
        assert_eq!(state.designated(), Some(ConnId(0)));
        assert_eq!(state.lobby().len(), 1);
        assert!(state.has_work());
    }

    #[test]
    fn commits_fill_the_leftmost_blank_leaf_and_advance_one_epoch() {
        let mut state = fold(&[
            joined(0, DESKTOP),
            joined(1, DESKTOP),
            joined(2, DESKTOP),
            created(0),
            committed(0, 0, &[1, 2], &[]),
            Entry::Left { conn: ConnId(1) },
            joined(3, DESKTOP),
        ]);
        assert_eq!(state.pending_removes(), [1]);
        let applied = state.apply(&committed(0, 1, &[3], &[1])).unwrap();
        assert_eq!(applied.added, [(ConnId(3), 1)]);
        assert_eq!(state.epoch(), Some(2));
        assert_eq!(state.occupied_leaves(), [0, 1, 2]);
        assert!(!state.has_work());
    }

    #[test]
    fn commits_that_break_the_rules_are_refused() {
        let state = fold(&[
            joined(0, DESKTOP),
            joined(1, DESKTOP),
            created(0),
            committed(0, 0, &[1], &[]),
            joined(2, DESKTOP),
        ]);
        let check = |entry: Entry| state.clone().apply(&entry).unwrap_err();
        assert_eq!(
            check(committed(1, 1, &[2], &[])),
            LogError::NotDesignated(ConnId(1))
        );
        assert_eq!(
            check(committed(0, 0, &[2], &[])),
            LogError::WrongEpoch {
                expected: 1,
                got: 0
            }
        );
        assert_eq!(
            check(committed(0, 2, &[2], &[])),
            LogError::WrongEpoch {
                expected: 1,
                got: 2
            }
        );
        assert_eq!(
            check(committed(0, 1, &[1], &[])),
            LogError::NotInLobby(ConnId(1))
        );
        assert_eq!(check(committed(0, 1, &[2, 2], &[])), LogError::Duplicate);
        // Leaf 1 is a present member: only departed ones may be removed.
        assert_eq!(check(committed(0, 1, &[], &[1])), LogError::NotRemovable(1));
        assert_eq!(check(committed(0, 1, &[], &[7])), LogError::NotRemovable(7));
    }

    #[test]
    fn a_lobby_visitor_leaving_needs_no_commit() {
        let state = fold(&[
            joined(0, DESKTOP),
            created(0),
            joined(1, DESKTOP),
            Entry::Left { conn: ConnId(1) },
        ]);
        assert!(!state.has_work());
        assert_eq!(state.occupied_leaves(), [0]);
    }

    #[test]
    fn a_stall_hands_the_role_to_the_next_present_member() {
        let mut state = fold(&[
            joined(0, DESKTOP),
            joined(1, DESKTOP),
            created(0),
            committed(0, 0, &[1], &[]),
            joined(2, DESKTOP),
        ]);
        assert_eq!(state.designated(), Some(ConnId(0)));
        state.apply(&Entry::Stalled).unwrap();
        assert_eq!(state.designated(), Some(ConnId(1)));
        state.apply(&Entry::Stalled).unwrap();
        assert_eq!(state.designated(), Some(ConnId(0)), "the role wraps around");
        state.apply(&committed(0, 1, &[2], &[])).unwrap();
        assert_eq!(state.stalls(), 0);
        assert_eq!(state.apply(&Entry::Stalled), Err(LogError::NoWork));
    }

    #[test]
    fn the_committer_leaving_moves_the_role_at_once() {
        let state = fold(&[
            joined(0, DESKTOP),
            joined(1, DESKTOP),
            created(0),
            committed(0, 0, &[1], &[]),
            Entry::Left { conn: ConnId(0) },
        ]);
        assert_eq!(state.designated(), Some(ConnId(1)));
        assert_eq!(state.pending_removes(), [0]);
    }

    #[test]
    fn an_intercom_commits_only_when_no_desktop_is_present() {
        let mut state = fold(&[joined(0, INTERCOM), joined(1, DESKTOP)]);
        assert_eq!(state.designated(), Some(ConnId(1)));
        state.apply(&created(1)).unwrap();
        state.apply(&committed(1, 0, &[0], &[])).unwrap();
        state.apply(&Entry::Left { conn: ConnId(1) }).unwrap();
        assert_eq!(state.designated(), Some(ConnId(0)));
    }

    #[test]
    fn the_group_dissolves_when_nobody_present_is_left() {
        let mut state = fold(&[joined(0, DESKTOP), created(0), joined(1, DESKTOP)]);
        let applied = state.apply(&Entry::Left { conn: ConnId(0) }).unwrap();
        assert!(applied.dissolved);
        assert_eq!(state.group(), None);
        assert_eq!(
            state.designated(),
            Some(ConnId(1)),
            "the one waiting creates anew"
        );
    }

    #[test]
    fn a_rejoining_member_is_removed_and_added_in_one_commit() {
        let mut state = fold(&[
            joined(0, DESKTOP),
            joined(1, DESKTOP),
            created(0),
            committed(0, 0, &[1], &[]),
            joined(1, DESKTOP),
        ]);
        assert_eq!(
            state.seat_of(ConnId(1)).unwrap().1.status,
            SeatStatus::Rejoining
        );
        assert_eq!(
            state.clone().apply(&committed(0, 1, &[1], &[])),
            Err(LogError::NotRemovable(1)),
            "added again without leaving its old leaf"
        );
        state.apply(&committed(0, 1, &[1], &[1])).unwrap();
        assert_eq!(
            state.seat_of(ConnId(1)).unwrap(),
            (
                1,
                Seat {
                    conn: ConnId(1),
                    can_commit: true,
                    transport: Transport::WebRtc,
                    status: SeatStatus::Present,
                }
            )
        );
    }
}
