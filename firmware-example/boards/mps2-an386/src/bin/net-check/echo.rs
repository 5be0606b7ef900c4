//! The two exchanges with the host's echo server: a TCP stream of a
//! pattern, checked byte by byte as it comes back, and one UDP datagram.
//!
//! Socket buffers (statics, not the heap; not locals either, which the
//! compiler would build on the stack before moving them into the task):
//! - TCP: 4 KiB to receive, 4 KiB to send. The receive buffer is the
//!   window the host may fill: under the LAN9118's 10 KiB RX FIFO, so a
//!   full window never overflows the chip.
//! - UDP: 512 bytes and 2 datagrams each way.

use core::convert::Infallible;

use embassy_futures::select::{Either, select};
use embassy_net::tcp::TcpSocket;
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{Ipv4Address, Stack};
use embassy_time::{Duration, Instant, with_timeout};
use static_cell::ConstStaticCell;

use crate::failure::Failure;

/// The host, as QEMU's user-mode network names it.
pub(crate) const HOST: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);

/// Bytes sent over TCP, and echoed back.
const TCP_BYTES: usize = 256 * 1024;
/// Bytes one write hands the socket at most, and one read takes.
const CHUNK: usize = 1024;
const TCP_RX_LEN: usize = 4096;
const TCP_TX_LEN: usize = 4096;
static TCP_RX: ConstStaticCell<[u8; TCP_RX_LEN]> = ConstStaticCell::new([0; TCP_RX_LEN]);
static TCP_TX: ConstStaticCell<[u8; TCP_TX_LEN]> = ConstStaticCell::new([0; TCP_TX_LEN]);
/// The TCP connection gives up after this long without hearing from the
/// host.
const TCP_IDLE: Duration = Duration::from_secs(10);

const UDP_BUF_LEN: usize = 512;
const UDP_DATAGRAMS: usize = 2;
/// The UDP socket's buffers: metadata and payload each way.
struct UdpBuffers {
    rx_meta: [PacketMetadata; UDP_DATAGRAMS],
    rx: [u8; UDP_BUF_LEN],
    tx_meta: [PacketMetadata; UDP_DATAGRAMS],
    tx: [u8; UDP_BUF_LEN],
}
static UDP_BUFFERS: ConstStaticCell<UdpBuffers> = ConstStaticCell::new(UdpBuffers {
    rx_meta: [PacketMetadata::EMPTY; UDP_DATAGRAMS],
    rx: [0; UDP_BUF_LEN],
    tx_meta: [PacketMetadata::EMPTY; UDP_DATAGRAMS],
    tx: [0; UDP_BUF_LEN],
});
/// The UDP socket's own port.
const UDP_LOCAL_PORT: u16 = 49_152;
/// Bytes of the UDP datagram.
const UDP_LEN: usize = 256;
/// A datagram may be lost: it is sent again after this long, this many
/// times in all.
const UDP_WAIT: Duration = Duration::from_secs(2);
pub(crate) const UDP_TRIES: u32 = 3;

/// The byte at `at` in the stream: the top byte of `at` times 2³²/φ
/// (Fibonacci hashing). Each byte depends on its offset, so a byte lost,
/// repeated or moved shows up.
pub(crate) fn pattern(at: usize) -> u8 {
    let hash = at.wrapping_mul(0x9E37_79B1) >> 24;
    hash.to_le_bytes()[0]
}

/// How the TCP echo went.
#[derive(Debug)]
pub(crate) struct TcpReport {
    /// Bytes sent, and so echoed and checked.
    pub(crate) bytes: usize,
    /// From the SYN to the connection being established.
    pub(crate) connect: Duration,
    /// From connected to the last byte checked.
    pub(crate) elapsed: Duration,
}

/// How the UDP round trips went.
#[derive(Debug)]
pub(crate) struct UdpReport {
    /// Bytes of the datagram.
    pub(crate) bytes: usize,
    /// The first round trip: from its last send to its echo.
    pub(crate) first: Duration,
    /// Datagrams sent before the first echo came.
    pub(crate) tries: u32,
    /// The second round trip, through the host socket the first made QEMU
    /// open.
    pub(crate) second: Duration,
}

/// Connects to the echo server at `port`, writes [`TCP_BYTES`] of the
/// pattern while reading the echo, and checks every byte.
pub(crate) async fn tcp(stack: Stack<'_>, port: u16) -> Result<TcpReport, Failure> {
    let rx = TCP_RX.try_take().ok_or(Failure::Twice)?;
    let tx = TCP_TX.try_take().ok_or(Failure::Twice)?;
    let mut socket = TcpSocket::new(stack, rx, tx);
    socket.set_timeout(Some(TCP_IDLE));
    let connecting = Instant::now();
    socket
        .connect((HOST, port))
        .await
        .map_err(Failure::Connect)?;
    let started = Instant::now();
    let connect = started - connecting;

    let (mut reader, mut writer) = socket.split();
    // Writing ends first; it then waits while the reading finishes. A
    // failed write ends both.
    let write = async {
        let mut chunk = [0u8; CHUNK];
        let mut sent = 0;
        while sent < TCP_BYTES {
            let len = CHUNK.min(TCP_BYTES - sent);
            let out = chunk.get_mut(..len).unwrap_or_default();
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = pattern(sent + i);
            }
            sent += writer.write(out).await.map_err(Failure::Tcp)?;
        }
        writer.flush().await.map_err(Failure::Tcp)?;
        core::future::pending::<Result<Infallible, Failure>>().await
    };
    let read = async {
        let mut buf = [0u8; CHUNK];
        let mut checked = 0;
        while checked < TCP_BYTES {
            let len = reader.read(&mut buf).await.map_err(Failure::Tcp)?;
            if len == 0 {
                return Err(Failure::EchoClosed { at: checked });
            }
            for (i, got) in buf.iter().take(len).enumerate() {
                let at = checked + i;
                let sent = pattern(at);
                if *got != sent {
                    return Err(Failure::Mismatch {
                        at,
                        sent,
                        got: *got,
                    });
                }
            }
            checked += len;
        }
        Ok(checked)
    };
    let bytes = match select(read, write).await {
        Either::First(read) => read?,
        Either::Second(Err(e)) => return Err(e),
        Either::Second(Ok(never)) => match never {},
    };
    let elapsed = started.elapsed();
    socket.close();
    // The close's FIN goes out with the stack's next poll; waiting for it
    // to be acknowledged is not part of the check.
    Ok(TcpReport {
        bytes,
        connect,
        elapsed,
    })
}

/// Sends a datagram of the pattern to the echo server at `port` and
/// checks the echo, twice: the first round trip includes QEMU opening a
/// host socket for the flow, the second does not.
pub(crate) async fn udp(stack: Stack<'_>, port: u16) -> Result<UdpReport, Failure> {
    let UdpBuffers {
        rx_meta,
        rx,
        tx_meta,
        tx,
    } = UDP_BUFFERS.try_take().ok_or(Failure::Twice)?;
    let mut socket = UdpSocket::new(stack, rx_meta, rx, tx_meta, tx);
    socket.bind(UDP_LOCAL_PORT).map_err(Failure::UdpBind)?;

    let (first, tries) = round_trip(&mut socket, port, 0).await?;
    let (second, _) = round_trip(&mut socket, port, UDP_LEN).await?;
    Ok(UdpReport {
        bytes: UDP_LEN,
        first,
        tries,
        second,
    })
}

/// Sends [`UDP_LEN`] bytes of the pattern from offset `from` and waits for
/// their echo, sending again if none comes; says how long the answered
/// send took and how many sends it took.
async fn round_trip(
    socket: &mut UdpSocket<'_>,
    port: u16,
    from: usize,
) -> Result<(Duration, u32), Failure> {
    let datagram: [u8; UDP_LEN] = core::array::from_fn(|i| pattern(from + i));
    let mut reply = [0u8; UDP_BUF_LEN];
    for tries in 1..=UDP_TRIES {
        let sent = Instant::now();
        socket
            .send_to(&datagram, (HOST, port))
            .await
            .map_err(Failure::UdpSend)?;
        let Ok(received) = with_timeout(UDP_WAIT, socket.recv_from(&mut reply)).await else {
            continue;
        };
        let (len, _from) = received.map_err(Failure::UdpRecv)?;
        let elapsed = sent.elapsed();
        if reply.get(..len) != Some(&datagram[..]) {
            return Err(Failure::UdpEcho { len });
        }
        return Ok((elapsed, tries));
    }
    Err(Failure::TimedOut {
        step: "UDP echo",
        limit: UDP_WAIT,
    })
}
