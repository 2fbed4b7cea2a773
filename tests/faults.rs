//! The faults a crash-and-fault campaign found (issue 11), each replayed against the real
//! binary: a partial file longer than the file it becomes, a seeder at its connection cap,
//! and disk failures injected with an `LD_PRELOAD` shim (tests/faults_support/shim.c, built
//! here with the system C compiler): a failed final fsync or link, a failed checkpoint, a
//! write that fails, too little free space. Whatever fails, a file under its final name is
//! only ever the exact bytes that were shared. (The source frozen past its handshake and the
//! sources sending broken frames run in the in-memory harness, src/sim/tests/downloads.rs.)

mod common;

use common::*;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;
const EIO: &str = "5";
const EPERM: &str = "1";
const ENOSPC: &str = "28";

/// The fault shim, compiled once per test run.
fn shim() -> &'static Path {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults_support/shim.c");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("p2p-fault-shim.so");
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&out)
            .arg(&src)
            .arg("-ldl")
            .status()
            .expect("these tests need a C compiler (`cc`); .ci/run installs gcc");
        assert!(status.success(), "building the fault shim failed");
        out
    })
}

fn partial_path(dirs: &PeerDirs, name: &str) -> PathBuf {
    dirs.downloads.join(format!(".{name}.p2p-part"))
}

fn record_count(dirs: &PeerDirs) -> usize {
    fs::read_dir(dirs.downloads.join(".p2p/resume"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "cbor"))
                .count()
        })
        .unwrap_or(0)
}

/// Runs `commands` as a batch of NAME with the fault shim loaded and `faults` set.
fn batch_with_faults(
    name: &str,
    tracker: std::net::SocketAddr,
    dirs: &PeerDirs,
    commands: &str,
    faults: &[(&str, &str)],
) -> BatchOutput {
    let path = dirs.root().join("faulty-batch.txt");
    fs::write(&path, commands).expect("write batch");
    let mut cmd = peer_command(
        name,
        tracker,
        dirs,
        &["--batch", path.to_str().expect("utf-8")],
    );
    cmd.env("LD_PRELOAD", shim());
    for (k, v) in faults {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut proc = Proc::spawn(format!("{name} --batch (faults {faults:?})"), cmd, None);
    let status = proc.wait_exit(BATCH_TIMEOUT);
    BatchOutput {
        label: format!("{name} with faults {faults:?}"),
        status,
        stdout: proc.collect_stdout(Duration::from_secs(5)).join("\n"),
        stderr: proc.stderr_text(),
        elapsed: started.elapsed(),
    }
}

/// After a fault that stopped the download: exit 5, the cause named, nothing under the final
/// name, the partial file and its record kept; then a clean `resume` saves the exact bytes.
fn assert_kept_then_resumed(
    out: &BatchOutput,
    tracker: std::net::SocketAddr,
    bob: &PeerDirs,
    name: &str,
    content: &[u8],
    cause: &str,
) {
    out.assert_failed_with(5);
    assert!(
        out.error_text().contains(&cause.to_lowercase()),
        "the error does not name the cause {cause:?}\n{out}"
    );
    assert!(
        !bob.downloads.join(name).exists(),
        "something was published under the final name\n{out}"
    );
    assert!(
        partial_path(bob, name).exists(),
        "the partial was deleted\n{out}"
    );
    assert_eq!(
        record_count(bob),
        1,
        "the resume record was not kept\n{out}"
    );
    let again = run_batch("Bob", tracker, bob, &format!("resume {name}\n"));
    again.assert_success();
    assert_file_eq(&bob.downloads.join(name), content);
    assert!(!partial_path(bob, name).exists());
    assert_eq!(record_count(bob), 0);
}

#[test]
fn a_failed_final_fsync_keeps_the_verified_download_for_resume() {
    let content = pseudo_random(3 * MIB + 17, 1);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("f.bin", &content)]);
    let bob = PeerDirs::new();
    let out = batch_with_faults(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice f.bin\n",
        &[("P2P_FAULT_FSYNC_PART", EIO)],
    );
    assert_kept_then_resumed(
        &out,
        tracker.addr,
        &bob,
        "f.bin",
        &content,
        "Input/output error",
    );
}

#[test]
fn a_failed_final_link_keeps_the_verified_download_for_resume() {
    let content = pseudo_random(2 * MIB + 5, 2);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("f.bin", &content)]);
    let bob = PeerDirs::new();
    let out = batch_with_faults(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice f.bin\n",
        &[("P2P_FAULT_LINKAT", EPERM)],
    );
    assert_kept_then_resumed(
        &out,
        tracker.addr,
        &bob,
        "f.bin",
        &content,
        "Operation not permitted",
    );
}

/// A checkpoint whose fsync fails pauses the download: paused means nothing under the final
/// name, even when every chunk arrives right after. Then the partial file is made longer than
/// the file (garbage past its end, as a file that shrank at its source leaves): `resume`
/// re-checks it from the disk and saves exactly the shared bytes.
#[test]
fn a_failed_checkpoint_never_publishes_and_resume_cuts_extra_bytes() {
    // More than 256 chunks, so a checkpoint falls inside the download.
    let content = pseudo_random(72 * MIB + 3, 3);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("mid.bin", &content)]);
    let bob = PeerDirs::new();
    let out = batch_with_faults(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice mid.bin\n",
        // The first fdatasync (when the partial file is set up) succeeds; checkpoints fail.
        &[
            ("P2P_FAULT_FDATASYNC_PART", EIO),
            ("P2P_FAULT_FDATASYNC_PART_AFTER", "1"),
        ],
    );
    out.assert_failed_with(5);
    assert!(out.error_text().contains("durable"), "{out}");
    assert!(
        !out.stdout.contains("saved "),
        "a paused download was reported saved\n{out}"
    );
    assert!(!bob.downloads.join("mid.bin").exists(), "{out}");
    let part = partial_path(&bob, "mid.bin");
    let mut f = fs::OpenOptions::new().append(true).open(&part).unwrap();
    std::io::Write::write_all(&mut f, &vec![0xA5; 80 * MIB]).unwrap();
    drop(f);
    assert!(fs::metadata(&part).unwrap().len() > content.len() as u64);
    let again = run_batch("Bob", tracker.addr, &bob, "resume mid.bin\n");
    again.assert_success();
    assert_file_eq(&bob.downloads.join("mid.bin"), &content);
}

/// No resume record, and a partial file holding every right byte and then 1 MiB of others:
/// the saved file is the shared file, not the longer one.
#[test]
fn a_longer_partial_without_a_record_is_cut_to_the_file() {
    let content = pseudo_random(8 * MIB + 3, 4);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("g.bin", &content)]);
    let bob = PeerDirs::new();
    let mut longer = content.clone();
    longer.extend(std::iter::repeat_n(0x5A, MIB));
    fs::create_dir_all(&bob.downloads).unwrap();
    fs::write(partial_path(&bob, "g.bin"), &longer).unwrap();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice g.bin\n",
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("g.bin"), &content);
    assert_saved_line(&out, &bob, "g.bin", &content);
}

#[test]
fn a_failed_write_pauses_and_names_the_partial_file() {
    let content = pseudo_random(4 * MIB, 5);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("w.bin", &content)]);
    let bob = PeerDirs::new();
    let out = batch_with_faults(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice w.bin\n",
        &[
            ("P2P_FAULT_PWRITE_PART", ENOSPC),
            ("P2P_FAULT_PWRITE_PART_AFTER", "3"),
        ],
    );
    assert_kept_then_resumed(
        &out,
        tracker.addr,
        &bob,
        "w.bin",
        &content,
        "No space left on device",
    );
    assert!(
        out.error_text().contains(".w.bin.p2p-part"),
        "the error names the final path, not the file that filled the disk\n{out}"
    );
}

#[test]
fn a_download_larger_than_the_free_space_is_refused_before_writing() {
    let content = pseudo_random(3 * MIB, 6);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("big.bin", &content)]);
    refused_for_room("big.bin", tracker.addr);
}

/// Bob's `get Alice WHAT` with 1 MB free: refused before anything is written. Returns Bob's
/// folders and the batch's output.
fn refused_for_room(what: &str, tracker: std::net::SocketAddr) -> (PeerDirs, BatchOutput) {
    let bob = PeerDirs::new();
    let out = batch_with_faults(
        "Bob",
        tracker,
        &bob,
        &format!("wait-peer Alice 10\nget Alice {what}\n"),
        &[("P2P_FAULT_FREE_BYTES", "1000000")],
    );
    out.assert_failure();
    assert!(out.error_text().contains("not enough space"), "{out}");
    assert!(
        bob.downloads_listing().is_empty(),
        "something was written: {:?}\n{out}",
        bob.downloads_listing()
    );
    (bob, out)
}

/// A folder is refused as a whole before any of its files is fetched, even when each of its
/// small files alone would fit (they are not checked one by one).
#[test]
fn a_folder_larger_than_the_free_space_is_refused_before_writing() {
    let tracker = Tracker::start();
    let alice = PeerDirs::new();
    fs::create_dir_all(alice.shared.join("Album")).unwrap();
    for i in 0..40u64 {
        fs::write(
            alice.shared.join(format!("Album/{i:02}.bin")),
            pseudo_random(64 * 1024, 100 + i),
        )
        .unwrap();
    }
    let _alice = Peer::serve_in("Alice", tracker.addr, alice, &[]);
    let (bob, out) = refused_for_room("Album", tracker.addr);
    let verified = bob.downloads.join(".p2p/tree-files");
    let fetched = fs::read_dir(&verified).map_or(0, |d| d.count());
    assert_eq!(fetched, 0, "{fetched} contents were fetched first\n{out}");
}

/// A kill between removing the partial file and removing the record leaves the finished file
/// beside its record: `resume` recognises it as done and fetches nothing.
#[test]
fn a_finished_file_beside_its_record_is_recognised_as_done() {
    let content = pseudo_random(72 * MIB + 9, 7);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("done.bin", &content)]);
    let bob = PeerDirs::new();
    // A checkpoint failure leaves a record and a partial file (see above).
    let out = batch_with_faults(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice done.bin\n",
        &[
            ("P2P_FAULT_FDATASYNC_PART", EIO),
            ("P2P_FAULT_FDATASYNC_PART_AFTER", "1"),
        ],
    );
    out.assert_failed_with(5);
    assert_eq!(record_count(&bob), 1, "{out}");
    // The state the kill leaves: the file saved, the partial gone, the record still there.
    fs::write(bob.downloads.join("done.bin"), &content).unwrap();
    fs::remove_file(partial_path(&bob, "done.bin")).unwrap();
    let again = run_batch("Bob", tracker.addr, &bob, "resume done.bin\ndownloads\n");
    again.assert_success();
    assert!(
        again.stdout.contains("already there"),
        "not recognised as done\n{again}"
    );
    assert!(!again.stdout.contains("failed verification"), "{again}");
    assert!(!again.stdout.contains("saved "), "fetched again\n{again}");
    assert_eq!(record_count(&bob), 0, "the record was left\n{again}");
    assert_file_eq(&bob.downloads.join("done.bin"), &content);
}

// `a_source_whose_reconnect_times_out_in_its_handshake_is_tried_again` moved to the in-memory
// harness (src/sim/tests/downloads.rs): the muted handshake's 10 s timeout runs in fake time.

/// A seeder at its per-address connection cap answers "busy, try again later": `get` tries
/// again with backoff (inside its deadline) instead of failing at once.
#[test]
fn a_busy_seeder_is_tried_again_until_it_has_room() {
    let content = pseudo_random(2 * CHUNK + 1, 9);
    let tracker = Tracker::start();
    let alice = Peer::serve_in(
        "Alice",
        tracker.addr,
        PeerDirs::with_files(&[("f.bin", &content)]),
        &["--max-conns-per-ip", "2"],
    );
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(alice.addr).expect("connect"))
        .collect();
    let bob = PeerDirs::new();
    let get = "wait-peer Alice 10\nget Alice f.bin\n";
    let mut proc = spawn_batch("Bob", tracker.addr, &bob, get, &[]);
    proc.wait_line(
        "a line saying Alice is busy",
        Duration::from_secs(20),
        |l| l.contains("busy"),
    );
    drop(held);
    let status = proc.wait_exit(Duration::from_secs(40));
    assert_eq!(status.code(), Some(0), "{}", proc.diagnostics());
    assert_file_eq(&bob.downloads.join("f.bin"), &content);
}

// `a_source_sending_broken_frames_is_banned_and_get_ends` moved to the in-memory harness
// (src/sim/tests/downloads.rs), with both broken frames (undecodable, over the frame limit).

/// Unfinished downloads are not silent: the next start lists them, and `quit` warns that
/// they stay behind (issue 16, item 7).
#[test]
fn unfinished_downloads_are_announced_at_start_and_at_quit() {
    let content = pseudo_random(4 * MIB, 11);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("u.bin", &content)]);
    let bob = PeerDirs::new();
    let out = batch_with_faults(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice u.bin\n",
        &[
            ("P2P_FAULT_PWRITE_PART", ENOSPC),
            ("P2P_FAULT_PWRITE_PART_AFTER", "5"),
        ],
    );
    out.assert_failed_with(5);
    let again = run_batch("Bob", tracker.addr, &bob, "quit\n");
    again.assert_success();
    assert!(
        again.stdout.contains("1 unfinished download here: u.bin (")
            && again.stdout.contains("`resume` continues it"),
        "not announced at start\n{again}"
    );
    assert!(
        again
            .stderr
            .contains("warning: quitting with 1 unfinished download: u.bin ("),
        "no warning at quit\n{again}"
    );
}

/// A peer started with `--serve` (or in the REPL) continues the unfinished downloads of its
/// last run by itself, in the background (`--resume-on-start`, on by default there; off in
/// `--batch`, see the test above).
#[test]
fn serve_mode_resumes_unfinished_downloads_at_start() {
    let content = pseudo_random(4 * MIB + 1, 12);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("r.bin", &content)]);
    let bob = PeerDirs::new();
    let out = batch_with_faults(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice r.bin\n",
        &[
            ("P2P_FAULT_PWRITE_PART", ENOSPC),
            ("P2P_FAULT_PWRITE_PART_AFTER", "5"),
        ],
    );
    out.assert_failed_with(5);
    let cmd = peer_command("Bob", tracker.addr, &bob, &["--serve"]);
    let mut serve = Proc::spawn("Bob --serve", cmd, None);
    serve.wait_line("resuming in the background", Duration::from_secs(20), |l| {
        l.starts_with("resuming in the background: r.bin (")
    });
    serve.wait_line("the saved line", Duration::from_secs(30), |l| {
        l.starts_with("saved ") && l.contains("r.bin")
    });
    assert_file_eq(&bob.downloads.join("r.bin"), &content);
    assert_eq!(record_count(&bob), 0);
}
