//! Cameras through V4L2 (`linuxvideo`, pure Rust), their YUYV pictures
//! converted to I420 (`yuv`) at the call's size.
//!
//! A capture thread keeps the latest picture; the call's video clock takes
//! whatever is latest when a frame is due, so a camera slower or faster
//! than the call never holds it up.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use linuxvideo::format::{PixFormat, PixelFormat};
use linuxvideo::{CapabilityFlags, Device};

use crate::media::video::I420;

/// Why a camera cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CameraError {
    /// There is no camera.
    #[error("no camera found (V4L2 capture devices under /dev/video*)")]
    NoCamera,
    /// The device cannot be opened or set up.
    #[error("camera {path}: {reason}")]
    Device {
        /// The device.
        path: String,
        /// What failed.
        reason: String,
    },
    /// A picture does not have the size and layout its format says.
    #[error("a {width}x{height} YUYV picture of {len} bytes with {stride} bytes per row")]
    BadPicture {
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// Bytes per row.
        stride: u32,
        /// Its length.
        len: usize,
    },
}

/// A camera of this machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CameraInfo {
    /// The device to open (`/dev/video0`).
    pub path: String,
    /// What it calls itself.
    pub name: String,
}

/// The cameras (V4L2 video capture devices).
#[must_use]
pub fn list() -> Vec<CameraInfo> {
    let Ok(devices) = linuxvideo::list() else {
        return Vec::new();
    };
    devices
        .filter_map(Result::ok)
        .filter_map(|d| {
            let caps = d.capabilities().ok()?;
            if !caps
                .device_capabilities()
                .contains(CapabilityFlags::VIDEO_CAPTURE)
            {
                return None;
            }
            Some(CameraInfo {
                path: d.path().ok()?.display().to_string(),
                name: caps.card().to_owned(),
            })
        })
        .collect()
}

/// A camera capturing on a thread of its own.
#[derive(Debug)]
pub struct Camera {
    latest: Arc<Mutex<Option<I420>>>,
    stop: Arc<AtomicBool>,
    failed: Arc<Mutex<Option<String>>>,
    reported: AtomicBool,
    path: String,
}

impl Camera {
    /// Opens the camera at `path` (the first one if `None`) for pictures of
    /// `width` × `height` (the camera's own size is cropped or padded to
    /// it) at about `fps`.
    ///
    /// # Errors
    /// [`CameraError::NoCamera`]; [`CameraError::Device`] when it cannot
    /// be opened or does not offer YUYV pictures.
    pub fn open(
        path: Option<&str>,
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<Self, CameraError> {
        let path: PathBuf = match path {
            Some(p) => PathBuf::from(p),
            None => list()
                .first()
                .map(|c| PathBuf::from(&c.path))
                .ok_or(CameraError::NoCamera)?,
        };
        let shown = path.display().to_string();
        let fail = |reason: String| CameraError::Device {
            path: shown.clone(),
            reason,
        };
        let device = Device::open(&path).map_err(|e| fail(e.to_string()))?;
        if !device
            .supported_buf_types()
            .contains(linuxvideo::BufTypes::VIDEO_CAPTURE)
        {
            return Err(fail("not a video capture device".into()));
        }
        let capture = device
            .video_capture(PixFormat::new(width, height, PixelFormat::YUYV))
            .map_err(|e| fail(e.to_string()))?;
        let format = capture.format();
        if format.pixel_format() != PixelFormat::YUYV {
            return Err(fail(format!(
                "it offers {} pictures; only YUYV is supported",
                format.pixel_format()
            )));
        }
        let (cw, ch, stride) = (format.width(), format.height(), format.bytes_per_line());
        // Best effort: many cameras fix their own rate.
        let _ = capture.set_frame_interval(linuxvideo::Fract::new(1, fps.max(1)));
        let mut stream = capture.into_stream().map_err(|e| fail(e.to_string()))?;
        let latest = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(Mutex::new(None));
        let (l, s, f) = (Arc::clone(&latest), Arc::clone(&stop), Arc::clone(&failed));
        std::thread::Builder::new()
            .name("satsuma-camera".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    let r = stream.dequeue(|buf| {
                        match yuyv_to_i420(&buf, stride, cw, ch, width, height) {
                            Ok(picture) => {
                                *l.lock().unwrap_or_else(PoisonError::into_inner) = Some(picture);
                            }
                            Err(e) => {
                                *f.lock().unwrap_or_else(PoisonError::into_inner) =
                                    Some(e.to_string());
                            }
                        }
                        Ok(())
                    });
                    if let Err(e) = r {
                        *f.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
                        return;
                    }
                }
            })
            .map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            latest,
            stop,
            failed,
            reported: AtomicBool::new(false),
            path: shown,
        })
    }

    /// The latest picture, if one came since the last call.
    pub fn take_latest(&self) -> Option<I420> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Why capture stopped or a picture was refused, the first time it
    /// happens (a camera failing every frame is reported once).
    pub fn take_failure(&self) -> Option<String> {
        if self.reported.load(Ordering::Relaxed) {
            return None;
        }
        let reason = self
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        self.reported.store(true, Ordering::Relaxed);
        Some(format!("{}: {reason}", self.path))
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A packed YUYV picture (`width` × `height`, `stride` bytes per row) as
/// I420 of `out_width` × `out_height`: converted by `yuv`, then cropped
/// around its centre or padded with black.
///
/// # Errors
/// [`CameraError::BadPicture`] when `yuyv` is shorter than its size says,
/// or a size is odd or zero.
pub fn yuyv_to_i420(
    yuyv: &[u8],
    stride: u32,
    width: u32,
    height: u32,
    out_width: u32,
    out_height: u32,
) -> Result<I420, CameraError> {
    let bad = || CameraError::BadPicture {
        width,
        height,
        stride,
        len: yuyv.len(),
    };
    let even = |v: u32| v > 0 && v.is_multiple_of(2);
    let needed = u64::from(stride) * u64::from(height);
    if !even(width)
        || !even(height)
        || !even(out_width)
        || !even(out_height)
        || u64::from(stride) < u64::from(width) * 2
        || (yuyv.len() as u64) < needed
    {
        return Err(bad());
    }
    let (w, h) = (width as usize, height as usize);
    let mut y = vec![0u8; w * h];
    let mut u = vec![0u8; w / 2 * (h / 2)];
    let mut v = vec![0u8; w / 2 * (h / 2)];
    let mut planar = yuv::YuvPlanarImageMut {
        y_plane: yuv::BufferStoreMut::Borrowed(&mut y),
        y_stride: width,
        u_plane: yuv::BufferStoreMut::Borrowed(&mut u),
        u_stride: width / 2,
        v_plane: yuv::BufferStoreMut::Borrowed(&mut v),
        v_stride: width / 2,
        width,
        height,
    };
    let packed = yuv::YuvPackedImage {
        yuy: yuyv,
        yuy_stride: stride,
        width,
        height,
    };
    yuv::yuyv422_to_yuv420(&mut planar, &packed).map_err(|_| bad())?;
    Ok(fit(
        &y,
        &u,
        &v,
        w,
        h,
        out_width as usize,
        out_height as usize,
    ))
}

/// Crops (around the centre) or pads (with black) I420 planes to the size
/// asked for.
fn fit(y: &[u8], u: &[u8], v: &[u8], w: usize, h: usize, ow: usize, oh: usize) -> I420 {
    let mut data = vec![0u8; ow * oh + 2 * (ow / 2) * (oh / 2)];
    // Black: Y 16, U and V 128.
    data[..ow * oh].fill(16);
    data[ow * oh..].fill(128);
    let copy = |src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize| {
        let (cw, ch) = (sw.min(dw), sh.min(dh));
        let (sx, sy) = ((sw - cw) / 2, (sh - ch) / 2);
        let (dx, dy) = ((dw - cw) / 2, (dh - ch) / 2);
        for row in 0..ch {
            let s = (sy + row) * sw + sx;
            let d = (dy + row) * dw + dx;
            if let (Some(src), Some(dst)) = (src.get(s..s + cw), dst.get_mut(d..d + cw)) {
                dst.copy_from_slice(src);
            }
        }
    };
    let (luma, chroma) = data.split_at_mut(ow * oh);
    copy(y, w, h, luma, ow, oh);
    let (cu, cv) = chroma.split_at_mut((ow / 2) * (oh / 2));
    copy(u, w / 2, h / 2, cu, ow / 2, oh / 2);
    copy(v, w / 2, h / 2, cv, ow / 2, oh / 2);
    #[allow(clippy::cast_possible_truncation)] // sizes came in as u32
    I420 {
        width: ow as u32,
        height: oh as u32,
        data,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A YUYV picture whose every pixel is (y, u, v).
    fn flat(width: u32, height: u32, stride: u32, y: u8, u: u8, v: u8) -> Vec<u8> {
        let mut out = vec![0u8; (stride * height) as usize];
        for row in 0..height as usize {
            for pair in 0..(width / 2) as usize {
                let at = row * stride as usize + pair * 4;
                out[at..at + 4].copy_from_slice(&[y, u, y, v]);
            }
        }
        out
    }

    #[test]
    fn a_yuyv_picture_keeps_its_colour_in_i420() {
        let yuyv = flat(64, 48, 64 * 2 + 16, 90, 60, 200);
        let p = yuyv_to_i420(&yuyv, 64 * 2 + 16, 64, 48, 64, 48).unwrap();
        let (y, rest) = p.data.split_at(64 * 48);
        let (u, v) = rest.split_at(32 * 24);
        assert!(y.iter().all(|&b| b == 90));
        assert!(u.iter().all(|&b| b == 60));
        assert!(v.iter().all(|&b| b == 200));
    }

    #[test]
    fn a_larger_picture_is_cropped_and_a_smaller_one_padded_with_black() {
        let big = flat(128, 96, 256, 200, 128, 128);
        let p = yuyv_to_i420(&big, 256, 128, 96, 64, 48).unwrap();
        assert_eq!((p.width, p.height), (64, 48));
        assert!(p.data[..64 * 48].iter().all(|&b| b == 200));

        let small = flat(32, 24, 64, 200, 128, 128);
        let p = yuyv_to_i420(&small, 64, 32, 24, 64, 48).unwrap();
        // The centre is the picture, the corner is black.
        assert_eq!(p.data[24 * 64 + 32], 200);
        assert_eq!(p.data[0], 16);
    }

    #[test]
    fn short_or_odd_pictures_are_errors_not_panics() {
        let yuyv = flat(64, 48, 128, 1, 2, 3);
        assert!(yuyv_to_i420(&yuyv[..100], 128, 64, 48, 64, 48).is_err());
        assert!(yuyv_to_i420(&yuyv, 128, 63, 48, 64, 48).is_err());
        assert!(yuyv_to_i420(&yuyv, 100, 64, 48, 64, 48).is_err());
        assert!(yuyv_to_i420(&yuyv, 128, 64, 48, 0, 48).is_err());
        assert!(yuyv_to_i420(&[], 0, 0, 0, 64, 48).is_err());
    }
}
