//! CRC-32 as in IEEE 802.3 and zlib (reflected polynomial 0xEDB8_8320,
//! initial value and final XOR all ones): it tells a flash slot that was
//! damaged or half written from one that holds what was saved. It is no
//! defence against an attacker, who can recompute it.
//!
//! Bit by bit: a few dozen bytes of code, no table in flash. A 16 KiB
//! record takes well under a millisecond on a Cortex-M4, once per save and
//! load.

/// A running CRC-32.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Crc32(u32);

impl Crc32 {
    const POLY: u32 = 0xEDB8_8320;

    pub(crate) const fn new() -> Self {
        Self(!0)
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        let mut crc = self.0;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                // All ones when the low bit is set, zero otherwise.
                let mask = (crc & 1).wrapping_neg();
                crc = (crc >> 1) ^ (Self::POLY & mask);
            }
        }
        self.0 = crc;
    }

    pub(crate) const fn finish(self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::cast_possible_truncation)] // Test code, small numbers.
mod tests {
    use super::Crc32;

    fn crc(bytes: &[u8]) -> u32 {
        let mut c = Crc32::new();
        c.update(bytes);
        c.finish()
    }

    #[test]
    fn check_values() {
        // The catalogue's check value for CRC-32/ISO-HDLC, and zlib's.
        assert_eq!(crc(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc(b""), 0);
        assert_eq!(
            crc(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn chunked_equals_whole() {
        let data: [u8; 100] = core::array::from_fn(|i| (i * 7) as u8);
        let mut c = Crc32::new();
        c.update(&data[..33]);
        c.update(&data[33..]);
        assert_eq!(c.finish(), crc(&data));
    }
}
