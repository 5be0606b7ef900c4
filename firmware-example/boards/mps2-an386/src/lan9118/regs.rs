//! The LAN9118's registers, as the driver uses them: the directly addressed
//! window (FIFO ports and control registers), the MAC's registers behind
//! `MAC_CSR_CMD`/`MAC_CSR_DATA`, and the internal PHY's behind the MAC's MII
//! registers. Names and bits follow SMSC's LAN9118 datasheet; offsets were
//! checked against QEMU's model (`hw/net/lan9118.c`).
//!
//! Every access is a 32-bit volatile read or write, little-endian (the
//! board and the chip's 32-bit bus mode agree, which `BYTE_TEST` proves).

use core::ptr;

use crate::error::NicError;

/// Where the chip's 256-byte register window sits on mps2-an386 (AN386's
/// memory map; QEMU's `hw/arm/mps2.c` maps its model there too).
const BASE: usize = 0x4020_0000;

/// How many times a busy bit is read before the driver gives up: the chip
/// clears `MAC_CSR_CMD`'s in well under a microsecond and the MII's in
/// about 30 µs, tens of reads at most; QEMU clears both at once.
const BUSY_READS: u32 = 100_000;

/// A register of the directly addressed window, by its byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub(super) enum Reg {
    /// Pops the next word of the frame being read (0x00..0x1C all alias it).
    RxDataFifo = 0x00,
    /// Pushes a TX command or data word (0x20..0x3C all alias it).
    TxDataFifo = 0x20,
    /// Pops the next received frame's status word.
    RxStatusFifo = 0x40,
    /// Pops the next transmitted frame's status word.
    TxStatusFifo = 0x48,
    /// Interrupt pin configuration.
    IrqCfg = 0x54,
    /// Interrupt status: write 1 to clear.
    IntSts = 0x58,
    /// Interrupt enables, same bits as `IntSts`.
    IntEn = 0x5C,
    /// Always reads 0x8765_4321: the chip is there and the bus is right.
    ByteTest = 0x64,
    /// Levels at which the FIFO interrupts fire.
    FifoInt = 0x68,
    /// Receive configuration (data offset and end alignment, dump).
    RxCfg = 0x6C,
    /// Transmit configuration.
    TxCfg = 0x70,
    /// Hardware configuration: soft reset.
    HwCfg = 0x74,
    /// How full the RX FIFOs are.
    RxFifoInf = 0x7C,
    /// How full the TX FIFOs are.
    TxFifoInf = 0x80,
    /// Power management: the chip's READY bit.
    PmtCtrl = 0x84,
    /// Command for the MAC's indirectly addressed registers.
    MacCsrCmd = 0xA4,
    /// Data for the MAC's indirectly addressed registers.
    MacCsrData = 0xA8,
}

/// `BYTE_TEST`'s value.
pub(super) const BYTE_TEST: u32 = 0x8765_4321;

// IRQ_CFG.
/// The IRQ pin is enabled.
pub(super) const IRQ_EN: u32 = 1 << 8;
/// The IRQ pin is active high (else active low).
pub(super) const IRQ_POL: u32 = 1 << 4;
/// The IRQ pin is push-pull (else open drain).
pub(super) const IRQ_TYPE: u32 = 1 << 0;

// INT_STS / INT_EN.
/// The PHY raised one of the interrupts its mask register enables.
pub(super) const INT_PHY: u32 = 1 << 18;
/// Receiver error: the RX data FIFO was read past its end.
pub(super) const INT_RXE: u32 = 1 << 14;
/// Transmitter error: a malformed TX command sequence.
pub(super) const INT_TXE: u32 = 1 << 13;
/// TX data FIFO has more free space than `FIFO_INT`'s level.
pub(super) const INT_TDFA: u32 = 1 << 9;
/// RX status FIFO holds more words than `FIFO_INT`'s level.
pub(super) const INT_RSFL: u32 = 1 << 3;

// FIFO_INT.
/// Shift of the TX-data-available level, in 64-byte units.
pub(super) const FIFO_INT_TDAL_SHIFT: u32 = 24;

// TX_CFG.
/// The transmitter is on.
pub(super) const TX_ON: u32 = 1 << 1;

// HW_CFG.
/// Soft reset; the chip clears it when done.
pub(super) const SRST: u32 = 1 << 0;

// PMT_CTRL.
/// The chip is ready to be accessed.
pub(super) const READY: u32 = 1 << 0;

// RX_FIFO_INF / TX_FIFO_INF.
/// Words in the RX status FIFO (`RXSUSED`).
pub(super) fn rx_status_used(rx_fifo_inf: u32) -> u32 {
    (rx_fifo_inf >> 16) & 0xFF
}
/// Bytes in the RX data FIFO (`RXDUSED`).
pub(super) fn rx_data_used(rx_fifo_inf: u32) -> u32 {
    rx_fifo_inf & 0xFFFF
}
/// Words in the TX status FIFO (`TXSUSED`).
pub(super) fn tx_status_used(tx_fifo_inf: u32) -> u32 {
    (tx_fifo_inf >> 16) & 0xFF
}
/// Free bytes in the TX data FIFO (`TDFREE`).
pub(super) fn tx_data_free(tx_fifo_inf: u32) -> u32 {
    tx_fifo_inf & 0xFFFF
}

// RX status word.
/// Frame length in bytes, CRC included: bits 29..16.
pub(super) fn rx_status_len(status: u32) -> u32 {
    (status >> 16) & 0x3FFF
}
/// The frame failed the address filter (only delivered in receive-all mode).
pub(super) const RX_FILTER_FAIL: u32 = 1 << 30;
/// Error summary: CRC, runt, too long, collision, watchdog or MII error.
pub(super) const RX_ERROR: u32 = 1 << 15;

// TX command A and B, TX status.
/// This buffer starts the frame.
pub(super) const TX_FIRST_SEGMENT: u32 = 1 << 13;
/// This buffer ends the frame.
pub(super) const TX_LAST_SEGMENT: u32 = 1 << 12;
/// Error summary of a transmitted frame.
pub(super) const TX_ERROR: u32 = 1 << 15;

// MAC_CSR_CMD.
const MAC_CSR_BUSY: u32 = 1 << 31;
const MAC_CSR_READ: u32 = 1 << 30;

/// A MAC register, reached through `MAC_CSR_CMD`, by its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(super) enum MacReg {
    /// MAC control.
    Cr = 1,
    /// Station address, bytes 4 and 5.
    AddrH = 2,
    /// Station address, bytes 0 to 3.
    AddrL = 3,
    /// MII access: which PHY register, read or write, busy.
    MiiAcc = 6,
    /// MII data.
    MiiData = 7,
}

// MAC_CR.
/// Receive-all, promiscuous: the reset value has it on; the driver turns
/// it off so the MAC filters on its own address and broadcast.
pub(super) const MAC_PRMS: u32 = 1 << 18;
/// Full duplex.
pub(super) const MAC_FDPX: u32 = 1 << 20;
/// Transmitter enabled.
pub(super) const MAC_TXEN: u32 = 1 << 3;
/// Receiver enabled.
pub(super) const MAC_RXEN: u32 = 1 << 2;

// MII_ACC.
/// The internal PHY's address on the MII.
const PHY_ADDRESS: u32 = 1;
const MII_WRITE: u32 = 1 << 1;
const MII_BUSY: u32 = 1 << 0;

/// A register of the internal PHY (IEEE 802.3 clause 22 and SMSC's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(super) enum PhyReg {
    /// Basic status: link.
    Status = 1,
    /// What this end advertises.
    Advertisement = 4,
    /// What the link partner advertised.
    PartnerAbility = 5,
    /// Interrupt source: reading clears it.
    InterruptSource = 29,
    /// Interrupt mask.
    InterruptMask = 30,
}

/// Basic status: the link is up.
pub(super) const PHY_LINK_UP: u16 = 1 << 2;
/// Advertisement and partner ability: 100BASE-TX and 10BASE-T full duplex.
pub(super) const PHY_FULL_DUPLEX: u16 = (1 << 8) | (1 << 6);
/// Interrupt source and mask: auto-negotiation completed.
pub(super) const PHY_INT_AUTONEG_DONE: u16 = 1 << 6;
/// Interrupt source and mask: the link went down.
pub(super) const PHY_INT_LINK_DOWN: u16 = 1 << 4;

/// The right to touch the chip's registers. The driver holds one; the
/// interrupt handler makes its own for the two registers it shares with
/// the driver (`INT_STS`, `INT_EN`), under the rules in `super`.
#[derive(Debug)]
pub(super) struct Regs(());

impl Regs {
    /// Access to the registers.
    ///
    /// # Safety
    ///
    /// The caller is the driver, of which there is one (see
    /// `Lan9118::new`), or the chip's interrupt handler, which keeps to
    /// `INT_STS` and `INT_EN`.
    pub(super) const unsafe fn new() -> Self {
        Self(())
    }

    /// Reads `reg`. Reading a FIFO port pops it.
    pub(super) fn read(&self, reg: Reg) -> u32 {
        // SAFETY: `reg` is one of the chip's registers, a 4-byte aligned
        // offset inside its 256-byte window at `BASE`, which is device
        // memory and no Rust object; a volatile 32-bit read is how the chip
        // is read, and popping a FIFO port is what the caller asked for.
        unsafe { ptr::with_exposed_provenance::<u32>(BASE + reg as usize).read_volatile() }
    }

    /// Writes `value` to `reg`.
    pub(super) fn write(&self, reg: Reg, value: u32) {
        // SAFETY: as in `read`: a register of the chip's window, written
        // with one volatile 32-bit store; no Rust object lives there.
        unsafe {
            ptr::with_exposed_provenance_mut::<u32>(BASE + reg as usize).write_volatile(value)
        }
    }

    /// Reads `reg` until `done` holds for its value, `BUSY_READS` times
    /// at most.
    fn poll(&self, reg: Reg, done: impl Fn(u32) -> bool) -> Option<u32> {
        (0..BUSY_READS).map(|_| self.read(reg)).find(|v| done(*v))
    }

    /// Waits until the MAC's register interface is idle.
    fn mac_idle(&self) -> Result<(), NicError> {
        self.poll(Reg::MacCsrCmd, |v| v & MAC_CSR_BUSY == 0)
            .map(drop)
            .ok_or(NicError::MacBusy)
    }

    /// Reads a MAC register.
    pub(super) fn mac_read(&self, reg: MacReg) -> Result<u32, NicError> {
        self.mac_idle()?;
        self.write(Reg::MacCsrCmd, MAC_CSR_BUSY | MAC_CSR_READ | reg as u32);
        self.mac_idle()?;
        Ok(self.read(Reg::MacCsrData))
    }

    /// Writes a MAC register.
    pub(super) fn mac_write(&self, reg: MacReg, value: u32) -> Result<(), NicError> {
        self.mac_idle()?;
        self.write(Reg::MacCsrData, value);
        self.write(Reg::MacCsrCmd, MAC_CSR_BUSY | reg as u32);
        self.mac_idle()
    }

    /// Waits until the MII is idle.
    fn mii_idle(&self) -> Result<(), NicError> {
        for _ in 0..BUSY_READS {
            if self.mac_read(MacReg::MiiAcc)? & MII_BUSY == 0 {
                return Ok(());
            }
        }
        Err(NicError::MiiBusy)
    }

    /// Reads a PHY register.
    pub(super) fn phy_read(&self, reg: PhyReg) -> Result<u16, NicError> {
        self.mii_idle()?;
        let access = (PHY_ADDRESS << 11) | ((reg as u32) << 6) | MII_BUSY;
        self.mac_write(MacReg::MiiAcc, access)?;
        self.mii_idle()?;
        // The PHY's registers are 16 bits wide: MII_DATA's upper half is 0.
        let [low, high, _, _] = self.mac_read(MacReg::MiiData)?.to_le_bytes();
        Ok(u16::from_le_bytes([low, high]))
    }

    /// Writes a PHY register.
    pub(super) fn phy_write(&self, reg: PhyReg, value: u16) -> Result<(), NicError> {
        self.mii_idle()?;
        self.mac_write(MacReg::MiiData, u32::from(value))?;
        let access = (PHY_ADDRESS << 11) | ((reg as u32) << 6) | MII_WRITE | MII_BUSY;
        self.mac_write(MacReg::MiiAcc, access)?;
        self.mii_idle()
    }

    /// Polls `reg` until `done` holds for its value; the caller says what
    /// it was waiting for.
    pub(super) fn wait(
        &self,
        reg: Reg,
        done: impl Fn(u32) -> bool,
        timeout: NicError,
    ) -> Result<u32, NicError> {
        self.poll(reg, done).ok_or(timeout)
    }
}
