//! The intercom's audio, without a sound card: its two voices, G.711
//! µ-law (ITU-T G.711, the PCMU of RTP, 8 kHz) and G.722 (wideband,
//! 16 kHz, both at 64 kbit/s: 160 bytes per 20 ms), a tone to send where a
//! board has no microphone (QEMU), and a meter that tells which tone a
//! member's frames carry.
//!
//! Nothing here allocates per frame: frames are in caller buffers; a G.722
//! decoder (about 300 bytes of state) is allocated once per member heard
//! in G.722.

use alloc::boxed::Box;
use core::fmt;

use audio_codec::g722::{G722Decoder, G722Encoder};
use audio_codec::{Decoder as _, Encoder as _};
use satsuma_core::media::Codec;

/// G.711's samples per second.
pub const RATE: u32 = 8_000;
/// G.711's samples (and µ-law bytes) in one 20 ms frame.
pub const FRAME: usize = 160;
/// The most samples in one 20 ms frame of either voice (G.722's 16 kHz).
pub const WIDE_FRAME: usize = 320;
/// Bytes of one encoded 20 ms frame, in either voice (64 kbit/s).
pub const ENCODED: usize = 160;
/// One frame as a step of the RTP timestamp: 8 kHz for both voices
/// (G.722's RTP clock is 8 kHz, RFC 3551 section 4.5.2).
pub const FRAME_TICKS: u32 = 160;

/// A codec the intercom speaks and plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voice {
    /// G.711 µ-law, 8 kHz.
    Pcmu,
    /// G.722, 16 kHz.
    G722,
}

impl Voice {
    /// The voice of frames tagged `codec`; `None` for one the intercom
    /// cannot play (Opus, video).
    #[must_use]
    pub fn from_codec(codec: Codec) -> Option<Self> {
        match codec {
            Codec::Pcmu => Some(Self::Pcmu),
            Codec::G722 => Some(Self::G722),
            _ => None,
        }
    }

    /// `pcmu` or `g722`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Codec::audio_from_name(name).and_then(Self::from_codec)
    }

    /// The codec frames carry in their header.
    #[must_use]
    pub fn codec(self) -> Codec {
        match self {
            Self::Pcmu => Codec::Pcmu,
            Self::G722 => Codec::G722,
        }
    }

    /// Samples per second.
    #[must_use]
    pub fn rate(self) -> u32 {
        match self {
            Self::Pcmu => RATE,
            Self::G722 => 16_000,
        }
    }

    /// Samples in one 20 ms frame.
    #[must_use]
    pub fn samples(self) -> usize {
        match self {
            Self::Pcmu => FRAME,
            Self::G722 => WIDE_FRAME,
        }
    }
}

/// Why audio could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioError {
    /// The samples are not one 20 ms frame of the voice.
    FrameSize {
        /// Samples expected.
        expected: usize,
        /// Samples given.
        got: usize,
    },
    /// The output buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for AudioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FrameSize { expected, got } => {
                write!(f, "a 20 ms frame is {expected} samples, not {got}")
            }
            Self::BufferTooSmall => f.write_str("the audio buffer is too small"),
        }
    }
}

impl core::error::Error for AudioError {}

/// Encodes 20 ms frames of one voice.
pub struct VoiceEncoder {
    voice: Voice,
    g722: G722Encoder,
}

impl fmt::Debug for VoiceEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoiceEncoder")
            .field("voice", &self.voice)
            .finish_non_exhaustive()
    }
}

impl VoiceEncoder {
    /// An encoder for `voice` (G.722 at 64 kbit/s).
    #[must_use]
    pub fn new(voice: Voice) -> Self {
        Self {
            voice,
            g722: G722Encoder::new(),
        }
    }

    /// The voice it encodes.
    #[must_use]
    pub fn voice(&self) -> Voice {
        self.voice
    }

    /// Encodes one 20 ms frame of [`Voice::samples`] samples into `out`;
    /// the bytes written ([`ENCODED`]).
    ///
    /// # Errors
    /// [`AudioError`] when `pcm` is not one frame or `out` is too small.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, AudioError> {
        let expected = self.voice.samples();
        if pcm.len() != expected {
            return Err(AudioError::FrameSize {
                expected,
                got: pcm.len(),
            });
        }
        match self.voice {
            Voice::Pcmu => {
                let out = out.get_mut(..pcm.len()).ok_or(AudioError::BufferTooSmall)?;
                for (byte, &sample) in out.iter_mut().zip(pcm) {
                    *byte = ulaw_encode(sample);
                }
                Ok(pcm.len())
            }
            Voice::G722 => self
                .g722
                .encode_into(pcm, out)
                .map_err(|_| AudioError::BufferTooSmall),
        }
    }
}

/// Decodes one member's frames, in whichever voice each comes.
#[derive(Default)]
pub struct VoiceDecoder {
    /// G.722 is stateful (ADPCM): one decoder per member, made at the
    /// member's first G.722 frame.
    g722: Option<Box<G722Decoder>>,
}

impl fmt::Debug for VoiceDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoiceDecoder")
            .field("g722", &self.g722.is_some())
            .finish()
    }
}

impl VoiceDecoder {
    /// Decodes `data`, a frame in `voice`, into `out`; the samples
    /// written.
    ///
    /// # Errors
    /// [`AudioError::BufferTooSmall`] when `out` cannot hold the samples.
    pub fn decode(
        &mut self,
        voice: Voice,
        data: &[u8],
        out: &mut [i16],
    ) -> Result<usize, AudioError> {
        match voice {
            Voice::Pcmu => {
                let out = out
                    .get_mut(..data.len())
                    .ok_or(AudioError::BufferTooSmall)?;
                for (sample, &byte) in out.iter_mut().zip(data) {
                    *sample = ulaw_decode(byte);
                }
                Ok(data.len())
            }
            Voice::G722 => self
                .g722
                .get_or_insert_with(|| Box::new(G722Decoder::new()))
                .decode_into(data, out)
                .map_err(|_| AudioError::BufferTooSmall),
        }
    }
}

const BIAS: i32 = 0x84;
const CLIP: i32 = 32_635;

/// One 16-bit sample as a µ-law byte (G.711's segment encoding).
#[must_use]
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign: u8 = if s < 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s;
    }
    s = s.min(CLIP) + BIAS;
    // The segment: the position of the highest set bit above bit 7.
    let exponent = (31 - s.leading_zeros()).saturating_sub(7).min(7);
    // `s` < 2^15, so the mantissa is 4 bits and the exponent 3.
    let mantissa = ((s >> (exponent + 3)) & 0x0F) as u8;
    let exponent = exponent as u8;
    !(sign | (exponent << 4) | mantissa)
}

/// A µ-law byte as a 16-bit sample.
#[must_use]
pub fn ulaw_decode(byte: u8) -> i16 {
    let u = !byte;
    let exponent = u32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    // At most (0x0F << 3 + 0x84) << 7 - 0x84 = 32,124: an i16.
    let magnitude = i16::try_from(magnitude).unwrap_or(i16::MAX);
    if u & 0x80 != 0 { -magnitude } else { magnitude }
}

/// The gain a 24-bit MEMS microphone's samples get on their way to 16
/// bits, as a shift: +24 dB. An INMP441 gives -26 dBFS at 94 dB SPL, so
/// speech at a door (about 70 dB SPL at 30 cm) is -50 dBFS: 100 steps of
/// a 16-bit sample, near µ-law's floor. With the gain it is near -26 dBFS,
/// and the sample saturates from 96 dB SPL (a shout into the grille).
pub const MIC_GAIN_SHIFT: u32 = 4;

/// One sample of a 24-bit I2S microphone, read as two 16-bit words of its
/// 32-bit slot (`high` first: the sample's top 16 bits; `low`: its last 8
/// bits, then padding), as 16-bit PCM with [`MIC_GAIN_SHIFT`]'s gain,
/// saturating.
#[must_use]
pub fn mic_sample(high: u16, low: u16) -> i16 {
    let slot = (i32::from(high.cast_signed()) << 16) | i32::from(low & 0xFF00);
    let sample = slot >> (16 - MIC_GAIN_SHIFT);
    i16::try_from(sample).unwrap_or(if sample < 0 { i16::MIN } else { i16::MAX })
}

/// A sine tone, a sample at a time, from a quarter-wave table: no floating
/// point, no `libm`. A board with no microphone sends it.
#[derive(Debug, Clone)]
pub struct Tone {
    /// The phase, a full turn being 2^32.
    phase: u32,
    step: u32,
    amplitude: i32,
}

/// A quarter sine wave, 64 steps, scaled to 32,767.
const QUARTER: [i16; 65] = [
    0, 804, 1608, 2410, 3212, 4011, 4808, 5602, 6393, 7179, 7962, 8739, 9512, 10278, 11039, 11793,
    12539, 13279, 14010, 14732, 15446, 16151, 16846, 17530, 18204, 18868, 19519, 20159, 20787,
    21403, 22005, 22594, 23170, 23731, 24279, 24811, 25329, 25832, 26319, 26790, 27245, 27683,
    28105, 28510, 28898, 29268, 29621, 29956, 30273, 30571, 30852, 31113, 31356, 31580, 31785,
    31971, 32137, 32285, 32412, 32521, 32609, 32678, 32728, 32757, 32767,
];

impl Tone {
    /// A tone of `hz` at `amplitude` (of 32,767), sampled at `rate`.
    #[must_use]
    pub fn new(hz: u32, amplitude: i16, rate: u32) -> Self {
        let rate = rate.max(1);
        let step = (u64::from(hz.min(rate / 2)) << 32) / u64::from(rate);
        Self {
            phase: 0,
            step: u32::try_from(step).unwrap_or(u32::MAX),
            amplitude: i32::from(amplitude),
        }
    }

    /// The next `out.len()` samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        for sample in out {
            *sample = self.next_sample();
        }
    }

    fn next_sample(&mut self) -> i16 {
        let quarter = (self.phase >> 30) as usize;
        // 64 steps per quarter: bits 29..24 of the phase.
        let i = ((self.phase >> 24) & 0x3F) as usize;
        let s = match quarter {
            0 => QUARTER[i],
            1 => QUARTER[64 - i],
            2 => -QUARTER[i],
            _ => -QUARTER[64 - i],
        };
        self.phase = self.phase.wrapping_add(self.step);
        let scaled = i32::from(s) * self.amplitude / 32_767;
        // |s| <= 32,767 and |amplitude| <= 32,767: within i16.
        i16::try_from(scaled).unwrap_or(0)
    }
}

/// What a meter heard over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    /// The tone's frequency from its zero crossings, in Hz; 0 for silence.
    pub hz: u32,
    /// The loudest sample's magnitude.
    pub peak: u16,
    /// Samples measured.
    pub samples: u32,
}

/// Measures the tone a member sends: zero crossings of the decoded
/// samples over a window (a second of audio reads to 0.5 Hz), and the
/// peak, so silence reads as silence. A crossing counts only once the
/// signal is past [`HYSTERESIS`] on the other side, so a codec's noise
/// around zero (G.722's ADPCM as it settles) is not read as tone.
#[derive(Debug, Clone, Default)]
pub struct ToneMeter {
    crossings: u32,
    samples: u32,
    peak: u16,
    /// The side of zero the signal was last seen clearly on.
    positive: bool,
    /// The window's sample rate (its first frame's).
    rate: u32,
}

/// Below this peak a window is silence (-50 dBFS).
const SILENCE: u16 = 104;
/// How far past zero a sample must be to count as the other side.
const HYSTERESIS: i16 = 64;

impl ToneMeter {
    /// Adds decoded samples at `rate`.
    pub fn add(&mut self, samples: &[i16], rate: u32) {
        if self.samples == 0 {
            self.rate = rate;
        }
        for &s in samples {
            if (self.positive && s < -HYSTERESIS) || (!self.positive && s > HYSTERESIS) {
                self.positive = !self.positive;
                self.crossings += 1;
            }
            self.peak = self.peak.max(s.unsigned_abs());
            self.samples += 1;
        }
    }

    /// What the window heard; the meter starts a new window.
    pub fn take(&mut self) -> Heard {
        let hz = if self.peak < SILENCE || self.samples == 0 {
            0
        } else {
            // Two crossings per period.
            let hz =
                u64::from(self.crossings) * u64::from(self.rate) / (2 * u64::from(self.samples));
            u32::try_from(hz).unwrap_or(u32::MAX)
        };
        let heard = Heard {
            hz,
            peak: self.peak,
            samples: self.samples,
        };
        *self = Self {
            positive: self.positive,
            ..Self::default()
        };
        heard
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Test code.
mod tests {
    use super::*;

    #[test]
    fn a_microphone_sample_gets_24_db_and_saturates() {
        // The 24-bit sample 0x000100 is 1 in the high word: 16 with the
        // gain; 0x000010, below the high word, is 1.
        assert_eq!(mic_sample(0x0001, 0x0000), 16);
        assert_eq!(mic_sample(0x0000, 0x1000), 1);
        assert_eq!(mic_sample(0x0010, 0x0000), 256);
        assert_eq!(mic_sample(0xFFF0, 0x0000), -256);
        // The padding byte is ignored.
        assert_eq!(mic_sample(0x0010, 0x00FF), 256);
        assert_eq!(mic_sample(0x07FF, 0xF000), i16::MAX);
        assert_eq!(mic_sample(0x07FF, 0x0000), 32_752);
        // Past 1/16 of full scale: saturated, never wrapped.
        assert_eq!(mic_sample(0x0800, 0x0000), i16::MAX);
        assert_eq!(mic_sample(0x7FFF, 0xFF00), i16::MAX);
        assert_eq!(mic_sample(0xF800, 0x0000), i16::MIN);
        assert_eq!(mic_sample(0x8000, 0x0000), i16::MIN);
        assert_eq!(mic_sample(0xFFFF, 0xFF00), -1);
    }

    #[test]
    fn ulaw_has_g711s_code_points() {
        // Silence is 0xFF, the extremes 0x80 and 0x00 (G.711 table 2a).
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x80), 32_124);
        assert_eq!(ulaw_decode(0x00), -32_124);
        // The first segment steps by 8, the last by 1,024.
        assert_eq!(ulaw_decode(ulaw_encode(100)), 104);
        assert_eq!(ulaw_decode(ulaw_encode(-30_000)), -30_076);
    }

    #[test]
    fn every_byte_survives_a_round_trip_and_samples_stay_close() {
        for byte in 0..=255u8 {
            // 0x7F (negative zero) decodes to 0, which encodes as 0xFF.
            if byte != 0x7F {
                assert_eq!(ulaw_encode(ulaw_decode(byte)), byte, "{byte:#x}");
            }
        }
        for s in (-32_000i16..32_000).step_by(37) {
            let back = i32::from(ulaw_decode(ulaw_encode(s)));
            // Segment 7 steps by 1,024: half of that is the worst error.
            assert!((back - i32::from(s)).abs() <= 1_024, "{s} -> {back}");
        }
    }

    /// One second of `hz` in `voice`, through its encoder and a decoder,
    /// measured.
    fn through(voice: Voice, hz: u32) -> Heard {
        let mut tone = Tone::new(hz, 8_000, voice.rate());
        let mut encoder = VoiceEncoder::new(voice);
        let mut decoder = VoiceDecoder::default();
        let mut meter = ToneMeter::default();
        let mut pcm = [0; WIDE_FRAME];
        let mut encoded = [0; ENCODED];
        let mut decoded = [0; WIDE_FRAME];
        for _ in 0..50 {
            let pcm = &mut pcm[..voice.samples()];
            tone.fill(pcm);
            assert_eq!(encoder.encode(pcm, &mut encoded).unwrap(), ENCODED);
            let n = decoder.decode(voice, &encoded, &mut decoded).unwrap();
            assert_eq!(n, voice.samples());
            meter.add(&decoded[..n], voice.rate());
        }
        meter.take()
    }

    #[test]
    fn the_meter_reads_the_tone_sent_in_either_voice() {
        for voice in [Voice::Pcmu, Voice::G722] {
            for hz in [300, 440, 500, 660, 1_000, 3_000] {
                let heard = through(voice, hz);
                assert!(
                    heard.hz.abs_diff(hz) <= 2,
                    "{voice:?}: {hz} Hz read as {heard:?}"
                );
                // G.722's ADPCM settles within the first frames.
                assert!(
                    (7_000..=9_000).contains(&heard.peak),
                    "{voice:?}: {heard:?}"
                );
                assert_eq!(heard.samples, voice.rate());
            }
        }
        // Wideband: 6 kHz passes G.722 and is above what G.711 can carry.
        let heard = through(Voice::G722, 6_000);
        assert!(heard.hz.abs_diff(6_000) <= 20, "{heard:?}");
    }

    #[test]
    fn a_frame_of_the_wrong_size_is_refused() {
        let mut encoder = VoiceEncoder::new(Voice::G722);
        let mut out = [0; ENCODED];
        assert_eq!(
            encoder.encode(&[0; FRAME], &mut out),
            Err(AudioError::FrameSize {
                expected: 320,
                got: 160
            })
        );
        let mut small = [0; 100];
        assert_eq!(
            VoiceEncoder::new(Voice::Pcmu).encode(&[0; FRAME], &mut small),
            Err(AudioError::BufferTooSmall)
        );
        let mut decoded = [0; FRAME];
        assert_eq!(
            VoiceDecoder::default().decode(Voice::G722, &[0; ENCODED], &mut decoded),
            Err(AudioError::BufferTooSmall)
        );
        assert_eq!(Voice::from_name("g722"), Some(Voice::G722));
        assert_eq!(Voice::from_name("opus"), None);
    }

    #[test]
    fn silence_reads_as_silence_and_the_window_restarts() {
        let mut meter = ToneMeter::default();
        meter.add(&[0; FRAME], RATE);
        assert_eq!(meter.take().hz, 0);
        let mut quiet = [0; FRAME];
        Tone::new(440, 50, RATE).fill(&mut quiet);
        meter.add(&quiet, RATE);
        assert_eq!(meter.take().hz, 0, "a tone at -56 dBFS is silence");
        assert_eq!(meter.take().samples, 0);
    }
}
