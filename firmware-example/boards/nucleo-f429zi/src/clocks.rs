//! The clock tree.
//!
//! The NUCLEO-F429ZI's HSE is the ST-LINK's 8 MHz MCO output, fed to OSC_IN
//! as a clock (bypass mode; UM1974, "HSE clock"): no crystal is fitted for
//! it. From it the main PLL makes (RM0090, "Clocks"):
//!
//! | | | |
//! |---|---|---|
//! | PLL input | 8 MHz / M 8 | 1 MHz (M is shared with the PLLI2S) |
//! | VCO | × N 336 | 336 MHz |
//! | SYSCLK = HCLK | / P 2 | 168 MHz (no over-drive needed) |
//! | PLL48CLK | / Q 7 | 48 MHz, which the RNG needs |
//! | APB1 | / 4 | 42 MHz (its timers 84 MHz: the time driver's) |
//! | APB2 | / 2 | 84 MHz |
//!
//! The Ethernet MAC runs from HCLK (at least 25 MHz for 100 Mbit/s) and
//! the PHY's 50 MHz RMII reference clock.
//!
//! The I2S blocks run from the PLLI2S, from the same 1 MHz input: × N 256
//! = 256 MHz, / R 2 = 128 MHz, which divides to exactly 8 kHz for the
//! microphone's 32-bit slots (I2SDIV 125) and the amplifier's 16-bit ones
//! (I2SDIV 250).

use embassy_stm32::Config;
use embassy_stm32::rcc::{
    AHBPrescaler, APBPrescaler, Hse, HseMode, Pll, PllMul, PllPDiv, PllPreDiv, PllQDiv, PllRDiv,
    PllSource, Sysclk,
};
use embassy_stm32::time::Hertz;

/// The configuration for `embassy_stm32::init`: the clocks above.
#[must_use]
pub fn config() -> Config {
    let mut config = Config::default();
    config.rcc.hse = Some(Hse {
        freq: Hertz(8_000_000),
        mode: HseMode::Bypass,
    });
    config.rcc.pll_src = PllSource::HSE;
    config.rcc.pll = Some(Pll {
        prediv: PllPreDiv::DIV8,
        mul: PllMul::MUL336,
        divp: Some(PllPDiv::DIV2),
        divq: Some(PllQDiv::DIV7),
        divr: None,
    });
    config.rcc.plli2s = Some(Pll {
        prediv: PllPreDiv::DIV8,
        mul: PllMul::MUL256,
        divp: None,
        divq: None,
        divr: Some(PllRDiv::DIV2),
    });
    config.rcc.sys = Sysclk::PLL1_P;
    config.rcc.ahb_pre = AHBPrescaler::DIV1;
    config.rcc.apb1_pre = APBPrescaler::DIV4;
    config.rcc.apb2_pre = APBPrescaler::DIV2;
    config
}
