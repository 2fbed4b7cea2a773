//! The seam between the generic reactor and a node (tracker or peer).
//!
//! A node never touches a socket or a clock: the reactor feeds it events with the current time
//! and then drains its actions. That keeps every protocol rule testable with fake connection ids
//! and a fake clock.

use crate::identity::PeerId;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

/// A connection handle: slab index plus a generation, so an action queued for a connection that
/// closed can never reach a new connection that reused the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub index: usize,
    pub generation: u64,
}

impl ConnId {
    /// For tests of nodes: a connection id that needs no reactor.
    pub fn fake(n: usize) -> ConnId {
        ConnId {
            index: n,
            generation: n as u64,
        }
    }
}

/// Opaque value a node attaches to an outgoing connect, handed back when it completes or fails.
/// What a `Connect` action is for, echoed back in `handle_connected`/`handle_connect_failed`:
/// the node's own number, a type of its own so it is never mistaken for a request id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectTag(pub u64);

/// A dial whose connection the other side closed before the secure handshake ended: a peer
/// at its connection cap does that (it has nothing secure to say "busy" with), as does a
/// server that is no p2p peer of this version. The source of the `io::Error` the node gets in
/// `handle_connect_failed`, so it can try such a peer again later, as a busy one.
#[derive(Debug)]
pub struct HandshakeCut;

impl std::fmt::Display for HandshakeCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "closed by the other side during the secure handshake (at its connection limit, \
             or not a p2p peer of this protocol version)",
        )
    }
}

impl std::error::Error for HandshakeCut {}

impl HandshakeCut {
    /// Whether `error` is a handshake cut short by the other side.
    pub fn is(error: &io::Error) -> bool {
        error.get_ref().is_some_and(|e| e.is::<HandshakeCut>())
    }
}

/// Why a connection ended.
#[derive(Debug)]
pub enum CloseReason {
    /// The remote side closed cleanly (EOF).
    RemoteClosed,
    /// The node asked for the close.
    Local,
    /// A socket error (reset, refused...).
    Io(io::Error),
    /// The remote sent bytes that are not a valid frame stream.
    BadFrame(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::RemoteClosed => f.write_str("closed by the other side"),
            CloseReason::Local => f.write_str("closed"),
            CloseReason::Io(e) => write!(f, "{e}"),
            CloseReason::BadFrame(why) => f.write_str(why),
        }
    }
}

/// Something outside the network that the node must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// A line typed by the user or read from a batch file.
    Line(String),
    /// The input has ended (Ctrl-D, end of the batch file).
    EndOfInput,
    /// SIGINT or SIGTERM arrived (or whoever started the node asks it to stop).
    Shutdown(Signal),
    /// A helper thread (hashing, disk scans) has results waiting in a channel of the node's
    /// own; the node drains it. Carries nothing so the reactor stays ignorant of what they are.
    Work,
}

/// Which signal asked a node to stop: in the REPL, Ctrl-C stops the foreground command, not
/// the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C.
    Interrupt,
    /// SIGTERM, or a stop asked for by the program itself.
    Terminate,
}

/// What a node asks the reactor to do.
#[derive(Debug)]
pub enum Action {
    /// Queue these bytes (one or more whole frames) on the connection.
    Send(ConnId, Vec<u8>),
    /// Open a connection (TCP, then the secure handshake); answered with `handle_connected`
    /// or `handle_connect_failed`. With a key expected, a handshake that proves another one
    /// fails before we show ours (the error's source is `LinkError::WrongKey`).
    Connect(SocketAddr, ConnectTag, Option<PeerId>),
    /// Close the connection after flushing what is queued for it (bounded by a short linger).
    Close(ConnId),
    /// Leave the event loop; the process exits with this code.
    Exit(i32),
    /// Send one UDP datagram from the reactor's UDP socket (best effort: dropped if it
    /// cannot leave now, or if there is no UDP socket).
    SendDatagram(SocketAddr, Vec<u8>),
    /// Send one UDP datagram from the socket named (the port-mapping one: the router answers
    /// the port a request came from). Best effort, like `SendDatagram`.
    SendDatagramOn(super::UdpSocketId, SocketAddr, Vec<u8>),
    /// Upload and download rate limits from now on (`rate.rs`); the default is unlimited.
    SetRateLimits(super::RateLimits),
    /// From now on, open this connection's records one at a time and stop reading at each
    /// whole frame: a peer sets it on a connection to a relay before the relay's `RelayStart`,
    /// behind which come the other peer's bytes, not records of this link (PROTOCOL.md §18).
    Hold(ConnId),
    /// A fresh secure handshake straight on this connection's TCP stream (after a relay's
    /// `RelayStart`). The node forgets the connection until the handshake ends: as
    /// `handle_connected`/`handle_connect_failed` with the tag for an initiator, as
    /// `handle_accepted` for a responder (`splice.rs`).
    Restart(ConnId, super::RestartAs),
    /// Read nothing more from this connection until it is restarted (`Restart`) or closed: a
    /// peer parks its connection to the relay after `RelayStart` while it tries to punch
    /// (PROTOCOL.md §18.8), so the other side's bytes wait in the socket for the restart.
    Park(ConnId),
    /// A hole-punching dial (`punch.rs`, PROTOCOL.md §18.8): TCP from a socket bound to our
    /// listen port (shared with the listener), then the secure handshake in the role given,
    /// which must prove the key expected. Answered like `Connect`, with the tag.
    ConnectFrom(super::PunchDial),
    /// Copy the two connections' bytes to each other unread from now on, at most this many
    /// bytes a second each way if given (a relay's session, after `RelayStart` was queued on
    /// both). Either one ending ends both.
    Splice(ConnId, ConnId, Option<u64>),
}

pub trait Driver {
    /// A remote connected to one of our listeners and proved, in the secure handshake, that
    /// it holds the key of `peer`.
    fn handle_accepted(&mut self, conn: ConnId, remote: SocketAddr, peer: PeerId, now: Instant);
    /// An outgoing connection asked for with `Action::Connect` is established and its
    /// handshake proved `peer` on the other side.
    fn handle_connected(
        &mut self,
        conn: ConnId,
        tag: ConnectTag,
        remote: SocketAddr,
        peer: PeerId,
        now: Instant,
    );
    /// An outgoing connection could not be established (refused, timed out, or its
    /// handshake failed: then the error's source is the `LinkError`).
    fn handle_connect_failed(&mut self, tag: ConnectTag, error: io::Error, now: Instant);
    /// One whole frame body arrived (length prefix removed, not yet decoded).
    fn handle_frame(&mut self, conn: ConnId, body: &[u8], now: Instant);
    /// A `Chunk` frame arrived, assembled apart by the decoder (its data never copied out of
    /// the buffer it was opened into): the message `handle_frame`'s body decodes to. A driver
    /// that takes chunks takes them here; the default hands the frame to `handle_frame` as a
    /// body again, so a driver that expects none sees what it would have seen.
    fn handle_chunk(&mut self, conn: ConnId, req: u64, index: u64, data: Vec<u8>, now: Instant) {
        let frame = crate::wire::encode_message(&crate::wire::Message::Chunk { req, index, data });
        self.handle_frame(conn, &frame[4..], now);
    }
    /// The connection is gone; its id will never be used again.
    fn handle_closed(&mut self, conn: ConnId, reason: CloseReason, now: Instant);
    /// Input from the user or a signal.
    fn handle_control(&mut self, ctl: Control, now: Instant);
    /// Called after every batch of events; the node fires whatever timers are due.
    fn handle_timeout(&mut self, now: Instant);
    /// The next instant `handle_timeout` must run, if any.
    fn poll_timeout(&self) -> Option<Instant>;
    /// A UDP datagram arrived on a socket added with `Reactor::add_udp`. Nodes without UDP
    /// need not implement it.
    fn handle_datagram(&mut self, _from: SocketAddr, _bytes: &[u8], _now: Instant) {}
    /// A UDP datagram arrived on the socket `socket` (what `Reactor::add_udp` returned). A
    /// node with one socket need not tell them apart: by default this is `handle_datagram`.
    fn handle_datagram_on(
        &mut self,
        _socket: super::UdpSocketId,
        from: SocketAddr,
        bytes: &[u8],
        now: Instant,
    ) {
        self.handle_datagram(from, bytes, now)
    }
    /// The next action to carry out, until `None`.
    fn poll_action(&mut self) -> Option<Action>;
}
