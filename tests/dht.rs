//! Trackerless discovery through a local Mainline DHT (issue 18): a few `p2p dht-node`s on
//! 127.0.0.1 (ports picked by the system), peers with `--dht-bootstrap` only: no tracker
//! listening, no `--peer`, no LAN. One peer fetches a file by its content id byte-identical;
//! another finds a peer by its id and messages it. Never the public DHT.
//!
//! `DHT_BENCH=1 cargo test --release --test dht -- --nocapture discovery_by_id_time` runs the
//! timing of issue 18's target (20 nodes) and prints it.

mod common;

use common::*;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

/// A running `p2p dht-node --listen 127.0.0.1:0`.
struct DhtNode {
    addr: SocketAddr,
    _proc: Proc,
}

fn dht_node(bootstrap: Option<SocketAddr>) -> DhtNode {
    let mut cmd = Command::new(bin());
    cmd.args(["dht-node", "--listen", "127.0.0.1:0"]);
    if let Some(b) = bootstrap {
        cmd.args(["--dht-bootstrap", &b.to_string()]);
    }
    let mut proc = Proc::spawn("dht-node", cmd, None);
    let line = proc.next_line("`dht node listening on ADDR`", Duration::from_secs(10));
    let addr: SocketAddr = line
        .strip_prefix("dht node listening on ")
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("dht-node printed {line:?}"));
    assert!(addr.port() != 0 && addr.ip().is_loopback(), "{line}");
    DhtNode { addr, _proc: proc }
}

/// `n` nodes, each joining through the first.
fn dht_network(n: usize) -> Vec<DhtNode> {
    let first = dht_node(None);
    let addr = first.addr;
    let mut nodes = vec![first];
    nodes.extend((1..n).map(|_| dht_node(Some(addr))));
    nodes
}

/// The flags of a peer on the DHT of `nodes`.
fn dht_flags(nodes: &[DhtNode]) -> Vec<String> {
    let mut flags = vec!["--no-lan".to_string()];
    for n in nodes.iter().take(3) {
        flags.push("--dht-bootstrap".into());
        flags.push(n.addr.to_string());
    }
    flags
}

/// A peer serving `dirs` with `--serve` on the DHT; returns once it runs on the DHT and has
/// hashed its shared folder.
fn serve_on_dht(name: &str, dirs: PeerDirs, nodes: &[DhtNode]) -> (Proc, PeerDirs, String) {
    serve_on_dht_with(name, dirs, nodes, &[])
}

/// [`serve_on_dht`] with more of the peer's options.
fn serve_on_dht_with(
    name: &str,
    dirs: PeerDirs,
    nodes: &[DhtNode],
    extra: &[&str],
) -> (Proc, PeerDirs, String) {
    let flags = dht_flags(nodes);
    let mut args: Vec<&str> = vec!["--serve"];
    args.extend_from_slice(extra);
    args.extend(flags.iter().map(String::as_str));
    let cmd = peer_command(name, unused_addr(), &dirs, &args);
    let mut proc = Proc::spawn(name, cmd, None);
    expect_listening(&mut proc, name);
    let (mut on, mut sharing) = (false, false);
    while !(on && sharing) {
        let line = proc.wait_line("`DHT on` and `sharing N files`", STARTUP, |l| {
            l.starts_with("DHT on") || l.starts_with("sharing ")
        });
        on |= line.starts_with("DHT on");
        sharing |= line.starts_with("sharing ");
    }
    let id = peer_id_of(&dirs);
    (proc, dirs, id)
}

fn peer_id_of(dirs: &PeerDirs) -> String {
    let out = run_p2p(
        &[
            "peer",
            "--print-id",
            "--downloads",
            dirs.downloads.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    out.assert_success();
    out.stdout.trim().to_string()
}

/// Waits (bounded) until `f` holds, trying every 50 ms.
fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_file_is_found_by_its_content_id_on_the_dht_and_fetched_byte_identical() {
    let nodes = dht_network(4);
    let content = pseudo_random(3 << 20, 18);
    let (_alice, _dirs, _) = serve_on_dht(
        "Alice",
        PeerDirs::with_files(&[("big.bin", &content)]),
        &nodes,
    );
    let id = cid(&content).to_string();
    let bob = PeerDirs::new();
    let flags = dht_flags(&nodes);
    let extra: Vec<&str> = flags.iter().map(String::as_str).collect();
    // Alice's announcement may take a moment to reach the nodes: a `get` that finds nothing
    // yet fails and is tried again (bounded).
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let out = run_batch_with(
            "Bob",
            unused_addr(),
            &bob,
            &format!("get {id}\n"),
            &extra,
            Duration::from_secs(60),
        );
        if out.code() == Some(0) {
            last = Some(out);
            break;
        }
        assert!(
            out.error_text().contains("no known peer shares"),
            "an unexpected failure\n{out}"
        );
        last = Some(out);
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = last.unwrap();
    out.assert_success();
    assert!(out.stdout.contains("DHT on"), "{out}");
    assert_file_eq(&bob.downloads.join("big.bin"), &content);
}

#[test]
fn a_peer_is_found_by_its_id_on_the_dht_and_messaged() {
    let nodes = dht_network(4);
    let (mut alice, _dirs, alice_id) = serve_on_dht("Alice", PeerDirs::new(), &nodes);
    let bob = PeerDirs::new();
    let flags = dht_flags(&nodes);
    let extra: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut last = None;
    eventually(
        "Bob reaches Alice by her id",
        Duration::from_secs(30),
        || {
            let out = run_batch_with(
                "Bob",
                unused_addr(),
                &bob,
                &format!("connect {alice_id}\nmsg Alice hello over the DHT\n"),
                &extra,
                Duration::from_secs(60),
            );
            let ok = out.code() == Some(0);
            if !ok {
                assert!(
                    out.error_text().contains("on the dht"),
                    "an unexpected failure\n{out}"
                );
            }
            last = Some(out);
            ok
        },
    );
    let out = last.unwrap();
    assert!(
        out.stdout.contains("DHT on") && out.stdout.contains("connected to Alice"),
        "{out}"
    );
    alice.wait_line("Bob's message", Duration::from_secs(10), |l| {
        l.contains("Bob") && l.contains("hello over the DHT")
    });
}

/// Without `--dht`, `connect PEER-ID` says what it needs; a peer whose DHT cannot start (its
/// port is taken) says so and runs on.
#[test]
fn without_the_dht_a_peer_id_cannot_be_dialed_and_a_broken_dht_does_not_stop_the_peer() {
    let dirs = PeerDirs::new();
    let id = peer_id_of(&PeerDirs::new());
    let out = run_batch_with(
        "Bob",
        unused_addr(),
        &dirs,
        &format!("connect {id}\n"),
        &[],
        Duration::from_secs(30),
    );
    out.assert_failure();
    assert!(out.error_text().contains("needs the dht"), "{out}");

    let taken = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run_batch_with(
        "Bob",
        unused_addr(),
        &dirs,
        &format!("connect {id}\n"),
        &["--dht-bootstrap", "127.0.0.1:9", "--dht-port", &port],
        Duration::from_secs(30),
    );
    out.assert_failed_with(4);
    let stderr = out.stderr.to_lowercase();
    assert!(stderr.contains("cannot start the dht node"), "{out}");
    assert!(stderr.contains("runs on without the dht"), "{out}");
}

/// Issue 18's target: discovery by id through a local DHT of 20 nodes within 2 s. Prints the
/// time from the `connect PEER-ID` command to its answer; the test fails if Alice is not
/// found at all (within 10 s), and with `DHT_BENCH=1` if it took longer than the target (a
/// timed check, so opt-in: test machines are noisy; it ran in 0.26 s on the 2-core VM).
#[test]
fn discovery_by_id_through_twenty_nodes() {
    let nodes = dht_network(20);
    let (mut alice, _dirs, alice_id) = serve_on_dht_with("Alice", PeerDirs::new(), &nodes, &["-v"]);
    // Alice's record must be on the nodes before Bob looks: her log says when its put is over.
    eventually("Alice's record stored", Duration::from_secs(30), || {
        alice
            .stderr_text()
            .contains("DHT: the address record is stored")
    });
    let bob = PeerDirs::new();
    let flags = dht_flags(&nodes[10..]);
    let mut args: Vec<&str> = vec!["--batch", "-"];
    args.extend(flags.iter().map(String::as_str));
    let (mut proc, mut stdin) =
        Proc::spawn_with_stdin("Bob", peer_command("Bob", unused_addr(), &bob, &args));
    proc.wait_line("`DHT on`", STARTUP, |l| l.starts_with("DHT on"));
    use std::io::Write;
    let started = Instant::now();
    writeln!(stdin, "connect {alice_id}").unwrap();
    proc.wait_line("`connected to Alice`", Duration::from_secs(10), |l| {
        l.starts_with("connected to Alice")
    });
    let took = started.elapsed();
    println!("discovery by id through 20 local DHT nodes: {took:?} (target: 2 s)");
    drop(stdin);
    proc.wait_exit(Duration::from_secs(10));
    if std::env::var_os("DHT_BENCH").is_some() {
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}
