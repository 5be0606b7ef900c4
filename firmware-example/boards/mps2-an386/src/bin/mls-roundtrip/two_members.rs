//! Two members, A (say, a desktop) and B (the intercom, state in flash):
//! A creates the group and adds B, both see the same epoch and safety
//! number, PCMU frames go both ways, B restarts from flash and carries on,
//! then A removes B, who can no longer open A's frames.

use cortex_m_semihosting::hprintln;
use satsuma_board_mps2_an386::{Usage, measure};
use satsuma_core::Instant;
use satsuma_core::mls::{Event, MemberInfo, MemoryStore, SatsumaCrypto, Session, Store};
use satsuma_intercom::FlashStore;

use crate::checks::{Failed, check, need};
use crate::{B_REGION, Chip, Flash, SECTOR, WIRE_LEN, exchange, open, seal};

/// Seeds of the members' crypto providers: fixed here so every run is the
/// same. A real board seeds from its hardware RNG (the Nucleo's RNG
/// peripheral) at every boot; the firmware never calls getrandom.
const SEED_A: [u8; 32] = [0xA0; 32];
const SEED_B: [u8; 32] = [0xB0; 32];
/// B after its restart: a fresh boot draws a fresh seed.
const SEED_B_RESTARTED: [u8; 32] = [0xB1; 32];

/// What the round trip measured.
#[derive(Debug)]
pub struct Report {
    /// Heap and stack of the whole round trip, both members included.
    pub usage: Usage,
    /// Bytes of B's saved state after it joined.
    pub b_record: usize,
    /// Record bytes one of B's flash slots holds.
    pub b_capacity: usize,
}

/// Runs the round trip, measured as a whole.
pub fn run(chip: &'static Chip) -> Result<Report, Failed> {
    hprintln!();
    hprintln!("== two members: MLS + SFrame, PCMU 20 ms frames (160 bytes)");
    let (result, usage) = measure(|| round_trip(chip));
    let (b_record, b_capacity) = result?;
    Ok(Report {
        usage,
        b_record,
        b_capacity,
    })
}

fn b_store(chip: &'static Chip) -> Result<FlashStore<Flash>, Failed> {
    need(
        "B's flash store fits the chip",
        FlashStore::new(chip.flash(), B_REGION, SECTOR),
    )
}

fn round_trip(chip: &'static Chip) -> Result<(usize, usize), Failed> {
    let config = satsuma_intercom::intercom_session_config();
    let mut a = need(
        "A is created",
        Session::create(
            SatsumaCrypto::from_seed(SEED_A),
            need("A's name", MemberInfo::new("Alice", "desk"))?,
            config,
            MemoryStore::new(),
        ),
    )?;
    let mut b = need(
        "B is created with its state in flash",
        Session::create(
            SatsumaCrypto::from_seed(SEED_B),
            need("B's name", MemberInfo::new("Door", "intercom-1"))?,
            config,
            b_store(chip)?,
        ),
    )?;

    need(
        "A creates the group",
        a.create_group(Instant::from_millis(0), b"front-door"),
    )?;
    let key_package = need("B publishes a key package", b.key_package())?;
    let add = need("A commits adding B", a.commit(&[&key_package], &[]))?;
    let welcome = add.welcome.as_deref().unwrap_or_default();
    check(
        !welcome.is_empty(),
        format_args!(
            "A's commit ({} bytes) comes with a Welcome for B ({} bytes)",
            add.commit.len(),
            welcome.len()
        ),
    )?;
    need(
        "A applies its commit",
        a.apply_pending_commit(Instant::from_millis(1)),
    )?;
    need(
        "B joins from the Welcome",
        b.join(Instant::from_millis(2), welcome),
    )?;
    check(
        a.epoch() == Some(1) && b.epoch() == Some(1),
        format_args!("A and B are both in epoch {:?}", b.epoch()),
    )?;
    let safety = need("A's safety number", a.safety_number())?;
    check(
        b.safety_number().ok() == Some(safety),
        format_args!("A and B show the same safety number {safety}"),
    )?;
    let roster = b.roster();
    check(
        roster.len() == 2
            && roster[0].fingerprint == a.fingerprint()
            && roster[1].fingerprint == b.fingerprint(),
        format_args!("B's roster lists A and B with their fingerprints"),
    )?;

    check(
        exchange(&mut a, &mut b, 1),
        format_args!("a PCMU frame sealed by A opens at B, unchanged"),
    )?;
    check(
        exchange(&mut b, &mut a, 2),
        format_args!("a PCMU frame sealed by B opens at A, unchanged"),
    )?;

    // B loses power: everything it knows is in flash.
    let kid_before = b.keyring().sending_kid();
    let fingerprint = b.fingerprint();
    drop(b);
    let record = need("B's state loads from flash", b_store(chip)?.load())?;
    let b_record = record.as_ref().map_or(0, |r| r.len());
    drop(record);
    let b_capacity = b_store(chip)?.capacity();
    let mut b = need(
        "B resumes from flash after a restart",
        Session::resume(
            Instant::from_millis(3),
            SatsumaCrypto::from_seed(SEED_B_RESTARTED),
            config,
            b_store(chip)?,
        ),
    )?;
    check(
        b.fingerprint() == fingerprint
            && b.epoch() == Some(1)
            && b.safety_number().ok() == Some(safety),
        format_args!(
            "B after the restart: same identity, epoch and safety number ({b_record}-byte record)"
        ),
    )?;
    let kid_after = b.keyring().sending_kid();
    check(
        kid_after.is_some() && kid_after != kid_before,
        format_args!("B sends on a new KID after the restart ({kid_before:?} -> {kid_after:?})"),
    )?;
    check(
        exchange(&mut a, &mut b, 3),
        format_args!("after B's restart, A's frame opens at B"),
    )?;
    check(
        exchange(&mut b, &mut a, 4),
        format_args!("after B's restart, B's frame opens at A"),
    )?;

    let remove = need("A commits removing B", a.commit(&[], &[1]))?;
    need(
        "A applies the removal",
        a.apply_pending_commit(Instant::from_millis(4)),
    )?;
    let event = need(
        "B processes A's commit",
        b.process(Instant::from_millis(4), &remove.commit),
    )?;
    check(
        event == Event::Removed { by: 0 } && b.epoch().is_none(),
        format_args!("B learns it was removed by A ({event:?})"),
    )?;
    let mut wire = [0u8; WIRE_LEN];
    let sealed = need("A seals a frame in epoch 2", seal(&mut a, 5, &mut wire))?;
    check(
        open(&mut b, &wire[..sealed]).is_err(),
        format_args!("B cannot open A's next frame"),
    )?;
    check(
        chip.refused_writes() == 0,
        format_args!("B's flash store never wrote a bit without an erase"),
    )?;
    Ok((b_record, b_capacity))
}
