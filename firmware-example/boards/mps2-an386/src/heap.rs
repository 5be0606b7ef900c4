//! The heap: `embedded-alloc`'s `LlffHeap`, wrapped to keep its high-water
//! marks. "In use" is the sum of the sizes of live allocations, as
//! `LlffHeap::used` counts them.

use core::alloc::{GlobalAlloc, Layout};
use core::fmt;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;

#[cfg(feature = "block-table")]
use crate::blocks::TRACKER;

/// `LlffHeap` that remembers the most bytes in use at once and the highest
/// offset it handed out.
pub struct PeakHeap {
    heap: LlffHeap,
    /// Where the heap starts, once [`init_heap`] ran.
    start: AtomicUsize,
    /// Most bytes in use at once since the last [`PeakHeap::reset_peak`].
    peak: AtomicUsize,
    /// Highest heap offset ever handed out: what fragmentation really cost.
    top: AtomicUsize,
    /// Allocations made since the start.
    allocations: AtomicUsize,
}

impl PeakHeap {
    const fn empty() -> Self {
        Self {
            heap: LlffHeap::empty(),
            start: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            top: AtomicUsize::new(0),
            allocations: AtomicUsize::new(0),
        }
    }

    /// Allocations made since the program started: the difference over a
    /// piece of work is how many it made.
    pub fn allocations(&self) -> usize {
        self.allocations.load(Ordering::Relaxed)
    }

    /// Bytes in use now.
    pub fn used(&self) -> usize {
        self.heap.used()
    }

    /// The peak since the last reset.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed).max(self.used())
    }

    /// The peak since the last reset; a new peak starts from now.
    pub fn reset_peak(&self) -> usize {
        self.peak.swap(self.used(), Ordering::Relaxed)
    }

    /// Raises the current peak to at least `to`.
    pub(crate) fn raise_peak(&self, to: usize) {
        self.peak.fetch_max(to, Ordering::Relaxed);
    }

    /// The bytes [`PeakHeap::used`] counts for a block of `bytes` (the
    /// allocator rounds sizes up), measured by allocating one: a message
    /// sized exactly, as MLS encodes them, counts for more than its length.
    /// Zero if the heap has no room for it. The counters and the block
    /// table do not see the probe.
    pub fn counted(&self, bytes: usize) -> usize {
        let Ok(layout) = Layout::from_size_align(bytes.max(1), 1) else {
            return 0;
        };
        let before = self.used();
        // SAFETY: the layout has a non-zero size; the block is freed right
        // away with the same layout and never touched.
        let ptr = unsafe { GlobalAlloc::alloc(&self.heap, layout) };
        if ptr.is_null() {
            return 0;
        }
        let counted = self.used() - before;
        // SAFETY: `ptr` came from this inner heap with this layout.
        unsafe { GlobalAlloc::dealloc(&self.heap, ptr, layout) };
        counted
    }

    /// Highest offset into the heap ever allocated, one past the block's
    /// end.
    pub fn top(&self) -> usize {
        self.top.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for PeakHeap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeakHeap")
            .field("used", &self.used())
            .field("peak", &self.peak.load(Ordering::Relaxed))
            .field("top", &self.top())
            .finish()
    }
}

// SAFETY: every call is forwarded unchanged to `LlffHeap`, whose
// `GlobalAlloc` implementation upholds the contract; the wrapper only
// updates counters afterwards and never touches the memory.
unsafe impl GlobalAlloc for PeakHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for us,
        // and so for the inner heap.
        let ptr = unsafe { GlobalAlloc::alloc(&self.heap, layout) };
        if !ptr.is_null() {
            let used = self.used();
            self.peak.fetch_max(used, Ordering::Relaxed);
            let end = (ptr as usize + layout.size()) - self.start.load(Ordering::Relaxed);
            self.top.fetch_max(end, Ordering::Relaxed);
            self.allocations.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "block-table")]
            TRACKER.lock().allocated(ptr as usize, layout.size(), used);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        #[cfg(feature = "block-table")]
        TRACKER.lock().freed(ptr as usize);
        // SAFETY: `ptr` came from `alloc` above with this `layout` (the
        // caller's contract), which got it from the inner heap.
        unsafe { GlobalAlloc::dealloc(&self.heap, ptr, layout) }
    }
}

/// The program's heap. It has no memory until [`init_heap`].
#[global_allocator]
pub static HEAP: PeakHeap = PeakHeap::empty();

/// Hands the heap its memory: call it first thing in `main`, with a
/// `static mut` array declared at the top of the `#[entry]` function,
/// which cortex-m-rt turns into this `&'static mut`. The first call with
/// some memory wins; later ones leave the heap as it is.
pub fn init_heap(memory: &'static mut [MaybeUninit<u8>]) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if memory.is_empty() || DONE.swap(true, Ordering::Relaxed) {
        return;
    }
    let start = memory.as_mut_ptr() as usize;
    HEAP.start.store(start, Ordering::Relaxed);
    // SAFETY: the guard above lets this run once (`LlffHeap::init` would
    // panic on a second call or on no memory); `memory` is valid, and
    // borrowed for the rest of the program, so from now on it belongs to
    // the heap alone.
    unsafe { HEAP.heap.init(start, memory.len()) }
}
