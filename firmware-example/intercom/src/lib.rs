//! Satsuma's door intercom on a Cortex-M4: the pieces of the firmware that
//! are not the board. Today that is where a member's MLS state lives in
//! flash; the call itself is `satsuma-core`'s.
//!
//! It decides nothing about the protocol: [`FlashStore`] keeps the one record
//! a [`Session`](satsuma_core::mls::Session) saves, as the core's
//! [`Store`](satsuma_core::mls::Store) contract asks.
//!
//! - [`FlashStore`]: two alternating flash slots with a sequence number and
//!   a CRC-32, so that a power cut in the middle of a save leaves the
//!   previous record readable. It works over any
//!   [`embedded_storage::nor_flash::NorFlash`]; on the Nucleo board that is
//!   embassy-stm32's flash driver.
//! - [`EmulatedChip`]: a NOR flash chip in RAM for QEMU's `mps2-an386`,
//!   which has no flash controller. It keeps NOR's rules (erase sets 0xFF,
//!   a write only clears bits) and can cut the power mid-write.
//!
//! It knows no board: each board has its crate beside it, under
//! `firmware-example/boards/`. On QEMU's `mps2-an386`, the binary
//! `mls-roundtrip` (`scripts/run-firmware-qemu.sh`) runs two members, and
//! then one member of a 16-member group, through MLS and SFrame and prints
//! the memory they took. The unit tests run on the host:
//! `cargo test -p satsuma-intercom --target x86_64-unknown-linux-gnu`.
//!
//! # Example
//!
//! ```ignore
//! static CHIP: EmulatedChip<{ 4 * SECTOR }> = EmulatedChip::new();
//! let store = FlashStore::new(CHIP.flash(), 0, 2 * SECTOR as u32)?;
//! let session = Session::create(crypto, info, intercom_session_config(), store)?;
//! ```
//!
//! # Panics
//!
//! Nothing here panics on what it reads from flash: a damaged slot is
//! skipped or reported as [`StoreError::Corrupt`](satsuma_core::mls::StoreError).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod audio;
mod call;
mod crc32;
mod emulated_flash;
mod error;
mod flash_store;
pub mod inbox;
#[cfg(feature = "defmt")]
pub mod log;
pub mod speaker;
#[cfg(feature = "embassy-net")]
pub mod tcp;

pub use call::{Intercom, IntercomConfig, IntercomEvent, MAX_PEERS};
pub use emulated_flash::{
    EMULATED_ERASE_SIZE, EMULATED_WRITE_SIZE, EmulatedChip, EmulatedFlashError, EmulatedNorFlash,
};
pub use error::{Error, FlashLayoutError};
pub use flash_store::{FORMAT_VERSION, FlashStore, MAGIC};
pub use inbox::{Inbox, InboxError};

use satsuma_core::mls::SessionConfig;
use satsuma_core::sframe::{HoldLimits, KeyRingConfig};

/// How the intercom runs its MLS session: the core's defaults, except that
/// the SFrame key ring keeps each sender's key compact (key and salt, not
/// the expanded AES state), which saves ~580 bytes per sender and epoch at
/// the cost of an AES key expansion per received frame.
#[must_use]
pub fn intercom_session_config() -> SessionConfig {
    SessionConfig {
        keyring: KeyRingConfig {
            expanded_receiver_keys: false,
            // Frames that outrun a commit are held while the commit is
            // processed, the heap's peak: about 300 ms of G.711 from one
            // sender (16 frames of 160 bytes plus SFrame overhead), not the
            // desktop's 64 KiB.
            hold: HoldLimits {
                frames: 16,
                bytes: 3 * 1024,
                ..HoldLimits::default()
            },
            ..KeyRingConfig::default()
        },
        ..SessionConfig::default()
    }
}
