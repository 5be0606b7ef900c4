//! What the door's speaker plays: every member's decoded audio, mixed into
//! 20 ms slots at 8 kHz, with a jitter buffer of [`SLOTS`] slots in fixed
//! memory.
//!
//! Each member has a place in the ring, the slot its next frame goes to.
//! A member heard for the first time, or again after a gap, starts
//! [`LEAD`] slot ahead of what plays next; a frame that would land past
//! the ring (the member sends faster than the speaker plays, or a burst
//! came after a stall) is dropped, so that the delay never grows. G.722's
//! 16 kHz is halved to the speaker's 8 kHz (pairs averaged, a first
//! low-pass); members are summed, saturating.

use crate::audio::{FRAME, RATE};

/// Slots in the ring: 60 ms, one playing, up to two waiting.
pub const SLOTS: usize = 3;
/// How many slots ahead of the one playing next a member (re)starts.
const LEAD: u32 = 1;

/// Where one member's next frame goes (kept by the caller, per member).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place(Option<u32>);

/// What became of a frame given to [`Speaker::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mixed {
    /// Mixed into a slot to play.
    Queued,
    /// Dropped: it came too early for the ring.
    Overflow,
}

/// The speaker's ring; see the [module](self).
#[derive(Debug)]
pub struct Speaker {
    slots: [[i16; FRAME]; SLOTS],
    /// The number of the slot [`Speaker::pop`] plays next (counting from
    /// the first, wrapping).
    next: u32,
}

impl Default for Speaker {
    fn default() -> Self {
        Self::new()
    }
}

impl Speaker {
    /// An empty ring: silence until something is added.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            slots: [[0; FRAME]; SLOTS],
            next: 0,
        }
    }

    /// Mixes one member's 20 ms frame (`pcm`, at `rate`: 8 or 16 kHz)
    /// into the slot at its `place`, and moves the place on.
    pub fn add(&mut self, place: &mut Place, pcm: &[i16], rate: u32) -> Mixed {
        let ahead = place.0.map(|at| at.wrapping_sub(self.next));
        let at = match ahead {
            Some(a) if (a as usize) < SLOTS => self.next.wrapping_add(a),
            // Behind what plays (a wrapped difference is huge): a gap, or
            // a member whose clock runs slow. It starts again.
            Some(a) if a > u32::MAX / 2 => self.next.wrapping_add(LEAD),
            Some(_) => return Mixed::Overflow,
            None => self.next.wrapping_add(LEAD),
        };
        let slot = &mut self.slots[at as usize % SLOTS];
        let step = if rate == 2 * RATE { 2 } else { 1 };
        for (out, chunk) in slot.iter_mut().zip(pcm.chunks_exact(step)) {
            let sample = if step == 2 {
                let pair = i32::from(chunk[0]) + i32::from(chunk[1]);
                i16::try_from(pair / 2).unwrap_or_default()
            } else {
                chunk[0]
            };
            *out = out.saturating_add(sample);
        }
        place.0 = Some(at.wrapping_add(1));
        Mixed::Queued
    }

    /// The next 20 ms to play (silence where nobody was mixed in); its
    /// slot is cleared for what comes after.
    pub fn pop(&mut self, out: &mut [i16; FRAME]) {
        let slot = &mut self.slots[self.next as usize % SLOTS];
        *out = *slot;
        *slot = [0; FRAME];
        self.next = self.next.wrapping_add(1);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Test code.
mod tests {
    use super::*;

    fn frame(value: i16) -> [i16; FRAME] {
        [value; FRAME]
    }

    fn play(speaker: &mut Speaker) -> i16 {
        let mut out = [0; FRAME];
        speaker.pop(&mut out);
        assert!(out.iter().all(|&s| s == out[0]), "one value per slot here");
        out[0]
    }

    #[test]
    fn a_member_plays_in_order_one_slot_behind_what_came() {
        let mut speaker = Speaker::new();
        let mut place = Place::default();
        assert_eq!(speaker.add(&mut place, &frame(1), RATE), Mixed::Queued);
        assert_eq!(speaker.add(&mut place, &frame(2), RATE), Mixed::Queued);
        // The lead: silence first, then the frames as they came.
        assert_eq!(play(&mut speaker), 0);
        assert_eq!(play(&mut speaker), 1);
        assert_eq!(speaker.add(&mut place, &frame(3), RATE), Mixed::Queued);
        assert_eq!(play(&mut speaker), 2);
        assert_eq!(play(&mut speaker), 3);
        assert_eq!(play(&mut speaker), 0, "nothing more: silence");
    }

    #[test]
    fn members_are_mixed_and_a_burst_past_the_ring_is_dropped() {
        let mut speaker = Speaker::new();
        let (mut a, mut b) = (Place::default(), Place::default());
        for v in [10, 20] {
            assert_eq!(speaker.add(&mut a, &frame(v), RATE), Mixed::Queued);
        }
        // Past the two slots waiting: dropped, not delayed.
        assert_eq!(speaker.add(&mut a, &frame(30), RATE), Mixed::Overflow);
        assert_eq!(speaker.add(&mut b, &frame(i16::MAX), RATE), Mixed::Queued);
        assert_eq!(play(&mut speaker), 0);
        assert_eq!(play(&mut speaker), i16::MAX, "10 + MAX saturates");
        assert_eq!(play(&mut speaker), 20);
    }

    #[test]
    fn a_member_back_after_a_gap_starts_again_ahead_of_what_plays() {
        let mut speaker = Speaker::new();
        let mut place = Place::default();
        speaker.add(&mut place, &frame(1), RATE);
        for _ in 0..5 {
            play(&mut speaker);
        }
        assert_eq!(speaker.add(&mut place, &frame(7), RATE), Mixed::Queued);
        assert_eq!(play(&mut speaker), 0);
        assert_eq!(play(&mut speaker), 7);
    }

    #[test]
    fn wideband_is_halved_to_the_speakers_rate() {
        let mut speaker = Speaker::new();
        let mut place = Place::default();
        let wide: [i16; 2 * FRAME] = core::array::from_fn(|i| if i % 2 == 0 { 100 } else { 300 });
        speaker.add(&mut place, &wide, 2 * RATE);
        play(&mut speaker);
        assert_eq!(play(&mut speaker), 200);
    }
}
