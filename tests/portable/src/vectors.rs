//! The official SFrame test vectors (RFC 9605 appendix C, and the working
//! group's AES-256 CTR+HMAC set), loaded from `core/test_data/` and checked
//! case by case.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use satsuma_core::sframe::{AeadKey, CipherSuite, FrameKey, Header, MAX_HEADER_LEN, NONCE_LEN};
use serde::Deserialize;

use crate::{Context, Failure, ensure, ensure_eq, hex, portable_tests};

const VECTORS: &[u8] = include_bytes!("../../../core/test_data/test-vectors.json");
const VECTORS_AES256: &[u8] = include_bytes!("../../../core/test_data/test-vectors-aes256.json");

#[derive(Deserialize)]
struct File {
    header: Vec<HeaderCase>,
    aes_ctr_hmac: Vec<AeadCase>,
    aes_256_ctr_hmac: Vec<AeadCase>,
    sframe: Vec<SframeCase>,
}

#[derive(Deserialize)]
struct Aes256File {
    sframe_aes_256_ctr_hmac: Vec<SframeCase>,
}

#[derive(Deserialize)]
struct HeaderCase {
    kid: u64,
    ctr: u64,
    encoded: String,
}

#[derive(Deserialize)]
struct AeadCase {
    cipher_suite: u16,
    key: String,
    nonce: String,
    aad: String,
    pt: String,
    ct: String,
}

#[derive(Deserialize)]
struct SframeCase {
    cipher_suite: u16,
    kid: u64,
    ctr: u64,
    base_key: String,
    sframe_key: String,
    sframe_salt: String,
    metadata: String,
    nonce: String,
    pt: String,
    ct: String,
}

fn load() -> Result<File, Failure> {
    serde_json::from_slice(VECTORS).context("test-vectors.json")
}

fn nonce(hex_str: &str) -> Result<[u8; NONCE_LEN], Failure> {
    hex(hex_str)?.as_slice().try_into().context("nonce length")
}

fn check_aead(case: &AeadCase) -> Result<(), Failure> {
    let suite = CipherSuite::from_id(case.cipher_suite).context("suite")?;
    let key = AeadKey::new(suite, &hex(&case.key)?).context("key")?;
    let nonce = nonce(&case.nonce)?;
    let (aad, pt, ct) = (hex(&case.aad)?, hex(&case.pt)?, hex(&case.ct)?);
    let nt = suite.tag_len();
    ensure_eq!(
        ct.len(),
        pt.len() + nt,
        "{} ciphertext length",
        suite.name()
    );

    let mut sealed = vec![0u8; pt.len()];
    let mut tag = vec![0u8; nt];
    key.seal(&nonce, &aad, &pt, &mut sealed, &mut tag)
        .context("seal")?;
    ensure_eq!(sealed, ct[..pt.len()], "{} ciphertext", suite.name());
    ensure_eq!(tag, ct[pt.len()..], "{} tag", suite.name());

    let mut opened = vec![0u8; pt.len()];
    key.open(&nonce, &aad, &ct[..pt.len()], &mut opened, &ct[pt.len()..])
        .context("open")?;
    ensure_eq!(opened, pt, "{} plaintext", suite.name());

    let mut bad_tag = ct[pt.len()..].to_vec();
    bad_tag[0] ^= 1;
    ensure!(
        key.open(&nonce, &aad, &ct[..pt.len()], &mut opened, &bad_tag)
            .is_err(),
        "{} accepted a bad tag",
        suite.name()
    );
    Ok(())
}

fn check_sframe(case: &SframeCase) -> Result<(), Failure> {
    let suite = CipherSuite::from_id(case.cipher_suite).context("suite")?;
    let name = suite.name();
    let (metadata, pt, ct) = (hex(&case.metadata)?, hex(&case.pt)?, hex(&case.ct)?);
    let header = Header::new(case.kid, case.ctr);

    // Derivation from the base key: the nonce is salt XOR CTR, so it checks
    // the salt; sealing checks the key.
    let derived = FrameKey::derive(suite, &hex(&case.base_key)?, case.kid).context("derive")?;
    ensure_eq!(derived.nonce(case.ctr), nonce(&case.nonce)?, "{name} nonce");
    let mut out = vec![0u8; ct.len()];
    let n = derived
        .encrypt(header, &metadata, &pt, &mut out)
        .context("encrypt")?;
    ensure_eq!(out[..n], ct[..], "{name} ciphertext from base key");

    // The same from the vector's own key and salt.
    let given = FrameKey::from_parts(suite, &hex(&case.sframe_key)?, &nonce(&case.sframe_salt)?)
        .context("from_parts")?;
    let n = given
        .encrypt(header, &metadata, &pt, &mut out)
        .context("encrypt")?;
    ensure_eq!(out[..n], ct[..], "{name} ciphertext from sframe_key");

    let mut opened = vec![0u8; pt.len()];
    let (h, len) = derived
        .decrypt(&metadata, &ct, &mut opened)
        .context("decrypt")?;
    ensure_eq!(h, header, "{name} header");
    ensure_eq!(opened[..len], pt[..], "{name} plaintext");

    let mut wrong_metadata = metadata.clone();
    wrong_metadata.push(0);
    ensure!(
        derived.decrypt(&wrong_metadata, &ct, &mut opened).is_err(),
        "{name} opened with the wrong metadata"
    );
    Ok(())
}

portable_tests! { TESTS:
    fn header_vectors_encode_and_decode() {
        let file = load()?;
        ensure_eq!(file.header.len(), 289, "header case count");
        for case in &file.header {
            let expected = hex(&case.encoded)?;
            let header = Header::new(case.kid, case.ctr);
            let mut out = [0u8; MAX_HEADER_LEN];
            let len = header.emit(&mut out).context("emit")?;
            ensure_eq!(out[..len], expected[..], "emit kid={} ctr={}", case.kid, case.ctr);
            let parsed = Header::parse(&expected).context("parse")?;
            ensure_eq!(parsed, (header, expected.len()), "parse {}", case.encoded);
        }
        Ok(())
    }

    fn aes_ctr_hmac_vectors() {
        let file = load()?;
        ensure_eq!(file.aes_ctr_hmac.len() + file.aes_256_ctr_hmac.len(), 6, "case count");
        for case in file.aes_ctr_hmac.iter().chain(&file.aes_256_ctr_hmac) {
            check_aead(case)?;
        }
        Ok(())
    }

    fn sframe_vectors_every_suite() {
        let file = load()?;
        let extra: Aes256File =
            serde_json::from_slice(VECTORS_AES256).context("test-vectors-aes256.json")?;
        let cases: Vec<&SframeCase> =
            file.sframe.iter().chain(&extra.sframe_aes_256_ctr_hmac).collect();
        ensure_eq!(cases.len(), 8, "case count");
        for (case, id) in cases.iter().zip(1u16..) {
            ensure_eq!(case.cipher_suite, id, "suites 1..=8 in order");
            check_sframe(case)?;
        }
        Ok(())
    }
}
