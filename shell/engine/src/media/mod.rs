//! The desktop engine's codecs: audio and video in and out of the byte
//! frames that `satsuma-core` protects.
//!
//! - [`audio`]: [`AudioEncoder`](audio::AudioEncoder) and
//!   [`AudioDecoder`](audio::AudioDecoder) for Opus (the system libopus),
//!   G.711 µ-law / A-law and G.722 (pure Rust). Everything on the engine's
//!   side is 48 kHz mono `i16` in 20 ms frames; the narrowband codecs
//!   resample inside.
//! - [`video`]: a safe wrapper around the system libvpx's VP8 encoder and
//!   decoder, on tightly packed [`I420`](video::I420) pictures.
//! - [`tone`] and [`pattern`]: test signals that survive a codec (a sine and
//!   its frequency, a moving picture with its frame number written in it), so
//!   an end-to-end test can tell that the right media arrived.
//!
//! It does not capture or play anything, packetise RTP or protect frames:
//! devices belong to the shell, RTP and SFrame to `satsuma-core`.
//!
//! # Panics
//!
//! Nothing here panics on input: a frame from the network that a decoder
//! refuses is a [`CodecError`], and libvpx only ever reads the slice it is
//! given, with its length.

pub mod audio;
pub mod pattern;
pub mod tone;
pub mod video;

mod vpx;

/// A codec failed or refused its input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The codec is not one this encoder or decoder handles (VP8 given to
    /// an audio codec).
    #[error("codec {0:?} is not handled here")]
    Unsupported(satsuma_core::media::Codec),
    /// libopus refused a call.
    #[error("opus: {0}")]
    Opus(String),
    /// libvpx refused a call.
    #[error("libvpx {call} failed with code {code}: {detail}")]
    Vpx {
        /// The libvpx function.
        call: &'static str,
        /// Its `vpx_codec_err_t`.
        code: i32,
        /// libvpx's message and detail, if it gave any.
        detail: String,
    },
    /// An encoded frame was empty, too long or malformed.
    #[error("bad encoded frame: {0}")]
    BadFrame(&'static str),
    /// A PCM frame passed to an audio encoder had the wrong length.
    #[error("audio frame has {got} samples, expected {expected}")]
    FrameLength {
        /// Samples the encoder takes per call.
        expected: usize,
        /// Samples it was given.
        got: usize,
    },
    /// A picture's size or buffer does not match what the encoder was
    /// configured for.
    #[error(
        "picture is {got_width}x{got_height} ({got_len} bytes), encoder expects {width}x{height}"
    )]
    PictureSize {
        /// The configured width.
        width: u32,
        /// The configured height.
        height: u32,
        /// The picture's width.
        got_width: u32,
        /// The picture's height.
        got_height: u32,
        /// The picture's buffer length.
        got_len: usize,
    },
    /// A picture's `pts` did not increase.
    #[error("pts {got} does not follow {previous}")]
    Pts {
        /// The previous picture's `pts`.
        previous: u64,
        /// This picture's.
        got: u64,
    },
    /// A configuration value is out of range.
    #[error("bad configuration: {0}")]
    Config(&'static str),
    /// A pure-Rust audio codec or resampler refused its input.
    #[error("{codec:?}: {detail}")]
    Audio {
        /// The codec.
        codec: satsuma_core::media::Codec,
        /// What went wrong.
        detail: &'static str,
    },
}
