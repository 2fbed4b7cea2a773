//! Finding peers with and without the tracker: a tracker that dies mid-download or restarts
//! empty, a newcomer that knows one address (peer exchange), a peer that goes silent and
//! expires, a peer whose tracker is not there, and addresses that go stale when a peer restarts
//! on another port, a registered peer kept over many short idle timeouts. Moved from
//! `tests/fallback.rs`, `tests/discovery.rs`, `tests/addresses.rs` and
//! `tests/hardening_limits.rs`; each test says where it came from.

use super::{peer_rows, pseudo_random, read, row};
use crate::peer::Event;
use crate::reactor::Signal;
use crate::sim::script::{Io, Script, Seen, hello};
use crate::sim::{NodeId, PEER_PORT, PeerSpec, Sim};
use crate::tracker::TrackerConfig;
use crate::wire::Message;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

const CHUNK: usize = 262_144;

fn is_registered(e: &Event) -> bool {
    matches!(e, Event::Registered { .. })
}

fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().map(|l| l.matches(needle).count()).sum()
}

/// Everything `node` printed, for a failure message.
fn printed(sim: &Sim, node: NodeId) -> String {
    sim.diagnostics(node)
}

/// From `tests/fallback.rs`. The tracker dies (SIGKILL) while a download runs: the download
/// completes with the right bytes, the message after it is delivered, and the downloader says
/// once that it works without a tracker.
#[test]
fn tracker_killed_mid_download_download_completes_and_messages_flow() {
    let mut sim = Sim::new();
    // Frames take a moment, so the download takes fake time and the kill lands inside it.
    sim.set_latency(Duration::from_millis(1));
    let tracker = sim.add_tracker(TrackerConfig::default());
    let big = pseudo_random(40 * CHUNK + 5, 41);
    let alice = sim.add_peer(PeerSpec::new("Alice").file("big.bin", &big));
    sim.wait_event(alice, Duration::from_secs(10), is_registered);
    let bob = sim
        .add_peer(PeerSpec::new("Bob").batch(
            "wait-peer Alice 10\nget Alice big.bin\nmsg Alice got it without the tracker\n",
        ));
    let dirs = sim.dirs(bob);
    let partial = dirs.downloads.join(".big.bin.p2p-part");
    assert!(
        sim.run_until(Duration::from_secs(60), |_| {
            std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0)
        }),
        "the download never started\n{}",
        printed(&sim, bob)
    );
    sim.kill(tracker);
    assert!(
        !dirs.downloads.join("big.bin").exists(),
        "the download finished before the tracker died: the test proves nothing"
    );

    assert_eq!(
        sim.run_to_exit(bob, Duration::from_secs(180)),
        0,
        "{}",
        printed(&sim, bob)
    );
    assert!(
        read(&dirs.downloads.join("big.bin")) == big,
        "big.bin differs"
    );
    let stdout = sim.stdout(bob);
    assert!(
        stdout
            .iter()
            .any(|l| l.contains("message delivered to Alice")),
        "{}",
        printed(&sim, bob)
    );
    sim.wait_line(alice, Duration::from_secs(10), |l| {
        // First contact: the name is shown with its key's short id.
        l.starts_with("Bob [new, ") && l.ends_with("]: got it without the tracker")
    });
    assert_eq!(
        count(&sim.stderr(bob), "working without a tracker"),
        1,
        "said once\n{}",
        printed(&sim, bob)
    );
}

/// From `tests/fallback.rs`. With the tracker dead, Dave knows one address (Alice's): peer
/// exchange with Alice tells him about Carol, whom he then downloads from and messages.
/// `peers` says where each came from.
#[test]
fn newcomer_with_one_peer_address_finds_a_third_peer_through_exchange() {
    let mut sim = Sim::new();
    let tracker = sim.add_tracker(TrackerConfig::default());
    let alice = sim.add_peer(PeerSpec::new("Alice").file("a.txt", b"from Alice\n"));
    sim.wait_event(alice, Duration::from_secs(10), is_registered);
    // Carol registers after Alice, and is sure to have the tracker's list (Alice in it) before
    // the tracker goes: her batch waits for Alice, then she serves.
    let carol_file = pseudo_random(3 * CHUNK + 17, 7);
    let carol = sim.add_peer(
        PeerSpec::new("Carol")
            .file("carol.bin", &carol_file)
            .batch_then_serve("wait-peer Alice 10\n"),
    );
    sim.wait_line(carol, Duration::from_secs(30), |l| {
        l.starts_with("batch finished")
    });
    sim.kill(tracker);

    let alice_addr = sim.addr(alice).to_string();
    let dave = sim.add_peer(
        PeerSpec::new("Dave")
            .batch("wait-peer Carol 20\nget Carol carol.bin\nmsg Carol hello from Dave\npeers\n")
            .bootstrap(sim.addr(alice)),
    );
    let code = sim.run_to_exit(dave, Duration::from_secs(90));
    let out = printed(&sim, dave);
    assert_eq!(code, 0, "Dave's batch failed\n{out}");
    let stdout = sim.stdout(dave);
    assert!(
        stdout
            .iter()
            .any(|l| l.contains(&format!("connected to Alice at {alice_addr}"))),
        "{out}"
    );
    assert!(read(&sim.dirs(dave).downloads.join("carol.bin")) == carol_file);
    sim.wait_line(carol, Duration::from_secs(10), |l| {
        l.starts_with("Dave [new, ") && l.ends_with("]: hello from Dave")
    });
    let rows = peer_rows(&stdout);
    let a = row(&rows, "Alice", &out);
    assert_eq!(
        (a[1].as_str(), a[3].as_str(), a[4].as_str()),
        (alice_addr.as_str(), "manual", "reachable"),
        "{out}"
    );
    let c = row(&rows, "Carol", &out);
    assert_eq!(
        (c[1].as_str(), c[3].as_str(), c[4].as_str()),
        (
            sim.addr(carol).to_string().as_str(),
            "exchange",
            "reachable"
        ),
        "{out}"
    );
    assert_eq!(
        count(&sim.stderr(dave), "working without a tracker"),
        1,
        "{out}"
    );
}

/// From `tests/fallback.rs`. A tracker restarted empty on the same address has every live peer
/// listed again within a bounded time, without anything done on the peers' side.
#[test]
fn tracker_restarted_on_the_same_address_is_full_again() {
    let mut sim = Sim::new();
    let config = TrackerConfig {
        peer_ttl: Duration::from_secs(3),
        ..TrackerConfig::default()
    };
    let first = sim.add_tracker(config.clone());
    let addr = sim.addr(first);
    let alice = sim.add_peer(PeerSpec::new("Alice"));
    let carol = sim.add_peer(PeerSpec::new("Carol"));
    for peer in [alice, carol] {
        sim.wait_event(peer, Duration::from_secs(10), is_registered);
    }

    sim.kill(first);
    sim.run_for(Duration::from_millis(1500));
    sim.add_tracker_at(addr, config);
    let restarted = sim.elapsed();
    // ttl 3 s: peers heartbeat every second and never wait longer than that between retries.
    for peer in [alice, carol] {
        sim.wait_line(peer, Duration::from_secs(10), |l| {
            l.starts_with("re-registered with tracker")
        });
    }
    let took = sim.elapsed() - restarted;
    assert!(
        took < Duration::from_secs(5),
        "peers took {took:?} to come back (heartbeat interval 1 s)"
    );
    let bob =
        sim.add_peer(PeerSpec::new("Bob").batch("wait-peer Alice 5\nwait-peer Carol 5\npeers\n"));
    assert_eq!(
        sim.run_to_exit(bob, Duration::from_secs(30)),
        0,
        "{}",
        printed(&sim, bob)
    );
    let out = printed(&sim, bob);
    let rows = peer_rows(&sim.stdout(bob));
    for (peer, name) in [(alice, "Alice"), (carol, "Carol")] {
        let r = row(&rows, name, &out);
        assert_eq!(r[1], sim.addr(peer).to_string(), "{out}");
        assert_eq!(r[3], "tracker", "{out}");
    }
}

/// From `tests/hardening_limits.rs` (`registered_peers_survive_a_short_idle_timeout`, which
/// slept 4 s): with the tracker's shortest settings (TTL 1 s, so an idle timeout of 1 s), a
/// registered peer is never dropped as idle, because its heartbeats (every TTL/3) are complete
/// frames; here over 30 s, thirty idle timeouts. The tracker never logs her leaving or
/// expiring, she registered once, and a newcomer finds her.
#[test]
fn registered_peers_survive_a_short_idle_timeout() {
    let mut sim = Sim::new();
    let tracker = sim.add_tracker(TrackerConfig {
        peer_ttl: Duration::from_secs(1),
        limits: crate::reactor::Limits {
            idle_timeout: Duration::from_secs(1),
            ..crate::reactor::Limits::default()
        },
        ..TrackerConfig::default()
    });
    let alice = sim.add_peer(PeerSpec::new("Alice"));
    sim.run_for(Duration::from_secs(30));
    let log: Vec<&str> = sim
        .tracker_log(tracker)
        .iter()
        .map(|(_, l)| l.as_str())
        .collect();
    let about_alice = |what: &str| {
        log.iter()
            .filter(|l| l.starts_with(&format!("Alice {what}")))
            .count()
    };
    assert_eq!(about_alice("left"), 0, "{log:#?}");
    assert_eq!(about_alice("expired"), 0, "{log:#?}");
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("registered Alice at"))
            .count(),
        1,
        "{log:#?}"
    );
    assert!(sim.is_running(alice), "{}", printed(&sim, alice));
    let bob = sim.add_peer(PeerSpec::new("Bob").batch("wait-peer Alice 2\npeers\n"));
    assert_eq!(
        sim.run_to_exit(bob, Duration::from_secs(10)),
        0,
        "{}",
        printed(&sim, bob)
    );
    let rows = peer_rows(&sim.stdout(bob));
    assert!(
        rows.iter().any(|r| r[0] == "Alice"),
        "Alice was dropped by the tracker\n{}",
        printed(&sim, bob)
    );
}

/// From `tests/discovery.rs`. A peer that stops heartbeating (SIGSTOP keeps its connection
/// open) expires after the tracker's TTL, while a live one stays.
#[test]
fn silent_peer_expires_after_ttl() {
    let mut sim = Sim::new();
    sim.add_tracker(TrackerConfig {
        peer_ttl: Duration::from_secs(3),
        ..TrackerConfig::default()
    });
    sim.add_peer(PeerSpec::new("Alice"));
    let carol = sim.add_peer(PeerSpec::new("Carol"));
    let bob_dirs = crate::sim::Dirs::new();
    let bob = sim.add_peer(
        PeerSpec::new("Bob")
            .dirs(&bob_dirs)
            .batch("wait-peer Carol 10\n"),
    );
    assert_eq!(sim.run_to_exit(bob, Duration::from_secs(30)), 0);

    sim.freeze(carol);
    let stopped = sim.elapsed();
    // `wait-peer Alice 10` + `peers` until Carol is gone, for at most 15 s (as the process
    // test polled, every 200 ms).
    let lists = |rows: &[Vec<String>], name: &str| rows.iter().any(|r| r[0] == name);
    let (rows, out) = loop {
        let bob = sim.add_peer(
            PeerSpec::new("Bob")
                .dirs(&bob_dirs)
                .batch("wait-peer Alice 10\npeers\n"),
        );
        assert_eq!(sim.run_to_exit(bob, Duration::from_secs(30)), 0);
        let rows = peer_rows(&sim.stdout(bob));
        if !lists(&rows, "Carol") || sim.elapsed() - stopped >= Duration::from_secs(15) {
            break (rows, printed(&sim, bob));
        }
        sim.run_for(Duration::from_millis(200));
    };
    sim.thaw(carol);
    assert!(
        !lists(&rows, "Carol"),
        "a stopped Carol still listed 15 s after it stopped (ttl 3 s)\n{out}"
    );
    assert!(lists(&rows, "Alice"), "Alice heartbeats and stays\n{out}");
    // The TTL, not the poll's limit, made her go: gone within ttl + a heartbeat interval.
    assert!(
        sim.elapsed() - stopped < Duration::from_secs(5),
        "{:?}",
        sim.elapsed() - stopped
    );
}

/// From `tests/discovery.rs`: its waiting part (the process test keeps the listener). With no
/// tracker listening, a serving peer keeps running for a minute of retries, and answers a
/// peer's `Hello` meanwhile.
#[test]
fn peer_without_tracker_keeps_serving() {
    let mut sim = Sim::new();
    let alice = sim.add_peer(PeerSpec::new("Alice").file("a.txt", b"a\n"));
    sim.run_for(Duration::from_secs(60));
    assert!(sim.is_running(alice), "{}", printed(&sim, alice));
    let greeted = Rc::new(RefCell::new(false));
    let flag = greeted.clone();
    let to = sim.addr(alice);
    let visitor = Script::new(move |io: &mut Io, seen: Seen| match seen {
        Seen::Timeout => {
            io.connect(to);
        }
        Seen::Connected { conn, .. } => io.send(conn, &hello("Visitor", None)),
        Seen::Message {
            msg: Message::Hello { name, .. },
            ..
        } => *flag.borrow_mut() = name == "Alice",
        _ => {}
    })
    .waking_at(sim.now());
    sim.add_node("visitor", PEER_PORT, Box::new(visitor));
    assert!(
        sim.run_until(Duration::from_secs(5), |_| *greeted.borrow()),
        "Alice does not answer a Hello\n{}",
        printed(&sim, alice)
    );
    assert!(sim.is_running(alice));
    sim.signal(alice, Signal::Terminate);
    assert_eq!(sim.run_to_exit(alice, Duration::from_secs(10)), 0);
}

/// Kills `eve` and starts her again with the same folders on another port of her host;
/// waits until she is registered. Returns the new node.
fn restart_on_new_port(sim: &mut Sim, eve: NodeId) -> NodeId {
    let old = sim.addr(eve);
    let dirs = sim.dirs(eve);
    sim.kill(eve);
    let at = SocketAddr::new(old.ip(), old.port() + 1);
    let again = sim.add_peer(PeerSpec::new("Eve").dirs(&dirs).at(at));
    sim.wait_event(again, Duration::from_secs(30), is_registered);
    again
}

/// From `tests/addresses.rs`. A peer known from the tracker is found again after a restart on
/// another port: the command asks the tracker again when the old address refuses.
#[test]
fn a_peer_known_from_the_tracker_is_found_again_after_a_restart_on_another_port() {
    let mut sim = Sim::new();
    sim.add_tracker(TrackerConfig::default());
    let eve = sim.add_peer(PeerSpec::new("Eve").file("notes.txt", b"eve's notes"));
    sim.wait_event(eve, Duration::from_secs(10), is_registered);
    // The sleep leaves time to restart Eve; Bob does not ask the tracker meanwhile, so his
    // second `files` starts from the old address.
    let bob = sim
        .add_peer(PeerSpec::new("Bob").batch("wait-peer Eve 10\nfiles Eve\nsleep 4\nfiles Eve\n"));
    sim.wait_line(bob, Duration::from_secs(20), |l| l.contains("notes.txt"));
    restart_on_new_port(&mut sim, eve);
    assert_eq!(
        sim.run_to_exit(bob, Duration::from_secs(30)),
        0,
        "{}",
        printed(&sim, bob)
    );
    let listed = sim
        .stdout(bob)
        .iter()
        .filter(|l| l.contains("notes.txt"))
        .count();
    assert_eq!(listed, 2, "{}", printed(&sim, bob));
}

/// From `tests/addresses.rs`. `connect ADDR` makes Eve a manual entry, which outranks the
/// tracker's news: after her restart, the old address refuses and the command moves on to the
/// new one instead of failing.
#[test]
fn a_stale_manual_address_gives_way_to_the_new_one() {
    let mut sim = Sim::new();
    sim.add_tracker(TrackerConfig::default());
    let eve = sim.add_peer(PeerSpec::new("Eve").file("notes.txt", b"eve's notes"));
    sim.wait_event(eve, Duration::from_secs(10), is_registered);
    let bob = sim.add_peer(PeerSpec::new("Bob").batch(&format!(
        "connect {}\npeers\nsleep 4\nfiles Eve\n",
        sim.addr(eve)
    )));
    sim.wait_line(bob, Duration::from_secs(20), |l| {
        l.starts_with("Eve ") && l.contains("manual")
    });
    restart_on_new_port(&mut sim, eve);
    assert_eq!(
        sim.run_to_exit(bob, Duration::from_secs(30)),
        0,
        "{}",
        printed(&sim, bob)
    );
    assert!(
        sim.stdout(bob).iter().any(|l| l.contains("notes.txt")),
        "{}",
        printed(&sim, bob)
    );
}
