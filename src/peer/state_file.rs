//! The one way the peer replaces a state file (hash cache, peer cache, resume records): write a
//! temporary file in the same folder, fsync it, rename it over the target, fsync the folder.
//!
//! Why each step: the temporary file shares the target's folder so the rename stays on one
//! filesystem and is atomic; the fsync before the rename makes sure the new name never points at
//! data still in the page cache (a crash would leave an empty or short file under the real name);
//! the folder fsync makes the rename itself survive a power loss. The target is never opened for
//! writing, so until the rename it holds the old content, whole.
//!
//! Temporary files are named `.p2p-tmp-*` so that the leftovers of a crash between write and
//! rename can be recognised and removed at start by [`clean_stale_temps`].

use serde::Serialize;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every temporary file this module creates starts with this.
pub const TEMP_PREFIX: &str = ".p2p-tmp-";
/// What versions before [`TEMP_PREFIX`] left behind (tempfile's default prefix): still ours
/// when found in one of our state folders.
const LEGACY_TEMP_PREFIX: &str = ".tmp";
/// A temporary file older than this is left by a crash mid-save (a save takes milliseconds);
/// a younger one may be a save in progress in another process and is left alone.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

/// Replaces `path` with `value` as CBOR, atomically, creating the folder if missing.
pub fn replace_cbor<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    replace_with(path, |out| {
        let mut w = BufWriter::new(out);
        ciborium::into_writer(value, &mut w).map_err(|e| io::Error::other(e.to_string()))?;
        w.flush()
    })
}

/// Replaces `path` with what `write` produces, atomically: after a crash at any instant the file
/// holds either its old content or the new one, never a mix. On error the old content is intact
/// and the temporary file is gone. Errors name the path and the step that failed, and keep the
/// OS error's kind (a full disk stays `StorageFull`).
pub fn replace_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = folder_of(path);
    std::fs::create_dir_all(dir).map_err(|e| naming(e, "cannot create the folder", dir))?;
    let tmp = write_temp(dir, write)?;
    commit(tmp, path)
}

/// Creates `path` with what `write` produces, unless something is there already (then the
/// error's kind is `AlreadyExists` and nothing is changed): like [`replace_with`], but the last
/// step is a link that never overwrites (`persist_noclobber`), so of two processes creating one
/// file at once exactly one wins and the other can read the winner's whole file.
pub fn create_with(path: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let dir = folder_of(path);
    std::fs::create_dir_all(dir).map_err(|e| naming(e, "cannot create the folder", dir))?;
    let tmp = write_temp(dir, write)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {
            sync_dir(dir);
            Ok(())
        }
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Err(e.error),
        Err(e) => Err(naming(e.error, "cannot create", path)),
    }
}

/// The folder `path` lives in; `.` for a bare file name.
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A complete, fsynced temporary file in `dir`. Dropped before [`commit`], it deletes itself.
fn write_temp(
    dir: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<tempfile::NamedTempFile> {
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| naming(e, "cannot create a temporary file in", dir))?;
    let tmp_path = tmp.path().to_path_buf();
    write(tmp.as_file_mut()).map_err(|e| naming(e, "cannot write", &tmp_path))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| naming(e, "cannot flush to disk", &tmp_path))?;
    Ok(tmp)
}

/// Renames the finished temporary file over `path`, then makes the rename durable.
fn commit(tmp: tempfile::NamedTempFile, path: &Path) -> io::Result<()> {
    tmp.persist(path)
        .map_err(|e| naming(e.error, "cannot replace", path))?;
    sync_dir(folder_of(path));
    Ok(())
}

/// Makes the entries of `dir` (a rename, a removal) durable. Failing here is not an error: the
/// content is complete and in place, only its survival of a power loss is in doubt, and some
/// filesystems refuse to fsync a folder at all.
pub fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `e` with what failed and on which path in its text, same kind.
fn naming(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Deletes, in `dir`, the temporary files a crash between writing and renaming left behind.
/// Only old ones: a younger one may belong to a save in progress in another process. A missing
/// folder is nothing to clean.
pub fn clean_stale_temps(dir: &Path) {
    for path in stale_temps(dir) {
        tracing::info!("removing {}, left by a crash", path.display());
        let _ = std::fs::remove_file(path);
    }
}

fn stale_temps(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| is_temp_name(entry.file_name().as_encoded_bytes()))
        .filter(|entry| {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= STALE_TEMP_AGE)
        })
        .map(|entry| entry.path())
        .collect()
}

fn is_temp_name(name: &[u8]) -> bool {
    name.starts_with(TEMP_PREFIX.as_bytes()) || name.starts_with(LEGACY_TEMP_PREFIX.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::SystemTime;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn age(path: &Path, by: Duration) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - by)
            .unwrap();
    }

    #[test]
    fn round_trip_creates_the_folder_and_leaves_only_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("x.cbor");
        replace_cbor(&path, &vec![1u32, 2, 3]).unwrap();
        replace_cbor(&path, &vec![4u32, 5]).unwrap();
        let back: Vec<u32> = ciborium::from_reader(File::open(&path).unwrap()).unwrap();
        assert_eq!(back, vec![4, 5]);
        assert_eq!(names_in(path.parent().unwrap()), vec!["x.cbor"]);
    }

    /// The target is never opened for writing: while the new content is being written it
    /// still reads as the old one, and a writer that fails leaves the old one and no temporary.
    #[test]
    fn the_old_file_is_whole_until_the_new_one_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, b"old content").unwrap();
        let err = replace_with(&path, |out| {
            out.write_all(b"half of the new")?;
            assert_eq!(std::fs::read(&path).unwrap(), b"old content");
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert!(err.to_string().contains(TEMP_PREFIX), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old content");
        assert_eq!(names_in(dir.path()), vec!["x"]);
    }

    /// A kill between writing and renaming: the temporary file stays, the target keeps its
    /// old content; the leftover goes once it is old, and a young one (a save in progress
    /// elsewhere) stays.
    #[test]
    fn a_crash_before_the_rename_keeps_the_old_content_and_its_leftover_is_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, b"old content").unwrap();
        let crashed = write_temp(dir.path(), |out| out.write_all(b"new content")).unwrap();
        let (_, leftover) = crashed.keep().unwrap();
        let young = write_temp(dir.path(), |out| out.write_all(b"in progress")).unwrap();
        let (_, young) = young.keep().unwrap();
        let legacy = dir.path().join(".tmpAbC123");
        std::fs::write(&legacy, b"left by an older version").unwrap();
        let unrelated = dir.path().join(".hidden");
        std::fs::write(&unrelated, b"not ours").unwrap();
        for old in [&leftover, &legacy, &unrelated] {
            age(old, Duration::from_secs(3600));
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"old content");

        clean_stale_temps(dir.path());
        assert!(
            !leftover.exists() && !legacy.exists(),
            "stale temporaries stay"
        );
        assert!(young.exists(), "a young temporary file was removed");
        assert!(
            unrelated.exists(),
            "a file that is not a temporary was removed"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"old content");
        clean_stale_temps(&dir.path().join("missing"));
    }

    #[test]
    fn create_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join("x");
        create_with(&path, |out| out.write_all(b"first")).unwrap();
        let err = create_with(&path, |out| out.write_all(b"second")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(names_in(path.parent().unwrap()), vec!["x"]);
    }

    #[test]
    fn a_read_only_folder_gives_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::write(ro.join("x"), b"old content").unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        let target = ro.join("x");
        let err = as_unprivileged(move || replace_cbor(&target, &1u32)).unwrap_err();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("cannot create a temporary file in")
                && text.contains(&*ro.to_string_lossy()),
            "{text}"
        );
        assert_eq!(std::fs::read(ro.join("x")).unwrap(), b"old content");
    }

    /// Runs `f` on a thread whose file accesses are judged as user `nobody` when we are root
    /// (permission bits do not bind root). `setfsuid` changes the calling thread only, so the
    /// other tests are unaffected.
    fn as_unprivileged<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            // SAFETY: plain syscalls with no pointers; they affect this short-lived thread only.
            if unsafe { libc::geteuid() } == 0 {
                unsafe { libc::setfsuid(65534) };
            }
            f()
        })
        .join()
        .expect("the test body panicked")
    }
}
