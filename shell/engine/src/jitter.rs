//! The audio playout buffer of one remote member: frames come in by RTP
//! timestamp, in whatever order and rhythm the network gives them; one
//! comes out every 20 ms, or a request to conceal the one that is missing.
//!
//! It holds [`JitterBuffer::target`] frames before it starts to play (60 ms
//! by default: loopback and LAN jitter), drops frames that arrive after
//! their turn, starts over when the sender's timestamps jump (a new
//! stream after a reconnection), and follows a sender that skips slots
//! ahead (one that stalled) rather than conceal the gap. It also measures
//! what a listener would notice: every stretch of 20 ms slots that had no
//! real frame to play, from the first frame played.

/// What to play in this 20 ms slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// The frame whose turn it is.
    Frame(Vec<u8>),
    /// Its frame is missing: conceal it (decoder loss concealment).
    Conceal,
    /// Nothing has been heard from this member yet, or not for a while.
    Idle,
}

/// What the buffer did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct JitterStats {
    /// Frames played.
    pub played: u64,
    /// Slots concealed while the stream ran.
    pub concealed: u64,
    /// Frames that arrived after their slot had passed, or twice.
    pub late: u64,
    /// Frames dropped because the buffer was full.
    pub overflow: u64,
    /// Times the stream started over (first frame, a timestamp jump, or
    /// after a silence longer than the buffer).
    pub restarts: u64,
    /// The longest run of slots with no real frame between two played
    /// frames, in slots of 20 ms.
    pub longest_gap: u64,
}

/// One member's playout buffer.
#[derive(Debug)]
pub struct JitterBuffer {
    ticks: u32,
    target: usize,
    capacity: usize,
    frames: Vec<(u32, Vec<u8>)>,
    /// The timestamp of the next slot, once playing.
    next: Option<u32>,
    /// Slots since the last real frame was played (for gaps).
    since_played: Option<u64>,
    stats: JitterStats,
}

/// Slots of concealment after which a silent stream stops: 200 ms.
const GIVE_UP: u64 = 10;

impl JitterBuffer {
    /// A buffer for a stream whose frames are `ticks_per_frame` RTP ticks
    /// apart, playing after `target` frames and holding at most `capacity`.
    #[must_use]
    pub fn new(ticks_per_frame: u32, target: usize, capacity: usize) -> Self {
        let target = target.max(1);
        Self {
            ticks: ticks_per_frame.max(1),
            target,
            capacity: capacity.max(target + 1),
            frames: Vec::new(),
            next: None,
            since_played: None,
            stats: JitterStats::default(),
        }
    }

    /// The frames it waits for before playing.
    #[must_use]
    pub fn target(&self) -> usize {
        self.target
    }

    /// What it did so far.
    #[must_use]
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Frames waiting.
    #[must_use]
    pub fn depth(&self) -> usize {
        self.frames.len()
    }

    /// Takes one frame with its RTP timestamp.
    pub fn push(&mut self, timestamp: u32, frame: Vec<u8>) {
        if let Some(next) = self.next {
            let ahead = timestamp.wrapping_sub(next);
            let slots = ahead / self.ticks;
            if ahead > u32::MAX / 2 {
                self.stats.late += 1;
                return;
            }
            if slots as usize >= self.capacity * 2 {
                // A jump far ahead: the sender started a new stream.
                self.restart();
            }
        }
        if self.frames.iter().any(|(ts, _)| *ts == timestamp) {
            self.stats.late += 1;
            return;
        }
        if self.frames.len() >= self.capacity {
            self.stats.overflow += 1;
            // Keep the newest: drop the oldest waiting frame.
            if let Some(oldest) = self.oldest() {
                self.frames.swap_remove(oldest);
            }
        }
        self.frames.push((timestamp, frame));
    }

    /// The next 20 ms slot.
    pub fn pop(&mut self) -> Playout {
        let Some(next) = self.next else {
            if self.frames.len() < self.target {
                self.count_empty_slot();
                return Playout::Idle;
            }
            let start = self.oldest().and_then(|i| self.frames.get(i)).map(|f| f.0);
            self.next = start;
            self.stats.restarts += 1;
            return self.pop();
        };
        self.next = Some(next.wrapping_add(self.ticks));
        // Frames whose slot passed (after a skip) are late.
        let before = self.frames.len();
        self.frames
            .retain(|(ts, _)| ts.wrapping_sub(next) <= u32::MAX / 2);
        self.stats.late += (before - self.frames.len()) as u64;
        if let Some(i) = self.frames.iter().position(|(ts, _)| *ts == next) {
            let (_, frame) = self.frames.swap_remove(i);
            self.stats.played += 1;
            if let Some(gap) = self.since_played.replace(0) {
                self.stats.longest_gap = self.stats.longest_gap.max(gap);
            }
            return Playout::Frame(frame);
        }
        // The slot is empty, the target's worth of frames waits, and the
        // first of them is two slots or more ahead: the sender moved its
        // timestamps on (it skipped slots it could not send in time).
        // Playout jumps to it; concealing the gap instead would add its
        // length to the delay for good, or, with a gap longer than the
        // buffer holds, drop every frame as overflow before its turn.
        // A single lost frame is still concealed.
        let oldest = self.oldest().and_then(|i| self.frames.get(i)).map(|f| f.0);
        if let Some(oldest) = oldest
            && self.frames.len() >= self.target
            && oldest.wrapping_sub(next) / self.ticks >= 2
        {
            self.next = Some(oldest);
            self.stats.restarts += 1;
            return self.pop();
        }
        self.count_empty_slot();
        if self.frames.is_empty() && self.since_played.is_some_and(|s| s >= GIVE_UP) {
            // The member stopped sending: wait for a full buffer again.
            self.next = None;
            return Playout::Idle;
        }
        self.stats.concealed += 1;
        Playout::Conceal
    }

    fn count_empty_slot(&mut self) {
        if let Some(s) = self.since_played.as_mut() {
            *s += 1;
        }
    }

    fn restart(&mut self) {
        self.frames.clear();
        self.next = None;
    }

    fn oldest(&self) -> Option<usize> {
        let base = self.next.or_else(|| self.frames.first().map(|f| f.0))?;
        self.frames
            .iter()
            .enumerate()
            .min_by_key(|(_, (ts, _))| ts.wrapping_sub(base).wrapping_add(u32::MAX / 2))
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const T: u32 = 960;

    fn played(p: &Playout) -> Option<u8> {
        match p {
            Playout::Frame(f) => f.first().copied(),
            _ => None,
        }
    }

    #[test]
    fn reordered_frames_play_in_order_after_the_target_depth() {
        let mut j = JitterBuffer::new(T, 3, 20);
        let base = u32::MAX - T; // across the wrap
        assert_eq!(j.pop(), Playout::Idle);
        for i in [1u8, 0, 2] {
            j.push(base.wrapping_add(u32::from(i) * T), vec![i]);
        }
        for i in [4u8, 3, 5] {
            j.push(base.wrapping_add(u32::from(i) * T), vec![i]);
        }
        let out: Vec<_> = (0..6).map(|_| played(&j.pop())).collect();
        assert_eq!(out, [0, 1, 2, 3, 4, 5].map(Some));
        let s = j.stats();
        assert_eq!((s.played, s.concealed, s.late, s.longest_gap), (6, 0, 0, 0));
    }

    #[test]
    fn a_missing_frame_is_concealed_and_measured_as_a_gap() {
        let mut j = JitterBuffer::new(T, 2, 20);
        for i in [0u8, 1, 3, 4, 5] {
            j.push(u32::from(i) * T, vec![i]);
        }
        let out: Vec<_> = (0..6).map(|_| j.pop()).collect();
        assert_eq!(out[2], Playout::Conceal);
        assert_eq!(
            out.iter().map(played).collect::<Vec<_>>(),
            [Some(0), Some(1), None, Some(3), Some(4), Some(5)]
        );
        assert_eq!(j.stats().longest_gap, 1);
        assert_eq!(j.stats().concealed, 1);
        // The missing frame arriving now is late, and not played.
        j.push(2 * T, vec![2]);
        assert_eq!(j.stats().late, 1);
    }

    #[test]
    fn a_silent_member_goes_idle_and_a_new_stream_starts_over() {
        let mut j = JitterBuffer::new(T, 2, 20);
        j.push(0, vec![0]);
        j.push(T, vec![1]);
        assert!(matches!(j.pop(), Playout::Frame(_)));
        assert!(matches!(j.pop(), Playout::Frame(_)));
        let mut idle = false;
        for _ in 0..GIVE_UP + 2 {
            idle |= j.pop() == Playout::Idle;
        }
        assert!(idle, "stops concealing a member who went quiet");
        // A reconnected sender with a new random timestamp base.
        j.push(1_000_000_000, vec![7]);
        j.push(1_000_000_000 + T, vec![8]);
        assert_eq!(played(&j.pop()), Some(7));
        assert_eq!(j.stats().restarts, 2);
        assert!(j.stats().longest_gap > GIVE_UP, "the silence is a gap");
    }

    /// A sender that skipped `jump` slots without a pause in what it sends
    /// (it stalled, then moved its timestamps on past the slots it could
    /// not send in time): playout follows within a few slots and keeps
    /// the target's delay, whatever the size of the jump.
    #[test]
    fn a_sender_that_skips_ahead_is_followed_not_concealed_for_ever() {
        for jump in [5u32, 10, 30, 45, 60] {
            let mut j = JitterBuffer::new(T, 3, 25);
            let mut out = Vec::new();
            for i in 0..200u32 {
                let slot = if i < 20 { i } else { i + jump };
                j.push(slot * T, vec![u8::try_from(slot % 256).unwrap()]);
                out.push(j.pop());
            }
            let tail = &out[out.len() - 50..];
            assert!(
                tail.iter().all(|p| matches!(p, Playout::Frame(_))),
                "jump {jump}: the last second plays ({:?})",
                j.stats()
            );
            assert!(
                j.depth() <= 2 * 3,
                "jump {jump}: delay back near the target ({})",
                j.depth()
            );
        }
    }

    #[test]
    fn a_flood_is_bounded() {
        let mut j = JitterBuffer::new(T, 2, 8);
        for i in 0..100u32 {
            j.push(i * T, vec![0; 10]);
        }
        assert!(j.depth() <= 8);
        assert_eq!(j.stats().overflow, 92);
        // Duplicates are refused.
        let mut k = JitterBuffer::new(T, 2, 8);
        k.push(0, vec![1]);
        k.push(0, vec![2]);
        assert_eq!(k.depth(), 1);
    }
}
