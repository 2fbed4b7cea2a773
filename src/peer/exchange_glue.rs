//! The node's side of finding peers: `--peer`/`connect` connections, peer exchange, probing
//! known peers without a tracker, the peer cache, LAN announcements and dialing by name. The
//! rules are in `exchange.rs` ([`Discovery`](super::exchange::Discovery) and the merge
//! functions), `dialer.rs`, `lan.rs` and `peer_table.rs`; this file routes between them, the
//! sessions and the user.

use super::dialer::Dialer;
use super::event::{Event, Failure, Problem, Warning};
use super::exchange::{Bootstrap, merge_exchange, neighbors_wanted};
use super::jitter::random_seed;
use super::lan::LanState;
use super::node::{ConnectPurpose, PeerNode, Purpose};
use super::op::Op;
use super::peer_cache;
use super::peer_table::{Failed, Source};
use super::resolver::Resolver;
use super::session::Session;
use crate::reactor::{Action, ConnId};
use crate::wire::Message;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long `connect ADDR` may take (connect and handshake have their own 10 s limits).
const CONNECT_OP_TIMEOUT: Duration = Duration::from_secs(30);

impl PeerNode {
    /// At start: load the peer cache, connect to the `--peer` addresses, start LAN announcements.
    pub(super) fn discovery_start(&mut self, now: Instant) {
        if let Err(warning) = peer_cache::load(&self.discovery.cache_path, &mut self.known, now) {
            self.ui.event(&Event::Warning(Warning::PeerCache(warning)));
        }
        let addrs = self.cfg.bootstrap.clone();
        self.discovery.start(addrs.len(), now);
        for addr in addrs {
            self.start_bootstrap(addr, false, true);
        }
        if let Some(lan) = self.cfg.lan.clone() {
            let (name, port) = (self.cfg.name.clone(), self.listen_port);
            let id = self.id;
            self.discovery.lan = Some(LanState::new(lan, &name, port, id, random_seed(), now));
        }
    }

    /// Looks host names up with `resolver` (threads that wake the reactor) instead of inline.
    pub fn set_resolver(&mut self, resolver: Resolver) {
        self.discovery.resolver = resolver;
    }

    /// The dialer over the known peers: which address to dial for a name.
    pub(super) fn dialer(&mut self) -> Dialer<'_> {
        Dialer::new(&mut self.known)
    }

    /// Opens a connection to `name` at the address the dialer names. False if we know of none.
    pub(super) fn dial(&mut self, name: &str) -> bool {
        let Some(addr) = self.dialer().dial(name) else {
            return false;
        };
        let expected = self.expected_key(name);
        if self.is_us(expected) {
            return false; // our own key, listed under another name
        }
        let name = name.to_string();
        self.connect(addr, ConnectPurpose::Peer { name, addr }, expected);
        true
    }

    /// A connection to `name` at `addr` could not be made.
    pub(super) fn dial_failed(
        &mut self,
        name: &str,
        addr: SocketAddr,
        error: &std::io::Error,
        relayed: bool,
        now: Instant,
    ) {
        if crate::reactor::HandshakeCut::is(error)
            && self.op_dial_cut(name, &error.to_string(), now)
        {
            return; // busy: the command tries again
        }
        // A relayed dial's failure is the last word: the direct one failed before it, and
        // was counted then.
        let switched = if relayed {
            None
        } else if let Failed::Switched(next) = self.dialer().failed(name, now) {
            Some(next)
        } else {
            None
        };
        if let Some(next) = switched {
            // Another address it is known by: try that before anyone gives up.
            tracing::info!("cannot reach {name} at {addr}: {error}; trying {next}");
            self.peer_reach_again(name, now);
        } else if !relayed && self.relay_fallback(name, addr, error, now) {
            // Nothing answered at any address: the relay tries (`relay_glue.rs`).
        } else {
            let why = Problem::CannotReach {
                peer: name.to_string(),
                addr,
                error: self.dial_error_text(name, error),
            };
            self.peer_unreachable(name, why, now);
            self.downloads_peer_unreachable(name, now);
        }
    }

    fn start_bootstrap(&mut self, addr: SocketAddr, command: bool, startup: bool) {
        let b = Bootstrap {
            addr,
            command,
            startup,
            via_dht: false,
        };
        // An address given by hand: whoever is there says who it is, and its name is then
        // checked against the pins like any other.
        self.connect(addr, ConnectPurpose::Bootstrap(b), None);
    }

    /// Dials an address the DHT named: whoever answers says who it is (and must prove
    /// `expected`, for `connect PEER-ID`), like an address typed by hand.
    pub(super) fn dial_dht_address(
        &mut self,
        addr: SocketAddr,
        command: bool,
        expected: Option<crate::identity::PeerId>,
    ) {
        let b = Bootstrap {
            addr,
            command,
            startup: false,
            via_dht: true,
        };
        self.connect(addr, ConnectPurpose::Bootstrap(b), expected);
    }

    /// `connect ADDR`: an `IP:PORT` is dialed at once; a `HOST:PORT` is looked up first,
    /// beside the reactor (`resolver.rs`), for at most `exchange::LOOKUP_TIMEOUT`.
    pub(super) fn start_connect(&mut self, addr: &str, now: Instant) {
        self.op = Some(Op::Connect {
            addr: None,
            deadline: now + CONNECT_OP_TIMEOUT,
        });
        if let Ok(id) = addr.parse::<crate::identity::PeerId>() {
            return self.connect_by_id(id, now);
        }
        match addr.parse::<SocketAddr>() {
            Ok(a) => self.connect_resolved(addr, Ok(a)),
            Err(_) => {
                let id = self.discovery.resolver.lookup(addr);
                self.discovery.looking_up(id, addr, now);
                // An inline resolver has answered already.
                self.lookup_reports(now);
            }
        }
    }

    /// Handles every answer of the resolver.
    pub(super) fn lookup_reports(&mut self, _now: Instant) {
        while let Some(done) = self.discovery.resolver.try_recv() {
            if let Some(lookup) = self.discovery.lookup_answered(done.id)
                && matches!(self.op, Some(Op::Connect { addr: None, .. }))
            {
                self.connect_resolved(&lookup.host, done.result);
            }
        }
    }

    /// The address `connect` dials for `typed`, or why there is none.
    fn connect_resolved(&mut self, typed: &str, resolved: Result<SocketAddr, String>) {
        match resolved {
            Ok(a) if a.port() != 0 && !a.ip().is_unspecified() => {
                if let Some(Op::Connect { addr, .. }) = &mut self.op {
                    *addr = Some(a);
                }
                self.start_bootstrap(a, true, false);
            }
            Ok(addr) => self.fail_op(Problem::NotAPeerAddress { addr }),
            Err(why) => self.fail_op(Problem::CannotResolve {
                addr: typed.to_string(),
                why,
            }),
        }
    }

    /// The lookup `connect` waits for ran out of time, or the command ended meanwhile.
    fn lookup_tick(&mut self, now: Instant) {
        if !matches!(self.op, Some(Op::Connect { addr: None, .. })) {
            self.discovery.forget_lookup();
            return;
        }
        if let Some(lookup) = self.discovery.lookup_expired(now) {
            let secs = super::exchange::LOOKUP_TIMEOUT.as_secs();
            let why = format!("the name lookup did not answer within {secs}s");
            self.connect_resolved(&lookup.host, Err(why));
        }
    }

    pub(super) fn bootstrap_connected(
        &mut self,
        conn: ConnId,
        remote: SocketAddr,
        peer: crate::identity::PeerId,
        b: Bootstrap,
        now: Instant,
    ) {
        self.sessions
            .insert(conn, Session::incoming(remote, peer, now));
        self.discovery.bootstrap_connected(conn, b);
        self.send_hello(conn);
    }

    /// A connection to an address failed before its handshake completed.
    pub(super) fn bootstrap_failed(&mut self, b: Bootstrap, why: &str, now: Instant) {
        let (addr, why) = (b.addr, why.to_string());
        if b.command {
            // README: a peer that cannot be reached is exit status 4, `connect` included.
            if matches!(self.op, Some(Op::Connect { addr, .. }) if addr == Some(b.addr)) {
                let problem = Problem::CannotConnect { addr, why };
                self.fail_op_as(Failure::Unreachable, problem);
            }
        } else if b.via_dht {
            // Stale announcements (and our own) are common on the DHT: not worth a warning.
            tracing::info!("cannot reach {addr}, a source the DHT named: {why}");
        } else {
            let warning = Warning::CannotConnect { addr, why };
            self.ui.event(&Event::Warning(warning));
        }
        if b.startup {
            self.discovery.startup_step();
        }
        if b.via_dht {
            self.dht_source_settled(b.addr, None, now);
        }
    }

    /// A session completed its handshake (either direction): record the peer; on connections
    /// we opened, start asking for its peers. (The acceptor never asks: a client that connects
    /// only to send requests never receives one.)
    pub(super) fn peer_met(&mut self, conn: ConnId, listen_port: Option<u16>, now: Instant) {
        let Some(s) = self.sessions.get(&conn) else {
            return;
        };
        let Some(name) = s.name.clone() else {
            return;
        };
        let (remote, expected) = (s.remote, s.expected.clone());
        let boot = self.discovery.take_bootstrap(conn);
        if name == self.cfg.name {
            self.close(conn);
            self.session_closed(conn, "it is this peer", now);
            if let Some(b) = boot {
                let addr = b.addr;
                self.bootstrap_failed(b, &format!("{addr} is this peer"), now);
            }
            return;
        }
        match (boot, expected) {
            (Some(b), _) => self.bootstrap_met(conn, &name, remote, b, now),
            // A relayed or punched link says nothing about the address (a punched one was
            // reached by both sides dialling at once): it stays as the last dial left it.
            (None, Some(_)) if self.relay.is_reached_through_relay(conn) => {
                self.known.touch(&name, now)
            }
            (None, Some(_)) => self.dialer().reached(&name, now),
            (None, None) if self.relay.is_reached_through_relay(conn) => {
                self.known.touch(&name, now);
                return;
            }
            (None, None) => {
                if let Some(port) = listen_port.filter(|p| *p != 0) {
                    let addr = SocketAddr::new(remote.ip(), port);
                    self.known.offer(&name, addr, Source::Incoming, now, now);
                }
                self.known.touch(&name, now);
                return;
            }
        }
        self.discovery.exchange_with(conn, now);
        self.ask_peers(conn, now);
    }

    /// The peer behind a `--peer` or `connect` address introduced itself as `name`.
    fn bootstrap_met(
        &mut self,
        conn: ConnId,
        name: &str,
        remote: SocketAddr,
        b: Bootstrap,
        now: Instant,
    ) {
        let source = if b.via_dht {
            Source::Dht
        } else {
            Source::Manual
        };
        self.known.offer(name, remote, source, now, now);
        self.dialer().reached(name, now);
        let event = Event::Connected {
            name: name.to_string(),
            addr: b.addr.to_string(),
        };
        if b.via_dht && !b.command {
            // A source of a `get`: the search asks it next.
            self.dht_source_settled(b.addr, Some(name.to_string()), now);
        } else if !b.command {
            self.ui.event(&event);
        } else if matches!(self.op, Some(Op::Connect { addr, .. }) if addr == Some(b.addr)) {
            self.ui.event(&event);
            self.finish_op();
        }
        if b.startup {
            self.discovery.startup_conn(conn);
        }
    }

    fn ask_peers(&mut self, conn: ConnId, now: Instant) {
        if self.discovery.ask(conn, now) {
            self.request(conn, Purpose::Exchange, |req| Message::GetPeers { req });
        }
    }

    /// `GetPeers` from a ready session.
    pub(super) fn serve_peers(&mut self, conn: ConnId, req: u64, now: Instant) {
        let asker = self.session_name(conn);
        self.known.touch(&asker, now);
        let peers = self.known.advertise(now, &asker);
        self.send(conn, &Message::PeerList { req, peers });
    }

    fn session_name(&self, conn: ConnId) -> String {
        self.sessions
            .get(&conn)
            .and_then(|s| s.name.clone())
            .unwrap_or_default()
    }

    /// The answer to our `GetPeers` (a `PeerList`, or an `Error` from a peer that has none).
    pub(super) fn peers_answer(&mut self, conn: ConnId, msg: Message, now: Instant) {
        if let Message::PeerList { peers, .. } = msg {
            let from = self.session_name(conn);
            let complete = self.tracker.list_is_complete();
            merge_exchange(&mut self.known, &from, &peers, complete, now);
        }
        self.discovery.answered(conn);
    }

    /// A session ended (before or after its handshake).
    pub(super) fn peer_gone(&mut self, conn: ConnId, session: &Session, why: &str, now: Instant) {
        if let Some(b) = self.discovery.gone(conn) {
            self.bootstrap_failed(b, why, now);
            return;
        }
        if !session.ready()
            && let Some(name) = &session.expected
        {
            // A handshake that failed (wrong peer at that address, refused, timed out) moves
            // the entry on to another address it is known by, if any; whoever was reaching it
            // retries there (see `Self::peer_reach_again` callers in sessions.rs).
            self.dialer().failed(name, now);
        }
    }

    /// `wait-peer` without a tracker: ask the open sessions again (at most once a second).
    pub(super) fn exchange_refresh(&mut self, now: Instant) {
        for conn in self.discovery.refresh(now) {
            self.ask_peers(conn, now);
        }
    }

    /// Names we have a ready session with.
    pub(super) fn connected_names(&self) -> HashSet<String> {
        self.sessions
            .values()
            .filter_map(|s| s.name.clone())
            .collect()
    }

    pub(super) fn discovery_tick(&mut self, now: Instant) {
        for conn in self.discovery.due(now) {
            self.ask_peers(conn, now);
        }
        if self.discovery.probe_due(now) {
            let connected = self.connected_names();
            self.known.expire(now, |n| connected.contains(n));
            if self.tracker.working_without() && !self.exiting {
                self.probe(connected, now);
            }
        }
        if self.discovery.save_due(self.known.is_dirty(), now) {
            self.save_peer_cache(now);
        }
        self.lookup_tick(now);
        self.lan_tick(now);
    }

    /// Connects to known peers until [`super::exchange::TARGET_NEIGHBORS`] sessions are open
    /// or being opened.
    fn probe(&mut self, connected: HashSet<String>, now: Instant) {
        let mut busy = connected;
        for s in self.sessions.values() {
            if let Some(name) = &s.expected {
                busy.insert(name.clone());
            }
        }
        for p in self.connecting.values() {
            if let ConnectPurpose::Peer { name, .. } = p {
                busy.insert(name.clone());
            }
        }
        let want = neighbors_wanted(busy.len());
        if want == 0 {
            return;
        }
        for (name, addr) in self.dialer().probe(now, want, |n| busy.contains(n)) {
            let expected = self.expected_key(&name);
            self.connect(addr, ConnectPurpose::Peer { name, addr }, expected);
        }
    }

    pub(super) fn discovery_deadline(&self) -> Option<Instant> {
        self.discovery.poll_timeout(self.known.is_dirty())
    }

    /// Writes the peer cache now (at exit, and every few seconds after a change).
    pub(super) fn save_peer_cache(&mut self, now: Instant) {
        match peer_cache::save(&self.discovery.cache_path, &self.known, now) {
            Ok(()) => self.known.mark_saved(),
            Err(e) => {
                if self.discovery.warn_save_failed() {
                    let path = self.discovery.cache_path.display().to_string();
                    let error = e.to_string();
                    let warning = Warning::PeerCacheWrite { path, error };
                    self.ui.event(&Event::Warning(warning));
                }
            }
        }
    }

    /// `peers`: every known peer with its address, last-seen age, source and reachability.
    pub(super) fn print_peers(&mut self, now: Instant) {
        let connected = self.connected_names();
        let mut peers = self.known.listing(now, |n| connected.contains(n));
        // Connected through the relay, or by punching, says more than the listed address's
        // kind.
        for p in &mut peers {
            if let Some(via @ ("relayed" | "punched")) = self.reached_via(&p.name) {
                p.via = via;
            }
        }
        let tracker_unreachable = self.tracker.up().is_none();
        self.ui.event(&Event::Peers {
            peers,
            tracker_unreachable,
        });
    }

    fn lan_tick(&mut self, now: Instant) {
        let Some(lan) = &mut self.discovery.lan else {
            return;
        };
        lan.handle_timeout(now);
        if let Some((to, bytes)) = lan.poll_transmit() {
            self.actions.push_back(Action::SendDatagram(to, bytes));
        }
    }

    pub(super) fn lan_datagram(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        let Some(lan) = &mut self.discovery.lan else {
            return;
        };
        let known = &self.known;
        let last_seen = |name: &str| known.get(name).map(|e| e.last_seen);
        if let Some(heard) = lan.handle_datagram(from, bytes, last_seen, now) {
            self.known
                .offer(&heard.name, heard.addr, Source::Lan, now, now);
            self.known.listed_key(&heard.name, heard.addr, heard.id);
        }
    }
}

#[cfg(test)]
mod tests;
