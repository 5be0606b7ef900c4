//! How much heap and stack a piece of work takes on the board.

use core::sync::atomic::Ordering;

#[cfg(feature = "block-table")]
use crate::blocks::{Blocks, TRACKER};
use crate::heap::HEAP;
use crate::stack::{LOWEST, lowest_touched, repaint};

/// What [`measure`] saw.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Heap bytes in use when the work began.
    pub heap_before: usize,
    /// Heap bytes in use when it ended.
    pub heap_after: usize,
    /// Most heap bytes in use at once while it ran (absolute, not a delta).
    pub heap_peak: usize,
    /// Bytes of stack it used below the caller's stack pointer.
    pub stack: usize,
}

impl Usage {
    /// Heap bytes the work left allocated (negative: it freed some).
    #[must_use]
    pub fn heap_kept(&self) -> isize {
        self.heap_after.cast_signed() - self.heap_before.cast_signed()
    }

    /// Most heap bytes the work had allocated at once on top of what was
    /// in use before.
    #[must_use]
    pub fn heap_growth(&self) -> usize {
        self.heap_peak.saturating_sub(self.heap_before)
    }
}

/// Runs `work` and says how much heap and stack it took. Measurements nest.
pub fn measure<T>(work: impl FnOnce() -> T) -> (T, Usage) {
    let before_us = LOWEST
        .swap(usize::MAX, Ordering::Relaxed)
        .min(lowest_touched());
    let sp = repaint();
    let heap_before = HEAP.used();
    let outer_peak = HEAP.reset_peak();
    let out = work();
    let peak = HEAP.reset_peak();
    // An enclosing measurement still sees this peak.
    HEAP.raise_peak(outer_peak.max(peak));
    let low = lowest_touched().min(LOWEST.load(Ordering::Relaxed));
    LOWEST.store(before_us.min(low), Ordering::Relaxed);
    let usage = Usage {
        heap_before,
        heap_after: HEAP.used(),
        heap_peak: peak,
        stack: sp.saturating_sub(low),
    };
    (out, usage)
}

/// [`measure`], and the largest blocks `work` allocated. It does not nest.
#[cfg(feature = "block-table")]
pub fn measure_blocks<T>(work: impl FnOnce() -> T) -> (T, Usage, Blocks) {
    TRACKER.lock().start(HEAP.used());
    let (out, usage) = measure(work);
    let blocks = TRACKER.lock().finish();
    (out, usage, blocks)
}
