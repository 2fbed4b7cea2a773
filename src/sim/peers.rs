//! Starting nodes: a peer's folders and how it is started (the CLI's defaults unless
//! changed), trackers, scripted nodes.

use super::{Kind, NodeId, PEER_PORT, Sim, TRACKER_PORT, script};
use crate::peer::disk_jobs::DiskJobs;
use crate::peer::hash_worker::HashWorker;
use crate::peer::index::SharedIndex;
use crate::peer::{Event, Mode, PeerConfig, PeerNode, Recorder};
use crate::reactor::{Control, Driver};
use crate::tracker::{Tracker, TrackerConfig};
use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// A peer's folders: `ROOT/shared` and `ROOT/downloads`, removed when the last clone goes (a
/// restarted peer gets the same folders).
#[derive(Clone)]
pub struct Dirs {
    root: Rc<tempfile::TempDir>,
    pub shared: PathBuf,
    pub downloads: PathBuf,
}

impl Dirs {
    pub fn new() -> Dirs {
        let root = tempfile::tempdir().expect("a temporary folder for a simulated peer");
        let shared = root.path().join("shared");
        let downloads = root.path().join("downloads");
        for dir in [&shared, &downloads] {
            std::fs::create_dir_all(dir).expect("creating a simulated peer's folders");
        }
        Dirs {
            root: Rc::new(root),
            shared,
            downloads,
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn add_shared(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.shared.join(name), bytes).expect("writing a shared file");
    }
}

impl Default for Dirs {
    fn default() -> Self {
        Dirs::new()
    }
}

/// How to start a peer: the CLI's defaults unless changed.
pub struct PeerSpec {
    name: String,
    tracker: Option<SocketAddr>,
    mode: Mode,
    lines: Vec<String>,
    dirs: Option<Dirs>,
    files: Vec<(String, Vec<u8>)>,
    retry_for: Duration,
    bootstrap: Vec<SocketAddr>,
    resume_on_start: Option<bool>,
    at: Option<SocketAddr>,
    lan: Option<std::net::SocketAddrV4>,
    key: Option<crate::identity::PeerId>,
}

impl PeerSpec {
    /// `p2p peer --name NAME --serve` with the sim's tracker.
    pub fn new(name: &str) -> PeerSpec {
        PeerSpec {
            name: name.to_string(),
            tracker: None,
            mode: Mode::Serve,
            lines: Vec::new(),
            dirs: None,
            files: Vec::new(),
            retry_for: Duration::from_secs(60),
            bootstrap: Vec::new(),
            resume_on_start: None,
            at: None,
            lan: None,
            key: None,
        }
    }

    /// Proves this key rather than its state folder's (an impostor: the name of one peer,
    /// a key of its own).
    pub fn key(mut self, key: crate::identity::PeerId) -> PeerSpec {
        self.key = Some(key);
        self
    }

    /// `--batch FILE` holding `commands`: the peer exits when they are done.
    pub fn batch(mut self, commands: &str) -> PeerSpec {
        self.mode = Mode::Batch { then_serve: false };
        self.lines = commands.lines().map(str::to_string).collect();
        self
    }

    /// `--batch FILE --serve`.
    pub fn batch_then_serve(mut self, commands: &str) -> PeerSpec {
        self = self.batch(commands);
        self.mode = Mode::Batch { then_serve: true };
        self
    }

    /// The REPL (lines come with [`Sim::line`]).
    pub fn repl(mut self) -> PeerSpec {
        self.mode = Mode::Repl;
        self
    }

    /// Shares `bytes` as `name` (written into `shared/` before the peer starts).
    pub fn file(mut self, name: &str, bytes: &[u8]) -> PeerSpec {
        self.files.push((name.to_string(), bytes.to_vec()));
        self
    }

    /// These folders instead of new ones (a restart).
    pub fn dirs(mut self, dirs: &Dirs) -> PeerSpec {
        self.dirs = Some(dirs.clone());
        self
    }

    /// `--tracker ADDR`.
    pub fn tracker(mut self, addr: SocketAddr) -> PeerSpec {
        self.tracker = Some(addr);
        self
    }

    /// `--retry-for`.
    pub fn retry_for(mut self, d: Duration) -> PeerSpec {
        self.retry_for = d;
        self
    }

    /// `--peer ADDR`.
    pub fn bootstrap(mut self, addr: SocketAddr) -> PeerSpec {
        self.bootstrap.push(addr);
        self
    }

    /// `--resume-on-start` (default: on unless in a batch, as the CLI).
    pub fn resume_on_start(mut self, on: bool) -> PeerSpec {
        self.resume_on_start = Some(on);
        self
    }

    /// LAN discovery in `group` (`--lan-group`, interface: the peer's address). The sim
    /// carries each datagram sent to a group to every node in it, the sender too (multicast
    /// loops back), from the sender's address.
    pub fn lan(mut self, group: std::net::SocketAddrV4) -> PeerSpec {
        self.lan = Some(group);
        self
    }

    /// Listens at `addr` (default: an address of its own, port [`PEER_PORT`]).
    pub fn at(mut self, addr: SocketAddr) -> PeerSpec {
        self.at = Some(addr);
        self
    }
}

impl Sim {
    /// A tracker; peers started later use it unless told otherwise.
    pub fn add_tracker(&mut self, config: TrackerConfig) -> NodeId {
        let addr = SocketAddr::new(self.fresh_ip(), TRACKER_PORT);
        self.add_tracker_at(addr, config)
    }

    /// A tracker at `addr` (one restarted where a killed one listened).
    pub fn add_tracker_at(&mut self, addr: SocketAddr, config: TrackerConfig) -> NodeId {
        let idle = crate::tracker::effective_limits(&config).idle_timeout;
        let log = Rc::new(RefCell::new(Vec::new()));
        let sink = log.clone();
        let tracker = Tracker::new(
            config,
            Box::new(move |line: &str| sink.borrow_mut().push(line.to_string())),
        );
        let kind = Kind::Tracker {
            tracker: Box::new(tracker),
            log,
        };
        let key = Self::key_for(&format!("tracker at {addr}"));
        let id = self.add("tracker", addr, key, kind, Some(idle));
        self.tracker.get_or_insert(addr);
        id
    }

    /// Any other driver (a scripted impostor), listening at its own address on `port`.
    pub fn add_node(&mut self, name: &str, port: u16, driver: Box<dyn Driver>) -> NodeId {
        let addr = SocketAddr::new(self.fresh_ip(), port);
        let key = Self::key_for(&format!("node {name}"));
        self.add(name, addr, key, Kind::Other(driver), None)
    }

    /// A [`script::FakePeer`] named `name` that registers with the sim's tracker.
    pub fn add_fake_peer(
        &mut self,
        name: &str,
        script: script::FakeScript,
    ) -> (NodeId, script::FakePeer) {
        let tracker = self.tracker.expect("a tracker to register with");
        let (fake, driver) = script::FakePeer::new(name, tracker, PEER_PORT, script, self.now);
        (self.add_node(name, PEER_PORT, driver), fake)
    }

    /// Starts a peer as `p2p peer` would (`app::run`): folders, the `listening` event, the
    /// node with the REPL's parser, its hash worker (start-up scan) and disk jobs on threads,
    /// then its batch lines.
    pub fn add_peer(&mut self, spec: PeerSpec) -> NodeId {
        let dirs = spec.dirs.clone().unwrap_or_default();
        for (name, bytes) in &spec.files {
            dirs.add_shared(name, bytes);
        }
        let addr = spec
            .at
            .unwrap_or_else(|| SocketAddr::new(self.fresh_ip(), PEER_PORT));
        let (cfg, lan_notice) = self.peer_config(&spec, &dirs, addr);
        let id = self.nodes.len();
        let seen = Recorder::new();
        // Its key comes with its state folder, as `identity.key` does.
        let key = spec
            .key
            .unwrap_or_else(|| Self::key_for(&dirs.root().display().to_string()));
        let mut node = PeerNode::new(
            cfg,
            key,
            SharedIndex::default(),
            addr.port(),
            seen.clone(),
            self.now,
        );
        node.set_parser(crate::repl::parse);
        // As app.rs: the pins its state folder holds (a restart keeps them).
        node.set_pins(PeerNode::load_pins(&dirs.downloads).expect("a readable pins file"));
        self.wire_helpers(&mut node, id);
        node.set_listen_ip(addr.ip());
        let kind = Kind::Peer {
            node: Box::new(node),
            seen,
        };
        let limits = crate::reactor::Limits::default();
        let id = self.add(&spec.name, addr, key, kind, Some(limits.idle_timeout));
        self.nodes[id].dirs = Some(dirs);
        self.nodes[id].lan = spec.lan;
        // What app.rs reports before the node runs.
        let at = self.elapsed();
        let listening = Event::Listening {
            name: spec.name.clone(),
            addr: addr.to_string(),
            id: key.to_string(),
        };
        self.nodes[id].events.insert(0, (at, listening));
        if let Some(why) = lan_notice {
            let notice = Event::Notice(crate::peer::event::Notice::LanAnnouncementsOff { why });
            self.nodes[id].events.insert(1, (at, notice));
        }
        self.drain(id);
        for line in spec.lines {
            self.control(id, Control::Line(line));
        }
        if matches!(spec.mode, Mode::Batch { .. }) {
            self.control(id, Control::EndOfInput);
        }
        id
    }

    /// The peer's configuration as `main.rs` and `app.rs` make it, and the notice app.rs
    /// prints when LAN announcements are off.
    fn peer_config(
        &mut self,
        spec: &PeerSpec,
        dirs: &Dirs,
        addr: SocketAddr,
    ) -> (PeerConfig, Option<String>) {
        let tracker = match spec.tracker.or(self.tracker) {
            Some(t) => t,
            None => self.nowhere(),
        };
        // As app.rs: the LAN interface is the listener's, and a listener others cannot reach
        // is never announced (said once).
        let mut lan_notice = None;
        let lan = spec.lan.map(|group| {
            let mut lan = crate::peer::lan::LanConfig {
                group,
                iface: Ipv4Addr::UNSPECIFIED,
                announce: true,
            };
            lan_notice = crate::peer::lan::fit_to_listener(&mut lan, addr);
            lan
        });
        let resume_on_start = spec
            .resume_on_start
            .unwrap_or(!matches!(spec.mode, Mode::Batch { .. }));
        let cfg = PeerConfig {
            name: spec.name.clone(),
            tracker,
            tracker_id: None,
            shared_dir: dirs.shared.clone(),
            downloads_dir: dirs.downloads.clone(),
            mode: spec.mode.clone(),
            retry_for: spec.retry_for,
            bootstrap: spec.bootstrap.clone(),
            lan,
            resume_on_start,
            rate_limits: Default::default(),
            dht: None,
            port_map: None,
            punch: true,
        };
        (cfg, lan_notice)
    }

    /// The hash worker (start-up scan) and disk jobs on threads, as app.rs gives them, with
    /// their wake-ups sent to the harness (node `id`) instead of a reactor's waker. Host-name
    /// lookups stay inline (the node's default): tests dial IP addresses.
    fn wire_helpers(&self, node: &mut PeerNode, id: NodeId) {
        let tx = self.work_tx.clone();
        let worker = HashWorker::spawn(move || {
            let _ = tx.send(id);
        })
        .expect("starting a simulated peer's hash worker");
        node.start_hashing(worker, true, self.now);
        let tx = self.work_tx.clone();
        node.set_disk_jobs(DiskJobs::threads(move || {
            let _ = tx.send(id);
        }));
    }
}
