//! Secure links end to end (issue 14, being wired in): with `P2P_SECURE=1` a tracker and two
//! peers talk only through Noise links, a download through a recording relay works, and the
//! relay's recording holds neither the file's bytes nor the names and messages.
//!
//! One test function in this file: it sets `P2P_SECURE=1` for the whole test process, which every
//! child inherits.

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

/// Runs both scenarios in one test: `P2P_SECURE` is set for the whole process.
#[test]
fn secure_links_end_to_end() {
    // SAFETY: the only test of this process sets it before starting any thread of its own.
    unsafe { std::env::set_var("P2P_SECURE", "1") };
    a_download_through_a_recording_relay_shows_nothing_in_clear();
    a_flipped_byte_ends_the_link_and_nothing_corrupt_is_written();
}

/// The relay flips one byte in the middle of the download: that link ends with an
/// authentication error, nothing unverified reaches the file, and the download finishes
/// after reconnecting (straight to Alice, from the tracker's address for her).
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
