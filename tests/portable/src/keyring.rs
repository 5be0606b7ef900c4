//! The MLS key schedule as members live it: keys change, late frames still
//! open for a while, replays and reflections are refused.

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;
use satsuma_core::sframe::{
    EpochSecret, Header, KeyRing, KeyRingConfig, MAX_SEND_CONTEXTS, ReplayWindow,
};
use satsuma_core::{Error, Instant};

use crate::{Context, Failure, ensure, ensure_eq, portable_tests};

const GROUP: u64 = 3;

fn base_key(epoch: u64) -> [u8; 16] {
    // Stands in for the MLS exporter: distinct per epoch.
    let mut key = [0x5a; 16];
    key[..8].copy_from_slice(&epoch.to_be_bytes());
    key
}

fn member(config: KeyRingConfig) -> Result<KeyRing, Failure> {
    KeyRing::new(config).context("new ring")
}

fn enter(ring: &mut KeyRing, now: Instant, epoch: u64, own_index: u64) -> Result<(), Failure> {
    let key = base_key(epoch);
    ring.install_epoch(
        now,
        EpochSecret {
            epoch,
            base_key: &key,
            group_size: GROUP,
            own_index,
        },
    )
    .context("install epoch")
}

fn seal(ring: &mut KeyRing, payload: &[u8]) -> Result<Vec<u8>, Failure> {
    let mut out = vec![0u8; ring.max_ciphertext_len(payload.len())];
    let n = ring.encrypt(&[], payload, &mut out).context("encrypt")?;
    out.truncate(n);
    Ok(out)
}

fn open(ring: &mut KeyRing, frame: &[u8]) -> Result<(u64, Vec<u8>), Error> {
    let mut out = vec![0u8; frame.len()];
    let opened = ring.decrypt(&[], frame, &mut out)?;
    out.truncate(opened.len);
    Ok((opened.epoch, out))
}

fn pair() -> Result<(KeyRing, KeyRing), Failure> {
    let mut alice = member(KeyRingConfig::default())?;
    let mut bob = member(KeyRingConfig::default())?;
    enter(&mut alice, Instant::ZERO, 1, 0)?;
    enter(&mut bob, Instant::ZERO, 1, 1)?;
    Ok((alice, bob))
}

portable_tests! { TESTS:
    fn frames_that_race_ahead_of_their_commit_are_held_and_none_is_lost() {
        let (mut alice, mut bob) = pair()?;
        let late: Vec<Vec<u8>> = (0..5u8).map(|i| seal(&mut alice, &[b'a', i])).collect::<Result<_, _>>()?;
        // Alice commits and talks on at once; her commit is still on its way to Bob.
        enter(&mut alice, Instant::ZERO, 2, 0)?;
        let ahead: Vec<Vec<u8>> = (0..20u8).map(|i| seal(&mut alice, &[b'b', i])).collect::<Result<_, _>>()?;
        let t = Instant::from_micros(1_000);
        for frame in &ahead {
            let Err(Error::FutureEpoch { kid }) = open(&mut bob, frame) else {
                return Err(Failure("not refused as future".into()));
            };
            bob.hold(t, kid, 7, frame).context("hold")?;
        }
        // Frames of the old epoch that arrive now still open, and release nothing.
        for (i, frame) in late.iter().enumerate() {
            ensure_eq!(open(&mut bob, frame), Ok((1, vec![b'a', i as u8])), "late frame {i}");
        }
        ensure!(bob.take_ready().is_none(), "released before the epoch");
        ensure_eq!(bob.poll_timeout(), Some(t.saturating_add(KeyRingConfig::default().hold.duration)), "hold deadline");

        enter(&mut bob, t, 2, 1)?;
        let mut opened = Vec::new();
        while let Some(held) = bob.take_ready() {
            ensure_eq!(held.tag, 7, "tag");
            opened.push(open(&mut bob, &held.frame).context("open a held frame")?);
        }
        let expected: Vec<(u64, Vec<u8>)> = (0..20u8).map(|i| (2, vec![b'b', i])).collect();
        ensure_eq!(opened, expected, "every held frame, in order");
        let stats = bob.hold_stats();
        ensure_eq!((stats.held, stats.released, stats.evicted, stats.expired), (0, 20, 0, 0), "none lost");

        // Two epochs ahead is held too; three is not a race but a stranger.
        enter(&mut alice, t, 3, 0)?;
        enter(&mut alice, t, 4, 0)?;
        let two_ahead = seal(&mut alice, b"4")?;
        ensure!(matches!(open(&mut bob, &two_ahead), Err(Error::FutureEpoch { .. })), "two ahead");
        enter(&mut alice, t, 5, 0)?;
        let three_ahead = seal(&mut alice, b"5")?;
        ensure!(matches!(open(&mut bob, &three_ahead), Err(Error::UnknownKid { .. })), "three ahead");
        let kid = Header::parse(&three_ahead).context("header")?.0.kid;
        ensure!(matches!(bob.hold(t, kid, 0, &three_ahead), Err(Error::UnknownKid { .. })), "held three ahead");
        Ok(())
    }

    fn held_frames_are_bounded_and_expire_when_their_epoch_never_comes() {
        let mut config = KeyRingConfig::default();
        config.hold.frames = 4;
        let mut alice = member(config)?;
        let mut bob = member(config)?;
        enter(&mut alice, Instant::ZERO, 1, 0)?;
        enter(&mut bob, Instant::ZERO, 1, 1)?;
        enter(&mut alice, Instant::ZERO, 2, 0)?;
        for i in 0..6u8 {
            let frame = seal(&mut alice, &[i])?;
            let kid = Header::parse(&frame).context("header")?.0.kid;
            bob.hold(Instant::ZERO, kid, 0, &frame).context("hold")?;
        }
        ensure_eq!((bob.hold_stats().held, bob.hold_stats().evicted), (4, 2), "bounded");
        let until = Instant::ZERO.saturating_add(config.hold.duration);
        ensure_eq!(bob.poll_timeout(), Some(until), "deadline");
        bob.handle_timeout(until);
        ensure_eq!((bob.hold_stats().held, bob.hold_stats().expired), (0, 4), "expired");
        ensure_eq!(bob.poll_timeout(), None, "nothing left");
        // A frame of an epoch the ring holds is never held.
        let own_epoch = {
            let mut carol = member(config)?;
            enter(&mut carol, Instant::ZERO, 1, 2)?;
            seal(&mut carol, b"now")?
        };
        let kid = Header::parse(&own_epoch).context("header")?.0.kid;
        ensure!(matches!(bob.hold(Instant::ZERO, kid, 0, &own_epoch), Err(Error::UnknownKid { .. })), "held a current frame");
        Ok(())
    }

    fn late_frames_open_inside_the_grace_period_then_never() {
        let (mut alice, mut bob) = pair()?;
        let early = seal(&mut alice, b"sealed in epoch 1")?;
        let also_early = seal(&mut alice, b"also epoch 1")?;

        let t = Instant::from_micros(10_000);
        enter(&mut alice, t, 2, 0)?;
        enter(&mut bob, t, 2, 1)?;
        let grace_end = t.saturating_add(KeyRingConfig::default().grace);
        ensure_eq!(bob.poll_timeout(), Some(grace_end), "grace deadline");

        // No gap: the frame sealed before the change opens after it.
        ensure_eq!(open(&mut bob, &early), Ok((1, b"sealed in epoch 1".to_vec())), "late frame");
        let fresh = seal(&mut alice, b"epoch 2")?;
        ensure_eq!(open(&mut bob, &fresh), Ok((2, b"epoch 2".to_vec())), "new frame");

        bob.handle_timeout(grace_end.saturating_add(Duration::from_micros(0)));
        ensure_eq!(bob.epochs().collect::<Vec<_>>(), vec![2], "epoch 1 erased");
        ensure!(
            matches!(open(&mut bob, &also_early), Err(Error::UnknownKid { .. })),
            "epoch 1 frame opened after its grace period"
        );
        ensure_eq!(bob.poll_timeout(), None, "nothing left to expire");
        Ok(())
    }

    fn replays_are_refused_and_reordering_is_not() {
        let (mut alice, mut bob) = pair()?;
        let frames: Vec<Vec<u8>> = (0..5u8).map(|i| seal(&mut alice, &[i; 20])).collect::<Result<_, _>>()?;
        for i in [4usize, 2, 0, 3, 1] {
            ensure_eq!(open(&mut bob, &frames[i]).map(|o| o.1), Ok(vec![i as u8; 20]), "frame {i}");
        }
        let kid = alice.sending_kid().unwrap_or_default();
        ensure_eq!(open(&mut bob, &frames[2]), Err(Error::Replay { kid, ctr: 2 }), "replay");
        Ok(())
    }

    fn a_frame_too_old_for_the_window_is_refused() {
        let (mut alice, mut bob) = pair()?;
        let oldest = seal(&mut alice, b"old")?;
        let mut newest = Vec::new();
        for _ in 0..ReplayWindow::SIZE {
            newest = seal(&mut alice, b"newer")?;
        }
        open(&mut bob, &newest).context("newest")?;
        ensure!(matches!(open(&mut bob, &oldest), Err(Error::Replay { ctr: 0, .. })), "old frame accepted");
        Ok(())
    }

    fn keys_handed_over_to_a_media_ring_live_there_only() {
        // The MLS side installs epochs; the media side seals and opens
        // with what it was handed, and the MLS side keeps nothing.
        let mut mls = member(KeyRingConfig::default())?;
        let mut media = mls.empty_like().context("empty ring")?;
        let mut bob = member(KeyRingConfig::default())?;
        enter(&mut mls, Instant::ZERO, 1, 0)?;
        enter(&mut bob, Instant::ZERO, 1, 1)?;
        let kid = mls.sending_kid();
        mls.hand_over(Instant::ZERO, &mut media).context("hand over")?;
        ensure_eq!(media.sending_kid(), kid, "the media ring sends as the MLS side would have");
        ensure_eq!(mls.epochs().count(), 0, "keys left behind on the MLS side");
        ensure!(mls.encrypt(&[], b"x", &mut [0u8; 64]).is_err(), "the MLS side still seals");
        let early = seal(&mut media, b"epoch 1")?;
        ensure_eq!(open(&mut bob, &early), Ok((1, b"epoch 1".to_vec())), "sealed by the media ring");

        // Two commits in one step: both arrive, in order, and frames of the
        // first epoch still open within the grace period.
        let t = Instant::from_micros(5_000);
        enter(&mut mls, t, 2, 0)?;
        enter(&mut mls, t, 3, 0)?;
        mls.hand_over(t, &mut media).context("hand over two")?;
        ensure_eq!(media.epochs().collect::<Vec<_>>(), vec![1, 2, 3], "epochs kept");
        enter(&mut bob, t, 3, 1)?;
        let (ahead, _) = Header::parse(&seal(&mut media, b"three")?).context("header")?;
        ensure_eq!(ahead.ctr, 0, "a new epoch's counter");
        let mut bob_media = member(KeyRingConfig::default())?;
        enter(&mut bob_media, t, 1, 1)?;
        ensure_eq!(open(&mut bob_media, &early), Ok((1, b"epoch 1".to_vec())), "epoch 1 frame");

        // The same epoch again (no leave between) is refused, and the media
        // ring's counters are not started again.
        let before = seal(&mut media, b"a")?;
        let mut again = member(KeyRingConfig::default())?;
        enter(&mut again, t, 3, 0)?;
        ensure!(matches!(again.hand_over(t, &mut media), Err(Error::StaleEpoch { .. })), "stale epoch accepted");
        let after = seal(&mut media, b"b")?;
        let (h0, _) = Header::parse(&before).context("header")?;
        let (h1, _) = Header::parse(&after).context("header")?;
        ensure_eq!(h1.ctr, h0.ctr + 1, "counter restarted by a stale hand-over");
        ensure_eq!(again.epochs().count(), 0, "the refused keys were not erased");

        // Receive-only on the MLS side makes the media side receive-only.
        mls.set_send_context(None).context("receive only")?;
        enter(&mut mls, t, 4, 0)?;
        mls.hand_over(t, &mut media).context("hand over receive-only")?;
        ensure_eq!(media.current_epoch(), Some(4), "epoch 4");
        ensure_eq!(media.sending_kid(), None, "receive-only media ring sends");

        // A leave empties the media ring on the next hand-over.
        mls.clear();
        mls.hand_over(t, &mut media).context("hand over a leave")?;
        ensure_eq!(media.epochs().count(), 0, "keys kept after a leave");
        ensure!(open(&mut media, &early).is_err(), "opened after a leave");
        Ok(())
    }

    fn counters_advance_and_kids_name_the_sender() {
        let (mut alice, mut bob) = pair()?;
        let a0 = seal(&mut alice, b"x")?;
        let a1 = seal(&mut alice, b"x")?;
        let b0 = seal(&mut bob, b"x")?;
        let (ha0, _) = Header::parse(&a0).context("parse")?;
        let (ha1, _) = Header::parse(&a1).context("parse")?;
        let (hb0, _) = Header::parse(&b0).context("parse")?;
        ensure_eq!((ha0.ctr, ha1.ctr), (0, 1), "alice's counters");
        ensure_eq!(ha0.kid, ha1.kid, "one KID per epoch");
        ensure!(ha0.kid != hb0.kid, "alice and bob share a KID");
        ensure!(a0 != a1, "same plaintext sealed twice gave the same bytes");
        Ok(())
    }

    fn own_frames_reflected_back_are_refused() {
        let (mut alice, _) = pair()?;
        let mine = seal(&mut alice, b"hello")?;
        let kid = alice.sending_kid().unwrap_or_default();
        ensure_eq!(open(&mut alice, &mine), Err(Error::OwnKid { kid }), "reflection");
        Ok(())
    }

    fn a_forged_frame_does_not_move_the_replay_window() {
        let (mut alice, mut bob) = pair()?;
        let f0 = seal(&mut alice, b"zero")?;
        let f1 = seal(&mut alice, b"one")?;
        open(&mut bob, &f0).context("f0")?;
        // A forged frame with alice's KID and a counter far ahead.
        let kid = alice.sending_kid().unwrap_or_default();
        let mut forged = [0u8; 64];
        let n = Header::new(kid, 10_000).emit(&mut forged).context("emit")?;
        ensure_eq!(open(&mut bob, &forged[..n + 30]), Err(Error::Authentication), "forgery");
        // Were the window at 10000, counter 1 would now be too old.
        ensure_eq!(open(&mut bob, &f1).map(|o| o.1), Ok(b"one".to_vec()), "genuine frame after forgery");
        let mut tampered = seal(&mut alice, b"two")?;
        let last = tampered.len() - 1;
        tampered[last] ^= 0x80;
        ensure_eq!(open(&mut bob, &tampered), Err(Error::Authentication), "tampered tag");
        Ok(())
    }

    fn outsiders_unknown_epochs_and_unknown_senders_cannot_open() {
        let (mut alice, mut bob) = pair()?;
        // A holder of a valid identity who was never given this epoch's key.
        let mut eve = member(KeyRingConfig::default())?;
        let mut wrong = base_key(1);
        wrong[15] ^= 1;
        eve.install_epoch(Instant::ZERO, EpochSecret { epoch: 1, base_key: &wrong, group_size: GROUP, own_index: 1 })
            .context("eve")?;
        let frame = seal(&mut alice, b"secret")?;
        ensure_eq!(open(&mut eve, &frame), Err(Error::Authentication), "outsider");

        // A frame from an epoch bob does not hold yet.
        enter(&mut alice, Instant::ZERO, 3, 0)?;
        let ahead = seal(&mut alice, b"future")?;
        ensure!(matches!(open(&mut bob, &ahead), Err(Error::FutureEpoch { .. })), "future epoch");

        // A KID whose sender index is outside the group (index 3 of 3).
        let mut out = [0u8; 64];
        let n = Header::new((3 << 4) | 1, 0).emit(&mut out).context("emit")?;
        ensure!(matches!(open(&mut bob, &out[..n + 20]), Err(Error::UnknownKid { .. })), "index outside group");
        Ok(())
    }

    fn stale_epochs_are_refused_and_change_nothing() {
        let (mut alice, mut bob) = pair()?;
        enter(&mut alice, Instant::ZERO, 2, 0)?;
        enter(&mut bob, Instant::ZERO, 2, 1)?;
        let kid_before = alice.sending_kid();
        let key = base_key(2);
        let again = alice.install_epoch(Instant::ZERO, EpochSecret { epoch: 2, base_key: &key, group_size: GROUP, own_index: 0 });
        ensure_eq!(again, Err(Error::StaleEpoch { epoch: 2, current: 2 }), "same epoch twice");
        ensure_eq!(alice.sending_kid(), kid_before, "sending KID unchanged");
        let frame = seal(&mut alice, b"still fine")?;
        ensure_eq!(open(&mut bob, &frame).map(|o| o.0), Ok(2), "still sends in epoch 2");
        let short = alice.install_epoch(Instant::ZERO, EpochSecret { epoch: 3, base_key: &key[..8], group_size: GROUP, own_index: 0 });
        ensure_eq!(short, Err(Error::KeyLength { len: 8, expected: 16 }), "short base key");
        Ok(())
    }

    fn epoch_bits_roll_over_by_erasing_the_old_epoch() {
        // E = 2: epochs 1 and 5 share their low bits.
        let config = KeyRingConfig { epoch_bits: 2, max_previous_epochs: 3, ..KeyRingConfig::default() };
        let mut alice = member(config)?;
        let mut bob = member(config)?;
        enter(&mut alice, Instant::ZERO, 1, 0)?;
        let from_epoch_1 = seal(&mut alice, b"one")?;
        for epoch in 2..=4 {
            enter(&mut bob, Instant::ZERO, epoch, 1)?;
        }
        ensure_eq!(bob.epochs().collect::<Vec<_>>(), vec![2, 3, 4], "three epochs held");
        enter(&mut bob, Instant::ZERO, 5, 1)?;
        ensure_eq!(bob.epochs().collect::<Vec<_>>(), vec![2, 3, 4, 5], "epoch 5 added");
        // The epoch-1 frame now points at epoch 5 and must not open.
        ensure_eq!(open(&mut bob, &from_epoch_1), Err(Error::Authentication), "rolled-over epoch");
        let too_many = KeyRingConfig { epoch_bits: 2, max_previous_epochs: 4, ..KeyRingConfig::default() };
        ensure!(KeyRing::new(too_many).is_err(), "more epochs kept than E bits tell apart");
        Ok(())
    }

    fn kid_contexts_beyond_the_limit_are_refused_before_any_key_work() {
        let (_, mut bob) = pair()?;
        // Context 16, sender 0, epoch 1, with S = 2 and E = 4.
        let kid = (MAX_SEND_CONTEXTS << 6) | 1;
        let mut out = [0u8; 64];
        let n = Header::new(kid, 0).emit(&mut out).context("emit")?;
        ensure_eq!(open(&mut bob, &out[..n + 20]), Err(Error::UnknownKid { kid }), "context 16");
        // A sender using an allowed context other than 0 is heard.
        let config = KeyRingConfig { send_context: 3, ..KeyRingConfig::default() };
        let mut carol = member(config)?;
        enter(&mut carol, Instant::ZERO, 1, 2)?;
        let frame = seal(&mut carol, b"second stream")?;
        ensure_eq!(open(&mut bob, &frame).map(|o| o.1), Ok(b"second stream".to_vec()), "context 3");
        let too_big = KeyRingConfig { send_context: MAX_SEND_CONTEXTS, ..KeyRingConfig::default() };
        ensure!(KeyRing::new(too_big).is_err(), "sending with context 16 allowed");
        Ok(())
    }

    fn only_a_bounded_number_of_old_epochs_is_kept() {
        let (_, mut bob) = pair()?;
        for epoch in 2..=6 {
            enter(&mut bob, Instant::ZERO, epoch, 1)?;
        }
        ensure_eq!(bob.epochs().collect::<Vec<_>>(), vec![4, 5, 6], "current + 2 previous");
        Ok(())
    }

    fn no_epoch_means_nothing_to_send() {
        let mut ring = member(KeyRingConfig::default())?;
        let mut out = [0u8; 64];
        ensure_eq!(ring.encrypt(&[], b"x", &mut out), Err(Error::NoEpoch), "send before join");
        enter(&mut ring, Instant::ZERO, 1, 0)?;
        ring.clear();
        ensure_eq!(ring.encrypt(&[], b"x", &mut out), Err(Error::NoEpoch), "send after leave");
        Ok(())
    }

    fn compact_receiver_keys_open_the_same_frames_and_refuse_the_same_ones() {
        let compact = KeyRingConfig { expanded_receiver_keys: false, ..KeyRingConfig::default() };
        let mut alice = member(KeyRingConfig::default())?;
        let mut bob = member(compact)?;
        enter(&mut alice, Instant::ZERO, 1, 0)?;
        enter(&mut bob, Instant::ZERO, 1, 1)?;
        let first = seal(&mut alice, b"one")?;
        let second = seal(&mut alice, b"two")?;
        ensure_eq!(open(&mut bob, &second).map(|o| o.1), Ok(b"two".to_vec()), "first seen");
        ensure_eq!(open(&mut bob, &first).map(|o| o.1), Ok(b"one".to_vec()), "reordered");
        ensure!(matches!(open(&mut bob, &first), Err(Error::Replay { .. })), "replay opened");
        let mut forged = seal(&mut alice, b"three")?;
        let last = forged.len() - 1;
        forged[last] ^= 1;
        ensure_eq!(open(&mut bob, &forged), Err(Error::Authentication), "forged");
        // Late frames keep opening through the grace period, then never.
        let late = seal(&mut alice, b"late")?;
        enter(&mut alice, Instant::ZERO, 2, 0)?;
        enter(&mut bob, Instant::ZERO, 2, 1)?;
        ensure_eq!(open(&mut bob, &late).map(|o| o.0), Ok(1), "late frame in the grace period");
        let fresh = seal(&mut alice, b"fresh")?;
        ensure_eq!(open(&mut bob, &fresh).map(|o| o.1), Ok(b"fresh".to_vec()), "epoch 2");
        Ok(())
    }

    fn a_new_send_context_never_restarts_a_used_key_at_counter_zero() {
        let (mut alice, mut bob) = pair()?;
        let first = seal(&mut alice, b"before restart")?;
        let kid_before = alice.sending_kid();
        // What a member resumed from storage does: move to an unused stream.
        alice.set_send_context(Some(1)).context("context 1")?;
        ensure!(alice.sending_kid() != kid_before, "same KID after switching stream");
        let second = seal(&mut alice, b"after restart")?;
        ensure_eq!(open(&mut bob, &first).map(|o| o.1), Ok(b"before restart".to_vec()), "old");
        ensure_eq!(open(&mut bob, &second).map(|o| o.1), Ok(b"after restart".to_vec()), "new");
        // Going back to a stream used in this epoch would reuse its nonces.
        ensure!(alice.set_send_context(Some(0)).is_err(), "used context 0 restarted");
        ensure!(alice.set_send_context(Some(MAX_SEND_CONTEXTS)).is_err(), "context 16");
        // Same stream again is a no-op: the counter goes on.
        alice.set_send_context(Some(1)).context("same context")?;
        let third = seal(&mut alice, b"third")?;
        ensure_eq!(open(&mut bob, &third).map(|o| o.1), Ok(b"third".to_vec()), "counter went on");
        // Receive-only until told otherwise; frames keep opening.
        alice.set_send_context(None).context("receive only")?;
        let mut out = [0u8; 64];
        ensure_eq!(alice.encrypt(&[], b"x", &mut out), Err(Error::SendingDisabled), "muted");
        let from_bob = seal(&mut bob, b"still heard")?;
        ensure_eq!(open(&mut alice, &from_bob).map(|o| o.1), Ok(b"still heard".to_vec()), "rx");
        // Context 0 was used in this epoch; the next epoch starts every
        // stream afresh.
        ensure!(alice.set_send_context(Some(0)).is_err(), "used context 0 restarted");
        enter(&mut alice, Instant::ZERO, 2, 0)?;
        enter(&mut bob, Instant::ZERO, 2, 1)?;
        ensure_eq!(alice.encrypt(&[], b"x", &mut out), Err(Error::SendingDisabled), "still muted");
        alice.set_send_context(Some(0)).context("context 0 in epoch 2")?;
        let fresh = seal(&mut alice, b"epoch 2")?;
        ensure_eq!(open(&mut bob, &fresh).map(|o| o.1), Ok(b"epoch 2".to_vec()), "epoch 2");
        Ok(())
    }
}
