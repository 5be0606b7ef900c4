//! Satsuma's std client engine: what a desktop client needs around
//! `satsuma-core` from the operating system.
//!
//! - [`FileStore`]: a member's state ([`satsuma_core::mls::Store`]) in one
//!   file in the OS data directory, replaced atomically, checksummed,
//!   readable by its user only, and locked so that two processes never run
//!   the same member.
//! - [`os_seeded_crypto`]: the MLS crypto provider, seeded from the OS
//!   entropy source.
//! - [`Call`]: a member in a call on an SFU. Audio (Opus, or G.711/G.722
//!   with an intercom) and VP8 video are encoded, SFrame-sealed with the
//!   group's keys and sent over WebRTC; every other member's frames are
//!   opened, decoded and played out through a [`jitter`] buffer, and
//!   [`events`] tell the app about epochs and safety numbers, members and
//!   trust, media statistics and pictures.
//! - [`media`]: the codecs (Opus, G.711, G.722 and VP8 through libvpx) and
//!   test signals (a tone, a numbered moving picture) that survive them.
//! - `satsuma-headless`: the engine as a command-line member that prints
//!   one JSON event per line, for tests and bots.
//!
//! - [`devices`]: microphones and speakers through `cpal` (PulseAudio, or
//!   ALSA), listed by name and switched during a call.
//!
//! - [`host`]: a call hosted on this machine with no server set up
//!   (`satsuma-sfu` in this process), with the addresses to share.
//! - [`camera`]: V4L2 cameras, their pictures converted to I420; the
//!   test pattern when there is none.
//!
//! It decides nothing about the protocol (that is `satsuma-core`'s job).
//!
//! # Example
//!
//! ```no_run
//! use satsuma_core::Instant;
//! use satsuma_core::mls::{MemberInfo, Session, SessionConfig};
//! use satsuma_engine::{FileStore, os_seeded_crypto};
//!
//! let now = Instant::ZERO; // the engine's monotonic clock, converted
//! let store = FileStore::for_profile("default")?;
//! let mut session = if store.has_record() {
//!     Session::resume(now, os_seeded_crypto()?, SessionConfig::default(), store)?
//! } else {
//!     let me = MemberInfo::new("Ada", "laptop")?;
//!     Session::create(os_seeded_crypto()?, me, SessionConfig::default(), store)?
//! };
//! let key_package = session.key_package()?; // saved to disk before it returns
//! # let _ = key_package;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! None.
//!
//! # Panics
//!
//! Nothing here panics on the contents of a file or on a failing file
//! system: a damaged state file is [`StoreError::Corrupt`](satsuma_core::mls::StoreError::Corrupt),
//! a failing disk [`StoreError::Io`](satsuma_core::mls::StoreError::Io).
#![warn(missing_docs)]

mod call;
pub mod camera;
mod crypto;
pub mod devices;
mod error;
pub mod events;
pub mod host;
pub mod jitter;
pub mod media;
mod source;
mod store;

pub use call::{AudioOutput, Call, CallConfig, CallError, Identity, VideoFormat};
pub use crypto::os_seeded_crypto;
pub use error::Error;
pub use source::{AudioInput, VideoInput, WavError};
pub use store::{FILE_NAME, FileStore, HEADER_LEN, MAX_RECORD_LEN, data_dir};
