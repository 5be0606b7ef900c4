//! What the committer needs from an MLS member: the real [`Session`], or,
//! in the model checker, a model of MLS small enough to explore every
//! interleaving with.

use alloc::vec::Vec;

use crate::mls::{Commit, Event, Introduction, Session, SessionError};
use crate::sframe::KeyRing;
use crate::{Error, Instant, UnixTime};

/// The MLS operations the committer drives. [`Session`] is the
/// implementation every client uses; the names and contracts are its own.
pub trait Group {
    /// A fresh key package to publish.
    ///
    /// # Errors
    /// As [`Session::key_package`].
    fn key_package(&mut self) -> Result<Vec<u8>, SessionError>;
    /// A fresh group id for a group this member is about to create.
    fn new_group_id(&mut self) -> Vec<u8>;
    /// Creates the group, alone in it, at epoch 0.
    ///
    /// # Errors
    /// As [`Session::create_group`].
    fn create_group(&mut self, now: Instant, group_id: &[u8]) -> Result<(), SessionError>;
    /// Joins through a Welcome.
    ///
    /// # Errors
    /// As [`Session::join`].
    fn join(&mut self, now: Instant, welcome: &[u8]) -> Result<(), SessionError>;
    /// Builds a commit that adds and removes, left pending.
    ///
    /// # Errors
    /// As [`Session::commit`].
    fn commit(&mut self, adds: &[&[u8]], removes: &[u32]) -> Result<Commit, SessionError>;
    /// Applies the pending commit the delivery service accepted.
    ///
    /// # Errors
    /// As [`Session::apply_pending_commit`].
    fn apply_pending_commit(&mut self, now: Instant) -> Result<u64, SessionError>;
    /// Drops the pending commit the delivery service refused.
    ///
    /// # Errors
    /// As [`Session::discard_pending_commit`].
    fn discard_pending_commit(&mut self) -> Result<(), SessionError>;
    /// A proposal to refresh this member's own leaf.
    ///
    /// # Errors
    /// As [`Session::propose_update`].
    fn propose_update(&mut self) -> Result<Vec<u8>, SessionError>;
    /// Processes another member's commit or proposal.
    ///
    /// # Errors
    /// As [`Session::process`].
    fn process(&mut self, now: Instant, message: &[u8]) -> Result<Event, SessionError>;
    /// Forgets the group.
    ///
    /// # Errors
    /// As [`Session::leave`].
    fn leave(&mut self) -> Result<(), SessionError>;
    /// The current epoch, if in a group.
    fn epoch(&self) -> Option<u64>;
    /// This member's leaf, if in a group.
    fn own_index(&self) -> Option<u32>;
    /// The group id, if in a group.
    fn group_id(&self) -> Option<&[u8]>;
    /// Every member's leaf index, ascending.
    fn leaves(&self) -> Vec<u32>;
    /// Whether this member's own leaf keys are due for a refresh.
    fn self_update_due(&self, now: Instant) -> bool;
    /// When [`Group::handle_timeout`] next has work.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Time passes.
    fn handle_timeout(&mut self, now: Instant);
    /// When the keys alone next need [`Group::handle_timeout`] (an earlier
    /// epoch's grace period ends), leaving self-updates out.
    fn keys_timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }
    /// Forgets every cached proposal.
    fn clear_proposals(&mut self) {}
    /// The wall-clock time, for key-package lifetimes.
    fn set_time(&mut self, _time: UnixTime) {}
    /// The next member seen added, with what this member knew of it.
    fn poll_introduction(&mut self) -> Option<Introduction> {
        None
    }
    /// An empty SFrame key ring configured like this member's, for a
    /// media path that keeps its keys apart from the MLS work (see
    /// [`Group::hand_over_keys`]); `None` for a group without SFrame keys.
    fn media_ring(&self) -> Option<KeyRing> {
        None
    }
    /// Moves the SFrame keys installed since the last call into `to`, the
    /// media path's ring, and erases them here; see [`KeyRing::hand_over`].
    ///
    /// # Errors
    /// As [`KeyRing::hand_over`].
    fn hand_over_keys(&mut self, _now: Instant, _to: &mut KeyRing) -> Result<(), Error> {
        Ok(())
    }
}

impl Group for Session {
    fn key_package(&mut self) -> Result<Vec<u8>, SessionError> {
        Session::key_package(self)
    }
    fn new_group_id(&mut self) -> Vec<u8> {
        Session::new_group_id(self).to_vec()
    }
    fn create_group(&mut self, now: Instant, group_id: &[u8]) -> Result<(), SessionError> {
        Session::create_group(self, now, group_id)
    }
    fn join(&mut self, now: Instant, welcome: &[u8]) -> Result<(), SessionError> {
        Session::join(self, now, welcome)
    }
    fn commit(&mut self, adds: &[&[u8]], removes: &[u32]) -> Result<Commit, SessionError> {
        Session::commit(self, adds, removes)
    }
    fn apply_pending_commit(&mut self, now: Instant) -> Result<u64, SessionError> {
        Session::apply_pending_commit(self, now)
    }
    fn discard_pending_commit(&mut self) -> Result<(), SessionError> {
        Session::discard_pending_commit(self)
    }
    fn propose_update(&mut self) -> Result<Vec<u8>, SessionError> {
        Session::propose_update(self)
    }
    fn process(&mut self, now: Instant, message: &[u8]) -> Result<Event, SessionError> {
        Session::process(self, now, message)
    }
    fn leave(&mut self) -> Result<(), SessionError> {
        Session::leave(self)
    }
    fn epoch(&self) -> Option<u64> {
        Session::epoch(self)
    }
    fn own_index(&self) -> Option<u32> {
        Session::own_index(self)
    }
    fn group_id(&self) -> Option<&[u8]> {
        Session::group_id(self)
    }
    fn leaves(&self) -> Vec<u32> {
        Session::leaves(self)
    }
    fn self_update_due(&self, now: Instant) -> bool {
        Session::self_update_due(self, now)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Session::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Session::handle_timeout(self, now);
    }
    fn media_ring(&self) -> Option<KeyRing> {
        self.keyring().empty_like().ok()
    }
    fn hand_over_keys(&mut self, now: Instant, to: &mut KeyRing) -> Result<(), Error> {
        self.keyring_mut().hand_over(now, to)
    }
    fn keys_timeout(&self) -> Option<Instant> {
        self.keyring().poll_timeout()
    }
    fn clear_proposals(&mut self) {
        Session::clear_proposals(self);
    }
    fn set_time(&mut self, time: UnixTime) {
        Session::set_time(self, time);
    }
    fn poll_introduction(&mut self) -> Option<Introduction> {
        Session::poll_introduction(self)
    }
}
