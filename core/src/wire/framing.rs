//! Messages on a byte stream (the intercom's TCP link): each one after its
//! length, 4 bytes big-endian.

use alloc::vec::Vec;

use super::{Message, WireError, limits};

/// The length of the next frame on a length-prefixed stream (4 bytes, big
/// endian), once `header` holds those 4 bytes.
///
/// # Errors
/// [`WireError::TooLong`] for a frame the receiver must not buffer,
/// [`WireError::Empty`] for a zero length.
pub fn frame_len(header: [u8; 4]) -> Result<usize, WireError> {
    let len =
        usize::try_from(u32::from_be_bytes(header)).map_err(|_| WireError::TooLong(usize::MAX))?;
    match len {
        0 => Err(WireError::Empty),
        n if n > limits::MESSAGE => Err(WireError::TooLong(n)),
        n => Ok(n),
    }
}

/// `message` with its 4-byte big-endian length prefix, for a stream.
///
/// # Errors
/// As [`Message::encode`].
pub fn encode_framed<M: Message>(message: &M) -> Result<Vec<u8>, WireError> {
    let body = message.encode()?;
    // `encode` bounds the body by `limits::MESSAGE`, far below u32::MAX.
    let len = u32::try_from(body.len()).map_err(|_| WireError::TooLong(body.len()))?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// A [`ToServer::Media`](super::ToServer::Media) message for `media`,
/// framed as [`encode_framed`] would, written into `out` without
/// allocating (the intercom's audio path): its length.
///
/// # Errors
/// [`WireError::TooLong`] when `out` is too small, or the payload is over
/// [`limits::MEDIA`].
pub fn encode_media_framed_into(
    media: &super::MediaRef<'_>,
    out: &mut [u8],
) -> Result<usize, WireError> {
    // The version, then `ToServer::Media`'s tag (variant 2, one varint
    // byte), then the frame: what `ToServer::Media(media).encode()` makes.
    const HEAD: usize = 4 + 2;
    if media.payload.len() > limits::MEDIA {
        return Err(WireError::TooLong(media.payload.len()));
    }
    let need = || postcard::experimental::serialized_size(media).map_or(usize::MAX, |n| n + HEAD);
    let (head, body) = out
        .split_at_mut_checked(HEAD)
        .ok_or_else(|| WireError::TooLong(need()))?;
    let n = postcard::to_slice(media, body)
        .map_err(|_| WireError::TooLong(need()))?
        .len();
    let len = u32::try_from(n + 2).map_err(|_| WireError::TooLong(need()))?;
    head[..4].copy_from_slice(&len.to_be_bytes());
    head[4] = super::VERSION;
    head[5] = 2;
    Ok(HEAD + n)
}

#[cfg(test)]
mod tests {
    use super::super::samples::{DESKTOP, blob};
    use super::*;
    use crate::wire::{Join, Open, RoomName, ToServer, Up};

    #[test]
    fn media_framed_into_a_buffer_is_what_encode_framed_makes() {
        let media = super::super::samples::media();
        let borrowed = crate::wire::MediaRef {
            sender: media.sender,
            codec: media.codec,
            timestamp: media.timestamp,
            sequence: media.sequence,
            payload: &media.payload,
        };
        let expected = encode_framed(&ToServer::Media(media.clone())).unwrap();
        let mut out = [0u8; 64];
        let n = encode_media_framed_into(&borrowed, &mut out).unwrap();
        assert_eq!(out[..n], expected[..]);
        // One byte short: a typed error, not a panic or a cut frame.
        let mut short = alloc::vec![0u8; expected.len() - 1];
        assert_eq!(
            encode_media_framed_into(&borrowed, &mut short),
            Err(WireError::TooLong(expected.len()))
        );
        assert!(matches!(
            encode_media_framed_into(&borrowed, &mut [0u8; 3]),
            Err(WireError::TooLong(_))
        ));
    }

    #[test]
    fn frame_len_takes_one_to_the_limit() {
        assert_eq!(frame_len([0, 0, 0, 0]), Err(WireError::Empty));
        assert_eq!(frame_len([0, 0, 0, 1]), Ok(1));
        // limits::MESSAGE = 0x0004_0000.
        assert_eq!(frame_len([0, 4, 0, 0]), Ok(limits::MESSAGE));
        assert_eq!(
            frame_len([0, 4, 0, 1]),
            Err(WireError::TooLong(limits::MESSAGE + 1))
        );
        let max = usize::try_from(u32::MAX).unwrap_or(usize::MAX);
        assert_eq!(frame_len([0xff; 4]), Err(WireError::TooLong(max)));
        // Big-endian: read little-endian, these bytes would be the limit.
        assert_eq!(frame_len([0, 0, 4, 0]), Ok(1024));
    }

    #[test]
    fn encode_framed_prefixes_the_big_endian_length() {
        assert_eq!(
            encode_framed(&ToServer::Control(Up::Leave)).unwrap(),
            [0, 0, 0, 3, 2, 1, 5]
        );
        // 313 bytes: version, `Open`, `Join`, "lobby" (6), 300 key package
        // bytes with a 2-byte length, capabilities (2).
        let join = ToServer::Open(Open::Join(Join {
            room: RoomName::new("lobby").unwrap(),
            key_package: blob(&[0x11; 300]),
            capabilities: DESKTOP,
        }));
        let framed = encode_framed(&join).unwrap();
        assert_eq!(framed[..4], [0, 0, 0x01, 0x39]);
        assert_eq!(
            frame_len([framed[0], framed[1], framed[2], framed[3]]),
            Ok(313)
        );
        assert_eq!(framed.len(), 4 + 313);
        assert_eq!(ToServer::decode(&framed[4..]), Ok(join));
    }
}
