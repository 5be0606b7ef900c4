//! The delivery service's side of the resume protocol.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::time::Duration;

use subtle::ConstantTimeEq;

use super::history::History;
use super::{ResumeError, Token};
use crate::Instant;
use crate::wire::{ConnId, TOKEN_LEN};

/// How much the delivery service keeps for resumes, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatLimits {
    /// How long a seat waits for a resume after its link is lost.
    pub grace: Duration,
    /// The most messages kept per seat.
    pub messages: usize,
    /// The most bytes kept per seat.
    pub bytes: usize,
    /// The most bytes kept over all seats; past it, the seat that grows
    /// gives up its oldest messages.
    pub total_bytes: usize,
}

impl Default for SeatLimits {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(15),
            messages: 512,
            bytes: 1 << 20,
            total_bytes: 16 << 20,
        }
    }
}

/// One connection's seat.
#[derive(Debug)]
struct Seat<B, D> {
    token: Token,
    /// What was sent to the member.
    history: History<B>,
    /// How many control messages the member sent that were handled.
    received: u64,
    /// Since when no link has carried the seat.
    detached_since: Option<Instant>,
    data: D,
}

/// Every seat of a room: for each connection its token, the control
/// messages sent to it (what a resume replays), the count of those it sent
/// (what the member replays), and the grace once its link is lost.
///
/// `B` is one encoded message (the driver's buffer type); `D` is what the
/// driver keeps with a seat (its link, its transport).
#[derive(Debug)]
pub struct Seats<B, D> {
    seats: BTreeMap<ConnId, Seat<B, D>>,
    limits: SeatLimits,
    /// Bytes kept over all seats.
    bytes: usize,
}

/// An accepted resume: what to tell the member and send it again.
#[derive(Debug)]
pub struct Resumed<'a, B> {
    /// How many control messages of the member's were handled: the
    /// member sends the rest again ([`LinkMsg::Resumed`]).
    ///
    /// [`LinkMsg::Resumed`]: crate::wire::LinkMsg::Resumed
    pub received: u64,
    /// The control messages the member missed, oldest first.
    pub missed: Vec<&'a B>,
}

impl<B: AsRef<[u8]>, D> Seats<B, D> {
    /// No seats.
    #[must_use]
    pub fn new(limits: SeatLimits) -> Self {
        Self {
            seats: BTreeMap::new(),
            limits,
            bytes: 0,
        }
    }

    /// The limits.
    #[must_use]
    pub fn limits(&self) -> &SeatLimits {
        &self.limits
    }

    /// A seat for a new connection, attached to its link. A token of all
    /// zeros (the driver had no randomness) is never accepted, so such a
    /// seat cannot be resumed.
    pub fn open(&mut self, conn: ConnId, token: Token, data: D) {
        self.close(conn);
        self.seats.insert(
            conn,
            Seat {
                token,
                history: History::default(),
                received: 0,
                detached_since: None,
                data,
            },
        );
    }

    /// Removes the seat; its data, if there was one.
    pub fn close(&mut self, conn: ConnId) -> Option<D> {
        let seat = self.seats.remove(&conn)?;
        self.bytes -= seat.history.bytes();
        Some(seat.data)
    }

    /// Whether there are no seats.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.seats.is_empty()
    }

    /// The number of seats.
    #[must_use]
    pub fn len(&self) -> usize {
        self.seats.len()
    }

    /// The bytes kept for resumes over all seats.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The driver's data of a seat.
    #[must_use]
    pub fn get(&self, conn: ConnId) -> Option<&D> {
        self.seats.get(&conn).map(|s| &s.data)
    }

    /// The driver's data of a seat, to change.
    pub fn get_mut(&mut self, conn: ConnId) -> Option<&mut D> {
        self.seats.get_mut(&conn).map(|s| &mut s.data)
    }

    /// Every seat's data, by connection.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &D)> {
        self.seats.iter().map(|(c, s)| (*c, &s.data))
    }

    /// A control message sent to `conn` (or, if its link is lost, meant
    /// for it): kept for a resume.
    pub fn sent(&mut self, conn: ConnId, message: B) {
        let Some(seat) = self.seats.get_mut(&conn) else {
            return;
        };
        self.bytes += message.as_ref().len();
        seat.history.push(message);
        let limits = &self.limits;
        while (seat.history.len() > limits.messages
            || seat.history.bytes() > limits.bytes
            || self.bytes > limits.total_bytes)
            && let Some(len) = seat.history.pop_oldest()
        {
            self.bytes -= len;
        }
    }

    /// Gives up the oldest messages, from the seat that keeps the most
    /// bytes first, until at most `bytes` are kept over all seats: for a
    /// bound shared with other rooms. Returns the bytes freed. A seat that
    /// gave up a message a member had not seen cannot be resumed from
    /// before it ([`ResumeError::Position`](super::ResumeError::Position)); the member
    /// joins afresh.
    pub fn trim(&mut self, bytes: usize) -> usize {
        let before = self.bytes;
        while self.bytes > bytes {
            let Some(seat) = self.seats.values_mut().max_by_key(|s| s.history.bytes()) else {
                break;
            };
            let Some(len) = seat.history.pop_oldest() else {
                break;
            };
            self.bytes -= len;
        }
        before - self.bytes
    }

    /// A control message from `conn` was handled: counted, so that a
    /// resume tells the member where to replay from.
    pub fn received(&mut self, conn: ConnId) {
        if let Some(seat) = self.seats.get_mut(&conn) {
            seat.received += 1;
        }
    }

    /// The link carrying `conn` is gone: the grace starts.
    pub fn detach(&mut self, now: Instant, conn: ConnId) {
        if let Some(seat) = self.seats.get_mut(&conn) {
            seat.detached_since.get_or_insert(now);
        }
    }

    /// Whether `conn`'s seat is carried by a link.
    #[must_use]
    pub fn is_attached(&self, conn: ConnId) -> bool {
        self.seats
            .get(&conn)
            .is_some_and(|s| s.detached_since.is_none())
    }

    /// A new link takes `conn`'s seat over, from a member that received
    /// `received` control messages on it. The token is compared in
    /// constant time. On success the seat is attached again and the
    /// messages the member has were forgotten; on failure nothing changed.
    ///
    /// # Errors
    /// [`ResumeError`]: no seat, a wrong token, or a position this seat
    /// cannot replay from.
    pub fn resume(
        &mut self,
        conn: ConnId,
        token: &Token,
        received: u64,
    ) -> Result<Resumed<'_, B>, ResumeError> {
        let seat = self.seats.get_mut(&conn).ok_or(ResumeError::UnknownSeat)?;
        let zero = [0; TOKEN_LEN];
        let matches = bool::from(token.ct_eq(&seat.token)) && !bool::from(token.ct_eq(&zero));
        if !matches {
            return Err(ResumeError::BadToken);
        }
        let before = seat.history.bytes();
        seat.history.acknowledge(received)?;
        self.bytes -= before - seat.history.bytes();
        seat.detached_since = None;
        Ok(Resumed {
            received: seat.received,
            missed: seat.history.iter().collect(),
        })
    }

    /// When the next grace runs out.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.seats
            .values()
            .filter_map(|s| s.detached_since)
            .min()
            .map(|t| t.saturating_add(self.limits.grace))
    }

    /// Closes every seat whose grace ran out; their connections (for the
    /// log's `handle_disconnect`) with the driver's data.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(ConnId, D)> {
        let grace = self.limits.grace;
        let expired: Vec<ConnId> = self
            .seats
            .iter()
            .filter(|(_, s)| {
                s.detached_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= grace)
            })
            .map(|(c, _)| *c)
            .collect();
        expired
            .into_iter()
            .filter_map(|c| self.close(c).map(|d| (c, d)))
            .collect()
    }
}
