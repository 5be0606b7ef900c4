//! The SFrame header (RFC 9605 §4.3): a config byte, then the KID and the CTR
//! as minimal big-endian integers.
//!
//! ```text
//!  0 1 2 3 4 5 6 7
//! +-+-+-+-+-+-+-+-+------------+------------+
//! |X|  K  |Y|  C  |   KID...   |   CTR...   |
//! +-+-+-+-+-+-+-+-+------------+------------+
//! ```
//!
//! A value below 8 sits in the config byte (flag 0); otherwise the flag is 1,
//! the 3-bit field holds `length - 1`, and the value follows in exactly the
//! minimal number of bytes. [`Header::parse`] refuses non-minimal encodings so
//! that every (KID, CTR) pair has exactly one header, and therefore exactly one
//! AAD: a relay cannot re-encode a header without breaking authentication.

use crate::error::{Error, HeaderError};

/// The longest header: config byte + 8-byte KID + 8-byte CTR.
pub const MAX_HEADER_LEN: usize = 17;

/// A parsed SFrame header: which key (KID) and which nonce (CTR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// Key identifier.
    pub kid: u64,
    /// Counter, unique per KID.
    pub ctr: u64,
}

impl Header {
    /// A header for `kid` and `ctr`.
    #[must_use]
    pub const fn new(kid: u64, ctr: u64) -> Self {
        Self { kid, ctr }
    }

    /// Reads a header from the start of `bytes` and returns it with its
    /// encoded length. The rest of `bytes` is not looked at.
    ///
    /// # Errors
    /// [`HeaderError::Truncated`] when `bytes` ends inside the header,
    /// [`HeaderError::NonMinimal`] when a value is not in its shortest form.
    #[inline]
    pub fn parse(bytes: &[u8]) -> Result<(Self, usize), Error> {
        let (&config, rest) = bytes.split_first().ok_or(HeaderError::Truncated)?;
        let (kid, kid_len) = read_field(config >> 4, rest)?;
        let (ctr, ctr_len) = read_field(config & 0x0f, &rest[kid_len..])?;
        Ok((Self { kid, ctr }, 1 + kid_len + ctr_len))
    }

    /// The number of bytes [`Header::emit`] writes.
    #[must_use]
    pub const fn len(&self) -> usize {
        1 + extension_len(self.kid) + extension_len(self.ctr)
    }

    /// Always false: a header has at least its config byte. Present for
    /// symmetry with [`Header::len`].
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Writes the header at the start of `out` and returns its length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when `out` is shorter than [`Header::len`].
    #[inline]
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
        let len = self.len();
        let available = out.len();
        let out = out.get_mut(..len).ok_or(Error::BufferTooSmall {
            needed: len,
            available,
        })?;
        let kid_len = extension_len(self.kid);
        out[0] = (nibble(self.kid) << 4) | nibble(self.ctr);
        write_be(self.kid, &mut out[1..1 + kid_len]);
        write_be(self.ctr, &mut out[1 + kid_len..]);
        Ok(len)
    }
}

/// Bytes a value takes after the config byte: 0 when it fits in 3 bits.
const fn extension_len(value: u64) -> usize {
    if value < 8 {
        0
    } else {
        8 - (value.leading_zeros() as usize / 8)
    }
}

/// The 4-bit half of the config byte for `value`: the value itself, or the
/// extension flag with `length - 1`.
#[allow(clippy::cast_possible_truncation)] // Both arms are bounded, see each.
const fn nibble(value: u64) -> u8 {
    match extension_len(value) {
        // Below 8, so it fits in the nibble.
        0 => value as u8,
        // 1..=8, so `len - 1` fits in 3 bits.
        len => 0x08 | (len as u8 - 1),
    }
}

fn write_be(value: u64, out: &mut [u8]) {
    let bytes = value.to_be_bytes();
    out.copy_from_slice(&bytes[8 - out.len()..]);
}

/// Decodes one KID or CTR from its nibble and the bytes after the config
/// byte; returns the value and how many of those bytes it used.
fn read_field(nibble: u8, bytes: &[u8]) -> Result<(u64, usize), Error> {
    if nibble & 0x08 == 0 {
        return Ok((u64::from(nibble), 0));
    }
    let len = usize::from(nibble & 0x07) + 1;
    let field = bytes.get(..len).ok_or(HeaderError::Truncated)?;
    let mut buf = [0u8; 8];
    buf[8 - len..].copy_from_slice(field);
    let value = u64::from_be_bytes(buf);
    if extension_len(value) != len {
        return Err(HeaderError::NonMinimal.into());
    }
    Ok((value, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(kid: u64, ctr: u64, expected: &[u8]) {
        let header = Header::new(kid, ctr);
        let mut out = [0u8; MAX_HEADER_LEN];
        let len = header.emit(&mut out).unwrap();
        assert_eq!(&out[..len], expected, "emit kid={kid} ctr={ctr}");
        assert_eq!(header.len(), len);
        let mut with_payload = [0xaa; MAX_HEADER_LEN + 3];
        with_payload[..len].copy_from_slice(expected);
        assert_eq!(Header::parse(&with_payload).unwrap(), (header, len));
    }

    #[test]
    fn small_values_live_in_the_config_byte() {
        round_trip(0, 0, &[0x00]);
        round_trip(7, 7, &[0x77]);
        round_trip(3, 5, &[0x35]);
    }

    #[test]
    fn large_values_are_minimal_big_endian() {
        round_trip(8, 0, &[0x80, 0x08]);
        round_trip(0, 8, &[0x08, 0x08]);
        round_trip(0x123, 0x4567, &[0x99, 0x01, 0x23, 0x45, 0x67]);
        round_trip(
            u64::MAX,
            u64::MAX,
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff,
            ],
        );
    }

    #[test]
    fn truncated_headers_are_refused() {
        assert_eq!(Header::parse(&[]), Err(HeaderError::Truncated.into()));
        assert_eq!(Header::parse(&[0x80]), Err(HeaderError::Truncated.into()));
        assert_eq!(
            Header::parse(&[0x99, 0x01, 0x23, 0x45]),
            Err(HeaderError::Truncated.into())
        );
    }

    #[test]
    fn non_minimal_encodings_are_refused() {
        // KID 5 written in an extension byte instead of the config byte.
        assert_eq!(
            Header::parse(&[0x80, 0x05]),
            Err(HeaderError::NonMinimal.into())
        );
        // CTR 0x10 written in two bytes.
        assert_eq!(
            Header::parse(&[0x09, 0x00, 0x10]),
            Err(HeaderError::NonMinimal.into())
        );
    }

    #[test]
    fn emit_into_a_short_buffer_is_an_error() {
        let mut out = [0u8; 2];
        assert_eq!(
            Header::new(0x123, 0x4567).emit(&mut out),
            Err(Error::BufferTooSmall {
                needed: 5,
                available: 2
            })
        );
    }
}
