//! Downloads between two real peers through a real tracker: every file compared byte for byte,
//! the `saved` line checked, and downloads/ left holding only the finished file.

mod common;

use std::fs;
use std::time::Duration;

use common::*;

/// Alice serves `name` holding `content`; Bob runs `get Alice GET_ARG` in a batch.
fn transfer(name: &str, content: &[u8], get_arg: &str, timeout: Duration) {
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[(name, content)]);
    let bob = PeerDirs::new();
    let out = run_batch_timeout(
        "Bob",
        tracker.addr,
        &bob,
        &format!("wait-peer Alice 10\nget Alice {get_arg}\n"),
        timeout,
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join(name), content);
    assert_saved_line(&out, &bob, name, content);
    assert_downloads_exactly(&bob, &[name]);
}

#[test]
fn get_empty_file() {
    transfer("empty.bin", b"", "empty.bin", BATCH_TIMEOUT);
}

#[test]
fn get_one_byte_file() {
    transfer("one.bin", b"\x7f", "one.bin", BATCH_TIMEOUT);
}

#[test]
fn get_exact_multiple_of_chunk_size() {
    let content = pseudo_random(2 * CHUNK, 2);
    transfer("two-chunks.bin", &content, "two-chunks.bin", BATCH_TIMEOUT);
}

#[test]
fn get_size_not_a_multiple_of_chunk_size() {
    let content = pseudo_random(3 * CHUNK + 17, 3);
    transfer("odd.bin", &content, "odd.bin", BATCH_TIMEOUT);
}

#[test]
fn get_name_with_spaces_unquoted() {
    let content = pseudo_random(1000, 4);
    transfer("my notes.txt", &content, "my notes.txt", BATCH_TIMEOUT);
}

#[test]
fn get_name_with_spaces_quoted() {
    let content = pseudo_random(1000, 5);
    transfer("my notes.txt", &content, "\"my notes.txt\"", BATCH_TIMEOUT);
}

#[test]
fn get_64_mib_file() {
    let content = pseudo_random(64 * 1024 * 1024, 64);
    transfer("big.bin", &content, "big.bin", Duration::from_secs(240));
}

/// Several files around the chunk boundary, fetched one after another in one batch.
#[test]
fn get_several_files_in_one_batch() {
    let a = pseudo_random(CHUNK - 1, 10);
    let b = pseudo_random(CHUNK, 11);
    let c = pseudo_random(CHUNK + 1, 12);
    let tracker = Tracker::start();
    let _alice = Peer::serve(
        "Alice",
        tracker.addr,
        &[("a.bin", &a), ("b.bin", &b), ("c.bin", &c)],
    );
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice a.bin\nget Alice b.bin\nget Alice c.bin\n",
    );
    out.assert_success();
    for (name, content) in [("a.bin", &a), ("b.bin", &b), ("c.bin", &c)] {
        assert_file_eq(&bob.downloads.join(name), content);
        assert_saved_line(&out, &bob, name, content);
    }
    assert_downloads_exactly(&bob, &["a.bin", "b.bin", "c.bin"]);
}

/// `files Alice` lists every shared file as `NAME  SIZE  cid1:ID  SHA256HEX`, the size in binary units
/// (exact bytes are in `--json`).
#[test]
fn files_lists_name_size_content_id_and_sha256() {
    let small = b"hello\n".to_vec();
    let empty = Vec::new();
    let odd = pseudo_random(CHUNK + 5, 20);
    let shared: [(&str, &[u8], &str); 3] = [
        ("hello.txt", &small, "6 B"),
        ("empty.bin", &empty, "0 B"),
        ("my notes.txt", &odd, "256.0 KiB"),
    ];
    let tracker = Tracker::start();
    let files: Vec<(&str, &[u8])> = shared.iter().map(|(n, c, _)| (*n, *c)).collect();
    let _alice = Peer::serve("Alice", tracker.addr, &files);
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nfiles Alice\n",
    );
    out.assert_success();

    let listed: Vec<Vec<&str>> = out
        .stdout_lines()
        .into_iter()
        .map(fields)
        .filter(|f| f.len() == 4 && f[3].len() == 64)
        .collect();
    for (name, content, size) in shared {
        let row = listed
            .iter()
            .find(|f| f[0] == name)
            .unwrap_or_else(|| panic!("`files Alice` does not list {name:?}\n{out}"));
        assert_eq!(row[1], size, "size of {name}");
        assert_eq!(row[2], cid(content).to_string(), "content id of {name}");
        assert_eq!(row[3], sha256_hex(content), "sha256 of {name}");
    }
    assert_eq!(
        listed.len(),
        shared.len(),
        "`files Alice` should list exactly the shared files\n{out}"
    );
    // Listing does not download anything.
    assert_downloads_exactly(&bob, &[]);
}

/// Getting the same file twice: the second time it is already there, which is a success.
#[test]
fn get_same_file_twice_says_already_there() {
    let content = pseudo_random(CHUNK + 100, 30);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("twice.bin", &content)]);
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice twice.bin\nget Alice twice.bin\n",
    );
    out.assert_success();
    assert_saved_line(&out, &bob, "twice.bin", &content);
    assert_eq!(
        out.stdout_lines()
            .iter()
            .filter(|l| l.contains("already there"))
            .count(),
        1,
        "the second get should say `already there`\n{out}"
    );
    assert_file_eq(&bob.downloads.join("twice.bin"), &content);
    assert_downloads_exactly(&bob, &["twice.bin"]);

    // A later run (fresh process) finds it too.
    let again = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice twice.bin\n",
    );
    again.assert_success();
    assert!(
        again.stdout.contains("already there"),
        "a new run should say `already there`\n{again}"
    );
    assert_file_eq(&bob.downloads.join("twice.bin"), &content);
    assert_downloads_exactly(&bob, &["twice.bin"]);
}

/// A file with the same content placed in downloads/ by hand is recognised.
#[test]
fn get_when_identical_file_already_in_downloads() {
    let content = pseudo_random(5000, 31);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("same.bin", &content)]);
    let bob = PeerDirs::new();
    bob.put_download("same.bin", &content);
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice same.bin\n",
    );
    out.assert_success();
    assert!(
        out.stdout.contains("already there"),
        "expected `already there`\n{out}"
    );
    assert_file_eq(&bob.downloads.join("same.bin"), &content);
    assert_downloads_exactly(&bob, &["same.bin"]);
}

/// A different file of that name in downloads/ is a conflict: error, existing file untouched.
#[test]
fn get_conflicting_existing_file_fails_and_leaves_it_untouched() {
    let remote = pseudo_random(CHUNK * 2 + 1, 40);
    let local = b"my own precious data, not Alice's\n".to_vec();
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("report.pdf", &remote)]);
    let bob = PeerDirs::new();
    bob.put_download("report.pdf", &local);
    let before = fs::metadata(bob.downloads.join("report.pdf"))
        .unwrap()
        .modified()
        .unwrap();

    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice report.pdf\n",
    );
    out.assert_failure();
    let err = out.error_text();
    assert!(
        err.contains("report.pdf"),
        "the error should name the conflicting file\n{out}"
    );
    assert!(
        ["exist", "conflict", "differ", "already"]
            .iter()
            .any(|w| err.contains(w)),
        "the error should say the file exists with other content\n{out}"
    );
    assert_file_eq(&bob.downloads.join("report.pdf"), &local);
    let after = fs::metadata(bob.downloads.join("report.pdf"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "the existing file was rewritten");
    assert_downloads_exactly(&bob, &["report.pdf"]);
}
