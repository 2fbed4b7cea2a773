//! Messages that say what is wrong and what to do, and output people can read (issue 16, items
//! 8 and 9): each test here failed on the wording or behaviour before.

mod common;

use common::fake_peer::{Behaviour, FakePeer};
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const QUICK: Duration = Duration::from_secs(20);

fn peer_args<'a>(dirs: &'a PeerDirs, tracker: &'a str, extra: &[&'a str]) -> Vec<String> {
    let mut args = vec![
        "peer".to_string(),
        "--name".into(),
        "Bob".into(),
        "--tracker".into(),
        tracker.into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let _ = dirs;
    args
}

fn run(args: &[String]) -> BatchOutput {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_p2p(&args, QUICK)
}

#[test]
fn connect_to_the_tracker_says_it_is_a_tracker() {
    let tracker = Tracker::start();
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        &format!("connect {}\n", tracker.addr),
    );
    out.assert_failed_with(4);
    let err = out.error_text();
    assert!(err.contains("is a tracker, not a peer"), "{out}");
    assert!(!err.contains("peer name is empty"), "{out}");
}

#[test]
fn connect_to_a_closed_port_exits_4() {
    let tracker = Tracker::start();
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        &format!("connect {}\n", unused_addr()),
    );
    out.assert_failed_with(4);
}

#[test]
fn a_file_where_a_folder_should_be_is_named() {
    let dirs = PeerDirs::new();
    let afile = dirs.root().join("afile");
    std::fs::write(&afile, b"x").unwrap();
    let afile = afile.to_str().unwrap();
    let out = run(&peer_args(
        &dirs,
        "127.0.0.1:9",
        &["--downloads", afile, "--batch", "/dev/null"],
    ));
    out.assert_failed_with(1);
    assert!(
        out.stderr
            .contains(&format!("downloads folder {afile} is a file, not a folder")),
        "{out}"
    );
}

#[test]
fn a_shared_folder_whose_parent_is_missing_is_refused_not_created() {
    let dirs = PeerDirs::new();
    let typo = dirs.root().join("Pubic").join("deep");
    let typo_s = typo.to_str().unwrap();
    let dl = dirs.downloads.to_str().unwrap();
    let out = run(&peer_args(
        &dirs,
        "127.0.0.1:9",
        &[
            "--shared",
            typo_s,
            "--downloads",
            dl,
            "--batch",
            "/dev/null",
        ],
    ));
    out.assert_failed_with(1);
    assert!(out.error_text().contains("does not exist"), "{out}");
    assert!(!dirs.root().join("Pubic").exists(), "the typo was created");
    // One level missing is still created, as before.
    let fresh = dirs.root().join("fresh");
    let out = run(&peer_args(
        &dirs,
        "127.0.0.1:9",
        &[
            "--shared",
            fresh.to_str().unwrap(),
            "--downloads",
            dl,
            "--batch",
            "/dev/null",
        ],
    ));
    out.assert_success();
    assert!(fresh.is_dir());
}

#[test]
fn a_tracker_on_a_busy_port_names_the_address() {
    let first = Tracker::start();
    let addr = first.addr.to_string();
    let out = run_p2p(&["tracker", "--listen", &addr], QUICK);
    out.assert_failed_with(1);
    assert!(
        out.error_text()
            .contains(&format!("cannot listen on {addr}")),
        "{out}"
    );
}

#[test]
fn a_tracker_host_name_without_a_port_is_accepted() {
    let dirs = PeerDirs::new();
    let out = run(&peer_args(
        &dirs,
        "localhost",
        &[
            "--shared",
            dirs.shared.to_str().unwrap(),
            "--downloads",
            dirs.downloads.to_str().unwrap(),
            "--batch",
            "/dev/null",
        ],
    ));
    assert!(!out.stderr.contains("invalid tracker"), "{out}");
    out.assert_success();
}

#[test]
fn an_unknown_peer_in_the_wrong_case_gets_a_did_you_mean() {
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("a.txt", b"a")]);
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nfiles alice\n",
    );
    out.assert_failed_with(4);
    assert!(out.error_text().contains("did you mean alice?"), "{out}");
    assert!(out.stderr.contains("did you mean Alice?"), "{out}");
}

#[test]
fn help_command_shows_that_commands_help() {
    let tracker = Tracker::start();
    let bob = PeerDirs::new();
    let out = run_batch("Bob", tracker.addr, &bob, "help get\n");
    out.assert_success();
    assert!(out.stdout.contains("usage: get [PEER] FILE"), "{out}");
}

#[test]
fn ctrl_c_in_a_batch_says_how_far_and_how_to_resume() {
    let tracker = Tracker::start();
    let content = pseudo_random(8 * CHUNK, 31);
    let stally = FakePeer::start(
        "Stally",
        tracker.addr,
        "big.bin",
        content,
        Behaviour::StallAfter(2),
    );
    let dirs = PeerDirs::new();
    let batch = dirs.root().join("b.txt");
    std::fs::write(&batch, "wait-peer Stally 10\nget Stally big.bin\n").unwrap();
    let cmd = peer_command(
        "Bob",
        tracker.addr,
        &dirs,
        &["--batch", batch.to_str().unwrap()],
    );
    let mut proc = Proc::spawn("Bob", cmd, None);
    let deadline = Instant::now() + STARTUP;
    while stally.served.load(std::sync::atomic::Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    proc.signal(libc::SIGINT);
    let status = proc.wait_exit(EXIT_TIMEOUT);
    let err = proc.stderr_text();
    assert_eq!(status.code(), Some(5), "{err}");
    assert!(
        err.contains("interrupted: big.bin paused at 25.0%") && err.contains("resume big.bin"),
        "{err}"
    );
}

/// A 9-byte file and a `.gitkeep`: `sharing 1 file`, no rate for instant hashing, no
/// `skipped .gitkeep`.
#[test]
fn start_up_lines_read_well_for_a_tiny_folder() {
    let tracker = Tracker::start();
    let dirs = PeerDirs::with_files(&[("nine.txt", b"123456789"), (".gitkeep", b"")]);
    let out = run_batch("Bob", tracker.addr, &dirs, "shared\n");
    out.assert_success();
    let sharing = out
        .stdout_lines()
        .into_iter()
        .find(|l| l.starts_with("sharing "))
        .unwrap_or_else(|| panic!("no sharing line\n{out}"));
    assert!(sharing.starts_with("sharing 1 file from "), "{sharing}");
    assert!(!sharing.contains(" at "), "a rate for 9 bytes: {sharing}");
    assert!(!out.stdout.contains(".gitkeep"), "{out}");
    assert!(!out.stderr.contains(".gitkeep"), "{out}");
    assert!(
        out.stdout.contains(&format!(
            "nine.txt  9 B  {}  {}",
            cid(b"123456789"),
            sha256_hex(b"123456789")
        )),
        "{out}"
    );
}

/// The summary: sizes in binary units, the rate in MiB/s (or none), what was verified (the
/// content id, shortened: the full one stays in `--json`; no SHA-256, which was not computed);
/// `shared` lists the shared folder, and what was only downloaded apart.
#[test]
fn the_saved_line_and_shared_after_a_download() {
    let tracker = Tracker::start();
    let content = pseudo_random(2 * CHUNK + 3, 41);
    let alice = Peer::serve("Alice", tracker.addr, &[("d.bin", &content)]);
    let bob = PeerDirs::with_files(&[("mine.txt", b"mine")]);
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice d.bin\nshared\n",
    );
    out.assert_success();
    let id = cid(&content).to_hex();
    let saved = out
        .stdout_lines()
        .into_iter()
        .find(|l| l.starts_with("saved "))
        .unwrap_or_else(|| panic!("no saved line\n{out}"));
    assert!(
        saved.ends_with(&format!("verified cid1:{}", &id[..16])) && !saved.contains(&id),
        "{saved}"
    );
    assert!(!saved.contains("sha256"), "{saved}");
    assert!(!saved.contains("MB/s"), "{saved}");
    let lines = out.stdout_lines();
    let at = lines
        .iter()
        .position(|l| l.starts_with("also seeding 1 file downloaded here"))
        .unwrap_or_else(|| panic!("downloaded file not listed apart\n{out}"));
    assert!(
        lines[at + 1].trim_start().starts_with("d.bin  512.0 KiB  "),
        "{out}"
    );
    assert!(
        lines[..at].iter().any(|l| l.starts_with("mine.txt  4 B  ")),
        "{out}"
    );
    assert!(!lines[..at].iter().any(|l| l.starts_with("d.bin")), "{out}");
    drop(alice);
}

/// `connect` and the typed events around a download come out as their own JSON types, not as
/// `info`.
#[test]
fn connect_reports_a_typed_connected_event() {
    let tracker = Tracker::start();
    let alice = Peer::serve("Alice", tracker.addr, &[("a.txt", b"a")]);
    let bob = PeerDirs::new();
    let batch = bob.root().join("b.txt");
    std::fs::write(&batch, format!("connect {}\n", alice.addr)).unwrap();
    let cmd = peer_command(
        "Bob",
        tracker.addr,
        &bob,
        &["--json", "--batch", batch.to_str().unwrap()],
    );
    let mut proc = Proc::spawn("Bob", cmd, None);
    assert_eq!(proc.wait_exit(BATCH_TIMEOUT).code(), Some(0));
    let lines = proc.collect_stdout(Duration::from_secs(5));
    let connected: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "connected")
        .collect();
    assert_eq!(connected.len(), 1, "{lines:?}");
    assert_eq!(connected[0]["name"], "Alice");
    assert_eq!(connected[0]["addr"], alice.addr.to_string());
}
