//! Swarm downloads: one file from several peers at once, by content (SHA-256) whatever its
//! name, safe against a peer that sends corrupt chunks, and served onward by a peer that is
//! still downloading it. (Three seeders that all contribute and a seeder that dies mid-swarm
//! run in the in-memory harness: src/sim/tests/downloads.rs.)

mod common;

use common::fake_peer::{Behaviour, FakePeer};
use common::*;
use std::fs;
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;
const LONG: Duration = Duration::from_secs(120);

/// From the `saved` line's `(Alice N, Bob M)`, the bytes each source gave.
fn bytes_per_source(out: &BatchOutput) -> Vec<(String, u64)> {
    let line = out
        .stdout_lines()
        .into_iter()
        .find(|l| l.starts_with("saved "))
        .unwrap_or_else(|| panic!("no `saved` line\n{out}"));
    let inside = line
        .split("bytes fetched (")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("no per-source bytes in {line:?}"));
    inside
        .split(", ")
        .map(|part| {
            let (name, n) = part.rsplit_once(' ').expect("`NAME N`");
            (name.to_string(), n.parse().expect("a number"))
        })
        .collect()
}

fn partial_len(dirs: &PeerDirs, name: &str) -> u64 {
    fs::metadata(dirs.downloads.join(format!(".{name}.p2p-part")))
        .map(|m| m.len())
        .unwrap_or(0)
}

// `three_seeders_with_different_names_all_contribute` moved to the in-memory harness
// (src/sim/tests/downloads.rs): which source gives which chunks is the scheduler's logic.

#[test]
fn a_name_meaning_different_files_is_an_error_listing_them() {
    let tracker = Tracker::start();
    let _a = Peer::serve("Alice", tracker.addr, &[("x.txt", b"one")]);
    let _b = Peer::serve("Bob", tracker.addr, &[("x.txt", b"two")]);
    let dave = PeerDirs::new();
    let out = run_batch(
        "Dave",
        tracker.addr,
        &dave,
        "wait-peer Alice 10\nwait-peer Bob 10\nget x.txt\n",
    );
    out.assert_failure();
    assert!(
        out.stderr.contains(&sha256_hex(b"one")) && out.stderr.contains(&sha256_hex(b"two")),
        "the error lists both candidates\n{out}"
    );
    // A SHA-256 prefix picks one.
    let prefix = &sha256_hex(b"two")[..10];
    let out = run_batch("Dave", tracker.addr, &dave, &format!("get {prefix}\n"));
    out.assert_success();
    assert_file_eq(&dave.downloads.join("x.txt"), b"two");
}

#[test]
fn corrupt_seeder_is_banned_and_the_file_completes_from_honest_ones() {
    let content = pseudo_random(64 * MIB, 22);
    let tracker = Tracker::start();
    // The honest source is the same kind of test peer as the corrupt one, so both answer at a
    // similar pace and the corrupt one cannot be outrun before it has sent a few chunks.
    let _alice = FakePeer::start(
        "Alice",
        tracker.addr,
        "f.bin",
        content.clone(),
        Behaviour::Honest,
    );
    let mallory = FakePeer::start(
        "Mallory",
        tracker.addr,
        "f.bin",
        content.clone(),
        Behaviour::CorruptChunks,
    );
    let dave = PeerDirs::new();
    let out = run_batch_timeout(
        "Dave",
        tracker.addr,
        &dave,
        "wait-peer Alice 10\nwait-peer Mallory 10\nget f.bin\n",
        LONG,
    );
    out.assert_success();
    assert_file_eq(&dave.downloads.join("f.bin"), &content);
    assert!(
        mallory.served.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "Mallory was asked for chunks"
    );
    assert!(
        out.stderr.contains("Mallory") && out.stderr.contains("banned"),
        "the ban is reported\n{out}"
    );
    // A source that sent nothing (here: banned) is not listed among those that gave bytes.
    let per = bytes_per_source(&out);
    assert!(!per.iter().any(|(name, _)| name == "Mallory"), "{per:?}");
    assert!(
        per.contains(&("Alice".to_string(), content.len() as u64)),
        "{per:?}"
    );
}

#[test]
fn the_only_source_being_corrupt_gives_up_with_a_clear_error() {
    let content = pseudo_random(4 * MIB, 23);
    let tracker = Tracker::start();
    let _mallory = FakePeer::start(
        "Mallory",
        tracker.addr,
        "f.bin",
        content,
        Behaviour::CorruptChunks,
    );
    let dave = PeerDirs::new();
    let out = run_batch(
        "Dave",
        tracker.addr,
        &dave,
        "wait-peer Mallory 10\nget Mallory f.bin\n",
    );
    // Corrupt data nobody could repair: exit status 3 (README, "Exit status").
    out.assert_failed_with(3);
    assert!(out.stderr.contains("banned"), "{out}");
    assert!(!dave.downloads.join("f.bin").exists());
}

// `a_seeder_killed_mid_swarm_leaves_the_rest_to_finish` moved to the in-memory harness
// (src/sim/tests/downloads.rs): losing a source mid-swarm is the download's logic.

#[test]
fn a_downloader_serves_what_it_has_while_still_downloading() {
    let content = pseudo_random(32 * MIB, 25);
    let tracker = Tracker::start();
    // Slow serves half the chunks, then waits until released.
    let slow = FakePeer::start(
        "Slow",
        tracker.addr,
        "f.bin",
        content.clone(),
        Behaviour::StallAfter(64),
    );
    // Bob downloads from Slow, then serves (batch then serve).
    let bob_dirs = PeerDirs::new();
    let bob_batch = bob_dirs.root().join("get.txt");
    fs::write(&bob_batch, "wait-peer Slow 10\nget Slow f.bin\n").unwrap();
    let cmd = peer_command(
        "Bob",
        tracker.addr,
        &bob_dirs,
        &[
            "--batch",
            bob_batch.to_str().unwrap(),
            "--serve",
            "--retry-for",
            "60",
        ],
    );
    let mut bob = Proc::spawn("Bob --batch --serve", cmd, None);
    let deadline = Instant::now() + LONG;
    while slow.served.load(std::sync::atomic::Ordering::Relaxed) < 64 {
        assert!(
            bob.is_running() && Instant::now() < deadline,
            "{}",
            bob.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    // Carol asks Bob, who has half the file.
    let carol = PeerDirs::new();
    let batch = carol.root().join("get.txt");
    fs::write(&batch, "wait-peer Bob 10\nget Bob f.bin\n").unwrap();
    let cmd = peer_command(
        "Carol",
        tracker.addr,
        &carol,
        &["--batch", batch.to_str().unwrap()],
    );
    let mut run = Proc::spawn("Carol --batch", cmd, None);
    while partial_len(&carol, "f.bin") < 8 * MIB as u64 {
        assert!(
            run.is_running() && Instant::now() < deadline,
            "{}",
            run.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !bob_dirs.downloads.join("f.bin").exists(),
        "Carol got chunks from Bob while Bob was still downloading"
    );

    slow.release();
    let status = run.wait_exit(LONG);
    assert!(status.success(), "{}", run.diagnostics());
    assert_file_eq(&carol.downloads.join("f.bin"), &content);
    assert_file_eq(&bob_dirs.downloads.join("f.bin"), &content);
}
