//! `p2p id FILE...` (issue 13): each file's content id and SHA-256, like `sha256sum`, with no
//! peer started. Checked against independent computations: `sha256sum` for the SHA-256 (when
//! it is installed) and the content id recomputed here from the bytes, following PROTOCOL.md
//! §8.4 and sharing no code with the crate.

mod common;

use common::*;
use sha2::Digest;
use std::path::Path;
use std::process::{Command, Output};

const CHUNK: usize = 256 * 1024;

fn sha(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// RFC 9162's Merkle Tree Hash over the chunk hashes.
fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => sha(&[]),
        1 => sha(&[&[0], &leaves[0]]),
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            sha(&[&[1], &mth(&leaves[..k]), &mth(&leaves[k..])])
        }
    }
}

/// The content id of `bytes`, from PROTOCOL.md §8.1 and §8.4 (files here are under 4 GiB, so
/// the chunk size is 256 KiB).
fn content_id(bytes: &[u8]) -> String {
    let chunks: Vec<[u8; 32]> = bytes.chunks(CHUNK).map(|c| sha(&[c])).collect();
    let root = mth(&chunks);
    let id = sha(&[
        b"p2p-content-id-v1",
        &(bytes.len() as u64).to_be_bytes(),
        &(CHUNK as u32).to_be_bytes(),
        &root,
    ]);
    format!("cid1:{}", hex::encode(id))
}

/// `sha256sum`'s answer for `path`, if the tool is there.
fn sha256sum(path: &Path) -> Option<String> {
    let out = Command::new("sha256sum").arg(path).output().ok()?;
    out.status.success().then(|| {
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace().next().unwrap().to_string()
    })
}

fn p2p_id(args: &[&Path]) -> Output {
    Command::new(bin()).arg("id").args(args).output().unwrap()
}

#[test]
fn the_merkle_split_here_is_the_largest_power_of_two_below() {
    // The helper above must be right for the test to mean anything.
    let h = |i: u8| [i; 32];
    let node = |l: [u8; 32], r: [u8; 32]| sha(&[&[1], &l, &r]);
    let leaf = |x: [u8; 32]| sha(&[&[0], &x]);
    let l: Vec<[u8; 32]> = (0..5).map(h).collect();
    let want = node(
        node(node(leaf(l[0]), leaf(l[1])), node(leaf(l[2]), leaf(l[3]))),
        leaf(l[4]),
    );
    assert_eq!(mth(&l), want);
    let three = node(node(leaf(l[0]), leaf(l[1])), leaf(l[2]));
    assert_eq!(mth(&l[..3]), three);
    assert_eq!(mth(&l[..2]), node(leaf(l[0]), leaf(l[1])));
    assert_eq!(
        mth(&l[..4]),
        node(node(leaf(l[0]), leaf(l[1])), node(leaf(l[2]), leaf(l[3])))
    );
}

#[test]
fn id_prints_content_id_and_sha256_like_sha256sum() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one", b"x".to_vec()),
        ("abcd.txt", b"abcd".to_vec()),
        ("chunk-1", pseudo_random(CHUNK - 1, 1)),
        ("chunk", pseudo_random(CHUNK, 2)),
        ("chunk+1", pseudo_random(CHUNK + 1, 3)),
        ("with spaces.bin", pseudo_random(5 * CHUNK + 77, 4)),
        ("many", pseudo_random(17 * CHUNK + 1, 5)),
    ];
    let paths: Vec<_> = files
        .iter()
        .map(|(name, bytes)| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        })
        .collect();
    let args: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let out = p2p_id(&args);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), files.len(), "{stdout}");
    for ((line, (_, bytes)), path) in lines.iter().zip(&files).zip(&paths) {
        let want = format!(
            "{}  {}  {}",
            content_id(bytes),
            sha256_hex(bytes),
            path.display()
        );
        assert_eq!(*line, want);
        if let Some(theirs) = sha256sum(path) {
            assert_eq!(
                theirs,
                sha256_hex(bytes),
                "sha256sum disagrees on {}",
                path.display()
            );
        }
    }
    // The same bytes under another name: the same id. Other bytes of the same size: another.
    let twin = dir.path().join("twin");
    std::fs::write(&twin, &files[6].1).unwrap();
    let mut other = files[6].1.clone();
    other[3 * CHUNK] ^= 1;
    let changed = dir.path().join("changed");
    std::fs::write(&changed, &other).unwrap();
    let out = p2p_id(&[&paths[6], &twin, &changed]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let ids: Vec<&str> = stdout.lines().map(|l| fields(l)[0]).collect();
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[0], ids[2]);
}

#[test]
fn id_reports_each_bad_argument_and_still_prints_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    std::fs::write(&good, b"good bytes").unwrap();
    let missing = dir.path().join("missing");
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&good, &link).unwrap();

    let out = p2p_id(&[&missing, &good, &folder, &fifo, &link]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let want = format!(
        "{}  {}",
        content_id(b"good bytes"),
        sha256_hex(b"good bytes")
    );
    assert_eq!(
        stdout,
        format!("{want}  {}\n{want}  {}\n", good.display(), link.display()),
        "the good file and the symlink to it, in order"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    let errors: Vec<&str> = stderr.lines().collect();
    assert_eq!(errors.len(), 3, "{stderr}");
    assert!(
        errors[0].starts_with(&format!("error: {}: ", missing.display())),
        "{stderr}"
    );
    assert!(errors[0].contains("No such file"), "{stderr}");
    assert_eq!(
        errors[1],
        format!("error: {}: is a directory", folder.display())
    );
    assert_eq!(
        errors[2],
        format!("error: {}: not a regular file", fifo.display())
    );

    // No file at all is a usage error.
    let out = Command::new(bin()).arg("id").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn id_escapes_control_characters_in_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil\x1b[31m\nname");
    std::fs::write(&path, b"e").unwrap();
    let out = p2p_id(&[&path]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert!(stdout.contains("evil\\x1b[31m\\x0aname"), "{stdout:?}");
}
