//! Downloads against sources that misbehave: reconnects, handshakes that time out, broken
//! frames, bans. Moved from process tests whose subject is the download's logic; each says
//! where it came from.

use super::pseudo_random;
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
