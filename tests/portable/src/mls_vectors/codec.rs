//! The TLS presentation language as RFC 9420 uses it (§2.1): big-endian
//! integers, and vectors whose length is a variable-length integer of one,
//! two or four bytes (the top two bits of the first byte say which).
//!
//! A [`Reader`] walks a message; [`Put`] writes one. The `skip_*` functions
//! walk over the structures the vectors carry without keeping them: a
//! Proposal or a Commit has no length prefix of its own inside a
//! FramedContent, so finding where it ends means reading it.

use alloc::vec::Vec;

use crate::{Failure, ensure};

/// A cursor over bytes in the presentation language. Every read checks
/// that the bytes are there.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// What is left to read.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Failure> {
        ensure!(
            n <= self.rest.len(),
            "truncated: {n} bytes wanted, {} left",
            self.rest.len()
        );
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Failure> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Failure> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Failure> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Failure> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Failure> {
        self.array().map(u64::from_be_bytes)
    }

    /// A variable-length vector's length prefix (RFC 9420 §2.1.2).
    fn varint(&mut self) -> Result<usize, Failure> {
        let first = self.u8()?;
        let len = match first >> 6 {
            0 => usize::from(first),
            1 => usize::from(u16::from_be_bytes([first & 0x3f, self.u8()?])),
            2 => {
                let [b1, b2, b3] = self.array()?;
                let value = u32::from_be_bytes([first & 0x3f, b1, b2, b3]);
                usize::try_from(value).map_err(|_| Failure("length too big".into()))?
            }
            _ => return Err(Failure("invalid varint prefix 0b11".into())),
        };
        Ok(len)
    }

    /// `opaque data<V>`: the bytes of a variable-length vector.
    pub(crate) fn vector(&mut self) -> Result<&'a [u8], Failure> {
        let len = self.varint()?;
        self.take(len)
    }

    /// `optional<T>`: whether a value follows.
    pub(crate) fn present(&mut self) -> Result<bool, Failure> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(Failure(alloc::format!("optional presence byte {other}"))),
        }
    }

    /// The bytes that `read` consumes, for structures kept as they are.
    pub(crate) fn span(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<(), Failure>,
    ) -> Result<&'a [u8], Failure> {
        let start = self.rest;
        read(self)?;
        Ok(&start[..start.len() - self.rest.len()])
    }

    /// Fails unless every byte was read.
    pub(crate) fn finish(&self, what: &str) -> Result<(), Failure> {
        ensure!(
            self.rest.is_empty(),
            "{what}: {} trailing bytes",
            self.rest.len()
        );
        Ok(())
    }
}

/// Writing in the presentation language.
pub(crate) trait Put {
    fn put_u8(&mut self, value: u8);
    fn put_u16(&mut self, value: u16);
    fn put_u32(&mut self, value: u32);
    fn put_u64(&mut self, value: u64);
    /// `opaque data<V>` with the shortest length prefix, as RFC 9420 demands.
    fn put_vector(&mut self, data: &[u8]);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, value: u8) {
        self.push(value);
    }

    fn put_u16(&mut self, value: u16) {
        self.extend_from_slice(&value.to_be_bytes());
    }

    fn put_u32(&mut self, value: u32) {
        self.extend_from_slice(&value.to_be_bytes());
    }

    fn put_u64(&mut self, value: u64) {
        self.extend_from_slice(&value.to_be_bytes());
    }

    fn put_vector(&mut self, data: &[u8]) {
        // Lengths in these tests are far below the 2^30 limit of the
        // four-byte form; the casts below cannot truncate.
        let len = data.len();
        if len < 1 << 6 {
            self.put_u8(len as u8);
        } else if len < 1 << 14 {
            self.put_u16(0x4000 | len as u16);
        } else {
            self.put_u32(0x8000_0000 | len as u32);
        }
        self.extend_from_slice(data);
    }
}

/// `Credential` (§5.3): basic (1) or X.509 (2), both vectors.
fn skip_credential(r: &mut Reader<'_>) -> Result<(), Failure> {
    match r.u16()? {
        1 | 2 => r.vector().map(drop),
        other => Err(Failure(alloc::format!("credential type {other}"))),
    }
}

/// `LeafNode` (§7.2).
pub(crate) fn skip_leaf_node(r: &mut Reader<'_>) -> Result<(), Failure> {
    r.vector()?; // encryption_key
    r.vector()?; // signature_key
    skip_credential(r)?;
    for _ in 0..5 {
        r.vector()?; // capabilities: versions, suites, extensions, proposals, credentials
    }
    match r.u8()? {
        1 => {
            r.u64()?; // lifetime.not_before
            r.u64()?; // lifetime.not_after
        }
        2 => {}
        3 => {
            r.vector()?; // parent_hash
        }
        other => return Err(Failure(alloc::format!("leaf node source {other}"))),
    }
    r.vector()?; // extensions
    r.vector()?; // signature
    Ok(())
}

/// `KeyPackage` (§10).
pub(crate) fn skip_key_package(r: &mut Reader<'_>) -> Result<(), Failure> {
    r.u16()?; // version
    r.u16()?; // cipher_suite
    r.vector()?; // init_key
    skip_leaf_node(r)?;
    r.vector()?; // extensions
    r.vector()?; // signature
    Ok(())
}

/// `Proposal` (§12.1) of the seven RFC 9420 types.
pub(crate) fn skip_proposal(r: &mut Reader<'_>) -> Result<(), Failure> {
    match r.u16()? {
        1 => skip_key_package(r),
        2 => skip_leaf_node(r),
        3 => r.u32().map(drop), // removed
        4 => {
            // PreSharedKeyID
            match r.u8()? {
                1 => {
                    r.vector()?; // psk_id
                }
                2 => {
                    r.u8()?; // usage
                    r.vector()?; // psk_group_id
                    r.u64()?; // psk_epoch
                }
                other => return Err(Failure(alloc::format!("psk type {other}"))),
            }
            r.vector().map(drop) // psk_nonce
        }
        5 => {
            r.vector()?; // group_id
            r.u16()?; // version
            r.u16()?; // cipher_suite
            r.vector().map(drop) // extensions
        }
        6 | 7 => r.vector().map(drop), // kem_output; extensions
        other => Err(Failure(alloc::format!("proposal type {other}"))),
    }
}

/// `Commit` (§12.4): proposals by value or reference, then an optional
/// UpdatePath.
pub(crate) fn skip_commit(r: &mut Reader<'_>) -> Result<(), Failure> {
    r.vector()?; // ProposalOrRef proposals<V>
    if r.present()? {
        skip_leaf_node(r)?;
        r.vector()?; // HPKEUpdatePathNode nodes<V>
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths_round_trip_at_each_width() {
        for len in [0, 63, 64, 16383, 16384] {
            let data = alloc::vec![0xa5; len];
            let mut out = Vec::new();
            out.put_vector(&data);
            let prefix = out.len() - len;
            assert_eq!(
                prefix,
                match len {
                    0..64 => 1,
                    64..16384 => 2,
                    _ => 4,
                }
            );
            let mut r = Reader::new(&out);
            assert_eq!(r.vector().unwrap(), &data[..]);
            assert!(r.finish("vector").is_ok());
        }
    }

    #[test]
    fn truncated_and_invalid_prefixes_are_refused() {
        assert!(Reader::new(&[0x05, 1, 2]).vector().is_err());
        assert!(Reader::new(&[0xc0, 0, 0, 0, 0, 0, 0, 0]).vector().is_err());
        assert!(Reader::new(&[0x40]).vector().is_err());
    }
}
