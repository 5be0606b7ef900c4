//! The KID layout of RFC 9605 §5.2 for MLS senders:
//!
//! ```text
//!   64-S-E bits   S bits   E bits
//!  <-----------> <------> <------>
//! +-------------+--------+-------+
//! | Context ID  | Index  | Epoch |
//! +-------------+--------+-------+
//! ```
//!
//! `E` is fixed for a session; `S` follows the group's size in each epoch, so
//! a receiver first reads the low `E` bits to find the epoch, then uses that
//! epoch's `S` to read the sender.

use crate::error::{Error, KidError};

/// A KID split into its MLS parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MlsKid {
    /// The sender's choice, to run several streams under one index.
    pub context: u64,
    /// The sender's MLS leaf index.
    pub sender: u64,
    /// The low `E` bits of the epoch.
    pub epoch_low: u64,
}

/// `E` and `S` for one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct KidLayout {
    epoch_bits: u8,
    sender_bits: u8,
}

impl KidLayout {
    /// A layout with `epoch_bits` (E) and `sender_bits` (S).
    ///
    /// # Errors
    /// [`KidError::Layout`] when `E` is 0 or `E + S > 64`.
    pub const fn new(epoch_bits: u8, sender_bits: u8) -> Result<Self, Error> {
        if epoch_bits == 0 || epoch_bits as u16 + sender_bits as u16 > 64 {
            return Err(Error::Kid(KidError::Layout {
                sender_bits,
                epoch_bits,
            }));
        }
        Ok(Self {
            epoch_bits,
            sender_bits,
        })
    }

    /// A layout whose `S` is the smallest with `group_size <= 1 << S`. The
    /// group size is the MLS tree's leaf count, so that every leaf index
    /// fits, blank leaves included.
    ///
    /// # Errors
    /// As [`KidLayout::new`].
    pub const fn for_group(epoch_bits: u8, group_size: u64) -> Result<Self, Error> {
        Self::new(epoch_bits, sender_bits_for(group_size))
    }

    /// `E`.
    #[must_use]
    pub const fn epoch_bits(self) -> u8 {
        self.epoch_bits
    }

    /// `S`.
    #[must_use]
    pub const fn sender_bits(self) -> u8 {
        self.sender_bits
    }

    /// `KID = (context << (S + E)) + (sender << E) + (epoch % (1 << E))`.
    ///
    /// # Errors
    /// [`KidError::SenderIndex`] or [`KidError::Context`] when a part does
    /// not fit.
    pub const fn encode(self, context: u64, sender: u64, epoch: u64) -> Result<u64, Error> {
        let e = self.epoch_bits as u32;
        let s = self.sender_bits as u32;
        if sender > mask(s) {
            return Err(Error::Kid(KidError::SenderIndex {
                index: sender,
                bits: self.sender_bits,
            }));
        }
        if context > mask(64 - s - e) {
            return Err(Error::Kid(KidError::Context { context }));
        }
        let context_part = if s + e == 64 { 0 } else { context << (s + e) };
        let sender_part = if s == 0 { 0 } else { sender << e };
        Ok(context_part | sender_part | (epoch & mask(e)))
    }

    /// Splits a KID. Any 64-bit value splits; whether its parts name a real
    /// sender is for the key ring to decide.
    #[must_use]
    pub const fn decode(self, kid: u64) -> MlsKid {
        let e = self.epoch_bits as u32;
        let s = self.sender_bits as u32;
        MlsKid {
            context: if s + e == 64 { 0 } else { kid >> (s + e) },
            sender: (kid >> e) & mask(s),
            epoch_low: kid & mask(e),
        }
    }
}

/// The smallest `S` with `group_size <= 1 << S`.
#[must_use]
#[allow(clippy::cast_possible_truncation)] // At most 64.
pub const fn sender_bits_for(group_size: u64) -> u8 {
    if group_size <= 1 {
        0
    } else {
        // At most 64, so it fits in a u8.
        (64 - (group_size - 1).leading_zeros()) as u8
    }
}

/// The low `bits` bits set.
const fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_figure_examples() {
        // RFC 9605 §5.2, figure "An Example Sequence of KIDs" (E=4, S=6).
        let l = KidLayout::new(4, 6).unwrap();
        assert_eq!(l.encode(0, 3, 14).unwrap(), 0x3e);
        assert_eq!(l.encode(0, 7, 14).unwrap(), 0x7e);
        assert_eq!(l.encode(0, 20, 14).unwrap(), 0x14e);
        assert_eq!(l.encode(0, 5, 15).unwrap(), 0x5f);
        assert_eq!(l.encode(2, 2, 16).unwrap(), 0x820);
        assert_eq!(l.encode(3, 2, 16).unwrap(), 0xc20);
        assert_eq!(l.encode(0, 33, 17).unwrap(), 0x211);
        assert_eq!(
            l.decode(0xc20),
            MlsKid {
                context: 3,
                sender: 2,
                epoch_low: 0
            }
        );
    }

    #[test]
    fn sender_bits_cover_the_group() {
        assert_eq!(sender_bits_for(0), 0);
        assert_eq!(sender_bits_for(1), 0);
        assert_eq!(sender_bits_for(2), 1);
        assert_eq!(sender_bits_for(3), 2);
        assert_eq!(sender_bits_for(64), 6);
        assert_eq!(sender_bits_for(65), 7);
        assert_eq!(sender_bits_for(u64::MAX), 64);
    }

    #[test]
    fn parts_that_do_not_fit_are_refused() {
        let l = KidLayout::new(4, 2).unwrap();
        assert_eq!(
            l.encode(0, 4, 0),
            Err(Error::Kid(KidError::SenderIndex { index: 4, bits: 2 }))
        );
        assert!(KidLayout::new(0, 2).is_err());
        assert!(KidLayout::new(8, 57).is_err());
        let full = KidLayout::new(8, 56).unwrap();
        assert_eq!(
            full.encode(1, 0, 0),
            Err(Error::Kid(KidError::Context { context: 1 }))
        );
        let kid = full.encode(0, (1 << 56) - 1, 0xff).unwrap();
        assert_eq!(kid, u64::MAX);
        assert_eq!(full.decode(kid).sender, (1 << 56) - 1);
    }
}
