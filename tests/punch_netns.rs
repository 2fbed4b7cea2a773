//! TCP hole punching through the relay (PROTOCOL.md §18.8), in network namespaces: `pub`
//! holds the tracker with `--relay`; `r1` and `r2` are home routers that masquerade
//! (nftables) their home's traffic out of their public link and, like a home router, drop
//! what arrives there unasked (a new connection to the router itself); Alice lives in `h1`
//! behind `r1`, Bob in `h2` behind `r2`. Bob's direct dial to Alice's listed address goes
//! unanswered, so he reaches her through the relay; the relay tells each the other's public
//! address, both dial it from their listen port at once (masquerade keeps the port), and the
//! link that comes up replaces the relayed one: the file arrives byte-identical and `peers`
//! says `punched`. With `--no-punch` the same transfer stays `relayed`, and behind routers that
//! pick random source ports (where punching cannot work) it falls back to the relay.
//!
//! Needs root, iproute2 and nftables (`.ci/run` installs them); where namespaces or NAT
//! cannot be made the test says why and passes as skipped.

mod common;

use common::netns::{self, run};
use common::*;
use std::process::Command;
use std::time::Duration;

/// The namespaces of one run; deleted on drop (their veth ends go with them).
struct Nets(Vec<String>);

impl Drop for Nets {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// `pub` ↔ `r{n}` on 10.78.{n}.0/24 and `r{n}` ↔ `h{n}` on 192.168.8{n}.0/24, the router
/// masquerading what leaves for `pub` and dropping new connections that come in from it.
/// With `random_ports` the router picks a random source port for every connection (nftables
/// `masquerade random`), as a NAT that does not keep port numbers: punching must fail there.
fn home(nets: &Nets, n: u8, id: &str, random_ports: bool) -> Result<(), String> {
    let (public, router, host) = (&nets.0[0], &nets.0[n as usize], &nets.0[2 + n as usize]);
    let (pu, ru, rh, hh) = (
        format!("pu{n}{id}"),
        format!("ru{n}{id}"),
        format!("rh{n}{id}"),
        format!("hh{n}{id}"),
    );
    for (a, b, ns_a, ns_b) in [(&pu, &ru, public, router), (&rh, &hh, router, host)] {
        run(&["ip", "link", "add", a, "type", "veth", "peer", "name", b])?;
        run(&["ip", "link", "set", a, "netns", ns_a])?;
        run(&["ip", "link", "set", b, "netns", ns_b])?;
    }
    let (public_net, home_net) = (format!("10.78.{n}"), format!("192.168.8{n}"));
    let addrs = [
        (public, &pu, format!("{public_net}.1/24")),
        (router, &ru, format!("{public_net}.2/24")),
        (router, &rh, format!("{home_net}.1/24")),
        (host, &hh, format!("{home_net}.2/24")),
    ];
    for (ns, dev, addr) in &addrs {
        run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev])?;
        run(&["ip", "-n", ns, "link", "set", dev, "up"])?;
    }
    let via = format!("{public_net}.1");
    run(&["ip", "-n", router, "route", "add", "default", "via", &via])?;
    let via = format!("{home_net}.1");
    run(&["ip", "-n", host, "route", "add", "default", "via", &via])?;
    let forward = ["sysctl", "-qw", "net.ipv4.ip_forward=1"];
    run(&[&["ip", "netns", "exec", router][..], &forward[..]].concat())?;
    let nft = |rule: &str| run(&["ip", "netns", "exec", router, "nft", rule]);
    nft("add table ip nat")?;
    nft("add chain ip nat post { type nat hook postrouting priority 100 ; }")?;
    let random = if random_ports { " random" } else { "" };
    nft(&format!(
        "add rule ip nat post oifname {ru} masquerade{random}"
    ))?;
    nft("add table ip filter")?;
    nft("add chain ip filter input { type filter hook input priority 0 ; }")?;
    nft(&format!(
        "add rule ip filter input iifname {ru} ct state new drop"
    ))
}

fn make_nets(suffix: u32, random_ports: bool) -> Result<Nets, String> {
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    let id = format!("{}{suffix}", std::process::id() % 10_000);
    let nets = Nets(
        ["pub", "r1", "r2", "h1", "h2"]
            .iter()
            .map(|n| format!("p2ppunch{n}{id}"))
            .collect(),
    );
    for ns in &nets.0 {
        run(&["ip", "netns", "add", ns])?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
    }
    // The public side routes between the two routers, as the internet would.
    let forward = ["sysctl", "-qw", "net.ipv4.ip_forward=1"];
    run(&[&["ip", "netns", "exec", &nets.0[0]][..], &forward[..]].concat())?;
    home(&nets, 1, &id, random_ports)?;
    home(&nets, 2, &id, random_ports)?;
    Ok(nets)
}

/// `PROGRAM ARGS` inside namespace `ns`, LAN discovery off.
fn in_ns(ns: &str, program: &str, args: &[&str]) -> Command {
    let mut cmd = netns::in_ns(ns, program, args);
    cmd.env("P2P_NO_LAN", "1");
    cmd
}

/// A peer in namespace `ns` listening on every address, LAN discovery off.
fn peer_in(ns: &str, name: &str, tracker: &str, dirs: &PeerDirs, extra: &[&str]) -> Command {
    let extra = [&["--listen", "0.0.0.0:0"], extra].concat();
    let mut cmd = netns::peer_in_ns(ns, name, tracker, dirs, &extra);
    cmd.env("P2P_NO_LAN", "1").env("RUST_LOG", "p2p=info");
    cmd
}

/// Alice serves a file in `h1`, Bob fetches it from `h2` and lists his peers (`bob_extra`
/// added to his command line): his `peers` row for Alice's VIA column.
fn transfer(suffix: u32, bob_extra: &[&str], random_ports: bool) -> Option<(String, String)> {
    let nets = match make_nets(suffix, random_ports) {
        Ok(nets) => nets,
        Err(why) => {
            eprintln!("skipped: cannot build the NAT namespaces here: {why}");
            return None;
        }
    };
    let (public, h1, h2) = (&nets.0[0], &nets.0[3], &nets.0[4]);
    let work = tempfile::tempdir().unwrap();
    let mut cmd = in_ns(
        public,
        bin(),
        &["tracker", "--listen", "0.0.0.0:0", "--relay"],
    );
    cmd.current_dir(work.path());
    let mut tracker = Proc::spawn("tracker", cmd, None);
    let line = tracker.next_line("`tracker listening on ADDR`", STARTUP);
    let port = line.rsplit(':').next().unwrap().trim().to_string();

    let content = pseudo_random(3 * CHUNK + 777, 81);
    let name = "punched.bin";
    let text = "straight through both routers";
    let alice_dirs = PeerDirs::with_files(&[(name, &content)]);
    let tracker1 = format!("10.78.1.1:{port}");
    let cmd = peer_in(h1, "Alice", &tracker1, &alice_dirs, &["--serve"]);
    let mut alice = Proc::spawn("Alice", cmd, None);
    alice.wait_registered_and_sharing(STARTUP);

    let bob = PeerDirs::new();
    let batch = bob.root().join("batch.txt");
    std::fs::write(
        &batch,
        format!("wait-peer Alice 30\nget Alice {name}\nmsg Alice {text}\npeers\n"),
    )
    .unwrap();
    let tracker2 = format!("10.78.2.1:{port}");
    let extra = [&["--batch", batch.to_str().unwrap()], bob_extra].concat();
    let cmd = peer_in(h2, "Bob", &tracker2, &bob, &extra);
    let mut proc = Proc::spawn("Bob", cmd, None);
    let started = std::time::Instant::now();
    let status = proc.wait_exit(Duration::from_secs(90));
    let stdout = proc.collect_stdout(Duration::from_secs(5)).join("\n");
    let diag = format!("{stdout}\n{}", proc.stderr_text());
    assert!(status.success(), "Bob's batch failed: {diag}");
    assert_file_eq(&bob.downloads.join(name), &content);
    alice.wait_line("Bob's message", Duration::from_secs(10), |l| {
        is_chat(l, "Bob", text)
    });
    tracker.wait_line("the relay's session", Duration::from_secs(5), |l| {
        l.starts_with("relaying ")
    });
    let via = stdout
        .lines()
        .map(fields)
        .find(|f| f.first() == Some(&"Alice") && f.len() > 5)
        .map(|f| f[5].to_string());
    let via = via.unwrap_or_else(|| "no peers row for Alice".into());
    let diag = format!("{diag}\nAlice: {}", alice.stderr_text());
    eprintln!("Bob's batch took {:?}", started.elapsed());
    Some((via, diag))
}

#[test]
fn two_peers_behind_cone_nats_get_a_punched_link() {
    if let Some((via, diag)) = transfer(1, &[], false) {
        assert_eq!(via, "punched", "{diag}");
    }
}

#[test]
fn with_no_punch_the_link_stays_relayed() {
    if let Some((via, diag)) = transfer(2, &["--no-punch"], false) {
        assert_eq!(via, "relayed", "{diag}");
    }
}

/// Behind NATs that change port numbers the punch cannot meet: both sides give up after 5 s
/// and the relayed link carries the transfer.
#[test]
fn where_punching_fails_the_relayed_link_is_used() {
    if let Some((via, diag)) = transfer(3, &[], true) {
        assert_eq!(via, "relayed", "{diag}");
        assert!(diag.contains("staying relayed"), "{diag}");
    }
}
