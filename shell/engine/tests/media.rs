//! The codecs end to end, through the public API: what a listener or viewer
//! would notice if they broke.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code.

use satsuma_core::media::Codec;
use satsuma_engine::media::CodecError;
use satsuma_engine::media::audio::{
    AudioDecoder, AudioEncoder, FRAME_SAMPLES, MAX_FRAME_BYTES, SAMPLE_RATE,
};
use satsuma_engine::media::pattern::{TestPattern, read_frame_number};
use satsuma_engine::media::tone::{ToneGenerator, detect_frequency, level_dbfs};
use satsuma_engine::media::video::{EncodedFrame, I420, Vp8Config, Vp8Decoder, Vp8Encoder};

const AUDIO_CODECS: [Codec; 4] = [Codec::Opus, Codec::Pcmu, Codec::Pcma, Codec::G722];

/// A deterministic byte source for garbage frames.
struct XorShift(u64);

impl XorShift {
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0.to_le_bytes()[0]
            })
            .collect()
    }
}

fn vp8_config(bitrate_kbps: u32) -> Vp8Config {
    Vp8Config {
        width: 640,
        height: 360,
        fps: 30,
        bitrate_kbps,
    }
}

/// Encodes frames `0..count` of the pattern, forcing key frames where
/// `force_key(n)`; one encoded frame per picture.
fn encode_pattern(
    encoder: &mut Vp8Encoder,
    range: std::ops::Range<u32>,
    force_key: impl Fn(u32) -> bool,
) -> Vec<EncodedFrame> {
    let mut pattern = TestPattern::new(640, 360);
    range
        .map(|n| {
            let mut frames = encoder
                .encode(&pattern.frame(n), u64::from(n), force_key(n))
                .unwrap();
            assert_eq!(
                frames.len(),
                1,
                "frame {n}: the encoder never drops or splits"
            );
            frames.remove(0)
        })
        .collect()
}

#[test]
fn vp8_every_decoded_frame_shows_the_number_it_was_encoded_with() {
    let mut encoder = Vp8Encoder::new(&vp8_config(1_000)).unwrap();
    let frames = encode_pattern(&mut encoder, 0..30, |n| n == 10);
    assert!(frames[0].key, "a stream starts with a key frame");
    assert!(frames[10].key, "force_key makes a key frame");
    for (n, frame) in frames.iter().enumerate() {
        if n != 0 && n != 10 {
            assert!(!frame.key, "frame {n} should be a delta frame");
        }
    }
    // The VP8 frame tag agrees (bit 0 clear: key frame, RFC 6386 9.1).
    for frame in &frames {
        assert_eq!(frame.data[0] & 1 == 0, frame.key);
    }

    let mut decoder = Vp8Decoder::new().unwrap();
    for (n, frame) in (0u32..).zip(&frames) {
        let picture = decoder
            .decode(&frame.data)
            .unwrap()
            .expect("every frame shows a picture");
        assert_eq!((picture.width, picture.height), (640, 360));
        assert_eq!(read_frame_number(&picture), Some(n));
    }
    // A receiver that joins at the forced key frame sees the rest.
    let mut joiner = Vp8Decoder::new().unwrap();
    for (n, frame) in (0u32..).zip(&frames).skip(10) {
        let picture = joiner
            .decode(&frame.data)
            .unwrap()
            .expect("a picture from the key frame on");
        assert_eq!(read_frame_number(&picture), Some(n));
    }
}

#[test]
fn vp8_decoder_joining_mid_stream_shows_nothing_until_a_key_frame() {
    let mut encoder = Vp8Encoder::new(&vp8_config(800)).unwrap();
    let frames = encode_pattern(&mut encoder, 0..20, |n| n == 15);
    let mut decoder = Vp8Decoder::new().unwrap();
    for (n, frame) in (0u32..).zip(&frames).skip(5).take(10) {
        assert!(!frame.key);
        match decoder.decode(&frame.data) {
            Err(_) | Ok(None) => {}
            Ok(Some(picture)) => panic!(
                "delta frame {n} without a key frame showed {:?}",
                read_frame_number(&picture)
            ),
        }
    }
    // The key frame a joining receiver asks for starts the picture.
    for (n, frame) in (0u32..).zip(&frames).skip(15) {
        let picture = decoder.decode(&frame.data).unwrap().unwrap();
        assert_eq!(read_frame_number(&picture), Some(n));
    }
}

#[test]
fn vp8_garbage_and_truncated_frames_are_errors() {
    let mut encoder = Vp8Encoder::new(&vp8_config(800)).unwrap();
    let frames = encode_pattern(&mut encoder, 0..3, |_| false);
    let key = &frames[0].data;

    let mut fresh = Vp8Decoder::new().unwrap();
    assert!(matches!(fresh.decode(&[]), Err(CodecError::BadFrame(_))));
    for len in [1, 3, 9, 10, 20, key.len() / 4] {
        assert!(
            fresh.decode(&key[..len]).is_err(),
            "a key frame cut to {len} of {} bytes",
            key.len()
        );
    }
    let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..200 {
        let len = 1 + round * 7 % 3000;
        let garbage = random.bytes(len);
        assert!(
            fresh.decode(&garbage).is_err(),
            "{len} random bytes decoded"
        );
    }

    // A decoder in the middle of a stream may decode garbage into a garbled
    // picture (VP8 delta frames have no checksum), but never panics, never
    // shows a wrong number, and recovers at the next good frames.
    let mut decoder = Vp8Decoder::new().unwrap();
    decoder.decode(key).unwrap();
    for round in 0..100 {
        let garbage = random.bytes(1 + round * 13 % 2000);
        if let Ok(Some(picture)) = decoder.decode(&garbage) {
            let number = read_frame_number(&picture);
            assert!(
                number.is_none() || number == Some(0),
                "garbage showed frame {number:?}"
            );
        }
        let cut = &frames[1].data[..frames[1].data.len() / 2];
        if let Ok(Some(picture)) = decoder.decode(cut) {
            let number = read_frame_number(&picture);
            assert!(
                number.is_none() || number == Some(0) || number == Some(1),
                "a truncated frame showed {number:?}"
            );
        }
    }
    let mut encoder = Vp8Encoder::new(&vp8_config(800)).unwrap();
    let fresh_key = encode_pattern(&mut encoder, 7..8, |_| true);
    let picture = decoder.decode(&fresh_key[0].data).unwrap().unwrap();
    assert_eq!(read_frame_number(&picture), Some(7));
}

#[test]
fn vp8_bitrate_change_takes_effect() {
    fn mean_len(frames: &[EncodedFrame]) -> usize {
        frames.iter().map(|f| f.data.len()).sum::<usize>() / frames.len()
    }
    let mut encoder = Vp8Encoder::new(&vp8_config(1_500)).unwrap();
    let high = encode_pattern(&mut encoder, 0..25, |_| false);
    encoder.set_bitrate(200).unwrap();
    assert_eq!(encoder.config().bitrate_kbps, 200);
    let low = encode_pattern(&mut encoder, 25..55, |_| false);
    // Skip the key frame and the rate control's settling.
    let (high, low) = (mean_len(&high[5..]), mean_len(&low[10..]));
    // 200 kbit/s at 30 fps is about 830 bytes a frame.
    assert!(
        low * 3 < high,
        "mean frame {high} bytes at 1500 kbit/s, {low} at 200 kbit/s"
    );
    assert!(low < 1_600, "{low} bytes a frame at 200 kbit/s");
    assert!(matches!(encoder.set_bitrate(0), Err(CodecError::Config(_))));
}

#[test]
fn vp8_encoder_refuses_wrong_pictures_and_settings() {
    for bad in [
        Vp8Config {
            width: 641,
            ..vp8_config(500)
        },
        Vp8Config {
            width: 8,
            ..vp8_config(500)
        },
        Vp8Config {
            height: 0,
            ..vp8_config(500)
        },
        Vp8Config {
            fps: 0,
            ..vp8_config(500)
        },
        Vp8Config {
            bitrate_kbps: 0,
            ..vp8_config(500)
        },
    ] {
        assert!(
            matches!(Vp8Encoder::new(&bad), Err(CodecError::Config(_))),
            "{bad:?}"
        );
    }
    let mut encoder = Vp8Encoder::new(&vp8_config(500)).unwrap();
    let other_size = I420::new(320, 180);
    assert!(matches!(
        encoder.encode(&other_size, 0, false),
        Err(CodecError::PictureSize { .. })
    ));
    let mut short = I420::new(640, 360);
    short.data.pop();
    assert!(matches!(
        encoder.encode(&short, 0, false),
        Err(CodecError::PictureSize { .. })
    ));
    let picture = TestPattern::new(640, 360).frame(0);
    encoder.encode(&picture, 5, false).unwrap();
    assert!(matches!(
        encoder.encode(&picture, 5, false),
        Err(CodecError::Pts {
            previous: 5,
            got: 5
        })
    ));
    assert!(encoder.encode(&picture, 6, false).is_ok());
}

/// One second of a tone through `codec`, frame by frame.
fn round_trip(codec: Codec, hz: f32) -> Vec<i16> {
    let mut tone = ToneGenerator::new(hz, 0.5, SAMPLE_RATE);
    let mut encoder = AudioEncoder::new(codec).unwrap();
    let mut decoder = AudioDecoder::new(codec).unwrap();
    let mut out = Vec::new();
    let mut pcm = [0i16; FRAME_SAMPLES];
    for _ in 0..50 {
        tone.fill(&mut pcm);
        let frame = encoder.encode(&pcm).unwrap();
        let expected_len = match codec {
            Codec::Opus => frame.len(),
            _ => 160,
        };
        assert_eq!(frame.len(), expected_len, "{codec:?} frame length");
        let decoded = decoder.decode(&frame).unwrap();
        assert_eq!(decoded.len(), FRAME_SAMPLES, "{codec:?}");
        out.extend_from_slice(&decoded);
    }
    out
}

#[test]
fn audio_codecs_keep_a_tones_pitch_and_level() {
    for codec in AUDIO_CODECS {
        for hz in [440.0f32, 1_000.0] {
            let decoded = round_trip(codec, hz);
            // Skip 100 ms: codec and resampler delay, Opus's start-up.
            let steady = &decoded[4_800..];
            let found = detect_frequency(steady, SAMPLE_RATE).unwrap();
            assert!(
                (found - hz).abs() < 10.0,
                "{codec:?}: {hz} Hz came out as {found} Hz"
            );
            let level = level_dbfs(steady);
            // The input is a sine at half scale: -9.03 dBFS.
            assert!(
                (level - -9.03).abs() < 2.0,
                "{codec:?} at {hz} Hz: {level} dBFS"
            );
        }
    }
}

#[test]
fn audio_concealment_fills_a_frame_and_fades() {
    for codec in AUDIO_CODECS {
        let mut decoder = AudioDecoder::new(codec).unwrap();
        assert_eq!(
            decoder.conceal().unwrap().len(),
            FRAME_SAMPLES,
            "{codec:?} before any frame"
        );
        let mut encoder = AudioEncoder::new(codec).unwrap();
        let mut tone = ToneGenerator::new(440.0, 0.5, SAMPLE_RATE);
        let mut pcm = [0i16; FRAME_SAMPLES];
        for _ in 0..10 {
            tone.fill(&mut pcm);
            decoder.decode(&encoder.encode(&pcm).unwrap()).unwrap();
        }
        let first = decoder.conceal().unwrap();
        assert_eq!(first.len(), FRAME_SAMPLES);
        // The gap is filled with something like the tone, not silence...
        assert!(
            level_dbfs(&first) > -20.0,
            "{codec:?} concealment at {} dBFS",
            level_dbfs(&first)
        );
        // ...that fades during a long loss.
        let mut last = first;
        for _ in 0..10 {
            last = decoder.conceal().unwrap();
            assert_eq!(last.len(), FRAME_SAMPLES);
        }
        assert!(
            level_dbfs(&last) < -35.0,
            "{codec:?} still at {} dBFS after 220 ms of loss",
            level_dbfs(&last)
        );
        // And decoding resumes.
        tone.fill(&mut pcm);
        assert_eq!(
            decoder
                .decode(&encoder.encode(&pcm).unwrap())
                .unwrap()
                .len(),
            FRAME_SAMPLES
        );
    }
}

#[test]
fn audio_decoders_survive_garbage() {
    let mut random = XorShift(0x1234_5678_9abc_def1);
    for codec in AUDIO_CODECS {
        let mut decoder = AudioDecoder::new(codec).unwrap();
        assert!(
            matches!(decoder.decode(&[]), Err(CodecError::BadFrame(_))),
            "{codec:?}"
        );
        assert!(
            matches!(
                decoder.decode(&vec![0; MAX_FRAME_BYTES + 1]),
                Err(CodecError::BadFrame(_))
            ),
            "{codec:?}"
        );
        for round in 0..200 {
            let garbage = random.bytes(1 + round * 11 % 900);
            match decoder.decode(&garbage) {
                // G.711 and G.722 have no structure: any bytes are sound, 6
                // samples at 48 kHz per byte.
                Ok(pcm) => assert!(
                    codec == Codec::Opus || pcm.len() == 6 * garbage.len(),
                    "{codec:?}"
                ),
                Err(e) => assert_eq!(codec, Codec::Opus, "{e}"),
            }
        }
        // Still decodes good frames afterwards.
        let mut encoder = AudioEncoder::new(codec).unwrap();
        assert!(
            decoder
                .decode(&encoder.encode(&[0; FRAME_SAMPLES]).unwrap())
                .is_ok()
        );
    }
}

#[test]
fn audio_encoders_take_exactly_one_frame() {
    for codec in AUDIO_CODECS {
        let mut encoder = AudioEncoder::new(codec).unwrap();
        assert_eq!(encoder.codec(), codec);
        for len in [
            0,
            1,
            FRAME_SAMPLES - 1,
            FRAME_SAMPLES + 1,
            2 * FRAME_SAMPLES,
        ] {
            let got = encoder.encode(&vec![0; len]);
            assert!(
                matches!(got, Err(CodecError::FrameLength { expected: FRAME_SAMPLES, got }) if got == len),
                "{codec:?} took {len} samples"
            );
        }
        let ticks = if codec == Codec::Opus { 960 } else { 160 };
        assert_eq!(encoder.rtp_ticks_per_frame(), ticks);
    }
    assert!(matches!(
        AudioEncoder::new(Codec::Vp8),
        Err(CodecError::Unsupported(Codec::Vp8))
    ));
    assert!(matches!(
        AudioDecoder::new(Codec::Vp8),
        Err(CodecError::Unsupported(Codec::Vp8))
    ));
}

#[test]
fn opus_bitrate_changes_frame_sizes() {
    let mut encoder = AudioEncoder::new(Codec::Opus).unwrap();
    let mut tone = ToneGenerator::new(440.0, 0.5, SAMPLE_RATE);
    let mut pcm = [0i16; FRAME_SAMPLES];
    let mut mean = |encoder: &mut AudioEncoder| {
        let mut total = 0;
        for _ in 0..20 {
            tone.fill(&mut pcm);
            total += encoder.encode(&pcm).unwrap().len();
        }
        total / 20
    };
    encoder.set_bitrate(64_000).unwrap();
    let high = mean(&mut encoder);
    encoder.set_bitrate(12_000).unwrap();
    let low = mean(&mut encoder);
    // 64 kbit/s is 160 bytes per 20 ms, 12 kbit/s 30.
    assert!(
        low * 3 < high,
        "{high} bytes at 64 kbit/s, {low} at 12 kbit/s"
    );
    assert!(encoder.set_bitrate(100).is_err());
    // The largest frames the encoder makes still decode.
    encoder.set_bitrate(512_000).unwrap();
    let mut decoder = AudioDecoder::new(Codec::Opus).unwrap();
    let mut noise = XorShift(7);
    for _ in 0..5 {
        let pcm: Vec<i16> = noise
            .bytes(2 * FRAME_SAMPLES)
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let frame = encoder.encode(&pcm).unwrap();
        assert!(frame.len() <= MAX_FRAME_BYTES);
        assert_eq!(decoder.decode(&frame).unwrap().len(), FRAME_SAMPLES);
    }
    // A no-op for the fixed-rate codecs.
    AudioEncoder::new(Codec::Pcmu)
        .unwrap()
        .set_bitrate(12_000)
        .unwrap();
}

#[test]
fn everything_can_move_to_another_thread() {
    fn send<T: Send + std::fmt::Debug>() {}
    send::<AudioEncoder>();
    send::<AudioDecoder>();
    send::<Vp8Encoder>();
    send::<Vp8Decoder>();
    send::<I420>();
    send::<Vp8Config>();
    send::<EncodedFrame>();
    send::<TestPattern>();
    send::<ToneGenerator>();
    send::<CodecError>();

    let mut encoder = Vp8Encoder::new(&vp8_config(500)).unwrap();
    let frame = std::thread::spawn(move || {
        encoder
            .encode(&TestPattern::new(640, 360).frame(3), 0, true)
            .unwrap()
    })
    .join()
    .unwrap();
    let mut decoder = Vp8Decoder::new().unwrap();
    let picture = std::thread::spawn(move || decoder.decode(&frame[0].data).unwrap().unwrap())
        .join()
        .unwrap();
    assert_eq!(read_frame_number(&picture), Some(3));
}
