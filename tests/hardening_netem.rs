//! A download over a lossy, slow link: two network namespaces joined by a veth pair, each end
//! shaped by `tc netem` (5% loss, 50 ms delay each way). The tracker and Alice live in one
//! namespace, Bob in the other; the file must arrive byte-identical. Needs root and the `ip`
//! and `tc` tools; anywhere they are missing the test says why and passes as skipped.
//!
//! Where the kernel has no netem (some VM kernels leave it out), the link is shaped the next
//! best way and the test prints which: 5% of packets dropped each way by an nftables rule
//! (`numgen random`) and the rate capped by `tbf` — loss and a slow link, but no added delay.
//!
//! The LAN namespace test is a module of this binary (`lan_netns`, was `tests/lan_netns.rs`).

mod common;
/// LAN announcements across a veth pair (was the binary `tests/lan_netns.rs`).
mod lan_netns;

use common::netns::{Link, in_ns, peer_in_ns, run};
use common::*;
use std::time::Duration;

const A_IP: &str = "10.99.0.1";
const B_IP: &str = "10.99.0.2";

/// Shapes `dev` in `ns`; returns how.
fn shape(ns: &str, dev: &str) -> Result<&'static str, String> {
    let netem = run(&[
        "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem", "loss", "5%",
        "delay", "50ms",
    ]);
    let why_not = match netem {
        Ok(()) => return Ok("netem: 5% loss, 50 ms delay each way"),
        Err(e) => e,
    };
    let nft = |rule: &str| run(&["ip", "netns", "exec", ns, "nft", rule]);
    nft("add table inet lossy")
        .and_then(|()| nft("add chain inet lossy out { type filter hook output priority 0 ; }"))
        .and_then(|()| {
            nft(&format!(
                "add rule inet lossy out oifname {dev} numgen random mod 100 < 5 drop"
            ))
        })
        .map_err(|e| format!("{why_not}; and no nftables fallback: {e}"))?;
    run(&[
        "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate",
        "20mbit", "burst", "32kbit", "latency", "400ms",
    ])?;
    Ok(
        "no netem in this kernel: 5% loss each way (nftables numgen) and a 20 Mbit/s tbf cap, no added delay",
    )
}

fn make_link() -> Result<(Link, &'static str), String> {
    let id = std::process::id();
    let link = Link {
        ns: [format!("p2pnetA{id}"), format!("p2pnetB{id}")],
    };
    let (a, b) = (link.ns[0].as_str(), link.ns[1].as_str());
    let (va, vb) = (format!("p2pa{id}"), format!("p2pb{id}"));
    run(&["ip", "netns", "add", a])?;
    run(&["ip", "netns", "add", b])?;
    run(&[
        "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb,
    ])?;
    run(&["ip", "link", "set", &va, "netns", a])?;
    run(&["ip", "link", "set", &vb, "netns", b])?;
    for (ns, dev, ip) in [(a, &va, A_IP), (b, &vb, B_IP)] {
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
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
    }
    let how = shape(a, &va)?;
    shape(b, &vb)?;
    Ok((link, how))
}

#[test]
fn a_download_over_a_lossy_slow_link_arrives_byte_identical() {
    let (link, how) = match make_link() {
        Ok(made) => made,
        Err(why) => {
            eprintln!("skipped: cannot build two network namespaces with netem here: {why}");
            return;
        }
    };
    let (a, b) = (link.ns[0].as_str(), link.ns[1].as_str());
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = in_ns(a, bin(), &["tracker", "--listen", &format!("{A_IP}:0")]);
    cmd.current_dir(cwd.path());
    let mut tracker = Proc::spawn("tracker", cmd, None);
    let line = tracker.next_line("`tracker listening on ADDR`", STARTUP);
    let tracker_addr = line
        .strip_prefix("tracker listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();

    let content = pseudo_random(3 * 1024 * 1024 + 4321, 55);
    let alice_dirs = PeerDirs::with_files(&[("lossy.bin", &content)]);
    let listen = format!("{A_IP}:0");
    let cmd = peer_in_ns(
        a,
        "Alice",
        &tracker_addr,
        &alice_dirs,
        &["--listen", &listen, "--serve"],
    );
    let mut alice = Proc::spawn("Alice", cmd, None);
    alice.wait_line("`registered with tracker`", STARTUP, |l| {
        l.starts_with("registered with tracker")
    });

    let bob = PeerDirs::new();
    let batch = bob.root().join("batch.txt");
    std::fs::write(&batch, "wait-peer Alice 30\nget Alice lossy.bin\n").unwrap();
    let listen = format!("{B_IP}:0");
    let batch = batch.to_str().unwrap();
    let cmd = peer_in_ns(
        b,
        "Bob",
        &tracker_addr,
        &bob,
        &["--listen", &listen, "--batch", batch],
    );
    let started = std::time::Instant::now();
    let mut bob_proc = Proc::spawn("Bob", cmd, None);
    let status = bob_proc.wait_exit(Duration::from_secs(180));
    let diagnostics = bob_proc.diagnostics();
    assert!(
        status.success(),
        "Bob failed over the lossy link\n{diagnostics}"
    );
    assert_file_eq(&bob.downloads.join("lossy.bin"), &content);
    eprintln!(
        "3 MiB arrived intact in {:.1}s over a link shaped by {how}",
        started.elapsed().as_secs_f64()
    );
}
