//! An in-memory world for the nodes: peers, trackers and scripted impostors run against each
//! other through the [`Driver`] seam, with no socket and a fake clock (after quinn-proto's test
//! `Pair` and smoltcp's scripted socket tests).
//!
//! - **Time** is a fake `Instant` that only moves when nothing is left to do at the current
//!   one: it then jumps to the earliest deadline of any node (`poll_timeout`), of the emulated
//!   reactor (connect timeouts, idle connections) or of a scheduled input. A 10 s timeout costs
//!   microseconds.
//! - **Connections** are pairs of ends. What a node sends is cut into frames by the receiving
//!   end's [`FrameDecoder`] and delivered in order, at the same instant; a bad frame closes the
//!   pair as the reactor would (`BadFrame` on the receiver, `RemoteClosed` on the sender).
//!   `Close` is answered with `handle_closed(Local)` at once and an end of stream on the other
//!   side after what was already sent, like the reactor's flush-then-close. Connecting to an
//!   address nobody listens at is refused.
//! - **Faults** are scripted: freeze a node (SIGSTOP: the kernel still accepts and buffers for
//!   it), kill it (SIGKILL), silence a link (frames vanish, nothing closes), cut one, refuse or
//!   black-hole connects to an address, and write a peer that lies as a [`script::Script`].
//! - **Helper threads** are real: each peer has its hash worker and disk jobs on threads whose
//!   `notify` sends the node's id over a channel; the harness turns that into `Control::Work`.
//!   The clock never moves while a node owes such work ([`PeerNode::owes_work`]): the harness
//!   waits on the channel instead (boundedly), so a helper thread takes no fake time at all.
//! - **Disk** is real (each peer has temporary `shared/` and `downloads/` folders).
//!
//! What a peer reports is kept with the fake time it happened at ([`Sim::events`]) and rendered
//! as a person would read it on stdout and stderr ([`Sim::stdout`], [`Sim::stderr`]), so a test
//! moved here from a process test asserts on the same text.
//!
//! The module is compiled for the crate's own tests only: it reaches `PeerNode` and `Tracker`
//! through the `Driver` trait like the reactor does, and its tests run inside the one unit-test
//! binary (no process to start, no binary to link per test file).

// A toolkit for tests: not every helper is used by the tests of the day.
#![allow(dead_code)]

pub mod script;

mod tests;

use crate::peer::disk_jobs::DiskJobs;
use crate::peer::hash_worker::HashWorker;
use crate::peer::index::SharedIndex;
use crate::peer::{Event, Mode, PeerConfig, PeerNode, Recorder};
use crate::reactor::{Action, CloseReason, ConnId, ConnectTag, Control, Driver, Signal};
use crate::tracker::{Tracker, TrackerConfig};
use crate::wire::FrameDecoder;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

/// A node's number in its [`Sim`].
pub type NodeId = usize;

/// The reactor's connect timeout (`reactor/event_loop.rs`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest the harness waits, in real time, for a helper thread a node waits for.
pub const WORK_WAIT: Duration = Duration::from_secs(60);
/// The port every peer listens on (each node has an address of its own).
pub const PEER_PORT: u16 = 4000;
/// The port a tracker listens on.
pub const TRACKER_PORT: u16 = 7000;
/// Steps at one instant before the harness calls it a busy loop.
const SPIN_LIMIT: usize = 1_000_000;

/// A peer's folders: `ROOT/shared` and `ROOT/downloads`, removed when the last clone goes (a
/// restarted peer gets the same folders).
#[derive(Clone)]
pub struct Dirs {
    root: Rc<tempfile::TempDir>,
    pub shared: PathBuf,
    pub downloads: PathBuf,
}

impl Dirs {
    pub fn new() -> Dirs {
        let root = tempfile::tempdir().expect("a temporary folder for a simulated peer");
        let shared = root.path().join("shared");
        let downloads = root.path().join("downloads");
        for dir in [&shared, &downloads] {
            std::fs::create_dir_all(dir).expect("creating a simulated peer's folders");
        }
        Dirs {
            root: Rc::new(root),
            shared,
            downloads,
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn add_shared(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.shared.join(name), bytes).expect("writing a shared file");
    }
}

impl Default for Dirs {
    fn default() -> Self {
        Dirs::new()
    }
}

/// How to start a peer: the CLI's defaults unless changed.
pub struct PeerSpec {
    name: String,
    tracker: Option<SocketAddr>,
    mode: Mode,
    lines: Vec<String>,
    dirs: Option<Dirs>,
    files: Vec<(String, Vec<u8>)>,
    retry_for: Duration,
    bootstrap: Vec<SocketAddr>,
    resume_on_start: Option<bool>,
    at: Option<SocketAddr>,
    lan: Option<std::net::SocketAddrV4>,
}

impl PeerSpec {
    /// `p2p peer --name NAME --serve` with the sim's tracker.
    pub fn new(name: &str) -> PeerSpec {
        PeerSpec {
            name: name.to_string(),
            tracker: None,
            mode: Mode::Serve,
            lines: Vec::new(),
            dirs: None,
            files: Vec::new(),
            retry_for: Duration::from_secs(60),
            bootstrap: Vec::new(),
            resume_on_start: None,
            at: None,
            lan: None,
        }
    }

    /// `--batch FILE` holding `commands`: the peer exits when they are done.
    pub fn batch(mut self, commands: &str) -> PeerSpec {
        self.mode = Mode::Batch { then_serve: false };
        self.lines = commands.lines().map(str::to_string).collect();
        self
    }

    /// `--batch FILE --serve`.
    pub fn batch_then_serve(mut self, commands: &str) -> PeerSpec {
        self = self.batch(commands);
        self.mode = Mode::Batch { then_serve: true };
        self
    }

    /// The REPL (lines come with [`Sim::line`]).
    pub fn repl(mut self) -> PeerSpec {
        self.mode = Mode::Repl;
        self
    }

    /// Shares `bytes` as `name` (written into `shared/` before the peer starts).
    pub fn file(mut self, name: &str, bytes: &[u8]) -> PeerSpec {
        self.files.push((name.to_string(), bytes.to_vec()));
        self
    }

    /// These folders instead of new ones (a restart).
    pub fn dirs(mut self, dirs: &Dirs) -> PeerSpec {
        self.dirs = Some(dirs.clone());
        self
    }

    /// `--tracker ADDR`.
    pub fn tracker(mut self, addr: SocketAddr) -> PeerSpec {
        self.tracker = Some(addr);
        self
    }

    /// `--retry-for`.
    pub fn retry_for(mut self, d: Duration) -> PeerSpec {
        self.retry_for = d;
        self
    }

    /// `--peer ADDR`.
    pub fn bootstrap(mut self, addr: SocketAddr) -> PeerSpec {
        self.bootstrap.push(addr);
        self
    }

    /// `--resume-on-start` (default: on unless in a batch, as the CLI).
    pub fn resume_on_start(mut self, on: bool) -> PeerSpec {
        self.resume_on_start = Some(on);
        self
    }

    /// LAN discovery in `group` (`--lan-group`, interface: the peer's address). The sim
    /// carries each datagram sent to a group to every node in it, the sender too (multicast
    /// loops back), from the sender's address.
    pub fn lan(mut self, group: std::net::SocketAddrV4) -> PeerSpec {
        self.lan = Some(group);
        self
    }

    /// Listens at `addr` (default: an address of its own, port [`PEER_PORT`]).
    pub fn at(mut self, addr: SocketAddr) -> PeerSpec {
        self.at = Some(addr);
        self
    }
}

/// What runs on a node.
enum Kind {
    Peer {
        node: Box<PeerNode>,
        seen: Recorder,
    },
    Tracker {
        tracker: Box<Tracker>,
        log: Rc<RefCell<Vec<String>>>,
    },
    Other(Box<dyn Driver>),
    /// Exited or killed: nothing runs any more.
    Gone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    /// SIGSTOP: inputs wait in `parked`, timers do not fire, helper threads wait.
    Frozen,
    /// Exited with this code, or killed (`None`).
    Gone(Option<i32>),
}

struct Node {
    name: String,
    addr: SocketAddr,
    kind: Kind,
    state: State,
    next_conn: usize,
    parked: VecDeque<Input>,
    /// Every event the node reported, with the fake time since the start.
    events: Vec<(Duration, Event)>,
    /// How far `wait_event` has read `events`.
    read: usize,
    /// A tracker's log lines, with the fake time.
    log: Vec<(Duration, String)>,
    /// The reactor's idle timeout for accepted connections.
    idle: Option<Duration>,
    /// Touched since its last `handle_timeout` (the reactor calls it after every batch).
    dirty: bool,
    /// The instant `handle_timeout` last ran for a due deadline (not again at the same one).
    timed_out_at: Option<Instant>,
    dirs: Option<Dirs>,
    rate_limits: Vec<crate::reactor::RateLimits>,
    /// The LAN multicast group it joined.
    lan: Option<std::net::SocketAddrV4>,
    /// Datagrams it sent.
    datagrams: usize,
}

impl Node {
    fn driver(&mut self) -> Option<&mut dyn Driver> {
        match &mut self.kind {
            Kind::Peer { node, .. } => Some(node.as_mut()),
            Kind::Tracker { tracker, .. } => Some(tracker.as_mut()),
            Kind::Other(d) => Some(d.as_mut()),
            Kind::Gone => None,
        }
    }

    fn running(&self) -> bool {
        self.state == State::Running
    }
}

/// An input for a node, as the reactor would hand it over.
enum Input {
    Accepted {
        conn: ConnId,
        remote: SocketAddr,
    },
    Connected {
        conn: ConnId,
        tag: ConnectTag,
        remote: SocketAddr,
    },
    ConnectFailed {
        tag: ConnectTag,
        error: io::Error,
    },
    Frame {
        conn: ConnId,
        body: Vec<u8>,
    },
    Closed {
        conn: ConnId,
        reason: CloseReason,
    },
    Control(Control),
    Datagram {
        from: SocketAddr,
        bytes: Vec<u8>,
    },
}

impl Input {
    /// For `SIM_TRACE=1`: one line per input.
    fn describe(&self) -> String {
        match self {
            Input::Frame { conn, body } => match crate::wire::decode_message(body) {
                Ok(m) => format!("frame on {}: {m:?}", conn.index),
                Err(e) => format!("frame on {}: undecodable ({e})", conn.index),
            },
            Input::Accepted { conn, remote } => format!("accepted {} from {remote}", conn.index),
            Input::Connected { conn, tag, .. } => format!("connected {} ({tag:?})", conn.index),
            Input::ConnectFailed { tag, error } => format!("connect {tag:?} failed: {error}"),
            Input::Closed { conn, reason } => format!("closed {}: {reason}", conn.index),
            Input::Control(c) => format!("{c:?}"),
            Input::Datagram { from, bytes } => {
                format!("datagram from {from}: {} bytes", bytes.len())
            }
        }
    }
}

/// One end of a connection, as seen from the node that holds it.
struct End {
    /// The other end.
    peer: (NodeId, ConnId),
    /// Bytes that arrived for this end, cut into frames.
    decoder: FrameDecoder,
    /// A close is on its way to this end's node: nothing more reaches it.
    doomed: bool,
    /// What this end sends vanishes (a host that went away without closing).
    muted: bool,
    /// Accepted ends: when the last complete frame came (for the idle timeout).
    idle_since: Option<Instant>,
}

/// What connecting to an address does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Refused at once (nobody listens, a firewall says no).
    Refused,
    /// Nothing answers: the reactor gives up after [`CONNECT_TIMEOUT`].
    BlackHole,
}

/// A connection between two nodes, for faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub a: (NodeId, ConnId),
    pub b: (NodeId, ConnId),
}

pub struct Sim {
    t0: Instant,
    now: Instant,
    nodes: Vec<Node>,
    ends: HashMap<(NodeId, ConnId), End>,
    queue: VecDeque<(NodeId, Input)>,
    /// Inputs due later (connect timeouts, scheduled lines), by instant then order.
    later: BTreeMap<(Instant, u64), (NodeId, Input)>,
    seq: u64,
    reach: HashMap<SocketAddr, Reach>,
    work_tx: Sender<NodeId>,
    work_rx: Receiver<NodeId>,
    tracker: Option<SocketAddr>,
    next_port: u16,
    /// How long the network takes to carry anything (zero: at the same instant).
    latency: Duration,
}

impl Default for Sim {
    fn default() -> Self {
        Sim::new()
    }
}

impl Sim {
    pub fn new() -> Sim {
        let (work_tx, work_rx) = channel();
        let t0 = Instant::now();
        Sim {
            t0,
            now: t0,
            nodes: Vec::new(),
            ends: HashMap::new(),
            queue: VecDeque::new(),
            later: BTreeMap::new(),
            seq: 0,
            reach: HashMap::new(),
            work_tx,
            work_rx,
            tracker: None,
            next_port: 40_000,
            latency: Duration::ZERO,
        }
    }

    // -----------------------------------------------------------------------------------------
    // The world

    /// The fake time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Fake time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// A new address of its own for a node (10.0.0.N).
    fn fresh_ip(&self) -> IpAddr {
        let n = self.nodes.len() + 1;
        IpAddr::V4(Ipv4Addr::new(10, 0, (n / 250) as u8, (n % 250 + 1) as u8))
    }

    /// An address nobody listens at (connects are refused).
    pub fn nowhere(&mut self) -> SocketAddr {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 255, 255, 254));
        self.next_port += 1;
        SocketAddr::new(ip, self.next_port)
    }

    fn add(&mut self, name: &str, addr: SocketAddr, kind: Kind, idle: Option<Duration>) -> NodeId {
        self.nodes.push(Node {
            name: name.to_string(),
            addr,
            kind,
            state: State::Running,
            next_conn: 0,
            parked: VecDeque::new(),
            events: Vec::new(),
            read: 0,
            log: Vec::new(),
            idle,
            dirty: true,
            timed_out_at: None,
            dirs: None,
            rate_limits: Vec::new(),
            lan: None,
            datagrams: 0,
        });
        self.nodes.len() - 1
    }

    /// A tracker; peers started later use it unless told otherwise.
    pub fn add_tracker(&mut self, config: TrackerConfig) -> NodeId {
        let addr = SocketAddr::new(self.fresh_ip(), TRACKER_PORT);
        self.add_tracker_at(addr, config)
    }

    /// A tracker at `addr` (one restarted where a killed one listened).
    pub fn add_tracker_at(&mut self, addr: SocketAddr, config: TrackerConfig) -> NodeId {
        let idle = crate::tracker::effective_limits(&config).idle_timeout;
        let log = Rc::new(RefCell::new(Vec::new()));
        let sink = log.clone();
        let tracker = Tracker::new(
            config,
            Box::new(move |line: &str| sink.borrow_mut().push(line.to_string())),
        );
        let kind = Kind::Tracker {
            tracker: Box::new(tracker),
            log,
        };
        let id = self.add("tracker", addr, kind, Some(idle));
        self.tracker.get_or_insert(addr);
        id
    }

    /// Any other driver (a scripted impostor), listening at its own address on `port`.
    pub fn add_node(&mut self, name: &str, port: u16, driver: Box<dyn Driver>) -> NodeId {
        let addr = SocketAddr::new(self.fresh_ip(), port);
        self.add(name, addr, Kind::Other(driver), None)
    }

    /// A [`script::FakePeer`] named `name` that registers with the sim's tracker.
    pub fn add_fake_peer(
        &mut self,
        name: &str,
        script: script::FakeScript,
    ) -> (NodeId, script::FakePeer) {
        let tracker = self.tracker.expect("a tracker to register with");
        let (fake, driver) = script::FakePeer::new(name, tracker, PEER_PORT, script, self.now);
        (self.add_node(name, PEER_PORT, driver), fake)
    }

    /// Starts a peer as `p2p peer` would (`app::run`): folders, the `listening` event, the
    /// node with the REPL's parser, its hash worker (start-up scan) and disk jobs on threads,
    /// then its batch lines.
    pub fn add_peer(&mut self, spec: PeerSpec) -> NodeId {
        let dirs = spec.dirs.clone().unwrap_or_default();
        for (name, bytes) in &spec.files {
            dirs.add_shared(name, bytes);
        }
        let addr = spec
            .at
            .unwrap_or_else(|| SocketAddr::new(self.fresh_ip(), PEER_PORT));
        let tracker = match spec.tracker.or(self.tracker) {
            Some(t) => t,
            None => self.nowhere(),
        };
        // As app.rs: the LAN interface is the listener's, and a listener others cannot reach
        // is never announced (said once).
        let mut lan_notice = None;
        let lan_config = spec.lan.map(|group| {
            let mut lan = crate::peer::lan::LanConfig {
                group,
                iface: Ipv4Addr::UNSPECIFIED,
                announce: true,
            };
            lan_notice = crate::peer::lan::fit_to_listener(&mut lan, addr);
            lan
        });
        let resume_on_start = spec
            .resume_on_start
            .unwrap_or(!matches!(spec.mode, Mode::Batch { .. }));
        let cfg = PeerConfig {
            name: spec.name.clone(),
            tracker,
            shared_dir: dirs.shared.clone(),
            downloads_dir: dirs.downloads.clone(),
            mode: spec.mode.clone(),
            retry_for: spec.retry_for,
            bootstrap: spec.bootstrap.clone(),
            lan: lan_config.clone(),
            resume_on_start,
            rate_limits: Default::default(),
        };
        let id = self.nodes.len();
        let seen = Recorder::new();
        let mut node = PeerNode::new(
            cfg,
            SharedIndex::default(),
            addr.port(),
            seen.clone(),
            self.now,
        );
        node.set_parser(crate::repl::parse);
        let tx = self.work_tx.clone();
        let worker = HashWorker::spawn(move || {
            let _ = tx.send(id);
        })
        .expect("starting a simulated peer's hash worker");
        node.start_hashing(worker, true, self.now);
        let tx = std::sync::Mutex::new(self.work_tx.clone());
        node.set_disk_jobs(DiskJobs::threads(move || {
            let _ = tx.lock().map(|tx| tx.send(id));
        }));
        node.set_listen_ip(addr.ip());
        let kind = Kind::Peer {
            node: Box::new(node),
            seen,
        };
        let limits = crate::reactor::Limits::default();
        let id = self.add(&spec.name, addr, kind, Some(limits.idle_timeout));
        self.nodes[id].dirs = Some(dirs);
        self.nodes[id].lan = spec.lan;
        let listening = Event::Listening {
            name: spec.name.clone(),
            addr: addr.to_string(),
        };
        let at = self.elapsed();
        self.nodes[id].events.insert(0, (at, listening));
        if let Some(why) = lan_notice {
            let notice = Event::Notice(crate::peer::event::Notice::LanAnnouncementsOff { why });
            self.nodes[id].events.insert(1, (at, notice));
        }
        self.drain(id);
        for line in spec.lines {
            self.control(id, Control::Line(line));
        }
        if matches!(spec.mode, Mode::Batch { .. }) {
            self.control(id, Control::EndOfInput);
        }
        id
    }

    /// Where `node` listens.
    pub fn addr(&self, node: NodeId) -> SocketAddr {
        self.nodes[node].addr
    }

    /// A peer's folders.
    pub fn dirs(&self, node: NodeId) -> Dirs {
        self.nodes[node].dirs.clone().expect("the node is a peer")
    }

    pub fn name(&self, node: NodeId) -> &str {
        &self.nodes[node].name
    }

    // -----------------------------------------------------------------------------------------
    // Inputs and faults

    /// Hands `ctl` to the node (a typed line, end of input, a signal), now.
    pub fn control(&mut self, node: NodeId, ctl: Control) {
        self.queue.push_back((node, Input::Control(ctl)));
    }

    /// A line typed or read from a batch file.
    pub fn line(&mut self, node: NodeId, text: &str) {
        self.control(node, Control::Line(text.to_string()));
    }

    /// SIGINT (`Interrupt`) or SIGTERM.
    pub fn signal(&mut self, node: NodeId, signal: Signal) {
        self.control(node, Control::Shutdown(signal));
    }

    /// `ctl` for `node` after `delay` of fake time.
    pub fn control_after(&mut self, delay: Duration, node: NodeId, ctl: Control) {
        self.later_input(self.now + delay, node, Input::Control(ctl));
    }

    fn later_input(&mut self, at: Instant, node: NodeId, input: Input) {
        self.seq += 1;
        self.later.insert((at, self.seq), (node, input));
    }

    /// Every frame, connect and close takes `d` to arrive from now on (zero by default): a
    /// transfer then takes fake time, so a test can act in the middle of one.
    pub fn set_latency(&mut self, d: Duration) {
        self.latency = d;
    }

    /// SIGSTOP: the node stops running; the kernel still accepts connections and buffers
    /// frames for it, which it sees once thawed.
    pub fn freeze(&mut self, node: NodeId) {
        if self.nodes[node].running() {
            self.nodes[node].state = State::Frozen;
        }
    }

    /// SIGCONT.
    pub fn thaw(&mut self, node: NodeId) {
        if self.nodes[node].state == State::Frozen {
            self.nodes[node].state = State::Running;
            self.nodes[node].dirty = true;
            let parked: Vec<Input> = self.nodes[node].parked.drain(..).collect();
            for (i, input) in parked.into_iter().enumerate() {
                self.queue.insert(i, (node, input));
            }
        }
    }

    /// SIGKILL: gone at once; every connection it had ends for the other side.
    pub fn kill(&mut self, node: NodeId) {
        self.gone(node, None);
    }

    /// What connecting to `addr` does from now on (`None`: whoever listens there answers).
    pub fn set_reach(&mut self, addr: SocketAddr, reach: Option<Reach>) {
        match reach {
            Some(r) => self.reach.insert(addr, r),
            None => self.reach.remove(&addr),
        };
    }

    /// The open connections between `a` and `b`.
    pub fn links(&self, a: NodeId, b: NodeId) -> Vec<Link> {
        let mut links: Vec<Link> = self
            .ends
            .iter()
            .filter(|((n, _), e)| *n == a && e.peer.0 == b)
            .map(|(&end, e)| Link { a: end, b: e.peer })
            .collect();
        links.sort_by_key(|l| l.a.1);
        links
    }

    /// Frames on `link` vanish both ways from now on; nothing is closed (a host that went away).
    pub fn silence(&mut self, link: Link) {
        for end in [link.a, link.b] {
            if let Some(e) = self.ends.get_mut(&end) {
                e.muted = true;
            }
        }
    }

    /// Every connection between `a` and `b` goes silent, and every later one too.
    pub fn silence_between(&mut self, a: NodeId, b: NodeId) {
        for link in self.links(a, b) {
            self.silence(link);
        }
    }

    /// The connection breaks (a reset): both sides hear it.
    pub fn cut(&mut self, link: Link) {
        for end in [link.a, link.b] {
            self.doom(end, || {
                CloseReason::Io(io::Error::from(io::ErrorKind::ConnectionReset))
            });
        }
    }

    // -----------------------------------------------------------------------------------------
    // Running

    /// Runs until `done` holds (checked whenever the world is quiet at an instant) or `limit`
    /// of fake time has passed; returns whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            self.settle();
            if done(self) {
                return true;
            }
            if !self.advance(end) {
                return false;
            }
        }
    }

    /// Runs for `d` of fake time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    /// Runs until `node` has exited (within `limit`); returns its exit code.
    pub fn run_to_exit(&mut self, node: NodeId, limit: Duration) -> i32 {
        if !self.run_until(limit, |s| s.exit_code(node).is_some()) {
            panic!(
                "{} still running after {limit:?} of fake time\n{}",
                self.nodes[node].name,
                self.diagnostics(node)
            );
        }
        self.exit_code(node).expect("exited")
    }

    /// Runs until `node` reports an event matching `pred`, looking past the last event an
    /// earlier `wait_event` returned (like reading a process's output line by line); returns
    /// the event's index and fake time. Panics after `limit`.
    pub fn wait_event(
        &mut self,
        node: NodeId,
        limit: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> (usize, Duration) {
        let from = self.nodes[node].read;
        let found = |s: &Sim| {
            s.nodes[node].events[from..]
                .iter()
                .position(|(_, e)| pred(e))
                .map(|i| i + from)
        };
        if !self.run_until(limit, |s| found(s).is_some()) {
            panic!(
                "{}: no matching event within {limit:?} of fake time\n{}",
                self.nodes[node].name,
                self.diagnostics(node)
            );
        }
        let i = found(self).expect("found");
        self.nodes[node].read = i + 1;
        (i, self.nodes[node].events[i].0)
    }

    /// [`Self::wait_event`] for an event the peer prints (stdout or stderr) as a line
    /// matching `pred`; returns the line.
    pub fn wait_line(
        &mut self,
        node: NodeId,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let matching =
            |e: &Event| human(e).and_then(|(_, lines)| lines.into_iter().find(|l| pred(l)));
        let (i, _) = self.wait_event(node, limit, |e| matching(e).is_some());
        matching(&self.nodes[node].events[i].1).expect("matched")
    }

    /// Handles everything due at the current instant, until nothing is left.
    fn settle(&mut self) {
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < SPIN_LIMIT, "the nodes spin at one instant");
            self.take_work_notices();
            if let Some((node, input)) = self.queue.pop_front() {
                self.deliver(node, input);
                continue;
            }
            self.expire_idle();
            if !self.queue.is_empty() {
                continue;
            }
            let due: Vec<NodeId> = (0..self.nodes.len())
                .filter(|&n| self.timeout_due(n))
                .collect();
            if due.is_empty() {
                return;
            }
            for n in due {
                let now = self.now;
                let node = &mut self.nodes[n];
                node.dirty = false;
                if node
                    .driver()
                    .and_then(|d| d.poll_timeout())
                    .is_some_and(|t| t <= now)
                {
                    node.timed_out_at = Some(now);
                }
                if let Some(d) = node.driver() {
                    d.handle_timeout(now);
                }
                if std::env::var_os("SIM_TRACE").is_some() {
                    eprintln!("{:>12?} {} <- timeout", now - self.t0, self.nodes[n].name);
                }
                self.drain(n);
            }
        }
    }

    /// Whether `handle_timeout` runs for `n` now: after inputs (the reactor calls it after
    /// every batch), or for a deadline that has come (once per instant).
    fn timeout_due(&mut self, n: NodeId) -> bool {
        let now = self.now;
        let node = &mut self.nodes[n];
        if !node.running() {
            return false;
        }
        if node.dirty {
            return true;
        }
        let deadline = node.driver().and_then(|d| d.poll_timeout());
        deadline.is_some_and(|t| t <= now) && node.timed_out_at != Some(now)
    }

    /// Moves the clock to the next thing due, at most to `end`. False once `end` is reached
    /// with nothing due before it.
    fn advance(&mut self, end: Instant) -> bool {
        if self.wait_for_owed_work() || !self.queue.is_empty() {
            return true; // something happened at this instant: look again before moving on
        }
        let next = self.next_deadline();
        match next {
            Some(t) if t <= end => {
                // A deadline the node did not take as due (it wants `now > t`): the reactor
                // would poll again a moment later.
                self.now = if t <= self.now {
                    self.now + Duration::from_millis(1)
                } else {
                    t
                };
                let now = self.now;
                while let Some(entry) = self.later.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let (node, input) = entry.remove();
                    self.queue.push_back((node, input));
                }
                true
            }
            _ => {
                self.now = self.now.max(end);
                false
            }
        }
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let mut next: Option<Instant> = self.later.keys().next().map(|k| k.0);
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for node in &mut self.nodes {
            if !node.running() {
                continue;
            }
            if let Some(t) = node.driver().and_then(|d| d.poll_timeout()) {
                consider(t);
            }
        }
        for (&(n, _), end) in &self.ends {
            if let (Some(since), Some(idle)) = (end.idle_since, self.nodes[n].idle)
                && self.nodes[n].running()
                && !end.doomed
            {
                consider(since + idle);
            }
        }
        next
    }

    /// Helper threads' notices become `Control::Work` for their node.
    fn take_work_notices(&mut self) {
        let mut seen = HashSet::new();
        while let Ok(node) = self.work_rx.try_recv() {
            if seen.insert(node) {
                self.queue.push_back((node, Input::Control(Control::Work)));
            }
        }
    }

    /// Before the clock moves: a running peer that waits for a helper thread gets its result
    /// first (real time, bounded by [`WORK_WAIT`]). True if a result came.
    fn wait_for_owed_work(&mut self) -> bool {
        let mut came = false;
        let owing = |s: &Sim| {
            s.nodes.iter().position(|n| {
                n.running() && matches!(&n.kind, Kind::Peer { node, .. } if node.owes_work())
            })
        };
        while self.queue.is_empty() {
            let Some(n) = owing(self) else { return came };
            match self.work_rx.recv_timeout(WORK_WAIT) {
                Ok(node) => {
                    came = true;
                    self.queue.push_back((node, Input::Control(Control::Work)));
                    self.take_work_notices();
                    self.settle();
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "{}: a helper thread owes it work and said nothing for {WORK_WAIT:?}",
                    self.nodes[n].name
                ),
            }
        }
        came
    }

    /// Hands one input to its node (parked while frozen, dropped once it is gone).
    fn deliver(&mut self, n: NodeId, input: Input) {
        match self.nodes[n].state {
            State::Frozen => return self.nodes[n].parked.push_back(input),
            State::Gone(_) => return,
            State::Running => {}
        }
        let now = self.now;
        // Inputs about a connection the node no longer has are dropped (it closed it first).
        if let Input::Frame { conn, .. } | Input::Closed { conn, .. } = &input
            && !self.ends.contains_key(&(n, *conn))
        {
            return;
        }
        if let Input::Closed { conn, .. } = &input {
            self.ends.remove(&(n, *conn));
        }
        if let Input::Frame { conn, .. } = &input
            && let Some(end) = self.ends.get_mut(&(n, *conn))
            && end.idle_since.is_some()
        {
            end.idle_since = Some(now);
        }
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!(
                "{:>12?} {} <- {}",
                self.elapsed(),
                self.nodes[n].name,
                input.describe()
            );
        }
        let node = &mut self.nodes[n];
        node.dirty = true;
        let Some(d) = node.driver() else { return };
        match input {
            Input::Accepted { conn, remote } => d.handle_accepted(conn, remote, now),
            Input::Connected { conn, tag, remote } => d.handle_connected(conn, tag, remote, now),
            Input::ConnectFailed { tag, error } => d.handle_connect_failed(tag, error, now),
            Input::Frame { conn, body } => d.handle_frame(conn, &body, now),
            Input::Closed { conn, reason } => d.handle_closed(conn, reason, now),
            Input::Control(ctl) => d.handle_control(ctl, now),
            Input::Datagram { from, bytes } => d.handle_datagram(from, &bytes, now),
        }
        self.drain(n);
    }

    /// Carries out every action the node has queued, and keeps what it reported.
    fn drain(&mut self, n: NodeId) {
        loop {
            self.keep_reports(n);
            let Some(action) = self.nodes[n].driver().and_then(|d| d.poll_action()) else {
                return;
            };
            self.apply(n, action);
        }
    }

    fn keep_reports(&mut self, n: NodeId) {
        let at = self.elapsed();
        let node = &mut self.nodes[n];
        match &node.kind {
            Kind::Peer { seen, .. } => node.events.extend(seen.take().into_iter().map(|e| (at, e))),
            Kind::Tracker { log, .. } => {
                node.log.extend(log.borrow_mut().drain(..).map(|l| (at, l)));
            }
            _ => {}
        }
    }

    fn apply(&mut self, n: NodeId, action: Action) {
        match action {
            Action::Send(conn, bytes) => self.send_bytes((n, conn), &bytes),
            Action::Connect(addr, tag) => self.connect(n, addr, tag),
            Action::Close(conn) => {
                // Like the reactor: the node hears `Local` at once (unless the connection had
                // already ended), the other side an end of stream after what was sent.
                if let Some(end) = self.ends.remove(&(n, conn)) {
                    self.doom(end.peer, || CloseReason::RemoteClosed);
                    let now = self.now;
                    if let Some(d) = self.nodes[n].driver() {
                        d.handle_closed(conn, CloseReason::Local, now);
                    }
                }
            }
            Action::Exit(code) => self.gone(n, Some(code)),
            Action::SendDatagram(to, bytes) => self.multicast(n, to, bytes),
            Action::SetRateLimits(limits) => self.nodes[n].rate_limits.push(limits),
        }
    }

    /// A datagram to a LAN group reaches every node that joined it (the sender too, as
    /// multicast loops back), from the sender's address and the group's port; to anywhere
    /// else it is lost.
    fn multicast(&mut self, n: NodeId, to: SocketAddr, bytes: Vec<u8>) {
        self.nodes[n].datagrams += 1;
        let from = SocketAddr::new(self.nodes[n].addr.ip(), to.port());
        let members: Vec<NodeId> = (0..self.nodes.len())
            .filter(|&m| self.nodes[m].lan.is_some_and(|g| SocketAddr::V4(g) == to))
            .collect();
        for m in members {
            let bytes = bytes.clone();
            self.emit(m, Input::Datagram { from, bytes });
        }
    }

    /// Delivers `bytes` sent from `from` to the other end, frame by frame.
    fn send_bytes(&mut self, from: (NodeId, ConnId), bytes: &[u8]) {
        let Some(end) = self.ends.get(&from) else {
            return;
        };
        if end.doomed || end.muted {
            return;
        }
        let to = end.peer;
        let Some(peer) = self.ends.get_mut(&to) else {
            return;
        };
        if peer.doomed {
            return;
        }
        peer.decoder.extend(bytes);
        let mut frames = Vec::new();
        let broken = loop {
            match peer.decoder.next_frame() {
                Ok(Some(body)) => frames.push(body.to_vec()),
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            }
        };
        for body in frames {
            self.emit(to.0, Input::Frame { conn: to.1, body });
        }
        if let Some(why) = broken {
            self.doom(to, || CloseReason::BadFrame(why));
            self.doom(from, || CloseReason::RemoteClosed);
        }
    }

    /// Something the network carries to `node`: after the link latency, in order.
    fn emit(&mut self, node: NodeId, input: Input) {
        if self.latency.is_zero() {
            self.queue.push_back((node, input));
        } else {
            self.later_input(self.now + self.latency, node, input);
        }
    }

    /// A close is on its way to `end`'s node (after whatever was sent to it before).
    fn doom(&mut self, end: (NodeId, ConnId), reason: impl FnOnce() -> CloseReason) {
        if let Some(e) = self.ends.get_mut(&end)
            && !e.doomed
        {
            e.doomed = true;
            let reason = reason();
            self.emit(
                end.0,
                Input::Closed {
                    conn: end.1,
                    reason,
                },
            );
        }
    }

    fn connect(&mut self, n: NodeId, addr: SocketAddr, tag: ConnectTag) {
        let target = self
            .nodes
            .iter()
            .position(|node| node.addr == addr && !matches!(node.state, State::Gone(_)));
        let reach = self.reach.get(&addr).copied();
        match (reach, target) {
            (Some(Reach::BlackHole), _) => {
                let error = io::Error::new(io::ErrorKind::TimedOut, "connection attempt timed out");
                let at = self.now + CONNECT_TIMEOUT;
                self.later_input(at, n, Input::ConnectFailed { tag, error });
            }
            (Some(Reach::Refused), _) | (None, None) => {
                let error = io::Error::from_raw_os_error(libc::ECONNREFUSED);
                self.emit(n, Input::ConnectFailed { tag, error });
            }
            (None, Some(t)) => {
                let ours = self.next_conn_id(n);
                let theirs = self.next_conn_id(t);
                self.next_port += 1;
                let from = SocketAddr::new(self.nodes[n].addr.ip(), self.next_port);
                let idle_since = self.nodes[t].idle.map(|_| self.now);
                self.ends.insert((n, ours), end_to((t, theirs), None));
                self.ends.insert((t, theirs), end_to((n, ours), idle_since));
                self.emit(
                    t,
                    Input::Accepted {
                        conn: theirs,
                        remote: from,
                    },
                );
                self.emit(
                    n,
                    Input::Connected {
                        conn: ours,
                        tag,
                        remote: addr,
                    },
                );
            }
        }
    }

    fn next_conn_id(&mut self, n: NodeId) -> ConnId {
        let node = &mut self.nodes[n];
        node.next_conn += 1;
        ConnId::fake(node.next_conn)
    }

    /// Accepted connections that sent no complete frame for the node's idle timeout: the
    /// reactor sends an `Error` saying so, closes, and tells the node `TimedOut`.
    fn expire_idle(&mut self) {
        let now = self.now;
        let expired: Vec<(NodeId, ConnId, Duration)> = self
            .ends
            .iter()
            .filter_map(|(&(n, c), e)| {
                let idle = self.nodes[n].idle?;
                let since = e.idle_since?;
                (!e.doomed && self.nodes[n].running() && since + idle <= now)
                    .then_some((n, c, idle))
            })
            .collect();
        for (n, c, idle) in expired {
            self.send_bytes((n, c), &crate::reactor::limits::idle_frame(idle));
            if let Some(end) = self.ends.get(&(n, c)) {
                let peer = end.peer;
                self.doom(peer, || CloseReason::RemoteClosed);
            }
            let why = io::Error::new(
                io::ErrorKind::TimedOut,
                crate::reactor::limits::idle_text(idle),
            );
            self.doom((n, c), || CloseReason::Io(why));
        }
    }

    /// The node exited (`Some(code)`) or was killed: its connections end for the other side.
    fn gone(&mut self, n: NodeId, code: Option<i32>) {
        if matches!(self.nodes[n].state, State::Gone(_)) {
            return;
        }
        self.keep_reports(n);
        self.nodes[n].state = State::Gone(code);
        self.nodes[n].kind = Kind::Gone;
        self.nodes[n].parked.clear();
        let mine: Vec<(NodeId, ConnId)> = self.ends.keys().filter(|k| k.0 == n).copied().collect();
        for end in mine {
            if let Some(e) = self.ends.remove(&end) {
                self.doom(e.peer, || CloseReason::RemoteClosed);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // What happened

    /// The exit code, once the node has exited by itself.
    pub fn exit_code(&self, node: NodeId) -> Option<i32> {
        match self.nodes[node].state {
            State::Gone(code) => code,
            _ => None,
        }
    }

    pub fn is_running(&self, node: NodeId) -> bool {
        matches!(self.nodes[node].state, State::Running | State::Frozen)
    }

    /// Every event the peer reported, with the fake time since the start.
    pub fn events(&self, node: NodeId) -> &[(Duration, Event)] {
        &self.nodes[node].events
    }

    /// A tracker's log lines, with the fake time since the start.
    pub fn tracker_log(&self, node: NodeId) -> &[(Duration, String)] {
        &self.nodes[node].log
    }

    /// How many datagrams the node has sent (LAN announcements).
    pub fn datagrams_sent(&self, node: NodeId) -> usize {
        self.nodes[node].datagrams
    }

    /// The rate limits the node asked its reactor for, oldest first.
    pub fn rate_limits(&self, node: NodeId) -> &[crate::reactor::RateLimits] {
        &self.nodes[node].rate_limits
    }

    /// What the peer would have printed on stdout (without `--json` or `-q`).
    pub fn stdout(&self, node: NodeId) -> Vec<String> {
        self.printed(node, false)
    }

    /// What the peer would have printed on stderr.
    pub fn stderr(&self, node: NodeId) -> Vec<String> {
        self.printed(node, true)
    }

    fn printed(&self, node: NodeId, stderr: bool) -> Vec<String> {
        self.nodes[node]
            .events
            .iter()
            .filter_map(|(_, e)| human(e))
            .filter(|(err, _)| *err == stderr)
            .flat_map(|(_, lines)| lines)
            .collect()
    }

    /// Everything the node printed, with times, for a failure message.
    pub fn diagnostics(&self, node: NodeId) -> String {
        let n = &self.nodes[node];
        let mut out = format!(
            "--- {} ({:?}) at {:?} ---\n",
            n.name,
            n.state,
            self.elapsed()
        );
        for (at, e) in &n.events {
            let text = human(e).map_or_else(|| format!("{e:?}"), |(_, l)| l.join("\n"));
            out.push_str(&format!("{at:>12?}  {text}\n"));
        }
        for (at, l) in &n.log {
            out.push_str(&format!("{at:>12?}  {l}\n"));
        }
        out
    }
}

fn end_to(peer: (NodeId, ConnId), idle_since: Option<Instant>) -> End {
    End {
        peer,
        decoder: FrameDecoder::new(),
        doomed: false,
        muted: false,
        idle_since,
    }
}

/// An event as `repl::Ui` prints it without `--json` or `-q`: (on stderr, lines). The same
/// rules as `Ui::event` and `Ui::human` (hidden files skipped silently, `warning: ` and
/// `error: ` in front of problems).
pub fn human(event: &Event) -> Option<(bool, Vec<String>)> {
    use crate::repl::event::{Weight, human_lines, weight};
    if let Event::Skipped { file, .. } = event
        && file.starts_with('.')
    {
        return None;
    }
    let tag = match event {
        Event::Error { .. } => "error: ",
        Event::Warning(_)
        | Event::TrackerUnreachable { .. }
        | Event::SourceLost { .. }
        | Event::SourceDropped { .. }
        | Event::NameRefused { .. }
        | Event::Unfinished { quitting: true, .. } => "warning: ",
        _ => "",
    };
    let stderr = match weight(event) {
        Weight::Silent => return None,
        Weight::Problem => true,
        Weight::Result | Weight::Notice => false,
    };
    let lines = human_lines(event)
        .into_iter()
        .map(|l| format!("{tag}{l}"))
        .collect();
    Some((stderr, lines))
}
