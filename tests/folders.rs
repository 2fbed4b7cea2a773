//! Folders shared as trees (issue 15), checked from outside on the real binary: `files PEER`
//! lists top-level folders with their file count, size and folder id, and a folder's listing
//! is served in pages that a receiver checks entry by entry and against the id.

mod common;
mod hardening_support;

use common::*;
use hardening_support::*;
use p2p::peer::folder::manifest::{EntryKind, FolderManifest, PagedListing};
use p2p::wire::{FolderInfo, Message};
use std::fs;
use std::path::Path;

/// A nested tree with an empty file, an empty folder, spaces and unicode names.
fn nested(root: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let files = vec![
        ("a b/日本語.txt", b"nihongo\n".to_vec()),
        ("a b/sub/zero", Vec::new()),
        ("one.bin", pseudo_random(300_000, 3)),
        ("é/deep/x", b"x".to_vec()),
    ];
    for (path, bytes) in &files {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }
    fs::create_dir_all(root.join("a b/empty")).unwrap();
    files
}

/// The folder id the tree of [`nested`] must have, computed from the PROTOCOL.md rules.
fn nested_id(files: &[(&str, Vec<u8>)]) -> p2p::wire::FolderId {
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    FolderManifest::of_contents(&files, &["a b/empty"])
        .unwrap()
        .id()
}

#[test]
fn files_lists_top_level_folders_with_file_count_size_and_id() {
    let tracker = Tracker::start();
    let dirs = PeerDirs::with_files(&[("loose.txt", b"loose\n")]);
    let files = nested(&dirs.shared.join("Album"));
    let _alice = Peer::serve_in("Alice", tracker.addr, dirs, &[]);
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nfiles Alice\n",
    );
    out.assert_success();
    let id = nested_id(&files);
    let line = out
        .stdout_lines()
        .into_iter()
        .find(|l| l.starts_with("Album/"))
        .unwrap_or_else(|| panic!("no folder line\n{out}"));
    assert_eq!(line, format!("Album/  4 files  293.0 KiB  {id}"), "{out}");
    // The tree's files are not listed as loose files; the loose file still is.
    assert!(out.stdout.contains("loose.txt  6 B"), "{out}");
    assert!(!out.stdout.contains("one.bin"), "{out}");
}

fn folders(s: &mut SecureStream) -> Vec<FolderInfo> {
    send(s, &Message::ListFolders { req: 1 }).unwrap();
    match recv(s).unwrap() {
        Message::Folders { folders, .. } => folders,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_listing_larger_than_a_page_is_served_in_pages_that_check_against_the_id() {
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    // 1,500 entries with 200-byte names: about 400 KiB of listing, more than one page.
    let tree = dirs.shared.join("Big");
    for i in 0..1_500 {
        let dir = tree.join(format!("d{:02}", i % 30));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("{i:05}{}", "n".repeat(195))),
            i.to_string(),
        )
        .unwrap();
    }
    fs::create_dir_all(tree.join("zz empty")).unwrap();
    let alice = Peer::serve_in("Alice", tracker.addr, dirs, &[]);
    let mut s = probe(alice.addr);
    let listed = folders(&mut s);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let info = &listed[0];
    assert_eq!((info.entries, info.files), (1_501, 1_500));
    let mut listing = PagedListing::new(info.id);
    let mut pages = 0;
    let manifest = loop {
        let start = listing.next_start();
        send(
            &mut s,
            &Message::GetFolder {
                req: 2 + pages,
                id: info.id,
                start,
            },
        )
        .unwrap();
        pages += 1;
        let Message::Folder {
            id,
            total,
            start,
            entries,
            ..
        } = recv(&mut s).unwrap()
        else {
            panic!("not a Folder page")
        };
        if let Some(m) = listing.handle_page(&id, total, start, &entries).unwrap() {
            break m;
        }
    };
    assert!(pages > 1, "one page only");
    assert_eq!(manifest.entries().len(), 1_501);
    // A file of the tree is served by its content id like any other.
    let EntryKind::File { id, .. } = manifest.entries()[0].kind else {
        panic!("first entry is not a file")
    };
    send(
        &mut s,
        &Message::GetChunk {
            req: 99,
            id,
            index: 0,
        },
    )
    .unwrap();
    assert!(matches!(recv(&mut s).unwrap(), Message::Chunk { .. }));
    // An unknown folder id is refused by code.
    send(
        &mut s,
        &Message::GetFolder {
            req: 100,
            id: p2p::wire::FolderId([9; 32]),
            start: 0,
        },
    )
    .unwrap();
    assert!(matches!(
        recv(&mut s).unwrap(),
        Message::Error {
            code: p2p::wire::ErrorCode::NoSuchFile,
            ..
        }
    ));
}

/// `shared` shows a tree as its folder line, not its files as loose ones or as "seeding".
#[test]
fn shared_shows_a_tree_as_one_folder_line() {
    let tracker = Tracker::start();
    let dirs = PeerDirs::with_files(&[("loose.txt", b"loose\n")]);
    let files = nested(&dirs.shared.join("Album"));
    let out = run_batch("Alice", tracker.addr, &dirs, "rescan\nshared\n");
    out.assert_success();
    let id = nested_id(&files);
    assert!(
        out.stdout
            .contains(&format!("Album/  4 files  293.0 KiB  {id}")),
        "{out}"
    );
    assert!(!out.stdout.contains("seeding"), "{out}");
    assert!(!out.stdout.contains("one.bin"), "{out}");
}
