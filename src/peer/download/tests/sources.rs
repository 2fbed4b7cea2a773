//! Sources: bans, stalls, the end game, changed manifests, partial seeders, windows.

use super::*;
use crate::peer::download::chunk::ChunkFault;
use crate::peer::download::machine::SourceState;
use crate::peer::download::scheduler::ChunkState;
use crate::peer::download::*;
use crate::wire::Sha256;

/// A bad chunk is fetched again (here from the same source, once it has room) and counts
/// towards its source's ban: at the third the source is dropped, its chunks go to the
/// other source, which is not blamed. (Before: tests/swarm.rs, hardening_peers.rs.)
#[test]
fn a_bad_chunk_is_asked_again_and_its_source_banned_at_the_third() {
    let mut rig = Rig::started(12, &["A", "B"]);
    assert_eq!(asked(&rig.join("A", conn(1)), conn(1)), vec![0, 1, 2, 3]);
    assert_eq!(asked(&rig.join("B", conn(2)), conn(2)), vec![4, 5, 6, 7]);

    let outs = rig.bad("A", 0);
    assert!(
        matches!(reports(&outs)[..], [Report::BadChunk { peer, fault: ChunkFault::HashMismatch, index }]
            if peer == "A" && index.get() == 0),
        "{outs:?}"
    );
    assert_eq!(rig.state(0), ChunkState::Missing);
    assert!(rig.store.chunks.is_empty(), "a bad chunk is never written");
    // A good chunk makes room for two: the bad one is asked again first.
    assert_eq!(asked(&rig.good("A", 1), conn(1)), vec![0, 8]);
    assert!(
        reports(&rig.bad("A", 0)).len() == 1,
        "second bad chunk: a warning only"
    );
    assert_eq!(asked(&rig.good("A", 2), conn(1)), vec![0, 9]);

    let outs = rig.bad("A", 0);
    assert!(
        matches!(reports(&outs)[..], [Report::SourceDropped { peer, reason: DropReason::Banned { bad: 3, .. } }]
            if peer == "A"),
        "{outs:?}"
    );
    assert!(
        closed(&outs).is_empty(),
        "a hash mismatch keeps the connection"
    );
    assert_eq!(rig.dl.sources[0].state, SourceState::Dropped);
    // A's late answers are dropped; its chunks (0, 3, 8, 9) go to B as it makes room.
    assert!(rig.good("A", 3).is_empty());
    rig.good("B", 4);
    assert_eq!(asked(&rig.good("B", 5), conn(2)), vec![0, 3]);
    assert_eq!(rig.dl.sources[1].bad_chunks, 0);
    rig.dl.sched.check();
}

/// A chunk of the wrong length bans its source at once and closes its connection.
#[test]
fn a_chunk_of_the_wrong_length_bans_its_source_at_once() {
    let mut rig = Rig::started(4, &["A", "B"]);
    rig.join("A", conn(1));
    let outs = rig.send("A", 0, vec![0; 10]);
    assert!(
        matches!(
            reports(&outs)[..],
            [Report::SourceDropped {
                reason: DropReason::Banned {
                    fault: ChunkFault::WrongLength { got: 10, .. },
                    bad: 1,
                    ..
                },
                ..
            }]
        ),
        "{outs:?}"
    );
    assert_eq!(closed(&outs), vec![conn(1)]);
    assert!(end(&outs).is_none(), "B is still to be reached");
}

/// A source that comes back with another manifest is dropped, never mixed in; the other
/// source goes on. With no other source, the download pauses. (Before: tests/resume.rs.)
/// A source whose manifest does not make the download's content id (here: one chunk hash
/// changed, after a reconnect) lies about the file: it is banned and its connection closed
/// before any chunk is asked of it, and the others go on. (Before content ids it was dropped
/// as "content changed", unblamed.)
#[test]
fn a_reconnected_source_whose_manifest_does_not_make_the_id_is_banned() {
    let mut rig = Rig::started(8, &["A", "B"]);
    rig.join("A", conn(1));
    rig.join("B", conn(2));
    rig.good("A", 0);
    let a = rig.src("A");
    rig.dl.handle_source_lost(a, "gone", rig.now);
    rig.drain();
    let outs = rig.tick(300);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Reach { refresh: true }))
    );
    rig.dl
        .handle_reached(a, Reached::Connected(conn(3)), rig.now);
    rig.drain();
    let mut other = rig.m.clone();
    other.chunk_hashes[5] = Sha256::of(b"changed");
    rig.dl
        .handle_manifest(a, ManifestAnswer::Sent(Ok(other)), rig.now);
    let outs = rig.drain();
    assert!(
        matches!(&reports(&outs)[..], [Report::SourceDropped { peer, reason: DropReason::ForgedManifest(why) }]
            if peer == "A" && why.contains("cid1:")),
        "{outs:?}"
    );
    assert!(asked(&outs, conn(3)).is_empty(), "{outs:?}");
    assert_eq!(closed(&outs), vec![conn(3)]);
    assert_eq!(rig.dl.source_on(conn(3)), None);
    assert!(!rig.good("B", 4).is_empty(), "B goes on");
    // Banned: it is not reached again.
    rig.tick(10_000);
    assert!(rig.dl.reaching().iter().all(|(s, ..)| *s != a));

    // Alone, a source that no longer serves the content leaves nothing: paused, not failed.
    let mut rig = Rig::started(2, &["A"]);
    let a = rig.src("A");
    rig.dl
        .handle_reached(a, Reached::Connected(conn(1)), rig.now);
    rig.drain();
    rig.dl.handle_manifest(a, ManifestAnswer::Refused, rig.now);
    let outs = rig.drain();
    assert!(
        matches!(
            end(&outs),
            Some(End::Paused(Pause::NoSourceLeft {
                corrupt: false,
                reason: DropReason::ContentChanged,
                ..
            }))
        ),
        "{outs:?}"
    );
}

/// The end game: when nothing is missing, a second source is asked for the chunks the first
/// still fetches; the first answer wins and the late one is dropped, never written twice.
/// (Before: tests/swarm.rs.)
#[test]
fn end_game_asks_a_second_source_for_the_last_chunks() {
    let mut rig = Rig::started(4, &["A", "B"]);
    assert_eq!(asked(&rig.join("A", conn(1)), conn(1)), vec![0, 1, 2, 3]);
    assert_eq!(asked(&rig.join("B", conn(2)), conn(2)), vec![0, 1, 2, 3]);
    rig.good("B", 3);
    assert_eq!(rig.state(3), ChunkState::Done);
    assert!(rig.good("A", 3).is_empty(), "the late duplicate is dropped");
    for i in 0..3 {
        rig.good("A", i);
    }
    let outs = rig.good("B", 0);
    assert!(outs.is_empty(), "{outs:?}");
    let done = rig.store.published.as_ref().expect("published");
    assert_eq!(done, &rig.data);
    rig.dl.sched.check();
}

/// A source that leaves a request unanswered for 15 s is closed and its requests go to the
/// others. (Before: tests/hardening_peers.rs with a silent peer and a real 15 s wait.)
#[test]
fn a_stalled_sources_requests_go_to_the_others() {
    let mut rig = Rig::started(12, &["A", "B"]);
    assert_eq!(asked(&rig.join("A", conn(1)), conn(1)), vec![0, 1, 2, 3]);
    assert_eq!(asked(&rig.join("B", conn(2)), conn(2)), vec![4, 5, 6, 7]);
    rig.at(10_000);
    let mut more = Vec::new();
    for i in 4..8 {
        more.extend(asked(&rig.good("B", i), conn(2)));
    }
    assert_eq!(more, vec![8, 9, 10, 11]);
    assert!(closed(&rig.tick(14_999)).is_empty());
    let outs = rig.tick(15_000);
    assert_eq!(closed(&outs), vec![conn(1)]);
    assert!(
        matches!(reports(&outs)[..], [Report::SourceLost { peer, reason, others: 1, .. }]
            if peer == "A" && reason == "no answer for 15s"),
        "{outs:?}"
    );
    assert_eq!(
        rig.state(0),
        ChunkState::Missing,
        "A's requests are given back"
    );
    assert!(
        rig.good("A", 0).is_empty(),
        "A's answer after the stall is dropped"
    );
    // B, not stalled (its requests are 5 s old), takes A's chunks as it makes room.
    rig.good("B", 8);
    assert_eq!(asked(&rig.good("B", 9), conn(2)), vec![0, 1]);
    rig.dl.sched.check();
}

/// A partial seeder that answers "not here yet" is not dropped: that chunk is not asked of
/// it again until its next chunk map, which is asked for every second.
#[test]
fn a_partial_seeder_without_a_chunk_yet_is_kept_and_asked_again() {
    let mut rig = Rig::started(4, &["A"]);
    let outs = rig.join_with("A", conn(1), HaveAnswer::Map(vec![0b0000_0011]), 0);
    assert_eq!(asked(&outs, conn(1)), vec![0, 1]);
    let a = rig.src("A");
    let answer = ChunkAnswer::Refused {
        unavailable: true,
        message: "chunk 1 is not here yet".into(),
    };
    rig.dl.handle_chunk(a, rig.ix(1), answer, rig.now);
    let outs = rig.drain();
    assert!(outs.is_empty(), "{outs:?}");
    assert!(matches!(
        rig.dl.sources[0].state,
        SourceState::Active { .. }
    ));
    assert_eq!(rig.state(1), ChunkState::Missing);
    let outs = rig.tick(1_000);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Ask { ask: Ask::Have, .. })),
        "{outs:?}"
    );
    // A full seeder saying the same has lost the file: dropped.
    let mut rig = Rig::started(2, &["A"]);
    rig.join("A", conn(1));
    let a = rig.src("A");
    let answer = ChunkAnswer::Refused {
        unavailable: true,
        message: "gone".into(),
    };
    rig.dl.handle_chunk(a, rig.ix(0), answer, rig.now);
    assert!(matches!(
        end(&rig.drain()),
        Some(End::Paused(Pause::NoSourceLeft { .. }))
    ));
}

/// Broken frames count towards the same ban as bad chunks; the connection is on its way out
/// already and is not closed again.
#[test]
fn broken_frames_count_towards_the_ban() {
    let mut rig = Rig::started(8, &["A", "B"]);
    rig.join("A", conn(1));
    rig.bad("A", 0);
    let a = rig.src("A");
    rig.dl.handle_broken_frame(a, "frame too long", rig.now);
    assert!(rig.drain().is_empty(), "two strikes");
    rig.dl.handle_broken_frame(a, "frame too long", rig.now);
    let outs = rig.drain();
    assert!(
        matches!(
            reports(&outs)[..],
            [Report::SourceDropped {
                reason: DropReason::BrokenFrames { bad: 3, .. },
                ..
            }]
        ),
        "{outs:?}"
    );
    assert!(closed(&outs).is_empty());
}

/// A source's request window is sized from the round trip of its `GetHave`: 4 chunks next
/// door, 32 MiB of them 20 ms away.
#[test]
fn a_joining_sources_window_follows_its_round_trip() {
    let mut rig = Rig::started(200, &["A", "B"]);
    let outs = rig.join_with("A", conn(1), HaveAnswer::All, 0);
    assert_eq!(asked(&outs, conn(1)), vec![0, 1, 2, 3]);
    assert_eq!(rig.dl.sched.window(rig.src("A")), 4);
    let outs = rig.join_with("B", conn(2), HaveAnswer::All, 20);
    assert_eq!(rig.dl.sched.window(rig.src("B")), 128);
    assert_eq!(asked(&outs, conn(2)), (4..132).collect::<Vec<_>>());
}

/// The lying seeder of issue 13, at the machine: its manifest (chunk hashes of other bytes) is
/// refused before any chunk is asked of it, and an honest source that is reached only later
/// is still used and delivers the whole file. A matching manifest with another SHA-256 label
/// is the same content and is accepted: the label cannot get an honest source refused.
#[test]
fn a_forged_manifest_is_refused_before_any_chunk_and_an_honest_source_joins_later() {
    let mut rig = Rig::started(3, &["Liar", "Honest"]);
    let liar = rig.src("Liar");
    rig.dl
        .handle_reached(liar, Reached::Connected(conn(1)), rig.now);
    rig.drain();
    let mut forged = rig.m.clone();
    for h in &mut forged.chunk_hashes {
        *h = Sha256::of(&h.0);
    }
    rig.dl
        .handle_manifest(liar, ManifestAnswer::Sent(Ok(forged)), rig.now);
    let outs = rig.drain();
    assert!(asked(&outs, conn(1)).is_empty(), "{outs:?}");
    assert_eq!(closed(&outs), vec![conn(1)]);
    // The liar is reported, as a forger.
    assert!(
        reports(&outs).iter().any(|r| matches!(
            r,
            Report::SourceDropped {
                reason: DropReason::ForgedManifest(_),
                ..
            }
        )),
        "{outs:?}"
    );

    // Much later, the honest source is reached; its manifest carries another SHA-256 label.
    rig.tick(5_000);
    let mut relabelled = rig.m.clone();
    relabelled.sha256 = Sha256::of(b"a label the id does not cover");
    let honest = rig.src("Honest");
    rig.dl
        .handle_reached(honest, Reached::Connected(conn(2)), rig.now);
    rig.drain();
    rig.dl
        .handle_manifest(honest, ManifestAnswer::Sent(Ok(relabelled)), rig.now);
    let outs = rig.drain();
    assert!(
        matches!(&outs[..], [Output::Ask { conn: c, ask: Ask::Have }] if *c == conn(2)),
        "{outs:?}"
    );
    rig.dl.handle_have(honest, HaveAnswer::All, rig.now);
    let outs = rig.drain();
    assert!(
        !asked(&outs, conn(2)).is_empty(),
        "the honest source is asked for chunks"
    );
    for i in 0..3 {
        rig.good("Honest", i);
    }
    assert_eq!(
        rig.store.contents(),
        rig.data,
        "every byte from the honest source"
    );
}

/// A `get`'s first flight (chunks asked right behind its `GetManifest`, before the download
/// existed) counts as in flight at the source once it is reached over that connection: those
/// chunks are not asked again, their answers are taken, and a first-flight chunk the partial
/// file already holds is not waited for (its answer is dropped).
#[test]
fn a_first_flight_counts_as_in_flight_and_is_not_asked_again() {
    let mut rig = Rig::new(40, &["A"], None);
    let s = rig.src("A");
    let flight: Vec<ChunkIndex> = (0..4).map(|i| rig.ix(i)).collect();
    rig.dl
        .handle_confirmed(s, conn(1), Duration::from_millis(50), flight, rig.now);
    // The partial file already holds chunk 2.
    let two = rig.ix(2);
    rig.store.chunks.insert(2 * CHUNK as u64, rig.bytes(2));
    rig.store.adopt(&[two]).unwrap();
    rig.dl.handle_checked(&[two], rig.now);
    rig.drain();
    rig.dl
        .handle_reached(s, Reached::Connected(conn(1)), rig.now);
    let outs = rig.drain();
    let asked_now = asked(&outs, conn(1));
    assert!(
        !asked_now.iter().any(|i| *i < 4),
        "first-flight chunks asked again: {asked_now:?}"
    );
    assert_eq!(asked_now.first(), Some(&4), "{outs:?}");
    for i in [0, 1, 3] {
        assert_eq!(
            rig.state(i),
            ChunkState::Requested { askers: 1 },
            "chunk {i}"
        );
    }
    assert_eq!(rig.state(2), ChunkState::Done);
    rig.good("A", 0);
    assert_eq!(rig.state(0), ChunkState::Done);
    // An answer for the chunk that was already here is dropped, not taken twice.
    let before = rig.dl.bytes_done();
    rig.good("A", 2);
    assert_eq!(rig.dl.bytes_done(), before);
}
