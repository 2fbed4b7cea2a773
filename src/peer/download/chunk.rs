//! Chunk indexes that are known to be in range, what a source may serve, and the check of a
//! received chunk against the manifest. Pure.

use crate::peer::manifest::Manifest;
use crate::wire::Sha256;

/// The index of a chunk of one download, checked against its chunk count when it was made
/// (rqbit's `ValidPieceIndex`). A `u64` from the network, from disk or from a user is only a
/// claim; [`ChunkIndex::new`] is where it becomes trusted, so the scheduler and the machine
/// index their tables with it without a bounds question.
///
/// Only ever combine an index with the download that made it: an index of a longer file used
/// on a shorter one is our bug (and panics in the scheduler), never bad input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkIndex(u64);

impl ChunkIndex {
    /// `raw` if it names one of `count` chunks.
    pub fn new(raw: u64, count: u64) -> Option<ChunkIndex> {
        (raw < count).then_some(ChunkIndex(raw))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// For tables with one entry per chunk (the count fits a `usize`: at most
    /// `manifest::MAX_CHUNKS`).
    pub(super) fn slot(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for ChunkIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Which chunks a source can serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Have {
    /// The whole file (a seeder).
    All,
    /// A download in progress elsewhere: bit `i % 8` of byte `i / 8` is chunk `i`.
    Some(Vec<u8>),
}

impl Have {
    pub fn has(&self, index: ChunkIndex) -> bool {
        match self {
            Have::All => true,
            Have::Some(bits) => bits
                .get((index.get() / 8) as usize)
                .is_some_and(|b| b & (1 << (index.get() % 8)) != 0),
        }
    }

    /// Whether this is a partial seeder (asked again now and then what it has).
    pub fn is_partial(&self) -> bool {
        matches!(self, Have::Some(_))
    }

    /// The source said it lacks `index` after all: do not ask it for that chunk until its
    /// next chunk map says otherwise. Returns false for a full seeder (it cannot lack one).
    pub fn forget(&mut self, index: ChunkIndex) -> bool {
        match self {
            Have::All => false,
            Have::Some(bits) => match bits.get_mut((index.get() / 8) as usize) {
                Some(b) => {
                    *b &= !(1 << (index.get() % 8));
                    true
                }
                None => false,
            },
        }
    }
}

/// Why a received chunk was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkFault {
    /// The data is not the chunk's length.
    WrongLength { expected: u32, got: usize },
    /// The data does not hash to the manifest's value.
    HashMismatch,
}

impl std::fmt::Display for ChunkFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkFault::WrongLength { expected, got } => {
                write!(f, "a chunk of {got} bytes where {expected} were expected")
            }
            ChunkFault::HashMismatch => f.write_str("a chunk whose SHA-256 does not match"),
        }
    }
}

/// Checks the bytes received for chunk `index` against the manifest: its length first, then
/// its SHA-256 (the two halves below, which a download runs apart: the hash may be taken on
/// another thread).
#[cfg(test)]
pub fn verify(manifest: &Manifest, index: ChunkIndex, data: &[u8]) -> Result<(), ChunkFault> {
    let expected = check_length(manifest, index, data)?;
    check_hash(&expected, data)
}

/// Checks the length of the bytes received for chunk `index` against the manifest (cheap);
/// returns the SHA-256 they must then have.
pub fn check_length(
    manifest: &Manifest,
    index: ChunkIndex,
    data: &[u8],
) -> Result<Sha256, ChunkFault> {
    let expected = manifest.chunk_len(index.get()).unwrap_or(0);
    if data.len() != expected as usize {
        return Err(ChunkFault::WrongLength {
            expected,
            got: data.len(),
        });
    }
    // A checked index has a hash: the manifest's counts were checked when it was accepted.
    manifest
        .chunk_hash(index.get())
        .copied()
        .ok_or(ChunkFault::HashMismatch)
}

/// Checks a chunk's bytes against the SHA-256 its manifest gives (the costly half: about
/// 0.9 CPU-s per GiB).
pub fn check_hash(expected: &Sha256, data: &[u8]) -> Result<(), ChunkFault> {
    if Sha256::of(data) == *expected {
        Ok(())
    } else {
        Err(ChunkFault::HashMismatch)
    }
}

/// The chunk map a peer sends for `GetHave`: bit `i` set when chunk `i` is verified here.
pub fn bitmap(count: u64, done: impl Fn(ChunkIndex) -> bool) -> Vec<u8> {
    let mut bits = vec![0u8; count.div_ceil(8) as usize];
    for i in 0..count {
        if done(ChunkIndex(i)) {
            bits[(i / 8) as usize] |= 1 << (i % 8);
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::manifest::manifest_of_reader;

    #[test]
    fn an_index_is_trusted_only_below_the_chunk_count() {
        assert_eq!(ChunkIndex::new(0, 1).map(ChunkIndex::get), Some(0));
        assert_eq!(ChunkIndex::new(1, 1), None);
        assert_eq!(ChunkIndex::new(u64::MAX, 3), None);
        assert_eq!(ChunkIndex::new(0, 0), None, "an empty file has no chunk");
    }

    #[test]
    fn a_chunk_of_the_wrong_length_or_hash_is_refused() {
        let data = vec![1u8; 10];
        let m = manifest_of_reader(data.as_slice(), 10).unwrap();
        let i = ChunkIndex::new(0, 1).unwrap();
        assert_eq!(verify(&m, i, &data), Ok(()));
        assert_eq!(
            verify(&m, i, &[1u8; 11]),
            Err(ChunkFault::WrongLength {
                expected: 10,
                got: 11
            })
        );
        assert_eq!(verify(&m, i, &[2u8; 10]), Err(ChunkFault::HashMismatch));
    }

    #[test]
    fn a_partial_seeder_can_forget_a_chunk() {
        let i = |n| ChunkIndex::new(n, 16).unwrap();
        let mut have = Have::Some(vec![0b0000_0101, 0b1000_0000]);
        assert!(have.has(i(0)) && !have.has(i(1)) && have.has(i(2)) && have.has(i(15)));
        assert!(have.forget(i(2)));
        assert!(!have.has(i(2)));
        let mut all = Have::All;
        assert!(!all.forget(i(2)) && all.has(i(2)));
        // A map shorter than the file (checked by the machine) never panics here.
        assert!(!Have::Some(vec![]).has(i(9)));
        assert_eq!(bitmap(10, |c| c.get() % 3 == 0), vec![0b0100_1001, 0b10]);
    }
}
