//! The invariants, the convergence predicate and the description of a
//! state for a counterexample.

use std::fmt::Write as _;

use satsuma_core::committer::{Group, Request, SeatStatus, Status};
use satsuma_core::wire::{ConnId, Down, Entry, Up};

use super::{Link, Slot, Violation, World};

impl World {
    /// Checks every state invariant.
    ///
    /// # Errors
    /// The first [`Violation`].
    pub fn check(&self) -> Result<(), Violation> {
        let room = self.room.state();
        let logged = room.group();
        let connections: Vec<ConnId> = self.room.connections().collect();
        for (i, slot) in self.slots.iter().enumerate() {
            let member = &slot.member;
            let group = member.group();
            // S0: the same fold of the same prefix is the same state.
            if let Some(view) = member.room()
                && view.seq() == room.seq()
                && view != room
            {
                violation!("S0: member {i}'s fold of the log differs from the DS's");
            }
            if let (Some(id), Some(epoch)) = (group.group_id(), group.epoch()) {
                let Some((_, epochs)) = self.history.iter().find(|h| h.0 == id) else {
                    violation!("S3: member {i} is in a group the log never created");
                };
                // S2: nobody is ahead of the log.
                let Some(&authenticator) = usize::try_from(epoch).ok().and_then(|e| epochs.get(e))
                else {
                    violation!(
                        "S2: member {i} is at epoch {epoch}, the log at {}",
                        epochs.len() - 1
                    );
                };
                // S1: at an epoch, exactly the keys the log's commits give.
                if group.authenticator() != Some(authenticator) {
                    violation!(
                        "S1: member {i} holds other keys for epoch {epoch} than the log's commits give"
                    );
                }
            }
            if let (Some(id), Some(epoch), Some(l)) = (group.group_id(), group.epoch(), logged)
                && *id == l.id[..]
            {
                // S1 against the log: at the log's epoch, the log's roster.
                if epoch == l.epoch && group.leaves() != room.occupied_leaves() {
                    violation!(
                        "S1: member {i} has leaves {:?} at epoch {epoch}, the log {:?}",
                        group.leaves(),
                        room.occupied_leaves()
                    );
                }
            }
            // S3: a member in the group holds the group its log describes.
            if member.status() == Status::InGroup {
                let Some(view) = member.room() else {
                    violation!("S3: member {i} is in the group without a log");
                };
                let seat = member.conn().and_then(|c| view.seat_of(c));
                let consistent = view.group().is_some_and(|g| {
                    group.group_id() == Some(&g.id[..]) && group.epoch() == Some(g.epoch)
                }) && group.own_index() == seat.map(|(leaf, _)| leaf)
                    && group.leaves() == view.occupied_leaves();
                if !consistent {
                    violation!("S3: member {i} is in the group but its MLS state is not the log's");
                }
            }
            // S1: members at one group and epoch agree on everything.
            for (j, other) in self.slots.iter().enumerate().skip(i + 1) {
                let o = other.member.group();
                if group.group_id().is_some()
                    && group.group_id() == o.group_id()
                    && group.epoch() == o.epoch()
                    && (group.authenticator() != o.authenticator() || group.leaves() != o.leaves())
                {
                    violation!(
                        "S1: members {i} and {j} are both at epoch {:?} of one group but differ",
                        group.epoch()
                    );
                }
            }
        }
        // S4: only live connections wait or hold a working leaf.
        for waiting in room.lobby() {
            if !connections.contains(&waiting.conn) {
                violation!("S4: {} waits in the lobby but is gone", waiting.conn);
            }
        }
        for seat in room.leaves().iter().flatten() {
            if seat.status != SeatStatus::Departed && !connections.contains(&seat.conn) {
                violation!("S4: {} holds a leaf but is gone", seat.conn);
            }
        }
        Ok(())
    }

    /// Whether the room has settled: nothing in flight, no work left, every
    /// connected member in the group at the log's epoch with the same keys,
    /// and the group's present members exactly the connected ones.
    #[must_use]
    pub fn converged(&self) -> bool {
        let room = self.room.state();
        let quiet = self.undetected.is_empty()
            && self.slots.iter().all(|s| {
                s.up.is_empty()
                    && s.down.is_empty()
                    && s.link != Link::Closing
                    && !s.member.has_pending()
            });
        if !quiet
            || room.has_work()
            || room
                .leaves()
                .iter()
                .flatten()
                .any(|s| s.status != SeatStatus::Present)
        {
            return false;
        }
        let live: Vec<&Slot> = self.slots.iter().filter(|s| s.link == Link::Open).collect();
        let mut present: Vec<ConnId> = room.leaves().iter().flatten().map(|s| s.conn).collect();
        let mut connected: Vec<ConnId> = live.iter().filter_map(|s| s.conn).collect();
        present.sort_unstable();
        connected.sort_unstable();
        if present != connected || connected.len() != live.len() {
            return false;
        }
        let authenticator = live.first().and_then(|s| s.member.group().authenticator());
        live.iter().all(|s| {
            let g = s.member.group();
            s.member.status() == Status::InGroup
                && g.epoch() == room.epoch()
                && room
                    .group()
                    .is_some_and(|l| g.group_id() == Some(&l.id[..]))
                && g.authenticator() == authenticator
        })
    }

    /// A few lines on where everybody stands, for a counterexample.
    #[must_use]
    pub fn describe(&self) -> String {
        let room = self.room.state();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "  room: seq {} group {:?} epoch {:?} designated {:?} stalls {} deadline {}",
            room.seq(),
            room.group().map(|g| g.id.to_vec()),
            room.epoch(),
            room.designated(),
            room.stalls(),
            if self.room.poll_timeout().is_some() {
                "armed"
            } else {
                "-"
            },
        );
        let _ = writeln!(
            out,
            "        leaves {:?}\n        lobby {:?} connections {:?} undetected {:?}",
            room.leaves()
                .iter()
                .map(|s| s.map(|s| (s.conn.0, s.status)))
                .collect::<Vec<_>>(),
            room.lobby().iter().map(|w| w.conn.0).collect::<Vec<_>>(),
            self.room.connections().map(|c| c.0).collect::<Vec<_>>(),
            self.undetected,
        );
        for (i, s) in self.slots.iter().enumerate() {
            let g = s.member.group();
            let _ = writeln!(
                out,
                "  member {i}: {:?} {:?} conn {:?} seq {:?} pending {} | mls epoch {:?} leaf {:?} leaves {:?} auth {:x?}\n            up {:?}\n            down {:?}",
                s.member.status(),
                s.link,
                s.conn.map(|c| c.0),
                s.member.room().map(|r| r.seq()),
                s.member.has_pending(),
                g.epoch(),
                g.own_index(),
                g.leaves(),
                g.authenticator(),
                s.up.iter().map(short_up).collect::<Vec<_>>(),
                s.down.iter().map(short_down).collect::<Vec<_>>(),
            );
        }
        out
    }
}

fn short_up(m: &Request) -> String {
    match m {
        Request::Join(_) => "Join".into(),
        Request::Control(Up::KeyPackage { .. }) => "KeyPackage".into(),
        Request::Control(Up::Create { .. }) => "Create".into(),
        Request::Control(Up::Commit(c)) => format!(
            "Commit(e{} +{:?} -{:?})",
            c.epoch,
            c.adds.iter().map(|a| a.0).collect::<Vec<_>>(),
            &c.removes[..]
        ),
        Request::Control(Up::Proposal { epoch, .. }) => format!("Proposal(e{epoch})"),
        Request::Control(Up::Refuse { conn }) => format!("Refuse({})", conn.0),
        Request::Control(Up::Leave) => "Leave".into(),
    }
}

fn short_down(m: &Down) -> String {
    match m {
        Down::Hello { conn, room } => format!("Hello({} @{})", conn.0, room.seq),
        Down::Entry { seq, entry } => format!("{seq}:{}", short_entry(entry)),
        Down::Welcome { .. } => "Welcome".into(),
        Down::Rejected { epoch } => format!("Rejected({epoch:?})"),
        Down::KeyPackageRefused => "KeyPackageRefused".into(),
    }
}

fn short_entry(e: &Entry) -> String {
    match e {
        Entry::Joined { conn, .. } => format!("Joined({})", conn.0),
        Entry::Left { conn } => format!("Left({})", conn.0),
        Entry::Created { conn, .. } => format!("Created({})", conn.0),
        Entry::Committed { conn, commit } => format!(
            "Committed({} e{} +{:?} -{:?})",
            conn.0,
            commit.epoch,
            commit.adds.iter().map(|a| a.0).collect::<Vec<_>>(),
            &commit.removes[..]
        ),
        Entry::Proposed { conn, epoch, .. } => format!("Proposed({} e{epoch})", conn.0),
        Entry::Stalled => "Stalled".into(),
        Entry::Refused { by, conn } => format!("Refused({} by {})", conn.0, by.0),
    }
}
