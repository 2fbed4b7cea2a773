//! A download on disk: a partial file beside its destination, holding only verified chunks
//! written at their offsets, linked into place only once every chunk is there. The chunks were
//! each checked against a manifest that was checked against the content id asked for, so they
//! are the file (PROTOCOL.md §8.4); when the file was asked for by its SHA-256, that is checked
//! too, on a thread of its own as the chunks are written. Nothing ever stands under the final
//! name that is not exactly those bytes.

use super::content_id::ContentId;
use super::file_hasher::FileHasher;
use super::manifest::{Manifest, manifest_of_reader};
use crate::names::partial_name;
use crate::wire::Sha256;
use sha2::Digest;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What is already at a download's destination.
#[derive(Debug, PartialEq, Eq)]
pub enum Destination {
    /// Nothing there: go ahead.
    Free,
    /// A file with exactly the wanted content is there already.
    AlreadyThere,
}

/// Checks the destination before a download starts: a file there is the wanted content if it
/// has content id `id` (cut as §8.1's sender's choice cuts it). A different file under that
/// name is an error: we never overwrite anything.
pub fn check_destination(dest: &Path, id: &ContentId) -> Result<Destination, String> {
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Destination::Free),
        Err(e) => Err(format!("cannot check {}: {e}", dest.display())),
        Ok(meta) if !meta.is_file() => Err(format!(
            "{} already exists and is not a regular file; not touching it",
            dest.display()
        )),
        Ok(meta) => match File::open(dest).and_then(|f| manifest_of_reader(f, meta.len())) {
            Ok(have) if ContentId::of(&have) == *id => Ok(Destination::AlreadyThere),
            Ok(_) => Err(format!(
                "{} already exists with different content; move it away or rename it first",
                dest.display()
            )),
            Err(e) => Err(format!("cannot read {}: {e}", dest.display())),
        },
    }
}

/// SHA-256 of a whole file, read in blocks.
pub fn hash_file(path: &Path) -> io::Result<Sha256> {
    let mut file = File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Sha256(hasher.finalize().into()))
}

/// When a download's file is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Its own fsyncs: the partial file's name when it is made, its bytes before the final
    /// link, the removal of the partial name. A file saved under its own name.
    EachFile,
    /// None of its own: a small content of a folder download, whose whole tree is made durable
    /// at once before it gets its name (`syncfs`, `folder_fetch.rs`), and whose verified file
    /// is hashed again on a resume instead of being trusted (a power cut can leave a file of
    /// the right length with other bytes). For 10,000 files of 4 KiB that is 30,000 fsyncs
    /// fewer, most of a folder download's time.
    Batched,
}

pub struct PartialFile {
    durability: Durability,
    file: File,
    part_path: PathBuf,
    dest: PathBuf,
    /// The download's geometry, for the whole-file hasher.
    chunk_size: u32,
    size: u64,
    /// Whether the whole file's SHA-256 is wanted ([`Self::hash_whole_file`]).
    hash_whole: bool,
    /// That SHA-256, computed on its own thread from the chunks as they are written (in any
    /// order), so completion needs no second pass over the file. Started on first use.
    hasher: Option<FileHasher>,
}

impl PartialFile {
    /// Creates the partial file for `dest` (a stale one from an earlier attempt is replaced),
    /// for a file of `size` bytes in chunks of `chunk_size`. Opened create-new and no-follow:
    /// a symlink planted at that path is never followed.
    pub fn create(
        dest: &Path,
        file_name: &str,
        chunk_size: u32,
        size: u64,
        durability: Durability,
    ) -> io::Result<PartialFile> {
        let part_path = partial_path(dest, file_name);
        let create = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&part_path)
        };
        // Usually nothing is there: the stale file is looked for only when in the way.
        let file = match create() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&part_path)?;
                create()?
            }
            other => other?,
        };
        // The new name must survive a crash as surely as the bytes later written into it.
        if durability == Durability::EachFile
            && let Some(dir) = part_path.parent()
        {
            sync_dir(dir);
        }
        Ok(PartialFile::with_file(
            file, part_path, dest, chunk_size, size, durability,
        ))
    }

    /// Opens the partial file of an interrupted download to continue it, or creates it if it
    /// is gone. Never follows a symlink; anything but a regular file is an error.
    pub fn open_existing(
        dest: &Path,
        file_name: &str,
        chunk_size: u32,
        size: u64,
        durability: Durability,
    ) -> io::Result<PartialFile> {
        let part_path = partial_path(dest, file_name);
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&part_path);
        match opened {
            Ok(file) => {
                if !file.metadata()?.is_file() {
                    return Err(io::Error::other(format!(
                        "{} is not a regular file",
                        part_path.display()
                    )));
                }
                Ok(PartialFile::with_file(
                    file, part_path, dest, chunk_size, size, durability,
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                PartialFile::create(dest, file_name, chunk_size, size, durability)
            }
            Err(e) => Err(e),
        }
    }

    fn with_file(
        file: File,
        part_path: PathBuf,
        dest: &Path,
        chunk_size: u32,
        size: u64,
        durability: Durability,
    ) -> PartialFile {
        PartialFile {
            durability,
            file,
            part_path,
            dest: dest.to_path_buf(),
            chunk_size,
            size,
            hash_whole: false,
            hasher: None,
        }
    }

    /// Also compute the whole file's SHA-256 as chunks are written, for [`Self::finish`] to
    /// check (a download asked for by its SHA-256). Call before the first chunk is written or
    /// adopted.
    pub fn hash_whole_file(&mut self) {
        self.hash_whole = true;
    }

    /// Resume: checks every chunk already in the partial file against the manifest
    /// ([`check_partial`], then [`Self::adopt`]) and returns the intact ones. The node does
    /// the check on a thread (`disk_jobs.rs`); this is the same in one call, for the tests.
    #[cfg(test)]
    pub fn adopt_verified_chunks(&mut self, manifest: &Manifest) -> io::Result<Vec<u64>> {
        let intact = check_partial(&self.file, manifest)?;
        self.adopt(&intact)?;
        Ok(intact)
    }

    /// Hands `intact` (chunks a [`check_partial`] of this file found right) to the whole-file
    /// hasher, which reads them back from the file.
    pub fn adopt(&mut self, intact: &[u64]) -> io::Result<()> {
        if !self.hash_whole {
            return Ok(());
        }
        let hasher = self.hasher()?;
        for &index in intact {
            hasher.add_from_file(index);
        }
        Ok(())
    }

    /// A second handle on the partial file, for checking it on another thread.
    pub fn try_clone_file(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Reads `buf.len()` bytes at `offset` (a verified chunk, served to others while the
    /// download goes on).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The hidden file the chunks are written to (named in errors: it is what fills a disk).
    pub fn part_path(&self) -> &Path {
        &self.part_path
    }

    /// Whether nothing was ever written to the partial file.
    pub fn is_empty(&self) -> bool {
        self.len().is_ok_and(|n| n == 0)
    }

    /// How this file is made durable.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Bytes in the partial file now.
    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// The whole-file hasher, started on first use.
    fn hasher(&mut self) -> io::Result<&mut FileHasher> {
        if self.hasher.is_none() {
            let file = self.file.try_clone()?;
            self.hasher = Some(FileHasher::start(file, self.chunk_size, self.size)?);
        }
        Ok(self
            .hasher
            .as_mut()
            .expect("started just above if it was not"))
    }

    /// Writes verified chunk `index` at `offset`, then hands its bytes to the whole-file
    /// hasher if there is one.
    pub fn write_chunk(&mut self, index: u64, offset: u64, data: Vec<u8>) -> io::Result<()> {
        self.file.write_all_at(&data, offset)?;
        if self.hash_whole {
            self.hasher()?.add(index, data);
        } else {
            crate::wire::recycle_chunk_buffer(data);
        }
        Ok(())
    }

    /// Called when every chunk is written: checks the size (and the whole-file SHA-256 against
    /// `sha256` if one is given), makes the bytes durable and links the file under its final
    /// name without replacing anything. A file that appeared under that name meanwhile counts as
    /// saved only if it has content id `id`.
    ///
    /// Only a content mismatch removes the partial file (nothing in it can be trusted). Any
    /// other failure (the final fsync, the link, a file that appeared under the final name)
    /// keeps it: every chunk in it is verified, and `resume` re-checks them from the disk (an
    /// fsync that failed once may "succeed" later with the data gone, so nothing is assumed).
    pub fn finish(
        &mut self,
        id: &ContentId,
        sha256: Option<&Sha256>,
        size: u64,
    ) -> Result<PathBuf, FinishError> {
        if let Some(expected) = sha256 {
            let hashed = match self.hasher.take() {
                Some(hasher) => hasher.finish(),
                None => hash_file(&self.part_path),
            };
            let got = hashed.map_err(|e| {
                FinishError::Kept(format!(
                    "cannot read the finished download back ({}): {e}",
                    self.part_path.display()
                ))
            })?;
            if got != *expected {
                self.remove();
                return Err(FinishError::Mismatch(format!(
                    "the finished file hashes to {got}, not {expected}: every chunk matched \
                     content id {id}, but that content is not the file whose SHA-256 was asked \
                     for (its source listed a false SHA-256); nothing was saved"
                )));
            }
        }
        let kept = |what: &str, e: io::Error, part: &Path| {
            FinishError::Kept(format!("{what} ({}): {e}", part.display()))
        };
        // What is linked must be exactly what was verified: the chunks cover [0, size) and
        // nothing is ever written past it, but the length is checked, not assumed.
        let len = self
            .file
            .metadata()
            .map_err(|e| kept("cannot check the finished download", e, &self.part_path))?
            .len();
        if len != size {
            self.file.set_len(size).map_err(|e| {
                kept(
                    "cannot cut the finished download to size",
                    e,
                    &self.part_path,
                )
            })?;
        }
        if self.durability == Durability::EachFile {
            self.file
                .sync_all()
                .map_err(|e| kept("could not flush the download to disk", e, &self.part_path))?;
        }
        // link() fails if the destination exists: a file that appeared meanwhile is kept.
        if let Err(e) = std::fs::hard_link(&self.part_path, &self.dest) {
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(FinishError::Kept(format!(
                    "could not create {}: {e}",
                    self.dest.display()
                )));
            }
            return match check_destination(&self.dest, id) {
                Ok(_) => {
                    self.remove();
                    Ok(self.dest.clone())
                }
                Err(conflict) => Err(FinishError::Kept(conflict)),
            };
        }
        self.remove();
        Ok(self.dest.clone())
    }

    /// Unlinks the partial file, durably (a crash must not bring the name back).
    fn remove(&self) {
        let _ = std::fs::remove_file(&self.part_path);
        if self.durability == Durability::EachFile
            && let Some(dir) = self.part_path.parent()
        {
            sync_dir(dir);
        }
    }

    /// Removes the partial file (download failed or cancelled).
    pub fn abandon(self) {
        self.remove();
    }
}

/// Why a finished download was not saved.
#[derive(Debug, PartialEq, Eq)]
pub enum FinishError {
    /// The bytes are not the file asked for: the partial file is gone.
    Mismatch(String),
    /// The bytes are right but could not be saved (disk, permissions, a file in the way): the
    /// partial file is kept for `resume`.
    Kept(String),
}

/// The chunks of the partial file `file` that verify against `manifest`, in order. A torn or
/// lost write simply fails its hash (it is fetched again); holes (never written) are skipped
/// without reading.
///
/// A partial file longer than the file it becomes (the file shrank at its source, and the
/// record that said so is gone) is cut to the manifest's size first: bytes past the end are
/// never checked by any chunk hash, so they must not survive into the finished file.
pub fn check_partial(file: &File, manifest: &Manifest) -> io::Result<Vec<u64>> {
    use std::os::fd::AsRawFd;
    if file.metadata()?.len() > manifest.size {
        file.set_len(manifest.size)?;
    }
    let len = file.metadata()?.len();
    let fd = file.as_raw_fd();
    let mut buf = Vec::new();
    let mut intact = Vec::new();
    for index in 0..manifest.chunk_count() {
        let offset = manifest.chunk_offset(index);
        let chunk_len = manifest.chunk_len(index).unwrap_or(0) as u64;
        if offset + chunk_len > len {
            break;
        }
        // SEEK_DATA finds the next byte that was ever written: past this chunk means the
        // chunk is a hole.
        // SAFETY: lseek on a descriptor we own; it reads no memory of ours.
        let data_at = unsafe { libc::lseek(fd, offset as libc::off_t, libc::SEEK_DATA) };
        if data_at < 0 || data_at as u64 >= offset + chunk_len {
            continue;
        }
        buf.resize(chunk_len as usize, 0);
        file.read_exact_at(&mut buf, offset)?;
        if manifest.chunk_hash(index) == Some(&Sha256::of(&buf)) {
            intact.push(index);
        }
    }
    Ok(intact)
}

/// Bytes an unprivileged process may still write in the filesystem holding `dir`.
pub fn free_space(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("path contains a NUL byte"))?;
    // SAFETY: `path` is a valid C string and `stat` a writable statvfs the call fills in.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Both are u64 on 64-bit Linux; the casts keep 32-bit targets building.
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Where the partial file of `dest` lives: beside it, hidden.
pub fn partial_path(dest: &Path, file_name: &str) -> PathBuf {
    dest.parent()
        .unwrap_or(Path::new("."))
        .join(partial_name(file_name))
}

/// fsync a directory so a rename or link in it survives a crash (one helper for every state
/// file and download: `state_file::sync_dir`).
pub use super::state_file::sync_dir;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::manifest::manifest_of_reader;

    fn manifest_for(data: &[u8]) -> Manifest {
        manifest_of_reader(data, data.len() as u64).unwrap()
    }

    fn create(dest: &Path, name: &str, m: &Manifest) -> PartialFile {
        PartialFile::create(dest, name, m.chunk_size, m.size, Durability::EachFile).unwrap()
    }

    fn open(dest: &Path, name: &str, m: &Manifest) -> PartialFile {
        PartialFile::open_existing(dest, name, m.chunk_size, m.size, Durability::EachFile).unwrap()
    }

    /// Writes the chunks `order` names (each checked against the manifest first, as the
    /// download does).
    fn fetch_all(m: &Manifest, part: &mut PartialFile, data: &[u8], order: &[u64]) {
        for &i in order {
            let off = m.chunk_offset(i) as usize;
            let len = m.chunk_len(i).unwrap() as usize;
            let chunk = &data[off..off + len];
            assert_eq!(m.chunk_hash(i), Some(&Sha256::of(chunk)));
            part.write_chunk(i, m.chunk_offset(i), chunk.to_vec())
                .unwrap();
        }
    }

    #[test]
    fn out_of_order_chunks_finish_to_the_exact_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..256 * 1024 * 3 + 5)
            .map(|i| (i * 7 % 256) as u8)
            .collect();
        let m = manifest_for(&data);
        let dest = dir.path().join("f.bin");
        let mut part = create(&dest, "f.bin", &m);
        fetch_all(&m, &mut part, &data, &[2, 0, 3, 1]);
        assert_eq!(m.chunk_count(), 4);
        let sha = m.sha256;
        let path = part
            .finish(&ContentId::of(&m), Some(&sha), data.len() as u64)
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert!(!dir.path().join(".f.bin.p2p-part").exists());
    }

    /// Asked for by content id, a download hashes nothing but its chunks: no whole-file hasher
    /// runs, and it is saved on its verified chunks alone.
    #[test]
    fn without_a_sha256_to_check_no_whole_file_hash_is_computed() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..256 * 1024 * 2 + 9).map(|i| (i % 253) as u8).collect();
        let m = manifest_for(&data);
        let dest = dir.path().join("n");
        let mut part = create(&dest, "n", &m);
        fetch_all(&m, &mut part, &data, &[1, 0, 2]);
        assert!(part.hasher.is_none(), "no second pass over the data");
        let saved = part.finish(&ContentId::of(&m), None, data.len() as u64);
        assert_eq!(std::fs::read(saved.unwrap()).unwrap(), data);
    }

    #[test]
    fn wrong_whole_file_hash_saves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![9u8; 1000];
        let m = manifest_for(&data);
        let dest = dir.path().join("x");
        let mut part = create(&dest, "x", &m);
        part.hash_whole_file();
        fetch_all(&m, &mut part, &data, &[0]);
        assert!(part.hasher.is_some(), "hashed as the chunks are written");
        assert!(matches!(
            part.finish(&ContentId::of(&m), Some(&Sha256([0; 32])), 1000),
            Err(FinishError::Mismatch(_))
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn existing_destination_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![1u8; 10];
        let dest = dir.path().join("x");
        let m = manifest_for(&data);
        let mut part = create(&dest, "x", &m);
        fetch_all(&m, &mut part, &data, &[0]);
        std::fs::write(&dest, b"someone else's").unwrap();
        let err = part.finish(&ContentId::of(&m), None, 10).unwrap_err();
        let FinishError::Kept(err) = err else {
            panic!("{err:?}")
        };
        assert!(err.contains("different content"), "{err}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"someone else's");
        // The verified bytes stay for `resume` once the other file is moved away.
        assert_eq!(std::fs::read(dir.path().join(".x.p2p-part")).unwrap(), data);
    }

    #[test]
    fn destination_checks() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x");
        let id = ContentId::of(&manifest_for(b"abc"));
        assert_eq!(check_destination(&dest, &id), Ok(Destination::Free));
        std::fs::write(&dest, b"abc").unwrap();
        assert_eq!(check_destination(&dest, &id), Ok(Destination::AlreadyThere));
        std::fs::write(&dest, b"abd").unwrap();
        assert!(check_destination(&dest, &id).is_err());
    }

    #[test]
    fn resume_keeps_intact_chunks_and_refetches_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let chunk = 256 * 1024;
        let data: Vec<u8> = (0..chunk * 4 + 100).map(|i| (i * 31 % 256) as u8).collect();
        let dest = dir.path().join("f");
        let m = manifest_for(&data);
        let mut part = create(&dest, "f", &m);
        fetch_all(&m, &mut part, &data, &[0, 1, 3]);
        drop(part);
        // Tear chunk 1: half of it is lost.
        let part_path = dir.path().join(".f.p2p-part");
        let f = OpenOptions::new().write(true).open(&part_path).unwrap();
        f.write_all_at(&vec![0u8; chunk / 2], chunk as u64 + 1000)
            .unwrap();
        drop(f);

        let mut part = open(&dest, "f", &m);
        let intact = part.adopt_verified_chunks(&m).unwrap();
        assert_eq!(
            intact,
            vec![0, 3],
            "chunk 1 is torn, 2 and 4 were never written"
        );
        let order: Vec<u64> = (0..m.chunk_count())
            .filter(|i| !intact.contains(i))
            .collect();
        assert_eq!(order, vec![1, 2, 4]);
        fetch_all(&m, &mut part, &data, &order);
        let sha = m.sha256;
        let size = data.len() as u64;
        assert_eq!(
            std::fs::read(part.finish(&ContentId::of(&m), Some(&sha), size).unwrap()).unwrap(),
            data
        );
    }

    #[test]
    fn resume_of_a_missing_or_short_partial_starts_clean() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![8u8; 256 * 1024 * 2];
        let dest = dir.path().join("g");
        let m = manifest_for(&data);
        let mut part = open(&dest, "g", &m);
        assert!(part.adopt_verified_chunks(&m).unwrap().is_empty());
        fetch_all(&m, &mut part, &data, &[0, 1]);
        drop(part);
        let part_path = dir.path().join(".g.p2p-part");
        OpenOptions::new()
            .write(true)
            .open(&part_path)
            .unwrap()
            .set_len(300_000)
            .unwrap();
        let mut part = open(&dest, "g", &m);
        assert_eq!(part.adopt_verified_chunks(&m).unwrap(), vec![0]);
    }

    /// Every right byte, then 1 MiB of others (the file shrank at its source): the finished
    /// file is the exact bytes of the manifest, never the longer partial.
    #[test]
    fn a_partial_longer_than_the_file_is_cut_to_size() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..256 * 1024 * 32 + 3).map(|i| (i % 251) as u8).collect();
        let dest = dir.path().join("g.bin");
        let part_path = dir.path().join(".g.bin.p2p-part");
        let mut longer = data.clone();
        longer.extend(std::iter::repeat_n(0xA5u8, 1 << 20));
        std::fs::write(&part_path, &longer).unwrap();

        let m = manifest_for(&data);
        let mut part = open(&dest, "g.bin", &m);
        assert_eq!(part.adopt_verified_chunks(&m).unwrap().len(), 33);
        assert_eq!(m.chunk_count(), 33, "every chunk is intact");
        let sha = m.sha256;
        let saved = part
            .finish(&ContentId::of(&m), Some(&sha), data.len() as u64)
            .unwrap();
        let on_disk = std::fs::read(&saved).unwrap();
        assert_eq!(on_disk.len(), data.len());
        assert_eq!(Sha256::of(&on_disk), sha);
    }

    /// The same when the extra bytes sit past a partial that is still missing chunks.
    #[test]
    fn extra_bytes_past_the_end_never_reach_the_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..256 * 1024 * 3 + 10).map(|i| (i % 249) as u8).collect();
        let dest = dir.path().join("h");
        let part_path = dir.path().join(".h.p2p-part");
        let mut longer = data.clone();
        longer[10] ^= 1; // chunk 0 torn: fetched again
        longer.extend(std::iter::repeat_n(7u8, 300_000));
        std::fs::write(&part_path, &longer).unwrap();

        let m = manifest_for(&data);
        let mut part = open(&dest, "h", &m);
        assert_eq!(part.adopt_verified_chunks(&m).unwrap(), vec![1, 2, 3]);
        assert_eq!(
            std::fs::metadata(&part_path).unwrap().len(),
            data.len() as u64
        );
        fetch_all(&m, &mut part, &data, &[0]);
        let sha = m.sha256;
        let saved = part
            .finish(&ContentId::of(&m), Some(&sha), data.len() as u64)
            .unwrap();
        assert_eq!(std::fs::read(saved).unwrap(), data);
    }

    #[test]
    fn planted_symlink_at_partial_path_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(".x.p2p-part")).unwrap();
        let data = vec![5u8; 100];
        let m = manifest_for(&data);
        let mut part = create(&dir.path().join("x"), "x", &m);
        fetch_all(&m, &mut part, &data, &[0]);
        part.finish(&ContentId::of(&m), None, 100).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), data);
    }
}
