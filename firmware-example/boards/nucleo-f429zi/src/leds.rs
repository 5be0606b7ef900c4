//! The three user LEDs (UM1974, "LEDs"): each lit by driving its pin high.

use core::fmt;

use embassy_stm32::Peri;
use embassy_stm32::gpio::{Level, Output, Speed};
use embassy_stm32::peripherals::{PB0, PB7, PB14};

/// LD1 (green, PB0): in the group. LD2 (blue, PB7): talking. LD3 (red,
/// PB14): something failed (the link, the flash store), until the
/// intercom is back in its group.
pub struct Leds {
    joined: Output<'static>,
    talking: Output<'static>,
    error: Output<'static>,
}

impl fmt::Debug for Leds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leds")
            .field("joined", &self.joined.is_set_high())
            .field("talking", &self.talking.is_set_high())
            .field("error", &self.error.is_set_high())
            .finish()
    }
}

impl Leds {
    /// The LEDs, all off.
    #[must_use]
    pub fn new(ld1: Peri<'static, PB0>, ld2: Peri<'static, PB7>, ld3: Peri<'static, PB14>) -> Self {
        Self {
            joined: Output::new(ld1, Level::Low, Speed::Low),
            talking: Output::new(ld2, Level::Low, Speed::Low),
            error: Output::new(ld3, Level::Low, Speed::Low),
        }
    }

    /// LD1: the intercom is a member of its room's group.
    pub fn set_joined(&mut self, on: bool) {
        self.joined.set_level(Level::from(on));
    }

    /// LD2: push-to-talk is on and frames go out.
    pub fn set_talking(&mut self, on: bool) {
        self.talking.set_level(Level::from(on));
    }

    /// LD3: something failed.
    pub fn set_error(&mut self, on: bool) {
        self.error.set_level(Level::from(on));
    }
}
