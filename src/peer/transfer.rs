//! The node's side of downloads: thin routing between the reactor and each download's state
//! machine (`download/`). Connections map to sources (`Download::source_on`), request ids to
//! chunks (`Purpose`), messages to the machine's inputs; its outputs become requests, closes,
//! store calls and reports. Starting, resuming, checking and cancelling downloads is in
//! `transfer/setup.rs`; what the machine reports becomes the engine's events in
//! `transfer/events.rs`.

mod events;
pub(in crate::peer) mod setup;

use super::chunk_check::CheckJob;
use super::content_id::manifest_from_answer;
pub use super::download::DownloadId;
use super::download::check_hash;
use super::download::{
    Ask, ChunkAnswer, ChunkIndex, Download, End, HaveAnswer, ManifestAnswer, Output, Reached,
    Report, run_disk_output,
};
use super::event::{Event, Failure, Problem, Warning};
use super::frontend::Progress;
use super::node::{DiskWait, PeerNode, Pending, Purpose};
use super::transfer_state::Transfer;
use crate::reactor::{Action, ConnId};
use crate::wire::{ErrorCode, Message, encode_message};
use std::time::Instant;

impl PeerNode {
    /// Carries out what download `id` wants done until it wants nothing more (the machine's
    /// poll order: disk outputs answered at once, in order).
    pub(super) fn drive(&mut self, id: DownloadId, now: Instant) {
        self.drive_outputs(id, now);
        if !self.checked_elsewhere.is_empty() {
            let checked = std::mem::take(&mut self.checked_elsewhere);
            self.apply_checked(checked, now);
        }
        if self.first_flight.as_ref().is_some_and(|f| f.taken_by(id)) {
            self.flush_first_flight(now);
        }
    }

    fn drive_outputs(&mut self, id: DownloadId, now: Instant) {
        loop {
            let Some(t) = self.downloads.get_mut(&id) else {
                return;
            };
            let Some(out) = t.dl.poll_output() else {
                return;
            };
            if let Output::Publish { .. } = &out {
                tracing::info!(
                    "{}: all {} chunks verified; checking the whole file",
                    crate::names::printable(t.dl.file_name()),
                    t.dl.chunk_count()
                );
            }
            // A checkpoint's fsync goes to another thread (unless the process is leaving:
            // then it must be done before it goes; or there is nothing to sync nor record).
            let out = match out {
                Output::Checkpoint {
                    durable,
                    at_once: false,
                } if !self.exiting && t.store.keeps_records() => {
                    match t.store.checkpoint_job(&durable) {
                        Ok(job) => {
                            let job = self.disk.checkpoint(job);
                            self.disk_waiting.insert(job, DiskWait::Checkpoint(id));
                        }
                        Err(e) => t.dl.handle_checkpointed(Err(e), now),
                    }
                    continue;
                }
                // A chunk's SHA-256 goes to a checking thread when there is one.
                Output::Check {
                    source,
                    index,
                    data,
                    expected,
                } if !self.exiting
                    && self.checker.is_some()
                    && data.len() >= super::chunk_check::MIN_OFFLOAD =>
                {
                    let job = CheckJob {
                        dl: id,
                        source,
                        index,
                        data,
                        expected,
                    };
                    let Some(checker) = self.checker.as_mut() else {
                        continue; // there is one: the guard above
                    };
                    let (submitted, taken) = checker.submit_making_room(job);
                    for c in taken {
                        if c.dl == id {
                            t.dl.handle_chunk_checked(c.source, c.index, c.data, c.result, now);
                        } else {
                            self.checked_elsewhere.push(c);
                        }
                    }
                    if let Err(job) = submitted {
                        let checked = check_hash(&job.expected, &job.data);
                        t.dl.handle_chunk_checked(source, index, job.data, checked, now);
                    }
                    continue;
                }
                other => other,
            };
            let Some(out) = run_disk_output(&mut t.dl, &mut t.store, out, now) else {
                continue;
            };
            match out {
                Output::Ask { conn, ask } => self.ask_source(id, conn, ask),
                Output::Close(conn) => self.close(conn),
                Output::Reach { refresh } => {
                    if !(refresh && self.request_peer_list()) {
                        self.step_download(id, now);
                    }
                }
                Output::Report(report) => self.report_download(id, report),
                Output::Progress => self.show_progress(),
                Output::End(end) => self.download_ended(id, end, now),
                Output::Check { .. }
                | Output::Write { .. }
                | Output::Checkpoint { .. }
                | Output::Publish { .. } => {}
            }
        }
    }

    /// Chunks checked on the checking threads came back: each goes to its download (if it is
    /// still here), then each download touched carries out what follows, once.
    pub(super) fn checked_chunks(&mut self, now: Instant) {
        let Some(checker) = self.checker.as_mut() else {
            return;
        };
        let mut checked = std::mem::take(&mut self.checked_elsewhere);
        checked.extend(checker.take());
        self.apply_checked(checked, now);
    }

    /// Checked chunks go to their downloads (those still here), then each download touched
    /// carries out what follows, once.
    fn apply_checked(&mut self, checked: Vec<super::chunk_check::Checked>, now: Instant) {
        let mut touched = Vec::new();
        for c in checked {
            if let Some(t) = self.downloads.get_mut(&c.dl) {
                t.dl.handle_chunk_checked(c.source, c.index, c.data, c.result, now);
                if !touched.contains(&c.dl) {
                    touched.push(c.dl);
                }
            }
        }
        for id in touched {
            self.drive(id, now);
        }
    }

    /// Sends a download's request and remembers what its answer is for.
    fn ask_source(&mut self, id: DownloadId, conn: ConnId, ask: Ask) {
        let Some(t) = self.downloads.get(&id) else {
            return;
        };
        let content = t.dl.content_id();
        match ask {
            Ask::Manifest => {
                let purpose = Purpose::DownloadManifest(id);
                self.request(conn, purpose, |req| Message::GetManifest {
                    req,
                    id: content,
                });
            }
            Ask::Have => {
                let purpose = Purpose::DownloadHave(id);
                self.request(conn, purpose, |req| Message::GetHave { req, id: content });
            }
            Ask::Chunks(chunks) => {
                let mut batch = Vec::new();
                for index in chunks {
                    let req = self.next_request_id();
                    let purpose = Purpose::Chunk { dl: id, index };
                    self.pending.insert(req, Pending { conn, purpose });
                    let index = index.get();
                    batch.extend_from_slice(&encode_message(&Message::GetChunk {
                        req,
                        id: content,
                        index,
                    }));
                }
                self.actions.push_back(Action::Send(conn, batch));
            }
        }
    }

    /// A checkpoint carried out off the reactor came back.
    pub(super) fn download_checkpointed(
        &mut self,
        id: DownloadId,
        result: std::io::Result<()>,
        now: Instant,
    ) {
        if let Some(t) = self.downloads.get_mut(&id) {
            t.store.checkpoint_done(result.is_ok());
            t.dl.handle_checkpointed(result, now);
            self.drive(id, now);
        }
    }

    /// Says what a download reports.
    fn report_download(&mut self, id: DownloadId, report: Report) {
        if matches!(report, Report::NoSourceActive) {
            // In the REPL the prompt comes back; the download waits in the background.
            return self.op_download_waiting(id);
        }
        let Some(t) = self.downloads.get(&id) else {
            return;
        };
        // A folder's contents report as the folder: only their warnings are shown.
        let quiet =
            self.folder_downloads.contains(&id) && !matches!(report, Report::BadChunk { .. });
        if quiet {
            return;
        }
        if let Some(event) = events::report(&t.dl, report) {
            self.ui.event(&event);
        }
    }

    /// A download is over, or paused (it stays, for `resume` and for serving what it has).
    fn download_ended(&mut self, id: DownloadId, end: End, now: Instant) {
        self.pending.retain(|_, p| !p.is_for(id));
        let Some(t) = self.downloads.get(&id) else {
            return;
        };
        let result = match end {
            End::Paused(pause) => Err(events::paused(t, pause)),
            end => {
                let t = self.downloads.remove(&id).expect("looked up just above");
                self.dht_index_changed();
                // A folder's content is shared with its tree, not under its content-id name.
                if let End::Done(done) = &end
                    && !self.folder_downloads.contains(&id)
                    && let Err(e) = self.index.add_downloaded(
                        t.dl.file_name(),
                        &done.path,
                        t.dl.manifest().clone(),
                    )
                {
                    let (path, error) = (done.path.display().to_string(), e.to_string());
                    let warning = Warning::CannotShare { path, error };
                    self.ui.event(&Event::Warning(warning));
                }
                events::ended(&t, end)
            }
        };
        self.download_done(id, result, now);
    }

    /// Moves the sources of a download that are looking for their peer as far as they go now.
    fn step_download(&mut self, id: DownloadId, now: Instant) {
        let Some(t) = self.downloads.get(&id) else {
            return;
        };
        for (source, name, refreshed) in t.dl.reaching() {
            let mut refreshed_now = refreshed;
            let reached = match self.reach(&name, &mut refreshed_now) {
                Ok(None) => Reached::Pending {
                    refreshed: refreshed_now,
                },
                Ok(Some(conn)) => Reached::Connected(conn),
                Err(_) => Reached::Failed,
            };
            let Some(t) = self.downloads.get_mut(&id) else {
                return;
            };
            t.dl.handle_reached(source, reached, now);
        }
    }

    /// Feeds one input to every download, then carries out what each wants done.
    fn each_download(&mut self, now: Instant, mut input: impl FnMut(&mut Download)) {
        let ids: Vec<DownloadId> = self.downloads.keys().copied().collect();
        for id in ids {
            if let Some(t) = self.downloads.get_mut(&id) {
                input(&mut t.dl);
                self.drive(id, now);
            }
        }
    }

    /// Something changed that may let a download reach its sources (a peer list arrived, a
    /// connection opened or failed).
    pub(super) fn downloads_peer_event(&mut self, now: Instant) {
        self.each_download(now, |dl| dl.handle_wake(now));
    }

    /// A connection to `name` could not be made: sources reaching it wait and retry.
    pub(super) fn downloads_peer_unreachable(&mut self, name: &str, now: Instant) {
        self.each_download(now, |dl| {
            if let Some(s) = dl.source_named(name) {
                dl.handle_unreachable(s, now);
            }
        });
    }

    /// The manifest a source sent: the download's content id, or it is dropped and banned
    /// (never mixed).
    pub(super) fn download_manifest_answer(
        &mut self,
        conn: ConnId,
        id: DownloadId,
        msg: Message,
        now: Instant,
    ) {
        let Some(t) = self.downloads.get(&id) else {
            return;
        };
        let (asked, listed) = (t.dl.content_id(), t.dl.sha256());
        let theirs = match &msg {
            Message::Manifest {
                id: theirs,
                size,
                chunk_size,
                chunk_hashes,
                ..
            } => ManifestAnswer::Sent(manifest_from_answer(
                &asked,
                theirs,
                listed,
                *size,
                *chunk_size,
                chunk_hashes,
                Some(t.dl.size()),
            )),
            _ => ManifestAnswer::Refused,
        };
        self.download_input(conn, id, now, |dl, s| dl.handle_manifest(s, theirs, now));
    }

    /// Which chunks a source can serve: it becomes (or stays) active.
    pub(super) fn download_have_answer(
        &mut self,
        conn: ConnId,
        id: DownloadId,
        msg: Message,
        now: Instant,
    ) {
        let answer = match msg {
            Message::Have { complete: true, .. } => HaveAnswer::All,
            Message::Have { bitmap, .. } => HaveAnswer::Map(bitmap),
            Message::Error { message, .. } => HaveAnswer::Refused(message),
            other => HaveAnswer::Unexpected(other.kind()),
        };
        self.download_input(conn, id, now, |dl, s| dl.handle_have(s, answer, now));
    }

    /// The answer to a chunk request.
    pub(super) fn chunk_answer(
        &mut self,
        conn: ConnId,
        id: DownloadId,
        asked: ChunkIndex,
        msg: Message,
        now: Instant,
    ) {
        let answer = match msg {
            Message::Chunk { index, data, .. } => ChunkAnswer::Data { index, data },
            Message::Error { message, code, .. } => ChunkAnswer::Refused {
                unavailable: code == ErrorCode::Unavailable,
                message,
            },
            other => ChunkAnswer::Unexpected(other.kind()),
        };
        self.download_input(conn, id, now, |dl, s| {
            dl.handle_chunk(s, asked, answer, now)
        });
    }

    /// Feeds an answer that came over `conn` to download `id`, from the source on it.
    fn download_input(
        &mut self,
        conn: ConnId,
        id: DownloadId,
        now: Instant,
        input: impl FnOnce(&mut Download, super::download::SourceId),
    ) {
        let Some(t) = self.downloads.get_mut(&id) else {
            return;
        };
        let Some(s) = t.dl.source_on(conn) else {
            return;
        };
        input(&mut t.dl, s);
        self.drive(id, now);
    }

    /// A source broke the frame layer (an oversize or undecodable frame) on `conn`: that counts
    /// like a bad chunk towards its ban, for every download it serves.
    pub(super) fn downloads_protocol_fault(&mut self, conn: ConnId, why: &str, now: Instant) {
        self.each_download(now, |dl| {
            if let Some(s) = dl.source_on(conn) {
                dl.handle_broken_frame(s, why, now);
            }
        });
    }

    /// A connection closed: downloads using it keep their progress and look for the source.
    pub(super) fn downloads_connection_lost(&mut self, conn: ConnId, why: &str, now: Instant) {
        self.each_download(now, |dl| {
            if let Some(s) = dl.source_on(conn) {
                dl.handle_source_lost(s, why, now);
            }
        });
    }

    pub(super) fn downloads_tick(&mut self, now: Instant) {
        self.each_download(now, |dl| dl.handle_timeout(now));
    }

    pub(super) fn downloads_deadline(&self) -> Option<Instant> {
        self.downloads
            .values()
            .filter_map(|t| t.dl.poll_timeout())
            .min()
    }

    /// On exit: make what was fetched durable so a restart continues from here.
    pub(super) fn checkpoint_all(&mut self, now: Instant) {
        self.each_download(now, |dl| dl.handle_exit(now));
    }

    /// Ctrl-C in the REPL or a batch: pauses download `id` like any pause (`resume`
    /// continues it, after a restart too).
    pub(super) fn pause_interrupted(&mut self, id: DownloadId, now: Instant) {
        if let Some(t) = self.downloads.get_mut(&id) {
            t.dl.handle_interrupt(now);
            self.drive(id, now);
        }
    }

    /// Progress of the foreground command's downloads, for the bar.
    pub(super) fn show_progress(&mut self) {
        if matches!(self.op, Some(super::op::Op::Folder)) {
            return self.show_folder_progress();
        }
        let ids = self.op_download_ids();
        if ids.is_empty() {
            return;
        }
        let running = || ids.iter().filter_map(|id| self.downloads.get(id));
        let done = running().map(|t| t.dl.bytes_done()).sum();
        let sources = running().map(|t| t.dl.active_sources()).sum();
        self.ui.progress(Progress::Sources(sources));
        self.ui.progress(Progress::Done(done));
    }
}

impl Pending {
    /// Whether this request belongs to download `id`.
    pub fn is_for(&self, id: DownloadId) -> bool {
        matches!(
            self.purpose,
            Purpose::Chunk { dl, .. }
                | Purpose::FirstFlightOf { dl, .. }
                | Purpose::DownloadManifest(dl)
                | Purpose::DownloadHave(dl)
                if dl == id
        )
    }
}

/// Failures a download ends with, for [`PeerNode::download_done`].
type Ended = Result<Event, (Failure, Problem)>;
