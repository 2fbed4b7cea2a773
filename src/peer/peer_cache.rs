//! The peer cache: the peers we knew, remembered across runs in `DOWNLOADS/.p2p/peers.cbor`, so
//! a peer restarted while the tracker is down can still reach its old peers.
//!
//! The file is one CBOR map `{version: 1, peers: [{name, addr, last_seen_unix_ms, id?}, ...]}`,
//! newest first, at most [`MAX_CACHED`] entries. It is replaced atomically (`state_file.rs`). A
//! missing file is an empty cache; a corrupt or oversized one is ignored with a warning and
//! overwritten at the next save. Every entry read back goes through the same checks as news
//! from the network (the file is only a hint).

use super::peer_table::{PeerTable, Source, parse_addr};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CACHE_VERSION: u32 = 1;
/// Most peers written to, or read from, the cache.
pub const MAX_CACHED: usize = 256;
/// A cache file larger than this is not read.
const MAX_FILE_LEN: u64 = 1024 * 1024;
/// Entries older than this are not loaded.
const MAX_CACHED_AGE: Duration = Duration::from_secs(30 * 86_400);

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    peers: Vec<CachedPeer>,
}

#[derive(Serialize, Deserialize)]
struct CachedPeer {
    name: String,
    addr: String,
    last_seen_unix_ms: u64,
    /// The key listed or proved for it (absent in caches written before keys existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<crate::identity::PeerId>,
}

pub fn peer_cache_path(downloads: &Path) -> PathBuf {
    super::state_dir(downloads).join("peers.cbor")
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u64::MAX as u128) as u64)
}

/// Loads the cache into `table` as `Source::Cache`. Returns how many entries were taken, or a
/// warning for the user when the file exists but cannot be used.
pub fn load(path: &Path, table: &mut PeerTable, now: Instant) -> Result<usize, String> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(format!(
                "cannot read the peer cache {}: {e}",
                path.display()
            ));
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the peer cache {}: {e}", path.display()))?;
    let ignored = |why: &str| {
        format!(
            "ignoring the peer cache {} ({why}); it will be rewritten",
            path.display()
        )
    };
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(ignored("too large"));
    }
    let mut rest = &bytes[..];
    let cache: CacheFile = ciborium::de::from_reader_with_recursion_limit(&mut rest, 16)
        .map_err(|e| ignored(&format!("corrupt: {e}")))?;
    if !rest.is_empty() {
        return Err(ignored("corrupt: bytes after the end"));
    }
    if cache.version != CACHE_VERSION {
        return Err(ignored(&format!("unknown version {}", cache.version)));
    }
    let wall_now = unix_ms(SystemTime::now());
    let mut taken = 0;
    for p in cache.peers.iter().take(MAX_CACHED) {
        let Some(addr) = parse_addr(&p.addr) else {
            continue;
        };
        let age = Duration::from_millis(wall_now.saturating_sub(p.last_seen_unix_ms));
        if age > MAX_CACHED_AGE {
            continue;
        }
        let last_seen = now.checked_sub(age).unwrap_or(now);
        if table.offer(&p.name, addr, Source::Cache, last_seen, now)
            != super::peer_table::Offered::Refused
        {
            taken += 1;
            if let Some(id) = p.id {
                table.listed_key(&p.name, addr, id);
            }
        }
    }
    // What we just read is on disk already.
    table.mark_saved();
    Ok(taken)
}

/// Writes the table's entries worth remembering to `path`, atomically.
pub fn save(path: &Path, table: &PeerTable, now: Instant) -> io::Result<()> {
    let wall_now = SystemTime::now();
    let peers = table
        .to_remember(MAX_CACHED)
        .into_iter()
        .map(|(name, e)| {
            let age = now.saturating_duration_since(e.last_seen);
            CachedPeer {
                name: name.clone(),
                addr: e.addr.to_string(),
                last_seen_unix_ms: unix_ms(wall_now.checked_sub(age).unwrap_or(UNIX_EPOCH)),
                id: e.id,
            }
        })
        .collect::<Vec<_>>();
    if peers.is_empty() && !path.exists() {
        // Nothing to remember and nothing remembered: leave no state folder behind.
        return Ok(());
    }
    let cache = CacheFile {
        version: CACHE_VERSION,
        peers,
    };
    super::state_file::replace_cbor(path, &cache)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::net::SocketAddr;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn round_trip_keeps_reachable_entries_as_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = peer_cache_path(dir.path());
        let now = Instant::now() + Duration::from_secs(10_000);
        let mut t = PeerTable::new("Me");
        t.offer(
            "A",
            addr(1),
            Source::Tracker,
            now - Duration::from_secs(7),
            now,
        );
        t.offer("B", addr(2), Source::Lan, now, now);
        t.offer("Gone", addr(3), Source::Exchange, now, now);
        t.failed("Gone", now);
        save(&path, &t, now).unwrap();

        let mut back = PeerTable::new("Me");
        assert_eq!(load(&path, &mut back, now), Ok(2));
        let a = back.get("A").unwrap();
        assert_eq!((a.addr, a.source), (addr(1), Source::Cache));
        let age = now.saturating_duration_since(a.last_seen).as_secs_f64();
        assert!((6.0..=9.0).contains(&age), "age {age}");
        assert!(back.contains_key("B"));
        assert!(
            !back.contains_key("Gone"),
            "unreachable entries are not remembered"
        );
        assert!(!back.is_dirty());
    }

    #[test]
    fn missing_cache_is_empty_and_an_empty_table_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = peer_cache_path(dir.path());
        let mut t = PeerTable::new("Me");
        let now = Instant::now();
        assert_eq!(load(&path, &mut t, now), Ok(0));
        save(&path, &t, now).unwrap();
        assert!(!super::super::state_dir(dir.path()).exists());
    }

    #[test]
    fn corrupt_cache_is_ignored_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = peer_cache_path(dir.path());
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let now = Instant::now();
        for junk in [
            &b"not cbor at all"[..],
            &[0x9f; 5000][..], // deeply nested indefinite arrays
            &[0xa2, 0x61][..], // truncated
        ] {
            fs::write(&path, junk).unwrap();
            let mut t = PeerTable::new("Me");
            let err = load(&path, &mut t, now).unwrap_err();
            assert!(err.contains("ignoring the peer cache"), "{err}");
            assert!(t.is_empty());
        }
        fs::write(&path, vec![0u8; MAX_FILE_LEN as usize + 10]).unwrap();
        let err = load(&path, &mut PeerTable::new("Me"), now).unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn hostile_entries_in_the_cache_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = peer_cache_path(dir.path());
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let recent = unix_ms(SystemTime::now());
        let cache = CacheFile {
            version: CACHE_VERSION,
            peers: vec![
                CachedPeer {
                    id: None,
                    name: "Me".into(),
                    addr: "127.0.0.1:5".into(),
                    last_seen_unix_ms: recent,
                },
                CachedPeer {
                    id: None,
                    name: "bad name".into(),
                    addr: "127.0.0.1:5".into(),
                    last_seen_unix_ms: recent,
                },
                CachedPeer {
                    id: None,
                    name: "Zero".into(),
                    addr: "0.0.0.0:5".into(),
                    last_seen_unix_ms: recent,
                },
                CachedPeer {
                    id: None,
                    name: "Ancient".into(),
                    addr: "127.0.0.1:5".into(),
                    last_seen_unix_ms: 1,
                },
                CachedPeer {
                    id: None,
                    name: "Good".into(),
                    addr: "127.0.0.1:5".into(),
                    last_seen_unix_ms: recent + 1_000_000, // in the future: clamped
                },
            ],
        };
        let mut bytes = Vec::new();
        ciborium::into_writer(&cache, &mut bytes).unwrap();
        fs::write(&path, bytes).unwrap();
        let mut t = PeerTable::new("Me");
        let now = Instant::now();
        assert_eq!(load(&path, &mut t, now), Ok(1));
        assert_eq!(t.get("Good").unwrap().last_seen, now);
    }
}
