//! The resume protocol, sans-IO: a connection lost within the grace period
//! is taken over by a new one without a new MLS epoch, and neither side
//! loses a control message in either direction.
//!
//! Both directions work alike. Each side counts the control messages it
//! has *received* on the seat, and keeps the ones it *sent* (the newest,
//! bounded) until the other side's count shows they arrived. On a resume
//! the member presents its count in [`Open::Resume`]; the delivery service
//! answers [`LinkMsg::Resumed`] with its own count and replays what the
//! member missed; the member then replays what the delivery service
//! missed. What is counted is exactly the control messages:
//! [`ToClient::Control`] down and [`ToServer::Control`] up, never the
//! link's own messages, media or signalling.
//!
//! - [`Seats`]: the delivery service's side: one seat per connection with
//!   its token, the history it can replay, its count of the member's
//!   messages, and the grace after the link is lost;
//! - [`Cursor`]: the member's side: the seat's token and both counts, and
//!   the uplink messages not yet known to have arrived.
//!
//! [`Open::Resume`]: crate::wire::Open::Resume
//! [`LinkMsg::Resumed`]: crate::wire::LinkMsg::Resumed
//! [`ToClient::Control`]: crate::wire::ToClient::Control
//! [`ToServer::Control`]: crate::wire::ToServer::Control

mod cursor;
mod history;
mod seats;

use core::fmt;

pub use cursor::{Cursor, CursorLimits};
pub use seats::{Resumed, SeatLimits, Seats};

use crate::wire::TOKEN_LEN;

/// The secret that lets a new connection take a seat over.
pub type Token = [u8; TOKEN_LEN];

/// Why a resume was refused. The member then joins afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ResumeError {
    /// No such seat: it was never opened, or its grace ran out.
    UnknownSeat,
    /// The token does not match the seat's (or the seat has none).
    BadToken,
    /// The other side's count is one this side cannot replay from: older
    /// than the oldest message kept (it fell out of the history), or newer
    /// than what was sent (a forged or stale position).
    Position {
        /// The count presented.
        received: u64,
        /// The oldest position this side can replay from.
        oldest: u64,
        /// How many messages this side has sent.
        sent: u64,
    },
}

impl fmt::Display for ResumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownSeat => f.write_str("no seat to resume: join afresh"),
            Self::BadToken => f.write_str("the resume token does not match"),
            Self::Position {
                received,
                oldest,
                sent,
            } => write!(
                f,
                "cannot replay from {received}: the history holds {oldest}..{sent}"
            ),
        }
    }
}

impl core::error::Error for ResumeError {}
