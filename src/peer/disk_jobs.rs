//! One-off disk work off the reactor's thread: checking a partial file against its manifest
//! when a download resumes, and hashing a file already under a download's name. Either can
//! take seconds for a big file; on the reactor it froze every connection meanwhile.
//!
//! Each job runs on a short-lived thread of its own (they are rare and must not wait behind a
//! long `rescan` on the hash worker) and sends its [`Done`] back over a channel, then calls
//! `notify`, which wakes the reactor (as `Control::Work`); the node drains the results with
//! [`DiskJobs::try_recv`]. Without a reactor (`DiskJobs::inline`, for a node driven by hand)
//! a job runs at once and its result waits for the next `try_recv`, so the node handles it
//! the same way, never from inside the call that started it.

use super::download::CheckpointJob;
use super::manifest::Manifest;
use super::partial::{self, Destination};
use crate::wire::ContentId;
use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

/// A job's number, unique within one [`DiskJobs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DiskJobId(u64);

/// What a job found.
#[derive(Debug)]
pub enum Outcome {
    /// What is at the download's destination (when asked: a resume, where a crash may have
    /// left the finished file beside its record), and the chunks of its partial file that
    /// verify against its manifest (the file was cut to the manifest's size first, see
    /// [`partial::check_partial`]; not checked when the destination already holds the file).
    PartialChecked {
        dest: Option<Result<Destination, String>>,
        intact: std::io::Result<Vec<u64>>,
    },
    /// What is at a download's destination.
    DestinationChecked(Result<Destination, String>),
    /// A download's checkpoint: its partial file synced and its record replaced, or why not.
    Checkpointed(std::io::Result<()>),
}

#[derive(Debug)]
pub struct Done {
    pub job: DiskJobId,
    pub outcome: Outcome,
}

enum Mode {
    Threads {
        tx: Sender<Done>,
        notify: Arc<dyn Fn() + Send + Sync>,
    },
    /// Runs each job at once, in the caller's thread.
    Inline,
}

pub struct DiskJobs {
    mode: Mode,
    rx: Receiver<Done>,
    ready: VecDeque<Done>,
    next: u64,
}

impl DiskJobs {
    /// Jobs on threads of their own; `notify` is called after each result is sent.
    pub fn threads(notify: impl Fn() + Send + Sync + 'static) -> DiskJobs {
        let (tx, rx) = channel();
        DiskJobs {
            mode: Mode::Threads {
                tx,
                notify: Arc::new(notify),
            },
            rx,
            ready: VecDeque::new(),
            next: 1,
        }
    }

    /// Jobs run at once by the caller; results still come out of [`Self::try_recv`].
    pub fn inline() -> DiskJobs {
        let (_tx, rx) = channel();
        DiskJobs {
            mode: Mode::Inline,
            rx,
            ready: VecDeque::new(),
            next: 1,
        }
    }

    /// Checks which chunks of the partial file `file` verify against `manifest`; with `dest`,
    /// first what stands at the download's destination.
    pub fn check_partial(
        &mut self,
        file: File,
        manifest: Manifest,
        dest: Option<PathBuf>,
    ) -> DiskJobId {
        self.run(move || {
            let id = ContentId::of(&manifest);
            let dest = dest.map(|d| partial::check_destination(&d, &id));
            let intact = match &dest {
                Some(Ok(Destination::AlreadyThere)) => Ok(Vec::new()),
                _ => partial::check_partial(&file, &manifest),
            };
            Outcome::PartialChecked { dest, intact }
        })
    }

    /// The check of a partial file known to be empty: its result (no chunk intact) comes out
    /// of [`Self::try_recv`] like any other, without a thread.
    pub fn already_checked(&mut self, intact: Vec<u64>) -> DiskJobId {
        let job = DiskJobId(self.next);
        self.next += 1;
        let outcome = Outcome::PartialChecked {
            dest: None,
            intact: Ok(intact),
        };
        self.ready.push_back(Done { job, outcome });
        job
    }

    /// Looks at `dest` before a download of content `id` (hashing it if a file is there).
    pub fn check_destination(&mut self, dest: PathBuf, id: ContentId) -> DiskJobId {
        self.run(move || Outcome::DestinationChecked(partial::check_destination(&dest, &id)))
    }

    /// Carries out a download's checkpoint (fsync, then the record).
    pub fn checkpoint(&mut self, job: CheckpointJob) -> DiskJobId {
        self.run(move || Outcome::Checkpointed(job.run()))
    }

    fn run(&mut self, work: impl FnOnce() -> Outcome + Send + 'static) -> DiskJobId {
        let job = DiskJobId(self.next);
        self.next += 1;
        match &self.mode {
            Mode::Inline => self.ready.push_back(Done {
                job,
                outcome: work(),
            }),
            Mode::Threads { tx, notify } => {
                let (tx, notify) = (tx.clone(), Arc::clone(notify));
                // The work is shared with the fallback below: a thread may not be had.
                let work = Arc::new(std::sync::Mutex::new(Some(work)));
                let for_thread = Arc::clone(&work);
                let spawned =
                    std::thread::Builder::new()
                        .name("disk-job".into())
                        .spawn(move || {
                            let work = for_thread.lock().ok().and_then(|mut w| w.take());
                            if let Some(work) = work {
                                let outcome = work();
                                if tx.send(Done { job, outcome }).is_ok() {
                                    notify();
                                }
                            }
                        });
                if spawned.is_err() {
                    // No thread to be had (resource limits): do it here rather than never.
                    let work = work.lock().ok().and_then(|mut w| w.take());
                    if let Some(work) = work {
                        self.ready.push_back(Done {
                            job,
                            outcome: work(),
                        });
                    }
                }
            }
        }
        job
    }

    /// Becomes `next`, keeping what this one owes: results not handed out yet and the job
    /// numbering (ids already given out stay unique).
    pub fn replace_with(&mut self, mut next: DiskJobs) {
        next.next = self.next;
        next.ready = std::mem::take(&mut self.ready);
        *self = next;
    }

    /// The next finished job, if any.
    pub fn try_recv(&mut self) -> Option<Done> {
        self.ready.pop_front().or_else(|| self.rx.try_recv().ok())
    }

    /// Whether results wait that no wake-up will announce (inline jobs, a failed spawn).
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::manifest::manifest_of_reader;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    fn wait_for(jobs: &mut DiskJobs) -> Done {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(done) = jobs.try_recv() {
                return done;
            }
            assert!(Instant::now() < deadline, "no result within 10 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_partial_file_is_checked_on_a_thread_and_the_reactor_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..256 * 1024 * 3 + 9).map(|i| (i % 241) as u8).collect();
        let manifest = manifest_of_reader(data.as_slice(), data.len() as u64).unwrap();
        let mut torn = data.clone();
        torn[256 * 1024 + 5] ^= 1; // chunk 1 is torn
        let path = dir.path().join(".f.p2p-part");
        std::fs::write(&path, &torn).unwrap();
        let woken = Arc::new(AtomicUsize::new(0));
        let w = Arc::clone(&woken);
        let mut jobs = DiskJobs::threads(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let job = jobs.check_partial(file, manifest, Some(dir.path().join("f")));
        let done = wait_for(&mut jobs);
        assert_eq!(done.job, job);
        let Outcome::PartialChecked {
            dest: Some(Ok(Destination::Free)),
            intact: Ok(intact),
        } = done.outcome
        else {
            panic!("{:?}", done.outcome)
        };
        assert_eq!(intact, [0, 2, 3]);
        assert_eq!(woken.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn inline_jobs_come_out_of_try_recv_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut jobs = DiskJobs::inline();
        let x = crate::peer::index::fixture::cid(b"x");
        let a = jobs.check_destination(dir.path().join("none"), x);
        std::fs::write(dir.path().join("x"), b"x").unwrap();
        let b = jobs.check_destination(dir.path().join("x"), x);
        assert!(jobs.has_ready());
        let first = jobs.try_recv().unwrap();
        assert_eq!(first.job, a);
        assert!(matches!(
            first.outcome,
            Outcome::DestinationChecked(Ok(Destination::Free))
        ));
        let second = jobs.try_recv().unwrap();
        assert_eq!(second.job, b);
        assert!(matches!(
            second.outcome,
            Outcome::DestinationChecked(Ok(Destination::AlreadyThere))
        ));
        assert!(jobs.try_recv().is_none());
    }
}
