//! The messages clients and the SFU exchange: one definition, postcard
//! encoded, for the desktop app, the intercom and the SFU alike.
//!
//! Every message on the wire is one version byte ([`VERSION`]) followed by
//! the postcard encoding of a [`ToServer`] or [`ToClient`]. Every variable
//! field has a bound ([`limits`]) that the decoder enforces before it
//! allocates, so a peer cannot make the other side reserve memory by
//! announcing a long length; and a whole message is at most
//! [`limits::MESSAGE`] bytes. Decoding never panics: anything else is a
//! [`WireError`].
//!
//! Each direction has two levels: the outer enum says which party handles a
//! message (the link, the room's log, media, signalling), the inner one what
//! it is. [`ToServer::Control`] holds exactly what the delivery service's
//! log takes ([`Up`]) and [`ToClient::Control`] exactly what it produces
//! ([`Down`]); the link's own messages are [`Open`] and [`LinkMsg`]. A
//! resume replays, and a client counts, the `Control` messages and nothing
//! else.
//!
//! Enum variants are encoded by position: new variants and fields go at the
//! end, and a change that reorders them changes [`VERSION`].
//!
//! Version 2 introduced the two levels (version 1 had one flat enum per
//! direction, and link errors counted for resume on one side only). There
//! were no deployed peers, so nothing speaks version 1 any more.
//!
//! The transport frames messages: a WebSocket binary frame each on desktop,
//! a 4-byte big-endian length prefix on the intercom's TCP link
//! ([`frame_len`]).

mod bounded;
mod down;
mod error;
mod framing;
mod ids;
pub mod limits;
mod log;
mod media;
#[cfg(test)]
mod samples;
mod up;

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

pub use bounded::{Blob, List};
pub use down::{Down, LinkMsg, ToClient};
pub use error::{ErrorCode, WireError};
pub use framing::{encode_framed, encode_media_framed_into, frame_len};
pub use ids::{ConnId, RoomName, TOKEN_LEN};
pub use log::{
    CommitMessage, Entry, GroupSnapshot, Presence, RoomSnapshot, SeatSnapshot, WaitingSnapshot,
};
pub use media::{Media, MediaRef, Signal, Transport};
pub use up::{Capabilities, Join, Open, ToServer, Up};

/// The protocol version: the first byte of every message. 2 since the
/// messages have two levels (see the module docs).
pub const VERSION: u8 = 2;

/// A message that travels on the wire.
pub trait Message: Serialize + for<'de> Deserialize<'de> + Sized {
    /// The version byte and the postcard encoding.
    ///
    /// # Errors
    /// [`WireError::TooLong`] when the result would exceed
    /// [`limits::MESSAGE`], so the receiver never sees one. Every field is
    /// bounded, but not every combination fits: a commit and a Welcome each
    /// near its own bound together exceed the limit.
    fn encode(&self) -> Result<Vec<u8>, WireError> {
        let out =
            postcard::to_extend(self, alloc::vec![VERSION]).map_err(|_| WireError::Malformed)?;
        if out.len() > limits::MESSAGE {
            return Err(WireError::TooLong(out.len()));
        }
        Ok(out)
    }

    /// The length [`Message::encode`] gives, without encoding.
    ///
    /// # Errors
    /// [`WireError::Malformed`] if the message cannot be encoded at all.
    fn encoded_len(&self) -> Result<usize, WireError> {
        postcard::experimental::serialized_size(self)
            .map(|n| n + 1)
            .map_err(|_| WireError::Malformed)
    }

    /// Reads one message that fills `bytes` exactly.
    ///
    /// # Errors
    /// A [`WireError`] saying why; never a panic.
    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        if bytes.len() > limits::MESSAGE {
            return Err(WireError::TooLong(bytes.len()));
        }
        let (message, rest) = postcard::take_from_bytes(body).map_err(|_| WireError::Malformed)?;
        if !rest.is_empty() {
            return Err(WireError::Trailing(rest.len()));
        }
        Ok(message)
    }
}

impl Message for ToServer {}
impl Message for ToClient {}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::samples::blob;
    use super::*;

    #[test]
    fn the_envelope_is_checked_first() {
        assert_eq!(ToServer::decode(&[]), Err(WireError::Empty));
        assert_eq!(ToClient::decode(&[]), Err(WireError::Empty));
        // Version 1, the flat messages before the two levels, is refused.
        assert_eq!(ToServer::decode(&[1, 6]), Err(WireError::Version(1)));
        assert_eq!(ToServer::decode(&[0]), Err(WireError::Version(0)));
        assert_eq!(
            ToClient::decode(&[0xff, 3, 0]),
            Err(WireError::Version(0xff))
        );
        assert_eq!(ToServer::decode(&[2, 1, 5, 0]), Err(WireError::Trailing(1)));
        assert_eq!(
            ToClient::decode(&[2, 0, 3, 0, 1, 2, 3]),
            Err(WireError::Trailing(3))
        );
    }

    #[test]
    fn varints_need_not_be_minimal() {
        // The value is what counts, and it encodes back in the short form.
        let long_form = ToServer::decode(&[2, 0x81, 0x00, 5]).unwrap();
        assert_eq!(long_form, ToServer::Control(Up::Leave));
        assert_eq!(long_form.encode().unwrap(), [2, 1, 5]);
    }

    #[test]
    fn messages_over_the_limit_are_too_long() {
        let mut bytes = vec![0; limits::MESSAGE + 1];
        bytes[0] = VERSION;
        assert_eq!(
            ToServer::decode(&bytes),
            Err(WireError::TooLong(limits::MESSAGE + 1))
        );
        assert_eq!(
            ToClient::decode(&bytes),
            Err(WireError::TooLong(limits::MESSAGE + 1))
        );
        // At the limit it is the content that counts: zeros are an `Open`
        // `Join` with an empty room name.
        assert_eq!(
            ToServer::decode(&bytes[..limits::MESSAGE]),
            Err(WireError::Malformed)
        );
        bytes[0] = 3;
        assert_eq!(ToServer::decode(&bytes), Err(WireError::Version(3)));

        // A commit and a Welcome each at their own bound do not fit one
        // message together: the sender learns it from `encode`. Version,
        // two tags, epoch, adds, removes, 3 + 65536 commit bytes, Some, 3 +
        // 196608 Welcome bytes.
        let too_big = ToServer::Control(Up::Commit(CommitMessage {
            epoch: 0,
            adds: List::default(),
            removes: List::default(),
            commit: blob(&[0; limits::COMMIT]),
            welcome: Some(blob(&vec![0; limits::WELCOME])),
        }));
        let len = 6 + 3 + limits::COMMIT + 1 + 3 + limits::WELCOME;
        assert_eq!(too_big.encode(), Err(WireError::TooLong(len)));
        assert_eq!(encode_framed(&too_big), Err(WireError::TooLong(len)));
    }
}
