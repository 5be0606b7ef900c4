//! What the hub hands each room: its settings, the shared metrics, the
//! server's one clock, the media plane and a way to report that it closed.
//! A room reaches nothing else of the server, so `room` imports nothing
//! from `hub`.

use std::sync::Arc;
use std::time::Duration;

use satsuma_core::Clock;
use satsuma_core::committer::RoomConfig;
use satsuma_core::resume::SeatLimits;
use satsuma_core::wire::RoomName;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::rtc::Rtc;

/// The numbers a room reads from the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoomSettings {
    /// The delivery service's log.
    pub log: RoomConfig,
    /// How long a lost connection keeps its seat, and what it keeps.
    pub seats: SeatLimits,
    /// How often a client should say something on a quiet link.
    pub ping: Duration,
    /// Bytes kept for resumes over every room of the server.
    pub resume_server_bytes: usize,
}

impl RoomSettings {
    pub(crate) fn from_config(config: &Config) -> Self {
        Self {
            log: RoomConfig {
                commit_deadline: Duration::from_millis(config.rooms.commit_deadline_ms),
                max_connections: config.limits.max_room_connections,
            },
            seats: SeatLimits {
                grace: Duration::from_millis(config.rooms.reconnect_grace_ms),
                messages: config.rooms.resume_history.max(1),
                bytes: config.rooms.resume_history_bytes,
                total_bytes: config.rooms.resume_room_bytes,
            },
            // A third of the idle timeout: two pings may be lost.
            ping: config.limits.idle_timeout() / 3,
            resume_server_bytes: config.rooms.resume_server_bytes,
        }
    }
}

/// A room's report that it closed: its name and the id it was opened with,
/// so the hub never removes a newer room of the same name.
pub(crate) type Closed = (RoomName, u64);

/// Everything a room shares with the server, cloned into each room.
#[derive(Debug, Clone)]
pub(crate) struct RoomContext {
    pub settings: RoomSettings,
    pub metrics: Arc<Metrics>,
    /// The server's one clock: every room's time has the same origin and
    /// never runs backwards.
    pub clock: Clock,
    pub rtc: Arc<Rtc>,
    pub closed: mpsc::UnboundedSender<Closed>,
}
