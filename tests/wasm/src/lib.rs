//! Runs Satsuma's portable test suite (`tests/portable`) on WebAssembly.
//!
//! Built for `wasm32-unknown-unknown` (see `scripts/run-wasm-tests.sh`), the
//! module imports `env.report(ptr, len)`, which receives each line of output
//! in libtest's format as UTF-8, and exports `run_tests() -> u32`, which runs
//! every test and returns how many failed; `tests/wasm/run.mjs` drives it
//! under Node. On other targets only the target-independent runner below is
//! compiled, so the workspace still builds and lints on the host; the
//! portable tests run there as ordinary `cargo test` tests instead.
// The wasm ABI needs `unsafe`: an imported host function fed raw pointers,
// an unmangled export, and a counting global allocator. Each block says why
// it is sound.
#![allow(unsafe_code)]

use satsuma_portable_tests::{Summary, Test};

/// Runs every portable test, handing `line` each line of output in
/// libtest's format: `running N tests`, `test NAME ... ok` or `... FAILED`
/// followed by the failure, the failures' names, then `notes()` (after the
/// tests, before the summary) and `test result: ...` last. `after_test` is
/// told each test's name and whether it passed as it finishes, before its
/// line is printed.
pub fn run(
    mut line: impl FnMut(&str),
    mut after_test: impl FnMut(&'static str, bool),
    notes: impl FnOnce() -> Vec<String>,
) -> Summary {
    let total = satsuma_portable_tests::tests().count();
    line("");
    line(&format!("running {total} tests"));
    let mut failures = Vec::new();
    let summary = satsuma_portable_tests::run_all(|test: &Test, outcome| {
        after_test(test.name, outcome.is_ok());
        match outcome {
            Ok(()) => line(&format!("test {} ... ok", test.name)),
            Err(failure) => {
                line(&format!("test {} ... FAILED", test.name));
                line(&failure.to_string());
                failures.push(test.name);
            }
        }
    });
    if !failures.is_empty() {
        line("");
        line("failures:");
        for name in failures {
            line(&format!("    {name}"));
        }
    }
    let notes = notes();
    if !notes.is_empty() {
        line("");
        for note in notes {
            line(&note);
        }
    }
    line("");
    line(&summary_line(summary));
    summary
}

/// libtest's closing line for `summary`.
pub fn summary_line(summary: Summary) -> String {
    format!(
        "test result: {}. {} passed; {} failed; 0 ignored; 0 measured; 0 filtered out",
        if summary.failed == 0 { "ok" } else { "FAILED" },
        summary.passed,
        summary.failed
    )
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use satsuma_portable_tests::Summary;

    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        /// Prints one line: `len` bytes of UTF-8 at `ptr` in this module's
        /// memory, which the host only reads during the call.
        fn report(ptr: *const u8, len: usize);
    }

    fn emit(line: &str) {
        // SAFETY: `ptr` and `len` describe `line`, live and initialised for
        // the whole call; the host reads those bytes and keeps no reference.
        unsafe { report(line.as_ptr(), line.len()) }
    }

    /// `System` (dlmalloc on this target), counting the bytes in use.
    struct Counting;

    static IN_USE: AtomicUsize = AtomicUsize::new(0);
    /// Most bytes in use at once since the last test finished.
    static PEAK: AtomicUsize = AtomicUsize::new(0);

    fn allocated(size: usize) {
        let now = IN_USE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }

    // SAFETY: every call is forwarded unchanged to `System`, which upholds
    // `GlobalAlloc`'s contract; the wrapper only updates counters.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller upholds `alloc`'s contract for us, and so
            // for `System`.
            let ptr = unsafe { System.alloc(layout) };
            if !ptr.is_null() {
                allocated(layout.size());
            }
            ptr
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: as for `alloc`.
            let ptr = unsafe { System.alloc_zeroed(layout) };
            if !ptr.is_null() {
                allocated(layout.size());
            }
            ptr
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `System` through this wrapper with
            // `layout` (the caller's contract).
            unsafe { System.dealloc(ptr, layout) };
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: `ptr` came from `System` through this wrapper with
            // `layout`, and `new_size` is valid (the caller's contract).
            let new = unsafe { System.realloc(ptr, layout, new_size) };
            if !new.is_null() {
                IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
                allocated(new_size);
            }
            new
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    /// Tests finished so far, for the panic hook to name the one running.
    static FINISHED: AtomicUsize = AtomicUsize::new(0);
    static FAILED: AtomicUsize = AtomicUsize::new(0);

    /// Runs every portable test, printing through `env.report`; returns how
    /// many failed. A panic (which aborts: this target does not unwind)
    /// reports the running test as failed and a failed summary first, then
    /// traps.
    #[unsafe(no_mangle)]
    pub extern "C" fn run_tests() -> u32 {
        std::panic::set_hook(Box::new(|info| {
            let finished = FINISHED.load(Ordering::Relaxed);
            let failed = FAILED.load(Ordering::Relaxed);
            let running = satsuma_portable_tests::tests().nth(finished);
            if let Some(test) = running {
                emit(&format!("test {} ... FAILED", test.name));
            }
            emit(&info.to_string());
            emit("");
            emit(&super::summary_line(Summary {
                passed: finished - failed,
                failed: failed + usize::from(running.is_some()),
            }));
        }));

        // Most bytes in use during one test, and that test.
        let worst = Cell::new((0, ""));
        PEAK.store(IN_USE.load(Ordering::Relaxed), Ordering::Relaxed);
        let summary = super::run(
            emit,
            |name, passed| {
                let peak = PEAK.swap(IN_USE.load(Ordering::Relaxed), Ordering::Relaxed);
                if peak > worst.get().0 {
                    worst.set((peak, name));
                }
                FINISHED.fetch_add(1, Ordering::Relaxed);
                if !passed {
                    FAILED.fetch_add(1, Ordering::Relaxed);
                }
            },
            || {
                let (peak, name) = worst.get();
                let pages = core::arch::wasm32::memory_size(0);
                vec![
                    format!("heap high-water: {peak} bytes in use at once (in {name})"),
                    format!("linear memory: {} KiB", pages * 64),
                ]
            },
        );
        u32::try_from(summary.failed).unwrap_or(u32::MAX)
    }
}
