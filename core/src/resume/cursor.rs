//! The member's side of the resume protocol.

use super::history::History;
use super::{ResumeError, Token};
use crate::wire::{ConnId, Open, RoomName};

/// How much a member keeps of what it sent, for a resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorLimits {
    /// The most messages kept.
    pub messages: usize,
    /// The most bytes kept.
    pub bytes: usize,
}

impl Default for CursorLimits {
    fn default() -> Self {
        Self {
            messages: 64,
            bytes: 1 << 20,
        }
    }
}

/// A member's place on its seat: the seat and its token, how many control
/// messages it has received on it, and the control messages it sent that
/// the delivery service may not have handled yet.
///
/// `B` is one encoded message (the driver's buffer type).
#[derive(Debug, Clone)]
pub struct Cursor<B> {
    seat: Option<(ConnId, Token)>,
    received: u64,
    sent: History<B>,
    limits: CursorLimits,
}

impl<B: AsRef<[u8]>> Cursor<B> {
    /// No seat yet.
    #[must_use]
    pub fn new(limits: CursorLimits) -> Self {
        Self {
            seat: None,
            received: 0,
            sent: History::default(),
            limits,
        }
    }

    /// The seat `conn` can be resumed with `token`
    /// ([`LinkMsg::Resumable`](crate::wire::LinkMsg::Resumable)).
    pub fn resumable(&mut self, conn: ConnId, token: Token) {
        self.seat = Some((conn, token));
    }

    /// The seat, once it is resumable.
    #[must_use]
    pub fn seat(&self) -> Option<ConnId> {
        self.seat.map(|(conn, _)| conn)
    }

    /// A [`ToClient::Control`](crate::wire::ToClient::Control) message
    /// arrived.
    pub fn received(&mut self) {
        self.received += 1;
    }

    /// How many control messages arrived on this seat.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.received
    }

    /// A [`ToServer::Control`](crate::wire::ToServer::Control) message is
    /// sent: kept until a resume shows it arrived. Past the limits the
    /// oldest is forgotten; a resume that would need it then fails, and
    /// the member joins afresh.
    pub fn sent(&mut self, message: B) {
        self.sent.push(message);
        while self.sent.len() > self.limits.messages || self.sent.bytes() > self.limits.bytes {
            self.sent.pop_oldest();
        }
    }

    /// The message that takes the seat over on a new link, if there is a
    /// seat to take.
    #[must_use]
    pub fn resume(&self, room: RoomName) -> Option<Open> {
        let (conn, token) = self.seat?;
        Some(Open::Resume {
            room,
            conn,
            token,
            received: self.received,
        })
    }

    /// The delivery service accepted the resume and has handled `received`
    /// of this member's control messages: the ones to send again, oldest
    /// first. On an error nothing changed; join afresh.
    ///
    /// # Errors
    /// [`ResumeError::Position`] if the delivery service claims more than
    /// was sent, or needs one no longer kept.
    pub fn resumed(
        &mut self,
        received: u64,
    ) -> Result<impl ExactSizeIterator<Item = &B>, ResumeError> {
        self.sent.acknowledge(received)?;
        Ok(self.sent.iter())
    }

    /// A fresh join: no seat, and counts from zero.
    pub fn reset(&mut self) {
        self.seat = None;
        self.received = 0;
        self.sent.clear();
    }
}
