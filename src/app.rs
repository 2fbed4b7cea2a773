//! Wiring a peer to the world: its folders, a reactor with its listener, signals and LAN
//! socket, the hashing thread and disk jobs, the input (line editor, stdin or a batch file)
//! and the front end it reports to (`repl::Ui`, with its parser). The engine (`peer/`) knows
//! none of these; `main.rs` calls [`run_with`].

use crate::peer::chunk_check::ChunkChecker;
use crate::peer::disk_jobs::DiskJobs;
use crate::peer::event::{Notice, Warning};
use crate::peer::hash_worker::HashWorker;
use crate::peer::index::SharedIndex;
use crate::peer::{Event, Mode, PeerConfig, PeerNode, lan};
use crate::reactor::{Control, Reactor};
use crate::repl::{self, Ui, UiOptions};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

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
    repl::screen::finish();
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
    let batch_file = open_folders(&cfg, batch.as_ref())?;
    let path = crate::peer::layout::identity_key_path(&cfg.downloads_dir);
    let (identity, _) = crate::identity::load_or_create(&path)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let id = identity.peer_id();
    // A damaged pins file stops the peer here: starting without it would take the next
    // impostor for a first contact.
    let pins = PeerNode::load_pins(&cfg.downloads_dir)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let identity = std::sync::Arc::new(identity);
    let mut reactor = Reactor::new(std::sync::Arc::clone(&identity))?;
    let bound = reactor
        .listen(listen)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    reactor.catch_signals()?;
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
        id: id.to_string(),
    });
    join_lan(&mut cfg, &mut reactor, bound, &mut ui);

    // The folder must be listable now (a typo in --shared is a start-up error); hashing it
    // happens on the hash worker while the peer already serves.
    std::fs::read_dir(&cfg.shared_dir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot scan {}: {e}", cfg.shared_dir.display()),
        )
    })?;
    let worker = hash_worker_for(&reactor)?;
    spawn_input(&cfg, batch_file, &reactor, &mut ui)?;
    if cfg.mode == Mode::Repl {
        ui.event(&Event::Notice(Notice::TypeHelp));
    }
    let now = Instant::now();
    let dht_options = cfg.dht.clone();
    let port_map = open_port_map(&cfg, &mut reactor, bound, now);
    let upnp = open_upnp(&cfg, &reactor, bound);
    let mut node = PeerNode::new(cfg, id, SharedIndex::default(), bound.port(), ui, now);
    node.set_parser(repl::parse);
    node.set_pins(pins);
    node.start_hashing(worker, true, now);
    node.set_disk_jobs(disk_jobs_for(&reactor));
    if let Some(checker) = chunk_checker_for(&reactor)? {
        node.set_chunk_checker(checker);
    }
    node.set_resolver(resolver_for(&reactor));
    node.set_listen_ip(bound.ip());
    if let Some(options) = dht_options {
        start_dht(&mut node, options, identity, &reactor, bound, now);
    }
    if let Some(link) = upnp {
        node.set_upnp(link);
    }
    // PCP first, then NAT-PMP; UPnP-IGD when they fail (or right away when not asked).
    match port_map {
        Some(Ok(link)) => node.set_port_map(link, now),
        Some(Err(why)) => node.upnp_fallback(Some(why)),
        None => node.upnp_fallback(None),
    }
    reactor.run(&mut node)
}

/// Creates the shared and downloads folders; opens the batch file, if one is named.
fn open_folders(
    cfg: &PeerConfig,
    batch: Option<&BatchSource>,
) -> io::Result<Option<std::fs::File>> {
    for dir in [&cfg.shared_dir, &cfg.downloads_dir] {
        std::fs::create_dir_all(dir).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    match batch {
        Some(BatchSource::File(path)) => Ok(Some(std::fs::File::open(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot read batch file {}: {e}", path.display()),
            )
        })?)),
        _ => Ok(None),
    }
}

/// Joins the LAN multicast group when LAN discovery is on; turns it off (with a word why)
/// when the listener cannot be announced or the group cannot be joined.
fn join_lan(cfg: &mut PeerConfig, reactor: &mut Reactor, bound: SocketAddr, ui: &mut Ui) {
    if let Some(lan) = &mut cfg.lan
        && let Some(why) = lan::fit_to_listener(lan, bound)
    {
        ui.event(&Event::Notice(Notice::LanAnnouncementsOff { why }));
    }
    if let Some(lan) = &cfg.lan {
        let joined = crate::reactor::multicast_socket(lan.group, lan.iface)
            .and_then(|socket| reactor.add_udp(socket));
        if let Err(e) = joined {
            ui.event(&Event::Warning(Warning::LanUnavailable {
                group: lan.group.to_string(),
                iface: lan.iface.to_string(),
                error: e.to_string(),
            }));
            cfg.lan = None;
        }
    }
}

/// The port-mapping client when port mapping is on (`None` when off): the gateway found
/// (`--gateway`, or the default route's) and a UDP socket for it on the reactor, or why not.
fn open_port_map(
    cfg: &PeerConfig,
    reactor: &mut Reactor,
    bound: SocketAddr,
    now: Instant,
) -> Option<Result<crate::peer::port_map_glue::PortMapLink, String>> {
    use crate::peer::{gateway, port_map};
    let config = cfg.port_map.as_ref().filter(|c| c.pcp)?;
    Some((|| {
        let gw = gateway::find_gateway(config.gateway)?;
        mappable(bound, gw)?;
        // From the listener's address, so the router maps the address we listen on.
        let local = SocketAddr::new(bound.ip(), 0);
        let socket = crate::reactor::unicast_socket(local)
            .and_then(|s| reactor.add_udp(s))
            .map_err(|e| format!("cannot open a UDP socket to ask {gw}: {e}"))?;
        // PCP names our address in its requests: the one the gateway sees them come from.
        let client_ip = match crate::reactor::local_ip_towards(local, gw) {
            Ok(std::net::IpAddr::V4(ip)) => ip,
            Ok(other) => return Err(format!("our address towards {gw} is {other}, not IPv4")),
            Err(e) => return Err(format!("no route to the gateway {gw}: {e}")),
        };
        let map = port_map::PortMap::new(gw, bound.port(), client_ip, mapping_nonce(), now);
        Ok(crate::peer::port_map_glue::PortMapLink::new(map, socket))
    })())
}

/// Whether a router at `router` can map a port to the listener at `bound`: it forwards to this
/// host's LAN address, so a listener on loopback only (or on IPv6 only, which we do not map)
/// would never see those connections, unless the router is on this machine too (a test's).
fn mappable(bound: SocketAddr, router: SocketAddr) -> Result<(), String> {
    if !bound.is_ipv4() || (bound.ip().is_loopback() && !router.ip().is_loopback()) {
        return Err(format!("listening on {} only", bound.ip()));
    }
    Ok(())
}

/// The UPnP-IGD fallback when it is on (`None` when off): its state and the `p2p-upnp`
/// thread, whose replies wake `reactor` as `Control::Work`, or why it cannot run.
fn open_upnp(
    cfg: &PeerConfig,
    reactor: &Reactor,
    bound: SocketAddr,
) -> Option<crate::peer::upnp_glue::UpnpLink> {
    use crate::peer::upnp::{SearchConfig, Upnp, UpnpWorker};
    let search = cfg.port_map.as_ref()?.upnp_search?;
    let worker = mappable(bound, search).and_then(|()| {
        let to_loop = reactor.control_sender();
        let config = SearchConfig {
            search,
            bind_ip: bound.ip(),
        };
        UpnpWorker::spawn(config, move || {
            to_loop.send(Control::Work);
        })
        .map_err(|e| format!("cannot start the UPnP thread: {e}"))
    });
    Some(crate::peer::upnp_glue::UpnpLink::new(
        Upnp::new(bound.port()),
        worker,
    ))
}

/// PCP's mapping nonce (RFC 6887 §11.1): 96 bits from the kernel's random source, or, should
/// `/dev/urandom` be unreadable, from the standard library's per-process random keys.
fn mapping_nonce() -> [u8; 12] {
    use std::io::Read;
    let mut nonce = [0u8; 12];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut nonce));
    if read.is_err() {
        use std::hash::BuildHasher;
        let random = |i: u64| std::collections::hash_map::RandomState::new().hash_one(i);
        nonce[..8].copy_from_slice(&random(1).to_le_bytes());
        nonce[8..].copy_from_slice(&random(2).to_le_bytes()[..4]);
    }
    nonce
}

/// Starts the thread that reads commands: the line editor (a REPL on a terminal), a batch
/// file, or stdin. A server reads none. Fails if the system refuses a thread.
fn spawn_input(
    cfg: &PeerConfig,
    batch_file: Option<std::fs::File>,
    reactor: &Reactor,
    ui: &mut Ui,
) -> io::Result<()> {
    let to_loop = reactor.control_sender();
    match (&cfg.mode, batch_file) {
        (Mode::Serve, _) => Ok(()),
        (_, Some(file)) => repl::input::spawn_line_reader(file, to_loop),
        (Mode::Repl, None) if repl::editor::wanted() => {
            match repl::editor::spawn(to_loop.clone(), cfg.downloads_dir.clone()) {
                Some(editor) => {
                    ui.attach_editor(editor);
                    Ok(())
                }
                None => repl::input::spawn_line_reader(io::stdin(), to_loop),
            }
        }
        (Mode::Batch { .. }, None) | (Mode::Repl, None) => {
            repl::input::spawn_line_reader(io::stdin(), to_loop)
        }
    }
}

/// Starts the DHT worker (its replies wake `reactor` as `Control::Work`) and hands it to the
/// node; if the system refuses the thread, the peer runs without the DHT and says so.
fn start_dht(
    node: &mut PeerNode,
    options: crate::peer::dht_worker::DhtOptions,
    identity: std::sync::Arc<crate::identity::Identity>,
    reactor: &Reactor,
    bound: SocketAddr,
    now: Instant,
) {
    let to_loop = reactor.control_sender();
    let bootstrap = options.bootstrap_text();
    let notify = move || {
        to_loop.send(Control::Work);
    };
    match crate::peer::dht_worker::DhtWorker::spawn(options, identity, notify) {
        Ok(worker) => {
            let link = crate::peer::dht_glue::DhtLink::new(worker, bootstrap, bound, now);
            node.set_dht(link, now);
        }
        Err(e) => node.warn(Warning::Dht(format!("cannot start the DHT thread: {e}"))),
    }
}

/// Disk jobs whose results wake `reactor` (as `Control::Work`).
pub fn disk_jobs_for(reactor: &Reactor) -> DiskJobs {
    let to_loop = reactor.control_sender();
    DiskJobs::threads(move || {
        to_loop.send(Control::Work);
    })
}

/// Chunk-checking threads whose results wake `reactor` (as `Control::Work`); none on a
/// machine (or a `taskset`) of one core, where the reactor checks chunks itself.
pub fn chunk_checker_for(reactor: &Reactor) -> io::Result<Option<ChunkChecker>> {
    let threads = crate::peer::chunk_check::threads_here();
    if threads == 0 {
        return Ok(None);
    }
    let to_loop = reactor.control_sender();
    let checker = ChunkChecker::spawn(threads, move || {
        to_loop.send(Control::Work);
    })
    .map_err(|e| io::Error::new(e.kind(), format!("cannot start a checking thread: {e}")))?;
    Ok(Some(checker))
}

/// Host-name lookups whose answers wake `reactor` (as `Control::Work`).
pub fn resolver_for(reactor: &Reactor) -> crate::peer::resolver::Resolver {
    let to_loop = reactor.control_sender();
    crate::peer::resolver::Resolver::threads(move || {
        to_loop.send(Control::Work);
    })
}

/// A hash worker whose reports wake `reactor` (as `Control::Work`).
pub fn hash_worker_for(reactor: &Reactor) -> io::Result<HashWorker> {
    let to_loop = reactor.control_sender();
    HashWorker::spawn(move || {
        to_loop.send(Control::Work);
    })
    .map_err(|e| io::Error::new(e.kind(), format!("cannot start the hashing thread: {e}")))
}
