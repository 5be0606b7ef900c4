//! Microphones and speakers through `cpal` (PulseAudio on Linux, or ALSA
//! where no sound server runs).
//!
//! cpal's streams must stay on the thread that made them, so one device
//! thread owns them; the call talks to it over a channel and exchanges
//! samples through two bounded queues of 48 kHz mono `i16`. The queues
//! keep latency bounded: a microphone that runs ahead of the call's 20 ms
//! clock loses its oldest samples, a speaker that runs dry plays silence.

use std::collections::VecDeque;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cpal::traits::{DeviceTrait as _, HostTrait as _, StreamTrait as _};

use crate::media::audio::{FRAME_SAMPLES, SAMPLE_RATE};

/// Samples a queue holds at most: 200 ms.
const QUEUE_SAMPLES: usize = FRAME_SAMPLES * 10;
/// A microphone queue deeper than this (60 ms) is trimmed to one frame.
const MIC_TRIM: usize = FRAME_SAMPLES * 3;
/// How long opening a device may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an audio device cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// No device of that name (the names are those of [`list`]).
    #[error("no {kind} named {name:?} (the {kind}s here: {available})")]
    NotFound {
        /// "microphone" or "speaker".
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The names there are.
        available: String,
    },
    /// There is no default device of this kind.
    #[error("no default {kind}: is a sound server (PulseAudio) running?")]
    NoDefault {
        /// "microphone" or "speaker".
        kind: &'static str,
    },
    /// The audio system refused.
    #[error("{kind} {name:?}: {reason}")]
    Backend {
        /// "microphone" or "speaker".
        kind: &'static str,
        /// The device.
        name: String,
        /// What it said.
        reason: String,
    },
    /// The device thread is gone.
    #[error("the audio device thread stopped")]
    Stopped,
}

/// The audio devices of this machine, by the names to open them with.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AudioDevices {
    /// The audio system (`PulseAudio`, `ALSA`).
    pub host: String,
    /// Microphones (and other sources, such as a sink's monitor).
    pub inputs: Vec<String>,
    /// Speakers.
    pub outputs: Vec<String>,
    /// The microphone used when none is named.
    pub default_input: Option<String>,
    /// The speaker used when none is named.
    pub default_output: Option<String>,
}

/// A device's name: its id within the host (unique, and what a person
/// picks from a list).
fn name_of(device: &cpal::Device) -> String {
    device.id().map_or_else(
        |_| {
            device
                .description()
                .map_or_else(|_| "unknown".to_owned(), |d| d.name().to_owned())
        },
        |id| id.id().to_string(),
    )
}

/// Lists the microphones and speakers.
///
/// # Errors
/// [`DeviceError::Backend`] when the audio system cannot be asked.
pub fn list() -> Result<AudioDevices, DeviceError> {
    let host = cpal::default_host();
    let fail = |e: cpal::Error| DeviceError::Backend {
        kind: "device list",
        name: host.id().name().to_owned(),
        reason: e.to_string(),
    };
    Ok(AudioDevices {
        host: host.id().name().to_owned(),
        inputs: host
            .input_devices()
            .map_err(fail)?
            .map(|d| name_of(&d))
            .collect(),
        outputs: host
            .output_devices()
            .map_err(fail)?
            .map(|d| name_of(&d))
            .collect(),
        default_input: host.default_input_device().map(|d| name_of(&d)),
        default_output: host.default_output_device().map(|d| name_of(&d)),
    })
}

fn find(kind: &'static str, name: Option<&str>) -> Result<cpal::Device, DeviceError> {
    let host = cpal::default_host();
    let input = kind == MICROPHONE;
    let Some(name) = name else {
        let device = if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        };
        return device.ok_or(DeviceError::NoDefault { kind });
    };
    let devices: Vec<cpal::Device> = if input {
        host.input_devices().map(Iterator::collect)
    } else {
        host.output_devices().map(Iterator::collect)
    }
    .map_err(|e| DeviceError::Backend {
        kind,
        name: name.to_owned(),
        reason: e.to_string(),
    })?;
    let names: Vec<String> = devices.iter().map(name_of).collect();
    devices
        .into_iter()
        .zip(&names)
        .find(|(_, n)| n.as_str() == name)
        .map(|(d, _)| d)
        .ok_or_else(|| DeviceError::NotFound {
            kind,
            name: name.to_owned(),
            available: names.join(", "),
        })
}

const MICROPHONE: &str = "microphone";
const SPEAKER: &str = "speaker";

/// A bounded queue of samples shared with a device callback.
#[derive(Debug, Clone, Default)]
struct Queue(Arc<Mutex<VecDeque<i16>>>);

impl Queue {
    fn lock(&self) -> MutexGuard<'_, VecDeque<i16>> {
        // The callbacks never panic while holding it; a poisoned queue is
        // still a queue of samples.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends, dropping the oldest samples beyond the bound.
    fn push(&self, samples: impl IntoIterator<Item = i16>) {
        let mut q = self.lock();
        q.extend(samples);
        let excess = q.len().saturating_sub(QUEUE_SAMPLES);
        q.drain(..excess);
    }
}

/// What the device thread is asked to do.
enum Request {
    Open {
        kind: &'static str,
        name: Option<String>,
        reply: std_mpsc::Sender<Result<String, DeviceError>>,
    },
    Close(&'static str),
}

/// Counts of what went wrong at the devices, for the statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceStats {
    /// 20 ms frames the microphone had not captured in time (silence sent).
    pub mic_underruns: u64,
    /// Speaker callbacks that found too few samples (silence played).
    pub speaker_underruns: u64,
}

/// The call's microphone and speaker: a device thread and two queues.
#[derive(Debug)]
pub struct DeviceAudio {
    requests: std_mpsc::Sender<Request>,
    mic: Queue,
    speaker: Queue,
    speaker_underruns: Arc<std::sync::atomic::AtomicU64>,
    mic_underruns: u64,
    mic_started: bool,
}

impl DeviceAudio {
    /// Starts the device thread, with no device open.
    ///
    /// # Errors
    /// [`DeviceError::Stopped`] when the thread cannot start.
    pub fn start() -> Result<Self, DeviceError> {
        let (requests, rx) = std_mpsc::channel();
        let mic = Queue::default();
        let speaker = Queue::default();
        let speaker_underruns = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let thread = DeviceThread {
            mic: mic.clone(),
            speaker: speaker.clone(),
            speaker_underruns: Arc::clone(&speaker_underruns),
            input: None,
            output: None,
        };
        std::thread::Builder::new()
            .name("satsuma-audio".into())
            .spawn(move || thread.run(&rx))
            .map_err(|_| DeviceError::Stopped)?;
        Ok(Self {
            requests,
            mic,
            speaker,
            speaker_underruns,
            mic_underruns: 0,
            mic_started: false,
        })
    }

    fn open(&self, kind: &'static str, name: Option<&str>) -> Result<String, DeviceError> {
        let (reply, answer) = std_mpsc::channel();
        self.requests
            .send(Request::Open {
                kind,
                name: name.map(str::to_owned),
                reply,
            })
            .map_err(|_| DeviceError::Stopped)?;
        answer
            .recv_timeout(OPEN_TIMEOUT)
            .map_err(|_| DeviceError::Backend {
                kind,
                name: name.unwrap_or("default").to_owned(),
                reason: "the audio system did not answer in time".into(),
            })?
    }

    /// Captures from the microphone `name` (the default one if `None`),
    /// instead of the one before. Blocks while the device opens.
    ///
    /// # Errors
    /// When there is no such device or it cannot be opened; the previous
    /// microphone is closed either way.
    pub fn open_microphone(&mut self, name: Option<&str>) -> Result<String, DeviceError> {
        self.mic.lock().clear();
        self.mic_started = false;
        self.open(MICROPHONE, name)
    }

    /// Plays on the speaker `name` (the default one if `None`), instead of
    /// the one before. Blocks while the device opens.
    ///
    /// # Errors
    /// As [`DeviceAudio::open_microphone`].
    pub fn open_speaker(&mut self, name: Option<&str>) -> Result<String, DeviceError> {
        self.speaker.lock().clear();
        self.open(SPEAKER, name)
    }

    /// Closes the microphone.
    pub fn close_microphone(&self) {
        let _ = self.requests.send(Request::Close(MICROPHONE));
        self.mic.lock().clear();
    }

    /// Closes the speaker.
    pub fn close_speaker(&self) {
        let _ = self.requests.send(Request::Close(SPEAKER));
    }

    /// The next 20 ms captured, or silence while the microphone has not
    /// captured that much (at the start, or when it stalls).
    pub fn next_frame(&mut self, frame: &mut [i16]) {
        let mut q = self.mic.lock();
        if q.len() > MIC_TRIM {
            // Fell behind the device: catch up, keeping one frame.
            let excess = q.len() - FRAME_SAMPLES;
            q.drain(..excess);
        }
        if q.len() < frame.len() {
            frame.fill(0);
            if self.mic_started {
                self.mic_underruns += 1;
            }
            return;
        }
        self.mic_started = true;
        let n = frame.len();
        for (out, s) in frame.iter_mut().zip(q.drain(..n)) {
            *out = s;
        }
    }

    /// Queues 20 ms for the speaker.
    pub fn play(&self, pcm: &[i16]) {
        self.speaker.push(pcm.iter().copied());
    }

    /// What went wrong so far.
    #[must_use]
    pub fn stats(&self) -> DeviceStats {
        DeviceStats {
            mic_underruns: self.mic_underruns,
            speaker_underruns: self
                .speaker_underruns
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// Owns the cpal streams.
struct DeviceThread {
    mic: Queue,
    speaker: Queue,
    speaker_underruns: Arc<std::sync::atomic::AtomicU64>,
    input: Option<cpal::Stream>,
    output: Option<cpal::Stream>,
}

impl DeviceThread {
    fn run(mut self, requests: &std_mpsc::Receiver<Request>) {
        while let Ok(request) = requests.recv() {
            match request {
                Request::Open { kind, name, reply } => {
                    if kind == MICROPHONE {
                        self.input = None;
                    } else {
                        self.output = None;
                    }
                    let opened = self.open(kind, name.as_deref());
                    let _ = reply.send(opened);
                }
                Request::Close(kind) if kind == MICROPHONE => self.input = None,
                Request::Close(_) => self.output = None,
            }
        }
    }

    fn open(&mut self, kind: &'static str, name: Option<&str>) -> Result<String, DeviceError> {
        let device = find(kind, name)?;
        let device_name = name_of(&device);
        let fail = |reason: String| DeviceError::Backend {
            kind,
            name: device_name.clone(),
            reason,
        };
        // 48 kHz in whatever channel count the device prefers: a sound
        // server converts the rate, and channels are mixed here.
        let default = if kind == MICROPHONE {
            device.default_input_config()
        } else {
            device.default_output_config()
        }
        .map_err(|e| fail(e.to_string()))?;
        let channels = default.channels().max(1);
        let config = cpal::StreamConfig {
            channels,
            sample_rate: SAMPLE_RATE,
            buffer_size: cpal::BufferSize::Default,
        };
        let stream = if kind == MICROPHONE {
            let mic = self.mic.clone();
            let n = usize::from(channels);
            device.build_input_stream::<f32, _, _>(
                config,
                move |data: &[f32], _| {
                    mic.push(data.chunks(n).map(|c| {
                        #[allow(clippy::cast_precision_loss)] // channel counts are tiny
                        let mean = c.iter().sum::<f32>() / c.len() as f32;
                        to_i16(mean)
                    }));
                },
                |e| tracing::warn!(error = %e, "microphone"),
                Some(OPEN_TIMEOUT),
            )
        } else {
            let speaker = self.speaker.clone();
            let underruns = Arc::clone(&self.speaker_underruns);
            let n = usize::from(channels);
            device.build_output_stream::<f32, _, _>(
                config,
                move |data: &mut [f32], _| {
                    let mut q = speaker.lock();
                    let frames = data.len() / n;
                    if q.len() < frames {
                        underruns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    for chunk in data.chunks_mut(n) {
                        let s = q.pop_front().map_or(0.0, |s| f32::from(s) / 32768.0);
                        chunk.fill(s);
                    }
                },
                |e| tracing::warn!(error = %e, "speaker"),
                Some(OPEN_TIMEOUT),
            )
        }
        .map_err(|e| fail(e.to_string()))?;
        stream.play().map_err(|e| fail(e.to_string()))?;
        if kind == MICROPHONE {
            self.input = Some(stream);
        } else {
            self.output = Some(stream);
        }
        Ok(device_name)
    }
}

#[allow(clippy::cast_possible_truncation)] // clamped to the i16 range first
fn to_i16(s: f32) -> i16 {
    (s * 32768.0).clamp(-32768.0, 32767.0) as i16
}
