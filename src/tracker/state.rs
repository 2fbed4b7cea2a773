//! The tracker's protocol logic as a sans-IO state machine.
//!
//! Inputs arrive through the [`Driver`] methods with the current time; outputs leave through
//! [`Driver::poll_action`]. Nothing here owns a socket or reads a clock.
//!
//! Per connection: `AwaitingHello` (with a deadline) → `Ready` → `Closing` (we asked the reactor
//! to close it and ignore whatever else it sends) → forgotten in `handle_closed`.

use super::holds::Holds;
#[cfg(test)]
use super::holds::NAME_HOLD;
use super::listing::{Ask, Lister};
use super::registry::{Listed, RegisterError, Registered, Registry};
use super::relay::{Relay, RelayConfig};
use crate::identity::PeerId;
use crate::names::{check_peer_name, printable};
#[cfg(test)]
use crate::reactor::Signal;
use crate::reactor::{Action, CloseReason, ConnId, ConnectTag, Control, Driver, Limits};
use crate::wire::{ErrorCode, Message, PROTOCOL_VERSION, decode_message, encode_message};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What the tracker calls itself in its `Hello`.
pub const AGENT: &str = concat!("p2p-tracker/", env!("CARGO_PKG_VERSION"));

/// Most registrations held at once. Beyond it a new registration gets `Busy`. (A `Peers`
/// answer holds at most `listing::MAX_LISTED` of them, so its size does not grow with this.)
pub const MAX_PEERS: usize = 10_000;

/// Default for the most registrations one IP may hold (`--max-peers-per-ip`). Generous enough
/// for a NAT with a few dozen peers behind it, small enough that one host cannot fill the table.
pub const DEFAULT_MAX_PEERS_PER_IP: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackerConfig {
    /// A registration not refreshed (Register or Heartbeat) for this long is forgotten.
    pub peer_ttl: Duration,
    /// A connection that has not sent `Hello` this long after it was accepted is closed.
    pub handshake_timeout: Duration,
    /// Most registrations with the same IP; beyond it a new one gets `Busy`.
    pub max_peers_per_ip: usize,
    /// The reactor's connection caps and idle timeout (see [`super::run`] for how the idle
    /// timeout relates to `peer_ttl`).
    pub limits: Limits,
    /// `--relay`: relay sessions between registered peers (`relay.rs`, PROTOCOL.md §18).
    pub relay: Option<RelayConfig>,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            peer_ttl: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            max_peers_per_ip: DEFAULT_MAX_PEERS_PER_IP,
            limits: Limits::default(),
            relay: None,
        }
    }
}

enum Phase {
    /// Accepted; the first frame must be `Hello`. `deadline` is also in `Tracker::handshakes`
    /// (absent only if `now + handshake_timeout` is not representable).
    AwaitingHello {
        deadline: Option<Instant>,
    },
    Ready,
    /// We queued `Action::Close`; frames still in flight are ignored.
    Closing,
}

struct Conn {
    /// The address the connection comes from: the only address we trust for it.
    remote: SocketAddr,
    /// The key its handshake proved: the key any name it registers is held for.
    peer: PeerId,
    phase: Phase,
}

pub struct Tracker {
    config: TrackerConfig,
    log: Box<dyn FnMut(&str)>,
    /// Every connection between `handle_accepted` and `handle_closed`.
    conns: HashMap<ConnId, Conn>,
    /// `(deadline, conn)` for every connection in `AwaitingHello` with a deadline.
    handshakes: BTreeSet<(Instant, ConnId)>,
    registry: Registry,
    /// Builds `Peers` answers (bounded, sampled, from each registration's cached bytes).
    lister: Lister,
    actions: VecDeque<Action>,
    /// Which key held each name lately (`holds.rs`), and where to save them.
    holds: Holds,
    save_holds: Option<SaveHolds>,
    /// When the holds changed and are to be saved (a few seconds later: one save per burst).
    save_due: Option<Instant>,
    /// The relay's sessions, with `--relay`.
    relay: Option<Relay>,
}

/// Writes the holds somewhere they survive a restart (the tracker's state folder).
pub type SaveHolds = Box<dyn FnMut(&Holds, Instant)>;

/// How long after a change the holds are saved: registrations come in bursts (a tracker
/// restart), and one write covers the burst.
const SAVE_HOLDS_AFTER: Duration = Duration::from_secs(2);

impl Tracker {
    /// `log` receives one human line per notable event (peer registered / left / expired /
    /// refused / bad frame).
    pub fn new(config: TrackerConfig, log: Box<dyn FnMut(&str)>) -> Tracker {
        Tracker {
            config: config.clone(),
            log,
            conns: HashMap::new(),
            handshakes: BTreeSet::new(),
            registry: Registry::new(MAX_PEERS, config.max_peers_per_ip),
            lister: Lister::new(random_seed()),
            actions: VecDeque::new(),
            holds: Holds::default(),
            save_holds: None,
            save_due: None,
            relay: config.relay.clone().map(Relay::new),
        }
    }

    /// Starts from `holds` (read from the state folder) and hands them to `save` whenever
    /// they changed. Without it, holds last as long as the process.
    pub fn keep_holds(mut self, holds: Holds, save: SaveHolds) -> Tracker {
        self.holds = holds;
        self.save_holds = Some(save);
        self
    }

    /// `name` is `key`'s for a day from `now` (`holds.rs`), at each registration and when it
    /// ends; a change worth keeping is saved a little later.
    fn hold_name(&mut self, name: &str, key: PeerId, now: Instant) {
        self.holds.hold(name, key, now);
        if self.holds.take_dirty() && self.save_holds.is_some() {
            self.save_due.get_or_insert(now + SAVE_HOLDS_AFTER);
        }
    }

    /// Holds at most `max_peers` registrations instead of [`MAX_PEERS`]. For the in-process
    /// scale benchmark (`benches/tracker_scale.rs`: 100,000 simulated peers); call it before
    /// anything registers (the table starts over).
    #[doc(hidden)]
    pub fn with_max_peers(mut self, max_peers: usize) -> Tracker {
        self.registry = Registry::new(max_peers, self.config.max_peers_per_ip);
        self
    }

    /// Live registrations.
    pub fn peer_count(&self) -> usize {
        self.registry.len()
    }

    fn log(&mut self, line: &str) {
        (self.log)(line);
    }

    fn send(&mut self, conn: ConnId, msg: &Message) {
        self.actions
            .push_back(Action::Send(conn, encode_message(msg)));
    }

    fn send_error(&mut self, conn: ConnId, req: Option<u64>, code: ErrorCode, message: String) {
        self.send(conn, &Message::Error { req, code, message });
    }

    /// "1.2.3.4:5678" or "1.2.3.4:5678 (Alice)": who a connection is, for logs.
    fn describe(&self, conn: ConnId) -> String {
        let remote = match self.conns.get(&conn) {
            Some(c) => c.remote.to_string(),
            None => format!("unknown connection {}", conn.index),
        };
        match self.registry.name_of(conn) {
            Some(name) => format!("{remote} ({name})"),
            None => remote,
        }
    }

    /// Asks the reactor to close `conn` (after flushing what is queued) and forgets its
    /// registration now, so the name is free at once.
    fn close(&mut self, conn: ConnId, now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if let Phase::AwaitingHello {
                deadline: Some(deadline),
            } = c.phase
            {
                self.handshakes.remove(&(deadline, conn));
            }
            c.phase = Phase::Closing;
        }
        if let Some(relay) = self.relay.as_mut() {
            relay.closed(conn);
        }
        if let Some((name, reg)) = self.registry.remove_conn(conn) {
            self.log(&format!("{name} left"));
            self.hold_name(&name, reg.key, now);
        }
        self.actions.push_back(Action::Close(conn));
    }

    /// Forgets every registration whose time to live has run out by `now`.
    fn expire_due(&mut self, now: Instant) {
        let ttl = self.config.peer_ttl;
        for (name, reg) in self.registry.expire(now, ttl) {
            self.log(&format!(
                "{name} expired (no heartbeat for {})",
                fmt_duration(ttl)
            ));
            self.hold_name(&name, reg.key, now);
        }
    }

    fn on_first_frame(
        &mut self,
        conn: ConnId,
        deadline: Option<Instant>,
        msg: Message,
        now: Instant,
    ) {
        match msg {
            Message::Hello { version, .. } if version == PROTOCOL_VERSION => {
                if let Some(deadline) = deadline {
                    self.handshakes.remove(&(deadline, conn));
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.phase = Phase::Ready;
                }
                self.send(
                    conn,
                    &Message::Hello {
                        version: PROTOCOL_VERSION,
                        name: String::new(),
                        listen_port: None,
                        agent: AGENT.to_string(),
                    },
                );
            }
            Message::Hello { version, .. } => {
                let who = self.describe(conn);
                self.log(&format!(
                    "refused {who}: protocol version {version} (we speak {PROTOCOL_VERSION})"
                ));
                self.send_error(
                    conn,
                    None,
                    ErrorCode::VersionMismatch,
                    format!(
                        "tracker speaks protocol version {PROTOCOL_VERSION}, you sent {version}"
                    ),
                );
                self.close(conn, now);
            }
            other => {
                let who = self.describe(conn);
                let kind = other.kind();
                self.log(&format!("refused {who}: {kind} before Hello"));
                self.send_error(
                    conn,
                    None,
                    ErrorCode::UnexpectedMessage,
                    format!("the first message must be Hello, got {kind}"),
                );
                self.close(conn, now);
            }
        }
    }

    fn on_request(&mut self, conn: ConnId, remote: SocketAddr, msg: Message, now: Instant) {
        match msg {
            Message::Register {
                req,
                name,
                listen_port,
                external,
            } => self.on_register(conn, remote, req, name, (listen_port, external), now),
            Message::Heartbeat => {
                if !self.registry.refresh(conn, now) {
                    self.send_error(
                        conn,
                        None,
                        ErrorCode::NotRegistered,
                        "this connection holds no registration (never registered, or it expired); \
                         register again"
                            .to_string(),
                    );
                }
            }
            Message::RelayOpen { req, peer, punch } => {
                self.on_relay_open(conn, req, peer, punch, now)
            }
            Message::RelayJoin { session, punch } => self.on_relay_join(conn, session, punch, now),
            Message::ListPeers { req, want, names } => self.on_list_peers(
                conn,
                &Ask {
                    req,
                    want,
                    names: &names,
                },
                now,
            ),
            Message::Unregister => {
                // Idempotent: nothing registered means nothing to do (no error, so a peer that
                // unregisters on its way out is not told to register again).
                if let Some((name, reg)) = self.registry.remove_conn(conn) {
                    self.log(&format!("{name} left"));
                    self.hold_name(&name, reg.key, now);
                }
            }
            Message::Error { code, message, .. } => {
                // Never answer an error with an error: two sides doing that would loop forever.
                let who = self.describe(conn);
                self.log(&format!(
                    "error from {who}: {code:?}: {}",
                    printable(&message)
                ));
            }
            other => {
                let req = request_id(&other);
                let kind = other.kind();
                self.send_error(
                    conn,
                    req,
                    ErrorCode::UnexpectedMessage,
                    format!("a tracker does not handle {kind}"),
                );
            }
        }
    }

    fn on_register(
        &mut self,
        conn: ConnId,
        remote: SocketAddr,
        req: u64,
        name: String,
        (listen_port, external): (u16, Option<String>),
        now: Instant,
    ) {
        if let Err(why) = check_peer_name(&name) {
            // `why` quotes the name in printable form; the raw name never reaches the log.
            self.log(&format!("refused a name from {remote}: {why}"));
            self.send_error(conn, Some(req), ErrorCode::BadName, why);
            return;
        }
        if listen_port == 0 {
            self.log(&format!("refused {name} from {remote}: listen port 0"));
            self.send_error(
                conn,
                Some(req),
                ErrorCode::Other,
                "listen port 0 is not a port other peers can connect to".to_string(),
            );
            return;
        }
        // The address other peers get is the one this connection comes from, never one the
        // peer claims. `to_canonical` turns an IPv4-mapped IPv6 address back into IPv4.
        let addr = SocketAddr::new(remote.ip().to_canonical(), listen_port);
        let listed = listed_address(addr, external.as_deref());
        let Some(key) = self.conns.get(&conn).map(|c| c.peer) else {
            return;
        };
        if let Some(holder) = self.holds.holder(&name, now)
            && holder != key
            && self.registry.slot_of(&name).is_none()
        {
            self.log(&format!(
                "refused {name} from {remote} ({}): the name is held for {} (registered \
                 lately)",
                key.short(),
                holder.short()
            ));
            let message = format!(
                "the name '{name}' belongs to another peer ({}), registered here lately; it is \
                 held for that peer for a day after its last registration",
                holder.short()
            );
            self.send_error(conn, Some(req), ErrorCode::NameTaken, message);
            return;
        }
        let addr = listed.addr;
        match self.registry.register(conn, name.clone(), listed, key, now) {
            Ok(outcome) => {
                self.hold_name(&name, key, now);
                match outcome {
                    Registered::New => {
                        self.log(&format!("registered {name} at {addr} as {}", key.short()))
                    }
                    Registered::Reclaimed { old_conn } => {
                        self.log(&format!(
                            "registered {name} at {addr} again, from a new connection"
                        ));
                        if let Some(c) = self.conns.get_mut(&old_conn) {
                            c.phase = Phase::Closing;
                            self.actions.push_back(Action::Close(old_conn));
                        }
                    }
                    // The reference peer's keep-alive (PROTOCOL.md §6.3): not news.
                    Registered::Renewed => tracing::debug!("renewed {name} at {addr}"),
                    Registered::Renamed { old } => {
                        self.log(&format!("{old} left (re-registered as {name})"));
                        self.log(&format!("registered {name} at {addr}"));
                    }
                }
                let ttl_secs = self.config.peer_ttl.as_secs().max(1);
                let relay = self.relay.is_some();
                self.send(
                    conn,
                    &Message::Registered {
                        req,
                        ttl_secs,
                        relay,
                    },
                );
            }
            Err(RegisterError::Taken { by }) => {
                self.log(&format!(
                    "refused {name} from {remote}: name taken by a live peer at {by}"
                ));
                self.send_error(
                    conn,
                    Some(req),
                    ErrorCode::NameTaken,
                    format!("the name '{name}' is taken by a live peer at {by}"),
                );
            }
            Err(RegisterError::Full { capacity }) => {
                self.log(&format!(
                    "refused {name} from {remote}: tracker full ({capacity} peers)"
                ));
                self.send_error(
                    conn,
                    Some(req),
                    ErrorCode::Busy,
                    format!("the tracker is full ({capacity} peers); try again later"),
                );
            }
            Err(RegisterError::TooManyFromIp { ip, limit }) => {
                self.log(&format!(
                    "refused {name} from {remote}: {ip} already holds {limit} registrations"
                ));
                self.send_error(
                    conn,
                    Some(req),
                    ErrorCode::Busy,
                    format!(
                        "{ip} already holds {limit} registrations, the most one address may hold"
                    ),
                );
            }
        }
    }

    fn on_list_peers(&mut self, conn: ConnId, ask: &Ask, now: Instant) {
        let frame = self.lister.answer(&self.registry, ask, now);
        self.actions.push_back(Action::Send(conn, frame));
    }
}

impl Driver for Tracker {
    fn handle_accepted(&mut self, conn: ConnId, remote: SocketAddr, peer: PeerId, now: Instant) {
        if self.conns.contains_key(&conn) {
            // A reused id would be a reactor bug; start clean rather than inherit state.
            self.forget(conn);
        }
        let deadline = now.checked_add(self.config.handshake_timeout);
        if let Some(deadline) = deadline {
            self.handshakes.insert((deadline, conn));
        }
        self.conns.insert(
            conn,
            Conn {
                remote,
                peer,
                phase: Phase::AwaitingHello { deadline },
            },
        );
    }

    fn handle_connected(
        &mut self,
        conn: ConnId,
        _tag: ConnectTag,
        _remote: SocketAddr,
        _peer: PeerId,
        _now: Instant,
    ) {
        // The tracker never asks for outgoing connections; close anything that claims to be one.
        self.actions.push_back(Action::Close(conn));
    }

    fn handle_connect_failed(&mut self, _tag: ConnectTag, _error: io::Error, _now: Instant) {}

    fn handle_frame(&mut self, conn: ConnId, body: &[u8], now: Instant) {
        // Registrations past their time are gone before anyone can see them or their names.
        self.expire_due(now);
        let Some(c) = self.conns.get(&conn) else {
            self.log(&format!(
                "frame from unknown connection {}; closing it",
                conn.index
            ));
            self.actions.push_back(Action::Close(conn));
            return;
        };
        let remote = c.remote;
        let deadline = match c.phase {
            Phase::Closing => return,
            Phase::AwaitingHello { deadline } => Some(deadline),
            Phase::Ready => None,
        };
        if self.relay.as_ref().is_some_and(|r| r.holds(conn)) {
            // A connection in a relayed session waits for `RelayStart` in silence.
            let who = self.describe(conn);
            self.log(&format!(
                "closing {who}: a frame while waiting for a relayed session"
            ));
            self.close(conn, now);
            return;
        }
        let msg = match decode_message(body) {
            Ok(msg) => msg,
            Err(e) => {
                // A decode error quotes the sender's bytes (an unknown variant name, say):
                // escape it before it reaches a log or a terminal (found by fuzzing).
                let e = printable(&e.to_string());
                let who = self.describe(conn);
                self.log(&format!("bad frame from {who}: {e}; closing"));
                self.send_error(conn, None, ErrorCode::Other, e);
                self.close(conn, now);
                return;
            }
        };
        match deadline {
            Some(deadline) => self.on_first_frame(conn, deadline, msg, now),
            None => self.on_request(conn, remote, msg, now),
        }
    }

    fn handle_closed(&mut self, conn: ConnId, reason: CloseReason, now: Instant) {
        if let Some(relay) = self.relay.as_mut() {
            relay.closed(conn);
        }
        if let CloseReason::BadFrame(why) = &reason {
            let who = self.describe(conn);
            self.log(&format!("bad frame from {who}: {}", printable(why)));
        }
        if let Some((name, reg)) = self.forget(conn) {
            match reason {
                CloseReason::Io(e) => self.log(&format!("{name} left ({e})")),
                _ => self.log(&format!("{name} left")),
            }
            self.hold_name(&name, reg.key, now);
        }
    }

    fn handle_control(&mut self, ctl: Control, now: Instant) {
        match ctl {
            Control::Shutdown(_) | Control::EndOfInput => {
                let n = self.registry.len();
                self.log(&format!("shutting down ({n} peers registered)"));
                self.save_holds_now(now);
                self.actions.push_back(Action::Exit(0));
            }
            Control::Line(_) | Control::Work => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.expire_due(now);
        self.expire_relay_offers(now);
        if self.save_due.is_some_and(|due| due <= now) {
            self.save_holds_now(now);
        }
        while let Some(&(deadline, conn)) = self.handshakes.first() {
            if deadline > now {
                break;
            }
            self.handshakes.remove(&(deadline, conn));
            let timeout = fmt_duration(self.config.handshake_timeout);
            let who = self.describe(conn);
            self.log(&format!("closing {who}: no Hello within {timeout}"));
            self.send_error(
                conn,
                None,
                ErrorCode::Other,
                format!("no Hello within {timeout}; closing"),
            );
            self.close(conn, now);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let expiry = self.registry.next_expiry(self.config.peer_ttl);
        let handshake = self.handshakes.first().map(|&(deadline, _)| deadline);
        let relay = self.relay.as_ref().and_then(Relay::next_deadline);
        [expiry, handshake, self.save_due, relay]
            .into_iter()
            .flatten()
            .min()
    }

    fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}

/// The relay's glue: requests in, `Relay`'s answers out as frames, splices and closes.
impl Tracker {
    fn on_relay_open(
        &mut self,
        conn: ConnId,
        req: u64,
        target: PeerId,
        punch: Option<u16>,
        now: Instant,
    ) {
        let Some(opener_key) = self.conns.get(&conn).map(|c| c.peer) else {
            return;
        };
        let punch = self.punch_from(conn, punch);
        let target_conn = self
            .registry
            .slots()
            .iter()
            .find(|s| s.reg.key == target)
            .map(|s| s.reg.conn);
        let Some(relay) = self.relay.as_mut() else {
            let message = "this tracker does not relay (started without --relay)".to_string();
            self.send_error(conn, Some(req), ErrorCode::NotRelaying, message);
            return self.close(conn, now);
        };
        match relay.open(conn, req, opener_key, target, target_conn, now) {
            Ok(session) => {
                if let Some(addr) = punch {
                    relay.opener_punches(session, addr);
                }
                let to = target_conn.expect("open succeeds only for a registered target");
                let from = opener_key;
                self.send(to, &Message::RelayOffer { session, from });
            }
            Err(refusal) => {
                let who = self.describe(conn);
                self.log(&format!("refused to relay {who}: {}", refusal.message));
                self.send_error(conn, Some(req), refusal.code, refusal.message);
                self.close(conn, now);
            }
        }
    }

    /// Where a peer that asked to punch from `port` punches from, as far as we can tell: its
    /// connection's IP (its NAT's public one) and that port (PROTOCOL.md §18.8).
    fn punch_from(&self, conn: ConnId, port: Option<u16>) -> Option<SocketAddr> {
        let remote = self.conns.get(&conn)?.remote;
        let port = port.filter(|&p| p != 0)?;
        Some(SocketAddr::new(remote.ip().to_canonical(), port))
    }

    fn on_relay_join(&mut self, conn: ConnId, session: u64, punch: Option<u16>, now: Instant) {
        let Some(joiner_key) = self.conns.get(&conn).map(|c| c.peer) else {
            return;
        };
        let punch = self.punch_from(conn, punch);
        let Some(relay) = self.relay.as_mut() else {
            let message = "this tracker does not relay (started without --relay)".to_string();
            self.send_error(conn, None, ErrorCode::NotRelaying, message);
            return self.close(conn, now);
        };
        let rate = relay.config().max_rate;
        match relay.join(conn, joiner_key, session, punch, now) {
            Ok(start) => {
                self.log(&format!(
                    "relaying {} <-> {} (session {session})",
                    start.opener_key.short(),
                    start.joiner_key.short()
                ));
                // Each side punches to the other's address, if both asked to (§18.8).
                let (to_opener, to_joiner) = match start.punch {
                    Some((opener, joiner)) => (Some(joiner), Some(opener)),
                    None => (None, None),
                };
                let (peer, addr) = (start.joiner_key, to_opener.map(|a| a.to_string()));
                self.send(
                    start.opener,
                    &Message::RelayStart {
                        session,
                        peer,
                        addr,
                    },
                );
                let (peer, addr) = (start.opener_key, to_joiner.map(|a| a.to_string()));
                self.send(
                    start.joiner,
                    &Message::RelayStart {
                        session,
                        peer,
                        addr,
                    },
                );
                self.actions
                    .push_back(Action::Splice(start.opener, start.joiner, rate));
            }
            Err(refusal) => {
                let who = self.describe(conn);
                self.log(&format!("refused to relay {who}: {}", refusal.message));
                self.send_error(conn, None, refusal.code, refusal.message);
                self.close(conn, now);
            }
        }
    }

    fn expire_relay_offers(&mut self, now: Instant) {
        let Some(relay) = self.relay.as_mut() else {
            return;
        };
        for gone in relay.expire(now) {
            let message = format!(
                "peer {} did not join the relayed session within {}",
                gone.target.short(),
                fmt_duration(relay_join_timeout(&self.config))
            );
            self.log(&format!("relayed session {}: {message}", gone.session));
            self.send_error(
                gone.opener,
                Some(gone.req),
                ErrorCode::RelayTimeout,
                message,
            );
            self.close(gone.opener, now);
        }
    }
}

fn relay_join_timeout(config: &TrackerConfig) -> Duration {
    config
        .relay
        .as_ref()
        .map_or(super::relay::JOIN_TIMEOUT, |r| r.join_timeout)
}

impl Tracker {
    /// Hands the holds to the saver now, live registrations held from now on.
    fn save_holds_now(&mut self, now: Instant) {
        self.save_due = None;
        for slot in self.registry.slots() {
            self.holds.hold(&slot.name, slot.reg.key, now);
        }
        self.holds.take_dirty();
        if let Some(save) = self.save_holds.as_mut() {
            save(&self.holds, now);
        }
    }

    /// Drops everything known about `conn`; returns its registration if it held one.
    fn forget(&mut self, conn: ConnId) -> Option<(String, super::registry::Registration)> {
        if let Some(Conn {
            phase: Phase::AwaitingHello {
                deadline: Some(deadline),
            },
            ..
        }) = self.conns.remove(&conn)
        {
            self.handshakes.remove(&(deadline, conn));
        }
        self.registry.remove_conn(conn)
    }
}

/// A seed that differs per process, so two trackers do not sample alike. The sample needs no
/// secrecy; std's per-process hash keys are random enough and cost no dependency.
fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64)
}

/// The `req` of a request or answer, so an error can name what it answers.
fn request_id(msg: &Message) -> Option<u64> {
    msg.req()
}

/// "30s" for whole seconds, otherwise Debug form ("1.5s", "250ms").
fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{d:?}")
    }
}

/// Where a registration is listed (PROTOCOL.md §19): at the `external` address the peer's
/// router maps for it, when the peer names one whose IP is the one its connection comes from
/// (so nobody can list an address that is not theirs, and a peer on the tracker's own side of
/// its router, whose connection shows its private IP, is listed directly); otherwise at
/// `direct`, the connection's IP with the listen port.
fn listed_address(direct: SocketAddr, external: Option<&str>) -> Listed {
    // Bounded before parsing: the text comes from the network.
    let ext = external
        .filter(|s| s.len() <= 64)
        .and_then(|s| s.parse::<SocketAddr>().ok());
    match ext {
        Some(ext) if ext.ip().to_canonical() == direct.ip() && ext.port() != 0 => Listed {
            addr: SocketAddr::new(direct.ip(), ext.port()),
            mapped: true,
        },
        _ => Listed::from(direct),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{FrameDecoder, PeerInfo};
    use std::cell::RefCell;
    use std::rc::Rc;

    /// What the tracker did, decoded.
    #[derive(Debug, PartialEq)]
    enum Out {
        Msg(ConnId, Message),
        Close(ConnId),
        Exit(i32),
        Splice(ConnId, ConnId, Option<u64>),
    }

    struct Harness {
        tracker: Tracker,
        logs: Rc<RefCell<Vec<String>>>,
        t0: Instant,
    }

    /// The key test connection `n` proves: its own, unless a test says otherwise.
    fn key_of(n: usize) -> PeerId {
        PeerId::from_public_key([n as u8; 32])
    }

    fn ip(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 168, 1, last], 50_000 + u16::from(last)))
    }

    fn body(msg: &Message) -> Vec<u8> {
        encode_message(msg)[4..].to_vec()
    }

    fn hello(version: u32) -> Message {
        Message::Hello {
            version,
            name: "ignored".into(),
            listen_port: Some(1),
            agent: "test".into(),
        }
    }

    fn register(req: u64, name: &str, listen_port: u16) -> Message {
        Message::Register {
            req,
            name: name.into(),
            listen_port,
            external: None,
        }
    }

    impl Harness {
        fn new() -> Harness {
            Harness::with(TrackerConfig::default())
        }

        fn with(config: TrackerConfig) -> Harness {
            let logs = Rc::new(RefCell::new(Vec::new()));
            let sink = logs.clone();
            let tracker = Tracker::new(
                config,
                Box::new(move |line: &str| sink.borrow_mut().push(line.to_string())),
            );
            Harness {
                tracker,
                logs,
                t0: Instant::now(),
            }
        }

        fn at(&self, secs: u64) -> Instant {
            self.t0 + Duration::from_secs(secs)
        }

        /// Every action queued so far, with sent bytes decoded into messages.
        fn drain(&mut self) -> Vec<Out> {
            let mut out = Vec::new();
            while let Some(action) = self.tracker.poll_action() {
                match action {
                    Action::Send(conn, bytes) => {
                        let mut dec = FrameDecoder::new();
                        dec.extend(&bytes);
                        while let Some(frame) = dec.next_frame().expect("tracker sent a bad frame")
                        {
                            let msg = decode_message(frame).expect("tracker sent a bad message");
                            out.push(Out::Msg(conn, msg));
                        }
                        assert_eq!(dec.buffered(), 0, "tracker sent a partial frame");
                    }
                    Action::Close(conn) => out.push(Out::Close(conn)),
                    Action::Exit(code) => out.push(Out::Exit(code)),
                    Action::Connect(addr, ..) => panic!("the tracker connected to {addr}"),
                    Action::SendDatagram(to, _) | Action::SendDatagramOn(_, to, _) => {
                        panic!("the tracker sent a datagram to {to}")
                    }
                    Action::SetRateLimits(_) => panic!("the tracker set rate limits"),
                    Action::Splice(a, b, rate) => out.push(Out::Splice(a, b, rate)),
                    Action::Hold(_)
                    | Action::Park(_)
                    | Action::Restart(..)
                    | Action::ConnectFrom(_) => {
                        panic!("the tracker held, parked, restarted or punched")
                    }
                }
            }
            out
        }

        fn accept(&mut self, n: usize, remote: SocketAddr, secs: u64) -> ConnId {
            let conn = ConnId::fake(n);
            self.tracker
                .handle_accepted(conn, remote, key_of(n), self.at(secs));
            conn
        }

        fn send(&mut self, conn: ConnId, msg: &Message, secs: u64) -> Vec<Out> {
            self.tracker.handle_frame(conn, &body(msg), self.at(secs));
            self.drain()
        }

        /// A connection past Hello.
        fn ready(&mut self, n: usize, remote: SocketAddr, secs: u64) -> ConnId {
            self.ready_as(n, remote, key_of(n), secs)
        }

        /// Connection `n` past Hello, its handshake having proved `key`.
        fn ready_as(&mut self, n: usize, remote: SocketAddr, key: PeerId, secs: u64) -> ConnId {
            let conn = ConnId::fake(n);
            self.tracker
                .handle_accepted(conn, remote, key, self.at(secs));
            let out = self.send(conn, &hello(PROTOCOL_VERSION), secs);
            assert!(matches!(out[..], [Out::Msg(c, Message::Hello { .. })] if c == conn));
            conn
        }

        /// A connection past Hello holding `name` at `port`.
        fn registered(&mut self, n: usize, remote: SocketAddr, name: &str, port: u16) -> ConnId {
            let conn = self.ready(n, remote, 0);
            let out = self.send(conn, &register(1, name, port), 0);
            assert_eq!(
                out,
                vec![Out::Msg(
                    conn,
                    Message::Registered {
                        req: 1,
                        ttl_secs: 30,
                        relay: false,
                    }
                )]
            );
            conn
        }

        /// Connection `n` registered as `Peer{n}` with a relaying tracker.
        fn registered_relaying(&mut self, n: usize) -> ConnId {
            let conn = self.ready(n, ip(n as u8), 0);
            let name = format!("Peer{n}");
            let out = self.send(conn, &register(1, &name, 4000), 0);
            assert!(matches!(
                &out[..],
                [Out::Msg(_, Message::Registered { relay: true, .. })]
            ));
            conn
        }

        /// An old-style `ListPeers` (no `want`, no `names`).
        fn list(&mut self, conn: ConnId, secs: u64) -> Vec<PeerInfo> {
            self.ask(conn, &Message::list_peers(77), secs).0
        }

        /// The answer to `msg` (a `ListPeers` with req 77): its peers and `total`.
        fn ask(&mut self, conn: ConnId, msg: &Message, secs: u64) -> (Vec<PeerInfo>, u64) {
            match &self.send(conn, msg, secs)[..] {
                [
                    Out::Msg(
                        c,
                        Message::Peers {
                            req: 77,
                            peers,
                            total: Some(total),
                        },
                    ),
                ] if *c == conn => (peers.clone(), *total),
                other => panic!("expected Peers, got {other:?}"),
            }
        }

        /// `ListPeers{req: 77, want, names}`.
        fn ask_for(
            &mut self,
            conn: ConnId,
            want: Option<u32>,
            names: &[&str],
            secs: u64,
        ) -> Vec<String> {
            let msg = Message::ListPeers {
                req: 77,
                want,
                names: names.iter().map(|n| n.to_string()).collect(),
            };
            self.ask(conn, &msg, secs)
                .0
                .into_iter()
                .map(|p| p.name)
                .collect()
        }

        fn names(&mut self, conn: ConnId, secs: u64) -> Vec<String> {
            self.list(conn, secs).into_iter().map(|p| p.name).collect()
        }

        fn logged(&self, needle: &str) -> bool {
            self.logs.borrow().iter().any(|l| l.contains(needle))
        }
    }

    /// The one error sent to `conn`, as (req, code, message).
    fn error_of(out: &[Out], conn: ConnId) -> (Option<u64>, ErrorCode, String) {
        match out {
            [Out::Msg(c, Message::Error { req, code, message }), ..] if *c == conn => {
                (*req, *code, message.clone())
            }
            other => panic!("expected an Error to {conn:?}, got {other:?}"),
        }
    }

    #[test]
    fn handshake_answers_with_the_tracker_hello() {
        let mut h = Harness::new();
        let a = h.accept(1, ip(1), 0);
        let out = h.send(a, &hello(PROTOCOL_VERSION), 0);
        assert_eq!(
            out,
            vec![Out::Msg(
                a,
                Message::Hello {
                    version: PROTOCOL_VERSION,
                    name: String::new(),
                    listen_port: None,
                    agent: format!("p2p-tracker/{}", env!("CARGO_PKG_VERSION")),
                }
            )]
        );
        // Past Hello, the handshake timer is gone.
        assert_eq!(h.tracker.poll_timeout(), None);
    }

    #[test]
    fn wrong_version_gets_version_mismatch_and_close() {
        let mut h = Harness::new();
        let a = h.accept(1, ip(1), 0);
        let out = h.send(a, &hello(7), 0);
        assert_eq!(out.len(), 2, "{out:?}");
        let (req, code, message) = error_of(&out, a);
        assert_eq!(req, None);
        assert_eq!(code, ErrorCode::VersionMismatch);
        assert_eq!(message, "tracker speaks protocol version 3, you sent 7");
        assert_eq!(out[1], Out::Close(a));
        // Whatever else was already in flight is ignored.
        assert!(h.send(a, &register(1, "Alice", 4000), 0).is_empty());
        assert_eq!(h.tracker.peer_count(), 0);
    }

    #[test]
    fn message_before_hello_is_refused_and_closed() {
        let mut h = Harness::new();
        let a = h.accept(1, ip(1), 0);
        let out = h.send(a, &register(5, "Alice", 4000), 0);
        assert_eq!(out.len(), 2, "{out:?}");
        let (_, code, message) = error_of(&out, a);
        assert_eq!(code, ErrorCode::UnexpectedMessage);
        assert!(message.contains("Register"), "{message}");
        assert_eq!(out[1], Out::Close(a));
        assert_eq!(h.tracker.peer_count(), 0);
        let b = h.accept(2, ip(2), 0);
        let out = h.send(b, &Message::Heartbeat, 0);
        assert_eq!(error_of(&out, b).1, ErrorCode::UnexpectedMessage);
        assert_eq!(out[1], Out::Close(b));
    }

    #[test]
    fn garbage_closes_that_connection_only() {
        let mut h = Harness::new();
        let alice = h.registered(1, ip(1), "Alice", 4000);
        let bob = h.registered(2, ip(2), "Bob", 4000);
        let garbage: [&[u8]; 5] = [
            &[],
            &[0xFF, 0x00, 0x13],
            b"\xA1\x65Hello\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x00",
            &body(&Message::Heartbeat)[..2],
            // A valid message with a trailing byte.
            &[body(&Message::Heartbeat), vec![0]].concat(),
        ];
        for (i, bytes) in garbage.iter().enumerate() {
            let conn = h.ready(10 + i, ip(10), 0);
            h.tracker.handle_frame(conn, bytes, h.at(1));
            let out = h.drain();
            assert_eq!(out.last(), Some(&Out::Close(conn)), "garbage {i}: {out:?}");
            assert!(out.iter().all(|o| match o {
                Out::Msg(c, _) | Out::Close(c) => *c == conn,
                Out::Exit(_) | Out::Splice(..) => false,
            }));
        }
        // An unknown variant named with control characters is quoted escaped (fuzzer finding).
        let conn = h.ready(20, ip(20), 0);
        h.tracker.handle_frame(conn, b"\xA1\x62\x1b[\x00", h.at(1));
        h.drain();
        assert!(
            h.logged("unknown variant `\\x1b[`"),
            "{:?}",
            h.logs.borrow()
        );
        assert!(
            h.logs
                .borrow()
                .iter()
                .all(|l| !l.chars().any(char::is_control))
        );
        // Bob sends garbage: his registration goes, Alice is still served.
        h.tracker.handle_frame(bob, b"\x00\x01\x02", h.at(1));
        assert_eq!(h.drain().last(), Some(&Out::Close(bob)));
        assert!(h.logged("bad frame from 192.168.1.2:50002 (Bob)"));
        assert!(h.logged("Bob left"));
        assert_eq!(h.names(alice, 1), vec!["Alice"]);
        // Garbage before Hello is handled the same way.
        let c = h.accept(30, ip(30), 1);
        h.tracker.handle_frame(c, b"\xFF", h.at(1));
        assert_eq!(h.drain().last(), Some(&Out::Close(c)));
    }

    #[test]
    fn pseudo_random_frames_never_panic() {
        let mut h = Harness::new();
        let alice = h.registered(1, ip(1), "Alice", 4000);
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        for i in 0..3000 {
            let conn = h.ready(100 + i, ip(9), 0);
            // Start from a real message and flip bytes, so some mutations still decode.
            let mut bytes = body(&register(i as u64, "Mallory", 4000));
            for _ in 0..(i % 4 + 1) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let at = (seed >> 33) as usize % bytes.len();
                bytes[at] = (seed >> 17) as u8;
            }
            h.tracker.handle_frame(conn, &bytes, h.at(1));
            h.drain();
            h.tracker
                .handle_closed(conn, CloseReason::RemoteClosed, h.at(1));
        }
        assert_eq!(h.names(alice, 1), vec!["Alice"]);
        assert_eq!(h.tracker.peer_count(), 1);
    }

    #[test]
    fn listed_address_is_the_connection_ip_with_the_announced_port() {
        let mut h = Harness::new();
        // The peer claims nothing about its IP; it only gives a port. Its Hello's listen_port
        // (1) is ignored too: the Register's port is the one listed.
        let alice = h.registered(1, ip(7), "Alice", 4000);
        let peers = h.list(alice, 2);
        assert_eq!(
            peers,
            vec![PeerInfo {
                name: "Alice".into(),
                id: key_of(1),
                addr: "192.168.1.7:4000".into(),
                mapped: false,
                last_seen_ms: 2000,
            }]
        );
        assert!(h.logged("registered Alice at 192.168.1.7:4000"));
        // IPv6, and IPv4 mapped into IPv6 by a dual-stack listener.
        let v6: SocketAddr = "[2001:db8::5]:60000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:60001".parse().unwrap();
        h.registered(2, v6, "Bob", 5000);
        h.registered(3, mapped, "Carol", 6000);
        let addrs: Vec<String> = h.list(alice, 2).into_iter().map(|p| p.addr).collect();
        assert_eq!(
            addrs,
            vec!["192.168.1.7:4000", "[2001:db8::5]:5000", "10.1.2.3:6000"]
        );
    }

    /// PROTOCOL.md §19: a `Register` naming the external address its router maps is listed
    /// there, marked `mapped`, when that address has the connection's IP; any other IP (a
    /// claim about someone else's host, or a peer on our side of its router) is ignored and
    /// the direct address listed. A keep-alive without it goes back to the direct address.
    #[test]
    fn a_mapped_external_address_is_listed_only_with_the_connections_ip() {
        let mut h = Harness::new();
        let alice = h.ready(1, ip(7), 0);
        let with_external = |req, ext: &str| Message::Register {
            req,
            name: "Alice".into(),
            listen_port: 4000,
            external: Some(ext.into()),
        };
        h.send(alice, &with_external(1, "192.168.1.7:40123"), 0);
        let listed = h.list(alice, 0);
        assert_eq!(
            (listed[0].addr.as_str(), listed[0].mapped),
            ("192.168.1.7:40123", true)
        );
        // The wire bytes of a mapped entry are serde's, `mapped` included.
        let bytes = encode_message(&Message::Peers {
            req: 77,
            peers: listed.clone(),
            total: None,
        });
        assert!(
            bytes.windows(8).any(|w| w == b"\x66mapped\xf5"),
            "{bytes:?}"
        );
        for (req, claim) in [(2, "10.0.0.9:40123"), (3, "192.168.1.7:0"), (4, "garbage")] {
            h.send(alice, &with_external(req, claim), 0);
            let listed = h.list(alice, 0);
            assert_eq!(
                (listed[0].addr.as_str(), listed[0].mapped),
                ("192.168.1.7:4000", false),
                "{claim}"
            );
        }
        h.send(alice, &with_external(5, "192.168.1.7:40123"), 0);
        h.send(alice, &register(6, "Alice", 4000), 0);
        let listed = h.list(alice, 0);
        assert_eq!(
            (listed[0].addr.as_str(), listed[0].mapped),
            ("192.168.1.7:4000", false)
        );
    }

    #[test]
    fn listing_needs_no_registration() {
        let mut h = Harness::new();
        h.registered(1, ip(1), "Alice", 4000);
        let anon = h.ready(2, ip(2), 0);
        assert_eq!(h.names(anon, 0), vec!["Alice"]);
    }

    #[test]
    fn a_live_name_is_not_given_to_another_connection() {
        let mut h = Harness::new();
        let alice = h.registered(1, ip(1), "Alice", 4000);
        let mallory = h.ready(2, ip(66), 0);
        let out = h.send(mallory, &register(9, "Alice", 4000), 0);
        assert_eq!(out.len(), 1, "{out:?}");
        let (req, code, message) = error_of(&out, mallory);
        assert_eq!(req, Some(9));
        assert_eq!(code, ErrorCode::NameTaken);
        assert_eq!(
            message,
            "the name 'Alice' is taken by a live peer at 192.168.1.1:4000"
        );
        // Nothing changed: still Alice's, at Alice's address, and Mallory's connection stays.
        let peers = h.list(alice, 0);
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].addr, "192.168.1.1:4000");
        assert_eq!(h.names(mallory, 0), vec!["Alice"]);
        assert!(h.logged("refused Alice from 192.168.1.66:50066"));
    }

    #[test]
    fn a_name_is_free_again_once_its_connection_closes() {
        let mut h = Harness::new();
        let alice = h.registered(1, ip(1), "Alice", 4000);
        let other = h.ready(2, ip(2), 0);
        assert_eq!(
            error_of(&h.send(other, &register(1, "Alice", 4001), 0), other).1,
            ErrorCode::NameTaken
        );
        h.tracker
            .handle_closed(alice, CloseReason::RemoteClosed, h.at(1));
        assert_eq!(
            h.logs.borrow().last().map(String::as_str),
            Some("Alice left")
        );
        assert_eq!(h.tracker.peer_count(), 0);
        // The name is free, but only for Alice's key: it stays hers for a day.
        let (_, code, message) = error_of(&h.send(other, &register(2, "Alice", 4001), 1), other);
        assert_eq!(code, ErrorCode::NameTaken);
        assert!(message.contains("belongs to another peer"), "{message}");
        let back = h.ready_as(3, ip(3), key_of(1), 1);
        let out = h.send(back, &register(2, "Alice", 4001), 1);
        assert_eq!(
            out,
            vec![Out::Msg(
                back,
                Message::Registered {
                    req: 2,
                    ttl_secs: 30,
                    relay: false,
                }
            )]
        );
        assert_eq!(h.list(back, 1)[0].addr, "192.168.1.3:4001");
    }

    #[test]
    fn expiry_frees_the_name_and_a_late_heartbeat_gets_not_registered() {
        let mut h = Harness::new();
        let alice = h.registered(1, ip(1), "Alice", 4000);
        assert_eq!(h.tracker.poll_timeout(), Some(h.at(30)));
        h.tracker.handle_timeout(h.at(29));
        assert_eq!(h.tracker.peer_count(), 1);
        // The timer fires at exactly the instant poll_timeout named; it must expire the entry
        // then, or the reactor would spin on a deadline that never clears.
        h.tracker.handle_timeout(h.at(30));
        assert!(h.drain().is_empty(), "expiry keeps the connection open");
        assert_eq!(h.tracker.peer_count(), 0);
        assert!(h.logged("Alice expired (no heartbeat for 30s)"));
        assert_eq!(h.tracker.poll_timeout(), None);

        let out = h.send(alice, &Message::Heartbeat, 32);
        assert_eq!(out.len(), 1, "{out:?}");
        let (req, code, _) = error_of(&out, alice);
        assert_eq!((req, code), (None, ErrorCode::NotRegistered));

        // Another key may not have the name for a day; Alice's key, back, may.
        let bob = h.ready(2, ip(2), 32);
        let out = h.send(bob, &register(3, "Alice", 5000), 32);
        assert_eq!(error_of(&out, bob).1, ErrorCode::NameTaken);
        let again = h.ready_as(3, ip(3), key_of(1), 32);
        let out = h.send(again, &register(3, "Alice", 5000), 32);
        assert!(matches!(
            out[..],
            [Out::Msg(_, Message::Registered { req: 3, .. })]
        ));
        assert_eq!(h.list(again, 32)[0].addr, "192.168.1.3:5000");
        // A day after her last registration ended, the name is anyone's.
        let day = 30 + NAME_HOLD.as_secs() + 40;
        let carol = h.ready(4, ip(4), day);
        let out = h.send(carol, &register(4, "Alice", 6000), day);
        assert_eq!(error_of(&out, carol).1, ErrorCode::NameTaken, "still live");
        h.tracker.handle_timeout(h.at(day + 31));
        let out = h.send(
            carol,
            &register(5, "Alice", 6000),
            day + NAME_HOLD.as_secs() + 62,
        );
        assert!(
            matches!(out[..], [Out::Msg(_, Message::Registered { .. })]),
            "{out:?}"
        );
    }

    #[test]
    fn an_overdue_registration_is_gone_even_before_the_timer_runs() {
        let mut h = Harness::new();
        h.registered(1, ip(1), "Alice", 4000);
        let back = h.ready_as(2, ip(2), key_of(1), 0);
        // No handle_timeout between: the frame itself sees that Alice is past her time.
        let out = h.send(back, &register(1, "Alice", 4000), 40);
        assert!(
            matches!(out[..], [Out::Msg(_, Message::Registered { .. })]),
            "{out:?}"
        );
        assert!(h.logged("Alice expired"));
    }

    #[test]
    fn heartbeats_keep_a_registration_alive_past_the_ttl() {
        let mut h = Harness::new();
        let alice = h.registered(1, ip(1), "Alice", 4000);
        for secs in [20, 40, 60, 80] {
            assert!(h.send(alice, &Message::Heartbeat, secs).is_empty());
            h.tracker.handle_timeout(h.at(secs + 5));
            assert_eq!(h.tracker.poll_timeout(), Some(h.at(secs + 30)));
        }
        h.tracker.handle_timeout(h.at(100));
        assert_eq!(h.tracker.peer_count(), 1);
        let peers = h.list(alice, 100);
        assert_eq!(peers[0].last_seen_ms, 20_000);
        h.tracker.handle_timeout(h.at(110));
        assert_eq!(h.tracker.peer_count(), 0);
    }

    #[test]
    fn unregister_frees_the_name() {
        let mut h = Harness::new();
        let alice = h.registered(1, ip(1), "Alice", 4000);
        assert!(h.send(alice, &Message::Unregister, 1).is_empty());
        assert_eq!(h.tracker.peer_count(), 0);
        assert!(h.logged("Alice left"));
        // Unregistering again is harmless and silent; the connection stays usable.
        assert!(h.send(alice, &Message::Unregister, 1).is_empty());
        assert_eq!(h.names(alice, 1), Vec::<String>::new());
        let out = h.send(alice, &Message::Heartbeat, 1);
        assert_eq!(error_of(&out, alice).1, ErrorCode::NotRegistered);
    }

    #[test]
    fn a_connection_cannot_heartbeat_or_unregister_another_ones_name() {
        let mut h = Harness::new();
        let alice = h.registered(1, ip(1), "Alice", 4000);
        let bob = h.registered(2, ip(2), "Bob", 4000);
        let eve = h.ready(3, ip(3), 0);
        // Eve holds nothing: her heartbeat refreshes nobody and her unregister removes nobody.
        let out = h.send(eve, &Message::Heartbeat, 20);
        assert_eq!(error_of(&out, eve).1, ErrorCode::NotRegistered);
        assert!(h.send(eve, &Message::Unregister, 20).is_empty());
        assert_eq!(h.tracker.peer_count(), 2);
        // Bob's unregister removes Bob only; his heartbeat refreshes Bob only.
        assert!(h.send(bob, &Message::Heartbeat, 20).is_empty());
        let peers = h.list(eve, 25);
        assert_eq!(
            peers.iter().map(|p| p.last_seen_ms).collect::<Vec<_>>(),
            vec![25_000, 5_000]
        );
        assert!(h.send(bob, &Message::Unregister, 25).is_empty());
        assert_eq!(h.names(eve, 25), vec!["Alice"]);
        // Eve's heartbeats did not keep Alice alive.
        h.tracker.handle_timeout(h.at(30));
        assert_eq!(h.tracker.peer_count(), 0);
        let out = h.send(alice, &Message::Heartbeat, 30);
        assert_eq!(error_of(&out, alice).1, ErrorCode::NotRegistered);
    }

    #[test]
    fn re_registering_replaces_the_connections_entry() {
        let mut h = Harness::new();
        let alice = h.registered(1, ip(1), "Alice", 4000);
        let out = h.send(alice, &register(2, "Alice", 4100), 5);
        assert!(matches!(
            out[..],
            [Out::Msg(_, Message::Registered { req: 2, .. })]
        ));
        let out = h.send(alice, &register(3, "Alicia", 4200), 6);
        assert!(matches!(
            out[..],
            [Out::Msg(_, Message::Registered { req: 3, .. })]
        ));
        let peers = h.list(alice, 6);
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].name, "Alicia");
        assert_eq!(peers[0].addr, "192.168.1.1:4200");
        assert!(h.logged("Alice left (re-registered as Alicia)"));
        // A refused re-registration keeps the current entry.
        let out = h.send(alice, &register(4, "bad name", 4300), 7);
        assert_eq!(error_of(&out, alice).1, ErrorCode::BadName);
        assert_eq!(h.list(alice, 7)[0].name, "Alicia");
    }

    #[test]
    fn handshake_timeout_closes_a_silent_connection() {
        let mut h = Harness::new();
        let silent = h.accept(1, ip(1), 0);
        let polite = h.accept(2, ip(2), 3);
        h.send(polite, &hello(PROTOCOL_VERSION), 4);
        assert_eq!(h.tracker.poll_timeout(), Some(h.at(10)));
        h.tracker.handle_timeout(h.at(9));
        assert!(h.drain().is_empty());
        h.tracker.handle_timeout(h.at(10));
        let out = h.drain();
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(error_of(&out, silent).1, ErrorCode::Other);
        assert_eq!(out[1], Out::Close(silent));
        assert!(h.logged("closing 192.168.1.1:50001: no Hello within 10s"));
        // The polite one, past Hello, is never timed out.
        assert_eq!(h.tracker.poll_timeout(), None);
        h.tracker.handle_timeout(h.at(1000));
        assert!(h.drain().is_empty());
        assert_eq!(h.names(polite, 1000), Vec::<String>::new());
    }

    #[test]
    fn poll_timeout_is_the_earliest_deadline() {
        let mut h = Harness::with(TrackerConfig {
            peer_ttl: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            ..TrackerConfig::default()
        });
        assert_eq!(h.tracker.poll_timeout(), None);
        let alice = h.registered(1, ip(1), "Alice", 4000); // expires at 30
        assert_eq!(h.tracker.poll_timeout(), Some(h.at(30)));
        let late = h.accept(2, ip(2), 25); // handshake deadline 35
        assert_eq!(h.tracker.poll_timeout(), Some(h.at(30)));
        h.accept(3, ip(3), 5); // handshake deadline 15
        assert_eq!(h.tracker.poll_timeout(), Some(h.at(15)));
        h.tracker.handle_timeout(h.at(15));
        h.drain();
        assert_eq!(h.tracker.poll_timeout(), Some(h.at(30)));
        h.send(alice, &Message::Heartbeat, 28); // expires at 58
        assert_eq!(h.tracker.poll_timeout(), Some(h.at(35)));
        h.send(late, &hello(PROTOCOL_VERSION), 26);
        assert_eq!(h.tracker.poll_timeout(), Some(h.at(58)));
        h.tracker
            .handle_closed(alice, CloseReason::RemoteClosed, h.at(29));
        assert_eq!(h.tracker.poll_timeout(), None);
    }

    #[test]
    fn bad_names_and_port_zero_are_refused() {
        let mut h = Harness::new();
        let c = h.ready(1, ip(1), 0);
        let long = "x".repeat(33);
        for bad in [
            "",
            "two words",
            "tab\there",
            "esc\x1b[31m",
            "quo\"te",
            &long,
            "rtl\u{202E}x",
        ] {
            let out = h.send(c, &register(4, bad, 4000), 0);
            assert_eq!(out.len(), 1, "{bad:?}: {out:?}");
            let (req, code, message) = error_of(&out, c);
            assert_eq!((req, code), (Some(4), ErrorCode::BadName), "{bad:?}");
            assert!(!message.is_empty());
        }
        // Nothing unprintable reached the log.
        assert!(
            h.logs
                .borrow()
                .iter()
                .all(|l| !l.chars().any(char::is_control))
        );
        let out = h.send(c, &register(5, "Alice", 0), 0);
        let (req, code, message) = error_of(&out, c);
        assert_eq!((req, code), (Some(5), ErrorCode::Other));
        assert!(message.contains("port 0"), "{message}");
        assert_eq!(h.tracker.peer_count(), 0);
        // The longest allowed name is fine.
        let out = h.send(c, &register(6, &"x".repeat(32), 4000), 0);
        assert!(matches!(
            out[..],
            [Out::Msg(_, Message::Registered { req: 6, .. })]
        ));
    }

    #[test]
    fn up_to_the_cap_everyone_is_listed_sorted_by_name() {
        let mut h = Harness::new();
        let mut expected = Vec::new();
        // Register in an order that is not the sorted one; exactly MAX_LISTED peers.
        for i in 0..200u16 {
            let n = (u32::from(i) * 7919 % 200) as u16;
            let name = format!("peer-{n:04}");
            let remote = SocketAddr::from(([10, 0, (n / 250) as u8, (n % 250) as u8], 9999));
            let conn = h.ready(usize::from(i) + 1, remote, 0);
            let out = h.send(conn, &register(u64::from(i), &name, 1000 + n), 0);
            assert!(
                matches!(out[..], [Out::Msg(_, Message::Registered { .. })]),
                "{out:?}"
            );
            expected.push((name, format!("10.0.{}.{}:{}", n / 250, n % 250, 1000 + n)));
        }
        expected.sort();
        assert_eq!(h.tracker.peer_count(), super::super::MAX_LISTED);
        let asker = h.ready(5000, ip(200), 1);
        let got: Vec<(String, String)> = h
            .list(asker, 1)
            .into_iter()
            .map(|p| (p.name, p.addr))
            .collect();
        assert_eq!(got.len(), 200);
        assert_eq!(got, expected);
        assert_eq!(got[0].0, "peer-0000");
        assert_eq!(got[199].0, "peer-0199");
    }

    #[test]
    fn other_messages_get_unexpected_message_and_the_connection_stays() {
        let mut h = Harness::new();
        let c = h.ready(1, ip(1), 0);
        let out = h.send(c, &Message::ListFiles { req: 42 }, 0);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            error_of(&out, c),
            (
                Some(42),
                ErrorCode::UnexpectedMessage,
                "a tracker does not handle ListFiles".to_string()
            )
        );
        let out = h.send(c, &hello(PROTOCOL_VERSION), 0);
        assert_eq!(error_of(&out, c).1, ErrorCode::UnexpectedMessage);
        assert_eq!(out.len(), 1);
        // An error from the peer is logged, never answered (no error ping-pong).
        let err = Message::Error {
            req: None,
            code: ErrorCode::Other,
            message: "oops\x1b[2J".into(),
        };
        assert!(h.send(c, &err, 0).is_empty());
        assert!(h.logged("oops\\x1b[2J"));
        // Still served.
        assert_eq!(h.names(c, 0), Vec::<String>::new());
    }

    #[test]
    fn shutdown_and_end_of_input_exit_zero_and_lines_are_ignored() {
        let mut h = Harness::new();
        h.tracker
            .handle_control(Control::Line("hello".into()), h.at(0));
        assert!(h.drain().is_empty());
        h.tracker
            .handle_control(Control::Shutdown(Signal::Terminate), h.at(0));
        assert_eq!(h.drain(), vec![Out::Exit(0)]);
        h.tracker.handle_control(Control::EndOfInput, h.at(0));
        assert_eq!(h.drain(), vec![Out::Exit(0)]);
    }

    #[test]
    fn reactor_close_reasons_release_the_name() {
        let mut h = Harness::new();
        let alice = h.registered(1, ip(1), "Alice", 4000);
        let bob = h.registered(2, ip(2), "Bob", 4000);
        h.tracker.handle_closed(
            alice,
            CloseReason::BadFrame("frame of 4294967295 bytes exceeds the maximum".into()),
            h.at(1),
        );
        h.tracker.handle_closed(
            bob,
            CloseReason::Io(io::Error::from(io::ErrorKind::ConnectionReset)),
            h.at(1),
        );
        assert_eq!(h.tracker.peer_count(), 0);
        assert!(h.logged("bad frame from 192.168.1.1:50001 (Alice): frame of 4294967295"));
        assert!(h.logged("Alice left"));
        assert!(h.logged("Bob left ("));
        // A frame for a connection the tracker does not know is closed, not served.
        h.tracker
            .handle_frame(ConnId::fake(99), &body(&Message::Heartbeat), h.at(1));
        assert_eq!(h.drain(), vec![Out::Close(ConnId::fake(99))]);
    }

    #[test]
    fn one_ip_registering_many_names_gets_busy_and_others_still_register() {
        let mut h = Harness::new();
        let mut out = Vec::new();
        for i in 0..10_000 {
            let conn = h.ready(i + 1, ip(66), 0);
            out = h.send(conn, &register(1, &format!("m{i}"), 4000), 0);
        }
        assert_eq!(h.tracker.peer_count(), DEFAULT_MAX_PEERS_PER_IP);
        let last = ConnId::fake(10_000);
        let (req, code, message) = error_of(&out, last);
        assert_eq!((req, code), (Some(1), ErrorCode::Busy));
        assert!(message.contains("192.168.1.66"), "{message}");
        // Someone else is still welcome, and the flood's own names still list.
        let alice = h.registered(20_000, ip(1), "Alice", 4000);
        assert_eq!(h.list(alice, 0).len(), DEFAULT_MAX_PEERS_PER_IP + 1);
        // A flooder that goes away frees its share.
        h.tracker
            .handle_closed(ConnId::fake(1), CloseReason::RemoteClosed, h.at(1));
        let conn = h.ready(30_000, ip(66), 1);
        let out = h.send(conn, &register(2, "again", 4000), 1);
        assert!(matches!(
            out[..],
            [Out::Msg(_, Message::Registered { req: 2, .. })]
        ));
    }

    #[test]
    fn a_full_tracker_answers_busy() {
        let mut h = Harness::with(TrackerConfig {
            max_peers_per_ip: usize::MAX,
            ..TrackerConfig::default()
        });
        for i in 0..MAX_PEERS {
            let conn = h.ready(i + 1, ip(1), 0);
            h.send(conn, &register(1, &format!("p{i}"), 4000), 0);
        }
        assert_eq!(h.tracker.peer_count(), MAX_PEERS);
        let late = h.ready(MAX_PEERS + 1, ip(2), 0);
        let out = h.send(late, &register(3, "late", 4000), 0);
        assert_eq!(error_of(&out, late).0, Some(3));
        assert_eq!(error_of(&out, late).1, ErrorCode::Busy);
        // A full tracker answers with a bounded sample and says how many it holds.
        let (peers, total) = h.ask(late, &Message::list_peers(77), 0);
        assert_eq!(
            (peers.len(), total),
            (super::super::MAX_LISTED, MAX_PEERS as u64)
        );
    }

    /// A tracker holding `n` peers `p0`..`p{n-1}` (all from one IP, which is allowed here),
    /// and a connection to ask with.
    fn crowd(n: usize) -> (Harness, ConnId) {
        let mut h = Harness::with(TrackerConfig {
            max_peers_per_ip: usize::MAX,
            ..TrackerConfig::default()
        });
        for i in 0..n {
            let conn = h.ready(i + 1, ip(1), 0);
            let out = h.send(conn, &register(1, &format!("p{i}"), 1000 + i as u16), 0);
            assert!(matches!(out[..], [Out::Msg(_, Message::Registered { .. })]));
        }
        let asker = h.ready(n + 1, ip(2), 0);
        (h, asker)
    }

    #[test]
    fn an_answer_never_exceeds_the_cap() {
        let cap = super::super::MAX_LISTED;
        let (mut h, asker) = crowd(1000);
        let many: Vec<String> = (0..300).map(|i| format!("p{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        for (want, names, len) in [
            (None, &[][..], cap),
            (Some(0), &[][..], 0),
            (Some(5), &[][..], 5),
            (Some(200), &[][..], cap),
            (Some(201), &[][..], cap),
            (Some(u32::MAX), &[][..], cap),
            // More names than the cap: the first 200 are answered, nothing else.
            (None, &many[..], cap),
            (Some(u32::MAX), &many[..], cap),
        ] {
            let got = h.ask_for(asker, want, names, 1);
            assert_eq!(got.len(), len, "want {want:?}, {} names", names.len());
            if names.len() > cap {
                assert_eq!(got, many[..cap]);
            }
        }
        let (_, total) = h.ask(asker, &Message::list_peers(77), 1);
        assert_eq!(total, 1000);
    }

    #[test]
    fn named_peers_come_first_once_each_and_unknown_names_are_skipped() {
        let (mut h, asker) = crowd(1000);
        let got = h.ask_for(
            asker,
            Some(10),
            &["p999", "nobody", "p5", "p999", "bad name"],
            1,
        );
        assert_eq!(got.len(), 10);
        assert_eq!(got[..2], ["p999", "p5"]);
        let mut unique = got.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10, "{got:?}");
        // want 0: only the names asked for; more names than want: all of them.
        assert_eq!(h.ask_for(asker, Some(0), &["p7", "p3"], 1), ["p7", "p3"]);
        assert_eq!(h.ask_for(asker, Some(1), &["p7", "p3"], 1), ["p7", "p3"]);
        // Below the cap the rest come sorted by name, after the named ones.
        let (mut small, asker) = crowd(4);
        assert_eq!(
            small.ask_for(asker, None, &["p2"], 1),
            ["p2", "p0", "p1", "p3"]
        );
    }

    #[test]
    fn the_sample_is_random_and_covers_everyone() {
        let (mut h, asker) = crowd(1000);
        let mut seen = HashMap::new();
        let mut answers = BTreeSet::new();
        for _ in 0..100 {
            let got = h.ask_for(asker, None, &[], 1);
            let distinct: BTreeSet<&String> = got.iter().collect();
            assert_eq!(distinct.len(), got.len(), "a peer listed twice");
            for name in &got {
                *seen.entry(name.clone()).or_insert(0u32) += 1;
            }
            answers.insert(got);
        }
        assert_eq!(answers.len(), 100, "two answers alike: not random");
        // Each peer is in an answer with probability 0.2: missing from all 100 has odds 2e-10.
        assert_eq!(seen.len(), 1000);
        // ...and about 20 times each; a biased sampler would put some far out.
        assert!(seen.values().all(|&n| (3..=45).contains(&n)), "{seen:?}");
    }

    #[test]
    fn cached_entries_follow_register_unregister_and_expiry() {
        let mut h = Harness::new();
        let alice = h.registered(1, ip(1), "Alice", 4000);
        assert_eq!(h.list(alice, 0)[0].addr, "192.168.1.1:4000");
        // A keep-alive with a new port must not list the old one.
        h.send(alice, &register(2, "Alice", 4100), 1);
        assert_eq!(h.list(alice, 1)[0].addr, "192.168.1.1:4100");
        h.send(alice, &register(3, "Alicia", 4200), 1);
        let bob = h.registered(2, ip(2), "Bob", 5000);
        let carol = h.registered(3, ip(3), "Carol", 6000);
        let pairs = |h: &mut Harness, secs| -> Vec<(String, String)> {
            h.list(bob, secs)
                .into_iter()
                .map(|p| (p.name, p.addr))
                .collect()
        };
        assert_eq!(
            pairs(&mut h, 1),
            [
                ("Alicia".into(), "192.168.1.1:4200".into()),
                ("Bob".into(), "192.168.1.2:5000".into()),
                ("Carol".into(), "192.168.1.3:6000".into()),
            ]
        );
        // Alicia held the first slot: Carol's entry moves into it and must still read right.
        assert!(h.send(alice, &Message::Unregister, 2).is_empty());
        assert_eq!(
            pairs(&mut h, 2),
            [
                ("Bob".into(), "192.168.1.2:5000".into()),
                ("Carol".into(), "192.168.1.3:6000".into()),
            ]
        );
        h.send(bob, &Message::Heartbeat, 20);
        h.tracker.handle_timeout(h.at(30));
        assert_eq!(
            pairs(&mut h, 30),
            [("Bob".into(), "192.168.1.2:5000".into())]
        );
        let _ = carol;
        // The sampled path reads the same cache: above the cap, ask by name after a change.
        let (mut big, asker) = crowd(300);
        big.send(ConnId::fake(7), &register(2, "p6", 7777), 1);
        let (peers, _) = big.ask(
            asker,
            &Message::ListPeers {
                req: 77,
                want: Some(1),
                names: vec!["p6".into()],
            },
            1,
        );
        assert_eq!(peers[0].addr, "192.168.1.1:7777");
        big.tracker.registry.check_invariants();
    }

    #[test]
    fn an_old_style_list_peers_is_still_answered() {
        let mut h = Harness::new();
        let alice = h.registered(1, ip(1), "Alice", 4000);
        // The body of PROTOCOL.md §13.4's `{"ListPeers": {"req": 2}}`, byte for byte.
        let old = [
            0xa1, 0x69, b'L', b'i', b's', b't', b'P', b'e', b'e', b'r', b's', 0xa1, 0x63, b'r',
            b'e', b'q', 0x02,
        ];
        h.tracker.handle_frame(alice, &old, h.at(1));
        match &h.drain()[..] {
            [
                Out::Msg(
                    _,
                    Message::Peers {
                        req: 2,
                        peers,
                        total: Some(1),
                    },
                ),
            ] => {
                assert_eq!(peers[0].name, "Alice")
            }
            other => panic!("{other:?}"),
        }
        // Our plain request is still exactly those bytes.
        assert_eq!(body(&Message::list_peers(2)), old);
    }

    fn relaying(rate: Option<u64>) -> Harness {
        Harness::with(TrackerConfig {
            relay: Some(RelayConfig {
                max_rate: rate,
                ..RelayConfig::default()
            }),
            ..TrackerConfig::default()
        })
    }

    /// The whole exchange in memory: Bob (conn 2) registered; Alice asks on a connection of
    /// her own (3); Bob is offered the session over his registration and joins on another
    /// (4): both get `RelayStart` naming the other's key, and the reactor splices them.
    #[test]
    fn a_relayed_session_is_offered_joined_and_spliced() {
        let mut h = relaying(Some(1_000_000));
        let bob = h.ready(2, ip(2), 0);
        let out = h.send(bob, &register(1, "Bob", 4002), 0);
        assert!(
            matches!(
                &out[..],
                [Out::Msg(_, Message::Registered { relay: true, .. })]
            ),
            "a relaying tracker says so: {out:?}"
        );
        let alice = h.ready(3, ip(3), 0);
        let open = Message::RelayOpen {
            req: 5,
            peer: key_of(2),
            punch: None,
        };
        let out = h.send(alice, &open, 0);
        let [Out::Msg(to, Message::RelayOffer { session, from })] = &out[..] else {
            panic!("an offer to Bob: {out:?}");
        };
        assert_eq!((*to, *from), (bob, key_of(3)));
        let join = h.ready_as(4, ip(2), key_of(2), 1);
        // Bob would punch, Alice would not: nobody is told an address.
        let join_msg = Message::RelayJoin {
            session: *session,
            punch: Some(4002),
        };
        let out = h.send(join, &join_msg, 1);
        let start = |peer| Message::RelayStart {
            session: *session,
            peer,
            addr: None,
        };
        assert_eq!(
            out,
            [
                Out::Msg(alice, start(key_of(2))),
                Out::Msg(join, start(key_of(3))),
                Out::Splice(alice, join, Some(1_000_000)),
            ]
        );
        assert!(h.logs.borrow().iter().any(|l| l.starts_with("relaying ")));
    }

    /// When both sides ask to punch (PROTOCOL.md §18.8), each `RelayStart` names the other's
    /// address: its connection's IP as the relay sees it, and the port it said it punches
    /// from.
    #[test]
    fn both_punching_sides_are_told_each_others_address() {
        let mut h = relaying(None);
        let bob = h.ready(2, ip(2), 0);
        h.send(bob, &register(1, "Bob", 4002), 0);
        let alice = h.ready(3, ip(3), 0);
        let open = Message::RelayOpen {
            req: 5,
            peer: key_of(2),
            punch: Some(7003),
        };
        let out = h.send(alice, &open, 0);
        let [Out::Msg(_, Message::RelayOffer { session, .. })] = &out[..] else {
            panic!("an offer to Bob: {out:?}");
        };
        let join = h.ready_as(4, ip(2), key_of(2), 1);
        let join_msg = Message::RelayJoin {
            session: *session,
            punch: Some(4002),
        };
        let out = h.send(join, &join_msg, 1);
        let start = |peer, addr: &str| Message::RelayStart {
            session: *session,
            peer,
            addr: Some(addr.to_string()),
        };
        assert_eq!(
            out,
            [
                Out::Msg(alice, start(key_of(2), "192.168.1.2:4002")),
                Out::Msg(join, start(key_of(3), "192.168.1.3:7003")),
                Out::Splice(alice, join, None),
            ]
        );
    }

    /// Refusals close the asking connection with the error: no relay, an unknown key, a
    /// joiner with another key than the offer's, a target that never joins.
    #[test]
    fn relay_refusals_and_an_unjoined_offer() {
        let code_of = |out: &[Out]| match out {
            [Out::Msg(_, Message::Error { code, .. }), Out::Close(_)] => *code,
            other => panic!("an error and a close: {other:?}"),
        };
        let mut plain = Harness::new();
        let c = plain.ready(3, ip(3), 0);
        let open = |peer| Message::RelayOpen {
            req: 1,
            peer,
            punch: None,
        };
        assert_eq!(
            code_of(&plain.send(c, &open(key_of(2)), 0)),
            ErrorCode::NotRelaying
        );

        let mut h = relaying(None);
        let bob = h.registered_relaying(2);
        let c = h.ready(3, ip(3), 0);
        assert_eq!(
            code_of(&h.send(c, &open(key_of(9)), 0)),
            ErrorCode::NoSuchPeer
        );
        let alice = h.ready(5, ip(5), 0);
        let out = h.send(alice, &open(key_of(2)), 0);
        let [Out::Msg(to, Message::RelayOffer { session, .. })] = &out[..] else {
            panic!("an offer: {out:?}");
        };
        assert_eq!(*to, bob);
        let mallory = h.ready(6, ip(6), 0);
        let join = Message::RelayJoin {
            session: *session,
            punch: None,
        };
        assert_eq!(
            code_of(&h.send(mallory, &join, 0)),
            ErrorCode::NoSuchSession
        );
        // A second request on the waiting connection closes it.
        h.tracker
            .handle_frame(alice, &body(&Message::Heartbeat), h.at(1));
        assert!(matches!(&h.drain()[..], [Out::Close(c)] if *c == alice));

        let alice = h.ready(7, ip(7), 0);
        h.send(alice, &open(key_of(2)), 0);
        let deadline = h.tracker.poll_timeout().expect("the offer's deadline");
        assert!(deadline <= h.at(10));
        h.tracker.handle_timeout(h.at(10));
        let out = h.drain();
        assert!(
            matches!(&out[..], [Out::Msg(c, Message::Error { code: ErrorCode::RelayTimeout, req: Some(1), .. }), Out::Close(d)] if *c == alice && *d == alice),
            "{out:?}"
        );
    }
}
