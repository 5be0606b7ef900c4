//! Why the SFU refused something, and why bytes are not a message.

use core::fmt;

use serde::{Deserialize, Serialize};

use super::{VERSION, limits};

/// Why the SFU refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ErrorCode {
    /// The message could not be decoded.
    Malformed,
    /// A message that makes no sense in this connection's state.
    Unexpected,
    /// The room is full.
    RoomFull,
    /// The server has no room for more rooms or connections.
    Overloaded,
    /// The committer could not use this connection's key package.
    KeyPackageRefused,
    /// Too many messages.
    RateLimited,
    /// The connection is closed because it left or was replaced.
    Closed,
    /// A message or frame over the size limit.
    TooLarge,
    /// Nothing arrived for longer than the idle timeout.
    Idle,
    /// The server is shutting down; reconnect later.
    ShuttingDown,
    /// The seat could not be resumed (unknown, expired, wrong token or too
    /// far behind): join afresh.
    ResumeFailed,
    /// This connection has joined as many rooms as it may.
    TooManyRooms,
    /// Something went wrong inside the SFU.
    Internal,
}

impl ErrorCode {
    /// A stable name for logs and apps (`room_full`), which does not
    /// change with the variant's Rust spelling.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unexpected => "unexpected",
            Self::RoomFull => "room_full",
            Self::Overloaded => "overloaded",
            Self::KeyPackageRefused => "key_package_refused",
            Self::RateLimited => "rate_limited",
            Self::Closed => "closed",
            Self::TooLarge => "too_large",
            Self::Idle => "idle",
            Self::ShuttingDown => "shutting_down",
            Self::ResumeFailed => "resume_failed",
            Self::TooManyRooms => "too_many_rooms",
            Self::Internal => "internal",
        }
    }
}

/// Why bytes are not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum WireError {
    /// No bytes at all.
    Empty,
    /// The version byte is not [`VERSION`].
    Version(u8),
    /// The message is longer than [`limits::MESSAGE`].
    TooLong(usize),
    /// The bytes do not decode: truncated, an unknown variant, a field over
    /// its bound, or a bad room name.
    Malformed,
    /// Bytes are left over after the message.
    Trailing(usize),
    /// A room name that is empty, too long or has other characters.
    RoomName,
    /// The output buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty message"),
            Self::Version(v) => write!(
                f,
                "unsupported protocol version {v} (this side speaks {VERSION})"
            ),
            Self::TooLong(n) => write!(
                f,
                "message of {n} bytes exceeds the {} byte limit",
                limits::MESSAGE
            ),
            Self::Malformed => f.write_str("malformed message"),
            Self::Trailing(n) => write!(f, "{n} bytes after the end of the message"),
            Self::RoomName => f.write_str("room names are 1-64 characters of A-Z a-z 0-9 - _ ."),
            Self::BufferTooSmall => f.write_str("output buffer too small"),
        }
    }
}

impl core::error::Error for WireError {}

#[cfg(test)]
mod tests {
    use super::super::samples::blob;
    use super::*;
    use crate::wire::{LinkMsg, Message, ToClient};

    #[test]
    fn error_code_names_are_the_ones_apps_match() {
        assert_eq!(ErrorCode::RoomFull.name(), "room_full");
        assert_eq!(ErrorCode::KeyPackageRefused.name(), "key_package_refused");
        assert_eq!(ErrorCode::ShuttingDown.name(), "shutting_down");
    }

    #[test]
    fn an_error_code_is_its_position() {
        assert_eq!(
            ToClient::Link(LinkMsg::Error {
                code: ErrorCode::RoomFull,
                text: blob(b"full"),
            })
            .encode()
            .unwrap(),
            // Version 2, `Link`, `Error`, the code, the text.
            [2, 3, 3, 2, 4, b'f', b'u', b'l', b'l']
        );
        // An unknown error code.
        assert_eq!(
            ToClient::decode(&[2, 3, 3, 40, 0]),
            Err(WireError::Malformed)
        );
    }
}
