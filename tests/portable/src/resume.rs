//! The resume protocol as a member lives it: a lost link is taken over
//! without losing a control message in either direction, and a seat cannot
//! be taken with a wrong token, a made-up position or after its grace.

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;
use satsuma_core::Instant;
use satsuma_core::resume::{Cursor, CursorLimits, ResumeError, SeatLimits, Seats};
use satsuma_core::wire::{ConnId, Open, RoomName};

use crate::{Context, Failure, ensure, ensure_eq, portable_tests};

const CONN: ConnId = ConnId(7);
const TOKEN: [u8; 16] = [0x42; 16];
const GRACE: Duration = Duration::from_secs(15);

fn limits() -> SeatLimits {
    SeatLimits {
        grace: GRACE,
        messages: 8,
        bytes: 1024,
        total_bytes: 4096,
    }
}

fn message(n: u8) -> Vec<u8> {
    vec![n; 10]
}

fn room() -> Result<RoomName, Failure> {
    RoomName::new("resume").context("room name")
}

/// A delivery service with one seat and a member on it, after `down`
/// control messages sent down and `up` sent up, of which `lost_down` and
/// `lost_up` (the newest) never arrived.
fn pair(down: u8, lost_down: u8, up: u8, lost_up: u8) -> (Seats<Vec<u8>, ()>, Cursor<Vec<u8>>) {
    let mut seats = Seats::new(limits());
    let mut cursor = Cursor::new(CursorLimits::default());
    seats.open(CONN, TOKEN, ());
    cursor.resumable(CONN, TOKEN);
    for n in 0..down {
        seats.sent(CONN, message(n));
        if n < down - lost_down {
            cursor.received();
        }
    }
    for n in 0..up {
        cursor.sent(message(100 + n));
        if n < up - lost_up {
            seats.received(CONN);
        }
    }
    (seats, cursor)
}

fn received_position(open: Option<Open>) -> Result<u64, Failure> {
    match open {
        Some(Open::Resume { received, .. }) => Ok(received),
        other => Err(Failure(alloc::format!("not a resume: {other:?}"))),
    }
}

portable_tests! {
    TESTS:

    fn a_resume_replays_what_each_side_missed() {
        let (mut seats, mut cursor) = pair(5, 2, 4, 2);
        seats.detach(Instant::from_millis(1_000), CONN);
        ensure!(!seats.is_attached(CONN), "the seat is detached");
        let at = received_position(cursor.resume(room()?))?;
        ensure_eq!(at, 3, "the member presents what it received");
        let resumed = seats.resume(CONN, &TOKEN, at).context("resume")?;
        ensure_eq!(resumed.received, 2, "the DS handled two of four");
        let missed: Vec<Vec<u8>> = resumed.missed.into_iter().cloned().collect();
        ensure_eq!(missed, vec![message(3), message(4)], "the two lost downlink messages");
        for _ in &missed {
            cursor.received();
        }
        let again: Vec<Vec<u8>> = cursor.resumed(2).context("resumed")?.cloned().collect();
        ensure_eq!(again, vec![message(102), message(103)], "the two lost uplink messages");
        ensure!(seats.is_attached(CONN), "the seat is attached again");
        ensure_eq!(seats.poll_timeout(), None, "no grace runs");
        // Both up to date: a second resume replays nothing either way.
        for _ in &again {
            seats.received(CONN);
        }
        let at = received_position(cursor.resume(room()?))?;
        let resumed = seats.resume(CONN, &TOKEN, at).context("second resume")?;
        ensure!(resumed.missed.is_empty(), "nothing missed down");
        ensure_eq!(cursor.resumed(resumed.received).context("resumed")?.len(), 0, "nothing up");
        Ok(())
    }

    fn a_wrong_token_or_position_takes_nothing() {
        let (mut seats, _) = pair(5, 0, 0, 0);
        let bytes = seats.bytes();
        let mut wrong = TOKEN;
        wrong[15] ^= 1;
        ensure_eq!(seats.resume(CONN, &wrong, 5).err(), Some(ResumeError::BadToken), "token");
        ensure_eq!(
            seats.resume(CONN, &TOKEN, 6).err(),
            Some(ResumeError::Position { received: 6, oldest: 0, sent: 5 }),
            "a position past what was sent"
        );
        ensure_eq!(
            seats.resume(ConnId(8), &TOKEN, 0).err(),
            Some(ResumeError::UnknownSeat),
            "another seat"
        );
        ensure_eq!(seats.bytes(), bytes, "the refusals kept every message");
        let resumed = seats.resume(CONN, &TOKEN, 0).context("the honest resume")?;
        ensure_eq!(resumed.missed.len(), 5, "all five replayed");
        Ok(())
    }

    fn a_seat_opened_without_randomness_cannot_be_taken() {
        let mut seats: Seats<Vec<u8>, ()> = Seats::new(limits());
        seats.open(CONN, [0; 16], ());
        ensure_eq!(seats.resume(CONN, &[0; 16], 0).err(), Some(ResumeError::BadToken), "zero");
        Ok(())
    }

    fn a_position_that_fell_out_of_the_history_is_refused() {
        // Eight messages are kept; the member saw three of twelve.
        let (mut seats, _) = pair(12, 9, 0, 0);
        ensure_eq!(
            seats.resume(CONN, &TOKEN, 3).err(),
            Some(ResumeError::Position { received: 3, oldest: 4, sent: 12 }),
            "fell out"
        );
        ensure_eq!(seats.resume(CONN, &TOKEN, 4).context("oldest kept")?.missed.len(), 8, "");
        Ok(())
    }

    fn the_member_cannot_replay_what_it_no_longer_keeps() {
        let mut cursor: Cursor<Vec<u8>> = Cursor::new(CursorLimits { messages: 2, bytes: 1024 });
        cursor.resumable(CONN, TOKEN);
        for n in 0..5 {
            cursor.sent(message(n));
        }
        ensure_eq!(
            cursor.resumed(2).err(),
            Some(ResumeError::Position { received: 2, oldest: 3, sent: 5 }),
            "the DS handled two, the member keeps the last two"
        );
        ensure_eq!(
            cursor.resumed(6).err(),
            Some(ResumeError::Position { received: 6, oldest: 3, sent: 5 }),
            "a DS claiming more than was sent"
        );
        ensure_eq!(cursor.resumed(3).context("in range")?.len(), 2, "the last two again");
        cursor.reset();
        ensure!(cursor.resume(room()?).is_none(), "a fresh join has no seat to resume");
        ensure_eq!(cursor.position(), 0, "and counts from zero");
        Ok(())
    }

    fn a_seat_is_released_when_its_grace_runs_out() {
        let (mut seats, _) = pair(3, 0, 0, 0);
        let lost = Instant::from_millis(10_000);
        seats.detach(lost, CONN);
        let end = lost.saturating_add(GRACE);
        ensure_eq!(seats.poll_timeout(), Some(end), "the grace deadline");
        let just_before = Instant::from_millis(10_000 + 14_999);
        ensure!(seats.handle_timeout(just_before).is_empty(), "still within the grace");
        let released: Vec<ConnId> = seats.handle_timeout(end).into_iter().map(|(c, ())| c).collect();
        ensure_eq!(released, vec![CONN], "released at the deadline");
        ensure_eq!(seats.bytes(), 0, "its history went with it");
        ensure_eq!(seats.resume(CONN, &TOKEN, 3).err(), Some(ResumeError::UnknownSeat), "gone");
        Ok(())
    }

    fn the_history_is_bounded_in_bytes_per_seat_and_in_total() {
        let mut seats: Seats<Vec<u8>, ()> = Seats::new(SeatLimits {
            grace: GRACE,
            messages: 1_000,
            bytes: 300,
            total_bytes: 1_000,
        });
        for conn in 0..5 {
            seats.open(ConnId(conn), TOKEN, ());
        }
        for n in 0..100u8 {
            for conn in 0..5 {
                seats.sent(ConnId(conn), message(n));
                ensure!(seats.bytes() <= 1_000, "total {} after {n}", seats.bytes());
            }
        }
        // Every seat still replays its newest messages.
        for conn in 0..5 {
            let resumed = seats.resume(ConnId(conn), &TOKEN, 99).context("the newest")?;
            ensure_eq!(resumed.missed.len(), 1, "seat {conn}");
        }
        seats.close(ConnId(0));
        ensure!(seats.bytes() <= 1_000, "closing gives bytes back");
        Ok(())
    }

    fn a_bound_shared_with_other_rooms_trims_the_largest_history_first() {
        let mut seats: Seats<Vec<u8>, ()> = Seats::new(SeatLimits {
            grace: GRACE,
            messages: 1_000,
            bytes: 10_000,
            total_bytes: 10_000,
        });
        seats.open(ConnId(1), TOKEN, ());
        seats.open(ConnId(2), TOKEN, ());
        for n in 0..30u8 {
            seats.sent(ConnId(1), message(n));
        }
        for n in 0..10u8 {
            seats.sent(ConnId(2), message(n));
        }
        let before = seats.bytes();
        let one = message(0).len();
        ensure_eq!(before, 40 * one, "everything kept so far");
        // The server's shared budget leaves this room 25 messages' worth.
        let freed = seats.trim(25 * one);
        ensure_eq!(freed, 15 * one, "freed down to the budget");
        ensure_eq!(seats.bytes(), 25 * one, "kept");
        // The larger history gave them up: connection 2 still replays
        // everything, connection 1 only its newest.
        ensure_eq!(seats.resume(ConnId(2), &TOKEN, 0).context("all of 2")?.missed.len(), 10, "2");
        ensure!(seats.resume(ConnId(1), &TOKEN, 0).is_err(), "1 lost its oldest");
        ensure_eq!(seats.resume(ConnId(1), &TOKEN, 15).context("1's newest")?.missed.len(), 15, "1");
        ensure_eq!(seats.trim(usize::MAX), 0, "nothing to trim under a larger budget");
        Ok(())
    }
}
