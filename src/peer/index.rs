//! The shared folder: which files we offer, their manifests and content ids, and reading
//! their chunks. One job per file, importing downward only (`scan` ← `hash_cache`,
//! `chunk_read` ← this file):
//!
//! - `index/scan.rs`: which entries of the folder are shared (names, types, symlink rules),
//!   [`SharedFile`], hashing one file (chunk hashes, content id and SHA-256 in one read);
//! - `index/hash_cache.rs`: the on-disk cache of manifests and content ids keyed by (name,
//!   size, mtime in ns, inode), so restarting a peer with a big `shared/` folder does not
//!   re-hash it;
//! - `index/chunk_read.rs`: serving chunks, re-checking before each read that the file on disk
//!   is still the one indexed;
//! - this file: the index itself ([`SharedIndex`]: the files and their look-ups), the scan
//!   plan ([`plan_scan`]: listing, then cache look-ups) and [`SharedIndex::scan`], which
//!   plans, hashes and saves the cache in a row.

mod chunk_read;
#[cfg(test)]
pub(crate) mod fixture;
mod hash_cache;
mod scan;
mod tree_scan;

pub use chunk_read::MAX_OPEN_FILES;
pub use hash_cache::{CACHE_VERSION, CACHE_VERSION_1, save_cache};
pub use scan::{Candidate, SharedFile, Unhashed, hash_candidate, hash_path};
pub use tree_scan::TreeShape;

use crate::peer::content_id::ContentId;
use crate::peer::folder::manifest::{Entry, EntryKind, FolderManifest};
use crate::peer::folder::path_rules::Kind;
use crate::peer::manifest::Manifest;
#[cfg(test)]
use crate::wire::Sha256;
use crate::wire::{ErrorCode, FileInfo, FolderId, FolderInfo};
use hash_cache::{CacheKey, Cached};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;

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
    /// Position in `files` of the first file with each content id.
    by_id: HashMap<ContentId, usize>,
    /// Open handles for `read_chunk` (`chunk_read.rs`).
    open: chunk_read::OpenFiles,
    /// The folders shared as trees, sorted by name.
    folders: Vec<SharedFolder>,
}

/// A folder of shared/ shared as a tree: its shape from the scan, and its manifest once every
/// file in it is indexed (until then it is not offered: its id would not be the tree's).
#[derive(Debug)]
pub struct SharedFolder {
    pub shape: TreeShape,
    /// The manifest and its id (computed once: an id hashes the whole listing).
    pub manifest: Option<(FolderManifest, FolderId)>,
    /// Index names of its files not indexed yet.
    missing: HashSet<String>,
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
        let mut index = SharedIndex::from_files(files);
        index.set_folders(plan.folders);
        Ok((index, report))
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
    ///
    /// A new name updates the maps in place (positions from `at` on move up by one; the new
    /// file is the first of its content unless an earlier name has it) instead of rebuilding
    /// them: the hash worker inserts every file of a scan one by one, and rebuilding made a
    /// scan of 14,000 small files take seconds of the reactor's time (quadratic hashing).
    pub fn insert(&mut self, file: SharedFile) {
        let name = file.name.clone();
        self.insert_file(file);
        if let Some((top, _)) = name.split_once('/') {
            self.folder_file_indexed(top, &name);
        }
    }

    fn insert_file(&mut self, file: SharedFile) {
        match self
            .files
            .binary_search_by(|f| f.name.as_str().cmp(&file.name))
        {
            Ok(at) => {
                // The file replaced may have been the first of its content: look again.
                self.files[at] = file;
                self.rebuild_maps();
            }
            Err(at) => {
                for i in self.by_id.values_mut() {
                    if *i >= at {
                        *i += 1;
                    }
                }
                let first = |i: &mut usize| *i = (*i).min(at);
                self.by_id
                    .entry(file.content_id)
                    .and_modify(first)
                    .or_insert(at);
                self.files.insert(at, file);
            }
        }
    }

    /// Shares these folders as trees (from a scan); each is offered once all its files are in
    /// the index.
    pub fn set_folders(&mut self, mut shapes: Vec<TreeShape>) {
        shapes.sort_by(|a, b| a.name.cmp(&b.name));
        self.folders = shapes
            .into_iter()
            .map(|shape| {
                let missing = shape
                    .entries
                    .iter()
                    .filter(|(_, kind)| *kind == Kind::File)
                    .map(|(path, _)| shape.index_name(path))
                    .filter(|name| self.by_name(name).is_none())
                    .collect();
                SharedFolder {
                    shape,
                    manifest: None,
                    missing,
                }
            })
            .collect();
        for at in 0..self.folders.len() {
            self.build_folder(at);
        }
    }

    /// The file `name` of the folder `top` was indexed (new, or hashed again): the folder's
    /// manifest is built, or built again, once nothing in it is missing.
    fn folder_file_indexed(&mut self, top: &str, name: &str) {
        let Ok(at) = self
            .folders
            .binary_search_by(|f| f.shape.name.as_str().cmp(top))
        else {
            return;
        };
        let folder = &mut self.folders[at];
        let was_missing = folder.missing.remove(name);
        if was_missing || folder.manifest.is_some() {
            self.build_folder(at);
        }
    }

    fn build_folder(&mut self, at: usize) {
        let folder = &self.folders[at];
        if !folder.missing.is_empty() {
            return;
        }
        let entries: Option<Vec<Entry>> = folder
            .shape
            .entries
            .iter()
            .map(|(path, kind)| {
                let kind = match kind {
                    Kind::EmptyFolder => EntryKind::EmptyFolder,
                    Kind::File => {
                        let f = self.by_name(&folder.shape.index_name(path))?;
                        EntryKind::File {
                            size: f.size(),
                            id: f.content_id,
                        }
                    }
                };
                Some(Entry {
                    path: path.clone(),
                    kind,
                })
            })
            .collect();
        // The shape passed check_listing in the scan, so this only fails if a file vanished.
        let manifest = entries.and_then(|e| FolderManifest::new(e).ok());
        self.folders[at].manifest = manifest.map(|m| {
            let id = m.id();
            (m, id)
        });
    }

    /// The folders shared as trees, sorted by name (with `manifest: None` while hashing).
    pub fn folders(&self) -> &[SharedFolder] {
        &self.folders
    }

    /// The folders as a `Folders` answer lists them: those whose every file is indexed.
    pub fn folder_infos(&self) -> Vec<FolderInfo> {
        self.folders
            .iter()
            .filter_map(|f| {
                let (m, id) = f.manifest.as_ref()?;
                let (files, size) = m.totals();
                Some(FolderInfo {
                    name: f.shape.name.clone(),
                    id: *id,
                    entries: m.entries().len() as u64,
                    files,
                    size,
                })
            })
            .collect()
    }

    /// The manifest of a shared folder with this id.
    pub fn folder_by_id(&self, id: &FolderId) -> Option<&FolderManifest> {
        self.folders
            .iter()
            .filter_map(|f| f.manifest.as_ref())
            .find(|(_, folder_id)| folder_id == id)
            .map(|(m, _)| m)
    }

    fn rebuild_maps(&mut self) {
        self.by_id.clear();
        for (i, f) in self.files.iter().enumerate() {
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
            content_id: ContentId::of(&manifest),
            manifest,
            mtime_ns: scan::mtime_ns(&meta),
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

    /// The files as a `Files` answer lists them: those directly in shared/ (a file of a tree
    /// is listed with its folder, `folder_infos`).
    pub fn file_infos(&self) -> Vec<FileInfo> {
        self.files
            .iter()
            .filter(|f| !f.name.contains('/'))
            .map(|f| FileInfo {
                name: f.name.clone(),
                size: f.manifest.size,
                id: f.content_id,
                sha256: f.manifest.sha256,
                partial: false,
            })
            .collect()
    }

    /// A file with this SHA-256 (if several files have the same content, the first by name).
    /// Nothing on the wire asks by SHA-256 since content ids (protocol version 2), so there is
    /// no map for it: a scan of the files, for the tests.
    #[cfg(test)]
    pub fn by_sha(&self, sha: &Sha256) -> Option<&SharedFile> {
        self.files.iter().find(|f| f.manifest.sha256 == *sha)
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

    /// Reads chunk `index` of the file with this content id into `buf` (cleared, then resized to
    /// the chunk's length) with a positioned read. Keeps up to [`MAX_OPEN_FILES`] files open.
    ///
    /// Before every read the open file is checked against the index (same device and inode,
    /// still linked, same size and mtime); any difference, a vanished file or a read error
    /// gives `Unavailable` (and closes our handle, so a restored file is picked up on the next
    /// request). Other errors: `NoSuchFile` for an unknown id, `BadChunkIndex` past the end.
    /// The texts name the file but never a local path (they go to the remote peer).
    /// On error `buf` is left empty.
    pub fn read_chunk(
        &mut self,
        id: &ContentId,
        index: u64,
        buf: &mut Vec<u8>,
    ) -> Result<(), (ErrorCode, String)> {
        buf.clear();
        self.append_chunk(id, index, buf)
    }

    /// The whole frame (length prefix included) answering `GetChunk { req, id, index }`
    /// with a `Chunk`: the envelope is written first and the file is read straight into the
    /// frame after it, so serving a chunk copies its bytes once (page cache to frame) and never
    /// zero-fills. The bytes are exactly `encode_message(&Message::Chunk { .. })`'s. Same
    /// checks and errors as [`Self::read_chunk`].
    pub fn chunk_frame(
        &mut self,
        id: &ContentId,
        req: u64,
        index: u64,
    ) -> Result<Vec<u8>, (ErrorCode, String)> {
        let (_, len) = self.locate_chunk(id, index)?;
        let mut frame = crate::wire::chunk_frame_head(req, index, len as usize);
        self.append_chunk(id, index, &mut frame)?;
        Ok(frame)
    }

    /// The file holding chunk `index` of `id`, and the chunk's length.
    fn locate_chunk(
        &self,
        id: &ContentId,
        index: u64,
    ) -> Result<(usize, u32), (ErrorCode, String)> {
        let Some(&i) = self.by_id.get(id) else {
            return Err((
                ErrorCode::NoSuchFile,
                format!("no shared file has content id {id}"),
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

    /// Appends chunk `index` of `id` to `out` (see [`Self::read_chunk`]); `out` is left as it
    /// was on error.
    fn append_chunk(
        &mut self,
        id: &ContentId,
        index: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), (ErrorCode, String)> {
        let (i, len) = self.locate_chunk(id, index)?;
        self.open.append_chunk(&self.files[i], index, len, out)
    }

    /// How many files `read_chunk` holds open (for tests and diagnostics).
    pub fn open_files(&self) -> usize {
        self.open.len()
    }
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
    /// The folders shared as trees (their files are in `ready` and `to_hash`).
    pub folders: Vec<TreeShape>,
}

/// Lists `dir` and splits its shareable files into those the cache at `cache_path` knows
/// (unchanged) and those to hash. See [`SharedIndex::scan`] for what is skipped and why.
/// Errors only if `dir` itself cannot be resolved or listed.
pub fn plan_scan(dir: &Path, cache_path: &Path) -> io::Result<ScanPlan> {
    let scan::Listing {
        mut candidates,
        mut skipped,
        folders,
    } = scan::list_folder(dir)?;
    let canon = std::fs::canonicalize(dir)?;
    let mut shapes = Vec::new();
    for name in folders {
        let walk = tree_scan::walk_tree(dir, &canon, &name);
        candidates.extend(walk.candidates);
        skipped.extend(walk.skipped);
        shapes.extend(walk.shape);
    }
    let mut plan = ScanPlan {
        skipped,
        folders: shapes,
        ..ScanPlan::default()
    };
    let mut cache = hash_cache::load_cache(cache_path);
    for c in candidates {
        let key = CacheKey {
            name: c.name.clone(),
            size: c.size,
            mtime_ns: c.mtime_ns,
            inode: c.inode,
        };
        match cache.remove(&key) {
            Some(Cached {
                manifest,
                content_id,
            }) => plan.ready.push(c.into_shared(manifest, content_id)),
            None => plan.to_hash.push(c),
        }
    }
    plan.ready.sort_by(|a, b| a.name.cmp(&b.name));
    plan.to_hash
        .sort_by(|a, b| a.size.cmp(&b.size).then_with(|| a.name.cmp(&b.name)));
    plan.skipped.sort();
    Ok(plan)
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

    /// `insert` keeps the maps as a rebuild would make them (the first file by name of each
    /// content), whatever the order the files come in and whether a name is new or replaced.
    #[test]
    fn insert_keeps_the_maps_a_rebuild_would_make() {
        let fx = fixture();
        // Three contents over six names, so several names share a content.
        for (i, name) in ["f", "b", "d", "a", "e", "c"].iter().enumerate() {
            fx.write(name, &bytes(100, i as u32 % 3));
        }
        let (scanned, _) = fx.scan();
        let all: Vec<SharedFile> = scanned.files().to_vec();
        let order = [4, 1, 5, 0, 3, 2];
        let mut index = SharedIndex::default();
        let same = |index: &SharedIndex| {
            let rebuilt = SharedIndex::from_files(index.files().to_vec());
            assert_eq!(index.by_id, rebuilt.by_id);
            for f in index.files() {
                let first = |i: &SharedIndex| i.by_sha(f.sha256()).map(|g| g.name.clone());
                assert_eq!(first(index), first(&rebuilt));
            }
        };
        for &k in &order {
            index.insert(all[k].clone());
            same(&index);
        }
        // A replaced name with other content: the old content's first file moves on.
        let mut changed = all[0].clone();
        changed.manifest = all[1].manifest.clone();
        changed.content_id = all[1].content_id;
        index.insert(changed);
        same(&index);
        assert_eq!(index.files().len(), 6);
    }

    #[test]
    fn missing_shared_dir_is_an_error() {
        let fx = fixture();
        let missing = fx.shared.join("nope");
        assert!(SharedIndex::scan(&missing, &fx.cache).is_err());
    }
}
