//! The server's rooms and what every room shares.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use satsuma_core::Clock;
use satsuma_core::wire::RoomName;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::room::{Closed, Room, RoomContext, RoomSettings};
use crate::rtc::Rtc;
use crate::tap::Tap;

/// What every room and connection shares.
#[derive(Debug)]
pub(crate) struct Hub {
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub tap: Arc<Tap>,
    /// What each room gets: settings, metrics, the clock, the media plane.
    context: RoomContext,
    rooms: Mutex<HashMap<RoomName, Arc<Room>>>,
    /// The id the next room opens with.
    next_room: AtomicU64,
    connections: AtomicUsize,
    /// Open sockets per address (only addresses with one or more).
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// `true` once the server is shutting down.
    pub shutdown: tokio::sync::watch::Sender<bool>,
}

/// Why a room could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HubError {
    /// `limits.max_rooms` rooms are open.
    TooManyRooms,
    /// The server is shutting down.
    ShuttingDown,
}

impl Hub {
    pub(crate) fn new(
        config: Config,
        metrics: Arc<Metrics>,
        tap: Arc<Tap>,
        rtc: Arc<Rtc>,
    ) -> Arc<Self> {
        let (closed, closed_rx) = mpsc::unbounded_channel();
        let context = RoomContext {
            settings: RoomSettings::from_config(&config),
            metrics: Arc::clone(&metrics),
            clock: Clock::new(),
            rtc,
            closed,
        };
        let hub = Arc::new(Self {
            config,
            metrics,
            tap,
            context,
            rooms: Mutex::new(HashMap::new()),
            next_room: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
            shutdown: tokio::sync::watch::channel(false).0,
        });
        tokio::spawn(remove_closed(Arc::downgrade(&hub), closed_rx));
        hub
    }

    /// The room called `name`, opened if need be.
    pub(crate) fn room(self: &Arc<Self>, name: &RoomName) -> Result<Arc<Room>, HubError> {
        if *self.shutdown.borrow() {
            return Err(HubError::ShuttingDown);
        }
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        match rooms.get(name) {
            Some(room) if !room.is_closed() => return Ok(Arc::clone(room)),
            // Closed, its report not handled yet: a fresh room takes the
            // name now, so a join never waits on the report.
            Some(_) => {
                rooms.remove(name);
                self.metrics.rooms_add(-1);
            }
            None => {}
        }
        if rooms.len() >= self.config.limits.max_rooms {
            return Err(HubError::TooManyRooms);
        }
        let id = self.next_room.fetch_add(1, Ordering::Relaxed);
        let room = Room::new(name.clone(), id, self.context.clone());
        rooms.insert(name.clone(), Arc::clone(&room));
        self.metrics.rooms_add(1);
        tracing::info!(room = %name.as_str(), "room opened");
        Ok(room)
    }

    /// The room called `name`, if it is open.
    pub(crate) fn existing_room(&self, name: &RoomName) -> Option<Arc<Room>> {
        let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        rooms.get(name).cloned()
    }

    /// A room closed itself: the entry goes, unless a newer room of the
    /// same name took it meanwhile.
    fn remove_room(&self, (name, id): &Closed) {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if rooms.get(name).is_some_and(|r| r.id() == *id) {
            rooms.remove(name);
            self.metrics.rooms_add(-1);
        }
    }

    /// Every open room.
    pub(crate) fn rooms(&self) -> Vec<Arc<Room>> {
        let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        rooms.values().cloned().collect()
    }

    /// Sockets counted and not yet let go: a link's socket is let go once
    /// its task has told its client goodbye and closed it.
    pub(crate) fn open_connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Counted sockets, and the addresses they come from.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn sockets(&self) -> (usize, usize) {
        let per_address = self
            .per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (self.connections.load(Ordering::Acquire), per_address.len())
    }

    /// Counts a new socket from `peer`; `None` when the server, or that
    /// address's share of it, is full.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admission> {
        let limits = &self.config.limits;
        let mut per_address = self
            .per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only addresses with a socket open have an entry, so refused
        // sockets from many addresses cannot grow the map.
        let mine = per_address.get(&peer).copied().unwrap_or(0);
        if mine >= limits.max_connections_per_address {
            return None;
        }
        let max = limits.max_connections;
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        per_address.insert(peer, mine + 1);
        drop(per_address);
        self.metrics.connections_add(1);
        Some(Admission {
            hub: Arc::clone(self),
            peer,
        })
    }
}

/// Removes the rooms that report they closed, until the hub is gone.
async fn remove_closed(hub: Weak<Hub>, mut closed: mpsc::UnboundedReceiver<Closed>) {
    while let Some(report) = closed.recv().await {
        let Some(hub) = hub.upgrade() else {
            return;
        };
        hub.remove_room(&report);
    }
}

/// A counted socket; dropping it uncounts it.
#[derive(Debug)]
pub(crate) struct Admission {
    hub: Arc<Hub>,
    peer: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut per_address = self
            .hub
            .per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = per_address.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                per_address.remove(&self.peer);
            }
        }
        drop(per_address);
        self.hub.connections.fetch_sub(1, Ordering::AcqRel);
        self.hub.metrics.connections_add(-1);
    }
}
