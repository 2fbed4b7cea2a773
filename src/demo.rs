//! `p2p demo`: the whole system in one process, for a newcomer. A tracker and three peers
//! (Alice, Bob, Carol) run on 127.0.0.1, each on its own thread with its own reactor, in a
//! temporary folder. Alice and Bob share the same generated file; Carol finds them through the
//! tracker, lists what Alice shares, downloads the file from both at once (progress bar on a
//! terminal), and sends Alice a message. The demo then checks Carol's copy against the original
//! byte for byte, says what happened, stops everything and removes the folder.

use crate::peer::Event;
use crate::peer::index::SharedIndex;
use crate::peer::{Mode, PeerConfig, PeerNode};
use crate::reactor::{Control, ControlSender, Reactor, Signal};
use crate::repl::screen::{self, Stream};
use crate::repl::text::human_bytes;
use crate::repl::{Ui, UiOptions};
use sha2::{Digest, Sha256};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const FILE: &str = "demo.bin";
const LOOPBACK: &str = "127.0.0.1:0";

/// Runs the demo with a generated file of `size` bytes; returns the exit status (0: Carol's
/// copy was verified).
pub fn run(size: u64) -> io::Result<i32> {
    let result = run_inner(size);
    screen::finish();
    result
}

fn say(text: &str) {
    screen::write_line(Stream::Out, &format!("demo: {text}"));
}

fn run_inner(size: u64) -> io::Result<i32> {
    let dir = tempfile::Builder::new().prefix("p2p-demo-").tempdir()?;
    let root = dir.path().to_path_buf();
    say(&format!(
        "a tracker and three peers (Alice, Bob, Carol) on 127.0.0.1, working in {}",
        root.display()
    ));

    let (content, sha256) = share_the_file(&root, size)?;
    let tracker = start_tracker()?;
    say(&format!("tracker listening on {}", tracker.addr));

    let (alice_events, alice_tap) = mpsc::channel();
    let alice = start_peer(
        &root,
        "Alice",
        tracker.addr,
        Mode::Serve,
        Some(alice_events),
    )?;
    let bob = start_peer(&root, "Bob", tracker.addr, Mode::Serve, None)?;
    let (carol_events, carol_tap) = mpsc::channel();
    let carol_mode = Mode::Batch { then_serve: false };
    let carol = start_peer(&root, "Carol", tracker.addr, carol_mode, Some(carol_events))?;

    let script = [
        "wait-peer Alice 10".to_string(),
        "wait-peer Bob 10".to_string(),
        "peers".to_string(),
        "files Alice".to_string(),
        format!("get {FILE}"),
        "msg Alice thanks for the file!".to_string(),
    ];
    say("Carol runs these commands, as a batch file would:");
    for line in &script {
        say(&format!("  {line}"));
    }
    for line in script {
        carol.control.send(Control::Line(line));
    }
    carol.control.send(Control::EndOfInput);
    let started = Instant::now();
    let carol_status = carol.join();

    for peer in [&alice, &bob] {
        peer.control.send(Control::Shutdown(Signal::Terminate));
    }
    tracker.control.send(Control::Shutdown(Signal::Terminate));
    let _ = alice.join();
    let _ = bob.join();
    let _ = tracker.join();

    let carol_events: Vec<Event> = carol_tap.try_iter().collect();
    let alice_events: Vec<Event> = alice_tap.try_iter().collect();
    let copy = root.join("carol").join("downloads").join(FILE);
    let verified = std::fs::read(&copy).is_ok_and(|bytes| bytes == content);
    let heard = tell_what_happened(&carol_events, &alice_events, verified, &copy, &sha256);
    let elapsed = started.elapsed().as_secs_f64();
    let ok = carol_status == Ok(0) && verified && heard;
    drop(dir);
    say(&format!(
        "stopped the tracker and the peers after {elapsed:.1}s and removed {}",
        root.display()
    ));
    if ok {
        say("all good. Next: README.md, \"Quick start\", runs the same on real machines.");
        Ok(0)
    } else {
        say(&format!(
            "something went wrong (Carol's batch: {carol_status:?})"
        ));
        Ok(1)
    }
}

/// Writes the generated file into Alice's and Bob's shared folders (and a note into Alice's);
/// returns its bytes and SHA-256.
fn share_the_file(root: &Path, size: u64) -> io::Result<(Vec<u8>, String)> {
    let content = generate(size);
    let sha256 = hex::encode(Sha256::digest(&content));
    for peer in ["alice", "bob"] {
        let shared = root.join(peer).join("shared");
        std::fs::create_dir_all(&shared)?;
        std::fs::write(shared.join(FILE), &content)?;
    }
    std::fs::write(
        root.join("alice").join("shared").join("hello.txt"),
        b"Hello from Alice!\n",
    )?;
    say(&format!(
        "Alice and Bob both share {FILE} ({}, sha256 {}...)",
        human_bytes(size),
        &sha256[..16]
    ));
    Ok((content, sha256))
}

/// Says what Carol's and Alice's events show; returns whether Alice heard Carol's message.
fn tell_what_happened(
    carol_events: &[Event],
    alice_events: &[Event],
    verified: bool,
    copy: &Path,
    sha256: &str,
) -> bool {
    say("what happened:");
    let done = carol_events.iter().find_map(|e| match e {
        Event::DownloadDone {
            file,
            seconds,
            bytes_per_source,
            ..
        } if file == FILE => Some((*seconds, bytes_per_source.clone())),
        _ => None,
    });
    match &done {
        Some((seconds, per_source)) => {
            let parts: Vec<String> = per_source
                .iter()
                .map(|(name, bytes)| format!("{} from {name}", human_bytes(*bytes)))
                .collect();
            let from = if parts.is_empty() {
                String::new()
            } else {
                format!(" ({})", parts.join(", "))
            };
            say(&format!(
                "  Carol downloaded {FILE} in {seconds:.2}s{from}: both sources' chunk lists \
                 were checked against its content id, and every chunk against its SHA-256 \
                 before it was written"
            ));
        }
        None => say(&format!("  Carol did not finish downloading {FILE}")),
    }
    if verified {
        say(&format!(
            "  verified: Carol's copy is byte for byte the original (sha256 {sha256})"
        ));
    } else {
        say(&format!(
            "  NOT verified: {} differs from the original",
            copy.display()
        ));
    }
    let heard = alice_events.iter().any(|e| {
        matches!(e, Event::Message { from, text, .. } if from == "Carol" && text.contains("thanks"))
    });
    if heard {
        say(
            "  Alice received Carol's message, and pinned the name Carol to the key Carol's \
             link proved (every link was a Noise XX link: encrypted, both keys proved)",
        );
    } else {
        say("  Alice did not receive Carol's message");
    }
    heard
}

/// A node running on its own thread with its own reactor.
struct Running {
    addr: SocketAddr,
    control: ControlSender,
    thread: JoinHandle<io::Result<i32>>,
}

impl Running {
    fn join(self) -> Result<i32, String> {
        match self.thread.join() {
            Ok(Ok(code)) => Ok(code),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("panicked".into()),
        }
    }
}

/// Starts a thread that sets up a reactor with `setup`, reports its address and control
/// channel, and runs until its node exits.
fn spawn_node<D: crate::reactor::Driver + 'static>(
    label: &str,
    setup: impl FnOnce(&mut Reactor, SocketAddr) -> io::Result<D> + Send + 'static,
) -> io::Result<Running> {
    let (ready_tx, ready_rx) = mpsc::channel::<io::Result<(SocketAddr, ControlSender)>>();
    let thread =
        std::thread::Builder::new()
            .name(label.to_string())
            .spawn(move || -> io::Result<i32> {
                let built = (|| -> io::Result<(Reactor, SocketAddr, D)> {
                    let identity =
                        crate::identity::Identity::generate().map_err(io::Error::other)?;
                    let mut reactor = Reactor::new(std::sync::Arc::new(identity))?;
                    let addr = reactor
                        .listen(LOOPBACK.parse().expect("127.0.0.1:0 is a socket address"))?;
                    let node = setup(&mut reactor, addr)?;
                    Ok((reactor, addr, node))
                })();
                match built {
                    Ok((mut reactor, addr, mut node)) => {
                        let _ = ready_tx.send(Ok((addr, reactor.control_sender())));
                        reactor.run(&mut node)
                    }
                    Err(e) => {
                        let why = io::Error::new(e.kind(), e.to_string());
                        let _ = ready_tx.send(Err(e));
                        Err(why)
                    }
                }
            })?;
    let (addr, control) = ready_rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| io::Error::other(format!("{label} did not start")))??;
    Ok(Running {
        addr,
        control,
        thread,
    })
}

fn start_tracker() -> io::Result<Running> {
    spawn_node("tracker", |_, _| {
        let log = Box::new(|line: &str| tracing::info!(target: "p2p::demo::tracker", "{line}"));
        Ok(crate::tracker::Tracker::new(
            crate::tracker::TrackerConfig::default(),
            log,
        ))
    })
}

fn start_peer(
    root: &Path,
    name: &str,
    tracker: SocketAddr,
    mode: Mode,
    tap: Option<Sender<Event>>,
) -> io::Result<Running> {
    let dir = root.join(name.to_lowercase());
    let (shared, downloads) = (dir.join("shared"), dir.join("downloads"));
    std::fs::create_dir_all(&shared)?;
    std::fs::create_dir_all(&downloads)?;
    let name = name.to_string();
    let is_batch = matches!(mode, Mode::Batch { .. });
    spawn_node(&name.clone(), move |reactor, addr| {
        if is_batch {
            // Ctrl-C stops Carol's batch; the demo then stops the rest and cleans up.
            reactor.catch_signals()?;
        }
        let cache = crate::peer::hash_cache_path(&downloads);
        let (index, _report) = SharedIndex::scan(&shared, &cache)?;
        let mut ui = Ui::with_options(UiOptions {
            prefix: Some(format!("[{name}] ")),
            tap,
            ..UiOptions::default()
        });
        ui.event(&Event::Listening {
            name: name.clone(),
            addr: addr.to_string(),
            id: reactor.peer_id().to_string(),
        });
        let cfg = PeerConfig {
            name,
            tracker,
            tracker_id: None,
            shared_dir: shared,
            downloads_dir: downloads,
            mode,
            retry_for: Duration::from_secs(10),
            bootstrap: Vec::new(),
            lan: None,
            resume_on_start: false,
            rate_limits: Default::default(),
            dht: None,
            port_map: None,
            punch: true,
        };
        let mut node = PeerNode::new(
            cfg,
            reactor.peer_id(),
            index,
            addr.port(),
            ui,
            Instant::now(),
        );
        node.set_parser(crate::repl::parse);
        // Scanned above already; the worker is for `rescan`.
        node.start_hashing(crate::app::hash_worker_for(reactor)?, false, Instant::now());
        node.set_disk_jobs(crate::app::disk_jobs_for(reactor));
        if let Some(checker) = crate::app::chunk_checker_for(reactor)? {
            node.set_chunk_checker(checker);
        }
        Ok(node)
    })
}

/// `size` bytes that look random (xorshift64*), fast enough for hundreds of MiB.
fn generate(size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(size as usize + 8);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while (out.len() as u64) < size {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(size as usize);
    out
}
