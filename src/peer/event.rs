//! What the engine says, as values: every result, progress report, warning, incoming message
//! and error with its kind. The node hands them to its [`super::Frontend`]; the front ends
//! (`repl/`) make the human lines and the JSON (README, "JSON output", lists every type and
//! field; `tests/ux_json.rs` checks that what is printed matches that list). Nothing here is a
//! sentence: a warning, a notice or a failure is a kind with its facts as fields.
//!
//! Text that reaches these values from the network (names, chat, error messages) is kept as it
//! came; the front end escapes it for people.

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Why a command failed, as scripts see it in the exit status of a batch (README, "Exit
/// status") and in the `kind` of an `error` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// Any other failure: bad arguments to a command, a refusal, a full disk... (exit 1)
    Failed,
    /// A download's bytes did not match what was asked for and could not be repaired from
    /// another source (exit 3).
    Verification,
    /// The peer or the tracker could not be reached, or went away mid-command (exit 4).
    Unreachable,
    /// A download stopped before it was complete; its partial file is kept and `resume`
    /// continues it (exit 5).
    Unfinished,
}

impl Failure {
    /// The process exit status a batch ends with when a command fails this way.
    pub fn exit_code(self) -> i32 {
        match self {
            Failure::Failed => EXIT_FAILED,
            Failure::Verification => EXIT_VERIFICATION,
            Failure::Unreachable => EXIT_UNREACHABLE,
            Failure::Unfinished => EXIT_UNFINISHED,
        }
    }
}

/// Exit status: everything succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit status: a command failed (or a start-up error: folder or port unusable, name refused).
pub const EXIT_FAILED: i32 = 1;
/// Exit status: wrong command-line usage or an unusable configuration (clap's own code).
pub const EXIT_USAGE: i32 = 2;
/// Exit status: a download failed verification and no source could repair it.
pub const EXIT_VERIFICATION: i32 = 3;
/// Exit status: a peer or the tracker could not be reached.
pub const EXIT_UNREACHABLE: i32 = 4;
/// Exit status: downloads were left unfinished (resumable) at the end of a batch.
pub const EXIT_UNFINISHED: i32 = 5;

/// A peer in a `peers` answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeerEntry {
    pub name: String,
    pub addr: String,
    /// Seconds since the tracker (or discovery) last heard from it.
    pub last_seen_secs: u64,
    /// Where it was learned: `tracker`, `exchange`, `cache`, `lan`, `manual` or `incoming`.
    pub source: &'static str,
    /// Connected now or the last attempt worked (true), the last attempt failed (false), or
    /// never tried (null; `?` in the text).
    pub reachable: Option<bool>,
    /// Its peer id, if known (listed with its address, or proved by a connection).
    pub id: Option<String>,
    /// How it is reached: `direct`, `mapped` (a dial to a port mapping on its router that it
    /// published, PROTOCOL.md §19) or `relayed` (connected through the tracker's relay,
    /// PROTOCOL.md §18).
    pub via: &'static str,
}

/// A file in a `files` or `shared` answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    /// `cid1:` and 64 hex digits (PROTOCOL.md §8.4).
    pub content_id: String,
    /// As the peer lists it (proved only by hashing the file).
    pub sha256: String,
}

/// A top-level folder in a `files` answer: its name, folder id (`tree1:`, PROTOCOL.md §8.5),
/// how many files it holds and their total size.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FolderListed {
    pub name: String,
    pub folder_id: String,
    pub files: u64,
    pub size: u64,
}

impl From<crate::wire::FolderInfo> for FolderListed {
    fn from(f: crate::wire::FolderInfo) -> FolderListed {
        FolderListed {
            name: f.name,
            folder_id: f.id.to_string(),
            files: f.files,
            size: f.size,
        }
    }
}

/// One content found by `search`: its names, size, content id and SHA-256, and the peers
/// that have it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Found {
    pub names: Vec<String>,
    pub size: u64,
    pub content_id: String,
    pub sha256: String,
    pub peers: Vec<String>,
}

/// An unfinished download in a `downloads` answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DownloadEntry {
    pub file: String,
    pub done: u64,
    pub size: u64,
    pub percent: f64,
    pub sources: Vec<String>,
    /// `checking`, `downloading`, `waiting`, `paused` or `not running` (left by an earlier run).
    pub state: String,
    /// The rate limit that holds it back, when one does: `max_down` (all downloads together)
    /// or `max_down_per_peer` (a source is held at it). `null`: none.
    pub limited_by: Option<String>,
    /// What only people read (not in `--json`): set for a download of this run.
    #[serde(skip)]
    pub running: Option<RunningDownload>,
}

/// What the human line of a running download says beyond a [`DownloadEntry`]'s fields.
#[derive(Clone, Debug, PartialEq)]
pub struct RunningDownload {
    /// Sources delivering now.
    pub active: usize,
    /// Verified bytes per source, in the download's order of sources.
    pub bytes_per_source: Vec<(String, u64)>,
    /// Sources dropped (banned, or unable to serve it), and why.
    pub dropped: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The peer accepts connections on `addr`.
    /// The peer listens on `addr`; `id` is its peer id (the key its links prove).
    Listening {
        name: String,
        addr: String,
        id: String,
    },
    /// The shared folder was scanned (at start-up, or by `rescan` when `rescan` is true).
    Sharing {
        files: usize,
        dir: String,
        hashed: usize,
        hashed_bytes: u64,
        /// Hashing speed in MB/s, when something was hashed at start-up.
        #[serde(skip_serializing_if = "Option::is_none")]
        mb_per_sec: Option<f64>,
        rescan: bool,
    },
    /// A file in the shared folder is not shared, and why.
    Skipped { file: String, reason: String },
    /// The shared folder is being hashed (at start-up, or by `rescan` when `rescan` is true):
    /// `done` of the `total` bytes this scan hashes; `file` is being read now. Now and then.
    Hashing {
        file: String,
        done: u64,
        total: u64,
        rescan: bool,
    },
    /// Registered (`again`: after losing the tracker) with the tracker at `tracker`.
    Registered { tracker: String, again: bool },
    /// The tracker refused our name (a live registration holds it, or the tracker does not
    /// accept it). The peer goes on without a registration and asks again, at least every
    /// `retry_secs`.
    NameRefused {
        tracker: String,
        name: String,
        reason: String,
        retry_secs: u64,
    },
    /// Answer to `peers`.
    Peers {
        peers: Vec<PeerEntry>,
        tracker_unreachable: bool,
    },
    /// Answer to `files PEER`.
    Files {
        peer: String,
        files: Vec<FileEntry>,
        folders: Vec<FolderListed>,
    },
    /// Answer to `shared`: the files in the shared folder, and (`seeding`) files downloaded
    /// by this run that it also serves until it restarts.
    Shared {
        dir: String,
        files: Vec<FileEntry>,
        seeding: Vec<FileEntry>,
        /// The folders shared as trees whose every file is hashed.
        folders: Vec<FolderListed>,
    },
    /// Answer to `search TEXT` (`asked`: how many peers were asked).
    Search {
        query: String,
        asked: usize,
        results: Vec<Found>,
    },
    /// A running download, at most a few times a second.
    Progress {
        file: String,
        done: u64,
        total: u64,
        bytes_per_sec: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        eta_secs: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        sources: Option<usize>,
        /// A folder: its files verified so far, and in all.
        #[serde(skip_serializing_if = "Option::is_none")]
        files_done: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        files_total: Option<u64>,
    },
    /// A download finished and was verified (or the same bytes were already there): every
    /// chunk against a manifest that makes `content_id`, and the whole file against `sha256`
    /// if `sha256_checked` (else `sha256` is what the sources listed).
    DownloadDone {
        file: String,
        path: String,
        size: u64,
        content_id: String,
        sha256: String,
        sha256_checked: bool,
        seconds: f64,
        bytes_per_sec: f64,
        /// Bytes fetched over the network in this run (less than `size` when resumed).
        bytes_fetched: u64,
        /// Bytes each source sent, by peer name.
        bytes_per_source: BTreeMap<String, u64>,
        already_there: bool,
    },
    /// A folder download finished: every file verified (against its content id, which the
    /// folder id commits to) and the tree placed under `path`.
    FolderDone {
        folder: String,
        path: String,
        folder_id: String,
        files: u64,
        size: u64,
        seconds: f64,
        bytes_per_sec: f64,
        /// Bytes fetched over the network in this run (less than `size` when resumed, or
        /// when contents repeat).
        bytes_fetched: u64,
        /// Contents already verified by an earlier run, not fetched again.
        contents_kept: u64,
        sources: Vec<String>,
    },
    /// One file of a folder download is verified (`--json` only); the tree is placed whole
    /// at the end.
    FolderFile {
        folder: String,
        path: String,
        size: u64,
        content_id: String,
    },
    /// Answer to `downloads`.
    Downloads { downloads: Vec<DownloadEntry> },
    /// A text message from another peer: `from` is the name pinned to the key that sent it,
    /// `id` that key; `first_contact` when the name was pinned by this connection.
    Message {
        from: String,
        id: String,
        first_contact: bool,
        text: String,
    },
    /// `trust` with nothing else: the names pinned to keys.
    Pins { pins: Vec<PinEntry> },
    /// `trust NAME ID` pinned `name` to `id` (instead of `replaced`).
    Trusted {
        name: String,
        id: String,
        replaced: Option<String>,
    },
    /// `forget NAME` unpinned the name from `id`.
    Forgotten { name: String, id: String },
    /// `msg` succeeded: the peer acknowledged the message.
    MessageDelivered { to: String },
    /// `wait-peer` succeeded.
    PeerKnown { name: String },
    /// `cancel FILE` dropped the download and its partial file.
    Cancelled { file: String },
    /// Answer to `limit`: the rate limits in bytes a second (`null`: none).
    Limits {
        down: Option<u64>,
        up: Option<u64>,
        down_per_peer: Option<u64>,
        up_per_peer: Option<u64>,
        /// Connections with this machine (loopback) are not limited.
        exempt_loopback: bool,
    },
    /// A command failed (in a batch, the run then exits with [`Failure::exit_code`]), or a
    /// download in the background did. JSON: `kind` and the sentence as `message`.
    #[serde(skip_serializing)]
    Error { kind: Failure, problem: Problem },
    /// Downloads left unfinished in the downloads folder: said at start-up (`quitting`
    /// false) and when the peer quits with some still open (`quitting` true, a warning).
    Unfinished {
        downloads: Vec<DownloadEntry>,
        quitting: bool,
    },
    /// `connect ADDR` (or `--peer ADDR`) reached NAME.
    Connected { name: String, addr: String },
    /// The tracker cannot be reached; the peer works without it and keeps trying.
    TrackerUnreachable { tracker: String, reason: String },
    /// A download continues from a partial file: `chunks_here` of `chunks` were already
    /// verified on disk.
    Resuming {
        file: String,
        sources: Vec<String>,
        chunks_here: u64,
        chunks: u64,
        percent: f64,
    },
    /// A source (re)joined a download that had bytes already (`others`: sources active
    /// besides it).
    SourceJoined {
        file: String,
        peer: String,
        percent: f64,
        others: usize,
    },
    /// A download lost a source's connection; it is retried (for up to `retry_secs` when no
    /// other source is left).
    SourceLost {
        file: String,
        peer: String,
        reason: String,
        percent: f64,
        others: usize,
        retry_secs: u64,
    },
    /// A source is dropped from a download (banned or cannot serve it); the others go on.
    SourceDropped {
        file: String,
        peer: String,
        reason: String,
    },
    /// `--resume-on-start`: these unfinished downloads go on in the background.
    Resumed { downloads: Vec<DownloadEntry> },
    /// Something went wrong but nothing failed. JSON: the sentence as `message`.
    #[serde(skip_serializing)]
    Warning(Warning),
    /// Any other result (`help`, ...). JSON: the text as `text`.
    #[serde(skip_serializing)]
    Info(Info),
    /// Chatter about what the peer is doing (hidden by `-q`). JSON: the text as `text`.
    #[serde(skip_serializing)]
    Notice(Notice),
}

impl Event {
    /// The `download_done` of a file that already stood, whole and right, at `path`: nothing
    /// was fetched.
    pub fn already_there(
        file: String,
        path: String,
        size: u64,
        content_id: String,
        sha256: String,
    ) -> Event {
        Event::DownloadDone {
            file,
            path,
            size,
            content_id,
            sha256,
            sha256_checked: false,
            seconds: 0.0,
            bytes_per_sec: 0.0,
            bytes_fetched: 0,
            bytes_per_source: BTreeMap::new(),
            already_there: true,
        }
    }

    /// The `type` field of the JSON form.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Listening { .. } => "listening",
            Event::Sharing { .. } => "sharing",
            Event::Skipped { .. } => "skipped",
            Event::Hashing { .. } => "hashing",
            Event::Registered { .. } => "registered",
            Event::NameRefused { .. } => "name_refused",
            Event::Peers { .. } => "peers",
            Event::Pins { .. } => "pins",
            Event::Trusted { .. } => "trusted",
            Event::Forgotten { .. } => "forgotten",
            Event::Files { .. } => "files",
            Event::Shared { .. } => "shared",
            Event::Search { .. } => "search",
            Event::Progress { .. } => "progress",
            Event::DownloadDone { .. } => "download_done",
            Event::FolderDone { .. } => "folder_done",
            Event::FolderFile { .. } => "folder_file",
            Event::Downloads { .. } => "downloads",
            Event::Message { .. } => "message",
            Event::MessageDelivered { .. } => "message_delivered",
            Event::PeerKnown { .. } => "peer_known",
            Event::Cancelled { .. } => "cancelled",
            Event::Limits { .. } => "limits",
            Event::Unfinished { .. } => "unfinished",
            Event::Resumed { .. } => "resumed",
            Event::Error { .. } => "error",
            Event::Connected { .. } => "connected",
            Event::TrackerUnreachable { .. } => "tracker_unreachable",
            Event::Resuming { .. } => "resuming",
            Event::SourceJoined { .. } => "source_joined",
            Event::SourceLost { .. } => "source_lost",
            Event::SourceDropped { .. } => "source_dropped",
            Event::Warning(_) => "warning",
            Event::Info(_) => "info",
            Event::Notice(_) => "notice",
        }
    }
}

/// Why a command (or a download) failed: the facts the front end words. The kind scripts
/// see is the [`Failure`] beside it.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// The front end could not make a command of a line; its parser's own words.
    Input(String),
    /// A line came in but the node was given no parser to make a command of it.
    NoParser,
    /// Ctrl-C (or SIGTERM in a batch) stopped the command.
    Interrupted,
    /// Ctrl-C paused a download the command waited for; `resume` continues it.
    Paused {
        file: String,
        percent: f64,
        done: u64,
        size: u64,
    },
    /// `msg` with a text over the protocol's limit.
    MessageTooLong { bytes: usize, limit: usize },
    /// `get` found its content but no peer to fetch it from.
    NoSource,
    /// A command named this peer itself.
    IsThisPeer { name: String },
    /// Nobody knows a peer of that name (`near`: a known name close to it).
    UnknownPeer {
        name: String,
        near: Option<String>,
        tracker_unreachable: bool,
    },
    /// Connecting to a peer at its known address failed.
    CannotReach {
        peer: String,
        addr: SocketAddr,
        error: String,
    },
    /// The command's connection to `peer` closed under it.
    ConnectionLost { peer: String, why: String },
    /// `peer` answered the command with an `Error` message.
    PeerError { peer: String, message: String },
    /// `peer` lists no file of that name.
    NoSuchFile { peer: String, file: String },
    /// `peer` sent a manifest that does not hold together or does not make the content id it
    /// listed the file with.
    BadManifest { peer: String, error: String },
    /// `peer` answered with a message of the wrong type (`message`: its type).
    Unexpected { peer: String, message: &'static str },
    /// `wait-peer NAME` ran out of time.
    DidNotAppear { name: String },
    /// No answer in time from `peer` (`None`: the tracker).
    TimedOut { peer: Option<String> },
    /// `get FILE`: no known peer shares it.
    NothingShares { query: String },
    /// `get FILE`: the name stands for different contents.
    Ambiguous {
        query: String,
        candidates: Vec<Found>,
    },
    /// `connect` to an address no peer can listen on (port 0, unspecified).
    NotAPeerAddress { addr: SocketAddr },
    /// `connect HOST:PORT` could not be resolved.
    CannotResolve { addr: String, why: String },
    /// `connect PEER-ID` without the DHT: nothing else finds a peer by its id.
    NeedsDht { id: String },
    /// `connect PEER-ID`: the DHT gave no address for it.
    PeerNotFound { id: String, why: String },
    /// A connection to an address (`--peer`, `connect`) failed.
    CannotConnect { addr: SocketAddr, why: String },
    /// A chunk could not be written; the download is paused.
    CannotWrite {
        file: String,
        part: String,
        error: String,
        percent: f64,
    },
    /// No source came back within `retry_secs`; the download is paused.
    SourcesGone {
        file: String,
        sources: Vec<String>,
        retry_secs: u64,
        percent: f64,
    },
    /// The downloads folder cannot hold the rest of the file.
    NoRoom {
        dir: String,
        file: String,
        needed: u64,
        free: u64,
    },
    /// `rescan` with no hashing thread to run it.
    NoHashingThread,
    /// `peer`'s listing of `folder` broke a rule (named in `error`); nothing was written.
    BadFolder {
        peer: String,
        folder: String,
        error: String,
    },
    /// A folder download stopped (`why`); its record and verified files are kept, and
    /// `resume FOLDER` continues it.
    FolderUnfinished {
        folder: String,
        files_done: u64,
        files_total: u64,
        why: Box<Problem>,
    },
    /// A sentence from a layer that does not say it with values yet (file system errors,
    /// name rules, partial files, resume records).
    Text(String),
}

impl From<String> for Problem {
    fn from(text: String) -> Problem {
        Problem::Text(text)
    }
}

/// Something went wrong but nothing failed.
#[derive(Clone, Debug, PartialEq)]
pub enum Warning {
    /// The peer cache could not be read (its loader's words).
    PeerCache(String),
    /// The peer cache could not be written.
    PeerCacheWrite { path: String, error: String },
    /// The hash cache could not be saved (the hash worker's words).
    HashCache(String),
    /// A `--peer` address (or a known peer's, when probing) could not be reached.
    CannotConnect { addr: SocketAddr, why: String },
    /// `get FILE` chose among the answers it got; `peers` did not answer.
    Unanswered { peers: Vec<String>, query: String },
    /// Ctrl-C stopped hashing: these files are not shared.
    HashingStopped { files: usize, bytes: u64 },
    /// The shared folder could not be scanned.
    ScanFailed { error: String },
    /// The tracker sent an error we have no use for.
    Tracker { message: String },
    /// A peer sent a frame that is no message; it is dropped.
    BadFrame { peer: String, error: String },
    /// A peer closed the connection with an error.
    PeerClosed { peer: String, message: String },
    /// A download's resume record is unusable; its partial file is checked instead.
    RecordUnusable { file: String, why: String },
    /// A resume record listed chunks as done that failed verification.
    TornChunks {
        file: String,
        failed: u64,
        recorded: u64,
    },
    /// A source sent a bad chunk (`fault`); it is fetched again.
    BadChunk {
        peer: String,
        fault: String,
        chunk: u64,
    },
    /// A source of a content sent a manifest that does not make the content id it listed:
    /// it lies about the file, and nothing is fetched from it.
    ForgedManifest {
        peer: String,
        file: String,
        error: String,
    },
    /// A finished download could not be added to what this peer serves.
    CannotShare { path: String, error: String },
    /// `resume` (of several) or `--resume-on-start` could not continue one download.
    NotResumed(Problem),
    /// A file in the resume folder is no usable record.
    UnusableRecord { path: String, why: String },
    /// A peer said a name that is pinned to another key: refused (an impostor, or a peer that
    /// lost its key; `trust NAME ID` accepts the new key).
    Impostor {
        name: String,
        pinned: String,
        presented: String,
    },
    /// The pins file could not be written (the pin holds for this run).
    PinsWrite { path: String, error: String },
    /// The DHT is off or finds nothing (cannot start, no node answered, nothing to publish).
    Dht(String),
    /// The port mapping we had is gone (renewals unanswered or refused); others can no longer
    /// dial our external address.
    PortMapLost { why: String },
    /// LAN discovery could not join its multicast group.
    LanUnavailable {
        group: String,
        iface: String,
        error: String,
    },
}

/// A name pinned to a key, as `trust` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PinEntry {
    pub name: String,
    pub id: String,
}

/// What the peer is doing (hidden by `-q`).
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// The REPL starts.
    TypeHelp,
    /// The DHT node runs on `local` (UDP), joined through `bootstrap`.
    DhtOn { local: String, bootstrap: String },
    /// LAN announcements are off (the listener cannot be announced), and why.
    LanAnnouncementsOff { why: String },
    /// The router maps `external` to our listen port `internal_port` for `lifetime_secs`
    /// (PCP or NAT-PMP, `via`); said at the first mapping and whenever the external address,
    /// the port or the protocol changes.
    PortMapped {
        external: String,
        internal_port: u16,
        lifetime_secs: u64,
        /// The protocol the router granted it in: `PCP` or `NAT-PMP`.
        via: String,
    },
    /// Port mapping is on but none was made at start, and why.
    NoPortMapping { why: String },
    /// A batch ended with `then_serve`: the peer serves on.
    BatchFinished,
    /// After `shared`: these files are being hashed and not listed yet.
    StillHashing { files: Vec<String>, bytes: u64 },
    /// The REPL's download lost its sources: the prompt comes back, it goes on waiting.
    InBackground,
    /// A peer refused us as busy; the command tries again in `retry_secs`.
    Busy {
        peer: String,
        why: String,
        retry_secs: f64,
    },
}

/// Any other result.
#[derive(Clone, Debug, PartialEq)]
pub enum Info {
    /// `help`, or `help COMMAND` (the front end checked that the command exists).
    Help { topic: Option<String> },
    /// `resume` with nothing to resume.
    NoUnfinishedDownloads,
}
