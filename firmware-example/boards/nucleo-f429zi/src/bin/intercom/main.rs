//! The door intercom on a NUCLEO-F429ZI: a full MLS member of a real call,
//! over the SFU's intercom link, as the QEMU board's `intercom` is.
//!
//! It seeds its crypto and the IP stack from the chip's RNG, resumes its
//! MLS identity and group from the flash store (or makes a new identity,
//! saved there), brings up Ethernet under embassy-net, gets an address by
//! DHCP, connects to the SFU (`SATSUMA_SFU` at build time), asks it the
//! time and joins the room (`SATSUMA_ROOM`). Then every 20 ms, while
//! push-to-talk is on, it sends the microphone's 20 ms (I2S, 8 kHz) as
//! SFrame-sealed G.711 µ-law; what it hears it opens, mixes for the
//! amplifier, and checksums and measures per member once a second
//! (`satsuma_intercom::Intercom`). A lost link is resumed, or the
//! room joined afresh, after a backoff; it runs until the power goes.
//!
//! The B1 button toggles push-to-talk (it starts off). LD1 (green) is lit
//! while it is in the group, LD2 (blue) while it talks, LD3 (red) after a
//! failure until it is back in the group.
//!
//! Its log is defmt over RTT (`cargo xtask flash` shows it); the lines
//! say what the QEMU intercom's say: `joined`, `epoch N safety number ...`,
//! `heard leaf ...`.
#![no_std]
#![no_main]

use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

use defmt::{Display2Format, error, info, warn};
use embassy_executor::Spawner;
use embassy_futures::select::{Either4, select4};
use embassy_net::tcp::TcpSocket;
use embassy_net::{Config, Runner, Stack, StackResources};
use embassy_stm32::Peri;
use embassy_stm32::eth::{self, Ethernet, GenericPhy, Sma};
use embassy_stm32::flash::Flash;
use embassy_stm32::peripherals::{
    DMA1_CH3, DMA1_CH5, ETH, ETH_SMA, EXTI13, FLASH, PA1, PA2, PA7, PA12, PA15, PB10, PB12, PB13,
    PB15, PC1, PC4, PC5, PC10, PC12, PC13, PG11, PG13, RNG, SPI2, SPI3,
};
use embassy_stm32::rng::{self, Rng};
use embassy_stm32::{bind_interrupts, exti, interrupt};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Instant, Timer};
use satsuma_board_nucleo_f429zi::audio::{AMP_RING, Amplifier, MIC_RING, Microphone};
use satsuma_board_nucleo_f429zi::net::{self as board_net, Nic, Queue};
use satsuma_board_nucleo_f429zi::settings::{ROOM, SFU_ADDRESS, SFU_PORT};
use satsuma_board_nucleo_f429zi::store::{self, SLOT_LEN, StoreFlash};
use satsuma_board_nucleo_f429zi::{self as board, HEAP, Leds, PushToTalk};
use satsuma_core::committer::Status;
use satsuma_core::mls::{
    MemberInfo, MemoryStore, SatsumaCrypto, Session, SessionError, Store as _,
};
use satsuma_core::wire::RoomName;
use satsuma_intercom::audio::{FRAME, Voice};
use satsuma_intercom::log::Logged;
use satsuma_intercom::tcp::{RX_BUFFER, TX_BUFFER, flush, read_into, write_all};
use satsuma_intercom::{FlashStore, Inbox, Intercom, IntercomConfig, inbox};
use static_cell::{ConstStaticCell, StaticCell};
use zeroize::Zeroizing;
use {defmt_rtt as _, panic_probe as _};

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    HASH_RNG => rng::InterruptHandler<RNG>;
    EXTI15_10 => exti::InterruptHandler<interrupt::typelevel::EXTI15_10>;
});

/// Sockets: DHCP's and the link's.
const SOCKETS: usize = 2;
/// The heap: MLS state, key packages, commits being built. 80 KiB holds
/// the measured peaks of a 16-member room (README, "MLS on the
/// microcontroller"): 39,036 B as a member joining, 71,412 B as its
/// committer.
const HEAP_SIZE: usize = 80 * 1024;
/// Waits between attempts to reach the SFU, doubling up to the last.
const BACKOFF: [u64; 5] = [250, 500, 1_000, 2_000, 4_000];

static RESOURCES: ConstStaticCell<StackResources<SOCKETS>> =
    ConstStaticCell::new(StackResources::new());
static PACKETS: ConstStaticCell<Queue> = ConstStaticCell::new(Queue::new());
static TCP_RX: ConstStaticCell<[u8; RX_BUFFER]> = ConstStaticCell::new([0; RX_BUFFER]);
static TCP_TX: ConstStaticCell<[u8; TX_BUFFER]> = ConstStaticCell::new([0; TX_BUFFER]);
/// One message from the SFU, as it arrives.
static INBOX: ConstStaticCell<[u8; inbox::BUFFER]> = ConstStaticCell::new([0; inbox::BUFFER]);
/// The intercom: the member and its call (see [`open_door`]).
static DOOR: StaticCell<Intercom> = StaticCell::new();
static HEAP_MEMORY: ConstStaticCell<[MaybeUninit<u8>; HEAP_SIZE]> =
    ConstStaticCell::new([MaybeUninit::uninit(); HEAP_SIZE]);

/// Push-to-talk, as the button left it.
static TALKING: AtomicBool = AtomicBool::new(false);
/// The button was pressed: the call loop reads [`TALKING`] again.
static PRESSED: Signal<CriticalSectionRawMutex, ()> = Signal::new();

#[embassy_executor::task]
async fn net(mut runner: Runner<'static, Nic>) -> ! {
    runner.run().await
}

/// The microphone's 20 ms frames for the call loop: the two newest.
static MIC: Channel<CriticalSectionRawMutex, [i16; FRAME], 2> = Channel::new();
/// What the speaker plays next, from the call loop.
static SPEAKER: Channel<CriticalSectionRawMutex, [i16; FRAME], 2> = Channel::new();
static MIC_DMA: ConstStaticCell<[u16; MIC_RING]> = ConstStaticCell::new([0; MIC_RING]);
static AMP_DMA: ConstStaticCell<[u16; AMP_RING]> = ConstStaticCell::new([0; AMP_RING]);

/// Reads the microphone for ever, at its clock; the call loop takes a
/// frame every 20 ms, from the same crystal.
#[embassy_executor::task]
async fn microphone(mut mic: Microphone) -> ! {
    let mut frame = [0i16; FRAME];
    loop {
        if mic.read(&mut frame).await.is_err() {
            warn!("intercom: the microphone's DMA overran: a frame lost");
            continue;
        }
        if MIC.try_send(frame).is_err() {
            // The call loop fell behind: the oldest frame goes.
            let _ = MIC.try_receive();
            let _ = MIC.try_send(frame);
        }
    }
}

/// Plays what the call loop gives, or silence, for ever: the amplifier's
/// clock paces it.
#[embassy_executor::task]
async fn amplifier(mut amp: Amplifier) -> ! {
    loop {
        let frame = SPEAKER.try_receive().unwrap_or([0; FRAME]);
        if amp.write(&frame).await.is_err() {
            warn!("intercom: the amplifier's DMA ran dry");
        }
    }
}

#[embassy_executor::task]
async fn button(mut b1: PushToTalk) -> ! {
    loop {
        b1.pressed().await;
        let talking = !TALKING.load(Ordering::Relaxed);
        TALKING.store(talking, Ordering::Relaxed);
        info!(
            "intercom: push-to-talk {}",
            if talking { "on" } else { "off" }
        );
        PRESSED.signal(());
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_stm32::init(board::config());
    info!(
        "intercom: NUCLEO-F429ZI, SFU {}:{}, room {}",
        SFU_ADDRESS, SFU_PORT, ROOM
    );
    let mut leds = Leds::new(p.PB0, p.PB7, p.PB14);
    let parts = Parts {
        rng: p.RNG,
        flash: p.FLASH,
        pa12: p.PA12,
        eth: EthParts {
            eth: p.ETH,
            sma: p.ETH_SMA,
            ref_clk: p.PA1,
            mdio: p.PA2,
            crs_dv: p.PA7,
            txd1: p.PB13,
            mdc: p.PC1,
            rxd0: p.PC4,
            rxd1: p.PC5,
            tx_en: p.PG11,
            txd0: p.PG13,
        },
        b1: p.PC13,
        b1_line: p.EXTI13,
        audio: AudioParts {
            mic_spi: p.SPI2,
            mic_sd: p.PB15,
            mic_ws: p.PB12,
            mic_ck: p.PB10,
            mic_dma: p.DMA1_CH3,
            amp_spi: p.SPI3,
            amp_sd: p.PC12,
            amp_ws: p.PA15,
            amp_ck: p.PC10,
            amp_dma: p.DMA1_CH5,
        },
    };
    if let Err(why) = run(spawner, parts, &mut leds).await {
        error!("intercom: FAILED: {}", why);
    }
    // Nothing to return to: the red LED stays lit until a reset.
    leds.set_joined(false);
    leds.set_talking(false);
    leds.set_error(true);
    core::future::pending::<()>().await;
}

/// The peripherals and pins the intercom uses besides the LEDs.
struct Parts {
    rng: Peri<'static, RNG>,
    flash: Peri<'static, FLASH>,
    pa12: Peri<'static, PA12>,
    eth: EthParts,
    b1: Peri<'static, PC13>,
    b1_line: Peri<'static, EXTI13>,
    audio: AudioParts,
}

/// The I2S blocks, their DMA streams and pins (README, "Wiring").
struct AudioParts {
    mic_spi: Peri<'static, SPI2>,
    mic_sd: Peri<'static, PB15>,
    mic_ws: Peri<'static, PB12>,
    mic_ck: Peri<'static, PB10>,
    mic_dma: Peri<'static, DMA1_CH3>,
    amp_spi: Peri<'static, SPI3>,
    amp_sd: Peri<'static, PC12>,
    amp_ws: Peri<'static, PA15>,
    amp_ck: Peri<'static, PC10>,
    amp_dma: Peri<'static, DMA1_CH5>,
}

/// The Ethernet MAC, its management bus and its RMII pins.
struct EthParts {
    eth: Peri<'static, ETH>,
    sma: Peri<'static, ETH_SMA>,
    ref_clk: Peri<'static, PA1>,
    mdio: Peri<'static, PA2>,
    crs_dv: Peri<'static, PA7>,
    txd1: Peri<'static, PB13>,
    mdc: Peri<'static, PC1>,
    rxd0: Peri<'static, PC4>,
    rxd1: Peri<'static, PC5>,
    tx_en: Peri<'static, PG11>,
    txd0: Peri<'static, PG13>,
}

/// Why the intercom could not run at all.
#[derive(Debug, defmt::Format)]
enum Failure {
    /// A static was taken twice (a bug).
    Twice,
    /// The RNG failed its health checks.
    Rng,
    /// No MLS session could be made, even in RAM.
    Session,
    /// The room name (checked by build.rs) was refused.
    Room,
}

/// Runs the call; returns only on a failure.
async fn run(spawner: Spawner, p: Parts, leds: &mut Leds) -> Result<(), Failure> {
    board::init_heap(HEAP_MEMORY.try_take().ok_or(Failure::Twice)?);

    // The chip's true RNG: the IP stack's sequence numbers and the
    // member's CSPRNG, each from its own draw.
    let mut rng = Rng::new(p.rng, Irqs);
    let mut stack_seed = [0u8; 8];
    rng.async_fill_bytes(&mut stack_seed)
        .await
        .map_err(|_| Failure::Rng)?;
    let stack_seed = u64::from_le_bytes(stack_seed);

    // The member: resumed from flash, or new. PA12 is held for as long as
    // bank 2 is read (the whole run).
    let _pa12 = store::hold_pa12_low(p.pa12);
    let flash = StoreFlash::install(Flash::new_blocking(p.flash)).ok_or(Failure::Twice)?;
    let session = open_session(&mut rng, flash, leds).await?;
    let door = open_door(session)?;
    let stack = start_network(spawner, p.eth, stack_seed)?;
    spawner.spawn(button(PushToTalk::new(p.b1, p.b1_line, Irqs)).map_err(|_| Failure::Twice)?);
    start_audio(spawner, p.audio)?;
    stack.wait_config_up().await;
    if let Some(lease) = stack.config_v4() {
        info!(
            "intercom: DHCP lease {} after {} ms",
            lease.address,
            Instant::now().as_millis()
        );
    }

    door.set_talking(TALKING.load(Ordering::Relaxed));
    let mut inbox = Inbox::new(INBOX.try_take().ok_or(Failure::Twice)?, inbox::LARGEST);
    let mut socket = TcpSocket::new(
        stack,
        TCP_RX.try_take().ok_or(Failure::Twice)?,
        TCP_TX.try_take().ok_or(Failure::Twice)?,
    );
    let mut attempt = 0;
    loop {
        let why = call(&mut socket, door, &mut inbox, leds).await;
        warn!("intercom: link lost: {}", why);
        // A link that got into the group starts the backoff over.
        if door.member().status() == Status::InGroup {
            attempt = 0;
        }
        door.link_down(now());
        leds.set_joined(false);
        leds.set_talking(false);
        leds.set_error(true);
        socket.abort();
        let _ = socket.flush().await;
        let wait = BACKOFF[attempt.min(BACKOFF.len() - 1)];
        attempt += 1;
        Timer::after_millis(wait).await;
    }
}

/// The intercom, built in its static around the member. Not inlined, so
/// that the session and the intercom, each over a kilobyte, pass through
/// this function's stack frame at boot and not through the main task's,
/// which stays under every message handled.
#[inline(never)]
fn open_door(session: Session) -> Result<&'static mut Intercom, Failure> {
    satsuma_intercom::log::identity(&session.fingerprint());
    let room = RoomName::new(ROOM).map_err(|_| Failure::Room)?;
    let config = IntercomConfig {
        room,
        // G.711: the microphone and the amplifier run at 8 kHz, which
        // G.722's 16 kHz would not add to.
        voice: Voice::Pcmu,
        // Unused: the microphone's samples are sent, not a tone.
        tone_hz: 0,
        report_every: core::time::Duration::from_secs(1),
    };
    DOOR.try_init_with(|| Intercom::new(session, config))
        .ok_or(Failure::Twice)
}

/// The Ethernet MAC and PHY under embassy-net, its task started; the
/// stack it serves. Not inlined: the network stack's state is built here,
/// not in the main task's stack frame.
#[inline(never)]
fn start_network(spawner: Spawner, p: EthParts, seed: u64) -> Result<Stack<'static>, Failure> {
    let mac = board_net::mac_address();
    let phy = GenericPhy::new(Sma::new(p.sma, p.mdio, p.mdc), board_net::PHY_ADDRESS);
    let nic: Nic = Ethernet::new_with_phy(
        PACKETS.try_take().ok_or(Failure::Twice)?,
        p.eth,
        Irqs,
        p.ref_clk,
        p.crs_dv,
        p.rxd0,
        p.rxd1,
        p.txd0,
        p.txd1,
        p.tx_en,
        mac,
        phy,
    );
    let (stack, runner) = embassy_net::new(
        nic,
        Config::dhcpv4(Default::default()),
        RESOURCES.try_take().ok_or(Failure::Twice)?,
        seed,
    );
    spawner.spawn(net(runner).map_err(|_| Failure::Twice)?);
    info!("intercom: MAC {:02x}, waiting for a DHCP lease", mac);
    Ok(stack)
}

/// The microphone and the amplifier, their tasks started.
#[inline(never)]
fn start_audio(spawner: Spawner, p: AudioParts) -> Result<(), Failure> {
    let mic = Microphone::new(
        p.mic_spi,
        p.mic_sd,
        p.mic_ws,
        p.mic_ck,
        p.mic_dma,
        MIC_DMA.try_take().ok_or(Failure::Twice)?,
    );
    let amp = Amplifier::new(
        p.amp_spi,
        p.amp_sd,
        p.amp_ws,
        p.amp_ck,
        p.amp_dma,
        AMP_DMA.try_take().ok_or(Failure::Twice)?,
    );
    spawner.spawn(microphone(mic).map_err(|_| Failure::Twice)?);
    spawner.spawn(amplifier(amp).map_err(|_| Failure::Twice)?);
    Ok(())
}

/// The member saved in the flash store, resumed; or a new one, saved
/// there. Where the flash fails, a new member in RAM (a new identity at
/// every boot), with LD3 lit.
async fn open_session(
    rng: &mut Rng<'static, RNG>,
    flash: StoreFlash,
    leds: &mut Leds,
) -> Result<Session, Failure> {
    let config = satsuma_intercom::intercom_session_config();
    let mut store = FlashStore::new(flash, 0, SLOT_LEN).map_err(|e| {
        error!("intercom: flash store: {}", Display2Format(&e));
        Failure::Session
    })?;
    match store.load() {
        Ok(Some(record)) => {
            info!(
                "intercom: resuming the member saved in flash ({} bytes)",
                record.len()
            );
            drop(record);
            match Session::resume(now(), crypto(rng).await?, config, store) {
                Ok(session) => return Ok(session),
                Err(e) => warn!(
                    "intercom: the saved member cannot be resumed ({}): starting afresh",
                    Display2Format(&e)
                ),
            }
        }
        Ok(None) => info!("intercom: no member in flash: a new identity"),
        Err(e) => warn!(
            "intercom: the flash store is unreadable ({}): starting afresh",
            Display2Format(&e)
        ),
    }
    let info = MemberInfo::new("Door", "nucleo-f429zi").map_err(|_| Failure::Session)?;
    // The old record, if any, goes: no key of a member that is gone stays
    // in flash.
    let fresh = FlashStore::new(flash, 0, SLOT_LEN).map_err(|_| Failure::Session);
    let created = match fresh {
        Ok(mut fresh) => match fresh.erase() {
            Ok(()) => Session::create(crypto(rng).await?, info.clone(), config, fresh),
            Err(e) => Err(SessionError::Store(e)),
        },
        Err(_) => Err(SessionError::CorruptState),
    };
    match created {
        Ok(session) => Ok(session),
        Err(e) => {
            error!(
                "intercom: the flash store failed ({}): this member lives in RAM until reset",
                Display2Format(&e)
            );
            leds.set_error(true);
            Session::create(crypto(rng).await?, info, config, MemoryStore::default())
                .map_err(|_| Failure::Session)
        }
    }
}

/// A CSPRNG for one member, seeded with 32 bytes from the chip's RNG.
async fn crypto(rng: &mut Rng<'static, RNG>) -> Result<SatsumaCrypto, Failure> {
    let mut seed = Zeroizing::new([0u8; 32]);
    rng.async_fill_bytes(&mut *seed)
        .await
        .map_err(|_| Failure::Rng)?;
    Ok(SatsumaCrypto::from_seed(*seed))
}

fn now() -> satsuma_core::Instant {
    satsuma_core::Instant::from_micros(Instant::now().as_micros())
}

/// One link to the SFU, until it breaks: why it did.
async fn call(
    socket: &mut TcpSocket<'_>,
    door: &mut Intercom,
    inbox: &mut Inbox<'_>,
    leds: &mut Leds,
) -> &'static str {
    socket.set_timeout(Some(Duration::from_secs(30)));
    if socket.connect((SFU_ADDRESS, SFU_PORT)).await.is_err() {
        return "cannot connect to the SFU";
    }
    info!("intercom: connected to {}:{}", SFU_ADDRESS, SFU_PORT);
    if door.link_up(now()).is_err() {
        return "no key package";
    }
    let (mut reader, mut writer) = socket.split();
    inbox.clear();
    let mut next_frame = Instant::now();
    let mut out = [0u8; 512];
    let mut speaker = [0i16; FRAME];
    loop {
        if flush(&mut writer, door).await.is_err() {
            return "write failed";
        }
        if log(door) {
            return "the seat is gone: joining afresh";
        }
        let joined = door.member().status() == Status::InGroup;
        let talking = TALKING.load(Ordering::Relaxed);
        leds.set_joined(joined);
        leds.set_talking(joined && talking);
        if joined {
            leds.set_error(false);
        }
        let wake = door
            .poll_timeout()
            .map(|at| Instant::from_micros(at.as_micros()))
            .unwrap_or(Instant::MAX);
        let read = read_into(&mut reader, inbox.space());
        match select4(read, Timer::at(next_frame), Timer::at(wake), PRESSED.wait()).await {
            Either4::First(Err(why)) => return why,
            Either4::First(Ok(n)) => {
                // Every whole message in the inbox, in order.
                let drained = inbox.drain(n, |message| {
                    if let Err(e) = door.handle_message(now(), message) {
                        warn!("intercom: a message set aside: {}", Display2Format(&e));
                    }
                });
                if let Err(e) = drained {
                    warn!("intercom: {}", Display2Format(&e));
                    return "the stream from the SFU cannot be read on";
                }
            }
            Either4::Second(()) => {
                next_frame += Duration::from_millis(20);
                // Behind by more than a frame (a flash erase holds the
                // thread for a second): skip what was missed, do not
                // send a burst.
                let late = Instant::now().saturating_duration_since(next_frame);
                next_frame += Duration::from_millis(door.skip_missed(late.as_millis()));
                // The microphone's newest 20 ms (silence if it has none
                // yet) out; the speaker's next 20 ms in.
                let pcm = MIC.try_receive().unwrap_or([0; FRAME]);
                door.speaker_frame(&mut speaker);
                let _ = SPEAKER.try_send(speaker);
                match door.audio_frame_from(now(), &pcm, &mut out) {
                    Ok(Some(n)) => {
                        if write_all(&mut writer, &out[..n]).await.is_err() {
                            return "write failed";
                        }
                    }
                    Ok(None) => {}
                    Err(e) => warn!("intercom: a frame not sent: {}", Display2Format(&e)),
                }
            }
            Either4::Third(()) => door.handle_timeout(now()),
            Either4::Fourth(()) => door.set_talking(TALKING.load(Ordering::Relaxed)),
        }
    }
}

/// Logs what happened (the intercom's log lines, and at each epoch the
/// heap used so far); whether the link must be replaced.
fn log(door: &mut Intercom) -> bool {
    let mut replace = false;
    while let Some(event) = door.poll_event() {
        match satsuma_intercom::log::event(door, &event) {
            Logged::Reconnect => replace = true,
            Logged::Epoch { .. } => info!(
                "intercom: heap {} bytes in use, peak {} of {}",
                HEAP.used(),
                HEAP.peak(),
                HEAP_SIZE
            ),
            Logged::Line => {}
        }
    }
    replace
}
