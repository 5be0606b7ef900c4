//! `defmt`'s global logger on this board: frames go to the host over
//! semihosting, on QEMU's standard error, where `defmt-print` decodes them
//! against the ELF (`scripts/run-intercom-qemu.sh`).
//!
//! Standard error, not output: the panic and fault reports ([`crate::Stop`])
//! and the binaries that print text (`mls-roundtrip`, `portable-tests`)
//! keep standard output, so text never lands inside the binary stream a
//! decoder reads. Each frame is gathered in a buffer and written with one
//! semihosting call per [`BUFFER`] bytes: a call is a trap into QEMU.
//!
//! Log lines carry the milliseconds since power-on (`embassy-time`).
//!
//! Nothing here panics: a frame that cannot be written (no host handle) is
//! dropped, and a frame begun while another is open (a fault handler
//! logging in the middle of a log line) is dropped whole.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m_semihosting::{nr, syscall};

/// Bytes gathered before one semihosting write.
const BUFFER: usize = 128;

defmt::timestamp!("{=u64:ms}", embassy_time::Instant::now().as_millis());

#[defmt::global_logger]
struct Logger;

/// The logger's state, touched only between `acquire` and `release`,
/// which hold a critical section.
struct State {
    restore: critical_section::RestoreState,
    encoder: defmt::Encoder,
    /// QEMU's standard error, once opened (`None`: not yet; `Some(None)`:
    /// the host refused).
    handle: Option<Option<usize>>,
    buffer: [u8; BUFFER],
    filled: usize,
    /// Frames begun while another was open, and dropped.
    nested: u8,
}

struct Shared {
    taken: AtomicBool,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only reached inside the critical section `acquire`
// takes and `release` gives back, on a single-core processor.
unsafe impl Sync for Shared {}

static SHARED: Shared = Shared {
    taken: AtomicBool::new(false),
    state: UnsafeCell::new(State {
        restore: critical_section::RestoreState::invalid(),
        encoder: defmt::Encoder::new(),
        handle: None,
        buffer: [0; BUFFER],
        filled: 0,
        nested: 0,
    }),
};

impl State {
    /// Opens `:tt` for appending: QEMU's standard error (SYS_OPEN, mode 8).
    fn handle(&mut self) -> Option<usize> {
        *self.handle.get_or_insert_with(|| {
            const TT: &[u8] = b":tt\0";
            let open = [
                TT.as_ptr().expose_provenance(),
                nr::open::W_APPEND,
                TT.len() - 1,
            ];
            // SAFETY: SYS_OPEN reads the NUL-terminated name (its length
            // without the NUL in the third word) and the mode; `TT` is
            // static.
            let handle = unsafe { syscall(nr::OPEN, &open) };
            (handle != usize::MAX).then_some(handle)
        })
    }

    fn flush(&mut self) {
        let filled = core::mem::take(&mut self.filled);
        let Some(handle) = self.handle() else { return };
        let Some(bytes) = self.buffer.get(..filled) else {
            return;
        };
        let write = [handle, bytes.as_ptr().expose_provenance(), bytes.len()];
        // SAFETY: SYS_WRITE reads `bytes.len()` bytes at `bytes`, which is
        // borrowed for the call; what it could not write is lost, as a log
        // line may be.
        unsafe { syscall(nr::WRITE, &write) };
    }

    fn put(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let space = BUFFER - self.filled;
            let n = space.min(bytes.len());
            let (now, rest) = bytes.split_at(n);
            if let Some(to) = self.buffer.get_mut(self.filled..self.filled + n) {
                to.copy_from_slice(now);
            }
            self.filled += n;
            bytes = rest;
            if self.filled == BUFFER {
                self.flush();
            }
        }
    }
}

/// Runs `f` on the encoder, writing what it emits into the buffer.
///
/// # Safety
///
/// Only between `acquire` and `release`.
unsafe fn with_encoder(f: impl FnOnce(&mut defmt::Encoder, &mut dyn FnMut(&[u8]))) {
    // SAFETY: the caller holds the critical section (see `Shared`).
    let state = unsafe { &mut *SHARED.state.get() };
    if state.nested > 0 {
        return;
    }
    let mut encoder = core::mem::replace(&mut state.encoder, defmt::Encoder::new());
    f(&mut encoder, &mut |bytes| state.put(bytes));
    state.encoder = encoder;
}

// SAFETY: `acquire`/`release` hold a critical section between them, so
// frames are written whole and in order.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        // SAFETY: paired with the `release` below (defmt calls them in
        // pairs).
        let restore = unsafe { critical_section::acquire() };
        // SAFETY: inside the critical section just taken.
        let state = unsafe { &mut *SHARED.state.get() };
        if SHARED.taken.swap(true, Ordering::Relaxed) {
            // Re-entered (a fault handler logging mid-line): this frame is
            // dropped; the open one goes on once it is released.
            state.nested = state.nested.saturating_add(1);
            // SAFETY: the nested section is given back at once; the outer
            // one stays held by the frame that is open.
            unsafe { critical_section::release(restore) };
            return;
        }
        state.restore = restore;
        // SAFETY: the critical section is held.
        unsafe { with_encoder(|encoder, put| encoder.start_frame(put)) };
    }

    unsafe fn flush() {
        // SAFETY: defmt calls `flush` between `acquire` and `release`.
        let state = unsafe { &mut *SHARED.state.get() };
        state.flush();
    }

    unsafe fn release() {
        // SAFETY: defmt calls `release` after `acquire`.
        let state = unsafe { &mut *SHARED.state.get() };
        if state.nested > 0 {
            state.nested -= 1;
            return;
        }
        // SAFETY: the critical section is held.
        unsafe { with_encoder(|encoder, put| encoder.end_frame(put)) };
        state.flush();
        let restore = state.restore;
        SHARED.taken.store(false, Ordering::Relaxed);
        // SAFETY: paired with the `acquire` that opened this frame.
        unsafe { critical_section::release(restore) };
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: defmt calls `write` between `acquire` and `release`.
        unsafe { with_encoder(|encoder, put| encoder.write(bytes, put)) };
    }
}
