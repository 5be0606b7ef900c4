//! Why a check failed, in words the run prints.

use core::fmt;

use embassy_executor::SpawnError;
use embassy_net::tcp::{self, ConnectError};
use embassy_net::udp::{BindError, RecvError, SendError};
use embassy_time::Duration;
use satsuma_board_mps2_an386 as board;

/// What went wrong.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The board: the LAN9118, or semihosting.
    Board(board::Error),
    /// The command line named no echo port.
    NoPort,
    /// A static was taken twice (a bug in this binary).
    Twice,
    /// The network task could not be spawned.
    Spawn(SpawnError),
    /// A step ran out of time.
    TimedOut {
        /// Which step.
        step: &'static str,
        /// Its limit.
        limit: Duration,
    },
    /// DHCP said it was done but left no address.
    NoLease,
    /// The TCP connection to the echo server failed.
    Connect(ConnectError),
    /// The TCP connection broke.
    Tcp(tcp::Error),
    /// The echo server closed the connection early.
    EchoClosed {
        /// Bytes echoed before it did.
        at: usize,
    },
    /// An echoed byte is not the byte sent.
    Mismatch {
        /// Its offset in the stream.
        at: usize,
        /// What was sent there.
        sent: u8,
        /// What came back.
        got: u8,
    },
    /// The UDP socket could not be bound.
    UdpBind(BindError),
    /// A UDP datagram could not be sent.
    UdpSend(SendError),
    /// A UDP datagram could not be received.
    UdpRecv(RecvError),
    /// The UDP echo is not the datagram sent.
    UdpEcho {
        /// The echo's length.
        len: usize,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Board(e) => write!(f, "{e}"),
            Self::NoPort => f.write_str("no echo port: the command line must be `net-check PORT`"),
            Self::Twice => f.write_str("a static was taken twice"),
            Self::Spawn(e) => write!(f, "spawning the network task: {e}"),
            Self::TimedOut { step, limit } => {
                write!(f, "{step}: no result within {} s", limit.as_secs())
            }
            Self::NoLease => f.write_str("DHCP finished without an IPv4 address"),
            Self::Connect(e) => write!(f, "TCP connect to the echo server: {e:?}"),
            Self::Tcp(e) => write!(f, "TCP: {e:?}"),
            Self::EchoClosed { at } => {
                write!(f, "the echo server closed the connection after {at} bytes")
            }
            Self::Mismatch { at, sent, got } => write!(
                f,
                "echoed byte {at} is {got:#04x}, but {sent:#04x} was sent"
            ),
            Self::UdpBind(e) => write!(f, "UDP bind: {e:?}"),
            Self::UdpSend(e) => write!(f, "UDP send: {e:?}"),
            Self::UdpRecv(e) => write!(f, "UDP receive: {e:?}"),
            Self::UdpEcho { len } => {
                write!(f, "the UDP echo ({len} bytes) is not the datagram sent")
            }
        }
    }
}

impl From<board::Error> for Failure {
    fn from(e: board::Error) -> Self {
        Self::Board(e)
    }
}
