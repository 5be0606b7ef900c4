//! mls-rs over any crypto provider: one implementation for both the
//! "satsuma" and the "mls-rs-rustcrypto" variants, so they differ only in `P`.

use core::fmt;

use mls_rs::client_builder::{BaseConfig, WithCryptoProvider, WithIdentityProvider, WithMlsRules};
use mls_rs::group::ReceivedMessage;
use mls_rs::identity::SigningIdentity;
use mls_rs::identity::basic::{BasicCredential, BasicIdentityProvider};
use mls_rs::mls_rules::{CommitOptions, DefaultMlsRules};
use mls_rs::{
    CipherSuite, CipherSuiteProvider, Client, CryptoProvider, ExtensionList, Group, MlsMessage,
};
use mls_rs_core::key_package::KeyPackageData;

use crate::{AddOutput, BenchError, Mls};

/// `MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519`, the suite every variant runs.
const SUITE: CipherSuite = CipherSuite::CURVE25519_AES128;

type Config<P> = WithMlsRules<
    DefaultMlsRules,
    WithIdentityProvider<BasicIdentityProvider, WithCryptoProvider<P, BaseConfig>>,
>;

/// mls-rs (the workspace's build: no default features, `by_ref_proposal`)
/// on the crypto provider `P`, with in-memory storage and the commit options
/// Satsuma's session uses: a path in every commit, the ratchet tree in the
/// Welcome, one Welcome for all new members.
pub struct MlsRs<P> {
    name: &'static str,
    provider: P,
    rules: DefaultMlsRules,
}

/// A member on mls-rs: the client (identity, key package store) and its group.
pub struct MlsRsMember<P: CryptoProvider + Clone> {
    client: Client<Config<P>>,
    group: Option<Group<Config<P>>>,
}

/// A saved mls-rs member: a clone of the group state and the key packages
/// the client held, to put back into its (shared) key package store.
pub struct MlsRsSaved<P: CryptoProvider + Clone> {
    member: MlsRsMember<P>,
    key_packages: Vec<(Vec<u8>, KeyPackageData)>,
}

impl<P> MlsRs<P> {
    /// The variant called `name` on `provider`.
    pub fn new(name: &'static str, provider: P) -> Self {
        let rules = DefaultMlsRules::new().with_commit_options(
            CommitOptions::new()
                .with_path_required(true)
                .with_ratchet_tree_extension(true)
                .with_single_welcome_message(true),
        );
        Self {
            name,
            provider,
            rules,
        }
    }
}

impl<P> fmt::Debug for MlsRs<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlsRs")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<P: CryptoProvider + Clone> fmt::Debug for MlsRsMember<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlsRsMember")
            .field("epoch", &self.group.as_ref().map(Group::current_epoch))
            .finish_non_exhaustive()
    }
}

impl<P: CryptoProvider + Clone> fmt::Debug for MlsRsSaved<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlsRsSaved")
            .field("member", &self.member)
            .field("key_packages", &self.key_packages.len())
            .finish()
    }
}

impl<P: CryptoProvider + Clone> MlsRsMember<P> {
    fn group(&mut self) -> Result<&mut Group<Config<P>>, BenchError> {
        self.group
            .as_mut()
            .ok_or(BenchError::Unexpected("the member is in no group"))
    }
}

impl<P: CryptoProvider + Clone> Mls for MlsRs<P> {
    type Member = MlsRsMember<P>;
    type Saved = MlsRsSaved<P>;

    fn name(&self) -> &'static str {
        self.name
    }

    fn member(&self, identity: &[u8]) -> Result<Self::Member, BenchError> {
        let suite = self
            .provider
            .cipher_suite_provider(SUITE)
            .ok_or(BenchError::Unexpected("the provider lacks cipher suite 1"))?;
        let (secret, public) = suite
            .signature_key_generate()
            .map_err(|e| BenchError::Provider(format!("{e:?}")))?;
        let credential = BasicCredential::new(identity.to_vec()).into_credential();
        let client = Client::builder()
            .crypto_provider(self.provider.clone())
            .identity_provider(BasicIdentityProvider::new())
            .mls_rules(self.rules.clone())
            .signing_identity(SigningIdentity::new(credential, public), secret, SUITE)
            .build();
        Ok(MlsRsMember {
            client,
            group: None,
        })
    }

    fn save(&self, member: &Self::Member) -> Result<Self::Saved, BenchError> {
        Ok(MlsRsSaved {
            member: MlsRsMember {
                client: member.client.clone(),
                group: member.group.clone(),
            },
            key_packages: member.client.key_package_store().key_packages(),
        })
    }

    fn restore(&self, saved: &Self::Saved) -> Result<Self::Member, BenchError> {
        // Clones of a client share its in-memory stores; joining deletes the
        // key package used, so put back what the saved member held.
        let store = saved.member.client.key_package_store();
        for (id, data) in &saved.key_packages {
            store.insert(id.clone(), data.clone());
        }
        Ok(MlsRsMember {
            client: saved.member.client.clone(),
            group: saved.member.group.clone(),
        })
    }

    fn create_group(&self, member: &mut Self::Member) -> Result<(), BenchError> {
        if member.group.is_some() {
            return Err(BenchError::Unexpected("the member is in a group already"));
        }
        let group = member
            .client
            .create_group(ExtensionList::new(), ExtensionList::new(), None)?;
        member.group = Some(group);
        Ok(())
    }

    fn key_package(&self, member: &mut Self::Member) -> Result<Vec<u8>, BenchError> {
        let message = member.client.generate_key_package_message(
            ExtensionList::new(),
            ExtensionList::new(),
            None,
        )?;
        Ok(message.to_bytes()?)
    }

    fn add(&self, member: &mut Self::Member, key_package: &[u8]) -> Result<AddOutput, BenchError> {
        let group = member.group()?;
        let key_package = MlsMessage::from_bytes(key_package)?;
        let output = group.commit_builder().add_member(key_package)?.build()?;
        group.apply_pending_commit()?;
        let welcome = output
            .welcome_messages
            .first()
            .ok_or(BenchError::Unexpected("an add commit came without Welcome"))?;
        Ok(AddOutput {
            commit: output.commit_message.to_bytes()?,
            welcome: welcome.to_bytes()?,
        })
    }

    fn remove(&self, member: &mut Self::Member, leaf: u32) -> Result<Vec<u8>, BenchError> {
        let group = member.group()?;
        let output = group.commit_builder().remove_member(leaf)?.build()?;
        group.apply_pending_commit()?;
        Ok(output.commit_message.to_bytes()?)
    }

    fn update(&self, member: &mut Self::Member) -> Result<Vec<u8>, BenchError> {
        let group = member.group()?;
        let output = group.commit_builder().build()?;
        group.apply_pending_commit()?;
        Ok(output.commit_message.to_bytes()?)
    }

    fn process(&self, member: &mut Self::Member, commit: &[u8]) -> Result<(), BenchError> {
        let group = member.group()?;
        let message = MlsMessage::from_bytes(commit)?;
        match group.process_incoming_message(message)? {
            ReceivedMessage::Commit(_) => Ok(()),
            _ => Err(BenchError::Unexpected("the message was not a commit")),
        }
    }

    fn join(&self, member: &mut Self::Member, welcome: &[u8]) -> Result<(), BenchError> {
        if member.group.is_some() {
            return Err(BenchError::Unexpected("the member is in a group already"));
        }
        let welcome = MlsMessage::from_bytes(welcome)?;
        let (group, _info) = member.client.join_group(None, &welcome, None)?;
        member.group = Some(group);
        Ok(())
    }

    fn group_size(&self, member: &Self::Member) -> usize {
        member
            .group
            .as_ref()
            .map_or(0, |group| group.roster().members_iter().count())
    }

    fn epoch(&self, member: &Self::Member) -> Option<u64> {
        member.group.as_ref().map(Group::current_epoch)
    }
}
