//! SFrame encrypt and decrypt throughput: Satsuma's `satsuma_core::sframe`
//! against two baselines measured in the same run.
//!
//! - `aes-gcm-raw`: `aes_gcm::Aes128Gcm` with a pre-expanded key, sealing or
//!   opening the same number of bytes with a header-sized AAD through
//!   `encrypt_inout_detached` / `decrypt_inout_detached` into a caller
//!   buffer. No header, no counter, no replay check: the limit.
//! - `sframe-crate`: the `sframe` crate 2.1 (RustCrypto backend), a `std`
//!   peer implementation, through its view API into a reused `Vec<u8>`.
//! - `satsuma`: `KeyRing::encrypt` / `KeyRing::decrypt`, the full path a
//!   caller takes (header, counter, KID lookup, replay window, AEAD).
//! - `satsuma-framekey` (decrypt only): `FrameKey::decrypt`, the same open
//!   without KID lookup and replay window, to show how the cost splits.
//!
//! Groups are `encrypt/<plaintext bytes>` and `decrypt/<plaintext bytes>`,
//! so each size lists the variants side by side. Run with
//!
//! ```text
//! cargo bench -p satsuma-core --bench sframe -- --warm-up-time 1 --measurement-time 3
//! ```

// A benchmark's setup has nothing to recover from: a failure there is a bug
// in the benchmark, and aborting the run with its message is the right end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant as WallClock};

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use aes_gcm::{Aes128Gcm, Key, Tag};
use criterion::{Bencher, Criterion, Throughput, criterion_group, criterion_main};
use satsuma_core::Instant;
use satsuma_core::sframe::{
    CipherSuite, EpochSecret, FrameKey, Header, KeyRing, KeyRingConfig, MAX_HEADER_LEN,
};
use sframe::frame::validation::{ReplayAttackProtection, Tolerance};
use sframe::frame::{EncryptedFrameView, MediaFrameView, MonotonicCounter};
use sframe::key::{DecryptionKey, EncryptionKey};

/// Opus DTX, G.711 20 ms, one video packet, one large video frame.
const SIZES: [usize; 4] = [3, 160, 1_200, 60_000];

const BASE_KEY: [u8; 16] = [0x42; 16];
const TAG_LEN: usize = 16;
/// The `sframe` crate's name for the one suite benchmarked here.
const SFRAME_SUITE: sframe::CipherSuite = sframe::CipherSuite::AesGcm128Sha256;

/// Bytes of sealed frames a decrypt benchmark cycles through: enough frames
/// that each is opened by a fresh replay window, small enough to stay in
/// the last-level cache like the single plaintext of the encrypt side.
const POOL_BYTES: usize = 1 << 20;

/// The AAD the raw baseline authenticates: an SFrame header of the size
/// Satsuma's sender writes once its counter passes 2^16 (config byte and
/// three counter bytes; the KID of sender 0 in epoch 1 fits the config
/// byte). Every benchmarked header is at most 16 bytes, one GHASH block.
const RAW_AAD: [u8; 4] = [0x1a, 0x01, 0x02, 0x03];

fn epoch(own_index: u64) -> EpochSecret<'static> {
    EpochSecret {
        epoch: 1,
        base_key: &BASE_KEY,
        group_size: 2,
        own_index,
    }
}

fn ring(own_index: u64) -> KeyRing {
    let mut ring = KeyRing::new(KeyRingConfig::default()).unwrap();
    ring.install_epoch(Instant::ZERO, epoch(own_index)).unwrap();
    ring
}

fn plaintext(size: usize) -> Vec<u8> {
    (0..=u8::MAX).cycle().take(size).collect()
}

fn raw_cipher() -> Aes128Gcm {
    Aes128Gcm::new(&Key::<Aes128Gcm>::from([0x24; 16]))
}

/// How many frames of `size` plaintext bytes a decrypt pool holds.
fn pool_len(size: usize) -> usize {
    (POOL_BYTES / (size + MAX_HEADER_LEN + TAG_LEN)).clamp(16, 4096)
}

/// Runs `open` on `iters` frames, timing only `open`: the pool is opened in
/// passes, and before each pass `fresh` builds the receiver state (replay
/// window, key cache) that pass uses, untimed.
fn pooled<S>(
    iters: u64,
    pool: &[Vec<u8>],
    mut fresh: impl FnMut() -> S,
    mut open: impl FnMut(&mut S, &[u8]),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let take = usize::try_from(left).unwrap_or(usize::MAX).min(pool.len());
        let mut state = fresh();
        let start = WallClock::now();
        for frame in &pool[..take] {
            open(&mut state, black_box(frame));
        }
        total += start.elapsed();
        left -= take as u64;
    }
    total
}

fn encrypt(c: &mut Criterion) {
    for size in SIZES {
        let pt = plaintext(size);
        let mut group = c.benchmark_group(format!("encrypt/{size}"));
        group.throughput(Throughput::Bytes(size as u64));

        group.bench_function("satsuma", |b| {
            let mut sender = ring(0);
            let mut out = vec![0u8; sender.max_ciphertext_len(size)];
            b.iter(|| {
                sender
                    .encrypt(&[], black_box(&pt), black_box(&mut out))
                    .unwrap()
            });
        });

        group.bench_function("aes-gcm-raw", |b| {
            let gcm = raw_cipher();
            let mut ct = vec![0u8; size];
            let mut ctr = 0;
            b.iter(|| {
                ctr += 1;
                let buf = InOutBuf::new(black_box(&pt), black_box(&mut ct)).unwrap();
                gcm.encrypt_inout_detached(&raw_nonce(ctr), black_box(&RAW_AAD), buf)
                    .unwrap()
            });
        });

        // Per frame, `MediaFrameView::encrypt_into`: takes the next counter,
        // resizes the caller's `Vec` (no allocation once it is large enough),
        // writes `header ‖ plaintext` into it, then runs
        // `Aes128Gcm::new_from_slice(key)`, i.e. expands the AES key and
        // the GHASH key for every frame, seals in place and rotates the AAD
        // region into `metadata ‖ header` order. There is no path that keeps
        // an expanded key.
        group.bench_function("sframe-crate", |b| {
            let key = EncryptionKey::derive_from(SFRAME_SUITE, 1u64, BASE_KEY).unwrap();
            let mut counter = MonotonicCounter::default();
            let mut out = Vec::with_capacity(size + MAX_HEADER_LEN + TAG_LEN);
            b.iter(|| {
                let frame = MediaFrameView::try_new(&mut counter, black_box(&pt[..])).unwrap();
                frame
                    .encrypt_into(&key, &mut out)
                    .unwrap()
                    .cipher_text()
                    .len()
            });
        });

        group.finish();
    }
}

fn decrypt(c: &mut Criterion) {
    for size in SIZES {
        let pt = plaintext(size);
        let frames = pool_len(size);

        // One sender's frames, counters 0 ..= frames: frame 0 primes each
        // fresh receiver (its first frame derives and caches the sender's
        // key, which is a per-epoch cost, not a per-frame one), the rest
        // are timed.
        let mut sender = ring(0);
        let kid = sender.sending_kid().unwrap();
        let mut sealed: Vec<Vec<u8>> = (0..=frames)
            .map(|_| {
                let mut out = vec![0u8; sender.max_ciphertext_len(size)];
                let n = sender.encrypt(&[], &pt, &mut out).unwrap();
                out.truncate(n);
                out
            })
            .collect();
        let primer = sealed.remove(0);
        check_interop(kid, &sealed[0], &pt);

        let mut group = c.benchmark_group(format!("decrypt/{size}"));
        group.throughput(Throughput::Bytes(size as u64));

        group.bench_function("satsuma", |b: &mut Bencher<'_>| {
            let mut out = vec![0u8; size];
            let mut scratch = vec![0u8; size];
            b.iter_custom(|iters| {
                pooled(
                    iters,
                    &sealed,
                    || {
                        let mut receiver = ring(1);
                        receiver.decrypt(&[], &primer, &mut scratch).unwrap();
                        receiver
                    },
                    |receiver, frame| {
                        black_box(receiver.decrypt(&[], frame, &mut out).unwrap());
                    },
                )
            });
        });

        group.bench_function("satsuma-framekey", |b| {
            let key = FrameKey::derive(CipherSuite::AesGcm128Sha256, &BASE_KEY, kid).unwrap();
            let mut out = vec![0u8; size];
            b.iter_custom(|iters| {
                pooled(
                    iters,
                    &sealed,
                    || (),
                    |(), frame| {
                        black_box(key.decrypt(&[], frame, &mut out).unwrap());
                    },
                )
            });
        });

        // The same AEAD over the same sizes: `ciphertext ‖ tag` frames with
        // the header-sized AAD, opened into a caller buffer.
        let gcm = raw_cipher();
        let raw: Vec<Vec<u8>> = (0..frames)
            .map(|i| {
                let mut frame = pt.clone();
                let tag = gcm
                    .encrypt_inout_detached(&raw_nonce(i), &RAW_AAD, frame.as_mut_slice().into())
                    .unwrap();
                frame.extend_from_slice(&tag);
                frame
            })
            .collect();
        group.bench_function("aes-gcm-raw", |b| {
            let mut out = vec![0u8; size];
            b.iter_custom(|iters| {
                pooled(
                    iters,
                    &raw,
                    || 0,
                    |i, frame| {
                        let (ct, tag) = frame.split_at(size);
                        let buf = InOutBuf::new(ct, &mut out).unwrap();
                        let tag = Tag::try_from(tag).unwrap();
                        gcm.decrypt_inout_detached(&raw_nonce(*i), black_box(&RAW_AAD), buf, &tag)
                            .unwrap();
                        *i += 1;
                    },
                )
            });
        });

        // Per frame: `EncryptedFrameView::try_new` parses the header, then
        // `validated_decrypt_into` screens the counter against the replay
        // window, resizes the caller's `Vec` (no allocation once large
        // enough), copies `header ‖ ciphertext ‖ tag` into it, expands the
        // AES and GHASH keys (`Aes128Gcm::new_from_slice`), opens in place,
        // moves the plaintext to the front and records the counter. Satsuma's
        // frames are RFC 9605 frames, so it opens the very same bytes.
        group.bench_function("sframe-crate", |b| {
            let key = DecryptionKey::derive_from(SFRAME_SUITE, kid, BASE_KEY).unwrap();
            let mut out = Vec::with_capacity(size + MAX_HEADER_LEN + TAG_LEN);
            b.iter_custom(|iters| {
                pooled(
                    iters,
                    &sealed,
                    || ReplayAttackProtection::new(kid, Tolerance::new(128)),
                    |window, frame| {
                        let view = EncryptedFrameView::try_new(frame).unwrap();
                        black_box(
                            view.validated_decrypt_into(&key, &mut out, window)
                                .unwrap()
                                .payload()
                                .len(),
                        );
                    },
                )
            });
        });

        group.finish();
    }
}

/// A distinct nonce per raw frame, built the way SFrame builds one (a fixed
/// salt XOR the counter), so the raw baseline pays for it too.
fn raw_nonce(i: usize) -> Nonce<Aes128Gcm> {
    let mut nonce = [7u8; 12];
    for (n, c) in nonce[4..].iter_mut().zip((i as u64).to_be_bytes()) {
        *n ^= c;
    }
    Nonce::<Aes128Gcm>::from(nonce)
}

/// Both implementations read the same RFC 9605 frames: the `sframe` crate
/// opens a frame Satsuma sealed, to the same plaintext and header.
fn check_interop(kid: u64, frame: &[u8], pt: &[u8]) {
    let key = DecryptionKey::derive_from(SFRAME_SUITE, kid, BASE_KEY).unwrap();
    let view = EncryptedFrameView::try_new(frame).unwrap();
    let mut out = Vec::new();
    let opened = view.decrypt_into(&key, &mut out).unwrap();
    assert_eq!(opened.payload(), pt, "sframe crate opens Satsuma's frame");
    let (header, _) = Header::parse(frame).unwrap();
    assert_eq!(header.kid, view.header().key_id());
    assert_eq!(header.ctr, view.header().counter());
}

criterion_group!(benches, encrypt, decrypt);
criterion_main!(benches);
