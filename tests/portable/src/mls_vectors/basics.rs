//! `crypto-basics.json`: the labelled primitives one by one.

use alloc::string::String;

use mls_rs_core::crypto::{
    CipherSuiteProvider, HpkeCiphertext, HpkePublicKey, HpkeSecretKey, SignaturePublicKey,
    SignatureSecretKey,
};
use serde::Deserialize;

use super::each_case;
use super::labels::{
    decrypt_with_label, derive_secret, derive_tree_secret, encrypt_with_label, expand_with_label,
    ref_hash, sign_with_label, verify_with_label,
};
use crate::{Failure, ensure, ensure_eq, hex};

const VECTORS: &[u8] = include_bytes!("../../../../core/test_data/mls/crypto-basics.json");

#[derive(Deserialize)]
struct Case {
    cipher_suite: u16,
    ref_hash: RefHash,
    expand_with_label: ExpandWithLabel,
    derive_secret: DeriveSecret,
    derive_tree_secret: DeriveTreeSecret,
    sign_with_label: SignWithLabel,
    encrypt_with_label: EncryptWithLabel,
}

#[derive(Deserialize)]
struct RefHash {
    label: String,
    value: String,
    out: String,
}

#[derive(Deserialize)]
struct ExpandWithLabel {
    secret: String,
    label: String,
    context: String,
    length: u16,
    out: String,
}

#[derive(Deserialize)]
struct DeriveSecret {
    secret: String,
    label: String,
    out: String,
}

#[derive(Deserialize)]
struct DeriveTreeSecret {
    secret: String,
    label: String,
    generation: u32,
    length: u16,
    out: String,
}

#[derive(Deserialize)]
struct SignWithLabel {
    #[serde(rename = "priv")]
    private: String,
    #[serde(rename = "pub")]
    public: String,
    content: String,
    label: String,
    signature: String,
}

#[derive(Deserialize)]
struct EncryptWithLabel {
    #[serde(rename = "priv")]
    private: String,
    #[serde(rename = "pub")]
    public: String,
    label: String,
    context: String,
    plaintext: String,
    kem_output: String,
    ciphertext: String,
}

/// Checks every case of `cs`'s suite; returns how many there were.
pub(super) fn check<P: CipherSuiteProvider>(cs: &P) -> Result<usize, Failure> {
    each_case(
        cs,
        VECTORS,
        "crypto-basics.json",
        |c: &Case| c.cipher_suite,
        check_case,
    )
}

fn check_case<P: CipherSuiteProvider>(cs: &P, case: &Case) -> Result<(), Failure> {
    let v = &case.ref_hash;
    let out = ref_hash(cs, v.label.as_bytes(), &hex(&v.value)?)?;
    ensure_eq!(out, hex(&v.out)?, "RefHash");

    let v = &case.expand_with_label;
    let out = expand_with_label(
        cs,
        &hex(&v.secret)?,
        v.label.as_bytes(),
        &hex(&v.context)?,
        v.length.into(),
    )?;
    ensure_eq!(out, hex(&v.out)?, "ExpandWithLabel");

    let v = &case.derive_secret;
    let out = derive_secret(cs, &hex(&v.secret)?, v.label.as_bytes())?;
    ensure_eq!(out, hex(&v.out)?, "DeriveSecret");

    let v = &case.derive_tree_secret;
    let out = derive_tree_secret(
        cs,
        &hex(&v.secret)?,
        v.label.as_bytes(),
        v.generation,
        v.length.into(),
    )?;
    ensure_eq!(out, hex(&v.out)?, "DeriveTreeSecret");

    check_signature(cs, &case.sign_with_label)?;
    check_encryption(cs, &case.encrypt_with_label)
}

fn check_signature<P: CipherSuiteProvider>(cs: &P, v: &SignWithLabel) -> Result<(), Failure> {
    let secret = SignatureSecretKey::new(hex(&v.private)?);
    let public = SignaturePublicKey::new(hex(&v.public)?);
    let (label, content) = (v.label.as_bytes(), hex(&v.content)?);
    let signature = hex(&v.signature)?;
    verify_with_label(cs, &public, label, &content, &signature)?;

    let own = sign_with_label(cs, &secret, label, &content)?;
    verify_with_label(cs, &public, label, &content, &own)?;
    // Ed25519 is deterministic (RFC 8032 §5.1.6): the same key, label and
    // content give the vector's signature byte for byte.
    ensure_eq!(own, signature, "SignWithLabel with the vector's key");

    let mut forged = signature;
    forged[0] ^= 1;
    ensure!(
        verify_with_label(cs, &public, label, &content, &forged).is_err(),
        "a signature with one bit flipped verified"
    );
    ensure!(
        verify_with_label(cs, &public, b"another label", &content, &own).is_err(),
        "a signature verified under another label"
    );
    Ok(())
}

fn check_encryption<P: CipherSuiteProvider>(cs: &P, v: &EncryptWithLabel) -> Result<(), Failure> {
    let secret = HpkeSecretKey::from(hex(&v.private)?);
    let public = HpkePublicKey::from(hex(&v.public)?);
    let (label, context) = (v.label.as_bytes(), hex(&v.context)?);
    let plaintext = hex(&v.plaintext)?;
    let given = HpkeCiphertext {
        kem_output: hex(&v.kem_output)?,
        ciphertext: hex(&v.ciphertext)?,
    };
    let opened = decrypt_with_label(cs, &secret, &public, label, &context, &given)?;
    ensure_eq!(
        opened,
        plaintext,
        "DecryptWithLabel of the vector's ciphertext"
    );

    let own = encrypt_with_label(cs, &public, label, &context, &plaintext)?;
    ensure!(
        own.kem_output != given.kem_output,
        "EncryptWithLabel reused the vector's ephemeral key"
    );
    let opened = decrypt_with_label(cs, &secret, &public, label, &context, &own)?;
    ensure_eq!(opened, plaintext, "DecryptWithLabel of our own ciphertext");
    ensure!(
        decrypt_with_label(cs, &secret, &public, label, b"other context", &own).is_err(),
        "DecryptWithLabel opened under another context"
    );
    Ok(())
}
