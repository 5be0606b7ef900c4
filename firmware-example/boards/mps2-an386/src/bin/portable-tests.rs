//! Runs Satsuma's portable test suite (`tests/portable`) on a Cortex-M4:
//! QEMU's `mps2-an386` board, booted by `cargo run --release --bin
//! portable-tests` (see `.cargo/config.toml`). Output goes over semihosting
//! in libtest's format, so CI reads the same `test result:` line as from
//! `cargo test`; the semihosting exit code is 0 when every test passed and
//! 1 otherwise.
//!
//! It also prints the heap's and the stack's high-water marks, the numbers
//! that size a real microcontroller's RAM for the core.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicUsize, Ordering};

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use satsuma_board_mps2_an386::{self as board, HEAP, Stop};

/// Bytes of RAM given to the heap (a static in `.bss`). The rest of the
/// board's 4 MiB of data RAM, less `.data` and `.bss`, is stack.
const HEAP_SIZE: usize = 1024 * 1024;

#[entry]
fn main() -> ! {
    static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
    board::init_heap(HEAP_MEM);
    board::on_stop(report_stop);

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

    let (stack_used, stack_size) = board::stack_high_water();
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
    board::exit(ok)
}

/// Tests that have passed and failed so far, for [`report_stop`].
static PASSED: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);

/// Reports the test that was running as failed with the reason the program
/// stopped as its message, and the run as failed, in libtest's format
/// (there is no unwinding to go on with the next test).
fn report_stop(out: &mut dyn fmt::Write, stop: &Stop<'_>) {
    let passed = PASSED.load(Ordering::Relaxed);
    let failed = FAILED.load(Ordering::Relaxed);
    // The test running is the one after those reported; none if the
    // program stopped before or after the tests.
    let running = satsuma_portable_tests::tests().nth(passed + failed);
    let failed = failed + usize::from(running.is_some());
    if let Some(test) = running {
        let _ = writeln!(out, "test {} ... FAILED", test.name);
    }
    let _ = write!(
        out,
        "{stop}\n\ntest result: FAILED. {passed} passed; {failed} failed; \
         0 ignored; 0 measured; 0 filtered out\n"
    );
}
