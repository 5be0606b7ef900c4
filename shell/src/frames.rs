//! Decoded pictures on their way to the window.
//!
//! Each picture travels as one binary message on a Tauri channel: a
//! 16-byte header (the sender's connection id, u64, or [`SELF_VIEW`];
//! width and height, u32; all little-endian), then the I420 planes. The UI uploads the planes as
//! three textures and converts them to RGB in a WebGL2 shader: a third of
//! RGBA's bytes, and the conversion runs on the GPU.
//!
//! The UI says when it has drawn a picture ([`Credit::drawn`]); with
//! [`MAX_IN_FLIGHT`] pictures not yet drawn, newer ones are dropped rather
//! than queued, so a slow window shows the latest picture instead of
//! falling further behind.

use std::sync::atomic::{AtomicU32, Ordering};

use satsuma_engine::media::video::I420;

/// The connection id that marks this member's own picture (the
/// self-view): no SFU gives out this one.
pub const SELF_VIEW: u64 = u64::MAX;

/// The length of a picture message's header.
pub const HEADER: usize = 16;
/// Pictures sent and not yet drawn, at most.
pub const MAX_IN_FLIGHT: u32 = 6;

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

/// Pictures in flight to the window.
#[derive(Debug, Default)]
pub struct Credit {
    in_flight: AtomicU32,
}

impl Credit {
    /// Takes a slot for one more picture; false (the picture is dropped)
    /// when the window is [`MAX_IN_FLIGHT`] behind.
    pub fn take(&self) -> bool {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_IN_FLIGHT).then_some(n + 1)
            })
            .is_ok()
    }

    /// The window drew (or threw away) a picture.
    pub fn drawn(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// A new window (a new call): nothing in flight.
    pub fn reset(&self) {
        self.in_flight.store(0, Ordering::Release);
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
        let taken: Vec<bool> = (0..20).map(|_| credit.take()).collect();
        assert_eq!(taken.iter().filter(|t| **t).count(), MAX_IN_FLIGHT as usize);
        assert_eq!(
            taken.iter().filter(|t| !**t).count(),
            20 - MAX_IN_FLIGHT as usize
        );
        credit.drawn();
        assert!(credit.take());
        assert!(!credit.take());
        // More "drawn" than sent (a reloaded page) does not underflow.
        credit.reset();
        credit.drawn();
        assert!(credit.take());
    }
}
