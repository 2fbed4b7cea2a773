//! The steps of `get` (and `resume`) in the foreground: the peer's listing names the file,
//! what stands under its name at home is checked, the manifest is asked for and checked, then
//! the download runs (`transfer.rs`) and the command waits for it with a progress bar.

use super::content_id::{id_prefix, manifest_from_answer};
use super::download::DownloadId;
use super::event::{Event, Failure, Info, Notice, Problem, Warning};
use super::find_state::FindFor;
use super::frontend::{Progress, ProgressOf};
use super::node::{DiskWait, Mode, PeerNode, Purpose};
use super::op::{Op, STEP_TIMEOUT, Step, Swarm, bump};
use super::partial::Destination;
use crate::names::check_file_name;
use crate::reactor::ConnId;
use crate::wire::{FileInfo, Message};
use std::collections::BTreeSet;
use std::time::Instant;

impl PeerNode {
    /// `get [PEER] FILE`. With a peer we know: from that peer. Otherwise the whole argument is
    /// looked for among every peer (`find.rs`); the peer list may still name `PEER`.
    pub(super) fn start_get(
        &mut self,
        peer: Option<String>,
        file: String,
        query: String,
        now: Instant,
    ) {
        let pinned = (peer.as_ref())
            .is_some_and(|p| self.known.contains_key(p) || self.ready_session(p).is_some());
        match peer {
            Some(peer) if pinned => {
                // `get PEER cid1:…` names the file by content id: the listing gives its name.
                self.folder_resume = None;
                let folder_id = file.starts_with(super::folder::manifest::TEXT_PREFIX);
                if id_prefix(&file).is_none()
                    && !folder_id
                    && let Err(e) = check_file_name(&file)
                {
                    return self.fail_op(e.into());
                }
                self.op = Some(Op::Get {
                    peer,
                    file,
                    step: Step::Reaching { refreshed: false },
                    deadline: now + STEP_TIMEOUT,
                    swarm: None,
                })
            }
            None if file.starts_with(super::folder::manifest::TEXT_PREFIX) => {
                self.start_find(file, FindFor::GetFolder, None, now);
            }
            peer => {
                let named = peer.map(|peer| (peer, file));
                self.start_find(query, FindFor::Get, named, now);
            }
        }
    }

    /// `get`: the peer's listing arrived. It must name the file (or, for a content a search
    /// found, hold its SHA-256); then what stands under its name at home is looked at.
    pub(super) fn get_listed(&mut self, conn: ConnId, op: Op, files: Vec<FileInfo>, now: Instant) {
        if self.get_listed_resume(conn, &op, now) {
            return;
        }
        let Op::Get {
            peer,
            file,
            deadline,
            swarm,
            ..
        } = op
        else {
            self.op = Some(op);
            return;
        };
        let by_id = id_prefix(&file);
        let wanted = |f: &FileInfo| match (&swarm, &by_id) {
            (Some(swarm), _) => f.id == swarm.id,
            (None, Some(prefix)) => f.id.has_hex_prefix(prefix),
            (None, None) => f.name == file,
        };
        let Some(info) = files.into_iter().find(wanted) else {
            // No file of that name (or `tree1:` id): perhaps a folder (PROTOCOL.md §8.5).
            if swarm.is_none() && by_id.is_none() {
                let op = Op::Get {
                    peer,
                    file,
                    step: Step::Asked(conn),
                    deadline,
                    swarm,
                };
                return self.get_ask_folders(conn, op, now);
            }
            return self.fail_op(Problem::NoSuchFile { peer, file });
        };
        // Found by id: saved under the name the peer lists it by, which must be a safe one.
        let file = match by_id {
            Some(_) => match check_file_name(&info.name) {
                Ok(()) => info.name.clone(),
                Err(e) => return self.fail_op(e.into()),
            },
            None => file,
        };
        let dest = self.cfg.downloads_dir.join(&file);
        let nothing_there = std::fs::symlink_metadata(&dest)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
        let step = if nothing_there {
            self.ask_manifest(conn, &info, now);
            Step::AskedManifest(conn, info, now)
        } else {
            // Something is there: hashing it may take seconds, off the reactor.
            let job = self.disk.check_destination(dest, info.id);
            self.disk_waiting.insert(job, DiskWait::GetDestination);
            Step::CheckingDestination(conn, info)
        };
        let mut op = Op::Get {
            peer,
            file,
            step,
            deadline,
            swarm,
        };
        bump(&mut op, now);
        self.op = Some(op);
    }

    /// `get`: the manifest arrived; it must make the content id the file was listed with. A
    /// lying manifest ends that connection, like a chunk of the wrong length does, and the
    /// command (the next starts afresh), unless other sources have the content: then the liar
    /// is reported, dropped from the sources, and the next source is asked.
    pub(super) fn get_manifest(&mut self, conn: ConnId, op: Op, msg: Message, now: Instant) {
        let (
            Op::Get {
                peer,
                file,
                step: Step::AskedManifest(_, info, asked_at),
                swarm,
                deadline,
            },
            Message::Manifest {
                id,
                size,
                chunk_size,
                chunk_hashes,
                ..
            },
        ) = (op, msg)
        else {
            tracing::error!("get_manifest called without a manifest for a get; dropped");
            return;
        };
        let checked = manifest_from_answer(
            &info.id,
            &id,
            info.sha256,
            size,
            chunk_size,
            &chunk_hashes,
            Some(info.size),
        );
        let manifest = match checked {
            Ok(m) => m,
            Err(error) => {
                self.close(conn);
                return match swarm {
                    Some(swarm) if swarm.sources.len() > 1 => {
                        self.next_source(peer, file, swarm, error, deadline, now)
                    }
                    _ => self.fail_op(Problem::BadManifest { peer, error }),
                };
            }
        };
        let (sources, check_sha256) = match swarm {
            Some(swarm) => (swarm.sources, swarm.check_sha256),
            None => (vec![peer.clone()], false),
        };
        match self.begin_download(&sources, &file, manifest, check_sha256, now) {
            Ok(id) => {
                // This connection just sent the manifest, checked against the id, and its peer
                // lists the whole file: it needs no second GetManifest nor a GetHave, and its
                // chunks are asked as soon as the partial file is checked (two round trips
                // fewer before the first data).
                let count = self.downloads.get(&id).map(|t| t.dl.chunk_count());
                let flight = count.and_then(|n| self.adopt_first_flight(conn, id, n));
                let (first_flight, flight_at) = flight.unwrap_or((Vec::new(), asked_at));
                if !info.partial
                    && let Some(t) = self.downloads.get_mut(&id)
                    && let Some(s) = t.dl.source_named(&peer)
                {
                    let rtt = now.saturating_duration_since(asked_at);
                    t.dl.handle_confirmed(s, conn, rtt, first_flight, flight_at);
                }
                self.await_downloads(BTreeSet::from([id]));
                self.start_transfer(id, now);
            }
            Err(e) => self.fail_op(e.into()),
        }
    }

    /// A content's first source sent a manifest that does not make the content id: it is
    /// reported and left out, and the next source is asked for the manifest.
    fn next_source(
        &mut self,
        liar: String,
        file: String,
        mut swarm: Swarm,
        error: String,
        deadline: Instant,
        now: Instant,
    ) {
        swarm.sources.retain(|p| *p != liar);
        let warning = Warning::ForgedManifest {
            peer: liar,
            file: file.clone(),
            error,
        };
        self.ui.event(&Event::Warning(warning));
        let Some(next) = swarm.sources.first().cloned() else {
            return self.fail_op(Problem::NoSource);
        };
        self.op = Some(Op::Get {
            peer: next,
            file,
            step: Step::Reaching { refreshed: true },
            deadline: deadline.max(now + STEP_TIMEOUT),
            swarm: Some(swarm),
        });
        self.op_advance(now);
    }

    /// `get FILE` found its content at `sources`: fetch it from all of them, under `name`.
    /// `check_sha256`: it was found by its SHA-256, which the finished file must then have.
    pub(super) fn get_from(
        &mut self,
        sources: Vec<String>,
        name: String,
        info: FileInfo,
        check_sha256: bool,
        now: Instant,
    ) {
        if let Err(e) = check_file_name(&name) {
            return self.fail_op(e.into());
        }
        let Some(first) = sources.first().cloned() else {
            return self.fail_op(Problem::NoSource);
        };
        self.op = Some(Op::Get {
            peer: first,
            file: name,
            step: Step::Reaching { refreshed: true },
            deadline: now + STEP_TIMEOUT,
            swarm: Some(Swarm {
                sources,
                id: info.id,
                check_sha256,
            }),
        });
        self.op_advance(now);
    }

    /// `resume FILE`, or `resume` for every unfinished download.
    pub(super) fn start_resume(&mut self, file: Option<String>, now: Instant) {
        if let Some(name) = &file {
            use super::folder::record::{LoadError, load};
            match load(&self.cfg.downloads_dir, name) {
                Ok((rec, manifest)) => return self.resume_folder(rec, manifest, now),
                Err(LoadError::Bad(why)) => {
                    let why = format!(
                        "the resume record of the folder {} is unusable ({why})",
                        crate::names::printable(name)
                    );
                    return self.fail_op(why.into());
                }
                Err(LoadError::Missing) => {}
            }
        }
        let names: Vec<String> = match file {
            Some(file) => vec![file],
            None => {
                let mut names: Vec<String> = super::resume::list(&self.cfg.downloads_dir)
                    .0
                    .into_iter()
                    .map(|r| r.file_name)
                    .collect();
                for dl in self.downloads.values() {
                    if !names.iter().any(|n| n == dl.file_name()) {
                        names.push(dl.file_name().to_string());
                    }
                }
                if names.is_empty() {
                    // No file left: the first unfinished folder, if any (one at a time).
                    let folders = super::folder::record::list(&self.cfg.downloads_dir);
                    if let Some((rec, manifest)) = folders.into_iter().next() {
                        return self.resume_folder(rec, manifest, now);
                    }
                    self.ui.event(&Event::Info(Info::NoUnfinishedDownloads));
                    return;
                }
                names
            }
        };
        let single = names.len() == 1;
        let mut ids = BTreeSet::new();
        for name in names {
            match self.resume_from_record(&name, now) {
                Ok(Some(id)) => {
                    ids.insert(id);
                }
                Ok(None) => {}
                Err(e) if single => return self.fail_op(e.into()),
                Err(e) => self
                    .ui
                    .event(&Event::Warning(Warning::NotResumed(e.into()))),
            }
        }
        self.await_downloads(ids);
    }

    /// The command now waits for these downloads, with a progress bar on a terminal.
    fn await_downloads(&mut self, ids: BTreeSet<DownloadId>) {
        let ids: BTreeSet<DownloadId> = ids
            .into_iter()
            .filter(|id| self.downloads.contains_key(id))
            .collect();
        if ids.is_empty() {
            return self.finish_op();
        }
        let total = ids.iter().map(|id| self.downloads[id].size()).sum();
        let of = match ids.len() {
            1 => ProgressOf::Download {
                file: self.downloads[ids
                    .first()
                    .expect("matched a length of 1, so there is a first")]
                .file_name()
                .to_string(),
            },
            count => ProgressOf::Downloads { count },
        };
        self.ui.progress(Progress::Start { of, total });
        self.op = Some(Op::Await { ids });
        self.show_progress();
    }

    /// The downloads the foreground command waits for.
    pub(super) fn op_download_ids(&self) -> Vec<DownloadId> {
        match &self.op {
            Some(Op::Await { ids }) => ids.iter().copied().collect(),
            _ => Vec::new(),
        }
    }

    /// A download ended: completed (`Ok(download_done event)`), failed or paused
    /// (`Err((kind, why))`).
    pub(super) fn download_done(
        &mut self,
        id: DownloadId,
        result: Result<Event, (Failure, Problem)>,
        now: Instant,
    ) {
        if self.folder_downloads.contains(&id) {
            return self.folder_content_ended(id, result, now);
        }
        let awaited = match &mut self.op {
            Some(Op::Await { ids }) => ids.remove(&id),
            _ => false,
        };
        match result {
            Ok(event) => {
                if awaited && self.op_download_ids().is_empty() {
                    self.finish_op();
                }
                self.ui.event(&event);
            }
            Err((kind, problem)) if awaited => self.fail_op_as(kind, problem),
            Err((kind, problem)) => self.ui.event(&Event::Error { kind, problem }),
        }
    }

    /// A download lost its source. In the REPL the prompt comes back and the download goes on
    /// waiting in the background; a batch keeps waiting (up to `--retry-for`).
    pub(super) fn op_download_waiting(&mut self, id: DownloadId) {
        if self.cfg.mode != Mode::Repl {
            return;
        }
        let Some(Op::Await { ids }) = &mut self.op else {
            return;
        };
        if ids.remove(&id) {
            self.ui.event(&Event::Notice(Notice::InBackground));
            if ids.is_empty() {
                self.finish_op();
            }
        }
    }

    /// `get`: asks `conn` for the manifest of `info` (nothing stands in the way at home),
    /// and for its first chunks right behind it (`first_flight.rs`).
    fn ask_manifest(&mut self, conn: ConnId, info: &FileInfo, now: Instant) {
        let id = info.id;
        self.request(conn, Purpose::Op, |req| Message::GetManifest { req, id });
        self.send_first_flight(conn, info, now);
    }

    /// `get`: what stands under the file's name in the downloads folder was checked (off the
    /// reactor). The same content: done, nothing fetched. Another file: the command fails,
    /// nothing is overwritten. Nothing there: ask for the manifest.
    pub(super) fn get_destination_checked(
        &mut self,
        result: Result<Destination, String>,
        now: Instant,
    ) {
        let (peer, file, conn, info, deadline, swarm) = match self.op.take() {
            Some(Op::Get {
                peer,
                file,
                step: Step::CheckingDestination(conn, info),
                deadline,
                swarm,
            }) => (peer, file, conn, info, deadline, swarm),
            other => {
                self.op = other;
                return; // the command ended meanwhile (interrupted, timed out)
            }
        };
        match result {
            Err(e) => self.fail_op(e.into()),
            Ok(Destination::AlreadyThere) => {
                let path = self.cfg.downloads_dir.join(&file).display().to_string();
                let (id, sha256) = (info.id.to_string(), info.sha256.to_string());
                self.ui
                    .event(&Event::already_there(file, path, info.size, id, sha256));
            }
            Ok(Destination::Free) => {
                self.ask_manifest(conn, &info, now);
                let mut op = Op::Get {
                    peer,
                    file,
                    step: Step::AskedManifest(conn, info, now),
                    deadline,
                    swarm,
                };
                bump(&mut op, now);
                self.op = Some(op);
            }
        }
    }
}
