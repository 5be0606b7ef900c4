//! The cipher suite provider calls mls-rs makes, one by one: Satsuma's
//! `SatsumaCrypto` against mls-rs's `RustCryptoProvider`, suite 0x0001.
//! Where `benches/mls.rs` shows a gap between the two, this shows which
//! primitive it comes from.
//!
//! Ids are `provider/<call>/<implementation>`, the two implementations of
//! each call measured one after the other. Inputs have the sizes MLS uses:
//! a 32-byte path secret sealed to an X25519 key with a 64-byte
//! label-and-context `info`, a 256-byte signed structure, 100 bytes (a
//! tree-hash input) and 1 KiB for the hash, 1 KiB for the MAC and AEAD.
//!
//! Times are the process's CPU time unless `SATSUMA_BENCH_CLOCK=wall`
//! (see `satsuma_bench::BenchClock`).
//!
//! ```text
//! cargo bench -p satsuma-bench --bench provider
//! ```

// A benchmark's setup has nothing to recover from: a failure there is a bug
// in the benchmark or a provider, and aborting the run with its message is
// the right end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use mls_rs_core::crypto::{
    CipherSuite, CipherSuiteProvider, CryptoProvider, HpkeCiphertext, HpkePublicKey, HpkeSecretKey,
    SignaturePublicKey, SignatureSecretKey,
};
use mls_rs_crypto_rustcrypto::RustCryptoProvider;
use satsuma_bench::BenchClock;
use satsuma_core::mls::SatsumaCrypto;

const SUITE: CipherSuite = CipherSuite::CURVE25519_AES128;
const INFO: [u8; 64] = [0x11; 64];
const PATH_SECRET: [u8; 32] = [0x22; 32];
const SIGNED: [u8; 256] = [0x33; 256];
const KIB: [u8; 1024] = [0x44; 1024];
const KEY16: [u8; 16] = [0x55; 16];
const KEY32: [u8; 32] = [0x66; 32];
const NONCE: [u8; 12] = [0x77; 12];

#[derive(Debug, Clone, Copy)]
enum Call {
    Sign,
    Verify,
    HpkeSeal,
    HpkeOpen,
    KemDerive,
    KemGenerate,
    HashSmall,
    Hash,
    Mac,
    KdfExpand,
    AeadSeal,
    AeadOpen,
}

impl Call {
    const ALL: [Self; 12] = [
        Self::Sign,
        Self::Verify,
        Self::HpkeSeal,
        Self::HpkeOpen,
        Self::KemDerive,
        Self::KemGenerate,
        Self::HashSmall,
        Self::Hash,
        Self::Mac,
        Self::KdfExpand,
        Self::AeadSeal,
        Self::AeadOpen,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Sign => "ed25519-sign",
            Self::Verify => "ed25519-verify",
            Self::HpkeSeal => "hpke-seal",
            Self::HpkeOpen => "hpke-open",
            Self::KemDerive => "kem-derive",
            Self::KemGenerate => "kem-generate",
            Self::HashSmall => "sha256-100",
            Self::Hash => "sha256-1k",
            Self::Mac => "hmac-1k",
            Self::KdfExpand => "kdf-expand-32",
            Self::AeadSeal => "aes128gcm-seal-1k",
            Self::AeadOpen => "aes128gcm-open-1k",
        }
    }
}

/// One provider with its keys and sealed inputs.
struct Provider<C: CipherSuiteProvider> {
    name: &'static str,
    cs: C,
    hpke_secret: HpkeSecretKey,
    hpke_public: HpkePublicKey,
    hpke_sealed: HpkeCiphertext,
    signature_secret: SignatureSecretKey,
    signature_public: SignaturePublicKey,
    signature: Vec<u8>,
    aead_sealed: Vec<u8>,
}

impl<C: CipherSuiteProvider> Provider<C> {
    fn new(name: &'static str, cs: C) -> Self {
        let (hpke_secret, hpke_public) = cs.kem_generate().unwrap();
        let hpke_sealed = cs
            .hpke_seal(&hpke_public, &INFO, None, &PATH_SECRET)
            .unwrap();
        let (signature_secret, signature_public) = cs.signature_key_generate().unwrap();
        let signature = cs.sign(&signature_secret, &SIGNED).unwrap();
        let aead_sealed = cs.aead_seal(&KEY16, &KIB, None, &NONCE).unwrap();
        Self {
            name,
            cs,
            hpke_secret,
            hpke_public,
            hpke_sealed,
            signature_secret,
            signature_public,
            signature,
            aead_sealed,
        }
    }

    fn bench(&self, group: &mut BenchmarkGroup<'_, BenchClock>, call: Call) {
        let cs = &self.cs;
        let id = BenchmarkId::new(call.name(), self.name);
        match call {
            Call::Sign => group.bench_function(id, |b| {
                b.iter(|| cs.sign(&self.signature_secret, black_box(&SIGNED)).unwrap());
            }),
            Call::Verify => group.bench_function(id, |b| {
                b.iter(|| {
                    cs.verify(&self.signature_public, black_box(&self.signature), &SIGNED)
                        .unwrap();
                });
            }),
            Call::HpkeSeal => group.bench_function(id, |b| {
                b.iter(|| {
                    cs.hpke_seal(&self.hpke_public, &INFO, None, black_box(&PATH_SECRET))
                        .unwrap()
                });
            }),
            Call::HpkeOpen => group.bench_function(id, |b| {
                b.iter(|| {
                    cs.hpke_open(
                        black_box(&self.hpke_sealed),
                        &self.hpke_secret,
                        &self.hpke_public,
                        &INFO,
                        None,
                    )
                    .unwrap()
                });
            }),
            Call::KemDerive => group.bench_function(id, |b| {
                b.iter(|| cs.kem_derive(black_box(&PATH_SECRET)).unwrap());
            }),
            Call::KemGenerate => group.bench_function(id, |b| {
                b.iter(|| cs.kem_generate().unwrap());
            }),
            Call::HashSmall => group.bench_function(id, |b| {
                b.iter(|| cs.hash(black_box(&KIB[..100])).unwrap());
            }),
            Call::Hash => group.bench_function(id, |b| {
                b.iter(|| cs.hash(black_box(&KIB)).unwrap());
            }),
            Call::Mac => group.bench_function(id, |b| {
                b.iter(|| cs.mac(&KEY32, black_box(&KIB)).unwrap());
            }),
            Call::KdfExpand => group.bench_function(id, |b| {
                b.iter(|| cs.kdf_expand(&KEY32, black_box(&INFO), 32).unwrap());
            }),
            Call::AeadSeal => group.bench_function(id, |b| {
                b.iter(|| cs.aead_seal(&KEY16, black_box(&KIB), None, &NONCE).unwrap());
            }),
            Call::AeadOpen => group.bench_function(id, |b| {
                b.iter(|| {
                    cs.aead_open(&KEY16, black_box(&self.aead_sealed), None, &NONCE)
                        .unwrap()
                });
            }),
        };
    }
}

fn providers(c: &mut Criterion<BenchClock>) {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the OS has randomness");
    let satsuma = SatsumaCrypto::from_seed(seed)
        .cipher_suite_provider(SUITE)
        .expect("Satsuma speaks suite 1");
    let rustcrypto = RustCryptoProvider::new()
        .cipher_suite_provider(SUITE)
        .expect("RustCryptoProvider speaks suite 1");
    let satsuma = Provider::new("satsuma", satsuma);
    let rustcrypto = Provider::new("mls-rs-rustcrypto", rustcrypto);

    let mut group = c.benchmark_group("provider");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    for call in Call::ALL {
        satsuma.bench(&mut group, call);
        rustcrypto.bench(&mut group, call);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(BenchClock::from_env());
    targets = providers
}
criterion_main!(benches);
