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
    /// The entries (indices into the manifest's) that hold each content: what a content's
    /// end reports, without a scan of the whole listing per content (quadratic in a tree of
    /// 10,000 files, a third of its fetch time).
    copies: HashMap<ContentId, Vec<usize>>,
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
        let mut sizes = HashMap::new();
        let mut copies: HashMap<ContentId, Vec<usize>> = HashMap::new();
        for (at, e) in manifest.entries().iter().enumerate() {
            if let super::folder::manifest::EntryKind::File { size, id } = e.kind {
                sizes.insert(id, size);
                copies.entry(id).or_default().push(at);
            }
        }
        FolderJob {
            name,
            sources,
            conn,
            manifest,
            plan,
            running: HashMap::new(),
            sizes,
            copies,
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

    /// The files of the tree whose content is `id`: path and size, in listing order.
    pub fn files_of(&self, id: &ContentId) -> Vec<(String, u64)> {
        let entries = self.manifest.entries();
        let at = self.copies.get(id).map_or(&[][..], Vec::as_slice);
        (at.iter())
            .filter_map(|&i| match entries[i].kind {
                super::folder::manifest::EntryKind::File { size, .. } => {
                    Some((entries[i].path.as_str().to_string(), size))
                }
                super::folder::manifest::EntryKind::EmptyFolder => None,
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::folder::manifest::{Entry, EntryKind};
    use crate::peer::folder::path_rules::EntryPath;
    use crate::wire::Sha256;

    fn file(path: &str, bytes: &[u8]) -> Entry {
        let id = ContentId::from_parts(bytes.len() as u64, 262_144, &[Sha256::of(bytes)]);
        Entry {
            path: EntryPath::parse(path).unwrap(),
            kind: EntryKind::File {
                size: bytes.len() as u64,
                id,
            },
        }
    }

    fn id_of(e: &Entry) -> ContentId {
        match e.kind {
            EntryKind::File { id, .. } => id,
            EntryKind::EmptyFolder => unreachable!(),
        }
    }

    #[test]
    fn a_content_names_every_file_that_holds_it_in_listing_order() {
        let entries = vec![
            file("a/one.txt", b"same"),
            file("b.txt", b"other"),
            file("c/two.txt", b"same"),
        ];
        let (same, other) = (id_of(&entries[0]), id_of(&entries[1]));
        let manifest = FolderManifest::new(entries).unwrap();
        let plan = FetchPlan::new(&manifest, 4, |_| false);
        let now = Instant::now();
        let job = FolderJob::new("T".into(), vec![], ConnId::fake(1), manifest, plan, now);
        let paths = |id| -> Vec<String> { job.files_of(&id).into_iter().map(|f| f.0).collect() };
        assert_eq!(paths(same), ["a/one.txt", "c/two.txt"]);
        assert_eq!(job.files_of(&other), [("b.txt".to_string(), 5)]);
        let unknown = ContentId::from_parts(1, 262_144, &[Sha256::of(b"x")]);
        assert!(job.files_of(&unknown).is_empty());
    }
}
