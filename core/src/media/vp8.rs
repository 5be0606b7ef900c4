//! The VP8 frame header (RFC 6386 §9.1), read from the start of a frame.
//!
//! ```text
//! frame tag, 3 bytes, little-endian:
//!   bit 0      inverse key-frame flag (0: key frame)
//!   bits 1-3   version
//!   bit 4      show_frame
//!   bits 5-23  size of the first data partition
//! key frames only, 7 more bytes:
//!   9d 01 2a   start code
//!   2 bytes    width (14 bits) and horizontal scale (2 bits), little-endian
//!   2 bytes    height (14 bits) and vertical scale (2 bits), little-endian
//! ```

use crate::error::{Error, MediaError};

/// Bytes of the frame tag every VP8 frame starts with.
pub const FRAME_TAG_LEN: usize = 3;
/// Bytes of a key frame's header: the tag, the start code and the size.
pub const KEY_FRAME_HEADER_LEN: usize = 10;

const START_CODE: [u8; 3] = [0x9d, 0x01, 0x2a];

/// What the first bytes of a VP8 frame say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Vp8Header {
    /// A key frame decodes on its own; a delta frame needs the ones before.
    pub key_frame: bool,
    /// The bitstream version (0–3 are defined).
    pub version: u8,
    /// Whether the decoder shows this frame.
    pub show_frame: bool,
    /// Bytes of the first data partition.
    pub first_partition_size: u32,
    /// Width and height in pixels, on key frames.
    pub dimensions: Option<(u16, u16)>,
}

impl Vp8Header {
    /// Whether a frame starting with `first_byte` is a key frame.
    #[must_use]
    pub const fn is_key_frame(first_byte: u8) -> bool {
        first_byte & 0x01 == 0
    }

    /// Reads the header at the start of `frame`.
    ///
    /// # Errors
    /// [`Error::TooShort`] when the frame ends inside its header;
    /// [`MediaError::Vp8StartCode`] for a key frame without its start code.
    pub fn parse(frame: &[u8]) -> Result<Self, Error> {
        let Some(&[b0, b1, b2]) = frame.first_chunk::<FRAME_TAG_LEN>() else {
            return Err(Error::TooShort {
                len: frame.len(),
                min: FRAME_TAG_LEN,
            });
        };
        let tag = u32::from_le_bytes([b0, b1, b2, 0]);
        let key_frame = Self::is_key_frame(b0);
        let dimensions = if key_frame {
            let Some(rest) = frame.get(FRAME_TAG_LEN..KEY_FRAME_HEADER_LEN) else {
                return Err(Error::TooShort {
                    len: frame.len(),
                    min: KEY_FRAME_HEADER_LEN,
                });
            };
            if rest[..3] != START_CODE {
                return Err(MediaError::Vp8StartCode.into());
            }
            let width = u16::from_le_bytes([rest[3], rest[4]]) & 0x3fff;
            let height = u16::from_le_bytes([rest[5], rest[6]]) & 0x3fff;
            Some((width, height))
        } else {
            None
        };
        Ok(Self {
            key_frame,
            // Masked to 3 bits.
            version: ((tag >> 1) & 0x07) as u8,
            show_frame: tag & 0x10 != 0,
            first_partition_size: tag >> 5,
            dimensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first bytes of a 640x480 key frame from libvpx.
    const KEY: [u8; 12] = [
        0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, 0x00, 0x00,
    ];

    #[test]
    fn key_frame_with_size() {
        let h = Vp8Header::parse(&KEY).unwrap();
        assert!(h.key_frame);
        assert!(h.show_frame);
        assert_eq!(h.version, 0);
        assert_eq!(h.dimensions, Some((640, 480)));
        assert_eq!(h.first_partition_size, 0x0000_4250 >> 5);
    }

    #[test]
    fn delta_frame() {
        let h = Vp8Header::parse(&[0x31, 0x02, 0x00, 0xff]).unwrap();
        assert!(!h.key_frame);
        assert!(h.show_frame);
        assert_eq!(h.dimensions, None);
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        assert_eq!(
            Vp8Header::parse(&[0x31]),
            Err(Error::TooShort { len: 1, min: 3 })
        );
        assert_eq!(
            Vp8Header::parse(&KEY[..7]),
            Err(Error::TooShort { len: 7, min: 10 })
        );
        let mut bad = KEY;
        bad[4] = 0x02;
        assert_eq!(Vp8Header::parse(&bad), Err(MediaError::Vp8StartCode.into()));
    }
}
