//! The node's side of hashing the shared folder (the thread itself is `hash_worker.rs`).
//!
//! The start-up scan and every `rescan` run on the hash worker while the reactor goes on
//! accepting, serving, heartbeating and chatting. Files are shared as they are hashed (the
//! unchanged ones, from the hash cache, as soon as the folder is listed); a file still being
//! hashed is simply not listed yet, so a `get` of it is told the peer has no such file, never
//! given wrong bytes. Progress shows as a bar (a foreground `rescan` on a terminal) or as
//! `hashing` events now and then; the `sharing` summary comes when a scan ends, as before.
//! Ctrl-C stops a `rescan` (it is the foreground command) or, with no command running, the
//! start-up hashing; the files hashed so far stay shared and cached.
//!
//! Registration with the tracker waits for the quick part of the start-up scan: the listing
//! and the files under [`BIG_FILE`](super::hashing_state::BIG_FILE) (hashed first), for at
//! most [`HOLD_MAX`]. So a peer the tracker lists already shares whatever hashes in a blink,
//! while a big file never keeps it off the tracker.

use super::event::{Event, Notice, Problem, Warning};
use super::frontend::{Progress, ProgressOf};
use super::hash_worker::{HashWorker, JobId, Report};
use super::hashing_state::{Scan, Tally};
use super::index::{SharedFile, SharedIndex, TreeShape};
use super::node::PeerNode;
use super::op::Op;
use std::time::{Duration, Instant};

/// The longest the start-up scan holds back registering with the tracker.
pub const HOLD_MAX: Duration = Duration::from_millis(500);
/// Then a `hashing` line at most this often (a person reads it), ...
const LINE_EVERY: Duration = Duration::from_secs(2);
/// ... or a JSON `hashing` event at most this often (a script reads it).
const JSON_EVERY: Duration = Duration::from_secs(1);

impl PeerNode {
    /// Takes the hash worker; with `initial`, the start-up scan starts on it now.
    pub fn start_hashing(&mut self, worker: HashWorker, initial: bool, now: Instant) {
        self.hashing.worker = Some(worker);
        if initial {
            // Held before the scan is queued: queuing takes the reports already there, and a
            // scan of a small folder may be over by then (the hold must not outlive it: it
            // did, now and then, and registering waited out the whole half second).
            self.hashing.hold_until = Some(now + HOLD_MAX);
            if self.queue_scan(false, now).is_none() {
                self.hashing.hold_until = None;
            }
        }
    }

    fn queue_scan(&mut self, rescan: bool, now: Instant) -> Option<JobId> {
        let worker = self.hashing.worker.as_mut()?;
        let cache = super::hash_cache_path(&self.cfg.downloads_dir);
        let handle = worker.scan(self.cfg.shared_dir.clone(), cache);
        let job = handle.job;
        self.hashing.scans.push_back(Scan {
            handle,
            rescan,
            started: now,
            tally: Tally::default(),
        });
        // A dead thread fails the job at once (`HashWorker::try_recv`).
        self.hashing_reports(now);
        Some(job)
    }

    /// `rescan`: the command runs until its scan ends (after any scan already running).
    pub(super) fn start_rescan(&mut self, now: Instant) {
        match self.queue_scan(true, now) {
            Some(job) => self.op = Some(Op::Rescan { job }),
            None => self.fail_op(Problem::NoHashingThread),
        }
    }

    /// Ctrl-C or a failed command while `rescan` runs: its scan stops.
    pub(super) fn cancel_scan(&mut self, job: JobId) {
        if let Some(scan) = self.hashing.scans.iter().find(|s| s.handle.job == job) {
            scan.handle.cancel();
        }
    }

    /// Ctrl-C with no command running: stops the start-up hashing, if it runs. False if there
    /// was nothing to stop.
    pub(super) fn interrupt_hashing(&mut self) -> bool {
        match self.hashing.scans.front() {
            Some(scan) if !scan.handle.is_cancelled() => {
                scan.handle.cancel();
                true
            }
            _ => false,
        }
    }

    /// The peer is leaving: no scan needs to go on.
    pub(super) fn stop_hashing(&mut self) {
        for scan in &self.hashing.scans {
            scan.handle.cancel();
        }
    }

    /// Whether a helper thread still owes this node a result (a scan on the hash worker, a
    /// disk job): the in-memory harness (`src/sim`) waits for it before moving its fake clock.
    pub fn owes_work(&self) -> bool {
        !self.hashing.scans.is_empty() || !self.disk_waiting.is_empty()
    }

    /// Whether the tracker link may act now (see the module docs); ends a hold that is over.
    pub(super) fn tracker_may_act(&mut self, now: Instant) -> bool {
        match self.hashing.hold_until {
            Some(until) if now < until => false,
            _ => {
                self.hashing.hold_until = None;
                true
            }
        }
    }

    /// Until when the tracker link is held back, if it is.
    pub(super) fn tracker_hold(&self) -> Option<Instant> {
        self.hashing.hold_until
    }

    /// After `shared`: says which files are not listed yet because they are being hashed.
    pub(super) fn note_hashing(&mut self) {
        let left: Vec<(String, u64)> = self
            .hashing
            .scans
            .iter()
            .flat_map(|s| s.tally.left.iter().cloned())
            .collect();
        if left.is_empty() {
            return;
        }
        let bytes: u64 = left.iter().map(|(_, size)| size).sum();
        let files: Vec<String> = left.into_iter().map(|(name, _)| name).collect();
        self.ui
            .event(&Event::Notice(Notice::StillHashing { files, bytes }));
    }

    /// `Control::Work`: handles every report the worker has sent.
    pub(super) fn hashing_reports(&mut self, now: Instant) {
        while let Some(report) = self.hashing.worker.as_mut().and_then(HashWorker::try_recv) {
            self.on_report(report, now);
        }
    }

    fn on_report(&mut self, report: Report, now: Instant) {
        // Every report may change what is shared: the DHT announces it (`dht_glue.rs`).
        self.dht_index_changed();
        let job = report.job();
        let Some(at) = self.hashing.scans.iter().position(|s| s.handle.job == job) else {
            return;
        };
        match report {
            Report::Listed {
                ready,
                to_hash,
                skipped,
                folders,
                ..
            } => self.scan_listed(at, ready, to_hash, skipped, folders, now),
            Report::Progress { file, done, .. } => {
                self.hashing.scans[at].tally.progress(&file, done);
                self.show_hashing(at, now);
            }
            Report::Hashed { file, .. } => self.file_hashed(at, file, now),
            Report::Skipped { file, reason, .. } => {
                self.hashing.scans[at].tally.file_done(&file, false);
                self.ui.event(&Event::Skipped { file, reason });
            }
            Report::Finished {
                cancelled,
                cache_error,
                ..
            } => self.scan_finished(at, cancelled, cache_error, now),
            Report::Failed { error, .. } => self.scan_failed(at, &error),
        }
        self.update_hold();
    }

    fn scan_listed(
        &mut self,
        at: usize,
        ready: Vec<SharedFile>,
        to_hash: Vec<(String, u64)>,
        skipped: Vec<(String, String)>,
        folders: Vec<TreeShape>,
        now: Instant,
    ) {
        let scan = &mut self.hashing.scans[at];
        scan.tally.listed(ready.len(), to_hash, now);
        let (job, total, files) = (scan.handle.job, scan.tally.total, scan.tally.left.len());
        self.index = SharedIndex::from_files(ready);
        self.index.set_folders(folders);
        for (file, reason) in skipped {
            self.ui.event(&Event::Skipped { file, reason });
        }
        if self.is_foreground(job) && total > 0 && self.ui.draws_bars() {
            let of = ProgressOf::Hashing { files };
            self.ui.progress(Progress::Start { of, total });
        }
    }

    fn file_hashed(&mut self, at: usize, file: SharedFile, now: Instant) {
        self.hashing.scans[at].tally.file_done(&file.name, true);
        self.index.insert(file);
        self.show_hashing(at, now);
    }

    fn is_foreground(&self, job: JobId) -> bool {
        matches!(self.op, Some(Op::Rescan { job: j }) if j == job)
    }

    /// Moves the bar of a foreground `rescan`, or says how far hashing is, now and then.
    fn show_hashing(&mut self, at: usize, now: Instant) {
        let json = self.ui.machine_readable();
        let scan = &mut self.hashing.scans[at];
        let (job, rescan, done) = (scan.handle.job, scan.rescan, scan.tally.done());
        if self.ui.draws_bars() && matches!(self.op, Some(Op::Rescan { job: j }) if j == job) {
            return self.ui.progress(Progress::Done(done));
        }
        let every = if json { JSON_EVERY } else { LINE_EVERY };
        let Some(file) = scan.tally.current().map(str::to_string) else {
            return;
        };
        if scan.tally.show_due(now, every) {
            let total = scan.tally.total;
            self.ui.event(&Event::Hashing {
                file,
                done,
                total,
                rescan,
            });
        }
    }

    fn scan_finished(
        &mut self,
        at: usize,
        cancelled: bool,
        cache_error: Option<String>,
        now: Instant,
    ) {
        let Some(scan) = self.hashing.scans.remove(at) else {
            return;
        };
        if self.is_foreground(scan.handle.job) {
            self.finish_op();
        }
        if let Some(e) = cache_error {
            self.ui.event(&Event::Warning(Warning::HashCache(e)));
        }
        let t = &scan.tally;
        let secs = now.duration_since(scan.started).as_secs_f64().max(1e-6);
        self.ui.event(&Event::Sharing {
            files: t.files,
            dir: self.cfg.shared_dir.display().to_string(),
            hashed: t.hashed,
            hashed_bytes: t.hashed_bytes,
            mb_per_sec: (!scan.rescan && t.hashed > 0).then(|| t.hashed_bytes as f64 / secs / 1e6),
            rescan: scan.rescan,
        });
        if cancelled && !t.left.is_empty() {
            let bytes: u64 = t.left.iter().map(|(_, size)| size).sum();
            let files = t.left.len();
            self.ui
                .event(&Event::Warning(Warning::HashingStopped { files, bytes }));
        }
    }

    fn scan_failed(&mut self, at: usize, error: &str) {
        let Some(scan) = self.hashing.scans.remove(at) else {
            return;
        };
        let error = error.to_string();
        if self.is_foreground(scan.handle.job) {
            self.fail_op(error.into());
        } else {
            self.ui
                .event(&Event::Warning(Warning::ScanFailed { error }));
        }
    }

    /// Ends the hold on the tracker once the start-up scan's quick part is done.
    fn update_hold(&mut self) {
        let startup = self.hashing.scans.iter().find(|s| !s.rescan);
        if startup.is_none_or(|s| s.tally.quick_part_done()) {
            self.hashing.hold_until = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::hashing_state::{BIG_FILE, SHOW_AFTER};

    fn files(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    #[test]
    fn tally_counts_hashed_and_skipped_files() {
        let t0 = Instant::now();
        let mut t = Tally::default();
        t.listed(2, files(&[("a", 10), ("b", 20), ("c", 30)]), t0);
        assert_eq!((t.files, t.total, t.done()), (2, 60, 0));
        assert_eq!(t.current(), Some("a"));
        t.progress("a", 4);
        assert_eq!(t.done(), 4);
        t.progress("b", 7); // not the file being hashed: ignored
        assert_eq!(t.done(), 4);
        t.file_done("a", true);
        t.file_done("b", false);
        assert_eq!(
            (t.files, t.hashed, t.hashed_bytes, t.done()),
            (3, 1, 10, 30)
        );
        assert_eq!(t.current(), Some("c"));
        t.file_done("c", true);
        t.file_done("c", true); // a repeat changes nothing
        assert_eq!(
            (t.files, t.hashed, t.hashed_bytes, t.done()),
            (4, 2, 40, 60)
        );
        assert_eq!(t.current(), None);
    }

    #[test]
    fn progress_shows_only_after_a_while_then_now_and_then() {
        let t0 = Instant::now();
        let mut t = Tally::default();
        t.listed(0, files(&[("big", 1 << 30)]), t0);
        let every = Duration::from_secs(2);
        assert!(!t.show_due(t0, every), "a quick scan prints no progress");
        assert!(!t.show_due(t0 + SHOW_AFTER / 2, every));
        assert!(t.show_due(t0 + SHOW_AFTER, every));
        assert!(!t.show_due(t0 + SHOW_AFTER + every / 2, every));
        assert!(t.show_due(t0 + SHOW_AFTER + every, every));
        let mut nothing = Tally::default();
        nothing.listed(3, Vec::new(), t0);
        assert!(!nothing.show_due(t0 + Duration::from_secs(60), every));
    }

    #[test]
    fn the_quick_part_ends_before_the_first_big_file() {
        let t0 = Instant::now();
        let mut t = Tally::default();
        assert!(!t.quick_part_done(), "not listed yet");
        t.listed(0, files(&[("small", 1), ("big", BIG_FILE)]), t0);
        assert!(!t.quick_part_done());
        t.file_done("small", true);
        assert!(t.quick_part_done(), "only a big file is left");
        t.file_done("big", true);
        assert!(!t.quick_part_done(), "the scan's end ends the hold");
    }
}
