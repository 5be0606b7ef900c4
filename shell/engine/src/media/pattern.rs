//! A moving test picture whose frame number survives VP8 compression.
//!
//! Each frame has moving diagonal stripes, a bar that slides right and a
//! colour gradient (so consecutive frames differ and the encoder has real
//! work), and in the top left a grid of 12 x 4 large black or white cells on
//! a grey surround: the frame number (32 bits, most significant first) then
//! its CRC-16 (16 bits). The cells are a few macroblocks wide, so moderate
//! compression leaves each one clearly black or white; the reader refuses a
//! picture in which any cell is neither, or the CRC does not match, so a
//! camera picture, grey, noise or a badly damaged frame reads as `None`.
//!
//! ```
//! use satsuma_engine::media::pattern::{TestPattern, read_frame_number};
//! use satsuma_engine::media::video::I420;
//!
//! let mut pattern = TestPattern::new(320, 180);
//! assert_eq!(read_frame_number(&pattern.frame(12_345)), Some(12_345));
//! assert_eq!(read_frame_number(&I420::new(320, 180)), None);
//! ```

use super::video::{I420, MAX_DIMENSION};

/// Cells across the number grid.
const COLUMNS: u32 = 12;
/// Rows of cells.
const ROWS: u32 = 4;
/// Luma of a 0 cell (studio-range black).
const BLACK: u8 = 16;
/// Luma of a 1 cell (studio-range white).
const WHITE: u8 = 235;
/// A cell whose mean luma is below this reads as 0.
const READ_BLACK_BELOW: u32 = 80;
/// A cell whose mean luma is above this reads as 1.
const READ_WHITE_ABOVE: u32 = 176;
/// Smallest picture side.
const MIN_SIDE: u32 = 64;

/// Draws test frames of one size.
#[derive(Clone, Debug)]
pub struct TestPattern {
    width: u32,
    height: u32,
}

/// Where the number grid sits in a picture of a given size.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Side of one cell, pixels (even).
    cell: u32,
    /// Top-left corner of the first cell (a half-cell grey margin before it).
    origin: u32,
}

impl Layout {
    /// The grid for a `width`x`height` picture: as large as fits in the
    /// width and the top half, with a half-cell margin all round.
    fn for_size(width: u32, height: u32) -> Self {
        let cell = (width / (COLUMNS + 1)).min(height / 2 / (ROWS + 1)) & !1;
        let cell = cell.max(2);
        Self {
            cell,
            origin: cell / 2,
        }
    }

    /// Top-left corner of cell `index` (row-major).
    fn cell_origin(&self, index: u32) -> (u32, u32) {
        let (column, row) = (index % COLUMNS, index / COLUMNS);
        (
            self.origin + column * self.cell,
            self.origin + row * self.cell,
        )
    }

    /// The grey surround: the grid plus its margin.
    fn surround(&self) -> (u32, u32) {
        ((COLUMNS + 1) * self.cell, (ROWS + 1) * self.cell)
    }
}

impl TestPattern {
    /// Frames of `width`x`height`, each rounded up to even and clamped to
    /// 64 to 16 382.
    pub fn new(width: u32, height: u32) -> Self {
        let side = |v: u32| v.clamp(MIN_SIDE, MAX_DIMENSION - 1).next_multiple_of(2);
        Self {
            width: side(width),
            height: side(height),
        }
    }

    /// The picture width.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// The picture height.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Frame `n`: moving content plus `n` written in the number grid.
    pub fn frame(&mut self, n: u32) -> I420 {
        let (width, height) = (self.width, self.height);
        let mut picture = I420::new(width, height);
        let w = width as usize;
        let (cw, ch) = (w / 2, height as usize / 2);
        let shift = n.wrapping_mul(4);
        let bar = n.wrapping_mul(8) % width;
        let drift = n.wrapping_mul(2);
        let layout = Layout::for_size(width, height);
        let (grey_w, grey_h) = layout.surround();

        let (luma, chroma) = picture.data.split_at_mut(w * height as usize);
        for (y, row) in (0u32..).zip(luma.chunks_exact_mut(w)) {
            for (x, pixel) in (0u32..).zip(row.iter_mut()) {
                *pixel = if x < grey_w && y < grey_h {
                    128
                } else if x.wrapping_sub(bar) < 16 {
                    WHITE
                } else {
                    // Diagonal stripes moving 4 pixels right per frame.
                    let phase = x.wrapping_add(y / 2).wrapping_sub(shift) % 128;
                    low_byte(40 + phase * 3 / 2)
                };
            }
        }
        let (u_plane, v_plane) = chroma.split_at_mut(cw * ch);
        for (y, (u_row, v_row)) in (0u32..).zip(
            u_plane
                .chunks_exact_mut(cw)
                .zip(v_plane.chunks_exact_mut(cw)),
        ) {
            for (x, (u, v)) in (0u32..).zip(u_row.iter_mut().zip(v_row.iter_mut())) {
                if 2 * x < grey_w && 2 * y < grey_h {
                    continue; // neutral, as I420::new made it
                }
                *u = low_byte(64 + 2 * y * 128 / height);
                *v = low_byte(64 + (2 * x).wrapping_add(drift) % width * 128 / width);
            }
        }

        for (index, bit) in (0u32..).zip(code_bits(n)) {
            let (x0, y0) = layout.cell_origin(index);
            let value = if bit { WHITE } else { BLACK };
            for y in y0..y0 + layout.cell {
                let start = y as usize * w + x0 as usize;
                if let Some(cells) = luma.get_mut(start..start + layout.cell as usize) {
                    cells.fill(value);
                }
            }
        }
        picture
    }
}

/// The frame number written by [`TestPattern`], read back from a decoded
/// picture of the same size; `None` when it is not a test pattern (a camera
/// picture, grey, noise) or too damaged to read with confidence.
pub fn read_frame_number(picture: &I420) -> Option<u32> {
    let (width, height) = (picture.width, picture.height);
    if width < MIN_SIDE || height < MIN_SIDE || !picture.is_well_formed() {
        return None;
    }
    let layout = Layout::for_size(width, height);
    let luma = picture.y();
    let w = width as usize;
    // The middle half of each cell, clear of edges blurred by compression.
    let inset = layout.cell / 4;
    let side = (layout.cell / 2).max(1);
    let mut word = 0u64;
    for index in 0..COLUMNS * ROWS {
        let (x0, y0) = layout.cell_origin(index);
        let (x0, y0) = (x0 + inset, y0 + inset);
        let mut sum = 0u32;
        for y in y0..y0 + side {
            let start = y as usize * w + x0 as usize;
            let row = luma.get(start..start + side as usize)?;
            sum += row.iter().map(|&p| u32::from(p)).sum::<u32>();
        }
        let mean = sum / (side * side);
        let bit = if mean < READ_BLACK_BELOW {
            0
        } else if mean > READ_WHITE_ABOVE {
            1
        } else {
            return None;
        };
        word = (word << 1) | bit;
    }
    let number = u32::try_from(word >> 16).ok()?;
    let check = u16::try_from(word & 0xffff).ok()?;
    (crc16(number) == check).then_some(number)
}

/// The 48 bits written for `n`: `n` then its CRC, most significant first.
fn code_bits(n: u32) -> impl Iterator<Item = bool> {
    let word = (u64::from(n) << 16) | u64::from(crc16(n));
    (0..48).rev().map(move |bit| (word >> bit) & 1 == 1)
}

/// CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xffff) of `n`'s four
/// bytes in big-endian order.
fn crc16(n: u32) -> u16 {
    let mut crc = 0xffffu16;
    for byte in n.to_be_bytes() {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The low 8 bits of `v` (callers keep it below 256).
fn low_byte(v: u32) -> u8 {
    v.to_le_bytes()[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_without_a_codec() {
        let mut pattern = TestPattern::new(640, 360);
        for n in [0, 1, 2, 255, 12_345, 0x8000_0000, u32::MAX - 1, u32::MAX] {
            assert_eq!(read_frame_number(&pattern.frame(n)), Some(n), "{n}");
        }
        let mut small = TestPattern::new(64, 64);
        assert_eq!(read_frame_number(&small.frame(12_345)), Some(12_345));
    }

    #[test]
    fn consecutive_frames_move() {
        let mut pattern = TestPattern::new(320, 240);
        let (a, b) = (pattern.frame(10), pattern.frame(11));
        let changed = a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count();
        // Well beyond the number cells: the stripes, bar and colours move.
        assert!(
            changed > a.data.len() / 4,
            "{changed} of {} bytes changed",
            a.data.len()
        );
        // And a frame is a function of its number alone.
        assert_eq!(pattern.frame(10), a);
    }

    #[test]
    fn sizes_are_rounded_and_clamped() {
        let mut pattern = TestPattern::new(7, 101);
        assert_eq!((pattern.width(), pattern.height()), (64, 102));
        let frame = pattern.frame(3);
        assert!(frame.is_well_formed());
        assert_eq!(read_frame_number(&frame), Some(3));
    }

    #[test]
    fn plain_and_random_pictures_are_not_patterns() {
        let mut grey = I420::new(640, 360);
        grey.data.fill(128);
        assert_eq!(read_frame_number(&grey), None);
        let black = I420::new(640, 360);
        assert_eq!(read_frame_number(&black), None);
        let mut white = I420::new(640, 360);
        white.data.fill(255);
        assert_eq!(read_frame_number(&white), None);

        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut noise = I420::new(640, 360);
        for byte in &mut noise.data {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state.to_le_bytes()[0];
        }
        assert_eq!(read_frame_number(&noise), None);

        // Black and white blocks, but not the right ones: a pattern with
        // one cell flipped fails its CRC.
        let mut pattern = TestPattern::new(640, 360);
        let mut frame = pattern.frame(12_345);
        let layout = Layout::for_size(640, 360);
        let (x0, y0) = layout.cell_origin(5);
        for y in y0..y0 + layout.cell {
            for x in x0..x0 + layout.cell {
                let p = &mut frame.data[(y * 640 + x) as usize];
                *p = if *p == WHITE { BLACK } else { WHITE };
            }
        }
        assert_eq!(read_frame_number(&frame), None);
    }

    #[test]
    fn malformed_pictures_are_not_patterns() {
        let mut frame = TestPattern::new(640, 360).frame(9);
        frame.data.truncate(1000);
        assert_eq!(read_frame_number(&frame), None);
        let tiny = I420::new(32, 32);
        assert_eq!(read_frame_number(&tiny), None);
    }
}
