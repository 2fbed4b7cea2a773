//! Which chunks of a download are missing, asked for, or verified — pure bookkeeping, no I/O.
//!
//! Invariants:
//! - `in_flight` equals the number of chunks in state `Requested`.
//! - `done` equals the number of chunks in state `Done`; a chunk is `Done` only after its bytes
//!   matched the manifest hash (the caller writes it before calling `mark_written`).
//! - `next_missing` is at most the index of the first `Missing` chunk, so scanning from it finds
//!   every chunk still to ask for.

use super::manifest::Manifest;
use crate::wire::Sha256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkState {
    Missing,
    Requested,
    Done,
}

/// Why a received chunk was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkFault {
    /// We did not ask for this chunk (or it was already answered).
    NotRequested,
    /// The data is not the chunk's length.
    WrongLength { expected: u32, got: usize },
    /// The data does not hash to the manifest's value.
    HashMismatch,
}

impl std::fmt::Display for ChunkFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkFault::NotRequested => f.write_str("a chunk that was not asked for"),
            ChunkFault::WrongLength { expected, got } => {
                write!(f, "a chunk of {got} bytes where {expected} were expected")
            }
            ChunkFault::HashMismatch => f.write_str("a chunk whose SHA-256 does not match"),
        }
    }
}

pub struct ChunkPlan {
    manifest: Manifest,
    states: Vec<ChunkState>,
    next_missing: usize,
    in_flight: usize,
    done: usize,
    bytes_done: u64,
}

impl ChunkPlan {
    pub fn new(manifest: Manifest) -> ChunkPlan {
        let count = manifest.chunk_count() as usize;
        ChunkPlan {
            manifest,
            states: vec![ChunkState::Missing; count],
            next_missing: 0,
            in_flight: 0,
            done: 0,
            bytes_done: 0,
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn bytes_done(&self) -> u64 {
        self.bytes_done
    }

    pub fn is_complete(&self) -> bool {
        self.done == self.states.len()
    }

    pub fn state(&self, index: u64) -> Option<ChunkState> {
        self.states.get(index as usize).copied()
    }

    /// Picks the lowest missing chunk and marks it requested.
    pub fn next_request(&mut self) -> Option<u64> {
        self.next_request_where(|_| true)
    }

    /// Picks the lowest missing chunk that `available` accepts (a source that has only part of
    /// the file) and marks it requested.
    pub fn next_request_where(&mut self, available: impl Fn(u64) -> bool) -> Option<u64> {
        // Skip the done and requested prefix for good; past it, look without moving the cursor
        // (a chunk this source lacks may suit the next one).
        while self.next_missing < self.states.len()
            && self.states[self.next_missing] != ChunkState::Missing
        {
            self.next_missing += 1;
        }
        let found = (self.next_missing..self.states.len())
            .find(|&i| self.states[i] == ChunkState::Missing && available(i as u64))?;
        self.states[found] = ChunkState::Requested;
        self.in_flight += 1;
        Some(found as u64)
    }

    /// Whether any chunk is still missing (not requested from anyone).
    pub fn has_missing(&self) -> bool {
        self.done + self.in_flight < self.states.len()
    }

    /// Chunks requested and not yet answered, in order (for end-game duplicates).
    pub fn requested(&self) -> impl Iterator<Item = u64> + '_ {
        self.states
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == ChunkState::Requested)
            .map(|(i, _)| i as u64)
    }

    /// Checks a received chunk against the request and the manifest. On `Ok` the caller writes
    /// the bytes and then calls [`Self::mark_written`]. On `Err` of a requested chunk, the chunk
    /// is missing again (to be fetched anew).
    pub fn verify(&mut self, index: u64, data: &[u8]) -> Result<(), ChunkFault> {
        if self.state(index) != Some(ChunkState::Requested) {
            return Err(ChunkFault::NotRequested);
        }
        let expected = self.manifest.chunk_len(index).unwrap_or(0);
        let fault = if data.len() != expected as usize {
            Some(ChunkFault::WrongLength {
                expected,
                got: data.len(),
            })
        } else if Sha256::of(data) != self.manifest.chunk_hashes[index as usize] {
            Some(ChunkFault::HashMismatch)
        } else {
            None
        };
        match fault {
            Some(fault) => {
                self.give_back(index);
                Err(fault)
            }
            None => Ok(()),
        }
    }

    /// The verified chunk's bytes are written.
    pub fn mark_written(&mut self, index: u64) {
        let i = index as usize;
        if self.states.get(i) == Some(&ChunkState::Requested) {
            self.states[i] = ChunkState::Done;
            self.in_flight -= 1;
            self.done += 1;
            self.bytes_done += u64::from(self.manifest.chunk_len(index).unwrap_or(0));
        }
    }

    /// Chunk `index` was found intact on disk (resume): done without asking anyone.
    pub fn mark_present(&mut self, index: u64) {
        let i = index as usize;
        if self.states.get(i) == Some(&ChunkState::Missing) {
            self.states[i] = ChunkState::Done;
            self.done += 1;
            self.bytes_done += u64::from(self.manifest.chunk_len(index).unwrap_or(0));
        }
    }

    pub fn chunk_count(&self) -> u64 {
        self.states.len() as u64
    }

    pub fn done_count(&self) -> u64 {
        self.done as u64
    }

    /// A requested chunk will not arrive (connection lost, write failed): ask again later.
    pub fn give_back(&mut self, index: u64) {
        let i = index as usize;
        if self.states.get(i) == Some(&ChunkState::Requested) {
            self.states[i] = ChunkState::Missing;
            self.in_flight -= 1;
            self.next_missing = self.next_missing.min(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::manifest::manifest_of_reader;

    const CHUNK: usize = 256 * 1024;

    fn plan_for(data: &[u8]) -> ChunkPlan {
        ChunkPlan::new(manifest_of_reader(data, data.len() as u64).unwrap())
    }

    fn chunk(data: &[u8], i: usize) -> &[u8] {
        &data[i * CHUNK..((i + 1) * CHUNK).min(data.len())]
    }

    #[test]
    fn requests_in_order_and_completes() {
        let data: Vec<u8> = (0..CHUNK * 2 + 10).map(|i| (i % 251) as u8).collect();
        let mut plan = plan_for(&data);
        assert_eq!(plan.next_request(), Some(0));
        assert_eq!(plan.next_request(), Some(1));
        assert_eq!(plan.next_request(), Some(2));
        assert_eq!(plan.next_request(), None);
        assert_eq!(plan.in_flight(), 3);
        for i in [2, 0, 1] {
            plan.verify(i as u64, chunk(&data, i)).unwrap();
            plan.mark_written(i as u64);
        }
        assert!(plan.is_complete());
        assert_eq!(plan.bytes_done(), data.len() as u64);
        assert_eq!(plan.in_flight(), 0);
    }

    #[test]
    fn corrupt_chunk_is_missing_again_and_refetched() {
        let data = vec![7u8; CHUNK + 1];
        let mut plan = plan_for(&data);
        assert_eq!(plan.next_request(), Some(0));
        assert_eq!(plan.next_request(), Some(1));
        let mut bad = chunk(&data, 0).to_vec();
        bad[100] ^= 1;
        assert_eq!(plan.verify(0, &bad), Err(ChunkFault::HashMismatch));
        assert_eq!(plan.state(0), Some(ChunkState::Missing));
        assert_eq!(plan.in_flight(), 1);
        assert_eq!(plan.next_request(), Some(0));
        plan.verify(0, chunk(&data, 0)).unwrap();
        plan.mark_written(0);
        assert!(!plan.is_complete());
    }

    #[test]
    fn wrong_length_and_unrequested_chunks_are_refused() {
        let data = vec![1u8; 10];
        let mut plan = plan_for(&data);
        assert_eq!(plan.verify(0, &data), Err(ChunkFault::NotRequested));
        plan.next_request();
        assert_eq!(
            plan.verify(0, &[1u8; 11]),
            Err(ChunkFault::WrongLength {
                expected: 10,
                got: 11
            })
        );
        plan.next_request();
        plan.verify(0, &data).unwrap();
        plan.mark_written(0);
        // A duplicate answer after completion is not accepted twice.
        assert_eq!(plan.verify(0, &data), Err(ChunkFault::NotRequested));
        assert_eq!(plan.bytes_done(), 10);
        assert_eq!(plan.verify(99, &data), Err(ChunkFault::NotRequested));
    }

    #[test]
    fn chunks_found_on_disk_are_not_asked_for() {
        let data = vec![4u8; CHUNK * 3];
        let mut plan = plan_for(&data);
        plan.mark_present(1);
        plan.mark_present(1);
        assert_eq!(plan.done_count(), 1);
        assert_eq!(plan.bytes_done(), CHUNK as u64);
        assert_eq!(plan.next_request(), Some(0));
        assert_eq!(plan.next_request(), Some(2));
        assert_eq!(plan.next_request(), None);
    }

    #[test]
    fn a_source_with_part_of_the_file_gets_only_what_it_has() {
        let data = vec![5u8; CHUNK * 5];
        let mut plan = plan_for(&data);
        let odd = |i: u64| i % 2 == 1;
        assert_eq!(plan.next_request_where(odd), Some(1));
        assert_eq!(plan.next_request_where(odd), Some(3));
        assert_eq!(plan.next_request_where(odd), None);
        assert!(plan.has_missing());
        assert_eq!(plan.next_request(), Some(0));
        assert_eq!(plan.next_request(), Some(2));
        assert_eq!(plan.next_request(), Some(4));
        assert!(!plan.has_missing());
        assert_eq!(plan.requested().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn empty_file_is_complete_at_once() {
        let mut plan = plan_for(&[]);
        assert!(plan.is_complete());
        assert_eq!(plan.next_request(), None);
    }

    #[test]
    fn given_back_chunks_are_asked_again_first() {
        let data = vec![3u8; CHUNK * 4];
        let mut plan = plan_for(&data);
        for _ in 0..4 {
            plan.next_request();
        }
        plan.give_back(2);
        plan.give_back(1);
        assert_eq!(plan.in_flight(), 2);
        assert_eq!(plan.next_request(), Some(1));
        assert_eq!(plan.next_request(), Some(2));
        assert_eq!(plan.next_request(), None);
    }
}
