//! A test tone and the measurements that tell it arrived: its frequency and
//! its level.
//!
//! An end-to-end test sends each participant's audio as a sine of its own
//! frequency and checks, after the codecs, the network and the mixer, which
//! frequencies came out and how loud.
//!
//! ```
//! use satsuma_engine::media::tone::{ToneGenerator, detect_frequency, level_dbfs};
//!
//! let mut tone = ToneGenerator::new(440.0, 0.5, 48_000);
//! let mut samples = vec![0i16; 4800]; // 100 ms
//! tone.fill(&mut samples);
//! let hz = detect_frequency(&samples, 48_000).expect("a tone at -9 dBFS");
//! assert!((hz - 440.0).abs() < 1.0);
//! assert!((level_dbfs(&samples) - -9.0).abs() < 0.2); // 0.5 of full scale, RMS of a sine
//! ```

use std::f64::consts::TAU;

/// Signals quieter than this (RMS, dBFS) have no frequency.
pub const DETECT_FLOOR_DBFS: f32 = -50.0;

/// The level [`level_dbfs`] gives silence.
pub const SILENCE_DBFS: f32 = -120.0;

/// At most this many samples are analysed (341 ms at 48 kHz): enough for a
/// sub-hertz estimate, few enough to stay fast in a debug build.
const MAX_ANALYSED: usize = 16_384;

/// Lowest frequency [`detect_frequency`] reports, in Hz.
const MIN_HZ: f64 = 20.0;

/// A sine wave whose phase continues from one [`fill`](Self::fill) to the
/// next, so consecutive frames join without a click.
#[derive(Clone, Debug)]
pub struct ToneGenerator {
    /// Phase advance per sample, radians.
    step: f64,
    /// Current phase, radians, in `0..TAU`.
    phase: f64,
    /// Peak amplitude in sample units.
    peak: f64,
}

impl ToneGenerator {
    /// A sine of `frequency_hz` at `amplitude` (0 to 1 of full scale,
    /// clamped; NaN is 0) sampled at `sample_rate`. A zero sample rate or a
    /// non-finite frequency gives silence.
    pub fn new(frequency_hz: f32, amplitude: f32, sample_rate: u32) -> Self {
        let amplitude = if amplitude.is_nan() {
            0.0
        } else {
            amplitude.clamp(0.0, 1.0)
        };
        let step = if sample_rate == 0 || !frequency_hz.is_finite() {
            0.0
        } else {
            TAU * f64::from(frequency_hz) / f64::from(sample_rate)
        };
        let peak = if step == 0.0 {
            0.0
        } else {
            f64::from(amplitude) * f64::from(i16::MAX)
        };
        Self {
            step,
            phase: 0.0,
            peak,
        }
    }

    /// Writes the next `out.len()` samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        for sample in out {
            *sample = saturate_i16(self.peak * self.phase.sin());
            self.phase = (self.phase + self.step).rem_euclid(TAU);
        }
    }
}

/// `x` rounded to the nearest `i16`, saturating (NaN is 0).
pub(crate) fn saturate_i16(x: f64) -> i16 {
    // `as` from a float saturates and maps NaN to 0, which is what we want.
    #[allow(clippy::cast_possible_truncation)]
    let sample = x.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
    sample
}

/// The dominant frequency of `samples` in Hz, or `None` when the signal is
/// quieter than [`DETECT_FLOOR_DBFS`] (or shorter than 64 samples).
///
/// Looks at the first 16 384 samples at most. For a clean tone between
/// 150 Hz and 4 kHz, 100 ms at 48 kHz gives the frequency to well within
/// 1 Hz; codec noise adds little, as the estimate is where the windowed
/// spectrum peaks (found on an FFT, then refined on the continuous
/// spectrum).
pub fn detect_frequency(samples: &[i16], sample_rate: u32) -> Option<f32> {
    if sample_rate == 0 || samples.len() < 64 || level_dbfs(samples) < DETECT_FLOOR_DBFS {
        return None;
    }
    let rate = f64::from(sample_rate);
    let samples = samples.get(..MAX_ANALYSED).unwrap_or(samples);
    let n = samples.len();
    let mean = samples.iter().map(|&s| f64::from(s)).sum::<f64>() / n as f64;
    // A Hann window: low side lobes, so a neighbour cannot pull the peak.
    let windowed: Vec<f64> = samples
        .iter()
        .enumerate()
        .map(|(i, &s)| (f64::from(s) - mean) * (0.5 - 0.5 * (TAU * i as f64 / n as f64).cos()))
        .collect();
    if windowed.iter().all(|&x| x == 0.0) {
        return None;
    }

    // Coarse: the largest bin of a twice zero-padded FFT.
    let size = (2 * n).next_power_of_two();
    let mut spectrum: Vec<(f64, f64)> = windowed.iter().map(|&x| (x, 0.0)).collect();
    spectrum.resize(size, (0.0, 0.0));
    fft(&mut spectrum);
    let bin_hz = rate / size as f64;
    let (peak, _) = spectrum
        .iter()
        .enumerate()
        .take(size / 2)
        .filter(|&(k, _)| k as f64 * bin_hz >= MIN_HZ)
        .map(|(k, &(re, im))| (k, re * re + im * im))
        .fold(
            (0, f64::MIN),
            |best, cur| if cur.1 > best.1 { cur } else { best },
        );
    if peak == 0 {
        return None; // the sample rate is too low for any bin to be audible
    }

    // Fine: the maximum of the continuous spectrum within one bin of it,
    // by golden-section search (the main lobe is four bins wide).
    let power = |hz: f64| dtft_power(&windowed, TAU * hz / rate);
    let centre = peak as f64 * bin_hz;
    let (mut lo, mut hi) = (
        (centre - bin_hz).max(MIN_HZ),
        (centre + bin_hz).min(rate / 2.0),
    );
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut a = hi - ratio * (hi - lo);
    let mut b = lo + ratio * (hi - lo);
    let (mut pa, mut pb) = (power(a), power(b));
    while hi - lo > 0.01 {
        if pa < pb {
            lo = a;
            a = b;
            pa = pb;
            b = lo + ratio * (hi - lo);
            pb = power(b);
        } else {
            hi = b;
            b = a;
            pb = pa;
            a = hi - ratio * (hi - lo);
            pa = power(a);
        }
    }
    #[allow(clippy::cast_possible_truncation)] // a frequency below half the sample rate
    let hz = ((lo + hi) / 2.0) as f32;
    Some(hz)
}

/// RMS level of `samples` in dBFS (0 is a full-scale square wave, a
/// full-scale sine is about -3), at least [`SILENCE_DBFS`]; an empty slice
/// is silence.
pub fn level_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return SILENCE_DBFS;
    }
    let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (energy / samples.len() as f64).sqrt() / 32_768.0;
    if rms <= 0.0 {
        return SILENCE_DBFS;
    }
    #[allow(clippy::cast_possible_truncation)] // clamped to -120..=0
    let db = (20.0 * rms.log10()).clamp(f64::from(SILENCE_DBFS), 0.0) as f32;
    db
}

/// |X(ω)|² of `x` at `omega` radians per sample.
fn dtft_power(x: &[f64], omega: f64) -> f64 {
    let (step_re, step_im) = (omega.cos(), -omega.sin());
    let (mut w_re, mut w_im) = (1.0f64, 0.0f64);
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for &v in x {
        re += v * w_re;
        im += v * w_im;
        (w_re, w_im) = (
            w_re * step_re - w_im * step_im,
            w_re * step_im + w_im * step_re,
        );
    }
    re * re + im * im
}

/// In-place iterative radix-2 FFT; `data.len()` is a power of two.
fn fft(data: &mut [(f64, f64)]) {
    let n = data.len();
    if n < 2 {
        return;
    }
    let bits = n.trailing_zeros();
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS - bits);
        if j > i {
            data.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let angle = -TAU / len as f64;
        let (step_re, step_im) = (angle.cos(), angle.sin());
        for chunk in data.chunks_exact_mut(len) {
            let (first, second) = chunk.split_at_mut(len / 2);
            let (mut w_re, mut w_im) = (1.0f64, 0.0f64);
            for (a, b) in first.iter_mut().zip(second.iter_mut()) {
                let t = (b.0 * w_re - b.1 * w_im, b.0 * w_im + b.1 * w_re);
                *b = (a.0 - t.0, a.1 - t.1);
                *a = (a.0 + t.0, a.1 + t.1);
                (w_re, w_im) = (
                    w_re * step_re - w_im * step_im,
                    w_re * step_im + w_im * step_re,
                );
            }
        }
        len *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, amplitude: f32, len: usize) -> Vec<i16> {
        let mut out = vec![0; len];
        ToneGenerator::new(hz, amplitude, 48_000).fill(&mut out);
        out
    }

    #[test]
    fn detects_tones_from_200_to_3000_hz_within_a_hertz() {
        for hz in [
            150.0, 200.0, 261.6, 440.0, 997.0, 1000.0, 1500.0, 2222.0, 3000.0, 4000.0,
        ] {
            let found = detect_frequency(&tone(hz, 0.3, 4_800), 48_000).unwrap();
            assert!((found - hz).abs() < 1.0, "{hz} Hz detected as {found}");
        }
    }

    #[test]
    fn detects_at_other_sample_rates_and_lengths() {
        let mut samples = vec![0; 1_600];
        ToneGenerator::new(1_000.0, 0.5, 8_000).fill(&mut samples);
        let found = detect_frequency(&samples, 8_000).unwrap();
        assert!((found - 1_000.0).abs() < 1.0, "{found}");
        // A second of audio: only the start is analysed, the answer holds.
        let found = detect_frequency(&tone(700.0, 0.5, 48_000), 48_000).unwrap();
        assert!((found - 700.0).abs() < 0.5, "{found}");
    }

    #[test]
    fn tells_600_from_700_hz() {
        let a = detect_frequency(&tone(600.0, 0.5, 4_800), 48_000).unwrap();
        let b = detect_frequency(&tone(700.0, 0.5, 4_800), 48_000).unwrap();
        assert!(
            (a - 600.0).abs() < 2.0 && (b - 700.0).abs() < 2.0,
            "{a} {b}"
        );
    }

    #[test]
    fn the_louder_of_two_tones_wins() {
        let loud = tone(500.0, 0.4, 4_800);
        let quiet = tone(1_300.0, 0.1, 4_800);
        let mixed: Vec<i16> = loud.iter().zip(&quiet).map(|(a, b)| a + b).collect();
        let found = detect_frequency(&mixed, 48_000).unwrap();
        assert!((found - 500.0).abs() < 2.0, "{found}");
    }

    #[test]
    fn silence_and_whispers_have_no_frequency() {
        assert_eq!(detect_frequency(&[0; 4_800], 48_000), None);
        assert_eq!(detect_frequency(&[], 48_000), None);
        // -60 dBFS: below the floor.
        assert_eq!(detect_frequency(&tone(440.0, 0.0014, 4_800), 48_000), None);
        // -40 dBFS: above it.
        assert!(detect_frequency(&tone(440.0, 0.014, 4_800), 48_000).is_some());
        assert_eq!(detect_frequency(&tone(440.0, 0.5, 4_800), 0), None);
    }

    #[test]
    fn levels_of_known_signals() {
        assert_eq!(level_dbfs(&[]), SILENCE_DBFS);
        assert_eq!(level_dbfs(&[0; 960]), SILENCE_DBFS);
        let full_square: Vec<i16> = (0..960)
            .map(|i| if i % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        assert!(level_dbfs(&full_square) > -0.01);
        // A sine's RMS is its peak over sqrt(2): -3 dB, and -6 dB per halving.
        assert!((level_dbfs(&tone(440.0, 1.0, 4_800)) - -3.01).abs() < 0.05);
        assert!((level_dbfs(&tone(440.0, 0.5, 4_800)) - -9.03).abs() < 0.05);
    }

    #[test]
    fn the_phase_continues_across_fills() {
        let whole = tone(1_000.0, 0.5, 960);
        let mut generator = ToneGenerator::new(1_000.0, 0.5, 48_000);
        let mut parts = vec![0; 960];
        let (a, b) = parts.split_at_mut(317);
        generator.fill(a);
        generator.fill(b);
        assert_eq!(whole, parts);
    }
}
