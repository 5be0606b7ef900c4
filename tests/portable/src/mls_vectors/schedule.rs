//! The key schedule (RFC 9420 §8) and the GroupContext it binds to.

use alloc::vec;
use alloc::vec::Vec;

use mls_rs_core::crypto::CipherSuiteProvider;

use super::codec::{Put, Reader};
use super::labels::{derive_secret, expand_with_label};
use crate::{Context, Failure};

/// `GroupContext` (§8.1), its fields as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupContext<'a> {
    pub(crate) cipher_suite: u16,
    pub(crate) group_id: &'a [u8],
    pub(crate) epoch: u64,
    pub(crate) tree_hash: &'a [u8],
    pub(crate) confirmed_transcript_hash: &'a [u8],
    /// The encoded `Extension extensions<V>`, without its length prefix.
    pub(crate) extensions: &'a [u8],
}

impl<'a> GroupContext<'a> {
    /// Reads one, checking the protocol version is MLS 1.0.
    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, Failure> {
        let version = r.u16()?;
        crate::ensure_eq!(version, 1, "GroupContext version");
        Ok(Self {
            cipher_suite: r.u16()?,
            group_id: r.vector()?,
            epoch: r.u64()?,
            tree_hash: r.vector()?,
            confirmed_transcript_hash: r.vector()?,
            extensions: r.vector()?,
        })
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_u16(1); // mls10
        out.put_u16(self.cipher_suite);
        out.put_vector(self.group_id);
        out.put_u64(self.epoch);
        out.put_vector(self.tree_hash);
        out.put_vector(self.confirmed_transcript_hash);
        out.put_vector(self.extensions);
        out
    }
}

/// One epoch's secrets, derived from the joiner secret.
#[derive(Debug, Clone)]
pub(crate) struct EpochSecrets {
    pub(crate) joiner_secret: Vec<u8>,
    pub(crate) welcome_secret: Vec<u8>,
    pub(crate) init_secret: Vec<u8>,
    pub(crate) sender_data_secret: Vec<u8>,
    pub(crate) encryption_secret: Vec<u8>,
    pub(crate) exporter_secret: Vec<u8>,
    pub(crate) epoch_authenticator: Vec<u8>,
    pub(crate) external_secret: Vec<u8>,
    pub(crate) confirmation_key: Vec<u8>,
    pub(crate) membership_key: Vec<u8>,
    pub(crate) resumption_psk: Vec<u8>,
}

impl EpochSecrets {
    /// The epoch after `init_secret`'s, entered with `commit_secret`.
    pub(crate) fn from_init<P: CipherSuiteProvider>(
        cs: &P,
        init_secret: &[u8],
        commit_secret: &[u8],
        psk_secret: &[u8],
        group_context: &[u8],
    ) -> Result<Self, Failure> {
        let prk = cs
            .kdf_extract(init_secret, commit_secret)
            .context("extract(init_secret, commit_secret)")?;
        let joiner = expand_with_label(cs, &prk, b"joiner", group_context, cs.kdf_extract_size())?;
        Self::from_joiner(cs, joiner, psk_secret, group_context)
    }

    /// The epoch a Welcome's joiner secret opens.
    pub(crate) fn from_joiner<P: CipherSuiteProvider>(
        cs: &P,
        joiner_secret: Vec<u8>,
        psk_secret: &[u8],
        group_context: &[u8],
    ) -> Result<Self, Failure> {
        let member = member_secret(cs, &joiner_secret, psk_secret)?;
        let welcome_secret = derive_secret(cs, &member, b"welcome")?;
        let epoch = expand_with_label(cs, &member, b"epoch", group_context, cs.kdf_extract_size())?;
        let derive = |label: &[u8]| derive_secret(cs, &epoch, label);
        Ok(Self {
            joiner_secret,
            welcome_secret,
            init_secret: derive(b"init")?,
            sender_data_secret: derive(b"sender data")?,
            encryption_secret: derive(b"encryption")?,
            exporter_secret: derive(b"exporter")?,
            epoch_authenticator: derive(b"authentication")?,
            external_secret: derive(b"external")?,
            confirmation_key: derive(b"confirm")?,
            membership_key: derive(b"membership")?,
            resumption_psk: derive(b"resumption")?,
        })
    }

    /// `MLS-Exporter(Label, Context, Length)` (§8.5).
    pub(crate) fn export<P: CipherSuiteProvider>(
        &self,
        cs: &P,
        label: &[u8],
        context: &[u8],
        len: usize,
    ) -> Result<Vec<u8>, Failure> {
        let secret = derive_secret(cs, &self.exporter_secret, label)?;
        let context_hash = cs.hash(context).context("hash(context)")?;
        expand_with_label(cs, &secret, b"exported", &context_hash, len)
    }
}

/// `KDF.Extract(joiner_secret, psk_secret)`, from which the welcome and
/// epoch secrets come.
fn member_secret<P: CipherSuiteProvider>(
    cs: &P,
    joiner_secret: &[u8],
    psk_secret: &[u8],
) -> Result<Vec<u8>, Failure> {
    let prk = cs
        .kdf_extract(joiner_secret, psk_secret)
        .context("extract(joiner_secret, psk_secret)")?;
    Ok(prk.to_vec())
}

/// `welcome_secret`, which a joiner needs before it can read the
/// GroupContext the rest of the epoch's secrets bind to.
pub(crate) fn welcome_secret<P: CipherSuiteProvider>(
    cs: &P,
    joiner_secret: &[u8],
    psk_secret: &[u8],
) -> Result<Vec<u8>, Failure> {
    derive_secret(
        cs,
        &member_secret(cs, joiner_secret, psk_secret)?,
        b"welcome",
    )
}

/// `psk_secret` when a commit brings no pre-shared keys: KDF.Nh zeros.
pub(crate) fn no_psk<P: CipherSuiteProvider>(cs: &P) -> Vec<u8> {
    vec![0; cs.kdf_extract_size()]
}

/// The key and nonce that seal a Welcome's GroupInfo (§12.4.3.1).
pub(crate) fn welcome_key_nonce<P: CipherSuiteProvider>(
    cs: &P,
    welcome_secret: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), Failure> {
    Ok((
        expand_with_label(cs, welcome_secret, b"key", &[], cs.aead_key_size())?,
        expand_with_label(cs, welcome_secret, b"nonce", &[], cs.aead_nonce_size())?,
    ))
}
