//! The shared folder: which files we offer, their manifests, and reading their chunks.
//!
//! Scanning hashes every file once and remembers the manifests in an on-disk cache keyed by
//! (name, size, mtime in ns, inode), so restarting a peer with a big `shared/` folder does not
//! re-hash it. Serving a chunk re-checks that the file on disk is still the one we indexed
//! (same device and inode, same size and mtime, still linked): a file that changed, shrank,
//! vanished or was swapped for a symlink answers `Unavailable` rather than wrong bytes.
//!
//! Only regular files directly inside the folder are shared. A symlink is shared only when its
//! canonical target is a regular file inside the canonical folder, and since reads check the
//! inode, swapping a symlink after the scan cannot make us serve anything else.

use crate::names::{check_file_name, has_partial_suffix};
use crate::peer::manifest::{MAX_FILE_SIZE, Manifest, manifest_of_reader};
use crate::wire::{ErrorCode, FileInfo, Sha256};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Version of the on-disk hash cache. A cache with another version is ignored (re-hash all).
pub const CACHE_VERSION: u32 = 1;

/// How many shared files [`SharedIndex::read_chunk`] keeps open at most.
pub const MAX_OPEN_FILES: usize = 64;

/// Nesting limit when decoding the cache (its real depth is 4).
const CACHE_RECURSION_LIMIT: usize = 16;

/// One shared file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedFile {
    /// The file's name in the shared folder (passes [`check_file_name`], no leading '.').
    pub name: String,
    /// `dir.join(name)`: the path we open (following a symlink, if the entry is one).
    pub path: PathBuf,
    pub manifest: Manifest,
    /// Modification time of the file (the symlink's target for a symlink), ns since the epoch.
    pub mtime_ns: i128,
    /// Device and inode of the file (the target for a symlink): its identity when we read it.
    pub dev: u64,
    pub inode: u64,
}

impl SharedFile {
    pub fn size(&self) -> u64 {
        self.manifest.size
    }

    pub fn sha256(&self) -> &Sha256 {
        &self.manifest.sha256
    }
}

/// What a scan did. `skipped` holds (name, reason) for every directory entry not shared; the
/// names are local and may contain anything, so print them through `names::printable`.
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Files in the index.
    pub files: usize,
    /// Files hashed by this scan (not found in the cache).
    pub hashed: usize,
    pub hashed_bytes: u64,
    /// Files whose manifest came from the cache.
    pub from_cache: usize,
    pub skipped: Vec<(String, String)>,
    /// The cache could not be written (the scan itself still succeeded).
    pub cache_error: Option<String>,
}

/// The index of the shared folder. Build it with [`SharedIndex::scan`].
#[derive(Debug, Default)]
pub struct SharedIndex {
    /// Sorted by name (byte order); names are unique.
    files: Vec<SharedFile>,
    /// Position in `files` of the first file with each SHA-256.
    by_sha: HashMap<Sha256, usize>,
    /// Open handles for `read_chunk`, at most [`MAX_OPEN_FILES`], least recently used evicted.
    open: HashMap<Sha256, OpenFile>,
    /// Ticks once per `read_chunk`, for LRU eviction.
    clock: u64,
}

#[derive(Debug)]
struct OpenFile {
    file: File,
    last_use: u64,
}

/// A directory entry that passed the name and type checks, with the metadata of what it names.
pub struct Candidate {
    name: String,
    path: PathBuf,
    size: u64,
    mtime_ns: i128,
    dev: u64,
    inode: u64,
}

impl Candidate {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    fn into_shared(self, manifest: Manifest) -> SharedFile {
        SharedFile {
            name: self.name,
            path: self.path,
            manifest,
            mtime_ns: self.mtime_ns,
            dev: self.dev,
            inode: self.inode,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    name: String,
    size: u64,
    mtime_ns: i128,
    inode: u64,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: Vec<CacheEntry>,
}

#[derive(Serialize, Deserialize)]
struct CacheEntry {
    name: String,
    size: u64,
    mtime_ns: i128,
    inode: u64,
    sha256: Sha256,
    chunk_size: u32,
    #[serde(with = "serde_bytes")]
    chunk_hashes: Vec<u8>,
}

fn mtime_ns(meta: &Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

/// Opens a file for reading without blocking on a FIFO swapped in at its path.
fn open_for_read(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Why an opened file is not (any more) the file we indexed, if it is not.
fn identity_mismatch(meta: &Metadata, f: &SharedFile) -> Option<&'static str> {
    if !meta.is_file() || meta.dev() != f.dev || meta.ino() != f.inode {
        Some("was replaced")
    } else if meta.nlink() == 0 {
        Some("was deleted")
    } else if meta.len() < f.manifest.size {
        Some("shrank")
    } else if meta.len() != f.manifest.size || mtime_ns(meta) != f.mtime_ns {
        Some("was modified")
    } else {
        None
    }
}

impl SharedIndex {
    /// Lists the regular files directly inside `dir` (not recursive) and gets their manifests.
    ///
    /// Skipped, each with its reason in the report: names that are not UTF-8, names starting
    /// with '.', names that fail [`check_file_name`], directories and other non-regular files,
    /// files over [`MAX_FILE_SIZE`], broken symlinks, symlinks whose canonical target is outside
    /// the canonical `dir` (a symlink to a regular file inside `dir` is fine) or is a partial
    /// download, and files that cannot be read or change while being hashed.
    ///
    /// Files whose (name, size, mtime in ns, inode) is in the cache at `cache_path` reuse the
    /// cached manifest; the others are hashed. The cache is then rewritten atomically with the
    /// current files (`state_file.rs`: temp file in the same folder, fsync, rename). A missing,
    /// unreadable, corrupt or other-version cache means "hash everything", never an error;
    /// failing to write it is reported in [`ScanReport::cache_error`]. The cache's parent folder
    /// is created if missing.
    ///
    /// Errors only if `dir` itself cannot be resolved or listed.
    pub fn scan(dir: &Path, cache_path: &Path) -> io::Result<(SharedIndex, ScanReport)> {
        let plan = plan_scan(dir, cache_path)?;
        let mut report = ScanReport {
            from_cache: plan.ready.len(),
            skipped: plan.skipped,
            ..ScanReport::default()
        };
        let mut files = plan.ready;
        for c in plan.to_hash {
            let name = c.name.clone();
            match hash_candidate(c, |_| true) {
                Ok(f) => {
                    report.hashed += 1;
                    report.hashed_bytes += f.size();
                    files.push(f);
                }
                Err(Unhashed::Skip(why)) => report.skipped.push((name, why)),
                Err(Unhashed::Stopped) => unreachable!("the watcher never stops the hashing"),
            }
        }
        report.files = files.len();
        report.skipped.sort();
        report.cache_error = save_cache(cache_path, &files, report.hashed > 0);
        Ok((SharedIndex::from_files(files), report))
    }

    /// An index of these files (any order; names must be unique).
    pub fn from_files(mut files: Vec<SharedFile>) -> SharedIndex {
        files.sort_by(|a, b| a.name.cmp(&b.name));
        let mut index = SharedIndex {
            files,
            ..SharedIndex::default()
        };
        index.rebuild_by_sha();
        index
    }

    /// Shares one more file (just hashed); a file of the same name is replaced.
    pub fn insert(&mut self, file: SharedFile) {
        match self
            .files
            .binary_search_by(|f| f.name.as_str().cmp(&file.name))
        {
            Ok(at) => self.files[at] = file,
            Err(at) => self.files.insert(at, file),
        }
        self.rebuild_by_sha();
    }

    fn rebuild_by_sha(&mut self) {
        self.by_sha.clear();
        for (i, f) in self.files.iter().enumerate() {
            self.by_sha.entry(f.manifest.sha256).or_insert(i);
        }
    }

    /// Shares a file this peer just downloaded (from the downloads folder) until the next
    /// scan: whoever fetched from us while we were downloading can finish from us. A name
    /// already shared keeps its file.
    pub fn add_downloaded(
        &mut self,
        name: &str,
        path: &Path,
        manifest: Manifest,
    ) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        if self.by_name(name).is_some() {
            return Ok(());
        }
        let meta = std::fs::metadata(path)?;
        let file = SharedFile {
            name: name.to_string(),
            path: path.to_path_buf(),
            manifest,
            mtime_ns: mtime_ns(&meta),
            dev: meta.dev(),
            inode: meta.ino(),
        };
        self.insert(file);
        Ok(())
    }

    /// The shared files, sorted by name.
    pub fn files(&self) -> &[SharedFile] {
        &self.files
    }

    /// The files as a `Files` answer lists them.
    pub fn file_infos(&self) -> Vec<FileInfo> {
        self.files
            .iter()
            .map(|f| FileInfo {
                name: f.name.clone(),
                size: f.manifest.size,
                sha256: f.manifest.sha256,
                partial: false,
            })
            .collect()
    }

    /// A file with this SHA-256 (if several files have the same content, the first by name).
    pub fn by_sha(&self, sha: &Sha256) -> Option<&SharedFile> {
        self.by_sha.get(sha).map(|&i| &self.files[i])
    }

    pub fn by_name(&self, name: &str) -> Option<&SharedFile> {
        self.files
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.files[i])
    }

    /// Reads chunk `index` of the file with this SHA-256 into `buf` (cleared, then resized to
    /// the chunk's length) with a positioned read. Keeps up to [`MAX_OPEN_FILES`] files open.
    ///
    /// Before every read the open file is checked against the index (same device and inode,
    /// still linked, same size and mtime); any difference, a vanished file or a read error
    /// gives `Unavailable` (and closes our handle, so a restored file is picked up on the next
    /// request). Other errors: `NoSuchFile` for an unknown hash, `BadChunkIndex` past the end.
    /// The texts name the file but never a local path (they go to the remote peer).
    /// On error `buf` is left empty.
    pub fn read_chunk(
        &mut self,
        sha: &Sha256,
        index: u64,
        buf: &mut Vec<u8>,
    ) -> Result<(), (ErrorCode, String)> {
        buf.clear();
        self.append_chunk(sha, index, buf)
    }

    /// The whole frame (length prefix included) answering `GetChunk { req, sha256: sha, index }`
    /// with a `Chunk`: the envelope is written first and the file is read straight into the
    /// frame after it, so serving a chunk copies its bytes once (page cache to frame) and never
    /// zero-fills. The bytes are exactly `encode_message(&Message::Chunk { .. })`'s. Same
    /// checks and errors as [`Self::read_chunk`].
    pub fn chunk_frame(
        &mut self,
        sha: &Sha256,
        req: u64,
        index: u64,
    ) -> Result<Vec<u8>, (ErrorCode, String)> {
        let (_, len) = self.locate_chunk(sha, index)?;
        let mut frame = crate::wire::chunk_frame_head(req, index, len as usize);
        self.append_chunk(sha, index, &mut frame)?;
        Ok(frame)
    }

    /// The file holding chunk `index` of `sha`, and the chunk's length.
    fn locate_chunk(&self, sha: &Sha256, index: u64) -> Result<(usize, u32), (ErrorCode, String)> {
        let Some(&i) = self.by_sha.get(sha) else {
            return Err((
                ErrorCode::NoSuchFile,
                format!("no shared file has SHA-256 {sha}"),
            ));
        };
        let f = &self.files[i];
        match f.manifest.chunk_len(index) {
            Some(len) => Ok((i, len)),
            None => Err((
                ErrorCode::BadChunkIndex,
                format!(
                    "chunk {index} is outside '{}' ({} chunks)",
                    f.name,
                    f.manifest.chunk_count()
                ),
            )),
        }
    }

    /// Appends chunk `index` of `sha` to `out` (see [`Self::read_chunk`]); `out` is left as it
    /// was on error.
    fn append_chunk(
        &mut self,
        sha: &Sha256,
        index: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), (ErrorCode, String)> {
        let (i, len) = self.locate_chunk(sha, index)?;
        let f = &self.files[i];
        let offset = f.manifest.chunk_offset(index);
        let unavailable = |why: String| (ErrorCode::Unavailable, format!("'{}' {why}", f.name));

        self.clock += 1;
        if !self.open.contains_key(sha) {
            let file = open_for_read(&f.path)
                .map_err(|e| unavailable(format!("cannot be opened: {}", io_reason(&e))))?;
            if self.open.len() >= MAX_OPEN_FILES
                && let Some(oldest) = self
                    .open
                    .iter()
                    .min_by_key(|(_, o)| o.last_use)
                    .map(|(k, _)| *k)
            {
                self.open.remove(&oldest);
            }
            self.open.insert(
                *sha,
                OpenFile {
                    file,
                    last_use: self.clock,
                },
            );
        }
        let Some(open) = self.open.get_mut(sha) else {
            unreachable!("inserted above");
        };
        open.last_use = self.clock;

        let checked = match open.file.metadata() {
            Ok(meta) => match identity_mismatch(&meta, f) {
                None => Ok(()),
                Some(why) => Err(unavailable(format!("{why} since it was indexed"))),
            },
            Err(e) => Err(unavailable(format!("cannot be checked: {}", io_reason(&e)))),
        };
        let read = checked.and_then(|()| {
            read_exact_at_append(&open.file, out, len as usize, offset)
                .map_err(|e| unavailable(format!("cannot be read: {}", io_reason(&e))))
        });
        if read.is_err() {
            self.open.remove(sha);
        }
        read
    }

    /// How many files `read_chunk` holds open (for tests and diagnostics).
    pub fn open_files(&self) -> usize {
        self.open.len()
    }
}

/// Reads exactly `len` bytes of `file` at `offset` and appends them to `out`, straight into its
/// spare capacity (no zero-filling first). `out` is unchanged on error; a file shorter than
/// that is `UnexpectedEof`.
fn read_exact_at_append(file: &File, out: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    out.reserve(len);
    let mut done = 0;
    while done < len {
        let spare = &mut out.spare_capacity_mut()[done..len];
        let at = offset
            .checked_add(done as u64)
            .and_then(|at| libc::off_t::try_from(at).ok())
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: pread(2) writes at most `spare.len()` bytes into memory we own (the vector's
        // spare capacity) and never reads it.
        let n =
            unsafe { libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len(), at) };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            n => done += n as usize,
        }
    }
    let filled = out.len() + len;
    // SAFETY: the loop initialized the `len` bytes after the old length, within the capacity
    // reserved above.
    unsafe { out.set_len(filled) };
    Ok(())
}

/// A short reason for a remote peer: the kind of error, without the OS text that may hold paths.
fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "it no longer exists".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::UnexpectedEof => "it is shorter than indexed".to_string(),
        kind => format!("{kind}"),
    }
}

/// Decides whether one directory entry is shared. `Err((name, reason))` if not.
fn classify(
    dir: &Path,
    canon_dir: &Path,
    os_name: &std::ffi::OsStr,
) -> Result<Candidate, (String, String)> {
    let Some(name) = os_name.to_str() else {
        return Err((
            os_name.to_string_lossy().into_owned(),
            "name is not valid UTF-8".to_string(),
        ));
    };
    let skip = |why: String| Err((name.to_string(), why));
    if name.starts_with('.') {
        return skip("hidden file (name starts with '.')".to_string());
    }
    if let Err(e) = check_file_name(name) {
        return skip(e);
    }
    let path = dir.join(name);
    let link_meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) => return skip(format!("cannot read its metadata: {e}")),
    };
    let meta = if link_meta.file_type().is_symlink() {
        let target = match fs::canonicalize(&path) {
            Ok(t) => t,
            Err(e) => return skip(format!("broken symlink: {e}")),
        };
        if !target.starts_with(canon_dir) {
            return skip(format!(
                "symlink to {}, outside the shared folder",
                target.display()
            ));
        }
        if target
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(has_partial_suffix)
        {
            return skip("symlink to a partial download".to_string());
        }
        match fs::metadata(&target) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return skip("symlink to something that is not a regular file".to_string()),
            Err(e) => return skip(format!("broken symlink: {e}")),
        }
    } else if link_meta.is_dir() {
        return skip("directory (subfolders are not shared)".to_string());
    } else if !link_meta.is_file() {
        return skip("not a regular file".to_string());
    } else {
        link_meta
    };
    if meta.len() > MAX_FILE_SIZE {
        return skip(format!(
            "{} bytes, over the maximum of {MAX_FILE_SIZE}",
            meta.len()
        ));
    }
    Ok(Candidate {
        name: name.to_string(),
        path,
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
        dev: meta.dev(),
        inode: meta.ino(),
    })
}

/// The quick first part of a scan (listing, checks, cache look-ups), which needs no hashing.
/// The files in `to_hash` are then hashed one by one with [`hash_candidate`], and the cache
/// rewritten with [`save_cache`]: [`SharedIndex::scan`] does all three in a row, the hash
/// worker (`hash_worker.rs`) does them on its own thread, sharing each file as it is hashed.
#[derive(Default)]
pub struct ScanPlan {
    /// Files unchanged since they were cached: ready to share at once.
    pub ready: Vec<SharedFile>,
    /// Files to hash, smallest first: most files are shared soon, the big ones come last.
    pub to_hash: Vec<Candidate>,
    /// (name, reason) for every entry not shared, sorted.
    pub skipped: Vec<(String, String)>,
}

/// Lists `dir` and splits its shareable files into those the cache at `cache_path` knows
/// (unchanged) and those to hash. See [`SharedIndex::scan`] for what is skipped and why.
/// Errors only if `dir` itself cannot be resolved or listed.
pub fn plan_scan(dir: &Path, cache_path: &Path) -> io::Result<ScanPlan> {
    let canon_dir = fs::canonicalize(dir)?;
    let mut plan = ScanPlan::default();
    let mut candidates = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                plan.skipped.push((
                    "?".to_string(),
                    format!("cannot read the folder entry: {e}"),
                ));
                continue;
            }
        };
        match classify(dir, &canon_dir, &entry.file_name()) {
            Ok(c) => candidates.push(c),
            Err((name, why)) => plan.skipped.push((name, why)),
        }
    }
    let mut cache = load_cache(cache_path);
    for c in candidates {
        let key = CacheKey {
            name: c.name.clone(),
            size: c.size,
            mtime_ns: c.mtime_ns,
            inode: c.inode,
        };
        match cache.remove(&key) {
            Some(manifest) => plan.ready.push(c.into_shared(manifest)),
            None => plan.to_hash.push(c),
        }
    }
    plan.ready.sort_by(|a, b| a.name.cmp(&b.name));
    plan.to_hash
        .sort_by(|a, b| a.size.cmp(&b.size).then_with(|| a.name.cmp(&b.name)));
    plan.skipped.sort();
    Ok(plan)
}

/// Why [`hash_candidate`] gave no file.
#[derive(Debug, PartialEq, Eq)]
pub enum Unhashed {
    /// The file is not shared, for this reason (unreadable, changed while being read...).
    Skip(String),
    /// The watcher asked to stop.
    Stopped,
}

/// Hashes one candidate, checking that it is the file we classified and that it did not change
/// while we read it. Before every read `watch` is told how many bytes were hashed so far; it
/// returns false to stop (a cancelled scan), which gives [`Unhashed::Stopped`].
pub fn hash_candidate(
    c: Candidate,
    watch: impl FnMut(u64) -> bool,
) -> Result<SharedFile, Unhashed> {
    let changed = || {
        Unhashed::Skip(
            "changed while being indexed; it will be picked up by the next scan".to_string(),
        )
    };
    let skip = |what: &str, e: io::Error| Unhashed::Skip(format!("{what}: {e}"));
    let file = open_for_read(&c.path).map_err(|e| skip("cannot open", e))?;
    let same = |m: &Metadata| {
        m.is_file()
            && m.dev() == c.dev
            && m.ino() == c.inode
            && m.len() == c.size
            && mtime_ns(m) == c.mtime_ns
    };
    let before = file.metadata().map_err(|e| skip("cannot stat", e))?;
    if !same(&before) {
        return Err(changed());
    }
    let mut reader = Watched {
        file: &file,
        done: 0,
        watch,
        stopped: false,
    };
    let hashed = manifest_of_reader(&mut reader, c.size);
    if reader.stopped {
        return Err(Unhashed::Stopped);
    }
    let manifest = hashed.map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => changed(),
        _ => skip("cannot read", e),
    })?;
    let after = file.metadata().map_err(|e| skip("cannot stat", e))?;
    if !same(&after) {
        return Err(changed());
    }
    Ok(c.into_shared(manifest))
}

/// A file read through a watcher that sees the progress and may stop the reading.
struct Watched<'a, F> {
    file: &'a File,
    done: u64,
    watch: F,
    stopped: bool,
}

impl<F: FnMut(u64) -> bool> Read for Watched<'_, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !(self.watch)(self.done) {
            self.stopped = true;
            // Not `Interrupted`: `read_exact` would retry that.
            return Err(io::Error::other("hashing stopped"));
        }
        let n = self.file.read(buf)?;
        self.done += n as u64;
        Ok(n)
    }
}

/// Rewrites the cache at `cache_path` with the manifests of `files`; the error text if that
/// failed. Nothing to remember (`hashed_any` false) and no cache yet: writes nothing, so a
/// peer that only downloads keeps its downloads folder free of our files.
pub fn save_cache(cache_path: &Path, files: &[SharedFile], hashed_any: bool) -> Option<String> {
    if !hashed_any && !cache_path.exists() {
        return None;
    }
    write_cache(cache_path, files)
        .err()
        .map(|e| format!("cannot write the hash cache {}: {e}", cache_path.display()))
}

/// The cached manifests, or an empty map if the cache is missing, unreadable, corrupt or of
/// another version. Entries that do not make a valid manifest are dropped.
fn load_cache(cache_path: &Path) -> HashMap<CacheKey, Manifest> {
    let Ok(file) = File::open(cache_path) else {
        return HashMap::new();
    };
    let mut reader = BufReader::new(file);
    let decoded: Result<CacheFile, _> =
        ciborium::de::from_reader_with_recursion_limit(&mut reader, CACHE_RECURSION_LIMIT);
    let Ok(cache) = decoded else {
        return HashMap::new();
    };
    // Trailing bytes mean the file is not what we wrote.
    if !matches!(reader.read(&mut [0u8; 1]), Ok(0)) || cache.version != CACHE_VERSION {
        return HashMap::new();
    }
    cache
        .entries
        .into_iter()
        .filter_map(|e| {
            let m = Manifest::from_wire(
                e.sha256,
                e.size,
                e.chunk_size,
                &e.chunk_hashes,
                Some(e.size),
            )
            .ok()?;
            let key = CacheKey {
                name: e.name,
                size: e.size,
                mtime_ns: e.mtime_ns,
                inode: e.inode,
            };
            Some((key, m))
        })
        .collect()
}

/// Replaces the cache atomically with the manifests of `files`.
fn write_cache(cache_path: &Path, files: &[SharedFile]) -> io::Result<()> {
    let cache = CacheFile {
        version: CACHE_VERSION,
        entries: files
            .iter()
            .map(|f| CacheEntry {
                name: f.name.clone(),
                size: f.manifest.size,
                mtime_ns: f.mtime_ns,
                inode: f.inode,
                sha256: f.manifest.sha256,
                chunk_size: f.manifest.chunk_size,
                chunk_hashes: f.manifest.hashes_to_wire(),
            })
            .collect(),
    };
    super::state_file::replace_cbor(cache_path, &cache)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::manifest::MIN_CHUNK_SIZE;
    use std::os::unix::fs::symlink;
    use std::time::{Duration, SystemTime};

    const CS: usize = MIN_CHUNK_SIZE as usize;

    fn bytes(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        shared: PathBuf,
        cache: PathBuf,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        fs::create_dir(&shared).unwrap();
        // The cache's folder does not exist yet: scan must create it.
        let cache = tmp.path().join("state").join("hash-cache.cbor");
        Fixture {
            shared,
            cache,
            _tmp: tmp,
        }
    }

    impl Fixture {
        fn write(&self, name: &str, data: &[u8]) {
            fs::write(self.shared.join(name), data).unwrap();
        }
        fn scan(&self) -> (SharedIndex, ScanReport) {
            let (index, report) = SharedIndex::scan(&self.shared, &self.cache).unwrap();
            assert_eq!(report.cache_error, None);
            (index, report)
        }
    }

    fn set_mtime(path: &Path, secs: u64) {
        let f = OpenOptions::new().write(true).open(path).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap();
    }

    fn skip_reason<'a>(report: &'a ScanReport, name: &str) -> Option<&'a str> {
        report
            .skipped
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.as_str())
    }

    #[test]
    fn scan_lists_files_sorted_with_sizes_and_hashes() {
        let fx = fixture();
        let contents = [
            ("zeta.bin", bytes(2 * CS + 1000, 1)),
            ("alpha.txt", b"hello".to_vec()),
            ("empty", Vec::new()),
            ("Mid dle.dat", bytes(CS, 2)),
        ];
        for (name, data) in &contents {
            fx.write(name, data);
        }
        let (index, report) = fx.scan();
        let names: Vec<&str> = index.files().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["Mid dle.dat", "alpha.txt", "empty", "zeta.bin"]);
        assert_eq!(report.files, 4);
        assert_eq!(report.hashed, 4);
        assert_eq!(report.from_cache, 0);
        assert_eq!(
            report.hashed_bytes,
            contents.iter().map(|(_, d)| d.len() as u64).sum::<u64>()
        );
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
        for (name, data) in &contents {
            let f = index.by_name(name).unwrap();
            assert_eq!(f.size(), data.len() as u64);
            assert_eq!(f.manifest.sha256, Sha256::of(data), "{name}");
            let want: Vec<Sha256> = data.chunks(CS).map(Sha256::of).collect();
            assert_eq!(f.manifest.chunk_hashes, want, "{name}");
            assert_eq!(f.path, fx.shared.join(name));
            assert_eq!(index.by_sha(&Sha256::of(data)).unwrap().name, *name);
        }
        assert!(index.by_name("missing").is_none());
        assert!(index.by_sha(&Sha256([0; 32])).is_none());
        assert_eq!(index.file_infos()[1].name, "alpha.txt");
        assert_eq!(index.file_infos()[1].size, 5);
        assert!(fx.cache.is_file(), "the cache was written");
    }

    #[test]
    fn a_plan_then_hashing_one_by_one_builds_the_same_index() {
        let fx = fixture();
        fx.write("big", &bytes(2 * CS + 3, 6));
        fx.write("small", b"small");
        fx.write("same", b"same");
        fx.write("twin", b"same");
        let plan = plan_scan(&fx.shared, &fx.cache).unwrap();
        assert!(plan.ready.is_empty());
        let order: Vec<&str> = plan.to_hash.iter().map(Candidate::name).collect();
        assert_eq!(order, ["same", "twin", "small", "big"], "smallest first");
        let mut index = SharedIndex::from_files(Vec::new());
        for c in plan.to_hash {
            index.insert(hash_candidate(c, |_| true).unwrap());
        }
        let (scanned, _) = fx.scan();
        assert_eq!(index.files(), scanned.files());
        assert_eq!(index.by_sha(&Sha256::of(b"same")).unwrap().name, "same");
        // A file of the same name is replaced, and found by its new hash only.
        let mut changed = index.by_name("small").unwrap().clone();
        changed.manifest = manifest_of_reader(&b"other"[..], 5).unwrap();
        index.insert(changed);
        assert_eq!(index.files().len(), 4);
        assert!(index.by_sha(&Sha256::of(b"small")).is_none());
        assert_eq!(index.by_sha(&Sha256::of(b"other")).unwrap().name, "small");
    }

    #[test]
    fn hashing_stops_when_the_watcher_says_so() {
        let fx = fixture();
        fx.write("f", &bytes(3 * CS, 7));
        let plan = plan_scan(&fx.shared, &fx.cache).unwrap();
        let c = plan.to_hash.into_iter().next().unwrap();
        let mut seen = Vec::new();
        let stopped = hash_candidate(c, |done| {
            seen.push(done);
            done < CS as u64
        });
        assert_eq!(stopped, Err(Unhashed::Stopped));
        assert_eq!(seen, [0, CS as u64], "one look per chunk read");
    }

    #[test]
    fn second_scan_hashes_nothing() {
        let fx = fixture();
        fx.write("a", &bytes(CS + 5, 3));
        fx.write("b", b"bee");
        fx.write("c", b"");
        let (first, _) = fx.scan();
        let (second, report) = fx.scan();
        assert_eq!(report.hashed, 0);
        assert_eq!(report.hashed_bytes, 0);
        assert_eq!(report.from_cache, 3);
        assert_eq!(first.files(), second.files());
    }

    #[test]
    fn changed_files_are_rehashed_alone() {
        let fx = fixture();
        fx.write("same", b"unchanged");
        fx.write("touched", b"touched content");
        fx.write("modified", b"old content");
        let (_, r) = fx.scan();
        assert_eq!(r.hashed, 3);

        // Only the mtime changes: re-hashed, same manifest.
        set_mtime(&fx.shared.join("touched"), 1_000_000);
        // The content changes (and the mtime, explicitly: coarse clocks may not tick).
        fx.write("modified", b"new content, longer");
        set_mtime(&fx.shared.join("modified"), 2_000_000);
        // A new file appears.
        fx.write("new", b"brand new");

        let (index, r) = fx.scan();
        assert_eq!(r.hashed, 3, "touched, modified, new");
        assert_eq!(r.from_cache, 1, "same");
        assert_eq!(r.hashed_bytes, (15 + 19 + 9) as u64);
        assert_eq!(
            index.by_name("modified").unwrap().manifest.sha256,
            Sha256::of(b"new content, longer")
        );
        assert_eq!(
            index.by_name("touched").unwrap().manifest.sha256,
            Sha256::of(b"touched content")
        );

        // A deleted file leaves the index and the cache.
        fs::remove_file(fx.shared.join("same")).unwrap();
        let (index, r) = fx.scan();
        assert_eq!((r.hashed, r.from_cache, r.files), (0, 3, 3));
        assert!(index.by_name("same").is_none());
    }

    #[test]
    fn corrupt_cache_means_full_rehash() {
        let fx = fixture();
        fx.write("one", &bytes(CS + 1, 4));
        fx.write("two", b"two");
        fx.scan();
        let good = fs::read(&fx.cache).unwrap();
        assert!(good.len() > 64);

        let garbage: [&[u8]; 6] = [
            b"this is not cbor at all \xff\xfe",
            &good[..good.len() / 2],
            &good[..1],
            b"",
            // A byte string declaring 2^64-1 bytes: must not allocate it.
            &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            // 10k nested arrays.
            &[0x81; 10_000],
        ];
        for bad in garbage {
            fs::write(&fx.cache, bad).unwrap();
            let (index, r) = fx.scan();
            assert_eq!(
                (r.hashed, r.from_cache),
                (2, 0),
                "cache {:?}",
                &bad[..bad.len().min(9)]
            );
            assert_eq!(index.files().len(), 2);
            // ... and the cache is good again afterwards.
            let (_, r) = fx.scan();
            assert_eq!((r.hashed, r.from_cache), (0, 2));
        }

        // Trailing bytes after a valid cache: not what we wrote, ignored.
        let mut trailing = good.clone();
        trailing.push(0);
        fs::write(&fx.cache, &trailing).unwrap();
        assert_eq!(fx.scan().1.hashed, 2);

        // The cache path is a directory: unreadable, and unwritable (reported, not fatal).
        fs::remove_file(&fx.cache).unwrap();
        fs::create_dir(&fx.cache).unwrap();
        let (index, r) = SharedIndex::scan(&fx.shared, &fx.cache).unwrap();
        assert_eq!((r.hashed, index.files().len()), (2, 2));
        assert!(r.cache_error.is_some());
    }

    #[test]
    fn other_cache_version_is_ignored() {
        let fx = fixture();
        fx.write("f", b"data");
        fx.scan();
        let mut cache: CacheFile = ciborium::from_reader(File::open(&fx.cache).unwrap()).unwrap();
        assert_eq!(cache.version, CACHE_VERSION);
        cache.version = CACHE_VERSION + 1;
        let mut out = Vec::new();
        ciborium::into_writer(&cache, &mut out).unwrap();
        fs::write(&fx.cache, &out).unwrap();
        assert_eq!(fx.scan().1.hashed, 1);
    }

    #[test]
    fn cache_entries_with_bad_manifests_are_rehashed() {
        let fx = fixture();
        fx.write("f", &bytes(CS + 1, 5));
        fx.write("g", b"g");
        fx.scan();
        let mut cache: CacheFile = ciborium::from_reader(File::open(&fx.cache).unwrap()).unwrap();
        let f = cache.entries.iter_mut().find(|e| e.name == "f").unwrap();
        f.chunk_hashes.truncate(32); // one hash for two chunks
        let mut out = Vec::new();
        ciborium::into_writer(&cache, &mut out).unwrap();
        fs::write(&fx.cache, &out).unwrap();
        let (index, r) = fx.scan();
        assert_eq!((r.hashed, r.from_cache), (1, 1));
        assert_eq!(index.by_name("f").unwrap().manifest.chunk_count(), 2);
    }

    #[test]
    fn hidden_partial_and_non_regular_entries_are_skipped() {
        let fx = fixture();
        fx.write("visible.txt", b"v");
        fx.write(".hidden", b"h");
        fx.write(".x.p2p-part", b"p");
        fx.write("y.p2p-part", b"p");
        fx.write("trailing.", b"t");
        fx.write("colon:name", b"c");
        fx.write("esc\x1b[31m", b"e");
        fs::create_dir(fx.shared.join("subdir")).unwrap();
        fs::write(fx.shared.join("subdir").join("inner.txt"), b"i").unwrap();
        let bad_utf8: &std::ffi::OsStr = std::os::unix::ffi::OsStrExt::from_bytes(b"bad\xffname");
        fs::write(fx.shared.join(bad_utf8), b"b").unwrap();

        let (index, r) = fx.scan();
        let names: Vec<&str> = index.files().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["visible.txt"]);
        assert!(skip_reason(&r, ".hidden").unwrap().contains("hidden"));
        assert!(skip_reason(&r, ".x.p2p-part").unwrap().contains("hidden"));
        assert!(
            skip_reason(&r, "y.p2p-part")
                .unwrap()
                .contains("reserved suffix")
        );
        assert!(skip_reason(&r, "trailing.").unwrap().contains("dot"));
        assert!(skip_reason(&r, "colon:name").unwrap().contains("':'"));
        assert!(skip_reason(&r, "esc\x1b[31m").unwrap().contains("\\x1b"));
        assert!(skip_reason(&r, "subdir").unwrap().contains("directory"));
        assert!(
            skip_reason(&r, "bad\u{fffd}name")
                .unwrap()
                .contains("UTF-8")
        );
        assert_eq!(r.skipped.len(), 8, "{:?}", r.skipped);
    }

    #[test]
    fn symlinks_inside_are_shared_outside_are_not() {
        let fx = fixture();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"outside secret").unwrap();
        fx.write("real.txt", b"real content");
        fs::create_dir(fx.shared.join("sub")).unwrap();
        fs::write(fx.shared.join("sub").join("deep.txt"), b"deep content").unwrap();
        fx.write(".a.p2p-part", b"partial");

        symlink("real.txt", fx.shared.join("link.txt")).unwrap();
        symlink(fx.shared.join("sub/deep.txt"), fx.shared.join("deep-link")).unwrap();
        symlink(outside.path().join("secret"), fx.shared.join("out-link")).unwrap();
        symlink("../../../../../../etc/passwd", fx.shared.join("passwd")).unwrap();
        symlink("missing", fx.shared.join("dangling")).unwrap();
        symlink("loop2", fx.shared.join("loop1")).unwrap();
        symlink("loop1", fx.shared.join("loop2")).unwrap();
        symlink("sub", fx.shared.join("dir-link")).unwrap();
        symlink(".", fx.shared.join("self-link")).unwrap();
        symlink(".a.p2p-part", fx.shared.join("part-link")).unwrap();
        // A symlink whose path leaves the folder and comes back is inside.
        let shared_name = fx.shared.file_name().unwrap().to_str().unwrap();
        symlink(
            format!("../{shared_name}/real.txt"),
            fx.shared.join("roundtrip"),
        )
        .unwrap();

        let (index, r) = fx.scan();
        let names: Vec<&str> = index.files().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["deep-link", "link.txt", "real.txt", "roundtrip"]);
        assert_eq!(
            index.by_name("link.txt").unwrap().manifest.sha256,
            Sha256::of(b"real content")
        );
        assert_eq!(
            index.by_name("deep-link").unwrap().manifest.sha256,
            Sha256::of(b"deep content")
        );
        assert!(skip_reason(&r, "out-link").unwrap().contains("outside"));
        let passwd = skip_reason(&r, "passwd").unwrap();
        assert!(
            passwd.contains("outside") || passwd.contains("broken"),
            "{passwd}"
        );
        assert!(skip_reason(&r, "dangling").unwrap().contains("broken"));
        assert!(skip_reason(&r, "loop1").unwrap().contains("broken"));
        assert!(
            skip_reason(&r, "dir-link")
                .unwrap()
                .contains("not a regular file")
        );
        assert!(
            skip_reason(&r, "self-link")
                .unwrap()
                .contains("not a regular file")
        );
        assert!(skip_reason(&r, "part-link").unwrap().contains("partial"));
        // Same content under three names: by_sha gives one of them.
        let by_sha = &index.by_sha(&Sha256::of(b"real content")).unwrap().name;
        assert!(["link.txt", "real.txt", "roundtrip"].contains(&by_sha.as_str()));
        assert!(index.by_name("secret").is_none());
        assert!(index.by_sha(&Sha256::of(b"outside secret")).is_none());
    }

    #[test]
    fn symlink_swapped_after_scan_is_not_followed() {
        let fx = fixture();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"same size!!!").unwrap();
        fx.write("real.txt", b"real content");
        symlink("real.txt", fx.shared.join("link.txt")).unwrap();
        let (mut index, _) = fx.scan();
        let sha = Sha256::of(b"real content");
        // Two files have this hash; the first by name serves it.
        assert_eq!(index.by_sha(&sha).unwrap().name, "link.txt");
        fs::remove_file(fx.shared.join("link.txt")).unwrap();
        symlink(outside.path().join("secret"), fx.shared.join("link.txt")).unwrap();
        let mut buf = Vec::new();
        let (code, msg) = index.read_chunk(&sha, 0, &mut buf).unwrap_err();
        assert_eq!(code, ErrorCode::Unavailable, "{msg}");
        assert!(buf.is_empty());
        assert!(!msg.contains(outside.path().to_str().unwrap()), "{msg}");
    }

    #[test]
    fn files_over_the_maximum_are_skipped() {
        let fx = fixture();
        let f = File::create(fx.shared.join("huge.img")).unwrap();
        if let Err(e) = f.set_len(MAX_FILE_SIZE + 1) {
            eprintln!("cannot make a sparse file over 256 GiB here ({e}); skipping");
            return;
        }
        fx.write("small", b"s");
        let (index, r) = fx.scan();
        assert_eq!(index.files().len(), 1);
        assert_eq!(r.hashed_bytes, 1);
        assert!(
            skip_reason(&r, "huge.img")
                .unwrap()
                .contains("over the maximum")
        );
    }

    #[test]
    fn chunk_frame_is_the_encoded_chunk_and_errors_like_read_chunk() {
        use crate::wire::{Message, encode_message};
        let fx = fixture();
        let data = bytes(2 * CS + 99, 8);
        fx.write("f", &data);
        let (mut index, _) = fx.scan();
        let sha = Sha256::of(&data);
        for (i, want) in data.chunks(CS).enumerate() {
            let frame = index.chunk_frame(&sha, 1000 + i as u64, i as u64).unwrap();
            let expected = encode_message(&Message::Chunk {
                req: 1000 + i as u64,
                index: i as u64,
                data: want.to_vec(),
            });
            assert!(
                frame == expected,
                "chunk {i}: the frame differs from the encoder's"
            );
        }
        let (code, _) = index.chunk_frame(&sha, 1, 3).unwrap_err();
        assert_eq!(code, ErrorCode::BadChunkIndex);
        let (code, _) = index.chunk_frame(&Sha256([7; 32]), 1, 0).unwrap_err();
        assert_eq!(code, ErrorCode::NoSuchFile);
        // Shrunk behind our back: the read comes up short, which is `Unavailable`.
        let f = OpenOptions::new()
            .write(true)
            .open(fx.shared.join("f"))
            .unwrap();
        f.set_len(CS as u64 + 10).unwrap();
        let (code, _) = index.chunk_frame(&sha, 1, 1).unwrap_err();
        assert_eq!(code, ErrorCode::Unavailable);
    }

    #[test]
    fn read_chunk_returns_the_right_bytes() {
        let fx = fixture();
        let data = bytes(3 * CS + 777, 6);
        fx.write("big", &data);
        fx.write("tiny", b"tiny");
        fx.write("empty", b"");
        let (mut index, _) = fx.scan();
        let sha = Sha256::of(&data);
        let mut buf = vec![0xAA; 10]; // stale contents must not leak into the result
        for (i, want) in data.chunks(CS).enumerate() {
            index.read_chunk(&sha, i as u64, &mut buf).unwrap();
            assert_eq!(buf.len(), want.len(), "chunk {i}");
            assert!(buf == want, "chunk {i} differs");
            assert_eq!(
                Sha256::of(&buf),
                index.by_sha(&sha).unwrap().manifest.chunk_hashes[i]
            );
        }
        // Middle chunk again, after the last (positioned reads, no cursor state).
        index.read_chunk(&sha, 1, &mut buf).unwrap();
        assert!(buf == data[CS..2 * CS]);

        let (code, _) = index.read_chunk(&sha, 4, &mut buf).unwrap_err();
        assert_eq!(code, ErrorCode::BadChunkIndex);
        assert!(buf.is_empty());
        let (code, _) = index.read_chunk(&sha, u64::MAX, &mut buf).unwrap_err();
        assert_eq!(code, ErrorCode::BadChunkIndex);

        let tiny = Sha256::of(b"tiny");
        index.read_chunk(&tiny, 0, &mut buf).unwrap();
        assert_eq!(buf, b"tiny");
        let (code, _) = index.read_chunk(&tiny, 1, &mut buf).unwrap_err();
        assert_eq!(code, ErrorCode::BadChunkIndex);

        let (code, _) = index.read_chunk(&Sha256::of(b""), 0, &mut buf).unwrap_err();
        assert_eq!(
            code,
            ErrorCode::BadChunkIndex,
            "an empty file has no chunks"
        );

        let (code, msg) = index.read_chunk(&Sha256([9; 32]), 0, &mut buf).unwrap_err();
        assert_eq!(code, ErrorCode::NoSuchFile);
        assert!(msg.contains(&Sha256([9; 32]).to_hex()));
        assert_eq!(index.open_files(), 2);
    }

    #[test]
    fn read_chunk_after_truncation_deletion_or_modification_is_unavailable() {
        let fx = fixture();
        let a = bytes(2 * CS, 7);
        let b = bytes(2 * CS, 8);
        let c = bytes(100, 9);
        let d = bytes(100, 10);
        fx.write("a", &a);
        fx.write("b", &b);
        fx.write("c", &c);
        fx.write("d", &d);
        let (mut index, _) = fx.scan();
        let mut buf = Vec::new();
        let unavailable = |r: Result<(), (ErrorCode, String)>| {
            let (code, msg) = r.unwrap_err();
            assert_eq!(code, ErrorCode::Unavailable, "{msg}");
            assert!(
                !msg.contains(fx.shared.to_str().unwrap()),
                "path leaked: {msg}"
            );
            msg
        };

        // Truncated while open: the first chunk is still there, but the file shrank.
        index.read_chunk(&Sha256::of(&a), 1, &mut buf).unwrap();
        OpenOptions::new()
            .write(true)
            .open(fx.shared.join("a"))
            .unwrap()
            .set_len(CS as u64 + 10)
            .unwrap();
        let msg = unavailable(index.read_chunk(&Sha256::of(&a), 0, &mut buf));
        assert!(msg.contains("shrank"), "{msg}");
        assert!(buf.is_empty());

        // Deleted while open (our handle would still read the old bytes) and never opened.
        index.read_chunk(&Sha256::of(&b), 0, &mut buf).unwrap();
        fs::remove_file(fx.shared.join("b")).unwrap();
        let msg = unavailable(index.read_chunk(&Sha256::of(&b), 0, &mut buf));
        assert!(msg.contains("deleted"), "{msg}");
        fs::remove_file(fx.shared.join("c")).unwrap();
        unavailable(index.read_chunk(&Sha256::of(&c), 0, &mut buf));

        // Same size, new content and mtime.
        let mut d2 = d.clone();
        d2[50] ^= 1;
        fx.write("d", &d2);
        set_mtime(&fx.shared.join("d"), 3_000_000);
        let msg = unavailable(index.read_chunk(&Sha256::of(&d), 0, &mut buf));
        assert!(msg.contains("modified"), "{msg}");

        // Put back exactly (same inode, size and mtime): served again.
        let meta = fs::metadata(fx.shared.join("d")).unwrap();
        fx.write("d", &d);
        let f = OpenOptions::new()
            .write(true)
            .open(fx.shared.join("d"))
            .unwrap();
        let mtime = index.by_name("d").unwrap().mtime_ns;
        f.set_modified(
            SystemTime::UNIX_EPOCH
                + Duration::from_secs((mtime / 1_000_000_000) as u64)
                + Duration::from_nanos((mtime % 1_000_000_000) as u64),
        )
        .unwrap();
        assert_eq!(meta.ino(), fs::metadata(fx.shared.join("d")).unwrap().ino());
        index.read_chunk(&Sha256::of(&d), 0, &mut buf).unwrap();
        assert_eq!(buf, d);
    }

    #[test]
    fn open_file_cache_is_bounded() {
        let fx = fixture();
        let n = MAX_OPEN_FILES + 6;
        for i in 0..n {
            fx.write(&format!("f{i:03}"), format!("content {i}").as_bytes());
        }
        let (mut index, _) = fx.scan();
        let mut buf = Vec::new();
        for round in 0..2 {
            for i in 0..n {
                let want = format!("content {i}");
                index
                    .read_chunk(&Sha256::of(want.as_bytes()), 0, &mut buf)
                    .unwrap();
                assert_eq!(buf, want.as_bytes(), "round {round} file {i}");
                assert!(index.open_files() <= MAX_OPEN_FILES);
            }
        }
        assert_eq!(index.open_files(), MAX_OPEN_FILES);
    }

    #[test]
    fn missing_shared_dir_is_an_error() {
        let fx = fixture();
        let missing = fx.shared.join("nope");
        assert!(SharedIndex::scan(&missing, &fx.cache).is_err());
    }

    #[test]
    fn cache_round_trips_i128_mtimes() {
        let entry = CacheFile {
            version: CACHE_VERSION,
            entries: vec![CacheEntry {
                name: "n".into(),
                size: 1,
                mtime_ns: -1_234_567_890_123,
                inode: u64::MAX,
                sha256: Sha256([3; 32]),
                chunk_size: MIN_CHUNK_SIZE,
                chunk_hashes: vec![3; 32],
            }],
        };
        let mut out = Vec::new();
        ciborium::into_writer(&entry, &mut out).unwrap();
        let back: CacheFile = ciborium::from_reader(&out[..]).unwrap();
        assert_eq!(back.entries[0].mtime_ns, -1_234_567_890_123);
        assert_eq!(back.entries[0].inode, u64::MAX);
    }
}
