//! Message framing (RFC 9420 §6): PublicMessage and PrivateMessage, read,
//! verified, opened and protected with the provider under test. Only what
//! the vectors need: member senders and the three content types.

use alloc::vec;
use alloc::vec::Vec;

use mls_rs_core::crypto::{CipherSuiteProvider, SignaturePublicKey, SignatureSecretKey};

use super::codec::{Put, Reader, skip_commit, skip_proposal};
use super::labels::{sign_with_label, verify_with_label};
use super::tree::{RatchetKind, SecretTree, sender_data_key_nonce};
use crate::{Context, Failure, ensure, ensure_eq};

/// `ContentType` values.
pub(crate) const APPLICATION: u8 = 1;
pub(crate) const PROPOSAL: u8 = 2;
pub(crate) const COMMIT: u8 = 3;

/// `WireFormat` values.
pub(crate) const PUBLIC_MESSAGE: u16 = 1;
pub(crate) const PRIVATE_MESSAGE: u16 = 2;
pub(crate) const WELCOME: u16 = 3;
pub(crate) const KEY_PACKAGE: u16 = 5;

/// `SenderType::member`, the only sender in these vectors.
const MEMBER: u8 = 1;

/// The body of an `MLSMessage` of `wire_format`, after checking the
/// version (MLS 1.0) and the wire format.
pub(crate) fn mls_message(bytes: &[u8], wire_format: u16) -> Result<&[u8], Failure> {
    let mut r = Reader::new(bytes);
    ensure_eq!(r.u16()?, 1, "MLSMessage version");
    ensure_eq!(r.u16()?, wire_format, "MLSMessage wire format");
    Ok(r.rest())
}

/// Reads the content of `content_type` as it sits in a FramedContent or a
/// PrivateMessageContent: application data is a vector, a Proposal or a
/// Commit is read through to find its end.
fn read_content<'a>(r: &mut Reader<'a>, content_type: u8) -> Result<&'a [u8], Failure> {
    match content_type {
        APPLICATION => r.span(|r| r.vector().map(drop)),
        PROPOSAL => r.span(skip_proposal),
        COMMIT => r.span(skip_commit),
        other => Err(Failure(alloc::format!("content type {other}"))),
    }
}

/// `FramedContent` (§6) from a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FramedContent<'a> {
    pub(crate) group_id: &'a [u8],
    pub(crate) epoch: u64,
    pub(crate) sender_leaf: u32,
    pub(crate) authenticated_data: &'a [u8],
    pub(crate) content_type: u8,
    /// The content as encoded: for application data, with its length prefix.
    pub(crate) content: &'a [u8],
}

impl<'a> FramedContent<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, Failure> {
        let group_id = r.vector()?;
        let epoch = r.u64()?;
        ensure_eq!(r.u8()?, MEMBER, "sender type");
        let sender_leaf = r.u32()?;
        let authenticated_data = r.vector()?;
        let content_type = r.u8()?;
        let content = read_content(r, content_type)?;
        Ok(Self {
            group_id,
            epoch,
            sender_leaf,
            authenticated_data,
            content_type,
            content,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.put_vector(self.group_id);
        out.put_u64(self.epoch);
        out.put_u8(MEMBER);
        out.put_u32(self.sender_leaf);
        out.put_vector(self.authenticated_data);
        out.put_u8(self.content_type);
        out.extend_from_slice(self.content);
    }

    /// `FramedContentTBS` (§6.1) for a member sender: what the signature
    /// covers, the GroupContext included.
    fn tbs(&self, wire_format: u16, group_context: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_u16(1); // mls10
        out.put_u16(wire_format);
        self.encode(&mut out);
        out.extend_from_slice(group_context);
        out
    }
}

/// `FramedContentAuthData` (§6.1): the signature, and for a commit its
/// confirmation tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthData {
    pub(crate) signature: Vec<u8>,
    pub(crate) confirmation_tag: Option<Vec<u8>>,
}

impl AuthData {
    fn read(r: &mut Reader<'_>, content_type: u8) -> Result<Self, Failure> {
        let signature = r.vector()?.to_vec();
        let confirmation_tag = if content_type == COMMIT {
            Some(r.vector()?.to_vec())
        } else {
            None
        };
        Ok(Self {
            signature,
            confirmation_tag,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.put_vector(&self.signature);
        if let Some(tag) = &self.confirmation_tag {
            out.put_vector(tag);
        }
    }
}

/// What a member of the epoch knows that protects its messages.
#[derive(Debug, Clone)]
pub(crate) struct EpochKeys {
    /// The encoded GroupContext.
    pub(crate) group_context: Vec<u8>,
    pub(crate) membership_key: Vec<u8>,
    pub(crate) sender_data_secret: Vec<u8>,
    pub(crate) tree: SecretTree,
}

/// A `PublicMessage` (§6.2) from a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicMessage<'a> {
    pub(crate) content: FramedContent<'a>,
    pub(crate) auth: AuthData,
    pub(crate) membership_tag: Vec<u8>,
}

impl<'a> PublicMessage<'a> {
    /// Reads an `MLSMessage` holding a PublicMessage, every byte of it.
    pub(crate) fn read(message: &'a [u8]) -> Result<Self, Failure> {
        let mut r = Reader::new(mls_message(message, PUBLIC_MESSAGE)?);
        let content = FramedContent::read(&mut r)?;
        let auth = AuthData::read(&mut r, content.content_type)?;
        let membership_tag = r.vector()?.to_vec();
        r.finish("PublicMessage")?;
        Ok(Self {
            content,
            auth,
            membership_tag,
        })
    }

    /// The `MLSMessage` bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_u16(1);
        out.put_u16(PUBLIC_MESSAGE);
        self.content.encode(&mut out);
        self.auth.encode(&mut out);
        out.put_vector(&self.membership_tag);
        out
    }

    /// Signs `content` and tags it with the membership key (§6.2).
    pub(crate) fn protect<P: CipherSuiteProvider>(
        cs: &P,
        keys: &EpochKeys,
        signer: &SignatureSecretKey,
        content: FramedContent<'a>,
        confirmation_tag: Option<Vec<u8>>,
    ) -> Result<Self, Failure> {
        let tbs = content.tbs(PUBLIC_MESSAGE, &keys.group_context);
        let auth = AuthData {
            signature: sign_with_label(cs, signer, b"FramedContentTBS", &tbs)?,
            confirmation_tag,
        };
        let membership_tag = membership_tag(cs, keys, tbs, &auth)?;
        Ok(Self {
            content,
            auth,
            membership_tag,
        })
    }

    /// Checks the membership tag and the sender's signature.
    pub(crate) fn verify<P: CipherSuiteProvider>(
        &self,
        cs: &P,
        keys: &EpochKeys,
        sender: &SignaturePublicKey,
    ) -> Result<(), Failure> {
        let tbs = self.content.tbs(PUBLIC_MESSAGE, &keys.group_context);
        verify_with_label(cs, sender, b"FramedContentTBS", &tbs, &self.auth.signature)?;
        let expected = membership_tag(cs, keys, tbs, &self.auth)?;
        ensure_eq!(self.membership_tag, expected, "membership tag");
        Ok(())
    }
}

/// `MAC(membership_key, AuthenticatedContentTBM)`.
fn membership_tag<P: CipherSuiteProvider>(
    cs: &P,
    keys: &EpochKeys,
    mut tbm: Vec<u8>,
    auth: &AuthData,
) -> Result<Vec<u8>, Failure> {
    auth.encode(&mut tbm);
    cs.mac(&keys.membership_key, &tbm).context("membership tag")
}

/// A `PrivateMessage` (§6.3) as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrivateMessage<'a> {
    pub(crate) group_id: &'a [u8],
    pub(crate) epoch: u64,
    pub(crate) content_type: u8,
    pub(crate) authenticated_data: &'a [u8],
    pub(crate) encrypted_sender_data: Vec<u8>,
    pub(crate) ciphertext: Vec<u8>,
}

/// `SenderData` (§6.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SenderData {
    pub(crate) leaf: u32,
    pub(crate) generation: u32,
    pub(crate) reuse_guard: [u8; 4],
}

/// A PrivateMessage opened and its signature checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Opened {
    pub(crate) sender: SenderData,
    /// The content as encoded (application data with its length prefix).
    pub(crate) content: Vec<u8>,
    pub(crate) auth: AuthData,
    /// Zero bytes after the auth data.
    pub(crate) padding: usize,
}

impl<'a> PrivateMessage<'a> {
    /// Reads an `MLSMessage` holding a PrivateMessage, every byte of it.
    pub(crate) fn read(message: &'a [u8]) -> Result<Self, Failure> {
        let mut r = Reader::new(mls_message(message, PRIVATE_MESSAGE)?);
        let message = Self {
            group_id: r.vector()?,
            epoch: r.u64()?,
            content_type: r.u8()?,
            authenticated_data: r.vector()?,
            encrypted_sender_data: r.vector()?.to_vec(),
            ciphertext: r.vector()?.to_vec(),
        };
        r.finish("PrivateMessage")?;
        Ok(message)
    }

    /// The `MLSMessage` bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_u16(1);
        out.put_u16(PRIVATE_MESSAGE);
        out.put_vector(self.group_id);
        out.put_u64(self.epoch);
        out.put_u8(self.content_type);
        out.put_vector(self.authenticated_data);
        out.put_vector(&self.encrypted_sender_data);
        out.put_vector(&self.ciphertext);
        out
    }

    /// `SenderDataAAD`.
    fn sender_data_aad(&self) -> Vec<u8> {
        let mut aad = Vec::new();
        aad.put_vector(self.group_id);
        aad.put_u64(self.epoch);
        aad.put_u8(self.content_type);
        aad
    }

    /// `PrivateContentAAD`.
    fn content_aad(&self) -> Vec<u8> {
        let mut aad = self.sender_data_aad();
        aad.put_vector(self.authenticated_data);
        aad
    }

    /// The key and nonce of `sender`'s ratchet for this content type, the
    /// nonce's first four bytes XORed with the reuse guard.
    fn content_key_nonce<P: CipherSuiteProvider>(
        &self,
        cs: &P,
        keys: &EpochKeys,
        sender: &SenderData,
    ) -> Result<(Vec<u8>, Vec<u8>), Failure> {
        let kind = RatchetKind::for_content(self.content_type);
        let (key, mut nonce) = keys
            .tree
            .key_nonce(cs, sender.leaf, kind, sender.generation)?;
        for (n, g) in nonce.iter_mut().zip(sender.reuse_guard) {
            *n ^= g;
        }
        Ok((key, nonce))
    }

    fn framed(&self, leaf: u32, content: &'a [u8]) -> FramedContent<'a> {
        FramedContent {
            group_id: self.group_id,
            epoch: self.epoch,
            sender_leaf: leaf,
            authenticated_data: self.authenticated_data,
            content_type: self.content_type,
            content,
        }
    }

    /// Decrypts the sender data and the content, checks the padding is
    /// zeros and the sender's signature.
    pub(crate) fn open<P: CipherSuiteProvider>(
        &self,
        cs: &P,
        keys: &EpochKeys,
        sender_key: &SignaturePublicKey,
    ) -> Result<Opened, Failure> {
        let (key, nonce) = sender_data_key_nonce(cs, &keys.sender_data_secret, &self.ciphertext)?;
        let sender_data = cs
            .aead_open(
                &key,
                &self.encrypted_sender_data,
                Some(&self.sender_data_aad()),
                &nonce,
            )
            .context("open sender data")?;
        let mut r = Reader::new(&sender_data);
        let sender = SenderData {
            leaf: r.u32()?,
            generation: r.u32()?,
            reuse_guard: r.take(4)?.try_into().context("reuse guard")?,
        };
        r.finish("SenderData")?;

        let (key, nonce) = self.content_key_nonce(cs, keys, &sender)?;
        let plaintext = cs
            .aead_open(&key, &self.ciphertext, Some(&self.content_aad()), &nonce)
            .context("open content")?;
        let mut r = Reader::new(&plaintext);
        let content = read_content(&mut r, self.content_type)?;
        let auth = AuthData::read(&mut r, self.content_type)?;
        let padding = r.rest();
        ensure!(padding.iter().all(|&b| b == 0), "non-zero padding");

        let tbs = self
            .framed(sender.leaf, content)
            .tbs(PRIVATE_MESSAGE, &keys.group_context);
        verify_with_label(cs, sender_key, b"FramedContentTBS", &tbs, &auth.signature)?;
        Ok(Opened {
            sender,
            content: content.to_vec(),
            auth,
            padding: padding.len(),
        })
    }

    /// Signs, encrypts and hides the sender of `content` (§6.3).
    #[allow(clippy::too_many_arguments)] // Every field of the message.
    pub(crate) fn protect<P: CipherSuiteProvider>(
        cs: &P,
        keys: &EpochKeys,
        signer: &SignatureSecretKey,
        header: FramedContent<'a>,
        confirmation_tag: Option<Vec<u8>>,
        generation: u32,
        reuse_guard: [u8; 4],
        padding: usize,
    ) -> Result<Self, Failure> {
        let tbs = header.tbs(PRIVATE_MESSAGE, &keys.group_context);
        let auth = AuthData {
            signature: sign_with_label(cs, signer, b"FramedContentTBS", &tbs)?,
            confirmation_tag,
        };
        let mut plaintext = header.content.to_vec();
        auth.encode(&mut plaintext);
        plaintext.extend_from_slice(&vec![0; padding]);

        let mut message = Self {
            group_id: header.group_id,
            epoch: header.epoch,
            content_type: header.content_type,
            authenticated_data: header.authenticated_data,
            encrypted_sender_data: Vec::new(),
            ciphertext: Vec::new(),
        };
        let sender = SenderData {
            leaf: header.sender_leaf,
            generation,
            reuse_guard,
        };
        let (key, nonce) = message.content_key_nonce(cs, keys, &sender)?;
        message.ciphertext = cs
            .aead_seal(&key, &plaintext, Some(&message.content_aad()), &nonce)
            .context("seal content")?;

        let mut sender_data = Vec::new();
        sender_data.put_u32(sender.leaf);
        sender_data.put_u32(sender.generation);
        sender_data.extend_from_slice(&sender.reuse_guard);
        let (key, nonce) =
            sender_data_key_nonce(cs, &keys.sender_data_secret, &message.ciphertext)?;
        message.encrypted_sender_data = cs
            .aead_seal(&key, &sender_data, Some(&message.sender_data_aad()), &nonce)
            .context("seal sender data")?;
        Ok(message)
    }
}
