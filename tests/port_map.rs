//! Port mapping (NAT-PMP, PROTOCOL.md §19) against a fake gateway on 127.0.0.1: a UDP
//! responder in the test (`--gateway 127.0.0.1:PORT`) that records the request bytes and
//! answers as RFC 6886 says, plus a TCP forwarder standing in for the router's mapping, so a
//! second peer reaches the first through the mapped address it published with the tracker.
//! Everything stays on this machine, every peer with `P2P_NO_LAN=1` (`common::Proc`).

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// What the fake gateway answers to a TCP mapping request.
#[derive(Clone, Copy)]
enum Answer {
    /// Success: this external port for 7200 s.
    Map { external: u16 },
    /// This result code (RFC 6886 §3.5).
    Refuse(u16),
}

/// A fake NAT-PMP gateway: every datagram it gets goes to `requests`; opcode 0 is answered
/// with 127.0.0.1 as the external address, opcode 2 as `answer` says. Epoch 1000.
struct FakeGateway {
    addr: SocketAddr,
    requests: mpsc::Receiver<Vec<u8>>,
}

impl FakeGateway {
    fn start(answer: Answer) -> FakeGateway {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the fake gateway");
        let addr = socket.local_addr().unwrap();
        let (tx, requests) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 1100];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let req = buf[..n].to_vec();
                let reply = reply_to(&req, answer);
                if tx.send(req).is_err() {
                    return;
                }
                if let Some(reply) = reply {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        FakeGateway { addr, requests }
    }

    /// The next request (bounded wait).
    fn next(&self, what: &str) -> Vec<u8> {
        self.requests
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("the fake gateway got no {what}"))
    }
}

fn reply_to(req: &[u8], answer: Answer) -> Option<Vec<u8>> {
    let epoch = 1000u32.to_be_bytes();
    match req {
        [0, 0] => {
            let mut r = vec![0, 128, 0, 0];
            r.extend_from_slice(&epoch);
            r.extend_from_slice(&Ipv4Addr::LOCALHOST.octets());
            Some(r)
        }
        [0, 2, 0, 0, i0, i1, _, _, l0, l1, l2, l3] => {
            let (result, external, lifetime) = match answer {
                Answer::Map { external } => (0u16, external, [*l0, *l1, *l2, *l3]),
                Answer::Refuse(code) => (code, 0, [0; 4]),
            };
            let mut r = vec![0, 130];
            r.extend_from_slice(&result.to_be_bytes());
            r.extend_from_slice(&epoch);
            r.extend_from_slice(&[*i0, *i1]);
            r.extend_from_slice(&external.to_be_bytes());
            r.extend_from_slice(&lifetime);
            Some(r)
        }
        _ => None,
    }
}

/// The router's side of a mapping: connections to `listener` are spliced to `to`. Returns
/// how many connections came through.
fn forward(listener: TcpListener, to: SocketAddr) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for inbound in listener.incoming() {
            let Ok(inbound) = inbound else { return };
            let Ok(outbound) = TcpStream::connect(to) else {
                continue;
            };
            let _ = tx.send(());
            for (mut from, mut into) in [
                (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                (outbound, inbound),
            ] {
                thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || into.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = into.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    rx
}

fn map_request(internal: u16, suggested: u16, lifetime: u32) -> Vec<u8> {
    let mut b = vec![0, 2, 0, 0];
    b.extend_from_slice(&internal.to_be_bytes());
    b.extend_from_slice(&suggested.to_be_bytes());
    b.extend_from_slice(&lifetime.to_be_bytes());
    b
}

/// Alice asks the gateway (the RFC's bytes), says `port mapped: ...` at start, registers the
/// mapped address; Bob finds her there through the tracker, fetches a file through the
/// "router" (the forwarder), byte-identical, and `peers` shows her as `mapped`. At SIGTERM
/// Alice deletes the mapping (lifetime 0).
#[test]
fn a_peer_maps_its_port_publishes_it_and_is_reached_through_it() {
    let router = TcpListener::bind("127.0.0.1:0").unwrap();
    let external = router.local_addr().unwrap().port();
    let gateway = FakeGateway::start(Answer::Map { external });
    let tracker = Tracker::start();
    let content = pseudo_random(700_000, 18);
    let dirs = PeerDirs::with_files(&[("mapped.bin", &content)]);
    let gw = gateway.addr.to_string();
    let cmd = peer_command("Alice", tracker.addr, &dirs, &["--serve", "--gateway", &gw]);
    let mut alice = Proc::spawn("Alice", cmd, None);
    let listen = expect_listening(&mut alice, "Alice");
    let through = forward(router, listen);

    assert_eq!(gateway.next("external address request"), [0, 0]);
    assert_eq!(
        gateway.next("mapping request"),
        map_request(listen.port(), listen.port(), 7200)
    );
    // The start-up line, and the folder hashed (in either order).
    let (mut mapped, mut sharing) = (None, false);
    while mapped.is_none() || !sharing {
        let line = alice.wait_line("`port mapped: ...` and `sharing`", STARTUP, |l| {
            l.contains("port map") || l.starts_with("sharing ")
        });
        sharing |= line.starts_with("sharing ");
        if line.contains("port map") {
            mapped = Some(line);
        }
    }
    assert_eq!(
        mapped.unwrap(),
        format!(
            "port mapped: 127.0.0.1:{external} -> :{} (NAT-PMP, 2h)",
            listen.port()
        )
    );

    let bob = PeerDirs::new();
    let out = run_batch(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice mapped.bin\npeers\n",
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("mapped.bin"), &content);
    let row = out
        .stdout_lines()
        .into_iter()
        .map(fields)
        .find(|f| f.first() == Some(&"Alice") && f.len() >= 6)
        .unwrap_or_else(|| panic!("`peers` does not list Alice\n{out}"));
    assert_eq!(row[1], format!("127.0.0.1:{external}"), "{out}");
    assert_eq!(row[5], "mapped", "{out}");
    through
        .recv_timeout(Duration::from_secs(5))
        .expect("Bob came through the mapped port");

    alice.signal(libc::SIGTERM);
    assert!(alice.wait_exit(EXIT_TIMEOUT).success());
    let deleted = std::iter::from_fn(|| gateway.requests.try_recv().ok())
        .find(|r| r[..] != [0, 0] && r[8..] == [0, 0, 0, 0]);
    assert_eq!(
        deleted,
        Some(map_request(listen.port(), 0, 0)),
        "the mapping is deleted at a clean exit"
    );
}

/// A gateway that refuses: one clear line saying why, and the peer runs on, registered at its
/// direct address. The gateway comes from `P2P_GATEWAY` this time.
#[test]
fn a_refusing_gateway_gets_one_clear_line_and_the_peer_runs_on() {
    let gateway = FakeGateway::start(Answer::Refuse(2));
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    let gw = gateway.addr.to_string();
    let mut cmd = peer_command("Alice", tracker.addr, &dirs, &["--serve"]);
    cmd.env("P2P_GATEWAY", &gw);
    let mut alice = Proc::spawn("Alice", cmd, None);
    let listen = expect_listening(&mut alice, "Alice");
    let line = alice.wait_line("`no port mapping: ...`", STARTUP, |l| {
        l.starts_with("port mapped") || l.starts_with("no port mapping")
    });
    assert_eq!(
        line,
        format!(
            "no port mapping: the gateway refused the mapping (result 2: not authorized; port \
             mapping may be turned off in the router) (gateway {gw})"
        )
    );
    alice.wait_line("`registered with tracker`", STARTUP, |l| {
        l.starts_with("registered with tracker")
    });
    let out = run_batch(
        "Bob",
        tracker.addr,
        &PeerDirs::new(),
        "wait-peer Alice 10\npeers\n",
    );
    out.assert_success();
    let row = out
        .stdout_lines()
        .into_iter()
        .map(fields)
        .find(|f| f.first() == Some(&"Alice") && f.len() >= 6)
        .unwrap_or_else(|| panic!("`peers` does not list Alice\n{out}"));
    assert_eq!(row[1], listen.to_string());
    assert_eq!(row[5], "direct", "{out}");
}

/// A `--gateway` that is no IPv4 address is a usage error. (That `--no-lan` without
/// `--gateway` asks no router is checked where a router can listen: `port_map_netns.rs`.)
#[test]
fn a_bad_gateway_is_a_usage_error() {
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    let out = run_batch_with(
        "Alice",
        tracker.addr,
        &dirs,
        "",
        &["--gateway", "router"],
        Duration::from_secs(10),
    );
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(out.stderr.contains("invalid --gateway"), "{out}");
}
