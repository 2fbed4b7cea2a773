//! The node's hashing state (`Hashing`: the hash worker and the scans handed to it) and each
//! scan's bookkeeping (`Tally`). Plain values: the node's side of hashing is `hashing.rs`.

use super::hash_worker::{HashWorker, ScanHandle};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Files this big are hashed after registering (about 0.1-0.2 s of hashing each).
pub const BIG_FILE: u64 = 64 * 1024 * 1024;
/// Progress is shown once hashing has gone on this long: a quick scan prints no progress.
pub(super) const SHOW_AFTER: Duration = Duration::from_secs(1);

/// The hash worker and the scans handed to it.
#[derive(Default)]
pub struct Hashing {
    pub(super) worker: Option<HashWorker>,
    /// Scans handed to the worker, oldest first: the worker runs them in this order, so the
    /// front one is running and the others wait.
    pub(super) scans: VecDeque<Scan>,
    /// Registering with the tracker waits until then, or until the start-up scan's quick part
    /// is done, whichever comes first.
    pub(super) hold_until: Option<Instant>,
}

pub(super) struct Scan {
    pub(super) handle: ScanHandle,
    /// A `rescan` (the foreground command while its op runs), not the start-up scan.
    pub(super) rescan: bool,
    pub(super) started: Instant,
    pub(super) tally: Tally,
}

/// How far one scan has got, from its reports. Pure bookkeeping.
#[derive(Debug, Default)]
pub struct Tally {
    pub listed: bool,
    /// Files this scan shares so far (from the cache, then hashed).
    pub files: usize,
    pub hashed: usize,
    pub hashed_bytes: u64,
    /// Bytes this scan has to hash in all.
    pub total: u64,
    /// Files still to hash (name, size), in the worker's order: the front one is being read.
    pub left: VecDeque<(String, u64)>,
    /// Bytes of the files already done (hashed or skipped).
    finished_bytes: u64,
    /// Bytes of the front file of `left` read so far.
    current_done: u64,
    hashing_since: Option<Instant>,
    last_shown: Option<Instant>,
}

impl Tally {
    pub fn listed(&mut self, ready: usize, to_hash: Vec<(String, u64)>, now: Instant) {
        self.listed = true;
        self.files = ready;
        self.total = to_hash.iter().map(|(_, size)| size).sum();
        self.left = to_hash.into();
        if !self.left.is_empty() {
            self.hashing_since = Some(now);
        }
    }

    /// `done` bytes of `file` are hashed.
    pub fn progress(&mut self, file: &str, done: u64) {
        if self.left.front().is_some_and(|(name, _)| name == file) {
            self.current_done = done;
        }
    }

    /// `file` is done: hashed (and shared) when `hashed`, else skipped.
    pub fn file_done(&mut self, file: &str, hashed: bool) {
        let Some(at) = self.left.iter().position(|(name, _)| name == file) else {
            return;
        };
        let Some((_, size)) = self.left.remove(at) else {
            return;
        };
        self.finished_bytes += size;
        self.current_done = 0;
        if hashed {
            self.files += 1;
            self.hashed += 1;
            self.hashed_bytes += size;
        }
    }

    /// Bytes hashed so far, of [`Self::total`].
    pub fn done(&self) -> u64 {
        (self.finished_bytes + self.current_done).min(self.total)
    }

    /// The file being hashed now.
    pub fn current(&self) -> Option<&str> {
        self.left.front().map(|(name, _)| name.as_str())
    }

    /// The quick part is over: listed, and only big files are left to hash. (With nothing
    /// left the scan is still saving the cache; its end, a moment later, ends the hold.)
    pub fn quick_part_done(&self) -> bool {
        self.listed && self.left.front().is_some_and(|(_, size)| *size >= BIG_FILE)
    }

    /// Whether to show progress now (and, if so, note that it was shown): not during the
    /// first [`SHOW_AFTER`] of hashing, then at most once per `every`.
    pub fn show_due(&mut self, now: Instant, every: Duration) -> bool {
        let started = self
            .hashing_since
            .is_some_and(|since| now >= since + SHOW_AFTER);
        let due = started && self.last_shown.is_none_or(|last| now >= last + every);
        if due {
            self.last_shown = Some(now);
        }
        due
    }
}
