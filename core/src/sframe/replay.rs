//! A sliding anti-replay window over one sender's counters, in the manner of
//! SRTP (RFC 3711 §3.3.2) with the SFrame CTR as the index.
//!
//! The window remembers the highest counter accepted and which of the
//! [`ReplayWindow::SIZE`] counters below it were seen. Use it in two steps:
//! [`ReplayWindow::check`] before decrypting, [`ReplayWindow::accept`] only
//! after the frame authenticated, so a forged frame can never move it.

use crate::error::Error;

/// Which recent counters of one sender were already accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReplayWindow {
    /// The highest accepted counter, or `None` before the first frame.
    highest: Option<u64>,
    /// Bit `i` set: counter `highest - i` was accepted.
    seen: u128,
}

impl ReplayWindow {
    /// How many counters below the highest are still accepted out of order:
    /// at 50 audio frames a second, 2.5 s of reordering.
    pub const SIZE: u64 = 128;

    /// An empty window: any counter is new.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            highest: None,
            seen: 0,
        }
    }

    /// The highest counter accepted so far.
    #[must_use]
    pub const fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Whether `ctr` would be accepted now. Changes nothing.
    ///
    /// # Errors
    /// [`Error::Replay`] (with `kid` filled in by the caller's argument) when
    /// `ctr` was accepted before or is [`Self::SIZE`] or more below the
    /// highest.
    pub const fn check(&self, kid: u64, ctr: u64) -> Result<(), Error> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if ctr > highest {
            return Ok(());
        }
        let age = highest - ctr;
        if age >= Self::SIZE || self.seen & (1u128 << age) != 0 {
            return Err(Error::Replay { kid, ctr });
        }
        Ok(())
    }

    /// Records `ctr` as accepted. Call only after the frame authenticated
    /// and [`Self::check`] passed.
    pub const fn accept(&mut self, ctr: u64) {
        match self.highest {
            None => {
                self.highest = Some(ctr);
                self.seen = 1;
            }
            Some(highest) if ctr > highest => {
                let shift = ctr - highest;
                self.seen = if shift >= Self::SIZE {
                    0
                } else {
                    self.seen << shift
                };
                self.seen |= 1;
                self.highest = Some(ctr);
            }
            Some(highest) => {
                let age = highest - ctr;
                if age < Self::SIZE {
                    self.seen |= 1u128 << age;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(w: &mut ReplayWindow, ctr: u64) -> Result<(), Error> {
        w.check(1, ctr)?;
        w.accept(ctr);
        Ok(())
    }

    #[test]
    fn in_order_then_duplicate_is_refused() {
        let mut w = ReplayWindow::new();
        for ctr in 0..10 {
            take(&mut w, ctr).unwrap();
        }
        assert_eq!(take(&mut w, 9), Err(Error::Replay { kid: 1, ctr: 9 }));
        assert_eq!(take(&mut w, 0), Err(Error::Replay { kid: 1, ctr: 0 }));
        assert_eq!(w.highest(), Some(9));
    }

    #[test]
    fn out_of_order_inside_the_window_is_accepted_once() {
        let mut w = ReplayWindow::new();
        take(&mut w, 200).unwrap();
        take(&mut w, 150).unwrap();
        take(&mut w, 73).unwrap(); // age 127: the oldest still inside
        assert_eq!(take(&mut w, 150), Err(Error::Replay { kid: 1, ctr: 150 }));
        assert_eq!(take(&mut w, 72), Err(Error::Replay { kid: 1, ctr: 72 }));
        take(&mut w, 199).unwrap();
    }

    #[test]
    fn a_big_jump_forgets_the_old_window() {
        let mut w = ReplayWindow::new();
        take(&mut w, 5).unwrap();
        take(&mut w, 5 + 1000).unwrap();
        assert_eq!(take(&mut w, 5), Err(Error::Replay { kid: 1, ctr: 5 }));
        take(&mut w, 1004).unwrap();
        take(&mut w, u64::MAX).unwrap();
        assert_eq!(
            take(&mut w, u64::MAX),
            Err(Error::Replay {
                kid: 1,
                ctr: u64::MAX
            })
        );
    }

    #[test]
    fn check_alone_does_not_advance() {
        let mut w = ReplayWindow::new();
        take(&mut w, 10).unwrap();
        w.check(1, 500).unwrap();
        // 500 was never accepted, so 11 is still fresh.
        take(&mut w, 11).unwrap();
        assert_eq!(w.highest(), Some(11));
    }
}
