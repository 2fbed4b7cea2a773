//! A chunk's check answered later, as the node's checking threads do (`peer/chunk_check.rs`):
//! the chunk waits as `Checking`, asked of nobody; the download cannot finish before the
//! answer; and whatever happened meanwhile (its source lost, the download paused), the chunk
//! ends written or fetched again, never stuck.

use super::*;
use crate::peer::download::chunk::ChunkFault;
use crate::peer::download::scheduler::ChunkState;

/// Chunk `i` from `name`, its check left out: returns the check's fields and the other outputs.
fn send_unchecked(
    rig: &mut Rig,
    name: &str,
    i: u64,
    data: Vec<u8>,
) -> ((SourceId, ChunkIndex, Vec<u8>), Vec<Output>) {
    let s = rig.src(name);
    let answer = ChunkAnswer::Data { index: i, data };
    rig.dl.handle_chunk(s, rig.ix(i), answer, rig.now);
    let mut outs = rig.drain_but_checks();
    let at = outs
        .iter()
        .position(|o| matches!(o, Output::Check { .. }))
        .unwrap_or_else(|| panic!("no check asked for: {outs:?}"));
    let Output::Check {
        source,
        index,
        data,
        expected,
    } = outs.remove(at)
    else {
        unreachable!()
    };
    assert_eq!(Some(&expected), rig.m.chunk_hash(i), "the manifest's hash");
    ((source, index, data), outs)
}

fn answer(rig: &mut Rig, check: (SourceId, ChunkIndex, Vec<u8>), ok: bool) -> Vec<Output> {
    let (s, index, data) = check;
    let verdict = if ok {
        Ok(())
    } else {
        Err(ChunkFault::HashMismatch)
    };
    rig.dl
        .handle_chunk_checked(s, index, data, verdict, rig.now);
    rig.drain()
}

#[test]
fn a_chunk_out_for_its_check_is_asked_of_nobody_and_the_download_waits_for_it() {
    let mut rig = Rig::started(2, &["A"]);
    assert_eq!(asked(&rig.join("A", conn(1)), conn(1)), vec![0, 1]);
    let data = rig.bytes(0);
    let (check, outs) = send_unchecked(&mut rig, "A", 0, data);
    assert_eq!(check.0, rig.src("A"));
    assert_eq!(check.1.get(), 0);
    assert!(asked(&outs, conn(1)).is_empty(), "{outs:?}");
    assert_eq!(rig.state(0), ChunkState::Checking);
    assert!(
        rig.store.chunks.is_empty(),
        "nothing written before its check"
    );

    let outs = rig.good("A", 1);
    assert_eq!(rig.state(1), ChunkState::Done);
    assert!(
        end(&outs).is_none(),
        "not finished while a chunk is out: {outs:?}"
    );
    // Long after: no request is stalled (none is out), and chunk 0 is asked of nobody.
    let outs = rig.tick(60_000);
    assert!(
        asked(&outs, conn(1)).is_empty() && closed(&outs).is_empty(),
        "{outs:?}"
    );

    let outs = answer(&mut rig, check, true);
    assert_eq!(rig.state(0), ChunkState::Done);
    assert!(matches!(end(&outs), Some(End::Done(_))), "{outs:?}");
    assert_eq!(rig.store.published.as_deref(), Some(rig.data.as_slice()));
    rig.dl.sched.check();
}

#[test]
fn a_failed_check_answered_later_asks_again_and_counts_towards_the_ban() {
    let mut rig = Rig::started(6, &["A"]);
    rig.join("A", conn(1));
    let mut data = rig.bytes(0);
    data[7] ^= 1;
    let (check, _) = send_unchecked(&mut rig, "A", 0, data);
    let outs = answer(&mut rig, check, false);
    assert!(
        matches!(reports(&outs)[..], [Report::BadChunk { peer, fault: ChunkFault::HashMismatch, index }]
            if peer == "A" && index.get() == 0),
        "{outs:?}"
    );
    assert_eq!(rig.dl.sources[0].bad_chunks, 1);
    assert!(rig.store.chunks.is_empty(), "a bad chunk is never written");
    assert_eq!(rig.state(0), ChunkState::Missing);
    // The next good chunk makes room for two: the bad one is asked again first.
    assert_eq!(asked(&rig.good("A", 1), conn(1)), vec![0, 4]);
    rig.dl.sched.check();
}

#[test]
fn a_check_answered_after_its_source_was_lost_keeps_right_bytes() {
    let mut rig = Rig::started(3, &["A"]);
    rig.join("A", conn(1));
    let data = rig.bytes(1);
    let (check, _) = send_unchecked(&mut rig, "A", 1, data);
    let s = rig.src("A");
    rig.dl.handle_source_lost(s, "connection reset", rig.now);
    rig.drain();
    assert_eq!(
        rig.state(1),
        ChunkState::Checking,
        "not given away while out"
    );
    answer(&mut rig, check, true);
    assert_eq!(
        rig.state(1),
        ChunkState::Done,
        "right bytes whoever sent them"
    );
    assert_eq!(rig.dl.sources[0].bytes, rig.bytes(1).len() as u64);
    rig.dl.sched.check();
}

#[test]
fn checks_answered_while_paused_leave_no_chunk_stuck() {
    let mut rig = Rig::started(4, &["A"]);
    rig.join("A", conn(1));
    let (good, bad) = (rig.bytes(0), {
        let mut d = rig.bytes(1);
        d[0] ^= 1;
        d
    });
    let (good_check, _) = send_unchecked(&mut rig, "A", 0, good);
    let (bad_check, _) = send_unchecked(&mut rig, "A", 1, bad);
    rig.dl.handle_interrupt(rig.now);
    let outs = rig.drain();
    assert!(matches!(end(&outs), Some(End::Paused(_))), "{outs:?}");
    answer(&mut rig, good_check, true);
    let outs = answer(&mut rig, bad_check, false);
    assert!(
        end(&outs).is_none() && asked(&outs, conn(1)).is_empty(),
        "{outs:?}"
    );
    assert_eq!(rig.state(0), ChunkState::Done);
    assert_eq!(rig.state(1), ChunkState::Missing);
    rig.dl.sched.check();
    // Resumed: everything but chunk 0 is fetched, and the file completes.
    rig.dl.handle_resume(rig.now);
    rig.drain();
    assert_eq!(asked(&rig.join("A", conn(2)), conn(2)), vec![1, 2, 3]);
    for i in 1..4 {
        rig.good("A", i);
    }
    assert_eq!(rig.store.published.as_deref(), Some(rig.data.as_slice()));
}
