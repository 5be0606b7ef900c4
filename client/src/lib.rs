//! Satsuma's std client driver: what every client that is not a
//! microcontroller shares.
//!
//! - [`Client`]: a committer [`Member`](satsuma_core::committer::Member)
//!   driven over a real link to the SFU, a WebSocket for desktops or the
//!   intercom's TCP link, with resume after a lost link (same seat, the
//!   control messages missed sent again) and a fresh join when the seat is
//!   gone.
//! - [`rtc::RtcClient`]: a WebRTC peer that answers the SFU's offers,
//!   publishes one audio and one video track of opaque payloads (SFrame
//!   ciphertext) and hands every received packet over.
//!
//! What it does not do: devices, codecs, files or identity storage (the
//! desktop engine adds those on top); any server code (that is
//! `satsuma-sfu`); any protocol decision (those are `satsuma-core`'s).
//!
//! ```no_run
//! # async fn run(member: satsuma_core::committer::Member<satsuma_core::mls::Session>)
//! # -> Result<(), satsuma_client::ClientError> {
//! use satsuma_client::{Client, ClientEvent, Endpoint};
//! use satsuma_core::wire::RoomName;
//!
//! let sfu = Endpoint::WebSocket("127.0.0.1:8080".parse().expect("an address"));
//! let room = RoomName::new("kitchen").expect("a valid room name");
//! let (client, mut events) = Client::start(sfu, room, member).await?;
//! while let Some(event) = events.recv().await {
//!     if let ClientEvent::Closed = event {
//!         break;
//!     }
//! }
//! client.leave().await.ok();
//! # Ok(()) }
//! ```
//!
//! Features: none. Panics: none on input from the network; every failure
//! is a [`ClientError`] or a [`ClientEvent`].

#![warn(missing_docs)]

mod cancel;
mod client;
mod error;
mod link;
pub mod rtc;

pub use client::{Client, ClientEvent, ReceivedFrame, clock};
pub use error::{ClientError, LinkError};
pub use link::Endpoint;
