//! What names a connection and a room, and the resume token's length.

use alloc::string::String;
use core::fmt;

use serde::{Deserialize, Serialize};

use super::{WireError, limits};

/// The length of a resume token.
pub const TOKEN_LEN: usize = 16;

/// A connection to a room, numbered by the delivery service in the order it
/// joined; never reused within a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A room's name: 1 to 64 bytes of ASCII letters, digits, `-`, `_` and `.`,
/// so it is safe in a URL path and a log line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RoomName(String);

impl RoomName {
    /// `name`, if it is a valid room name.
    ///
    /// # Errors
    /// [`WireError::RoomName`].
    pub fn new(name: &str) -> Result<Self, WireError> {
        let valid = !name.is_empty()
            && name.len() <= limits::ROOM_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if valid {
            Ok(Self(String::from(name)))
        } else {
            Err(WireError::RoomName)
        }
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for RoomName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <&str>::deserialize(deserializer)?;
        Self::new(name).map_err(|_| serde::de::Error::custom("invalid room name"))
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::wire::{Message, ToServer, Up, VERSION};

    /// A `Join` for room `name`, with an empty key package, built by hand.
    fn join_bytes(name: &[u8]) -> Vec<u8> {
        // `Open`, `Join`, the name's length.
        let mut bytes = vec![VERSION, 0, 0, u8::try_from(name.len()).unwrap()];
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(&[0, 1, 0]);
        bytes
    }

    #[test]
    fn room_names_keep_to_their_alphabet_and_length() {
        // Room names: 64 characters of the alphabet pass; a space, a 65th
        // character, an empty name or bytes that are not UTF-8 do not.
        let longest = [b'a'; limits::ROOM_NAME];
        assert!(ToServer::decode(&join_bytes(&longest)).is_ok());
        assert!(ToServer::decode(&join_bytes(b"A-z_0.9")).is_ok());
        for bad in [
            &b"a b"[..],
            &[b'a'; limits::ROOM_NAME + 1],
            b"",
            b"caf\xc3\xa9",
            b"\xff",
            b"room/1",
        ] {
            assert_eq!(
                ToServer::decode(&join_bytes(bad)),
                Err(WireError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(RoomName::new("a b"), Err(WireError::RoomName));
        assert_eq!(RoomName::new(""), Err(WireError::RoomName));
        let name = core::str::from_utf8(&longest).unwrap();
        assert_eq!(RoomName::new(name).unwrap().as_str(), name);
        assert_eq!(
            RoomName::new(core::str::from_utf8(&[b'a'; limits::ROOM_NAME + 1]).unwrap()),
            Err(WireError::RoomName)
        );
    }

    #[test]
    fn a_conn_id_is_a_varint_of_at_most_64_bits() {
        assert_eq!(
            ToServer::decode(&[
                2, 1, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02
            ]),
            Err(WireError::Malformed)
        );
        assert_eq!(
            ToServer::decode(&[
                2, 1, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]),
            Ok(ToServer::Control(Up::Refuse {
                conn: ConnId(u64::MAX)
            }))
        );
    }
}
