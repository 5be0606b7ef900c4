//! One member of a 16-member group: what the intercom's RAM must hold.
//!
//! Fifteen members (A and fourteen others) run in this same binary, in RAM
//! only; the measured member M keeps its state in flash. The heap is shared,
//! so M's share is counted by difference, only while M itself runs:
//!
//! - **held**: after each of M's operations, the heap in use minus what was
//!   in use just before it, less the bytes of the message it returned for
//!   the driver to send (a key package, a commit; as the heap counts them,
//!   rounded up); summed over M's operations. Nobody else runs inside them, and inputs (a Welcome, a
//!   commit, frames) are the driver's, allocated before, so this is exactly
//!   what M's state keeps. Dropping M frees it all, which the run checks.
//! - **peak**: during one operation, M's held bytes before it plus the most
//!   bytes in use at once on top of what was in use before it: what M would
//!   need at its worst moment if it were alone on the board. The message
//!   being handled is the driver's and not included; its size is printed.
//! - **stack**: the deepest the operation went below the caller's stack
//!   pointer.

use alloc::format;
use alloc::vec::Vec;

use cortex_m_semihosting::hprintln;
use satsuma_board_mps2_an386::{Blocks, HEAP, measure_blocks};
use satsuma_core::Instant;
use satsuma_core::mls::{
    Commit, Event, MemberInfo, MemoryStore, SatsumaCrypto, Session, SessionConfig, SessionError,
    Store, Trust,
};
use satsuma_intercom::FlashStore;

use crate::checks::{Failed, check, need};
use crate::{Chip, Flash, M_REGION, M_SLOT, WIRE_LEN, frame, open, seal};

/// The operation after which M's state is what it holds through a call:
/// one epoch's keys, every sender heard.
pub const STEADY: &str = "timers: the previous epoch's keys go";

/// Members besides M.
const OTHERS: usize = 15;

/// Seed of member `i`'s crypto provider (M is 15): fixed so every run is
/// the same. A real board seeds from its hardware RNG (the Nucleo's RNG
/// peripheral); the firmware never calls getrandom.
fn seed(i: u8) -> [u8; 32] {
    [0x40 + i; 32]
}

/// One of M's operations, as measured.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// What M did.
    pub what: &'static str,
    /// Whether M did it as the committer (its own commit and applying it).
    pub committing: bool,
    /// Heap M's state held after it.
    pub held: isize,
    /// M's held heap before it plus the most it allocated on top.
    pub peak: isize,
    /// Stack it used below the caller.
    pub stack: usize,
    /// The blocks it allocated, at its peak and at its end.
    pub blocks: Blocks,
}

/// What the 16-member run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// M's operations in order.
    pub rows: Vec<Row>,
    /// Bytes of the Welcome M joined with.
    pub welcome: usize,
    /// Bytes of the commit M processed with frames flowing.
    pub commit: usize,
    /// Bytes of M's saved state in the group.
    pub record: usize,
    /// Bytes of M's saved state while its own commit was pending.
    pub record_pending: usize,
    /// Record bytes one of M's flash slots holds.
    pub capacity: usize,
    /// Heap left allocated once M was dropped (0: nothing was missed).
    pub leftover: isize,
}

impl Report {
    /// M's largest peak and the operation it was in, among the operations
    /// of a committer (`true`) or of a member that never commits.
    pub fn peak(&self, committing: bool) -> Option<&Row> {
        self.rows
            .iter()
            .filter(|r| r.committing == committing)
            .max_by_key(|r| r.peak)
    }

    /// The deepest stack of M's operations.
    pub fn stack(&self) -> usize {
        self.rows.iter().map(|r| r.stack).max().unwrap_or(0)
    }

    /// M's held heap after the last operation named `what`.
    pub fn held_after(&self, what: &str) -> Option<isize> {
        self.rows
            .iter()
            .rev()
            .find(|r| r.what == what)
            .map(|r| r.held)
    }
}

/// Measures M's operations, keeping its running total.
struct Meter<'a> {
    report: &'a mut Report,
    held: isize,
}

impl Meter<'_> {
    /// Runs one of M's operations; `sent` says how many heap bytes of its
    /// result are a message for the driver rather than M's state.
    fn op<T>(
        &mut self,
        what: &'static str,
        work: impl FnOnce() -> T,
        sent: impl Fn(&T) -> usize,
    ) -> T {
        self.record(what, false, work, sent)
    }

    /// [`Meter::op`] for what M does as the committer.
    fn op_as_committer<T>(
        &mut self,
        what: &'static str,
        work: impl FnOnce() -> T,
        sent: impl Fn(&T) -> usize,
    ) -> T {
        self.record(what, true, work, sent)
    }

    fn record<T>(
        &mut self,
        what: &'static str,
        committing: bool,
        work: impl FnOnce() -> T,
        sent: impl Fn(&T) -> usize,
    ) -> T {
        let (out, usage, blocks) = measure_blocks(work);
        let peak = self.held + usage.heap_growth().cast_signed();
        self.held += usage.heap_kept() - sent(&out).cast_signed();
        self.report.rows.push(Row {
            what,
            committing,
            held: self.held,
            peak,
            stack: usage.stack,
            blocks,
        });
        out
    }
}

fn no_message<T>(_: &T) -> usize {
    0
}

fn commit_bytes(commit: &Result<Commit, impl Sized>) -> usize {
    commit.as_ref().map_or(0, |c| {
        HEAP.counted(c.commit.capacity())
            + c.welcome.as_ref().map_or(0, |w| HEAP.counted(w.capacity()))
    })
}

fn m_store(chip: &'static Chip) -> Result<FlashStore<Flash>, Failed> {
    need(
        "M's flash store fits the chip",
        FlashStore::new(chip.flash(), M_REGION, M_SLOT),
    )
}

/// Builds the group and runs M through it.
pub fn run(chip: &'static Chip) -> Result<Report, Failed> {
    hprintln!();
    hprintln!(
        "== one member (M) of a 16-member group; {} others in the same binary",
        OTHERS
    );
    let mut report = Report::default();
    let result = scenario(chip, &mut report);
    result.map(|()| report)
}

fn scenario(chip: &'static Chip, report: &mut Report) -> Result<(), Failed> {
    let config = satsuma_intercom::intercom_session_config();
    let mut others = form_group(config)?;

    // The timeline: one commit every 20 s, frames in between, and M's
    // timers run 10 s after each commit (after the 3 s grace period), as
    // its run loop would.
    let mut meter = Meter { report, held: 0 };
    // The store allocates nothing; M's name and everything else is M's.
    let store = m_store(chip)?;
    let created = meter.op(
        "create (identity, flash store)",
        || {
            let info = MemberInfo::new("Door", "intercom-16")?;
            Session::create(SatsumaCrypto::from_seed(seed(15)), info, config, store)
        },
        no_message,
    );
    let mut m = need("M is created with its state in flash", created)?;
    let key_package = meter.op(
        "publish a key package",
        || m.key_package(),
        |kp| kp.as_ref().map_or(0, |kp| HEAP.counted(kp.capacity())),
    );
    let key_package = need("M publishes a key package", key_package)?;

    let t = secs(20);
    let add = need("A commits adding M", others[0].commit(&[&key_package], &[]))?;
    need("A applies its commit", others[0].apply_pending_commit(t))?;
    for member in &mut others[1..] {
        need(
            "a member processes A's commit",
            member.process(t, &add.commit),
        )?;
    }
    let welcome = add.welcome.unwrap_or_default();
    meter.report.welcome = welcome.len();
    let joined = meter.op(
        "join from a Welcome with the 16-leaf tree",
        || m.join(t, &welcome),
        no_message,
    );
    need("M joins from the Welcome", joined)?;
    drop(welcome);
    // What the intercom logs: each other member's fingerprint, and whether
    // it saw that identity before (never, on a first join).
    let first_seen = meter.op(
        "log the others' fingerprints (introductions)",
        || {
            let mut first_seen = 0;
            while let Some(seen) = m.poll_introduction() {
                first_seen += usize::from(seen.trust == Trust::FirstSeen);
            }
            first_seen
        },
        no_message,
    );
    check(
        first_seen == 15,
        format_args!("M is told of the 15 others, each seen for the first time"),
    )?;
    same_state(&others, &m, 2)?;

    // Epoch 3: A refreshes its keys; M processes the commit before any
    // frame has reached it.
    let commit = commit_by_other(&mut others, 0, secs(40))?;
    let event = meter.op(
        "process a commit (A's self-update)",
        || m.process(secs(40), &commit),
        no_message,
    );
    check_new_epoch(event, &commit, 3, 0)?;
    same_state(&others, &m, 3)?;
    frames(&mut meter, &mut others, &mut m, 100)?;
    meter.op(STEADY, || m.handle_timeout(secs(50)), no_message);

    // Epoch 4: member 5 refreshes; M processes it while holding the keys
    // of every sender, and then hears everyone in the new epoch.
    let commit = commit_by_other(&mut others, 5, secs(60))?;
    meter.report.commit = commit.len();
    let event = meter.op(
        "process a commit (member 5's), frames flowing",
        || m.process(secs(60), &commit),
        no_message,
    );
    check_new_epoch(event, &commit, 4, 5)?;
    same_state(&others, &m, 4)?;
    frames(&mut meter, &mut others, &mut m, 200)?;
    meter.op(STEADY, || m.handle_timeout(secs(70)), no_message);

    // Epoch 5: M is the committer.
    let commit = meter.op_as_committer(
        "commit a self-update (M as committer)",
        || m.self_update(),
        commit_bytes,
    );
    let commit = need("M commits a self-update", commit)?;
    let pending = need("M's state loads from flash", m_store(chip)?.load())?;
    meter.report.record_pending = pending.as_ref().map_or(0, |r| r.len());
    drop(pending);
    for member in &mut others {
        need(
            "a member processes M's commit",
            member.process(secs(80), &commit.commit),
        )?;
    }
    let applied = meter.op_as_committer(
        "apply its own commit",
        || m.apply_pending_commit(secs(80)),
        no_message,
    );
    need("M applies its commit", applied)?;
    drop(commit);
    same_state(&others, &m, 5)?;
    frames(&mut meter, &mut others, &mut m, 300)?;
    meter.op(STEADY, || m.handle_timeout(secs(90)), no_message);

    let record = need("M's state loads from flash", m_store(chip)?.load())?;
    meter.report.record = record.as_ref().map_or(0, |r| r.len());
    drop(record);
    meter.report.capacity = m_store(chip)?.capacity();

    let safety = need("M's safety number", m.safety_number())?;
    meter.op("power off (drop)", || drop(m), no_message);
    meter.report.leftover = meter.held;
    check(
        meter.held == 0,
        format_args!("dropping M freed all it held ({} bytes left)", meter.held),
    )?;
    let store = m_store(chip)?;
    let resumed = meter.op(
        "resume from flash",
        || Session::resume(secs(100), SatsumaCrypto::from_seed(seed(31)), config, store),
        no_message,
    );
    let mut m = need("M resumes from flash", resumed)?;
    check(
        m.safety_number().ok() == Some(safety),
        format_args!("after the restart M shows the same safety number {safety}"),
    )?;
    let mut wire = [0u8; WIRE_LEN];
    let n = need("A seals a frame", seal(&mut others[0], 400, &mut wire))?;
    let got = meter.op(
        "open a frame after the restart",
        || open(&mut m, &wire[..n]),
        no_message,
    );
    check(
        got == Ok(frame(400)),
        format_args!("after the restart M opens A's frame"),
    )?;
    let n = meter.op(
        "seal a frame after the restart",
        || seal(&mut m, 401, &mut wire),
        no_message,
    );
    let n = need("M seals a frame after the restart", n)?;
    check(
        open(&mut others[0], &wire[..n]) == Ok(frame(401)),
        format_args!("after the restart A opens M's frame"),
    )?;
    check(
        chip.refused_writes() == 0,
        format_args!(
            "M's flash store never wrote a bit without an erase ({} sector erases in all)",
            chip.erases()
        ),
    )?;
    Ok(())
}

/// `s` seconds after the start.
fn secs(s: u64) -> Instant {
    Instant::from_millis(s * 1000)
}

/// A and fourteen others, in the group at epoch 1.
fn form_group(config: SessionConfig) -> Result<Vec<Session>, Failed> {
    let mut others = Vec::with_capacity(OTHERS);
    for i in 0..OTHERS {
        let name = format!("member-{i:02}");
        let info = need("a member's name", MemberInfo::new(&name, "desk"))?;
        let i = u8::try_from(i).unwrap_or(u8::MAX);
        others.push(need(
            "a member is created",
            Session::create(
                SatsumaCrypto::from_seed(seed(i)),
                info,
                config,
                MemoryStore::new(),
            ),
        )?);
    }
    let (a, rest) = others.split_first_mut().ok_or(Failed)?;
    need(
        "A creates the group",
        a.create_group(Instant::from_millis(0), b"big-room"),
    )?;
    let mut key_packages = Vec::with_capacity(rest.len());
    for member in rest.iter_mut() {
        key_packages.push(need(
            "a member publishes a key package",
            member.key_package(),
        )?);
    }
    let refs: Vec<&[u8]> = key_packages.iter().map(Vec::as_slice).collect();
    let add = need("A commits adding 14 members", a.commit(&refs, &[]))?;
    need(
        "A applies its commit",
        a.apply_pending_commit(Instant::from_millis(0)),
    )?;
    let welcome = add.welcome.unwrap_or_default();
    for member in rest.iter_mut() {
        need(
            "a member joins",
            member.join(Instant::from_millis(0), &welcome),
        )?;
    }
    check(
        others.iter().all(|m| m.epoch() == Some(1)),
        format_args!("15 members are in the group at epoch 1"),
    )?;
    Ok(others)
}

/// Member `who` commits a self-update at `now` and every other member
/// except M processes it; returns the commit for M.
fn commit_by_other(others: &mut [Session], who: usize, now: Instant) -> Result<Vec<u8>, Failed> {
    let committer = others.get_mut(who).ok_or(Failed)?;
    let commit = need("a member commits a self-update", committer.self_update())?;
    need(
        "the committer applies it",
        committer.apply_pending_commit(now),
    )?;
    for (i, member) in others.iter_mut().enumerate() {
        if i != who {
            need(
                "a member processes the commit",
                member.process(now, &commit.commit),
            )?;
        }
    }
    Ok(commit.commit)
}

fn check_new_epoch(
    event: Result<Event, SessionError>,
    commit: &[u8],
    epoch: u64,
    committer: u32,
) -> Result<(), Failed> {
    let event = need("M processes the commit", event)?;
    check(
        event == (Event::NewEpoch { epoch, committer }),
        format_args!(
            "M moves to epoch {epoch} with member {committer}'s commit ({} bytes)",
            commit.len()
        ),
    )
}

/// M seals frame `n`, which every other member opens; every other member
/// seals one, which M opens.
fn frames(
    meter: &mut Meter<'_>,
    others: &mut [Session],
    m: &mut Session,
    n: usize,
) -> Result<(), Failed> {
    let mut wire = [0u8; WIRE_LEN];
    let sealed = meter.op("seal a PCMU frame", || seal(m, n, &mut wire), no_message);
    let sealed = need("M seals a frame", sealed)?;
    check(
        others
            .iter_mut()
            .all(|o| open(o, &wire[..sealed]) == Ok(frame(n))),
        format_args!("all 15 other members open M's frame"),
    )?;
    let mut wires = Vec::with_capacity(others.len());
    for (i, member) in others.iter_mut().enumerate() {
        let mut wire = [0u8; WIRE_LEN];
        let len = need("a member seals a frame", seal(member, n + 1 + i, &mut wire))?;
        wires.push((wire, len));
    }
    let opened = meter.op(
        "open one frame from each of the 15 others",
        || {
            wires
                .iter()
                .enumerate()
                .filter(|(i, (wire, len))| open(m, &wire[..*len]) == Ok(frame(n + 1 + i)))
                .count()
        },
        no_message,
    );
    check(
        opened == OTHERS,
        format_args!("M opens the frames of all 15 others ({opened} did)"),
    )
}

/// Checks that M and the others share the epoch and the safety number.
fn same_state(others: &[Session], m: &Session, epoch: u64) -> Result<(), Failed> {
    let safety = need("M's safety number", m.safety_number())?;
    check(
        m.epoch() == Some(epoch)
            && others
                .iter()
                .all(|o| o.epoch() == Some(epoch) && o.safety_number().ok() == Some(safety)),
        format_args!("all 16 members are in epoch {epoch} with safety number {safety}"),
    )
}
