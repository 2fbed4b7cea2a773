//! The harness itself: a download between two peers through a tracker, and the fake clock.

use super::pseudo_random;
use crate::peer::Event;
use crate::sim::{PeerSpec, Sim};
use crate::tracker::TrackerConfig;
use std::time::Duration;

#[test]
fn a_download_between_two_simulated_peers_takes_no_real_time() {
    let started = std::time::Instant::now();
    let mut sim = Sim::new();
    sim.add_tracker(TrackerConfig::default());
    let content = pseudo_random(3 * 262_144 + 17, 1);
    let alice = sim.add_peer(PeerSpec::new("Alice").file("f.bin", &content));
    sim.wait_event(alice, Duration::from_secs(10), |e| {
        matches!(e, Event::Registered { .. })
    });
    let bob = sim.add_peer(PeerSpec::new("Bob").batch("wait-peer Alice 10\nget Alice f.bin\n"));
    let code = sim.run_to_exit(bob, Duration::from_secs(60));
    assert_eq!(code, 0, "{}", sim.diagnostics(bob));
    let got = std::fs::read(sim.dirs(bob).downloads.join("f.bin")).unwrap();
    assert!(got == content, "the downloaded file differs");
    assert!(
        sim.stdout(bob).iter().any(|l| l.starts_with("saved ")),
        "{}",
        sim.diagnostics(bob)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A batch `sleep 30` costs no real time: the clock jumps to the command's deadline.
#[test]
fn the_clock_jumps_to_the_next_deadline() {
    let started = std::time::Instant::now();
    let mut sim = Sim::new();
    sim.add_tracker(TrackerConfig::default());
    let bob = sim.add_peer(PeerSpec::new("Bob").batch("sleep 30\n"));
    assert_eq!(sim.run_to_exit(bob, Duration::from_secs(60)), 0);
    assert!(
        sim.elapsed() >= Duration::from_secs(30),
        "{:?}",
        sim.elapsed()
    );
    assert!(
        sim.elapsed() < Duration::from_secs(31),
        "{:?}",
        sim.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn is_registered(e: &Event) -> bool {
    matches!(e, Event::Registered { .. })
}

/// A black-holed tracker address: the connect times out after the reactor's 10 s and the peer
/// says it works without a tracker; a refused one fails at once.
#[test]
fn connects_to_a_black_hole_time_out_and_refused_ones_fail_at_once() {
    use crate::sim::Reach;
    for (reach, after) in [
        (Reach::BlackHole, crate::sim::CONNECT_TIMEOUT),
        (Reach::Refused, Duration::ZERO),
    ] {
        let mut sim = Sim::new();
        let tracker = sim.nowhere();
        sim.set_reach(tracker, Some(reach));
        let alice = sim.add_peer(PeerSpec::new("Alice").tracker(tracker));
        let (_, at) = sim.wait_event(alice, Duration::from_secs(30), |e| {
            matches!(e, Event::TrackerUnreachable { .. })
        });
        assert_eq!(at, after, "{reach:?}\n{}", sim.diagnostics(alice));
        assert!(sim.is_running(alice));
    }
}

/// A cut link (a reset) is heard on both sides; a download through it goes on on a new one.
#[test]
fn a_cut_link_is_heard_on_both_sides_and_the_download_goes_on() {
    let mut sim = Sim::new();
    sim.set_latency(Duration::from_millis(1));
    sim.add_tracker(TrackerConfig::default());
    let content = pseudo_random(40 * 262_144, 3);
    let alice = sim.add_peer(PeerSpec::new("Alice").file("f.bin", &content));
    sim.wait_event(alice, Duration::from_secs(10), is_registered);
    let bob = sim.add_peer(PeerSpec::new("Bob").batch("wait-peer Alice 10\nget Alice f.bin\n"));
    let partial = sim.dirs(bob).downloads.join(".f.bin.p2p-part");
    assert!(sim.run_until(Duration::from_secs(30), |_| {
        std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0)
    }));
    let links = sim.links(bob, alice);
    assert_eq!(links.len(), 1, "one connection from Bob to Alice");
    sim.cut(links[0]);
    assert_eq!(
        sim.run_to_exit(bob, Duration::from_secs(60)),
        0,
        "{}",
        sim.diagnostics(bob)
    );
    assert!(super::read(&sim.dirs(bob).downloads.join("f.bin")) == content);
    assert!(
        sim.stderr(bob).iter().any(|l| l.contains("lost Alice")),
        "{}",
        sim.diagnostics(bob)
    );
}

/// A silenced link neither delivers nor closes: the tracker link notices by its own timeout
/// (a heartbeat interval, then 10 s for the answer) and registers again on a new connection.
#[test]
fn a_silenced_link_is_noticed_only_by_the_nodes_own_timeouts() {
    let mut sim = Sim::new();
    let tracker = sim.add_tracker(TrackerConfig {
        peer_ttl: Duration::from_secs(3),
        ..TrackerConfig::default()
    });
    let alice = sim.add_peer(PeerSpec::new("Alice"));
    sim.wait_event(alice, Duration::from_secs(10), is_registered);
    let silenced = sim.elapsed();
    sim.silence_between(alice, tracker);
    let (_, back) = sim.wait_event(alice, Duration::from_secs(30), is_registered);
    let took = back - silenced;
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(13),
        "registered again {took:?} after the link went silent\n{}",
        sim.diagnostics(alice)
    );
}

/// An accepted connection that sends nothing after its `Hello` is closed at the node's idle
/// timeout (60 s for a peer), with the reactor's `Error` frame first. (One that never says
/// `Hello` is the node's business: closed after its 10 s handshake timeout.)
#[test]
fn an_idle_accepted_connection_is_closed_at_the_idle_timeout() {
    use crate::sim::script::{Io, Script, Seen};
    use std::cell::RefCell;
    use std::rc::Rc;
    let mut sim = Sim::new();
    let alice = sim.add_peer(PeerSpec::new("Alice"));
    let seen: Rc<RefCell<Vec<(Duration, String)>>> = Rc::default();
    let log = seen.clone();
    let to = sim.addr(alice);
    let t0 = sim.now();
    let idler = Script::new(move |io: &mut Io, s: Seen| match s {
        Seen::Timeout => {
            io.connect(to);
        }
        Seen::Connected { conn, .. } => io.send(conn, &crate::sim::script::hello("Idler", None)),
        Seen::Message { msg, .. } => log
            .borrow_mut()
            .push((io.now() - t0, msg.kind().to_string())),
        Seen::Closed { .. } => log.borrow_mut().push((io.now() - t0, "closed".into())),
        _ => {}
    })
    .waking_at(sim.now());
    sim.add_node("idler", 4000, Box::new(idler));
    assert!(sim.run_until(Duration::from_secs(120), |_| seen.borrow().len() >= 3));
    let seen = seen.borrow();
    let kinds: Vec<&str> = seen.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(kinds, ["Hello", "Error", "closed"], "{seen:?}");
    assert_eq!(seen[2].0, Duration::from_secs(60), "{seen:?}");
}
