//! The tracker's state machine driven like the reactor drives it: four connections from two
//! IPs, arbitrary frames, handshakes, registrations, closes and clock jumps (see `script.rs`
//! for the input format). Nothing may panic; everything the tracker sends must be whole,
//! decodable frames within the size limit; it never opens a connection.
#![no_main]

mod script;

use libfuzzer_sys::fuzz_target;
use p2p::reactor::{Action, CloseReason, ConnId, Control, Driver};
use p2p::tracker::{Tracker, TrackerConfig};
use p2p::wire::{FrameDecoder, MAX_FRAME_LEN, Message, PROTOCOL_VERSION, decode_message};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SLOTS: usize = 4;

fn remote(slot: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, (slot % 2) as u8 + 1], 5000 + slot as u16))
}

struct Harness {
    tracker: Tracker,
    now: Instant,
    /// The live connection in each slot (None once closed, until it is used again).
    conns: [Option<ConnId>; SLOTS],
    generation: u64,
}

impl Harness {
    fn conn(&mut self, slot: usize) -> ConnId {
        if let Some(c) = self.conns[slot] {
            return c;
        }
        self.generation += 1;
        let c = ConnId {
            index: slot,
            generation: self.generation,
        };
        let key = p2p::identity::PeerId::from_public_key([slot as u8 + 1; 32]);
        self.tracker.handle_accepted(c, remote(slot), key, self.now);
        self.conns[slot] = Some(c);
        c
    }

    fn drain(&mut self) {
        while let Some(action) = self.tracker.poll_action() {
            match action {
                Action::Send(_, bytes) => {
                    let mut dec = FrameDecoder::new();
                    dec.extend(&bytes);
                    while let Some(body) = dec.next_frame().expect("tracker sent a bad frame") {
                        assert!(body.len() <= MAX_FRAME_LEN);
                        decode_message(body).expect("tracker sent an undecodable message");
                    }
                    assert_eq!(dec.buffered(), 0, "tracker sent a partial frame");
                }
                Action::Close(c) => {
                    // As the reactor does: the node hears about its own close.
                    if let Some(slot) = self.conns.iter().position(|s| *s == Some(c)) {
                        self.conns[slot] = None;
                        self.tracker.handle_closed(c, CloseReason::Local, self.now);
                    }
                }
                Action::Exit(_) => {}
                other => panic!("the tracker asked for {other:?}"),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let log = Box::new(|line: &str| {
        assert!(
            !line.chars().any(char::is_control),
            "unprintable log line {line:?}"
        );
    });
    let config = TrackerConfig {
        max_peers_per_ip: 2,
        ..TrackerConfig::default()
    };
    let mut h = Harness {
        tracker: Tracker::new(config, log),
        now: Instant::now(),
        conns: [None; SLOTS],
        generation: 0,
    };
    for r in script::records(data) {
        let slot = usize::from(r.op >> 3) % SLOTS;
        match r.op & 7 {
            0..=2 => {
                let c = h.conn(slot);
                h.tracker.handle_frame(c, r.body, h.now);
            }
            3 => {
                let c = h.conn(slot);
                let hello = script::body(&Message::Hello {
                    version: PROTOCOL_VERSION,
                    name: String::new(),
                    listen_port: None,
                    agent: "fuzz".into(),
                });
                h.tracker.handle_frame(c, &hello, h.now);
            }
            4 => {
                let secs = r.body.first().copied().unwrap_or(1);
                h.now += Duration::from_millis(u64::from(secs) * 250);
                h.tracker.handle_timeout(h.now);
            }
            5 => {
                if let Some(c) = h.conns[slot].take() {
                    h.tracker.handle_closed(c, CloseReason::RemoteClosed, h.now);
                }
            }
            6 => {
                let line = String::from_utf8_lossy(r.body).into_owned();
                h.tracker.handle_control(Control::Line(line), h.now);
            }
            _ => {
                let c = h.conn(slot);
                let name = String::from_utf8_lossy(r.body).into_owned();
                // Odd ops also claim a mapped address (PROTOCOL.md §19), from the name's bytes.
                let external = (r.op & 1 == 1).then(|| name.clone());
                let register = script::body(&Message::Register {
                    req: u64::from(r.op),
                    name,
                    listen_port: 4000,
                    external,
                });
                h.tracker.handle_frame(c, &register, h.now);
            }
        }
        h.drain();
        // Whatever happened, the next deadline is never in the past for long.
        if let Some(t) = h.tracker.poll_timeout() {
            if t <= h.now {
                h.tracker.handle_timeout(h.now);
                h.drain();
                assert!(
                    h.tracker.poll_timeout().is_none_or(|t| t > h.now),
                    "a timer that handle_timeout does not clear would spin the reactor"
                );
            }
        }
    }
});
