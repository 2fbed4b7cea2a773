//! The node's side of the DHT: the worker's replies in, its requests out, what is shared
//! handed to `DhtState` (at most once a second), sources of a `get` dialed and added to its
//! search, and `connect PEER-ID` dialed at the record's address expecting that key. The
//! decisions are `dht.rs`'s; the worker is `dht_worker.rs`.

use super::dht::{DhtState, LookupId, Outcome};
use super::dht_record::content_info_hash;
use super::dht_worker::DhtWorker;
use super::event::{Event, Failure, Notice, Problem, Warning};
use super::node::PeerNode;
use super::op::Op;
use crate::identity::PeerId;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often the shared index is handed to the DHT while it changes (hashing a folder
/// changes it with every file).
const INDEX_SYNC_EVERY: Duration = Duration::from_secs(1);

/// How long `connect PEER-ID` may take: the lookup, then the dial and handshake.
const CONNECT_BY_ID_TIMEOUT: Duration = Duration::from_secs(30);

pub struct DhtLink {
    state: DhtState,
    worker: DhtWorker,
    /// What the start-up line says the node joins through.
    bootstrap: String,
    /// The index changed since it was last handed over; when it may be handed over next.
    index_dirty: bool,
    next_sync: Instant,
    /// The lookup `connect PEER-ID` waits for, and the key it looks for.
    connect: Option<(LookupId, PeerId)>,
}

impl DhtLink {
    /// The DHT behind `worker`, for a peer listening on `listen`.
    pub fn new(worker: DhtWorker, bootstrap: String, listen: SocketAddr, now: Instant) -> DhtLink {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        DhtLink {
            state: DhtState::new(listen, unix, now),
            worker,
            bootstrap,
            index_dirty: true,
            next_sync: now,
            connect: None,
        }
    }
}

impl DhtLink {
    /// The router maps `mapped` to our listen port now (or nothing): the record lists it
    /// first, and announcements carry its port (`DhtState::set_mapped`).
    pub fn set_mapped(&mut self, mapped: Option<SocketAddr>, now: Instant) {
        self.state.set_mapped(mapped, now);
    }
}

/// The text form of a whole content id (`cid1:` or `tree1:` and 64 hex digits, lowercase),
/// or `None` for a name or a prefix, which the DHT cannot look up.
pub fn whole_id(query: &str) -> Option<String> {
    if let Some(hex) = super::content_id::id_prefix(query)
        && hex.len() == 64
    {
        return Some(format!("{}{hex}", super::content_id::TEXT_PREFIX));
    }
    let prefix = super::folder::manifest::TEXT_PREFIX;
    let tag = query.get(..prefix.len())?;
    let hex = query[prefix.len()..].to_ascii_lowercase();
    (tag.eq_ignore_ascii_case(prefix) && hex.len() == 64 && hex::decode(&hex).is_ok())
        .then(|| format!("{prefix}{hex}"))
}

impl PeerNode {
    /// Uses the DHT behind `link` (`--dht`).
    pub fn set_dht(&mut self, link: DhtLink, now: Instant) {
        self.dht = Some(Box::new(link));
        self.dht_pump(now);
    }

    /// Tells the user something went wrong (for the wiring in `app.rs`).
    pub fn warn(&mut self, warning: Warning) {
        self.ui.event(&Event::Warning(warning));
    }

    /// The shared index changed: it is handed to the DHT within [`INDEX_SYNC_EVERY`].
    pub(super) fn dht_index_changed(&mut self) {
        if let Some(d) = &mut self.dht {
            d.index_dirty = true;
        }
    }

    /// The worker's replies (after a `Control::Work`).
    pub(super) fn dht_reports(&mut self, now: Instant) {
        let Some(d) = &mut self.dht else { return };
        while let Some(reply) = d.worker.try_recv() {
            d.state.handle_reply(reply, now);
        }
        self.dht_pump(now);
    }

    pub(super) fn dht_tick(&mut self, now: Instant) {
        let Some(d) = &mut self.dht else { return };
        d.state.handle_timeout(now);
        self.dht_pump(now);
    }

    pub(super) fn dht_deadline(&self) -> Option<Instant> {
        let d = self.dht.as_ref()?;
        let sync = d.index_dirty.then_some(d.next_sync);
        [d.state.poll_timeout(), sync].into_iter().flatten().min()
    }

    /// Forgets a lookup nobody waits for any more.
    pub(super) fn dht_cancel(&mut self, lookup: LookupId) {
        if let Some(d) = &mut self.dht {
            d.state.cancel(lookup);
        }
    }

    /// Hands the index over if it changed, the requests to the worker, the outcomes to
    /// whoever waits for them.
    fn dht_pump(&mut self, now: Instant) {
        let Some(d) = &mut self.dht else { return };
        if d.index_dirty && now >= d.next_sync {
            d.index_dirty = false;
            d.next_sync = now + INDEX_SYNC_EVERY;
            let mut hashes = BTreeSet::new();
            for f in self.index.files() {
                hashes.insert(content_info_hash(&f.content_id.to_string()));
            }
            for f in self.index.folder_infos() {
                hashes.insert(content_info_hash(&f.id.to_string()));
            }
            d.state.handle_contents(hashes, now);
        }
        while let Some(request) = d.state.poll_request() {
            d.worker.send(request);
        }
        let mut outcomes = Vec::new();
        while let Some(o) = d.state.poll_outcome() {
            outcomes.push(o);
        }
        for o in outcomes {
            self.dht_outcome(o, now);
        }
    }

    fn dht_outcome(&mut self, outcome: Outcome, now: Instant) {
        let bootstrap = (self.dht.as_ref()).map_or_else(String::new, |d| d.bootstrap.clone());
        match outcome {
            Outcome::Started { local } => {
                let local = local.to_string();
                self.ui
                    .event(&Event::Notice(Notice::DhtOn { local, bootstrap }));
            }
            Outcome::Lonely => {
                let why = format!(
                    "no DHT node answered (joining through {bootstrap}): lookups find nothing \
                     until one does"
                );
                self.ui.event(&Event::Warning(Warning::Dht(why)));
            }
            Outcome::Unavailable(why) => {
                let why = format!("{why}; the peer runs on without the DHT");
                self.ui.event(&Event::Warning(Warning::Dht(why)));
            }
            Outcome::Warning(why) => self.ui.event(&Event::Warning(Warning::Dht(why))),
            Outcome::Sources {
                lookup,
                addrs,
                done,
            } => self.dht_sources(lookup, addrs, done, now),
            Outcome::PeerAddrs { lookup, result } => self.dht_peer_addrs(lookup, result, now),
        }
    }

    /// `get ID` (a whole content id, with the DHT on): looks its sources up. The request goes
    /// out (and a DHT that is down answers) at [`Self::dht_find_started`], once the search is
    /// in place and has asked the peers already known.
    pub(super) fn dht_find_sources(&mut self, query: &str, now: Instant) -> Option<LookupId> {
        let id = whole_id(query)?;
        let d = self.dht.as_mut()?;
        Some(d.state.find_sources(content_info_hash(&id), now))
    }

    /// See [`Self::dht_find_sources`].
    pub(super) fn dht_find_started(&mut self, now: Instant) {
        self.dht_pump(now);
    }

    fn dht_sources(&mut self, lookup: LookupId, addrs: Vec<SocketAddr>, done: bool, now: Instant) {
        let busy: BTreeSet<SocketAddr> = self.sessions.values().map(|s| s.remote).collect();
        let Some(f) = self.find_mut() else { return };
        if f.dht != Some(lookup) {
            return;
        }
        if done {
            f.dht = None;
        }
        let fresh: Vec<SocketAddr> = (addrs.into_iter())
            .filter(|a| !busy.contains(a) && f.dht_dialing.insert(*a))
            .collect();
        if !fresh.is_empty() {
            f.extend(now);
        }
        for addr in fresh {
            self.dial_dht_address(addr, false, None);
        }
        self.find_advance(now);
    }

    /// A source the DHT named was reached (`Some(name)`: it said who it is) or not.
    pub(super) fn dht_source_settled(
        &mut self,
        addr: SocketAddr,
        name: Option<String>,
        now: Instant,
    ) {
        let Some(f) = self.find_mut() else { return };
        if !f.dht_dialing.remove(&addr) {
            return;
        }
        if let Some(name) = name {
            f.dht_met += 1;
            f.waiting.entry(name).or_insert(None);
        }
        if !f.listing {
            self.find_advance(now);
        }
    }

    /// `connect PEER-ID`: the peer's record is looked up on the DHT, then its address dialed
    /// expecting its key.
    pub(super) fn connect_by_id(&mut self, id: PeerId, now: Instant) {
        if self.dht.is_none() {
            let id = id.to_string();
            return self.fail_op(Problem::NeedsDht { id });
        }
        if self.is_us(Some(id)) {
            let why = "that is this peer's own id".to_string();
            let id = id.to_string();
            return self.fail_op(Problem::PeerNotFound { id, why });
        }
        let Some(d) = &mut self.dht else { return };
        let lookup = d.state.find_record(*id.public_key(), now);
        d.connect = Some((lookup, id));
        self.op = Some(Op::Connect {
            addr: None,
            deadline: now + CONNECT_BY_ID_TIMEOUT,
        });
        self.dht_pump(now);
    }

    fn dht_peer_addrs(
        &mut self,
        lookup: LookupId,
        result: Result<Vec<SocketAddr>, String>,
        _now: Instant,
    ) {
        let Some(d) = &mut self.dht else { return };
        let Some((waited, id)) = d.connect.take_if(|(l, _)| *l == lookup) else {
            return;
        };
        debug_assert_eq!(waited, lookup);
        if !matches!(self.op, Some(Op::Connect { addr: None, .. })) {
            return; // the command ended meanwhile
        }
        match result {
            Ok(addrs) => {
                // The record lists the addresses in the order to try; the first is dialed
                // (its key is proved by the handshake, whoever put the record).
                let addr = addrs[0];
                if let Some(Op::Connect { addr: a, .. }) = &mut self.op {
                    *a = Some(addr);
                }
                self.dial_dht_address(addr, true, Some(id));
            }
            Err(why) => {
                let id = id.to_string();
                self.fail_op_as(Failure::Unreachable, Problem::PeerNotFound { id, why });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_ids_are_looked_up() {
        let hex = "Ab".repeat(32);
        assert_eq!(
            whole_id(&format!("CID1:{hex}")),
            Some(format!("cid1:{}", "ab".repeat(32)))
        );
        assert_eq!(
            whole_id(&format!("tree1:{hex}")),
            Some(format!("tree1:{}", "ab".repeat(32)))
        );
        assert_eq!(whole_id(&format!("cid1:{}", &hex[..20])), None);
        assert_eq!(whole_id(&format!("tree1:{}", &hex[..20])), None);
        assert_eq!(whole_id(&format!("tree1:{}x", &hex[..63])), None);
        assert_eq!(whole_id("report.pdf"), None);
        assert_eq!(whole_id(&hex), None, "a bare SHA-256 is no content id");
    }
}
