//! The B1 user button (blue, PC13) as push-to-talk.
//!
//! B1 pulls PC13 high while pressed (UM1974, "Push-buttons": an external
//! pull-down holds it low otherwise). Its edges come through EXTI line 13,
//! so the task waiting for a press sleeps until one.

use core::fmt;

use embassy_stm32::Peri;
use embassy_stm32::exti::{self, ExtiInput};
use embassy_stm32::gpio::Pull;
use embassy_stm32::interrupt::typelevel::{Binding, EXTI15_10};
use embassy_stm32::mode::Async;
use embassy_stm32::peripherals::{EXTI13, PC13};
use embassy_time::{Duration, Timer};

/// How long a contact must settle: edges closer together than this are
/// one press.
const DEBOUNCE: Duration = Duration::from_millis(30);

/// The B1 button.
pub struct PushToTalk {
    pin: ExtiInput<'static, Async>,
    /// The last press has not been released yet.
    held: bool,
}

impl fmt::Debug for PushToTalk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushToTalk")
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

impl PushToTalk {
    /// B1 on PC13 and its EXTI line; `irq` binds EXTI15_10 to
    /// embassy-stm32's EXTI handler.
    #[must_use]
    pub fn new(
        pin: Peri<'static, PC13>,
        line: Peri<'static, EXTI13>,
        irq: impl Binding<EXTI15_10, exti::InterruptHandler<EXTI15_10>>,
    ) -> Self {
        // The board's own pull-down holds the line low.
        Self {
            pin: ExtiInput::new(pin, line, Pull::None, irq),
            held: false,
        }
    }

    /// Waits for the next press: a rising edge that is still high after
    /// [`DEBOUNCE`]. The press before it must have been released (and
    /// settled) first, so one press is one press however the contact
    /// bounces.
    pub async fn pressed(&mut self) {
        loop {
            if self.held {
                self.pin.wait_for_low().await;
                Timer::after(DEBOUNCE).await;
                self.held = false;
            }
            self.pin.wait_for_rising_edge().await;
            Timer::after(DEBOUNCE).await;
            if self.pin.is_high() {
                self.held = true;
                return;
            }
        }
    }
}
