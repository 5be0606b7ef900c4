//! Media on the control link, WebRTC signalling, and how a client's media
//! travels.

use serde::{Deserialize, Serialize};

use super::{Blob, ConnId, WireError, limits};
use crate::media::Codec;

/// How a client's media travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Transport {
    /// RTP over a WebRTC peer connection (desktop).
    WebRtc,
    /// [`Media`] messages on the control link (intercom).
    Wire,
}

/// One media frame on the control link.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Media {
    /// The sending connection; the SFU overwrites whatever a client puts here.
    pub sender: ConnId,
    /// The codec.
    pub codec: Codec,
    /// The RTP-style timestamp in the codec's clock.
    pub timestamp: u32,
    /// A per-stream sequence number, for loss detection.
    pub sequence: u16,
    /// The SFrame ciphertext, header included.
    pub payload: Blob<{ limits::MEDIA }>,
}

/// A [`Media`] frame whose payload is borrowed: the same bytes on the wire,
/// encoded and decoded without allocating (the intercom's audio path, 50
/// frames a second each way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MediaRef<'a> {
    /// As [`Media::sender`].
    pub sender: ConnId,
    /// As [`Media::codec`].
    pub codec: Codec,
    /// As [`Media::timestamp`].
    pub timestamp: u32,
    /// As [`Media::sequence`].
    pub sequence: u16,
    /// As [`Media::payload`], at most [`limits::MEDIA`] bytes.
    #[serde(borrow, with = "borrowed_bytes")]
    pub payload: &'a [u8],
}

impl MediaRef<'_> {
    /// Whether `bytes` are a [`ToClient::Media`](super::ToClient::Media)
    /// message, from its first two bytes alone (what
    /// [`MediaRef::from_to_client`] would try to read).
    #[must_use]
    pub fn is_to_client(bytes: &[u8]) -> bool {
        matches!(bytes, [super::VERSION, 1, ..])
    }

    /// Reads a [`ToClient::Media`](super::ToClient::Media) message's frame
    /// in place: `None` for any other message (decode it whole), else the
    /// frame or why it is malformed.
    #[must_use]
    pub fn from_to_client(bytes: &[u8]) -> Option<Result<MediaRef<'_>, WireError>> {
        // The version, then `ToClient::Media`'s tag (variant 1).
        if !Self::is_to_client(bytes) {
            return None;
        }
        let body = bytes.get(2..).unwrap_or_default();
        Some(match postcard::take_from_bytes::<MediaRef<'_>>(body) {
            Ok((media, [])) if media.payload.len() <= limits::MEDIA => Ok(media),
            Ok((media, [])) => Err(WireError::TooLong(media.payload.len())),
            Ok((_, rest)) => Err(WireError::Trailing(rest.len())),
            Err(_) => Err(WireError::Malformed),
        })
    }
}

mod borrowed_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &&[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'de [u8], D::Error> {
        <&[u8]>::deserialize(d)
    }
}

/// WebRTC signalling: whole session descriptions, ICE candidates included
/// (no trickle).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Signal {
    /// An SDP offer.
    Offer(Blob<{ limits::SDP }>),
    /// An SDP answer.
    Answer(Blob<{ limits::SDP }>),
}

#[cfg(test)]
mod tests {
    use super::super::samples::{blob, media};
    use super::*;
    use crate::wire::{Message, ToClient, ToServer, WireError};

    #[test]
    fn media_and_signalling_have_these_exact_bytes() {
        assert_eq!(
            ToServer::Media(media()).encode().unwrap(),
            // Version 2, `Media` (2), then the frame.
            [2, 2, 1, 1, 0xa0, 0x01, 1, 1, 0xab]
        );
        assert_eq!(
            ToClient::Rtc(Signal::Offer(blob(b"v=0"))).encode().unwrap(),
            // Version 2, `Rtc` (2), `Offer`, the SDP.
            [2, 2, 0, 3, b'v', b'=', b'0']
        );
    }

    #[test]
    fn a_borrowed_frame_has_the_owned_frames_bytes_both_ways() {
        let owned = media();
        let borrowed = MediaRef {
            sender: owned.sender,
            codec: owned.codec,
            timestamp: owned.timestamp,
            sequence: owned.sequence,
            payload: &owned.payload,
        };
        let bytes = ToClient::Media(owned.clone()).encode().unwrap();
        assert_eq!(MediaRef::from_to_client(&bytes), Some(Ok(borrowed)));
        assert!(MediaRef::is_to_client(&bytes));
        let mut out = [0; 32];
        let n = crate::wire::encode_media_framed_into(&borrowed, &mut out).unwrap();
        assert_eq!(
            out[4..n],
            ToServer::Media(owned).encode().unwrap()[..],
            "framed after its length"
        );
        // Other messages are not media; damaged media is a typed error.
        let pong = ToClient::Link(crate::wire::LinkMsg::Pong { nonce: 1 });
        assert_eq!(MediaRef::from_to_client(&pong.encode().unwrap()), None);
        assert_eq!(MediaRef::from_to_client(&[]), None);
        for cut in 2..bytes.len() {
            assert_eq!(
                MediaRef::from_to_client(&bytes[..cut]),
                Some(Err(WireError::Malformed)),
                "cut at {cut}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            MediaRef::from_to_client(&long),
            Some(Err(WireError::Trailing(1)))
        );
    }

    #[test]
    fn an_unknown_transport_or_codec_is_malformed() {
        // A `Join` whose capabilities name transport 2.
        assert_eq!(
            ToServer::decode(&[2, 0, 0, 1, b'a', 0, 1, 2]),
            Err(WireError::Malformed)
        );
        // A `Media` frame with codec 5.
        assert_eq!(
            ToServer::decode(&[2, 2, 1, 5, 0, 0, 0]),
            Err(WireError::Malformed)
        );
    }
}
