//! Media on the control link, WebRTC signalling, and how a client's media
//! travels.

use serde::{Deserialize, Serialize};

use super::{Blob, ConnId, limits};
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
