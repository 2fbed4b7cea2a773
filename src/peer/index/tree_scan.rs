//! Walking a folder of shared/ as a tree: which of its entries are shared, under which paths.
//!
//! Every entry is held to the rules a receiver checks (`folder::path_rules`), so whatever we
//! list passes them: names are normalized to NFC (a macOS name in NFD is listed as NFC and still
//! opened under its name on disk), a component that breaks a rule is skipped with the rule as
//! the reason, hidden names are skipped as at the top level, a folder deeper than
//! `MAX_DEPTH` is skipped, and a tree with more than `MAX_ENTRIES` entries or with two entries
//! that clash after case folding is not shared at all (with the reason). Files follow the
//! symlink rules of `scan.rs` (a link to a regular file inside shared/ only); a symlink to a
//! folder is never followed, so no link takes the walk out of shared/ or round a loop. Each
//! folder is opened from its parent's descriptor with `O_NOFOLLOW` (`folder::beneath::Dir`),
//! listed and stat'ed through it: a folder swapped for a symlink while the walk runs is never
//! walked through. (Hashing then opens each file by path and checks it is the inode found
//! here, and serving checks it again before every read, as for top-level files.)
//!
//! A file of a tree is in the index under `FOLDER/PATH` (its path in the tree), so hashing,
//! the hash cache and serving chunks by content id treat it as any other file.

use super::scan::{Candidate, classify_path, regular_candidate};
use crate::peer::folder::beneath::Dir;
use crate::peer::folder::path_rules::{
    EntryPath, Kind, MAX_DEPTH, MAX_ENTRIES, check_component, check_listing,
};
use std::path::Path;
use unicode_normalization::UnicodeNormalization;

/// A shared folder's entries in the listing's order: files (in the index as
/// [`TreeShape::index_name`]) and folders with nothing shared in them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeShape {
    /// The folder's name in shared/.
    pub name: String,
    pub entries: Vec<(EntryPath, Kind)>,
}

impl TreeShape {
    /// The index name of the file at `path` in this folder.
    pub fn index_name(&self, path: &EntryPath) -> String {
        format!("{}/{}", self.name, path.as_str())
    }
}

/// What walking one folder found.
pub struct TreeWalk {
    /// `None` when the folder is not shared (the reason is in `skipped`).
    pub shape: Option<TreeShape>,
    /// Its files to share (to hash, or found in the cache).
    pub candidates: Vec<Candidate>,
    /// (path, reason) of every entry not shared.
    pub skipped: Vec<(String, String)>,
}

/// Walks `shared/name` (module docs). `canon` is the canonical shared folder.
pub fn walk_tree(shared: &Path, canon: &Path, name: &str) -> TreeWalk {
    let mut w = Walker {
        canon,
        top: name,
        entries: Vec::new(),
        candidates: Vec::new(),
        skipped: Vec::new(),
        over: false,
    };
    // Each folder is opened from its parent's descriptor without following a link, so a
    // folder swapped for a symlink during the walk is refused, never walked out of shared/.
    let opened = Dir::open_root(shared).and_then(|root| root.open_dir(name));
    match opened {
        Ok(dir) => {
            w.walk(&dir, &shared.join(name), "", 1);
        }
        Err(e) => w
            .skipped
            .push((name.to_string(), format!("cannot open the folder: {e}"))),
    }
    let refuse = |mut skipped: Vec<(String, String)>, why: String| {
        skipped.push((name.to_string(), why));
        TreeWalk {
            shape: None,
            candidates: Vec::new(),
            skipped,
        }
    };
    if w.over {
        let why = format!("folder with more than {MAX_ENTRIES} entries (not shared)");
        return refuse(w.skipped, why);
    }
    w.entries
        .sort_by(|a, b| a.0.as_str().as_bytes().cmp(b.0.as_str().as_bytes()));
    if let Err(e) = check_listing(w.entries.iter().map(|(p, k)| (p, *k))) {
        return refuse(w.skipped, format!("folder not shared: {e}"));
    }
    TreeWalk {
        shape: Some(TreeShape {
            name: name.to_string(),
            entries: w.entries,
        }),
        candidates: w.candidates,
        skipped: w.skipped,
    }
}

struct Walker<'a> {
    canon: &'a Path,
    top: &'a str,
    entries: Vec<(EntryPath, Kind)>,
    candidates: Vec<Candidate>,
    skipped: Vec<(String, String)>,
    /// More than `MAX_ENTRIES` entries: the walk stops and the folder is not shared.
    over: bool,
}

impl Walker<'_> {
    /// Walks the folder `dir` (at `disk`), whose entries have paths `rel/NAME` (`NAME` at the
    /// top) and are `depth` components deep. Whether anything beneath it is shared.
    fn walk(&mut self, dir: &Dir, disk: &Path, rel: &str, depth: usize) -> bool {
        let top = self.top;
        let shown = |name: &str| match rel {
            "" => format!("{top}/{name}"),
            _ => format!("{top}/{rel}/{name}"),
        };
        let mut names = match dir.read_names() {
            Ok(names) => names,
            Err(e) => {
                self.skipped
                    .push((shown(""), format!("cannot list the folder: {e}")));
                return false;
            }
        };
        names.sort();
        let mut any = false;
        for os_name in names {
            if self.over {
                return any;
            }
            let Some(name) = os_name.to_str() else {
                let lossy = os_name.to_string_lossy().into_owned();
                self.skipped
                    .push((shown(&lossy), "name is not valid UTF-8".to_string()));
                continue;
            };
            if name.starts_with('.') {
                let why = "hidden file (name starts with '.')".to_string();
                self.skipped.push((shown(name), why));
                continue;
            }
            let nfc: String = name.nfc().collect();
            if let Err(rule) = check_component(&nfc) {
                self.skipped.push((shown(name), format!("{rule}")));
                continue;
            }
            let child = match rel {
                "" => nfc,
                _ => format!("{rel}/{nfc}"),
            };
            let path = match EntryPath::parse(&child) {
                Ok(p) => p,
                Err(e) => {
                    self.skipped.push((shown(name), e.rule.to_string()));
                    continue;
                }
            };
            let on_disk = disk.join(name);
            let st = match dir.stat(name) {
                Ok(Some(st)) => st,
                Ok(None) => continue, // gone since it was listed
                Err(e) => {
                    let why = format!("cannot read its metadata: {e}");
                    self.skipped.push((shown(name), why));
                    continue;
                }
            };
            let index_name = format!("{}/{}", self.top, path.as_str());
            let found = match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => {
                    if depth >= MAX_DEPTH {
                        let why = format!("folder more than {MAX_DEPTH} levels deep");
                        self.skipped.push((shown(name), why));
                        continue;
                    }
                    let sub = match dir.open_dir(name) {
                        Ok(sub) => sub,
                        Err(e) => {
                            let why = format!("cannot open the folder: {e}");
                            self.skipped.push((shown(name), why));
                            continue;
                        }
                    };
                    if !self.walk(&sub, &on_disk, path.as_str(), depth + 1) {
                        self.push(path, Kind::EmptyFolder);
                    }
                    any = true;
                    continue;
                }
                libc::S_IFREG => regular_candidate(index_name, on_disk, &st),
                // A symlink: the rules of the top level (a regular file inside shared/ only).
                libc::S_IFLNK => classify_path(index_name, on_disk, self.canon),
                _ => Err((index_name, "not a regular file".to_string())),
            };
            match found {
                Ok(c) => {
                    self.candidates.push(c);
                    self.push(path, Kind::File);
                    any = true;
                }
                Err(skip) => self.skipped.push(skip),
            }
        }
        any
    }

    fn push(&mut self, path: EntryPath, kind: Kind) {
        if self.entries.len() as u64 >= MAX_ENTRIES {
            self.over = true;
        } else {
            self.entries.push((path, kind));
        }
    }
}

#[cfg(test)]
mod tests;
