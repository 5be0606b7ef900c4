//! How deep the stack went. cortex-m-rt paints the stack with
//! `0xCCCC_CCCC` before `main` (its `paint-stack` feature);
//! [`measure`](crate::measure) paints the free stack below itself again,
//! and the lowest word no longer painted is the deepest the stack reached.

use core::sync::atomic::{AtomicUsize, Ordering};

// Bounds of the stack, from cortex-m-rt's `link.x`: it grows down from
// `_stack_start` (the top of RAM) towards `_stack_end` (just past `.bss`).
unsafe extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

const PAINT: u32 = cortex_m_rt::STACK_PAINT_VALUE;

/// Bytes left unpainted below the stack pointer when repainting, for the
/// painting function's own needs.
const MARGIN: usize = 256;

/// The stack's lowest and highest address.
fn bounds() -> (usize, usize) {
    (
        (&raw const _stack_end) as usize,
        (&raw const _stack_start) as usize,
    )
}

/// The lowest stack address written since it was last painted.
pub(crate) fn lowest_touched() -> usize {
    let (bottom, top) = bounds();
    let mut at = bottom;
    while at < top {
        // SAFETY: `at` walks whole, aligned words from `_stack_end` up to
        // below `_stack_start`, RAM reserved for the stack; the read is
        // volatile because the compiler cannot know who painted it.
        let word = unsafe { core::ptr::with_exposed_provenance::<u32>(at).read_volatile() };
        if word != PAINT {
            break;
        }
        at += 4;
    }
    at
}

/// Paints the stack from its bottom up to `MARGIN` bytes below the current
/// stack pointer; returns that stack pointer.
#[inline(never)]
pub(crate) fn repaint() -> usize {
    let sp = cortex_m::register::msp::read() as usize;
    let (bottom, _) = bounds();
    let mut at = bottom;
    while at + 4 <= sp - MARGIN {
        // SAFETY: every word from `_stack_end` to below the current stack
        // pointer is reserved for the stack and unused right now (no
        // interrupts run), so overwriting it disturbs nothing.
        unsafe { core::ptr::with_exposed_provenance_mut::<u32>(at).write_volatile(PAINT) };
        at += 4;
    }
    sp
}

/// The lowest stack address any [`measure`](crate::measure) has seen
/// written, so that nested measurements and [`stack_high_water`] survive
/// repainting.
pub(crate) static LOWEST: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The deepest the stack has gone since reset, in bytes, and the stack's
/// size (the RAM that `.data`, `.bss` and the heap left).
pub fn stack_high_water() -> (usize, usize) {
    let (bottom, top) = bounds();
    let low = lowest_touched().min(LOWEST.load(Ordering::Relaxed));
    (top - low, top - bottom)
}
