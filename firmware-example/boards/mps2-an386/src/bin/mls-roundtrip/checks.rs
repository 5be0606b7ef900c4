//! Checks the run prints as it makes them: `check … ok` or `check … FAILED`.
//! A scenario stops at its first failure (what follows would depend on it)
//! and the binary exits with failure.

use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

use cortex_m_semihosting::hprintln;

static PASSED: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);

/// A check failed (already printed); the scenario stops.
#[derive(Debug)]
pub struct Failed;

/// Records `ok` for the check described by `what`.
pub fn check(ok: bool, what: fmt::Arguments<'_>) -> Result<(), Failed> {
    if ok {
        PASSED.fetch_add(1, Ordering::Relaxed);
        hprintln!("check {} ... ok", what);
        Ok(())
    } else {
        FAILED.fetch_add(1, Ordering::Relaxed);
        hprintln!("check {} ... FAILED", what);
        Err(Failed)
    }
}

/// An operation the scenario needs: its value, or a failed check that says
/// which operation and why.
pub fn need<T, E: fmt::Display>(what: &str, result: Result<T, E>) -> Result<T, Failed> {
    result.map_err(|e| {
        FAILED.fetch_add(1, Ordering::Relaxed);
        hprintln!("check {} ... FAILED: {}", what, e);
        Failed
    })
}

/// Checks passed and failed so far.
pub fn counts() -> (usize, usize) {
    (
        PASSED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed),
    )
}
