//! Walking a folder of shared/ as a tree: which of its entries are shared, under which paths.
//!
//! Every entry is held to the rules a receiver checks (`folder::path_rules`), so whatever we
//! list passes them: names are normalized to NFC (a macOS name in NFD is listed as NFC and still
//! opened under its name on disk), a component that breaks a rule is skipped with the rule as
//! the reason, hidden names are skipped as at the top level, a folder deeper than
//! `MAX_DEPTH` is skipped, and a tree with more than `MAX_ENTRIES` entries or with two entries
//! that clash after case folding is not shared at all (with the reason). Files follow the
//! symlink rules of `scan.rs` (a link to a regular file inside shared/ only); a symlink to a
//! folder is never followed, so no link takes the walk out of shared/ or round a loop.
//!
//! A file of a tree is in the index under `FOLDER/PATH` (its path in the tree), so hashing,
//! the hash cache and serving chunks by content id treat it as any other file.

use super::scan::{Candidate, classify_path};
use crate::peer::folder::path_rules::{
    EntryPath, Kind, MAX_DEPTH, MAX_ENTRIES, check_component, check_listing,
};
use std::fs;
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
    w.walk(&shared.join(name), "", 1);
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
    /// Walks the folder `disk`, whose entries have paths `rel/NAME` (`NAME` at the top) and are
    /// `depth` components deep. Whether anything beneath it is shared.
    fn walk(&mut self, disk: &Path, rel: &str, depth: usize) -> bool {
        let top = self.top;
        let shown = |name: &str| match rel {
            "" => format!("{top}/{name}"),
            _ => format!("{top}/{rel}/{name}"),
        };
        let mut names: Vec<_> = match fs::read_dir(disk) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect(),
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
            let is_dir = fs::symlink_metadata(&on_disk).is_ok_and(|m| m.is_dir());
            if is_dir {
                if depth >= MAX_DEPTH {
                    let why = format!("folder more than {MAX_DEPTH} levels deep");
                    self.skipped.push((shown(name), why));
                    continue;
                }
                if !self.walk(&on_disk, path.as_str(), depth + 1) {
                    self.push(path, Kind::EmptyFolder);
                }
                any = true;
                continue;
            }
            let index_name = format!("{}/{}", self.top, path.as_str());
            match classify_path(index_name, on_disk, self.canon) {
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
