//! Per-codec rules: which bytes of a frame stay in clear for the SFU, and
//! how a frame is laid out once protected.
//!
//! | codec | clear bytes | why |
//! |---|---|---|
//! | VP8 key frame | 10: frame tag, start code, size | the SFU must see key frames to answer key-frame requests and start new subscribers cleanly, and the size to pick a layer |
//! | VP8 delta frame | 3: frame tag | the key-frame bit says this is *not* a key frame |
//! | Opus | none | the SFU needs nothing from the TOC byte, and it would reveal speech activity and bandwidth |
//! | G.711 µ-law / A-law | none | raw samples, no structure to read |
//! | G.722 | none | raw sub-band samples, no structure to read |
//!
//! Every clear byte is authenticated: it is part of the SFrame AAD, so a
//! relay that changes one makes the frame fail to open. No codec passes
//! through unencrypted.
//!
//! ## Protected layout
//!
//! Codecs with no clear bytes: the SFrame ciphertext alone.
//!
//! Codecs with clear bytes: `n ‖ clear[n] ‖ SFrame ciphertext`, with the
//! AAD metadata `n ‖ clear`. The length byte makes the layout unambiguous for
//! frames shorter than their codec's prefix: such a frame keeps its whole
//! content as the (authenticated) clear part and seals an empty body. Its
//! one byte costs nothing next to a video frame's size.

mod keys;
mod rtp;
mod vp8;

pub use keys::MediaKeys;
pub use rtp::{FRAME_END, FRAME_START, Feedback, MediaKind, RtpCodec};
pub use vp8::{FRAME_TAG_LEN, KEY_FRAME_HEADER_LEN, Vp8Header};

use alloc::vec::Vec;

use crate::error::{Error, MediaError};
use crate::sframe::{Header, KeyRing, Opened};
use crate::time::Instant;

/// A media codec Satsuma carries. Encoded on the wire by position: new
/// codecs go at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Codec {
    /// Opus (RFC 6716), desktop audio.
    Opus,
    /// G.711 µ-law (PCMU), the intercom's audio.
    Pcmu,
    /// G.711 A-law (PCMA).
    Pcma,
    /// G.722, wideband intercom audio.
    G722,
    /// VP8 (RFC 6386), video.
    Vp8,
}

/// What [`Codec::unprotect_or_hold`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Unprotected {
    /// It opened: what the ring learned, and the frame's length in `out`.
    Opened {
        /// Epoch, sender and header.
        opened: Opened,
        /// Bytes of the original frame written to `out`.
        len: usize,
    },
    /// It was sealed in an epoch not reached yet and is held in the ring;
    /// [`take_ready`] hands it back once the epoch arrives.
    Held,
}

/// A held frame whose epoch arrived: open it with [`Codec::unprotect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyFrame {
    /// Its codec.
    pub codec: Codec,
    /// The caller's tag given to [`Codec::unprotect_or_hold`].
    pub tag: u32,
    /// The protected frame, as it arrived.
    pub protected: Vec<u8>,
}

/// The oldest held frame whose epoch the ring now holds. Drain it after
/// every new epoch, in order, before frames that arrive later.
pub fn take_ready(ring: &mut KeyRing) -> Option<ReadyFrame> {
    loop {
        let held = ring.take_ready()?;
        let index = usize::try_from(held.tag >> 32).unwrap_or(usize::MAX);
        // Only `unprotect_or_hold` holds frames with a codec index; a tag
        // that names none came from another caller of `KeyRing::hold`, and
        // is dropped rather than opened as the wrong codec.
        if let Some(&codec) = Codec::ALL.get(index) {
            return Some(ReadyFrame {
                codec,
                // The low 32 bits are the caller's tag.
                #[allow(clippy::cast_possible_truncation)]
                tag: held.tag as u32,
                protected: held.frame,
            });
        }
    }
}

/// What the SFU may learn from a protected frame without any key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ClearInfo {
    /// `Some(true)` for a video key frame, `Some(false)` for a delta frame,
    /// `None` when the codec says nothing (audio) or the frame is too short.
    pub key_frame: Option<bool>,
    /// Width and height of a video key frame.
    pub dimensions: Option<(u16, u16)>,
}

/// Each audio codec and the name a person or a command line gives it.
const AUDIO_NAMES: [(Codec, &str); 4] = [
    (Codec::Opus, "opus"),
    (Codec::Pcmu, "pcmu"),
    (Codec::Pcma, "pcma"),
    (Codec::G722, "g722"),
];

impl Codec {
    /// The audio codec a person or a command line names: `opus`, `pcmu`,
    /// `pcma` or `g722`, in any case; `None` for anything else.
    #[must_use]
    pub fn audio_from_name(name: &str) -> Option<Self> {
        AUDIO_NAMES
            .into_iter()
            .find_map(|(codec, n)| name.eq_ignore_ascii_case(n).then_some(codec))
    }

    /// The name [`audio_from_name`](Self::audio_from_name) reads back, for
    /// an audio codec; `None` for video.
    #[must_use]
    pub fn audio_name(self) -> Option<&'static str> {
        AUDIO_NAMES
            .into_iter()
            .find_map(|(codec, n)| (codec == self).then_some(n))
    }

    /// Every codec, for callers that must handle each one.
    pub const ALL: [Self; 5] = [Self::Opus, Self::Pcmu, Self::Pcma, Self::G722, Self::Vp8];

    /// The most clear bytes a frame of this codec keeps.
    #[must_use]
    pub const fn max_clear_len(self) -> usize {
        match self {
            Self::Vp8 => KEY_FRAME_HEADER_LEN,
            Self::Opus | Self::Pcmu | Self::Pcma | Self::G722 => 0,
        }
    }

    /// How many leading bytes of `frame` stay in clear: the codec's rule,
    /// cut to the frame's length.
    #[must_use]
    pub fn clear_len(self, frame: &[u8]) -> usize {
        let rule = match self {
            Self::Vp8 => match frame.first() {
                Some(&b0) if Vp8Header::is_key_frame(b0) => KEY_FRAME_HEADER_LEN,
                _ => FRAME_TAG_LEN,
            },
            Self::Opus | Self::Pcmu | Self::Pcma | Self::G722 => 0,
        };
        rule.min(frame.len())
    }

    /// Bytes [`Codec::protect`] may write for a frame of `frame_len` bytes.
    #[must_use]
    pub fn max_protected_len(self, ring: &KeyRing, frame_len: usize) -> usize {
        let framing = if self.max_clear_len() > 0 { 1 } else { 0 };
        framing + ring.max_ciphertext_len(frame_len)
    }

    /// Protects one encoded frame with the ring's current epoch and writes
    /// the protected layout into `out`. Returns bytes written.
    ///
    /// # Errors
    /// As [`KeyRing::encrypt`].
    #[allow(clippy::cast_possible_truncation)] // `n` <= `max_clear_len()` = 10.
    pub fn protect(self, ring: &mut KeyRing, frame: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        if self.max_clear_len() == 0 {
            return ring.encrypt(&[], frame, out);
        }
        let n = self.clear_len(frame);
        let prefix_len = 1 + n;
        if out.len() < prefix_len {
            return Err(Error::BufferTooSmall {
                needed: self.max_protected_len(ring, frame.len()),
                available: out.len(),
            });
        }
        let (prefix, body) = out.split_at_mut(prefix_len);
        // `n` is at most `max_clear_len()`, which is 10.
        prefix[0] = n as u8;
        prefix[1..].copy_from_slice(&frame[..n]);
        let sealed = ring.encrypt(prefix, &frame[n..], body)?;
        Ok(prefix_len + sealed)
    }

    /// Opens a protected frame and writes the original encoded frame into
    /// `out`.
    ///
    /// # Errors
    /// [`Error::TooShort`], [`MediaError::ClearPrefixLength`], and those of
    /// [`KeyRing::decrypt`]. On error `out` holds no unauthenticated bytes.
    pub fn unprotect(
        self,
        ring: &mut KeyRing,
        protected: &[u8],
        out: &mut [u8],
    ) -> Result<(Opened, usize), Error> {
        if self.max_clear_len() == 0 {
            let opened = ring.decrypt(&[], protected, out)?;
            return Ok((opened, opened.len));
        }
        let (prefix, sealed) = self.split(protected)?;
        let n = prefix.len() - 1;
        let available = out.len();
        let (clear_out, body_out) = out.split_at_mut_checked(n).ok_or(Error::BufferTooSmall {
            needed: n,
            available,
        })?;
        let opened = ring.decrypt(prefix, sealed, body_out)?;
        clear_out.copy_from_slice(&prefix[1..]);
        Ok((opened, n + opened.len))
    }

    /// Opens a protected frame like [`Codec::unprotect`]; a frame sealed in
    /// an epoch the ring has not reached yet (its commit is still on the
    /// way) is held instead, with `tag` (the caller's: a stream or sender),
    /// and comes back through [`take_ready`] once the epoch arrives. No
    /// frame is lost to a key change that media outruns.
    ///
    /// # Errors
    /// As [`Codec::unprotect`], but never [`Error::FutureEpoch`].
    pub fn unprotect_or_hold(
        self,
        ring: &mut KeyRing,
        now: Instant,
        tag: u32,
        protected: &[u8],
        out: &mut [u8],
    ) -> Result<Unprotected, Error> {
        match self.unprotect(ring, protected, out) {
            Ok((opened, len)) => Ok(Unprotected::Opened { opened, len }),
            Err(Error::FutureEpoch { kid }) => {
                let index = Codec::ALL.iter().position(|&c| c == self).unwrap_or(0) as u64;
                ring.hold(now, kid, (index << 32) | u64::from(tag), protected)?;
                Ok(Unprotected::Held)
            }
            Err(e) => Err(e),
        }
    }

    /// What the clear bytes of a protected frame say, for the SFU.
    ///
    /// # Errors
    /// [`Error::TooShort`] or [`MediaError::ClearPrefixLength`] when the
    /// layout is broken. Clear bytes that do not parse as the codec's header
    /// give an empty [`ClearInfo`], since the SFU cannot verify them anyway.
    pub fn inspect(self, protected: &[u8]) -> Result<ClearInfo, Error> {
        let mut info = ClearInfo {
            key_frame: None,
            dimensions: None,
        };
        if self == Self::Vp8 {
            let (prefix, _) = self.split(protected)?;
            if let Ok(header) = Vp8Header::parse(&prefix[1..]) {
                info.key_frame = Some(header.key_frame);
                info.dimensions = header.dimensions;
            } else if let Some(&b0) = prefix.get(1) {
                info.key_frame = Some(Vp8Header::is_key_frame(b0));
            }
        }
        Ok(info)
    }

    /// The KID in a protected frame's SFrame header: the field the SFU
    /// checks against the leaf of the connection the frame came on. It
    /// reads the clear prefix's length byte and the header, nothing else,
    /// and allocates nothing.
    ///
    /// # Errors
    /// [`Error::TooShort`] or [`MediaError::ClearPrefixLength`] when the
    /// layout is broken, [`Error::Header`] when no header follows: a frame
    /// no receiver can open.
    pub fn kid(self, protected: &[u8]) -> Result<u64, Error> {
        let sealed = if self.max_clear_len() == 0 {
            protected
        } else {
            self.split(protected)?.1
        };
        Ok(Header::parse(sealed)?.0.kid)
    }

    /// Splits `n ‖ clear ‖ sealed` into (`n ‖ clear`, `sealed`).
    #[allow(clippy::cast_possible_truncation)] // `max_clear_len()` is at most 10.
    fn split(self, protected: &[u8]) -> Result<(&[u8], &[u8]), Error> {
        let &n = protected
            .first()
            .ok_or(Error::TooShort { len: 0, min: 1 })?;
        let max = self.max_clear_len();
        if usize::from(n) > max {
            return Err(MediaError::ClearPrefixLength {
                len: n,
                // `max_clear_len()` is at most 10.
                max: max as u8,
            }
            .into());
        }
        let prefix_len = 1 + usize::from(n);
        protected
            .split_at_checked(prefix_len)
            .ok_or(Error::TooShort {
                len: protected.len(),
                min: prefix_len,
            })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn audio_codecs_by_name() {
        use super::Codec;
        assert_eq!(Codec::audio_from_name("PCMU"), Some(Codec::Pcmu));
        assert_eq!(Codec::audio_from_name("g722"), Some(Codec::G722));
        for codec in Codec::ALL {
            assert_eq!(
                codec.audio_name().and_then(Codec::audio_from_name),
                codec.is_audio().then_some(codec)
            );
        }
        assert_eq!(Codec::audio_from_name("opus"), Some(Codec::Opus));
        assert_eq!(
            Codec::audio_from_name("vp8"),
            None,
            "video is no audio codec"
        );
        assert_eq!(Codec::audio_from_name(""), None);
    }

    use super::*;
    use crate::error::HeaderError;
    use crate::sframe::{EpochSecret, KeyRingConfig};

    #[test]
    fn the_kid_is_read_behind_the_clear_prefix() {
        // Config byte 0x85: a one-byte KID (0x3e) follows, CTR 5 inline.
        assert_eq!(Codec::Opus.kid(&[0x85, 0x3e, 0xaa, 0xbb]), Ok(0x3e));
        assert_eq!(Codec::Pcmu.kid(&[0x25, 0xaa]), Ok(2), "KID 2 inline");
        // VP8: `n`, `n` clear bytes, then the header.
        let delta = [0x03, 0x31, 0x02, 0x00, 0x85, 0x3e, 0xff];
        assert_eq!(Codec::Vp8.kid(&delta), Ok(0x3e));
        assert_eq!(Codec::Vp8.kid(&[0x00, 0x25]), Ok(2), "no clear bytes");
    }

    #[test]
    fn a_frame_without_a_header_has_no_kid() {
        assert_eq!(
            Codec::Opus.kid(&[]),
            Err(Error::Header(HeaderError::Truncated))
        );
        assert_eq!(
            Codec::Opus.kid(&[0x85]),
            Err(Error::Header(HeaderError::Truncated))
        );
        assert_eq!(
            Codec::Opus.kid(&[0x80, 0x05, 0x00]),
            Err(Error::Header(HeaderError::NonMinimal))
        );
        assert_eq!(
            Codec::Vp8.kid(&[0x03, 0x31, 0x02, 0x00]),
            Err(Error::Header(HeaderError::Truncated)),
            "all clear, nothing sealed"
        );
        assert_eq!(
            Codec::Vp8.kid(&[0x0b; 20]),
            Err(Error::Media(MediaError::ClearPrefixLength {
                len: 11,
                max: 10
            }))
        );
        assert_eq!(Codec::Vp8.kid(&[]), Err(Error::TooShort { len: 0, min: 1 }));
    }

    #[test]
    fn the_kid_of_a_protected_frame_is_the_senders() {
        let mut ring = KeyRing::new(KeyRingConfig::default()).unwrap();
        let secret = EpochSecret {
            epoch: 7,
            base_key: &[0x42; 16],
            group_size: 5,
            own_index: 3,
        };
        ring.install_epoch(Instant::ZERO, secret).unwrap();
        let key_frame = [
            0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, 7, 7,
        ];
        for (codec, frame) in [(Codec::Opus, &[0xfc, 0xff][..]), (Codec::Vp8, &key_frame)] {
            let mut out = [0u8; 64];
            let n = codec.protect(&mut ring, frame, &mut out).unwrap();
            assert_eq!(codec.kid(&out[..n]).ok(), ring.sending_kid(), "{codec:?}");
        }
    }
}
