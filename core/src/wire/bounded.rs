//! Containers whose decoder refuses more than a fixed number of elements
//! before allocating for them: a peer cannot make a member or the SFU
//! reserve memory by announcing a long length.

use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;
use core::ops::Deref;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// At most `N` bytes, carried opaque (key packages, commits, Welcomes,
/// SFrame ciphertext).
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Blob<const N: usize>(Vec<u8>);

impl<const N: usize> Blob<N> {
    /// `bytes`, or `None` when they are longer than `N`.
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() <= N).then_some(Self(bytes))
    }

    /// A copy of `bytes`, or `None` when they are longer than `N`.
    #[must_use]
    pub fn copy_from(bytes: &[u8]) -> Option<Self> {
        (bytes.len() <= N).then(|| Self(bytes.to_vec()))
    }

    /// The bytes.
    #[must_use]
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }
}

impl<const N: usize> Deref for Blob<N> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<const N: usize> fmt::Debug for Blob<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Lengths only: these are ciphertexts and handshake messages, never
        // worth a log line of hex.
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl<const N: usize> Serialize for Blob<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de, const N: usize> Deserialize<'de> for Blob<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BlobVisitor<const N: usize>;
        impl<const N: usize> Visitor<'_> for BlobVisitor<N> {
            type Value = Blob<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "at most {N} bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob<N>, E> {
                Blob::copy_from(v).ok_or_else(|| E::invalid_length(v.len(), &self))
            }
        }
        deserializer.deserialize_bytes(BlobVisitor::<N>)
    }
}

/// At most `N` elements.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct List<T, const N: usize>(Vec<T>);

impl<T, const N: usize> List<T, N> {
    /// `items`, or `None` when there are more than `N`.
    #[must_use]
    pub fn new(items: Vec<T>) -> Option<Self> {
        (items.len() <= N).then_some(Self(items))
    }

    /// The elements.
    #[must_use]
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
}

impl<T, const N: usize> Default for List<T, N> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T, const N: usize> Deref for List<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: Serialize, const N: usize> Serialize for List<T, N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for List<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for ListVisitor<T, N> {
            type Value = List<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "at most {N} elements")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T, N>, A::Error> {
                let announced = seq.size_hint().unwrap_or(0);
                if announced > N {
                    return Err(de::Error::invalid_length(announced, &self));
                }
                let mut items = Vec::with_capacity(announced);
                while let Some(item) = seq.next_element()? {
                    if items.len() == N {
                        return Err(de::Error::invalid_length(N + 1, &self));
                    }
                    items.push(item);
                }
                Ok(List(items))
            }
        }
        deserializer.deserialize_seq(ListVisitor::<T, N>(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_refuses_more_than_its_bound() {
        let ok: Blob<3> = postcard::from_bytes(&[3, 1, 2, 3]).unwrap();
        assert_eq!(&*ok, &[1, 2, 3]);
        assert!(postcard::from_bytes::<Blob<3>>(&[4, 1, 2, 3, 4]).is_err());
        // A length far beyond the input allocates nothing and fails.
        assert!(postcard::from_bytes::<Blob<3>>(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }

    #[test]
    fn list_refuses_a_long_announced_length_before_reading() {
        let ok: List<u8, 2> = postcard::from_bytes(&[2, 7, 8]).unwrap();
        assert_eq!(&*ok, &[7, 8]);
        assert!(postcard::from_bytes::<List<u8, 2>>(&[3, 7, 8, 9]).is_err());
        assert!(postcard::from_bytes::<List<u8, 2>>(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }
}
