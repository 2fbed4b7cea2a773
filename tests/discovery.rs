//! Finding peers through the tracker: `peers`, `wait-peer`, names taken and freed, peers that
//! leave or go silent, a tracker that is not there, and clean exits on signals.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// The `peers` rows of a batch run, as (name, addr, last-seen, source, reachable) fields.
fn peer_rows(out: &BatchOutput) -> Vec<Vec<String>> {
    out.stdout_lines()
        .into_iter()
        .map(fields)
        .filter(|f| (6..=7).contains(&f.len()) && f[2].ends_with("s ago"))
        .map(|f| f.into_iter().map(String::from).collect())
        .collect()
}

/// Runs `wait-peer ANCHOR 10` + `peers` as `who` until `done` holds for the rows, for at most
/// `limit`. Returns the last output. (`wait-peer` first, so the list has been fetched.)
fn poll_peers(
    who: &str,
    tracker: &Tracker,
    dirs: &PeerDirs,
    anchor: &str,
    limit: Duration,
    done: impl Fn(&[Vec<String>]) -> bool,
) -> BatchOutput {
    let deadline = Instant::now() + limit;
    loop {
        let out = run_batch(
            who,
            tracker.addr,
            dirs,
            &format!("wait-peer {anchor} 10\npeers\n"),
        );
        out.assert_success();
        if done(&peer_rows(&out)) || Instant::now() >= deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn lists(rows: &[Vec<String>], name: &str) -> bool {
    rows.iter().any(|r| r[0] == name)
}

#[test]
fn peers_lists_the_others_with_their_address_but_not_itself() {
    let tracker = Tracker::start();
    let alice = Peer::serve("Alice", tracker.addr, &[]);
    let carol = Peer::serve("Carol", tracker.addr, &[]);
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nwait-peer Carol 10\npeers\n",
    );
    out.assert_success();
    let rows = peer_rows(&out);
    for peer in [&alice, &carol] {
        let row = rows
            .iter()
            .find(|r| r[0] == peer.name)
            .unwrap_or_else(|| panic!("`peers` does not list {}\n{out}", peer.name));
        assert_eq!(
            row[1],
            peer.addr.to_string(),
            "address of {} (as it printed it when it started)",
            peer.name
        );
        let secs = row[2].trim_end_matches("s ago");
        assert!(
            secs.parse::<f64>().is_ok(),
            "last seen should be `Ns ago`: {row:?}"
        );
    }
    assert!(!lists(&rows, "Bob"), "a peer must not list itself\n{out}");
    assert_eq!(rows.len(), 2, "exactly Alice and Carol\n{out}");
}

#[test]
fn peers_with_nobody_else_says_no_peers_known() {
    let tracker = Tracker::start();
    let bob = PeerDirs::new();
    let out = run_batch("Bob", tracker.addr, &bob, "peers\n");
    out.assert_success();
    assert!(
        out.stdout.contains("no peers known"),
        "expected `no peers known`\n{out}"
    );
    assert!(peer_rows(&out).is_empty(), "{out}");
}

/// A peer whose process dies (SIGKILL: no goodbye, only the closed connection) vanishes from
/// the other peers' lists; the peer that stays is still listed.
#[test]
fn peer_that_exits_disappears_from_peers() {
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[]);
    let mut carol = Peer::serve("Carol", tracker.addr, &[]);
    let bob = PeerDirs::new();

    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nwait-peer Carol 10\npeers\n",
    );
    out.assert_success();
    assert!(
        lists(&peer_rows(&out), "Carol"),
        "Carol listed first\n{out}"
    );

    carol.proc.kill();
    let out = poll_peers(
        "Bob",
        &tracker,
        &bob,
        "Alice",
        Duration::from_secs(10),
        |r| !lists(r, "Carol"),
    );
    let rows = peer_rows(&out);
    assert!(
        !lists(&rows, "Carol"),
        "Carol still listed 10 s after her process died\n{out}"
    );
    assert!(lists(&rows, "Alice"), "Alice should still be listed\n{out}");
}

/// Same with a clean exit: a batch peer that finished is gone from the list.
#[test]
fn batch_peer_that_finished_disappears_from_peers() {
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[]);
    let dave = PeerDirs::new();
    run_batch("Dave", tracker.addr, &dave, "wait-peer Alice 10\n").assert_success();
    let bob = PeerDirs::new();
    let out = poll_peers(
        "Bob",
        &tracker,
        &bob,
        "Alice",
        Duration::from_secs(10),
        |r| !lists(r, "Dave"),
    );
    assert!(
        !lists(&peer_rows(&out), "Dave"),
        "Dave still listed after his batch ended\n{out}"
    );
}

// `taken_name_is_refused_then_freed` moved to the in-memory harness
// (src/sim/tests/tracker_link.rs): the name's retries run there in fake time.

#[test]
fn wait_peer_times_out_for_a_name_never_seen() {
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[]);
    let bob = PeerDirs::new();
    let out = run_batch("Bob", tracker.addr, &bob, "wait-peer Nobody 1\n");
    // A peer that never shows up is unreachable: exit status 4 (README, "Exit status").
    out.assert_failed_with(4);
    assert!(
        out.elapsed >= Duration::from_millis(900),
        "wait-peer Nobody 1 gave up after only {:?}\n{out}",
        out.elapsed
    );
    assert!(
        out.elapsed < Duration::from_secs(20),
        "wait-peer Nobody 1 took {:?}\n{out}",
        out.elapsed
    );
}

#[test]
fn wait_peer_succeeds_for_a_peer_that_arrives_later() {
    let tracker = Tracker::start();
    let bob_dirs = PeerDirs::new();
    let mut bob = Proc::spawn(
        "Bob --batch",
        peer_command("Bob", tracker.addr, &bob_dirs, &["--batch", "-"]),
        Some(b"wait-peer Alice 20\n".to_vec()),
    );
    expect_listening(&mut bob, "Bob");
    let _alice = Peer::serve("Alice", tracker.addr, &[]);
    let status = bob.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", bob.diagnostics());
}

// `silent_peer_expires_after_ttl` moved to the in-memory harness
// (src/sim/tests/discovery.rs), where the frozen peer's TTL runs out in fake time.

/// With no tracker listening, a --serve peer still starts, listens and keeps running. (Its
/// minute of retries runs in the in-memory harness, src/sim/tests/discovery.rs; here, the
/// process and its listener.)
#[test]
fn peer_without_tracker_keeps_serving() {
    let nowhere = unused_addr();
    let dirs = PeerDirs::with_files(&[("a.txt", b"a\n")]);
    let mut alice = Proc::spawn(
        "Alice (no tracker)",
        peer_command("Alice", nowhere, &dirs, &["--serve"]),
        None,
    );
    let addr = expect_listening(&mut alice, "Alice");
    // Give it time to try the tracker and fail; it must still be alive.
    let exited = alice.try_wait_for(Duration::from_millis(500));
    assert!(
        exited.is_none(),
        "Alice exited ({exited:?}) because the tracker is down\n{}",
        alice.diagnostics()
    );
    TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_or_else(|e| {
        panic!(
            "Alice does not accept connections on {addr}: {e}\n{}",
            alice.diagnostics()
        )
    });
    assert!(alice.is_running(), "{}", alice.diagnostics());
}

#[test]
fn tracker_and_serving_peer_exit_zero_on_signals() {
    let mut tracker = Tracker::start();
    let mut alice = Peer::serve("Alice", tracker.addr, &[]);
    let mut carol = Peer::serve("Carol", tracker.addr, &[]);

    alice.proc.signal(libc::SIGINT);
    let status = alice.proc.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "Alice on SIGINT: {status:?}");

    carol.proc.signal(libc::SIGTERM);
    let status = carol.proc.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "Carol on SIGTERM: {status:?}");

    tracker.proc.signal(libc::SIGTERM);
    let status = tracker.proc.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "tracker on SIGTERM: {status:?}");
}
