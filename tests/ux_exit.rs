//! Exit statuses a script can tell apart (README, "Exit status"): 3 a download failed
//! verification and nobody could repair it, 4 a peer or the tracker could not be reached,
//! 5 a download was left unfinished (resumable). 0/1/2 are covered by batch.rs, failures.rs and
//! ux_cli.rs.

mod common;

use common::fake_peer::{Behaviour, FakePeer};
use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

/// Runs a batch with extra flags; returns the output once it exits.
fn batch_with(
    name: &str,
    tracker: std::net::SocketAddr,
    dirs: &PeerDirs,
    flags: &[&str],
    commands: &str,
) -> Proc {
    let mut file = tempfile::Builder::new()
        .prefix("batch-")
        .tempfile_in(dirs.root())
        .unwrap();
    file.write_all(commands.as_bytes()).unwrap();
    let (_, path) = file.keep().unwrap();
    let mut args: Vec<&str> = flags.to_vec();
    let path = path.to_str().unwrap().to_string();
    args.extend(["--batch", &path]);
    Proc::spawn(name, peer_command(name, tracker, dirs, &args), None)
}

fn finish(mut proc: Proc) -> (Option<i32>, String, String) {
    let status = proc.wait_exit(BATCH_TIMEOUT);
    let out = proc.collect_stdout(Duration::from_secs(5)).join("\n");
    (status.code(), out, proc.stderr_text())
}

#[test]
fn corrupt_data_nobody_can_repair_exits_3() {
    let tracker = Tracker::start();
    let content = pseudo_random(6 * CHUNK, 3);
    let _mallory = FakePeer::start(
        "Mallory",
        tracker.addr,
        "data.bin",
        content,
        Behaviour::CorruptChunks,
    );
    let dirs = PeerDirs::new();
    let proc = batch_with(
        "Bob",
        tracker.addr,
        &dirs,
        &["--json"],
        "wait-peer Mallory 10\nget Mallory data.bin\n",
    );
    let (code, out, err) = finish(proc);
    assert_eq!(code, Some(3), "{out}\n{err}");
    let error = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "error")
        .unwrap_or_else(|| panic!("no error event\n{out}"));
    assert_eq!(error["kind"], "verification", "{error}");
    assert!(!dirs.downloads.join("data.bin").exists());
}

#[test]
fn unknown_peer_and_unreachable_tracker_exit_4() {
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    let out = run_batch("Bob", tracker.addr, &dirs, "files Nobody\n");
    out.assert_failed_with(4);
    assert!(out.error_text().contains("unknown peer"), "{out}");

    // No tracker at all, and nobody else to ask.
    let nowhere = unused_addr();
    let out = run_batch("Bob", nowhere, &PeerDirs::new(), "msg Alice hello\n");
    out.assert_failed_with(4);
    assert!(out.error_text().contains("unreachable"), "{out}");
}

#[test]
fn a_source_that_goes_away_leaves_the_download_unfinished_exit_5() {
    let tracker = Tracker::start();
    let content = pseudo_random(8 * CHUNK, 5);
    let stally = FakePeer::start(
        "Stally",
        tracker.addr,
        "data.bin",
        content,
        Behaviour::StallAfter(2),
    );
    let dirs = PeerDirs::new();
    let proc = batch_with(
        "Bob",
        tracker.addr,
        &dirs,
        &["--retry-for", "1"],
        "wait-peer Stally 10\nget Stally data.bin\n",
    );
    let deadline = Instant::now() + STARTUP;
    while stally.served.load(std::sync::atomic::Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stally); // closes its connections and stops listening
    let (code, out, err) = finish(proc);
    assert_eq!(code, Some(5), "{out}\n{err}");
    assert!(err.contains("error:"), "{err}");
    // The partial download and its record are kept for `resume`.
    let kept = list_all(&dirs.downloads);
    assert!(
        kept.iter().any(|p| p.ends_with(".p2p-part")),
        "no partial file kept: {kept:?}"
    );
}
