//! Names bound to keys (issue 14) in fake time: a dial that expects a pinned key and reaches
//! another fails in the handshake and says both ids; `trust NAME ID` accepts the new key,
//! `forget NAME` lets the next one be pinned; chat names the sender by its pinned name, with
//! the short id on first contact. (The process test of an impostor at a peer's address:
//! `tests/secure_links.rs`.)

use crate::peer::event::{Event, Warning};
use crate::sim::{PeerSpec, Sim};
use crate::tracker::TrackerConfig;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// Bob pins Alice at one tracker. At a second tracker, which never saw her, an impostor
/// registered "Alice" with its own key: the tracker lists that key, but Bob's dial expects the
/// pinned one, so the handshake fails before Bob shows his key and `msg` fails naming both.
/// After `trust Alice ID` Bob accepts the new key; after `forget Alice` the next key seen is
/// pinned on first contact.
#[test]
fn a_dial_that_reaches_another_key_than_the_pinned_one_is_refused() {
    let mut sim = Sim::new();
    let first = sim.add_tracker(TrackerConfig::default());
    let first_addr = sim.addr(first);
    let alice = sim.add_peer(PeerSpec::new("Alice"));
    let bob = sim.add_peer(PeerSpec::new("Bob").batch("wait-peer Alice 10\nmsg Alice hi\n"));
    assert_eq!(sim.run_to_exit(bob, WAIT), 0, "{}", sim.diagnostics(bob));
    let bob_dirs = sim.dirs(bob);
    let alice_key = sim.key_of(alice);

    let second = sim.add_tracker(TrackerConfig::default());
    let second_addr = sim.addr(second);
    let mallory = sim.add_peer(PeerSpec::new("Alice").tracker(second_addr));
    let mallory_key = sim.key_of(mallory);
    assert_ne!(mallory_key, alice_key);
    sim.run_for(Duration::from_secs(1));

    let bob = sim.add_peer(
        PeerSpec::new("Bob")
            .dirs(&bob_dirs)
            .tracker(second_addr)
            .batch("wait-peer Alice 10\nmsg Alice are you Alice?\n"),
    );
    assert_eq!(sim.run_to_exit(bob, WAIT), 4, "{}", sim.diagnostics(bob));
    let said = sim.stderr(bob).join("\n");
    assert!(
        said.contains(&alice_key.to_string()) && said.contains(&mallory_key.to_string()),
        "{said}"
    );
    assert!(
        sim.events(bob).iter().any(|(_, e)| matches!(
            e,
            Event::Warning(Warning::Impostor { name, pinned, presented })
                if name == "Alice"
                    && *pinned == alice_key.to_string()
                    && *presented == mallory_key.to_string()
        )),
        "{}",
        sim.diagnostics(bob)
    );
    assert!(
        !sim.events(mallory)
            .iter()
            .any(|(_, e)| matches!(e, Event::Message { .. })),
        "the impostor got the message"
    );

    // The user decides Alice has a new key.
    let bob = sim.add_peer(
        PeerSpec::new("Bob")
            .dirs(&bob_dirs)
            .tracker(second_addr)
            .batch(&format!(
                "trust Alice {mallory_key}\nwait-peer Alice 10\nmsg Alice welcome\n"
            )),
    );
    assert_eq!(sim.run_to_exit(bob, WAIT), 0, "{}", sim.diagnostics(bob));
    assert!(sim.events(mallory).iter().any(|(_, e)| matches!(
        e,
        Event::Message { from, text, first_contact: true, .. } if from == "Bob" && text == "welcome"
    )));

    // `forget Alice`: the first tracker's Alice (her old key) is a first contact again.
    let bob = sim.add_peer(
        PeerSpec::new("Bob")
            .dirs(&bob_dirs)
            .tracker(first_addr)
            .batch("forget Alice\nwait-peer Alice 10\nmsg Alice back to you\ntrust\n"),
    );
    assert_eq!(sim.run_to_exit(bob, WAIT), 0, "{}", sim.diagnostics(bob));
    let pins = sim.events(bob).iter().find_map(|(_, e)| match e {
        Event::Pins { pins } => Some(pins.clone()),
        _ => None,
    });
    let pins = pins.expect("`trust` lists the pins");
    assert!(
        pins.iter()
            .any(|p| p.name == "Alice" && p.id == alice_key.to_string()),
        "{pins:?}"
    );
}

/// Chat over a first contact shows the short id once; later messages the name alone.
#[test]
fn the_first_message_from_a_new_name_shows_its_short_id() {
    let mut sim = Sim::new();
    sim.add_tracker(TrackerConfig::default());
    let alice = sim.add_peer(PeerSpec::new("Alice"));
    let bob = sim
        .add_peer(PeerSpec::new("Bob").batch("wait-peer Alice 10\nmsg Alice one\nmsg Alice two\n"));
    assert_eq!(sim.run_to_exit(bob, WAIT), 0, "{}", sim.diagnostics(bob));
    let short = sim.key_of(bob).short();
    let out = sim.stdout(alice);
    assert!(out.contains(&format!("Bob [new, {short}]: one")), "{out:?}");
    assert!(out.contains(&"Bob: two".to_string()), "{out:?}");
}
