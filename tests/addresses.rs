//! Fresh addresses (issue 16, item 4): a peer that restarted on another port is reached under
//! its name at the new address, whether we knew it from the tracker (the command asks the
//! tracker again when the old address refuses) or from the user (`connect`, which outranks the
//! tracker: its new address is kept as another way to reach it, tried when the old one fails).
//! Those two run in the in-memory harness (src/sim/tests/discovery.rs); here, `get` by name
//! when a peer cannot be asked.

mod common;

use common::*;

// `a_peer_known_from_the_tracker_is_found_again_after_a_restart_on_another_port` and
// `a_stale_manual_address_gives_way_to_the_new_one` moved to the in-memory harness
// (src/sim/tests/discovery.rs), where Eve restarts on another port in fake time.

/// Registers NAME with the tracker from a hand-made connection, claiming a listen port where nothing
/// listens; the registration lives as long as the returned socket.
fn register_dead(tracker: std::net::SocketAddr, name: &str) -> p2p::secure::SecureStream {
    use p2p::wire::{Message, PROTOCOL_VERSION, encode_message};
    use std::io::{Read, Write};
    let dead = unused_addr();
    let mut s = p2p::secure::SecureStream::connect(tracker).expect("connect to the tracker");
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
        external: None,
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
