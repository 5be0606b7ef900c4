//! The secret tree and its hash ratchets (RFC 9420 §9), and the keys that
//! hide a PrivateMessage's sender (§6.3.2).

use alloc::vec::Vec;

use mls_rs_core::crypto::CipherSuiteProvider;

use super::labels::{derive_tree_secret, expand_with_label};
use crate::{Failure, ensure};

/// Which of a leaf's two ratchets: handshake messages (proposals and
/// commits) or application data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RatchetKind {
    Handshake,
    Application,
}

impl RatchetKind {
    /// The ratchet that protects content of `content_type` (§6.3.1).
    pub(crate) fn for_content(content_type: u8) -> Self {
        if content_type == super::framing::APPLICATION {
            Self::Application
        } else {
            Self::Handshake
        }
    }

    fn label(self) -> &'static [u8] {
        match self {
            Self::Handshake => b"handshake",
            Self::Application => b"application",
        }
    }
}

/// An epoch's secret tree, from its `encryption_secret`.
#[derive(Debug, Clone)]
pub(crate) struct SecretTree {
    encryption_secret: Vec<u8>,
    /// log2 of the number of leaves: RFC 9420 trees are full, so a tree of
    /// `n` members has the next power of two of leaves.
    depth: u32,
    leaves: u32,
}

/// One of a leaf's hash ratchets, at a generation.
#[derive(Debug, Clone)]
pub(crate) struct Ratchet {
    secret: Vec<u8>,
    generation: u32,
}

impl SecretTree {
    pub(crate) fn new(encryption_secret: &[u8], leaves: u32) -> Result<Self, Failure> {
        ensure!(leaves > 0, "a tree has at least one leaf");
        Ok(Self {
            encryption_secret: encryption_secret.to_vec(),
            depth: leaves.next_power_of_two().trailing_zeros(),
            leaves,
        })
    }

    /// `tree_node_[leaf]_secret`: down from the root, `"left"` or `"right"`
    /// by the leaf index's bits, most significant first.
    fn leaf_secret<P: CipherSuiteProvider>(&self, cs: &P, leaf: u32) -> Result<Vec<u8>, Failure> {
        ensure!(leaf < self.leaves, "leaf {leaf} of {}", self.leaves);
        let mut secret = self.encryption_secret.clone();
        for level in (0..self.depth).rev() {
            let side: &[u8] = if leaf >> level & 1 == 0 {
                b"left"
            } else {
                b"right"
            };
            secret = expand_with_label(cs, &secret, b"tree", side, cs.kdf_extract_size())?;
        }
        Ok(secret)
    }

    /// A leaf's ratchet at generation 0.
    pub(crate) fn ratchet<P: CipherSuiteProvider>(
        &self,
        cs: &P,
        leaf: u32,
        kind: RatchetKind,
    ) -> Result<Ratchet, Failure> {
        let leaf_secret = self.leaf_secret(cs, leaf)?;
        let secret = expand_with_label(cs, &leaf_secret, kind.label(), &[], cs.kdf_extract_size())?;
        Ok(Ratchet {
            secret,
            generation: 0,
        })
    }

    /// The key and nonce of `leaf`'s `kind` ratchet at `generation`.
    pub(crate) fn key_nonce<P: CipherSuiteProvider>(
        &self,
        cs: &P,
        leaf: u32,
        kind: RatchetKind,
        generation: u32,
    ) -> Result<(Vec<u8>, Vec<u8>), Failure> {
        let mut ratchet = self.ratchet(cs, leaf, kind)?;
        ratchet.advance_to(cs, generation)?;
        ratchet.key_nonce(cs)
    }
}

impl Ratchet {
    /// Moves forward to `generation`; a ratchet never goes back.
    pub(crate) fn advance_to<P: CipherSuiteProvider>(
        &mut self,
        cs: &P,
        generation: u32,
    ) -> Result<(), Failure> {
        ensure!(
            generation >= self.generation,
            "ratchet at {} cannot go back to {generation}",
            self.generation
        );
        while self.generation < generation {
            self.secret = derive_tree_secret(
                cs,
                &self.secret,
                b"secret",
                self.generation,
                cs.kdf_extract_size(),
            )?;
            self.generation += 1;
        }
        Ok(())
    }

    /// The current generation's key and nonce.
    pub(crate) fn key_nonce<P: CipherSuiteProvider>(
        &self,
        cs: &P,
    ) -> Result<(Vec<u8>, Vec<u8>), Failure> {
        Ok((
            derive_tree_secret(
                cs,
                &self.secret,
                b"key",
                self.generation,
                cs.aead_key_size(),
            )?,
            derive_tree_secret(
                cs,
                &self.secret,
                b"nonce",
                self.generation,
                cs.aead_nonce_size(),
            )?,
        ))
    }
}

/// `sender_data_key` and `sender_data_nonce` for a PrivateMessage whose
/// (content) ciphertext is `ciphertext`: its first KDF.Nh bytes, or all of
/// it if shorter, are the sample.
pub(crate) fn sender_data_key_nonce<P: CipherSuiteProvider>(
    cs: &P,
    sender_data_secret: &[u8],
    ciphertext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), Failure> {
    let sample = &ciphertext[..ciphertext.len().min(cs.kdf_extract_size())];
    Ok((
        expand_with_label(cs, sender_data_secret, b"key", sample, cs.aead_key_size())?,
        expand_with_label(
            cs,
            sender_data_secret,
            b"nonce",
            sample,
            cs.aead_nonce_size(),
        )?,
    ))
}
