//! Round trips before a download's data (issue 17, "fewer round trips"), counted in fake time
//! over links with a 50 ms round trip (a connection: TCP's round trip, then the secure
//! handshake's): `get PEER FILE` of a one-chunk file, from a peer that
//! just started (tracker link, peer list, connection to the seeder) and over a connection that
//! is already up.

use crate::peer::event::Event;
use crate::sim::{Dirs, NodeId, PeerSpec, Sim};
use crate::tracker::TrackerConfig;
use std::time::Duration;

const ONE_WAY: Duration = Duration::from_millis(25);

/// How Bob stands when he is told `get Alice f.bin`.
#[derive(Clone, Copy, PartialEq)]
enum Start {
    /// Just started, knowing nobody.
    Fresh,
    /// Running, with a ready connection to Alice (he listed her files).
    Warm,
    /// Just restarted, with Alice's address in his peer cache from the run before.
    Cached,
}

/// Round trips from `get Alice f.bin` to the file saved (its one chunk arrived).
fn round_trips(start: Start) -> f64 {
    let mut sim = Sim::new();
    sim.set_latency(ONE_WAY);
    sim.add_tracker(TrackerConfig::default());
    sim.add_peer(PeerSpec::new("Alice").file("f.bin", b"hello world"));
    sim.run_for(Duration::from_secs(2));
    let dirs = Dirs::new();
    let mut bob = sim.add_peer(PeerSpec::new("Bob").dirs(&dirs).repl());
    if start != Start::Fresh {
        sim.line(bob, "files Alice");
        sim.run_for(Duration::from_secs(1));
    }
    if start == Start::Cached {
        sim.line(bob, "quit");
        sim.run_until(Duration::from_secs(5), |s| !s.is_running(bob));
        bob = sim.add_peer(PeerSpec::new("Bob").dirs(&dirs).repl());
    }
    let began = sim.elapsed();
    sim.line(bob, "get Alice f.bin");
    let saved = |sim: &Sim, bob: NodeId| {
        sim.events(bob)
            .iter()
            .find(|(_, e)| matches!(e, Event::DownloadDone { .. }))
            .map(|(at, _)| *at)
    };
    assert!(
        sim.run_until(Duration::from_secs(10), |s| saved(s, bob).is_some()),
        "{}",
        sim.diagnostics(bob)
    );
    let at = saved(&sim, bob).expect("waited for above");
    (at - began).as_secs_f64() / (2 * ONE_WAY).as_secs_f64()
}

/// Over a ready connection: `ListFiles`, then `GetManifest` with the first chunk requests right
/// behind it (`peer/first_flight.rs`): 2 round trips (3 when the chunks waited for the
/// manifest; 5 before that, when the download asked its first source for the manifest again
/// and for its chunk map).
#[test]
fn a_warm_get_takes_two_round_trips() {
    let rtts = round_trips(Start::Warm);
    assert!(rtts <= 2.01, "{rtts:.2} round trips");
}

/// From a peer's start: the tracker's connection (TCP, then the secure handshake: 2 round
/// trips), `Hello`, `Register` and `ListPeers` in one round trip, then the seeder's connection
/// (2), our `Hello` with `ListFiles` right behind it (1), and `GetManifest` with the first chunks
/// (1): 7 round trips (9 before both were pipelined; 6 before secure links, in a harness that
/// then counted a connect as half a round trip). Each connection costs TCP's round trip plus
/// the handshake's one
/// (`secure::link::tests::the_handshake_adds_one_round_trip_before_the_first_frame`). What is
/// left: the tracker's three, unless the peer is known from the peer cache
/// (`a_get_from_a_restart_that_knows_the_peer_takes_four_round_trips`).
#[test]
fn a_get_from_a_fresh_start_takes_seven_round_trips() {
    let rtts = round_trips(Start::Fresh);
    assert!(rtts <= 7.01, "{rtts:.2} round trips");
}

/// Bob saved `f.bin` as `content`, and neither dropped a source nor warned on the way.
fn saved_intact_from_a_source_never_blamed(sim: &Sim, bob: NodeId, content: &[u8]) {
    let got = std::fs::read(sim.dirs(bob).downloads.join("f.bin")).unwrap();
    assert!(got == content, "f.bin differs from what Carol shares");
    let dropped = (sim.events(bob).iter())
        .any(|(_, e)| matches!(e, Event::SourceDropped { .. } | Event::Warning(_)));
    assert!(!dropped, "{}", sim.diagnostics(bob));
}

/// Restarted with the seeder in the peer cache: the command runs before the tracker's first
/// list and dials the cached address at once, while the tracker's connection is being set up:
/// the seeder's connection (2), `Hello` with `ListFiles` (1), `GetManifest` with the first
/// chunks (1): 4 round trips (7 when it waited for the list first).
#[test]
fn a_get_from_a_restart_that_knows_the_peer_takes_four_round_trips() {
    let rtts = round_trips(Start::Cached);
    assert!(rtts <= 4.01, "{rtts:.2} round trips");
}

/// The first flight guesses the chunk size this implementation would pick (256 KiB for a small
/// file). A source that chose 1 MiB chunks answers the indices past its file's end with an
/// error, which is dropped: the download goes on and ends byte-identical, and the source is
/// not dropped for it.
#[test]
fn a_source_with_larger_chunks_than_the_first_flight_guessed_still_serves_the_file() {
    use crate::peer::manifest::Manifest;
    use crate::sim::script::{ChunkReply, FakeEvent, FakeScript};
    use crate::wire::{ContentId, ErrorCode, FileInfo, Message, Sha256};
    const MIB: usize = 1 << 20;
    let content = crate::sim::tests::pseudo_random(2 * MIB + 1000, 21);
    let chunk_hashes: Vec<Sha256> = content.chunks(MIB).map(Sha256::of).collect();
    let m = Manifest {
        sha256: Sha256::of(&content),
        size: content.len() as u64,
        chunk_size: MIB as u32,
        chunk_hashes,
    };
    let id = ContentId::of(&m);
    let mut script = FakeScript::default();
    script.files.push(FileInfo {
        name: "f.bin".into(),
        size: m.size,
        id,
        sha256: m.sha256,
        partial: false,
    });
    let manifest = Message::Manifest {
        req: 0,
        id,
        size: m.size,
        chunk_size: m.chunk_size,
        chunk_hashes: m.hashes_to_wire(),
    };
    script.manifests.insert(id, manifest);
    let served = content.clone();
    script.chunks = Box::new(move |_, _, index| {
        let start = index as usize * MIB;
        if start >= served.len() {
            return ChunkReply::Refuse(ErrorCode::BadChunkIndex);
        }
        ChunkReply::Data(served[start..(start + MIB).min(served.len())].to_vec())
    });
    let mut sim = Sim::new();
    sim.add_tracker(TrackerConfig::default());
    let (_, fake) = sim.add_fake_peer("Carol", script);
    let bob = sim.add_peer(PeerSpec::new("Bob").batch("wait-peer Carol 10\nget Carol f.bin\n"));
    let code = sim.run_to_exit(bob, Duration::from_secs(60));
    assert_eq!(code, 0, "{}", sim.diagnostics(bob));
    saved_intact_from_a_source_never_blamed(&sim, bob, &content);
    let asked = (fake.events().iter())
        .filter(|e| matches!(e, FakeEvent::Request(_, k) if k == "GetChunk"))
        .count();
    // The flight asked more than the file's 3 chunks (those past the end were refused).
    assert!(asked > 3, "only {asked} chunk requests: no first flight?");
}

/// A seeder that refuses chunk requests that come before the manifest was asked on that
/// connection (here: refuses the first flight, with `Error{UnexpectedMessage}`) is not blamed
/// for it: the chunks are asked again the usual way and the download ends byte-identical.
#[test]
fn a_seeder_that_refuses_the_first_flight_is_asked_again_not_dropped() {
    use crate::sim::script::{ChunkReply, FakeScript};
    use crate::wire::ErrorCode;
    let content = crate::sim::tests::pseudo_random(5 * 262_144 + 17, 22);
    let flight = crate::peer::first_flight::first_flight_len(content.len() as u64);
    let mut script = FakeScript::default();
    script.share("f.bin", &content);
    let mut honest = FakeScript::honest(content.clone());
    let mut seen = 0u64;
    script.chunks = Box::new(move |n, id, index| {
        seen += 1;
        if seen <= flight {
            return ChunkReply::Refuse(ErrorCode::UnexpectedMessage);
        }
        honest(n, id, index)
    });
    let mut sim = Sim::new();
    sim.add_tracker(TrackerConfig::default());
    sim.add_fake_peer("Carol", script);
    let bob = sim.add_peer(PeerSpec::new("Bob").batch("wait-peer Carol 10\nget Carol f.bin\n"));
    let code = sim.run_to_exit(bob, Duration::from_secs(60));
    assert_eq!(code, 0, "{}", sim.diagnostics(bob));
    saved_intact_from_a_source_never_blamed(&sim, bob, &content);
}

/// A seeder that answers two chunks of the first flight and then hangs up: what it sent is
/// kept, the download loses its source and, with `--retry-for 1s`, pauses (exit status 5)
/// with a partial file to resume. (Over real TCP: `tests/ux_exit.rs`.)
#[test]
fn a_seeder_lost_during_the_first_flight_leaves_a_resumable_download() {
    use crate::sim::script::{ChunkReply, FakeScript};
    let content = crate::sim::tests::pseudo_random(8 * 262_144, 23);
    let mut script = FakeScript::default();
    script.share("data.bin", &content);
    let mut honest = FakeScript::honest(content.clone());
    let mut seen = 0u64;
    script.chunks = Box::new(move |n, id, index| {
        seen += 1;
        if seen <= 2 {
            return honest(n, id, index);
        }
        ChunkReply::Nothing
    });
    let mut sim = Sim::new();
    sim.add_tracker(TrackerConfig::default());
    let (stally, _) = sim.add_fake_peer("Stally", script);
    let spec = PeerSpec::new("Bob")
        .retry_for(Duration::from_secs(1))
        .batch("wait-peer Stally 10\nget Stally data.bin\n");
    let bob = sim.add_peer(spec);
    sim.run_for(Duration::from_millis(500));
    sim.kill(stally);
    let code = sim.run_to_exit(bob, Duration::from_secs(60));
    assert_eq!(code, 5, "{}", sim.diagnostics(bob));
}
