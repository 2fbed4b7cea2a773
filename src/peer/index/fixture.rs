//! What the index's tests share: a shared folder and a cache path in a temporary folder.

use super::{ScanReport, SharedIndex};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use crate::peer::manifest::MIN_CHUNK_SIZE;

pub const CS: usize = MIN_CHUNK_SIZE as usize;

pub fn bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The content id of `data` as the index computes it (chunks of §8.1's sender's choice).
pub fn cid(data: &[u8]) -> crate::wire::ContentId {
    let manifest = crate::peer::manifest::manifest_of_reader(data, data.len() as u64)
        .expect("bytes in memory read without error");
    crate::wire::ContentId::of(&manifest)
}

pub struct Fixture {
    _tmp: tempfile::TempDir,
    pub shared: PathBuf,
    pub cache: PathBuf,
}

pub fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    fs::create_dir(&shared).unwrap();
    // The cache's folder does not exist yet: scan must create it.
    let cache = tmp.path().join("state").join("hash-cache.cbor");
    Fixture {
        shared,
        cache,
        _tmp: tmp,
    }
}

impl Fixture {
    pub fn write(&self, name: &str, data: &[u8]) {
        fs::write(self.shared.join(name), data).unwrap();
    }
    pub fn scan(&self) -> (SharedIndex, ScanReport) {
        let (index, report) = SharedIndex::scan(&self.shared, &self.cache).unwrap();
        assert_eq!(report.cache_error, None);
        (index, report)
    }
}

pub fn set_mtime(path: &Path, secs: u64) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

pub fn skip_reason<'a>(report: &'a ScanReport, name: &str) -> Option<&'a str> {
    report
        .skipped
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, r)| r.as_str())
}
