//! What the server keeps with each seat besides the resume state (which is
//! `core::resume::Seats`): its transport and the link carrying it, if any.

use bytes::Bytes;
use satsuma_core::resume;
use satsuma_core::wire::Transport;

use super::LinkTx;

/// Every seat of a room, with the server's part of each.
pub(super) type Seats = resume::Seats<Bytes, Seat>;

#[derive(Debug)]
pub(super) struct Seat {
    pub transport: Transport,
    pub link: Option<LinkTx>,
}
