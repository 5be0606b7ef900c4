//! Messages out of a byte stream: the intercom link's 4-byte big-endian
//! length, then the message. Bytes arrive in whatever pieces TCP gives;
//! [`Inbox`] keeps them in a fixed buffer and hands out each whole
//! message, without allocating. A length of zero, or one larger than the
//! buffer, is an error: the link is no use any more.

use satsuma_core::wire::frame_len;

/// Why the stream cannot be read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxError {
    /// A length the wire never sends (zero, or over its limit).
    BadLength,
    /// A message larger than this inbox takes (its length).
    TooLarge(usize),
}

impl core::fmt::Display for InboxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadLength => f.write_str("a frame of no valid length"),
            Self::TooLarge(n) => {
                write!(f, "a message of {n} bytes, larger than the intercom takes")
            }
        }
    }
}

/// A stream's bytes, until they make whole messages.
#[derive(Debug)]
pub struct Inbox<'a> {
    buf: &'a mut [u8],
    filled: usize,
}

impl<'a> Inbox<'a> {
    /// An empty inbox over `buf`: the largest message it takes is
    /// `buf.len() - 4` bytes.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, filled: 0 }
    }

    /// Where the next bytes from the stream go. Never empty while
    /// [`Inbox::drain`] has returned `Ok`: a message that would not fit is
    /// refused as soon as its length is read.
    pub fn space(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.filled..).unwrap_or_default()
    }

    /// `n` bytes were written into [`Inbox::space`]: calls `each` with
    /// every message now whole, in order.
    ///
    /// # Errors
    /// [`InboxError`] when the stream announces a length it may not; the
    /// messages before it were handed out.
    pub fn drain(&mut self, n: usize, mut each: impl FnMut(&[u8])) -> Result<(), InboxError> {
        self.filled = (self.filled + n).min(self.buf.len());
        while let Some(&header) = self.buf.get(..self.filled).and_then(<[u8]>::first_chunk) {
            let len = frame_len(header).map_err(|_| InboxError::BadLength)?;
            let end = len + 4;
            if end > self.buf.len() {
                return Err(InboxError::TooLarge(len));
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
        let mut inbox = Inbox::new(&mut buf);
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
        let mut inbox = Inbox::new(&mut buf);
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
}
