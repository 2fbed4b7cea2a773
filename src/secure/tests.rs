//! Two ends of a secure link driven in memory: handshakes, pinning, tampering, record sizes,
//! split reads.

use super::*;
use crate::identity::{Identity, PeerId};
use crate::wire::{FrameDecoder, MAX_FRAME_LEN, Message, decode_message, encode_message};

const PROLOGUE: Prologue = Prologue {
    version: 2,
    capabilities: 0,
};

/// What one side of a handshake did with the other's bytes.
struct Ends {
    initiator: Handshake,
    responder: Handshake,
}

fn ends(ki: &Identity, kr: &Identity, pi: Prologue, pr: Prologue) -> Ends {
    Ends {
        initiator: Handshake::new(Role::Initiator, ki, &pi, None),
        responder: Handshake::new(Role::Responder, kr, &pr, None),
    }
}

/// Moves bytes both ways until neither side has anything to send, passing each batch through
/// `tamper(message number, bytes)`. The first error of either side is returned.
fn run(e: &mut Ends, mut tamper: impl FnMut(usize, &mut Vec<u8>)) -> Result<(), LinkError> {
    let mut n = 0;
    loop {
        let mut moved = false;
        if let Some(mut bytes) = e.initiator.poll_transmit() {
            tamper(n, &mut bytes);
            n += 1;
            e.responder.handle_input(&bytes)?;
            moved = true;
        }
        if let Some(mut bytes) = e.responder.poll_transmit() {
            tamper(n, &mut bytes);
            n += 1;
            e.initiator.handle_input(&bytes)?;
            moved = true;
        }
        if !moved {
            return Ok(());
        }
    }
}

/// A finished link: (initiator's transport, responder's transport).
fn link(ki: &Identity, kr: &Identity) -> (Transport, Transport) {
    let mut e = ends(ki, kr, PROLOGUE, PROLOGUE);
    run(&mut e, |_, _| {}).unwrap();
    let i = e.initiator.finish().unwrap();
    let r = e.responder.finish().unwrap();
    assert_eq!(i.remote, ki_id(kr));
    assert_eq!(r.remote, ki_id(ki));
    assert!(i.leftover.is_empty() && r.leftover.is_empty());
    (i.transport, r.transport)
}

fn ki_id(k: &Identity) -> PeerId {
    k.peer_id()
}

fn keys() -> (Identity, Identity) {
    (Identity::generate().unwrap(), Identity::generate().unwrap())
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn handshake_proves_both_keys_and_carries_data_both_ways() {
    let (a, b) = keys();
    let mut e = ends(&a, &b, PROLOGUE, PROLOGUE);
    let mut sizes = Vec::new();
    run(&mut e, |_, bytes| sizes.push(bytes.len())).unwrap();
    // Three records: 2-byte header + 32, 96 and 64 bytes of Noise (PROTOCOL.md §15).
    assert_eq!(sizes, [34, 98, 66]);
    assert!(e.initiator.is_finished() && e.responder.is_finished());
    let (mut ta, mut tb) = (e.initiator.finish().unwrap(), e.responder.finish().unwrap());
    assert_eq!(ta.remote, b.peer_id());
    assert_eq!(tb.remote, a.peer_id());
    for a_to_b in [true, false] {
        let (from, to) = if a_to_b {
            (&mut ta.transport, &mut tb.transport)
        } else {
            (&mut tb.transport, &mut ta.transport)
        };
        let mut wire = Vec::new();
        from.seal(b"hello", &mut wire).unwrap();
        assert_eq!(wire.len(), 2 + 5 + 16);
        assert!(
            !wire.windows(5).any(|w| w == b"hello"),
            "plaintext on the wire"
        );
        let mut plain = Vec::new();
        to.open(&wire, &mut plain).unwrap();
        assert_eq!(plain, b"hello");
    }
}

/// The initiator may send data right behind its last handshake message; the responder finds
/// it in `leftover`.
#[test]
fn data_behind_the_last_handshake_message_is_kept() {
    let (a, b) = keys();
    let mut i = Handshake::new(Role::Initiator, &a, &PROLOGUE, None);
    let mut r = Handshake::new(Role::Responder, &b, &PROLOGUE, None);
    r.handle_input(&i.poll_transmit().unwrap()).unwrap();
    i.handle_input(&r.poll_transmit().unwrap()).unwrap();
    let mut burst = i.poll_transmit().unwrap();
    let mut ti = i.finish().unwrap().transport;
    ti.seal(b"first frame", &mut burst).unwrap();
    r.handle_input(&burst).unwrap();
    assert!(r.poll_transmit().is_none());
    let done = r.finish().unwrap();
    let mut tr = done.transport;
    let mut plain = Vec::new();
    tr.open(&done.leftover, &mut plain).unwrap();
    assert_eq!(plain, b"first frame");
}

#[test]
fn pinned_keys_are_checked_on_both_sides() {
    let (a, b) = keys();
    let stranger = Identity::generate().unwrap().peer_id();

    // The initiator expects someone else: refused on the second message, and its own static
    // key (the third message) is never sent.
    let mut e = Ends {
        initiator: Handshake::new(Role::Initiator, &a, &PROLOGUE, Some(stranger)),
        responder: Handshake::new(Role::Responder, &b, &PROLOGUE, None),
    };
    let err = run(&mut e, |_, _| {}).unwrap_err();
    assert_eq!(
        err,
        LinkError::WrongKey {
            expected: stranger,
            found: b.peer_id()
        }
    );
    assert!(err.to_string().contains(&b.peer_id().to_string()), "{err}");
    assert!(
        e.initiator.poll_transmit().is_none(),
        "sent its key to the wrong peer"
    );
    assert!(!e.initiator.is_finished());
    assert_eq!(e.initiator.handle_input(&[]), Err(LinkError::Failed));

    // The responder expects someone else: refused on the third message.
    let mut e = Ends {
        initiator: Handshake::new(Role::Initiator, &a, &PROLOGUE, None),
        responder: Handshake::new(Role::Responder, &b, &PROLOGUE, Some(stranger)),
    };
    let err = run(&mut e, |_, _| {}).unwrap_err();
    assert!(matches!(err, LinkError::WrongKey { found, .. } if found == a.peer_id()));
    assert!(!e.responder.is_finished());

    // The right expectations on both sides: accepted.
    let mut e = Ends {
        initiator: Handshake::new(Role::Initiator, &a, &PROLOGUE, Some(b.peer_id())),
        responder: Handshake::new(Role::Responder, &b, &PROLOGUE, Some(a.peer_id())),
    };
    run(&mut e, |_, _| {}).unwrap();
    assert!(e.initiator.is_finished() && e.responder.is_finished());
}

/// Another protocol version or other capabilities on one side (as a downgrade on the path
/// would need): the handshake fails, at the initiator's read of the second message.
#[test]
fn prologue_mismatch_breaks_the_handshake() {
    let (a, b) = keys();
    let others = [
        Prologue {
            version: 1,
            ..PROLOGUE
        },
        Prologue {
            capabilities: 1,
            ..PROLOGUE
        },
    ];
    for other in others {
        for (pi, pr) in [(PROLOGUE, other), (other, PROLOGUE)] {
            let mut e = ends(&a, &b, pi, pr);
            let err = run(&mut e, |_, _| {}).unwrap_err();
            assert!(matches!(err, LinkError::Handshake(_)), "{err}");
            assert!(!e.initiator.is_finished() && !e.responder.is_finished());
        }
    }
}

/// One flipped byte anywhere in any handshake message (headers included): the handshake does
/// not complete on both sides, and never with the wrong keys.
#[test]
fn a_flipped_handshake_byte_fails_the_handshake() {
    let (a, b) = keys();
    for message in 0..3 {
        let len = [34, 98, 66][message];
        for at in 0..len {
            for bit in [0x01u8, 0x80] {
                let mut e = ends(&a, &b, PROLOGUE, PROLOGUE);
                let result = run(&mut e, |n, bytes| {
                    if n == message {
                        bytes[at] ^= bit;
                    }
                });
                let both = e.initiator.is_finished() && e.responder.is_finished();
                assert!(
                    result.is_err() || !both,
                    "message {message} byte {at} bit {bit:#x}: handshake completed"
                );
            }
        }
    }
}

/// Garbage of every length up to 200 bytes into either side: an error or a wait, no panic.
#[test]
fn garbage_into_a_handshake_is_refused_without_panic() {
    let (a, b) = keys();
    for len in 0..200 {
        for role in [Role::Initiator, Role::Responder] {
            let mut h = Handshake::new(role, &a, &PROLOGUE, None);
            let mut bytes = pattern(len, len as u64);
            if len >= 2 {
                bytes[..2].copy_from_slice(&((len - 2) as u16).to_be_bytes());
            }
            let _ = h.handle_input(&bytes);
            assert!(!h.is_finished(), "len {len}");
        }
    }
    let _ = b;
}

#[test]
fn handshake_works_one_byte_at_a_time() {
    let (a, b) = keys();
    let mut i = Handshake::new(Role::Initiator, &a, &PROLOGUE, None);
    let mut r = Handshake::new(Role::Responder, &b, &PROLOGUE, None);
    for _ in 0..3 {
        if let Some(bytes) = i.poll_transmit() {
            bytes
                .iter()
                .try_for_each(|x| r.handle_input(&[*x]))
                .unwrap();
        }
        if let Some(bytes) = r.poll_transmit() {
            bytes
                .iter()
                .try_for_each(|x| i.handle_input(&[*x]))
                .unwrap();
        }
    }
    assert!(i.is_finished() && r.is_finished());
}

/// Sizes around the record limit and the largest frame: each round trips, in the expected
/// number of records.
#[test]
fn plaintexts_of_1_byte_to_max_frame_len_round_trip() {
    let (a, b) = keys();
    let (mut ta, mut tb) = link(&a, &b);
    let max_frame = MAX_FRAME_LEN + 4;
    for len in [
        1,
        2,
        MAX_RECORD_PLAINTEXT,
        MAX_RECORD_PLAINTEXT + 1,
        65535,
        65536,
        max_frame,
    ] {
        let plain = pattern(len, len as u64);
        let mut wire = Vec::new();
        ta.seal(&plain, &mut wire).unwrap();
        let records = len.div_ceil(MAX_RECORD_PLAINTEXT);
        assert_eq!(wire.len(), len + records * (2 + TAG_LEN), "len {len}");
        let mut back = Vec::new();
        tb.open(&wire, &mut back).unwrap();
        assert!(back == plain, "len {len} did not round trip");
        assert_eq!(tb.buffered(), 0);
    }
    let mut wire = Vec::new();
    ta.seal(&[], &mut wire).unwrap();
    assert!(wire.is_empty(), "empty plaintext makes no record");
}

/// Real frames through the link and a frame decoder above it, the bytes arriving one at a
/// time for a small frame and in odd pieces for a 4 MiB chunk.
#[test]
fn frames_reassemble_above_the_transport() {
    let (a, b) = keys();
    let (mut ta, mut tb) = link(&a, &b);
    let chat = Message::Chat {
        req: 7,
        text: "hi there".to_string(),
    };
    let chunk = Message::Chunk {
        req: 8,
        index: 3,
        data: pattern(4 * 1024 * 1024, 3),
    };
    let mut wire = Vec::new();
    ta.seal(&encode_message(&chat), &mut wire).unwrap();
    let small = wire.len();
    ta.seal(&encode_message(&chunk), &mut wire).unwrap();
    let mut decoder = FrameDecoder::new();
    let mut got = Vec::new();
    let mut plain = Vec::new();
    let pieces = wire[..small]
        .chunks(1)
        .chain(wire[small..].chunks(65_521))
        .collect::<Vec<_>>();
    for piece in pieces {
        plain.clear();
        tb.open(piece, &mut plain).unwrap();
        decoder.extend(&plain);
        while let Some(body) = decoder.next_frame().unwrap() {
            got.push(decode_message(body).unwrap());
        }
    }
    assert_eq!(got.len(), 2);
    assert!(
        got[0] == chat && got[1] == chunk,
        "frames changed on the way"
    );
}

/// A record missing its last byte waits (nothing of it handed up); the byte completes it.
#[test]
fn a_truncated_record_waits() {
    let (a, b) = keys();
    let (mut ta, mut tb) = link(&a, &b);
    let mut wire = Vec::new();
    ta.seal(b"one", &mut wire).unwrap();
    ta.seal(b"two", &mut wire).unwrap();
    let mut plain = Vec::new();
    tb.open(&wire[..wire.len() - 1], &mut plain).unwrap();
    assert_eq!(plain, b"one");
    assert_eq!(tb.buffered(), 2 + 3 + TAG_LEN - 1);
    tb.open(&wire[wire.len() - 1..], &mut plain).unwrap();
    assert_eq!(plain, b"onetwo");
}

/// One flipped byte in any position of a stream of records (headers and tags included) ends
/// the link, and what was handed up before is exactly the records before the damaged one.
/// A header made larger waits for more bytes; the traffic after it then fails.
#[test]
fn a_flipped_transport_byte_ends_the_link_and_nothing_corrupt_is_handed_up() {
    let (a, b) = keys();
    let sizes = [1usize, 100, 17, 300];
    let plains: Vec<Vec<u8>> = sizes.iter().map(|&n| pattern(n, n as u64)).collect();
    for at in 0.. {
        let (mut ta, mut tb) = link(&a, &b);
        let mut wire = Vec::new();
        let mut ends_of_records = Vec::new();
        for p in &plains {
            ta.seal(p, &mut wire).unwrap();
            ends_of_records.push(wire.len());
        }
        if at >= wire.len() {
            break;
        }
        let damaged = ends_of_records.iter().position(|&end| at < end).unwrap();
        let mut later = Vec::new();
        ta.seal(&pattern(MAX_RECORD_PLAINTEXT, 9), &mut later)
            .unwrap();
        wire[at] ^= 0x20;
        let mut plain = Vec::new();
        let result = tb
            .open(&wire, &mut plain)
            .and_then(|()| tb.open(&later, &mut plain));
        assert!(result.is_err(), "byte {at}: the damage went unnoticed");
        assert_eq!(
            plain,
            plains[..damaged].concat(),
            "byte {at}: wrong bytes handed up"
        );
        assert_eq!(tb.open(&[], &mut plain), Err(LinkError::Failed));
    }
}

/// Flips in a 64 KiB record: its first, middle and tag bytes.
#[test]
fn a_flipped_byte_in_a_full_record_is_caught() {
    let (a, b) = keys();
    let full = 2 + MAX_MESSAGE_LEN;
    for at in [
        2,
        3,
        1000,
        40_000,
        full - TAG_LEN - 1,
        full - TAG_LEN,
        full - 1,
    ] {
        let (mut ta, mut tb) = link(&a, &b);
        let mut wire = Vec::new();
        ta.seal(&pattern(MAX_RECORD_PLAINTEXT, 1), &mut wire)
            .unwrap();
        wire[at] ^= 1;
        let mut plain = Vec::new();
        assert_eq!(
            tb.open(&wire, &mut plain),
            Err(LinkError::Decrypt),
            "byte {at}"
        );
        assert!(plain.is_empty());
    }
}

#[test]
fn records_too_short_for_a_tag_are_refused() {
    let (a, b) = keys();
    let (_, mut tb) = link(&a, &b);
    let mut plain = Vec::new();
    assert_eq!(tb.open(&[0, 16], &mut plain), Err(LinkError::BadRecord(16)));
}

/// A record replayed, or records swapped, fails: the nonces count messages.
#[test]
fn replayed_or_reordered_records_fail() {
    let (a, b) = keys();
    let (mut ta, mut tb) = link(&a, &b);
    let (mut r1, mut r2) = (Vec::new(), Vec::new());
    ta.seal(b"first", &mut r1).unwrap();
    ta.seal(b"second", &mut r2).unwrap();
    let mut plain = Vec::new();
    tb.open(&r1, &mut plain).unwrap();
    assert_eq!(tb.open(&r1, &mut plain), Err(LinkError::Decrypt));
    let (mut ta, mut tb) = link(&a, &b);
    let (mut r1, mut r2) = (Vec::new(), Vec::new());
    ta.seal(b"first", &mut r1).unwrap();
    ta.seal(b"second", &mut r2).unwrap();
    assert_eq!(tb.open(&r2, &mut plain), Err(LinkError::Decrypt));
    let _ = r1;
}
