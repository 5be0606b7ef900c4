//! The intercom's link over an `embassy-net` TCP socket (feature
//! `embassy-net`), shared by the boards: reading what came, and writing
//! the door's messages, each after its 4-byte length.

use embassy_net::tcp::{TcpReader, TcpWriter};

use crate::Intercom;

/// The socket's receive buffer: the window the SFU may fill while the
/// door is busy (a commit takes up to a second in QEMU), about a fifth of
/// a second of 15 members' media; what does not fit waits in the SFU,
/// which drops late media, never the room's log.
pub const RX_BUFFER: usize = 4 * 1024;
/// The socket's send buffer. The door sends a 200-byte frame every 20 ms
/// and, as a committer (rooms up to 8), a commit and a Welcome of about
/// 2.6 KB once per join (bench/RESULTS.md: 1,066 B for 2 members, 4,713
/// for 16), which [`write_all`] passes through in pieces.
/// 2 KiB, not 4: the RAM budget of a 16-member room (README).
pub const TX_BUFFER: usize = 2 * 1024;

/// Reads what has come into `space`: how many bytes, or why the link is
/// over.
///
/// # Errors
/// When the SFU closed the link, or the read failed.
pub async fn read_into(
    reader: &mut TcpReader<'_>,
    space: &mut [u8],
) -> Result<usize, &'static str> {
    match reader.read(space).await {
        Ok(0) => Err("the SFU closed the link"),
        Ok(n) => Ok(n),
        Err(_) => Err("read failed"),
    }
}

/// Writes all of `bytes`.
///
/// # Errors
/// When the socket takes no more.
pub async fn write_all(writer: &mut TcpWriter<'_>, mut bytes: &[u8]) -> Result<(), ()> {
    while !bytes.is_empty() {
        match writer.write(bytes).await {
            Ok(0) | Err(_) => return Err(()),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
        }
    }
    Ok(())
}

/// Writes every message the door has queued, each after its length.
///
/// # Errors
/// When the socket takes no more.
pub async fn flush(writer: &mut TcpWriter<'_>, door: &mut Intercom) -> Result<(), ()> {
    while let Some(body) = door.poll_transmit() {
        let len = u32::try_from(body.len()).map_err(|_| ())?;
        write_all(writer, &len.to_be_bytes()).await?;
        write_all(writer, &body).await?;
    }
    Ok(())
}
