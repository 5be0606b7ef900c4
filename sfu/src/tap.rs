//! An optional record of every payload the SFU handled, for audits and for
//! the test that proves the SFU never sees plaintext.
//!
//! Each record is a 4-byte big-endian length and the bytes: every
//! signalling message as it arrived, every RTP payload after SRTP was
//! removed, every `wire::Media` payload. Off unless `debug.capture` is set.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::sync::Mutex;

/// Where handled payloads are recorded, if anywhere.
#[derive(Debug, Default)]
pub struct Tap {
    file: Option<Mutex<BufWriter<File>>>,
}

impl Tap {
    /// A tap that records nothing.
    #[must_use]
    pub fn off() -> Self {
        Self { file: None }
    }

    /// A tap that records into a new file at `path`.
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn to_file(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            file: Some(Mutex::new(BufWriter::new(File::create(path)?))),
        })
    }

    /// Records `bytes`. A failing write turns the tap off quietly: the
    /// record is a debugging aid and never stops forwarding.
    pub fn record(&self, bytes: &[u8]) {
        let Some(file) = &self.file else { return };
        let Ok(mut w) = file.lock() else { return };
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes();
        let _ = w.write_all(&len).and_then(|()| w.write_all(bytes));
    }

    /// Writes buffered records out.
    pub fn flush(&self) {
        if let Some(file) = &self.file
            && let Ok(mut w) = file.lock()
        {
            let _ = w.flush();
        }
    }
}
