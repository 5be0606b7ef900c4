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
}
