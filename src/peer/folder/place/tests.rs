use super::*;
use crate::peer::folder::manifest::Entry;
use crate::peer::folder::path_rules::EntryPath;
use crate::wire::Sha256;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;

fn id_of(bytes: &[u8]) -> ContentId {
    ContentId::from_parts(bytes.len() as u64, 262_144, &[Sha256::of(bytes)])
}

fn file(path: &str, bytes: &[u8]) -> Entry {
    Entry {
        path: EntryPath::parse(path).unwrap(),
        kind: EntryKind::File {
            size: bytes.len() as u64,
            id: id_of(bytes),
        },
    }
}

fn empty_folder(path: &str) -> Entry {
    Entry {
        path: EntryPath::parse(path).unwrap(),
        kind: EntryKind::EmptyFolder,
    }
}

/// A downloads folder, with the verified files of `contents` in `.p2p/verified/` by id.
struct Setup {
    tmp: tempfile::TempDir,
    root: Dir,
    verified: Dir,
}

fn setup(contents: &[&[u8]]) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let vdir = tmp.path().join(".p2p/verified");
    std::fs::create_dir_all(&vdir).unwrap();
    for c in contents {
        std::fs::write(vdir.join(id_of(c).to_hex()), c).unwrap();
    }
    let root = Dir::open_root(tmp.path()).unwrap();
    let verified = Dir::open_root(&vdir).unwrap();
    Setup {
        tmp,
        root,
        verified,
    }
}

fn place(s: &Setup, name: &str, m: &FolderManifest) -> Result<(), PlaceError> {
    place_tree(&s.root, name, m, &s.verified, |id| id.to_hex())
}

fn nested() -> FolderManifest {
    sorted(vec![
        file("a b/日本語.txt", b"nihongo"),
        file("a b/copy of one", b"one"),
        empty_folder("a b/empty"),
        file("a b/sub/zero", b""),
        file("one", b"one"),
        file("é/deep/er/x", b"x"),
    ])
}

/// A manifest of `entries` in the listing's order (byte order of the paths).
fn sorted(mut entries: Vec<Entry>) -> FolderManifest {
    entries.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
    FolderManifest::new(entries).unwrap()
}

fn read(root: &Path, p: &str) -> Vec<u8> {
    std::fs::read(root.join(p)).unwrap()
}

#[test]
fn a_nested_tree_arrives_whole_with_empty_files_and_folders() {
    let s = setup(&[b"nihongo", b"one", b"x"]);
    place(&s, "Album", &nested()).unwrap();
    let t = s.tmp.path().join("Album");
    assert_eq!(read(&t, "a b/日本語.txt"), b"nihongo");
    assert_eq!(read(&t, "a b/copy of one"), b"one");
    assert_eq!(read(&t, "one"), b"one");
    assert_eq!(read(&t, "a b/sub/zero"), b"");
    assert_eq!(read(&t, "é/deep/er/x"), b"x");
    assert!(t.join("a b/empty").is_dir());
    assert_eq!(std::fs::read_dir(t.join("a b/empty")).unwrap().count(), 0);
    // A file that appears twice is one verified file under two names.
    let (a, b) = (
        std::fs::metadata(t.join("one")).unwrap(),
        std::fs::metadata(t.join("a b/copy of one")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert!(!s.tmp.path().join(".Album.p2p-part").exists());
}

#[test]
fn placing_again_after_an_interruption_continues() {
    let s = setup(&[b"nihongo", b"one", b"x"]);
    // An earlier run got this far: part of the tree, then a crash before the rename.
    let part = s.tmp.path().join(".Album.p2p-part");
    std::fs::create_dir_all(part.join("a b/sub")).unwrap();
    std::fs::write(part.join("a b/sub/zero"), b"").unwrap();
    std::fs::hard_link(
        s.tmp
            .path()
            .join(".p2p/verified")
            .join(id_of(b"one").to_hex()),
        part.join("one"),
    )
    .unwrap();
    place(&s, "Album", &nested()).unwrap();
    assert_eq!(read(&s.tmp.path().join("Album"), "one"), b"one");
}

#[test]
fn something_else_in_the_partial_tree_is_not_taken_for_ours() {
    let s = setup(&[b"nihongo", b"one", b"x"]);
    let part = s.tmp.path().join(".Album.p2p-part");
    std::fs::create_dir_all(&part).unwrap();
    std::fs::write(part.join("one"), b"not one").unwrap();
    assert!(matches!(
        place(&s, "Album", &nested()),
        Err(PlaceError::InTheWay { .. })
    ));
    assert!(!s.tmp.path().join("Album").exists());
    assert_eq!(read(&part, "one"), b"not one");
}

#[test]
fn an_existing_destination_is_never_replaced() {
    let s = setup(&[b"nihongo", b"one", b"x"]);
    std::fs::create_dir(s.tmp.path().join("Album")).unwrap();
    std::fs::write(s.tmp.path().join("Album/mine"), b"mine").unwrap();
    let e = place(&s, "Album", &nested()).unwrap_err();
    assert!(matches!(e, PlaceError::Exists { .. }), "{e}");
    assert_eq!(read(&s.tmp.path().join("Album"), "mine"), b"mine");
    assert_eq!(
        std::fs::read_dir(s.tmp.path().join("Album"))
            .unwrap()
            .count(),
        1
    );
    // The verified tree is kept for a later try under its partial name.
    assert_eq!(read(&s.tmp.path().join(".Album.p2p-part"), "one"), b"one");
}

#[test]
fn a_symlink_planted_in_the_partial_tree_is_not_written_through() {
    let s = setup(&[b"nihongo", b"one", b"x"]);
    let outside = tempfile::tempdir().unwrap();
    let part = s.tmp.path().join(".Album.p2p-part");
    std::fs::create_dir_all(&part).unwrap();
    symlink(outside.path(), part.join("a b")).unwrap();
    symlink(outside.path(), part.join("é")).unwrap();
    let e = place(&s, "Album", &nested()).unwrap_err();
    assert!(matches!(e, PlaceError::Entry { .. }), "{e}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    // And the partial folder itself swapped for a link: refused too.
    std::fs::remove_dir_all(&part).unwrap();
    symlink(outside.path(), &part).unwrap();
    assert!(place(&s, "Album", &nested()).is_err());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(!s.tmp.path().join("Album").exists());
}

#[test]
fn a_missing_verified_file_is_an_error_not_a_hole() {
    let s = setup(&[b"nihongo", b"one"]);
    let e = place(&s, "Album", &nested()).unwrap_err();
    assert!(
        matches!(e, PlaceError::Entry { ref path, .. } if path == "é/deep/er/x"),
        "{e}"
    );
    assert!(!s.tmp.path().join("Album").exists());
}

#[test]
fn ten_thousand_small_files_are_placed() {
    let contents: Vec<Vec<u8>> = (0..10_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
    let refs: Vec<&[u8]> = contents.iter().map(|c| c.as_slice()).collect();
    let s = setup(&refs);
    let m = sorted(
        contents
            .iter()
            .enumerate()
            .map(|(i, c)| file(&format!("d{:02}/f{i:05}", i % 100), c))
            .collect(),
    );
    place(&s, "Many", &m).unwrap();
    assert_eq!(
        read(&s.tmp.path().join("Many"), "d07/f09907"),
        9907u32.to_be_bytes()
    );
}
