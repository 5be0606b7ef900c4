//! The intercom's link over an `embassy-net` TCP socket (feature
//! `embassy-net`), shared by the boards: reading what came, and writing
//! the door's messages, each after its 4-byte length.

use embassy_net::tcp::{TcpReader, TcpWriter};

use crate::Intercom;

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
