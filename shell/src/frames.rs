//! Decoded pictures on their way to the window.
//!
//! Each picture travels as one binary message on a Tauri channel: a
//! 16-byte header (the sender's connection id, u64, or [`SELF_VIEW`];
//! width and height, u32; all little-endian), then the I420 planes. The UI uploads the planes as
//! three textures and converts them to RGB in a WebGL2 shader: a third of
//! RGBA's bytes, and the conversion runs on the GPU.
//!
//! The UI says when it has drawn a picture, and whose it was
//! ([`Credit::drawn`]). Each source (a member, or the self-view) may have
//! [`PER_SOURCE`] pictures not yet drawn; a newer one is dropped rather
//! than queued, so a slow window shows the latest picture instead of
//! falling further behind. The credit is per source so that sources
//! cannot starve each other: with one credit for all, three 30 fps
//! streams on a window that drew slower than 90 pictures a second
//! settled into a rhythm where one stream's pictures always found the
//! credit spent, and its tile froze while the others moved.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use satsuma_engine::media::video::I420;

/// The connection id that marks this member's own picture (the
/// self-view): no SFU gives out this one.
pub const SELF_VIEW: u64 = u64::MAX;

/// The length of a picture message's header.
pub const HEADER: usize = 16;
/// Pictures of one source sent and not yet drawn, at most: one being
/// drawn and one waiting behind it.
pub const PER_SOURCE: u32 = 2;

/// One picture as the UI reads it.
#[must_use]
pub fn encode(conn: u64, picture: &I420) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + picture.data.len());
    out.extend_from_slice(&conn.to_le_bytes());
    out.extend_from_slice(&picture.width.to_le_bytes());
    out.extend_from_slice(&picture.height.to_le_bytes());
    out.extend_from_slice(&picture.data);
    out
}

/// Pictures in flight to the window, per source.
#[derive(Debug, Default)]
pub struct Credit {
    in_flight: Mutex<HashMap<u64, u32>>,
}

impl Credit {
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u32>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot for one more picture of `source`; false (the picture
    /// is dropped) when the window is [`PER_SOURCE`] behind on it.
    pub fn take(&self, source: u64) -> bool {
        let mut in_flight = self.in_flight();
        let n = in_flight.entry(source).or_default();
        if *n < PER_SOURCE {
            *n += 1;
            true
        } else {
            false
        }
    }

    /// The window drew (or threw away) a picture of `source`.
    pub fn drawn(&self, source: u64) {
        let mut in_flight = self.in_flight();
        if let Some(n) = in_flight.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                in_flight.remove(&source);
            }
        }
    }

    /// A new window (a new call): nothing in flight.
    pub fn reset(&self) {
        self.in_flight().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_then_planes() {
        let picture = I420 {
            width: 4,
            height: 2,
            data: (0..12).collect(),
        };
        let bytes = encode(0x0102_0304_0506_0708, &picture);
        assert_eq!(bytes.len(), HEADER + 12);
        assert_eq!(bytes[..8], 0x0102_0304_0506_0708_u64.to_le_bytes());
        assert_eq!(bytes[8..12], 4_u32.to_le_bytes());
        assert_eq!(bytes[12..16], 2_u32.to_le_bytes());
        assert_eq!(bytes[16..], picture.data[..]);
    }

    #[test]
    fn a_slow_window_gets_no_more_than_the_credit() {
        let credit = Credit::default();
        let taken: Vec<bool> = (0..20).map(|_| credit.take(7)).collect();
        assert_eq!(taken.iter().filter(|t| **t).count(), PER_SOURCE as usize);
        credit.drawn(7);
        assert!(credit.take(7));
        assert!(!credit.take(7));
        // More "drawn" than sent (a reloaded page, a stale source) does
        // not underflow or lend credit.
        credit.reset();
        credit.drawn(7);
        credit.drawn(9);
        let taken = (0..5).filter(|_| credit.take(7)).count();
        assert_eq!(taken, PER_SOURCE as usize);
    }

    #[test]
    fn a_source_the_window_is_behind_on_does_not_starve_another() {
        // Three sources in a fixed rhythm; the window draws one picture
        // per round, always the oldest. With one shared credit the third
        // source's pictures came when it was spent, round after round.
        let credit = Credit::default();
        let mut queue = std::collections::VecDeque::new();
        let sources = [4_u64, 9, SELF_VIEW];
        let mut shown = [0_u32; 3];
        for _ in 0..300 {
            for (i, source) in sources.iter().enumerate() {
                if credit.take(*source) {
                    queue.push_back(i);
                }
            }
            if let Some(i) = queue.pop_front() {
                shown[i] += 1;
                credit.drawn(sources[i]);
            }
        }
        for (source, n) in shown.iter().enumerate() {
            assert!(
                *n >= 90,
                "source {} was shown {n} times of 300: {shown:?}",
                sources[source]
            );
        }
    }
}
