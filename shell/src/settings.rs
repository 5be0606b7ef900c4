//! What the app remembers between runs, beside the member's identity and
//! trust record (`member.state`, the engine's): the name, the server, the
//! devices picked and the recent rooms, in `app.json` in the profile's
//! directory.
//!
//! A file that cannot be read is never overwritten: it is moved aside
//! (`app.json.damaged`), the defaults are used and the app says so.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The settings file's name in the profile directory.
pub const FILE: &str = "app.json";
/// How many recent rooms are kept.
pub const RECENT: usize = 8;
/// The largest settings file read (a damaged or hostile file is not
/// loaded into memory whole).
const MAX_LEN: u64 = 64 * 1024;

/// One room joined before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentRoom {
    /// The room.
    pub room: String,
    /// The server (empty: hosted on this machine).
    pub server: String,
}

/// The app's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The name others see.
    pub name: String,
    /// The last server used (empty: host the call here).
    pub server: String,
    /// The microphone picked (none: the default one).
    pub microphone: Option<String>,
    /// The speaker picked (none: the default one).
    pub speaker: Option<String>,
    /// The camera picked (none: the first one).
    pub camera: Option<String>,
    /// Rooms joined, the latest first.
    pub recent: Vec<RecentRoom>,
}

/// Why the settings could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not settings (moved aside to `moved_to`).
    #[error(
        "{path} could not be read ({reason}); it was moved to {moved_to} and the defaults are used"
    )]
    Damaged {
        /// The file.
        path: String,
        /// Why.
        reason: String,
        /// Where it is now.
        moved_to: String,
    },
}

impl Settings {
    /// Reads the settings in `dir`: the defaults when there is no file,
    /// and with them the reason when the file was damaged (and moved
    /// aside).
    pub fn load(dir: &Path) -> (Self, Option<SettingsError>) {
        let path = dir.join(FILE);
        match read(&path) {
            Ok(Some(s)) => (s, None),
            Ok(None) => (Self::default(), None),
            Err(reason) => {
                let moved = path.with_extension("json.damaged");
                let error = match std::fs::rename(&path, &moved) {
                    Ok(()) => SettingsError::Damaged {
                        path: path.display().to_string(),
                        reason,
                        moved_to: moved.display().to_string(),
                    },
                    Err(source) => SettingsError::Io {
                        path: path.display().to_string(),
                        source,
                    },
                };
                (Self::default(), Some(error))
            }
        }
    }

    /// Writes the settings to `dir` atomically (a new file renamed over
    /// the old one), readable by this user only.
    ///
    /// # Errors
    /// [`SettingsError::Io`].
    pub fn save(&self, dir: &Path) -> Result<(), SettingsError> {
        let path = dir.join(FILE);
        let tmp = dir.join(format!("{FILE}.new"));
        let io = |source| SettingsError::Io {
            path: path.display().to_string(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| io(e.into()))?;
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(&json).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// Puts `room` on `server` first in the recent rooms (once), keeping
    /// [`RECENT`].
    pub fn remember(&mut self, room: &str, server: &str) {
        let entry = RecentRoom {
            room: room.to_owned(),
            server: server.to_owned(),
        };
        self.recent.retain(|r| *r != entry);
        self.recent.insert(0, entry);
        self.recent.truncate(RECENT);
    }
}

fn read(path: &Path) -> Result<Option<Settings>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_LEN + 1), &mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_LEN {
        return Err(format!("longer than {MAX_LEN} bytes"));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The directory of `profile`: `<data dir>/satsuma/<profile>/`, where the
/// engine keeps the member's state too.
///
/// # Errors
/// When the profile name is not valid or there is no data directory.
pub fn profile_dir(profile: &str) -> Result<PathBuf, String> {
    satsuma_engine::FileStore::profile_path(profile)
        .map_err(|e| e.to_string())?
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "the profile's state file has no directory".to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn saved_settings_come_back_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Settings {
            name: "Ada".into(),
            microphone: Some("mic".into()),
            ..Settings::default()
        };
        s.remember("kitchen", "");
        s.save(dir.path()).unwrap();
        let (back, error) = Settings::load(dir.path());
        assert!(error.is_none());
        assert_eq!(back, s);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_damaged_file_is_moved_aside_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{\"name\": 42").unwrap();
        let (s, error) = Settings::load(dir.path());
        assert_eq!(s, Settings::default());
        assert!(
            matches!(error, Some(SettingsError::Damaged { .. })),
            "{error:?}"
        );
        let kept = std::fs::read(dir.path().join("app.json.damaged")).unwrap();
        assert_eq!(kept, b"{\"name\": 42");
        // Saving now does not touch the damaged copy.
        s.save(dir.path()).unwrap();
        assert!(dir.path().join("app.json.damaged").exists());
    }

    #[test]
    fn recent_rooms_are_unique_latest_first_and_bounded() {
        let mut s = Settings::default();
        for i in 0..12 {
            s.remember(&format!("room{i}"), "");
        }
        s.remember("room5", "");
        assert_eq!(s.recent.len(), RECENT);
        assert_eq!(s.recent[0].room, "room5");
        assert_eq!(s.recent.iter().filter(|r| r.room == "room5").count(), 1);
        s.remember("room5", "10.0.0.2:8480");
        assert_eq!(s.recent[0].server, "10.0.0.2:8480");
    }
}
