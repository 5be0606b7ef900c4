//! The board's Ethernet controller, an SMSC LAN9118 (QEMU's on-board NIC
//! for mps2-an386, `-nic user,model=lan9118`), as an
//! [`embassy_net_driver::Driver`] for embassy-net.
//!
//! Frames move by programmed I/O through the chip's FIFOs, a 32-bit word
//! at a time: no DMA, and no allocation. The driver borrows one receive
//! and one transmit buffer of a frame each ([`Buffers`], 3 KiB), which the
//! binary keeps in a static: moving the driver then moves a few words,
//! not its buffers.
//!
//! # Waiting
//!
//! Nothing polls in a loop. When the RX status FIFO is empty (or the TX
//! data FIFO has no room for a frame), the driver registers the task's
//! waker, enables the chip interrupt that ends the wait (`RSFL`: a status
//! word arrived; `TDFA`: TX room), and looks again before saying "not
//! yet", so an event between the look and the enable is not lost. The
//! interrupt handler disables the interrupts it saw, acknowledges them and
//! wakes the task, which re-enables them when it next has to wait: a
//! level that stays up cannot storm. A PHY interrupt (link down,
//! auto-negotiation done) makes [`link_state`](Driver::link_state) ask the
//! PHY again.
//!
//! Transmit completion is not waited for: a frame's words go into the TX
//! FIFO and the chip sends it on its own. Its status word is read later,
//! before the next frame, to count errors. So the `TSFL` interrupt (TX
//! status level) is left off.
//!
//! # Bad frames
//!
//! A frame from the wire whose status has the error-summary or
//! filter-fail bit, or whose length is below an Ethernet header or above
//! the MTU, is read out of the FIFO and thrown away, and counted
//! ([`stats`]); nothing the wire sends makes the driver panic. Frames are
//! discarded by reading them out rather than with `RX_DP_CTRL`'s
//! fast-forward: QEMU's fast-forward moves its read position without
//! freeing the space or forgetting the rest of the frame, which desyncs
//! the FIFO, and a frame is 380 reads at most.

mod regs;

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use core::task::Context;

use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState};
use embassy_sync::waitqueue::AtomicWaker;

use self::regs::{MacReg, PhyReg, Reg, Regs};
use crate::error::{Error, NicError};
use crate::interrupts::{self, Irq};

/// The largest frame sent or accepted: a 1500-byte payload and the
/// 14-byte Ethernet header, without the CRC (the chip adds it on the way
/// out and the driver drops it on the way in). No VLAN tags.
pub const MTU: usize = 1514;

/// Bytes of an Ethernet header: the smallest frame worth handing up.
const HEADER_LEN: usize = 14;

/// Bytes of the CRC at the end of every frame in the RX FIFO.
const CRC_LEN: usize = 4;

/// The receive buffer: the largest accepted frame and its CRC, in whole
/// FIFO words.
const RX_BUF_LEN: usize = (MTU + CRC_LEN).div_ceil(4) * 4;

/// TX FIFO room a frame needs, in bytes: its data in whole words and the
/// two command words.
const TX_ROOM: usize = MTU.div_ceil(4) * 4 + 8;

/// `FIFO_INT`'s TX-data-available level, in 64-byte units: room for a
/// frame.
const TX_ROOM_LEVEL: u32 = 24;
const _: () = assert!(TX_ROOM_LEVEL as usize * 64 >= TX_ROOM);

/// Bad frames read out in one `receive` call before the driver lets the
/// stack run and comes back (the waker is woken at once).
const DROPS_PER_CALL: u32 = 8;

/// Wakes the task driving the stack: one waker for receive, transmit and
/// link, as embassy-net polls all three from one task.
static WAKER: AtomicWaker = AtomicWaker::new();

/// A driver owns the chip.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The interrupt handler saw a PHY interrupt: the link may have changed.
static PHY_EVENT: AtomicBool = AtomicBool::new(false);

/// The driver's counters; [`stats`] reads them.
static STATS: Counters = Counters::new();

/// The LAN9118 driver: owns the chip, and borrows a frame buffer each way.
pub struct Lan9118<'d> {
    regs: Regs,
    mac: [u8; 6],
    link_up: bool,
    rx: &'d mut [u8; RX_BUF_LEN],
    tx: &'d mut [u8; MTU],
}

/// The driver's frame buffers: one received frame (with its CRC) and one
/// to send.
pub struct Buffers {
    rx: [u8; RX_BUF_LEN],
    tx: [u8; MTU],
}

impl Buffers {
    /// Zeroed buffers, for a `static`.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            rx: [0; RX_BUF_LEN],
            tx: [0; MTU],
        }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Buffers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffers").finish_non_exhaustive()
    }
}

/// A received frame, handed to the stack.
#[derive(Debug)]
pub struct RxFrame<'a> {
    frame: &'a mut [u8],
}

/// Room for one frame to send.
#[derive(Debug)]
pub struct TxFrame<'a> {
    regs: &'a Regs,
    buf: &'a mut [u8; MTU],
}

/// What the driver counted since boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NicStats {
    /// Frames handed to the stack.
    pub rx_frames: u32,
    /// Frames put in the TX FIFO.
    pub tx_frames: u32,
    /// Frames dropped for the error-summary or filter-fail status bit.
    pub rx_bad_status: u32,
    /// Frames dropped for a length below a header or above the MTU.
    pub rx_bad_length: u32,
    /// Frames the chip reported a transmit error for, or the stack asked
    /// to send at a length the driver does not send.
    pub tx_errors: u32,
    /// FIFO misuse the chip reported (`RXE`, `TXE`): a driver bug if ever
    /// non-zero.
    pub fifo_errors: u32,
    /// Interrupts taken.
    pub interrupts: u32,
}

impl NicStats {
    /// Frames from the wire thrown away.
    #[must_use]
    pub fn rx_dropped(&self) -> u32 {
        self.rx_bad_status.saturating_add(self.rx_bad_length)
    }
}

/// The counters, shared by the driver and its interrupt handler.
struct Counters {
    rx_frames: AtomicU32,
    tx_frames: AtomicU32,
    rx_bad_status: AtomicU32,
    rx_bad_length: AtomicU32,
    tx_errors: AtomicU32,
    fifo_errors: AtomicU32,
    interrupts: AtomicU32,
}

impl Counters {
    const fn new() -> Self {
        Self {
            rx_frames: AtomicU32::new(0),
            tx_frames: AtomicU32::new(0),
            rx_bad_status: AtomicU32::new(0),
            rx_bad_length: AtomicU32::new(0),
            tx_errors: AtomicU32::new(0),
            fifo_errors: AtomicU32::new(0),
            interrupts: AtomicU32::new(0),
        }
    }
}

/// Adds one to a counter.
fn count(counter: &AtomicU32) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The driver's counters since boot.
#[must_use]
pub fn stats() -> NicStats {
    let get = |c: &AtomicU32| c.load(Ordering::Relaxed);
    NicStats {
        rx_frames: get(&STATS.rx_frames),
        tx_frames: get(&STATS.tx_frames),
        rx_bad_status: get(&STATS.rx_bad_status),
        rx_bad_length: get(&STATS.rx_bad_length),
        tx_errors: get(&STATS.tx_errors),
        fifo_errors: get(&STATS.fifo_errors),
        interrupts: get(&STATS.interrupts),
    }
}

impl<'d> Lan9118<'d> {
    /// Resets the chip and brings it up: checks `BYTE_TEST`, waits for
    /// `READY`, soft-resets, reads the MAC address the chip holds (QEMU
    /// sets it from `-nic ...,mac=`), turns off promiscuous mode, sets the
    /// duplex the PHY negotiated, enables the transmitter and receiver and
    /// unmasks the chip's interrupt. One driver at a time; it frames in
    /// `buffers`.
    pub fn new(buffers: &'d mut Buffers) -> Result<Self, Error> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return Err(NicError::Taken.into());
        }
        let mut nic = Self {
            // SAFETY: the swap above lets one driver exist at a time.
            regs: unsafe { Regs::new() },
            mac: [0; 6],
            link_up: false,
            rx: &mut buffers.rx,
            tx: &mut buffers.tx,
        };
        match nic.bring_up() {
            Ok(()) => Ok(nic),
            Err(e) => {
                interrupts::disable(Irq::Ethernet);
                TAKEN.store(false, Ordering::Release);
                Err(e.into())
            }
        }
    }

    /// The chip's MAC address.
    #[must_use]
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn bring_up(&mut self) -> Result<(), NicError> {
        let r = &self.regs;
        // BYTE_TEST is readable before READY: it says the chip is there
        // and the bus is 32 bits, little-endian.
        let byte_test = r.read(Reg::ByteTest);
        if byte_test != regs::BYTE_TEST {
            return Err(NicError::NotFound { byte_test });
        }
        r.wait(Reg::PmtCtrl, |v| v & regs::READY != 0, NicError::NotReady)?;

        interrupts::disable(Irq::Ethernet);
        r.write(Reg::HwCfg, regs::SRST);
        r.wait(Reg::HwCfg, |v| v & regs::SRST == 0, NicError::ResetTimeout)?;
        r.wait(Reg::PmtCtrl, |v| v & regs::READY != 0, NicError::NotReady)?;

        r.write(Reg::IntEn, 0);
        r.write(Reg::IntSts, u32::MAX);
        // Active high, push-pull: until this write the pin idles at the
        // level the NVIC takes for "asserted".
        r.write(Reg::IrqCfg, regs::IRQ_EN | regs::IRQ_POL | regs::IRQ_TYPE);
        // RSFL when one status word waits (level 0); TDFA when a whole
        // frame fits (the level is in 64-byte units).
        r.write(Reg::FifoInt, TX_ROOM_LEVEL << regs::FIFO_INT_TDAL_SHIFT);

        self.mac = read_mac(r)?;

        r.phy_write(
            PhyReg::InterruptMask,
            regs::PHY_INT_LINK_DOWN | regs::PHY_INT_AUTONEG_DONE,
        )?;
        r.phy_read(PhyReg::InterruptSource)?;
        let ours = r.phy_read(PhyReg::Advertisement)?;
        let theirs = r.phy_read(PhyReg::PartnerAbility)?;
        let full_duplex = ours & theirs & regs::PHY_FULL_DUPLEX != 0;
        self.link_up = link_up(r)?;

        let mut mac_cr = r.mac_read(MacReg::Cr)?;
        mac_cr &= !(regs::MAC_PRMS | regs::MAC_FDPX);
        mac_cr |= regs::MAC_TXEN | regs::MAC_RXEN;
        if full_duplex {
            mac_cr |= regs::MAC_FDPX;
        }
        r.mac_write(MacReg::Cr, mac_cr)?;
        r.write(Reg::RxCfg, 0);
        r.write(Reg::TxCfg, regs::TX_ON);

        self.arm(regs::INT_RSFL | regs::INT_PHY | regs::INT_RXE | regs::INT_TXE);
        interrupts::enable(Irq::Ethernet);
        Ok(())
    }

    /// Enables the chip interrupts `bits`, forgetting any stale event of
    /// theirs: the caller looks at the FIFOs itself after this.
    fn arm(&self, bits: u32) {
        // The interrupt handler also writes INT_EN; in a critical section
        // it cannot run between the read and the write.
        critical_section::with(|_| {
            self.regs.write(Reg::IntSts, bits);
            let enabled = self.regs.read(Reg::IntEn);
            self.regs.write(Reg::IntEn, enabled | bits);
        });
    }

    /// Reads the status words of sent frames and counts the errors.
    fn drain_tx_status(&self) {
        let done = regs::tx_status_used(self.regs.read(Reg::TxFifoInf));
        for _ in 0..done {
            if self.regs.read(Reg::TxStatusFifo) & regs::TX_ERROR != 0 {
                count(&STATS.tx_errors);
            }
        }
    }

    /// Whether a whole frame fits in the TX FIFO.
    fn tx_room(&self) -> bool {
        regs::tx_data_free(self.regs.read(Reg::TxFifoInf)) as usize >= TX_ROOM
    }

    /// Whether a frame can be sent now; if not, the waker is woken when it
    /// can.
    fn tx_ready(&mut self, cx: &mut Context<'_>) -> bool {
        self.drain_tx_status();
        if self.tx_room() {
            return true;
        }
        WAKER.register(cx.waker());
        self.arm(regs::INT_TDFA);
        self.tx_room()
    }

    /// Whether the RX status FIFO holds a frame's status.
    fn rx_waiting(&self) -> bool {
        regs::rx_status_used(self.regs.read(Reg::RxFifoInf)) > 0
    }

    /// Reads the next good frame into the receive buffer and says its
    /// length; bad frames on the way are dropped. `None` when there is
    /// none yet: the waker is woken when one arrives.
    fn next_frame(&mut self, cx: &mut Context<'_>) -> Option<usize> {
        for _ in 0..DROPS_PER_CALL {
            if !self.rx_waiting() {
                WAKER.register(cx.waker());
                self.arm(regs::INT_RSFL);
                if !self.rx_waiting() {
                    return None;
                }
            }
            let status = self.regs.read(Reg::RxStatusFifo);
            if let Some(len) = self.read_frame(status) {
                return Some(len);
            }
        }
        cx.waker().wake_by_ref();
        None
    }

    /// Reads the frame `status` describes out of the RX data FIFO: into
    /// the receive buffer if it is good (returning its length without the
    /// CRC), else nowhere.
    fn read_frame(&mut self, status: u32) -> Option<usize> {
        // RX_CFG leaves no offset and aligns ends to words: the frame
        // takes its length, CRC included, rounded up to whole words.
        let wire_len = regs::rx_status_len(status) as usize;
        let words = wire_len.div_ceil(4);
        let frame_len = wire_len.saturating_sub(CRC_LEN);
        if status & (regs::RX_ERROR | regs::RX_FILTER_FAIL) != 0 {
            self.discard(words);
            count(&STATS.rx_bad_status);
            return None;
        }
        let Some(dest) = self
            .rx
            .get_mut(..words * 4)
            .filter(|_| (HEADER_LEN..=MTU).contains(&frame_len))
        else {
            self.discard(words);
            count(&STATS.rx_bad_length);
            return None;
        };
        for word in dest.chunks_exact_mut(4) {
            word.copy_from_slice(&self.regs.read(Reg::RxDataFifo).to_le_bytes());
        }
        count(&STATS.rx_frames);
        Some(frame_len)
    }

    /// Reads `words` words out of the RX data FIFO and forgets them; never
    /// more than it holds, whatever a status word claimed.
    fn discard(&self, words: usize) {
        let held = regs::rx_data_used(self.regs.read(Reg::RxFifoInf)).div_ceil(4);
        for _ in 0..words.min(held as usize) {
            let _ = self.regs.read(Reg::RxDataFifo);
        }
    }
}

/// Reads the station address from `ADDRL` (bytes 0 to 3) and `ADDRH`
/// (bytes 4 and 5).
fn read_mac(r: &Regs) -> Result<[u8; 6], NicError> {
    let [a, b, c, d] = r.mac_read(MacReg::AddrL)?.to_le_bytes();
    let [e, f, _, _] = r.mac_read(MacReg::AddrH)?.to_le_bytes();
    let mac = [a, b, c, d, e, f];
    let multicast = a & 1 != 0;
    if mac == [0; 6] || multicast {
        return Err(NicError::NoMacAddress);
    }
    Ok(mac)
}

/// Whether the PHY says the link is up. The bit latches low on real PHYs:
/// the second read is the state now.
fn link_up(r: &Regs) -> Result<bool, NicError> {
    r.phy_read(PhyReg::Status)?;
    Ok(r.phy_read(PhyReg::Status)? & regs::PHY_LINK_UP != 0)
}

impl fmt::Debug for Lan9118<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lan9118")
            .field("mac", &self.mac)
            .field("link_up", &self.link_up)
            .finish_non_exhaustive()
    }
}

impl Driver for Lan9118<'_> {
    type RxToken<'a>
        = RxFrame<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxFrame<'a>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(RxFrame<'_>, TxFrame<'_>)> {
        // The stack may answer what it receives at once (ARP, TCP ACKs):
        // no frame is taken in before there is room for the answer.
        if !self.tx_ready(cx) {
            return None;
        }
        let len = self.next_frame(cx)?;
        let frame = self.rx.get_mut(..len)?;
        let tx = TxFrame {
            regs: &self.regs,
            buf: self.tx,
        };
        Some((RxFrame { frame }, tx))
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<TxFrame<'_>> {
        if !self.tx_ready(cx) {
            return None;
        }
        Some(TxFrame {
            regs: &self.regs,
            buf: self.tx,
        })
    }

    fn link_state(&mut self, cx: &mut Context<'_>) -> LinkState {
        WAKER.register(cx.waker());
        if PHY_EVENT.swap(false, Ordering::AcqRel) {
            // Reading the source clears the PHY's interrupt; a PHY that
            // does not answer counts as a link down.
            self.link_up = self
                .regs
                .phy_read(PhyReg::InterruptSource)
                .and_then(|_| link_up(&self.regs))
                .unwrap_or(false);
            self.arm(regs::INT_PHY);
        }
        if self.link_up {
            LinkState::Up
        } else {
            LinkState::Down
        }
    }

    fn capabilities(&self) -> Capabilities {
        // Checksums stay with the stack, both ways: the LAN9118 has no
        // offload (the LAN9220 on the real board does; QEMU models the
        // LAN9118).
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = MTU;
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.mac)
    }
}

impl embassy_net_driver::RxToken for RxFrame<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        f(self.frame)
    }
}

impl embassy_net_driver::TxToken for TxFrame<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        // The stack never asks for more than the MTU; if it did, it gets
        // the MTU's worth to fill and the frame is not sent.
        let frame = self.buf.get_mut(..len.min(MTU)).unwrap_or_default();
        let out = f(frame);
        match u32::try_from(frame.len()) {
            Ok(n) if frame.len() == len && len >= HEADER_LEN => {
                send(self.regs, frame, n);
            }
            _ => count(&STATS.tx_errors),
        }
        out
    }
}

/// Puts one frame of `len` bytes into the TX FIFO: command A (one buffer,
/// first and last segment, no offset, word-aligned end), command B (the
/// frame's length; tag 0), then the data, little-endian words with the
/// last one padded.
fn send(regs: &Regs, frame: &[u8], len: u32) {
    regs.write(
        Reg::TxDataFifo,
        regs::TX_FIRST_SEGMENT | regs::TX_LAST_SEGMENT | len,
    );
    regs.write(Reg::TxDataFifo, len);
    for chunk in frame.chunks(4) {
        let mut word = [0u8; 4];
        for (to, from) in word.iter_mut().zip(chunk) {
            *to = *from;
        }
        regs.write(Reg::TxDataFifo, u32::from_le_bytes(word));
    }
    count(&STATS.tx_frames);
}

/// The chip's interrupt handler (IRQ 13), from
/// [`interrupts::dispatch`].
pub(crate) fn on_interrupt() {
    // SAFETY: the handler keeps to INT_STS and INT_EN. The driver writes
    // INT_EN only inside a critical section, which this handler cannot
    // interrupt, so the read-modify-write below does not race it.
    let regs = unsafe { Regs::new() };
    let enabled = regs.read(Reg::IntEn);
    let pending = regs.read(Reg::IntSts) & enabled;
    // These stay up until the driver has emptied the FIFO or asked the
    // PHY: off until it waits again.
    let serviced = pending & (regs::INT_RSFL | regs::INT_TDFA | regs::INT_PHY);
    if serviced != 0 {
        regs.write(Reg::IntEn, enabled & !serviced);
    }
    regs.write(Reg::IntSts, pending);
    if pending & regs::INT_PHY != 0 {
        PHY_EVENT.store(true, Ordering::Release);
    }
    if pending & (regs::INT_RXE | regs::INT_TXE) != 0 {
        count(&STATS.fifo_errors);
    }
    count(&STATS.interrupts);
    WAKER.wake();
}
