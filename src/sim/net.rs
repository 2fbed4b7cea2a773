//! The network between the nodes: connection pairs, frames cut by each receiving end's
//! decoder, the reactor's close, connect-timeout and idle-timeout rules, LAN datagrams, link
//! latency, and the faults a test scripts (silence, cut, refuse, black hole).

use super::{CONNECT_TIMEOUT, Input, Kind, NodeId, Sim, State};
use crate::reactor::{Action, CloseReason, ConnId, ConnectTag};
use crate::wire::{Frame, FrameDecoder};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One end of a connection, as seen from the node that holds it.
pub(super) struct End {
    /// The other end.
    pub(super) peer: (NodeId, ConnId),
    /// Bytes that arrived for this end, cut into frames.
    pub(super) decoder: FrameDecoder,
    /// A close is on its way to this end's node: nothing more reaches it.
    pub(super) doomed: bool,
    /// What this end sends vanishes (a host that went away without closing).
    pub(super) muted: bool,
    /// Accepted ends: when the last complete frame came (for the idle timeout).
    pub(super) idle_since: Option<Instant>,
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

fn end_to(peer: (NodeId, ConnId), idle_since: Option<Instant>) -> End {
    End {
        peer,
        decoder: FrameDecoder::with_whole_chunks(),
        doomed: false,
        muted: false,
        idle_since,
    }
}

impl Sim {
    /// Every frame, connect and close takes `d` to arrive from now on (zero by default): a
    /// transfer then takes fake time, so a test can act in the middle of one.
    pub fn set_latency(&mut self, d: Duration) {
        self.latency = d;
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

    pub(super) fn apply(&mut self, n: NodeId, action: Action) {
        match action {
            Action::Send(conn, bytes) => self.send_bytes((n, conn), &bytes),
            Action::Connect(addr, tag, expected) => self.connect(n, addr, tag, expected),
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
            // The simulated network has no router to ask for a port mapping.
            Action::SendDatagramOn(..) => {}
            Action::SetRateLimits(limits) => self.nodes[n].rate_limits.push(limits),
            // Relayed links (PROTOCOL.md §18) are not modelled: the simulator carries frames,
            // not the secure links a relay splices or a peer restarts. Holding changes
            // nothing for frames; a restart fails like a dial whose handshake failed and a
            // splice ends both connections, so a scenario that reaches them sees a clear end
            // rather than a hang (tests/relay.rs covers them with real processes).
            Action::Hold(_) | Action::Park(_) => {}
            // Nor hole punching: the dial fails at once, and the node falls back to the relay.
            Action::ConnectFrom(dial) => {
                let why = io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the simulator does not model hole punching",
                );
                let now = self.now;
                if let Some(d) = self.nodes[n].driver() {
                    d.handle_connect_failed(dial.tag, why, now);
                }
            }
            Action::Restart(conn, role) => {
                self.apply(n, Action::Close(conn));
                if let crate::reactor::RestartAs::Initiator { tag, .. } = role {
                    let why = io::Error::new(
                        io::ErrorKind::Unsupported,
                        "the simulator does not model relayed links",
                    );
                    let now = self.now;
                    if let Some(d) = self.nodes[n].driver() {
                        d.handle_connect_failed(tag, why, now);
                    }
                }
            }
            Action::Splice(a, b, _) => {
                tracing::warn!("the simulator does not model relayed links: closing both");
                self.apply(n, Action::Close(a));
                self.apply(n, Action::Close(b));
            }
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
        // In pieces as a secure link opens them: a chunk frame's head in a record of its own,
        // then records of at most 65,519 bytes (see `Conn::queue`).
        let head = crate::wire::chunk_head_cut(bytes);
        peer.decoder.extend(&bytes[..head]);
        for piece in bytes[head..].chunks(crate::secure::MAX_RECORD_PLAINTEXT) {
            peer.decoder.extend(piece);
        }
        let mut frames = Vec::new();
        let conn = to.1;
        let broken = loop {
            match peer.decoder.take_frame() {
                Ok(Some(Frame::Body(body))) => frames.push(Input::Frame {
                    conn,
                    body: body.to_vec(),
                }),
                // As the reactor's decoder does: large chunks come assembled apart.
                Ok(Some(Frame::Chunk { req, index, data })) => frames.push(Input::Chunk {
                    conn,
                    req,
                    index,
                    data,
                }),
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            }
        };
        for input in frames {
            self.emit(to.0, input);
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

    /// A dial, as the reactor makes it: refused, lost in a black hole, or connected to the node
    /// at `addr` — unless `expected` names another key than that node's: then the handshake
    /// fails as the reactor's would (`LinkError::WrongKey`).
    fn connect(
        &mut self,
        n: NodeId,
        addr: SocketAddr,
        tag: ConnectTag,
        expected: Option<crate::identity::PeerId>,
    ) {
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
            (None, Some(t)) if expected.is_some_and(|k| k != self.nodes[t].key) => {
                let wrong = crate::secure::LinkError::WrongKey {
                    expected: expected.expect("checked"),
                    found: self.nodes[t].key,
                };
                let error = io::Error::new(io::ErrorKind::InvalidData, wrong);
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
                let accepted = Input::Accepted {
                    conn: theirs,
                    remote: from,
                    peer: self.nodes[n].key,
                };
                let connected = Input::Connected {
                    conn: ours,
                    tag,
                    remote: addr,
                    peer: self.nodes[t].key,
                };
                if self.latency.is_zero() {
                    self.queue.push_back((t, accepted));
                    self.queue.push_back((n, connected));
                } else {
                    // As the reactor reports them over a link of one-way latency L: TCP's
                    // SYN and SYN-ACK (2 L), the secure handshake's messages 1 and 2 (2 L):
                    // the connector's link opens at 4 L; its message 3, with the first frame
                    // right behind it, opens the acceptor's at 5 L.
                    let l = self.latency;
                    self.later_input(self.now + 5 * l, t, accepted);
                    self.later_input(self.now + 4 * l, n, connected);
                }
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
    pub(super) fn expire_idle(&mut self) {
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
    pub(super) fn gone(&mut self, n: NodeId, code: Option<i32>) {
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
}
