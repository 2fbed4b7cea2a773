//! The resume record of a download in progress: which file, from whom, its manifest, and which
//! chunks are verified *and durable* in the partial file. CBOR, replaced atomically
//! ([`state_file`]: temporary file, fsync, rename, fsync of the folder), so a crash at any
//! instant leaves either the old record or the new one, never half of one.
//!
//! Records live in `DOWNLOADS/.p2p/resume/`, one per download, named after the SHA-256 of the
//! file name (a name may be 255 bytes; a record name must not grow past that).

use super::content_id::ContentId;
use super::manifest::Manifest;
use super::state_file::{self, sync_dir};
use crate::wire::Sha256;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// Version 2 (protocol version 2, content ids) adds `content_id` and `check_sha256`. A version-1
/// record holds the same manifest fields, so it is read as version 2 with the id derived from
/// its manifest and no SHA-256 check, and written back as version 2 at its next checkpoint.
const RECORD_VERSION: u32 = 2;
/// The version before content ids, still read (see [`RECORD_VERSION`]).
const RECORD_VERSION_1: u32 = 1;
/// Records are small (a manifest has at most 65 536 hashes): refuse anything far larger.
const MAX_RECORD_LEN: u64 = 4 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeRecord {
    pub version: u32,
    /// The file's name in the downloads folder.
    pub file_name: String,
    /// The peers it was being fetched from (found again by name after a restart).
    pub sources: Vec<String>,
    /// The content id the manifest below makes (checked on load). Absent in version 1.
    #[serde(default)]
    pub content_id: Option<ContentId>,
    /// The download was asked for by the file's SHA-256: check it at the end. Absent in
    /// version 1 (false).
    #[serde(default)]
    pub check_sha256: bool,
    /// The SHA-256 the file was listed with (proved only if `check_sha256`).
    pub sha256: Sha256,
    pub size: u64,
    pub chunk_size: u32,
    #[serde(with = "serde_bytes")]
    pub chunk_hashes: Vec<u8>,
    /// Bitmap, bit `i % 8` of byte `i / 8` set: chunk `i` is written and fsynced.
    #[serde(with = "serde_bytes")]
    pub durable: Vec<u8>,
}

impl ResumeRecord {
    pub fn new(file_name: &str, sources: Vec<String>, manifest: &Manifest) -> ResumeRecord {
        ResumeRecord {
            version: RECORD_VERSION,
            file_name: file_name.to_string(),
            sources,
            content_id: Some(ContentId::of(manifest)),
            check_sha256: false,
            sha256: manifest.sha256,
            size: manifest.size,
            chunk_size: manifest.chunk_size,
            chunk_hashes: manifest.hashes_to_wire(),
            durable: vec![0; manifest.chunk_count().div_ceil(8) as usize],
        }
    }

    /// The manifest, validated as strictly as one from the network.
    pub fn manifest(&self) -> Result<Manifest, String> {
        Manifest::from_wire(
            self.sha256,
            self.size,
            self.chunk_size,
            &self.chunk_hashes,
            None,
        )
    }

    pub fn set_durable(&mut self, index: u64) {
        if let Some(byte) = self.durable.get_mut((index / 8) as usize) {
            *byte |= 1 << (index % 8);
        }
    }

    pub fn is_durable(&self, index: u64) -> bool {
        self.durable
            .get((index / 8) as usize)
            .is_some_and(|b| b & (1 << (index % 8)) != 0)
    }

    pub fn durable_count(&self) -> u64 {
        self.durable.iter().map(|b| u64::from(b.count_ones())).sum()
    }
}

pub fn records_dir(downloads: &Path) -> PathBuf {
    super::layout::resume_dir(downloads)
}

pub fn record_path(downloads: &Path, file_name: &str) -> PathBuf {
    let key = Sha256::of(file_name.as_bytes()).to_hex();
    records_dir(downloads).join(format!("{}.cbor", &key[..32]))
}

/// Writes the record atomically.
pub fn save(downloads: &Path, record: &ResumeRecord) -> io::Result<()> {
    state_file::replace_cbor(&record_path(downloads, &record.file_name), record)
}

/// Why a record could not be used.
#[derive(Debug)]
pub enum LoadError {
    Missing,
    /// Unreadable, truncated, corrupt or inconsistent: the download restarts cleanly.
    Bad(String),
}

pub fn load(path: &Path) -> Result<ResumeRecord, LoadError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(LoadError::Missing),
        Err(e) => return Err(LoadError::Bad(e.to_string())),
    };
    if meta.len() > MAX_RECORD_LEN {
        return Err(LoadError::Bad(format!("{} bytes is too large", meta.len())));
    }
    let bytes = std::fs::read(path).map_err(|e| LoadError::Bad(e.to_string()))?;
    let mut rest = bytes.as_slice();
    let record: ResumeRecord = ciborium::de::from_reader_with_recursion_limit(&mut rest, 16)
        .map_err(|e| LoadError::Bad(format!("corrupt ({e})")))?;
    if !rest.is_empty() {
        return Err(LoadError::Bad("bytes after the record".into()));
    }
    let mut record = record;
    let manifest = match record.version {
        RECORD_VERSION | RECORD_VERSION_1 => record.manifest().map_err(LoadError::Bad)?,
        other => {
            return Err(LoadError::Bad(format!(
                "version {other} (this p2p reads versions {RECORD_VERSION_1} and {RECORD_VERSION})"
            )));
        }
    };
    let derived = ContentId::of(&manifest);
    match (record.version, record.content_id) {
        (RECORD_VERSION_1, _) => {
            record.version = RECORD_VERSION;
            record.content_id = Some(derived);
            record.check_sha256 = false;
        }
        (_, Some(stored)) if stored == derived => {}
        _ => {
            return Err(LoadError::Bad(
                "its content id does not match the manifest it holds".into(),
            ));
        }
    }
    if record.durable.len() as u64 != manifest.chunk_count().div_ceil(8) {
        return Err(LoadError::Bad("chunk bitmap of the wrong length".into()));
    }
    if record.sources.len() > 64
        || record
            .sources
            .iter()
            .any(|s| crate::names::check_peer_name(s).is_err())
    {
        return Err(LoadError::Bad("names an invalid source".into()));
    }
    if crate::names::check_file_name(&record.file_name).is_err()
        || record_path(Path::new(""), &record.file_name).file_name() != path.file_name()
    {
        return Err(LoadError::Bad("names a file it does not belong to".into()));
    }
    Ok(record)
}

pub fn load_for(downloads: &Path, file_name: &str) -> Result<ResumeRecord, LoadError> {
    load(&record_path(downloads, file_name))
}

/// Removes the record, and our state folders if that left them empty (a peer that only
/// downloads leaves nothing of ours in its downloads folder).
/// Removes a record, durably: a crash right after must not bring it back (a record of a
/// finished download would fetch it again).
pub fn remove(downloads: &Path, file_name: &str) {
    let dir = records_dir(downloads);
    if std::fs::remove_file(record_path(downloads, file_name)).is_ok() {
        sync_dir(&dir);
    }
    if std::fs::remove_dir(&dir).is_ok() && std::fs::remove_dir(super::state_dir(downloads)).is_ok()
    {
        sync_dir(downloads);
    }
}

/// Deletes the temporary records a crash between writing a record and renaming it left behind
/// (only old ones: see [`state_file::clean_stale_temps`]).
pub fn clean_stale_temps(downloads: &Path) {
    state_file::clean_stale_temps(&records_dir(downloads));
}

/// Every record in the downloads folder; bad ones come back as `(path, why)`.
pub fn list(downloads: &Path) -> (Vec<ResumeRecord>, Vec<(PathBuf, String)>) {
    clean_stale_temps(downloads);
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let Ok(entries) = std::fs::read_dir(records_dir(downloads)) else {
        return (good, bad);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("cbor") {
            continue; // a temporary file left by a crash mid-save
        }
        match load(&path) {
            Ok(record) => good.push(record),
            Err(LoadError::Bad(why)) => bad.push((path, why)),
            Err(LoadError::Missing) => {}
        }
    }
    good.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    (good, bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::manifest::manifest_of_reader;

    fn manifest(len: usize) -> Manifest {
        let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        manifest_of_reader(data.as_slice(), len as u64).unwrap()
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(256 * 1024 * 9 + 1);
        let mut rec = ResumeRecord::new("a file.bin", vec!["Alice".into()], &m);
        rec.set_durable(0);
        rec.set_durable(9);
        save(dir.path(), &rec).unwrap();
        let back = load_for(dir.path(), "a file.bin").unwrap();
        assert_eq!(back, rec);
        assert!(back.is_durable(9) && back.is_durable(0) && !back.is_durable(1));
        assert_eq!(back.durable_count(), 2);
        assert_eq!(back.manifest().unwrap(), m);
        assert_eq!(list(dir.path()).0, vec![rec]);
    }

    /// A record written before content ids (version 1: no `content_id`, no `check_sha256`) is
    /// read with the id its manifest makes and no SHA-256 check; a version-2 record whose id
    /// is not its manifest's, or a version from the future, is refused, never misread.
    #[test]
    fn version_1_records_are_migrated_and_inconsistent_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(256 * 1024 * 3 + 5);
        let mut old = ResumeRecord::new("old.bin", vec!["Alice".into()], &m);
        old.version = RECORD_VERSION_1;
        old.content_id = None;
        old.check_sha256 = true; // not a field version 1 had: dropped
        old.set_durable(1);
        save(dir.path(), &old).unwrap();
        let back = load_for(dir.path(), "old.bin").unwrap();
        assert_eq!(back.version, RECORD_VERSION);
        assert_eq!(back.content_id, Some(ContentId::of(&m)));
        assert!(!back.check_sha256);
        assert!(back.is_durable(1) && back.durable_count() == 1);

        let mut wrong = ResumeRecord::new("wrong.bin", vec!["Alice".into()], &m);
        wrong.content_id = Some(ContentId([1; 32]));
        save(dir.path(), &wrong).unwrap();
        let Err(LoadError::Bad(why)) = load_for(dir.path(), "wrong.bin") else {
            panic!("a record whose id is not its manifest's was accepted")
        };
        assert!(why.contains("content id"), "{why}");

        let mut future = ResumeRecord::new("future.bin", vec!["Alice".into()], &m);
        future.version = 3;
        save(dir.path(), &future).unwrap();
        let Err(LoadError::Bad(why)) = load_for(dir.path(), "future.bin") else {
            panic!("a record of an unknown version was accepted")
        };
        assert!(why.contains("version 3"), "{why}");
    }

    #[test]
    fn replacement_is_atomic_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(1000);
        let mut rec = ResumeRecord::new("x", vec!["Alice".into()], &m);
        save(dir.path(), &rec).unwrap();
        rec.set_durable(0);
        save(dir.path(), &rec).unwrap();
        assert!(load_for(dir.path(), "x").unwrap().is_durable(0));
        let names: Vec<_> = std::fs::read_dir(records_dir(dir.path()))
            .unwrap()
            .collect();
        assert_eq!(names.len(), 1, "only the record itself remains");
    }

    #[test]
    fn corruption_and_truncation_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let rec = ResumeRecord::new("x", vec!["Alice".into()], &manifest(256 * 1024 * 3));
        save(dir.path(), &rec).unwrap();
        let path = record_path(dir.path(), "x");
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(
                matches!(load(&path), Err(LoadError::Bad(_))),
                "cut at {cut}"
            );
        }
        // A flipped hash byte makes the manifest inconsistent only if it breaks validation;
        // a flipped bitmap length always does.
        let mut wrong = rec.clone();
        wrong.durable.push(0);
        save(dir.path(), &wrong).unwrap();
        assert!(matches!(load(&path), Err(LoadError::Bad(_))));
        std::fs::write(&path, b"garbage that is not CBOR at all").unwrap();
        assert!(matches!(load(&path), Err(LoadError::Bad(_))));
        let (good, bad) = list(dir.path());
        assert!(good.is_empty());
        assert_eq!(bad.len(), 1);
    }

    #[test]
    fn a_record_copied_under_another_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let rec = ResumeRecord::new("x", vec!["Alice".into()], &manifest(10));
        save(dir.path(), &rec).unwrap();
        std::fs::copy(record_path(dir.path(), "x"), record_path(dir.path(), "y")).unwrap();
        assert!(matches!(load_for(dir.path(), "y"), Err(LoadError::Bad(_))));
        assert!(matches!(load_for(dir.path(), "z"), Err(LoadError::Missing)));
    }

    /// A kill between writing a temporary record and renaming it leaves `.tmpXXXX` behind:
    /// old ones go at the next listing, young ones (a save in progress) stay.
    #[test]
    fn temporary_records_left_by_a_crash_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let rec = ResumeRecord::new("x", vec!["Alice".into()], &manifest(10));
        save(dir.path(), &rec).unwrap();
        let stale = records_dir(dir.path()).join(".tmpAbC123");
        let fresh = records_dir(dir.path()).join(".tmpXyZ789");
        std::fs::write(&stale, b"half a record").unwrap();
        std::fs::write(&fresh, b"a save in progress").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let (good, bad) = list(dir.path());
        assert_eq!((good.len(), bad.len()), (1, 0));
        assert!(!stale.exists(), "the stale temporary record is still there");
        assert!(fresh.exists(), "a young temporary record was removed");
    }
}
