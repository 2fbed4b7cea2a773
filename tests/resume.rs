//! Resumable downloads across crashes: the receiver SIGKILLed mid-transfer and restarted, a
//! full disk, a damaged resume record, and a source whose file changed. Every finished file is
//! compared byte for byte. (The sender killed and restarted elsewhere, and a source that never
//! returns, run in the in-memory harness: src/sim/tests/downloads.rs.)

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

const MIB: usize = 1024 * 1024;
const CHUNK: u64 = 256 * 1024;
/// Bytes of requests the downloader keeps in flight (src/peer/transfer.rs WINDOW_BYTES).
const WINDOW: u64 = 32 * MIB as u64;
const LONG: Duration = Duration::from_secs(120);

fn partial_path(dirs: &PeerDirs, name: &str) -> PathBuf {
    dirs.downloads.join(format!(".{name}.p2p-part"))
}

/// Waits (bounded) until the partial file of `name` holds at least `bytes` while `proc` runs;
/// its length grows as chunks are written in order. Returns the length seen.
fn wait_partial(proc: &mut Proc, dirs: &PeerDirs, name: &str, bytes: u64) -> u64 {
    let path = partial_path(dirs, name);
    let deadline = Instant::now() + LONG;
    loop {
        let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len >= bytes {
            return len;
        }
        if !proc.is_running() || Instant::now() > deadline {
            panic!(
                "the download ended or stalled before its partial file reached {bytes} bytes \
                 (it has {len})\n{}",
                proc.diagnostics()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// [`wait_partial`], then SIGKILLs `proc`. Returns the partial file's length at the kill.
fn kill_when_partial_reaches(proc: &mut Proc, dirs: &PeerDirs, name: &str, bytes: u64) -> u64 {
    wait_partial(proc, dirs, name, bytes);
    proc.signal(libc::SIGKILL);
    proc.wait_exit(Duration::from_secs(10));
    fs::metadata(partial_path(dirs, name))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// From `resuming NAME from SOURCE: K of N chunks already here`, K.
fn chunks_kept(out: &BatchOutput) -> u64 {
    let line = out
        .stdout_lines()
        .into_iter()
        .find(|l| l.starts_with("resuming "))
        .unwrap_or_else(|| panic!("no `resuming` line\n{out}"));
    let after = line.split(": ").nth(1).expect("`: K of N`");
    after
        .split(' ')
        .next()
        .expect("K")
        .parse()
        .expect("K is a number")
}

/// From the `saved` line, the bytes that crossed the network in that run.
fn bytes_fetched(out: &BatchOutput) -> u64 {
    let line = out
        .stdout_lines()
        .into_iter()
        .find(|l| l.starts_with("saved "))
        .unwrap_or_else(|| panic!("no `saved` line\n{out}"));
    let before = line
        .split(" bytes fetched")
        .next()
        .expect("`N bytes fetched`");
    before
        .rsplit(' ')
        .next()
        .expect("N")
        .parse()
        .expect("N is a number")
}

#[test]
fn receiver_killed_at_several_points_resumes_to_the_exact_bytes() {
    // 128 MiB (it was 256 MiB): the size is not the subject, and a kill at 75% still leaves
    // 32 MiB to go while the partial file is watched every 2 ms.
    let size = 128 * MIB;
    let content = pseudo_random(size, 11);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("big.bin", &content)]);
    let bob = PeerDirs::new();
    let get = "wait-peer Alice 10\nget Alice big.bin\n";

    let mut at_kill = 0;
    for fraction in [0.15, 0.45, 0.75] {
        let mut run = spawn_batch("Bob", tracker.addr, &bob, get, &[]);
        at_kill =
            kill_when_partial_reaches(&mut run, &bob, "big.bin", (size as f64 * fraction) as u64);
        assert!(
            !bob.downloads.join("big.bin").exists(),
            "nothing under the final name mid-way"
        );
    }

    // After the restart, `downloads` lists the unfinished one, and `resume` finishes it.
    let listed = run_batch("Bob", tracker.addr, &bob, "downloads\n");
    listed.assert_success();
    assert!(
        listed.stdout.contains("big.bin") && listed.stdout.contains("from Alice"),
        "`downloads` lists the partial download with its source\n{listed}"
    );
    let out = run_batch_timeout(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nresume big.bin\n",
        LONG,
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("big.bin"), &content);
    assert_downloads_exactly(&bob, &["big.bin"]);

    // Only what was missing crossed the network again: the chunks found intact were kept, and
    // they cover what had been written at the kill except at most the requests in flight.
    let kept = chunks_kept(&out) * CHUNK;
    let fetched = bytes_fetched(&out);
    assert_eq!(
        fetched,
        size as u64 - kept,
        "fetched exactly the missing chunks\n{out}"
    );
    assert!(
        kept + WINDOW + CHUNK >= at_kill,
        "kept {kept} bytes of the {at_kill} written before the kill\n{out}"
    );
}

// `sender_killed_and_restarted_on_another_port_while_the_receiver_waits` and
// `source_that_never_returns_fails_the_batch_and_keeps_the_partial_download` moved to the
// in-memory harness (src/sim/tests/downloads.rs): waiting for a source (`--retry-for`) is the
// download's logic, and runs there in fake time.

#[test]
fn full_disk_pauses_with_a_clear_error_and_resume_completes_later() {
    if !std::path::Path::new("/bin/bash").exists() {
        eprintln!("skipped: needs /bin/bash to set a file-size limit (ulimit -f)");
        return;
    }
    let size = 48 * MIB;
    let content = pseudo_random(size, 14);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("f.bin", &content)]);
    let bob = PeerDirs::new();
    let batch = bob.root().join("get.txt");
    fs::write(&batch, "wait-peer Alice 10\nget Alice f.bin\n").unwrap();

    // RLIMIT_FSIZE of 16 MiB: writes past it fail with EFBIG, as on a full disk. SIGXFSZ is
    // ignored so the write fails instead of killing the process.
    let inner = peer_command(
        "Bob",
        tracker.addr,
        &bob,
        &["--batch", batch.to_str().unwrap()],
    );
    let mut cmd = std::process::Command::new("/bin/bash");
    cmd.arg("-c")
        .arg("trap '' XFSZ; ulimit -f 16384; exec \"$@\"")
        .arg("bash")
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(bob.root());
    let mut proc = Proc::spawn("Bob (16 MiB file limit)", cmd, None);
    let status = proc.wait_exit(LONG);
    // Paused with the partial file kept: exit status 5 (README, "Exit status").
    assert_eq!(status.code(), Some(5), "{}", proc.diagnostics());
    let err = proc.stderr_text();
    assert!(
        err.contains("error:") && err.contains("cannot write"),
        "a clear error: {err}"
    );
    assert!(
        !bob.downloads.join("f.bin").exists(),
        "nothing under the final name"
    );
    assert!(
        partial_path(&bob, "f.bin").exists(),
        "the partial download is kept"
    );

    // Space again: resume completes with the right bytes and fetches only what is missing.
    let out = run_batch_timeout(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nresume f.bin\n",
        LONG,
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("f.bin"), &content);
    let kept = chunks_kept(&out) * CHUNK;
    assert!(
        kept >= 8 * MIB as u64,
        "most of the first 16 MiB was kept ({kept})\n{out}"
    );
    assert_eq!(bytes_fetched(&out), size as u64 - kept);
}

#[test]
fn damaged_resume_record_gives_a_clear_message_and_a_clean_restart() {
    let size = 32 * MIB;
    let content = pseudo_random(size, 15);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("f.bin", &content)]);
    let bob = PeerDirs::new();
    let mut run = spawn_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice f.bin\n",
        &[],
    );
    kill_when_partial_reaches(&mut run, &bob, "f.bin", size as u64 / 2);

    let records: Vec<PathBuf> = fs::read_dir(bob.downloads.join(".p2p/resume"))
        .expect("a resume record exists")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let bytes = fs::read(&records[0]).unwrap();
    fs::write(&records[0], &bytes[..bytes.len() / 2]).unwrap();

    // `resume` of a damaged record: a clear error, no panic.
    let out = run_batch("Bob", tracker.addr, &bob, "resume f.bin\n");
    out.assert_failure();
    assert!(out.stderr.contains("damaged"), "{out}");

    // `get` again: starts cleanly, keeping the intact chunks, and ends with the exact bytes.
    let out = run_batch_timeout(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice f.bin\n",
        LONG,
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("f.bin"), &content);
    assert!(chunks_kept(&out) > 0, "intact chunks were kept\n{out}");
}

#[test]
fn resume_against_changed_content_is_refused_never_merged() {
    let size = 32 * MIB;
    let v1 = pseudo_random(size, 16);
    let v2 = pseudo_random(size, 17);
    let tracker = Tracker::start();
    let alice = Peer::serve("Alice", tracker.addr, &[("f.bin", &v1)]);
    let bob = PeerDirs::new();
    let mut run = spawn_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice f.bin\n",
        &[],
    );
    kill_when_partial_reaches(&mut run, &bob, "f.bin", size as u64 / 3);

    // Alice's file changes and she restarts.
    let Peer { dirs, proc, .. } = alice;
    drop(proc);
    dirs.add_shared("f.bin", &v2);
    let _alice = Peer::serve_in("Alice", tracker.addr, dirs, &[]);

    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice f.bin\n",
    );
    out.assert_failure();
    assert!(out.stderr.contains("other content"), "{out}");
    assert!(!bob.downloads.join("f.bin").exists());
    assert!(
        partial_path(&bob, "f.bin").exists(),
        "the partial download is kept"
    );

    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nresume f.bin\n",
    );
    // The partial download is kept for a source with the right bytes: unfinished (5).
    out.assert_failed_with(5);
    assert!(
        out.stderr.contains("no longer shares the same content"),
        "{out}"
    );

    // `cancel` drops it; a new `get` fetches the new content.
    let out = run_batch_timeout(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\ncancel f.bin\nget Alice f.bin\n",
        LONG,
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("f.bin"), &v2);
    assert_downloads_exactly(&bob, &["f.bin"]);
}

#[test]
fn cancel_of_nothing_fails_and_resume_with_nothing_succeeds() {
    let tracker = Tracker::start();
    let bob = PeerDirs::new();
    let out = run_batch("Bob", tracker.addr, &bob, "cancel nope.bin\n");
    out.assert_failure();
    assert!(out.stderr.contains("no unfinished download"), "{out}");
    let out = run_batch("Bob", tracker.addr, &bob, "resume\ndownloads\n");
    out.assert_success();
    assert!(out.stdout.contains("no unfinished downloads"), "{out}");
}
