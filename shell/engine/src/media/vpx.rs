//! The libvpx calls behind [`super::video`]: the only unsafe code in the
//! media module, kept to the C API's contract here so that `video` is safe.
//!
//! libvpx keeps a pointer to its context's private state, so each context
//! lives in a `Box` (a stable address) from `vpx_codec_*_init_ver` to
//! `vpx_codec_destroy` in `Drop`. The encoder's configuration is copied by
//! libvpx at init and at `vpx_codec_enc_config_set`; ours is kept only to
//! change the bitrate.

// This module wraps libvpx's C API, which cannot be called without `unsafe`.
// Every block says which part of the API contract makes it sound.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::{c_char, c_int, c_long, c_uint, c_ulong};
use std::ptr;

use vpx_sys as ffi;

use super::CodecError;
use super::video::{EncodedFrame, I420};

/// An initialised VP8 encoder context.
pub(super) struct RawEncoder {
    ctx: Box<ffi::vpx_codec_ctx_t>,
    cfg: Box<ffi::vpx_codec_enc_cfg_t>,
    width: u32,
    height: u32,
}

/// An initialised VP8 decoder context.
pub(super) struct RawDecoder {
    ctx: Box<ffi::vpx_codec_ctx_t>,
}

// SAFETY: a libvpx codec context has no thread affinity: it may be used from
// any thread as long as one thread at a time uses it, which `&mut self` on
// every call guarantees. The raw pointers inside point only to memory the
// context owns.
unsafe impl Send for RawEncoder {}
// SAFETY: as for `RawEncoder`.
unsafe impl Send for RawDecoder {}

/// The error libvpx reported on `ctx` for `call`, copied out.
fn ctx_error(
    ctx: &mut ffi::vpx_codec_ctx_t,
    call: &'static str,
    err: ffi::vpx_codec_err_t,
) -> CodecError {
    // SAFETY: `ctx` is an initialised context; both functions return either
    // NULL or a NUL-terminated string that stays valid until the next call
    // on `ctx`, and we copy it before returning.
    let (message, detail) = unsafe {
        (
            c_string(ffi::vpx_codec_error(ctx)),
            c_string(ffi::vpx_codec_error_detail(ctx)),
        )
    };
    let detail = match (message, detail) {
        (Some(m), Some(d)) => format!("{m}: {d}"),
        (Some(m), None) => m,
        (None, Some(d)) => d,
        (None, None) => String::new(),
    };
    CodecError::Vpx {
        call,
        code: err as i32,
        detail,
    }
}

/// The error for a call that has no context to ask (init).
fn code_error(call: &'static str, err: ffi::vpx_codec_err_t) -> CodecError {
    // SAFETY: `vpx_codec_err_to_string` returns a static NUL-terminated
    // string for every code.
    let detail = unsafe { c_string(ffi::vpx_codec_err_to_string(err)) }.unwrap_or_default();
    CodecError::Vpx {
        call,
        code: err as i32,
        detail,
    }
}

/// Copies a C string libvpx handed out.
///
/// # Safety
///
/// `p` is NULL or points to a NUL-terminated string valid for this call.
unsafe fn c_string(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated, by this function's contract.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// A context that libvpx has not initialised yet: all zero, which is a valid
/// value for every field (NULL pointers, `VPX_CODEC_OK`, zero flags).
fn zeroed_ctx() -> Box<ffi::vpx_codec_ctx_t> {
    // SAFETY: `vpx_codec_ctx_t` is plain C data whose fields are raw
    // pointers, integers, a union of pointers and `vpx_codec_err_t`, whose
    // value 0 is `VPX_CODEC_OK`; all-zero bytes are a valid value of each.
    Box::new(unsafe { MaybeUninit::<ffi::vpx_codec_ctx_t>::zeroed().assume_init() })
}

impl RawEncoder {
    /// A realtime VP8 encoder for `width`x`height` (even, checked by the
    /// caller) I420 pictures at `fps` (the timebase is 1/fps) and `kbps`.
    pub(super) fn new(width: u32, height: u32, fps: u32, kbps: u32) -> Result<Self, CodecError> {
        let fps = c_int::try_from(fps).map_err(|_| CodecError::Config("frame rate too high"))?;
        let mut cfg = MaybeUninit::<ffi::vpx_codec_enc_cfg_t>::uninit();
        // SAFETY: `vpx_codec_vp8_cx` returns libvpx's static VP8 encoder
        // interface; `vpx_codec_enc_config_default` fills the whole
        // configuration it is given a pointer to when it returns OK.
        let err = unsafe {
            ffi::vpx_codec_enc_config_default(ffi::vpx_codec_vp8_cx(), cfg.as_mut_ptr(), 0)
        };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(code_error("vpx_codec_enc_config_default", err));
        }
        // SAFETY: initialised by the successful call above.
        let mut cfg = Box::new(unsafe { cfg.assume_init() });
        cfg.g_w = width;
        cfg.g_h = height;
        cfg.g_timebase = ffi::vpx_rational { num: 1, den: fps };
        cfg.g_threads = 1;
        cfg.g_lag_in_frames = 0;
        cfg.g_pass = ffi::vpx_enc_pass::VPX_RC_ONE_PASS;
        // A lost packet damages only the frames that refer to it, and
        // decoding can resume at the next golden or key frame.
        cfg.g_error_resilient = ffi::VPX_ERROR_RESILIENT_DEFAULT;
        cfg.rc_end_usage = ffi::vpx_rc_mode::VPX_CBR;
        cfg.rc_target_bitrate = kbps;
        // Never skip a picture: the caller decides the frame rate.
        cfg.rc_dropframe_thresh = 0;
        cfg.rc_resize_allowed = 0;
        // WebRTC's realtime VP8 settings.
        cfg.rc_min_quantizer = 2;
        cfg.rc_max_quantizer = 56;
        cfg.rc_undershoot_pct = 100;
        cfg.rc_overshoot_pct = 15;
        cfg.rc_buf_initial_sz = 500;
        cfg.rc_buf_optimal_sz = 600;
        cfg.rc_buf_sz = 1000;
        // Key frames come when a receiver asks (`force_key`), and otherwise
        // rarely: every 3000 frames.
        cfg.kf_mode = ffi::vpx_kf_mode::VPX_KF_AUTO;
        cfg.kf_max_dist = 3000;

        let mut ctx = zeroed_ctx();
        // SAFETY: `ctx` is a zeroed context at a stable heap address, `cfg`
        // a complete configuration that libvpx copies, and the ABI version
        // matches the bindings env-libvpx-sys generated for this libvpx. On
        // failure libvpx has already released whatever it allocated.
        let err = unsafe {
            ffi::vpx_codec_enc_init_ver(
                &mut *ctx,
                ffi::vpx_codec_vp8_cx(),
                &*cfg,
                0,
                ffi::VPX_ENCODER_ABI_VERSION as c_int,
            )
        };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(code_error("vpx_codec_enc_init_ver", err));
        }
        let mut encoder = Self {
            ctx,
            cfg,
            width,
            height,
        };
        // Realtime speed (WebRTC's desktop setting) and skipping of
        // unchanged blocks.
        encoder.control(ffi::vp8e_enc_control_id::VP8E_SET_CPUUSED, -6)?;
        encoder.control(ffi::vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD, 1)?;
        encoder.control(ffi::vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY, 0)?;
        Ok(encoder)
    }

    /// Sets an integer encoder control.
    fn control(&mut self, id: ffi::vp8e_enc_control_id, value: c_int) -> Result<(), CodecError> {
        // SAFETY: `ctx` is an initialised VP8 encoder, and each control used
        // here takes one `int` argument.
        let err = unsafe { ffi::vpx_codec_control_(&mut *self.ctx, id as c_int, value) };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(ctx_error(&mut self.ctx, "vpx_codec_control", err));
        }
        Ok(())
    }

    /// Encodes one tightly packed I420 picture of the configured size.
    pub(super) fn encode(
        &mut self,
        picture: &I420,
        pts: i64,
        force_key: bool,
    ) -> Result<Vec<EncodedFrame>, CodecError> {
        let need = I420::len_for(self.width, self.height);
        if picture.width != self.width
            || picture.height != self.height
            || Some(picture.data.len()) != need
        {
            return Err(CodecError::PictureSize {
                width: self.width,
                height: self.height,
                got_width: picture.width,
                got_height: picture.height,
                got_len: picture.data.len(),
            });
        }
        let mut img = MaybeUninit::<ffi::vpx_image_t>::uninit();
        // SAFETY: `vpx_img_wrap` only fills `img` and computes plane
        // pointers into `data`: with alignment 1 and even sizes (checked by
        // `Vp8Encoder::new`) the Y plane is width*height bytes and U and V
        // (width/2)*(height/2) each, which is exactly `data`'s length,
        // checked above. libvpx never writes through the pointer when
        // encoding (`vpx_codec_encode` takes a const image).
        let wrapped = unsafe {
            ffi::vpx_img_wrap(
                img.as_mut_ptr(),
                ffi::vpx_img_fmt::VPX_IMG_FMT_I420,
                self.width,
                self.height,
                1,
                picture.data.as_ptr().cast_mut(),
            )
        };
        if wrapped.is_null() {
            return Err(CodecError::Vpx {
                call: "vpx_img_wrap",
                code: -1,
                detail: String::from("cannot describe the picture"),
            });
        }
        // SAFETY: `vpx_img_wrap` returned non-NULL, so it zeroed and then
        // filled every field of `img`.
        let img = unsafe { img.assume_init() };
        let flags: c_long = if force_key {
            ffi::VPX_EFLAG_FORCE_KF as c_long
        } else {
            0
        };
        // SAFETY: `ctx` is an initialised encoder; `img` describes `picture`,
        // which outlives the call; libvpx copies what it keeps (no lag).
        let err = unsafe {
            ffi::vpx_codec_encode(
                &mut *self.ctx,
                &img,
                pts,
                1,
                flags,
                ffi::VPX_DL_REALTIME as c_ulong,
            )
        };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(ctx_error(&mut self.ctx, "vpx_codec_encode", err));
        }
        let mut frames = Vec::new();
        let mut iter: ffi::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: `ctx` is an initialised encoder and `iter` the iterator
            // libvpx hands back; the packet stays valid until the next call
            // on `ctx`, and is copied below before that.
            let pkt = unsafe { ffi::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter) };
            // SAFETY: NULL ends the list; otherwise it points to a packet.
            let Some(pkt) = (unsafe { pkt.as_ref() }) else {
                break;
            };
            if pkt.kind != ffi::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: `kind` says the union holds `frame`.
            let frame = unsafe { pkt.data.frame };
            let len = usize::try_from(frame.sz)
                .map_err(|_| CodecError::BadFrame("libvpx frame larger than memory"))?;
            let data = if len == 0 || frame.buf.is_null() {
                Vec::new()
            } else {
                // SAFETY: libvpx's frame packet points to `sz` bytes it owns,
                // valid until the next call on `ctx`.
                unsafe { std::slice::from_raw_parts(frame.buf.cast::<u8>(), len) }.to_vec()
            };
            frames.push(EncodedFrame {
                data,
                key: frame.flags & ffi::VPX_FRAME_IS_KEY != 0,
            });
        }
        Ok(frames)
    }

    /// Changes the target bitrate from the next frame on.
    pub(super) fn set_bitrate(&mut self, kbps: u32) -> Result<(), CodecError> {
        let previous = self.cfg.rc_target_bitrate;
        self.cfg.rc_target_bitrate = kbps;
        // SAFETY: `ctx` is an initialised encoder and `cfg` a complete
        // configuration that libvpx copies.
        let err = unsafe { ffi::vpx_codec_enc_config_set(&mut *self.ctx, &*self.cfg) };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            self.cfg.rc_target_bitrate = previous;
            return Err(ctx_error(&mut self.ctx, "vpx_codec_enc_config_set", err));
        }
        Ok(())
    }
}

impl Drop for RawEncoder {
    fn drop(&mut self) {
        // SAFETY: `ctx` was initialised by `vpx_codec_enc_init_ver` (a
        // `RawEncoder` exists only then) and is destroyed once, here.
        unsafe { ffi::vpx_codec_destroy(&mut *self.ctx) };
    }
}

impl RawDecoder {
    /// A VP8 decoder, single-threaded, without postprocessing.
    pub(super) fn new() -> Result<Self, CodecError> {
        let mut ctx = zeroed_ctx();
        // SAFETY: `ctx` is a zeroed context at a stable heap address; a NULL
        // configuration asks for libvpx's defaults; the ABI version matches
        // the bindings. On failure libvpx has released what it allocated.
        let err = unsafe {
            ffi::vpx_codec_dec_init_ver(
                &mut *ctx,
                ffi::vpx_codec_vp8_dx(),
                ptr::null(),
                0,
                ffi::VPX_DECODER_ABI_VERSION as c_int,
            )
        };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(code_error("vpx_codec_dec_init_ver", err));
        }
        Ok(Self { ctx })
    }

    /// Decodes one frame and copies out the picture it shows, if any.
    pub(super) fn decode(&mut self, frame: &[u8]) -> Result<Option<I420>, CodecError> {
        if frame.is_empty() {
            // NULL/0 would mean "flush" to libvpx, not a frame.
            return Err(CodecError::BadFrame("empty VP8 frame"));
        }
        let len = c_uint::try_from(frame.len())
            .map_err(|_| CodecError::BadFrame("VP8 frame longer than 4 GiB"))?;
        // SAFETY: `ctx` is an initialised decoder; libvpx reads at most
        // `len` bytes from `frame`, which has exactly that many, and keeps
        // no pointer into it after returning (no frame threading, no
        // input fragments).
        let err = unsafe {
            ffi::vpx_codec_decode(&mut *self.ctx, frame.as_ptr(), len, ptr::null_mut(), 0)
        };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(ctx_error(&mut self.ctx, "vpx_codec_decode", err));
        }
        let mut picture = None;
        let mut iter: ffi::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: `ctx` is an initialised decoder and `iter` libvpx's own
            // iterator; the image stays valid until the next decode call.
            let img = unsafe { ffi::vpx_codec_get_frame(&mut *self.ctx, &mut iter) };
            // SAFETY: NULL ends the list; otherwise it points to an image.
            let Some(img) = (unsafe { img.as_ref() }) else {
                break;
            };
            picture = Some(copy_image(img)?);
        }
        Ok(picture)
    }
}

impl Drop for RawDecoder {
    fn drop(&mut self) {
        // SAFETY: `ctx` was initialised by `vpx_codec_dec_init_ver` and is
        // destroyed once, here.
        unsafe { ffi::vpx_codec_destroy(&mut *self.ctx) };
    }
}

/// Copies a decoded 8-bit I420 image, whose rows are `stride` apart, into a
/// tightly packed [`I420`].
fn copy_image(img: &ffi::vpx_image_t) -> Result<I420, CodecError> {
    const NOT_I420: CodecError =
        CodecError::BadFrame("libvpx returned a picture that is not 8-bit I420");
    if img.fmt != ffi::vpx_img_fmt::VPX_IMG_FMT_I420
        || img.x_chroma_shift != 1
        || img.y_chroma_shift != 1
    {
        return Err(NOT_I420);
    }
    let (width, height) = (img.d_w, img.d_h);
    let mut out = I420::new(width, height);
    let chroma = (width.div_ceil(2), height.div_ceil(2));
    let planes = [(0usize, (width, height)), (1, chroma), (2, chroma)];
    let mut offset = 0usize;
    for (index, (w, h)) in planes {
        let (w, h) = (w as usize, h as usize);
        let stride = usize::try_from(img.stride[index]).map_err(|_| NOT_I420)?;
        let base = img.planes[index];
        if base.is_null() || stride < w {
            return Err(NOT_I420);
        }
        for row in 0..h {
            let dst = out.data.get_mut(offset..offset + w).ok_or(NOT_I420)?;
            // SAFETY: libvpx's image has `h` rows of at least `w` bytes
            // (`stride >= w`, checked) starting `stride` bytes apart at
            // `planes[index]`, valid until the next call on the decoder.
            let src = unsafe { std::slice::from_raw_parts(base.add(row * stride), w) };
            dst.copy_from_slice(src);
            offset += w;
        }
    }
    Ok(out)
}
