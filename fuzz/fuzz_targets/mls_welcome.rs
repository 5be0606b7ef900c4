//! `Session::join` for Dave (who published a key package) with raw bytes
//! and with mutated genuine Welcomes.
//!
//! The first input byte picks a mode:
//! - 0: the rest of the input as the Welcome.
//! - 1: one of Dave's two genuine Welcomes after up to four edits, spliced
//!   with the other (see `mls_common::mutate`).
//! - 2: as 1, then the genuine Welcome, which must still work.
//!
//! Invariants: no panic; when Dave joins, he is in exactly one of the two
//! groups that invited him, in epoch 3, seeing the same safety number and
//! roster as its members (the GroupInfo and tree are signed and encrypted:
//! no edit leads him anywhere else); a refused Welcome is a typed error,
//! leaves him in no group, and the genuine Welcome still works after it.
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
    let (genuine, donor) = if input.byte() & 1 == 0 {
        (&f.welcome, &f.other_welcome)
    } else {
        (&f.other_welcome, &f.welcome)
    };
    let welcome = match mode {
        0 => input.rest().to_vec(),
        _ => mutate(&mut input, genuine, donor),
    };

    let mut dave = resume(&f.dave, 4);
    match dave.join(NOW, &welcome) {
        Ok(()) => check_joined(&dave),
        Err(e) => {
            assert_input_error(&e, "join");
            assert!(
                welcome != f.welcome && welcome != f.other_welcome,
                "a genuine Welcome was refused: {e:?}"
            );
            assert_eq!(dave.epoch(), None);
            if mode == 2 {
                dave.join(NOW, genuine)
                    .expect("the genuine Welcome works after a refused one");
                check_joined(&dave);
            }
        }
    }
});

fn check_joined(dave: &Session) {
    let f = fixture();
    assert_eq!(dave.epoch(), Some(EPOCH + 1));
    let safety = dave.safety_number().expect("in a group");
    let roster = dave.roster();
    assert!(
        (safety == f.welcomed_safety && roster == f.welcomed_roster)
            || (safety == f.other_safety && roster == f.other_roster),
        "Dave joined a group nobody invited him to"
    );
}
