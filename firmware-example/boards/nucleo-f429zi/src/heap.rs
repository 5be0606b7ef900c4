//! The heap: `embedded-alloc`'s `LlffHeap`, keeping the most bytes it had
//! in use at once, which the intercom logs against its arena.

use core::alloc::{GlobalAlloc, Layout};
use core::fmt;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;

/// `LlffHeap` that remembers its peak and counts its allocations.
pub struct PeakHeap {
    heap: LlffHeap,
    peak: AtomicUsize,
    allocations: AtomicUsize,
}

impl PeakHeap {
    const fn empty() -> Self {
        Self {
            heap: LlffHeap::empty(),
            peak: AtomicUsize::new(0),
            allocations: AtomicUsize::new(0),
        }
    }

    /// Bytes in use now (the sum of the live allocations' sizes).
    pub fn used(&self) -> usize {
        self.heap.used()
    }

    /// The most bytes in use at once since the start.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Allocations made since the start: the difference over a piece of
    /// work is how many it made.
    pub fn allocations(&self) -> usize {
        self.allocations.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for PeakHeap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeakHeap")
            .field("used", &self.used())
            .field("peak", &self.peak())
            .finish()
    }
}

// SAFETY: every call is forwarded unchanged to `LlffHeap`, whose
// `GlobalAlloc` implementation upholds the contract; the wrapper only
// updates counters afterwards and never touches the memory.
unsafe impl GlobalAlloc for PeakHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for
        // us, and so for the inner heap.
        let ptr = unsafe { GlobalAlloc::alloc(&self.heap, layout) };
        if !ptr.is_null() {
            self.peak.fetch_max(self.used(), Ordering::Relaxed);
            self.allocations.fetch_add(1, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this `layout` (the
        // caller's contract), which got it from the inner heap.
        unsafe { GlobalAlloc::dealloc(&self.heap, ptr, layout) }
    }
}

/// The program's heap. It has no memory until [`init_heap`]; an
/// allocation that does not fit fails, and Rust's allocation-error
/// handler then panics (`panic-probe` logs it and halts).
#[global_allocator]
pub static HEAP: PeakHeap = PeakHeap::empty();

/// Hands the heap its memory, once: later calls, or a call with no
/// memory, leave it as it is.
pub fn init_heap(memory: &'static mut [MaybeUninit<u8>]) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if memory.is_empty() || DONE.swap(true, Ordering::Relaxed) {
        return;
    }
    // SAFETY: the guard above lets this run once (`LlffHeap::init` would
    // panic on a second call or on no memory); `memory` is valid and
    // borrowed for the rest of the program, so it belongs to the heap
    // alone from now on.
    unsafe { HEAP.heap.init(memory.as_mut_ptr() as usize, memory.len()) }
}
