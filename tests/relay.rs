//! Relayed links through `p2p tracker --relay` (PROTOCOL.md §18), with real processes on this
//! machine: a peer nobody can dial (it listens on 127.0.0.2 while the tracker lists it at
//! 127.0.0.1, so every direct dial is refused) is reached through the relay, and what goes
//! through it arrives byte for byte; the relay's rate limit holds; without a relay the same
//! peer stays unreachable (so it is the relay that reaches it).

mod common;

use common::*;
use std::time::{Duration, Instant};

/// A peer serving `files` that listens on 127.0.0.2 only: the tracker lists it at the IP its
/// tracker connection comes from (127.0.0.1), where nothing listens, so no dial reaches it.
fn hidden_peer(name: &str, tracker: std::net::SocketAddr, files: &[(&str, &[u8])]) -> Peer {
    let dirs = PeerDirs::with_files(files);
    let mut cmd = std::process::Command::new(bin());
    // No hole punching: from 127.0.0.2 it could dial the others' listeners on 127.0.0.1,
    // and these tests are about the relayed path (tests/punch_netns.rs punches).
    cmd.args(["peer", "--name", name, "--serve", "--listen", "127.0.0.2:0"])
        .arg("--no-punch")
        .arg("--tracker")
        .arg(tracker.to_string())
        .arg("--shared")
        .arg(&dirs.shared)
        .arg("--downloads")
        .arg(&dirs.downloads)
        .current_dir(dirs.root());
    let mut proc = Proc::spawn(name, cmd, None);
    let addr = expect_listening(&mut proc, name);
    assert_eq!(addr.ip().to_string(), "127.0.0.2");
    proc.wait_registered_and_sharing(STARTUP);
    Peer {
        name: name.to_string(),
        addr,
        proc,
        dirs,
    }
}

/// The `peers` rows of a batch's output: fields of lines that start with `name`.
fn peers_row<'a>(stdout: &'a str, name: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .map(fields)
        .find(|f| f.first() == Some(&name) && f.len() >= 5)
        .unwrap_or_default()
}

#[test]
fn a_peer_nobody_can_dial_is_reached_through_the_relay_byte_for_byte() {
    let mut tracker = Tracker::start_with(&["--relay"]);
    let content = pseudo_random(3 * CHUNK + 1234, 18);
    let mut alice = hidden_peer("Alice", tracker.addr, &[("big.bin", &content)]);
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice big.bin\nmsg Alice through the relay\npeers\n",
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("big.bin"), &content);
    assert_saved_line(&out, &bob, "big.bin", &content);
    let row = peers_row(&out.stdout, "Alice");
    assert_eq!(row.get(5), Some(&"relayed"), "{out}");
    alice
        .proc
        .wait_line("Bob's message", Duration::from_secs(10), |l| {
            is_chat(l, "Bob", "through the relay")
        });
    tracker
        .proc
        .wait_line("the relay's session", Duration::from_secs(5), |l| {
            l.starts_with("relaying ")
        });
    // JSON says how each connected peer is reached.
    let carol = PeerDirs::new();
    let out = run_batch_with(
        "Carol",
        tracker.addr,
        &carol,
        "wait-peer Alice 10\nmsg Alice json\npeers\n",
        &["--json"],
        BATCH_TIMEOUT,
    );
    out.assert_success();
    let alice_entry = out
        .stdout
        .lines()
        .filter(|l| l.contains("\"type\":\"peers\""))
        .flat_map(|l| l.split('{'))
        .find(|e| e.contains("\"name\":\"Alice\""))
        .unwrap_or_default();
    assert!(alice_entry.contains("\"via\":\"relayed\""), "{out}");
}

/// The control: the same hidden peer behind a tracker that does not relay cannot be reached,
/// and the failure says so.
#[test]
fn without_a_relay_the_hidden_peer_is_unreachable() {
    let tracker = Tracker::start();
    let _alice = hidden_peer("Alice", tracker.addr, &[("a.txt", b"hello")]);
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice a.txt\n",
    );
    out.assert_failed_with(4);
    assert!(!bob.downloads.join("a.txt").exists());
}

/// `--relay-max-rate` holds each relayed session to its rate: 2 MiB at 512 KB/s takes about
/// 4 s (the first bucket's burst aside), where the unlimited relay takes a fraction of one.
#[test]
fn the_relay_holds_a_session_to_its_rate() {
    let tracker = Tracker::start_with(&["--relay", "--relay-max-rate", "512KB/s"]);
    let content = pseudo_random(8 * CHUNK, 19);
    let _alice = hidden_peer("Alice", tracker.addr, &[("two.bin", &content)]);
    let bob = PeerDirs::new();
    let started = Instant::now();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice two.bin\n",
    );
    let took = started.elapsed();
    out.assert_success();
    assert_file_eq(&bob.downloads.join("two.bin"), &content);
    assert!(
        took >= Duration::from_secs(3),
        "2 MiB in {took:?} at 512 KB/s: {out}"
    );
}

/// A hostile relay: a fake tracker that says it relays, lists Alice (her key, an address where
/// nobody listens), and when asked for her splices Bob to Mallory, a peer with another key.
/// Bob's handshake through the relay must prove Alice's key: it fails before Bob shows his
/// own key or sends one frame, and `get` says who was there instead.
#[test]
fn a_relay_that_swaps_the_peer_gets_a_refused_handshake() {
    use p2p::identity::Identity;
    use p2p::secure::{Role, SecureStream};
    use p2p::wire::{Message, PROTOCOL_VERSION, PeerInfo, decode_message, encode_message};
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn try_recv(s: &mut SecureStream) -> Option<Message> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).ok()?;
        decode_message(&body).ok()
    }
    fn recv(s: &mut SecureStream) -> Message {
        try_recv(s).expect("a message")
    }
    fn send(s: &mut SecureStream, msg: &Message) {
        s.write_all(&encode_message(msg)).expect("send");
    }
    let hello = Message::Hello {
        version: PROTOCOL_VERSION,
        name: String::new(),
        listen_port: None,
        agent: "p2p-tracker/hostile".into(),
    };

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake = listener.local_addr().unwrap();
    let (tracker_key, alice, mallory): (Identity, _, Identity) = (
        Identity::generate().unwrap(),
        Identity::generate().unwrap().peer_id(),
        Identity::generate().unwrap(),
    );
    let dead = unused_addr();
    let mallory_id = mallory.peer_id();
    let (tracker_key, mallory) = (
        std::sync::Arc::new(tracker_key),
        std::sync::Arc::new(mallory),
    );
    let (done, results) = std::sync::mpsc::channel();
    let relay = std::thread::spawn(move || {
        // Bob's tracker link: registered, told the tracker relays, Alice listed.
        let (tcp, _) = listener.accept().unwrap();
        let mut link = SecureStream::handshake(tcp, Role::Responder, &tracker_key, None).unwrap();
        link.get_ref()
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        assert!(matches!(recv(&mut link), Message::Hello { .. }));
        send(&mut link, &hello);
        let Message::Register { req, .. } = recv(&mut link) else {
            panic!("Register expected")
        };
        let registered = Message::Registered {
            req,
            ttl_secs: 30,
            relay: true,
        };
        send(&mut link, &registered);
        let alice_info = PeerInfo {
            name: "Alice".into(),
            id: alice,
            addr: dead.to_string(),
            last_seen_ms: 0,
            mapped: false,
        };
        let peers_thread = std::thread::spawn(move || {
            while let Some(msg) = try_recv(&mut link) {
                if let Message::ListPeers { req, .. } = msg {
                    let peers = vec![alice_info.clone()];
                    send(
                        &mut link,
                        &Message::Peers {
                            req,
                            peers,
                            total: None,
                        },
                    );
                }
            }
        });
        // Each relayed dial (the peer asks the tracker again after a failure, and tries
        // again): Hello, RelayOpen for Alice's key, RelayStart, and Mallory answers the
        // handshake that follows on the raw stream.
        for tcp in listener.incoming() {
            let (tcp, hello, tracker_key) = (tcp.unwrap(), hello.clone(), tracker_key.clone());
            let (mallory, done) = (mallory.clone(), done.clone());
            std::thread::spawn(move || {
                tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let raw = tcp.try_clone().unwrap();
                let mut asked =
                    SecureStream::handshake(tcp, Role::Responder, &tracker_key, None).unwrap();
                assert!(matches!(recv(&mut asked), Message::Hello { .. }));
                send(&mut asked, &hello);
                let Message::RelayOpen { peer, .. } = recv(&mut asked) else {
                    panic!("RelayOpen expected")
                };
                assert_eq!(peer, alice, "the relay is asked for the listed key");
                send(
                    &mut asked,
                    &Message::RelayStart {
                        session: 1,
                        peer: alice,
                        addr: None,
                    },
                );
                let swapped = SecureStream::handshake(raw, Role::Responder, &mallory, None);
                let _ = done.send(swapped.map(|s| s.remote()));
            });
        }
        drop(peers_thread);
    });
    let bob = PeerDirs::new();
    let bob_id = {
        let out = run_batch("Bob", fake, &bob, "wait-peer Alice 10\nget Alice a.txt\n");
        out.assert_failed_with(4);
        assert!(
            out.stderr.contains(&mallory_id.to_string()) && out.stderr.contains(&alice.to_string()),
            "the error names who answered and who was expected: {out}"
        );
        out
    };
    drop(relay); // it serves until the test process ends
    let first = results.recv_timeout(Duration::from_secs(10));
    let first = first.unwrap_or_else(|_| panic!("no relayed handshake was tried: {bob_id}"));
    let swapped: Vec<_> = std::iter::once(first).chain(results.try_iter()).collect();
    assert!(
        swapped.iter().all(|r| r.is_err()),
        "Mallory completed a handshake with Bob through the relay: {swapped:?}\n{bob_id}"
    );
}
