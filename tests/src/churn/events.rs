//! The simulation's event queue: what happens, and when.

use std::cmp::Ordering;

use satsuma_core::Instant;

/// What happens at one instant.
#[derive(Debug)]
pub(super) enum Ev {
    /// The DS notices a crashed slot's connection `link` is dead (after
    /// everything sent on it).
    Disconnect { slot: usize, link: u32 },
    /// The DS's commit deadline may have passed.
    RoomTimer,
    /// A member's timer (SFrame grace periods).
    MemberTimer { slot: usize, life: u64 },
    /// The churn process acts.
    Churn,
    /// A crashed client starts again.
    Restart { slot: usize },
    /// A member the DS declared gone joins again.
    Rejoin { slot: usize, life: u64 },
}

impl Ev {
    /// Whether this is a signal in flight (the network is quiet when none
    /// is left, and no message).
    pub(super) fn in_flight(&self) -> bool {
        matches!(self, Self::Disconnect { .. } | Self::Rejoin { .. })
    }
}

/// An event at its time; `order` keeps events at one instant in the
/// order they were scheduled.
#[derive(Debug)]
pub(super) struct Scheduled {
    pub(super) at: Instant,
    pub(super) order: u64,
    pub(super) ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Earliest first in a max-heap; ties in the order they were scheduled.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}
