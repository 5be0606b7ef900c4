//! The microphone and the amplifier: an INMP441 on I2S2 and a MAX98357A on
//! I2S3, both masters at 8 kHz, each through a DMA ring buffer (pins and
//! clocks in the README).
//!
//! embassy-stm32 drives the F4's I2S one direction per SPI block, so the
//! microphone (receive) and the amplifier (transmit) take one each. Both
//! run from the PLLI2S (`clocks`), so they keep the same 8 kHz and never
//! drift apart.
//!
//! The INMP441 sends 24-bit samples in 32-bit slots (Philips standard, its
//! L/R pin to ground: the left slot), which the SPI's 16-bit data register
//! hands over as two words, high first: a stereo frame is four words, of
//! which the first two are the sample, made 16-bit PCM with a fixed gain
//! (`satsuma_intercom::audio::mic_sample`). The MAX98357A takes
//! 16-bit slots, two words a frame; both get the sample (its SD_MODE left
//! open plays their average).

use embassy_stm32::i2s::{Config, Error, Format, I2S, Mode, Standard};
use embassy_stm32::peripherals::{
    DMA1_CH3, DMA1_CH5, PA15, PB10, PB12, PB15, PC10, PC12, SPI2, SPI3,
};
use embassy_stm32::time::Hertz;
use embassy_stm32::{Peri, bind_interrupts, dma};
use satsuma_intercom::audio::{FRAME, RATE, mic_sample};

bind_interrupts!(
    /// The DMA streams' interrupts.
    pub struct Irqs {
        DMA1_STREAM3 => dma::InterruptHandler<DMA1_CH3>;
        DMA1_STREAM5 => dma::InterruptHandler<DMA1_CH5>;
    }
);

/// Samples moved per DMA read or write: 5 ms.
const CHUNK: usize = 40;
/// The microphone's DMA ring: 20 ms of stereo 32-bit slots (four words a
/// sample), read 5 ms at a time.
pub const MIC_RING: usize = 4 * FRAME;
/// The amplifier's DMA ring: 20 ms of stereo 16-bit slots.
pub const AMP_RING: usize = 2 * FRAME;

fn config(format: Format) -> Config {
    let mut config = Config::default();
    config.frequency = Hertz(RATE);
    config.mode = Mode::Master;
    config.standard = Standard::Philips;
    config.format = format;
    config.master_clock = false;
    config
}

/// The INMP441 on I2S2: SCK PB10, WS PB12, SD PB15, DMA1 stream 3.
pub struct Microphone {
    i2s: I2S<'static, u16>,
}

impl core::fmt::Debug for Microphone {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Microphone(I2S2)")
    }
}

impl Microphone {
    /// Starts the microphone's clocks and its DMA.
    #[must_use]
    pub fn new(
        spi: Peri<'static, SPI2>,
        sd: Peri<'static, PB15>,
        ws: Peri<'static, PB12>,
        ck: Peri<'static, PB10>,
        dma: Peri<'static, DMA1_CH3>,
        ring: &'static mut [u16; MIC_RING],
    ) -> Self {
        let mut i2s = I2S::new_rxonly_nomck(
            spi,
            sd,
            ws,
            ck,
            dma,
            ring,
            Irqs,
            config(Format::Data24Channel32),
        );
        i2s.start();
        Self { i2s }
    }

    /// The next 20 ms, as the microphone's clock gives it.
    ///
    /// # Errors
    /// [`Error::Overrun`] when the ring was not read in time: the ring
    /// starts again, and the frame is lost.
    pub async fn read(&mut self, out: &mut [i16; FRAME]) -> Result<(), Error> {
        let mut words = [0u16; 4 * CHUNK];
        for chunk in out.chunks_exact_mut(CHUNK) {
            self.i2s.read(&mut words).await?;
            for (sample, slot) in chunk.iter_mut().zip(words.chunks_exact(4)) {
                if let [high, low, ..] = *slot {
                    *sample = mic_sample(high, low);
                }
            }
        }
        Ok(())
    }
}

/// The MAX98357A on I2S3: BCLK PC10, LRC PA15, DIN PC12, DMA1 stream 5.
pub struct Amplifier {
    i2s: I2S<'static, u16>,
}

impl core::fmt::Debug for Amplifier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Amplifier(I2S3)")
    }
}

impl Amplifier {
    /// Starts the amplifier's clocks and its DMA (silence until written).
    #[must_use]
    pub fn new(
        spi: Peri<'static, SPI3>,
        sd: Peri<'static, PC12>,
        ws: Peri<'static, PA15>,
        ck: Peri<'static, PC10>,
        dma: Peri<'static, DMA1_CH5>,
        ring: &'static mut [u16; AMP_RING],
    ) -> Self {
        let mut i2s = I2S::new_txonly_nomck(
            spi,
            sd,
            ws,
            ck,
            dma,
            ring,
            Irqs,
            config(Format::Data16Channel16),
        );
        i2s.start();
        Self { i2s }
    }

    /// Plays 20 ms: returns once the ring has taken it, which paces the
    /// caller at the amplifier's clock.
    ///
    /// # Errors
    /// When the ring ran dry before it was written (it starts again).
    pub async fn write(&mut self, pcm: &[i16; FRAME]) -> Result<(), Error> {
        let mut words = [0u16; 2 * CHUNK];
        for chunk in pcm.chunks_exact(CHUNK) {
            for (slot, &sample) in words.chunks_exact_mut(2).zip(chunk) {
                slot.fill(sample.cast_unsigned());
            }
            self.i2s.write(&words).await?;
        }
        Ok(())
    }
}
