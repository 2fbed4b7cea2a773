//! Two home networks behind NAT and a relay on the public side, in network namespaces
//! (PROTOCOL.md §18): `pub` holds the tracker with `--relay`; `r1` and `r2` are routers that
//! masquerade (nftables) their home's traffic out of their public link; Alice lives in `h1`
//! behind `r1`, Bob in `h2` behind `r2`. The tracker lists Alice at her router's public
//! address, where nothing forwards to her, so Bob's direct dial is refused and he goes
//! through the relay: the file must arrive byte-identical, `peers` must say `relayed`, and a
//! capture of every packet in `pub` (tcpdump) must hold none of the file's bytes, its name or
//! the message text.
//!
//! Needs root, iproute2, nftables and tcpdump (`.ci/run` installs them); where namespaces or
//! NAT cannot be made the test says why and passes as skipped.

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

/// `pub` ↔ `r{n}` on 10.77.{n}.0/24 and `r{n}` ↔ `h{n}` on 192.168.7{n}.0/24, the router
/// masquerading what leaves for `pub`.
fn home(nets: &Nets, n: u8, id: u32) -> Result<(), String> {
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
    let addrs = [
        (public, &pu, format!("10.77.{n}.1/24")),
        (router, &ru, format!("10.77.{n}.2/24")),
        (router, &rh, format!("192.168.7{n}.1/24")),
        (host, &hh, format!("192.168.7{n}.2/24")),
    ];
    for (ns, dev, addr) in &addrs {
        run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev])?;
        run(&["ip", "-n", ns, "link", "set", dev, "up"])?;
    }
    run(&[
        "ip",
        "-n",
        router,
        "route",
        "add",
        "default",
        "via",
        &format!("10.77.{n}.1"),
    ])?;
    run(&[
        "ip",
        "-n",
        host,
        "route",
        "add",
        "default",
        "via",
        &format!("192.168.7{n}.1"),
    ])?;
    run(&[
        "ip",
        "netns",
        "exec",
        router,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ])?;
    let nft = |rule: &str| run(&["ip", "netns", "exec", router, "nft", rule]);
    nft("add table ip nat")?;
    nft("add chain ip nat post { type nat hook postrouting priority 100 ; }")?;
    nft(&format!("add rule ip nat post oifname {ru} masquerade"))
}

fn make_nets() -> Result<Nets, String> {
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    let id = std::process::id() % 100_000;
    let nets = Nets(
        ["pub", "r1", "r2", "h1", "h2"]
            .iter()
            .map(|n| format!("p2pnat{n}{id}"))
            .collect(),
    );
    for ns in &nets.0 {
        run(&["ip", "netns", "add", ns])?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
    }
    // The public side routes between the two routers, as the internet would.
    run(&[
        "ip",
        "netns",
        "exec",
        &nets.0[0],
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ])?;
    home(&nets, 1, id)?;
    home(&nets, 2, id)?;
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
    cmd.env("P2P_NO_LAN", "1");
    cmd
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_relayed_transfer_between_two_nats_is_identical_and_the_relay_sees_no_plaintext() {
    let nets = match make_nets() {
        Ok(nets) => nets,
        Err(why) => {
            eprintln!("skipped: cannot build the NAT namespaces here: {why}");
            return;
        }
    };
    let (public, h1, h2) = (&nets.0[0], &nets.0[3], &nets.0[4]);
    let work = tempfile::tempdir().unwrap();

    // Every packet the public side sees, on both links, to a file.
    let pcap = work.path().join("relay.pcap");
    let capture = Command::new("tcpdump")
        .arg("--version")
        .output()
        .is_ok()
        .then(|| {
            let cmd = in_ns(
                public,
                "sh",
                &[
                    "-c",
                    &format!(
                        "exec tcpdump -Z root -i any -U -s 0 -w {} tcp 2>&1",
                        pcap.display()
                    ),
                ],
            );
            let mut p = Proc::spawn("tcpdump", cmd, None);
            p.wait_line("tcpdump listening", STARTUP, |l| l.contains("listening on"));
            p
        });

    let mut cmd = in_ns(
        public,
        bin(),
        &["tracker", "--listen", "0.0.0.0:0", "--relay"],
    );
    cmd.current_dir(work.path());
    let mut tracker = Proc::spawn("tracker", cmd, None);
    let line = tracker.next_line("`tracker listening on ADDR`", STARTUP);
    let port = line.rsplit(':').next().unwrap().trim().to_string();

    let content = pseudo_random(2 * CHUNK + 999, 71);
    let name = "secret-plan.bin";
    let text = "the eagle lands at noon";
    let alice_dirs = PeerDirs::with_files(&[(name, &content)]);
    let tracker1 = format!("10.77.1.1:{port}");
    // No hole punching (tests/punch_netns.rs has it): this is the relayed path.
    let cmd = peer_in(
        h1,
        "Alice",
        &tracker1,
        &alice_dirs,
        &["--serve", "--no-punch"],
    );
    let mut alice = Proc::spawn("Alice", cmd, None);
    alice.wait_registered_and_sharing(STARTUP);

    let bob = PeerDirs::new();
    let batch = bob.root().join("batch.txt");
    std::fs::write(
        &batch,
        format!("wait-peer Alice 30\nget Alice {name}\nmsg Alice {text}\npeers\n"),
    )
    .unwrap();
    let tracker2 = format!("10.77.2.1:{port}");
    let cmd = peer_in(
        h2,
        "Bob",
        &tracker2,
        &bob,
        &["--batch", batch.to_str().unwrap()],
    );
    let mut proc = Proc::spawn("Bob", cmd, None);
    let status = proc.wait_exit(Duration::from_secs(90));
    let stdout = proc.collect_stdout(Duration::from_secs(5)).join("\n");
    let diag = format!("{stdout}\n{}", proc.stderr_text());
    assert!(status.success(), "Bob's batch failed: {diag}");
    assert_file_eq(&bob.downloads.join(name), &content);
    let relayed = stdout
        .lines()
        .map(fields)
        .any(|f| f.first() == Some(&"Alice") && f.get(5) == Some(&"relayed"));
    assert!(relayed, "Alice is not shown as relayed: {diag}");
    alice.wait_line("Bob's message", Duration::from_secs(10), |l| {
        is_chat(l, "Bob", text)
    });
    tracker.wait_line("the relay's session", Duration::from_secs(5), |l| {
        l.starts_with("relaying ")
    });

    let Some(mut capture) = capture else {
        eprintln!("no tcpdump here: the transfer was checked, the capture was not");
        return;
    };
    capture.signal(libc::SIGINT);
    capture.wait_exit(EXIT_TIMEOUT);
    let seen = std::fs::read(&pcap).expect("the capture file");
    // The file passes the public side twice (in from Alice, out to Bob); a capture that
    // holds less than once its size missed the transfer (tcpdump may drop a few packets).
    assert!(
        seen.len() > content.len(),
        "the capture holds {} bytes: it missed the relayed transfer",
        seen.len()
    );
    for (what, needle) in [
        ("the file's first bytes", &content[..64]),
        ("the file's middle bytes", &content[CHUNK..CHUNK + 64]),
        ("the file's name", name.as_bytes()),
        ("the message text", text.as_bytes()),
    ] {
        assert!(
            !contains(&seen, needle),
            "the relay saw {what} in plaintext"
        );
    }
}
