//! How much heap and stack a piece of work takes on the board.
//!
//! - Heap: the global allocator is `embedded-alloc`'s `LlffHeap` wrapped to
//!   keep the most bytes in use at once (the peak). "In use" is the sum of
//!   the sizes of live allocations, as `LlffHeap::used` counts them.
//! - Which blocks: [`measure_blocks`] also keeps a table of the blocks the
//!   work allocated and has not freed, and lists the largest of them at the
//!   peak and at the end, as a clue to what takes the space.
//! - Stack: cortex-m-rt paints the stack with `0xCCCC_CCCC` before `main`
//!   (its `paint-stack` feature); [`measure`] paints the free stack below
//!   itself again and afterwards finds the lowest word the work overwrote.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;
use spin::Mutex;

/// Bytes of RAM given to the heap (a static in `.bss`): room for sixteen
/// members in one process. One member needs far less; it prints how much.
pub const HEAP_SIZE: usize = 3 * 1024 * 1024;

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
    pub fn heap_kept(&self) -> isize {
        self.heap_after.cast_signed() - self.heap_before.cast_signed()
    }

    /// Most heap bytes the work had allocated at once on top of what was
    /// in use before.
    pub fn heap_growth(&self) -> usize {
        self.heap_peak.saturating_sub(self.heap_before)
    }
}

/// `LlffHeap` that remembers its peak.
pub struct PeakHeap {
    heap: LlffHeap,
    peak: AtomicUsize,
}

impl PeakHeap {
    const fn empty() -> Self {
        Self {
            heap: LlffHeap::empty(),
            peak: AtomicUsize::new(0),
        }
    }

    /// Bytes in use now.
    pub fn used(&self) -> usize {
        self.heap.used()
    }

    /// The peak since the last reset; a new peak starts from now.
    fn reset_peak(&self) -> usize {
        self.peak.swap(self.used(), Ordering::Relaxed)
    }

    fn raise_peak(&self, to: usize) {
        self.peak.fetch_max(to, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `LlffHeap`, whose
// `GlobalAlloc` implementation upholds the contract; the wrapper only
// updates a counter afterwards and never touches the memory.
unsafe impl GlobalAlloc for PeakHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for us,
        // and so for the inner heap.
        let ptr = unsafe { GlobalAlloc::alloc(&self.heap, layout) };
        if !ptr.is_null() {
            let used = self.used();
            self.peak.fetch_max(used, Ordering::Relaxed);
            TRACKER.lock().allocated(ptr as usize, layout.size(), used);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        TRACKER.lock().freed(ptr as usize);
        // SAFETY: `ptr` came from `alloc` above with this `layout` (the
        // caller's contract), which got it from the inner heap.
        unsafe { GlobalAlloc::dealloc(&self.heap, ptr, layout) }
    }
}

/// The program's heap.
#[global_allocator]
pub static HEAP: PeakHeap = PeakHeap::empty();

/// Hands the heap its memory. Call once, first thing in `main`.
pub fn init_heap() {
    static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
    static DONE: AtomicUsize = AtomicUsize::new(0);
    if DONE.swap(1, Ordering::Relaxed) == 0 {
        // SAFETY: the guard above lets this run once; it is the only use
        // of `HEAP_MEM`, which from now on belongs to the heap alone.
        unsafe { HEAP.heap.init((&raw mut HEAP_MEM) as usize, HEAP_SIZE) }
    }
}

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

fn stack_bounds() -> (usize, usize) {
    (
        (&raw const _stack_end) as usize,
        (&raw const _stack_start) as usize,
    )
}

/// The lowest stack address written since it was last painted.
fn lowest_touched() -> usize {
    let (bottom, top) = stack_bounds();
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
fn repaint() -> usize {
    let sp = cortex_m::register::msp::read() as usize;
    let (bottom, _) = stack_bounds();
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

/// The lowest stack address any [`measure`] has seen written, so that
/// nested measurements and [`stack_high_water`] survive repainting.
static LOWEST: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Runs `work` and says how much heap and stack it took.
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

/// The deepest the stack has gone since reset, and the stack's size.
pub fn stack_high_water() -> (usize, usize) {
    let (bottom, top) = stack_bounds();
    let low = lowest_touched().min(LOWEST.load(Ordering::Relaxed));
    (top - low, top - bottom)
}

/// How many of the largest blocks [`Blocks`] lists.
pub const TOP: usize = 6;

/// Live blocks a table can follow at once.
const MAX_TRACKED: usize = 4096;

/// Blocks a piece of work allocated and had not freed: how many, their
/// bytes, and the sizes of the largest.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Blocks live.
    pub count: usize,
    /// Their bytes, as requested.
    pub bytes: usize,
    /// The largest sizes, largest first; zeros when fewer.
    pub top: [usize; TOP],
}

/// What [`measure_blocks`] saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Blocks {
    /// At the moment the heap peaked.
    pub at_peak: Snapshot,
    /// When the work ended: what it kept.
    pub kept: Snapshot,
    /// More blocks were live than the table holds: the lists miss some.
    pub incomplete: bool,
}

/// The table of live blocks while [`measure_blocks`] runs.
struct Tracker {
    on: bool,
    live: [(usize, usize); MAX_TRACKED],
    len: usize,
    peak_used: usize,
    at_peak: Snapshot,
    incomplete: bool,
}

static TRACKER: Mutex<Tracker> = Mutex::new(Tracker {
    on: false,
    live: [(0, 0); MAX_TRACKED],
    len: 0,
    peak_used: 0,
    at_peak: Snapshot {
        count: 0,
        bytes: 0,
        top: [0; TOP],
    },
    incomplete: false,
});

impl Tracker {
    fn allocated(&mut self, at: usize, size: usize, used: usize) {
        if !self.on {
            return;
        }
        match self.live.get_mut(self.len) {
            Some(slot) => {
                *slot = (at, size);
                self.len += 1;
            }
            None => self.incomplete = true,
        }
        if used > self.peak_used {
            self.peak_used = used;
            self.at_peak = self.snapshot();
        }
    }

    fn freed(&mut self, at: usize) {
        if !self.on {
            return;
        }
        if let Some(i) = self.live[..self.len].iter().position(|(a, _)| *a == at) {
            self.len -= 1;
            self.live.swap(i, self.len);
        }
    }

    fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot {
            count: self.len,
            ..Snapshot::default()
        };
        for &(_, size) in &self.live[..self.len] {
            snapshot.bytes += size;
            if let Some(i) = snapshot.top.iter().position(|t| size > *t) {
                snapshot.top.copy_within(i..TOP - 1, i + 1);
                snapshot.top[i] = size;
            }
        }
        snapshot
    }
}

/// [`measure`], and the largest blocks `work` allocated (not nested).
pub fn measure_blocks<T>(work: impl FnOnce() -> T) -> (T, Usage, Blocks) {
    {
        let mut t = TRACKER.lock();
        t.on = true;
        t.len = 0;
        t.incomplete = false;
        t.peak_used = HEAP.used();
        t.at_peak = Snapshot::default();
    }
    let (out, usage) = measure(work);
    let mut t = TRACKER.lock();
    t.on = false;
    let blocks = Blocks {
        at_peak: t.at_peak,
        kept: t.snapshot(),
        incomplete: t.incomplete,
    };
    (out, usage, blocks)
}
