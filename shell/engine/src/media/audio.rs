//! Audio codecs: 48 kHz mono `i16` PCM in 20 ms frames in and out of Opus,
//! G.711 µ-law / A-law and G.722 frames.
//!
//! | codec | coded at | frame | RTP ticks per frame | from |
//! |---|---|---|---|---|
//! | Opus | 48 kHz | variable, ~80 bytes at the default 32 kbit/s | 960 | system libopus (`audiopus`) |
//! | PCMU, PCMA | 8 kHz | 160 bytes | 160 | `audio-codec` |
//! | G.722 | 16 kHz | 160 bytes (64 kbit/s) | 160 (RFC 3551's 8 kHz clock) | `audio-codec` |
//!
//! The narrowband codecs resample inside with `audio-codec`'s polyphase
//! filter, down before encoding and up after decoding. Measured on a tone at
//! half scale: G.711 keeps the level within 0.3 dB up to 1 kHz but is 3 dB
//! down at 3 kHz (the two filters' slopes below the 4 kHz Nyquist limit);
//! G.722 is flat to 3 kHz. Sound comes out later than it went in: about
//! 6.5 ms for Opus, 1.7 ms for G.711 and 2.6 ms for G.722.
//!
//! ```
//! use satsuma_core::media::Codec;
//! use satsuma_engine::media::audio::{AudioDecoder, AudioEncoder, FRAME_SAMPLES};
//!
//! let mut encoder = AudioEncoder::new(Codec::Pcmu)?;
//! let mut decoder = AudioDecoder::new(Codec::Pcmu)?;
//! let frame = encoder.encode(&[0; FRAME_SAMPLES])?;
//! assert_eq!(frame.len(), 160);
//! assert_eq!(decoder.decode(&frame)?.len(), FRAME_SAMPLES);
//! assert_eq!(decoder.conceal()?.len(), FRAME_SAMPLES); // a lost frame
//! # Ok::<(), satsuma_engine::media::CodecError>(())
//! ```

use audio_codec::BoxedResampler;
use audiopus::coder::{Decoder as OpusDecoder, Encoder as OpusEncoder};
use audiopus::{Application, Bitrate, Channels, SampleRate};
use satsuma_core::media::Codec;

use super::CodecError;

/// The engine's audio sample rate, in Hz.
pub const SAMPLE_RATE: u32 = 48_000;

/// Samples in one 20 ms frame at [`SAMPLE_RATE`].
pub const FRAME_SAMPLES: usize = 960;

/// Opus's bitrate until [`AudioEncoder::set_bitrate`]: good wideband speech.
pub const OPUS_DEFAULT_BITRATE: u32 = 32_000;

/// The longest encoded frame a decoder takes, in bytes: the largest Opus
/// frame (RFC 6716 section 3.2.1), which is also 159 ms of G.711.
pub const MAX_FRAME_BYTES: usize = 1_275;

/// The most samples one Opus packet decodes to (120 ms at 48 kHz).
const OPUS_MAX_SAMPLES: usize = 5_760;

/// Encodes 20 ms frames of 48 kHz mono PCM for one audio codec.
pub struct AudioEncoder {
    codec: Codec,
    inner: EncoderInner,
}

enum EncoderInner {
    Opus(OpusEncoder),
    /// G.711 or G.722: resampled to the codec's rate, then coded.
    Resampled {
        resampler: BoxedResampler,
        encoder: Box<dyn audio_codec::Encoder>,
    },
}

/// Decodes one audio codec's frames to 48 kHz mono PCM, and conceals lost
/// ones.
pub struct AudioDecoder {
    codec: Codec,
    inner: DecoderInner,
}

enum DecoderInner {
    Opus(OpusDecoder),
    /// G.711 or G.722: decoded at the codec's rate, then resampled.
    Resampled {
        decoder: Box<dyn audio_codec::Decoder>,
        resampler: BoxedResampler,
        /// The last frame decoded, at 48 kHz, which concealment repeats.
        last: Vec<i16>,
        /// The gain the next concealed frame starts at: 1 after a decoded
        /// frame, halving with each concealed one.
        fade: f64,
    },
}

/// The rate a narrowband codec codes at, with its encoder and decoder.
fn narrowband(codec: Codec) -> Result<(usize, audio_codec::CodecType), CodecError> {
    match codec {
        Codec::Pcmu => Ok((8_000, audio_codec::CodecType::PCMU)),
        Codec::Pcma => Ok((8_000, audio_codec::CodecType::PCMA)),
        Codec::G722 => Ok((16_000, audio_codec::CodecType::G722)),
        other => Err(CodecError::Unsupported(other)),
    }
}

fn opus_error(error: audiopus::Error) -> CodecError {
    CodecError::Opus(error.to_string())
}

fn resampler(codec: Codec, from: usize, to: usize) -> Result<BoxedResampler, CodecError> {
    BoxedResampler::new(from, to).map_err(|_| CodecError::Audio {
        codec,
        detail: "cannot set up the resampler",
    })
}

impl AudioEncoder {
    /// An encoder for `codec`: Opus, PCMU, PCMA or G.722; VP8 (or any other
    /// codec) is [`CodecError::Unsupported`]. Opus starts at
    /// [`OPUS_DEFAULT_BITRATE`], tuned for speech.
    pub fn new(codec: Codec) -> Result<Self, CodecError> {
        let inner = if codec == Codec::Opus {
            let mut opus = OpusEncoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip)
                .map_err(opus_error)?;
            opus.set_bitrate(Bitrate::BitsPerSecond(bits_per_second(
                OPUS_DEFAULT_BITRATE,
            )))
            .map_err(opus_error)?;
            EncoderInner::Opus(opus)
        } else {
            let (rate, kind) = narrowband(codec)?;
            EncoderInner::Resampled {
                resampler: resampler(codec, SAMPLE_RATE as usize, rate)?,
                encoder: audio_codec::create_encoder(kind),
            }
        };
        Ok(Self { codec, inner })
    }

    /// The codec this encoder produces.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// One 20 ms frame, exactly [`FRAME_SAMPLES`] samples at 48 kHz (else
    /// [`CodecError::FrameLength`]), encoded. G.711 and G.722 resample to 8
    /// and 16 kHz first; both give 160 bytes.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, CodecError> {
        if pcm.len() != FRAME_SAMPLES {
            return Err(CodecError::FrameLength {
                expected: FRAME_SAMPLES,
                got: pcm.len(),
            });
        }
        match &mut self.inner {
            EncoderInner::Opus(opus) => {
                let mut out = vec![0; MAX_FRAME_BYTES];
                let len = opus.encode(pcm, &mut out).map_err(opus_error)?;
                out.truncate(len);
                Ok(out)
            }
            EncoderInner::Resampled { resampler, encoder } => {
                let codec = self.codec;
                let mut narrow = vec![0; resampler.max_output_samples(pcm.len())];
                let n =
                    resampler
                        .resample_into(pcm, &mut narrow)
                        .map_err(|_| CodecError::Audio {
                            codec,
                            detail: "resampling failed",
                        })?;
                narrow.truncate(n);
                let mut out = vec![0; encoder.max_encode_bytes(narrow.len())];
                let len =
                    encoder
                        .encode_into(&narrow, &mut out)
                        .map_err(|_| CodecError::Audio {
                            codec,
                            detail: "encoding failed",
                        })?;
                out.truncate(len);
                Ok(out)
            }
        }
    }

    /// Sets Opus's target bitrate in bit/s (500 to 512 000); a no-op for
    /// the fixed-rate codecs.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        match &mut self.inner {
            EncoderInner::Opus(opus) => {
                if !(500..=512_000).contains(&bps) {
                    return Err(CodecError::Config(
                        "Opus bitrate must be 500 to 512000 bit/s",
                    ));
                }
                opus.set_bitrate(Bitrate::BitsPerSecond(bits_per_second(bps)))
                    .map_err(opus_error)
            }
            EncoderInner::Resampled { .. } => Ok(()),
        }
    }

    /// RTP timestamp ticks per 20 ms frame: 960 for Opus (48 kHz clock),
    /// 160 for PCMU, PCMA and G.722 (8 kHz clock; RFC 3551 keeps G.722 on
    /// 8 kHz for historical reasons).
    pub fn rtp_ticks_per_frame(&self) -> u32 {
        match self.codec {
            Codec::Opus => 960,
            _ => 160,
        }
    }
}

/// `bps` as libopus's `i32`, saturating (callers check the range first).
fn bits_per_second(bps: u32) -> i32 {
    i32::try_from(bps).unwrap_or(i32::MAX)
}

impl AudioDecoder {
    /// A decoder for `codec`: Opus, PCMU, PCMA or G.722; VP8 (or any other
    /// codec) is [`CodecError::Unsupported`].
    pub fn new(codec: Codec) -> Result<Self, CodecError> {
        let inner = if codec == Codec::Opus {
            DecoderInner::Opus(
                OpusDecoder::new(SampleRate::Hz48000, Channels::Mono).map_err(opus_error)?,
            )
        } else {
            let (rate, kind) = narrowband(codec)?;
            DecoderInner::Resampled {
                decoder: audio_codec::create_decoder(kind),
                resampler: resampler(codec, rate, SAMPLE_RATE as usize)?,
                last: Vec::new(),
                fade: 1.0,
            }
        };
        Ok(Self { codec, inner })
    }

    /// The codec this decoder takes.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// One encoded frame to 48 kHz PCM: [`FRAME_SAMPLES`] samples for a
    /// 20 ms frame, which is what [`AudioEncoder`] makes (a frame of
    /// another duration gives that duration's samples).
    ///
    /// An empty frame, one longer than [`MAX_FRAME_BYTES`] or an Opus
    /// packet libopus rejects is an error. G.711 and G.722 have no
    /// structure to check: any bytes decode to some sound.
    pub fn decode(&mut self, frame: &[u8]) -> Result<Vec<i16>, CodecError> {
        if frame.is_empty() {
            return Err(CodecError::BadFrame("empty audio frame"));
        }
        if frame.len() > MAX_FRAME_BYTES {
            return Err(CodecError::BadFrame("audio frame longer than 1275 bytes"));
        }
        let codec = self.codec;
        match &mut self.inner {
            DecoderInner::Opus(opus) => {
                let mut out = vec![0; OPUS_MAX_SAMPLES];
                let n = opus
                    .decode(Some(frame), &mut out[..], false)
                    .map_err(opus_error)?;
                out.truncate(n);
                Ok(out)
            }
            DecoderInner::Resampled {
                decoder,
                resampler,
                last,
                fade,
            } => {
                let mut narrow = vec![0; decoder.max_decode_samples(frame.len())];
                let n = decoder
                    .decode_into(frame, &mut narrow)
                    .map_err(|_| CodecError::Audio {
                        codec,
                        detail: "decoding failed",
                    })?;
                narrow.truncate(n);
                let mut out = vec![0; resampler.max_output_samples(narrow.len())];
                let n =
                    resampler
                        .resample_into(&narrow, &mut out)
                        .map_err(|_| CodecError::Audio {
                            codec,
                            detail: "resampling failed",
                        })?;
                out.truncate(n);
                last.clone_from(&out);
                *fade = 1.0;
                Ok(out)
            }
        }
    }

    /// 20 ms ([`FRAME_SAMPLES`] samples) to play in place of a lost frame.
    ///
    /// Opus runs its packet loss concealment. The other codecs have none:
    /// the last frame is repeated, fading to half its level across each
    /// concealed frame (so about -30 dB after 100 ms of loss), or silence
    /// if nothing was decoded yet.
    pub fn conceal(&mut self) -> Result<Vec<i16>, CodecError> {
        match &mut self.inner {
            DecoderInner::Opus(opus) => {
                let mut out = vec![0; FRAME_SAMPLES];
                let n = opus
                    .decode(None::<&[u8]>, &mut out[..], false)
                    .map_err(opus_error)?;
                out.resize(n.max(FRAME_SAMPLES), 0);
                out.truncate(FRAME_SAMPLES);
                Ok(out)
            }
            DecoderInner::Resampled { last, fade, .. } => {
                // Below 1/256 (-48 dB) the repeat is inaudible: stop it.
                if last.is_empty() || *fade < 1.0 / 256.0 {
                    return Ok(vec![0; FRAME_SAMPLES]);
                }
                let start = *fade;
                let out = last
                    .iter()
                    .cycle()
                    .take(FRAME_SAMPLES)
                    .enumerate()
                    .map(|(i, &s)| {
                        let gain = start * (1.0 - 0.5 * i as f64 / FRAME_SAMPLES as f64);
                        super::tone::saturate_i16(f64::from(s) * gain)
                    })
                    .collect();
                *fade = start / 2.0;
                Ok(out)
            }
        }
    }
}

impl std::fmt::Debug for AudioEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioEncoder")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AudioDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioDecoder")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}
