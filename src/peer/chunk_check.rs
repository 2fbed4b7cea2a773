//! Checking received chunks against their manifest's SHA-256 on helper threads, so the
//! reactor's thread only decrypts, decodes and writes (issue 17, "every core"). On one
//! thread the hash was the largest single cost of a download: about 0.9 CPU-s per GiB of the
//! receiver's 2 CPU-s, and everything else the reactor does waited behind it.
//!
//! The download machine asks for a check with `Output::Check` and takes the answer in
//! `Download::handle_chunk_checked`; the chunk is `Checking` in between, so nothing about it
//! changes while it is out. Jobs go to a small pool of threads over one channel; results come
//! back over another, and the reactor is woken (`notify`, as `Control::Work`) once per batch:
//! a thread wakes it only when no wake-up is pending already, and [`ChunkChecker::take`]
//! clears that flag before it drains, so no result is ever left unseen.
//!
//! A node without a checker (the in-memory harness, a node driven by hand, a machine with one
//! core) checks at once on its own thread (`download::run_disk_output`): same answers, same
//! order as before.

use super::download::{ChunkFault, ChunkIndex, DownloadId, SourceId, check_hash};
use crate::wire::Sha256;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Checking threads at most: SHA-256 of chunks arriving at 10 Gbit/s takes about 1.2 cores.
const MAX_THREADS: usize = 4;
/// Chunks out for checking per thread at most. Past that the reactor checks a chunk itself:
/// it reads no socket meanwhile, so the senders slow down (TCP) instead of chunks piling up
/// in memory (unbounded, the receiver's RSS grew from 10 to 138 MiB on a 256 MiB download
/// with its one checking thread behind).
const QUEUE_PER_THREAD: usize = 8;
/// Chunks smaller than this are checked on the reactor's thread: hashing 4 KiB takes about
/// 2 µs, handing it to a thread and taking the answer back (a wake-up each way, two context
/// switches) longer. A folder of 10,000 small files spent more on the hand-offs than on the
/// hashes.
pub const MIN_OFFLOAD: usize = 64 * 1024;

/// One chunk to check.
pub struct CheckJob {
    pub dl: DownloadId,
    pub source: SourceId,
    pub index: ChunkIndex,
    pub data: Vec<u8>,
    pub expected: Sha256,
}

/// A chunk checked: its bytes back, and whether they match.
pub struct Checked {
    pub dl: DownloadId,
    pub source: SourceId,
    pub index: ChunkIndex,
    pub data: Vec<u8>,
    pub result: Result<(), ChunkFault>,
}

pub struct ChunkChecker {
    /// `None` once dropped: the threads see the channel close and end.
    jobs: Option<Sender<CheckJob>>,
    results: Receiver<Checked>,
    /// Set by a thread that woke the reactor, cleared by [`Self::take`].
    signalled: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Jobs submitted whose results were not taken yet, and how many may be.
    out: usize,
    max_out: usize,
}

/// How many checking threads to run with `cores` cores (what `available_parallelism` says,
/// which follows `taskset` and cgroup quotas): none on one core (a thread would only take
/// turns with the reactor), else one fewer than the cores, the reactor keeping one, at most
/// [`MAX_THREADS`]. `P2P_CHECK_THREADS` overrides it (0: check on the reactor), for
/// measuring.
pub fn threads_for(cores: usize, overridden: Option<usize>) -> usize {
    match overridden {
        Some(n) => n.min(MAX_THREADS),
        None => cores.saturating_sub(1).min(MAX_THREADS),
    }
}

/// [`threads_for`] this process: its cores and `P2P_CHECK_THREADS`.
pub fn threads_here() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let overridden = std::env::var("P2P_CHECK_THREADS")
        .ok()
        .and_then(|v| v.trim().parse().ok());
    threads_for(cores, overridden)
}

impl ChunkChecker {
    /// `threads` checking threads (at least one); `notify` wakes whoever calls [`Self::take`].
    pub fn spawn(
        threads: usize,
        notify: impl Fn() + Send + Sync + 'static,
    ) -> io::Result<ChunkChecker> {
        let (jobs_tx, jobs_rx) = channel::<CheckJob>();
        let (results_tx, results) = channel();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let signalled = Arc::new(AtomicBool::new(false));
        let notify: Arc<dyn Fn() + Send + Sync> = Arc::new(notify);
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (jobs_rx, results_tx) = (Arc::clone(&jobs_rx), results_tx.clone());
            let (signalled, notify) = (Arc::clone(&signalled), Arc::clone(&notify));
            let handle = std::thread::Builder::new()
                .name(format!("p2p-check-{i}"))
                .spawn(move || {
                    check_loop(&jobs_rx, &results_tx, &signalled, &*notify);
                })?;
            handles.push(handle);
        }
        Ok(ChunkChecker {
            jobs: Some(jobs_tx),
            results,
            signalled,
            max_out: handles.len() * QUEUE_PER_THREAD,
            threads: handles,
            out: 0,
        })
    }

    /// Hands `job` to a thread; gives it back if the threads have enough to do already
    /// ([`QUEUE_PER_THREAD`]) or none is left to take it: the caller then checks it itself.
    pub fn submit(&mut self, job: CheckJob) -> Result<(), CheckJob> {
        if self.out >= self.max_out {
            return Err(job);
        }
        match &self.jobs {
            Some(tx) => tx.send(job).map_err(|e| e.0)?,
            None => return Err(job),
        }
        self.out += 1;
        Ok(())
    }

    /// [`Self::submit`], and when the threads' queues are full, first takes the results they
    /// are through with rather than waiting for their wake-up to be seen: the reactor sees it
    /// only between turns of reading a socket (up to 4 MiB of chunks, which it would check
    /// itself meanwhile), and a thread done with its queue sat idle until then. Of a 1 GiB
    /// download, 1 chunk in 20 was checked on a thread. The results taken come back to the
    /// caller, whose they are to hand on.
    pub fn submit_making_room(&mut self, job: CheckJob) -> (Result<(), CheckJob>, Vec<Checked>) {
        let job = match self.submit(job) {
            Ok(()) => return (Ok(()), Vec::new()),
            Err(job) => job,
        };
        let taken = self.take();
        if taken.is_empty() {
            return (Err(job), taken);
        }
        (self.submit(job), taken)
    }

    /// Every result that came back since the last call.
    pub fn take(&mut self) -> Vec<Checked> {
        // Cleared first: a result sent after this wakes the reactor again.
        self.signalled.store(false, Ordering::SeqCst);
        let results: Vec<Checked> = self.results.try_iter().collect();
        self.out -= results.len();
        results
    }
}

fn check_loop(
    jobs: &Mutex<Receiver<CheckJob>>,
    results: &Sender<Checked>,
    signalled: &AtomicBool,
    notify: &(dyn Fn() + Send + Sync),
) {
    loop {
        // The lock is held only to take a job, not while hashing it.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return;
        };
        let result = check_hash(&job.expected, &job.data);
        let checked = Checked {
            dl: job.dl,
            source: job.source,
            index: job.index,
            data: job.data,
            result,
        };
        if results.send(checked).is_err() {
            return;
        }
        if !signalled.swap(true, Ordering::SeqCst) {
            notify();
        }
    }
}

impl Drop for ChunkChecker {
    fn drop(&mut self) {
        self.jobs = None;
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::manifest::manifest_of_reader;
    use std::sync::MutexGuard;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    /// Chunk `i` of 100, ten bytes that match.
    fn job(i: u64) -> CheckJob {
        CheckJob {
            dl: DownloadId(1),
            source: SourceId::nth(0),
            index: ChunkIndex::new(i, 100).unwrap(),
            data: vec![1; 10],
            expected: Sha256::of(&[1; 10]),
        }
    }

    #[test]
    fn thread_counts_leave_the_reactor_a_core() {
        assert_eq!(threads_for(1, None), 0, "one core: check on the reactor");
        assert_eq!(threads_for(2, None), 1);
        assert_eq!(threads_for(4, None), 3);
        assert_eq!(threads_for(64, None), MAX_THREADS);
        assert_eq!(threads_for(2, Some(0)), 0, "overridden");
        assert_eq!(threads_for(1, Some(3)), 3);
    }

    /// A checker of one thread with a full queue, whose thread checks job 0, sends its result
    /// and then blocks in its wake-up call while the returned guard holds `gate`. Bind the
    /// pair as `let (checker, held)`: `held` is then dropped first, so a failed assertion
    /// releases the thread before the checker joins it.
    fn gated_full_checker(gate: &Arc<Mutex<()>>) -> (ChunkChecker, MutexGuard<'_, ()>) {
        let g = Arc::clone(gate);
        let mut checker = ChunkChecker::spawn(1, move || drop(g.lock())).unwrap();
        let held = gate.lock().unwrap();
        for i in 0..QUEUE_PER_THREAD as u64 {
            assert!(checker.submit(job(i)).is_ok(), "job {i} taken");
        }
        (checker, held)
    }

    #[test]
    fn a_checker_with_enough_to_do_gives_the_job_back() {
        let gate = Arc::new(Mutex::new(()));
        let (mut checker, held) = gated_full_checker(&gate);
        let back = checker
            .submit(job(99))
            .expect_err("one too many: given back");
        assert_eq!(back.index.get(), 99);
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut done = 0;
        while done < QUEUE_PER_THREAD {
            assert!(Instant::now() < deadline, "{done} results");
            done += checker.take().len();
            std::thread::yield_now();
        }
        assert!(
            checker.submit(job(98)).is_ok(),
            "room again once results are taken"
        );
    }

    #[test]
    fn a_full_checker_makes_room_by_taking_what_its_threads_are_through_with() {
        // While the gate is held, one result (job 0's) is in and the wake-up is never seen:
        // room comes only from taking what is through.
        let gate = Arc::new(Mutex::new(()));
        let (mut checker, held) = gated_full_checker(&gate);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut results = Vec::new();
        let mut pending = job(99);
        loop {
            assert!(Instant::now() < deadline, "never made room: {results:?}");
            let (outcome, taken) = checker.submit_making_room(pending);
            assert_eq!(
                outcome.is_ok(),
                !taken.is_empty(),
                "room exactly when taken"
            );
            results.extend(taken.into_iter().map(|c| (c.index.get(), c.result.is_ok())));
            match outcome {
                Ok(()) => break,
                Err(j) => pending = j,
            }
            std::thread::yield_now();
        }
        assert_eq!(
            results,
            [(0, true)],
            "the one result the thread was through with"
        );
        assert!(
            checker.submit(job(98)).is_err(),
            "full again: the one slot made is taken by job 99"
        );
        drop(held);
    }

    /// Every job comes back exactly once with its bytes and the right verdict, and the
    /// wake-ups, however many results, are enough to see them all.
    #[test]
    fn every_chunk_comes_back_checked_and_the_reactor_is_woken_for_it() {
        let data: Vec<u8> = (0..(8u32 << 20)).map(|i| (i % 251) as u8).collect();
        let m = manifest_of_reader(data.as_slice(), data.len() as u64).unwrap();
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = Arc::clone(&wakes);
        let mut checker = ChunkChecker::spawn(3, move || {
            w.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let count = m.chunk_count();
        let mut pending = Vec::new();
        for raw in 0..count {
            let index = ChunkIndex::new(raw, count).unwrap();
            let (off, len) = (
                raw as usize * m.chunk_size as usize,
                m.chunk_len(raw).unwrap(),
            );
            let mut bytes = data[off..off + len as usize].to_vec();
            if raw % 5 == 3 {
                bytes[7] ^= 1;
            }
            let job = CheckJob {
                dl: DownloadId(9),
                source: SourceId::nth(raw as usize % 2),
                index,
                data: bytes,
                expected: *m.chunk_hash(raw).unwrap(),
            };
            pending.push(job);
        }
        let mut pending = pending.into_iter();
        for job in pending.by_ref().take(3 * QUEUE_PER_THREAD) {
            assert!(checker.submit(job).is_ok(), "the first jobs are taken");
        }
        let mut seen = vec![None; count as usize];
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut wakes_seen = 0;
        while seen.iter().any(Option::is_none) {
            assert!(Instant::now() < deadline, "results missing: {seen:?}");
            let now_wakes = wakes.load(Ordering::SeqCst);
            if now_wakes == wakes_seen {
                std::thread::yield_now();
                continue;
            }
            wakes_seen = now_wakes;
            let results = checker.take();
            // As the node does: more jobs as results make room.
            for job in pending.by_ref().take(results.len()) {
                assert!(checker.submit(job).is_ok(), "room after taking results");
            }
            for c in results {
                let raw = c.index.get() as usize;
                assert!(seen[raw].is_none(), "chunk {raw} twice");
                assert_eq!(c.dl, DownloadId(9));
                assert_eq!(c.source, SourceId::nth(raw % 2));
                assert_eq!(c.data.len(), m.chunk_len(raw as u64).unwrap() as usize);
                seen[raw] = Some(c.result);
            }
        }
        for (raw, verdict) in seen.into_iter().enumerate() {
            let want = if raw % 5 == 3 {
                Err(ChunkFault::HashMismatch)
            } else {
                Ok(())
            };
            assert_eq!(verdict, Some(want), "chunk {raw}");
        }
    }
}
