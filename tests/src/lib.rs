//! Satsuma's cross-cutting tests live in `tests/`: today, that sealing and
//! opening media frames allocates nothing after set-up. The suite that runs
//! on every target is the sibling crate `satsuma-portable-tests`.
