//! The member's side of the resume protocol.

use alloc::vec::Vec;

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
    /// The commits in flight: each one's epoch, and how many messages had
    /// been sent on this seat with it (the earliest, if several were sent
    /// for one epoch).
    commits: Vec<(u64, u64)>,
}

/// Commits in flight remembered at most: a member has one at a time, and
/// a few more only when the log refuses them.
const COMMITS: usize = 4;

impl<B: AsRef<[u8]>> Cursor<B> {
    /// No seat yet.
    #[must_use]
    pub fn new(limits: CursorLimits) -> Self {
        Self {
            seat: None,
            received: 0,
            sent: History::default(),
            limits,
            commits: Vec::new(),
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

    /// A commit for `epoch` is sent: kept as [`Cursor::sent`] keeps any
    /// message, and remembered, so that the log showing it lets this
    /// member forget it and everything it sent before
    /// ([`Cursor::commit_logged`]).
    pub fn sent_commit(&mut self, epoch: u64, message: B) {
        self.sent(message);
        if !self.commits.iter().any(|&(e, _)| e == epoch) {
            if self.commits.len() == COMMITS {
                self.commits.remove(0);
            }
            self.commits.push((epoch, self.sent.sent()));
        }
    }

    /// The room's log shows this member's commit for `epoch`. The delivery
    /// service handled it and, taking a seat's messages in order, every
    /// message sent before it: a resume will never ask for them again, so
    /// they are forgotten. Without this, a committer kept every commit and
    /// Welcome it sent until the limits pushed them out (a
    /// microcontroller's RAM held 2 KB for each member it added).
    ///
    /// Where two commits were sent for `epoch` (the first refused), only
    /// the messages up to the first are forgotten: the log may show
    /// either.
    pub fn commit_logged(&mut self, epoch: u64) {
        if let Some(&(_, through)) = self.commits.iter().find(|&&(e, _)| e == epoch) {
            // An error: the limits forgot more already.
            let _ = self.sent.acknowledge(through);
        }
        self.commits.retain(|&(e, _)| e > epoch);
    }

    /// How many of the messages sent are kept for a resume, and their
    /// bytes.
    #[must_use]
    pub fn kept(&self) -> (usize, usize) {
        (self.sent.len(), self.sent.bytes())
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
        self.commits.clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Test code.
mod tests {
    use super::*;

    fn cursor() -> Cursor<Vec<u8>> {
        Cursor::new(CursorLimits::default())
    }

    fn replayed(cursor: &mut Cursor<Vec<u8>>, received: u64) -> Vec<Vec<u8>> {
        cursor.resumed(received).unwrap().cloned().collect()
    }

    #[test]
    fn a_logged_commit_forgets_it_and_what_came_before() {
        let mut c = cursor();
        c.sent(b"key package".to_vec());
        c.sent_commit(5, b"commit".to_vec());
        c.sent(b"after".to_vec());
        c.commit_logged(5);
        assert_eq!(c.kept(), (1, 5));
        // A resume from where the delivery service is still works: it
        // handled the commit, so it has received at least 2.
        assert_eq!(replayed(&mut c, 2), [b"after".to_vec()]);
        assert!(
            c.resumed(1).is_err(),
            "forgotten: no resume from before the commit"
        );
    }

    #[test]
    fn of_two_commits_for_one_epoch_only_what_came_up_to_the_first_is_forgotten() {
        let mut c = cursor();
        c.sent_commit(5, b"first".to_vec());
        c.sent(b"between".to_vec());
        c.sent_commit(5, b"second".to_vec());
        c.commit_logged(5);
        assert_eq!(
            replayed(&mut c, 1),
            [b"between".to_vec(), b"second".to_vec()]
        );
    }

    #[test]
    fn another_epochs_commit_or_a_new_seat_forgets_nothing() {
        let mut c = cursor();
        c.sent_commit(5, b"commit".to_vec());
        c.commit_logged(6);
        c.commit_logged(4);
        assert_eq!(c.kept(), (1, 6), "not this member's commit for 4 or 6");
        c.reset();
        c.sent(b"join".to_vec());
        c.commit_logged(5);
        assert_eq!(c.kept(), (1, 4), "the old seat's commit is not this seat's");
    }
}
