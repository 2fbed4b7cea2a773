//! A folder download of this run as the node holds it (`FolderJob`): which tree, from whom,
//! its plan (`folder/fetch_plan.rs`) and which of its contents are asked for or downloading.
//! A plain value: the node's side is `folder_fetch.rs`.

use super::download::DownloadId;
use super::folder::fetch_plan::FetchPlan;
use super::folder::manifest::FolderManifest;
use crate::reactor::ConnId;
use crate::wire::ContentId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How many contents of a folder are fetched at once: enough to hide the round trip of each
/// small file's manifest and to overlap their fsyncs (on ext4, 10,000 small files took 13.2 s
/// with 16 at once, 8.1 s with 64, 9.4 s with 128).
pub const FOLDER_WINDOW: usize = 64;
/// ... but big files are not fetched dozens at once: past this many running, no more start
/// while those hold this many bytes.
pub const FOLDER_MIN_WINDOW: usize = 4;
pub const FOLDER_BYTES_IN_FLIGHT: u64 = 64 * 1024 * 1024;

/// Where the verified files of folder downloads live, named by content id (so no remote text
/// is a path until the tree is placed, and a content shared by two trees is fetched once).
pub fn verified_dir(downloads: &Path) -> PathBuf {
    super::layout::state_dir(downloads).join("tree-files")
}

/// The name of a content's verified file in [`verified_dir`].
pub fn verified_name(id: &ContentId) -> String {
    id.to_hex()
}

/// Where one running content is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetching {
    /// Its manifest was asked for (request id).
    Manifest(u64),
    /// It downloads as this download.
    Download(DownloadId),
}

#[derive(Debug)]
pub struct FolderJob {
    /// Its name in downloads/ (checked as a file name).
    pub name: String,
    pub sources: Vec<String>,
    /// The connection the contents' manifests are asked on (the first source's).
    pub conn: ConnId,
    pub manifest: FolderManifest,
    pub plan: FetchPlan,
    pub running: HashMap<ContentId, Fetching>,
    /// Size of each content (to start it, and for the bar).
    pub sizes: HashMap<ContentId, u64>,
    pub started: Instant,
    /// Bytes fetched over the network by this run (downloads that ended).
    pub fetched: u64,
}

impl FolderJob {
    pub fn new(
        name: String,
        sources: Vec<String>,
        conn: ConnId,
        manifest: FolderManifest,
        plan: FetchPlan,
        now: Instant,
    ) -> FolderJob {
        let sizes = manifest
            .entries()
            .iter()
            .filter_map(|e| match e.kind {
                super::folder::manifest::EntryKind::File { size, id } => Some((id, size)),
                super::folder::manifest::EntryKind::EmptyFolder => None,
            })
            .collect();
        FolderJob {
            name,
            sources,
            conn,
            manifest,
            plan,
            running: HashMap::new(),
            sizes,
            started: now,
            fetched: 0,
        }
    }

    /// Whether the window has room for another content (by count, `FetchPlan`, and by bytes).
    pub fn has_room(&self) -> bool {
        let bytes: u64 = self
            .running
            .keys()
            .filter_map(|id| self.sizes.get(id))
            .sum();
        self.running.len() < FOLDER_MIN_WINDOW || bytes < FOLDER_BYTES_IN_FLIGHT
    }

    /// The content downloading as `dl`, if it is one of this folder's.
    pub fn content_of(&self, dl: DownloadId) -> Option<ContentId> {
        self.running
            .iter()
            .find(|(_, f)| **f == Fetching::Download(dl))
            .map(|(id, _)| *id)
    }

    /// The downloads of this folder running now.
    pub fn downloads(&self) -> impl Iterator<Item = DownloadId> + '_ {
        self.running.values().filter_map(|f| match f {
            Fetching::Download(dl) => Some(*dl),
            Fetching::Manifest(_) => None,
        })
    }
}
