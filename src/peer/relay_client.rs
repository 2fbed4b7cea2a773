//! A peer's side of relayed links (PROTOCOL.md §18), as a plain state machine: connections to
//! the relay that open a session (we want a peer we cannot dial) or join one (the relay
//! offered us a peer), from the dial to `RelayStart`, then the restart of each as a fresh
//! secure link with the other peer; and which connections are relayed now. Connect tags and
//! time come in; what to send, hold, restart or close goes out. No sockets, no clock.
//!
//! After `RelayStart` the node forgets the connection until the reactor reports the new
//! link's handshake: the opener's as `handle_connected` with the inner tag (a failure, a
//! wrong key included, as `handle_connect_failed`), the joiner's as `handle_accepted`.

use super::punch::{Dial, Outcome, Punch};
use crate::identity::PeerId;
use crate::reactor::{ConnId, ConnectTag, RestartAs};
use crate::wire::{ErrorCode, Message};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a connection to the relay may wait for `RelayStart` (the relay gives the target
/// 10 s to join, PROTOCOL.md §18.4).
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// What a connection to the relay is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// We open a session to `target`, known as `name` at `addr` (the address that failed);
    /// `inner` is the tag the relayed link's handshake reports with.
    Open {
        name: String,
        addr: SocketAddr,
        target: PeerId,
        inner: ConnectTag,
    },
    /// We join session `session`, offered for `from`.
    Join { session: u64, from: PeerId },
}

/// What the node carries out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayAction {
    /// Our `Hello`, then this message, then hold the connection (`Action::Hold`).
    Ask(ConnId, Message),
    /// Start the relayed link's handshake (`Action::Restart`).
    Restart(ConnId, RestartAs),
    Close(ConnId),
    /// Our attempt to reach `name` through the relay failed: it is unreachable now. `inner`:
    /// the tag the relayed link would have reported with (never will now).
    Failed {
        name: String,
        addr: SocketAddr,
        inner: ConnectTag,
        why: String,
    },
    /// Read nothing more from this connection to the relay while we punch (`Action::Park`).
    Park(ConnId),
    /// Make a punching dial for the session of relay connection `relay`
    /// (`Action::ConnectFrom`), then say with which tag (`punch_dialing`).
    Dial {
        relay: ConnId,
        dial: Dial,
    },
    /// A punched link replaces the relayed one (PROTOCOL.md §18.8): `conn` is a secure link
    /// with `peer` at `remote`, to be taken as the relayed link would have been: as the
    /// connection dialled with `inner` (we opened the session) or as an accepted one (we
    /// joined it, `inner` is `None`).
    Punched {
        conn: ConnId,
        remote: SocketAddr,
        peer: PeerId,
        inner: Option<ConnectTag>,
    },
}

/// A session whose relayed link waits (parked) while we punch.
struct Punching {
    purpose: Purpose,
    /// How the relayed link restarts if punching fails.
    role: RestartAs,
    punch: Punch,
    /// Whether the connection to the relay is still there to fall back on.
    relay_open: bool,
}

#[derive(Default)]
pub struct RelayClient {
    /// Connections to the relay being made.
    dials: HashMap<ConnectTag, Purpose>,
    /// Connections to the relay waiting for `RelayStart`, and until when.
    waiting: HashMap<ConnId, (Purpose, Instant)>,
    /// Inner tags of relayed dials whose handshake has not ended: name each is for.
    inner: HashMap<ConnectTag, String>,
    /// Connections that are relayed links now (or restarted, their handshake going on).
    relayed: HashSet<ConnId>,
    /// The request id of the last `RelayOpen`.
    last_req: u64,
    /// Hole punching (PROTOCOL.md §18.8): our key and the port we listen and punch from;
    /// `None` with `--no-punch` (then `RelayOpen`/`RelayJoin` carry no `punch`).
    punch_from: Option<(PeerId, u16)>,
    /// Relay connections whose session we try to punch, by the relay connection.
    punching: HashMap<ConnId, Punching>,
    /// Connections that are punched links now.
    punched: HashSet<ConnId>,
    out: VecDeque<RelayAction>,
}

impl RelayClient {
    pub fn poll_action(&mut self) -> Option<RelayAction> {
        self.out.pop_front()
    }

    /// A connection to the relay is being made with `tag`, for `purpose`.
    pub fn dialing(&mut self, tag: ConnectTag, purpose: Purpose) {
        self.dials.insert(tag, purpose);
    }

    pub fn owns_dial(&self, tag: ConnectTag) -> bool {
        self.dials.contains_key(&tag)
    }

    pub fn is_waiting(&self, conn: ConnId) -> bool {
        self.waiting.contains_key(&conn)
    }

    pub fn is_relayed(&self, conn: ConnId) -> bool {
        self.relayed.contains(&conn)
    }

    pub fn is_punched(&self, conn: ConnId) -> bool {
        self.punched.contains(&conn)
    }

    /// Relayed, or punched with the relay's help: either way not a link a plain dial to the
    /// peer's address would make.
    pub fn is_reached_through_relay(&self, conn: ConnId) -> bool {
        self.is_relayed(conn) || self.is_punched(conn)
    }

    /// Punch from now on, as `ours`, from our listen port `port` (PROTOCOL.md §18.8).
    pub fn punch_from(&mut self, ours: PeerId, port: u16) {
        self.punch_from = (port != 0).then_some((ours, port));
    }

    /// Whether the dial `tag` is a punching one of ours, running now.
    pub fn owns_punch(&self, tag: ConnectTag) -> bool {
        self.punching.values().any(|p| p.punch.owns(tag))
    }

    /// The punching dial asked for by `Dial{relay, ..}` was made with `tag`.
    pub fn punch_dialing(&mut self, relay: ConnId, tag: ConnectTag) {
        if let Some(p) = self.punching.get_mut(&relay) {
            p.punch.dialing(tag);
        }
    }

    /// A punching dial made a secure link proving `peer`.
    pub fn punch_connected(
        &mut self,
        tag: ConnectTag,
        conn: ConnId,
        remote: SocketAddr,
        peer: PeerId,
        now: Instant,
    ) {
        let found = (self.punching.iter_mut())
            .find_map(|(r, p)| p.punch.connected(tag, conn, peer).map(|o| (*r, o)));
        if let Some((relay, outcome)) = found {
            if matches!(outcome, Outcome::Failed(_)) {
                self.out.push_back(RelayAction::Close(conn));
            }
            self.punch_ended(relay, outcome, remote, peer, now);
        }
    }

    /// A punching dial failed.
    pub fn punch_failed(&mut self, tag: ConnectTag, why: &str, now: Instant) {
        let found = (self.punching.iter_mut())
            .find_map(|(r, p)| p.punch.connect_failed(tag, why, now).map(|o| (*r, o)));
        match found {
            Some((relay, outcome)) => {
                let p = &self.punching[&relay].punch;
                let (to, peer) = (p.to(), p.expected());
                self.punch_ended(relay, outcome, to, peer, now)
            }
            None => self.pump(now),
        }
    }

    /// A connection was accepted on our listener: true if it is the link we punch for
    /// (the other side's SYN found our listener), then taken as the punched link.
    pub fn punch_accepted(
        &mut self,
        conn: ConnId,
        remote: SocketAddr,
        peer: PeerId,
        now: Instant,
    ) -> bool {
        let found = (self.punching.iter_mut())
            .find_map(|(r, p)| p.punch.accepted(conn, remote, peer).map(|o| (*r, o)));
        let Some((relay, outcome)) = found else {
            return false;
        };
        self.punch_ended(relay, outcome, remote, peer, now);
        true
    }

    /// An attempt ended: the punched link replaces the relayed one, or the relayed one is
    /// restarted after all (if the relay is still there).
    fn punch_ended(
        &mut self,
        relay: ConnId,
        outcome: Outcome,
        remote: SocketAddr,
        peer: PeerId,
        now: Instant,
    ) {
        let Some(p) = self.punching.remove(&relay) else {
            return;
        };
        match outcome {
            Outcome::Punched(conn) => {
                tracing::info!("punched a direct link to {} at {remote}", peer.short());
                if p.relay_open {
                    self.out.push_back(RelayAction::Close(relay));
                }
                self.punched.insert(conn);
                let inner = match p.role {
                    RestartAs::Initiator { tag, .. } => Some(tag),
                    RestartAs::Responder => None,
                };
                self.out.push_back(RelayAction::Punched {
                    conn,
                    remote,
                    peer,
                    inner,
                });
            }
            Outcome::Failed(why) if p.relay_open => {
                tracing::info!("{why}; staying relayed");
                self.relayed.insert(relay);
                self.out.push_back(RelayAction::Restart(relay, p.role));
            }
            Outcome::Failed(why) => {
                if let RestartAs::Initiator { tag, .. } = p.role {
                    self.inner.remove(&tag);
                }
                self.fail(p.purpose, format!("{why}, and the relay closed"));
            }
        }
        self.pump(now);
    }

    /// Dials that are due, as actions.
    fn pump(&mut self, now: Instant) {
        for (relay, p) in &self.punching {
            let asked =
                |a: &RelayAction| matches!(a, RelayAction::Dial { relay: r, .. } if r == relay);
            if self.out.iter().any(asked) {
                continue;
            }
            if let Some(dial) = p.punch.poll_dial(now) {
                self.out.push_back(RelayAction::Dial {
                    relay: *relay,
                    dial,
                });
            }
        }
    }

    /// Whether we are reaching `name` through the relay now.
    pub fn reaching(&self, name: &str) -> bool {
        let opens = |p: &Purpose| matches!(p, Purpose::Open { name: n, .. } if n == name);
        self.dials.values().any(opens)
            || self.waiting.values().any(|(p, _)| opens(p))
            || self.inner.values().any(|n| n == name)
    }

    /// The connection to the relay is up: ask for the session.
    pub fn connected(&mut self, tag: ConnectTag, conn: ConnId, now: Instant) {
        let Some(purpose) = self.dials.remove(&tag) else {
            return;
        };
        let punch = self.punch_from.map(|(_, port)| port);
        let ask = match &purpose {
            Purpose::Open { target, .. } => {
                self.last_req += 1;
                Message::RelayOpen {
                    req: self.last_req,
                    peer: *target,
                    punch,
                }
            }
            Purpose::Join { session, .. } => Message::RelayJoin {
                session: *session,
                punch,
            },
        };
        self.out.push_back(RelayAction::Ask(conn, ask));
        self.waiting.insert(conn, (purpose, now + START_TIMEOUT));
    }

    /// The connection to the relay could not be made.
    pub fn connect_failed(&mut self, tag: ConnectTag, why: &str) {
        if let Some(purpose) = self.dials.remove(&tag) {
            self.fail(purpose, format!("cannot reach the relay: {why}"));
        }
    }

    fn fail(&mut self, purpose: Purpose, why: String) {
        if let Purpose::Open {
            name, addr, inner, ..
        } = purpose
        {
            self.out.push_back(RelayAction::Failed {
                name,
                addr,
                inner,
                why,
            });
        }
    }

    /// A message from the relay on a waiting connection.
    pub fn message(&mut self, conn: ConnId, msg: Message, now: Instant) {
        let Some((purpose, _)) = self.waiting.get(&conn) else {
            return;
        };
        let why = match msg {
            Message::Hello { .. } => return, // the relay's: the answer comes next
            Message::RelayStart { peer, addr, .. } => {
                let (purpose, _) = self.waiting.remove(&conn).expect("looked up above");
                let to = addr.and_then(|a| a.parse::<SocketAddr>().ok());
                return self.start(conn, purpose, peer, to, now);
            }
            Message::Error { code, message, .. } => relay_refusal(code, &message),
            other => format!("the relay sent {} before RelayStart", other.kind()),
        };
        let _ = purpose;
        let (purpose, _) = self.waiting.remove(&conn).expect("looked up above");
        self.out.push_back(RelayAction::Close(conn));
        self.fail(purpose, why);
    }

    fn start(
        &mut self,
        conn: ConnId,
        purpose: Purpose,
        peer: PeerId,
        to: Option<SocketAddr>,
        now: Instant,
    ) {
        let punch = match (self.punch_from, to) {
            (Some((ours, _)), Some(to)) if to.port() != 0 => Some(Punch::new(to, peer, ours, now)),
            _ => None,
        };
        match purpose {
            Purpose::Open {
                name,
                addr,
                target,
                inner,
            } => {
                if peer != target {
                    // The handshake would refuse it anyway; a relay that says so is broken.
                    self.out.push_back(RelayAction::Close(conn));
                    let why = format!(
                        "the relay joined us to {}, not {}",
                        peer.short(),
                        target.short()
                    );
                    return self.fail(
                        Purpose::Open {
                            name,
                            addr,
                            target,
                            inner,
                        },
                        why,
                    );
                }
                self.inner.insert(inner, name.clone());
                let expected = Some(target);
                let role = RestartAs::Initiator {
                    tag: inner,
                    expected,
                };
                let purpose = Purpose::Open {
                    name,
                    addr,
                    target,
                    inner,
                };
                self.restart_or_punch(conn, purpose, role, punch, now);
            }
            Purpose::Join { .. } => {
                self.restart_or_punch(conn, purpose, RestartAs::Responder, punch, now);
            }
        }
    }

    /// The relayed link starts now, or once punching failed (PROTOCOL.md §18.8).
    fn restart_or_punch(
        &mut self,
        conn: ConnId,
        purpose: Purpose,
        role: RestartAs,
        punch: Option<Punch>,
        now: Instant,
    ) {
        let Some(punch) = punch else {
            self.relayed.insert(conn);
            self.out.push_back(RelayAction::Restart(conn, role));
            return;
        };
        self.out.push_back(RelayAction::Park(conn));
        self.punching.insert(
            conn,
            Punching {
                purpose,
                role,
                punch,
                relay_open: true,
            },
        );
        self.pump(now);
    }

    /// A relayed dial's handshake ended (`handle_connected` or `handle_connect_failed` with
    /// this tag): whether the tag was one (then the dial is not to go through the relay
    /// again).
    pub fn inner_done(&mut self, tag: ConnectTag) -> bool {
        self.inner.remove(&tag).is_some()
    }

    /// `conn` closed (a waiting one, or a relayed link).
    pub fn closed(&mut self, conn: ConnId, why: &str) {
        self.relayed.remove(&conn);
        self.punched.remove(&conn);
        if let Some(p) = self.punching.get_mut(&conn) {
            // Punching goes on; there is nothing to fall back on now.
            p.relay_open = false;
        }
        if let Some((purpose, _)) = self.waiting.remove(&conn) {
            self.fail(purpose, format!("the relay closed the connection: {why}"));
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let ended: Vec<(ConnId, Outcome)> = (self.punching.iter_mut())
            .filter_map(|(r, p)| p.punch.handle_timeout(now).map(|o| (*r, o)))
            .collect();
        for (relay, outcome) in ended {
            let to = self.punching[&relay].punch.to();
            let peer = self.punching[&relay].punch.expected();
            self.punch_ended(relay, outcome, to, peer, now);
        }
        self.pump(now);
        let late: Vec<ConnId> = (self.waiting.iter())
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(c, _)| *c)
            .collect();
        for conn in late {
            if let Some((purpose, _)) = self.waiting.remove(&conn) {
                self.out.push_back(RelayAction::Close(conn));
                let secs = START_TIMEOUT.as_secs();
                self.fail(
                    purpose,
                    format!("the relay did not start the session within {secs}s"),
                );
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let punches = self
            .punching
            .values()
            .filter_map(|p| p.punch.poll_timeout());
        self.waiting.values().map(|(_, d)| *d).chain(punches).min()
    }
}

/// The words for a relay's `Error`.
fn relay_refusal(code: ErrorCode, message: &str) -> String {
    let message = crate::names::printable(message);
    match code {
        ErrorCode::NoSuchPeer => format!("the relay does not know that peer ({message})"),
        ErrorCode::RelayTimeout => format!("the peer did not answer through the relay ({message})"),
        ErrorCode::Busy => format!("the relay is at its limit ({message})"),
        _ => format!("the relay refused: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PeerId {
        PeerId::from_public_key([n; 32])
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 2], 4000))
    }

    fn open(inner: u64) -> Purpose {
        Purpose::Open {
            name: "Bob".into(),
            addr: addr(),
            target: key(2),
            inner: ConnectTag(inner),
        }
    }

    fn drain(c: &mut RelayClient) -> Vec<RelayAction> {
        std::iter::from_fn(|| c.poll_action()).collect()
    }

    #[test]
    fn an_opened_session_restarts_as_initiator_expecting_the_target() {
        let (t0, conn) = (Instant::now(), ConnId::fake(3));
        let mut c = RelayClient::default();
        c.dialing(ConnectTag(1), open(2));
        assert!(c.reaching("Bob") && !c.reaching("Carol"));
        c.connected(ConnectTag(1), conn, t0);
        let ask = Message::RelayOpen {
            req: 1,
            peer: key(2),
            punch: None,
        };
        assert_eq!(drain(&mut c), [RelayAction::Ask(conn, ask)]);
        c.message(
            conn,
            Message::Hello {
                version: 3,
                name: String::new(),
                listen_port: None,
                agent: "p2p-tracker/x".into(),
            },
            t0,
        );
        assert!(drain(&mut c).is_empty(), "the relay's Hello asks nothing");
        c.message(
            conn,
            Message::RelayStart {
                session: 5,
                peer: key(2),
                addr: None,
            },
            t0,
        );
        let role = RestartAs::Initiator {
            tag: ConnectTag(2),
            expected: Some(key(2)),
        };
        assert_eq!(drain(&mut c), [RelayAction::Restart(conn, role)]);
        assert!(c.is_relayed(conn) && !c.is_waiting(conn));
        assert!(c.reaching("Bob"), "until the relayed handshake ends");
        assert!(c.inner_done(ConnectTag(2)));
        assert!(!c.inner_done(ConnectTag(2)) && !c.reaching("Bob"));
        c.closed(conn, "gone");
        assert!(!c.is_relayed(conn));
    }

    #[test]
    fn a_joined_session_restarts_as_responder() {
        let (t0, conn) = (Instant::now(), ConnId::fake(4));
        let mut c = RelayClient::default();
        c.dialing(
            ConnectTag(7),
            Purpose::Join {
                session: 9,
                from: key(1),
            },
        );
        c.connected(ConnectTag(7), conn, t0);
        assert_eq!(
            drain(&mut c),
            [RelayAction::Ask(
                conn,
                Message::RelayJoin {
                    session: 9,
                    punch: None
                }
            )]
        );
        c.message(
            conn,
            Message::RelayStart {
                session: 9,
                peer: key(1),
                addr: None,
            },
            t0,
        );
        assert_eq!(
            drain(&mut c),
            [RelayAction::Restart(conn, RestartAs::Responder)]
        );
    }

    /// Every way an opened session can fail ends in one `Failed` for the name, and the
    /// connection to the relay closed.
    #[test]
    fn refusals_timeouts_closes_and_a_wrong_peer_fail_the_dial_once() {
        let t0 = Instant::now();
        let failed = |inner: u64, why: &str| RelayAction::Failed {
            name: "Bob".into(),
            addr: addr(),
            inner: ConnectTag(inner),
            why: why.into(),
        };
        let mut c = RelayClient::default();
        c.dialing(ConnectTag(1), open(2));
        c.connect_failed(ConnectTag(1), "refused");
        assert_eq!(
            drain(&mut c),
            [failed(2, "cannot reach the relay: refused")]
        );

        let conn = ConnId::fake(1);
        c.dialing(ConnectTag(3), open(4));
        c.connected(ConnectTag(3), conn, t0);
        drain(&mut c);
        c.message(
            conn,
            Message::Error {
                req: Some(1),
                code: ErrorCode::NoSuchPeer,
                message: "no".into(),
            },
            t0,
        );
        let out = drain(&mut c);
        assert_eq!(out[0], RelayAction::Close(conn));
        assert!(
            matches!(&out[1], RelayAction::Failed { why, .. } if why.contains("does not know"))
        );
        assert_eq!(out.len(), 2);

        let conn = ConnId::fake(2);
        c.dialing(ConnectTag(5), open(6));
        c.connected(ConnectTag(5), conn, t0);
        drain(&mut c);
        assert_eq!(c.poll_timeout(), Some(t0 + START_TIMEOUT));
        c.handle_timeout(t0 + START_TIMEOUT - Duration::from_millis(1));
        assert!(drain(&mut c).is_empty());
        c.handle_timeout(t0 + START_TIMEOUT);
        let out = drain(&mut c);
        assert_eq!(out[0], RelayAction::Close(conn));
        assert_eq!(out.len(), 2);

        let conn = ConnId::fake(3);
        c.dialing(ConnectTag(7), open(8));
        c.connected(ConnectTag(7), conn, t0);
        drain(&mut c);
        c.message(
            conn,
            Message::RelayStart {
                session: 1,
                peer: key(9),
                addr: None,
            },
            t0,
        );
        let out = drain(&mut c);
        assert_eq!(out[0], RelayAction::Close(conn));
        assert!(!c.is_relayed(conn), "never restarted towards the wrong key");

        let conn = ConnId::fake(4);
        c.dialing(ConnectTag(9), open(10));
        c.connected(ConnectTag(9), conn, t0);
        drain(&mut c);
        c.closed(conn, "reset");
        assert_eq!(
            drain(&mut c),
            [failed(10, "the relay closed the connection: reset")]
        );
        assert_eq!(c.poll_timeout(), None);
    }

    fn start_punching(c: &mut RelayClient, conn: ConnId, t0: Instant) -> ConnectTag {
        c.punch_from(key(1), 7001);
        c.dialing(ConnectTag(1), open(2));
        c.connected(ConnectTag(1), conn, t0);
        let ask = Message::RelayOpen {
            req: 1,
            peer: key(2),
            punch: Some(7001),
        };
        assert_eq!(drain(c), [RelayAction::Ask(conn, ask)]);
        let start = Message::RelayStart {
            session: 5,
            peer: key(2),
            addr: Some("203.0.113.9:7002".into()),
        };
        c.message(conn, start, t0);
        let out = drain(c);
        assert_eq!(out[0], RelayAction::Park(conn), "{out:?}");
        let RelayAction::Dial { relay, dial } = &out[1] else {
            panic!("a punching dial: {out:?}");
        };
        assert_eq!(*relay, conn);
        assert_eq!(dial.to, SocketAddr::from(([203, 0, 113, 9], 7002)));
        assert!(dial.initiator, "key(1) < key(2)");
        assert_eq!(out.len(), 2);
        c.punch_dialing(conn, ConnectTag(10));
        assert!(c.owns_punch(ConnectTag(10)) && c.reaching("Bob"));
        assert!(!c.is_relayed(conn));
        ConnectTag(10)
    }

    #[test]
    fn a_punched_link_replaces_the_relayed_one() {
        let (t0, conn) = (Instant::now(), ConnId::fake(3));
        let mut c = RelayClient::default();
        let tag = start_punching(&mut c, conn, t0);
        let punched = ConnId::fake(4);
        let remote = SocketAddr::from(([203, 0, 113, 9], 7002));
        c.punch_connected(tag, punched, remote, key(2), t0);
        assert_eq!(
            drain(&mut c),
            [
                RelayAction::Close(conn),
                RelayAction::Punched {
                    conn: punched,
                    remote,
                    peer: key(2),
                    inner: Some(ConnectTag(2)),
                }
            ]
        );
        assert!(c.is_punched(punched) && !c.is_relayed(conn));
        c.closed(conn, "we closed it");
        assert!(drain(&mut c).is_empty());
        c.closed(punched, "gone");
        assert!(!c.is_punched(punched));
    }

    #[test]
    fn a_failed_punch_restarts_the_relayed_link_or_fails_without_a_relay() {
        let (t0, conn) = (Instant::now(), ConnId::fake(3));
        let mut c = RelayClient::default();
        let mut tag = start_punching(&mut c, conn, t0);
        // Refused dials are made again until TCP's time is up.
        let mut now = t0;
        loop {
            now += Duration::from_millis(1);
            c.punch_failed(tag, "connection refused", now);
            let out = drain(&mut c);
            if let [RelayAction::Restart(relay, role)] = &out[..] {
                assert_eq!(*relay, conn);
                assert!(matches!(role, RestartAs::Initiator { .. }));
                break;
            }
            assert!(out.is_empty(), "{out:?}");
            now = c.poll_timeout().unwrap();
            c.handle_timeout(now);
            let out = drain(&mut c);
            let [RelayAction::Dial { .. }] = &out[..] else {
                panic!("dialled again: {out:?}");
            };
            tag = ConnectTag(tag.0 + 1);
            c.punch_dialing(conn, tag);
        }
        assert!(now - t0 <= crate::peer::punch::TCP_TIMEOUT);
        assert!(c.is_relayed(conn));

        // The relay went while we punched: the dial fails for good.
        let mut c = RelayClient::default();
        let tag = start_punching(&mut c, conn, t0);
        c.closed(conn, "reset");
        assert!(drain(&mut c).is_empty(), "punching goes on");
        c.handle_timeout(t0 + crate::peer::punch::GIVE_UP);
        let out = drain(&mut c);
        assert!(
            matches!(&out[..], [RelayAction::Failed { inner, .. }] if *inner == ConnectTag(2)),
            "{out:?}"
        );
        assert!(!c.owns_punch(tag) && !c.reaching("Bob"));
    }

    #[test]
    fn without_punching_or_an_address_the_relayed_link_starts_at_once() {
        let (t0, conn) = (Instant::now(), ConnId::fake(3));
        let mut c = RelayClient::default();
        c.punch_from(key(1), 7001);
        c.dialing(ConnectTag(1), open(2));
        c.connected(ConnectTag(1), conn, t0);
        drain(&mut c);
        let start = Message::RelayStart {
            session: 5,
            peer: key(2),
            addr: None,
        };
        c.message(conn, start, t0);
        assert!(matches!(&drain(&mut c)[..], [RelayAction::Restart(..)]));
    }
}
