//! Settings: built-in defaults, then a TOML file, then environment
//! variables, then command-line flags, each overriding the one before.
//!
//! An environment variable `SATSUMA_SFU_<SECTION>__<KEY>` sets `key` in
//! `[section]` (`SATSUMA_SFU_LIMITS__IDLE_TIMEOUT_MS=60000`); one without
//! a section sets a top-level key (`SATSUMA_SFU_HTTP=0.0.0.0:8480`). The
//! value is read as TOML (`5`, `true`, `"text"`, `[1, 2]`); a value that is
//! not valid TOML is taken as a string.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::rtc::RtcSettings;

/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "SATSUMA_SFU_";

/// Everything the SFU can be told.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address for HTTP: the WebSocket signalling (`/v1/rooms/{room}/ws`),
    /// `/healthz` and `/metrics`. Loopback unless you open it up.
    pub http: SocketAddr,
    /// Address of the intercom link (length-prefixed `core::wire` frames
    /// over TCP), or `"off"` for none.
    #[serde(deserialize_with = "addr_or_off")]
    pub intercom: Option<SocketAddr>,
    /// Per-connection and per-server limits.
    pub limits: Limits,
    /// Rooms and the delivery service.
    pub rooms: Rooms,
    /// Logging.
    pub log: LogSettings,
    /// WebRTC for desktop clients.
    pub rtc: RtcSettings,
    /// Debugging aids.
    pub debug: DebugSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: SocketAddr::from(([127, 0, 0, 1], 8480)),
            intercom: Some(SocketAddr::from(([127, 0, 0, 1], 8481))),
            limits: Limits::default(),
            rooms: Rooms::default(),
            log: LogSettings::default(),
            rtc: RtcSettings::default(),
            debug: DebugSettings::default(),
        }
    }
}

/// Limits that keep one client from hurting the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest signalling message or intercom frame, in bytes (at most the
    /// protocol's 262144).
    pub max_message_bytes: usize,
    /// Sustained control messages per second per connection; a connection
    /// over `control_burst` more is closed with `RateLimited`.
    pub control_per_second: u32,
    /// Control messages a connection may send at once above the rate.
    pub control_burst: u32,
    /// Sustained intercom media frames per second per connection; frames
    /// over the rate and `media_burst` are dropped, not fatal.
    pub media_per_second: u32,
    /// Media frames a connection may send at once above the rate.
    pub media_burst: u32,
    /// Milliseconds without any message before a connection is closed
    /// (`Idle`). WebSocket clients are pinged; intercoms send `Ping`.
    pub idle_timeout_ms: u64,
    /// Milliseconds a new connection has to send `Join` or `Resume`, and an
    /// HTTP connection to send a whole request head (when it opens, and
    /// between requests): silent and half-open sockets are closed.
    pub handshake_timeout_ms: u64,
    /// Open sockets (HTTP, WebSocket and intercom) for the whole server;
    /// every accepted socket counts.
    pub max_connections: usize,
    /// Open sockets from one IP address.
    pub max_connections_per_address: usize,
    /// Rooms open at once.
    pub max_rooms: usize,
    /// Connections in one room, lobby included (at most 256).
    pub max_room_connections: usize,
    /// Rooms one connection may join. A connection carries one room; a
    /// second `Join` is refused with `TooManyRooms`.
    pub rooms_per_connection: usize,
    /// Control messages queued for a connection that does not read them
    /// before it is closed (its seat survives for the reconnect grace).
    /// Keep it under `rooms.resume_history`: the closed link has missed
    /// more than this many, and resumes only if its seat kept them all.
    pub control_queue: usize,
    /// Media frames queued per intercom connection before frames are
    /// dropped.
    pub media_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: satsuma_core::wire::limits::MESSAGE,
            control_per_second: 50,
            control_burst: 200,
            media_per_second: 200,
            media_burst: 400,
            idle_timeout_ms: 30_000,
            handshake_timeout_ms: 10_000,
            max_connections: 10_000,
            max_connections_per_address: 256,
            max_rooms: 1_000,
            max_room_connections: 64,
            rooms_per_connection: 1,
            control_queue: 256,
            media_queue: 256,
        }
    }
}

impl Limits {
    /// The idle timeout.
    #[must_use]
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

/// Rooms and the delivery service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rooms {
    /// Milliseconds the designated committer may leave work undone before
    /// the log moves the role on (`Stalled`).
    pub commit_deadline_ms: u64,
    /// Milliseconds a lost connection keeps its seat for a `Resume`.
    pub reconnect_grace_ms: u64,
    /// Control messages kept per connection to replay on `Resume`.
    pub resume_history: usize,
    /// Bytes of control messages kept per connection for `Resume`; at
    /// least one message of the largest kind (`wire::limits::MESSAGE`).
    pub resume_history_bytes: usize,
    /// Bytes of control messages kept for `Resume` over a whole room; past
    /// it, the seat a message is for gives up its oldest.
    pub resume_room_bytes: usize,
    /// Bytes of control messages kept for `Resume` over every room of the
    /// server; past it, the room that grows gives up its oldest, from its
    /// largest history first.
    pub resume_server_bytes: usize,
}

impl Default for Rooms {
    fn default() -> Self {
        Self {
            commit_deadline_ms: 5_000,
            reconnect_grace_ms: 15_000,
            resume_history: 512,
            resume_history_bytes: 1 << 20,
            resume_room_bytes: 16 << 20,
            resume_server_bytes: 256 << 20,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `satsuma_sfu=debug,rtc=warn`).
    /// `RUST_LOG` wins when set.
    pub filter: String,
}

/// Log directives for every process that runs the SFU's WebRTC plane,
/// added to its default filter. `rtc` builds each peer's DTLS
/// configuration without the peer's address, so where the SFU is the DTLS
/// client `rtc_dtls` warns, once per peer, that it names the server
/// `localhost`. WebRTC's DTLS checks the peer's certificate against the
/// fingerprint in its SDP and never by name, so there is nothing to act on.
pub const QUIET_LOGS: &str = "rtc_dtls::config=error";

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: format!("info,rtc=warn,rtc_ice=warn,rtc_dtls=warn,{QUIET_LOGS}"),
        }
    }
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Debugging aids; off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DebugSettings {
    /// Record every payload the SFU handles (signalling messages, RTP
    /// payloads, intercom media) into this file. It holds only what the SFU
    /// sees anyway: ciphertext and handshake messages.
    pub capture: Option<PathBuf>,
}

/// Why settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file or an override is not valid TOML or names an unknown key.
    #[error("invalid settings: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then the file at `path` (if any), then `SATSUMA_SFU_*`
    /// variables from `env`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, the variable or the key.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            let (section, field) = match key.split_once("__") {
                Some((s, f)) => (Some(s.to_owned()), f.to_owned()),
                None => (None, key),
            };
            let value = parse_value(&value);
            let target = match section {
                None => &mut table,
                Some(section) => match table
                    .entry(section.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                {
                    toml::Value::Table(t) => t,
                    _ => {
                        return Err(ConfigError::Invalid(format!(
                            "{name}: `{section}` is not a section"
                        )));
                    }
                },
            };
            target.insert(field, value);
        }
        Config::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::Invalid(e.to_string()))
            .and_then(Config::checked)
    }

    fn checked(self) -> Result<Self, ConfigError> {
        let wire_max = satsuma_core::wire::limits::MESSAGE;
        let l = &self.limits;
        if l.max_message_bytes == 0 || l.max_message_bytes > wire_max {
            return Err(ConfigError::Invalid(format!(
                "limits.max_message_bytes must be 1..={wire_max}"
            )));
        }
        if l.max_room_connections == 0
            || l.max_room_connections > satsuma_core::wire::limits::MEMBERS
        {
            return Err(ConfigError::Invalid(format!(
                "limits.max_room_connections must be 1..={}",
                satsuma_core::wire::limits::MEMBERS
            )));
        }
        if l.rooms_per_connection != 1 {
            return Err(ConfigError::Invalid(
                "limits.rooms_per_connection: a connection carries exactly one room".into(),
            ));
        }
        for (name, v) in [
            ("limits.control_per_second", l.control_per_second),
            ("limits.media_per_second", l.media_per_second),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        for (name, v) in [
            ("limits.control_queue", l.control_queue),
            ("limits.media_queue", l.media_queue),
            ("limits.max_connections", l.max_connections),
            (
                "limits.max_connections_per_address",
                l.max_connections_per_address,
            ),
            ("limits.max_rooms", l.max_rooms),
            ("rooms.resume_history", self.rooms.resume_history),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        let r = &self.rooms;
        if r.resume_history_bytes < wire_max
            || r.resume_room_bytes < r.resume_history_bytes
            || r.resume_server_bytes < r.resume_room_bytes
        {
            return Err(ConfigError::Invalid(format!(
                "rooms.resume_history_bytes must be at least one message ({wire_max}), \
                 rooms.resume_room_bytes at least rooms.resume_history_bytes, \
                 and rooms.resume_server_bytes at least rooms.resume_room_bytes"
            )));
        }
        if l.idle_timeout_ms == 0 || l.handshake_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "timeouts must be at least 1 ms".into(),
            ));
        }
        Ok(self)
    }
}

fn addr_or_off<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "off" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("`{text}` is not an address or \"off\"")))
}

fn parse_value(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_listen_on_loopback() -> Result<(), ConfigError> {
        let c = Config::load(None, env(&[]))?;
        assert!(c.http.ip().is_loopback());
        assert!(c.intercom.is_some_and(|a| a.ip().is_loopback()));
        Ok(())
    }

    #[test]
    fn file_then_environment_override() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("sfu.toml");
        std::fs::write(
            &path,
            "http = \"127.0.0.1:9000\"\n[limits]\nidle_timeout_ms = 1000\nmax_rooms = 7\n",
        )?;
        let c = Config::load(
            Some(&path),
            env(&[
                ("SATSUMA_SFU_LIMITS__MAX_ROOMS", "9"),
                ("SATSUMA_SFU_LOG__FORMAT", "json"),
                ("SATSUMA_SFU_HTTP", "127.0.0.1:9001"),
                ("OTHER", "ignored"),
            ]),
        )?;
        assert_eq!(c.http, SocketAddr::from(([127, 0, 0, 1], 9001)));
        assert_eq!(c.limits.idle_timeout_ms, 1000);
        assert_eq!(c.limits.max_rooms, 9);
        assert_eq!(c.log.format, LogFormat::Json);
        let off = Config::load(None, env(&[("SATSUMA_SFU_INTERCOM", "off")]))?;
        assert_eq!(off.intercom, None);
        Ok(())
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = Config::load(None, env(&[("SATSUMA_SFU_LIMITS__IDLE", "5")]));
        assert!(
            matches!(&err, Err(ConfigError::Invalid(m)) if m.contains("idle")),
            "{err:?}"
        );
        let err = Config::load(
            None,
            env(&[("SATSUMA_SFU_LIMITS__MAX_MESSAGE_BYTES", "999999999")]),
        );
        assert!(
            matches!(&err, Err(ConfigError::Invalid(m)) if m.contains("max_message_bytes")),
            "{err:?}"
        );
        let err = Config::load(None, env(&[("SATSUMA_SFU_HTTP", "nowhere")]));
        assert!(err.is_err());
    }
}
