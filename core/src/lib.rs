//! Satsuma's protocol core: end-to-end protection of call media with SFrame
//! (RFC 9605), keyed per MLS epoch, and the per-codec rules that say what a
//! forwarding server may read.
//!
//! It does no network IO, reads no clock, draws no global randomness and
//! holds no global state: time comes in as [`Instant`], randomness from a
//! seed the platform supplies, bytes come in and go out through caller
//! buffers. The one IO it does is persistence: an [`mls::Session`] saves
//! its state through the caller's [`mls::Store`] synchronously, inside each
//! operation that changes it, because the SFrame send context must be
//! durable before the first frame of an epoch goes out (`docs/mls.md`).
//! Sockets, threads and runtimes belong to the drivers (`satsuma-sfu`, the
//! desktop shell, the intercom firmware).
//!
//! - [`sframe`]: frame encryption; [`media`]: what each codec leaves clear.
//! - [`mls`]: the MLS member whose epochs key the frames.
//! - [`committer`]: who commits joins and leaves, decided from the delivery
//!   service's ordered log; [`wire`]: the messages clients and the SFU
//!   exchange.
//!
//! # Example
//!
//! ```
//! use satsuma_core::sframe::{EpochSecret, KeyRing, KeyRingConfig};
//! use satsuma_core::media::Codec;
//! use satsuma_core::Instant;
//!
//! let base_key = [0x42; 16]; // MLS-Exporter("SFrame 1.0 Base Key", "", 16)
//! let epoch = |own_index| EpochSecret { epoch: 1, base_key: &base_key, group_size: 2, own_index };
//! let mut alice = KeyRing::new(KeyRingConfig::default())?;
//! let mut bob = KeyRing::new(KeyRingConfig::default())?;
//! alice.install_epoch(Instant::ZERO, epoch(0))?;
//! bob.install_epoch(Instant::ZERO, epoch(1))?;
//!
//! let frame = [0xfc, 0xff, 0xfe]; // a 3-byte Opus DTX frame
//! let mut wire = [0u8; 64];
//! let n = Codec::Opus.protect(&mut alice, &frame, &mut wire)?;
//! let mut out = [0u8; 64];
//! let (opened, len) = Codec::Opus.unprotect(&mut bob, &wire[..n], &mut out)?;
//! assert_eq!((opened.sender, &out[..len]), (0, &frame[..]));
//! # Ok::<(), satsuma_core::Error>(())
//! ```
//!
//! # Features
//!
//! | feature | effect |
//! |---|---|
//! | `std` | conveniences for hosted targets; adds no behaviour |
//! | `defmt` | `defmt::Format` for public types, for microcontroller logs |
//!
//! # Panics
//!
//! No input from a network, file or user makes this crate panic: every
//! refusal is an [`Error`]. Fuzz targets in `fuzz/` hold it to that.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod committer;
mod error;
pub mod link;
pub mod media;
pub mod mls;
pub mod resume;
pub mod sframe;
mod time;
pub mod wire;

pub use error::{Error, HeaderError, KidError, MediaError};
#[cfg(feature = "std")]
pub use time::Clock;
pub use time::{Instant, UnixTime};
