//! Memory against real processes: hundreds of connections that ask for chunks and never read
//! them must not make a seeder buffer their answers without bound, must not stop it serving
//! everyone else, and the memory must go back to the system once they close.
//!
//! Moved: this was the test binary `tests/hardening_memory.rs`; it is now a module of
//! `tests/hardening_limits.rs` (beside its request flood, the other memory test), so its one
//! test runs alongside those instead of alone (suite time, issue 12). Its seeder is a process
//! of its own, so what it measures is not shared with the tests beside it.

use crate::common::*;
use crate::hardening_support::*;
use p2p::wire::{ContentId, Message, encode_message};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::Write;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

const MIB: u64 = 1024;
/// Non-reading connections, and the chunk requests each sends.
const STUCK: usize = 300;
const REQUESTS_EACH: u64 = 48;
/// Connections per source address, under the default per-IP cap of 64.
const PER_IP: usize = 50;

/// A connection from `src` whose receive buffer is kept small (set before connecting, so the
/// window it advertises stays small): what it does not read stays on the seeder's side, where
/// the test can see it, instead of in this host's kernel.
fn small_window_connection(i: usize, dst: SocketAddr) -> SecureStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let src = SocketAddr::from((source_ip(i, PER_IP), 0));
    socket.bind(&SockAddr::from(src)).unwrap();
    socket.connect(&SockAddr::from(dst)).unwrap();
    let identity = p2p::identity::Identity::generate().unwrap();
    let role = p2p::secure::Role::Initiator;
    SecureStream::handshake(socket.into(), role, &identity, None).unwrap()
}

/// Hello and `REQUESTS_EACH` chunk requests in one write (a few KiB: the kernel takes it all).
fn greedy_requests(id: ContentId, chunks: u64, seed: u64) -> Vec<u8> {
    let mut bytes = encode_message(&hello("Greedy"));
    for req in 0..REQUESTS_EACH {
        let index = (seed * 7 + req) % chunks;
        bytes.extend(encode_message(&Message::GetChunk { req, id, index }));
    }
    bytes
}

/// Polls the seeder's RSS until it has not grown by more than 2 MiB for a second (the queues
/// are full), it passes `ceiling` (no point waiting longer), or `limit` has gone by. Returns
/// the highest value seen.
fn rss_once_settled(pid: u32, ceiling: u64, limit: Duration) -> u64 {
    let start = Instant::now();
    let mut peak = rss_kib(pid);
    let mut stable_since = (Instant::now(), peak);
    while start.elapsed() < limit && peak < ceiling {
        thread::sleep(Duration::from_millis(100));
        let now = rss_kib(pid);
        peak = peak.max(now);
        if now > stable_since.1 + 2 * MIB {
            stable_since = (Instant::now(), now);
        } else if stable_since.0.elapsed() >= Duration::from_secs(1) {
            break;
        }
    }
    peak
}

/// Polls until the seeder's RSS is below `target`; returns the last value read.
fn rss_falls_below(pid: u32, target: u64, limit: Duration) -> u64 {
    let start = Instant::now();
    loop {
        let now = rss_kib(pid);
        if now < target || start.elapsed() >= limit {
            return now;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// 300 connections each send Hello and 48 `GetChunk` (12 MiB of answers each, 3.6 GiB in all)
/// and read nothing. The seeder buffers a bounded amount for all of them together, still
/// serves a fresh connection and a whole download meanwhile, and gives the memory back once
/// they close.
#[test]
fn three_hundred_connections_that_never_read_do_not_hold_the_seeders_memory() {
    raise_nofile();
    let tracker = Tracker::start();
    let content = pseudo_random(64 << 20, 300);
    let alice = Peer::serve("Alice", tracker.addr, &[("big.bin", &content)]);
    let pid = alice.proc.pid();
    let sha = cid(&content);
    let chunks = (content.len() / CHUNK) as u64;
    let rss_start = rss_kib(pid);

    let mut stuck: Vec<SecureStream> = (0..STUCK)
        .map(|i| {
            let mut s = small_window_connection(i, alice.addr);
            s.write_all(&greedy_requests(sha, chunks, i as u64))
                .unwrap();
            s
        })
        .collect();
    let rss_stuck = rss_once_settled(pid, 256 * MIB, Duration::from_secs(6));
    eprintln!(
        "Alice's RSS: {rss_start} KiB at start, {rss_stuck} KiB with {STUCK} stuck connections"
    );
    assert!(
        rss_stuck < 256 * MIB,
        "Alice holds {rss_stuck} KiB for {STUCK} connections that read nothing"
    );

    // Nobody else is starved: a fresh connection is answered, and a whole download goes
    // through while the 300 are still stuck.
    let mut probe = secure_from(source_ip(STUCK + PER_IP, PER_IP), alice.addr).unwrap();
    probe
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    send(&mut probe, &hello("Probe")).unwrap();
    assert!(matches!(recv(&mut probe).unwrap(), Message::Hello { .. }));
    send(&mut probe, &Message::ListFiles { req: 1 }).unwrap();
    assert!(matches!(recv(&mut probe).unwrap(), Message::Files { .. }));
    let bob = PeerDirs::new();
    let started = Instant::now();
    run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice big.bin\n",
    )
    .assert_success();
    eprintln!("Bob downloaded 64 MiB in {:?} meanwhile", started.elapsed());
    assert_file_eq(&bob.downloads.join("big.bin"), &content);
    let rss_during = rss_kib(pid);
    assert!(
        rss_during < 256 * MIB,
        "Alice holds {rss_during} KiB after serving Bob beside the stuck connections"
    );

    // The stuck connections are still open (nobody was dropped to make room)...
    for s in &mut stuck {
        s.get_ref().set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        match std::io::Read::read(s, &mut byte) {
            Ok(n) => assert!(n > 0, "a stuck connection was closed"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
        }
    }
    // ...and once they close, the memory is returned.
    drop(stuck);
    drop(probe);
    let rss_after = rss_falls_below(pid, 64 * MIB, Duration::from_secs(10));
    eprintln!("Alice's RSS: {rss_during} KiB with Bob done, {rss_after} KiB after they closed");
    assert!(
        rss_after < 64 * MIB,
        "Alice still holds {rss_after} KiB after the stuck connections closed"
    );
}
