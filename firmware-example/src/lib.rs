//! Satsuma's door intercom on a Cortex-M4 (embassy, QEMU mps2-an386 and a Nucleo board): not built yet; a later issue fills this crate.
#![no_std]
