//! Batch mode and messages: `--batch FILE`, `--batch -`, comments and blank lines, `msg`,
//! `--batch FILE --serve`, `sleep`, the informational commands and CLI usage errors.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn msg_is_printed_by_the_receiver() {
    let tracker = Tracker::start();
    let mut alice = Peer::serve("Alice", tracker.addr, &[]);
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nmsg Alice hello there\n",
    );
    out.assert_success();
    // The batch only succeeds once Alice acknowledged, so the line is (about to be) there.
    let line = alice
        .proc
        .wait_line("`Bob: hello there`", Duration::from_secs(10), |l| {
            is_chat(l, "Bob", "hello there")
        });
    assert!(is_chat(&line, "Bob", "hello there"), "{line}");
}

#[test]
fn several_messages_arrive_in_order() {
    let tracker = Tracker::start();
    let mut alice = Peer::serve("Alice", tracker.addr, &[]);
    let bob = PeerDirs::new();
    run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nmsg Alice one\nmsg Alice two words\nmsg Alice three\n",
    )
    .assert_success();
    for text in ["one", "two words", "three"] {
        alice
            .proc
            .wait_line(&format!("`Bob: {text}`"), Duration::from_secs(10), |l| {
                is_chat(l, "Bob", text)
            });
    }
}

#[test]
fn batch_from_stdin() {
    let content = pseudo_random(CHUNK + 3, 50);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("in.bin", &content)]);
    let bob = PeerDirs::new();
    let out = run_batch_stdin(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice in.bin\n",
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("in.bin"), &content);
    assert_downloads_exactly(&bob, &["in.bin"]);
}

#[test]
fn batch_from_stdin_fails_like_a_file() {
    let tracker = Tracker::start();
    let bob = PeerDirs::new();
    run_batch_stdin("Bob", tracker.addr, &bob, "frobnicate\n").assert_failure();
}

/// Blank lines and `#` lines are skipped (a commented-out failing command does not run).
#[test]
fn comments_and_blank_lines_are_skipped() {
    let content = b"commented\n".to_vec();
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("c.txt", &content)]);
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "# fetch one file\n\nwait-peer Alice 10\n\n\n#frobnicate\n# get Nobody x\nget Alice c.txt\n\n# the end\n",
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("c.txt"), &content);
}

/// A last line without a newline still runs.
#[test]
fn missing_final_newline() {
    let tracker = Tracker::start();
    let mut alice = Peer::serve("Alice", tracker.addr, &[]);
    let bob = PeerDirs::new();
    run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nmsg Alice no newline",
    )
    .assert_success();
    let line = alice
        .proc
        .wait_line("`Bob: no newline`", Duration::from_secs(10), |l| {
            is_chat(l, "Bob", "no newline")
        });
    assert!(is_chat(&line, "Bob", "no newline"), "{line}");
}

#[test]
fn empty_batch_succeeds() {
    let tracker = Tracker::start();
    let bob = PeerDirs::new();
    run_batch("Bob", tracker.addr, &bob, "").assert_success();
    run_batch("Bob", tracker.addr, &bob, "# nothing\n\n").assert_success();
}

#[test]
fn sleep_accepts_fractions_and_waits() {
    let tracker = Tracker::start();
    let bob = PeerDirs::new();
    let out = run_batch("Bob", tracker.addr, &bob, "sleep 0.3\nsleep 0.3\n");
    out.assert_success();
    assert!(
        out.elapsed >= Duration::from_millis(600),
        "two `sleep 0.3` took only {:?}",
        out.elapsed
    );
}

#[test]
fn shared_and_help_succeed() {
    let tracker = Tracker::start();
    let bob = PeerDirs::with_files(&[("mine.txt", b"mine\n")]);
    let out = run_batch("Bob", tracker.addr, &bob, "shared\nhelp\nrescan\n");
    out.assert_success();
    assert!(
        out.stdout.contains("mine.txt"),
        "`shared` should list mine.txt\n{out}"
    );
    for command in ["peers", "files", "get", "msg", "wait-peer", "sleep"] {
        assert!(
            out.stdout.contains(command),
            "`help` should mention {command}\n{out}"
        );
    }
}

/// The startup lines of a peer: `NAME listening on ADDR`, `peer id ID`, then `sharing N files
/// from DIR`.
#[test]
fn startup_lines() {
    let tracker = Tracker::start();
    let bob = PeerDirs::with_files(&[("one", b"1"), ("two", b"22")]);
    let out = run_batch("Bob", tracker.addr, &bob, "");
    out.assert_success();
    let lines = out.stdout_lines();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("Bob listening on 127.0.0.1:")),
        "{out}"
    );
    // Then its peer id: 8 groups of 7 letters (PROTOCOL.md §15.3).
    let id = lines.get(1).and_then(|l| l.strip_prefix("peer id "));
    assert!(
        id.is_some_and(|id| id.len() == 63 && id.split('-').all(|g| g.len() == 7)),
        "{out}"
    );
    assert!(
        lines
            .get(2)
            .is_some_and(|l| l.starts_with("sharing 2 files from")),
        "{out}"
    );
    // Not a terminal: no ANSI escapes anywhere.
    assert!(
        !out.stdout.contains('\x1b') && !out.stderr.contains('\x1b'),
        "escape sequences in non-terminal output\n{out:?}",
        out = out.to_string()
    );
}

/// `--batch FILE --serve`: runs the batch, then keeps serving (here: receives a message).
#[test]
fn batch_then_serve() {
    let content = pseudo_random(CHUNK + 9, 60);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("relay.bin", &content)]);

    let bob_dirs = PeerDirs::new();
    let batch = bob_dirs.root().join("bob-batch.txt");
    std::fs::write(&batch, "wait-peer Alice 10\nget Alice relay.bin\n").unwrap();
    let mut bob = Proc::spawn(
        "Bob --batch --serve",
        peer_command(
            "Bob",
            tracker.addr,
            &bob_dirs,
            &["--batch", batch.to_str().unwrap(), "--serve"],
        ),
        None,
    );
    expect_listening(&mut bob, "Bob");
    bob.wait_line("`saved ...relay.bin...`", BATCH_TIMEOUT, |l| {
        l.starts_with("saved ") && l.contains("relay.bin")
    });
    assert_file_eq(&bob_dirs.downloads.join("relay.bin"), &content);

    // Still serving: messages reach him.
    let carol = PeerDirs::new();
    run_batch(
        "Carol",
        tracker.addr,
        &carol,
        "wait-peer Bob 10\nmsg Bob still there?\n",
    )
    .assert_success();
    bob.wait_line("`Carol: still there?`", Duration::from_secs(10), |l| {
        is_chat(l, "Carol", "still there?")
    });
    assert!(bob.is_running(), "{}", bob.diagnostics());

    bob.signal(libc::SIGTERM);
    let status = bob.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", bob.diagnostics());
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["peer"][..],
        &["peer", "--name"][..],
        &["frobnicate"][..],
        &[][..],
    ] {
        let out = run_p2p(args, Duration::from_secs(10));
        assert_eq!(out.code(), Some(2), "p2p {args:?}\n{out}");
        assert!(
            !out.stderr.is_empty(),
            "usage errors explain themselves\n{out}"
        );
    }
}

#[test]
fn help_flag_exits_0() {
    let out = run_p2p(&["--help"], Duration::from_secs(10));
    out.assert_success();
    assert!(
        out.stdout.contains("tracker") && out.stdout.contains("peer"),
        "{out}"
    );
}
