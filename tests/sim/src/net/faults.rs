//! What the network does to messages, and how often it did.

use std::time::Duration;

use satsuma_core::Instant;

use crate::Rng;

/// What the network does to messages. Every draw comes from the [`Net`](crate::Net)'s
/// seeded [`Rng`], and none is made for a fault that is off, so a seed
/// replays a run exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Faults {
    /// One-way delay, drawn per message from this range (inclusive). Each
    /// link keeps FIFO order per direction, like a WebSocket.
    pub delay: (Duration, Duration),
    /// Messages lost, either way, per mille.
    pub loss: u64,
    /// Messages from the room delivered twice, per mille (a member's are
    /// not: a `Join` sent twice would open two connections).
    pub duplicate: u64,
    /// Welcomes lost on their way to the joiner, per mille.
    pub lost_welcomes: u64,
}

/// What the network did, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages delivered, both ways.
    pub delivered: u64,
    /// Welcomes the room sent (one per recipient).
    pub welcomes: u32,
    /// Welcomes the network lost ([`Faults::lost_welcomes`] and
    /// [`Net::lose_next_welcome`](crate::Net::lose_next_welcome)).
    pub lost_welcomes: u32,
    /// Messages [`Faults::loss`] lost.
    pub lost: u32,
    /// Messages [`Faults::duplicate`] sent twice.
    pub duplicated: u32,
}

impl Faults {
    /// When a message sent at `now` on a link whose last message arrives
    /// at `last` arrives: once, twice (duplicated, if it may be) or never
    /// (lost).
    pub(super) fn arrivals(
        &self,
        rng: &mut Rng,
        stats: &mut NetStats,
        (now, last): (Instant, Instant),
        duplicable: bool,
    ) -> Vec<Instant> {
        if self.loss > 0 && rng.chance(self.loss) {
            stats.lost += 1;
            return Vec::new();
        }
        let copies = if duplicable && self.duplicate > 0 && rng.chance(self.duplicate) {
            stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut at = last;
        (0..copies)
            .map(|_| {
                let (lo, hi) = self.delay;
                let delay = if lo == hi {
                    lo
                } else {
                    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                    Duration::from_micros(rng.range(micros(lo), micros(hi)))
                };
                at = now.saturating_add(delay).max(at);
                at
            })
            .collect()
    }
}
