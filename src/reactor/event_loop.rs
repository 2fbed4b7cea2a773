//! The poll loop. Edge-triggered: every readable or writable event is followed by reads or
//! writes until `WouldBlock`, or until a per-event budget is spent (the connection then goes on a
//! queue of still-readable sockets so one busy peer cannot starve the others). Frames are
//! handed over only while the output budget (`budget.rs`) allows: answers queued for one
//! connection, and for all of them together, stay bounded.

use super::budget::{DEFAULT_LIMITS, OutputBudget};
use super::conn::{Conn, Phase, ReadOutcome};
use super::limits::{ConnLimits, Limits};
use super::memory::{TrimAfterBurst, pin_mmap_threshold};
use super::rate::{RateLimiter, RateLimits};
use super::{Action, CloseReason, ConnId, ConnectTag, Control, Driver, Signal};
use crate::identity::{Identity, PeerId};
use crate::secure::{Link, LinkError, Prologue, Role};
use crate::wire::Frame;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

/// Frames smaller than this (with less than this already queued on their connection) are
/// written together with the others the same event queues, not one write each: a folder of
/// small files asks for thousands of manifests and chunks, and the answers come as many.
const COALESCE_BELOW: usize = 16 * 1024;

/// Tokens outside the slab range (slab keys grow from zero and never get near these).
const WAKER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
const FIRST_LISTENER: usize = usize::MAX - 16;
/// UDP sockets (`udp.rs`) take the tokens below the listeners'.
const FIRST_UDP: usize = FIRST_LISTENER - super::udp::MAX_UDP;

/// Backlog of connections not yet accepted. With mio's 128, a burst of a few hundred peers
/// (a tracker restart) overflowed it and the dropped SYNs were retried only after a second.
const LISTEN_BACKLOG: libc::c_int = 4096;

/// How long an outgoing connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the secure handshake may take once TCP is up (as long as a node's `Hello`).
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closed connection may take to flush what was queued for it.
pub(super) const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// Bytes read from one connection per event before others get a turn.
const READ_BUDGET: usize = 4 * 1024 * 1024;

/// Hands lines and signals from other threads to the loop.
#[derive(Clone)]
pub struct ControlSender {
    tx: Sender<Control>,
    waker: Arc<Waker>,
}

impl ControlSender {
    /// Returns false once the loop has gone.
    pub fn send(&self, ctl: Control) -> bool {
        self.tx.send(ctl).is_ok() && self.waker.wake().is_ok()
    }
}

pub struct Reactor {
    pub(super) poll: Poll,
    pub(super) conns: Slab<Conn>,
    pub(super) listeners: Vec<TcpListener>,
    pub(super) waker: Arc<Waker>,
    pub(super) control_tx: Sender<Control>,
    pub(super) control_rx: Receiver<Control>,
    pub(super) signals: Option<signal_hook_mio::v1_0::Signals>,
    pub(super) next_generation: u64,
    /// Connections that may still have unread bytes (budget spent or reading resumed).
    pub(super) readable_again: VecDeque<ConnId>,
    /// Connections with small frames queued and not yet written ([`COALESCE_BELOW`]): written
    /// together once the event that queued them is handled, and always before polling.
    pub(super) unflushed: Vec<ConnId>,
    pub(super) exit: Option<i32>,
    /// Connection caps and the idle timeout (`limits.rs`).
    pub(super) limits: ConnLimits,
    /// Datagram sockets (`udp.rs`).
    pub(super) udp: super::udp::UdpSockets,
    /// Output queued per connection and in all; who may be read (`budget.rs`).
    pub(super) budget: OutputBudget,
    /// Gives the heap back after a burst of output (`memory.rs`).
    pub(super) trim: TrimAfterBurst,
    /// Upload and download rate limits; connections waiting for tokens (`rate.rs`).
    pub(super) rate: RateLimiter,
    /// Our key, and the prologue every link's handshake commits to (PROTOCOL.md §15.4).
    pub(super) identity: Arc<Identity>,
    pub(super) prologue: Prologue,
    /// Spliced connections waiting for their session's rate tokens, and when (`splice.rs`).
    pub(super) splice_parked: Vec<(Instant, ConnId)>,
}

impl Reactor {
    /// A reactor whose every connection, accepted or dialled, runs over a secure link with
    /// this key: the driver hears of a connection once its handshake proved the other side's
    /// key, its frames are sealed, and frames reach it only once their records verified.
    pub fn new(identity: Arc<Identity>) -> io::Result<Reactor> {
        pin_mmap_threshold();
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (control_tx, control_rx) = channel();
        Ok(Reactor {
            poll,
            conns: Slab::new(),
            listeners: Vec::new(),
            waker,
            control_tx,
            control_rx,
            signals: None,
            next_generation: 1,
            readable_again: VecDeque::new(),
            unflushed: Vec::new(),
            exit: None,
            limits: ConnLimits::new(super::limits::process_limits()),
            udp: super::udp::UdpSockets::new(FIRST_UDP),
            budget: OutputBudget::new(DEFAULT_LIMITS),
            trim: TrimAfterBurst::default(),
            rate: RateLimiter::new(),
            identity,
            prologue: crate::secure::our_prologue(),
            splice_parked: Vec::new(),
        })
    }

    /// Sets the connection caps and the idle timeout for accepted connections.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits.set_limits(limits);
    }

    /// Sets the upload and download rate limits (also `Action::SetRateLimits`).
    pub fn set_rate_limits(&mut self, limits: RateLimits) {
        self.rate.set_limits(limits, Instant::now());
    }

    /// The id of the key every link of this reactor proves.
    pub fn peer_id(&self) -> PeerId {
        self.identity.peer_id()
    }

    /// Accepted connections refused by a cap so far (for tests and diagnostics).
    pub fn refused_connections(&self) -> u64 {
        self.limits.refused()
    }

    /// Listens on `addr` and returns the address actually bound (port 0 picks one).
    pub fn listen(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        // Bound without SO_REUSEPORT, so a port another process holds is refused; then shared
        // with our own hole-punching sockets only (`punch.rs`).
        let mut listener = TcpListener::bind(addr)?;
        super::punch::share_listen_port(&listener);
        // mio listens with a backlog of 128; calling listen(2) again raises it (the kernel caps
        // it at net.core.somaxconn).
        // SAFETY: listen(2) on the descriptor `listener` owns.
        unsafe {
            libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), LISTEN_BACKLOG);
        }
        let token = Token(FIRST_LISTENER + self.listeners.len());
        self.poll
            .registry()
            .register(&mut listener, token, Interest::READABLE)?;
        let bound = listener.local_addr()?;
        self.listeners.push(listener);
        Ok(bound)
    }

    /// Adds a UDP socket: its datagrams go to `Driver::handle_datagram_on` with the id
    /// returned; `Action::SendDatagram` sends from the first one added,
    /// `Action::SendDatagramOn` from the one named.
    pub fn add_udp(&mut self, socket: mio::net::UdpSocket) -> io::Result<super::UdpSocketId> {
        self.udp.add(self.poll.registry(), socket)
    }

    /// Delivers SIGINT and SIGTERM to the driver as `Control::Shutdown`, saying which.
    pub fn catch_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    pub fn control_sender(&self) -> ControlSender {
        ControlSender {
            tx: self.control_tx.clone(),
            waker: self.waker.clone(),
        }
    }

    /// Runs until the driver asks to exit; returns its exit code.
    pub fn run(&mut self, driver: &mut impl Driver) -> io::Result<i32> {
        let mut events = Events::with_capacity(1024);
        loop {
            self.apply_actions(driver);
            self.resume_ready();
            if let Some(code) = self.exit {
                self.flush_all_briefly();
                return Ok(code);
            }
            self.flush_unflushed(driver);
            let timeout = if self.readable_again.is_empty() {
                self.next_deadline(driver)
                    .map(|d| d.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                let token = event.token();
                match token {
                    WAKER => self.drain_controls(driver),
                    SIGNALS => self.drain_signals(driver),
                    Token(t) if t >= FIRST_LISTENER => self.accept_all(t - FIRST_LISTENER),
                    t if self.udp.owns(t) => self.udp.on_readable(t, driver),
                    Token(index) => {
                        if event.is_writable() || event.is_error() || event.is_write_closed() {
                            self.on_writable(index, driver);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(index, driver);
                        }
                    }
                }
                self.apply_actions(driver);
                self.flush_unflushed(driver);
            }
            self.resume_ready();
            self.wake_rate_limited(driver);
            self.wake_spliced(Instant::now());
            for _ in 0..self.readable_again.len() {
                let Some(id) = self.readable_again.pop_front() else {
                    break;
                };
                if self.live(id) {
                    self.on_readable(id.index, driver);
                    self.apply_actions(driver);
                    self.flush_unflushed(driver);
                }
            }
            let now = Instant::now();
            self.expire_connections(now, driver);
            self.expire_idle(now, driver);
            driver.handle_timeout(now);
        }
    }

    pub(super) fn live(&self, id: ConnId) -> bool {
        self.conns
            .get(id.index)
            .is_some_and(|c| c.generation == id.generation)
    }

    fn id_of(&self, index: usize) -> Option<ConnId> {
        self.conns.get(index).map(|c| ConnId {
            index,
            generation: c.generation,
        })
    }

    fn next_deadline(&mut self, driver: &impl Driver) -> Option<Instant> {
        let rate = if self.rate.is_active() {
            self.rate.next_deadline(Instant::now())
        } else {
            None
        };
        let conn_deadlines = self.conns.iter().filter_map(|(_, c)| match c.phase {
            Phase::Connecting { deadline, .. }
            | Phase::Securing { deadline, .. }
            | Phase::Closing { deadline } => Some(deadline),
            Phase::Open => None,
        });
        conn_deadlines
            .chain(driver.poll_timeout())
            .chain(self.limits.next_check())
            .chain(self.next_splice_wake())
            .chain(rate)
            .min()
    }

    fn drain_controls(&mut self, driver: &mut impl Driver) {
        while let Ok(ctl) = self.control_rx.try_recv() {
            driver.handle_control(ctl, Instant::now());
            self.apply_actions(driver);
        }
    }

    /// Several signals pending at once make one `Shutdown`; a Ctrl-C among them makes it an
    /// interrupt (the REPL then stops its command rather than the peer).
    fn drain_signals(&mut self, driver: &mut impl Driver) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        let pending: Vec<i32> = signals.pending().collect();
        if pending.is_empty() {
            return;
        }
        let signal = if pending.contains(&signal_hook::consts::SIGINT) {
            Signal::Interrupt
        } else {
            Signal::Terminate
        };
        driver.handle_control(Control::Shutdown(signal), Instant::now());
    }

    /// Accepts what is waiting; the node hears of each connection once its handshake is
    /// done (`secured`).
    fn accept_all(&mut self, listener: usize) {
        loop {
            let Some(l) = self.listeners.get(listener) else {
                return;
            };
            match l.accept() {
                Ok((stream, remote)) => {
                    if let Err(why) = self.limits.admit(remote.ip()) {
                        super::limits::refuse(stream, &why);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let now = Instant::now();
                    let phase = Phase::Securing {
                        tag: None,
                        deadline: now + HANDSHAKE_TIMEOUT,
                    };
                    let link = Link::new(Role::Responder, &self.identity, &self.prologue, None);
                    if let Some(id) = self.insert(stream, remote, phase, link) {
                        // The node hears of it once the handshake is done (`secured`).
                        self.limits.track(id.index, id.generation, remote.ip(), now);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EMFILE and friends: the pending connection stays in the backlog; the next
                // connection attempt raises a new edge. Nothing to spin on.
                Err(_) => return,
            }
        }
    }

    pub(super) fn insert(
        &mut self,
        mut stream: TcpStream,
        remote: SocketAddr,
        phase: Phase,
        link: Link,
    ) -> Option<ConnId> {
        let entry = self.conns.vacant_entry();
        let index = entry.key();
        let registered = self.poll.registry().register(
            &mut stream,
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        );
        if registered.is_err() {
            return None;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        entry.insert(Conn::new(stream, generation, remote, phase, link));
        if is_loopback(remote) {
            self.rate.note_loopback(index);
        }
        Some(ConnId { index, generation })
    }

    fn on_writable(&mut self, index: usize, driver: &mut impl Driver) {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        let id = ConnId {
            index,
            generation: conn.generation,
        };
        if let Phase::Connecting { tag, .. } = conn.phase {
            match connect_outcome(&conn.stream) {
                ConnectOutcome::Pending => {}
                ConnectOutcome::Failed(e) => {
                    self.drop_conn(index);
                    driver.handle_connect_failed(tag, e, Instant::now());
                }
                ConnectOutcome::Connected => {
                    // The link's first handshake message has waited in the queue since the
                    // connect began; it goes now, and the node hears of the connection once
                    // the handshake is done (`secured`).
                    conn.phase = Phase::Securing {
                        tag: Some(tag),
                        deadline: Instant::now() + HANDSHAKE_TIMEOUT,
                    };
                    let _ = conn.stream.set_nodelay(true);
                    self.write_queued(id, driver);
                }
            }
            return;
        }
        self.write_queued(id, driver);
    }

    /// Writes what is queued on an open or closing connection; drops a closing one once its
    /// queue is empty.
    fn write_queued(&mut self, id: ConnId, driver: &mut impl Driver) {
        match self.flush_conn(id.index) {
            Ok(0) if matches!(self.conns[id.index].phase, Phase::Closing { .. }) => {
                self.drop_conn(id.index);
            }
            Ok(_) => {
                self.splice_drained(id.index);
                self.resume_ready()
            }
            Err(e) => self.fail(id, CloseReason::Io(e), driver),
        }
    }

    /// Connections that waited for rate-limit tokens and may go on: reads go on the read
    /// queue, writes are done now.
    fn wake_rate_limited(&mut self, driver: &mut impl Driver) {
        if !self.rate.is_active() {
            return;
        }
        let (reads, writes) = self.rate.take_due(Instant::now());
        for id in writes {
            if self.live(id) && !matches!(self.conns[id.index].phase, Phase::Connecting { .. }) {
                self.write_queued(id, driver);
            }
        }
        for id in reads {
            if self.live(id) && !self.readable_again.contains(&id) {
                self.readable_again.push_back(id);
            }
        }
    }

    /// Queues `bytes` on connection `index`, counted against the output budget, and writes
    /// what the socket takes. Returns the bytes still queued.
    fn queue_and_flush(&mut self, index: usize, bytes: Vec<u8>) -> io::Result<usize> {
        self.queue_only(index, bytes)?;
        self.flush_conn(index)
    }

    /// Queues `bytes` on connection `index`, counted against the output budget; written later
    /// ([`Self::flush_unflushed`]).
    fn queue_only(&mut self, index: usize, bytes: Vec<u8>) -> io::Result<()> {
        if let Some(conn) = self.conns.get_mut(index) {
            // Counted as it goes on the wire: sealed, or nothing yet while a secure link
            // keeps it until its handshake is done.
            let before = conn.queued();
            let queued = conn.queue(bytes);
            self.budget.add(index, conn.queued() - before);
            queued?;
        }
        Ok(())
    }

    /// Writes the small frames queued since the last call; a connection that fails is closed
    /// (the node hears of it, and what it does about that is applied and written too).
    fn flush_unflushed(&mut self, driver: &mut impl Driver) {
        while !self.unflushed.is_empty() {
            for id in std::mem::take(&mut self.unflushed) {
                if !self.live(id) {
                    continue;
                }
                if let Err(e) = self.flush_conn(id.index) {
                    self.fail(id, CloseReason::Io(e), driver);
                }
            }
            self.apply_actions(driver);
        }
    }

    /// Writes what the socket of `index` takes and tells the budget. Returns the bytes still
    /// queued.
    pub(super) fn flush_conn(&mut self, index: usize) -> io::Result<usize> {
        let Some(conn) = self.conns.get_mut(index) else {
            return Ok(0);
        };
        let before = conn.queued();
        let result = if self.rate.is_active() && before > 0 {
            // Upload limit: write at most what the buckets allow, and wait for tokens when
            // that stopped us (rather than a full socket).
            let now = Instant::now();
            let allowed = self.rate.write_allowance(index, now);
            let written = conn.flush_at_most(allowed);
            if let Ok(n) = written {
                self.rate.consumed_write(index, n, now);
                if n >= allowed && conn.queued() > 0 {
                    self.rate.park_write(ConnId {
                        index,
                        generation: conn.generation,
                    });
                }
            }
            written.map(|_| ())
        } else {
            conn.flush()
        };
        let left = conn.queued();
        self.budget.remove(index, before - left);
        debug_assert_eq!(self.budget.queued(index), left, "budget out of step");
        result.map(|()| left)
    }

    /// Connections we stopped taking frames from go back on the read queue once the budget
    /// lets them (their queue drained, or the total did), oldest pause first.
    fn resume_ready(&mut self) {
        for index in self.budget.take_resumable() {
            if let Some(id) = self.id_of(index)
                && self.conns[index].is_open()
            {
                self.readable_again.push_back(id);
            }
        }
        self.trim.observe(self.budget.total());
    }

    fn on_readable(&mut self, index: usize, driver: &mut impl Driver) {
        let Some(id) = self.id_of(index) else {
            return;
        };
        if self.conns[index].splice.is_some() && self.conns[index].is_open() {
            return self.splice_readable(id, driver);
        }
        if matches!(self.conns[index].phase, Phase::Securing { .. })
            && !self.advance_handshake(id, driver)
        {
            return; // still shaking hands, or failed
        }
        // Frames held back while answers piled up go first, before anything more is read, so
        // what is buffered on the input side stays bounded too.
        if !self.deliver_frames(id, driver) {
            return; // paused: picked up again once the queue drains (or closed)
        }
        // Read and hand over frame by frame (a frame is handled while its bytes are still in the
        // CPU cache) until the socket is drained or the budget is spent.
        let mut budget = READ_BUDGET;
        let limited = self.rate.is_active();
        loop {
            if self.conns[index].splice.is_some() {
                // A frame just handed over made the node splice this connection (a relay's
                // `RelayJoin`): what follows is the other peer's, not records of this link.
                return self.splice_readable(id, driver);
            }
            // Download limit: read at most what the buckets allow; with none left, leave the
            // bytes in the socket (TCP slows the sender) until the buckets refill.
            let mut cap = budget;
            let now = limited.then(Instant::now);
            if let Some(now) = now {
                let allowed = self.rate.read_allowance(index, now);
                if allowed == 0 {
                    self.rate.park_read(id);
                    return;
                }
                cap = cap.min(allowed);
            }
            let Some(conn) = self.conns.get_mut(index) else {
                return;
            };
            let before = conn.bytes_read;
            let queued_before = conn.queued();
            let outcome = conn.read_some(cap);
            // Only a link still shaking hands answers reads (`advance_handshake`); an open
            // one only opens records, so nothing was queued here that the budget missed.
            debug_assert_eq!(conn.queued(), queued_before, "an open link answered a read");
            if let Some(now) = now {
                let n = (conn.bytes_read - before) as usize;
                self.rate.consumed_read(index, n, now);
            }
            // Hand over every whole frame read so far, even if the read then failed.
            let taking_more = self.deliver_frames(id, driver);
            match outcome {
                Ok(ReadOutcome::FrameReady(n)) if taking_more && n < budget => budget -= n,
                Ok(ReadOutcome::Drained) => return,
                Ok(ReadOutcome::BudgetSpent) if taking_more && cap < budget => {
                    budget -= cap; // the rate allowance, not the turn, ran out: ask again
                }
                Ok(ReadOutcome::BudgetSpent | ReadOutcome::FrameReady(_)) => {
                    if taking_more {
                        self.readable_again.push_back(id);
                    }
                    return;
                }
                Ok(ReadOutcome::Eof) => return self.fail(id, CloseReason::RemoteClosed, driver),
                Err(e) => return self.fail(id, CloseReason::Io(e), driver),
            }
        }
    }

    /// Hands the whole frames buffered for `id` to the driver one at a time, applying the
    /// driver's actions after each, so the answers count against the output budget before the
    /// next frame is taken. Returns false, leaving the rest buffered, once the connection is
    /// gone, closing, or the budget says no (it is paused until the budget lets it go): a
    /// client that pipelines thousands of requests gets answers only as fast as it reads them,
    /// and no more than one frame's answers beyond the marks are ever queued for it (bounded
    /// requests in flight per connection).
    fn deliver_frames(&mut self, id: ConnId, driver: &mut impl Driver) -> bool {
        loop {
            let Some(conn) = self.conns.get_mut(id.index) else {
                return false;
            };
            if conn.generation != id.generation || !conn.is_open() {
                return false;
            }
            if !self.budget.may_take(id.index) {
                self.budget.pause(id.index);
                return false;
            }
            match conn.decoder.take_frame() {
                Ok(Some(frame)) => {
                    let now = Instant::now();
                    match frame {
                        Frame::Body(body) => driver.handle_frame(id, body, now),
                        Frame::Chunk { req, index, data } => {
                            driver.handle_chunk(id, req, index, data, now)
                        }
                    }
                    self.budget.took_frame(id.index);
                    self.limits.frame_seen(id.index, now);
                }
                Ok(None) => return true,
                Err(e) => {
                    self.fail(id, CloseReason::BadFrame(e.to_string()), driver);
                    return false;
                }
            }
            self.apply_actions(driver);
        }
    }

    /// Drops a connection the node did not close itself and tells the node (a dial that
    /// failed in its handshake is a failed connect; an accepted one it never heard of).
    pub(super) fn fail(&mut self, id: ConnId, reason: CloseReason, driver: &mut impl Driver) {
        if !self.live(id) {
            return;
        }
        if self.conns[id.index].splice.is_some() {
            return self.end_spliced(id, reason, driver);
        }
        let phase = std::mem::replace(&mut self.conns[id.index].phase, Phase::Open);
        self.drop_conn(id.index);
        match phase {
            Phase::Open => driver.handle_closed(id, reason, Instant::now()),
            Phase::Securing { tag: Some(tag), .. } => {
                driver.handle_connect_failed(tag, handshake_failure(reason), Instant::now())
            }
            Phase::Securing { tag: None, .. } => {
                tracing::debug!("handshake with an accepted connection failed: {reason}");
            }
            Phase::Connecting { .. } | Phase::Closing { .. } => {}
        }
    }

    /// Reads what the socket has for a connection still shaking hands and answers it. Once
    /// the handshake is done the node hears of the connection (with the key it proved) and
    /// true is returned: frames that came behind the last handshake message are waiting in
    /// the decoder. False while the handshake goes on, or once it failed (then the connection
    /// is gone and a dialling node told).
    fn advance_handshake(&mut self, id: ConnId, driver: &mut impl Driver) -> bool {
        loop {
            let conn = &mut self.conns[id.index];
            let queued_before = conn.queued();
            let outcome = conn.read_some(READ_BUDGET);
            let answered = conn.queued() - queued_before;
            let remote_peer = conn.remote_peer();
            if answered > 0 {
                self.budget.add(id.index, answered);
                if let Err(e) = self.flush_conn(id.index) {
                    self.fail(id, CloseReason::Io(e), driver);
                    return false;
                }
            }
            match outcome {
                Err(e) => {
                    self.fail(id, CloseReason::Io(e), driver);
                    return false;
                }
                Ok(ReadOutcome::Eof) if remote_peer.is_none() => {
                    self.fail(id, CloseReason::RemoteClosed, driver);
                    return false;
                }
                _ => {}
            }
            if let Some(peer) = remote_peer {
                self.secured(id, peer, driver);
                return self.live(id);
            }
            if matches!(outcome, Ok(ReadOutcome::Drained)) {
                return false;
            }
        }
    }

    /// The handshake of `id` is done and proved `peer`: the node hears of the connection.
    fn secured(&mut self, id: ConnId, peer: PeerId, driver: &mut impl Driver) {
        let conn = &mut self.conns[id.index];
        let Phase::Securing { tag, .. } = conn.phase else {
            return;
        };
        conn.phase = Phase::Open;
        let (remote, now) = (conn.remote, Instant::now());
        match tag {
            Some(tag) => driver.handle_connected(id, tag, remote, peer, now),
            None => driver.handle_accepted(id, remote, peer, now),
        }
        self.apply_actions(driver);
    }

    pub(super) fn drop_conn(&mut self, index: usize) {
        if self.conns.contains(index) {
            let mut conn = self.conns.remove(index);
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
        self.budget.forget(index);
        self.limits.release(index);
        self.rate.forget(index);
    }

    /// Closes accepted connections that sent no complete frame within the idle timeout: an
    /// `Error` frame saying so is queued, the node hears `TimedOut`, and the socket goes once
    /// that is flushed (after a short linger at most).
    fn expire_idle(&mut self, now: Instant, driver: &mut impl Driver) {
        let idle = self.limits.limits().idle_timeout;
        for (index, generation) in self.limits.idle_expired(now) {
            let id = ConnId { index, generation };
            if !self.live(id) {
                continue;
            }
            if matches!(self.conns[index].phase, Phase::Securing { .. }) {
                // A slowloris of the handshake: dropped at the same timeout, and the node,
                // which never heard of the connection, hears nothing now either.
                self.drop_conn(index);
                continue;
            }
            if !self.conns[index].is_open() {
                continue; // already closing; the linger bounds it
            }
            if self.conns[index].splice.is_some() {
                // No frame can be said on a spliced stream: the pair just ends.
                let why = io::Error::new(io::ErrorKind::TimedOut, super::limits::idle_text(idle));
                self.end_spliced(id, CloseReason::Io(why), driver);
                continue;
            }
            if let Ok(1..) = self.queue_and_flush(index, super::limits::idle_frame(idle)) {
                self.conns[index].phase = Phase::Closing {
                    deadline: now + CLOSE_LINGER,
                };
            } else {
                self.drop_conn(index);
            }
            let why = io::Error::new(io::ErrorKind::TimedOut, super::limits::idle_text(idle));
            driver.handle_closed(id, CloseReason::Io(why), now);
        }
    }

    fn expire_connections(&mut self, now: Instant, driver: &mut impl Driver) {
        let mut expired = Vec::new();
        for (index, conn) in self.conns.iter() {
            match conn.phase {
                Phase::Connecting { tag, deadline } if deadline <= now => {
                    expired.push((index, Some((tag, "connection attempt timed out"))))
                }
                Phase::Securing { tag, deadline } if deadline <= now => {
                    expired.push((index, tag.map(|t| (t, "secure handshake timed out"))))
                }
                Phase::Closing { deadline } if deadline <= now => expired.push((index, None)),
                _ => {}
            }
        }
        for (index, tag) in expired {
            self.drop_conn(index);
            if let Some((tag, why)) = tag {
                driver.handle_connect_failed(
                    tag,
                    io::Error::new(io::ErrorKind::TimedOut, why),
                    now,
                );
            }
        }
    }

    fn apply_actions(&mut self, driver: &mut impl Driver) {
        while let Some(action) = driver.poll_action() {
            match action {
                Action::Send(id, bytes) => {
                    if !self.live(id) {
                        continue;
                    }
                    if !self.conns[id.index].is_open() || self.conns[id.index].splice.is_some() {
                        continue;
                    }
                    // A small frame waits for the others this event queues (requests, short
                    // answers): one write and one wake-up of the other side for all of them.
                    let small = bytes.len() < COALESCE_BELOW
                        && self.conns[id.index].queued() < COALESCE_BELOW;
                    let queued = if small {
                        self.queue_only(id.index, bytes).map(|()| {
                            if !self.unflushed.contains(&id) {
                                self.unflushed.push(id);
                            }
                        })
                    } else {
                        self.queue_and_flush(id.index, bytes).map(|_| ())
                    };
                    if let Err(e) = queued {
                        self.fail(id, CloseReason::Io(e), driver);
                    }
                }
                Action::Connect(addr, tag, expected) => self.connect(addr, tag, expected, driver),
                Action::Close(id) => {
                    if !self.live(id) {
                        continue;
                    }
                    // What is queued leaves before the socket goes (or lingers to leave).
                    if self.conns[id.index].queued() > 0
                        && let Err(e) = self.flush_conn(id.index)
                    {
                        tracing::debug!("flushing a connection we close: {e}");
                    }
                    let conn = &mut self.conns[id.index];
                    let was_open = matches!(conn.phase, Phase::Open);
                    if conn.queued() == 0 || !was_open {
                        self.drop_conn(id.index);
                    } else {
                        conn.phase = Phase::Closing {
                            deadline: Instant::now() + CLOSE_LINGER,
                        };
                    }
                    if was_open {
                        driver.handle_closed(id, CloseReason::Local, Instant::now());
                    }
                }
                Action::Exit(code) => {
                    self.exit.get_or_insert(code);
                }
                Action::SendDatagram(to, bytes) => self.udp.send(super::UdpSocketId(0), to, &bytes),
                Action::SendDatagramOn(id, to, bytes) => self.udp.send(id, to, &bytes),
                Action::SetRateLimits(limits) => self.set_rate_limits(limits),
                Action::Hold(id) => {
                    if self.live(id) {
                        self.conns[id.index].hold();
                    }
                }
                Action::Park(id) => {
                    if self.live(id) {
                        self.conns[id.index].park();
                    }
                }
                Action::ConnectFrom(dial) => self.connect_from(dial, driver),
                Action::Restart(id, role) => self.restart(id, role, driver),
                Action::Splice(a, b, rate) => self.splice(a, b, rate, driver),
            }
        }
    }

    fn connect(
        &mut self,
        addr: SocketAddr,
        tag: ConnectTag,
        expected: Option<PeerId>,
        driver: &mut impl Driver,
    ) {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let link = Link::new(Role::Initiator, &self.identity, &self.prologue, expected);
        let inserted = TcpStream::connect(addr)
            .map(|stream| self.insert(stream, addr, Phase::Connecting { tag, deadline }, link));
        match inserted {
            Ok(Some(_)) => {}
            Ok(None) => driver.handle_connect_failed(
                tag,
                io::Error::other("could not register the socket"),
                Instant::now(),
            ),
            Err(e) => driver.handle_connect_failed(tag, e, Instant::now()),
        }
    }

    /// On exit: give queued frames (a goodbye, an unregister) a short chance to leave.
    fn flush_all_briefly(&mut self) {
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut events = Events::with_capacity(64);
        loop {
            let mut pending = false;
            for (_, conn) in self.conns.iter_mut() {
                if conn.queued() > 0 && conn.flush().is_ok() && conn.queued() > 0 {
                    pending = true;
                }
            }
            let now = Instant::now();
            if !pending || now >= deadline {
                return;
            }
            let _ = self.poll.poll(&mut events, Some(deadline - now));
        }
    }

    /// Test and diagnostics helper: the live connection ids.
    pub fn connection_ids(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter_map(|(i, _)| self.id_of(i))
            .collect()
    }
}

enum ConnectOutcome {
    Pending,
    Connected,
    Failed(io::Error),
}

/// mio's recipe for a non-blocking connect: on writable, a pending socket error means failure;
/// `peer_addr` failing with NotConnected means not yet (spurious wake-up).
fn connect_outcome(stream: &TcpStream) -> ConnectOutcome {
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => return ConnectOutcome::Failed(e),
        Ok(None) => {}
    }
    match stream.peer_addr() {
        Ok(_) => ConnectOutcome::Connected,
        Err(e) if e.kind() == io::ErrorKind::NotConnected => ConnectOutcome::Pending,
        Err(e) => ConnectOutcome::Failed(e),
    }
}

/// Whether `addr` is this machine's loopback (IPv4-mapped IPv6 included).
fn is_loopback(addr: SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// What a dialling node hears when the handshake of its connection failed: the link's own
/// error (a wrong key, a record that did not verify) as the error's source, so the node can
/// tell them apart; a close before the handshake ended said as such (a peer at its connection
/// cap closes without a word, having nothing secure to say it with).
fn handshake_failure(reason: CloseReason) -> io::Error {
    match reason {
        CloseReason::Io(e) => e,
        CloseReason::RemoteClosed => {
            io::Error::new(io::ErrorKind::ConnectionAborted, super::HandshakeCut)
        }
        CloseReason::BadFrame(why) => LinkError::Handshake(why).into(),
        CloseReason::Local => io::Error::other("closed"),
    }
}
