//! Framing: `u32` big-endian length + CBOR body.
//!
//! The length is checked against [`MAX_FRAME_LEN`] before a single byte of the body is buffered,
//! so a peer cannot make us allocate more than that by declaring a large length.

use super::Message;
use std::fmt;

/// Largest frame body accepted or sent. A chunk frame carries at most `MAX_CHUNK_SIZE` bytes of
/// data plus a few dozen bytes of CBOR overhead, and a manifest at most `MAX_CHUNKS` hashes.
pub const MAX_FRAME_LEN: usize = 4 * 1024 * 1024 + 4096;

/// CBOR nesting we accept. Our messages nest three levels at most; ciborium's default (256)
/// would let a 20 KB frame of nested arrays cost deep recursion.
const MAX_CBOR_DEPTH: usize = 16;

#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The declared length is above [`MAX_FRAME_LEN`].
    TooLarge(usize),
    /// The body is not one valid message, or has bytes after it.
    Malformed(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge(n) => {
                write!(
                    f,
                    "frame of {n} bytes exceeds the maximum of {MAX_FRAME_LEN}"
                )
            }
            FrameError::Malformed(why) => write!(f, "malformed frame: {why}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Encodes `msg` as one complete frame (length prefix included).
pub fn encode_message(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + msg.bulk_len());
    out.extend_from_slice(&[0; 4]);
    ciborium::into_writer(msg, &mut out).expect("writing CBOR into a Vec cannot fail");
    let body_len = out.len() - 4;
    debug_assert!(
        body_len <= MAX_FRAME_LEN,
        "we never build frames we would refuse"
    );
    out[..4].copy_from_slice(&(body_len as u32).to_be_bytes());
    // A list grown by doubling can hold twice its size; frames wait in output queues, so give
    // the slack back (realloc shrinks in place, without copying).
    if out.capacity() - out.len() > 4096 {
        out.shrink_to_fit();
    }
    out
}

/// Decodes one frame body (without its length prefix). Trailing bytes after the CBOR item are an
/// error: ciborium alone would silently ignore them.
///
/// A `Chunk` in the reference encoding takes a hand-written path ([`super::chunk`]) that copies
/// its data once; everything else, including `Chunk`s encoded any other valid way, goes through
/// ciborium.
pub fn decode_message(body: &[u8]) -> Result<Message, FrameError> {
    if let Some(chunk) = super::chunk::parse_chunk(body) {
        return Ok(Message::Chunk {
            req: chunk.req,
            index: chunk.index,
            data: super::chunk::pooled_copy(chunk.data),
        });
    }
    decode_with_ciborium(body)
}

/// The general decoder (what [`decode_message`] does for anything but a reference `Chunk`).
pub(crate) fn decode_with_ciborium(body: &[u8]) -> Result<Message, FrameError> {
    let mut rest = body;
    let msg: Message = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_CBOR_DEPTH)
        .map_err(|e| FrameError::Malformed(describe_cbor_error(e)))?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!(
            "{} bytes after the end of the message",
            rest.len()
        )));
    }
    Ok(msg)
}

fn describe_cbor_error<T: fmt::Debug>(e: ciborium::de::Error<T>) -> String {
    match e {
        ciborium::de::Error::Io(e) => format!("truncated CBOR ({e:?})"),
        ciborium::de::Error::Syntax(off) => format!("CBOR syntax error at byte {off}"),
        // serde's text quotes the sender's bytes ("unknown variant `\x1b[2J`"): escape it, as
        // it ends up in logs, on terminals and in `Error` frames (found by fuzzing).
        ciborium::de::Error::Semantic(off, msg) => match off {
            Some(off) => format!("{} (at byte {off})", crate::names::printable(&msg)),
            None => crate::names::printable(&msg),
        },
        ciborium::de::Error::RecursionLimitExceeded => "CBOR nested too deeply".to_string(),
    }
}

/// Splits a byte stream into frame bodies. Feed it whatever a socket read returned; it keeps the
/// incomplete tail for the next read.
///
/// Memory: the buffer holds what was read and not yet handed out, so it is as large as the
/// largest frame being assembled plus one read. `buf.len()` is always the filled length (no
/// zero-filled slack), so reserving room for a large read costs address space, not resident
/// memory. A producer that writes straight into the buffer ([`Self::append_with`], or
/// [`Self::room`] and [`Self::filled`]: a secure link decrypting records) adds its bytes with
/// no copy in between.
///
/// **Whole chunks** ([`Self::with_whole_chunks`]): a `Chunk` frame in the reference encoding
/// (see `chunk.rs`) of at least [`WHOLE_CHUNK_FROM`] bytes is assembled apart, its data in a
/// buffer of its own, and [`Self::take_frame`] hands that buffer out as the chunk's data: the bytes
/// a download hashes and writes are the ones the link decrypted, never copied once more. The
/// frame's head is read as soon as it is buffered; what of the data came with it is moved over
/// once (nothing, when the sender sealed the head as a record of its own, as ours does), and
/// everything after goes straight into the chunk's buffer. Whatever a producer appends beyond
/// the chunk's end goes back to the main buffer, in order. The frames handed out are exactly
/// those of the plain path: a body the fast path does not recognize is assembled as usual and
/// decoded by [`decode_message`].
#[derive(Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out as frames; compacted lazily to avoid a memmove per frame.
    consumed: usize,
    /// Start (in `buf`) of the first frame not known to be complete: where the search for a
    /// chunk to assemble apart resumes. At least `consumed`.
    scanned: usize,
    whole_chunks: bool,
    chunk: Option<ChunkInProgress>,
}

/// Frames at least this long that hold a reference `Chunk` are assembled apart (see
/// [`FrameDecoder`]); below it moving the data costs less than the bookkeeping.
pub const WHOLE_CHUNK_FROM: usize = 16 * 1024;

/// A `Chunk` frame being assembled apart. It sits at `at` in the frame order: every frame of
/// `buf` before `at` comes before it, and `buf` holds nothing past `at` until it is complete.
struct ChunkInProgress {
    at: usize,
    req: u64,
    index: u64,
    data: Vec<u8>,
    len: usize,
}

impl ChunkInProgress {
    fn missing(&self) -> usize {
        self.len - self.data.len()
    }
}

/// One frame out of the decoder.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A frame body (length prefix removed, not yet decoded).
    Body(&'a [u8]),
    /// A `Chunk` assembled apart (whole-chunks mode): the message `decode_message` would have
    /// made of its body, without copying the data.
    Chunk { req: u64, index: u64, data: Vec<u8> },
}

impl Frame<'_> {
    /// The message this frame carries.
    pub fn decode(self) -> Result<Message, FrameError> {
        match self {
            Frame::Body(body) => decode_message(body),
            Frame::Chunk { req, index, data } => Ok(Message::Chunk { req, index, data }),
        }
    }
}

/// The declared length of the frame at the front of `bytes`, once its prefix is there.
fn declared_len(bytes: &[u8]) -> Option<usize> {
    let prefix = bytes.first_chunk::<4>()?;
    Some(u32::from_be_bytes(*prefix) as usize)
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that assembles large `Chunk` frames apart (see the type's docs); take its
    /// frames with [`Self::take_frame`].
    pub fn with_whole_chunks() -> Self {
        FrameDecoder {
            whole_chunks: true,
            ..Self::default()
        }
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed + self.chunk.as_ref().map_or(0, |c| c.data.len())
    }

    /// Bytes the buffer can hold without growing.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Frees the buffer if nothing is buffered (a connection going quiet after a large frame
    /// need not keep a large buffer).
    pub fn release_if_empty(&mut self) {
        if self.buffered() == 0 && self.chunk.is_none() {
            self.buf = Vec::new();
            self.consumed = 0;
            self.scanned = 0;
        }
    }

    /// How many more bytes the frame being assembled needs (at least 1), bounded by the maximum
    /// frame size. Lets the caller size its next read.
    pub fn wanted(&self) -> usize {
        if let Some(chunk) = &self.chunk {
            return chunk.missing().max(1);
        }
        let pending = &self.buf[self.consumed..];
        let Some(len) = declared_len(pending) else {
            return 4 - pending.len();
        };
        (4 + len.min(MAX_FRAME_LEN))
            .saturating_sub(pending.len())
            .max(1)
    }

    /// Whether [`Self::next_frame`] has something to say without more input: a whole frame, or
    /// an error (a declared length over the maximum). Reading more is pointless then.
    pub fn ready(&self) -> bool {
        if let Some(chunk) = &self.chunk {
            return self.consumed < chunk.at || chunk.missing() == 0;
        }
        let pending = &self.buf[self.consumed..];
        declared_len(pending).is_some_and(|len| len > MAX_FRAME_LEN || pending.len() >= 4 + len)
    }

    /// Makes room for at least `min` more bytes, moving the unconsumed tail to the front first
    /// when that is free or needed.
    fn make_room(&mut self, min: usize) {
        if self.consumed > 0
            && (self.consumed == self.buf.len()
                || self.buf.capacity() - self.buf.len() < min
                || self.consumed > 1 << 20)
        {
            self.buf.drain(..self.consumed);
            self.scanned -= self.consumed;
            if let Some(chunk) = &mut self.chunk {
                chunk.at -= self.consumed;
            }
            self.consumed = 0;
        }
        self.buf.reserve(min);
    }

    /// Where a producer should append its next `len` bytes (at most: it may append fewer);
    /// call [`Self::filled`] once it has. A chunk being assembled apart takes them when they
    /// fit in its buffer, the main buffer otherwise.
    pub fn room(&mut self, len: usize) -> &mut Vec<u8> {
        let fits = self.chunk.as_ref().is_some_and(|chunk| {
            chunk.missing() > 0 && chunk.data.capacity() - chunk.data.len() >= len
        });
        if fits {
            return &mut self.chunk.as_mut().expect("just seen").data;
        }
        self.make_room(len);
        &mut self.buf
    }

    /// Takes note of what a producer appended where [`Self::room`] said: bytes past a chunk's
    /// end go back to the main buffer, bytes of a chunk that landed in the main buffer go to the
    /// chunk, and a large `Chunk` frame whose head just arrived starts being assembled apart.
    pub fn filled(&mut self) {
        if let Some(chunk) = &mut self.chunk {
            if chunk.data.len() > chunk.len {
                debug_assert_eq!(self.buf.len(), chunk.at);
                self.buf.extend_from_slice(&chunk.data[chunk.len..]);
                chunk.data.truncate(chunk.len);
            } else if self.buf.len() > chunk.at && chunk.missing() > 0 {
                let take = chunk.missing().min(self.buf.len() - chunk.at);
                chunk
                    .data
                    .extend_from_slice(&self.buf[chunk.at..chunk.at + take]);
                self.buf.drain(chunk.at..chunk.at + take);
            }
            if self.chunk.as_ref().is_some_and(|c| c.missing() > 0) {
                return;
            }
        }
        if self.whole_chunks && self.chunk.is_none() {
            self.start_chunk_apart();
        }
        if self.chunk.is_none() && self.buffered() >= 4 && !self.ready() {
            let wanted = self.wanted();
            self.make_room(wanted);
        }
    }

    /// Finds the frame being assembled at the end of `buf` (past every complete one) and, if
    /// it is a large reference `Chunk` whose head is in, moves its data into a buffer of its own.
    fn start_chunk_apart(&mut self) {
        let mut at = self.scanned.max(self.consumed);
        while let Some(len) = declared_len(&self.buf[at..]) {
            if len > MAX_FRAME_LEN || self.buf.len() < at + 4 + len {
                break;
            }
            at += 4 + len;
        }
        self.scanned = at;
        let Some(len) = declared_len(&self.buf[at..]) else {
            return;
        };
        if !(WHOLE_CHUNK_FROM..=MAX_FRAME_LEN).contains(&len) || self.buf.len() >= at + 4 + len {
            return;
        }
        let Some(head) = super::chunk::parse_chunk_head(&self.buf[at + 4..]) else {
            return;
        };
        // Only a head whose data fills the frame exactly; anything else is assembled as usual
        // and the general decoder says what is wrong with it.
        if head.head_len as u64 + head.data_len != len as u64 {
            return;
        }
        let data_len = len - head.head_len;
        let mut data = super::chunk::pooled_buffer(data_len);
        data.extend_from_slice(&self.buf[at + 4 + head.head_len..]);
        self.buf.truncate(at);
        self.chunk = Some(ChunkInProgress {
            at,
            req: head.req,
            index: head.index,
            data,
            len: data_len,
        });
    }

    /// Appends bytes (for callers that already hold them: a shared read buffer, tests, fuzzers).
    /// Once the head of a frame is known, room for the whole frame is reserved at once, so
    /// assembling a large frame never copies it to a bigger buffer.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.room(bytes.len()).extend_from_slice(bytes);
        self.filled();
    }

    /// Appends what `fill` pushes onto the buffer (at most `max` bytes: room for them is made
    /// first), for a producer that writes its output straight into a `Vec`, such as a secure
    /// link decrypting records: the plaintext lands in the decoder with no copy in between.
    pub fn append_with<R>(&mut self, max: usize, fill: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let result = fill(self.room(max));
        self.filled();
        result
    }

    /// Returns the next complete frame body, `Ok(None)` if more bytes are needed, or an error if
    /// the stream can never become valid (the connection should then be closed). For a decoder
    /// without whole chunks (a chunk assembled apart is not a body: use [`Self::take_frame`]).
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        debug_assert!(!self.whole_chunks, "use take_frame() with whole chunks");
        match self.take_frame()? {
            Some(Frame::Body(body)) => Ok(Some(body)),
            Some(Frame::Chunk { .. }) => unreachable!("only with whole chunks"),
            None => Ok(None),
        }
    }

    /// Returns the next complete frame, `Ok(None)` if more bytes are needed, or an error if the
    /// stream can never become valid (the connection should then be closed).
    pub fn take_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        if let Some(chunk) = &self.chunk
            && self.consumed == chunk.at
        {
            if chunk.missing() > 0 {
                return Ok(None);
            }
            let chunk = self.chunk.take().expect("just seen");
            self.scanned = self.scanned.max(self.consumed);
            // Bytes past the chunk may already hold the next large chunk's head.
            if self.whole_chunks {
                self.start_chunk_apart();
            }
            return Ok(Some(Frame::Chunk {
                req: chunk.req,
                index: chunk.index,
                data: chunk.data,
            }));
        }
        let pending = &self.buf[self.consumed..];
        let Some(len) = declared_len(pending) else {
            return Ok(None);
        };
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge(len));
        }
        if pending.len() < 4 + len {
            return Ok(None);
        }
        let start = self.consumed + 4;
        self.consumed = start + len;
        self.scanned = self.scanned.max(self.consumed);
        Ok(Some(Frame::Body(&self.buf[start..start + len])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ErrorCode, PROTOCOL_VERSION};

    fn hello() -> Message {
        Message::Hello {
            version: PROTOCOL_VERSION,
            name: "Alice".into(),
            listen_port: Some(4000),
            agent: "test".into(),
        }
    }

    fn frames_of(dec: &mut FrameDecoder) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(body) = dec.next_frame().unwrap() {
            out.push(decode_message(body).unwrap());
        }
        out
    }

    #[test]
    fn round_trip_every_shape() {
        let msgs = vec![
            hello(),
            Message::Heartbeat,
            Message::Chunk {
                req: 7,
                index: 3,
                data: vec![0xAB; 300_000],
            },
            Message::Error {
                req: None,
                code: ErrorCode::NameTaken,
                message: "taken".into(),
            },
        ];
        let mut dec = FrameDecoder::new();
        for m in &msgs {
            dec.extend(&encode_message(m));
        }
        assert_eq!(frames_of(&mut dec), msgs);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn bytes_travel_as_cbor_byte_strings() {
        let frame = encode_message(&Message::Chunk {
            req: 1,
            index: 0,
            data: vec![1; 1000],
        });
        // An array of integers would take about two bytes per element.
        assert!(frame.len() < 1100, "chunk frame is {} bytes", frame.len());
        // CBOR major type 2 (byte string) with a 2-byte length: 0x59 0x03 0xE8.
        assert!(frame.windows(3).any(|w| w == [0x59, 0x03, 0xE8]));
    }

    #[test]
    fn one_byte_at_a_time_yields_the_same_frames() {
        let a = encode_message(&hello());
        let b = encode_message(&Message::ListFiles { req: 9 });
        let stream: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        for byte in stream {
            dec.extend(&[byte]);
            got.extend(frames_of(&mut dec));
        }
        assert_eq!(got, vec![hello(), Message::ListFiles { req: 9 }]);
    }

    /// Pieces appended through `append_with` (as a secure link decrypts records into the
    /// decoder) in uneven sizes give the same frames as `extend`, and the buffer never holds
    /// more than a frame plus one read.
    #[test]
    fn appended_pieces_yield_the_same_frames_without_growing_past_a_frame() {
        let msgs: Vec<Message> = (0..20)
            .map(|i| Message::Chunk {
                req: i,
                index: i * 3,
                data: vec![i as u8; 1000 + 5000 * i as usize],
            })
            .collect();
        let stream: Vec<u8> = msgs.iter().flat_map(encode_message).collect();
        let largest = msgs.iter().map(|m| encode_message(m).len()).max().unwrap();
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        let mut at = 0;
        let mut step = 1;
        while at < stream.len() {
            let n = step.min(stream.len() - at);
            step = step * 7 % 40_000 + 1;
            dec.append_with(n, |buf| buf.extend_from_slice(&stream[at..at + n]));
            at += n;
            assert!(dec.buffered() <= largest + 40_000);
            while dec.ready() {
                got.push(decode_message(dec.next_frame().unwrap().unwrap()).unwrap());
            }
        }
        assert_eq!(got, msgs);
        assert_eq!(dec.buffered(), 0);
        dec.release_if_empty();
        assert_eq!(dec.capacity(), 0);
    }

    #[test]
    fn ready_means_a_frame_or_an_error_is_waiting() {
        let frame = encode_message(&Message::ListFiles { req: 3 });
        let mut dec = FrameDecoder::new();
        dec.extend(&frame[..frame.len() - 1]);
        assert!(!dec.ready());
        dec.extend(&frame[frame.len() - 1..]);
        assert!(dec.ready());
        dec.next_frame().unwrap().unwrap();
        assert!(!dec.ready());
        dec.extend(&(MAX_FRAME_LEN as u32 + 1).to_be_bytes());
        assert!(
            dec.ready(),
            "a length over the maximum is ready to be refused"
        );
        assert!(dec.next_frame().is_err());
    }

    #[test]
    fn a_partial_frame_is_kept_across_release() {
        let frame = encode_message(&Message::ListFiles { req: 3 });
        let mut dec = FrameDecoder::new();
        dec.extend(&frame[..5]);
        dec.release_if_empty();
        dec.extend(&frame[5..]);
        assert_eq!(
            decode_message(dec.next_frame().unwrap().unwrap()).unwrap(),
            Message::ListFiles { req: 3 }
        );
    }

    #[test]
    fn oversized_length_is_refused_before_buffering() {
        let mut dec = FrameDecoder::new();
        dec.extend(&[0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(dec.next_frame(), Err(FrameError::TooLarge(0xFFFF_FFFF)));
        assert!(dec.wanted() <= MAX_FRAME_LEN + 4);
    }

    #[test]
    fn max_length_is_accepted_and_one_more_is_not() {
        let mut dec = FrameDecoder::new();
        dec.extend(&(MAX_FRAME_LEN as u32).to_be_bytes());
        assert_eq!(dec.next_frame(), Ok(None));
        let mut dec = FrameDecoder::new();
        dec.extend(&(MAX_FRAME_LEN as u32 + 1).to_be_bytes());
        assert!(matches!(dec.next_frame(), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn zero_length_frame_is_malformed_not_a_panic() {
        let mut dec = FrameDecoder::new();
        dec.extend(&[0, 0, 0, 0]);
        let body = dec.next_frame().unwrap().unwrap();
        assert!(decode_message(body).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let frame = encode_message(&Message::Heartbeat);
        let mut body = frame[4..].to_vec();
        body.push(0);
        assert!(matches!(
            decode_message(&body),
            Err(FrameError::Malformed(m)) if m.contains("after the end")
        ));
    }

    #[test]
    fn truncated_body_is_refused() {
        let frame = encode_message(&hello());
        for cut in 0..frame.len() - 4 {
            assert!(decode_message(&frame[4..4 + cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        // {"Hello": [[[[...]]]]} nested 10,000 deep.
        let mut body = vec![0xA1, 0x65];
        body.extend_from_slice(b"Hello");
        body.extend(std::iter::repeat_n(0x81, 10_000));
        body.push(0x00);
        assert!(decode_message(&body).is_err());
    }

    #[test]
    fn errors_quoting_the_senders_bytes_are_printable() {
        // {"\x1b[2J": 0}: an unknown variant named with an escape sequence.
        let e = decode_message(b"\xA1\x64\x1b[2J\x00")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\\x1b[2J"), "{e}");
        assert!(!e.chars().any(char::is_control), "{e:?}");
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678_u64;
        for len in 0..2000 {
            let body: Vec<u8> = (0..len % 97)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 33) as u8
                })
                .collect();
            let _ = decode_message(&body);
        }
    }

    #[test]
    fn huge_declared_length_inside_small_frame_is_an_error() {
        // {"Chunk": {"req": 1, "index": 0, "data": bytes(len = 2^32-1)}} with no data following.
        let mut body = vec![0xA1, 0x65];
        body.extend_from_slice(b"Chunk");
        body.extend_from_slice(&[0xA3, 0x63]);
        body.extend_from_slice(b"req");
        body.push(0x01);
        body.push(0x65);
        body.extend_from_slice(b"index");
        body.push(0x00);
        body.push(0x64);
        body.extend_from_slice(b"data");
        body.extend_from_slice(&[0x5A, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(decode_message(&body).is_err());
    }
}
