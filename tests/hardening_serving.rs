//! The serving side against a curious or hostile client, checked from outside: symlinks out of
//! shared/ are neither listed nor served (also when swapped in after indexing), a file that
//! shrinks while shared gives an error and not a panic, and a tracker run with only 64 file
//! descriptors refuses connections politely instead of spinning on EMFILE.

mod common;
mod hardening_support;

use common::*;
use hardening_support::*;
use p2p::wire::{ContentId, ErrorCode, FileInfo, Message};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::symlink;
use std::process::Command;
use std::time::Duration;

fn list(s: &mut SecureStream) -> Vec<FileInfo> {
    send(s, &Message::ListFiles { req: 1 }).unwrap();
    match recv(s).unwrap() {
        Message::Files { files, .. } => files,
        other => panic!("{other:?}"),
    }
}

/// The answer to `GetChunk(id, index)`: Ok(data) or Err(code).
fn chunk(s: &mut SecureStream, id: ContentId, index: u64) -> Result<Vec<u8>, ErrorCode> {
    send(s, &Message::GetChunk { req: 7, id, index }).unwrap();
    match recv(s).unwrap() {
        Message::Chunk { data, .. } => Ok(data),
        Message::Error { code, .. } => Err(code),
        other => panic!("{other:?}"),
    }
}

#[test]
fn symlinks_out_of_shared_are_neither_listed_nor_served() {
    let tracker = Tracker::start();
    let dirs = PeerDirs::with_files(&[("real.txt", b"inside\n")]);
    let secret = b"outside shared/: must never be served\n";
    std::fs::write(dirs.root().join("secret.txt"), secret).unwrap();
    symlink("real.txt", dirs.shared.join("in-link")).unwrap();
    symlink("../secret.txt", dirs.shared.join("out-link")).unwrap();
    symlink(dirs.root().join("secret.txt"), dirs.shared.join("abs-link")).unwrap();
    symlink("/etc/hostname", dirs.shared.join("etc-link")).unwrap();
    std::fs::create_dir(dirs.root().join("outdir")).unwrap();
    std::fs::write(dirs.root().join("outdir/f"), secret).unwrap();
    symlink("../outdir", dirs.shared.join("dir-link")).unwrap();
    let alice = Peer::serve_in("Alice", tracker.addr, dirs, &[]);

    let mut s = probe(alice.addr);
    let mut names: Vec<String> = list(&mut s).into_iter().map(|f| f.name).collect();
    names.sort();
    assert_eq!(names, vec!["in-link", "real.txt"]);
    // Asking by content for what a link points to gets nothing.
    assert_eq!(chunk(&mut s, cid(secret), 0), Err(ErrorCode::NoSuchFile));
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice out-link\n",
    );
    out.assert_failure();
    assert!(!bob.downloads.join("out-link").exists());
}

#[test]
fn a_file_swapped_for_a_symlink_or_shrunk_after_indexing_is_unavailable_not_served() {
    let tracker = Tracker::start();
    let swap = pseudo_random(4 * CHUNK, 9);
    let shrink = pseudo_random(4 * CHUNK, 10);
    let dirs = PeerDirs::with_files(&[("swap.bin", &swap), ("shrink.bin", &shrink)]);
    // Same size as the original, so only identity checks can tell.
    let secret = vec![0x5A; swap.len()];
    std::fs::write(dirs.root().join("secret.bin"), &secret).unwrap();
    let alice = Peer::serve_in("Alice", tracker.addr, dirs, &[]);
    let (swap_sha, shrink_sha) = (cid(&swap), cid(&shrink));
    let mut s = probe(alice.addr);
    assert_eq!(chunk(&mut s, swap_sha, 0).unwrap(), swap[..CHUNK]);
    assert_eq!(chunk(&mut s, shrink_sha, 3).unwrap(), shrink[3 * CHUNK..]);

    // swap.bin becomes a symlink to the secret; shrink.bin loses three chunks.
    let shared = &alice.dirs.shared;
    std::fs::remove_file(shared.join("swap.bin")).unwrap();
    symlink("../secret.bin", shared.join("swap.bin")).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(shared.join("shrink.bin"))
        .unwrap();
    f.set_len(CHUNK as u64).unwrap();
    drop(f);
    for index in 0..4 {
        assert_eq!(
            chunk(&mut s, swap_sha, index),
            Err(ErrorCode::Unavailable),
            "swap.bin chunk {index}"
        );
        assert_eq!(
            chunk(&mut s, shrink_sha, index),
            Err(ErrorCode::Unavailable),
            "shrink.bin chunk {index}"
        );
    }
    // Alice is fine and still answers.
    assert_eq!(list(&mut s).len(), 2);
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 after the comm).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// `ulimit -n 64`: the tracker fits its connection cap into the descriptors it has (16 here),
/// refuses the rest (closed before their handshake), uses no CPU while they knock, and serves a
/// real peer afterwards.
#[test]
fn a_tracker_with_64_file_descriptors_refuses_politely_and_does_not_spin() {
    use std::os::unix::process::CommandExt;
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["tracker", "--listen", "127.0.0.1:0"])
        .current_dir(cwd.path());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut proc = Proc::spawn("tracker", cmd, None);
    let line = proc.next_line("`tracker listening on ADDR`", STARTUP);
    let addr: SocketAddr = line
        .strip_prefix("tracker listening on ")
        .unwrap()
        .parse()
        .unwrap();
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..60 {
        let Ok(mut s) = secure_from(source_ip(i, 10), addr) else {
            refused += 1;
            continue;
        };
        s.get_ref()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        send(&mut s, &hello("")).unwrap();
        match recv(&mut s) {
            Ok(Message::Hello { .. }) => held.push(s),
            other => panic!("connection {i}: {other:?}"),
        }
    }
    assert_eq!(held.len(), 16, "admitted");
    assert_eq!(refused, 44);
    // Knocking on a full tracker costs it nothing.
    let before = cpu_ticks(proc.pid());
    for i in 0..200 {
        let _ = connect_from(Ipv4Addr::new(127, 2, 0, (i % 200 + 1) as u8), addr);
    }
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(proc.pid()) - before;
    assert!(
        used < 50,
        "the tracker used {used} ticks of CPU in 2 s while full"
    );
    // The held ones are served; once they go, a real peer registers.
    for s in held.iter_mut() {
        send(s, &Message::list_peers(3)).unwrap();
        assert!(matches!(recv(s).unwrap(), Message::Peers { .. }));
    }
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let dirs = PeerDirs::new();
    let mut cmd = peer_command("Alice", addr, &dirs, &["--serve"]);
    cmd.current_dir(dirs.root());
    let mut alice = Proc::spawn("Alice", cmd, None);
    alice.wait_line("`registered with tracker`", STARTUP, |l| {
        l.starts_with("registered with tracker")
    });
}

/// 14,000 shared files with 250-byte names: their listing would be about 4.8 MB, above the
/// 4 MiB frame limit. The answer lists as many as fit in one frame instead of sending a frame
/// every receiver refuses, and `files` works.
#[test]
fn a_huge_shared_folder_lists_what_fits_in_one_frame() {
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    for i in 0..14_000 {
        let name = format!("{i:05}{}", "n".repeat(245));
        std::fs::write(dirs.shared.join(name), i.to_string()).unwrap();
    }
    let alice = Peer::serve_in("Alice", tracker.addr, dirs, &[]);
    let mut s = probe(alice.addr);
    let files = list(&mut s);
    eprintln!("{} of 14000 files listed", files.len());
    assert!(
        files.len() > 10_000 && files.len() < 14_000,
        "{} files listed",
        files.len()
    );
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nfiles Alice\n",
    );
    out.assert_success();
}
