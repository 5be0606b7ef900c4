//! The committer scenario tests' view of the network
//! (`tests/committer_scenarios.rs`): a [`Net`] of named clients around real
//! MLS sessions (or raw clients a test speaks for), every member's epoch
//! checked against the [`Ledger`] after every input, and the questions the
//! scenarios ask of it.
// A failed expectation here is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use satsuma_core::committer::{DsError, Member, RoomConfig};
use satsuma_core::mls::{MemoryStore, SafetyNumber, Session, SessionConfig};
use satsuma_core::wire::{Capabilities, CommitMessage, ConnId, Entry};
use satsuma_sim::Net;
use satsuma_sim::fixtures::{DESKTOP, desktop, member_config, session};

use crate::checks::{Ledger, converged};

/// The DS's commit deadline in every scenario.
pub const DEADLINE: Duration = Duration::from_secs(2);

/// A room and its named clients, on a faultless network that moves only
/// when a test says (through [`Net`], which it derefs to).
#[derive(Debug)]
pub struct World {
    net: Net<Session, Ledger>,
    names: Vec<String>,
}

impl Deref for World {
    type Target = Net<Session, Ledger>;

    fn deref(&self) -> &Self::Target {
        &self.net
    }
}

impl DerefMut for World {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.net
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// An empty room at time zero with a [`DEADLINE`] commit deadline.
    #[must_use]
    pub fn new() -> Self {
        Self {
            net: Net::new(config()).record(),
            names: Vec::new(),
        }
    }

    /// A desktop member with its own identity.
    pub fn add(&mut self, name: &str) -> usize {
        self.add_with(name, DESKTOP, SessionConfig::default())
    }

    /// A member with these capabilities and session settings.
    pub fn add_with(&mut self, name: &str, caps: Capabilities, config: SessionConfig) -> usize {
        let seed = u8::try_from(self.names.len() + 1).unwrap();
        let device = format!("{name}-laptop");
        let s = session([seed; 32], name, &device, config, MemoryStore::default());
        self.client(name, Some(Member::new(s, member_config(caps))))
    }

    /// A client the test speaks for ([`Net::inject`]).
    pub fn add_raw(&mut self, name: &str) -> usize {
        self.client(name, None)
    }

    fn client(&mut self, name: &str, member: Option<Member<Session>>) -> usize {
        self.names.push(name.to_owned());
        self.net.add(member)
    }

    /// Client `i`'s name.
    #[must_use]
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Client `i`'s member, which must be running.
    #[must_use]
    pub fn member(&self, i: usize) -> &Member<Session> {
        self.net.member(i).expect("a running member")
    }

    /// Client `i`'s member, which must be running.
    pub fn member_mut(&mut self, i: usize) -> &mut Member<Session> {
        self.net.member_mut(i).expect("a running member")
    }

    /// Client `i`'s current connection, which the DS must have read.
    #[must_use]
    pub fn conn(&self, i: usize) -> ConnId {
        self.net.conn(i).expect("connected")
    }

    /// Client `i` joins on a new connection.
    pub fn join(&mut self, i: usize) {
        self.net.join(i).unwrap();
    }

    /// Asserts the room converged with exactly `who` in the call, and
    /// returns the safety number they all show.
    pub fn assert_call(&self, who: &[usize]) -> SafetyNumber {
        let mut expected: Vec<ConnId> = who.iter().map(|&i| self.conn(i)).collect();
        expected.sort_unstable();
        let mut present: Vec<ConnId> = self.live().filter_map(Member::conn).collect();
        present.sort_unstable();
        assert_eq!(present, expected, "who is in the call");
        let names: BTreeSet<String> = who
            .iter()
            .map(|&i| format!("{}-laptop", self.names[i]))
            .collect();
        for &i in who {
            let roster: BTreeSet<String> = self
                .member(i)
                .group()
                .roster()
                .into_iter()
                .map(|r| r.info.device_id)
                .collect();
            assert_eq!(roster, names, "{}'s roster", self.names[i]);
        }
        converged(self.room(), self.live())
            .unwrap_or_else(|e| panic!("not converged: {e}"))
            .expect("somebody is in the call")
    }

    /// The log's epoch; there must be a group.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.room().state().epoch().expect("a group")
    }

    /// How many logged entries match.
    pub fn count(&self, pred: impl Fn(&Entry) -> bool) -> usize {
        self.log().iter().filter(|e| pred(e)).count()
    }

    /// Every logged commit and its committer.
    #[must_use]
    pub fn commits(&self) -> Vec<(ConnId, CommitMessage)> {
        self.log()
            .iter()
            .filter_map(|e| match e {
                Entry::Committed { conn, commit } => Some((*conn, commit.clone())),
                _ => None,
            })
            .collect()
    }

    /// What the DS refused from the client called `name`.
    #[must_use]
    pub fn errors_of(&self, name: &str) -> Vec<DsError> {
        self.ds_errors()
            .iter()
            .filter(|(i, _)| self.names[*i] == name)
            .map(|(_, e)| *e)
            .collect()
    }
}

/// A room with `names` in one group, all joined one after the other.
#[must_use]
pub fn call(names: &[&str]) -> (World, Vec<usize>) {
    let members = names
        .iter()
        .zip(1..)
        .map(|(name, seed)| desktop(name, seed, SessionConfig::default()));
    let w = World {
        net: Net::settled(config(), members).record(),
        names: names.iter().map(|&n| n.to_owned()).collect(),
    };
    let ids: Vec<usize> = (0..names.len()).collect();
    w.assert_call(&ids);
    (w, ids)
}

/// Every scenario's room: a [`DEADLINE`] commit deadline.
fn config() -> RoomConfig {
    RoomConfig {
        commit_deadline: DEADLINE,
        ..RoomConfig::default()
    }
}
