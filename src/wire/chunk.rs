//! A fast path for `Chunk` frames, the bulk of every download.
//!
//! ciborium decodes a byte string through a 4 KiB scratch buffer into a growing `Vec` (about
//! three copies of every byte, plus reallocations), and encoding a `Message::Chunk` copies the
//! data once more into the frame. This module writes and reads the reference encoding of
//! `Chunk` (PROTOCOL.md §3) by hand instead:
//!
//! ```text
//! A1                      map, 1 entry
//!    65 "Chunk"           key: text(5)
//!    A3                   value: map, 3 entries
//!       63 "req"    uint  shortest form
//!       65 "index"  uint  shortest form
//!       64 "data"   bytes byte-string head (shortest form), then the bytes
//! ```
//!
//! - [`chunk_frame_head`] writes the length prefix and everything before the data, so a sender
//!   can read the file straight into the frame;
//! - [`parse_chunk`] recognizes exactly that layout and returns the data as a slice of the body.
//!   Anything else (other key order, non-shortest integers, tags, indefinite lengths...) returns
//!   `None`, and the caller uses the general decoder, which accepts everything ciborium accepts.
//!   So the fast path never changes what is accepted or how it is read; the tests check that
//!   against ciborium on random and mutated frames.

/// `{"Chunk": {"req": ` — everything before the first integer.
const PREFIX: &[u8] = b"\xA1\x65Chunk\xA3\x63req";
const INDEX_KEY: &[u8] = b"\x65index";
const DATA_KEY: &[u8] = b"\x64data";

/// CBOR major types used here.
const UINT: u8 = 0;
const BYTES: u8 = 2;

/// Appends a CBOR head (major type + argument) in the shortest form, as ciborium writes it.
fn put_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xFF {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= 0xFFFF {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xFFFF_FFFF {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Reads a CBOR head of `major` type in the shortest form; `None` for anything else.
fn take_head(bytes: &[u8], major: u8) -> Option<(u64, &[u8])> {
    let (&first, rest) = bytes.split_first()?;
    if first >> 5 != major {
        return None;
    }
    let (n, rest, min) = match first & 0x1F {
        small @ 0..=23 => return Some((u64::from(small), rest)),
        24 => (u64::from(*rest.first()?), &rest[1..], 24),
        25 => {
            let (b, rest) = rest.split_first_chunk::<2>()?;
            (u64::from(u16::from_be_bytes(*b)), rest, 0x100)
        }
        26 => {
            let (b, rest) = rest.split_first_chunk::<4>()?;
            (u64::from(u32::from_be_bytes(*b)), rest, 0x1_0000)
        }
        27 => {
            let (b, rest) = rest.split_first_chunk::<8>()?;
            (u64::from_be_bytes(*b), rest, 0x1_0000_0000)
        }
        _ => return None, // indefinite length or reserved
    };
    (n >= min).then_some((n, rest))
}

/// A `Chunk` message read in place: `data` borrows the frame body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef<'a> {
    pub req: u64,
    pub index: u64,
    pub data: &'a [u8],
}

/// Reads a frame body holding a `Chunk` in the reference encoding (see the module docs).
/// `None` if the body is anything else, including a `Chunk` written another valid way: decode
/// those with [`super::decode_message`].
pub fn parse_chunk(body: &[u8]) -> Option<ChunkRef<'_>> {
    let head = parse_chunk_head(body)?;
    let data = &body[head.head_len..];
    // Exactly the declared bytes: a short body is truncated, a longer one has bytes after the
    // end of the message (both errors, reported by the general decoder).
    (u64::try_from(data.len()).ok()? == head.data_len).then_some(ChunkRef {
        req: head.req,
        index: head.index,
        data,
    })
}

/// Where a sender cuts a frame (length prefix included) so that a reference `Chunk`'s head goes
/// in a record of its own and its data starts the next (PROTOCOL.md §15.6.2): the length of
/// the prefix and head, or 0 for any other frame (sealed in one piece).
pub fn chunk_head_cut(frame: &[u8]) -> usize {
    frame
        .get(4..)
        .and_then(parse_chunk_head)
        .map_or(0, |head| 4 + head.head_len)
        .min(frame.len())
}

/// Everything of a reference `Chunk` body before its data: what [`parse_chunk_head`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHead {
    pub req: u64,
    pub index: u64,
    /// The length the data's byte-string head declares.
    pub data_len: u64,
    /// Bytes of the body before the data.
    pub head_len: usize,
}

/// Reads the start of a frame body holding a `Chunk` in the reference encoding, up to the
/// first byte of its data; the data itself need not have arrived. `None` for anything else
/// (or a head not complete yet). A body is the one [`parse_chunk`] accepts exactly when it is
/// this head followed by `data_len` bytes.
pub fn parse_chunk_head(body: &[u8]) -> Option<ChunkHead> {
    let rest = body.strip_prefix(PREFIX)?;
    let (req, rest) = take_head(rest, UINT)?;
    let rest = rest.strip_prefix(INDEX_KEY)?;
    let (index, rest) = take_head(rest, UINT)?;
    let rest = rest.strip_prefix(DATA_KEY)?;
    let (data_len, data) = take_head(rest, BYTES)?;
    Some(ChunkHead {
        req,
        index,
        data_len,
        head_len: body.len() - data.len(),
    })
}

/// The start of a complete frame (length prefix included) carrying a `Chunk` of `data_len`
/// bytes, with capacity reserved for them: append exactly `data_len` bytes of data and the
/// frame is the one `encode_message(&Message::Chunk { req, index, data })` would produce.
pub fn chunk_frame_head(req: u64, index: u64, data_len: usize) -> Vec<u8> {
    let mut out = pooled_buffer(4 + 48 + data_len);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(PREFIX);
    put_head(&mut out, UINT, req);
    out.extend_from_slice(INDEX_KEY);
    put_head(&mut out, UINT, index);
    out.extend_from_slice(DATA_KEY);
    put_head(&mut out, BYTES, data_len as u64);
    let body_len = out.len() - 4 + data_len;
    debug_assert!(
        body_len <= super::MAX_FRAME_LEN,
        "chunk frame over the limit"
    );
    out[..4].copy_from_slice(&(body_len as u32).to_be_bytes());
    out
}

thread_local! {
    /// Chunk buffers handed back by whoever consumed a decoded `Chunk` (see
    /// [`recycle_chunk_buffer`]), reused by the next decode on this thread.
    static POOL: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Most buffers and bytes the pool keeps.
const POOL_BUFFERS: usize = 8;
const POOL_BYTES: usize = 8 * 1024 * 1024;

/// Gives a chunk's buffer back once its bytes are no longer needed, so the next `Chunk` decoded
/// or encoded ([`chunk_frame_head`]) on this thread reuses memory that is already mapped (and
/// likely cached) instead of a fresh allocation, which costs page faults and, once freed, an
/// unmap. Optional: a buffer that is simply dropped is freed as usual. The reactor hands back
/// every large frame it has finished sending.
pub fn recycle_chunk_buffer(mut buf: Vec<u8>) {
    buf.clear();
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let held: usize = pool.iter().map(Vec::capacity).sum();
        if pool.len() < POOL_BUFFERS && held + buf.capacity() <= POOL_BYTES {
            pool.push(buf);
        }
    });
}

/// An empty buffer with room for `capacity` bytes: a recycled one if one is big enough (the
/// smallest such), else a new one.
pub fn pooled_buffer(capacity: usize) -> Vec<u8> {
    let reused = POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let at = pool
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= capacity)
            .min_by_key(|(_, b)| b.capacity())?
            .0;
        Some(pool.swap_remove(at))
    });
    reused.unwrap_or_else(|| Vec::with_capacity(capacity))
}

/// A copy of `data` in a recycled buffer if one is big enough, else in a new one.
pub(crate) fn pooled_copy(data: &[u8]) -> Vec<u8> {
    let mut buf = pooled_buffer(data.len());
    buf.extend_from_slice(data);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Message, decode_message, encode_message, frame::decode_with_ciborium};

    /// A small deterministic generator (no dependency needed).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        /// Integers clustered around every boundary of the CBOR head sizes.
        fn interesting(&mut self) -> u64 {
            const EDGES: [u64; 10] = [
                0,
                23,
                24,
                255,
                256,
                65_535,
                65_536,
                0xFFFF_FFFF,
                0x1_0000_0000,
                u64::MAX,
            ];
            match self.below(3) {
                0 => EDGES[self.below(EDGES.len() as u64) as usize],
                1 => EDGES[self.below(EDGES.len() as u64) as usize].wrapping_add(self.below(3)),
                _ => self.next() >> self.below(64),
            }
        }
    }

    fn chunk(req: u64, index: u64, data: Vec<u8>) -> Message {
        Message::Chunk { req, index, data }
    }

    #[test]
    fn head_matches_ciborium_for_random_chunks() {
        let mut rng = Rng(0x5EED_1234_ABCD_0001);
        let lens = [
            0usize, 1, 23, 24, 255, 256, 1000, 65_535, 65_536, 262_144, 300_001,
        ];
        for round in 0..400 {
            let req = rng.interesting();
            let index = rng.interesting();
            let len = if round < lens.len() {
                lens[round]
            } else {
                rng.below(70_000) as usize
            };
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let reference = encode_message(&chunk(req, index, data.clone()));
            let mut fast = chunk_frame_head(req, index, len);
            assert!(fast.capacity() >= fast.len() + len, "room for the data");
            fast.extend_from_slice(&data);
            assert_eq!(fast, reference, "req {req} index {index} len {len}");

            let body = &reference[4..];
            let parsed = parse_chunk(body).expect("reference encoding is recognized");
            assert_eq!(
                (parsed.req, parsed.index, parsed.data),
                (req, index, &data[..])
            );
            assert_eq!(
                decode_with_ciborium(body).unwrap(),
                chunk(req, index, data.clone())
            );
            assert_eq!(decode_message(body).unwrap(), chunk(req, index, data));
        }
    }

    #[test]
    fn largest_chunk_fits_the_frame_limit() {
        let len = crate::peer::manifest::MAX_CHUNK_SIZE as usize;
        let head = chunk_frame_head(u64::MAX, u64::MAX, len);
        assert!(head.len() - 4 + len <= crate::wire::MAX_FRAME_LEN);
    }

    /// Whatever the fast path accepts, ciborium accepts and reads the same way; whatever it
    /// declines still gets the general decoder's answer through `decode_message`.
    #[test]
    fn mutated_frames_decode_as_ciborium_decodes_them() {
        let mut rng = Rng(0xC0FF_EE00_1234_5678);
        for _ in 0..20_000 {
            let req = rng.interesting();
            let index = rng.interesting();
            let len = rng.below(40) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let mut body = encode_message(&chunk(req, index, data))[4..].to_vec();
            for _ in 0..=rng.below(3) {
                match rng.below(4) {
                    0 if !body.is_empty() => {
                        let at = rng.below(body.len() as u64) as usize;
                        body[at] = rng.next() as u8;
                    }
                    1 if !body.is_empty() => {
                        let at = rng.below(body.len() as u64) as usize;
                        body[at] ^= 1 << rng.below(8);
                    }
                    2 => body.truncate(rng.below(body.len() as u64 + 1) as usize),
                    _ => body.push(rng.next() as u8),
                }
            }
            let general = decode_with_ciborium(&body);
            if let Some(c) = parse_chunk(&body) {
                assert_eq!(
                    general,
                    Ok(chunk(c.req, c.index, c.data.to_vec())),
                    "fast path accepted {body:02x?}"
                );
            }
            assert_eq!(decode_message(&body), general, "{body:02x?}");
        }
    }

    #[test]
    fn other_valid_encodings_fall_back_to_the_general_decoder() {
        // Non-shortest req (0x18 0x05 for 5), which ciborium accepts.
        let mut body = b"\xA1\x65Chunk\xA3\x63req\x18\x05".to_vec();
        body.extend_from_slice(b"\x65index\x00\x64data\x43abc");
        assert_eq!(parse_chunk(&body), None);
        assert_eq!(decode_message(&body).unwrap(), chunk(5, 0, b"abc".to_vec()));
        // Keys in another order.
        let mut body = b"\xA1\x65Chunk\xA3\x65index\x01\x63req\x02".to_vec();
        body.extend_from_slice(b"\x64data\x41z");
        assert_eq!(parse_chunk(&body), None);
        assert_eq!(decode_message(&body).unwrap(), chunk(2, 1, b"z".to_vec()));
        // Indefinite-length byte string.
        let mut body = b"\xA1\x65Chunk\xA3\x63req\x01\x65index\x02\x64data".to_vec();
        body.extend_from_slice(b"\x5F\x41a\x41b\xFF");
        assert_eq!(parse_chunk(&body), None);
        assert_eq!(decode_message(&body).unwrap(), chunk(1, 2, b"ab".to_vec()));
    }

    #[test]
    fn recycled_buffers_are_reused_by_the_next_decode() {
        let frame = encode_message(&chunk(1, 2, vec![5; 5000]));
        let first = match decode_message(&frame[4..]).unwrap() {
            Message::Chunk { data, .. } => data,
            other => panic!("{other:?}"),
        };
        let ptr = first.as_ptr();
        recycle_chunk_buffer(first);
        match decode_message(&frame[4..]).unwrap() {
            Message::Chunk { data, .. } => {
                assert_eq!(data.as_ptr(), ptr, "the recycled buffer was used");
                assert_eq!(data, vec![5; 5000]);
            }
            other => panic!("{other:?}"),
        }
        // An encoded frame reuses a recycled buffer too.
        let mut sent = chunk_frame_head(9, 9, 100);
        sent.extend_from_slice(&[1; 100]);
        let ptr = sent.as_ptr();
        recycle_chunk_buffer(sent);
        let next = chunk_frame_head(1, 1, 90);
        assert_eq!(next.as_ptr(), ptr);
        // A buffer too small for the next chunk is not used for it.
        recycle_chunk_buffer(Vec::with_capacity(10));
        let Message::Chunk { data, .. } = decode_message(&frame[4..]).unwrap() else {
            panic!()
        };
        assert_eq!(data.len(), 5000);
    }

    /// After a burst (hundreds of connections' chunk frames sent at once) the pool keeps no
    /// more than its cap; the rest is freed.
    #[test]
    fn the_pool_keeps_at_most_its_cap_after_a_burst() {
        for _ in 0..300 {
            recycle_chunk_buffer(Vec::with_capacity(4 + 48 + 262_144));
        }
        let (buffers, bytes) = POOL.with(|pool| {
            let pool = pool.borrow();
            (pool.len(), pool.iter().map(Vec::capacity).sum::<usize>())
        });
        assert!(buffers <= POOL_BUFFERS, "{buffers} buffers");
        assert!(bytes <= POOL_BYTES, "{bytes} bytes");
    }

    #[test]
    fn truncated_and_padded_chunks_are_errors() {
        let frame = encode_message(&chunk(1, 2, vec![7; 100]));
        let body = &frame[4..];
        assert_eq!(parse_chunk(&body[..body.len() - 1]), None);
        assert!(decode_message(&body[..body.len() - 1]).is_err());
        let mut padded = body.to_vec();
        padded.push(0);
        assert_eq!(parse_chunk(&padded), None);
        assert!(decode_message(&padded).is_err());
    }
}
