//! The board's interrupts the firmware takes, and how they reach their
//! handlers.
//!
//! Without a device crate, cortex-m-rt points every external interrupt's
//! vector at `DefaultHandler` (a PAC would name each vector, with
//! cortex-m-rt's `device` feature; that feature would also make every
//! binary of the package, `mls-footprint` included, supply a vector table,
//! and that binary links no board code on purpose). So `DefaultHandler`
//! (in `stop.rs`) asks [`dispatch`] first, and only an interrupt nobody
//! handles stops the program.
//!
//! All run at the same priority, so none preempts another.

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;

/// An external interrupt line of AN386 (the numbers QEMU's `hw/arm/mps2.c`
/// wires).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum Irq {
    /// CMSDK APB TIMER0: the time driver's free-running counter.
    Timer0 = 8,
    /// CMSDK APB TIMER1: the time driver's alarm.
    Timer1 = 9,
    /// The LAN9118 Ethernet controller.
    Ethernet = 13,
}

// SAFETY: each number is an external interrupt line the board has (AN386
// has 32), so it is valid for the NVIC.
unsafe impl InterruptNumber for Irq {
    fn number(self) -> u16 {
        self as u16
    }
}

/// Clears a stale pending state and unmasks `irq`.
pub(crate) fn enable(irq: Irq) {
    NVIC::unpend(irq);
    // SAFETY: the board's critical sections are cortex-m's single-core
    // ones (PRIMASK), which unmasking an NVIC line does not weaken; the
    // handler for `irq` is in `dispatch`.
    unsafe { NVIC::unmask(irq) }
}

/// Masks `irq`.
pub(crate) fn disable(irq: Irq) {
    NVIC::mask(irq);
}

/// Runs the handler of external interrupt `irqn`; `false` when it has
/// none.
pub(crate) fn dispatch(irqn: i16) -> bool {
    match irqn {
        n if n == Irq::Timer0 as i16 => crate::time::on_wrap(),
        n if n == Irq::Timer1 as i16 => crate::time::on_alarm(),
        n if n == Irq::Ethernet as i16 => crate::lan9118::on_interrupt(),
        _ => return false,
    }
    true
}
