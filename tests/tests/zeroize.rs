//! Keys are wiped as they leave: a global allocator looks into every heap
//! block as it is freed (or moved by a reallocation) and counts the blocks
//! that still hold a watched key. Six members' key rings go through epochs
//! with frames flowing between all of them, let old epochs expire and are
//! dropped; no freed block may hold an epoch's base key or a sender's
//! SFrame key derived from it (RFC 9605 §4.4.2, derived here on its own).
//!
//! Only the heap is searched, not copies on the stack.
#![allow(unsafe_code)] // A global allocator is an unsafe trait.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use hkdf::Hkdf;
use satsuma_core::Instant;
use satsuma_core::sframe::{CipherSuite, EpochSecret, KeyRing, KeyRingConfig};
use sha2::Sha256;

const MEMBERS: usize = 6;
const EPOCHS: usize = 4;
const KEY_LEN: usize = 16;
/// Base keys, and one derived key per member and epoch.
const WATCHED: usize = EPOCHS * (MEMBERS + 1);

type Key = [u8; KEY_LEN];

thread_local! {
    /// The keys searched for, while a test runs on this thread.
    static WATCH: Cell<[Option<Key>; WATCHED]> = const { Cell::new([None; WATCHED]) };
    /// Freed blocks that held one of them.
    static FOUND: Cell<u32> = const { Cell::new(0) };
}

fn base_key(epoch: usize) -> Key {
    let mut key = [0u8; KEY_LEN];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::try_from((epoch * 37 + i * 101 + 0x5b) % 251).unwrap();
    }
    key
}

/// A sender's SFrame key, as RFC 9605 §4.4.2 derives it for `kid`.
fn sender_key(base: &Key, kid: u64) -> Key {
    let suite = CipherSuite::AesGcm128Sha256.id().to_be_bytes();
    let info = [
        b"SFrame 1.0 Secret key ".as_slice(),
        &kid.to_be_bytes(),
        &suite,
    ]
    .concat();
    let mut key = [0u8; KEY_LEN];
    Hkdf::<Sha256>::new(Some(&[]), base)
        .expand(&info, &mut key)
        .unwrap();
    key
}

/// Counts `block` if it holds a watched key.
fn scan(block: &[u8]) {
    let _ = WATCH.try_with(|w| {
        let keys = w.get();
        if keys
            .iter()
            .flatten()
            .any(|k| block.windows(KEY_LEN).any(|window| window == k))
        {
            let _ = FOUND.try_with(|f| f.set(f.get() + 1));
        }
    });
}

struct Scanning;

unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is a live block of `layout.size()` bytes until it
        // is given back below.
        scan(unsafe { std::slice::from_raw_parts(ptr, layout.size()) });
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A move leaves the old block behind: allocate, copy, scan, free.
        // SAFETY: `new_size` is non-zero and fits `layout.align()` (the
        // caller's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as above.
        let new = unsafe { System.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: the old block is live and given back only here.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Scanning = Scanning;

/// Runs `f` with `keys` watched; the freed blocks that held one.
fn freed_with(keys: &[Key], f: impl FnOnce()) -> u32 {
    let mut watch = [None; WATCHED];
    for (slot, key) in watch.iter_mut().zip(keys) {
        *slot = Some(*key);
    }
    FOUND.with(|c| c.set(0));
    WATCH.with(|w| w.set(watch));
    f();
    WATCH.with(|w| w.set([None; WATCHED]));
    FOUND.with(Cell::get)
}

#[test]
fn the_scan_finds_a_key_left_in_freed_memory() {
    // Guards the test below against a scan that never finds anything.
    let key = base_key(3);
    let found = freed_with(&[key], || {
        drop(std::hint::black_box(key.to_vec()));
    });
    assert_eq!(found, 1);
}

/// The keys every ring will hold: the base keys and each member's sending
/// key in each epoch (its KID found by a dry run without watching).
fn keys_of_a_call(config: KeyRingConfig) -> Vec<Key> {
    let mut keys = Vec::new();
    let mut ring = KeyRing::new(config).unwrap();
    for epoch in 0..EPOCHS {
        let base = base_key(epoch);
        keys.push(base);
        for member in 0..MEMBERS {
            let mut ring = KeyRing::new(config).unwrap();
            install(&mut ring, Instant::ZERO, epoch, member);
            keys.push(sender_key(&base, ring.sending_kid().unwrap()));
        }
        install(&mut ring, Instant::ZERO, epoch, 0);
    }
    keys
}

fn install(ring: &mut KeyRing, now: Instant, epoch: usize, member: usize) {
    ring.install_epoch(
        now,
        EpochSecret {
            epoch: u64::try_from(epoch).unwrap() + 1,
            base_key: &base_key(epoch),
            group_size: u64::try_from(MEMBERS).unwrap(),
            own_index: u64::try_from(member).unwrap(),
        },
    )
    .unwrap();
}

fn call_through_epochs(config: KeyRingConfig) {
    let mut rings: Vec<KeyRing> = (0..MEMBERS)
        .map(|_| KeyRing::new(config).unwrap())
        .collect();
    let mut sealed = vec![0u8; 256];
    let mut opened = vec![0u8; 256];
    let mut now = Instant::ZERO;
    for epoch in 0..EPOCHS {
        for (member, ring) in rings.iter_mut().enumerate() {
            install(ring, now, epoch, member);
        }
        // Everyone hears everyone: each ring keeps a receiver key per
        // sender, and its list of them grows past its first allocation.
        for from in 0..MEMBERS {
            let n = rings[from].encrypt(b"", b"frame", &mut sealed).unwrap();
            for (to, ring) in rings.iter_mut().enumerate() {
                if to != from {
                    ring.decrypt(b"", &sealed[..n], &mut opened).unwrap();
                }
            }
        }
        // Every other epoch, the previous one runs out its grace period.
        if epoch % 2 == 1 {
            now = now.saturating_add(config.grace + Duration::from_millis(1));
            for ring in &mut rings {
                ring.handle_timeout(now);
            }
        }
    }
    rings[0].clear();
    drop(rings);
}

#[test]
fn no_freed_block_holds_a_key_after_epochs_expire_and_the_rings_are_dropped() {
    for expanded in [false, true] {
        let config = KeyRingConfig {
            expanded_receiver_keys: expanded,
            ..KeyRingConfig::default()
        };
        let keys = keys_of_a_call(config);
        assert_eq!(keys.len(), WATCHED);
        let found = freed_with(&keys, || call_through_epochs(config));
        assert_eq!(
            found, 0,
            "expanded receiver keys {expanded}: {found} freed blocks still held a key"
        );
    }
}
