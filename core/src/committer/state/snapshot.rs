//! The fold's state as a `Hello` carries it, and back.
//!
//! [`RoomState::snapshot`] is what the delivery service sends;
//! [`RoomState::try_from`] is the only way a member takes a room it did not
//! fold itself, and it takes it only if every rule in [`RoomState`]'s list
//! holds, so a member never follows a room no log leads to.

use alloc::vec::Vec;

use super::{GroupState, RoomState, Seat, SeatStatus, Waiting};
use crate::committer::SnapshotError;
use crate::wire::{
    ConnId, GroupSnapshot, List, Presence, RoomSnapshot, SeatSnapshot, WaitingSnapshot,
};

impl RoomState {
    /// The room as a [`Down::Hello`](crate::wire::Down::Hello)
    /// carries it; [`RoomState::try_from`] takes it back unchanged.
    #[must_use]
    pub fn snapshot(&self) -> RoomSnapshot {
        RoomSnapshot {
            seq: self.seq,
            group: self.group.as_ref().map(|g| GroupSnapshot {
                id: g.id.clone(),
                epoch: g.epoch,
            }),
            leaves: within_bound(
                self.leaves
                    .iter()
                    .map(|s| {
                        s.map(|s| SeatSnapshot {
                            conn: s.conn,
                            can_commit: s.can_commit,
                            transport: s.transport,
                            status: match s.status {
                                SeatStatus::Present => Presence::Present,
                                SeatStatus::Departed => Presence::Departed,
                                SeatStatus::Rejoining => Presence::Rejoining,
                            },
                        })
                    })
                    .collect(),
            ),
            lobby: within_bound(
                self.lobby
                    .iter()
                    .map(|w| WaitingSnapshot {
                        conn: w.conn,
                        key_package: w.key_package.clone(),
                        capabilities: w.capabilities,
                    })
                    .collect(),
            ),
            stalls: self.stalls,
            proposals: within_bound(self.proposals.clone()),
        }
    }
}

impl TryFrom<RoomSnapshot> for RoomState {
    type Error = SnapshotError;

    /// The fold's state, if `snapshot` is a room some log leads to: every
    /// rule in [`RoomState`]'s list holds. A member takes a `Hello`'s room
    /// only through this.
    fn try_from(snapshot: RoomSnapshot) -> Result<Self, SnapshotError> {
        let RoomSnapshot {
            seq,
            group,
            leaves,
            lobby,
            stalls,
            proposals,
        } = snapshot;
        let leaves: Vec<Option<Seat>> = leaves
            .into_inner()
            .into_iter()
            .map(|s| {
                s.map(|s| Seat {
                    conn: s.conn,
                    can_commit: s.can_commit,
                    transport: s.transport,
                    status: match s.status {
                        Presence::Present => SeatStatus::Present,
                        Presence::Departed => SeatStatus::Departed,
                        Presence::Rejoining => SeatStatus::Rejoining,
                    },
                })
            })
            .collect();
        let seats: Vec<Seat> = leaves.iter().flatten().copied().collect();
        let status_of = |conn: ConnId| seats.iter().find(|s| s.conn == conn).map(|s| s.status);

        match &group {
            None if !leaves.is_empty() => return Err(SnapshotError::LeavesWithoutGroup),
            Some(_) if !seats.iter().any(|s| s.status == SeatStatus::Present) => {
                return Err(SnapshotError::NobodyPresent);
            }
            _ => {}
        }
        if leaves.last().is_some_and(Option::is_none) {
            return Err(SnapshotError::TrailingBlank);
        }
        for (i, seat) in seats.iter().enumerate() {
            if seats[..i].iter().any(|s| s.conn == seat.conn) {
                return Err(SnapshotError::TwoLeaves(seat.conn));
            }
        }
        for (i, waiting) in lobby.iter().enumerate() {
            if lobby[..i].iter().any(|w| w.conn == waiting.conn) {
                return Err(SnapshotError::WaitsTwice(waiting.conn));
            }
            match status_of(waiting.conn) {
                None | Some(SeatStatus::Rejoining) => {}
                Some(SeatStatus::Present | SeatStatus::Departed) => {
                    return Err(SnapshotError::SeatedAndWaiting(waiting.conn));
                }
            }
        }
        for (i, conn) in proposals.iter().enumerate() {
            if status_of(*conn) != Some(SeatStatus::Present) {
                return Err(SnapshotError::NotMember(*conn));
            }
            if proposals[..i].contains(conn) {
                return Err(SnapshotError::ProposedTwice(*conn));
            }
        }
        // Every one of these is an entry of its own: a `Stalled` per stall
        // since the group was created, last committed or dissolved, a
        // `Proposed` per proposal since then, the `Joined` of each waiting
        // connection and of each seated one (a rejoining member's second
        // `Joined` is its lobby entry), the group's `Created`, and a
        // `Committed` per epoch. Counted in u128, so no sum reaches its
        // bound (and one that did would only be refused).
        let count = |n: usize| u128::try_from(n).unwrap_or(u128::MAX);
        let needed = [
            u128::from(stalls),
            count(proposals.len()),
            count(lobby.len()),
            count(seats.len()),
            group.as_ref().map_or(0, |g| u128::from(g.epoch) + 1),
        ]
        .into_iter()
        .fold(0u128, u128::saturating_add);
        if needed > u128::from(seq) {
            return Err(SnapshotError::TooFewEntries {
                seq,
                needed: u64::try_from(needed).unwrap_or(u64::MAX),
            });
        }

        Ok(Self {
            seq,
            group: group.map(|g| GroupState {
                id: g.id,
                epoch: g.epoch,
            }),
            leaves,
            lobby: lobby
                .into_inner()
                .into_iter()
                .map(|w| Waiting {
                    conn: w.conn,
                    key_package: w.key_package,
                    capabilities: w.capabilities,
                })
                .collect(),
            stalls,
            proposals: proposals.into_inner(),
        })
    }
}

/// `items` as a wire list of at most `N`.
///
/// The fold keeps each of its lists within the bound the snapshot gives
/// it: `apply` refuses a `Joined` beyond `limits::LOBBY` waiting and a
/// commit beyond `limits::MEMBERS` seats (and adds take blank leaves before
/// new ones), proposals come one per present member, and a state made from
/// a snapshot starts within that snapshot's bounds. So this never panics,
/// whatever the log held.
#[allow(clippy::expect_used)] // An internal invariant, above.
fn within_bound<T, const N: usize>(items: Vec<T>) -> List<T, N> {
    List::new(items).expect("the fold keeps its lists within their wire bounds")
}

#[cfg(test)]
mod tests {
    use super::super::tests::{DESKTOP, INTERCOM, committed, created, fold, joined};
    use super::*;
    use crate::committer::LogError;
    use crate::wire::{Blob, CommitMessage, Entry};

    /// The room `wire`'s tests call busy: two present leaves (a desktop
    /// and an intercom), one waiting, a proposal and a stall, in seven
    /// entries, the fewest that make it.
    fn busy_entries() -> Vec<Entry> {
        alloc::vec![
            Entry::Joined {
                conn: ConnId(0),
                key_package: blob(&[0xaa]),
                capabilities: DESKTOP,
            },
            Entry::Joined {
                conn: ConnId(1),
                key_package: blob(&[0xbb]),
                capabilities: INTERCOM,
            },
            Entry::Created {
                conn: ConnId(0),
                group_id: blob(b"g"),
            },
            Entry::Committed {
                conn: ConnId(0),
                commit: CommitMessage {
                    epoch: 0,
                    adds: List::new(alloc::vec![ConnId(1)]).unwrap(),
                    removes: List::default(),
                    commit: blob(&[1]),
                    welcome: Some(blob(&[2])),
                },
            },
            Entry::Joined {
                conn: ConnId(2),
                key_package: blob(&[0xcc]),
                capabilities: DESKTOP,
            },
            Entry::Proposed {
                conn: ConnId(1),
                epoch: 1,
                proposal: blob(&[3]),
            },
            Entry::Stalled,
        ]
    }

    fn busy() -> RoomSnapshot {
        fold(&busy_entries()).snapshot()
    }

    fn blob<const N: usize>(bytes: &[u8]) -> Blob<N> {
        Blob::copy_from(bytes).unwrap()
    }

    /// `list` changed by `f`: a wire list has no mutable access.
    fn edit<T, const N: usize>(list: &mut List<T, N>, f: impl FnOnce(&mut Vec<T>)) {
        let mut items = core::mem::take(list).into_inner();
        f(&mut items);
        *list = List::new(items).unwrap();
    }

    fn set_status(snapshot: &mut RoomSnapshot, leaf: usize, status: Presence) {
        edit(&mut snapshot.leaves, |leaves| {
            leaves[leaf].as_mut().unwrap().status = status;
        });
    }

    fn wait(snapshot: &mut RoomSnapshot, conn: u64) {
        edit(&mut snapshot.lobby, |lobby| {
            lobby.push(WaitingSnapshot {
                conn: ConnId(conn),
                key_package: Blob::default(),
                capabilities: DESKTOP,
            });
        });
    }

    #[test]
    fn a_room_state_in_hello_round_trips() {
        use crate::wire::{Down, Message, ToClient};

        let mut state = RoomState::default();
        state
            .apply(&Entry::Joined {
                conn: ConnId(0),
                key_package: Blob::copy_from(&[0xaa]).unwrap(),
                capabilities: DESKTOP,
            })
            .unwrap();
        state
            .apply(&Entry::Created {
                conn: ConnId(0),
                group_id: Blob::copy_from(b"g").unwrap(),
            })
            .unwrap();
        let hello = ToClient::Control(Down::Hello {
            conn: ConnId(1),
            room: state.snapshot(),
        });
        let bytes = hello.encode().unwrap();
        assert_eq!(
            bytes,
            [
                2, 0, 0, 1, // version 2, Control, Hello, conn 1
                2, // seq
                1, 1, b'g', 0, // group: Some, id "g", epoch 0
                1, 1, 0, 1, 0, 0, // leaves: one, Some(conn 0, can commit, WebRtc, Present)
                0, // lobby
                0, // stalls
                0, // proposals
            ]
        );
        assert_eq!(ToClient::decode(&bytes), Ok(hello));

        // A busier room: two leaves, one waiting, a proposal and a stall.
        let state = fold(&busy_entries());
        assert_eq!(state.seq(), 7);
        assert_eq!(state.lobby().len(), 1);
        assert_eq!(state.proposals(), [ConnId(1)]);
        assert_eq!(state.stalls(), 1);
        let hello = ToClient::Control(Down::Hello {
            conn: ConnId(2),
            room: state.snapshot(),
        });
        match ToClient::decode(&hello.encode().unwrap()) {
            Ok(ToClient::Control(Down::Hello { conn, room })) => {
                assert_eq!(conn, ConnId(2));
                let room = RoomState::try_from(room).unwrap();
                assert_eq!(room, state);
                assert_eq!(room.designated(), state.designated());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn busy_rooms_in_hello_have_these_exact_bytes() {
        use crate::wire::{Down, Message, ToClient};

        // Two present leaves, one waiting, a proposal and a stall.
        let hello = ToClient::Control(Down::Hello {
            conn: ConnId(2),
            room: busy(),
        });
        assert_eq!(
            hello.encode().unwrap(),
            [
                2, 0, 0, 2, // version 2, Control, Hello, conn 2
                7, // seq
                1, 1, b'g', 1, // group: Some, id "g", epoch 1
                2, // leaves: two
                1, 0, 1, 0, 0, // Some(conn 0, can commit, WebRtc, Present)
                1, 1, 0, 1, 0, // Some(conn 1, cannot commit, Wire, Present)
                1, 2, 1, 0xcc, 1, 0, // lobby: conn 2, key package cc, desktop
                1, // stalls
                1, 1, // proposals: conn 1
            ]
        );

        // A blank leaf, a rejoining seat (also waiting) and a departed one.
        let mut state = RoomState::default();
        let joined = |conn, key_package| Entry::Joined {
            conn: ConnId(conn),
            key_package: blob(&[key_package]),
            capabilities: DESKTOP,
        };
        let committed = |epoch, adds: Vec<ConnId>, removes: Vec<u32>| Entry::Committed {
            conn: ConnId(0),
            commit: CommitMessage {
                epoch,
                welcome: (!adds.is_empty()).then(|| blob(&[2])),
                adds: List::new(adds).unwrap(),
                removes: List::new(removes).unwrap(),
                commit: blob(&[1]),
            },
        };
        let entries = [
            joined(0, 0xaa),
            Entry::Created {
                conn: ConnId(0),
                group_id: blob(b"g"),
            },
            joined(1, 0xbb),
            joined(2, 0xcc),
            committed(0, alloc::vec![ConnId(1), ConnId(2)], alloc::vec![]),
            joined(3, 0xdd),
            committed(1, alloc::vec![ConnId(3)], alloc::vec![]),
            Entry::Left { conn: ConnId(1) },
            committed(2, alloc::vec![], alloc::vec![1]),
            Entry::Left { conn: ConnId(3) },
            joined(2, 0xee),
        ];
        for entry in &entries {
            state.apply(entry).unwrap();
        }
        let hello = ToClient::Control(Down::Hello {
            conn: ConnId(4),
            room: state.snapshot(),
        });
        assert_eq!(
            hello.encode().unwrap(),
            [
                2, 0, 0, 4,  // version 2, Control, Hello, conn 4
                11, // seq
                1, 1, b'g', 3, // group: Some, id "g", epoch 3
                4, // leaves: four
                1, 0, 1, 0, 0, // Some(conn 0, can commit, WebRtc, Present)
                0, // None
                1, 2, 1, 0, 2, // Some(conn 2, can commit, WebRtc, Rejoining)
                1, 3, 1, 0, 1, // Some(conn 3, can commit, WebRtc, Departed)
                1, 2, 1, 0xee, 1, 0, // lobby: conn 2 again, key package ee, desktop
                0, // stalls
                0, // proposals
            ]
        );
    }

    #[test]
    fn every_folded_room_comes_back_from_its_snapshot() {
        let logs = [
            busy_entries(),
            alloc::vec![
                joined(0, DESKTOP),
                joined(1, INTERCOM),
                Entry::Stalled,
                created(0),
                joined(2, DESKTOP),
                committed(0, 0, &[1, 2], &[]),
                joined(1, INTERCOM),
                joined(3, DESKTOP),
                Entry::Refused {
                    by: ConnId(0),
                    conn: ConnId(3),
                },
                Entry::Left { conn: ConnId(0) },
                committed(2, 1, &[1], &[0, 1]),
                Entry::Left { conn: ConnId(2) },
                joined(4, DESKTOP),
                committed(1, 2, &[4], &[2]),
                Entry::Left { conn: ConnId(1) },
                Entry::Left { conn: ConnId(4) },
                joined(5, DESKTOP),
            ],
        ];
        for log in logs {
            let mut state = RoomState::default();
            for entry in &log {
                assert_eq!(RoomState::try_from(state.snapshot()), Ok(state.clone()));
                state.apply(entry).unwrap();
            }
            assert_eq!(RoomState::try_from(state.snapshot()), Ok(state));
        }
    }

    #[test]
    fn leaves_without_a_group_are_refused() {
        let mut snapshot = busy();
        snapshot.group = None;
        snapshot.proposals = List::default();
        assert_eq!(
            RoomState::try_from(snapshot),
            Err(SnapshotError::LeavesWithoutGroup)
        );
    }

    #[test]
    fn a_group_with_nobody_present_is_refused() {
        let mut snapshot = busy();
        snapshot.proposals = List::default();
        set_status(&mut snapshot, 0, Presence::Departed);
        assert!(RoomState::try_from(snapshot.clone()).is_ok(), "one is left");
        set_status(&mut snapshot, 1, Presence::Rejoining);
        assert_eq!(
            RoomState::try_from(snapshot),
            Err(SnapshotError::NobodyPresent)
        );
    }

    #[test]
    fn a_blank_last_leaf_is_refused() {
        let mut snapshot = busy();
        edit(&mut snapshot.leaves, |leaves| leaves.push(None));
        assert_eq!(
            RoomState::try_from(snapshot),
            Err(SnapshotError::TrailingBlank)
        );
        // Blank in the middle is how a removal leaves it.
        let mut snapshot = busy();
        edit(&mut snapshot.leaves, |leaves| leaves.insert(1, None));
        assert!(RoomState::try_from(snapshot).is_ok());
    }

    #[test]
    fn a_connection_in_two_leaves_is_refused() {
        let mut snapshot = busy();
        snapshot.seq += 1;
        edit(&mut snapshot.leaves, |leaves| {
            let mut again = leaves[0];
            if let Some(seat) = again.as_mut() {
                seat.status = Presence::Departed;
            }
            leaves.push(again);
        });
        assert_eq!(
            RoomState::try_from(snapshot),
            Err(SnapshotError::TwoLeaves(ConnId(0)))
        );
    }

    #[test]
    fn a_connection_waiting_twice_is_refused() {
        let mut snapshot = busy();
        snapshot.seq += 1;
        wait(&mut snapshot, 2);
        assert_eq!(
            RoomState::try_from(snapshot),
            Err(SnapshotError::WaitsTwice(ConnId(2)))
        );
    }

    #[test]
    fn only_a_rejoining_member_waits_in_the_lobby() {
        let mut snapshot = busy();
        snapshot.seq += 1;
        wait(&mut snapshot, 0);
        assert_eq!(
            RoomState::try_from(snapshot.clone()),
            Err(SnapshotError::SeatedAndWaiting(ConnId(0)))
        );
        set_status(&mut snapshot, 0, Presence::Departed);
        assert_eq!(
            RoomState::try_from(snapshot.clone()),
            Err(SnapshotError::SeatedAndWaiting(ConnId(0)))
        );
        set_status(&mut snapshot, 0, Presence::Rejoining);
        assert!(RoomState::try_from(snapshot).is_ok());
    }

    #[test]
    fn a_proposal_from_a_non_member_is_refused() {
        for (conn, departed) in [(2, false), (9, false), (1, true)] {
            let mut snapshot = busy();
            snapshot.proposals = List::new(alloc::vec![ConnId(conn)]).unwrap();
            if departed {
                set_status(&mut snapshot, 1, Presence::Departed);
            }
            assert_eq!(
                RoomState::try_from(snapshot),
                Err(SnapshotError::NotMember(ConnId(conn))),
                "{conn}"
            );
        }
        let mut snapshot = busy();
        snapshot.group = None;
        snapshot.leaves = List::default();
        assert_eq!(
            RoomState::try_from(snapshot),
            Err(SnapshotError::NotMember(ConnId(1))),
            "no group, no members"
        );
    }

    #[test]
    fn two_proposals_from_one_member_are_refused() {
        let mut snapshot = busy();
        snapshot.seq += 1;
        edit(&mut snapshot.proposals, |p| p.push(ConnId(1)));
        assert_eq!(
            RoomState::try_from(snapshot),
            Err(SnapshotError::ProposedTwice(ConnId(1)))
        );
    }

    #[test]
    fn counts_no_log_could_produce_are_refused() {
        // Seven entries make the busy room, and no fewer.
        let mut snapshot = busy();
        snapshot.seq = 6;
        assert_eq!(
            RoomState::try_from(snapshot),
            Err(SnapshotError::TooFewEntries { seq: 6, needed: 7 })
        );
        let mut snapshot = busy();
        snapshot.stalls = 2;
        assert_eq!(
            RoomState::try_from(snapshot.clone()),
            Err(SnapshotError::TooFewEntries { seq: 7, needed: 8 })
        );
        snapshot.seq = 8;
        assert!(RoomState::try_from(snapshot).is_ok());
        // Nobody stalls in an empty room that has seen no entry.
        let stalled = RoomSnapshot {
            stalls: 1,
            ..RoomSnapshot::default()
        };
        assert_eq!(
            RoomState::try_from(stalled),
            Err(SnapshotError::TooFewEntries { seq: 0, needed: 1 })
        );
        // An epoch takes a commit each: the count saturates, never wraps.
        let mut snapshot = busy();
        if let Some(group) = snapshot.group.as_mut() {
            group.epoch = u64::MAX;
        }
        assert_eq!(
            RoomState::try_from(snapshot.clone()),
            Err(SnapshotError::TooFewEntries {
                seq: 7,
                needed: u64::MAX
            })
        );
        snapshot.seq = u64::MAX;
        assert!(RoomState::try_from(snapshot.clone()).is_err());
        // At the very end of the log: taken, and the next entry is refused.
        if let Some(group) = snapshot.group.as_mut() {
            group.epoch = u64::MAX - 6;
        }
        let mut state = RoomState::try_from(snapshot).unwrap();
        assert_eq!(state.apply(&Entry::Stalled), Err(LogError::Exhausted));
    }

    #[test]
    fn the_empty_room_is_the_default() {
        assert_eq!(
            RoomState::try_from(RoomSnapshot::default()),
            Ok(RoomState::default())
        );
        assert_eq!(RoomState::default().snapshot(), RoomSnapshot::default());
    }
}
