//! One client of the network and the messages to and from it.

use std::collections::{BTreeMap, VecDeque};

use satsuma_core::Instant;
use satsuma_core::committer::{CommitterError, Event, Member, Request};
use satsuma_core::wire::{ConnId, Down};

/// A member's message on its way to the room.
#[derive(Debug, Clone)]
pub(super) struct UpPacket {
    pub(super) at: Instant,
    pub(super) order: u64,
    /// The endpoint's transport connection it was sent on.
    pub(super) link: u32,
    pub(super) request: Request,
}

/// The room's message on its way to a member.
#[derive(Debug, Clone)]
pub(super) struct DownPacket {
    pub(super) at: Instant,
    pub(super) order: u64,
    /// The connection the room sent it to.
    pub(super) conn: ConnId,
    pub(super) message: Down,
}

/// One client: a member (none while crashed, or for a raw client a test
/// speaks for) and its queues.
#[derive(Debug, Clone)]
pub(super) struct Endpoint<G> {
    pub(super) member: Option<Member<G>>,
    /// Its current transport connection, counted up by every join: what
    /// arrives on an earlier one is dropped, what it sent on an earlier one
    /// still reaches the room (a `Leave`, say).
    pub(super) link: u32,
    /// Whether the client reads its current connection.
    pub(super) open: bool,
    /// The room's id for every connection whose `Join` it read.
    pub(super) conns: BTreeMap<u32, ConnId>,
    pub(super) up: VecDeque<UpPacket>,
    pub(super) down: VecDeque<DownPacket>,
    /// When the last message queued each way arrives.
    pub(super) up_last: Instant,
    pub(super) down_last: Instant,
    pub(super) lose_welcome: bool,
    pub(super) events: Vec<Event>,
    pub(super) errors: Vec<CommitterError>,
    pub(super) received: Vec<Down>,
}

impl<G> Endpoint<G> {
    /// An endpoint around `member` with nothing in flight at `now`.
    pub(super) fn new(member: Option<Member<G>>, now: Instant) -> Self {
        Self {
            member,
            link: 0,
            open: false,
            conns: BTreeMap::new(),
            up: VecDeque::new(),
            down: VecDeque::new(),
            up_last: now,
            down_last: now,
            lose_welcome: false,
            events: Vec::new(),
            errors: Vec::new(),
            received: Vec::new(),
        }
    }

    /// The room's id for its current connection, once it read the `Join`.
    pub(super) fn conn(&self) -> Option<ConnId> {
        self.conns.get(&self.link).copied()
    }
}
