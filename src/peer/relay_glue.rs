//! The node's side of relayed links (`relay_client.rs`, PROTOCOL.md §18): a dial that could
//! not reach a peer falls back to the tracker's relay when it relays; an offer from the relay
//! is joined; what the relay client asks for becomes reactor actions. No rule lives here.

use super::event::Problem;
use super::node::{ConnectPurpose, PeerNode};
use super::relay_client::{Purpose, RelayAction};
use crate::reactor::{Action, ConnId, ConnectTag, Driver, PunchDial};
use crate::wire::{Message, PROTOCOL_VERSION, decode_message};
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

impl PeerNode {
    /// A dial to `name` at `addr` failed with `error`, and no other address is left: reach it
    /// through the relay instead, if the tracker relays and the failure is one a relay can
    /// get around (nothing answered; not a wrong key, not a busy peer). True if we do.
    pub(super) fn relay_fallback(
        &mut self,
        name: &str,
        addr: SocketAddr,
        error: &io::Error,
        now: Instant,
    ) -> bool {
        let unanswered = matches!(
            error.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::TimedOut
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::ConnectionReset
        );
        if !unanswered || !self.tracker.relays() || self.relay.reaching(name) {
            return false;
        }
        // The relay finds the target by its key: without one we cannot name it.
        let Some(target) = self.expected_key(name) else {
            return false;
        };
        if self.is_us(Some(target)) {
            return false;
        }
        tracing::info!("cannot reach {name} at {addr} ({error}); trying through the relay");
        let inner = self.next_connect_tag();
        let name = name.to_string();
        let purpose = Purpose::Open {
            name: name.clone(),
            addr,
            target,
            inner,
        };
        // The relayed link reports with `inner` like a dial to the peer.
        self.connecting
            .insert(inner, ConnectPurpose::Peer { name, addr });
        self.relay_dial(purpose, now);
        true
    }

    /// The relay offers us a peer: join its session on a new connection.
    pub(super) fn relay_offer(
        &mut self,
        session: u64,
        from: crate::identity::PeerId,
        now: Instant,
    ) {
        self.relay_dial(Purpose::Join { session, from }, now);
    }

    fn relay_dial(&mut self, purpose: Purpose, now: Instant) {
        let tag = self.next_connect_tag();
        self.relay.dialing(tag, purpose);
        let (addr, expected) = (self.tracker.addr(), self.cfg.tracker_id);
        self.actions.push_back(Action::Connect(addr, tag, expected));
        self.relay_drain(now);
    }

    pub(super) fn relay_connected(&mut self, tag: ConnectTag, conn: ConnId, now: Instant) {
        self.relay.connected(tag, conn, now);
        self.relay_drain(now);
    }

    pub(super) fn relay_connect_failed(
        &mut self,
        tag: ConnectTag,
        error: &io::Error,
        now: Instant,
    ) {
        self.relay.connect_failed(tag, &error.to_string());
        self.relay_drain(now);
    }

    pub(super) fn relay_frame(&mut self, conn: ConnId, body: &[u8], now: Instant) {
        match decode_message(body) {
            Ok(msg) => self.relay.message(conn, msg, now),
            Err(e) => {
                let why = format!("bad frame from the relay: {e}");
                self.close(conn);
                self.relay.closed(conn, &why);
            }
        }
        self.relay_drain(now);
    }

    pub(super) fn relay_closed(&mut self, conn: ConnId, why: &str, now: Instant) {
        self.relay.closed(conn, why);
        self.relay_drain(now);
    }

    pub(super) fn relay_tick(&mut self, now: Instant) {
        self.relay.handle_timeout(now);
        self.relay_drain(now);
    }

    pub(super) fn relay_drain(&mut self, now: Instant) {
        while let Some(action) = self.relay.poll_action() {
            match action {
                RelayAction::Ask(conn, msg) => {
                    // Our Hello names no port: the relay is no peer to call us back.
                    let hello = Message::Hello {
                        version: PROTOCOL_VERSION,
                        name: self.cfg.name.clone(),
                        listen_port: None,
                        agent: format!("p2p/{}", env!("CARGO_PKG_VERSION")),
                    };
                    self.send(conn, &hello);
                    self.send(conn, &msg);
                    self.actions.push_back(Action::Hold(conn));
                }
                RelayAction::Restart(conn, role) => {
                    self.actions.push_back(Action::Restart(conn, role));
                }
                RelayAction::Close(conn) => self.close(conn),
                RelayAction::Park(conn) => self.actions.push_back(Action::Park(conn)),
                RelayAction::Dial { relay, dial } => {
                    let tag = self.next_connect_tag();
                    self.relay.punch_dialing(relay, tag);
                    self.actions.push_back(Action::ConnectFrom(PunchDial {
                        to: dial.to,
                        local_port: self.listen_port,
                        tag,
                        expected: dial.expected,
                        initiator: dial.initiator,
                        timeout: dial.timeout,
                    }));
                }
                // The punched link is taken as the relayed one would have been: the session
                // opener's as its dial, the joiner's as an accepted connection.
                RelayAction::Punched {
                    conn,
                    remote,
                    peer,
                    inner,
                } => match inner {
                    Some(tag) => self.handle_connected(conn, tag, remote, peer, now),
                    None => self.handle_accepted(conn, remote, peer, now),
                },
                RelayAction::Failed {
                    name,
                    addr,
                    inner,
                    why,
                } => {
                    self.connecting.remove(&inner);
                    self.relay_gave_up(&name, addr, why, now);
                }
            }
        }
    }

    /// Reaching `name` through the relay failed too: it is unreachable.
    fn relay_gave_up(&mut self, name: &str, addr: SocketAddr, why: String, now: Instant) {
        let error = format!("no direct connection, and through the relay: {why}");
        let why = Problem::CannotReach {
            peer: name.to_string(),
            addr,
            error,
        };
        self.peer_unreachable(name, why, now);
        self.downloads_peer_unreachable(name, now);
    }

    /// How `name` is reached now, for `peers`: `direct`, `punched` or `relayed` while
    /// connected (the best of its links).
    pub(super) fn reached_via(&self, name: &str) -> Option<&'static str> {
        let mut via = None;
        for (conn, s) in &self.sessions {
            if s.name.as_deref() == Some(name) && !s.closing {
                if self.relay.is_punched(*conn) {
                    via = Some("punched");
                } else if !self.relay.is_relayed(*conn) {
                    return Some("direct");
                } else if via.is_none() {
                    via = Some("relayed");
                }
            }
        }
        via
    }
}
