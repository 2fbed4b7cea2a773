//! Port mapping (PCP, NAT-PMP and UPnP-IGD, PROTOCOL.md §19) against a fake gateway on
//! 127.0.0.1: a UDP responder in the test (`--gateway 127.0.0.1:PORT`) that records the
//! request bytes and answers as RFC 6887 (PCP) or RFC 6886 (NAT-PMP) says, speaking one of them
//! only; a fake UPnP IGD (`common::fake_igd`, `--upnp-search 127.0.0.1:PORT`) for the
//! fallback; plus a TCP forwarder standing in for the router's mapping, so a second peer
//! reaches the first through the mapped address it published with the tracker. Everything
//! stays on this machine, every peer with `P2P_NO_LAN=1` (`common::Proc`).

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// What the fake gateway answers to a mapping request.
#[derive(Clone, Copy)]
enum Answer {
    /// Success: this external port for the lifetime asked.
    Map { external: u16 },
    /// This result code (RFC 6886 §3.5, RFC 6887 §7.4).
    Refuse(u16),
}

/// Which protocol the fake gateway speaks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Speaks {
    /// PCP only: NAT-PMP requests go unanswered.
    Pcp,
    /// NAT-PMP only, answering other versions with "unsupported version" (RFC 6886 §3.5).
    NatPmp,
    /// NAT-PMP only, dropping other versions without a word.
    NatPmpSilentToPcp,
}

/// A fake gateway: every datagram it gets goes to `requests`; answered as `speaks` and
/// `answer` say, 127.0.0.1 as the external address, epoch 1000.
struct FakeGateway {
    addr: SocketAddr,
    requests: mpsc::Receiver<Vec<u8>>,
}

impl FakeGateway {
    fn start(speaks: Speaks, answer: Answer) -> FakeGateway {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the fake gateway");
        let addr = socket.local_addr().unwrap();
        let (tx, requests) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 1100];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let req = buf[..n].to_vec();
                let reply = match (speaks, req.first()) {
                    (Speaks::Pcp, Some(2)) => pcp_reply_to(&req, answer),
                    (Speaks::NatPmp, Some(v)) if *v != 0 && req.len() >= 2 => {
                        // Version 0, opcode 128 + theirs, result 1, the epoch.
                        Some(vec![0, 128 | req[1], 0, 1, 0, 0, 0x03, 0xe8])
                    }
                    (Speaks::NatPmp | Speaks::NatPmpSilentToPcp, Some(0)) => reply_to(&req, answer),
                    _ => None,
                };
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

/// A PCP gateway's answer to a MAP request (RFC 6887 §7.2, §11.1): the header with the R bit,
/// result, lifetime and epoch; the request's nonce, protocol and internal port back; the
/// assigned port and ::ffff:127.0.0.1. Anything but a 60-byte MAP request goes unanswered.
fn pcp_reply_to(req: &[u8], answer: Answer) -> Option<Vec<u8>> {
    if req.len() != 60 || req[..2] != [2, 1] {
        return None;
    }
    let (result, external, lifetime) = match answer {
        Answer::Map { external } => (0u8, external, req[4..8].try_into().unwrap()),
        Answer::Refuse(code) => (code as u8, 0, [0, 0, 0, 30]),
    };
    let mut r = vec![2, 0x81, 0, result];
    r.extend_from_slice(&lifetime);
    r.extend_from_slice(&1000u32.to_be_bytes());
    r.extend_from_slice(&[0; 12]);
    r.extend_from_slice(&req[24..42]);
    r.extend_from_slice(&external.to_be_bytes());
    r.extend_from_slice(&Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets());
    Some(r)
}

/// A MAP request's fields (RFC 6887 §7.1, §11.1), checked for what never varies.
struct PcpMap {
    lifetime: u32,
    client: [u8; 16],
    nonce: [u8; 12],
    internal: u16,
    suggested_port: u16,
    suggested_ip: [u8; 16],
}

fn pcp_map(req: &[u8]) -> PcpMap {
    assert_eq!(req.len(), 60, "a PCP MAP request is 60 bytes: {req:?}");
    assert_eq!(req[..4], [2, 1, 0, 0], "version 2, MAP, reserved");
    assert_eq!(req[36..40], [6, 0, 0, 0], "TCP, reserved");
    PcpMap {
        lifetime: u32::from_be_bytes(req[4..8].try_into().unwrap()),
        client: req[8..24].try_into().unwrap(),
        nonce: req[24..36].try_into().unwrap(),
        internal: u16::from_be_bytes([req[40], req[41]]),
        suggested_port: u16::from_be_bytes([req[42], req[43]]),
        suggested_ip: req[44..60].try_into().unwrap(),
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

/// Waits (bounded) for the request `pred` picks among the next ones.
fn wait_request(gateway: &FakeGateway, what: &str, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    loop {
        let req = gateway.next(what);
        if pred(&req) {
            return req;
        }
    }
}

fn is_mapping_line(line: &str) -> bool {
    line.starts_with("port mapped") || line.starts_with("no port mapping")
}

/// Alice's start-up line about port mapping: mapped, or why not.
fn mapping_line(alice: &mut Proc) -> String {
    alice.wait_line(
        "`port mapped: ...` or `no port mapping: ...`",
        STARTUP,
        is_mapping_line,
    )
}

/// The port-mapping line and the start-up line `other` picks, in either order.
fn mapping_line_and(alice: &mut Proc, what: &str, other: impl Fn(&str) -> bool) -> String {
    let (mut mapped, mut seen) = (None, false);
    while mapped.is_none() || !seen {
        let line = alice.wait_line(&format!("the port-mapping line and {what}"), STARTUP, |l| {
            is_mapping_line(l) || other(l)
        });
        if is_mapping_line(&line) {
            mapped = Some(line);
        } else {
            seen = true;
        }
    }
    mapped.unwrap()
}

/// Bob finds Alice through the tracker, fetches `fetch` from her (byte-identical) if given,
/// and his `peers` lists her at `addr`, reached `via`.
fn bob_lists_alice(tracker: SocketAddr, fetch: Option<(&str, &[u8])>, addr: &str, via: &str) {
    let bob = PeerDirs::new();
    let get = fetch.map_or(String::new(), |(name, _)| format!("get Alice {name}\n"));
    let out = run_batch(
        "Bob",
        tracker,
        &bob,
        &format!("wait-peer Alice 10\n{get}peers\n"),
    );
    out.assert_success();
    if let Some((name, content)) = fetch {
        assert_file_eq(&bob.downloads.join(name), content);
    }
    let row = out
        .stdout_lines()
        .into_iter()
        .map(fields)
        .find(|f| f.first() == Some(&"Alice") && f.len() >= 6)
        .unwrap_or_else(|| panic!("`peers` does not list Alice\n{out}"));
    assert_eq!(row[1], addr, "{out}");
    assert_eq!(row[5], via, "{out}");
}

/// Alice asks the gateway (the RFCs' bytes), says `port mapped: ... (PROTOCOL, 2h)` at
/// start, registers the mapped address; Bob finds her there through the tracker, fetches a
/// file through the "router" (the forwarder), byte-identical, and `peers` shows her as
/// `mapped`. At SIGTERM Alice deletes the mapping (lifetime 0) in the protocol that made it.
fn maps_publishes_and_is_reached(speaks: Speaks) {
    let router = TcpListener::bind("127.0.0.1:0").unwrap();
    let external = router.local_addr().unwrap().port();
    let gateway = FakeGateway::start(speaks, Answer::Map { external });
    let tracker = Tracker::start();
    let content = pseudo_random(700_000, 18);
    let dirs = PeerDirs::with_files(&[("mapped.bin", &content)]);
    let gw = gateway.addr.to_string();
    let cmd = peer_command("Alice", tracker.addr, &dirs, &["--serve", "--gateway", &gw]);
    let mut alice = Proc::spawn("Alice", cmd, None);
    let listen = expect_listening(&mut alice, "Alice");
    let through = forward(router, listen);

    // PCP first, whoever the gateway is: our address as the gateway sees it
    // (::ffff:127.0.0.1), our port, suggesting the same one and no external address.
    let first = pcp_map(&gateway.next("PCP MAP request"));
    let mut client = [0u8; 16];
    client[10..12].copy_from_slice(&[0xff, 0xff]);
    let no_ip = client;
    client[12..].copy_from_slice(&[127, 0, 0, 1]);
    assert_eq!(first.client, client);
    assert_eq!(
        (first.lifetime, first.internal, first.suggested_port),
        (7200, listen.port(), listen.port())
    );
    assert_eq!(first.suggested_ip, no_ip);
    assert_ne!(first.nonce, [0; 12], "a random nonce");
    let via = match speaks {
        Speaks::Pcp => "PCP",
        Speaks::NatPmp | Speaks::NatPmpSilentToPcp => {
            // Silent: the PCP request again at 250 and 750 ms, then NAT-PMP at 1.75 s.
            assert_eq!(
                wait_request(&gateway, "NAT-PMP external address request", |r| r[0] == 0),
                [0, 0]
            );
            assert_eq!(
                gateway.next("NAT-PMP mapping request"),
                map_request(listen.port(), listen.port(), 7200)
            );
            "NAT-PMP"
        }
    };
    // The start-up line, and the folder hashed (in either order).
    assert_eq!(
        mapping_line_and(&mut alice, "`sharing`", |l| l.starts_with("sharing ")),
        format!(
            "port mapped: 127.0.0.1:{external} -> :{} ({via}, 2h)",
            listen.port()
        )
    );

    bob_lists_alice(
        tracker.addr,
        Some(("mapped.bin", &content)),
        &format!("127.0.0.1:{external}"),
        "mapped",
    );
    through
        .recv_timeout(Duration::from_secs(5))
        .expect("Bob came through the mapped port");

    alice.signal(libc::SIGTERM);
    assert!(alice.wait_exit(EXIT_TIMEOUT).success());
    match speaks {
        Speaks::Pcp => {
            let deleted = pcp_map(&wait_request(&gateway, "PCP deletion", |r| {
                r.len() == 60 && r[4..8] == [0; 4]
            }));
            assert_eq!(deleted.nonce, first.nonce, "the mapping's nonce");
            assert_eq!(deleted.internal, listen.port());
            assert_eq!(deleted.client, client);
        }
        Speaks::NatPmp | Speaks::NatPmpSilentToPcp => {
            let deleted = wait_request(&gateway, "NAT-PMP deletion", |r| {
                r.len() == 12 && r[8..] == [0, 0, 0, 0]
            });
            assert_eq!(deleted, map_request(listen.port(), 0, 0));
        }
    }
}

#[test]
fn a_pcp_only_gateway_maps_the_port_and_the_peer_is_reached_through_it() {
    maps_publishes_and_is_reached(Speaks::Pcp);
}

/// RFC 6887 Appendix A: a NAT-PMP-only gateway answers the PCP request "unsupported
/// version"; the peer maps over NAT-PMP at once.
#[test]
fn a_nat_pmp_only_gateway_still_maps_the_port_after_pcp() {
    maps_publishes_and_is_reached(Speaks::NatPmp);
}

/// A NAT-PMP gateway that drops PCP requests unanswered: NAT-PMP after three PCP tries.
#[test]
fn a_gateway_silent_to_pcp_still_maps_the_port_over_nat_pmp() {
    maps_publishes_and_is_reached(Speaks::NatPmpSilentToPcp);
}

/// A gateway that refuses: one clear line saying why, naming the protocol, and the peer runs
/// on, registered at its direct address. The gateway comes from `P2P_GATEWAY` this time.
#[test]
fn a_refusing_gateway_gets_one_clear_line_and_the_peer_runs_on() {
    for (speaks, why) in [
        (
            Speaks::Pcp,
            "the gateway refused the mapping (PCP result 2: NOT_AUTHORIZED; port mapping may \
             be turned off in the router)",
        ),
        (
            Speaks::NatPmp,
            "the gateway refused the mapping (NAT-PMP result 2: not authorized; port mapping \
             may be turned off in the router)",
        ),
    ] {
        refused(speaks, why);
    }
}

fn refused(speaks: Speaks, why: &str) {
    let gateway = FakeGateway::start(speaks, Answer::Refuse(2));
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    let gw = gateway.addr.to_string();
    let mut cmd = peer_command("Alice", tracker.addr, &dirs, &["--serve"]);
    cmd.env("P2P_GATEWAY", &gw);
    let mut alice = Proc::spawn("Alice", cmd, None);
    let listen = expect_listening(&mut alice, "Alice");
    assert_eq!(
        mapping_line(&mut alice),
        format!("no port mapping: {why} (gateway {gw})"),
        "{speaks:?}"
    );
    alice.wait_line("`registered with tracker`", STARTUP, |l| {
        l.starts_with("registered with tracker")
    });
    bob_lists_alice(tracker.addr, None, &listen.to_string(), "direct");
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

/// PCP refused (as a router with only UPnP turned on answers): the peer asks UPnP-IGD next.
/// It finds the fake IGD by SSDP, maps its listening port (its own port first; the IGD says
/// 718 ConflictInMappingEntry, so AddAnyPortMapping), says `port mapped: ... (UPnP-IGD, 2h)`,
/// registers the mapped address; Bob reaches Alice through the "router" and `peers` shows
/// her as `mapped`. At SIGTERM Alice deletes the mapping.
#[test]
fn upnp_igd_maps_the_port_when_pcp_and_nat_pmp_do_not() {
    let router = TcpListener::bind("127.0.0.1:0").unwrap();
    let external = router.local_addr().unwrap().port();
    let gateway = FakeGateway::start(Speaks::Pcp, Answer::Refuse(2));
    let igd = common::fake_igd::FakeIgd::start("127.0.0.1", external);
    let tracker = Tracker::start();
    let content = pseudo_random(500_000, 19);
    let dirs = PeerDirs::with_files(&[("upnp.bin", &content)]);
    let (gw, search) = (gateway.addr.to_string(), igd.ssdp.to_string());
    let extra = ["--serve", "--gateway", &gw, "--upnp-search", &search];
    let mut alice = Proc::spawn(
        "Alice",
        peer_command("Alice", tracker.addr, &dirs, &extra),
        None,
    );
    let listen = expect_listening(&mut alice, "Alice");
    let through = forward(router, listen);

    let ip = igd.wait_for("GetExternalIPAddress");
    assert!(ip.args.is_empty(), "{ip:?}");
    let own = igd.wait_for("AddPortMapping");
    let want = |external: u16| {
        [
            ("NewEnabled", "1".to_string()),
            ("NewExternalPort", external.to_string()),
            ("NewInternalClient", "127.0.0.1".to_string()),
            ("NewInternalPort", listen.port().to_string()),
            ("NewLeaseDuration", "7200".to_string()),
            ("NewPortMappingDescription", "p2p".to_string()),
            ("NewProtocol", "TCP".to_string()),
            ("NewRemoteHost", String::new()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(own.args, want(listen.port()), "its own port first");
    let any = igd.wait_for("AddAnyPortMapping");
    assert_eq!(any.args["NewInternalPort"], listen.port().to_string());
    assert_eq!(any.args["NewLeaseDuration"], "7200");

    assert_eq!(
        mapping_line(&mut alice),
        format!(
            "port mapped: 127.0.0.1:{external} -> :{} (UPnP-IGD, 2h)",
            listen.port()
        )
    );

    bob_lists_alice(
        tracker.addr,
        Some(("upnp.bin", &content)),
        &format!("127.0.0.1:{external}"),
        "mapped",
    );
    through
        .recv_timeout(Duration::from_secs(5))
        .expect("Bob came through the mapped port");

    alice.signal(libc::SIGTERM);
    assert!(alice.wait_exit(EXIT_TIMEOUT).success());
    let deleted = igd.wait_for("DeletePortMapping");
    assert_eq!(deleted.args["NewExternalPort"], external.to_string());
    assert_eq!(deleted.args["NewProtocol"], "TCP");
}

/// Neither PCP nor UPnP-IGD maps (PCP refuses, nobody answers the SSDP search): one line at
/// start names both reasons, and the peer runs on at its direct address.
#[test]
fn when_every_protocol_fails_one_line_names_both_reasons() {
    let gateway = FakeGateway::start(Speaks::Pcp, Answer::Refuse(2));
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let search = silent.local_addr().unwrap().to_string();
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    let gw = gateway.addr.to_string();
    let extra = ["--serve", "--gateway", &gw, "--upnp-search", &search];
    let mut alice = Proc::spawn(
        "Alice",
        peer_command("Alice", tracker.addr, &dirs, &extra),
        None,
    );
    expect_listening(&mut alice, "Alice");
    // The search waits 4 s for an answer: the peer registers meanwhile (either order).
    let registered = |l: &str| l.starts_with("registered with tracker");
    assert_eq!(
        mapping_line_and(&mut alice, "`registered with tracker`", registered),
        format!(
            "no port mapping: the gateway refused the mapping (PCP result 2: NOT_AUTHORIZED; \
             port mapping may be turned off in the router) (gateway {gw}); UPnP-IGD: no \
             gateway answered the search at {search}: No response within timeout"
        )
    );
    drop(silent);
}

/// With `--no-lan`, naming only `--upnp-search` asks UPnP-IGD alone: no PCP request goes to
/// the default route's router (there is no `--gateway`), and the mapping still comes.
#[test]
fn upnp_search_alone_asks_only_upnp() {
    let router = TcpListener::bind("127.0.0.1:0").unwrap();
    let external = router.local_addr().unwrap().port();
    let igd = common::fake_igd::FakeIgd::start("127.0.0.1", external);
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    let search = igd.ssdp.to_string();
    let extra = ["--serve", "--upnp-search", &search];
    let mut alice = Proc::spawn(
        "Alice",
        peer_command("Alice", tracker.addr, &dirs, &extra),
        None,
    );
    let listen = expect_listening(&mut alice, "Alice");
    assert_eq!(
        mapping_line(&mut alice),
        format!(
            "port mapped: 127.0.0.1:{external} -> :{} (UPnP-IGD, 2h)",
            listen.port()
        )
    );
}

/// A `--upnp-search` that is no IPv4 address is a usage error.
#[test]
fn a_bad_upnp_search_is_a_usage_error() {
    let tracker = Tracker::start();
    let out = run_batch_with(
        "Alice",
        tracker.addr,
        &PeerDirs::new(),
        "",
        &["--upnp-search", "router:1900"],
        Duration::from_secs(10),
    );
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(out.stderr.contains("invalid --upnp-search"), "{out}");
}
