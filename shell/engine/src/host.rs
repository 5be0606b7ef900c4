//! Hosting a call on this machine, with no server set up: `satsuma-sfu`
//! runs in this process, and the addresses others on the network can use
//! are worked out for a person to share.
//!
//! The SFU holds no media key here either: the host's own member joins it
//! over a real socket, as everyone else does.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

/// The default log filter's directives for a process hosting the SFU
/// (the app and the headless member).
pub use satsuma_sfu::config::QUIET_LOGS;

/// Why a call cannot be hosted.
#[derive(Debug, thiserror::Error)]
#[error("cannot host a call on {addr}: {reason}")]
pub struct HostError {
    addr: SocketAddr,
    reason: String,
}

/// An SFU running in this process.
#[derive(Debug)]
pub struct Hosted {
    server: satsuma_sfu::Server,
    /// The address to join with from this machine.
    pub local: SocketAddr,
    /// The addresses to join with from elsewhere, one per network this
    /// machine is on (none when it listens on loopback only).
    pub shared: Vec<SocketAddr>,
}

impl Hosted {
    /// Starts the SFU on `bind` (`0.0.0.0:8480` to be reachable on the
    /// network, `127.0.0.1:0` for this machine only, any free port). The
    /// intercom link listens on the next port (any free one with port 0).
    ///
    /// # Errors
    /// [`HostError`] when the address is taken or not this machine's.
    pub async fn start(bind: SocketAddr) -> Result<Self, HostError> {
        let on_network = bind.ip().is_unspecified();
        let outward = if on_network { outward_ip() } else { None };
        let intercom = SocketAddr::new(
            bind.ip(),
            if bind.port() == 0 {
                0
            } else {
                bind.port().saturating_add(1)
            },
        );
        let mut config = satsuma_sfu::Config {
            http: bind,
            intercom: Some(intercom),
            ..Default::default()
        };
        // ICE candidates on the address others reach, and on loopback for
        // the host's own member.
        config.rtc.ips = if on_network {
            outward
                .into_iter()
                .chain([IpAddr::from([127, 0, 0, 1])])
                .collect()
        } else {
            vec![bind.ip()]
        };
        let server = satsuma_sfu::start(config).await.map_err(|e| HostError {
            addr: bind,
            reason: e.to_string(),
        })?;
        let port = server.http_addr().port();
        let local = SocketAddr::new(
            if on_network {
                IpAddr::from([127, 0, 0, 1])
            } else {
                bind.ip()
            },
            port,
        );
        let shared = outward
            .map(|ip| SocketAddr::new(ip, port))
            .into_iter()
            .collect();
        Ok(Self {
            server,
            local,
            shared,
        })
    }

    /// The intercom link's address, for a door intercom to join.
    #[must_use]
    pub fn intercom(&self) -> Option<SocketAddr> {
        self.server.intercom_addr()
    }

    /// The local addresses ICE should offer for the host's own member.
    #[must_use]
    pub fn ice_ips(&self) -> Vec<IpAddr> {
        vec![self.local.ip()]
    }

    /// Stops the SFU: every member's link closes. Gives up waiting after
    /// ten seconds (the process is usually about to end).
    pub async fn stop(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server.shutdown()).await;
    }
}

/// The address this machine reaches other networks from: its source
/// address on a route to a documentation address, or none without a route
/// (or with loopback only).
fn outward_ip() -> Option<IpAddr> {
    local_ip_towards(SocketAddr::from(([192, 0, 2, 1], 9)))
        .filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
}

/// This machine's source address on the route to `peer` (no packet is
/// sent): the address to offer ICE when joining a server there. None
/// without a route.
#[must_use]
pub fn local_ip_towards(peer: SocketAddr) -> Option<IpAddr> {
    let unspecified = if peer.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0_u16; 8], 0))
    };
    let socket = UdpSocket::bind(unspecified).ok()?;
    socket.connect(peer).ok()?;
    Some(socket.local_addr().ok()?.ip())
}
