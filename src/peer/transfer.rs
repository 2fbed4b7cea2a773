//! Downloads from one or many sources at once. Each source keeps a bounded window of chunk
//! requests; a source gets a new request each time it answers one, so faster sources get more
//! chunks. Every chunk is verified against the manifest before it is written; a source that
//! sends bad chunks is banned for that download and its chunks are fetched elsewhere. Written
//! chunks are checkpointed into the resume record once durable; the finished file is linked into
//! place only when its whole SHA-256 matches.
//!
//! A download outlives its connections: a source that goes away is looked up again by name
//! (its address may have changed) and reconnected with backoff; a download with no source left
//! waits up to `--retry-for`, then pauses, partial file and record kept, until `resume`.

use super::chunk_plan::{ChunkFault, ChunkPlan, ChunkState};
use super::event::{DownloadEntry, Event, Failure, Problem, RunningDownload, Warning};
use super::frontend::Progress;
use super::manifest::Manifest;
use super::node::{PeerNode, Pending, Purpose};
use super::partial::{Destination, FinishError, PartialFile};
use super::resume::{self, LoadError, ResumeRecord};
use crate::names::printable;
use crate::reactor::{Action, ConnId};
use crate::wire::{Message, Sha256, encode_message};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A download of this run, from a counter of its own (never a request id or a connect tag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DownloadId(pub u64);

/// Bytes of chunk requests kept in flight per source: enough to fill a fast link with a long
/// round trip (the bandwidth-delay product of ~5 Gbit/s at 50 ms; 8 MiB capped one source at
/// ~170 MB/s over 50 ms), so a transfer never waits a round trip per chunk. It costs the
/// receiver no memory (answers wait in the sockets): the sender takes no more requests from us
/// while 1 MiB of answers is queued for us (src/reactor/budget.rs). What is in flight is what
/// a kill of the receiver costs (tests/crash_campaign.rs).
const WINDOW_BYTES: usize = 32 * 1024 * 1024;
/// Requests are topped up in batches of at least this many (or whatever the window has room
/// for, when it is small): one write per few chunks instead of one per chunk.
const REFILL_BATCH: usize = 4;
/// Corrupt chunks tolerated from one source before it is banned from the download.
const MAX_BAD_CHUNKS: u32 = 3;
/// A request unanswered for this long marks its source as stalled: its chunks go elsewhere.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Checkpoint (fsync + record) after this many chunks or this much time, whichever first:
/// durability costs about one fsync a second (or per 64 MiB), not one per chunk.
const CHECKPOINT_CHUNKS: usize = 256;
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How often a source that has only part of the file is asked again what it has.
const HAVE_REFRESH: Duration = Duration::from_secs(1);
const FIRST_RETRY: Duration = Duration::from_millis(300);
const MAX_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceState {
    /// Chunks flow over this connection.
    Active { conn: ConnId },
    /// Connected: the manifest (then the chunk map) was asked for, to confirm the source has
    /// these bytes and learn which chunks it can serve.
    Confirming { conn: ConnId },
    /// Looking the source up and connecting; `refreshed`: the tracker was asked anew.
    Reaching { refreshed: bool },
    /// The source is gone; look again at `retry_at`.
    Waiting { retry_at: Instant },
    /// Banned (bad chunks) or no longer has the file: not used again by this download.
    Dropped,
}

struct Source {
    name: String,
    state: SourceState,
    /// Chunk index -> when it was asked of this source.
    in_flight: BTreeMap<u64, Instant>,
    window: usize,
    /// Chunks this source can serve; `None` while unknown (ask nothing yet).
    have: Option<Have>,
    bad_chunks: u32,
    /// Verified bytes received from this source.
    bytes: u64,
    backoff: Duration,
    next_have_refresh: Instant,
    /// Why it was dropped, for `downloads`.
    dropped_why: Option<String>,
    /// When the last manifest or chunk map was asked of it (an unanswered one is a stall).
    asked_at: Instant,
    /// A verified chunk arrived over its current connection. Only then does it count as
    /// back (for `--retry-for`) and its reconnect backoff start over: a source that passes
    /// GetManifest and GetHave and then breaks every time must not be retried every 300 ms for
    /// ever.
    delivering: bool,
}

#[derive(Debug, Clone)]
enum Have {
    All,
    Some(Vec<u8>),
}

impl Have {
    fn has(&self, index: u64) -> bool {
        match self {
            Have::All => true,
            Have::Some(bits) => bit(bits, index),
        }
    }
}

fn bit(bits: &[u8], index: u64) -> bool {
    bits.get((index / 8) as usize)
        .is_some_and(|b| b & (1 << (index % 8)) != 0)
}

impl Source {
    fn new(name: &str, window: usize, now: Instant) -> Source {
        Source {
            name: name.to_string(),
            state: SourceState::Reaching { refreshed: false },
            in_flight: BTreeMap::new(),
            window,
            have: None,
            bad_chunks: 0,
            bytes: 0,
            backoff: FIRST_RETRY,
            next_have_refresh: now,
            dropped_why: None,
            asked_at: now,
            delivering: false,
        }
    }

    /// Whether this source makes the download "not lost": it delivers, or it is a partial
    /// seeder that has nothing for us yet (waiting on it is the point).
    fn counts_as_back(&self) -> bool {
        matches!(self.state, SourceState::Active { .. })
            && (self.delivering || matches!(self.have, Some(Have::Some(_))))
    }

    fn conn(&self) -> Option<ConnId> {
        match self.state {
            SourceState::Active { conn } | SourceState::Confirming { conn } => Some(conn),
            _ => None,
        }
    }

    fn wait(&mut self, now: Instant) {
        self.state = SourceState::Waiting {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(MAX_RETRY);
    }
}

pub struct Download {
    pub id: DownloadId,
    pub file_name: String,
    pub sha256: Sha256,
    sources: Vec<Source>,
    plan: ChunkPlan,
    part: PartialFile,
    record: ResumeRecord,
    /// Not running until `resume`.
    paused: bool,
    /// Chunks written since the last checkpoint (not yet known durable).
    unsynced: Vec<u64>,
    last_checkpoint: Instant,
    started: Instant,
    /// Bytes received from the network since this run of the download started.
    fetched: u64,
    /// Since when no source has been active (None while one is).
    lost_since: Option<Instant>,
    /// Its partial file is being checked off the reactor (`disk_jobs.rs`): nothing is asked of
    /// any source until the check says which chunks are already here.
    checking: Option<Check>,
}

/// A download waiting for the check of its partial file.
struct Check {
    /// A `resume` (the record names these many chunks as durable; fewer found intact is worth
    /// a warning), or a new `get` (the record is written once the check is done).
    resume: Option<u64>,
}

impl Download {
    /// A download from `sources` with nothing asked yet and no source active.
    fn new(
        id: DownloadId,
        file_name: &str,
        sources: &[String],
        plan: ChunkPlan,
        part: PartialFile,
        record: ResumeRecord,
        now: Instant,
    ) -> Download {
        let window = window_for(plan.manifest());
        Download {
            id,
            file_name: file_name.to_string(),
            sha256: plan.manifest().sha256,
            sources: sources
                .iter()
                .map(|s| Source::new(s, window, now))
                .collect(),
            plan,
            part,
            record,
            paused: false,
            unsynced: Vec::new(),
            last_checkpoint: now,
            started: now,
            fetched: 0,
            lost_since: Some(now),
            checking: None,
        }
    }

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
        self.paused
    }

    /// The verified chunk map, for `GetHave` from others (partial seeding).
    pub fn have_bitmap(&self) -> Vec<u8> {
        let mut bits = vec![0u8; self.plan.chunk_count().div_ceil(8) as usize];
        for i in 0..self.plan.chunk_count() {
            if self.plan.state(i) == Some(ChunkState::Done) {
                bits[(i / 8) as usize] |= 1 << (i % 8);
            }
        }
        bits
    }

    pub fn manifest(&self) -> &Manifest {
        self.plan.manifest()
    }

    /// Reads a verified chunk for another peer; `None` if it is not here yet.
    pub fn read_verified_chunk(&self, index: u64, buf: &mut Vec<u8>) -> Option<()> {
        if self.plan.state(index) != Some(ChunkState::Done) {
            return None;
        }
        self.part.read_chunk(&self.plan, index, buf).ok()
    }

    fn active_sources(&self) -> usize {
        self.sources
            .iter()
            .filter(|s| matches!(s.state, SourceState::Active { .. }))
            .count()
    }

    fn source_names(&self) -> String {
        self.sources
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `Alice 1048576, Bob 524288`: verified bytes per source.
    fn bytes_per_source(&self) -> String {
        self.sources
            .iter()
            .map(|s| format!("{} {}", s.name, s.bytes))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The `downloads` entry (the front end words its line).
    pub fn entry(&self) -> DownloadEntry {
        let state = if self.paused {
            "paused"
        } else if self.checking.is_some() {
            "checking"
        } else if self.active_sources() > 0 {
            "downloading"
        } else {
            "waiting"
        };
        DownloadEntry {
            file: self.file_name.clone(),
            done: self.bytes_done(),
            size: self.size(),
            percent: self.percent(),
            sources: self.sources.iter().map(|s| s.name.clone()).collect(),
            state: state.to_string(),
            running: Some(RunningDownload {
                active: self.active_sources(),
                bytes_per_source: self
                    .sources
                    .iter()
                    .map(|s| (s.name.clone(), s.bytes))
                    .collect(),
                dropped: (self.sources.iter())
                    .filter_map(|s| Some((s.name.clone(), s.dropped_why.clone()?)))
                    .collect(),
            }),
        }
    }

    /// How many sources have chunk `index` in flight.
    fn askers(&self, index: u64) -> usize {
        self.sources
            .iter()
            .filter(|s| s.in_flight.contains_key(&index))
            .count()
    }

    /// Forgets source `i`'s requests; chunks nobody else is fetching are missing again.
    fn release_requests(&mut self, i: usize) {
        let asked: Vec<u64> = std::mem::take(&mut self.sources[i].in_flight)
            .into_keys()
            .collect();
        for index in asked {
            if self.askers(index) == 0 {
                self.plan.give_back(index);
            }
        }
    }

    fn source_index(&self, name: &str) -> Option<usize> {
        self.sources.iter().position(|s| s.name == name)
    }

    fn source_on(&self, conn: ConnId) -> Option<usize> {
        self.sources.iter().position(|s| s.conn() == Some(conn))
    }
}

/// Opens (or creates) the partial file of `file_name`. Which chunks in it are intact is
/// checked off the reactor next ([`PeerNode::start_check`]).
fn open_partial(downloads: &std::path::Path, file_name: &str) -> Result<PartialFile, String> {
    PartialFile::open_existing(&downloads.join(file_name), file_name).map_err(|e| {
        format!(
            "cannot open the partial download of {}: {e}",
            printable(file_name)
        )
    })
}

/// Refuses a download the disk cannot hold, before a byte of it is written (without this, a
/// 300 MiB file into 82 MiB free wrote 82 MiB and then failed). Sparse partial files make
/// "what is missing" the space still needed. If the free space cannot be read, go ahead: a
/// full disk later still pauses the download cleanly.
fn check_room(
    downloads: &std::path::Path,
    file_name: &str,
    plan: &ChunkPlan,
) -> Result<(), Problem> {
    let needed = plan.manifest().size.saturating_sub(plan.bytes_done());
    match super::partial::free_space(downloads) {
        Ok(free) if free < needed => Err(Problem::NoRoom {
            dir: downloads.display().to_string(),
            file: file_name.to_string(),
            needed,
            free,
        }),
        _ => Ok(()),
    }
}

pub fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    }
}

fn window_for(manifest: &Manifest) -> usize {
    (WINDOW_BYTES / manifest.chunk_size as usize).max(2)
}

/// The rate a window must be able to sustain at the source's round trip: 10 Gbit/s.
const WINDOW_RATE: f64 = 1.25e9;
/// The smallest window: a few chunks, so the sender never idles while one is verified.
const MIN_WINDOW_BYTES: usize = 1024 * 1024;

/// The window for a source whose `GetHave` came back after `rtt`: twice what
/// [`WINDOW_RATE`] puts in flight over that round trip, between [`MIN_WINDOW_BYTES`] and
/// [`WINDOW_BYTES`]. A source 50 ms away gets the full 32 MiB from its first request; one on
/// the same machine or LAN gets 2 MiB, which fills it just as well and is all that is lost when
/// the receiver is killed (a fixed 32 MiB window lost ~5 MiB of kernel buffers per kill).
fn window_for_rtt(manifest: &Manifest, rtt: Duration) -> usize {
    let bytes = (2.0 * WINDOW_RATE * rtt.as_secs_f64()) as usize;
    let bytes = bytes.clamp(MIN_WINDOW_BYTES, WINDOW_BYTES);
    (bytes / manifest.chunk_size as usize).clamp(2, window_for(manifest))
}

impl PeerNode {
    /// Starts (or continues, if a partial download of the same bytes exists) the download of
    /// `file_name` from `sources`, with a manifest one of them sent.
    pub(super) fn begin_download(
        &mut self,
        sources: &[String],
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
                     the file offered now has sha256 {}. Refusing to mix them: \
                     `cancel {}` discards the partial download",
                    printable(file_name),
                    rec.sha256,
                    rec.sources.join(", "),
                    manifest.sha256,
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
        let part = open_partial(&downloads, file_name)?;
        let plan = ChunkPlan::new(manifest);
        let record = ResumeRecord::new(file_name, sources.to_vec(), plan.manifest());
        let id = self.next_download_id();
        let download = Download::new(id, file_name, sources, plan, part, record, now);
        tracing::info!(
            "downloading {} ({} bytes, sha256 {}) from {}",
            printable(file_name),
            download.size(),
            download.sha256,
            download.source_names()
        );
        self.downloads.insert(id, download);
        self.start_check(id, None)?;
        Ok(id)
    }

    /// Sets a new download going: reach every source, and finish at once if nothing is missing.
    pub(super) fn start_transfer(&mut self, id: DownloadId, now: Instant) {
        self.step_download(id, now);
        self.maybe_finish(id, now);
    }

    /// Continues the download a resume record describes (or a paused one): it finds its sources
    /// by name again.
    /// `Ok(None)`: nothing to run, the file was already saved.
    pub(super) fn resume_from_record(
        &mut self,
        file_name: &str,
        now: Instant,
    ) -> Result<Option<DownloadId>, String> {
        if let Some(id) = self.download_named(file_name) {
            let dl = self.downloads.get_mut(&id).expect("just found");
            if dl.paused {
                dl.paused = false;
                dl.lost_since = Some(now);
                for s in &mut dl.sources {
                    *s = Source::new(&s.name, s.window, now);
                }
                self.step_download(id, now);
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
        let part = open_partial(&downloads, file_name)?;
        let plan = ChunkPlan::new(manifest);
        let recorded = record.durable_count();
        let id = self.next_download_id();
        let sources = record.sources.clone();
        let download = Download::new(id, file_name, &sources, plan, part, record, now);
        self.downloads.insert(id, download);
        self.start_check(id, Some(recorded))?;
        Ok(Some(id))
    }

    /// Hands the partial file of download `id` to a disk job (with the destination too, for a
    /// `resume`): until it answers, the download asks nothing of anyone and does not count
    /// as waiting for a source.
    fn start_check(&mut self, id: DownloadId, resume: Option<u64>) -> Result<(), String> {
        let dl = self
            .downloads
            .get_mut(&id)
            .expect("the caller just inserted it");
        let file = match dl.part.try_clone_file() {
            Ok(file) => file,
            Err(e) => {
                let why = format!(
                    "cannot read the partial download of {}: {e}",
                    printable(&dl.file_name)
                );
                self.downloads.remove(&id);
                return Err(why);
            }
        };
        let dest = resume.map(|_| dl.part.dest().to_path_buf());
        let job = self
            .disk
            .check_partial(file, dl.plan.manifest().clone(), dest);
        dl.checking = Some(Check { resume });
        dl.lost_since = None;
        self.disk_waiting
            .insert(job, super::node::DiskWait::Download(id));
        Ok(())
    }

    /// The check of download `id`'s partial file is done: keep the intact chunks, make sure
    /// the disk can hold the rest, write the record (a new download), say how far it is, and
    /// set it going. A failure ends the download (partial file kept, except an empty one).
    pub(super) fn download_checked(
        &mut self,
        id: DownloadId,
        dest: Option<Result<Destination, String>>,
        intact: std::io::Result<Vec<u64>>,
        now: Instant,
    ) {
        let Some(dl) = self.downloads.get_mut(&id) else {
            return; // cancelled meanwhile
        };
        let Some(check) = dl.checking.take() else {
            return;
        };
        match dest {
            Some(Ok(Destination::AlreadyThere)) => return self.already_saved(id),
            Some(Err(conflict)) => return self.check_failed(id, conflict),
            Some(Ok(Destination::Free)) | None => {}
        }
        let shown = printable(&dl.file_name);
        let kept = match intact.and_then(|intact| dl.part.adopt(&mut dl.plan, &intact)) {
            Ok(kept) => kept,
            Err(e) => {
                let why = format!("cannot read the partial download of {shown}: {e}");
                return self.check_failed(id, why);
            }
        };
        if let Err(why) = check_room(&self.cfg.downloads_dir, &dl.file_name, &dl.plan) {
            return self.check_failed(id, why);
        }
        if check.resume.is_none() {
            for index in 0..dl.plan.chunk_count() {
                if dl.plan.state(index) == Some(ChunkState::Done) {
                    dl.record.set_durable(index);
                }
            }
            let downloads = &self.cfg.downloads_dir;
            if let Err(e) = dl
                .part
                .sync()
                .and_then(|()| resume::save(downloads, &dl.record))
            {
                let why = format!(
                    "cannot save the resume record in {}: {e}",
                    downloads.display()
                );
                return self.check_failed(id, why);
            }
        }
        if kept > 0 || check.resume.is_some() {
            self.ui.event(&Event::Resuming {
                file: dl.file_name.clone(),
                sources: dl.sources.iter().map(|s| s.name.clone()).collect(),
                chunks_here: kept,
                chunks: dl.plan.chunk_count(),
                percent: dl.percent(),
            });
        }
        if let Some(recorded) = check.resume
            && kept < recorded
        {
            let (file, failed) = (dl.file_name.clone(), recorded - kept);
            self.ui.event(&Event::Warning(Warning::TornChunks {
                file,
                failed,
                recorded,
            }));
        }
        let dl = self.downloads.get_mut(&id).expect("still here");
        dl.lost_since = Some(now);
        if !dl.paused {
            self.step_download(id, now);
            self.maybe_finish(id, now);
        }
    }

    /// The check of a download failed: it ends (reported as failed), its partial file kept
    /// unless nothing was ever written to it.
    fn check_failed(&mut self, id: DownloadId, why: impl Into<Problem>) {
        if let Some(dl) = self.downloads.remove(&id) {
            self.pending.retain(|_, p| !p.is_for(id));
            let record = resume::load_for(&self.cfg.downloads_dir, &dl.file_name);
            if dl.part.is_empty() && matches!(record, Err(LoadError::Missing)) {
                dl.part.abandon();
            }
        }
        self.download_done(id, Err((Failure::Failed, why.into())));
    }

    /// A record whose file already stands, whole and right, under its final name: a crash hit
    /// between linking the file and removing the partial file or the record. That is a finished
    /// download; its leftovers are removed and it is reported done, not fetched again. (A
    /// different file under that name fails the check instead: never overwritten.)
    fn already_saved(&mut self, id: DownloadId) {
        let Some(dl) = self.downloads.remove(&id) else {
            return;
        };
        self.pending.retain(|_, p| !p.is_for(id));
        let downloads = self.cfg.downloads_dir.clone();
        let dest = dl.part.dest().to_path_buf();
        let (size, sha256) = (dl.size(), dl.sha256);
        dl.part.abandon();
        resume::remove(&downloads, &dl.file_name);
        let path = dest.display().to_string();
        let event = Event::already_there(dl.file_name.clone(), path, size, sha256.to_string());
        self.download_done(id, Ok(event));
    }

    pub(super) fn download_named(&self, file_name: &str) -> Option<DownloadId> {
        self.downloads
            .values()
            .find(|d| d.file_name == file_name)
            .map(|d| d.id)
    }

    /// A download (running or paused) of this content, for serving it to others.
    pub(super) fn download_of(&self, sha256: &Sha256) -> Option<&Download> {
        self.downloads.values().find(|d| d.sha256 == *sha256)
    }

    /// Drops a download and its partial file and record.
    pub(super) fn cancel_download(&mut self, file_name: &str) -> Result<(), String> {
        let downloads = self.cfg.downloads_dir.clone();
        let part = super::partial::partial_path(&downloads.join(file_name), file_name);
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
            && let Some(dl) = self.downloads.remove(&id)
        {
            self.pending.retain(|_, p| !p.is_for(id));
            dl.part.abandon();
        } else {
            let _ = std::fs::remove_file(part);
        }
        resume::remove(&downloads, file_name);
        Ok(())
    }

    /// Tops every active source's requests up to its window: missing chunks it has first; at
    /// the very end, chunks another source is still fetching (the first answer wins).
    fn fill_window(&mut self, id: DownloadId, now: Instant) {
        let Some(dl) = self.downloads.get_mut(&id) else {
            return;
        };
        if dl.paused {
            return;
        }
        let mut sends: Vec<(ConnId, Vec<u64>)> = Vec::new();
        for i in 0..dl.sources.len() {
            let SourceState::Active { conn } = dl.sources[i].state else {
                continue;
            };
            let Some(have) = dl.sources[i].have.clone() else {
                continue;
            };
            let room =
                dl.sources[i].window - dl.sources[i].in_flight.len().min(dl.sources[i].window);
            if room < REFILL_BATCH.min(dl.sources[i].window / 2).max(1) {
                continue;
            }
            let mut asked = Vec::new();
            while dl.sources[i].in_flight.len() < dl.sources[i].window {
                let pick = match dl.plan.next_request_where(|c| have.has(c)) {
                    Some(index) => Some(index),
                    // End game: nothing missing is left for this source; help with a chunk
                    // only one other source is fetching.
                    None if !dl.plan.has_missing() => dl.plan.requested().find(|&c| {
                        have.has(c)
                            && !dl.sources[i].in_flight.contains_key(&c)
                            && dl
                                .sources
                                .iter()
                                .filter(|s| s.in_flight.contains_key(&c))
                                .count()
                                == 1
                    }),
                    None => None,
                };
                let Some(index) = pick else { break };
                dl.sources[i].in_flight.insert(index, now);
                asked.push(index);
            }
            if !asked.is_empty() {
                sends.push((conn, asked));
            }
        }
        let sha256 = dl.sha256;
        for (conn, asked) in sends {
            let mut batch = Vec::new();
            for index in asked {
                let req = self.next_request_id();
                let purpose = Purpose::Chunk { dl: id, index };
                self.pending.insert(req, Pending { conn, purpose });
                batch.extend_from_slice(&encode_message(&Message::GetChunk { req, sha256, index }));
            }
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
        let Some(si) = dl.source_on(conn) else { return };
        if dl.sources[si].in_flight.remove(&asked).is_none() {
            // Asked once, since given up on (stalled or end-game duplicate): drop it.
            return;
        }
        let source = dl.sources[si].name.clone();
        let data = match msg {
            Message::Chunk { index, data, .. } if index == asked => data,
            Message::Chunk { index, .. } => {
                let why = format!("answered a request for chunk {asked} with chunk {index}");
                return self.drop_source(id, si, &why, true, now);
            }
            Message::Error { message, code, .. } => {
                if dl.askers(asked) == 0 {
                    dl.plan.give_back(asked);
                }
                if code == crate::wire::ErrorCode::Unavailable
                    && let Some(Have::Some(bits)) = &mut dl.sources[si].have
                    && let Some(b) = bits.get_mut((asked / 8) as usize)
                {
                    // A partial seeder without that chunk yet: ask it again later.
                    *b &= !(1 << (asked % 8));
                } else {
                    let why = format!("can no longer serve it ({})", printable(&message));
                    return self.drop_source(id, si, &why, false, now);
                }
                self.fill_window(id, now);
                return;
            }
            other => {
                let why = format!("answered a chunk request with {}", other.kind());
                return self.drop_source(id, si, &why, true, now);
            }
        };
        dl.fetched += data.len() as u64;
        let verdict = if dl.plan.state(asked) == Some(ChunkState::Done) {
            // End game: another source was faster with this chunk. Still check it, so a source
            // that sends garbage is caught even when it is always second.
            if dl.plan.manifest().chunk_hash(asked) == Some(&Sha256::of(&data)) {
                crate::wire::recycle_chunk_buffer(data);
                self.fill_window(id, now);
                return;
            }
            Err(ChunkFault::HashMismatch)
        } else {
            dl.plan.verify(asked, &data)
        };
        match verdict {
            Ok(()) => {
                let len = data.len() as u64;
                if let Err(e) = dl.part.write_chunk(&dl.plan, asked, data) {
                    dl.plan.give_back(asked);
                    let why = Problem::CannotWrite {
                        file: dl.file_name.clone(),
                        part: dl.part.part_path().display().to_string(),
                        error: e.to_string(),
                        percent: dl.percent(),
                    };
                    return self.pause_download(id, why, now);
                }
                dl.plan.mark_written(asked);
                let source = &mut dl.sources[si];
                source.bytes += len;
                source.delivering = true;
                source.backoff = FIRST_RETRY;
                dl.lost_since = None;
                dl.unsynced.push(asked);
                // Duplicates of this chunk still out elsewhere are dropped when they arrive.
                for s in &mut dl.sources {
                    s.in_flight.remove(&asked);
                }
            }
            Err(fault) => {
                // `verify` made the chunk missing again unless another source still has it.
                if dl.askers(asked) > 0 && dl.plan.state(asked) == Some(ChunkState::Missing) {
                    dl.plan.next_request_where(|c| c == asked);
                }
                dl.sources[si].bad_chunks += 1;
                let bad = dl.sources[si].bad_chunks;
                let wrong_length = matches!(fault, ChunkFault::WrongLength { .. });
                if wrong_length || bad >= MAX_BAD_CHUNKS {
                    let why = format!("sent {fault} (chunk {asked}; {bad} bad so far): banned");
                    return self.drop_source(id, si, &why, wrong_length, now);
                }
                let (peer, fault) = (source, fault.to_string());
                self.ui.event(&Event::Warning(Warning::BadChunk {
                    peer,
                    fault,
                    chunk: asked,
                }));
            }
        }
        self.show_progress();
        if self.downloads[&id].unsynced.len() >= CHECKPOINT_CHUNKS {
            self.checkpoint(id, now);
        }
        self.fill_window(id, now);
        self.maybe_finish(id, now);
    }

    /// Makes written chunks durable and records them. Returns false if that failed: the
    /// download is then suspended (see [`Self::suspend_download`]), since retrying an fsync can
    /// "succeed" with the data gone and nothing written since the last good checkpoint may be
    /// trusted.
    fn checkpoint(&mut self, id: DownloadId, now: Instant) -> bool {
        let Some(dl) = self.downloads.get_mut(&id) else {
            return false;
        };
        dl.last_checkpoint = now;
        if dl.unsynced.is_empty() {
            return true;
        }
        let synced = dl.part.sync().and_then(|()| {
            for index in dl.unsynced.drain(..) {
                dl.record.set_durable(index);
            }
            resume::save(&self.cfg.downloads_dir, &dl.record)
        });
        if let Err(e) = synced {
            let name = printable(&dl.file_name);
            let why = format!(
                "cannot make the download of {name} durable ({}): {e}; paused — `resume {name}` \
                 checks what is on disk and continues once the problem is fixed",
                dl.part.part_path().display()
            );
            self.suspend_download(id, why);
            return false;
        }
        true
    }

    /// Stops a download after an I/O failure and forgets it in memory: the partial file and
    /// the resume record (which names only chunks known durable) stay on disk, nothing goes
    /// under the final name, and `resume` re-verifies every chunk from the disk before it goes
    /// on. Reported as unfinished (exit 5), with the cause.
    fn suspend_download(&mut self, id: DownloadId, why: String) {
        if self.downloads.remove(&id).is_none() {
            return;
        }
        self.pending.retain(|_, p| !p.is_for(id));
        self.download_done(id, Err((Failure::Unfinished, why.into())));
    }

    fn maybe_finish(&mut self, id: DownloadId, now: Instant) {
        // A paused download is never published: paused means nothing under the final name.
        if !self
            .downloads
            .get(&id)
            .is_some_and(|d| d.plan.is_complete() && !d.paused && d.checking.is_none())
        {
            return;
        }
        let Some(mut dl) = self.downloads.remove(&id) else {
            return;
        };
        self.pending.retain(|_, p| !p.is_for(id));
        let secs = now.duration_since(dl.started).as_secs_f64();
        let size = dl.size();
        let file_name = dl.file_name.clone();
        let per_source = dl.bytes_per_source();
        let by_source: BTreeMap<String, u64> = dl
            .sources
            .iter()
            .map(|s| (s.name.clone(), s.bytes))
            .collect();
        let (fetched, sha256) = (dl.fetched, dl.sha256);
        let manifest = dl.plan.manifest().clone();
        tracing::info!(
            "{}: all {} chunks verified in {secs:.2}s ({per_source}); checking the whole file",
            printable(&file_name),
            dl.plan.chunk_count()
        );
        let result = match dl.part.finish(&sha256, size) {
            Ok(path) => {
                resume::remove(&self.cfg.downloads_dir, &file_name);
                if let Err(e) = self.index.add_downloaded(&file_name, &path, manifest) {
                    let (path, error) = (path.display().to_string(), e.to_string());
                    self.ui
                        .event(&Event::Warning(Warning::CannotShare { path, error }));
                }
                let rate = if secs > 0.0 {
                    fetched as f64 / secs
                } else {
                    0.0
                };
                Ok(Event::DownloadDone {
                    file: file_name.clone(),
                    path: path.display().to_string(),
                    size,
                    sha256: sha256.to_string(),
                    seconds: (secs * 1000.0).round() / 1000.0,
                    bytes_per_sec: rate.round(),
                    bytes_fetched: fetched,
                    bytes_per_source: by_source,
                    already_there: false,
                })
            }
            Err(FinishError::Mismatch(e)) => {
                // The chunks matched the manifest but the whole file did not: the manifest was
                // wrong. Nothing of it can be trusted.
                resume::remove(&self.cfg.downloads_dir, &file_name);
                Err((Failure::Verification, e.into()))
            }
            Err(FinishError::Kept(e)) => {
                // Every chunk is verified; only saving failed. Keep it all for `resume`.
                let name = printable(&file_name);
                let why = format!(
                    "{name} is complete and verified but could not be saved: {e}; the partial \
                     download is kept — `resume {name}` saves it once the problem is fixed"
                );
                Err((Failure::Unfinished, why.into()))
            }
        };
        self.download_done(id, result);
    }

    /// Stops a download (partial file and record kept) and reports why: it is unfinished, and
    /// `resume` continues it.
    fn pause_download(&mut self, id: DownloadId, why: Problem, now: Instant) {
        self.pause_download_as(id, Failure::Unfinished, why, now);
    }

    /// Ctrl-C in the REPL or a batch: pauses download `id` like any pause (`resume`
    /// continues it, after a restart too).
    pub(super) fn pause_interrupted(&mut self, id: DownloadId, now: Instant) {
        let Some(dl) = self.downloads.get(&id) else {
            return;
        };
        let why = Problem::Paused {
            file: dl.file_name.clone(),
            percent: dl.percent(),
            done: dl.bytes_done(),
            size: dl.size(),
        };
        self.pause_download(id, why, now);
    }

    /// [`Self::pause_download`], reporting a failure of `kind`.
    fn pause_download_as(&mut self, id: DownloadId, kind: Failure, why: Problem, now: Instant) {
        if !self.checkpoint(id, now) {
            return;
        }
        let Some(dl) = self.downloads.get_mut(&id) else {
            return;
        };
        dl.paused = true;
        for i in 0..dl.sources.len() {
            dl.release_requests(i);
        }
        self.pending.retain(|_, p| !p.is_for(id));
        self.download_done(id, Err((kind, why)));
    }

    /// Source `si` is banned or cannot serve the file: its chunks go to the others. With
    /// `close`, it broke the protocol and its connection is closed too.
    fn drop_source(&mut self, id: DownloadId, si: usize, why: &str, close: bool, now: Instant) {
        let Some(dl) = self.downloads.get_mut(&id) else {
            return;
        };
        let name = dl.sources[si].name.clone();
        let to_close = dl.sources[si].conn().filter(|_| close);
        dl.release_requests(si);
        dl.sources[si].state = SourceState::Dropped;
        dl.sources[si].dropped_why = Some(why.to_string());
        if let Some(conn) = to_close {
            self.close(conn);
        }
        let Some(dl) = self.downloads.get_mut(&id) else {
            return;
        };
        let file = printable(&dl.file_name);
        let usable = dl.sources.iter().any(|s| s.state != SourceState::Dropped);
        if usable {
            let event = Event::SourceDropped {
                file: dl.file_name.clone(),
                peer: name,
                reason: why.to_string(),
            };
            self.ui.event(&event);
            self.update_lost_since(id, now);
            self.fill_window(id, now);
        } else {
            // Sources that sent corrupt chunks and nobody left to repair them: the download
            // failed verification (exit 3); otherwise it is only unfinished (exit 5).
            let kind = if dl.sources.iter().any(|s| s.bad_chunks > 0) {
                Failure::Verification
            } else {
                Failure::Unfinished
            };
            let why = format!("{name} {why}; no source left for {file}");
            self.pause_download_as(id, kind, why.into(), now);
        }
    }

    /// Keeps `lost_since` true to "no source delivering since when".
    fn update_lost_since(&mut self, id: DownloadId, now: Instant) {
        if let Some(dl) = self.downloads.get_mut(&id) {
            if dl.sources.iter().any(Source::counts_as_back) {
                dl.lost_since = None;
            } else {
                dl.lost_since.get_or_insert(now);
            }
        }
    }

    /// A source broke the frame layer (an oversize or undecodable frame) on `conn`: that counts
    /// like a bad chunk towards its ban, for every download it serves. The connection is
    /// closing anyway; what is left of the source then waits and reconnects with backoff.
    pub(super) fn downloads_protocol_fault(&mut self, conn: ConnId, why: &str, now: Instant) {
        for (id, si) in self.sources_on(conn) {
            let Some(dl) = self.downloads.get_mut(&id) else {
                continue;
            };
            dl.sources[si].bad_chunks += 1;
            let bad = dl.sources[si].bad_chunks;
            if bad >= MAX_BAD_CHUNKS {
                let why = format!("sent a broken frame ({why}; {bad} bad so far): banned");
                // Not closed here: the connection is already on its way out.
                self.drop_source(id, si, &why, false, now);
            }
        }
    }

    /// A connection closed: downloads using it keep their progress and look for the source.
    pub(super) fn downloads_connection_lost(&mut self, conn: ConnId, why: &str, now: Instant) {
        for (id, si) in self.sources_on(conn) {
            self.source_lost(id, si, why, now);
        }
    }

    /// Every (download, source) that uses connection `conn`.
    fn sources_on(&self, conn: ConnId) -> Vec<(DownloadId, usize)> {
        self.downloads
            .values()
            .filter_map(|d| d.source_on(conn).map(|si| (d.id, si)))
            .collect()
    }

    fn source_lost(&mut self, id: DownloadId, si: usize, why: &str, now: Instant) {
        let retry_for = self.cfg.retry_for;
        let Some(dl) = self.downloads.get_mut(&id) else {
            return;
        };
        dl.release_requests(si);
        dl.sources[si].wait(now);
        dl.sources[si].have = None;
        let name = dl.sources[si].name.clone();
        let others = dl.active_sources();
        let event = Event::SourceLost {
            file: dl.file_name.clone(),
            peer: name,
            reason: why.to_string(),
            percent: dl.percent(),
            others,
            retry_secs: retry_for.as_secs(),
        };
        self.ui.event(&event);
        self.update_lost_since(id, now);
        self.checkpoint(id, now);
        self.fill_window(id, now);
        if others == 0 {
            self.op_download_waiting(id);
        }
    }

    /// Moves the sources of a download that are looking for their peer as far as they go now.
    fn step_download(&mut self, id: DownloadId, now: Instant) {
        let Some(dl) = self.downloads.get(&id) else {
            return;
        };
        if dl.paused || dl.checking.is_some() {
            return;
        }
        let reaching: Vec<(usize, String, bool)> = dl
            .sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.state {
                SourceState::Reaching { refreshed } => Some((i, s.name.clone(), refreshed)),
                _ => None,
            })
            .collect();
        for (si, name, refreshed) in reaching {
            let mut refreshed_now = refreshed;
            let reached = self.reach(&name, &mut refreshed_now);
            let Some(dl) = self.downloads.get_mut(&id) else {
                return;
            };
            let source = &mut dl.sources[si];
            match reached {
                Ok(None) => {
                    source.state = SourceState::Reaching {
                        refreshed: refreshed_now,
                    }
                }
                Ok(Some(conn)) => {
                    source.state = SourceState::Confirming { conn };
                    source.asked_at = now;
                    source.delivering = false;
                    let sha256 = dl.sha256;
                    let purpose = Purpose::DownloadManifest(id);
                    self.request(conn, purpose, |req| Message::GetManifest { req, sha256 });
                }
                Err(_) => source.wait(now),
            }
        }
    }

    /// Something changed that may let a download reach its sources (a peer list arrived, a
    /// connection opened or failed).
    pub(super) fn downloads_peer_event(&mut self, now: Instant) {
        let ids: Vec<DownloadId> = self.downloads.keys().copied().collect();
        for id in ids {
            self.step_download(id, now);
        }
    }

    /// A connection to `name` could not be made: sources reaching it wait and retry.
    pub(super) fn downloads_peer_unreachable(&mut self, name: &str, now: Instant) {
        for dl in self.downloads.values_mut() {
            if let Some(si) = dl.source_index(name)
                && matches!(dl.sources[si].state, SourceState::Reaching { .. })
            {
                dl.sources[si].wait(now);
            }
        }
    }

    /// The manifest a source sent: the same bytes, or it is dropped (never mixed).
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
        let Some(si) = dl.source_on(conn) else { return };
        if dl.sources[si].state != (SourceState::Confirming { conn }) {
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
                "no longer shares the same content for {} (sha256 {}); not mixing it with what \
                 is here — the partial download is kept",
                printable(&dl.file_name),
                dl.sha256
            );
            return self.drop_source(id, si, &why, false, now);
        }
        dl.sources[si].asked_at = now;
        let sha256 = dl.sha256;
        let purpose = Purpose::DownloadHave(id);
        self.request(conn, purpose, |req| Message::GetHave { req, sha256 });
    }

    /// Which chunks a source can serve: it becomes (or stays) active.
    pub(super) fn download_have_answer(
        &mut self,
        conn: ConnId,
        id: DownloadId,
        msg: Message,
        now: Instant,
    ) {
        let Some(dl) = self.downloads.get_mut(&id) else {
            return;
        };
        let Some(si) = dl.source_on(conn) else { return };
        let expected_len = dl.plan.chunk_count().div_ceil(8) as usize;
        let have = match msg {
            Message::Have { complete: true, .. } => Have::All,
            Message::Have { bitmap, .. } if bitmap.len() == expected_len => Have::Some(bitmap),
            Message::Have { .. } => {
                return self.drop_source(id, si, "sent a chunk map of the wrong size", true, now);
            }
            Message::Error { message, .. } => {
                let why = format!("can no longer serve it ({})", printable(&message));
                return self.drop_source(id, si, &why, false, now);
            }
            other => {
                let why = format!("answered GetHave with {}", other.kind());
                return self.drop_source(id, si, &why, true, now);
            }
        };
        let source = &mut dl.sources[si];
        let newly_active = source.state == (SourceState::Confirming { conn });
        source.next_have_refresh = now + HAVE_REFRESH;
        source.have = Some(have);
        if newly_active {
            source.state = SourceState::Active { conn };
            // The GetHave just answered measured this source's round trip.
            source.window = window_for_rtt(dl.plan.manifest(), now.duration_since(source.asked_at));
            let peer = source.name.clone();
            // A source at the start is no news; one joining a download under way is.
            if dl.fetched > 0 || dl.plan.bytes_done() > 0 {
                let event = Event::SourceJoined {
                    file: dl.file_name.clone(),
                    peer,
                    percent: dl.percent(),
                    others: dl.active_sources().saturating_sub(1),
                };
                self.ui.event(&event);
            }
        }
        self.update_lost_since(id, now);
        self.fill_window(id, now);
        self.maybe_finish(id, now);
    }

    pub(super) fn downloads_tick(&mut self, now: Instant) {
        let retry_for = self.cfg.retry_for;
        let ids: Vec<DownloadId> = self.downloads.keys().copied().collect();
        for id in ids {
            let Some(dl) = self.downloads.get(&id) else {
                continue;
            };
            if dl.paused {
                continue;
            }
            if dl.lost_since.is_some_and(|t| now >= t + retry_for) {
                let why = Problem::SourcesGone {
                    file: dl.file_name.clone(),
                    sources: dl.sources.iter().map(|s| s.name.clone()).collect(),
                    retry_secs: retry_for.as_secs(),
                    percent: dl.percent(),
                };
                self.pause_download(id, why, now);
                continue;
            }
            if now >= dl.last_checkpoint + CHECKPOINT_EVERY {
                self.checkpoint(id, now);
            }
            let Some(dl) = self.downloads.get_mut(&id) else {
                continue;
            };
            let mut stalled = Vec::new();
            let mut refresh = Vec::new();
            let mut retry = false;
            for (si, s) in dl.sources.iter_mut().enumerate() {
                match s.state {
                    SourceState::Waiting { retry_at } if now >= retry_at => {
                        // Ask the tracker first: the source may be back at another address.
                        s.state = SourceState::Reaching { refreshed: true };
                        retry = true;
                    }
                    SourceState::Confirming { conn } if now >= s.asked_at + REQUEST_TIMEOUT => {
                        stalled.push((si, conn));
                    }
                    SourceState::Active { conn } => {
                        if s.in_flight.values().any(|&t| now >= t + REQUEST_TIMEOUT) {
                            stalled.push((si, conn));
                        } else if matches!(s.have, Some(Have::Some(_)))
                            && now >= s.next_have_refresh
                        {
                            s.next_have_refresh = now + HAVE_REFRESH;
                            refresh.push(conn);
                        }
                    }
                    _ => {}
                }
            }
            let sha256 = dl.sha256;
            for conn in refresh {
                let purpose = Purpose::DownloadHave(id);
                self.request(conn, purpose, |req| Message::GetHave { req, sha256 });
            }
            for (si, conn) in stalled {
                self.close(conn);
                let why = format!("no answer for {}s", REQUEST_TIMEOUT.as_secs());
                self.source_lost(id, si, &why, now);
            }
            if retry && !self.request_peer_list() {
                self.step_download(id, now);
            }
        }
    }

    pub(super) fn downloads_deadline(&self) -> Option<Instant> {
        let retry_for = self.cfg.retry_for;
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for d in self.downloads.values().filter(|d| !d.paused) {
            if let Some(t) = d.lost_since {
                at(t + retry_for);
            }
            if !d.unsynced.is_empty() {
                at(d.last_checkpoint + CHECKPOINT_EVERY);
            }
            for s in &d.sources {
                match s.state {
                    SourceState::Waiting { retry_at } => at(retry_at),
                    SourceState::Confirming { .. } => at(s.asked_at + REQUEST_TIMEOUT),
                    SourceState::Active { .. } => {
                        if let Some(oldest) = s.in_flight.values().min() {
                            at(*oldest + REQUEST_TIMEOUT);
                        }
                        if matches!(s.have, Some(Have::Some(_))) {
                            at(s.next_have_refresh);
                        }
                    }
                    _ => {}
                }
            }
        }
        next
    }

    /// On exit: make what was fetched durable so a restart continues from here.
    pub(super) fn checkpoint_all(&mut self, now: Instant) {
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
        let sources = ids
            .iter()
            .filter_map(|id| self.downloads.get(id))
            .map(|d| d.active_sources())
            .sum();
        self.ui.progress(Progress::Sources(sources));
        self.ui.progress(Progress::Done(done));
    }

    /// Says which downloads are unfinished, if any: at start-up (left by an earlier run), and
    /// on `quit` (running or paused ones are checkpointed on the way out and stay resumable).
    pub(super) fn announce_unfinished(&mut self, quitting: bool) {
        let (downloads, _) = self.describe_downloads();
        if !downloads.is_empty() {
            self.ui.event(&Event::Unfinished {
                downloads,
                quitting,
            });
        }
    }

    /// `--resume-on-start`: every unfinished download left by an earlier run goes on in the
    /// background, as aria2c and rqbit do; the foreground stays free for commands.
    pub(super) fn resume_in_background(&mut self, now: Instant) {
        let (records, _) = resume::list(&self.cfg.downloads_dir);
        let mut resumed = Vec::new();
        for rec in records {
            match self.resume_from_record(&rec.file_name, now) {
                Ok(Some(id)) => resumed.extend(self.downloads.get(&id).map(Download::entry)),
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
    pub(super) fn describe_downloads(&self) -> (Vec<DownloadEntry>, Vec<Warning>) {
        let mut lines: Vec<DownloadEntry> = self.downloads.values().map(Download::entry).collect();
        let (records, bad) = resume::list(&self.cfg.downloads_dir);
        for rec in records {
            if self.download_named(&rec.file_name).is_some() {
                continue;
            }
            let done_bytes = (rec.durable_count() * u64::from(rec.chunk_size)).min(rec.size);
            lines.push(DownloadEntry {
                file: rec.file_name.clone(),
                done: done_bytes,
                size: rec.size,
                percent: percent(done_bytes, rec.size),
                sources: rec.sources.clone(),
                state: "not running".to_string(),
                running: None,
            });
        }
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

impl Pending {
    /// Whether this request belongs to download `id`.
    pub fn is_for(&self, id: DownloadId) -> bool {
        matches!(
            self.purpose,
            Purpose::Chunk { dl, .. } | Purpose::DownloadManifest(dl) | Purpose::DownloadHave(dl)
                if dl == id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::manifest::manifest_of_reader;

    fn manifest(size: usize) -> Manifest {
        let data = vec![7u8; size];
        manifest_of_reader(data.as_slice(), size as u64).unwrap()
    }

    /// The request window follows the source's round trip: 4 chunks (1 MiB) on loopback, the
    /// full 32 MiB once 10 Gbit/s needs it (about 13 ms and more).
    #[test]
    fn the_window_grows_with_the_round_trip() {
        let m = manifest(64 << 20); // 256 KiB chunks
        assert_eq!(m.chunk_size, 256 * 1024);
        let at = |ms: f64| window_for_rtt(&m, Duration::from_secs_f64(ms / 1000.0));
        assert_eq!(at(0.05), 4, "loopback: the 1 MiB floor");
        assert_eq!(at(1.0), 9, "1 ms: 2.5 MB");
        assert_eq!(at(50.0), 128, "50 ms: the 32 MiB cap");
        assert!(at(5.0) > at(1.0) && at(5.0) < at(50.0));
        assert_eq!(window_for_rtt(&manifest(10), Duration::ZERO), 4);
    }
}
