//! The whole-file SHA-256 of a download, computed on a thread of its own so that it overlaps
//! with receiving.
//!
//! Every byte of a download is hashed twice: once per chunk against the manifest, before the
//! chunk is written (the reason chunk hashes exist), and once for the whole file, whose hash is
//! the file's id (a manifest could lie about its chunks; only the whole-file hash proves the
//! bytes are the file that was asked for). The chunk check must stay on the receiving path. The
//! whole-file hash need not: done on the receiving thread it costs as much CPU as the chunk
//! check, about 0.7 s per GiB, while the machine's second core waits. A [`FileHasher`] takes
//! each verified, written chunk by value (the `Vec` moves, nothing is copied) and hashes the
//! chunks in file order on its own thread.
//!
//! Chunks may be handed over in any order, each index once; the thread hashes them in order.
//! Chunks that arrive ahead of a missing one wait in memory, up to [`MAX_HELD`] bytes in all;
//! beyond that a chunk is handed over without its bytes and the thread reads it back from the
//! file when its turn comes (it was written before being handed over, so it is there). So
//! memory stays bounded and [`FileHasher::add`] never blocks the caller.

use crate::wire::Sha256;
use sha2::Digest;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

/// Most chunk bytes waiting for the hashing thread at once (in its queue or held back behind a
/// missing chunk). A chunk that would go over is read back from the file instead.
pub const MAX_HELD: usize = 16 * 1024 * 1024;
/// Spent buffers waiting to go back to the receiving side at most.
const SPARES: usize = 4;

enum Job {
    /// Chunk `index` is in the file; `data` is its bytes unless they were left out (then the
    /// thread reads them back).
    Chunk { index: u64, data: Option<Vec<u8>> },
    /// Every chunk has been handed over: finish and report.
    Finish,
}

/// Hashes a file's chunks, in file order, on a thread of its own. See the module docs.
pub struct FileHasher {
    jobs: Sender<Job>,
    /// Chunk bytes handed over and not yet hashed (shared with the thread).
    held: Arc<AtomicUsize>,
    limit: usize,
    cancelled: Arc<AtomicBool>,
    spares: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<Sha256>>>,
}

impl FileHasher {
    /// Starts hashing a file of `size` bytes cut into chunks of `chunk_size` bytes (the last may
    /// be shorter). `file` must be readable: chunks handed over without their bytes (see
    /// [`Self::add`] and [`Self::add_from_file`]) are read from it with positioned reads.
    pub fn start(file: File, chunk_size: u32, size: u64) -> io::Result<FileHasher> {
        FileHasher::with_limit(file, chunk_size, size, MAX_HELD)
    }

    /// [`Self::start`] with another bound on the bytes held in memory (tests use a small one).
    pub fn with_limit(
        file: File,
        chunk_size: u32,
        size: u64,
        limit: usize,
    ) -> io::Result<FileHasher> {
        if chunk_size == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "chunk size 0"));
        }
        let (jobs, rx) = channel();
        let (spare_tx, spares) = sync_channel(SPARES);
        let held = Arc::new(AtomicUsize::new(0));
        let cancelled = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            file,
            chunk_size: u64::from(chunk_size),
            size,
            held: Arc::clone(&held),
            cancelled: Arc::clone(&cancelled),
            spares: spare_tx,
        };
        let thread = std::thread::Builder::new()
            .name("file-hasher".into())
            .spawn(move || worker.run(rx))?;
        Ok(FileHasher {
            jobs,
            held,
            limit,
            cancelled,
            spares,
            thread: Some(thread),
        })
    }

    /// Chunk `index` has been verified and written; `data` is its bytes, moved to the hashing
    /// thread. Never blocks: if too many bytes are already waiting, `data` is dropped here and
    /// the thread reads the chunk back from the file instead. Hand over each index once; a
    /// repeated index is ignored.
    ///
    /// Buffers the thread has finished with go back to the frame decoder's pool
    /// ([`crate::wire::recycle_chunk_buffer`]), so the next chunks are received into memory
    /// that is already mapped instead of fresh allocations (which cost page faults).
    pub fn add(&mut self, index: u64, data: Vec<u8>) {
        while let Ok(spare) = self.spares.try_recv() {
            crate::wire::recycle_chunk_buffer(spare);
        }
        let len = data.len();
        let data = if self.held.load(Ordering::Acquire) + len <= self.limit {
            self.held.fetch_add(len, Ordering::AcqRel);
            Some(data)
        } else {
            None
        };
        // The thread only stops receiving once `finish` or drop ended it.
        let _ = self.jobs.send(Job::Chunk { index, data });
    }

    /// Chunk `index` is in the file already (kept from an earlier run): the thread reads it
    /// back when its turn comes.
    pub fn add_from_file(&mut self, index: u64) {
        let _ = self.jobs.send(Job::Chunk { index, data: None });
    }

    /// Waits until every chunk of the file has been hashed and returns the SHA-256 of the
    /// whole file. By then at most [`MAX_HELD`] bytes (plus any chunks to read back) are left
    /// to hash, a few milliseconds of work. An error if a chunk was never handed over or could
    /// not be read back.
    pub fn finish(mut self) -> io::Result<Sha256> {
        let _ = self.jobs.send(Job::Finish);
        let thread = self.thread.take().expect("finish runs once");
        thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the hashing thread panicked")))
    }
}

impl Drop for FileHasher {
    /// A download abandoned before `finish`: the thread stops at its next job and exits on its
    /// own (it is not waited for).
    fn drop(&mut self) {
        self.cancelled.store(true, Ordering::Release);
    }
}

struct Worker {
    file: File,
    chunk_size: u64,
    size: u64,
    held: Arc<AtomicUsize>,
    cancelled: Arc<AtomicBool>,
    spares: SyncSender<Vec<u8>>,
}

impl Worker {
    fn chunk_count(&self) -> u64 {
        self.size.div_ceil(self.chunk_size)
    }

    fn chunk_len(&self, index: u64) -> usize {
        let start = index * self.chunk_size;
        (self.size - start).min(self.chunk_size) as usize
    }

    fn run(self, jobs: Receiver<Job>) -> io::Result<Sha256> {
        let count = self.chunk_count();
        let mut hasher = sha2::Sha256::new();
        let mut next = 0u64;
        // Chunks handed over ahead of `next`, with their bytes unless those were left out.
        let mut early: BTreeMap<u64, Option<Vec<u8>>> = BTreeMap::new();
        let mut read_back = Vec::new();
        loop {
            let job = jobs.recv().map_err(|_| cancelled())?;
            if self.cancelled.load(Ordering::Acquire) {
                return Err(cancelled());
            }
            match job {
                Job::Chunk { index, data } => {
                    let fresh = index >= next && index < count && !early.contains_key(&index);
                    match data {
                        Some(data) if !fresh => self.release(data),
                        Some(data) if data.len() != self.chunk_len(index) => {
                            self.release(data);
                            early.insert(index, None);
                        }
                        data if fresh => {
                            early.insert(index, data);
                        }
                        _ => {}
                    }
                    while let Some(data) = early.remove(&next) {
                        match data {
                            Some(data) => {
                                hasher.update(&data);
                                self.release(data);
                            }
                            None => {
                                read_back.resize(self.chunk_len(next), 0);
                                self.file
                                    .read_exact_at(&mut read_back, next * self.chunk_size)?;
                                hasher.update(&read_back);
                            }
                        }
                        next += 1;
                        if self.cancelled.load(Ordering::Acquire) {
                            return Err(cancelled());
                        }
                    }
                }
                Job::Finish => {
                    return if next == count {
                        Ok(Sha256(hasher.finalize().into()))
                    } else {
                        Err(io::Error::other(format!(
                            "the whole-file hash is missing chunk {next} of {count}"
                        )))
                    };
                }
            }
        }
    }

    /// Done with a chunk's bytes: they no longer count as held, and the buffer goes back to the
    /// receiving side for reuse (if [`SPARES`] are already waiting there, it is freed).
    fn release(&self, data: Vec<u8>) {
        self.held.fetch_sub(data.len(), Ordering::AcqRel);
        let _ = self.spares.try_send(data);
    }
}

fn cancelled() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "the download was abandoned")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const CS: u32 = 1000;

    fn file_with(data: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(data).unwrap();
        let reader = f.reopen().unwrap();
        (f, reader)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn chunk(data: &[u8], i: u64) -> Vec<u8> {
        let start = i as usize * CS as usize;
        data[start..(start + CS as usize).min(data.len())].to_vec()
    }

    #[test]
    fn in_order_chunks_hash_to_the_file() {
        let d = data(10 * CS as usize + 123);
        let (_keep, f) = file_with(&d);
        let mut h = FileHasher::start(f, CS, d.len() as u64).unwrap();
        for i in 0..11 {
            h.add(i, chunk(&d, i));
        }
        assert_eq!(h.finish().unwrap(), Sha256::of(&d));
    }

    #[test]
    fn out_of_order_over_the_limit_reads_back_from_the_file() {
        let d = data(20 * CS as usize);
        let (_keep, f) = file_with(&d);
        // Room for three chunks: most of the early ones are dropped and read back.
        let mut h = FileHasher::with_limit(f, CS, d.len() as u64, 3 * CS as usize).unwrap();
        let mut order: Vec<u64> = (1..20).rev().collect();
        order.push(0);
        for i in order {
            h.add(i, chunk(&d, i));
        }
        assert_eq!(h.finish().unwrap(), Sha256::of(&d));
    }

    #[test]
    fn chunks_already_in_the_file_and_repeats() {
        let d = data(5 * CS as usize + 1);
        let (_keep, f) = file_with(&d);
        let mut h = FileHasher::start(f, CS, d.len() as u64).unwrap();
        h.add_from_file(0);
        h.add_from_file(2);
        h.add(1, chunk(&d, 1));
        h.add(1, vec![0; 3]); // a repeat is ignored, whatever it holds
        h.add(5, chunk(&d, 5));
        h.add(4, chunk(&d, 4));
        h.add(3, chunk(&d, 3));
        assert_eq!(h.finish().unwrap(), Sha256::of(&d));
    }

    #[test]
    fn a_missing_chunk_is_an_error_not_a_wrong_hash() {
        let d = data(3 * CS as usize);
        let (_keep, f) = file_with(&d);
        let mut h = FileHasher::start(f, CS, d.len() as u64).unwrap();
        h.add(0, chunk(&d, 0));
        h.add(2, chunk(&d, 2));
        let err = h.finish().unwrap_err();
        assert!(err.to_string().contains("missing chunk 1"), "{err}");
    }

    #[test]
    fn bytes_of_the_wrong_length_are_read_back_instead() {
        let d = data(2 * CS as usize);
        let (_keep, f) = file_with(&d);
        let mut h = FileHasher::start(f, CS, d.len() as u64).unwrap();
        h.add(0, vec![1; 10]);
        h.add(1, chunk(&d, 1));
        assert_eq!(h.finish().unwrap(), Sha256::of(&d));
    }

    #[test]
    fn empty_file_and_dropping_unfinished() {
        let (_keep, f) = file_with(b"");
        let h = FileHasher::start(f, CS, 0).unwrap();
        assert_eq!(h.finish().unwrap(), Sha256::of(b""));
        let d = data(4 * CS as usize);
        let (_keep, f) = file_with(&d);
        let mut h = FileHasher::start(f, CS, d.len() as u64).unwrap();
        h.add(3, chunk(&d, 3));
        drop(h); // must neither hang nor panic
    }

    #[test]
    fn spent_buffers_come_back_and_held_bytes_drain() {
        let d = data(8 * CS as usize);
        let (_keep, f) = file_with(&d);
        let mut h = FileHasher::start(f, CS, d.len() as u64).unwrap();
        for i in 0..8 {
            h.add(i, chunk(&d, i));
        }
        let held = Arc::clone(&h.held);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while held.load(Ordering::Acquire) > 0 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(held.load(Ordering::Acquire), 0);
        let spare = h.spares.try_recv().expect("a buffer handed back");
        assert_eq!(spare.len(), CS as usize);
        assert_eq!(h.finish().unwrap(), Sha256::of(&d));
    }
}
