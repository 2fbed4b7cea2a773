//! Scanning the shared folder: which entries are shared (names, types, symlinks that stay
//! inside), and hashing one file while making sure it did not change meanwhile. A leaf of
//! `index/`: it imports none of the other files here.
//!
//! Regular files directly inside the folder are shared; the folders directly inside are named
//! here and walked as trees by `tree_scan.rs`. A symlink is shared only when its canonical
//! target is a regular file inside the canonical folder, and since reads check the inode
//! (`chunk_read.rs`), swapping a symlink after the scan cannot make us serve anything else.

use crate::names::{check_file_name, has_partial_suffix};
use crate::peer::content_id::ContentId;
use crate::peer::manifest::{MAX_FILE_SIZE, Manifest, Unfinished, manifest_of};
use crate::wire::Sha256;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// One shared file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedFile {
    /// The file's name in the shared folder (passes [`check_file_name`], no leading '.').
    pub name: String,
    /// `dir.join(name)`: the path we open (following a symlink, if the entry is one).
    pub path: PathBuf,
    pub manifest: Manifest,
    /// `ContentId::of(&manifest)`, computed once.
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

/// A directory entry that passed the name and type checks, with the metadata of what it names.
pub struct Candidate {
    pub(super) name: String,
    path: PathBuf,
    pub(super) size: u64,
    pub(super) mtime_ns: i128,
    dev: u64,
    pub(super) inode: u64,
}

impl Candidate {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub(super) fn into_shared(self, manifest: Manifest, content_id: ContentId) -> SharedFile {
        SharedFile {
            name: self.name,
            path: self.path,
            content_id,
            manifest,
            mtime_ns: self.mtime_ns,
            dev: self.dev,
            inode: self.inode,
        }
    }
}

/// A regular file found through a folder descriptor (`tree_scan.rs`), with the metadata
/// `fstatat` gave without following anything. `Err((name, reason))` if it is too large.
pub(super) fn regular_candidate(
    name: String,
    path: PathBuf,
    st: &libc::stat,
) -> Result<Candidate, (String, String)> {
    let size = st.st_size as u64;
    if size > MAX_FILE_SIZE {
        let why = format!("{size} bytes, over the maximum of {MAX_FILE_SIZE}");
        return Err((name, why));
    }
    Ok(Candidate {
        name,
        path,
        size,
        mtime_ns: i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
        dev: st.st_dev,
        inode: st.st_ino,
    })
}

/// A file's modification time in ns since the epoch: part of its identity.
pub(super) fn mtime_ns(meta: &Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

/// Opens a file for reading without blocking on a FIFO swapped in at its path.
pub(super) fn open_for_read(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
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
    classify_path(name.to_string(), dir.join(name), canon_dir)
}

/// Decides whether the entry at `path`, shared as `name`, is a shareable file (its name is
/// already checked): a regular file, or a symlink whose canonical target is a regular file
/// inside `canon_dir` (never a partial download). `Err((name, reason))` if not.
pub(super) fn classify_path(
    name: String,
    path: PathBuf,
    canon_dir: &Path,
) -> Result<Candidate, (String, String)> {
    let skip = |why: String| Err((name.clone(), why));
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
        // Top-level folders are walked by `tree_scan` before they get here.
        return skip("directory".to_string());
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
        name,
        path,
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
        dev: meta.dev(),
        inode: meta.ino(),
    })
}

/// What a folder holds: the shareable entries directly inside it, and (name, reason) for every
/// other entry.
pub(super) struct Listing {
    pub candidates: Vec<Candidate>,
    pub skipped: Vec<(String, String)>,
    /// Names of the folders directly inside, walked next as trees (`tree_scan.rs`).
    pub folders: Vec<String>,
}

/// The name of a folder (not a symlink to one) directly inside `dir` that is shared as a tree:
/// UTF-8, not hidden, a plain file name.
fn folder_name(dir: &Path, os_name: &std::ffi::OsStr) -> Option<String> {
    let name = os_name.to_str()?;
    if name.starts_with('.') || check_file_name(name).is_err() {
        return None;
    }
    let meta = fs::symlink_metadata(dir.join(name)).ok()?;
    meta.is_dir().then(|| name.to_string())
}

/// Lists `dir`; see [`super::SharedIndex::scan`] for what is skipped and why. Errors only if
/// `dir` itself cannot be resolved or listed.
pub(super) fn list_folder(dir: &Path) -> io::Result<Listing> {
    let canon_dir = fs::canonicalize(dir)?;
    let (mut candidates, mut skipped, mut folders) = (Vec::new(), Vec::new(), Vec::new());
    for entry in fs::read_dir(dir)? {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                skipped.push((
                    "?".to_string(),
                    format!("cannot read the folder entry: {e}"),
                ));
                continue;
            }
        };
        if let Some(name) = folder_name(dir, &entry.file_name()) {
            folders.push(name);
            continue;
        }
        match classify(dir, &canon_dir, &entry.file_name()) {
            Ok(c) => candidates.push(c),
            Err((name, why)) => skipped.push((name, why)),
        }
    }
    Ok(Listing {
        candidates,
        skipped,
        folders,
    })
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
    let manifest = manifest_of(&file, c.size, watch).map_err(|e| match e {
        Unfinished::Stopped => Unhashed::Stopped,
        Unfinished::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => changed(),
        Unfinished::Io(e) => skip("cannot read", e),
    })?;
    let after = file.metadata().map_err(|e| skip("cannot stat", e))?;
    if !same(&after) {
        return Err(changed());
    }
    let content_id = ContentId::of(&manifest);
    Ok(c.into_shared(manifest, content_id))
}

/// Hashes one file named on the command line (`p2p id`), as a scan would hash it: the file
/// must be regular (a symlink to one is followed), at most [`MAX_FILE_SIZE`] bytes, and the
/// same file (device, inode, size, mtime) before and after the reading. `Err` is the reason,
/// for the user.
pub fn hash_path(path: &Path) -> Result<SharedFile, String> {
    let meta = fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.is_dir() {
        return Err("is a directory".to_string());
    }
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(format!(
            "{} bytes, over the maximum of {MAX_FILE_SIZE}",
            meta.len()
        ));
    }
    let c = Candidate {
        name: path.to_string_lossy().into_owned(),
        path: path.to_path_buf(),
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
        dev: meta.dev(),
        inode: meta.ino(),
    };
    hash_candidate(c, |_| true).map_err(|why| match why {
        Unhashed::Skip(why) => why,
        Unhashed::Stopped => unreachable!("the watcher never stops the hashing"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::{SharedIndex, plan_scan};
    use super::*;
    use crate::peer::manifest::manifest_of_reader;
    use std::os::unix::fs::symlink;

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
        // A folder is shared as a tree (issue 15): its file is indexed under its path.
        assert_eq!(names, ["subdir/inner.txt", "visible.txt"]);
        assert_eq!(index.folder_infos()[0].name, "subdir");
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
        assert!(skip_reason(&r, "subdir").is_none());
        assert!(
            skip_reason(&r, "bad\u{fffd}name")
                .unwrap()
                .contains("UTF-8")
        );
        assert_eq!(r.skipped.len(), 7, "{:?}", r.skipped);
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
        assert_eq!(
            names,
            [
                "deep-link",
                "link.txt",
                "real.txt",
                "roundtrip",
                "sub/deep.txt"
            ]
        );
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
}
