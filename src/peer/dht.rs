//! The peer's decisions about the Mainline DHT as a value (`DhtState`: `handle_*` in with the
//! time, `poll_*` out): what to publish and when to publish it again before the network
//! forgets it, which lookups are in flight and until when, and what their answers mean. The
//! DHT itself runs on `mainline`'s thread behind `dht_worker.rs`; this file never touches it,
//! so its tests run in memory with a fake clock (PROTOCOL.md §17).
//!
//! Order of polling: [`DhtState::poll_request`] (what the worker should do now) until `None`,
//! then [`DhtState::poll_outcome`] (what the node should hear) until `None`, then
//! [`DhtState::poll_timeout`].

use super::dht_record::{Record, encode_record, parse_record};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How often a content announcement is made again (BitTorrent nodes keep an announced peer
/// for about 30 minutes; clients re-announce every 15 to 30).
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(15 * 60);
/// How often the address record is put again (BEP 44 nodes keep an item for about 2 hours).
pub const RECORD_EVERY: Duration = Duration::from_secs(30 * 60);
/// The wait before a put that failed is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);
/// How long a put may stay unanswered before it counts as failed.
pub const PUT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a lookup may take before it counts as having found nothing.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Most puts handed to the worker at once (a folder of 10,000 files is announced a few at a
/// time, not all at once).
pub const MAX_PUTS_IN_FLIGHT: usize = 8;
/// Most sources one lookup hands on (the DHT may return hundreds).
pub const MAX_SOURCES: usize = 32;

/// A lookup's number, unique within one [`DhtState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

/// What the worker is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Sign `value` with the peer's key and put it as the address record, with `seq`.
    PutRecord { value: Vec<u8>, seq: i64 },
    /// `announce_peer` under `info_hash`, with the peer's TCP port.
    Announce { info_hash: [u8; 20], port: u16 },
    /// `get_peers` under `info_hash`.
    FindSources {
        lookup: LookupId,
        info_hash: [u8; 20],
    },
    /// The most recent address record of the peer with this X25519 key.
    FindRecord { lookup: LookupId, key: [u8; 32] },
}

/// What the worker reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The DHT node runs, on `local` (UDP); requests may come.
    Started { local: SocketAddr },
    /// Joining is over: `bootstrapped`, whether any node answered; `public_ip`, this host's
    /// address as other nodes see it, if they said.
    Joined {
        bootstrapped: bool,
        public_ip: Option<IpAddr>,
    },
    /// The DHT could not start, or its thread ended.
    Failed(String),
    /// The address record put with `seq` was stored, or why not.
    RecordPut {
        seq: i64,
        result: Result<(), String>,
    },
    /// The announcement under `info_hash` was stored, or why not.
    Announced {
        info_hash: [u8; 20],
        result: Result<(), String>,
    },
    /// Sources found so far; `done`: the lookup is over.
    Sources {
        lookup: LookupId,
        addrs: Vec<SocketAddr>,
        done: bool,
    },
    /// The record found (its value, already checked against the key's signature by the
    /// DHT library), or `None`: nobody had one.
    Record {
        lookup: LookupId,
        value: Option<Vec<u8>>,
    },
}

/// What the node hears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The DHT is up (the start-up line says so), or not.
    Started {
        local: SocketAddr,
    },
    /// No node answered: nothing will be found until one does.
    Lonely,
    Unavailable(String),
    /// New sources of a lookup (each address once); `done`: no more will come.
    Sources {
        lookup: LookupId,
        addrs: Vec<SocketAddr>,
        done: bool,
    },
    /// A peer's addresses from its record, or why there are none.
    PeerAddrs {
        lookup: LookupId,
        result: Result<Vec<SocketAddr>, String>,
    },
    /// Something worth a warning, once (the record cannot be published...).
    Warning(String),
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Starting,
    Up,
    Down(String),
}

#[derive(Debug)]
struct Put {
    /// When it is due again (`None`: in flight since that moment).
    next: Instant,
    in_flight: Option<Instant>,
}

impl Put {
    fn due_now(now: Instant) -> Put {
        Put {
            next: now,
            in_flight: None,
        }
    }
}

#[derive(Debug)]
enum LookupKind {
    Sources { seen: BTreeSet<SocketAddr> },
    Record,
}

#[derive(Debug)]
struct Lookup {
    kind: LookupKind,
    deadline: Instant,
}

pub struct DhtState {
    phase: Phase,
    /// The TCP listener: its port goes into announcements, its address (unless a wildcard)
    /// into the record.
    listen: SocketAddr,
    public_ip: Option<IpAddr>,
    /// The external address a router maps to the listener (PROTOCOL.md §19), if any.
    mapped: Option<SocketAddr>,
    record: Put,
    last_seq: i64,
    record_addrs: Vec<SocketAddr>,
    warned_no_addr: bool,
    /// Joining is over (a wildcard listener's public address is known by then, if at all).
    joined: bool,
    content: BTreeMap<[u8; 20], Put>,
    lookups: HashMap<LookupId, Lookup>,
    next_lookup: u64,
    requests: VecDeque<Request>,
    outcomes: VecDeque<Outcome>,
    /// The wall clock (Unix seconds) at `epoch`: records carry a time and BEP 44 wants a
    /// `seq` that grows across restarts.
    unix_at_epoch: u64,
    epoch: Instant,
}

impl DhtState {
    /// A peer listening on `listen`; `unix_now` is the wall clock (seconds) at `now`.
    pub fn new(listen: SocketAddr, unix_now: u64, now: Instant) -> DhtState {
        DhtState {
            phase: Phase::Starting,
            listen,
            public_ip: None,
            mapped: None,
            record: Put::due_now(now),
            last_seq: 0,
            record_addrs: Vec::new(),
            warned_no_addr: false,
            joined: false,
            content: BTreeMap::new(),
            lookups: HashMap::new(),
            next_lookup: 1,
            requests: VecDeque::new(),
            outcomes: VecDeque::new(),
            unix_at_epoch: unix_now,
            epoch: now,
        }
    }

    pub fn is_up(&self) -> bool {
        self.phase == Phase::Up
    }

    fn unix(&self, now: Instant) -> u64 {
        self.unix_at_epoch + now.saturating_duration_since(self.epoch).as_secs()
    }

    /// The addresses the record lists: the listener's, unless it is a wildcard; then this
    /// host's public address as the DHT saw it, with the listener's port.
    fn addrs(&self) -> Vec<SocketAddr> {
        let own: Vec<SocketAddr> = if !self.listen.ip().is_unspecified() {
            vec![self.listen]
        } else {
            (self.public_ip.iter())
                .map(|ip| SocketAddr::new(*ip, self.listen.port()))
                .collect()
        };
        // A port mapping is what others outside can dial: first, the rest behind it.
        let mut addrs: Vec<SocketAddr> = self.mapped.into_iter().collect();
        addrs.extend(own.into_iter().filter(|a| Some(*a) != self.mapped));
        addrs
    }

    /// The port content announcements carry: the mapped one, when a router maps one (the DHT
    /// node that stores an announcement sees the router's IP, so only its port reaches us).
    fn announce_port(&self) -> u16 {
        self.mapped.map_or(self.listen.port(), |a| a.port())
    }

    /// The router maps `mapped` to the listener now (or nothing): the record is put again
    /// with it at once, and every content is announced again with its port.
    pub fn set_mapped(&mut self, mapped: Option<SocketAddr>, now: Instant) {
        if self.mapped == mapped {
            return;
        }
        self.mapped = mapped;
        for put in self.content.values_mut() {
            if put.in_flight.is_none() {
                put.next = now;
            }
        }
        self.pump(now);
    }

    /// The content ids shared now (their info-hashes): new ones are announced at once, gone
    /// ones are no longer announced.
    pub fn handle_contents(&mut self, hashes: BTreeSet<[u8; 20]>, now: Instant) {
        self.content.retain(|h, _| hashes.contains(h));
        for h in hashes {
            self.content.entry(h).or_insert_with(|| Put::due_now(now));
        }
        self.pump(now);
    }

    /// How many content ids are announced.
    pub fn announced(&self) -> usize {
        self.content.len()
    }

    /// Starts looking for the sources of `info_hash`.
    pub fn find_sources(&mut self, info_hash: [u8; 20], now: Instant) -> LookupId {
        let kind = LookupKind::Sources {
            seen: BTreeSet::new(),
        };
        let lookup = self.start_lookup(kind, now);
        if self.lookups.contains_key(&lookup) {
            self.requests
                .push_back(Request::FindSources { lookup, info_hash });
        }
        lookup
    }

    /// Starts looking for the record of the peer with X25519 key `key`.
    pub fn find_record(&mut self, key: [u8; 32], now: Instant) -> LookupId {
        let lookup = self.start_lookup(LookupKind::Record, now);
        if self.lookups.contains_key(&lookup) {
            self.requests.push_back(Request::FindRecord { lookup, key });
        }
        lookup
    }

    fn start_lookup(&mut self, kind: LookupKind, now: Instant) -> LookupId {
        let lookup = LookupId(self.next_lookup);
        self.next_lookup += 1;
        if let Phase::Down(why) = &self.phase {
            let why = format!("the DHT is not running: {why}");
            self.outcomes.push_back(match kind {
                LookupKind::Sources { .. } => Outcome::Sources {
                    lookup,
                    addrs: Vec::new(),
                    done: true,
                },
                LookupKind::Record => Outcome::PeerAddrs {
                    lookup,
                    result: Err(why),
                },
            });
            return lookup;
        }
        let deadline = now + LOOKUP_TIMEOUT;
        self.lookups.insert(lookup, Lookup { kind, deadline });
        lookup
    }

    /// Forgets a lookup whose answer nobody waits for any more.
    pub fn cancel(&mut self, lookup: LookupId) {
        self.lookups.remove(&lookup);
    }

    pub fn handle_reply(&mut self, reply: Reply, now: Instant) {
        match reply {
            Reply::Started { local } => {
                if self.phase == Phase::Starting {
                    self.phase = Phase::Up;
                    self.outcomes.push_back(Outcome::Started { local });
                }
            }
            Reply::Joined {
                bootstrapped,
                public_ip,
            } => {
                if public_ip.is_some() {
                    self.public_ip = public_ip;
                }
                self.joined = true;
                if self.record.in_flight.is_none() {
                    self.record.next = now;
                }
                if !bootstrapped {
                    self.outcomes.push_back(Outcome::Lonely);
                }
            }
            Reply::Failed(why) => self.down(why),
            Reply::RecordPut { seq, result } => {
                if seq == self.last_seq && self.record.in_flight.is_some() {
                    self.record.in_flight = None;
                    self.record.next = now
                        + if result.is_ok() {
                            RECORD_EVERY
                        } else {
                            RETRY_AFTER
                        };
                    match result {
                        Ok(()) => tracing::info!("DHT: the address record is stored (seq {seq})"),
                        Err(e) => tracing::info!("DHT: the address record was not stored: {e}"),
                    }
                }
            }
            Reply::Announced { info_hash, result } => {
                if let Some(put) = self.content.get_mut(&info_hash)
                    && put.in_flight.is_some()
                {
                    put.in_flight = None;
                    put.next = now
                        + if result.is_ok() {
                            ANNOUNCE_EVERY
                        } else {
                            RETRY_AFTER
                        };
                    if let Err(e) = result {
                        tracing::info!("DHT: an announcement was not stored: {e}");
                    }
                }
            }
            Reply::Sources {
                lookup,
                addrs,
                done,
            } => self.sources(lookup, addrs, done),
            Reply::Record { lookup, value } => {
                if self.lookups.remove(&lookup).is_none() {
                    return;
                }
                let result = match value {
                    None => Err("no record of this peer was found on the DHT".to_string()),
                    Some(v) => parse_record(&v)
                        .map(|r| r.addrs)
                        .map_err(|e| format!("its DHT record is unusable: {e}")),
                };
                self.outcomes
                    .push_back(Outcome::PeerAddrs { lookup, result });
            }
        }
        self.pump(now);
    }

    fn sources(&mut self, lookup: LookupId, addrs: Vec<SocketAddr>, done: bool) {
        let Some(Lookup {
            kind: LookupKind::Sources { seen },
            ..
        }) = self.lookups.get_mut(&lookup)
        else {
            return;
        };
        let mut fresh = Vec::new();
        for a in addrs {
            if seen.len() >= MAX_SOURCES {
                break;
            }
            if super::dht_record::dialable(&a) && seen.insert(a) {
                fresh.push(a);
            }
        }
        if done {
            self.lookups.remove(&lookup);
        }
        if !fresh.is_empty() || done {
            self.outcomes.push_back(Outcome::Sources {
                lookup,
                addrs: fresh,
                done,
            });
        }
    }

    fn down(&mut self, why: String) {
        if matches!(self.phase, Phase::Down(_)) {
            return;
        }
        self.outcomes.push_back(Outcome::Unavailable(why.clone()));
        let lookups: Vec<LookupId> = self.lookups.keys().copied().collect();
        for lookup in lookups {
            self.lookup_over(lookup, &why);
        }
        self.requests.clear();
        self.phase = Phase::Down(why);
    }

    /// Ends `lookup` with nothing found, because of `why`.
    fn lookup_over(&mut self, lookup: LookupId, why: &str) {
        let Some(l) = self.lookups.remove(&lookup) else {
            return;
        };
        self.outcomes.push_back(match l.kind {
            LookupKind::Sources { .. } => Outcome::Sources {
                lookup,
                addrs: Vec::new(),
                done: true,
            },
            LookupKind::Record => Outcome::PeerAddrs {
                lookup,
                result: Err(why.to_string()),
            },
        });
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<LookupId> = (self.lookups.iter())
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        let secs = LOOKUP_TIMEOUT.as_secs();
        for lookup in expired {
            self.lookup_over(
                lookup,
                &format!("the DHT lookup found nothing within {secs}s"),
            );
        }
        self.pump(now);
    }

    /// Queues the puts that are due, within [`MAX_PUTS_IN_FLIGHT`].
    fn pump(&mut self, now: Instant) {
        if self.phase != Phase::Up {
            return;
        }
        // Puts that went unanswered too long count as failed.
        for put in std::iter::once(&mut self.record).chain(self.content.values_mut()) {
            if put.in_flight.is_some_and(|t| now >= t + PUT_TIMEOUT) {
                put.in_flight = None;
                put.next = now;
            }
        }
        let addrs = self.addrs();
        if addrs != self.record_addrs {
            // A new address is published at once.
            self.record_addrs = addrs;
            if self.record.in_flight.is_none() {
                self.record.next = now;
            }
        }
        let mut in_flight = (std::iter::once(&self.record).chain(self.content.values()))
            .filter(|p| p.in_flight.is_some())
            .count();
        if self.record.in_flight.is_none()
            && self.record.next <= now
            && in_flight < MAX_PUTS_IN_FLIGHT
        {
            let at = self.unix(now);
            let record = Record {
                addrs: self.record_addrs.clone(),
                at,
            };
            match encode_record(&record) {
                Some(value) => {
                    let seq = (self.last_seq + 1).max(at as i64);
                    self.last_seq = seq;
                    self.record.in_flight = Some(now);
                    in_flight += 1;
                    self.requests.push_back(Request::PutRecord { value, seq });
                }
                None if !self.joined => self.record.next = now + RETRY_AFTER,
                None => {
                    if !std::mem::replace(&mut self.warned_no_addr, true) {
                        self.outcomes.push_back(Outcome::Warning(format!(
                            "this peer's address is not published on the DHT: it listens on \
                             {}, and no DHT node told this host's public address (--listen \
                             IP:PORT names it)",
                            self.listen
                        )));
                    }
                    self.record.next = now + RETRY_AFTER;
                }
            }
        }
        let port = self.announce_port();
        for (h, put) in self.content.iter_mut() {
            if in_flight >= MAX_PUTS_IN_FLIGHT {
                break;
            }
            if put.in_flight.is_none() && put.next <= now {
                put.in_flight = Some(now);
                in_flight += 1;
                self.requests.push_back(Request::Announce {
                    info_hash: *h,
                    port,
                });
            }
        }
    }

    pub fn poll_request(&mut self) -> Option<Request> {
        self.requests.pop_front()
    }

    pub fn poll_outcome(&mut self) -> Option<Outcome> {
        self.outcomes.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let lookups = self.lookups.values().map(|l| l.deadline);
        if self.phase != Phase::Up {
            return lookups.min();
        }
        let all = || std::iter::once(&self.record).chain(self.content.values());
        // At the cap, a due put waits for an answer (which wakes the node), not for a timer.
        let full = all().filter(|p| p.in_flight.is_some()).count() >= MAX_PUTS_IN_FLIGHT;
        let puts = all().filter_map(|p| match p.in_flight {
            Some(t) => Some(t + PUT_TIMEOUT),
            None => (!full).then_some(p.next),
        });
        lookups.chain(puts).min()
    }
}

#[cfg(test)]
mod tests;
