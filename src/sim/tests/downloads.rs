//! Downloads against sources that misbehave: reconnects, handshakes that time out, broken
//! frames, bans. Moved from process tests whose subject is the download's logic; each says
//! where it came from.

use super::{pseudo_random, read};
use crate::sim::script::{ChunkReply, FakeEvent, FakeScript, OnConnection};
use crate::sim::{PeerSpec, Sim};
use crate::tracker::TrackerConfig;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

const CHUNK: usize = 262_144;

fn with_tracker() -> Sim {
    let mut sim = Sim::new();
    sim.add_tracker(TrackerConfig::default());
    sim
}

/// From `tests/hardening_peers.rs`. The fake hangs up after every chunk it sends. The download
/// reconnects each time, checks the manifest again, and completes byte-identical.
#[test]
fn a_peer_that_disconnects_after_every_chunk_still_delivers_the_file() {
    let mut sim = with_tracker();
    let content = pseudo_random(6 * CHUNK + 1234, 6);
    let mut script = FakeScript::default();
    script.share("flaky.bin", &content);
    let mut honest = FakeScript::honest(content.clone());
    script.chunks = Box::new(move |n, sha, index| match honest(n, sha, index) {
        ChunkReply::Data(d) => ChunkReply::DataThenClose(d),
        other => other,
    });
    let (_, fake) = sim.add_fake_peer("Fake", script);
    let bob = sim.add_peer(PeerSpec::new("Bob").batch("wait-peer Fake 10\nget Fake flaky.bin\n"));
    let code = sim.run_to_exit(bob, Duration::from_secs(90));
    assert_eq!(code, 0, "{}", sim.diagnostics(bob));
    let got = std::fs::read(sim.dirs(bob).downloads.join("flaky.bin")).unwrap();
    assert!(got == content, "flaky.bin differs from the original");
    let hangups = fake
        .events()
        .iter()
        .filter(|e| matches!(e, FakeEvent::ClosedByUs(_)))
        .count();
    assert!(
        hangups >= 7,
        "only {hangups} hang-ups: the test did not test much"
    );
}

/// From `tests/faults.rs`. A source whose reconnect dies in its handshake (the peer was
/// frozen: the kernel accepted the connection, nobody answered `Hello`) goes back into the
/// reconnect cycle and is tried again; the download completes long before `--retry-for`.
#[test]
fn a_source_whose_reconnect_times_out_in_its_handshake_is_tried_again() {
    let mut sim = with_tracker();
    let content = pseudo_random(40 * CHUNK + 11, 8);
    let mut script = FakeScript::default();
    script.share("f.bin", &content);
    // Serves 8 chunks on its first connection and closes it; never answers the `Hello` of the
    // second; serves honestly from the third on.
    let mut honest = FakeScript::honest(content.clone());
    let served = Rc::new(Cell::new(0));
    script.chunks = Box::new(move |n, sha, index| {
        if n == 0 {
            if served.get() >= 8 {
                return ChunkReply::Close;
            }
            served.set(served.get() + 1);
        }
        honest(n, sha, index)
    });
    script.connections = Box::new(|n| {
        if n == 1 {
            OnConnection::Mute
        } else {
            OnConnection::Serve
        }
    });
    let (_, alice) = sim.add_fake_peer("Alice", script);
    let bob = sim.add_peer(
        PeerSpec::new("Bob")
            .batch("wait-peer Alice 10\nget Alice f.bin\n")
            .retry_for(Duration::from_secs(50)),
    );
    let code = sim.run_to_exit(bob, Duration::from_secs(45));
    assert_eq!(
        code,
        0,
        "the download did not recover from a handshake that timed out\n{}",
        sim.diagnostics(bob)
    );
    let got = std::fs::read(sim.dirs(bob).downloads.join("f.bin")).unwrap();
    assert!(got == content, "f.bin differs from the original");
    let accepted = alice
        .events()
        .iter()
        .filter(|e| matches!(e, FakeEvent::Accepted(_)))
        .count();
    assert!(
        accepted >= 3,
        "expected a first, a muted and a third connection"
    );
    // Long before --retry-for (50 s): the muted handshake costs its 10 s timeout and a
    // reconnect delay, no more.
    assert!(
        sim.elapsed() < Duration::from_secs(30),
        "{:?}",
        sim.elapsed()
    );
}

/// From `tests/faults.rs`. A source that answers chunk requests with frames that do not
/// decode, or that are far larger than the frame limit: each broken frame counts towards its
/// ban like a bad chunk, its reconnects back off, and `get --retry-for 2` ends.
#[test]
fn a_source_sending_broken_frames_is_banned_and_get_ends() {
    let garbage = || {
        let mut frame = 8u32.to_be_bytes().to_vec();
        frame.extend([0xFF; 8]);
        frame
    };
    let oversize = || u32::MAX.to_be_bytes().to_vec();
    for (what, broken) in [
        ("garbage", &garbage as &dyn Fn() -> Vec<u8>),
        ("oversize", &oversize),
    ] {
        let mut sim = with_tracker();
        let content = pseudo_random(6 * CHUNK, 10);
        let mut script = FakeScript::default();
        script.share("f.bin", &content);
        let bytes = broken();
        script.chunks = Box::new(move |_, _, _| ChunkReply::Raw(bytes.clone()));
        let (_, fake) = sim.add_fake_peer("Mallory", script);
        let bob = sim.add_peer(
            PeerSpec::new("Bob")
                .batch("wait-peer Mallory 10\nget Mallory f.bin\n")
                .retry_for(Duration::from_secs(2)),
        );
        let code = sim.run_to_exit(bob, Duration::from_secs(30));
        assert_eq!(
            code,
            3,
            "{what}: expected a verification failure (every source sent bad data)\n{}",
            sim.diagnostics(bob)
        );
        assert!(
            sim.stderr(bob).iter().any(|l| l.contains("banned")),
            "{}",
            sim.diagnostics(bob)
        );
        let connections = fake
            .events()
            .iter()
            .filter(|e| matches!(e, FakeEvent::Accepted(_)))
            .count();
        assert!(
            connections <= 4,
            "{what}: {connections} connections: one per bad frame at most"
        );
        assert!(!sim.dirs(bob).downloads.join("f.bin").exists());
    }
}

/// The length of `name`'s partial file in `dirs` (it grows as chunks are written in order).
fn partial_len(dirs: &crate::sim::Dirs, name: &str) -> u64 {
    std::fs::metadata(dirs.downloads.join(format!(".{name}.p2p-part")))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Runs until `name`'s partial file at `node` holds `bytes` (the download still running).
fn wait_partial(sim: &mut Sim, node: crate::sim::NodeId, name: &str, bytes: u64) {
    let dirs = sim.dirs(node);
    let reached = sim.run_until(Duration::from_secs(120), |s| {
        partial_len(&dirs, name) >= bytes || !s.is_running(node)
    });
    assert!(
        reached && sim.is_running(node),
        "the download ended or stalled before its partial file reached {bytes} bytes (it has \
         {})\n{}",
        partial_len(&dirs, name),
        sim.diagnostics(node)
    );
}

fn is_registered(e: &crate::peer::Event) -> bool {
    matches!(e, crate::peer::Event::Registered { .. })
}

/// From `tests/swarm.rs`. A seeder killed mid-swarm leaves the rest to the others: the
/// download completes byte-identical and says it lost that source. (96 chunks instead of
/// the process test's 1,024: all three sources join at the same fake instant, so the per-source
/// window does not need a big file to give each of them chunks.)
#[test]
fn a_seeder_killed_mid_swarm_leaves_the_rest_to_finish() {
    let mut sim = with_tracker();
    sim.set_latency(Duration::from_millis(1));
    let content = pseudo_random(96 * CHUNK, 24);
    let mut seeders = Vec::new();
    for name in ["Alice", "Bob", "Carol"] {
        let s = sim.add_peer(PeerSpec::new(name).file("f.bin", &content));
        sim.wait_event(s, Duration::from_secs(10), is_registered);
        seeders.push(s);
    }
    let dave = sim.add_peer(
        PeerSpec::new("Dave")
            .batch("wait-peer Alice 10\nwait-peer Bob 10\nwait-peer Carol 10\nget f.bin\n"),
    );
    wait_partial(&mut sim, dave, "f.bin", content.len() as u64 / 4);
    sim.kill(seeders[1]);
    assert_eq!(
        sim.run_to_exit(dave, Duration::from_secs(120)),
        0,
        "{}",
        sim.diagnostics(dave)
    );
    assert!(read(&sim.dirs(dave).downloads.join("f.bin")) == content);
    assert!(
        sim.stderr(dave).iter().any(|l| l.contains("lost Bob")),
        "{}",
        sim.diagnostics(dave)
    );
}

/// From `tests/resume.rs`. The only sender is killed and comes back at a new address while the
/// receiver waits (`--retry-for 60`): the download completes, nothing else left behind.
#[test]
fn sender_killed_and_restarted_on_another_port_while_the_receiver_waits() {
    let mut sim = with_tracker();
    sim.set_latency(Duration::from_millis(1));
    let content = pseudo_random(64 * CHUNK, 12);
    let alice = sim.add_peer(PeerSpec::new("Alice").file("big.bin", &content));
    sim.wait_event(alice, Duration::from_secs(10), is_registered);
    let bob = sim.add_peer(
        PeerSpec::new("Bob")
            .batch("wait-peer Alice 10\nget Alice big.bin\n")
            .retry_for(Duration::from_secs(60)),
    );
    // Kill Alice once a third has arrived.
    wait_partial(&mut sim, bob, "big.bin", content.len() as u64 / 3);
    let (old, dirs) = (sim.addr(alice), sim.dirs(alice));
    sim.kill(alice);

    // Bob notices, keeps waiting; Alice comes back at a new address.
    sim.wait_line(bob, Duration::from_secs(30), |l| l.contains("lost Alice"));
    assert!(sim.is_running(bob));
    let at = std::net::SocketAddr::new(old.ip(), old.port() + 1);
    sim.add_peer(PeerSpec::new("Alice").dirs(&dirs).at(at));

    assert_eq!(
        sim.run_to_exit(bob, Duration::from_secs(120)),
        0,
        "Bob's get completes after the sender returns\n{}",
        sim.diagnostics(bob)
    );
    let downloads = sim.dirs(bob).downloads;
    assert!(read(&downloads.join("big.bin")) == content);
    let mut listing: Vec<String> = std::fs::read_dir(&downloads)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".p2p")
        .collect();
    listing.sort();
    assert_eq!(listing, ["big.bin"]);
}

/// From `tests/resume.rs`. A source that never returns fails the batch with "unfinished"
/// (exit status 5) once `--retry-for 2` has passed, and keeps the partial download.
#[test]
fn source_that_never_returns_fails_the_batch_and_keeps_the_partial_download() {
    let mut sim = with_tracker();
    sim.set_latency(Duration::from_millis(1));
    let content = pseudo_random(64 * CHUNK, 13);
    let alice = sim.add_peer(PeerSpec::new("Alice").file("f.bin", &content));
    sim.wait_event(alice, Duration::from_secs(10), is_registered);
    let bob = sim.add_peer(
        PeerSpec::new("Bob")
            .batch("wait-peer Alice 10\nget Alice f.bin\n")
            .retry_for(Duration::from_secs(2)),
    );
    wait_partial(&mut sim, bob, "f.bin", content.len() as u64 / 4);
    sim.kill(alice);
    let lost = sim.elapsed();
    // Unfinished, resumable: exit status 5 (README, "Exit status").
    assert_eq!(
        sim.run_to_exit(bob, Duration::from_secs(60)),
        5,
        "{}",
        sim.diagnostics(bob)
    );
    let waited = sim.elapsed() - lost;
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(4),
        "gave up after {waited:?} (--retry-for 2)\n{}",
        sim.diagnostics(bob)
    );
    let err = sim.stderr(bob).join("\n");
    assert!(
        err.contains("error:") && err.contains("did not come back"),
        "{err}"
    );
    let downloads = sim.dirs(bob).downloads;
    assert!(
        downloads.join(".f.bin.p2p-part").exists(),
        "the partial download is kept"
    );
    assert!(!downloads.join("f.bin").exists());
}

/// From `tests/swarm.rs`. Three seeders with different names for the same content: `search`
/// counts three peers, `get` by name draws from all three, and what each sent adds up to the
/// file. (96 chunks instead of 1,024: the three join at the same fake instant, so no big file
/// is needed for each to get fresh chunks against the per-source window.)
#[test]
fn three_seeders_with_different_names_all_contribute() {
    let mut sim = with_tracker();
    sim.set_latency(Duration::from_millis(1));
    let content = pseudo_random(96 * CHUNK, 21);
    for (name, file) in [("Alice", "a.bin"), ("Bob", "b.bin"), ("Carol", "c.bin")] {
        let s = sim.add_peer(PeerSpec::new(name).file(file, &content));
        sim.wait_event(s, Duration::from_secs(10), is_registered);
    }
    let dave = sim.add_peer(PeerSpec::new("Dave").batch(
        "wait-peer Alice 10\nwait-peer Bob 10\nwait-peer Carol 10\nsearch bin\nget a.bin\n",
    ));
    assert_eq!(
        sim.run_to_exit(dave, Duration::from_secs(120)),
        0,
        "{}",
        sim.diagnostics(dave)
    );
    assert!(read(&sim.dirs(dave).downloads.join("a.bin")) == content);
    let out = sim.diagnostics(dave);
    assert!(
        sim.stdout(dave).iter().any(|l| l.contains("3 peer(s)")),
        "search counts three peers with that content\n{out}"
    );
    let per = sim
        .events(dave)
        .iter()
        .find_map(|(_, e)| match e {
            crate::peer::Event::DownloadDone {
                bytes_per_source, ..
            } => Some(bytes_per_source.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no download_done\n{out}"));
    // The `saved` line shows them too, as the process test read them.
    let saved = sim
        .stdout(dave)
        .into_iter()
        .find(|l| l.starts_with("saved "))
        .unwrap_or_else(|| panic!("no `saved` line\n{out}"));
    let names: Vec<&str> = per.keys().map(String::as_str).collect();
    assert_eq!(names, ["Alice", "Bob", "Carol"], "{out}");
    for (name, bytes) in &per {
        assert!(*bytes > 0, "{name} contributed nothing\n{out}");
        assert!(saved.contains(&format!("{name} {bytes}")), "{saved}");
    }
    assert_eq!(per.values().sum::<u64>(), content.len() as u64);
}
