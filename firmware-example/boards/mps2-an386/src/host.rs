//! What the firmware asks of the machine running QEMU, over semihosting
//! (`-semihosting-config enable=on,target=native`): random bytes to seed
//! from, the command line the run was given, and files ([`HostFile`]).
//!
//! A real board seeds from its hardware RNG instead; this board has none,
//! and the host's `/dev/urandom` is the next best thing.

use core::fmt;

use cortex_m_semihosting::{nr, syscall, syscall1};
use zeroize::Zeroize;

use crate::error::{Error, HostError};

/// Bytes of a [`Seed`].
pub const SEED_LEN: usize = 32;

/// 32 random bytes from the host. Zeroed when dropped; `Debug` does not
/// show them.
pub struct Seed([u8; SEED_LEN]);

impl Seed {
    /// The bytes.
    #[must_use]
    pub fn expose(&self) -> &[u8; SEED_LEN] {
        &self.0
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(..)")
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Reads [`SEED_LEN`] bytes from the host's `/dev/urandom` (SYS_OPEN,
/// SYS_READ, SYS_CLOSE).
pub fn seed() -> Result<Seed, Error> {
    const PATH: &[u8] = b"/dev/urandom\0";
    let open = [
        PATH.as_ptr().expose_provenance(),
        nr::open::R_BINARY,
        PATH.len() - 1,
    ];
    // SAFETY: SYS_OPEN reads the NUL-terminated path (its length without
    // the NUL in the third word) and the mode; `PATH` is static.
    let handle = unsafe { syscall(nr::OPEN, &open) };
    if handle == usize::MAX {
        return Err(HostError::Open.into());
    }
    let mut seed = Seed([0; SEED_LEN]);
    let mut filled = 0;
    // The host may return fewer bytes than asked; a few reads at most.
    for _ in 0..4 {
        let rest = seed.0.get_mut(filled..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        let read = [handle, rest.as_mut_ptr().expose_provenance(), rest.len()];
        // SAFETY: SYS_READ writes at most `rest.len()` bytes at `rest`,
        // which is borrowed mutably for the call, and returns how many it
        // did not write (all of them at end of file, -1 on an error).
        let unread = unsafe { syscall(nr::READ, &read) };
        if unread >= rest.len() {
            break;
        }
        filled += rest.len() - unread;
    }
    // SAFETY: SYS_CLOSE takes the handle SYS_OPEN gave, once.
    unsafe { syscall(nr::CLOSE, &[handle]) };
    match SEED_LEN - filled {
        0 => Ok(seed),
        missing => Err(HostError::Read { missing }.into()),
    }
}

/// The run's command line (SYS_GET_CMDLINE), read into `buf`: for QEMU,
/// the `arg=` values of `-semihosting-config` joined by spaces.
pub fn command_line(buf: &mut [u8]) -> Result<&str, Error> {
    let mut block = [buf.as_mut_ptr().expose_provenance(), buf.len()];
    // SAFETY: SYS_GET_CMDLINE writes the command line and a NUL into the
    // buffer the block's first word points to, at most the block's second
    // word of bytes, and the length it wrote (without the NUL) into that
    // second word. The buffer and the block are borrowed mutably for the
    // call.
    let status = unsafe { syscall1(nr::GET_CMDLINE, block.as_mut_ptr().expose_provenance()) };
    if status != 0 {
        return Err(HostError::CommandLine.into());
    }
    let line = buf.get(..block[1]).ok_or(HostError::CommandLine)?;
    core::str::from_utf8(line).map_err(|_| HostError::NotUtf8.into())
}

/// A file on the host, open over semihosting; closed when dropped.
#[derive(Debug)]
pub struct HostFile(usize);

/// The longest path [`HostFile::open`] takes.
pub const PATH_MAX: usize = 128;

impl HostFile {
    /// Opens `path` (relative to QEMU's working directory) to read, or
    /// to write (created or truncated).
    ///
    /// # Errors
    /// [`HostError::Open`] when the path is too long or the host refuses.
    pub fn open(path: &str, write: bool) -> Result<Self, Error> {
        let mut name = [0u8; PATH_MAX + 1];
        let bytes = path.as_bytes();
        if bytes.len() > PATH_MAX || bytes.contains(&0) {
            return Err(HostError::Open.into());
        }
        if let Some(to) = name.get_mut(..bytes.len()) {
            to.copy_from_slice(bytes);
        }
        let mode = if write {
            nr::open::W_TRUNC_BINARY
        } else {
            nr::open::R_BINARY
        };
        let open = [name.as_ptr().expose_provenance(), mode, bytes.len()];
        // SAFETY: SYS_OPEN reads the NUL-terminated name (its length
        // without the NUL in the third word), which `name` holds for the
        // call, and the mode.
        let handle = unsafe { syscall(nr::OPEN, &open) };
        if handle == usize::MAX {
            return Err(HostError::Open.into());
        }
        Ok(Self(handle))
    }

    /// Reads into `buf`; how many bytes came (0 at the end of the file).
    ///
    /// # Errors
    /// [`HostError::Read`] when the host's read fails.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let read = [self.0, buf.as_mut_ptr().expose_provenance(), buf.len()];
        // SAFETY: SYS_READ writes at most `buf.len()` bytes at `buf`, which
        // is borrowed mutably for the call, and returns how many it did not
        // write (-1 on an error).
        let unread = unsafe { syscall(nr::READ, &read) };
        if unread > buf.len() {
            return Err(HostError::Read { missing: buf.len() }.into());
        }
        Ok(buf.len() - unread)
    }

    /// Writes all of `bytes`.
    ///
    /// # Errors
    /// [`HostError::Write`] when the host wrote fewer.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let write = [self.0, bytes.as_ptr().expose_provenance(), bytes.len()];
        // SAFETY: SYS_WRITE reads `bytes.len()` bytes at `bytes`, borrowed
        // for the call, and returns how many it did not write.
        let unwritten = unsafe { syscall(nr::WRITE, &write) };
        if unwritten != 0 {
            return Err(HostError::Write.into());
        }
        Ok(())
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        // SAFETY: SYS_CLOSE takes the handle SYS_OPEN gave, once.
        unsafe { syscall(nr::CLOSE, &[self.0]) };
    }
}
