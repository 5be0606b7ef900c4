//! Whose leaf each connection may name in a frame's KID: the delivery
//! service's check that a member sends media under its own SFrame key ID.
//!
//! SFrame keys are per group, not per sender: every member derives every
//! sender's key from the epoch's base key, so a receiver that opens a frame
//! learns only that *a* member sealed it, and takes the sender from the
//! KID (RFC 9605 §5.2). A member could seal a frame under another member's
//! KID and have it attributed to them. The delivery service is the one
//! party that knows which connection sits in which leaf, so it checks every
//! frame's KID against the leaf of the connection the frame came on, and
//! refuses the rest before forwarding anything.
//!
//! A KID names its epoch with its low `E` bits ([`EPOCH_BITS`], the same in
//! every member) and its sender with that epoch's `S` bits, where `S` fits
//! the epoch's leaf count (blank leaves included, none at the end). The
//! log knows both: [`Senders`] keeps each connection's leaf and `S` for the
//! current epoch and the [`PREVIOUS_EPOCHS`] before it, which receivers
//! still open. An honest member seals in an epoch only after it applied
//! that epoch's commit, which the log accepted first, so its frames always
//! name one of those epochs and its own leaf in it. A frame that names an
//! epoch the log has not reached is refused too: only a committer whose
//! commit is not accepted yet holds its keys.
//!
//! The check costs a header parse, a search among three epochs and a binary
//! search among the seats, and allocates nothing.

use alloc::vec::Vec;

use super::SenderError;
use crate::media::Codec;
use crate::sframe::{EPOCH_BITS, FUTURE_EPOCHS, KidLayout, PREVIOUS_EPOCHS};
use crate::wire::ConnId;

/// How many epochs a [`Senders`] keeps: the current one and the
/// [`PREVIOUS_EPOCHS`] receivers still open.
pub const SENDER_EPOCHS: usize = PREVIOUS_EPOCHS + 1;

// The epochs kept and the ones a receiver holds frames for
// ([`FUTURE_EPOCHS`]) must have distinct low bits, or a frame sealed in an
// epoch not reached yet could be checked against an old one.
const _: () = assert!(SENDER_EPOCHS as u64 + FUTURE_EPOCHS <= 1 << EPOCH_BITS);

/// Each connection's leaf and the KID layout, for the last
/// [`SENDER_EPOCHS`] epochs of one group. [`Room`](super::Room) keeps one
/// from its log; a driver copies it to its media path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Senders {
    /// Oldest first, epochs increasing, at most [`SENDER_EPOCHS`].
    epochs: Vec<EpochSenders>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EpochSenders {
    epoch: u64,
    layout: KidLayout,
    /// Each seated connection and its leaf, sorted by connection.
    seats: Vec<(ConnId, u32)>,
}

impl Senders {
    /// No epoch: every frame is refused.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The group entered `epoch` with `leaves`: every leaf of its tree in
    /// order, the connection seated there or `None` for a blank one. `S`
    /// is taken from the last seated leaf, as every member takes it from
    /// its MLS roster. The oldest epoch kept makes room; an epoch that is
    /// not newer than the newest kept starts the history over (a new
    /// group).
    pub fn install(&mut self, epoch: u64, leaves: impl IntoIterator<Item = Option<ConnId>>) {
        if self.epochs.last().is_some_and(|e| e.epoch >= epoch) {
            self.epochs.clear();
        }
        let mut seats: Vec<(ConnId, u32)> = leaves
            .into_iter()
            .enumerate()
            .filter_map(|(leaf, conn)| Some((conn?, u32::try_from(leaf).ok()?)))
            .collect();
        let group_size = seats.iter().map(|&(_, leaf)| u64::from(leaf) + 1).max();
        seats.sort_unstable();
        // At most 2^32 leaves, so `S` is at most 32 and the layout fits.
        let Ok(layout) = KidLayout::for_group(EPOCH_BITS, group_size.unwrap_or(1)) else {
            self.epochs.clear();
            return;
        };
        let low = low_bits(epoch);
        self.epochs.retain(|e| low_bits(e.epoch) != low);
        if self.epochs.len() >= SENDER_EPOCHS {
            let excess = self.epochs.len() + 1 - SENDER_EPOCHS;
            self.epochs.drain(..excess);
        }
        self.epochs.push(EpochSenders {
            epoch,
            layout,
            seats,
        });
    }

    /// Forgets every epoch: the group is gone.
    pub fn clear(&mut self) {
        self.epochs.clear();
    }

    /// The epochs kept, oldest first.
    pub fn epochs(&self) -> impl Iterator<Item = u64> + '_ {
        self.epochs.iter().map(|e| e.epoch)
    }

    /// Whether a frame with `kid`, from connection `conn`, names `conn`'s
    /// own leaf in an epoch kept.
    ///
    /// # Errors
    /// [`SenderError::UnknownEpoch`] when the KID's epoch bits name no
    /// epoch kept; [`SenderError::NotSeated`] when `conn` had no leaf in
    /// that epoch; [`SenderError::WrongSender`] when the KID names another
    /// leaf.
    pub fn check(&self, conn: ConnId, kid: u64) -> Result<(), SenderError> {
        let low = low_bits(kid);
        let epoch = self
            .epochs
            .iter()
            .find(|e| low_bits(e.epoch) == low)
            .ok_or(SenderError::UnknownEpoch { kid })?;
        let leaf = epoch
            .seats
            .binary_search_by_key(&conn, |&(c, _)| c)
            .ok()
            .and_then(|i| epoch.seats.get(i))
            .map(|&(_, leaf)| leaf)
            .ok_or(SenderError::NotSeated {
                conn,
                epoch: epoch.epoch,
            })?;
        let named = epoch.layout.decode(kid).sender;
        if named != u64::from(leaf) {
            return Err(SenderError::WrongSender {
                conn,
                epoch: epoch.epoch,
                leaf,
                named,
            });
        }
        Ok(())
    }

    /// [`Senders::check`] for a protected frame of `codec` (its layout is
    /// [`Codec::kid`]'s).
    ///
    /// # Errors
    /// [`SenderError::Unreadable`] when the frame has no SFrame header
    /// where its codec puts one; otherwise as [`Senders::check`].
    pub fn check_frame(
        &self,
        conn: ConnId,
        codec: Codec,
        protected: &[u8],
    ) -> Result<(), SenderError> {
        let kid = codec.kid(protected).map_err(SenderError::Unreadable)?;
        self.check(conn, kid)
    }
}

/// The low `E` bits of an epoch or KID.
const fn low_bits(value: u64) -> u64 {
    value & ((1 << EPOCH_BITS) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ConnId = ConnId(10);
    const B: ConnId = ConnId(11);
    const C: ConnId = ConnId(12);

    /// The KID a member at `leaf` in a tree of `leaves` leaves sends with
    /// in `epoch`: the key ring's formula.
    fn kid(leaves: u64, leaf: u64, epoch: u64) -> u64 {
        KidLayout::for_group(EPOCH_BITS, leaves)
            .unwrap()
            .encode(0, leaf, epoch)
            .unwrap()
    }

    #[test]
    fn a_kid_naming_another_leaf_is_refused() {
        let mut senders = Senders::new();
        senders.install(4, [Some(A), Some(B), Some(C)]);
        assert_eq!(senders.check(A, kid(3, 0, 4)), Ok(()));
        assert_eq!(senders.check(C, kid(3, 2, 4)), Ok(()));
        assert_eq!(
            senders.check(A, kid(3, 1, 4)),
            Err(SenderError::WrongSender {
                conn: A,
                epoch: 4,
                leaf: 0,
                named: 1
            })
        );
        assert_eq!(
            senders.check(ConnId(99), kid(3, 1, 4)),
            Err(SenderError::NotSeated {
                conn: ConnId(99),
                epoch: 4
            })
        );
    }

    #[test]
    fn the_sender_is_read_with_the_s_of_the_epoch_the_kid_names() {
        let mut senders = Senders::new();
        // Epoch 1: two leaves, S = 1. Epoch 2: five, S = 3.
        senders.install(1, [Some(A), Some(B)]);
        senders.install(2, [Some(A), Some(B), None, None, Some(C)]);
        // With S = 1, A's leaf 0 and context 2 is 0b10_0_0001; read with
        // S = 3 the same bits would name leaf 4, C's.
        let a_in_1 = KidLayout::new(EPOCH_BITS, 1)
            .unwrap()
            .encode(2, 0, 1)
            .unwrap();
        assert_eq!(senders.check(A, a_in_1), Ok(()));
        let forged = KidLayout::new(EPOCH_BITS, 1)
            .unwrap()
            .encode(2, 0, 2)
            .unwrap();
        assert_eq!(
            senders.check(A, forged),
            Err(SenderError::WrongSender {
                conn: A,
                epoch: 2,
                leaf: 0,
                named: 4
            })
        );
        assert_eq!(senders.check(C, forged), Ok(()), "it is C's KID in epoch 2");
        assert_eq!(
            senders.check(C, kid(2, 1, 1)),
            Err(SenderError::NotSeated { conn: C, epoch: 1 }),
            "C was not in the group in epoch 1"
        );
    }

    #[test]
    fn the_current_and_previous_epochs_are_kept_and_no_other() {
        let mut senders = Senders::new();
        assert_eq!(
            senders.check(A, 0),
            Err(SenderError::UnknownEpoch { kid: 0 }),
            "no group yet"
        );
        for epoch in 0..20 {
            senders.install(epoch, [Some(A)]);
        }
        assert_eq!(senders.epochs().collect::<Vec<_>>(), [17, 18, 19]);
        for epoch in 17..20 {
            assert_eq!(senders.check(A, kid(1, 0, epoch)), Ok(()));
        }
        for epoch in [16, 20, 21] {
            let kid = kid(1, 0, epoch);
            assert_eq!(
                senders.check(A, kid),
                Err(SenderError::UnknownEpoch { kid }),
                "epoch {epoch}"
            );
        }
        // A new group starts over at epoch 0.
        senders.install(0, [Some(B)]);
        assert_eq!(senders.epochs().collect::<Vec<_>>(), [0]);
        assert_eq!(senders.check(B, kid(1, 0, 0)), Ok(()));
        senders.clear();
        assert_eq!(
            senders.check(B, kid(1, 0, 0)),
            Err(SenderError::UnknownEpoch { kid: 0 })
        );
    }

    #[test]
    fn a_frame_is_checked_by_the_kid_behind_its_clear_prefix() {
        let mut senders = Senders::new();
        senders.install(3, [Some(A), Some(B)]);
        // B's KID in epoch 3 (S = 1): 1 << 4 | 3 = 0x13, one byte after a
        // config byte of 0x80 (CTR 0).
        let audio = [0x80, 0x13, 0xaa, 0xbb];
        assert_eq!(senders.check_frame(B, Codec::Opus, &audio), Ok(()));
        assert!(matches!(
            senders.check_frame(A, Codec::Opus, &audio),
            Err(SenderError::WrongSender { named: 1, .. })
        ));
        let video = [0x03, 0x31, 0x02, 0x00, 0x80, 0x13, 0xaa];
        assert_eq!(senders.check_frame(B, Codec::Vp8, &video), Ok(()));
        assert!(matches!(
            senders.check_frame(B, Codec::Vp8, &audio),
            Err(SenderError::Unreadable(_))
        ));
        assert!(matches!(
            senders.check_frame(B, Codec::Opus, &[]),
            Err(SenderError::Unreadable(_))
        ));
    }

    /// Honest members' real KIDs (from their MLS sessions' key rings)
    /// against the log's view of who sits where.
    mod honest_members {
        use alloc::format;
        use alloc::vec::Vec;

        use super::super::*;
        use crate::Instant;
        use crate::committer::{Member, MemberConfig, Room, RoomConfig, SenderError, Status};
        use crate::media::Codec;
        use crate::mls::{MemberInfo, MemoryStore, SatsumaCrypto, Session, SessionConfig};
        use crate::sframe::PREVIOUS_EPOCHS;
        use crate::wire::{Capabilities, RoomName, Transport};

        struct Person {
            member: Member<Session>,
            conn: Option<ConnId>,
            /// The KID it sent with in each epoch, oldest first.
            sent: Vec<(u64, u64)>,
        }

        /// A room and its members, every message delivered at once.
        struct Call {
            room: Room,
            people: Vec<Person>,
            checks: usize,
        }

        impl Call {
            fn new() -> Self {
                Self {
                    room: Room::new(RoomConfig::default()),
                    people: Vec::new(),
                    checks: 0,
                }
            }

            fn join(&mut self, name: &str) -> usize {
                let seed = u8::try_from(self.people.len() + 1).unwrap();
                let info = MemberInfo::new(name, name).unwrap();
                let session = Session::create(
                    SatsumaCrypto::from_seed([seed; 32]),
                    info,
                    SessionConfig::default(),
                    MemoryStore::default(),
                )
                .unwrap();
                let config = MemberConfig {
                    room: RoomName::new("senders").unwrap(),
                    capabilities: Capabilities {
                        can_commit: true,
                        transport: Transport::WebRtc,
                    },
                };
                let mut member = Member::new(session, config);
                member.join(Instant::ZERO).unwrap();
                self.people.push(Person {
                    member,
                    conn: None,
                    sent: Vec::new(),
                });
                self.people.len() - 1
            }

            fn leave(&mut self, i: usize) {
                self.people[i].member.leave(Instant::ZERO);
            }

            /// Shuttles messages until nothing moves, checking every
            /// member's KIDs after every message it handles.
            fn run(&mut self) {
                loop {
                    let mut moved = false;
                    for i in 0..self.people.len() {
                        while let Some(request) = self.people[i].member.poll_transmit() {
                            moved = true;
                            let from = self.people[i].conn;
                            if let Ok(conn) = self.room.handle(Instant::ZERO, from, request) {
                                self.people[i].conn = Some(conn);
                            }
                            while let Some(transmit) = self.room.poll_transmit() {
                                let to: Vec<ConnId> = self.room.recipients(transmit.to).collect();
                                for conn in to {
                                    let Some(j) =
                                        self.people.iter().position(|p| p.conn == Some(conn))
                                    else {
                                        continue;
                                    };
                                    let _ = self.people[j]
                                        .member
                                        .handle_message(Instant::ZERO, transmit.message.clone());
                                    self.check(j);
                                }
                            }
                        }
                    }
                    if !moved {
                        return;
                    }
                }
            }

            /// A present member's KID now, and the ones it sent with in the
            /// previous epochs receivers still open, are all accepted.
            fn check(&mut self, i: usize) {
                let person = &mut self.people[i];
                let (Some(conn), Status::InGroup) = (person.conn, person.member.status()) else {
                    return;
                };
                if !self.room.state().present().any(|c| c == conn) {
                    return;
                }
                let ring = person.member.group().keyring();
                let (Some(epoch), Some(kid)) = (ring.current_epoch(), ring.sending_kid()) else {
                    return;
                };
                if person.sent.last().is_none_or(|&(e, _)| e < epoch) {
                    person.sent.push((epoch, kid));
                }
                for &(e, kid) in person.sent.iter().rev().take(PREVIOUS_EPOCHS + 1) {
                    let room_epoch = self.room.state().epoch().unwrap();
                    let expected = if e + PREVIOUS_EPOCHS as u64 >= room_epoch {
                        Ok(())
                    } else {
                        Err(SenderError::UnknownEpoch { kid })
                    };
                    assert_eq!(
                        self.room.check_sender(conn, kid),
                        expected,
                        "{conn}'s KID {kid:#x} of epoch {e}, the log at {room_epoch}"
                    );
                    self.checks += 1;
                }
            }

            fn conn(&self, i: usize) -> ConnId {
                self.people[i].conn.unwrap()
            }

            fn kid(&self, i: usize) -> u64 {
                self.people[i]
                    .member
                    .group()
                    .keyring()
                    .sending_kid()
                    .unwrap()
            }

            fn leaf(&self, i: usize) -> u32 {
                self.room.state().seat_of(self.conn(i)).unwrap().0
            }
        }

        #[test]
        fn honest_frames_are_accepted_across_epochs_that_change_every_index_width() {
            let mut call = Call::new();
            let alice = call.join("alice");
            call.run();
            let bob = call.join("bob");
            call.run();
            let carol = call.join("carol");
            let dave = call.join("dave");
            call.run();
            let erin = call.join("erin");
            call.run();
            // Five leaves: S = 3. Then the two last leave, S = 2 again, and
            // a blank leaf in the middle keeps it there.
            assert_eq!(call.leaf(erin), 4);
            call.leave(dave);
            call.leave(erin);
            call.run();
            assert_eq!(call.room.state().leaves().len(), 3);
            call.leave(bob);
            call.run();
            let frank = call.join("frank");
            call.run();
            assert_eq!(call.leaf(frank), 1, "frank takes bob's blank leaf");
            let epoch = call.room.state().epoch().unwrap();
            assert!(epoch >= 6, "{epoch}");
            assert!(call.checks > 50, "{} checks", call.checks);
            for i in [alice, carol, frank] {
                assert_eq!(call.room.check_sender(call.conn(i), call.kid(i)), Ok(()));
            }
            for i in [bob, dave, erin] {
                let conn = call.people[i].conn.unwrap();
                let kid = call.people[i].sent.last().unwrap().1;
                assert_eq!(
                    call.room.check_sender(conn, kid),
                    Err(SenderError::NotMember(conn)),
                    "gone"
                );
            }
        }

        #[test]
        fn a_frame_under_another_members_kid_is_refused_though_it_would_open() {
            let mut call = Call::new();
            let alice = call.join("alice");
            call.run();
            let bob = call.join("bob");
            let carol = call.join("carol");
            call.run();
            // Bob seals a frame as himself; alice sends it as hers.
            let mut sealed = [0u8; 64];
            let n = call.people[bob]
                .member
                .media()
                .protect(Codec::Opus, b"it was bob", &mut sealed)
                .unwrap();
            let sealed = &sealed[..n];
            let mut out = [0u8; 64];
            let (opened, _) = call.people[carol]
                .member
                .media()
                .unprotect(Codec::Opus, sealed, &mut out)
                .unwrap();
            assert_eq!(
                opened.sender,
                u64::from(call.leaf(bob)),
                "a receiver would take it for bob's, whoever sent it"
            );
            let epoch = call.room.state().epoch().unwrap();
            let refused = call
                .room
                .senders()
                .check_frame(call.conn(alice), Codec::Opus, sealed);
            assert_eq!(
                refused,
                Err(SenderError::WrongSender {
                    conn: call.conn(alice),
                    epoch,
                    leaf: call.leaf(alice),
                    named: u64::from(call.leaf(bob)),
                }),
            );
            assert!(!format!("{}", refused.unwrap_err()).is_empty());
            assert_eq!(
                call.room
                    .senders()
                    .check_frame(call.conn(bob), Codec::Opus, sealed),
                Ok(())
            );
            assert_eq!(
                call.room.check_sender(call.conn(alice), call.kid(carol)),
                Err(SenderError::WrongSender {
                    conn: call.conn(alice),
                    epoch,
                    leaf: call.leaf(alice),
                    named: u64::from(call.leaf(carol)),
                })
            );
        }

        #[test]
        fn a_new_group_after_the_last_member_left_starts_the_senders_over() {
            let mut call = Call::new();
            let alice = call.join("alice");
            call.run();
            let bob = call.join("bob");
            call.run();
            let old = call.kid(alice);
            call.leave(alice);
            call.leave(bob);
            call.run();
            assert_eq!(call.room.state().group(), None);
            assert_eq!(call.room.senders().epochs().count(), 0);
            let carol = call.join("carol");
            call.run();
            assert_eq!(call.room.state().epoch(), Some(0));
            assert_eq!(call.room.senders().epochs().collect::<Vec<_>>(), [0]);
            assert_eq!(
                call.room.check_sender(call.conn(carol), call.kid(carol)),
                Ok(())
            );
            assert_eq!(
                call.room.check_sender(call.conn(carol), old),
                Err(SenderError::UnknownEpoch { kid: old }),
                "the old group's epoch 1 is no epoch of the new one"
            );
        }
    }
}
