//! Per-codec protection: what stays in clear, that it is authenticated, and
//! that every frame comes back byte for byte.

use alloc::vec;
use alloc::vec::Vec;
use satsuma_core::media::{ClearInfo, Codec, Unprotected, take_ready};
use satsuma_core::sframe::{EpochSecret, KeyRing, KeyRingConfig};
use satsuma_core::{Error, Instant, MediaError};

use crate::{Context, Failure, ensure, ensure_eq, portable_tests};

const AUDIO: [Codec; 4] = [Codec::Opus, Codec::Pcmu, Codec::Pcma, Codec::G722];

/// A 320x240 VP8 key frame header followed by `body` bytes of payload.
fn vp8_key_frame(body: usize) -> Vec<u8> {
    let mut frame = vec![0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
    frame.extend((0..body).map(|i| (i * 7 + 3) as u8));
    frame
}

fn members() -> Result<(KeyRing, KeyRing), Failure> {
    let key = [0x33; 16];
    let ring = |own_index| -> Result<KeyRing, Failure> {
        let mut ring = KeyRing::new(KeyRingConfig::default()).context("new ring")?;
        ring.install_epoch(
            Instant::ZERO,
            EpochSecret {
                epoch: 7,
                base_key: &key,
                group_size: 2,
                own_index,
            },
        )
        .context("install")?;
        Ok(ring)
    };
    Ok((ring(0)?, ring(1)?))
}

fn protect(codec: Codec, ring: &mut KeyRing, frame: &[u8]) -> Result<Vec<u8>, Failure> {
    let mut out = vec![0u8; codec.max_protected_len(ring, frame.len())];
    let n = codec.protect(ring, frame, &mut out).context("protect")?;
    out.truncate(n);
    Ok(out)
}

fn unprotect(codec: Codec, ring: &mut KeyRing, wire: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = vec![0u8; wire.len()];
    let (_, n) = codec.unprotect(ring, wire, &mut out)?;
    out.truncate(n);
    Ok(out)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

portable_tests! { TESTS:
    fn frames_of_every_codec_that_outrun_the_commit_come_back_whole() {
        let (mut alice, mut bob) = members()?;
        let next = [0x44; 16];
        alice
            .install_epoch(Instant::ZERO, EpochSecret { epoch: 8, base_key: &next, group_size: 2, own_index: 0 })
            .context("alice epoch 8")?;
        let mut sent = Vec::new();
        for (i, codec) in Codec::ALL.into_iter().enumerate() {
            let frame = if codec == Codec::Vp8 { vp8_key_frame(40) } else { vec![i as u8; 40] };
            sent.push((codec, i as u32, frame.clone()));
            let wire = protect(codec, &mut alice, &frame)?;
            let mut out = vec![0u8; wire.len()];
            let held = codec.unprotect_or_hold(&mut bob, Instant::ZERO, i as u32, &wire, &mut out);
            ensure_eq!(held, Ok(Unprotected::Held), "{codec:?} held");
        }
        ensure!(take_ready(&mut bob).is_none(), "released early");
        bob.install_epoch(Instant::ZERO, EpochSecret { epoch: 8, base_key: &next, group_size: 2, own_index: 1 })
            .context("bob epoch 8")?;
        let mut back = Vec::new();
        while let Some(ready) = take_ready(&mut bob) {
            let frame = unprotect(ready.codec, &mut bob, &ready.protected).context("open")?;
            back.push((ready.codec, ready.tag, frame));
        }
        ensure_eq!(back, sent, "every frame, its codec and tag");
        Ok(())
    }

    fn vp8_key_frames_show_their_header_and_hide_the_rest() {
        let (mut alice, mut bob) = members()?;
        let frame = vp8_key_frame(200);
        let wire = protect(Codec::Vp8, &mut alice, &frame)?;
        ensure_eq!(wire[0], 10, "clear length byte");
        ensure_eq!(wire[1..11], frame[..10], "clear header");
        ensure!(!contains(&wire[11..], &frame[10..26]), "payload visible on the wire");
        ensure_eq!(
            Codec::Vp8.inspect(&wire).context("inspect")?,
            ClearInfo { key_frame: Some(true), dimensions: Some((320, 240)) },
            "what the SFU sees"
        );
        ensure_eq!(unprotect(Codec::Vp8, &mut bob, &wire), Ok(frame), "round trip");
        Ok(())
    }

    fn vp8_delta_frames_show_only_the_frame_tag() {
        let (mut alice, mut bob) = members()?;
        let mut frame = vec![0x31, 0x02, 0x00];
        frame.extend(0..100u8);
        let wire = protect(Codec::Vp8, &mut alice, &frame)?;
        ensure_eq!(wire[..4], [3, 0x31, 0x02, 0x00], "clear tag");
        ensure_eq!(Codec::Vp8.inspect(&wire).context("inspect")?.key_frame, Some(false), "delta");
        ensure_eq!(unprotect(Codec::Vp8, &mut bob, &wire), Ok(frame), "round trip");
        Ok(())
    }

    fn every_clear_byte_is_authenticated() {
        let (mut alice, mut bob) = members()?;
        let frame = vp8_key_frame(50);
        let wire = protect(Codec::Vp8, &mut alice, &frame)?;
        for i in 1..11 {
            let mut bad = wire.clone();
            bad[i] ^= 0x01; // e.g. turn a key frame into a delta frame
            ensure_eq!(unprotect(Codec::Vp8, &mut bob, &bad), Err(Error::Authentication), "clear byte {i}");
        }
        let mut bad = wire.clone();
        bad[0] = 9; // claim one byte less in clear
        ensure!(unprotect(Codec::Vp8, &mut bob, &bad).is_err(), "length byte not authenticated");
        ensure_eq!(unprotect(Codec::Vp8, &mut bob, &wire), Ok(frame), "genuine frame still opens");
        Ok(())
    }

    fn audio_keeps_nothing_in_clear() {
        let (mut alice, mut bob) = members()?;
        let samples: Vec<u8> = (0..160u32).map(|i| (i * 13 % 251) as u8).collect();
        for codec in AUDIO {
            for frame in [&[0xfc, 0xff, 0xfe][..], &samples[..]] {
                let wire = protect(codec, &mut alice, frame)?;
                // Header (2 bytes at these counters) and a 16-byte tag, nothing else.
                ensure!(wire.len() <= frame.len() + 3 + 16, "{codec:?} overhead {}", wire.len() - frame.len());
                ensure!(!contains(&wire, &frame[..3]), "{codec:?} frame visible on the wire");
                ensure_eq!(Codec::Opus.inspect(&wire).context("inspect")?, ClearInfo { key_frame: None, dimensions: None }, "{codec:?} says nothing");
                ensure_eq!(unprotect(codec, &mut bob, &wire), Ok(frame.to_vec()), "{codec:?} round trip");
            }
        }
        Ok(())
    }

    fn short_frames_keep_their_content() {
        let (mut alice, mut bob) = members()?;
        let short: [&[u8]; 5] = [&[], &[0x50], &[0x50, 0x42, 0x00, 0x9d, 0x01], &[0x31, 0x02], &[0x31, 0x02, 0x00]];
        for frame in short {
            let wire = protect(Codec::Vp8, &mut alice, frame)?;
            ensure_eq!(usize::from(wire[0]), frame.len(), "whole short frame is the clear part");
            ensure_eq!(unprotect(Codec::Vp8, &mut bob, &wire), Ok(frame.to_vec()), "round trip of {frame:02x?}");
        }
        for codec in AUDIO {
            let wire = protect(codec, &mut alice, &[])?;
            ensure_eq!(unprotect(codec, &mut bob, &wire), Ok(Vec::new()), "{codec:?} empty frame");
        }
        Ok(())
    }

    fn broken_layouts_are_typed_errors() {
        let (_, mut bob) = members()?;
        let mut out = [0u8; 64];
        ensure_eq!(Codec::Vp8.unprotect(&mut bob, &[], &mut out).map(|r| r.1), Err(Error::TooShort { len: 0, min: 1 }), "empty");
        ensure_eq!(
            Codec::Vp8.unprotect(&mut bob, &[11; 40], &mut out).map(|r| r.1),
            Err(Error::Media(MediaError::ClearPrefixLength { len: 11, max: 10 })),
            "length byte too large"
        );
        ensure_eq!(Codec::Vp8.inspect(&[10, 0x50]), Err(Error::TooShort { len: 2, min: 11 }), "truncated clear part");
        ensure!(Codec::Opus.unprotect(&mut bob, &[0xff; 3], &mut out).is_err(), "garbage audio");
        Ok(())
    }
}
