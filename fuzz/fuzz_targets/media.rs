//! Per-codec framing: `Codec::inspect` and `Codec::unprotect` on arbitrary
//! bytes, and `Codec::protect` → `Codec::unprotect` round trips.
//!
//! Invariants: no panic; audio codecs reveal nothing to `inspect`; VP8's
//! `inspect` of a protected frame says exactly what the frame's own header
//! says; a failed `unprotect` leaves no plaintext in the output buffer;
//! `protect` writes at most `max_protected_len` bytes; the round trip gives
//! back the exact frame, from sender 0 in epoch 1; the same protected bytes
//! again are `Err(Replay)`; a protected frame with one byte altered, or cut
//! short, never opens.
#![no_main]

#[path = "common.rs"]
mod common;

use common::*;
use libfuzzer_sys::fuzz_target;
use satsuma_core::Error;
use satsuma_core::media::{ClearInfo, Codec, Vp8Header};
use satsuma_core::sframe::Header;

const NOTHING: ClearInfo = ClearInfo {
    key_frame: None,
    dimensions: None,
};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let out_sel = input.byte();
    let pos = usize::from(input.u16());
    let mask = input.byte();
    let cut = usize::from(input.u16());
    let bytes = input.rest();

    let mut sender = ring(SENDER, FIRST_EPOCH);
    let mut receiver = ring(RECEIVER, FIRST_EPOCH);

    for codec in CODECS {
        // Arbitrary bytes as a protected frame.
        let info = codec.inspect(bytes);
        if codec.max_clear_len() == 0 {
            assert_eq!(info, Ok(NOTHING), "{codec:?} reveals something");
        } else if let Ok(info) = info {
            assert!(info.dimensions.is_none() || info.key_frame == Some(true));
        }
        let out_len = if out_sel >= 128 {
            bytes.len()
        } else {
            usize::from(out_sel)
        };
        let mut out = vec![SENTINEL; out_len];
        match codec.unprotect(&mut receiver, bytes, &mut out) {
            // Only a forgery could open; if one does, it must be consistent.
            Ok((opened, len)) => {
                assert!(len <= out_len);
                assert_eq!(opened.epoch, FIRST_EPOCH);
                assert_ne!(opened.sender, RECEIVER);
            }
            Err(_) => assert_no_leak(&out, "Codec::unprotect"),
        }

        // The input as an encoded frame: protect, inspect, unprotect.
        let frame = bytes;
        let max = codec.max_protected_len(&sender, frame.len());
        let mut protected = vec![0u8; max];
        let n = codec
            .protect(&mut sender, frame, &mut protected)
            .unwrap_or_else(|e| panic!("{codec:?}: protect failed: {e:?}"));
        assert!(n <= max, "{codec:?}: wrote {n} > max_protected_len {max}");
        protected.truncate(n);

        let info = codec
            .inspect(&protected)
            .unwrap_or_else(|e| panic!("{codec:?}: inspect of own output: {e:?}"));
        if codec == Codec::Vp8 {
            let expected = match Vp8Header::parse(frame) {
                Ok(h) => ClearInfo {
                    key_frame: Some(h.key_frame),
                    dimensions: h.dimensions,
                },
                Err(_) => ClearInfo {
                    key_frame: frame.first().map(|&b0| Vp8Header::is_key_frame(b0)),
                    dimensions: None,
                },
            };
            assert_eq!(info, expected, "VP8 inspect disagrees with the frame");
            let clear = codec.clear_len(frame);
            assert_eq!(usize::from(protected[0]), clear);
            assert_eq!(&protected[1..1 + clear], &frame[..clear]);
            let (h, _) = Header::parse(&protected[1 + clear..]).expect("SFrame header");
            assert_eq!(Some(h.kid), sender.sending_kid());
        } else {
            assert_eq!(info, NOTHING);
            let (h, _) = Header::parse(&protected).expect("SFrame header");
            assert_eq!(Some(h.kid), sender.sending_kid());
        }

        // Altered or cut short first, while the frame is still fresh: the
        // replay window must not have seen it, so only authentication stands
        // in the way.
        if mask != 0 {
            let mut bad = protected.clone();
            bad[pos % n] ^= mask;
            let mut out = vec![SENTINEL; frame.len() + 16];
            let result = codec.unprotect(&mut receiver, &bad, &mut out);
            assert!(result.is_err(), "{codec:?}: altered frame opened");
            assert_no_leak(&out, "Codec::unprotect (altered)");
        }
        let short = &protected[..cut % n];
        let mut out = vec![SENTINEL; frame.len() + 16];
        let result = codec.unprotect(&mut receiver, short, &mut out);
        assert!(result.is_err(), "{codec:?}: truncated frame opened");
        assert_no_leak(&out, "Codec::unprotect (truncated)");

        // Too small an output buffer is an error, and the frame stays fresh.
        if !frame.is_empty() {
            let mut out = vec![SENTINEL; frame.len() - 1];
            let result = codec.unprotect(&mut receiver, &protected, &mut out);
            assert!(
                matches!(result, Err(Error::BufferTooSmall { .. })),
                "{codec:?}: {result:?}"
            );
            assert_no_leak(&out, "Codec::unprotect (small buffer)");
        }

        let mut out = vec![SENTINEL; frame.len() + 1];
        let (opened, len) = codec
            .unprotect(&mut receiver, &protected, &mut out)
            .unwrap_or_else(|e| panic!("{codec:?}: round trip failed: {e:?}"));
        assert_eq!(
            &out[..len],
            frame,
            "{codec:?}: round trip changed the frame"
        );
        assert_eq!(out[len], SENTINEL, "{codec:?}: wrote past the frame");
        assert_eq!((opened.sender, opened.epoch), (SENDER, FIRST_EPOCH));

        let again = codec.unprotect(&mut receiver, &protected, &mut out);
        assert!(
            matches!(again, Err(Error::Replay { .. })),
            "{codec:?}: second unprotect gave {again:?}"
        );

        // A too-small buffer for protect is an error too (it burns a counter).
        let small = usize::from(out_sel) % (n + 1);
        if small < n {
            let mut buf = vec![0u8; small];
            assert!(codec.protect(&mut sender, frame, &mut buf).is_err());
        }
    }
});
