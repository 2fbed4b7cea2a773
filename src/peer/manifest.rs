//! Chunk geometry and manifests. Pure: no I/O except reading from a caller-supplied reader.
//!
//! A file is cut into chunks of `chunk_size` bytes (the last one may be short; an empty file
//! has no chunks). Its manifest holds the SHA-256 of the whole file (the file's id) and the
//! SHA-256 of every chunk, so each chunk can be verified on arrival.
//!
//! Limits, and why they fit the wire: a manifest has at most [`MAX_CHUNKS`] hashes
//! (65 536 × 32 B = 2 MiB) and a chunk at most [`MAX_CHUNK_SIZE`] bytes (4 MiB); both fit in a
//! frame of `wire::MAX_FRAME_LEN` (4 MiB + 4096) with room for the envelope.

use crate::wire::Sha256;
use sha2::Digest;
use std::io::{self, Read};

pub const MIN_CHUNK_SIZE: u32 = 256 * 1024;
pub const MAX_CHUNK_SIZE: u32 = 4 * 1024 * 1024;
pub const MAX_CHUNKS: u64 = 65_536;
/// Largest shareable file: `MAX_CHUNK_SIZE * MAX_CHUNKS` (256 GiB).
pub const MAX_FILE_SIZE: u64 = MAX_CHUNK_SIZE as u64 * MAX_CHUNKS;
/// [`chunk_size_for`] grows the chunk size while a file would need more chunks than this.
pub const TARGET_MAX_CHUNKS: u64 = 16_384;

/// The SHA-256 of zero bytes (e3b0c442...), the id of every empty file.
pub const SHA256_OF_EMPTY: Sha256 = Sha256([
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
]);

/// The chunk size we use for a file of `size` bytes: 256 KiB, doubled while the file would need
/// more than 16 384 chunks, never above [`MAX_CHUNK_SIZE`]. Files up to 4 GiB use 256 KiB chunks;
/// from 64 GiB on, 4 MiB chunks (and then up to 65 536 of them).
pub fn chunk_size_for(size: u64) -> u32 {
    let mut chunk_size = MIN_CHUNK_SIZE;
    while chunk_size < MAX_CHUNK_SIZE && size.div_ceil(u64::from(chunk_size)) > TARGET_MAX_CHUNKS {
        chunk_size *= 2;
    }
    chunk_size
}

/// A validated manifest: `chunk_size` is a power of two within
/// [`MIN_CHUNK_SIZE`]..=[`MAX_CHUNK_SIZE`], `size <= MAX_FILE_SIZE`, and there is exactly one
/// hash per chunk. Build one with [`Manifest::from_wire`] or [`manifest_of_reader`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// SHA-256 of the whole file: the file's id.
    pub sha256: Sha256,
    pub size: u64,
    pub chunk_size: u32,
    /// One hash per chunk, in order; empty for an empty file.
    pub chunk_hashes: Vec<Sha256>,
}

impl Manifest {
    /// Number of chunks: `ceil(size / chunk_size)`, 0 for an empty file.
    pub fn chunk_count(&self) -> u64 {
        chunk_count(self.size, self.chunk_size)
    }

    /// Byte length of chunk `index` (the last may be short); `None` if out of range.
    pub fn chunk_len(&self, index: u64) -> Option<u32> {
        if index >= self.chunk_count() {
            return None;
        }
        let left = self.size - self.chunk_offset(index);
        // `left` is at least 1 here and `min` keeps it within u32.
        Some(left.min(u64::from(self.chunk_size)) as u32)
    }

    /// Byte offset of chunk `index` in the file (saturating for indexes far out of range).
    pub fn chunk_offset(&self, index: u64) -> u64 {
        index.saturating_mul(u64::from(self.chunk_size))
    }

    /// The expected hash of chunk `index`; `None` if out of range.
    pub fn chunk_hash(&self, index: u64) -> Option<&Sha256> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.chunk_hashes.get(i))
    }

    /// Builds and validates a manifest received from the network (or read from a cache).
    /// Checks: `chunk_size` a power of two within [MIN_CHUNK_SIZE, MAX_CHUNK_SIZE];
    /// `size <= MAX_FILE_SIZE`; at most [`MAX_CHUNKS`] chunks; `hashes.len() == 32 * chunks`
    /// (0 for an empty file); `size == expected_size` when given. Also two facts that need no
    /// trust: an empty file's id is the SHA-256 of nothing, and a one-chunk file's only chunk
    /// hash equals its id. `Err` is the reason, for logs and for the user.
    pub fn from_wire(
        sha256: Sha256,
        size: u64,
        chunk_size: u32,
        hashes: &[u8],
        expected_size: Option<u64>,
    ) -> Result<Manifest, String> {
        if let Some(expected) = expected_size
            && size != expected
        {
            return Err(format!(
                "manifest size {size} does not match the expected {expected}"
            ));
        }
        if !chunk_size.is_power_of_two() || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size)
        {
            return Err(format!(
                "chunk size {chunk_size} is not a power of two between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE}"
            ));
        }
        if size > MAX_FILE_SIZE {
            return Err(format!(
                "file size {size} exceeds the maximum of {MAX_FILE_SIZE}"
            ));
        }
        let chunks = chunk_count(size, chunk_size);
        if chunks > MAX_CHUNKS {
            return Err(format!(
                "{chunks} chunks of {chunk_size} bytes exceed the maximum of {MAX_CHUNKS}"
            ));
        }
        // chunks <= 65 536, so this cannot overflow.
        let want = chunks as usize * 32;
        if hashes.len() != want {
            return Err(format!(
                "chunk hashes are {} bytes, expected {want} ({chunks} chunks × 32)",
                hashes.len()
            ));
        }
        let chunk_hashes: Vec<Sha256> = hashes
            .chunks_exact(32)
            .map(|h| {
                let mut a = [0u8; 32];
                a.copy_from_slice(h);
                Sha256(a)
            })
            .collect();
        if size == 0 && sha256 != SHA256_OF_EMPTY {
            return Err(format!(
                "an empty file's SHA-256 is {SHA256_OF_EMPTY}, not {sha256}"
            ));
        }
        if chunks == 1 && chunk_hashes[0] != sha256 {
            return Err("the only chunk's hash differs from the file's SHA-256".to_string());
        }
        Ok(Manifest {
            sha256,
            size,
            chunk_size,
            chunk_hashes,
        })
    }

    /// The chunk hashes concatenated, 32 bytes each, as `Message::Manifest` carries them.
    pub fn hashes_to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.chunk_hashes.len() * 32);
        for h in &self.chunk_hashes {
            out.extend_from_slice(&h.0);
        }
        out
    }
}

fn chunk_count(size: u64, chunk_size: u32) -> u64 {
    // chunk_size is never 0 in a built Manifest; `max(1)` keeps a bad caller from dividing by 0.
    size.div_ceil(u64::from(chunk_size.max(1)))
}

/// Hashes exactly `size` bytes of `reader` in one pass, computing the chunk hashes and the
/// whole-file SHA-256 together, with [`chunk_size_for`]`(size)` chunks. Reads chunk-size blocks
/// into one reused buffer (never the whole file in memory).
///
/// Errors: `InvalidInput` if `size > MAX_FILE_SIZE`; `UnexpectedEof` if the reader ends early;
/// `InvalidData` if it has more than `size` bytes (a file that grew while being hashed).
pub fn manifest_of_reader(mut reader: impl Read, size: u64) -> io::Result<Manifest> {
    if size > MAX_FILE_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("file of {size} bytes exceeds the maximum of {MAX_FILE_SIZE}"),
        ));
    }
    let chunk_size = chunk_size_for(size);
    let chunks = chunk_count(size, chunk_size);
    let mut whole = sha2::Sha256::new();
    // Both bounded: chunks <= MAX_CHUNKS, the buffer <= one chunk (and <= the file).
    let mut chunk_hashes = Vec::with_capacity(chunks as usize);
    let mut buf = vec![0u8; size.min(u64::from(chunk_size)) as usize];
    let mut left = size;
    while left > 0 {
        let n = left.min(u64::from(chunk_size)) as usize;
        let block = &mut buf[..n];
        reader.read_exact(block)?;
        whole.update(&*block);
        chunk_hashes.push(Sha256::of(block));
        left -= n as u64;
    }
    let mut probe = [0u8; 1];
    loop {
        match reader.read(&mut probe) {
            Ok(0) => break,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("more than the expected {size} bytes (did the file grow?)"),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Manifest {
        sha256: Sha256(whole.finalize().into()),
        size,
        chunk_size,
        chunk_hashes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;
    const CS: u64 = MIN_CHUNK_SIZE as u64;

    fn manifest(size: u64, chunk_size: u32) -> Manifest {
        let chunks = size.div_ceil(u64::from(chunk_size));
        Manifest {
            sha256: Sha256([1; 32]),
            size,
            chunk_size,
            chunk_hashes: vec![Sha256([2; 32]); chunks as usize],
        }
    }

    /// Deterministic, non-repeating test bytes (so a chunk mix-up changes the hash).
    fn bytes(n: usize) -> Vec<u8> {
        let mut x: u32 = 0x1234_5678;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn constants() {
        assert_eq!(MAX_FILE_SIZE, 256 * GIB);
        assert_eq!(SHA256_OF_EMPTY, Sha256::of(b""));
        assert!(
            SHA256_OF_EMPTY
                .to_hex()
                .starts_with("e3b0c44298fc1c149afbf4c8996fb924")
        );
        // The largest manifest and the largest chunk fit in a frame, with room for the envelope.
        assert!(MAX_CHUNKS as usize * 32 + 1024 <= crate::wire::MAX_FRAME_LEN);
        assert!(MAX_CHUNK_SIZE as usize + 1024 <= crate::wire::MAX_FRAME_LEN);
    }

    #[test]
    fn chunk_size_policy() {
        assert_eq!(chunk_size_for(0), MIN_CHUNK_SIZE);
        assert_eq!(chunk_size_for(1), MIN_CHUNK_SIZE);
        assert_eq!(chunk_size_for(4 * GIB), MIN_CHUNK_SIZE); // exactly 16 384 chunks
        assert_eq!(chunk_size_for(4 * GIB + 1), 2 * MIN_CHUNK_SIZE);
        assert_eq!(chunk_size_for(8 * GIB), 512 * 1024);
        assert_eq!(chunk_size_for(8 * GIB + 1), 1024 * 1024);
        assert_eq!(chunk_size_for(64 * GIB), MAX_CHUNK_SIZE);
        assert_eq!(chunk_size_for(64 * GIB + 1), MAX_CHUNK_SIZE);
        assert_eq!(chunk_size_for(MAX_FILE_SIZE), MAX_CHUNK_SIZE);
        assert_eq!(chunk_size_for(u64::MAX), MAX_CHUNK_SIZE);
        // Every size we accept gets a manifest that from_wire accepts.
        for size in [0, 1, 4 * GIB + 1, 100 * GIB, MAX_FILE_SIZE] {
            let cs = chunk_size_for(size);
            let n = size.div_ceil(u64::from(cs));
            assert!(n <= MAX_CHUNKS, "{size}");
            let hashes = vec![0u8; n as usize * 32];
            let sha = if size == 0 {
                SHA256_OF_EMPTY
            } else {
                Sha256([0; 32])
            };
            Manifest::from_wire(sha, size, cs, &hashes, Some(size)).unwrap();
        }
    }

    #[test]
    fn geometry() {
        let cs = MIN_CHUNK_SIZE;
        let m = manifest(0, cs);
        assert_eq!(m.chunk_count(), 0);
        assert_eq!(m.chunk_len(0), None);

        let m = manifest(1, cs);
        assert_eq!(m.chunk_count(), 1);
        assert_eq!(m.chunk_len(0), Some(1));
        assert_eq!(m.chunk_len(1), None);

        let m = manifest(CS - 1, cs);
        assert_eq!(m.chunk_count(), 1);
        assert_eq!(m.chunk_len(0), Some(cs - 1));

        let m = manifest(CS, cs);
        assert_eq!(m.chunk_count(), 1);
        assert_eq!(m.chunk_len(0), Some(cs));
        assert_eq!(m.chunk_len(1), None);

        let m = manifest(CS + 1, cs);
        assert_eq!(m.chunk_count(), 2);
        assert_eq!(m.chunk_len(0), Some(cs));
        assert_eq!(m.chunk_len(1), Some(1));
        assert_eq!(m.chunk_offset(1), CS);
        assert_eq!(m.chunk_len(2), None);

        // Huge: offsets past 4 GiB are exact u64 values.
        let m = manifest(MAX_FILE_SIZE - 5, MAX_CHUNK_SIZE);
        assert_eq!(m.chunk_count(), MAX_CHUNKS);
        let last = MAX_CHUNKS - 1;
        assert_eq!(
            m.chunk_offset(last),
            MAX_FILE_SIZE - u64::from(MAX_CHUNK_SIZE)
        );
        assert_eq!(m.chunk_len(last), Some(MAX_CHUNK_SIZE - 5));
        assert_eq!(m.chunk_len(MAX_CHUNKS), None);
        assert_eq!(m.chunk_len(u64::MAX), None);
        assert_eq!(m.chunk_offset(u64::MAX), u64::MAX);
        assert_eq!(m.chunk_hash(last), Some(&Sha256([2; 32])));
        assert_eq!(m.chunk_hash(MAX_CHUNKS), None);
        assert_eq!(m.chunk_hash(u64::MAX), None);
    }

    #[test]
    fn from_wire_accepts_consistent_manifests_and_round_trips() {
        let data = bytes(3 * CS as usize + 17);
        let m = manifest_of_reader(&data[..], data.len() as u64).unwrap();
        let wire = m.hashes_to_wire();
        assert_eq!(wire.len(), 4 * 32);
        let back = Manifest::from_wire(m.sha256, m.size, m.chunk_size, &wire, Some(m.size));
        assert_eq!(back, Ok(m.clone()));
        let back = Manifest::from_wire(m.sha256, m.size, m.chunk_size, &wire, None);
        assert_eq!(back, Ok(m.clone()));
        // A valid chunk size other than ours is fine (another implementation may choose it).
        let m2 = Manifest::from_wire(m.sha256, m.size, MAX_CHUNK_SIZE, &m.sha256.0, None).unwrap();
        assert_eq!(m2.chunk_count(), 1);
        // Empty file.
        let e = Manifest::from_wire(SHA256_OF_EMPTY, 0, MIN_CHUNK_SIZE, &[], Some(0)).unwrap();
        assert_eq!(e.chunk_count(), 0);
    }

    #[test]
    fn from_wire_rejects_every_inconsistency() {
        let sha = Sha256([7; 32]);
        let ok = |size: u64, cs: u32, hashes: &[u8], exp: Option<u64>| {
            Manifest::from_wire(sha, size, cs, hashes, exp)
        };
        let two = [0u8; 64];
        assert!(ok(CS + 1, MIN_CHUNK_SIZE, &two, Some(CS + 1)).is_ok());

        let err = |r: Result<Manifest, String>, part: &str| {
            let e = r.expect_err("accepted");
            assert!(e.contains(part), "{e:?} lacks {part:?}");
        };
        // Wrong hash length: short, long, not a multiple of 32, none.
        err(ok(CS + 1, MIN_CHUNK_SIZE, &two[..32], None), "expected 64");
        err(ok(CS + 1, MIN_CHUNK_SIZE, &[0; 96], None), "expected 64");
        err(ok(CS + 1, MIN_CHUNK_SIZE, &two[..63], None), "expected 64");
        err(ok(CS + 1, MIN_CHUNK_SIZE, &[], None), "expected 64");
        err(ok(0, MIN_CHUNK_SIZE, &two[..32], None), "expected 0");
        // Chunk size: not a power of two, too small, too large, zero, huge.
        err(ok(CS + 1, MIN_CHUNK_SIZE + 1, &two, None), "power of two");
        err(ok(CS + 1, 3 * MIN_CHUNK_SIZE, &two, None), "power of two");
        err(ok(1, MIN_CHUNK_SIZE / 2, &two[..32], None), "power of two");
        err(ok(1, MAX_CHUNK_SIZE * 2, &two[..32], None), "power of two");
        err(ok(1, 0, &two[..32], None), "power of two");
        err(ok(1, u32::MAX, &two[..32], None), "power of two");
        err(ok(1, 1 << 31, &two[..32], None), "power of two");
        // Size mismatch with what the file list said.
        err(ok(CS + 1, MIN_CHUNK_SIZE, &two, Some(CS)), "expected");
        err(ok(CS + 1, MIN_CHUNK_SIZE, &two, Some(0)), "expected");
        // Sizes over the maximum, overflow-y values.
        err(
            ok(MAX_FILE_SIZE + 1, MAX_CHUNK_SIZE, &[], None),
            "exceeds the maximum",
        );
        err(
            ok(u64::MAX, MAX_CHUNK_SIZE, &[], None),
            "exceeds the maximum",
        );
        err(
            ok(u64::MAX, MAX_CHUNK_SIZE, &[], Some(u64::MAX)),
            "exceeds the maximum",
        );
        // Too many chunks for the chunk size (a 2 MiB+ hash list for a 256 GiB file in 256 KiB chunks).
        err(
            ok(MAX_FILE_SIZE, MIN_CHUNK_SIZE, &[], None),
            "exceed the maximum of 65536",
        );
        // Facts that need no trust.
        err(ok(0, MIN_CHUNK_SIZE, &[], None), "empty file");
        err(ok(10, MIN_CHUNK_SIZE, &[0; 32], None), "only chunk");
    }

    #[test]
    fn manifest_of_reader_matches_sha256_of() {
        for size in [1, CS - 1, CS, CS + 1, 2 * CS, 3 * CS + 12_345] {
            let data = bytes(size as usize);
            let m = manifest_of_reader(&data[..], size).unwrap();
            assert_eq!(m.size, size);
            assert_eq!(m.chunk_size, MIN_CHUNK_SIZE);
            assert_eq!(m.sha256, Sha256::of(&data), "size {size}");
            let want: Vec<Sha256> = data.chunks(CS as usize).map(Sha256::of).collect();
            assert_eq!(m.chunk_hashes, want, "size {size}");
            assert_eq!(m.chunk_count(), want.len() as u64);
            for (i, c) in data.chunks(CS as usize).enumerate() {
                assert_eq!(m.chunk_len(i as u64), Some(c.len() as u32));
                let off = m.chunk_offset(i as u64) as usize;
                assert_eq!(&data[off..off + c.len()], c);
            }
        }
    }

    #[test]
    fn empty_file_manifest() {
        let m = manifest_of_reader(&b""[..], 0).unwrap();
        assert_eq!(m.chunk_count(), 0);
        assert!(m.chunk_hashes.is_empty());
        assert_eq!(
            m.sha256.to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(m.hashes_to_wire().is_empty());
    }

    #[test]
    fn manifest_of_reader_checks_the_length() {
        let data = bytes(1000);
        let e = manifest_of_reader(&data[..], 1001).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = manifest_of_reader(&data[..], 999).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let e = manifest_of_reader(io::empty(), MAX_FILE_SIZE + 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    /// A reader that hands out at most 7 bytes per call, to exercise short reads.
    struct Dribble<'a>(&'a [u8]);
    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(7).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn manifest_of_reader_handles_short_reads() {
        let data = bytes(CS as usize + 100);
        let m = manifest_of_reader(Dribble(&data), data.len() as u64).unwrap();
        assert_eq!(m, manifest_of_reader(&data[..], data.len() as u64).unwrap());
        assert_eq!(m.sha256, Sha256::of(&data));
    }
}
