//! Port mapping across a real NAT (PROTOCOL.md §19), in network namespaces of our own:
//!
//! ```text
//!  home (10.77.1.2) ── router (10.77.1.1 | 198.51.100.1) ── public (198.51.100.2)
//!  Alice, Dave          nftables masquerade,                 tracker, Bob
//!                       fake NAT-PMP/PCP server on :5351
//! ```
//!
//! The router masquerades everything home sends out, so nothing from outside reaches Alice
//! unless a mapping exists. Its port-mapping server (a thread of this test, moved into the
//! router's namespace) answers RFC 6886 (NAT-PMP) requests, and once switched to PCP, RFC
//! 6887 MAP requests only; for each TCP mapping it adds an nftables `dnat` rule from an
//! external port (the internal one + 1000, so the published port is provably the mapped one)
//! to the client. Speaking NAT-PMP it drops PCP requests unanswered (so Alice falls back to
//! NAT-PMP after her PCP tries); speaking PCP it checks, as a real server does (§8.2,
//! `ADDRESS_MISMATCH`), that the client address in the request is the one the request came
//! from. Alice runs with LAN traffic on (inside her namespace only) and no `--gateway`, so she
//! finds the router from her namespace's `/proc/net/route`. Bob, in public, finds her through
//! the tracker at the mapped address, fetches a file byte-identical, and `peers` shows her
//! `mapped`; then Dave does the same over PCP. Needs root, `ip` and `nft` (`.ci/run` installs
//! them); where namespaces or nftables are missing the test says why and passes as skipped.

mod common;

use common::netns::{in_ns, peer_in_ns, run};
use common::*;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

const HOME_IP: &str = "10.77.1.2";
const ROUTER_IN: &str = "10.77.1.1";
const ROUTER_OUT: &str = "198.51.100.1";
const PUBLIC_IP: &str = "198.51.100.2";

/// Three namespaces, removed on drop.
struct Nat {
    home: String,
    router: String,
    public: String,
}

impl Drop for Nat {
    fn drop(&mut self) {
        for ns in [&self.home, &self.router, &self.public] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn make_nat() -> Result<Nat, String> {
    let id = std::process::id();
    let nat = Nat {
        home: format!("p2pmapH{id}"),
        router: format!("p2pmapR{id}"),
        public: format!("p2pmapP{id}"),
    };
    let (h, r, p) = (nat.home.as_str(), nat.router.as_str(), nat.public.as_str());
    for ns in [h, r, p] {
        run(&["ip", "netns", "add", ns])?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
    }
    let (h0, r0, r1, p0) = (
        format!("p2pmh{id}"),
        format!("p2pmr{id}"),
        format!("p2pms{id}"),
        format!("p2pmp{id}"),
    );
    for (a, ns_a, b, ns_b) in [(&h0, h, &r0, r), (&r1, r, &p0, p)] {
        run(&["ip", "link", "add", a, "type", "veth", "peer", "name", b])?;
        run(&["ip", "link", "set", a, "netns", ns_a])?;
        run(&["ip", "link", "set", b, "netns", ns_b])?;
    }
    for (ns, dev, ip) in [
        (h, &h0, HOME_IP),
        (r, &r0, ROUTER_IN),
        (r, &r1, ROUTER_OUT),
        (p, &p0, PUBLIC_IP),
    ] {
        run(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            dev,
        ])?;
        run(&["ip", "-n", ns, "link", "set", dev, "up"])?;
    }
    run(&["ip", "-n", h, "route", "add", "default", "via", ROUTER_IN])?;
    run(&[
        "ip",
        "netns",
        "exec",
        r,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ])?;
    let nft = |rule: &str| run(&["ip", "netns", "exec", r, "nft", rule]);
    nft("add table ip nat")?;
    nft("add chain ip nat prerouting { type nat hook prerouting priority -100 ; }")?;
    nft("add chain ip nat postrouting { type nat hook postrouting priority 100 ; }")?;
    nft(&format!(
        "add rule ip nat postrouting oifname {r1} masquerade"
    ))?;
    // Nothing from outside reaches home but what a mapping lets in.
    nft("add table ip filter")?;
    nft("add chain ip filter forward { type filter hook forward priority 0 ; policy drop ; }")?;
    nft("add rule ip filter forward ct state established,related accept")?;
    nft(&format!("add rule ip filter forward iifname {r0} accept"))?;
    nft("add rule ip filter forward ct status dnat accept")?;
    Ok(nat)
}

/// Moves the calling thread into namespace `ns` (sockets it makes from then on live there).
fn enter_ns(ns: &str) -> Result<(), String> {
    let file = std::fs::File::open(format!("/run/netns/{ns}"))
        .map_err(|e| format!("cannot open /run/netns/{ns}: {e}"))?;
    // SAFETY: setns on a descriptor we hold open, for this thread only.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!("setns({ns}): {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The router's port-mapping server: a thread in the router's namespace answering on
/// ROUTER_IN:5351, in NAT-PMP, or in PCP only while `pcp` is set. Each TCP mapping request
/// becomes a `dnat` rule; every request is also sent to the returned channel. Its first
/// message says whether it could start.
fn nat_pmp_server(
    router: String,
    public_dev: String,
    pcp: Arc<AtomicBool>,
) -> mpsc::Receiver<Result<Vec<u8>, String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let socket = match enter_ns(&router)
            .and_then(|()| UdpSocket::bind((ROUTER_IN, 5351)).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let _ = tx.send(Ok(Vec::new()));
        let external_ip: Ipv4Addr = ROUTER_OUT.parse().unwrap();
        let epoch = 77u32.to_be_bytes();
        let mut buf = [0u8; 1100];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let req = buf[..n].to_vec();
            if pcp.load(Ordering::SeqCst) {
                let reply = pcp_reply(&req, from, &router, &public_dev, external_ip, &tx);
                if tx.send(Ok(req)).is_err() {
                    return;
                }
                if let Some(reply) = reply {
                    let _ = socket.send_to(&reply, from);
                }
                continue;
            }
            let reply = match req[..] {
                [0, 0] => {
                    let mut r = vec![0, 128, 0, 0];
                    r.extend_from_slice(&epoch);
                    r.extend_from_slice(&external_ip.octets());
                    Some(r)
                }
                [0, 2, 0, 0, i0, i1, _, _, l0, l1, l2, l3] => {
                    let internal = u16::from_be_bytes([i0, i1]);
                    let lifetime = [l0, l1, l2, l3];
                    let external = if lifetime == [0; 4] {
                        0
                    } else {
                        internal.wrapping_add(1000)
                    };
                    if external != 0 {
                        let rule = format!(
                            "add rule ip nat prerouting iifname {public_dev} tcp dport {external} \
                             dnat to {}:{internal}",
                            from.ip()
                        );
                        if let Err(e) = run(&["ip", "netns", "exec", &router, "nft", &rule]) {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                    let mut r = vec![0, 130, 0, 0];
                    r.extend_from_slice(&epoch);
                    r.extend_from_slice(&[i0, i1]);
                    r.extend_from_slice(&external.to_be_bytes());
                    r.extend_from_slice(&lifetime);
                    Some(r)
                }
                _ => None,
            };
            if tx.send(Ok(req)).is_err() {
                return;
            }
            if let Some(reply) = reply {
                let _ = socket.send_to(&reply, from);
            }
        }
    });
    rx
}

/// The PCP server's answer to a 60-byte MAP request (RFC 6887 §7.2, §11.1): a `dnat` rule
/// for a mapping, `ADDRESS_MISMATCH` (12) when the client address in the request is not the
/// one it came from. Anything else (NAT-PMP included) goes unanswered.
fn pcp_reply(
    req: &[u8],
    from: SocketAddr,
    router: &str,
    public_dev: &str,
    external_ip: Ipv4Addr,
    tx: &mpsc::Sender<Result<Vec<u8>, String>>,
) -> Option<Vec<u8>> {
    if req.len() != 60 || req[..2] != [2, 1] || req[36] != 6 {
        return None;
    }
    let internal = u16::from_be_bytes([req[40], req[41]]);
    let lifetime: [u8; 4] = req[4..8].try_into().unwrap();
    let SocketAddr::V4(from_v4) = from else {
        return None;
    };
    let (result, external) = if req[8..24] != from_v4.ip().to_ipv6_mapped().octets() {
        (12u8, 0)
    } else if lifetime == [0; 4] {
        (0, 0)
    } else {
        let external = internal.wrapping_add(1000);
        let rule = format!(
            "add rule ip nat prerouting iifname {public_dev} tcp dport {external} dnat to \
             {}:{internal}",
            from_v4.ip()
        );
        if let Err(e) = run(&["ip", "netns", "exec", router, "nft", &rule]) {
            let _ = tx.send(Err(e));
            return None;
        }
        (0, external)
    };
    let mut r = vec![2, 0x81, 0, result];
    r.extend_from_slice(&lifetime);
    r.extend_from_slice(&77u32.to_be_bytes());
    r.extend_from_slice(&[0; 12]);
    r.extend_from_slice(&req[24..42]);
    r.extend_from_slice(&external.to_be_bytes());
    r.extend_from_slice(&external_ip.to_ipv6_mapped().octets());
    Some(r)
}

#[test]
fn a_peer_behind_nat_is_reached_through_the_port_it_mapped() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: building network namespaces needs root");
        return;
    }
    let nat = match make_nat() {
        Ok(nat) => nat,
        Err(why) => {
            eprintln!("skipped: cannot build a NAT of namespaces and nftables here: {why}");
            return;
        }
    };
    let public_dev = format!("p2pms{}", std::process::id());
    let pcp = Arc::new(AtomicBool::new(false));
    let requests = nat_pmp_server(nat.router.clone(), public_dev, pcp.clone());
    match requests.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(_)) => {}
        other => panic!("the fake NAT-PMP server did not start: {other:?}"),
    }

    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = in_ns(
        &nat.public,
        bin(),
        &["tracker", "--listen", &format!("{PUBLIC_IP}:0")],
    );
    cmd.current_dir(cwd.path());
    let mut tracker = Proc::spawn("tracker", cmd, None);
    let line = tracker.next_line("`tracker listening on ADDR`", STARTUP);
    let tracker_addr = line
        .strip_prefix("tracker listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();

    let content = pseudo_random(2 * 1024 * 1024 + 777, 19);
    let alice_dirs = PeerDirs::with_files(&[("behind-nat.bin", &content)]);
    let mut cmd = peer_in_ns(&nat.home, "Alice", &tracker_addr, &alice_dirs, &["--serve"]);
    // LAN traffic on, inside the home namespace only (nothing there but Alice): port mapping
    // is on by default, the gateway found from the namespace's routing table.
    cmd.env("P2P_NO_LAN", "0");
    let mut alice = Proc::spawn("Alice", cmd, None);
    let listen = expect_listening(&mut alice, "Alice");
    let external = listen.port().wrapping_add(1000);
    // The start-up line and the registration, in either order.
    let (mut line, mut registered) = (None, false);
    while line.is_none() || !registered {
        let l = alice.wait_line("`port mapped: ...` and `registered`", STARTUP, |l| {
            l.contains("port map") || l.contains("registered with tracker")
        });
        registered |= l.contains("registered with tracker");
        if l.contains("port map") {
            line = Some(l);
        }
    }
    assert_eq!(
        line.unwrap(),
        format!(
            "port mapped: {ROUTER_OUT}:{external} -> :{} (NAT-PMP, 2h)",
            listen.port()
        ),
        "{}",
        alice.diagnostics()
    );

    let bob = PeerDirs::new();
    let batch = bob.root().join("batch.txt");
    std::fs::write(
        &batch,
        "wait-peer Alice 20\nget Alice behind-nat.bin\npeers\n",
    )
    .unwrap();
    let listen = format!("{PUBLIC_IP}:0");
    let batch = batch.to_str().unwrap();
    let cmd = peer_in_ns(
        &nat.public,
        "Bob",
        &tracker_addr,
        &bob,
        &["--listen", &listen, "--batch", batch],
    );
    let mut bob_proc = Proc::spawn("Bob", cmd, None);
    let status = bob_proc.wait_exit(Duration::from_secs(90));
    let stdout = bob_proc.collect_stdout(Duration::from_secs(5));
    assert!(
        status.success(),
        "Bob could not fetch through the mapping\n{}",
        bob_proc.diagnostics()
    );
    assert_file_eq(&bob.downloads.join("behind-nat.bin"), &content);
    let row: Vec<String> = stdout
        .iter()
        .map(|l| fields(l))
        .find(|f| f.first() == Some(&"Alice") && f.len() >= 6)
        .unwrap_or_else(|| panic!("`peers` does not list Alice: {stdout:?}"))
        .into_iter()
        .map(String::from)
        .collect();
    let mapped: SocketAddr = format!("{ROUTER_OUT}:{external}").parse().unwrap();
    assert_eq!(row[1], mapped.to_string(), "{stdout:?}");
    assert_eq!(row[5], "mapped", "{stdout:?}");

    // A clean stop deletes the mapping (lifetime 0).
    alice.signal(libc::SIGTERM);
    assert!(alice.wait_exit(EXIT_TIMEOUT).success());
    let mut deleted = false;
    while let Ok(Ok(req)) = requests.recv_timeout(Duration::from_secs(5)) {
        if req.len() == 12 && req[1] == 2 && req[8..] == [0, 0, 0, 0] {
            deleted = true;
            break;
        }
    }
    assert!(deleted, "no deletion request at Alice's clean exit");

    // The router now speaks PCP only: Dave maps over PCP, with his address as the router
    // sees it (checked by the server), and Bob reaches him there.
    pcp.store(true, Ordering::SeqCst);
    let dave_dirs = PeerDirs::with_files(&[("behind-nat.bin", &content)]);
    let mut cmd = peer_in_ns(&nat.home, "Dave", &tracker_addr, &dave_dirs, &["--serve"]);
    cmd.env("P2P_NO_LAN", "0");
    let mut dave = Proc::spawn("Dave", cmd, None);
    let dave_listen = expect_listening(&mut dave, "Dave");
    let dave_external = dave_listen.port().wrapping_add(1000);
    let (mut line, mut registered) = (None, false);
    while line.is_none() || !registered {
        let l = dave.wait_line("`port mapped: ...` and `registered`", STARTUP, |l| {
            l.contains("port map") || l.contains("registered with tracker")
        });
        registered |= l.contains("registered with tracker");
        if l.contains("port map") {
            line = Some(l);
        }
    }
    assert_eq!(
        line.unwrap(),
        format!(
            "port mapped: {ROUTER_OUT}:{dave_external} -> :{} (PCP, 2h)",
            dave_listen.port()
        ),
        "{}",
        dave.diagnostics()
    );
    let bob2 = PeerDirs::new();
    let batch = bob2.root().join("batch.txt");
    std::fs::write(
        &batch,
        "wait-peer Dave 20\nget Dave behind-nat.bin\npeers\n",
    )
    .unwrap();
    let batch = batch.to_str().unwrap();
    let listen = format!("{PUBLIC_IP}:0");
    let cmd = peer_in_ns(
        &nat.public,
        "Bob2",
        &tracker_addr,
        &bob2,
        &["--listen", &listen, "--batch", batch],
    );
    let mut bob2_proc = Proc::spawn("Bob2", cmd, None);
    let status = bob2_proc.wait_exit(Duration::from_secs(90));
    let stdout = bob2_proc.collect_stdout(Duration::from_secs(5));
    assert!(
        status.success(),
        "Bob could not fetch through the PCP mapping\n{}",
        bob2_proc.diagnostics()
    );
    assert_file_eq(&bob2.downloads.join("behind-nat.bin"), &content);
    let row = stdout
        .iter()
        .map(|l| fields(l))
        .find(|f| f.first() == Some(&"Dave") && f.len() >= 6)
        .unwrap_or_else(|| panic!("`peers` does not list Dave: {stdout:?}"));
    assert_eq!(
        row[1],
        format!("{ROUTER_OUT}:{dave_external}"),
        "{stdout:?}"
    );
    assert_eq!(row[5], "mapped", "{stdout:?}");
    dave.signal(libc::SIGTERM);
    assert!(dave.wait_exit(EXIT_TIMEOUT).success());
    let mut deleted = false;
    while let Ok(Ok(req)) = requests.recv_timeout(Duration::from_secs(5)) {
        if req.len() == 60 && req[4..8] == [0, 0, 0, 0] {
            deleted = true;
            break;
        }
    }
    assert!(deleted, "no PCP deletion at Dave's clean exit");
    pcp.store(false, Ordering::SeqCst);

    // With LAN traffic off and no --gateway (how every test and CI runs), no router is asked,
    // though the default route points at one that answers. A peer asks at once at start
    // (Alice's first request came within milliseconds), so a second of silence says it all.
    let carol = PeerDirs::new();
    let batch = carol.root().join("batch.txt");
    std::fs::write(&batch, "sleep 1\n").unwrap();
    let batch = batch.to_str().unwrap();
    let mut cmd = peer_in_ns(
        &nat.home,
        "Carol",
        &tracker_addr,
        &carol,
        &["--batch", batch],
    );
    cmd.env("P2P_NO_LAN", "1");
    let mut carol_proc = Proc::spawn("Carol", cmd, None);
    assert!(carol_proc.wait_exit(Duration::from_secs(30)).success());
    let asked: Vec<Vec<u8>> = std::iter::from_fn(|| requests.try_recv().ok())
        .filter_map(Result::ok)
        .collect();
    assert_eq!(
        asked,
        Vec::<Vec<u8>>::new(),
        "a peer with --no-lan asked the router"
    );
    assert!(
        !carol_proc
            .collect_stdout(Duration::from_secs(5))
            .iter()
            .any(|l| l.contains("port map")),
        "{}",
        carol_proc.diagnostics()
    );
}
