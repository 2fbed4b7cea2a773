//! The shared folder: which files we offer, their manifests and content ids, and reading
//! their chunks. Three jobs, one file each:
//!
//! - `scan_plan.rs`: listing the folder (which entries are shared, symlink rules), the split
//!   into files the cache knows and files to hash, hashing one file;
//! - `hash_cache.rs`: the on-disk cache of manifests keyed by (name, size, mtime in ns, inode),
//!   so restarting a peer with a big `shared/` folder does not re-hash it;
//! - `chunk_read.rs`: serving chunks, re-checking before each read that the file on disk is
//!   still the one indexed.
//!
//! This file holds the index itself ([`SharedIndex`]: the files and their look-ups) and
//! [`SharedIndex::scan`], which runs the three in a row.

mod chunk_read;
#[cfg(test)]
mod fixture;
mod hash_cache;
mod scan_plan;

pub use chunk_read::MAX_OPEN_FILES;
pub use hash_cache::{CACHE_VERSION, save_cache};
pub use scan_plan::{Candidate, ScanPlan, Unhashed, hash_candidate, hash_path, plan_scan};

use crate::peer::content_id::ContentId;
use crate::peer::manifest::Manifest;
use crate::wire::{FileInfo, Sha256};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

/// One shared file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedFile {
    /// The file's name in the shared folder (passes [`crate::names::check_file_name`], no leading '.').
    pub name: String,
    /// `dir.join(name)`: the path we open (following a symlink, if the entry is one).
    pub path: PathBuf,
    pub manifest: Manifest,
    /// `manifest.content_id()`, computed once.
    pub content_id: ContentId,
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
    /// Position in `files` of the first file with each content id.
    by_id: HashMap<ContentId, usize>,
    /// Open handles for `read_chunk` (`chunk_read.rs`).
    open: chunk_read::OpenFiles,
}

impl SharedIndex {
    /// Lists the regular files directly inside `dir` (not recursive) and gets their manifests.
    ///
    /// Skipped, each with its reason in the report: names that are not UTF-8, names starting
    /// with '.', names that fail [`crate::names::check_file_name`], directories and other non-regular files,
    /// files over [`crate::peer::manifest::MAX_FILE_SIZE`], broken symlinks, symlinks whose canonical target is outside
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
            let name = c.name().to_string();
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
        index.rebuild_maps();
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
        self.rebuild_maps();
    }

    fn rebuild_maps(&mut self) {
        self.by_sha.clear();
        self.by_id.clear();
        for (i, f) in self.files.iter().enumerate() {
            self.by_sha.entry(f.manifest.sha256).or_insert(i);
            self.by_id.entry(f.content_id).or_insert(i);
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
            content_id: manifest.content_id(),
            manifest,
            mtime_ns: scan_plan::mtime_ns(&meta),
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

    /// A file with this content id (if several files have the same content, the first by
    /// name).
    pub fn by_content_id(&self, id: &ContentId) -> Option<&SharedFile> {
        self.by_id.get(id).map(|&i| &self.files[i])
    }

    pub fn by_name(&self, name: &str) -> Option<&SharedFile> {
        self.files
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.files[i])
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;

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
    fn missing_shared_dir_is_an_error() {
        let fx = fixture();
        let missing = fx.shared.join("nope");
        assert!(SharedIndex::scan(&missing, &fx.cache).is_err());
    }
}
