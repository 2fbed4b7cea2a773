//! Where a peer keeps its own state: the folder `DOWNLOADS/.p2p/` (named in `names.rs`), the
//! files in it, and the clean-up of what a crash left there.

use super::state_file;
use std::path::{Path, PathBuf};

/// Where the peer keeps its own state (hash cache, peer cache, resume records), inside
/// downloads/.
pub fn state_dir(downloads: &Path) -> PathBuf {
    downloads.join(".p2p")
}

pub fn hash_cache_path(downloads: &Path) -> PathBuf {
    state_dir(downloads).join("hash-cache.cbor")
}

/// The peer's key pair (`identity/key_file.rs`): who this peer is, across restarts.
pub fn identity_key_path(downloads: &Path) -> PathBuf {
    state_dir(downloads).join("identity.key")
}

/// Peer names pinned to their keys (`pins.rs`).
pub fn pins_path(downloads: &Path) -> PathBuf {
    state_dir(downloads).join("pins")
}

/// The folder of the resume records of unfinished downloads (`resume.rs`).
pub fn resume_dir(downloads: &Path) -> PathBuf {
    state_dir(downloads).join("resume")
}

/// Removes the temporary files a crash mid-save left in every folder the peer keeps state
/// files in (old ones only; see [`state_file::clean_stale_temps`]).
pub fn clean_crash_leftovers(downloads: &Path) {
    state_file::clean_stale_temps(&state_dir(downloads));
    state_file::clean_stale_temps(&resume_dir(downloads));
    // Folder downloads' records (`folder/record.rs`).
    state_file::clean_stale_temps(&state_dir(downloads).join("folders"));
}
