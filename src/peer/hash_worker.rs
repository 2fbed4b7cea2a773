//! Scanning and hashing the shared folder on a thread of its own.
//!
//! Hashing a big file takes seconds (about 0.3-0.7 s per GiB here): done on the reactor's
//! thread it froze the peer, so handshakes timed out, heartbeats stopped and the tracker
//! expired us. The reactor hands a [`HashWorker`] scan jobs; the worker thread runs them one
//! after the other and sends [`Report`]s back over a channel, calling a `notify` function
//! (which wakes the reactor, like a line from stdin) whenever reports are waiting. The node
//! drains them with [`HashWorker::try_recv`] and shares each file as soon as it is hashed.
//!
//! A scan reports, in order: `Listed` (the folder listed and the cache read: unchanged files
//! are ready at once), then for each file to hash some `Progress` and one `Hashed` or
//! `Skipped`, then `Finished`; or `Failed` alone if the folder cannot be listed. A cancelled
//! scan stops within one chunk read and still ends with `Finished { cancelled: true }`, having
//! saved what it hashed in the cache, so the next scan does not hash those files again.

use super::index::{
    Candidate, SharedFile, TreeShape, Unhashed, hash_candidate, plan_scan, save_cache,
};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::{Duration, Instant};

/// A scan's number, unique within one worker.
pub type JobId = u64;

/// `Progress` reports come at most this often (per file, plus one when a file starts).
pub const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// During a long scan the cache is saved again after a file once this much time has passed
/// since the last save, and before a file this big is hashed (if anything is unsaved), so
/// quitting in the middle loses little more than the file being hashed.
const SAVE_EVERY: Duration = Duration::from_secs(1);
const SAVE_BEFORE: u64 = 64 * 1024 * 1024;

/// What a scan job tells the node.
#[derive(Debug)]
pub enum Report {
    /// The folder was listed: `ready` came from the cache (share them now), `to_hash` (name,
    /// size) are hashed next in this order, `skipped` (name, reason) are not shared.
    Listed {
        job: JobId,
        ready: Vec<SharedFile>,
        to_hash: Vec<(String, u64)>,
        skipped: Vec<(String, String)>,
        /// The folders shared as trees (`SharedIndex::set_folders`).
        folders: Vec<TreeShape>,
    },
    /// `done` of the `size` bytes of `file` are hashed (0 when it starts).
    Progress {
        job: JobId,
        file: String,
        done: u64,
        size: u64,
    },
    /// A file was hashed: share it.
    Hashed { job: JobId, file: SharedFile },
    /// A file to hash is not shared after all (it changed while being read, cannot be read...).
    Skipped {
        job: JobId,
        file: String,
        reason: String,
    },
    /// The scan is over, completed or `cancelled`; `cache_error` if the cache could not be
    /// saved.
    Finished {
        job: JobId,
        cancelled: bool,
        cache_error: Option<String>,
    },
    /// The folder itself could not be listed; nothing else comes for this job.
    Failed { job: JobId, error: String },
}

impl Report {
    pub fn job(&self) -> JobId {
        match self {
            Report::Listed { job, .. }
            | Report::Progress { job, .. }
            | Report::Hashed { job, .. }
            | Report::Skipped { job, .. }
            | Report::Finished { job, .. }
            | Report::Failed { job, .. } => *job,
        }
    }
}

/// A scan handed to the worker; [`ScanHandle::cancel`] stops it.
#[derive(Clone, Debug)]
pub struct ScanHandle {
    pub job: JobId,
    cancel: Arc<AtomicBool>,
}

impl ScanHandle {
    /// Stops the scan at its next chunk read (or before it starts, if it waits behind another).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }
}

struct Job {
    id: JobId,
    dir: PathBuf,
    cache: PathBuf,
    cancel: Arc<AtomicBool>,
}

/// The reactor's side of the hashing thread. Dropping it lets the thread end after its
/// current job (cancel that first for a prompt end); the thread is not waited for.
pub struct HashWorker {
    jobs: Sender<Job>,
    reports: Receiver<Report>,
    /// Set by the thread before it calls `notify`, cleared by `try_recv`: one wake-up per
    /// batch of reports, not one per report.
    unread: Arc<AtomicBool>,
    next_job: JobId,
    /// Jobs handed over whose last report (`Finished` or `Failed`) has not been read yet: if
    /// the thread dies, each still gets a `Failed`, so nothing waits for it for ever.
    open_jobs: BTreeSet<JobId>,
}

impl HashWorker {
    /// Starts the thread. `notify` is called (on the worker thread) when reports are waiting
    /// and none were waiting before.
    pub fn spawn(notify: impl Fn() + Send + 'static) -> std::io::Result<HashWorker> {
        HashWorker::with_progress_every(notify, PROGRESS_EVERY)
    }

    /// [`Self::spawn`] with another interval between `Progress` reports (tests use zero).
    pub fn with_progress_every(
        notify: impl Fn() + Send + 'static,
        progress_every: Duration,
    ) -> std::io::Result<HashWorker> {
        let (jobs, job_rx) = channel::<Job>();
        let (report_tx, reports) = channel();
        let unread = Arc::new(AtomicBool::new(false));
        let outbox = Outbox {
            tx: report_tx,
            unread: Arc::clone(&unread),
            notify: Box::new(notify),
        };
        std::thread::Builder::new()
            .name("hash-worker".into())
            .spawn(move || {
                for job in job_rx {
                    run_scan(&job, &outbox, progress_every);
                }
            })?;
        Ok(HashWorker {
            jobs,
            reports,
            unread,
            next_job: 1,
            open_jobs: BTreeSet::new(),
        })
    }

    /// Queues a scan of `dir` with the hash cache at `cache`; it starts when the scans queued
    /// before it have ended.
    pub fn scan(&mut self, dir: PathBuf, cache: PathBuf) -> ScanHandle {
        let id = self.next_job;
        self.next_job += 1;
        let cancel = Arc::new(AtomicBool::new(false));
        let job = Job {
            id,
            dir,
            cache,
            cancel: Arc::clone(&cancel),
        };
        self.open_jobs.insert(id);
        // If the thread is gone the job stays open and `try_recv` fails it.
        let _ = self.jobs.send(job);
        ScanHandle { job: id, cancel }
    }

    /// The next waiting report, if any.
    pub fn try_recv(&mut self) -> Option<Report> {
        self.unread.store(false, Ordering::Release);
        match self.reports.try_recv() {
            Ok(report) => {
                if matches!(report, Report::Finished { .. } | Report::Failed { .. }) {
                    self.open_jobs.remove(&report.job());
                }
                Some(report)
            }
            Err(TryRecvError::Empty) => None,
            // The thread died (a bug: it panicked) after sending everything read so far.
            Err(TryRecvError::Disconnected) => {
                let job = self.open_jobs.pop_first()?;
                let error = "the hashing thread has stopped".to_string();
                Some(Report::Failed { job, error })
            }
        }
    }
}

/// The thread's side of the report channel.
struct Outbox {
    tx: Sender<Report>,
    unread: Arc<AtomicBool>,
    notify: Box<dyn Fn() + Send>,
}

impl Drop for Outbox {
    /// The thread ends (or dies): the node drains the channel and learns of it.
    fn drop(&mut self) {
        // The sender must be gone before the node looks, or it sees an empty, open channel.
        let (closed, _) = channel();
        drop(std::mem::replace(&mut self.tx, closed));
        (self.notify)();
    }
}

impl Outbox {
    fn send(&self, report: Report) {
        if self.tx.send(report).is_err() {
            return; // the node is gone; the thread ends with its job queue
        }
        if !self.unread.swap(true, Ordering::AcqRel) {
            (self.notify)();
        }
    }
}

/// One scan job, start to end (see the module docs for the reports it sends).
fn run_scan(job: &Job, out: &Outbox, progress_every: Duration) {
    if job.cancel.load(Ordering::Acquire) {
        // Cancelled while it waited behind another scan: it changes nothing.
        return out.send(Report::Finished {
            job: job.id,
            cancelled: true,
            cache_error: None,
        });
    }
    let plan = match plan_scan(&job.dir, &job.cache) {
        Ok(plan) => plan,
        Err(e) => {
            let error = format!("cannot scan {}: {e}", job.dir.display());
            return out.send(Report::Failed { job: job.id, error });
        }
    };
    let mut files = plan.ready.clone();
    out.send(Report::Listed {
        job: job.id,
        ready: plan.ready,
        to_hash: plan
            .to_hash
            .iter()
            .map(|c| (c.name().to_string(), c.size()))
            .collect(),
        skipped: plan.skipped,
        folders: plan.folders,
    });
    let mut hashed_any = false;
    let mut unsaved = false;
    let mut last_save = Instant::now();
    let mut stopped = false;
    for c in plan.to_hash {
        if stopped {
            break;
        }
        if unsaved && (c.size() >= SAVE_BEFORE || last_save.elapsed() >= SAVE_EVERY) {
            // Failures are reported once, by the final save.
            let _ = save_cache(&job.cache, &files, true);
            (unsaved, last_save) = (false, Instant::now());
        }
        let name = c.name().to_string();
        match hash_reporting(job, c, out, progress_every) {
            Ok(file) => {
                (hashed_any, unsaved) = (true, true);
                files.push(file.clone());
                out.send(Report::Hashed { job: job.id, file });
            }
            Err(Unhashed::Skip(reason)) => out.send(Report::Skipped {
                job: job.id,
                file: name,
                reason,
            }),
            Err(Unhashed::Stopped) => stopped = true,
        }
    }
    let cache_error = save_cache(&job.cache, &files, hashed_any);
    out.send(Report::Finished {
        job: job.id,
        cancelled: stopped,
        cache_error,
    });
}

/// Hashes one file, sending `Progress` reports now and then; stops if the job is cancelled.
fn hash_reporting(
    job: &Job,
    c: Candidate,
    out: &Outbox,
    progress_every: Duration,
) -> Result<SharedFile, Unhashed> {
    let (name, size) = (c.name().to_string(), c.size());
    let mut last_report: Option<Instant> = None;
    hash_candidate(c, |done| {
        if job.cancel.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        if last_report.is_none_or(|t| now >= t + progress_every) && done < size {
            last_report = Some(now);
            out.send(Report::Progress {
                job: job.id,
                file: name.clone(),
                done,
                size,
            });
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::index::SharedIndex;
    use std::fs;
    use std::sync::mpsc::RecvTimeoutError;

    /// Bounds every wait for a report.
    const WAIT: Duration = Duration::from_secs(20);

    struct Fixture {
        _tmp: tempfile::TempDir,
        shared: PathBuf,
        cache: PathBuf,
        worker: HashWorker,
        wakes: Receiver<()>,
    }

    fn fixture(progress_every: Duration) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        fs::create_dir(&shared).unwrap();
        let cache = tmp.path().join("state").join("hash-cache.cbor");
        let (wake_tx, wakes) = channel();
        let worker = HashWorker::with_progress_every(
            move || {
                let _ = wake_tx.send(());
            },
            progress_every,
        )
        .unwrap();
        Fixture {
            _tmp: tmp,
            shared,
            cache,
            worker,
            wakes,
        }
    }

    impl Fixture {
        fn scan(&mut self) -> ScanHandle {
            self.worker.scan(self.shared.clone(), self.cache.clone())
        }

        /// The next report, waiting (bounded) for a wake-up when none is there.
        fn next(&mut self) -> Report {
            let deadline = Instant::now() + WAIT;
            loop {
                if let Some(r) = self.worker.try_recv() {
                    return r;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                match self.wakes.recv_timeout(left) {
                    Ok(()) => {}
                    Err(RecvTimeoutError::Timeout) => panic!("no report within {WAIT:?}"),
                    Err(RecvTimeoutError::Disconnected) => panic!("the worker is gone"),
                }
            }
        }

        /// Reports up to and including `Finished` (or `Failed`), progress left out.
        fn until_end(&mut self) -> Vec<Report> {
            let mut out = Vec::new();
            loop {
                let r = self.next();
                let end = matches!(r, Report::Finished { .. } | Report::Failed { .. });
                if !matches!(r, Report::Progress { .. }) {
                    out.push(r);
                }
                if end {
                    return out;
                }
            }
        }
    }

    fn listed(r: &Report) -> (Vec<String>, Vec<(String, u64)>) {
        match r {
            Report::Listed { ready, to_hash, .. } => (
                ready.iter().map(|f| f.name.clone()).collect(),
                to_hash.clone(),
            ),
            other => panic!("expected Listed, got {other:?}"),
        }
    }

    #[test]
    fn a_scan_shares_cached_files_at_once_and_hashes_the_rest_smallest_first() {
        let mut fx = fixture(PROGRESS_EVERY);
        fs::write(fx.shared.join("b-big"), vec![7u8; 600_000]).unwrap();
        fs::write(fx.shared.join("a-small"), b"small").unwrap();
        fs::write(fx.shared.join(".hidden"), b"h").unwrap();
        let job = fx.scan().job;
        let reports = fx.until_end();
        assert!(reports.iter().all(|r| r.job() == job));
        let (ready, to_hash) = listed(&reports[0]);
        assert!(ready.is_empty());
        assert_eq!(
            to_hash,
            [("a-small".to_string(), 5), ("b-big".to_string(), 600_000)]
        );
        let Report::Listed { skipped, .. } = &reports[0] else {
            unreachable!()
        };
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        let hashed: Vec<&SharedFile> = reports
            .iter()
            .filter_map(|r| match r {
                Report::Hashed { file, .. } => Some(file),
                _ => None,
            })
            .collect();
        let (want, _) = SharedIndex::scan(&fx.shared, &fx.cache).unwrap();
        assert_eq!(hashed.len(), 2);
        for f in hashed {
            assert_eq!(Some(f), want.by_name(&f.name), "{}", f.name);
        }
        assert!(matches!(
            reports.last(),
            Some(Report::Finished {
                cancelled: false,
                cache_error: None,
                ..
            })
        ));

        // Nothing changed: everything is ready from the cache, nothing is hashed.
        fx.scan();
        let reports = fx.until_end();
        let (ready, to_hash) = listed(&reports[0]);
        assert_eq!(ready, ["a-small", "b-big"]);
        assert!(to_hash.is_empty());
        assert_eq!(reports.len(), 2, "{reports:?}");
    }

    #[test]
    fn progress_comes_while_a_file_is_read() {
        let mut fx = fixture(Duration::ZERO);
        let size = 3 * 1024 * 1024 + 5;
        fs::write(fx.shared.join("f"), vec![1u8; size]).unwrap();
        fx.scan();
        let mut seen = Vec::new();
        loop {
            match fx.next() {
                Report::Progress {
                    file, done, size, ..
                } => {
                    assert_eq!(file, "f");
                    assert!(done < size);
                    seen.push(done);
                }
                Report::Finished { .. } => break,
                _ => {}
            }
        }
        assert!(seen.len() >= 2, "{seen:?}");
        assert_eq!(seen[0], 0, "the first says the file starts");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    }

    #[test]
    fn cancel_stops_within_a_file_and_keeps_what_was_hashed() {
        let mut fx = fixture(Duration::ZERO);
        fs::write(fx.shared.join("small"), b"small file").unwrap();
        // Sparse: reads as zeros, hashes as slowly as data, costs no disk.
        let big = fs::File::create(fx.shared.join("big")).unwrap();
        big.set_len(1 << 30).unwrap();
        let handle = fx.scan();
        let mut hashed = Vec::new();
        let end = loop {
            match fx.next() {
                Report::Progress { file, done, .. } if file == "big" && done > 0 => handle.cancel(),
                Report::Hashed { file, .. } => hashed.push(file.name),
                r @ Report::Finished { .. } => break r,
                _ => {}
            }
        };
        assert!(
            matches!(
                end,
                Report::Finished {
                    cancelled: true,
                    ..
                }
            ),
            "{end:?}"
        );
        assert_eq!(hashed, ["small"], "the big file was stopped, not shared");

        // The next scan finds the small file in the cache and hashes only the big one.
        let handle = fx.scan();
        let (ready, to_hash) = listed(&fx.next());
        handle.cancel();
        assert_eq!(ready, ["small"]);
        assert_eq!(to_hash, [("big".to_string(), 1 << 30)]);
        let rest = fx.until_end();
        assert!(
            matches!(
                rest.last(),
                Some(Report::Finished {
                    cancelled: true,
                    ..
                })
            ),
            "{rest:?}"
        );
    }

    #[test]
    fn a_scan_cancelled_while_it_waits_changes_nothing() {
        let mut fx = fixture(PROGRESS_EVERY);
        fs::write(fx.shared.join("f"), b"data").unwrap();
        let first = fx.scan().job;
        let second = fx.scan();
        second.cancel();
        assert!(second.is_cancelled());
        let reports = fx.until_end();
        assert!(reports.iter().all(|r| r.job() == first));
        let reports = fx.until_end();
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(matches!(
            reports[0],
            Report::Finished {
                job,
                cancelled: true,
                cache_error: None,
            } if job == second.job
        ));
    }

    #[test]
    fn a_folder_that_cannot_be_listed_fails_the_scan() {
        let mut fx = fixture(PROGRESS_EVERY);
        fs::remove_dir(&fx.shared).unwrap();
        let job = fx.scan().job;
        let reports = fx.until_end();
        match &reports[..] {
            [Report::Failed { job: j, error }] => {
                assert_eq!(*j, job);
                assert!(error.starts_with("cannot scan"), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_wake_up_for_reports_waiting_together() {
        let mut fx = fixture(PROGRESS_EVERY);
        for i in 0..20 {
            fs::write(fx.shared.join(format!("f{i}")), [i as u8]).unwrap();
        }
        fx.scan();
        let end = fx.until_end();
        assert_eq!(end.len(), 22, "Listed, 20 Hashed, Finished");
        let wakes = fx.wakes.try_iter().count();
        assert!(wakes < 22, "{wakes} wake-ups for 22 reports");
    }
}
