//! An exhaustive model checker's pieces for Satsuma's designated committer:
//! the real [`Member`](satsuma_core::committer::Member) and
//! [`Room`](satsuma_core::committer::Room) state machines, with MLS replaced
//! by [`ModelGroup`] and the network by the queues of a [`World`].
//!
//! It does not explore anything itself: `tests/checker.rs` walks every
//! reachable [`World`] breadth first; a fuzz target can replay random
//! [`Action`] sequences against the same [`World`].
//!
//! # Run loop
//!
//! ```
//! use satsuma_model::{Action, Budgets, Config, MemberSetup, World};
//!
//! let mut world = World::new(Config {
//!     members: vec![MemberSetup::DESKTOP; 2],
//!     budgets: Budgets { joins: 2, ..Budgets::default() },
//!     max_stalls: 1,
//!     max_seq: 20,
//!     mutation: None,
//! });
//! // Always the first enabled action: both join, then the system settles.
//! while let Some(&action) = world.actions().first() {
//!     world.step(action).unwrap();
//!     world.check().unwrap();
//! }
//! assert!(world.converged());
//! assert_eq!(world.room().state().epoch(), Some(1));
//! ```
//!
//! # Panics
//!
//! [`World::step`] panics only if the code under test does (or when given
//! an action [`World::actions`] did not offer): a panic is a failed check.

#![warn(missing_docs)]

mod model_group;
mod world;

pub use model_group::{MAX_KEY_PACKAGES, ModelGroup};
pub use world::{Action, Budgets, Churn, Config, MemberSetup, Mutation, NOW, Violation, World};
