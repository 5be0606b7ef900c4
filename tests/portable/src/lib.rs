//! The core test suite that runs unchanged on every target: x86_64 (as
//! ordinary `cargo test` tests), a Cortex-M4 in QEMU (`portable-tests` in
//! `firmware-example/boards/mps2-an386`), and WebAssembly (`tests/wasm`). It
//! holds the official RFC 9605 (SFrame) and RFC 9420 (MLS, cipher suite 1)
//! vectors and the behaviour a user would notice: keys changing without
//! losing frames, replays refused, clear bytes authenticated.
//!
//! A test is a plain `fn() -> Result<(), Failure>`; [`TESTS`] lists them for
//! the runners that have no libtest.
#![cfg_attr(not(test), no_std)]
#![allow(clippy::cast_possible_truncation)] // Made-up test bytes wrap on purpose.

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

mod keyring;
mod media;
mod mls_security;
mod mls_vectors;
mod resume;
mod vectors;

/// Why a test failed, as a message for the runner to print.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One test: its name and its body.
#[derive(Debug, Clone, Copy)]
pub struct Test {
    /// `module::function`.
    pub name: &'static str,
    /// Runs the test.
    pub run: fn() -> Result<(), Failure>,
}

/// Turns any displayable error into a [`Failure`] with context.
pub(crate) trait Context<T> {
    fn context(self, what: &str) -> Result<T, Failure>;
}

impl<T, E: fmt::Debug> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, Failure> {
        self.map_err(|e| Failure(alloc::format!("{what}: {e:?}")))
    }
}

/// Fails the test with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::Failure(alloc::format!($($msg)+)));
        }
    };
}

/// Fails the test unless both sides are equal, printing both.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($msg:tt)+) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err($crate::Failure(alloc::format!(
                "{}: left {:?} != right {:?}", alloc::format!($($msg)+), l, r
            )));
        }
    }};
}

/// Declares portable tests: each `fn` becomes a [`Test`] in the named
/// list, and, on the host, an ordinary `#[test]`.
macro_rules! portable_tests {
    ($list:ident: $(fn $name:ident() $body:block)*) => {
        $(
            pub(crate) fn $name() -> Result<(), $crate::Failure> $body
        )*

        pub(crate) const $list: &[$crate::Test] = &[
            $($crate::Test { name: concat!(module_path!(), "::", stringify!($name)), run: $name },)*
        ];

        #[cfg(test)]
        mod host {
            $(
                #[test]
                fn $name() {
                    if let Err(failure) = super::$name() {
                        panic!("{failure}");
                    }
                }
            )*
        }
    };
}
pub(crate) use portable_tests;

/// Every portable test.
pub fn tests() -> impl Iterator<Item = &'static Test> {
    vectors::TESTS
        .iter()
        .chain(keyring::TESTS)
        .chain(media::TESTS)
        .chain(mls_vectors::TESTS)
        .chain(mls_security::TESTS)
        .chain(resume::TESTS)
}

/// Counts of a whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Tests that passed.
    pub passed: usize,
    /// Tests that failed.
    pub failed: usize,
}

/// Runs every test, telling `report` each name and outcome, and returns the
/// counts. Runners print in cargo's format so CI reads the same summary line
/// from every target.
pub fn run_all(mut report: impl FnMut(&Test, Result<(), Failure>)) -> Summary {
    let mut summary = Summary::default();
    for test in tests() {
        let outcome = (test.run)();
        if outcome.is_ok() {
            summary.passed += 1;
        } else {
            summary.failed += 1;
        }
        report(test, outcome);
    }
    summary
}

/// Decodes a hex string from the vector files.
pub(crate) fn hex(s: &str) -> Result<Vec<u8>, Failure> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(Failure(alloc::format!("bad hex digit {c:#x}"))),
    };
    ensure!(s.len().is_multiple_of(2), "odd-length hex string");
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}
