//! An emulated NOR flash chip in RAM, for QEMU's `mps2-an386`, which has no
//! flash controller. It is not a driver: on the Nucleo board, embassy-stm32's
//! flash driver implements the same [`NorFlash`] trait over the real chip.
//!
//! It keeps the rules code for NOR flash must live by, so that the
//! [`FlashStore`](crate::FlashStore) tested on it would work on a real part:
//!
//! - erase works on whole sectors ([`EMULATED_ERASE_SIZE`], like the small
//!   sectors of an STM32F4) and sets every byte to `0xFF`;
//! - a write is whole units ([`EMULATED_WRITE_SIZE`]) and can only clear
//!   bits: a write that would set one (write without erase) is refused,
//!   changes nothing, and is counted in [`EmulatedChip::refused_writes`];
//! - [`EmulatedChip::cut_power_after`] simulates a power cut: the write that
//!   crosses the budget programs only the bytes before it, and every
//!   operation fails until [`EmulatedChip::restore_power`] (the reboot).
//!
//! The chip lives apart from its handles (usually in a `static`), as a real
//! chip outlives the firmware that a reboot restarts: drop a store, make a
//! new [`EmulatedNorFlash`] handle, and the bytes are still there.

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use spin::Mutex;

/// Bytes one erase clears: 16 KiB, like sectors 0–3 of an STM32F4.
pub const EMULATED_ERASE_SIZE: usize = 16 * 1024;

/// Bytes one program operation writes: a 32-bit word, like an STM32F4 at
/// 2.7–3.6 V.
pub const EMULATED_WRITE_SIZE: usize = 4;

/// Why the emulated chip refused an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmulatedFlashError {
    /// Offset or length is not a whole number of units (or sectors).
    NotAligned,
    /// The range runs past the end of the chip.
    OutOfBounds,
    /// The write would set a bit that is 0: NOR needs an erase first.
    SetsBits,
    /// The power was cut (see [`EmulatedChip::cut_power_after`]).
    PowerCut,
}

impl fmt::Display for EmulatedFlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAligned => "offset or length not aligned to the flash's unit",
            Self::OutOfBounds => "range runs past the end of the flash",
            Self::SetsBits => "write would set a bit without an erase",
            Self::PowerCut => "power cut",
        })
    }
}

impl NorFlashError for EmulatedFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::NotAligned => NorFlashErrorKind::NotAligned,
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::SetsBits | Self::PowerCut => NorFlashErrorKind::Other,
        }
    }
}

/// An emulated NOR flash chip of `N` bytes, erased (all `0xFF`) when made.
pub struct EmulatedChip<const N: usize> {
    /// The cells, each stored inverted: a fresh, erased chip is all-zero
    /// RAM, so a `static` chip (every field starts at zero) sits in `.bss`
    /// instead of putting `N` bytes of `0xFF` into the firmware image.
    inverted: Mutex<[u8; N]>,
    /// Whether a power cut is pending (see `budget`).
    limited: AtomicBool,
    /// Bytes the chip still programs before the power goes, if `limited`.
    budget: AtomicUsize,
    /// Whether the power is off (a cut happened and no reboot since).
    cut: AtomicBool,
    refused: AtomicUsize,
    erases: AtomicUsize,
    programmed: AtomicUsize,
}

impl<const N: usize> fmt::Debug for EmulatedChip<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatedChip")
            .field("bytes", &N)
            .field("erases", &self.erases())
            .field("programmed", &self.programmed())
            .field("refused_writes", &self.refused_writes())
            .finish_non_exhaustive()
    }
}

impl<const N: usize> Default for EmulatedChip<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> EmulatedChip<N> {
    /// A chip fresh from the factory: every byte `0xFF`, power on.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            inverted: Mutex::new([0; N]),
            limited: AtomicBool::new(false),
            budget: AtomicUsize::new(0),
            cut: AtomicBool::new(false),
            refused: AtomicUsize::new(0),
            erases: AtomicUsize::new(0),
            programmed: AtomicUsize::new(0),
        }
    }

    /// A handle on this chip, as the firmware's flash driver.
    #[must_use]
    pub const fn flash(&self) -> EmulatedNorFlash<'_, N> {
        EmulatedNorFlash { chip: self }
    }

    /// Cuts the power once `bytes` more bytes have been programmed: the
    /// write that crosses it programs only its first bytes, and it and
    /// everything after it fail with [`EmulatedFlashError::PowerCut`].
    pub fn cut_power_after(&self, bytes: usize) {
        self.budget.store(bytes, Ordering::Relaxed);
        self.limited.store(true, Ordering::Relaxed);
    }

    /// Power back on, no cut pending: the reboot after a cut.
    pub fn restore_power(&self) {
        self.limited.store(false, Ordering::Relaxed);
        self.cut.store(false, Ordering::Relaxed);
    }

    /// Flips the bits of `mask` in the byte at `offset`, ignoring NOR's
    /// rules: fault injection, for a cell that decayed or a stray write.
    /// Does nothing past the end.
    pub fn flip_bits(&self, offset: usize, mask: u8) {
        if let Some(cell) = self.inverted.lock().get_mut(offset) {
            *cell ^= mask;
        }
    }

    /// Writes refused because they would have set a bit. Code that keeps
    /// NOR's rules leaves this at 0.
    pub fn refused_writes(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    /// Copies the chip's bytes from `at` into `out` (as many as fit before
    /// its end): its image, to keep outside the program (QEMU's board
    /// saves it in a file on the host, so the chip outlives a reboot).
    /// Returns how many were copied.
    pub fn read_image(&self, at: usize, out: &mut [u8]) -> usize {
        let cells = self.inverted.lock();
        let from = cells.get(at..).unwrap_or_default();
        let n = from.len().min(out.len());
        for (byte, cell) in out.iter_mut().zip(from) {
            *byte = !cell;
        }
        n
    }

    /// Sets the chip's bytes from `at` to `bytes` (those before its end):
    /// an image read back from where [`EmulatedChip::read_image`] kept it.
    pub fn write_image(&self, at: usize, bytes: &[u8]) {
        let mut cells = self.inverted.lock();
        if let Some(to) = cells.get_mut(at..) {
            for (cell, byte) in to.iter_mut().zip(bytes) {
                *cell = !byte;
            }
        }
    }

    /// Sector erases so far: what wears a real chip out.
    pub fn erases(&self) -> usize {
        self.erases.load(Ordering::Relaxed)
    }

    /// Bytes programmed so far.
    pub fn programmed(&self) -> usize {
        self.programmed.load(Ordering::Relaxed)
    }

    fn powered(&self) -> Result<(), EmulatedFlashError> {
        if self.cut.load(Ordering::Relaxed) {
            Err(EmulatedFlashError::PowerCut)
        } else {
            Ok(())
        }
    }
}

/// A handle on an [`EmulatedChip`]: the [`NorFlash`] the store writes to.
/// Copies are handles on the same chip.
pub struct EmulatedNorFlash<'a, const N: usize> {
    chip: &'a EmulatedChip<N>,
}

impl<const N: usize> Clone for EmulatedNorFlash<'_, N> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<const N: usize> Copy for EmulatedNorFlash<'_, N> {}

impl<const N: usize> fmt::Debug for EmulatedNorFlash<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EmulatedNorFlash").field(self.chip).finish()
    }
}

/// The range `offset..offset + len` if it lies inside `N` bytes.
fn range<const N: usize>(
    offset: u32,
    len: usize,
) -> Result<core::ops::Range<usize>, EmulatedFlashError> {
    let start = usize::try_from(offset).map_err(|_| EmulatedFlashError::OutOfBounds)?;
    let end = start
        .checked_add(len)
        .filter(|end| *end <= N)
        .ok_or(EmulatedFlashError::OutOfBounds)?;
    Ok(start..end)
}

impl<const N: usize> ErrorType for EmulatedNorFlash<'_, N> {
    type Error = EmulatedFlashError;
}

impl<const N: usize> ReadNorFlash for EmulatedNorFlash<'_, N> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.chip.powered()?;
        let range = range::<N>(offset, bytes.len())?;
        let cells = self.chip.inverted.lock();
        for (out, cell) in bytes.iter_mut().zip(&cells[range]) {
            *out = !*cell;
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        N
    }
}

impl<const N: usize> NorFlash for EmulatedNorFlash<'_, N> {
    const WRITE_SIZE: usize = EMULATED_WRITE_SIZE;
    const ERASE_SIZE: usize = EMULATED_ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.chip.powered()?;
        let len = to
            .checked_sub(from)
            .ok_or(EmulatedFlashError::OutOfBounds)?;
        let len = usize::try_from(len).map_err(|_| EmulatedFlashError::OutOfBounds)?;
        let range = range::<N>(from, len)?;
        if !range.start.is_multiple_of(Self::ERASE_SIZE) || !len.is_multiple_of(Self::ERASE_SIZE) {
            return Err(EmulatedFlashError::NotAligned);
        }
        self.chip.inverted.lock()[range].fill(0);
        self.chip
            .erases
            .fetch_add(len / Self::ERASE_SIZE, Ordering::Relaxed);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.chip.powered()?;
        let range = range::<N>(offset, bytes.len())?;
        if !range.start.is_multiple_of(Self::WRITE_SIZE)
            || !bytes.len().is_multiple_of(Self::WRITE_SIZE)
        {
            return Err(EmulatedFlashError::NotAligned);
        }
        let mut cells = self.chip.inverted.lock();
        let cells = &mut cells[range];
        // A cell holds !stored; programming clears bits, so the new value
        // must have no 1 where the cell has a 0.
        if cells.iter().zip(bytes).any(|(cell, new)| new & *cell != 0) {
            self.chip.refused.fetch_add(1, Ordering::Relaxed);
            return Err(EmulatedFlashError::SetsBits);
        }
        let limited = self.chip.limited.load(Ordering::Relaxed);
        let n = if limited {
            let budget = self.chip.budget.load(Ordering::Relaxed);
            let n = bytes.len().min(budget);
            self.chip.budget.store(budget - n, Ordering::Relaxed);
            n
        } else {
            bytes.len()
        };
        for (cell, new) in cells.iter_mut().zip(&bytes[..n]) {
            *cell = !*new;
        }
        self.chip.programmed.fetch_add(n, Ordering::Relaxed);
        if n < bytes.len() {
            self.chip.cut.store(true, Ordering::Relaxed);
            return Err(EmulatedFlashError::PowerCut);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::cast_possible_truncation)] // Test code, small numbers.
mod tests {
    use super::*;

    const SECTOR: u32 = EMULATED_ERASE_SIZE as u32;

    fn chip() -> Box<EmulatedChip<{ 2 * EMULATED_ERASE_SIZE }>> {
        Box::default()
    }

    fn read(flash: &mut impl ReadNorFlash, offset: u32, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        flash.read(offset, &mut out).unwrap();
        out
    }

    #[test]
    fn an_image_read_out_and_written_back_is_the_same_chip() {
        let chip: EmulatedChip<{ 2 * EMULATED_ERASE_SIZE }> = EmulatedChip::new();
        let mut flash = chip.flash();
        flash.write(8, &[1, 2, 3, 4]).unwrap();
        let mut image = vec![0; 2 * EMULATED_ERASE_SIZE + 10];
        // In pieces, as a board writes a file: what fits, then the rest.
        assert_eq!(chip.read_image(0, &mut image[..100]), 100);
        assert_eq!(
            chip.read_image(100, &mut image[100..]),
            2 * EMULATED_ERASE_SIZE - 100
        );
        assert_eq!(
            &image[..12],
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4]
        );
        let copy: EmulatedChip<{ 2 * EMULATED_ERASE_SIZE }> = EmulatedChip::new();
        copy.write_image(0, &image[..50]);
        copy.write_image(50, &image[50..]);
        let mut back = [0; 4];
        copy.flash().read(8, &mut back).unwrap();
        assert_eq!(back, [1, 2, 3, 4]);
        assert_eq!(
            copy.read_image(2 * EMULATED_ERASE_SIZE, &mut back),
            0,
            "nothing past the end"
        );
    }

    #[test]
    fn fresh_chip_is_erased_and_writes_only_clear_bits() {
        let chip = chip();
        let mut flash = chip.flash();
        assert_eq!(read(&mut flash, 0, 8), [0xFF; 8]);
        flash.write(0, &[0xF0, 0x0F, 0xFF, 0x00]).unwrap();
        assert_eq!(read(&mut flash, 0, 4), [0xF0, 0x0F, 0xFF, 0x00]);
        // Clearing more bits is fine; setting one is refused, unchanged.
        flash.write(0, &[0x80, 0x0F, 0xFE, 0x00]).unwrap();
        assert_eq!(
            flash.write(0, &[0x80, 0x1F, 0xFE, 0x00]),
            Err(EmulatedFlashError::SetsBits)
        );
        assert_eq!(read(&mut flash, 0, 4), [0x80, 0x0F, 0xFE, 0x00]);
        assert_eq!(chip.refused_writes(), 1);
        flash.erase(0, SECTOR).unwrap();
        assert_eq!(read(&mut flash, 0, 4), [0xFF; 4]);
        assert_eq!(chip.erases(), 1);
    }

    #[test]
    fn alignment_and_bounds_are_enforced() {
        let chip = chip();
        let mut flash = chip.flash();
        assert_eq!(flash.write(2, &[0; 4]), Err(EmulatedFlashError::NotAligned));
        assert_eq!(flash.write(0, &[0; 3]), Err(EmulatedFlashError::NotAligned));
        assert_eq!(flash.erase(0, 100), Err(EmulatedFlashError::NotAligned));
        assert_eq!(
            flash.erase(SECTOR, 3 * SECTOR),
            Err(EmulatedFlashError::OutOfBounds)
        );
        assert_eq!(
            flash.write(2 * SECTOR - 4, &[0; 8]),
            Err(EmulatedFlashError::OutOfBounds)
        );
        assert_eq!(flash.erase(SECTOR, 0), Err(EmulatedFlashError::OutOfBounds));
    }

    #[test]
    fn a_power_cut_programs_a_prefix_then_fails_until_reboot() {
        let chip = chip();
        let mut flash = chip.flash();
        chip.cut_power_after(6);
        flash.write(0, &[0x11; 4]).unwrap();
        assert_eq!(
            flash.write(4, &[0x22; 4]),
            Err(EmulatedFlashError::PowerCut)
        );
        assert_eq!(
            flash.read(0, &mut [0; 1]),
            Err(EmulatedFlashError::PowerCut)
        );
        assert_eq!(flash.erase(0, SECTOR), Err(EmulatedFlashError::PowerCut));
        chip.restore_power();
        assert_eq!(
            read(&mut flash, 0, 8),
            [0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0xFF, 0xFF]
        );
        // Another handle sees the same chip.
        assert_eq!(read(&mut chip.flash(), 4, 2), [0x22, 0x22]);
    }
}
