//! RFC 9420's labelled primitives (§5.1-5.2, §8), each a few lines over the
//! [`CipherSuiteProvider`] under test: every label is prefixed with
//! `"MLS 1.0 "` and length-prefixed together with its context, so these
//! helpers are what turns the provider's raw KDF, signature and HPKE calls
//! into the values the vectors list.

use alloc::vec::Vec;

use mls_rs_core::crypto::{
    CipherSuiteProvider, HpkeCiphertext, HpkePublicKey, HpkeSecretKey, SignaturePublicKey,
    SignatureSecretKey,
};

use super::codec::Put;
use crate::{Context, Failure};

const PREFIX: &[u8] = b"MLS 1.0 ";

/// `opaque label<V> = "MLS 1.0 " + Label` followed by `opaque context<V>`:
/// the shape shared by SignContent and EncryptContext, and the tail of
/// KDFLabel.
fn labelled(label: &[u8], context: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(PREFIX.len() + label.len());
    full.extend_from_slice(PREFIX);
    full.extend_from_slice(label);
    let mut out = Vec::new();
    out.put_vector(&full);
    out.put_vector(context);
    out
}

/// `ExpandWithLabel(Secret, Label, Context, Length)` (§8).
pub(crate) fn expand_with_label<P: CipherSuiteProvider>(
    cs: &P,
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    len: usize,
) -> Result<Vec<u8>, Failure> {
    let mut info = Vec::new();
    info.put_u16(u16::try_from(len).context("ExpandWithLabel length")?);
    info.extend_from_slice(&labelled(label, context));
    let out = cs.kdf_expand(secret, &info, len).context("kdf_expand")?;
    Ok(out.to_vec())
}

/// `DeriveSecret(Secret, Label)` (§8): KDF.Nh bytes, empty context.
pub(crate) fn derive_secret<P: CipherSuiteProvider>(
    cs: &P,
    secret: &[u8],
    label: &[u8],
) -> Result<Vec<u8>, Failure> {
    expand_with_label(cs, secret, label, &[], cs.kdf_extract_size())
}

/// `DeriveTreeSecret(Secret, Label, Generation, Length)` (§9.1): the
/// generation, a uint32, is the context.
pub(crate) fn derive_tree_secret<P: CipherSuiteProvider>(
    cs: &P,
    secret: &[u8],
    label: &[u8],
    generation: u32,
    len: usize,
) -> Result<Vec<u8>, Failure> {
    expand_with_label(cs, secret, label, &generation.to_be_bytes(), len)
}

/// `RefHash(label, value)` (§5.2). The label is used as given, with no
/// prefix: callers pass `"MLS 1.0 KeyPackage Reference"` in full.
pub(crate) fn ref_hash<P: CipherSuiteProvider>(
    cs: &P,
    label: &[u8],
    value: &[u8],
) -> Result<Vec<u8>, Failure> {
    let mut input = Vec::new();
    input.put_vector(label);
    input.put_vector(value);
    cs.hash(&input).context("hash")
}

/// `SignWithLabel(SignatureKey, Label, Content)` (§5.1.2).
pub(crate) fn sign_with_label<P: CipherSuiteProvider>(
    cs: &P,
    key: &SignatureSecretKey,
    label: &[u8],
    content: &[u8],
) -> Result<Vec<u8>, Failure> {
    cs.sign(key, &labelled(label, content))
        .context("SignWithLabel")
}

/// `VerifyWithLabel(VerificationKey, Label, Content, SignatureValue)`.
pub(crate) fn verify_with_label<P: CipherSuiteProvider>(
    cs: &P,
    key: &SignaturePublicKey,
    label: &[u8],
    content: &[u8],
    signature: &[u8],
) -> Result<(), Failure> {
    cs.verify(key, signature, &labelled(label, content))
        .context("VerifyWithLabel")
}

/// `EncryptWithLabel(PublicKey, Label, Context, Plaintext)` (§5.1.3):
/// HPKE base mode, EncryptContext as `info`, empty AAD.
pub(crate) fn encrypt_with_label<P: CipherSuiteProvider>(
    cs: &P,
    key: &HpkePublicKey,
    label: &[u8],
    context: &[u8],
    plaintext: &[u8],
) -> Result<HpkeCiphertext, Failure> {
    cs.hpke_seal(key, &labelled(label, context), None, plaintext)
        .context("EncryptWithLabel")
}

/// `DecryptWithLabel(PrivateKey, Label, Context, KEMOutput, Ciphertext)`.
pub(crate) fn decrypt_with_label<P: CipherSuiteProvider>(
    cs: &P,
    secret: &HpkeSecretKey,
    public: &HpkePublicKey,
    label: &[u8],
    context: &[u8],
    ciphertext: &HpkeCiphertext,
) -> Result<Vec<u8>, Failure> {
    let plaintext = cs
        .hpke_open(ciphertext, secret, public, &labelled(label, context), None)
        .context("DecryptWithLabel")?;
    Ok(plaintext.to_vec())
}
