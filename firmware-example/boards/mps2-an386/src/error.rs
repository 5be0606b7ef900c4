//! The board crate's one error type, with a detail enum for each part that
//! can fail.

use core::fmt;

/// Why the board could not do what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The LAN9118 Ethernet controller could not be brought up.
    Nic(NicError),
    /// A request to the host over semihosting failed.
    Host(HostError),
}

/// Why the LAN9118 could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NicError {
    /// A driver already owns the chip.
    Taken,
    /// `BYTE_TEST` did not read 0x8765_4321: no chip, or the bus is wrong.
    NotFound {
        /// What it read instead.
        byte_test: u32,
    },
    /// The chip never set `PMT_CTRL.READY`.
    NotReady,
    /// The soft reset never finished.
    ResetTimeout,
    /// The MAC's register interface stayed busy.
    MacBusy,
    /// The PHY's management interface (MII) stayed busy.
    MiiBusy,
    /// The MAC address registers hold no usable address (all zeros, all
    /// ones, or a multicast address).
    NoMacAddress,
}

/// Why a semihosting request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostError {
    /// The host would not open the file.
    Open,
    /// The host's file ended, or its reads failed, before the bytes asked
    /// for arrived.
    Read {
        /// Bytes still missing.
        missing: usize,
    },
    /// The host wrote fewer bytes than given.
    Write,
    /// The host gave no command line (or one too long for the buffer).
    CommandLine,
    /// The command line is not UTF-8.
    NotUtf8,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Nic(e) => write!(f, "LAN9118: {e}"),
            Self::Host(e) => write!(f, "semihosting: {e}"),
        }
    }
}

impl fmt::Display for NicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Taken => f.write_str("a driver already owns the chip"),
            Self::NotFound { byte_test } => {
                write!(f, "BYTE_TEST reads {byte_test:#010x}, not 0x87654321")
            }
            Self::NotReady => f.write_str("the chip never became ready"),
            Self::ResetTimeout => f.write_str("the soft reset never finished"),
            Self::MacBusy => f.write_str("the MAC's register interface stayed busy"),
            Self::MiiBusy => f.write_str("the PHY's management interface stayed busy"),
            Self::NoMacAddress => f.write_str("no usable MAC address"),
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open => f.write_str("the host would not open the file"),
            Self::Read { missing } => write!(f, "the host's read ended {missing} bytes short"),
            Self::Write => f.write_str("the host wrote fewer bytes than given"),
            Self::CommandLine => f.write_str("the host gave no command line"),
            Self::NotUtf8 => f.write_str("the command line is not UTF-8"),
        }
    }
}

impl core::error::Error for Error {}
impl core::error::Error for NicError {}
impl core::error::Error for HostError {}

impl From<NicError> for Error {
    fn from(e: NicError) -> Self {
        Self::Nic(e)
    }
}

impl From<HostError> for Error {
    fn from(e: HostError) -> Self {
        Self::Host(e)
    }
}
