//! Writing a tree beneath one folder without ever following a link out of it.
//!
//! A path joined as text and opened by name is resolved by the kernel at each use: a folder in
//! downloads/ swapped for a symlink between two opens sends the second write wherever the
//! link points (the race behind Syncthing CVE-2017-1000420). Here every folder is a
//! descriptor ([`Dir`]), opened from its parent's descriptor one component at a time with
//! `O_NOFOLLOW | O_DIRECTORY`, and every file is created relative to such a descriptor with
//! `O_CREAT | O_EXCL | O_NOFOLLOW`. A descriptor keeps naming the folder it was opened on
//! whatever happens to its name afterwards; a symlink put in the way of a later open makes
//! that open fail (`ELOOP` or `ENOTDIR`) instead of being followed.
//!
//! Every name given here must be one component (no `/`, not `.` or `..`): entry paths are
//! checked by `path_rules` first, and this module refuses such a name again rather than trust
//! that (one cheap test, and the one line between a bug and a traversal).

use super::path_rules::EntryPath;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// An open folder: everything created through it lands inside the folder it was opened on.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

fn c_name(name: &str) -> io::Result<CString> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "'{}' is not one path component",
                crate::names::printable(name)
            ),
        ));
    }
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `Err(last_os_error)` when a libc call returned -1.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl Dir {
    /// Opens the folder everything is written beneath (the user's downloads folder). This one
    /// open follows links: where the user keeps downloads/ is the user's choice.
    pub fn open_root(path: &Path) -> io::Result<Dir> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `c` is a valid NUL-terminated string; the result is checked.
        let fd = check(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Opens the folder `name` inside this one. A symlink there is refused, never followed.
    pub fn open_dir(&self, name: &str) -> io::Result<Dir> {
        let c = c_name(name)?;
        // SAFETY: a valid descriptor and NUL-terminated name; the result is checked.
        let fd = check(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Opens the folder `name` inside this one, creating it if it is not there (then this
    /// folder is synced, so the new name survives a crash).
    pub fn create_dir(&self, name: &str) -> io::Result<Dir> {
        let c = c_name(name)?;
        // SAFETY: a valid descriptor and NUL-terminated name; the result is checked.
        match check(unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), 0o755) }) {
            Ok(_) => self.sync()?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        self.open_dir(name)
    }

    /// The folder that holds entry `path` (its parent), opened component by component from
    /// here, each created if `create` and missing. For `a/b/c` that is `a/b`.
    pub fn parent_of(&self, path: &EntryPath, create: bool) -> io::Result<Dir> {
        let mut dir = self.try_clone()?;
        let depth = path.depth();
        for component in path.components().take(depth - 1) {
            dir = if create {
                dir.create_dir(component)?
            } else {
                dir.open_dir(component)?
            };
        }
        Ok(dir)
    }

    /// The last component of `path`: the name of the entry inside [`Self::parent_of`].
    pub fn leaf(path: &EntryPath) -> &str {
        path.components()
            .last()
            .expect("an EntryPath has at least one component (EntryPath::parse)")
    }

    /// Creates the regular file `name` here, read-write; fails if anything already has that
    /// name (a file, a folder or a symlink, which is never followed).
    pub fn create_new_file(&self, name: &str) -> io::Result<File> {
        let c = c_name(name)?;
        // SAFETY: a valid descriptor and NUL-terminated name; the result is checked.
        let fd = check(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o644 as libc::c_uint,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Opens the regular file `name` here for reading; a symlink is refused.
    pub fn open_file(&self, name: &str) -> io::Result<File> {
        let c = c_name(name)?;
        // SAFETY: a valid descriptor and NUL-terminated name; the result is checked.
        let fd = check(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        let file = unsafe { File::from_raw_fd(fd) };
        if !file.metadata()?.is_file() {
            return Err(io::Error::other(format!(
                "'{}' is not a regular file",
                crate::names::printable(name)
            )));
        }
        Ok(file)
    }

    /// Gives the file `from` in `from_dir` a second name `to` here (a hard link: the same
    /// bytes, no copy). Fails if `to` exists; a symlink at `from` is linked as a link, never
    /// followed.
    pub fn link_from(&self, from_dir: &Dir, from: &str, to: &str) -> io::Result<()> {
        let (f, t) = (c_name(from)?, c_name(to)?);
        // SAFETY: valid descriptors and NUL-terminated names; flags 0 = do not follow.
        check(unsafe {
            libc::linkat(
                from_dir.fd.as_raw_fd(),
                f.as_ptr(),
                self.fd.as_raw_fd(),
                t.as_ptr(),
                0,
            )
        })?;
        Ok(())
    }

    /// Renames `from` here to `to` in `to_dir` without replacing anything there
    /// (`renameat2(RENAME_NOREPLACE)`): a file or folder that appeared at `to` is kept and
    /// this fails with `AlreadyExists`. Works for folders too (a link cannot).
    pub fn rename_noreplace(&self, from: &str, to_dir: &Dir, to: &str) -> io::Result<()> {
        let (f, t) = (c_name(from)?, c_name(to)?);
        // SAFETY: valid descriptors and NUL-terminated names; the result is checked.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                self.fd.as_raw_fd(),
                f.as_ptr(),
                to_dir.fd.as_raw_fd(),
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if ret == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Removes the file (not folder) `name` here; a symlink is removed, not followed.
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        let c = c_name(name)?;
        // SAFETY: a valid descriptor and NUL-terminated name; the result is checked.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) })?;
        Ok(())
    }

    /// What is at `name` here, without following a symlink: `None` if nothing.
    pub fn stat(&self, name: &str) -> io::Result<Option<libc::stat>> {
        let c = c_name(name)?;
        // SAFETY: zeroed is a valid `stat`; the call fills it or fails.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid descriptor, NUL-terminated name and a `stat` to fill.
        let ret = unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        match check(ret) {
            Ok(_) => Ok(Some(st)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes everything written to this folder's file system durable (`syncfs`): one call
    /// for a whole tree of files that were never synced one by one.
    pub fn sync_file_system(&self) -> io::Result<()> {
        // SAFETY: a valid descriptor owned by self.
        check(unsafe { libc::syncfs(self.fd.as_raw_fd()) })?;
        Ok(())
    }

    /// Makes the names in this folder durable (a created or renamed entry survives a crash).
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: a valid descriptor; the result is checked.
        check(unsafe { libc::fsync(self.fd.as_raw_fd()) })?;
        Ok(())
    }

    /// The names in this folder (not `.` and `..`), read through the descriptor, so they are
    /// this folder's whatever its path names now.
    pub fn read_names(&self) -> io::Result<Vec<std::ffi::OsString>> {
        // Linux: the descriptor's entry in /proc is the opened folder itself, not a path to
        // look up again.
        let fd_path = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        std::fs::read_dir(fd_path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }

    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
        })
    }
}

#[cfg(test)]
mod tests;
