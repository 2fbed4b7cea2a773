//! Working without the tracker: a peer restarted with the tracker down (peer cache), LAN
//! discovery by multicast, and `connect ADDR`. Real processes on 127.0.0.1, every wait bounded.
//! (A tracker that dies mid-download or restarts empty, and a newcomer that knows one address,
//! run in the in-memory harness: src/sim/tests/discovery.rs.)

mod common;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use common::*;

/// The `peers` rows of some output: (name, addr, `Ns ago`, source, reachable) fields.
fn peer_rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .map(fields)
        .filter(|f| (6..=7).contains(&f.len()) && f[2].ends_with("s ago"))
        .map(|f| f.into_iter().map(String::from).collect())
        .collect()
}

fn row<'a>(rows: &'a [Vec<String>], name: &str, out: &dyn std::fmt::Display) -> &'a [String] {
    rows.iter()
        .find(|r| r[0] == name)
        .unwrap_or_else(|| panic!("`peers` does not list {name}\n{out}"))
}

/// A `--serve` peer that may have no tracker: waits only for its `listening` line.
fn serve_alone(
    name: &str,
    tracker: SocketAddr,
    dirs: &PeerDirs,
    extra: &[&str],
) -> (Proc, SocketAddr) {
    let mut args = vec!["--serve"];
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn(name, peer_command(name, tracker, dirs, &args), None);
    let addr = expect_listening(&mut proc, name);
    (proc, addr)
}

/// Waits for a batch run to end; returns (status code, stdout, stderr).
fn finish(proc: &mut Proc, timeout: Duration) -> (Option<i32>, String, String) {
    let status = proc.wait_exit(timeout);
    // Whatever is left on stdout arrives once the process is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut lines = proc.lines_so_far();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let now = proc.lines_so_far();
        if now.len() == lines.len() {
            break;
        }
        lines = now;
    }
    (status.code(), lines.join("\n"), proc.stderr_text())
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

// `tracker_killed_mid_download_download_completes_and_messages_flow`,
// `newcomer_with_one_peer_address_finds_a_third_peer_through_exchange` and
// `tracker_restarted_on_the_same_address_is_full_again` moved to the in-memory harness
// (src/sim/tests/discovery.rs): their subject is the peers' logic, which runs there in fake
// time.

/// Bob met Alice and Carol through the tracker in an earlier run. The tracker is gone when he
/// starts again: his peer cache still gets him to both.
#[test]
fn restarted_peer_reaches_its_old_peers_from_the_cache() {
    let mut tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("a.txt", b"cached Alice\n")]);
    let mut carol = Peer::serve("Carol", tracker.addr, &[]);
    let bob = PeerDirs::new();
    run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nwait-peer Carol 10\n",
    )
    .assert_success();
    let cache = bob.downloads.join(".p2p").join("peers.cbor");
    assert!(cache.exists(), "no peer cache at {}", cache.display());

    tracker.proc.kill();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "get Alice a.txt\nmsg Carol back from the cache\npeers\n",
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("a.txt"), b"cached Alice\n");
    carol
        .proc
        .wait_line("Bob's message", Duration::from_secs(10), |l| {
            is_chat(l, "Bob", "back from the cache")
        });
    let rows = peer_rows(&out.stdout);
    for name in ["Alice", "Carol"] {
        let r = row(&rows, name, &out);
        assert_eq!(
            (r[3].as_str(), r[4].as_str()),
            ("cache", "reachable"),
            "{out}"
        );
    }
    assert_eq!(count(&out.stderr, "working without a tracker"), 1, "{out}");
}

/// A corrupt peer cache is ignored with a warning; the peer runs and rewrites it.
#[test]
fn corrupt_peer_cache_is_ignored_with_a_warning() {
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[]);
    let bob = PeerDirs::new();
    let cache = bob.downloads.join(".p2p").join("peers.cbor");
    fs::create_dir_all(cache.parent().unwrap()).unwrap();
    fs::write(&cache, [0x9f; 4096]).unwrap();
    let out = run_batch("Bob", tracker.addr, &bob, "wait-peer Alice 10\npeers\n");
    out.assert_success();
    assert!(out.stderr.contains("ignoring the peer cache"), "{out}");
    assert!(
        fs::read(&cache).unwrap() != vec![0x9f; 4096],
        "the cache was not rewritten"
    );
}

/// `connect ADDR` reaches a peer with no tracker at all and learns its name; a dead address
/// fails the command.
#[test]
fn connect_command_reaches_a_peer_by_address() {
    let nowhere = unused_addr();
    let alice_dirs = PeerDirs::with_files(&[("a.txt", b"a\n")]);
    let (mut alice, alice_addr) = serve_alone("Alice", nowhere, &alice_dirs, &[]);
    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        nowhere,
        &bob,
        &format!("connect {alice_addr}\nmsg Alice hello by address\npeers\n"),
    );
    out.assert_success();
    assert!(
        out.stdout
            .contains(&format!("connected to Alice at {alice_addr}")),
        "{out}"
    );
    alice.wait_line("Bob's message", Duration::from_secs(10), |l| {
        is_chat(l, "Bob", "hello by address")
    });
    let rows = peer_rows(&out.stdout);
    let r = row(&rows, "Alice", &out);
    assert_eq!(
        (r[3].as_str(), r[4].as_str()),
        ("manual", "reachable"),
        "{out}"
    );

    let dead = unused_addr();
    let out = run_batch("Bob", nowhere, &bob, &format!("connect {dead}\n"));
    // README, "Exit status": a peer that cannot be reached is 4.
    out.assert_failed_with(4);
    assert!(out.stderr.contains(&dead.to_string()), "{out}");
}

/// `connect HOST:PORT` looks the name up beside the reactor (peer/resolver.rs) and dials
/// what it finds once the lookup thread wakes the node; a name that does not resolve fails
/// the command with the lookup's reason, not a hang.
#[test]
fn connect_command_reaches_a_peer_by_host_name() {
    use std::net::ToSocketAddrs;
    let nowhere = unused_addr();
    let alice_dirs = PeerDirs::new();
    let (_alice, alice_addr) = serve_alone("Alice", nowhere, &alice_dirs, &[]);
    let by_name = format!("localhost:{}", alice_addr.port());
    let first = by_name.to_socket_addrs().ok().and_then(|mut a| a.next());
    if first != Some(alice_addr) {
        eprintln!("skipped: {by_name} resolves to {first:?} here, Alice listens on {alice_addr}");
        return;
    }
    let bob = PeerDirs::new();
    let started = Instant::now();
    let out = run_batch(
        "Bob",
        nowhere,
        &bob,
        &format!(
            "connect {by_name}
"
        ),
    );
    out.assert_success();
    assert!(
        out.stdout
            .contains(&format!("connected to Alice at {alice_addr}")),
        "{out}"
    );
    assert!(started.elapsed() < Duration::from_secs(8), "{out}");
    let out = run_batch("Bob", nowhere, &bob, "connect no-such-host.invalid:4000\n");
    out.assert_failed_with(1);
    assert!(
        out.stderr
            .contains("cannot connect to 'no-such-host.invalid:4000'"),
        "{out}"
    );
}

/// Whether two sockets in `group` on 127.0.0.1 hear each other; `Err(why)` if not.
fn loopback_multicast_works(group: SocketAddrV4) -> Result<(), String> {
    let lo = Ipv4Addr::LOCALHOST;
    let open = || -> std::io::Result<UdpSocket> {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
        s.set_reuse_address(true)?;
        s.bind(&socket2::SockAddr::from(group))?;
        s.join_multicast_v4(group.ip(), &lo)?;
        s.set_multicast_if_v4(&lo)?;
        s.set_multicast_loop_v4(true)?;
        s.set_multicast_ttl_v4(1)?;
        let s: UdpSocket = s.into();
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        Ok(s)
    };
    let (a, b) = (
        open().map_err(|e| e.to_string())?,
        open().map_err(|e| e.to_string())?,
    );
    a.send_to(b"probe", group).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 16];
    match b.recv_from(&mut buf) {
        Ok((5, _)) => Ok(()),
        Ok((n, _)) => Err(format!("got {n} bytes instead of 5")),
        Err(e) => Err(format!("nothing received: {e}")),
    }
}

/// A UDP port nobody on 127.0.0.1 uses right now, for a LAN group of this test's own.
fn unused_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// With no tracker and no address given, Bob finds Alice by her LAN announcements (multicast
/// kept on 127.0.0.1, in a group port of this test's own), downloads from her and messages her.
/// Carol, started with LAN discovery off, stays unknown. Junk sent to the group harms nobody.
#[test]
fn lan_discovery_finds_peers_with_no_tracker_and_no_address() {
    let group = SocketAddrV4::new(Ipv4Addr::new(239, 255, 70, 80), unused_udp_port());
    if let Err(why) = loopback_multicast_works(group) {
        println!("skipping LAN discovery test: multicast does not work on loopback here ({why})");
        return;
    }
    let lan_group = group.to_string();
    let lan = [
        "--lan-group",
        lan_group.as_str(),
        "--lan-iface",
        "127.0.0.1",
    ];
    let nowhere = unused_addr();

    let alice_dirs = PeerDirs::with_files(&[("a.txt", b"over the LAN\n")]);
    let mut cmd = peer_command(
        "Alice",
        nowhere,
        &alice_dirs,
        &[&["--serve"][..], &lan[..]].concat(),
    );
    cmd.env("P2P_NO_LAN", "0");
    let mut alice = Proc::spawn("Alice", cmd, None);
    let alice_addr = expect_listening(&mut alice, "Alice");
    let carol_dirs = PeerDirs::new();
    let (_carol, _) = serve_alone("Carol", nowhere, &carol_dirs, &[]);

    // Junk in the group: not CBOR, the wrong magic, an oversized datagram.
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&junk)
        .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
        .unwrap();
    for bytes in [
        &b"hello"[..],
        &[0xa1, 0x61, 0x78, 0x01][..],
        &[0x9f; 1400][..],
    ] {
        let _ = junk.send_to(bytes, group);
    }

    let bob = PeerDirs::new();
    let path = bob.root().join("batch-lan.txt");
    fs::write(
        &path,
        "wait-peer Alice 20\nget Alice a.txt\nmsg Alice found you\npeers\n",
    )
    .unwrap();
    let mut args = vec!["--batch", path.to_str().unwrap()];
    args.extend_from_slice(&lan);
    let mut cmd = peer_command("Bob", nowhere, &bob, &args);
    cmd.env("P2P_NO_LAN", "0");
    let mut run = Proc::spawn("Bob --batch (LAN)", cmd, None);
    let (code, stdout, stderr) = finish(&mut run, Duration::from_secs(60));
    let out = format!("{stdout}\n--- stderr ---\n{stderr}");
    assert_eq!(code, Some(0), "{out}");
    assert_file_eq(&bob.downloads.join("a.txt"), b"over the LAN\n");
    alice.wait_line("Bob's message", Duration::from_secs(10), |l| {
        is_chat(l, "Bob", "found you")
    });
    let rows = peer_rows(&stdout);
    let r = row(&rows, "Alice", &out);
    assert_eq!(r[1], alice_addr.to_string(), "{out}");
    assert_eq!(r[3], "lan", "{out}");
    assert!(
        !rows.iter().any(|r| r[0] == "Carol"),
        "Carol has LAN discovery off\n{out}"
    );
    assert!(alice.is_running(), "{}", alice.diagnostics());
}
