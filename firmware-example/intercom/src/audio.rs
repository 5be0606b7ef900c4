//! The intercom's audio, without a sound card: G.711 µ-law (ITU-T G.711,
//! the PCMU of RTP), a tone to send where a board has no microphone (QEMU),
//! and a meter that tells which tone a member's frames carry.
//!
//! Nothing here allocates: a 20 ms frame is 160 samples at 8 kHz, in
//! caller buffers.

/// Samples per second.
pub const RATE: u32 = 8_000;
/// Samples (and µ-law bytes) in one 20 ms frame.
pub const FRAME: usize = 160;
/// [`FRAME`] as a step of the RTP timestamp (the 8 kHz clock).
pub const FRAME_TICKS: u32 = 160;

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

/// A sine tone, a sample at a time, from a quarter-wave table: no floating
/// point, no `libm`.
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
    /// A tone of `hz` at `amplitude` (of 32,767).
    #[must_use]
    pub fn new(hz: u32, amplitude: i16) -> Self {
        let step = (u64::from(hz.min(RATE / 2)) << 32) / u64::from(RATE);
        Self {
            phase: 0,
            step: u32::try_from(step).unwrap_or(u32::MAX),
            amplitude: i32::from(amplitude),
        }
    }

    /// The next 20 ms, µ-law encoded into `out`.
    pub fn fill_ulaw(&mut self, out: &mut [u8; FRAME]) {
        for byte in out {
            *byte = ulaw_encode(self.next_sample());
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
/// peak, so silence reads as silence.
#[derive(Debug, Clone, Default)]
pub struct ToneMeter {
    crossings: u32,
    samples: u32,
    peak: u16,
    last: i16,
}

/// Below this peak a window is silence (-50 dBFS).
const SILENCE: u16 = 104;

impl ToneMeter {
    /// Adds one µ-law frame.
    pub fn add_ulaw(&mut self, frame: &[u8]) {
        for &byte in frame {
            let s = ulaw_decode(byte);
            if (s >= 0) != (self.last >= 0) {
                self.crossings += 1;
            }
            self.last = s;
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
            let hz = u64::from(self.crossings) * u64::from(RATE) / (2 * u64::from(self.samples));
            u32::try_from(hz).unwrap_or(u32::MAX)
        };
        let heard = Heard {
            hz,
            peak: self.peak,
            samples: self.samples,
        };
        *self = Self {
            last: self.last,
            ..Self::default()
        };
        heard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_meter_reads_the_tone_sent() {
        for hz in [300, 440, 500, 660, 1_000, 3_000] {
            let mut tone = Tone::new(hz, 8_000);
            let mut meter = ToneMeter::default();
            let mut frame = [0; FRAME];
            for _ in 0..50 {
                tone.fill_ulaw(&mut frame);
                meter.add_ulaw(&frame);
            }
            let heard = meter.take();
            assert!(heard.hz.abs_diff(hz) <= 2, "{hz} Hz read as {heard:?}");
            assert!((7_000..=8_200).contains(&heard.peak), "{heard:?}");
            assert_eq!(heard.samples, 8_000);
        }
    }

    #[test]
    fn silence_reads_as_silence_and_the_window_restarts() {
        let mut meter = ToneMeter::default();
        meter.add_ulaw(&[0xFF; FRAME]);
        assert_eq!(meter.take().hz, 0);
        let mut quiet = [0; FRAME];
        Tone::new(440, 50).fill_ulaw(&mut quiet);
        meter.add_ulaw(&quiet);
        assert_eq!(meter.take().hz, 0, "a tone at -56 dBFS is silence");
        assert_eq!(meter.take().samples, 0);
    }
}
