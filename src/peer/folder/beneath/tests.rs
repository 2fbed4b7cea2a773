use super::*;
use std::io::Write;
use std::os::unix::fs::symlink;

fn path(p: &str) -> EntryPath {
    EntryPath::parse(p).unwrap()
}

#[test]
fn names_that_are_not_one_component_are_refused_again() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Dir::open_root(tmp.path()).unwrap();
    for name in ["", ".", "..", "a/b", "../x", "/etc", "a\0b"] {
        let e = root.create_dir(name).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        assert!(root.create_new_file(name).is_err(), "{name:?}");
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn folders_are_created_component_by_component() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Dir::open_root(tmp.path()).unwrap();
    let dir = root.parent_of(&path("a/b c/é/f.txt"), true).unwrap();
    dir.create_new_file("f.txt")
        .unwrap()
        .write_all(b"x")
        .unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("a/b c/é/f.txt")).unwrap(),
        b"x"
    );
    // Without create, a missing folder is an error, not created.
    assert!(root.parent_of(&path("nope/f"), false).is_err());
    assert!(!tmp.path().join("nope").exists());
}

#[test]
fn a_symlink_in_the_way_is_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root = Dir::open_root(tmp.path()).unwrap();
    symlink(outside.path(), tmp.path().join("a")).unwrap();
    symlink(outside.path().join("f"), tmp.path().join("f")).unwrap();
    assert!(root.open_dir("a").is_err());
    assert!(root.create_dir("a").is_err());
    assert!(root.parent_of(&path("a/b/c"), true).is_err());
    assert!(root.create_new_file("f").is_err());
    assert!(root.open_file("f").is_err());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn a_folder_swapped_for_a_symlink_after_it_was_opened_is_not_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root = Dir::open_root(tmp.path()).unwrap();
    let a = root.parent_of(&path("a/x"), true).unwrap();
    // Someone moves a/ away and puts a link to elsewhere under its name.
    std::fs::rename(tmp.path().join("a"), tmp.path().join("a.moved")).unwrap();
    symlink(outside.path(), tmp.path().join("a")).unwrap();
    // The descriptor still names the folder it was opened on: the write stays beneath root.
    a.create_new_file("x").unwrap();
    assert!(tmp.path().join("a.moved/x").is_file());
    // Opening by name again meets the link and refuses it.
    assert!(root.parent_of(&path("a/y"), true).is_err());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn rename_and_link_never_replace() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Dir::open_root(tmp.path()).unwrap();
    std::fs::write(tmp.path().join("a"), b"a").unwrap();
    std::fs::write(tmp.path().join("b"), b"b").unwrap();
    let e = root.rename_noreplace("a", &root, "b").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    let e = root.link_from(&root, "a", "b").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(tmp.path().join("b")).unwrap(), b"b");
    root.link_from(&root, "a", "c").unwrap();
    root.rename_noreplace("c", &root, "d").unwrap();
    assert_eq!(std::fs::read(tmp.path().join("d")).unwrap(), b"a");
    assert!(root.stat("c").unwrap().is_none());
    root.remove_file("d").unwrap();
    assert!(root.stat("d").unwrap().is_none());
}
