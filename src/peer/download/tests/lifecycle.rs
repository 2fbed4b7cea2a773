//! A download's life: losing every source, pauses, failed checkpoints and writes, resuming,
//! and the end.

use super::*;
use crate::peer::download::scheduler::ChunkState;
use crate::peer::download::*;
use crate::wire::Sha256;

/// A chunk whose check comes back after its source was lost (the check runs on another
/// thread) is kept, but does not stop the `--retry-for` clock: nobody is delivering. Before,
/// writing it cleared the clock and a download whose only source had gone waited forever
/// (`tests/ux_exit.rs`, under load, once the first flight made such late checks common).
#[test]
fn a_chunk_checked_after_its_source_went_does_not_stop_the_retry_clock() {
    let mut rig = Rig::started(4, &["A"]);
    rig.join("A", conn(1));
    rig.at(100);
    let data = rig.bytes(0);
    let a = rig.src("A");
    let answer = ChunkAnswer::Data { index: 0, data };
    rig.dl.handle_chunk(a, rig.ix(0), answer, rig.now);
    let outs = rig.drain_but_checks();
    let Some(Output::Check { data, .. }) =
        outs.into_iter().find(|o| matches!(o, Output::Check { .. }))
    else {
        panic!("chunk 0 was not sent to be checked");
    };
    rig.at(200);
    rig.dl.handle_source_lost(a, "connection reset", rig.now);
    rig.drain();
    rig.at(300);
    rig.dl
        .handle_chunk_checked(a, rig.ix(0), data, Ok(()), rig.now);
    rig.drain();
    assert_eq!(rig.state(0), ChunkState::Done, "the late chunk is kept");
    // Every retry fails: it pauses `retry_for` after the loss, not never.
    let pause_at = 200 + RETRY_FOR.as_millis() as u64;
    loop {
        let next = rig.dl.poll_timeout().expect("a timer runs while it waits");
        let ms = next.duration_since(rig.t0).as_millis() as u64;
        assert!(
            ms <= pause_at,
            "not paused at {pause_at} ms: the clock was reset"
        );
        let outs = rig.tick(ms);
        if end(&outs).is_some() {
            break;
        }
        for (s, _, _) in rig.dl.reaching() {
            rig.dl.handle_reached(s, Reached::Failed, rig.now);
        }
        rig.drain();
    }
    assert!(rig.dl.is_paused());
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
    let mut last = 0;
    let ended = loop {
        let next = rig.dl.poll_timeout().expect("a timer runs while it waits");
        let ms = next.duration_since(rig.t0).as_millis() as u64;
        assert!(ms <= 10_200 && ms > last, "still not paused at {ms} ms");
        last = ms;
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
    let Some(Output::Check {
        source,
        index,
        data,
        expected,
    }) = rig.dl.poll_output()
    else {
        panic!("the chunk is checked first");
    };
    assert!(
        rig.dl.poll_output().is_none(),
        "nothing else before its check"
    );
    let checked = check_hash(&expected, &data);
    rig.dl
        .handle_chunk_checked(source, index, data, checked, rig.now);
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
            Output::Publish { id, sha256, size } => Some((*id, *sha256, *size)),
            _ => None,
        })
        .collect();
    // Asked for by content id, not by SHA-256: the id is the proof, no whole-file hash.
    let id = crate::peer::content_id::ContentId::of(&rig.m);
    assert_eq!(publish, vec![(id, None, rig.data.len() as u64)]);
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

/// Asked for by SHA-256 (a search by it): chunks that each match the manifest but a whole
/// file that does not have the SHA-256 it was listed with: nothing is saved.
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
    )
    .checking_sha256(true);
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

/// The recent rates (what `downloads` compares with the rate limits): all sources together and
/// the fastest one, over the last second of verified bytes; nothing for a second, nothing.
#[test]
fn recent_rates_follow_the_verified_bytes_of_the_last_second() {
    let mut rig = Rig::started(8, &["A", "B"]);
    let to_a = asked(&rig.join("A", conn(1)), conn(1));
    let to_b = asked(&rig.join("B", conn(2)), conn(2));
    let sent = [
        ("A", to_a[0]),
        ("A", to_a[1]),
        ("A", to_a[2]),
        ("B", to_b[0]),
    ];
    for (i, (who, chunk)) in sent.into_iter().enumerate() {
        rig.at(200 * i as u64 + 100);
        rig.good(who, chunk);
    }
    rig.at(1_000);
    let (all, fastest) = rig.dl.recent_rates(rig.now);
    let chunk = CHUNK as f64;
    assert!((all - 4.0 * chunk).abs() < 1.0, "{all}");
    assert!((fastest - 3.0 * chunk).abs() < 1.0, "{fastest}");
    rig.at(2_500);
    assert_eq!(rig.dl.recent_rates(rig.now), (0.0, 0.0));
}

/// A checkpoint the store answers later (the node runs its fsync on another thread): no second
/// one goes out meanwhile, what is written meanwhile waits for the next, and the file is not
/// published while one is out.
#[test]
fn a_checkpoint_answered_later_is_one_at_a_time_and_publishing_waits_for_it() {
    let mut rig = Rig::started(2, &["A"]);
    let asked = asked(&rig.join("A", conn(1)), conn(1));
    assert_eq!(asked, vec![0, 1]);
    // Outputs drained by hand: disk writes carried out, checkpoints held back.
    let mut held: Vec<Vec<ChunkIndex>> = Vec::new();
    let mut publishes = 0;
    let pump = |rig: &mut Rig, held: &mut Vec<Vec<ChunkIndex>>, publishes: &mut usize| {
        while let Some(out) = rig.dl.poll_output() {
            match out {
                Output::Checkpoint { durable, .. } => held.push(durable),
                Output::Publish { .. } => *publishes += 1,
                other => {
                    let _ = run_disk_output(&mut rig.dl, &mut rig.store, other, rig.now);
                }
            }
        }
    };
    let data = rig.bytes(0);
    let (s, c0) = (rig.src("A"), rig.ix(0));
    rig.dl
        .handle_chunk(s, c0, ChunkAnswer::Data { index: 0, data }, rig.now);
    pump(&mut rig, &mut held, &mut publishes);
    rig.at(1_100);
    rig.dl.handle_timeout(rig.now);
    pump(&mut rig, &mut held, &mut publishes);
    assert_eq!(held.len(), 1, "the timer's checkpoint");
    // The last chunk arrives while it is out: every chunk is written, nothing published.
    let data = rig.bytes(1);
    let c1 = rig.ix(1);
    rig.dl
        .handle_chunk(s, c1, ChunkAnswer::Data { index: 1, data }, rig.now);
    rig.at(2_300);
    rig.dl.handle_timeout(rig.now);
    pump(&mut rig, &mut held, &mut publishes);
    assert_eq!(held.len(), 1, "no second checkpoint while one is out");
    assert_eq!(publishes, 0, "not published while a checkpoint is out");
    // It comes back: published.
    rig.dl.handle_checkpointed(Ok(()), rig.now);
    pump(&mut rig, &mut held, &mut publishes);
    assert_eq!(publishes, 1);
}
