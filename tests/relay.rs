//! Relayed links through `p2p tracker --relay` (PROTOCOL.md §18), with real processes on this
//! machine: a peer nobody can dial (it listens on 127.0.0.2 while the tracker lists it at
//! 127.0.0.1, so every direct dial is refused) is reached through the relay, and what goes
//! through it arrives byte for byte; the relay's rate limit holds; without a relay the same
//! peer stays unreachable (so it is the relay that reaches it).

mod common;

use common::*;
use std::time::{Duration, Instant};

/// A peer serving `files` that listens on 127.0.0.2 only: the tracker lists it at the IP its
/// tracker connection comes from (127.0.0.1), where nothing listens, so no dial reaches it.
fn hidden_peer(name: &str, tracker: std::net::SocketAddr, files: &[(&str, &[u8])]) -> Peer {
    let dirs = PeerDirs::with_files(files);
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["peer", "--name", name, "--serve", "--listen", "127.0.0.2:0"])
        .arg("--tracker")
        .arg(tracker.to_string())
        .arg("--shared")
        .arg(&dirs.shared)
        .arg("--downloads")
        .arg(&dirs.downloads)
        .current_dir(dirs.root());
    let mut proc = Proc::spawn(name, cmd, None);
    let addr = expect_listening(&mut proc, name);
    assert_eq!(addr.ip().to_string(), "127.0.0.2");
    let (mut registered, mut sharing) = (false, false);
    while !(registered && sharing) {
        let line = proc.wait_line("registered and sharing", STARTUP, |l| {
            l.starts_with("registered with tracker") || l.starts_with("sharing ")
        });
        registered |= line.starts_with("registered with tracker");
        sharing |= line.starts_with("sharing ");
    }
    Peer {
        name: name.to_string(),
        addr,
        proc,
        dirs,
    }
}

/// The `peers` rows of a batch's output: fields of lines that start with `name`.
fn peers_row<'a>(stdout: &'a str, name: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .map(fields)
        .find(|f| f.first() == Some(&name) && f.len() >= 5)
        .unwrap_or_default()
}

#[test]
fn a_peer_nobody_can_dial_is_reached_through_the_relay_byte_for_byte() {
    let mut tracker = Tracker::start_with(&["--relay"]);
    let content = pseudo_random(3 * CHUNK + 1234, 18);
    let mut alice = hidden_peer("Alice", tracker.addr, &[("big.bin", &content)]);
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice big.bin\nmsg Alice through the relay\npeers\n",
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("big.bin"), &content);
    assert_saved_line(&out, &bob, "big.bin", &content);
    let row = peers_row(&out.stdout, "Alice");
    assert_eq!(row.get(4), Some(&"relayed"), "{out}");
    alice
        .proc
        .wait_line("Bob's message", Duration::from_secs(10), |l| {
            is_chat(l, "Bob", "through the relay")
        });
    tracker
        .proc
        .wait_line("the relay's session", Duration::from_secs(5), |l| {
            l.starts_with("relaying ")
        });
}

/// The control: the same hidden peer behind a tracker that does not relay cannot be reached,
/// and the failure says so.
#[test]
fn without_a_relay_the_hidden_peer_is_unreachable() {
    let tracker = Tracker::start();
    let _alice = hidden_peer("Alice", tracker.addr, &[("a.txt", b"hello")]);
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice a.txt\n",
    );
    out.assert_failed_with(4);
    assert!(!bob.downloads.join("a.txt").exists());
}

/// `--relay-max-rate` holds each relayed session to its rate: 2 MiB at 512 KB/s takes about
/// 4 s (the first bucket's burst aside), where the unlimited relay takes a fraction of one.
#[test]
fn the_relay_holds_a_session_to_its_rate() {
    let tracker = Tracker::start_with(&["--relay", "--relay-max-rate", "512KB/s"]);
    let content = pseudo_random(8 * CHUNK, 19);
    let _alice = hidden_peer("Alice", tracker.addr, &[("two.bin", &content)]);
    let bob = PeerDirs::new();
    let started = Instant::now();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice two.bin\n",
    );
    let took = started.elapsed();
    out.assert_success();
    assert_file_eq(&bob.downloads.join("two.bin"), &content);
    assert!(
        took >= Duration::from_secs(3),
        "2 MiB in {took:?} at 512 KB/s: {out}"
    );
}
