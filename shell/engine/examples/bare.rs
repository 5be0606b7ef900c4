//! The baseline of the engine's CPU figure: the codec work one participant
//! of an N-person call does, with nothing else (no SFrame, no MLS, no
//! WebRTC, no jitter buffer). For `--seconds` of call: the test pattern
//! drawn and VP8-encoded at `--fps`, each encoded frame decoded by N-1
//! decoders; 20 ms of tone Opus-encoded 50 times a second, each frame
//! decoded by N-1 decoders. Prints the process CPU time it took, as JSON.
//!
//! `cargo run --release -p satsuma-engine --example bare -- --seconds 20 --peers 4`

use satsuma_core::media::Codec;
use satsuma_engine::media::audio::{AudioDecoder, AudioEncoder, FRAME_SAMPLES, SAMPLE_RATE};
use satsuma_engine::media::pattern::TestPattern;
use satsuma_engine::media::tone::ToneGenerator;
use satsuma_engine::media::video::{Vp8Config, Vp8Decoder, Vp8Encoder};

fn arg(name: &str, default: u32) -> u32 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The codec work; bad sizes or rates from the command line are codec
/// errors, not panics.
fn run() -> Result<(), satsuma_engine::media::CodecError> {
    let seconds = arg("--seconds", 20);
    let peers = arg("--peers", 4).max(2);
    let (width, height, fps, kbps) = (
        arg("--width", 640),
        arg("--height", 360),
        arg("--fps", 30),
        arg("--bitrate", 800),
    );
    let started = cpu_time::ProcessTime::now();
    let mut pattern = TestPattern::new(width, height);
    let mut encoder = Vp8Encoder::new(&Vp8Config {
        width,
        height,
        fps,
        bitrate_kbps: kbps,
    })?;
    let mut decoders: Vec<Vp8Decoder> = (1..peers)
        .map(|_| Vp8Decoder::new())
        .collect::<Result<_, _>>()?;
    let mut decoded = 0u64;
    for n in 0..seconds * fps {
        let picture = pattern.frame(n);
        for frame in encoder.encode(&picture, u64::from(n), n == 0)? {
            for d in &mut decoders {
                decoded += u64::from(d.decode(&frame.data)?.is_some());
            }
        }
    }
    let mut tone = ToneGenerator::new(440.0, 0.25, SAMPLE_RATE);
    let mut opus = AudioEncoder::new(Codec::Opus)?;
    let mut opus_decoders: Vec<AudioDecoder> = (1..peers)
        .map(|_| AudioDecoder::new(Codec::Opus))
        .collect::<Result<_, _>>()?;
    let mut pcm = vec![0i16; FRAME_SAMPLES];
    for _ in 0..seconds * 50 {
        tone.fill(&mut pcm);
        let frame = opus.encode(&pcm)?;
        for d in &mut opus_decoders {
            decoded += u64::from(!d.decode(&frame)?.is_empty());
        }
    }
    let cpu = started.elapsed().as_secs_f64();
    println!(
        "{{\"cpu_seconds\":{cpu:.3},\"call_seconds\":{seconds},\"peers\":{peers},\"decoded\":{decoded}}}"
    );
    Ok(())
}
