//! A member's state in one file: [`FileStore`].
//!
//! # File format
//!
//! ```text
//! offset  size  field
//!  0       8    magic "SATSUMA\0"
//!  8       2    format version, big-endian (1)
//! 10       2    flags, big-endian (0; anything else is refused)
//! 12       4    record length N, big-endian
//! 16      32    SHA-256 over bytes 0..16 and the record
//! 48       N    the record (satsuma-core's own encoding)
//! ```
//!
//! A file that is shorter or longer than `48 + N`, has another magic,
//! version or flags, or fails the checksum is [`StoreError::Corrupt`]: the
//! session refuses to resume rather than run on damaged keys.
//!
//! # Writing
//!
//! `save` writes the whole file to a temporary file in the same directory
//! (created exclusively, mode 0600), flushes it to disk, renames it over the
//! state file and flushes the directory. A crash leaves the old file or the
//! new one; a temporary file left behind is removed the next time the store
//! is opened or saved.
//!
//! # Locking
//!
//! The store holds an exclusive lock on `<state file>.lock` while it lives.
//! Two processes running one member would both resume into the same SFrame
//! send context and reuse nonces; the second one gets [`Error::Locked`].

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use satsuma_core::mls::{Store, StoreError};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::Error;

/// Name of the state file in a profile's directory.
pub const FILE_NAME: &str = "member.state";
/// Bytes before the record: magic, version, flags, length, checksum.
pub const HEADER_LEN: usize = 48;
/// Largest record a [`FileStore`] writes or reads: far above a member's
/// state (a few kilobytes), far below what would exhaust memory.
pub const MAX_RECORD_LEN: usize = 64 << 20;

const MAGIC: [u8; 8] = *b"SATSUMA\0";
const FORMAT_VERSION: u16 = 1;
const MAX_PROFILE_LEN: usize = 64;
const LOCK_SUFFIX: &str = ".lock";
const TEMP_SUFFIX: &str = ".tmp";

/// A [`Store`] in one file, by default
/// `<data dir>/satsuma/<profile>/member.state` (see [`data_dir`]).
pub struct FileStore {
    path: PathBuf,
    dir: PathBuf,
    temp: PathBuf,
    /// Held open, and locked, while the store lives.
    _lock: File,
    last_io_error: Option<io::ErrorKind>,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// The store of profile `profile` in the OS data directory:
    /// `<data dir>/satsuma/<profile>/member.state`. The `satsuma` and
    /// profile directories are created if missing and made private to the
    /// user (0700 on Unix).
    ///
    /// # Errors
    /// [`Error::Profile`], [`Error::NoDataDir`], [`Error::Locked`],
    /// [`Error::Io`].
    pub fn for_profile(profile: &str) -> Result<Self, Error> {
        let path = Self::profile_path(profile)?;
        if let Some(dir) = path.parent() {
            if let Some(app_dir) = dir.parent() {
                create_private_dir(app_dir)?;
            }
            create_private_dir(dir)?;
        }
        Self::open(path)
    }

    /// Where [`FileStore::for_profile`] keeps `profile`'s state.
    ///
    /// # Errors
    /// [`Error::Profile`], [`Error::NoDataDir`].
    pub fn profile_path(profile: &str) -> Result<PathBuf, Error> {
        check_profile(profile)?;
        Ok(data_dir()?.join("satsuma").join(profile).join(FILE_NAME))
    }

    /// The store in the file at `path`. Missing directories on the way are
    /// created (0700 on Unix); existing ones are left as they are.
    ///
    /// # Errors
    /// [`Error::Locked`] when another store has `path` open; [`Error::Io`].
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path: PathBuf = path.into();
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let name = path.file_name().ok_or_else(|| Error::Io {
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        })?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            create_private_dir(&dir)?;
        }
        let with_suffix = |prefix: &str, suffix: &str| {
            let mut s = OsString::from(prefix);
            s.push(name);
            s.push(suffix);
            dir.join(s)
        };
        let lock_path = with_suffix("", LOCK_SUFFIX);
        let temp = with_suffix(".", TEMP_SUFFIX);

        let lock = private_file_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(Error::Locked { path }),
            Err(TryLockError::Error(source)) => {
                return Err(Error::Io {
                    path: lock_path,
                    source,
                });
            }
        }
        // A temporary file left by a crash mid-save: the state file is
        // still the last complete one.
        remove_if_present(&temp).map_err(io_err(&temp))?;
        #[cfg(unix)]
        restrict_existing(&path, 0o600).map_err(io_err(&path))?;

        Ok(Self {
            path,
            dir,
            temp,
            _lock: lock,
            last_io_error: None,
        })
    }

    /// The state file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a record is saved: `Session::resume` it, or
    /// `Session::create` a new member.
    #[must_use]
    pub fn has_record(&self) -> bool {
        self.path.is_file()
    }

    /// What the OS said when the last load, save or erase failed with
    /// [`StoreError::Io`].
    #[must_use]
    pub fn last_io_error(&self) -> Option<io::ErrorKind> {
        self.last_io_error
    }

    fn io(&mut self, e: &io::Error) -> StoreError {
        self.last_io_error = Some(e.kind());
        StoreError::Io
    }

    /// Writes `contents` to the temporary file and flushes it to disk: the
    /// first half of a save, after which a crash leaves the old record.
    fn write_temp(&self, contents: &[u8]) -> io::Result<()> {
        remove_if_present(&self.temp)?;
        // `create_new`: never follow a link someone put in our place.
        let mut file = private_file_options()
            .write(true)
            .create_new(true)
            .open(&self.temp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(contents)?;
        file.sync_all()
    }

    /// The second half: the temporary file replaces the state file.
    fn replace_with_temp(&self) -> io::Result<()> {
        fs::rename(&self.temp, &self.path)?;
        sync_dir(&self.dir)
    }
}

impl Store for FileStore {
    fn load(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(&e)),
        };
        let limit = HEADER_LEN + MAX_RECORD_LEN;
        let expected = file
            .metadata()
            .map(|m| usize::try_from(m.len()).unwrap_or(usize::MAX))
            .unwrap_or(0);
        if expected > limit {
            return Err(StoreError::Corrupt);
        }
        // Sized up front so the buffer holding secrets never moves.
        let mut bytes = Zeroizing::new(Vec::with_capacity(expected + 1));
        // One byte over the limit tells a file that grew meanwhile.
        let read = file
            .take(u64::try_from(limit + 1).unwrap_or(u64::MAX))
            .read_to_end(&mut bytes);
        if let Err(e) = read {
            return Err(self.io(&e));
        }
        decode(&bytes).map(Some)
    }

    fn save(&mut self, record: &[u8]) -> Result<(), StoreError> {
        let contents = encode(record)?;
        if let Err(e) = self.write_temp(&contents) {
            let _ = fs::remove_file(&self.temp);
            return Err(self.io(&e));
        }
        if let Err(e) = self.replace_with_temp() {
            let _ = fs::remove_file(&self.temp);
            return Err(self.io(&e));
        }
        Ok(())
    }

    fn erase(&mut self) -> Result<(), StoreError> {
        if let Err(e) = remove_if_present(&self.path).and_then(|()| sync_dir(&self.dir)) {
            return Err(self.io(&e));
        }
        Ok(())
    }
}

/// The OS data directory Satsuma keeps its profiles in:
/// `$XDG_DATA_HOME` or `~/.local/share` on Linux and the BSDs,
/// `~/Library/Application Support` on macOS, `%APPDATA%` on Windows.
///
/// # Errors
/// [`Error::NoDataDir`] when the variables are unset or relative.
pub fn data_dir() -> Result<PathBuf, Error> {
    #[cfg(windows)]
    let dir = absolute(std::env::var_os("APPDATA"));
    #[cfg(target_os = "macos")]
    let dir = absolute(std::env::var_os("HOME"))
        .map(|home| home.join("Library").join("Application Support"));
    #[cfg(not(any(windows, target_os = "macos")))]
    let dir = xdg_data_dir(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"));
    dir.ok_or(Error::NoDataDir)
}

/// The XDG base directory rule: `$XDG_DATA_HOME` if it is an absolute path,
/// else `$HOME/.local/share`.
#[cfg_attr(any(windows, target_os = "macos"), allow(dead_code))]
fn xdg_data_dir(xdg_data_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    absolute(xdg_data_home).or_else(|| absolute(home).map(|h| h.join(".local").join("share")))
}

fn absolute(var: Option<OsString>) -> Option<PathBuf> {
    var.map(PathBuf::from).filter(|p| p.is_absolute())
}

fn check_profile(profile: &str) -> Result<(), Error> {
    let ok = (1..=MAX_PROFILE_LEN).contains(&profile.len())
        && profile != "."
        && profile != ".."
        && profile
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok { Ok(()) } else { Err(Error::Profile) }
}

/// Header and record, as written to disk.
fn encode(record: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let full = StoreError::Full {
        needed: HEADER_LEN.saturating_add(record.len()),
        capacity: HEADER_LEN + MAX_RECORD_LEN,
    };
    if record.len() > MAX_RECORD_LEN {
        return Err(full);
    }
    let len = u32::try_from(record.len()).map_err(|_| full)?;
    let mut out = Zeroizing::new(Vec::with_capacity(HEADER_LEN + record.len()));
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    let checksum = checksum(&out, record);
    out.extend_from_slice(&checksum);
    out.extend_from_slice(record);
    Ok(out)
}

/// The record in a file's bytes, if the header and checksum say it is whole.
fn decode(bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let (header, record) = bytes
        .split_at_checked(HEADER_LEN)
        .ok_or(StoreError::Corrupt)?;
    let (fields, stored) = header.split_at(16);
    let [
        m0,
        m1,
        m2,
        m3,
        m4,
        m5,
        m6,
        m7,
        v0,
        v1,
        f0,
        f1,
        l0,
        l1,
        l2,
        l3,
    ] = *fields
    else {
        return Err(StoreError::Corrupt);
    };
    let well_formed = [m0, m1, m2, m3, m4, m5, m6, m7] == MAGIC
        && u16::from_be_bytes([v0, v1]) == FORMAT_VERSION
        && u16::from_be_bytes([f0, f1]) == 0
        && usize::try_from(u32::from_be_bytes([l0, l1, l2, l3])).ok() == Some(record.len());
    if !well_formed || checksum(fields, record)[..] != *stored {
        return Err(StoreError::Corrupt);
    }
    Ok(Zeroizing::new(record.to_vec()))
}

fn checksum(fields: &[u8], record: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(fields);
    hash.update(record);
    hash.finalize().into()
}

fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Creates `dir` (and missing parents, 0700 on Unix) and makes it 0700.
fn create_private_dir(dir: &Path) -> Result<(), Error> {
    let io_err = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_err)?;
    #[cfg(unix)]
    restrict_existing(dir, 0o700).map_err(io_err)?;
    Ok(())
}

/// Takes group and other permissions away from `path` if it exists.
#[cfg(unix)]
fn restrict_existing(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_symlink() && meta.permissions().mode() & 0o077 != 0 => {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Flushes a directory entry change (a rename, a removal) to disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Windows offers no directory handle to flush; the rename is
        // MoveFileEx with write-through semantics in std.
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn store_in(dir: &tempfile::TempDir) -> FileStore {
        FileStore::open(dir.path().join("profile").join(FILE_NAME)).unwrap()
    }

    #[test]
    fn a_record_round_trips_and_is_replaced_and_erased() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_in(&dir);
        assert!(!store.has_record());
        assert_eq!(store.load().unwrap(), None);
        store.save(b"first record").unwrap();
        assert!(store.has_record());
        assert_eq!(store.load().unwrap().unwrap().as_slice(), b"first record");
        store.save(b"second, longer record").unwrap();
        store.save(b"").unwrap();
        assert_eq!(store.load().unwrap().unwrap().as_slice(), b"");
        store.save(&[7; 5000]).unwrap();
        drop(store);

        let mut store = store_in(&dir);
        assert_eq!(store.load().unwrap().unwrap().as_slice(), [7; 5000]);
        let on_disk = fs::read(store.path()).unwrap();
        assert_eq!(on_disk.len(), HEADER_LEN + 5000);
        assert_eq!(on_disk[..16], *b"SATSUMA\0\x00\x01\x00\x00\x00\x00\x13\x88");
        store.erase().unwrap();
        assert_eq!(store.load().unwrap(), None);
        store.erase().unwrap();
        // Only the state file's lock is left in the directory.
        let names: Vec<_> = fs::read_dir(dir.path().join("profile"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["member.state.lock"]);
    }

    #[test]
    fn a_crash_between_temp_write_and_rename_keeps_the_old_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_in(&dir);
        store.save(b"old record").unwrap();
        // The new record reaches the disk, then the process dies.
        store.write_temp(&encode(b"new record").unwrap()).unwrap();
        let temp = store.temp.clone();
        assert!(temp.exists());
        drop(store);

        let mut store = store_in(&dir);
        assert_eq!(store.load().unwrap().unwrap().as_slice(), b"old record");
        assert!(!temp.exists(), "opening cleans up after the crash");
        store.save(b"after restart").unwrap();
        assert_eq!(store.load().unwrap().unwrap().as_slice(), b"after restart");

        // A crash mid-write of the temporary file changes nothing either.
        fs::write(&temp, b"SATSUMA\0 half a hea").unwrap();
        drop(store);
        let mut store = store_in(&dir);
        assert_eq!(store.load().unwrap().unwrap().as_slice(), b"after restart");
    }

    #[test]
    fn truncated_or_damaged_files_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_in(&dir);
        store.save(b"a member's whole state").unwrap();
        let good = fs::read(store.path()).unwrap();

        let mut damaged: Vec<(String, Vec<u8>)> = (0..good.len())
            .map(|cut| (format!("truncated to {cut}"), good[..cut].to_vec()))
            .collect();
        for i in 0..good.len() {
            for bit in [0, 7] {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                damaged.push((format!("bit {bit} of byte {i}"), bad));
            }
        }
        damaged.push(("one byte more".into(), [&good[..], &[0]].concat()));
        damaged.push(("twice".into(), [&good[..], &good[..]].concat()));
        damaged.push(("zeros".into(), vec![0; good.len()]));
        let mut huge = good.clone();
        huge[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        damaged.push(("length 2^32 - 1".into(), huge));

        for (what, bytes) in damaged {
            fs::write(store.path(), &bytes).unwrap();
            assert_eq!(store.load(), Err(StoreError::Corrupt), "{what}");
        }
        // Saving again heals it.
        store.save(b"fresh").unwrap();
        assert_eq!(store.load().unwrap().unwrap().as_slice(), b"fresh");
    }

    #[test]
    fn a_record_too_large_is_full_and_the_old_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_in(&dir);
        store.save(b"small").unwrap();
        let big = vec![0; MAX_RECORD_LEN + 1];
        assert_eq!(
            store.save(&big),
            Err(StoreError::Full {
                needed: HEADER_LEN + MAX_RECORD_LEN + 1,
                capacity: HEADER_LEN + MAX_RECORD_LEN,
            })
        );
        assert_eq!(store.load().unwrap().unwrap().as_slice(), b"small");
    }

    #[test]
    fn a_second_store_on_the_same_file_is_refused_while_the_first_lives() {
        let dir = tempfile::tempdir().unwrap();
        let first = store_in(&dir);
        let path = first.path().to_path_buf();
        assert!(matches!(
            FileStore::open(&path),
            Err(Error::Locked { path: p }) if p == path
        ));
        drop(first);
        FileStore::open(&path).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_0600_and_its_directory_0700() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;

        let dir = tempfile::tempdir().unwrap();
        let mut store = store_in(&dir);
        store.save(b"secret").unwrap();
        assert_eq!(mode(store.path()), 0o600);
        assert_eq!(mode(&dir.path().join("profile")), 0o700);
        assert_eq!(
            mode(&dir.path().join("profile").join("member.state.lock")),
            0o600
        );

        // A file someone made readable is private again after the next
        // open, and every save writes a private file.
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).unwrap();
        let path = store.path().to_path_buf();
        drop(store);
        let mut store = FileStore::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        store.save(b"secret 2").unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_failing_save_is_io_and_keeps_the_old_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_in(&dir);
        store.save(b"old").unwrap();
        // Something the store cannot remove sits where the temporary file
        // goes (a directory: refused to root as well).
        fs::create_dir(&store.temp).unwrap();
        assert_eq!(store.save(b"new"), Err(StoreError::Io));
        assert!(store.last_io_error().is_some());
        assert_eq!(store.load().unwrap().unwrap().as_slice(), b"old");
        fs::remove_dir(&store.temp).unwrap();
        store.save(b"new").unwrap();
        assert_eq!(store.load().unwrap().unwrap().as_slice(), b"new");
    }

    #[test]
    fn the_data_dir_follows_xdg() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            xdg_data_dir(os("/xdg"), os("/home/ada")),
            Some(PathBuf::from("/xdg"))
        );
        assert_eq!(
            xdg_data_dir(None, os("/home/ada")),
            Some(PathBuf::from("/home/ada/.local/share"))
        );
        // Relative values are ignored, as the XDG spec says.
        assert_eq!(
            xdg_data_dir(os("relative"), os("/home/ada")),
            Some(PathBuf::from("/home/ada/.local/share"))
        );
        assert_eq!(xdg_data_dir(os(""), os("")), None);
        assert_eq!(xdg_data_dir(None, None), None);
    }

    #[test]
    fn profile_names_cannot_leave_their_directory() {
        for good in ["default", "work-2", "a.b_c", &"x".repeat(64)] {
            assert!(check_profile(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "é",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(matches!(check_profile(bad), Err(Error::Profile)), "{bad}");
            assert!(matches!(FileStore::for_profile(bad), Err(Error::Profile)));
        }
    }
}
