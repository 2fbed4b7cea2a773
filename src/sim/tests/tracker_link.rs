//! The peer's link to the tracker when things go wrong quietly: a tracker that stops answering
//! without closing, one that accepts and never speaks, one that gives our name to someone else.
//! In every case the peer keeps running, says why, and gets its registration back by itself.
//!
//! Moved from the process tests `tests/tracker_link.rs` (all four), `tests/hardening_peers.rs`
//! (the two silent trackers) and `tests/discovery.rs` (`taken_name_is_refused_then_freed`):
//! they waited out the real 10 s timeouts and retry intervals.

use crate::peer::Event;
use crate::reactor::{ConnId, Signal};
use crate::sim::script::{Io, Script, Seen, hello};
use crate::sim::{NodeId, PeerSpec, Sim, TRACKER_PORT};
use crate::tracker::TrackerConfig;
use crate::wire::{ErrorCode, Message};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A scripted tracker: `script(connection number, io, conn, message)` for every message.
/// Returns the node and the accept times of its connections.
fn fake_tracker(
    sim: &mut Sim,
    mut script: impl FnMut(usize, &mut Io, ConnId, Message) + 'static,
) -> (NodeId, Rc<RefCell<Vec<Instant>>>) {
    let accepted = Rc::new(RefCell::new(Vec::new()));
    let seen = accepted.clone();
    let mut numbers: HashMap<ConnId, usize> = HashMap::new();
    let driver = Script::new(move |io: &mut Io, input: Seen| match input {
        Seen::Accepted { conn, nth, .. } => {
            numbers.insert(conn, nth);
            seen.borrow_mut().push(io.now());
        }
        Seen::Message { conn, msg } => {
            if let Some(&n) = numbers.get(&conn) {
                script(n, io, conn, msg);
            }
        }
        _ => {}
    });
    let node = sim.add_node("fake tracker", TRACKER_PORT, Box::new(driver));
    (node, accepted)
}

fn registered(req: u64, ttl_secs: u64) -> Message {
    Message::Registered {
        req,
        ttl_secs,
        relay: false,
    }
}

fn peers(req: u64) -> Message {
    Message::Peers {
        req,
        peers: Vec::new(),
        total: None,
    }
}

fn stderr_has(sim: &Sim, node: NodeId, text: &str) -> bool {
    sim.stderr(node).iter().any(|l| l.contains(text))
}

/// From `tests/tracker_link.rs`. A tracker link that goes silently dead (the tracker's host
/// vanished: nothing is read, nothing answered, nothing closed) is noticed and replaced: a new
/// connection registers again within one heartbeat interval + the 10 s answer timeout + the
/// first reconnect delay.
#[test]
fn a_tracker_link_that_goes_silent_is_dropped_and_registered_again() {
    let mut sim = Sim::new();
    // (connection, when its last answer went out)
    let answered: Rc<RefCell<Vec<(usize, Instant)>>> = Rc::default();
    let log = answered.clone();
    // Hello, Register and ListPeers answered (TTL 3 s: a heartbeat interval of 1 s); then
    // silence on that connection.
    let mut done: Vec<usize> = Vec::new();
    let (tracker, _) = fake_tracker(&mut sim, move |n, io, conn, msg| {
        if done.contains(&n) {
            return;
        }
        match msg {
            Message::Hello { .. } => io.send(conn, &hello("", None)),
            Message::Register { req, .. } => io.send(conn, &registered(req, 3)),
            Message::ListPeers { req, .. } => {
                io.send(conn, &peers(req));
                done.push(n);
                log.borrow_mut().push((n, io.now()));
            }
            _ => {}
        }
    });
    let alice = sim.add_peer(PeerSpec::new("Alice").tracker(sim.addr(tracker)));
    assert!(
        sim.run_until(Duration::from_secs(40), |_| answered.borrow().len() >= 2),
        "no second registration\n{}",
        sim.diagnostics(alice)
    );
    let (first, second) = (answered.borrow()[0], answered.borrow()[1]);
    assert_eq!((first.0, second.0), (0, 1));
    let noticed = second.1 - first.1;
    // 1 s heartbeat interval + 10 s answer timeout + 0.25-0.5 s reconnect delay (the process
    // test allowed 10-14 s for scheduling; fake time has none).
    assert!(
        noticed >= Duration::from_millis(11_250) && noticed <= Duration::from_millis(11_500),
        "registered again {noticed:?} after the tracker went silent\n{}",
        sim.diagnostics(alice)
    );
    assert!(sim.is_running(alice));
    assert!(
        stderr_has(&sim, alice, "no answer within 10s"),
        "{}",
        sim.diagnostics(alice)
    );
}

/// From `tests/hardening_peers.rs`. A "tracker" that accepts connections and never says a
/// word: the peer gives up on each connection after 10 s, says it works without a tracker,
/// and keeps retrying.
#[test]
fn a_tracker_that_accepts_but_never_answers_is_dropped_and_retried() {
    let mut sim = Sim::new();
    let (tracker, accepted) = fake_tracker(&mut sim, |_, _, _, _| {});
    let alice = sim.add_peer(PeerSpec::new("Alice").tracker(sim.addr(tracker)));
    assert!(
        sim.run_until(Duration::from_secs(40), |_| accepted.borrow().len() >= 2),
        "no retry after the silent tracker timed out\n{}",
        sim.diagnostics(alice)
    );
    let waited = accepted.borrow()[1] - accepted.borrow()[0];
    // 10 s handshake timeout + the first reconnect delay (0.25-0.5 s); the process test allowed
    // 10-15 s.
    assert!(
        waited >= Duration::from_secs(10) && waited <= Duration::from_millis(10_500),
        "retried after {waited:?}\n{}",
        sim.diagnostics(alice)
    );
    assert!(sim.is_running(alice));
    assert!(
        stderr_has(&sim, alice, "no answer within 10s"),
        "{}",
        sim.diagnostics(alice)
    );
}

/// From `tests/hardening_peers.rs`. A tracker that registers us and then never answers
/// `ListPeers` (heartbeats vanish into its socket buffer): the peer drops the link 10 s after
/// asking and comes back on a new one, instead of waiting for that list forever.
#[test]
fn a_tracker_that_stops_answering_peer_lists_is_dropped_and_retried() {
    let mut sim = Sim::new();
    let handshakes: Rc<RefCell<Vec<Instant>>> = Rc::default();
    let log = handshakes.clone();
    let (tracker, accepted) = fake_tracker(&mut sim, move |_, io, conn, msg| match msg {
        Message::Hello { .. } => io.send(conn, &hello("", None)),
        // Answered with req 0, as the process test's fake did; nothing after it ever is.
        Message::Register { .. } => {
            io.send(conn, &registered(0, 30));
            log.borrow_mut().push(io.now());
        }
        _ => {}
    });
    let alice = sim.add_peer(PeerSpec::new("Alice").tracker(sim.addr(tracker)));
    assert!(
        sim.run_until(Duration::from_secs(40), |_| accepted.borrow().len() >= 2),
        "no new link after the peer list never came\n{}",
        sim.diagnostics(alice)
    );
    assert!(
        !handshakes.borrow().is_empty(),
        "the fake tracker's handshake failed"
    );
    let waited = accepted.borrow()[1] - handshakes.borrow()[0];
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(15),
        "came back after {waited:?}\n{}",
        sim.diagnostics(alice)
    );
    assert!(sim.is_running(alice));
    assert!(stderr_has(&sim, alice, "no answer within 10s"));
}

/// A raw connection that holds `name` at the tracker, trying again every 100 ms while it is
/// taken, and keeps it alive with heartbeats; killing its node frees the name at once. The
/// flag says whether it holds the name.
fn name_holder(
    sim: &mut Sim,
    tracker: std::net::SocketAddr,
    name: &str,
) -> (NodeId, Rc<RefCell<bool>>) {
    let holds = Rc::new(RefCell::new(false));
    let flag = holds.clone();
    let name = name.to_string();
    let mut link = None;
    let mut req = 0;
    let mut started = false;
    let register = move |io: &mut Io, conn: ConnId, req: &mut u64, name: &str| {
        *req += 1;
        let msg = Message::Register {
            req: *req,
            name: name.to_string(),
            listen_port: 9,
            external: None,
        };
        io.send(conn, &msg);
    };
    let driver = Script::new(move |io: &mut Io, seen: Seen| match seen {
        Seen::Timeout if !started => {
            started = true;
            io.connect(tracker);
        }
        Seen::Timeout => {
            if let Some(conn) = link {
                if *flag.borrow() {
                    io.send(conn, &Message::Heartbeat);
                } else {
                    register(io, conn, &mut req, &name);
                }
            }
            io.wake_at(io.now() + Duration::from_millis(100));
        }
        Seen::Connected { conn, .. } => {
            link = Some(conn);
            io.send(conn, &hello(&name, None));
            register(io, conn, &mut req, &name);
        }
        Seen::Message {
            msg: Message::Registered { .. },
            ..
        } => {
            *flag.borrow_mut() = true;
            io.wake_at(io.now() + Duration::from_millis(100));
        }
        Seen::Message {
            msg:
                Message::Error {
                    code: ErrorCode::NameTaken,
                    ..
                },
            ..
        } => io.wake_at(io.now() + Duration::from_millis(100)),
        _ => {}
    });
    let driver = driver.waking_at(sim.now());
    let node = sim.add_node("holder", 9, Box::new(driver));
    (node, holds)
}

/// The refusal is an event naming Alice and saying why, and a clear warning on stderr.
fn assert_refusal_said(sim: &Sim, node: NodeId, at: usize) {
    let Event::NameRefused { name, reason, .. } = &sim.events(node)[at].1 else {
        panic!("not a refusal: {:?}", sim.events(node)[at]);
    };
    assert_eq!(name, "Alice");
    assert!(reason.contains("taken"), "{reason}");
    assert!(
        sim.stderr(node).iter().any(
            |l| l.starts_with("warning: the tracker") && l.contains("refused the name 'Alice'")
        ),
        "no clear warning on stderr\n{}",
        sim.diagnostics(node)
    );
}

fn is_refusal(e: &Event) -> bool {
    matches!(e, Event::NameRefused { .. })
}

fn is_registered(e: &Event) -> bool {
    matches!(e, Event::Registered { .. })
}

fn again(sim: &Sim, node: NodeId, at: usize) -> bool {
    match &sim.events(node)[at].1 {
        Event::Registered { again, .. } => *again,
        other => panic!("not a registration: {other:?}"),
    }
}

/// From `tests/tracker_link.rs`. Started while a live registration holds its name (a restart
/// within the TTL, or a namesake): the peer warns, keeps serving without the tracker, and
/// registers as soon as the name is free.
#[test]
fn a_name_held_by_another_key_is_refused_while_live_and_for_a_day_after() {
    let mut sim = Sim::new();
    let tracker = sim.add_tracker(TrackerConfig::default());
    let at = sim.addr(tracker);
    let (holder, holds) = name_holder(&mut sim, at, "Alice");
    assert!(sim.run_until(Duration::from_secs(1), |_| *holds.borrow()));
    let alice = sim.add_peer(PeerSpec::new("Alice"));
    let (refused, _) = sim.wait_event(alice, Duration::from_secs(30), is_refusal);
    assert_refusal_said(&sim, alice, refused);
    // Past the first two retries (1 s, then 2 s later), and on (the process test waited 4 s)
    // until the backoff has reached its cap.
    sim.run_for(Duration::from_secs(60));
    assert!(sim.is_running(alice), "{}", sim.diagnostics(alice));
    assert!(
        !sim.events(alice).iter().any(|(_, e)| is_registered(e)),
        "registered while the name was held\n{}",
        sim.diagnostics(alice)
    );

    // The holder goes: the name stays its key's (tracker/holds.rs), so this Alice, with
    // another key, is still refused, and goes on without a registration.
    sim.kill(holder);
    sim.run_for(Duration::from_secs(60));
    assert!(
        !sim.events(alice).iter().any(|(_, e)| is_registered(e)),
        "another key got a name held for its last key\n{}",
        sim.diagnostics(alice)
    );
    assert!(sim.is_running(alice));
}

/// A stall longer than the TTL (SIGSTOP) lets the registration expire, but the name stays
/// the stalled peer's key's: another key asking for it is refused (before keys, an impostor
/// took the name, got the messages and served a fake file under it), and the peer, back,
/// registers again at once.
#[test]
fn a_name_is_kept_for_a_stalled_peer() {
    let mut sim = Sim::new();
    let tracker = sim.add_tracker(TrackerConfig {
        peer_ttl: Duration::from_secs(2),
        ..TrackerConfig::default()
    });
    let alice = sim.add_peer(PeerSpec::new("Alice"));
    sim.wait_event(alice, Duration::from_secs(30), is_registered);

    sim.freeze(alice);
    // Alice's registration expires 2 s after her last keep-alive; an impostor keeps asking.
    let at = sim.addr(tracker);
    let (_impostor, holds) = name_holder(&mut sim, at, "Alice");
    sim.run_for(Duration::from_secs(10));
    assert!(
        !*holds.borrow(),
        "the stalled peer's name went to another key"
    );
    assert!(
        sim.tracker_log(tracker)
            .iter()
            .any(|(_, l)| l.contains("Alice expired"))
    );
    sim.thaw(alice);

    let back = sim.run_until(Duration::from_secs(10), |sim| {
        sim.events(alice)
            .iter()
            .skip(1)
            .any(|(_, e)| is_registered(e))
    });
    assert!(
        back,
        "{}\n{:?}",
        sim.diagnostics(alice),
        sim.tracker_log(tracker)
    );
    assert!(!*holds.borrow());
}

/// From `tests/tracker_link.rs`. Registered, then the link drops; on the new connection the
/// name is refused as taken. The peer keeps the connection, asks again on it, and is
/// registered when the tracker agrees.
#[test]
fn a_name_refused_after_a_reconnect_is_asked_for_again_on_the_same_link() {
    let mut sim = Sim::new();
    // (connection, Register frames read on it) once registered the second time
    let seen: Rc<RefCell<Option<(usize, usize)>>> = Rc::default();
    let log = seen.clone();
    let mut registers: HashMap<usize, usize> = HashMap::new();
    let (tracker, _) = fake_tracker(&mut sim, move |n, io, conn, msg| match msg {
        Message::Hello { .. } => io.send(conn, &hello("", None)),
        Message::Register { req, .. } => {
            let count = registers.entry(n).or_default();
            *count += 1;
            if n == 0 {
                io.send(conn, &registered(req, 30));
            } else if *count == 1 {
                let taken = Message::Error {
                    req: Some(req),
                    code: ErrorCode::NameTaken,
                    message: "the name 'Alice' is taken by a live peer at 127.0.0.1:9".into(),
                };
                io.send(conn, &taken);
            } else {
                io.send(conn, &registered(req, 30));
                *log.borrow_mut() = Some((n, *count));
            }
        }
        // Registered and listed, then the link breaks.
        Message::ListPeers { req, .. } if n == 0 => {
            io.send(conn, &peers(req));
            io.close(conn);
        }
        _ => {}
    });
    let alice = sim.add_peer(PeerSpec::new("Alice").tracker(sim.addr(tracker)));
    sim.wait_event(alice, Duration::from_secs(30), is_registered);
    let (refused, _) = sim.wait_event(alice, Duration::from_secs(10), is_refusal);
    assert_refusal_said(&sim, alice, refused);
    assert!(
        sim.run_until(Duration::from_secs(10), |_| seen.borrow().is_some()),
        "no second Register\n{}",
        sim.diagnostics(alice)
    );
    assert_eq!(*seen.borrow(), Some((1, 2)));
    let (back, _) = sim.wait_event(alice, Duration::from_secs(5), is_registered);
    assert!(again(&sim, alice, back));
    assert!(sim.is_running(alice));
}

/// From `tests/discovery.rs`. A second peer with a live peer's name is refused (serve mode
/// and batch mode) but does not exit: it warns, goes on without a registration, and takes the
/// name once the first one is gone.
#[test]
fn taken_name_is_refused_then_freed() {
    let mut sim = Sim::new();
    sim.add_tracker(TrackerConfig::default());
    let alice = sim.add_peer(PeerSpec::new("Alice"));
    sim.wait_event(alice, Duration::from_secs(30), is_registered);

    // --serve: keeps serving, says why it is not registered.
    let second = sim.add_peer(PeerSpec::new("Alice"));
    let (refused, _) = sim.wait_event(second, Duration::from_secs(30), is_refusal);
    assert_refusal_said(&sim, second, refused);
    assert!(
        sim.stderr(second)
            .iter()
            .any(|l| l.starts_with("warning:") && l.to_lowercase().contains("taken")),
        "stderr should be `warning: ... taken ...`\n{}",
        sim.diagnostics(second)
    );

    // --batch: the same; the batch runs to its end.
    let batch = sim.add_peer(PeerSpec::new("Alice").batch("sleep 3\n"));
    assert_eq!(sim.run_to_exit(batch, Duration::from_secs(30)), 0);
    let stderr = sim.stderr(batch).join("\n");
    assert!(stderr.contains("warning:"), "{}", sim.diagnostics(batch));
    assert!(
        stderr.to_lowercase().contains("taken"),
        "{}",
        sim.diagnostics(batch)
    );

    // The first Alice is unharmed.
    assert!(sim.is_running(alice));
    let bob = sim.add_peer(PeerSpec::new("Bob").batch("wait-peer Alice 10\n"));
    assert_eq!(
        sim.run_to_exit(bob, Duration::from_secs(30)),
        0,
        "{}",
        sim.diagnostics(bob)
    );

    // Once she is gone the name stays her key's: the second Alice is still refused, and the
    // first, back with her key, has it at once.
    let key = sim.key_of(alice);
    sim.signal(alice, Signal::Terminate);
    assert_eq!(sim.run_to_exit(alice, Duration::from_secs(10)), 0);
    sim.run_for(Duration::from_secs(15));
    assert!(!sim.events(second).iter().any(|(_, e)| is_registered(e)));
    assert!(sim.is_running(second));
    let back = sim.add_peer(PeerSpec::new("Alice").key(key));
    sim.wait_event(back, Duration::from_secs(15), is_registered);
}
