//! The official RFC 9420 (MLS) test vectors for cipher suite 1, from
//! `core/test_data/mls/` (see its README for how they were cut down),
//! checked against [`SatsumaCrypto`], the provider under mls-rs in every
//! Satsuma call.
//!
//! The provider-level checks (`basics`, `key_schedule`, `secret_tree`,
//! `message_protection`, `welcome`) are generic over mls-rs's
//! [`CipherSuiteProvider`]: the few MLS structures they need (labels, the
//! key schedule, the secret tree, framing, Welcome) are small helpers here
//! over the provider's KDF, AEAD, HPKE and signature calls, so a wrong byte
//! from the provider shows up as a value that differs from the vector.
//! `passive_client` joins the vectors' groups through mls-rs's own client
//! instead.
//!
//! Every check compares against the vector's bytes, and every test fails if
//! it saw no suite-1 case, so an over-eager filter cannot pass silently.

use alloc::vec::Vec;

use mls_rs_core::crypto::{CipherSuiteProvider, CryptoProvider};
use satsuma_core::mls::{SUITE, SatsumaCrypto};
use serde::de::DeserializeOwned;

use crate::{Context, Failure, ensure, portable_tests};

mod basics;
mod codec;
mod framing;
mod key_schedule;
mod labels;
mod message_protection;
mod passive_client;
mod schedule;
mod secret_tree;
mod tree;
mod welcome;

/// The seed of every provider here; the vectors fix every secret that
/// matters, so randomness only feeds the round trips.
const SEED: [u8; 32] = [0x5a; 32];

fn provider() -> Result<SatsumaCrypto, Failure> {
    SatsumaCrypto::from_seed(SEED)
        .cipher_suite_provider(SUITE)
        .ok_or_else(|| Failure("SatsumaCrypto lacks suite 1".into()))
}

/// Every case in a vector file; callers keep those of their suite.
fn load<T: DeserializeOwned>(bytes: &[u8], file: &str) -> Result<Vec<T>, Failure> {
    serde_json::from_slice(bytes).context(file)
}

/// The suite a case must name to be checked with `cs`.
/// Runs `check_case` on every case of `file` (a JSON array) for `cs`'s
/// suite, which `suite` reads from a case; returns how many there were.
fn each_case<P: CipherSuiteProvider, C: DeserializeOwned>(
    cs: &P,
    bytes: &[u8],
    file: &str,
    suite: impl Fn(&C) -> u16,
    check_case: impl Fn(&P, &C) -> Result<(), Failure>,
) -> Result<usize, Failure> {
    let cases: Vec<C> = load(bytes, file)?;
    let mut seen = 0;
    for case in cases.iter().filter(|c| suite(c) == suite_of(cs)) {
        check_case(cs, case)?;
        seen += 1;
    }
    Ok(seen)
}

fn suite_of<P: CipherSuiteProvider>(cs: &P) -> u16 {
    cs.cipher_suite().into()
}

/// Fails when a file held no case for the suite.
fn seen(cases: usize, file: &str) -> Result<(), Failure> {
    ensure!(cases > 0, "{file}: no cipher suite 1 case");
    Ok(())
}

portable_tests! {
TESTS:
    fn crypto_basics() {
        seen(basics::check(&provider()?)?, "crypto-basics.json")
    }

    fn key_schedule() {
        seen(key_schedule::check(&provider()?)?, "key-schedule.json")
    }

    fn secret_tree() {
        seen(secret_tree::check(&provider()?)?, "secret-tree.json")
    }

    fn message_protection() {
        seen(message_protection::check(&provider()?)?, "message-protection.json")
    }

    fn welcome() {
        seen(welcome::check(&provider()?)?, "welcome.json")
    }

    fn passive_client_welcome() {
        let outcome = passive_client::check(SEED)?;
        outcome.assert_enough()
    }
}
