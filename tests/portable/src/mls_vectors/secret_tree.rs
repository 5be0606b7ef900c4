//! `secret-tree.json`: sender-data keys from a ciphertext sample, and each
//! leaf's handshake and application keys and nonces at listed generations.

use alloc::string::String;
use alloc::vec::Vec;

use mls_rs_core::crypto::CipherSuiteProvider;
use serde::Deserialize;

use super::each_case;
use super::tree::{RatchetKind, SecretTree, sender_data_key_nonce};
use crate::{Context, Failure, ensure, ensure_eq, hex};

const VECTORS: &[u8] = include_bytes!("../../../../core/test_data/mls/secret-tree.json");

#[derive(Deserialize)]
struct Case {
    cipher_suite: u16,
    sender_data: SenderData,
    encryption_secret: String,
    leaves: Vec<Vec<Generation>>,
}

#[derive(Deserialize)]
struct SenderData {
    sender_data_secret: String,
    ciphertext: String,
    key: String,
    nonce: String,
}

#[derive(Deserialize)]
struct Generation {
    generation: u32,
    handshake_key: String,
    handshake_nonce: String,
    application_key: String,
    application_nonce: String,
}

/// Checks every case of `cs`'s suite; returns how many there were.
pub(super) fn check<P: CipherSuiteProvider>(cs: &P) -> Result<usize, Failure> {
    each_case(
        cs,
        VECTORS,
        "secret-tree.json",
        |c: &Case| c.cipher_suite,
        check_case,
    )
}

fn check_case<P: CipherSuiteProvider>(cs: &P, case: &Case) -> Result<(), Failure> {
    let v = &case.sender_data;
    let (key, nonce) =
        sender_data_key_nonce(cs, &hex(&v.sender_data_secret)?, &hex(&v.ciphertext)?)?;
    ensure_eq!(key, hex(&v.key)?, "sender_data_key");
    ensure_eq!(nonce, hex(&v.nonce)?, "sender_data_nonce");

    let leaves = u32::try_from(case.leaves.len()).context("leaf count")?;
    let tree = SecretTree::new(&hex(&case.encryption_secret)?, leaves)?;
    let mut checked = 0;
    for (leaf, generations) in (0u32..).zip(&case.leaves) {
        for v in generations {
            let g = v.generation;
            for (kind, key, nonce) in [
                (RatchetKind::Handshake, &v.handshake_key, &v.handshake_nonce),
                (
                    RatchetKind::Application,
                    &v.application_key,
                    &v.application_nonce,
                ),
            ] {
                let (k, n) = tree.key_nonce(cs, leaf, kind, g)?;
                ensure_eq!(k, hex(key)?, "leaf {leaf} {kind:?} key at generation {g}");
                ensure_eq!(
                    n,
                    hex(nonce)?,
                    "leaf {leaf} {kind:?} nonce at generation {g}"
                );
            }
            checked += 1;
        }
    }
    ensure!(checked > 0, "a secret tree case with no generations");
    Ok(())
}
