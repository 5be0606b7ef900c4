//! A member's state in NOR flash, replaced atomically: two slots, A and B,
//! written in turn.
//!
//! ## Layout
//!
//! The store owns `2 × slot_len` bytes from `offset`: slot A, then slot B,
//! each a whole number of erase sectors. A slot holds, each part starting
//! on a write unit `u` (the larger of the flash's write and read sizes):
//!
//! | at | bytes | what |
//! |---|---|---|
//! | 0 | `m` = 4 padded to `u` | magic `"STSM"` |
//! | `m` | `h` = 16 padded to `u` | header: format version (u16), reserved `0xFFFF`, sequence number (u32), record length (u32), CRC-32 (u32) |
//! | `m + h` | length, padded to `u` with `0xFF` | the record |
//!
//! With the emulated chip's 4-byte unit that is 4 + 16 bytes before the
//! record.
//!
//! Integers are little-endian. The CRC-32 (IEEE, as zlib's) covers the
//! header's first 12 bytes (version, reserved, sequence, length) and then
//! the record, so a damaged sequence number or length is caught too.
//!
//! ## Saving
//!
//! A save erases the slot that does *not* hold the newest record, writes the
//! record, then the header, and the magic last, with a sequence number one
//! above the newest. Until the magic is written the slot is not a
//! candidate, so a power cut at any point leaves the previous record as the
//! newest one.
//!
//! ## Loading
//!
//! Each slot is one of: **empty** (no magic: erased, or a save that never
//! finished), **damaged** (magic present, but the version is unknown, the
//! length does not fit, or the CRC fails), or **good**. `load` returns the
//! good slot with the higher sequence number (serial-number arithmetic, so
//! wrapping would be harmless; 2³² saves outlast any flash anyway); a
//! damaged slot is skipped. With no good slot it is
//! [`StoreError::Corrupt`] when a slot is damaged (a record was completed
//! and later broke) and `None` when both are empty.
//!
//! Every save erases a slot: flash wears out after 10⁴–10⁵ erases per
//! sector, so the session's save cadence (after every change) matters on
//! a real board.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use embedded_storage::nor_flash::NorFlash;
use satsuma_core::mls::{Store, StoreError};
use zeroize::Zeroizing;

use crate::crc32::Crc32;
use crate::error::{Error, FlashLayoutError};

/// What marks a slot whose save completed, written last.
pub const MAGIC: [u8; 4] = *b"STSM";

/// The slot format's version, in every header.
pub const FORMAT_VERSION: u16 = 1;

/// Header bytes before padding.
const HEADER_LEN: usize = 16;
/// Header bytes the CRC covers: all but the CRC itself.
const HEADER_CHECKED_LEN: usize = 12;
/// The stack buffer the store reads and pads through; every unit must
/// divide it.
const CHUNK: usize = 256;

/// One of the two slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    A,
    B,
}

impl Slot {
    const fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// No magic: erased, or a save that did not finish.
    Empty,
    /// Magic, but the header or the CRC does not check out.
    Damaged,
    /// A whole record.
    Good { sequence: u32, len: usize },
}

/// Where the newest good record is, as far as this store knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Newest {
    /// The slots have not been read yet.
    Unknown,
    /// Neither slot holds a good record.
    Nothing,
    /// This slot holds it, with this sequence number.
    At(Slot, u32),
}

/// Offsets inside the region, checked once against the chip.
#[derive(Debug, Clone, Copy)]
struct Layout {
    offset: u32,
    slot_len: u32,
    /// Bytes of the magic, padded to the unit.
    magic_span: u32,
    /// Bytes of the header, padded to the unit.
    header_span: u32,
    /// Write (and read) unit.
    unit: u32,
    /// Record bytes a slot holds.
    capacity: u32,
}

impl Layout {
    const fn header_at(&self) -> u32 {
        self.magic_span
    }

    const fn body_at(&self) -> u32 {
        self.magic_span + self.header_span
    }

    const fn slot_start(&self, slot: Slot) -> u32 {
        match slot {
            Slot::A => self.offset,
            Slot::B => self.offset + self.slot_len,
        }
    }
}

/// A [`Store`] in two slots of a NOR flash: see the [module docs](self).
pub struct FlashStore<F> {
    flash: F,
    layout: Layout,
    newest: Newest,
}

impl<F> fmt::Debug for FlashStore<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlashStore")
            .field("offset", &self.layout.offset)
            .field("slot_len", &self.layout.slot_len)
            .field("capacity", &self.layout.capacity)
            .field("newest", &self.newest)
            .finish_non_exhaustive()
    }
}

impl<F: NorFlash> FlashStore<F> {
    /// A store in the `2 × slot_len` bytes of `flash` from `offset`. Nothing
    /// is read or written until the first `load`, `save` or `erase`.
    ///
    /// # Errors
    /// [`Error::FlashLayout`] when `offset` or `slot_len` is not a whole
    /// number of erase sectors, the slots run past the chip, a slot has no
    /// room for a record, or the chip's unit exceeds 256 bytes.
    pub fn new(flash: F, offset: u32, slot_len: u32) -> Result<Self, Error> {
        let unit_len = F::WRITE_SIZE.max(F::READ_SIZE);
        if unit_len == 0 || !CHUNK.is_multiple_of(unit_len) {
            return Err(FlashLayoutError::UnitTooLarge.into());
        }
        // From here on, every unit-padded span is at most CHUNK bytes.
        let unit = to_u32(unit_len).map_err(|_| FlashLayoutError::UnitTooLarge)?;
        let sector = u32::try_from(F::ERASE_SIZE).map_err(|_| FlashLayoutError::OutOfBounds)?;
        if sector == 0
            || slot_len == 0
            || !offset.is_multiple_of(sector)
            || !slot_len.is_multiple_of(sector)
        {
            return Err(FlashLayoutError::NotSectorAligned.into());
        }
        let end = slot_len
            .checked_mul(2)
            .and_then(|len| len.checked_add(offset))
            .ok_or(FlashLayoutError::OutOfBounds)?;
        if !usize::try_from(end).is_ok_and(|end| end <= flash.capacity()) {
            return Err(FlashLayoutError::OutOfBounds.into());
        }
        let magic_span = to_u32(MAGIC.len().next_multiple_of(unit_len))
            .map_err(|_| FlashLayoutError::UnitTooLarge)?;
        let header_span = to_u32(HEADER_LEN.next_multiple_of(unit_len))
            .map_err(|_| FlashLayoutError::UnitTooLarge)?;
        let room = slot_len
            .checked_sub(magic_span + header_span)
            .filter(|room| *room >= unit)
            .ok_or(FlashLayoutError::SlotTooSmall)?;
        let layout = Layout {
            offset,
            slot_len,
            magic_span,
            header_span,
            unit,
            capacity: room - room % unit,
        };
        Ok(Self {
            flash,
            layout,
            newest: Newest::Unknown,
        })
    }

    /// The largest record a slot holds, in bytes.
    #[must_use]
    pub fn capacity(&self) -> usize {
        // A u32 fits a usize on every target this runs on (32 and 64 bit).
        usize::try_from(self.layout.capacity).unwrap_or(usize::MAX)
    }

    /// The flash, back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// What `slot` holds, checking its CRC. Reads through a stack buffer;
    /// allocates nothing.
    fn inspect(&mut self, slot: Slot) -> Result<SlotState, StoreError> {
        let layout = self.layout;
        let start = layout.slot_start(slot);
        let mut chunk = Zeroizing::new([0u8; CHUNK]);
        let span = to_usize(layout.magic_span)?;
        self.flash
            .read(start, &mut chunk[..span])
            .map_err(|_| StoreError::Io)?;
        if chunk[..MAGIC.len()] != MAGIC {
            return Ok(SlotState::Empty);
        }
        let span = to_usize(layout.header_span)?;
        self.flash
            .read(start + layout.header_at(), &mut chunk[..span])
            .map_err(|_| StoreError::Io)?;
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(&chunk[..HEADER_LEN]);
        let header = Header::parse(&raw);
        if header.version != FORMAT_VERSION || header.len > layout.capacity {
            return Ok(SlotState::Damaged);
        }
        let mut crc = Crc32::new();
        crc.update(&chunk[..HEADER_CHECKED_LEN]);
        let len = to_usize(header.len)?;
        let unit = to_usize(layout.unit)?;
        let mut at = start + layout.body_at();
        let mut left = len;
        while left > 0 {
            let n = left.min(CHUNK);
            // Whole units: the slot has room, as `len` <= capacity.
            let padded = n.next_multiple_of(unit);
            self.flash
                .read(at, &mut chunk[..padded])
                .map_err(|_| StoreError::Io)?;
            crc.update(&chunk[..n]);
            at += to_u32(n)?;
            left -= n;
        }
        if crc.finish() == header.crc {
            Ok(SlotState::Good {
                sequence: header.sequence,
                len,
            })
        } else {
            Ok(SlotState::Damaged)
        }
    }

    /// Reads both slots: where the newest good record is, and whether a
    /// slot was damaged.
    fn scan(&mut self) -> Result<(Newest, Option<usize>, bool), StoreError> {
        let a = self.inspect(Slot::A)?;
        let b = self.inspect(Slot::B)?;
        let damaged = a == SlotState::Damaged || b == SlotState::Damaged;
        let (newest, len) = match (a, b) {
            (
                SlotState::Good {
                    sequence: sa,
                    len: la,
                },
                SlotState::Good {
                    sequence: sb,
                    len: lb,
                },
            ) => {
                if is_newer(sb, sa) {
                    (Newest::At(Slot::B, sb), Some(lb))
                } else {
                    (Newest::At(Slot::A, sa), Some(la))
                }
            }
            (SlotState::Good { sequence, len }, _) => (Newest::At(Slot::A, sequence), Some(len)),
            (_, SlotState::Good { sequence, len }) => (Newest::At(Slot::B, sequence), Some(len)),
            _ => (Newest::Nothing, None),
        };
        self.newest = newest;
        Ok((newest, len, damaged))
    }

    /// Where the newest record is, reading the slots the first time.
    fn newest(&mut self) -> Result<Newest, StoreError> {
        match self.newest {
            Newest::Unknown => Ok(self.scan()?.0),
            known => Ok(known),
        }
    }

    /// Writes the concatenation of `parts` into the erased `slot` with
    /// `sequence`: record, header, then the magic that makes it count. The
    /// parts are streamed through one write unit, never joined in RAM.
    fn write_slot(&mut self, slot: Slot, sequence: u32, parts: &[&[u8]]) -> Result<(), StoreError> {
        let layout = self.layout;
        let start = layout.slot_start(slot);
        let unit = to_usize(layout.unit)?;
        let io = |_| StoreError::Io;
        self.flash
            .erase(start, start + layout.slot_len)
            .map_err(io)?;

        let body = start + layout.body_at();
        let mut written = 0usize;
        let mut chunk = Zeroizing::new([0xFFu8; CHUNK]);
        let mut pending = 0usize;
        for part in parts {
            let mut part = *part;
            if pending > 0 {
                // Complete the unit a previous part left open.
                let n = (unit - pending).min(part.len());
                chunk[pending..pending + n].copy_from_slice(&part[..n]);
                pending += n;
                part = &part[n..];
                if pending < unit {
                    continue;
                }
                self.flash
                    .write(body + to_u32(written)?, &chunk[..unit])
                    .map_err(io)?;
                written += unit;
            }
            let whole = part.len() - part.len() % unit;
            if whole > 0 {
                self.flash
                    .write(body + to_u32(written)?, &part[..whole])
                    .map_err(io)?;
                written += whole;
            }
            let tail = &part[whole..];
            chunk[..tail.len()].copy_from_slice(tail);
            pending = tail.len();
        }
        if pending > 0 {
            chunk[pending..unit].fill(0xFF);
            self.flash
                .write(body + to_u32(written)?, &chunk[..unit])
                .map_err(io)?;
        }

        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut header = Header {
            version: FORMAT_VERSION,
            sequence,
            len: to_u32(len)?,
            crc: 0,
        }
        .emit();
        let mut crc = Crc32::new();
        crc.update(&header[..HEADER_CHECKED_LEN]);
        for part in parts {
            crc.update(part);
        }
        header[HEADER_CHECKED_LEN..].copy_from_slice(&crc.finish().to_le_bytes());
        chunk.fill(0xFF);
        chunk[..header.len()].copy_from_slice(&header);
        let span = to_usize(layout.header_span)?;
        self.flash
            .write(start + layout.header_at(), &chunk[..span])
            .map_err(io)?;

        chunk.fill(0xFF);
        chunk[..MAGIC.len()].copy_from_slice(&MAGIC);
        let span = to_usize(layout.magic_span)?;
        self.flash.write(start, &chunk[..span]).map_err(io)
    }

    fn erase_slot(&mut self, slot: Slot) -> Result<(), StoreError> {
        let start = self.layout.slot_start(slot);
        self.flash
            .erase(start, start + self.layout.slot_len)
            .map_err(|_| StoreError::Io)
    }
}

impl<F: NorFlash + Send> Store for FlashStore<F> {
    fn load(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let (newest, len, damaged) = self.scan()?;
        let (Newest::At(slot, _), Some(len)) = (newest, len) else {
            return if damaged {
                Err(StoreError::Corrupt)
            } else {
                Ok(None)
            };
        };
        let layout = self.layout;
        let at = layout.slot_start(slot) + layout.body_at();
        let unit = to_usize(layout.unit)?;
        let mut record = Zeroizing::new(vec![0u8; len]);
        let whole = len - len % unit;
        if whole > 0 {
            self.flash
                .read(at, &mut record[..whole])
                .map_err(|_| StoreError::Io)?;
        }
        if whole < len {
            let mut chunk = Zeroizing::new([0u8; CHUNK]);
            self.flash
                .read(at + to_u32(whole)?, &mut chunk[..unit])
                .map_err(|_| StoreError::Io)?;
            record[whole..].copy_from_slice(&chunk[..len - whole]);
        }
        Ok(Some(record))
    }

    fn save(&mut self, record: &[u8]) -> Result<(), StoreError> {
        self.save_parts(&[record])
    }

    fn save_parts(&mut self, parts: &[&[u8]]) -> Result<(), StoreError> {
        let capacity = self.capacity();
        let needed: usize = parts.iter().map(|p| p.len()).sum();
        if needed > capacity {
            return Err(StoreError::Full { needed, capacity });
        }
        let (slot, sequence) = match self.newest()? {
            Newest::At(slot, sequence) => (slot.other(), sequence.wrapping_add(1)),
            Newest::Nothing | Newest::Unknown => (Slot::A, 0),
        };
        // On failure the newest record is still the one it was; the next
        // save erases the half-written slot again.
        self.write_slot(slot, sequence, parts)?;
        self.newest = Newest::At(slot, sequence);
        Ok(())
    }

    fn erase(&mut self) -> Result<(), StoreError> {
        // The older slot first: cut off in between, the store still holds
        // the newest record, as if the erase had not begun.
        let first = match self.newest() {
            Ok(Newest::At(slot, _)) => slot.other(),
            _ => Slot::A,
        };
        self.newest = Newest::Unknown;
        self.erase_slot(first)?;
        self.erase_slot(first.other())?;
        self.newest = Newest::Nothing;
        Ok(())
    }
}

/// Whether sequence number `a` comes after `b` (RFC 1982 style: within
/// half the number space ahead).
const fn is_newer(a: u32, b: u32) -> bool {
    let ahead = a.wrapping_sub(b);
    ahead != 0 && ahead < 1 << 31
}

fn to_usize(x: u32) -> Result<usize, StoreError> {
    usize::try_from(x).map_err(|_| StoreError::Io)
}

fn to_u32(x: usize) -> Result<u32, StoreError> {
    u32::try_from(x).map_err(|_| StoreError::Io)
}

/// A slot header, as laid out in the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    version: u16,
    sequence: u32,
    len: u32,
    crc: u32,
}

impl Header {
    /// Reads the 16 header bytes.
    fn parse(bytes: &[u8; HEADER_LEN]) -> Self {
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Self {
            version: u16::from_le_bytes([bytes[0], bytes[1]]),
            sequence: u32_at(4),
            len: u32_at(8),
            crc: u32_at(12),
        }
    }

    /// The 16 header bytes; the reserved field is left unprogrammed.
    fn emit(&self) -> [u8; HEADER_LEN] {
        let mut out = [0xFF; HEADER_LEN];
        out[0..2].copy_from_slice(&self.version.to_le_bytes());
        out[4..8].copy_from_slice(&self.sequence.to_le_bytes());
        out[8..12].copy_from_slice(&self.len.to_le_bytes());
        out[12..16].copy_from_slice(&self.crc.to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests;
