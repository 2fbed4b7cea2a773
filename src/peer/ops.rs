//! The user's commands, run one at a time in the foreground. Each command that needs another
//! peer first reaches it (asking the tracker for its address if needed: `reaching.rs`), then
//! sends its request and finishes on the answer. Every step is bounded by a deadline. This
//! file holds starting, ending and timing commands, and the answers of `files` and `msg`; what
//! a command is (`Op`, `Step`) is `op.rs`, the steps of `get` and `resume` are `get.rs`,
//! `search` and `get FILE` are `find.rs`.

use super::command::Command;
use super::event::{Event, Failure, FileEntry, FolderListed, Info, Problem};
use super::find_state::FindFor;
use super::frontend::Progress;
use super::node::{Mode, PeerNode, Purpose};
use super::op::{Op, STEP_TIMEOUT, Step};
use super::session::MAX_CHAT_LEN;
use crate::reactor::ConnId;
use crate::wire::Message;
use std::time::{Duration, Instant};

const BUSY_MAX_RETRY: Duration = Duration::from_secs(5);
/// How often `wait-peer` asks the tracker again.
const WAIT_PEER_POLL: Duration = Duration::from_millis(250);

impl PeerNode {
    /// Starts a command (the one before it has ended). A command that needs a peer goes on
    /// in [`Self::op_advance`] (`reaching.rs`); one that needs nobody is done at once.
    pub(super) fn start_command(&mut self, cmd: Command, now: Instant) {
        tracing::debug!("command {cmd:?}");
        let deadline = now + STEP_TIMEOUT;
        let step = Step::Reaching { refreshed: false };
        self.busy_wait = None;
        match cmd {
            Command::Peers => {
                if self.request_peer_list() {
                    self.op = Some(Op::Peers { deadline });
                } else {
                    self.print_peers(now);
                }
            }
            Command::Files { peer } => {
                self.op = Some(Op::Files {
                    peer,
                    step,
                    deadline,
                    listed: None,
                })
            }
            Command::Get { peer, file, query } => self.start_get(peer, file, query, now),
            Command::Search { text } => self.start_find(text, FindFor::Search, None, now),
            Command::Msg { text, .. } if text.len() > MAX_CHAT_LEN => {
                let bytes = text.len();
                let limit = MAX_CHAT_LEN;
                self.fail_op(Problem::MessageTooLong { bytes, limit });
            }
            Command::Msg { peer, text } => {
                self.op = Some(Op::Msg {
                    peer,
                    text,
                    step,
                    deadline,
                })
            }
            Command::WaitPeer { name, seconds } => {
                self.op = Some(Op::WaitPeer {
                    name,
                    deadline: now + Duration::from_secs_f64(seconds),
                    next_poll: now,
                });
                self.op_tick(now);
            }
            Command::Sleep { seconds } => {
                let until = now + Duration::from_secs_f64(seconds);
                self.op = Some(Op::Sleep { until })
            }
            Command::Resume { file } => self.start_resume(file, now),
            Command::Connect { addr } => self.start_connect(&addr, now),
            Command::Rescan => self.start_rescan(now),
            other => self.run_at_once(other, now),
        }
        self.op_advance(now);
    }

    /// The commands that need nobody else and end at once.
    fn run_at_once(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Shared => self.print_shared(),
            Command::Help { topic } => self.ui.event(&Event::Info(Info::Help { topic })),
            Command::Quit => {
                self.announce_unfinished(true, now);
                self.exit(0)
            }
            Command::Downloads => {
                let (downloads, bad) = self.describe_downloads(now);
                self.ui.event(&Event::Downloads { downloads });
                for warning in bad {
                    self.ui.event(&Event::Warning(warning));
                }
            }
            Command::Cancel { file } if self.is_unfinished_folder(&file) => {
                match self.cancel_folder(&file) {
                    Ok(()) => self.ui.event(&Event::Cancelled { file }),
                    Err(e) => self.fail_op(e.into()),
                }
            }
            Command::Cancel { file } => match self.cancel_download(&file) {
                Ok(()) => self.ui.event(&Event::Cancelled { file }),
                Err(e) => self.fail_op(e.into()),
            },
            Command::Limit { set } => self.limit(set),
            Command::Trust { set } => self.trust(set),
            Command::Forget { name } => self.forget(name),
            other => tracing::error!("{other:?} is no command that ends at once; ignored"),
        }
    }

    /// The command succeeded.
    pub(super) fn finish_op(&mut self) {
        self.op = None;
        self.forget_op_requests();
        self.ui.progress(Progress::Finish);
    }

    /// The command failed: say why; in a batch, stop with status 1. Downloads it started go
    /// on in the background (or stay paused, resumable).
    pub(super) fn fail_op(&mut self, why: Problem) {
        self.fail_op_as(Failure::Failed, why);
    }

    /// The command failed in a way scripts can tell apart: in a batch, the exit status is
    /// `kind`'s (README, "Exit status").
    pub(super) fn fail_op_as(&mut self, kind: Failure, problem: Problem) {
        tracing::debug!("command failed ({kind:?}): {problem:?}");
        self.op = None;
        self.forget_op_requests();
        self.ui.progress(Progress::Finish);
        self.ui.event(&Event::Error { kind, problem });
        if matches!(self.cfg.mode, Mode::Batch { .. }) {
            self.exit(kind.exit_code());
        }
    }

    /// Ctrl-C while a command runs (REPL): the command stops; a download it waits for is
    /// paused with its partial file and record kept (`resume` continues it). False when no
    /// command runs.
    pub(super) fn interrupt_foreground(&mut self, now: Instant) -> bool {
        match &self.op {
            None => false,
            Some(Op::Await { ids }) => {
                for id in ids.clone() {
                    self.pause_interrupted(id, now);
                }
                if self.op.is_some() {
                    self.fail_op_as(Failure::Unfinished, Problem::Interrupted);
                }
                true
            }
            Some(Op::Folder) => {
                self.folder_interrupted(now);
                true
            }
            Some(Op::Rescan { job }) => {
                let job = *job;
                self.cancel_scan(job);
                self.fail_op(Problem::Interrupted);
                true
            }
            Some(_) => {
                self.fail_op(Problem::Interrupted);
                true
            }
        }
    }

    /// Answers to the finished command's requests are dropped when they arrive.
    fn forget_op_requests(&mut self) {
        self.pending
            .retain(|_, p| !matches!(p.purpose, super::node::Purpose::Op));
        self.first_flight_op_ended();
    }

    /// The answer to the command's request.
    pub(super) fn op_answer(&mut self, conn: ConnId, msg: Message, now: Instant) {
        if let Message::Error { message, .. } = &msg
            && !matches!(self.op, Some(Op::Find(_)))
        {
            let peer = self
                .op
                .as_ref()
                .and_then(Op::peer)
                .unwrap_or("")
                .to_string();
            let message = message.clone();
            return self.fail_op(Problem::PeerError { peer, message });
        }
        let Some(op) = self.op.take() else { return };
        match (op, msg) {
            (
                Op::Files {
                    peer, listed: None, ..
                },
                Message::Files { files, .. },
            ) => {
                // Then its folders, on the same connection (PROTOCOL.md §8.5).
                self.request(conn, Purpose::Op, |req| Message::ListFolders { req });
                self.op = Some(Op::Files {
                    peer,
                    step: Step::Asked(conn),
                    deadline: now + STEP_TIMEOUT,
                    listed: Some(files),
                });
            }
            (
                Op::Files {
                    peer,
                    listed: Some(files),
                    ..
                },
                Message::Folders { folders, .. },
            ) => {
                let files = files
                    .into_iter()
                    .map(|f| FileEntry {
                        name: f.name,
                        size: f.size,
                        content_id: f.id.to_string(),
                        sha256: f.sha256.to_string(),
                    })
                    .collect();
                let folders = folders.into_iter().map(FolderListed::from).collect();
                self.ui.event(&Event::Files {
                    peer,
                    files,
                    folders,
                });
            }
            (Op::Msg { peer, .. }, Message::ChatOk { .. }) => {
                self.ui.event(&Event::MessageDelivered { to: peer });
            }
            (Op::Find(find), msg) => {
                self.op = Some(Op::Find(find));
                if let Some(peer) = self.find_peer_on(conn) {
                    match msg {
                        Message::Files { files, .. } => self.find_answer(&peer, Some(files), now),
                        Message::Folders { folders, .. } => {
                            self.find_folders_answer(&peer, folders, now)
                        }
                        _ => self.find_answer(&peer, None, now),
                    }
                }
            }
            (
                op @ Op::Get {
                    step: Step::AskedFolders(_),
                    ..
                },
                Message::Folders { folders, .. },
            ) => self.get_folders_listed(conn, op, folders, now),
            (
                op @ Op::Get {
                    step: Step::FolderPages(..),
                    ..
                },
                msg @ Message::Folder { .. },
            ) => self.get_folder_page(conn, op, msg, now),
            (op @ Op::Get { .. }, Message::Files { files, .. }) => {
                self.get_listed(conn, op, files, now)
            }
            (
                op @ Op::Get {
                    step: Step::AskedManifest(..),
                    ..
                },
                msg @ Message::Manifest { .. },
            ) => self.get_manifest(conn, op, msg, now),
            (op, msg) => {
                let peer = op.peer().unwrap_or("").to_string();
                let message = msg.kind();
                self.fail_op(Problem::Unexpected { peer, message });
            }
        }
    }

    pub(super) fn op_session_ready(&mut self, _conn: ConnId, now: Instant) {
        if matches!(self.op, Some(Op::Find(_))) {
            return self.find_advance(now);
        }
        self.op_advance(now);
    }

    pub(super) fn op_peer_list_arrived(&mut self, now: Instant) {
        match &self.op {
            Some(Op::Peers { .. }) => {
                self.finish_op();
                self.print_peers(now);
            }
            Some(Op::WaitPeer { .. }) => self.op_tick(now),
            Some(Op::Find(_)) => {
                self.find_peer_list_arrived(now);
                self.find_advance(now);
            }
            _ => self.op_advance(now),
        }
    }

    pub(super) fn op_tick(&mut self, now: Instant) {
        let Some(op) = &mut self.op else { return };
        let deadline = op.deadline();
        if let Some(step) = op.step_mut()
            && let Step::Busy { retry_at, wait } = *step
            && now >= retry_at
            && deadline.is_none_or(|d| now < d)
        {
            *step = Step::Reaching { refreshed: true };
            self.busy_wait = Some((wait * 2).min(BUSY_MAX_RETRY));
            return self.op_advance(now);
        }
        match op {
            Op::Sleep { until } if now >= *until => self.finish_op(),
            Op::WaitPeer {
                name,
                deadline,
                next_poll,
            } => {
                let name = name.clone();
                let (deadline, poll_due) = (*deadline, now >= *next_poll);
                if poll_due {
                    *next_poll = now + WAIT_PEER_POLL;
                }
                if self.known.contains_key(&name) || self.ready_session(&name).is_some() {
                    self.ui.event(&Event::PeerKnown { name });
                    self.finish_op();
                } else if now >= deadline {
                    self.fail_op_as(Failure::Unreachable, Problem::DidNotAppear { name });
                } else if poll_due && !self.request_peer_list_naming(Some(&name)) {
                    // No tracker: ask the peers we are connected to instead.
                    self.exchange_refresh(now);
                }
            }
            Op::Await { .. } | Op::Sleep { .. } | Op::Rescan { .. } | Op::Folder => {}
            Op::Find(f) if now >= f.deadline => self.find_timed_out(now),
            other if other.deadline().is_some_and(|d| now >= d) => {
                let peer = other.peer().map(str::to_string);
                self.fail_op_as(Failure::Unreachable, Problem::TimedOut { peer });
            }
            _ => {}
        }
    }

    pub(super) fn op_deadline(&self) -> Option<Instant> {
        match &self.op {
            None | Some(Op::Await { .. }) | Some(Op::Rescan { .. }) | Some(Op::Folder) => None,
            Some(Op::WaitPeer {
                deadline,
                next_poll,
                ..
            }) => Some(*deadline.min(next_poll)),
            Some(op) => match (op.step(), op.deadline()) {
                (Some(Step::Busy { retry_at, .. }), Some(d)) => Some(d.min(*retry_at)),
                (_, deadline) => deadline,
            },
        }
    }

    fn print_shared(&mut self) {
        // Files finished by this run are served too (from downloads/), but they are not in
        // the shared folder and are gone after a restart: listed apart.
        let (files, seeding): (Vec<FileEntry>, Vec<FileEntry>) = {
            let (in_dir, elsewhere): (Vec<_>, Vec<_>) = self
                .index
                .files()
                .iter()
                // A file of a shared tree is shown with its folder, below.
                .filter(|f| !f.name.contains('/'))
                .partition(|f| f.path.parent() == Some(self.cfg.shared_dir.as_path()));
            let entry = |f: &super::index::SharedFile| FileEntry {
                name: f.name.clone(),
                size: f.manifest.size,
                content_id: f.content_id.to_string(),
                sha256: f.manifest.sha256.to_string(),
            };
            (
                in_dir.into_iter().map(entry).collect(),
                elsewhere.into_iter().map(entry).collect(),
            )
        };
        let folders = self
            .index
            .folder_infos()
            .into_iter()
            .map(FolderListed::from)
            .collect();
        let dir = self.cfg.shared_dir.display().to_string();
        self.ui.event(&Event::Shared {
            dir,
            files,
            seeding,
            folders,
        });
        self.note_hashing();
    }
}
