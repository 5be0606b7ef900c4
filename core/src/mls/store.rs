//! Where a member's identity and group state survive a restart.
//!
//! A [`Store`] keeps one record: the member's whole state, rewritten after
//! every change. Implementations must replace it atomically, so that a crash
//! mid-write leaves the old record or the new one, never a mix: the desktop
//! writes a temporary file and renames it; the firmware alternates between
//! two flash slots with a sequence number and checksum.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};
use spin::Mutex;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Why a [`Store`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing the medium failed.
    Io,
    /// The record does not fit.
    Full {
        /// Bytes the record needs.
        needed: usize,
        /// Bytes the store holds.
        capacity: usize,
    },
    /// The stored record fails its integrity check.
    Corrupt,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io => f.write_str("storage medium failed"),
            Self::Full { needed, capacity } => {
                write!(f, "state needs {needed} bytes, store holds {capacity}")
            }
            Self::Corrupt => f.write_str("stored state fails its integrity check"),
        }
    }
}

impl core::error::Error for StoreError {}

/// One member's persistent state: a single record, replaced atomically.
pub trait Store: Send {
    /// The last record saved, or `None` if there is none.
    ///
    /// # Errors
    /// [`StoreError`] when the medium fails or the record is damaged.
    fn load(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError>;

    /// Replaces the record with `record`, atomically.
    ///
    /// # Errors
    /// [`StoreError`]; the previous record must then still be readable.
    fn save(&mut self, record: &[u8]) -> Result<(), StoreError>;

    /// Replaces the record with the concatenation of `parts`, atomically.
    /// The session saves its state in two parts (its own fields and mls-rs's
    /// group snapshot) so that a store which writes them one after the other
    /// spares a microcontroller a second copy of the snapshot in RAM; this
    /// default joins them and calls [`Store::save`].
    ///
    /// # Errors
    /// As [`Store::save`].
    fn save_parts(&mut self, parts: &[&[u8]]) -> Result<(), StoreError> {
        self.save(&Zeroizing::new(parts.concat()))
    }

    /// Forgets the record (the member left for good).
    ///
    /// # Errors
    /// [`StoreError::Io`].
    fn erase(&mut self) -> Result<(), StoreError>;
}

/// A store in RAM: for members that need not survive a power cycle, and
/// for tests, which clone it to keep a handle on what the session wrote.
#[derive(Clone, Default)]
pub struct MemoryStore {
    record: Arc<Mutex<Option<Zeroizing<Vec<u8>>>>>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("bytes", &self.record.lock().as_ref().map(|r| r.len()))
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of the record held, if any.
    #[must_use]
    pub fn record_len(&self) -> Option<usize> {
        self.record.lock().as_ref().map(|r| r.len())
    }
}

impl Store for MemoryStore {
    fn load(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        Ok(self.record.lock().clone())
    }

    fn save(&mut self, record: &[u8]) -> Result<(), StoreError> {
        *self.record.lock() = Some(Zeroizing::new(record.to_vec()));
        Ok(())
    }

    fn erase(&mut self) -> Result<(), StoreError> {
        *self.record.lock() = None;
        Ok(())
    }
}

/// Format version of [`Record`]; a record of another version is refused.
pub(crate) const RECORD_VERSION: u16 = 3;

/// What a session saves.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Record {
    pub version: u16,
    pub identity_seed: [u8; 32],
    pub display_name: String,
    pub device_id: String,
    /// Key packages published and not yet used: (id, mls-encoded
    /// `KeyPackageData` with its private keys).
    pub key_packages: Vec<(Vec<u8>, Vec<u8>)>,
    pub group: Option<GroupRecord>,
    /// The identities this member has seen (trust on first use), as
    /// `TrustRecord::to_bytes` wrote them.
    pub trust: Vec<u8>,
}

/// The group's own fields; mls-rs's snapshot of it follows the encoded
/// [`Record`] as the rest of the bytes.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct GroupRecord {
    pub id: Vec<u8>,
    pub epoch: u64,
    /// The SFrame KID context this member sends with in `epoch`; a member
    /// that restarts within the epoch moves to the next one, so it never
    /// reuses a (key, counter) pair from before the restart.
    pub send_context: u64,
}

impl Record {
    /// The record's own fields, encoded; the snapshot, if any, is saved
    /// right after them.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, super::SessionError> {
        postcard::to_allocvec(self)
            .map(Zeroizing::new)
            .map_err(|_| super::SessionError::CorruptState)
    }

    /// Splits saved bytes into the record and the group snapshot that
    /// follows it; the snapshot reuses `bytes`' allocation.
    pub fn decode(
        mut bytes: Zeroizing<Vec<u8>>,
    ) -> Result<(Self, Zeroizing<Vec<u8>>), super::SessionError> {
        let (record, rest): (Self, &[u8]) =
            postcard::take_from_bytes(&bytes).map_err(|_| super::SessionError::CorruptState)?;
        if record.version != RECORD_VERSION {
            return Err(super::SessionError::CorruptState);
        }
        let consumed = bytes.len() - rest.len();
        bytes.drain(..consumed);
        Ok((record, bytes))
    }
}
