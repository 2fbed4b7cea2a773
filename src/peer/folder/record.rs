//! The resume record of a folder download: which folder (its name in downloads/ and its id),
//! from whom, and its whole listing, so `resume` after a crash (or a SIGKILL) needs no listing
//! from the network and fetches only the contents not yet verified (`fetch_plan.rs`).
//!
//! CBOR in `DOWNLOADS/.p2p/folders/`, one per folder download, named after the SHA-256 of the
//! folder's name, replaced atomically (`state_file`). A record is checked on load as a listing
//! from the network is: every entry path against the rules and the whole listing against the
//! folder id it names (`FolderManifest::from_wire`). A record edited by hand or torn by a disk
//! is refused with the reason, never trusted to name a path.

use super::manifest::{FolderManifest, ManifestError};
use crate::peer::layout::state_dir;
use crate::peer::state_file::{self, sync_dir};
use crate::wire::{FolderEntry, FolderId, Sha256};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

const RECORD_VERSION: u32 = 1;
/// A listing of `MAX_ENTRIES` entries with long paths is under 300 MiB; real ones are far
/// smaller. Anything larger is not one of ours.
const MAX_RECORD_LEN: u64 = 256 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderRecord {
    pub version: u32,
    /// The folder's name in the downloads folder.
    pub name: String,
    /// The peers it was being fetched from.
    pub sources: Vec<String>,
    pub id: FolderId,
    /// The listing, in its order (what the id commits to).
    pub entries: Vec<FolderEntry>,
}

impl FolderRecord {
    pub fn new(name: &str, sources: Vec<String>, manifest: &FolderManifest) -> FolderRecord {
        FolderRecord {
            version: RECORD_VERSION,
            name: name.to_string(),
            sources,
            id: manifest.id(),
            entries: manifest.entries().iter().map(|e| e.to_wire()).collect(),
        }
    }
}

/// The folder of folder records.
pub fn records_dir(downloads: &Path) -> PathBuf {
    state_dir(downloads).join("folders")
}

pub fn record_path(downloads: &Path, name: &str) -> PathBuf {
    let key = Sha256::of(name.as_bytes()).to_hex();
    records_dir(downloads).join(format!("{}.cbor", &key[..32]))
}

/// Writes the record atomically.
pub fn save(downloads: &Path, record: &FolderRecord) -> io::Result<()> {
    state_file::replace_cbor(&record_path(downloads, &record.name), record)
}

/// Removes the record durably (a finished folder must not be fetched again after a crash).
pub fn remove(downloads: &Path, name: &str) {
    if std::fs::remove_file(record_path(downloads, name)).is_ok() {
        sync_dir(&records_dir(downloads));
    }
}

/// Every usable folder record, each checked as [`load`] does (those that are not are left
/// out: `resume NAME` says why).
pub fn list(downloads: &Path) -> Vec<(FolderRecord, FolderManifest)> {
    #[derive(Deserialize)]
    struct NameOnly {
        name: String,
    }
    let Ok(dir) = std::fs::read_dir(records_dir(downloads)) else {
        return Vec::new();
    };
    let mut out: Vec<(FolderRecord, FolderManifest)> = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".cbor"))
        .filter(|e| e.metadata().is_ok_and(|m| m.len() <= MAX_RECORD_LEN))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| {
            let mut rest = bytes.as_slice();
            ciborium::de::from_reader_with_recursion_limit::<NameOnly, _>(&mut rest, 16).ok()
        })
        .filter_map(|n| load(downloads, &n.name).ok())
        .collect();
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    out
}

/// Why a record cannot be used.
#[derive(Debug)]
pub enum LoadError {
    Missing,
    /// Unreadable, corrupt, or not a listing of the folder it names.
    Bad(String),
}

/// The record of the folder download `name`, checked (module docs), with its manifest.
pub fn load(downloads: &Path, name: &str) -> Result<(FolderRecord, FolderManifest), LoadError> {
    let path = record_path(downloads, name);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(LoadError::Missing),
        Err(e) => return Err(LoadError::Bad(e.to_string())),
    };
    if meta.len() > MAX_RECORD_LEN {
        return Err(LoadError::Bad(format!("{} bytes is too large", meta.len())));
    }
    let bytes = std::fs::read(&path).map_err(|e| LoadError::Bad(e.to_string()))?;
    let mut rest = bytes.as_slice();
    let record: FolderRecord = ciborium::de::from_reader_with_recursion_limit(&mut rest, 16)
        .map_err(|e| LoadError::Bad(format!("corrupt ({e})")))?;
    if !rest.is_empty() {
        return Err(LoadError::Bad("bytes after the record".into()));
    }
    if record.version != RECORD_VERSION {
        return Err(LoadError::Bad(format!(
            "version {} (this p2p reads version {RECORD_VERSION})",
            record.version
        )));
    }
    if record.name != name || crate::names::check_file_name(&record.name).is_err() {
        return Err(LoadError::Bad(
            "names a folder it does not belong to".into(),
        ));
    }
    if record.sources.len() > 64
        || record
            .sources
            .iter()
            .any(|s| crate::names::check_peer_name(s).is_err())
    {
        return Err(LoadError::Bad("names an invalid source".into()));
    }
    let manifest = FolderManifest::from_wire(&record.id, &record.entries)
        .map_err(|e: ManifestError| LoadError::Bad(e.to_string()))?;
    Ok((record, manifest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::folder::manifest::{Entry, EntryKind};
    use crate::peer::folder::path_rules::EntryPath;
    use crate::wire::ContentId;

    fn manifest() -> FolderManifest {
        let id = ContentId::from_parts(4, 262_144, &[Sha256::of(b"abcd")]);
        FolderManifest::new(vec![
            Entry {
                path: EntryPath::parse("a/b.txt").unwrap(),
                kind: EntryKind::File { size: 4, id },
            },
            Entry {
                path: EntryPath::parse("empty").unwrap(),
                kind: EntryKind::EmptyFolder,
            },
        ])
        .unwrap()
    }

    #[test]
    fn a_saved_record_loads_back_checked() {
        let dir = tempfile::tempdir().unwrap();
        let record = FolderRecord::new("Album", vec!["Alice".into()], &manifest());
        save(dir.path(), &record).unwrap();
        let (loaded, m) = load(dir.path(), "Album").unwrap();
        assert_eq!(loaded, record);
        assert_eq!(m, manifest());
        remove(dir.path(), "Album");
        assert!(matches!(load(dir.path(), "Album"), Err(LoadError::Missing)));
    }

    #[test]
    fn a_record_whose_listing_was_edited_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = FolderRecord::new("Album", vec!["Alice".into()], &manifest());
        // A path pointed outside, as a hostile edit or a torn write might.
        record.entries[0].path = "../../.bashrc".into();
        save(dir.path(), &record).unwrap();
        let Err(LoadError::Bad(why)) = load(dir.path(), "Album") else {
            panic!("an unsafe path was accepted");
        };
        assert!(why.contains("'..'"), "{why}");
        // A safe path, but not the listing the id commits to.
        let mut record = FolderRecord::new("Album", vec!["Alice".into()], &manifest());
        record.entries[0].path = "a/c.txt".into();
        save(dir.path(), &record).unwrap();
        let Err(LoadError::Bad(why)) = load(dir.path(), "Album") else {
            panic!("a listing that is not the folder's was accepted");
        };
        assert!(why.contains("folder id"), "{why}");
    }

    #[test]
    fn a_record_under_another_name_or_corrupt_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let record = FolderRecord::new("Album", vec!["Alice".into()], &manifest());
        save(dir.path(), &record).unwrap();
        std::fs::rename(
            record_path(dir.path(), "Album"),
            record_path(dir.path(), "Other"),
        )
        .unwrap();
        assert!(matches!(load(dir.path(), "Other"), Err(LoadError::Bad(_))));
        std::fs::write(record_path(dir.path(), "Album"), b"\xa1\x00garbage").unwrap();
        assert!(matches!(load(dir.path(), "Album"), Err(LoadError::Bad(_))));
    }
}
