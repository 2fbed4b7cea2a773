//! `--json`: every stdout line of a batch or serve run is one JSON object with a `type`, and
//! each type carries the fields README ("JSON output") documents. Human text goes to stderr.

mod common;
mod hashing_support;

use common::*;
use hashing_support::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The fields README documents for each event type (beyond `type`).
const DOCUMENTED: &[(&str, &[&str])] = &[
    ("listening", &["name", "addr", "id"]),
    (
        "sharing",
        &["files", "dir", "hashed", "hashed_bytes", "rescan"],
    ),
    ("skipped", &["file", "reason"]),
    ("hashing", &["file", "done", "total", "rescan"]),
    ("registered", &["tracker", "again"]),
    ("peers", &["peers"]),
    ("files", &["peer", "files"]),
    ("shared", &["dir", "files", "seeding"]),
    ("search", &["query", "asked", "results"]),
    ("progress", &["file", "done", "total", "bytes_per_sec"]),
    (
        "download_done",
        &[
            "file",
            "path",
            "size",
            "sha256",
            "seconds",
            "bytes_per_sec",
            "bytes_fetched",
            "bytes_per_source",
            "already_there",
        ],
    ),
    (
        "folder_done",
        &[
            "folder",
            "path",
            "folder_id",
            "files",
            "size",
            "seconds",
            "bytes_per_sec",
            "bytes_fetched",
            "contents_kept",
            "sources",
        ],
    ),
    ("folder_file", &["folder", "path", "size", "content_id"]),
    ("downloads", &["downloads"]),
    ("message", &["from", "id", "first_contact", "text"]),
    ("pins", &["pins"]),
    ("trusted", &["name", "id", "replaced"]),
    ("forgotten", &["name", "id"]),
    ("message_delivered", &["to"]),
    ("peer_known", &["name"]),
    ("cancelled", &["file"]),
    ("error", &["kind", "message"]),
    ("connected", &["name", "addr"]),
    ("tracker_unreachable", &["tracker", "reason"]),
    (
        "resuming",
        &["file", "sources", "chunks_here", "chunks", "percent"],
    ),
    ("source_joined", &["file", "peer", "percent", "others"]),
    (
        "source_lost",
        &["file", "peer", "reason", "percent", "others", "retry_secs"],
    ),
    ("source_dropped", &["file", "peer", "reason"]),
    ("warning", &["message"]),
    ("info", &["text"]),
    ("notice", &["text"]),
];

/// Parses every line and checks its documented fields; returns the objects.
fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}\n{stdout}"));
            let kind = v["type"]
                .as_str()
                .unwrap_or_else(|| panic!("no type: {line}"));
            let fields = DOCUMENTED
                .iter()
                .find(|(t, _)| *t == kind)
                .unwrap_or_else(|| panic!("undocumented event type {kind:?}: {line}"))
                .1;
            for f in fields {
                assert!(v.get(f).is_some(), "{kind} lacks {f}: {line}");
            }
            v
        })
        .collect()
}

fn of_type<'a>(evs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    evs.iter().filter(|v| v["type"] == kind).collect()
}

#[test]
fn batch_results_and_serve_events_are_json_lines() {
    let tracker = Tracker::start();
    let content = pseudo_random(3 * CHUNK + 5, 7);
    let alice_dirs = PeerDirs::with_files(&[("data.bin", &content)]);
    let cmd = peer_command("Alice", tracker.addr, &alice_dirs, &["--serve", "--json"]);
    let mut alice = Proc::spawn("Alice --serve --json", cmd, None);
    let first = alice.next_line("the first JSON line", STARTUP);
    let v: Value = serde_json::from_str(&first).expect("JSON");
    assert_eq!(v["type"], "listening");
    assert_eq!(v["name"], "Alice");
    alice.wait_line("a registered event", STARTUP, |l| {
        l.contains("\"type\":\"registered\"")
    });

    let bob = PeerDirs::new();
    let commands = "wait-peer Alice 10\npeers\nfiles Alice\nget Alice data.bin\n\
                    msg Alice hi \"there\"\nshared\ndownloads\nget Alice data.bin\n\
                    search data\ntrust\n";
    let cmd = peer_command("Bob", tracker.addr, &bob, &["--json", "--batch", "-"]);
    let mut proc = Proc::spawn("Bob --json", cmd, Some(commands.as_bytes().to_vec()));
    let status = proc.wait_exit(BATCH_TIMEOUT);
    let stdout = proc.collect_stdout(Duration::from_secs(5)).join("\n");
    let stderr = proc.stderr_text();
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    let evs = events(&stdout);

    assert_eq!(evs[0]["type"], "listening", "{stdout}");
    assert_eq!(of_type(&evs, "peer_known")[0]["name"], "Alice");
    let peers = &of_type(&evs, "peers")[0]["peers"];
    assert!(
        peers
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Alice" && p["addr"].is_string()),
        "{stdout}"
    );
    // Alice was pinned on first contact, under the id she printed at start.
    let pins = &of_type(&evs, "pins")[0]["pins"];
    assert_eq!(pins[0]["name"], "Alice", "{stdout}");
    assert_eq!(pins[0]["id"], v["id"], "{stdout}");
    let files = of_type(&evs, "files")[0];
    assert_eq!(files["peer"], "Alice");
    assert_eq!(files["files"][0]["name"], "data.bin");
    assert_eq!(files["files"][0]["size"], content.len() as u64);
    assert_eq!(files["files"][0]["sha256"], sha256_hex(&content));

    let done = of_type(&evs, "download_done");
    assert_eq!(done.len(), 2, "{stdout}");
    let first = done[0];
    assert_eq!(first["already_there"], false);
    assert_eq!(first["size"], content.len() as u64);
    assert_eq!(first["sha256"], sha256_hex(&content));
    assert!(first["path"].as_str().unwrap().ends_with("data.bin"));
    assert!(first["seconds"].as_f64().unwrap() >= 0.0);
    let per_source = first["bytes_per_source"].as_object().unwrap();
    let total: u64 = per_source.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, content.len() as u64, "{first}");
    assert!(per_source.contains_key("Alice"), "{first}");
    assert_eq!(
        done[1]["already_there"], true,
        "the second get finds it there"
    );
    assert_file_eq(&bob.downloads.join("data.bin"), &content);

    assert_eq!(of_type(&evs, "message_delivered")[0]["to"], "Alice");
    // What Bob downloaded he shares on (until the next rescan), listed apart from what is in
    // his shared folder (nothing here).
    let shared = of_type(&evs, "shared")[0];
    assert!(shared["dir"].is_string());
    assert_eq!(shared["files"], serde_json::json!([]), "{shared}");
    assert_eq!(shared["seeding"][0]["name"], "data.bin", "{shared}");
    assert_eq!(
        of_type(&evs, "downloads")[0]["downloads"],
        serde_json::json!([])
    );
    let search = of_type(&evs, "search")[0];
    assert_eq!(search["query"], "data");
    let found = &search["results"][0];
    assert_eq!(found["names"][0], "data.bin", "{search}");
    assert_eq!(found["size"], content.len() as u64);
    assert_eq!(found["sha256"], sha256_hex(&content));
    assert_eq!(found["peers"][0], "Alice", "{search}");
    for p in of_type(&evs, "progress") {
        assert!(p["done"].as_u64().unwrap() <= p["total"].as_u64().unwrap());
    }
    // Human text went to stderr instead.
    assert!(stderr.contains("Bob listening on"), "{stderr}");
    assert!(stderr.contains("message delivered to Alice"), "{stderr}");

    // Alice's serve mode reported the message as an event; the text is exact.
    let line = alice.wait_line("a message event", STARTUP, |l| {
        l.contains("\"type\":\"message\"")
    });
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["from"], "Bob");
    assert_eq!(v["text"], "hi \"there\"");
    alice.signal(libc::SIGTERM);
    alice.wait_exit(EXIT_TIMEOUT);
    let rest = alice.collect_stdout(Duration::from_secs(5)).join("\n");
    events(&rest);
}

#[test]
fn a_failed_command_is_an_error_event_and_its_exit_status() {
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    let cmd = peer_command("Carl", tracker.addr, &dirs, &["--json", "--batch", "-"]);
    let mut proc = Proc::spawn("Carl --json", cmd, Some(b"frobnicate\npeers\n".to_vec()));
    let status = proc.wait_exit(BATCH_TIMEOUT);
    let stdout = proc.collect_stdout(Duration::from_secs(5)).join("\n");
    let stderr = proc.stderr_text();
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    let evs = events(&stdout);
    let err = of_type(&evs, "error");
    assert_eq!(err.len(), 1, "{stdout}");
    assert_eq!(err[0]["kind"], "failed");
    assert!(
        err[0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown command")
    );
    assert!(
        of_type(&evs, "peers").is_empty(),
        "the batch stopped at the failure"
    );
    assert!(stderr.contains("error: unknown command"), "{stderr}");
}

#[test]
fn progress_events_come_a_few_times_a_second_with_the_sources() {
    use common::fake_peer::{Behaviour, FakePeer};
    let tracker = Tracker::start();
    let content = pseudo_random(12 * CHUNK, 11);
    let slow = FakePeer::start(
        "Slow",
        tracker.addr,
        "slow.bin",
        content.clone(),
        Behaviour::StallAfter(3),
    );
    let dirs = PeerDirs::new();
    let cmd = peer_command("Bob", tracker.addr, &dirs, &["--json", "--batch", "-"]);
    let mut proc = Proc::spawn(
        "Bob --json",
        cmd,
        Some(b"wait-peer Slow 10\nget Slow slow.bin\n".to_vec()),
    );
    let started = Instant::now();
    let deadline = started + STARTUP;
    while slow.served.load(std::sync::atomic::Ordering::Relaxed) < 3 {
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(800));
    slow.release();
    let status = proc.wait_exit(BATCH_TIMEOUT);
    let elapsed = started.elapsed();
    let stdout = proc.collect_stdout(Duration::from_secs(5)).join("\n");
    assert_eq!(status.code(), Some(0), "{stdout}\n{}", proc.stderr_text());
    let evs = events(&stdout);
    let progress = of_type(&evs, "progress");
    assert!(!progress.is_empty(), "no progress event\n{stdout}");
    // At most 4 a second, plus the last one.
    let most = (elapsed.as_secs_f64() * 4.0).ceil() as usize + 2;
    assert!(
        progress.len() <= most,
        "{} progress events in {elapsed:?}",
        progress.len()
    );
    for p in &progress {
        assert_eq!(p["file"], "slow.bin");
        assert_eq!(p["total"], content.len() as u64);
        assert!(p["done"].as_u64().unwrap() <= content.len() as u64);
        assert!(p["sources"].as_u64().unwrap() <= 1, "{p}");
    }
    assert!(
        progress
            .iter()
            .any(|p| p["sources"] == 1 && p["done"].as_u64() > Some(0)),
        "no progress event while the source sent chunks\n{stdout}"
    );
    let done = of_type(&evs, "download_done");
    assert_eq!(done[0]["bytes_per_source"]["Slow"], content.len() as u64);
}

/// `--json`: `hashing` events while the start-up scan hashes (issue 16 item 3), and the big
/// file is listed once it is hashed, not before. Moved from `tests/hashing.rs` (suite time,
/// issue 12): it hashes 1.5 GiB to the end, the longest test there, and ran last of them; here
/// it runs beside this binary's short tests.
#[test]
fn json_hashing_events_then_the_file_is_listed_once_hashed() {
    let tracker = Tracker::start();
    let dirs = PeerDirs::with_files(&[("small.txt", b"hashed in no time")]);
    let size = 3 * GIB / 2;
    sparse(&dirs.shared, "big.bin", size);
    let cmd = peer_command("Alice", tracker.addr, &dirs, &["--serve", "--json"]);
    let mut alice = Proc::spawn("Alice", cmd, None);
    alice.wait_line("a `registered` event", STARTUP, |l| {
        l.contains("\"type\":\"registered\"")
    });
    let mut bob = TimedBob::start(tracker.addr);
    let (before, _) = bob.ask("files Alice", "files");
    assert!(
        still_hashing(&mut alice, false),
        "Alice finished hashing: proves nothing"
    );
    assert_eq!(file_names(&before), ["small.txt"]);

    let is = |kind: &str, l: &str| l.contains(&format!("\"type\":\"{kind}\""));
    while !alice.lines_so_far().iter().any(|l| is("sharing", l)) {
        alice.wait_line("the `sharing` event", STARTUP, |l| is("sharing", l));
    }
    let events: Vec<Value> = alice
        .lines_so_far()
        .iter()
        .filter(|l| is("hashing", l) || is("sharing", l))
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let (sharing, progress) = events.split_last().expect("the sharing event");
    assert_eq!(
        sharing["type"], "sharing",
        "hashing events after the summary"
    );
    assert!(!progress.is_empty(), "no hashing event while hashing");
    let mut last = 0;
    for p in progress {
        assert_eq!(p["file"], "big.bin", "{p}");
        assert_eq!(p["total"].as_u64(), Some(size + 17), "{p}");
        assert_eq!(p["rescan"], false, "{p}");
        let done = p["done"].as_u64().expect("done");
        assert!(done >= last && done < size + 17, "{p}");
        last = done;
    }
    assert_eq!(sharing["files"], 2, "{sharing}");
    assert_eq!(sharing["hashed"], 2, "{sharing}");

    let (after, _) = bob.ask("files Alice", "files");
    assert_eq!(file_names(&after), ["big.bin", "small.txt"]);
    let big = &after["files"][0];
    assert_eq!(big["size"].as_u64(), Some(size), "{after}");
}

#[test]
fn a_folder_fetch_is_a_folder_file_event_per_file_and_one_folder_done() {
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    let tree = dirs.shared.join("Album");
    for (path, bytes) in [("a/x.txt", &b"x\n"[..]), ("a/y.txt", b"y\n"), ("z", b"")] {
        let p = tree.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let _alice = Peer::serve_in("Alice", tracker.addr, dirs, &[]);
    let bob = PeerDirs::new();
    let out = run_batch_with(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice Album\n",
        &["--json"],
        BATCH_TIMEOUT,
    );
    out.assert_success();
    let evs = events(&out.stdout);
    let mut paths: Vec<&str> = of_type(&evs, "folder_file")
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    paths.sort();
    // The empty file has nothing to verify: it is made when the tree is placed.
    assert_eq!(paths, ["a/x.txt", "a/y.txt"], "{out}");
    let done = of_type(&evs, "folder_done");
    assert_eq!(done.len(), 1, "{out}");
    assert_eq!(done[0]["files"], 3);
    assert_eq!(done[0]["sources"], serde_json::json!(["Alice"]));
    assert!(done[0]["folder_id"].as_str().unwrap().starts_with("tree1:"));
    let last = *of_type(&evs, "progress").last().expect("a progress event");
    assert_eq!(
        (&last["files_done"], &last["files_total"]),
        (&3.into(), &3.into()),
        "{out}"
    );
    assert_eq!(last["file"], "Album/");
}
