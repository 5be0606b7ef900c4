//! The messages one side sent on a seat, the newest only, bounded in count
//! and bytes: what it can replay to the other side.

use alloc::collections::VecDeque;

use super::ResumeError;

/// Sent messages `start..start + items.len()`.
#[derive(Debug, Clone)]
pub(super) struct History<B> {
    items: VecDeque<B>,
    /// How many were sent before `items[0]`.
    start: u64,
    bytes: usize,
}

impl<B> Default for History<B> {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
            start: 0,
            bytes: 0,
        }
    }
}

impl<B: AsRef<[u8]>> History<B> {
    /// How many messages were sent.
    pub(super) fn sent(&self) -> u64 {
        self.start + self.items.len() as u64
    }

    /// The bytes kept.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps `item`, the newest.
    pub(super) fn push(&mut self, item: B) {
        self.bytes += item.as_ref().len();
        self.items.push_back(item);
    }

    /// Forgets the oldest kept message; its size, or `None` if none is
    /// kept.
    pub(super) fn pop_oldest(&mut self) -> Option<usize> {
        let item = self.items.pop_front()?;
        let len = item.as_ref().len();
        self.bytes -= len;
        self.start += 1;
        Some(len)
    }

    /// How many messages are kept.
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// The kept messages, oldest first.
    pub(super) fn iter(&self) -> impl ExactSizeIterator<Item = &B> {
        self.items.iter()
    }

    /// Forgets what the other side says it has received (`received`
    /// messages); what is left is what it has not. Nothing changes on an
    /// error.
    ///
    /// # Errors
    /// [`ResumeError::Position`] if this side cannot replay from there.
    pub(super) fn acknowledge(&mut self, received: u64) -> Result<(), ResumeError> {
        self.check(received)?;
        while self.start < received {
            self.pop_oldest();
        }
        Ok(())
    }

    /// Whether this side can replay from `received`.
    pub(super) fn check(&self, received: u64) -> Result<(), ResumeError> {
        if received < self.start || received > self.sent() {
            return Err(ResumeError::Position {
                received,
                oldest: self.start,
                sent: self.sent(),
            });
        }
        Ok(())
    }

    /// Forgets everything and counts from zero again.
    pub(super) fn clear(&mut self) {
        self.items.clear();
        self.start = 0;
        self.bytes = 0;
    }
}
