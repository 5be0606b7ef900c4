//! Media the sender check refused (`core::committer::Senders`: the frame's
//! SFrame KID does not name the leaf of the connection it came on). Each
//! refusal is counted under its reason; a line is logged at debug at most
//! once a second per room, with how many were not logged, so a member that
//! floods forged frames cannot flood the log too. The check runs on every
//! packet; this runs only when it refuses one.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use satsuma_core::committer::SenderError;
use satsuma_core::wire::ConnId;

use crate::metrics::{DropReason, Metrics};

/// How often a refusal may be logged.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// One room's refused frames, for the log.
#[derive(Debug)]
pub(crate) struct Refusals {
    origin: Instant,
    /// Milliseconds since `origin` before which nothing is logged.
    quiet_until: AtomicU64,
    /// Refusals not logged since the last line.
    unlogged: AtomicU64,
}

impl Refusals {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            quiet_until: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
        }
    }

    /// A frame from `conn` on `path` (`"intercom"`, `"webrtc"`) was refused.
    pub(crate) fn note(&self, metrics: &Metrics, conn: ConnId, path: &str, error: &SenderError) {
        metrics.dropped(DropReason::of_sender(error));
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let until = self.quiet_until.load(Relaxed);
        let next = now.saturating_add(u64::try_from(LOG_EVERY.as_millis()).unwrap_or(u64::MAX));
        if now < until
            || self
                .quiet_until
                .compare_exchange(until, next, Relaxed, Relaxed)
                .is_err()
        {
            self.unlogged.fetch_add(1, Relaxed);
            return;
        }
        let unlogged = self.unlogged.swap(0, Relaxed);
        tracing::debug!(
            conn = conn.0,
            path,
            %error,
            unlogged,
            "media refused: its KID does not name its sender"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_counted_by_reason() {
        let metrics = Metrics::default();
        let refusals = Refusals::new();
        let wrong = SenderError::WrongSender {
            conn: ConnId(1),
            epoch: 3,
            leaf: 0,
            named: 1,
        };
        for _ in 0..5 {
            refusals.note(&metrics, ConnId(1), "intercom", &wrong);
        }
        refusals.note(
            &metrics,
            ConnId(1),
            "webrtc",
            &SenderError::UnknownEpoch { kid: 0x3e },
        );
        assert_eq!(metrics.drops(DropReason::WrongSender), 5);
        assert_eq!(metrics.drops(DropReason::UnknownEpoch), 1);
        assert_eq!(
            refusals.unlogged.load(Relaxed),
            5,
            "one line within the second, the rest counted for the next"
        );
    }
}
