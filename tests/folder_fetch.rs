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
