//! The peer node: everything a peer does, driven by the reactor through [`Driver`].
//!
//! The work is split by job across files, each adding an `impl PeerNode` block:
//! `tracker_link.rs` (registration, heartbeats, peer list), `sessions.rs` (peer connections,
//! handshake, answering requests), `ops.rs` (the user's commands), `reaching.rs` (reaching a
//! command's peer), `get.rs` (the steps of `get`), `transfer.rs` (downloads). This file holds
//! the state they share and the dispatch. What the node reports goes to its [`Frontend`] as
//! [`Event`]s; commands come in as lines the front end's parser reads, or as [`Command`]s.

use super::command::{Command, LimitKind, Parser};
use super::disk_jobs::{DiskJobId, DiskJobs, Outcome};
use super::download::ChunkIndex;
use super::download::DownloadId;
use super::event::{Event, Failure, Notice, Problem};
use super::exchange::{Bootstrap, Discovery};
use super::frontend::{Frontend, Progress};
use super::index::SharedIndex;
use super::lan::LanConfig;
use super::op::Op;
use super::peer_table::PeerTable;
use super::session::Session;
use super::tracker_link::TrackerLink;
use super::transfer_state::Transfer;
use crate::identity::PeerId;
use crate::reactor::{Action, CloseReason, ConnId, ConnectTag, Control, Driver, Signal};
use crate::wire::{Message, encode_message};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How the peer takes commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Lines typed by a person; errors are printed and the REPL goes on.
    Repl,
    /// Lines from a file or stdin; the first failure exits with status 1.
    Batch { then_serve: bool },
    /// No commands: serve until a signal.
    Serve,
}

#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub name: String,
    pub tracker: SocketAddr,
    /// `--tracker-id`: the key the tracker link must prove (any, if `None`).
    pub tracker_id: Option<PeerId>,
    pub shared_dir: PathBuf,
    pub downloads_dir: PathBuf,
    pub mode: Mode,
    /// How long a download waits for a source that went away before it pauses.
    pub retry_for: Duration,
    /// Peers to connect to at start (`--peer`), tracker or not.
    pub bootstrap: Vec<SocketAddr>,
    /// LAN discovery by multicast, unless `--no-lan`.
    pub lan: Option<LanConfig>,
    /// Continue the unfinished downloads found at start, in the background.
    pub resume_on_start: bool,
    /// Upload and download rate limits (`--max-down` and friends, the `limit` command).
    pub rate_limits: crate::reactor::RateLimits,
    /// The Mainline DHT, with `--dht`: how its node starts (`app.rs` starts it).
    pub dht: Option<super::dht_worker::DhtOptions>,
    /// Asking the router for a port mapping (`port_map_glue.rs`), unless `--no-port-map`
    /// (or LAN traffic is off and no `--gateway` is given).
    pub port_map: Option<super::port_map_glue::PortMapConfig>,
    /// TCP hole punching through the relay (PROTOCOL.md §18.8); off with `--no-punch`.
    pub punch: bool,
}

/// What a disk job's result is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskWait {
    /// The check of this download's partial file (and destination, on a resume).
    Download(DownloadId),
    /// The foreground `get`'s look at what stands under the file's name at home.
    GetDestination,
    /// A checkpoint of this download (fsync and record, off the reactor).
    Checkpoint(DownloadId),
}

/// What an outgoing connection is for.
#[derive(Clone, Debug)]
pub enum ConnectPurpose {
    Tracker,
    Peer {
        name: String,
        addr: SocketAddr,
    },
    /// An address whose peer we learn from its `Hello` (`--peer`, `connect`).
    Bootstrap(Bootstrap),
}

/// What an answer to one of our requests belongs to.
#[derive(Clone, Copy, Debug)]
pub enum Purpose {
    /// The foreground command.
    Op,
    /// A chunk the `get` asked before its manifest came (`first_flight.rs`).
    FirstFlight,
    /// The same, once download `dl` took it over as its request for chunk `index`.
    FirstFlightOf { dl: DownloadId, index: ChunkIndex },
    /// Chunk `index` of download `dl`.
    Chunk { dl: DownloadId, index: ChunkIndex },
    /// The manifest a reconnected source sends, to confirm it still has the same bytes.
    DownloadManifest(DownloadId),
    /// The chunk map of a source of download `dl`.
    DownloadHave(DownloadId),
    /// Peer exchange: the answer to our `GetPeers`.
    Exchange,
    /// The manifest of a content of the folder being fetched (`folder_fetch.rs`).
    FolderManifest(crate::wire::ContentId),
}

#[derive(Clone, Copy, Debug)]
pub struct Pending {
    pub conn: ConnId,
    pub purpose: Purpose,
}

pub struct PeerNode {
    pub(super) cfg: PeerConfig,
    /// Our peer id: the key our links prove.
    pub(super) id: PeerId,
    /// Names pinned to keys (`pins.rs`, `trust.rs`).
    pub(super) pins: super::pins::Pins,
    pub(super) listen_port: u16,
    /// The address the listener is bound to (unspecified: every address), so a `Hello` never
    /// tells a peer to call back where nobody listens (`sessions.rs`).
    pub(super) listen_ip: std::net::IpAddr,
    /// Where everything the node reports goes (`frontend.rs`).
    pub(super) ui: Box<dyn Frontend>,
    pub(super) index: SharedIndex,
    pub(super) actions: VecDeque<Action>,
    /// The next request id (the first is 1: 0 is never issued).
    next_request: u64,
    /// The last connect tag and download id handed out.
    next_tag: u64,
    next_download: u64,
    pub(super) tracker: TrackerLink,
    pub(super) sessions: HashMap<ConnId, Session>,
    pub(super) connecting: HashMap<ConnectTag, ConnectPurpose>,
    pub(super) pending: HashMap<u64, Pending>,
    /// Every peer we know of, whatever the source (`peer_table.rs`).
    pub(super) known: PeerTable,
    /// Peer exchange, `--peer`/`connect`, the peer cache, LAN (`exchange.rs`, `lan.rs`).
    pub(super) discovery: Discovery,
    /// Input waiting for the current command to finish.
    queue: VecDeque<Input>,
    /// Makes commands of input lines (the front end's, `set_parser`).
    parse: Option<Parser>,
    pub(super) op: Option<Op>,
    /// The chunk requests the `get` sent right behind its `GetManifest` (`first_flight.rs`).
    pub(super) first_flight: Option<super::first_flight::FirstFlight>,
    pub(super) downloads: BTreeMap<DownloadId, Transfer>,
    /// The folder being fetched, if any (`folder_fetch.rs`).
    pub(super) folder: Option<super::folder_job::FolderJob>,
    /// Downloads that are contents of a folder (this one or one given up on): their ends are
    /// the folder's to report, and their files are not shared under their content-id names.
    pub(super) folder_downloads: std::collections::HashSet<DownloadId>,
    /// `resume NAME` of a folder: its name and checked listing, until its source lists its
    /// files (`folder_fetch.rs`).
    pub(super) folder_resume: Option<(String, super::folder::manifest::FolderManifest)>,
    /// `get tree1:PREFIX` found the folder at these peers: all are its sources.
    pub(super) folder_swarm: Option<Vec<String>>,
    /// Commands wait until the first contact with the tracker has succeeded or failed, so a
    /// script's first `get` already knows the other peers.
    pub(super) ready: bool,
    pub(super) ready_deadline: Instant,
    pub(super) exiting: bool,
    /// The wait before the current command reaches a busy peer again (`ops.rs`).
    pub(super) busy_wait: Option<std::time::Duration>,
    /// Scanning and hashing the shared folder on the hash worker (`hashing.rs`).
    pub(super) hashing: super::hashing_state::Hashing,
    /// Disk work off the reactor (checking partial files), and which download each job is for.
    pub(super) disk: DiskJobs,
    pub(super) disk_waiting: HashMap<DiskJobId, DiskWait>,
    /// Threads that check received chunks' SHA-256 (`chunk_check.rs`); without them the
    /// reactor's thread checks each chunk as it comes.
    pub(super) checker: Option<super::chunk_check::ChunkChecker>,
    /// Checked chunks of other downloads, taken from the checker while one download was
    /// being driven (`transfer.rs`, when the checker was full): handled once that is done.
    pub(super) checked_elsewhere: Vec<super::chunk_check::Checked>,
    /// The Mainline DHT, with `--dht` (`dht_glue.rs`).
    pub(super) dht: Option<Box<super::dht_glue::DhtLink>>,
    /// The router's port mapping, unless off (`port_map_glue.rs`).
    pub(super) port_map: Option<Box<super::port_map_glue::PortMapLink>>,
    /// UPnP-IGD, the fallback after PCP and NAT-PMP, unless off (`upnp_glue.rs`).
    pub(super) upnp: Option<Box<super::upnp_glue::UpnpLink>>,
    /// Relayed links: connections to the relay and which connections are relayed
    /// (`relay_client.rs`, `relay_glue.rs`).
    pub(super) relay: super::relay_client::RelayClient,
    /// `--resume-on-start`, done at the first tick: by then the disk jobs run on their threads,
    /// so checking big partial files never holds up the start.
    resume_at_start: bool,
}

/// Input that waits its turn: commands run one at a time, after start-up.
#[derive(Debug)]
enum Input {
    Line(String),
    Command(Command),
    /// Ctrl-D, or the end of the batch.
    Ended,
}

/// Longest wait for the tracker before commands run anyway.
const STARTUP_GRACE: Duration = Duration::from_secs(3);

impl PeerNode {
    /// A peer named by `cfg` whose links prove the key of `id` (the reactor's identity).
    pub fn new(
        cfg: PeerConfig,
        id: PeerId,
        index: SharedIndex,
        listen_port: u16,
        ui: impl Frontend + 'static,
        now: Instant,
    ) -> PeerNode {
        // The link a peer starts with: it registers `name` with `listen_port`, jitter seeded
        // afresh.
        let seed = super::jitter::random_seed();
        let tracker = TrackerLink::new(cfg.tracker, &cfg.name, listen_port, seed, now);
        let cache_path = super::peer_cache::peer_cache_path(&cfg.downloads_dir);
        let known = PeerTable::new(&cfg.name);
        let mut node = PeerNode {
            cfg,
            id,
            pins: Default::default(),
            listen_port,
            listen_ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
            ui: Box::new(ui),
            index,
            actions: VecDeque::new(),
            next_request: 1,
            next_tag: 0,
            next_download: 0,
            tracker,
            sessions: HashMap::new(),
            connecting: HashMap::new(),
            pending: HashMap::new(),
            known,
            discovery: Discovery::new(cache_path, now),
            queue: VecDeque::new(),
            parse: None,
            op: None,
            first_flight: None,
            downloads: BTreeMap::new(),
            folder: None,
            folder_downloads: Default::default(),
            folder_resume: None,
            folder_swarm: None,
            ready: false,
            ready_deadline: now + STARTUP_GRACE,
            exiting: false,
            busy_wait: None,
            disk: DiskJobs::inline(),
            disk_waiting: HashMap::new(),
            checker: None,
            checked_elsewhere: Vec::new(),
            hashing: Default::default(),
            dht: None,
            port_map: None,
            upnp: None,
            relay: Default::default(),
            resume_at_start: false,
        };
        if node.cfg.punch {
            node.relay.punch_from(id, listen_port);
        }
        if !node.cfg.rate_limits.is_unlimited() {
            let limits = node.cfg.rate_limits;
            node.actions.push_back(Action::SetRateLimits(limits));
        }
        // Temporary state files a crash left behind are of no use to anyone.
        super::clean_crash_leftovers(&node.cfg.downloads_dir);
        if node.cfg.resume_on_start {
            node.resume_at_start = true;
        } else {
            node.announce_unfinished(false, now);
        }
        node.discovery_start(now);
        node
    }

    /// A fresh request id (the `req` of a request on the wire). Request ids, connect tags and
    /// download ids come from counters of their own, so one can never pass for another (an
    /// answer naming a download id used to be taken for a late answer to a request).
    pub(super) fn next_request_id(&mut self) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        id
    }

    /// Whether request id `id` was handed out by [`Self::next_request_id`] (ids only grow).
    pub(super) fn id_was_issued(&self, id: u64) -> bool {
        id > 0 && id < self.next_request
    }

    pub(super) fn next_connect_tag(&mut self) -> ConnectTag {
        self.next_tag += 1;
        ConnectTag(self.next_tag)
    }

    pub(super) fn next_download_id(&mut self) -> DownloadId {
        self.next_download += 1;
        DownloadId(self.next_download)
    }

    /// `limit`: sets one rate limit (the reactor applies it at once), then shows them all.
    pub(super) fn limit(&mut self, set: Option<(LimitKind, Option<u64>)>) {
        if let Some((kind, rate)) = set {
            let l = &mut self.cfg.rate_limits;
            match kind {
                LimitKind::Down => l.down = rate,
                LimitKind::Up => l.up = rate,
                LimitKind::DownPerPeer => l.down_per_peer = rate,
                LimitKind::UpPerPeer => l.up_per_peer = rate,
            }
            let limits = *l;
            self.actions.push_back(Action::SetRateLimits(limits));
        }
        let l = self.cfg.rate_limits;
        self.ui.event(&Event::Limits {
            down: l.down,
            up: l.up,
            down_per_peer: l.down_per_peer,
            up_per_peer: l.up_per_peer,
            exempt_loopback: l.exempt_loopback,
        });
    }

    pub(super) fn send(&mut self, conn: ConnId, msg: &Message) {
        self.actions
            .push_back(Action::Send(conn, encode_message(msg)));
    }

    /// Sends a request and remembers what its answer is for.
    pub(super) fn request(
        &mut self,
        conn: ConnId,
        purpose: Purpose,
        make: impl FnOnce(u64) -> Message,
    ) -> u64 {
        let req = self.next_request_id();
        self.pending.insert(req, Pending { conn, purpose });
        let msg = make(req);
        self.send(conn, &msg);
        req
    }

    /// Dials `addr`; the handshake must prove `expected`, if given (a name's pinned key, or
    /// the key whoever told us of the address listed).
    pub(super) fn connect(
        &mut self,
        addr: SocketAddr,
        purpose: ConnectPurpose,
        expected: Option<PeerId>,
    ) {
        let tag = self.next_connect_tag();
        self.connecting.insert(tag, purpose);
        self.actions.push_back(Action::Connect(addr, tag, expected));
    }

    /// Closes a connection. It stops counting as a way to reach its peer at once, before the
    /// reactor has carried the close out: the next command must open a new one.
    pub(super) fn close(&mut self, conn: ConnId) {
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.closing = true;
        }
        self.actions.push_back(Action::Close(conn));
    }

    /// Leaves the event loop with `code`, telling the tracker first.
    pub(super) fn exit(&mut self, code: i32) {
        if self.exiting {
            return;
        }
        self.exiting = true;
        self.stop_hashing();
        self.tracker_goodbye();
        // The one clock read left in the node: `exit` is reached from `fail_op` and its fifty
        // callers, which have no time to pass. It only stamps the last checkpoint and the
        // peer cache with the moment of leaving.
        let now = Instant::now();
        self.checkpoint_all(now);
        self.save_peer_cache(now);
        self.port_map_shutdown(now);
        self.upnp_shutdown();
        self.ui.progress(Progress::Finish);
        self.actions.push_back(Action::Exit(code));
    }

    /// Makes commands of input lines with `parse` (the front end's). Without one, every line
    /// fails ([`Problem::NoParser`]).
    pub fn set_parser(&mut self, parse: Parser) {
        self.parse = Some(parse);
    }

    /// Runs `cmd` when its turn comes, like a line of input: after the command before it and
    /// once start-up is done.
    pub fn handle_command(&mut self, cmd: Command, now: Instant) {
        self.queue.push_back(Input::Command(cmd));
        self.take_input(now);
    }

    /// The listener is bound to `ip` only (default: every address).
    pub fn set_listen_ip(&mut self, ip: std::net::IpAddr) {
        self.listen_ip = ip;
    }

    /// Uses `disk` for disk jobs (threads that wake the reactor) instead of running them inline.
    pub fn set_disk_jobs(&mut self, disk: DiskJobs) {
        // Jobs started inline before (unfinished downloads resumed at start) keep their results.
        self.disk.replace_with(disk);
    }

    /// Checks received chunks on `checker`'s threads instead of the reactor's.
    pub fn set_chunk_checker(&mut self, checker: super::chunk_check::ChunkChecker) {
        self.checker = Some(checker);
    }

    /// Handles every finished disk job.
    pub(super) fn disk_reports(&mut self, now: Instant) {
        while let Some(done) = self.disk.try_recv() {
            let Some(wait) = self.disk_waiting.remove(&done.job) else {
                continue;
            };
            match (wait, done.outcome) {
                (DiskWait::Download(id), Outcome::PartialChecked { dest, intact }) => {
                    self.download_checked(id, dest, intact, now)
                }
                (DiskWait::GetDestination, Outcome::DestinationChecked(result)) => {
                    self.get_destination_checked(result, now)
                }
                (DiskWait::Checkpoint(id), Outcome::Checkpointed(result)) => {
                    self.download_checkpointed(id, result, now)
                }
                (wait, outcome) => {
                    tracing::error!("disk job for {wait:?} answered {outcome:?}; dropped")
                }
            }
        }
    }

    fn take_input(&mut self, now: Instant) {
        while self.disk.has_ready() {
            self.disk_reports(now);
        }
        while self.op.is_none()
            && !self.exiting
            && (self.ready || self.next_input_needs_no_list())
            && self.discovery.startup_done(now)
        {
            let Some(input) = self.queue.pop_front() else {
                let mut known = self.known.iter().map(|(name, _)| name.as_str());
                self.ui.waiting_for_input(&mut known);
                return;
            };
            match input {
                Input::Line(line) => match self.parse.map(|parse| parse(&line)) {
                    Some(Ok(Some(cmd))) => self.start_command(cmd, now),
                    Some(Ok(None)) => {}
                    Some(Err(e)) => self.fail_op(Problem::Input(e)),
                    None => self.fail_op(Problem::NoParser),
                },
                Input::Command(cmd) => self.start_command(cmd, now),
                Input::Ended => self.input_ended(),
            }
        }
    }

    /// Whether the next command may run before the tracker's first peer list: it talks to
    /// one peer whose address we already have (the peer cache, `--peer`, LAN), so its dial need
    /// not wait the three round trips of the tracker's connection and list (issue 17). If that
    /// address turns out stale, the command waits for the list (`reaching.rs`). Every other
    /// command waits, as before, so that a script's first `get FILE` or `peers` sees every
    /// peer the tracker knows.
    fn next_input_needs_no_list(&self) -> bool {
        let cmd = match self.queue.front() {
            Some(Input::Line(line)) => match self.parse.map(|parse| parse(line)) {
                Some(Ok(Some(cmd))) => cmd,
                _ => return false,
            },
            Some(Input::Command(cmd)) => cmd.clone(),
            _ => return false,
        };
        let peer = match &cmd {
            Command::Files { peer } | Command::Msg { peer, .. } => peer,
            Command::Get {
                peer: Some(peer), ..
            } => peer,
            _ => return false,
        };
        self.known.contains_key(peer)
    }

    fn input_ended(&mut self) {
        match self.cfg.mode {
            Mode::Repl | Mode::Batch { then_serve: false } => self.exit(0),
            Mode::Batch { then_serve: true } => {
                self.cfg.mode = Mode::Serve;
                self.ui.event(&Event::Notice(Notice::BatchFinished));
            }
            Mode::Serve => {}
        }
    }
}

impl Driver for PeerNode {
    fn handle_accepted(&mut self, conn: ConnId, remote: SocketAddr, peer: PeerId, now: Instant) {
        if self.relay.punch_accepted(conn, remote, peer, now) {
            return self.relay_drain(now);
        }
        self.sessions
            .insert(conn, Session::incoming(remote, peer, now));
    }

    fn handle_connected(
        &mut self,
        conn: ConnId,
        tag: ConnectTag,
        remote: SocketAddr,
        peer: PeerId,
        now: Instant,
    ) {
        if self.relay.owns_dial(tag) {
            return self.relay_connected(tag, conn, now);
        }
        if self.relay.owns_punch(tag) {
            self.relay.punch_connected(tag, conn, remote, peer, now);
            return self.relay_drain(now);
        }
        self.relay.inner_done(tag);
        match self.connecting.remove(&tag) {
            Some(ConnectPurpose::Tracker) => self.tracker_connected(conn, now),
            Some(ConnectPurpose::Peer { name, .. }) => {
                self.sessions
                    .insert(conn, Session::outgoing(name.clone(), remote, peer, now));
                self.send_hello(conn);
                self.op_pipeline(conn, &name);
            }
            Some(ConnectPurpose::Bootstrap(b)) => {
                self.bootstrap_connected(conn, remote, peer, b, now)
            }
            None => self.close(conn),
        }
    }

    fn handle_connect_failed(&mut self, tag: ConnectTag, error: io::Error, now: Instant) {
        if self.relay.owns_dial(tag) {
            self.relay_connect_failed(tag, &error, now);
            return self.take_input(now);
        }
        if self.relay.owns_punch(tag) {
            self.relay.punch_failed(tag, &error.to_string(), now);
            self.relay_drain(now);
            return self.take_input(now);
        }
        let relayed = self.relay.inner_done(tag);
        match self.connecting.remove(&tag) {
            Some(ConnectPurpose::Tracker) => self.tracker_connect_failed(&error.to_string(), now),
            Some(ConnectPurpose::Peer { name, addr }) => {
                self.dial_failed(&name, addr, &error, relayed, now)
            }
            Some(ConnectPurpose::Bootstrap(b)) => self.bootstrap_failed(b, &error.to_string(), now),
            None => {}
        }
        self.take_input(now);
    }

    fn handle_frame(&mut self, conn: ConnId, body: &[u8], now: Instant) {
        if self.relay.is_waiting(conn) {
            self.relay_frame(conn, body, now);
        } else if self.tracker.conn() == Some(conn) {
            self.tracker_frame(conn, body, now);
        } else {
            self.session_frame(conn, body, now);
        }
        self.take_input(now);
    }

    fn handle_chunk(&mut self, conn: ConnId, req: u64, index: u64, data: Vec<u8>, now: Instant) {
        if self.relay.is_waiting(conn) || self.tracker.conn() == Some(conn) {
            // Nobody sends those a chunk; they get it as the frame it was, and say so.
            let frame = encode_message(&Message::Chunk { req, index, data });
            return self.handle_frame(conn, &frame[4..], now);
        }
        self.session_message(conn, Message::Chunk { req, index, data }, now);
        self.take_input(now);
    }

    fn handle_closed(&mut self, conn: ConnId, reason: CloseReason, now: Instant) {
        if self.relay.is_waiting(conn) {
            self.relay_closed(conn, &reason.to_string(), now);
            return self.take_input(now);
        }
        self.relay.closed(conn, "");
        if self.tracker.conn() == Some(conn) {
            self.tracker_closed(conn, &reason.to_string(), now);
        } else {
            if let CloseReason::BadFrame(why) = &reason {
                self.downloads_protocol_fault(conn, why, now);
            }
            self.session_closed(conn, &reason.to_string(), now);
        }
        self.take_input(now);
    }

    fn handle_control(&mut self, ctl: Control, now: Instant) {
        match ctl {
            // A signal does not wait behind queued commands.
            Control::Shutdown(signal) => {
                // Ctrl-C (SIGINT, not SIGTERM) in the REPL stops the foreground command, not
                // the peer; a download it waited for stays resumable.
                if signal == Signal::Interrupt
                    && self.cfg.mode == Mode::Repl
                    && (self.interrupt_foreground(now) || self.interrupt_hashing())
                {
                } else if matches!(self.cfg.mode, Mode::Batch { then_serve: false })
                    && self.op.is_some()
                {
                    if self.op_download_ids().is_empty() {
                        let kind = Failure::Failed;
                        let problem = Problem::Interrupted;
                        self.ui.event(&Event::Error { kind, problem });
                        self.exit(kind.exit_code());
                    } else {
                        // Paused like Ctrl-C in the REPL, so the error says how far each
                        // download got and how to go on; the batch then ends with status 5.
                        self.interrupt_foreground(now);
                        self.exit(Failure::Unfinished.exit_code());
                    }
                } else {
                    self.exit(0);
                }
            }
            // Results of a helper thread never wait behind commands either.
            Control::Work => {
                self.checked_chunks(now);
                self.hashing_reports(now);
                self.disk_reports(now);
                self.lookup_reports(now);
                self.dht_reports(now);
                self.upnp_reports(now);
            }
            Control::Line(line) => {
                if self.cfg.mode == Mode::Repl {
                    self.ui.input_taken();
                }
                self.queue.push_back(Input::Line(line));
            }
            Control::EndOfInput => self.queue.push_back(Input::Ended),
        }
        self.take_input(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if !self.ready && now >= self.ready_deadline {
            self.ready = true;
        }
        if std::mem::take(&mut self.resume_at_start) {
            self.resume_in_background(now);
        }
        if self.tracker_may_act(now) {
            self.tracker_tick(now);
        }
        self.sessions_tick(now);
        self.relay_tick(now);
        self.downloads_tick(now);
        self.discovery_tick(now);
        self.dht_tick(now);
        self.port_map_tick(now);
        self.upnp_tick(now);
        self.op_tick(now);
        self.take_input(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let gate = (!self.ready).then_some(self.ready_deadline);
        [
            gate,
            self.tracker_hold().or(self.tracker.poll_timeout()),
            self.sessions_deadline(),
            self.relay.poll_timeout(),
            self.op_deadline(),
            self.downloads_deadline(),
            self.discovery_deadline(),
            self.dht_deadline(),
            self.port_map_deadline(),
            self.upnp_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn handle_datagram(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        self.lan_datagram(from, bytes, now);
    }

    fn handle_datagram_on(
        &mut self,
        socket: crate::reactor::UdpSocketId,
        from: SocketAddr,
        bytes: &[u8],
        now: Instant,
    ) {
        if !self.port_map_datagram(socket, from, bytes, now) {
            self.lan_datagram(from, bytes, now);
        }
    }

    fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::peer::Recorder;
    use crate::peer::event::Info;

    fn node(downloads: &std::path::Path) -> PeerNode {
        node_in(downloads, Mode::Serve, Recorder::new(), Instant::now())
    }

    fn node_in(downloads: &std::path::Path, mode: Mode, seen: Recorder, now: Instant) -> PeerNode {
        let cfg = PeerConfig {
            name: "Me".into(),
            tracker: SocketAddr::from(([127, 0, 0, 1], 9)),
            tracker_id: None,
            shared_dir: downloads.join("shared"),
            downloads_dir: downloads.to_path_buf(),
            mode,
            retry_for: Duration::from_secs(2),
            bootstrap: Vec::new(),
            lan: None,
            resume_on_start: false,
            rate_limits: Default::default(),
            dht: None,
            port_map: None,
            punch: true,
        };
        PeerNode::new(
            cfg,
            crate::identity::PeerId::from_public_key([1; 32]),
            SharedIndex::default(),
            4000,
            seen,
            now,
        )
    }

    /// A front end's parser, as far as these tests need one.
    fn parse(line: &str) -> Result<Option<Command>, String> {
        match line {
            "" => Ok(None),
            "help" => Ok(Some(Command::Help { topic: None })),
            "sleep" => Ok(Some(Command::Sleep { seconds: 60.0 })),
            other => Err(format!("no command {other}")),
        }
    }

    /// A node past its start-up wait (no tracker answered), commands running.
    fn started(dir: &std::path::Path, mode: Mode) -> (PeerNode, Recorder, Instant) {
        let (seen, t0) = (Recorder::new(), Instant::now());
        let mut n = node_in(dir, mode, seen.clone(), t0);
        n.set_parser(parse);
        let now = t0 + STARTUP_GRACE;
        n.handle_timeout(now);
        seen.take();
        (n, seen, now)
    }

    fn exits(n: &mut PeerNode) -> Vec<i32> {
        std::iter::from_fn(|| n.poll_action())
            .filter_map(|a| match a {
                Action::Exit(code) => Some(code),
                _ => None,
            })
            .collect()
    }

    /// Lines go through the front end's parser when their turn comes; what it refuses fails
    /// in its place with the parser's words, and a Command runs like a line.
    #[test]
    fn lines_are_parsed_by_the_front_ends_parser_and_commands_run_like_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (mut n, seen, now) = started(dir.path(), Mode::Serve);
        n.handle_control(Control::Line("help".into()), now);
        n.handle_control(Control::Line("".into()), now);
        n.handle_control(Control::Line("frob".into()), now);
        n.handle_command(Command::Help { topic: None }, now);
        let help = Event::Info(Info::Help { topic: None });
        let refused = Event::Error {
            kind: Failure::Failed,
            problem: Problem::Input("no command frob".into()),
        };
        assert_eq!(seen.take(), [help.clone(), refused, help]);
        assert!(exits(&mut n).is_empty(), "a server goes on after a failure");
    }

    #[test]
    fn a_node_without_a_parser_refuses_lines_and_a_batch_ends_on_them() {
        let dir = tempfile::tempdir().unwrap();
        let (seen, t0) = (Recorder::new(), Instant::now());
        let mode = Mode::Batch { then_serve: false };
        let mut n = node_in(dir.path(), mode, seen.clone(), t0);
        n.handle_timeout(t0 + STARTUP_GRACE);
        n.handle_control(Control::Line("help".into()), t0 + STARTUP_GRACE);
        let refused = Event::Error {
            kind: Failure::Failed,
            problem: Problem::NoParser,
        };
        assert!(seen.events().contains(&refused), "{:?}", seen.events());
        assert_eq!(exits(&mut n), [1]);
    }

    /// Ctrl-C in the REPL stops the command, not the peer; SIGTERM stops the peer. In a batch
    /// either one ends the run with the command's failure.
    #[test]
    fn the_signal_decides_what_a_shutdown_stops() {
        let dir = tempfile::tempdir().unwrap();
        let (mut n, seen, now) = started(dir.path(), Mode::Repl);
        n.handle_control(Control::Line("sleep".into()), now);
        n.handle_control(Control::Shutdown(Signal::Interrupt), now);
        let interrupted = Event::Error {
            kind: Failure::Failed,
            problem: Problem::Interrupted,
        };
        assert_eq!(seen.take(), std::slice::from_ref(&interrupted));
        assert!(exits(&mut n).is_empty(), "Ctrl-C stopped the command only");
        n.handle_control(Control::Shutdown(Signal::Terminate), now);
        assert_eq!(exits(&mut n), [0]);

        let dir = tempfile::tempdir().unwrap();
        let (mut n, seen, now) = started(dir.path(), Mode::Batch { then_serve: false });
        n.handle_control(Control::Line("sleep".into()), now);
        n.handle_control(Control::Shutdown(Signal::Terminate), now);
        assert_eq!(seen.take(), [interrupted]);
        assert_eq!(exits(&mut n), [1]);
    }

    /// Request ids, connect tags and download ids come from counters of their own: handing out
    /// downloads and tags never makes an unissued request id look like an abandoned request
    /// (one shared counter let an answer to a download's id pass as a late answer).
    #[test]
    fn request_ids_connect_tags_and_download_ids_never_mix() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = node(dir.path());
        let first = n.next_request_id();
        assert!(n.id_was_issued(first));
        assert!(!n.id_was_issued(first + 1));
        let downloads: Vec<DownloadId> = (0..5).map(|_| n.next_download_id()).collect();
        let tags: Vec<ConnectTag> = (0..5).map(|_| n.next_connect_tag()).collect();
        assert!(
            !n.id_was_issued(first + 1),
            "downloads or tags advanced the request counter"
        );
        assert_eq!(n.next_request_id(), first + 1);
        let unique: std::collections::BTreeSet<_> = downloads.iter().collect();
        assert_eq!(unique.len(), 5);
        assert_ne!(tags[0], tags[1]);
        assert!(!n.id_was_issued(0), "0 is never a request id");
    }
}
