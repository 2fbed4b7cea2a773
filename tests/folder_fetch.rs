//! Fetching folders (issue 15, the receiving side) on the real binary: `get PEER FOLDER`
//! fetches a whole tree, each file verified, and places it beneath downloads/ identical to
//! the sender's; a hostile listing is refused with nothing written; a killed fetch resumes
//! without fetching finished files again.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;

/// A nested tree with an empty file, an empty folder, spaces, unicode names and a file that
/// appears twice.
fn nested(root: &Path) {
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a b/日本語.txt", b"nihongo\n".to_vec()),
        ("a b/sub/zero", Vec::new()),
        ("one.bin", pseudo_random(700_000, 3)),
        ("copy of one.bin", pseudo_random(700_000, 3)),
        ("é/deep/x", b"x".to_vec()),
    ];
    for (path, bytes) in &files {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }
    fs::create_dir_all(root.join("a b/empty")).unwrap();
}

/// `diff -r` finds no difference between the two trees (empty folders included).
fn assert_same_tree(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trees differ:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(b.join("a b/empty").is_dir(), "the empty folder is missing");
}

#[test]
fn get_peer_folder_fetches_the_whole_tree_identical() {
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    nested(&dirs.shared.join("Album"));
    let shared = dirs.shared.clone();
    let _alice = Peer::serve_in("Alice", tracker.addr, dirs, &[]);
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice Album\n",
    );
    out.assert_success();
    assert_same_tree(&shared.join("Album"), &bob.downloads.join("Album"));
    let line = out
        .stdout_lines()
        .into_iter()
        .find(|l| l.starts_with("saved "))
        .unwrap_or_else(|| panic!("no summary line\n{out}"));
    assert!(line.contains("Album/ (5 files, "), "{line}");
    assert!(line.contains("verified tree1:"), "{line}");
    // Nothing else was left in downloads/: no partial tree, no record, no loose files.
    let top: Vec<String> = fs::read_dir(&bob.downloads)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".p2p")
        .collect();
    assert_eq!(top, vec!["Album".to_string()], "{out}");
}

/// The verified contents in Bob's `.p2p/tree-files/` (named by content id; partial files and
/// the records' folder start with a dot).
fn verified_count(dirs: &PeerDirs) -> usize {
    fs::read_dir(dirs.downloads.join(".p2p/tree-files"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

/// The JSON objects of type `kind` among `lines`.
fn json_of(lines: &str, kind: &str) -> Vec<serde_json::Value> {
    lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == kind)
        .collect()
}

#[test]
fn a_folder_fetch_killed_halfway_resumes_identical_without_fetching_finished_files_again() {
    const FILES: usize = 24;
    const SIZE: usize = 100_000;
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    let tree = dirs.shared.join("Tree");
    for i in 0..FILES {
        let p = tree.join(format!("d{}/f{i:02}.bin", i % 3));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, pseudo_random(SIZE, 100 + i as u64)).unwrap();
    }
    let shared = dirs.shared.clone();
    let _alice = Peer::serve_in("Alice", tracker.addr, dirs, &[]);
    let bob = PeerDirs::new();
    // Slowed down so the kill lands mid-way: 2.4 MB at 600 kB/s is 4 s.
    let mut run = spawn_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice Tree\n",
        &["--max-down", "600kB/s"],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while verified_count(&bob) < FILES / 3 {
        assert!(
            std::time::Instant::now() < deadline && run.is_running(),
            "no content verified in time\n{}",
            run.diagnostics()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    run.signal(libc::SIGKILL);
    run.wait_exit(std::time::Duration::from_secs(10));
    let kept = verified_count(&bob);
    assert!(kept < FILES, "the kill came too late to test anything");
    assert!(
        !bob.downloads.join("Tree").exists(),
        "nothing under the final name mid-way"
    );

    // `downloads` lists the unfinished folder as one entry, not its files.
    let listed = run_batch("Bob", tracker.addr, &bob, "downloads\n");
    listed.assert_success();
    assert!(
        listed.stdout.contains("Tree/") && listed.stdout.contains("from Alice"),
        "{listed}"
    );
    assert!(!listed.stdout.contains("p2p-part"), "{listed}");
    // `resume` with no name goes on with the folder (no file download is unfinished).
    let out = run_batch_with(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nresume\n",
        &["--json"],
        std::time::Duration::from_secs(60),
    );
    out.assert_success();
    assert_same_tree_plain(&shared.join("Tree"), &bob.downloads.join("Tree"));
    let done = json_of(&out.stdout, "folder_done");
    assert_eq!(done.len(), 1, "{out}");
    let kept_now = done[0]["contents_kept"].as_u64().unwrap() as usize;
    assert!(
        kept_now >= kept,
        "kept {kept_now} of the {kept} verified\n{out}"
    );
    // Only the files not verified before the kill crossed the network again (a file being
    // fetched at the kill may be partly kept too).
    let fetched = done[0]["bytes_fetched"].as_u64().unwrap() as usize;
    assert!(
        fetched <= (FILES - kept_now) * SIZE,
        "fetched {fetched}\n{out}"
    );
    assert_eq!(
        json_of(&out.stdout, "folder_file").len(),
        FILES - kept_now,
        "one folder_file event per file fetched in this run\n{out}"
    );
}

fn assert_same_tree_plain(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trees differ:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_tree_of_ten_thousand_small_files_is_fetched_whole() {
    const FILES: usize = 10_000;
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    let tree = dirs.shared.join("Many");
    for i in 0..FILES {
        let p = tree.join(format!("{:02}/{i:05}.txt", i % 100));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, format!("file {i}\n")).unwrap();
    }
    let shared = dirs.shared.clone();
    let _alice = Peer::serve_in("Alice", tracker.addr, dirs, &[]);
    let bob = PeerDirs::new();
    let started = std::time::Instant::now();
    let out = run_batch_timeout(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 30\nget Alice Many\n",
        std::time::Duration::from_secs(120),
    );
    out.assert_success();
    eprintln!("10,000 files fetched in {:.1?}", started.elapsed());
    assert_same_tree_plain(&shared.join("Many"), &bob.downloads.join("Many"));
}

#[test]
fn hostile_entry_names_from_a_peer_are_refused_and_nothing_is_written() {
    use common::fake_peer::{Behaviour, FakePeer};
    use p2p::wire::{FolderEntry, FolderId};
    let content = b"owned\n".to_vec();
    let id = cid(&content);
    let entry = |path: &str| FolderEntry {
        path: path.to_string(),
        size: content.len() as u64,
        id: Some(id),
    };
    // Each folder claims an id of its own (any: the entry is refused before the id is checked).
    let cases = [
        ("Up", "../escape.txt", "'..'"),
        ("Abs", "/tmp/escape.txt", "absolute"),
        ("Deep", "a/../../escape.txt", "'..'"),
        ("Back", "a\\..\\escape.txt", "contains '\\'"),
    ];
    let folders = cases
        .iter()
        .enumerate()
        .map(|(i, (name, path, _))| {
            (
                name.to_string(),
                FolderId([i as u8 + 1; 32]),
                vec![entry(path)],
            )
        })
        .collect();
    let tracker = Tracker::start();
    let _mallory = FakePeer::start_with_folders(
        "Mallory",
        tracker.addr,
        "bait.txt",
        content.clone(),
        Behaviour::Honest,
        folders,
    );
    let bob = PeerDirs::new();
    for (name, path, rule) in cases {
        let out = run_batch(
            "Bob",
            tracker.addr,
            &bob,
            &format!("wait-peer Mallory 10\nget Mallory {name}\n"),
        );
        out.assert_failure();
        let error = out.error_text();
        assert!(
            error.contains("refused") && error.contains("nothing was written"),
            "{path}: {error}\n{out}"
        );
        assert!(
            error.to_lowercase().contains(rule),
            "{path}: the rule is named\n{error}"
        );
        assert!(!bob.downloads.join(name).exists(), "{out}");
    }
    // Nothing anywhere under Bob's root but what a peer keeps.
    let escaped: Vec<String> = list_all(bob.root())
        .into_iter()
        .filter(|p| p.contains("escape"))
        .collect();
    assert!(escaped.is_empty(), "{escaped:?}");
    assert!(!Path::new("/tmp/escape.txt").exists());
}

#[test]
fn a_folder_swapped_for_a_symlink_mid_download_is_never_written_through() {
    const FILES: usize = 24;
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    let tree = dirs.shared.join("Tree");
    for i in 0..FILES {
        let p = tree.join(format!("d{}/f{i:02}.bin", i % 3));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, pseudo_random(100_000, 200 + i as u64)).unwrap();
    }
    let shared = dirs.shared.clone();
    let _alice = Peer::serve_in("Alice", tracker.addr, dirs, &[]);
    let bob = PeerDirs::new();
    let outside = tempfile::tempdir().unwrap();
    let mut run = spawn_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice Tree\n",
        &["--max-down", "600kB/s"],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while verified_count(&bob) < 1 {
        assert!(
            std::time::Instant::now() < deadline && run.is_running(),
            "no content verified in time\n{}",
            run.diagnostics()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // The folder the verified files go to becomes a link to a folder outside downloads/.
    let files = bob.downloads.join(".p2p/tree-files");
    fs::rename(&files, bob.root().join("moved-away")).unwrap();
    std::os::unix::fs::symlink(outside.path(), &files).unwrap();
    let status = run.wait_exit(std::time::Duration::from_secs(60));
    assert!(!status.success(), "{}", run.diagnostics());
    let written: Vec<_> = fs::read_dir(outside.path()).unwrap().collect();
    assert!(written.is_empty(), "written through the link: {written:?}");
    assert!(!bob.downloads.join("Tree").exists());
    let stderr = run.stderr_text();
    assert!(
        stderr.contains("the folder 'Tree' is unfinished")
            && stderr.contains("is a symbolic link now; nothing is written through it"),
        "{stderr}"
    );
    // Put back, `resume Tree` finishes it from what was verified.
    fs::remove_file(&files).unwrap();
    fs::rename(bob.root().join("moved-away"), &files).unwrap();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nresume Tree\n",
    );
    out.assert_success();
    assert_same_tree_plain(&shared.join("Tree"), &bob.downloads.join("Tree"));
}

#[test]
fn get_by_folder_id_prefix_fetches_from_every_peer_that_has_the_tree() {
    let tracker = Tracker::start();
    let (a, c) = (PeerDirs::new(), PeerDirs::new());
    nested(&a.shared.join("Album"));
    // The same tree under another name on a second peer: one folder id.
    nested(&c.shared.join("Copy"));
    let shared = a.shared.clone();
    let _alice = Peer::serve_in("Alice", tracker.addr, a, &[]);
    let _carol = Peer::serve_in("Carol", tracker.addr, c, &[]);
    let bob = PeerDirs::new();
    let listed = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nfiles Alice\n",
    );
    let id = listed
        .stdout_lines()
        .into_iter()
        .find(|l| l.starts_with("Album/"))
        .and_then(|l| l.split_whitespace().last().map(str::to_string))
        .unwrap_or_else(|| panic!("no folder line\n{listed}"));
    let prefix = &id[..6 + 10];
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        &format!("wait-peer Alice 10\nwait-peer Carol 10\nget {prefix}\n"),
    );
    out.assert_success();
    let saved = bob.downloads.join("Album").exists() || bob.downloads.join("Copy").exists();
    assert!(saved, "{out}");
    let name = if bob.downloads.join("Album").exists() {
        "Album"
    } else {
        "Copy"
    };
    assert_same_tree(&shared.join("Album"), &bob.downloads.join(name));
    let line = out
        .stdout_lines()
        .into_iter()
        .find(|l| l.starts_with("saved "))
        .unwrap_or_else(|| panic!("no summary line\n{out}"))
        .to_string();
    assert!(
        line.contains("Alice") && line.contains("Carol"),
        "both are sources: {line}"
    );
    // A prefix nobody has: a clear error.
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget tree1:00000000\n",
    );
    out.assert_failure();
}

#[test]
fn cancel_of_an_unfinished_folder_removes_its_record_and_verified_files() {
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    for i in 0..24 {
        let p = dirs.shared.join(format!("Tree/f{i:02}.bin"));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, pseudo_random(100_000, 300 + i as u64)).unwrap();
    }
    let _alice = Peer::serve_in("Alice", tracker.addr, dirs, &[]);
    let bob = PeerDirs::new();
    let mut run = spawn_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice Tree\n",
        &["--max-down", "600kB/s"],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while verified_count(&bob) < 2 {
        assert!(
            std::time::Instant::now() < deadline && run.is_running(),
            "no content verified in time\n{}",
            run.diagnostics()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    run.signal(libc::SIGKILL);
    run.wait_exit(std::time::Duration::from_secs(10));
    let out = run_batch("Bob", tracker.addr, &bob, "cancel Tree\ndownloads\n");
    out.assert_success();
    // Listed at start-up as unfinished; after `cancel`, `downloads` lists nothing.
    let after = out
        .stdout
        .split("cancelled Tree")
        .nth(1)
        .unwrap_or_default();
    assert!(after.contains("no unfinished downloads"), "{out}");
    let left: Vec<_> = fs::read_dir(bob.downloads.join(".p2p/tree-files"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n != ".p2p")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let records = fs::read_dir(bob.downloads.join(".p2p/folders"))
        .unwrap()
        .count();
    assert_eq!(records, 0);
    // Nothing left to cancel now: an error.
    run_batch("Bob", tracker.addr, &bob, "cancel Tree\n").assert_failure();
}
