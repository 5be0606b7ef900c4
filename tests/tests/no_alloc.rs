//! The per-frame path allocates nothing: after set-up (epochs installed, the
//! first frame from each sender seen), sealing and opening frames of every
//! size and suite makes zero heap allocations.
//!
//! A counting global allocator counts per thread, so libtest's own threads
//! cannot disturb the count.
#![allow(unsafe_code)] // A global allocator is an unsafe trait.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use satsuma_core::Instant;
use satsuma_core::media::Codec;
use satsuma_core::sframe::{ALL_SUITES, CipherSuite, EpochSecret, KeyRing, KeyRingConfig};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the only
// addition is a thread-local counter, which itself never allocates (it is
// const-initialised).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

const SIZES: [usize; 4] = [3, 160, 1_200, 60_000];

/// A sender and a receiver. `expanded` false is the intercom's setting:
/// the receiver keeps each sender's 16–32-byte key and expands the AES key
/// for every frame.
fn members(suite: CipherSuite, expanded: bool) -> (KeyRing, KeyRing) {
    let config = KeyRingConfig {
        suite,
        expanded_receiver_keys: expanded,
        ..KeyRingConfig::default()
    };
    let base_key = vec![0x24; suite.key_len()];
    let ring = |own_index| {
        let mut ring = KeyRing::new(config).unwrap();
        ring.install_epoch(
            Instant::ZERO,
            EpochSecret {
                epoch: 1,
                base_key: &base_key,
                group_size: 2,
                own_index,
            },
        )
        .unwrap();
        ring
    };
    (ring(0), ring(1))
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the tests below against a counter that never moves.
    let n = allocations_during(|| drop(std::hint::black_box(vec![1u8; 10])));
    assert_eq!(n, 1);
}

#[test]
fn sealing_and_opening_frames_allocates_nothing() {
    for (suite, expanded) in ALL_SUITES.into_iter().flat_map(|s| [(s, true), (s, false)]) {
        let (mut alice, mut bob) = members(suite, expanded);
        let mut sealed = vec![0u8; 70_000];
        let mut opened = vec![0u8; 70_000];
        let frame = vec![0x5c; 60_000];

        // Set-up: bob caches alice's key with her first frame.
        let n = alice.encrypt(&[], &frame[..3], &mut sealed).unwrap();
        bob.decrypt(&[], &sealed[..n], &mut opened).unwrap();

        for size in SIZES {
            for _ in 0..20 {
                let mut n = 0;
                let enc = allocations_during(|| {
                    n = alice.encrypt(b"meta", &frame[..size], &mut sealed).unwrap();
                });
                let dec = allocations_during(|| {
                    let o = bob.decrypt(b"meta", &sealed[..n], &mut opened).unwrap();
                    assert_eq!(o.len, size);
                });
                assert_eq!(
                    (enc, dec),
                    (0, 0),
                    "{suite:?}, expanded receiver keys {expanded}, {size} bytes: allocations"
                );
            }
        }
    }
}

#[test]
fn protecting_media_allocates_nothing() {
    for expanded in [true, false] {
        let (mut alice, mut bob) = members(CipherSuite::default(), expanded);
        let mut wire = vec![0u8; 2_000];
        let mut out = vec![0u8; 2_000];
        let mut key_frame = vec![0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
        key_frame.resize(1_200, 0x11);
        let frames: [(Codec, &[u8]); 3] = [
            (Codec::Vp8, &key_frame),
            (Codec::Opus, &[0xfc, 0xff, 0xfe]),
            (Codec::Pcmu, &[0x7f; 160]),
        ];
        // Set-up as above.
        let n = Codec::Opus.protect(&mut alice, b"x", &mut wire).unwrap();
        Codec::Opus
            .unprotect(&mut bob, &wire[..n], &mut out)
            .unwrap();

        for (codec, frame) in frames {
            for _ in 0..20 {
                let mut n = 0;
                let enc =
                    allocations_during(|| n = codec.protect(&mut alice, frame, &mut wire).unwrap());
                let dec = allocations_during(|| {
                    let (_, len) = codec.unprotect(&mut bob, &wire[..n], &mut out).unwrap();
                    assert_eq!(&out[..len], frame);
                });
                assert_eq!(
                    (enc, dec),
                    (0, 0),
                    "{codec:?}, expanded receiver keys {expanded}: allocations"
                );
            }
        }
    }
}
