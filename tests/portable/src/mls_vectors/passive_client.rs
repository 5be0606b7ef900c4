//! `passive-client-welcome.json`: join each vector's group through mls-rs's
//! own client running on [`SatsumaCrypto`], then follow its epochs, the
//! epoch authenticator compared after the join and after every commit.
//!
//! The client's key-package storage holds the vector's key package and its
//! init and encryption private keys, as if this client had made it.
//! Satsuma's mls-rs is built without the `psk` feature, so cases whose
//! group uses external pre-shared keys are skipped and counted.

use alloc::string::String;
use alloc::vec::Vec;

use mls_rs::client_builder::MlsConfig;
use mls_rs::group::ExportedTree;
use mls_rs::identity::basic::BasicIdentityProvider;
use mls_rs::storage_provider::KeyPackageData;
use mls_rs::storage_provider::in_memory::InMemoryKeyPackageStorage;
use mls_rs::{Client, Group, MlsMessage};
use mls_rs_core::crypto::{
    CipherSuiteProvider, CryptoProvider, HpkePublicKey, HpkeSecretKey, SignaturePublicKey,
    SignatureSecretKey,
};
use satsuma_core::mls::{SUITE, SatsumaCrypto};
use serde::Deserialize;

use super::codec::Reader;
use super::framing::{KEY_PACKAGE, mls_message};
use super::labels::ref_hash;
use super::load;
use crate::{Context, Failure, ensure, ensure_eq, hex};

const VECTORS: &[u8] = include_bytes!("../../../../core/test_data/mls/passive-client-welcome.json");

/// Suite-1 cases in `passive-client-welcome.json` without external PSKs.
const MIN_PASSED: usize = 4;

#[derive(Deserialize)]
struct Case {
    cipher_suite: u16,
    external_psks: Vec<ExternalPsk>,
    key_package: String,
    signature_priv: String,
    encryption_priv: String,
    init_priv: String,
    welcome: String,
    ratchet_tree: Option<String>,
    initial_epoch_authenticator: String,
    epochs: Vec<Epoch>,
}

/// Only counted: the cases that carry one are skipped.
#[derive(Deserialize)]
struct ExternalPsk {}

#[derive(Deserialize)]
struct Epoch {
    proposals: Vec<String>,
    commit: String,
    epoch_authenticator: String,
}

/// How the suite's cases went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Outcome {
    /// Joined, and every epoch followed, with matching authenticators.
    pub(super) passed: usize,
    /// Epochs followed across the passed cases.
    pub(super) epochs: usize,
    /// Skipped: the group uses external PSKs, and mls-rs is built without
    /// its `psk` feature.
    pub(super) skipped_psk: usize,
}

impl Outcome {
    /// Fails unless at least the four suite-1 cases of the pinned file
    /// that use no external PSK passed (every other case was skipped for
    /// that one reason, or the run failed earlier).
    pub(super) fn assert_enough(&self) -> Result<(), Failure> {
        ensure!(
            self.passed >= MIN_PASSED,
            "{} passive-client cases passed, {MIN_PASSED} expected ({self:?})",
            self.passed
        );
        Ok(())
    }
}

/// Runs every suite-1 case with a client seeded from `seed`.
pub(super) fn check(seed: [u8; 32]) -> Result<Outcome, Failure> {
    let cases: Vec<Case> = load(VECTORS, "passive-client-welcome.json")?;
    let mut outcome = Outcome::default();
    for (i, case) in cases.iter().enumerate() {
        if case.cipher_suite != u16::from(SUITE) {
            continue;
        }
        if !case.external_psks.is_empty() {
            outcome.skipped_psk += 1;
            continue;
        }
        check_case(seed, case).map_err(|f| Failure(alloc::format!("case {i}: {f}")))?;
        outcome.passed += 1;
        outcome.epochs += case.epochs.len();
    }
    Ok(outcome)
}

fn check_case(seed: [u8; 32], case: &Case) -> Result<(), Failure> {
    let crypto = SatsumaCrypto::from_seed(seed);
    let cs = crypto
        .cipher_suite_provider(SUITE)
        .ok_or_else(|| Failure("no suite 1".into()))?;

    let message = hex(&case.key_package)?;
    let key_package = mls_message(&message, KEY_PACKAGE)?;
    let signer = SignatureSecretKey::new(hex(&case.signature_priv)?);
    let init_priv = HpkeSecretKey::from(hex(&case.init_priv)?);
    let encryption_priv = HpkeSecretKey::from(hex(&case.encryption_priv)?);
    check_keys(&cs, key_package, &signer, &init_priv, &encryption_priv)?;

    let identity = MlsMessage::from_bytes(&message)
        .context("KeyPackage message")?
        .into_key_package()
        .ok_or_else(|| Failure("not a KeyPackage".into()))?
        .signing_identity()
        .clone();
    let storage = InMemoryKeyPackageStorage::new();
    storage.insert(
        ref_hash(&cs, b"MLS 1.0 KeyPackage Reference", key_package)?,
        KeyPackageData::new(key_package.to_vec(), init_priv, encryption_priv, u64::MAX),
    );
    let client = Client::builder()
        .crypto_provider(crypto)
        .identity_provider(BasicIdentityProvider::new())
        .key_package_repo(storage)
        .signing_identity(identity, signer, SUITE)
        .build();

    let welcome = MlsMessage::from_bytes(&hex(&case.welcome)?).context("Welcome")?;
    let tree = match &case.ratchet_tree {
        Some(tree) => Some(ExportedTree::from_bytes(&hex(tree)?).context("ratchet_tree")?),
        None => None,
    };
    let (mut group, _) = client
        .join_group(tree, &welcome, None)
        .context("join with the Welcome")?;
    check_authenticator(&group, &case.initial_epoch_authenticator, "after joining")?;

    for (i, epoch) in case.epochs.iter().enumerate() {
        for proposal in &epoch.proposals {
            let proposal = MlsMessage::from_bytes(&hex(proposal)?).context("proposal")?;
            group
                .process_incoming_message(proposal)
                .context("process proposal")?;
        }
        let commit = MlsMessage::from_bytes(&hex(&epoch.commit)?).context("commit")?;
        group
            .process_incoming_message(commit)
            .context("process commit")?;
        check_authenticator(
            &group,
            &epoch.epoch_authenticator,
            &alloc::format!("after commit {i}"),
        )?;
    }
    Ok(())
}

/// The vector's private keys belong to its key package: the signature key
/// derives the leaf's public key, and HPKE to the init and encryption keys
/// opens with the private ones.
fn check_keys<P: CipherSuiteProvider>(
    cs: &P,
    key_package: &[u8],
    signer: &SignatureSecretKey,
    init_priv: &HpkeSecretKey,
    encryption_priv: &HpkeSecretKey,
) -> Result<(), Failure> {
    let mut r = Reader::new(key_package);
    r.u16()?; // version
    r.u16()?; // cipher_suite
    let init_pub = HpkePublicKey::from(r.vector()?.to_vec());
    let encryption_pub = HpkePublicKey::from(r.vector()?.to_vec());
    let signature_pub = SignaturePublicKey::new(r.vector()?.to_vec());

    let derived = cs
        .signature_key_derive_public(signer)
        .context("signature_key_derive_public")?;
    ensure_eq!(derived, signature_pub, "signature key pair");
    for (name, public, secret) in [
        ("init", &init_pub, init_priv),
        ("encryption", &encryption_pub, encryption_priv),
    ] {
        let sealed = cs
            .hpke_seal(public, b"key check", None, name.as_bytes())
            .context("hpke_seal")?;
        let opened = cs
            .hpke_open(&sealed, secret, public, b"key check", None)
            .map_err(|e| Failure(alloc::format!("{name} key pair: {e:?}")))?;
        ensure_eq!(opened.as_slice(), name.as_bytes(), "{name} key pair");
    }
    Ok(())
}

fn check_authenticator<C: MlsConfig>(
    group: &Group<C>,
    expected: &str,
    when: &str,
) -> Result<(), Failure> {
    let ours = group.epoch_authenticator().context("epoch_authenticator")?;
    ensure_eq!(
        ours.as_bytes().to_vec(),
        hex(expected)?,
        "epoch_authenticator {when}"
    );
    Ok(())
}
