//! Satsuma's firmware on QEMU's `mps2-an386`, a Cortex-M4 with 4 MiB of
//! SSRAM in the place of flash and 4 MiB of RAM: the board's runtime and
//! its drivers, written once for every binary that runs there.
//!
//! It drives the board's LAN9118 Ethernet controller ([`Lan9118`], an
//! `embassy-net` driver), its two CMSDK APB timers (the `embassy-time`
//! driver, [`time`]) and the interrupts they raise, so a binary can run
//! embassy's executor and IP stack on it. It does not drive the flash
//! (this board has no flash controller; `satsuma_intercom::EmulatedChip`
//! stands in for it) and decides nothing about the intercom or the
//! protocol.
//!
//! Linking it gives a program:
//! - the global allocator, [`HEAP`]: `embedded-alloc`'s `LlffHeap` keeping
//!   its high-water marks. The binary hands it RAM with [`init_heap`].
//! - measurement: the heap and stack a piece of work takes ([`measure`],
//!   [`measure_blocks`]) and the stack's high-water mark
//!   ([`stack_high_water`]).
//! - the panic, HardFault and default exception handlers: they print why
//!   the program stopped over semihosting, then what the binary set with
//!   [`on_stop`], and exit QEMU with failure. [`exit`] ends a run that
//!   finished. The default handler first hands the board's interrupts
//!   (the timers', the Ethernet controller's) to their drivers.
//! - the network: [`Lan9118`] implements `embassy_net_driver::Driver`,
//!   waking its task from the chip's interrupt, and counts what it moved
//!   and dropped ([`lan9118::stats`]).
//! - time: [`time::start`] starts the `embassy-time` driver (1 tick = 1 µs)
//!   on the CMSDK timers. With it, a binary runs `embassy-executor`'s
//!   thread-mode executor (`#[embassy_executor::main]`).
//! - the log: `defmt`'s global logger, its frames on QEMU's standard
//!   error over semihosting (standard output keeps the text of the stop
//!   reports), stamped with the milliseconds since power-on; the host
//!   decodes them with `defmt-print`.
//! - the host: [`host::seed`] reads 32 random bytes from the host's
//!   `/dev/urandom` and [`host::command_line`] the run's arguments, over
//!   semihosting.
//!
//! The memory layout (`memory.x`, put on the linker's path by `build.rs`)
//! is the package's, shared by its binaries:
//! - `mls-roundtrip`: MLS + SFrame members and their flash store, with the
//!   heap and stack they take (`scripts/run-firmware-qemu.sh`).
//! - `mls-footprint`: core + MLS alone, built to measure their flash and
//!   never run. It does not link this library, whose measuring and
//!   printing would count in the size it measures.
//! - `portable-tests`: the portable test suite (`tests/portable`) in
//!   libtest's format (`scripts/run-cortex-m-tests.sh`).
//! - `net-check`: the network in QEMU: a DHCP lease, a 256 KiB TCP echo
//!   and a UDP round trip with the host (`scripts/run-net-qemu.sh`).
//!
//! # Example
//!
//! ```ignore
//! use core::mem::MaybeUninit;
//! use satsuma_board_mps2_an386 as board;
//!
//! #[cortex_m_rt::entry]
//! fn main() -> ! {
//!     // cortex-m-rt makes this a `&'static mut` of `main`'s own.
//!     static mut HEAP_MEM: [MaybeUninit<u8>; 64 * 1024] = [MaybeUninit::uninit(); 64 * 1024];
//!     board::init_heap(HEAP_MEM);
//!     let (ok, usage) = board::measure(run);
//!     cortex_m_semihosting::hprintln!("heap peak {} bytes", usage.heap_peak);
//!     board::exit(ok)
//! }
//! ```
//!
//! # Panics
//!
//! Nothing here panics, whatever the network sends; the panic handler ends
//! the program, as above.
#![no_std]

#[cfg(feature = "block-table")]
mod blocks;
mod error;
mod heap;
pub mod host;
mod interrupts;
pub mod lan9118;
mod log;
mod measure;
mod stack;
mod stop;
pub mod time;

#[cfg(feature = "block-table")]
pub use blocks::{Blocks, Snapshot, TOP};
pub use error::{Error, HostError, NicError};
pub use heap::{HEAP, PeakHeap, init_heap};
pub use lan9118::Lan9118;
#[cfg(feature = "block-table")]
pub use measure::measure_blocks;
pub use measure::{Usage, measure};
pub use stack::stack_high_water;
pub use stop::{Report, Stop, exit, on_stop};
