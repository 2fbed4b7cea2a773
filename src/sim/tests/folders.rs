//! Folders shared as trees (issue 15) in fake time: `files PEER` lists a peer's top-level
//! folders with the folder id the listing rules give, and the same tree under two names, on
//! two peers, has one id. (Process test: `tests/folders.rs`.)

use super::pseudo_random;
use crate::peer::event::Event;
use crate::peer::folder::manifest::FolderManifest;
use crate::sim::peers::Dirs;
use crate::sim::{PeerSpec, Sim};
use crate::tracker::TrackerConfig;
use std::time::Duration;

fn write_tree(dirs: &Dirs, top: &str, files: &[(&str, Vec<u8>)]) {
    for (path, bytes) in files {
        let p = dirs.shared.join(top).join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    std::fs::create_dir_all(dirs.shared.join(top).join("empty")).unwrap();
}

fn expected_id(files: &[(&str, Vec<u8>)]) -> String {
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    let tree = FolderManifest::of_contents(&files, &["empty"]).unwrap();
    tree.id().to_string()
}

#[test]
fn files_lists_folders_and_one_tree_has_one_id_under_any_name_on_any_peer() {
    let files = vec![
        ("a/b/c.bin", pseudo_random(70_000, 1)),
        ("a/zero", Vec::new()),
        ("ü ber/x", b"x".to_vec()),
    ];
    let mut sim = Sim::new();
    sim.add_tracker(TrackerConfig::default());
    let alice_dirs = Dirs::new();
    write_tree(&alice_dirs, "Album", &files);
    sim.add_peer(PeerSpec::new("Alice").dirs(&alice_dirs));
    let carol_dirs = Dirs::new();
    write_tree(&carol_dirs, "Copy of album", &files);
    sim.add_peer(PeerSpec::new("Carol").dirs(&carol_dirs));
    let bob = sim.add_peer(
        PeerSpec::new("Bob")
            .batch("wait-peer Alice 10\nwait-peer Carol 10\nfiles Alice\nfiles Carol\n"),
    );
    assert_eq!(
        sim.run_to_exit(bob, Duration::from_secs(60)),
        0,
        "{}",
        sim.diagnostics(bob)
    );
    let listed: Vec<(String, String, u64, u64)> = sim
        .events(bob)
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Files { folders, .. } => Some(folders.clone()),
            _ => None,
        })
        .flatten()
        .map(|f| (f.name, f.folder_id, f.files, f.size))
        .collect();
    let id = expected_id(&files);
    assert_eq!(
        listed,
        [
            ("Album".to_string(), id.clone(), 3, 70_001),
            ("Copy of album".to_string(), id, 3, 70_001),
        ],
        "{}",
        sim.diagnostics(bob)
    );
}

/// `get PEER FOLDER` in fake time: the tree arrives whole (empty file and empty folder
/// included), a `FolderFile` event for each file with bytes (a content that appears twice
/// is fetched once but both files are reported), one `FolderDone`. (Process tests:
/// `tests/folder_fetch.rs`.)
#[test]
fn get_peer_folder_fetches_each_content_once_and_places_the_tree() {
    let twice = pseudo_random(300_000, 2);
    let files = vec![
        ("a/b/c.bin", twice.clone()),
        ("a/zero", Vec::new()),
        ("copy/c.bin", twice),
        ("ü ber/x", b"x".to_vec()),
    ];
    let mut sim = Sim::new();
    sim.add_tracker(TrackerConfig::default());
    let alice_dirs = Dirs::new();
    write_tree(&alice_dirs, "Album", &files);
    sim.add_peer(PeerSpec::new("Alice").dirs(&alice_dirs));
    let bob = sim.add_peer(PeerSpec::new("Bob").batch("wait-peer Alice 10\nget Alice Album\n"));
    let code = sim.run_to_exit(bob, Duration::from_secs(60));
    assert_eq!(code, 0, "{}", sim.diagnostics(bob));
    let home = sim.dirs(bob).downloads.join("Album");
    for (path, bytes) in &files {
        assert!(
            std::fs::read(home.join(path)).unwrap() == *bytes,
            "{path} differs"
        );
    }
    assert!(home.join("empty").is_dir());
    let events = sim.events(bob);
    let mut reported: Vec<String> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::FolderFile { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    reported.sort();
    assert_eq!(reported, ["a/b/c.bin", "copy/c.bin", "ü ber/x"]);
    let done: Vec<(u64, u64, u64)> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::FolderDone {
                files,
                size,
                bytes_fetched,
                ..
            } => Some((*files, *size, *bytes_fetched)),
            _ => None,
        })
        .collect();
    // 4 files, 600,001 bytes in the tree, 300,001 fetched: the twice-seen content once.
    assert_eq!(done, [(4, 600_001, 300_001)], "{}", sim.diagnostics(bob));
}
