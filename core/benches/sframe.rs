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
//! so each size lists the variants side by side. The `layers/...` groups
//! are an experiment on where Satsuma's fixed per-frame cost goes, see
//! [`layers`]. Run with
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
    AeadKey, CipherSuite, EpochSecret, FrameKey, Header, KeyRing, KeyRingConfig, MAX_HEADER_LEN,
    MAX_METADATA_LEN, NONCE_LEN,
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

/// Sizes the layer experiment runs at: the smallest, where fixed costs show
/// most, and the largest, where only the bulk cipher should.
const LAYER_SIZES: [usize; 2] = [3, 60_000];

/// The first counter of the layer experiment's senders: with it the header
/// is as long as [`RAW_AAD`] and the one `KeyRing::encrypt` writes in the
/// main benchmark.
const LAYER_CTR: u64 = 1 << 16;

/// Where Satsuma's per-frame cost above `aes-gcm-raw` goes, one public layer
/// at a time (compare with `encrypt/<n>` and `decrypt/<n>` of the same run):
///
/// - `aeadkey`: [`AeadKey::seal`] / [`AeadKey::open`], the suite dispatch
///   and length checks around the same AES-GCM call, same AAD;
/// - `framekey` (encrypt; decrypt is `decrypt/<n>/satsuma-framekey`):
///   [`FrameKey::encrypt`], adding header, nonce and AAD assembly;
/// - `hand-rolled`: the same SFrame frame built directly on `Aes128Gcm`
///   with Satsuma's [`Header`] (emit, nonce = salt XOR counter, the header
///   in `out` as the AAD, tag copied after the ciphertext), without the
///   stack AAD buffer, suite dispatch or error mapping: what the format
///   itself costs;
/// - `hand-rolled-wide`: `hand-rolled` with the header written and read by
///   [`emit_wide`] and [`parse_wide`];
/// - `hand-rolled+aad-buf`: `hand-rolled` plus zeroing the
///   `MAX_HEADER_LEN + MAX_METADATA_LEN`-byte stack buffer that
///   `FrameKey::encrypt` initialises for every frame, metadata or not;
/// - `hand-rolled+aeadkey`: `hand-rolled` sealing through [`AeadKey::seal`];
/// - `aes-gcm-raw-offset`: `aes-gcm-raw` writing its ciphertext 4 bytes
///   into the buffer, where an SFrame ciphertext lands behind its header;
/// - `layers/header/emit` and `layers/header/parse`: [`Header::emit`] and
///   [`Header::parse`] alone, for the header of `hand-rolled`; `emit-wide`
///   and `parse-wide` the same encoding with fixed 8-byte loads and stores,
///   see [`emit_wide`].
fn layers(c: &mut Criterion) {
    let salt = [0x5a; NONCE_LEN];
    let nonce = |ctr: u64| {
        let mut n = salt;
        for (n, c) in n[NONCE_LEN - 8..].iter_mut().zip(ctr.to_be_bytes()) {
            *n ^= c;
        }
        n
    };
    let kid = ring(0).sending_kid().unwrap();

    let mut group = c.benchmark_group("layers/header");
    check_wide_header();
    let mut out = [0u8; MAX_HEADER_LEN + TAG_LEN];
    group.bench_function("emit", |b| {
        let mut ctr = LAYER_CTR;
        b.iter(|| {
            ctr += 1;
            Header::new(black_box(kid), ctr)
                .emit(black_box(&mut out))
                .unwrap()
        });
    });
    group.bench_function("emit-wide", |b| {
        let mut ctr = LAYER_CTR;
        b.iter(|| {
            ctr += 1;
            emit_wide(Header::new(black_box(kid), ctr), black_box(&mut out)).unwrap()
        });
    });
    // A header with the tag behind it, as the front of the shortest frame.
    let len = Header::new(kid, LAYER_CTR).emit(&mut out).unwrap();
    let frame = &out[..len + TAG_LEN];
    group.bench_function("parse", |b| {
        b.iter(|| Header::parse(black_box(frame)).unwrap());
    });
    group.bench_function("parse-wide", |b| {
        b.iter(|| parse_wide(black_box(frame)).unwrap());
    });
    group.finish();

    for size in LAYER_SIZES {
        let pt = plaintext(size);
        let mut group = c.benchmark_group(format!("layers/encrypt/{size}"));
        group.throughput(Throughput::Bytes(size as u64));

        group.bench_function("aeadkey", |b| {
            let key = AeadKey::new(CipherSuite::AesGcm128Sha256, &[0x24; 16]).unwrap();
            let mut ct = vec![0u8; size];
            let mut tag = [0u8; TAG_LEN];
            let mut ctr = LAYER_CTR;
            b.iter(|| {
                ctr += 1;
                key.seal(
                    &nonce(ctr),
                    black_box(&RAW_AAD),
                    black_box(&pt),
                    &mut ct,
                    &mut tag,
                )
                .unwrap();
            });
        });

        group.bench_function("framekey", |b| {
            let key = FrameKey::derive(CipherSuite::AesGcm128Sha256, &BASE_KEY, kid).unwrap();
            let mut out = vec![0u8; size + MAX_HEADER_LEN + TAG_LEN];
            let mut ctr = LAYER_CTR;
            b.iter(|| {
                ctr += 1;
                key.encrypt(Header::new(kid, ctr), &[], black_box(&pt), &mut out)
                    .unwrap()
            });
        });

        group.bench_function("hand-rolled", |b| {
            let gcm = raw_cipher();
            let mut out = vec![0u8; size + MAX_HEADER_LEN + TAG_LEN];
            let mut ctr = LAYER_CTR;
            b.iter(|| {
                ctr += 1;
                hand_seal(
                    &gcm,
                    &nonce(ctr),
                    Header::new(kid, ctr),
                    black_box(&pt),
                    &mut out,
                )
            });
        });

        group.bench_function("hand-rolled-wide", |b| {
            let gcm = raw_cipher();
            let mut out = vec![0u8; size + MAX_HEADER_LEN + TAG_LEN];
            let mut ctr = LAYER_CTR;
            b.iter(|| {
                ctr += 1;
                hand_seal_wide(
                    &gcm,
                    &nonce(ctr),
                    Header::new(kid, ctr),
                    black_box(&pt),
                    &mut out,
                )
            });
        });

        group.bench_function("hand-rolled+aad-buf", |b| {
            let gcm = raw_cipher();
            let mut out = vec![0u8; size + MAX_HEADER_LEN + TAG_LEN];
            let mut ctr = LAYER_CTR;
            b.iter(|| {
                ctr += 1;
                let mut aad_buf = [0u8; MAX_HEADER_LEN + MAX_METADATA_LEN];
                black_box(&mut aad_buf);
                hand_seal(
                    &gcm,
                    &nonce(ctr),
                    Header::new(kid, ctr),
                    black_box(&pt),
                    &mut out,
                )
            });
        });

        group.bench_function("hand-rolled+aeadkey", |b| {
            let key = AeadKey::new(CipherSuite::AesGcm128Sha256, &[0x24; 16]).unwrap();
            let mut out = vec![0u8; size + MAX_HEADER_LEN + TAG_LEN];
            let mut ctr = LAYER_CTR;
            b.iter(|| {
                ctr += 1;
                let header = Header::new(kid, ctr);
                let header_len = header.emit(&mut out).unwrap();
                let (aad, body) = out.split_at_mut(header_len);
                let (ct, tag) = body.split_at_mut(size);
                key.seal(&nonce(ctr), aad, black_box(&pt), ct, &mut tag[..TAG_LEN])
                    .unwrap();
            });
        });

        group.bench_function("aes-gcm-raw-offset", |b| {
            let gcm = raw_cipher();
            let mut out = vec![0u8; size + RAW_AAD.len()];
            let mut ctr = 0;
            b.iter(|| {
                ctr += 1;
                let buf = InOutBuf::new(black_box(&pt), &mut out[RAW_AAD.len()..]).unwrap();
                gcm.encrypt_inout_detached(&raw_nonce(ctr), black_box(&RAW_AAD), buf)
                    .unwrap()
            });
        });
        group.finish();

        let mut group = c.benchmark_group(format!("layers/decrypt/{size}"));
        group.throughput(Throughput::Bytes(size as u64));
        let frames = pool_len(size);

        // `ciphertext ‖ tag` under RAW_AAD and the counter's nonce.
        let key = AeadKey::new(CipherSuite::AesGcm128Sha256, &[0x24; 16]).unwrap();
        let sealed: Vec<Vec<u8>> = (0..frames)
            .map(|i| {
                let mut frame = vec![0u8; size + TAG_LEN];
                let (ct, tag) = frame.split_at_mut(size);
                key.seal(&nonce(i as u64), &RAW_AAD, &pt, ct, tag).unwrap();
                frame
            })
            .collect();
        group.bench_function("aeadkey", |b| {
            let mut out = vec![0u8; size];
            b.iter_custom(|iters| {
                pooled(
                    iters,
                    &sealed,
                    || 0,
                    |i, frame| {
                        let (ct, tag) = frame.split_at(size);
                        key.open(&nonce(*i), black_box(&RAW_AAD), ct, &mut out, tag)
                            .unwrap();
                        *i += 1;
                    },
                )
            });
        });

        // Whole SFrame frames, as `hand_seal` writes them.
        let gcm = raw_cipher();
        let sealed: Vec<Vec<u8>> = (0..frames as u64)
            .map(|i| {
                let ctr = LAYER_CTR + i;
                let mut out = vec![0u8; size + MAX_HEADER_LEN + TAG_LEN];
                let n = hand_seal(&gcm, &nonce(ctr), Header::new(kid, ctr), &pt, &mut out);
                out.truncate(n);
                out
            })
            .collect();
        group.bench_function("hand-rolled", |b| {
            let mut out = vec![0u8; size];
            b.iter_custom(|iters| {
                pooled(
                    iters,
                    &sealed,
                    || (),
                    |(), frame| {
                        let header = Header::parse(frame).unwrap();
                        hand_open(&gcm, header, &nonce(header.0.ctr), frame, &mut out);
                    },
                )
            });
        });
        group.bench_function("hand-rolled-wide", |b| {
            let mut out = vec![0u8; size];
            b.iter_custom(|iters| {
                pooled(
                    iters,
                    &sealed,
                    || (),
                    |(), frame| {
                        let header = parse_wide(frame).unwrap();
                        hand_open(&gcm, header, &nonce(header.0.ctr), frame, &mut out);
                    },
                )
            });
        });
        group.finish();
    }
}

/// An SFrame frame `header ‖ ciphertext ‖ tag` straight on `Aes128Gcm`;
/// returns its length.
fn hand_seal(
    gcm: &Aes128Gcm,
    nonce: &[u8; NONCE_LEN],
    header: Header,
    pt: &[u8],
    out: &mut [u8],
) -> usize {
    let header_len = header.emit(out).unwrap();
    let (aad, body) = out.split_at_mut(header_len);
    let (ct, rest) = body.split_at_mut(pt.len());
    let buf = InOutBuf::new(pt, ct).unwrap();
    let tag = gcm
        .encrypt_inout_detached(&Nonce::<Aes128Gcm>::from(*nonce), aad, buf)
        .unwrap();
    rest[..TAG_LEN].copy_from_slice(&tag);
    header_len + pt.len() + TAG_LEN
}

/// [`Header::emit`] with each field written as one 8-byte big-endian store
/// instead of a copy of its exact length (which compiles to a `memcpy` call
/// per field). The store reaches up to 8 bytes past the field, so this needs
/// `out` to extend `MAX_HEADER_LEN` bytes past the header's start, which a
/// frame buffer always does (ciphertext and a 16-byte tag follow); the
/// bytes past the header are overwritten by whatever comes next.
fn emit_wide(header: Header, out: &mut [u8]) -> Option<usize> {
    let kid_len = extension_len(header.kid);
    let ctr_len = extension_len(header.ctr);
    let out = out.get_mut(..MAX_HEADER_LEN)?;
    out[0] = (nibble(header.kid, kid_len) << 4) | nibble(header.ctr, ctr_len);
    out[1..9].copy_from_slice(&left_aligned(header.kid, kid_len));
    out[1 + kid_len..9 + kid_len].copy_from_slice(&left_aligned(header.ctr, ctr_len));
    Some(1 + kid_len + ctr_len)
}

/// [`Header::parse`] reading each field as one 8-byte big-endian load,
/// for frames with at least 8 bytes behind the field (any frame with a
/// 16-byte tag), with the same refusal of non-minimal encodings; falls back
/// to [`Header::parse`] otherwise.
fn parse_wide(bytes: &[u8]) -> Option<(Header, usize)> {
    let config = *bytes.first()?;
    let wide = || {
        let (kid, kid_len) = field_wide(config >> 4, bytes, 1)?;
        let (ctr, ctr_len) = field_wide(config & 0x0f, bytes, 1 + kid_len)?;
        Some((Header::new(kid, ctr), 1 + kid_len + ctr_len))
    };
    wide().or_else(|| Header::parse(bytes).ok())
}

fn field_wide(nibble: u8, bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    if nibble & 0x08 == 0 {
        return Some((u64::from(nibble), 0));
    }
    let len = usize::from(nibble & 0x07) + 1;
    let window: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    let value = u64::from_be_bytes(window) >> (8 * (8 - len));
    (extension_len(value) == len).then_some((value, len))
}

const fn extension_len(value: u64) -> usize {
    if value < 8 {
        0
    } else {
        8 - (value.leading_zeros() as usize / 8)
    }
}

#[allow(clippy::cast_possible_truncation)] // Below 8, or `len - 1` below 8.
const fn nibble(value: u64, len: usize) -> u8 {
    if len == 0 {
        value as u8
    } else {
        0x08 | (len as u8 - 1)
    }
}

/// `value`'s `len` low bytes, big-endian, at the front of 8 bytes.
const fn left_aligned(value: u64, len: usize) -> [u8; 8] {
    if len == 0 {
        [0; 8]
    } else {
        (value << (8 * (8 - len))).to_be_bytes()
    }
}

/// `emit_wide` and `parse_wide` agree with Satsuma's header code.
fn check_wide_header() {
    let values = [0, 1, 7, 8, 255, 256, 65_535, 65_536, 1 << 40, u64::MAX];
    for kid in values {
        for ctr in values {
            let header = Header::new(kid, ctr);
            let mut exact = [0u8; MAX_HEADER_LEN + TAG_LEN];
            let mut wide = [0xaa; MAX_HEADER_LEN + TAG_LEN];
            let len = header.emit(&mut exact).unwrap();
            assert_eq!(emit_wide(header, &mut wide), Some(len));
            assert_eq!(exact[..len], wide[..len], "emit {kid} {ctr}");
            let frame = &exact[..len + TAG_LEN];
            assert_eq!(parse_wide(frame), Some((header, len)), "parse {kid} {ctr}");
        }
    }
    // A one-byte CTR field holding 5: not minimal, refused by both.
    let frame = [0x08, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(Header::parse(&frame).is_err());
    assert_eq!(parse_wide(&frame), None);
}

/// `hand_seal` writing the header with [`emit_wide`].
fn hand_seal_wide(
    gcm: &Aes128Gcm,
    nonce: &[u8; NONCE_LEN],
    header: Header,
    pt: &[u8],
    out: &mut [u8],
) -> usize {
    let header_len = emit_wide(header, out).unwrap();
    let (aad, body) = out.split_at_mut(header_len);
    let (ct, rest) = body.split_at_mut(pt.len());
    let buf = InOutBuf::new(pt, ct).unwrap();
    let tag = gcm
        .encrypt_inout_detached(&Nonce::<Aes128Gcm>::from(*nonce), aad, buf)
        .unwrap();
    rest[..TAG_LEN].copy_from_slice(&tag);
    header_len + pt.len() + TAG_LEN
}

/// Opens a frame `hand_seal` wrote, whose header was already parsed.
fn hand_open(
    gcm: &Aes128Gcm,
    (_, header_len): (Header, usize),
    nonce: &[u8; NONCE_LEN],
    frame: &[u8],
    out: &mut [u8],
) {
    let (aad, body) = frame.split_at(header_len);
    let (ct, tag) = body.split_at(body.len() - TAG_LEN);
    let buf = InOutBuf::new(ct, &mut out[..ct.len()]).unwrap();
    let tag = Tag::try_from(tag).unwrap();
    gcm.decrypt_inout_detached(&Nonce::<Aes128Gcm>::from(*nonce), aad, buf, &tag)
        .unwrap();
}

criterion_group!(benches, encrypt, decrypt, layers);
criterion_main!(benches);
