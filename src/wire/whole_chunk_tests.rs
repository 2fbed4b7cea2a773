//! The frame decoder's whole-chunks mode (`FrameDecoder::with_whole_chunks`) against the plain
//! decoder: the same messages and the same errors, whatever the pieces the stream comes in,
//! and the data of a chunk whose head came alone never copied.

use super::{Frame, FrameDecoder, Message, WHOLE_CHUNK_FROM, decode_message, encode_message};

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
}

/// A frame (length prefix included) around `body`.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A `Chunk` body that is valid CBOR but not the reference encoding: `req` in a two-byte head
/// where one byte would do. The fast path must leave it to ciborium.
fn chunk_body_not_shortest(req: u8, index: u8, data: &[u8]) -> Vec<u8> {
    let mut body = b"\xA1\x65Chunk\xA3\x63req\x18".to_vec();
    body.push(req);
    body.extend_from_slice(b"\x65index");
    body.push(index & 0x17);
    body.extend_from_slice(b"\x64data\x5A");
    body.extend_from_slice(&(data.len() as u32).to_be_bytes());
    body.extend_from_slice(data);
    body
}

/// A reference `Chunk` frame whose data is `extra` bytes longer than its head declares
/// (negative: shorter), the frame's length counting every byte: malformed either way.
fn chunk_frame_lying_about_its_length(data_len: usize, extra: i64) -> Vec<u8> {
    let frame = encode_message(&Message::Chunk {
        req: 3,
        index: 1,
        data: vec![7; data_len],
    });
    let mut body = frame[4..].to_vec();
    if extra >= 0 {
        body.extend(std::iter::repeat_n(9, extra as usize));
    } else {
        body.truncate(body.len() - (-extra) as usize);
    }
    framed(&body)
}

/// A mixed stream: small messages, chunks below and above the threshold, chunks not in the
/// reference encoding, and (optionally, last) a malformed chunk.
fn stream(rng: &mut Rng, with_bad_end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..12 {
        match rng.below(5) {
            0 => out.extend(encode_message(&Message::ListFiles { req: i })),
            1 => out.extend(encode_message(&Message::GetChunk {
                req: i,
                id: crate::wire::ContentId([i as u8; 32]),
                index: i,
            })),
            2 => out.extend(framed(&chunk_body_not_shortest(
                i as u8,
                i as u8,
                &vec![i as u8; WHOLE_CHUNK_FROM + rng.below(70_000) as usize],
            ))),
            _ => {
                let len = [
                    1,
                    WHOLE_CHUNK_FROM - 40,
                    WHOLE_CHUNK_FROM,
                    65_519,
                    256 * 1024,
                ][rng.below(5) as usize]
                    + rng.below(3) as usize;
                let data: Vec<u8> = (0..len).map(|b| (b as u64 ^ i) as u8).collect();
                out.extend(encode_message(&Message::Chunk {
                    req: i,
                    index: rng.below(1 << 40),
                    data,
                }));
            }
        }
    }
    if with_bad_end {
        let extra = [-1, 1, 5][rng.below(3) as usize];
        out.extend(chunk_frame_lying_about_its_length(
            WHOLE_CHUNK_FROM * 2,
            extra,
        ));
    }
    out
}

/// What the plain decoder makes of a stream fed whole: the messages, then the error if any.
fn reference(stream: &[u8]) -> (Vec<Message>, Option<String>) {
    let mut dec = FrameDecoder::new();
    dec.extend(stream);
    let mut msgs = Vec::new();
    loop {
        match dec.next_frame() {
            Ok(Some(body)) => match decode_message(body) {
                Ok(m) => msgs.push(m),
                Err(e) => return (msgs, Some(e.to_string())),
            },
            Ok(None) => return (msgs, None),
            Err(e) => return (msgs, Some(e.to_string())),
        }
    }
}

/// Takes every frame the decoder has; stops at the first error.
fn drain(dec: &mut FrameDecoder, msgs: &mut Vec<Message>) -> Option<String> {
    loop {
        match dec.take_frame() {
            Ok(Some(frame)) => {
                if matches!(frame, Frame::Chunk { .. }) {
                    APART.with(|n| n.set(n.get() + 1));
                }
                match frame.decode() {
                    Ok(m) => msgs.push(m),
                    Err(e) => return Some(e.to_string()),
                }
            }
            Ok(None) => return None,
            Err(e) => return Some(e.to_string()),
        }
    }
}

/// Feeds `stream` in random pieces, alternating `extend` and a producer that writes through
/// `room`/`filled` (sometimes fewer bytes than it asked room for), taking frames in between.
fn whole_chunks_of(stream: &[u8], rng: &mut Rng) -> (Vec<Message>, Option<String>) {
    let mut dec = FrameDecoder::with_whole_chunks();
    let mut msgs = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = (1 + rng.below(90_000) as usize).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        // Recycled buffers larger than a chunk (as the pool holds after sending frames) let
        // a producer write past a chunk's end into its buffer.
        if rng.below(4) == 0 {
            super::recycle_chunk_buffer(Vec::with_capacity(512 * 1024));
        }
        if rng.below(2) == 0 {
            dec.extend(piece);
        } else {
            let asked = n + rng.below(100) as usize;
            dec.room(asked).extend_from_slice(piece);
            dec.filled();
        }
        if rng.below(3) == 0
            && let Some(e) = drain(&mut dec, &mut msgs)
        {
            return (msgs, Some(e));
        }
    }
    let error = drain(&mut dec, &mut msgs);
    (msgs, error)
}

#[test]
fn whole_chunks_give_the_plain_decoders_messages_and_errors_in_any_pieces() {
    let apart_before = APART.with(|n| n.get());
    for seed in 1..=60u64 {
        let mut rng = Rng(seed * 0x9E37_79B9_7F4A_7C15);
        let bytes = stream(&mut rng, seed % 3 == 0);
        let expected = reference(&bytes);
        let got = whole_chunks_of(&bytes, &mut rng);
        assert_eq!(got.0.len(), expected.0.len(), "seed {seed}: message count");
        assert!(got.0 == expected.0, "seed {seed}: messages differ");
        assert_eq!(got.1, expected.1, "seed {seed}: errors differ");
        if seed % 3 == 0 {
            assert!(got.1.is_some(), "seed {seed}: the lying chunk was accepted");
        }
    }
    let apart = APART.with(|n| n.get()) - apart_before;
    assert!(
        apart > 60,
        "only {apart} chunks came apart: the mode was hardly exercised"
    );
}

thread_local! {
    /// Chunks that came out of the decoder assembled apart, on this thread.
    static APART: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A chunk whose head came on its own (as our sender seals it) has its data opened straight
/// into the buffer the message then carries: the pointer the producer wrote to is the data's.
#[test]
fn a_chunk_whose_head_came_alone_is_never_copied() {
    let data: Vec<u8> = (0..256 * 1024).map(|b| (b * 7) as u8).collect();
    let frame = encode_message(&Message::Chunk {
        req: 11,
        index: 5,
        data: data.clone(),
    });
    let head = super::chunk_head_cut(&frame);
    assert_eq!(
        head,
        4 + super::parse_chunk_head(&frame[4..]).unwrap().head_len
    );
    let mut dec = FrameDecoder::with_whole_chunks();
    dec.extend(&encode_message(&Message::ListFiles { req: 1 }));
    dec.extend(&frame[..head]);
    let mut wrote_at = Vec::new();
    for piece in frame[head..].chunks(65_519) {
        let target = dec.room(piece.len());
        wrote_at.push(target.as_ptr() as usize + target.len());
        target.extend_from_slice(piece);
        dec.filled();
    }
    assert!(dec.ready());
    assert_eq!(
        dec.take_frame().unwrap(),
        Some(Frame::Body(&frame_body_of_list()))
    );
    let Some(Frame::Chunk {
        req,
        index,
        data: got,
    }) = dec.take_frame().unwrap()
    else {
        panic!("the chunk did not come apart");
    };
    assert_eq!((req, index), (11, 5));
    assert_eq!(got, data);
    let start = got.as_ptr() as usize;
    let expected: Vec<usize> = (0..wrote_at.len()).map(|i| start + i * 65_519).collect();
    assert_eq!(
        wrote_at, expected,
        "every record went straight into the chunk's buffer"
    );
    assert_eq!(dec.take_frame().unwrap(), None);
    assert_eq!(dec.buffered(), 0);
}

fn frame_body_of_list() -> Vec<u8> {
    encode_message(&Message::ListFiles { req: 1 })[4..].to_vec()
}

/// What follows a chunk in the same piece comes after it, and a small frame already
/// complete before it comes before it.
#[test]
fn frames_around_a_chunk_keep_their_order() {
    let chunk = Message::Chunk {
        req: 2,
        index: 9,
        data: vec![0x5A; 100_000],
    };
    let msgs = [
        Message::ListFiles { req: 1 },
        chunk.clone(),
        Message::ListFiles { req: 3 },
        chunk,
        Message::ListFiles { req: 4 },
    ];
    let bytes: Vec<u8> = msgs.iter().flat_map(encode_message).collect();
    // Cuts that put a chunk's head and the frames around it in one piece.
    for cut in [20, 100, 5_000, 100_050, 150_000] {
        let mut dec = FrameDecoder::with_whole_chunks();
        dec.extend(&bytes[..cut]);
        dec.extend(&bytes[cut..]);
        let mut got = Vec::new();
        assert_eq!(drain(&mut dec, &mut got), None);
        assert_eq!(got, msgs, "cut at {cut}");
    }
}

#[test]
fn an_oversized_frame_is_refused_in_whole_chunks_mode_too() {
    let mut dec = FrameDecoder::with_whole_chunks();
    dec.extend(&((super::MAX_FRAME_LEN as u32) + 1).to_be_bytes());
    assert!(dec.ready());
    assert!(dec.take_frame().is_err());
}

/// The sender's cut: after a reference chunk's head, nowhere in anything else.
#[test]
fn only_a_reference_chunk_is_cut_after_its_head() {
    let chunk = encode_message(&Message::Chunk {
        req: 300,
        index: 2,
        data: vec![1; 1000],
    });
    let cut = super::chunk_head_cut(&chunk);
    assert_eq!(
        chunk.len() - cut,
        1000,
        "the data starts right after the cut"
    );
    assert_eq!(
        super::chunk_head_cut(&encode_message(&Message::ListFiles { req: 1 })),
        0
    );
    assert_eq!(
        super::chunk_head_cut(&framed(&chunk_body_not_shortest(1, 1, &[0; 100]))),
        0
    );
    assert_eq!(super::chunk_head_cut(&chunk[..3]), 0);
}
