//! PROTOCOL.md §15.7's worked examples are what the code computes: every hex string
//! of its "Worked examples" section is one of the values below and every value below is in the
//! section, so the text and the code cannot drift apart, and a second implementation (Python's
//! `noiseprotocol`, say) can check itself against the same text.

use super::*;
use crate::identity::{Identity, key_file};
use crate::wire::{Message, encode_message};
use std::collections::BTreeSet;

/// RFC 7748 §6.1's private keys: Alice is the initiator, Bob the responder.
const ALICE: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const BOB: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
/// Ephemeral private keys of the example: bytes 0x00..=0x1f and 0x20..=0x3f.
fn ephemeral(first: u8) -> [u8; 32] {
    std::array::from_fn(|i| first + i as u8)
}

fn key(hex_text: &str) -> Identity {
    Identity::from_private(hex::decode(hex_text).unwrap().try_into().unwrap())
}

/// Every value of the worked examples, as hex, and the peer ids.
fn computed() -> (BTreeSet<String>, Vec<String>) {
    let (alice, bob) = (key(ALICE), key(BOB));
    let prologue = our_prologue();
    let mut values = BTreeSet::new();
    values.insert(hex::encode(alice.private_key()));
    values.insert(hex::encode(bob.private_key()));
    values.insert(hex::encode(alice.public_key()));
    values.insert(hex::encode(bob.public_key()));
    values.insert(hex::encode(key_file::encode(&alice)));
    values.insert(hex::encode(prologue.bytes()));
    for first in [0x00, 0x20] {
        values.insert(hex::encode(ephemeral(first)));
        values.insert(hex::encode(
            Identity::from_private(ephemeral(first)).public_key(),
        ));
    }
    let mut i = Handshake::with_fixed_ephemeral(Role::Initiator, &alice, &prologue, &ephemeral(0));
    let mut r = Handshake::with_fixed_ephemeral(Role::Responder, &bob, &prologue, &ephemeral(0x20));
    for initiator_sends in [true, false, true] {
        let (from, to) = if initiator_sends {
            (&mut i, &mut r)
        } else {
            (&mut r, &mut i)
        };
        let bytes = from
            .poll_transmit()
            .expect("XX alternates: this side has a message");
        values.insert(hex::encode(&bytes));
        to.handle_input(&bytes).unwrap();
    }
    assert_eq!(i.handshake_hash(), r.handshake_hash());
    values.insert(hex::encode(i.handshake_hash()));
    let (mut ti, mut tr) = (i.finish().unwrap().transport, r.finish().unwrap().transport);
    let frame = encode_message(&Message::Heartbeat);
    values.insert(hex::encode(&frame));
    values.insert(send(&mut ti, &mut tr, &frame));
    values.insert(send(&mut tr, &mut ti, &frame));
    (
        values,
        vec![alice.peer_id().to_string(), bob.peer_id().to_string()],
    )
}

/// The record that carries `frame` from `from` to `to`, in hex, after checking it opens.
fn send(from: &mut Transport, to: &mut Transport, frame: &[u8]) -> String {
    let mut wire = Vec::new();
    from.seal(frame, &mut wire).unwrap();
    let mut back = Vec::new();
    to.open(&wire, &mut back).unwrap();
    assert_eq!(back, frame);
    hex::encode(wire)
}

/// Prints the values, for writing the section: `cargo test --lib print_worked -- --nocapture`.
#[test]
fn print_worked_examples() {
    let (values, ids) = computed();
    println!("{values:#?}\n{ids:#?}");
}

#[test]
fn the_worked_examples_are_what_we_compute() {
    let doc = include_str!("../../PROTOCOL.md");
    let start = doc
        .find("\n### 15.7 Worked examples")
        .expect("the section is in PROTOCOL.md");
    let end = start
        + 1
        + doc[start + 1..]
            .find("\n## ")
            .unwrap_or(doc.len() - start - 1);
    let section = &doc[start..end];
    let (computed, ids) = computed();
    let documented: BTreeSet<String> = section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| t.len() >= 8 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string)
        .collect();
    let missing: Vec<_> = computed.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&computed).collect();
    assert!(
        missing.is_empty(),
        "computed but not in PROTOCOL.md: {missing:#?}"
    );
    assert!(
        stale.is_empty(),
        "in PROTOCOL.md but not computed: {stale:#?}"
    );
    for id in ids {
        assert!(
            section.contains(&format!("`{id}`")),
            "peer id {id} is not in PROTOCOL.md"
        );
    }
}
