//! Secure links and pinned names end to end: a tracker and peers talk only through Noise links
//! (PROTOCOL.md §3); a download through a recording relay works and the recording holds neither
//! the file's bytes nor names and messages; a relay that flips a byte ends that link and nothing
//! corrupt is written; an impostor under a pinned name is refused and the user told why, and
//! the real peer, back with its key, is accepted.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A TCP relay on 127.0.0.1 to `target` that records every byte it passes, both ways.
fn recording_relay(target: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    relay(target, None)
}

/// A relay like [`recording_relay`]; with `flip_at`, the byte at that offset of the first
/// connection's server-to-client stream is flipped.
fn relay(target: SocketAddr, mut flip_at: Option<usize>) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
    let addr = listener.local_addr().expect("the relay's address");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(target) else {
                return;
            };
            let flips = [None, flip_at.take()];
            for ((mut from, mut to), mut flip) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ]
            .into_iter()
            .zip(flips)
            {
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    let mut passed = 0;
                    while let Ok(n) = from.read(&mut buf) {
                        if let Some(at) = flip.filter(|at| (passed..passed + n).contains(at)) {
                            buf[at - passed] ^= 0x01;
                            flip = None;
                        }
                        passed += n;
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (addr, seen)
}

/// The relay flips one byte in the middle of the download: that link ends with an
/// authentication error, nothing unverified reaches the file, and the download finishes
/// after reconnecting (straight to Alice, from the tracker's address for her).
#[test]
fn a_flipped_byte_ends_the_link_and_nothing_corrupt_is_written() {
    let content = pseudo_random(8 * CHUNK, 78);
    let tracker = Tracker::start();
    let alice = Peer::serve("Alice", tracker.addr, &[("big.bin", &content)]);
    let (relay, seen) = relay(alice.addr, Some(2 * CHUNK));
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        &format!("connect {relay}\nget Alice big.bin\n"),
    );
    let seen = seen.lock().unwrap().len();
    assert!(
        seen > 2 * CHUNK,
        "the download did not go through the relay ({seen} bytes)"
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("big.bin"), &content);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("authentication"),
        "the broken link was not reported:\n{text}"
    );
}

#[test]
fn a_download_through_a_recording_relay_shows_nothing_in_clear() {
    let content = pseudo_random(3 * CHUNK + 123, 77);
    let tracker = Tracker::start();
    let alice = Peer::serve("Alice", tracker.addr, &[("secret.bin", &content)]);
    let (relay, seen) = recording_relay(alice.addr);
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bartholomew",
        tracker.addr,
        &bob,
        &format!("connect {relay}\nmsg Alice the eagle has landed\nget Alice secret.bin\n"),
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("secret.bin"), &content);

    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.len() > content.len(),
        "the download did not go through the relay ({} bytes seen)",
        seen.len()
    );
    let contains = |needle: &[u8]| seen.windows(needle.len()).any(|w| w == needle);
    for probe in [
        &content[..32],
        &content[CHUNK..CHUNK + 32],
        &content[content.len() - 32..],
    ] {
        assert!(!contains(probe), "file bytes in clear on the wire");
    }
    // Needles of 5 bytes or more: a 3-byte one turns up in a megabyte of ciphertext by chance.
    for text in [
        "eagle has landed",
        "secret.bin",
        "Alice",
        "Bartholomew",
        "Hello",
    ] {
        assert!(!contains(text.as_bytes()), "{text:?} in clear on the wire");
    }
}

/// `NAME listening on ADDR` and `peer id ID`: the address and the id a peer printed at start.
fn listening(proc: &mut Proc, name: &str) -> (SocketAddr, String) {
    let addr = expect_listening(proc, name);
    let line = proc.next_line("`peer id ID`", STARTUP);
    let id = line
        .strip_prefix("peer id ")
        .expect("`peer id ID` second")
        .to_string();
    (addr, id)
}

/// Bob pins Alice's key on first contact. Alice goes; an impostor with her name and another
/// key takes her address (and cannot register her name: the tracker holds it for her key).
/// Bob, given the address, meets a peer that says "Alice" with another key: refused, and Bob
/// says so naming both ids and how to accept a new key. The impostor dialling Bob as "Alice"
/// is refused too. The real Alice, back under her own key, gets Bob's message. (A dial that
/// expects the pinned key and reaches another fails in the handshake itself:
/// `sim::tests::trust`.)
#[test]
fn an_impostor_under_a_pinned_name_is_refused_and_the_real_peer_accepted_later() {
    let tracker = Tracker::start();
    let alice_dirs = PeerDirs::new();
    let bob = PeerDirs::new();
    let mut alice = Proc::spawn(
        "Alice",
        peer_command("Alice", tracker.addr, &alice_dirs, &["--serve"]),
        None,
    );
    let (addr, alice_id) = listening(&mut alice, "Alice");
    run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nmsg Alice first contact\n",
    )
    .assert_success();
    let pins = std::fs::read_to_string(bob.downloads.join(".p2p/pins")).expect("Bob's pins");
    assert!(pins.contains(&format!("Alice {alice_id}")), "{pins}");
    alice.kill();

    // The impostor listens where Alice did; it cannot register her name (held for her key).
    let mallory_dirs = PeerDirs::new();
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["peer", "--name", "Alice", "--serve", "--no-lan"])
        .arg("--tracker")
        .arg(tracker.addr.to_string())
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--shared")
        .arg(&mallory_dirs.shared)
        .arg("--downloads")
        .arg(&mallory_dirs.downloads)
        .current_dir(mallory_dirs.root());
    let mut mallory = Proc::spawn("Mallory", cmd, None);
    let (_, mallory_id) = listening(&mut mallory, "Alice");
    assert_ne!(mallory_id, alice_id);

    // Bob is given the address by hand (the tracker no longer lists any Alice): whoever is
    // there says it is Alice, with another key than the pinned one.
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        &format!("connect {addr}\nmsg Alice are you there?\n"),
    );
    assert_ne!(out.code(), Some(0), "{out}");
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains(&alice_id) && said.contains(&mallory_id) && said.contains("pinned"),
        "the refusal names both keys:\n{out}"
    );
    assert!(said.contains(&format!("trust Alice {mallory_id}")), "{out}");
    // Nothing reached the impostor.
    assert!(
        !mallory
            .lines_so_far()
            .iter()
            .any(|l| l.contains("are you there"))
    );

    // The impostor calls Bob as "Alice": refused, and Bob says why.
    let bob_serving = Peer::serve_in("Bob", tracker.addr, bob, &[]);
    let bob_dirs_out = run_batch(
        "Alice",
        tracker.addr,
        &mallory_dirs,
        &format!("connect {}\n", bob_serving.addr),
    );
    assert_ne!(bob_dirs_out.code(), Some(0), "{bob_dirs_out}");
    let mut bob_proc = bob_serving.proc;
    // Warnings go to stderr, read on a thread of its own.
    let deadline = std::time::Instant::now() + STARTUP;
    while !bob_proc.stderr_text().lines().any(|l| {
        l.starts_with("warning: refused a peer calling itself Alice") && l.contains(&mallory_id)
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "Bob did not warn of the impostor\n{}",
            bob_proc.diagnostics()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    bob_proc.kill();
    let bob = bob_serving.dirs;
    mallory.kill();

    // Alice is back with her own key (a new port): accepted as ever.
    let mut alice = Proc::spawn(
        "Alice",
        peer_command("Alice", tracker.addr, &alice_dirs, &["--serve"]),
        None,
    );
    let (_, again) = listening(&mut alice, "Alice");
    assert_eq!(again, alice_id, "a restarted peer keeps its id");
    run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nmsg Alice welcome back\n",
    )
    .assert_success();
    alice.wait_line("Bob's message", STARTUP, |l| {
        is_chat(l, "Bob", "welcome back")
    });
}
