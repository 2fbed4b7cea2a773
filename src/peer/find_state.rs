//! A search in progress (`Find`: what it asks, who has answered, what matched) and the
//! grouping of its matches by content. Plain values: asking the peers is `find.rs`.

use super::event::Found;
use crate::peer::content_id::{id_prefix, is_hex_prefix};
use crate::reactor::ConnId;
use crate::wire::{ContentId, FileInfo, Sha256};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a search waits for slow peers; those that have not answered by then are left out.
const FIND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindFor {
    /// `search TEXT`: list what matches.
    Search,
    /// `get FILE`: download the one content that matches, from every peer that has it.
    Get,
    /// `get tree1:PREFIX`: fetch the one folder whose id starts so, from every peer that has it.
    GetFolder,
}

#[derive(Debug)]
pub struct Find {
    pub query: String,
    pub purpose: FindFor,
    /// The peer list was asked for; peers are asked once it arrives.
    pub(super) listing: bool,
    /// Peers not yet answered, with the connection the question went out on.
    pub(super) waiting: BTreeMap<String, Option<ConnId>>,
    /// (peer, file) for every match.
    pub(super) results: Vec<(String, FileInfo)>,
    /// (peer, folder) for every folder listed (`FindFor::GetFolder`).
    pub(super) folders: Vec<(String, crate::wire::FolderInfo)>,
    /// Peers that could not be asked (unreachable) or did not answer in time.
    pub(super) unanswered: Vec<String>,
    pub deadline: Instant,
    /// `get A B` that asked for `A B` because no peer `A` was known: the peer and file it
    /// names, fetched from that peer if the peer list knows `A` after all.
    pub named: Option<(String, String)>,
    /// The DHT lookup of this content's sources, while it runs.
    pub(super) dht: Option<super::dht::LookupId>,
    /// Sources the DHT named that are being dialed.
    pub(super) dht_dialing: std::collections::BTreeSet<std::net::SocketAddr>,
    /// How many of them said who they are (and were added to `waiting`).
    pub(super) dht_met: usize,
}

impl Find {
    pub fn new(query: String, purpose: FindFor, now: Instant) -> Find {
        Find {
            query,
            purpose,
            listing: true,
            waiting: BTreeMap::new(),
            results: Vec::new(),
            folders: Vec::new(),
            unanswered: Vec::new(),
            deadline: now + FIND_TIMEOUT,
            named: None,
            dht: None,
            dht_dialing: Default::default(),
            dht_met: 0,
        }
    }

    /// Whether the DHT has nothing more to add: no source is being dialed, and the lookup is
    /// over or some source it named was reached (later ones are not waited for).
    pub(super) fn dht_settled(&self) -> bool {
        self.dht_dialing.is_empty() && (self.dht.is_none() || self.dht_met > 0)
    }

    /// Progress from the DHT: the slow peers get their full time again.
    pub(super) fn extend(&mut self, now: Instant) {
        self.deadline = self.deadline.max(now + FIND_TIMEOUT);
    }

    /// The query names files by content: `cid1:` and a content id prefix, or a SHA-256 prefix
    /// (bare hex digits). `None`: it is a name (or too short a prefix to be anything else).
    pub(super) fn by_content(&self) -> Option<ByContent> {
        if let Some(hex) = id_prefix(&self.query) {
            return Some(ByContent::Id(hex));
        }
        let q = self.query.to_ascii_lowercase();
        is_hex_prefix(&q).then_some(ByContent::Sha256(q))
    }

    pub(super) fn matches(&self, f: &FileInfo) -> bool {
        let q = self.query.to_lowercase();
        let by_hash = match self.by_content() {
            Some(ByContent::Id(prefix)) => f.id.has_hex_prefix(&prefix),
            Some(ByContent::Sha256(prefix)) => f.sha256.to_hex().starts_with(&prefix),
            None => false,
        };
        match self.purpose {
            FindFor::Search => by_hash || f.name.to_lowercase().contains(&q),
            FindFor::Get => by_hash || f.name == self.query,
            // Files are not what it looks for (folders are matched by id, `folder_fetch.rs`).
            FindFor::GetFolder => false,
        }
    }
}

/// How a query names content (see [`Find::by_content`]): a prefix of lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ByContent {
    Id(String),
    Sha256(String),
}

/// One content found: its content id, the SHA-256 it is listed with (the first lister's),
/// a name for it, its size and who has it.
pub(super) struct Candidate {
    pub(super) id: ContentId,
    pub(super) sha256: Sha256,
    pub(super) names: Vec<String>,
    pub(super) size: u64,
    pub(super) peers: Vec<String>,
}

impl Candidate {
    pub(super) fn found(self) -> Found {
        Found {
            names: self.names,
            size: self.size,
            content_id: self.id.to_string(),
            sha256: self.sha256.to_string(),
            peers: self.peers,
        }
    }
}

/// The matches grouped by content id: listings of the same id are one content, whatever
/// name or SHA-256 they give it.
pub(super) fn group(results: &[(String, FileInfo)]) -> Vec<Candidate> {
    let mut by_id: BTreeMap<ContentId, Candidate> = BTreeMap::new();
    for (peer, f) in results {
        let c = by_id.entry(f.id).or_insert_with(|| Candidate {
            id: f.id,
            sha256: f.sha256,
            names: Vec::new(),
            size: f.size,
            peers: Vec::new(),
        });
        if !c.names.contains(&f.name) {
            c.names.push(f.name.clone());
        }
        if !c.peers.contains(peer) {
            c.peers.push(peer.clone());
        }
    }
    by_id.into_values().collect()
}
