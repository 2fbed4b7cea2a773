//! The user's commands, run one at a time in the foreground. Each command that needs another
//! peer first reaches it (asking the tracker for its address if needed), then sends its request
//! and finishes on the answer. Every step is bounded by a deadline.

use super::find::{Find, FindFor};
use super::node::DiskWait;
use super::node::{ConnectPurpose, Mode, PeerNode, Purpose};
use super::partial::Destination;
use super::sessions::MAX_CHAT_LEN;
use super::transfer::DownloadId;
use crate::names::{check_file_name, printable};
use crate::reactor::ConnId;
use crate::repl::command::{Command, help_for, help_text};
use crate::repl::event::{Event, Failure, FileEntry};
use crate::wire::Sha256;
use crate::wire::{FileInfo, Message};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A command waiting on the network gives up after this long without progress.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// First wait before reaching a peer again that refused us as busy; doubles up to the last.
const BUSY_FIRST_RETRY: Duration = Duration::from_millis(500);
const BUSY_MAX_RETRY: Duration = Duration::from_secs(5);
/// How often `wait-peer` asks the tracker again.
const WAIT_PEER_POLL: Duration = Duration::from_millis(250);

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
    /// `get` only: the manifest was asked for this file.
    AskedManifest(ConnId, FileInfo),
    /// `get` only: a file already stands under that name at home; it is being hashed (a disk
    /// job) to see whether it is this one. The connection stays ready for the manifest.
    CheckingDestination(ConnId, FileInfo),
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
    },
    Get {
        peer: String,
        file: String,
        step: Step,
        deadline: Instant,
        /// Every source (the first is `peer`) and the content a search found.
        swarm: Option<(Vec<String>, Sha256)>,
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
    /// `connect ADDR`: until whoever answers there completes the handshake (`exchange.rs`).
    Connect {
        addr: std::net::SocketAddr,
        deadline: Instant,
    },
    /// `rescan`: until its scan on the hash worker ends (`hashing.rs`).
    Rescan {
        job: super::hash_worker::JobId,
    },
}

impl Op {
    fn peer(&self) -> Option<&str> {
        match self {
            Op::Files { peer, .. } | Op::Get { peer, .. } | Op::Msg { peer, .. } => Some(peer),
            _ => None,
        }
    }

    fn step(&self) -> Option<&Step> {
        match self {
            Op::Files { step, .. } | Op::Get { step, .. } | Op::Msg { step, .. } => Some(step),
            _ => None,
        }
    }

    fn step_mut(&mut self) -> Option<&mut Step> {
        match self {
            Op::Files { step, .. } | Op::Get { step, .. } | Op::Msg { step, .. } => Some(step),
            _ => None,
        }
    }

    /// When the command gives up; `None` for those that end with what they wait for (its
    /// downloads, its scan), which keep their own clocks.
    fn deadline(&self) -> Option<Instant> {
        match self {
            Op::Peers { deadline }
            | Op::Files { deadline, .. }
            | Op::Get { deadline, .. }
            | Op::Msg { deadline, .. }
            | Op::WaitPeer { deadline, .. }
            | Op::Connect { deadline, .. } => Some(*deadline),
            Op::Sleep { until } => Some(*until),
            Op::Find(f) => Some(f.deadline),
            Op::Await { .. } | Op::Rescan { .. } => None,
        }
    }
}

impl PeerNode {
    pub(super) fn start_command(&mut self, line: &str, now: Instant) {
        let cmd = match crate::repl::parse(line) {
            Ok(Some(cmd)) => cmd,
            Ok(None) => return,
            Err(e) => return self.fail_op(&e),
        };
        tracing::debug!("command {cmd:?}");
        let deadline = now + STEP_TIMEOUT;
        let reaching = Step::Reaching { refreshed: false };
        self.busy_wait = None;
        match cmd {
            Command::Peers => {
                if self.request_peer_list() {
                    self.op = Some(Op::Peers { deadline });
                } else {
                    self.print_peers(now);
                }
            }
            Command::Files { peer } => {
                self.op = Some(Op::Files {
                    peer,
                    step: reaching,
                    deadline,
                })
            }
            Command::Get { peer, file } => {
                let pinned =
                    peer.filter(|p| self.known.contains_key(p) || self.ready_session(p).is_some());
                match pinned {
                    Some(peer) => {
                        if let Err(e) = check_file_name(&file) {
                            return self.fail_op(&e);
                        }
                        self.op = Some(Op::Get {
                            peer,
                            file,
                            step: reaching,
                            deadline,
                            swarm: None,
                        })
                    }
                    None => {
                        let query = crate::repl::command::get_query(line).unwrap_or(file);
                        return self.start_find(query, FindFor::Get, now);
                    }
                }
            }
            Command::Search { text } => return self.start_find(text, FindFor::Search, now),
            Command::Msg { peer, text } => {
                if text.len() > MAX_CHAT_LEN {
                    return self.fail_op(&format!(
                        "message is {} bytes; the limit is {MAX_CHAT_LEN}",
                        text.len()
                    ));
                }
                self.op = Some(Op::Msg {
                    peer,
                    text,
                    step: reaching,
                    deadline,
                })
            }
            Command::Shared => self.print_shared(),
            Command::Rescan => self.start_rescan(now),
            Command::Help { topic: None } => self.ui.line(&help_text()),
            Command::Help { topic: Some(name) } => match help_for(&name) {
                Ok(text) => self.ui.line(&text),
                Err(e) => self.fail_op(&e),
            },
            Command::Quit => {
                self.announce_unfinished(true);
                self.exit(0)
            }
            Command::WaitPeer { name, seconds } => {
                self.op = Some(Op::WaitPeer {
                    name,
                    deadline: now + Duration::from_secs_f64(seconds),
                    next_poll: now,
                });
                self.op_tick(now);
            }
            Command::Downloads => {
                let (downloads, bad) = self.describe_downloads();
                self.ui.event(&Event::Downloads { downloads });
                for line in bad {
                    self.ui.warn(&line);
                }
            }
            Command::Resume { file } => self.start_resume(file, now),
            Command::Cancel { file } => match self.cancel_download(&file) {
                Ok(()) => self.ui.event(&Event::Cancelled { file }),
                Err(e) => self.fail_op(&e),
            },
            Command::Connect { addr } => self.start_connect(&addr, now),
            Command::Limit { set } => self.limit(set),
            Command::Sleep { seconds } => {
                self.op = Some(Op::Sleep {
                    until: now + Duration::from_secs_f64(seconds),
                })
            }
        }
        self.op_advance(now);
    }

    /// The command succeeded.
    pub(super) fn finish_op(&mut self) {
        self.op = None;
        self.forget_op_requests();
        self.ui.finish_progress();
    }

    /// The command failed: say why; in a batch, stop with status 1. Downloads it started go
    /// on in the background (or stay paused, resumable).
    pub(super) fn fail_op(&mut self, why: &str) {
        self.fail_op_as(Failure::Failed, why);
    }

    /// The command failed in a way scripts can tell apart: in a batch, the exit status is
    /// `kind`'s (README, "Exit status").
    pub(super) fn fail_op_as(&mut self, kind: Failure, why: &str) {
        tracing::debug!("command failed ({kind:?}): {why}");
        self.op = None;
        self.forget_op_requests();
        self.ui.finish_progress();
        self.ui.error_as(kind, why);
        if matches!(self.cfg.mode, Mode::Batch { .. }) {
            self.exit(kind.exit_code());
        }
    }

    /// Ctrl-C while a command runs (REPL): the command stops; a download it waits for is
    /// paused with its partial file and record kept (`resume` continues it). False when no
    /// command runs.
    pub(super) fn interrupt_foreground(&mut self, now: Instant) -> bool {
        match &self.op {
            None => false,
            Some(Op::Await { ids }) => {
                for id in ids.clone() {
                    self.pause_interrupted(id, now);
                }
                if self.op.is_some() {
                    self.fail_op_as(Failure::Unfinished, "interrupted");
                }
                true
            }
            Some(Op::Rescan { job }) => {
                let job = *job;
                self.cancel_scan(job);
                self.fail_op("interrupted");
                true
            }
            Some(_) => {
                self.fail_op("interrupted");
                true
            }
        }
    }

    /// `get FILE` found its content at `sources`: fetch it from all of them, under `name`.
    pub(super) fn get_from(
        &mut self,
        sources: Vec<String>,
        name: String,
        info: FileInfo,
        now: Instant,
    ) {
        if let Err(e) = check_file_name(&name) {
            return self.fail_op(&e);
        }
        let Some(first) = sources.first().cloned() else {
            return self.fail_op("no source");
        };
        self.op = Some(Op::Get {
            peer: first,
            file: name,
            step: Step::Reaching { refreshed: true },
            deadline: now + STEP_TIMEOUT,
            swarm: Some((sources, info.sha256)),
        });
        self.op_advance(now);
    }

    /// Answers to the finished command's requests are dropped when they arrive.
    fn forget_op_requests(&mut self) {
        self.pending
            .retain(|_, p| !matches!(p.purpose, super::node::Purpose::Op));
    }

    /// `resume FILE`, or `resume` for every unfinished download.
    fn start_resume(&mut self, file: Option<String>, now: Instant) {
        let names: Vec<String> = match file {
            Some(file) => vec![file],
            None => {
                let mut names: Vec<String> = super::resume::list(&self.cfg.downloads_dir)
                    .0
                    .into_iter()
                    .map(|r| r.file_name)
                    .collect();
                for dl in self.downloads.values() {
                    if !names.iter().any(|n| n == dl.file_name()) {
                        names.push(dl.file_name().to_string());
                    }
                }
                if names.is_empty() {
                    self.ui.line("no unfinished downloads");
                    return;
                }
                names
            }
        };
        let single = names.len() == 1;
        let mut ids = BTreeSet::new();
        for name in names {
            match self.resume_from_record(&name, now) {
                Ok(Some(id)) => {
                    ids.insert(id);
                }
                Ok(None) => {}
                Err(e) if single => return self.fail_op(&e),
                Err(e) => self.ui.warn(&e),
            }
        }
        self.await_downloads(ids);
    }

    /// The command now waits for these downloads, with a progress bar on a terminal.
    fn await_downloads(&mut self, ids: BTreeSet<DownloadId>) {
        let ids: BTreeSet<DownloadId> = ids
            .into_iter()
            .filter(|id| self.downloads.contains_key(id))
            .collect();
        if ids.is_empty() {
            return self.finish_op();
        }
        let total = ids.iter().map(|id| self.downloads[id].size()).sum();
        let label = match ids.len() {
            1 => printable(self.downloads[ids.first().expect("one")].file_name()),
            n => format!("{n} downloads"),
        };
        self.ui.start_progress(&label, total);
        self.op = Some(Op::Await { ids });
        self.show_progress();
    }

    /// The downloads the foreground command waits for.
    pub(super) fn op_download_ids(&self) -> Vec<DownloadId> {
        match &self.op {
            Some(Op::Await { ids }) => ids.iter().copied().collect(),
            _ => Vec::new(),
        }
    }

    /// A download ended: completed (`Ok(download_done event)`), failed or paused
    /// (`Err((kind, why))`).
    pub(super) fn download_done(
        &mut self,
        id: DownloadId,
        result: Result<Event, (Failure, String)>,
    ) {
        let awaited = match &mut self.op {
            Some(Op::Await { ids }) => ids.remove(&id),
            _ => false,
        };
        match result {
            Ok(event) => {
                if awaited && self.op_download_ids().is_empty() {
                    self.finish_op();
                }
                self.ui.event(&event);
            }
            Err((kind, why)) if awaited => self.fail_op_as(kind, &why),
            Err((kind, why)) => self.ui.error_as(kind, &why),
        }
    }

    /// A download lost its source. In the REPL the prompt comes back and the download goes on
    /// waiting in the background; a batch keeps waiting (up to `--retry-for`).
    pub(super) fn op_download_waiting(&mut self, id: DownloadId) {
        if self.cfg.mode != Mode::Repl {
            return;
        }
        let Some(Op::Await { ids }) = &mut self.op else {
            return;
        };
        if ids.remove(&id) {
            self.ui
                .notice("the download goes on in the background; `downloads` shows it");
            if ids.is_empty() {
                self.finish_op();
            }
        }
    }

    /// Moves a command that is reaching its peer forward as far as it can go now.
    pub(super) fn op_advance(&mut self, now: Instant) {
        let Some(op) = &mut self.op else { return };
        let Some(peer) = op.peer().map(str::to_string) else {
            return;
        };
        let Some(Step::Reaching { refreshed }) = op.step_mut() else {
            return;
        };
        let mut refreshed_now = *refreshed;
        let reached = self.reach(&peer, &mut refreshed_now);
        if let Some(Step::Reaching { refreshed }) = self.op.as_mut().and_then(Op::step_mut) {
            *refreshed = refreshed_now;
        }
        match reached {
            Err(e) => self.fail_op_as(Failure::Unreachable, &e),
            Ok(None) => {}
            Ok(Some(conn)) => self.ask(conn, now),
        }
    }

    /// A ready connection to `name`, or `None` while one is being set up.
    pub(super) fn reach(
        &mut self,
        name: &str,
        refreshed: &mut bool,
    ) -> Result<Option<ConnId>, String> {
        if name == self.cfg.name {
            return Err(format!("'{name}' is this peer"));
        }
        if let Some(conn) = self.ready_session(name) {
            return Ok(Some(conn));
        }
        if self.session_pending(name) {
            return Ok(None);
        }
        if let Some(known) = self.known.get(name) {
            let addr = known.addr;
            let name = name.to_string();
            self.connect(addr, ConnectPurpose::Peer { name, addr });
            return Ok(None);
        }
        if !*refreshed && self.request_peer_list_naming(Some(name)) {
            *refreshed = true;
            return Ok(None);
        }
        if self.tracker.list_in_flight {
            return Ok(None);
        }
        let mut hint = match crate::names::closest(name, self.known.iter().map(|(n, _)| n.as_str()))
        {
            Some(near) => format!("; did you mean {near}?"),
            None => String::new(),
        };
        if self.tracker.up().is_none() {
            hint.push_str(" (the tracker is unreachable)");
        }
        Err(format!("unknown peer '{}'{hint}", printable(name)))
    }

    /// `get`: asks `conn` for the manifest of `info` (nothing stands in the way at home).
    fn ask_manifest(&mut self, conn: ConnId, info: &FileInfo) {
        let sha256 = info.sha256;
        self.request(conn, Purpose::Op, |req| Message::GetManifest {
            req,
            sha256,
        });
    }

    /// `get`: what stands under the file's name in the downloads folder was checked (off the
    /// reactor). The same content: done, nothing fetched. Another file: the command fails,
    /// nothing is overwritten. Nothing there: ask for the manifest.
    pub(super) fn get_destination_checked(
        &mut self,
        result: Result<Destination, String>,
        now: Instant,
    ) {
        let Some(Op::Get {
            step: Step::CheckingDestination(..),
            ..
        }) = &self.op
        else {
            return; // the command ended meanwhile (interrupted, timed out)
        };
        let Some(Op::Get {
            peer,
            file,
            step: Step::CheckingDestination(conn, info),
            deadline,
            swarm,
        }) = self.op.take()
        else {
            unreachable!("matched just above");
        };
        match result {
            Err(e) => self.fail_op(&e),
            Ok(Destination::AlreadyThere) => {
                let path = self.cfg.downloads_dir.join(&file).display().to_string();
                let (size, sha256) = (info.size, info.sha256.to_string());
                self.ui
                    .event(&Event::already_there(file, path, size, sha256));
            }
            Ok(Destination::Free) => {
                self.ask_manifest(conn, &info);
                let mut op = Op::Get {
                    peer,
                    file,
                    step: Step::AskedManifest(conn, info),
                    deadline,
                    swarm,
                };
                bump(&mut op, now);
                self.op = Some(op);
            }
        }
    }

    /// Sends the command's request on a ready connection.
    fn ask(&mut self, conn: ConnId, now: Instant) {
        let text = match &self.op {
            Some(Op::Msg { text, .. }) => Some(text.clone()),
            _ => None,
        };
        match text {
            Some(text) => self.request(conn, Purpose::Op, |req| Message::Chat { req, text }),
            None => self.request(conn, Purpose::Op, |req| Message::ListFiles { req }),
        };
        if let Some(op) = &mut self.op {
            if let Some(step) = op.step_mut() {
                *step = Step::Asked(conn);
            }
            bump(op, now);
        }
    }

    pub(super) fn op_session_ready(&mut self, _conn: ConnId, now: Instant) {
        if matches!(self.op, Some(Op::Find(_))) {
            return self.find_advance(now);
        }
        self.op_advance(now);
    }

    pub(super) fn op_peer_list_arrived(&mut self, now: Instant) {
        match &self.op {
            Some(Op::Peers { .. }) => {
                self.finish_op();
                self.print_peers(now);
            }
            Some(Op::WaitPeer { .. }) => self.op_tick(now),
            Some(Op::Find(_)) => {
                self.find_peer_list_arrived(now);
                self.find_advance(now);
            }
            _ => self.op_advance(now),
        }
    }

    pub(super) fn peer_unreachable(&mut self, name: &str, why: &str, now: Instant) {
        if matches!(self.op, Some(Op::Find(_))) {
            return self.find_answer(name, None, now);
        }
        if self.op.as_ref().and_then(Op::peer) == Some(name) && !self.op_ask_tracker_again() {
            self.fail_op_as(Failure::Unreachable, why);
        }
    }

    /// `name` is known by a fresh address now (the one that failed gave way to another):
    /// whoever was reaching it tries that one at once.
    pub(super) fn peer_reach_again(&mut self, name: &str, now: Instant) {
        if self.op.as_ref().and_then(Op::peer) == Some(name) {
            self.op_advance(now);
        }
        if matches!(self.op, Some(Op::Find(_))) {
            self.find_advance(now);
        }
        self.downloads_peer_event(now);
    }

    /// The command could not reach its peer at the address we had: if the tracker was not
    /// asked during this command yet, ask it once for a fresh address (a peer that restarted
    /// on another port is listed at the new one) and go on when the list arrives. False if
    /// there is nothing more to try.
    fn op_ask_tracker_again(&mut self) -> bool {
        let Some(Step::Reaching { refreshed: false }) = self.op.as_ref().and_then(Op::step) else {
            return false;
        };
        let peer = self.op.as_ref().and_then(Op::peer).map(str::to_string);
        if !self.request_peer_list_naming(peer.as_deref()) {
            return false;
        }
        if let Some(Step::Reaching { refreshed }) = self.op.as_mut().and_then(Op::step_mut) {
            *refreshed = true;
        }
        true
    }

    pub(super) fn op_connection_lost(
        &mut self,
        conn: ConnId,
        name: &str,
        lost: Lost,
        why: &str,
        now: Instant,
    ) {
        let handshake_failed = lost != Lost::Established;
        if matches!(self.op, Some(Op::Find(_))) {
            let peer = self.find_peer_on(conn).unwrap_or_else(|| name.to_string());
            return self.find_answer(&peer, None, now);
        }
        let Some(op) = &mut self.op else { return };
        let on_this_conn = match op.step_mut() {
            Some(Step::Asked(c))
            | Some(Step::AskedManifest(c, _))
            | Some(Step::CheckingDestination(c, _)) => *c == conn,
            // Only a connection that never got through its handshake was this command's
            // attempt to reach the peer; another one closing (an old one we dropped) is not.
            Some(Step::Reaching { .. }) => handshake_failed && op.peer() == Some(name),
            Some(Step::Busy { .. }) | None => false,
        };
        if on_this_conn && lost == Lost::Busy {
            // "Try again later": a seeder at its connection cap. Wait and try again, within the
            // command's deadline, instead of failing at once.
            let wait = self.busy_wait.unwrap_or(BUSY_FIRST_RETRY);
            if let Some(step) = self.op.as_mut().and_then(Op::step_mut) {
                *step = Step::Busy {
                    retry_at: now + wait,
                    wait,
                };
            }
            self.ui.notice(&format!(
                "{} is busy ({why}); trying again in {:.1}s",
                printable(name),
                wait.as_secs_f64()
            ));
            return;
        }
        if on_this_conn && lost == Lost::Handshake {
            // Another address it is known by, or a fresh one from the tracker, before failing.
            if self.known.has_untried_address(name) {
                return self.op_advance(now);
            }
            if self.op_ask_tracker_again() {
                return;
            }
        }
        if on_this_conn {
            let why = format!("connection to {} lost: {why}", printable(name));
            self.fail_op_as(Failure::Unreachable, &why);
        }
    }

    /// The answer to the command's request.
    pub(super) fn op_answer(&mut self, conn: ConnId, msg: Message, now: Instant) {
        if let Message::Error { message, .. } = &msg
            && !matches!(self.op, Some(Op::Find(_)))
        {
            let peer = self
                .op
                .as_ref()
                .and_then(Op::peer)
                .unwrap_or("")
                .to_string();
            return self.fail_op(&format!("{peer}: {}", printable(message)));
        }
        let Some(op) = self.op.take() else { return };
        match (op, msg) {
            (Op::Files { peer, .. }, Message::Files { files, .. }) => {
                let files = files
                    .into_iter()
                    .map(|f| FileEntry {
                        name: f.name,
                        size: f.size,
                        sha256: f.sha256.to_string(),
                    })
                    .collect();
                self.ui.event(&Event::Files { peer, files });
            }
            (Op::Msg { peer, .. }, Message::ChatOk { .. }) => {
                self.ui.event(&Event::MessageDelivered { to: peer });
            }
            (Op::Find(find), msg) => {
                self.op = Some(Op::Find(find));
                if let Some(peer) = self.find_peer_on(conn) {
                    match msg {
                        Message::Files { files, .. } => self.find_answer(&peer, Some(files), now),
                        _ => self.find_answer(&peer, None, now),
                    }
                }
            }
            (
                Op::Get {
                    peer,
                    file,
                    deadline,
                    swarm,
                    ..
                },
                Message::Files { files, .. },
            ) => {
                let wanted = |f: &FileInfo| match &swarm {
                    Some((_, sha256)) => f.sha256 == *sha256,
                    None => f.name == file,
                };
                let Some(info) = files.into_iter().find(wanted) else {
                    return self
                        .fail_op(&format!("{peer} has no file named '{}'", printable(&file)));
                };
                let dest = self.cfg.downloads_dir.join(&file);
                let nothing_there = std::fs::symlink_metadata(&dest)
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
                let step = if nothing_there {
                    self.ask_manifest(conn, &info);
                    Step::AskedManifest(conn, info)
                } else {
                    // Something is there: hashing it may take seconds, off the reactor.
                    let job = self.disk.check_destination(dest, info.sha256);
                    self.disk_waiting.insert(job, DiskWait::GetDestination);
                    Step::CheckingDestination(conn, info)
                };
                let mut op = Op::Get {
                    peer,
                    file,
                    step,
                    deadline,
                    swarm,
                };
                bump(&mut op, now);
                self.op = Some(op);
            }
            (
                Op::Get {
                    peer,
                    file,
                    step: Step::AskedManifest(_, info),
                    swarm,
                    ..
                },
                Message::Manifest {
                    sha256,
                    size,
                    chunk_size,
                    chunk_hashes,
                    ..
                },
            ) => {
                // A lying manifest ends the command and that connection, like a chunk of the
                // wrong length does: the next command starts afresh.
                if sha256 != info.sha256 {
                    self.close(conn);
                    return self.fail_op(&format!("{peer} sent the manifest of another file"));
                }
                let manifest = match super::manifest::Manifest::from_wire(
                    sha256,
                    size,
                    chunk_size,
                    &chunk_hashes,
                    Some(info.size),
                ) {
                    Ok(m) => m,
                    Err(e) => {
                        self.close(conn);
                        return self.fail_op(&format!("{peer} sent a bad manifest: {e}"));
                    }
                };
                let sources = swarm.map_or_else(|| vec![peer], |(all, _)| all);
                match self.begin_download(&sources, &file, manifest, now) {
                    Ok(id) => {
                        self.await_downloads(BTreeSet::from([id]));
                        self.start_transfer(id, now);
                    }
                    Err(e) => self.fail_op(&e),
                }
            }
            (op, msg) => {
                let peer = op.peer().unwrap_or("").to_string();
                self.fail_op(&format!(
                    "{peer} answered with an unexpected {}",
                    msg.kind()
                ));
            }
        }
    }

    pub(super) fn op_tick(&mut self, now: Instant) {
        let Some(op) = &mut self.op else { return };
        let deadline = op.deadline();
        if let Some(step) = op.step_mut()
            && let Step::Busy { retry_at, wait } = *step
            && now >= retry_at
            && deadline.is_none_or(|d| now < d)
        {
            *step = Step::Reaching { refreshed: true };
            self.busy_wait = Some((wait * 2).min(BUSY_MAX_RETRY));
            return self.op_advance(now);
        }
        match op {
            Op::Sleep { until } if now >= *until => self.finish_op(),
            Op::WaitPeer {
                name,
                deadline,
                next_poll,
            } => {
                let name = name.clone();
                let (deadline, poll_due) = (*deadline, now >= *next_poll);
                if poll_due {
                    *next_poll = now + WAIT_PEER_POLL;
                }
                if self.known.contains_key(&name) || self.ready_session(&name).is_some() {
                    self.ui.event(&Event::PeerKnown { name });
                    self.finish_op();
                } else if now >= deadline {
                    let why = format!("{} did not appear in time", printable(&name));
                    self.fail_op_as(Failure::Unreachable, &why);
                } else if poll_due && !self.request_peer_list_naming(Some(&name)) {
                    // No tracker: ask the peers we are connected to instead.
                    self.exchange_refresh(now);
                }
            }
            Op::Await { .. } | Op::Sleep { .. } | Op::Rescan { .. } => {}
            Op::Find(f) if now >= f.deadline => self.find_timed_out(now),
            other if other.deadline().is_some_and(|d| now >= d) => {
                let peer = other.peer().unwrap_or("the tracker").to_string();
                self.fail_op_as(
                    Failure::Unreachable,
                    &format!("timed out waiting for {peer}"),
                );
            }
            _ => {}
        }
    }

    pub(super) fn op_deadline(&self) -> Option<Instant> {
        match &self.op {
            None | Some(Op::Await { .. }) | Some(Op::Rescan { .. }) => None,
            Some(Op::WaitPeer {
                deadline,
                next_poll,
                ..
            }) => Some(*deadline.min(next_poll)),
            Some(op) => match (op.step(), op.deadline()) {
                (Some(Step::Busy { retry_at, .. }), Some(d)) => Some(d.min(*retry_at)),
                (_, deadline) => deadline,
            },
        }
    }

    fn print_shared(&mut self) {
        // Files finished by this run are served too (from downloads/), but they are not in
        // the shared folder and are gone after a restart: listed apart.
        let (files, seeding): (Vec<FileEntry>, Vec<FileEntry>) = {
            let (in_dir, elsewhere): (Vec<_>, Vec<_>) = self
                .index
                .files()
                .iter()
                .partition(|f| f.path.parent() == Some(self.cfg.shared_dir.as_path()));
            let entry = |f: &super::index::SharedFile| FileEntry {
                name: f.name.clone(),
                size: f.manifest.size,
                sha256: f.manifest.sha256.to_string(),
            };
            (
                in_dir.into_iter().map(entry).collect(),
                elsewhere.into_iter().map(entry).collect(),
            )
        };
        let dir = self.cfg.shared_dir.display().to_string();
        self.ui.event(&Event::Shared {
            dir,
            files,
            seeding,
        });
        self.note_hashing();
    }
}

/// Progress was made: push the command's deadline out.
fn bump(op: &mut Op, now: Instant) {
    match op {
        Op::Files { deadline, .. } | Op::Get { deadline, .. } | Op::Msg { deadline, .. } => {
            *deadline = now + STEP_TIMEOUT
        }
        _ => {}
    }
}
