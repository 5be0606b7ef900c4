//! One deterministic network for every harness of the designated
//! committer: the delivery service ([`Room`](satsuma_core::committer::Room)),
//! member endpoints around any MLS [`Group`](satsuma_core::committer::Group)
//! (real sessions, or a model checker's model), and the messages between
//! them, in the spirit of quinn's test `Pair` and str0m's `netem`.
//!
//! - **Routing, once.** A member's `Join` opens a connection, anything
//!   else travels on the connection it was sent on; the room's output is
//!   drained after every input and sent to the connections it names then.
//! - **Links.** One FIFO queue each way per endpoint; each message carries
//!   the connection it belongs to, so what a member sent before it joined
//!   again still arrives, and what the room sends an old connection is
//!   dropped.
//! - **Faults.** Seeded delay, loss and duplication ([`Faults`]), lost
//!   Welcomes, crashes ([`Net::crash`]) and restarts, and a room that
//!   wrongly believes a connection gone ([`Net::disconnect`]). The same
//!   seed replays a run exactly.
//! - **Control.** A virtual clock; one message on one link at a time, the
//!   oldest message either way, everything until nothing moves, or until
//!   the room's deadlines have passed and it is quiet ([`Net::settle`]).
//! - **Fixtures.** [`Net::settled`]: a room with members in one group;
//!   [`fixtures`]: members around real sessions.
//!
//! It checks little about the protocol itself (a harness does, through a
//! [`Watch`] on every member input and the log, [`Net::log`]); what every
//! harness relies on it checks after every room input: the log has no gap,
//! and the members the room announced (`RoomEvent`s) are its log's present
//! members.
//!
//! # Example
//!
//! ```
//! use satsuma_core::committer::RoomConfig;
//! use satsuma_core::mls::{Session, SessionConfig};
//! use satsuma_sim::{Net, fixtures::desktop};
//!
//! let alice = desktop("alice", 1, SessionConfig::default());
//! let bob = desktop("bob", 2, SessionConfig::default());
//! let mut net: Net<Session> = Net::settled(RoomConfig::default(), [alice, bob]);
//! let carol = net.add(Some(desktop("carol", 3, SessionConfig::default())));
//! net.lose_next_welcome(carol);
//! net.join(carol).unwrap();
//! net.settle();
//! // Carol noticed her Welcome never came, and was added again.
//! assert_eq!(net.room().state().epoch(), Some(3));
//! let a = net.member(0).unwrap().group().safety_number().unwrap();
//! let c = net.member(carol).unwrap().group().safety_number().unwrap();
//! assert_eq!(a, c);
//! ```
//!
//! # Panics
//!
//! A harness's tool: it panics when the code under test breaks what every
//! harness relies on (a log with a gap, membership events that disagree
//! with the log, bytes that do not decode), and when
//! a message keeps moving forever ([`Net::run`], [`Net::settle`]).
// A failed expectation here is a failed test.
#![allow(clippy::expect_used, clippy::panic)]
#![warn(missing_docs)]

pub mod fixtures;
mod net;
mod rng;

pub use net::{Faults, Net, NetStats, Watch};
pub use rng::Rng;
