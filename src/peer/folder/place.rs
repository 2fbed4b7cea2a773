//! Putting a downloaded folder's verified files in place as a tree.
//!
//! Each file of a folder is downloaded and verified on its own, by content id, into a folder
//! of our choosing under a name of our choosing (`verified`, names from `verified_name`): no
//! path from the network is involved until every byte is proved. Only then is the tree built,
//! under the partial name `.NAME.p2p-part` beside the destination, each entry a hard link to
//! its verified file (so a file that appears twice, in one tree or two, was fetched once and
//! is stored once), each empty file and empty folder created; then the whole tree takes its
//! final name `NAME` in one rename that never replaces anything. Every folder is opened
//! through [`Dir`], component by component without following links, so nothing is written
//! outside the destination even if a folder in it is swapped for a symlink meanwhile.
//!
//! Placing is idempotent: after a crash it runs again over what the last run left (an entry
//! already linked to its verified file, an empty file or folder already there) and goes on.

use super::beneath::Dir;
use super::manifest::{EntryKind, FolderManifest};
use crate::names::partial_name;
use crate::wire::ContentId;
use std::fmt;
use std::io;

/// Why a tree could not be put in place. The partial tree is kept (everything in it is
/// verified) and placing it again continues.
#[derive(Debug)]
pub enum PlaceError {
    /// Creating or linking this entry failed.
    Entry { path: String, error: io::Error },
    /// Something that is not ours stands at this entry's path in the partial tree.
    InTheWay { path: String },
    /// A file or folder already has the destination's name: it is never replaced.
    Exists { name: String },
    /// Another step failed (what, and why).
    Io { what: String, error: io::Error },
}

impl fmt::Display for PlaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlaceError::Entry { path, error } => write!(f, "cannot create '{path}': {error}"),
            PlaceError::InTheWay { path } => write!(
                f,
                "'{path}' is already there and is not the verified file; nothing was replaced"
            ),
            PlaceError::Exists { name } => write!(
                f,
                "'{name}' already exists in downloads/ and is never replaced; the tree is kept as \
                 '{}'",
                partial_name(name)
            ),
            PlaceError::Io { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

impl std::error::Error for PlaceError {}

/// Builds the tree of `manifest` as `root/NAME` (module docs). `name` must be one plain
/// component (checked by the caller with `names::check_file_name`, refused here again if it
/// is not one component); `verified` holds every file of the tree with a size, under
/// `verified_name(id)`. On `Ok` the tree stands complete under its final name.
pub fn place_tree(
    root: &Dir,
    name: &str,
    manifest: &FolderManifest,
    verified: &Dir,
    verified_name: impl Fn(&ContentId) -> String,
) -> Result<(), PlaceError> {
    let part = partial_name(name);
    let io = |what: String| move |error| PlaceError::Io { what, error };
    let tree = root
        .create_dir(&part)
        .map_err(io(format!("cannot create the folder '{part}'")))?;
    // The folder the last entry went into: entries are sorted, so siblings mostly follow one
    // another. One descriptor at a time (a tree of 10,000 folders must not hold 10,000), each
    // synced when left so the names made in it are durable before the final rename.
    let mut current: Option<(String, Dir)> = None;
    for entry in manifest.entries() {
        let path = entry.path.as_str();
        let shown = entry.path.to_string();
        let fail = |error| PlaceError::Entry {
            path: shown.clone(),
            error,
        };
        let parent_key = path.rsplit_once('/').map_or("", |(p, _)| p);
        if current.as_ref().is_none_or(|(key, _)| key != parent_key) {
            if let Some((key, dir)) = current.take() {
                dir.sync()
                    .map_err(io(format!("cannot flush the folder '{key}' to disk")))?;
            }
            let dir = tree.parent_of(&entry.path, true).map_err(fail)?;
            current = Some((parent_key.to_string(), dir));
        }
        let parent = &current
            .as_ref()
            .expect("current was set just above for this parent")
            .1;
        let leaf = Dir::leaf(&entry.path);
        match entry.kind {
            EntryKind::EmptyFolder => {
                parent.create_dir(leaf).map_err(fail)?;
            }
            EntryKind::File { size: 0, .. } => match parent.create_new_file(leaf) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let st = parent.stat(leaf).map_err(fail)?;
                    if !st.is_some_and(|st| is_regular(&st) && st.st_size == 0) {
                        return Err(PlaceError::InTheWay { path: shown });
                    }
                }
                Err(e) => return Err(fail(e)),
            },
            EntryKind::File { id, .. } => {
                let source = verified_name(&id);
                match parent.link_from(verified, &source, leaf) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        // Ours only if it is the verified file itself (an earlier run's link).
                        let here = parent.stat(leaf).map_err(&fail)?;
                        let there = verified.stat(&source).map_err(&fail)?;
                        let same = matches!((here, there), (Some(a), Some(b))
                            if is_regular(&a) && a.st_dev == b.st_dev && a.st_ino == b.st_ino);
                        if !same {
                            return Err(PlaceError::InTheWay { path: shown });
                        }
                    }
                    Err(e) => return Err(fail(e)),
                }
            }
        }
    }
    if let Some((key, dir)) = current {
        dir.sync()
            .map_err(io(format!("cannot flush the folder '{key}' to disk")))?;
    }
    tree.sync()
        .map_err(io(format!("cannot flush the folder '{part}' to disk")))?;
    match root.rename_noreplace(&part, root, name) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(PlaceError::Exists {
                name: name.to_string(),
            });
        }
        Err(e) => return Err(io(format!("cannot rename '{part}' to '{name}'"))(e)),
    }
    root.sync()
        .map_err(io("cannot flush downloads/ to disk".to_string()))
}

fn is_regular(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

#[cfg(test)]
mod tests;
