//! What the committer simulation (`tests/committer_sim.rs`) and the
//! scenario tests (`tests/committer_scenarios.rs`) check, as a user would
//! notice it failing: one group, one safety number per epoch, and a roster
//! that shows exactly who is in the call.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use satsuma_core::committer::{Member, Room, Status};
use satsuma_core::mls::{RosterEntry, SafetyNumber, Session, SessionError};
use satsuma_core::wire::ConnId;
use satsuma_sim::Watch;

/// What every member at one (group id, epoch) must see alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochView {
    /// The safety number on every screen.
    pub safety_number: SafetyNumber,
    /// The occupied leaves.
    pub leaves: Vec<u32>,
}

/// Every (group id, epoch) any member reached, with what it saw there: the
/// first member to reach an epoch writes it down, every later one must see
/// the same (invariant S1 of `docs/committer.md`).
#[derive(Debug, Default)]
pub struct Ledger {
    epochs: BTreeMap<(Vec<u8>, u64), (EpochView, String)>,
}

impl Ledger {
    /// Records what `group` shows at its current epoch.
    ///
    /// # Errors
    /// A description of the split when another member saw something else
    /// at the same group id and epoch.
    pub fn observe(&mut self, who: &str, group: &Session) -> Result<(), String> {
        let (Some(id), Some(epoch)) = (group.group_id(), group.epoch()) else {
            return Ok(());
        };
        let view = EpochView {
            safety_number: group
                .safety_number()
                .map_err(|e| format!("{who}: no safety number at epoch {epoch}: {e}"))?,
            leaves: group.leaves(),
        };
        match self.epochs.get(&(id.to_vec(), epoch)) {
            Some((seen, first)) if *seen != view => Err(format!(
                "split at group {id:02x?} epoch {epoch}: {first} saw {seen:?}, {who} sees {view:?}"
            )),
            Some(_) => Ok(()),
            None => {
                self.epochs
                    .insert((id.to_vec(), epoch), (view, who.to_owned()));
                Ok(())
            }
        }
    }

    /// How many distinct (group id, epoch) pairs members reached.
    #[must_use]
    pub fn epochs(&self) -> usize {
        self.epochs.len()
    }

    /// What was seen at `epoch` of group `id`, if anybody reached it.
    #[must_use]
    pub fn view(&self, id: &[u8], epoch: u64) -> Option<&EpochView> {
        self.epochs.get(&(id.to_vec(), epoch)).map(|(v, _)| v)
    }
}

/// Every member's epoch, after every input it takes.
impl Watch<Session> for Ledger {
    #[allow(clippy::panic)] // A split is a failed test.
    fn member(&mut self, _room: &Room, i: usize, member: &Member<Session>) {
        let who = format!("endpoint {i} ({})", member.group().info().device_id);
        if let Err(split) = self.observe(&who, member.group()) {
            panic!("{split}");
        }
    }
}

/// One roster line: leaf, device id and identity fingerprint.
fn roster_line(entry: &RosterEntry) -> (u32, String, String) {
    (
        entry.leaf_index,
        entry.info.device_id.clone(),
        format!("{:?}", entry.fingerprint),
    )
}

/// Whether the room has settled with exactly `live` in it, every one of them
/// in one group at the log's epoch with the same safety number and a roster
/// that lists exactly them: what the people in the call would check.
///
/// # Errors
/// The first thing that is not settled yet, for a failure message.
pub fn converged<'a>(
    room: &Room,
    live: impl IntoIterator<Item = &'a Member<Session>>,
) -> Result<Option<SafetyNumber>, String> {
    let live: Vec<&Member<Session>> = live.into_iter().collect();
    let state = room.state();
    let mut conns: Vec<ConnId> = room.connections().collect();
    conns.sort_unstable();
    let mut live_conns = Vec::with_capacity(live.len());
    for m in &live {
        let conn = m
            .conn()
            .ok_or_else(|| format!("a live member has no connection ({:?})", m.status()))?;
        live_conns.push(conn);
    }
    live_conns.sort_unstable();
    if conns != live_conns {
        return Err(format!(
            "the DS has connections {conns:?}, the live members are {live_conns:?}"
        ));
    }
    if live.is_empty() {
        return Ok(None);
    }
    let group = state.group().ok_or("live members but no group")?;
    if !state.lobby().is_empty() {
        let waiting: Vec<ConnId> = state.lobby().iter().map(|w| w.conn).collect();
        return Err(format!("lobby not empty: {waiting:?}"));
    }
    if !state.pending_removes().is_empty() {
        return Err(format!(
            "leaves waiting to be removed: {:?}",
            state.pending_removes()
        ));
    }
    if !state.proposals().is_empty() {
        return Err(format!("proposals pending: {:?}", state.proposals()));
    }
    let mut expected = Vec::with_capacity(live.len());
    let mut safety: Option<SafetyNumber> = None;
    for m in &live {
        let conn = m.conn().ok_or("checked above")?;
        let who = format!("{conn} ({})", m.group().info().device_id);
        if m.status() != Status::InGroup {
            return Err(format!("{who} is {:?}", m.status()));
        }
        if m.has_pending() {
            return Err(format!("{who} has a commit pending"));
        }
        if m.room().map(|r| r.seq()) != Some(state.seq()) {
            return Err(format!("{who} has not read the whole log"));
        }
        let g = m.group();
        if g.group_id() != Some(&group.id[..]) || g.epoch() != Some(group.epoch) {
            return Err(format!(
                "{who} is at epoch {:?} of another group or epoch than the log's {}",
                g.epoch(),
                group.epoch
            ));
        }
        let seat = state.seat_of(conn).map(|(leaf, _)| leaf);
        if g.own_index() != seat {
            return Err(format!(
                "{who} sits in leaf {:?}, the log says {seat:?}",
                g.own_index()
            ));
        }
        let number = g
            .safety_number()
            .map_err(|e: SessionError| format!("{who}: {e}"))?;
        match safety {
            Some(s) if s != number => {
                return Err(format!("{who} shows another safety number"));
            }
            _ => safety = Some(number),
        }
        let own = g
            .roster()
            .into_iter()
            .find(|r| Some(r.leaf_index) == g.own_index())
            .ok_or_else(|| format!("{who} is not in its own roster"))?;
        expected.push(roster_line(&own));
    }
    expected.sort();
    for m in &live {
        let mut roster: Vec<_> = m.group().roster().iter().map(roster_line).collect();
        roster.sort();
        if roster != expected {
            let mut diff = String::new();
            for line in &roster {
                if !expected.contains(line) {
                    let _ = write!(diff, " +{}@{}", line.1, line.0);
                }
            }
            for line in &expected {
                if !roster.contains(line) {
                    let _ = write!(diff, " -{}@{}", line.1, line.0);
                }
            }
            return Err(format!(
                "{}'s roster differs from who is present:{diff}",
                m.group().info().device_id
            ));
        }
    }
    let leaves: Vec<u32> = expected.iter().map(|l| l.0).collect();
    if state.occupied_leaves() != leaves {
        return Err(format!(
            "the log's leaves {:?} are not the members' {leaves:?}",
            state.occupied_leaves()
        ));
    }
    Ok(safety)
}
