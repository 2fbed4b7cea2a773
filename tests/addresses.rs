//! Fresh addresses (issue 16, item 4): a peer that restarted on another port is reached under
//! its name at the new address, whether we knew it from the tracker (the command asks the
//! tracker again when the old address refuses) or from the user (`connect`, which outranks the
//! tracker: its new address is kept as another way to reach it, tried when the old one fails).

mod common;

use common::*;
use std::time::Duration;

/// Restarts Eve's process on a new port with the same folders; waits until it is registered.
fn restart_on_new_port(eve: Peer, tracker: std::net::SocketAddr) -> Peer {
    let Peer {
        dirs,
        mut proc,
        addr,
        ..
    } = eve;
    proc.signal(libc::SIGKILL);
    proc.wait_exit(EXIT_TIMEOUT);
    drop(proc);
    let again = Peer::serve_in("Eve", tracker, dirs, &[]);
    assert_ne!(again.addr, addr, "the OS gave the same port again");
    again
}

/// Spawns Bob's batch; returns it running.
fn spawn_bob(bob: &PeerDirs, tracker: std::net::SocketAddr, commands: &str) -> Proc {
    spawn_batch("Bob", tracker, bob, commands, &[])
}

#[test]
fn a_peer_known_from_the_tracker_is_found_again_after_a_restart_on_another_port() {
    let tracker = Tracker::start();
    let eve = Peer::serve("Eve", tracker.addr, &[("notes.txt", b"eve's notes")]);
    let bob = PeerDirs::new();
    // The sleep leaves time to restart Eve; Bob does not ask the tracker meanwhile, so his
    // second `files` starts from the old address.
    let mut run = spawn_bob(
        &bob,
        tracker.addr,
        "wait-peer Eve 10\nfiles Eve\nsleep 4\nfiles Eve\n",
    );
    run.wait_line("Eve's file list", Duration::from_secs(20), |l| {
        l.contains("notes.txt")
    });
    let _eve = restart_on_new_port(eve, tracker.addr);
    let status = run.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", run.diagnostics());
    let listed = run
        .lines_so_far()
        .iter()
        .filter(|l| l.contains("notes.txt"))
        .count();
    assert_eq!(listed, 2, "{}", run.diagnostics());
}

/// `connect ADDR` makes Eve a manual entry, which outranks the tracker's news: after her
/// restart, the old address refuses and the command moves on to the new one (kept as another
/// address she is known by, or asked of the tracker) instead of failing.
#[test]
fn a_stale_manual_address_gives_way_to_the_new_one() {
    let tracker = Tracker::start();
    let eve = Peer::serve("Eve", tracker.addr, &[("notes.txt", b"eve's notes")]);
    let bob = PeerDirs::new();
    let mut run = spawn_bob(
        &bob,
        tracker.addr,
        &format!("connect {}\npeers\nsleep 4\nfiles Eve\n", eve.addr),
    );
    run.wait_line("Eve listed as manual", Duration::from_secs(20), |l| {
        l.starts_with("Eve ") && l.contains("manual")
    });
    let _eve = restart_on_new_port(eve, tracker.addr);
    let status = run.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", run.diagnostics());
    assert!(
        run.lines_so_far().iter().any(|l| l.contains("notes.txt")),
        "{}",
        run.diagnostics()
    );
}

/// Registers NAME with the tracker from a raw socket, claiming a listen port where nothing
/// listens; the registration lives as long as the returned socket.
fn register_dead(tracker: std::net::SocketAddr, name: &str) -> std::net::TcpStream {
    use p2p::wire::{Message, PROTOCOL_VERSION, encode_message};
    use std::io::{Read, Write};
    let dead = unused_addr();
    let mut s = std::net::TcpStream::connect(tracker).expect("connect to the tracker");
    let hello = Message::Hello {
        version: PROTOCOL_VERSION,
        name: name.into(),
        listen_port: Some(dead.port()),
        agent: "test".into(),
    };
    let register = Message::Register {
        req: 1,
        name: name.into(),
        listen_port: dead.port(),
    };
    s.write_all(&encode_message(&hello)).unwrap();
    s.write_all(&encode_message(&register)).unwrap();
    // Hello, then Registered: read both frames.
    for _ in 0..2 {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
    }
    s
}

/// `get FILE` picks the one content among the peers that answered; when some could not be
/// asked, it says so instead of choosing quietly (one of them may have another file under
/// that name).
#[test]
fn get_by_name_says_which_peers_could_not_be_asked() {
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("notes.txt", b"alice's notes")]);
    let _eve = register_dead(tracker.addr, "Eve");
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Eve 10\nget notes.txt\n",
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("notes.txt"), b"alice's notes");
    assert!(
        out.stderr.contains("Eve could not be asked"),
        "chose quietly\n{out}"
    );
}
