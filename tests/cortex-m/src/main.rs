//! Runs Satsuma's portable test suite (`tests/portable`) on a Cortex-M4:
//! QEMU's `mps2-an386` board, booted by `cargo run --release` (see
//! `.cargo/config.toml`). Output goes over semihosting in libtest's format,
//! so CI reads the same `test result:` line as from `cargo test`; the
//! semihosting exit code is 0 when every test passed and 1 otherwise.
//!
//! It also prints the heap's and the stack's high-water marks, the numbers
//! that size a real microcontroller's RAM for the core.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::fmt::Write as _;
use core::mem::MaybeUninit;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicUsize, Ordering};

use cortex_m_rt::{ExceptionFrame, entry, exception};
use cortex_m_semihosting::{debug, hio, hprintln};
use embedded_alloc::LlffHeap;

/// Bytes of RAM given to the heap (a static in `.bss`). The rest of the
/// board's 4 MiB of data RAM, less `.data` and `.bss`, is stack.
const HEAP_SIZE: usize = 1024 * 1024;

/// `LlffHeap` plus the high-water marks of the whole run and of the current
/// test.
struct PeakHeap {
    heap: LlffHeap,
    /// Where the heap starts, once [`PeakHeap::init`] ran.
    start: AtomicUsize,
    /// Most bytes in use at once since the last [`PeakHeap::reset_peak`].
    peak: AtomicUsize,
    /// Highest heap offset ever handed out: what fragmentation really cost.
    top: AtomicUsize,
}

impl PeakHeap {
    const fn empty() -> Self {
        Self {
            heap: LlffHeap::empty(),
            start: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            top: AtomicUsize::new(0),
        }
    }

    /// Hands the heap its memory.
    ///
    /// # Safety
    ///
    /// Once only, before the first allocation, with `size` bytes at `start`
    /// that nothing else uses for the rest of the program.
    unsafe fn init(&self, start: usize, size: usize) {
        self.start.store(start, Ordering::Relaxed);
        // SAFETY: the caller's contract is `LlffHeap::init`'s.
        unsafe { self.heap.init(start, size) }
    }

    /// Bytes in use now.
    fn used(&self) -> usize {
        self.heap.used()
    }

    /// The peak since the last reset; then starts a new peak from now.
    fn reset_peak(&self) -> usize {
        self.peak.swap(self.used(), Ordering::Relaxed)
    }

    /// Highest offset into the heap ever allocated.
    fn top(&self) -> usize {
        self.top.load(Ordering::Relaxed)
    }
}

// SAFETY: every allocation and deallocation is forwarded unchanged to
// `LlffHeap`, whose `GlobalAlloc` implementation upholds the contract; the
// wrapper only reads counters afterwards and never touches the memory.
unsafe impl GlobalAlloc for PeakHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for us,
        // and so for the inner heap.
        let ptr = unsafe { GlobalAlloc::alloc(&self.heap, layout) };
        if !ptr.is_null() {
            self.peak.fetch_max(self.used(), Ordering::Relaxed);
            let end = (ptr as usize + layout.size()) - self.start.load(Ordering::Relaxed);
            self.top.fetch_max(end, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this `layout` (the
        // caller's contract), which got it from the inner heap.
        unsafe { GlobalAlloc::dealloc(&self.heap, ptr, layout) }
    }
}

#[global_allocator]
static HEAP: PeakHeap = PeakHeap::empty();

// Bounds of the stack, from cortex-m-rt's `link.x`: it grows down from
// `_stack_start` (the top of RAM) towards `_stack_end` (just past `.bss`).
// With the `paint-stack` feature, the reset handler fills that range with
// `STACK_PAINT_VALUE` before `main`.
unsafe extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// Deepest the stack has gone so far, in bytes, and the stack's size: the
/// paint that is left untouched above `_stack_end` was never reached.
fn stack_high_water() -> (usize, usize) {
    let bottom = (&raw const _stack_end).cast::<u32>();
    let top = (&raw const _stack_start).cast::<u32>();
    let mut p = bottom;
    // SAFETY: `p` walks whole, aligned words from `_stack_end` up to at most
    // `_stack_start`, all of it RAM reserved for the stack; the volatile read
    // is there because the compiler cannot know the reset handler painted it.
    while p < top && unsafe { p.read_volatile() } == cortex_m_rt::STACK_PAINT_VALUE {
        // SAFETY: `p < top`, so one word further is at most `top`, still
        // inside the same region.
        p = unsafe { p.add(1) };
    }
    (top as usize - p as usize, top as usize - bottom as usize)
}

#[entry]
fn main() -> ! {
    {
        static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
        // SAFETY: runs once, before any allocation; `#[entry]` runs once and
        // this is the only use of `HEAP_MEM`, which the heap then owns.
        unsafe { HEAP.init((&raw mut HEAP_MEM) as usize, HEAP_SIZE) }
    }

    let total = satsuma_portable_tests::tests().count();
    hprintln!();
    hprintln!("running {} tests", total);

    let mut failures: Vec<&'static str> = Vec::new();
    let mut worst = (0, "");
    HEAP.reset_peak();
    let summary = satsuma_portable_tests::run_all(|test, outcome| {
        let peak = HEAP.reset_peak();
        if peak > worst.0 {
            worst = (peak, test.name);
        }
        match outcome {
            Ok(()) => {
                PASSED.fetch_add(1, Ordering::Relaxed);
                hprintln!("test {} ... ok", test.name);
            }
            Err(failure) => {
                FAILED.fetch_add(1, Ordering::Relaxed);
                hprintln!("test {} ... FAILED", test.name);
                hprintln!("{}", failure);
                failures.push(test.name);
            }
        }
    });

    if !failures.is_empty() {
        hprintln!();
        hprintln!("failures:");
        for name in &failures {
            hprintln!("    {}", name);
        }
    }

    let (stack_used, stack_size) = stack_high_water();
    hprintln!();
    hprintln!(
        "heap high-water: {} of {} bytes in use at once (in {}); highest offset touched {}",
        worst.0,
        HEAP_SIZE,
        worst.1,
        HEAP.top()
    );
    hprintln!("stack high-water: {} of {} bytes", stack_used, stack_size);

    let ok = summary.failed == 0;
    hprintln!();
    hprintln!(
        "test result: {}. {} passed; {} failed; 0 ignored; 0 measured; 0 filtered out",
        if ok { "ok" } else { "FAILED" },
        summary.passed,
        summary.failed
    );

    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached without a semihosting host; QEMU's side has a timeout.
    loop {
        cortex_m::asm::wfi();
    }
}

/// Tests that have passed and failed so far, for [`die`].
static PASSED: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);

/// Reports the test that was running as failed with `args` as its message,
/// and the run as failed, in libtest's format (there is no unwinding to go
/// on with the next test). Prints on a fresh semihosting stdout, not
/// `hprintln!`'s, which the fault may have interrupted; then exits QEMU
/// with failure.
fn die(args: core::fmt::Arguments<'_>) -> ! {
    let passed = PASSED.load(Ordering::Relaxed);
    let failed = FAILED.load(Ordering::Relaxed);
    if let Ok(mut out) = hio::hstdout() {
        // The test running is the one after those reported; none if the
        // fault came before or after the tests.
        let running = satsuma_portable_tests::tests().nth(passed + failed);
        let failed = failed + usize::from(running.is_some());
        if let Some(test) = running {
            let _ = writeln!(out, "test {} ... FAILED", test.name);
        }
        let _ = out.write_fmt(args);
        let _ = write!(
            out,
            "\n\ntest result: FAILED. {passed} passed; {failed} failed; \
             0 ignored; 0 measured; 0 filtered out\n"
        );
    }
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    die(format_args!("{info}"))
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    // SAFETY: reading the System Control Block's fault status registers has
    // no side effects, and nothing else runs while the fault is handled.
    let (cfsr, hfsr, mmfar, bfar) = unsafe {
        let scb = &*cortex_m::peripheral::SCB::PTR;
        (
            scb.cfsr.read(),
            scb.hfsr.read(),
            scb.mmfar.read(),
            scb.bfar.read(),
        )
    };
    die(format_args!(
        "HardFault at pc {:#010x} (lr {:#010x}): CFSR {cfsr:#010x} HFSR {hfsr:#010x} \
         MMFAR {mmfar:#010x} BFAR {bfar:#010x}",
        frame.pc(),
        frame.lr(),
    ))
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    die(format_args!("unexpected exception or interrupt {irqn}"))
}
