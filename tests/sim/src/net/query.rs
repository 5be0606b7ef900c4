//! What a harness may ask a [`Net`] without changing it.

use satsuma_core::Instant;
use satsuma_core::committer::{
    CommitterError, DsError, Event, Group, Member, Request, Room, Status,
};
use satsuma_core::wire::{ConnId, Down, Entry};

use super::{Net, NetStats, Watch};
use crate::Rng;

impl<G: Group, W: Watch<G>> Net<G, W> {
    /// The virtual time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The delivery service.
    #[must_use]
    pub fn room(&self) -> &Room {
        &self.room
    }

    /// How many endpoints there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether there is no endpoint.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Endpoint `i`'s member, unless it crashed or is a raw client.
    #[must_use]
    pub fn member(&self, i: usize) -> Option<&Member<G>> {
        self.endpoints[i].member.as_ref()
    }

    /// Endpoint `i`'s member, to make it misbehave; [`Net::pump`] then
    /// queues what it sent.
    pub fn member_mut(&mut self, i: usize) -> Option<&mut Member<G>> {
        self.endpoints[i].member.as_mut()
    }

    /// Every running member, by endpoint.
    pub fn members(&self) -> impl Iterator<Item = (usize, &Member<G>)> + '_ {
        self.endpoints
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i, e.member.as_ref()?)))
    }

    /// The room's id for endpoint `i`'s current connection, once the room
    /// read its `Join`.
    #[must_use]
    pub fn conn(&self, i: usize) -> Option<ConnId> {
        self.endpoints[i].conn()
    }

    /// The endpoint that opened connection `conn`.
    #[must_use]
    pub fn owner(&self, conn: ConnId) -> Option<usize> {
        self.owners.get(&conn).copied()
    }

    /// Endpoint `i`'s current connection, counted up by every join.
    #[must_use]
    pub fn link(&self, i: usize) -> u32 {
        self.endpoints[i].link
    }

    /// The room's id for endpoint `i`'s connection `link`.
    #[must_use]
    pub fn conn_of_link(&self, i: usize, link: u32) -> Option<ConnId> {
        self.endpoints[i].conns.get(&link).copied()
    }

    /// Whether endpoint `i` reads its current connection.
    #[must_use]
    pub fn is_open(&self, i: usize) -> bool {
        self.endpoints[i].open
    }

    /// What endpoint `i`'s member told the application so far.
    #[must_use]
    pub fn events(&self, i: usize) -> &[Event] {
        &self.endpoints[i].events
    }

    /// Takes what endpoint `i`'s member told the application so far.
    pub fn take_events(&mut self, i: usize) -> Vec<Event> {
        std::mem::take(&mut self.endpoints[i].events)
    }

    /// Takes the messages endpoint `i`'s member refused so far.
    pub fn take_errors(&mut self, i: usize) -> Vec<CommitterError> {
        std::mem::take(&mut self.endpoints[i].errors)
    }

    /// What endpoint `i` received on its current connections, with
    /// [`Net::record`].
    #[must_use]
    pub fn received(&self, i: usize) -> &[Down] {
        &self.endpoints[i].received
    }

    /// Every entry the room logged, in order.
    #[must_use]
    pub fn log(&self) -> &[Entry] {
        &self.log
    }

    /// Every Welcome the room sent, and to whom.
    #[must_use]
    pub fn welcomes(&self) -> &[(ConnId, Vec<u8>)] {
        &self.welcomes
    }

    /// Every input the room refused, and which endpoint sent it.
    #[must_use]
    pub fn ds_errors(&self) -> &[(usize, DsError)] {
        &self.ds_errors
    }

    /// What the network did.
    #[must_use]
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// The watcher.
    #[must_use]
    pub fn watch(&self) -> &W {
        &self.watch
    }

    /// The generator the network draws from, for a harness that wants its
    /// random choices in the same replayable sequence.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// The members that are in the call: running, connected, not left, on
    /// a connection the room still has.
    pub fn live(&self) -> impl Iterator<Item = &Member<G>> + '_ {
        self.endpoints
            .iter()
            .filter_map(|e| e.member.as_ref())
            .filter(|m| !matches!(m.status(), Status::Idle | Status::Left))
            .filter(|m| {
                m.conn()
                    .is_some_and(|c| self.room.connections().any(|d| d == c))
            })
    }

    /// Messages in flight to the room, oldest first: who sent each.
    #[must_use]
    pub fn in_flight_up(&self) -> Vec<(usize, &Request)> {
        let mut all: Vec<_> = self
            .endpoints
            .iter()
            .enumerate()
            .flat_map(|(i, e)| e.up.iter().map(move |p| ((p.at, p.order), i, &p.request)))
            .collect();
        all.sort_by_key(|(key, ..)| *key);
        all.into_iter().map(|(_, i, r)| (i, r)).collect()
    }

    /// Messages in flight from the room, oldest first: the connection each
    /// is for.
    #[must_use]
    pub fn in_flight_down(&self) -> Vec<(ConnId, &Down)> {
        let mut all: Vec<_> = self
            .endpoints
            .iter()
            .flat_map(|e| e.down.iter().map(|p| ((p.at, p.order), p.conn, &p.message)))
            .collect();
        all.sort_by_key(|(key, ..)| *key);
        all.into_iter().map(|(_, c, m)| (c, m)).collect()
    }

    /// What endpoint `i` sent that the room has not read yet, oldest
    /// first.
    pub fn queued_up(&self, i: usize) -> impl Iterator<Item = &Request> + '_ {
        self.endpoints[i].up.iter().map(|p| &p.request)
    }

    /// What the room sent endpoint `i` that it has not read yet, oldest
    /// first, with the connection each was sent to.
    pub fn queued_down(&self, i: usize) -> impl Iterator<Item = (ConnId, &Down)> + '_ {
        self.endpoints[i].down.iter().map(|p| (p.conn, &p.message))
    }

    /// Every connection endpoint `i` opened that the room read.
    pub fn conns(&self, i: usize) -> impl Iterator<Item = ConnId> + '_ {
        self.endpoints[i].conns.values().copied()
    }

    /// Whether nothing is in flight.
    #[must_use]
    pub fn is_quiet(&self) -> bool {
        self.endpoints
            .iter()
            .all(|e| e.up.is_empty() && e.down.is_empty())
    }

    /// When the next message arrives.
    #[must_use]
    pub fn next_arrival(&self) -> Option<Instant> {
        self.oldest_up()
            .into_iter()
            .chain(self.oldest_down())
            .map(|(key, _)| key.0)
            .min()
    }

    /// When the last message endpoint `i` sent so far reaches the room.
    #[must_use]
    pub fn up_drained_at(&self, i: usize) -> Instant {
        self.endpoints[i].up_last
    }
}
