//! Time as an input: the core never reads a clock. Drivers convert their
//! clock (`std::time::Instant`, embassy's `Instant`, a test's fake) into
//! [`Instant`] at the edge.

use core::time::Duration;

/// A point in time, in microseconds since an origin the driver chooses.
/// Only differences and order mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Self = Self(0);

    /// `micros` microseconds after the origin.
    #[must_use]
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// `millis` milliseconds after the origin, saturating at the far
    /// future instead of wrapping.
    #[must_use]
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1000))
    }

    /// Microseconds since the origin.
    #[must_use]
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the far future instead of wrapping.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(micros))
    }

    /// How long after `earlier` this is; zero if it is not after.
    #[must_use]
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

/// Wall-clock time: whole seconds since 1970-01-01 00:00 UTC, as a driver
/// read it (the desktop from its OS, an intercom from the SFU). MLS key
/// packages carry a lifetime in it; nothing else in the core uses it, and
/// the core never reads it itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UnixTime(u64);

impl UnixTime {
    /// `secs` seconds after 1970-01-01 00:00 UTC.
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs)
    }

    /// Seconds since 1970-01-01 00:00 UTC.
    #[must_use]
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// The system's wall clock now; the origin if it reads before 1970.
    #[cfg(feature = "std")]
    #[must_use]
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(since.as_secs())
    }
}

/// A driver's clock: `std::time::Instant` converted to [`Instant`] against
/// one origin, so every state machine a driver runs reads the same time,
/// and time never runs backwards (the origin is fixed and
/// `std::time::Instant` is monotonic).
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: std::time::Instant,
}

#[cfg(feature = "std")]
impl Clock {
    /// A clock whose origin is now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
        }
    }

    /// The time now.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.at(std::time::Instant::now())
    }

    /// `at` on this clock; the origin if `at` is before it.
    #[must_use]
    pub fn at(&self, at: std::time::Instant) -> Instant {
        let since = at.saturating_duration_since(self.origin);
        Instant::from_micros(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
    }

    /// When `at` falls on the driver's clock, for its timers. A deadline
    /// too far to represent is a year from the origin's side of now.
    #[must_use]
    pub fn deadline(&self, at: Instant) -> std::time::Instant {
        let after = Duration::from_micros(at.as_micros());
        self.origin
            .checked_add(after)
            .unwrap_or_else(|| std::time::Instant::now() + Duration::from_secs(365 * 24 * 3600))
    }
}

#[cfg(feature = "std")]
impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_micros(10);
        assert_eq!(t.saturating_add(Duration::from_micros(5)).as_micros(), 15);
        assert_eq!(
            Instant::from_micros(u64::MAX - 1)
                .saturating_add(Duration::MAX)
                .as_micros(),
            u64::MAX
        );
        assert_eq!(Instant::ZERO.saturating_duration_since(t), Duration::ZERO);
        assert_eq!(
            t.saturating_duration_since(Instant::ZERO),
            Duration::from_micros(10)
        );
    }

    #[test]
    fn milliseconds_are_a_thousand_microseconds_and_saturate() {
        assert_eq!(Instant::from_millis(0), Instant::ZERO);
        assert_eq!(Instant::from_millis(1500).as_micros(), 1_500_000);
        assert_eq!(
            Instant::from_millis(u64::MAX / 1000).as_micros(),
            u64::MAX / 1000 * 1000
        );
        assert_eq!(
            Instant::from_millis(u64::MAX / 1000 + 1).as_micros(),
            u64::MAX
        );
        assert_eq!(Instant::from_millis(u64::MAX).as_micros(), u64::MAX);
    }

    #[cfg(feature = "std")]
    #[test]
    fn a_clock_converts_both_ways_and_never_runs_backwards() {
        let clock = Clock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
        let later = Instant::from_micros(a.as_micros() + 1_500_000);
        let deadline = clock.deadline(later);
        assert_eq!(clock.at(deadline), later);
        // A time before the origin reads as the origin.
        let before = std::time::Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(std::time::Instant::now);
        let early = Clock::new();
        assert_eq!(early.at(before), Instant::ZERO);
    }
}
