//! Commands that must fail: exit status 1, `error:` on stderr, and nothing at all left in
//! downloads/ (no partial or hidden files), nor anywhere else a hostile name points to.

mod common;

use std::fs;

use common::*;

/// A tracker, Alice sharing `real.txt`, and a planted `evil` file beside (not inside) Alice's
/// shared/ folder, which a name like `../evil` would reach if it were treated as a path.
struct Setup {
    tracker: Tracker,
    _alice: Peer,
    bob: PeerDirs,
}

fn setup() -> Setup {
    let tracker = Tracker::start();
    let dirs = PeerDirs::with_files(&[("real.txt", b"real content\n")]);
    fs::write(dirs.root().join("evil"), b"outside shared/\n").unwrap();
    fs::write(dirs.root().join("b"), b"outside shared/\n").unwrap();
    let alice = Peer::serve_in("Alice", tracker.addr, dirs, &[]);
    Setup {
        tracker,
        _alice: alice,
        bob: PeerDirs::new(),
    }
}

/// Runs `wait-peer Alice 10` then `command` as Bob and checks the failure and the empty
/// downloads folder.
fn assert_command_fails(command: &str) -> BatchOutput {
    let s = setup();
    let out = run_batch(
        "Bob",
        s.tracker.addr,
        &s.bob,
        &format!("wait-peer Alice 10\n{command}\n"),
    );
    out.assert_failure();
    assert_downloads_exactly(&s.bob, &[]);
    // Nothing escaped into Bob's root either.
    // Nothing escaped into Bob's root either: only shared/, the batch file and (maybe) the
    // empty downloads/ checked above.
    let mut root = list_all(s.bob.root());
    // (downloads/.p2p/ is Bob's own state, e.g. the peers he knows.)
    root.retain(|p| {
        !p.starts_with("batch-") && p != "downloads" && !p.starts_with("downloads/.p2p")
    });
    let expected = vec!["shared".to_string()];
    assert_eq!(
        root,
        expected,
        "`{command}` left something in Bob's folder {}\n{out}",
        s.bob.root().display()
    );
    out
}

#[test]
fn get_missing_file_fails() {
    assert_command_fails("get Alice nope.txt");
}

#[test]
fn get_from_unknown_peer_fails() {
    let out = assert_command_fails("get Nobody real.txt");
    assert!(
        out.stderr.contains("Nobody"),
        "the error should name the unknown peer\n{out}"
    );
}

#[test]
fn unknown_command_fails() {
    let out = assert_command_fails("frobnicate");
    assert!(
        out.stderr.contains("frobnicate"),
        "the error should name the unknown command\n{out}"
    );
}

#[test]
fn hostile_name_parent_dir_fails() {
    assert_command_fails("get Alice ../evil");
}

#[test]
fn hostile_name_absolute_path_fails() {
    assert_command_fails("get Alice /etc/passwd");
}

#[test]
fn hostile_name_dot_dot_in_the_middle_fails() {
    assert_command_fails("get Alice a/../../b");
}

#[test]
fn msg_to_unknown_peer_fails() {
    // An unknown peer cannot be reached: exit status 4 (README, "Exit status").
    let s = setup();
    let out = run_batch(
        "Bob",
        s.tracker.addr,
        &s.bob,
        "wait-peer Alice 10\nmsg Nobody are you there?\n",
    );
    out.assert_failed_with(4);
    assert!(out.error_text().contains("unknown peer"), "{out}");
}

/// The first failure ends the batch: later commands do not run.
#[test]
fn batch_stops_at_first_failure() {
    let s = setup();
    let out = run_batch(
        "Bob",
        s.tracker.addr,
        &s.bob,
        "wait-peer Alice 10\nget Alice nope.txt\nget Alice real.txt\n",
    );
    out.assert_failure();
    assert_downloads_exactly(&s.bob, &[]);
    assert!(
        !out.stdout.lines().any(|l| l.starts_with("saved ")),
        "a command after the failure ran\n{out}"
    );
}
