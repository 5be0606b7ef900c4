//! Why the intercom's own parts refused something. What a store meets at
//! run time is a [`StoreError`](satsuma_core::mls::StoreError), as the
//! core's `Store` trait says; this is for mistakes in how it was set up.

use core::fmt;

/// Why a part of the intercom could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A [`FlashStore`](crate::FlashStore)'s region does not fit the chip.
    FlashLayout(FlashLayoutError),
}

/// How a [`FlashStore`](crate::FlashStore)'s region fails to fit the chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlashLayoutError {
    /// The region's start or its slot length is not a whole number of
    /// erase sectors.
    NotSectorAligned,
    /// The two slots run past the end of the chip.
    OutOfBounds,
    /// A slot has no room for a record after its header.
    SlotTooSmall,
    /// The chip's write or read unit is larger than the store's buffer
    /// (256 bytes).
    UnitTooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FlashLayout(e) => write!(f, "flash store layout: {e}"),
        }
    }
}

impl fmt::Display for FlashLayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotSectorAligned => "start or slot length is not a whole number of sectors",
            Self::OutOfBounds => "the two slots run past the end of the flash",
            Self::SlotTooSmall => "a slot has no room after its header",
            Self::UnitTooLarge => "the flash's write or read unit exceeds 256 bytes",
        })
    }
}

impl core::error::Error for Error {}

impl From<FlashLayoutError> for Error {
    fn from(e: FlashLayoutError) -> Self {
        Self::FlashLayout(e)
    }
}
