//! Why the engine could not set something up.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why opening a [`FileStore`](crate::FileStore) or seeding a provider failed.
///
/// Failures of an open store's load, save and erase are
/// [`StoreError`](satsuma_core::mls::StoreError)s, as the `Store` trait says;
/// [`FileStore::last_io_error`](crate::FileStore::last_io_error) tells why.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No data directory: the variables that name it (`XDG_DATA_HOME`,
    /// `HOME`, `APPDATA`) are unset or not absolute paths.
    NoDataDir,
    /// A profile name must be 1 to 64 characters of `A-Z a-z 0-9 . _ -`,
    /// and not `.` or `..`.
    Profile,
    /// Another process, or another `FileStore` in this one, has this state
    /// file open: two copies of one member would reuse SFrame nonces.
    Locked {
        /// The state file.
        path: PathBuf,
    },
    /// The OS entropy source failed.
    Entropy(getrandom::Error),
    /// The file system refused.
    Io {
        /// What the engine was working on.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDataDir => f.write_str(
                "no data directory: set XDG_DATA_HOME or HOME (APPDATA on Windows) to an absolute path",
            ),
            Self::Profile => f.write_str(
                "profile name must be 1 to 64 characters of A-Z a-z 0-9 . _ - and not . or ..",
            ),
            Self::Locked { path } => write!(
                f,
                "{} is in use by another Satsuma process",
                path.display()
            ),
            Self::Entropy(e) => write!(f, "OS entropy source failed: {e}"),
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
