//! A connection's seat in a room: its transport, the link carrying it (if
//! any), the resume token, and the control messages sent on it, kept for a
//! resume.

use std::collections::VecDeque;

use bytes::Bytes;
use satsuma_core::Instant;
use satsuma_core::wire::{TOKEN_LEN, Transport};

use super::LinkTx;

#[derive(Debug)]
pub(super) struct Seat {
    pub transport: Transport,
    token: [u8; TOKEN_LEN],
    pub link: Option<LinkTx>,
    /// Control messages sent on this seat, the newest `resume_history`.
    history: VecDeque<Bytes>,
    /// How many control messages were sent before `history[0]`.
    history_start: u64,
    /// Since when no link has carried this seat.
    pub detached_since: Option<Instant>,
}

impl Seat {
    pub(super) fn new(transport: Transport, token: [u8; TOKEN_LEN], link: LinkTx) -> Self {
        Self {
            transport,
            token,
            link: Some(link),
            history: VecDeque::new(),
            history_start: 0,
            detached_since: None,
        }
    }

    /// Control messages sent on this seat so far.
    fn sent(&self) -> u64 {
        self.history_start + self.history.len() as u64
    }

    /// Keeps a control message for a resume, the newest `max` only.
    pub(super) fn remember(&mut self, bytes: Bytes, max: usize) {
        self.history.push_back(bytes);
        while self.history.len() > max {
            self.history.pop_front();
            self.history_start += 1;
        }
    }

    /// What a new link must be sent to take the seat over from a client
    /// that received `received` control messages on it: `None` when the
    /// token is wrong (compared in constant time; the all-zero token of a
    /// seat made without randomness never matches) or the position is not
    /// one this seat can replay from.
    pub(super) fn missed(
        &self,
        token: &[u8; TOKEN_LEN],
        received: u64,
    ) -> Option<impl Iterator<Item = &Bytes>> {
        let token_ok = *token != [0; TOKEN_LEN]
            && token
                .iter()
                .zip(&self.token)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !token_ok || received < self.history_start || received > self.sent() {
            return None;
        }
        let skip = usize::try_from(received - self.history_start).ok()?;
        Some(self.history.iter().skip(skip))
    }
}
