//! `key-schedule.json`: a chain of epochs from an initial init secret, every
//! derived secret compared, plus the external key pair and an exporter value.

use alloc::string::String;
use alloc::vec::Vec;

use mls_rs_core::crypto::CipherSuiteProvider;
use serde::Deserialize;

use super::each_case;
use super::schedule::{EpochSecrets, GroupContext};
use crate::{Context, Failure, ensure, ensure_eq, hex};

const VECTORS: &[u8] = include_bytes!("../../../../core/test_data/mls/key-schedule.json");

#[derive(Deserialize)]
struct Case {
    cipher_suite: u16,
    group_id: String,
    initial_init_secret: String,
    epochs: Vec<Epoch>,
}

#[derive(Deserialize)]
struct Epoch {
    tree_hash: String,
    commit_secret: String,
    psk_secret: String,
    confirmed_transcript_hash: String,
    group_context: String,
    joiner_secret: String,
    welcome_secret: String,
    init_secret: String,
    sender_data_secret: String,
    encryption_secret: String,
    exporter_secret: String,
    epoch_authenticator: String,
    external_secret: String,
    confirmation_key: String,
    membership_key: String,
    resumption_psk: String,
    external_pub: String,
    exporter: Exporter,
}

#[derive(Deserialize)]
struct Exporter {
    /// A string, used as its UTF-8 bytes: it looks like hex, but
    /// test-vectors.md types it `string`, and decoding it gives another
    /// value than the vector's.
    label: String,
    context: String,
    length: u32,
    secret: String,
}

/// Checks every case of `cs`'s suite; returns how many there were.
pub(super) fn check<P: CipherSuiteProvider>(cs: &P) -> Result<usize, Failure> {
    each_case(
        cs,
        VECTORS,
        "key-schedule.json",
        |c: &Case| c.cipher_suite,
        |cs, case| {
            ensure!(
                !case.epochs.is_empty(),
                "a key schedule case with no epochs"
            );
            check_case(cs, case)
        },
    )
}

fn check_case<P: CipherSuiteProvider>(cs: &P, case: &Case) -> Result<(), Failure> {
    let group_id = hex(&case.group_id)?;
    let mut init_secret = hex(&case.initial_init_secret)?;
    for (epoch, v) in (0u64..).zip(&case.epochs) {
        let (tree_hash, transcript) = (hex(&v.tree_hash)?, hex(&v.confirmed_transcript_hash)?);
        let context = GroupContext {
            cipher_suite: case.cipher_suite,
            group_id: &group_id,
            epoch,
            tree_hash: &tree_hash,
            confirmed_transcript_hash: &transcript,
            extensions: &[],
        }
        .encode();
        ensure_eq!(
            context,
            hex(&v.group_context)?,
            "epoch {epoch} group_context"
        );

        let secrets = EpochSecrets::from_init(
            cs,
            &init_secret,
            &hex(&v.commit_secret)?,
            &hex(&v.psk_secret)?,
            &context,
        )?;
        let expected = [
            ("joiner_secret", &secrets.joiner_secret, &v.joiner_secret),
            ("welcome_secret", &secrets.welcome_secret, &v.welcome_secret),
            ("init_secret", &secrets.init_secret, &v.init_secret),
            (
                "sender_data_secret",
                &secrets.sender_data_secret,
                &v.sender_data_secret,
            ),
            (
                "encryption_secret",
                &secrets.encryption_secret,
                &v.encryption_secret,
            ),
            (
                "exporter_secret",
                &secrets.exporter_secret,
                &v.exporter_secret,
            ),
            (
                "epoch_authenticator",
                &secrets.epoch_authenticator,
                &v.epoch_authenticator,
            ),
            (
                "external_secret",
                &secrets.external_secret,
                &v.external_secret,
            ),
            (
                "confirmation_key",
                &secrets.confirmation_key,
                &v.confirmation_key,
            ),
            ("membership_key", &secrets.membership_key, &v.membership_key),
            ("resumption_psk", &secrets.resumption_psk, &v.resumption_psk),
        ];
        for (name, ours, theirs) in expected {
            ensure_eq!(*ours, hex(theirs)?, "epoch {epoch} {name}");
        }

        let (_, external_pub) = cs
            .kem_derive(&secrets.external_secret)
            .context("kem_derive(external_secret)")?;
        ensure_eq!(
            external_pub.as_ref().to_vec(),
            hex(&v.external_pub)?,
            "epoch {epoch} external_pub"
        );

        let e = &v.exporter;
        let exported = secrets.export(
            cs,
            e.label.as_bytes(),
            &hex(&e.context)?,
            usize::try_from(e.length).context("exporter length")?,
        )?;
        ensure_eq!(exported, hex(&e.secret)?, "epoch {epoch} MLS-Exporter");

        init_secret = secrets.init_secret;
    }
    Ok(())
}
