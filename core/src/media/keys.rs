//! [`MediaKeys`]: what a media path may do with a member's keys, and
//! nothing more.

use super::{Codec, ReadyFrame, Unprotected, take_ready};
use crate::error::Error;
use crate::sframe::{HoldStats, KeyRing, Opened};
use crate::time::Instant;

/// A member's SFrame keys as the media path sees them: it can seal and
/// open frames (holding those that outrun their commit) and nothing else:
/// it cannot commit, leave or change the group behind the committer's
/// back. [`Member::media`](crate::committer::Member::media) hands it out.
#[derive(Debug)]
pub struct MediaKeys<'a> {
    ring: &'a mut KeyRing,
}

impl<'a> MediaKeys<'a> {
    /// Media access to `ring`.
    pub fn new(ring: &'a mut KeyRing) -> Self {
        Self { ring }
    }

    /// The epoch frames are sealed in, if any.
    #[must_use]
    pub fn epoch(&self) -> Option<u64> {
        self.ring.current_epoch()
    }

    /// Bytes [`MediaKeys::protect`] may write for a frame of `frame_len`
    /// bytes.
    #[must_use]
    pub fn max_protected_len(&self, codec: Codec, frame_len: usize) -> usize {
        codec.max_protected_len(self.ring, frame_len)
    }

    /// Seals one encoded frame; see [`Codec::protect`].
    ///
    /// # Errors
    /// As [`Codec::protect`].
    pub fn protect(&mut self, codec: Codec, frame: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        codec.protect(self.ring, frame, out)
    }

    /// Opens one protected frame; see [`Codec::unprotect`].
    ///
    /// # Errors
    /// As [`Codec::unprotect`].
    pub fn unprotect(
        &mut self,
        codec: Codec,
        protected: &[u8],
        out: &mut [u8],
    ) -> Result<(Opened, usize), Error> {
        codec.unprotect(self.ring, protected, out)
    }

    /// Opens one protected frame, or holds it for an epoch not reached
    /// yet; see [`Codec::unprotect_or_hold`].
    ///
    /// # Errors
    /// As [`Codec::unprotect_or_hold`].
    pub fn unprotect_or_hold(
        &mut self,
        now: Instant,
        codec: Codec,
        tag: u32,
        protected: &[u8],
        out: &mut [u8],
    ) -> Result<Unprotected, Error> {
        codec.unprotect_or_hold(self.ring, now, tag, protected, out)
    }

    /// The next held frame whose epoch arrived; see [`take_ready`].
    pub fn take_ready(&mut self) -> Option<ReadyFrame> {
        take_ready(self.ring)
    }

    /// What happened to held frames so far.
    #[must_use]
    pub fn hold_stats(&self) -> HoldStats {
        self.ring.hold_stats()
    }
}
