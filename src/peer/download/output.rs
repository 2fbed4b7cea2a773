//! What a download machine says: its outputs ([`Output`]), the requests it makes, the facts
//! it reports, why it drops a source, and how it ends. Plain values: the node turns them into
//! messages, store calls and events.

use super::chunk::{ChunkFault, ChunkIndex};
use super::scheduler::SourceId;
use crate::reactor::ConnId;
use crate::wire::{ContentId, Sha256};
use std::path::PathBuf;
use std::time::Duration;

/// What the machine wants done.
#[derive(Debug)]
pub enum Output {
    /// Send a request to a source over its connection.
    Ask {
        conn: ConnId,
        ask: Ask,
    },
    /// Close this connection: its source broke the protocol or stalled.
    Close(ConnId),
    /// Sources are looking for their peer: ask the tracker for a fresh peer list first if
    /// `refresh` (and it can be asked), else reach them now ([`Download::reaching`]).
    Reach {
        refresh: bool,
    },
    /// Check the bytes of chunk `index` that `source` sent against `expected`, their SHA-256
    /// in the manifest (their length is checked already); answer with
    /// [`Download::handle_chunk_checked`]. [`super::run_disk_output`] checks at once; the
    /// node hands it to a checking thread when it has one (`peer/chunk_check.rs`).
    Check {
        source: SourceId,
        index: ChunkIndex,
        data: Vec<u8>,
        expected: Sha256,
    },
    /// Write verified bytes of chunk `index` at `offset` of the partial file; answer with
    /// [`Download::handle_written`].
    Write {
        index: ChunkIndex,
        offset: u64,
        data: Vec<u8>,
    },
    /// Make every chunk written so far durable, then record `durable` (chunks written since
    /// the last checkpoint) in the resume record; answer with [`Download::handle_checkpointed`].
    Checkpoint {
        durable: Vec<ChunkIndex>,
        /// Carry it out before anything else (a pause or the process leaving waits for it);
        /// otherwise it may be answered later, from another thread.
        at_once: bool,
    },
    /// Every chunk is verified against the manifest, which was checked against the content id
    /// `id`, and written: put the file under its name (checked to be `size` bytes; against
    /// `sha256` too when the download was asked for by its SHA-256) and answer with
    /// [`Download::handle_published`].
    Publish {
        id: ContentId,
        sha256: Option<Sha256>,
        size: u64,
    },
    Report(Report),
    /// The bytes done changed.
    Progress,
    /// The download is over, or paused.
    End(End),
}

/// A request to a source.
#[derive(Debug, PartialEq, Eq)]
pub enum Ask {
    /// `GetManifest`: a source just reached must confirm it has these bytes.
    Manifest,
    /// `GetHave`: which chunks it can serve.
    Have,
    /// `GetChunk` for each, in one batch.
    Chunks(Vec<ChunkIndex>),
}

/// Facts worth telling the user.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The check of the partial file is done: `chunks_here` are here already (a resume, or a
    /// new download that found some).
    Resuming { chunks_here: u64, percent: f64 },
    /// Fewer chunks verified than the resume record named as durable (torn or lost writes).
    RecordedChunksLost { recorded: u64, kept: u64 },
    /// A source joined a download that had bytes already.
    SourceJoined {
        peer: String,
        percent: f64,
        others: usize,
    },
    /// A source's connection is gone; it is looked for again.
    SourceLost {
        peer: String,
        reason: String,
        percent: f64,
        others: usize,
    },
    /// A source is dropped for good (banned or cannot serve it); others are left.
    SourceDropped { peer: String, reason: DropReason },
    /// A source sent a bad chunk (not yet banned): it is fetched again.
    BadChunk {
        peer: String,
        fault: ChunkFault,
        index: ChunkIndex,
    },
    /// The last active source is gone (the REPL gives the prompt back meanwhile).
    NoSourceActive,
}

/// Why a source was dropped from the download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// It answered the manifest request with something other than a manifest (an error: it
    /// no longer has the file); nothing is mixed.
    ContentChanged,
    /// Its manifest does not match the content id: it lies about the file. Banned for this
    /// download before any chunk is asked of it.
    ForgedManifest(String),
    /// Its chunk map does not fit the file.
    WrongMapSize,
    /// It answered with an error: it cannot serve the file any more.
    CannotServe(String),
    /// It answered `GetHave` with this message.
    UnexpectedHave(&'static str),
    /// It answered a request for chunk `asked` with chunk `got`.
    WrongChunk { asked: ChunkIndex, got: u64 },
    /// It answered a chunk request with this message.
    UnexpectedChunk(&'static str),
    /// Banned: a chunk of the wrong length, or its third bad one (`MAX_BAD_CHUNKS`).
    Banned {
        fault: ChunkFault,
        index: ChunkIndex,
        bad: u32,
    },
    /// Banned: its frames broke the protocol, as often, with its bad chunks.
    BrokenFrames { why: String, bad: u32 },
}

impl DropReason {
    /// Whether the source broke the protocol on its connection (which is then closed).
    pub(super) fn closes(&self) -> bool {
        match self {
            DropReason::ContentChanged
            | DropReason::CannotServe(_)
            | DropReason::BrokenFrames { .. } => false,
            DropReason::Banned { fault, .. } => matches!(fault, ChunkFault::WrongLength { .. }),
            DropReason::WrongMapSize
            | DropReason::ForgedManifest(_)
            | DropReason::UnexpectedHave(_)
            | DropReason::WrongChunk { .. }
            | DropReason::UnexpectedChunk(_) => true,
        }
    }
}

/// How a download ended.
#[derive(Debug)]
pub enum End {
    /// Saved under its name.
    Done(Finished),
    /// Stopped with its partial file and record kept; resumable in this run too.
    Paused(Pause),
    /// A checkpoint failed: nothing written since the last good one may be trusted (an fsync
    /// that failed once may "succeed" later with the data gone). Partial file and record stay;
    /// a resume checks every chunk on disk.
    Suspended { error: String },
    /// Every chunk matched the manifest but the whole file did not: the manifest lied.
    /// Nothing was saved; partial file and record are gone.
    Mismatch(String),
    /// Complete and verified, but saving it failed; the partial file is kept for a resume.
    NotSaved(String),
}

#[derive(Debug, PartialEq)]
pub struct Finished {
    pub path: PathBuf,
    pub seconds: f64,
    /// Bytes received from the network in this run.
    pub fetched: u64,
    /// Verified bytes per source, in the order the sources were given.
    pub per_source: Vec<(String, u64)>,
}

/// Why a download paused.
#[derive(Debug, PartialEq)]
pub enum Pause {
    /// No source came back within `retry_for`.
    NoSourceBack { retry_for: Duration },
    /// Writing a chunk failed (a full disk): nobody is blamed.
    WriteFailed { error: String },
    /// The last usable source was dropped; `corrupt`: some source sent bad chunks.
    NoSourceLeft {
        peer: String,
        reason: DropReason,
        corrupt: bool,
    },
    /// The user interrupted it.
    Interrupted,
}

/// What the download is doing, for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Paused,
    /// Its partial file is being checked.
    Checking,
    Downloading {
        sources: usize,
    },
    Waiting,
}
