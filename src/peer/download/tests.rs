//! The download machine through its own API: fake time, fake connection ids, an in-memory
//! store. Each test covers a rule that only the process tests (tests/swarm.rs, resume.rs,
//! failures.rs, faults.rs) covered before.

use super::chunk::ChunkFault;
use super::machine::SourceState;
use super::scheduler::ChunkState;
use super::store::MemStore;
use super::*;
use crate::peer::manifest::{Manifest, manifest_of_reader};
use crate::reactor::ConnId;
use crate::wire::Sha256;
use std::time::{Duration, Instant};

const CHUNK: usize = 256 * 1024;
const RETRY_FOR: Duration = Duration::from_secs(10);

/// A file of `chunks` chunks, the last one short.
fn file(chunks: usize) -> Vec<u8> {
    (0..chunks * CHUNK - 100)
        .map(|i| ((i % 251) ^ (i / CHUNK)) as u8)
        .collect()
}

struct Rig {
    dl: Download,
    store: MemStore,
    data: Vec<u8>,
    m: Manifest,
    t0: Instant,
    now: Instant,
}

impl Rig {
    /// A download of a `chunks`-chunk file from `sources`, its partial file not checked yet.
    fn new(chunks: usize, sources: &[&str], recorded: Option<u64>) -> Rig {
        let data = file(chunks);
        let m = manifest_of_reader(data.as_slice(), data.len() as u64).unwrap();
        assert_eq!(m.chunk_size as usize, CHUNK);
        let names: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let t0 = Instant::now();
        let dl = Download::new(
            DownloadId(1),
            "f.bin",
            &names,
            m.clone(),
            recorded,
            RETRY_FOR,
            t0,
        );
        Rig {
            dl,
            store: MemStore::default(),
            data,
            m,
            t0,
            now: t0,
        }
    }

    /// [`Rig::new`], checked: nothing here yet.
    fn started(chunks: usize, sources: &[&str]) -> Rig {
        let mut rig = Rig::new(chunks, sources, None);
        rig.dl.handle_checked(&[], rig.now);
        let outs = rig.drain();
        assert!(
            matches!(outs[..], [Output::Reach { refresh: false }]),
            "{outs:?}"
        );
        rig
    }

    fn at(&mut self, ms: u64) {
        self.now = self.t0 + Duration::from_millis(ms);
    }

    /// Every output, the disk ones carried out on the store at once (and left out).
    fn drain(&mut self) -> Vec<Output> {
        let mut outs = Vec::new();
        while let Some(out) = self.dl.poll_output() {
            if let Some(out) = run_disk_output(&mut self.dl, &mut self.store, out, self.now) {
                outs.push(out);
            }
        }
        outs
    }

    fn ix(&self, i: u64) -> ChunkIndex {
        self.dl.chunk_index(i).unwrap()
    }

    fn src(&self, name: &str) -> SourceId {
        self.dl.source_named(name).unwrap()
    }

    fn bytes(&self, i: u64) -> Vec<u8> {
        let off = i as usize * CHUNK;
        self.data[off..(off + CHUNK).min(self.data.len())].to_vec()
    }

    /// Source `name` is reached on `conn`, confirms the manifest and says what it has (its
    /// `GetHave` answered `rtt_ms` after it was asked).
    fn join_with(
        &mut self,
        name: &str,
        conn: ConnId,
        have: HaveAnswer,
        rtt_ms: u64,
    ) -> Vec<Output> {
        let s = self.src(name);
        self.dl
            .handle_reached(s, Reached::Connected(conn), self.now);
        let outs = self.drain();
        assert!(
            matches!(&outs[..], [Output::Ask { conn: c, ask: Ask::Manifest }] if *c == conn),
            "{outs:?}"
        );
        self.dl.handle_manifest(s, Some(self.m.clone()), self.now);
        let outs = self.drain();
        assert!(
            matches!(&outs[..], [Output::Ask { ask: Ask::Have, .. }]),
            "{outs:?}"
        );
        let asked = self.now;
        self.now += Duration::from_millis(rtt_ms);
        self.dl.handle_have(s, have, self.now);
        self.now = asked;
        self.drain()
    }

    fn join(&mut self, name: &str, conn: ConnId) -> Vec<Output> {
        self.join_with(name, conn, HaveAnswer::All, 0)
    }

    fn send(&mut self, name: &str, i: u64, data: Vec<u8>) -> Vec<Output> {
        let s = self.src(name);
        let answer = ChunkAnswer::Data { index: i, data };
        self.dl.handle_chunk(s, self.ix(i), answer, self.now);
        self.drain()
    }

    fn good(&mut self, name: &str, i: u64) -> Vec<Output> {
        let data = self.bytes(i);
        self.send(name, i, data)
    }

    fn bad(&mut self, name: &str, i: u64) -> Vec<Output> {
        let mut data = self.bytes(i);
        data[7] ^= 1;
        self.send(name, i, data)
    }

    fn tick(&mut self, ms: u64) -> Vec<Output> {
        self.at(ms);
        self.dl.handle_timeout(self.now);
        self.drain()
    }

    fn state(&self, i: u64) -> ChunkState {
        self.dl.sched.state(self.ix(i))
    }
}

fn conn(n: usize) -> ConnId {
    ConnId::fake(n)
}

/// The chunks asked over `c` in `outs`.
fn asked(outs: &[Output], c: ConnId) -> Vec<u64> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Ask {
                conn,
                ask: Ask::Chunks(chunks),
            } if *conn == c => Some(chunks.iter().map(|c| c.get())),
            _ => None,
        })
        .flatten()
        .collect()
}

fn reports(outs: &[Output]) -> Vec<&Report> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Report(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn end(outs: &[Output]) -> Option<&End> {
    outs.iter().find_map(|o| match o {
        Output::End(e) => Some(e),
        _ => None,
    })
}

fn closed(outs: &[Output]) -> Vec<ConnId> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Close(c) => Some(*c),
            _ => None,
        })
        .collect()
}

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

/// A source whose connection is gone is looked for again with backoff; with none back
/// within `retry_for` the download pauses, what it had made durable first. (Before:
/// tests/resume.rs, failures.rs, with real 10 s waits.)
#[test]
fn a_lost_source_pauses_the_download_after_retry_for() {
    let mut rig = Rig::started(4, &["A"]);
    rig.join("A", conn(1));
    rig.at(100);
    rig.good("A", 0);
    rig.at(200);
    let a = rig.src("A");
    rig.dl.handle_source_lost(a, "connection reset", rig.now);
    let outs = rig.drain();
    assert!(
        matches!(reports(&outs)[..], [Report::SourceLost { peer, reason, others: 0, .. }, Report::NoSourceActive]
            if peer == "A" && reason == "connection reset"),
        "{outs:?}"
    );
    assert!(
        rig.store.durable.contains(&rig.ix(0)),
        "checkpointed when the source went"
    );
    assert_eq!(
        rig.state(1),
        ChunkState::Missing,
        "its requests are given back"
    );

    // Every retry fails: the backoff doubles, and at 200 ms + retry_for it pauses.
    let mut retries = Vec::new();
    let ended = loop {
        let next = rig.dl.poll_timeout().expect("a timer runs while it waits");
        let ms = next.duration_since(rig.t0).as_millis() as u64;
        assert!(ms <= 10_200, "still not paused at {ms} ms");
        let outs = rig.tick(ms);
        if let Some(end) = end(&outs) {
            break (ms, format!("{end:?}"));
        }
        if outs
            .iter()
            .any(|o| matches!(o, Output::Reach { refresh: true }))
        {
            retries.push(ms);
            for (s, _, refreshed) in rig.dl.reaching() {
                assert!(refreshed, "a retry asks the tracker anew");
                rig.dl.handle_reached(s, Reached::Failed, rig.now);
            }
        }
    };
    assert_eq!(ended.0, 10_200);
    assert!(ended.1.contains("NoSourceBack"), "{}", ended.1);
    assert_eq!(
        &retries[..4],
        &[500, 1100, 2300, 4700],
        "300 ms backoff, doubling"
    );
    assert!(rig.dl.is_paused());
    assert_eq!(
        rig.dl.poll_timeout(),
        None,
        "a paused download waits for nothing"
    );
}

/// A source that comes back with another manifest is dropped, never mixed in; the other
/// source goes on. With no other source, the download pauses. (Before: tests/resume.rs.)
#[test]
fn a_reconnected_source_whose_manifest_differs_is_dropped() {
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
    rig.dl.handle_manifest(a, Some(other), rig.now);
    let outs = rig.drain();
    assert!(
        matches!(reports(&outs)[..], [Report::SourceDropped { peer, reason: DropReason::ContentChanged }]
            if peer == "A"),
        "{outs:?}"
    );
    assert!(asked(&outs, conn(3)).is_empty() && closed(&outs).is_empty());
    assert_eq!(rig.dl.source_on(conn(3)), None);
    assert!(!rig.good("B", 4).is_empty(), "B goes on");

    // Alone, a source with another manifest (or none) leaves nothing: paused, not failed.
    let mut rig = Rig::started(2, &["A"]);
    let a = rig.src("A");
    rig.dl
        .handle_reached(a, Reached::Connected(conn(1)), rig.now);
    rig.drain();
    rig.dl.handle_manifest(a, None, rig.now);
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

/// A checkpoint that fails suspends the download: what was queued behind it is not sent,
/// nothing more is taken, nothing is published; a pause whose checkpoint fails is a
/// suspension too. (Before: tests/faults.rs with an injected fsync error.)
#[test]
fn a_failed_checkpoint_suspends_and_never_publishes() {
    let mut rig = Rig::started(3, &["A"]);
    rig.join("A", conn(1));
    rig.good("A", 0);
    rig.good("A", 1);
    rig.store.fail_checkpoint = true;
    let outs = rig.tick(1_000);
    assert!(
        matches!(&outs[..], [Output::End(End::Suspended { error })] if error.contains("fsync")),
        "{outs:?}"
    );
    assert!(
        rig.good("A", 2).is_empty(),
        "a suspended download takes nothing"
    );
    assert!(rig.store.published.is_none() && rig.store.durable.is_empty());
    assert_eq!(rig.dl.poll_timeout(), None);

    let mut rig = Rig::started(3, &["A"]);
    rig.join("A", conn(1));
    rig.good("A", 0);
    rig.store.fail_checkpoint = true;
    rig.dl.handle_interrupt(rig.now);
    let outs = rig.drain();
    assert!(
        matches!(&outs[..], [Output::End(End::Suspended { .. })]),
        "{outs:?}"
    );
    assert!(!rig.dl.is_paused());
}

/// A resume takes as done only the chunks the check of the partial file verified, whatever
/// the record said, says how many of the recorded ones were lost, and fetches the rest.
/// Until the check answers nothing is asked of anyone. (Before: tests/resume.rs.)
#[test]
fn a_resume_adopts_only_the_chunks_the_check_verified() {
    let mut rig = Rig::new(4, &["A"], Some(3));
    rig.dl.handle_wake(rig.now);
    rig.drain();
    assert!(rig.dl.reaching().is_empty(), "nothing asked while checking");
    assert_eq!(
        rig.dl.poll_timeout(),
        None,
        "checking is not waiting for a source"
    );
    assert_eq!(rig.dl.status(), Status::Checking);

    let intact = [rig.ix(0), rig.ix(2)];
    for &c in &intact {
        let data = rig.bytes(c.get());
        rig.store.chunks.insert(rig.dl.chunk_span(c).0, data);
    }
    rig.store.adopt(&intact).unwrap();
    rig.dl.handle_checked(&intact, rig.now);
    let outs = rig.drain();
    let half = 100.0 * 2.0 * CHUNK as f64 / rig.data.len() as f64;
    assert!(
        matches!(reports(&outs)[..], [
            Report::Resuming { chunks_here: 2, percent },
            Report::RecordedChunksLost { recorded: 3, kept: 2 },
        ] if (*percent - half).abs() < 1e-9),
        "{outs:?}"
    );
    assert_eq!(rig.dl.bytes_done(), 2 * CHUNK as u64);
    assert_eq!(asked(&rig.join("A", conn(1)), conn(1)), vec![1, 3]);
    rig.good("A", 3);
    let outs = rig.good("A", 1);
    assert!(matches!(end(&outs), Some(End::Done(_))), "{outs:?}");
    assert_eq!(rig.store.published.as_ref(), Some(&rig.data));
}

/// Publishing waits for every chunk to be verified *and written*, asks for the manifest's
/// exact length, and happens once. A write that fails pauses the download instead.
/// (Before: tests/transfers.rs, faults.rs.)
#[test]
fn it_finishes_only_when_every_chunk_is_verified_and_written() {
    let mut rig = Rig::started(3, &["A"]);
    rig.join("A", conn(1));
    for i in [0, 2] {
        let outs = rig.good("A", i);
        assert!(
            !outs.iter().any(|o| matches!(o, Output::End(_))),
            "{outs:?}"
        );
    }
    assert!(rig.store.published.is_none());
    // The last chunk by hand: while its write is out, nothing is published.
    let a = rig.src("A");
    let answer = ChunkAnswer::Data {
        index: 1,
        data: rig.bytes(1),
    };
    rig.dl.handle_chunk(a, rig.ix(1), answer, rig.now);
    let Some(Output::Write {
        index,
        offset,
        data,
    }) = rig.dl.poll_output()
    else {
        panic!("the verified chunk is written first");
    };
    assert_eq!((index.get(), offset, data.len()), (1, CHUNK as u64, CHUNK));
    assert!(
        rig.dl.poll_output().is_none(),
        "nothing published before the write is done"
    );
    rig.store.write(index, offset, data).unwrap();
    rig.dl.handle_written(index, Ok(()), rig.now);
    let outs: Vec<Output> = std::iter::from_fn(|| rig.dl.poll_output()).collect();
    let publish: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Publish { sha256, size } => Some((*sha256, *size)),
            _ => None,
        })
        .collect();
    assert_eq!(publish, vec![(rig.m.sha256, rig.data.len() as u64)]);
    rig.dl.handle_published(Ok("/x/f.bin".into()));
    let Some(Output::End(End::Done(done))) = rig.dl.poll_output() else {
        panic!("done");
    };
    assert_eq!(
        done.per_source,
        vec![("A".to_string(), rig.data.len() as u64)]
    );
    assert_eq!(done.fetched, rig.data.len() as u64);

    // A write that fails: paused, the chunk missing again, nothing published.
    let mut rig = Rig::started(2, &["A"]);
    rig.join("A", conn(1));
    rig.good("A", 0);
    rig.store.fail_write = true;
    let outs = rig.good("A", 1);
    assert!(
        matches!(end(&outs), Some(End::Paused(Pause::WriteFailed { .. }))),
        "{outs:?}"
    );
    assert_eq!(rig.state(1), ChunkState::Missing);
    assert!(rig.store.published.is_none() && rig.dl.is_paused());
}

/// Chunks that each match the manifest but a whole file that does not: nothing is saved.
#[test]
fn a_whole_file_that_does_not_match_is_not_saved() {
    let mut rig = Rig::new(2, &["A"], None);
    rig.m.sha256 = Sha256::of(b"another file");
    rig.dl = Download::new(
        DownloadId(1),
        "f.bin",
        &["A".into()],
        rig.m.clone(),
        None,
        RETRY_FOR,
        rig.now,
    );
    rig.dl.handle_checked(&[], rig.now);
    rig.drain();
    rig.join("A", conn(1));
    rig.good("A", 0);
    let outs = rig.good("A", 1);
    assert!(matches!(end(&outs), Some(End::Mismatch(_))), "{outs:?}");
    assert!(rig.store.published.is_none());

    // An empty file is done as soon as it is checked.
    let empty = manifest_of_reader(&[][..], 0).unwrap();
    let mut dl = Download::new(
        DownloadId(2),
        "e",
        &["A".into()],
        empty,
        None,
        RETRY_FOR,
        rig.now,
    );
    dl.handle_checked(&[], rig.now);
    let outs: Vec<Output> = std::iter::from_fn(|| dl.poll_output()).collect();
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Publish { size: 0, .. })),
        "{outs:?}"
    );
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

/// A paused download resumed in this run looks for its sources anew, bans forgotten.
#[test]
fn a_paused_download_resumes_with_its_sources_anew() {
    let mut rig = Rig::started(4, &["A"]);
    rig.join("A", conn(1));
    rig.good("A", 0);
    rig.dl.handle_interrupt(rig.now);
    let outs = rig.drain();
    assert!(
        matches!(end(&outs), Some(End::Paused(Pause::Interrupted))),
        "{outs:?}"
    );
    assert!(
        rig.store.durable.contains(&rig.ix(0)),
        "checkpointed before the pause"
    );
    assert_eq!(rig.state(1), ChunkState::Missing);
    assert!(
        rig.good("A", 1).is_empty(),
        "answers while paused are dropped"
    );
    rig.dl.handle_resume(rig.now);
    assert!(matches!(
        rig.drain()[..],
        [Output::Reach { refresh: false }]
    ));
    assert_eq!(rig.dl.reaching().len(), 1);
    assert_eq!(asked(&rig.join("A", conn(2)), conn(2)), vec![1, 2, 3]);
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
