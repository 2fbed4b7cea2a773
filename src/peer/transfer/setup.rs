//! Starting, resuming, checking, cancelling and listing downloads: the node's side, where a
//! download meets its files (`DiskStore`) before its machine runs.

use super::{Transfer, events};
use crate::names::printable;
use crate::peer::content_id::ContentId;
use crate::peer::download::{ChunkIndex, DiskStore, Download, DownloadId, Store};
use crate::peer::event::{DownloadEntry, Event, Failure, Problem, Warning};
use crate::peer::manifest::Manifest;
use crate::peer::node::{DiskWait, PeerNode};
use crate::peer::partial::{Destination, Durability};
use crate::peer::resume::{self, LoadError, ResumeRecord};
use std::path::Path;
use std::time::Instant;

/// Opens (or creates) the partial file of the download `record` describes. Which chunks in
/// it are intact is checked off the reactor next ([`PeerNode::start_check`]).
fn open_store(
    downloads: &Path,
    record: ResumeRecord,
    durability: Durability,
) -> Result<DiskStore, String> {
    let name = printable(&record.file_name);
    DiskStore::open(downloads, record, durability)
        .map_err(|e| format!("cannot open the partial download of {name}: {e}"))
}

/// How a download's files are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::peer) enum Keeping {
    /// A file of its own: a resume record, made durable on its own.
    File,
    /// A content of a folder (`folder_fetch.rs`): no record of its own, the folder's record
    /// resumes it; made durable as said. Room for the small (`Batched`) ones was checked once
    /// for the whole folder.
    FolderContent(Durability),
}

impl Keeping {
    fn durability(self) -> Durability {
        match self {
            Keeping::File => Durability::EachFile,
            Keeping::FolderContent(d) => d,
        }
    }
}

/// Refuses a download the disk cannot hold, before a byte of it is written (without this, a
/// 300 MiB file into 82 MiB free wrote 82 MiB and then failed). Sparse partial files make
/// "what is missing" the space still needed. If the free space cannot be read, go ahead: a
/// full disk later still pauses the download cleanly.
pub(in crate::peer) fn check_room(
    downloads: &Path,
    file_name: &str,
    needed: u64,
) -> Result<(), Problem> {
    match crate::peer::partial::free_space(downloads) {
        Ok(free) if free < needed => Err(Problem::NoRoom {
            dir: downloads.display().to_string(),
            file: file_name.to_string(),
            needed,
            free,
        }),
        _ => Ok(()),
    }
}

impl PeerNode {
    /// Starts (or continues, if a partial download of the same content exists) the download of
    /// `file_name` from `sources`, with a manifest one of them sent, already checked against
    /// the content id asked for (the other sources' manifests must make the same id,
    /// `handle_manifest`). `check_sha256`: the file was asked for by its SHA-256, which the
    /// finished file must have (`manifest.sha256`).
    pub(in crate::peer) fn begin_download(
        &mut self,
        sources: &[String],
        file_name: &str,
        manifest: Manifest,
        check_sha256: bool,
        now: Instant,
    ) -> Result<DownloadId, String> {
        let downloads = self.cfg.downloads_dir.clone();
        self.begin_download_in(
            &downloads,
            sources,
            file_name,
            manifest,
            check_sha256,
            Keeping::File,
            now,
        )
    }

    /// [`Self::begin_download`] into the folder `downloads` (its resume record, if `keeping`
    /// has one, under `downloads/.p2p/resume/`): a folder's contents go to
    /// `.p2p/tree-files/`.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::peer) fn begin_download_in(
        &mut self,
        downloads: &Path,
        sources: &[String],
        file_name: &str,
        manifest: Manifest,
        check_sha256: bool,
        keeping: Keeping,
        now: Instant,
    ) -> Result<DownloadId, String> {
        if let Some(existing) = self.download_named(file_name) {
            if !self.downloads[&existing].is_paused() {
                return Err(format!("already downloading {}", printable(file_name)));
            }
            self.downloads.remove(&existing);
        }
        let content_id = ContentId::of(&manifest);
        let record = match keeping {
            Keeping::File => resume::load_for(downloads, file_name),
            Keeping::FolderContent(_) => Err(LoadError::Missing),
        };
        match record {
            Ok(rec) if rec.content_id != Some(content_id) => {
                let theirs = rec.content_id.map_or("?".to_string(), |c| c.to_string());
                return Err(format!(
                    "a partial download of {} with other content is here ({theirs}, from {}); \
                     the file offered now is {content_id}. Refusing to mix them: \
                     `cancel {}` discards the partial download",
                    printable(file_name),
                    rec.sources.join(", "),
                    printable(file_name)
                ));
            }
            Ok(_) | Err(LoadError::Missing) => {}
            Err(LoadError::Bad(why)) => {
                let file = file_name.to_string();
                self.ui
                    .event(&Event::Warning(Warning::RecordUnusable { file, why }))
            }
        }
        let mut record = ResumeRecord::new(file_name, sources.to_vec(), &manifest);
        record.check_sha256 = check_sha256;
        let mut store = open_store(downloads, record, keeping.durability())?;
        if keeping != Keeping::File {
            store.without_record();
        }
        let id = self.next_download_id();
        let retry_for = self.cfg.retry_for;
        let dl = Download::new(id, file_name, sources, manifest, None, retry_for, now)
            .checking_sha256(check_sha256);
        tracing::info!(
            "downloading {} ({} bytes, {}) from {}",
            printable(file_name),
            dl.size(),
            dl.content_id(),
            sources.join(", ")
        );
        self.downloads.insert(id, Transfer { dl, store });
        self.start_check(id, false)?;
        Ok(id)
    }

    /// Sets a new download going: reach every source, and finish at once if nothing is missing.
    pub(in crate::peer) fn start_transfer(&mut self, id: DownloadId, now: Instant) {
        if let Some(t) = self.downloads.get_mut(&id) {
            t.dl.handle_wake(now);
            self.drive(id, now);
        }
    }

    /// Continues the download a resume record describes (or a paused one): it finds its sources
    /// by name again.
    /// `Ok(None)`: nothing to run, the file was already saved.
    pub(in crate::peer) fn resume_from_record(
        &mut self,
        file_name: &str,
        now: Instant,
    ) -> Result<Option<DownloadId>, String> {
        if let Some(id) = self.download_named(file_name) {
            if let Some(t) = self.downloads.get_mut(&id) {
                t.dl.handle_resume(now);
                self.drive(id, now);
            }
            return Ok(Some(id));
        }
        let downloads = self.cfg.downloads_dir.clone();
        let shown = printable(file_name);
        let record = match resume::load_for(&downloads, file_name) {
            Ok(record) => record,
            Err(LoadError::Missing) => {
                return Err(format!("no unfinished download named '{shown}'"));
            }
            Err(LoadError::Bad(why)) => {
                resume::remove(&downloads, file_name);
                return Err(format!(
                    "the resume record of {shown} was damaged ({why}) and is removed; \
                     `get PEER {shown}` starts it again and keeps the intact chunks"
                ));
            }
        };
        let manifest = record.manifest()?;
        let recorded = Some(record.durable_count());
        let sources = record.sources.clone();
        let check_sha256 = record.check_sha256;
        let store = open_store(&downloads, record, Durability::EachFile)?;
        let id = self.next_download_id();
        let retry_for = self.cfg.retry_for;
        let dl = Download::new(id, file_name, &sources, manifest, recorded, retry_for, now)
            .checking_sha256(check_sha256);
        self.downloads.insert(id, Transfer { dl, store });
        self.start_check(id, true)?;
        Ok(Some(id))
    }

    /// Hands the partial file of download `id` to a disk job (with the destination too, for a
    /// `resume`): until it answers, the download asks nothing of anyone and does not count
    /// as waiting for a source.
    fn start_check(&mut self, id: DownloadId, resume: bool) -> Result<(), String> {
        let t = self
            .downloads
            .get_mut(&id)
            .expect("the caller just inserted it");
        let unreadable = |e: std::io::Error, name: &str| {
            format!(
                "cannot read the partial download of {}: {e}",
                printable(name)
            )
        };
        // A partial file just made holds nothing to check: no thread for it (a folder of
        // 10,000 small files started 10,000 threads for this).
        let empty = t.store.partial_len().is_ok_and(|n| n == 0);
        let job = if !resume && empty {
            self.disk.already_checked(Vec::new())
        } else {
            let file = match t.store.try_clone_file() {
                Ok(file) => file,
                Err(e) => {
                    let why = unreadable(e, t.dl.file_name());
                    self.downloads.remove(&id);
                    return Err(why);
                }
            };
            let dest = resume.then(|| t.store.dest().to_path_buf());
            self.disk.check_partial(file, t.dl.manifest().clone(), dest)
        };
        self.disk_waiting.insert(job, DiskWait::Download(id));
        Ok(())
    }

    /// The check of download `id`'s partial file is done: keep the intact chunks, make sure
    /// the disk can hold the rest, write the record (a new download), and set it going (the
    /// machine says how far it is). A failure ends the download (partial file kept, except
    /// an empty one).
    pub(in crate::peer) fn download_checked(
        &mut self,
        id: DownloadId,
        dest: Option<Result<Destination, String>>,
        intact: std::io::Result<Vec<u64>>,
        now: Instant,
    ) {
        let Some(t) = self.downloads.get_mut(&id) else {
            return; // cancelled meanwhile
        };
        if !t.dl.is_checking() {
            return;
        }
        match dest {
            Some(Ok(Destination::AlreadyThere)) => return self.already_saved(id, now),
            Some(Err(conflict)) => return self.check_failed(id, conflict, now),
            Some(Ok(Destination::Free)) | None => {}
        }
        let shown = printable(t.dl.file_name());
        let unreadable =
            |e: std::io::Error| format!("cannot read the partial download of {shown}: {e}");
        // Indexes from the disk job become this file's chunks here (out of range: dropped).
        let intact: Vec<ChunkIndex> = match intact {
            Ok(raw) => raw
                .into_iter()
                .filter_map(|i| t.dl.chunk_index(i))
                .collect(),
            Err(e) => return self.check_failed(id, unreadable(e), now),
        };
        if let Err(e) = t.store.adopt(&intact) {
            return self.check_failed(id, unreadable(e), now);
        }
        let here: u64 = intact.iter().map(|&c| t.dl.chunk_span(c).1 as u64).sum();
        let needed = t.dl.size().saturating_sub(here);
        let downloads = &self.cfg.downloads_dir;
        // A folder's small contents were counted in the folder's own check (`begin_folder`).
        let counted = !t.store.keeps_records() && t.store.durability() == Durability::Batched;
        if !counted && let Err(why) = check_room(downloads, t.dl.file_name(), needed) {
            return self.check_failed(id, why, now);
        }
        // A new download's record names the chunks found here, once they are durable.
        if !t.dl.is_resume()
            && let Err(e) = t.store.checkpoint(&intact)
        {
            let why = format!(
                "cannot save the resume record in {}: {e}",
                downloads.display()
            );
            return self.check_failed(id, why, now);
        }
        t.dl.handle_checked(&intact, now);
        self.drive(id, now);
    }

    /// The check of a download failed: it ends (reported as failed), its partial file kept
    /// unless nothing was ever written to it.
    fn check_failed(&mut self, id: DownloadId, why: impl Into<Problem>, now: Instant) {
        if let Some(t) = self.downloads.remove(&id) {
            self.pending.retain(|_, p| !p.is_for(id));
            t.store.abandon_if_untouched();
        }
        self.download_done(id, Err((Failure::Failed, why.into())), now);
    }

    /// A record whose file already stands, whole and right, under its final name: a crash hit
    /// between linking the file and removing the partial file or the record. That is a finished
    /// download; its leftovers are removed and it is reported done, not fetched again. (A
    /// different file under that name fails the check instead: never overwritten.)
    fn already_saved(&mut self, id: DownloadId, now: Instant) {
        let Some(t) = self.downloads.remove(&id) else {
            return;
        };
        self.pending.retain(|_, p| !p.is_for(id));
        let path = t.store.dest().display().to_string();
        let (file, size) = (t.dl.file_name().to_string(), t.dl.size());
        let (content, sha256) = (t.dl.content_id().to_string(), t.dl.sha256().to_string());
        t.store.discard();
        let event = Event::already_there(file, path, size, content, sha256);
        self.download_done(id, Ok(event), now);
    }

    /// `downloads` entries of folder fetches: the one running, and those an earlier run left
    /// (their records), as `NAME/` with the bytes verified so far.
    fn folder_entries(&self) -> Vec<DownloadEntry> {
        use crate::peer::folder::manifest::EntryKind;
        use crate::peer::folder_job::{verified_dir, verified_name};
        let vdir = verified_dir(&self.cfg.downloads_dir);
        let running = self.folder.as_ref().map(|j| j.name.clone());
        crate::peer::folder::record::list(&self.cfg.downloads_dir)
            .into_iter()
            .map(|(rec, manifest)| {
                let mut seen = std::collections::HashSet::new();
                let (mut done, mut size) = (0, 0);
                for e in manifest.entries() {
                    if let EntryKind::File { size: n, id } = e.kind
                        && seen.insert(id)
                    {
                        size += n;
                        if n > 0 && std::fs::symlink_metadata(vdir.join(verified_name(&id))).is_ok()
                        {
                            done += n;
                        }
                    }
                }
                let state = if running.as_deref() == Some(rec.name.as_str()) {
                    "downloading"
                } else {
                    "not running"
                };
                DownloadEntry {
                    file: format!("{}/", rec.name),
                    done,
                    size,
                    percent: crate::peer::download::percent(done, size),
                    sources: rec.sources,
                    state: state.to_string(),
                    limited_by: None,
                    running: None,
                }
            })
            .collect()
    }

    pub(in crate::peer) fn download_named(&self, file_name: &str) -> Option<DownloadId> {
        self.downloads
            .values()
            .find(|t| t.dl.file_name() == file_name)
            .map(|t| t.dl.id())
    }

    /// A download (running or paused) of this content, for serving it to others.
    pub(in crate::peer) fn download_of(&self, id: &ContentId) -> Option<&Transfer> {
        self.downloads.values().find(|t| t.dl.content_id() == *id)
    }

    /// Drops a download and its partial file and record.
    pub(in crate::peer) fn cancel_download(&mut self, file_name: &str) -> Result<(), String> {
        let downloads = self.cfg.downloads_dir.clone();
        let part = crate::peer::partial::partial_path(&downloads.join(file_name), file_name);
        let record = resume::load_for(&downloads, file_name);
        let in_memory = self.download_named(file_name);
        if in_memory.is_none()
            && matches!(record, Err(LoadError::Missing))
            && std::fs::symlink_metadata(&part).is_err()
        {
            return Err(format!(
                "no unfinished download named '{}'",
                printable(file_name)
            ));
        }
        if let Some(id) = in_memory
            && let Some(t) = self.downloads.remove(&id)
        {
            self.pending.retain(|_, p| !p.is_for(id));
            t.store.discard();
        } else {
            let _ = std::fs::remove_file(part);
        }
        resume::remove(&downloads, file_name);
        Ok(())
    }

    /// Says which downloads are unfinished, if any: at start-up (left by an earlier run), and
    /// on `quit` (running or paused ones are checkpointed on the way out and stay resumable).
    pub(in crate::peer) fn announce_unfinished(&mut self, quitting: bool, now: Instant) {
        let (downloads, _) = self.describe_downloads(now);
        if !downloads.is_empty() {
            self.ui.event(&Event::Unfinished {
                downloads,
                quitting,
            });
        }
    }

    /// `--resume-on-start`: every unfinished download left by an earlier run goes on in the
    /// background, as aria2c and rqbit do; the foreground stays free for commands.
    pub(in crate::peer) fn resume_in_background(&mut self, now: Instant) {
        let (records, _) = resume::list(&self.cfg.downloads_dir);
        let mut resumed = Vec::new();
        for rec in records {
            match self.resume_from_record(&rec.file_name, now) {
                Ok(Some(id)) => {
                    let limits = self.cfg.rate_limits;
                    let entry = |t: &Transfer| events::entry(&t.dl, &limits, now);
                    resumed.extend(self.downloads.get(&id).map(entry))
                }
                Ok(None) => {}
                Err(e) => {
                    let warning = Warning::NotResumed(e.into());
                    self.ui.event(&Event::Warning(warning))
                }
            }
        }
        if !resumed.is_empty() {
            self.ui.event(&Event::Resumed { downloads: resumed });
        }
    }

    /// Entries for the `downloads` command: running ones and those left by an earlier run.
    pub(in crate::peer) fn describe_downloads(
        &self,
        now: Instant,
    ) -> (Vec<DownloadEntry>, Vec<Warning>) {
        // A folder's contents show as their folder (`folder_entries`), not one by one.
        let mut lines: Vec<DownloadEntry> = self
            .downloads
            .values()
            .filter(|t| !self.folder_downloads.contains(&t.dl.id()))
            .map(|t| events::entry(&t.dl, &self.cfg.rate_limits, now))
            .collect();
        // All downloads share the global limit: held at it, each running one is bounded by it.
        let total: f64 = (self.downloads.values())
            .map(|t| t.dl.recent_rates(now).0)
            .sum();
        if crate::peer::download::at_limit(total, self.cfg.rate_limits.down) {
            for entry in lines.iter_mut().filter(|e| e.state == "downloading") {
                entry.limited_by = Some("max_down".into());
            }
        }
        let (records, bad) = resume::list(&self.cfg.downloads_dir);
        for rec in records {
            if self.download_named(&rec.file_name).is_none() {
                lines.push(events::record_entry(&rec));
            }
        }
        lines.extend(self.folder_entries());
        let bad = bad
            .into_iter()
            .map(|(path, why)| {
                let path = path.display().to_string();
                Warning::UnusableRecord { path, why }
            })
            .collect();
        (lines, bad)
    }
}
