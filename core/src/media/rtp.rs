//! What RTP says about each codec: MIME type, clock rate, channels, format
//! parameters, the payload type Satsuma offers and the RTCP feedback it
//! negotiates. Constant data, so the SFU, every client and the intercom
//! (which stamps `wire::Media::timestamp` in the codec's clock) read the
//! same facts from one place.

use super::Codec;

/// Video frames over RTP: a protected frame is split over as many packets
/// as it needs, each payload starting with a descriptor byte (after the
/// SFrame RTP payload format drafts). This bit marks a frame's first
/// packet, the one that starts with the frame's clear prefix and SFrame
/// header; every packet of a frame has its RTP timestamp. Audio frames go
/// one per packet with no descriptor.
pub const FRAME_START: u8 = 0x80;
/// The descriptor bit of a video frame's last packet (the RTP marker is
/// set on it too). The other six bits are zero when sent and ignored.
pub const FRAME_END: u8 = 0x40;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MediaKind {
    /// A microphone's track.
    Audio,
    /// A camera's track.
    Video,
}

/// One RTCP feedback mechanism (RFC 4585 `a=rtcp-fb`): its type and
/// parameter, for example `("nack", "pli")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feedback {
    /// `nack`, `ccm`, `goog-remb`, …
    pub kind: &'static str,
    /// `pli`, `fir`, or empty.
    pub parameter: &'static str,
}

/// The RTP facts of one codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpCodec {
    /// Audio or video.
    pub kind: MediaKind,
    /// The MIME type SDP names it by (`audio/opus`), compared without case.
    pub mime: &'static str,
    /// The RTP timestamp clock in Hz. G.722 runs its RTP clock at 8 kHz
    /// although it samples at 16 kHz (RFC 3551 §4.5.2).
    pub clock_rate: u32,
    /// Channels in the `a=rtpmap` line: Opus is always written `/2`
    /// (RFC 7587 §7), whatever it carries; the rest are mono.
    pub channels: u16,
    /// The `a=fmtp` line Satsuma offers, empty for none.
    pub fmtp: &'static str,
    /// The payload type Satsuma offers. The static one (RFC 3551) except
    /// for PCMU, which gets a dynamic one: webrtc-rs 0.17 never learns the
    /// codec of a remote track on payload type 0 (it assumes 0 and only
    /// looks up a change), and RFC 3551 allows any codec on a dynamic type.
    pub payload_type: u8,
    /// The RTCP feedback it negotiates: video asks for key frames (PLI,
    /// FIR), retransmissions (NACK) and reports bandwidth (REMB); audio
    /// asks for nothing.
    pub feedback: &'static [Feedback],
}

const VIDEO_FEEDBACK: &[Feedback] = &[
    Feedback {
        kind: "goog-remb",
        parameter: "",
    },
    Feedback {
        kind: "ccm",
        parameter: "fir",
    },
    Feedback {
        kind: "nack",
        parameter: "",
    },
    Feedback {
        kind: "nack",
        parameter: "pli",
    },
];

const OPUS: RtpCodec = RtpCodec {
    kind: MediaKind::Audio,
    mime: "audio/opus",
    clock_rate: 48_000,
    channels: 2,
    fmtp: "minptime=10;useinbandfec=1",
    payload_type: 111,
    feedback: &[],
};

const PCMU: RtpCodec = RtpCodec {
    kind: MediaKind::Audio,
    mime: "audio/PCMU",
    clock_rate: 8_000,
    channels: 1,
    fmtp: "",
    payload_type: 107,
    feedback: &[],
};

const PCMA: RtpCodec = RtpCodec {
    kind: MediaKind::Audio,
    mime: "audio/PCMA",
    clock_rate: 8_000,
    channels: 1,
    fmtp: "",
    payload_type: 8,
    feedback: &[],
};

const G722: RtpCodec = RtpCodec {
    kind: MediaKind::Audio,
    mime: "audio/G722",
    clock_rate: 8_000,
    channels: 1,
    fmtp: "",
    payload_type: 9,
    feedback: &[],
};

const VP8: RtpCodec = RtpCodec {
    kind: MediaKind::Video,
    mime: "video/VP8",
    clock_rate: 90_000,
    channels: 1,
    fmtp: "",
    payload_type: 96,
    feedback: VIDEO_FEEDBACK,
};

impl Codec {
    /// The codec's RTP facts.
    #[must_use]
    pub const fn rtp(self) -> &'static RtpCodec {
        match self {
            Self::Opus => &OPUS,
            Self::Pcmu => &PCMU,
            Self::Pcma => &PCMA,
            Self::G722 => &G722,
            Self::Vp8 => &VP8,
        }
    }

    /// Audio or video.
    #[must_use]
    pub const fn kind(self) -> MediaKind {
        self.rtp().kind
    }

    /// Whether it carries audio.
    #[must_use]
    pub const fn is_audio(self) -> bool {
        matches!(self.kind(), MediaKind::Audio)
    }

    /// The codec a negotiated MIME type names, compared without case as
    /// RFC 4855 §3 asks.
    #[must_use]
    pub fn from_mime(mime: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.rtp().mime.eq_ignore_ascii_case(mime))
    }

    /// The codec Satsuma registers under `payload_type` ([`RtpCodec`]'s):
    /// the SFU offers every codec with these, so both ends of each of its
    /// peer connections use them.
    #[must_use]
    pub fn from_payload_type(payload_type: u8) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.rtp().payload_type == payload_type)
    }

    /// Whether an intercom decodes it. The intercom link's contract:
    /// every member on it ([`Transport::Wire`](crate::wire::Transport::Wire))
    /// decodes G.711 µ-law (PCMU) and G.722; an intercom need not decode
    /// Opus or A-law. A desktop sends one of these two while an intercom
    /// is in the call.
    #[must_use]
    pub const fn intercom_decodes(self) -> bool {
        matches!(self, Self::Pcmu | Self::G722)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_is_found_by_its_own_mime_type_in_any_case() {
        for codec in Codec::ALL {
            assert_eq!(Codec::from_mime(codec.rtp().mime), Some(codec));
            let upper = codec.rtp().mime.to_ascii_uppercase();
            assert_eq!(Codec::from_mime(&upper), Some(codec));
        }
        assert_eq!(Codec::from_mime("video/H264"), None);
        assert_eq!(Codec::from_mime(""), None);
    }

    #[test]
    fn every_codec_is_found_by_its_payload_type() {
        for codec in Codec::ALL {
            assert_eq!(
                Codec::from_payload_type(codec.rtp().payload_type),
                Some(codec)
            );
        }
        assert_eq!(Codec::from_payload_type(0), None);
        assert_eq!(Codec::from_payload_type(127), None);
    }

    #[test]
    fn payload_types_are_distinct_and_pcmu_is_dynamic() {
        for a in Codec::ALL {
            for b in Codec::ALL {
                if a != b {
                    assert_ne!(a.rtp().payload_type, b.rtp().payload_type);
                }
            }
        }
        assert!((96..=127).contains(&Codec::Pcmu.rtp().payload_type));
        assert_eq!(Codec::Pcma.rtp().payload_type, 8);
        assert_eq!(Codec::G722.rtp().payload_type, 9);
    }

    #[test]
    fn clocks_follow_rfc_3551_and_7587() {
        assert_eq!(Codec::Opus.rtp().clock_rate, 48_000);
        assert_eq!(Codec::G722.rtp().clock_rate, 8_000);
        assert_eq!(Codec::Vp8.rtp().clock_rate, 90_000);
        assert!(
            Codec::Vp8
                .rtp()
                .feedback
                .iter()
                .any(|f| f.kind == "nack" && f.parameter == "pli")
        );
        assert!(!Codec::Vp8.is_audio());
        assert!(Codec::ALL.iter().filter(|c| c.is_audio()).count() == 4);
    }
}
