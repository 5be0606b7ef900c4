//! Satsuma's selective forwarding unit.
//!
//! It forwards end-to-end encrypted media and orders each room's MLS
//! handshake messages as the delivery service. It never holds a media key:
//! what it reads are RTP headers, the clear bytes `core::media` declares,
//! each frame's SFrame header (to refuse a frame whose KID names another
//! member than its sender), and the log's bookkeeping (who joined, which
//! epoch, who commits, who sits in which leaf).
//!
//! What it does not do: decrypt, decode, mix or transcode media; hold any
//! key; decide who commits (the log's fold in `satsuma-core` does); TURN or
//! simulcast (see `docs/sfu.md`). Clients live in `satsuma-client`.
//!
//! Features: `testing` exposes [`testing`]'s internals to the crate's own
//! integration tests; `fuzzing` exposes a hidden `fuzzing` module (a hub
//! and links over in-memory transports) to the `sfu_link` fuzz target;
//! nothing else is optional.
//!
//! Panics: none on input from the network, a file or a client; every
//! refusal is a typed error frame that closes only the offending
//! connection, and a poisoned lock carries on with the last consistent
//! state.
//!
//! ```no_run
//! # async fn run() -> Result<(), satsuma_sfu::StartError> {
//! let config = satsuma_sfu::Config::default();
//! let server = satsuma_sfu::start(config).await?;
//! println!("signalling on ws://{}/v1/rooms/<room>/ws", server.http_addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod config;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hub;
mod link;
pub mod metrics;
mod refusals;
mod room;
mod rtc;
mod tap;
mod transport;

pub use rtc::{RtcError, RtcSettings};

/// Internals the SFU's own tests drive directly (the media plane without
/// signalling, the payload capture); not a stable API. Only with the
/// `testing` feature.
#[cfg(feature = "testing")]
pub mod testing {
    pub use crate::rtc::{Outbox, Rtc, RtcRoom};
    pub use crate::tap::Tap;
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::rtc::Rtc;
use crate::tap::Tap;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listening address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The capture file could not be created.
    #[error("cannot create the capture file: {0}")]
    Capture(std::io::Error),
    /// WebRTC could not be set up.
    #[error("WebRTC: {0}")]
    Rtc(#[from] RtcError),
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    hub: Arc<Hub>,
    http_addr: SocketAddr,
    intercom_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts listening and serving.
///
/// # Errors
/// A [`StartError`] when a listener or the capture file cannot be opened.
pub async fn start(config: Config) -> Result<Server, StartError> {
    let metrics = Arc::new(Metrics::default());
    let tap = Arc::new(match &config.debug.capture {
        Some(path) => Tap::to_file(path).map_err(StartError::Capture)?,
        None => Tap::off(),
    });
    let rtc = Rtc::new(&config.rtc, Arc::clone(&metrics), Arc::clone(&tap))?;
    tracing::info!(sockets = ?rtc.addrs(), "WebRTC media shards");
    let http = TcpListener::bind(config.http)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.http,
            source,
        })?;
    let intercom = match config.intercom {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen { addr, source })?,
        ),
        None => None,
    };
    let http_addr = http.local_addr().map_err(|source| StartError::Listen {
        addr: config.http,
        source,
    })?;
    let intercom_addr = intercom.as_ref().and_then(|l| l.local_addr().ok());
    let hub = Hub::new(config, metrics, tap, rtc);

    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(transport::http(Arc::clone(&hub), http)));
    if let Some(listener) = intercom {
        tasks.push(tokio::spawn(transport::intercom(
            Arc::clone(&hub),
            listener,
        )));
    }
    tracing::info!(%http_addr, intercom = ?intercom_addr, "listening");
    Ok(Server {
        hub,
        http_addr,
        intercom_addr,
        tasks,
    })
}

impl Server {
    /// Where the HTTP endpoints and the WebSocket signalling listen.
    #[must_use]
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where the intercom link listens, if it does.
    #[must_use]
    pub fn intercom_addr(&self) -> Option<SocketAddr> {
        self.intercom_addr
    }

    /// The server's counters.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.hub.metrics
    }

    /// Stops accepting, tells every client (`Error { ShuttingDown }`),
    /// closes every peer connection and waits up to five seconds for
    /// the listeners to stop and up to two more for the links to have
    /// told their clients and closed.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        let _ = self.hub.shutdown.send(true);
        for room in self.hub.rooms() {
            room.shut_down();
            room.rtc.close().await;
        }
        let listeners = async {
            for task in self.tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), listeners)
            .await
            .is_err()
        {
            tracing::warn!("listeners still open after 5 s; closing anyway");
        }
        // Each link's own task writes its goodbye and closes its socket;
        // returning before they have run would end the process with the
        // notice unsent (seen under load: clients never told).
        let links = async {
            while self.hub.open_connections() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(2), links)
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.hub.open_connections(),
                "connections still open after 2 s; closing anyway"
            );
        }
        self.hub.tap.flush();
    }
}
