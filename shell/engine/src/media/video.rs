//! VP8 (RFC 6386) through the system libvpx, on tightly packed I420
//! pictures.
//!
//! The encoder is set up for a call: realtime deadline, constant bitrate
//! that can change between frames ([`Vp8Encoder::set_bitrate`]), error
//! resilient (a lost frame damages only what refers to it), no lag, key
//! frames on request ([`Vp8Encoder::encode`]'s `force_key`) and otherwise
//! every 3000 frames. The decoder copies each picture out of libvpx, so
//! nothing returned borrows from it.
//!
//! ```
//! use satsuma_engine::media::pattern::{TestPattern, read_frame_number};
//! use satsuma_engine::media::video::{Vp8Config, Vp8Decoder, Vp8Encoder};
//!
//! let config = Vp8Config { width: 320, height: 240, fps: 30, bitrate_kbps: 500 };
//! let mut encoder = Vp8Encoder::new(&config)?;
//! let mut decoder = Vp8Decoder::new()?;
//! let mut pattern = TestPattern::new(320, 240);
//! for frame in encoder.encode(&pattern.frame(7), 0, true)? {
//!     assert!(frame.key);
//!     let picture = decoder.decode(&frame.data)?.expect("a key frame shows a picture");
//!     assert_eq!(read_frame_number(&picture), Some(7));
//! }
//! # Ok::<(), satsuma_engine::media::CodecError>(())
//! ```

use super::CodecError;
use super::vpx::{RawDecoder, RawEncoder};

/// Largest width or height VP8 can code (14 bits).
pub const MAX_DIMENSION: u32 = 16_383;

/// A picture in I420: the Y plane (`width * height` bytes), then U, then V
/// (`ceil(width/2) * ceil(height/2)` bytes each, which is
/// `(width/2) * (height/2)` for the even sizes the encoder takes), rows
/// tightly packed with no padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct I420 {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Y, then U, then V; see the type's docs.
    pub data: Vec<u8>,
}

/// How a [`Vp8Encoder`] is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vp8Config {
    /// Picture width in pixels: even, 16 to [`MAX_DIMENSION`].
    pub width: u32,
    /// Picture height in pixels: even, 16 to [`MAX_DIMENSION`].
    pub height: u32,
    /// Frames per second, 1 to 240: the unit of [`Vp8Encoder::encode`]'s
    /// `pts` and what the rate control assumes.
    pub fps: u32,
    /// Target bitrate in kbit/s, 1 to 100 000.
    pub bitrate_kbps: u32,
}

/// One frame as libvpx produced it: what goes into an RTP payload (after
/// SFrame protection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The VP8 frame.
    pub data: Vec<u8>,
    /// Whether it is a key frame, which a decoder can start from.
    pub key: bool,
}

/// A realtime VP8 encoder.
pub struct Vp8Encoder {
    raw: RawEncoder,
    config: Vp8Config,
    last_pts: Option<u64>,
}

/// A VP8 decoder.
pub struct Vp8Decoder {
    raw: RawDecoder,
}

impl I420 {
    /// A black picture (Y 16, U and V 128: black in the studio range VP8
    /// uses).
    ///
    /// # Panics
    ///
    /// Like `vec!`, when `width * height * 3 / 2` bytes cannot be
    /// allocated; sizes come from the program, not from the network.
    pub fn new(width: u32, height: u32) -> Self {
        let luma = width as usize * height as usize;
        let chroma = width.div_ceil(2) as usize * height.div_ceil(2) as usize;
        let mut data = vec![128; luma + 2 * chroma];
        data[..luma].fill(16);
        Self {
            width,
            height,
            data,
        }
    }

    /// The buffer length a `width`x`height` picture has, or `None` if it
    /// does not fit in memory.
    pub fn len_for(width: u32, height: u32) -> Option<usize> {
        let luma = (width as usize).checked_mul(height as usize)?;
        let chroma = (width.div_ceil(2) as usize).checked_mul(height.div_ceil(2) as usize)?;
        luma.checked_add(chroma.checked_mul(2)?)
    }

    /// Whether `data` has exactly the length `width` and `height` call for.
    pub fn is_well_formed(&self) -> bool {
        Self::len_for(self.width, self.height) == Some(self.data.len())
    }

    /// The Y (luma) plane; empty if `data` is too short for it.
    pub fn y(&self) -> &[u8] {
        let (y, _, _) = self.plane_ranges();
        self.data.get(y).unwrap_or(&[])
    }

    /// The U (Cb) plane; empty if `data` is too short for it.
    pub fn u(&self) -> &[u8] {
        let (_, u, _) = self.plane_ranges();
        self.data.get(u).unwrap_or(&[])
    }

    /// The V (Cr) plane; empty if `data` is too short for it.
    pub fn v(&self) -> &[u8] {
        let (_, _, v) = self.plane_ranges();
        self.data.get(v).unwrap_or(&[])
    }

    /// Byte ranges of Y, U and V, saturating for absurd sizes (then `get`
    /// finds them out of range).
    fn plane_ranges(
        &self,
    ) -> (
        std::ops::Range<usize>,
        std::ops::Range<usize>,
        std::ops::Range<usize>,
    ) {
        let luma = (self.width as usize).saturating_mul(self.height as usize);
        let chroma =
            (self.width.div_ceil(2) as usize).saturating_mul(self.height.div_ceil(2) as usize);
        let u_end = luma.saturating_add(chroma);
        let v_end = u_end.saturating_add(chroma);
        (0..luma, luma..u_end, u_end..v_end)
    }
}

impl Vp8Encoder {
    /// A realtime encoder for `config`; see the module docs for its settings.
    pub fn new(config: &Vp8Config) -> Result<Self, CodecError> {
        let side_ok = |side: u32| (16..=MAX_DIMENSION).contains(&side) && side.is_multiple_of(2);
        if !side_ok(config.width) {
            return Err(CodecError::Config("width must be even and 16 to 16383"));
        }
        if !side_ok(config.height) {
            return Err(CodecError::Config("height must be even and 16 to 16383"));
        }
        if !(1..=240).contains(&config.fps) {
            return Err(CodecError::Config("fps must be 1 to 240"));
        }
        check_kbps(config.bitrate_kbps)?;
        let raw = RawEncoder::new(config.width, config.height, config.fps, config.bitrate_kbps)?;
        Ok(Self {
            raw,
            config: *config,
            last_pts: None,
        })
    }

    /// The configuration, with the bitrate last set.
    pub fn config(&self) -> &Vp8Config {
        &self.config
    }

    /// Encodes one picture, which must have the configured size, else
    /// [`CodecError::PictureSize`].
    ///
    /// `pts` counts frame periods (1/fps s), e.g. a frame counter; the rate
    /// control reads the gaps, so a skipped capture is a gap of 2. It must
    /// increase from call to call, else [`CodecError::Pts`]. `force_key`
    /// makes this a key frame (a receiver joined or lost a frame).
    ///
    /// Returns the frames libvpx produced: one, as this encoder never drops
    /// frames, but callers should handle zero or several.
    pub fn encode(
        &mut self,
        picture: &I420,
        pts: u64,
        force_key: bool,
    ) -> Result<Vec<EncodedFrame>, CodecError> {
        if let Some(previous) = self.last_pts
            && pts <= previous
        {
            return Err(CodecError::Pts { previous, got: pts });
        }
        let vpx_pts = i64::try_from(pts).map_err(|_| CodecError::Pts {
            previous: self.last_pts.unwrap_or(0),
            got: pts,
        })?;
        let frames = self.raw.encode(picture, vpx_pts, force_key)?;
        self.last_pts = Some(pts);
        Ok(frames)
    }

    /// Sets the target bitrate, in kbit/s (1 to 100 000), from the next
    /// frame on.
    pub fn set_bitrate(&mut self, kbps: u32) -> Result<(), CodecError> {
        check_kbps(kbps)?;
        self.raw.set_bitrate(kbps)?;
        self.config.bitrate_kbps = kbps;
        Ok(())
    }
}

fn check_kbps(kbps: u32) -> Result<(), CodecError> {
    if (1..=100_000).contains(&kbps) {
        Ok(())
    } else {
        Err(CodecError::Config("bitrate must be 1 to 100000 kbit/s"))
    }
}

impl Vp8Decoder {
    /// A VP8 decoder. It shows nothing until it has decoded a key frame.
    pub fn new() -> Result<Self, CodecError> {
        Ok(Self {
            raw: RawDecoder::new()?,
        })
    }

    /// Decodes one frame: `Ok(Some(picture))`, `Ok(None)` when libvpx has
    /// no picture to show, or an error for a frame libvpx rejects (corrupt,
    /// truncated, or a delta frame before any key frame). libvpx reads only
    /// `frame`, with its length.
    pub fn decode(&mut self, frame: &[u8]) -> Result<Option<I420>, CodecError> {
        self.raw.decode(frame)
    }
}

impl std::fmt::Debug for Vp8Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Encoder")
            .field("config", &self.config)
            .field("last_pts", &self.last_pts)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Vp8Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Decoder").finish_non_exhaustive()
    }
}
