//! Asking every known peer what it shares: `search TEXT`, and `get FILE` with no peer named,
//! which downloads from every peer that has the same content (the same content id), whatever
//! name it has there.

use super::command::Command;
use super::event::{Event, Problem, Warning};
use super::find_state::{ByContent, Candidate, Find, FindFor, group};
use super::node::{PeerNode, Purpose};
use crate::reactor::ConnId;
use crate::wire::{FileInfo, Message};
use std::time::Instant;

impl PeerNode {
    /// Starts asking everyone; the tracker's list is refreshed first. `named`: see
    /// [`Find::named`].
    pub(super) fn start_find(
        &mut self,
        query: String,
        purpose: FindFor,
        named: Option<(String, String)>,
        now: Instant,
    ) {
        let mut find = Find::new(query, purpose, now);
        find.named = named;
        if purpose != FindFor::Search {
            find.dht = self.dht_find_sources(&find.query, now);
        }
        find.listing = self.request_peer_list();
        self.op = Some(super::op::Op::Find(find));
        if let Some(super::op::Op::Find(f)) = &self.op
            && !f.listing
        {
            self.find_ask_everyone(now);
        }
        self.dht_find_started(now);
    }

    pub(super) fn find_mut(&mut self) -> Option<&mut Find> {
        match &mut self.op {
            Some(super::op::Op::Find(f)) => Some(f),
            _ => None,
        }
    }

    /// The peer list arrived (or there is none): ask every peer we know. A `get` whose first
    /// word turns out to be a peer's name after all becomes `get PEER FILE`.
    pub(super) fn find_peer_list_arrived(&mut self, now: Instant) {
        let Some(f) = self.find_mut() else { return };
        if !f.listing {
            return;
        }
        f.listing = false;
        let named = f.named.as_ref().map(|(peer, _)| peer.clone());
        if f.purpose == FindFor::Get
            && let Some(peer) = named
            && (self.known.contains_key(&peer) || self.ready_session(&peer).is_some())
            && let Some(super::op::Op::Find(find)) = self.op.take()
            && let Some((peer, file)) = find.named
        {
            let query = find.query;
            let cmd = Command::Get {
                peer: Some(peer),
                file,
                query,
            };
            return self.start_command(cmd, now);
        }
        self.find_ask_everyone(now);
    }

    fn find_ask_everyone(&mut self, now: Instant) {
        let mut names: Vec<String> = self.known.iter().map(|(n, _)| n.clone()).collect();
        for s in self.sessions.values() {
            if let Some(n) = &s.name
                && !names.contains(n)
            {
                names.push(n.clone());
            }
        }
        let Some(f) = self.find_mut() else { return };
        for name in names {
            f.waiting.insert(name, None);
        }
        self.find_advance(now);
    }

    /// Sends the question to every peer now reachable; resolves once all have answered.
    pub(super) fn find_advance(&mut self, now: Instant) {
        let Some(f) = self.find_mut() else { return };
        if f.listing {
            return;
        }
        let unasked: Vec<String> = f
            .waiting
            .iter()
            .filter(|(_, c)| c.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        for name in unasked {
            let mut refreshed = true;
            match self.reach(&name, &mut refreshed) {
                Ok(Some(conn)) => {
                    if self
                        .find_mut()
                        .is_some_and(|f| f.purpose == FindFor::GetFolder)
                    {
                        self.request(conn, Purpose::Op, |req| Message::ListFolders { req });
                    } else {
                        self.request(conn, Purpose::Op, |req| Message::ListFiles { req });
                    }
                    if let Some(f) = self.find_mut() {
                        f.waiting.insert(name, Some(conn));
                    }
                }
                Ok(None) => {}
                Err(_) => {
                    if let Some(f) = self.find_mut() {
                        f.waiting.remove(&name);
                    }
                }
            }
        }
        if self
            .find_mut()
            .is_some_and(|f| f.waiting.is_empty() && f.dht_settled())
        {
            self.find_resolve(now);
        }
    }

    /// A peer answered (`Some(files)`) or cannot (`None`: error, unreachable, gone).
    pub(super) fn find_answer(&mut self, peer: &str, files: Option<Vec<FileInfo>>, now: Instant) {
        let Some(f) = self.find_mut() else { return };
        if f.waiting.remove(peer).is_none() {
            return;
        }
        if files.is_none() {
            f.unanswered.push(peer.to_string());
        }
        // Keep every listing: a content found by name is fetched from every peer that has the
        // same bytes, under whatever name.
        for file in files.into_iter().flatten() {
            f.results.push((peer.to_string(), file));
        }
        self.find_advance(now);
    }

    /// A peer listed its folders (`get tree1:PREFIX`).
    pub(super) fn find_folders_answer(
        &mut self,
        peer: &str,
        folders: Vec<crate::wire::FolderInfo>,
        now: Instant,
    ) {
        let Some(f) = self.find_mut() else { return };
        if f.waiting.remove(peer).is_none() {
            return;
        }
        for folder in folders {
            f.folders.push((peer.to_string(), folder));
        }
        self.find_advance(now);
    }

    /// Which peer a connection asked in this search belongs to.
    pub(super) fn find_peer_on(&mut self, conn: ConnId) -> Option<String> {
        let f = self.find_mut()?;
        f.waiting
            .iter()
            .find(|(_, c)| **c == Some(conn))
            .map(|(n, _)| n.clone())
    }

    /// The deadline passed: go with the answers we have.
    pub(super) fn find_timed_out(&mut self, now: Instant) {
        if let Some(f) = self.find_mut() {
            let late = std::mem::take(&mut f.waiting).into_keys();
            f.unanswered.extend(late);
            f.listing = false;
        }
        self.find_resolve(now);
    }

    fn find_resolve(&mut self, now: Instant) {
        let Some(super::op::Op::Find(find)) = self.op.take() else {
            return;
        };
        if let Some(lookup) = find.dht {
            self.dht_cancel(lookup);
        }
        let matching: Vec<(String, FileInfo)> = find
            .results
            .iter()
            .filter(|(_, f)| find.matches(f))
            .cloned()
            .collect();
        let mut candidates = group(&matching);
        // Add the peers that have a matching content under another name.
        for c in &mut candidates {
            for (peer, f) in &find.results {
                if f.id == c.id && !c.peers.contains(peer) {
                    c.peers.push(peer.clone());
                }
            }
        }
        match find.purpose {
            FindFor::GetFolder => self.get_folder_found(find, now),
            FindFor::Search => {
                let results = candidates.into_iter().map(Candidate::found).collect();
                self.ui.event(&Event::Search {
                    query: find.query.clone(),
                    asked: self.known.len(),
                    results,
                });
                self.finish_op();
            }
            FindFor::Get => match candidates.len() {
                0 => {
                    let query = find.query.clone();
                    self.fail_op(Problem::NothingShares { query });
                }
                1 => {
                    let c = &candidates[0];
                    if !find.unanswered.is_empty() {
                        // Chosen by name among the answers we got: one of the silent peers may
                        // have a different file under that name. Say so, never quietly.
                        self.ui.event(&Event::Warning(Warning::Unanswered {
                            peers: find.unanswered.clone(),
                            query: find.query.clone(),
                        }));
                    }
                    let name = if c.names.contains(&find.query) {
                        find.query.clone()
                    } else {
                        c.names[0].clone()
                    };
                    let info = FileInfo {
                        name: name.clone(),
                        size: c.size,
                        id: c.id,
                        sha256: c.sha256,
                        partial: false,
                    };
                    let by_sha = matches!(find.by_content(), Some(ByContent::Sha256(_)));
                    self.get_from(c.peers.clone(), name, info, by_sha, now);
                }
                _ => {
                    let query = find.query.clone();
                    let candidates = candidates.into_iter().map(Candidate::found).collect();
                    self.fail_op(Problem::Ambiguous { query, candidates });
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Sha256;

    fn info(name: &str, content: &[u8]) -> FileInfo {
        FileInfo {
            name: name.into(),
            size: content.len() as u64,
            id: crate::peer::index::fixture::cid(content),
            sha256: Sha256::of(content),
            partial: false,
        }
    }

    #[test]
    fn get_matches_exact_names_and_hash_prefixes() {
        let now = Instant::now();
        let find = Find::new("a.txt".into(), FindFor::Get, now);
        assert!(find.matches(&info("a.txt", b"x")));
        assert!(!find.matches(&info("a.txt.bak", b"x")));
        let hex = Sha256::of(b"x").to_hex();
        let find = Find::new(hex[..8].to_uppercase(), FindFor::Get, now);
        assert!(find.matches(&info("whatever", b"x")));
        let find = Find::new(hex[..4].into(), FindFor::Get, now);
        assert!(!find.matches(&info("whatever", b"x")), "too short a prefix");
        // A content id prefix, tag in any case; never taken for a SHA-256 prefix, nor the
        // other way round.
        let id = info("x", b"x").id.to_hex();
        for query in [
            format!("cid1:{}", &id[..10]),
            format!("CID1:{}", &id[..10].to_uppercase()),
        ] {
            let find = Find::new(query.clone(), FindFor::Get, now);
            assert!(find.matches(&info("whatever", b"x")), "{query}");
            assert!(!find.matches(&info("whatever", b"y")), "{query}");
            let find = Find::new(query.clone(), FindFor::Search, now);
            assert!(find.matches(&info("whatever", b"x")), "{query}");
        }
        let find = Find::new(id[..10].to_string(), FindFor::Get, now);
        assert_eq!(
            find.matches(&info("whatever", b"x")),
            hex.starts_with(&id[..10]),
            "bare hex is a SHA-256 prefix"
        );
        let find = Find::new(format!("cid1:{}", &hex[..10]), FindFor::Get, now);
        assert_eq!(find.matches(&info("w", b"x")), id.starts_with(&hex[..10]));
        let find = Find::new(format!("cid1:{}", &id[..4]), FindFor::Get, now);
        assert!(
            !find.matches(&info("whatever", b"x")),
            "too short an id prefix"
        );
    }

    #[test]
    fn search_matches_substrings_ignoring_case() {
        let find = Find::new("REPORT".into(), FindFor::Search, Instant::now());
        assert!(find.matches(&info("annual report.pdf", b"1")));
        assert!(!find.matches(&info("notes.txt", b"1")));
    }

    #[test]
    fn same_content_under_different_names_is_one_candidate() {
        let results = vec![
            ("Alice".to_string(), info("a.bin", b"same")),
            ("Bob".to_string(), info("b.bin", b"same")),
            ("Carol".to_string(), info("a.bin", b"other")),
        ];
        let groups = group(&results);
        assert_eq!(groups.len(), 2);
        let same = groups
            .iter()
            .find(|c| c.sha256 == Sha256::of(b"same"))
            .unwrap();
        assert_eq!(same.peers, vec!["Alice", "Bob"]);
        assert_eq!(same.names, vec!["a.bin", "b.bin"]);
    }
}
