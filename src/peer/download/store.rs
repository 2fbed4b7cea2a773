//! A download's disk behind one small interface: the partial file (verified chunks at their
//! offsets), the resume record (which chunks are durable), checkpoints, and publishing the
//! finished file. [`DiskStore`] is the real one, over `partial.rs` and `resume.rs` (records
//! are replaced atomically through `state_file.rs`); `MemStore` (tests) keeps it all in
//! memory and fails on request.

use super::chunk::ChunkIndex;
use super::machine::Download;
use super::output::Output;
use crate::peer::partial::{Durability, FinishError, PartialFile};
use crate::peer::resume::{self, LoadError, ResumeRecord};
use crate::wire::{ContentId, Sha256};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub trait Store {
    /// Writes verified chunk `index` at `offset` of the partial file.
    fn write(&mut self, index: ChunkIndex, offset: u64, data: Vec<u8>) -> io::Result<()>;
    /// Makes every chunk written so far durable, then records `durable` as such in the
    /// resume record (replaced atomically). Never records a chunk before it is durable.
    fn checkpoint(&mut self, durable: &[ChunkIndex]) -> io::Result<()>;
    /// Chunks found intact in the partial file (a resume): counted towards the whole-file
    /// hash as if just written.
    fn adopt(&mut self, intact: &[ChunkIndex]) -> io::Result<()>;
    /// Reads `buf.len()` bytes at `offset` (a verified chunk, for another peer).
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Every chunk is written (and was verified against the manifest of content id `id`):
    /// checks the file's length, and its whole SHA-256 against `sha256` when one is given,
    /// makes it durable and puts it under its name without replacing anything (a file already
    /// there counts as saved only if it has content id `id`); the resume record goes too. On
    /// a mismatch nothing is saved and partial file and record are removed; any other failure
    /// keeps both for a resume.
    fn publish(
        &mut self,
        id: &ContentId,
        sha256: Option<&Sha256>,
        size: u64,
    ) -> Result<PathBuf, FinishError>;
}

/// Carries out `out` on `store` if it is a disk output (or a chunk's check, done here at once)
/// and hands the result back to `dl` (the machine's poll order, step 2); any other output is
/// returned to the caller.
pub fn run_disk_output(
    dl: &mut Download,
    store: &mut dyn Store,
    out: Output,
    now: Instant,
) -> Option<Output> {
    match out {
        Output::Check {
            source,
            index,
            data,
            expected,
        } => {
            let checked = super::chunk::check_hash(&expected, &data);
            dl.handle_chunk_checked(source, index, data, checked, now);
        }
        Output::Write {
            index,
            offset,
            data,
        } => {
            let written = store.write(index, offset, data);
            dl.handle_written(index, written, now);
        }
        Output::Checkpoint { durable, .. } => {
            let synced = store.checkpoint(&durable);
            dl.handle_checkpointed(synced, now);
        }
        Output::Publish { id, sha256, size } => {
            let saved = store.publish(&id, sha256.as_ref(), size);
            dl.handle_published(saved);
        }
        other => return Some(other),
    }
    None
}

/// The real store: the partial file beside the destination, the record in `.p2p/resume/`.
pub struct DiskStore {
    part: PartialFile,
    record: ResumeRecord,
    downloads: PathBuf,
    /// The chunks of the checkpoint out on another thread ([`Self::checkpoint_job`]): recorded
    /// here once it succeeded.
    pending: Vec<ChunkIndex>,
    /// Set when the download is discarded: a checkpoint still out must not bring its record
    /// back.
    gone: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// False for a folder's content (`without_record`): the folder's record is what resumes.
    records: bool,
}

/// A checkpoint carried out off the reactor's thread (`disk_jobs.rs`): the partial file is
/// made durable (fsync), then the resume record naming the chunks is replaced. An fsync of a
/// file being written at hundreds of MB/s takes long enough to stall every connection: on the
/// reactor it cost a download a quarter of its speed (docs/performance.md).
pub struct CheckpointJob {
    file: std::fs::File,
    record: ResumeRecord,
    downloads: PathBuf,
    gone: std::sync::Arc<std::sync::atomic::AtomicBool>,
    records: bool,
}

impl CheckpointJob {
    pub fn run(self) -> io::Result<()> {
        use std::sync::atomic::Ordering;
        if !self.records {
            return Ok(());
        }
        self.file.sync_data()?;
        if self.gone.load(Ordering::SeqCst) {
            return Ok(());
        }
        resume::save(&self.downloads, &self.record)?;
        // Discarded while the record was written: `discard` set the flag before it removed the
        // record, so either it removes ours or we see the flag here and remove it ourselves.
        if self.gone.load(Ordering::SeqCst) {
            resume::remove(&self.downloads, &self.record.file_name);
        }
        Ok(())
    }
}

impl DiskStore {
    /// Opens (or creates) the partial file of the download `record` describes, in
    /// `downloads`. The record is written only by checkpoints.
    pub fn open(
        downloads: &Path,
        record: ResumeRecord,
        durability: Durability,
    ) -> io::Result<DiskStore> {
        let dest = downloads.join(&record.file_name);
        let mut part = PartialFile::open_existing(
            &dest,
            &record.file_name,
            record.chunk_size,
            record.size,
            durability,
        )?;
        if record.check_sha256 {
            part.hash_whole_file();
        }
        Ok(DiskStore {
            part,
            record,
            downloads: downloads.to_path_buf(),
            pending: Vec::new(),
            gone: Default::default(),
            records: true,
        })
    }

    /// A content of a folder download: no resume record of its own and no fsync at its
    /// checkpoints. A resume of the folder (`folder/record.rs`) starts the content again, and
    /// the chunks in its partial file are checked against the manifest then, as for any
    /// resume; only the final file is made durable (`publish`). For a tree of 10,000 small
    /// files that is 3 fsyncs fewer per file.
    pub fn without_record(&mut self) {
        self.records = false;
    }

    /// [`Store::checkpoint`] as a job for another thread: what it syncs and the record it
    /// writes (with `durable` marked). Answer with [`Self::checkpoint_done`]; until then this
    /// store's own record does not count `durable` as durable.
    pub fn checkpoint_job(&mut self, durable: &[ChunkIndex]) -> io::Result<CheckpointJob> {
        let job = self.job(durable)?;
        self.pending = durable.to_vec();
        Ok(job)
    }

    /// What a checkpoint of `durable` syncs and writes, wherever it runs.
    fn job(&self, durable: &[ChunkIndex]) -> io::Result<CheckpointJob> {
        let file = self.part.try_clone_file()?;
        let mut record = self.record.clone();
        for c in durable {
            record.set_durable(c.get());
        }
        Ok(CheckpointJob {
            file,
            record,
            downloads: self.downloads.clone(),
            gone: std::sync::Arc::clone(&self.gone),
            records: self.records,
        })
    }

    /// The checkpoint job ended; `ok`: its chunks are durable and recorded.
    pub fn checkpoint_done(&mut self, ok: bool) {
        for c in std::mem::take(&mut self.pending) {
            if ok {
                self.record.set_durable(c.get());
            }
        }
    }

    /// The hidden file the chunks are written to (named in errors: it is what fills a disk).
    pub fn part_path(&self) -> &Path {
        self.part.part_path()
    }

    pub fn dest(&self) -> &Path {
        self.part.dest()
    }

    /// A second handle on the partial file, for checking it on another thread.
    pub fn try_clone_file(&self) -> io::Result<std::fs::File> {
        self.part.try_clone_file()
    }

    /// Removes the partial file and the record (cancelled, or found saved already).
    pub fn discard(self) {
        self.gone.store(true, std::sync::atomic::Ordering::SeqCst);
        self.part.abandon();
        if self.records {
            resume::remove(&self.downloads, &self.record.file_name);
        }
    }

    /// A download that failed before it began: its partial file goes unless something is in
    /// it or a record names it.
    pub fn abandon_if_untouched(self) {
        if !self.part.is_empty() {
            return;
        }
        if !self.records
            || matches!(
                resume::load_for(&self.downloads, &self.record.file_name),
                Err(LoadError::Missing)
            )
        {
            self.part.abandon();
        }
    }

    /// How the partial file is made durable.
    pub fn durability(&self) -> crate::peer::partial::Durability {
        self.part.durability()
    }

    /// Whether this store keeps a resume record of its own (not a folder's content).
    pub fn keeps_records(&self) -> bool {
        self.records
    }

    /// How many bytes the partial file holds now (0: just made, nothing to check in it).
    pub fn partial_len(&self) -> io::Result<u64> {
        self.part.len()
    }
}

impl Store for DiskStore {
    fn write(&mut self, index: ChunkIndex, offset: u64, data: Vec<u8>) -> io::Result<()> {
        self.part.write_chunk(index.get(), offset, data)
    }

    /// The same work as [`DiskStore::checkpoint_job`], done here and now (a pause, an exit).
    /// A folder's content has neither a record nor a sync of its own: nothing to do.
    fn checkpoint(&mut self, durable: &[ChunkIndex]) -> io::Result<()> {
        if self.records {
            self.job(durable)?.run()?;
        }
        for c in durable {
            self.record.set_durable(c.get());
        }
        Ok(())
    }

    fn adopt(&mut self, intact: &[ChunkIndex]) -> io::Result<()> {
        let raw: Vec<u64> = intact.iter().map(|c| c.get()).collect();
        self.part.adopt(&raw)
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.part.read_at(offset, buf)
    }

    fn publish(
        &mut self,
        id: &ContentId,
        sha256: Option<&Sha256>,
        size: u64,
    ) -> Result<PathBuf, FinishError> {
        let saved = self.part.finish(id, sha256, size);
        if self.records && !matches!(saved, Err(FinishError::Kept(_))) {
            resume::remove(&self.downloads, &self.record.file_name);
        }
        saved
    }
}

/// A store in memory, for tests: chunks by offset, what was made durable, what was
/// published; each operation fails while its `fail_*` is set. It refuses (panics on) what a
/// real disk would make a silent corruption: recording a chunk durable that was never
/// written, or writing one twice.
#[cfg(test)]
#[derive(Default)]
pub struct MemStore {
    pub chunks: std::collections::BTreeMap<u64, Vec<u8>>,
    pub durable: std::collections::BTreeSet<ChunkIndex>,
    written: std::collections::BTreeSet<ChunkIndex>,
    pub checkpoints: usize,
    pub published: Option<Vec<u8>>,
    pub fail_write: bool,
    pub fail_checkpoint: bool,
}

#[cfg(test)]
impl MemStore {
    /// The bytes written, in file order, holes skipped.
    pub fn contents(&self) -> Vec<u8> {
        self.chunks.values().flatten().copied().collect()
    }
}

#[cfg(test)]
impl Store for MemStore {
    fn write(&mut self, index: ChunkIndex, offset: u64, data: Vec<u8>) -> io::Result<()> {
        if self.fail_write {
            return Err(io::Error::other("no space left on device"));
        }
        assert!(self.written.insert(index), "chunk {index} written twice");
        self.chunks.insert(offset, data);
        Ok(())
    }

    fn checkpoint(&mut self, durable: &[ChunkIndex]) -> io::Result<()> {
        if self.fail_checkpoint {
            return Err(io::Error::other("fsync failed"));
        }
        for c in durable {
            assert!(
                self.written.contains(c),
                "chunk {c} recorded before written"
            );
            self.durable.insert(*c);
        }
        self.checkpoints += 1;
        Ok(())
    }

    fn adopt(&mut self, intact: &[ChunkIndex]) -> io::Result<()> {
        self.written.extend(intact);
        Ok(())
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let chunk = self.chunks.get(&offset).ok_or(io::ErrorKind::NotFound)?;
        buf.copy_from_slice(chunk.get(..buf.len()).ok_or(io::ErrorKind::UnexpectedEof)?);
        Ok(())
    }

    fn publish(
        &mut self,
        _id: &ContentId,
        sha256: Option<&Sha256>,
        size: u64,
    ) -> Result<PathBuf, FinishError> {
        assert!(self.published.is_none(), "published twice");
        let bytes = self.contents();
        if bytes.len() as u64 != size {
            return Err(FinishError::Kept(format!(
                "{} bytes, not {size}",
                bytes.len()
            )));
        }
        if sha256.is_some_and(|want| Sha256::of(&bytes) != *want) {
            self.chunks.clear();
            return Err(FinishError::Mismatch(
                "the whole file does not match".into(),
            ));
        }
        self.published = Some(bytes);
        Ok(PathBuf::from("/mem/published"))
    }
}
