//! `welcome.json`: open a Welcome as the new member would, up to a GroupInfo
//! whose signature and confirmation tag check out.

use alloc::string::String;

use mls_rs_core::crypto::{
    CipherSuiteProvider, HpkeCiphertext, HpkePublicKey, HpkeSecretKey, SignaturePublicKey,
};
use serde::Deserialize;

use super::codec::{Reader, skip_key_package};
use super::each_case;
use super::framing::{KEY_PACKAGE, WELCOME, mls_message};
use super::labels::{decrypt_with_label, ref_hash, verify_with_label};
use super::schedule::{EpochSecrets, GroupContext, no_psk, welcome_key_nonce, welcome_secret};
use crate::{Context, Failure, ensure, ensure_eq, hex};

const VECTORS: &[u8] = include_bytes!("../../../../core/test_data/mls/welcome.json");

#[derive(Deserialize)]
struct Case {
    cipher_suite: u16,
    init_priv: String,
    signer_pub: String,
    key_package: String,
    welcome: String,
}

/// Checks every case of `cs`'s suite; returns how many there were.
pub(super) fn check<P: CipherSuiteProvider>(cs: &P) -> Result<usize, Failure> {
    each_case(
        cs,
        VECTORS,
        "welcome.json",
        |c: &Case| c.cipher_suite,
        check_case,
    )
}

fn check_case<P: CipherSuiteProvider>(cs: &P, case: &Case) -> Result<(), Failure> {
    let key_package = hex(&case.key_package)?;
    let key_package = mls_message(&key_package, KEY_PACKAGE)?;
    let mut r = Reader::new(key_package);
    r.span(skip_key_package)?;
    r.finish("KeyPackage")?;
    let mut r = Reader::new(key_package);
    r.u16()?; // version
    ensure_eq!(r.u16()?, case.cipher_suite, "KeyPackage cipher suite");
    let init_pub = HpkePublicKey::from(r.vector()?.to_vec());
    let init_priv = HpkeSecretKey::from(hex(&case.init_priv)?);
    let reference = ref_hash(cs, b"MLS 1.0 KeyPackage Reference", key_package)?;

    let welcome = hex(&case.welcome)?;
    let mut r = Reader::new(mls_message(&welcome, WELCOME)?);
    ensure_eq!(r.u16()?, case.cipher_suite, "Welcome cipher suite");
    let secrets = r.vector()?;
    let encrypted_group_info = r.vector()?;
    r.finish("Welcome")?;

    // EncryptedGroupSecrets entries: new_member<V>, then an HPKECiphertext.
    let mut r = Reader::new(secrets);
    let mut ours = None;
    while !r.rest().is_empty() {
        let new_member = r.vector()?;
        let ciphertext = HpkeCiphertext {
            kem_output: r.vector()?.to_vec(),
            ciphertext: r.vector()?.to_vec(),
        };
        if new_member == reference.as_slice() {
            ours = Some(ciphertext);
        }
    }
    let ours = ours.ok_or_else(|| Failure("no group secrets for our KeyPackageRef".into()))?;
    let group_secrets = decrypt_with_label(
        cs,
        &init_priv,
        &init_pub,
        b"Welcome",
        encrypted_group_info,
        &ours,
    )?;

    let mut r = Reader::new(&group_secrets);
    let joiner_secret = r.vector()?.to_vec();
    if r.present()? {
        r.vector()?; // path_secret
    }
    ensure!(r.vector()?.is_empty(), "PSKs in the Welcome vector");
    r.finish("GroupSecrets")?;
    let psk_secret = no_psk(cs);

    let welcome_secret = welcome_secret(cs, &joiner_secret, &psk_secret)?;
    let (key, nonce) = welcome_key_nonce(cs, &welcome_secret)?;
    let group_info = cs
        .aead_open(&key, encrypted_group_info, None, &nonce)
        .context("open GroupInfo")?;

    let mut r = Reader::new(&group_info);
    let context_bytes = r.span(|r| GroupContext::read(r).map(drop))?;
    let context = GroupContext::read(&mut Reader::new(context_bytes))?;
    r.vector()?; // extensions
    let confirmation_tag = r.vector()?;
    r.u32()?; // signer
    let tbs = &group_info[..group_info.len() - r.rest().len()];
    let signature = r.vector()?;
    r.finish("GroupInfo")?;
    ensure_eq!(
        context.cipher_suite,
        case.cipher_suite,
        "GroupContext cipher suite"
    );

    let signer = SignaturePublicKey::new(hex(&case.signer_pub)?);
    verify_with_label(cs, &signer, b"GroupInfoTBS", tbs, signature)?;

    let epoch = EpochSecrets::from_joiner(cs, joiner_secret, &psk_secret, context_bytes)?;
    let tag = cs
        .mac(&epoch.confirmation_key, context.confirmed_transcript_hash)
        .context("confirmation tag")?;
    ensure_eq!(
        tag.as_slice(),
        confirmation_tag,
        "GroupInfo confirmation_tag"
    );
    Ok(())
}
