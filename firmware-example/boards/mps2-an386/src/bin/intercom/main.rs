//! The door intercom on QEMU's `mps2-an386`: a full MLS member of a real
//! call, over the SFU's intercom link.
//!
//! It brings up the LAN9118 under embassy-net, gets an address by DHCP,
//! connects to the SFU's intercom link on the host (10.0.2.2, QEMU's name
//! for the host's loopback), asks the SFU for the time, joins the room,
//! and then every 20 ms sends a tone as SFrame-sealed G.711 µ-law or
//! G.722. What it hears, in either, it opens, decodes, checksums and
//! measures per member, once a second (`satsuma_intercom::Intercom`). A
//! lost link is resumed, or the room joined afresh, after a backoff.
//!
//! The command line (semihosting) is `intercom PORT ROOM TONE_HZ SECONDS
//! [pcmu|g722 [STATE_FILE]]`: the SFU's intercom port, the room, the
//! tone, how long to stay (0: for ever), the codec it sends in (G.711
//! µ-law unless told), and the host file its flash store is kept in
//! between boots (else a new identity at each boot). After SECONDS it
//! leaves, prints what it used, and exits 0; 1 if it never joined. `scripts/run-intercom-qemu.sh` runs it in a call
//! with the SFU and a desktop client.
//!
//! Its log is `defmt`'s, on QEMU's standard error (the board's logger),
//! which `defmt-print` decodes. Every line starts with `intercom:`; the ones the test reads
//! are `joined`, `epoch N safety number ...`, `heard leaf ...` and `sent`.
#![no_std]
#![no_main]

use core::fmt;
use core::mem::MaybeUninit;

use defmt::{Display2Format, info, warn};
use embassy_executor::Spawner;
use embassy_futures::select::{Either3, select3};
use embassy_net::tcp::TcpSocket;
use embassy_net::{Config, Ipv4Address, Runner, Stack, StackResources};
use embassy_time::{Duration, Instant, Timer};
use satsuma_board_mps2_an386::lan9118::Buffers;
use satsuma_board_mps2_an386::{self as board, Lan9118, Stop, host};
use satsuma_core::committer::Status;
use satsuma_core::mls::{MemberInfo, SatsumaCrypto, Session, Store as _};
use satsuma_core::wire::{MediaRef, RoomName};
use satsuma_intercom::audio::{FRAME, Voice};
use satsuma_intercom::log::Logged;
use satsuma_intercom::tcp::{RX_BUFFER, TX_BUFFER, flush, read_into, write_all};
use satsuma_intercom::{
    EMULATED_ERASE_SIZE, EmulatedChip, FlashStore, Inbox, Intercom, IntercomConfig, inbox,
};
use static_cell::{ConstStaticCell, StaticCell};

/// Sockets: DHCP's and the link's.
const SOCKETS: usize = 2;
/// The host, as QEMU's user-mode network names it.
const HOST: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
/// The heap: MLS state, key packages, commits being built.
const HEAP: usize = 160 * 1024;
/// Waits between attempts to reach the SFU, doubling up to the last.
const BACKOFF: [u64; 5] = [250, 500, 1_000, 2_000, 4_000];

static RESOURCES: ConstStaticCell<StackResources<SOCKETS>> =
    ConstStaticCell::new(StackResources::new());
static NIC_BUFFERS: ConstStaticCell<Buffers> = ConstStaticCell::new(Buffers::new());
static TCP_RX: ConstStaticCell<[u8; RX_BUFFER]> = ConstStaticCell::new([0; RX_BUFFER]);
static TCP_TX: ConstStaticCell<[u8; TX_BUFFER]> = ConstStaticCell::new([0; TX_BUFFER]);
/// One message from the SFU, as it arrives.
static INBOX: ConstStaticCell<[u8; inbox::BUFFER]> = ConstStaticCell::new([0; inbox::BUFFER]);
/// The intercom: the member and its call (see [`open_door`]).
static DOOR: StaticCell<Intercom> = StaticCell::new();
static HEAP_MEMORY: ConstStaticCell<[MaybeUninit<u8>; HEAP]> =
    ConstStaticCell::new([MaybeUninit::uninit(); HEAP]);
/// One slot of the member's store: a sector, which holds a 16-member
/// room's state (4.8 KB, README) three times over.
const STORE_SLOT: u32 = 16 * 1024;
const _: () = assert!(STORE_SLOT as usize == EMULATED_ERASE_SIZE);
/// The emulated flash the store's two slots live in
/// (`scripts/intercom_budget.py` counts it as flash, by this name).
static STORE_CHIP: EmulatedChip<{ 2 * EMULATED_ERASE_SIZE }> = EmulatedChip::new();

#[embassy_executor::task]
async fn net(mut runner: Runner<'static, Lan9118<'static>>) -> ! {
    runner.run().await
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    board::time::start();
    board::on_stop(report_stop);
    let joined = match run(spawner).await {
        Ok(joined) => joined,
        Err(why) => {
            warn!("intercom: FAILED: {}", Display2Format(&why));
            false
        }
    };
    let (stack, _) = board::stack_high_water();
    info!(
        "intercom: memory: heap peak {=usize} bytes of {=usize}, stack high-water {=usize} bytes",
        board::HEAP.reset_peak(),
        HEAP,
        stack
    );
    board::exit(joined)
}

/// What the command line says.
struct Args<'a> {
    port: u16,
    room: &'a str,
    tone: u32,
    seconds: u64,
    voice: Voice,
    /// The host file the member's flash store is kept in, if any.
    state: Option<&'a str>,
}

fn args(line: &str) -> Result<Args<'_>, &'static str> {
    let mut words = line.split_whitespace().skip(1);
    let usage = "usage: intercom PORT ROOM TONE_HZ SECONDS [pcmu|g722 [STATE_FILE]]";
    let port = words.next().and_then(|w| w.parse().ok()).ok_or(usage)?;
    let room = words.next().ok_or(usage)?;
    let tone = words.next().and_then(|w| w.parse().ok()).ok_or(usage)?;
    let seconds = words.next().and_then(|w| w.parse().ok()).ok_or(usage)?;
    let voice = match words.next() {
        None => Voice::Pcmu,
        Some(name) => Voice::from_name(name).ok_or(usage)?,
    };
    let state = words.next();
    Ok(Args {
        port,
        room,
        tone,
        seconds,
        voice,
        state,
    })
}

/// Runs the call; whether the intercom got into the group.
async fn run(spawner: Spawner) -> Result<bool, Failure> {
    let mut line = [0u8; 256];
    let line = host::command_line(&mut line).map_err(Failure::Board)?;
    let args = args(line).map_err(Failure::Usage)?;
    board::init_heap(HEAP_MEMORY.try_take().ok_or(Failure::Twice)?);

    // One seed from the host: the stack's sequence numbers, and the
    // member's CSPRNG (a board draws it from its hardware RNG).
    let seed = host::seed().map_err(Failure::Board)?;
    let [s0, s1, s2, s3, s4, s5, s6, s7, ..] = *seed.expose();
    let stack_seed = u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);
    let crypto = SatsumaCrypto::from_seed(*seed.expose());
    drop(seed);

    let stack = start_network(spawner, stack_seed)?;
    stack.wait_config_up().await;
    if let Some(lease) = stack.config_v4() {
        info!(
            "intercom: DHCP lease {} after {=u64} ms",
            Display2Format(&lease.address),
            Instant::now().as_millis()
        );
    }

    let room = RoomName::new(args.room).map_err(|_| Failure::Usage("a room name of 1-64 bytes"))?;
    let mut persist = Persist::new(args.state);
    let door = open_door(
        crypto,
        &mut persist,
        IntercomConfig {
            room,
            voice: args.voice,
            tone_hz: args.tone,
            report_every: core::time::Duration::from_secs(1),
        },
    )?;
    let until = (args.seconds > 0).then(|| Instant::now() + Duration::from_secs(args.seconds));
    let mut inbox = Inbox::new(INBOX.try_take().ok_or(Failure::Twice)?, inbox::LARGEST);
    let mut socket = TcpSocket::new(
        stack,
        TCP_RX.try_take().ok_or(Failure::Twice)?,
        TCP_TX.try_take().ok_or(Failure::Twice)?,
    );
    let mut attempt = 0;
    let mut unreachable = 0usize;
    let mut joined = false;
    let mut counts = Counts::default();
    loop {
        if until.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        match call(
            &mut socket,
            door,
            &mut inbox,
            args.port,
            until,
            &mut counts,
            &mut persist,
        )
        .await
        {
            Ended::Time => break,
            Ended::Unreachable => {
                // The first failure of a run, then one line a minute.
                if unreachable.is_multiple_of(16) {
                    info!(
                        "intercom: cannot reach the SFU at {}:{=u16} (attempt {=usize}); retrying",
                        Display2Format(&HOST),
                        args.port,
                        unreachable + 1
                    );
                }
                unreachable += 1;
            }
            Ended::Link(why) => {
                info!("intercom: link lost: {=str}", why);
                door.link_down(now());
                // It was up: the next attempt is the first of a new run.
                attempt = 0;
                unreachable = 0;
            }
        }
        joined |= in_call(door);
        socket.abort();
        let _ = socket.flush().await;
        let wait = BACKOFF[attempt.min(BACKOFF.len() - 1)];
        attempt += 1;
        Timer::after_millis(wait).await;
    }
    joined |= in_call(door);
    if door.member().status() == Status::InGroup {
        leave(&mut socket, door).await;
    }
    info!("intercom: sent {=u32} frames", door.sent());
    info!(
        "intercom: allocations: {=usize} in sending {=usize} audio frames, {=usize} in opening {=usize} received",
        counts.sent_allocs, counts.sent, counts.heard_allocs, counts.heard
    );
    if let Some(at) = door.first_heard() {
        info!(
            "intercom: first frame heard {=u64} ms after power-on",
            at.as_micros() / 1000
        );
    }
    Ok(joined)
}

/// The LAN9118 under embassy-net, its task started; the stack it serves.
/// Not inlined: the network stack's state is built here, not in the main
/// task's stack frame.
#[inline(never)]
fn start_network(spawner: Spawner, seed: u64) -> Result<Stack<'static>, Failure> {
    let nic =
        Lan9118::new(NIC_BUFFERS.try_take().ok_or(Failure::Twice)?).map_err(Failure::Board)?;
    let resources = RESOURCES.try_take().ok_or(Failure::Twice)?;
    let (stack, runner) =
        embassy_net::new(nic, Config::dhcpv4(Default::default()), resources, seed);
    spawner.spawn(net(runner).map_err(|_| Failure::Twice)?);
    Ok(stack)
}

/// The intercom, built in its static: the member (resumed or new) and
/// its call. Not inlined, so that the session and the intercom, each
/// over a kilobyte, pass through this function's stack frame at boot and
/// not through the main task's, which stays under every message handled.
#[inline(never)]
fn open_door(
    crypto: SatsumaCrypto,
    persist: &mut Persist<'_>,
    config: IntercomConfig,
) -> Result<&'static mut Intercom, Failure> {
    let session = open_session(crypto, persist)?;
    satsuma_intercom::log::identity(&session.fingerprint());
    DOOR.try_init_with(|| Intercom::new(session, config))
        .ok_or(Failure::Twice)
}

/// The member: the one kept in the store (the host file), resumed; or a
/// new one, saved there. Its state goes to a two-slot store, as on a
/// board with flash, not to a copy on the heap. This board has no flash
/// controller: the chip is emulated in RAM and kept in a host file between
/// boots (when the command line names one), and the budget counts it as
/// flash, not RAM.
#[inline(never)]
fn open_session(crypto: SatsumaCrypto, persist: &mut Persist<'_>) -> Result<Session, Failure> {
    let config = satsuma_intercom::intercom_session_config();
    persist.load();
    let mut store =
        FlashStore::new(STORE_CHIP.flash(), 0, STORE_SLOT).map_err(|_| Failure::Session)?;
    let mut crypto = Some(crypto);
    match store.load() {
        Ok(Some(record)) => {
            info!(
                "intercom: resuming the member kept in its store ({=usize} bytes)",
                record.len()
            );
            drop(record);
            let resumed = crypto.take().ok_or(Failure::Session).and_then(|c| {
                Session::resume(now(), c, config, store).map_err(|_| Failure::Session)
            });
            match resumed {
                Ok(session) => {
                    persist.sync();
                    return Ok(session);
                }
                Err(_) => warn!("intercom: the kept member cannot be resumed: a new identity"),
            }
        }
        Ok(None) => info!("intercom: no member kept: a new identity"),
        Err(e) => warn!(
            "intercom: the store is unreadable ({}): a new identity",
            Display2Format(&e)
        ),
    }
    // A fresh member on an erased store: no key of the old one stays.
    let crypto = match crypto {
        Some(crypto) => crypto,
        // The first seed went to the failed resume: a new one.
        None => SatsumaCrypto::from_seed(*host::seed().map_err(Failure::Board)?.expose()),
    };
    let mut fresh =
        FlashStore::new(STORE_CHIP.flash(), 0, STORE_SLOT).map_err(|_| Failure::Session)?;
    fresh.erase().map_err(|_| Failure::Session)?;
    let info = MemberInfo::new("Door", "intercom-qemu").map_err(|_| Failure::Usage("name"))?;
    let session = Session::create(crypto, info, config, fresh).map_err(|_| Failure::Session)?;
    persist.sync();
    Ok(session)
}

/// The emulated chip's image in a host file: read at boot, written again
/// whenever the store has changed it.
struct Persist<'a> {
    path: Option<&'a str>,
    /// The chip's erase and program counts at the last write.
    written: (usize, usize),
}

impl<'a> Persist<'a> {
    fn new(path: Option<&'a str>) -> Self {
        Self {
            path,
            written: (0, 0),
        }
    }

    /// The image from the host file, if there is one.
    fn load(&mut self) {
        let Some(path) = self.path else { return };
        let Ok(mut file) = host::HostFile::open(path, false) else {
            return;
        };
        let mut at = 0;
        let mut chunk = [0u8; 512];
        while let Ok(n @ 1..) = file.read(&mut chunk) {
            STORE_CHIP.write_image(at, chunk.get(..n).unwrap_or_default());
            at += n;
        }
        info!(
            "intercom: store read from {=str} ({=usize} bytes)",
            path, at
        );
        self.written = (STORE_CHIP.erases(), STORE_CHIP.programmed());
    }

    /// Writes the image to the host file if the store changed it.
    fn sync(&mut self) {
        let Some(path) = self.path else { return };
        let now = (STORE_CHIP.erases(), STORE_CHIP.programmed());
        if now == self.written {
            return;
        }
        let written = host::HostFile::open(path, true).and_then(|mut file| {
            let mut at = 0;
            let mut chunk = [0u8; 512];
            loop {
                let n = STORE_CHIP.read_image(at, &mut chunk);
                if n == 0 {
                    return Ok(());
                }
                file.write(chunk.get(..n).unwrap_or_default())?;
                at += n;
            }
        });
        match written {
            Ok(()) => self.written = now,
            Err(e) => warn!(
                "intercom: the store's file {=str}: {}",
                path,
                Display2Format(&e)
            ),
        }
    }
}

/// Allocations on the audio path, both ways.
#[derive(Debug, Default)]
struct Counts {
    sent: usize,
    sent_allocs: usize,
    heard: usize,
    heard_allocs: usize,
}

/// Whether the intercom got into the call: in the group, or heard in it.
fn in_call(door: &Intercom) -> bool {
    door.member().status() == Status::InGroup || door.first_heard().is_some()
}

/// Why one link ended.
enum Ended {
    /// The time given on the command line is up.
    Time,
    /// The SFU could not be reached.
    Unreachable,
    /// The link broke, or must be replaced.
    Link(&'static str),
}

fn now() -> satsuma_core::Instant {
    satsuma_core::Instant::from_micros(Instant::now().as_micros())
}

/// One link to the SFU, until it breaks or the time is up.
async fn call(
    socket: &mut TcpSocket<'_>,
    door: &mut Intercom,
    inbox: &mut Inbox<'_>,
    port: u16,
    until: Option<Instant>,
    counts: &mut Counts,
    persist: &mut Persist<'_>,
) -> Ended {
    socket.set_timeout(Some(Duration::from_secs(30)));
    if socket.connect((HOST, port)).await.is_err() {
        return Ended::Unreachable;
    }
    info!(
        "intercom: connected to {}:{=u16}",
        Display2Format(&HOST),
        port
    );
    if door.link_up(now()).is_err() {
        return Ended::Link("no key package");
    }
    let (mut reader, mut writer) = socket.split();
    inbox.clear();
    let mut next_frame = Instant::now();
    let mut out = [0u8; 512];
    let mut speaker = [0i16; FRAME];
    loop {
        if flush(&mut writer, door).await.is_err() {
            return Ended::Link("write failed");
        }
        if log(door) {
            return Ended::Link("the seat is gone: joining afresh");
        }
        persist.sync();
        if until.is_some_and(|t| Instant::now() >= t) {
            return Ended::Time;
        }
        let wake = door
            .poll_timeout()
            .map(|at| Instant::from_micros(at.as_micros()))
            .unwrap_or(Instant::MAX);
        let read = read_into(&mut reader, inbox.space());
        match select3(read, Timer::at(next_frame), Timer::at(wake)).await {
            Either3::First(Err(why)) => return Ended::Link(why),
            Either3::First(Ok(n)) => {
                // Every whole message in the inbox, in order.
                let drained = inbox.drain(n, |message| {
                    let media = MediaRef::is_to_client(message);
                    let before = board::HEAP.allocations();
                    if let Err(e) = door.handle_message(now(), message) {
                        warn!("intercom: a message set aside: {}", Display2Format(&e));
                    }
                    if media {
                        counts.heard += 1;
                        counts.heard_allocs += board::HEAP.allocations() - before;
                    }
                });
                if let Err(e) = drained {
                    warn!("intercom: {}", Display2Format(&e));
                    return Ended::Link("the stream from the SFU cannot be read on");
                }
            }
            Either3::Second(()) => {
                next_frame += Duration::from_millis(20);
                // Behind by more than a frame (a commit takes up to a
                // second in QEMU): the slots missed are skipped, not sent
                // in a burst the desktops' playout would overflow with.
                let late = Instant::now().saturating_duration_since(next_frame);
                next_frame += Duration::from_millis(door.skip_missed(late.as_millis()));
                // The speaker's 20 ms: this board has none, so the
                // intercom only measures what it would play.
                door.speaker_frame(&mut speaker);
                let before = board::HEAP.allocations();
                let frame = door.audio_frame(now(), &mut out);
                if let Ok(Some(_)) = frame {
                    counts.sent += 1;
                    counts.sent_allocs += board::HEAP.allocations() - before;
                }
                match frame {
                    Ok(Some(n)) => {
                        if write_all(&mut writer, &out[..n]).await.is_err() {
                            return Ended::Link("write failed");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => warn!("intercom: a frame not sent: {}", Display2Format(&e)),
                }
            }
            Either3::Third(()) => door.handle_timeout(now()),
        }
    }
}

/// Leaves the room: `Leave` goes out before the link closes.
async fn leave(socket: &mut TcpSocket<'_>, door: &mut Intercom) {
    door.leave(now());
    let (_, mut writer) = socket.split();
    let _ = flush(&mut writer, door).await;
    let _ = socket.flush().await;
    socket.close();
    info!("intercom: left");
}

/// Prints what happened (the intercom's log lines, and at each epoch the
/// memory used so far); whether the link must be replaced.
fn log(door: &mut Intercom) -> bool {
    let mut replace = false;
    while let Some(event) = door.poll_event() {
        match satsuma_intercom::log::event(door, &event) {
            Logged::Reconnect => replace = true,
            // What the room has cost so far: the budget's measure as the
            // room grows.
            Logged::Epoch { epoch, members } => info!(
                "intercom: memory at epoch {=u64} with {=usize} members: heap {=usize} bytes, peak {=usize}, stack high-water {=usize}",
                epoch,
                members,
                board::HEAP.used(),
                board::HEAP.peak(),
                board::stack_high_water().0
            ),
            Logged::Line => {}
        }
    }
    replace
}

/// Why the intercom could not run at all.
#[derive(Debug)]
enum Failure {
    Board(board::Error),
    Usage(&'static str),
    Twice,
    Session,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Board(e) => write!(f, "{e}"),
            Self::Usage(u) => f.write_str(u),
            Self::Twice => f.write_str("a static taken twice"),
            Self::Session => f.write_str("no MLS session"),
        }
    }
}

fn report_stop(out: &mut dyn fmt::Write, stop: &Stop<'_>) {
    let _ = writeln!(out, "intercom: FAILED: {stop}");
}
