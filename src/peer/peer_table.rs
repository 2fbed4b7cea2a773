//! The peers this peer knows of, whatever told us about them: the tracker, another peer (peer
//! exchange), our own cache from an earlier run, a LAN announcement, the user (`--peer`,
//! `connect`), or the peer itself connecting to us. Plain state, no sockets, time passed in.
//!
//! One entry per name. Invariants:
//! - every entry passed [`check_entry`]: a valid peer name that is not ours, an address with a
//!   port and a specific, unicast IP;
//! - at most [`MAX_KNOWN`] entries; a full table evicts the stalest second-hand entry first;
//! - `last_seen` never lies in the future and never moves backwards;
//! - `source` only moves up in [`Source::rank`] (first-hand news replaces second-hand news), except
//!   when a lower source brings a new address for an entry we failed to reach since it was seen;
//! - a changed address resets what we know about reaching it (`reach`, `failures`);
//! - `alternates` holds at most [`MAX_ALTERNATES`] other first-hand addresses of the entry (the
//!   tracker's, a LAN one, the user's...), never the primary one, best first: a failed attempt
//!   moves on to the next before the entry is given up on, so one stale address (a peer that
//!   restarted on another port, a LAN address it does not listen on) never hides a working one.

use super::event::PeerEntry;
use crate::names::check_peer_name;
use crate::wire::PeerInfo;
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Most peers remembered (the tracker lists at most 10,000).
pub const MAX_KNOWN: usize = 16_384;
/// Most entries sent in, or taken from, one peer-exchange answer.
pub const MAX_EXCHANGE: usize = 64;
/// Failed connection attempts in a row after which an entry is forgotten (not a manual one).
pub const MAX_FAILURES: u32 = 3;
/// An entry nobody has seen for this long is forgotten (unless connected or manual), and is no
/// longer passed on to other peers.
pub const STALE_AFTER: Duration = Duration::from_secs(600);
/// A peer learned from LAN announcements that stopped announcing for this long has left the LAN.
pub const LAN_STALE: Duration = Duration::from_secs(20);
/// Ages reported by others are capped at a day.
const MAX_AGE: Duration = Duration::from_secs(86_400);
/// Other addresses remembered per entry.
pub const MAX_ALTERNATES: usize = 4;
/// First wait before trying an entry again after an attempt; doubles with each failure.
const RETRY_BASE: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Where we learned of a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The tracker's peer list.
    Tracker,
    /// Another peer's list (peer exchange).
    Exchange,
    /// Our peer cache from an earlier run.
    Cache,
    /// A LAN multicast announcement.
    Lan,
    /// The user: `--peer ADDR` or `connect ADDR`.
    Manual,
    /// It connected to us (address: its IP and the listen port from its `Hello`).
    Incoming,
    /// The DHT named the address (announced under a content id, or in its record).
    Dht,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Tracker => "tracker",
            Source::Exchange => "exchange",
            Source::Cache => "cache",
            Source::Lan => "lan",
            Source::Manual => "manual",
            Source::Incoming => "incoming",
            Source::Dht => "dht",
        }
    }

    /// Heard from the peer itself, the tracker or the user, not passed on by someone else.
    fn first_hand(self) -> bool {
        !matches!(self, Source::Cache | Source::Exchange)
    }

    /// How much we trust an address from this source. Second-hand news (cache, exchange) ranks
    /// lowest; what the user typed ranks highest.
    fn rank(self) -> u8 {
        match self {
            Source::Cache | Source::Exchange => 0,
            Source::Incoming => 1,
            Source::Lan | Source::Dht => 2,
            Source::Tracker => 3,
            Source::Manual => 4,
        }
    }
}

/// What we know about reaching a peer at its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Never tried (or the address changed since).
    Unknown,
    /// The last connection attempt completed its handshake.
    Reachable,
    /// The last connection attempt failed.
    Unreachable,
}

#[derive(Clone, Debug)]
pub struct KnownPeer {
    pub addr: SocketAddr,
    /// The key whoever told us of `addr` listed for it (what a dial there must reach, unless
    /// a key is pinned to the name).
    pub id: Option<crate::identity::PeerId>,
    /// When we, or whoever told us, last heard from it.
    pub last_seen: Instant,
    pub source: Source,
    pub reach: Reach,
    /// Failed attempts in a row.
    pub failures: u32,
    pub last_attempt: Option<Instant>,
    /// Other first-hand addresses it is known by, best first (see the module invariants).
    pub alternates: Vec<Alternate>,
}

/// An address an entry is also known by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alternate {
    pub addr: SocketAddr,
    pub source: Source,
    pub last_seen: Instant,
}

impl KnownPeer {
    /// Remembers `alt` as another way to reach this peer (not the primary address).
    fn remember(&mut self, alt: Alternate) {
        if alt.addr == self.addr || !alt.source.first_hand() {
            return;
        }
        match self.alternates.iter_mut().find(|a| a.addr == alt.addr) {
            Some(a) => {
                a.last_seen = a.last_seen.max(alt.last_seen);
                if alt.source.rank() > a.source.rank() {
                    a.source = alt.source;
                }
            }
            None => self.alternates.push(alt),
        }
        self.alternates.sort_by_key(|a| {
            (
                std::cmp::Reverse(a.source.rank()),
                std::cmp::Reverse(a.last_seen),
            )
        });
        self.alternates.truncate(MAX_ALTERNATES);
    }
}

/// What [`PeerTable::failed`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed {
    /// The entry moved on to another address it is known by: worth trying at once.
    Switched(SocketAddr),
    /// No other address: marked unreachable.
    Unreachable,
    /// Too many failures: forgotten.
    Forgotten,
    /// Not in the table.
    Unknown,
}

/// What [`PeerTable::offer`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    New,
    /// The entry's address or source changed.
    Changed,
    /// Known already; at most `last_seen` moved.
    Same,
    /// Invalid, ourselves, or no room.
    Refused,
}

/// Why an entry is refused, or `Ok`.
pub fn check_entry(me: &str, name: &str, addr: SocketAddr) -> Result<(), &'static str> {
    if check_peer_name(name).is_err() {
        return Err("invalid peer name");
    }
    if name == me {
        return Err("ourselves");
    }
    if addr.port() == 0 {
        return Err("port 0");
    }
    let ip = addr.ip();
    if ip.is_unspecified() || ip.is_multicast() {
        return Err("not a unicast address");
    }
    if let IpAddr::V4(v4) = ip
        && v4.is_broadcast()
    {
        return Err("broadcast address");
    }
    Ok(())
}

pub struct PeerTable {
    me: String,
    peers: BTreeMap<String, KnownPeer>,
    /// Something worth saving in the peer cache changed since the last save.
    dirty: bool,
}

impl PeerTable {
    pub fn new(me: &str) -> PeerTable {
        PeerTable {
            me: me.to_string(),
            peers: BTreeMap::new(),
            dirty: false,
        }
    }

    pub fn get(&self, name: &str) -> Option<&KnownPeer> {
        self.peers.get(name)
    }

    /// Whether `name` has an address nobody has tried yet: after a failed attempt, that the
    /// entry moved on to another address it is known by (or fresh news came for it).
    pub fn has_untried_address(&self, name: &str) -> bool {
        self.peers
            .get(name)
            .is_some_and(|e| e.reach == Reach::Unknown)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.peers.contains_key(name)
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Entries sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &KnownPeer)> {
        self.peers.iter()
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn mark_saved(&mut self) {
        self.dirty = false;
    }

    /// Merges one piece of news: `name` is at `addr`, heard of at `last_seen`, from `source`.
    pub fn offer(
        &mut self,
        name: &str,
        addr: SocketAddr,
        source: Source,
        last_seen: Instant,
        now: Instant,
    ) -> Offered {
        if check_entry(&self.me, name, addr).is_err() {
            return Offered::Refused;
        }
        let last_seen = last_seen.min(now);
        let Some(e) = self.peers.get_mut(name) else {
            if self.peers.len() >= MAX_KNOWN && !self.evict_one(source) {
                return Offered::Refused;
            }
            self.peers.insert(
                name.to_string(),
                KnownPeer {
                    addr,
                    id: None,
                    last_seen,
                    source,
                    reach: Reach::Unknown,
                    failures: 0,
                    last_attempt: None,
                    alternates: Vec::new(),
                },
            );
            self.dirty = true;
            return Offered::New;
        };
        // News newer than our last failed attempt says the peer is (back) up.
        let fresher_than_failure =
            e.reach == Reach::Unreachable && e.last_attempt.is_none_or(|tried| last_seen > tried);
        let (take_addr, take_source) = match source.rank().cmp(&e.source.rank()) {
            std::cmp::Ordering::Greater => (true, true),
            std::cmp::Ordering::Equal => (last_seen >= e.last_seen, false),
            std::cmp::Ordering::Less => (fresher_than_failure && addr != e.addr, true),
        };
        let mut changed = false;
        let offered = Alternate {
            addr,
            source,
            last_seen,
        };
        if take_addr && addr != e.addr {
            let old = Alternate {
                addr: e.addr,
                source: e.source,
                last_seen: e.last_seen,
            };
            e.alternates.retain(|a| a.addr != addr);
            e.addr = addr;
            // The old address stays worth a try if someone else vouched for it first-hand.
            if old.source != source {
                e.remember(old);
            }
            e.reach = Reach::Unknown;
            e.failures = 0;
            e.last_attempt = None;
            changed = true;
        } else if fresher_than_failure && addr == e.addr {
            e.reach = Reach::Unknown;
            e.failures = 0;
        } else if addr != e.addr {
            e.remember(offered);
        }
        if take_addr && take_source && e.source != source {
            e.source = source;
            changed = true;
        }
        e.last_seen = e.last_seen.max(last_seen);
        if changed {
            self.dirty = true;
            Offered::Changed
        } else {
            Offered::Same
        }
    }

    /// Makes room for one entry from `source`: drops the stalest entry that ranks no higher
    /// and is neither manual nor from the tracker. False if there is none.
    fn evict_one(&mut self, source: Source) -> bool {
        let victim = self
            .peers
            .iter()
            .filter(|(_, e)| {
                !matches!(e.source, Source::Manual | Source::Tracker)
                    && e.source.rank() <= source.rank().max(Source::Incoming.rank())
            })
            .min_by_key(|(_, e)| e.last_seen)
            .map(|(n, _)| n.clone());
        match victim {
            Some(name) => {
                self.peers.remove(&name);
                true
            }
            None => false,
        }
    }

    /// The tracker's list, a snapshot of who is registered now: its entries are merged as
    /// `Tracker`, and second-hand or tracker entries it does not list are dropped unless
    /// `connected` says we talk to them right now. First-hand entries (manual, LAN, incoming)
    /// keep their own lifetimes.
    pub fn tracker_snapshot(
        &mut self,
        list: &[PeerInfo],
        now: Instant,
        connected: impl Fn(&str) -> bool,
    ) {
        let mut listed = HashSet::new();
        for p in list {
            let Some(addr) = parse_addr(&p.addr) else {
                continue;
            };
            if self.offer(
                &p.name,
                addr,
                Source::Tracker,
                ago(now, p.last_seen_ms),
                now,
            ) != Offered::Refused
            {
                listed.insert(p.name.as_str());
            }
        }
        let before = self.peers.len();
        self.peers.retain(|name, e| {
            listed.contains(name.as_str())
                || connected(name)
                || !matches!(e.source, Source::Tracker | Source::Cache | Source::Exchange)
        });
        if self.peers.len() != before {
            self.dirty = true;
        }
    }

    /// We are about to connect to `name`.
    pub fn attempt(&mut self, name: &str, now: Instant) {
        if let Some(e) = self.peers.get_mut(name) {
            e.last_attempt = Some(now);
        }
    }

    /// A connection to `name` completed its handshake.
    pub fn reached(&mut self, name: &str, now: Instant) {
        if let Some(e) = self.peers.get_mut(name) {
            if e.reach != Reach::Reachable {
                self.dirty = true;
            }
            e.reach = Reach::Reachable;
            e.failures = 0;
            e.last_seen = now;
            e.last_attempt = Some(now);
        }
    }

    /// We heard from `name` just now (a frame on an open connection).
    pub fn touch(&mut self, name: &str, now: Instant) {
        if let Some(e) = self.peers.get_mut(name) {
            e.last_seen = e.last_seen.max(now);
        }
    }

    /// A connection attempt to `name` failed: the entry moves on to the best other address it
    /// is known by (a failed manual address stays last in line: the user gave it), or is
    /// marked unreachable, or forgotten after [`MAX_FAILURES`] (not a manual one).
    pub fn failed(&mut self, name: &str, now: Instant) -> Failed {
        let Some(e) = self.peers.get_mut(name) else {
            return Failed::Unknown;
        };
        self.dirty = true;
        if !e.alternates.is_empty() {
            let next = e.alternates.remove(0);
            let failed = Alternate {
                addr: e.addr,
                source: e.source,
                last_seen: e.last_seen,
            };
            e.addr = next.addr;
            e.source = next.source;
            e.last_seen = e.last_seen.max(next.last_seen);
            e.reach = Reach::Unknown;
            e.failures = 0;
            e.last_attempt = Some(now);
            if failed.source == Source::Manual {
                e.alternates.push(failed);
            }
            return Failed::Switched(next.addr);
        }
        e.reach = Reach::Unreachable;
        e.failures = e.failures.saturating_add(1);
        e.last_attempt = Some(now);
        if e.failures >= MAX_FAILURES && e.source != Source::Manual {
            self.peers.remove(name);
            return Failed::Forgotten;
        }
        Failed::Unreachable
    }

    /// Forgets entries nobody has seen for long (LAN entries sooner), unless `connected` or
    /// manual. Returns how many went.
    pub fn expire(&mut self, now: Instant, connected: impl Fn(&str) -> bool) -> usize {
        let before = self.peers.len();
        self.peers.retain(|name, e| {
            let age = now.saturating_duration_since(e.last_seen);
            let stale = age > STALE_AFTER || (e.source == Source::Lan && age > LAN_STALE);
            !stale || e.source == Source::Manual || connected(name)
        });
        let gone = before - self.peers.len();
        if gone > 0 {
            self.dirty = true;
        }
        gone
    }

    /// Whoever told us `name` is at `addr` listed its key as `id`: it goes with that address,
    /// if the entry holds it now (news that lost to better news brings no key either).
    pub fn listed_key(&mut self, name: &str, addr: SocketAddr, id: crate::identity::PeerId) {
        if let Some(e) = self.peers.get_mut(name)
            && e.addr == addr
            && e.id != Some(id)
        {
            e.id = Some(id);
            self.dirty = true;
        }
    }

    /// A connection's handshake proved that `name` (pinned to it) holds `id`.
    pub fn proved_key(&mut self, name: &str, id: crate::identity::PeerId) {
        if let Some(e) = self.peers.get_mut(name)
            && e.id != Some(id)
        {
            e.id = Some(id);
            self.dirty = true;
        }
    }

    /// What we tell a peer that asks (leaving out `asker`): entries not known to be
    /// unreachable and seen recently, whose key we know, newest first, at most
    /// [`MAX_EXCHANGE`].
    pub fn advertise(&self, now: Instant, asker: &str) -> Vec<PeerInfo> {
        let mut list: Vec<(&String, &KnownPeer)> = self
            .peers
            .iter()
            .filter(|(name, e)| {
                name.as_str() != asker
                    && e.id.is_some()
                    && e.reach != Reach::Unreachable
                    && now.saturating_duration_since(e.last_seen) <= STALE_AFTER
            })
            .collect();
        list.sort_by_key(|(name, e)| (std::cmp::Reverse(e.last_seen), name.as_str()));
        list.into_iter()
            .filter_map(|(name, e)| Some((name, e, e.id?)))
            .take(MAX_EXCHANGE)
            .map(|(name, e, id)| PeerInfo {
                name: name.clone(),
                id,
                addr: e.addr.to_string(),
                last_seen_ms: now.saturating_duration_since(e.last_seen).as_millis() as u64,
            })
            .collect()
    }

    /// Up to `max` entries worth a connection attempt now: not `busy` (connected or being
    /// connected), and not tried too recently (the wait doubles with each failure). Newest
    /// first, reachable ones before the rest.
    pub fn probe_candidates(
        &self,
        now: Instant,
        max: usize,
        busy: impl Fn(&str) -> bool,
    ) -> Vec<(String, SocketAddr)> {
        let mut list: Vec<(&String, &KnownPeer)> = self
            .peers
            .iter()
            .filter(|(name, e)| {
                let wait = RETRY_BASE
                    .saturating_mul(1 << e.failures.min(6))
                    .min(RETRY_MAX);
                e.last_attempt
                    .is_none_or(|t| now.saturating_duration_since(t) >= wait)
                    && !busy(name)
            })
            .collect();
        list.sort_by_key(|(name, e)| {
            (
                e.reach != Reach::Reachable,
                std::cmp::Reverse(e.last_seen),
                name.as_str(),
            )
        });
        list.into_iter()
            .take(max)
            .map(|(name, e)| (name.clone(), e.addr))
            .collect()
    }

    /// The `peers` listing, sorted by name (shown as `NAME  ADDR  Ns ago  SOURCE  REACH`):
    /// reachable while `connected` says so or after the last attempt succeeded.
    pub fn listing(&self, now: Instant, connected: impl Fn(&str) -> bool) -> Vec<PeerEntry> {
        self.peers
            .iter()
            .map(|(name, e)| PeerEntry {
                name: name.clone(),
                addr: e.addr.to_string(),
                last_seen_secs: now.saturating_duration_since(e.last_seen).as_secs(),
                source: e.source.as_str(),
                reachable: if connected(name) {
                    Some(true)
                } else {
                    match e.reach {
                        Reach::Reachable => Some(true),
                        Reach::Unreachable => Some(false),
                        Reach::Unknown => None,
                    }
                },
                id: e.id.map(|id| id.to_string()),
                via: None,
            })
            .collect()
    }

    /// Entries worth remembering across runs: not known to be unreachable, newest first.
    pub fn to_remember(&self, max: usize) -> Vec<(&String, &KnownPeer)> {
        let mut list: Vec<(&String, &KnownPeer)> = self
            .peers
            .iter()
            .filter(|(_, e)| e.reach != Reach::Unreachable)
            .collect();
        list.sort_by_key(|(name, e)| (std::cmp::Reverse(e.last_seen), name.as_str()));
        list.truncate(max);
        list
    }
}

/// An `ip:port` string from the network, or `None`.
pub fn parse_addr(s: &str) -> Option<SocketAddr> {
    if s.len() > 64 {
        return None;
    }
    s.parse().ok()
}

/// The instant `ms` milliseconds before `now` (capped at a day; `now` if that underflows).
pub fn ago(now: Instant, ms: u64) -> Instant {
    let age = Duration::from_millis(ms).min(MAX_AGE);
    now.checked_sub(age).unwrap_or(now)
}

#[cfg(test)]
mod tests;
