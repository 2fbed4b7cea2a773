//! Chunk geometry and manifests. Pure: no I/O except reading from a caller-supplied reader.
//!
//! A file is cut into chunks of `chunk_size` bytes (the last one may be short; an empty file
//! has no chunks). Its manifest holds the SHA-256 of the whole file (the file's id) and the
//! SHA-256 of every chunk, so each chunk can be verified on arrival; its content id
//! (`content_id.rs`, which imports this file) commits to the chunk hashes.
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
    /// SHA-256 of the whole file. Computed for a shared file; for a download, the SHA-256 it
    /// was listed with, which its content id does not prove (checked at the end only when the
    /// user asked for the file by it).
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
        let manifest = Manifest::from_answer(sha256, size, chunk_size, hashes, expected_size)?;
        if size == 0 && sha256 != SHA256_OF_EMPTY {
            return Err(format!(
                "an empty file's SHA-256 is {SHA256_OF_EMPTY}, not {sha256}"
            ));
        }
        if manifest.chunk_count() == 1 && manifest.chunk_hashes[0] != sha256 {
            return Err("the only chunk's hash differs from the file's SHA-256".to_string());
        }
        Ok(manifest)
    }

    /// [`Self::from_wire`]'s checks of the shape only, for a manifest a source sent (version 2
    /// carries no SHA-256 in it): `sha256` is the SHA-256 the file was listed with, a label the
    /// chunk hashes are not compared with. What proves such a manifest is its content id
    /// (`content_id::manifest_from_answer`); a listed SHA-256 that disagrees with a one-chunk
    /// file's chunk hash must not get an honest source's manifest refused.
    pub fn from_answer(
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

/// Hashes exactly `size` bytes of `reader` in one pass on this thread, computing the chunk
/// hashes and the whole-file SHA-256 together, with [`chunk_size_for`]`(size)` chunks. Reads
/// [`READ_BLOCK`] bytes at a time into one reused buffer (never the whole file in memory). A
/// file is hashed faster, on two threads, by [`manifest_of`].
///
/// Errors: `InvalidInput` if `size > MAX_FILE_SIZE`; `UnexpectedEof` if the reader ends early;
/// `InvalidData` if it has more than `size` bytes (a file that grew while being hashed).
pub fn manifest_of_reader(mut reader: impl Read, size: u64) -> io::Result<Manifest> {
    check_size(size)?;
    let chunk_size = chunk_size_for(size);
    let mut chunks = ChunkHasher::new(size, chunk_size);
    let mut whole = (chunks.count > 1).then(sha2::Sha256::new);
    let mut buf = vec![0u8; size.min(READ_BLOCK as u64) as usize];
    for block in 0..size.div_ceil(READ_BLOCK as u64) {
        let data = &mut buf[..block_len(size, block)];
        reader.read_exact(data)?;
        chunks.update(data);
        if let Some(whole) = &mut whole {
            whole.update(&*data);
        }
    }
    expect_end(&mut reader, size)?;
    Ok(chunks.into_manifest(whole.map(finish)))
}

/// Bytes read (and hashed) at a time: the smallest chunk, so every chunk is a whole number of
/// blocks and a block never spans two chunks.
pub const READ_BLOCK: usize = MIN_CHUNK_SIZE as usize;
/// [`manifest_of`] uses a second thread for files of at least this many bytes; below it a
/// thread costs about what it saves.
pub const THREADED_FROM: u64 = 4 * READ_BLOCK as u64;
/// Buffers each of [`manifest_of`]'s two threads reads into and lends the other.
const BUFFERS: usize = 3;

/// Something two threads may read from at any offset at once: a file, or bytes in memory.
pub trait ReadAt: Sync {
    /// Fills `buf` from `offset` on; `UnexpectedEof` if the source ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|at| self.get(at..at.checked_add(buf.len())?))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// Why [`manifest_of`] gave no manifest.
#[derive(Debug)]
pub enum Unfinished {
    /// The watcher said stop.
    Stopped,
    /// A read failed (`UnexpectedEof`: the source is shorter than `size`), or `size` is over
    /// [`MAX_FILE_SIZE`] (`InvalidInput`).
    Io(io::Error),
}

impl From<io::Error> for Unfinished {
    fn from(e: io::Error) -> Unfinished {
        Unfinished::Io(e)
    }
}

/// The manifest of the first `size` bytes of `source` (bytes after them are not looked at:
/// whoever hands a file in checks afterwards that it did not change). `watch` is told how many
/// bytes are hashed before each block is read and returns false to stop.
///
/// Every byte is hashed twice, once for its chunk and once for the whole file, so from
/// [`THREADED_FROM`] bytes on the work is shared with a scoped helper thread: this thread
/// hashes the chunks, the helper the whole file, and each reads every other block and lends it
/// to the other (reading costs about a third of hashing here, so giving it all to one side
/// would leave the other waiting). Blocks are [`READ_BLOCK`] bytes, at most `2 × BUFFERS` in
/// memory. A one-chunk file is hashed once (its only chunk hash is its SHA-256). If the helper
/// cannot be started, everything runs here.
pub fn manifest_of<S: ReadAt + ?Sized>(
    source: &S,
    size: u64,
    watch: impl FnMut(u64) -> bool,
) -> Result<Manifest, Unfinished> {
    manifest_with(source, size, watch, THREADED_FROM)
}

/// [`manifest_of`] with the helper thread from `threaded_from` bytes on (tests vary it).
fn manifest_with<S: ReadAt + ?Sized>(
    source: &S,
    size: u64,
    mut watch: impl FnMut(u64) -> bool,
    threaded_from: u64,
) -> Result<Manifest, Unfinished> {
    check_size(size)?;
    let mut chunks = ChunkHasher::new(size, chunk_size_for(size));
    if chunks.count > 1 && size >= threaded_from {
        match hash_on_two_threads(source, size, &mut chunks, &mut watch) {
            Ok(whole) => return Ok(chunks.into_manifest(Some(whole))),
            Err(Some(unfinished)) => return Err(unfinished),
            Err(None) => {} // no helper thread: on with one
        }
    }
    let mut whole = (chunks.count > 1).then(sha2::Sha256::new);
    let mut buf = vec![0u8; size.min(READ_BLOCK as u64) as usize];
    for block in 0..size.div_ceil(READ_BLOCK as u64) {
        if !watch(block * READ_BLOCK as u64) {
            return Err(Unfinished::Stopped);
        }
        let data = &mut buf[..block_len(size, block)];
        source.read_exact_at(data, block * READ_BLOCK as u64)?;
        chunks.update(data);
        if let Some(whole) = &mut whole {
            whole.update(&*data);
        }
    }
    Ok(chunks.into_manifest(whole.map(finish)))
}

fn finish(hasher: sha2::Sha256) -> Sha256 {
    Sha256(hasher.finalize().into())
}

fn check_size(size: u64) -> io::Result<()> {
    if size > MAX_FILE_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("file of {size} bytes exceeds the maximum of {MAX_FILE_SIZE}"),
        ));
    }
    Ok(())
}

/// Length of block `block` of a file of `size` bytes (the last may be short).
fn block_len(size: u64, block: u64) -> usize {
    // At most READ_BLOCK, so it fits.
    (size - block * READ_BLOCK as u64).min(READ_BLOCK as u64) as usize
}

/// The chunk hashes of a file fed to it in order, block by block.
struct ChunkHasher {
    size: u64,
    chunk_size: u32,
    count: u64,
    /// Bytes of the file not fed yet.
    left: u64,
    hashes: Vec<Sha256>,
    current: sha2::Sha256,
    /// Bytes of the current chunk hashed so far.
    filled: u64,
}

impl ChunkHasher {
    fn new(size: u64, chunk_size: u32) -> ChunkHasher {
        let count = chunk_count(size, chunk_size);
        ChunkHasher {
            size,
            chunk_size,
            count,
            left: size,
            // Bounded: count <= MAX_CHUNKS once the size is checked.
            hashes: Vec::with_capacity(count.min(MAX_CHUNKS) as usize),
            current: sha2::Sha256::new(),
            filled: 0,
        }
    }

    /// Hashes the next bytes of the file (at most what is left of it), in blocks that never
    /// span two chunks.
    fn update(&mut self, block: &[u8]) {
        self.current.update(block);
        self.filled += block.len() as u64;
        self.left -= block.len() as u64;
        if self.filled == u64::from(self.chunk_size) || self.left == 0 {
            let done = std::mem::take(&mut self.current);
            self.hashes.push(Sha256(done.finalize().into()));
            self.filled = 0;
        }
    }

    /// The manifest, once every byte was fed; `whole` is the whole-file hash if it was
    /// computed apart (needed only with two chunks or more).
    fn into_manifest(self, whole: Option<Sha256>) -> Manifest {
        debug_assert_eq!(self.left, 0);
        let sha256 =
            whole.unwrap_or_else(|| self.hashes.first().copied().unwrap_or(SHA256_OF_EMPTY));
        Manifest {
            sha256,
            size: self.size,
            chunk_size: self.chunk_size,
            chunk_hashes: self.hashes,
        }
    }
}

type Block = std::sync::Arc<Vec<u8>>;

/// One of the two threads of [`hash_on_two_threads`]. Both run the same loop: go through the
/// blocks in order and hash each; the blocks of its own parity it reads itself, a few ahead,
/// and hands a shared reference to the other before hashing them, so the other thread hashes
/// the same block at the same time instead of waiting. A block's buffer goes back to the side
/// that read it once the other is done with it.
struct Side<'s, S: ?Sized> {
    source: &'s S,
    size: u64,
    blocks: u64,
    /// This side reads the blocks whose number has this parity (0 or 1).
    parity: u64,
    /// Own blocks read and not hashed here yet, in order.
    mine: std::collections::VecDeque<Block>,
    /// The next own block to read.
    next_read: u64,
    /// Own buffers hashed here; reusable once the other side has given its reference back.
    free: Vec<Block>,
    made: usize,
    to_other: std::sync::mpsc::Sender<Block>,
    from_other: std::sync::mpsc::Receiver<Block>,
    /// The other side gives our buffers back here...
    returned: std::sync::mpsc::Receiver<Block>,
    /// ... and we give back its buffers here.
    give_back: std::sync::mpsc::Sender<Block>,
}

/// Own blocks read ahead of the block being hashed, at most.
const AHEAD: u64 = 4;

/// Why a [`Side`] stopped before its last block.
enum SideStop {
    /// The other side went away (it failed or stopped; its own result says why).
    Gone,
    Stopped,
    Io(io::Error),
}

impl<S: ReadAt + ?Sized> Side<'_, S> {
    /// Hashes every block in order with `hash`; `watch` is asked before each block.
    fn run(
        &mut self,
        mut hash: impl FnMut(&[u8]),
        mut watch: impl FnMut(u64) -> bool,
    ) -> Result<(), SideStop> {
        for block in 0..self.blocks {
            if !watch(block * READ_BLOCK as u64) {
                return Err(SideStop::Stopped);
            }
            self.read_ahead(block)?;
            let len = block_len(self.size, block);
            if block % 2 == self.parity {
                let data = self.mine.pop_front().ok_or(SideStop::Gone)?;
                hash(&data[..len]);
                self.free.push(data);
            } else {
                let data = self.from_other.recv().map_err(|_| SideStop::Gone)?;
                hash(&data[..len]);
                // The other side may have stopped: its buffers do not matter then.
                let _ = self.give_back.send(data);
            }
        }
        Ok(())
    }

    /// Reads own blocks up to `AHEAD` past `current`, waiting for a buffer only if `current`
    /// itself is one of them and not read yet (a buffer always comes back: the other side
    /// holds only blocks before the one it waits for, and it can hash those).
    fn read_ahead(&mut self, current: u64) -> Result<(), SideStop> {
        if self.next_read < self.parity {
            self.next_read = self.parity;
        }
        while self.next_read < self.blocks && self.next_read <= current + AHEAD {
            let must = self.next_read <= current;
            let Some(mut bytes) = self.take_buffer(must)? else {
                return Ok(());
            };
            let block = self.next_read;
            let len = block_len(self.size, block);
            self.source
                .read_exact_at(&mut bytes[..len], block * READ_BLOCK as u64)
                .map_err(SideStop::Io)?;
            let buf = std::sync::Arc::new(bytes);
            self.to_other
                .send(std::sync::Arc::clone(&buf))
                .map_err(|_| SideStop::Gone)?;
            self.mine.push_back(buf);
            self.next_read += 2;
        }
        Ok(())
    }

    /// A buffer only this side holds: a free one the other side gave back, a new one (up to
    /// [`BUFFERS`]), or, if `wait`, the next one given back.
    fn take_buffer(&mut self, wait: bool) -> Result<Option<Vec<u8>>, SideStop> {
        loop {
            // References the other side gave back: dropping them frees our copies.
            while let Ok(back) = self.returned.try_recv() {
                drop(back);
            }
            let unshared = self
                .free
                .iter()
                .position(|b| std::sync::Arc::strong_count(b) == 1);
            if let Some(at) = unshared {
                // Nobody else holds it (there are no weak references), so this unwraps.
                match std::sync::Arc::try_unwrap(self.free.swap_remove(at)) {
                    Ok(bytes) => return Ok(Some(bytes)),
                    Err(shared) => self.free.push(shared),
                }
            }
            if self.made < BUFFERS {
                self.made += 1;
                return Ok(Some(vec![0u8; READ_BLOCK]));
            }
            if !wait {
                return Ok(None);
            }
            let back = self.returned.recv().map_err(|_| SideStop::Gone)?;
            drop(back);
        }
    }
}

/// The two-thread hashing of [`manifest_of`]: this thread hashes the chunks and reads the even
/// blocks, a scoped helper hashes the whole file and reads the odd ones; see [`Side`]. Each
/// side that stops drops its channels, which ends the other.
///
/// The whole-file hash, or `Err(Some(why))` if it stopped, or `Err(None)` if the helper
/// thread could not be started (nothing was read).
fn hash_on_two_threads<S: ReadAt + ?Sized>(
    source: &S,
    size: u64,
    chunks: &mut ChunkHasher,
    watch: &mut impl FnMut(u64) -> bool,
) -> Result<Sha256, Option<Unfinished>> {
    use std::sync::mpsc::channel;
    let blocks = size.div_ceil(READ_BLOCK as u64);
    let (even_tx, even_rx) = channel::<Block>(); // blocks read here, to the helper
    let (odd_tx, odd_rx) = channel::<Block>(); // blocks read there, to here
    let (back_here_tx, back_here_rx) = channel::<Block>(); // our buffers coming back
    let (back_there_tx, back_there_rx) = channel::<Block>(); // the helper's coming back
    let side = |parity, to_other, from_other, returned, give_back| Side {
        source,
        size,
        blocks,
        parity,
        mine: std::collections::VecDeque::new(),
        next_read: 0,
        free: Vec::new(),
        made: 0,
        to_other,
        from_other,
        returned,
        give_back,
    };
    let mut here = side(0, even_tx, odd_rx, back_here_rx, back_there_tx);
    let mut there = side(1, odd_tx, even_rx, back_there_rx, back_here_tx);
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("whole-file-sha".into())
            .spawn_scoped(scope, move || {
                let mut whole = sha2::Sha256::new();
                let ran = there.run(|block| whole.update(block), |_| true);
                ran.map(|()| finish(whole))
            });
        let Ok(helper) = helper else {
            return Err(None);
        };
        let ran = here.run(|block| chunks.update(block), &mut *watch);
        drop(here); // its channels go: a helper still waiting for them ends
        let whole = match helper.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let unfinished = |stop| match stop {
            SideStop::Stopped => Unfinished::Stopped,
            SideStop::Io(e) => Unfinished::Io(e),
            SideStop::Gone => Unfinished::Io(io::Error::other("the other hashing thread ended")),
        };
        match (ran, whole) {
            // This side's reason first: when it stopped, the helper only saw it go.
            (Err(SideStop::Gone), Err(there)) => Err(Some(unfinished(there))),
            (Err(here), _) => Err(Some(unfinished(here))),
            (Ok(()), Err(there)) => Err(Some(unfinished(there))),
            (Ok(()), Ok(whole)) => Ok(whole),
        }
    })
}

/// After `size` bytes the reader must be at its end: more means the file grew while hashed.
fn expect_end(reader: &mut impl Read, size: u64) -> io::Result<()> {
    let mut probe = [0u8; 1];
    loop {
        match reader.read(&mut probe) {
            Ok(0) => return Ok(()),
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

    #[test]
    fn every_path_gives_the_same_manifest() {
        // One thread and two, around the chunk and block boundaries, even and odd block counts.
        let sizes = [
            0,
            1,
            CS - 1,
            CS,
            CS + 1,
            2 * CS,
            3 * CS,
            4 * CS - 1,
            4 * CS,
            4 * CS + 1,
        ];
        for size in sizes.into_iter().chain([9 * CS + 7, 12 * CS]) {
            let data = bytes(size as usize);
            let want = manifest_of_reader(&data[..], size).unwrap();
            assert_eq!(want.sha256, Sha256::of(&data), "size {size}");
            let want_chunks: Vec<Sha256> = data.chunks(CS as usize).map(Sha256::of).collect();
            assert_eq!(want.chunk_hashes, want_chunks, "size {size}");
            for threaded_from in [0, u64::MAX] {
                let m = manifest_with(&data[..], size, |_| true, threaded_from).unwrap();
                assert_eq!(m, want, "size {size}, threaded from {threaded_from}");
            }
            assert_eq!(manifest_of(&data[..], size, |_| true).unwrap(), want);
        }
    }

    #[test]
    fn two_threads_stop_and_fail_cleanly() {
        let data = bytes(9 * CS as usize);
        let size = data.len() as u64;
        for threaded_from in [0, u64::MAX] {
            // Shorter than said: UnexpectedEof, whichever thread reads the missing block.
            for short in [8 * CS, 7 * CS, 7 * CS + 5] {
                let r = manifest_with(&data[..short as usize], size, |_| true, threaded_from);
                match r {
                    Err(Unfinished::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
                    other => panic!("{short} of {size}: {other:?}"),
                }
            }
            // Stopped by the watcher at each block: told once per block, in order.
            for stop_at in 0..9 {
                let mut seen = Vec::new();
                let r = manifest_with(
                    &data[..],
                    size,
                    |done| {
                        seen.push(done);
                        done < stop_at * CS
                    },
                    threaded_from,
                );
                assert!(matches!(r, Err(Unfinished::Stopped)), "{r:?}");
                let want: Vec<u64> = (0..=stop_at).map(|b| b * CS).collect();
                assert_eq!(seen, want, "threaded from {threaded_from}");
            }
            // Bytes past `size` are not looked at.
            let longer = [&data[..], b"more"].concat();
            let m = manifest_with(&longer[..], size, |_| true, threaded_from).unwrap();
            assert_eq!(m.sha256, Sha256::of(&data));
        }
        match manifest_of(&data[..], MAX_FILE_SIZE + 1, |_| true) {
            Err(Unfinished::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::InvalidInput),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_file_hashes_like_its_bytes() {
        let data = bytes(5 * CS as usize + 3);
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, &data).unwrap();
        let m = manifest_of(&f, data.len() as u64, |_| true).unwrap();
        assert_eq!(m, manifest_of_reader(&data[..], data.len() as u64).unwrap());
    }

    #[test]
    fn chunks_of_several_blocks_are_hashed_whole() {
        // Chunk sizes above READ_BLOCK (files over 4 GiB) feed each chunk in several blocks;
        // the last chunk may end on a block boundary without filling its chunk.
        let cs = 4 * READ_BLOCK as u64;
        for size in [
            cs - 1,
            cs,
            cs + READ_BLOCK as u64,
            2 * cs + 2 * READ_BLOCK as u64 + 3,
        ] {
            let data = bytes(size as usize);
            let mut c = ChunkHasher::new(size, cs as u32);
            for block in data.chunks(READ_BLOCK) {
                c.update(block);
            }
            let want: Vec<Sha256> = data.chunks(cs as usize).map(Sha256::of).collect();
            assert_eq!(c.hashes, want, "size {size}");
            assert_eq!(c.hashes.len() as u64, c.count);
        }
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
