//! Two members exchange SFrame-protected audio and video through a pretend
//! forwarding server, across a key change, and the server tries to cheat.
//!
//! Until MLS lands, the per-epoch base keys stand in for the MLS exporter's
//! output and are made from this process's clock: the point here is the
//! media path, not the key agreement.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A demo's edge.
#![allow(clippy::cast_possible_truncation)] // Made-up media bytes wrap on purpose.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use satsuma_core::media::Codec;
use satsuma_core::sframe::{EpochSecret, KeyRing, KeyRingConfig};
use satsuma_core::{Error, Instant};
use sha2::{Digest, Sha256};

fn base_key(epoch: u64, seed: u128) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(seed.to_be_bytes())
        .chain_update(epoch.to_be_bytes())
        .finalize();
    digest[..16].try_into().unwrap()
}

fn enter(ring: &mut KeyRing, now: Instant, epoch: u64, seed: u128, own_index: u64) {
    let key = base_key(epoch, seed);
    ring.install_epoch(
        now,
        EpochSecret {
            epoch,
            base_key: &key,
            group_size: 2,
            own_index,
        },
    )
    .unwrap();
}

/// An Opus-sized audio frame and a VP8 frame (a key frame every 30th).
fn media(i: usize) -> (Vec<u8>, Vec<u8>) {
    let audio: Vec<u8> = (0..80).map(|j| (i * 31 + j) as u8).collect();
    let mut video = if i.is_multiple_of(30) {
        vec![0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]
    } else {
        vec![0x31, 0x02, 0x00]
    };
    video.extend((0..1_200).map(|j| (i + j * 7) as u8));
    (audio, video)
}

fn main() {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut alice = KeyRing::new(KeyRingConfig::default()).unwrap();
    let mut bob = KeyRing::new(KeyRingConfig::default()).unwrap();
    let mut now = Instant::ZERO;
    enter(&mut alice, now, 1, seed, 0);
    enter(&mut bob, now, 1, seed, 1);
    println!(
        "Alice (leaf 0) and Bob (leaf 1) share epoch 1; suite {}",
        alice.config().suite.name()
    );

    let mut wire = vec![0u8; 4_096];
    let mut out = vec![0u8; 4_096];
    let mut opened = 0;
    let mut in_flight = Vec::new();
    let mut server_log: Vec<u8> = Vec::new();

    for i in 0..150 {
        now = now.saturating_add(Duration::from_millis(20));
        let (audio, video) = media(i);
        for (codec, frame) in [(Codec::Opus, &audio), (Codec::Vp8, &video)] {
            let n = codec.protect(&mut alice, frame, &mut wire).unwrap();
            let packet = wire[..n].to_vec();
            server_log.extend_from_slice(&packet);
            if codec == Codec::Vp8 && i % 30 == 0 {
                let seen = codec.inspect(&packet).unwrap();
                println!(
                    "  frame {i:3}: the server sees a {:?} VP8 key frame; of the content, nothing",
                    seen.dimensions.unwrap()
                );
            }
            if (95..100).contains(&i) {
                // These five are still on the network when the key changes.
                in_flight.push((codec, packet, frame.clone()));
                continue;
            }
            let (_, len) = codec.unprotect(&mut bob, &packet, &mut out).unwrap();
            assert_eq!(&out[..len], &frame[..]);
            opened += 1;
        }
        if i == 99 {
            enter(&mut alice, now, 2, seed, 0);
            enter(&mut bob, now, 2, seed, 1);
            println!("  frame {i:3}: someone joined; both move to epoch 2 (keys change)");
            for (codec, packet, frame) in in_flight.drain(..) {
                let (o, len) = codec.unprotect(&mut bob, &packet, &mut out).unwrap();
                assert_eq!((o.epoch, &out[..len]), (1, &frame[..]));
                opened += 1;
            }
            println!(
                "             the 10 frames sealed in epoch 1 that arrived late still opened: no gap"
            );
        }
    }
    println!("Bob opened {opened} of 300 frames, every one byte for byte");

    let (audio, _) = media(0);
    assert!(
        !server_log.windows(16).any(|w| w == &audio[..16]),
        "plaintext reached the server"
    );
    println!(
        "The server handled {} bytes and never saw a plaintext byte",
        server_log.len()
    );

    let n = Codec::Opus.protect(&mut alice, &audio, &mut wire).unwrap();
    Codec::Opus
        .unprotect(&mut bob, &wire[..n], &mut out)
        .unwrap();
    let replay = Codec::Opus
        .unprotect(&mut bob, &wire[..n], &mut out)
        .unwrap_err();
    println!("The server replays a frame:   {replay}");
    let n2 = Codec::Opus.protect(&mut alice, &audio, &mut wire).unwrap();
    wire[n2 / 2] ^= 0x40;
    let tampered = Codec::Opus
        .unprotect(&mut bob, &wire[..n2], &mut out)
        .unwrap_err();
    println!("The server flips one bit:     {tampered}");
    assert!(matches!(replay, Error::Replay { .. }) && tampered == Error::Authentication);

    now = now.saturating_add(KeyRingConfig::default().grace);
    bob.handle_timeout(now);
    println!(
        "After the {:?} grace period, Bob holds epochs {:?}; epoch 1's keys are erased",
        KeyRingConfig::default().grace,
        bob.epochs().collect::<Vec<_>>()
    );
}
