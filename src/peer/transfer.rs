//! Downloads: each keeps a window of chunk requests in flight to its source, verifies every
//! chunk against the manifest before writing it, checkpoints what is durable in its resume
//! record, and finishes by linking the verified file into place.
//!
//! A download outlives its connection: when the source goes away it keeps its progress, looks
//! the source up again by name (its address may have changed) and reconnects with backoff, for
//! up to `--retry-for`; then it pauses, partial file and record kept, until `resume`.

use super::chunk_plan::{ChunkFault, ChunkPlan};
use super::manifest::Manifest;
use super::node::{PeerNode, Pending, Purpose};
use super::partial::PartialFile;
use super::resume::{self, LoadError, ResumeRecord};
use crate::names::printable;
use crate::reactor::{Action, ConnId};
use crate::repl::ui::human_bytes;
use crate::wire::{Message, Sha256, encode_message};
use std::time::{Duration, Instant};

pub type DownloadId = u64;

/// Bytes of chunk requests kept in flight: enough to fill a fast link with a long round trip
/// (the bandwidth-delay product of 1 Gbit/s at 60 ms), so a transfer never waits a round trip
/// per chunk.
const WINDOW_BYTES: usize = 8 * 1024 * 1024;
/// Corrupt chunks tolerated from one source before it is dropped.
const MAX_BAD_CHUNKS: u32 = 3;
/// A source that sends nothing for this long is treated as gone.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Checkpoint (fsync + record) after this many chunks or this much time, whichever first:
/// durability costs one fsync per 8 MiB, not one per chunk.
const CHECKPOINT_CHUNKS: usize = 32;
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
const FIRST_RETRY: Duration = Duration::from_millis(300);
const MAX_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceState {
    /// Chunks flow over this connection.
    Active { conn: ConnId },
    /// Reconnected: the manifest was asked for, to confirm the source still has these bytes.
    Confirming { conn: ConnId },
    /// Looking the source up and connecting; `refreshed`: the tracker was asked anew.
    Reaching { refreshed: bool },
    /// The source is gone; look again at `retry_at`.
    Waiting { retry_at: Instant },
    /// Not running: given up or stopped, until `resume`.
    Paused,
}

pub struct Download {
    pub id: DownloadId,
    pub file_name: String,
    pub source: String,
    pub sha256: Sha256,
    state: SourceState,
    plan: ChunkPlan,
    part: PartialFile,
    record: ResumeRecord,
    /// Chunks written since the last checkpoint (not yet known durable).
    unsynced: Vec<u64>,
    last_checkpoint: Instant,
    window: usize,
    started: Instant,
    last_progress: Instant,
    bad_chunks: u32,
    /// Bytes received from the network since this run of the download started.
    fetched: u64,
    /// When the source went away (None while it is there).
    lost_since: Option<Instant>,
    backoff: Duration,
}

impl Download {
    pub fn size(&self) -> u64 {
        self.plan.manifest().size
    }

    pub fn bytes_done(&self) -> u64 {
        self.plan.bytes_done()
    }

    pub fn percent(&self) -> f64 {
        percent(self.plan.bytes_done(), self.size())
    }

    pub fn is_paused(&self) -> bool {
        self.state == SourceState::Paused
    }

    pub fn conn(&self) -> Option<ConnId> {
        match self.state {
            SourceState::Active { conn } | SourceState::Confirming { conn } => Some(conn),
            _ => None,
        }
    }

    /// One line for the `downloads` command.
    pub fn describe(&self) -> String {
        let state = match self.state {
            SourceState::Active { .. } => "downloading".to_string(),
            SourceState::Confirming { .. } | SourceState::Reaching { .. } => {
                "reconnecting".to_string()
            }
            SourceState::Waiting { .. } => "waiting for the source".to_string(),
            SourceState::Paused => "paused".to_string(),
        };
        format!(
            "{}  {:.1}%  {} of {}  from {}  {state}",
            printable(&self.file_name),
            self.percent(),
            human_bytes(self.bytes_done()),
            human_bytes(self.size()),
            self.source
        )
    }
}

pub fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    }
}

impl PeerNode {
    /// Starts (or continues, if a partial download of the same bytes exists) the download of
    /// `file_name` from `source`, whose manifest just arrived on `conn`.
    pub(super) fn begin_download(
        &mut self,
        conn: ConnId,
        source: &str,
        file_name: &str,
        manifest: Manifest,
        now: Instant,
    ) -> Result<DownloadId, String> {
        if let Some(existing) = self.download_named(file_name) {
            if !self.downloads[&existing].is_paused() {
                return Err(format!("already downloading {}", printable(file_name)));
            }
            self.downloads.remove(&existing);
        }
        let downloads = self.cfg.downloads_dir.clone();
        match resume::load_for(&downloads, file_name) {
            Ok(rec) if rec.sha256 != manifest.sha256 => {
                return Err(format!(
                    "a partial download of {} with other content is here (sha256 {}, from {}); \
                     the file {source} shares now has sha256 {}. Refusing to mix them: \
                     `cancel {}` discards the partial download",
                    printable(file_name),
                    rec.sha256,
                    rec.source,
                    manifest.sha256,
                    printable(file_name)
                ));
            }
            Ok(_) | Err(LoadError::Missing) => {}
            Err(LoadError::Bad(why)) => self.ui.warn(&format!(
                "the resume record of {} is unusable ({why}); checking the partial file instead",
                printable(file_name)
            )),
        }
        let dest = downloads.join(file_name);
        let mut part = PartialFile::open_existing(&dest, file_name)
            .map_err(|e| format!("cannot open a file in {}: {e}", downloads.display()))?;
        let mut plan = ChunkPlan::new(manifest);
        let kept = part
            .adopt_verified_chunks(&mut plan)
            .map_err(|e| format!("cannot read the partial download of {file_name}: {e}"))?;
        if kept > 0 {
            self.ui.line(&format!(
                "resuming {} from {source}: {kept} of {} chunks already here ({:.1}%)",
                printable(file_name),
                plan.chunk_count(),
                percent(plan.bytes_done(), plan.manifest().size)
            ));
        }
        let mut record = ResumeRecord::new(file_name, source, plan.manifest());
        for index in 0..plan.chunk_count() {
            if plan.state(index) == Some(super::chunk_plan::ChunkState::Done) {
                record.set_durable(index);
            }
        }
        part.sync()
            .and_then(|()| resume::save(&downloads, &record))
            .map_err(|e| {
                format!(
                    "cannot save the resume record in {}: {e}",
                    downloads.display()
                )
            })?;
        let id = self.next_id();
        let window = (WINDOW_BYTES / plan.manifest().chunk_size as usize).max(2);
        self.downloads.insert(
            id,
            Download {
                id,
                file_name: file_name.to_string(),
                source: source.to_string(),
                sha256: plan.manifest().sha256,
                state: SourceState::Active { conn },
                plan,
                part,
                record,
                unsynced: Vec::new(),
                last_checkpoint: now,
                window,
                started: now,
                last_progress: now,
                bad_chunks: 0,
                fetched: 0,
                lost_since: None,
                backoff: FIRST_RETRY,
            },
        );
        Ok(id)
    }

    /// Starts the download a resume record describes: it finds its source by name again.
    pub(super) fn resume_from_record(
        &mut self,
        file_name: &str,
        now: Instant,
    ) -> Result<DownloadId, String> {
        if let Some(id) = self.download_named(file_name) {
            let dl = self.downloads.get_mut(&id).expect("just found");
            if dl.is_paused() {
                dl.state = SourceState::Reaching { refreshed: false };
                dl.lost_since = Some(now);
                dl.backoff = FIRST_RETRY;
                dl.bad_chunks = 0;
                self.step_download(id, now);
            }
            return Ok(id);
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
        let dest = downloads.join(file_name);
        let mut part = PartialFile::open_existing(&dest, file_name)
            .map_err(|e| format!("cannot open the partial download of {shown}: {e}"))?;
        let mut plan = ChunkPlan::new(manifest);
        let kept = part
            .adopt_verified_chunks(&mut plan)
            .map_err(|e| format!("cannot read the partial download of {shown}: {e}"))?;
        let recorded = record.durable_count();
        self.ui.line(&format!(
            "resuming {shown} from {}: {kept} of {} chunks already here ({:.1}%)",
            record.source,
            plan.chunk_count(),
            percent(plan.bytes_done(), plan.manifest().size)
        ));
        if kept < recorded {
            self.ui.warn(&format!(
                "{shown}: {} of the {recorded} chunks recorded as done failed verification \
                 (torn or lost writes); they will be fetched again",
                recorded - kept
            ));
        }
        let id = self.next_id();
        let window = (WINDOW_BYTES / plan.manifest().chunk_size as usize).max(2);
        let source = record.source.clone();
        self.downloads.insert(
            id,
            Download {
                id,
                file_name: file_name.to_string(),
                source,
                sha256: record.sha256,
                state: SourceState::Reaching { refreshed: false },
                plan,
                part,
                record,
                unsynced: Vec::new(),
                last_checkpoint: now,
                window,
                started: now,
                last_progress: now,
                bad_chunks: 0,
                fetched: 0,
                lost_since: Some(now),
                backoff: FIRST_RETRY,
            },
        );
        self.step_download(id, now);
        Ok(id)
    }

    pub(super) fn download_named(&self, file_name: &str) -> Option<DownloadId> {
        self.downloads
            .values()
            .find(|d| d.file_name == file_name)
            .map(|d| d.id)
    }

    /// Drops a download and its partial file and record.
    pub(super) fn cancel_download(&mut self, file_name: &str) -> Result<(), String> {
        let downloads = self.cfg.downloads_dir.clone();
        let record = resume::load_for(&downloads, file_name);
        let in_memory = self.download_named(file_name);
        if in_memory.is_none() && matches!(record, Err(LoadError::Missing)) {
            let part = super::partial::partial_path(&downloads.join(file_name), file_name);
            if std::fs::symlink_metadata(&part).is_err() {
                return Err(format!(
                    "no unfinished download named '{}'",
                    printable(file_name)
                ));
            }
        }
        if let Some(id) = in_memory
            && let Some(dl) = self.downloads.remove(&id)
        {
            if let Some(conn) = dl.conn() {
                self.pending.retain(|_, p| p.conn != conn || !p.is_for(id));
            }
            dl.part.abandon();
        } else {
            let part = super::partial::partial_path(&downloads.join(file_name), file_name);
            let _ = std::fs::remove_file(part);
        }
        resume::remove(&downloads, file_name);
        Ok(())
    }

    /// Sends the first window of requests of a download that just began.
    pub(super) fn start_transfer(&mut self, id: DownloadId, now: Instant) {
        self.fill_window(id);
        self.maybe_finish(id, now);
    }

    /// Tops the requests in flight up to the window, as one write.
    fn fill_window(&mut self, id: DownloadId) {
        let Some(dl) = self.downloads.get_mut(&id) else {
            return;
        };
        let SourceState::Active { conn } = dl.state else {
            return;
        };
        let mut asked = Vec::new();
        while dl.plan.in_flight() < dl.window {
            let Some(index) = dl.plan.next_request() else {
                break;
            };
            asked.push(index);
        }
        let sha256 = dl.sha256;
        let mut batch = Vec::new();
        for index in asked {
            let req = self.next_id();
            let purpose = Purpose::Chunk { dl: id, index };
            self.pending.insert(req, Pending { conn, purpose });
            batch.extend_from_slice(&encode_message(&Message::GetChunk { req, sha256, index }));
        }
        if !batch.is_empty() {
            self.actions.push_back(Action::Send(conn, batch));
        }
    }

    /// The answer to a chunk request.
    pub(super) fn chunk_answer(
        &mut self,
        conn: ConnId,
        id: DownloadId,
        asked: u64,
        msg: Message,
        now: Instant,
    ) {
        let Some(dl) = self.downloads.get_mut(&id) else {
            return;
        };
        if dl.state != (SourceState::Active { conn }) {
            return;
        }
        let source = dl.source.clone();
        let data = match msg {
            Message::Chunk { index, data, .. } if index == asked => data,
            Message::Chunk { index, .. } => {
                dl.plan.give_back(asked);
                let why = format!("answered a request for chunk {asked} with chunk {index}");
                return self.drop_source(id, conn, &why, now);
            }
            Message::Error { message, .. } => {
                dl.plan.give_back(asked);
                let why = format!("{source}: {}", printable(&message));
                return self.pause_download(id, Err(why));
            }
            other => {
                dl.plan.give_back(asked);
                let why = format!("answered a chunk request with {}", other.kind());
                return self.drop_source(id, conn, &why, now);
            }
        };
        dl.last_progress = now;
        dl.fetched += data.len() as u64;
        match dl.plan.verify(asked, &data) {
            Ok(()) => {
                if let Err(e) = dl.part.write_chunk(&dl.plan, asked, &data) {
                    dl.plan.give_back(asked);
                    let dest = dl.part.dest().display().to_string();
                    let why = format!(
                        "cannot write {dest}: {e}; the download is paused at {:.1}% — \
                         `resume {}` continues it once the problem is fixed",
                        dl.percent(),
                        printable(&dl.file_name)
                    );
                    return self.pause_download(id, Err(why));
                }
                dl.plan.mark_written(asked);
                dl.unsynced.push(asked);
            }
            Err(fault) => {
                dl.bad_chunks += 1;
                let bad = dl.bad_chunks;
                if matches!(fault, ChunkFault::WrongLength { .. }) || bad >= MAX_BAD_CHUNKS {
                    let why = format!("sent {fault} (chunk {asked}; {bad} bad so far)");
                    return self.drop_source(id, conn, &why, now);
                }
                self.ui.warn(&format!(
                    "{source} sent {fault} (chunk {asked}); fetching it again"
                ));
            }
        }
        self.show_progress();
        if self.downloads[&id].unsynced.len() >= CHECKPOINT_CHUNKS {
            self.checkpoint(id, now);
        }
        self.fill_window(id);
        self.maybe_finish(id, now);
    }

    /// Makes written chunks durable and records them. An fsync or record failure pauses the
    /// download: retrying an fsync can "succeed" with the data gone.
    fn checkpoint(&mut self, id: DownloadId, now: Instant) {
        let Some(dl) = self.downloads.get_mut(&id) else {
            return;
        };
        dl.last_checkpoint = now;
        if dl.unsynced.is_empty() {
            return;
        }
        let synced = dl.part.sync().and_then(|()| {
            for index in dl.unsynced.drain(..) {
                dl.record.set_durable(index);
            }
            resume::save(&self.cfg.downloads_dir, &dl.record)
        });
        if let Err(e) = synced {
            let why = format!(
                "cannot make the download of {} durable: {e}; paused",
                printable(&dl.file_name)
            );
            self.pause_download(id, Err(why));
        }
    }

    fn maybe_finish(&mut self, id: DownloadId, now: Instant) {
        if !self
            .downloads
            .get(&id)
            .is_some_and(|d| d.plan.is_complete())
        {
            return;
        }
        let Some(dl) = self.downloads.remove(&id) else {
            return;
        };
        if let Some(conn) = dl.conn() {
            self.pending.retain(|_, p| p.conn != conn || !p.is_for(id));
        }
        let secs = now.duration_since(dl.started).as_secs_f64();
        let size = dl.size();
        let file_name = dl.file_name.clone();
        let result = match dl.part.finish(&dl.sha256) {
            Ok(path) => {
                resume::remove(&self.cfg.downloads_dir, &file_name);
                let rate = if secs > 0.0 {
                    dl.fetched as f64 / secs / 1e6
                } else {
                    0.0
                };
                Ok(format!(
                    "saved {} ({size} bytes, {}) from {} in {secs:.2}s, {rate:.1} MB/s, \
                     {} bytes fetched, sha256 {}",
                    path.display(),
                    human_bytes(size),
                    dl.source,
                    dl.fetched,
                    dl.sha256
                ))
            }
            Err(e) => {
                // The chunks matched the manifest but the whole file did not: the manifest was
                // wrong. Nothing of it can be trusted.
                resume::remove(&self.cfg.downloads_dir, &file_name);
                Err(e)
            }
        };
        self.download_done(id, result);
    }

    /// Stops a download (partial file and record kept) and reports why.
    fn pause_download(&mut self, id: DownloadId, result: Result<String, String>) {
        let now = Instant::now();
        self.checkpoint(id, now);
        let Some(dl) = self.downloads.get_mut(&id) else {
            return;
        };
        if let Some(conn) = dl.conn() {
            self.pending.retain(|_, p| p.conn != conn || !p.is_for(id));
        }
        let dl = self.downloads.get_mut(&id).expect("checked");
        dl.state = SourceState::Paused;
        while dl.plan.in_flight() > 0 {
            // Requests still out are forgotten; their chunks are missing again.
            let Some(index) = (0..dl.plan.chunk_count())
                .find(|&i| dl.plan.state(i) == Some(super::chunk_plan::ChunkState::Requested))
            else {
                break;
            };
            dl.plan.give_back(index);
        }
        self.download_done(id, result);
    }

    /// The source misbehaved: close the connection and stop this download.
    fn drop_source(&mut self, id: DownloadId, conn: ConnId, why: &str, _now: Instant) {
        let source = self
            .downloads
            .get(&id)
            .map(|d| d.source.clone())
            .unwrap_or_default();
        self.close(conn);
        self.pause_download(id, Err(format!("{source} {why}; dropped it")));
    }

    /// A connection closed: downloads using it keep their progress and look for the source.
    pub(super) fn downloads_connection_lost(&mut self, conn: ConnId, why: &str, now: Instant) {
        let ids: Vec<DownloadId> = self
            .downloads
            .values()
            .filter(|d| d.conn() == Some(conn))
            .map(|d| d.id)
            .collect();
        for id in ids {
            self.source_lost(id, why, now);
        }
    }

    fn source_lost(&mut self, id: DownloadId, why: &str, now: Instant) {
        self.checkpoint(id, now);
        let retry_for = self.cfg.retry_for;
        let Some(dl) = self.downloads.get_mut(&id) else {
            return;
        };
        if let Some(conn) = dl.conn() {
            self.pending.retain(|_, p| p.conn != conn || !p.is_for(id));
        }
        let dl = self.downloads.get_mut(&id).expect("checked");
        for index in 0..dl.plan.chunk_count() {
            if dl.plan.state(index) == Some(super::chunk_plan::ChunkState::Requested) {
                dl.plan.give_back(index);
            }
        }
        let first = dl.lost_since.is_none();
        dl.lost_since.get_or_insert(now);
        dl.state = SourceState::Waiting {
            retry_at: now + dl.backoff,
        };
        dl.backoff = (dl.backoff * 2).min(MAX_RETRY);
        if first {
            let line = format!(
                "lost {} ({why}); {} kept at {:.1}%, retrying for up to {}s",
                dl.source,
                printable(&dl.file_name),
                dl.percent(),
                retry_for.as_secs()
            );
            self.ui.warn(&line);
            self.op_download_waiting(id);
        }
    }

    /// Moves a download that is looking for its source as far as it can go now.
    fn step_download(&mut self, id: DownloadId, now: Instant) {
        let Some(dl) = self.downloads.get(&id) else {
            return;
        };
        let SourceState::Reaching { refreshed } = dl.state else {
            return;
        };
        let source = dl.source.clone();
        let mut refreshed_now = refreshed;
        let reached = self.reach(&source, &mut refreshed_now);
        let Some(dl) = self.downloads.get_mut(&id) else {
            return;
        };
        match reached {
            Ok(None) => {
                dl.state = SourceState::Reaching {
                    refreshed: refreshed_now,
                }
            }
            Ok(Some(conn)) => {
                dl.state = SourceState::Confirming { conn };
                let sha256 = dl.sha256;
                let purpose = Purpose::DownloadManifest(id);
                self.request(conn, purpose, |req| Message::GetManifest { req, sha256 });
            }
            Err(_) => {
                dl.state = SourceState::Waiting {
                    retry_at: now + dl.backoff,
                };
                dl.backoff = (dl.backoff * 2).min(MAX_RETRY);
            }
        }
    }

    /// Something changed that may let a download reach its source (a peer list arrived, a
    /// connection opened or failed).
    pub(super) fn downloads_peer_event(&mut self, now: Instant) {
        let ids: Vec<DownloadId> = self
            .downloads
            .values()
            .filter(|d| matches!(d.state, SourceState::Reaching { .. }))
            .map(|d| d.id)
            .collect();
        for id in ids {
            self.step_download(id, now);
        }
    }

    /// A connection to `name` could not be made: downloads reaching it wait and retry.
    pub(super) fn downloads_peer_unreachable(&mut self, name: &str, now: Instant) {
        for dl in self.downloads.values_mut() {
            if dl.source == name && matches!(dl.state, SourceState::Reaching { .. }) {
                dl.state = SourceState::Waiting {
                    retry_at: now + dl.backoff,
                };
                dl.backoff = (dl.backoff * 2).min(MAX_RETRY);
            }
        }
    }

    /// The manifest a reconnected source sent: same bytes, or refuse to mix.
    pub(super) fn download_manifest_answer(
        &mut self,
        conn: ConnId,
        id: DownloadId,
        msg: Message,
        now: Instant,
    ) {
        let Some(dl) = self.downloads.get_mut(&id) else {
            return;
        };
        if dl.state != (SourceState::Confirming { conn }) {
            return;
        }
        let same = match &msg {
            Message::Manifest {
                sha256,
                size,
                chunk_size,
                chunk_hashes,
                ..
            } => {
                let theirs = Manifest::from_wire(*sha256, *size, *chunk_size, chunk_hashes, None);
                theirs.as_ref() == Ok(dl.plan.manifest())
            }
            _ => false,
        };
        if !same {
            let why = format!(
                "{} no longer shares the same content for {} (sha256 {}); not mixing it with \
                 what is here — the partial download is kept",
                dl.source,
                printable(&dl.file_name),
                dl.sha256
            );
            return self.pause_download(id, Err(why));
        }
        dl.state = SourceState::Active { conn };
        dl.lost_since = None;
        dl.backoff = FIRST_RETRY;
        dl.last_progress = now;
        let line = format!(
            "reconnected to {}; continuing {} from {:.1}%",
            dl.source,
            printable(&dl.file_name),
            dl.percent()
        );
        self.ui.line(&line);
        self.fill_window(id);
        self.maybe_finish(id, now);
    }

    pub(super) fn downloads_tick(&mut self, now: Instant) {
        let retry_for = self.cfg.retry_for;
        let ids: Vec<DownloadId> = self.downloads.keys().copied().collect();
        for id in ids {
            let Some(dl) = self.downloads.get(&id) else {
                continue;
            };
            let gone_too_long = dl.lost_since.is_some_and(|t| now >= t + retry_for)
                && !matches!(dl.state, SourceState::Active { .. } | SourceState::Paused);
            match dl.state {
                _ if gone_too_long => {
                    let why = format!(
                        "{} did not come back within {}s; {} is kept at {:.1}% — \
                         `resume {}` continues it",
                        dl.source,
                        retry_for.as_secs(),
                        printable(&dl.file_name),
                        dl.percent(),
                        printable(&dl.file_name)
                    );
                    self.pause_download(id, Err(why));
                }
                SourceState::Waiting { retry_at } if now >= retry_at => {
                    let dl = self.downloads.get_mut(&id).expect("present");
                    // Ask the tracker first: the source may be back at another address.
                    dl.state = SourceState::Reaching { refreshed: true };
                    if !self.request_peer_list() {
                        self.step_download(id, now);
                    }
                }
                SourceState::Active { conn } if now >= dl.last_progress + STALL_TIMEOUT => {
                    let why = format!("nothing received for {}s", STALL_TIMEOUT.as_secs());
                    self.close(conn);
                    self.source_lost(id, &why, now);
                }
                SourceState::Active { .. } if now >= dl.last_checkpoint + CHECKPOINT_EVERY => {
                    self.checkpoint(id, now);
                }
                _ => {}
            }
        }
    }

    pub(super) fn downloads_deadline(&self) -> Option<Instant> {
        let retry_for = self.cfg.retry_for;
        self.downloads
            .values()
            .filter_map(|d| match d.state {
                SourceState::Waiting { retry_at } => Some(retry_at),
                SourceState::Active { .. } => Some(if d.unsynced.is_empty() {
                    d.last_progress + STALL_TIMEOUT
                } else {
                    (d.last_checkpoint + CHECKPOINT_EVERY).min(d.last_progress + STALL_TIMEOUT)
                }),
                SourceState::Reaching { .. } | SourceState::Confirming { .. } => {
                    d.lost_since.map(|t| t + retry_for)
                }
                SourceState::Paused => None,
            })
            .min()
    }

    /// On exit: make what was fetched durable so a restart continues from here.
    pub(super) fn checkpoint_all(&mut self) {
        let now = Instant::now();
        let ids: Vec<DownloadId> = self.downloads.keys().copied().collect();
        for id in ids {
            self.checkpoint(id, now);
        }
    }

    /// Progress of the foreground command's downloads, for the bar.
    pub(super) fn show_progress(&mut self) {
        let ids = self.op_download_ids();
        if ids.is_empty() {
            return;
        }
        let done = ids
            .iter()
            .filter_map(|id| self.downloads.get(id))
            .map(|d| d.bytes_done())
            .sum();
        self.ui.set_progress(done);
    }

    /// Lines for the `downloads` command: running ones and those left by an earlier run.
    pub(super) fn describe_downloads(&self) -> (Vec<String>, Vec<String>) {
        let mut lines: Vec<String> = self.downloads.values().map(Download::describe).collect();
        let (records, bad) = resume::list(&self.cfg.downloads_dir);
        for rec in records {
            if self.download_named(&rec.file_name).is_some() {
                continue;
            }
            let chunks = rec.manifest().map(|m| m.chunk_count()).unwrap_or(0);
            let done_bytes = (rec.durable_count() * u64::from(rec.chunk_size)).min(rec.size);
            lines.push(format!(
                "{}  {:.1}%  {} of {}  from {}  not running (resume to continue){}",
                printable(&rec.file_name),
                percent(done_bytes, rec.size),
                human_bytes(done_bytes),
                human_bytes(rec.size),
                rec.source,
                if chunks == 0 { " (empty)" } else { "" }
            ));
        }
        let bad = bad
            .into_iter()
            .map(|(path, why)| format!("unusable resume record {}: {why}", path.display()))
            .collect();
        (lines, bad)
    }
}

impl Pending {
    /// Whether this request belongs to download `id`.
    pub fn is_for(&self, id: DownloadId) -> bool {
        matches!(self.purpose, Purpose::Chunk { dl, .. } | Purpose::DownloadManifest(dl) if dl == id)
    }
}
