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

mod net;
mod peers;
mod render;
pub mod script;

mod tests;

use net::End;
pub use net::Reach;
pub use peers::{Dirs, PeerSpec};
pub use render::human;

use crate::identity::PeerId;
use crate::peer::{Event, PeerNode, Recorder};
use crate::reactor::{CloseReason, ConnId, ConnectTag, Control, Driver, Signal};
use crate::tracker::Tracker;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
    /// The key its links prove (the sim's connections stand in for the secure handshake).
    key: PeerId,
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
        peer: PeerId,
    },
    Connected {
        conn: ConnId,
        tag: ConnectTag,
        remote: SocketAddr,
        peer: PeerId,
    },
    ConnectFailed {
        tag: ConnectTag,
        error: io::Error,
    },
    Frame {
        conn: ConnId,
        body: Vec<u8>,
    },
    /// A large `Chunk` frame, assembled apart as the reactor's decoder does.
    Chunk {
        conn: ConnId,
        req: u64,
        index: u64,
        data: Vec<u8>,
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
            Input::Chunk {
                conn,
                req,
                index,
                data,
            } => format!(
                "frame on {}: Chunk {{ req: {req}, index: {index}, {} bytes }}",
                conn.index,
                data.len()
            ),
            Input::Accepted { conn, remote, .. } => {
                format!("accepted {} from {remote}", conn.index)
            }
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

    /// The key a node made from `seed` proves: the same seed (a peer's state folder, a
    /// fake's name) makes the same key, as a restarted peer keeps its key file.
    pub fn key_for(seed: &str) -> PeerId {
        use sha2::Digest;
        PeerId::from_public_key(sha2::Sha256::digest(seed.as_bytes()).into())
    }

    /// The key node `id` proves.
    pub fn key_of(&self, id: NodeId) -> PeerId {
        self.nodes[id].key
    }

    fn add(
        &mut self,
        name: &str,
        addr: SocketAddr,
        key: PeerId,
        kind: Kind,
        idle: Option<Duration>,
    ) -> NodeId {
        self.nodes.push(Node {
            name: name.to_string(),
            addr,
            key,
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
        if let Input::Frame { conn, .. } | Input::Chunk { conn, .. } | Input::Closed { conn, .. } =
            &input
            && !self.ends.contains_key(&(n, *conn))
        {
            return;
        }
        if let Input::Closed { conn, .. } = &input {
            self.ends.remove(&(n, *conn));
        }
        if let Input::Frame { conn, .. } | Input::Chunk { conn, .. } = &input
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
            Input::Accepted { conn, remote, peer } => d.handle_accepted(conn, remote, peer, now),
            Input::Connected {
                conn,
                tag,
                remote,
                peer,
            } => d.handle_connected(conn, tag, remote, peer, now),
            Input::ConnectFailed { tag, error } => d.handle_connect_failed(tag, error, now),
            Input::Frame { conn, body } => d.handle_frame(conn, &body, now),
            Input::Chunk {
                conn,
                req,
                index,
                data,
            } => d.handle_chunk(conn, req, index, data, now),
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
