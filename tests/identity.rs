//! `p2p peer --print-id` (issue 14): the id is made on first use, kept across runs, differs
//! between state folders, and a damaged key file is an error, never replaced.

mod common;

use common::*;
use p2p::identity::PeerId;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `p2p peer --downloads DOWNLOADS --print-id`, with no name, tracker or config: none is
/// needed to print the id. Blocks until it exits (it starts no networking).
fn print_id(downloads: &Path) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("peer")
        .arg("--downloads")
        .arg(downloads)
        .arg("--print-id")
        .current_dir(
            downloads
                .parent()
                .expect("downloads/ is inside a temporary folder"),
        )
        .env("P2P_NO_LAN", "1")
        .env(
            "HOME",
            downloads.parent().expect("inside a temporary folder"),
        )
        .stdin(Stdio::null());
    for var in [
        "P2P_NAME",
        "P2P_TRACKER",
        "P2P_SHARED",
        "P2P_DOWNLOADS",
        "P2P_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    cmd.output().expect("p2p runs")
}

/// The id a successful run printed: its only stdout line, parsed.
fn id_of(out: &Output) -> PeerId {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).expect("the id is ASCII");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "stdout: {text:?}");
    lines[0]
        .parse()
        .unwrap_or_else(|e| panic!("{:?} is not an id: {e}", lines[0]))
}

#[test]
fn the_id_is_kept_in_the_state_folder_and_differs_between_folders() {
    let (a, b) = (PeerDirs::new(), PeerDirs::new());
    let first = print_id(&a.downloads);
    let id = id_of(&first);
    let note = String::from_utf8_lossy(&first.stderr);
    assert!(
        note.contains("identity.key"),
        "first run says it made the key: {note}"
    );
    let key = a.downloads.join(".p2p").join("identity.key");
    let mode = std::fs::metadata(&key)
        .expect("the key file exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let again = print_id(&a.downloads);
    assert_eq!(
        id_of(&again),
        id,
        "a second run on the same folder changed the id"
    );
    assert!(
        again.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    assert_ne!(id_of(&print_id(&b.downloads)), id, "two folders, one id");
}

#[test]
fn a_damaged_key_file_is_an_error_and_stays_as_it_was() {
    let dirs = PeerDirs::new();
    id_of(&print_id(&dirs.downloads));
    let key = dirs.downloads.join(".p2p").join("identity.key");
    let mut bytes = std::fs::read(&key).unwrap();
    bytes.truncate(50);
    std::fs::write(&key, &bytes).unwrap();

    let out = print_id(&dirs.downloads);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&*key.to_string_lossy()) && err.contains("truncated"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        bytes,
        "the key file was replaced"
    );

    std::fs::write(&key, b"").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = String::from_utf8_lossy(&print_id(&dirs.downloads).stderr).into_owned();
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn help_explains_print_id() {
    let out = Command::new(bin())
        .args(["peer", "--help"])
        .env("P2P_NO_LAN", "1")
        .output()
        .expect("p2p runs");
    let help = String::from_utf8_lossy(&out.stdout);
    let line = help
        .lines()
        .skip_while(|l| !l.contains("--print-id"))
        .take(4)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        line.contains("id") && line.contains("identity.key"),
        "{help}"
    );
}
