//! The peer: shares a folder, downloads from other peers, chats, and finds the others through
//! the tracker. `node.rs` is the state machine the reactor drives; `run` wires it to the world.

pub mod chunk_plan;
pub mod content_id;
pub mod disk_jobs;
mod exchange;
pub mod file_hasher;
mod find;
pub mod hash_worker;
mod hashing;
pub mod index;
pub mod lan;
pub mod manifest;
pub mod node;
mod ops;
pub mod partial;
pub mod peer_cache;
pub mod peer_table;
pub mod resume;
mod seeding;
mod sessions;
pub mod state_file;
mod tracker_link;
mod transfer;

pub use node::{Mode, PeerConfig, PeerNode};

use crate::reactor::Reactor;
use crate::repl::{Event, Ui, UiOptions};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the peer keeps its own state (hash cache, later resume records), inside downloads/.
pub fn state_dir(downloads: &Path) -> PathBuf {
    downloads.join(".p2p")
}

pub fn hash_cache_path(downloads: &Path) -> PathBuf {
    state_dir(downloads).join("hash-cache.cbor")
}

/// Removes the temporary files a crash mid-save left in every folder the peer keeps state
/// files in (old ones only; see [`state_file::clean_stale_temps`]).
pub fn clean_crash_leftovers(downloads: &Path) {
    state_file::clean_stale_temps(&state_dir(downloads));
    state_file::clean_stale_temps(&resume::records_dir(downloads));
}

/// Where a batch comes from.
pub enum BatchSource {
    Stdin,
    File(PathBuf),
}

/// Runs a peer until it quits; returns the process exit code.
pub fn run(cfg: PeerConfig, listen: SocketAddr, batch: Option<BatchSource>) -> io::Result<i32> {
    run_with(cfg, listen, batch, UiOptions::default())
}

/// [`run`], printing as `out` says (`--json`, `-q`). A REPL on a terminal gets a line editor.
pub fn run_with(
    cfg: PeerConfig,
    listen: SocketAddr,
    batch: Option<BatchSource>,
    out: UiOptions,
) -> io::Result<i32> {
    let result = run_inner(cfg, listen, batch, out);
    crate::repl::screen::finish();
    result
}

fn run_inner(
    mut cfg: PeerConfig,
    listen: SocketAddr,
    batch: Option<BatchSource>,
    out: UiOptions,
) -> io::Result<i32> {
    let mut ui = Ui::with_options(UiOptions {
        interactive: cfg.mode == Mode::Repl,
        ..out
    });
    for dir in [&cfg.shared_dir, &cfg.downloads_dir] {
        std::fs::create_dir_all(dir).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    let batch_file = match &batch {
        Some(BatchSource::File(path)) => Some(std::fs::File::open(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot read batch file {}: {e}", path.display()),
            )
        })?),
        _ => None,
    };

    let mut reactor = Reactor::new()?;
    let bound = reactor
        .listen(listen)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    reactor.catch_signals()?;
    crate::repl::input::catch_interrupts();
    tracing::debug!(
        "peer {} listening on {bound}; tracker {}, shared {}, downloads {}",
        cfg.name,
        cfg.tracker,
        cfg.shared_dir.display(),
        cfg.downloads_dir.display()
    );
    ui.event(&Event::Listening {
        name: cfg.name.clone(),
        addr: bound.to_string(),
    });
    if let Some(lan) = &mut cfg.lan
        && let Some(why) = crate::peer::lan::fit_to_listener(lan, bound)
    {
        ui.notice(&format!("LAN announcements are off: {why}"));
    }
    if let Some(lan) = &cfg.lan {
        let joined = crate::reactor::multicast_socket(lan.group, lan.iface)
            .and_then(|socket| reactor.add_udp(socket));
        if let Err(e) = joined {
            ui.warn(&format!(
                "LAN discovery is off: cannot join {} on {}: {e}",
                lan.group, lan.iface
            ));
            cfg.lan = None;
        }
    }

    // The folder must be listable now (a typo in --shared is a start-up error); hashing it
    // happens on the hash worker while the peer already serves.
    std::fs::read_dir(&cfg.shared_dir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot scan {}: {e}", cfg.shared_dir.display()),
        )
    })?;
    let worker = hash_worker_for(&reactor)?;

    let to_loop = reactor.control_sender();
    match (&cfg.mode, batch_file) {
        (Mode::Serve, _) => {}
        (_, Some(file)) => crate::repl::input::spawn_line_reader(file, to_loop),
        (Mode::Repl, None) if crate::repl::editor::wanted() => {
            match crate::repl::editor::spawn(to_loop.clone(), cfg.downloads_dir.clone()) {
                Some(editor) => ui.attach_editor(editor),
                None => crate::repl::input::spawn_line_reader(io::stdin(), to_loop),
            }
        }
        (Mode::Batch { .. }, None) | (Mode::Repl, None) => {
            crate::repl::input::spawn_line_reader(io::stdin(), to_loop)
        }
    }
    if cfg.mode == Mode::Repl {
        ui.notice("type help for the commands");
    }
    let now = Instant::now();
    let mut node = PeerNode::new(cfg, index::SharedIndex::default(), bound.port(), ui, now);
    node.start_hashing(worker, true, now);
    node.set_disk_jobs(disk_jobs_for(&reactor));
    node.set_listen_ip(bound.ip());
    reactor.run(&mut node)
}

/// Disk jobs whose results wake `reactor` (as `Control::Work`).
pub fn disk_jobs_for(reactor: &Reactor) -> disk_jobs::DiskJobs {
    let to_loop = reactor.control_sender();
    disk_jobs::DiskJobs::threads(move || {
        to_loop.send(crate::reactor::Control::Work);
    })
}

/// A hash worker whose reports wake `reactor` (as `Control::Work`).
pub fn hash_worker_for(reactor: &Reactor) -> io::Result<hash_worker::HashWorker> {
    let to_loop = reactor.control_sender();
    hash_worker::HashWorker::spawn(move || {
        to_loop.send(crate::reactor::Control::Work);
    })
    .map_err(|e| io::Error::new(e.kind(), format!("cannot start the hashing thread: {e}")))
}
