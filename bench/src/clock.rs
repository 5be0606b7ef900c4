//! What the benchmarks measure: the CPU time of the process by default,
//! or wall-clock time.
//!
//! The operations benchmarked here neither wait nor do I/O, so on an idle
//! machine their CPU time is their wall-clock time. On a shared machine
//! (the 2-core VM these numbers come from runs other builds at the same
//! time) wall-clock samples also count the time the benchmark waited for a
//! core, which differs from one benchmark to the next and swamps a 10%
//! difference; CPU time does not. Set `SATSUMA_BENCH_CLOCK=wall` for
//! criterion's usual wall clock.
//!
//! CPU time is the whole process's, so work a library hands to another
//! thread is counted too; the benchmarks keep everything on one thread.

use std::time::{Duration, Instant};

use cpu_time::ProcessTime;
use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};

/// The environment variable that picks the clock: `wall` or `cpu` (default).
pub const CLOCK_VARIABLE: &str = "SATSUMA_BENCH_CLOCK";

/// A criterion measurement: the process's CPU time or the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchClock {
    /// CPU time of all the process's threads (`CLOCK_PROCESS_CPUTIME_ID`).
    ProcessCpu,
    /// Wall-clock time, as criterion's `WallTime`.
    Wall,
}

/// Where a [`BenchClock`] measurement started.
#[derive(Debug, Clone, Copy)]
pub enum ClockStart {
    /// CPU time at the start.
    ProcessCpu(ProcessTime),
    /// Wall-clock time at the start.
    Wall(Instant),
}

/// Formats nanoseconds as criterion does for wall-clock time.
#[derive(Debug)]
struct NanosFormatter;

impl BenchClock {
    /// [`BenchClock::Wall`] if `SATSUMA_BENCH_CLOCK` is `wall`, else
    /// [`BenchClock::ProcessCpu`].
    #[must_use]
    pub fn from_env() -> Self {
        match std::env::var(CLOCK_VARIABLE) {
            Ok(clock) if clock.eq_ignore_ascii_case("wall") => Self::Wall,
            _ => Self::ProcessCpu,
        }
    }

    /// What the clock measures, for the benchmark's header.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::ProcessCpu => "process CPU time",
            Self::Wall => "wall-clock time",
        }
    }
}

impl Measurement for BenchClock {
    type Intermediate = ClockStart;
    type Value = Duration;

    fn start(&self) -> ClockStart {
        match self {
            Self::ProcessCpu => ClockStart::ProcessCpu(ProcessTime::now()),
            Self::Wall => ClockStart::Wall(Instant::now()),
        }
    }

    fn end(&self, start: ClockStart) -> Duration {
        match start {
            ClockStart::ProcessCpu(start) => start.elapsed(),
            ClockStart::Wall(start) => start.elapsed(),
        }
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &NanosFormatter
    }
}

impl ValueFormatter for NanosFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e-3, "µs")
        } else if typical < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        for value in values {
            *value *= factor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (count, unit) = match *throughput {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => (n as f64, "B/s"),
            Throughput::Bits(n) => (n as f64, "b/s"),
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => {
                (n as f64, "elem/s")
            }
        };
        for value in values {
            *value = count * 1e9 / *value;
        }
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Other tests run on other threads of this process at the same time,
    // so only lower bounds hold for its CPU time.
    #[test]
    fn cpu_time_counts_this_threads_work() {
        let clock = BenchClock::ProcessCpu;
        let start = clock.start();
        let begun = Instant::now();
        let mut x = 0u64;
        while begun.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let spent = clock.end(start);
        assert!(spent >= Duration::from_millis(3), "{spent:?}");
    }

    #[test]
    fn wall_clock_counts_sleep() {
        let clock = BenchClock::Wall;
        let start = clock.start();
        std::thread::sleep(Duration::from_millis(20));
        assert!(clock.end(start) >= Duration::from_millis(20));
    }

    #[test]
    fn values_scale_like_criterion() {
        let mut values = [1_500.0, 2_500.0];
        assert_eq!(NanosFormatter.scale_values(1_500.0, &mut values), "µs");
        assert_eq!(values, [1.5, 2.5]);
    }
}
