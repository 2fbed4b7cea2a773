use super::super::fixture::{bytes, fixture};
use super::super::{SharedIndex, plan_scan};
use crate::peer::folder::manifest::EntryKind;
use crate::peer::folder::path_rules::{Kind, MAX_DEPTH};
use std::fs;
use std::os::unix::fs::symlink;

fn paths(shape: &TreeShape) -> Vec<(&str, Kind)> {
    shape
        .entries
        .iter()
        .map(|(p, k)| (p.as_str(), *k))
        .collect()
}

use super::*;

#[test]
fn a_nested_tree_is_walked_with_empty_files_and_folders() {
    let fx = fixture();
    let album = fx.shared.join("Album");
    fs::create_dir_all(album.join("sub dir/深い")).unwrap();
    fs::create_dir_all(album.join("empty")).unwrap();
    fs::write(album.join("a.txt"), b"a").unwrap();
    fs::write(album.join("zero"), b"").unwrap();
    fs::write(album.join("sub dir/深い/b c.bin"), bytes(1000, 1)).unwrap();
    let canon = fs::canonicalize(&fx.shared).unwrap();
    let w = walk_tree(&fx.shared, &canon, "Album");
    assert!(w.skipped.is_empty(), "{:?}", w.skipped);
    let shape = w.shape.unwrap();
    assert_eq!(
        paths(&shape),
        [
            ("a.txt", Kind::File),
            ("empty", Kind::EmptyFolder),
            ("sub dir/深い/b c.bin", Kind::File),
            ("zero", Kind::File),
        ]
    );
    let mut names: Vec<&str> = w.candidates.iter().map(|c| c.name()).collect();
    names.sort();
    assert_eq!(
        names,
        ["Album/a.txt", "Album/sub dir/深い/b c.bin", "Album/zero"]
    );
}

#[test]
fn names_breaking_the_path_rules_are_skipped_with_the_rule() {
    let fx = fixture();
    let album = fx.shared.join("Album");
    fs::create_dir_all(&album).unwrap();
    for name in [
        "CON",
        "nul.txt",
        "trailing.",
        "a:b",
        "back\\slash",
        ".hidden",
        "ok",
    ] {
        fs::write(album.join(name), b"x").unwrap();
    }
    let canon = fs::canonicalize(&fx.shared).unwrap();
    let w = walk_tree(&fx.shared, &canon, "Album");
    assert_eq!(paths(w.shape.as_ref().unwrap()), [("ok", Kind::File)]);
    let reason = |n: &str| {
        w.skipped
            .iter()
            .find(|(p, _)| p == &format!("Album/{n}"))
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{n} not skipped: {:?}", w.skipped))
    };
    assert!(reason("CON").contains("Windows device name"));
    assert!(reason("nul.txt").contains("Windows device name"));
    assert!(reason("trailing.").contains("ends with a dot"));
    assert!(reason("a:b").contains("':'"));
    assert!(reason("back\\slash").contains("'\\'"));
    assert!(reason(".hidden").contains("hidden"));
}

#[test]
fn nfd_names_are_listed_in_nfc_and_read_under_their_own_name() {
    let fx = fixture();
    let album = fx.shared.join("Album");
    fs::create_dir_all(&album).unwrap();
    fs::write(album.join("cafe\u{301}"), b"x").unwrap();
    let canon = fs::canonicalize(&fx.shared).unwrap();
    let w = walk_tree(&fx.shared, &canon, "Album");
    assert_eq!(
        paths(w.shape.as_ref().unwrap()),
        [("caf\u{e9}", Kind::File)]
    );
    assert_eq!(w.candidates[0].name(), "Album/caf\u{e9}");
}

#[test]
fn names_that_clash_after_case_folding_keep_the_folder_from_being_shared() {
    let fx = fixture();
    let album = fx.shared.join("Album");
    fs::create_dir_all(&album).unwrap();
    fs::write(album.join("Readme"), b"1").unwrap();
    fs::write(album.join("README"), b"2").unwrap();
    let canon = fs::canonicalize(&fx.shared).unwrap();
    let w = walk_tree(&fx.shared, &canon, "Album");
    assert!(w.shape.is_none());
    assert!(w.candidates.is_empty());
    assert!(
        w.skipped
            .iter()
            .any(|(n, r)| n == "Album" && r.contains("differ only in case"))
    );
}

#[test]
fn symlinks_never_lead_out_of_shared_or_into_folders() {
    let fx = fixture();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"s").unwrap();
    let album = fx.shared.join("Album");
    fs::create_dir_all(album.join("d")).unwrap();
    fx.write("top.txt", b"t");
    symlink(outside.path().join("secret"), album.join("out")).unwrap();
    symlink(outside.path(), album.join("outdir")).unwrap();
    symlink(&album, album.join("d/loop")).unwrap();
    symlink(fx.shared.join("top.txt"), album.join("in")).unwrap();
    let canon = fs::canonicalize(&fx.shared).unwrap();
    let w = walk_tree(&fx.shared, &canon, "Album");
    assert_eq!(
        paths(w.shape.as_ref().unwrap()),
        [("d", Kind::EmptyFolder), ("in", Kind::File)]
    );
    let skipped: Vec<&str> = w.skipped.iter().map(|(n, _)| n.as_str()).collect();
    for n in ["Album/out", "Album/outdir", "Album/d/loop"] {
        assert!(skipped.contains(&n), "{n} not skipped: {skipped:?}");
    }
}

#[test]
fn folders_deeper_than_the_limit_are_skipped() {
    let fx = fixture();
    let mut deep = fx.shared.join("Album");
    for _ in 0..MAX_DEPTH + 3 {
        deep.push("d");
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("f"), b"x").unwrap();
    let canon = fs::canonicalize(&fx.shared).unwrap();
    let w = walk_tree(&fx.shared, &canon, "Album");
    let shape = w.shape.unwrap();
    assert_eq!(shape.entries.len(), 1);
    assert_eq!(shape.entries[0].0.depth(), MAX_DEPTH - 1);
    assert_eq!(shape.entries[0].1, Kind::EmptyFolder);
    assert!(w.skipped.iter().any(|(_, r)| r.contains("levels deep")));
}

#[test]
fn the_index_offers_a_folder_once_its_files_are_hashed_and_lists_it_apart() {
    let fx = fixture();
    let album = fx.shared.join("Album");
    fs::create_dir_all(album.join("empty")).unwrap();
    fs::write(album.join("a"), b"same").unwrap();
    fs::create_dir_all(album.join("b")).unwrap();
    fs::write(album.join("b/c"), b"same").unwrap();
    fx.write("loose.txt", b"loose");
    let (index, report) = fx.scan();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    // Files of the tree are not listed as top-level files.
    let names: Vec<String> = index.file_infos().into_iter().map(|f| f.name).collect();
    assert_eq!(names, ["loose.txt"]);
    let infos = index.folder_infos();
    assert_eq!(infos.len(), 1);
    assert_eq!(
        (
            infos[0].name.as_str(),
            infos[0].entries,
            infos[0].files,
            infos[0].size
        ),
        ("Album", 3, 2, 8)
    );
    let m = index.folder_by_id(&infos[0].id).unwrap();
    assert!(matches!(
        m.entries()[0].kind,
        EntryKind::File { size: 4, .. }
    ));
    // Its files are served by content id like any other.
    let EntryKind::File { id, .. } = m.entries()[0].kind else {
        unreachable!()
    };
    assert!(index.by_content_id(&id).is_some());

    // Built file by file (as the hash worker does), the folder appears with its last file.
    let plan = plan_scan(&fx.shared, &fx.shared.join("no-cache")).unwrap();
    let mut built = SharedIndex::from_files(plan.ready);
    built.set_folders(plan.folders);
    assert!(built.folder_infos().is_empty());
    let mut to_hash = plan.to_hash;
    let at = to_hash
        .iter()
        .position(|c| c.name() == "Album/b/c")
        .unwrap();
    let last = to_hash.remove(at);
    for c in to_hash {
        built.insert(super::super::hash_candidate(c, |_| true).unwrap());
    }
    let before_last = built.folder_infos().len();
    built.insert(super::super::hash_candidate(last, |_| true).unwrap());
    assert_eq!(before_last, 0);
    assert_eq!(built.folder_infos(), infos);
}

#[test]
fn the_same_tree_under_two_names_has_one_id() {
    let fx = fixture();
    for top in ["One", "Two"] {
        let d = fx.shared.join(top);
        fs::create_dir_all(d.join("x")).unwrap();
        fs::write(d.join("x/f"), b"f").unwrap();
    }
    let (index, _) = fx.scan();
    let infos = index.folder_infos();
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[0].id, infos[1].id);
}

#[test]
fn a_second_scan_takes_a_trees_files_from_the_hash_cache() {
    let fx = fixture();
    let album = fx.shared.join("Album");
    fs::create_dir_all(album.join("d")).unwrap();
    fs::write(album.join("d/x"), bytes(5000, 4)).unwrap();
    fs::write(album.join("y"), b"y").unwrap();
    let (first, r1) = fx.scan();
    assert_eq!(r1.hashed, 2);
    let (second, r2) = fx.scan();
    assert_eq!((r2.hashed, r2.from_cache), (0, 2));
    assert_eq!(first.folder_infos(), second.folder_infos());
    assert_eq!(second.folder_infos().len(), 1);
}

/// The walk reads each folder through the descriptor it opened, so a folder swapped for a
/// symlink to elsewhere after it was opened is still walked as the folder it was (moved, but
/// inside shared/): what the link points to is never listed. Path by path, the walk listed
/// the link's target.
#[test]
fn a_folder_swapped_for_a_symlink_mid_walk_is_not_walked_through() {
    let fx = fixture();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"s").unwrap();
    let album = fx.shared.join("Album");
    fs::create_dir_all(&album).unwrap();
    fs::write(album.join("real"), b"r").unwrap();
    let canon = fs::canonicalize(&fx.shared).unwrap();
    let opened = Dir::open_root(&fx.shared)
        .unwrap()
        .open_dir("Album")
        .unwrap();
    fs::rename(&album, fx.shared.join("Album.moved")).unwrap();
    symlink(outside.path(), &album).unwrap();
    let mut w = Walker {
        canon: &canon,
        top: "Album",
        entries: Vec::new(),
        candidates: Vec::new(),
        skipped: Vec::new(),
        over: false,
    };
    w.walk(&opened, &album, "", 1);
    let listed: Vec<&str> = w.entries.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(listed, ["real"]);
    // And the stat came through the descriptor: the real file's inode, not anything outside.
    let real = fs::metadata(fx.shared.join("Album.moved/real")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(w.candidates[0].inode, real.ino());
}
