//! OpenMLS on `openmls_rust_crypto`, the third column of the benchmarks.

use core::fmt;
use std::collections::HashMap;
use std::sync::Arc;

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    BasicCredential, Ciphersuite, CredentialWithKey, GroupId, KeyPackage, LeafNodeIndex,
    LeafNodeParameters, MlsGroup, MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn,
    MlsMessageIn, MlsMessageOut, PURE_PLAINTEXT_WIRE_FORMAT_POLICY, ProcessedMessageContent,
    ProtocolVersion, StagedWelcome,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::OpenMlsProvider as _;
use openmls_traits::types::SignatureScheme;

use crate::{AddOutput, BenchError, Mls};

const SUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// OpenMLS with its RustCrypto provider and in-memory storage, configured
/// like the mls-rs variants: `PublicMessage` handshakes (OpenMLS defaults
/// to `PrivateMessage`), the ratchet tree in the Welcome, and a path in
/// every commit (`add_members` always forces one).
///
/// OpenMLS writes its group state to the provider's storage on every
/// operation (serialised with `serde_json` by `MemoryStorage`), so its
/// timings include that; mls-rs keeps state in memory until asked to save.
pub struct OpenMls {
    create: MlsGroupCreateConfig,
    join: MlsGroupJoinConfig,
}

/// A member on OpenMLS: its provider (crypto and storage), signer,
/// credential, and group.
pub struct OpenMlsMember {
    provider: OpenMlsRustCrypto,
    signer: Arc<SignatureKeyPair>,
    credential: CredentialWithKey,
    group: Option<MlsGroup>,
}

/// A saved OpenMLS member: a copy of everything in its storage (group
/// state, key packages) and the id of the group to load from it.
pub struct OpenMlsSaved {
    values: HashMap<Vec<u8>, Vec<u8>>,
    signer: Arc<SignatureKeyPair>,
    credential: CredentialWithKey,
    group_id: Option<GroupId>,
}

impl OpenMls {
    /// The "openmls" variant.
    #[must_use]
    pub fn new() -> Self {
        Self {
            create: MlsGroupCreateConfig::builder()
                .ciphersuite(SUITE)
                .use_ratchet_tree_extension(true)
                .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
                .build(),
            join: MlsGroupJoinConfig::builder()
                .use_ratchet_tree_extension(true)
                .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
                .build(),
        }
    }
}

impl Default for OpenMls {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for OpenMls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenMls").finish_non_exhaustive()
    }
}

impl fmt::Debug for OpenMlsMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenMlsMember")
            .field("epoch", &self.group.as_ref().map(|g| g.epoch().as_u64()))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for OpenMlsSaved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenMlsSaved")
            .field("storage_entries", &self.values.len())
            .finish_non_exhaustive()
    }
}

impl OpenMlsMember {
    fn group(
        &mut self,
    ) -> Result<(&mut MlsGroup, &OpenMlsRustCrypto, &SignatureKeyPair), BenchError> {
        let group = self
            .group
            .as_mut()
            .ok_or(BenchError::Unexpected("the member is in no group"))?;
        Ok((group, &self.provider, &self.signer))
    }
}

fn encode(message: &MlsMessageOut, operation: &'static str) -> Result<Vec<u8>, BenchError> {
    message
        .tls_serialize_detached()
        .map_err(|e| BenchError::openmls(operation, e))
}

fn decode(bytes: &[u8], operation: &'static str) -> Result<MlsMessageIn, BenchError> {
    MlsMessageIn::tls_deserialize_exact(bytes).map_err(|e| BenchError::openmls(operation, e))
}

impl Mls for OpenMls {
    type Member = OpenMlsMember;
    type Saved = OpenMlsSaved;

    fn name(&self) -> &'static str {
        "openmls"
    }

    fn member(&self, identity: &[u8]) -> Result<Self::Member, BenchError> {
        let signer = SignatureKeyPair::new(SignatureScheme::ED25519)
            .map_err(|e| BenchError::openmls("signature key", format!("{e:?}")))?;
        let credential = CredentialWithKey {
            credential: BasicCredential::new(identity.to_vec()).into(),
            signature_key: signer.public().into(),
        };
        Ok(OpenMlsMember {
            provider: OpenMlsRustCrypto::default(),
            signer: Arc::new(signer),
            credential,
            group: None,
        })
    }

    fn save(&self, member: &Self::Member) -> Result<Self::Saved, BenchError> {
        let values = member
            .provider
            .storage()
            .values
            .read()
            .map_err(|_| BenchError::Unexpected("OpenMLS storage lock poisoned"))?
            .clone();
        Ok(OpenMlsSaved {
            values,
            signer: Arc::clone(&member.signer),
            credential: member.credential.clone(),
            group_id: member.group.as_ref().map(|g| g.group_id().clone()),
        })
    }

    fn restore(&self, saved: &Self::Saved) -> Result<Self::Member, BenchError> {
        let provider = OpenMlsRustCrypto::default();
        *provider
            .storage()
            .values
            .write()
            .map_err(|_| BenchError::Unexpected("OpenMLS storage lock poisoned"))? =
            saved.values.clone();
        let group = match &saved.group_id {
            Some(id) => Some(
                MlsGroup::load(provider.storage(), id)
                    .map_err(|e| BenchError::openmls("load", e))?
                    .ok_or(BenchError::Unexpected("the saved group is not in storage"))?,
            ),
            None => None,
        };
        Ok(OpenMlsMember {
            provider,
            signer: Arc::clone(&saved.signer),
            credential: saved.credential.clone(),
            group,
        })
    }

    fn create_group(&self, member: &mut Self::Member) -> Result<(), BenchError> {
        if member.group.is_some() {
            return Err(BenchError::Unexpected("the member is in a group already"));
        }
        let group = MlsGroup::new(
            &member.provider,
            &*member.signer,
            &self.create,
            member.credential.clone(),
        )
        .map_err(|e| BenchError::openmls("create group", e))?;
        member.group = Some(group);
        Ok(())
    }

    fn key_package(&self, member: &mut Self::Member) -> Result<Vec<u8>, BenchError> {
        let bundle = KeyPackage::builder()
            .build(
                SUITE,
                &member.provider,
                &*member.signer,
                member.credential.clone(),
            )
            .map_err(|e| BenchError::openmls("key package", e))?;
        encode(
            &MlsMessageOut::from(bundle.key_package().clone()),
            "key package",
        )
    }

    fn add(&self, member: &mut Self::Member, key_package: &[u8]) -> Result<AddOutput, BenchError> {
        let (group, provider, signer) = member.group()?;
        let MlsMessageBodyIn::KeyPackage(key_package) = decode(key_package, "add")?.extract()
        else {
            return Err(BenchError::Unexpected("the message was not a key package"));
        };
        let key_package = key_package
            .validate(provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| BenchError::openmls("add", e))?;
        let (commit, welcome, _group_info) = group
            .add_members(provider, signer, &[key_package])
            .map_err(|e| BenchError::openmls("add", e))?;
        group
            .merge_pending_commit(provider)
            .map_err(|e| BenchError::openmls("add", e))?;
        Ok(AddOutput {
            commit: encode(&commit, "add")?,
            welcome: encode(&welcome, "add")?,
        })
    }

    fn remove(&self, member: &mut Self::Member, leaf: u32) -> Result<Vec<u8>, BenchError> {
        let (group, provider, signer) = member.group()?;
        let (commit, _welcome, _group_info) = group
            .remove_members(provider, signer, &[LeafNodeIndex::new(leaf)])
            .map_err(|e| BenchError::openmls("remove", e))?;
        group
            .merge_pending_commit(provider)
            .map_err(|e| BenchError::openmls("remove", e))?;
        encode(&commit, "remove")
    }

    fn update(&self, member: &mut Self::Member) -> Result<Vec<u8>, BenchError> {
        let (group, provider, signer) = member.group()?;
        let bundle = group
            .self_update(provider, signer, LeafNodeParameters::default())
            .map_err(|e| BenchError::openmls("update", e))?;
        group
            .merge_pending_commit(provider)
            .map_err(|e| BenchError::openmls("update", e))?;
        encode(bundle.commit(), "update")
    }

    fn process(&self, member: &mut Self::Member, commit: &[u8]) -> Result<(), BenchError> {
        let (group, provider, _signer) = member.group()?;
        let message = decode(commit, "process")?
            .try_into_protocol_message()
            .map_err(|e| BenchError::openmls("process", e))?;
        let processed = group
            .process_message(provider, message)
            .map_err(|e| BenchError::openmls("process", e))?;
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            return Err(BenchError::Unexpected("the message was not a commit"));
        };
        group
            .merge_staged_commit(provider, *staged)
            .map_err(|e| BenchError::openmls("process", e))
    }

    fn join(&self, member: &mut Self::Member, welcome: &[u8]) -> Result<(), BenchError> {
        if member.group.is_some() {
            return Err(BenchError::Unexpected("the member is in a group already"));
        }
        let MlsMessageBodyIn::Welcome(welcome) = decode(welcome, "join")?.extract() else {
            return Err(BenchError::Unexpected("the message was not a Welcome"));
        };
        let group = StagedWelcome::new_from_welcome(&member.provider, &self.join, welcome, None)
            .and_then(|staged| staged.into_group(&member.provider))
            .map_err(|e| BenchError::openmls("join", e))?;
        member.group = Some(group);
        Ok(())
    }

    fn group_size(&self, member: &Self::Member) -> usize {
        member
            .group
            .as_ref()
            .map_or(0, |group| group.members().count())
    }

    fn epoch(&self, member: &Self::Member) -> Option<u64> {
        member.group.as_ref().map(|group| group.epoch().as_u64())
    }
}
