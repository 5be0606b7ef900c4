//! `message-protection.json`: a proposal, a commit and application data from
//! leaf 1 of a two-member group, as PublicMessage and PrivateMessage.
//!
//! Verifying and opening the vector's messages checks the provider against
//! the vector's signatures, tags and ciphertexts. Protecting the same
//! content again must give the vector's bytes exactly: Ed25519 signatures,
//! HMAC tags and AES-GCM under the vector's key, nonce and reuse guard are
//! all deterministic. A second PrivateMessage at a later generation, with a
//! fresh reuse guard and other padding, must round-trip.

use alloc::string::String;
use alloc::vec::Vec;

use mls_rs_core::crypto::{CipherSuiteProvider, SignaturePublicKey, SignatureSecretKey};
use serde::Deserialize;

use super::codec::Put;
use super::each_case;
use super::framing::{
    APPLICATION, COMMIT, EpochKeys, FramedContent, PROPOSAL, PrivateMessage, PublicMessage,
};
use super::schedule::GroupContext;
use super::tree::SecretTree;
use crate::{Context, Failure, ensure, ensure_eq, hex};

const VECTORS: &[u8] = include_bytes!("../../../../core/test_data/mls/message-protection.json");

/// The vectors' sender.
const SENDER: u32 = 1;

#[derive(Deserialize)]
struct Case {
    cipher_suite: u16,
    group_id: String,
    epoch: u64,
    tree_hash: String,
    confirmed_transcript_hash: String,
    signature_priv: String,
    signature_pub: String,
    encryption_secret: String,
    sender_data_secret: String,
    membership_key: String,
    proposal: String,
    proposal_pub: String,
    proposal_priv: String,
    commit: String,
    commit_pub: String,
    commit_priv: String,
    application: String,
    application_priv: String,
}

/// One content type's raw value and messages.
struct Content<'a> {
    content_type: u8,
    /// As encoded in FramedContent.
    content: Vec<u8>,
    public: Option<&'a str>,
    private: &'a str,
}

/// What every check of a case shares.
struct Group<'a, P> {
    cs: &'a P,
    group_id: Vec<u8>,
    epoch: u64,
    keys: EpochKeys,
    signer: SignatureSecretKey,
    verifier: SignaturePublicKey,
}

/// Checks every case of `cs`'s suite; returns how many there were.
pub(super) fn check<P: CipherSuiteProvider>(cs: &P) -> Result<usize, Failure> {
    each_case(
        cs,
        VECTORS,
        "message-protection.json",
        |c: &Case| c.cipher_suite,
        check_case,
    )
}

fn check_case<P: CipherSuiteProvider>(cs: &P, case: &Case) -> Result<(), Failure> {
    let group_id = hex(&case.group_id)?;
    let (tree_hash, transcript) = (hex(&case.tree_hash)?, hex(&case.confirmed_transcript_hash)?);
    let group_context = GroupContext {
        cipher_suite: case.cipher_suite,
        group_id: &group_id,
        epoch: case.epoch,
        tree_hash: &tree_hash,
        confirmed_transcript_hash: &transcript,
        extensions: &[],
    }
    .encode();
    let group = Group {
        cs,
        epoch: case.epoch,
        keys: EpochKeys {
            group_context,
            membership_key: hex(&case.membership_key)?,
            sender_data_secret: hex(&case.sender_data_secret)?,
            tree: SecretTree::new(&hex(&case.encryption_secret)?, 2)?,
        },
        signer: SignatureSecretKey::new(hex(&case.signature_priv)?),
        verifier: SignaturePublicKey::new(hex(&case.signature_pub)?),
        group_id,
    };

    let mut application = Vec::new();
    application.put_vector(&hex(&case.application)?);
    let contents = [
        Content {
            content_type: PROPOSAL,
            content: hex(&case.proposal)?,
            public: Some(&case.proposal_pub),
            private: &case.proposal_priv,
        },
        Content {
            content_type: COMMIT,
            content: hex(&case.commit)?,
            public: Some(&case.commit_pub),
            private: &case.commit_priv,
        },
        Content {
            content_type: APPLICATION,
            content: application,
            // Application data is never sent as a PublicMessage (§6.2).
            public: None,
            private: &case.application_priv,
        },
    ];
    for content in &contents {
        if let Some(public) = content.public {
            group
                .check_public(content, &hex(public)?)
                .map_err(|f| Failure(alloc::format!("{} public: {f}", name(content))))?;
        }
        group
            .check_private(content, &hex(content.private)?)
            .map_err(|f| Failure(alloc::format!("{} private: {f}", name(content))))?;
    }
    Ok(())
}

fn name(content: &Content<'_>) -> &'static str {
    match content.content_type {
        PROPOSAL => "proposal",
        COMMIT => "commit",
        _ => "application",
    }
}

impl<P: CipherSuiteProvider> Group<'_, P> {
    fn check_header(&self, content: &FramedContent<'_>, content_type: u8) -> Result<(), Failure> {
        ensure_eq!(content.group_id, &self.group_id[..], "group_id");
        ensure_eq!(content.epoch, self.epoch, "epoch");
        ensure_eq!(content.sender_leaf, SENDER, "sender");
        ensure_eq!(content.content_type, content_type, "content type");
        Ok(())
    }

    fn check_public(&self, expected: &Content<'_>, message: &[u8]) -> Result<(), Failure> {
        let cs = self.cs;
        let public = PublicMessage::read(message)?;
        public.verify(cs, &self.keys, &self.verifier)?;
        self.check_header(&public.content, expected.content_type)?;
        ensure_eq!(public.content.content, &expected.content[..], "content");

        let own = PublicMessage::protect(
            cs,
            &self.keys,
            &self.signer,
            public.content.clone(),
            public.auth.confirmation_tag.clone(),
        )?;
        own.verify(cs, &self.keys, &self.verifier)?;
        ensure_eq!(own.encode(), message, "our PublicMessage");

        let mut forged = public;
        forged.membership_tag[0] ^= 1;
        ensure!(
            forged.verify(cs, &self.keys, &self.verifier).is_err(),
            "a forged membership tag verified"
        );
        Ok(())
    }

    fn check_private(&self, expected: &Content<'_>, message: &[u8]) -> Result<(), Failure> {
        let cs = self.cs;
        let private = PrivateMessage::read(message)?;
        let opened = private.open(cs, &self.keys, &self.verifier)?;
        ensure_eq!(opened.sender.leaf, SENDER, "sender");
        ensure_eq!(opened.content, expected.content, "content");
        let header = FramedContent {
            group_id: private.group_id,
            epoch: private.epoch,
            sender_leaf: opened.sender.leaf,
            authenticated_data: private.authenticated_data,
            content_type: private.content_type,
            content: &opened.content,
        };
        self.check_header(&header, expected.content_type)?;

        // The same content, generation, reuse guard and padding again.
        let own = PrivateMessage::protect(
            cs,
            &self.keys,
            &self.signer,
            header.clone(),
            opened.auth.confirmation_tag.clone(),
            opened.sender.generation,
            opened.sender.reuse_guard,
            opened.padding,
        )?;
        ensure_eq!(own.encode(), message, "our PrivateMessage");

        // And at a later generation with a fresh guard and more padding.
        let mut guard = [0u8; 4];
        cs.random_bytes(&mut guard).context("random reuse guard")?;
        let generation = opened.sender.generation + 3;
        let own = PrivateMessage::protect(
            cs,
            &self.keys,
            &self.signer,
            header,
            opened.auth.confirmation_tag.clone(),
            generation,
            guard,
            opened.padding + 7,
        )?;
        let bytes = own.encode();
        ensure!(bytes != message, "a later generation gave the same bytes");
        let reopened = PrivateMessage::read(&bytes)?.open(cs, &self.keys, &self.verifier)?;
        ensure_eq!(reopened.content, expected.content, "round-trip content");
        ensure_eq!(
            reopened.sender.generation,
            generation,
            "round-trip generation"
        );
        ensure_eq!(reopened.sender.reuse_guard, guard, "round-trip reuse guard");
        ensure_eq!(reopened.auth, opened.auth, "round-trip auth data");
        ensure_eq!(reopened.padding, opened.padding + 7, "round-trip padding");
        Ok(())
    }
}
