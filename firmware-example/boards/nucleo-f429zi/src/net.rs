//! The board's Ethernet: the STM32F429's MAC (embassy-stm32's `eth`, an
//! `embassy_net_driver::Driver`) and the LAN8742A PHY beside it on RMII.
//!
//! The pins are wired on the board (UM1974, "Ethernet"; solder bridges as
//! shipped): they are not free for anything else.
//!
//! | RMII signal | pin |
//! |---|---|
//! | REF_CLK (50 MHz from the PHY) | PA1 |
//! | MDIO | PA2 |
//! | CRS_DV | PA7 |
//! | TXD1 | PB13 |
//! | MDC | PC1 |
//! | RXD0 | PC4 |
//! | RXD1 | PC5 |
//! | TX_EN | PG11 |
//! | TXD0 | PG13 |
//!
//! The PHY answers at management address 0 ([`PHY_ADDRESS`]).

use embassy_stm32::eth::{Ethernet, GenericPhy, PacketQueue, Sma};
use embassy_stm32::peripherals::{ETH, ETH_SMA};

/// The LAN8742A's address on the management bus (its PHYAD0 strap is
/// low on the board).
pub const PHY_ADDRESS: u8 = 0;

/// Frames the MAC's DMA can hold each way: 4 to send, 8 received (an MLS
/// Welcome for 16 members is four full frames). 4 × 1,514 + 8 × 1,536 B
/// with the descriptors: about 18 KiB of SRAM.
pub type Queue = PacketQueue<4, 8>;

/// The Ethernet driver embassy-net runs.
pub type Nic = Ethernet<'static, ETH, GenericPhy<Sma<'static, ETH_SMA>>>;

/// A MAC address of this chip's own: the locally administered, unicast
/// prefix `02` and five bytes of an FNV-1a hash of the chip's 96-bit
/// unique ID, so every board gets the same address at every boot and two
/// boards (almost surely) different ones.
#[must_use]
pub fn mac_address() -> [u8; 6] {
    mac_from_uid(&embassy_stm32::uid::uid())
}

fn mac_from_uid(uid: &[u8; 12]) -> [u8; 6] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in uid {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let [h0, h1, h2, h3, h4, ..] = hash.to_le_bytes();
    [0x02, h0, h1, h2, h3, h4]
}
