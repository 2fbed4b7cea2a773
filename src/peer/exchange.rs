//! Finding peers with or without the tracker: connections to addresses the user gave
//! (`--peer ADDR`, `connect ADDR`), peer exchange on every connection we opened (`GetPeers`
//! right after the handshake and every [`EXCHANGE_EVERY`]; the other side learns of us as an
//! `incoming` peer), connecting to known peers while the tracker is unreachable, and the peer
//! cache. The table itself is `peer_table.rs`; LAN announcements are
//! `lan.rs`.
//!
//! While the tracker is up its list is the authority: peer exchange then only refreshes peers
//! we know already, so a peer that left does not come back through gossip. Without a tracker,
//! exchange adds new peers too, and the peer keeps up to [`TARGET_NEIGHBORS`] sessions open,
//! trying known peers newest first (each failure doubles the wait before the next try; three
//! in a row forget the entry), so a peer that reaches one member of a network comes to know
//! the others within seconds.

use super::event::{Event, Failure, Problem, Warning};
use super::lan::LanState;
use super::node::{ConnectPurpose, PeerNode, Purpose};
use super::ops::Op;
use super::peer_cache;
use super::peer_table::{MAX_EXCHANGE, Source, ago, parse_addr};
use super::sessions::Session;
use crate::reactor::ConnId;
use crate::wire::Message;
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often an open session is asked for its peers.
pub const EXCHANGE_EVERY: Duration = Duration::from_secs(10);
/// How often, without a tracker, we look for known peers to connect to; also how often stale
/// entries are dropped.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// Sessions we keep open when working without a tracker.
pub const TARGET_NEIGHBORS: usize = 8;
/// How often a changed table is written to the peer cache.
const SAVE_EVERY: Duration = Duration::from_secs(10);
/// Longest wait at start for the `--peer` connections before commands run anyway.
const STARTUP_WAIT: Duration = Duration::from_secs(3);
/// `wait-peer` without a tracker asks the open sessions again at most this often.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// How long `connect ADDR` may take (connect and handshake have their own 10 s limits).
const CONNECT_OP_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to an address whose peer we know only once its `Hello` arrives.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    pub addr: SocketAddr,
    /// For the `connect` command in the foreground.
    pub command: bool,
    /// For a `--peer` flag: commands wait for it briefly at start.
    pub startup: bool,
}

struct ExchangeState {
    next: Instant,
    in_flight: bool,
}

pub struct Discovery {
    bootstrap: HashMap<ConnId, Bootstrap>,
    /// Every ready session we opened: when to ask it for its peers next.
    exchange: HashMap<ConnId, ExchangeState>,
    /// `--peer` connections not finished yet (handshake and first exchange, or failure).
    startup_left: usize,
    startup_conns: HashSet<ConnId>,
    startup_deadline: Instant,
    next_probe: Instant,
    next_save: Instant,
    last_refresh: Option<Instant>,
    cache_path: PathBuf,
    cache_warned: bool,
    pub(super) lan: Option<LanState>,
}

impl Discovery {
    pub fn new(cache_path: PathBuf, now: Instant) -> Discovery {
        Discovery {
            bootstrap: HashMap::new(),
            exchange: HashMap::new(),
            startup_left: 0,
            startup_conns: HashSet::new(),
            startup_deadline: now,
            next_probe: now,
            next_save: now + SAVE_EVERY,
            last_refresh: None,
            cache_path,
            cache_warned: false,
            lan: None,
        }
    }

    /// Whether `conn` is a connection we opened to an address, not to a known name.
    pub fn is_bootstrap(&self, conn: ConnId) -> bool {
        self.bootstrap.contains_key(&conn)
    }

    /// Commands may run: the `--peer` connections are done, or we stopped waiting.
    pub fn startup_done(&self, now: Instant) -> bool {
        self.startup_left == 0 || now >= self.startup_deadline
    }
}

impl PeerNode {
    /// At start: load the peer cache, connect to the `--peer` addresses, start LAN announcements.
    pub(super) fn discovery_start(&mut self, now: Instant) {
        if let Err(warning) = peer_cache::load(&self.discovery.cache_path, &mut self.known, now) {
            self.ui.event(&Event::Warning(Warning::PeerCache(warning)));
        }
        let addrs = self.cfg.bootstrap.clone();
        self.discovery.startup_left = addrs.len();
        self.discovery.startup_deadline = now + STARTUP_WAIT;
        for addr in addrs {
            self.start_bootstrap(addr, false, true);
        }
        if let Some(lan) = self.cfg.lan.clone() {
            let (name, port) = (self.cfg.name.clone(), self.listen_port);
            self.discovery.lan = Some(LanState::new(lan, &name, port, now));
        }
    }

    fn start_bootstrap(&mut self, addr: SocketAddr, command: bool, startup: bool) {
        let b = Bootstrap {
            addr,
            command,
            startup,
        };
        self.connect(addr, ConnectPurpose::Bootstrap(b));
    }

    /// `connect ADDR`.
    pub(super) fn start_connect(&mut self, addr: &str, now: Instant) {
        let resolved = match addr.parse::<SocketAddr>() {
            Ok(a) => Ok(a),
            Err(_) => addr
                .to_socket_addrs()
                .map_err(|e| e.to_string())
                .and_then(|mut all| all.next().ok_or_else(|| "no address found".to_string())),
        };
        match resolved {
            Ok(a) if a.port() != 0 && !a.ip().is_unspecified() => {
                self.op = Some(Op::Connect {
                    addr: a,
                    deadline: now + CONNECT_OP_TIMEOUT,
                });
                self.start_bootstrap(a, true, false);
            }
            Ok(addr) => self.fail_op(Problem::NotAPeerAddress { addr }),
            Err(why) => self.fail_op(Problem::CannotResolve {
                addr: addr.to_string(),
                why,
            }),
        }
    }

    pub(super) fn bootstrap_connected(
        &mut self,
        conn: ConnId,
        remote: SocketAddr,
        b: Bootstrap,
        now: Instant,
    ) {
        self.sessions.insert(conn, Session::incoming(remote, now));
        self.discovery.bootstrap.insert(conn, b);
        self.send_hello(conn);
    }

    /// A connection to an address failed before its handshake completed.
    pub(super) fn bootstrap_failed(&mut self, b: Bootstrap, why: &str) {
        let (addr, why) = (b.addr, why.to_string());
        if b.command {
            // README: a peer that cannot be reached is exit status 4, `connect` included.
            if matches!(self.op, Some(Op::Connect { addr, .. }) if addr == b.addr) {
                let problem = Problem::CannotConnect { addr, why };
                self.fail_op_as(Failure::Unreachable, problem);
            }
        } else {
            let warning = Warning::CannotConnect { addr, why };
            self.ui.event(&Event::Warning(warning));
        }
        if b.startup {
            self.startup_step();
        }
    }

    fn startup_step(&mut self) {
        self.discovery.startup_left = self.discovery.startup_left.saturating_sub(1);
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
        let boot = self.discovery.bootstrap.remove(&conn);
        if name == self.cfg.name {
            self.close(conn);
            self.session_closed(conn, "it is this peer", now);
            if let Some(b) = boot {
                let addr = b.addr;
                self.bootstrap_failed(b, &format!("{addr} is this peer"));
            }
            return;
        }
        match (boot, expected) {
            (Some(b), _) => {
                self.known.offer(&name, remote, Source::Manual, now, now);
                self.known.reached(&name, now);
                let event = Event::Connected {
                    name: name.clone(),
                    addr: b.addr.to_string(),
                };
                if !b.command {
                    self.ui.event(&event);
                } else if matches!(self.op, Some(Op::Connect { addr, .. }) if addr == b.addr) {
                    self.ui.event(&event);
                    self.finish_op();
                }
                if b.startup {
                    self.discovery.startup_conns.insert(conn);
                }
            }
            (None, Some(_)) => self.known.reached(&name, now),
            (None, None) => {
                if let Some(port) = listen_port.filter(|p| *p != 0) {
                    let addr = SocketAddr::new(remote.ip(), port);
                    self.known.offer(&name, addr, Source::Incoming, now, now);
                }
                self.known.touch(&name, now);
                return;
            }
        }
        self.discovery.exchange.insert(
            conn,
            ExchangeState {
                next: now,
                in_flight: false,
            },
        );
        self.ask_peers(conn, now);
    }

    fn ask_peers(&mut self, conn: ConnId, now: Instant) {
        let Some(x) = self.discovery.exchange.get_mut(&conn) else {
            return;
        };
        if x.in_flight {
            return;
        }
        x.in_flight = true;
        x.next = now + EXCHANGE_EVERY;
        self.request(conn, Purpose::Exchange, |req| Message::GetPeers { req });
    }

    /// `GetPeers` from a ready session.
    pub(super) fn serve_peers(&mut self, conn: ConnId, req: u64, now: Instant) {
        let asker = self
            .sessions
            .get(&conn)
            .and_then(|s| s.name.clone())
            .unwrap_or_default();
        self.known.touch(&asker, now);
        let peers = self.known.advertise(now, &asker);
        self.send(conn, &Message::PeerList { req, peers });
    }

    /// The answer to our `GetPeers` (a `PeerList`, or an `Error` from a peer that has none).
    pub(super) fn peers_answer(&mut self, conn: ConnId, msg: Message, now: Instant) {
        if let Some(x) = self.discovery.exchange.get_mut(&conn) {
            x.in_flight = false;
        }
        if let Message::PeerList { peers, .. } = msg {
            let from = self
                .sessions
                .get(&conn)
                .and_then(|s| s.name.clone())
                .unwrap_or_default();
            self.known.touch(&from, now);
            // With a tracker whose whole list we have, that list says who is there and gossip
            // only refreshes. A tracker too big to list everyone sent a sample: gossip fills in
            // the rest (PROTOCOL.md §6.2).
            let complete_list = self.tracker.up().is_some() && !self.tracker.list_was_sample;
            for p in peers.iter().take(MAX_EXCHANGE) {
                if complete_list && !self.known.contains_key(&p.name) {
                    continue;
                }
                let Some(addr) = parse_addr(&p.addr) else {
                    continue;
                };
                let seen = ago(now, p.last_seen_ms);
                self.known.offer(&p.name, addr, Source::Exchange, seen, now);
            }
        }
        if self.discovery.startup_conns.remove(&conn) {
            self.startup_step();
        }
    }

    /// A session ended (before or after its handshake).
    pub(super) fn peer_gone(&mut self, conn: ConnId, session: &Session, why: &str, now: Instant) {
        self.discovery.exchange.remove(&conn);
        if self.discovery.startup_conns.remove(&conn) {
            self.startup_step();
        }
        if let Some(b) = self.discovery.bootstrap.remove(&conn) {
            self.bootstrap_failed(b, why);
            return;
        }
        if !session.ready()
            && let Some(name) = &session.expected
        {
            // A handshake that failed (wrong peer at that address, refused, timed out) moves
            // the entry on to another address it is known by, if any; whoever was reaching it
            // retries there (see `Self::peer_reach_again` callers in sessions.rs).
            self.known.failed(name, now);
        }
    }

    /// `wait-peer` without a tracker: ask the open sessions again (at most once a second).
    pub(super) fn exchange_refresh(&mut self, now: Instant) {
        if self
            .discovery
            .last_refresh
            .is_some_and(|t| now.saturating_duration_since(t) < REFRESH_EVERY)
        {
            return;
        }
        self.discovery.last_refresh = Some(now);
        let conns: Vec<ConnId> = self.discovery.exchange.keys().copied().collect();
        for conn in conns {
            self.ask_peers(conn, now);
        }
    }

    /// Names we have a ready session with.
    fn connected_names(&self) -> HashSet<String> {
        self.sessions
            .values()
            .filter_map(|s| s.name.clone())
            .collect()
    }

    pub(super) fn discovery_tick(&mut self, now: Instant) {
        let due: Vec<ConnId> = self
            .discovery
            .exchange
            .iter()
            .filter(|(_, x)| !x.in_flight && now >= x.next)
            .map(|(c, _)| *c)
            .collect();
        for conn in due {
            self.ask_peers(conn, now);
        }
        if now >= self.discovery.next_probe {
            self.discovery.next_probe = now + PROBE_EVERY;
            let connected = self.connected_names();
            self.known.expire(now, |n| connected.contains(n));
            if self.tracker.working_without() && !self.exiting {
                self.probe(connected, now);
            }
        }
        if now >= self.discovery.next_save {
            self.discovery.next_save = now + SAVE_EVERY;
            if self.known.is_dirty() {
                self.save_peer_cache(now);
            }
        }
        self.lan_tick(now);
    }

    /// Connects to known peers until [`TARGET_NEIGHBORS`] sessions are open or being opened.
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
        let want = TARGET_NEIGHBORS.saturating_sub(busy.len());
        if want == 0 {
            return;
        }
        for (name, addr) in self.known.probe_candidates(now, want, |n| busy.contains(n)) {
            self.known.attempt(&name, now);
            self.connect(addr, ConnectPurpose::Peer { name, addr });
        }
    }

    pub(super) fn discovery_deadline(&self) -> Option<Instant> {
        let d = &self.discovery;
        let startup = (d.startup_left > 0).then_some(d.startup_deadline);
        let exchange = d
            .exchange
            .values()
            .filter(|x| !x.in_flight)
            .map(|x| x.next)
            .min();
        let save = self.known.is_dirty().then_some(d.next_save);
        let lan = d.lan.as_ref().map(LanState::deadline);
        [startup, exchange, Some(d.next_probe), save, lan]
            .into_iter()
            .flatten()
            .min()
    }

    /// Writes the peer cache now (at exit, and every few seconds after a change).
    pub(super) fn save_peer_cache(&mut self, now: Instant) {
        match peer_cache::save(&self.discovery.cache_path, &self.known, now) {
            Ok(()) => self.known.mark_saved(),
            Err(e) => {
                if !self.discovery.cache_warned {
                    self.discovery.cache_warned = true;
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
        let peers = self.known.listing(now, |n| connected.contains(n));
        let tracker_unreachable = self.tracker.up().is_none();
        self.ui.event(&Event::Peers {
            peers,
            tracker_unreachable,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::wire::{Message, PeerInfo, decode_message, encode_message};

    /// The worked examples of PROTOCOL.md §14.
    #[test]
    fn exchange_messages_encode_as_documented() {
        let get = encode_message(&Message::GetPeers { req: 7 });
        assert_eq!(
            hex::encode(&get),
            "00000010a1684765745065657273a16372657107"
        );
        let list = Message::PeerList {
            req: 7,
            peers: vec![PeerInfo {
                name: "Carol".into(),
                addr: "10.0.0.3:4000".into(),
                last_seen_ms: 1500,
            }],
        };
        let bytes = encode_message(&list);
        assert_eq!(
            hex::encode(&bytes),
            concat!(
                "00000046",
                "a1",
                "68506565724c697374",
                "a2",
                "6372657107",
                "65706565727381",
                "a3",
                "646e616d65654361726f6c",
                "64616464726d31302e302e302e333a34303030",
                "6c6c6173745f7365656e5f6d731905dc",
            )
        );
        assert_eq!(decode_message(&bytes[4..]), Ok(list));
    }
}
