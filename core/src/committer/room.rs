//! The delivery service's side: one room's ordered log.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use super::state::RoomState;
use super::{DsError, SenderError, Senders};
use crate::Instant;
use crate::wire::{Blob, Capabilities, CommitMessage, ConnId, Down, Entry, Join, Up, limits};

/// How a [`Room`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomConfig {
    /// How long the designated committer may leave pending work undone
    /// before the log moves the role to the next member.
    pub commit_deadline: Duration,
    /// Connections in the room, lobby included (at most
    /// [`limits::MEMBERS`]).
    pub max_connections: usize,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            commit_deadline: Duration::from_secs(5),
            max_connections: limits::MEMBERS,
        }
    }
}

/// Deadlines in a row every member of the committer pool may miss before
/// the designated one is treated as gone.
pub const STALL_ROUNDS: u32 = 3;

/// One room of the delivery service: it puts every handshake message in one
/// order, accepts the first valid commit for an epoch, and relays Welcomes.
/// It holds no key and cannot read a commit; what it checks, it checks on
/// the log ([`RoomState::check_commit`]): the sender is the designated
/// committer, the epoch is current, the adds wait in the lobby and the
/// removed leaves are gone.
///
/// It also knows, from the log, which leaf each connection sits in and so
/// which SFrame KIDs its media may carry ([`Room::check_sender`]): the one
/// check a forwarding server can make that a frame's sender is who it
/// says.
///
/// Sans-IO, like [`Member`](super::Member): after every `handle*`, drain
/// [`Room::poll_transmit`] and [`Room::poll_event`]; call
/// [`Room::handle_timeout`] at [`Room::poll_timeout`]. A [`Transmit`] names its recipients; a driver
/// sends a broadcast to the connections it has when it drains it, which is
/// why it must drain after every input: a connection that joins later must
/// not get an entry its `Hello` already holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Room {
    config: RoomConfig,
    state: RoomState,
    /// Each connection's leaf in the current and previous epochs.
    senders: Senders,
    connections: Vec<Connection>,
    next_conn: u64,
    work_since: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<RoomEvent>,
}

/// What a [`Room`] tells its driver: whose media the SFU forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RoomEvent {
    /// The connection became a present member of the group: forward its
    /// media to the others, and theirs to it.
    MemberAdded(ConnId),
    /// The connection is no longer a present member (it left, its link
    /// was lost for good, or it asked to be added again).
    MemberRemoved(ConnId),
}

/// What a [`Member`](super::Member) sends the delivery service and a
/// [`Room`] takes: the committer's part of
/// [`ToServer`](crate::wire::ToServer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Request {
    /// A new connection's first message.
    Join(Join),
    /// A control message on a connection that joined.
    Control(Up),
}

impl From<Request> for crate::wire::ToServer {
    fn from(request: Request) -> Self {
        match request {
            Request::Join(join) => Self::Open(crate::wire::Open::Join(join)),
            Request::Control(up) => Self::Control(up),
        }
    }
}

/// A message from the delivery service and who it is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transmit {
    /// Its recipients.
    pub to: Recipients,
    /// The message, built once whatever the number of recipients.
    pub message: Down,
}

/// Who a [`Transmit`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recipients {
    /// One connection.
    One(ConnId),
    /// Every connection of the room.
    All,
}

impl Recipients {
    /// Whether `conn` is one of them.
    #[must_use]
    pub fn contains(self, conn: ConnId) -> bool {
        match self {
            Self::One(one) => one == conn,
            Self::All => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Connection {
    conn: ConnId,
    capabilities: Capabilities,
}

impl Room {
    /// An empty room.
    #[must_use]
    pub fn new(config: RoomConfig) -> Self {
        Self {
            config,
            state: RoomState::default(),
            senders: Senders::new(),
            connections: Vec::new(),
            next_conn: 0,
            work_since: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// A request: `from` is `None` for a new connection's
    /// [`Request::Join`] and the sender's [`ConnId`] otherwise. Returns the
    /// connection it came from, allocated for a join.
    ///
    /// # Errors
    /// As [`Room::handle_message`]; [`DsError::RoomFull`] for a join the
    /// room has no place for; [`DsError::Unexpected`] for a join on a known
    /// connection or a control message on none.
    pub fn handle(
        &mut self,
        now: Instant,
        from: Option<ConnId>,
        request: Request,
    ) -> Result<ConnId, DsError> {
        match (from, request) {
            (None, Request::Join(join)) => {
                self.handle_join(now, join.key_package, join.capabilities)
            }
            (Some(conn), Request::Control(up)) => self.handle_message(now, conn, up).map(|()| conn),
            _ => Err(DsError::Unexpected),
        }
    }

    /// A new connection's `Join`: it gets a [`ConnId`], a `Hello` with the
    /// room so far, and then its own `Joined` entry like everyone else.
    fn handle_join(
        &mut self,
        now: Instant,
        key_package: Blob<{ limits::KEY_PACKAGE }>,
        capabilities: Capabilities,
    ) -> Result<ConnId, DsError> {
        if self.connections.len() >= self.config.max_connections.min(limits::MEMBERS)
            || self.state.lobby().len() >= limits::LOBBY
        {
            return Err(DsError::RoomFull);
        }
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.connections.push(Connection { conn, capabilities });
        self.transmits.push_back(Transmit {
            to: Recipients::One(conn),
            message: Down::Hello {
                conn,
                room: self.state.snapshot(),
            },
        });
        self.log(
            now,
            Entry::Joined {
                conn,
                key_package,
                capabilities,
            },
        )?;
        Ok(conn)
    }

    /// A message from connection `conn`.
    ///
    /// # Errors
    /// A [`DsError`] for a message the room refuses; the room is unchanged
    /// and the sender may have been told (`Rejected`).
    pub fn handle_message(
        &mut self,
        now: Instant,
        conn: ConnId,
        message: Up,
    ) -> Result<(), DsError> {
        let Some(connection) = self.connection(conn) else {
            return Err(DsError::UnknownConnection(conn));
        };
        match message {
            Up::KeyPackage { key_package } => {
                if self.state.lobby().len() >= limits::LOBBY && !self.state.in_lobby(conn) {
                    return Err(DsError::RoomFull);
                }
                self.log(
                    now,
                    Entry::Joined {
                        conn,
                        key_package,
                        capabilities: connection.capabilities,
                    },
                )
            }
            Up::Create { group_id } => {
                let entry = Entry::Created { conn, group_id };
                if self.state.clone().apply(&entry).is_err() {
                    self.transmits.push_back(Transmit {
                        to: Recipients::One(conn),
                        message: Down::Rejected { epoch: None },
                    });
                    return Err(DsError::Refused);
                }
                self.log(now, entry)
            }
            Up::Commit(commit) => {
                if let Err(e) = self.state.check_commit(conn, &commit) {
                    self.transmits.push_back(Transmit {
                        to: Recipients::One(conn),
                        message: Down::Rejected {
                            epoch: Some(commit.epoch),
                        },
                    });
                    return Err(DsError::Log(e));
                }
                // The Welcome goes to the connections it adds, and only to
                // them: the entry every member receives (and every seat's
                // resume history keeps) carries an empty one in its place,
                // which still says the commit has one. Every message the
                // commit causes must reach its recipients: the Welcome is
                // bounded below the limit, the entry is checked.
                let epoch = commit.epoch;
                let CommitMessage {
                    epoch: from,
                    adds,
                    removes,
                    commit,
                    welcome,
                } = commit;
                let entry = Entry::Committed {
                    conn,
                    commit: CommitMessage {
                        epoch: from,
                        adds,
                        removes,
                        commit,
                        welcome: welcome.as_ref().map(|_| Blob::default()),
                    },
                };
                if let Err(e) = self.fits(&entry) {
                    self.transmits.push_back(Transmit {
                        to: Recipients::One(conn),
                        message: Down::Rejected { epoch: Some(epoch) },
                    });
                    return Err(e);
                }
                if let Entry::Committed { commit, .. } = &entry
                    && let Some(welcome) = welcome
                {
                    for add in commit.adds.iter() {
                        self.transmits.push_back(Transmit {
                            to: Recipients::One(*add),
                            message: Down::Welcome {
                                welcome: welcome.clone(),
                            },
                        });
                    }
                }
                self.log(now, entry)
            }
            Up::Proposal { epoch, proposal } => self.log(
                now,
                Entry::Proposed {
                    conn,
                    epoch,
                    proposal,
                },
            ),
            Up::Refuse { conn: refused } => {
                self.log(
                    now,
                    Entry::Refused {
                        by: conn,
                        conn: refused,
                    },
                )?;
                self.transmits.push_back(Transmit {
                    to: Recipients::One(refused),
                    message: Down::KeyPackageRefused,
                });
                Ok(())
            }
            Up::Leave => {
                self.handle_disconnect(now, conn);
                Ok(())
            }
        }
    }

    /// Connection `conn` is gone: it left, or the transport lost it for
    /// longer than the grace period.
    pub fn handle_disconnect(&mut self, now: Instant, conn: ConnId) {
        if self.connection(conn).is_none() {
            return;
        }
        self.connections.retain(|c| c.conn != conn);
        // `Left` is valid for any connection; only a bug could refuse it.
        if self.log(now, Entry::Left { conn }).is_ok()
            && let Some(left) = self.transmits.back().map(|t| t.message.clone())
        {
            // No longer among `All`, yet told: a connection the transport
            // lost for too long may still be listening.
            self.transmits.push_back(Transmit {
                to: Recipients::One(conn),
                message: left,
            });
        }
    }

    /// Time passes: work left undone past the deadline moves the committer
    /// role on. Once every member of the pool has had the role
    /// [`STALL_ROUNDS`] times in a row and none acted, the designated one
    /// is treated as gone (`Left`, and it is told): a member that stopped
    /// acting, alone or with others as silent, would otherwise keep
    /// joiners out for good.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_none_or(|deadline| now < deadline) {
            return;
        }
        let pool = u32::try_from(self.state.pool_len()).unwrap_or(u32::MAX);
        let rounds_done =
            self.state.stalls().saturating_add(1) >= STALL_ROUNDS.saturating_mul(pool);
        if rounds_done
            && let Some(silent) = self.state.designated()
            && self.connection(silent).is_some()
        {
            self.handle_disconnect(now, silent);
            // Whoever is designated now gets a whole deadline.
            self.work_since = self.state.has_work().then_some(now);
            return;
        }
        let _ = self.log(now, Entry::Stalled);
    }

    /// The next message and who it is for.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next change the driver acts on.
    pub fn poll_event(&mut self) -> Option<RoomEvent> {
        self.events.pop_front()
    }

    /// When the designated committer's deadline runs out.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.work_since
            .map(|since| since.saturating_add(self.config.commit_deadline))
    }

    /// The room as its log says.
    #[must_use]
    pub fn state(&self) -> &RoomState {
        &self.state
    }

    /// Which leaf each connection sat in, for the current epoch and the
    /// previous ones receivers still open: what a driver copies to its
    /// media path to check frames without the room ([`Senders::check`]).
    /// It changes only when an entry starts an epoch or ends the group.
    #[must_use]
    pub fn senders(&self) -> &Senders {
        &self.senders
    }

    /// Whether a media frame with `kid` may come from `conn`: `conn` is a
    /// present member and the KID names its own leaf, in the current epoch
    /// or one of the previous ones receivers still open.
    ///
    /// # Errors
    /// [`SenderError::NotMember`], then as [`Senders::check`].
    pub fn check_sender(&self, conn: ConnId, kid: u64) -> Result<(), SenderError> {
        if !self.state.present().any(|c| c == conn) {
            return Err(SenderError::NotMember(conn));
        }
        self.senders.check(conn, kid)
    }

    /// Whether nobody is connected any more.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// The connections, in the order they joined.
    pub fn connections(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.connections.iter().map(|c| c.conn)
    }

    /// The connections `to` names, when the transmit is drained right after
    /// the input that made it: [`Recipients::All`] is the connections now.
    pub fn recipients(&self, to: Recipients) -> impl Iterator<Item = ConnId> + '_ {
        let one = match to {
            Recipients::One(conn) => Some(conn),
            Recipients::All => None,
        };
        let all = one.is_none().then(|| self.connections());
        one.into_iter().chain(all.into_iter().flatten())
    }

    /// The present members' connections.
    fn present(&self) -> Vec<ConnId> {
        self.state.present().collect()
    }

    fn connection(&self, conn: ConnId) -> Option<Connection> {
        self.connections.iter().find(|c| c.conn == conn).copied()
    }

    /// Whether `entry`, as the next log message, fits the wire limit.
    fn fits(&self, entry: &Entry) -> Result<(), DsError> {
        let len = entry_message_len(self.state.seq().saturating_add(1), entry)
            .map_err(|_| DsError::TooLarge { len: usize::MAX })?;
        if len > limits::MESSAGE {
            return Err(DsError::TooLarge { len });
        }
        Ok(())
    }

    /// Appends `entry` to the log and sends it to every connection.
    fn log(&mut self, now: Instant, entry: Entry) -> Result<(), DsError> {
        self.fits(&entry)?;
        let had_work = self.state.has_work();
        let before = self.present();
        let applied = self.state.apply(&entry)?;
        if applied.dissolved {
            self.senders.clear();
        }
        if matches!(entry, Entry::Created { .. } | Entry::Committed { .. })
            && let Some(epoch) = self.state.epoch()
        {
            let leaves = self.state.leaves().iter().map(|s| s.map(|s| s.conn));
            self.senders.install(epoch, leaves);
        }
        let after = self.present();
        let removed = before.iter().filter(|c| !after.contains(c));
        self.events
            .extend(removed.map(|c| RoomEvent::MemberRemoved(*c)));
        let added = after.iter().filter(|c| !before.contains(c));
        self.events
            .extend(added.map(|c| RoomEvent::MemberAdded(*c)));
        let seq = self.state.seq();
        let progress = matches!(
            entry,
            Entry::Committed { .. } | Entry::Created { .. } | Entry::Stalled
        );
        self.work_since = match (self.state.has_work(), had_work && !progress) {
            (false, _) => None,
            (true, true) => self.work_since.or(Some(now)),
            (true, false) => Some(now),
        };
        self.transmits.push_back(Transmit {
            to: Recipients::All,
            message: Down::Entry { seq, entry },
        });
        Ok(())
    }
}

/// The encoded length of `ToClient::Control(Down::Entry { seq, entry })`,
/// without building it (which would copy the entry).
fn entry_message_len(seq: u64, entry: &Entry) -> Result<usize, crate::wire::WireError> {
    // The version byte, the two variant tags (below 128: one byte each),
    // the sequence number as a varint, then the entry.
    let entry_len = postcard::experimental::serialized_size(entry)
        .map_err(|_| crate::wire::WireError::Malformed)?;
    let varint = (u64::BITS - seq.leading_zeros()).div_ceil(7).max(1) as usize;
    Ok(3 + varint + entry_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Blob, CommitMessage, List, Transport};

    const DESKTOP: Capabilities = Capabilities {
        can_commit: true,
        transport: Transport::WebRtc,
    };

    fn join(room: &mut Room) -> ConnId {
        let join = Join {
            room: crate::wire::RoomName::new("r").unwrap(),
            key_package: Blob::copy_from(b"kp").unwrap(),
            capabilities: DESKTOP,
        };
        room.handle(Instant::ZERO, None, Request::Join(join))
            .unwrap()
    }

    fn events(room: &mut Room) -> Vec<RoomEvent> {
        while room.poll_transmit().is_some() {}
        core::iter::from_fn(|| room.poll_event()).collect()
    }

    #[test]
    fn the_driver_is_told_who_becomes_and_stops_being_a_member() {
        let mut room = Room::new(RoomConfig::default());
        let alice = join(&mut room);
        assert_eq!(events(&mut room), [], "in the lobby: no media yet");
        let create = Up::Create {
            group_id: Blob::copy_from(b"g").unwrap(),
        };
        room.handle_message(Instant::ZERO, alice, create).unwrap();
        assert_eq!(events(&mut room), [RoomEvent::MemberAdded(alice)]);

        let bob = join(&mut room);
        assert_eq!(events(&mut room), []);
        let add = CommitMessage {
            epoch: 0,
            adds: List::new(alloc::vec![bob]).unwrap(),
            removes: List::default(),
            commit: Blob::copy_from(b"c").unwrap(),
            welcome: Some(Blob::copy_from(b"w").unwrap()),
        };
        room.handle_message(Instant::ZERO, alice, Up::Commit(add))
            .unwrap();
        assert_eq!(events(&mut room), [RoomEvent::MemberAdded(bob)]);

        // Alice's link is gone for good: her media stops at once, before
        // any commit removes her leaf.
        room.handle_disconnect(Instant::ZERO, alice);
        assert_eq!(events(&mut room), [RoomEvent::MemberRemoved(alice)]);
    }

    #[test]
    fn the_entry_length_is_what_encoding_gives() {
        use crate::wire::{Message as _, ToClient};
        let entry = Entry::Created {
            conn: ConnId(300),
            group_id: Blob::copy_from(b"group").unwrap(),
        };
        for seq in [0, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let message = ToClient::Control(Down::Entry {
                seq,
                entry: entry.clone(),
            });
            assert_eq!(
                entry_message_len(seq, &entry).unwrap(),
                message.encode().unwrap().len(),
                "seq {seq}"
            );
        }
    }

    #[test]
    fn the_largest_commit_is_logged_without_its_welcome_which_goes_to_the_joiner_alone() {
        use crate::wire::{Message as _, ToClient, ToServer};
        let mut room = Room::new(RoomConfig::default());
        let alice = join(&mut room);
        let create = Up::Create {
            group_id: Blob::copy_from(b"g").unwrap(),
        };
        room.handle_message(Instant::ZERO, alice, create).unwrap();
        let bob = join(&mut room);
        let carol = join(&mut room);
        events(&mut room);
        // The largest commit alice can send: its message is exactly at the
        // limit. Before, the entry (the same plus her connection and a
        // sequence number) was over it, and every member got an error in
        // its place.
        let commit = |welcome_len: usize| CommitMessage {
            epoch: 0,
            adds: List::new(alloc::vec![bob]).unwrap(),
            removes: List::default(),
            commit: Blob::copy_from(&alloc::vec![7; limits::COMMIT]).unwrap(),
            welcome: Some(Blob::copy_from(&alloc::vec![9; welcome_len]).unwrap()),
        };
        let up_len = |c: &CommitMessage| ToServer::Control(Up::Commit(c.clone())).encoded_len();
        let mut welcome_len = limits::WELCOME;
        while up_len(&commit(welcome_len)).unwrap() > limits::MESSAGE {
            welcome_len -= 1;
        }
        let largest = commit(welcome_len);
        assert_eq!(up_len(&largest).unwrap(), limits::MESSAGE);
        room.handle_message(Instant::ZERO, alice, Up::Commit(largest.clone()))
            .unwrap();
        let sent: Vec<Transmit> = core::iter::from_fn(|| room.poll_transmit()).collect();
        let [welcome, entry] = &sent[..] else {
            panic!("a Welcome and the entry: {sent:?}");
        };
        assert_eq!(
            welcome,
            &Transmit {
                to: Recipients::One(bob),
                message: Down::Welcome {
                    welcome: largest.welcome.clone().unwrap(),
                },
            },
            "bob, and only bob, gets the Welcome"
        );
        let Down::Entry {
            entry: Entry::Committed { commit, .. },
            ..
        } = &entry.message
        else {
            panic!("not the entry: {entry:?}");
        };
        assert_eq!(entry.to, Recipients::All);
        assert_eq!(
            commit.welcome,
            Some(Blob::default()),
            "the entry says there is a Welcome, and carries none"
        );
        assert_eq!(commit.commit, largest.commit);
        for message in [&welcome.message, &entry.message] {
            let encoded = ToClient::Control(message.clone()).encode().unwrap();
            assert!(encoded.len() <= limits::MESSAGE, "every message fits");
        }
        assert_eq!(events(&mut room), [RoomEvent::MemberAdded(bob)]);
        // Carol, waiting in the lobby too, got no Welcome: the two
        // transmits above were all.
        assert!(room.state().lobby().iter().any(|w| w.conn == carol));
    }
}
