//! Reading the chunks of shared files: positioned reads into a frame, a bounded set of open
//! files, and the check before every read that the file on disk is still the one indexed
//! (same device and inode, same size and mtime, still linked): a file that changed, shrank,
//! vanished or was swapped for a symlink answers `Unavailable` rather than wrong bytes.
//! `SharedIndex::read_chunk` and `chunk_frame` (`index.rs`) find the file and come here.

use super::scan::{SharedFile, mtime_ns, open_for_read};
use crate::wire::{ErrorCode, Sha256};
use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;

/// How many shared files `SharedIndex::read_chunk` keeps open at most.
pub const MAX_OPEN_FILES: usize = 64;

/// Open handles for `read_chunk`, at most [`MAX_OPEN_FILES`], least recently used evicted.
#[derive(Debug, Default)]
pub(super) struct OpenFiles {
    open: HashMap<Sha256, OpenFile>,
    /// Ticks once per `read_chunk`, for LRU eviction.
    clock: u64,
}

#[derive(Debug)]
struct OpenFile {
    file: File,
    last_use: u64,
}

/// Why an opened file is not (any more) the file we indexed, if it is not.
fn identity_mismatch(meta: &Metadata, f: &SharedFile) -> Option<&'static str> {
    if !meta.is_file() || meta.dev() != f.dev || meta.ino() != f.inode {
        Some("was replaced")
    } else if meta.nlink() == 0 {
        Some("was deleted")
    } else if meta.len() < f.manifest.size {
        Some("shrank")
    } else if meta.len() != f.manifest.size || mtime_ns(meta) != f.mtime_ns {
        Some("was modified")
    } else {
        None
    }
}

impl OpenFiles {
    /// Appends chunk `index` of `f` (`len` bytes) to `out` with a positioned read, after
    /// checking that the file open under its path is still the one indexed (see
    /// `SharedIndex::read_chunk`); `out` is left as it was on error, and the handle is
    /// closed so a restored file is opened afresh next time.
    pub(super) fn append_chunk(
        &mut self,
        f: &SharedFile,
        index: u64,
        len: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), (ErrorCode, String)> {
        let sha = &f.manifest.sha256;
        let offset = f.manifest.chunk_offset(index);
        let unavailable = |why: String| (ErrorCode::Unavailable, format!("'{}' {why}", f.name));

        self.clock += 1;
        if !self.open.contains_key(sha) {
            let file = open_for_read(&f.path)
                .map_err(|e| unavailable(format!("cannot be opened: {}", io_reason(&e))))?;
            if self.open.len() >= MAX_OPEN_FILES
                && let Some(oldest) = self
                    .open
                    .iter()
                    .min_by_key(|(_, o)| o.last_use)
                    .map(|(k, _)| *k)
            {
                self.open.remove(&oldest);
            }
            self.open.insert(
                *sha,
                OpenFile {
                    file,
                    last_use: self.clock,
                },
            );
        }
        let Some(open) = self.open.get_mut(sha) else {
            unreachable!("inserted above");
        };
        open.last_use = self.clock;

        let checked = match open.file.metadata() {
            Ok(meta) => match identity_mismatch(&meta, f) {
                None => Ok(()),
                Some(why) => Err(unavailable(format!("{why} since it was indexed"))),
            },
            Err(e) => Err(unavailable(format!("cannot be checked: {}", io_reason(&e)))),
        };
        let read = checked.and_then(|()| {
            read_exact_at_append(&open.file, out, len as usize, offset)
                .map_err(|e| unavailable(format!("cannot be read: {}", io_reason(&e))))
        });
        if read.is_err() {
            self.open.remove(sha);
        }
        read
    }

    /// How many files are open.
    pub(super) fn len(&self) -> usize {
        self.open.len()
    }
}

/// Reads exactly `len` bytes of `file` at `offset` and appends them to `out`, straight into its
/// spare capacity (no zero-filling first). `out` is unchanged on error; a file shorter than
/// that is `UnexpectedEof`.
fn read_exact_at_append(file: &File, out: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    out.reserve(len);
    let mut done = 0;
    while done < len {
        let spare = &mut out.spare_capacity_mut()[done..len];
        let at = offset
            .checked_add(done as u64)
            .and_then(|at| libc::off_t::try_from(at).ok())
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: pread(2) writes at most `spare.len()` bytes into memory we own (the vector's
        // spare capacity) and never reads it.
        let n =
            unsafe { libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len(), at) };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            n => done += n as usize,
        }
    }
    let filled = out.len() + len;
    // SAFETY: the loop initialized the `len` bytes after the old length, within the capacity
    // reserved above.
    unsafe { out.set_len(filled) };
    Ok(())
}

/// A short reason for a remote peer: the kind of error, without the OS text that may hold paths.
fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "it no longer exists".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::UnexpectedEof => "it is shorter than indexed".to_string(),
        kind => format!("{kind}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::*;
    use crate::wire::ContentId;
    use std::fs::{self, OpenOptions};
    use std::os::unix::fs::symlink;
    use std::time::{Duration, SystemTime};

    #[test]
    fn chunk_frame_is_the_encoded_chunk_and_errors_like_read_chunk() {
        use crate::wire::{Message, encode_message};
        let fx = fixture();
        let data = bytes(2 * CS + 99, 8);
        fx.write("f", &data);
        let (mut index, _) = fx.scan();
        let id = cid(&data);
        for (i, want) in data.chunks(CS).enumerate() {
            let frame = index.chunk_frame(&id, 1000 + i as u64, i as u64).unwrap();
            let expected = encode_message(&Message::Chunk {
                req: 1000 + i as u64,
                index: i as u64,
                data: want.to_vec(),
            });
            assert!(
                frame == expected,
                "chunk {i}: the frame differs from the encoder's"
            );
        }
        let (code, _) = index.chunk_frame(&id, 1, 3).unwrap_err();
        assert_eq!(code, ErrorCode::BadChunkIndex);
        let (code, _) = index.chunk_frame(&ContentId([7; 32]), 1, 0).unwrap_err();
        assert_eq!(code, ErrorCode::NoSuchFile);
        // Shrunk behind our back: the read comes up short, which is `Unavailable`.
        let f = OpenOptions::new()
            .write(true)
            .open(fx.shared.join("f"))
            .unwrap();
        f.set_len(CS as u64 + 10).unwrap();
        let (code, _) = index.chunk_frame(&id, 1, 1).unwrap_err();
        assert_eq!(code, ErrorCode::Unavailable);
    }

    #[test]
    fn read_chunk_returns_the_right_bytes() {
        let fx = fixture();
        let data = bytes(3 * CS + 777, 6);
        fx.write("big", &data);
        fx.write("tiny", b"tiny");
        fx.write("empty", b"");
        let (mut index, _) = fx.scan();
        let sha = Sha256::of(&data);
        let id = cid(&data);
        let mut buf = vec![0xAA; 10]; // stale contents must not leak into the result
        for (i, want) in data.chunks(CS).enumerate() {
            index.read_chunk(&id, i as u64, &mut buf).unwrap();
            assert_eq!(buf.len(), want.len(), "chunk {i}");
            assert!(buf == want, "chunk {i} differs");
            assert_eq!(
                Sha256::of(&buf),
                index.by_sha(&sha).unwrap().manifest.chunk_hashes[i]
            );
        }
        // Middle chunk again, after the last (positioned reads, no cursor state).
        index.read_chunk(&id, 1, &mut buf).unwrap();
        assert!(buf == data[CS..2 * CS]);

        let (code, _) = index.read_chunk(&id, 4, &mut buf).unwrap_err();
        assert_eq!(code, ErrorCode::BadChunkIndex);
        assert!(buf.is_empty());
        let (code, _) = index.read_chunk(&id, u64::MAX, &mut buf).unwrap_err();
        assert_eq!(code, ErrorCode::BadChunkIndex);

        let tiny = cid(b"tiny");
        index.read_chunk(&tiny, 0, &mut buf).unwrap();
        assert_eq!(buf, b"tiny");
        let (code, _) = index.read_chunk(&tiny, 1, &mut buf).unwrap_err();
        assert_eq!(code, ErrorCode::BadChunkIndex);

        let (code, _) = index.read_chunk(&cid(b""), 0, &mut buf).unwrap_err();
        assert_eq!(
            code,
            ErrorCode::BadChunkIndex,
            "an empty file has no chunks"
        );

        let (code, msg) = index
            .read_chunk(&ContentId([9; 32]), 0, &mut buf)
            .unwrap_err();
        assert_eq!(code, ErrorCode::NoSuchFile);
        assert!(msg.contains(&ContentId([9; 32]).to_hex()));
        assert_eq!(index.open_files(), 2);
    }

    #[test]
    fn read_chunk_after_truncation_deletion_or_modification_is_unavailable() {
        let fx = fixture();
        let a = bytes(2 * CS, 7);
        let b = bytes(2 * CS, 8);
        let c = bytes(100, 9);
        let d = bytes(100, 10);
        fx.write("a", &a);
        fx.write("b", &b);
        fx.write("c", &c);
        fx.write("d", &d);
        let (mut index, _) = fx.scan();
        let mut buf = Vec::new();
        let unavailable = |r: Result<(), (ErrorCode, String)>| {
            let (code, msg) = r.unwrap_err();
            assert_eq!(code, ErrorCode::Unavailable, "{msg}");
            assert!(
                !msg.contains(fx.shared.to_str().unwrap()),
                "path leaked: {msg}"
            );
            msg
        };

        // Truncated while open: the first chunk is still there, but the file shrank.
        index.read_chunk(&cid(&a), 1, &mut buf).unwrap();
        OpenOptions::new()
            .write(true)
            .open(fx.shared.join("a"))
            .unwrap()
            .set_len(CS as u64 + 10)
            .unwrap();
        let msg = unavailable(index.read_chunk(&cid(&a), 0, &mut buf));
        assert!(msg.contains("shrank"), "{msg}");
        assert!(buf.is_empty());

        // Deleted while open (our handle would still read the old bytes) and never opened.
        index.read_chunk(&cid(&b), 0, &mut buf).unwrap();
        fs::remove_file(fx.shared.join("b")).unwrap();
        let msg = unavailable(index.read_chunk(&cid(&b), 0, &mut buf));
        assert!(msg.contains("deleted"), "{msg}");
        fs::remove_file(fx.shared.join("c")).unwrap();
        unavailable(index.read_chunk(&cid(&c), 0, &mut buf));

        // Same size, new content and mtime.
        let mut d2 = d.clone();
        d2[50] ^= 1;
        fx.write("d", &d2);
        set_mtime(&fx.shared.join("d"), 3_000_000);
        let msg = unavailable(index.read_chunk(&cid(&d), 0, &mut buf));
        assert!(msg.contains("modified"), "{msg}");

        // Put back exactly (same inode, size and mtime): served again.
        let meta = fs::metadata(fx.shared.join("d")).unwrap();
        fx.write("d", &d);
        let f = OpenOptions::new()
            .write(true)
            .open(fx.shared.join("d"))
            .unwrap();
        let mtime = index.by_name("d").unwrap().mtime_ns;
        f.set_modified(
            SystemTime::UNIX_EPOCH
                + Duration::from_secs((mtime / 1_000_000_000) as u64)
                + Duration::from_nanos((mtime % 1_000_000_000) as u64),
        )
        .unwrap();
        assert_eq!(meta.ino(), fs::metadata(fx.shared.join("d")).unwrap().ino());
        index.read_chunk(&cid(&d), 0, &mut buf).unwrap();
        assert_eq!(buf, d);
    }

    #[test]
    fn open_file_cache_is_bounded() {
        let fx = fixture();
        let n = MAX_OPEN_FILES + 6;
        for i in 0..n {
            fx.write(&format!("f{i:03}"), format!("content {i}").as_bytes());
        }
        let (mut index, _) = fx.scan();
        let mut buf = Vec::new();
        for round in 0..2 {
            for i in 0..n {
                let want = format!("content {i}");
                index
                    .read_chunk(&cid(want.as_bytes()), 0, &mut buf)
                    .unwrap();
                assert_eq!(buf, want.as_bytes(), "round {round} file {i}");
                assert!(index.open_files() <= MAX_OPEN_FILES);
            }
        }
        assert_eq!(index.open_files(), MAX_OPEN_FILES);
    }

    #[test]
    fn symlink_swapped_after_scan_is_not_followed() {
        let fx = fixture();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"same size!!!").unwrap();
        fx.write("real.txt", b"real content");
        symlink("real.txt", fx.shared.join("link.txt")).unwrap();
        let (mut index, _) = fx.scan();
        let sha = Sha256::of(b"real content");
        let id = cid(b"real content");
        // Two files have this hash; the first by name serves it.
        assert_eq!(index.by_sha(&sha).unwrap().name, "link.txt");
        fs::remove_file(fx.shared.join("link.txt")).unwrap();
        symlink(outside.path().join("secret"), fx.shared.join("link.txt")).unwrap();
        let mut buf = Vec::new();
        let (code, msg) = index.read_chunk(&id, 0, &mut buf).unwrap_err();
        assert_eq!(code, ErrorCode::Unavailable, "{msg}");
        assert!(buf.is_empty());
        assert!(!msg.contains(outside.path().to_str().unwrap()), "{msg}");
    }
}
