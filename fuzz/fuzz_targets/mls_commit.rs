//! `Session::process` on a member of a three-member group (Bob, in
//! epoch 2), with raw bytes and with mutated genuine commits and proposals.
//!
//! The first input byte picks a mode:
//! - 0: the rest of the input as the message.
//! - 1: a genuine message (next byte picks which) after up to four edits
//!   (see `mls_common::mutate`).
//! - 2: as 1, then a genuine message, which must still be taken exactly as
//!   by a fresh Bob.
//!
//! Invariants: no panic; Bob accepts only bytes equal to a genuine message
//! (every byte of a member's PublicMessage is under its membership tag or
//! checked), and then does exactly what a fresh Bob does with it (same
//! event, same safety number); a refused message is a typed error that
//! leaves Bob unchanged (epoch 2, same safety number, nothing pending) and
//! never one that means his own state broke.
#![no_main]

#[path = "common.rs"]
mod common;
#[path = "mls_common.rs"]
mod mls_common;

use common::Input;
use libfuzzer_sys::fuzz_target;
use mls_common::*;
use satsuma_core::mls::Session;

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut input = Input::new(data);
    let mode = input.byte() % 3;
    let pick = usize::from(input.byte()) % f.messages.len();
    let donor = usize::from(input.byte()) % f.messages.len();
    let message = match mode {
        0 => input.rest().to_vec(),
        _ => mutate(
            &mut input,
            &f.messages[pick].bytes,
            &f.messages[donor].bytes,
        ),
    };

    let mut bob = resume(&f.bob, 2);
    let refused = deliver(&mut bob, &message);
    if mode == 2 && refused {
        let genuine = &f.messages[usize::from(input.byte()) % f.messages.len()];
        deliver(&mut bob, &genuine.bytes);
    }
});

/// Delivers `message` to Bob and checks the outcome; whether it was refused.
fn deliver(bob: &mut Session, message: &[u8]) -> bool {
    let f = fixture();
    match bob.process(NOW, message) {
        Ok(event) => {
            let genuine = f
                .messages
                .iter()
                .find(|g| g.bytes == message)
                .unwrap_or_else(|| panic!("Bob took a message that is no genuine one: {event:?}"));
            assert_eq!(event, genuine.event);
            assert_eq!(bob.safety_number().ok(), genuine.safety);
            false
        }
        Err(e) => {
            assert_input_error(&e, "process");
            assert!(
                f.messages.iter().all(|g| g.bytes != message),
                "a genuine message was refused: {e:?}"
            );
            assert_eq!(bob.epoch(), Some(EPOCH), "{e:?}");
            assert!(!bob.has_pending_commit());
            assert_eq!(bob.safety_number().ok(), Some(f.safety), "{e:?}");
            true
        }
    }
}
