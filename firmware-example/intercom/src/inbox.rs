//! Messages out of a byte stream: the intercom link's 4-byte big-endian
//! length, then the message. Bytes arrive in whatever pieces TCP gives;
//! [`Inbox`] keeps them in a small fixed buffer and hands out each whole
//! message. Media and the commits of a 16-member room fit that buffer and
//! cost no allocation. A larger message (a Welcome with its ratchet tree)
//! is read into an allocation of exactly its size, freed once handed out:
//! a buffer sized for the largest message would hold 16 KiB of RAM for
//! ever to serve one message per join. A length of zero, one over the
//! limit, or one the heap cannot hold, is an error: the link is no use
//! any more.

use alloc::vec::Vec;

use satsuma_core::wire::frame_len;

/// The largest message a door takes from the SFU: a Welcome for a
/// 16-member room with its ratchet tree is 4,713 B (README, MLS message
/// sizes). A larger one ends the link (and is logged), never the firmware.
pub const LARGEST: usize = 16 * 1024;
/// The boards' inbox buffer: media (about 200 B a frame) and every commit
/// of a 16-member room (an add 1,163 B, a remove 1,016 B), read with no
/// allocation. A larger message (a Welcome) is read into the heap for as
/// long as it takes to handle it. 2 KiB, not 4: the RAM budget of a
/// 16-member room (README).
pub const BUFFER: usize = 2 * 1024;

/// Why the stream cannot be read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxError {
    /// A length the wire never sends (zero, or over its limit).
    BadLength,
    /// A message larger than this inbox takes (its length).
    TooLarge(usize),
    /// A message larger than the buffer, for which the heap had no room
    /// (its length).
    NoMemory(usize),
}

impl core::fmt::Display for InboxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadLength => f.write_str("a frame of no valid length"),
            Self::TooLarge(n) => {
                write!(f, "a message of {n} bytes, larger than the intercom takes")
            }
            Self::NoMemory(n) => {
                write!(f, "a message of {n} bytes, for which the heap has no room")
            }
        }
    }
}

/// A stream's bytes, until they make whole messages.
#[derive(Debug)]
pub struct Inbox<'a> {
    buf: &'a mut [u8],
    filled: usize,
    /// The largest message taken.
    max: usize,
    /// A message too large for `buf`, being read into its own allocation
    /// of its exact size, and how many of its bytes have arrived.
    large: Option<(Vec<u8>, usize)>,
}

impl<'a> Inbox<'a> {
    /// An empty inbox over `buf`, taking messages up to `max` bytes: those
    /// up to `buf.len() - 4` bytes in `buf`, larger ones in an allocation
    /// of their own.
    pub fn new(buf: &'a mut [u8], max: usize) -> Self {
        Self {
            buf,
            filled: 0,
            max,
            large: None,
        }
    }

    /// Where the next bytes from the stream go. Never empty while
    /// [`Inbox::drain`] has returned `Ok`: a message that would not fit is
    /// refused as soon as its length is read, and a large one's space ends
    /// with it, so that the bytes after it land in the buffer.
    pub fn space(&mut self) -> &mut [u8] {
        match self.large.as_mut() {
            Some((message, got)) => message.get_mut(*got..).unwrap_or_default(),
            None => self.buf.get_mut(self.filled..).unwrap_or_default(),
        }
    }

    /// `n` bytes were written into [`Inbox::space`]: calls `each` with
    /// every message now whole, in order.
    ///
    /// # Errors
    /// [`InboxError`] when the stream announces a length it may not, or
    /// one the heap cannot hold; the messages before it were handed out.
    pub fn drain(&mut self, n: usize, mut each: impl FnMut(&[u8])) -> Result<(), InboxError> {
        if let Some((message, got)) = self.large.as_mut() {
            *got = (*got + n).min(message.len());
            if *got == message.len() {
                each(message);
                self.large = None;
            }
            return Ok(());
        }
        self.filled = (self.filled + n).min(self.buf.len());
        while let Some(&header) = self.buf.get(..self.filled).and_then(<[u8]>::first_chunk) {
            let len = frame_len(header).map_err(|_| InboxError::BadLength)?;
            if len > self.max {
                return Err(InboxError::TooLarge(len));
            }
            let end = len + 4;
            if end > self.buf.len() {
                // Every byte after the length is this message's: it cannot
                // be whole in the buffer.
                let mut message = Vec::new();
                message
                    .try_reserve_exact(len)
                    .map_err(|_| InboxError::NoMemory(len))?;
                message.resize(len, 0);
                let so_far = self.buf.get(4..self.filled).unwrap_or_default();
                for (to, from) in message.iter_mut().zip(so_far) {
                    *to = *from;
                }
                self.large = Some((message, so_far.len()));
                self.filled = 0;
                return Ok(());
            }
            let Some(message) = self.buf.get(4..end).filter(|_| end <= self.filled) else {
                break;
            };
            each(message);
            self.buf.copy_within(end..self.filled, 0);
            self.filled -= end;
        }
        Ok(())
    }

    /// Forgets what a lost stream left half-read.
    pub fn clear(&mut self) {
        self.filled = 0;
        self.large = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Test code.
mod tests {
    use alloc::vec::Vec;

    use super::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    fn feed(inbox: &mut Inbox<'_>, bytes: &[u8]) -> Result<Vec<Vec<u8>>, InboxError> {
        let space = inbox.space();
        space[..bytes.len()].copy_from_slice(bytes);
        let mut got = Vec::new();
        inbox.drain(bytes.len(), |m| got.push(m.to_vec()))?;
        Ok(got)
    }

    #[test]
    fn messages_come_out_whole_however_the_bytes_arrive() {
        let mut buf = [0; 64];
        let mut inbox = Inbox::new(&mut buf, 60);
        let mut stream = framed(b"first");
        stream.extend(framed(b"second message"));
        stream.extend(framed(b"3"));
        // One byte at a time.
        let mut got = Vec::new();
        for byte in &stream {
            got.extend(feed(&mut inbox, &[*byte]).unwrap());
        }
        assert_eq!(
            got,
            [b"first".to_vec(), b"second message".to_vec(), b"3".to_vec()]
        );
        // All at once.
        assert_eq!(feed(&mut inbox, &stream).unwrap().len(), 3);
        assert!(inbox.space().len() == 64);
    }

    #[test]
    fn bad_or_oversized_lengths_are_errors_not_waits() {
        let mut buf = [0; 16];
        let mut inbox = Inbox::new(&mut buf, 12);
        assert_eq!(feed(&mut inbox, &[0, 0, 0, 0]), Err(InboxError::BadLength));
        inbox.clear();
        // 13 bytes would need 17: refused at once, before it could fill
        // the buffer and wait for ever.
        assert_eq!(
            feed(&mut inbox, &[0, 0, 0, 13]),
            Err(InboxError::TooLarge(13))
        );
        inbox.clear();
        // 12 bytes fit exactly.
        let mut exact = framed(&[7; 12]);
        assert_eq!(feed(&mut inbox, &exact).unwrap(), [alloc::vec![7; 12]]);
        exact.truncate(10);
        assert_eq!(feed(&mut inbox, &exact).unwrap().len(), 0);
        assert!(!inbox.space().is_empty());
    }

    #[test]
    fn a_message_larger_than_the_buffer_arrives_whole_between_small_ones() {
        let mut buf = [0; 16];
        let mut inbox = Inbox::new(&mut buf, 100);
        let large: Vec<u8> = (0..100).collect();
        let mut stream = framed(b"before");
        stream.extend(framed(&large));
        stream.extend(framed(b"after"));
        stream.extend(framed(b"end"));
        // In pieces of every size the space allows, as TCP gives them.
        for piece in [1, 3, 7, 16] {
            let mut got = Vec::new();
            let mut at = 0;
            while at < stream.len() {
                let space = inbox.space();
                assert!(!space.is_empty());
                let n = piece.min(space.len()).min(stream.len() - at);
                space[..n].copy_from_slice(&stream[at..at + n]);
                at += n;
                inbox.drain(n, |m| got.push(m.to_vec())).unwrap();
            }
            assert_eq!(
                got,
                [
                    b"before".to_vec(),
                    large.clone(),
                    b"after".to_vec(),
                    b"end".to_vec()
                ],
                "in pieces of {piece}"
            );
        }
        // Over the limit: refused, not allocated.
        assert_eq!(
            feed(&mut inbox, &[0, 0, 0, 101]),
            Err(InboxError::TooLarge(101))
        );
        // A lost stream forgets a large message half-read.
        inbox.clear();
        feed(&mut inbox, &framed(&large)[..10]).unwrap();
        inbox.clear();
        assert_eq!(
            feed(&mut inbox, &framed(b"new")).unwrap(),
            [b"new".to_vec()]
        );
    }
}
