//! What the committer simulation (`tests/committer_sim.rs`) and the
//! scenario tests (`tests/committer_scenarios.rs`) share: a seeded PRNG,
//! members around real MLS sessions, and the checks a user would notice
//! failing: one group, one safety number per epoch, and a roster that shows
//! exactly who is in the call.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use satsuma_core::committer::{Member, MemberConfig, Room, Status};
use satsuma_core::mls::{
    MemberInfo, MemoryStore, RosterEntry, SafetyNumber, SatsumaCrypto, Session, SessionConfig,
    SessionError,
};
use satsuma_core::wire::{Capabilities, ConnId, RoomName, Transport};

/// A desktop client: it may be the designated committer.
pub const DESKTOP: Capabilities = Capabilities {
    can_commit: true,
    transport: Transport::WebRtc,
};

/// An intercom: designated only when no desktop is present.
pub const INTERCOM: Capabilities = Capabilities {
    can_commit: false,
    transport: Transport::Wire,
};

/// SplitMix64: a tiny, fast, seedable generator. Every random choice of a
/// test comes from one of these, so a seed replays a run exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0), by multiply-and-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        let wide = u128::from(self.next_u64()) * u128::from(n);
        // The high half of a product of two u64 fits a u64.
        u64::try_from(wide >> 64).unwrap_or(0)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// An index into a slice of `len` elements (`len` > 0).
    pub fn index(&mut self, len: usize) -> usize {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        usize::try_from(self.below(len)).unwrap_or(0)
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// 32 random bytes: a seed for a crypto provider.
    pub fn seed(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        out
    }
}

/// A new member's MLS session with its own identity, saving to `store`.
///
/// # Panics
/// On a display name or device id the credential cannot hold.
#[must_use]
#[allow(clippy::panic)] // A test helper: a bad argument is a failed test.
pub fn session(
    seed: [u8; 32],
    name: &str,
    device: &str,
    config: SessionConfig,
    store: MemoryStore,
) -> Session {
    let info = MemberInfo::new(name, device).unwrap_or_else(|e| panic!("credential: {e}"));
    Session::create(SatsumaCrypto::from_seed(seed), info, config, store)
        .unwrap_or_else(|e| panic!("session: {e}"))
}

/// How every test member joins: the same room, desktop or intercom.
///
/// # Panics
/// Never: the room name is a valid literal.
#[must_use]
#[allow(clippy::panic)] // Cannot happen: see above.
pub fn member_config(capabilities: Capabilities) -> MemberConfig {
    MemberConfig {
        room: RoomName::new("sim").unwrap_or_else(|e| panic!("room name: {e}")),
        capabilities,
    }
}

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
