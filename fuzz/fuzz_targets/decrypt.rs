//! Opening SFrame ciphertexts: `KeyRing::decrypt` on raw and on mutated
//! genuine frames, and `FrameKey` for every suite.
//!
//! The first input byte picks a mode:
//! - 0: a raw frame (and metadata) from the input, fed to a receiving ring
//!   and to a `FrameKey` of every suite in `ALL_SUITES`.
//! - 1: a session: the input is a list of operations (seal a frame with the
//!   sender's ring, deliver a sealed frame to the receiver after an optional
//!   mutation, move to a new epoch, let time pass).
//! - 2: `FrameKey` seal/open round trips for every suite with a KID, CTR,
//!   metadata and plaintext from the input.
//!
//! Invariants: no panic; a ring opens a frame only if it is byte-for-byte a
//! frame the sender sealed (with the same metadata) and not opened before,
//! and then yields exactly the sealed plaintext; the same bytes delivered
//! again are `Err(Replay)`, never `Ok`; a fresh unmodified frame of a held
//! epoch always opens; everything a ring opens, an independently derived
//! `FrameKey` opens to the same plaintext, and vice versa; a failed open
//! leaves no plaintext in the output buffer and nothing is written past the
//! plaintext.
#![no_main]

#[path = "common.rs"]
mod common;

use common::*;
use core::time::Duration;
use libfuzzer_sys::fuzz_target;
use satsuma_core::sframe::{
    ALL_SUITES, FrameKey, Header, KeyRing, KeyRingConfig, MAX_METADATA_LEN, MAX_SEND_CONTEXTS,
    Opened,
};
use satsuma_core::{Error, Instant};
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => raw(&mut input),
        1 => session(&mut input),
        _ => suites(&mut input),
    }
});

const EPOCH_MASK: u64 = (1 << 4) - 1; // KeyRingConfig::default().epoch_bits == 4

/// One `FrameKey` per suite, derived once (they hold no mutable state).
fn suite_keys() -> &'static [FrameKey] {
    static KEYS: OnceLock<Vec<FrameKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        ALL_SUITES
            .iter()
            .map(|&suite| {
                let base = vec![0x5a; suite.key_len()];
                FrameKey::derive(suite, &base, 0x1234).expect("derive")
            })
            .collect()
    })
}

/// `ring.decrypt` with an output buffer of `out_len` sentinel bytes, checking
/// everything that must hold whatever the bytes are. Returns the result and
/// the output buffer.
fn checked_decrypt(
    ring: &mut KeyRing,
    own_index: u64,
    metadata: &[u8],
    frame: &[u8],
    out_len: usize,
) -> (Result<Opened, Error>, Vec<u8>) {
    let suite = KeyRingConfig::default().suite;
    let held: Vec<u64> = ring.epochs().collect();
    let mut out = vec![SENTINEL; out_len];
    let result = ring.decrypt(metadata, frame, &mut out);

    // What an independent FrameKey says about these bytes: the epoch the KID
    // selects, if the ring holds it, and whether that epoch's key opens them.
    let parsed = Header::parse(frame);
    let oracle = parsed.ok().and_then(|(header, header_len)| {
        let epoch = *held
            .iter()
            .find(|&&e| e & EPOCH_MASK == header.kid & EPOCH_MASK)?;
        let parts = split_kid(header.kid);
        let valid_kid = parts.sender < GROUP_SIZE
            && parts.sender != own_index
            && parts.context < MAX_SEND_CONTEXTS;
        let pt_len = frame.len().checked_sub(header_len + suite.tag_len())?;
        let mut check = vec![0u8; pt_len];
        let opened = oracle_key(epoch, header.kid)
            .decrypt(metadata, frame, &mut check)
            .ok()?;
        assert_eq!(opened, (header, pt_len));
        Some((epoch, valid_kid, check))
    });

    match &result {
        Ok(opened) => {
            let (header, header_len) = parsed.expect("an opened frame has a header");
            assert_eq!(opened.header, header);
            assert_eq!(opened.len, frame.len() - header_len - suite.tag_len());
            assert!(opened.len <= out_len);
            assert!(
                out[opened.len..].iter().all(|&b| b == SENTINEL),
                "decrypt wrote past the plaintext"
            );
            assert!(held.contains(&opened.epoch), "opened in an epoch not held");
            let parts = split_kid(header.kid);
            assert_eq!(parts.sender, opened.sender);
            assert!(opened.sender < GROUP_SIZE && opened.sender != own_index);
            assert!(parts.context < MAX_SEND_CONTEXTS);
            assert_eq!(parts.epoch_low, opened.epoch & EPOCH_MASK);
            let (epoch, valid_kid, check) = oracle
                .as_ref()
                .expect("the ring opened a frame an independently derived key refuses");
            assert_eq!(*epoch, opened.epoch);
            assert!(valid_kid);
            assert_eq!(&out[..opened.len], &check[..], "ring and FrameKey disagree");
        }
        Err(e) => {
            assert_no_leak(&out, "KeyRing::decrypt");
            // Authentic bytes for a real sender of a held epoch, with room to
            // write them: only a replay may refuse them.
            if let Some((_, true, check)) = &oracle
                && check.len() <= out_len
                && metadata.len() <= MAX_METADATA_LEN
            {
                assert!(
                    matches!(e, Error::Replay { .. }),
                    "authentic frame refused with {e:?}"
                );
            }
        }
    }
    (result, out)
}

/// Mode 0: raw bytes.
fn raw(input: &mut Input<'_>) {
    let flags = input.byte();
    let mut meta_len = usize::from(input.byte());
    if flags & 1 != 0 {
        meta_len += 200; // reaches past MAX_METADATA_LEN
    }
    let out_cap = input.byte();
    let metadata = input.take(meta_len);
    let frame = input.rest();
    let out_len = if out_cap >= 128 {
        frame.len()
    } else {
        usize::from(out_cap)
    };

    let mut receiver = ring(RECEIVER, FIRST_EPOCH);
    let (first, _) = checked_decrypt(&mut receiver, RECEIVER, metadata, frame, out_len);
    let (second, _) = checked_decrypt(&mut receiver, RECEIVER, metadata, frame, out_len);
    assert!(second.is_err(), "the same bytes opened twice");
    if first.is_ok() {
        assert!(matches!(second, Err(Error::Replay { .. })), "{second:?}");
    }

    for key in suite_keys() {
        let mut out = vec![SENTINEL; out_len];
        match key.decrypt(metadata, frame, &mut out) {
            Ok((header, len)) => {
                let (h, header_len) = Header::parse(frame).expect("header");
                assert_eq!(h, header);
                assert_eq!(len, frame.len() - header_len - key.suite().tag_len());
                assert!(out[len..].iter().all(|&b| b == SENTINEL));
            }
            Err(_) => assert_no_leak(&out, "FrameKey::decrypt"),
        }
    }
}

struct Sealed {
    epoch: u64,
    header: Header,
    metadata: Vec<u8>,
    plaintext: Vec<u8>,
    frame: Vec<u8>,
    accepted: bool,
}

/// Mode 1: a sender and a receiver exchanging frames.
fn session(input: &mut Input<'_>) {
    let mut now = Instant::ZERO;
    let mut epoch = FIRST_EPOCH;
    let mut sender = ring(SENDER, epoch);
    let mut receiver = ring(RECEIVER, epoch);
    let mut next_ctr = 0u64;
    let mut sealed: Vec<Sealed> = Vec::new();

    for _ in 0..64 {
        if input.is_empty() {
            break;
        }
        match input.byte() % 8 {
            0..=2 => {
                let pt_len = usize::from(input.byte());
                let meta_len = usize::from(input.byte() % 32);
                let plaintext = input.take(pt_len).to_vec();
                let metadata = input.take(meta_len).to_vec();
                let mut frame = vec![0u8; sender.max_ciphertext_len(plaintext.len())];
                let n = sender
                    .encrypt(&metadata, &plaintext, &mut frame)
                    .expect("sealing with a current epoch succeeds");
                frame.truncate(n);
                let (header, header_len) = Header::parse(&frame).expect("sealed header parses");
                assert_eq!(Some(header.kid), sender.sending_kid());
                assert_eq!(header.ctr, next_ctr, "counters are sequential");
                next_ctr += 1;
                assert_eq!(n, header_len + plaintext.len() + 16);
                sealed.push(Sealed {
                    epoch,
                    header,
                    metadata,
                    plaintext,
                    frame,
                    accepted: false,
                });
            }
            3..=5 => deliver(input, &mut receiver, &mut sealed),
            6 => {
                epoch += 1;
                install(&mut sender, SENDER, epoch, now);
                install(&mut receiver, RECEIVER, epoch, now);
                next_ctr = 0;
            }
            _ => {
                now = now.saturating_add(Duration::from_millis(u64::from(input.byte()) * 50));
                sender.handle_timeout(now);
                receiver.handle_timeout(now);
            }
        }
    }

    // Liveness: every frame not yet opened whose epoch is still held opens
    // now, unmodified; afterwards every one of them is a replay.
    for s in &mut sealed {
        if s.accepted || !receiver.epochs().any(|e| e == s.epoch) {
            continue;
        }
        let (result, out) = checked_decrypt(
            &mut receiver,
            RECEIVER,
            &s.metadata,
            &s.frame,
            s.plaintext.len(),
        );
        let opened = result.unwrap_or_else(|e| panic!("fresh frame refused: {e:?}"));
        assert_eq!(&out[..opened.len], &s.plaintext[..]);
        s.accepted = true;
    }
    for s in &sealed {
        if receiver.epochs().any(|e| e == s.epoch) {
            let (result, _) = checked_decrypt(
                &mut receiver,
                RECEIVER,
                &s.metadata,
                &s.frame,
                s.plaintext.len(),
            );
            assert_eq!(
                result,
                Err(Error::Replay {
                    kid: s.header.kid,
                    ctr: s.header.ctr
                })
            );
        }
    }
}

/// Delivers one sealed frame, perhaps mutated, and checks the outcome.
fn deliver(input: &mut Input<'_>, receiver: &mut KeyRing, sealed: &mut [Sealed]) {
    if sealed.is_empty() {
        return;
    }
    let idx = usize::from(input.byte()) % sealed.len();
    let s = &sealed[idx];
    let mut frame = s.frame.clone();
    let mut metadata = s.metadata.clone();
    match input.byte() % 6 {
        0 => {}
        1 => {
            let pos = usize::from(input.u16()) % frame.len();
            frame[pos] ^= input.byte();
        }
        2 => {
            let len = usize::from(input.u16()) % (frame.len() + 1);
            frame.truncate(len);
        }
        3 => {
            let n = usize::from(input.byte() % 8) + 1;
            frame.extend_from_slice(input.take(n));
        }
        4 => {
            let n = usize::from(input.byte() % 32);
            metadata = input.take(n).to_vec();
        }
        _ => {
            // Overwrite a range with input bytes (may also grow the frame).
            let pos = usize::from(input.u16()) % (frame.len() + 1);
            let n = usize::from(input.byte() % 17);
            for (i, &b) in input.take(n).iter().enumerate() {
                match frame.get_mut(pos + i) {
                    Some(x) => *x = b,
                    None => frame.push(b),
                }
            }
        }
    }
    let out_sel = input.byte();
    let out_len = if out_sel < 16 {
        usize::from(out_sel)
    } else {
        s.plaintext.len() + usize::from(out_sel % 4)
    };

    let fresh_and_held = !s.accepted && receiver.epochs().any(|e| e == s.epoch);
    let identical = frame == s.frame && metadata == s.metadata;
    let (first, out) = checked_decrypt(receiver, RECEIVER, &metadata, &frame, out_len);
    match first {
        Ok(opened) => {
            // Only an exact copy of a sealed frame, never opened before.
            let j = sealed
                .iter()
                .position(|t| t.frame == frame && t.metadata == metadata)
                .unwrap_or_else(|| panic!("a mutated frame opened: {opened:?}"));
            let t = &mut sealed[j];
            assert!(!t.accepted, "a frame opened twice");
            assert_eq!(&out[..opened.len], &t.plaintext[..], "wrong plaintext");
            assert_eq!(opened.epoch, t.epoch);
            assert_eq!(opened.sender, SENDER);
            assert_eq!(opened.header, t.header);
            t.accepted = true;
        }
        Err(Error::Replay { kid, ctr }) => {
            // Only a (KID, CTR) already opened in an epoch still held.
            assert!(
                sealed.iter().any(|t| t.accepted
                    && t.header == Header::new(kid, ctr)
                    && t.epoch & EPOCH_MASK == kid & EPOCH_MASK),
                "Replay for KID {kid:#x} CTR {ctr} never opened"
            );
        }
        Err(e) => {
            let s = &sealed[idx];
            if identical && receiver.epochs().any(|x| x == s.epoch) {
                assert!(
                    !(fresh_and_held && out_len >= s.plaintext.len()),
                    "a fresh unmodified frame was refused: {e:?}"
                );
                assert!(!s.accepted, "a replayed frame gave {e:?}, not Replay");
            }
        }
    }

    // The same bytes again never open.
    let (second, _) = checked_decrypt(receiver, RECEIVER, &metadata, &frame, out_len);
    assert!(second.is_err(), "the same bytes opened twice");
    if first.is_ok() {
        assert!(matches!(second, Err(Error::Replay { .. })), "{second:?}");
    }
}

/// Mode 2: `FrameKey` round trips for every suite.
fn suites(input: &mut Input<'_>) {
    let kid = input.u64();
    let ctr = input.u64();
    let flags = input.byte();
    let mut meta_len = usize::from(input.byte() % 40);
    if flags & 1 != 0 {
        meta_len += 240; // sometimes past MAX_METADATA_LEN
    }
    let pos = usize::from(input.u16());
    let mask = input.byte();
    let metadata = input.take(meta_len);
    let plaintext = input.rest();
    let header = Header::new(kid, ctr);

    for key in suite_keys() {
        let tag_len = key.suite().tag_len();
        let len = key.ciphertext_len(header, plaintext.len());
        assert_eq!(len, header.len() + plaintext.len() + tag_len);
        let mut frame = vec![0u8; len];
        let sealed = key.encrypt(header, metadata, plaintext, &mut frame);
        if metadata.len() > MAX_METADATA_LEN {
            assert_eq!(
                sealed,
                Err(Error::MetadataTooLong {
                    len: metadata.len()
                })
            );
            let mut out = vec![SENTINEL; plaintext.len()];
            assert!(key.decrypt(metadata, &frame, &mut out).is_err());
            assert_no_leak(&out, "FrameKey::decrypt");
            continue;
        }
        assert_eq!(sealed, Ok(len));

        // A buffer one byte short is an error, not a panic or overrun.
        let mut short = vec![0u8; len - 1];
        assert!(matches!(
            key.encrypt(header, metadata, plaintext, &mut short),
            Err(Error::BufferTooSmall { .. })
        ));

        let mut out = vec![SENTINEL; plaintext.len() + 1];
        assert_eq!(
            key.decrypt(metadata, &frame, &mut out),
            Ok((header, plaintext.len()))
        );
        assert_eq!(&out[..plaintext.len()], plaintext);
        assert_eq!(out[plaintext.len()], SENTINEL, "wrote past the plaintext");

        if !plaintext.is_empty() {
            let mut small = vec![SENTINEL; plaintext.len() - 1];
            assert_eq!(
                key.decrypt(metadata, &frame, &mut small),
                Err(Error::BufferTooSmall {
                    needed: plaintext.len(),
                    available: plaintext.len() - 1
                })
            );
        }

        if mask != 0 {
            let mut bad = frame.clone();
            bad[pos % len] ^= mask;
            let mut out = vec![SENTINEL; plaintext.len()];
            let result = key.decrypt(metadata, &bad, &mut out);
            // A 4-byte tag is forged by chance once in 2^32 tries, which a
            // long fuzzing run reaches; only the longer tags must always hold.
            if tag_len >= 8 {
                assert!(result.is_err(), "{:?}: altered frame opened", key.suite());
            }
            if result.is_err() {
                assert_no_leak(&out, "FrameKey::decrypt");
            }
            // Altered metadata, too.
            let mut other_meta = metadata.to_vec();
            other_meta.push(mask);
            let mut out = vec![SENTINEL; plaintext.len()];
            let result = key.decrypt(&other_meta, &frame, &mut out);
            if tag_len >= 8 {
                assert!(
                    result.is_err(),
                    "{:?}: altered metadata opened",
                    key.suite()
                );
            }
        }
    }
}
