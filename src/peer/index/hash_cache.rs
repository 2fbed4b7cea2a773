//! The hash cache (`.p2p/hash-cache.cbor`): the manifests and content ids of the shared files,
//! keyed by (name, size, mtime in ns, inode), so a restart does not hash the folder again.

use super::scan::SharedFile;
use crate::peer::content_id::ContentId;
use crate::peer::manifest::Manifest;
use crate::wire::Sha256;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// Version of the on-disk hash cache this peer writes: 2, whose entries hold content ids.
pub const CACHE_VERSION: u32 = 2;
/// The version before content ids. Its entries are migrated when read (the id is computed
/// from the cached chunk hashes, no file is read) and the cache is rewritten as version 2.
pub const CACHE_VERSION_1: u32 = 1;

/// Nesting limit when decoding the cache (its real depth is 4).
const CACHE_RECURSION_LIMIT: usize = 16;

/// What identifies a file on disk well enough to reuse its cached manifest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct CacheKey {
    pub name: String,
    pub size: u64,
    pub mtime_ns: i128,
    pub inode: u64,
}

/// A cached file: its manifest and its content id (checked against each other when loaded).
pub(super) struct Cached {
    pub manifest: Manifest,
    pub content_id: ContentId,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: Vec<CacheEntry>,
}

/// One file. Version 1 had every field but `content_id`.
#[derive(Serialize, Deserialize)]
struct CacheEntry {
    name: String,
    size: u64,
    mtime_ns: i128,
    inode: u64,
    sha256: Sha256,
    chunk_size: u32,
    #[serde(with = "serde_bytes")]
    chunk_hashes: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_id: Option<ContentId>,
}

/// Rewrites the cache at `cache_path` with the manifests of `files`; the error text if that
/// failed. Nothing to remember (`hashed_any` false) and no cache yet: writes nothing, so a
/// peer that only downloads keeps its downloads folder free of our files.
pub fn save_cache(cache_path: &Path, files: &[SharedFile], hashed_any: bool) -> Option<String> {
    if !hashed_any && !cache_path.exists() {
        return None;
    }
    write_cache(cache_path, files)
        .err()
        .map(|e| format!("cannot write the hash cache {}: {e}", cache_path.display()))
}

/// The cached files, or none if the cache is missing, unreadable, corrupt or of a version we
/// do not know (a newer peer's: logged, and every file is hashed again). Version 1 is migrated.
/// An entry is dropped (its file hashed again) unless it makes a valid manifest and, in
/// version 2, its content id is the manifest's: nothing is taken on trust.
pub(super) fn load_cache(cache_path: &Path) -> HashMap<CacheKey, Cached> {
    let Ok(file) = File::open(cache_path) else {
        return HashMap::new();
    };
    let mut reader = BufReader::new(file);
    let decoded: Result<CacheFile, _> =
        ciborium::de::from_reader_with_recursion_limit(&mut reader, CACHE_RECURSION_LIMIT);
    let Ok(cache) = decoded else {
        return HashMap::new();
    };
    // Trailing bytes mean the file is not what we wrote.
    if !matches!(reader.read(&mut [0u8; 1]), Ok(0)) {
        return HashMap::new();
    }
    match cache.version {
        CACHE_VERSION => {}
        CACHE_VERSION_1 => tracing::info!(
            "hash cache {} is of version 1 (no content ids): migrating it to version \
             {CACHE_VERSION}",
            cache_path.display()
        ),
        other => {
            tracing::warn!(
                "hash cache {} is of version {other}, which this p2p does not know (it reads \
                 {CACHE_VERSION_1} and {CACHE_VERSION}): ignored, every shared file is hashed \
                 again",
                cache_path.display()
            );
            return HashMap::new();
        }
    }
    let version = cache.version;
    cache
        .entries
        .into_iter()
        .filter_map(|e| {
            let manifest = Manifest::from_wire(
                e.sha256,
                e.size,
                e.chunk_size,
                &e.chunk_hashes,
                Some(e.size),
            )
            .ok()?;
            let content_id = ContentId::of(&manifest);
            let consistent = match (version, e.content_id) {
                (CACHE_VERSION_1, None) => true,
                (CACHE_VERSION, Some(stored)) => stored == content_id,
                _ => false,
            };
            if !consistent {
                return None;
            }
            let key = CacheKey {
                name: e.name,
                size: e.size,
                mtime_ns: e.mtime_ns,
                inode: e.inode,
            };
            Some((
                key,
                Cached {
                    manifest,
                    content_id,
                },
            ))
        })
        .collect()
}

/// Replaces the cache atomically with the manifests of `files`.
fn write_cache(cache_path: &Path, files: &[SharedFile]) -> io::Result<()> {
    let cache = CacheFile {
        version: CACHE_VERSION,
        entries: files
            .iter()
            .map(|f| CacheEntry {
                name: f.name.clone(),
                size: f.manifest.size,
                mtime_ns: f.mtime_ns,
                inode: f.inode,
                sha256: f.manifest.sha256,
                chunk_size: f.manifest.chunk_size,
                chunk_hashes: f.manifest.hashes_to_wire(),
                content_id: Some(f.content_id),
            })
            .collect(),
    };
    crate::peer::state_file::replace_cbor(cache_path, &cache)
}

#[cfg(test)]
mod tests {
    use super::super::SharedIndex;
    use super::super::fixture::*;
    use super::*;
    use crate::peer::manifest::{MIN_CHUNK_SIZE, manifest_of_reader};
    use std::fs;

    fn read_cache(fx: &Fixture) -> CacheFile {
        ciborium::from_reader(File::open(&fx.cache).unwrap()).unwrap()
    }

    fn write_cache_file(fx: &Fixture, cache: &CacheFile) {
        let mut out = Vec::new();
        ciborium::into_writer(cache, &mut out).unwrap();
        fs::write(&fx.cache, &out).unwrap();
    }

    #[test]
    fn second_scan_hashes_nothing() {
        let fx = fixture();
        fx.write("a", &bytes(CS + 5, 3));
        fx.write("b", b"bee");
        fx.write("c", b"");
        let (first, _) = fx.scan();
        let (second, report) = fx.scan();
        assert_eq!(report.hashed, 0);
        assert_eq!(report.hashed_bytes, 0);
        assert_eq!(report.from_cache, 3);
        assert_eq!(first.files(), second.files());
    }

    #[test]
    fn changed_files_are_rehashed_alone() {
        let fx = fixture();
        fx.write("same", b"unchanged");
        fx.write("touched", b"touched content");
        fx.write("modified", b"old content");
        let (_, r) = fx.scan();
        assert_eq!(r.hashed, 3);

        // Only the mtime changes: re-hashed, same manifest.
        set_mtime(&fx.shared.join("touched"), 1_000_000);
        // The content changes (and the mtime, explicitly: coarse clocks may not tick).
        fx.write("modified", b"new content, longer");
        set_mtime(&fx.shared.join("modified"), 2_000_000);
        // A new file appears.
        fx.write("new", b"brand new");

        let (index, r) = fx.scan();
        assert_eq!(r.hashed, 3, "touched, modified, new");
        assert_eq!(r.from_cache, 1, "same");
        assert_eq!(r.hashed_bytes, (15 + 19 + 9) as u64);
        assert_eq!(
            index.by_name("modified").unwrap().manifest.sha256,
            Sha256::of(b"new content, longer")
        );
        assert_eq!(
            index.by_name("touched").unwrap().manifest.sha256,
            Sha256::of(b"touched content")
        );

        // A deleted file leaves the index and the cache.
        fs::remove_file(fx.shared.join("same")).unwrap();
        let (index, r) = fx.scan();
        assert_eq!((r.hashed, r.from_cache, r.files), (0, 3, 3));
        assert!(index.by_name("same").is_none());
    }

    #[test]
    fn corrupt_cache_means_full_rehash() {
        let fx = fixture();
        fx.write("one", &bytes(CS + 1, 4));
        fx.write("two", b"two");
        fx.scan();
        let good = fs::read(&fx.cache).unwrap();
        assert!(good.len() > 64);

        let garbage: [&[u8]; 6] = [
            b"this is not cbor at all \xff\xfe",
            &good[..good.len() / 2],
            &good[..1],
            b"",
            // A byte string declaring 2^64-1 bytes: must not allocate it.
            &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            // 10k nested arrays.
            &[0x81; 10_000],
        ];
        for bad in garbage {
            fs::write(&fx.cache, bad).unwrap();
            let (index, r) = fx.scan();
            assert_eq!(
                (r.hashed, r.from_cache),
                (2, 0),
                "cache {:?}",
                &bad[..bad.len().min(9)]
            );
            assert_eq!(index.files().len(), 2);
            // ... and the cache is good again afterwards.
            let (_, r) = fx.scan();
            assert_eq!((r.hashed, r.from_cache), (0, 2));
        }

        // Trailing bytes after a valid cache: not what we wrote, ignored.
        let mut trailing = good.clone();
        trailing.push(0);
        fs::write(&fx.cache, &trailing).unwrap();
        assert_eq!(fx.scan().1.hashed, 2);

        // The cache path is a directory: unreadable, and unwritable (reported, not fatal).
        fs::remove_file(&fx.cache).unwrap();
        fs::create_dir(&fx.cache).unwrap();
        let (index, r) = SharedIndex::scan(&fx.shared, &fx.cache).unwrap();
        assert_eq!((r.hashed, index.files().len()), (2, 2));
        assert!(r.cache_error.is_some());
    }

    #[test]
    fn other_cache_version_is_ignored() {
        let fx = fixture();
        fx.write("f", b"data");
        fx.scan();
        let mut cache: CacheFile = ciborium::from_reader(File::open(&fx.cache).unwrap()).unwrap();
        assert_eq!(cache.version, CACHE_VERSION);
        cache.version = CACHE_VERSION + 1;
        let mut out = Vec::new();
        ciborium::into_writer(&cache, &mut out).unwrap();
        fs::write(&fx.cache, &out).unwrap();
        assert_eq!(fx.scan().1.hashed, 1);
    }

    #[test]
    fn cache_entries_with_bad_manifests_are_rehashed() {
        let fx = fixture();
        fx.write("f", &bytes(CS + 1, 5));
        fx.write("g", b"g");
        fx.scan();
        let mut cache: CacheFile = ciborium::from_reader(File::open(&fx.cache).unwrap()).unwrap();
        let f = cache.entries.iter_mut().find(|e| e.name == "f").unwrap();
        f.chunk_hashes.truncate(32); // one hash for two chunks
        let mut out = Vec::new();
        ciborium::into_writer(&cache, &mut out).unwrap();
        fs::write(&fx.cache, &out).unwrap();
        let (index, r) = fx.scan();
        assert_eq!((r.hashed, r.from_cache), (1, 1));
        assert_eq!(index.by_name("f").unwrap().manifest.chunk_count(), 2);
    }

    #[test]
    fn cache_round_trips_i128_mtimes() {
        let entry = CacheFile {
            version: CACHE_VERSION,
            entries: vec![CacheEntry {
                name: "n".into(),
                size: 1,
                mtime_ns: -1_234_567_890_123,
                inode: u64::MAX,
                sha256: Sha256([3; 32]),
                chunk_size: MIN_CHUNK_SIZE,
                chunk_hashes: vec![3; 32],
                content_id: Some(ContentId([4; 32])),
            }],
        };
        let mut out = Vec::new();
        ciborium::into_writer(&entry, &mut out).unwrap();
        let back: CacheFile = ciborium::from_reader(&out[..]).unwrap();
        assert_eq!(back.entries[0].mtime_ns, -1_234_567_890_123);
        assert_eq!(back.entries[0].inode, u64::MAX);
    }

    #[test]
    fn the_cache_holds_each_file_s_content_id() {
        let fx = fixture();
        let data = bytes(2 * CS + 9, 11);
        fx.write("f", &data);
        fx.write("g", b"g");
        let (index, _) = fx.scan();
        let cache = read_cache(&fx);
        assert_eq!(cache.version, 2);
        for e in &cache.entries {
            let f = index.by_name(&e.name).unwrap();
            assert_eq!(e.content_id, Some(f.content_id), "{}", e.name);
            assert_eq!(f.content_id, ContentId::of(&f.manifest));
        }
        let want = manifest_of_reader(&data[..], data.len() as u64).unwrap();
        let f = index.by_content_id(&ContentId::of(&want)).unwrap();
        assert_eq!(f.name, "f");
        assert_eq!(f.manifest, want);
        // ... and a restart gets the same ids from it without hashing.
        let (again, r) = fx.scan();
        assert_eq!((r.hashed, r.from_cache), (0, 2));
        assert_eq!(again.files(), index.files());
    }

    #[test]
    fn a_version_1_cache_is_migrated_without_hashing() {
        let fx = fixture();
        let data = bytes(3 * CS + 1, 12);
        fx.write("big", &data);
        fx.write("small", b"small");
        let (fresh, _) = fx.scan();
        // What the peer before content ids wrote: version 1, no `content_id` keys.
        let mut cache = read_cache(&fx);
        cache.version = CACHE_VERSION_1;
        for e in &mut cache.entries {
            e.content_id = None;
        }
        write_cache_file(&fx, &cache);
        let (migrated, r) = fx.scan();
        assert_eq!((r.hashed, r.from_cache), (0, 2), "migrated, not hashed");
        assert_eq!(
            migrated.files(),
            fresh.files(),
            "the same ids as hashing gives"
        );
        let rewritten = read_cache(&fx);
        assert_eq!(rewritten.version, CACHE_VERSION);
        assert!(rewritten.entries.iter().all(|e| e.content_id.is_some()));
    }

    /// The bytes a peer of version 1 (commit 79b7d9a) wrote for two files: `abcd.txt` (the 4
    /// bytes "abcd") and `x300k` (300 000 bytes 'x', two chunks). Read by this version they
    /// give the manifests those bytes have, and their content ids.
    #[test]
    fn a_cache_written_by_version_1_reads_right() {
        let v1 = hex::decode(concat!(
            "a26776657273696f6e0167656e747269657382a7646e616d6568616263642e7478746473697a6504686d74696d655f6e",
            "731b18ed45c81df9c17565696e6f64651a009a80f766736861323536582088d4266fd4e6338d13b845fcf289579d209c",
            "897823b9217da3e161936f0315896a6368756e6b5f73697a651a000400006c6368756e6b5f686173686573582088d426",
            "6fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589a7646e616d6565783330306b6473697a651a00",
            "0493e0686d74696d655f6e731b18ed45c81e36ca7565696e6f64651a009a80f966736861323536582029927e273accc6",
            "8286005017f7fa6e4f27bddb4db3083ff8b8d4c3667905b7fa6a6368756e6b5f73697a651a000400006c6368756e6b5f",
            "6861736865735840d509bff642a353f88582e8a846ecae041c333b79c57a7a24ff310fbdb7e914e9cff875157c26e387",
            "7659a73f01c3854bceb6fdc5463c17eb757c9a9cc7c6a4a4",
        ))
        .unwrap();
        let fx = fixture();
        fs::create_dir_all(fx.cache.parent().unwrap()).unwrap();
        fs::write(&fx.cache, &v1).unwrap();
        let loaded = load_cache(&fx.cache);
        assert_eq!(loaded.len(), 2);
        let x300k = vec![b'x'; 300_000];
        for (name, content) in [("abcd.txt", &b"abcd"[..]), ("x300k", &x300k[..])] {
            let (key, cached) = loaded.iter().find(|(k, _)| k.name == name).unwrap();
            let want = manifest_of_reader(content, content.len() as u64).unwrap();
            assert_eq!(key.size, content.len() as u64);
            assert_eq!(cached.manifest, want, "{name}");
            assert_eq!(cached.content_id, ContentId::of(&want), "{name}");
        }
    }

    #[test]
    fn entries_whose_content_id_does_not_match_are_rehashed() {
        let fx = fixture();
        for name in ["wrong", "missing", "right"] {
            fx.write(name, &bytes(CS + 3, name.len() as u32));
        }
        fx.write("v1-style", b"only in version 1 may an entry lack its id");
        let (fresh, _) = fx.scan();
        let mut cache = read_cache(&fx);
        for e in &mut cache.entries {
            match e.name.as_str() {
                "wrong" => e.content_id = Some(ContentId([0; 32])),
                "missing" | "v1-style" => e.content_id = None,
                _ => {}
            }
        }
        write_cache_file(&fx, &cache);
        let (index, r) = fx.scan();
        assert_eq!((r.hashed, r.from_cache), (3, 1));
        assert_eq!(index.files(), fresh.files());
        // A version-1 cache whose entry has an id is not what version 1 wrote: re-hashed too.
        let mut cache = read_cache(&fx);
        cache.version = CACHE_VERSION_1;
        for e in &mut cache.entries {
            if e.name != "right" {
                e.content_id = None;
            }
        }
        write_cache_file(&fx, &cache);
        let (_, r) = fx.scan();
        assert_eq!((r.hashed, r.from_cache), (1, 3));
    }
}
