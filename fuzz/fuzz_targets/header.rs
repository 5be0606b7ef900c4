//! `Header::parse` on arbitrary bytes, and emit/parse round trips.
//!
//! Invariants: no panic; on `Ok((h, len))`, `len <= data.len()`,
//! `len == h.len()`, re-emitting `h` gives exactly `data[..len]` (the parser
//! refuses non-minimal encodings, so every header has one encoding), and the
//! bytes after the header are not looked at.
#![no_main]

use libfuzzer_sys::fuzz_target;
use satsuma_core::sframe::{Header, MAX_HEADER_LEN};
use satsuma_core::{Error, HeaderError};

fuzz_target!(|data: &[u8]| {
    match Header::parse(data) {
        Ok((h, len)) => {
            assert!(len <= data.len(), "len {len} > input {}", data.len());
            assert!((1..=MAX_HEADER_LEN).contains(&len));
            assert_eq!(len, h.len(), "parse length != Header::len for {h:?}");
            let mut out = [0u8; MAX_HEADER_LEN];
            let written = h.emit(&mut out).expect("MAX_HEADER_LEN always suffices");
            assert_eq!(written, len);
            assert_eq!(&out[..written], &data[..len], "re-emit differs for {h:?}");
            // The rest of the input is not looked at.
            assert_eq!(Header::parse(&data[..len]), Ok((h, len)));
            // Any shorter prefix is truncated.
            for cut in 0..len {
                assert_eq!(
                    Header::parse(&data[..cut]),
                    Err(Error::Header(HeaderError::Truncated)),
                    "prefix of {cut} bytes of {h:?}"
                );
            }
            // A buffer one byte short is refused, not overrun.
            let mut short = [0u8; MAX_HEADER_LEN];
            assert_eq!(
                h.emit(&mut short[..len - 1]),
                Err(Error::BufferTooSmall {
                    needed: len,
                    available: len - 1
                })
            );
        }
        Err(Error::Header(HeaderError::Truncated | HeaderError::NonMinimal)) => {}
        Err(other) => panic!("unexpected error {other:?}"),
    }

    // The other direction: any (KID, CTR) taken from the input emits and
    // parses back to itself.
    if data.len() >= 16 {
        let kid = u64::from_le_bytes(data[..8].try_into().unwrap());
        let ctr = u64::from_le_bytes(data[8..16].try_into().unwrap());
        let h = Header::new(kid, ctr);
        let mut out = [0u8; MAX_HEADER_LEN + 1];
        out[MAX_HEADER_LEN] = 0xee;
        let len = h.emit(&mut out).expect("buffer is large enough");
        assert_eq!(len, h.len());
        assert_eq!(Header::parse(&out), Ok((h, len)));
    }
});
