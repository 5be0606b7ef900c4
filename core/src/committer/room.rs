//! The delivery service's side: one room's ordered log.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use super::DsError;
use super::state::{RoomState, SeatStatus};
use crate::Instant;
use crate::wire::{Blob, Capabilities, ConnId, Entry, ErrorCode, ToClient, ToServer, limits};

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

/// One room of the delivery service: it puts every handshake message in one
/// order, accepts the first valid commit for an epoch, and relays Welcomes.
/// It holds no key and cannot read a commit; what it checks, it checks on
/// the log ([`RoomState::check_commit`]): the sender is the designated
/// committer, the epoch is current, the adds wait in the lobby and the
/// removed leaves are gone.
///
/// Sans-IO, like [`Member`](super::Member): after every `handle_*`, drain
/// [`Room::poll_transmit`]; call [`Room::handle_timeout`] at
/// [`Room::poll_timeout`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Room {
    config: RoomConfig,
    state: RoomState,
    connections: Vec<Connection>,
    next_conn: u64,
    work_since: Option<Instant>,
    transmits: VecDeque<(ConnId, ToClient)>,
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
            connections: Vec::new(),
            next_conn: 0,
            work_since: None,
            transmits: VecDeque::new(),
        }
    }

    /// A new connection's `Join`: it gets a [`ConnId`], a `Hello` with the
    /// room so far, and then its own `Joined` entry like everyone else.
    ///
    /// # Errors
    /// [`DsError::RoomFull`].
    pub fn handle_join(
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
        self.transmits.push_back((
            conn,
            ToClient::Hello {
                conn,
                room: self.state.snapshot(),
            },
        ));
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
        message: ToServer,
    ) -> Result<(), DsError> {
        let Some(connection) = self.connection(conn) else {
            return Err(DsError::UnknownConnection(conn));
        };
        match message {
            // The transport's business: a driver never passes these on.
            ToServer::Join { .. }
            | ToServer::Media(_)
            | ToServer::Rtc(_)
            | ToServer::Resume { .. }
            | ToServer::Ping { .. } => Err(DsError::Unexpected),
            ToServer::KeyPackage { key_package } => {
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
            ToServer::Create { group_id } => {
                let entry = Entry::Created { conn, group_id };
                if self.state.clone().apply(&entry).is_err() {
                    self.transmits
                        .push_back((conn, ToClient::Rejected { epoch: None }));
                    return Err(DsError::Refused);
                }
                self.log(now, entry)
            }
            ToServer::Commit(commit) => {
                if let Err(e) = self.state.check_commit(conn, &commit) {
                    self.transmits.push_back((
                        conn,
                        ToClient::Rejected {
                            epoch: Some(commit.epoch),
                        },
                    ));
                    return Err(DsError::Log(e));
                }
                if let Some(welcome) = &commit.welcome {
                    for add in commit.adds.iter() {
                        self.transmits.push_back((
                            *add,
                            ToClient::Welcome {
                                welcome: welcome.clone(),
                            },
                        ));
                    }
                }
                self.log(now, Entry::Committed { conn, commit })
            }
            ToServer::Proposal { epoch, proposal } => self.log(
                now,
                Entry::Proposed {
                    conn,
                    epoch,
                    proposal,
                },
            ),
            ToServer::Refuse { conn: refused } => {
                self.log(
                    now,
                    Entry::Refused {
                        by: conn,
                        conn: refused,
                    },
                )?;
                self.transmits.push_back((
                    refused,
                    ToClient::Error {
                        code: ErrorCode::KeyPackageRefused,
                        text: Blob::copy_from(b"the committer could not add your key package")
                            .unwrap_or_default(),
                    },
                ));
                Ok(())
            }
            ToServer::Leave => {
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
        // `Left` is valid for any connection; only a bug could refuse it.
        let _ = self.log(now, Entry::Left { conn });
        self.connections.retain(|c| c.conn != conn);
    }

    /// Time passes: work left undone past the deadline moves the committer
    /// role on.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|deadline| now >= deadline) {
            let _ = self.log(now, Entry::Stalled);
        }
    }

    /// The next message and the connection it is for.
    pub fn poll_transmit(&mut self) -> Option<(ConnId, ToClient)> {
        self.transmits.pop_front()
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

    /// Whether nobody is connected any more.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// The connections, in the order they joined.
    pub fn connections(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.connections.iter().map(|c| c.conn)
    }

    /// Whether `conn` is a present member of the group: one whose media the
    /// SFU forwards to the others.
    #[must_use]
    pub fn is_member(&self, conn: ConnId) -> bool {
        matches!(self.state.seat_of(conn), Some((_, s)) if s.status == SeatStatus::Present)
    }

    fn connection(&self, conn: ConnId) -> Option<Connection> {
        self.connections.iter().find(|c| c.conn == conn).copied()
    }

    /// Appends `entry` to the log and sends it to every connection.
    fn log(&mut self, now: Instant, entry: Entry) -> Result<(), DsError> {
        let had_work = self.state.has_work();
        self.state.apply(&entry)?;
        let seq = self.state.seq();
        for c in &self.connections {
            self.transmits.push_back((
                c.conn,
                ToClient::Entry {
                    seq,
                    entry: entry.clone(),
                },
            ));
        }
        let progress = matches!(
            entry,
            Entry::Committed { .. } | Entry::Created { .. } | Entry::Stalled
        );
        self.work_since = match (self.state.has_work(), had_work && !progress) {
            (false, _) => None,
            (true, true) => self.work_since.or(Some(now)),
            (true, false) => Some(now),
        };
        Ok(())
    }
}
