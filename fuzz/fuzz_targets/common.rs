//! Helpers shared by the fuzz targets (included with `#[path]`, not a target).
#![allow(dead_code)]

use satsuma_core::Instant;
use satsuma_core::media::Codec;
use satsuma_core::sframe::{EpochSecret, FrameKey, KeyRing, KeyRingConfig, KidLayout, MlsKid};

/// Every codec `satsuma-core` knows.
pub const CODECS: [Codec; 5] = Codec::ALL;

/// Leaves in the test group.
pub const GROUP_SIZE: u64 = 4;
/// Leaf index of the sending member.
pub const SENDER: u64 = 0;
/// Leaf index of the receiving member.
pub const RECEIVER: u64 = 1;
/// The first epoch both rings install.
pub const FIRST_EPOCH: u64 = 1;
/// Byte written into output buffers before a call, to spot stray writes.
pub const SENTINEL: u8 = 0xa5;

/// The fixed 16-byte base key of `epoch` (AES-128-GCM, the default suite).
pub fn base_key(epoch: u64) -> [u8; 16] {
    let mut key = *b"satsuma-fuzz-key";
    for (k, e) in key.iter_mut().zip(epoch.to_le_bytes()) {
        *k ^= e;
    }
    key
}

/// A ring with `KeyRingConfig::default()` and `epoch` installed for `own_index`.
pub fn ring(own_index: u64, epoch: u64) -> KeyRing {
    let mut ring = KeyRing::new(KeyRingConfig::default()).expect("default config is valid");
    install(&mut ring, own_index, epoch, Instant::ZERO);
    ring
}

pub fn install(ring: &mut KeyRing, own_index: u64, epoch: u64, now: Instant) {
    let key = base_key(epoch);
    ring.install_epoch(
        now,
        EpochSecret {
            epoch,
            base_key: &key,
            group_size: GROUP_SIZE,
            own_index,
        },
    )
    .expect("install_epoch with a newer epoch and a valid key succeeds");
}

/// How the default config splits a KID in a group of `GROUP_SIZE`.
pub fn split_kid(kid: u64) -> MlsKid {
    let config = KeyRingConfig::default();
    KidLayout::for_group(config.epoch_bits, GROUP_SIZE)
        .expect("layout fits")
        .decode(kid)
}

/// The key a member of `epoch` holds for `kid`, derived independently of any
/// `KeyRing`: the oracle for what a ring may open.
pub fn oracle_key(epoch: u64, kid: u64) -> FrameKey {
    FrameKey::derive(KeyRingConfig::default().suite, &base_key(epoch), kid)
        .expect("derive never fails for built-in suites")
}

/// A zero-copy reader over the fuzz input; reads past the end give zeros /
/// short slices, so every input is valid.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        u64::from_le_bytes(b)
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.data)
    }
}

/// After a call failed: the output buffer holds nothing but the sentinel or
/// zeros, i.e. no unauthenticated plaintext reached the caller.
pub fn assert_no_leak(out: &[u8], what: &str) {
    if let Some(i) = out.iter().position(|&b| b != SENTINEL && b != 0) {
        panic!("{what}: failed but wrote {:#04x} at out[{i}]", out[i]);
    }
}
