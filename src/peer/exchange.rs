//! Finding peers with or without the tracker: connections to addresses the user gave
//! (`--peer ADDR`, `connect ADDR`), peer exchange on every connection we opened (`GetPeers`
//! right after the handshake and every [`EXCHANGE_EVERY`]; the other side learns of us as an
//! `incoming` peer), connecting to known peers while the tracker is unreachable, and the peer
//! cache. The table itself is `peer_table.rs`, which address to dial `dialer.rs`, LAN
//! announcements `lan.rs`.
//!
//! While the tracker is up its list is the authority: peer exchange then only refreshes peers
//! we know already, so a peer that left does not come back through gossip. Without a tracker,
//! exchange adds new peers too, and the peer keeps up to [`TARGET_NEIGHBORS`] sessions open,
//! trying known peers newest first (each failure doubles the wait before the next try; three
//! in a row forget the entry), so a peer that reaches one member of a network comes to know
//! the others within seconds.
//!
//! [`Discovery`] holds the schedule as a plain value: when to ask which session for its peers,
//! when to look for neighbours, when to save the cache, how long commands wait for `--peer`,
//! which host name is being looked up. It is told the time and answers; the merging rules
//! ([`merge_exchange`], [`merge_tracker_list`]) are functions of the table. The node's side
//! is `exchange_glue.rs`.

use super::lan::LanState;
use super::peer_table::{MAX_EXCHANGE, PeerTable, Source, ago, parse_addr};
use super::resolver::{LookupId, Resolver};
use crate::reactor::ConnId;
use crate::wire::PeerInfo;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
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
/// How long `connect HOST:PORT` waits for the host name's address before it gives up.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to an address whose peer we know only once its `Hello` arrives.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    pub addr: SocketAddr,
    /// For the `connect` command in the foreground.
    pub command: bool,
    /// For a `--peer` flag: commands wait for it briefly at start.
    pub startup: bool,
    /// An address the DHT named (a source of a `get`, or `connect PEER-ID`'s).
    pub via_dht: bool,
}

#[derive(Debug)]
struct ExchangeState {
    next: Instant,
    in_flight: bool,
}

/// The host name `connect` is waiting for.
#[derive(Debug)]
pub struct Lookup {
    pub id: LookupId,
    /// What the user typed (`HOST:PORT`).
    pub host: String,
    pub deadline: Instant,
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
    pub(super) cache_path: PathBuf,
    cache_warned: bool,
    pub(super) lan: Option<LanState>,
    /// Host names are looked up beside the reactor, never on it.
    pub(super) resolver: Resolver,
    lookup: Option<Lookup>,
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
            resolver: Resolver::inline(),
            lookup: None,
        }
    }

    /// Commands wait (briefly) for `count` `--peer` connections.
    pub fn start(&mut self, count: usize, now: Instant) {
        self.startup_left = count;
        self.startup_deadline = now + STARTUP_WAIT;
    }

    /// Commands may run: the `--peer` connections are done, or we stopped waiting.
    pub fn startup_done(&self, now: Instant) -> bool {
        self.startup_left == 0 || now >= self.startup_deadline
    }

    /// One `--peer` connection is done (it failed, or its first exchange is answered).
    pub fn startup_step(&mut self) {
        self.startup_left = self.startup_left.saturating_sub(1);
    }

    /// Whether `conn` is a connection we opened to an address, not to a known name.
    pub fn is_bootstrap(&self, conn: ConnId) -> bool {
        self.bootstrap.contains_key(&conn)
    }

    pub fn bootstrap_connected(&mut self, conn: ConnId, b: Bootstrap) {
        self.bootstrap.insert(conn, b);
    }

    /// The handshake on `conn` is over: what it was opened for, if it was a bootstrap.
    pub fn take_bootstrap(&mut self, conn: ConnId) -> Option<Bootstrap> {
        self.bootstrap.remove(&conn)
    }

    /// A `--peer` connection whose first exchange counts toward the start-up wait.
    pub fn startup_conn(&mut self, conn: ConnId) {
        self.startup_conns.insert(conn);
    }

    /// We opened `conn` and its handshake is done: ask it for its peers now and then.
    pub fn exchange_with(&mut self, conn: ConnId, now: Instant) {
        let x = ExchangeState {
            next: now,
            in_flight: false,
        };
        self.exchange.insert(conn, x);
    }

    /// Whether to send `GetPeers` on `conn` now (one at a time; the next one due
    /// [`EXCHANGE_EVERY`] from now). The caller sends it if so.
    pub fn ask(&mut self, conn: ConnId, now: Instant) -> bool {
        let Some(x) = self.exchange.get_mut(&conn) else {
            return false;
        };
        if x.in_flight {
            return false;
        }
        x.in_flight = true;
        x.next = now + EXCHANGE_EVERY;
        true
    }

    /// The answer to our `GetPeers` on `conn` arrived.
    pub fn answered(&mut self, conn: ConnId) {
        if let Some(x) = self.exchange.get_mut(&conn) {
            x.in_flight = false;
        }
        if self.startup_conns.remove(&conn) {
            self.startup_step();
        }
    }

    /// `conn` closed: forget its schedule. Returns the bootstrap it was, if its handshake
    /// never finished.
    pub fn gone(&mut self, conn: ConnId) -> Option<Bootstrap> {
        self.exchange.remove(&conn);
        if self.startup_conns.remove(&conn) {
            self.startup_step();
        }
        self.bootstrap.remove(&conn)
    }

    /// Sessions due for a `GetPeers`.
    pub fn due(&self, now: Instant) -> Vec<ConnId> {
        self.exchange
            .iter()
            .filter(|(_, x)| !x.in_flight && now >= x.next)
            .map(|(c, _)| *c)
            .collect()
    }

    /// `wait-peer` without a tracker: the sessions to ask again now, at most once a second.
    pub fn refresh(&mut self, now: Instant) -> Vec<ConnId> {
        if self
            .last_refresh
            .is_some_and(|t| now.saturating_duration_since(t) < REFRESH_EVERY)
        {
            return Vec::new();
        }
        self.last_refresh = Some(now);
        self.exchange.keys().copied().collect()
    }

    /// Whether it is time to drop stale entries and look for neighbours (every
    /// [`PROBE_EVERY`]).
    pub fn probe_due(&mut self, now: Instant) -> bool {
        if now < self.next_probe {
            return false;
        }
        self.next_probe = now + PROBE_EVERY;
        true
    }

    /// Whether to write the peer cache now: the table changed (`dirty`) and the last save
    /// is [`SAVE_EVERY`] old.
    pub fn save_due(&mut self, dirty: bool, now: Instant) -> bool {
        if now < self.next_save {
            return false;
        }
        self.next_save = now + SAVE_EVERY;
        dirty
    }

    /// A save failed: whether to say so (only the first time).
    pub fn warn_save_failed(&mut self) -> bool {
        !std::mem::replace(&mut self.cache_warned, true)
    }

    /// `connect HOST:PORT` waits for `id` until `now + LOOKUP_TIMEOUT`.
    pub fn looking_up(&mut self, id: LookupId, host: &str, now: Instant) {
        self.lookup = Some(Lookup {
            id,
            host: host.to_string(),
            deadline: now + LOOKUP_TIMEOUT,
        });
    }

    /// The lookup `id` answered: the one waited for, if it is.
    pub fn lookup_answered(&mut self, id: LookupId) -> Option<Lookup> {
        self.lookup.take_if(|l| l.id == id)
    }

    /// The lookup waited for, if it ran out of time by `now`.
    pub fn lookup_expired(&mut self, now: Instant) -> Option<Lookup> {
        self.lookup.take_if(|l| now >= l.deadline)
    }

    /// The command that waited ended otherwise: an answer that comes now is dropped.
    pub fn forget_lookup(&mut self) {
        self.lookup = None;
    }

    /// When something is due; `dirty`: the table has changes to save.
    pub fn poll_timeout(&self, dirty: bool) -> Option<Instant> {
        let startup = (self.startup_left > 0).then_some(self.startup_deadline);
        let exchange = self
            .exchange
            .values()
            .filter(|x| !x.in_flight)
            .map(|x| x.next)
            .min();
        let save = dirty.then_some(self.next_save);
        let lan = self.lan.as_ref().map(LanState::poll_timeout);
        let lookup = self.lookup.as_ref().map(|l| l.deadline);
        [startup, exchange, Some(self.next_probe), save, lan, lookup]
            .into_iter()
            .flatten()
            .min()
    }
}

/// How many more sessions to open when working without a tracker, with `busy` open or being
/// opened.
pub fn neighbors_wanted(busy: usize) -> usize {
    TARGET_NEIGHBORS.saturating_sub(busy)
}

/// Merges a `PeerList` from `from` into `table`. With a tracker whose whole list we have
/// (`complete_list`), that list says who is there and gossip only refreshes known entries; a
/// tracker too big to list everyone sent a sample, and without a tracker there is no list:
/// then gossip adds new peers too (PROTOCOL.md §6.2). At most [`MAX_EXCHANGE`] entries are
/// taken; invalid ones are skipped.
pub fn merge_exchange(
    table: &mut PeerTable,
    from: &str,
    peers: &[PeerInfo],
    complete_list: bool,
    now: Instant,
) {
    table.touch(from, now);
    for p in peers.iter().take(MAX_EXCHANGE) {
        if complete_list && !table.contains_key(&p.name) {
            continue;
        }
        let Some(addr) = parse_addr(&p.addr) else {
            continue;
        };
        let seen = ago(now, p.last_seen_ms);
        table.offer(&p.name, addr, Source::Exchange, seen, now);
        table.listed_key(&p.name, addr, p.id);
        table.note_mapped(addr, p.mapped, false);
    }
}

/// Merges the tracker's list. A complete list is a snapshot of who is registered: entries
/// only the tracker (or hearsay) vouched for that it no longer lists are dropped, unless
/// `connected` says we talk to them (see `PeerTable::tracker_snapshot`). A `sample` only adds
/// and refreshes, or every answer would forget the peers the previous one happened to list.
pub fn merge_tracker_list(
    table: &mut PeerTable,
    peers: &[PeerInfo],
    sample: bool,
    now: Instant,
    connected: impl Fn(&str) -> bool,
) {
    if !sample {
        table.tracker_snapshot(peers, now, connected);
    }
    for p in peers {
        if let Some(addr) = parse_addr(&p.addr) {
            if sample {
                let seen = ago(now, p.last_seen_ms);
                table.offer(&p.name, addr, Source::Tracker, seen, now);
            }
            table.listed_key(&p.name, addr, p.id);
            table.note_mapped(addr, p.mapped, true);
        }
    }
}

#[cfg(test)]
mod tests;
