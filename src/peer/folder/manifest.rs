//! A folder's manifest (its checked listing) and its id. Pure: no I/O.
//!
//! A folder id commits to every entry of the tree, so a receiver that asked for an id and got
//! a listing with that id knows every path, every size and every file's content id (and so,
//! through §8.4, every byte). It does not commit to the folder's own name: the same tree under
//! two names, or on two peers, is one download.
//!
//! ```text
//! entry(file)   = u32 BE len(path) ‖ path ‖ 0x00 ‖ u64 BE size ‖ content id (32 bytes)
//! entry(empty)  = u32 BE len(path) ‖ path ‖ 0x01
//! input         = "p2p-folder-id-v1" ‖ u64 BE n ‖ entry(e₀) ‖ … ‖ entry(eₙ₋₁)
//! folder id     = SHA-256(input)
//! ```
//!
//! `path` is the entry's UTF-8 relative path (components joined by `/`, NFC, rules in
//! `path_rules`), entries in strictly increasing byte order of `path`; a listing holds every
//! file and every folder that has nothing in it. The length prefix keeps two listings from
//! encoding alike. PROTOCOL.md §8.5 is the reference, with a worked example checked by this
//! file's tests. The text form is `tree1:` and 64 lowercase hex digits.

use super::path_rules::{self, EntryPath, Kind, ListingError, PathError};
use crate::wire::{ContentId, FolderEntry, FolderId};
use sha2::Digest;
use std::fmt;
use std::str::FromStr;

/// What the text form of every folder id starts with.
pub const TEXT_PREFIX: &str = "tree1:";
/// The first bytes of the id's hash input.
pub const DOMAIN_TAG: &[u8; 16] = b"p2p-folder-id-v1";

/// What one entry is, with what the id commits to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File { size: u64, id: ContentId },
    EmptyFolder,
}

/// One checked entry of a folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: EntryPath,
    pub kind: EntryKind,
}

impl Entry {
    fn rule_kind(&self) -> Kind {
        match self.kind {
            EntryKind::File { .. } => Kind::File,
            EntryKind::EmptyFolder => Kind::EmptyFolder,
        }
    }

    /// The entry as it goes on the wire.
    pub fn to_wire(&self) -> FolderEntry {
        match self.kind {
            EntryKind::File { size, id } => FolderEntry {
                path: self.path.as_str().to_string(),
                size,
                id: Some(id),
            },
            EntryKind::EmptyFolder => FolderEntry {
                path: self.path.as_str().to_string(),
                size: 0,
                id: None,
            },
        }
    }

    /// A wire entry checked against the path rules. An empty folder has size 0.
    pub fn from_wire(entry: &FolderEntry) -> Result<Entry, ManifestError> {
        let path = EntryPath::parse(&entry.path).map_err(ManifestError::Path)?;
        let kind = match entry.id {
            Some(id) => EntryKind::File {
                size: entry.size,
                id,
            },
            None if entry.size == 0 => EntryKind::EmptyFolder,
            None => return Err(ManifestError::SizedFolder(path.to_string())),
        };
        Ok(Entry { path, kind })
    }
}

/// Why a folder listing is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestError {
    Path(PathError),
    Listing(ListingError),
    /// An empty-folder entry (no content id) with a size.
    SizedFolder(String),
    /// The listing is a tree, but not the one asked for.
    IdMismatch {
        expected: FolderId,
        actual: FolderId,
    },
    /// A page that does not continue the listing (why).
    BadPage(&'static str),
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::Path(e) => e.fmt(f),
            ManifestError::Listing(e) => e.fmt(f),
            ManifestError::SizedFolder(p) => {
                write!(f, "entry '{p}' is an empty folder with a size")
            }
            ManifestError::IdMismatch { expected, actual } => write!(
                f,
                "the listing has folder id {actual}, not the {expected} asked for"
            ),
            ManifestError::BadPage(why) => write!(f, "a page of the folder listing {why}"),
        }
    }
}

impl std::error::Error for ManifestError {}

/// A folder's listing that passed every check: safe paths, canonical order, no clashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderManifest {
    entries: Vec<Entry>,
}

impl FolderManifest {
    /// Checks a whole listing (the module docs and `path_rules::check_listing`).
    pub fn new(entries: Vec<Entry>) -> Result<FolderManifest, ManifestError> {
        path_rules::check_listing(entries.iter().map(|e| (&e.path, e.rule_kind())))
            .map_err(ManifestError::Listing)?;
        Ok(FolderManifest { entries })
    }

    /// The manifest of a tree held in memory: `files` (path, bytes) and `empty_folders`, each
    /// file's content id computed as a sharing peer computes it, entries put in order. For
    /// tests and tools that know the tree and want its id.
    pub fn of_contents(
        files: &[(&str, &[u8])],
        empty_folders: &[&str],
    ) -> Result<FolderManifest, String> {
        let path = |p: &str| EntryPath::parse(p).map_err(|e| format!("{p}: {e}"));
        let mut entries = Vec::with_capacity(files.len() + empty_folders.len());
        for (p, bytes) in files {
            let m = crate::peer::manifest::manifest_of_reader(*bytes, bytes.len() as u64)
                .map_err(|e| e.to_string())?;
            let kind = EntryKind::File {
                size: m.size,
                id: ContentId::of(&m),
            };
            entries.push(Entry {
                path: path(p)?,
                kind,
            });
        }
        for p in empty_folders {
            entries.push(Entry {
                path: path(p)?,
                kind: EntryKind::EmptyFolder,
            });
        }
        entries.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
        FolderManifest::new(entries).map_err(|e| e.to_string())
    }

    /// A listing from the network, accepted only if it is the folder `expected`.
    pub fn from_wire(
        expected: &FolderId,
        entries: &[FolderEntry],
    ) -> Result<FolderManifest, ManifestError> {
        path_rules::check_entry_count(entries.len() as u64).map_err(ManifestError::Listing)?;
        let entries = entries
            .iter()
            .map(Entry::from_wire)
            .collect::<Result<Vec<_>, _>>()?;
        let manifest = FolderManifest::new(entries)?;
        let actual = manifest.id();
        if actual != *expected {
            return Err(ManifestError::IdMismatch {
                expected: *expected,
                actual,
            });
        }
        Ok(manifest)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The folder id (module docs).
    pub fn id(&self) -> FolderId {
        let mut h = sha2::Sha256::new();
        h.update(DOMAIN_TAG);
        h.update((self.entries.len() as u64).to_be_bytes());
        for e in &self.entries {
            encode_entry(e, |bytes| h.update(bytes));
        }
        FolderId(h.finalize().into())
    }

    /// How many files, and their total size.
    pub fn totals(&self) -> (u64, u64) {
        self.entries
            .iter()
            .fold((0, 0), |(n, bytes), e| match e.kind {
                EntryKind::File { size, .. } => (n + 1, bytes.saturating_add(size)),
                EntryKind::EmptyFolder => (n, bytes),
            })
    }

    /// Entries from `start` on whose wire form fits in about `budget` bytes (at least one
    /// entry while any is left): one `Folder` page.
    pub fn page(&self, start: u64, budget: usize) -> Vec<FolderEntry> {
        let mut out = Vec::new();
        let mut used = 0;
        let from = usize::try_from(start).unwrap_or(usize::MAX);
        for e in self.entries.iter().skip(from) {
            // CBOR overhead of one entry: map header, three keys, size, id: under 64 bytes.
            let cost = e.path.as_str().len() + 64;
            if !out.is_empty() && used + cost > budget {
                break;
            }
            used += cost;
            out.push(e.to_wire());
        }
        out
    }
}

/// A listing arriving in pages (`Folder` answers to `GetFolder`): checks each page as it
/// comes, entry paths included, and the whole listing and its id at the end. The declared
/// total is checked against `path_rules::MAX_ENTRIES` before anything is kept.
#[derive(Debug)]
pub struct PagedListing {
    id: FolderId,
    total: Option<u64>,
    entries: Vec<Entry>,
}

impl PagedListing {
    pub fn new(id: FolderId) -> PagedListing {
        PagedListing {
            id,
            total: None,
            entries: Vec::new(),
        }
    }

    /// The `start` of the next `GetFolder`.
    pub fn next_start(&self) -> u64 {
        self.entries.len() as u64
    }

    /// How many entries the listing declared (after its first page).
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// One page. `Ok(Some)`: the listing is complete and is the folder asked for; `Ok(None)`:
    /// ask for the next page; `Err`: the listing is refused (and so is the source).
    pub fn handle_page(
        &mut self,
        id: &FolderId,
        total: u64,
        start: u64,
        page: &[FolderEntry],
    ) -> Result<Option<FolderManifest>, ManifestError> {
        if *id != self.id {
            return Err(ManifestError::BadPage("is of another folder"));
        }
        path_rules::check_entry_count(total).map_err(ManifestError::Listing)?;
        if self.total.is_some_and(|t| t != total) {
            return Err(ManifestError::BadPage("changes the number of entries"));
        }
        self.total = Some(total);
        if start != self.next_start() {
            return Err(ManifestError::BadPage(
                "does not start where the last one ended",
            ));
        }
        if page.is_empty() && start < total {
            return Err(ManifestError::BadPage("is empty before the end"));
        }
        if page.len() as u64 > total.saturating_sub(start) {
            return Err(ManifestError::BadPage("goes past the number of entries"));
        }
        for e in page {
            self.entries.push(Entry::from_wire(e)?);
        }
        if self.next_start() < total {
            return Ok(None);
        }
        let manifest = FolderManifest::new(std::mem::take(&mut self.entries))?;
        let actual = manifest.id();
        if actual != self.id {
            return Err(ManifestError::IdMismatch {
                expected: self.id,
                actual,
            });
        }
        Ok(Some(manifest))
    }
}

/// One entry's bytes of the id's input, in pieces.
fn encode_entry(e: &Entry, mut out: impl FnMut(&[u8])) {
    let path = e.path.as_str().as_bytes();
    // An EntryPath is at most path_rules::MAX_PATH_LEN (4096) bytes.
    out(&(path.len() as u32).to_be_bytes());
    out(path);
    match e.kind {
        EntryKind::File { size, id } => {
            out(&[0x00]);
            out(&size.to_be_bytes());
            out(&id.0);
        }
        EntryKind::EmptyFolder => out(&[0x01]),
    }
}

impl FolderId {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for FolderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TEXT_PREFIX}{}", self.to_hex())
    }
}

impl fmt::Debug for FolderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FolderId({TEXT_PREFIX}{})", &self.to_hex()[..16])
    }
}

impl FromStr for FolderId {
    type Err = String;

    /// `tree1:` followed by exactly 64 hex digits (either case).
    fn from_str(s: &str) -> Result<FolderId, String> {
        let digits = s
            .strip_prefix(TEXT_PREFIX)
            .ok_or_else(|| format!("a folder id starts with '{TEXT_PREFIX}'"))?;
        let mut id = [0u8; 32];
        if digits.len() != 64 || hex::decode_to_slice(digits, &mut id).is_err() {
            return Err(format!(
                "a folder id has 64 hex digits after '{TEXT_PREFIX}'"
            ));
        }
        Ok(FolderId(id))
    }
}

#[cfg(test)]
mod tests;
