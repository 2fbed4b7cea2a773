//! The download state machine: one file fetched from one or many sources at once.
//!
//! Each source keeps a bounded window of chunk requests and gets a new one each time it
//! answers, so faster sources get more chunks. Every chunk is verified against the manifest
//! before it is written; a source that sends bad chunks is banned for this download and its
//! chunks are fetched elsewhere. Written chunks are checkpointed into the resume record once
//! durable; the file is published (linked under its name) only when every chunk is verified
//! and written, and the store then checks its whole SHA-256 and its length.
//!
//! A download outlives its connections: a source that goes away is looked up again by name
//! (its address may have changed) and reconnected with backoff; a download with no source
//! left waits up to `retry_for`, then pauses, partial file and record kept, until resumed.
//!
//! # Driving it (the poll order)
//!
//! 1. Feed one input: a `handle_*` call, always with the time (`now`). The machine never
//!    reads a clock.
//! 2. Drain [`Download::poll_output`] until it returns `None`, in order. A disk output
//!    ([`Output::Write`], [`Output::Checkpoint`], [`Output::Publish`]) is carried out on the
//!    download's [`super::Store`] and answered ([`Download::handle_written`],
//!    [`Download::handle_checkpointed`], [`Download::handle_published`]) *before* the next
//!    poll: the answer may withdraw what is queued behind it (after a failed checkpoint
//!    nothing more is sent for the download). [`super::run_disk_output`] does exactly that.
//!    A chunk's check ([`Output::Check`]) may instead be answered later, from another
//!    thread ([`Download::handle_chunk_checked`]): the chunk is `Checking` meanwhile, asked
//!    of nobody, and the download cannot finish before the answer.
//! 3. [`Output::Reach`]: call [`Download::reaching`] and answer each source with
//!    [`Download::handle_reached`] (then drain again).
//! 4. After [`Output::End`] the download is over (drop it), except [`End::Paused`]: it stays,
//!    serves what it has, and [`Download::handle_resume`] continues it.
//! 5. Sleep until [`Download::poll_timeout`]; then [`Download::handle_timeout`].
//!
//! Why writes and checkpoints are outputs and not calls into a store the machine holds: the
//! rules that matter here are about order (verified before written, written before counted,
//! durable before recorded, nothing published that is not all of it), and as outputs every
//! one of them is visible to a test as a sequence, with failures injected at each step.

use super::chunk::{ChunkIndex, Have};
use super::output::{Ask, DropReason, End, Finished, Output, Pause, Report, Status};
use super::rate_meter::RateMeter;
use super::scheduler::{Scheduler, SourceId};
use super::{DownloadId, percent};
use crate::peer::content_id::ContentId;
use crate::peer::manifest::Manifest;
use crate::reactor::ConnId;
use crate::wire::Sha256;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Corrupt chunks tolerated from one source before it is banned from the download.
pub(super) const MAX_BAD_CHUNKS: u32 = 3;
/// A request unanswered for this long marks its source as stalled: its chunks go elsewhere.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Checkpoint (fsync + record) after this many chunks or this much time, whichever first:
/// durability costs about one fsync a second (or per 64 MiB), not one per chunk.
pub(super) const CHECKPOINT_CHUNKS: usize = 256;
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How often a source that has only part of the file is asked again what it has.
pub(super) const HAVE_REFRESH: Duration = Duration::from_secs(1);
pub(super) const FIRST_RETRY: Duration = Duration::from_millis(300);
const MAX_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceState {
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

/// What the `get` that started a download already did on one connection of a source: its
/// manifest passed there after `rtt`, and `first_flight` were asked right behind it at
/// `asked_at` (PROTOCOL.md §8.3), answers that are on their way.
#[derive(Debug)]
pub(super) struct Confirmed {
    pub(super) conn: ConnId,
    pub(super) rtt: Duration,
    pub(super) first_flight: Vec<ChunkIndex>,
    pub(super) asked_at: Instant,
}

pub(super) struct Source {
    pub(super) name: String,
    pub(super) state: SourceState,
    pub(super) bad_chunks: u32,
    /// Verified bytes received from this source.
    pub(super) bytes: u64,
    /// How fast they arrive lately (is a per-peer limit what holds it back?).
    pub(super) meter: RateMeter,
    /// A connection on which this source's manifest already passed and that serves the whole
    /// file ([`Download::handle_confirmed`]): reached over it, the source is active at once.
    pub(super) confirmed: Option<Confirmed>,
    pub(super) backoff: Duration,
    pub(super) next_have_refresh: Instant,
    /// Why it was dropped, for listings.
    pub(super) dropped: Option<DropReason>,
    /// When the last manifest or chunk map was asked of it (an unanswered one is a stall).
    pub(super) asked_at: Instant,
    /// A verified chunk arrived over its current connection. Only then does it count as
    /// back (for `retry_for`) and its reconnect backoff start over: a source that passes
    /// GetManifest and GetHave and then breaks every time must not be retried every 300 ms
    /// for ever.
    pub(super) delivering: bool,
}

impl Source {
    fn new(name: &str, now: Instant) -> Source {
        Source {
            name: name.to_string(),
            state: SourceState::Reaching { refreshed: false },
            bad_chunks: 0,
            bytes: 0,
            meter: RateMeter::new(now),
            confirmed: None,
            backoff: FIRST_RETRY,
            next_have_refresh: now,
            dropped: None,
            asked_at: now,
            delivering: false,
        }
    }

    pub(super) fn conn(&self) -> Option<ConnId> {
        match self.state {
            SourceState::Active { conn } | SourceState::Confirming { conn } => Some(conn),
            _ => None,
        }
    }

    pub(super) fn wait(&mut self, now: Instant) {
        self.state = SourceState::Waiting {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(MAX_RETRY);
    }
}

/// A download waiting for the check of its partial file.
struct Check {
    /// A resume (the record names these many chunks as durable; fewer found intact is worth
    /// a warning), or a new download.
    recorded: Option<u64>,
}

pub struct Download {
    pub(super) id: DownloadId,
    pub(super) file_name: String,
    /// Checked against `content_id` before the download began (the caller's job, through
    /// `content_id::check_manifest`); `manifest.sha256` is the SHA-256 the file was listed
    /// with, proved only if `check_sha256`.
    pub(super) manifest: Manifest,
    /// The id this download is of: every source's manifest must make it.
    pub(super) content_id: ContentId,
    /// Hash the whole file at the end and require `manifest.sha256`: the user asked for the
    /// file by its SHA-256. Otherwise the content id, proved chunk by chunk, is the proof.
    pub(super) check_sha256: bool,
    pub(super) sched: Scheduler,
    pub(super) sources: Vec<Source>,
    pub(super) retry_for: Duration,
    /// Not running until `handle_resume`.
    pub(super) paused: bool,
    /// Its partial file is being checked: nothing is asked of any source until the check
    /// says which chunks are already here.
    checking: Option<Check>,
    /// Verified chunks handed to the store and not yet reported written: from which source,
    /// how many bytes.
    pub(super) writing: BTreeMap<ChunkIndex, (SourceId, u64)>,
    /// Chunks written since the last checkpoint (not yet known durable).
    pub(super) unsynced: Vec<ChunkIndex>,
    /// A checkpoint is out (not answered yet).
    checkpoint_out: bool,
    /// A pause waiting for its checkpoint.
    pending_pause: Option<Pause>,
    /// Published at this time; the answer is awaited.
    publishing: Option<Instant>,
    /// Over (an `End` other than `Paused` went out): every input is ignored.
    pub(super) ended: bool,
    last_checkpoint: Instant,
    started: Instant,
    /// Bytes received from the network since this run of the download started.
    pub(super) fetched: u64,
    /// Since when no source has been active (None while one is).
    pub(super) lost_since: Option<Instant>,
    /// How fast verified bytes arrive lately, from all sources.
    pub(super) meter: RateMeter,
    pub(super) out: VecDeque<Output>,
}

impl Download {
    /// A download of `manifest` as `file_name` from `sources`, waiting for the check of its
    /// partial file ([`Self::handle_checked`]); `recorded`: resumed from a record that names
    /// that many chunks durable. With no source back for `retry_for`, it pauses.
    pub fn new(
        id: DownloadId,
        file_name: &str,
        sources: &[String],
        manifest: Manifest,
        recorded: Option<u64>,
        retry_for: Duration,
        now: Instant,
    ) -> Download {
        Download {
            id,
            file_name: file_name.to_string(),
            sched: Scheduler::new(manifest.size, manifest.chunk_size, sources.len()),
            content_id: ContentId::of(&manifest),
            check_sha256: false,
            manifest,
            sources: sources.iter().map(|s| Source::new(s, now)).collect(),
            retry_for,
            paused: false,
            checking: Some(Check { recorded }),
            writing: BTreeMap::new(),
            unsynced: Vec::new(),
            checkpoint_out: false,
            pending_pause: None,
            publishing: None,
            ended: false,
            last_checkpoint: now,
            started: now,
            fetched: 0,
            lost_since: None,
            meter: RateMeter::new(now),
            out: VecDeque::new(),
        }
    }

    /// Also check the whole file's SHA-256 at the end (see [`Self::check_sha256`]).
    pub fn checking_sha256(mut self, check: bool) -> Download {
        self.check_sha256 = check;
        self
    }

    // ---- queries ---------------------------------------------------------------------------

    pub fn content_id(&self) -> ContentId {
        self.content_id
    }

    /// Verified bytes a second lately: from all sources, and the fastest single source.
    pub fn recent_rates(&self, now: Instant) -> (f64, f64) {
        let fastest = self
            .sources
            .iter()
            .map(|s| s.meter.rate(now))
            .fold(0.0, f64::max);
        (self.meter.rate(now), fastest)
    }

    /// Whether the whole file's SHA-256 is checked at the end.
    pub fn checks_sha256(&self) -> bool {
        self.check_sha256
    }

    pub fn id(&self) -> DownloadId {
        self.id
    }

    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn sha256(&self) -> Sha256 {
        self.manifest.sha256
    }

    pub fn size(&self) -> u64 {
        self.manifest.size
    }

    pub fn chunk_count(&self) -> u64 {
        self.sched.chunk_count()
    }

    pub fn bytes_done(&self) -> u64 {
        self.sched.bytes_done()
    }

    pub fn percent(&self) -> f64 {
        percent(self.bytes_done(), self.size())
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether the check of its partial file is awaited ([`Self::handle_checked`]).
    pub fn is_checking(&self) -> bool {
        self.checking.is_some()
    }

    /// Whether it awaits the check as a resume (from a record), not as a new download.
    pub fn is_resume(&self) -> bool {
        self.checking.as_ref().is_some_and(|c| c.recorded.is_some())
    }

    /// How long it waits for a source to come back before it pauses.
    pub fn retry_for(&self) -> Duration {
        self.retry_for
    }

    /// `raw` (from the network or the disk) as a chunk of this file, if it is one.
    pub fn chunk_index(&self, raw: u64) -> Option<ChunkIndex> {
        self.sched.index(raw)
    }

    /// Whether chunk `c` is verified and written (it may be served to others).
    pub fn is_done(&self, c: ChunkIndex) -> bool {
        self.sched.is_done(c)
    }

    /// Where chunk `c` lies in the file: offset and length.
    pub fn chunk_span(&self, c: ChunkIndex) -> (u64, usize) {
        let len = self.manifest.chunk_len(c.get()).unwrap_or(0);
        (self.manifest.chunk_offset(c.get()), len as usize)
    }

    /// The verified chunk map, for `GetHave` from others (partial seeding).
    pub fn have_bitmap(&self) -> Vec<u8> {
        super::chunk::bitmap(self.chunk_count(), |c| self.sched.is_done(c))
    }

    pub fn active_sources(&self) -> usize {
        self.sources
            .iter()
            .filter(|s| matches!(s.state, SourceState::Active { .. }))
            .count()
    }

    pub fn status(&self) -> Status {
        if self.paused {
            Status::Paused
        } else if self.checking.is_some() {
            Status::Checking
        } else if self.active_sources() > 0 {
            Status::Downloading {
                sources: self.active_sources(),
            }
        } else {
            Status::Waiting
        }
    }

    /// The sources: name, verified bytes from it, why it was dropped (if it was).
    pub fn sources(&self) -> impl Iterator<Item = (&str, u64, Option<&DropReason>)> {
        self.sources
            .iter()
            .map(|s| (s.name.as_str(), s.bytes, s.dropped.as_ref()))
    }

    /// The source of this download on connection `conn`, if any.
    pub fn source_on(&self, conn: ConnId) -> Option<SourceId> {
        self.sources
            .iter()
            .position(|s| s.conn() == Some(conn))
            .map(SourceId)
    }

    /// The source named `name`, if it is one of this download's.
    pub fn source_named(&self, name: &str) -> Option<SourceId> {
        self.sources
            .iter()
            .position(|s| s.name == name)
            .map(SourceId)
    }

    // ---- outputs and timers ----------------------------------------------------------------

    /// The next thing to do; see the poll order in the module docs.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.paused || self.ended {
            return None;
        }
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(t) = self.lost_since {
            at(t + self.retry_for);
        }
        if !self.unsynced.is_empty() {
            at(self.last_checkpoint + CHECKPOINT_EVERY);
        }
        for (i, s) in self.sources.iter().enumerate() {
            match s.state {
                SourceState::Waiting { retry_at } => at(retry_at),
                SourceState::Confirming { .. } => at(s.asked_at + REQUEST_TIMEOUT),
                SourceState::Active { .. } => {
                    if let Some(oldest) = self.sched.oldest_request(SourceId(i)) {
                        at(oldest + REQUEST_TIMEOUT);
                    }
                    if self.sched.have(SourceId(i)).is_some_and(Have::is_partial) {
                        at(s.next_have_refresh);
                    }
                }
                _ => {}
            }
        }
        next
    }

    /// Time passed: give up on sources that stay away, checkpoint, reconnect sources whose
    /// wait is over, drop stalled ones (their chunks go to the others), ask partial seeders
    /// again what they have.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.paused || self.ended {
            return;
        }
        if self.lost_since.is_some_and(|t| now >= t + self.retry_for) {
            let retry_for = self.retry_for;
            return self.pause(Pause::NoSourceBack { retry_for }, now);
        }
        if now >= self.last_checkpoint + CHECKPOINT_EVERY {
            self.checkpoint(now);
        }
        let mut stalled = Vec::new();
        let mut retry = false;
        for i in 0..self.sources.len() {
            let sid = SourceId(i);
            let s = &mut self.sources[i];
            match s.state {
                SourceState::Waiting { retry_at } if now >= retry_at => {
                    // Ask the tracker first: the source may be back at another address.
                    s.state = SourceState::Reaching { refreshed: true };
                    retry = true;
                }
                SourceState::Confirming { conn } if now >= s.asked_at + REQUEST_TIMEOUT => {
                    stalled.push((sid, conn));
                }
                SourceState::Active { conn } => {
                    if self.sched.stalled(sid, now, REQUEST_TIMEOUT) {
                        stalled.push((sid, conn));
                    } else if self.sched.have(sid).is_some_and(Have::is_partial)
                        && now >= s.next_have_refresh
                    {
                        s.next_have_refresh = now + HAVE_REFRESH;
                        let ask = Ask::Have;
                        self.out.push_back(Output::Ask { conn, ask });
                    }
                }
                _ => {}
            }
        }
        for (sid, conn) in stalled {
            self.out.push_back(Output::Close(conn));
            let why = format!("no answer for {}s", REQUEST_TIMEOUT.as_secs());
            self.handle_source_lost(sid, &why, now);
        }
        if retry {
            self.out.push_back(Output::Reach { refresh: true });
        }
    }

    // ---- the check, the disk, the end ------------------------------------------------------

    /// The check of the partial file is done: `intact` are the chunks found right (the only
    /// ones taken as here: a resume record's word is not enough). The caller has handed them
    /// to the store ([`super::Store::adopt`]) and, for a new download, recorded them.
    pub fn handle_checked(&mut self, intact: &[ChunkIndex], now: Instant) {
        let Some(check) = self.checking.take() else {
            return;
        };
        let before = self.sched.done_count();
        for &c in intact {
            self.sched.present(c);
        }
        let kept = self.sched.done_count() - before;
        if kept > 0 || check.recorded.is_some() {
            let percent = self.percent();
            self.report(Report::Resuming {
                chunks_here: kept,
                percent,
            });
        }
        if let Some(recorded) = check.recorded
            && kept < recorded
        {
            self.report(Report::RecordedChunksLost { recorded, kept });
        }
        self.lost_since = Some(now);
        if !self.paused {
            self.out.push_back(Output::Reach { refresh: false });
            self.maybe_finish(now);
        }
    }

    /// The store wrote chunk `c` (or could not: the download pauses, nobody is blamed).
    pub fn handle_written(&mut self, c: ChunkIndex, result: std::io::Result<()>, now: Instant) {
        let Some((sid, len)) = self.writing.remove(&c) else {
            return;
        };
        if self.ended {
            return;
        }
        if let Err(e) = result {
            self.sched.write_failed(c);
            let error = e.to_string();
            return self.pause(Pause::WriteFailed { error }, now);
        }
        self.sched.written(c);
        let source = &mut self.sources[sid.0];
        source.bytes += len;
        source.meter.add(len, now);
        self.meter.add(len, now);
        source.delivering = true;
        source.backoff = FIRST_RETRY;
        // Only an active source counts as back: this chunk's may have gone while it was
        // checked (a check runs on another thread), and then nobody is delivering.
        self.update_lost_since(now);
        self.unsynced.push(c);
        self.after_chunk(now);
    }

    /// What follows every chunk answer that did not end the download: progress, a
    /// checkpoint when enough chunks are waiting for one, more requests, maybe the end.
    pub(super) fn after_chunk(&mut self, now: Instant) {
        self.out.push_back(Output::Progress);
        if self.unsynced.len() >= CHECKPOINT_CHUNKS {
            self.checkpoint(now);
        }
        self.fill(now);
        self.maybe_finish(now);
    }

    /// The answer to [`Output::Checkpoint`]. A failure suspends the download: what is queued
    /// behind the checkpoint is withdrawn and nothing is ever published.
    pub fn handle_checkpointed(&mut self, result: std::io::Result<()>, now: Instant) {
        self.checkpoint_out = false;
        if self.ended {
            return;
        }
        if let Err(e) = result {
            self.out.clear();
            return self.end(End::Suspended {
                error: e.to_string(),
            });
        }
        if let Some(pause) = self.pending_pause.take() {
            return self.pause(pause, now);
        }
        if self.unsynced.len() >= CHECKPOINT_CHUNKS {
            self.checkpoint(now);
        }
        self.maybe_finish(now);
    }

    /// The answer to [`Output::Publish`]: the file is saved, or why not.
    pub fn handle_published(&mut self, result: Result<PathBuf, crate::peer::partial::FinishError>) {
        use crate::peer::partial::FinishError;
        let Some(at) = self.publishing.take() else {
            return;
        };
        if self.ended {
            return;
        }
        let end = match result {
            Ok(path) => End::Done(Finished {
                path,
                seconds: at.duration_since(self.started).as_secs_f64(),
                fetched: self.fetched,
                per_source: self
                    .sources
                    .iter()
                    .map(|s| (s.name.clone(), s.bytes))
                    .collect(),
            }),
            Err(FinishError::Mismatch(e)) => End::Mismatch(e),
            Err(FinishError::Kept(e)) => End::NotSaved(e),
        };
        self.end(end);
    }

    /// Makes written chunks durable and records them (asks the store to). Returns whether a
    /// checkpoint is now out.
    pub(super) fn checkpoint(&mut self, now: Instant) -> bool {
        // One at a time: the store may answer later (off the reactor); what was written
        // meanwhile goes into the next one.
        if self.checkpoint_out {
            self.last_checkpoint = now;
            return true;
        }
        self.issue_checkpoint(false, now)
    }

    /// A checkpoint carried out at once, even with one out (a pause, or the process leaving:
    /// what comes next must not wait for another thread). The one out still gets its answer,
    /// which then changes nothing. Nothing new: nothing to wait for (a checkpoint out makes
    /// its own chunks durable, or, if the process leaves first, a resume finds them on disk).
    fn checkpoint_at_once(&mut self, now: Instant) -> bool {
        self.issue_checkpoint(true, now)
    }

    /// Asks the store to make the chunks written since the last checkpoint durable; false if
    /// there are none.
    fn issue_checkpoint(&mut self, at_once: bool, now: Instant) -> bool {
        self.last_checkpoint = now;
        if self.unsynced.is_empty() {
            return false;
        }
        let durable = std::mem::take(&mut self.unsynced);
        self.checkpoint_out = true;
        self.out.push_back(Output::Checkpoint { durable, at_once });
        true
    }

    /// On exit: make what was fetched durable so a restart continues from here.
    pub fn handle_exit(&mut self, now: Instant) {
        if !self.ended {
            self.checkpoint_at_once(now);
        }
    }

    /// Publishes the file once every chunk is verified and written, unless paused or still
    /// being checked: paused means nothing under the final name.
    pub(super) fn maybe_finish(&mut self, now: Instant) {
        if self.sched.is_complete()
            && self.writing.is_empty()
            && !self.paused
            && self.checking.is_none()
            && self.publishing.is_none()
            && !self.checkpoint_out
            && !self.ended
        {
            self.publishing = Some(now);
            self.out.push_back(Output::Publish {
                id: self.content_id,
                sha256: self.check_sha256.then_some(self.manifest.sha256),
                size: self.manifest.size,
            });
        }
    }

    fn end(&mut self, end: End) {
        self.ended = !matches!(end, End::Paused(_));
        self.out.push_back(Output::End(end));
    }

    /// Stops the download (partial file and record kept), after a last checkpoint. If that
    /// fails, the download is suspended instead.
    pub(super) fn pause(&mut self, pause: Pause, now: Instant) {
        if self.checkpoint_at_once(now) {
            self.pending_pause = Some(pause);
            return;
        }
        self.paused = true;
        for i in 0..self.sources.len() {
            self.sched.release(SourceId(i));
        }
        self.end(End::Paused(pause));
    }

    /// The user interrupted the download: it pauses like any pause.
    pub fn handle_interrupt(&mut self, now: Instant) {
        if !self.ended && !self.paused {
            self.pause(Pause::Interrupted, now);
        }
    }

    /// A paused download goes on: its sources are looked for anew (bans forgotten, round-trip
    /// windows kept).
    pub fn handle_resume(&mut self, now: Instant) {
        if !self.paused || self.ended {
            return;
        }
        self.paused = false;
        self.lost_since = Some(now);
        for (i, s) in self.sources.iter_mut().enumerate() {
            *s = Source::new(&s.name, now);
            self.sched.forget_source(SourceId(i));
        }
        self.out.push_back(Output::Reach { refresh: false });
    }

    /// Something outside changed (a peer list came, a connection opened): reach the sources
    /// that are looking for their peer, and finish if nothing is missing.
    pub fn handle_wake(&mut self, now: Instant) {
        if !self.ended {
            self.out.push_back(Output::Reach { refresh: false });
            self.maybe_finish(now);
        }
    }

    pub(super) fn report(&mut self, report: Report) {
        self.out.push_back(Output::Report(report));
    }

    /// Tops every active source's requests up to its window ([`Scheduler::fill`]).
    pub(super) fn fill(&mut self, now: Instant) {
        if self.paused || self.ended {
            return;
        }
        for i in 0..self.sources.len() {
            let SourceState::Active { conn } = self.sources[i].state else {
                continue;
            };
            let asked = self.sched.fill(SourceId(i), now);
            if !asked.is_empty() {
                let ask = Ask::Chunks(asked);
                self.out.push_back(Output::Ask { conn, ask });
            }
        }
    }
}
