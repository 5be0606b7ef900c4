//! Which blocks a piece of work holds: while [`measure_blocks`] runs, the
//! allocator keeps a table of the blocks allocated and not yet freed, and
//! the largest of them at the heap's peak and at the end are a clue to what
//! takes the space.
//!
//! [`measure_blocks`]: crate::measure_blocks

use spin::Mutex;

/// How many of the largest blocks [`Snapshot`] lists.
pub const TOP: usize = 6;

/// Live blocks the table can follow at once.
const MAX_TRACKED: usize = 4096;

/// Blocks a piece of work allocated and had not freed: how many, their
/// bytes, and the sizes of the largest.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Blocks live.
    pub count: usize,
    /// Their bytes, as requested.
    pub bytes: usize,
    /// The largest sizes, largest first; zeros when fewer.
    pub top: [usize; TOP],
}

/// What [`measure_blocks`](crate::measure_blocks) saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Blocks {
    /// At the moment the heap peaked.
    pub at_peak: Snapshot,
    /// When the work ended: what it kept.
    pub kept: Snapshot,
    /// More blocks were live than the table holds: the lists miss some.
    pub incomplete: bool,
}

/// The table of live blocks.
pub(crate) struct Tracker {
    on: bool,
    live: [(usize, usize); MAX_TRACKED],
    len: usize,
    peak_used: usize,
    at_peak: Snapshot,
    incomplete: bool,
}

/// The one table, off until [`Tracker::start`].
pub(crate) static TRACKER: Mutex<Tracker> = Mutex::new(Tracker {
    on: false,
    live: [(0, 0); MAX_TRACKED],
    len: 0,
    peak_used: 0,
    at_peak: Snapshot {
        count: 0,
        bytes: 0,
        top: [0; TOP],
    },
    incomplete: false,
});

impl Tracker {
    /// Follows blocks from now on, with `used` bytes in use already.
    pub(crate) fn start(&mut self, used: usize) {
        self.on = true;
        self.len = 0;
        self.incomplete = false;
        self.peak_used = used;
        self.at_peak = Snapshot::default();
    }

    /// Stops following blocks and says what it saw.
    pub(crate) fn finish(&mut self) -> Blocks {
        self.on = false;
        Blocks {
            at_peak: self.at_peak,
            kept: self.snapshot(),
            incomplete: self.incomplete,
        }
    }

    /// A block of `size` bytes at `at` was allocated; `used` bytes are in
    /// use now.
    pub(crate) fn allocated(&mut self, at: usize, size: usize, used: usize) {
        if !self.on {
            return;
        }
        match self.live.get_mut(self.len) {
            Some(slot) => {
                *slot = (at, size);
                self.len += 1;
            }
            None => self.incomplete = true,
        }
        if used > self.peak_used {
            self.peak_used = used;
            self.at_peak = self.snapshot();
        }
    }

    /// The block at `at` was freed.
    pub(crate) fn freed(&mut self, at: usize) {
        if !self.on {
            return;
        }
        if let Some(i) = self.live[..self.len].iter().position(|(a, _)| *a == at) {
            self.len -= 1;
            self.live.swap(i, self.len);
        }
    }

    fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot {
            count: self.len,
            ..Snapshot::default()
        };
        for &(_, size) in &self.live[..self.len] {
            snapshot.bytes += size;
            if let Some(i) = snapshot.top.iter().position(|t| size > *t) {
                snapshot.top.copy_within(i..TOP - 1, i + 1);
                snapshot.top[i] = size;
            }
        }
        snapshot
    }
}
