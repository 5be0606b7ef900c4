//! The flash store on the target: a power cut half-way through a save leaves
//! the previous record, and a damaged slot is skipped. (The library's host
//! tests cut at every byte.)

use alloc::vec::Vec;

use cortex_m_semihosting::hprintln;
use satsuma_core::mls::{Store, StoreError};
use satsuma_intercom::FlashStore;

use crate::checks::{Failed, check, need};
use crate::{Chip, SECTOR, TORN_REGION};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| seed ^ i.to_le_bytes()[0] ^ i.to_le_bytes()[1].rotate_left(3))
        .collect()
}

/// Saves, cuts the power half-way through the next save, reboots, loads.
pub fn run(chip: &'static Chip) -> Result<(), Failed> {
    hprintln!();
    hprintln!("== flash store: a power cut half-way through a save");
    let store = || {
        need(
            "the store's region fits the chip",
            FlashStore::new(chip.flash(), TORN_REGION, SECTOR),
        )
    };
    let mut s = store()?;
    let old = pattern(3000, 1);
    need("the first record is saved", s.save(&old))?;
    let new = pattern(s.capacity(), 2);
    chip.cut_power_after(SECTOR as usize / 2);
    let torn = s.save(&new);
    chip.restore_power();
    check(
        torn == Err(StoreError::Io),
        format_args!(
            "a {}-byte save cut after {} bytes fails",
            new.len(),
            SECTOR / 2
        ),
    )?;
    // The reboot: a new store over the same chip.
    let loaded = need("the store loads after the reboot", store()?.load())?;
    check(
        loaded.as_deref() == Some(&old),
        format_args!("after the cut, the store loads the previous record"),
    )?;
    let mut s = store()?;
    need("the new record is saved after the reboot", s.save(&new))?;
    let loaded = need("the store loads the new record", store()?.load())?;
    check(
        loaded.as_deref() == Some(&new),
        format_args!("saved again, the store loads the new record"),
    )?;
    // A bit decays in the new record's slot (B, after the magic and the
    // header): the store falls back to the previous one.
    chip.flip_bits(TORN_REGION as usize + SECTOR as usize + 20 + 100, 0x04);
    let loaded = need("the store loads with a damaged slot", store()?.load())?;
    check(
        loaded.as_deref() == Some(&old),
        format_args!("a damaged slot is skipped for the previous record"),
    )?;
    check(
        chip.refused_writes() == 0,
        format_args!("the store never wrote a bit without an erase"),
    )
}
