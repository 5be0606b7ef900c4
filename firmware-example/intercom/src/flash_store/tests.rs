//! The store's promises on the emulated chip: the newest record survives a
//! power cut at any byte of a save, damage is skipped or reported, and NOR's
//! rules are never broken.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)] // Test code, small numbers.

use embedded_storage::nor_flash::ReadNorFlash;
use satsuma_core::Instant;
use satsuma_core::mls::{MemberInfo, SatsumaCrypto, Session, SessionConfig};

use super::*;
use crate::{EMULATED_ERASE_SIZE, EmulatedChip, EmulatedNorFlash};

/// Four sectors: one slot of one sector each way, at sector 1, with a
/// sector free on either side to catch writes out of the region.
const CHIP: usize = 4 * EMULATED_ERASE_SIZE;
const SECTOR: u32 = EMULATED_ERASE_SIZE as u32;
/// Magic (4) and header (16), each padded to the 4-byte unit.
const OVERHEAD: usize = 20;

type Chip = EmulatedChip<CHIP>;

fn chip() -> &'static Chip {
    Box::leak(Box::default())
}

fn store(chip: &'static Chip) -> FlashStore<EmulatedNorFlash<'static, CHIP>> {
    FlashStore::new(chip.flash(), SECTOR, SECTOR).unwrap()
}

fn record(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn load(chip: &'static Chip) -> Result<Option<Vec<u8>>, StoreError> {
    // A new store each time: what the firmware sees after a reboot.
    store(chip).load().map(|r| r.map(|r| r.to_vec()))
}

#[test]
fn an_empty_region_holds_nothing_and_saves_alternate_slots() {
    let chip = chip();
    let mut s = store(chip);
    assert_eq!(s.capacity(), EMULATED_ERASE_SIZE - OVERHEAD);
    assert_eq!(s.load().unwrap(), None);
    for (i, len) in [0, 1, 5, 300, 4093].into_iter().enumerate() {
        let r = record(len, i as u8);
        s.save(&r).unwrap();
        assert_eq!(s.load().unwrap().as_deref(), Some(&r));
        assert_eq!(load(chip).unwrap(), Some(r));
    }
    // Five saves, one sector each, alternating between the two slots.
    assert_eq!(chip.erases(), 5);
    assert_eq!(chip.refused_writes(), 0);
}

#[test]
fn the_layout_is_the_documented_one() {
    let chip = chip();
    let mut s = store(chip);
    s.save(b"first").unwrap();
    s.save(b"second!").unwrap();
    let mut slot_a = [0; 32];
    let mut slot_b = [0; 32];
    chip.flash().read(SECTOR, &mut slot_a).unwrap();
    chip.flash().read(2 * SECTOR, &mut slot_b).unwrap();
    let mut crc = Crc32::new();
    crc.update(&[1, 0, 0xFF, 0xFF, 1, 0, 0, 0, 7, 0, 0, 0]);
    crc.update(b"second!");
    let crc = crc.finish().to_le_bytes();
    let mut expected = Vec::from(*b"STSM");
    expected.extend([1, 0, 0xFF, 0xFF]); // version 1, reserved
    expected.extend([1, 0, 0, 0]); // sequence 1
    expected.extend([7, 0, 0, 0]); // 7 bytes
    expected.extend(crc);
    expected.extend(b"second!");
    expected.push(0xFF); // padding to the write unit
    assert_eq!(&slot_b[..expected.len()], &expected[..]);
    assert_eq!(&slot_a[..4], b"STSM");
    assert_eq!(&slot_a[8..12], &[0, 0, 0, 0]); // sequence 0
}

#[test]
fn a_record_larger_than_a_slot_is_refused_and_the_old_one_stays() {
    let chip = chip();
    let mut s = store(chip);
    let old = record(100, 1);
    s.save(&old).unwrap();
    let capacity = s.capacity();
    assert_eq!(
        s.save(&record(capacity + 1, 2)),
        Err(StoreError::Full {
            needed: capacity + 1,
            capacity
        })
    );
    assert_eq!(load(chip).unwrap(), Some(old));
    s.save(&record(capacity, 3)).unwrap();
    assert_eq!(load(chip).unwrap(), Some(record(capacity, 3)));
}

/// Bytes a save of `len` bytes programs: the record padded to the unit,
/// then header and magic.
fn programmed_by_save(len: usize) -> usize {
    len.next_multiple_of(4) + OVERHEAD
}

#[test]
fn a_power_cut_at_any_byte_of_a_save_leaves_the_previous_record() {
    let old = record(61, 1);
    let new = record(75, 2);
    let total = programmed_by_save(new.len());
    for cut in 0..=total {
        let chip = chip();
        let mut s = store(chip);
        s.save(&old).unwrap();
        // A save in the same slot the new one will overwrite, so that the
        // torn slot held a good record before the erase.
        s.save(&record(40, 9)).unwrap();
        s.save(&old).unwrap();
        chip.cut_power_after(cut);
        let saved = s.save(&new);
        chip.restore_power();
        let expected = if cut < total {
            assert_eq!(saved, Err(StoreError::Io), "cut after {cut} bytes");
            &old
        } else {
            assert_eq!(saved, Ok(()));
            &new
        };
        assert_eq!(
            load(chip).unwrap().as_ref(),
            Some(expected),
            "cut after {cut} of {total} bytes"
        );
        // After the reboot, saving works again (in the torn slot).
        let mut s = store(chip);
        s.save(b"after").unwrap();
        assert_eq!(load(chip).unwrap().as_deref(), Some(&b"after"[..]));
        assert_eq!(chip.refused_writes(), 0);
    }
}

#[test]
fn a_power_cut_half_way_through_a_full_slot_leaves_the_previous_record() {
    let chip = chip();
    let mut s = store(chip);
    let old = record(5000, 1);
    s.save(&old).unwrap();
    let new = record(s.capacity(), 2);
    chip.cut_power_after(EMULATED_ERASE_SIZE / 2);
    assert_eq!(s.save(&new), Err(StoreError::Io));
    chip.restore_power();
    assert_eq!(load(chip).unwrap(), Some(old));
}

#[test]
fn a_power_cut_before_the_first_save_completes_leaves_nothing() {
    let chip = chip();
    let mut s = store(chip);
    chip.cut_power_after(programmed_by_save(100) - 1);
    assert_eq!(s.save(&record(100, 1)), Err(StoreError::Io));
    chip.restore_power();
    assert_eq!(load(chip).unwrap(), None);
}

#[test]
fn a_damaged_slot_is_skipped_and_two_are_corrupt() {
    let chip = chip();
    let mut s = store(chip);
    let older = record(200, 1);
    let newer = record(200, 2);
    s.save(&older).unwrap(); // slot A
    s.save(&newer).unwrap(); // slot B
    let body_b = 2 * SECTOR as usize + OVERHEAD;
    let body_a = SECTOR as usize + OVERHEAD;

    chip.flip_bits(body_b + 150, 0x10);
    assert_eq!(load(chip).unwrap(), Some(older.clone()));
    chip.flip_bits(body_a + 3, 0x01);
    assert_eq!(load(chip), Err(StoreError::Corrupt));

    // A save after the damage writes a good slot again.
    let mut s = store(chip);
    s.save(b"fresh").unwrap();
    assert_eq!(load(chip).unwrap().as_deref(), Some(&b"fresh"[..]));
}

#[test]
fn damage_to_a_header_is_caught_by_the_crc() {
    let chip = chip();
    let mut s = store(chip);
    s.save(&record(10, 1)).unwrap(); // slot A, sequence 0
    s.save(&record(10, 2)).unwrap(); // slot B, sequence 1
    // Slot A's sequence number jumps ahead: without the CRC over the
    // header, the older record would win.
    chip.flip_bits(SECTOR as usize + 4 + 4 + 1, 0x01);
    assert_eq!(load(chip).unwrap(), Some(record(10, 2)));
    // A length past the slot, and an unknown version, are damage too.
    chip.flip_bits(2 * SECTOR as usize + 4 + 8 + 3, 0x80);
    assert_eq!(load(chip), Err(StoreError::Corrupt));
}

#[test]
fn one_damaged_slot_and_nothing_else_is_corrupt() {
    let chip = chip();
    let mut s = store(chip);
    s.save(&record(10, 1)).unwrap();
    chip.flip_bits(SECTOR as usize + 4, 0x02); // version 1 -> 3
    assert_eq!(load(chip), Err(StoreError::Corrupt));
}

#[test]
fn erase_forgets_the_record() {
    let chip = chip();
    let mut s = store(chip);
    s.save(b"one").unwrap();
    s.save(b"two").unwrap();
    s.erase().unwrap();
    assert_eq!(load(chip).unwrap(), None);
    s.save(b"three").unwrap();
    assert_eq!(load(chip).unwrap().as_deref(), Some(&b"three"[..]));
}

#[test]
fn sequence_numbers_compare_across_the_wrap() {
    assert!(is_newer(1, 0));
    assert!(!is_newer(0, 1));
    assert!(!is_newer(5, 5));
    assert!(is_newer(0, u32::MAX));
    assert!(!is_newer(u32::MAX, 0));
}

#[test]
fn regions_that_do_not_fit_the_chip_are_refused() {
    let chip = chip();
    let layout = |offset, slot_len| {
        FlashStore::new(chip.flash(), offset, slot_len)
            .map(|_| ())
            .unwrap_err()
    };
    assert_eq!(
        layout(100, SECTOR),
        Error::FlashLayout(FlashLayoutError::NotSectorAligned)
    );
    assert_eq!(
        layout(0, SECTOR + 4),
        Error::FlashLayout(FlashLayoutError::NotSectorAligned)
    );
    assert_eq!(
        layout(0, 0),
        Error::FlashLayout(FlashLayoutError::NotSectorAligned)
    );
    assert_eq!(
        layout(SECTOR, 2 * SECTOR),
        Error::FlashLayout(FlashLayoutError::OutOfBounds)
    );
    assert!(FlashStore::new(chip.flash(), 0, 2 * SECTOR).is_ok());
}

#[test]
fn a_session_resumes_from_flash() {
    let chip = chip();
    let at = Instant::from_micros;
    let mut alice = Session::create(
        SatsumaCrypto::from_seed([1; 32]),
        MemberInfo::new("Alice", "door").unwrap(),
        SessionConfig::default(),
        store(chip),
    )
    .unwrap();
    alice.create_group(at(0), b"room").unwrap();
    let fingerprint = alice.fingerprint();
    let safety = alice.safety_number().unwrap();
    drop(alice);

    let alice = Session::resume(
        at(1),
        SatsumaCrypto::from_seed([2; 32]),
        SessionConfig::default(),
        store(chip),
    )
    .unwrap();
    assert_eq!(alice.fingerprint(), fingerprint);
    assert_eq!(alice.safety_number().unwrap(), safety);
    assert_eq!(alice.epoch(), Some(0));
    assert_eq!(chip.refused_writes(), 0);
}
