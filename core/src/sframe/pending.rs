//! Frames that arrived ahead of their epoch, held until the key arrives.
//!
//! A member that commits seals its next frame in the new epoch at once; a
//! receiver may see that frame before the delivery service's commit
//! reaches it (media and control travel different paths). Refusing it
//! would cut a hole in the audio at every key change, so the [`KeyRing`]
//! holds such frames, bounded in count, bytes and time, and hands them back
//! once their epoch is installed.
//!
//! [`KeyRing`]: super::KeyRing

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use crate::time::Instant;

/// How many epochs ahead of the current one a frame may be held for. A
/// member is at most one commit behind the sender in an ordered log; the
/// second covers a commit that follows the first before this member has
/// applied either.
pub const FUTURE_EPOCHS: u64 = 2;

/// Bounds on the frames a [`KeyRing`](super::KeyRing) holds for epochs it
/// has not reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HoldLimits {
    /// Frames held at most; the oldest goes first. 0 holds nothing.
    pub frames: usize,
    /// Bytes held at most, counted as the frames' lengths.
    pub bytes: usize,
    /// How long a frame is held before it is dropped: a commit that takes
    /// longer than this leaves a gap anyway.
    pub duration: Duration,
}

impl Default for HoldLimits {
    /// 64 frames (a second of 20 ms audio from three senders), 64 KiB, two
    /// seconds.
    fn default() -> Self {
        Self {
            frames: 64,
            bytes: 64 * 1024,
            duration: Duration::from_secs(2),
        }
    }
}

/// What happened to held frames so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HoldStats {
    /// Frames held now.
    pub held: usize,
    /// Frames handed back once their epoch arrived.
    pub released: u64,
    /// Frames dropped to stay within the limits.
    pub evicted: u64,
    /// Frames dropped because their epoch did not arrive in time.
    pub expired: u64,
}

/// A frame handed back: its caller tag (the media layer stores the codec)
/// and its bytes, exactly as they were held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldFrame {
    /// The tag given to [`KeyRing::hold`](super::KeyRing::hold).
    pub tag: u64,
    /// The frame.
    pub frame: Vec<u8>,
}

#[derive(Debug)]
struct Entry {
    /// The KID's low epoch bits.
    epoch_low: u64,
    until: Instant,
    held: HeldFrame,
}

#[derive(Debug, Default)]
pub(super) struct Pending {
    frames: VecDeque<Entry>,
    bytes: usize,
    stats: HoldStats,
}

impl Pending {
    /// Holds `frame`, dropping the oldest frames to stay within `limits`.
    pub(super) fn push(
        &mut self,
        limits: &HoldLimits,
        now: Instant,
        epoch_low: u64,
        tag: u64,
        frame: &[u8],
    ) {
        if limits.frames == 0 || frame.len() > limits.bytes {
            self.stats.evicted += 1;
            return;
        }
        while self.frames.len() >= limits.frames || self.bytes + frame.len() > limits.bytes {
            if self.pop_front().is_none() {
                break;
            }
            self.stats.evicted += 1;
        }
        self.bytes += frame.len();
        self.frames.push_back(Entry {
            epoch_low,
            until: now.saturating_add(limits.duration),
            held: HeldFrame {
                tag,
                frame: frame.to_vec(),
            },
        });
        self.stats.held = self.frames.len();
    }

    /// The oldest held frame whose epoch `is_held` now says is installed.
    pub(super) fn take_ready(&mut self, is_held: impl Fn(u64) -> bool) -> Option<HeldFrame> {
        let at = self.frames.iter().position(|e| is_held(e.epoch_low))?;
        let entry = self.frames.remove(at)?;
        self.bytes -= entry.held.frame.len();
        self.stats.released += 1;
        self.stats.held = self.frames.len();
        Some(entry.held)
    }

    /// Drops the frames held past their time.
    pub(super) fn expire(&mut self, now: Instant) {
        while self.frames.front().is_some_and(|e| e.until <= now) {
            self.pop_front();
            self.stats.expired += 1;
        }
    }

    /// When the oldest held frame expires.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.frames.front().map(|e| e.until)
    }

    pub(super) fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
        self.stats.held = 0;
    }

    pub(super) fn stats(&self) -> HoldStats {
        self.stats
    }

    fn pop_front(&mut self) -> Option<Entry> {
        let entry = self.frames.pop_front()?;
        self.bytes -= entry.held.frame.len();
        self.stats.held = self.frames.len();
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(frames: usize, bytes: usize) -> HoldLimits {
        HoldLimits {
            frames,
            bytes,
            duration: Duration::from_millis(100),
        }
    }

    #[test]
    fn the_oldest_frame_goes_first_when_a_bound_is_reached() {
        let mut p = Pending::default();
        let l = limits(2, 1000);
        for tag in 0..3u8 {
            p.push(&l, Instant::ZERO, 1, u64::from(tag), &[tag; 10]);
        }
        assert_eq!(p.stats().held, 2);
        assert_eq!(p.stats().evicted, 1);
        assert_eq!(p.take_ready(|_| true).map(|h| h.tag), Some(1));

        let mut p = Pending::default();
        let l = limits(10, 25);
        for tag in 0..3u8 {
            p.push(&l, Instant::ZERO, 1, u64::from(tag), &[tag; 10]);
        }
        assert_eq!(p.stats().held, 2);
        assert_eq!(p.take_ready(|_| true).map(|h| h.tag), Some(1));
        // A frame larger than every bound is never held.
        p.push(&l, Instant::ZERO, 1, 9, &[0; 26]);
        assert_eq!(p.stats().evicted, 2);
    }

    #[test]
    fn only_frames_of_an_installed_epoch_come_back_in_arrival_order() {
        let mut p = Pending::default();
        let l = limits(10, 1000);
        p.push(&l, Instant::ZERO, 2, 0, b"two-a");
        p.push(&l, Instant::ZERO, 3, 1, b"three");
        p.push(&l, Instant::ZERO, 2, 2, b"two-b");
        let ready = |low| low == 2;
        assert_eq!(
            p.take_ready(ready).map(|h| h.frame),
            Some(b"two-a".to_vec())
        );
        assert_eq!(
            p.take_ready(ready).map(|h| h.frame),
            Some(b"two-b".to_vec())
        );
        assert_eq!(p.take_ready(ready), None);
        assert_eq!(p.stats().held, 1);
        assert_eq!(p.stats().released, 2);
    }

    #[test]
    fn frames_expire_after_the_hold_duration() {
        let mut p = Pending::default();
        let l = limits(10, 1000);
        p.push(&l, Instant::ZERO, 2, 0, b"a");
        p.push(&l, Instant::from_micros(50_000), 2, 0, b"b");
        assert_eq!(p.next_expiry(), Some(Instant::from_micros(100_000)));
        p.expire(Instant::from_micros(100_000));
        assert_eq!(p.stats().expired, 1);
        assert_eq!(p.stats().held, 1);
        p.expire(Instant::from_micros(150_000));
        assert_eq!(p.stats().held, 0);
        assert_eq!(p.next_expiry(), None);
    }
}
