//! `get PEER FOLDER` and `resume FOLDER`: the node's glue over `folder/`.
//!
//! The peer lists no file of that name, so its folders are asked for (`ListFolders`); the
//! folder's listing arrives in pages, each checked (`PagedListing`), the whole one against
//! the folder id. Then the resume record is saved (`folder/record.rs`) and the contents are
//! fetched by content id, a few at once (`FetchPlan`), each one a download of its own
//! (`download/`, verified chunk by chunk) into `.p2p/tree-files/` under its content id: no
//! path from the network names a file until every byte is proved. Last, the tree is built
//! beneath downloads/ through descriptors that never follow a link (`folder/place.rs`) and
//! takes its name in one rename that never replaces anything. One progress bar and one
//! summary line for the folder; `--json` adds a `folder_file` event per file.

use super::event::{Event, Failure, Problem};
use super::folder::beneath::Dir;
use super::folder::fetch_plan::FetchPlan;
use super::folder::manifest::{EntryKind, FolderManifest, PagedListing, TEXT_PREFIX};
use super::folder::place::place_tree;
use super::folder::record::{self, FolderRecord};
use super::folder_job::{FOLDER_WINDOW, Fetching, FolderJob, verified_dir, verified_name};
use super::frontend::{Progress, ProgressOf};
use super::node::{PeerNode, Purpose};
use super::op::{Op, STEP_TIMEOUT, Step, bump};
use super::partial::Durability;
use super::transfer::setup::{Keeping, check_room};
use crate::names::check_file_name;
use crate::peer::content_id::manifest_from_answer;
use crate::peer::download::DownloadId;
use crate::reactor::ConnId;
use crate::wire::{ContentId, FolderInfo, Message, Sha256};
use std::time::Instant;

/// The contents of a folder that have bytes to fetch.
fn contents(manifest: &FolderManifest) -> Vec<ContentId> {
    (manifest.entries().iter())
        .filter_map(|e| match e.kind {
            EntryKind::File { size, id } if size > 0 => Some(id),
            _ => None,
        })
        .collect()
}

/// The folder a `get` argument names: `tree1:` and hex digits (a prefix of its id), or its name.
/// Contents up to this size are made durable with their whole tree, not one by one.
const BATCHED_MAX: u64 = 1 << 20;

/// How a content of `size` bytes is made durable: small ones with the tree at its end (an
/// fsync each would be most of the time of a tree of small files), big ones on their own (the
/// fsync is nothing beside their transfer, and a resume need not hash them again).
fn content_durability(size: u64) -> Durability {
    if size <= BATCHED_MAX {
        Durability::Batched
    } else {
        Durability::EachFile
    }
}

fn folder_wanted(arg: &str, f: &FolderInfo) -> bool {
    match arg.strip_prefix(TEXT_PREFIX) {
        Some(prefix) => !prefix.is_empty() && f.id.to_hex().starts_with(&prefix.to_lowercase()),
        None => f.name == arg,
    }
}

impl PeerNode {
    /// `get tree1:PREFIX` asked every peer for its folders: exactly one folder id must match;
    /// it is fetched (listing from the first peer that has it) from every peer that has it.
    pub(super) fn get_folder_found(&mut self, find: super::find_state::Find, now: Instant) {
        let query = find.query.clone();
        let prefix = query[TEXT_PREFIX.len()..].to_lowercase();
        if !crate::peer::content_id::is_hex_prefix(&prefix) {
            let why = format!("'{query}' is not tree1: and 8 to 64 hex digits");
            return self.fail_op(why.into());
        }
        let matching: Vec<&(String, FolderInfo)> = (find.folders.iter())
            .filter(|(_, f)| folder_wanted(&query, f))
            .collect();
        let mut ids: Vec<crate::wire::FolderId> = matching.iter().map(|(_, f)| f.id).collect();
        ids.sort();
        ids.dedup();
        match ids.as_slice() {
            [] => self.fail_op(Problem::NothingShares { query }),
            [id] => {
                let peers: Vec<String> = matching.iter().map(|(p, _)| p.clone()).collect();
                self.folder_swarm = Some(peers.clone());
                self.op = Some(Op::Get {
                    peer: peers[0].clone(),
                    file: format!("{TEXT_PREFIX}{}", id.to_hex()),
                    step: Step::Reaching { refreshed: true },
                    deadline: now + STEP_TIMEOUT,
                    swarm: None,
                });
                self.op_advance(now);
            }
            many => {
                let list: Vec<String> = many.iter().map(ToString::to_string).collect();
                let why = format!(
                    "'{query}' matches {} folders: {}",
                    many.len(),
                    list.join(", ")
                );
                self.fail_op(why.into())
            }
        }
    }

    /// Whether `name` is a folder fetch left unfinished (it has a record, usable or not).
    pub(super) fn is_unfinished_folder(&self, name: &str) -> bool {
        record::record_path(&self.cfg.downloads_dir, name).exists()
    }

    /// `cancel FOLDER`: its record goes, and the verified contents and partial files no other
    /// unfinished folder needs. Never the running folder (Ctrl-C it first).
    pub(super) fn cancel_folder(&mut self, name: &str) -> Result<(), String> {
        if self.folder.as_ref().is_some_and(|j| j.name == name) {
            return Err(format!(
                "the folder '{}' is being fetched",
                crate::names::printable(name)
            ));
        }
        let downloads = self.cfg.downloads_dir.clone();
        let mine: Vec<ContentId> = match record::load(&downloads, name) {
            Ok((_, manifest)) => contents(&manifest),
            Err(_) => Vec::new(), // a damaged record: only it goes
        };
        let others: std::collections::HashSet<ContentId> = record::list(&downloads)
            .into_iter()
            .filter(|(r, _)| r.name != name)
            .flat_map(|(_, m)| contents(&m))
            .collect();
        // Paused downloads of its contents (this run's) go with their files.
        let paused: Vec<DownloadId> = (self.downloads.iter())
            .filter(|(_, t)| mine.iter().any(|c| *c == t.dl.content_id()))
            .map(|(id, _)| *id)
            .collect();
        for id in paused {
            if let Some(t) = self.downloads.remove(&id) {
                self.pending.retain(|_, p| !p.is_for(id));
                t.store.discard();
            }
            self.folder_downloads.remove(&id);
        }
        if let Ok(dir) = Dir::open_root(&verified_dir(&downloads)) {
            for id in mine.iter().filter(|c| !others.contains(c)) {
                let name = verified_name(id);
                let _ = dir.remove_file(&name);
                let _ = dir.remove_file(&crate::names::partial_name(&name));
            }
        }
        record::remove(&downloads, name);
        Ok(())
    }

    /// `get PEER NAME`: the peer lists no file `NAME`; ask for its folders on the same
    /// connection.
    pub(super) fn get_ask_folders(&mut self, conn: ConnId, mut op: Op, now: Instant) {
        self.request(conn, Purpose::Op, |req| Message::ListFolders { req });
        if let Some(step) = op.step_mut() {
            *step = Step::AskedFolders(conn);
        }
        bump(&mut op, now);
        self.op = Some(op);
    }

    /// `get`: the peer's folders arrived. One must be the one asked for; its listing is asked
    /// for, a page at a time.
    pub(super) fn get_folders_listed(
        &mut self,
        conn: ConnId,
        op: Op,
        folders: Vec<FolderInfo>,
        now: Instant,
    ) {
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
        let Some(info) = folders.into_iter().find(|f| folder_wanted(&file, f)) else {
            return self.fail_op(Problem::NoSuchFile { peer, file });
        };
        // The name it is saved under is the peer's: it must be one safe component.
        if let Err(e) = check_file_name(&info.name) {
            return self.fail_op(e.into());
        }
        if let Some(problem) = self.folder_in_the_way(&info.name) {
            return self.fail_op(problem);
        }
        let id = info.id;
        self.request(conn, Purpose::Op, |req| Message::GetFolder {
            req,
            id,
            start: 0,
        });
        let mut op = Op::Get {
            peer,
            file: info.name,
            step: Step::FolderPages(conn, Box::new(PagedListing::new(id))),
            deadline,
            swarm,
        };
        bump(&mut op, now);
        self.op = Some(op);
    }

    /// `.p2p` or `.p2p/tree-files` in downloads/ if it is not a real folder (swapped for a
    /// symlink meanwhile): a content's partial file is opened by path, so that is looked at
    /// before each one. (Files already open keep writing to the folder they were opened in;
    /// their final link, by path, then fails rather than land elsewhere.)
    fn link_on_the_way(&self) -> Option<std::path::PathBuf> {
        let state = super::layout::state_dir(&self.cfg.downloads_dir);
        [state.clone(), verified_dir(&self.cfg.downloads_dir)]
            .into_iter()
            .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()))
    }

    /// Something already has the folder's name in downloads/: it is never replaced.
    fn folder_in_the_way(&self, name: &str) -> Option<Problem> {
        let dest = self.cfg.downloads_dir.join(name);
        let there = std::fs::symlink_metadata(&dest).is_ok();
        there.then(|| {
            Problem::Text(format!(
                "'{}' already exists in {} and is never replaced; move it away to fetch the \
                 folder",
                crate::names::printable(name),
                self.cfg.downloads_dir.display()
            ))
        })
    }

    /// `get`: one page of the folder's listing. A page that breaks a rule ends the command
    /// (and the connection) with the rule named; nothing is written.
    pub(super) fn get_folder_page(&mut self, conn: ConnId, op: Op, msg: Message, now: Instant) {
        let (
            Op::Get {
                peer,
                file,
                step: Step::FolderPages(_, mut listing),
                deadline,
                swarm,
            },
            Message::Folder {
                id,
                total,
                start,
                entries,
                ..
            },
        ) = (op, msg)
        else {
            tracing::error!("get_folder_page called without a folder page for a get; dropped");
            return;
        };
        match listing.handle_page(&id, total, start, &entries) {
            Err(e) => {
                self.close(conn);
                self.fail_op(Problem::BadFolder {
                    peer,
                    folder: file,
                    error: e.to_string(),
                })
            }
            Ok(None) => {
                let (id, start) = (id, listing.next_start());
                self.request(conn, Purpose::Op, |req| Message::GetFolder {
                    req,
                    id,
                    start,
                });
                let mut op = Op::Get {
                    peer,
                    file,
                    step: Step::FolderPages(conn, listing),
                    deadline,
                    swarm,
                };
                bump(&mut op, now);
                self.op = Some(op);
            }
            Ok(Some(manifest)) => {
                // Found by id among every peer: each that lists it is a source.
                let mut sources = self.folder_swarm.take().unwrap_or_default();
                sources.retain(|s| *s != peer);
                sources.insert(0, peer);
                self.begin_folder(conn, file, sources, manifest, now)
            }
        }
    }

    /// `resume NAME` of a folder: its record (checked on load) gives the listing; the source
    /// is reached as by `get PEER tree1:ID`, and once it lists its files the fetch goes on
    /// without asking for the listing again.
    pub(super) fn resume_folder(
        &mut self,
        rec: FolderRecord,
        manifest: FolderManifest,
        now: Instant,
    ) {
        let Some(peer) = rec.sources.first().cloned() else {
            return self.fail_op(Problem::NoSource);
        };
        self.op = Some(Op::Get {
            peer,
            file: format!("{TEXT_PREFIX}{}", rec.id.to_hex()),
            step: Step::Reaching { refreshed: false },
            deadline: now + STEP_TIMEOUT,
            swarm: None,
        });
        self.folder_resume = Some((rec.name, manifest));
        self.op_advance(now);
    }

    /// `get`: the listing of a `resume`d folder's source arrived: the fetch goes on.
    /// False if this `get` is no folder's resume.
    pub(super) fn get_listed_resume(&mut self, conn: ConnId, op: &Op, now: Instant) -> bool {
        let Op::Get { peer, file, .. } = op else {
            return false;
        };
        let Some((name, manifest)) = self.folder_resume.take() else {
            return false;
        };
        if *file != format!("{TEXT_PREFIX}{}", manifest.id().to_hex()) {
            return false;
        }
        let peer = peer.clone();
        self.begin_folder(conn, name, vec![peer], manifest, now);
        true
    }

    /// The listing is checked: save the record, plan the fetch (contents already verified by
    /// an earlier run are kept), show one bar, start the first contents.
    fn begin_folder(
        &mut self,
        conn: ConnId,
        name: String,
        sources: Vec<String>,
        manifest: FolderManifest,
        now: Instant,
    ) {
        if let Some(problem) = self.folder_in_the_way(&name) {
            return self.fail_op(problem);
        }
        let downloads = self.cfg.downloads_dir.clone();
        let vdir = verified_dir(&downloads);
        if let Err(e) = std::fs::create_dir_all(&vdir) {
            let why = format!("cannot create {}: {e}", vdir.display());
            return self.fail_op(why.into());
        }
        let rec = FolderRecord::new(&name, sources.clone(), &manifest);
        if let Err(e) = record::save(&downloads, &rec) {
            let why = format!(
                "cannot save the resume record in {}: {e}",
                downloads.display()
            );
            return self.fail_op(why.into());
        }
        // A content is kept if its verified file is there, whole: only a download that
        // verified every chunk puts a file under that name (`DiskStore::publish`).
        let sizes: std::collections::HashMap<ContentId, u64> = (manifest.entries().iter())
            .filter_map(|e| match e.kind {
                EntryKind::File { size, id } => Some((id, size)),
                EntryKind::EmptyFolder => None,
            })
            .collect();
        // A small one was never synced on its own (`Durability::Batched`): after a power cut
        // its length may be right and its bytes not, so it is hashed again (cheap: at most
        // `BATCHED_MAX` bytes each).
        let kept = |id: &ContentId| {
            let path = vdir.join(verified_name(id));
            let whole = std::fs::symlink_metadata(&path)
                .is_ok_and(|m| m.is_file() && Some(&m.len()) == sizes.get(id));
            whole
                && (content_durability(sizes[id]) == Durability::EachFile
                    || matches!(
                        crate::peer::partial::check_destination(&path, id),
                        Ok(crate::peer::partial::Destination::AlreadyThere)
                    ))
        };
        let plan = FetchPlan::new(&manifest, FOLDER_WINDOW, kept);
        let (files, _) = manifest.totals();
        let total = plan.progress(0).bytes_total;
        // Room for the whole tree is checked before any of it is fetched (the big contents
        // are checked again each as it starts, the small ones are not).
        let left = total.saturating_sub(plan.progress(0).bytes_done);
        if let Err(problem) = check_room(&downloads, &name, left) {
            return self.fail_op(problem);
        }
        tracing::info!(
            "fetching folder {} ({files} files, {} kept, {}) from {}",
            crate::names::printable(&name),
            plan.progress(0).contents_kept,
            manifest.id(),
            sources.join(", ")
        );
        let of = ProgressOf::Folder {
            name: name.clone(),
            files,
        };
        self.ui.progress(Progress::Start { of, total });
        self.folder = Some(FolderJob::new(name, sources, conn, manifest, plan, now));
        self.op = Some(Op::Folder);
        self.folder_pump(now);
    }

    /// Starts contents while the window has room; places the tree once all are verified.
    fn folder_pump(&mut self, now: Instant) {
        loop {
            let Some(job) = &mut self.folder else { return };
            if job.plan.is_complete() {
                self.show_folder_progress(); // the bar's last word: every file done
                return self.place_folder(now);
            }
            if !job.has_room() {
                break;
            }
            let Some((id, _size)) = job.plan.next_to_start() else {
                break;
            };
            let conn = job.conn;
            if !self.sessions.contains_key(&conn) {
                return self.folder_lost_connection(now);
            }
            let req = self.request(conn, Purpose::FolderManifest(id), |req| {
                Message::GetManifest { req, id }
            });
            if let Some(job) = &mut self.folder {
                job.running.insert(id, Fetching::Manifest(req));
            }
        }
        self.show_folder_progress();
    }

    /// The manifest of one of the folder's contents: checked against its content id (and the
    /// size the listing gave), then the content downloads into `.p2p/tree-files/`.
    pub(super) fn folder_manifest_answer(
        &mut self,
        conn: ConnId,
        req: u64,
        asked: ContentId,
        msg: Message,
        now: Instant,
    ) {
        let Some(job) = &self.folder else { return };
        if job.running.get(&asked) != Some(&Fetching::Manifest(req)) {
            return;
        }
        let (sources, size) = (job.sources.clone(), job.sizes.get(&asked).copied());
        let peer = sources.first().cloned().unwrap_or_default();
        let (id, msize, chunk_size, chunk_hashes) = match msg {
            Message::Manifest {
                id,
                size,
                chunk_size,
                chunk_hashes,
                ..
            } => (id, size, chunk_size, chunk_hashes),
            Message::Error { message, .. } => {
                return self.fail_folder(
                    Failure::Failed,
                    Problem::PeerError { peer, message },
                    now,
                );
            }
            other => {
                let message = other.kind();
                return self.fail_folder(
                    Failure::Failed,
                    Problem::Unexpected { peer, message },
                    now,
                );
            }
        };
        // A folder's listing carries content ids, not SHA-256s: the id is what every chunk
        // is checked against, and the whole-file SHA-256 is not asked for.
        let unknown_sha256 = Sha256([0; 32]);
        let checked = manifest_from_answer(
            &asked,
            &id,
            unknown_sha256,
            msize,
            chunk_size,
            &chunk_hashes,
            size,
        );
        let manifest = match checked {
            Ok(m) => m,
            Err(error) => {
                self.close(conn);
                let problem = Problem::BadManifest { peer, error };
                return self.fail_folder(Failure::Verification, problem, now);
            }
        };
        let root = verified_dir(&self.cfg.downloads_dir);
        if let Some(link) = self.link_on_the_way() {
            let why = format!(
                "{} is a symbolic link now; nothing is written through it",
                link.display()
            );
            return self.fail_folder(Failure::Failed, why.into(), now);
        }
        let name = verified_name(&asked);
        let durability = content_durability(manifest.size);
        let keeping = Keeping::FolderContent(durability);
        match self.begin_download_in(&root, &sources, &name, manifest, false, keeping, now) {
            Ok(dl) => {
                self.folder_downloads.insert(dl);
                if let Some(job) = &mut self.folder {
                    job.running.insert(asked, Fetching::Download(dl));
                }
                if let Some(t) = self.downloads.get_mut(&dl) {
                    // This connection just sent the manifest, checked against the id: no
                    // second GetManifest nor GetHave before the chunks are asked.
                    if let Some(s) = t.dl.source_named(&peer) {
                        let rtt = std::time::Duration::from_millis(1);
                        t.dl.handle_confirmed(s, conn, rtt, Vec::new(), now);
                    }
                }
                self.start_transfer(dl, now);
            }
            Err(e) => self.fail_folder(Failure::Failed, e.into(), now),
        }
    }

    /// A download that is a content of a folder ended. Verified: its files count as done
    /// (a `folder_file` event each) and the next contents start. Otherwise the folder stops,
    /// resumable.
    pub(super) fn folder_content_ended(
        &mut self,
        dl: DownloadId,
        result: Result<Event, (Failure, Problem)>,
        now: Instant,
    ) {
        // A paused one stays a folder's content (hidden from `downloads`) until it goes.
        if !self.downloads.contains_key(&dl) {
            self.folder_downloads.remove(&dl);
        }
        let Some(job) = &mut self.folder else { return };
        let Some(id) = job.content_of(dl) else { return };
        job.running.remove(&id);
        match result {
            Ok(event) => {
                if let Event::DownloadDone { bytes_fetched, .. } = &event {
                    job.fetched += bytes_fetched;
                }
                let _ = job.plan.handle_done(&id);
                let folder = job.name.clone();
                for (path, size) in job.files_of(&id) {
                    let content_id = id.to_string();
                    let folder = folder.clone();
                    self.ui.event(&Event::FolderFile {
                        folder,
                        path,
                        size,
                        content_id,
                    });
                }
                self.folder_pump(now);
            }
            Err((kind, problem)) => {
                let problem = match self.link_on_the_way() {
                    Some(link) => Problem::Text(format!(
                        "{} is a symbolic link now; nothing is written through it",
                        link.display()
                    )),
                    None => self.content_problem(&id, problem),
                };
                self.fail_folder(kind, problem, now)
            }
        }
    }

    /// A content's failure in the folder's words: the content is named by the first path of
    /// the tree that holds it, not by the name of its file under `.p2p/tree-files/`.
    fn content_problem(&self, id: &ContentId, problem: Problem) -> Problem {
        let Some(job) = &self.folder else {
            return problem;
        };
        let path = job.manifest.entries().iter().find_map(|e| match e.kind {
            EntryKind::File { id: c, .. } if c == *id => Some(e.path.to_string()),
            _ => None,
        });
        match (problem, path) {
            (Problem::Text(text), Some(path)) => {
                let named = format!("{}/{path}", crate::names::printable(&job.name));
                // Its own advice (`resume HEX`) is not the user's: `resume FOLDER` is.
                let text = text
                    .split("; the partial download is kept")
                    .next()
                    .unwrap_or("");
                Problem::Text(text.replace(&verified_name(id), &named))
            }
            (problem, _) => problem,
        }
    }

    /// The folder stops (its record stays: `resume NAME` continues it). Its downloads still
    /// running are paused (their chunks made durable), kept for the resume.
    fn fail_folder(&mut self, kind: Failure, problem: Problem, now: Instant) {
        let Some(job) = self.folder.take() else {
            return;
        };
        // Their ends come back through `folder_content_ended`, which finds no folder now.
        for dl in job.downloads().collect::<Vec<_>>() {
            self.pause_interrupted(dl, now);
        }
        self.pending
            .retain(|_, p| !matches!(p.purpose, Purpose::FolderManifest(_)));
        let p = job.plan.progress(0);
        let problem = Problem::FolderUnfinished {
            folder: job.name,
            files_done: p.files_done,
            files_total: p.files_total,
            why: Box::new(problem),
        };
        if matches!(self.op, Some(Op::Folder)) {
            self.fail_op_as(kind, problem);
        } else {
            self.ui.event(&Event::Error { kind, problem });
        }
    }

    /// Ctrl-C (or SIGTERM in a batch) while a folder is fetched.
    pub(super) fn folder_interrupted(&mut self, now: Instant) {
        self.fail_folder(Failure::Unfinished, Problem::Interrupted, now);
    }

    fn folder_lost_connection(&mut self, now: Instant) {
        let peer = (self.folder.as_ref())
            .and_then(|j| j.sources.first().cloned())
            .unwrap_or_default();
        let why = "the connection closed".to_string();
        self.fail_folder(
            Failure::Unreachable,
            Problem::ConnectionLost { peer, why },
            now,
        );
    }

    /// A connection closed: if the folder asks its manifests on it, the folder stops.
    pub(super) fn folder_connection_lost(&mut self, conn: ConnId, now: Instant) {
        let asking = (self.folder.as_ref()).is_some_and(|j| {
            j.conn == conn
                && j.running
                    .values()
                    .any(|f| matches!(f, Fetching::Manifest(_)))
        });
        if asking {
            self.folder_lost_connection(now);
        }
    }

    /// Every content is verified: build the tree beneath downloads/ and give it its name.
    fn place_folder(&mut self, now: Instant) {
        let Some(job) = self.folder.take() else {
            return;
        };
        let downloads = self.cfg.downloads_dir.clone();
        // `.p2p/tree-files` opened from downloads/ component by component, never through a
        // link: a folder swapped for a symlink is refused here, not followed.
        let placed = Dir::open_root(&downloads).and_then(|root| {
            let verified = root.open_dir(".p2p")?.open_dir("tree-files")?;
            Ok((root, verified))
        });
        let result = match &placed {
            // The small contents were never synced one by one: the whole file system at once,
            // before the tree gets its name.
            Ok((root, verified)) => verified
                .sync_file_system()
                .map_err(|e| format!("cannot flush the downloaded files to disk: {e}"))
                .and_then(|()| {
                    place_tree(root, &job.name, &job.manifest, verified, verified_name)
                        .map_err(|e| e.to_string())
                }),
            Err(e) => Err(format!("cannot open {}: {e}", downloads.display())),
        };
        if let Err(why) = result {
            self.folder = Some(job);
            return self.fail_folder(Failure::Failed, why.into(), now);
        }
        record::remove(&downloads, &job.name);
        // The tree's files are links to the verified ones: those names go, so a file edited
        // in downloads/ later is never taken for a verified content by another fetch.
        if let Ok((_, verified)) = &placed {
            for id in job.sizes.keys() {
                let _ = verified.remove_file(&verified_name(id));
            }
        }
        let (files, size) = job.manifest.totals();
        let seconds = now.saturating_duration_since(job.started).as_secs_f64();
        let rate = if seconds > 0.0 {
            job.fetched as f64 / seconds
        } else {
            0.0
        };
        let p = job.plan.progress(0);
        let event = Event::FolderDone {
            folder: job.name.clone(),
            path: downloads.join(&job.name).display().to_string(),
            folder_id: job.manifest.id().to_string(),
            files,
            size,
            seconds: (seconds * 1000.0).round() / 1000.0,
            bytes_per_sec: rate.round(),
            bytes_fetched: job.fetched,
            contents_kept: p.contents_kept,
            sources: job.sources.clone(),
        };
        self.finish_op();
        self.ui.event(&event);
    }

    /// The one bar of the folder: bytes verified (running contents' chunks included), files
    /// done, sources.
    pub(super) fn show_folder_progress(&mut self) {
        let Some(job) = &self.folder else { return };
        let mut in_flight = 0;
        let mut sources = 0;
        for dl in job.downloads() {
            if let Some(t) = self.downloads.get(&dl) {
                in_flight += t.dl.bytes_done();
                sources = sources.max(t.dl.active_sources());
            }
        }
        let p = job.plan.progress(in_flight);
        let sources = sources.max(usize::from(!job.running.is_empty()));
        self.ui.progress(Progress::Sources(sources));
        self.ui.progress(Progress::Files(p.files_done));
        self.ui.progress(Progress::Done(p.bytes_done));
    }
}
