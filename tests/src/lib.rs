//! Satsuma's cross-cutting tests live in `tests/`: that sealing and opening
//! media frames allocates nothing after set-up, MLS interop, and the
//! designated committer driven with real MLS through a seeded simulation
//! and one scenario per failure it must survive. The suite that runs on
//! every target is the sibling crate `satsuma-portable-tests`.

pub mod checks;
pub mod churn;
pub mod world;
