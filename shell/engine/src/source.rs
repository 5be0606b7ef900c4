//! Where a call's outgoing audio and video come from when it is not a
//! device: a tone, a WAV file, silence, a moving test pattern.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::camera::Camera;
use crate::media::audio::{FRAME_SAMPLES, SAMPLE_RATE};
use crate::media::pattern::TestPattern;
use crate::media::tone::ToneGenerator;
use crate::media::video::I420;

/// The microphone of a call.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioInput {
    /// A sine tone at this frequency (Hz), at a quarter of full scale.
    Tone(f32),
    /// The same tone, loud for 200 ms at the start of every second and
    /// 30 dB quieter in between: each beep's start is a moment a listener
    /// can time (mouth-to-ear latency).
    Beeps(f32),
    /// A WAV file (PCM, any rate and channel count), looped.
    Wav(PathBuf),
    /// Nothing: silence is sent.
    Silence,
    /// No audio is sent at all: a listener (an intercom in a large room
    /// opens every member's stream, so a room of listeners is what it can
    /// keep up with).
    None,
    /// A microphone: the one of this name ([`crate::devices::list`]), or
    /// the default one.
    Device(Option<String>),
}

/// The camera of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoInput {
    /// No video is sent.
    None,
    /// A moving test pattern that carries its frame number.
    Pattern,
    /// A camera: the V4L2 device at this path ([`crate::camera::list`]),
    /// or the first one. Without one, the test pattern is sent.
    Camera(Option<String>),
}

/// A beep starts every this many 20 ms frames (1 s) and lasts this many
/// (200 ms).
const BEEP_EVERY: u64 = 50;
const BEEP_FRAMES: u64 = 10;

/// Why a WAV file cannot be played.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct WavError {
    path: String,
    reason: String,
}

/// Produces 20 ms frames of 48 kHz mono audio.
#[derive(Debug)]
pub(crate) enum AudioSource {
    Tone(ToneGenerator),
    Beeps { tone: ToneGenerator, frame: u64 },
    Clip { samples: Vec<i16>, at: usize },
    Silence,
}

impl AudioSource {
    pub(crate) fn open(input: &AudioInput) -> Result<Self, WavError> {
        Ok(match input {
            AudioInput::Tone(hz) => Self::Tone(ToneGenerator::new(*hz, 0.25, SAMPLE_RATE)),
            AudioInput::Beeps(hz) => Self::Beeps {
                tone: ToneGenerator::new(*hz, 0.25, SAMPLE_RATE),
                frame: 0,
            },
            AudioInput::Wav(path) => Self::Clip {
                samples: read_wav(path)?,
                at: 0,
            },
            // The call reads the device itself (crate::devices).
            AudioInput::Silence | AudioInput::None | AudioInput::Device(_) => Self::Silence,
        })
    }

    /// The next 20 ms, and whether a beep starts with it.
    pub(crate) fn next_frame(&mut self) -> (Vec<i16>, bool) {
        let mut frame = vec![0; FRAME_SAMPLES];
        let mut onset = false;
        match self {
            Self::Tone(tone) => tone.fill(&mut frame),
            Self::Beeps { tone, frame: n } => {
                tone.fill(&mut frame);
                let phase = *n % BEEP_EVERY;
                *n += 1;
                onset = phase == 0;
                if phase >= BEEP_FRAMES {
                    // About -42 dBFS: quiet, but a stream all the same.
                    for s in &mut frame {
                        *s /= 32;
                    }
                }
            }
            Self::Clip { samples, at } => {
                for s in &mut frame {
                    *s = samples.get(*at).copied().unwrap_or(0);
                    *at = (*at + 1) % samples.len().max(1);
                }
            }
            Self::Silence => {}
        }
        (frame, onset)
    }
}

/// A WAV file as 48 kHz mono samples: channels averaged, other rates
/// resampled linearly.
#[allow(clippy::cast_possible_truncation)] // Sample arithmetic in f32, clamped to i16; lengths far below 2^24.
fn read_wav(path: &Path) -> Result<Vec<i16>, WavError> {
    let fail = |reason: String| WavError {
        path: path.display().to_string(),
        reason,
    };
    let reader = hound::WavReader::open(path).map_err(|e| fail(e.to_string()))?;
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample > 32 {
        return Err(fail("only integer PCM WAV files are supported".into()));
    }
    let shift = u32::from(spec.bits_per_sample.saturating_sub(16));
    let up = 16u32.saturating_sub(u32::from(spec.bits_per_sample));
    let channels = usize::from(spec.channels.max(1));
    let raw: Vec<i32> = reader
        .into_samples::<i32>()
        .collect::<Result<_, _>>()
        .map_err(|e| fail(e.to_string()))?;
    let mono: Vec<f32> = raw
        .chunks(channels)
        .map(|c| {
            let sum: i64 = c.iter().map(|&s| i64::from((s >> shift) << up)).sum();
            sum as f32 / c.len() as f32
        })
        .collect();
    if mono.is_empty() {
        return Err(fail("no samples".into()));
    }
    let ratio = spec.sample_rate.max(1) as f32 / SAMPLE_RATE as f32;
    let len = (mono.len() as f32 / ratio) as usize;
    Ok((0..len)
        .map(|i| {
            let x = i as f32 * ratio;
            let j = x as usize;
            let a = mono.get(j).copied().unwrap_or(0.0);
            let b = mono.get(j + 1).copied().unwrap_or(a);
            (a + (b - a) * (x - j as f32)).clamp(-32_768.0, 32_767.0) as i16
        })
        .collect())
}

/// Produces pictures.
#[derive(Debug)]
pub(crate) struct VideoSource {
    pattern: TestPattern,
    next: u32,
    camera: Option<(Camera, Option<I420>)>,
}

impl VideoSource {
    pub(crate) fn pattern(width: u32, height: u32) -> Self {
        Self {
            pattern: TestPattern::new(width, height),
            next: 0,
            camera: None,
        }
    }

    /// The camera's pictures; the test pattern until the first one comes.
    pub(crate) fn camera(camera: Camera, width: u32, height: u32) -> Self {
        Self {
            camera: Some((camera, None)),
            ..Self::pattern(width, height)
        }
    }

    /// Why the camera stopped or refused a picture since the last call.
    pub(crate) fn camera_failure(&self) -> Option<String> {
        self.camera.as_ref()?.0.take_failure()
    }

    /// The next picture: the camera's latest (kept, not copied, for a
    /// camera slower than the call), or the pattern's next.
    pub(crate) fn next_picture(&mut self) -> Cow<'_, I420> {
        if let Some((camera, last)) = &mut self.camera {
            if let Some(picture) = camera.take_latest() {
                *last = Some(picture);
            }
            if let Some(picture) = last {
                return Cow::Borrowed(picture);
            }
        }
        let n = self.next;
        self.next = self.next.wrapping_add(1);
        Cow::Owned(self.pattern.frame(n))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

    use super::*;
    use crate::media::tone::detect_frequency;

    #[test]
    fn a_stereo_44k1_wav_plays_as_48k_mono_at_its_pitch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..44_100 {
            let s = (f32::sin(i as f32 * 2.0 * std::f32::consts::PI * 500.0 / 44_100.0) * 8000.0)
                as i16;
            w.write_sample(s).unwrap();
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        let mut source = AudioSource::open(&AudioInput::Wav(path)).unwrap();
        let audio: Vec<i16> = (0..10).flat_map(|_| source.next_frame().0).collect();
        let hz = detect_frequency(&audio, SAMPLE_RATE).unwrap();
        assert!((hz - 500.0).abs() < 10.0, "{hz}");
    }

    #[test]
    fn beeps_start_once_a_second_and_stand_out() {
        use crate::media::tone::level_dbfs;
        let mut source = AudioSource::open(&AudioInput::Beeps(700.0)).unwrap();
        let frames: Vec<(Vec<i16>, bool)> = (0..150).map(|_| source.next_frame()).collect();
        let onsets: Vec<usize> = (0..150).filter(|&i| frames[i].1).collect();
        assert_eq!(onsets, [0, 50, 100]);
        let loud = level_dbfs(&frames[55].0);
        let quiet = level_dbfs(&frames[75].0);
        // A sine at a quarter of full scale is -15 dBFS RMS.
        assert!(loud > -16.0 && quiet < loud - 25.0, "{loud} {quiet}");
    }

    #[test]
    fn a_file_that_is_not_wav_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, b"not a wav file").unwrap();
        let e = AudioSource::open(&AudioInput::Wav(path)).unwrap_err();
        assert!(e.to_string().contains("notes.txt"), "{e}");
    }
}
