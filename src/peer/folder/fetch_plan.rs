//! What a folder download still has to fetch, and how far it is. Pure: no I/O, no clock.
//!
//! A folder is fetched file by file with the per-file machinery (`download/`: verified chunks,
//! many sources, resumable), by content id, so a content that appears several times in the
//! tree (or is already verified from an earlier run) is fetched once; empty files have nothing
//! to fetch. [`FetchPlan`] hands out the contents to start, at most `window` at a time, takes
//! their ends, and says how far the folder is in files (entries of the tree) and bytes
//! (contents fetched) for the one progress bar and the summary line. The node drives it and
//! places the tree (`place.rs`) once [`FetchPlan::is_complete`].

use super::manifest::{EntryKind, FolderManifest};
use crate::wire::ContentId;
use std::collections::{HashMap, HashSet, VecDeque};

/// How far a folder download is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FolderProgress {
    /// Files of the tree whose content is verified (every copy of a content counts).
    pub files_done: u64,
    pub files_total: u64,
    /// Bytes of the contents to fetch that are verified (each content once).
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Contents that were already verified when the plan was made (an earlier run's).
    pub contents_kept: u64,
    /// Files whose content is another file's (fetched once for all of them).
    pub duplicates: u64,
}

/// A content the plan did not hand out, or handed out and already took back.
#[derive(Debug, PartialEq, Eq)]
pub struct NotRunning(pub ContentId);

#[derive(Debug)]
pub struct FetchPlan {
    /// Contents not started yet, in the order they first appear in the listing.
    queue: VecDeque<ContentId>,
    /// Contents started and not ended.
    running: HashSet<ContentId>,
    /// Size of every content with a size, and how many files of the tree have it.
    contents: HashMap<ContentId, (u64, u64)>,
    window: usize,
    progress: FolderProgress,
}

impl FetchPlan {
    /// The plan for `manifest`, with at most `window` (at least 1) contents fetched at once.
    /// `verified(id)`: that content is already verified on disk (an earlier run got it).
    pub fn new(
        manifest: &FolderManifest,
        window: usize,
        verified: impl Fn(&ContentId) -> bool,
    ) -> FetchPlan {
        let mut plan = FetchPlan {
            queue: VecDeque::new(),
            running: HashSet::new(),
            contents: HashMap::new(),
            window: window.max(1),
            progress: FolderProgress::default(),
        };
        for e in manifest.entries() {
            let EntryKind::File { size, id } = e.kind else {
                continue;
            };
            plan.progress.files_total += 1;
            if size == 0 {
                plan.progress.files_done += 1;
                continue;
            }
            match plan.contents.get_mut(&id) {
                Some((_, copies)) => {
                    *copies += 1;
                    plan.progress.duplicates += 1;
                }
                None => {
                    plan.contents.insert(id, (size, 1));
                    plan.progress.bytes_total += size;
                    plan.queue.push_back(id);
                }
            }
        }
        // Taken out after counting, so a kept content still counts all its copies as done.
        let (kept, left): (VecDeque<ContentId>, VecDeque<ContentId>) =
            plan.queue.drain(..).partition(|id| verified(id));
        plan.queue = left;
        for id in kept {
            plan.progress.contents_kept += 1;
            plan.finish(&id);
        }
        plan
    }

    /// The next content to start, if the window has room and any is left.
    pub fn next_to_start(&mut self) -> Option<(ContentId, u64)> {
        if self.running.len() >= self.window {
            return None;
        }
        let id = self.queue.pop_front()?;
        self.running.insert(id);
        Some((id, self.contents[&id].0))
    }

    /// A started content is verified on disk.
    pub fn handle_done(&mut self, id: &ContentId) -> Result<(), NotRunning> {
        if !self.running.remove(id) {
            return Err(NotRunning(*id));
        }
        self.finish(id);
        Ok(())
    }

    /// A started content will not be fetched by this run (its download failed or paused): it
    /// goes back to the end of the queue, for a later `next_to_start` or a later run.
    pub fn handle_stopped(&mut self, id: &ContentId) -> Result<(), NotRunning> {
        if !self.running.remove(id) {
            return Err(NotRunning(*id));
        }
        self.queue.push_back(*id);
        Ok(())
    }

    fn finish(&mut self, id: &ContentId) {
        let (size, copies) = self.contents[id];
        self.progress.files_done += copies;
        self.progress.bytes_done += size;
    }

    /// How far the folder is; `in_flight` bytes of the running contents are verified so far.
    pub fn progress(&self, in_flight: u64) -> FolderProgress {
        let mut p = self.progress;
        p.bytes_done = (p.bytes_done + in_flight).min(p.bytes_total);
        p
    }

    /// The contents started and not ended.
    pub fn running(&self) -> impl Iterator<Item = &ContentId> {
        self.running.iter()
    }

    /// Every content is verified: the tree can be placed.
    pub fn is_complete(&self) -> bool {
        self.queue.is_empty() && self.running.is_empty()
    }
}

#[cfg(test)]
mod tests;
