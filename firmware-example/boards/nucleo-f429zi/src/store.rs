//! Where the intercom's MLS state lives: the last two sectors of the
//! STM32F429ZI's flash, under `satsuma_intercom::FlashStore`.
//!
//! | sector | address | size | |
//! |---|---|---|---|
//! | 22 (bank 2) | `0x081C_0000` | 128 KiB | slot A |
//! | 23 (bank 2) | `0x081E_0000` | 128 KiB | slot B |
//!
//! memory.x leaves both out of the program's flash, so the linker fails
//! before code could be placed there. A [`StoreFlash`] handle reaches these
//! 256 KiB and nothing else: its offset 0 is `0x081C_0000`, its capacity
//! 256 KiB, and anything past them is refused before the flash controller
//! is asked. Its erase unit is the sector (128 KiB), its write unit
//! embassy-stm32's `WRITE_SIZE` (a 32-bit word on the F4).
//!
//! Bank 2 rather than bank 1, where the program runs: the F42x reads one
//! bank while it erases or programs the other, so an erase here does not
//! stall instruction fetches, and the interrupts (Ethernet, timers) go on
//! being served. The executor's thread does wait for it: a 128 KiB sector
//! takes about a second to erase (2 s at most; datasheet, "Flash memory
//! programming"), and the session saves after every change of its state.
//!
//! Handles share the one flash driver through a spin lock, not a critical
//! section: an erase with the interrupts masked would stop the time driver
//! and the Ethernet DMA's interrupt for that second. Only thread mode uses
//! the flash, so the lock is never contended; if it were, the operation
//! fails ([`StoreFlashError::Busy`]) rather than spinning.

use core::fmt;

use embassy_stm32::Peri;
use embassy_stm32::flash::{self, Blocking, Flash};
use embassy_stm32::gpio::{Level, OutputOpenDrain, Pull, Speed};
use embassy_stm32::peripherals::PA12;
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use spin::Mutex;

/// Where the store starts, as an offset from the flash's base
/// (`0x0800_0000`): sector 22.
pub const STORE_OFFSET: u32 = 0x1C_0000;
/// One slot: one 128 KiB sector.
pub const SLOT_LEN: u32 = 128 * 1024;
/// The store's two slots.
pub const STORE_LEN: u32 = 2 * SLOT_LEN;

const _: () = assert!(STORE_OFFSET as usize + STORE_LEN as usize == flash::FLASH_SIZE);
const _: () = assert!(SLOT_LEN as usize == flash::MAX_ERASE_SIZE);

/// The flash driver, once [`StoreFlash::install`] put it here.
static FLASH: Mutex<Option<Flash<'static, Blocking>>> = Mutex::new(None);

/// A handle on the store's 256 KiB of flash; see the [module](self).
/// Handles are copies of one another.
#[derive(Debug, Clone, Copy)]
pub struct StoreFlash {
    _installed: (),
}

/// Why the store's flash refused an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
#[non_exhaustive]
pub enum StoreFlashError {
    /// The flash controller reported an error (programming sequence,
    /// alignment, write protection).
    Flash(flash::Error),
    /// The range runs past the store's 256 KiB.
    OutOfBounds,
    /// Another handle is using the flash (never, from one thread).
    Busy,
}

impl fmt::Display for StoreFlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flash(e) => write!(f, "the flash controller reported {e:?}"),
            Self::OutOfBounds => f.write_str("past the end of the flash store"),
            Self::Busy => f.write_str("the flash is in use"),
        }
    }
}

impl core::error::Error for StoreFlashError {}

impl NorFlashError for StoreFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::Flash(e) => e.kind(),
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::Busy => NorFlashErrorKind::Other,
        }
    }
}

impl StoreFlash {
    /// Takes the flash driver for the store; `None` when it was installed
    /// before.
    pub fn install(flash: Flash<'static, Blocking>) -> Option<Self> {
        let mut slot = FLASH.try_lock()?;
        if slot.is_some() {
            return None;
        }
        *slot = Some(flash);
        Some(Self { _installed: () })
    }

    /// The absolute offset of `len` bytes at `offset` in the store.
    fn place(offset: u32, len: usize) -> Result<u32, StoreFlashError> {
        let len = u32::try_from(len).map_err(|_| StoreFlashError::OutOfBounds)?;
        match offset.checked_add(len) {
            Some(end) if end <= STORE_LEN => Ok(STORE_OFFSET + offset),
            _ => Err(StoreFlashError::OutOfBounds),
        }
    }

    fn with<T>(
        f: impl FnOnce(&mut Flash<'static, Blocking>) -> Result<T, flash::Error>,
    ) -> Result<T, StoreFlashError> {
        let mut slot = FLASH.try_lock().ok_or(StoreFlashError::Busy)?;
        // A handle exists only once the driver is installed.
        let flash = slot.as_mut().ok_or(StoreFlashError::Busy)?;
        f(flash).map_err(StoreFlashError::Flash)
    }
}

impl ErrorType for StoreFlash {
    type Error = StoreFlashError;
}

impl ReadNorFlash for StoreFlash {
    const READ_SIZE: usize = flash::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let at = Self::place(offset, bytes.len())?;
        Self::with(|flash| flash.blocking_read(at, bytes))
    }

    fn capacity(&self) -> usize {
        STORE_LEN as usize
    }
}

impl NorFlash for StoreFlash {
    const WRITE_SIZE: usize = flash::WRITE_SIZE;
    const ERASE_SIZE: usize = SLOT_LEN as usize;

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let at = Self::place(offset, bytes.len())?;
        Self::with(|flash| flash.blocking_write(at, bytes))
    }

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let len = to.checked_sub(from).ok_or(StoreFlashError::OutOfBounds)?;
        let at = Self::place(from, len as usize)?;
        Self::with(|flash| flash.blocking_erase(at, at + len))
    }
}

/// Errata guard for reads of bank 2 (the STM32F42x/43x errata sheet,
/// 2.2.11, as embassy-stm32 cites it): on silicon before revision 3 a read
/// of bank 2 can return wrong data while PA12 (USB OTG FS D+, unused here)
/// toggles, and embassy-stm32 refuses such reads (a panic) unless PA12 is
/// an output held low with its pull-down. This holds it so; keep the
/// returned pin for the whole run. On revision 3 and later it changes
/// nothing.
#[must_use]
pub fn hold_pa12_low(pa12: Peri<'static, PA12>) -> OutputOpenDrain<'static> {
    OutputOpenDrain::new_pull(pa12, Level::Low, Speed::Low, Pull::Down)
}
