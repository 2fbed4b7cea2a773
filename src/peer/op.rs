//! What a foreground command is: its kind and state (`Op`), the step it waits on (`Step`),
//! how a connection it was reaching ended (`Lost`) and its deadlines. Plain values: the
//! node's side of commands is `ops.rs`.

use super::download::DownloadId;
use super::find_state::Find;
use super::folder::manifest::PagedListing;
use crate::reactor::ConnId;
use crate::wire::ContentId;
use crate::wire::FileInfo;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A command waiting on the network gives up after this long without progress.
pub(super) const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// First wait before reaching a peer again that refused us as busy; doubles up to the last.
pub(super) const BUSY_FIRST_RETRY: Duration = Duration::from_millis(500);

/// How a connection to a peer ended, as far as the command that was reaching it cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// It had completed its handshake.
    Established,
    /// It never completed its handshake.
    Handshake,
    /// The peer refused it as busy (`Error` with code `Busy` in place of `Hello`).
    Busy,
}

/// What a command that talks to a peer is waiting for.
#[derive(Debug)]
pub enum Step {
    /// Finding and connecting to the peer. `refreshed`: we already asked the tracker anew.
    Reaching { refreshed: bool },
    /// The peer refused the connection as busy (its connection cap): reach it again at
    /// `retry_at`; the next refusal waits twice `wait`. The command's deadline still holds.
    Busy { retry_at: Instant, wait: Duration },
    /// Our request went out on this connection; waiting for the answer.
    Asked(ConnId),
    /// `get` only: the manifest was asked for this file, at this time (its round trip sizes
    /// the first source's request window).
    AskedManifest(ConnId, FileInfo, Instant),
    /// `get` only: a file already stands under that name at home; it is being hashed (a disk
    /// job) to see whether it is this one. The connection stays ready for the manifest.
    CheckingDestination(ConnId, FileInfo),
    /// `get` only: the peer lists no file of that name; its folders were asked for.
    AskedFolders(ConnId),
    /// `get` of a folder: its listing arrives in pages, each checked as it comes.
    FolderPages(ConnId, Box<PagedListing>),
}

/// A `get` of a content a search found: every source (the first is the one asked first) and
/// the content id they listed.
#[derive(Debug)]
pub struct Swarm {
    pub sources: Vec<String>,
    pub id: ContentId,
    /// The search was by SHA-256: the finished file must have the one its sources listed.
    pub check_sha256: bool,
}

#[derive(Debug)]
pub enum Op {
    Peers {
        deadline: Instant,
    },
    Files {
        peer: String,
        step: Step,
        deadline: Instant,
        /// The peer's files, once listed: then its folders are asked for (`ListFolders`).
        listed: Option<Vec<FileInfo>>,
    },
    Get {
        peer: String,
        file: String,
        step: Step,
        deadline: Instant,
        /// A content a search found, fetched from every peer that has it.
        swarm: Option<Swarm>,
    },
    /// `search`, and `get FILE` while it looks for the peers that have FILE.
    Find(Find),
    Msg {
        peer: String,
        text: String,
        step: Step,
        deadline: Instant,
    },
    WaitPeer {
        name: String,
        deadline: Instant,
        next_poll: Instant,
    },
    Sleep {
        until: Instant,
    },
    /// `get` once the transfer runs, and `resume`: until these downloads end.
    Await {
        ids: BTreeSet<DownloadId>,
    },
    /// `connect ADDR`: until whoever answers there completes the handshake
    /// (`exchange_glue.rs`); `addr` is `None` while a host name is being looked up.
    Connect {
        addr: Option<std::net::SocketAddr>,
        deadline: Instant,
    },
    /// `get` of a folder (or `resume` of one) once its listing is checked: until the tree is
    /// placed (`folder_fetch.rs`); its downloads keep their own clocks.
    Folder,
    /// `rescan`: until its scan on the hash worker ends (`hashing.rs`).
    Rescan {
        job: super::hash_worker::JobId,
    },
}

impl Op {
    pub(super) fn peer(&self) -> Option<&str> {
        match self {
            Op::Files { peer, .. } | Op::Get { peer, .. } | Op::Msg { peer, .. } => Some(peer),
            _ => None,
        }
    }

    pub(super) fn step(&self) -> Option<&Step> {
        match self {
            Op::Files { step, .. } | Op::Get { step, .. } | Op::Msg { step, .. } => Some(step),
            _ => None,
        }
    }

    pub(super) fn step_mut(&mut self) -> Option<&mut Step> {
        match self {
            Op::Files { step, .. } | Op::Get { step, .. } | Op::Msg { step, .. } => Some(step),
            _ => None,
        }
    }

    /// When the command gives up; `None` for those that end with what they wait for (its
    /// downloads, its scan), which keep their own clocks.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self {
            Op::Peers { deadline }
            | Op::Files { deadline, .. }
            | Op::Get { deadline, .. }
            | Op::Msg { deadline, .. }
            | Op::WaitPeer { deadline, .. }
            | Op::Connect { deadline, .. } => Some(*deadline),
            Op::Sleep { until } => Some(*until),
            Op::Find(f) => Some(f.deadline),
            Op::Await { .. } | Op::Rescan { .. } | Op::Folder => None,
        }
    }
}

/// Progress was made: push the command's deadline out.
pub(super) fn bump(op: &mut Op, now: Instant) {
    match op {
        Op::Files { deadline, .. } | Op::Get { deadline, .. } | Op::Msg { deadline, .. } => {
            *deadline = now + STEP_TIMEOUT
        }
        _ => {}
    }
}
