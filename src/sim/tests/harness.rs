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
