//! `Session::commit` on a live group (Alice, in epoch 2 with Bob and Carol)
//! with key packages from the input: raw bytes, and mutations of Dave's
//! genuine key package, alone, next to the genuine one, or with removes.
//!
//! The first input byte picks a mode:
//! - 0: the rest of the input as one key package.
//! - 1: Dave's key package after up to four edits (see
//!   `mls_common::mutate`).
//! - 2: as 1, next to the genuine one (before or after it).
//! - 3: removes of leaves 0..5 from the input, with or without Dave's
//!   genuine key package.
//!
//! Invariants: no panic; a refused commit is a typed error and leaves Alice
//! unchanged (epoch 2, same safety number, nothing pending); a commit Alice
//! builds adds only Dave's key package, byte for byte (it is signed, and the
//! unsigned MLSMessage version is checked), applies,
//! and takes Bob (or removes him) to the same safety number, and its
//! Welcome takes Dave there too.
#![no_main]

#[path = "common.rs"]
mod common;
#[path = "mls_common.rs"]
mod mls_common;

use common::Input;
use libfuzzer_sys::fuzz_target;
use mls_common::*;
use satsuma_core::mls::Event;

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let genuine = &f.dave_key_package;
    let mut input = Input::new(data);
    let mode = input.byte();
    let mut removes = Vec::new();
    let adds: Vec<Vec<u8>> = match mode % 4 {
        0 => vec![input.rest().to_vec()],
        1 => vec![mutate(&mut input, genuine, &f.welcome)],
        2 => {
            let m = mutate(&mut input, genuine, &f.welcome);
            if mode & 0x80 == 0 {
                vec![genuine.clone(), m]
            } else {
                vec![m, genuine.clone()]
            }
        }
        _ => {
            for _ in 0..input.byte() % 4 {
                removes.push(u32::from(input.byte() % 5));
            }
            if mode & 0x80 == 0 {
                vec![genuine.clone()]
            } else {
                Vec::new()
            }
        }
    };
    let adds_ref: Vec<&[u8]> = adds.iter().map(Vec::as_slice).collect();

    let mut alice = resume(&f.alice, 1);
    match alice.commit(&adds_ref, &removes) {
        Ok(commit) => {
            for kp in &adds {
                assert!(kp == genuine, "a key package that is not Dave's was taken");
            }
            assert_eq!(commit.welcome.is_some(), !adds.is_empty());
            assert_eq!(
                alice
                    .apply_pending_commit(NOW)
                    .expect("a commit Alice built applies"),
                EPOCH + 1
            );
            let safety = alice.safety_number().expect("in a group");
            let mut bob = resume(&f.bob, 2);
            let event = bob
                .process(NOW, &commit.commit)
                .expect("Bob takes Alice's commit");
            if removes.contains(&BOB) {
                assert_eq!(event, Event::Removed { by: ALICE });
            } else {
                assert_eq!(
                    event,
                    Event::NewEpoch {
                        epoch: EPOCH + 1,
                        committer: ALICE
                    }
                );
                assert_eq!(bob.safety_number().ok(), Some(safety));
            }
            if let Some(welcome) = commit.welcome {
                let mut dave = resume(&f.dave, 4);
                dave.join(NOW, &welcome)
                    .expect("Dave joins with the Welcome");
                assert_eq!(dave.safety_number().ok(), Some(safety));
            }
        }
        Err(e) => {
            assert_input_error(&e, "commit");
            assert_eq!(alice.epoch(), Some(EPOCH));
            assert!(!alice.has_pending_commit());
            assert_eq!(alice.safety_number().ok(), Some(f.safety));
        }
    }
});
