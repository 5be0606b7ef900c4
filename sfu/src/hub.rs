//! The server's rooms and what every room shares.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use satsuma_core::wire::RoomName;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::room::Room;
use crate::rtc::Rtc;
use crate::tap::Tap;

/// What every room and connection shares.
#[derive(Debug)]
pub(crate) struct Hub {
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub tap: Arc<Tap>,
    pub rtc: Arc<Rtc>,
    /// The origin of the rooms' clocks.
    pub started: Instant,
    rooms: Mutex<HashMap<RoomName, Arc<Room>>>,
    connections: AtomicUsize,
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
        Arc::new(Self {
            config,
            metrics,
            tap,
            rtc,
            started: Instant::now(),
            rooms: Mutex::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            shutdown: tokio::sync::watch::channel(false).0,
        })
    }

    /// The room called `name`, opened if need be.
    pub(crate) fn room(self: &Arc<Self>, name: &RoomName) -> Result<Arc<Room>, HubError> {
        if *self.shutdown.borrow() {
            return Err(HubError::ShuttingDown);
        }
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(room) = rooms.get(name) {
            return Ok(Arc::clone(room));
        }
        if rooms.len() >= self.config.limits.max_rooms {
            return Err(HubError::TooManyRooms);
        }
        let room = Room::new(name.clone(), self);
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

    /// A room closed itself.
    pub(crate) fn remove_room(&self, room: &Room) {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if rooms
            .get(room.name())
            .is_some_and(|r| std::ptr::eq(Arc::as_ptr(r), room))
        {
            rooms.remove(room.name());
            self.metrics.rooms_add(-1);
        }
    }

    /// Every open room.
    pub(crate) fn rooms(&self) -> Vec<Arc<Room>> {
        let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        rooms.values().cloned().collect()
    }

    /// Counts a new connection; `None` when the server is full.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Admission> {
        let max = self.config.limits.max_connections;
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        self.metrics.connections_add(1);
        Some(Admission(Arc::clone(self)))
    }
}

/// A counted connection; dropping it uncounts it.
#[derive(Debug)]
pub(crate) struct Admission(Arc<Hub>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.connections_add(-1);
    }
}
