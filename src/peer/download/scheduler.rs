//! Which chunk to ask of which source, and the one record of what is in flight. Pure: no I/O,
//! time passed in.
//!
//! This replaces two tables that had to agree: `ChunkPlan` (a state per chunk, with a count of
//! chunks requested) and each source's own map of requests in `transfer.rs`. Here a chunk's
//! state and the sources' requests change together, in the few functions below, so they
//! cannot drift apart (a chunk given back while another source still fetched it, a request
//! forgotten while its chunk stayed "requested").
//!
//! Invariants (checked by `check` in the tests after every step):
//! - a chunk is `Requested { askers: n }` exactly when `n >= 1` sources have it in
//!   `in_flight`; a `Missing`, `Checking`, `Writing` or `Done` chunk is in no source's
//!   `in_flight`;
//! - `requested`, `checking`, `writing` and `done` count the chunks in those states;
//!   `bytes_done` is the length of the `Done` ones;
//! - a chunk is `Checking` while its bytes are checked against the manifest (possibly on
//!   another thread), then `Writing` or `Missing` again;
//! - a chunk is `Writing` from the moment its bytes verified until the store said they are
//!   written, and `Done` only after that (so it is served to others and counted only then);
//! - `next_missing` is at most the index of the first `Missing` chunk.

use super::chunk::{ChunkIndex, Have};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A source of one download: its place in the download's list, given by the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(pub(super) usize);

impl SourceId {
    /// The `i`th source of a download (for tests outside this module).
    #[cfg(test)]
    pub fn nth(i: usize) -> SourceId {
        SourceId(i)
    }
}

/// Bytes of chunk requests kept in flight per source: enough to fill a fast link with a long
/// round trip (the bandwidth-delay product of ~5 Gbit/s at 50 ms; 8 MiB capped one source at
/// ~170 MB/s over 50 ms), so a transfer never waits a round trip per chunk. It costs the
/// receiver no memory (answers wait in the sockets): the sender takes no more requests from us
/// while 1 MiB of answers is queued for us (src/reactor/budget.rs). What is in flight is what
/// a kill of the receiver costs (tests/crash_campaign.rs).
const WINDOW_BYTES: usize = 32 * 1024 * 1024;
/// Requests are topped up in batches of at least this many (or whatever the window has room
/// for, when it is small): one write per few chunks instead of one per chunk.
const REFILL_BATCH: usize = 4;
/// The rate a window must be able to sustain at the source's round trip: 10 Gbit/s.
const WINDOW_RATE: f64 = 1.25e9;
/// The smallest window: a few chunks, so the sender never idles while one is verified.
const MIN_WINDOW_BYTES: usize = 1024 * 1024;

/// The window of a source whose round trip is not known yet: [`WINDOW_BYTES`] of chunks.
pub fn window_for(chunk_size: u32) -> usize {
    (WINDOW_BYTES / chunk_size as usize).max(2)
}

/// The window for a source whose `GetHave` came back after `rtt`: twice what
/// [`WINDOW_RATE`] puts in flight over that round trip, between [`MIN_WINDOW_BYTES`] and
/// [`WINDOW_BYTES`]. A source 50 ms away gets the full 32 MiB from its first request; one on
/// the same machine or LAN gets 2 MiB, which fills it just as well and is all that is lost when
/// the receiver is killed (a fixed 32 MiB window lost ~5 MiB of kernel buffers per kill).
pub fn window_for_rtt(chunk_size: u32, rtt: Duration) -> usize {
    let bytes = (2.0 * WINDOW_RATE * rtt.as_secs_f64()) as usize;
    let bytes = bytes.clamp(MIN_WINDOW_BYTES, WINDOW_BYTES);
    (bytes / chunk_size as usize).clamp(2, window_for(chunk_size))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkState {
    /// Nobody fetches it.
    Missing,
    /// Asked of `askers` sources (more than one only in the end game), none answered yet.
    Requested { askers: u16 },
    /// Its bytes came and are being checked against the manifest (off the reactor's thread:
    /// `chunk_check.rs`); nobody is asked for it meanwhile.
    Checking,
    /// Its bytes verified; the store is writing them.
    Writing,
    /// Verified and written.
    Done,
}

struct Slot {
    /// What the source can serve; `None` while unknown (nothing is asked of it then).
    have: Option<Have>,
    /// How many requests it may have in flight.
    window: usize,
    /// Chunk -> when it was asked of this source.
    in_flight: BTreeMap<ChunkIndex, Instant>,
}

pub struct Scheduler {
    size: u64,
    chunk_size: u32,
    states: Vec<ChunkState>,
    slots: Vec<Slot>,
    next_missing: usize,
    requested: usize,
    checking: usize,
    writing: usize,
    done: usize,
    bytes_done: u64,
}

impl Scheduler {
    /// A file of `size` bytes in chunks of `chunk_size`, nothing here yet, fetched from
    /// `sources` sources (none of which can serve anything until [`Self::set_have`]).
    pub fn new(size: u64, chunk_size: u32, sources: usize) -> Scheduler {
        let count = size.div_ceil(u64::from(chunk_size.max(1))) as usize;
        Scheduler {
            size,
            chunk_size,
            states: vec![ChunkState::Missing; count],
            slots: (0..sources)
                .map(|_| Slot {
                    have: None,
                    window: window_for(chunk_size),
                    in_flight: BTreeMap::new(),
                })
                .collect(),
            next_missing: 0,
            requested: 0,
            checking: 0,
            writing: 0,
            done: 0,
            bytes_done: 0,
        }
    }

    pub fn chunk_count(&self) -> u64 {
        self.states.len() as u64
    }

    /// `raw` as an index of this file, if it is one.
    pub fn index(&self, raw: u64) -> Option<ChunkIndex> {
        ChunkIndex::new(raw, self.chunk_count())
    }

    pub fn state(&self, c: ChunkIndex) -> ChunkState {
        self.states[c.slot()]
    }

    pub fn is_done(&self, c: ChunkIndex) -> bool {
        self.state(c) == ChunkState::Done
    }

    pub fn is_complete(&self) -> bool {
        self.done == self.states.len()
    }

    pub fn done_count(&self) -> u64 {
        self.done as u64
    }

    pub fn bytes_done(&self) -> u64 {
        self.bytes_done
    }

    /// Whether a chunk is left that nobody fetches (outside the end game).
    pub fn has_missing(&self) -> bool {
        self.done + self.writing + self.checking + self.requested < self.states.len()
    }

    fn chunk_len(&self, c: ChunkIndex) -> u64 {
        let offset = c.get() * u64::from(self.chunk_size);
        (self.size - offset).min(u64::from(self.chunk_size))
    }

    // ---- sources ---------------------------------------------------------------------------

    pub fn have(&self, s: SourceId) -> Option<&Have> {
        self.slots[s.0].have.as_ref()
    }

    /// What source `s` can serve (its chunk map, first or refreshed).
    pub fn set_have(&mut self, s: SourceId, have: Have) {
        self.slots[s.0].have = Some(have);
    }

    /// Source `s` answered that it lacks chunk `c` (a partial seeder without it yet): not
    /// asked of it again until its next chunk map. False if `s` claims the whole file.
    pub fn lacks(&mut self, s: SourceId, c: ChunkIndex) -> bool {
        self.slots[s.0].have.as_mut().is_some_and(|h| h.forget(c))
    }

    #[cfg(test)]
    pub fn window(&self, s: SourceId) -> usize {
        self.slots[s.0].window
    }

    pub fn set_window(&mut self, s: SourceId, window: usize) {
        self.slots[s.0].window = window;
    }

    #[cfg(test)]
    pub fn in_flight(&self, s: SourceId) -> usize {
        self.slots[s.0].in_flight.len()
    }

    /// When the oldest unanswered request of `s` was made.
    pub fn oldest_request(&self, s: SourceId) -> Option<Instant> {
        self.slots[s.0].in_flight.values().min().copied()
    }

    /// Whether a request of `s` has gone unanswered for `timeout`.
    pub fn stalled(&self, s: SourceId, now: Instant, timeout: Duration) -> bool {
        self.oldest_request(s).is_some_and(|t| now >= t + timeout)
    }

    /// Forgets every request of `s`: chunks nobody else fetches are missing again (a source
    /// lost, dropped, stalled, or the download paused).
    pub fn release(&mut self, s: SourceId) {
        let asked = std::mem::take(&mut self.slots[s.0].in_flight);
        for c in asked.into_keys() {
            self.unask(c);
        }
    }

    /// [`Self::release`], and what `s` can serve is unknown again.
    pub fn forget_source(&mut self, s: SourceId) {
        self.release(s);
        self.slots[s.0].have = None;
    }

    // ---- requests --------------------------------------------------------------------------

    /// Tops source `s`'s requests up to its window, or nothing if it has fewer free places
    /// than a refill batch: the lowest missing chunks it has first; at the very end (nothing
    /// is missing), chunks exactly one other source is still fetching (the first answer
    /// wins, the other is dropped when it comes).
    pub fn fill(&mut self, s: SourceId, now: Instant) -> Vec<ChunkIndex> {
        let slot = &self.slots[s.0];
        let window = slot.window;
        if slot.have.is_none() {
            return Vec::new();
        }
        let room = window - slot.in_flight.len().min(window);
        if room < REFILL_BATCH.min(window / 2).max(1) {
            return Vec::new();
        }
        // Skip the done and requested prefix for good; past it, look without moving the
        // cursor (a chunk this source lacks may suit the next one).
        while self.next_missing < self.states.len()
            && self.states[self.next_missing] != ChunkState::Missing
        {
            self.next_missing += 1;
        }
        let mut asked = Vec::new();
        while self.slots[s.0].in_flight.len() < window {
            let Some(c) = self.pick(s) else { break };
            self.ask(s, c, now);
            asked.push(c);
        }
        asked
    }

    /// `c` was asked of `s` at `at`, before this download existed (the first flight of a
    /// `get`, sent right behind its `GetManifest`): it counts as in flight there. False, and
    /// nothing changes, if `c` is not missing (already here from a partial file, or asked
    /// elsewhere): its answer is then dropped like any unwanted one.
    pub fn asked_before(&mut self, s: SourceId, c: ChunkIndex, at: Instant) -> bool {
        if self.state(c) != ChunkState::Missing || self.slots[s.0].in_flight.contains_key(&c) {
            return false;
        }
        self.ask(s, c, at);
        true
    }

    /// The next chunk to ask of `s`, see [`Self::fill`].
    fn pick(&self, s: SourceId) -> Option<ChunkIndex> {
        let slot = &self.slots[s.0];
        let have = slot.have.as_ref()?;
        let index = |i: usize| ChunkIndex::new(i as u64, self.chunk_count());
        let missing = (self.next_missing..self.states.len())
            .filter_map(index)
            .find(|&c| self.state(c) == ChunkState::Missing && have.has(c));
        if missing.is_some() || self.has_missing() {
            return missing;
        }
        // End game.
        (0..self.states.len()).filter_map(index).find(|&c| {
            self.state(c) == (ChunkState::Requested { askers: 1 })
                && have.has(c)
                && !slot.in_flight.contains_key(&c)
        })
    }

    fn ask(&mut self, s: SourceId, c: ChunkIndex, now: Instant) {
        let state = &mut self.states[c.slot()];
        *state = match *state {
            ChunkState::Missing => {
                self.requested += 1;
                ChunkState::Requested { askers: 1 }
            }
            ChunkState::Requested { askers } => ChunkState::Requested { askers: askers + 1 },
            // `pick` never offers these.
            other => return debug_assert!(false, "asked for a chunk in state {other:?}"),
        };
        self.slots[s.0].in_flight.insert(c, now);
    }

    /// One source fewer fetches `c`; with none left it is missing again.
    fn unask(&mut self, c: ChunkIndex) {
        if let ChunkState::Requested { askers } = self.states[c.slot()] {
            if askers > 1 {
                self.states[c.slot()] = ChunkState::Requested { askers: askers - 1 };
            } else {
                self.states[c.slot()] = ChunkState::Missing;
                self.requested -= 1;
                self.next_missing = self.next_missing.min(c.slot());
            }
        }
    }

    /// Source `s` answered its request for `c` (with the chunk or an error): false if it had
    /// no such request (never asked, or given up on: stalled, or an end-game duplicate whose
    /// chunk another source delivered), and the answer is to be dropped. The chunk is missing
    /// again unless another source fetches it or [`Self::verified`] follows.
    pub fn answered(&mut self, s: SourceId, c: ChunkIndex) -> bool {
        if self.slots[s.0].in_flight.remove(&c).is_none() {
            return false;
        }
        self.unask(c);
        true
    }

    // ---- chunk states ----------------------------------------------------------------------

    /// The bytes of `c` came and are being checked: every other request of it is forgotten
    /// (their answers are dropped when they come); [`Self::verified`] or
    /// [`Self::check_failed`] follows. False if `c` was not wanted any more (being checked,
    /// written or done already).
    pub fn checking(&mut self, c: ChunkIndex) -> bool {
        if !self.forget_requests(c) {
            return false;
        }
        self.states[c.slot()] = ChunkState::Checking;
        self.checking += 1;
        true
    }

    /// The check of `c` failed: it is missing again.
    pub fn check_failed(&mut self, c: ChunkIndex) {
        if self.states[c.slot()] == ChunkState::Checking {
            self.states[c.slot()] = ChunkState::Missing;
            self.checking -= 1;
            self.next_missing = self.next_missing.min(c.slot());
        }
    }

    /// The bytes of `c` verified and go to the store: every other request of it is forgotten
    /// (their answers are dropped when they come).
    pub fn verified(&mut self, c: ChunkIndex) {
        if self.states[c.slot()] == ChunkState::Checking {
            self.checking -= 1;
        } else if !self.forget_requests(c) {
            return;
        }
        self.states[c.slot()] = ChunkState::Writing;
        self.writing += 1;
    }

    /// Forgets every request of `c` (it is no longer `Requested`); false if `c` is past
    /// fetching (checking, writing or done).
    fn forget_requests(&mut self, c: ChunkIndex) -> bool {
        match self.states[c.slot()] {
            ChunkState::Missing => {}
            ChunkState::Requested { .. } => {
                for slot in &mut self.slots {
                    slot.in_flight.remove(&c);
                }
                self.requested -= 1;
            }
            ChunkState::Checking | ChunkState::Writing | ChunkState::Done => return false,
        }
        true
    }

    /// The store wrote `c`: it is done.
    pub fn written(&mut self, c: ChunkIndex) {
        if self.states[c.slot()] == ChunkState::Writing {
            self.states[c.slot()] = ChunkState::Done;
            self.writing -= 1;
            self.done += 1;
            self.bytes_done += self.chunk_len(c);
        }
    }

    /// The store could not write `c`: it is missing again.
    pub fn write_failed(&mut self, c: ChunkIndex) {
        if self.states[c.slot()] == ChunkState::Writing {
            self.states[c.slot()] = ChunkState::Missing;
            self.writing -= 1;
            self.next_missing = self.next_missing.min(c.slot());
        }
    }

    /// `c` was found intact on disk (resume): done without asking anyone.
    pub fn present(&mut self, c: ChunkIndex) {
        if self.states[c.slot()] == ChunkState::Missing {
            self.states[c.slot()] = ChunkState::Done;
            self.done += 1;
            self.bytes_done += self.chunk_len(c);
        }
    }

    /// Every invariant of the module docs; panics naming the one broken.
    #[cfg(test)]
    pub fn check(&self) {
        let mut askers = vec![0u16; self.states.len()];
        for slot in &self.slots {
            for c in slot.in_flight.keys() {
                askers[c.slot()] += 1;
            }
        }
        let (mut requested, mut checking, mut writing, mut done, mut bytes) = (0, 0, 0, 0, 0);
        for (i, state) in self.states.iter().enumerate() {
            let c = ChunkIndex::new(i as u64, self.chunk_count()).unwrap();
            match *state {
                ChunkState::Requested { askers: n } => {
                    assert_eq!(n, askers[i], "chunk {i}: askers");
                    assert!(n >= 1, "chunk {i}: requested by nobody");
                    requested += 1;
                }
                other => assert_eq!(askers[i], 0, "chunk {i} in flight while {other:?}"),
            }
            if *state == ChunkState::Checking {
                checking += 1;
            }
            if *state == ChunkState::Writing {
                writing += 1;
            }
            if *state == ChunkState::Done {
                done += 1;
                bytes += self.chunk_len(c);
            }
            if *state == ChunkState::Missing {
                assert!(self.next_missing <= i, "cursor past missing chunk {i}");
            }
        }
        assert_eq!(
            (requested, checking, writing, done, bytes),
            (
                self.requested,
                self.checking,
                self.writing,
                self.done,
                self.bytes_done
            ),
            "counters"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::manifest::manifest_of_reader;

    const CHUNK: u32 = 256 * 1024;
    const A: SourceId = SourceId(0);
    const B: SourceId = SourceId(1);

    fn at(ms: u64) -> Instant {
        // One fixed origin for every test: Instants are only compared.
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(Instant::now) + Duration::from_millis(ms)
    }

    fn sched(chunks: u64, sources: usize) -> Scheduler {
        let mut s = Scheduler::new(chunks * u64::from(CHUNK), CHUNK, sources);
        for i in 0..sources {
            s.set_have(SourceId(i), Have::All);
        }
        s
    }

    fn ix(s: &Scheduler, raw: u64) -> ChunkIndex {
        s.index(raw).unwrap()
    }

    fn raw(v: Vec<ChunkIndex>) -> Vec<u64> {
        v.into_iter().map(ChunkIndex::get).collect()
    }

    /// Moved from chunk_plan.rs (`requests_in_order_and_completes`): chunks are asked in
    /// order and the file completes whatever order they arrive in.
    #[test]
    fn requests_in_order_and_completes() {
        let mut s = Scheduler::new(u64::from(CHUNK) * 2 + 10, CHUNK, 1);
        s.set_have(A, Have::All);
        assert_eq!(raw(s.fill(A, at(0))), vec![0, 1, 2]);
        assert_eq!(s.in_flight(A), 3);
        assert!(!s.has_missing());
        for i in [2, 0, 1] {
            let c = ix(&s, i);
            assert!(s.answered(A, c));
            s.verified(c);
            s.written(c);
            s.check();
        }
        assert!(s.is_complete());
        assert_eq!(s.bytes_done(), u64::from(CHUNK) * 2 + 10);
        assert_eq!(s.in_flight(A), 0);
    }

    /// Moved from chunk_plan.rs (`corrupt_chunk_is_missing_again_and_refetched`).
    #[test]
    fn a_chunk_answered_badly_is_missing_again_and_asked_first() {
        let mut s = sched(2, 1);
        s.set_window(A, 2);
        assert_eq!(raw(s.fill(A, at(0))), vec![0, 1]);
        assert!(
            s.answered(A, ix(&s, 0)),
            "bad bytes: the request is answered"
        );
        assert_eq!(s.state(ix(&s, 0)), ChunkState::Missing);
        assert_eq!(raw(s.fill(A, at(1))), vec![0]);
        s.check();
    }

    /// Moved from chunk_plan.rs (`wrong_length_and_unrequested_chunks_are_refused`; the length
    /// check is in chunk.rs, `a_chunk_of_the_wrong_length_or_hash_is_refused`): an
    /// answer to nothing asked, or a second answer, is not taken.
    #[test]
    fn answers_to_requests_never_made_or_already_answered_are_dropped() {
        let mut s = sched(1, 2);
        let c = ix(&s, 0);
        assert!(!s.answered(A, c), "nothing was asked");
        s.fill(A, at(0));
        assert!(!s.answered(B, c), "asked of A, not of B");
        assert!(s.answered(A, c));
        s.verified(c);
        s.written(c);
        assert!(!s.answered(A, c), "a duplicate after completion");
        assert_eq!(s.bytes_done(), u64::from(CHUNK));
        assert_eq!(s.index(1), None);
        s.check();
    }

    /// Moved from chunk_plan.rs (`chunks_found_on_disk_are_not_asked_for`).
    #[test]
    fn chunks_found_on_disk_are_not_asked_for() {
        let mut s = sched(3, 1);
        s.present(ix(&s, 1));
        s.present(ix(&s, 1));
        assert_eq!(s.done_count(), 1);
        assert_eq!(s.bytes_done(), u64::from(CHUNK));
        assert_eq!(raw(s.fill(A, at(0))), vec![0, 2]);
        s.check();
    }

    /// Moved from chunk_plan.rs (`a_source_with_part_of_the_file_gets_only_what_it_has`).
    #[test]
    fn a_source_with_part_of_the_file_gets_only_what_it_has() {
        let mut s = sched(5, 2);
        s.set_have(A, Have::Some(vec![0b0000_1010]));
        assert_eq!(raw(s.fill(A, at(0))), vec![1, 3]);
        assert!(s.has_missing());
        s.set_window(B, 3);
        assert_eq!(raw(s.fill(B, at(0))), vec![0, 2, 4]);
        assert!(!s.has_missing());
        s.check();
    }

    /// Moved from chunk_plan.rs (`empty_file_is_complete_at_once`).
    #[test]
    fn empty_file_is_complete_at_once() {
        let mut s = Scheduler::new(0, CHUNK, 1);
        s.set_have(A, Have::All);
        assert!(s.is_complete());
        assert!(s.fill(A, at(0)).is_empty());
    }

    /// Moved from chunk_plan.rs (`given_back_chunks_are_asked_again_first`).
    #[test]
    fn given_back_chunks_are_asked_again_first() {
        let mut s = sched(4, 1);
        s.fill(A, at(0));
        assert_eq!(s.in_flight(A), 4);
        s.answered(A, ix(&s, 2));
        s.answered(A, ix(&s, 1));
        assert_eq!(s.in_flight(A), 2);
        assert_eq!(raw(s.fill(A, at(1))), vec![1, 2]);
        assert!(s.fill(A, at(1)).is_empty());
        s.check();
    }

    /// The end game: with nothing missing, a source helps with chunks exactly one other
    /// source is fetching; the first answer wins and the other request is forgotten.
    #[test]
    fn end_game_doubles_up_on_the_last_chunks_and_the_first_answer_wins() {
        let mut s = sched(3, 2);
        s.set_window(B, 2);
        assert_eq!(raw(s.fill(A, at(0))), vec![0, 1, 2]);
        assert_eq!(raw(s.fill(B, at(1))), vec![0, 1], "end game");
        assert_eq!(s.state(ix(&s, 0)), ChunkState::Requested { askers: 2 });
        s.check();
        // B is faster with chunk 1: A's request for it is forgotten.
        let c1 = ix(&s, 1);
        assert!(s.answered(B, c1));
        s.verified(c1);
        assert!(!s.answered(A, c1), "A's late duplicate is dropped");
        s.written(c1);
        s.check();
        // A source losing its requests in the end game leaves the chunk with the other.
        s.release(B);
        assert_eq!(s.state(ix(&s, 0)), ChunkState::Requested { askers: 1 });
        s.check();
    }

    /// A source with a full window gets nothing more until a batch's worth has room.
    #[test]
    fn windows_are_topped_up_in_batches() {
        let mut s = sched(20, 1);
        s.set_window(A, 8);
        assert_eq!(s.fill(A, at(0)).len(), 8);
        let deliver = |s: &mut Scheduler, i| {
            let c = ix(s, i);
            assert!(s.answered(A, c));
            s.verified(c);
            s.written(c);
        };
        for i in 0..3 {
            deliver(&mut s, i);
        }
        assert!(s.fill(A, at(1)).is_empty(), "3 free places, batch of 4");
        deliver(&mut s, 3);
        assert_eq!(raw(s.fill(A, at(1))), vec![8, 9, 10, 11]);
        s.check();
    }

    #[test]
    fn a_request_unanswered_for_the_timeout_is_a_stall() {
        let mut s = sched(2, 1);
        s.fill(A, at(0));
        let t = Duration::from_secs(15);
        assert!(!s.stalled(A, at(14_999), t));
        assert!(s.stalled(A, at(15_000), t));
        assert_eq!(s.oldest_request(A), Some(at(0)));
        s.forget_source(A);
        assert!(!s.stalled(A, at(60_000), t));
        assert!(
            s.fill(A, at(60_000)).is_empty(),
            "what it has is unknown again"
        );
        s.check();
    }

    #[test]
    fn a_failed_write_makes_the_chunk_missing_again() {
        let mut s = sched(2, 1);
        s.fill(A, at(0));
        let c = ix(&s, 1);
        s.answered(A, c);
        s.verified(c);
        assert_eq!(s.state(c), ChunkState::Writing);
        assert!(!s.is_done(c), "not served before it is written");
        s.write_failed(c);
        assert_eq!(s.state(c), ChunkState::Missing);
        s.check();
    }

    #[test]
    fn a_chunk_being_checked_is_asked_of_nobody_and_its_duplicates_are_dropped() {
        let mut s = sched(3, 2);
        s.fill(A, at(0));
        s.fill(B, at(0));
        let c = ix(&s, 0);
        assert!(s.answered(A, c));
        assert!(s.checking(c), "the first answer is checked");
        assert_eq!(s.state(c), ChunkState::Checking);
        assert!(!s.answered(B, c), "any other request of it is forgotten");
        assert!(!s.fill(A, at(1)).contains(&c) && !s.fill(B, at(1)).contains(&c));
        assert!(!s.checking(c), "a second answer of it is not checked again");
        s.check();
        // A failed check: missing again, asked again.
        s.check_failed(c);
        assert_eq!(s.state(c), ChunkState::Missing);
        s.check();
        assert!(
            s.fill(A, at(2)).contains(&c),
            "a chunk whose check failed is asked again"
        );
        assert!(s.answered(A, c) && s.checking(c));
        s.verified(c);
        assert_eq!(s.state(c), ChunkState::Writing);
        s.written(c);
        assert!(s.is_done(c));
        s.check();
    }

    /// Moved from transfer.rs (`the_window_grows_with_the_round_trip`): the request window
    /// follows the source's round trip: 4 chunks (1 MiB) on loopback, the full 32 MiB once
    /// 10 Gbit/s needs it (about 13 ms and more).
    #[test]
    fn the_window_grows_with_the_round_trip() {
        let data = vec![7u8; 64 << 20];
        let m = manifest_of_reader(data.as_slice(), data.len() as u64).unwrap();
        assert_eq!(m.chunk_size, 256 * 1024);
        let at = |ms: f64| window_for_rtt(m.chunk_size, Duration::from_secs_f64(ms / 1000.0));
        assert_eq!(at(0.05), 4, "loopback: the 1 MiB floor");
        assert_eq!(at(1.0), 9, "1 ms: 2.5 MB");
        assert_eq!(at(50.0), 128, "50 ms: the 32 MiB cap");
        assert!(at(5.0) > at(1.0) && at(5.0) < at(50.0));
        let small = manifest_of_reader([7u8; 10].as_slice(), 10).unwrap();
        assert_eq!(window_for_rtt(small.chunk_size, Duration::ZERO), 4);
    }
}
